/*  fuzz_common - one input through one qanat parser, shared by the
    libFuzzer targets (tests/fuzz/fuzz_*.c) and the regression test
    (tests/unit/test_fuzz_regressions.c), so that both drive the code the
    same way.

    Each fz_<target>_one function takes raw bytes and returns 1 when the
    parser accepted them, 0 when it refused them cleanly, and -1 when an
    invariant of its contract broke (the targets then abort, which
    libFuzzer reports as a crash).  Inputs are copied into buffers of their
    exact size so that AddressSanitizer sees any read past the end; every
    function frees all it allocated, so each input is leak-free on its own.
*/
#ifndef FUZZ_COMMON_H_INCLUDED
#define FUZZ_COMMON_H_INCLUDED

#include <ctype.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "qn_msg.h"
#include "qn_check.h"
#include "qn_workflow.h"
#include "qn_token.h"
#include "qn_metric.h"
#include "qn_tree.h"

//  A malloc'd copy of size bytes, NUL-terminated when terminate is set
//  (for APIs that take C strings) and exactly size bytes otherwise.
static inline char *
fz_copy (const uint8_t *data, size_t size, bool terminate)
{
    char *copy = (char *) malloc (size + (terminate? 1: 0) + (size == 0));
    if (!copy)
        return NULL;
    if (size)
        memcpy (copy, data, size);
    if (terminate)
        copy [size] = 0;
    return copy;
}

//  Decode; whatever decodes must re-encode and decode again to the same
//  bytes (the coordinator re-packs what it stores).
static inline int
fz_envelope_one (const uint8_t *data, size_t size)
{
    char *copy = fz_copy (data, size, false);
    qn_msg_status_t status = QN_MSG_OK;
    uint32_t version = 0;
    Qanat__Envelope *env = qn_msg_decode (copy, size, &status, &version);
    free (copy);
    if (!env) {
        if (status == QN_MSG_OK)
            return -1;
        if (status == QN_MSG_BAD_VERSION && version == QN_PROTOCOL_VERSION)
            return -1;
        return 0;
    }
    int result = 1;
    if (status != QN_MSG_OK || env->version != QN_PROTOCOL_VERSION
    ||  env->body_case == QANAT__ENVELOPE__BODY__NOT_SET)
        result = -1;
    zframe_t *frame = qn_msg_encode (env);
    if (!frame)
        result = -1;
    else {
        Qanat__Envelope *again = qn_msg_decode (zframe_data (frame), zframe_size (frame),
                                                &status, NULL);
        if (!again)
            result = -1;
        else {
            zframe_t *second = qn_msg_encode (again);
            if (!second || zframe_size (second) != zframe_size (frame)
            ||  memcmp (zframe_data (second), zframe_data (frame), zframe_size (frame)))
                result = -1;
            zframe_destroy (&second);
            qn_msg_free (&again);
        }
        zframe_destroy (&frame);
    }
    qn_msg_free (&env);
    return result;
}

//  Parse a workflow; a parsed one must be internally consistent, a refused
//  one must say where ("fuzz.yaml:line:col: message").
static inline int
fz_workflow_one (const uint8_t *data, size_t size)
{
    char *text = fz_copy (data, size, false);
    char *error = NULL;
    qn_workflow_t *wf = qn_workflow_parse ("fuzz.yaml", text, size, &error);
    free (text);
    if (!wf) {
        int result = error && strncmp (error, "fuzz.yaml:", 10) == 0? 0: -1;
        free (error);
        return result;
    }
    int result = error? -1: 1;
    size_t count = qn_workflow_task_count (wf);
    if (!qn_workflow_name (wf) || count == 0 || qn_workflow_task (wf, count))
        result = -1;
    for (size_t t = 0; t < count && result == 1; t++) {
        const qn_task_t *task = qn_workflow_task (wf, t);
        if (!task || !task->name || !task->argv || task->argc == 0 || !task->argv [0]
        ||  task->argv [task->argc] || qn_workflow_task_index (wf, task->name) != (int) t)
            result = -1;
        for (size_t n = 0; result == 1 && n < task->needs_count; n++)
            if (task->need_index [n] >= count || task->need_index [n] == t)
                result = -1;
        for (size_t c = 0; result == 1 && c < task->checks_count; c++)
            if (!task->checks [c].check || !qn_check_metric (task->checks [c].check))
                result = -1;
    }
    //  Every parameter with a default resolves; required ones are refused.
    char *param_error = NULL;
    qn_kv_t *params = qn_workflow_resolve_params (wf, NULL, 0, &param_error);
    if (params)
        qn_kv_free (params, qn_workflow_param_count (wf));
    else
    if (!param_error)
        result = -1;
    free (param_error);
    qn_workflow_destroy (&wf);
    return result;
}

