/*  qn_params - a workflow's typed parameters.  See qn_params.h.

    A parameter is a name, a type (string, int, float, bool, artifact), an
    optional default, description and list of allowed values.  Values are
    checked, and made canonical (bool to true/false, artifact hex to lower
    case), when the file is read (defaults, allowed) and for each run.

    One of the files of the qn_workflow class: it implements part of
    qn_workflow.h, so the include checker counts it with qn_workflow.
*/
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "qn_params.h"

#define S_MAX_PARAMS        1000
#define S_PARAM_VALUE_MAX   4096

static const char *s_param_keys [] = { "default", "description", "type", "allowed", NULL };


//  ---------------------------------------------------------------------
//  Reading `params:`

//  Parameters reach tasks as QANAT_PARAM_<NAME>: two names must not
//  collapse into one variable.  True (and reported) when key's does.
static bool
s_clashes (qn_yaml_ctx_t *ctx, qn_yaml_node_t *key, const qn_param_t *params, size_t count)
{
    qn_yaml_echo_t echo, echo2;
    bool clash = false;
    for (size_t j = 0; j < count && !clash; j++) {
        const char *a = key->value, *b = params [j].name;
        while (*a && *b && (isalnum ((unsigned char) *a)? toupper ((unsigned char) *a): '_')
                        == (isalnum ((unsigned char) *b)? toupper ((unsigned char) *b): '_')) {
            a++;
            b++;
        }
        if (*a == '\0' && *b == '\0') {
            qn_yaml_node_error (ctx, key, "parameter '%s' clashes with '%s' (both become "
                                "QANAT_PARAM_ variable names alike)",
                                qn_yaml_echo (key->value, echo),
                                qn_yaml_echo (params [j].name, echo2));
            clash = true;
        }
    }
    return clash;
}

//  The type a `type:` names; -1 (reported) for an unknown one
static int
s_parse_type (qn_yaml_ctx_t *ctx, qn_yaml_node_t *type, qn_yaml_node_t *key)
{
    qn_yaml_echo_t echo, echo2;
    //  In qn_param_type_t order
    static const char *types [] = { "string", "int", "float", "bool", "artifact",
                                    NULL };
    size_t t = 0;
    while (types [t] && !(type->kind == QN_YAML_SCALAR && type->value
                          && strcmp (type->value, types [t]) == 0))
        t++;
    if (!types [t]) {
        qn_yaml_node_error (ctx, type, "unknown type '%s' for parameter '%s' (use string, "
                            "int, float, bool or artifact)",
                            qn_yaml_echo (type->kind == QN_YAML_SCALAR && type->value
                                          ? type->value: "", echo2),
                            qn_yaml_echo (key->value, echo));
        return -1;
    }
    return (int) t;
}

//  `allowed:` into param->allowed, each value checked against the type
static void
s_parse_allowed (qn_yaml_ctx_t *ctx, qn_param_t *param, qn_yaml_node_t *allowed,
                 qn_yaml_node_t *key)
{
    qn_yaml_echo_t echo;
    qn_yaml_node_t **items;
    size_t count;
    char *message = NULL;
    if (qn_yaml_scalar_list (ctx, allowed, "a list of allowed values for 'allowed'",
                             &items, &count) == 0 && count > 0) {
        param->allowed = (char **) calloc (count, sizeof (char *));
        if (!param->allowed)
            ctx->oom = true;
        for (size_t a = 0; param->allowed && a < count; a++) {
            //  Each allowed value must itself be of the type
            qn_param_t bare = { param->name, NULL, NULL, param->type, NULL, 0 };
            char *canonical = qn_workflow_param_check (&bare, items [a]->value, &message);
            if (!canonical) {
                qn_yaml_node_error (ctx, items [a], "%s", message);
                free (message);
                message = NULL;
                continue;
            }
            param->allowed [param->allowed_count++] = canonical;
        }
    }
    else
    if (count == 0 && !qn_yaml_is_null (allowed))
        qn_yaml_node_error (ctx, allowed, "'allowed' of parameter '%s' is empty",
                            qn_yaml_echo (key->value, echo));
    free (items);
}

