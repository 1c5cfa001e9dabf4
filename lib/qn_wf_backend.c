/*  qn_wf_backend - the backends a task may name and their options blocks,
    as one table.  See qn_wf_backend.h.
*/
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <ctype.h>
#include <string.h>
#include <jansson.h>

#include "qn_wf_backend.h"

#define S_JSON_MAX  (64 * 1024)

static void s_parse_sbatch_args (qn_yaml_ctx_t *ctx, qn_task_t *task, const char *block,
                                 qn_yaml_node_t *value);
static void s_parse_node_selector (qn_yaml_ctx_t *ctx, qn_task_t *task, const char *block,
                                   qn_yaml_node_t *value);
static void s_parse_tolerations (qn_yaml_ctx_t *ctx, qn_task_t *task, const char *block,
                                 qn_yaml_node_t *value);

//  ---------------------------------------------------------------------
//  The table: a backend is a row; its block's keys end with a NULL key

#define S_SCALAR(name)          { .key = name, .kind = QN_WF_OPT_SCALAR }
#define S_END                   { .key = NULL }

static const qn_wf_backend_key_t s_slurm_keys [] = {
    S_SCALAR ("partition"), S_SCALAR ("account"), S_SCALAR ("qos"),
    { .key = "sbatch_args", .kind = QN_WF_OPT_CUSTOM, .parse = s_parse_sbatch_args },
    S_END
};

static const qn_wf_backend_key_t s_kube_keys [] = {
    S_SCALAR ("image"), S_SCALAR ("namespace"),
    { .key = "node_selector", .kind = QN_WF_OPT_CUSTOM, .parse = s_parse_node_selector },
    { .key = "tolerations", .kind = QN_WF_OPT_CUSTOM, .parse = s_parse_tolerations },
    S_SCALAR ("service_account"),
    { .key = "image_pull_secrets", .kind = QN_WF_OPT_LIST, .option = "image_pull_secret" },
    S_END
};

//  Ray and Airflow: an engine's address, and mappings passed on as JSON

static bool
s_check_url (const char *text, char *why, size_t why_size)
{
    if (strncmp (text, "http://", 7) == 0 || strncmp (text, "https://", 8) == 0)
        return true;
    snprintf (why, why_size, "an http:// or https:// URL");
    return false;
}

//  The JSON text of a mapping, parsed; NULL with why when it is not one
static json_t *
s_mapping (const char *text, char *why, size_t why_size)
{
    json_t *value = json_loads (text, 0, NULL);
    if (json_is_object (value))
        return value;
    json_decref (value);
    snprintf (why, why_size, "a mapping");
    return NULL;
}

static bool
s_check_runtime_env (const char *text, char *why, size_t why_size)
{
    static const char *known [] = {
        "working_dir", "env_vars", "py_modules", "pip", "uv", "conda", "container",
        "image_uri", "excludes", "config", "java_jars", NULL
    };
    json_t *env = s_mapping (text, why, why_size);
    const char *key;
    json_t *value;
    bool ok = env != NULL;
    json_object_foreach (env, key, value) {
        size_t i = 0;
        while (known [i] && strcmp (known [i], key) != 0)
            i++;
        if (!known [i]) {
            snprintf (why, why_size, "unknown runtime_env field '%.40s'", key);
            ok = false;
            break;
        }
    }
    json_t *vars = json_object_get (env, "env_vars");
    json_object_foreach (vars, key, value)
        if (!json_is_string (value)) {
            snprintf (why, why_size, "env_vars values are strings");
            ok = false;
            break;
        }
    if (ok && vars && !json_is_object (vars)) {
        snprintf (why, why_size, "env_vars is a mapping");
        ok = false;
    }
    json_decref (env);
    return ok;
}

static bool
s_check_resources (const char *text, char *why, size_t why_size)
{
    json_t *resources = s_mapping (text, why, why_size);
    const char *key;
    json_t *value;
    bool ok = resources != NULL;
    json_object_foreach (resources, key, value)
        if (!json_is_number (value) || json_number_value (value) < 0) {
            snprintf (why, why_size, "amounts are numbers, 0 or more");
            ok = false;
            break;
        }
    json_decref (resources);
    return ok;
}

