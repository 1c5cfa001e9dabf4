/*  Tests for qn_outbox: events committed to a real spool (in a temporary
    directory) before they are sent, replay after a new registration,
    acknowledgements, back-pressure.  No socket: the send handler records
    what it is given.
*/
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "qn_outbox.h"

#define S_MAX_SENT  1000

typedef struct {
    char dir [128];
    qn_spool_t *spool;
    zhashx_t *attempts;
    qn_outbox_t *outbox;
    //  What the handlers saw
    size_t commit_due;
    size_t rooms;
    size_t pauses;              //  pause (true) calls
    size_t resumes;             //  pause (false) calls
    int refuse_after;           //  the send handler refuses from this many on; -1 = never
    size_t sent;
    qn_attempt_key_t sent_key [S_MAX_SENT];
    uint64_t sent_seq [S_MAX_SENT];
} fixture_t;

static int
s_send (void *arg, const void *data, size_t size)
{
    fixture_t *fix = (fixture_t *) arg;
    if (fix->refuse_after >= 0 && fix->sent >= (size_t) fix->refuse_after)
        return -1;
    Qanat__Event *event = qanat__event__unpack (NULL, size, (const uint8_t *) data);
    assert_non_null (event);
    assert_non_null (event->attempt);
    assert_true (fix->sent < S_MAX_SENT);
    fix->sent_key [fix->sent] = (qn_attempt_key_t) { event->attempt->run_id,
                                                     event->attempt->task_index,
                                                     event->attempt->attempt };
    fix->sent_seq [fix->sent] = event->seq;
    fix->sent++;
    qanat__event__free_unpacked (event, NULL);
    return 0;
}

static void
s_commit_due (void *arg)
{
    ((fixture_t *) arg)->commit_due++;
}

static void
s_pause (void *arg, bool paused)
{
    fixture_t *fix = (fixture_t *) arg;
    if (paused)
        fix->pauses++;
    else
        fix->resumes++;
}

static void
s_room (void *arg)
{
    ((fixture_t *) arg)->rooms++;
}

static void
s_open (fixture_t *fix, uint64_t spool_max, size_t limit)
{
    fix->spool = qn_spool_new (fix->dir, spool_max, 4096);
    assert_non_null (fix->spool);
    fix->attempts = qn_attempt_table_new ();
    assert_non_null (fix->attempts);
    qn_outbox_handlers_t handlers = { s_send, s_commit_due, s_pause, s_room };
    fix->outbox = qn_outbox_new (fix->spool, fix->attempts, limit, &handlers, fix);
    assert_non_null (fix->outbox);
}

static void
s_close (fixture_t *fix)
{
    qn_outbox_destroy (&fix->outbox);
    zhashx_destroy (&fix->attempts);
    qn_spool_destroy (&fix->spool);
}

static int
s_setup (void **state)
{
    fixture_t *fix = (fixture_t *) calloc (1, sizeof (fixture_t));
    assert_non_null (fix);
    snprintf (fix->dir, sizeof (fix->dir), "/tmp/qanat-test-outbox-XXXXXX");
    assert_non_null (mkdtemp (fix->dir));
    fix->refuse_after = -1;
    *state = fix;
    return 0;
}

static int
s_teardown (void **state)
{
    fixture_t *fix = (fixture_t *) *state;
    s_close (fix);
    char command [256];
    snprintf (command, sizeof (command), "rm -rf '%s'", fix->dir);
    int rc = system (command);
    free (fix);
    return rc == 0? 0: -1;
}

static qn_attempt_t *
s_attempt (fixture_t *fix, uint64_t run_id)
{
    qn_attempt_key_t key = { run_id, 0, 1 };
    qn_attempt_t *attempt = qn_attempt_create (fix->attempts, &key);
    assert_non_null (attempt);
    assert_int_equal (qn_attempt_advance (attempt, QN_ATTEMPT_RUNNING), 0);
    return attempt;
}

//  Posts a log line of size bytes
static void
s_post_log (fixture_t *fix, qn_attempt_t *attempt, size_t size)
{
    static uint8_t text [16384];
    memset (text, 'x', sizeof text);
    assert_true (size <= sizeof text);
    Qanat__LogChunk chunk = QANAT__LOG_CHUNK__INIT;
    chunk.data.data = text;
    chunk.data.len = size;
    Qanat__Event event = QANAT__EVENT__INIT;
    event.body_case = QANAT__EVENT__BODY_LOG;
    event.log = &chunk;
    qn_outbox_post (fix->outbox, attempt, &event);
}

