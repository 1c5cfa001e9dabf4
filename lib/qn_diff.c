/*  qn_diff - unified diffs of two texts.  See qn_diff.h. */
#include "qn_diff.h"
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *text;
    size_t size;                //  with its '\n', if it has one
    uint64_t hash;
} s_line_t;

typedef struct {
    s_line_t *lines;
    size_t count;
} s_file_t;

//  The output, grown as it is written; failed once allocation failed
typedef struct {
    char *data;
    size_t size;
    size_t capacity;
    bool failed;
} s_out_t;

//  The edit script: one op per line, '=' kept, '-' removed, '+' added
typedef struct {
    char *ops;
    size_t count;
} s_script_t;

static int
s_split (const char *data, size_t size, s_file_t *file)
{
    file->lines = NULL;
    file->count = 0;
    size_t count = 0;
    for (size_t i = 0; i < size; i++)
        if (data [i] == '\n')
            count++;
    if (size && data [size - 1] != '\n')
        count++;
    if (count == 0)
        return 0;
    file->lines = (s_line_t *) calloc (count, sizeof (s_line_t));
    if (!file->lines)
        return -1;
    size_t start = 0;
    for (size_t i = 0; i < size; i++)
        if (data [i] == '\n' || i == size - 1) {
            s_line_t *line = file->lines + file->count++;
            line->text = data + start;
            line->size = i + 1 - start;
            //  FNV-1a: only to tell most unequal lines apart quickly
            line->hash = UINT64_C (14695981039346656037);
            for (size_t c = 0; c < line->size; c++)
                line->hash = (line->hash ^ (uint8_t) line->text [c]) * UINT64_C (1099511628211);
            start = i + 1;
        }
    return 0;
}

static bool
s_equal (const s_line_t *a, const s_line_t *b)
{
    return a->hash == b->hash && a->size == b->size && memcmp (a->text, b->text, a->size) == 0;
}

//  ---------------------------------------------------------------------
//  The edit script

//  Myers' greedy search on a [0, n) and b [0, m); writes the ops of the
//  middle into script.  Returns 0, 1 when it needs more than the edit cap,
//  -1 when out of memory.
static int
s_myers (const s_line_t *a, size_t n, const s_line_t *b, size_t m, s_script_t *script)
{
    long max = (long) (n + m) < QN_DIFF_EDITS_MAX? (long) (n + m): QN_DIFF_EDITS_MAX;
    long offset = max + 1;
    long *v = (long *) calloc ((size_t) (2 * max + 3), sizeof (long));
    //  trace holds row d (v [-d..d] after step d) from index d * d
    size_t trace_capacity = 1024;
    long *trace = (long *) malloc (trace_capacity * sizeof (long));
    if (!v || !trace) {
        free (v);
        free (trace);
        return -1;
    }
    long found = -1;
    for (long d = 0; d <= max && found < 0; d++) {
        for (long k = -d; k <= d; k += 2) {
            long x = (k == -d || (k != d && v [offset + k - 1] < v [offset + k + 1]))
                   ? v [offset + k + 1]: v [offset + k - 1] + 1;
            long y = x - k;
            while (x < (long) n && y < (long) m && s_equal (a + x, b + y))
                x++, y++;
            v [offset + k] = x;
            if (x >= (long) n && y >= (long) m)
                found = d;
        }
        size_t need = (size_t) (d + 1) * (size_t) (d + 1);
        if (need > trace_capacity) {
            while (trace_capacity < need)
                trace_capacity *= 2;
            long *grown = (long *) realloc (trace, trace_capacity * sizeof (long));
            if (!grown) {
                free (v);
                free (trace);
                return -1;
            }
            trace = grown;
        }
        memcpy (trace + d * d, v + offset - d, (size_t) (2 * d + 1) * sizeof (long));
    }
    free (v);
    if (found < 0) {
        free (trace);
        return 1;
    }
    //  Back from (n, m) to (0, 0), writing the ops from the end
    //  The middle has (n + m - d) / 2 kept lines and d changed ones
    size_t end = script->count + (n + m + (size_t) found) / 2;
    size_t at = end;
    long x = (long) n, y = (long) m;
    for (long d = found; d > 0; d--) {
        const long *previous = trace + (d - 1) * (d - 1) + (d - 1);   //  previous [k], |k| < d
        long k = x - y;
        bool down = k == -d || (k != d && previous [k - 1] < previous [k + 1]);
        long previous_k = down? k + 1: k - 1;
        long previous_x = previous [previous_k];
        long previous_y = previous_x - previous_k;
        while (x > previous_x + (down? 0: 1) && y > previous_y + (down? 1: 0)) {
            script->ops [--at] = '=';
            x--, y--;
        }
        script->ops [--at] = down? '+': '-';
        x = previous_x;
        y = previous_y;
    }
    while (x > 0) {
        script->ops [--at] = '=';
        x--;
    }
    free (trace);
    script->count = end;
    return 0;
}

