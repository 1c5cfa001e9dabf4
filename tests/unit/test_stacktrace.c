/*  Tests for qn_stacktrace: stack traces out of the end of stderr. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "qn_stacktrace.h"

//  Adds each '\n'-separated line of text
static void
s_add_text (qn_stacktrace_t *ring, const char *text)
{
    const char *cur = text;
    while (*cur) {
        const char *nl = strchr (cur, '\n');
        size_t size = nl? (size_t) (nl - cur): strlen (cur);
        qn_stacktrace_add (ring, cur, size, false);
        cur += size + (nl? 1: 0);
    }
}

static char *
s_extract_from (const char *text)
{
    qn_stacktrace_t *ring = qn_stacktrace_new (0);
    assert_non_null (ring);
    s_add_text (ring, text);
    char *result = qn_stacktrace_extract (ring);
    assert_non_null (result);
    qn_stacktrace_destroy (&ring);
    assert_null (ring);
    return result;
}

static const char *s_simple =
    "Traceback (most recent call last):\n"
    "  File \"train.py\", line 3, in <module>\n"
    "    main()\n"
    "  File \"train.py\", line 2, in main\n"
    "    raise ValueError(\"bad input\")\n"
    "ValueError: bad input";

static void
test_simple_traceback (void **state)
{
    (void) state;
    char *text = NULL;
    assert_true (asprintf (&text, "loading data\nstep 1\n%s\n", s_simple) > 0);
    char *result = s_extract_from (text);
    assert_string_equal (result, s_simple);
    free (result);
    free (text);
}

static void
test_traceback_then_noise (void **state)
{
    (void) state;
    char *text = NULL;
    assert_true (asprintf (&text, "before\n%s\ncleanup done\nbye\n", s_simple) > 0);
    char *result = s_extract_from (text);
    assert_string_equal (result, s_simple);
    free (result);
    free (text);
}

static void
test_two_tracebacks_last_taken (void **state)
{
    (void) state;
    const char *first =
        "Traceback (most recent call last):\n"
        "  File \"a.py\", line 1, in <module>\n"
        "KeyError: 'first'\n";
    char *text = NULL;
    assert_true (asprintf (&text, "%sretrying\n%s\n", first, s_simple) > 0);
    char *result = s_extract_from (text);
    assert_string_equal (result, s_simple);
    assert_null (strstr (result, "KeyError"));
    free (result);
    free (text);
}

static void
test_incomplete_last_traceback (void **state)
{
    (void) state;
    //  The last traceback was cut off before its exception line: the last
    //  complete one wins
    char *text = NULL;
    assert_true (asprintf (&text, "%s\nTraceback (most recent call last):\n"
                           "  File \"b.py\", line 9, in f\n", s_simple) > 0);
    char *result = s_extract_from (text);
    assert_string_equal (result, s_simple);
    free (result);
    free (text);
}

static void
test_chained (void **state)
{
    (void) state;
    const char *chain =
        "Traceback (most recent call last):\n"
        "  File \"c.py\", line 2, in <module>\n"
        "    d['x']\n"
        "KeyError: 'x'\n"
        "\n"
        "During handling of the above exception, another exception occurred:\n"
        "\n"
        "Traceback (most recent call last):\n"
        "  File \"c.py\", line 4, in <module>\n"
        "    raise ValueError('boom')\n"
        "ValueError: boom\n"
        "\n"
        "The above exception was the direct cause of the following exception:\n"
        "\n"
        "Traceback (most recent call last):\n"
        "  File \"c.py\", line 6, in <module>\n"
        "RuntimeError: wrapped";
    char *text = NULL;
    assert_true (asprintf (&text, "noise\n%s\nafter\n", chain) > 0);
    char *result = s_extract_from (text);
    assert_string_equal (result, chain);
    free (result);
    free (text);
}

static void
test_no_traceback_last_20 (void **state)
{
    (void) state;
    qn_stacktrace_t *ring = qn_stacktrace_new (0);
    for (int i = 1; i <= 300; i++) {
        char line [32];
        int size = snprintf (line, sizeof (line), "line %d", i);
        qn_stacktrace_add (ring, line, (size_t) size, false);
    }
    assert_int_equal (qn_stacktrace_size (ring), QN_STACKTRACE_LINES);
    char *result = qn_stacktrace_extract (ring);
    char expect [1024] = "";
    for (int i = 281; i <= 300; i++) {
        char line [32];
        snprintf (line, sizeof (line), "%sline %d", i > 281? "\n": "", i);
        strcat (expect, line);
    }
    assert_string_equal (result, expect);
    free (result);
    qn_stacktrace_destroy (&ring);
}

static void
test_few_lines (void **state)
{
    (void) state;
    char *result = s_extract_from ("only\ntwo lines\n");
    assert_string_equal (result, "only\ntwo lines");
    free (result);
    result = s_extract_from ("");
    assert_string_equal (result, "");
    free (result);
}

static void
test_traceback_rotated_out (void **state)
{
    (void) state;
    //  A traceback older than the ring's 200 lines is gone; only the tail
    //  remains
    qn_stacktrace_t *ring = qn_stacktrace_new (0);
    s_add_text (ring, s_simple);
    for (int i = 0; i < 250; i++)
        qn_stacktrace_add (ring, "tick", 4, false);
    char *result = qn_stacktrace_extract (ring);
    assert_null (strstr (result, "Traceback"));
    assert_null (strstr (result, "ValueError"));
    free (result);
    qn_stacktrace_destroy (&ring);
}

static void
test_hostile (void **state)
{
    (void) state;
    qn_stacktrace_t *ring = qn_stacktrace_new (0);
    //  A huge line in pieces, with no newline ever
    char *huge = malloc (1024 * 1024);
    memset (huge, 'x', 1024 * 1024);
    for (int i = 0; i < 8; i++)
        qn_stacktrace_add (ring, huge, 1024 * 1024, true);
    assert_int_equal (qn_stacktrace_size (ring), 1);
    char *result = qn_stacktrace_extract (ring);
    assert_int_equal (strlen (result), QN_STACKTRACE_LINE_MAX + 3);
    assert_string_equal (result + QN_STACKTRACE_LINE_MAX, "...");
    free (result);

    //  NUL bytes and invalid UTF-8 come out as '?'; valid UTF-8 stays
    qn_stacktrace_add (ring, "", 0, false);         //  ends the huge line
    const char bad [] = { 'a', '\0', '\xff', 'b', '\xc3', '\xa9', '\xe2', '\x82' };
    qn_stacktrace_add (ring, bad, sizeof (bad), false);
    result = qn_stacktrace_extract (ring);
    const char *last = strrchr (result, '\n');
    assert_non_null (last);
    assert_string_equal (last + 1, "a??b\xc3\xa9??");
    free (result);

    //  A header alone, headers in a row, indented lines without a header
    s_add_text (ring, "Traceback (most recent call last):\n"
                      "Traceback (most recent call last):\n"
                      "    indented\n");
    result = qn_stacktrace_extract (ring);
    assert_non_null (result);
    assert_non_null (strstr (result, "    indented"));
    free (result);
    free (huge);
    qn_stacktrace_destroy (&ring);
    qn_stacktrace_destroy (&ring);
}

static void
test_long_traceback_lines (void **state)
{
    (void) state;
    //  A traceback whose exception message is longer than a log chunk
    //  arrives in partial pieces and is still recognised
    qn_stacktrace_t *ring = qn_stacktrace_new (0);
    s_add_text (ring, "Traceback (most recent call last):\n  File \"x.py\", line 1\n");
    qn_stacktrace_add (ring, "ValueError: ", 12, true);
    qn_stacktrace_add (ring, "very long", 9, false);
    char *result = qn_stacktrace_extract (ring);
    assert_string_equal (result, "Traceback (most recent call last):\n"
                                 "  File \"x.py\", line 1\nValueError: very long");
    free (result);
    qn_stacktrace_destroy (&ring);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_simple_traceback),
        cmocka_unit_test (test_traceback_then_noise),
        cmocka_unit_test (test_two_tracebacks_last_taken),
        cmocka_unit_test (test_incomplete_last_traceback),
        cmocka_unit_test (test_chained),
        cmocka_unit_test (test_no_traceback_last_20),
        cmocka_unit_test (test_few_lines),
        cmocka_unit_test (test_traceback_rotated_out),
        cmocka_unit_test (test_hostile),
        cmocka_unit_test (test_long_traceback_lines),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
