/*  qn_wf_command - a task's command with its ${{ … }} references.  See
    qn_wf_command.h.

    One of the files of the qn_workflow class: it implements part of
    qn_workflow.h, so the include checker counts it with qn_workflow.
*/
#include <assert.h>
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qn_wf_command.h"
#include "qn_shellref.h"


//  ---------------------------------------------------------------------
//  Expanding references

//  What a command's ${{ … }} references may name, and the secrets they
//  named (collected while rewriting shell scripts)
typedef struct {
    const qn_kv_t *params;
    size_t count;
    char **secrets;
    size_t secret_count;
    const qn_task_t *task;      //  its matrix values, for matrix.KEY
} s_refs_t;

typedef enum {
    S_EXPAND_EXEC,              //  an argument for exec: values in, secrets refused
    S_EXPAND_IDENTITY,          //  the cache key's text: values in, secrets by name
    S_EXPAND_IDENTITY_QUOTED    //  the same for a shell script: values single-quoted
} s_expand_t;

//  prefix + name upper-cased, every other character '_' (QANAT_PARAM_MY_LR)
static char *
s_env_variable (const char *prefix, const char *name, size_t len)
{
    size_t plen = strlen (prefix);
    char *variable = (char *) malloc (plen + len + 1);
    if (!variable)
        return NULL;
    memcpy (variable, prefix, plen);
    for (size_t i = 0; i < len; i++)
        variable [plen + i] = isalnum ((unsigned char) name [i])
                            ? (char) toupper ((unsigned char) name [i]): '_';
    variable [plen + len] = '\0';
    return variable;
}

//  value inside single quotes for the shell: ' becomes '\''
static void
s_shell_quote (FILE *stream, const char *value)
{
    fputc ('\'', stream);
    for (const char *c = value; *c; c++)
        if (*c == '\'')
            fputs ("'\\''", stream);
        else
            fputc (*c, stream);
    fputc ('\'', stream);
}

//  The parameter a reference's inner text names ("params.lr"), or NULL
static const qn_kv_t *
s_find_param (const s_refs_t *refs, const char *name, size_t len)
{
    for (size_t p = 0; p < refs->count; p++)
        if (strlen (refs->params [p].key) == len && strncmp (refs->params [p].key, name, len) == 0)
            return &refs->params [p];
    return NULL;
}

//  The matrix value a reference's key names ("lr" of "matrix.lr"), or NULL
static const qn_kv_t *
s_find_matrix (const s_refs_t *refs, const char *key, size_t len)
{
    for (size_t k = 0; refs->task && k < refs->task->matrix_count; k++)
        if (strlen (refs->task->matrix [k].key) == len
        &&  strncmp (refs->task->matrix [k].key, key, len) == 0)
            return &refs->task->matrix [k];
    return NULL;
}

//  The value a reference names: params.NAME or matrix.KEY; NULL for none
static const qn_kv_t *
s_find_value (const s_refs_t *refs, const char *ref, size_t len)
{
    if (len > 7 && strncmp (ref, "params.", 7) == 0)
        return s_find_param (refs, ref + 7, len - 7);
    if (len > 7 && strncmp (ref, "matrix.", 7) == 0)
        return s_find_matrix (refs, ref + 7, len - 7);
    return NULL;
}

//  "unknown …" for a reference that names neither a parameter nor a secret
static char *
s_unknown_ref (const char *ref, size_t len)
{
    int shown = (int) (len > 64? 64: len);
    if (len > 7 && strncmp (ref, "params.", 7) == 0)
        return qn_yaml_format ("unknown parameter '%.*s' in '${{ %.*s }}'", shown - 7, ref + 7,
                               shown, ref);
    if (len > 7 && strncmp (ref, "matrix.", 7) == 0)
        return qn_yaml_format ("unknown matrix key '%.*s' in '${{ %.*s }}'", shown - 7, ref + 7,
                               shown, ref);
    return qn_yaml_format ("unknown reference '${{ %.*s }}' (a command may use params.NAME, "
                           "matrix.KEY and secrets.NAME)", shown, ref);
}

//  A secret name as the vault accepts it: 1 to 128 of [A-Za-z0-9_.-]
static bool
s_secret_name_ok (const char *name, size_t len)
{
    if (len == 0 || len > 128)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!isalnum ((unsigned char) name [i]) && !strchr ("_.-", name [i]))
            return false;
    return true;
}

