/*  qn_wf_warm - a task's `warm:` key: whether the agent may run it as a
    call in a warm Python worker rather than as a new process.  The Python
    SDK writes `warm: true` for its ops; agents started without
    --warm-python, and tasks whose command is not an SDK op's, run as
    processes whatever the key says.  See docs/python.md.

        tasks:
          score:
            run: ... -m qanat.runtime sweep score
            warm: true

    One of the files of the qn_workflow class: it implements part of
    qn_workflow.h's parse, so the include checker counts it with
    qn_workflow.  Private to libqanat and the coordinator.
*/
#ifndef QN_WF_WARM_H_INCLUDED
#define QN_WF_WARM_H_INCLUDED

#include "qn_workflow.h"
#include "qn_yaml.h"

//  Keys this module reads in a task
#define QN_WF_WARM_TASK_KEYS    "warm"

//  Reads `warm: true|false` of the task's map into task->warm (false
//  when absent); anything else is an error at the key's value.
void
    qn_wf_warm_parse_task (qn_yaml_ctx_t *ctx, qn_yaml_node_t *map, qn_task_t *task);

#endif
