/*  qn_stacktrace - picks the stack trace of a failed attempt out of the
    end of its stderr.

    The agent feeds every stderr line (or piece of a long line, as
    qn_linebuf cuts them) into a ring that keeps the last lines.  When the
    attempt fails, qn_stacktrace_extract returns the last complete Python
    traceback found in the ring, together with the tracebacks chained to
    it ("During handling of the above exception..." / "The above exception
    was the direct cause..."); without one, the last 20 lines.

    Input is hostile: each kept line is capped (QN_STACKTRACE_LINE_MAX
    bytes, then "..."), and the result is valid UTF-8 without NUL bytes
    (anything else becomes '?'), since it goes into a protobuf string.
*/
#ifndef QN_STACKTRACE_H_INCLUDED
#define QN_STACKTRACE_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define QN_STACKTRACE_LINES     200     //  default ring size
#define QN_STACKTRACE_TAIL      20      //  lines returned without a traceback
#define QN_STACKTRACE_LINE_MAX  2048    //  bytes kept of one line

typedef struct _qn_stacktrace_t qn_stacktrace_t;

//  Creates a ring of max_lines lines (0 = QN_STACKTRACE_LINES).  NULL on
//  failure.
qn_stacktrace_t *
    qn_stacktrace_new (size_t max_lines);

//  Destroys the ring and nulls the pointer.  Idempotent.
void
    qn_stacktrace_destroy (qn_stacktrace_t **self_p);

//  Adds a line, or a piece of one: when partial is true the next call
//  continues the same line.  data need not be NUL-terminated.
void
    qn_stacktrace_add (qn_stacktrace_t *self, const char *data, size_t size, bool partial);

//  Returns a fresh string (caller frees) with the stack trace, lines
//  joined by '\n' with no newline at the end; "" when nothing was seen.
//  NULL only when out of memory.
char *
    qn_stacktrace_extract (qn_stacktrace_t *self);

//  Number of lines in the ring (a line still being continued counts).
size_t
    qn_stacktrace_size (qn_stacktrace_t *self);

#ifdef __cplusplus
}
#endif
#endif
