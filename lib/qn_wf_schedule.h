/*  qn_wf_schedule - a workflow's `schedule:`, `max_active:` and
    `trigger:` keys: when the coordinator starts runs of it by itself.

        schedule:                       # one mapping, or a list of them
          cron: "0 3 * * 1-5"           # qn_cron
          timezone: Europe/Berlin       # tz database name; default UTC
          catchup: latest               # none (default) | latest | all
          params: {epochs: 5}
        max_active: 1                   # runs of this workflow at once
        trigger:
          after: [prepare]              # upstream workflows
          on: [succeeded]               # default succeeded, succeeded_with_warnings
          params:
            from_run: "${{ upstream.run }}"
            acc: "${{ upstream.outputs.train.accuracy }}"

    A trigger parameter's value is text with references to the upstream
    run: ${{ upstream.run }} (its id), ${{ upstream.workflow }},
    ${{ upstream.status }} and ${{ upstream.outputs.TASK.OUTPUT }} (a value
    output of one of its tasks; empty when the run has none).  Parameters
    named here must be declared in the workflow's params.  See
    docs/schedules.md.

    One of the files of the qn_workflow class: it implements part of
    qn_workflow.h's parse, so the include checker counts it with
    qn_workflow.  Private to libqanat and the coordinator.
*/
#ifndef QN_WF_SCHEDULE_H_INCLUDED
#define QN_WF_SCHEDULE_H_INCLUDED

#include "qn_workflow.h"
#include "qn_yaml.h"
#include "qn_cron.h"

#define QN_WF_SCHEDULE_MAX      32          //  schedules per workflow
#define QN_WF_TRIGGER_AFTER_MAX 32

typedef enum {
    QN_CATCHUP_NONE = 0,        //  ticks missed while the coordinator was down are skipped
    QN_CATCHUP_LATEST,          //  the newest missed tick runs, the others are skipped
    QN_CATCHUP_ALL              //  every missed tick runs
} qn_catchup_t;

typedef struct {
    char *cron_text;            //  as written
    qn_cron_t cron;
    char *timezone;             //  "UTC" when not given
    qn_catchup_t catchup;
    qn_kv_t *params;
    size_t param_count;
} qn_schedule_t;

typedef struct {
    qn_schedule_t *schedules;
    size_t schedule_count;
    uint32_t max_active;        //  0 = no limit
    char **after;               //  upstream workflows; none = no trigger
    size_t after_count;
    unsigned on;                //  bit (1 << Qanat RunStatus) for each status that triggers
    qn_kv_t *trigger_params;    //  values with ${{ upstream.* }} references
    size_t trigger_param_count;
} qn_wf_schedule_t;

//  Keys this module reads at the top level of a workflow
#define QN_WF_SCHEDULE_KEYS     "schedule", "max_active", "trigger"

//  Parses the keys from the workflow's root mapping (params: the declared
//  parameters, for checking names).  Returns NULL when none is present
//  or on an error (reported into ctx).
qn_wf_schedule_t *
    qn_wf_schedule_parse (qn_yaml_ctx_t *ctx, qn_yaml_node_t *root, const qn_param_t *params,
                          size_t param_count);

void
    qn_wf_schedule_destroy (qn_wf_schedule_t **self_p);

//  The workflow's schedule keys, or NULL when it has none (qn_workflow.c)
const qn_wf_schedule_t *
    qn_workflow_schedule (qn_workflow_t *wf);

//  The status's name ("succeeded", ...) for Qanat RunStatus status
const char *
    qn_wf_schedule_status_name (unsigned status);

//  Expands a trigger parameter's value for upstream run: lookup (arg,
//  "TASK.OUTPUT") gives a value output or NULL.  Malloc'd.
typedef const char *(qn_wf_output_fn) (void *arg, const char *task, const char *output);
char *
    qn_wf_schedule_expand (const char *value, uint64_t run_id, const char *workflow,
                           unsigned status, qn_wf_output_fn *lookup, void *arg);

#endif