static bool
s_check_conf (const char *text, char *why, size_t why_size)
{
    json_t *conf = s_mapping (text, why, why_size);
    bool ok = conf && !json_object_get (conf, "qanat");
    if (conf && !ok)
        snprintf (why, why_size, "the key 'qanat' is qanat's own");
    json_decref (conf);
    return ok;
}

static bool
s_check_dag_id (const char *text, char *why, size_t why_size)
{
    size_t len = strlen (text);
    bool ok = len > 0 && len <= 100;
    for (const char *c = text; ok && *c; c++)
        ok = isalnum ((unsigned char) *c) || *c == '_' || *c == '.' || *c == '-';
    if (!ok)
        snprintf (why, why_size, "letters, digits, '_', '.', '-', at most 100");
    return ok;
}

static const qn_wf_backend_key_t s_ray_keys [] = {
    { .key = "address", .kind = QN_WF_OPT_SCALAR, .check = s_check_url },
    { .key = "runtime_env", .kind = QN_WF_OPT_JSON, .check = s_check_runtime_env },
    { .key = "entrypoint_resources", .kind = QN_WF_OPT_JSON, .check = s_check_resources },
    S_END
};

static const qn_wf_backend_key_t s_airflow_keys [] = {
    { .key = "url", .kind = QN_WF_OPT_SCALAR, .check = s_check_url },
    { .key = "dag_id", .kind = QN_WF_OPT_SCALAR, .check = s_check_dag_id, .required = true },
    { .key = "conf", .kind = QN_WF_OPT_JSON, .check = s_check_conf },
    { .key = "xcom_task", .kind = QN_WF_OPT_SCALAR, .check = s_check_dag_id },
    { .key = "xcom_key", .kind = QN_WF_OPT_SCALAR, .check = s_check_dag_id },
    S_END
};

//  A function's name, partial ARN or ARN (with its qualifier, if any)
static bool
s_lambda_function (const char *text, char *why, size_t why_size)
{
    size_t len = strlen (text);
    bool ok = len > 0 && len <= 170;
    for (const char *c = text; ok && *c; c++)
        ok = isalnum ((unsigned char) *c) || strchr ("-_:.$", *c);
    if (!ok)
        snprintf (why, why_size, "a function name, partial ARN or ARN: letters, digits, "
                  "'-', '_', ':', at most 170 characters");
    return ok;
}

static bool
s_lambda_qualifier (const char *text, char *why, size_t why_size)
{
    size_t len = strlen (text);
    bool ok = len > 0 && len <= 128;
    for (const char *c = text; ok && *c; c++)
        ok = isalnum ((unsigned char) *c) || strchr ("-_$", *c);
    if (!ok)
        snprintf (why, why_size, "a version number or an alias");
    return ok;
}

static bool
s_aws_region (const char *text, char *why, size_t why_size)
{
    size_t len = strlen (text);
    bool ok = len > 0 && len <= 32;
    for (const char *c = text; ok && *c; c++)
        ok = islower ((unsigned char) *c) || isdigit ((unsigned char) *c) || *c == '-';
    if (!ok)
        snprintf (why, why_size, "a region such as eu-west-1");
    return ok;
}

static const qn_wf_backend_key_t s_lambda_keys [] = {
    { .key = "function", .kind = QN_WF_OPT_SCALAR, .check = s_lambda_function,
      .required = true },
    { .key = "qualifier", .kind = QN_WF_OPT_SCALAR, .check = s_lambda_qualifier },
    { .key = "region", .kind = QN_WF_OPT_SCALAR, .check = s_aws_region },
    { .key = "payload", .kind = QN_WF_OPT_JSON },
    S_END
};

//  One task kind (python_file, package_name with entry_point, or
//  notebook_path) on one cluster (existing_cluster_id or new_cluster): the
//  agent checks the combination
static const qn_wf_backend_key_t s_databricks_keys [] = {
    S_SCALAR ("python_file"), S_SCALAR ("package_name"), S_SCALAR ("entry_point"),
    S_SCALAR ("notebook_path"), S_SCALAR ("existing_cluster_id"),
    { .key = "parameters", .kind = QN_WF_OPT_JSON },
    { .key = "new_cluster", .kind = QN_WF_OPT_JSON },
    { .key = "libraries", .kind = QN_WF_OPT_JSON },
    S_END
};

