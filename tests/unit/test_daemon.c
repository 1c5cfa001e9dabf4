/*  Tests for qn_daemon: which process a pid file names, and that only
    its own process removes it.  (Detaching itself forks and exits: the
    integration test test_agent_enrol runs it.) */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include "qn_daemon.h"
#include "test_tmpdir.h"

static void
s_write (const char *path, const char *text)
{
    FILE *file = fopen (path, "w");
    assert_non_null (file);
    fputs (text, file);
    fclose (file);
}

static void
test_running (void **state)
{
    (void) state;
    char path [128], text [32];
    snprintf (path, sizeof path, "%s/agent.pid", s_dir);
    assert_int_equal (qn_daemon_running (path), 0);          //  no file
    snprintf (text, sizeof text, "%ld\n", (long) getpid ());
    s_write (path, text);
    assert_int_equal (qn_daemon_running (path), getpid ());
    //  Garbage, init's pid, negative numbers, empty: nobody
    const char *bad [] = { "", "abc\n", "1\n", "-5\n", "0\n", "\n\n" };
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++) {
        s_write (path, bad [i]);
        assert_int_equal (qn_daemon_running (path), 0);
    }
    //  A process that has ended: nobody
    pid_t child = fork ();
    assert_true (child >= 0);
    if (child == 0)
        _exit (0);
    waitpid (child, NULL, 0);
    snprintf (text, sizeof text, "%ld\n", (long) child);
    s_write (path, text);
    assert_int_equal (qn_daemon_running (path), 0);
}

static void
test_forget_only_own (void **state)
{
    (void) state;
    char path [128], text [32];
    snprintf (path, sizeof path, "%s/other.pid", s_dir);
    //  Another live process's pid file stays
    snprintf (text, sizeof text, "%ld\n", (long) getppid ());
    s_write (path, text);
    qn_daemon_forget (path);
    assert_int_equal (access (path, F_OK), 0);
    //  Ours goes
    snprintf (text, sizeof text, "%ld\n", (long) getpid ());
    s_write (path, text);
    qn_daemon_forget (path);
    assert_int_equal (access (path, F_OK), -1);
    qn_daemon_forget (path);                                  //  none: no harm
}

static void
test_detach_refuses_unwritable_log (void **state)
{
    (void) state;
    const char *error = NULL;
    char pid [128];
    snprintf (pid, sizeof pid, "%s/x.pid", s_dir);
    assert_int_equal (qn_daemon_detach (pid, "/nonexistent-dir/agent.log", &error), -1);
    assert_non_null (error);
    assert_int_equal (access (pid, F_OK), -1);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_running),
        cmocka_unit_test (test_forget_only_own),
        cmocka_unit_test (test_detach_refuses_unwritable_log),
    };
    return cmocka_run_group_tests (tests, s_tmpdir_setup, s_tmpdir_teardown);
}
