/*  test_sweeper - directory trees removed on the sweeper's thread. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <czmq.h>
#include <sys/stat.h>
#include "qn_backend.h"
#include "qn_fs.h"
#include "qn_sweeper.h"

static char *
s_tree (const char *root, int index)
{
    char *dir = zsys_sprintf ("%s/attempt-%d", root, index);
    char *work = zsys_sprintf ("%s/work/deep/er", dir);
    assert_int_equal (qn_fs_mkdirs (work, 0700), 0);
    char *file = zsys_sprintf ("%s/work/deep/er/file.txt", dir);
    FILE *out = fopen (file, "w");
    assert_non_null (out);
    fputs ("data\n", out);
    fclose (out);
    chmod (file, 0444);                 //  staged inputs are read-only
    zstr_free (&file);
    zstr_free (&work);
    return dir;
}

static void
test_trees_go_in_order_and_destroy_drains (void **state)
{
    (void) state;
    char root [] = "/tmp/qn_sweeper_test.XXXXXX";
    assert_non_null (mkdtemp (root));
    qn_sweeper_t *sweeper = qn_sweeper_new ();
    assert_non_null (sweeper);
    char *dirs [50];
    for (int i = 0; i < 50; i++)
        dirs [i] = s_tree (root, i);
    for (int i = 0; i < 25; i++)
        assert_int_equal (qn_sweeper_remove (sweeper, dirs [i]), 0);
    //  Removed behind the caller: wait for the first half
    int64_t deadline = zclock_mono () + 30000;
    while (qn_sweeper_pending (sweeper) && zclock_mono () < deadline)
        zclock_sleep (5);
    assert_int_equal (qn_sweeper_pending (sweeper), 0);
    for (int i = 0; i < 25; i++)
        assert_int_equal (access (dirs [i], F_OK), -1);
    assert_int_equal (access (dirs [25], F_OK), 0);
    //  The rest queued, then destroy: nothing left half done
    for (int i = 25; i < 50; i++)
        assert_int_equal (qn_sweeper_remove (sweeper, dirs [i]), 0);
    qn_sweeper_destroy (&sweeper);
    assert_null (sweeper);
    qn_sweeper_destroy (&sweeper);
    for (int i = 25; i < 50; i++)
        assert_int_equal (access (dirs [i], F_OK), -1);
    //  A missing path is no error for anyone
    sweeper = qn_sweeper_new ();
    assert_int_equal (qn_sweeper_remove (sweeper, "/tmp/qn_sweeper_test.none/x"), 0);
    qn_sweeper_destroy (&sweeper);
    for (int i = 0; i < 50; i++)
        zstr_free (&dirs [i]);
    assert_int_equal (rmdir (root), 0);     //  empty: every tree went
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_trees_go_in_order_and_destroy_drains),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
