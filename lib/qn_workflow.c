/*  qn_workflow - a parsed and validated workflow file (YAML, via libyaml).

    Parsing runs in two passes.  The first turns libyaml's event stream
    into a small tree of our own that keeps every node's position, refuses
    aliases and anchors, and bounds the nesting depth.  We do not use
    libyaml's document API because it silently resolves aliases and keeps
    no trace of duplicate keys.  The second pass walks the tree, checks
    every key and value, and builds the immutable workflow.

    Every problem becomes one "file:line:col: message" error; we keep
    going after an error so that a user fixes a file in one round trip.
    Only a broken YAML stream or a hostile input (too big, too deep) stops
    the parse early.  Errors come out sorted by position.
*/
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <strings.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>
#include <yaml.h>

#include "qn_workflow.h"
#include "qn_metric.h"
#include "qn_shellref.h"

#define S_MAX_INPUT     (1024 * 1024)
#define S_MAX_TASKS     10000
#define S_MAX_PARAMS    1000
#define S_PARAM_VALUE_MAX 4096
#define S_MAX_DEPTH     32
#define S_NAME_MAX      128
#define S_MAX_ERRORS    100     //  more are summarised in one line
#define S_MAX_SUGGEST   50      //  bounds the edit-distance work on hostile input
#define S_ECHO_MAX      64      //  user text echoed into messages is cut here
#define S_CYCLE_SHOWN   12      //  longer cycles are elided in the middle

//  ---------------------------------------------------------------------
//  The node tree built from libyaml events

typedef enum { S_SCALAR, S_SEQUENCE, S_MAPPING } s_kind_t;

typedef struct s_node_t s_node_t;
struct s_node_t {
    s_kind_t kind;
    char *value;                //  scalar text, NUL-terminated
    bool plain;                 //  plain (unquoted) scalar
    bool skip;                  //  mapping key to ignore: duplicate or not a scalar
    size_t line, col;           //  1-based
    s_node_t **items;           //  sequence items, or key, value, key, value...
    size_t count;
    size_t cap;
};

typedef struct {
    size_t line, col;
    size_t seq;                 //  discovery order, keeps the sort stable
    char *text;
} s_error_t;

typedef struct {
    const char *filename;
    s_error_t *errors;
    size_t count, cap;
    bool oom;
    const qn_param_t *params;   //  declared so far (parsed before the tasks)
    size_t param_count;
} s_ctx_t;

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
};

static const char *s_top_keys [] = {
    "name", "description", "params", "tasks", "keep_runs", "artifacts", NULL
};
static const char *s_store_keys [] = {
    "store", "bucket", "prefix", "endpoint", "region", "path_style", NULL
};
static const char *s_output_keys [] = { "path", "value", NULL };
static const char *s_input_keys [] = { "from", "param", "path", NULL };
static const char *s_task_keys [] = {
    "run", "needs", "env", "on", "resources", "retries", "retry_delay", "retry_max_delay",
    "retry_on", "timeout", "metrics", "checks", "backend", "slurm", "kubernetes",
    "outputs", "inputs", "cache", NULL
};
//  The backends a task may name, and the keys of each one's options block
static const char *s_backend_names [] = { "local", "slurm", "kubernetes", NULL };
static const char *s_slurm_keys [] = { "partition", "account", "qos", "sbatch_args", NULL };
static const char *s_kube_keys [] = {
    "image", "namespace", "node_selector", "tolerations", "service_account",
    "image_pull_secrets", NULL
};
static const char *s_toleration_keys [] = {
    "key", "operator", "value", "effect", "toleration_seconds", NULL
};
static const char *s_resource_keys [] = { "cpus", "memory", "gpus", NULL };
static const char *s_param_keys [] = { "default", "description", "type", "allowed", NULL };
static const char *s_check_entry_keys [] = { "expr", "severity", NULL };


//  ---------------------------------------------------------------------
//  Errors

static void
s_error (s_ctx_t *ctx, size_t line, size_t col, const char *format, ...)
{
    if (ctx->count == ctx->cap) {
        size_t cap = ctx->cap? ctx->cap * 2: 16;
        s_error_t *errors = (s_error_t *) realloc (ctx->errors, cap * sizeof (s_error_t));
        if (!errors) {
            ctx->oom = true;
            return;
        }
        ctx->errors = errors;
        ctx->cap = cap;
    }
    va_list args;
    va_start (args, format);
    char *text = NULL;
    if (vasprintf (&text, format, args) < 0)
        text = NULL;
    va_end (args);
    if (!text) {
        ctx->oom = true;
        return;
    }
    s_error_t *error = &ctx->errors [ctx->count];
    error->line = line;
    error->col = col;
    error->seq = ctx->count;
    error->text = text;
    ctx->count++;
}

static void
s_node_error (s_ctx_t *ctx, s_node_t *node, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    char *text = NULL;
    if (vasprintf (&text, format, args) < 0)
        text = NULL;
    va_end (args);
    if (!text) {
        ctx->oom = true;
        return;
    }
    s_error (ctx, node->line, node->col, "%s", text);
    free (text);
}

static int
s_error_compare (const void *a, const void *b)
{
    const s_error_t *x = (const s_error_t *) a;
    const s_error_t *y = (const s_error_t *) b;
    if (x->line != y->line)
        return x->line < y->line? -1: 1;
    if (x->col != y->col)
        return x->col < y->col? -1: 1;
    return x->seq < y->seq? -1: (x->seq > y->seq);
}

//  Joins the errors, sorted by position, into one malloc'd string of lines
//  (no trailing newline).  Frees the error list.
static char *
s_errors_take (s_ctx_t *ctx)
{
    if (ctx->count > 1)
        qsort (ctx->errors, ctx->count, sizeof (s_error_t), s_error_compare);
    char *result = NULL;
    size_t size = 0;
    FILE *stream = open_memstream (&result, &size);
    if (stream) {
        size_t shown = ctx->count < S_MAX_ERRORS? ctx->count: S_MAX_ERRORS;
        for (size_t i = 0; i < shown; i++)
            fprintf (stream, "%s%s:%zu:%zu: %s", i? "\n": "", ctx->filename,
                     ctx->errors [i].line, ctx->errors [i].col, ctx->errors [i].text);
        if (ctx->count > shown)
            fprintf (stream, "\n%s: %zu more errors not shown", ctx->filename,
                     ctx->count - shown);
        if (ctx->oom)
            fprintf (stream, "%s%s: out of memory", ctx->count? "\n": "", ctx->filename);
        if (fclose (stream) != 0) {
            free (result);
            result = NULL;
        }
    }
    for (size_t i = 0; i < ctx->count; i++)
        free (ctx->errors [i].text);
    free (ctx->errors);
    ctx->errors = NULL;
    ctx->count = ctx->cap = 0;
    return result;
}

//  Makes user text safe to echo in a message: control and non-ASCII bytes
//  become '?', long text is cut.  buf must hold S_ECHO_MAX + 4 bytes.
static const char *
s_echo (const char *text, char *buf)
{
    size_t i = 0;
    for (; text [i] && i < S_ECHO_MAX; i++) {
        unsigned char c = (unsigned char) text [i];
        buf [i] = (c >= 0x20 && c < 0x7f)? (char) c: '?';
    }
    if (text [i]) {
        memcpy (buf + i, "...", 3);
        i += 3;
    }
    buf [i] = '\0';
    return buf;
}

typedef char s_echo_buf_t [S_ECHO_MAX + 4];


//  ---------------------------------------------------------------------
//  Suggestions ("did you mean ...?")

//  Edit distance with two rows; strings longer than S_NAME_MAX are not
//  compared (they are never near a real name anyway).
static size_t
s_distance (const char *a, const char *b)
{
    size_t la = strlen (a), lb = strlen (b);
    if (la > S_NAME_MAX || lb > S_NAME_MAX)
        return SIZE_MAX;
    size_t row0 [S_NAME_MAX + 1], row1 [S_NAME_MAX + 1];
    size_t *prev = row0, *cur = row1;
    for (size_t j = 0; j <= lb; j++)
        prev [j] = j;
    for (size_t i = 1; i <= la; i++) {
        cur [0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t cost = a [i - 1] == b [j - 1]? 0: 1;
            size_t best = prev [j - 1] + cost;
            if (prev [j] + 1 < best)
                best = prev [j] + 1;
            if (cur [j - 1] + 1 < best)
                best = cur [j - 1] + 1;
            cur [j] = best;
        }
        size_t *swap = prev;
        prev = cur;
        cur = swap;
    }
    return prev [lb];
}

//  A candidate is close when it is at most two edits away (and not just
//  two edits from a one- or two-letter word), three edits between longer
//  words ("retry" for "retries"), or when one name is a prefix of the
//  other ("prep" for "prepare").  Returns the closest, or NULL.
static const char *
s_closest (const char *word, const char **candidates, size_t count)
{
    const char *best = NULL;
    size_t best_distance = SIZE_MAX;
    size_t word_len = strlen (word);
    for (size_t i = 0; i < count; i++) {
        const char *candidate = candidates [i];
        if (!candidate)
            continue;
        size_t distance = s_distance (word, candidate);
        if (distance == SIZE_MAX || distance == 0)
            continue;
        size_t cand_len = strlen (candidate);
        size_t shorter = word_len < cand_len? word_len: cand_len;
        bool prefix = shorter >= 3 && strncmp (word, candidate, shorter) == 0;
        bool near = (distance <= 2 && distance < cand_len)
                 || (distance == 3 && word_len >= 5 && cand_len >= 5);
        if ((near || prefix) && distance < best_distance) {
            best = candidate;
            best_distance = distance;
        }
    }
    return best;
}

static void
s_unknown_key (s_ctx_t *ctx, s_node_t *key, const char **known, const char *where)
{
    size_t count = 0;
    while (known [count])
        count++;
    const char *suggestion = s_closest (key->value, known, count);
    s_echo_buf_t echo;
    if (suggestion)
        s_node_error (ctx, key, "unknown key '%s'%s (did you mean '%s'?)",
                      s_echo (key->value, echo), where, suggestion);
    else
        s_node_error (ctx, key, "unknown key '%s'%s", s_echo (key->value, echo), where);
}


//  ---------------------------------------------------------------------
//  Pass one: events to tree

static void
s_node_free (s_node_t **node_p)
{
    s_node_t *node = *node_p;
    if (!node)
        return;
    for (size_t i = 0; i < node->count; i++)
        s_node_free (&node->items [i]);
    free (node->items);
    free (node->value);
    free (node);
    *node_p = NULL;
}

static s_node_t *
s_node_new (s_kind_t kind, yaml_mark_t mark)
{
    s_node_t *node = (s_node_t *) calloc (1, sizeof (s_node_t));
    if (node) {
        node->kind = kind;
        node->line = mark.line + 1;
        node->col = mark.column + 1;
    }
    return node;
}

static int
s_node_append (s_node_t *parent, s_node_t *child)
{
    if (parent->count == parent->cap) {
        size_t cap = parent->cap? parent->cap * 2: 4;
        s_node_t **items = (s_node_t **) realloc (parent->items, cap * sizeof (s_node_t *));
        if (!items)
            return -1;
        parent->items = items;
        parent->cap = cap;
    }
    parent->items [parent->count++] = child;
    return 0;
}

static bool
s_is_null (s_node_t *node)
{
    if (!node)
        return true;
    if (node->kind != S_SCALAR || !node->plain)
        return false;
    const char *v = node->value;
    return !*v || strcmp (v, "~") == 0 || strcmp (v, "null") == 0
        || strcmp (v, "Null") == 0 || strcmp (v, "NULL") == 0;
}

