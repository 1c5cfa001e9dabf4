/*  qn_shellref - ${{ … }} references in a shell string, made data.
    See qn_shellref.h for the rule; this file is the lexer that finds the
    quoting context of each reference.

    It follows POSIX sh: quotes, backslashes, $(…), $((…)), ${…},
    backticks, comments and here-documents (several per line, <<- too).
    Contexts nest on a small stack; a script nested deeper than that is
    refused rather than guessed at.
*/
#include <assert.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "qn_shellref.h"

#define S_DEPTH_MAX     64
#define S_HEREDOC_MAX   16

typedef enum {
    S_TOP,          //  unquoted
    S_SQ,           //  '…'
    S_DQ,           //  "…"
    S_BQ,           //  `…`
    S_CMD,          //  $(…)
    S_ARITH,        //  $((…))
    S_PARAM,        //  ${…} outside double quotes
    S_PARAM_DQ,     //  ${…} inside double quotes
    S_COMMENT       //  # … to the end of the line
} s_ctx_t;

typedef struct {
    size_t start, len;          //  the delimiter word as written
    bool quoted;                //  <<'EOF': the body is never expanded
    bool strip_tabs;            //  <<-EOF
} s_heredoc_t;

typedef struct {
    const char *text;
    size_t pos;
    s_ctx_t stack [S_DEPTH_MAX];
    int parens [S_DEPTH_MAX];   //  open ( inside $(…) and $((…))
    size_t depth;               //  stack [depth - 1] is the context
    s_heredoc_t heredocs [S_HEREDOC_MAX];
    size_t heredoc_count;       //  announced on this line, bodies to come
    FILE *out;
    qn_shellref_resolve_fn *resolve;
    void *arg;
    char *error;
    size_t error_at;
} s_lexer_t;

static void
s_fail (s_lexer_t *self, size_t at, const char *format, ...)
{
    if (self->error)
        return;
    va_list args;
    va_start (args, format);
    if (vasprintf (&self->error, format, args) == -1)
        self->error = NULL;
    va_end (args);
    if (!self->error)
        self->error = strdup ("out of memory");
    self->error_at = at;
}

static bool
s_at (s_lexer_t *self, const char *prefix)
{
    return strncmp (self->text + self->pos, prefix, strlen (prefix)) == 0;
}

static void
s_push (s_lexer_t *self, s_ctx_t ctx)
{
    if (self->depth == S_DEPTH_MAX) {
        s_fail (self, self->pos, "the command nests quotes and substitutions more than %d deep",
                S_DEPTH_MAX);
        return;
    }
    self->parens [self->depth] = 0;
    self->stack [self->depth++] = ctx;
}

static void
s_copy (s_lexer_t *self, size_t count)
{
    size_t left = strlen (self->text + self->pos);
    if (count > left)
        count = left;
    fwrite (self->text + self->pos, 1, count, self->out);
    self->pos += count;
}

//  One reference at pos, written in the form its context needs.  form is
//  the context for that choice: S_TOP (quoted expansion), S_DQ (bare
//  expansion), S_SQ (close, expand, reopen); anything else is refused.
static void
s_reference (s_lexer_t *self, s_ctx_t form, const char *refused)
{
    size_t at = self->pos;
    const char *open = self->text + at + 3;
    const char *close = strstr (open, "}}");
    if (!close) {
        s_fail (self, at, "'${{' without its closing '}}'");
        return;
    }
    if (refused) {
        s_fail (self, at, "a ${{ … }} reference %s", refused);
        return;
    }
    const char *name = open, *end = close;
    while (name < end && (*name == ' ' || *name == '\t'))
        name++;
    while (end > name && (end [-1] == ' ' || end [-1] == '\t'))
        end--;
    char *error = NULL;
    char *variable = self->resolve (self->arg, name, (size_t) (end - name), &error);
    if (!variable) {
        s_fail (self, at, "%s", error? error: "out of memory");
        free (error);
        return;
    }
    if (form == S_TOP)
        fprintf (self->out, "\"${%s}\"", variable);
    else
    if (form == S_SQ)
        fprintf (self->out, "'\"${%s}\"'", variable);
    else
        fprintf (self->out, "${%s}", variable);
    free (variable);
    self->pos = (size_t) (close + 2 - self->text);
}

