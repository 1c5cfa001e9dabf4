/*  qn_tz - a time zone from the system's tz database, read by ourselves.

    The scheduler needs "what is the wall-clock time in Europe/Berlin at
    this instant" and back, for many zones in one process.  libc answers
    that only through the process-wide TZ variable (setenv + tzset), which
    is neither thread-safe nor something a daemon with HTTP threads may
    touch.  So we read the compiled TZif file (/usr/share/zoneinfo/NAME,
    or $TZDIR/NAME) ourselves: its transitions, its types (UTC offset,
    DST flag), and its footer, the POSIX TZ rule that covers every instant
    after the last transition (a "slim" file stores little else).  A
    loaded zone is immutable, so any thread may use it.

    Offsets are seconds east of UTC; instants are seconds since the epoch
    (UTC); a "wall time" is the local civil time written as if it were
    UTC seconds (days * 86400 + seconds of the day).  Private to libqanat.
*/
#ifndef QN_TZ_H_INCLUDED
#define QN_TZ_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct _qn_tz_t qn_tz_t;

//  Loads zone name ("Europe/Berlin", "UTC").  A name that could leave the
//  zone directory ("..", leading '/') or holds other characters than
//  letters, digits and "/_+-." is refused.  NULL with *error_p a
//  malloc'd message ("unknown time zone 'X'").
qn_tz_t *
    qn_tz_load (const char *name, char **error_p);

void
    qn_tz_destroy (qn_tz_t **self_p);

const char *
    qn_tz_name (const qn_tz_t *self);

//  The UTC offset in force at instant t
int32_t
    qn_tz_offset (const qn_tz_t *self, int64_t t);

//  The instants whose wall time is wall: returns how many (0 in a gap
//  when clocks jump forward, 2 in a fold when they fall back), the
//  earlier first in instants [0].  For 0, instants [0] is the instant of
//  the jump that skipped wall.
int
    qn_tz_resolve (const qn_tz_t *self, int64_t wall, int64_t instants [2]);

//  Calendar helpers (proleptic Gregorian, UTC, no libc time zone state)
int64_t
    qn_tz_days_from_civil (int64_t year, unsigned month, unsigned day);
void
    qn_tz_civil_from_days (int64_t days, int64_t *year_p, unsigned *month_p, unsigned *day_p);
unsigned
    qn_tz_days_in_month (int64_t year, unsigned month);

#endif
