/*  qn_redact - hides an attempt's secrets in what it reports.
    See qn_redact.h.
*/
#include "qn_redact.h"
#include "qn_stacktrace.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

//  The secret values of one attempt (Assign.redact), longest first, so
//  that where two match the longer is hidden whole.
struct _qn_redact_t {
    char **values;
    size_t *sizes;
    size_t count;
    size_t longest;
    bool first [256];           //  bytes a value starts with: a fast skip
};

void
qn_redact_wipe_free (void *data, size_t size)
{
    if (data) {
        explicit_bzero (data, size);
        free (data);
    }
}

void
qn_redact_destroy (qn_redact_t **self_p)
{
    assert (self_p);
    qn_redact_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < self->count; i++)
        qn_redact_wipe_free (self->values [i], self->sizes [i]);
    free (self->values);
    free (self->sizes);
    free (self);
    *self_p = NULL;
}

static int
s_add (qn_redact_t *self, const char *value, size_t size, size_t room)
{
    if (size == 0 || self->count == room)
        return 0;
    for (size_t i = 0; i < self->count; i++)
        if (self->sizes [i] == size && memcmp (self->values [i], value, size) == 0)
            return 0;
    char *copy = (char *) malloc (size);
    if (!copy)
        return -1;
    memcpy (copy, value, size);
    //  Insert keeping the longest first
    size_t at = self->count;
    while (at > 0 && self->sizes [at - 1] < size) {
        self->values [at] = self->values [at - 1];
        self->sizes [at] = self->sizes [at - 1];
        at--;
    }
    self->values [at] = copy;
    self->sizes [at] = size;
    self->count++;
    self->first [(uint8_t) value [0]] = true;
    if (size > self->longest)
        self->longest = size;
    return 0;
}

//  A redactor for the values, or NULL when there are none (or no memory:
//  then *failed_p is set, and the caller must not run the attempt).
qn_redact_t *
qn_redact_new (char **values, size_t count, bool *failed_p)
{
    *failed_p = false;
    size_t room = 0;
    for (size_t i = 0; i < count; i++) {
        if (!values [i])
            continue;
        room++;
        //  Its lines: one more than its newlines, when it has any
        bool lines = false;
        for (const char *cur = values [i]; *cur; cur++)
            if (*cur == '\n') {
                room++;
                lines = true;
            }
        if (lines)
            room++;
    }
    if (room == 0)
        return NULL;
    qn_redact_t *self = (qn_redact_t *) calloc (1, sizeof (qn_redact_t));
    if (self) {
        self->values = (char **) calloc (room, sizeof (char *));
        self->sizes = (size_t *) calloc (room, sizeof (size_t));
    }
    if (!self || !self->values || !self->sizes) {
        qn_redact_destroy (&self);
        *failed_p = true;
        return NULL;
    }
    for (size_t i = 0; i < count; i++) {
        const char *value = values [i];
        if (!value)
            continue;
        if (s_add (self, value, strlen (value), room) == -1)
            *failed_p = true;
        if (!strchr (value, '\n'))
            continue;
        //  Each line of a multi-line value, without its '\r'
        const char *line = value;
        while (*line) {
            const char *end = strchr (line, '\n');
            size_t size = end? (size_t) (end - line): strlen (line);
            size_t kept = size;
            if (kept && line [kept - 1] == '\r')
                kept--;
            if (s_add (self, line, kept, room) == -1)
                *failed_p = true;
            line += size + (end? 1: 0);
        }
    }
    if (*failed_p || self->count == 0)
        qn_redact_destroy (&self);
    return self;
}

//  Length of the longest value that matches in full at text, or 0.
static size_t
s_match (const qn_redact_t *self, const uint8_t *text, size_t left)
{
    for (size_t i = 0; i < self->count; i++)
        if (self->sizes [i] <= left && memcmp (self->values [i], text, self->sizes [i]) == 0)
            return self->sizes [i];
    return 0;
}

