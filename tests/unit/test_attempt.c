/*  Tests for qn_attempt: the table of attempts and the life of one
    attempt (the steps it may take and the ones it may not).
*/
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>
#include <unistd.h>
#include "qn_attempt.h"

#define S_STATES    (QN_ATTEMPT_DONE + 1)

static void
test_table (void **state)
{
    (void) state;
    zhashx_t *table = qn_attempt_table_new ();
    assert_non_null (table);
    qn_attempt_key_t key = { 7, 2, 1 }, other = { 7, 2, 2 };
    qn_attempt_t *attempt = qn_attempt_create (table, &key);
    assert_non_null (attempt);
    assert_int_equal (attempt->state, QN_ATTEMPT_NEW);
    assert_int_equal (attempt->next_seq, 1);
    assert_true (attempt->meta_dirty);
    assert_ptr_equal (qn_attempt_lookup (table, &key), attempt);
    assert_null (qn_attempt_lookup (table, &other));
    assert_null (qn_attempt_create (table, &key));      //  there already

    char name [64];
    qn_attempt_key_string (&key, name, sizeof name);
    assert_string_equal (name, "7/2/1");
    Qanat__AttemptRef ref;
    qn_attempt_ref (&key, &ref);
    assert_true (ref.run_id == 7 && ref.task_index == 2 && ref.attempt == 1);

    //  Running: the states that hold a slot
    qn_attempt_t *second = qn_attempt_create (table, &other);
    assert_non_null (second);
    assert_int_equal (qn_attempt_table_running (table), 0);
    assert_int_equal (qn_attempt_advance (attempt, QN_ATTEMPT_RUNNING), 0);
    assert_int_equal (qn_attempt_advance (second, QN_ATTEMPT_REATTACHING), 0);
    assert_int_equal (qn_attempt_table_running (table), 2);
    assert_int_equal (qn_attempt_advance (attempt, QN_ATTEMPT_ENDED), 0);
    assert_int_equal (qn_attempt_table_running (table), 1);

    //  The table owns its attempts (and their secrets)
    bool failed = false;
    char *secrets [] = { (char *) "hunter22" };
    second->redactor = qn_redact_new (secrets, 1, &failed);
    assert_false (failed);
    zhashx_destroy (&table);
}

//  Each step of the life, from each state; everything else is refused
static void
test_transitions (void **state)
{
    (void) state;
    bool allowed [S_STATES][S_STATES] = { { false } };
    allowed [QN_ATTEMPT_NEW][QN_ATTEMPT_RUNNING] = true;
    allowed [QN_ATTEMPT_NEW][QN_ATTEMPT_REATTACHING] = true;
    allowed [QN_ATTEMPT_NEW][QN_ATTEMPT_ENDED] = true;
    allowed [QN_ATTEMPT_REATTACHING][QN_ATTEMPT_RUNNING] = true;
    allowed [QN_ATTEMPT_REATTACHING][QN_ATTEMPT_ENDED] = true;
    allowed [QN_ATTEMPT_RUNNING][QN_ATTEMPT_STAGING] = true;
    allowed [QN_ATTEMPT_RUNNING][QN_ATTEMPT_COLLECTING] = true;
    allowed [QN_ATTEMPT_RUNNING][QN_ATTEMPT_ENDED] = true;
    allowed [QN_ATTEMPT_STAGING][QN_ATTEMPT_RUNNING] = true;
    allowed [QN_ATTEMPT_STAGING][QN_ATTEMPT_ENDED] = true;
    allowed [QN_ATTEMPT_COLLECTING][QN_ATTEMPT_ENDED] = true;
    allowed [QN_ATTEMPT_ENDED][QN_ATTEMPT_SPOOLED] = true;
    allowed [QN_ATTEMPT_SPOOLED][QN_ATTEMPT_DONE] = true;
    for (int from = 0; from < S_STATES; from++)
        for (int to = 0; to < S_STATES; to++) {
            qn_attempt_t attempt;
            memset (&attempt, 0, sizeof attempt);
            attempt.state = (qn_attempt_state_t) from;
            int rc = qn_attempt_advance (&attempt, (qn_attempt_state_t) to);
            if (allowed [from][to]) {
                assert_int_equal (rc, 0);
                assert_int_equal (attempt.state, to);
            }
            else {
                if (rc != -1)
                    fail_msg ("%s -> %s allowed", qn_attempt_state_name (from),
                              qn_attempt_state_name (to));
                assert_int_equal (attempt.state, from);
            }
        }
}

