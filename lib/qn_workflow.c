/*  qn_workflow - a parsed and validated workflow file (YAML, via libyaml).

    Parsing runs in two passes.  The first (qn_yaml) turns libyaml's event
    stream into a small tree of our own that keeps every node's position,
    refuses aliases and anchors, and bounds the nesting depth.  The second
    walks the tree, checks every key and value, and builds the immutable
    workflow.

    Every problem becomes one "file:line:col: message" error; we keep
    going after an error so that a user fixes a file in one round trip.
    Only a broken YAML stream or a hostile input (too big, too deep) stops
    the parse early.  Errors come out sorted by position.

    The parser's files, one concern each (all but this one private):
      qn_yaml.c        the tree, the error list, "did you mean", typed scalars
      qn_workflow.c    the keys and the tasks: top level, task fields,
                       outputs and inputs; the public API
      qn_params.c      typed parameters: `params:`, value checks, a run's values
      qn_wf_graph.c    needs, inputs linked to outputs, cycles
      qn_wf_command.c  ${{ … }} in a task's command: checks, argv, cache key
                       (the shell side is qn_shellref.c)
      qn_wf_backend.c  `backend:` and the backends' option blocks, one table
*/
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include "qn_workflow.h"
#include "qn_metric.h"
#include "qn_yaml.h"
#include "qn_params.h"
#include "qn_wf_graph.h"
#include "qn_wf_matrix.h"
#include "qn_wf_schedule.h"
#include "qn_wf_command.h"
#include "qn_wf_notify.h"
#include "qn_wf_backend.h"
#include "qn_wf_limits.h"
#include "qn_wf_warm.h"

#define S_MAX_INPUT     (1024 * 1024)
#define S_MAX_TASKS     10000

struct _qn_workflow_t {
    char *name;
    char *description;
    qn_param_t *params;
    size_t param_count;
    qn_task_t *tasks;
    size_t task_count;
    size_t *by_name;            //  task indexes sorted by name, for lookups
    uint32_t keep_runs;
    qn_artifact_store_t store;
    char *code;                 //  `code:` as written; NULL = the file's folder
    qn_wf_schedule_t *schedule; //  schedule, max_active, trigger; NULL = none
    qn_wf_notify_t *notify;     //  `notify:`, NULL = none
    qn_wf_limits_t limits;      //  priority, concurrency
};

static const char *s_top_keys [] = {
    "name", "description", "params", "tasks", "keep_runs", "artifacts", "code", "notify",
    QN_WF_SCHEDULE_KEYS, QN_WF_LIMITS_KEYS, NULL
};
static const char *s_store_keys [] = {
    "store", "bucket", "prefix", "endpoint", "region", "path_style", NULL
};
static const char *s_output_keys [] = { "path", "value", NULL };
static const char *s_input_keys [] = { "from", "param", "path", NULL };
static const char *s_task_keys [] = {
    "run", "needs", "env", "on", "resources", "retries", "retry_delay", "retry_max_delay",
    "retry_on", "timeout", "metrics", "checks", "backend", QN_WF_BACKEND_BLOCKS,
    "outputs", "inputs", "cache", "matrix", "code", "workdir", QN_WF_LIMITS_TASK_KEYS,
    QN_WF_WARM_TASK_KEYS, NULL
};
static const char *s_resource_keys [] = { "cpus", "memory", "gpus", NULL };
static const char *s_check_entry_keys [] = { "expr", "severity", NULL };

//  The same rule as the metrics file: one definition, in qn_metric.
static bool
s_valid_metric_name (const char *name)
{
    size_t len = strlen (name);
    return len <= QN_YAML_NAME_MAX && qn_metric_name_valid (name, len);
}

static bool
s_valid_env_name (const char *name)
{
    size_t len = strlen (name);
    if (len == 0 || len > QN_YAML_NAME_MAX)
        return false;
    if (isdigit ((unsigned char) name [0]))
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char) name [i];
        if (!(isascii (c) && (isalnum (c) || c == '_')))
            return false;
    }
    return true;
}


//  ---------------------------------------------------------------------
//  Freeing

static void
s_strv_free (char **strv, size_t count)
{
    if (!strv)
        return;
    for (size_t i = 0; i < count; i++)
        free (strv [i]);
    free (strv);
}

void
qn_kv_free (qn_kv_t *pairs, size_t count)
{
    if (!pairs)
        return;
    for (size_t i = 0; i < count; i++) {
        free (pairs [i].key);
        free (pairs [i].value);
    }
    free (pairs);
}

static void
s_task_free (qn_task_t *task)
{
    free (task->name);
    if (task->argv) {
        for (size_t i = 0; task->argv [i]; i++)
            free (task->argv [i]);
        free (task->argv);
    }
    free (task->shell);
    s_strv_free (task->needs, task->needs_count);
    free (task->need_index);
    qn_kv_free (task->env, task->env_count);
    qn_kv_free (task->selector, task->selector_count);
    free (task->backend);
    free (task->workdir);
    free (task->pool);
    qn_kv_free (task->backend_options, task->backend_option_count);
    for (size_t i = 0; task->outputs && i < task->output_count; i++) {
        free (task->outputs [i].name);
        free (task->outputs [i].path);
    }
    free (task->outputs);
    for (size_t i = 0; task->inputs && i < task->input_count; i++) {
        free (task->inputs [i].name);
        free (task->inputs [i].task);
        free (task->inputs [i].output);
        free (task->inputs [i].param);
        free (task->inputs [i].path);
    }
    free (task->inputs);
    s_strv_free (task->metrics, task->metrics_count);
    for (size_t i = 0; i < task->checks_count; i++)
        qn_check_destroy (&task->checks [i].check);
    free (task->checks);
    qn_kv_free (task->matrix, task->matrix_count);
    free (task->matrix_of);
    memset (task, 0, sizeof (qn_task_t));
}

