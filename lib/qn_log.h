/*  qn_log - one logger for both daemons: a line on stderr with an RFC 3339
    UTC time (milliseconds), a level and the component that speaks.

        2026-12-07T15:37:18.123Z info spool: replayed 3 events

    With the JSON format (--log-format json, for log shippers) each line
    is one object instead:

        {"time":"2026-12-07T15:37:18.123Z","level":"info","component":"spool","message":"replayed 3 events"}

    When stderr is the journal (systemd's JOURNAL_STREAM names it), each
    line starts with the journal's priority, <3> error to <7> debug.
    Debug lines are printed only when verbose is set.  Lines from several
    threads do not interleave: each is one write.  Private to qanat's own
    programs (not installed).
*/
#ifndef QN_LOG_H_INCLUDED
#define QN_LOG_H_INCLUDED

#include <stdbool.h>

typedef enum {
    QN_LOG_DEBUG,
    QN_LOG_INFO,
    QN_LOG_WARNING,
    QN_LOG_ERROR
} qn_log_level_t;

typedef enum {
    QN_LOG_TEXT,
    QN_LOG_JSON
} qn_log_format_t;

//  "text" or "json": 0, or -1 for anything else
int
    qn_log_format_parse (const char *text, qn_log_format_t *format_p);

//  Sets the format and looks whether stderr is the journal (call it once
//  stderr is where it stays, e.g. after --daemon's redirection)
void
    qn_log_set_format (qn_log_format_t format);

//  Print debug lines too (default: not)
void
    qn_log_set_verbose (bool verbose);

void
    qn_log (qn_log_level_t level, const char *component, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));

#endif
