/*  Tests for qn_spool: the agent's durable spool of unacknowledged events.
    Each case works in its own temporary directory.
*/
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <lmdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "qn_spool.h"

typedef struct {
    char dir [128];
} fixture_t;

static int
s_setup (void **state)
{
    fixture_t *fix = (fixture_t *) calloc (1, sizeof (fixture_t));
    assert_non_null (fix);
    snprintf (fix->dir, sizeof (fix->dir), "/tmp/qanat-test-spool-XXXXXX");
    assert_non_null (mkdtemp (fix->dir));
    *state = fix;
    return 0;
}

static int
s_teardown (void **state)
{
    fixture_t *fix = (fixture_t *) *state;
    char command [256];
    snprintf (command, sizeof (command), "rm -rf '%s'", fix->dir);
    int rc = system (command);
    free (fix);
    return rc == 0? 0: -1;
}

//  Encodes a log event "text" of (key, seq) into buffer; returns its size.
static size_t
s_log_event (const qn_attempt_key_t *key, uint64_t seq, const char *text,
             uint8_t *buffer, size_t size)
{
    Qanat__AttemptRef ref = QANAT__ATTEMPT_REF__INIT;
    ref.run_id = key->run_id;
    ref.task_index = key->task_index;
    ref.attempt = key->attempt;
    Qanat__LogChunk chunk = QANAT__LOG_CHUNK__INIT;
    chunk.data.data = (uint8_t *) text;
    chunk.data.len = strlen (text);
    Qanat__Event event = QANAT__EVENT__INIT;
    event.attempt = &ref;
    event.seq = seq;
    event.body_case = QANAT__EVENT__BODY_LOG;
    event.log = &chunk;
    size_t packed = qanat__event__get_packed_size (&event);
    assert_true (packed <= size);
    qanat__event__pack (&event, buffer);
    return packed;
}

static size_t
s_finished_event (const qn_attempt_key_t *key, uint64_t seq, uint8_t *buffer, size_t size)
{
    Qanat__AttemptRef ref = QANAT__ATTEMPT_REF__INIT;
    ref.run_id = key->run_id;
    ref.task_index = key->task_index;
    ref.attempt = key->attempt;
    Qanat__Finished finished = QANAT__FINISHED__INIT;
    finished.exit_code = 3;
    Qanat__Event event = QANAT__EVENT__INIT;
    event.attempt = &ref;
    event.seq = seq;
    event.body_case = QANAT__EVENT__BODY_FINISHED;
    event.finished = &finished;
    size_t packed = qanat__event__get_packed_size (&event);
    assert_true (packed <= size);
    qanat__event__pack (&event, buffer);
    return packed;
}

static void
s_put_log (qn_spool_t *spool, const qn_attempt_key_t *key, uint64_t seq)
{
    char text [64];
    snprintf (text, sizeof (text), "line %llu of %llu/%u/%u", (unsigned long long) seq,
              (unsigned long long) key->run_id, key->task_index, key->attempt);
    uint8_t buffer [256];
    size_t size = s_log_event (key, seq, text, buffer, sizeof (buffer));
    assert_int_equal (qn_spool_put (spool, key, seq, buffer, size, false), 0);
}

//  Collects what qn_spool_events hands out
typedef struct {
    qn_attempt_key_t keys [256];
    uint64_t seqs [256];
    char texts [256][80];
    bool finished [256];
    size_t count;
    size_t stop_after;          //  0 = never
} collect_t;

static int
s_collect (const qn_attempt_key_t *key, uint64_t seq, const void *data, size_t size, void *arg)
{
    collect_t *c = (collect_t *) arg;
    assert_true (c->count < 256);
    c->keys [c->count] = *key;
    c->seqs [c->count] = seq;
    Qanat__Event *event = qanat__event__unpack (NULL, size, (const uint8_t *) data);
    assert_non_null (event);
    assert_int_equal (event->seq, seq);
    c->texts [c->count][0] = '\0';
    c->finished [c->count] = event->body_case == QANAT__EVENT__BODY_FINISHED;
    if (event->body_case == QANAT__EVENT__BODY_LOG)
        snprintf (c->texts [c->count], sizeof (c->texts [0]), "%.*s",
                  (int) event->log->data.len, (const char *) event->log->data.data);
    qanat__event__free_unpacked (event, NULL);
    c->count++;
    return c->stop_after && c->count >= c->stop_after? 1: 0;
}


//  ---------------------------------------------------------------------

