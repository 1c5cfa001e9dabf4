/*  qn_tz - a time zone from the system's tz database.  See qn_tz.h.

    TZif layout (RFC 8536): a 44-byte header ("TZif", version, 15 reserved
    bytes, six big-endian counts), a version 1 body with 32-bit times, and
    from version 2 on a second header and body with 64-bit times, then a
    footer "\n<POSIX TZ string>\n".  We read the 64-bit body when there is
    one and the footer's rule for instants past the last transition.  The
    footer rules we understand are the ones tzdata writes: "STDoff" and
    "STDoffDST[off],Mm.w.d[/time],Mm.w.d[/time]"; any other rule form
    keeps the last transition's offset.
*/
#include "qn_tz.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_FILE_MAX      (256 * 1024)
#define S_NAME_MAX      200
#define S_HOUR          3600

//  A date rule of the footer: month m, week w (5 = last), weekday d,
//  at time seconds after local midnight
typedef struct {
    unsigned month, week, wday;
    int32_t time;
} s_rule_date_t;

typedef struct {
    bool present;               //  the footer gave a usable rule
    bool dst;                   //  it has daylight saving time
    int32_t std_off, dst_off;   //  seconds east of UTC
    s_rule_date_t start, end;
} s_rule_t;

struct _qn_tz_t {
    char *name;
    int64_t *times;             //  transitions, ascending
    uint8_t *index;             //  type after each transition
    size_t time_count;
    int32_t *offsets;           //  per type
    bool *isdst;
    size_t type_count;
    s_rule_t rule;
};

//  --------------------------------------------------------------------
//  Calendar

