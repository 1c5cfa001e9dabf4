/*  qn_yaml - a YAML text as a tree of positioned nodes, and the errors
    found in it.  See qn_yaml.h for what it is for.

    Errors come out sorted by position.  Only a broken YAML stream or a
    hostile input (too deep) stops the tree early; the caller refuses an
    input that is too big before it gets here.
*/
#include <assert.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "qn_yaml.h"

#define S_MAX_DEPTH     32
#define S_MAX_ERRORS    100     //  more are summarised in one line

struct _qn_yaml_error_t {
    size_t line, col;
    size_t seq;                 //  discovery order, keeps the sort stable
    char *text;
};

//  ---------------------------------------------------------------------
//  Errors

static void
s_error_v (qn_yaml_ctx_t *ctx, size_t line, size_t col, const char *format, va_list args)
{
    if (ctx->count == ctx->cap) {
        size_t cap = ctx->cap? ctx->cap * 2: 16;
        qn_yaml_error_t *errors = (qn_yaml_error_t *) realloc (ctx->errors,
                                                               cap * sizeof (qn_yaml_error_t));
        if (!errors) {
            ctx->oom = true;
            return;
        }
        ctx->errors = errors;
        ctx->cap = cap;
    }
    char *text = NULL;
    if (vasprintf (&text, format, args) < 0)
        text = NULL;
    if (!text) {
        ctx->oom = true;
        return;
    }
    //  The same words at the same place once (a matrix's expansions)
    for (size_t i = ctx->count; i-- > 0; )
        if (ctx->errors [i].line == line && ctx->errors [i].col == col
        &&  strcmp (ctx->errors [i].text, text) == 0) {
            free (text);
            return;
        }
    qn_yaml_error_t *error = &ctx->errors [ctx->count];
    error->line = line;
    error->col = col;
    error->seq = ctx->count;
    error->text = text;
    ctx->count++;
}

void
qn_yaml_error (qn_yaml_ctx_t *ctx, size_t line, size_t col, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    s_error_v (ctx, line, col, format, args);
    va_end (args);
}

void
qn_yaml_node_error (qn_yaml_ctx_t *ctx, qn_yaml_node_t *node, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    s_error_v (ctx, node->line, node->col, format, args);
    va_end (args);
}

static int
s_error_compare (const void *a, const void *b)
{
    const qn_yaml_error_t *x = (const qn_yaml_error_t *) a;
    const qn_yaml_error_t *y = (const qn_yaml_error_t *) b;
    if (x->line != y->line)
        return x->line < y->line? -1: 1;
    if (x->col != y->col)
        return x->col < y->col? -1: 1;
    return x->seq < y->seq? -1: (x->seq > y->seq);
}

