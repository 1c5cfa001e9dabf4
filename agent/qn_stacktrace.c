/*  qn_stacktrace - stack trace of a failed attempt.  See qn_stacktrace.h. */
#include "qn_stacktrace.h"
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *data;             //  NULL for an empty line
    size_t size;
    bool truncated;         //  more bytes came than we keep
} s_line_t;

struct _qn_stacktrace_t {
    s_line_t *ring;
    size_t max_lines;
    size_t head;            //  index of the oldest line
    size_t count;
    bool open;              //  the newest line continues with the next add
};

typedef struct {
    size_t start;           //  "Traceback ..." line
    size_t end;             //  exception line
} s_span_t;

static const char *s_header = "Traceback (most recent call last):";
static const char *s_chain_markers [] = {
    "During handling of the above exception, another exception occurred:",
    "The above exception was the direct cause of the following exception:",
    NULL
};

qn_stacktrace_t *
qn_stacktrace_new (size_t max_lines)
{
    qn_stacktrace_t *self = (qn_stacktrace_t *) calloc (1, sizeof (qn_stacktrace_t));
    if (!self)
        return NULL;
    self->max_lines = max_lines? max_lines: QN_STACKTRACE_LINES;
    self->ring = (s_line_t *) calloc (self->max_lines, sizeof (s_line_t));
    if (!self->ring) {
        free (self);
        return NULL;
    }
    return self;
}

void
qn_stacktrace_destroy (qn_stacktrace_t **self_p)
{
    assert (self_p);
    qn_stacktrace_t *self = *self_p;
    if (self) {
        for (size_t i = 0; i < self->max_lines; i++)
            free (self->ring [i].data);
        free (self->ring);
        free (self);
        *self_p = NULL;
    }
}

static s_line_t *
s_line_at (qn_stacktrace_t *self, size_t index)
{
    return &self->ring [(self->head + index) % self->max_lines];
}

//  Appends to a line, up to QN_STACKTRACE_LINE_MAX bytes.  On allocation
//  failure the line is kept short and marked truncated: losing part of a
//  stack trace is better than failing the attempt's bookkeeping.
static void
s_line_append (s_line_t *line, const char *data, size_t size)
{
    size_t room = QN_STACKTRACE_LINE_MAX - line->size;
    if (size > room) {
        size = room;
        line->truncated = true;
    }
    if (size == 0)
        return;
    char *grown = (char *) realloc (line->data, line->size + size);
    if (!grown) {
        line->truncated = true;
        return;
    }
    memcpy (grown + line->size, data, size);
    line->data = grown;
    line->size += size;
}

void
qn_stacktrace_add (qn_stacktrace_t *self, const char *data, size_t size, bool partial)
{
    assert (self);
    assert (data || size == 0);
    if (!self->open) {
        s_line_t *line;
        if (self->count == self->max_lines) {
            line = s_line_at (self, 0);
            self->head = (self->head + 1) % self->max_lines;
        }
        else {
            line = s_line_at (self, self->count);
            self->count++;
        }
        free (line->data);
        line->data = NULL;
        line->size = 0;
        line->truncated = false;
    }
    s_line_append (s_line_at (self, self->count - 1), data, size);
    self->open = partial;
}

size_t
qn_stacktrace_size (qn_stacktrace_t *self)
{
    assert (self);
    return self->count;
}

//  Line text without a trailing '\r' (Windows-style output).
static size_t
s_trimmed_size (const s_line_t *line)
{
    size_t size = line->size;
    while (size > 0 && (line->data [size - 1] == '\r' || line->data [size - 1] == ' '))
        size--;
    return size;
}

static bool
s_line_is (const s_line_t *line, const char *text)
{
    size_t size = s_trimmed_size (line);
    return size == strlen (text) && memcmp (line->data, text, size) == 0;
}

static bool
s_line_blank (const s_line_t *line)
{
    return s_trimmed_size (line) == 0;
}

static bool
s_line_indented (const s_line_t *line)
{
    return line->size > 0 && (line->data [0] == ' ' || line->data [0] == '\t');
}

