/*  test_config - qn_config's table: values checked by type and range,
    the config file turned into "--name=value" arguments before the
    command line, with file:line:col errors for unknown keys (with a
    suggestion) and bad values, and --check-config's listing. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "qn_config.h"

static const qn_config_option_t s_table [] = {
    { "slots", 's', QN_CONFIG_NUMBER, 1, 100, NULL, "(online CPUs)", 0 },
    { "heartbeat-ms", 'H', QN_CONFIG_NUMBER, 10, 60000, NULL, "1000", 0 },
    { "spool-max", 'S', QN_CONFIG_SIZE, 1024, 1LL << 30, NULL, "256M", 0 },
    { "profile", 'P', QN_CONFIG_CHOICE, 0, 0, "lan|wan", NULL, 0 },
    { "insecure", 'I', QN_CONFIG_FLAG, 0, 0, NULL, NULL, 0 },
    { "label", 'L', QN_CONFIG_LIST, 0, 0, NULL, NULL, 0 },
    { "name", 'n', QN_CONFIG_STRING, 0, 0, NULL, NULL, 0 },
    { "join", 'j', QN_CONFIG_STRING, 0, 0, NULL, NULL, QN_CONFIG_SECRET },
    { "config", 'f', QN_CONFIG_STRING, 0, 0, NULL, NULL, QN_CONFIG_CLI_ONLY },
    { NULL, 0, 0, 0, 0, NULL, NULL, 0 }
};

static char s_path [64];

static const char *
s_file (const char *text)
{
    snprintf (s_path, sizeof s_path, "/tmp/qn_config_test.XXXXXX");
    int fd = mkstemp (s_path);
    assert_true (fd >= 0);
    assert_int_equal (write (fd, text, strlen (text)), (ssize_t) strlen (text));
    close (fd);
    return s_path;
}

static bool
s_check (const char *name, const char *text)
{
    char *error = NULL;
    int rc = qn_config_check (qn_config_find (s_table, name), text, &error);
    assert_true ((rc == 0) == (error == NULL));
    free (error);
    return rc == 0;
}

static void
test_values (void **state)
{
    (void) state;
    assert_true (s_check ("slots", "1"));
    assert_true (s_check ("slots", "100"));
    assert_false (s_check ("slots", "0"));
    assert_false (s_check ("slots", "101"));
    assert_false (s_check ("slots", "abc"));
    assert_false (s_check ("slots", "4x"));
    assert_false (s_check ("slots", ""));
    assert_false (s_check ("heartbeat_ms", "99999999999999999999999"));
    assert_true (s_check ("spool_max", "256K"));
    assert_true (s_check ("spool_max", "1GiB"));
    assert_false (s_check ("spool_max", "2G"));
    assert_false (s_check ("spool_max", "12Q"));
    assert_false (s_check ("spool_max", "-5"));
    assert_true (s_check ("profile", "wan"));
    assert_false (s_check ("profile", "wa"));
    assert_false (s_check ("profile", "lan|wan"));
    assert_true (s_check ("insecure", "yes"));
    assert_false (s_check ("insecure", "maybe"));
    assert_false (s_check ("name", ""));
    assert_null (qn_config_find (s_table, "slot"));
    assert_non_null (qn_config_find (s_table, "heartbeat-ms"));
    char *error = NULL;
    qn_config_check (qn_config_find (s_table, "slots"), "abc", &error);
    assert_string_equal (error, "wants a whole number from 1 to 100, not 'abc'");
    free (error);
}

static void
test_file_before_flags (void **state)
{
    (void) state;
    const char *path = s_file ("slots: 4\ninsecure: true\nlabel: [a=1, b=2]\nprofile: lan\n");
    char *argv [] = { "prog", "--config", (char *) path, "--slots", "8", NULL };
    int argc = 0;
    char **merged = NULL, *error = NULL;
    assert_int_equal (qn_config_argv (s_table, 5, argv, &argc, &merged, &error), 0);
    unlink (path);
    const char *expected [] = { "prog", "--slots=4", "--insecure", "--label=a=1", "--label=b=2",
                                "--profile=lan", "--config", path, "--slots", "8" };
    assert_int_equal (argc, 10);
    for (int i = 0; i < argc; i++)
        assert_string_equal (merged [i], expected [i]);
    assert_null (merged [argc]);
    qn_config_argv_free (argc, merged);
}

static void
test_file_errors (void **state)
{
    (void) state;
    const char *path = s_file ("slots: 4\n"
                               "slot: 4\n"
                               "heartbeat_ms: abc\n"
                               "insecure: maybe\n"
                               "label: {a: 1}\n"
                               "slots: 5\n"
                               "name:\n");
    char *argv [] = { "prog", "--config", (char *) path, NULL };
    int argc = 0;
    char **merged = NULL, *error = NULL;
    assert_int_equal (qn_config_argv (s_table, 3, argv, &argc, &merged, &error), -1);
    unlink (path);
    assert_null (merged);
    char expected [2048];
    snprintf (expected, sizeof expected,
              "%s:2:1: unknown key 'slot' (did you mean 'slots'?)\n"
              "%s:3:15: heartbeat_ms: wants a whole number from 10 to 60000, not 'abc'\n"
              "%s:4:11: insecure: wants true or false, not 'maybe'\n"
              "%s:5:8: expected a value or a list of values\n"
              "%s:6:1: duplicate key 'slots' (first defined at line 1)\n"
              "%s:7:1: name: expected one value",
              path, path, path, path, path, path);
    assert_string_equal (error, expected);
    free (error);
    //  Not a mapping, a missing file, the old format
    path = s_file ("- slots\n");
    assert_int_equal (qn_config_argv (s_table, 3, argv, &argc, &merged, &error), -1);
    unlink (path);
    assert_non_null (strstr (error, ":1:1: expected settings"));
    free (error);
    char *missing [] = { "prog", "--config=/nonexistent/x.yaml", NULL };
    assert_int_equal (qn_config_argv (s_table, 2, missing, &argc, &merged, &error), -1);
    assert_non_null (strstr (error, "cannot read config file /nonexistent/x.yaml"));
    free (error);
    char *old [] = { "prog", "--config", "/etc/qanat/qanatd.cfg", NULL };
    assert_int_equal (qn_config_argv (s_table, 3, old, &argc, &merged, &error), -1);
    assert_non_null (strstr (error, "no longer read"));
    free (error);
}

static void
test_print (void **state)
{
    (void) state;
    char *argv [] = { "prog", "--slots=4", "-j", "TOKEN", "--label=a=1", "--label", "b=2",
                      "--slots", "6", NULL };
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream (&text, &size);
    qn_config_print (out, s_table, "s:j:L:", 9, argv);
    fclose (out);
    assert_non_null (strstr (text, "\nslots: 6\n"));
    assert_non_null (strstr (text, "\nheartbeat_ms: 1000  # default\n"));
    assert_non_null (strstr (text, "\nspool_max: 256M  # default\n"));
    assert_non_null (strstr (text, "\n# profile: not set \n"));
    assert_non_null (strstr (text, "\ninsecure: false\n"));
    assert_non_null (strstr (text, "\nlabel:\n  - a=1\n  - b=2\n"));
    assert_non_null (strstr (text, "\njoin: \"(set)\"\n"));
    assert_null (strstr (text, "TOKEN"));
    assert_null (strstr (text, "config"));
    free (text);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_values),
        cmocka_unit_test (test_file_before_flags),
        cmocka_unit_test (test_file_errors),
        cmocka_unit_test (test_print),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