//  Position of a libyaml reader error, which carries a byte offset only.
static void
s_offset_position (const char *text, size_t len, size_t offset, size_t *line_p, size_t *col_p)
{
    size_t line = 1, col = 1;
    for (size_t i = 0; i < offset && i < len; i++) {
        if (text [i] == '\n') {
            line++;
            col = 1;
        }
        else
        if (((unsigned char) text [i] & 0xC0) != 0x80)
            col++;
    }
    *line_p = line;
    *col_p = col;
}

static void
s_syntax_error (s_ctx_t *ctx, yaml_parser_t *parser, const char *text, size_t len)
{
    const char *problem = parser->problem? parser->problem: "invalid YAML";
    if (parser->error == YAML_READER_ERROR) {
        size_t line, col;
        s_offset_position (text, len, parser->problem_offset, &line, &col);
        s_error (ctx, line, col, "YAML error: %s", problem);
    }
    else
    if (parser->error == YAML_MEMORY_ERROR)
        ctx->oom = true;
    else
    if (parser->context)
        s_error (ctx, parser->problem_mark.line + 1, parser->problem_mark.column + 1,
                 "YAML syntax error: %s (%s at line %zu)", problem, parser->context,
                 (size_t) parser->context_mark.line + 1);
    else
        s_error (ctx, parser->problem_mark.line + 1, parser->problem_mark.column + 1,
                 "YAML syntax error: %s", problem);
}

//  Reads the event stream into a tree.  Returns the document's root (NULL
//  for an empty stream) and sets *fatal when the stream is broken or
//  hostile, in which case the tree is not worth validating.
static s_node_t *
s_build_tree (s_ctx_t *ctx, const char *text, size_t len, bool *fatal)
{
    *fatal = false;
    yaml_parser_t parser;
    if (!yaml_parser_initialize (&parser)) {
        ctx->oom = true;
        *fatal = true;
        return NULL;
    }
    yaml_parser_set_input_string (&parser, (const unsigned char *) text, len);
    yaml_parser_set_encoding (&parser, YAML_UTF8_ENCODING);

    s_node_t *root = NULL;
    s_node_t *stack [S_MAX_DEPTH];
    size_t depth = 0;
    size_t documents = 0;
    bool done = false;

    while (!done) {
        yaml_event_t event;
        if (!yaml_parser_parse (&parser, &event)) {
            s_syntax_error (ctx, &parser, text, len);
            *fatal = true;
            break;
        }
        s_node_t *node = NULL;
        bool push = false;
        const char *anchor = NULL;

        switch (event.type) {
            case YAML_STREAM_END_EVENT:
                done = true;
                break;
            case YAML_DOCUMENT_START_EVENT:
                if (++documents > 1) {
                    s_error (ctx, event.start_mark.line + 1, event.start_mark.column + 1,
                             "only one YAML document is allowed in a workflow file");
                    *fatal = true;
                    done = true;
                }
                break;
            case YAML_ALIAS_EVENT:
                s_error (ctx, event.start_mark.line + 1, event.start_mark.column + 1,
                         "YAML aliases are not supported");
                //  A null stand-in keeps keys and values paired
                node = s_node_new (S_SCALAR, event.start_mark);
                if (node) {
                    node->plain = true;
                    node->value = strdup ("");
                }
                break;
            case YAML_SCALAR_EVENT:
                anchor = (const char *) event.data.scalar.anchor;
                node = s_node_new (S_SCALAR, event.start_mark);
                if (node) {
                    node->plain = event.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
                    node->value = strndup ((const char *) event.data.scalar.value,
                                           event.data.scalar.length);
                    if (node->value && strlen (node->value) != event.data.scalar.length)
                        s_error (ctx, node->line, node->col,
                                 "NUL characters are not allowed in strings");
                }
                break;
            case YAML_SEQUENCE_START_EVENT:
                anchor = (const char *) event.data.sequence_start.anchor;
                node = s_node_new (S_SEQUENCE, event.start_mark);
                push = true;
                break;
            case YAML_MAPPING_START_EVENT:
                anchor = (const char *) event.data.mapping_start.anchor;
                node = s_node_new (S_MAPPING, event.start_mark);
                push = true;
                break;
            case YAML_SEQUENCE_END_EVENT:
            case YAML_MAPPING_END_EVENT:
                if (depth > 0)
                    depth--;
                break;
            default:
                break;
        }
        if (anchor) {
            s_echo_buf_t echo;
            s_error (ctx, event.start_mark.line + 1, event.start_mark.column + 1,
                     "YAML anchors are not supported ('&%s')", s_echo (anchor, echo));
        }
        if (push && depth == S_MAX_DEPTH) {
            s_error (ctx, event.start_mark.line + 1, event.start_mark.column + 1,
                     "nesting is deeper than %d levels", S_MAX_DEPTH);
            s_node_free (&node);
            push = false;
            *fatal = true;
            done = true;
        }
        yaml_event_delete (&event);

        if (node) {
            if (node->kind == S_SCALAR && !node->value) {
                s_node_free (&node);
                ctx->oom = true;
                *fatal = true;
                break;
            }
            if (depth > 0) {
                if (s_node_append (stack [depth - 1], node)) {
                    s_node_free (&node);
                    ctx->oom = true;
                    *fatal = true;
                    break;
                }
            }
            else
            if (!root)
                root = node;
            else
                s_node_free (&node);        //  cannot happen with one document
            if (push && node)
                stack [depth++] = node;
        }
        else
        if (push) {
            ctx->oom = true;
            *fatal = true;
            break;
        }
    }
    yaml_parser_delete (&parser);
    return root;
}


//  ---------------------------------------------------------------------
//  Duplicate keys

typedef struct {
    const char *key;
    size_t index;
} s_key_ref_t;

static int
s_key_ref_compare (const void *a, const void *b)
{
    const s_key_ref_t *x = (const s_key_ref_t *) a;
    const s_key_ref_t *y = (const s_key_ref_t *) b;
    int rc = strcmp (x->key, y->key);
    if (rc)
        return rc;
    return x->index < y->index? -1: (x->index > y->index);
}

//  Marks, everywhere in the tree, mapping keys that are not scalars or that
//  repeat an earlier key, and reports them at the later occurrence.  Sorts
//  keys rather than comparing pairs: a hostile mapping may be huge.
static void
s_mark_duplicates (s_ctx_t *ctx, s_node_t *node, bool is_root, bool is_tasks)
{
    if (node->kind == S_MAPPING) {
        size_t pairs = node->count / 2;
        s_key_ref_t *refs = (s_key_ref_t *) calloc (pairs? pairs: 1, sizeof (s_key_ref_t));
        if (!refs) {
            ctx->oom = true;
            return;
        }
        size_t used = 0;
        for (size_t i = 0; i < pairs; i++) {
            s_node_t *key = node->items [2 * i];
            if (key->kind != S_SCALAR) {
                s_node_error (ctx, key, "mapping keys must be strings");
                key->skip = true;
            }
            else {
                refs [used].key = key->value;
                refs [used].index = i;
                used++;
            }
        }
        qsort (refs, used, sizeof (s_key_ref_t), s_key_ref_compare);
        size_t first = 0;           //  start of the current run of equal keys
        for (size_t i = 1; i < used; i++) {
            if (strcmp (refs [i].key, refs [first].key) != 0) {
                first = i;
                continue;
            }
            s_node_t *key = node->items [2 * refs [i].index];
            s_node_t *orig = node->items [2 * refs [first].index];
            s_echo_buf_t echo;
            key->skip = true;
            if (is_tasks)
                s_node_error (ctx, key, "duplicate task '%s' (first defined at line %zu)",
                              s_echo (key->value, echo), orig->line);
            else
                s_node_error (ctx, key, "duplicate key '%s' (first defined at line %zu)",
                              s_echo (key->value, echo), orig->line);
        }
        free (refs);
    }
    //  The first 'tasks' at the top level holds tasks, not keys
    bool tasks_seen = false;
    for (size_t i = 0; i < node->count; i++) {
        bool child_is_tasks = false;
        if (is_root && node->kind == S_MAPPING && i % 2 == 1) {
            s_node_t *key = node->items [i - 1];
            if (!key->skip && !tasks_seen && strcmp (key->value, "tasks") == 0)
                child_is_tasks = tasks_seen = true;
        }
        s_mark_duplicates (ctx, node->items [i], false, child_is_tasks);
    }
}

//  The value of the first, non-duplicate occurrence of key, or NULL.
static s_node_t *
s_map_get (s_node_t *map, const char *key, s_node_t **key_p)
{
    for (size_t i = 0; i + 1 < map->count; i += 2) {
        s_node_t *k = map->items [i];
        if (!k->skip && strcmp (k->value, key) == 0) {
            if (key_p)
                *key_p = k;
            return map->items [i + 1];
        }
    }
    return NULL;
}

static bool
s_is_known (const char *key, const char **known)
{
    for (size_t i = 0; known [i]; i++)
        if (strcmp (key, known [i]) == 0)
            return true;
    return false;
}

//  Reports unknown keys of a mapping; where is e.g. " in task 'train'".
static void
s_check_keys (s_ctx_t *ctx, s_node_t *map, const char **known, const char *where)
{
    for (size_t i = 0; i + 1 < map->count; i += 2) {
        s_node_t *key = map->items [i];
        if (!key->skip && !s_is_known (key->value, known))
            s_unknown_key (ctx, key, known, where);
    }
}


//  ---------------------------------------------------------------------
//  Scalar conversions

//  What a command's ${{ … }} references may name, and the secrets they
//  named (collected while rewriting shell scripts)
typedef struct {
    const qn_kv_t *params;
    size_t count;
    char **secrets;
    size_t secret_count;
} s_refs_t;

typedef enum {
    S_EXPAND_EXEC,              //  an argument for exec: values in, secrets refused
    S_EXPAND_IDENTITY,          //  the cache key's text: values in, secrets by name
    S_EXPAND_IDENTITY_QUOTED    //  the same for a shell script: values single-quoted
} s_expand_t;

static char *
    s_expand_arg (const qn_task_t *task, size_t i, s_refs_t *refs, char **error_p);
static char *
    s_format (const char *format, ...);

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

static char *
s_strdup (s_ctx_t *ctx, const char *text)
{
    char *copy = strdup (text);
    if (!copy)
        ctx->oom = true;
    return copy;
}

//  Task, workflow and parameter names double as path components and
//  label values elsewhere, so they are kept to a safe alphabet.
static bool
s_valid_name (const char *name)
{
    size_t len = strlen (name);
    if (len == 0 || len > S_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char) name [i];
        if (!(isascii (c) && (isalnum (c) || c == '_' || c == '.' || c == '-')))
            return false;
    }
    return strcmp (name, ".") != 0 && strstr (name, "..") == NULL;
}

//  The same rule as the metrics file: one definition, in qn_metric.
static bool
s_valid_metric_name (const char *name)
{
    size_t len = strlen (name);
    return len <= S_NAME_MAX && qn_metric_name_valid (name, len);
}