void
qn_workflow_destroy (qn_workflow_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        qn_workflow_t *self = *self_p;
        free (self->name);
        free (self->description);
        free (self->code);
        qn_wf_schedule_destroy (&self->schedule);
        qn_wf_notify_destroy (&self->notify);
        qn_params_free (self->params, self->param_count);
        free (self->store.kind);
        free (self->store.bucket);
        free (self->store.prefix);
        free (self->store.endpoint);
        free (self->store.region);
        for (size_t i = 0; i < self->task_count; i++)
            s_task_free (&self->tasks [i]);
        free (self->tasks);
        free (self->by_name);
        free (self);
        *self_p = NULL;
    }
}


//  ---------------------------------------------------------------------
//  Pass two: tree to workflow

#define S_MAX_ARTIFACTS 256     //  outputs, and inputs, per task



static void
s_parse_run (qn_yaml_ctx_t *ctx, qn_task_t *task, qn_yaml_node_t *node)
{
    qn_yaml_echo_t echo;
    if (node->kind == QN_YAML_MAPPING) {
        qn_yaml_node_error (ctx, node, "expected a command string or a list of strings for 'run'");
        return;
    }
    if (node->kind == QN_YAML_SCALAR) {
        const char *p = node->value;
        while (isspace ((unsigned char) *p))
            p++;
        if (*p == '\0' || qn_yaml_is_null (node)) {
            qn_yaml_node_error (ctx, node, "empty command for task '%s'",
                                qn_yaml_echo (task->name, echo));
            return;
        }
        task->argv = (char **) calloc (4, sizeof (char *));
        if (!task->argv) {
            ctx->oom = true;
            return;
        }
        task->argv [0] = qn_yaml_strdup (ctx, "/bin/sh");
        task->argv [1] = qn_yaml_strdup (ctx, "-c");
        task->argv [2] = qn_yaml_strdup (ctx, node->value);
        task->argc = 3;
        task->shell = qn_yaml_strdup (ctx, node->value);
        return;
    }
    //  A list is the argv as written; only its first word must be non-empty
    if (node->count == 0) {
        qn_yaml_node_error (ctx, node, "empty command for task '%s'",
                            qn_yaml_echo (task->name, echo));
        return;
    }
    bool ok = true;
    for (size_t i = 0; i < node->count; i++) {
        qn_yaml_node_t *item = node->items [i];
        if (item->kind != QN_YAML_SCALAR || qn_yaml_is_null (item)) {
            qn_yaml_node_error (ctx, item, "expected a string in the 'run' list of task '%s'",
                                qn_yaml_echo (task->name, echo));
            ok = false;
        }
    }
    if (!ok)
        return;
    if (node->items [0]->value [0] == '\0') {
        qn_yaml_node_error (ctx, node->items [0], "empty command for task '%s'",
                            qn_yaml_echo (task->name, echo));
        return;
    }
    task->argv = (char **) calloc (node->count + 1, sizeof (char *));
    if (!task->argv) {
        ctx->oom = true;
        return;
    }
    for (size_t i = 0; i < node->count; i++)
        task->argv [i] = qn_yaml_strdup (ctx, node->items [i]->value);
    task->argc = node->count;
}

//  A mapping of names to scalars: env and on.  what names the field in
//  messages; env keys must be valid variable names, outside QANAT_*.
static void
s_parse_pairs (qn_yaml_ctx_t *ctx, qn_task_t *task, qn_yaml_node_t *node, bool is_env,
               qn_kv_t **pairs_p, size_t *count_p)
{
    qn_yaml_echo_t echo, echo2;
    const char *field = is_env? "env": "on";
    if (qn_yaml_is_null (node))
        return;
    if (node->kind != QN_YAML_MAPPING) {
        if (is_env)
            qn_yaml_node_error (ctx, node,
                                "expected a mapping of variable names to values for 'env'");
        else
            qn_yaml_node_error (ctx, node, "expected a mapping of labels to values for 'on'");
        return;
    }
    size_t pairs = node->count / 2;
    qn_kv_t *kv = (qn_kv_t *) calloc (pairs? pairs: 1, sizeof (qn_kv_t));
    if (!kv) {
        ctx->oom = true;
        return;
    }
    size_t used = 0;
    for (size_t i = 0; i < pairs; i++) {
        qn_yaml_node_t *key = node->items [2 * i];
        qn_yaml_node_t *value = node->items [2 * i + 1];
        if (key->skip)
            continue;
        if (is_env && !s_valid_env_name (key->value)) {
            qn_yaml_node_error (ctx, key, "invalid environment variable name '%s' in task '%s'",
                                qn_yaml_echo (key->value, echo), qn_yaml_echo (task->name, echo2));
            continue;
        }
        if (is_env && strncmp (key->value, "QANAT_", 6) == 0) {
            qn_yaml_node_error (ctx, key, "environment variable '%s' is reserved for qanat",
                                qn_yaml_echo (key->value, echo));
            continue;
        }
        if (!is_env && (key->value [0] == '\0' || strlen (key->value) > QN_YAML_NAME_MAX)) {
            qn_yaml_node_error (ctx, key, "invalid label name '%s' in 'on'",
                                qn_yaml_echo (key->value, echo));
            continue;
        }
        //  An empty env value is fine ("FOO:" sets FOO to ""); a label
        //  must say what it selects
        if (value->kind != QN_YAML_SCALAR || (!is_env && qn_yaml_is_null (value))) {
            qn_yaml_node_error (ctx, value, "expected a string or number for '%s' in '%s'",
                                qn_yaml_echo (key->value, echo), field);
            continue;
        }
        kv [used].key = qn_yaml_strdup (ctx, key->value);
        kv [used].value = qn_yaml_strdup (ctx, qn_yaml_is_null (value)? "": value->value);
        used++;
    }
    *pairs_p = kv;
    *count_p = used;
}

