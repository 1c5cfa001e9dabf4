/*  qn_params - a workflow's typed parameters: the `params:` block read
    from the tree, a value checked against its parameter's type and
    `allowed` list, and a run's values resolved from defaults and
    overrides.

    The public face is in qn_workflow.h (qn_workflow_param_check,
    qn_param_type_name, qn_workflow_resolve_params); this header is what
    the rest of the workflow parser calls.  Private to libqanat.

    One of the files of the qn_workflow class: it implements part of
    qn_workflow.h, so the include checker counts it with qn_workflow.
*/
#ifndef QN_PARAMS_H_INCLUDED
#define QN_PARAMS_H_INCLUDED

#include "qn_workflow.h"
#include "qn_yaml.h"

//  Reads the `params:` mapping into *params_p (malloc'd, free with
//  qn_params_free) and *count_p, reporting every problem into ctx.  A
//  parameter with an error is left out, except an artifact parameter
//  with a default or `allowed`, which is kept without them so that
//  inputs naming it still resolve.
void
    qn_params_parse (qn_yaml_ctx_t *ctx, qn_yaml_node_t *node, qn_param_t **params_p,
                     size_t *count_p);

//  The implementation of qn_workflow_resolve_params over a parameter list
qn_kv_t *
    qn_params_resolve (const qn_param_t *params, size_t param_count,
                       const qn_kv_t *overrides, size_t count, char **error_p);

//  Frees count parameters and the array
void
    qn_params_free (qn_param_t *params, size_t count);

//  Reads a boolean word as a bool param takes it (true/yes/on/1,
//  false/no/off/0, any case) into *value_p; -1 (and *value_p untouched)
//  for anything else.
int
    qn_params_bool (const char *text, bool *value_p);

#endif