void
qn_params_parse (qn_yaml_ctx_t *ctx, qn_yaml_node_t *node, qn_param_t **params_p,
                 size_t *count_p)
{
    qn_yaml_echo_t echo, echo2;
    if (qn_yaml_is_null (node))
        return;
    if (node->kind != QN_YAML_MAPPING) {
        qn_yaml_node_error (ctx, node, "expected a mapping of parameter names for 'params'");
        return;
    }
    size_t pairs = node->count / 2;
    if (pairs > S_MAX_PARAMS) {
        qn_yaml_node_error (ctx, node, "too many parameters: %zu (limit %d)", pairs,
                            S_MAX_PARAMS);
        return;
    }
    qn_param_t *params = (qn_param_t *) calloc (pairs? pairs: 1, sizeof (qn_param_t));
    if (!params) {
        ctx->oom = true;
        return;
    }
    *params_p = params;
    for (size_t i = 0; i < pairs; i++) {
        qn_yaml_node_t *key = node->items [2 * i];
        qn_yaml_node_t *value = node->items [2 * i + 1];
        if (key->skip)
            continue;
        if (!qn_yaml_name_valid (key->value)) {
            qn_yaml_node_error (ctx, key, "invalid parameter name '%s' (use letters, digits, "
                                "'_', '.', '-')", qn_yaml_echo (key->value, echo));
            continue;
        }
        if (s_clashes (ctx, key, params, *count_p))
            continue;

        qn_yaml_node_t *dflt = value;
        qn_yaml_node_t *desc = NULL;
        qn_yaml_node_t *type = NULL;
        qn_yaml_node_t *allowed = NULL;
        if (value->kind == QN_YAML_MAPPING) {
            char where [QN_YAML_ECHO_MAX + 32];
            snprintf (where, sizeof (where), " in parameter '%s'",
                      qn_yaml_echo (key->value, echo));
            qn_yaml_check_keys (ctx, value, s_param_keys, where);
            dflt = qn_yaml_map_get (value, "default", NULL);
            desc = qn_yaml_map_get (value, "description", NULL);
            type = qn_yaml_map_get (value, "type", NULL);
            allowed = qn_yaml_map_get (value, "allowed", NULL);
        }
        else
        if (value->kind != QN_YAML_SCALAR) {
            qn_yaml_node_error (ctx, value, "expected a default value or a mapping with "
                                "'default' and 'description' for parameter '%s'",
                                qn_yaml_echo (key->value, echo));
            continue;
        }
        if (dflt && dflt->kind != QN_YAML_SCALAR) {
            qn_yaml_node_error (ctx, dflt, "expected a string or number for the default of "
                                "parameter '%s'", qn_yaml_echo (key->value, echo));
            continue;
        }
        if (desc && desc->kind != QN_YAML_SCALAR) {
            qn_yaml_node_error (ctx, desc, "expected a string for the description of "
                                "parameter '%s'", qn_yaml_echo (key->value, echo));
            continue;
        }
        qn_param_type_t param_type = QN_PARAM_STRING;
        if (type) {
            int t = s_parse_type (ctx, type, key);
            if (t < 0)
                continue;
            param_type = (qn_param_type_t) t;
        }
        qn_param_t *param = &params [(*count_p)++];
        param->name = qn_yaml_strdup (ctx, key->value);
        param->type = param_type;
        if (desc && !qn_yaml_is_null (desc))
            param->description = qn_yaml_strdup (ctx, desc->value);
        //  An artifact is uploaded for one run (qanat put); a default or a
        //  list would name blobs that nothing keeps alive.  The parameter
        //  is kept, without them, so that inputs naming it still resolve.
        if (param_type == QN_PARAM_ARTIFACT && dflt && !qn_yaml_is_null (dflt)) {
            qn_yaml_node_error (ctx, dflt, "artifact parameter '%s' cannot have a default (it "
                                "would name a blob nobody keeps): give it at run time, e.g. "
                                "--param %s=@PATH", qn_yaml_echo (key->value, echo),
                                qn_yaml_echo (key->value, echo2));
            dflt = NULL;
        }
        if (param_type == QN_PARAM_ARTIFACT && allowed) {
            qn_yaml_node_error (ctx, allowed, "artifact parameter '%s' cannot have 'allowed'",
                                qn_yaml_echo (key->value, echo));
            allowed = NULL;
        }
        if (allowed)
            s_parse_allowed (ctx, param, allowed, key);
        if (dflt && !qn_yaml_is_null (dflt)) {
            char *message = NULL;
            param->default_value = qn_workflow_param_check (param, dflt->value, &message);
            if (!param->default_value) {
                qn_yaml_node_error (ctx, dflt, "default of %s",
                                    message? message: "out of memory");
                free (message);
            }
        }
    }
}

