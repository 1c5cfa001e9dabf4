/*  qn_wf_warm - a task's `warm:` key.  See qn_wf_warm.h.

    One of the files of the qn_workflow class.
*/
#include "qn_wf_warm.h"

#include <string.h>

void
qn_wf_warm_parse_task (qn_yaml_ctx_t *ctx, qn_yaml_node_t *map, qn_task_t *task)
{
    task->warm = false;
    qn_yaml_node_t *node = qn_yaml_map_get (map, "warm", NULL);
    if (!node)
        return;
    if (node->kind == QN_YAML_SCALAR && node->value
    &&  (strcmp (node->value, "true") == 0 || strcmp (node->value, "false") == 0))
        task->warm = strcmp (node->value, "true") == 0;
    else
        qn_yaml_node_error (ctx, node, "expected true or false for 'warm'");
}
