/*  Tests for qn_spawn: the child's setup (directory, environment, standard
    descriptors, no other descriptor, default signal dispositions and an
    empty mask, its own process group), the PATH search and how a start
    that cannot run ends; and the environment builder.
*/
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "qn_spawn.h"

typedef struct {
    pid_t pid;
    int status;
    char out [8192];
    char err [8192];
    bool exec_failed;           //  the child wrote to exec_fd
} s_result_t;

static void
s_drain (int fd, char *buffer, size_t size)
{
    size_t at = 0;
    while (true) {
        ssize_t got = read (fd, buffer + at, size - 1 - at);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        at += (size_t) got;
        if (at + 1 >= size)
            break;
    }
    buffer [at] = '\0';
}

//  Runs spawn (its descriptors filled in here) to its end
static void
s_run (qn_spawn_t *spawn, s_result_t *result)
{
    int out [2], err [2], exec [2];
    assert_int_equal (pipe2 (out, O_CLOEXEC), 0);
    assert_int_equal (pipe2 (err, O_CLOEXEC), 0);
    assert_int_equal (pipe2 (exec, O_CLOEXEC), 0);
    spawn->stdout_fd = out [1];
    spawn->stderr_fd = err [1];
    spawn->exec_fd = exec [1];
    memset (result, 0, sizeof (*result));
    result->pid = qn_spawn (spawn);
    assert_true (result->pid > 0);
    close (out [1]);
    close (err [1]);
    close (exec [1]);
    //  Small outputs: one pipe after the other does not block
    s_drain (out [0], result->out, sizeof (result->out));
    s_drain (err [0], result->err, sizeof (result->err));
    char byte;
    result->exec_failed = read (exec [0], &byte, 1) == 1;
    close (out [0]);
    close (err [0]);
    close (exec [0]);
    assert_int_equal (waitpid (result->pid, &result->status, 0), result->pid);
}

static qn_spawn_t
s_spawn (char **argv, char **envp)
{
    qn_spawn_t spawn;
    memset (&spawn, 0, sizeof (spawn));
    spawn.argv = argv;
    spawn.envp = envp;
    spawn.stdin_fd = -1;
    spawn.failure = "spawn test: cannot run: ";
    spawn.describe = true;
    return spawn;
}

static char *
s_tempdir (void)
{
    char template [] = "/tmp/qanat-test-spawn-XXXXXX";
    char *dir = mkdtemp (template);
    assert_non_null (dir);
    return strdup (dir);
}

static void
test_child_setup (void **state)
{
    (void) state;
    char *dir = s_tempdir ();
    char *real = realpath (dir, NULL);
    assert_non_null (real);
    //  A descriptor of ours without close-on-exec must not reach the child
    int stray = open ("/dev/null", O_RDONLY);
    assert_true (stray > 2);
    //  Nor our ignored and blocked signals
    struct sigaction ignore, saved_action;
    memset (&ignore, 0, sizeof (ignore));
    ignore.sa_handler = SIG_IGN;
    sigaction (SIGTERM, &ignore, &saved_action);
    sigset_t block, saved_mask;
    sigemptyset (&block);
    sigaddset (&block, SIGINT);
    sigaddset (&block, SIGUSR1);
    sigprocmask (SIG_BLOCK, &block, &saved_mask);

    //  The signals last, from the shell's own process once it exec'd: a
    //  shell may block every signal for a moment around a fork
    char *argv [] = { "sh", "-c",
        "pwd; echo \"foo=$FOO home=${HOME-unset}\"; "
        "for n in 0 1 2 $STRAY; do [ -e /proc/$$/fd/$n ] && printf '%s ' $n; done; echo; "
        "echo \"pid=$$ pgid=$(cut -d' ' -f5 /proc/$$/stat)\"; "
        "echo \"stdin=$(readlink /proc/$$/fd/0)\"; echo oops >&2; "
        "exec grep -E '^Sig(Blk|Ign)' /proc/self/status", NULL };
    char stray_env [32];
    snprintf (stray_env, sizeof (stray_env), "STRAY=%d", stray);
    char *envp [] = { "FOO=bar baz", "PATH=/usr/bin:/bin", stray_env, NULL };
    qn_spawn_t spawn = s_spawn (argv, envp);
    spawn.workdir = dir;
    s_result_t result;
    s_run (&spawn, &result);

    sigaction (SIGTERM, &saved_action, NULL);
    sigprocmask (SIG_SETMASK, &saved_mask, NULL);
    close (stray);

    //  glibc keeps signals 32 and 33 for itself (its sigaction refuses
    //  them): whatever this test runs under may have left them ignored
    char *ignored = strstr (result.out, "SigIgn:\t");
    assert_non_null (ignored);
    unsigned long long mask = strtoull (ignored + 8, NULL, 16);
    mask &= ~((1ULL << 31) | (1ULL << 32));
    snprintf (ignored + 8, 17, "%016llx", mask);
    ignored [8 + 16] = '\n';
    assert_true (WIFEXITED (result.status));
    assert_int_equal (WEXITSTATUS (result.status), 0);
    assert_false (result.exec_failed);
    assert_string_equal (result.err, "oops\n");
    char expected [4096];
    snprintf (expected, sizeof (expected),
              "%s\n"
              "foo=bar baz home=unset\n"
              "0 1 2 \n"
              "pid=%d pgid=%d\n"
              "stdin=/dev/null\n"
              "SigBlk:\t0000000000000000\n"
              "SigIgn:\t0000000000000000\n", real, (int) result.pid, (int) result.pid);
    assert_string_equal (result.out, expected);
    rmdir (dir);
    free (real);
    free (dir);
}

