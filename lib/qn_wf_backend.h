/*  qn_wf_backend - a task's `backend:` key and its backend's options
    block (`slurm:`, `kubernetes:`, ...), as one table of backends and
    their keys.

    Every block becomes flat key/value pairs, in file order, as
    Assign.backend_options carries them to the agent (docs/backends.md);
    repeated keys (sbatch_arg, node_selector, toleration,
    image_pull_secret) keep their order.  A new backend is a row of
    s_backends in qn_wf_backend.c plus its name in QN_WF_BACKEND_BLOCKS;
    a key is a scalar, a list, or a key with its own parse function, and a
    scalar or list may have a value check.

    One of the files of the qn_workflow class: it implements part of
    qn_workflow.h's parse.  Private to libqanat.
*/
#ifndef QN_WF_BACKEND_H_INCLUDED
#define QN_WF_BACKEND_H_INCLUDED

#include "qn_workflow.h"
#include "qn_yaml.h"

//  The task keys that are backend blocks (for the task's key check)
#define QN_WF_BACKEND_BLOCKS    "slurm", "kubernetes", "lambda", "databricks", "ray", "airflow"

#define QN_WF_BACKEND_OPTIONS_MAX   64      //  flat options per task

typedef enum {
    QN_WF_OPT_SCALAR,           //  a non-empty string: one option
    QN_WF_OPT_LIST,             //  a string or a list of strings: one option each
    QN_WF_OPT_JSON,             //  any value, as compact JSON text: one option
    QN_WF_OPT_CUSTOM            //  the key's parse function decides
} qn_wf_opt_kind_t;

typedef struct _qn_wf_backend_key_t qn_wf_backend_key_t;

//  A value check: true when text is acceptable, else false with a short
//  reason in why ("a region such as eu-west-1").
typedef bool (qn_wf_value_check_fn) (const char *text, char *why, size_t why_size);

//  A key's own parse: adds options with qn_wf_backend_option_add.
typedef void (qn_wf_key_parse_fn) (qn_yaml_ctx_t *ctx, qn_task_t *task,
                                   const char *block, qn_yaml_node_t *value);

struct _qn_wf_backend_key_t {
    const char *key;            //  as written in the block
    qn_wf_opt_kind_t kind;
    const char *option;         //  the flat option's name; NULL = key
    qn_wf_value_check_fn *check;    //  scalar and list values; NULL = any plain text
    qn_wf_key_parse_fn *parse;  //  QN_WF_OPT_CUSTOM only
    bool required;              //  the block must give it
};

typedef struct {
    const char *name;           //  the backend, and its block's key
    bool no_command;            //  runs no command of ours: 'run' is optional
                                //  (a Lambda function, a Databricks task, a DAG)
    const char *hint;           //  "partition, account, ..." for errors
    const qn_wf_backend_key_t *keys;    //  ends with a NULL key; NULL = no block
} qn_wf_backend_t;

//  The backend named name, or NULL.
const qn_wf_backend_t *
    qn_wf_backend_find (const char *name);

//  True when a task of backend name (NULL: the agent's default, which
//  runs commands) needs no 'run'.
bool
    qn_wf_backend_runs_without_command (const char *name);

//  Parses `backend:` and the backend blocks of the task mapping task_map.
void
    qn_wf_backend_parse (qn_yaml_ctx_t *ctx, qn_task_t *task, qn_yaml_node_t *task_map);

//  Adds one flat option (key, value) to task; at is where errors point.
void
    qn_wf_backend_option_add (qn_yaml_ctx_t *ctx, qn_task_t *task, qn_yaml_node_t *at,
                              const char *key, const char *value);

//  True when text has no control characters, no commas and (unless
//  allow_equals) no '=', and is at most 1024 bytes.
bool
    qn_wf_backend_plain (const char *text, bool allow_equals);

#endif
