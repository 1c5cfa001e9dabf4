/*  Tests for qn_redact: an attempt's secrets hidden in its log pieces,
    metric names, reasons and stack traces, without sockets or processes.

    Out of memory is simulated with the linker's --wrap for malloc and
    calloc (Makefile.am): s_fail_after counts the allocations that still
    succeed, -1 = all of them.
*/
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include "qn_redact.h"
#include "qn_stacktrace.h"

//  ---------------------------------------------------------------------
//  Allocation failures on demand

void *__real_malloc (size_t size);
void *__real_calloc (size_t count, size_t size);
void *__wrap_malloc (size_t size);
void *__wrap_calloc (size_t count, size_t size);

static int s_fail_after = -1;

static bool
s_alloc_fails (void)
{
    if (s_fail_after < 0)
        return false;
    if (s_fail_after == 0)
        return true;
    s_fail_after--;
    return false;
}

void *
__wrap_malloc (size_t size)
{
    return s_alloc_fails ()? NULL: __real_malloc (size);
}

void *
__wrap_calloc (size_t count, size_t size)
{
    return s_alloc_fails ()? NULL: __real_calloc (count, size);
}


//  ---------------------------------------------------------------------
//  Helpers

static qn_redact_t *
s_new (char **values, size_t count)
{
    bool failed = true;
    qn_redact_t *redact = qn_redact_new (values, count, &failed);
    assert_false (failed);
    assert_non_null (redact);
    return redact;
}

//  Redacts one piece and returns it as a C string (caller frees)
static char *
s_piece (qn_redact_t *redact, qn_redact_carry_t *carry, const char *text, bool partial)
{
    size_t size = 0;
    uint8_t *out = qn_redact_bytes (redact, carry, text, strlen (text), partial, &size);
    assert_non_null (out);
    char *string = (char *) malloc (size + 1);
    assert_non_null (string);
    memcpy (string, out, size);
    string [size] = '\0';
    qn_redact_wipe_free (out, size);
    return string;
}

static void
s_assert_piece (qn_redact_t *redact, qn_redact_carry_t *carry, const char *text,
                bool partial, const char *expected, size_t held)
{
    char *out = s_piece (redact, carry, text, partial);
    assert_string_equal (out, expected);
    assert_int_equal (carry->size, held);
    if (!held)
        assert_null (carry->data);
    free (out);
}

static void
s_assert_redacts (qn_redact_t *redact, const char *text, const char *expected)
{
    char *out = qn_redact_string (redact, text);
    assert_non_null (out);
    assert_string_equal (out, expected);
    free (out);
}


//  ---------------------------------------------------------------------
//  Tests

static void
test_nothing_to_redact (void **state)
{
    (void) state;
    bool failed = true;
    assert_null (qn_redact_new (NULL, 0, &failed));
    assert_false (failed);
    //  NULL entries and empty values hide nothing
    char *values [] = { NULL, "", NULL };
    failed = true;
    assert_null (qn_redact_new (values, 3, &failed));
    assert_false (failed);
    qn_redact_t *none = NULL;
    qn_redact_destroy (&none);
    assert_null (none);
}

static void
test_secrets_replaced (void **state)
{
    (void) state;
    char *values [] = { "hunter2", NULL, "tok", "hunter2" };
    qn_redact_t *redact = s_new (values, 4);
    s_assert_redacts (redact, "password=hunter2 key=tok", "password=*** key=***");
    s_assert_redacts (redact, "hunter2hunter2tok", "*********");
    s_assert_redacts (redact, "nothing here", "nothing here");
    s_assert_redacts (redact, "", "");
    //  A prefix alone is no secret
    s_assert_redacts (redact, "hunter to", "hunter to");
    qn_redact_destroy (&redact);
    assert_null (redact);
    qn_redact_destroy (&redact);
}

static void
test_one_byte_secret (void **state)
{
    (void) state;
    char *values [] = { "x" };
    qn_redact_t *redact = s_new (values, 1);
    s_assert_redacts (redact, "axbx", "a***b***");
    qn_redact_destroy (&redact);
}

static void
test_longest_first (void **state)
{
    (void) state;
    //  Given shortest first: the longer must still win where both match
    char *values [] = { "abc", "abcdef", "abcd" };
    qn_redact_t *redact = s_new (values, 3);
    s_assert_redacts (redact, "xabcdefx", "x***x");
    s_assert_redacts (redact, "xabcdex", "x***ex");
    s_assert_redacts (redact, "xabcx", "x***x");
    s_assert_redacts (redact, "abcabc", "******");
    qn_redact_destroy (&redact);
}

