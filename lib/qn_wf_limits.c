/*  qn_wf_limits - a workflow's and a task's scheduling keys.  See
    qn_wf_limits.h.

    One of the files of the qn_workflow class.
*/
#include "qn_wf_limits.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

//  high | normal | low | an integer in -1000..1000
static void
s_parse_priority (qn_yaml_ctx_t *ctx, qn_yaml_node_t *node, int32_t *priority)
{
    if (node->kind == QN_YAML_SCALAR && node->value) {
        const char *text = node->value;
        if (strcmp (text, "high") == 0) {
            *priority = QN_PRIORITY_HIGH;
            return;
        }
        if (strcmp (text, "normal") == 0) {
            *priority = QN_PRIORITY_NORMAL;
            return;
        }
        if (strcmp (text, "low") == 0) {
            *priority = QN_PRIORITY_LOW;
            return;
        }
        char *end = NULL;
        errno = 0;
        long value = strtol (text, &end, 10);
        if (*text && end && *end == 0 && errno == 0
        &&  value >= -QN_PRIORITY_MAX && value <= QN_PRIORITY_MAX) {
            *priority = (int32_t) value;
            return;
        }
    }
    qn_yaml_node_error (ctx, node, "expected high, normal, low or an integer from %d to %d "
                        "for 'priority'", -QN_PRIORITY_MAX, QN_PRIORITY_MAX);
}

static void
s_parse_concurrency (qn_yaml_ctx_t *ctx, qn_yaml_node_t *node, uint32_t *concurrency)
{
    uint32_t value = 0;
    size_t errors = ctx->count;
    qn_yaml_uint32 (ctx, node, "concurrency", &value);
    if (ctx->count != errors)
        return;
    if (value == 0 || value > QN_CONCURRENCY_MAX)
        qn_yaml_node_error (ctx, node, "'concurrency' must be from 1 to %d",
                            QN_CONCURRENCY_MAX);
    else
        *concurrency = value;
}

void
qn_wf_limits_parse (qn_yaml_ctx_t *ctx, qn_yaml_node_t *root, qn_wf_limits_t *limits)
{
    limits->priority = QN_PRIORITY_NORMAL;
    limits->concurrency = 0;
    qn_yaml_node_t *node = qn_yaml_map_get (root, "priority", NULL);
    if (node)
        s_parse_priority (ctx, node, &limits->priority);
    node = qn_yaml_map_get (root, "concurrency", NULL);
    if (node)
        s_parse_concurrency (ctx, node, &limits->concurrency);
}

void
qn_wf_limits_parse_task (qn_yaml_ctx_t *ctx, qn_yaml_node_t *map, const qn_wf_limits_t *wf,
                         qn_task_t *task)
{
    task->priority = wf->priority;
    qn_yaml_node_t *node = qn_yaml_map_get (map, "priority", NULL);
    if (node)
        s_parse_priority (ctx, node, &task->priority);
    node = qn_yaml_map_get (map, "concurrency", NULL);
    if (node)
        s_parse_concurrency (ctx, node, &task->concurrency);
    node = qn_yaml_map_get (map, "pool", NULL);
    if (!node)
        return;
    qn_yaml_echo_t echo;
    if (node->kind != QN_YAML_SCALAR || qn_yaml_is_null (node) || !node->value
    ||  !qn_yaml_name_valid (node->value))
        qn_yaml_node_error (ctx, node, "invalid pool name '%s' (use letters, digits, '_', '.', "
                            "'-', at most %d characters)",
                            node->kind == QN_YAML_SCALAR && node->value
                            ? qn_yaml_echo (node->value, echo): "", QN_YAML_NAME_MAX);
    else
        task->pool = qn_yaml_strdup (ctx, node->value);
}