//  Joins the errors, sorted by position, into one malloc'd string of lines
//  (no trailing newline).  Frees the error list.
char *
qn_yaml_errors_take (qn_yaml_ctx_t *ctx)
{
    if (ctx->count > 1)
        qsort (ctx->errors, ctx->count, sizeof (qn_yaml_error_t), s_error_compare);
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
//  become '?', long text is cut.  buf must hold QN_YAML_ECHO_MAX + 4 bytes.
const char *
qn_yaml_echo (const char *text, char *buf)
{
    size_t i = 0;
    for (; text [i] && i < QN_YAML_ECHO_MAX; i++) {
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

//  A malloc'd formatted string, or NULL
char *
qn_yaml_format (const char *format, ...)
{
    va_list args;
    va_start (args, format);
    char *text = NULL;
    if (vasprintf (&text, format, args) == -1)
        text = NULL;
    va_end (args);
    return text;
}


//  ---------------------------------------------------------------------
//  Suggestions ("did you mean ...?")

//  Edit distance with two rows; strings longer than QN_YAML_NAME_MAX are not
//  compared (they are never near a real name anyway).
static size_t
s_distance (const char *a, const char *b)
{
    size_t la = strlen (a), lb = strlen (b);
    if (la > QN_YAML_NAME_MAX || lb > QN_YAML_NAME_MAX)
        return SIZE_MAX;
    size_t row0 [QN_YAML_NAME_MAX + 1], row1 [QN_YAML_NAME_MAX + 1];
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
const char *
qn_yaml_closest (const char *word, const char **candidates, size_t count)
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
s_unknown_key (qn_yaml_ctx_t *ctx, qn_yaml_node_t *key, const char **known, const char *where)
{
    size_t count = 0;
    while (known [count])
        count++;
    const char *suggestion = qn_yaml_closest (key->value, known, count);
    qn_yaml_echo_t echo;
    if (suggestion)
        qn_yaml_node_error (ctx, key, "unknown key '%s'%s (did you mean '%s'?)",
                            qn_yaml_echo (key->value, echo), where, suggestion);
    else
        qn_yaml_node_error (ctx, key, "unknown key '%s'%s", qn_yaml_echo (key->value, echo), where);
}


//  ---------------------------------------------------------------------
//  Pass one: events to tree

void
qn_yaml_node_free (qn_yaml_node_t **node_p)
{
    qn_yaml_node_t *node = *node_p;
    if (!node)
        return;
    for (size_t i = 0; i < node->count; i++)
        qn_yaml_node_free (&node->items [i]);
    free (node->items);
    free (node->value);
    free (node);
    *node_p = NULL;
}

static qn_yaml_node_t *
s_node_new (qn_yaml_kind_t kind, yaml_mark_t mark)
{
    qn_yaml_node_t *node = (qn_yaml_node_t *) calloc (1, sizeof (qn_yaml_node_t));
    if (node) {
        node->kind = kind;
        node->line = mark.line + 1;
        node->col = mark.column + 1;
    }
    return node;
}

static int
s_node_append (qn_yaml_node_t *parent, qn_yaml_node_t *child)
{
    if (parent->count == parent->cap) {
        size_t cap = parent->cap? parent->cap * 2: 4;
        qn_yaml_node_t **items = (qn_yaml_node_t **) realloc (parent->items,
                                                              cap * sizeof (qn_yaml_node_t *));
        if (!items)
            return -1;
        parent->items = items;
        parent->cap = cap;
    }
    parent->items [parent->count++] = child;
    return 0;
}

bool
qn_yaml_is_null (qn_yaml_node_t *node)
{
    if (!node)
        return true;
    if (node->kind != QN_YAML_SCALAR || !node->plain)
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
s_syntax_error (qn_yaml_ctx_t *ctx, yaml_parser_t *parser, const char *text, size_t len)
{
    const char *problem = parser->problem? parser->problem: "invalid YAML";
    if (parser->error == YAML_READER_ERROR) {
        size_t line, col;
        s_offset_position (text, len, parser->problem_offset, &line, &col);
        qn_yaml_error (ctx, line, col, "YAML error: %s", problem);
    }
    else
    if (parser->error == YAML_MEMORY_ERROR)
        ctx->oom = true;
    else
    if (parser->context)
        qn_yaml_error (ctx, parser->problem_mark.line + 1, parser->problem_mark.column + 1,
                       "YAML syntax error: %s (%s at line %zu)", problem, parser->context,
                       (size_t) parser->context_mark.line + 1);
    else
        qn_yaml_error (ctx, parser->problem_mark.line + 1, parser->problem_mark.column + 1,
                       "YAML syntax error: %s", problem);
}

//  Reads the event stream into a tree.  Returns the document's root (NULL
//  for an empty stream) and sets *fatal when the stream is broken or
//  hostile, in which case the tree is not worth validating.
qn_yaml_node_t *
qn_yaml_build (qn_yaml_ctx_t *ctx, const char *text, size_t len, bool *fatal)
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

    qn_yaml_node_t *root = NULL;
    qn_yaml_node_t *stack [S_MAX_DEPTH];
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
        qn_yaml_node_t *node = NULL;
        bool push = false;
        const char *anchor = NULL;

        switch (event.type) {
            case YAML_STREAM_END_EVENT:
                done = true;
                break;
            case YAML_DOCUMENT_START_EVENT:
                if (++documents > 1) {
                    qn_yaml_error (ctx, event.start_mark.line + 1, event.start_mark.column + 1,
                                   "only one YAML document is allowed in a workflow file");
                    *fatal = true;
                    done = true;
                }
                break;
            case YAML_ALIAS_EVENT:
                qn_yaml_error (ctx, event.start_mark.line + 1, event.start_mark.column + 1,
                               "YAML aliases are not supported");
                //  A null stand-in keeps keys and values paired
                node = s_node_new (QN_YAML_SCALAR, event.start_mark);
                if (node) {
                    node->plain = true;
                    node->value = strdup ("");
                }
                break;
            case YAML_SCALAR_EVENT:
                anchor = (const char *) event.data.scalar.anchor;
                node = s_node_new (QN_YAML_SCALAR, event.start_mark);
                if (node) {
                    node->plain = event.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
                    node->value = strndup ((const char *) event.data.scalar.value,
                                           event.data.scalar.length);
                    if (node->value && strlen (node->value) != event.data.scalar.length)
                        qn_yaml_error (ctx, node->line, node->col,
                                       "NUL characters are not allowed in strings");
                }
                break;
            case YAML_SEQUENCE_START_EVENT:
                anchor = (const char *) event.data.sequence_start.anchor;
                node = s_node_new (QN_YAML_SEQUENCE, event.start_mark);
                push = true;
                break;
            case YAML_MAPPING_START_EVENT:
                anchor = (const char *) event.data.mapping_start.anchor;
                node = s_node_new (QN_YAML_MAPPING, event.start_mark);
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
            qn_yaml_echo_t echo;
            qn_yaml_error (ctx, event.start_mark.line + 1, event.start_mark.column + 1,
                           "YAML anchors are not supported ('&%s')", qn_yaml_echo (anchor, echo));
        }
        if (push && depth == S_MAX_DEPTH) {
            qn_yaml_error (ctx, event.start_mark.line + 1, event.start_mark.column + 1,
                           "nesting is deeper than %d levels", S_MAX_DEPTH);
            qn_yaml_node_free (&node);
            push = false;
            *fatal = true;
            done = true;
        }
        yaml_event_delete (&event);

        if (node) {
            if (node->kind == QN_YAML_SCALAR && !node->value) {
                qn_yaml_node_free (&node);
                ctx->oom = true;
                *fatal = true;
                break;
            }
            if (depth > 0) {
                if (s_node_append (stack [depth - 1], node)) {
                    qn_yaml_node_free (&node);
                    ctx->oom = true;
                    *fatal = true;
                    break;
                }
            }
            else
            if (!root)
                root = node;
            else
                qn_yaml_node_free (&node);        //  cannot happen with one document
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
//  keys rather than comparing pairs: a hostile mapping may be huge.  noun
//  is what this mapping's keys name ("key", or "task" for the tasks);
//  entries_key and entries_noun are given at the root only.
static void
s_mark_duplicates (qn_yaml_ctx_t *ctx, qn_yaml_node_t *node, const char *noun,
                   const char *entries_key, const char *entries_noun)
{
    if (node->kind == QN_YAML_MAPPING) {
        size_t pairs = node->count / 2;
        s_key_ref_t *refs = (s_key_ref_t *) calloc (pairs? pairs: 1, sizeof (s_key_ref_t));
        if (!refs) {
            ctx->oom = true;
            return;
        }
        size_t used = 0;
        for (size_t i = 0; i < pairs; i++) {
            qn_yaml_node_t *key = node->items [2 * i];
            if (key->kind != QN_YAML_SCALAR) {
                qn_yaml_node_error (ctx, key, "mapping keys must be strings");
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
            qn_yaml_node_t *key = node->items [2 * refs [i].index];
            qn_yaml_node_t *orig = node->items [2 * refs [first].index];
            qn_yaml_echo_t echo;
            key->skip = true;
            qn_yaml_node_error (ctx, key, "duplicate %s '%s' (first defined at line %zu)",
                                noun, qn_yaml_echo (key->value, echo), orig->line);
        }
        free (refs);
    }
    //  The first entries_key at the top level (a workflow's 'tasks') holds
    //  entries, not keys
    bool entries_seen = false;
    for (size_t i = 0; i < node->count; i++) {
        const char *child_noun = "key";
        if (entries_key && node->kind == QN_YAML_MAPPING && i % 2 == 1) {
            qn_yaml_node_t *key = node->items [i - 1];
            if (!key->skip && !entries_seen && strcmp (key->value, entries_key) == 0) {
                child_noun = entries_noun;
                entries_seen = true;
            }
        }
        s_mark_duplicates (ctx, node->items [i], child_noun, NULL, NULL);
    }
}

void
qn_yaml_mark_duplicates (qn_yaml_ctx_t *ctx, qn_yaml_node_t *root,
                         const char *entries_key, const char *entries_noun)
{
    assert (root);
    s_mark_duplicates (ctx, root, "key", entries_key, entries_noun);
}



//  The value of the first, non-duplicate occurrence of key, or NULL.
qn_yaml_node_t *
qn_yaml_map_get (qn_yaml_node_t *map, const char *key, qn_yaml_node_t **key_p)
{
    for (size_t i = 0; i + 1 < map->count; i += 2) {
        qn_yaml_node_t *k = map->items [i];
        if (!k->skip && strcmp (k->value, key) == 0) {
            if (key_p)
                *key_p = k;
            return map->items [i + 1];
        }
    }
    return NULL;
}

bool
qn_yaml_is_known (const char *key, const char **known)
{
    for (size_t i = 0; known [i]; i++)
        if (strcmp (key, known [i]) == 0)
            return true;
    return false;
}

//  Reports unknown keys of a mapping; where is e.g. " in task 'train'".
void
qn_yaml_check_keys (qn_yaml_ctx_t *ctx, qn_yaml_node_t *map, const char **known, const char *where)
{
    for (size_t i = 0; i + 1 < map->count; i += 2) {
        qn_yaml_node_t *key = map->items [i];
        if (!key->skip && !qn_yaml_is_known (key->value, known))
            s_unknown_key (ctx, key, known, where);
    }
}


//  ---------------------------------------------------------------------
//  Scalars

char *
qn_yaml_strdup (qn_yaml_ctx_t *ctx, const char *text)
{
    char *copy = strdup (text);
    if (!copy)
        ctx->oom = true;
    return copy;
}

//  Task, workflow and parameter names double as path components and
//  label values elsewhere, so they are kept to a safe alphabet.
bool
qn_yaml_name_valid (const char *name)
{
    size_t len = strlen (name);
    if (len == 0 || len > QN_YAML_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char) name [i];
        if (!(isascii (c) && (isalnum (c) || c == '_' || c == '.' || c == '-')))
            return false;
    }
    return strcmp (name, ".") != 0 && strstr (name, "..") == NULL;
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
int
qn_yaml_uint32 (qn_yaml_ctx_t *ctx, qn_yaml_node_t *node, const char *key, uint32_t *value_p)
{
    if (node->kind == QN_YAML_SCALAR) {
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
            qn_yaml_node_error (ctx, node, "value for '%s' is too large (at most %u)",
                                key, (unsigned) UINT32_MAX);
            return -1;
        }
    }
    qn_yaml_node_error (ctx, node, "expected a non-negative integer for '%s'", key);
    return -1;
}

//  Memory: plain megabytes, or a number with M/G/T (optionally Mi/MB/MiB
//  and so on).  Binary units throughout: 1G = 1024 MB.
int
qn_yaml_memory (qn_yaml_ctx_t *ctx, qn_yaml_node_t *node, uint64_t *mb_p)
{
    if (node->kind == QN_YAML_SCALAR) {
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
                    qn_yaml_node_error (ctx, node, "value for 'memory' is too large");
                    return -1;
                }
                *mb_p = value * scale;
                return 0;
            }
        }
    }
    qn_yaml_node_error (ctx, node,
                        "expected a memory size for 'memory' (megabytes, or like 512M, 4G, 1Gi)");
    return -1;
}

//  Timeout: plain seconds, or units d/h/m/s in that order, each at most
//  once ("90s", "30m", "2h", "1h30m").
int
qn_yaml_duration (qn_yaml_ctx_t *ctx, qn_yaml_node_t *node, const char *key, uint32_t *seconds_p)
{
    if (node->kind == QN_YAML_SCALAR && node->value [0]) {
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
    qn_yaml_node_error (ctx, node,
                        "expected a duration for '%s' (seconds, or like 90s, 30m, 2h, 1h30m)", key);
    return -1;
}


//  A list field that accepts one scalar or a sequence of scalars.
//  Returns the scalars through *items_p (pointers into the tree).
int
qn_yaml_scalar_list (qn_yaml_ctx_t *ctx, qn_yaml_node_t *node, const char *expected,
                     qn_yaml_node_t ***items_p, size_t *count_p)
{
    *items_p = NULL;
    *count_p = 0;
    if (qn_yaml_is_null (node))
        return 0;
    if (node->kind == QN_YAML_MAPPING) {
        qn_yaml_node_error (ctx, node, "expected %s", expected);
        return -1;
    }
    size_t count = node->kind == QN_YAML_SCALAR? 1: node->count;
    qn_yaml_node_t **items = (qn_yaml_node_t **) calloc (count? count: 1,
                                                         sizeof (qn_yaml_node_t *));
    if (!items) {
        ctx->oom = true;
        return -1;
    }
    size_t used = 0;
    int rc = 0;
    if (node->kind == QN_YAML_SCALAR)
        items [used++] = node;
    else
        for (size_t i = 0; i < node->count; i++) {
            qn_yaml_node_t *item = node->items [i];
            if (item->kind != QN_YAML_SCALAR || qn_yaml_is_null (item)) {
                qn_yaml_node_error (ctx, item, "expected %s", expected);
                rc = -1;
            }
            else
                items [used++] = item;
        }
    *items_p = items;
    *count_p = used;
    return rc;
}
