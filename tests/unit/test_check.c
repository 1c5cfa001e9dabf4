/*  test_check - check expressions: parsing, errors with offsets, evaluation. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qn_check.h"

//  Parses expr, which must fail; checks the offset and that the message
//  contains fragment.
static void
s_expect_error (const char *expr, size_t offset, const char *fragment)
{
    char *error = NULL;
    size_t at = 9999;
    qn_check_t *check = qn_check_new (expr, &error, &at);
    if (check)
        fail_msg ("'%s' parsed but should not", expr);
    assert_non_null (error);
    if (!strstr (error, fragment))
        fail_msg ("'%s': message '%s' lacks '%s'", expr, error, fragment);
    if (at != offset)
        fail_msg ("'%s': offset %zu, expected %zu (%s)", expr, at, offset, error);
    free (error);
}

static char *
s_eval (const char *expr, const double *values, size_t count, bool *passed)
{
    qn_check_t *check = qn_check_new (expr, NULL, NULL);
    assert_non_null (check);
    char *detail = qn_check_eval (check, values, count, passed);
    qn_check_destroy (&check);
    assert_null (check);
    return detail;
}

static void
test_parse_simple (void **state)
{
    (void) state;
    char *error = NULL;
    qn_check_t *check = qn_check_new ("  accuracy >= 0.9  ", &error, NULL);
    assert_non_null (check);
    assert_null (error);
    assert_string_equal (qn_check_metric (check), "accuracy");
    assert_string_equal (qn_check_expr (check), "accuracy >= 0.9");
    qn_check_destroy (&check);
    assert_null (check);
    qn_check_destroy (&check);          //  idempotent
}

static void
test_parse_forms (void **state)
{
    (void) state;
    const char *good [] = {
        "max(loss) < 2.5", "mean( latency_ms )<=40", "min (val/loss) > -1e3",
        "last(a.b-c) == 3", "x != 0", "x>.5", "x < 5.", "_m >= +2", "x<1E-3",
        "\tx\t<\t1\t", "max < 3",        //  "max" without parentheses is a metric
    };
    const char *metric [] = {
        "loss", "latency_ms", "val/loss", "a.b-c", "x", "x", "x", "_m", "x", "x", "max"
    };
    for (size_t i = 0; i < sizeof (good) / sizeof (good [0]); i++) {
        char *error = NULL;
        qn_check_t *check = qn_check_new (good [i], &error, NULL);
        if (!check)
            fail_msg ("'%s' failed: %s", good [i], error);
        assert_string_equal (qn_check_metric (check), metric [i]);
        qn_check_destroy (&check);
    }
}

static void
test_parse_errors (void **state)
{
    (void) state;
    s_expect_error ("", 0, "empty");
    s_expect_error ("   ", 3, "empty");
    s_expect_error ("accuracy >=", 11, "expected a number");
    s_expect_error ("accuracy", 8, "comparison operator");
    s_expect_error ("accuracy = 0.9", 9, "comparison operator");
    s_expect_error ("accuracy >= 0.9 x", 16, "unexpected text");
    s_expect_error ("accuracy >= 0.9)", 15, "unexpected text");
    s_expect_error ("accuracy >= nan", 12, "expected a number");
    s_expect_error ("accuracy >= inf", 12, "expected a number");
    s_expect_error ("accuracy >= -infinity", 12, "expected a number");
    s_expect_error ("accuracy >= 0x10", 13, "unexpected text");
    s_expect_error ("accuracy >= 1e999", 12, "out of range");
    s_expect_error ("accuracy >= 1e", 13, "unexpected text");
    s_expect_error ("median(loss) < 2", 0, "unknown aggregator 'median'");
    s_expect_error ("max(loss < 2", 9, "expected ')'");
    s_expect_error ("max() < 2", 4, "expected a metric name");
    s_expect_error ("9lives > 1", 0, "expected a metric name");
    s_expect_error ("> 1", 0, "expected a metric name");
    s_expect_error ("a > > 1", 4, "expected a number");
    s_expect_error ("a >= 1 2", 7, "unexpected text");

    char name [200];
    memset (name, 'n', 129);
    strcpy (name + 129, " > 1");
    s_expect_error (name, 0, "longer than 128");
    //  Exactly 128 characters is fine
    strcpy (name + 128, " > 1");
    qn_check_t *check = qn_check_new (name, NULL, NULL);
    assert_non_null (check);
    assert_int_equal (strlen (qn_check_metric (check)), 128);
    qn_check_destroy (&check);

    //  NULL error pointers are allowed
    assert_null (qn_check_new ("a >", NULL, NULL));
    assert_null (qn_check_new (NULL, NULL, NULL));
}

static void
test_eval_last (void **state)
{
    (void) state;
    double values [] = { 0.5, 0.95, 0.82 };
    bool passed = true;
    char *detail = s_eval ("accuracy >= 0.9", values, 3, &passed);
    assert_false (passed);
    assert_string_equal (detail, "accuracy = 0.82 (needs >= 0.9)");
    free (detail);

    detail = s_eval ("last(accuracy) >= 0.8", values, 3, &passed);
    assert_true (passed);
    assert_string_equal (detail, "last(accuracy) = 0.82 (needs >= 0.8)");
    free (detail);
}

static void
test_eval_aggregates (void **state)
{
    (void) state;
    double loss [] = { 3.1, 2.0, 1.0 };
    bool passed = true;
    char *detail = s_eval ("max(loss) < 2.5", loss, 3, &passed);
    assert_false (passed);
    assert_string_equal (detail, "max(loss) = 3.1 (needs < 2.5)");
    free (detail);

    detail = s_eval ("min(loss) <= 1", loss, 3, &passed);
    assert_true (passed);
    assert_string_equal (detail, "min(loss) = 1 (needs <= 1)");
    free (detail);

    detail = s_eval ("mean(loss) == 2.0333333333333332", loss, 3, &passed);
    assert_true (passed);
    free (detail);

    detail = s_eval ("mean(loss) > 2", loss, 3, &passed);
    assert_true (passed);
    assert_string_equal (detail, "mean(loss) = 2.03333 (needs > 2)");
    free (detail);

    //  Mean of huge values does not overflow to inf
    double huge [] = { 1e308, 1e308 };
    detail = s_eval ("mean(x) == 1e308", huge, 2, &passed);
    assert_true (passed);
    free (detail);
}

static void
test_eval_operators (void **state)
{
    (void) state;
    double one [] = { 2 };
    struct { const char *expr; bool expected; } cases [] = {
        { "x < 2", false }, { "x < 3", true }, { "x <= 2", true }, { "x <= 1.9", false },
        { "x > 2", false }, { "x > 1", true }, { "x >= 2", true }, { "x >= 2.1", false },
        { "x == 2", true }, { "x == 2.0001", false }, { "x != 2", false }, { "x != 3", true },
    };
    for (size_t i = 0; i < sizeof (cases) / sizeof (cases [0]); i++) {
        bool passed = !cases [i].expected;
        char *detail = s_eval (cases [i].expr, one, 1, &passed);
        if (passed != cases [i].expected)
            fail_msg ("'%s' gave %d (%s)", cases [i].expr, passed, detail);
        free (detail);
    }
}

static void
test_eval_never_reported (void **state)
{
    (void) state;
    bool passed = true;
    char *detail = s_eval ("accuracy >= 0.9", NULL, 0, &passed);
    assert_false (passed);
    assert_string_equal (detail, "metric accuracy was never reported");
    free (detail);

    //  Even "!=" fails without values
    double v = 1;
    passed = true;
    detail = s_eval ("max(x) != 5", &v, 0, &passed);
    assert_false (passed);
    free (detail);
}

static void
test_eval_nan (void **state)
{
    (void) state;
    //  A NaN that slips into the series never passes, not even with !=
    double values [] = { 1, NAN, 2 };
    bool passed = true;
    char *detail = s_eval ("max(x) != 100", values, 3, &passed);
    assert_false (passed);
    free (detail);
    detail = s_eval ("mean(x) != 100", values, 3, &passed);
    assert_false (passed);
    free (detail);
    detail = s_eval ("x != 100", values, 3, &passed);
    assert_true (passed);                //  last value is 2
    free (detail);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_parse_simple),
        cmocka_unit_test (test_parse_forms),
        cmocka_unit_test (test_parse_errors),
        cmocka_unit_test (test_eval_last),
        cmocka_unit_test (test_eval_aggregates),
        cmocka_unit_test (test_eval_operators),
        cmocka_unit_test (test_eval_never_reported),
        cmocka_unit_test (test_eval_nan),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