void
qn_params_free (qn_param_t *params, size_t count)
{
    for (size_t i = 0; params && i < count; i++) {
        free (params [i].name);
        free (params [i].default_value);
        free (params [i].description);
        for (size_t a = 0; params [i].allowed && a < params [i].allowed_count; a++)
            free (params [i].allowed [a]);
        free (params [i].allowed);
    }
    free (params);
}


//  ---------------------------------------------------------------------
//  Checking a value

//  "file:" or "dir:" and exactly 64 hex digits (a SHA-256), nothing else.
//  The prefix is case-sensitive; the hex is not.
static bool
s_is_artifact_ref (const char *value)
{
    const char *hex = strncmp (value, "file:", 5) == 0? value + 5
                    : strncmp (value, "dir:", 4) == 0? value + 4: NULL;
    if (!hex)
        return false;
    size_t len = 0;
    while (len < 64 && isxdigit ((unsigned char) hex [len]))
        len++;
    return len == 64 && hex [len] == '\0';
}

const char *
qn_param_type_name (qn_param_type_t type)
{
    switch (type) {
        case QN_PARAM_INT:      return "int";
        case QN_PARAM_FLOAT:    return "float";
        case QN_PARAM_BOOL:     return "bool";
        case QN_PARAM_ARTIFACT: return "artifact";
        default:                return "string";
    }
}

char *
qn_workflow_param_check (const qn_param_t *param, const char *value, char **error_p)
{
    assert (param);
    qn_yaml_echo_t echo;
    if (error_p)
        *error_p = NULL;
    if (!value)
        value = "";
    char *canonical = NULL;
    bool ok = true;
    if (strlen (value) > S_PARAM_VALUE_MAX)
        ok = false;
    else
    if (param->type == QN_PARAM_INT) {
        char *end = NULL;
        errno = 0;
        long long number = strtoll (value, &end, 10);
        (void) number;
        ok = *value && !isspace ((unsigned char) *value) && errno == 0 && end && *end == '\0';
        if (ok)
            canonical = strdup (value);
    }
    else
    if (param->type == QN_PARAM_FLOAT) {
        char *end = NULL;
        errno = 0;
        double number = strtod (value, &end);
        //  Decimal only: no hex floats, inf or nan
        ok = *value && !isspace ((unsigned char) *value) && errno == 0 && end && *end == '\0'
          && isfinite (number) && !strpbrk (value, "xXnNiI");
        if (ok)
            canonical = strdup (value);
    }
    else
    if (param->type == QN_PARAM_BOOL) {
        bool truth = false;
        ok = qn_params_bool (value, &truth) == 0;
        if (ok)
            canonical = strdup (truth? "true": "false");
    }
    else
    if (param->type == QN_PARAM_ARTIFACT) {
        ok = s_is_artifact_ref (value);
        if (ok)
            canonical = strdup (value);
        //  Hex as qanat put prints it, so that equal references compare equal
        for (char *c = canonical? strchr (canonical, ':'): NULL; c && *c; c++)
            *c = (char) tolower ((unsigned char) *c);
    }
    else
        canonical = strdup (value);
    if (!ok) {
        if (error_p && param->type == QN_PARAM_ARTIFACT)
            *error_p = qn_yaml_format ("parameter '%s' wants an artifact reference "
                                       "(file:<sha256> or dir:<sha256>, as qanat put "
                                       "prints), not '%s'", param->name,
                                       qn_yaml_echo (value, echo));
        else
        if (error_p)
            *error_p = qn_yaml_format ("parameter '%s' wants %s %s, not '%s'", param->name,
                                       param->type == QN_PARAM_INT? "an": "a",
                                       param->type == QN_PARAM_STRING
                                       ? "string of at most 4096 bytes"
                                       : qn_param_type_name (param->type),
                                       qn_yaml_echo (value, echo));
        return NULL;
    }
    if (!canonical)
        return NULL;
    if (param->allowed_count) {
        bool found = false;
        for (size_t i = 0; i < param->allowed_count && !found; i++)
            found = strcmp (param->allowed [i], canonical) == 0;
        if (!found) {
            if (error_p) {
                char *list = NULL;
                size_t size = 0;
                FILE *stream = open_memstream (&list, &size);
                for (size_t i = 0; stream && i < param->allowed_count; i++)
                    fprintf (stream, "%s%s", i? ", ": "", param->allowed [i]);
                if (stream)
                    fclose (stream);
                *error_p = qn_yaml_format ("parameter '%s' must be one of: %s (not '%s')",
                                           param->name, list? list: "",
                                           qn_yaml_echo (value, echo));
                free (list);
            }
            free (canonical);
            return NULL;
        }
    }
    return canonical;
}


