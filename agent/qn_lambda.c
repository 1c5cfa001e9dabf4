/*  qn_lambda - the pure parts of the AWS Lambda backend.  See qn_lambda.h.
*/
#include "qn_lambda.h"
#include "qn_json.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_VALUE_MAX     (64 * 1024)
//  Reals as people write them (0.93, not 0.93000000000000005)
#define S_VALUE_FLAGS   (JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION (15))

//  ---------------------------------------------------------------------
//  The payload

//  QANAT_PARAM_<NAME> / QANAT_INPUT_<NAME>: prefix + NAME upper-cased,
//  every other character '_' (as qn_wf_command names them)
static const char *
s_env (const Qanat__Assign *assign, const char *prefix, const char *name, size_t len)
{
    char variable [300];
    size_t at = (size_t) snprintf (variable, sizeof (variable), "%s", prefix);
    for (size_t i = 0; i < len && at + 1 < sizeof (variable); i++)
        variable [at++] = isalnum ((unsigned char) name [i])
                        ? (char) toupper ((unsigned char) name [i]): '_';
    variable [at] = '\0';
    for (size_t i = 0; i < assign->n_env; i++)
        if (assign->env [i]->key && strcmp (assign->env [i]->key, variable) == 0)
            return assign->env [i]->value;
    return NULL;
}

static const char *
s_input (const Qanat__Assign *assign, const char *name, size_t len)
{
    for (size_t i = 0; i < assign->n_inputs; i++) {
        Qanat__InputSpec *input = assign->inputs [i];
        if (input->kind == QANAT__ARTIFACT_KIND__ARTIFACT_VALUE && input->name
        &&  strlen (input->name) == len && memcmp (input->name, name, len) == 0)
            return input->value? input->value: "";
    }
    return s_env (assign, "QANAT_INPUT_", name, len);
}

//  A value as JSON: a number, true or false when it reads as one
static json_t *
s_typed (const char *text)
{
    if (strcmp (text, "true") == 0 || strcmp (text, "false") == 0)
        return json_boolean (text [0] == 't');
    json_t *number = json_loads (text, JSON_DECODE_ANY, NULL);
    if (number && json_is_number (number))
        return number;
    json_decref (number);
    return json_string (text);
}

//  Resolves "params.NAME" or "inputs.NAME" (ref of len bytes, trimmed)
static const char *
s_resolve (const Qanat__Assign *assign, const char *ref, size_t len)
{
    if (len > 7 && memcmp (ref, "params.", 7) == 0)
        return s_env (assign, "QANAT_PARAM_", ref + 7, len - 7);
    if (len > 7 && memcmp (ref, "inputs.", 7) == 0)
        return s_input (assign, ref + 7, len - 7);
    return NULL;
}

//  The text with its ${{ ... }} references replaced; *whole set to the
//  value when text is one reference and nothing else.  NULL with error.
static char *
s_substitute (const Qanat__Assign *assign, const char *text, const char **whole, char *error,
              size_t error_size)
{
    *whole = NULL;
    size_t size = strlen (text) + 1, used = 0;
    char *out = (char *) malloc (size);
    if (!out)
        return NULL;
    const char *at = text;
    while (*at) {
        const char *open = strstr (at, "${{");
        const char *close = open? strstr (open, "}}"): NULL;
        if (!open || !close) {
            open = at + strlen (at);
            close = NULL;
        }
        size_t plain = (size_t) (open - at);
        const char *value = NULL;
        const char *ref = open + 3;
        size_t ref_len = close? (size_t) (close - ref): 0;
        while (ref_len && isspace ((unsigned char) *ref)) {
            ref++;
            ref_len--;
        }
        while (ref_len && isspace ((unsigned char) ref [ref_len - 1]))
            ref_len--;
        if (close && !(value = s_resolve (assign, ref, ref_len))) {
            snprintf (error, error_size, "payload: unknown reference '${{ %.*s }}' (want "
                      "params.NAME or inputs.NAME of a value input)", (int) (ref_len > 64? 64: ref_len), ref);
            free (out);
            return NULL;
        }
        if (close && open == text && close [2] == '\0')
            *whole = value;
        size_t add = plain + (value? strlen (value): 0);
        if (used + add + 1 > size) {
            size = (used + add + 1) * 2;
            char *grown = (char *) realloc (out, size);
            if (!grown) {
                free (out);
                return NULL;
            }
            out = grown;
        }
        memcpy (out + used, at, plain);
        used += plain;
        if (value) {
            memcpy (out + used, value, strlen (value));
            used += strlen (value);
        }
        at = close? close + 2: open;
    }
    out [used] = '\0';
    return out;
}

static int s_fill (const Qanat__Assign *assign, json_t *node, int depth, char *error,
                   size_t error_size);

