/*  Unit tests for qn_token: join token format and parsing. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>
#include "qn_token.h"

static void
s_keypair (char *public_key, char *secret_key)
{
    assert_int_equal (zmq_curve_keypair (public_key, secret_key), 0);
}

static void
test_round_trip (void **state)
{
    (void) state;
    char coordinator [41], coordinator_secret [41], token_public [41], token_secret [41];
    s_keypair (coordinator, coordinator_secret);
    s_keypair (token_public, token_secret);
    char *text = qn_token_format (coordinator, token_secret, "tcp://10.0.0.5:7711");
    assert_non_null (text);
    assert_int_equal (strncmp (text, QN_TOKEN_PREFIX, strlen (QN_TOKEN_PREFIX)), 0);
    qn_token_t token;
    const char *error = NULL;
    assert_int_equal (qn_token_parse (text, &token, &error), 0);
    assert_string_equal (token.coordinator_key, coordinator);
    assert_string_equal (token.secret_key, token_secret);
    assert_string_equal (token.public_key, token_public);
    assert_string_equal (token.endpoint, "tcp://10.0.0.5:7711");
    //  Whitespace around a pasted token is fine; no endpoint is fine.
    char *padded = (char *) malloc (strlen (text) + 8);
    sprintf (padded, "  %s \n", text);
    assert_int_equal (qn_token_parse (padded, &token, &error), 0);
    free (padded);
    free (text);
    text = qn_token_format (coordinator, token_secret, NULL);
    assert_int_equal (qn_token_parse (text, &token, &error), 0);
    assert_string_equal (token.endpoint, "");
    free (text);
}

static void
test_rejects (void **state)
{
    (void) state;
    char coordinator [41], secret [41], pub [41], token_secret [41];
    s_keypair (coordinator, secret);
    s_keypair (pub, token_secret);
    char *good = qn_token_format (coordinator, token_secret, "tcp://127.0.0.1:7711");
    qn_token_t token;
    const char *error = NULL;
    assert_int_equal (qn_token_parse (NULL, &token, &error), -1);
    assert_int_equal (qn_token_parse ("", &token, &error), -1);
    assert_non_null (strstr (error, "not a qanat join token"));
    assert_int_equal (qn_token_parse ("qnj1-short", &token, &error), -1);
    assert_non_null (strstr (error, "too short"));
    //  Every truncation inside the keys fails cleanly.
    size_t keys_end = strlen (QN_TOKEN_PREFIX) + 80;
    for (size_t cut = 0; cut < keys_end; cut++) {
        char *part = strndup (good, cut);
        assert_int_equal (qn_token_parse (part, &token, &error), -1);
        free (part);
    }
    //  A character outside Z85 in a key.
    char *bad = strdup (good);
    bad [strlen (QN_TOKEN_PREFIX) + 3] = '~';
    assert_int_equal (qn_token_parse (bad, &token, &error), -1);
    assert_non_null (strstr (error, "coordinator key"));
    free (bad);
    bad = strdup (good);
    bad [strlen (QN_TOKEN_PREFIX) + 45] = ',';
    assert_int_equal (qn_token_parse (bad, &token, &error), -1);
    assert_non_null (strstr (error, "secret key"));
    free (bad);
    //  An endpoint that is not one.
    bad = (char *) malloc (strlen (good) + 32);
    memcpy (bad, good, keys_end);
    strcpy (bad + keys_end, "http://evil");
    assert_int_equal (qn_token_parse (bad, &token, &error), -1);
    assert_non_null (strstr (error, "endpoint"));
    strcpy (bad + keys_end, "tcp://a b");
    assert_int_equal (qn_token_parse (bad, &token, &error), -1);
    free (bad);
    //  Formatting refuses bad keys and endpoints.
    assert_null (qn_token_format ("short", token_secret, NULL));
    assert_null (qn_token_format (coordinator, token_secret, "udp://x"));
    free (good);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_round_trip),
        cmocka_unit_test (test_rejects),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
