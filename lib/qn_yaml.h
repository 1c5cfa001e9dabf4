/*  qn_yaml - a YAML text as a tree of positioned nodes, and the list of
    "file:line:col: message" errors found while reading it.

    This is pass one of reading a workflow file (qn_workflow): libyaml's
    event stream becomes a small tree of our own that keeps every node's
    position, refuses aliases and anchors, and bounds the nesting depth.
    We do not use libyaml's document API because it silently resolves
    aliases and keeps no trace of duplicate keys.  Pass two (qn_workflow,
    qn_params, qn_wf_graph, qn_wf_command) walks the tree with the helpers
    below: key lookup, unknown keys with "did you mean ...?", and typed
    reads of scalars, each reporting into the same error list.

    Nothing here knows workflow vocabulary beyond what the caller passes
    in.  Private to libqanat.
*/
#ifndef QN_YAML_H_INCLUDED
#define QN_YAML_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QN_YAML_ECHO_MAX    64      //  user text echoed into messages is cut here
#define QN_YAML_NAME_MAX    128     //  longest name; longer words get no suggestion

typedef enum { QN_YAML_SCALAR, QN_YAML_SEQUENCE, QN_YAML_MAPPING } qn_yaml_kind_t;

//  A node of the tree.  Pass two reads the fields directly.
typedef struct _qn_yaml_node_t qn_yaml_node_t;
struct _qn_yaml_node_t {
    qn_yaml_kind_t kind;
    char *value;                //  scalar text, NUL-terminated
    bool plain;                 //  plain (unquoted) scalar
    bool skip;                  //  mapping key to ignore: duplicate or not a scalar
    size_t line, col;           //  1-based
    qn_yaml_node_t **items;     //  sequence items, or key, value, key, value...
    size_t count;
    size_t cap;
};

//  The context of one parse: where errors go.  Every problem becomes one
//  error and the parse goes on, so that a user fixes a file in one round
//  trip; oom records that some allocation failed on the way.  Start with
//  { .filename = NAME } and end with qn_yaml_errors_take (or free
//  ctx.errors when count is 0).
typedef struct _qn_yaml_error_t qn_yaml_error_t;
typedef struct {
    const char *filename;
    qn_yaml_error_t *errors;
    size_t count, cap;
    bool oom;
} qn_yaml_ctx_t;

//  A buffer for qn_yaml_echo
typedef char qn_yaml_echo_t [QN_YAML_ECHO_MAX + 4];

//  ---------------------------------------------------------------------
//  Errors

//  Adds an error at line:col (1-based)
void
    qn_yaml_error (qn_yaml_ctx_t *ctx, size_t line, size_t col, const char *format, ...)
    __attribute__ ((format (printf, 4, 5)));

//  Adds an error at node's position
void
    qn_yaml_node_error (qn_yaml_ctx_t *ctx, qn_yaml_node_t *node, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));

//  Joins the errors, sorted by position, into one malloc'd string of
//  "file:line:col: message" lines (no trailing newline).  Frees the list.
char *
    qn_yaml_errors_take (qn_yaml_ctx_t *ctx);

//  Makes user text safe to echo in a message (see qn_yaml.c); returns buf
const char *
    qn_yaml_echo (const char *text, char *buf);

//  A malloc'd formatted string, or NULL
char *
    qn_yaml_format (const char *format, ...)
    __attribute__ ((format (printf, 1, 2)));

//  ---------------------------------------------------------------------
//  Suggestions and keys

//  The candidate closest to word, if close enough to suggest, or NULL.
//  NULL entries among candidates are skipped.
const char *
    qn_yaml_closest (const char *word, const char **candidates, size_t count);

//  True if key is in known (a NULL-terminated list)
bool
    qn_yaml_is_known (const char *key, const char **known);

//  Reports unknown keys of a mapping, with a suggestion when one is close;
//  where is e.g. " in task 'train'".
void
    qn_yaml_check_keys (qn_yaml_ctx_t *ctx, qn_yaml_node_t *map, const char **known,
                        const char *where);

//  The value of the first, non-duplicate occurrence of key, or NULL.
//  Sets *key_p (if not NULL) to the key node.
qn_yaml_node_t *
    qn_yaml_map_get (qn_yaml_node_t *map, const char *key, qn_yaml_node_t **key_p);

//  ---------------------------------------------------------------------
//  The tree

//  Reads text into a tree.  Returns the document's root (NULL for an
//  empty stream) and sets *fatal when the stream is broken or hostile,
//  in which case the tree is not worth validating.
qn_yaml_node_t *
    qn_yaml_build (qn_yaml_ctx_t *ctx, const char *text, size_t len, bool *fatal);

//  Marks, everywhere in the tree, mapping keys that are not scalars or
//  that repeat an earlier key (skip), and reports them.  The mapping under
//  the root's first entries_key names entries_noun, not keys: its repeats
//  are "duplicate <entries_noun> 'x'".
void
    qn_yaml_mark_duplicates (qn_yaml_ctx_t *ctx, qn_yaml_node_t *root,
                             const char *entries_key, const char *entries_noun);

//  Frees a node and everything below it; nullifies the reference
void
    qn_yaml_node_free (qn_yaml_node_t **node_p);

//  True for a missing node and for a plain null scalar ("", ~, null)
bool
    qn_yaml_is_null (qn_yaml_node_t *node);

//  ---------------------------------------------------------------------
//  Scalars

//  strdup that sets ctx->oom when it fails
char *
    qn_yaml_strdup (qn_yaml_ctx_t *ctx, const char *text);

//  True for a name in the safe alphabet: 1 to QN_YAML_NAME_MAX of
//  [A-Za-z0-9_.-], not "." and without "..".
bool
    qn_yaml_name_valid (const char *name);

//  A field that takes one scalar or a sequence of scalars.  Returns the
//  scalars through *items_p (malloc'd array of pointers into the tree);
//  -1 after reporting "expected <expected>" for anything else.
int
    qn_yaml_scalar_list (qn_yaml_ctx_t *ctx, qn_yaml_node_t *node, const char *expected,
                         qn_yaml_node_t ***items_p, size_t *count_p);

//  The typed reads below return 0, or -1 after reporting at node; key
//  names the field in messages.
//  A non-negative integer (quoted digits too)
int
    qn_yaml_uint32 (qn_yaml_ctx_t *ctx, qn_yaml_node_t *node, const char *key,
                    uint32_t *value_p);

//  A memory size in megabytes: plain, or with M/G/T (Mi, MB, MiB...)
int
    qn_yaml_memory (qn_yaml_ctx_t *ctx, qn_yaml_node_t *node, uint64_t *mb_p);

//  A duration in seconds: plain, or units d/h/m/s in that order ("1h30m")
int
    qn_yaml_duration (qn_yaml_ctx_t *ctx, qn_yaml_node_t *node, const char *key,
                      uint32_t *seconds_p);

#endif
