/*  qn_workflow - a parsed and validated workflow file (YAML, via libyaml).

    A workflow is immutable once parsed.  Parsing validates everything the
    coordinator relies on: known keys, types, non-empty commands, unknown
    or duplicate tasks, dependency cycles.  Errors are reported as
    "file:line:col: message" lines (1-based line and column), one per
    problem found, all in one malloc'd string.

    Top-level keys: name, description, params, tasks.  See
    docs/workflow-format.md for every key.
*/
#ifndef QN_WORKFLOW_H_INCLUDED
#define QN_WORKFLOW_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "qn_check.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    char *key;
    char *value;
} qn_kv_t;

typedef enum {
    QN_PARAM_STRING = 0,
    QN_PARAM_INT,                //  a decimal integer that fits in 64 bits
    QN_PARAM_FLOAT,              //  a finite decimal number
    QN_PARAM_BOOL,               //  true/false (also yes/no, 1/0), kept as "true"/"false"
    QN_PARAM_ARTIFACT            //  "file:<sha256>" or "dir:<sha256>": a blob in the
                                 //  coordinator's store (qanat put); never a default
} qn_param_type_t;

typedef struct {
    char *name;
    char *default_value;         //  NULL when the parameter is required (always for an
                                 //  artifact); already checked
    char *description;           //  may be NULL
    qn_param_type_t type;
    char **allowed;              //  allowed values, or NULL for any of the type
    size_t allowed_count;
} qn_param_t;

typedef struct {
    qn_check_t *check;
    qn_severity_t severity;
} qn_task_check_t;

//  An output a task declares: a file or directory relative to its
//  working dir, or a small value it writes to $QANAT_VALUES.
typedef struct {
    char *name;
    char *path;                  //  NULL for a value
    bool value;
} qn_output_t;

//  An input: another task's output, or the blob an artifact parameter
//  names, staged at path in the working dir (a value arrives as
//  $QANAT_INPUT_<NAME> only).  Exactly one of task (with output) and
//  param is set.
typedef struct {
    char *name;
    char *task;                  //  producing task, as written; NULL for a param input
    char *output;                //  its output's name; NULL for a param input
    char *param;                 //  an artifact parameter of this workflow (checked at
                                 //  parse time); NULL for a task input.  Adds no need
    char *path;                  //  where to stage it; default the input's name
    size_t task_index;           //  resolved; the task is also added to needs.
                                 //  SIZE_MAX for a param input
    size_t line, col;
} qn_input_t;

//  Where a workflow's blobs go: the coordinator (default) or S3
typedef struct {
    char *kind;                  //  NULL or "coordinator", "s3"
    char *bucket;
    char *prefix;
    char *endpoint;
    char *region;
    bool path_style;
} qn_artifact_store_t;

//  Endings a retry answers (retry_on).
#define QN_RETRY_ON_EXIT        1u   //  non-zero exit or a signal of the task's own
#define QN_RETRY_ON_TIMEOUT     2u
#define QN_RETRY_ON_AGENT_LOST  4u   //  the agent was lost or lost the process
#define QN_RETRY_ON_CHECK       8u   //  an error check failed
#define QN_RETRY_ON_OUTPUT      16u  //  a declared output is missing or was not stored
#define QN_RETRY_ON_ALL         31u

typedef struct {
    char *name;
    size_t line, col;            //  where the task is defined
    char **argv;                 //  NULL-terminated; a shell string becomes {"/bin/sh", "-c", cmd}
    size_t argc;
    char *shell;                 //  the shell string as written, or NULL for an argv list
    char **needs;                //  names, as written
    size_t needs_count;
    size_t *need_index;          //  resolved indexes into the workflow's tasks
    qn_kv_t *env;
    size_t env_count;
    qn_kv_t *selector;           //  "on": labels an agent must carry
    size_t selector_count;
    uint32_t cpus;               //  0 = unspecified
    uint64_t memory_mb;          //  0 = unspecified; YAML accepts 512, "512M", "4G", "1Gi"
    uint32_t gpus;
    uint32_t retries;            //  extra attempts after the first failure
    uint32_t retry_delay_s;      //  wait before the first retry (default 1 s), doubled each time
    uint32_t retry_max_delay_s;  //  cap of that wait (default 300 s)
    unsigned retry_on;           //  QN_RETRY_ON_* flags: which endings are retried (default all)
    uint32_t timeout_s;          //  0 = none; YAML accepts 90, "90s", "30m", "2h"
    char **metrics;              //  declared metric names (informational)
    size_t metrics_count;
    qn_task_check_t *checks;
    size_t checks_count;
    qn_output_t *outputs;
    size_t output_count;
    qn_input_t *inputs;
    size_t input_count;
    bool cache;                  //  reuse an earlier identical attempt's outputs
    bool no_code;                //  `code: none`: starts in an empty directory
    bool warm;                   //  `warm: true`: may run in a warm Python worker
    char *workdir;               //  `workdir:`: runs in place there, no copy; NULL = none
    char *backend;               //  "local", "slurm", "kubernetes"; NULL = the agent's default
    qn_kv_t *backend_options;    //  the backend's block, flattened (docs/backends.md)
    size_t backend_option_count;
    //  An expansion of a task's matrix: its values (key -> value, in the
    //  matrix's order) and the task's name as written; none otherwise
    qn_kv_t *matrix;
    size_t matrix_count;
    char *matrix_of;
    int32_t priority;            //  `priority:` (default the workflow's); higher goes first
    uint32_t concurrency;        //  attempts of this task across runs at once; 0 = no limit
    char *pool;                  //  `pool:`: a named pool's slot per attempt; NULL = none
} qn_task_t;