static const qn_wf_backend_t s_backends [] = {
    { .name = "local" },
    { .name = "slurm", .hint = "partition, account, qos, sbatch_args", .keys = s_slurm_keys },
    { .name = "kubernetes", .hint = "image, namespace, ...", .keys = s_kube_keys },
    { .name = "lambda", .hint = "function, qualifier, region, payload", .keys = s_lambda_keys,
      .no_command = true },
    { .name = "databricks", .hint = "python_file, notebook_path, new_cluster, ...",
      .keys = s_databricks_keys, .no_command = true },
    { .name = "ray", .hint = "address, runtime_env, entrypoint_resources", .keys = s_ray_keys },
    { .name = "airflow", .hint = "url, dag_id, conf, xcom_task, xcom_key", .keys = s_airflow_keys,
      .no_command = true },
    { .name = NULL }
};

static const char *s_toleration_keys [] = {
    "key", "operator", "value", "effect", "toleration_seconds", NULL
};


const qn_wf_backend_t *
qn_wf_backend_find (const char *name)
{
    for (const qn_wf_backend_t *backend = s_backends; name && backend->name; backend++)
        if (strcmp (backend->name, name) == 0)
            return backend;
    return NULL;
}

bool
qn_wf_backend_runs_without_command (const char *name)
{
    const qn_wf_backend_t *backend = name? qn_wf_backend_find (name): NULL;
    return backend && backend->no_command;
}

//  ---------------------------------------------------------------------
//  Options

void
qn_wf_backend_option_add (qn_yaml_ctx_t *ctx, qn_task_t *task, qn_yaml_node_t *at,
                          const char *key, const char *value)
{
    if (task->backend_option_count >= QN_WF_BACKEND_OPTIONS_MAX) {
        qn_yaml_node_error (ctx, at, "too many backend options (limit %d)",
                            QN_WF_BACKEND_OPTIONS_MAX);
        return;
    }
    qn_kv_t *grown = (qn_kv_t *) realloc (task->backend_options,
                                          (task->backend_option_count + 1) * sizeof (qn_kv_t));
    if (!grown) {
        ctx->oom = true;
        return;
    }
    task->backend_options = grown;
    grown [task->backend_option_count].key = qn_yaml_strdup (ctx, key);
    grown [task->backend_option_count].value = qn_yaml_strdup (ctx, value);
    task->backend_option_count++;
}

//  A value that goes into a flat "k=v,k=v" option must not carry the
//  separators, nor anything unprintable.
bool
qn_wf_backend_plain (const char *text, bool allow_equals)
{
    if (strlen (text) > 1024)
        return false;
    for (const char *c = text; *c; c++)
        if ((unsigned char) *c < 0x20 || *c == 0x7f || *c == ',' || (!allow_equals && *c == '='))
            return false;
    return true;
}

//  The key's own check, if any: false (after an error) when it refuses
static bool
s_checked (qn_yaml_ctx_t *ctx, const qn_wf_backend_key_t *key, const char *block,
           qn_yaml_node_t *value)
{
    char why [160] = "";
    if (!key->check || key->check (value->value, why, sizeof (why)))
        return true;
    qn_yaml_echo_t echo;
    qn_yaml_node_error (ctx, value, "invalid value '%s' for '%s' in '%s'%s%s%s",
                        qn_yaml_echo (value->value, echo), key->key, block,
                        *why? " (": "", why, *why? ")": "");
    return false;
}

static void
s_option_scalar (qn_yaml_ctx_t *ctx, qn_task_t *task, qn_yaml_node_t *value, const char *block,
                 const qn_wf_backend_key_t *key)
{
    qn_yaml_echo_t echo;
    if (value->kind != QN_YAML_SCALAR || qn_yaml_is_null (value) || value->value [0] == '\0') {
        qn_yaml_node_error (ctx, value, "expected a non-empty string for '%s' in '%s'",
                            key->key, block);
        return;
    }
    if (!qn_wf_backend_plain (value->value, true)) {
        qn_yaml_node_error (ctx, value,
                            "invalid value '%s' for '%s' in '%s' (no control characters "
                            "or commas)", qn_yaml_echo (value->value, echo), key->key, block);
        return;
    }
    if (s_checked (ctx, key, block, value))
        qn_wf_backend_option_add (ctx, task, value, key->option? key->option: key->key,
                                  value->value);
}