static void
s_parse_resources (qn_yaml_ctx_t *ctx, qn_task_t *task, qn_yaml_node_t *node)
{
    if (qn_yaml_is_null (node))
        return;
    if (node->kind != QN_YAML_MAPPING) {
        qn_yaml_node_error (ctx, node,
                            "expected a mapping with cpus, memory, gpus for 'resources'");
        return;
    }
    qn_yaml_echo_t echo;
    char where [QN_YAML_ECHO_MAX + 64];
    snprintf (where, sizeof (where), " in resources of task '%s'", qn_yaml_echo (task->name, echo));
    qn_yaml_check_keys (ctx, node, s_resource_keys, where);
    qn_yaml_node_t *value;
    if ((value = qn_yaml_map_get (node, "cpus", NULL)))
        qn_yaml_uint32 (ctx, value, "cpus", &task->cpus);
    if ((value = qn_yaml_map_get (node, "gpus", NULL)))
        qn_yaml_uint32 (ctx, value, "gpus", &task->gpus);
    if ((value = qn_yaml_map_get (node, "memory", NULL)))
        qn_yaml_memory (ctx, value, &task->memory_mb);
}

static void
s_parse_metrics (qn_yaml_ctx_t *ctx, qn_task_t *task, qn_yaml_node_t *node)
{
    qn_yaml_node_t **items;
    size_t count;
    qn_yaml_scalar_list (ctx, node, "a metric name or a list of metric names for 'metrics'",
                         &items, &count);
    if (count > 0) {
        task->metrics = (char **) calloc (count, sizeof (char *));
        if (!task->metrics)
            ctx->oom = true;
    }
    for (size_t i = 0; task->metrics && i < count; i++) {
        qn_yaml_echo_t echo;
        if (!s_valid_metric_name (items [i]->value)) {
            qn_yaml_node_error (ctx, items [i], "invalid metric name '%s' in 'metrics'",
                                qn_yaml_echo (items [i]->value, echo));
            continue;
        }
        task->metrics [task->metrics_count++] = qn_yaml_strdup (ctx, items [i]->value);
    }
    free (items);
}

static void
s_parse_check (qn_yaml_ctx_t *ctx, qn_task_t *task, qn_yaml_node_t *item)
{
    qn_yaml_echo_t echo;
    qn_yaml_node_t *expr = item;
    qn_severity_t severity = QN_SEVERITY_ERROR;
    bool ok = true;

    if (item->kind == QN_YAML_MAPPING) {
        char where [QN_YAML_ECHO_MAX + 64];
        snprintf (where, sizeof (where), " in a check of task '%s'",
                  qn_yaml_echo (task->name, echo));
        qn_yaml_check_keys (ctx, item, s_check_entry_keys, where);
        expr = qn_yaml_map_get (item, "expr", NULL);
        qn_yaml_node_t *sev = qn_yaml_map_get (item, "severity", NULL);
        if (sev) {
            if (sev->kind == QN_YAML_SCALAR && strcmp (sev->value, "error") == 0)
                severity = QN_SEVERITY_ERROR;
            else
            if (sev->kind == QN_YAML_SCALAR && strcmp (sev->value, "warning") == 0)
                severity = QN_SEVERITY_WARNING;
            else {
                if (sev->kind == QN_YAML_SCALAR)
                    qn_yaml_node_error (ctx, sev, "invalid severity '%s' (use error or warning)",
                                        qn_yaml_echo (sev->value, echo));
                else
                    qn_yaml_node_error (ctx, sev, "expected error or warning for 'severity'");
                ok = false;
            }
        }
        if (!expr) {
            qn_yaml_node_error (ctx, item, "check in task '%s' has no 'expr'",
                                qn_yaml_echo (task->name, echo));
            return;
        }
    }
    else
    if (item->kind != QN_YAML_SCALAR) {
        qn_yaml_node_error (ctx, item,
                            "expected a check expression or a mapping with 'expr' and 'severity'");
        return;
    }
    if (expr->kind != QN_YAML_SCALAR || qn_yaml_is_null (expr)) {
        qn_yaml_node_error (ctx, expr, "expected a check expression for 'expr'");
        return;
    }
    char *message = NULL;
    size_t offset = 0;
    qn_check_t *check = qn_check_new (expr->value, &message, &offset);
    if (!check) {
        qn_yaml_node_error (ctx, expr, "invalid check '%s': %s (at character %zu)",
                            qn_yaml_echo (expr->value, echo), message? message: "parse error",
                            offset + 1);
        free (message);
        return;
    }
    if (!ok) {
        qn_check_destroy (&check);
        return;
    }
    qn_task_check_t *entry = &task->checks [task->checks_count++];
    entry->check = check;
    entry->severity = severity;
}

static void
s_parse_checks (qn_yaml_ctx_t *ctx, qn_task_t *task, qn_yaml_node_t *node)
{
    if (qn_yaml_is_null (node))
        return;
    if (node->kind == QN_YAML_MAPPING) {
        qn_yaml_node_error (ctx, node, "expected a list of checks for 'checks'");
        return;
    }
    size_t count = node->kind == QN_YAML_SCALAR? 1: node->count;
    if (count == 0)
        return;
    task->checks = (qn_task_check_t *) calloc (count, sizeof (qn_task_check_t));
    if (!task->checks) {
        ctx->oom = true;
        return;
    }
    if (node->kind == QN_YAML_SCALAR)
        s_parse_check (ctx, task, node);
    else
        for (size_t i = 0; i < node->count; i++)
            s_parse_check (ctx, task, node->items [i]);
}

//  retry_on: which endings a retry answers, as a list of their names.
static void
s_parse_retry_on (qn_yaml_ctx_t *ctx, qn_task_t *task, qn_yaml_node_t *node)
{
    static const char *names [] = { "exit", "timeout", "agent_lost", "check", "output", NULL };
    static const unsigned flags [] = { QN_RETRY_ON_EXIT, QN_RETRY_ON_TIMEOUT,
                                       QN_RETRY_ON_AGENT_LOST, QN_RETRY_ON_CHECK,
                                       QN_RETRY_ON_OUTPUT };
    qn_yaml_node_t **items;
    size_t count;
    if (qn_yaml_scalar_list (ctx, node,
                             "a list of exit, timeout, agent_lost, check, output for 'retry_on'",
                             &items, &count))
        count = 0;
    task->retry_on = 0;
    for (size_t i = 0; i < count; i++) {
        size_t n = 0;
        while (names [n] && strcmp (names [n], items [i]->value))
            n++;
        if (names [n])
            task->retry_on |= flags [n];
        else {
            qn_yaml_echo_t echo;
            const char *guess = qn_yaml_closest (items [i]->value, names, n);
            if (guess)
                qn_yaml_node_error (ctx, items [i],
                                    "unknown retry_on value '%s' (did you mean '%s'?)",
                                    qn_yaml_echo (items [i]->value, echo), guess);
            else
                qn_yaml_node_error (ctx, items [i],
                                    "unknown retry_on value '%s' (use exit, timeout, "
                                    "agent_lost, check, output)",
                                    qn_yaml_echo (items [i]->value, echo));
        }
    }
    free (items);
}