//  The lives the agent gives its attempts, and which states hold a slot
static void
test_lives (void **state)
{
    (void) state;
    qn_attempt_t attempt;
    memset (&attempt, 0, sizeof attempt);
    //  Inputs staged, ran, outputs stored, Finished spooled, acknowledged
    qn_attempt_state_t staged [] = { QN_ATTEMPT_RUNNING, QN_ATTEMPT_STAGING, QN_ATTEMPT_RUNNING,
                                     QN_ATTEMPT_COLLECTING, QN_ATTEMPT_ENDED,
                                     QN_ATTEMPT_SPOOLED, QN_ATTEMPT_DONE };
    bool running [] = { true, true, true, true, false, false, false };
    assert_false (qn_attempt_running (&attempt));
    for (size_t i = 0; i < sizeof staged / sizeof staged [0]; i++) {
        assert_int_equal (qn_attempt_advance (&attempt, staged [i]), 0);
        assert_int_equal (qn_attempt_running (&attempt), running [i]);
    }
    //  Refused at once (draining, spool full): never held a slot
    memset (&attempt, 0, sizeof attempt);
    assert_int_equal (qn_attempt_advance (&attempt, QN_ATTEMPT_ENDED), 0);
    assert_false (qn_attempt_running (&attempt));
    //  A second Finished does not take an attempt back
    assert_int_equal (qn_attempt_advance (&attempt, QN_ATTEMPT_ENDED), -1);
    assert_int_equal (qn_attempt_advance (&attempt, QN_ATTEMPT_COLLECTING), -1);
    //  Taken over from the spool: re-attached after the Welcome, or lost
    memset (&attempt, 0, sizeof attempt);
    assert_int_equal (qn_attempt_advance (&attempt, QN_ATTEMPT_REATTACHING), 0);
    assert_true (qn_attempt_running (&attempt));
    assert_int_equal (qn_attempt_advance (&attempt, QN_ATTEMPT_COLLECTING), -1);
    assert_int_equal (qn_attempt_advance (&attempt, QN_ATTEMPT_ENDED), 0);
    assert_string_equal (qn_attempt_state_name (attempt.state), "ended");
}

static void
test_meta (void **state)
{
    (void) state;
    qn_attempt_t attempt;
    memset (&attempt, 0, sizeof attempt);
    attempt.key = (qn_attempt_key_t) { 3, 4, 5 };
    attempt.pid = 1234;
    attempt.start_time = 99;
    snprintf (attempt.task_name, sizeof attempt.task_name, "train");
    snprintf (attempt.workdir, sizeof attempt.workdir, "/data/a/work");
    qn_spool_meta_t meta;
    qn_attempt_meta (&attempt, 12, true, &meta);
    assert_true (meta.key.run_id == 3 && meta.key.task_index == 4 && meta.key.attempt == 5);
    assert_int_equal (meta.pid, 1234);
    assert_int_equal (meta.start_time, 99);
    assert_int_equal (meta.next_seq, 12);
    assert_true (meta.finished);
    assert_string_equal (meta.task_name, "train");
    assert_string_equal (meta.backend, "");         //  no engine job: no backend, no workdir
    assert_string_equal (meta.workdir, "");
    //  An engine job is kept with its backend and cursor (and the work
    //  directory when there are outputs to collect)
    snprintf (attempt.engine_job_id, sizeof attempt.engine_job_id, "job-1");
    snprintf (attempt.cursor, sizeof attempt.cursor, "c9");
    attempt.backend_name = "slurm";
    Qanat__OutputSpec *outputs [1] = { NULL };
    Qanat__Assign assign = QANAT__ASSIGN__INIT;
    assign.n_outputs = 1;
    assign.outputs = outputs;
    attempt.assign = &assign;
    qn_attempt_meta (&attempt, 2, false, &meta);
    assert_string_equal (meta.backend, "slurm");
    assert_string_equal (meta.engine_job_id, "job-1");
    assert_string_equal (meta.cursor, "c9");
    assert_string_equal (meta.workdir, "/data/a/work");
    assert_false (meta.finished);
}

static void
test_process_start_time (void **state)
{
    (void) state;
    assert_true (qn_attempt_process_start_time (getpid ()) > 0);
    assert_int_equal (qn_attempt_process_start_time (-5), 0);
    assert_string_equal (qn_attempt_end_kind_name (QANAT__END_KIND__END_LOST), "lost");
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_table),
        cmocka_unit_test (test_transitions),
        cmocka_unit_test (test_lives),
        cmocka_unit_test (test_meta),
        cmocka_unit_test (test_process_start_time),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
