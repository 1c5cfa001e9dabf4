/*  qn_cron - a five-field cron expression and its next tick.  See qn_cron.h.
*/
#include "qn_cron.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define S_SEARCH_DAYS   (8 * 366)
#define S_MIN_INSTANT   (-2208988800LL)         //  1900-01-01
#define S_MAX_INSTANT   (221845392000LL)        //  9000-01-01

typedef struct {
    const char *name;
    unsigned lo, hi;
    const char *const *names;   //  names for lo.., or NULL
} s_field_t;

static const char *const s_month_names [] = {
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec", NULL
};
static const char *const s_day_names [] = {
    "sun", "mon", "tue", "wed", "thu", "fri", "sat", NULL
};
static const s_field_t s_fields [5] = {
    { "minute", 0, 59, NULL },
    { "hour", 0, 23, NULL },
    { "day-of-month", 1, 31, NULL },
    { "month", 1, 12, s_month_names },
    { "day-of-week", 0, 7, s_day_names }
};

static const struct { const char *name, *expansion; } s_macros [] = {
    { "@hourly", "0 * * * *" }, { "@daily", "0 0 * * *" }, { "@midnight", "0 0 * * *" },
    { "@weekly", "0 0 * * 0" }, { "@monthly", "0 0 1 * *" }, { "@yearly", "0 0 1 1 *" },
    { "@annually", "0 0 1 1 *" }
};

static int
s_fail (char **error_p, size_t *offset_p, size_t offset, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    if (vasprintf (error_p, format, args) < 0)
        *error_p = NULL;
    va_end (args);
    *offset_p = offset;
    return -1;
}

//  A number or (for fields with names) a name, at text [*at]; -1 if neither
static int
s_value (const s_field_t *field, const char *text, size_t len, size_t *at)
{
    size_t i = *at;
    if (isdigit ((unsigned char) text [i])) {
        unsigned v = 0;
        while (i < len && isdigit ((unsigned char) text [i]) && v < 1000)
            v = v * 10 + (unsigned) (text [i++] - '0');
        *at = i;
        return (int) v;
    }
    if (field->names && i + 3 <= len)
        for (unsigned n = 0; field->names [n]; n++)
            if (strncasecmp (text + i, field->names [n], 3) == 0
            &&  (i + 3 == len || !isalpha ((unsigned char) text [i + 3]))) {
                *at = i + 3;
                return (int) (field->lo + n);
            }
    return -1;
}

//  One field (text [0..len), at offset base in the whole expression)
static int
s_parse_field (const s_field_t *field, const char *text, size_t len, size_t base,
               uint64_t *bits_p, char **error_p, size_t *offset_p)
{
    uint64_t bits = 0;
    size_t at = 0;
    while (true) {
        size_t item = at;
        unsigned lo = field->lo, hi = field->hi, step = 1;
        bool ranged = false;
        if (at < len && text [at] == '*') {
            at++;
            ranged = true;
        }
        else {
            int v = s_value (field, text, len, &at);
            if (v < 0)
                return s_fail (error_p, offset_p, base + at,
                               "bad %s field: expected a number%s, '*' or a list",
                               field->name, field->names? " or a name": "");
            lo = hi = (unsigned) v;
            if (at < len && text [at] == '-') {
                at++;
                int w = s_value (field, text, len, &at);
                if (w < 0)
                    return s_fail (error_p, offset_p, base + at,
                                   "bad %s field: expected the end of a range", field->name);
                hi = (unsigned) w;
                ranged = true;
            }
        }
        if (at < len && text [at] == '/') {
            size_t step_at = ++at;
            int s = isdigit ((unsigned char) (at < len? text [at]: 0))? s_value (field, text, len, &at): -1;
            if (s <= 0)
                return s_fail (error_p, offset_p, base + step_at,
                               "bad %s field: expected a step of 1 or more after '/'", field->name);
            step = (unsigned) s;
            if (!ranged)
                hi = field->hi;
        }
        if (lo < field->lo || hi > field->hi || lo > hi)
        {
            if (lo > hi && lo <= field->hi && hi >= field->lo)
                return s_fail (error_p, offset_p, base + item,
                               "bad %s field: range %u-%u goes backwards", field->name, lo, hi);
            unsigned bad = lo < field->lo || lo > field->hi? lo: hi;
            return s_fail (error_p, offset_p, base + item, "bad %s field: %u is out of range "
                           "%u-%u", field->name, bad, field->lo, field->hi);
        }
        for (unsigned v = lo; v <= hi; v += step)
            bits |= 1ull << v;
        if (at == len)
            break;
        if (text [at] != ',')
            return s_fail (error_p, offset_p, base + at,
                           "bad %s field: unexpected '%c'", field->name,
                           isprint ((unsigned char) text [at])? text [at]: '?');
        at++;
    }
    *bits_p = bits;
    return 0;
}

