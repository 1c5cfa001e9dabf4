/*  Unit tests for qn_diff: the output against GNU `diff -u`, and every
    diff applied with `patch` gives the new text back. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "qn_diff.h"
#include "test_tmpdir.h"

static void
s_write_file (const char *name, const char *data, size_t size)
{
    char path [128];
    snprintf (path, sizeof path, "%s/%s", s_dir, name);
    FILE *file = fopen (path, "wb");
    assert_non_null (file);
    assert_int_equal (fwrite (data, 1, size, file), size);
    fclose (file);
}

//  The whole output of a shell command (malloc'd)
static char *
s_run (const char *command, size_t *size_p)
{
    FILE *pipe = popen (command, "r");
    assert_non_null (pipe);
    size_t size = 0, capacity = 4096;
    char *data = (char *) malloc (capacity);
    size_t got;
    while ((got = fread (data + size, 1, capacity - size - 1, pipe)) > 0) {
        size += got;
        if (capacity - size < 2048)
            data = (char *) realloc (data, capacity *= 2);
    }
    data [size] = 0;
    pclose (pipe);
    if (size_p)
        *size_p = size;
    return data;
}

//  Applies our diff of a -> b with patch and checks that b comes out
static void
s_check_patch (const char *a, size_t a_size, const char *b, size_t b_size, int context)
{
    char *diff = qn_diff_unified (a, a_size, b, b_size, "a", "b", context);
    assert_non_null (diff);
    if (a_size == b_size && memcmp (a, b, a_size) == 0) {
        assert_string_equal (diff, "");
        free (diff);
        return;
    }
    s_write_file ("old", a, a_size);
    s_write_file ("patch", diff, strlen (diff));
    char command [256];
    snprintf (command, sizeof command,
              "cd %s && rm -f new && patch -s -o new old < patch 2>&1 && cat new", s_dir);
    size_t size;
    char *result = s_run (command, &size);
    if (size != b_size || memcmp (result, b, b_size) != 0)
        fail_msg ("patch gave\n%s\nfrom\n%s", result, diff);
    free (result);
    free (diff);
}

//  Our diff equals GNU diff -u's, and patch applies it
static void
s_check (const char *a, const char *b, int context)
{
    s_write_file ("a", a, strlen (a));
    s_write_file ("b", b, strlen (b));
    char command [256];
    snprintf (command, sizeof command, "cd %s && diff -U %d --label a --label b a b",
              s_dir, context);
    char *expected = s_run (command, NULL);
    char *diff = qn_diff_unified (a, strlen (a), b, strlen (b), "a", "b", context);
    assert_non_null (diff);
    if (strcmp (diff, expected))
        fail_msg ("diff -u gave\n%s\nqn_diff gave\n%s", expected, diff);
    free (expected);
    free (diff);
    s_check_patch (a, strlen (a), b, strlen (b), context);
}

static void
test_like_diff (void **state)
{
    (void) state;
    s_check ("a\nb\nc\n", "a\nB\nc\n", 3);
    s_check ("one\n", "zero\none\n", 3);
    s_check ("1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n13\n14\n15\n16\n17\n18\n19\n20\n",
             "1\n2\nX\n4\n5\n6\n7\n8\n9\n10\n11\n12\n13\n14\n15\nY\n17\n18\n19\n20\n", 3);
    //  Seven equal lines between two changes: two hunks; six: one
    s_check ("1\n2\n3\n4\n5\n6\n7\n8\n9\n", "X\n2\n3\n4\n5\n6\n7\n8\nY\n", 3);
    s_check ("1\n2\n3\n4\n5\n6\n7\n8\n", "X\n2\n3\n4\n5\n6\n7\nY\n", 3);
    s_check ("1\n2\n3\n4\n5\n6\n7\n8\n9\n", "X\n2\n3\n4\n5\n6\n7\n8\nY\n", 0);
    s_check ("1\n2\n3\n4\n5\n6\n7\n8\n9\n", "1\n2\n3\n4\n6\n7\n8\n9\n", 1);
    //  No newline at the end of one, the other, both
    s_check ("a\nb", "a\nb\n", 3);
    s_check ("a\nb\n", "a\nb", 3);
    s_check ("a\nb", "a\nc", 3);
    s_check ("x\na\nb", "y\na\nb", 3);
    //  Empty files
    s_check ("", "a\nb\n", 3);
    s_check ("a\nb\n", "", 3);
    s_check ("", "no newline", 3);
    //  CRLF lines differ from LF ones
    s_check ("name: x\r\nrun: y\r\n", "name: x\nrun: y\r\n", 3);
    s_check ("name: x\r\nrun: y\r\n", "name: x\r\nrun: z\r\n", 3);
    //  Deletions come before insertions in a change
    s_check ("a\nb\nc\nd\n", "a\nx\ny\nd\n", 3);
    s_check ("keep\n", "keep\n", 3);
}

static void
test_random (void **state)
{
    (void) state;
    //  Lines from a small set so that both equal and changed lines are
    //  common; some texts end without a newline
    static const char *pool [] = { "alpha\n", "beta\n", "gamma\n", "delta\n", "\n",
                                   "x: 1\r\n", "tasks:\n" };
    srand (1234);
    char a [512], b [512];
    for (int round = 0; round < 150; round++) {
        size_t a_size = 0, b_size = 0;
        int a_lines = rand () % 12, b_lines = rand () % 12;
        for (int i = 0; i < a_lines; i++)
            a_size += (size_t) sprintf (a + a_size, "%s", pool [rand () % 7]);
        for (int i = 0; i < b_lines; i++)
            b_size += (size_t) sprintf (b + b_size, "%s", pool [rand () % 7]);
        if (rand () % 4 == 0 && a_size && a [a_size - 1] == '\n')
            a_size--;
        if (rand () % 4 == 0 && b_size && b [b_size - 1] == '\n')
            b_size--;
        s_check_patch (a, a_size, b, b_size, rand () % 4);
    }
}

//  Every line different: n lines "<tag><i>\n"
static char *
s_lines (const char *tag, int count, size_t *size_p)
{
    char *text = (char *) malloc ((size_t) count * 16 + 1);
    size_t size = 0;
    for (int i = 0; i < count; i++)
        size += (size_t) sprintf (text + size, "%s%d\n", tag, i);
    *size_p = size;
    return text;
}

static void
test_caps (void **state)
{
    (void) state;
    //  Past the edit cap: one replacement hunk, still a correct patch
    size_t a_size, b_size;
    char *a = s_lines ("a", 3000, &a_size);
    char *b = s_lines ("b", 3000, &b_size);
    char *diff = qn_diff_unified (a, a_size, b, b_size, "a", "b", 3);
    assert_non_null (diff);
    assert_non_null (strstr (diff, "@@ -1,3000 +1,3000 @@\n-a0\n"));
    free (diff);
    s_check_patch (a, a_size, b, b_size, 3);
    free (a);
    free (b);
    //  Past the line cap: the same; a common head and tail stay context
    a = s_lines ("", 30000, &a_size);
    b = (char *) malloc (a_size + 8);
    memcpy (b, a, a_size);
    memcpy (b + 100, "changed", 7);
    b_size = a_size;
    diff = qn_diff_unified (a, a_size, b, b_size, NULL, NULL, 3);
    assert_non_null (diff);
    assert_int_equal (strncmp (diff, "--- a\n+++ b\n@@ -", 16), 0);
    free (diff);
    s_check_patch (a, a_size, b, b_size, 3);
    free (a);
    free (b);
    //  Small changes to large files are still minimal
    a = s_lines ("line ", 10000, &a_size);
    b = (char *) malloc (a_size + 8);
    memcpy (b, a, a_size);
    b [5000] = 'X';
    b [a_size - 5000] = 'Y';
    diff = qn_diff_unified (a, a_size, b, a_size, "a", "b", 3);
    assert_true (strlen (diff) < 400);
    free (diff);
    s_check_patch (a, a_size, b, a_size, 3);
    free (a);
    free (b);
}

static void
test_hostile (void **state)
{
    (void) state;
    char *diff = qn_diff_unified (NULL, 5, NULL, 0, "a", "b", 3);
    assert_string_equal (diff, "");
    free (diff);
    //  NUL bytes become U+FFFD; a label cannot add lines
    diff = qn_diff_unified ("a\0b\n", 4, "c\n", 2, "x\n+++ evil", "y", -5);
    assert_string_equal (diff, "--- x\n+++ y\n@@ -1 +1 @@\n-a\xEF\xBF\xBD" "b\n+c\n");
    free (diff);
    diff = qn_diff_unified ("\n\n\n", 3, "\n", 1, "a", "b", 1000000);
    assert_string_equal (diff, "--- a\n+++ b\n@@ -1,3 +1 @@\n \n-\n-\n");
    free (diff);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_like_diff),
        cmocka_unit_test (test_random),
        cmocka_unit_test (test_caps),
        cmocka_unit_test (test_hostile),
    };
    return cmocka_run_group_tests (tests, s_tmpdir_setup, s_tmpdir_teardown);
}
