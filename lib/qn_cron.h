/*  qn_cron - a five-field cron expression and its next tick in a time
    zone.

        minute hour day-of-month month day-of-week
        "0 3 * * 1-5"   "0-59/15 * * * *"   "30 2 29 feb *"   "@daily"

    Each field is a list of items: "*", "N", "A-B", each with an optional
    "/STEP" ("N/STEP" means N to the field's end).  Months take jan-dec and
    days sun-sat (any case); day-of-week 7 is Sunday too.  When both
    day-of-month and day-of-week are restricted (neither starts with '*')
    a day matching either one fires, as in every cron.  @hourly, @daily
    (@midnight), @weekly, @monthly and @yearly (@annually) stand for their
    usual expressions.

    Ticks are wall-clock times in the schedule's zone (qn_tz), and daylight
    saving changes are resolved so that each wall-clock time fires once:
    - a wall time the clocks skip (02:30 on a spring-forward day in
      Europe/Berlin) fires once, at the instant of the jump (03:00 CEST);
      several skipped wall times fold into that one tick;
    - a wall time the clocks pass twice (02:30 on a fall-back day) fires at
      its first occurrence only.
    Private to libqanat.
*/
#ifndef QN_CRON_H_INCLUDED
#define QN_CRON_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "qn_tz.h"

typedef struct {
    uint64_t minutes;           //  bit m for minute m
    uint32_t hours;
    uint32_t days;              //  bit d for day of month d (1-31)
    uint16_t months;            //  bit m for month m (1-12)
    uint8_t weekdays;           //  bit d for weekday d (0 = Sunday)
    bool days_star, weekdays_star;
} qn_cron_t;

//  Parses text into *cron.  0, or -1 with *error_p a malloc'd message
//  naming the field ("bad hour field: 24 is out of range 0-23") and
//  *offset_p the byte offset in text where the problem starts.  An
//  expression that can never fire (e.g. "0 0 30 feb *") is refused too.
int
    qn_cron_parse (const char *text, qn_cron_t *cron, char **error_p, size_t *offset_p);

//  True if the wall-clock minute (days since the epoch, hour, minute)
//  matches
bool
    qn_cron_matches (const qn_cron_t *cron, int64_t days, unsigned hour, unsigned minute);

//  The first tick strictly after instant after, in zone tz (see the top
//  for daylight saving).  0 with *next_p, or -1 when none comes within
//  eight years or after is out of range (years 1900-9000).
int
    qn_cron_next (const qn_cron_t *cron, const qn_tz_t *tz, int64_t after, int64_t *next_p);

#endif
