/*  test_shellref - a ${{ … }} reference in a shell string is data in every
    quoting context: each context × each hostile value runs under the real
    /bin/sh, which must print the value byte for byte and create nothing.
    Contexts that cannot be made safe are refused. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "qn_shellref.h"

#define S_VAR "QANAT_PARAM_V"

static char *
s_resolve (void *arg, const char *ref, size_t len, char **error_p)
{
    (void) arg;
    if (len == 8 && strncmp (ref, "params.v", 8) == 0)
        return strdup (S_VAR);
    *error_p = strdup ("unknown");
    return NULL;
}

//  Runs script under /bin/sh -c in dir with $QANAT_PARAM_V = value;
//  returns its stdout (malloc'd, *size_p bytes).
static char *
s_run (const char *dir, const char *script, const char *value, size_t *size_p)
{
    int pipes [2];
    assert_int_equal (pipe (pipes), 0);
    pid_t pid = fork ();
    assert_true (pid >= 0);
    if (pid == 0) {
        dup2 (pipes [1], 1);
        close (pipes [0]);
        close (pipes [1]);
        if (chdir (dir) != 0)
            _exit (126);
        setenv (S_VAR, value, 1);
        execl ("/bin/sh", "sh", "-c", script, (char *) NULL);
        _exit (127);
    }
    close (pipes [1]);
    char *out = NULL;
    size_t size = 0;
    FILE *stream = open_memstream (&out, &size);
    char buffer [4096];
    ssize_t got;
    while ((got = read (pipes [0], buffer, sizeof buffer)) > 0)
        fwrite (buffer, 1, (size_t) got, stream);
    close (pipes [0]);
    fclose (stream);
    int status;
    waitpid (pid, &status, 0);
    *size_p = size;
    return out;
}

//  Number of entries in dir besides . and ..
static int
s_entries (const char *dir)
{
    DIR *handle = opendir (dir);
    assert_non_null (handle);
    int count = 0;
    struct dirent *entry;
    while ((entry = readdir (handle)))
        if (strcmp (entry->d_name, ".") && strcmp (entry->d_name, ".."))
            count++;
    closedir (handle);
    return count;
}

//  A context: the script with @ where the reference goes, and what it
//  prints around the value.
typedef struct {
    const char *name;
    const char *script;
    const char *before, *after;
} s_context_t;

static const s_context_t s_contexts [] = {
    { "bare",            "printf '%s' @", "", "" },
    { "double quotes",   "printf '%s' \"@\"", "", "" },
    { "single quotes",   "printf '%s' '@'", "", "" },
    { "next to text",    "printf '%s' a@b", "a", "b" },
    { "dq next to text", "printf '%s' \"a@b\"", "a", "b" },
    { "sq next to text", "printf '%s' 'a@b'", "a", "b" },
    { "two in a word",   "printf '%s' @'-'\"@\"", "", "" },     //  checked by s_expected
    { "$(…)",            "printf '%s' \"$(printf '%s' @; printf x)\"", "", "x" },
    { "$(…) in dq",      "printf '%s' \"<$(printf '%s' \"@\"; printf x)>\"", "<", "x>" },
    { "$(…) with (",     "x=$( (printf '%s' @) ; printf x); printf '%s' \"$x\"", "", "x" },
    { "backticks",       "x=`printf '%s' @; printf x`; printf '%s' \"$x\"", "", "x" },
    { "backticks in dq", "printf '%s' \"`printf '%s' @; printf x`\"", "", "x" },
    { "${…:-}",          "printf '%s' \"${QN_UNSET_X:-@}\"", "", "" },
    { "${…:-} bare",     "printf '%s' ${QN_UNSET_X:-@}", "", "" },
    { "assignment",      "v=@; printf '%s' \"$v\"", "", "" },
    { "for list",        "for a in @; do printf '%s' \"$a\"; done", "", "" },
    { "case",            "case x in x) printf '%s' @;; esac", "", "" },
    { "heredoc",         "cat <<EOF\n<@>\nEOF", "<", ">\n" },
    { "heredoc <<-",     "cat <<-END\n\t<@>\n\tEND", "<", ">\n" },
    { "two heredocs",    "cat <<A; cat <<B\n1@\nA\n2\nB", "1", "\n2\n" },
    { "heredoc in $()",  "x=$(cat <<EOF\n<@>\nEOF\n); printf '%s' \"$x\"", "<", ">" },
    { "after a comment", "# a comment: @\nprintf '%s' \"@\"", "", "" },
    { "after sq '\\'",   "printf '%s' 'a\\'\"@\"", "a\\", "" },
    { "escaped quote",   "printf '%s' \"\\\"@\"", "\"", "" },
    { "multi-line",      "printf '%s' \\\n  @", "", "" },
};

static const char *s_values [] = {
    "$(touch PWN1)", "`touch PWN2`", "'", "\"", "\\", "\n", "a\nb\n", ";touch PWN3",
    "&& touch PWN4", "$HOME", "*", "x'; touch PWN5; echo '", "\"; touch PWN6; echo \"",
    "\nEOF\ntouch PWN7\n", "\nA\ntouch PWN8\n", "${{ params.v }}", "$((1+1))", "-n", "",
    "}}", "' \"$(touch PWN9)\" '", "\\$(touch PWN10)", "$IFS", "~", "a b  c",
};

//  What the context prints for value: before + value + after; "two in a
//  word" prints the value twice around '-'.
static char *
s_expected (const s_context_t *context, const char *value, size_t *size_p)
{
    char *out = NULL;
    if (strcmp (context->name, "two in a word") == 0)
        assert_true (asprintf (&out, "%s-%s", value, value) >= 0);
    else
    if (strcmp (context->name, "after a comment") == 0)
        assert_true (asprintf (&out, "%s", value) >= 0);
    else
        assert_true (asprintf (&out, "%s%s%s", context->before, value, context->after) >= 0);
    *size_p = strlen (out);
    return out;
}

//  A command substitution strips trailing newlines (the shell's rule, not
//  ours): the contexts with $(…) print something after the value.
static void
s_check (const char *dir, const s_context_t *context, const char *value)
{
    //  The script with the reference in place of each @
    char *script = NULL;
    size_t size = 0;
    FILE *stream = open_memstream (&script, &size);
    for (const char *c = context->script; *c; c++)
        if (*c == '@')
            fputs ("${{ params.v }}", stream);
        else
            fputc (*c, stream);
    fclose (stream);

    char *error = NULL;
    size_t offset = 0;
    char *rewritten = qn_shellref_rewrite (script, s_resolve, NULL, &offset, &error);
    if (!rewritten)
        fail_msg ("%s: %s", context->name, error);
    //  The value is never script text
    if (*value && strlen (value) > 2)
        assert_null (strstr (rewritten, value));
    size_t got_size, want_size;
    char *got = s_run (dir, rewritten, value, &got_size);
    char *want = s_expected (context, value, &want_size);
    if (got_size != want_size || memcmp (got, want, want_size) != 0)
        fail_msg ("context '%s', value '%s':\n  script %s\n  printed '%.*s'\n  wanted  '%s'",
                  context->name, value, rewritten, (int) got_size, got, want);
    if (s_entries (dir) != 0)
        fail_msg ("context '%s', value '%s' created a file", context->name, value);
    free (got);
    free (want);
    free (rewritten);
    free (script);
}

static void
test_every_context_every_value (void **state)
{
    (void) state;
    char dir [] = "/tmp/qanat-shellref-XXXXXX";
    assert_non_null (mkdtemp (dir));
    //  A 4 KiB value of every printable byte but none NUL
    char big [4097];
    for (size_t i = 0; i < 4096; i++)
        big [i] = (char) (32 + i % 95);
    big [4096] = '\0';
    size_t contexts = sizeof s_contexts / sizeof s_contexts [0];
    size_t values = sizeof s_values / sizeof s_values [0];
    for (size_t c = 0; c < contexts; c++) {
        for (size_t v = 0; v < values; v++)
            s_check (dir, &s_contexts [c], s_values [v]);
        s_check (dir, &s_contexts [c], big);
    }
    rmdir (dir);
}

//  Where a value cannot be made data, the reference is refused, with the
//  offset of the reference.
static void
test_refused (void **state)
{
    (void) state;
    struct { const char *script; const char *error; size_t offset; } cases [] = {
        { "echo $((${{ params.v }} + 1))", "inside $((…)) would be evaluated as arithmetic", 8 },
        { "cat <<'EOF'\n${{ params.v }}\nEOF", "in a quoted here-document", 12 },
        { "cat <<\"EOF\"\nx ${{ params.v }}\nEOF", "in a quoted here-document", 14 },
        { "cat <<\\EOF\n${{ params.v }}\nEOF", "in a quoted here-document", 11 },
        { "echo \\${{ params.v }}", "right before a ${{ … }} reference", 6 },
        { "echo \"\\${{ params.v }}\"", "right before a ${{ … }} reference", 7 },
        { "echo ${{ params.v", "without its closing", 5 },
        { "echo ${{ params.nope }}", "unknown", 5 },
        { "cat <<${{ params.v }}\nx\n", "here-document's delimiter", 6 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases [0]; i++) {
        char *error = NULL;
        size_t offset = 99;
        char *out = qn_shellref_rewrite (cases [i].script, s_resolve, NULL, &offset, &error);
        if (out)
            fail_msg ("accepted: %s -> %s", cases [i].script, out);
        assert_non_null (error);
        if (!strstr (error, cases [i].error))
            fail_msg ("%s: error '%s' lacks '%s'", cases [i].script, error, cases [i].error);
        assert_int_equal (offset, cases [i].offset);
        free (error);
    }
    //  An even run of backslashes is no escape; '\' inside '…' is literal
    char *error = NULL;
    size_t offset;
    char *out = qn_shellref_rewrite ("echo \\\\${{ params.v }} '\\${{ params.v }}'", s_resolve,
                                     NULL, &offset, &error);
    assert_non_null (out);
    assert_string_equal (out, "echo \\\\\"${" S_VAR "}\" '\\'\"${" S_VAR "}\"''");
    free (out);
}

//  Deep nesting is refused, not overflowed; text without references is
//  left exactly as it was, whatever it holds.
static void
test_hostile_scripts (void **state)
{
    (void) state;
    char deep [1024];
    for (size_t i = 0; i < 200; i++)
        memcpy (deep + 2 * i, "$(", 2);
    deep [400] = '\0';
    char *error = NULL;
    size_t offset;
    char *out = qn_shellref_rewrite (deep, s_resolve, NULL, &offset, &error);
    assert_null (out);
    assert_non_null (strstr (error, "more than 64 deep"));
    free (error);
    const char *plain [] = { "", "'", "\"", "`", "$(", ")))", "}}}", "<<", "<<EOF", "cat <<'",
                             "#", "\\", "a\n<<A\n", "$((", "${", "'\"`$(" };
    for (size_t i = 0; i < sizeof plain / sizeof plain [0]; i++) {
        out = qn_shellref_rewrite (plain [i], s_resolve, NULL, &offset, &error);
        assert_non_null (out);
        assert_string_equal (out, plain [i]);
        free (out);
    }
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_every_context_every_value),
        cmocka_unit_test (test_refused),
        cmocka_unit_test (test_hostile_scripts),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