//  A member or item of a template, filled: a new reference, or NULL with
//  error
static json_t *
s_filled (const Qanat__Assign *assign, json_t *value, int depth, char *error,
          size_t error_size)
{
    if (!json_is_string (value))
        return s_fill (assign, value, depth + 1, error, error_size) == -1
             ? NULL: json_incref (value);
    const char *whole;
    char *text = s_substitute (assign, json_string_value (value), &whole, error, error_size);
    json_t *out = text? (whole? s_typed (whole): json_string (text)): NULL;
    free (text);
    return out;
}

//  Replaces the references in every string of node (in place)
static int
s_fill (const Qanat__Assign *assign, json_t *node, int depth, char *error, size_t error_size)
{
    if (depth > 64)
        return -1;
    if (json_is_object (node)) {
        const char *key;
        json_t *value;
        json_object_foreach (node, key, value) {
            json_t *out = s_filled (assign, value, depth, error, error_size);
            if (!out)
                return -1;
            json_object_set_new (node, key, out);
        }
    }
    else
    for (size_t i = 0; json_is_array (node) && i < json_array_size (node); i++) {
        json_t *out = s_filled (assign, json_array_get (node, i), depth, error, error_size);
        if (!out)
            return -1;
        json_array_set_new (node, i, out);
    }
    return 0;
}

static json_t *
s_default_payload (const Qanat__Assign *assign)
{
    json_t *params = json_object (), *inputs = json_object ();
    for (size_t i = 0; params && i < assign->n_env; i++) {
        const char *key = assign->env [i]->key;
        if (!key || strncmp (key, "QANAT_PARAM_", 12) != 0 || !key [12])
            continue;
        char name [256];
        size_t at = 0;
        for (const char *c = key + 12; *c && at + 1 < sizeof (name); c++)
            name [at++] = (char) tolower ((unsigned char) *c);
        name [at] = '\0';
        json_object_set_new (params, name, json_string (assign->env [i]->value? assign->env [i]->value: ""));
    }
    for (size_t i = 0; inputs && i < assign->n_inputs; i++) {
        Qanat__InputSpec *input = assign->inputs [i];
        if (input->kind == QANAT__ARTIFACT_KIND__ARTIFACT_VALUE && input->name)
            json_object_set_new (inputs, input->name, json_string (input->value? input->value: ""));
    }
    return json_pack ("{s:o*,s:o*}", "params", params, "inputs", inputs);
}

char *
qn_lambda_payload (const Qanat__Assign *assign, const char *template_text, char *error,
                   size_t error_size)
{
    json_t *payload;
    if (template_text) {
        payload = json_loads (template_text, JSON_DECODE_ANY, NULL);
        if (!payload) {
            snprintf (error, error_size, "payload: not JSON");
            return NULL;
        }
        if (json_is_string (payload)) {
            const char *whole;
            char *text = s_substitute (assign, json_string_value (payload), &whole, error,
                                       error_size);
            json_decref (payload);
            payload = text? (whole? s_typed (whole): json_string (text)): NULL;
            free (text);
            if (!payload)
                return NULL;
        }
        else
        if (s_fill (assign, payload, 0, error, error_size) == -1) {
            json_decref (payload);
            return NULL;
        }
    }
    else
        payload = s_default_payload (assign);
    char *text = payload? json_dumps (payload, JSON_COMPACT | JSON_ENCODE_ANY): NULL;
    json_decref (payload);
    if (!text)
        snprintf (error, error_size, "payload: out of memory");
    return text;
}

char *
qn_lambda_client_context (uint64_t run_id, uint32_t task_index, uint32_t attempt)
{
    char json [160];
    int size = snprintf (json, sizeof (json),
                         "{\"custom\":{\"qanat_key\":\"qanat-%" PRIu64 "-%u-%u\"}}",
                         run_id, task_index, attempt);
    return qn_json_base64 (json, (size_t) size);
}


//  ---------------------------------------------------------------------
//  The answer

int
qn_lambda_write_values (const Qanat__Assign *assign, const char *text, size_t size,
                        const char *path, char *error, size_t error_size)
{
    bool wanted = false;
    for (size_t i = 0; i < assign->n_outputs; i++)
        wanted = wanted || assign->outputs [i]->value;
    if (!wanted)
        return 0;
    if (!path) {
        snprintf (error, error_size, "no $QANAT_VALUES to write the values to");
        return -1;
    }
    json_t *result = text && size? json_loadb (text, size, JSON_DECODE_ANY, NULL): NULL;
    FILE *file = fopen (path, "a");
    if (!file) {
        snprintf (error, error_size, "cannot write %s: %s", path, strerror (errno));
        json_decref (result);
        return -1;
    }
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < assign->n_outputs; i++) {
        Qanat__OutputSpec *output = assign->outputs [i];
        if (!output->value || !output->name)
            continue;
        char *value = NULL;
        if (strcmp (output->name, "result") == 0)
            value = result? json_dumps (result, S_VALUE_FLAGS)
                          : strndup (text? text: "", size);
        else {
            json_t *member = json_object_get (result, output->name);
            if (json_is_string (member))
                value = strdup (json_string_value (member));
            else
            if (member)
                value = json_dumps (member, S_VALUE_FLAGS);
            else {
                snprintf (error, error_size, "output '%s': the function's result has no "
                          "member '%s'", output->name, output->name);
                rc = -1;
                continue;
            }
        }
        if (!value || strchr (value, '\n') || strlen (value) > S_VALUE_MAX) {
            snprintf (error, error_size, "output '%s': %s", output->name,
                      value? "the value has a newline or is too long": "out of memory");
            rc = -1;
        }
        else
            fprintf (file, "%s=%s\n", output->name, value);
        free (value);
    }
    if (fclose (file) != 0 && rc == 0) {
        snprintf (error, error_size, "cannot write %s: %s", path, strerror (errno));
        rc = -1;
    }
    json_decref (result);
    return rc;
}