static bool
s_valid_env_name (const char *name)
{
    size_t len = strlen (name);
    if (len == 0 || len > S_NAME_MAX)
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

//  Reads leading decimal digits at *text_p into *value_p; -1 on overflow
//  past max or when there are no digits.
static int
s_read_digits (const char **text_p, uint64_t max, uint64_t *value_p)
{
    const char *p = *text_p;
    uint64_t value = 0;
    if (!isdigit ((unsigned char) *p))
        return -1;
    while (isdigit ((unsigned char) *p)) {
        uint64_t digit = (uint64_t) (*p - '0');
        if (value > (max - digit) / 10)
            return -1;
        value = value * 10 + digit;
        p++;
    }
    *text_p = p;
    *value_p = value;
    return 0;
}

//  A non-negative integer field.  Quoted digits are accepted; plain
//  true/false and anything else are type errors.
static int
s_get_uint32 (s_ctx_t *ctx, s_node_t *node, const char *key, uint32_t *value_p)
{
    if (node->kind == S_SCALAR) {
        const char *p = node->value;
        uint64_t value;
        if (s_read_digits (&p, UINT32_MAX, &value) == 0 && *p == '\0') {
            *value_p = (uint32_t) value;
            return 0;
        }
        //  Tell overflow apart from non-numbers
        p = node->value;
        while (isdigit ((unsigned char) *p))
            p++;
        if (p != node->value && *p == '\0') {
            s_node_error (ctx, node, "value for '%s' is too large (at most %u)",
                          key, (unsigned) UINT32_MAX);
            return -1;
        }
    }
    s_node_error (ctx, node, "expected a non-negative integer for '%s'", key);
    return -1;
}

//  Memory: plain megabytes, or a number with M/G/T (optionally Mi/MB/MiB
//  and so on).  Binary units throughout: 1G = 1024 MB.
static int
s_get_memory (s_ctx_t *ctx, s_node_t *node, uint64_t *mb_p)
{
    if (node->kind == S_SCALAR) {
        const char *p = node->value;
        uint64_t value;
        if (s_read_digits (&p, UINT64_MAX, &value) == 0) {
            uint64_t scale = 0;
            if (*p == '\0')
                scale = 1;
            else {
                const char *units = "MGT";
                const char *unit = strchr (units, *p);
                if (*p && unit) {
                    const char *rest = p + 1;
                    if (*rest == '\0' || strcmp (rest, "i") == 0 || strcmp (rest, "B") == 0
                    ||  strcmp (rest, "iB") == 0)
                        scale = (uint64_t) 1 << (10 * (unit - units));
                }
            }
            if (scale) {
                if (value > UINT64_MAX / scale) {
                    s_node_error (ctx, node, "value for 'memory' is too large");
                    return -1;
                }
                *mb_p = value * scale;
                return 0;
            }
        }
    }
    s_node_error (ctx, node,
                  "expected a memory size for 'memory' (megabytes, or like 512M, 4G, 1Gi)");
    return -1;
}

//  Timeout: plain seconds, or units d/h/m/s in that order, each at most
//  once ("90s", "30m", "2h", "1h30m").
static int
s_get_duration (s_ctx_t *ctx, s_node_t *node, const char *key, uint32_t *seconds_p)
{
    if (node->kind == S_SCALAR && node->value [0]) {
        const char *p = node->value;
        uint64_t total = 0;
        uint64_t value;
        bool ok = true;
        if (s_read_digits (&p, UINT32_MAX, &value) == 0 && *p == '\0')
            total = value;
        else {
            static const char units [] = "dhms";
            static const uint64_t scales [] = { 86400, 3600, 60, 1 };
            size_t next_unit = 0;
            p = node->value;
            while (*p && ok) {
                if (s_read_digits (&p, UINT32_MAX, &value)) {
                    ok = false;
                    break;
                }
                const char *unit = *p? strchr (units + next_unit, *p): NULL;
                if (!unit) {
                    ok = false;
                    break;
                }
                size_t at = (size_t) (unit - units);
                total += value * scales [at];
                if (total > UINT32_MAX) {
                    ok = false;
                    break;
                }
                next_unit = at + 1;
                p++;
            }
        }
        if (ok && total <= UINT32_MAX) {
            *seconds_p = (uint32_t) total;
            return 0;
        }
    }
    s_node_error (ctx, node,
                  "expected a duration for '%s' (seconds, or like 90s, 30m, 2h, 1h30m)", key);
    return -1;
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
        for (size_t i = 0; i < self->param_count; i++) {
            free (self->params [i].name);
            free (self->params [i].default_value);
            free (self->params [i].description);
            s_strv_free (self->params [i].allowed, self->params [i].allowed_count);
        }
        free (self->params);
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

//  Per task, what we need after the tree walk for error positions.
typedef struct {
    s_node_t **need_nodes;      //  scalar of each entry in needs
    bool valid_name;
    s_node_t **stand_ins;       //  positions of needs implied by inputs (owned)
    size_t stand_in_count;
} s_task_extra_t;

#define S_MAX_ARTIFACTS 256     //  outputs, and inputs, per task

//  A list field that accepts one scalar or a sequence of scalars.
//  Returns the scalars through *items_p (pointers into the tree).
static int
s_scalar_list (s_ctx_t *ctx, s_node_t *node, const char *expected,
               s_node_t ***items_p, size_t *count_p)
{
    *items_p = NULL;
    *count_p = 0;
    if (s_is_null (node))
        return 0;
    if (node->kind == S_MAPPING) {
        s_node_error (ctx, node, "expected %s", expected);
        return -1;
    }
    size_t count = node->kind == S_SCALAR? 1: node->count;
    s_node_t **items = (s_node_t **) calloc (count? count: 1, sizeof (s_node_t *));
    if (!items) {
        ctx->oom = true;
        return -1;
    }
    size_t used = 0;
    int rc = 0;
    if (node->kind == S_SCALAR)
        items [used++] = node;
    else
        for (size_t i = 0; i < node->count; i++) {
            s_node_t *item = node->items [i];
            if (item->kind != S_SCALAR || s_is_null (item)) {
                s_node_error (ctx, item, "expected %s", expected);
                rc = -1;
            }
            else
                items [used++] = item;
        }
    *items_p = items;
    *count_p = used;
    return rc;
}

static void
s_parse_run (s_ctx_t *ctx, qn_task_t *task, s_node_t *node)
{
    s_echo_buf_t echo;
    if (node->kind == S_MAPPING) {
        s_node_error (ctx, node, "expected a command string or a list of strings for 'run'");
        return;
    }
    if (node->kind == S_SCALAR) {
        const char *p = node->value;
        while (isspace ((unsigned char) *p))
            p++;
        if (*p == '\0' || s_is_null (node)) {
            s_node_error (ctx, node, "empty command for task '%s'", s_echo (task->name, echo));
            return;
        }
        task->argv = (char **) calloc (4, sizeof (char *));
        if (!task->argv) {
            ctx->oom = true;
            return;
        }
        task->argv [0] = s_strdup (ctx, "/bin/sh");
        task->argv [1] = s_strdup (ctx, "-c");
        task->argv [2] = s_strdup (ctx, node->value);
        task->argc = 3;
        task->shell = s_strdup (ctx, node->value);
        return;
    }
    //  A list is the argv as written; only its first word must be non-empty
    if (node->count == 0) {
        s_node_error (ctx, node, "empty command for task '%s'", s_echo (task->name, echo));
        return;
    }
    bool ok = true;
    for (size_t i = 0; i < node->count; i++) {
        s_node_t *item = node->items [i];
        if (item->kind != S_SCALAR || s_is_null (item)) {
            s_node_error (ctx, item, "expected a string in the 'run' list of task '%s'",
                          s_echo (task->name, echo));
            ok = false;
        }
    }
    if (!ok)
        return;
    if (node->items [0]->value [0] == '\0') {
        s_node_error (ctx, node->items [0], "empty command for task '%s'",
                      s_echo (task->name, echo));
        return;
    }
    task->argv = (char **) calloc (node->count + 1, sizeof (char *));
    if (!task->argv) {
        ctx->oom = true;
        return;
    }
    for (size_t i = 0; i < node->count; i++)
        task->argv [i] = s_strdup (ctx, node->items [i]->value);
    task->argc = node->count;
}

//  A mapping of names to scalars: env and on.  what names the field in
//  messages; env keys must be valid variable names, outside QANAT_*.
static void
s_parse_pairs (s_ctx_t *ctx, qn_task_t *task, s_node_t *node, bool is_env,
               qn_kv_t **pairs_p, size_t *count_p)
{
    s_echo_buf_t echo, echo2;
    const char *field = is_env? "env": "on";
    if (s_is_null (node))
        return;
    if (node->kind != S_MAPPING) {
        if (is_env)
            s_node_error (ctx, node, "expected a mapping of variable names to values for 'env'");
        else
            s_node_error (ctx, node, "expected a mapping of labels to values for 'on'");
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
        s_node_t *key = node->items [2 * i];
        s_node_t *value = node->items [2 * i + 1];
        if (key->skip)
            continue;
        if (is_env && !s_valid_env_name (key->value)) {
            s_node_error (ctx, key, "invalid environment variable name '%s' in task '%s'",
                          s_echo (key->value, echo), s_echo (task->name, echo2));
            continue;
        }
        if (is_env && strncmp (key->value, "QANAT_", 6) == 0) {
            s_node_error (ctx, key, "environment variable '%s' is reserved for qanat",
                          s_echo (key->value, echo));
            continue;
        }
        if (!is_env && (key->value [0] == '\0' || strlen (key->value) > S_NAME_MAX)) {
            s_node_error (ctx, key, "invalid label name '%s' in 'on'", s_echo (key->value, echo));
            continue;
        }
        //  An empty env value is fine ("FOO:" sets FOO to ""); a label
        //  must say what it selects
        if (value->kind != S_SCALAR || (!is_env && s_is_null (value))) {
            s_node_error (ctx, value, "expected a string or number for '%s' in '%s'",
                          s_echo (key->value, echo), field);
            continue;
        }
        kv [used].key = s_strdup (ctx, key->value);
        kv [used].value = s_strdup (ctx, s_is_null (value)? "": value->value);
        used++;
    }
    *pairs_p = kv;
    *count_p = used;
}

static void
s_parse_resources (s_ctx_t *ctx, qn_task_t *task, s_node_t *node)
{
    if (s_is_null (node))
        return;
    if (node->kind != S_MAPPING) {
        s_node_error (ctx, node, "expected a mapping with cpus, memory, gpus for 'resources'");
        return;
    }
    s_echo_buf_t echo;
    char where [S_ECHO_MAX + 64];
    snprintf (where, sizeof (where), " in resources of task '%s'", s_echo (task->name, echo));
    s_check_keys (ctx, node, s_resource_keys, where);
    s_node_t *value;
    if ((value = s_map_get (node, "cpus", NULL)))
        s_get_uint32 (ctx, value, "cpus", &task->cpus);
    if ((value = s_map_get (node, "gpus", NULL)))
        s_get_uint32 (ctx, value, "gpus", &task->gpus);
    if ((value = s_map_get (node, "memory", NULL)))
        s_get_memory (ctx, value, &task->memory_mb);
}

static void
s_parse_metrics (s_ctx_t *ctx, qn_task_t *task, s_node_t *node)
{
    s_node_t **items;
    size_t count;
    s_scalar_list (ctx, node, "a metric name or a list of metric names for 'metrics'",
                   &items, &count);
    if (count > 0) {
        task->metrics = (char **) calloc (count, sizeof (char *));
        if (!task->metrics)
            ctx->oom = true;
    }
    for (size_t i = 0; task->metrics && i < count; i++) {
        s_echo_buf_t echo;
        if (!s_valid_metric_name (items [i]->value)) {
            s_node_error (ctx, items [i], "invalid metric name '%s' in 'metrics'",
                          s_echo (items [i]->value, echo));
            continue;
        }
        task->metrics [task->metrics_count++] = s_strdup (ctx, items [i]->value);
    }
    free (items);
}

static void
s_parse_check (s_ctx_t *ctx, qn_task_t *task, s_node_t *item)
{
    s_echo_buf_t echo;
    s_node_t *expr = item;
    qn_severity_t severity = QN_SEVERITY_ERROR;
    bool ok = true;

    if (item->kind == S_MAPPING) {
        char where [S_ECHO_MAX + 64];
        snprintf (where, sizeof (where), " in a check of task '%s'", s_echo (task->name, echo));
        s_check_keys (ctx, item, s_check_entry_keys, where);
        expr = s_map_get (item, "expr", NULL);
        s_node_t *sev = s_map_get (item, "severity", NULL);
        if (sev) {
            if (sev->kind == S_SCALAR && strcmp (sev->value, "error") == 0)
                severity = QN_SEVERITY_ERROR;
            else
            if (sev->kind == S_SCALAR && strcmp (sev->value, "warning") == 0)
                severity = QN_SEVERITY_WARNING;
            else {
                if (sev->kind == S_SCALAR)
                    s_node_error (ctx, sev, "invalid severity '%s' (use error or warning)",
                                  s_echo (sev->value, echo));
                else
                    s_node_error (ctx, sev, "expected error or warning for 'severity'");
                ok = false;
            }
        }
        if (!expr) {
            s_node_error (ctx, item, "check in task '%s' has no 'expr'",
                          s_echo (task->name, echo));
            return;
        }
    }
    else
    if (item->kind != S_SCALAR) {
        s_node_error (ctx, item,
                      "expected a check expression or a mapping with 'expr' and 'severity'");
        return;
    }
    if (expr->kind != S_SCALAR || s_is_null (expr)) {
        s_node_error (ctx, expr, "expected a check expression for 'expr'");
        return;
    }
    char *message = NULL;
    size_t offset = 0;
    qn_check_t *check = qn_check_new (expr->value, &message, &offset);
    if (!check) {
        s_node_error (ctx, expr, "invalid check '%s': %s (at character %zu)",
                      s_echo (expr->value, echo), message? message: "parse error",
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
s_parse_checks (s_ctx_t *ctx, qn_task_t *task, s_node_t *node)
{
    if (s_is_null (node))
        return;
    if (node->kind == S_MAPPING) {
        s_node_error (ctx, node, "expected a list of checks for 'checks'");
        return;
    }
    size_t count = node->kind == S_SCALAR? 1: node->count;
    if (count == 0)
        return;
    task->checks = (qn_task_check_t *) calloc (count, sizeof (qn_task_check_t));
    if (!task->checks) {
        ctx->oom = true;
        return;
    }
    if (node->kind == S_SCALAR)
        s_parse_check (ctx, task, node);
    else
        for (size_t i = 0; i < node->count; i++)
            s_parse_check (ctx, task, node->items [i]);
}

//  retry_on: which endings a retry answers, as a list of their names.
static void
s_parse_retry_on (s_ctx_t *ctx, qn_task_t *task, s_node_t *node)
{
    static const char *names [] = { "exit", "timeout", "agent_lost", "check", "output", NULL };
    static const unsigned flags [] = { QN_RETRY_ON_EXIT, QN_RETRY_ON_TIMEOUT,
                                       QN_RETRY_ON_AGENT_LOST, QN_RETRY_ON_CHECK,
                                       QN_RETRY_ON_OUTPUT };
    s_node_t **items;
    size_t count;
    if (s_scalar_list (ctx, node, "a list of exit, timeout, agent_lost, check, output for 'retry_on'",
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
            s_echo_buf_t echo;
            const char *guess = s_closest (items [i]->value, names, n);
            if (guess)
                s_node_error (ctx, items [i], "unknown retry_on value '%s' (did you mean '%s'?)",
                              s_echo (items [i]->value, echo), guess);
            else
                s_node_error (ctx, items [i], "unknown retry_on value '%s' (use exit, timeout, "
                              "agent_lost, check, output)", s_echo (items [i]->value, echo));
        }
    }
    free (items);
}

//  ---------------------------------------------------------------------
//  Backend options: `backend:` and its block (`slurm:`, `kubernetes:`)
//  become flat key/value pairs, in file order, as Assign.backend_options
//  carries them; repeated keys (sbatch_arg, node_selector, toleration,
//  image_pull_secret) keep their order.

#define S_MAX_BACKEND_OPTIONS 64

static void
s_option_add (s_ctx_t *ctx, qn_task_t *task, s_node_t *at, const char *key, const char *value)
{
    if (task->backend_option_count >= S_MAX_BACKEND_OPTIONS) {
        s_node_error (ctx, at, "too many backend options (limit %d)", S_MAX_BACKEND_OPTIONS);
        return;
    }
    qn_kv_t *grown = (qn_kv_t *) realloc (task->backend_options,
                                          (task->backend_option_count + 1) * sizeof (qn_kv_t));
    if (!grown) {
        ctx->oom = true;
        return;
    }
    task->backend_options = grown;
    grown [task->backend_option_count].key = s_strdup (ctx, key);
    grown [task->backend_option_count].value = s_strdup (ctx, value);
    task->backend_option_count++;
}

//  A value that goes into a flat "k=v,k=v" option must not carry the
//  separators, nor anything unprintable.
static bool
s_plain_option (const char *text, bool allow_equals)
{
    if (strlen (text) > 1024)
        return false;
    for (const char *c = text; *c; c++)
        if ((unsigned char) *c < 0x20 || *c == 0x7f || *c == ',' || (!allow_equals && *c == '='))
            return false;
    return true;
}

static void
s_option_scalar (s_ctx_t *ctx, qn_task_t *task, s_node_t *value, const char *block,
                 const char *key)
{
    s_echo_buf_t echo;
    if (value->kind != S_SCALAR || s_is_null (value) || value->value [0] == '\0') {
        s_node_error (ctx, value, "expected a non-empty string for '%s' in '%s'", key, block);
        return;
    }
    if (!s_plain_option (value->value, true)) {
        s_node_error (ctx, value, "invalid value '%s' for '%s' in '%s' (no control characters "
                      "or commas)", s_echo (value->value, echo), key, block);
        return;
    }
    s_option_add (ctx, task, value, key, value->value);
}

static void
s_option_list (s_ctx_t *ctx, qn_task_t *task, s_node_t *value, const char *block,
               const char *key, const char *option)
{
    s_echo_buf_t echo;
    s_node_t **items;
    size_t count;
    char expected [96];
    snprintf (expected, sizeof (expected), "a string or a list of strings for '%s' in '%s'",
              key, block);
    if (s_scalar_list (ctx, value, expected, &items, &count) == 0)
        for (size_t i = 0; i < count; i++) {
            if (items [i]->value [0] == '\0' || !s_plain_option (items [i]->value, true))
                s_node_error (ctx, items [i], "invalid value '%s' in '%s' of '%s'",
                              s_echo (items [i]->value, echo), key, block);
            else
                s_option_add (ctx, task, items [i], option, items [i]->value);
        }
    free (items);
}

static void
s_parse_slurm (s_ctx_t *ctx, qn_task_t *task, s_node_t *node)
{
    if (node->kind != S_MAPPING) {
        s_node_error (ctx, node, "expected a mapping with partition, account, qos, sbatch_args "
                      "for 'slurm'");
        return;
    }
    s_check_keys (ctx, node, s_slurm_keys, " in 'slurm'");
    for (size_t i = 0; i + 1 < node->count; i += 2) {
        s_node_t *key = node->items [i], *value = node->items [i + 1];
        if (key->skip || !s_is_known (key->value, s_slurm_keys))
            continue;
        if ((strcmp (key->value, "sbatch_args") == 0)) {
            s_node_t **items;
            size_t count;
            if (s_scalar_list (ctx, value, "a list of sbatch arguments for 'sbatch_args'",
                               &items, &count) == 0)
                for (size_t a = 0; a < count; a++) {
                    //  Our own script decides these; an override would
                    //  break log following or the job's identity
                    const char *arg = items [a]->value;
                    if (arg [0] != '-' || strncmp (arg, "--output", 8) == 0
                    ||  strncmp (arg, "--error", 7) == 0 || strncmp (arg, "--job-name", 10) == 0
                    ||  strncmp (arg, "--chdir", 7) == 0 || strncmp (arg, "--wrap", 6) == 0
                    ||  strncmp (arg, "--parsable", 10) == 0 || strlen (arg) > 1024)
                        s_node_error (ctx, items [a], "sbatch argument '%.64s' is not allowed "
                                      "(an option starting with '-'; qanat sets --output, "
                                      "--error, --job-name, --chdir itself)", arg);
                    else
                        s_option_add (ctx, task, items [a], "sbatch_arg", arg);
                }
            free (items);
        }
        else
            s_option_scalar (ctx, task, value, "slurm", key->value);
    }
}

//  tolerations: a list of mappings, each flattened to
//  "key=K,operator=O,value=V,effect=E,toleration_seconds=N".
static void
s_parse_tolerations (s_ctx_t *ctx, qn_task_t *task, s_node_t *node)
{
    s_echo_buf_t echo;
    if (node->kind != S_SEQUENCE) {
        s_node_error (ctx, node, "expected a list of mappings for 'tolerations'");
        return;
    }
    for (size_t i = 0; i < node->count; i++) {
        s_node_t *item = node->items [i];
        if (item->kind != S_MAPPING) {
            s_node_error (ctx, item, "expected a mapping with key, operator, value, effect, "
                          "toleration_seconds in 'tolerations'");
            continue;
        }
        s_check_keys (ctx, item, s_toleration_keys, " in a toleration");
        char flat [2048] = "";
        size_t used = 0;
        bool ok = true;
        for (size_t k = 0; k + 1 < item->count; k += 2) {
            s_node_t *key = item->items [k], *value = item->items [k + 1];
            if (key->skip || !s_is_known (key->value, s_toleration_keys))
                continue;
            if (value->kind != S_SCALAR || s_is_null (value)
            ||  !s_plain_option (value->value, false) || strlen (value->value) > 253) {
                s_node_error (ctx, value, "invalid value '%s' for '%s' in a toleration",
                              s_echo (value->value? value->value: "", echo), key->value);
                ok = false;
                continue;
            }
            used += (size_t) snprintf (flat + used, sizeof (flat) - used, "%s%s=%s",
                                       used? ",": "", key->value, value->value);
        }
        if (ok && used)
            s_option_add (ctx, task, item, "toleration", flat);
    }
}

static void
s_parse_kube (s_ctx_t *ctx, qn_task_t *task, s_node_t *node)
{
    s_echo_buf_t echo;
    if (node->kind != S_MAPPING) {
        s_node_error (ctx, node, "expected a mapping with image, namespace, ... for 'kubernetes'");
        return;
    }
    s_check_keys (ctx, node, s_kube_keys, " in 'kubernetes'");
    for (size_t i = 0; i + 1 < node->count; i += 2) {
        s_node_t *key = node->items [i], *value = node->items [i + 1];
        if (key->skip || !s_is_known (key->value, s_kube_keys))
            continue;
        if ((strcmp (key->value, "node_selector") == 0)) {
            if (value->kind != S_MAPPING) {
                s_node_error (ctx, value, "expected a mapping of node labels for 'node_selector'");
                continue;
            }
            for (size_t k = 0; k + 1 < value->count; k += 2) {
                s_node_t *label = value->items [k], *wanted = value->items [k + 1];
                if (label->skip)
                    continue;
                if (wanted->kind != S_SCALAR || s_is_null (wanted)
                ||  !s_plain_option (label->value, false) || label->value [0] == '\0'
                ||  !s_plain_option (wanted->value, false)) {
                    s_node_error (ctx, wanted, "invalid node selector '%s'",
                                  s_echo (label->value, echo));
                    continue;
                }
                char pair [2100];
                snprintf (pair, sizeof (pair), "%s=%s", label->value, wanted->value);
                s_option_add (ctx, task, label, "node_selector", pair);
            }
        }
        else
        if ((strcmp (key->value, "tolerations") == 0))
            s_parse_tolerations (ctx, task, value);
        else
        if ((strcmp (key->value, "image_pull_secrets") == 0))
            s_option_list (ctx, task, value, "kubernetes", "image_pull_secrets",
                           "image_pull_secret");
        else
            s_option_scalar (ctx, task, value, "kubernetes", key->value);
    }
}

static void
s_parse_backend (s_ctx_t *ctx, qn_task_t *task, s_node_t *task_map)
{
    s_echo_buf_t echo;
    s_node_t *field = s_map_get (task_map, "backend", NULL);
    if (field) {
        if (field->kind != S_SCALAR || s_is_null (field)
        ||  !s_is_known (field->value, s_backend_names)) {
            s_node_error (ctx, field, "unknown backend '%s' (known: local, slurm, kubernetes)",
                          s_echo (field->kind == S_SCALAR? field->value: "", echo));
            return;
        }
        task->backend = s_strdup (ctx, field->value);
    }
    s_node_t *key;
    static const char *blocks [] = { "slurm", "kubernetes", NULL };
    for (size_t b = 0; blocks [b]; b++) {
        s_node_t *block = s_map_get (task_map, blocks [b], &key);
        if (!block || s_is_null (block))
            continue;
        if (!task->backend || strcmp (task->backend, blocks [b]) != 0) {
            s_node_error (ctx, key, "'%s' options given, but the task's backend is %s%s%s "
                          "(add 'backend: %s')", blocks [b], task->backend? "'": "",
                          task->backend? task->backend: "the agent's default",
                          task->backend? "'": "", blocks [b]);
            continue;
        }
        if (b == 0)
            s_parse_slurm (ctx, task, block);
        else
            s_parse_kube (ctx, task, block);
    }
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
    return s_valid_name (name) && !strchr (name, '.');
}

static void
s_parse_outputs (s_ctx_t *ctx, qn_task_t *task, s_node_t *node)
{
    s_echo_buf_t echo;
    if (s_is_null (node))
        return;
    if (node->kind != S_MAPPING) {
        s_node_error (ctx, node, "expected a mapping of output names to paths for 'outputs'");
        return;
    }
    size_t pairs = node->count / 2;
    if (pairs > S_MAX_ARTIFACTS) {
        s_node_error (ctx, node, "too many outputs: %zu (limit %d)", pairs, S_MAX_ARTIFACTS);
        return;
    }
    task->outputs = (qn_output_t *) calloc (pairs? pairs: 1, sizeof (qn_output_t));
    if (!task->outputs) {
        ctx->oom = true;
        return;
    }
    for (size_t i = 0; i < pairs; i++) {
        s_node_t *key = node->items [2 * i], *value = node->items [2 * i + 1];
        if (key->skip)
            continue;
        if (!s_valid_artifact_name (key->value)) {
            s_node_error (ctx, key, "invalid output name '%s' (use letters, digits, '_', '-')",
                          s_echo (key->value, echo));
            continue;
        }
        const char *path = NULL;
        bool is_value = false;
        s_node_t *at = value;
        if (value->kind == S_MAPPING) {
            s_check_keys (ctx, value, s_output_keys, " in an output");
            s_node_t *path_node = s_map_get (value, "path", NULL);
            s_node_t *value_node = s_map_get (value, "value", NULL);
            if (value_node) {
                if (value_node->kind != S_SCALAR
                ||  (strcmp (value_node->value, "true") != 0
                     && strcmp (value_node->value, "false") != 0)) {
                    s_node_error (ctx, value_node, "expected true or false for 'value'");
                    continue;
                }
                is_value = strcmp (value_node->value, "true") == 0;
            }
            if (path_node) {
                at = path_node;
                path = path_node->kind == S_SCALAR? path_node->value: NULL;
                if (!path) {
                    s_node_error (ctx, path_node, "expected a path for 'path'");
                    continue;
                }
            }
            if (is_value && path) {
                s_node_error (ctx, value, "output '%s' is either a value or a path, not both",
                              s_echo (key->value, echo));
                continue;
            }
            if (!is_value && !path) {
                s_node_error (ctx, value, "output '%s' needs a 'path' (or 'value: true')",
                              s_echo (key->value, echo));
                continue;
            }
        }
        else
        if (value->kind == S_SCALAR && !s_is_null (value))
            path = value->value;
        else {
            s_node_error (ctx, value, "expected a path or a mapping for output '%s'",
                          s_echo (key->value, echo));
            continue;
        }
        if (path && !s_valid_rel_path (path)) {
            s_node_error (ctx, at, "output '%s': '%s' is not a path inside the working "
                          "directory (relative, no '..')", s_echo (key->value, echo),
                          path);
            continue;
        }
        if (qn_task_output_index (task, key->value) >= 0) {
            s_node_error (ctx, key, "output '%s' is declared twice", s_echo (key->value, echo));
            continue;
        }
        qn_output_t *output = &task->outputs [task->output_count++];
        output->name = s_strdup (ctx, key->value);
        output->path = path? s_strdup (ctx, path): NULL;
        output->value = is_value;
    }
}

static void
s_parse_inputs (s_ctx_t *ctx, qn_task_t *task, s_node_t *node)
{
    s_echo_buf_t echo;
    if (s_is_null (node))
        return;
    if (node->kind != S_MAPPING) {
        s_node_error (ctx, node, "expected a mapping of input names to TASK.OUTPUT for 'inputs'");
        return;
    }
    size_t pairs = node->count / 2;
    if (pairs > S_MAX_ARTIFACTS) {
        s_node_error (ctx, node, "too many inputs: %zu (limit %d)", pairs, S_MAX_ARTIFACTS);
        return;
    }
    task->inputs = (qn_input_t *) calloc (pairs? pairs: 1, sizeof (qn_input_t));
    if (!task->inputs) {
        ctx->oom = true;
        return;
    }
    for (size_t i = 0; i < pairs; i++) {
        s_node_t *key = node->items [2 * i], *value = node->items [2 * i + 1];
        if (key->skip)
            continue;
        if (!s_valid_artifact_name (key->value)) {
            s_node_error (ctx, key, "invalid input name '%s' (use letters, digits, '_', '-')",
                          s_echo (key->value, echo));
            continue;
        }
        s_node_t *from = value, *param = NULL, *path = NULL;
        if (value->kind == S_MAPPING) {
            s_check_keys (ctx, value, s_input_keys, " in an input");
            from = s_map_get (value, "from", NULL);
            param = s_map_get (value, "param", NULL);
            path = s_map_get (value, "path", NULL);
            if (from && param) {
                s_node_error (ctx, value, "input '%s' comes either 'from' a task or from a "
                              "'param', not both", s_echo (key->value, echo));
                continue;
            }
            if (!from && !param) {
                s_node_error (ctx, value, "input '%s' needs 'from: TASK.OUTPUT' or "
                              "'param: NAME'", s_echo (key->value, echo));
                continue;
            }
        }
        const char *dot = NULL;
        if (param) {
            //  Whether it names an artifact parameter is checked once the
            //  whole file is read (s_resolve_inputs)
            if (param->kind != S_SCALAR || s_is_null (param)) {
                s_node_error (ctx, param, "expected a parameter name for 'param' of input '%s'",
                              s_echo (key->value, echo));
                continue;
            }
        }
        else {
            dot = from->kind == S_SCALAR && from->value? strchr (from->value, '.'): NULL;
            if (!dot || dot == from->value || dot [1] == '\0' || strchr (dot + 1, '.')) {
                s_node_error (ctx, from, "expected TASK.OUTPUT for input '%s'",
                              s_echo (key->value, echo));
                continue;
            }
        }
        if (path && (path->kind != S_SCALAR || s_is_null (path)
                     || !s_valid_rel_path (path->value))) {
            s_node_error (ctx, path, "input '%s': not a path inside the working directory "
                          "(relative, no '..')", s_echo (key->value, echo));
            continue;
        }
        qn_input_t *input = &task->inputs [task->input_count++];
        input->name = s_strdup (ctx, key->value);
        if (param)
            input->param = s_strdup (ctx, param->value);
        else {
            input->task = (char *) malloc ((size_t) (dot - from->value) + 1);
            if (input->task) {
                memcpy (input->task, from->value, (size_t) (dot - from->value));
                input->task [dot - from->value] = '\0';
            }
            else
                ctx->oom = true;
            input->output = s_strdup (ctx, dot + 1);
        }
        input->path = s_strdup (ctx, path? path->value: key->value);
        input->line = param? param->line: from->line;
        input->col = param? param->col: from->col;
        input->task_index = SIZE_MAX;
    }
}

static int s_lookup (const qn_task_t *tasks, const size_t *by_name, size_t count,
                     const char *name);

//  A param input names an artifact parameter of the workflow.  Runs after
//  the whole file is read, so the order of 'params' and 'tasks' in it
//  does not matter.  No dependency: the blob exists before the run starts.
static void
s_resolve_param_input (s_ctx_t *ctx, qn_workflow_t *self, const qn_input_t *input)
{
    s_echo_buf_t echo, echo2;
    const qn_param_t *param = NULL;
    for (size_t p = 0; p < self->param_count && !param; p++)
        if (self->params [p].name && strcmp (self->params [p].name, input->param) == 0)
            param = &self->params [p];
    if (!param)
        s_error (ctx, input->line, input->col, "input '%s': no parameter '%s'",
                 s_echo (input->name, echo), s_echo (input->param, echo2));
    else
    if (param->type != QN_PARAM_ARTIFACT)
        s_error (ctx, input->line, input->col, "input '%s': parameter '%s' is %s %s, "
                 "not an artifact", s_echo (input->name, echo), param->name,
                 param->type == QN_PARAM_INT? "an": "a", qn_param_type_name (param->type));
}

//  Inputs name their producers: each must exist and declare the output,
//  and becomes a dependency (added to needs when not there already).
static void
s_resolve_inputs (s_ctx_t *ctx, qn_workflow_t *self, s_task_extra_t *extra)
{
    s_echo_buf_t echo, echo2;
    for (size_t t = 0; t < self->task_count; t++) {
        qn_task_t *task = &self->tasks [t];
        for (size_t i = 0; i < task->input_count; i++) {
            qn_input_t *input = &task->inputs [i];
            if (input->param) {
                s_resolve_param_input (ctx, self, input);
                continue;
            }
            if (!input->task || !input->output)
                continue;
            int index = s_lookup (self->tasks, self->by_name, self->task_count, input->task);
            if (index < 0 || (size_t) index == t) {
                s_error (ctx, input->line, input->col, "input '%s' of task '%s' comes from %s "
                         "task '%s'", s_echo (input->name, echo), task->name,
                         index < 0? "unknown": "its own", s_echo (input->task, echo2));
                continue;
            }
            const qn_task_t *producer = &self->tasks [index];
            if (qn_task_output_index (producer, input->output) < 0) {
                s_error (ctx, input->line, input->col, "task '%s' has no output '%s' "
                         "(for input '%s' of task '%s')", producer->name,
                         s_echo (input->output, echo), s_echo (input->name, echo2), task->name);
                continue;
            }
            input->task_index = (size_t) index;
            bool listed = false;
            for (size_t n = 0; n < task->needs_count && !listed; n++)
                listed = task->needs [n] && strcmp (task->needs [n], input->task) == 0;
            if (listed)
                continue;
            //  The implicit dependency, with the input's position for errors
            char **needs = (char **) realloc (task->needs, (task->needs_count + 1) * sizeof (char *));
            size_t *index_p = (size_t *) realloc (task->need_index,
                                                 (task->needs_count + 1) * sizeof (size_t));
            s_node_t **nodes = (s_node_t **) realloc (extra [t].need_nodes,
                                                     (task->needs_count + 1) * sizeof (s_node_t *));
            if (needs)
                task->needs = needs;
            if (index_p)
                task->need_index = index_p;
            if (nodes)
                extra [t].need_nodes = nodes;
            if (!needs || !index_p || !nodes) {
                ctx->oom = true;
                return;
            }
            //  A stand-in node that carries the input's position
            s_node_t **stand_ins = (s_node_t **) realloc (extra [t].stand_ins,
                                   (extra [t].stand_in_count + 1) * sizeof (s_node_t *));
            s_node_t *stand_in = (s_node_t *) calloc (1, sizeof (s_node_t));
            if (stand_ins)
                extra [t].stand_ins = stand_ins;
            if (!stand_ins || !stand_in) {
                free (stand_in);
                ctx->oom = true;
                return;
            }
            stand_in->line = input->line;
            stand_in->col = input->col;
            stand_ins [extra [t].stand_in_count++] = stand_in;
            nodes [task->needs_count] = stand_in;
            needs [task->needs_count] = s_strdup (ctx, input->task);
            task->needs_count++;
        }
    }
}

//  Every ${{ … }} in the command must name a declared parameter or a
//  secret, and sit where it can be made data (qn_shellref).  A secret in
//  a shell string reaches the task through QANAT_SECRET_<NAME>, added
//  here to the task's env as "${{ secrets.NAME }}" so that it is resolved,
//  checked and redacted like any other secret in env.
static void
s_check_refs (s_ctx_t *ctx, qn_task_t *task, s_node_t *node)
{
    s_echo_buf_t echo;
    if (!task->argv)
        return;
    qn_kv_t *names = (qn_kv_t *) calloc (ctx->param_count + 1, sizeof (qn_kv_t));
    if (!names) {
        ctx->oom = true;
        return;
    }
    for (size_t p = 0; p < ctx->param_count; p++) {
        names [p].key = ctx->params [p].name;
        names [p].value = (char *) "";
    }
    s_refs_t refs = { names, ctx->param_count, NULL, 0 };
    for (size_t i = 0; i < task->argc; i++) {
        char *error = NULL;
        char *expanded = s_expand_arg (task, i, &refs, &error);
        if (!expanded && error)
            s_node_error (ctx, node, "%s in the 'run' of task '%s'", error,
                          s_echo (task->name, echo));
        free (expanded);
        free (error);
    }
    free (names);
    for (size_t i = 0; i < refs.secret_count; i++) {
        const char *secret = refs.secrets [i];
        char *variable = s_env_variable ("QANAT_SECRET_", secret, strlen (secret));
        char *value = s_format ("${{ secrets.%s }}", secret);
        bool clash = false;
        for (size_t e = 0; variable && e < task->env_count && !clash; e++)
            if (strcmp (task->env [e].key, variable) == 0) {
                if (strcmp (task->env [e].value, value) != 0)
                    s_node_error (ctx, node, "secrets '%s' and '%s' both become %s in the "
                                  "'run' of task '%s'", s_echo (secret, echo),
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

static void
s_parse_task (s_ctx_t *ctx, qn_task_t *task, s_task_extra_t *extra,
              s_node_t *key, s_node_t *value)
{
    s_echo_buf_t echo;
    task->line = key->line;
    task->col = key->col;
    task->name = s_strdup (ctx, key->value);
    if (!task->name)
        return;
    extra->valid_name = s_valid_name (key->value);
    if (!extra->valid_name)
        s_node_error (ctx, key, "invalid task name '%s' (use letters, digits, '_', '.', '-', "
                      "at most %d characters, no '..')", s_echo (key->value, echo), S_NAME_MAX);

    if (s_is_null (value)) {
        s_node_error (ctx, key, "task '%s' has no 'run' command", s_echo (key->value, echo));
        return;
    }
    if (value->kind != S_MAPPING) {
        s_node_error (ctx, value, "expected a mapping for task '%s'", s_echo (key->value, echo));
        return;
    }
    char where [S_ECHO_MAX + 32];
    snprintf (where, sizeof (where), " in task '%s'", s_echo (key->value, echo));
    s_check_keys (ctx, value, s_task_keys, where);

    s_node_t *field, *run = NULL;
    if ((field = s_map_get (value, "run", NULL))) {
        s_parse_run (ctx, task, field);
        run = field;
    }
    else
        s_node_error (ctx, key, "task '%s' has no 'run' command", s_echo (key->value, echo));

    if ((field = s_map_get (value, "needs", NULL))) {
        size_t count;
        s_scalar_list (ctx, field, "a task name or a list of task names for 'needs'",
                       &extra->need_nodes, &count);
        if (count > 0) {
            task->needs = (char **) calloc (count, sizeof (char *));
            task->need_index = (size_t *) calloc (count, sizeof (size_t));
            if (!task->needs || !task->need_index)
                ctx->oom = true;
            else {
                for (size_t i = 0; i < count; i++)
                    task->needs [i] = s_strdup (ctx, extra->need_nodes [i]->value);
                task->needs_count = count;
            }
        }
    }
    if ((field = s_map_get (value, "env", NULL)))
        s_parse_pairs (ctx, task, field, true, &task->env, &task->env_count);
    if ((field = s_map_get (value, "on", NULL)))
        s_parse_pairs (ctx, task, field, false, &task->selector, &task->selector_count);
    if ((field = s_map_get (value, "resources", NULL)))
        s_parse_resources (ctx, task, field);
    if ((field = s_map_get (value, "retries", NULL)))
        s_get_uint32 (ctx, field, "retries", &task->retries);
    task->retry_delay_s = 1;
    task->retry_max_delay_s = 300;
    task->retry_on = QN_RETRY_ON_ALL;
    if ((field = s_map_get (value, "retry_delay", NULL)))
        s_get_duration (ctx, field, "retry_delay", &task->retry_delay_s);
    if ((field = s_map_get (value, "retry_max_delay", NULL)))
        s_get_duration (ctx, field, "retry_max_delay", &task->retry_max_delay_s);
    if ((field = s_map_get (value, "retry_on", NULL)))
        s_parse_retry_on (ctx, task, field);
    if ((field = s_map_get (value, "timeout", NULL)))
        s_get_duration (ctx, field, "timeout", &task->timeout_s);
    if ((field = s_map_get (value, "metrics", NULL)))
        s_parse_metrics (ctx, task, field);
    if ((field = s_map_get (value, "checks", NULL)))
        s_parse_checks (ctx, task, field);
    s_parse_backend (ctx, task, value);
    if ((field = s_map_get (value, "outputs", NULL)))
        s_parse_outputs (ctx, task, field);
    if ((field = s_map_get (value, "inputs", NULL)))
        s_parse_inputs (ctx, task, field);
    if ((field = s_map_get (value, "cache", NULL))) {
        if (field->kind != S_SCALAR || (strcmp (field->value, "true") != 0
                                        && strcmp (field->value, "false") != 0))
            s_node_error (ctx, field, "expected true or false for 'cache'");
        else
            task->cache = strcmp (field->value, "true") == 0;
    }
    //  After env: a secret in a shell string adds to it
    if (run)
        s_check_refs (ctx, task, run);
}

static void
s_parse_store (s_ctx_t *ctx, qn_workflow_t *self, s_node_t *node)
{
    s_echo_buf_t echo;
    if (s_is_null (node))
        return;
    if (node->kind != S_MAPPING) {
        s_node_error (ctx, node, "expected a mapping with store, bucket, ... for 'artifacts'");
        return;
    }
    s_check_keys (ctx, node, s_store_keys, " in 'artifacts'");
    char **fields [] = { &self->store.kind, &self->store.bucket, &self->store.prefix,
                         &self->store.endpoint, &self->store.region };
    for (size_t f = 0; f < 5; f++) {
        s_node_t *value = s_map_get (node, s_store_keys [f], NULL);
        if (!value)
            continue;
        if (value->kind != S_SCALAR || s_is_null (value) || strlen (value->value) > 1024
        ||  !s_plain_option (value->value, true)) {
            s_node_error (ctx, value, "expected a string for '%s' in 'artifacts'",
                          s_store_keys [f]);
            continue;
        }
        *fields [f] = s_strdup (ctx, value->value);
    }
    s_node_t *value = s_map_get (node, "path_style", NULL);
    if (value) {
        if (value->kind != S_SCALAR || (strcmp (value->value, "true") != 0
                                        && strcmp (value->value, "false") != 0))
            s_node_error (ctx, value, "expected true or false for 'path_style'");
        else
            self->store.path_style = strcmp (value->value, "true") == 0;
    }
    if (self->store.kind && strcmp (self->store.kind, "coordinator") != 0
    &&  strcmp (self->store.kind, "s3") != 0) {
        s_node_error (ctx, s_map_get (node, "store", NULL), "unknown artifact store '%s' "
                      "(use coordinator or s3)", s_echo (self->store.kind, echo));
    }
    else
    if (self->store.kind && strcmp (self->store.kind, "s3") == 0 && !self->store.bucket)
        s_node_error (ctx, node, "an s3 artifact store needs a 'bucket'");
}

static void
s_parse_params (s_ctx_t *ctx, qn_workflow_t *self, s_node_t *node)
{
    s_echo_buf_t echo, echo2;
    if (s_is_null (node))
        return;
    if (node->kind != S_MAPPING) {
        s_node_error (ctx, node, "expected a mapping of parameter names for 'params'");
        return;
    }
    size_t pairs = node->count / 2;
    if (pairs > S_MAX_PARAMS) {
        s_node_error (ctx, node, "too many parameters: %zu (limit %d)", pairs, S_MAX_PARAMS);
        return;
    }
    self->params = (qn_param_t *) calloc (pairs? pairs: 1, sizeof (qn_param_t));
    if (!self->params) {
        ctx->oom = true;
        return;
    }
    for (size_t i = 0; i < pairs; i++) {
        s_node_t *key = node->items [2 * i];
        s_node_t *value = node->items [2 * i + 1];
        if (key->skip)
            continue;
        if (!s_valid_name (key->value)) {
            s_node_error (ctx, key, "invalid parameter name '%s' (use letters, digits, "
                          "'_', '.', '-')", s_echo (key->value, echo));
            continue;
        }
        //  Parameters reach tasks as QANAT_PARAM_<NAME>: two names must not
        //  collapse into one variable
        bool clash = false;
        for (size_t j = 0; j < self->param_count && !clash; j++) {
            const char *a = key->value, *b = self->params [j].name;
            while (*a && *b && (isalnum ((unsigned char) *a)? toupper ((unsigned char) *a): '_')
                            == (isalnum ((unsigned char) *b)? toupper ((unsigned char) *b): '_')) {
                a++;
                b++;
            }
            if (*a == '\0' && *b == '\0') {
                s_node_error (ctx, key, "parameter '%s' clashes with '%s' (both become "
                              "QANAT_PARAM_ variable names alike)", s_echo (key->value, echo),
                              s_echo (self->params [j].name, echo2));
                clash = true;
            }
        }
        if (clash)
            continue;

        s_node_t *dflt = value;
        s_node_t *desc = NULL;
        s_node_t *type = NULL;
        s_node_t *allowed = NULL;
        if (value->kind == S_MAPPING) {
            char where [S_ECHO_MAX + 32];
            snprintf (where, sizeof (where), " in parameter '%s'", s_echo (key->value, echo));
            s_check_keys (ctx, value, s_param_keys, where);
            dflt = s_map_get (value, "default", NULL);
            desc = s_map_get (value, "description", NULL);
            type = s_map_get (value, "type", NULL);
            allowed = s_map_get (value, "allowed", NULL);
        }
        else
        if (value->kind != S_SCALAR) {
            s_node_error (ctx, value, "expected a default value or a mapping with 'default' "
                          "and 'description' for parameter '%s'", s_echo (key->value, echo));
            continue;
        }
        if (dflt && dflt->kind != S_SCALAR) {
            s_node_error (ctx, dflt, "expected a string or number for the default of "
                          "parameter '%s'", s_echo (key->value, echo));
            continue;
        }
        if (desc && desc->kind != S_SCALAR) {
            s_node_error (ctx, desc, "expected a string for the description of parameter '%s'",
                          s_echo (key->value, echo));
            continue;
        }
        qn_param_type_t param_type = QN_PARAM_STRING;
        if (type) {
            //  In qn_param_type_t order
            static const char *types [] = { "string", "int", "float", "bool", "artifact",
                                            NULL };
            size_t t = 0;
            while (types [t] && !(type->kind == S_SCALAR && type->value
                                  && strcmp (type->value, types [t]) == 0))
                t++;
            if (!types [t]) {
                s_node_error (ctx, type, "unknown type '%s' for parameter '%s' (use string, "
                              "int, float, bool or artifact)", s_echo (type->kind == S_SCALAR
                              && type->value? type->value: "", echo2), s_echo (key->value, echo));
                continue;
            }
            param_type = (qn_param_type_t) t;
        }
        qn_param_t *param = &self->params [self->param_count++];
        param->name = s_strdup (ctx, key->value);
        param->type = param_type;
        if (desc && !s_is_null (desc))
            param->description = s_strdup (ctx, desc->value);
        //  An artifact is uploaded for one run (qanat put); a default or a
        //  list would name blobs that nothing keeps alive.  The parameter
        //  is kept, without them, so that inputs naming it still resolve.
        if (param_type == QN_PARAM_ARTIFACT && dflt && !s_is_null (dflt)) {
            s_node_error (ctx, dflt, "artifact parameter '%s' cannot have a default (it "
                          "would name a blob nobody keeps): give it at run time, e.g. "
                          "--param %s=@PATH", s_echo (key->value, echo), s_echo (key->value, echo2));
            dflt = NULL;
        }
        if (param_type == QN_PARAM_ARTIFACT && allowed) {
            s_node_error (ctx, allowed, "artifact parameter '%s' cannot have 'allowed'",
                          s_echo (key->value, echo));
            allowed = NULL;
        }
        if (allowed) {
            s_node_t **items;
            size_t count;
            char *message = NULL;
            if (s_scalar_list (ctx, allowed, "a list of allowed values for 'allowed'",
                               &items, &count) == 0 && count > 0) {
                param->allowed = (char **) calloc (count, sizeof (char *));
                if (!param->allowed)
                    ctx->oom = true;
                for (size_t a = 0; param->allowed && a < count; a++) {
                    //  Each allowed value must itself be of the type
                    qn_param_t bare = { param->name, NULL, NULL, param_type, NULL, 0 };
                    char *canonical = qn_workflow_param_check (&bare, items [a]->value, &message);
                    if (!canonical) {
                        s_node_error (ctx, items [a], "%s", message);
                        free (message);
                        message = NULL;
                        continue;
                    }
                    param->allowed [param->allowed_count++] = canonical;
                }
            }
            else
            if (count == 0 && !s_is_null (allowed))
                s_node_error (ctx, allowed, "'allowed' of parameter '%s' is empty",
                              s_echo (key->value, echo));
            free (items);
        }
        if (dflt && !s_is_null (dflt)) {
            char *message = NULL;
            param->default_value = qn_workflow_param_check (param, dflt->value, &message);
            if (!param->default_value) {
                s_node_error (ctx, dflt, "default of %s", message? message: "out of memory");
                free (message);
            }
        }
    }
}

static int
s_by_name_compare (const void *a, const void *b, void *arg)
{
    const qn_task_t *tasks = (const qn_task_t *) arg;
    size_t x = *(const size_t *) a, y = *(const size_t *) b;
    int rc = strcmp (tasks [x].name, tasks [y].name);
    return rc? rc: (x < y? -1: (x > y));
}

//  Index of name among tasks, through the sorted index; -1 when absent.
static int
s_lookup (const qn_task_t *tasks, const size_t *by_name, size_t count, const char *name)
{
    size_t low = 0, high = count;
    while (low < high) {
        size_t mid = low + (high - low) / 2;
        int rc = strcmp (tasks [by_name [mid]].name, name);
        if (rc == 0)
            return (int) by_name [mid];
        if (rc < 0)
            low = mid + 1;
        else
            high = mid;
    }
    return -1;
}

//  Resolves needs into need_index; SIZE_MAX marks an edge that failed.
static void
s_resolve_needs (s_ctx_t *ctx, qn_workflow_t *self, s_task_extra_t *extra)
{
    s_echo_buf_t echo, echo2;
    size_t n = self->task_count;
    const char **names = (const char **) calloc (n? n: 1, sizeof (char *));
    size_t *seen = (size_t *) malloc ((n? n: 1) * sizeof (size_t));
    if (!names || !seen) {
        free (names);
        free (seen);
        ctx->oom = true;
        return;
    }
    for (size_t i = 0; i < n; i++)
        seen [i] = SIZE_MAX;
    for (size_t i = 0; i < n; i++)
        names [i] = self->tasks [i].name;
    size_t suggestions = 0;

    for (size_t t = 0; t < n; t++) {
        qn_task_t *task = &self->tasks [t];
        for (size_t i = 0; i < task->needs_count; i++) {
            s_node_t *where = extra [t].need_nodes [i];
            const char *need = task->needs [i];
            task->need_index [i] = SIZE_MAX;
            if (!need)
                continue;
            int index = s_lookup (self->tasks, self->by_name, n, need);
            if (index < 0) {
                const char *close = NULL;
                if (suggestions++ < S_MAX_SUGGEST)
                    close = s_closest (need, names, n);
                if (close)
                    s_node_error (ctx, where, "task '%s' needs unknown task '%s' "
                                  "(did you mean '%s'?)", s_echo (task->name, echo),
                                  s_echo (need, echo2), close);
                else
                    s_node_error (ctx, where, "task '%s' needs unknown task '%s'",
                                  s_echo (task->name, echo), s_echo (need, echo2));
                continue;
            }
            if ((size_t) index == t) {
                s_node_error (ctx, where, "task '%s' needs itself", s_echo (task->name, echo));
                continue;
            }
            //  seen [index] remembers the last task that needed index, so
            //  a hostile list of a million repeats stays linear
            if (seen [index] == t) {
                s_node_error (ctx, where, "task '%s' needs '%s' more than once",
                              s_echo (task->name, echo), s_echo (need, echo2));
                continue;
            }
            seen [index] = t;
            task->need_index [i] = (size_t) index;
        }
    }
    free (names);
    free (seen);
}

//  Reports one cycle per strongly connected component (Tarjan, iterative so
//  a 10,000-task chain cannot blow the C stack).  The cycle starts at the
//  component's first task in file order, follows needs, and is found by a
//  breadth-first search, so it is a shortest one through that task.
static void
s_find_cycles (s_ctx_t *ctx, qn_workflow_t *self)
{
    size_t n = self->task_count;
    if (n == 0)
        return;
    size_t *index = (size_t *) malloc (n * sizeof (size_t));
    size_t *low = (size_t *) malloc (n * sizeof (size_t));
    size_t *comp = (size_t *) malloc (n * sizeof (size_t));
    size_t *comp_size = (size_t *) calloc (n, sizeof (size_t));
    bool *reported = (bool *) calloc (n, sizeof (bool));
    bool *on_stack = (bool *) calloc (n, sizeof (bool));
    size_t *stack = (size_t *) malloc (n * sizeof (size_t));
    size_t *frame_v = (size_t *) malloc (n * sizeof (size_t));
    size_t *frame_e = (size_t *) malloc (n * sizeof (size_t));
    size_t *parent = (size_t *) malloc (n * sizeof (size_t));
    size_t *queue = (size_t *) malloc (n * sizeof (size_t));
    size_t *path = (size_t *) malloc ((n + 1) * sizeof (size_t));
    if (!index || !low || !comp || !comp_size || !reported || !on_stack || !stack
    ||  !frame_v || !frame_e || !parent || !queue || !path) {
        ctx->oom = true;
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        index [i] = SIZE_MAX;
        comp [i] = SIZE_MAX;
        parent [i] = SIZE_MAX;
    }
    size_t counter = 0, comps = 0, sp = 0;
    for (size_t root = 0; root < n; root++) {
        if (index [root] != SIZE_MAX)
            continue;
        size_t fp = 0;
        index [root] = low [root] = counter++;
        stack [sp++] = root;
        on_stack [root] = true;
        frame_v [fp] = root;
        frame_e [fp++] = 0;
        while (fp > 0) {
            size_t v = frame_v [fp - 1];
            qn_task_t *task = &self->tasks [v];
            if (frame_e [fp - 1] < task->needs_count) {
                size_t w = task->need_index [frame_e [fp - 1]++];
                if (w == SIZE_MAX)
                    continue;
                if (index [w] == SIZE_MAX) {
                    index [w] = low [w] = counter++;
                    stack [sp++] = w;
                    on_stack [w] = true;
                    frame_v [fp] = w;
                    frame_e [fp++] = 0;
                }
                else
                if (on_stack [w] && index [w] < low [v])
                    low [v] = index [w];
                continue;
            }
            if (low [v] == index [v]) {
                size_t w;
                do {
                    w = stack [--sp];
                    on_stack [w] = false;
                    comp [w] = comps;
                    comp_size [comps]++;
                } while (w != v);
                comps++;
            }
            fp--;
            if (fp > 0) {
                size_t u = frame_v [fp - 1];
                if (low [v] < low [u])
                    low [u] = low [v];
            }
        }
    }

    for (size_t start = 0; start < n; start++) {
        size_t c = comp [start];
        if (comp_size [c] < 2 || reported [c])
            continue;
        reported [c] = true;
        //  Breadth-first from start, within its component, back to start
        size_t head = 0, tail = 0, last = SIZE_MAX;
        queue [tail++] = start;
        parent [start] = start;
        while (head < tail && last == SIZE_MAX) {
            size_t v = queue [head++];
            qn_task_t *task = &self->tasks [v];
            for (size_t i = 0; i < task->needs_count; i++) {
                size_t w = task->need_index [i];
                if (w == SIZE_MAX || comp [w] != c)
                    continue;
                if (w == start) {
                    last = v;
                    break;
                }
                if (parent [w] == SIZE_MAX) {
                    parent [w] = v;
                    queue [tail++] = w;
                }
            }
        }
        size_t length = 0;
        if (last != SIZE_MAX) {
            for (size_t v = last; v != start; v = parent [v])
                path [length++] = v;
            path [length++] = start;
        }
        for (size_t i = 0; i < tail; i++)
            parent [queue [i]] = SIZE_MAX;
        if (length == 0)
            continue;               //  cannot happen in a real component

        //  path holds the cycle backwards; print it forwards, eliding a
        //  long middle so a hostile file cannot make the message huge
        char *text = NULL;
        size_t size = 0;
        FILE *stream = open_memstream (&text, &size);
        if (!stream) {
            ctx->oom = true;
            break;
        }
        s_echo_buf_t echo;
        for (size_t k = 0; k < length; k++) {
            size_t v = path [length - 1 - k];
            if (length > S_CYCLE_SHOWN && k == S_CYCLE_SHOWN - 2) {
                fprintf (stream, " -> ... (%zu more)", length - S_CYCLE_SHOWN + 1);
                k = length - 2;
                continue;
            }
            fprintf (stream, "%s%s", k? " -> ": "", s_echo (self->tasks [v].name, echo));
        }
        fprintf (stream, " -> %s", s_echo (self->tasks [start].name, echo));
        if (fclose (stream) == 0 && text)
            s_error (ctx, self->tasks [start].line, self->tasks [start].col,
                     "dependency cycle: %s", text);
        else
            ctx->oom = true;
        free (text);
    }
done:
    free (index);
    free (low);
    free (comp);
    free (comp_size);
    free (reported);
    free (on_stack);
    free (stack);
    free (frame_v);
    free (frame_e);
    free (parent);
    free (queue);
    free (path);
}

static void
s_parse_workflow (s_ctx_t *ctx, qn_workflow_t *self, s_node_t *root)
{
    s_echo_buf_t echo;
    if (!root || s_is_null (root)) {
        s_error (ctx, 1, 1, "the workflow file is empty (needs 'name' and 'tasks')");
        return;
    }
    if (root->kind != S_MAPPING) {
        s_node_error (ctx, root, "expected a mapping with 'name' and 'tasks' at the top level");
        return;
    }
    s_check_keys (ctx, root, s_top_keys, "");

    s_node_t *key = NULL;
    s_node_t *node = s_map_get (root, "name", NULL);
    if (!node)
        s_node_error (ctx, root, "missing required key 'name'");
    else
    if (node->kind != S_SCALAR || s_is_null (node))
        s_node_error (ctx, node, "expected a workflow name for 'name'");
    else
    if (!s_valid_name (node->value))
        s_node_error (ctx, node, "invalid workflow name '%s' (use letters, digits, '_', '.', "
                      "'-', at most %d characters, no '..')", s_echo (node->value, echo),
                      S_NAME_MAX);
    else
        self->name = s_strdup (ctx, node->value);

    node = s_map_get (root, "description", NULL);
    if (node && node->kind != S_SCALAR)
        s_node_error (ctx, node, "expected a string for 'description'");
    else
    if (node && !s_is_null (node))
        self->description = s_strdup (ctx, node->value);

    node = s_map_get (root, "params", NULL);
    if (node)
        s_parse_params (ctx, self, node);
    node = s_map_get (root, "keep_runs", NULL);
    if (node) {
        s_get_uint32 (ctx, node, "keep_runs", &self->keep_runs);
        if (self->keep_runs == 0 && node->kind == S_SCALAR)
            s_node_error (ctx, node, "keep_runs must be at least 1");
    }
    node = s_map_get (root, "artifacts", NULL);
    if (node)
        s_parse_store (ctx, self, node);
    ctx->params = self->params;
    ctx->param_count = self->param_count;

    node = s_map_get (root, "tasks", &key);
    if (!node) {
        s_node_error (ctx, root, "missing required key 'tasks'");
        return;
    }
    if (s_is_null (node)) {
        s_node_error (ctx, key, "'tasks' is empty: a workflow needs at least one task");
        return;
    }
    if (node->kind != S_MAPPING) {
        s_node_error (ctx, node, "expected a mapping of task names to tasks for 'tasks'");
        return;
    }
    size_t pairs = node->count / 2;
    if (pairs == 0) {
        s_node_error (ctx, node, "'tasks' is empty: a workflow needs at least one task");
        return;
    }
    if (pairs > S_MAX_TASKS) {
        s_node_error (ctx, key, "too many tasks: %zu (limit %d)", pairs, S_MAX_TASKS);
        return;
    }
    self->tasks = (qn_task_t *) calloc (pairs, sizeof (qn_task_t));
    s_task_extra_t *extra = (s_task_extra_t *) calloc (pairs, sizeof (s_task_extra_t));
    if (!self->tasks || !extra) {
        free (extra);
        ctx->oom = true;
        return;
    }
    for (size_t i = 0; i < pairs; i++) {
        s_node_t *task_key = node->items [2 * i];
        if (task_key->skip)
            continue;
        size_t t = self->task_count++;
        s_parse_task (ctx, &self->tasks [t], &extra [t], task_key, node->items [2 * i + 1]);
        if (!self->tasks [t].name) {
            self->task_count--;
            break;
        }
    }
    self->by_name = (size_t *) malloc ((self->task_count? self->task_count: 1)
                                       * sizeof (size_t));
    if (!self->by_name)
        ctx->oom = true;
    else {
        for (size_t i = 0; i < self->task_count; i++)
            self->by_name [i] = i;
        //  qsort_r, not a static: several threads may parse at once
        qsort_r (self->by_name, self->task_count, sizeof (size_t), s_by_name_compare,
                 self->tasks);
        if (!ctx->oom) {
            s_resolve_inputs (ctx, self, extra);
            s_resolve_needs (ctx, self, extra);
            s_find_cycles (ctx, self);
        }
    }
    for (size_t i = 0; i < pairs; i++) {
        free (extra [i].need_nodes);
        for (size_t j = 0; j < extra [i].stand_in_count; j++)
            free (extra [i].stand_ins [j]);
        free (extra [i].stand_ins);
    }
    free (extra);
}


//  ---------------------------------------------------------------------
//  Public API

qn_workflow_t *
qn_workflow_parse (const char *filename, const char *text, size_t len, char **error_p)
{
    if (error_p)
        *error_p = NULL;
    s_ctx_t ctx = { .filename = filename? filename: "<input>" };
    if (!text)
        len = 0;

    qn_workflow_t *self = NULL;
    if (len > S_MAX_INPUT)
        s_error (&ctx, 1, 1, "file is larger than 1 MiB");
    else {
        bool fatal = false;
        s_node_t *root = s_build_tree (&ctx, text? text: "", len, &fatal);
        if (!fatal) {
            self = (qn_workflow_t *) calloc (1, sizeof (qn_workflow_t));
            if (!self)
                ctx.oom = true;
            else {
                //  Duplicates first: the walk below skips marked keys
                if (root)
                    s_mark_duplicates (&ctx, root, true, false);
                s_parse_workflow (&ctx, self, root);
            }
        }
        s_node_free (&root);
    }
    if (ctx.count > 0 || ctx.oom) {
        qn_workflow_destroy (&self);
        char *errors = s_errors_take (&ctx);
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
    return s_lookup (self->tasks, self->by_name, self->task_count, name);
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

//  Every problem is reported, one per line, so a user fixes a command line
//  in one go.  The last override of a name wins.
qn_kv_t *
qn_workflow_resolve_params (qn_workflow_t *self, const qn_kv_t *overrides, size_t count,
                            char **error_p)
{
    assert (self);
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
    s_echo_buf_t echo;

    for (size_t i = 0; i < count; i++) {
        const char *name = overrides [i].key;
        bool known = false;
        for (size_t j = 0; name && j < self->param_count && !known; j++)
            known = strcmp (self->params [j].name, name) == 0;
        if (known)
            continue;
        fprintf (stream, "%sunknown parameter '%s'", failed? "\n": "",
                 s_echo (name? name: "", echo));
        if (self->param_count == 0)
            fprintf (stream, " (this workflow declares no parameters)");
        else {
            fprintf (stream, " (declared: ");
            for (size_t j = 0; j < self->param_count; j++)
                fprintf (stream, "%s%s", j? ", ": "", self->params [j].name);
            fprintf (stream, ")");
        }
        failed = true;
    }
    qn_kv_t *pairs = (qn_kv_t *) calloc (self->param_count + 1, sizeof (qn_kv_t));
    if (!pairs)
        failed = true;
    for (size_t j = 0; pairs && j < self->param_count; j++) {
        const qn_param_t *param = &self->params [j];
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
        qn_kv_free (pairs, self->param_count);
        if (error_p)
            *error_p = errors;
        else
            free (errors);
        return NULL;
    }
    free (errors);
    return pairs;
}


//  ---------------------------------------------------------------------
//  Typed parameters

//  A malloc'd formatted string, or NULL
static char *
s_format (const char *format, ...)
{
    va_list args;
    va_start (args, format);
    char *text = NULL;
    if (vasprintf (&text, format, args) == -1)
        text = NULL;
    va_end (args);
    return text;
}

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
    s_echo_buf_t echo;
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
        static const char *yes [] = { "true", "yes", "on", "1", NULL };
        static const char *no [] = { "false", "no", "off", "0", NULL };
        ok = false;
        for (size_t i = 0; yes [i] && !ok; i++)
            if (strcasecmp (value, yes [i]) == 0) {
                canonical = strdup ("true");
                ok = true;
            }
        for (size_t i = 0; no [i] && !ok; i++)
            if (strcasecmp (value, no [i]) == 0) {
                canonical = strdup ("false");
                ok = true;
            }
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
            *error_p = s_format ("parameter '%s' wants an artifact reference (file:<sha256> "
                                 "or dir:<sha256>, as qanat put prints), not '%s'",
                                 param->name, s_echo (value, echo));
        else
        if (error_p)
            *error_p = s_format ("parameter '%s' wants %s %s, not '%s'", param->name,
                                     param->type == QN_PARAM_INT? "an": "a",
                                     param->type == QN_PARAM_STRING? "string of at most 4096 bytes"
                                     : qn_param_type_name (param->type), s_echo (value, echo));
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
                *error_p = s_format ("parameter '%s' must be one of: %s (not '%s')",
                                         param->name, list? list: "", s_echo (value, echo));
                free (list);
            }
            free (canonical);
            return NULL;
        }
    }
    return canonical;
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

//  "unknown …" for a reference that names neither a parameter nor a secret
static char *
s_unknown_ref (const char *ref, size_t len)
{
    int shown = (int) (len > 64? 64: len);
    if (len > 7 && strncmp (ref, "params.", 7) == 0)
        return s_format ("unknown parameter '%.*s' in '${{ %.*s }}'", shown - 7, ref + 7,
                         shown, ref);
    return s_format ("unknown reference '${{ %.*s }}' (a command may use params.NAME and "
                     "secrets.NAME)", shown, ref);
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
        const qn_kv_t *found = len > 7 && strncmp (name, "params.", 7) == 0
                             ? s_find_param (refs, name + 7, len - 7): NULL;
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
                     ? s_format ("a secret cannot be an argument of a command run without a "
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
        char *located = s_format ("%s (at '%.*s')", *error_p, (int) (shown > 40? 40: shown), at);
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
    s_refs_t refs = { params, count, NULL, 0 };
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

uint32_t
qn_workflow_keep_runs (qn_workflow_t *self)
{
    assert (self);
    return self->keep_runs;
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