static void
s_post_finished (fixture_t *fix, qn_attempt_t *attempt)
{
    Qanat__Finished finished = QANAT__FINISHED__INIT;
    finished.kind = QANAT__END_KIND__END_EXIT;
    Qanat__Event event = QANAT__EVENT__INIT;
    event.body_case = QANAT__EVENT__BODY_FINISHED;
    event.finished = &finished;
    qn_outbox_post (fix->outbox, attempt, &event);
    assert_int_equal (qn_attempt_advance (attempt, QN_ATTEMPT_ENDED), 0);
}

static int
s_count_event (const qn_attempt_key_t *key, uint64_t seq, const void *data, size_t size,
               void *arg)
{
    (void) key;
    (void) seq;
    (void) data;
    (void) size;
    (*(size_t *) arg)++;
    return 0;
}

static size_t
s_spooled (fixture_t *fix, const qn_attempt_key_t *key)
{
    size_t count = 0;
    assert_true (qn_spool_events (fix->spool, key, 0, s_count_event, &count) >= 0);
    return count;
}

//  Nothing is sent before it is committed; a commit takes the whole turn
static void
test_spooled_before_sent (void **state)
{
    fixture_t *fix = (fixture_t *) *state;
    s_open (fix, 0, 0);
    qn_attempt_t *attempt = s_attempt (fix, 1);
    for (int i = 0; i < 3; i++)
        s_post_log (fix, attempt, 10);
    assert_int_equal (fix->commit_due, 3);
    assert_int_equal (attempt->next_seq, 4);
    assert_int_equal (qn_outbox_pending (fix->outbox), 3);
    assert_int_equal (qn_outbox_flush (fix->outbox), 0);
    assert_int_equal (fix->sent, 0);
    assert_int_equal (s_spooled (fix, &attempt->key), 0);

    assert_int_equal (qn_outbox_commit (fix->outbox), 0);
    assert_int_equal (qn_outbox_pending (fix->outbox), 0);
    assert_int_equal (s_spooled (fix, &attempt->key), 3);
    assert_int_equal (attempt->committed, 3);
    qn_spool_meta_t meta;
    assert_int_equal (qn_spool_meta_get (fix->spool, &attempt->key, &meta), 0);
    assert_int_equal (meta.next_seq, 4);
    assert_false (meta.finished);

    assert_int_equal (qn_outbox_flush (fix->outbox), 0);
    assert_int_equal (fix->sent, 3);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal (fix->sent_seq [i], i + 1);
    assert_int_equal (qn_outbox_flush (fix->outbox), 0);
    assert_int_equal (fix->sent, 3);             //  each once per registration
}

//  A new registration replays exactly the unacknowledged events, each
//  attempt's in seq order; acknowledged ones leave the spool
static void
test_replay_and_ack (void **state)
{
    fixture_t *fix = (fixture_t *) *state;
    s_open (fix, 0, 0);
    qn_attempt_t *first = s_attempt (fix, 1);
    qn_attempt_t *second = s_attempt (fix, 2);
    for (int i = 0; i < 5; i++) {
        s_post_log (fix, first, 10);
        s_post_log (fix, second, 10);
    }
    assert_int_equal (qn_outbox_commit (fix->outbox), 0);
    assert_int_equal (qn_outbox_flush (fix->outbox), 0);
    assert_int_equal (fix->sent, 10);

    size_t due = fix->commit_due;
    qn_outbox_ack (fix->outbox, first, 2);
    qn_outbox_ack (fix->outbox, second, 4);
    assert_int_equal (fix->commit_due, due + 2);
    qn_outbox_ack (fix->outbox, second, 3);     //  behind: nothing to do
    assert_int_equal (fix->commit_due, due + 2);
    assert_int_equal (qn_outbox_commit (fix->outbox), 0);
    assert_int_equal (s_spooled (fix, &first->key), 3);
    assert_int_equal (s_spooled (fix, &second->key), 1);

    fix->sent = 0;
    assert_int_equal (qn_outbox_replay (fix->outbox), 4);
    assert_int_equal (qn_outbox_flush (fix->outbox), 0);
    assert_int_equal (fix->sent, 4);
    uint64_t expect_first [] = { 3, 4, 5 };
    size_t seen_first = 0;
    for (size_t i = 0; i < fix->sent; i++) {
        if (fix->sent_key [i].run_id == 1)
            assert_int_equal (fix->sent_seq [i], expect_first [seen_first++]);
        else
            assert_int_equal (fix->sent_seq [i], 5);
    }
    assert_int_equal (seen_first, 3);
}