char *
qn_lambda_function_error (const char *text, size_t size, const char *kind, char *reason,
                          size_t reason_size)
{
    json_t *body = text && size? json_loadb (text, size, 0, NULL): NULL;
    const char *type = json_string_value (json_object_get (body, "errorType"));
    const char *message = json_string_value (json_object_get (body, "errorMessage"));
    snprintf (reason, reason_size, "%s%s%s (Lambda %s function error)",
              type? type: "", type && message? ": ": "",
              message? message: type? "": "the function failed", kind && *kind? kind: "a");
    json_t *trace = json_object_get (body, "stackTrace");
    char *out = NULL;
    size_t used = 0;
    FILE *stream = open_memstream (&out, &used);
    if (!stream) {
        json_decref (body);
        return NULL;
    }
    if (type || message)
        fprintf (stream, "%s%s%s\n", type? type: "Error", message? ": ": "", message? message: "");
    for (size_t i = 0; json_is_array (trace) && i < json_array_size (trace) && i < 200; i++) {
        json_t *frame = json_array_get (trace, i);
        if (json_is_string (frame))
            fprintf (stream, "%s\n", json_string_value (frame));
        else
        if (json_is_array (frame)) {
            //  Older Python runtimes: [file, line, function, code]
            json_t *file = json_array_get (frame, 0), *line = json_array_get (frame, 1);
            json_t *function = json_array_get (frame, 2), *code = json_array_get (frame, 3);
            fprintf (stream, "  File \"%s\", line %" JSON_INTEGER_FORMAT ", in %s\n    %s\n",
                     json_string_value (file)? json_string_value (file): "?",
                     json_integer_value (line),
                     json_string_value (function)? json_string_value (function): "?",
                     json_string_value (code)? json_string_value (code): "");
        }
    }
    if (!type && !message && text)
        fprintf (stream, "%.*s\n", (int) (size > 8192? 8192: size), text);
    fclose (stream);
    json_decref (body);
    return out;
}


//  ---------------------------------------------------------------------
//  Lambda's own log lines

static bool
s_request_id (const char *text, char request_id [QN_LAMBDA_REQUEST_ID_MAX + 1])
{
    size_t len = 0;
    while (text [len] && (isalnum ((unsigned char) text [len]) || text [len] == '-')
    &&     len < QN_LAMBDA_REQUEST_ID_MAX)
        len++;
    if (len == 0)
        return false;
    memcpy (request_id, text, len);
    request_id [len] = '\0';
    return true;
}

//  The number after "label: " in text, or -1
static double
s_figure (const char *text, const char *label)
{
    const char *at = strstr (text, label);
    if (!at)
        return -1;
    char *end;
    errno = 0;
    double value = strtod (at + strlen (label), &end);
    return errno || end == at + strlen (label)? -1: value;
}

qn_lambda_line_t
qn_lambda_line (const char *message, char request_id [QN_LAMBDA_REQUEST_ID_MAX + 1],
                qn_lambda_report_t *report)
{
    static const struct { const char *prefix; qn_lambda_line_t kind; } kinds [] = {
        { "START RequestId: ", QN_LAMBDA_LINE_START },
        { "END RequestId: ", QN_LAMBDA_LINE_END },
        { "REPORT RequestId: ", QN_LAMBDA_LINE_REPORT },
    };
    for (size_t k = 0; k < 3; k++) {
        size_t len = strlen (kinds [k].prefix);
        if (strncmp (message, kinds [k].prefix, len) != 0
        ||  !s_request_id (message + len, request_id))
            continue;
        if (kinds [k].kind == QN_LAMBDA_LINE_REPORT && report) {
            report->duration_ms = s_figure (message, "\tDuration: ");
            report->billed_ms = s_figure (message, "Billed Duration: ");
            report->memory_size_mb = s_figure (message, "Memory Size: ");
            report->max_memory_mb = s_figure (message, "Max Memory Used: ");
            report->init_ms = s_figure (message, "Init Duration: ");
        }
        return kinds [k].kind;
    }
    return QN_LAMBDA_LINE_PLAIN;
}
