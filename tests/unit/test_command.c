/*  test_command - an external command run from a real zloop and blocking:
    its stdout, stderr and exit code; a program that does not exist (127
    and the one line the child writes); a death by signal; the deadline
    killing a sleep well before it ends; output past QN_COMMAND_OUTPUT_MAX
    read to its end and dropped (the child is never blocked on a full
    pipe), output exactly at the cap kept whole; stdin from the given
    text; the environment the child sees (ours plus the extra entries,
    which replace ours).  Every wait is bounded by a watchdog timer, so a
    broken command class fails the test instead of hanging it.
*/
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include "qn_command.h"

//  The loop gives up after this long, whatever happens
#define S_WATCHDOG_MS   15000
//  A command killed at its deadline must be over within this (its
//  deadline included); sleep 30 would take 30 s
#define S_KILL_BOUND_MS 10000

typedef struct {
    bool called;
    int calls;
    qn_command_result_t result;         //  a copy, with its own buffers
    bool watchdog;                      //  the loop ended by the watchdog
} s_outcome_t;

static void
s_on_command (qn_command_t *command, const qn_command_result_t *result, void *arg)
{
    (void) command;
    s_outcome_t *outcome = (s_outcome_t *) arg;
    outcome->called = true;
    outcome->calls++;
    outcome->result = *result;
    outcome->result.out = (char *) malloc (result->out_size + 1);
    outcome->result.err = (char *) malloc (result->err_size + 1);
    assert_non_null (outcome->result.out);
    assert_non_null (outcome->result.err);
    memcpy (outcome->result.out, result->out, result->out_size + 1);
    memcpy (outcome->result.err, result->err, result->err_size + 1);
}

static int
s_on_tick (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    return ((s_outcome_t *) arg)->called? -1: 0;
}

static int
s_on_watchdog (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    ((s_outcome_t *) arg)->watchdog = true;
    return -1;
}

//  Runs argv on a fresh loop until its callback ran (or the watchdog
//  fired); returns the milliseconds it took.
static int64_t
s_run_on_loop (char *const *argv, char *const *env, const char *input, int timeout_ms,
               s_outcome_t *outcome)
{
    memset (outcome, 0, sizeof (*outcome));
    zloop_t *loop = zloop_new ();
    assert_non_null (loop);
    int64_t start = zclock_mono ();
    qn_command_t *command = qn_command_new (loop, argv, env, input, timeout_ms,
                                            s_on_command, outcome);
    assert_non_null (command);
    assert_true (qn_command_pid (command) > 0);
    assert_false (qn_command_done (command));
    zloop_timer (loop, 10, 0, s_on_tick, outcome);
    zloop_timer (loop, S_WATCHDOG_MS, 1, s_on_watchdog, outcome);
    zloop_start (loop);
    int64_t elapsed = zclock_mono () - start;
    bool done = qn_command_done (command);
    qn_command_destroy (&command);
    assert_null (command);
    zloop_destroy (&loop);
    assert_false (outcome->watchdog);
    assert_true (outcome->called);
    assert_true (done);
    assert_int_equal (outcome->calls, 1);
    return elapsed;
}

static void
s_outcome_free (s_outcome_t *outcome)
{
    qn_command_result_free (&outcome->result);
}

static void
test_output_and_exit_code (void **state)
{
    (void) state;
    char *argv [] = { "sh", "-c", "printf 'to out'; printf 'to err' >&2; exit 3", NULL };
    s_outcome_t outcome;
    s_run_on_loop (argv, NULL, NULL, 0, &outcome);
    assert_int_equal (outcome.result.exit_code, 3);
    assert_int_equal (outcome.result.signal, 0);
    assert_false (outcome.result.timed_out);
    assert_int_equal (outcome.result.out_size, 6);
    assert_string_equal (outcome.result.out, "to out");
    assert_int_equal (outcome.result.err_size, 6);
    assert_string_equal (outcome.result.err, "to err");
    assert_false (outcome.result.out_truncated);
    assert_false (outcome.result.err_truncated);
    s_outcome_free (&outcome);

    //  Nothing written: empty, NUL-terminated buffers; exit 0
    char *quiet [] = { "true", NULL };
    s_run_on_loop (quiet, NULL, NULL, 0, &outcome);
    assert_int_equal (outcome.result.exit_code, 0);
    assert_int_equal (outcome.result.out_size, 0);
    assert_string_equal (outcome.result.out, "");
    assert_int_equal (outcome.result.err_size, 0);
    assert_string_equal (outcome.result.err, "");
    s_outcome_free (&outcome);

    //  NUL bytes are kept: the size says how much
    char *binary [] = { "printf", "a\\000b", NULL };
    s_run_on_loop (binary, NULL, NULL, 0, &outcome);
    assert_int_equal (outcome.result.exit_code, 0);
    assert_int_equal (outcome.result.out_size, 3);
    assert_memory_equal (outcome.result.out, "a\0b", 3);
    s_outcome_free (&outcome);
}

