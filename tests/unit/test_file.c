/*  Unit tests for qn_file: bounded reads of small settings files, and
    the directories a file is written into. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "qn_file.h"

static char s_dir [] = "/tmp/qn_file_test.XXXXXX";

static void
s_write (const char *path, const char *text)
{
    FILE *file = fopen (path, "w");
    assert_non_null (file);
    fputs (text, file);
    fclose (file);
}

static void
test_read_small (void **state)
{
    (void) state;
    char path [256], error [256] = "";
    snprintf (path, sizeof path, "%s/small", s_dir);
    s_write (path, "key: value\n");
    size_t size = 0;
    bool missing = true;
    char *text = qn_file_read_small (path, 64, &size, &missing, error, sizeof error);
    assert_non_null (text);
    assert_string_equal (text, "key: value\n");
    assert_int_equal (size, 11);
    assert_false (missing);
    free (text);
    //  larger than max: refused, with the reason
    assert_null (qn_file_read_small (path, 4, &size, &missing, error, sizeof error));
    assert_non_null (strstr (error, "at most 4 bytes"));
    //  not there: no error when the caller asked, else one
    snprintf (path, sizeof path, "%s/nosuch", s_dir);
    assert_null (qn_file_read_small (path, 64, NULL, &missing, error, sizeof error));
    assert_true (missing);
    error [0] = 0;
    assert_null (qn_file_read_small (path, 64, NULL, NULL, error, sizeof error));
    assert_non_null (strstr (error, "cannot open"));
    //  a directory is not a regular file
    assert_null (qn_file_read_small (s_dir, 64, NULL, &missing, error, sizeof error));
    assert_false (missing);
}

static void
test_make_parents (void **state)
{
    (void) state;
    char path [256], parent [256];
    snprintf (path, sizeof path, "%s/a/b/c/config.yaml", s_dir);
    snprintf (parent, sizeof parent, "%s/a/b/c", s_dir);
    qn_file_make_parents (path);
    struct stat st;
    assert_int_equal (stat (parent, &st), 0);
    assert_true (S_ISDIR (st.st_mode));
    assert_int_equal (st.st_mode & 0777, 0700);
    //  the file itself is not made, and a second call changes nothing
    assert_int_not_equal (access (path, F_OK), 0);
    qn_file_make_parents (path);
    assert_int_equal (stat (parent, &st), 0);
    s_write (path, "x");
    assert_int_equal (access (path, F_OK), 0);
}

int
main (void)
{
    assert_non_null (mkdtemp (s_dir));
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_read_small),
        cmocka_unit_test (test_make_parents),
    };
    int failed = cmocka_run_group_tests (tests, NULL, NULL);
    char command [300];
    snprintf (command, sizeof command, "rm -rf '%s'", s_dir);
    if (system (command) != 0)
        fprintf (stderr, "could not remove %s\n", s_dir);
    return failed;
}
