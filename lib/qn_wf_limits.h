/*  qn_wf_limits - a workflow's and a task's scheduling keys: `priority`
    (high, normal, low or an integer), `concurrency` (runs of the workflow
    at once; attempts of a task across all runs at once) and a task's
    `pool` (a named pool of slots shared across workflows, sized by an
    administrator).  See docs/scheduling.md.

        priority: high                  # workflow: its tasks' default
        concurrency: 2                  # runs of this workflow at once
        tasks:
          train:
            priority: 50                # -1000..1000; high = 10, low = -10
            concurrency: 1              # attempts of train across runs
            pool: gpu-a100

    One of the files of the qn_workflow class: it implements part of
    qn_workflow.h's parse, so the include checker counts it with
    qn_workflow.  Private to libqanat and the coordinator.
*/
#ifndef QN_WF_LIMITS_H_INCLUDED
#define QN_WF_LIMITS_H_INCLUDED

#include "qn_workflow.h"
#include "qn_yaml.h"

#define QN_PRIORITY_HIGH        10
#define QN_PRIORITY_NORMAL      0
#define QN_PRIORITY_LOW         (-10)
#define QN_PRIORITY_MAX         1000
#define QN_CONCURRENCY_MAX      1000000

//  Keys this module reads at the top level of a workflow, and in a task
#define QN_WF_LIMITS_KEYS       "priority", "concurrency"
#define QN_WF_LIMITS_TASK_KEYS  "priority", "concurrency", "pool"

//  A workflow's own keys
typedef struct {
    int32_t priority;           //  QN_PRIORITY_NORMAL when not given
    uint32_t concurrency;       //  0 = no limit
} qn_wf_limits_t;

//  Reads priority and concurrency from the workflow's root mapping into
//  limits; errors go into ctx.
void
    qn_wf_limits_parse (qn_yaml_ctx_t *ctx, qn_yaml_node_t *root, qn_wf_limits_t *limits);

//  Reads a task's priority (default: the workflow's), concurrency and
//  pool from its mapping.
void
    qn_wf_limits_parse_task (qn_yaml_ctx_t *ctx, qn_yaml_node_t *map, const qn_wf_limits_t *wf,
                             qn_task_t *task);

//  The workflow's own keys (qn_workflow.c)
const qn_wf_limits_t *
    qn_workflow_limits (qn_workflow_t *wf);

#endif