//  The whole script: common head, the middle by Myers (or replaced whole
//  past the caps), common tail
static int
s_script (const s_file_t *a, const s_file_t *b, s_script_t *script)
{
    script->count = 0;
    script->ops = (char *) malloc (a->count + b->count + 1);
    if (!script->ops)
        return -1;
    size_t head = 0;
    while (head < a->count && head < b->count && s_equal (a->lines + head, b->lines + head))
        head++;
    size_t tail = 0;
    while (tail < a->count - head && tail < b->count - head
        && s_equal (a->lines + a->count - 1 - tail, b->lines + b->count - 1 - tail))
        tail++;
    memset (script->ops, '=', head);
    script->count = head;
    size_t n = a->count - head - tail, m = b->count - head - tail;
    int rc = 1;
    if (n <= QN_DIFF_LINES_MAX && m <= QN_DIFF_LINES_MAX)
        rc = s_myers (a->lines + head, n, b->lines + head, m, script);
    if (rc < 0)
        return -1;
    if (rc > 0) {
        memset (script->ops + script->count, '-', n);
        memset (script->ops + script->count + n, '+', m);
        script->count += n + m;
    }
    memset (script->ops + script->count, '=', tail);
    script->count += tail;
    return 0;
}

//  ---------------------------------------------------------------------
//  Output

static void
s_write (s_out_t *out, const char *data, size_t size)
{
    if (out->failed)
        return;
    if (out->size + size + 1 > out->capacity) {
        size_t capacity = out->capacity? out->capacity: 4096;
        while (capacity < out->size + size + 1)
            capacity *= 2;
        char *grown = (char *) realloc (out->data, capacity);
        if (!grown) {
            out->failed = true;
            return;
        }
        out->data = grown;
        out->capacity = capacity;
    }
    memcpy (out->data + out->size, data, size);
    out->size += size;
    out->data [out->size] = 0;
}

static void
s_printf (s_out_t *out, const char *format, ...)
{
    char text [160];
    va_list args;
    va_start (args, format);
    int length = vsnprintf (text, sizeof text, format, args);
    va_end (args);
    if (length > 0)
        s_write (out, text, (size_t) length < sizeof text? (size_t) length: sizeof text - 1);
}

//  One line with its mark; NUL bytes as U+FFFD
static void
s_line (s_out_t *out, char mark, const s_line_t *line)
{
    s_write (out, &mark, 1);
    size_t start = 0;
    for (size_t i = 0; i < line->size; i++)
        if (line->text [i] == 0) {
            s_write (out, line->text + start, i - start);
            s_write (out, "\xEF\xBF\xBD", 3);
            start = i + 1;
        }
    s_write (out, line->text + start, line->size - start);
    if (line->size == 0 || line->text [line->size - 1] != '\n')
        s_write (out, "\n\\ No newline at end of file\n", 29);
}