//  ---------------------------------------------------------------------
//  Artifacts: outputs, inputs, cache

//  A path inside the working dir: relative, no "..", no empty or "."
//  components, printable.  Symlinks are the agent's to check at run time.
static bool
s_valid_rel_path (const char *path)
{
    size_t len = strlen (path);
    if (len == 0 || len > 1024 || path [0] == '/')
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char) path [i] < 0x20 || path [i] == 0x7f || path [i] == '\\')
            return false;
    const char *component = path;
    while (*component) {
        const char *end = strchr (component, '/');
        size_t size = end? (size_t) (end - component): strlen (component);
        //  A trailing slash ("data/") is fine; an empty middle one is not
        if ((size == 0 && end) || (size == 1 && component [0] == '.')
        ||  (size == 2 && component [0] == '.' && component [1] == '.'))
            return size == 0 && end && end [1] == '\0' && end != path;
        if (!end)
            break;
        component = end + 1;
    }
    return true;
}

//  Names of outputs and inputs become QANAT_INPUT_<NAME>: the task-name
//  alphabet, without '.', which separates TASK.OUTPUT.
static bool
s_valid_artifact_name (const char *name)
{
    return qn_yaml_name_valid (name) && !strchr (name, '.');
}

static void
s_parse_outputs (qn_yaml_ctx_t *ctx, qn_task_t *task, qn_yaml_node_t *node)
{
    qn_yaml_echo_t echo;
    if (qn_yaml_is_null (node))
        return;
    if (node->kind != QN_YAML_MAPPING) {
        qn_yaml_node_error (ctx, node, "expected a mapping of output names to paths for 'outputs'");
        return;
    }
    size_t pairs = node->count / 2;
    if (pairs > S_MAX_ARTIFACTS) {
        qn_yaml_node_error (ctx, node, "too many outputs: %zu (limit %d)", pairs, S_MAX_ARTIFACTS);
        return;
    }
    task->outputs = (qn_output_t *) calloc (pairs? pairs: 1, sizeof (qn_output_t));
    if (!task->outputs) {
        ctx->oom = true;
        return;
    }
    for (size_t i = 0; i < pairs; i++) {
        qn_yaml_node_t *key = node->items [2 * i], *value = node->items [2 * i + 1];
        if (key->skip)
            continue;
        if (!s_valid_artifact_name (key->value)) {
            qn_yaml_node_error (ctx, key,
                                "invalid output name '%s' (use letters, digits, '_', '-')",
                                qn_yaml_echo (key->value, echo));
            continue;
        }
        const char *path = NULL;
        bool is_value = false;
        qn_yaml_node_t *at = value;
        if (value->kind == QN_YAML_MAPPING) {
            qn_yaml_check_keys (ctx, value, s_output_keys, " in an output");
            qn_yaml_node_t *path_node = qn_yaml_map_get (value, "path", NULL);
            qn_yaml_node_t *value_node = qn_yaml_map_get (value, "value", NULL);
            if (value_node) {
                if (value_node->kind != QN_YAML_SCALAR
                ||  (strcmp (value_node->value, "true") != 0
                     && strcmp (value_node->value, "false") != 0)) {
                    qn_yaml_node_error (ctx, value_node, "expected true or false for 'value'");
                    continue;
                }
                is_value = strcmp (value_node->value, "true") == 0;
            }
            if (path_node) {
                at = path_node;
                path = path_node->kind == QN_YAML_SCALAR? path_node->value: NULL;
                if (!path) {
                    qn_yaml_node_error (ctx, path_node, "expected a path for 'path'");
                    continue;
                }
            }
            if (is_value && path) {
                qn_yaml_node_error (ctx, value, "output '%s' is either a value or a path, not both",
                                    qn_yaml_echo (key->value, echo));
                continue;
            }
            if (!is_value && !path) {
                qn_yaml_node_error (ctx, value, "output '%s' needs a 'path' (or 'value: true')",
                                    qn_yaml_echo (key->value, echo));
                continue;
            }
        }
        else
        if (value->kind == QN_YAML_SCALAR && !qn_yaml_is_null (value))
            path = value->value;
        else {
            qn_yaml_node_error (ctx, value, "expected a path or a mapping for output '%s'",
                                qn_yaml_echo (key->value, echo));
            continue;
        }
        if (path && !s_valid_rel_path (path)) {
            qn_yaml_node_error (ctx, at, "output '%s': '%s' is not a path inside the working "
                                "directory (relative, no '..')", qn_yaml_echo (key->value, echo),
                                path);
            continue;
        }
        if (qn_task_output_index (task, key->value) >= 0) {
            qn_yaml_node_error (ctx, key, "output '%s' is declared twice",
                                qn_yaml_echo (key->value, echo));
            continue;
        }
        qn_output_t *output = &task->outputs [task->output_count++];
        output->name = qn_yaml_strdup (ctx, key->value);
        output->path = path? qn_yaml_strdup (ctx, path): NULL;
        output->value = is_value;
    }
}

