/*  Unit tests for qn_cron and qn_tz: parsing and its errors, next ticks
    in UTC, leap days, and daylight saving changes in Europe/Berlin and
    America/New_York read from the system tz database (in the years its
    files list transitions, and past them, where the footer rule holds). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include "qn_cron.h"
#include "qn_tz.h"
#include "qn_wf_schedule.h"

static qn_cron_t
s_parse (const char *text)
{
    qn_cron_t cron;
    char *error = NULL;
    size_t offset = 99;
    if (qn_cron_parse (text, &cron, &error, &offset) != 0)
        fail_msg ("'%s' did not parse: %s", text, error);
    return cron;
}

//  The error message for text, and where it points
static void
s_assert_error (const char *text, const char *part, size_t offset)
{
    qn_cron_t cron;
    char *error = NULL;
    size_t at = 999;
    assert_int_equal (qn_cron_parse (text, &cron, &error, &at), -1);
    assert_non_null (error);
    if (!strstr (error, part))
        fail_msg ("'%s': error '%s' lacks '%s'", text, error, part);
    assert_int_equal (at, offset);
    free (error);
}

static int64_t
s_next (const char *text, const char *zone, int64_t after)
{
    qn_cron_t cron = s_parse (text);
    char *error = NULL;
    qn_tz_t *tz = qn_tz_load (zone, &error);
    assert_non_null (tz);
    int64_t next = 0;
    assert_int_equal (qn_cron_next (&cron, tz, after, &next), 0);
    qn_tz_destroy (&tz);
    return next;
}

static void
test_parse (void **state)
{
    (void) state;
    qn_cron_t cron = s_parse ("0 3 * * 1-5");
    assert_true (cron.minutes == 1);
    assert_true (cron.hours == 1u << 3);
    assert_int_equal (cron.weekdays, 0x3e);
    cron = s_parse ("*/15 0-23/6 1,15 JAN-mar sun,Sat");
    assert_true (cron.minutes == ((1ull << 0) | (1ull << 15) | (1ull << 30) | (1ull << 45)));
    assert_true (cron.hours == ((1u << 0) | (1u << 6) | (1u << 12) | (1u << 18)));
    assert_int_equal (cron.months, (1 << 1) | (1 << 2) | (1 << 3));
    assert_int_equal (cron.weekdays, (1 << 0) | (1 << 6));
    assert_false (cron.days_star);
    cron = s_parse ("5/20 * * * 7");
    assert_true (cron.minutes == ((1ull << 5) | (1ull << 25) | (1ull << 45)));
    assert_int_equal (cron.weekdays, 1);
    cron = s_parse ("  @daily ");
    assert_true (cron.minutes == 1 && cron.hours == 1);
    cron = s_parse ("@weekly");
    assert_int_equal (cron.weekdays, 1);
    cron = s_parse ("@monthly");
    assert_int_equal (cron.days, 1 << 1);
    cron = s_parse ("@hourly");
    assert_true (cron.hours == 0xffffff);
}

static void
test_parse_errors (void **state)
{
    (void) state;
    s_assert_error ("60 * * * *", "minute field", 0);
    s_assert_error ("0 24 * * *", "hour field", 2);
    s_assert_error ("0 0 0 * *", "day-of-month field", 4);
    s_assert_error ("0 0 * foo *", "month field", 6);
    s_assert_error ("0 0 * * 8", "day-of-week field", 8);
    s_assert_error ("0 0 * * mon-", "day-of-week field: expected the end", 12);
    s_assert_error ("0 5-2 * * *", "goes backwards", 2);
    s_assert_error ("*/0 * * * *", "step", 2);
    s_assert_error ("0 0 *", "missing month field", 5);
    s_assert_error ("0 0 * * * *", "unexpected text", 10);
    s_assert_error ("1;2 * * * *", "unexpected ';'", 1);
    s_assert_error ("@often", "unknown cron macro", 0);
    s_assert_error ("0 0 30 feb *", "never fires", 0);
    s_assert_error ("", "missing minute field", 0);
    s_assert_error ("99999999999999999999 * * * *", "minute field", 0);
}