static void
test_put_ack_order (void **state)
{
    fixture_t *fix = (fixture_t *) *state;
    qn_spool_t *spool = qn_spool_new (fix->dir, 0, 0);
    assert_non_null (spool);
    assert_int_equal (qn_spool_bytes (spool), 0);
    qn_attempt_key_t a = { 7, 1, 1 };
    qn_attempt_key_t b = { 7, 0, 2 };
    //  Interleaved, as two attempts talk at once; 300 > 255 checks the
    //  big-endian seq order
    uint64_t seqs [] = { 1, 2, 3, 4, 5, 300 };
    for (size_t i = 0; i < 6; i++) {
        s_put_log (spool, &a, seqs [i]);
        s_put_log (spool, &b, seqs [i]);
    }
    //  Nothing is visible before the commit
    collect_t *c = (collect_t *) calloc (1, sizeof (collect_t));
    assert_int_equal (qn_spool_events (spool, &a, 1, s_collect, c), 0);
    uint64_t staged = qn_spool_bytes (spool);
    assert_true (staged > 12 * QN_SPOOL_KEY_SIZE);
    assert_int_equal (qn_spool_committed_bytes (spool), 0);
    assert_int_equal (qn_spool_commit (spool), 0);
    assert_int_equal (qn_spool_committed_bytes (spool), staged);

    assert_int_equal (qn_spool_events (spool, &a, 1, s_collect, c), 6);
    for (size_t i = 0; i < 6; i++) {
        assert_int_equal (c->seqs [i], seqs [i]);
        assert_int_equal (c->keys [i].task_index, 1);
    }
    assert_string_equal (c->texts [0], "line 1 of 7/1/1");
    //  From a seq on
    c->count = 0;
    assert_int_equal (qn_spool_events (spool, &b, 4, s_collect, c), 3);
    assert_int_equal (c->seqs [0], 4);
    assert_int_equal (c->seqs [2], 300);
    //  Every attempt, in key order: task 0 before task 1
    c->count = 0;
    assert_int_equal (qn_spool_events (spool, NULL, 0, s_collect, c), 12);
    assert_int_equal (c->keys [0].task_index, 0);
    assert_int_equal (c->keys [6].task_index, 1);
    //  The callback can stop early
    c->count = 0;
    c->stop_after = 2;
    assert_int_equal (qn_spool_events (spool, &a, 1, s_collect, c), 2);
    c->stop_after = 0;

    //  Ack deletes seq <= 3 of a only
    assert_int_equal (qn_spool_ack (spool, &a, 3), 3);
    assert_int_equal (qn_spool_commit (spool), 0);
    assert_true (qn_spool_bytes (spool) < staged);
    c->count = 0;
    assert_int_equal (qn_spool_events (spool, &a, 0, s_collect, c), 3);
    assert_int_equal (c->seqs [0], 4);
    c->count = 0;
    assert_int_equal (qn_spool_events (spool, &b, 0, s_collect, c), 6);
    //  An older ack deletes nothing; one past the end deletes the rest
    assert_int_equal (qn_spool_ack (spool, &a, 2), 0);
    assert_int_equal (qn_spool_ack (spool, &a, 1000), 3);
    //  A neighbouring attempt (same run, next attempt) is untouched
    qn_attempt_key_t a2 = { 7, 1, 2 };
    s_put_log (spool, &a2, 1);
    assert_int_equal (qn_spool_ack (spool, &a, UINT64_MAX), 0);
    assert_int_equal (qn_spool_commit (spool), 0);
    c->count = 0;
    assert_int_equal (qn_spool_events (spool, &a2, 0, s_collect, c), 1);
    //  The same seq twice is refused
    uint8_t buffer [256];
    size_t size = s_log_event (&a2, 1, "again", buffer, sizeof (buffer));
    assert_int_equal (qn_spool_put (spool, &a2, 1, buffer, size, false), -1);
    assert_int_equal (errno, EEXIST);
    qn_spool_abort (spool);
    free (c);
    qn_spool_destroy (&spool);
    qn_spool_destroy (&spool);
    assert_null (spool);
}

