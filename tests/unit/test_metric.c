/*  test_metric - the metrics line format and qn_metric_report. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "qn_metric.h"

static int
s_parse (const char *line, char *name, double *value, int64_t *step, bool *has_step,
         const char **error)
{
    return qn_metric_parse_line (line, strlen (line), name, value, step, has_step, error);
}

static void
s_expect_bad (const char *line, const char *fragment)
{
    char name [QN_METRIC_NAME_MAX + 1];
    double value;
    int64_t step;
    bool has_step;
    const char *error = NULL;
    if (s_parse (line, name, &value, &step, &has_step, &error) == 0)
        fail_msg ("'%s' parsed but should not", line);
    assert_non_null (error);
    if (!strstr (error, fragment))
        fail_msg ("'%s': error '%s' lacks '%s'", line, error, fragment);
}

static void
test_parse_good (void **state)
{
    (void) state;
    char name [QN_METRIC_NAME_MAX + 1];
    double value = 0;
    int64_t step = 99;
    bool has_step = true;
    const char *error = NULL;

    assert_int_equal (s_parse ("loss 0.25", name, &value, &step, &has_step, &error), 0);
    assert_string_equal (name, "loss");
    assert_true (value == 0.25);
    assert_false (has_step);
    assert_int_equal (step, 0);

    assert_int_equal (s_parse ("val/acc.top-1\t-1.5e-3   42 \r", name, &value, &step,
                               &has_step, &error), 0);
    assert_string_equal (name, "val/acc.top-1");
    assert_true (value == -1.5e-3);
    assert_true (has_step);
    assert_int_equal (step, 42);

    assert_int_equal (s_parse ("_x 1 -7", name, &value, &step, &has_step, &error), 0);
    assert_int_equal (step, -7);

    assert_int_equal (s_parse ("x 3 9223372036854775807", name, &value, &step, &has_step,
                               &error), 0);
    assert_true (step == INT64_MAX);

    //  Steps and error pointers are optional
    assert_int_equal (qn_metric_parse_line ("x 2", 3, name, &value, NULL, NULL, NULL), 0);
    assert_true (value == 2);

    //  len bounds the line: what follows is not read
    assert_int_equal (qn_metric_parse_line ("x 5 garbage", 3, name, &value, NULL, NULL, NULL), 0);
    assert_true (value == 5);

    //  Exactly the longest name
    char line [QN_METRIC_NAME_MAX + 16];
    memset (line, 'a', QN_METRIC_NAME_MAX);
    strcpy (line + QN_METRIC_NAME_MAX, " 1");
    assert_int_equal (s_parse (line, name, &value, &step, &has_step, &error), 0);
    assert_int_equal (strlen (name), QN_METRIC_NAME_MAX);
}

static void
test_parse_bad (void **state)
{
    (void) state;
    s_expect_bad ("", "empty");
    s_expect_bad ("   \r", "empty");
    s_expect_bad ("loss", "missing value");
    s_expect_bad ("loss abc", "finite");
    s_expect_bad ("loss 1.5x", "finite");
    s_expect_bad ("loss nan", "finite");
    s_expect_bad ("loss NaN", "finite");
    s_expect_bad ("loss inf", "finite");
    s_expect_bad ("loss -Infinity", "finite");
    s_expect_bad ("loss 1e999", "finite");
    s_expect_bad ("loss 0x10", "finite");
    s_expect_bad ("loss .", "finite");
    s_expect_bad ("loss 1 2.5", "step");
    s_expect_bad ("loss 1 x", "step");
    s_expect_bad ("loss 1 99999999999999999999", "step");
    s_expect_bad ("loss 1 2 3", "unexpected");
    s_expect_bad ("1loss 1", "name");
    s_expect_bad ("lo$s 1", "name");
    s_expect_bad ("l\xc3\xa9 1", "name");

    char line [300];
    memset (line, 'a', QN_METRIC_NAME_MAX + 1);
    strcpy (line + QN_METRIC_NAME_MAX + 1, " 1");
    s_expect_bad (line, "too long");

    //  A NUL inside the given length is junk, not an end of line
    char name [QN_METRIC_NAME_MAX + 1];
    double value;
    const char *error = NULL;
    assert_int_equal (qn_metric_parse_line ("x 1\0 2", 6, name, &value, NULL, NULL, &error), -1);
    assert_non_null (error);

    //  An overlong number never overflows a buffer
    char big [4096];
    strcpy (big, "x ");
    memset (big + 2, '1', sizeof (big) - 3);
    big [sizeof (big) - 1] = '\0';
    s_expect_bad (big, "finite");
}

static char *
s_read_file (const char *path)
{
    FILE *file = fopen (path, "r");
    assert_non_null (file);
    static char buf [1 << 20];
    size_t len = fread (buf, 1, sizeof (buf) - 1, file);
    buf [len] = '\0';
    fclose (file);
    return buf;
}

static void
test_report (void **state)
{
    (void) state;
    char path [] = "/tmp/qn_metric_test_XXXXXX";
    int fd = mkstemp (path);
    assert_true (fd >= 0);
    close (fd);

    unsetenv ("QANAT_METRICS");
    assert_int_equal (qn_metric_report ("loss", 1, 0, false), -1);

    setenv ("QANAT_METRICS", path, 1);
    assert_int_equal (qn_metric_report ("loss", 0.1, 0, false), 0);
    assert_int_equal (qn_metric_report ("val/acc", 0.8125, 3, true), 0);
    assert_int_equal (qn_metric_report ("x", 1.0 / 3.0, -2, true), 0);
    assert_int_equal (qn_metric_report ("bad name", 1, 0, false), -1);
    assert_int_equal (qn_metric_report ("", 1, 0, false), -1);
    assert_int_equal (qn_metric_report (NULL, 1, 0, false), -1);
    assert_int_equal (qn_metric_report ("x", 1.0 / 0.0, 0, false), -1);

    char *text = s_read_file (path);
    //  The first two are short; the third round-trips exactly
    assert_memory_equal (text, "loss 0.1\nval/acc 0.8125 3\nx ", 27);

    //  Every line parses back to what was reported
    char *line = text;
    double expected [] = { 0.1, 0.8125, 1.0 / 3.0 };
    for (int i = 0; i < 3; i++) {
        char *nl = strchr (line, '\n');
        assert_non_null (nl);
        char name [QN_METRIC_NAME_MAX + 1];
        double value;
        assert_int_equal (qn_metric_parse_line (line, (size_t) (nl - line), name, &value,
                                                NULL, NULL, NULL), 0);
        assert_true (value == expected [i]);
        line = nl + 1;
    }
    assert_string_equal (line, "");

    //  A path that cannot be opened
    setenv ("QANAT_METRICS", "/nonexistent-dir/metrics", 1);
    assert_int_equal (qn_metric_report ("loss", 1, 0, false), -1);
    unsetenv ("QANAT_METRICS");
    unlink (path);
}

//  Several processes append at once; every line must come out whole.
static void
test_report_concurrent (void **state)
{
    (void) state;
    char path [] = "/tmp/qn_metric_conc_XXXXXX";
    int fd = mkstemp (path);
    assert_true (fd >= 0);
    close (fd);
    setenv ("QANAT_METRICS", path, 1);

    enum { WRITERS = 4, LINES = 500 };
    pid_t pids [WRITERS];
    for (int w = 0; w < WRITERS; w++) {
        pids [w] = fork ();
        assert_true (pids [w] >= 0);
        if (pids [w] == 0) {
            char name [64];
            snprintf (name, sizeof (name), "writer_%d_with_a_long_name_to_widen_lines", w);
            for (int i = 0; i < LINES; i++)
                if (qn_metric_report (name, i + 0.5, i, true))
                    _exit (1);
            _exit (0);
        }
    }
    for (int w = 0; w < WRITERS; w++) {
        int status;
        assert_int_equal (waitpid (pids [w], &status, 0), pids [w]);
        assert_true (WIFEXITED (status) && WEXITSTATUS (status) == 0);
    }
    char *text = s_read_file (path);
    int count [WRITERS] = { 0 };
    char *line = text;
    char *nl;
    while ((nl = strchr (line, '\n'))) {
        char name [QN_METRIC_NAME_MAX + 1];
        double value;
        int64_t step;
        bool has_step;
        assert_int_equal (qn_metric_parse_line (line, (size_t) (nl - line), name, &value,
                                                &step, &has_step, NULL), 0);
        assert_true (has_step);
        int w = name [7] - '0';
        assert_true (w >= 0 && w < WRITERS);
        //  Each writer's lines arrive in its own order
        assert_int_equal (step, count [w]);
        assert_true (value == step + 0.5);
        count [w]++;
        line = nl + 1;
    }
    assert_string_equal (line, "");
    for (int w = 0; w < WRITERS; w++)
        assert_int_equal (count [w], LINES);
    unsetenv ("QANAT_METRICS");
    unlink (path);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_parse_good),
        cmocka_unit_test (test_parse_bad),
        cmocka_unit_test (test_report),
        cmocka_unit_test (test_report_concurrent),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