//  qn_shellref's resolver: params.NAME → QANAT_PARAM_<NAME>, secrets.NAME
//  → QANAT_SECRET_<NAME> (and the secret remembered for env).
static char *
s_resolve_ref (void *arg, const char *ref, size_t len, char **error_p)
{
    s_refs_t *refs = (s_refs_t *) arg;
    if (len > 7 && strncmp (ref, "params.", 7) == 0 && s_find_param (refs, ref + 7, len - 7))
        return s_env_variable ("QANAT_PARAM_", ref + 7, len - 7);
    if (len > 7 && strncmp (ref, "matrix.", 7) == 0 && s_find_matrix (refs, ref + 7, len - 7))
        return s_env_variable ("QANAT_MATRIX_", ref + 7, len - 7);
    if (len > 8 && strncmp (ref, "secrets.", 8) == 0 && s_secret_name_ok (ref + 8, len - 8)) {
        char *secret = strndup (ref + 8, len - 8);
        bool known = false;
        for (size_t i = 0; secret && i < refs->secret_count && !known; i++)
            known = strcmp (refs->secrets [i], secret) == 0;
        char **grown = secret && !known
                     ? (char **) realloc (refs->secrets, (refs->secret_count + 1) * sizeof (char *))
                     : NULL;
        if (grown) {
            refs->secrets = grown;
            refs->secrets [refs->secret_count++] = secret;
        }
        else
            free (secret);
        return s_env_variable ("QANAT_SECRET_", ref + 8, len - 8);
    }
    *error_p = s_unknown_ref (ref, len);
    return NULL;
}

//  Expands ${{ params.NAME }} in an argument that no shell reads: the
//  value is the argument's text, as is (exec passes it on untouched).
//  A secret is refused here: a command line is visible to every user of
//  the machine (ps, /proc).  NULL with *error_p on a bad reference.  The
//  identity modes make the text a cache key hashes instead (see
//  qn_workflow_task_identity).
static char *
s_expand_literal (const char *text, s_expand_t mode, const s_refs_t *refs, char **error_p)
{
    char *out = NULL;
    size_t size = 0;
    FILE *stream = open_memstream (&out, &size);
    if (!stream)
        return NULL;
    const char *at = text;
    bool failed = false;
    while (!failed) {
        const char *open = strstr (at, "${{");
        if (!open) {
            fputs (at, stream);
            break;
        }
        const char *close = strstr (open + 3, "}}");
        if (!close) {
            *error_p = strdup ("'${{' without its closing '}}'");
            failed = true;
            break;
        }
        fwrite (at, 1, (size_t) (open - at), stream);
        const char *name = open + 3;
        while (name < close && isspace ((unsigned char) *name))
            name++;
        const char *end = close;
        while (end > name && isspace ((unsigned char) end [-1]))
            end--;
        size_t len = (size_t) (end - name);
        const qn_kv_t *found = s_find_value (refs, name, len);
        if (found && mode == S_EXPAND_IDENTITY_QUOTED)
            s_shell_quote (stream, found->value);
        else
        if (found)
            fputs (found->value, stream);
        else
        if (mode != S_EXPAND_EXEC && len > 8 && strncmp (name, "secrets.", 8) == 0)
            fwrite (open, 1, (size_t) (close + 2 - open), stream);     //  by its name
        else {
            *error_p = len > 8 && strncmp (name, "secrets.", 8) == 0
                     ? qn_yaml_format ("a secret cannot be an argument of a command run without a "
                                       "shell (any user of the machine sees it in ps); pass it in "
                                       "'env' and read the variable")
                     : s_unknown_ref (name, len);
            failed = true;
            break;
        }
        at = close + 2;
    }
    fclose (stream);
    if (failed) {
        free (out);
        return NULL;
    }
    return out;
}

//  Is argument i of the task a script a shell reads?  The string of
//  run: "…", and in a list [sh|bash|…, OPTIONS, -c, SCRIPT, …] the SCRIPT.
static bool
s_is_shell_script (const qn_task_t *task, size_t i)
{
    if (task->shell)
        return i == task->argc - 1;
    const char *program = strrchr (task->argv [0], '/');
    program = program? program + 1: task->argv [0];
    const char *shells [] = { "sh", "bash", "dash", "ksh", "zsh", "ash", "mksh", NULL };
    bool shell = false;
    for (size_t s = 0; shells [s] && !shell; s++)
        shell = strcmp (program, shells [s]) == 0;
    bool dash_c = false;
    for (size_t j = 1; shell && j < task->argc; j++) {
        const char *arg = task->argv [j];
        bool option = (arg [0] == '-' || arg [0] == '+') && arg [1] && strcmp (arg, "--") != 0;
        if (!option)
            return dash_c && j == i;    //  the first operand: -c's script, or a file
        if (arg [0] == '-' && strchr (arg + 1, 'c'))
            dash_c = true;
        if ((strcmp (arg, "-o") == 0 || strcmp (arg, "+o") == 0) && j + 1 < task->argc)
            j++;                        //  -o NAME
    }
    return false;
}