//  A range as diff -u writes it: "l" for one line, "l,n" else, and the
//  line before for an empty range
static void
s_range (s_out_t *out, char mark, size_t start, size_t count)
{
    if (count == 1)
        s_printf (out, " %c%zu", mark, start + 1);
    else
        s_printf (out, " %c%zu,%zu", mark, count? start + 1: start, count);
}

//  The hunk of ops [from, to), whose first line is a_at in a and b_at in b
static void
s_hunk (s_out_t *out, const s_script_t *script, size_t from, size_t to,
        const s_file_t *a, size_t a_at, const s_file_t *b, size_t b_at)
{
    size_t a_count = 0, b_count = 0;
    for (size_t i = from; i < to; i++) {
        a_count += script->ops [i] != '+';
        b_count += script->ops [i] != '-';
    }
    s_write (out, "@@", 2);
    s_range (out, '-', a_at, a_count);
    s_range (out, '+', b_at, b_count);
    s_write (out, " @@\n", 4);
    for (size_t i = from; i < to;) {
        if (script->ops [i] == '=') {
            s_line (out, ' ', a->lines + a_at++);
            b_at++;
            i++;
            continue;
        }
        //  A change: its removed lines, then its added lines
        size_t end = i;
        while (end < to && script->ops [end] != '=')
            end++;
        for (size_t j = i; j < end; j++)
            if (script->ops [j] == '-')
                s_line (out, '-', a->lines + a_at++);
        for (size_t j = i; j < end; j++)
            if (script->ops [j] == '+')
                s_line (out, '+', b->lines + b_at++);
        i = end;
    }
}

static void
s_hunks (s_out_t *out, const s_script_t *script, const s_file_t *a, const s_file_t *b,
         size_t context)
{
    size_t a_at = 0, b_at = 0;          //  lines before op i
    size_t i = 0;
    while (i < script->count) {
        size_t change = i;
        while (change < script->count && script->ops [change] == '=')
            change++;
        if (change == script->count)
            break;
        size_t from = change - i > context? change - context: i;
        a_at += from - i;
        b_at += from - i;
        //  Take the next change in while fewer than 2 * context + 1 equal
        //  lines lie between
        size_t end = change;
        for (;;) {
            while (end < script->count && script->ops [end] != '=')
                end++;
            size_t next = end;
            while (next < script->count && script->ops [next] == '=')
                next++;
            if (next < script->count && next - end <= 2 * context)
                end = next;
            else
                break;
        }
        size_t to = script->count - end > context? end + context: script->count;
        s_hunk (out, script, from, to, a, a_at, b, b_at);
        for (size_t j = from; j < to; j++) {
            a_at += script->ops [j] != '+';
            b_at += script->ops [j] != '-';
        }
        i = to;
    }
}

char *
qn_diff_unified (const char *a, size_t a_size, const char *b, size_t b_size,
                 const char *a_label, const char *b_label, int context)
{
    if (!a)
        a_size = 0;
    if (!b)
        b_size = 0;
    if (a_size == b_size && (a_size == 0 || memcmp (a, b, a_size) == 0))
        return strdup ("");
    s_file_t a_file = { NULL, 0 }, b_file = { NULL, 0 };
    s_script_t script = { NULL, 0 };
    s_out_t out = { NULL, 0, 0, false };
    if (s_split (a, a_size, &a_file) == 0 && s_split (b, b_size, &b_file) == 0
    &&  s_script (&a_file, &b_file, &script) == 0) {
        const char *labels [] = { a_label? a_label: "a", b_label? b_label: "b" };
        for (int side = 0; side < 2; side++) {
            s_write (&out, side? "+++ ": "--- ", 4);
            //  A label is one line
            const char *label = labels [side];
            s_write (&out, label, strcspn (label, "\r\n"));
            s_write (&out, "\n", 1);
        }
        s_hunks (&out, &script, &a_file, &b_file, context > 0? (size_t) context: 0);
    }
    else
        out.failed = true;
    free (script.ops);
    free (a_file.lines);
    free (b_file.lines);
    if (out.failed) {
        free (out.data);
        return NULL;
    }
    return out.data;
}