static void
test_not_found (void **state)
{
    (void) state;
    char *argv [] = { "qanat-test-no-such-command-here", "x", NULL };
    s_outcome_t outcome;
    s_run_on_loop (argv, NULL, NULL, 0, &outcome);
    assert_int_equal (outcome.result.exit_code, 127);
    assert_int_equal (outcome.result.signal, 0);
    assert_false (outcome.result.timed_out);
    assert_string_equal (outcome.result.err, "qanat-agent: cannot run the command\n");
    assert_int_equal (outcome.result.out_size, 0);
    s_outcome_free (&outcome);

    //  The same by path, blocking: it ran (and exited by itself)
    char *by_path [] = { "/nonexistent/qanat-test-command", NULL };
    qn_command_result_t result;
    assert_int_equal (qn_command_run (by_path, NULL, NULL, 5000, &result), 0);
    assert_int_equal (result.exit_code, 127);
    assert_string_equal (result.err, "qanat-agent: cannot run the command\n");
    qn_command_result_free (&result);

    //  No program at all: nothing starts
    zloop_t *loop = zloop_new ();
    char *empty [] = { "", NULL };
    char *none [] = { NULL };
    assert_null (qn_command_new (loop, empty, NULL, NULL, 0, s_on_command, &outcome));
    assert_null (qn_command_new (loop, none, NULL, NULL, 0, s_on_command, &outcome));
    zloop_destroy (&loop);
    assert_int_equal (qn_command_run (empty, NULL, NULL, 0, &result), -1);
    assert_int_equal (result.exit_code, -1);
    qn_command_result_free (&result);
}

static void
test_signal (void **state)
{
    (void) state;
    char *argv [] = { "sh", "-c", "kill -KILL $$; sleep 30", NULL };
    s_outcome_t outcome;
    s_run_on_loop (argv, NULL, NULL, 20000, &outcome);
    assert_int_equal (outcome.result.signal, 9);
    assert_int_equal (outcome.result.exit_code, 128 + 9);
    assert_false (outcome.result.timed_out);
    s_outcome_free (&outcome);
}

static void
test_timeout (void **state)
{
    (void) state;
    //  A grandchild holding the pipes open is killed with its group
    char *argv [] = { "sh", "-c", "printf started; sleep 30 & sleep 30", NULL };
    s_outcome_t outcome;
    int64_t elapsed = s_run_on_loop (argv, NULL, NULL, 300, &outcome);
    assert_true (outcome.result.timed_out);
    assert_int_equal (outcome.result.exit_code, -1);
    assert_true (elapsed >= 250);
    assert_true (elapsed < S_KILL_BOUND_MS);
    s_outcome_free (&outcome);

    //  Blocking: killed at the deadline too, and says it did not end by itself
    char *sleeper [] = { "sleep", "30", NULL };
    qn_command_result_t result;
    int64_t start = zclock_mono ();
    assert_int_equal (qn_command_run (sleeper, NULL, NULL, 300, &result), -1);
    elapsed = zclock_mono () - start;
    assert_true (result.timed_out);
    assert_int_equal (result.exit_code, -1);
    assert_true (elapsed >= 250);
    assert_true (elapsed < S_KILL_BOUND_MS);
    qn_command_result_free (&result);

    //  A command well within its deadline is not touched
    char *quick [] = { "true", NULL };
    s_run_on_loop (quick, NULL, NULL, 20000, &outcome);
    assert_false (outcome.result.timed_out);
    assert_int_equal (outcome.result.exit_code, 0);
    s_outcome_free (&outcome);
}

static void
test_destroy_while_running (void **state)
{
    (void) state;
    zloop_t *loop = zloop_new ();
    assert_non_null (loop);
    s_outcome_t outcome;
    memset (&outcome, 0, sizeof (outcome));
    char *argv [] = { "sleep", "30", NULL };
    qn_command_t *command = qn_command_new (loop, argv, NULL, NULL, 0, s_on_command, &outcome);
    assert_non_null (command);
    int64_t start = zclock_mono ();
    qn_command_destroy (&command);
    assert_true (zclock_mono () - start < S_KILL_BOUND_MS);
    assert_null (command);
    qn_command_destroy (&command);      //  idempotent
    //  The loop has nothing left of it: a short spin never calls back
    zloop_timer (loop, 50, 1, s_on_watchdog, &outcome);
    zloop_start (loop);
    assert_true (outcome.watchdog);
    assert_false (outcome.called);
    zloop_destroy (&loop);
}

