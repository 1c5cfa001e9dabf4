/*  qn_wf_matrix - a task's matrix, expanded.  See qn_wf_matrix.h.

    One of the files of the qn_workflow class: it implements part of
    qn_workflow.h, so the include checker counts it with qn_workflow.
*/
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qn_wf_matrix.h"

static bool
s_key_valid (const char *key)
{
    if (!*key || isdigit ((unsigned char) *key) || strlen (key) > QN_YAML_NAME_MAX)
        return false;
    for (const char *c = key; *c; c++)
        if (!isascii ((unsigned char) *c) || !(isalnum ((unsigned char) *c) || *c == '_'))
            return false;
    return true;
}

static bool
s_value_valid (const char *value)
{
    size_t len = strlen (value);
    if (len == 0 || len > QN_WF_MATRIX_VALUE_MAX)
        return false;
    for (const char *c = value; *c; c++)
        if (!isascii ((unsigned char) *c) || !(isalnum ((unsigned char) *c) || strchr ("_.+-", *c)))
            return false;
    return true;
}

//  The key's environment variable: QANAT_MATRIX_ and the key upper-cased
static char *
s_variable (const char *key)
{
    char *variable = qn_yaml_format ("QANAT_MATRIX_%s", key);
    for (char *c = variable? variable + 13: NULL; c && *c; c++)
        *c = (char) toupper ((unsigned char) *c);
    return variable;
}

//  One key of the matrix: its list of values, checked
static bool
s_parse_key (qn_yaml_ctx_t *ctx, qn_wf_matrix_t *matrix, size_t k, qn_yaml_node_t *key,
             qn_yaml_node_t *value, const char *task)
{
    qn_yaml_echo_t echo, echo2;
    matrix->keys [k] = key;
    if (!s_key_valid (key->value)) {
        qn_yaml_node_error (ctx, key, "invalid matrix key '%s' in task '%s' (use letters, digits "
                            "and '_', not starting with a digit)",
                            qn_yaml_echo (key->value, echo), task);
        return false;
    }
    for (size_t j = 0; j < k; j++)
        if (strcasecmp (matrix->keys [j]->value, key->value) == 0) {
            qn_yaml_node_error (ctx, key, "matrix keys '%s' and '%s' in task '%s' are the same "
                                "variable", qn_yaml_echo (matrix->keys [j]->value, echo),
                                qn_yaml_echo (key->value, echo2), task);
            return false;
        }
    if (value->kind != QN_YAML_SEQUENCE || value->count == 0) {
        qn_yaml_node_error (ctx, value->kind == QN_YAML_SEQUENCE? key: value,
                            "expected a non-empty list of values for matrix key '%s' in task '%s'",
                            qn_yaml_echo (key->value, echo), task);
        return false;
    }
    for (size_t v = 0; v < value->count; v++) {
        qn_yaml_node_t *item = value->items [v];
        if (item->kind != QN_YAML_SCALAR || qn_yaml_is_null (item) || !s_value_valid (item->value)) {
            qn_yaml_node_error (ctx, item, "invalid value for matrix key '%s' in task '%s' (1 to "
                                "%d of letters, digits, '_', '.', '+', '-')",
                                qn_yaml_echo (key->value, echo), task, QN_WF_MATRIX_VALUE_MAX);
            return false;
        }
        for (size_t w = 0; w < v; w++)
            if (strcmp (value->items [w]->value, item->value) == 0) {
                qn_yaml_node_error (ctx, item, "value '%s' twice for matrix key '%s' in task '%s'",
                                    qn_yaml_echo (item->value, echo),
                                    qn_yaml_echo (key->value, echo2), task);
                return false;
            }
    }
    matrix->values [k] = value->items;
    matrix->value_counts [k] = value->count;
    return true;
}

size_t
qn_wf_matrix_parse (qn_yaml_ctx_t *ctx, qn_yaml_node_t *task_key, qn_yaml_node_t *task_map,
                    qn_wf_matrix_t *matrix)
{
    qn_yaml_echo_t echo;
    memset (matrix, 0, sizeof (qn_wf_matrix_t));
    qn_yaml_node_t *node = task_map && task_map->kind == QN_YAML_MAPPING
                         ? qn_yaml_map_get (task_map, "matrix", NULL): NULL;
    if (!node)
        return 1;
    const char *task = qn_yaml_echo (task_key->value, echo);
    size_t pairs = node->kind == QN_YAML_MAPPING? node->count / 2: 0;
    if (pairs == 0) {
        qn_yaml_node_error (ctx, node, "expected a mapping of keys to lists of values for "
                            "'matrix' in task '%s'", task);
        return 0;
    }
    matrix->keys = (qn_yaml_node_t **) calloc (pairs, sizeof (qn_yaml_node_t *));
    matrix->values = (qn_yaml_node_t ***) calloc (pairs, sizeof (qn_yaml_node_t **));
    matrix->value_counts = (size_t *) calloc (pairs, sizeof (size_t));
    if (!matrix->keys || !matrix->values || !matrix->value_counts) {
        ctx->oom = true;
        return 0;
    }
    size_t combinations = 1;
    for (size_t i = 0; i < pairs; i++) {
        qn_yaml_node_t *key = node->items [2 * i];
        if (key->skip)
            continue;
        if (!s_parse_key (ctx, matrix, matrix->key_count, key, node->items [2 * i + 1], task))
            return 0;
        combinations *= matrix->value_counts [matrix->key_count++];
        if (combinations > QN_WF_MATRIX_MAX) {
            qn_yaml_node_error (ctx, node, "the matrix of task '%s' makes more than %d tasks",
                                task, QN_WF_MATRIX_MAX);
            return 0;
        }
    }
    matrix->combinations = matrix->key_count? combinations: 0;
    return matrix->combinations;
}