static void
test_next_utc (void **state)
{
    (void) state;
    //  2024-01-01 was a Monday
    assert_int_equal (s_next ("0 3 * * 1-5", "UTC", 1704067200), 1704078000);
    assert_int_equal (s_next ("0 3 * * 1-5", "UTC", 1704078000), 1704078000 + 86400);
    //  Friday 2024-01-05 03:00 -> Monday 2024-01-08 03:00
    assert_int_equal (s_next ("0 3 * * 1-5", "UTC", 1704078000 + 4 * 86400),
                      1704078000 + 7 * 86400);
    assert_int_equal (s_next ("*/15 * * * *", "UTC", 1704067200 + 1), 1704067200 + 900);
    //  Day of month OR day of week when both are restricted: the 15th or Sundays
    assert_int_equal (s_next ("0 0 15 * sun", "UTC", 1704067200), 1704067200 + 6 * 86400);
}

static void
test_leap_day (void **state)
{
    (void) state;
    //  From 2025-03-01, Feb 29 comes in 2028
    assert_int_equal (s_next ("0 12 29 2 *", "UTC", 1740787200), 1835438400);
    assert_int_equal (s_next ("0 12 29 feb *", "Europe/Berlin", 1740787200), 1835438400 - 3600);
    //  1900 was not a leap year, 2000 was
    assert_int_equal (qn_tz_days_in_month (1900, 2), 28);
    assert_int_equal (qn_tz_days_in_month (2000, 2), 29);
}

static void
test_berlin (void **state)
{
    (void) state;
    //  2024-03-31: 02:00 CET -> 03:00 CEST at 01:00 UTC.  02:30 is skipped
    //  by the clocks: it fires once, at the jump
    assert_int_equal (s_next ("30 2 * * *", "Europe/Berlin", 1711800000), 1711846800);
    assert_int_equal (s_next ("30 2 * * *", "Europe/Berlin", 1711846800), 1711931400);
    //  Every quarter hour: the skipped ones fold into the jump, then 03:15 CEST
    assert_int_equal (s_next ("*/15 * * * *", "Europe/Berlin", 1711846800 - 900), 1711846800);
    assert_int_equal (s_next ("*/15 * * * *", "Europe/Berlin", 1711846800), 1711846800 + 900);
    //  2024-10-27: 03:00 CEST -> 02:00 CET at 01:00 UTC.  02:30 fires at its
    //  first pass only, then the next day
    assert_int_equal (s_next ("30 2 * * *", "Europe/Berlin", 1729944000), 1729989000);
    assert_int_equal (s_next ("30 2 * * *", "Europe/Berlin", 1729989000), 1730079000);
    //  Past the file's transitions, the footer's rule: 2040-03-25 and 2040-10-28
    assert_int_equal (s_next ("30 2 * * *", "Europe/Berlin", 2216203200), 2216250000);
    assert_int_equal (s_next ("30 2 * * *", "Europe/Berlin", 2234952000), 2234997000);
    assert_int_equal (s_next ("30 2 * * *", "Europe/Berlin", 2234997000), 2235087000);
}

static void
test_new_york (void **state)
{
    (void) state;
    //  2024-03-10: 02:00 EST -> 03:00 EDT at 07:00 UTC
    assert_int_equal (s_next ("30 2 * * *", "America/New_York", 1709985600), 1710054000);
    //  2024-11-03: 02:00 EDT -> 01:00 EST at 06:00 UTC; 01:30 runs once
    assert_int_equal (s_next ("30 1 * * *", "America/New_York", 1730548800), 1730611800);
    assert_int_equal (s_next ("30 1 * * *", "America/New_York", 1730611800), 1730701800);
    //  Every quarter hour from 04:00 to 08:00 UTC that day: the hour the
    //  clocks repeat fires once, so 13 ticks in four hours, not 17
    qn_cron_t cron = s_parse ("*/15 * * * *");
    char *error = NULL;
    qn_tz_t *tz = qn_tz_load ("America/New_York", &error);
    assert_non_null (tz);
    int64_t t = 1730606400 - 1;
    int ticks = 0;
    while (qn_cron_next (&cron, tz, t, &t) == 0 && t <= 1730620800)
        ticks++;
    assert_int_equal (ticks, 13);
    int64_t instants [2];
    //  01:30 local on 2024-11-03 happens twice; 02:30 on 2024-03-10 never
    assert_int_equal (qn_tz_resolve (tz, 1730597400, instants), 2);
    assert_int_equal (instants [0], 1730611800);
    assert_int_equal (instants [1], 1730611800 + 3600);
    assert_int_equal (qn_tz_resolve (tz, 1710037800, instants), 0);
    assert_int_equal (instants [0], 1710054000);
    qn_tz_destroy (&tz);
}