static void
test_reopen (void **state)
{
    fixture_t *fix = (fixture_t *) *state;
    qn_spool_t *spool = qn_spool_new (fix->dir, 0, 0);
    assert_non_null (spool);
    //  A second agent on the same spool is refused
    qn_spool_t *other = qn_spool_new (fix->dir, 0, 0);
    assert_null (other);
    qn_attempt_key_t a = { 1, 2, 3 };
    for (uint64_t seq = 1; seq <= 10; seq++)
        s_put_log (spool, &a, seq);
    assert_int_equal (qn_spool_commit (spool), 0);
    uint64_t bytes = qn_spool_bytes (spool);
    //  Not committed: lost on close, as after a crash
    s_put_log (spool, &a, 11);
    qn_spool_destroy (&spool);

    spool = qn_spool_new (fix->dir, 0, 0);
    assert_non_null (spool);
    assert_int_equal (qn_spool_bytes (spool), bytes);
    //  The attempt's missing metadata counts as the one damaged record
    assert_int_equal (qn_spool_damaged (spool), 1);
    collect_t *c = (collect_t *) calloc (1, sizeof (collect_t));
    assert_int_equal (qn_spool_events (spool, &a, 0, s_collect, c), 10);
    assert_string_equal (c->texts [9], "line 10 of 1/2/3");
    //  The attempt had no metadata: it is rebuilt from its events
    qn_spool_meta_t meta;
    assert_int_equal (qn_spool_meta_get (spool, &a, &meta), 0);
    assert_int_equal (meta.next_seq, 11);
    assert_false (meta.finished);
    free (c);
    qn_spool_destroy (&spool);
}

static void
test_meta_round_trip (void **state)
{
    fixture_t *fix = (fixture_t *) *state;
    qn_spool_t *spool = qn_spool_new (fix->dir, 0, 0);
    assert_non_null (spool);
    qn_spool_meta_t meta;
    memset (&meta, 0, sizeof (meta));
    meta.key = (qn_attempt_key_t) { 0x0102030405060708ULL, 9, 4 };
    meta.pid = 12345;
    meta.start_time = 987654321;
    meta.next_seq = 42;
    meta.finished = true;
    snprintf (meta.task_name, sizeof (meta.task_name), "train-model");
    assert_int_equal (qn_spool_meta_put (spool, &meta), 0);
    qn_spool_meta_t other = meta;
    other.key.attempt = 5;
    other.finished = false;
    other.task_name [0] = '\0';
    //  An engine job that outlives the agent: its id and cursor come back
    snprintf (other.backend, sizeof (other.backend), "slurm");
    snprintf (other.engine_job_id, sizeof (other.engine_job_id), "4711");
    snprintf (other.cursor, sizeof (other.cursor), "120:0:33");
    snprintf (other.workdir, sizeof (other.workdir), "/shared/qanat/slurm/7-4-5/work");
    assert_int_equal (qn_spool_meta_put (spool, &other), 0);
    s_put_log (spool, &other.key, 1);
    s_put_log (spool, &other.key, 2);
    assert_int_equal (qn_spool_commit (spool), 0);
    qn_spool_destroy (&spool);

    spool = qn_spool_new (fix->dir, 0, 0);
    assert_non_null (spool);
    qn_spool_meta_t got;
    assert_int_equal (qn_spool_meta_get (spool, &meta.key, &got), 0);
    assert_int_equal (got.key.run_id, meta.key.run_id);
    assert_int_equal (got.key.task_index, 9);
    assert_int_equal (got.key.attempt, 4);
    assert_int_equal (got.pid, 12345);
    assert_int_equal (got.start_time, 987654321);
    assert_int_equal (got.next_seq, 42);
    assert_true (got.finished);
    assert_string_equal (got.task_name, "train-model");
    assert_string_equal (got.backend, "");
    assert_string_equal (got.engine_job_id, "");
    assert_string_equal (got.workdir, "");
    assert_int_equal (qn_spool_meta_get (spool, &other.key, &got), 0);
    assert_false (got.finished);
    assert_string_equal (got.task_name, "");
    assert_string_equal (got.backend, "slurm");
    assert_string_equal (got.engine_job_id, "4711");
    assert_string_equal (got.cursor, "120:0:33");
    assert_string_equal (got.workdir, "/shared/qanat/slurm/7-4-5/work");
    qn_attempt_key_t none = { 1, 1, 1 };
    assert_int_equal (qn_spool_meta_get (spool, &none, &got), -1);

    //  Deleting an attempt takes its events along
    uint64_t before = qn_spool_bytes (spool);
    assert_true (before > 0);
    assert_int_equal (qn_spool_meta_delete (spool, &other.key), 0);
    assert_int_equal (qn_spool_commit (spool), 0);
    assert_int_equal (qn_spool_bytes (spool), 0);
    assert_int_equal (qn_spool_meta_get (spool, &other.key, &got), -1);
    collect_t *c = (collect_t *) calloc (1, sizeof (collect_t));
    assert_int_equal (qn_spool_events (spool, NULL, 0, s_collect, c), 0);
    free (c);
    qn_spool_destroy (&spool);
}