void
qn_wf_matrix_values (qn_yaml_ctx_t *ctx, const qn_wf_matrix_t *matrix, size_t c, qn_task_t *task)
{
    if (!matrix->key_count)
        return;
    task->matrix = (qn_kv_t *) calloc (matrix->key_count, sizeof (qn_kv_t));
    if (!task->matrix) {
        ctx->oom = true;
        return;
    }
    //  Mixed radix, the last key fastest
    for (size_t k = matrix->key_count; k-- > 0; ) {
        size_t radix = matrix->value_counts [k];
        task->matrix [k].key = qn_yaml_strdup (ctx, matrix->keys [k]->value);
        task->matrix [k].value = qn_yaml_strdup (ctx, matrix->values [k][c % radix]->value);
        c /= radix;
    }
    task->matrix_count = matrix->key_count;
}

void
qn_wf_matrix_finish (qn_yaml_ctx_t *ctx, qn_task_t *task)
{
    if (!task->matrix_count || !task->name)
        return;
    char *name = NULL;
    size_t size = 0;
    FILE *stream = open_memstream (&name, &size);
    if (!stream) {
        ctx->oom = true;
        return;
    }
    fprintf (stream, "%s[", task->name);
    for (size_t k = 0; k < task->matrix_count; k++)
        fprintf (stream, "%s%s=%s", k? ",": "", task->matrix [k].key, task->matrix [k].value);
    fputc (']', stream);
    if (fclose (stream) != 0) {
        ctx->oom = true;
        return;
    }
    task->matrix_of = task->name;
    task->name = name;
    qn_kv_t *env = (qn_kv_t *) realloc (task->env, (task->env_count + task->matrix_count)
                                                   * sizeof (qn_kv_t));
    if (!env) {
        ctx->oom = true;
        return;
    }
    task->env = env;
    for (size_t k = 0; k < task->matrix_count; k++) {
        env [task->env_count].key = s_variable (task->matrix [k].key);
        env [task->env_count].value = qn_yaml_strdup (ctx, task->matrix [k].value);
        task->env_count++;
    }
}

//  The expansions of the matrix task written as name: how many, their
//  indexes in found (room for count)
static size_t
s_expansions (const qn_task_t *tasks, size_t count, const char *name, size_t *found)
{
    size_t n = 0;
    for (size_t t = 0; t < count; t++)
        if (tasks [t].matrix_of && strcmp (tasks [t].matrix_of, name) == 0)
            found [n++] = t;
    return n;
}

static bool
s_is_task (const qn_task_t *tasks, size_t count, const char *name)
{
    for (size_t t = 0; t < count; t++)
        if (tasks [t].name && strcmp (tasks [t].name, name) == 0)
            return true;
    return false;
}

//  Replaces need i of task by the n expansions in found
static void
s_replace_need (qn_yaml_ctx_t *ctx, qn_task_t *tasks, qn_task_t *task, qn_wf_graph_task_t *extra,
                size_t i, const size_t *found, size_t n)
{
    size_t total = task->needs_count - 1 + n;
    char **needs = (char **) calloc (total, sizeof (char *));
    size_t *index = (size_t *) calloc (total, sizeof (size_t));
    qn_yaml_node_t **nodes = (qn_yaml_node_t **) calloc (total, sizeof (qn_yaml_node_t *));
    if (!needs || !index || !nodes) {
        free (needs);
        free (index);
        free (nodes);
        ctx->oom = true;
        return;
    }
    size_t at = 0;
    for (size_t j = 0; j < task->needs_count; j++) {
        if (j != i) {
            needs [at] = task->needs [j];
            nodes [at++] = extra->need_nodes [j];
            continue;
        }
        for (size_t e = 0; e < n; e++) {
            needs [at] = qn_yaml_strdup (ctx, tasks [found [e]].name);
            nodes [at++] = extra->need_nodes [i];
        }
        free (task->needs [i]);
    }
    free (task->needs);
    free (task->need_index);
    free (extra->need_nodes);
    task->needs = needs;
    task->need_index = index;
    extra->need_nodes = nodes;
    task->needs_count = total;
}

void
qn_wf_matrix_expand_needs (qn_yaml_ctx_t *ctx, qn_task_t *tasks, size_t count,
                           qn_wf_graph_task_t *extra)
{
    bool any = false;
    for (size_t t = 0; t < count && !any; t++)
        any = tasks [t].matrix_of != NULL;
    size_t *found = any? (size_t *) calloc (count + 1, sizeof (size_t)): NULL;
    if (!any)
        return;
    if (!found) {
        ctx->oom = true;
        return;
    }
    for (size_t t = 0; t < count && !ctx->oom; t++) {
        qn_task_t *task = &tasks [t];
        for (size_t i = 0; i < task->needs_count && !ctx->oom; i++) {
            const char *need = task->needs [i];
            size_t n = need && !s_is_task (tasks, count, need)
                     ? s_expansions (tasks, count, need, found): 0;
            if (n) {
                s_replace_need (ctx, tasks, task, &extra [t], i, found, n);
                i += n - 1;
            }
        }
    }
    free (found);
}

void
qn_wf_matrix_free (qn_wf_matrix_t *matrix)
{
    free (matrix->keys);
    free (matrix->values);
    free (matrix->value_counts);
    memset (matrix, 0, sizeof (qn_wf_matrix_t));
}