//  ---------------------------------------------------------------------
//  A run's values

//  Every problem is reported, one per line, so a user fixes a command line
//  in one go.  The last override of a name wins.
qn_kv_t *
qn_params_resolve (const qn_param_t *params, size_t param_count,
                   const qn_kv_t *overrides, size_t count, char **error_p)
{
    if (error_p)
        *error_p = NULL;
    if (!overrides)
        count = 0;
    char *errors = NULL;
    size_t size = 0;
    FILE *stream = open_memstream (&errors, &size);
    if (!stream)
        return NULL;
    bool failed = false;
    qn_yaml_echo_t echo;

    for (size_t i = 0; i < count; i++) {
        const char *name = overrides [i].key;
        bool known = false;
        for (size_t j = 0; name && j < param_count && !known; j++)
            known = strcmp (params [j].name, name) == 0;
        if (known)
            continue;
        fprintf (stream, "%sunknown parameter '%s'", failed? "\n": "",
                 qn_yaml_echo (name? name: "", echo));
        if (param_count == 0)
            fprintf (stream, " (this workflow declares no parameters)");
        else {
            fprintf (stream, " (declared: ");
            for (size_t j = 0; j < param_count; j++)
                fprintf (stream, "%s%s", j? ", ": "", params [j].name);
            fprintf (stream, ")");
        }
        failed = true;
    }
    qn_kv_t *pairs = (qn_kv_t *) calloc (param_count + 1, sizeof (qn_kv_t));
    if (!pairs)
        failed = true;
    for (size_t j = 0; pairs && j < param_count; j++) {
        const qn_param_t *param = &params [j];
        const char *value = param->default_value;
        for (size_t i = 0; i < count; i++)
            if (overrides [i].key && strcmp (overrides [i].key, param->name) == 0)
                value = overrides [i].value? overrides [i].value: "";
        if (!value) {
            fprintf (stream, "%sparameter '%s' is required (it has no default)",
                     failed? "\n": "", param->name);
            failed = true;
            continue;
        }
        char *message = NULL;
        char *canonical = qn_workflow_param_check (param, value, &message);
        if (!canonical) {
            fprintf (stream, "%s%s", failed? "\n": "", message? message: "out of memory");
            free (message);
            failed = true;
            continue;
        }
        pairs [j].key = strdup (param->name);
        pairs [j].value = canonical;
        if (!pairs [j].key) {
            fprintf (stream, "%sout of memory", failed? "\n": "");
            failed = true;
        }
    }
    fclose (stream);
    if (failed) {
        qn_kv_free (pairs, param_count);
        if (error_p)
            *error_p = errors;
        else
            free (errors);
        return NULL;
    }
    free (errors);
    return pairs;
}

int
qn_params_bool (const char *text, bool *value_p)
{
    static const char *yes [] = { "true", "yes", "on", "1", NULL };
    static const char *no [] = { "false", "no", "off", "0", NULL };
    for (size_t i = 0; text && yes [i]; i++)
        if (strcasecmp (text, yes [i]) == 0) {
            *value_p = true;
            return 0;
        }
    for (size_t i = 0; text && no [i]; i++)
        if (strcasecmp (text, no [i]) == 0) {
            *value_p = false;
            return 0;
        }
    return -1;
}