static void
s_parse_inputs (qn_yaml_ctx_t *ctx, qn_task_t *task, qn_yaml_node_t *node)
{
    qn_yaml_echo_t echo;
    if (qn_yaml_is_null (node))
        return;
    if (node->kind != QN_YAML_MAPPING) {
        qn_yaml_node_error (ctx, node,
                            "expected a mapping of input names to TASK.OUTPUT for 'inputs'");
        return;
    }
    size_t pairs = node->count / 2;
    if (pairs > S_MAX_ARTIFACTS) {
        qn_yaml_node_error (ctx, node, "too many inputs: %zu (limit %d)", pairs, S_MAX_ARTIFACTS);
        return;
    }
    task->inputs = (qn_input_t *) calloc (pairs? pairs: 1, sizeof (qn_input_t));
    if (!task->inputs) {
        ctx->oom = true;
        return;
    }
    for (size_t i = 0; i < pairs; i++) {
        qn_yaml_node_t *key = node->items [2 * i], *value = node->items [2 * i + 1];
        if (key->skip)
            continue;
        if (!s_valid_artifact_name (key->value)) {
            qn_yaml_node_error (ctx, key, "invalid input name '%s' (use letters, digits, '_', '-')",
                                qn_yaml_echo (key->value, echo));
            continue;
        }
        qn_yaml_node_t *from = value, *param = NULL, *path = NULL;
        if (value->kind == QN_YAML_MAPPING) {
            qn_yaml_check_keys (ctx, value, s_input_keys, " in an input");
            from = qn_yaml_map_get (value, "from", NULL);
            param = qn_yaml_map_get (value, "param", NULL);
            path = qn_yaml_map_get (value, "path", NULL);
            if (from && param) {
                qn_yaml_node_error (ctx, value, "input '%s' comes either 'from' a task or from a "
                                    "'param', not both", qn_yaml_echo (key->value, echo));
                continue;
            }
            if (!from && !param) {
                qn_yaml_node_error (ctx, value, "input '%s' needs 'from: TASK.OUTPUT' or "
                                    "'param: NAME'", qn_yaml_echo (key->value, echo));
                continue;
            }
        }
        const char *dot = NULL;
        if (param) {
            //  Whether it names an artifact parameter is checked once the
            //  whole file is read (s_resolve_inputs)
            if (param->kind != QN_YAML_SCALAR || qn_yaml_is_null (param)) {
                qn_yaml_node_error (ctx, param,
                                    "expected a parameter name for 'param' of input '%s'",
                                    qn_yaml_echo (key->value, echo));
                continue;
            }
        }
        else {
            dot = from->kind == QN_YAML_SCALAR && from->value? strchr (from->value, '.'): NULL;
            if (!dot || dot == from->value || dot [1] == '\0' || strchr (dot + 1, '.')) {
                qn_yaml_node_error (ctx, from, "expected TASK.OUTPUT for input '%s'",
                                    qn_yaml_echo (key->value, echo));
                continue;
            }
        }
        if (path && (path->kind != QN_YAML_SCALAR || qn_yaml_is_null (path)
                     || !s_valid_rel_path (path->value))) {
            qn_yaml_node_error (ctx, path, "input '%s': not a path inside the working directory "
                                "(relative, no '..')", qn_yaml_echo (key->value, echo));
            continue;
        }
        qn_input_t *input = &task->inputs [task->input_count++];
        input->name = qn_yaml_strdup (ctx, key->value);
        if (param)
            input->param = qn_yaml_strdup (ctx, param->value);
        else {
            input->task = (char *) malloc ((size_t) (dot - from->value) + 1);
            if (input->task) {
                memcpy (input->task, from->value, (size_t) (dot - from->value));
                input->task [dot - from->value] = '\0';
            }
            else
                ctx->oom = true;
            input->output = qn_yaml_strdup (ctx, dot + 1);
        }
        input->path = qn_yaml_strdup (ctx, path? path->value: key->value);
        input->line = param? param->line: from->line;
        input->col = param? param->col: from->col;
        input->task_index = SIZE_MAX;
    }
}



//  A string without control characters, or NULL after saying why
static const char *
s_plain_string (qn_yaml_ctx_t *ctx, qn_yaml_node_t *node, const char *what)
{
    if (node->kind != QN_YAML_SCALAR || qn_yaml_is_null (node) || !*node->value) {
        qn_yaml_node_error (ctx, node, "expected a string for '%s'", what);
        return NULL;
    }
    for (const char *c = node->value; *c; c++)
        if ((unsigned char) *c < 0x20 || *c == 0x7f) {
            qn_yaml_node_error (ctx, node, "'%s' contains a control character", what);
            return NULL;
        }
    return node->value;
}

//  A task's `code: none` (no code in its working directory) and
//  `workdir: /shared/path` (it runs there, in place)
static void
s_parse_code (qn_yaml_ctx_t *ctx, qn_task_t *task, qn_yaml_node_t *value)
{
    qn_yaml_node_t *field = qn_yaml_map_get (value, "code", NULL);
    const char *text = field? s_plain_string (ctx, field, "code"): NULL;
    if (text && strcmp (text, "none") != 0)
        qn_yaml_node_error (ctx, field, "a task's 'code' can only be 'none' (the workflow's "
                            "top-level 'code' names the folder)");
    else
    if (text)
        task->no_code = true;
    field = qn_yaml_map_get (value, "workdir", NULL);
    text = field? s_plain_string (ctx, field, "workdir"): NULL;
    if (text && (text [0] != '/' || strstr (text, "/../") || strcmp (text + strlen (text) - 3,
                                                                          "/..") == 0))
        qn_yaml_node_error (ctx, field, "'workdir' must be an absolute path without '..'");
    else
    if (text && task->input_count)
        qn_yaml_node_error (ctx, field, "a task with 'workdir' runs in place: it cannot "
                            "also have 'inputs'");
    else
    if (text)
        task->workdir = qn_yaml_strdup (ctx, text);
}