static void
test_large_output (void **state)
{
    (void) state;
    //  1 MB on each stream: read to the end, the first 64 KiB kept
    char *argv [] = {
        "sh", "-c", "head -c 1048576 /dev/zero | tr '\\0' o; "
                    "head -c 1048576 /dev/zero | tr '\\0' e >&2", NULL
    };
    s_outcome_t outcome;
    s_run_on_loop (argv, NULL, NULL, 0, &outcome);
    assert_int_equal (outcome.result.exit_code, 0);
    assert_false (outcome.result.timed_out);
    assert_int_equal (outcome.result.out_size, QN_COMMAND_OUTPUT_MAX);
    assert_int_equal (outcome.result.err_size, QN_COMMAND_OUTPUT_MAX);
    assert_true (outcome.result.out_truncated);
    assert_true (outcome.result.err_truncated);
    assert_int_equal (outcome.result.out [QN_COMMAND_OUTPUT_MAX], '\0');
    for (size_t i = 0; i < QN_COMMAND_OUTPUT_MAX; i++)
        if (outcome.result.out [i] != 'o' || outcome.result.err [i] != 'e')
            fail_msg ("byte %zu of the output is not the child's", i);
    s_outcome_free (&outcome);

    //  Exactly the cap: whole, not truncated
    char *exact [] = { "sh", "-c", "head -c 65536 /dev/zero | tr '\\0' x", NULL };
    s_run_on_loop (exact, NULL, NULL, 0, &outcome);
    assert_int_equal (outcome.result.out_size, QN_COMMAND_OUTPUT_MAX);
    assert_false (outcome.result.out_truncated);
    s_outcome_free (&outcome);

    //  Blocking: the same cap
    qn_command_result_t result;
    assert_int_equal (qn_command_run (argv, NULL, NULL, 20000, &result), 0);
    assert_int_equal (result.exit_code, 0);
    assert_int_equal (result.out_size, QN_COMMAND_OUTPUT_MAX);
    assert_true (result.out_truncated);
    assert_int_equal (result.err_size, QN_COMMAND_OUTPUT_MAX);
    assert_true (result.err_truncated);
    qn_command_result_free (&result);
}

static void
test_input_and_environment (void **state)
{
    (void) state;
    assert_int_equal (setenv ("QN_TEST_PARENT", "from-parent", 1), 0);
    assert_int_equal (setenv ("QN_TEST_REPLACED", "old", 1), 0);
    char *env [] = { "QN_TEST_EXTRA=extra value", "QN_TEST_REPLACED=new", NULL };
    char *argv [] = {
        "sh", "-c", "printf '%s|%s|%s' \"$QN_TEST_PARENT\" \"$QN_TEST_EXTRA\" "
                    "\"$QN_TEST_REPLACED\"; env | grep -c '^QN_TEST_REPLACED=' >&2", NULL
    };
    s_outcome_t outcome;
    s_run_on_loop (argv, env, NULL, 0, &outcome);
    assert_int_equal (outcome.result.exit_code, 0);
    assert_string_equal (outcome.result.out, "from-parent|extra value|new");
    assert_string_equal (outcome.result.err, "1\n");       //  replaced, not doubled
    s_outcome_free (&outcome);

    qn_command_result_t result;
    assert_int_equal (qn_command_run (argv, env, NULL, 20000, &result), 0);
    assert_string_equal (result.out, "from-parent|extra value|new");
    qn_command_result_free (&result);

    //  Without extra entries the child has ours
    s_run_on_loop (argv, NULL, NULL, 0, &outcome);
    assert_string_equal (outcome.result.out, "from-parent||old");
    s_outcome_free (&outcome);
    unsetenv ("QN_TEST_PARENT");
    unsetenv ("QN_TEST_REPLACED");

    //  stdin from the given text; /dev/null without
    char *cat [] = { "cat", NULL };
    s_run_on_loop (cat, NULL, "line one\nline two\n", 0, &outcome);
    assert_int_equal (outcome.result.exit_code, 0);
    assert_string_equal (outcome.result.out, "line one\nline two\n");
    s_outcome_free (&outcome);
    s_run_on_loop (cat, NULL, NULL, 20000, &outcome);
    assert_int_equal (outcome.result.exit_code, 0);
    assert_int_equal (outcome.result.out_size, 0);
    s_outcome_free (&outcome);
    assert_int_equal (qn_command_run (cat, NULL, "blocking\n", 20000, &result), 0);
    assert_string_equal (result.out, "blocking\n");
    qn_command_result_free (&result);
}

int
main (void)
{
    zsys_init ();
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_output_and_exit_code),
        cmocka_unit_test (test_not_found),
        cmocka_unit_test (test_signal),
        cmocka_unit_test (test_timeout),
        cmocka_unit_test (test_destroy_while_running),
        cmocka_unit_test (test_large_output),
        cmocka_unit_test (test_input_and_environment),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