static void
s_option_list (qn_yaml_ctx_t *ctx, qn_task_t *task, qn_yaml_node_t *value, const char *block,
               const qn_wf_backend_key_t *key)
{
    qn_yaml_echo_t echo;
    qn_yaml_node_t **items;
    size_t count;
    char expected [96];
    snprintf (expected, sizeof (expected), "a string or a list of strings for '%s' in '%s'",
              key->key, block);
    if (qn_yaml_scalar_list (ctx, value, expected, &items, &count) == 0)
        for (size_t i = 0; i < count; i++) {
            if (items [i]->value [0] == '\0' || !qn_wf_backend_plain (items [i]->value, true))
                qn_yaml_node_error (ctx, items [i], "invalid value '%s' in '%s' of '%s'",
                                    qn_yaml_echo (items [i]->value, echo), key->key, block);
            else
            if (s_checked (ctx, key, block, items [i]))
                qn_wf_backend_option_add (ctx, task, items [i],
                                          key->option? key->option: key->key,
                                          items [i]->value);
        }
    free (items);
}

//  A YAML value as JSON: plain true/false/null and numbers keep their
//  type, every other scalar is a string.  NULL when out of memory.
static json_t *
s_yaml_to_json (qn_yaml_node_t *node, int depth)
{
    if (depth > 32)
        return NULL;
    if (node->kind == QN_YAML_SCALAR) {
        const char *text = node->value;
        if (node->plain) {
            if (qn_yaml_is_null (node))
                return json_null ();
            if (strcmp (text, "true") == 0 || strcmp (text, "false") == 0)
                return json_boolean (text [0] == 't');
            json_error_t error;
            json_t *number = json_loads (text, JSON_DECODE_ANY, &error);
            if (number && json_is_number (number))
                return number;
            json_decref (number);
        }
        return json_string (text);
    }
    json_t *out = node->kind == QN_YAML_MAPPING? json_object (): json_array ();
    size_t step = node->kind == QN_YAML_MAPPING? 2: 1;
    for (size_t i = 0; out && i + step - 1 < node->count; i += step) {
        if (step == 2 && node->items [i]->skip)
            continue;
        json_t *item = s_yaml_to_json (node->items [i + step - 1], depth + 1);
        int rc = !item? -1: step == 2
            ? json_object_set_new (out, node->items [i]->value, item)
            : json_array_append_new (out, item);
        if (rc == -1) {
            json_decref (out);
            out = NULL;
        }
    }
    return out;
}

static void
s_option_json (qn_yaml_ctx_t *ctx, qn_task_t *task, qn_yaml_node_t *value, const char *block,
               const qn_wf_backend_key_t *key)
{
    json_t *json = s_yaml_to_json (value, 0);
    char *text = json? json_dumps (json, JSON_COMPACT | JSON_ENCODE_ANY): NULL;
    json_decref (json);
    if (!text)
        qn_yaml_node_error (ctx, value, "cannot use '%s' in '%s' as JSON (nested too deep)",
                            key->key, block);
    else
    if (strlen (text) > S_JSON_MAX)
        qn_yaml_node_error (ctx, value, "'%s' in '%s' is larger than %d bytes as JSON",
                            key->key, block, S_JSON_MAX);
    else {
        //  A check of a JSON key gets the JSON text
        char why [160] = "";
        if (key->check && !key->check (text, why, sizeof (why)))
            qn_yaml_node_error (ctx, value, "invalid '%s' in '%s'%s%s%s", key->key, block,
                                *why? " (": "", why, *why? ")": "");
        else
            qn_wf_backend_option_add (ctx, task, value, key->option? key->option: key->key,
                                      text);
    }
    free (text);
}

//  ---------------------------------------------------------------------
//  Keys with their own shape