//  True when the left bytes at text are the start of a longer value.
static bool
s_prefix (const qn_redact_t *self, const uint8_t *text, size_t left)
{
    for (size_t i = 0; i < self->count; i++)
        if (self->sizes [i] > left && memcmp (self->values [i], text, left) == 0)
            return true;
    return false;
}

//  Redacts carry + data into a fresh buffer (caller frees; *out_size its
//  size).  When partial, a tail that could start a secret goes back into
//  carry instead of the output.  NULL when out of memory (then nothing
//  may be reported: the piece is lost rather than shown).
uint8_t *
qn_redact_bytes (const qn_redact_t *self, qn_redact_carry_t *carry, const void *data,
                 size_t size, bool partial, size_t *out_size)
{
    size_t total = carry->size + size;
    uint8_t *text = (uint8_t *) malloc (total + 1);
    //  Each byte becomes at most "***"
    uint8_t *out = (uint8_t *) malloc (total * 3 + 1);
    if (!text || !out) {
        free (text);
        free (out);
        return NULL;
    }
    if (carry->size)
        memcpy (text, carry->data, carry->size);
    if (size)
        memcpy (text + carry->size, data, size);
    qn_redact_wipe_free (carry->data, carry->size);
    carry->data = NULL;
    carry->size = 0;
    size_t at = 0;
    size_t i = 0;
    while (i < total) {
        size_t left = total - i;
        if (self->first [text [i]]) {
            //  A value the next piece may complete wins over a shorter
            //  one that matches now: if it does not complete, the
            //  shorter one still matches then.
            if (partial && left < self->longest && s_prefix (self, text + i, left)) {
                carry->data = (uint8_t *) malloc (left);
                if (carry->data) {
                    memcpy (carry->data, text + i, left);
                    carry->size = left;
                }
                else {
                    memcpy (out + at, "***", 3);
                    at += 3;
                }
                break;
            }
            size_t match = s_match (self, text + i, left);
            if (match) {
                memcpy (out + at, "***", 3);
                at += 3;
                i += match;
                continue;
            }
        }
        out [at++] = text [i++];
    }
    qn_redact_wipe_free (text, total + 1);
    *out_size = at;
    return out;
}

//  A redacted copy of a C string (caller frees), NULL when out of memory.
char *
qn_redact_string (const qn_redact_t *self, const char *text)
{
    qn_redact_carry_t carry = { NULL, 0 };
    size_t size = 0;
    uint8_t *out = qn_redact_bytes (self, &carry, text, strlen (text), false, &size);
    if (!out)
        return NULL;
    out [size] = '\0';
    return (char *) out;
}

//  A stack trace: redacted line by line.  A line that qn_stacktrace cut
//  at its length cap (it then ends in "...") may end in the first bytes
//  of a secret: those become "***" too.
char *
qn_redact_trace (const qn_redact_t *self, const char *trace)
{
    size_t size = strlen (trace);
    //  Each byte becomes at most "***", and each line gains at most "***"
    char *out = (char *) malloc (size * 3 + 4 * (size / QN_STACKTRACE_LINE_MAX + 2) + 1);
    if (!out)
        return NULL;
    size_t at = 0;
    const char *line = trace;
    while (true) {
        const char *end = strchr (line, '\n');
        size_t length = end? (size_t) (end - line): strlen (line);
        bool cut = length >= QN_STACKTRACE_LINE_MAX - 4 && length >= 3
                && memcmp (line + length - 3, "...", 3) == 0;
        qn_redact_carry_t carry = { NULL, 0 };
        size_t got = 0;
        uint8_t *piece = qn_redact_bytes (self, &carry, line, cut? length - 3: length, cut, &got);
        if (!piece) {
            free (out);
            return NULL;
        }
        memcpy (out + at, piece, got);
        at += got;
        qn_redact_wipe_free (piece, got);
        if (carry.size) {
            qn_redact_wipe_free (carry.data, carry.size);
            memcpy (out + at, "***", 3);
            at += 3;
        }
        if (cut) {
            memcpy (out + at, "...", 3);
            at += 3;
        }
        if (!end)
            break;
        out [at++] = '\n';
        line = end + 1;
    }
    out [at] = '\0';
    return out;
}