static void
s_parse_task (qn_yaml_ctx_t *ctx, qn_workflow_t *self, qn_task_t *task,
              qn_wf_graph_task_t *extra, qn_yaml_node_t *key, qn_yaml_node_t *value)
{
    qn_yaml_echo_t echo;
    task->line = key->line;
    task->col = key->col;
    task->name = qn_yaml_strdup (ctx, key->value);
    if (!task->name)
        return;
    extra->valid_name = qn_yaml_name_valid (key->value);
    if (!extra->valid_name)
        qn_yaml_node_error (ctx, key, "invalid task name '%s' (use letters, digits, '_', '.', '-', "
                            "at most %d characters, no '..')",
                            qn_yaml_echo (key->value, echo), QN_YAML_NAME_MAX);

    if (qn_yaml_is_null (value)) {
        qn_yaml_node_error (ctx, key, "task '%s' has no 'run' command",
                            qn_yaml_echo (key->value, echo));
        return;
    }
    if (value->kind != QN_YAML_MAPPING) {
        qn_yaml_node_error (ctx, value, "expected a mapping for task '%s'",
                            qn_yaml_echo (key->value, echo));
        return;
    }
    char where [QN_YAML_ECHO_MAX + 32];
    snprintf (where, sizeof (where), " in task '%s'", qn_yaml_echo (key->value, echo));
    qn_yaml_check_keys (ctx, value, s_task_keys, where);

    qn_yaml_node_t *field, *run = NULL;
    if ((field = qn_yaml_map_get (value, "run", NULL))) {
        s_parse_run (ctx, task, field);
        run = field;
    }

    if ((field = qn_yaml_map_get (value, "needs", NULL))) {
        size_t count;
        qn_yaml_scalar_list (ctx, field, "a task name or a list of task names for 'needs'",
                             &extra->need_nodes, &count);
        if (count > 0) {
            task->needs = (char **) calloc (count, sizeof (char *));
            task->need_index = (size_t *) calloc (count, sizeof (size_t));
            if (!task->needs || !task->need_index)
                ctx->oom = true;
            else {
                for (size_t i = 0; i < count; i++)
                    task->needs [i] = qn_yaml_strdup (ctx, extra->need_nodes [i]->value);
                task->needs_count = count;
            }
        }
    }
    if ((field = qn_yaml_map_get (value, "env", NULL)))
        s_parse_pairs (ctx, task, field, true, &task->env, &task->env_count);
    if ((field = qn_yaml_map_get (value, "on", NULL)))
        s_parse_pairs (ctx, task, field, false, &task->selector, &task->selector_count);
    if ((field = qn_yaml_map_get (value, "resources", NULL)))
        s_parse_resources (ctx, task, field);
    if ((field = qn_yaml_map_get (value, "retries", NULL)))
        qn_yaml_uint32 (ctx, field, "retries", &task->retries);
    task->retry_delay_s = 1;
    task->retry_max_delay_s = 300;
    task->retry_on = QN_RETRY_ON_ALL;
    if ((field = qn_yaml_map_get (value, "retry_delay", NULL)))
        qn_yaml_duration (ctx, field, "retry_delay", &task->retry_delay_s);
    if ((field = qn_yaml_map_get (value, "retry_max_delay", NULL)))
        qn_yaml_duration (ctx, field, "retry_max_delay", &task->retry_max_delay_s);
    if ((field = qn_yaml_map_get (value, "retry_on", NULL)))
        s_parse_retry_on (ctx, task, field);
    if ((field = qn_yaml_map_get (value, "timeout", NULL)))
        qn_yaml_duration (ctx, field, "timeout", &task->timeout_s);
    if ((field = qn_yaml_map_get (value, "metrics", NULL)))
        s_parse_metrics (ctx, task, field);
    if ((field = qn_yaml_map_get (value, "checks", NULL)))
        s_parse_checks (ctx, task, field);
    qn_wf_backend_parse (ctx, task, value);
    //  After the backend: some run no command of ours
    if (!run && !qn_wf_backend_runs_without_command (task->backend))
        qn_yaml_node_error (ctx, key, "task '%s' has no 'run' command",
                            qn_yaml_echo (key->value, echo));
    if ((field = qn_yaml_map_get (value, "outputs", NULL)))
        s_parse_outputs (ctx, task, field);
    if ((field = qn_yaml_map_get (value, "inputs", NULL)))
        s_parse_inputs (ctx, task, field);
    if ((field = qn_yaml_map_get (value, "cache", NULL))) {
        if (field->kind != QN_YAML_SCALAR || (strcmp (field->value, "true") != 0
                                        && strcmp (field->value, "false") != 0))
            qn_yaml_node_error (ctx, field, "expected true or false for 'cache'");
        else
            task->cache = strcmp (field->value, "true") == 0;
    }
    s_parse_code (ctx, task, value);
    qn_wf_limits_parse_task (ctx, value, &self->limits, task);
    qn_wf_warm_parse_task (ctx, value, task);
    //  After env: a secret in a shell string adds to it
    if (run)
        qn_wf_command_check (ctx, task, run, self->params, self->param_count);
}

static void
s_parse_store (qn_yaml_ctx_t *ctx, qn_workflow_t *self, qn_yaml_node_t *node)
{
    qn_yaml_echo_t echo;
    if (qn_yaml_is_null (node))
        return;
    if (node->kind != QN_YAML_MAPPING) {
        qn_yaml_node_error (ctx, node,
                            "expected a mapping with store, bucket, ... for 'artifacts'");
        return;
    }
    qn_yaml_check_keys (ctx, node, s_store_keys, " in 'artifacts'");
    char **fields [] = { &self->store.kind, &self->store.bucket, &self->store.prefix,
                         &self->store.endpoint, &self->store.region };
    for (size_t f = 0; f < 5; f++) {
        qn_yaml_node_t *value = qn_yaml_map_get (node, s_store_keys [f], NULL);
        if (!value)
            continue;
        if (value->kind != QN_YAML_SCALAR || qn_yaml_is_null (value) || strlen (value->value) > 1024
        ||  !qn_wf_backend_plain (value->value, true)) {
            qn_yaml_node_error (ctx, value, "expected a string for '%s' in 'artifacts'",
                                s_store_keys [f]);
            continue;
        }
        *fields [f] = qn_yaml_strdup (ctx, value->value);
    }
    qn_yaml_node_t *value = qn_yaml_map_get (node, "path_style", NULL);
    if (value) {
        if (value->kind != QN_YAML_SCALAR || (strcmp (value->value, "true") != 0
                                        && strcmp (value->value, "false") != 0))
            qn_yaml_node_error (ctx, value, "expected true or false for 'path_style'");
        else
            self->store.path_style = strcmp (value->value, "true") == 0;
    }
    if (self->store.kind && strcmp (self->store.kind, "coordinator") != 0
    &&  strcmp (self->store.kind, "s3") != 0) {
        qn_yaml_node_error (ctx, qn_yaml_map_get (node, "store", NULL),
                            "unknown artifact store '%s' (use coordinator or s3)",
                            qn_yaml_echo (self->store.kind, echo));
    }
    else
    if (self->store.kind && strcmp (self->store.kind, "s3") == 0 && !self->store.bucket)
        qn_yaml_node_error (ctx, node, "an s3 artifact store needs a 'bucket'");
}