int64_t
qn_tz_days_from_civil (int64_t year, unsigned month, unsigned day)
{
    //  Days since 1970-01-01 in eras of 400 years, March-based years so
    //  that the leap day is the last day of a year
    year -= month <= 2;
    int64_t era = (year >= 0? year: year - 399) / 400;
    int64_t yoe = year - era * 400;
    int64_t doy = (153 * (month > 2? month - 3: month + 9) + 2) / 5 + day - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

void
qn_tz_civil_from_days (int64_t days, int64_t *year_p, unsigned *month_p, unsigned *day_p)
{
    days += 719468;
    int64_t era = (days >= 0? days: days - 146096) / 146097;
    int64_t doe = days - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    unsigned day = (unsigned) (doy - (153 * mp + 2) / 5 + 1);
    unsigned month = (unsigned) (mp < 10? mp + 3: mp - 9);
    *year_p = yoe + era * 400 + (month <= 2);
    *month_p = month;
    *day_p = day;
}

unsigned
qn_tz_days_in_month (int64_t year, unsigned month)
{
    static const unsigned days [12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    if (month == 2)
        return (year % 4 == 0 && (year % 100 != 0 || year % 400 == 0))? 29: 28;
    return month >= 1 && month <= 12? days [month - 1]: 30;
}

static int64_t
s_floor_div (int64_t a, int64_t b)
{
    return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

//  --------------------------------------------------------------------
//  The footer's POSIX rule

//  A zone abbreviation: letters, or <...> quoted
static const char *
s_skip_abbr (const char *p)
{
    if (*p == '<') {
        const char *end = strchr (p, '>');
        return end? end + 1: NULL;
    }
    const char *start = p;
    while (isalpha ((unsigned char) *p))
        p++;
    return p - start >= 3? p: NULL;
}

//  [+-]hh[:mm[:ss]] as seconds; NULL on a malformed one
static const char *
s_parse_hms (const char *p, int32_t *seconds_p)
{
    int sign = 1;
    if (*p == '+' || *p == '-')
        sign = *p++ == '-'? -1: 1;
    if (!isdigit ((unsigned char) *p))
        return NULL;
    int32_t parts [3] = { 0, 0, 0 };
    for (int i = 0; i < 3; i++) {
        int32_t v = 0;
        int digits = 0;
        while (isdigit ((unsigned char) *p) && digits < 3) {
            v = v * 10 + (*p++ - '0');
            digits++;
        }
        parts [i] = v;
        if (*p != ':' || i == 2)
            break;
        p++;
    }
    if (parts [0] > 167 || parts [1] > 59 || parts [2] > 59)
        return NULL;
    *seconds_p = sign * (parts [0] * S_HOUR + parts [1] * 60 + parts [2]);
    return p;
}

static const char *
s_parse_date (const char *p, s_rule_date_t *date)
{
    unsigned m, w, d;
    int used = 0;
    if (*p != 'M' || sscanf (p + 1, "%u.%u.%u%n", &m, &w, &d, &used) != 3)
        return NULL;
    if (m < 1 || m > 12 || w < 1 || w > 5 || d > 6)
        return NULL;
    p += 1 + used;
    date->month = m;
    date->week = w;
    date->wday = d;
    date->time = 2 * S_HOUR;
    if (*p == '/')
        p = s_parse_hms (p + 1, &date->time);
    return p;
}

static void
s_parse_rule (const char *text, s_rule_t *rule)
{
    s_rule_t r;
    memset (&r, 0, sizeof r);
    const char *p = s_skip_abbr (text);
    int32_t off;
    if (!p || !(p = s_parse_hms (p, &off)))
        return;
    r.std_off = -off;                   //  POSIX counts west of UTC
    r.dst_off = r.std_off + S_HOUR;
    if (*p) {
        if (!(p = s_skip_abbr (p)))
            return;
        if (*p && *p != ',') {
            if (!(p = s_parse_hms (p, &off)))
                return;
            r.dst_off = -off;
        }
        if (*p != ',' || !(p = s_parse_date (p + 1, &r.start))
        ||  *p != ',' || !(p = s_parse_date (p + 1, &r.end)) || *p)
            return;
        r.dst = true;
    }
    r.present = true;
    *rule = r;
}

//  The instant a rule date happens in year, given the offset in force
//  before it
static int64_t
s_rule_instant (const s_rule_date_t *date, int64_t year, int32_t offset_before)
{
    int64_t first = qn_tz_days_from_civil (year, date->month, 1);
    unsigned first_wday = (unsigned) ((first % 7 + 11) % 7);    //  1970-01-01 was a Thursday
    int64_t day = 1 + (int64_t) ((date->wday + 7 - first_wday) % 7) + 7 * (date->week - 1);
    while (day > qn_tz_days_in_month (year, date->month))
        day -= 7;
    return (first + day - 1) * 86400 + date->time - offset_before;
}

static int32_t
s_rule_offset (const s_rule_t *rule, int64_t t)
{
    if (!rule->dst)
        return rule->std_off;
    int64_t year;
    unsigned month, day;
    qn_tz_civil_from_days (s_floor_div (t + rule->std_off, 86400), &year, &month, &day);
    int64_t start = s_rule_instant (&rule->start, year, rule->std_off);
    int64_t end = s_rule_instant (&rule->end, year, rule->dst_off);
    bool in_dst = start < end? (t >= start && t < end): (t < end || t >= start);
    return in_dst? rule->dst_off: rule->std_off;
}

//  --------------------------------------------------------------------
//  The TZif file

static uint32_t
s_be32 (const uint8_t *p)
{
    return ((uint32_t) p [0] << 24) | ((uint32_t) p [1] << 16) | ((uint32_t) p [2] << 8) | p [3];
}

//  Reads one body (width 4 or 8); returns its end, or NULL when the file
//  is too short or inconsistent
static const uint8_t *
s_read_body (qn_tz_t *self, const uint8_t *p, const uint8_t *end, size_t width, bool keep)
{
    if (end - p < 44 || memcmp (p, "TZif", 4) != 0)
        return NULL;
    uint32_t isut = s_be32 (p + 20), isstd = s_be32 (p + 24), leap = s_be32 (p + 28);
    uint32_t timecnt = s_be32 (p + 32), typecnt = s_be32 (p + 36), charcnt = s_be32 (p + 40);
    if (timecnt > 100000 || typecnt == 0 || typecnt > 256 || charcnt > 100000
    ||  leap > 100000 || isut > 256 || isstd > 256)
        return NULL;
    size_t size = timecnt * width + timecnt + typecnt * 6 + charcnt
                + leap * (width + 4) + isstd + isut;
    p += 44;
    if ((size_t) (end - p) < size)
        return NULL;
    if (!keep)
        return p + size;
    self->times = (int64_t *) calloc (timecnt + 1, sizeof (int64_t));
    self->index = (uint8_t *) calloc (timecnt + 1, 1);
    self->offsets = (int32_t *) calloc (typecnt, sizeof (int32_t));
    self->isdst = (bool *) calloc (typecnt, sizeof (bool));
    if (!self->times || !self->index || !self->offsets || !self->isdst)
        return NULL;
    for (uint32_t i = 0; i < timecnt; i++) {
        const uint8_t *q = p + i * width;
        self->times [i] = width == 8? (int64_t) (((uint64_t) s_be32 (q) << 32) | s_be32 (q + 4))
                                    : (int64_t) (int32_t) s_be32 (q);
        self->index [i] = p [timecnt * width + i];
        if (self->index [i] >= typecnt || (i && self->times [i] <= self->times [i - 1]))
            return NULL;
    }
    const uint8_t *types = p + timecnt * width + timecnt;
    for (uint32_t i = 0; i < typecnt; i++) {
        self->offsets [i] = (int32_t) s_be32 (types + 6 * i);
        self->isdst [i] = types [6 * i + 4] != 0;
        if (self->offsets [i] < -26 * S_HOUR || self->offsets [i] > 26 * S_HOUR)
            return NULL;
    }
    self->time_count = timecnt;
    self->type_count = typecnt;
    return p + size;
}

static bool
s_name_valid (const char *name)
{
    size_t len = strlen (name);
    if (len == 0 || len > S_NAME_MAX || name [0] == '/' || name [0] == '.' || strstr (name, ".."))
        return false;
    for (const char *c = name; *c; c++)
        if (!isalnum ((unsigned char) *c) && !strchr ("/_+-.", *c))
            return false;
    return true;
}

static int
s_parse_file (qn_tz_t *self, const uint8_t *data, size_t size)
{
    const uint8_t *end = data + size;
    if (size < 44 || memcmp (data, "TZif", 4) != 0)
        return -1;
    bool v2 = data [4] >= '2';
    const uint8_t *p = s_read_body (self, data, end, 4, !v2);
    if (p && v2)
        p = s_read_body (self, p, end, 8, true);
    if (!p)
        return -1;
    if (v2 && p < end && *p == '\n') {
        const uint8_t *nl = memchr (p + 1, '\n', (size_t) (end - p - 1));
        if (nl && nl - p < 128) {
            char footer [128];
            memcpy (footer, p + 1, (size_t) (nl - p - 1));
            footer [nl - p - 1] = '\0';
            s_parse_rule (footer, &self->rule);
        }
    }
    return 0;
}

qn_tz_t *
qn_tz_load (const char *name, char **error_p)
{
    if (!name || !s_name_valid (name)) {
        if (asprintf (error_p, "invalid time zone name '%.64s'", name? name: "") < 0)
            *error_p = NULL;
        return NULL;
    }
    const char *dir = getenv ("TZDIR");
    char path [512];
    snprintf (path, sizeof path, "%s/%s", dir && *dir? dir: "/usr/share/zoneinfo", name);
    FILE *file = fopen (path, "rb");
    uint8_t *data = file? (uint8_t *) malloc (S_FILE_MAX): NULL;
    size_t size = data? fread (data, 1, S_FILE_MAX, file): 0;
    if (file)
        fclose (file);
    qn_tz_t *self = data? (qn_tz_t *) calloc (1, sizeof (qn_tz_t)): NULL;
    if (self)
        self->name = strdup (name);
    if (!self || !self->name || s_parse_file (self, data, size) != 0) {
        if (asprintf (error_p, "unknown time zone '%s'", name) < 0)
            *error_p = NULL;
        qn_tz_destroy (&self);
    }
    free (data);
    return self;
}

void
qn_tz_destroy (qn_tz_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    qn_tz_t *self = *self_p;
    free (self->name);
    free (self->times);
    free (self->index);
    free (self->offsets);
    free (self->isdst);
    free (self);
    *self_p = NULL;
}

const char *
qn_tz_name (const qn_tz_t *self)
{
    return self->name;
}

int32_t
qn_tz_offset (const qn_tz_t *self, int64_t t)
{
    if (self->time_count == 0 || t < self->times [0]) {
        if (self->time_count == 0 && self->rule.present)
            return s_rule_offset (&self->rule, t);
        //  Before the first transition: the first standard-time type
        for (size_t i = 0; i < self->type_count; i++)
            if (!self->isdst [i])
                return self->offsets [i];
        return self->offsets [0];
    }
    if (t >= self->times [self->time_count - 1] && self->rule.present)
        return s_rule_offset (&self->rule, t);
    size_t lo = 0, hi = self->time_count;      //  last transition <= t
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (self->times [mid] <= t)
            lo = mid;
        else
            hi = mid;
    }
    return self->offsets [self->index [lo]];
}

int
qn_tz_resolve (const qn_tz_t *self, int64_t wall, int64_t instants [2])
{
    //  Offsets in force a day either side cover any one transition
    int32_t before = qn_tz_offset (self, wall - 86400);
    int32_t after = qn_tz_offset (self, wall + 86400);
    int count = 0;
    int32_t tried [2] = { before, after };
    for (int i = 0; i < 2; i++) {
        if (i == 1 && after == before)
            break;
        int64_t t = wall - tried [i];
        if (qn_tz_offset (self, t) == tried [i])
            instants [count++] = t;
    }
    if (count == 2 && instants [1] < instants [0]) {
        int64_t swap = instants [0];
        instants [0] = instants [1];
        instants [1] = swap;
    }
    if (count == 0) {
        //  A gap: find the jump, the first instant with the later offset
        int64_t lo = wall - (before > after? before: after), hi = wall - (before < after? before: after);
        while (hi - lo > 1) {
            int64_t mid = lo + (hi - lo) / 2;
            if (qn_tz_offset (self, mid) == before)
                lo = mid;
            else
                hi = mid;
        }
        instants [0] = hi;
    }
    return count;
}
