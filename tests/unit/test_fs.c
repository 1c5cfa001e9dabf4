/*  test_fs - the agent's filesystem helpers: a tree removed without
    following a symlink out of it, a move that refuses what it cannot copy
    and leaves nothing behind, parents made. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <czmq.h>
#include <sys/stat.h>
#include "qn_fs.h"

static void
s_write (const char *path, const char *text)
{
    FILE *out = fopen (path, "w");
    assert_non_null (out);
    fputs (text, out);
    fclose (out);
}

static void
test_remove_tree_keeps_what_symlinks_point_at (void **state)
{
    (void) state;
    char root [] = "/tmp/qn_fs_test.XXXXXX";
    assert_non_null (mkdtemp (root));
    char *tree = zsys_sprintf ("%s/tree/a/b", root);
    assert_int_equal (qn_fs_mkdirs (tree, 0700), 0);
    char *outside = zsys_sprintf ("%s/outside.txt", root);
    s_write (outside, "keep me\n");
    char *link = zsys_sprintf ("%s/tree/a/link", root);
    assert_int_equal (symlink (outside, link), 0);
    char *file = zsys_sprintf ("%s/tree/a/b/file", root);
    s_write (file, "x");
    chmod (file, 0444);
    char *top = zsys_sprintf ("%s/tree", root);
    assert_int_equal (qn_fs_remove_tree (top), 0);
    struct stat st;
    assert_int_equal (lstat (top, &st), -1);
    assert_int_equal (stat (outside, &st), 0);          //  not followed
    assert_int_equal (qn_fs_remove_tree (top), 0);       //  already gone: fine
    unlink (outside);
    rmdir (root);
    zstr_free (&tree);
    zstr_free (&outside);
    zstr_free (&link);
    zstr_free (&file);
    zstr_free (&top);
}

static void
test_move_and_mkdirs (void **state)
{
    (void) state;
    char root [] = "/tmp/qn_fs_test.XXXXXX";
    assert_non_null (mkdtemp (root));
    char *from = zsys_sprintf ("%s/from/sub", root);
    assert_int_equal (qn_fs_mkdirs (from, 0700), 0);
    assert_int_equal (qn_fs_mkdirs (from, 0700), 0);     //  there already: fine
    char *file = zsys_sprintf ("%s/from/sub/data", root);
    s_write (file, "data\n");
    char *src = zsys_sprintf ("%s/from", root);
    char *dst = zsys_sprintf ("%s/to", root);
    char error [256] = "";
    assert_int_equal (qn_fs_move (src, dst, error, sizeof error), 0);
    char *moved = zsys_sprintf ("%s/to/sub/data", root);
    struct stat st;
    assert_int_equal (stat (moved, &st), 0);
    assert_int_equal (stat (src, &st), -1);
    //  A move onto a parent that is not there says why
    char *nowhere = zsys_sprintf ("%s/no/such/dir", root);
    assert_int_equal (qn_fs_move (dst, nowhere, error, sizeof error), -1);
    assert_non_null (strstr (error, "cannot move"));
    assert_int_equal (qn_fs_remove_tree (root), 0);
    zstr_free (&from);
    zstr_free (&file);
    zstr_free (&src);
    zstr_free (&dst);
    zstr_free (&moved);
    zstr_free (&nowhere);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_remove_tree_keeps_what_symlinks_point_at),
        cmocka_unit_test (test_move_and_mkdirs),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