static void
s_parse_workflow (qn_yaml_ctx_t *ctx, qn_workflow_t *self, qn_yaml_node_t *root)
{
    qn_yaml_echo_t echo;
    if (!root || qn_yaml_is_null (root)) {
        qn_yaml_error (ctx, 1, 1, "the workflow file is empty (needs 'name' and 'tasks')");
        return;
    }
    if (root->kind != QN_YAML_MAPPING) {
        qn_yaml_node_error (ctx, root,
                            "expected a mapping with 'name' and 'tasks' at the top level");
        return;
    }
    qn_yaml_check_keys (ctx, root, s_top_keys, "");

    qn_yaml_node_t *key = NULL;
    qn_yaml_node_t *node = qn_yaml_map_get (root, "name", NULL);
    if (!node)
        qn_yaml_node_error (ctx, root, "missing required key 'name'");
    else
    if (node->kind != QN_YAML_SCALAR || qn_yaml_is_null (node))
        qn_yaml_node_error (ctx, node, "expected a workflow name for 'name'");
    else
    if (!qn_yaml_name_valid (node->value))
        qn_yaml_node_error (ctx, node, "invalid workflow name '%s' (use letters, digits, '_', '.', "
                            "'-', at most %d characters, no '..')",
                            qn_yaml_echo (node->value, echo),
                            QN_YAML_NAME_MAX);
    else
        self->name = qn_yaml_strdup (ctx, node->value);

    node = qn_yaml_map_get (root, "description", NULL);
    if (node && node->kind != QN_YAML_SCALAR)
        qn_yaml_node_error (ctx, node, "expected a string for 'description'");
    else
    if (node && !qn_yaml_is_null (node))
        self->description = qn_yaml_strdup (ctx, node->value);

    node = qn_yaml_map_get (root, "params", NULL);
    if (node)
        qn_params_parse (ctx, node, &self->params, &self->param_count);
    self->schedule = qn_wf_schedule_parse (ctx, root, self->params, self->param_count);
    qn_wf_limits_parse (ctx, root, &self->limits);
    node = qn_yaml_map_get (root, "keep_runs", NULL);
    if (node) {
        qn_yaml_uint32 (ctx, node, "keep_runs", &self->keep_runs);
        if (self->keep_runs == 0 && node->kind == QN_YAML_SCALAR)
            qn_yaml_node_error (ctx, node, "keep_runs must be at least 1");
    }
    node = qn_yaml_map_get (root, "artifacts", NULL);
    if (node)
        s_parse_store (ctx, self, node);
    node = qn_yaml_map_get (root, "code", NULL);
    const char *code = node? s_plain_string (ctx, node, "code"): NULL;
    if (code)
        self->code = qn_yaml_strdup (ctx, code);
    self->notify = qn_wf_notify_parse (ctx, qn_yaml_map_get (root, "notify", NULL));

    node = qn_yaml_map_get (root, "tasks", &key);
    if (!node) {
        qn_yaml_node_error (ctx, root, "missing required key 'tasks'");
        return;
    }
    if (qn_yaml_is_null (node)) {
        qn_yaml_node_error (ctx, key, "'tasks' is empty: a workflow needs at least one task");
        return;
    }
    if (node->kind != QN_YAML_MAPPING) {
        qn_yaml_node_error (ctx, node, "expected a mapping of task names to tasks for 'tasks'");
        return;
    }
    size_t pairs = node->count / 2;
    if (pairs == 0) {
        qn_yaml_node_error (ctx, node, "'tasks' is empty: a workflow needs at least one task");
        return;
    }
    //  A task with a matrix becomes one task per combination
    qn_wf_matrix_t *matrices = (qn_wf_matrix_t *) calloc (pairs, sizeof (qn_wf_matrix_t));
    size_t total = 0;
    for (size_t i = 0; matrices && i < pairs; i++)
        if (!node->items [2 * i]->skip) {
            size_t n = qn_wf_matrix_parse (ctx, node->items [2 * i], node->items [2 * i + 1],
                                           &matrices [i]);
            total += n? n: 1;
        }
    if (total > S_MAX_TASKS)
        qn_yaml_node_error (ctx, key, "too many tasks: %zu (limit %d)", total, S_MAX_TASKS);
    self->tasks = total <= S_MAX_TASKS? (qn_task_t *) calloc (total + 1, sizeof (qn_task_t)): NULL;
    qn_wf_graph_task_t *extra = self->tasks? (qn_wf_graph_task_t *) calloc (total + 1,
                                             sizeof (qn_wf_graph_task_t)): NULL;
    if (!matrices || !self->tasks || !extra) {
        for (size_t i = 0; matrices && i < pairs; i++)
            qn_wf_matrix_free (&matrices [i]);
        free (matrices);
        free (extra);
        ctx->oom |= total <= S_MAX_TASKS;
        return;
    }
    bool stop = false;
    for (size_t i = 0; i < pairs && !stop; i++) {
        qn_yaml_node_t *task_key = node->items [2 * i];
        if (task_key->skip)
            continue;
        size_t combinations = matrices [i].combinations? matrices [i].combinations: 1;
        size_t errors = ctx->count;
        //  Every combination has the same errors: the first says them
        for (size_t c = 0; c < combinations && ctx->count == errors && !stop; c++) {
            size_t t = self->task_count++;
            qn_wf_matrix_values (ctx, &matrices [i], c, &self->tasks [t]);
            s_parse_task (ctx, self, &self->tasks [t], &extra [t], task_key,
                          node->items [2 * i + 1]);
            if (!self->tasks [t].name) {
                qn_kv_free (self->tasks [t].matrix, self->tasks [t].matrix_count);
                memset (&self->tasks [t], 0, sizeof (qn_task_t));
                self->task_count--;
                stop = true;
            }
            else
                qn_wf_matrix_finish (ctx, &self->tasks [t]);
        }
    }
    for (size_t i = 0; i < pairs; i++)
        qn_wf_matrix_free (&matrices [i]);
    free (matrices);
    qn_wf_matrix_expand_needs (ctx, self->tasks, self->task_count, extra);
    self->by_name = qn_wf_graph_index (self->tasks, self->task_count);
    if (!self->by_name)
        ctx->oom = true;
    else
    if (!ctx->oom) {
        qn_wf_graph_t graph = { self->tasks, self->task_count, self->by_name,
                                self->params, self->param_count };
        qn_wf_graph_link (ctx, &graph, extra);
    }
    qn_wf_graph_tasks_free (extra, total + 1);
}