typedef struct _qn_workflow_t qn_workflow_t;

//  Parses len bytes of YAML text.  filename is only used in messages.
//  Returns NULL on any error, with *error_p (if not NULL) set to a malloc'd
//  string of "filename:line:col: message" lines.
qn_workflow_t *
    qn_workflow_parse (const char *filename, const char *text, size_t len, char **error_p);

//  Reads and parses a file.  Same error contract; a file that cannot be
//  read gives "path: <strerror>".
qn_workflow_t *
    qn_workflow_load (const char *path, char **error_p);

void
    qn_workflow_destroy (qn_workflow_t **self_p);

const char *
    qn_workflow_name (qn_workflow_t *self);

//  May be NULL.
const char *
    qn_workflow_description (qn_workflow_t *self);

size_t
    qn_workflow_task_count (qn_workflow_t *self);

//  Tasks are in file order.  NULL when index is out of range.
const qn_task_t *
    qn_workflow_task (qn_workflow_t *self, size_t index);

//  Index of the named task, or -1.
int
    qn_workflow_task_index (qn_workflow_t *self, const char *name);

//  Runs to keep (keep_runs); 0 = the coordinator's default.
uint32_t
    qn_workflow_keep_runs (qn_workflow_t *self);

//  The workflow's `code:` as written (a folder relative to the file, or
//  "none"); NULL when absent (the folder holding the file).
const char *
    qn_workflow_code (qn_workflow_t *self);

//  The workflow's `notify:` (lib/qn_wf_notify.h), NULL when absent
typedef struct _qn_wf_notify_t qn_wf_notify_t;
const qn_wf_notify_t *
    qn_workflow_notify (qn_workflow_t *self);

//  The artifact store the workflow asks for (fields may be NULL).
const qn_artifact_store_t *
    qn_workflow_artifact_store (qn_workflow_t *self);

//  Index of a task's output by name, or -1.
int
    qn_task_output_index (const qn_task_t *task, const char *name);

size_t
    qn_workflow_param_count (qn_workflow_t *self);

const qn_param_t *
    qn_workflow_param (qn_workflow_t *self, size_t index);

//  Resolves run parameters: every declared parameter gets the override from
//  overrides (count pairs) or its default.  Returns a malloc'd array of
//  param_count pairs (free with qn_kv_free), or NULL with *error_p set
//  ("unknown parameter 'x'", "parameter 'y' is required").
qn_kv_t *
    qn_workflow_resolve_params (qn_workflow_t *self, const qn_kv_t *overrides, size_t count,
                                char **error_p);

//  Checks value against a parameter's type and allowed values.  Returns
//  the value in canonical form (malloc'd: booleans as "true"/"false",
//  artifact references with their hex lower-cased), or NULL with *error_p
//  a malloc'd message such as "parameter 'epochs' wants an int, not 'abc'".
//  An artifact reference is "file:" or "dir:" followed by exactly 64 hex
//  digits; whether the blob exists is the coordinator's to check.
char *
    qn_workflow_param_check (const qn_param_t *param, const char *value, char **error_p);

//  Name of a parameter type: "string", "int", "float", "bool", "artifact".
const char *
    qn_param_type_name (qn_param_type_t type);

//  A task's argv, ready to run (params: count resolved pairs).  In a
//  script a shell reads (a run: string, the SCRIPT of [sh, -c, SCRIPT])
//  every ${{ params.NAME }} and ${{ secrets.NAME }} becomes an expansion
//  of QANAT_PARAM_<NAME> / QANAT_SECRET_<NAME>, quoted for where it
//  stands, so that no value is ever script text (qn_shellref); in any
//  other argument a parameter's value is inserted as is and a secret is
//  refused.  NULL-terminated, malloc'd (free each string, then the
//  array); NULL with *error_p set for an unknown reference, an unclosed
//  ${{, or a reference where it cannot be made safe.
char **
    qn_workflow_task_argv (const qn_task_t *task, const qn_kv_t *params, size_t count,
                           char **error_p);

//  The task's command as its cache key counts it: the arguments as
//  written with the values in (single-quoted in a shell script), a
//  secret by its name.  Same contract as qn_workflow_task_argv.
char **
    qn_workflow_task_identity (const qn_task_t *task, const qn_kv_t *params, size_t count,
                               char **error_p);

//  Frees an array of count pairs made by this module.
void
    qn_kv_free (qn_kv_t *pairs, size_t count);


#ifdef __cplusplus
}
#endif
#endif