static void
s_parse_sbatch_args (qn_yaml_ctx_t *ctx, qn_task_t *task, const char *block,
                     qn_yaml_node_t *value)
{
    (void) block;
    qn_yaml_node_t **items;
    size_t count;
    if (qn_yaml_scalar_list (ctx, value, "a list of sbatch arguments for 'sbatch_args'",
                             &items, &count) == 0)
        for (size_t a = 0; a < count; a++) {
            //  Our own script decides these; an override would break log
            //  following or the job's identity
            const char *arg = items [a]->value;
            if (arg [0] != '-' || strncmp (arg, "--output", 8) == 0
            ||  strncmp (arg, "--error", 7) == 0 || strncmp (arg, "--job-name", 10) == 0
            ||  strncmp (arg, "--chdir", 7) == 0 || strncmp (arg, "--wrap", 6) == 0
            ||  strncmp (arg, "--parsable", 10) == 0 || strlen (arg) > 1024)
                qn_yaml_node_error (ctx, items [a],
                                    "sbatch argument '%.64s' is not allowed "
                                    "(an option starting with '-'; qanat sets --output, "
                                    "--error, --job-name, --chdir itself)", arg);
            else
                qn_wf_backend_option_add (ctx, task, items [a], "sbatch_arg", arg);
        }
    free (items);
}

static void
s_parse_node_selector (qn_yaml_ctx_t *ctx, qn_task_t *task, const char *block,
                       qn_yaml_node_t *value)
{
    (void) block;
    qn_yaml_echo_t echo;
    if (value->kind != QN_YAML_MAPPING) {
        qn_yaml_node_error (ctx, value, "expected a mapping of node labels for 'node_selector'");
        return;
    }
    for (size_t k = 0; k + 1 < value->count; k += 2) {
        qn_yaml_node_t *label = value->items [k], *wanted = value->items [k + 1];
        if (label->skip)
            continue;
        if (wanted->kind != QN_YAML_SCALAR || qn_yaml_is_null (wanted)
        ||  !qn_wf_backend_plain (label->value, false) || label->value [0] == '\0'
        ||  !qn_wf_backend_plain (wanted->value, false)) {
            qn_yaml_node_error (ctx, wanted, "invalid node selector '%s'",
                                qn_yaml_echo (label->value, echo));
            continue;
        }
        char pair [2100];
        snprintf (pair, sizeof (pair), "%s=%s", label->value, wanted->value);
        qn_wf_backend_option_add (ctx, task, label, "node_selector", pair);
    }
}

//  tolerations: a list of mappings, each flattened to
//  "key=K,operator=O,value=V,effect=E,toleration_seconds=N".
static void
s_parse_tolerations (qn_yaml_ctx_t *ctx, qn_task_t *task, const char *block,
                     qn_yaml_node_t *node)
{
    (void) block;
    qn_yaml_echo_t echo;
    if (node->kind != QN_YAML_SEQUENCE) {
        qn_yaml_node_error (ctx, node, "expected a list of mappings for 'tolerations'");
        return;
    }
    for (size_t i = 0; i < node->count; i++) {
        qn_yaml_node_t *item = node->items [i];
        if (item->kind != QN_YAML_MAPPING) {
            qn_yaml_node_error (ctx, item, "expected a mapping with key, operator, value, effect, "
                                "toleration_seconds in 'tolerations'");
            continue;
        }
        qn_yaml_check_keys (ctx, item, s_toleration_keys, " in a toleration");
        char flat [2048] = "";
        size_t used = 0;
        bool ok = true;
        for (size_t k = 0; k + 1 < item->count; k += 2) {
            qn_yaml_node_t *key = item->items [k], *value = item->items [k + 1];
            if (key->skip || !qn_yaml_is_known (key->value, s_toleration_keys))
                continue;
            if (value->kind != QN_YAML_SCALAR || qn_yaml_is_null (value)
            ||  !qn_wf_backend_plain (value->value, false) || strlen (value->value) > 253) {
                qn_yaml_node_error (ctx, value, "invalid value '%s' for '%s' in a toleration",
                                    qn_yaml_echo (value->value? value->value: "", echo),
                                    key->value);
                ok = false;
                continue;
            }
            used += (size_t) snprintf (flat + used, sizeof (flat) - used, "%s%s=%s",
                                       used? ",": "", key->value, value->value);
        }
        if (ok && used)
            qn_wf_backend_option_add (ctx, task, item, "toleration", flat);
    }
}