//  ---------------------------------------------------------------------
//  Public API

qn_workflow_t *
qn_workflow_parse (const char *filename, const char *text, size_t len, char **error_p)
{
    if (error_p)
        *error_p = NULL;
    qn_yaml_ctx_t ctx = { .filename = filename? filename: "<input>" };
    if (!text)
        len = 0;

    qn_workflow_t *self = NULL;
    if (len > S_MAX_INPUT)
        qn_yaml_error (&ctx, 1, 1, "file is larger than 1 MiB");
    else {
        bool fatal = false;
        qn_yaml_node_t *root = qn_yaml_build (&ctx, text? text: "", len, &fatal);
        if (!fatal) {
            self = (qn_workflow_t *) calloc (1, sizeof (qn_workflow_t));
            if (!self)
                ctx.oom = true;
            else {
                //  Duplicates first: the walk below skips marked keys
                if (root)
                    qn_yaml_mark_duplicates (&ctx, root, "tasks", "task");
                s_parse_workflow (&ctx, self, root);
            }
        }
        qn_yaml_node_free (&root);
    }
    if (ctx.count > 0 || ctx.oom) {
        qn_workflow_destroy (&self);
        char *errors = qn_yaml_errors_take (&ctx);
        if (error_p)
            *error_p = errors;
        else
            free (errors);
        return NULL;
    }
    free (ctx.errors);
    return self;
}

qn_workflow_t *
qn_workflow_load (const char *path, char **error_p)
{
    assert (path);
    if (error_p)
        *error_p = NULL;
    int fd = open (path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (error_p && asprintf (error_p, "%s: %s", path, strerror (errno)) < 0)
            *error_p = NULL;
        return NULL;
    }
    //  Read one byte past the limit to tell "exactly 1 MiB" from "more"
    char *text = (char *) malloc (S_MAX_INPUT + 1);
    size_t len = 0;
    int err = 0;
    if (!text)
        err = ENOMEM;
    while (text && len <= S_MAX_INPUT) {
        ssize_t got = read (fd, text + len, S_MAX_INPUT + 1 - len);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            err = errno;
            break;
        }
        if (got == 0)
            break;
        len += (size_t) got;
    }
    close (fd);
    qn_workflow_t *self = NULL;
    if (err) {
        if (error_p && asprintf (error_p, "%s: %s", path, strerror (err)) < 0)
            *error_p = NULL;
    }
    else
        //  Over the limit too: the parser refuses it in the words it has
        //  for a coordinator, so the CLI and qanatd say the same
        self = qn_workflow_parse (path, text, len, error_p);
    free (text);
    return self;
}

const char *
qn_workflow_name (qn_workflow_t *self)
{
    assert (self);
    return self->name;
}

const char *
qn_workflow_description (qn_workflow_t *self)
{
    assert (self);
    return self->description;
}

size_t
qn_workflow_task_count (qn_workflow_t *self)
{
    assert (self);
    return self->task_count;
}

const qn_task_t *
qn_workflow_task (qn_workflow_t *self, size_t index)
{
    assert (self);
    return index < self->task_count? &self->tasks [index]: NULL;
}

int
qn_workflow_task_index (qn_workflow_t *self, const char *name)
{
    assert (self);
    if (!name)
        return -1;
    return qn_wf_graph_lookup (self->tasks, self->by_name, self->task_count, name);
}

size_t
qn_workflow_param_count (qn_workflow_t *self)
{
    assert (self);
    return self->param_count;
}

const qn_param_t *
qn_workflow_param (qn_workflow_t *self, size_t index)
{
    assert (self);
    return index < self->param_count? &self->params [index]: NULL;
}

//  A run's parameter values: see qn_params_resolve
qn_kv_t *
qn_workflow_resolve_params (qn_workflow_t *self, const qn_kv_t *overrides, size_t count,
                            char **error_p)
{
    assert (self);
    return qn_params_resolve (self->params, self->param_count, overrides, count, error_p);
}

uint32_t
qn_workflow_keep_runs (qn_workflow_t *self)
{
    assert (self);
    return self->keep_runs;
}

const char *
qn_workflow_code (qn_workflow_t *self)
{
    assert (self);
    return self->code;
}

const qn_wf_schedule_t *
qn_workflow_schedule (qn_workflow_t *self)
{
    return self->schedule;
}

const qn_wf_limits_t *
qn_workflow_limits (qn_workflow_t *self)
{
    return &self->limits;
}

const qn_wf_notify_t *
qn_workflow_notify (qn_workflow_t *self)
{
    assert (self);
    return self->notify;
}

const qn_artifact_store_t *
qn_workflow_artifact_store (qn_workflow_t *self)
{
    assert (self);
    return &self->store;
}

int
qn_task_output_index (const qn_task_t *task, const char *name)
{
    for (size_t i = 0; task && name && i < task->output_count; i++)
        if (task->outputs [i].name && strcmp (task->outputs [i].name, name) == 0)
            return (int) i;
    return -1;
}