static void
test_secret_cut_across_pieces (void **state)
{
    (void) state;
    char *values [] = { "supersecret", "sup" };
    qn_redact_t *redact = s_new (values, 2);
    qn_redact_carry_t carry = { NULL, 0 };

    //  The tail that may start the longer secret is held back, and
    //  hidden whole once the next piece completes it
    s_assert_piece (redact, &carry, "first piece ends in super", true,
                    "first piece ends in ", 5);
    s_assert_piece (redact, &carry, "secret, and the line ends", false,
                    "***, and the line ends", 0);

    //  Not completed: the shorter secret still matches then
    s_assert_piece (redact, &carry, "ends in supe", true, "ends in ", 4);
    s_assert_piece (redact, &carry, "rb weather", false, "***erb weather", 0);

    //  A tail nothing completes comes out at the end of the line,
    //  redacted as it stands ("sup" is a secret too)
    s_assert_piece (redact, &carry, "plain supe", true, "plain ", 4);
    s_assert_piece (redact, &carry, "", false, "***e", 0);

    //  Pieces held back whole: nothing comes out until the line goes on
    s_assert_piece (redact, &carry, "superse", true, "", 7);
    s_assert_piece (redact, &carry, "cre", true, "", 10);
    s_assert_piece (redact, &carry, "t!", false, "***!", 0);

    //  A partial piece that ends in no secret's start holds nothing back
    s_assert_piece (redact, &carry, "nothing to hold", true, "nothing to hold", 0);
    qn_redact_destroy (&redact);
}

static void
test_value_spanning_lines (void **state)
{
    (void) state;
    char *values [] = { "-----BEGIN KEY-----\r\nMIIBOgIBAAJB\n-----END KEY-----\n" };
    qn_redact_t *redact = s_new (values, 1);
    //  Whole, and each of its lines (without the '\r') on its own
    s_assert_redacts (redact, "key: -----BEGIN KEY-----\r\nMIIBOgIBAAJB\n-----END KEY-----\n.",
                      "key: ***.");
    s_assert_redacts (redact, "-----BEGIN KEY-----", "***");
    s_assert_redacts (redact, "data MIIBOgIBAAJB here", "data *** here");
    s_assert_redacts (redact, "-----END KEY-----\r", "***\r");
    qn_redact_destroy (&redact);
}

static void
test_trace (void **state)
{
    (void) state;
    char *values [] = { "supersecret" };
    qn_redact_t *redact = s_new (values, 1);
    char *out = qn_redact_trace (redact, "Traceback:\n  File \"x.py\", line 1\n"
                                         "ValueError: supersecret");
    assert_non_null (out);
    assert_string_equal (out, "Traceback:\n  File \"x.py\", line 1\nValueError: ***");
    free (out);

    //  A line qn_stacktrace cut at its cap ("...") that ends in the first
    //  bytes of a secret: those are hidden too
    size_t length = QN_STACKTRACE_LINE_MAX - 4;
    char *trace = (char *) malloc (length + 1);
    assert_non_null (trace);
    memset (trace, 'a', length - 7);
    memcpy (trace + length - 7, "supe...", 8);
    out = qn_redact_trace (redact, trace);
    assert_non_null (out);
    assert_int_equal (strlen (out), length - 7 + 6);
    assert_string_equal (out + length - 7, "***...");
    free (out);
    free (trace);
    qn_redact_destroy (&redact);
}

static void
test_out_of_memory (void **state)
{
    (void) state;
    char *values [] = { "hunter2", "line one\nline two" };
    //  Each allocation of qn_redact_new in turn fails (three arrays, then
    //  a copy of each value and of each line): NULL, and failed
    int after = 0;
    while (true) {
        bool failed = false;
        s_fail_after = after;
        qn_redact_t *redact = qn_redact_new (values, 2, &failed);
        s_fail_after = -1;
        if (redact) {
            assert_false (failed);
            qn_redact_destroy (&redact);
            break;
        }
        assert_true (failed);
        after++;
    }
    assert_int_equal (after, 7);

    qn_redact_t *redact = s_new (values, 2);
    qn_redact_carry_t carry = { NULL, 0 };
    size_t size = 0;
    s_fail_after = 0;
    assert_null (qn_redact_bytes (redact, &carry, "hunter2", 7, false, &size));
    assert_null (qn_redact_string (redact, "hunter2"));
    assert_null (qn_redact_trace (redact, "hunter2"));
    //  No room to hold a tail back: it shows as "***", never as it is
    s_fail_after = 2;
    uint8_t *out = qn_redact_bytes (redact, &carry, "x hunt", 6, true, &size);
    s_fail_after = -1;
    assert_non_null (out);
    assert_int_equal (size, 5);
    assert_memory_equal (out, "x ***", 5);
    assert_int_equal (carry.size, 0);
    qn_redact_wipe_free (out, size);
    qn_redact_destroy (&redact);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_nothing_to_redact),
        cmocka_unit_test (test_secrets_replaced),
        cmocka_unit_test (test_one_byte_secret),
        cmocka_unit_test (test_longest_first),
        cmocka_unit_test (test_secret_cut_across_pieces),
        cmocka_unit_test (test_value_spanning_lines),
        cmocka_unit_test (test_trace),
        cmocka_unit_test (test_out_of_memory),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