//  ---------------------------------------------------------------------
//  A block and the task's `backend:`

static void
s_parse_block (qn_yaml_ctx_t *ctx, qn_task_t *task, const qn_wf_backend_t *backend,
               qn_yaml_node_t *node)
{
    if (node->kind != QN_YAML_MAPPING) {
        qn_yaml_node_error (ctx, node, "expected a mapping with %s for '%s'", backend->hint,
                            backend->name);
        return;
    }
    const char *names [32];
    size_t count = 0;
    for (const qn_wf_backend_key_t *key = backend->keys; key->key && count < 31; key++)
        names [count++] = key->key;
    names [count] = NULL;
    char where [64];
    snprintf (where, sizeof (where), " in '%s'", backend->name);
    qn_yaml_check_keys (ctx, node, names, where);
    for (size_t i = 0; i + 1 < node->count; i += 2) {
        qn_yaml_node_t *name = node->items [i], *value = node->items [i + 1];
        const qn_wf_backend_key_t *key = backend->keys;
        while (key->key && (name->skip || strcmp (key->key, name->value) != 0))
            key++;
        if (!key->key)
            continue;
        if (key->kind == QN_WF_OPT_SCALAR)
            s_option_scalar (ctx, task, value, backend->name, key);
        else
        if (key->kind == QN_WF_OPT_LIST)
            s_option_list (ctx, task, value, backend->name, key);
        else
        if (key->kind == QN_WF_OPT_JSON)
            s_option_json (ctx, task, value, backend->name, key);
        else
            key->parse (ctx, task, backend->name, value);
    }
    for (const qn_wf_backend_key_t *key = backend->keys; key->key; key++)
        if (key->required && !qn_yaml_map_get (node, key->key, NULL))
            qn_yaml_node_error (ctx, node, "'%s' needs '%s'", backend->name, key->key);
}

void
qn_wf_backend_parse (qn_yaml_ctx_t *ctx, qn_task_t *task, qn_yaml_node_t *task_map)
{
    qn_yaml_echo_t echo;
    qn_yaml_node_t *field = qn_yaml_map_get (task_map, "backend", NULL);
    if (field) {
        if (field->kind != QN_YAML_SCALAR || qn_yaml_is_null (field)
        ||  !qn_wf_backend_find (field->value)) {
            char known [256] = "";
            size_t used = 0;
            for (const qn_wf_backend_t *backend = s_backends; backend->name; backend++)
                used += (size_t) snprintf (known + used, sizeof (known) - used, "%s%s",
                                           used? ", ": "", backend->name);
            qn_yaml_node_error (ctx, field, "unknown backend '%s' (known: %s)",
                                qn_yaml_echo (field->kind == QN_YAML_SCALAR
                                              ? field->value: "", echo), known);
            return;
        }
        task->backend = qn_yaml_strdup (ctx, field->value);
    }
    for (const qn_wf_backend_t *backend = s_backends; backend->name; backend++) {
        qn_yaml_node_t *key;
        qn_yaml_node_t *block = backend->keys
                              ? qn_yaml_map_get (task_map, backend->name, &key): NULL;
        if (!block || qn_yaml_is_null (block))
            continue;
        if (!task->backend || strcmp (task->backend, backend->name) != 0) {
            qn_yaml_node_error (ctx, key, "'%s' options given, but the task's backend is %s%s%s "
                                "(add 'backend: %s')", backend->name, task->backend? "'": "",
                                task->backend? task->backend: "the agent's default",
                                task->backend? "'": "", backend->name);
            continue;
        }
        s_parse_block (ctx, task, backend, block);
    }
    //  A backend with required keys needs its block
    const qn_wf_backend_t *chosen = task->backend? qn_wf_backend_find (task->backend): NULL;
    for (const qn_wf_backend_key_t *key = chosen && chosen->keys? chosen->keys: NULL;
         key && key->key; key++)
        if (key->required && qn_yaml_is_null (qn_yaml_map_get (task_map, chosen->name, NULL))) {
            qn_yaml_node_error (ctx, field, "backend '%s' needs a '%s:' block with '%s'",
                                chosen->name, chosen->name, key->key);
            break;
        }
}