static int
s_count_meta (const qn_spool_meta_t *meta, void *arg)
{
    (void) meta;
    (*(int *) arg)++;
    return 0;
}

static void
test_bound_and_reserve (void **state)
{
    fixture_t *fix = (fixture_t *) *state;
    //  64 KiB with an 8 KiB reserve
    qn_spool_t *spool = qn_spool_new (fix->dir, 64 * 1024, 8 * 1024);
    assert_non_null (spool);
    assert_int_equal (qn_spool_max (spool), 64 * 1024);
    assert_int_equal (qn_spool_reserve (spool), 8 * 1024);
    qn_attempt_key_t a = { 5, 0, 1 };
    char text [1001];
    memset (text, 'x', 1000);
    text [1000] = '\0';
    uint8_t buffer [1200];
    uint64_t seq = 1;
    while (true) {
        size_t size = s_log_event (&a, seq, text, buffer, sizeof (buffer));
        if (qn_spool_put (spool, &a, seq, buffer, size, false) == -1) {
            assert_int_equal (errno, ENOSPC);
            break;
        }
        seq++;
        assert_true (seq < 1000);
    }
    uint64_t normal = qn_spool_bytes (spool);
    assert_true (normal <= 56 * 1024);
    assert_true (normal > 54 * 1024);
    //  Finished events may use the reserve, up to the bound
    size_t finished_count = 0;
    while (true) {
        size_t size = s_finished_event (&a, seq, buffer, sizeof (buffer));
        if (qn_spool_put (spool, &a, seq, buffer, size, true) == -1) {
            assert_int_equal (errno, ENOSPC);
            break;
        }
        finished_count++;
        seq++;
        assert_true (finished_count < 10000);
    }
    assert_true (finished_count > 100);
    assert_true (qn_spool_bytes (spool) <= 64 * 1024);
    assert_true (qn_spool_bytes (spool) > 63 * 1024);
    //  The transaction survived the refusals
    assert_int_equal (qn_spool_commit (spool), 0);
    uint64_t full = qn_spool_bytes (spool);
    //  The bound holds across a reopen
    qn_spool_destroy (&spool);
    spool = qn_spool_new (fix->dir, 64 * 1024, 8 * 1024);
    assert_non_null (spool);
    assert_int_equal (qn_spool_bytes (spool), full);
    size_t size = s_finished_event (&a, seq, buffer, sizeof (buffer));
    assert_int_equal (qn_spool_put (spool, &a, seq, buffer, size, true), -1);
    //  Acknowledging makes room
    assert_true (qn_spool_ack (spool, &a, 20) == 20);
    assert_int_equal (qn_spool_put (spool, &a, seq, buffer, size, false), 0);
    assert_int_equal (qn_spool_commit (spool), 0);
    assert_true (qn_spool_bytes (spool) < full);
    int metas = 0;
    assert_int_equal (qn_spool_metas (spool, s_count_meta, &metas), 1);
    qn_spool_destroy (&spool);
}

//  A child writes batches of 50 events, reporting each committed batch on
//  a pipe, until it is killed with SIGKILL at some point mid-batch.
static void
s_writer (const char *dir, int report_fd)
{
    qn_spool_t *spool = qn_spool_new (dir, 0, 0);
    if (!spool)
        _exit (2);
    qn_attempt_key_t a = { 99, 0, 1 };
    uint64_t seq = 1;
    for (uint32_t batch = 1; ; batch++) {
        for (int i = 0; i < 50; i++) {
            uint8_t buffer [256];
            char text [64];
            snprintf (text, sizeof (text), "batch %u", batch);
            size_t size = s_log_event (&a, seq, text, buffer, sizeof (buffer));
            if (qn_spool_put (spool, &a, seq, buffer, size, false) == -1)
                _exit (3);
            seq++;
        }
        //  As the agent does: the metadata goes with the batch
        qn_spool_meta_t meta;
        memset (&meta, 0, sizeof (meta));
        meta.key = a;
        meta.next_seq = seq;
        if (qn_spool_meta_put (spool, &meta) == -1 || qn_spool_commit (spool) == -1)
            _exit (4);
        if (write (report_fd, &batch, sizeof (batch)) != sizeof (batch))
            _exit (5);
    }
}

typedef struct {
    uint64_t expect_seq;
    bool gap;
} s_scan_t;