//  Parse a check expression and evaluate it over a few series.
static inline int
fz_check_one (const uint8_t *data, size_t size)
{
    char *expr = fz_copy (data, size, true);
    char *error = NULL;
    size_t offset = 0;
    qn_check_t *check = qn_check_new (expr, &error, &offset);
    if (!check) {
        int result = error && offset <= size? 0: -1;
        free (error);
        free (expr);
        return result;
    }
    int result = error? -1: 1;
    const char *metric = qn_check_metric (check);
    if (!metric || !*metric || !qn_check_expr (check))
        result = -1;
    static const double values [] = { 0.5, -1e300, 42, 1e300, 0 };
    for (size_t count = 0; count <= 5; count++) {
        bool passed = true;
        char *detail = qn_check_eval (check, values, count, &passed);
        if (!detail || (count == 0 && passed))
            result = -1;
        free (detail);
    }
    qn_check_destroy (&check);
    free (expr);
    return result;
}

//  Parse a join token; a parsed one must format back to a token that
//  parses to the same fields.
static inline int
fz_token_one (const uint8_t *data, size_t size)
{
    char *text = fz_copy (data, size, true);
    qn_token_t token;
    const char *error = NULL;
    int rc = qn_token_parse (text, &token, &error);
    free (text);
    if (rc != 0)
        return error? 0: -1;
    if (strlen (token.coordinator_key) != QN_Z85_KEY_SIZE
    ||  strlen (token.secret_key) != QN_Z85_KEY_SIZE
    ||  strlen (token.public_key) != QN_Z85_KEY_SIZE)
        return -1;
    char *formatted = qn_token_format (token.coordinator_key, token.secret_key, token.endpoint);
    if (!formatted)
        return -1;
    qn_token_t again;
    int result = qn_token_parse (formatted, &again, &error) == 0
              && memcmp (&token, &again, sizeof token) == 0? 1: -1;
    free (formatted);
    return result;
}

//  Parse a directory manifest (from the network or a blob store); one
//  that parses is canonical: written back, it is the very same bytes.
static inline int
fz_manifest_one (const uint8_t *data, size_t size)
{
    char *error = NULL;
    qn_tree_t *tree = qn_tree_parse_manifest ((const char *) data, size, &error);
    if (!tree) {
        int rc = error? 0: -1;
        free (error);
        return rc;
    }
    size_t again_size = 0;
    char *again = qn_tree_manifest (tree, &again_size);
    int result = again && again_size == size && memcmp (again, data, size) == 0? 1: -1;
    for (size_t i = 0; result == 1 && i < qn_tree_count (tree); i++) {
        const qn_tree_entry_t *entry = qn_tree_entry (tree, i);
        //  No entry may name a way out of the directory it is staged in
        if (!entry || entry->path [0] == '/' || entry->mode > 0777)
            result = -1;
        for (const char *at = entry? entry->path: ""; result == 1 && *at; ) {
            size_t len = strcspn (at, "/");
            if ((len == 2 && at [0] == '.' && at [1] == '.') || (len == 1 && at [0] == '.'))
                result = -1;
            at += len + (at [len] == '/');
        }
    }
    free (again);
    qn_tree_destroy (&tree);
    return result;
}

//  Parse one metric line (not NUL-terminated, as the agent reads it).
static inline int
fz_metric_line_one (const uint8_t *data, size_t size)
{
    char *line = fz_copy (data, size, false);
    char name [QN_METRIC_NAME_MAX + 1];
    double value = 0;
    int64_t step = 0;
    bool has_step = false;
    const char *error = NULL;
    int rc = qn_metric_parse_line (line, size, name, &value, &step, &has_step, &error);
    free (line);
    if (rc != 0)
        return error? 0: -1;
    size_t len = strnlen (name, sizeof name);
    if (len == 0 || len > QN_METRIC_NAME_MAX || !isfinite (value)
    ||  !(isalpha ((unsigned char) name [0]) || name [0] == '_'))
        return -1;
    return 1;
}

#endif