int
qn_cron_parse (const char *text, qn_cron_t *cron, char **error_p, size_t *offset_p)
{
    memset (cron, 0, sizeof *cron);
    *offset_p = 0;
    size_t skip = strspn (text, " \t");
    if (text [skip] == '@') {
        size_t len = strcspn (text + skip, " \t");
        if (text [skip + len + strspn (text + skip + len, " \t")] == '\0')
            for (size_t m = 0; m < sizeof s_macros / sizeof s_macros [0]; m++)
                if (strlen (s_macros [m].name) == len
                &&  strncasecmp (text + skip, s_macros [m].name, len) == 0)
                    return qn_cron_parse (s_macros [m].expansion, cron, error_p, offset_p);
        return s_fail (error_p, offset_p, skip, "unknown cron macro '%.20s' (use @hourly, @daily, "
                       "@weekly, @monthly or @yearly)", text + skip);
    }
    uint64_t bits [5];
    size_t at = 0;
    for (int f = 0; f < 5; f++) {
        at += strspn (text + at, " \t");
        size_t len = strcspn (text + at, " \t");
        if (len == 0)
            return s_fail (error_p, offset_p, at, "missing %s field (a cron expression has five "
                           "fields: minute hour day-of-month month day-of-week)",
                           s_fields [f].name);
        if (s_parse_field (&s_fields [f], text + at, len, at, &bits [f], error_p, offset_p))
            return -1;
        if (f == 2)
            cron->days_star = text [at] == '*';
        if (f == 4)
            cron->weekdays_star = text [at] == '*';
        at += len;
    }
    at += strspn (text + at, " \t");
    if (text [at])
        return s_fail (error_p, offset_p, at, "unexpected text after the day-of-week field "
                       "(a cron expression has five fields)");
    cron->minutes = bits [0];
    cron->hours = (uint32_t) bits [1];
    cron->days = (uint32_t) bits [2];
    cron->months = (uint16_t) bits [3];
    cron->weekdays = (uint8_t) ((bits [4] | (bits [4] >> 7)) & 0x7f);   //  7 is Sunday
    //  Day 31 in months of 30 days, 30 in February: say so now, not never
    bool fires = false;
    for (unsigned m = 1; m <= 12 && !fires; m++)
        if (cron->months & (1u << m))
            for (unsigned d = 1; d <= qn_tz_days_in_month (2000, m) && !fires; d++)
                fires = !cron->days_star? (cron->days & (1u << d)) != 0: true;
    if (!fires && cron->weekdays_star)
        return s_fail (error_p, offset_p, strspn (text, " \t"),
                       "this cron expression never fires (no such day in those months)");
    return 0;
}

//  The day part: month, and day of month and/or of week
static bool
s_day_matches (const qn_cron_t *cron, int64_t days)
{
    int64_t year;
    unsigned month, day;
    qn_tz_civil_from_days (days, &year, &month, &day);
    if (!(cron->months & (1u << month)))
        return false;
    unsigned wday = (unsigned) ((days % 7 + 11) % 7);
    bool dom = (cron->days & (1u << day)) != 0;
    bool dow = (cron->weekdays & (1u << wday)) != 0;
    if (cron->days_star || cron->weekdays_star)
        return dom && dow;
    return dom || dow;
}

bool
qn_cron_matches (const qn_cron_t *cron, int64_t days, unsigned hour, unsigned minute)
{
    return hour < 24 && minute < 60 && (cron->minutes & (1ull << minute))
        && (cron->hours & (1u << hour)) && s_day_matches (cron, days);
}

//  The instant a matching wall time fires (see qn_cron.h), if after after
static bool
s_fires_after (const qn_tz_t *tz, int64_t wall, int64_t after, int64_t *next_p)
{
    //  A gap fires at the jump; a fold at its first pass only: both are
    //  instants [0]
    int64_t instants [2];
    qn_tz_resolve (tz, wall, instants);
    if (instants [0] > after) {
        *next_p = instants [0];
        return true;
    }
    return false;
}

int
qn_cron_next (const qn_cron_t *cron, const qn_tz_t *tz, int64_t after, int64_t *next_p)
{
    if (after < S_MIN_INSTANT || after > S_MAX_INSTANT)
        return -1;
    //  From the minute after after's wall time; a wall time whose first
    //  pass came before after (after is in a fold's second pass) is not
    //  taken again
    int64_t wall = after + qn_tz_offset (tz, after);
    int64_t start = (wall >= 0? wall / 60: (wall - 59) / 60) * 60 + 60;
    int64_t day0 = (start >= 0? start / 86400: (start - 86399) / 86400);
    for (int64_t d = day0; d <= day0 + S_SEARCH_DAYS; d++) {
        if (!s_day_matches (cron, d))
            continue;
        for (unsigned h = 0; h < 24; h++) {
            if (!(cron->hours & (1u << h)))
                continue;
            for (unsigned m = 0; m < 60; m++) {
                if (!(cron->minutes & (1ull << m)))
                    continue;
                int64_t candidate = d * 86400 + h * 3600 + m * 60;
                if (candidate < start)
                    continue;
                if (s_fires_after (tz, candidate, after, next_p))
                    return 0;
            }
        }
    }
    return -1;
}