static int
s_scan (const qn_attempt_key_t *key, uint64_t seq, const void *data, size_t size, void *arg)
{
    s_scan_t *scan = (s_scan_t *) arg;
    (void) key;
    (void) data;
    (void) size;
    if (seq != scan->expect_seq)
        scan->gap = true;
    scan->expect_seq = seq + 1;
    return 0;
}

static void
test_kill_mid_transaction (void **state)
{
    fixture_t *fix = (fixture_t *) *state;
    for (int round = 0; round < 3; round++) {
        int fds [2];
        assert_int_equal (pipe (fds), 0);
        pid_t pid = fork ();
        assert_true (pid >= 0);
        if (pid == 0) {
            close (fds [0]);
            s_writer (fix->dir, fds [1]);
        }
        close (fds [1]);
        //  Let it commit a few batches (bounded wait), then kill it
        uint32_t batch = 0;
        uint32_t reported = 0;
        int64_t deadline = zclock_mono () + 20000;
        while (reported < 3 + (uint32_t) round * 2 && zclock_mono () < deadline)
            if (read (fds [0], &batch, sizeof (batch)) == sizeof (batch))
                reported = batch;
        usleep (1000 * (unsigned) round);
        kill (pid, SIGKILL);
        int status;
        assert_int_equal (waitpid (pid, &status, 0), pid);
        assert_true (WIFSIGNALED (status));
        while (read (fds [0], &batch, sizeof (batch)) == sizeof (batch))
            reported = batch;
        close (fds [0]);
        assert_true (reported >= 3);

        //  Everything reported is there, in whole batches, without a gap
        qn_spool_t *spool = qn_spool_new (fix->dir, 0, 0);
        assert_non_null (spool);
        assert_int_equal (qn_spool_damaged (spool), 0);
        s_scan_t scan = { 1, false };
        qn_attempt_key_t a = { 99, 0, 1 };
        int count = qn_spool_events (spool, &a, 0, s_scan, &scan);
        assert_false (scan.gap);
        assert_true (count >= (int) reported * 50);
        assert_int_equal (count % 50, 0);
        //  At most the batch being reported when it died comes on top
        assert_true (count <= ((int) reported + 1) * 50);
        //  The metadata is from the same commit as the last batch
        qn_spool_meta_t meta;
        assert_int_equal (qn_spool_meta_get (spool, &a, &meta), 0);
        assert_int_equal (meta.next_seq, (uint64_t) count + 1);
        //  Start the next round from an empty spool
        assert_int_equal (qn_spool_meta_delete (spool, &a), 0);
        assert_int_equal (qn_spool_commit (spool), 0);
        qn_spool_destroy (&spool);
    }
}

//  Writes raw records with LMDB itself, as a damaged disk would have them.
static void
s_raw_put (const char *dir, const char *db, const void *key, size_t key_size,
           const void *value, size_t value_size)
{
    MDB_env *env;
    assert_int_equal (mdb_env_create (&env), 0);
    assert_int_equal (mdb_env_set_maxdbs (env, 4), 0);
    assert_int_equal (mdb_env_set_mapsize (env, 2 * QN_SPOOL_DEFAULT_MAX + 64 * 1024 * 1024), 0);
    assert_int_equal (mdb_env_open (env, dir, MDB_NOTLS, 0600), 0);
    MDB_txn *txn;
    assert_int_equal (mdb_txn_begin (env, NULL, 0, &txn), 0);
    MDB_dbi dbi;
    assert_int_equal (mdb_dbi_open (txn, db, MDB_CREATE, &dbi), 0);
    MDB_val k = { key_size, (void *) key };
    MDB_val v = { value_size, (void *) value };
    assert_int_equal (mdb_put (txn, dbi, &k, &v, 0), 0);
    assert_int_equal (mdb_txn_commit (txn), 0);
    mdb_env_close (env);
}

static void
s_raw_key (const qn_attempt_key_t *key, uint64_t seq, uint8_t *raw)
{
    for (int i = 0; i < 8; i++)
        raw [i] = (uint8_t) (key->run_id >> (56 - 8 * i));
    for (int i = 0; i < 4; i++)
        raw [8 + i] = (uint8_t) (key->task_index >> (24 - 8 * i));
    for (int i = 0; i < 4; i++)
        raw [12 + i] = (uint8_t) (key->attempt >> (24 - 8 * i));
    for (int i = 0; i < 8; i++)
        raw [16 + i] = (uint8_t) (seq >> (56 - 8 * i));
}