static bool
s_line_is_chain_marker (const s_line_t *line)
{
    for (int i = 0; s_chain_markers [i]; i++)
        if (s_line_is (line, s_chain_markers [i]))
            return true;
    return false;
}

//  Length of the valid UTF-8 sequence at p (at most avail bytes), or 0.
static size_t
s_utf8_sequence (const unsigned char *p, size_t avail)
{
    if (p [0] >= 0x01 && p [0] < 0x80)
        return 1;
    size_t need;
    uint32_t min;
    uint32_t code;
    if ((p [0] & 0xE0) == 0xC0) { need = 2; min = 0x80;    code = p [0] & 0x1F; }
    else
    if ((p [0] & 0xF0) == 0xE0) { need = 3; min = 0x800;   code = p [0] & 0x0F; }
    else
    if ((p [0] & 0xF8) == 0xF0) { need = 4; min = 0x10000; code = p [0] & 0x07; }
    else
        return 0;
    if (avail < need)
        return 0;
    for (size_t i = 1; i < need; i++) {
        if ((p [i] & 0xC0) != 0x80)
            return 0;
        code = (code << 6) | (p [i] & 0x3F);
    }
    if (code < min || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF))
        return 0;
    return need;
}

//  Copies size bytes to dest as valid UTF-8 with no NUL; returns the
//  number of bytes written (never more than size).
static size_t
s_copy_clean (char *dest, const char *src, size_t size)
{
    const unsigned char *p = (const unsigned char *) src;
    size_t written = 0;
    size_t i = 0;
    while (i < size) {
        size_t len = s_utf8_sequence (p + i, size - i);
        if (len == 0) {
            dest [written++] = '?';
            i++;
        }
        else {
            memcpy (dest + written, p + i, len);
            written += len;
            i += len;
        }
    }
    return written;
}

static char *
s_join (qn_stacktrace_t *self, size_t first, size_t last_excl)
{
    size_t total = 1;
    for (size_t i = first; i < last_excl; i++)
        total += s_line_at (self, i)->size + 4;
    char *result = (char *) malloc (total);
    if (!result)
        return NULL;
    size_t at = 0;
    for (size_t i = first; i < last_excl; i++) {
        s_line_t *line = s_line_at (self, i);
        if (i > first)
            result [at++] = '\n';
        at += s_copy_clean (result + at, line->data, line->size);
        if (line->truncated) {
            memcpy (result + at, "...", 3);
            at += 3;
        }
    }
    result [at] = '\0';
    return result;
}

//  A complete traceback is the header line, one or more indented lines
//  (frames, source lines, carets), then a non-indented, non-blank line:
//  the exception.  We look for the last complete one, then walk back
//  through the tracebacks chained to it, which Python prints before it
//  separated by a blank line, a marker line and a blank line.
char *
qn_stacktrace_extract (qn_stacktrace_t *self)
{
    assert (self);
    size_t n = self->count;
    s_span_t last = { 0, 0 };
    size_t found = 0;
    //  Where the chain ending in the last traceback starts
    size_t chain_start = 0;

    size_t i = 0;
    while (i < n) {
        if (!s_line_is (s_line_at (self, i), s_header)) {
            i++;
            continue;
        }
        size_t j = i + 1;
        while (j < n && s_line_indented (s_line_at (self, j)))
            j++;
        if (j == i + 1 || j >= n
        ||  s_line_blank (s_line_at (self, j))
        ||  s_line_is (s_line_at (self, j), s_header)) {
            i = j > i + 1? j: i + 1;
            continue;
        }
        s_span_t span = { i, j };
        size_t start = i;
        if (found && last.end + 4 == i
        &&  s_line_blank (s_line_at (self, last.end + 1))
        &&  s_line_is_chain_marker (s_line_at (self, last.end + 2))
        &&  s_line_blank (s_line_at (self, last.end + 3)))
            start = chain_start;
        last = span;
        chain_start = start;
        found++;
        i = j + 1;
    }
    if (found)
        return s_join (self, chain_start, last.end + 1);
    size_t first = n > QN_STACKTRACE_TAIL? n - QN_STACKTRACE_TAIL: 0;
    return s_join (self, first, n);
}