static void
test_zone_names (void **state)
{
    (void) state;
    const char *bad [] = { "../../etc/passwd", "/etc/localtime", "", "Europe/Nowhere",
                           "Europe/Berlin;rm", "zone.tab/..", NULL };
    for (int i = 0; bad [i]; i++) {
        char *error = NULL;
        qn_tz_t *tz = qn_tz_load (bad [i], &error);
        assert_null (tz);
        assert_non_null (error);
        free (error);
    }
    char *error = NULL;
    qn_tz_t *tz = qn_tz_load ("UTC", &error);
    assert_non_null (tz);
    assert_int_equal (qn_tz_offset (tz, 1704067200), 0);
    qn_tz_destroy (&tz);
    qn_tz_destroy (&tz);
}

static qn_workflow_t *
s_workflow (const char *keys, char **error_p)
{
    char text [2048];
    snprintf (text, sizeof text, "name: nightly\nparams:\n  epochs: {default: 1}\n"
              "  from: {default: ''}\n%stasks:\n  a: {run: 'true'}\n", keys);
    *error_p = NULL;
    return qn_workflow_parse ("wf.yaml", text, strlen (text), error_p);
}

static void
s_assert_wf_error (const char *keys, const char *expected)
{
    char *error = NULL;
    qn_workflow_t *wf = s_workflow (keys, &error);
    assert_null (wf);
    assert_non_null (error);
    if (!strstr (error, expected))
        fail_msg ("error '%s' lacks '%s'", error, expected);
    free (error);
}

static void
test_workflow_keys (void **state)
{
    (void) state;
    char *error = NULL;
    qn_workflow_t *wf = s_workflow ("schedule:\n  - {cron: '0 3 * * 1-5', timezone: "
                                    "Europe/Berlin, catchup: all, params: {epochs: 5}}\n"
                                    "  - cron: '@hourly'\nmax_active: 2\ntrigger:\n"
                                    "  after: [prepare, clean]\n  on: [failed]\n  params:\n"
                                    "    from: '${{ upstream.run }}-${{ upstream.outputs.t.v }}'\n",
                                    &error);
    if (!wf)
        fail_msg ("%s", error);
    const qn_wf_schedule_t *sched = qn_workflow_schedule (wf);
    assert_non_null (sched);
    assert_int_equal (sched->schedule_count, 2);
    assert_string_equal (sched->schedules [0].timezone, "Europe/Berlin");
    assert_int_equal (sched->schedules [0].catchup, QN_CATCHUP_ALL);
    assert_string_equal (sched->schedules [0].params [0].value, "5");
    assert_string_equal (sched->schedules [1].timezone, "UTC");
    assert_int_equal (sched->schedules [1].catchup, QN_CATCHUP_NONE);
    assert_int_equal (sched->max_active, 2);
    assert_int_equal (sched->after_count, 2);
    assert_int_equal (sched->on, 1u << 4);
    char *value = qn_wf_schedule_expand (sched->trigger_params [0].value, 42, "prepare", 2,
                                         NULL, NULL);
    assert_string_equal (value, "42-");
    free (value);
    qn_workflow_destroy (&wf);

    s_assert_wf_error ("schedule: {cron: '0 3 * * mon-fry'}\n",
                       "wf.yaml:5:31: bad day-of-week field");
    s_assert_wf_error ("schedule:\n  cron: 0 25 * * *\n", "wf.yaml:6:11: bad hour field");
    s_assert_wf_error ("schedule: {cron: '@daily', timezone: Mars/Olympus}\n",
                       "wf.yaml:5:38: unknown time zone 'Mars/Olympus'");
    s_assert_wf_error ("schedule: {cron: '@daily', catchup: some}\n", "unknown catchup 'some'");
    s_assert_wf_error ("schedule: {cron: '@daily', params: {nope: 1}}\n",
                       "unknown parameter 'nope'");
    s_assert_wf_error ("max_active: 0\n", "max_active must be at least 1");
    s_assert_wf_error ("trigger: {after: [x], on: [done]}\n", "unknown run status 'done'");
    s_assert_wf_error ("trigger: {after: [x], params: {from: '${{ upstream.nope }}'}}\n",
                       "unknown reference in trigger parameter 'from'");
    s_assert_wf_error ("trigger: {on: [failed]}\n", "a trigger needs 'after'");
    s_assert_wf_error ("schedul: {cron: '@daily'}\n", "did you mean 'schedule'");
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_parse),
        cmocka_unit_test (test_parse_errors),
        cmocka_unit_test (test_next_utc),
        cmocka_unit_test (test_leap_day),
        cmocka_unit_test (test_berlin),
        cmocka_unit_test (test_new_york),
        cmocka_unit_test (test_zone_names),
        cmocka_unit_test (test_workflow_keys),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