//  After << (or <<-): the delimiter word.  It is quoted if any part of it
//  is; quote removal gives the line that ends the body.
static void
s_heredoc_operator (s_lexer_t *self)
{
    s_copy (self, 2);
    bool strip = s_at (self, "-");
    if (strip)
        s_copy (self, 1);
    while (self->text [self->pos] == ' ' || self->text [self->pos] == '\t')
        s_copy (self, 1);
    size_t start = self->pos;
    bool quoted = false;
    char quote = 0;
    for (;;) {
        char c = self->text [self->pos];
        if (c == '\0' || (!quote && strchr (" \t\n;&|<>()", c)))
            break;
        if (c == '$' && s_at (self, "${{")) {
            s_fail (self, self->pos, "a ${{ … }} reference cannot be a here-document's delimiter");
            return;
        }
        if (quote && c == quote)
            quote = 0;
        else
        if (!quote && (c == '\'' || c == '"'))
            quote = c, quoted = true;
        else
        if (!quote && c == '\\' && self->text [self->pos + 1]) {
            quoted = true;
            s_copy (self, 1);
        }
        s_copy (self, 1);
    }
    if (self->pos == start)
        return;                 //  not a here-document after all; sh will say so
    if (self->heredoc_count == S_HEREDOC_MAX) {
        s_fail (self, start, "more than %d here-documents on one line", S_HEREDOC_MAX);
        return;
    }
    s_heredoc_t *doc = &self->heredocs [self->heredoc_count++];
    doc->start = start;
    doc->len = self->pos - start;
    doc->quoted = quoted;
    doc->strip_tabs = strip;
}

//  Does line (len bytes) end the body of doc?
static bool
s_heredoc_ends (s_lexer_t *self, const s_heredoc_t *doc, const char *line, size_t len)
{
    if (doc->strip_tabs)
        while (len && *line == '\t')
            line++, len--;
    //  The delimiter after quote removal, compared byte by byte
    const char *word = self->text + doc->start;
    size_t w = 0, l = 0;
    char quote = 0;
    while (w < doc->len) {
        char c = word [w];
        if (quote && c == quote) {
            quote = 0;
            w++;
            continue;
        }
        if (!quote && (c == '\'' || c == '"')) {
            quote = c;
            w++;
            continue;
        }
        if (!quote && c == '\\' && w + 1 < doc->len)
            c = word [++w];
        if (l == len || line [l] != c)
            return false;
        w++, l++;
    }
    return l == len;
}

//  The bodies of the here-documents announced on the line that just
//  ended, in order.  References in an expanding body take the bare form.
static void
s_heredoc_bodies (s_lexer_t *self)
{
    for (size_t d = 0; d < self->heredoc_count && !self->error; d++) {
        const s_heredoc_t *doc = &self->heredocs [d];
        while (self->text [self->pos] && !self->error) {
            const char *line = self->text + self->pos;
            const char *newline = strchr (line, '\n');
            size_t len = newline? (size_t) (newline - line): strlen (line);
            if (s_heredoc_ends (self, doc, line, len)) {
                s_copy (self, len + (newline? 1: 0));
                break;
            }
            size_t stop = self->pos + len;
            while (self->pos < stop && !self->error) {
                if (s_at (self, "${{"))
                    s_reference (self, S_DQ, doc->quoted
                                 ? "in a quoted here-document (<<'EOF') is never expanded; "
                                   "use an unquoted delimiter (<<EOF)"
                                 : NULL);
                else
                    s_copy (self, 1);
            }
            if (newline && !self->error)
                s_copy (self, 1);
        }
    }
    self->heredoc_count = 0;
}

static bool
s_word_start (s_lexer_t *self)
{
    if (self->pos == 0)
        return true;
    return strchr (" \t\n;&|()", self->text [self->pos - 1]) != NULL;
}