//  An acknowledgement is capped at what is committed; an ended attempt
//  acknowledged in full leaves the spool and the table
static void
test_done (void **state)
{
    fixture_t *fix = (fixture_t *) *state;
    s_open (fix, 0, 0);
    qn_attempt_t *attempt = s_attempt (fix, 1);
    qn_attempt_key_t key = attempt->key;
    s_post_log (fix, attempt, 10);
    assert_int_equal (qn_outbox_commit (fix->outbox), 0);
    s_post_finished (fix, attempt);
    qn_outbox_ack (fix->outbox, attempt, 100);  //  only 1 is committed
    assert_int_equal (attempt->acked, 1);
    assert_int_equal (attempt->state, QN_ATTEMPT_ENDED);
    assert_int_equal (qn_outbox_commit (fix->outbox), 0);
    assert_int_equal (attempt->state, QN_ATTEMPT_SPOOLED);
    qn_spool_meta_t meta;
    assert_int_equal (qn_spool_meta_get (fix->spool, &key, &meta), 0);
    assert_true (meta.finished);
    assert_int_equal (qn_outbox_flush (fix->outbox), 0);
    assert_int_equal (fix->sent, 1);            //  the Finished (the log line was acked)
    assert_int_equal (fix->sent_seq [0], 2);

    qn_outbox_ack (fix->outbox, attempt, 2);
    assert_int_equal (attempt->state, QN_ATTEMPT_DONE);
    assert_int_equal (qn_outbox_commit (fix->outbox), 0);
    assert_null (qn_attempt_lookup (fix->attempts, &key));
    assert_int_equal (qn_spool_meta_get (fix->spool, &key, &meta), -1);
    assert_int_equal (s_spooled (fix, &key), 0);
}

//  A send refused stops the flush; the next one starts there
static void
test_send_refused (void **state)
{
    fixture_t *fix = (fixture_t *) *state;
    s_open (fix, 0, 0);
    qn_attempt_t *attempt = s_attempt (fix, 1);
    for (int i = 0; i < 5; i++)
        s_post_log (fix, attempt, 10);
    assert_int_equal (qn_outbox_commit (fix->outbox), 0);
    fix->refuse_after = 2;
    assert_int_equal (qn_outbox_flush (fix->outbox), -1);
    assert_int_equal (fix->sent, 2);
    assert_int_equal (attempt->sent, 2);
    fix->refuse_after = -1;
    assert_int_equal (qn_outbox_flush (fix->outbox), 0);
    assert_int_equal (fix->sent, 5);
    for (size_t i = 0; i < 5; i++)
        assert_int_equal (fix->sent_seq [i], i + 1);
}

//  Output pauses above the limit and resumes at three quarters of it
static void
test_output_limit (void **state)
{
    fixture_t *fix = (fixture_t *) *state;
    s_open (fix, 0, 4000);
    qn_attempt_t *attempt = s_attempt (fix, 1);
    for (int i = 0; i < 3; i++)
        s_post_log (fix, attempt, 1000);
    assert_int_equal (qn_outbox_commit (fix->outbox), 0);
    assert_int_equal (fix->pauses, 0);          //  about 3 KB
    s_post_log (fix, attempt, 1000);
    assert_int_equal (qn_outbox_commit (fix->outbox), 0);
    assert_int_equal (fix->pauses, 1);          //  about 4 KB: over
    assert_true (qn_outbox_paused (fix->outbox));
    assert_false (qn_outbox_full (fix->outbox));
    qn_outbox_ack (fix->outbox, attempt, 1);
    assert_int_equal (qn_outbox_commit (fix->outbox), 0);
    assert_int_equal (fix->resumes, 0);         //  about 3 KB: not under 3/4
    qn_outbox_ack (fix->outbox, attempt, 2);
    assert_int_equal (qn_outbox_commit (fix->outbox), 0);
    assert_int_equal (fix->resumes, 1);
    assert_false (qn_outbox_paused (fix->outbox));
    assert_int_equal (fix->rooms, 0);
}