static void
test_stdin_given (void **state)
{
    (void) state;
    int in [2];
    assert_int_equal (pipe2 (in, O_CLOEXEC), 0);
    assert_int_equal (write (in [1], "from the pipe\n", 14), 14);
    close (in [1]);
    char *argv [] = { "cat", NULL };
    char *envp [] = { "PATH=/usr/bin:/bin", NULL };
    qn_spawn_t spawn = s_spawn (argv, envp);
    spawn.stdin_fd = in [0];
    s_result_t result;
    s_run (&spawn, &result);
    close (in [0]);
    assert_int_equal (WEXITSTATUS (result.status), 0);
    assert_string_equal (result.out, "from the pipe\n");
}

static void
test_failures (void **state)
{
    (void) state;
    char *dir = s_tempdir ();
    char path [512];
    s_result_t result;

    //  Not found in PATH: 127, the reason on stderr, a byte on exec_fd
    char *missing [] = { "qanat-no-such-program", NULL };
    char *envp [] = { "PATH=/nonexistent:/usr/bin:/bin", NULL };
    qn_spawn_t spawn = s_spawn (missing, envp);
    s_run (&spawn, &result);
    assert_int_equal (WEXITSTATUS (result.status), 127);
    assert_true (result.exec_failed);
    assert_string_equal (result.err, "spawn test: cannot run: No such file or directory\n");

    //  Not executable: 126
    snprintf (path, sizeof (path), "%s/plain", dir);
    FILE *file = fopen (path, "w");
    assert_non_null (file);
    fputs ("echo never\n", file);
    fclose (file);
    char *plain [] = { path, NULL };
    spawn = s_spawn (plain, envp);
    s_run (&spawn, &result);
    assert_int_equal (WEXITSTATUS (result.status), 126);
    assert_true (result.exec_failed);
    assert_string_equal (result.err, "spawn test: cannot run: Permission denied\n");

    //  Executable but no binary and no #!: through /bin/sh, as execvp does,
    //  also when found in PATH
    chmod (path, 0700);
    spawn = s_spawn (plain, envp);
    s_run (&spawn, &result);
    assert_int_equal (WEXITSTATUS (result.status), 0);
    assert_false (result.exec_failed);
    assert_string_equal (result.out, "never\n");
    char *by_name [] = { "plain", NULL };
    char dir_path [600];
    snprintf (dir_path, sizeof (dir_path), "PATH=/nonexistent:%s", dir);
    char *dir_envp [] = { dir_path, NULL };
    spawn = s_spawn (by_name, dir_envp);
    s_run (&spawn, &result);
    assert_int_equal (WEXITSTATUS (result.status), 0);
    assert_string_equal (result.out, "never\n");

    //  A fixed status and message, without the reason (qn_command's)
    spawn = s_spawn (missing, envp);
    spawn.failure = "cannot run the command\n";
    spawn.describe = false;
    spawn.failure_status = 99;
    s_run (&spawn, &result);
    assert_int_equal (WEXITSTATUS (result.status), 99);
    assert_string_equal (result.err, "cannot run the command\n");

    //  A directory it cannot enter
    char *sh [] = { "/bin/sh", "-c", "echo never", NULL };
    spawn = s_spawn (sh, envp);
    spawn.workdir = "/nonexistent/qanat";
    s_run (&spawn, &result);
    assert_int_equal (WEXITSTATUS (result.status), 127);
    assert_true (result.exec_failed);
    assert_string_equal (result.out, "");

    unlink (path);
    rmdir (dir);
    free (dir);

    //  Nothing to run
    char *empty [] = { "", NULL };
    spawn = s_spawn (empty, envp);
    assert_int_equal (qn_spawn (&spawn), -1);
    assert_int_equal (errno, EINVAL);
}

