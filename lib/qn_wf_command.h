/*  qn_wf_command - a task's command with its ${{ … }} references: checked
    when the workflow is read, made into the argv a run executes, and into
    the text a cache key hashes.

    A reference names params.NAME or secrets.NAME.  In a script a shell
    reads (the string of run: "…", or SCRIPT in [sh, -c, SCRIPT]) each
    becomes an expansion of QANAT_PARAM_<NAME> / QANAT_SECRET_<NAME>
    (qn_shellref), so that no value is ever script text; in any other
    argument a parameter's value is the text, and a secret is refused (a
    command line is visible to every user of the machine).

    The public face is in qn_workflow.h (qn_workflow_task_argv,
    qn_workflow_task_identity).  Private to libqanat.

    One of the files of the qn_workflow class: it implements part of
    qn_workflow.h, so the include checker counts it with qn_workflow.
*/
#ifndef QN_WF_COMMAND_H_INCLUDED
#define QN_WF_COMMAND_H_INCLUDED

#include "qn_workflow.h"
#include "qn_yaml.h"

//  Checks every reference in the task's argv against the declared
//  parameters, reporting at node (the task's run:).  A secret in a shell
//  string is added to the task's env as QANAT_SECRET_<NAME> =
//  "${{ secrets.NAME }}", so that it is resolved, checked and redacted
//  like any other secret in env.
void
    qn_wf_command_check (qn_yaml_ctx_t *ctx, qn_task_t *task, qn_yaml_node_t *node,
                         const qn_param_t *params, size_t param_count);

#endif