//  A full spool: no new work, output paused; an event that does not fit
//  waits (holding back its attempt's later ones), none is dropped
static void
test_spool_full (void **state)
{
    fixture_t *fix = (fixture_t *) *state;
    s_open (fix, 64 * 1024, 0);                 //  the spool's smallest bound
    qn_attempt_t *attempt = s_attempt (fix, 1);
    for (int i = 0; i < 80; i++)
        s_post_log (fix, attempt, 1000);
    assert_int_equal (qn_outbox_commit (fix->outbox), 0);
    assert_true (qn_outbox_full (fix->outbox));
    assert_int_equal (fix->pauses, 1);
    assert_true (qn_outbox_pending (fix->outbox) > 0);
    uint64_t committed = attempt->committed;
    assert_true (committed > 0 && committed < 80);
    assert_int_equal (committed + qn_outbox_pending (fix->outbox), 80);
    //  A Finished may use the reserve
    s_post_finished (fix, attempt);
    assert_int_equal (qn_outbox_commit (fix->outbox), 0);
    assert_int_equal (attempt->committed, committed);       //  behind the waiting lines

    //  Acknowledgements make room: the rest goes in, in order
    uint64_t total = 81;
    while (attempt->committed < total) {
        uint64_t before = attempt->committed;
        qn_outbox_ack (fix->outbox, attempt, attempt->committed);
        assert_int_equal (qn_outbox_commit (fix->outbox), 0);
        assert_true (attempt->committed > before);
    }
    assert_int_equal (qn_outbox_pending (fix->outbox), 0);
    assert_int_equal (attempt->state, QN_ATTEMPT_SPOOLED);
    qn_outbox_ack (fix->outbox, attempt, total);
    assert_int_equal (qn_outbox_commit (fix->outbox), 0);
    assert_false (qn_outbox_full (fix->outbox));
    assert_int_equal (fix->rooms, 1);
    assert_int_equal (fix->resumes, 1);
    assert_int_equal (qn_outbox_bytes (fix->outbox), 0);
    assert_int_equal (zhashx_size (fix->attempts), 0);
}

static int
s_adopt (const qn_spool_meta_t *meta, void *arg)
{
    fixture_t *fix = (fixture_t *) arg;
    qn_attempt_t *attempt = qn_attempt_create (fix->attempts, &meta->key);
    assert_non_null (attempt);
    qn_outbox_adopt (fix->outbox, attempt, meta);
    return 0;
}

//  A later outbox on the same spool takes the attempts over: seqs go on,
//  and the replay sends what was not acknowledged
static void
test_adopt (void **state)
{
    fixture_t *fix = (fixture_t *) *state;
    s_open (fix, 0, 0);
    qn_attempt_t *attempt = s_attempt (fix, 1);
    qn_attempt_key_t key = attempt->key;
    for (int i = 0; i < 4; i++)
        s_post_log (fix, attempt, 10);
    assert_int_equal (qn_outbox_commit (fix->outbox), 0);
    qn_outbox_ack (fix->outbox, attempt, 1);
    assert_int_equal (qn_outbox_commit (fix->outbox), 0);
    s_close (fix);

    s_open (fix, 0, 0);
    assert_int_equal (qn_spool_metas (fix->spool, s_adopt, fix), 1);
    attempt = qn_attempt_lookup (fix->attempts, &key);
    assert_non_null (attempt);
    assert_int_equal (attempt->next_seq, 5);
    assert_int_equal (attempt->committed, 4);
    assert_int_equal (attempt->acked, 1);
    assert_int_equal (qn_outbox_replay (fix->outbox), 3);
    assert_int_equal (qn_outbox_flush (fix->outbox), 0);
    assert_int_equal (fix->sent, 3);
    assert_int_equal (fix->sent_seq [0], 2);
    assert_int_equal (fix->sent_seq [2], 4);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup_teardown (test_spooled_before_sent, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_replay_and_ack, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_done, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_send_refused, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_output_limit, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_spool_full, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_adopt, s_setup, s_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