//  Argument i of the task with its references made: a shell script gets
//  variable expansions (qn_shellref), any other argument the values.
static char *
s_expand_arg (const qn_task_t *task, size_t i, s_refs_t *refs, char **error_p)
{
    if (!s_is_shell_script (task, i))
        return s_expand_literal (task->argv [i], S_EXPAND_EXEC, refs, error_p);
    size_t offset;
    char *script = qn_shellref_rewrite (task->argv [i], s_resolve_ref, refs, &offset, error_p);
    if (!script && *error_p && strncmp (*error_p, "unknown", 7) != 0) {
        //  Say where: the reference and a little of what follows it
        const char *at = task->argv [i] + offset;
        size_t shown = strcspn (at, "\n");
        char *located = qn_yaml_format ("%s (at '%.*s')", *error_p, (int) (shown > 40? 40: shown),
                                        at);
        free (*error_p);
        *error_p = located;
    }
    return script;
}

//  The task's arguments made to run (identity false) or for its cache key
static char **
s_task_args (const qn_task_t *task, const qn_kv_t *params, size_t count, bool identity,
             char **error_p)
{
    assert (task);
    *error_p = NULL;
    char **argv = (char **) calloc (task->argc + 1, sizeof (char *));
    if (!argv)
        return NULL;
    s_refs_t refs = { params, count, NULL, 0, task };
    for (size_t i = 0; i < task->argc; i++) {
        if (identity)
            argv [i] = s_expand_literal (task->argv [i], s_is_shell_script (task, i)
                                         ? S_EXPAND_IDENTITY_QUOTED: S_EXPAND_IDENTITY,
                                         &refs, error_p);
        else
            argv [i] = s_expand_arg (task, i, &refs, error_p);
        if (!argv [i]) {
            for (size_t j = 0; j < i; j++)
                free (argv [j]);
            free (argv);
            argv = NULL;
            break;
        }
    }
    for (size_t i = 0; i < refs.secret_count; i++)
        free (refs.secrets [i]);
    free (refs.secrets);
    return argv;
}

char **
qn_workflow_task_argv (const qn_task_t *task, const qn_kv_t *params, size_t count,
                       char **error_p)
{
    return s_task_args (task, params, count, false, error_p);
}

char **
qn_workflow_task_identity (const qn_task_t *task, const qn_kv_t *params, size_t count,
                           char **error_p)
{
    return s_task_args (task, params, count, true, error_p);
}


//  ---------------------------------------------------------------------
//  Checking a task's command when the workflow is read

//  Every ${{ … }} in the command must name a declared parameter or a
//  secret, and sit where it can be made data (qn_shellref).  A secret in
//  a shell string reaches the task through QANAT_SECRET_<NAME>, added
//  here to the task's env as "${{ secrets.NAME }}" so that it is resolved,
//  checked and redacted like any other secret in env.
void
qn_wf_command_check (qn_yaml_ctx_t *ctx, qn_task_t *task, qn_yaml_node_t *node,
                     const qn_param_t *params, size_t param_count)
{
    qn_yaml_echo_t echo;
    if (!task->argv)
        return;
    qn_kv_t *names = (qn_kv_t *) calloc (param_count + 1, sizeof (qn_kv_t));
    if (!names) {
        ctx->oom = true;
        return;
    }
    for (size_t p = 0; p < param_count; p++) {
        names [p].key = params [p].name;
        names [p].value = (char *) "";
    }
    s_refs_t refs = { names, param_count, NULL, 0, task };
    for (size_t i = 0; i < task->argc; i++) {
        char *error = NULL;
        char *expanded = s_expand_arg (task, i, &refs, &error);
        if (!expanded && error)
            qn_yaml_node_error (ctx, node, "%s in the 'run' of task '%s'", error,
                                qn_yaml_echo (task->name, echo));
        free (expanded);
        free (error);
    }
    free (names);
    for (size_t i = 0; i < refs.secret_count; i++) {
        const char *secret = refs.secrets [i];
        char *variable = s_env_variable ("QANAT_SECRET_", secret, strlen (secret));
        char *value = qn_yaml_format ("${{ secrets.%s }}", secret);
        bool clash = false;
        for (size_t e = 0; variable && e < task->env_count && !clash; e++)
            if (strcmp (task->env [e].key, variable) == 0) {
                if (strcmp (task->env [e].value, value) != 0)
                    qn_yaml_node_error (ctx, node, "secrets '%s' and '%s' both become %s in the "
                                        "'run' of task '%s'", qn_yaml_echo (secret, echo),
                                        task->env [e].value, variable, task->name);
                clash = true;
            }
        qn_kv_t *env = variable && value && !clash
                     ? (qn_kv_t *) realloc (task->env, (task->env_count + 1) * sizeof (qn_kv_t))
                     : NULL;
        if (env) {
            task->env = env;
            task->env [task->env_count].key = variable;
            task->env [task->env_count].value = value;
            task->env_count++;
            variable = value = NULL;
        }
        else
        if (!clash)
            ctx->oom = true;
        free (variable);
        free (value);
        free (refs.secrets [i]);
    }
    free (refs.secrets);
}
