/*  qn_ignore - the rules of a .qanatignore file (see qn_ignore.h).
*/
#include "qn_ignore.h"
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

//  Bounds a hostile file cannot get past: patterns, their length, and the
//  work one match may take (a pattern of many stars backtracks)
#define S_MAX_PATTERNS  10000
#define S_MAX_LINE      4096
#define S_MAX_STEPS     200000

typedef struct {
    char *glob;                 //  without '!', leading '/' and trailing '/'
    bool negate;
    bool dir_only;
    bool anchored;              //  matched against the whole path, not the name
} s_pattern_t;

struct _qn_ignore_t {
    s_pattern_t *patterns;
    size_t count;
};

void
qn_ignore_destroy (qn_ignore_t **self_p)
{
    assert (self_p);
    qn_ignore_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < self->count; i++)
        free (self->patterns [i].glob);
    free (self->patterns);
    free (self);
    *self_p = NULL;
}

//  One line (without its newline) into a pattern; false to skip it
static bool
s_parse_line (const char *line, size_t length, s_pattern_t *pattern)
{
    memset (pattern, 0, sizeof *pattern);
    if (length && line [length - 1] == '\r')
        length--;
    //  Trailing spaces go unless the last one is escaped
    while (length && line [length - 1] == ' '
    &&     !(length >= 2 && line [length - 2] == '\\'))
        length--;
    if (length == 0 || line [0] == '#' || length > S_MAX_LINE)
        return false;
    if (line [0] == '!') {
        pattern->negate = true;
        line++;
        length--;
    }
    else
    if (line [0] == '\\' && length > 1 && (line [1] == '#' || line [1] == '!')) {
        line++;
        length--;
    }
    if (length && line [length - 1] == '/') {
        pattern->dir_only = true;
        length--;
    }
    if (length && line [0] == '/') {
        pattern->anchored = true;
        line++;
        length--;
    }
    if (length == 0)
        return false;
    if (memchr (line, '/', length))
        pattern->anchored = true;
    pattern->glob = strndup (line, length);
    return pattern->glob != NULL;
}

qn_ignore_t *
qn_ignore_new (const char *text, size_t size)
{
    qn_ignore_t *self = (qn_ignore_t *) calloc (1, sizeof (qn_ignore_t));
    if (!self)
        return NULL;
    size_t capacity = 0;
    const char *cursor = text, *end = text + size;
    while (text && cursor < end && self->count < S_MAX_PATTERNS) {
        const char *newline = (const char *) memchr (cursor, '\n', (size_t) (end - cursor));
        size_t length = newline? (size_t) (newline - cursor): (size_t) (end - cursor);
        s_pattern_t pattern;
        if (memchr (cursor, 0, length) == NULL && s_parse_line (cursor, length, &pattern)) {
            if (self->count == capacity) {
                capacity = capacity? capacity * 2: 16;
                s_pattern_t *grown = (s_pattern_t *) realloc (self->patterns,
                                                              capacity * sizeof (s_pattern_t));
                if (!grown) {
                    free (pattern.glob);
                    qn_ignore_destroy (&self);
                    return NULL;
                }
                self->patterns = grown;
            }
            self->patterns [self->count++] = pattern;
        }
        cursor += length + 1;
    }
    return self;
}

size_t
qn_ignore_count (qn_ignore_t *self)
{
    assert (self);
    return self->count;
}

//  A '[...]' class at *pattern against c; advances *pattern past it.
//  -1 when the class is not closed (then '[' is a literal).
static int
s_class (const char **pattern, char c)
{
    const char *p = *pattern + 1;
    bool negate = *p == '!' || *p == '^';
    if (negate)
        p++;
    bool found = false;
    bool first = true;
    while (*p && (*p != ']' || first)) {
        char low = *p, high = *p;
        if (*p == '\\' && p [1])
            low = high = *++p;
        if (p [1] == '-' && p [2] && p [2] != ']') {
            high = p [2] == '\\' && p [3]? p [3]: p [2];
            p += p [2] == '\\' && p [3]? 3: 2;
        }
        if (c >= low && c <= high)
            found = true;
        p++;
        first = false;
    }
    if (*p != ']')
        return -1;
    *pattern = p + 1;
    return found != negate && c != '/';
}

static bool
s_glob (const char *p, const char *s, long *steps)
{
    while (*p) {
        if (++*steps > S_MAX_STEPS)
            return false;
        if (p [0] == '*' && p [1] == '*') {
            //  "**" then '/' is any number of directories, a final "**" anything
            if (p [2] == 0)
                return true;
            if (p [2] == '/') {
                for (const char *at = s; ; at++) {
                    if ((at == s || at [-1] == '/') && s_glob (p + 3, at, steps))
                        return true;
                    if (!*at)
                        return false;
                }
            }
            p++;            //  elsewhere it is one '*'
            continue;
        }
        if (*p == '*') {
            for (const char *at = s; ; at++) {
                if (s_glob (p + 1, at, steps))
                    return true;
                if (!*at || *at == '/')
                    return false;
            }
        }
        if (!*s)
            return false;
        if (*p == '?') {
            if (*s == '/')
                return false;
            p++;
            s++;
            continue;
        }
        if (*p == '[') {
            const char *after = p;
            int hit = s_class (&after, *s);
            if (hit == 0)
                return false;
            if (hit == 1) {
                p = after;
                s++;
                continue;
            }
        }
        if (*p == '\\' && p [1])
            p++;
        if (*p != *s)
            return false;
        p++;
        s++;
    }
    return *s == 0;
}

//  The rules on path itself, without looking at its parents
static bool
s_match_one (qn_ignore_t *self, const char *path, bool is_dir)
{
    const char *slash = strrchr (path, '/');
    const char *name = slash? slash + 1: path;
    bool ignored = false;
    for (size_t i = 0; i < self->count; i++) {
        const s_pattern_t *pattern = &self->patterns [i];
        if (pattern->dir_only && !is_dir)
            continue;
        if (pattern->negate != ignored)
            continue;       //  it could not change the answer
        long steps = 0;
        if (s_glob (pattern->glob, pattern->anchored? path: name, &steps))
            ignored = !pattern->negate;
    }
    return ignored;
}

bool
qn_ignore_match (qn_ignore_t *self, const char *path, bool is_dir)
{
    assert (self);
    if (!path || !*path)
        return false;
    //  A path inside a directory left out is left out
    char *copy = strdup (path);
    if (!copy)
        return false;
    bool ignored = false;
    for (char *slash = strchr (copy, '/'); slash && !ignored; slash = strchr (slash + 1, '/')) {
        *slash = 0;
        ignored = s_match_one (self, copy, true);
        *slash = '/';
    }
    free (copy);
    return ignored || s_match_one (self, path, is_dir);
}
