/*  Tests for qn_rest's pure helpers: which answers are retried, how long
    to wait, and the URL and base64 (qn_json) encoders every REST backend uses.
    The transport itself runs in the Kubernetes, Lambda and Databricks
    integration tests, against their fakes.
*/
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include "qn_rest.h"
#include "qn_json.h"

static void
test_transient (void **state)
{
    (void) state;
    long yes [] = { 0, 408, 429, 500, 502, 503, 504 };
    long no [] = { 200, 201, 400, 401, 403, 404, 409, 413, 501 };
    for (size_t i = 0; i < sizeof (yes) / sizeof (yes [0]); i++)
        assert_true (qn_rest_transient (yes [i]));
    for (size_t i = 0; i < sizeof (no) / sizeof (no [0]); i++)
        assert_false (qn_rest_transient (no [i]));
}

static void
test_backoff (void **state)
{
    (void) state;
    //  Retry-After wins, capped
    assert_int_equal (qn_rest_backoff_ms (1, 3000, 500, 60000), 3000);
    assert_int_equal (qn_rest_backoff_ms (7, 0, 500, 60000), 0);
    assert_int_equal (qn_rest_backoff_ms (1, 900000, 500, 60000), 60000);
    //  Doubling with at most a quarter of jitter, never past the cap
    for (int round = 0; round < 50; round++) {
        int64_t first = qn_rest_backoff_ms (1, -1, 400, 10000);
        assert_true (first >= 300 && first <= 400);
        int64_t third = qn_rest_backoff_ms (3, -1, 400, 10000);
        assert_true (third >= 1200 && third <= 1600);
        int64_t late = qn_rest_backoff_ms (40, -1, 400, 10000);
        assert_true (late >= 7500 && late <= 10000);
    }
    //  A zero base still waits a little and never loops forever
    assert_true (qn_rest_backoff_ms (1000000, -1, 0, 5) <= 5);
}

static void
test_base64 (void **state)
{
    (void) state;
    //  RFC 4648 section 10 vectors
    const char *plain [] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
    const char *coded [] = { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy" };
    for (size_t i = 0; i < 7; i++) {
        char *out = qn_json_base64 (plain [i], strlen (plain [i]));
        assert_non_null (out);
        assert_string_equal (out, coded [i]);
        free (out);
    }
    unsigned char high [] = { 0xff, 0xfe, 0x00 };
    char *out = qn_json_base64 (high, 3);
    assert_string_equal (out, "//4A");
    free (out);
}

static void
test_escape (void **state)
{
    (void) state;
    char *out = qn_rest_escape ("/aws/lambda/f n:1?&=é");
    assert_non_null (out);
    assert_string_equal (out, "%2Faws%2Flambda%2Ff%20n%3A1%3F%26%3D%C3%A9");
    free (out);
    out = qn_rest_escape ("A-z_0.9~");
    assert_string_equal (out, "A-z_0.9~");
    free (out);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_transient),
        cmocka_unit_test (test_backoff),
        cmocka_unit_test (test_base64),
        cmocka_unit_test (test_escape),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