static void
test_reused_stack (void **state)
{
    (void) state;
    void *stack = qn_spawn_stack_new ();
    assert_non_null (stack);
    char *argv [] = { "/bin/sh", "-c", "echo $X", NULL };
    char *envp [] = { "X=again", NULL };
    for (int i = 0; i < 3; i++) {
        qn_spawn_t spawn = s_spawn (argv, envp);
        spawn.stack = stack;
        s_result_t result;
        s_run (&spawn, &result);
        assert_string_equal (result.out, "again\n");
    }
    qn_spawn_stack_destroy (&stack);
    assert_null (stack);
    qn_spawn_stack_destroy (&stack);
}

static void
test_env (void **state)
{
    (void) state;
    setenv ("QN_SPAWN_TEST_A", "ours", 1);
    setenv ("QN_SPAWN_TEST_B", "ours too", 1);
    char *extra [] = { "QN_SPAWN_TEST_B=theirs", "QN_SPAWN_TEST_C=new", "no equals", "=no key",
                       "QN_SPAWN_TEST_C=newer", NULL };
    char **envp = qn_spawn_env (extra);
    assert_non_null (envp);
    size_t a = 0, b = 0, c = 0, count = 0;
    for (size_t i = 0; envp [i]; i++) {
        count++;
        assert_non_null (strchr (envp [i], '='));
        assert_true (envp [i][0] != '=');
        if (strncmp (envp [i], "QN_SPAWN_TEST_A=", 16) == 0) {
            assert_string_equal (envp [i], "QN_SPAWN_TEST_A=ours");
            a = i + 1;
        }
        if (strncmp (envp [i], "QN_SPAWN_TEST_B=", 16) == 0) {
            assert_string_equal (envp [i], "QN_SPAWN_TEST_B=theirs");
            b = i + 1;
        }
        if (strncmp (envp [i], "QN_SPAWN_TEST_C=", 16) == 0) {
            assert_string_equal (envp [i], "QN_SPAWN_TEST_C=newer");
            c = i + 1;
        }
    }
    //  Replaced where it stood; the new one last, once
    assert_true (a && b && c);
    assert_true (a < b);
    assert_int_equal (c, count);
    assert_string_equal (qn_spawn_path (envp), getenv ("PATH")? getenv ("PATH"): QN_SPAWN_PATH);
    qn_spawn_strings_free (envp);
    unsetenv ("QN_SPAWN_TEST_A");
    unsetenv ("QN_SPAWN_TEST_B");

    char *no_path [] = { "A=b", NULL };
    assert_string_equal (qn_spawn_path (no_path), QN_SPAWN_PATH);
    char *path [] = { "PATHX=no", "PATH=/opt/bin", NULL };
    assert_string_equal (qn_spawn_path (path), "/opt/bin");
    qn_spawn_strings_free (NULL);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_child_setup),
        cmocka_unit_test (test_stdin_given),
        cmocka_unit_test (test_failures),
        cmocka_unit_test (test_reused_stack),
        cmocka_unit_test (test_env),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