//  One step in an unquoted context (top level, $(…), `…`, ${…}).
static void
s_step_unquoted (s_lexer_t *self, s_ctx_t ctx)
{
    char c = self->text [self->pos];
    if (c == '\\') {
        s_copy (self, 2);
        return;
    }
    if (c == '\'' && ctx != S_PARAM_DQ) {
        s_copy (self, 1);
        s_push (self, S_SQ);
    }
    else
    if (c == '"') {
        s_copy (self, 1);
        s_push (self, S_DQ);
    }
    else
    if (c == '`') {
        s_copy (self, 1);
        if (ctx == S_BQ)
            self->depth--;
        else
            s_push (self, S_BQ);
    }
    else
    if (s_at (self, "$((")) {
        s_copy (self, 3);
        s_push (self, S_ARITH);
    }
    else
    if (s_at (self, "$(")) {
        s_copy (self, 2);
        s_push (self, S_CMD);
    }
    else
    if (s_at (self, "${")) {
        s_copy (self, 2);
        s_push (self, ctx == S_PARAM_DQ? S_PARAM_DQ: S_PARAM);
    }
    else
    if (c == '}' && (ctx == S_PARAM || ctx == S_PARAM_DQ)) {
        s_copy (self, 1);
        self->depth--;
    }
    else
    if (c == '(' && ctx == S_CMD) {
        s_copy (self, 1);
        self->parens [self->depth - 1]++;
    }
    else
    if (c == ')' && ctx == S_CMD) {
        s_copy (self, 1);
        if (self->parens [self->depth - 1]-- == 0)
            self->depth--;
    }
    else
    if (c == '#' && ctx != S_PARAM && ctx != S_PARAM_DQ && s_word_start (self)) {
        s_copy (self, 1);
        s_push (self, S_COMMENT);
    }
    else
    if (s_at (self, "<<") && !s_at (self, "<<<") && (ctx == S_TOP || ctx == S_CMD))
        s_heredoc_operator (self);
    else
    if (c == '\n' && (ctx == S_TOP || ctx == S_CMD)) {
        s_copy (self, 1);
        s_heredoc_bodies (self);
    }
    else
        s_copy (self, 1);
}

static void
s_step (s_lexer_t *self)
{
    s_ctx_t ctx = self->stack [self->depth - 1];
    char c = self->text [self->pos];
    if (c == '\\' && ctx != S_SQ && ctx != S_COMMENT
    &&  strncmp (self->text + self->pos + 1, "${{", 3) == 0) {
        //  It would escape the expansion we write in the reference's place
        s_fail (self, self->pos + 1, "a '\\' right before a ${{ … }} reference would escape it");
        return;
    }
    if (s_at (self, "${{")) {
        switch (ctx) {
            case S_SQ:       s_reference (self, S_SQ, NULL); break;
            case S_DQ:
            case S_PARAM_DQ:
            case S_COMMENT:  s_reference (self, S_DQ, NULL); break;
            case S_ARITH:    s_reference (self, S_TOP, "inside $((…)) would be evaluated as "
                                          "arithmetic; compute outside it"); break;
            default:         s_reference (self, S_TOP, NULL); break;
        }
        return;
    }
    switch (ctx) {
        case S_SQ:
            s_copy (self, 1);
            if (c == '\'')
                self->depth--;
            break;
        case S_COMMENT:
            if (c == '\n')
                self->depth--;      //  the newline is the enclosing context's
            else
                s_copy (self, 1);
            break;
        case S_ARITH:
            if (c == ')' && self->parens [self->depth - 1] == 0 && s_at (self, "))")) {
                s_copy (self, 2);
                self->depth--;
            }
            else {
                if (c == '(')
                    self->parens [self->depth - 1]++;
                if (c == ')')
                    self->parens [self->depth - 1]--;
                s_copy (self, 1);
            }
            break;
        case S_DQ:
            if (c == '"') {
                s_copy (self, 1);
                self->depth--;
            }
            else
            if (c == '\\')
                s_copy (self, 2);
            else
            if (c == '`' || c == '$')
                s_step_unquoted (self, S_PARAM_DQ);     //  only $…, `…` act here
            else
                s_copy (self, 1);
            break;
        default:
            s_step_unquoted (self, ctx);
            break;
    }
}

char *
qn_shellref_rewrite (const char *script, qn_shellref_resolve_fn *resolve, void *arg,
                     size_t *offset_p, char **error_p)
{
    assert (script);
    assert (resolve);
    *error_p = NULL;
    *offset_p = 0;
    s_lexer_t self;
    memset (&self, 0, sizeof self);
    self.text = script;
    self.resolve = resolve;
    self.arg = arg;
    self.stack [self.depth++] = S_TOP;
    char *out = NULL;
    size_t size = 0;
    self.out = open_memstream (&out, &size);
    if (!self.out) {
        *error_p = strdup ("out of memory");
        return NULL;
    }
    while (script [self.pos] && !self.error) {
        if (self.depth == 0)
            self.stack [self.depth++] = S_TOP;     //  a stray ) or }: sh will say so
        s_step (&self);
    }
    fclose (self.out);
    if (self.error) {
        free (out);
        *error_p = self.error;
        *offset_p = self.error_at;
        return NULL;
    }
    return out;
}

int
qn_shellref_present (const char *text)
{
    return text && strstr (text, "${{") != NULL;
}