static void
test_damaged_records (void **state)
{
    fixture_t *fix = (fixture_t *) *state;
    qn_spool_t *spool = qn_spool_new (fix->dir, 0, 0);
    assert_non_null (spool);
    qn_attempt_key_t a = { 3, 0, 1 };
    qn_spool_meta_t meta;
    memset (&meta, 0, sizeof (meta));
    meta.key = a;
    meta.next_seq = 5;
    assert_int_equal (qn_spool_meta_put (spool, &meta), 0);
    for (uint64_t seq = 1; seq <= 4; seq++)
        s_put_log (spool, &a, seq);
    assert_int_equal (qn_spool_commit (spool), 0);
    qn_spool_destroy (&spool);

    uint8_t raw [QN_SPOOL_KEY_SIZE];
    //  Garbage in place of event 2
    s_raw_key (&a, 2, raw);
    s_raw_put (fix->dir, "events", raw, sizeof (raw), "\xff\xff\xff garbage", 11);
    //  A valid event with the wrong seq in place of event 3
    uint8_t buffer [256];
    size_t size = s_log_event (&a, 77, "wrong seq", buffer, sizeof (buffer));
    s_raw_key (&a, 3, raw);
    s_raw_put (fix->dir, "events", raw, sizeof (raw), buffer, size);
    //  An empty value for a new event 5 (past the metadata's next seq)
    s_raw_key (&a, 5, raw);
    s_raw_put (fix->dir, "events", raw, sizeof (raw), "", 0);
    //  A key of the wrong size
    s_raw_put (fix->dir, "events", "short", 5, buffer, size);
    //  Garbage metadata for another attempt, whose one event is a Finished
    qn_attempt_key_t b = { 3, 1, 1 };
    s_raw_key (&b, 0, raw);
    s_raw_put (fix->dir, "attempts", raw, 16, "QM\x01\x00 too short", 13);
    size = s_finished_event (&b, 1, buffer, sizeof (buffer));
    s_raw_key (&b, 1, raw);
    s_raw_put (fix->dir, "events", raw, sizeof (raw), buffer, size);
    //  Metadata with a key of the wrong size
    s_raw_put (fix->dir, "attempts", "odd", 3, "QM", 2);

    spool = qn_spool_new (fix->dir, 0, 0);
    assert_non_null (spool);
    assert_true (qn_spool_damaged (spool) >= 6);
    collect_t *c = (collect_t *) calloc (1, sizeof (collect_t));
    assert_int_equal (qn_spool_events (spool, &a, 0, s_collect, c), 5);
    for (size_t i = 0; i < 5; i++)
        assert_int_equal (c->seqs [i], i + 1);
    assert_string_equal (c->texts [0], "line 1 of 3/0/1");
    assert_non_null (strstr (c->texts [1], "event 2 of this attempt was damaged"));
    assert_non_null (strstr (c->texts [2], "event 3 of this attempt was damaged"));
    assert_string_equal (c->texts [3], "line 4 of 3/0/1");
    assert_non_null (strstr (c->texts [4], "event 5 of this attempt was damaged"));
    //  Metadata rebuilt to cover what is there
    qn_spool_meta_t got;
    assert_int_equal (qn_spool_meta_get (spool, &a, &got), 0);
    assert_int_equal (got.next_seq, 6);
    assert_int_equal (qn_spool_meta_get (spool, &b, &got), 0);
    assert_int_equal (got.next_seq, 2);
    assert_true (got.finished);
    int metas = 0;
    assert_int_equal (qn_spool_metas (spool, s_count_meta, &metas), 2);
    //  Every event counted once: a second open finds nothing to repair
    uint64_t bytes = qn_spool_bytes (spool);
    qn_spool_destroy (&spool);
    spool = qn_spool_new (fix->dir, 0, 0);
    assert_non_null (spool);
    assert_int_equal (qn_spool_damaged (spool), 0);
    assert_int_equal (qn_spool_bytes (spool), bytes);
    c->count = 0;
    assert_int_equal (qn_spool_events (spool, NULL, 0, s_collect, c), 6);
    free (c);
    qn_spool_destroy (&spool);
}

static void
test_bad_directory (void **state)
{
    (void) state;
    assert_null (qn_spool_new ("/nonexistent/qanat/spool", 0, 0));
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup_teardown (test_put_ack_order, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_reopen, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_meta_round_trip, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_bound_and_reserve, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_kill_mid_transaction, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_damaged_records, s_setup, s_teardown),
        cmocka_unit_test (test_bad_directory),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
