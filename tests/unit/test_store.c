/*  Unit tests for qn_store: every test gets its own temporary directory,
    removed afterwards. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "qn_store.h"
#include "qn_store_internal.h"     //  store_scan, tested directly

typedef struct {
    char root [256];            //  the mkdtemp directory
    char dir [300];             //  the store directory inside it (created by the store)
} fixture_t;

static int
s_setup (void **state)
{
    fixture_t *fixture = (fixture_t *) calloc (1, sizeof (fixture_t));
    assert_non_null (fixture);
    const char *tmp = getenv ("TMPDIR");
    snprintf (fixture->root, sizeof fixture->root, "%s/qn_store_test.XXXXXX", tmp && *tmp? tmp: "/tmp");
    assert_non_null (mkdtemp (fixture->root));
    snprintf (fixture->dir, sizeof fixture->dir, "%s/store", fixture->root);
    *state = fixture;
    return 0;
}

static int
s_remove_entry (const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) st; (void) flag; (void) ftw;
    return remove (path);
}

static int
s_teardown (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    nftw (fixture->root, s_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    free (fixture);
    unsetenv ("QANAT_STORE_MAP_SIZE");
    return 0;
}

static qn_store_t *
s_open (fixture_t *fixture)
{
    char *error = NULL;
    qn_store_t *store = qn_store_new (fixture->dir, true, &error);
    if (!store) {
        char message [1100];
        snprintf (message, sizeof message, "%s", error? error: "(no message)");
        free (error);
        fail_msg ("qn_store_new: %s", message);
    }
    assert_null (error);
    return store;
}

static Qanat__RunInfo
s_run (uint64_t run_id, const char *workflow, Qanat__RunStatus status)
{
    Qanat__RunInfo run = QANAT__RUN_INFO__INIT;
    run.run_id = run_id;
    run.workflow = (char *) workflow;
    run.version = 1;
    run.status = status;
    run.created_us = 1000 + (int64_t) run_id;
    return run;
}

static void
s_put_run (qn_store_t *store, uint64_t run_id, const char *workflow, Qanat__RunStatus status)
{
    Qanat__RunInfo run = s_run (run_id, workflow, status);
    assert_int_equal (qn_store_put_run (store, &run), 0);
}

static uint64_t
s_append_log (qn_store_t *store, uint64_t run_id, const char *task, uint32_t attempt,
              const char *text)
{
    Qanat__LogChunk chunk = QANAT__LOG_CHUNK__INIT;
    chunk.data.data = (uint8_t *) text;
    chunk.data.len = strlen (text);
    Qanat__LogLine line = QANAT__LOG_LINE__INIT;
    line.task = (char *) task;
    line.attempt = attempt;
    line.chunk = &chunk;
    uint64_t seq = 0;
    assert_int_equal (qn_store_append_log (store, run_id, &line, &seq), 0);
    return seq;
}

static void
s_free (void *msg)
{
    protobuf_c_message_free_unpacked ((ProtobufCMessage *) msg, NULL);
}

//  Writes raw bytes into one sub-database with LMDB directly, the store
//  being closed, to play a newer qanatd or a damaged disk.
//  A write transaction on sub-database db; commit and close with
//  s_raw_close.
static MDB_txn *
s_raw_open (fixture_t *fixture, const char *db, MDB_dbi *dbi_p)
{
    MDB_env *env;
    MDB_txn *txn;
    assert_int_equal (mdb_env_create (&env), 0);
    assert_int_equal (mdb_env_set_maxdbs (env, 32), 0);
    //  Otherwise LMDB takes the store's recorded map size, which may be
    //  more than this process can map (under valgrind)
    assert_int_equal (mdb_env_set_mapsize (env, 1 << 20), 0);
    assert_int_equal (mdb_env_open (env, fixture->dir, 0, 0600), 0);
    assert_int_equal (mdb_txn_begin (env, NULL, 0, &txn), 0);
    assert_int_equal (mdb_dbi_open (txn, db, 0, dbi_p), 0);
    return txn;
}

static void
s_raw_close (MDB_txn *txn)
{
    MDB_env *env = mdb_txn_env (txn);
    assert_int_equal (mdb_txn_commit (txn), 0);
    mdb_env_close (env);
}

static void
s_raw_put (fixture_t *fixture, const char *db, const void *key, size_t key_size,
           const void *value, size_t value_size)
{
    MDB_dbi dbi;
    MDB_txn *txn = s_raw_open (fixture, db, &dbi);
    MDB_val k = { key_size, (void *) key }, v = { value_size, (void *) value };
    assert_int_equal (mdb_put (txn, dbi, &k, &v, 0), 0);
    s_raw_close (txn);
}

static void
s_be64 (uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p [i] = (uint8_t) v;
}

//  Reads one raw value with LMDB directly, the store being closed: a
//  malloc'd copy in *value_p.
static void
s_raw_get (fixture_t *fixture, const char *db, const void *key, size_t key_size,
           uint8_t **value_p, size_t *value_size_p)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    assert_int_equal (mdb_env_create (&env), 0);
    assert_int_equal (mdb_env_set_maxdbs (env, 32), 0);
    assert_int_equal (mdb_env_set_mapsize (env, 1 << 20), 0);
    assert_int_equal (mdb_env_open (env, fixture->dir, MDB_RDONLY, 0600), 0);
    assert_int_equal (mdb_txn_begin (env, NULL, MDB_RDONLY, &txn), 0);
    assert_int_equal (mdb_dbi_open (txn, db, 0, &dbi), 0);
    MDB_val k = { key_size, (void *) key }, v;
    assert_int_equal (mdb_get (txn, dbi, &k, &v), 0);
    *value_p = (uint8_t *) malloc (v.mv_size + 1);
    assert_non_null (*value_p);
    memcpy (*value_p, v.mv_data, v.mv_size);
    *value_size_p = v.mv_size;
    mdb_txn_abort (txn);
    mdb_env_close (env);
}

//  --------------------------------------------------------------------

static void
test_open_reopen (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    qn_store_t *store = s_open (fixture);
    struct stat st;
    assert_int_equal (stat (fixture->dir, &st), 0);
    assert_true (S_ISDIR (st.st_mode));
    assert_int_equal (st.st_mode & 0777, 0700);
    assert_false (qn_store_in_txn (store));

    assert_int_equal (qn_store_begin (store), 0);
    assert_true (qn_store_in_txn (store));
    uint32_t version = 0;
    bool created = false;
    assert_int_equal (qn_store_put_workflow (store, "etl", "etl.yaml", "tasks: {}\n", 10,
                                             &version, &created), 0);
    uint64_t run_id = 0;
    assert_int_equal (qn_store_new_run_id (store, &run_id), 0);
    assert_int_equal (run_id, 1);
    Qanat__Param param = QANAT__PARAM__INIT;
    param.name = "day";
    param.value = "2024-01-01";
    Qanat__Param *params [] = { &param };
    Qanat__TaskInfo task = QANAT__TASK_INFO__INIT;
    task.name = "extract";
    Qanat__TaskInfo *tasks [] = { &task };
    Qanat__RunInfo run = s_run (run_id, "etl", QANAT__RUN_STATUS__RUN_RUNNING);
    run.version = version;
    run.n_params = 1;
    run.params = params;
    run.n_tasks = 1;
    run.tasks = tasks;
    assert_int_equal (qn_store_put_run (store, &run), 0);
    //  The caller's struct is untouched
    assert_int_equal (run.n_tasks, 1);
    assert_ptr_equal (run.tasks, tasks);
    assert_int_equal (qn_store_commit (store), 0);
    assert_false (qn_store_in_txn (store));
    //  Commit with nothing open is a no-op
    assert_int_equal (qn_store_commit (store), 0);
    qn_store_destroy (&store);
    assert_null (store);
    qn_store_destroy (&store);

    store = s_open (fixture);
    Qanat__RunInfo *got = qn_store_get_run (store, 1);
    assert_non_null (got);
    assert_int_equal (got->run_id, 1);
    assert_string_equal (got->workflow, "etl");
    assert_int_equal (got->version, 1);
    assert_int_equal (got->status, QANAT__RUN_STATUS__RUN_RUNNING);
    assert_int_equal (got->created_us, 1001);
    assert_int_equal (got->n_params, 1);
    assert_string_equal (got->params [0]->name, "day");
    assert_string_equal (got->params [0]->value, "2024-01-01");
    assert_int_equal (got->n_tasks, 0);
    s_free (got);
    Qanat__SubmitWorkflow *submit = qn_store_get_workflow (store, "etl", 1);
    assert_non_null (submit);
    assert_string_equal (submit->filename, "etl.yaml");
    assert_int_equal (submit->source.len, 10);
    assert_memory_equal (submit->source.data, "tasks: {}\n", 10);
    s_free (submit);
    assert_null (qn_store_get_run (store, 2));
    qn_store_destroy (&store);

    //  A non-durable store keeps what it committed across a clean close
    char *error = NULL;
    store = qn_store_new (fixture->dir, false, &error);
    assert_non_null (store);
    assert_int_equal (qn_store_begin (store), 0);
    s_put_run (store, 2, "etl", QANAT__RUN_STATUS__RUN_QUEUED);
    assert_int_equal (qn_store_commit (store), 0);
    qn_store_destroy (&store);
    store = s_open (fixture);
    got = qn_store_get_run (store, 2);
    assert_non_null (got);
    s_free (got);
    qn_store_destroy (&store);
}

static void
test_open_failures (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    //  A regular file where the directory should be
    char path [400];
    snprintf (path, sizeof path, "%s/file", fixture->root);
    FILE *file = fopen (path, "w");
    assert_non_null (file);
    fputs ("not a store\n", file);
    fclose (file);
    char *error = NULL;
    assert_null (qn_store_new (path, true, &error));
    assert_non_null (error);
    assert_non_null (strstr (error, "not a directory"));
    free (error);

    //  Below a file: mkdir fails
    char below [420];
    snprintf (below, sizeof below, "%s/sub", path);
    error = NULL;
    assert_null (qn_store_new (below, true, &error));
    assert_non_null (error);
    assert_non_null (strstr (error, "cannot create"));
    free (error);

    //  A directory whose data file is garbage
    char garbage [400];
    snprintf (garbage, sizeof garbage, "%s/garbage", fixture->root);
    assert_int_equal (mkdir (garbage, 0700), 0);
    char data [450];
    snprintf (data, sizeof data, "%s/data.mdb", garbage);
    file = fopen (data, "w");
    assert_non_null (file);
    for (int i = 0; i < 4096; i++)
        fputc ('x', file);
    fclose (file);
    error = NULL;
    assert_null (qn_store_new (garbage, true, &error));
    assert_non_null (error);
    assert_non_null (strstr (error, "cannot open store"));
    free (error);

    //  Empty name, and a NULL error_p is allowed
    assert_null (qn_store_new ("", true, NULL));
}

static void
test_abort_loses_writes (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    qn_store_t *store = s_open (fixture);
    assert_int_equal (qn_store_begin (store), 0);
    s_put_run (store, 1, "a", QANAT__RUN_STATUS__RUN_QUEUED);
    assert_int_equal (qn_store_commit (store), 0);

    assert_int_equal (qn_store_begin (store), 0);
    s_put_run (store, 2, "a", QANAT__RUN_STATUS__RUN_QUEUED);
    qn_store_abort (store);
    assert_false (qn_store_in_txn (store));
    assert_null (qn_store_get_run (store, 2));
    Qanat__RunInfo *run = qn_store_get_run (store, 1);
    assert_non_null (run);
    s_free (run);
    qn_store_abort (store);     //  nothing open: harmless

    //  Destroying with an open transaction drops it too
    assert_int_equal (qn_store_begin (store), 0);
    s_put_run (store, 3, "a", QANAT__RUN_STATUS__RUN_QUEUED);
    qn_store_destroy (&store);
    store = s_open (fixture);
    assert_null (qn_store_get_run (store, 3));
    uint64_t *ids;
    size_t count;
    assert_int_equal (qn_store_active_runs (store, &ids, &count), 0);
    assert_int_equal (count, 1);
    assert_int_equal (ids [0], 1);
    free (ids);
    qn_store_destroy (&store);
}

//  The notifications' outbox: a run's entries in channel order, every
//  run's newest first, and the pending index following the state
static void
test_notif_outbox (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    qn_store_t *store = s_open (fixture);
    assert_int_equal (qn_store_begin (store), 0);
    for (uint64_t run = 1; run <= 3; run++)
        for (uint32_t channel = 0; channel < 2; channel++) {
            Qanat__NotifEntry entry = QANAT__NOTIF_ENTRY__INIT;
            entry.run_id = run;
            entry.channel = channel;
            entry.kind = channel? "slack": "webhook";
            entry.state = run == 2? "delivered": "pending";
            assert_int_equal (qn_store_put_notif (store, &entry), 0);
        }
    assert_int_equal (qn_store_commit (store), 0);

    Qanat__NotifEntry **entries = NULL;
    size_t count = 0;
    assert_int_equal (qn_store_list_notifs (store, 3, 0, &entries, &count), 0);
    assert_int_equal (count, 2);
    assert_int_equal (entries [0]->run_id, 3);
    assert_int_equal (entries [0]->channel, 0);
    assert_string_equal (entries [1]->kind, "slack");
    qn_store_free_array (entries, count);
    assert_int_equal (qn_store_list_notifs (store, 0, 3, &entries, &count), 0);
    assert_int_equal (count, 3);
    assert_int_equal (entries [0]->run_id, 3);
    assert_int_equal (entries [2]->run_id, 2);
    qn_store_free_array (entries, count);
    assert_int_equal (qn_store_list_notifs (store, 9, 0, &entries, &count), 0);
    assert_int_equal (count, 0);
    free (entries);

    //  Pending: runs 1 and 3; delivering one takes it off the index
    assert_int_equal (qn_store_pending_notifs (store, 10, NULL, NULL, &entries, &count), 0);
    assert_int_equal (count, 4);
    assert_int_equal (entries [0]->run_id, 1);
    assert_int_equal (entries [3]->run_id, 3);
    qn_store_free_array (entries, count);
    Qanat__NotifEntry *entry = qn_store_get_notif (store, 1, 1);
    assert_non_null (entry);
    char *was = entry->state;           //  the unpacked string, put back before freeing
    entry->state = "delivered";
    assert_int_equal (qn_store_begin (store), 0);
    assert_int_equal (qn_store_put_notif (store, entry), 0);
    assert_int_equal (qn_store_commit (store), 0);
    entry->state = was;
    protobuf_c_message_free_unpacked (&entry->base, NULL);
    assert_int_equal (qn_store_pending_notifs (store, 10, NULL, NULL, &entries, &count), 0);
    assert_int_equal (count, 3);
    qn_store_free_array (entries, count);
    assert_null (qn_store_get_notif (store, 7, 0));
    qn_store_destroy (&store);
}

//  A process killed with a transaction open: what it committed is there,
//  what it had not committed is not, and the store opens without help.
static void
test_crash_recovery (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    //  The parent does the killing, so that nothing in the child (valgrind
    //  included) gets to run exit handlers
    int ready [2];
    assert_int_equal (pipe (ready), 0);
    pid_t pid = fork ();
    assert_true (pid >= 0);
    if (pid == 0) {
        close (ready [0]);
        char *error = NULL;
        qn_store_t *store = qn_store_new (fixture->dir, true, &error);
        if (!store)
            _exit (2);
        Qanat__RunInfo run = s_run (1, "w", QANAT__RUN_STATUS__RUN_RUNNING);
        if (qn_store_begin (store) || qn_store_put_run (store, &run) || qn_store_commit (store))
            _exit (3);
        run.run_id = 2;
        if (qn_store_begin (store) || qn_store_put_run (store, &run))
            _exit (4);
        if (write (ready [1], "k", 1) != 1)
            _exit (5);
        while (true)
            pause ();
    }
    close (ready [1]);
    char byte;
    assert_int_equal (read (ready [0], &byte, 1), 1);
    close (ready [0]);
    assert_int_equal (kill (pid, SIGKILL), 0);
    int status;
    assert_int_equal (waitpid (pid, &status, 0), pid);
    assert_true (WIFSIGNALED (status));
    assert_int_equal (WTERMSIG (status), SIGKILL);

    qn_store_t *store = s_open (fixture);
    Qanat__RunInfo *run = qn_store_get_run (store, 1);
    assert_non_null (run);
    s_free (run);
    assert_null (qn_store_get_run (store, 2));
    assert_int_equal (qn_store_begin (store), 0);
    s_put_run (store, 2, "w", QANAT__RUN_STATUS__RUN_QUEUED);
    assert_int_equal (qn_store_commit (store), 0);
    qn_store_destroy (&store);
}

static void
test_reads_see_open_txn (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    qn_store_t *store = s_open (fixture);
    assert_int_equal (qn_store_begin (store), 0);
    //  begin twice keeps the same transaction
    assert_int_equal (qn_store_begin (store), 0);
    s_put_run (store, 7, "w", QANAT__RUN_STATUS__RUN_RUNNING);
    Qanat__RunInfo *run = qn_store_get_run (store, 7);
    assert_non_null (run);
    assert_string_equal (run->workflow, "w");
    s_free (run);
    assert_int_equal (s_append_log (store, 7, "t", 1, "hello"), 1);
    Qanat__LogLine **lines;
    size_t count;
    uint64_t last;
    assert_int_equal (qn_store_read_logs (store, 7, 0, NULL, 0, 0, &lines, &count, &last), 0);
    assert_int_equal (count, 1);
    assert_int_equal (last, 1);
    qn_store_free_array (lines, count);
    Qanat__RunList *list = qn_store_list_runs (store, "w", 0);
    assert_non_null (list);
    assert_int_equal (list->n_runs, 1);
    s_free (list);
    assert_int_equal (qn_store_commit (store), 0);
    run = qn_store_get_run (store, 7);
    assert_non_null (run);
    s_free (run);
    qn_store_destroy (&store);
}

static void
test_workflow_versions (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    qn_store_t *store = s_open (fixture);
    uint32_t version = 0;
    bool created = false;
    const char *v1 = "name: a\n";
    const char *v2 = "name: a\ntasks: []\n";
    assert_int_equal (qn_store_begin (store), 0);
    assert_int_equal (qn_store_put_workflow (store, "a", "a.yaml", v1, strlen (v1),
                                             &version, &created), 0);
    assert_int_equal (version, 1);
    assert_true (created);
    //  Same text (even under another filename) is the same version
    assert_int_equal (qn_store_put_workflow (store, "a", "other.yaml", v1, strlen (v1),
                                             &version, &created), 0);
    assert_int_equal (version, 1);
    assert_false (created);
    //  A prefix of the text is a change
    assert_int_equal (qn_store_put_workflow (store, "a", "a.yaml", v1, strlen (v1) - 1,
                                             &version, &created), 0);
    assert_int_equal (version, 2);
    assert_true (created);
    assert_int_equal (qn_store_put_workflow (store, "a", "a.yaml", v2, strlen (v2),
                                             &version, &created), 0);
    assert_int_equal (version, 3);
    assert_true (created);
    //  Another workflow whose name extends this one counts on its own
    assert_int_equal (qn_store_put_workflow (store, "ab", "ab.yaml", v2, strlen (v2),
                                             &version, &created), 0);
    assert_int_equal (version, 1);
    assert_true (created);
    //  Bad names are refused, not crashed on
    assert_int_equal (qn_store_put_workflow (store, "", "x", v1, strlen (v1), &version, &created), -1);
    assert_int_equal (qn_store_put_workflow (store, NULL, "x", v1, strlen (v1), &version, &created), -1);
    char longname [2000];
    memset (longname, 'n', sizeof longname - 1);
    longname [sizeof longname - 1] = 0;
    assert_int_equal (qn_store_put_workflow (store, longname, "x", v1, strlen (v1), &version, &created), -1);
    assert_non_null (strstr (qn_store_error (store), "too long"));
    assert_int_equal (qn_store_commit (store), 0);

    //  Back to v1 after reopen: a new version again
    qn_store_destroy (&store);
    store = s_open (fixture);
    assert_int_equal (qn_store_begin (store), 0);
    assert_int_equal (qn_store_put_workflow (store, "a", "a.yaml", v1, strlen (v1),
                                             &version, &created), 0);
    assert_int_equal (version, 4);
    assert_true (created);
    assert_int_equal (qn_store_commit (store), 0);

    Qanat__SubmitWorkflow *submit = qn_store_get_workflow (store, "a", 3);
    assert_non_null (submit);
    assert_int_equal (submit->source.len, strlen (v2));
    assert_memory_equal (submit->source.data, v2, strlen (v2));
    s_free (submit);
    submit = qn_store_get_workflow (store, "a", 2);
    assert_non_null (submit);
    assert_int_equal (submit->source.len, strlen (v1) - 1);
    s_free (submit);
    //  0 = latest
    submit = qn_store_get_workflow (store, "a", 0);
    assert_non_null (submit);
    assert_int_equal (submit->source.len, strlen (v1));
    s_free (submit);
    assert_null (qn_store_get_workflow (store, "a", 5));
    assert_null (qn_store_get_workflow (store, "nope", 1));
    assert_null (qn_store_get_workflow (store, "nope", 0));
    assert_null (qn_store_get_workflow (store, NULL, 1));
    qn_store_destroy (&store);
}

static void
test_run_ids (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    qn_store_t *store = s_open (fixture);
    uint64_t id;
    assert_int_equal (qn_store_begin (store), 0);
    for (uint64_t expected = 1; expected <= 3; expected++) {
        assert_int_equal (qn_store_new_run_id (store, &id), 0);
        assert_int_equal (id, expected);
    }
    assert_int_equal (qn_store_commit (store), 0);
    qn_store_destroy (&store);
    store = s_open (fixture);
    assert_int_equal (qn_store_begin (store), 0);
    assert_int_equal (qn_store_new_run_id (store, &id), 0);
    assert_int_equal (id, 4);
    assert_int_equal (qn_store_commit (store), 0);
    assert_int_equal (qn_store_begin (store), 0);
    assert_int_equal (qn_store_new_run_id (store, &id), 0);
    assert_int_equal (id, 5);
    qn_store_destroy (&store);  //  uncommitted: 5 is handed out again
    store = s_open (fixture);
    assert_int_equal (qn_store_begin (store), 0);
    assert_int_equal (qn_store_new_run_id (store, &id), 0);
    assert_int_equal (id, 5);
    qn_store_destroy (&store);
}

static void
test_list_runs (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    qn_store_t *store = s_open (fixture);
    assert_int_equal (qn_store_begin (store), 0);
    //  Ids above 255 check that the order is numeric, not by low byte
    const char *workflows [] = { "a", "b", "a", "ab", "a", "b" };
    const uint64_t ids [] = { 1, 2, 3, 300, 256, 1000 };
    for (int i = 0; i < 6; i++)
        s_put_run (store, ids [i], workflows [i], QANAT__RUN_STATUS__RUN_SUCCEEDED);
    assert_int_equal (qn_store_commit (store), 0);

    Qanat__RunList *list = qn_store_list_runs (store, "a", 0);
    assert_non_null (list);
    assert_int_equal (list->n_runs, 3);
    assert_int_equal (list->runs [0]->run_id, 256);
    assert_int_equal (list->runs [1]->run_id, 3);
    assert_int_equal (list->runs [2]->run_id, 1);
    for (size_t i = 0; i < list->n_runs; i++)
        assert_string_equal (list->runs [i]->workflow, "a");
    s_free (list);

    list = qn_store_list_runs (store, "b", 1);
    assert_non_null (list);
    assert_int_equal (list->n_runs, 1);
    assert_int_equal (list->runs [0]->run_id, 1000);
    s_free (list);

    list = qn_store_list_runs (store, "ab", 0);
    assert_non_null (list);
    assert_int_equal (list->n_runs, 1);
    assert_int_equal (list->runs [0]->run_id, 300);
    s_free (list);

    list = qn_store_list_runs (store, "zzz", 0);
    assert_non_null (list);
    assert_int_equal (list->n_runs, 0);
    s_free (list);

    //  Every workflow, newest first, with and without limit
    const uint64_t all [] = { 1000, 300, 256, 3, 2, 1 };
    list = qn_store_list_runs (store, NULL, 0);
    assert_non_null (list);
    assert_int_equal (list->n_runs, 6);
    for (int i = 0; i < 6; i++)
        assert_int_equal (list->runs [i]->run_id, all [i]);
    s_free (list);
    list = qn_store_list_runs (store, "", 4);
    assert_non_null (list);
    assert_int_equal (list->n_runs, 4);
    assert_int_equal (list->runs [3]->run_id, 3);
    s_free (list);

    //  Default limit is 50
    assert_int_equal (qn_store_begin (store), 0);
    for (uint64_t id = 2000; id < 2060; id++)
        s_put_run (store, id, "many", QANAT__RUN_STATUS__RUN_FAILED);
    assert_int_equal (qn_store_commit (store), 0);
    list = qn_store_list_runs (store, "many", 0);
    assert_non_null (list);
    assert_int_equal (list->n_runs, 50);
    assert_int_equal (list->runs [0]->run_id, 2059);
    assert_int_equal (list->runs [49]->run_id, 2010);
    s_free (list);

    //  A run replaced under another workflow leaves the old listing
    assert_int_equal (qn_store_begin (store), 0);
    s_put_run (store, 3, "b", QANAT__RUN_STATUS__RUN_SUCCEEDED);
    assert_int_equal (qn_store_commit (store), 0);
    list = qn_store_list_runs (store, "a", 0);
    assert_non_null (list);
    assert_int_equal (list->n_runs, 2);
    s_free (list);
    list = qn_store_list_runs (store, "b", 0);
    assert_non_null (list);
    assert_int_equal (list->n_runs, 3);
    s_free (list);
    qn_store_destroy (&store);
}

static void
test_active_runs (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    qn_store_t *store = s_open (fixture);
    uint64_t *ids = NULL;
    size_t count = 99;
    assert_int_equal (qn_store_active_runs (store, &ids, &count), 0);
    assert_int_equal (count, 0);
    free (ids);

    assert_int_equal (qn_store_begin (store), 0);
    s_put_run (store, 1, "w", QANAT__RUN_STATUS__RUN_QUEUED);
    s_put_run (store, 2, "w", QANAT__RUN_STATUS__RUN_RUNNING);
    s_put_run (store, 3, "w", QANAT__RUN_STATUS__RUN_SUCCEEDED);
    s_put_run (store, 4, "w", QANAT__RUN_STATUS__RUN_QUEUED);
    assert_int_equal (qn_store_commit (store), 0);
    assert_int_equal (qn_store_active_runs (store, &ids, &count), 0);
    assert_int_equal (count, 3);
    assert_int_equal (ids [0], 1);
    assert_int_equal (ids [1], 2);
    assert_int_equal (ids [2], 4);
    free (ids);

    assert_int_equal (qn_store_begin (store), 0);
    s_put_run (store, 1, "w", QANAT__RUN_STATUS__RUN_RUNNING);
    s_put_run (store, 2, "w", QANAT__RUN_STATUS__RUN_FAILED);
    s_put_run (store, 4, "w", QANAT__RUN_STATUS__RUN_CANCELED);
    s_put_run (store, 3, "w", QANAT__RUN_STATUS__RUN_SUCCEEDED_WITH_WARNINGS);
    assert_int_equal (qn_store_commit (store), 0);
    assert_int_equal (qn_store_active_runs (store, &ids, &count), 0);
    assert_int_equal (count, 1);
    assert_int_equal (ids [0], 1);
    free (ids);

    //  Survives a reopen
    qn_store_destroy (&store);
    store = s_open (fixture);
    assert_int_equal (qn_store_active_runs (store, &ids, &count), 0);
    assert_int_equal (count, 1);
    assert_int_equal (ids [0], 1);
    free (ids);
    qn_store_destroy (&store);
}

static void
test_tasks (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    qn_store_t *store = s_open (fixture);
    assert_int_equal (qn_store_begin (store), 0);
    const char *names [] = { "zero", "one", "two" };
    const uint32_t order [] = { 2, 0, 1 };
    for (int i = 0; i < 3; i++) {
        Qanat__TaskInfo task = QANAT__TASK_INFO__INIT;
        task.index = order [i];
        task.name = (char *) names [order [i]];
        task.status = QANAT__TASK_STATUS__TASK_QUEUED;
        assert_int_equal (qn_store_put_task (store, 5, &task), 0);
        //  Neighbouring runs must not mix in
        task.name = "other";
        assert_int_equal (qn_store_put_task (store, 4, &task), 0);
        assert_int_equal (qn_store_put_task (store, 6, &task), 0);
    }
    //  Replace task 1 with an attempt
    Qanat__AttemptInfo attempt = QANAT__ATTEMPT_INFO__INIT;
    attempt.attempt = 1;
    attempt.agent = "node1";
    Qanat__AttemptInfo *attempts [] = { &attempt };
    Qanat__TaskInfo task = QANAT__TASK_INFO__INIT;
    task.index = 1;
    task.name = "one";
    task.status = QANAT__TASK_STATUS__TASK_RUNNING;
    task.n_attempts = 1;
    task.attempts = attempts;
    assert_int_equal (qn_store_put_task (store, 5, &task), 0);
    assert_int_equal (qn_store_commit (store), 0);

    Qanat__TaskInfo **tasks;
    size_t count;
    assert_int_equal (qn_store_get_tasks (store, 5, &tasks, &count), 0);
    assert_int_equal (count, 3);
    for (uint32_t i = 0; i < 3; i++) {
        assert_int_equal (tasks [i]->index, i);
        assert_string_equal (tasks [i]->name, names [i]);
    }
    assert_int_equal (tasks [1]->status, QANAT__TASK_STATUS__TASK_RUNNING);
    assert_int_equal (tasks [1]->n_attempts, 1);
    assert_string_equal (tasks [1]->attempts [0]->agent, "node1");
    qn_store_free_array (tasks, count);

    assert_int_equal (qn_store_get_tasks (store, 99, &tasks, &count), 0);
    assert_int_equal (count, 0);
    assert_null (tasks);
    qn_store_destroy (&store);
}

static void
test_logs (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    qn_store_t *store = s_open (fixture);
    assert_int_equal (qn_store_begin (store), 0);
    //  Run 1: 10 lines, tasks a/b alternating, attempt 1 then 2; run 2
    //  and run 0 interleaved to prove the runs do not mix
    for (int i = 1; i <= 10; i++) {
        char text [32];
        snprintf (text, sizeof text, "line %d", i);
        assert_int_equal (s_append_log (store, 1, i % 2? "a": "b", i <= 6? 1: 2, text),
                          (uint64_t) i);
        assert_int_equal (s_append_log (store, 2, "a", 1, "other"), (uint64_t) i);
        if (i <= 3)
            assert_int_equal (s_append_log (store, 0, "a", 1, "zero"), (uint64_t) i);
    }
    assert_int_equal (qn_store_commit (store), 0);
    //  Sequences continue after reopen
    qn_store_destroy (&store);
    store = s_open (fixture);
    assert_int_equal (qn_store_begin (store), 0);
    assert_int_equal (s_append_log (store, 2, "a", 1, "other"), 11);
    assert_int_equal (s_append_log (store, 3, "a", 1, "first"), 1);
    assert_int_equal (qn_store_commit (store), 0);

    Qanat__LogLine **lines;
    size_t count;
    uint64_t last;
    //  Paging three at a time through the cursor
    uint64_t after = 0;
    int seen = 0;
    for (int page = 0; page < 10; page++) {
        assert_int_equal (qn_store_read_logs (store, 1, after, NULL, 0, 3, &lines, &count,
                                              &last), 0);
        if (count == 0) {
            assert_int_equal (last, after);
            break;
        }
        assert_true (count <= 3);
        for (size_t i = 0; i < count; i++) {
            seen++;
            char text [32];
            snprintf (text, sizeof text, "line %d", seen);
            assert_non_null (lines [i]->chunk);
            assert_int_equal (lines [i]->chunk->data.len, strlen (text));
            assert_memory_equal (lines [i]->chunk->data.data, text, strlen (text));
        }
        assert_int_equal (last, (uint64_t) seen);
        qn_store_free_array (lines, count);
        after = last;
    }
    assert_int_equal (seen, 10);

    //  Task filter with a limit: lines 2 and 4, cursor at 4
    assert_int_equal (qn_store_read_logs (store, 1, 0, "b", 0, 2, &lines, &count, &last), 0);
    assert_int_equal (count, 2);
    assert_string_equal (lines [0]->task, "b");
    assert_memory_equal (lines [0]->chunk->data.data, "line 2", 6);
    assert_memory_equal (lines [1]->chunk->data.data, "line 4", 6);
    assert_int_equal (last, 4);
    qn_store_free_array (lines, count);

    //  Attempt filter: lines 7..10
    assert_int_equal (qn_store_read_logs (store, 1, 0, "", 2, 0, &lines, &count, &last), 0);
    assert_int_equal (count, 4);
    assert_memory_equal (lines [0]->chunk->data.data, "line 7", 6);
    for (size_t i = 0; i < count; i++)
        assert_int_equal (lines [i]->attempt, 2);
    assert_int_equal (last, 10);
    qn_store_free_array (lines, count);

    //  Both: task a, attempt 2 -> 7, 9
    assert_int_equal (qn_store_read_logs (store, 1, 0, "a", 2, 0, &lines, &count, &last), 0);
    assert_int_equal (count, 2);
    assert_memory_equal (lines [0]->chunk->data.data, "line 7", 6);
    assert_memory_equal (lines [1]->chunk->data.data, "line 9", 6);
    qn_store_free_array (lines, count);

    //  Nothing matches: empty, but the cursor moved over what was examined
    assert_int_equal (qn_store_read_logs (store, 1, 2, "c", 0, 0, &lines, &count, &last), 0);
    assert_int_equal (count, 0);
    assert_int_equal (last, 10);
    free (lines);

    //  Past the end, an unknown run, and the very last cursor value
    assert_int_equal (qn_store_read_logs (store, 1, 10, NULL, 0, 0, &lines, &count, &last), 0);
    assert_int_equal (count, 0);
    assert_int_equal (last, 10);
    free (lines);
    assert_int_equal (qn_store_read_logs (store, 42, 0, NULL, 0, 0, &lines, &count, &last), 0);
    assert_int_equal (count, 0);
    assert_int_equal (last, 0);
    free (lines);
    assert_int_equal (qn_store_read_logs (store, 1, UINT64_MAX, NULL, 0, 0, &lines, &count,
                                          &last), 0);
    assert_int_equal (count, 0);
    assert_int_equal (last, UINT64_MAX);

    //  Other runs
    assert_int_equal (qn_store_read_logs (store, 2, 0, NULL, 0, 0, &lines, &count, &last), 0);
    assert_int_equal (count, 11);
    assert_int_equal (last, 11);
    qn_store_free_array (lines, count);
    assert_int_equal (qn_store_read_logs (store, 0, 0, NULL, 0, 0, &lines, &count, &last), 0);
    assert_int_equal (count, 3);
    qn_store_free_array (lines, count);

    //  Default limit is 1000
    assert_int_equal (qn_store_begin (store), 0);
    for (int i = 0; i < 1005; i++)
        s_append_log (store, 9, "t", 1, "x");
    assert_int_equal (qn_store_commit (store), 0);
    assert_int_equal (qn_store_read_logs (store, 9, 0, NULL, 0, 0, &lines, &count, &last), 0);
    assert_int_equal (count, 1000);
    assert_int_equal (last, 1000);
    qn_store_free_array (lines, count);
    assert_int_equal (qn_store_read_logs (store, 9, last, NULL, 0, 0, &lines, &count, &last), 0);
    assert_int_equal (count, 5);
    assert_int_equal (last, 1005);
    qn_store_free_array (lines, count);
    qn_store_destroy (&store);
}

static void
test_metrics (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    qn_store_t *store = s_open (fixture);
    assert_int_equal (qn_store_begin (store), 0);
    const char *names [] = { "loss", "accuracy", "loss", "loss", "accuracy" };
    for (int i = 0; i < 5; i++) {
        Qanat__MetricPoint point = QANAT__METRIC_POINT__INIT;
        point.name = (char *) names [i];
        point.value = i * 0.5;
        point.step = i;
        point.has_step = 1;
        Qanat__MetricRecord record = QANAT__METRIC_RECORD__INIT;
        record.task = "train";
        record.attempt = 1;
        record.seq = (uint64_t) i + 100;
        record.point = &point;
        assert_int_equal (qn_store_append_metric (store, 3, &record), 0);
        point.name = "noise";
        assert_int_equal (qn_store_append_metric (store, 4, &record), 0);
    }
    //  A record without a point is stored and never matches a name
    Qanat__MetricRecord bare = QANAT__METRIC_RECORD__INIT;
    assert_int_equal (qn_store_append_metric (store, 3, &bare), 0);
    assert_int_equal (qn_store_commit (store), 0);

    Qanat__MetricRecord **records;
    size_t count;
    assert_int_equal (qn_store_read_metrics (store, 3, "loss", &records, &count), 0);
    assert_int_equal (count, 3);
    assert_true (records [0]->point->value == 0.0);
    assert_true (records [1]->point->value == 1.0);
    assert_true (records [2]->point->value == 1.5);
    assert_int_equal (records [2]->point->step, 3);
    assert_int_equal (records [2]->seq, 103);
    assert_string_equal (records [2]->task, "train");
    qn_store_free_array (records, count);
    assert_int_equal (qn_store_read_metrics (store, 3, NULL, &records, &count), 0);
    assert_int_equal (count, 6);
    assert_string_equal (records [1]->point->name, "accuracy");
    assert_null (records [5]->point);
    qn_store_free_array (records, count);
    assert_int_equal (qn_store_read_metrics (store, 3, "", &records, &count), 0);
    assert_int_equal (count, 6);
    qn_store_free_array (records, count);
    assert_int_equal (qn_store_read_metrics (store, 4, "loss", &records, &count), 0);
    assert_int_equal (count, 0);
    assert_int_equal (qn_store_read_metrics (store, 5, NULL, &records, &count), 0);
    assert_int_equal (count, 0);
    qn_store_destroy (&store);
}

static void
test_agents (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    qn_store_t *store = s_open (fixture);
    assert_int_equal (qn_store_begin (store), 0);
    const char *names [] = { "gpu-2", "cpu-1", "gpu-1" };
    for (int i = 0; i < 3; i++) {
        Qanat__AgentInfo agent = QANAT__AGENT_INFO__INIT;
        agent.name = (char *) names [i];
        agent.capacity = (uint32_t) i + 1;
        assert_int_equal (qn_store_put_agent (store, &agent), 0);
    }
    Qanat__Label label = QANAT__LABEL__INIT;
    label.key = "gpu";
    label.value = "a100";
    Qanat__Label *labels [] = { &label };
    Qanat__AgentInfo agent = QANAT__AGENT_INFO__INIT;
    agent.name = "gpu-2";
    agent.capacity = 8;
    agent.connected = 1;
    agent.n_labels = 1;
    agent.labels = labels;
    assert_int_equal (qn_store_put_agent (store, &agent), 0);
    agent.name = "";
    assert_int_equal (qn_store_put_agent (store, &agent), -1);
    assert_int_equal (qn_store_commit (store), 0);

    Qanat__AgentInfo **agents;
    size_t count;
    assert_int_equal (qn_store_list_agents (store, &agents, &count), 0);
    assert_int_equal (count, 3);
    assert_string_equal (agents [0]->name, "cpu-1");
    assert_string_equal (agents [1]->name, "gpu-1");
    assert_string_equal (agents [2]->name, "gpu-2");
    assert_int_equal (agents [2]->capacity, 8);
    assert_true (agents [2]->connected);
    assert_int_equal (agents [2]->n_labels, 1);
    assert_string_equal (agents [2]->labels [0]->value, "a100");
    qn_store_free_array (agents, count);
    qn_store_destroy (&store);
}

//  Removes a sub-database with LMDB directly, the store being closed: a
//  store written before that sub-database existed.
static void
s_raw_drop (fixture_t *fixture, const char *db)
{
    MDB_dbi dbi;
    MDB_txn *txn = s_raw_open (fixture, db, &dbi);
    assert_int_equal (mdb_drop (txn, dbi, 1), 0);
    s_raw_close (txn);
}

static void
test_secret_access (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    qn_store_t *store = s_open (fixture);
    assert_int_equal (qn_store_begin (store), 0);
    assert_int_equal (qn_store_put_secret (store, "OLD", "sealed-1", 8), 0);
    assert_int_equal (qn_store_commit (store), 0);
    qn_store_destroy (&store);
    //  A store from before access lists: no secret_access sub-database
    s_raw_drop (fixture, "secret_access");
    store = s_open (fixture);
    Qanat__SecretAccess *access = NULL;
    assert_int_equal (qn_store_get_secret_access (store, "OLD", &access), 0);
    assert_null (access);

    char *allow [] = { "user:eve", "workflow:ml" };
    Qanat__Label label = QANAT__LABEL__INIT;
    label.key = "env";
    label.value = "prod";
    Qanat__Label *labels [] = { &label };
    Qanat__SecretAccess stored = QANAT__SECRET_ACCESS__INIT;
    stored.allow = allow;
    stored.n_allow = 2;
    stored.agents = labels;
    stored.n_agents = 1;
    assert_int_equal (qn_store_put_secret_access (store, "OLD", &stored), -1);    //  no txn
    assert_int_equal (qn_store_begin (store), 0);
    assert_int_equal (qn_store_put_secret_access (store, "OLD", &stored), 0);
    assert_int_equal (qn_store_put_secret_access (store, "", &stored), -1);
    assert_int_equal (qn_store_commit (store), 0);
    qn_store_destroy (&store);

    store = s_open (fixture);
    assert_int_equal (qn_store_get_secret_access (store, "OLD", &access), 1);
    assert_int_equal (access->n_allow, 2);
    assert_string_equal (access->allow [0], "user:eve");
    assert_string_equal (access->allow [1], "workflow:ml");
    assert_int_equal (access->n_agents, 1);
    assert_string_equal (access->agents [0]->value, "prod");
    protobuf_c_message_free_unpacked (&access->base, NULL);
    //  The sealed value is untouched, and the names list only secrets
    void *data = NULL;
    size_t size = 0;
    assert_int_equal (qn_store_get_secret (store, "OLD", &data, &size), 1);
    assert_int_equal (size, 8);
    assert_memory_equal (data, "sealed-1", 8);
    free (data);
    char **names = NULL;
    size_t count = 0;
    assert_int_equal (qn_store_list_secrets (store, &names, &count), 0);
    assert_int_equal (count, 1);
    free (names [0]);
    free (names);
    assert_int_equal (qn_store_get_secret_access (store, "NEW", &access), 0);
    qn_store_destroy (&store);

    //  A damaged record is an error, never an empty list
    s_raw_put (fixture, "secret_access", "OLD", 3, "\xff\xff", 2);
    store = s_open (fixture);
    assert_int_equal (qn_store_get_secret_access (store, "OLD", &access), -1);
    assert_null (access);
    qn_store_destroy (&store);
}

static void
test_schema (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    qn_store_t *store = s_open (fixture);
    qn_store_destroy (&store);

    //  The same version opens; a newer one is refused
    uint8_t schema [4] = { 0, 0, 0, QN_STORE_SCHEMA_VERSION };
    s_raw_put (fixture, "meta", "schema", 6, schema, sizeof schema);
    store = s_open (fixture);
    qn_store_destroy (&store);

    schema [3] = 99;
    s_raw_put (fixture, "meta", "schema", 6, schema, sizeof schema);
    char *error = NULL;
    assert_null (qn_store_new (fixture->dir, true, &error));
    assert_non_null (error);
    char expected [100];
    snprintf (expected, sizeof expected, "store schema 99 is newer than this qanatd (%d)",
              QN_STORE_SCHEMA_VERSION);
    assert_non_null (strstr (error, expected));
    free (error);

    //  A damaged schema record is refused too
    s_raw_put (fixture, "meta", "schema", 6, "x", 1);
    error = NULL;
    assert_null (qn_store_new (fixture->dir, true, &error));
    assert_non_null (error);
    assert_non_null (strstr (error, "corrupt"));
    free (error);
}

static void
test_put_without_txn (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    qn_store_t *store = s_open (fixture);
    uint32_t version;
    bool created;
    assert_int_equal (qn_store_put_workflow (store, "a", "a", "x", 1, &version, &created), -1);
    assert_string_equal (qn_store_error (store), "no open transaction");
    uint64_t id;
    assert_int_equal (qn_store_new_run_id (store, &id), -1);
    Qanat__RunInfo run = s_run (1, "a", QANAT__RUN_STATUS__RUN_QUEUED);
    assert_int_equal (qn_store_put_run (store, &run), -1);
    Qanat__TaskInfo task = QANAT__TASK_INFO__INIT;
    assert_int_equal (qn_store_put_task (store, 1, &task), -1);
    Qanat__LogLine line = QANAT__LOG_LINE__INIT;
    assert_int_equal (qn_store_append_log (store, 1, &line, NULL), -1);
    Qanat__MetricRecord record = QANAT__METRIC_RECORD__INIT;
    assert_int_equal (qn_store_append_metric (store, 1, &record), -1);
    Qanat__AgentInfo agent = QANAT__AGENT_INFO__INIT;
    agent.name = "x";
    assert_int_equal (qn_store_put_agent (store, &agent), -1);
    assert_string_equal (qn_store_error (store), "no open transaction");
    assert_null (qn_store_get_run (store, 1));
    qn_store_destroy (&store);
}

static void
test_corrupt_records_skipped (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    qn_store_t *store = s_open (fixture);
    assert_int_equal (qn_store_begin (store), 0);
    s_put_run (store, 1, "w", QANAT__RUN_STATUS__RUN_RUNNING);
    s_put_run (store, 3, "w", QANAT__RUN_STATUS__RUN_RUNNING);
    s_append_log (store, 1, "t", 1, "one");
    s_append_log (store, 1, "t", 1, "two");
    s_append_log (store, 1, "t", 1, "three");
    Qanat__TaskInfo task = QANAT__TASK_INFO__INIT;
    task.name = "t";
    assert_int_equal (qn_store_put_task (store, 1, &task), 0);
    Qanat__AgentInfo agent = QANAT__AGENT_INFO__INIT;
    agent.name = "a";
    assert_int_equal (qn_store_put_agent (store, &agent), 0);
    assert_int_equal (qn_store_commit (store), 0);
    qn_store_destroy (&store);

    //  An over-long varint never decodes
    const uint8_t junk [] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
    uint8_t key [16];
    s_be64 (key, 2);
    s_raw_put (fixture, "runs", key, 8, junk, sizeof junk);
    s_raw_put (fixture, "runs_by_workflow", "w\0\0\0\0\0\0\0\0\2", 10, "", 0);
    s_be64 (key, 3);
    s_raw_put (fixture, "runs", key, 8, junk, sizeof junk);
    s_be64 (key, 1);
    s_be64 (key + 8, 2);
    s_raw_put (fixture, "logs", key, 16, junk, sizeof junk);
    //  A key of the wrong size inside run 1's range
    s_raw_put (fixture, "logs", key, 12, "", 0);
    memset (key + 8, 0, 4);
    key [11] = 1;
    s_raw_put (fixture, "tasks", key, 12, junk, sizeof junk);
    s_raw_put (fixture, "agents", "b", 1, junk, sizeof junk);
    s_raw_put (fixture, "meta", "next_run_id", 11, "abc", 3);

    store = s_open (fixture);
    assert_null (qn_store_get_run (store, 2));
    assert_non_null (strstr (qn_store_error (store), "undecodable"));
    Qanat__RunList *list = qn_store_list_runs (store, NULL, 0);
    assert_non_null (list);
    assert_int_equal (list->n_runs, 1);
    assert_int_equal (list->runs [0]->run_id, 1);
    s_free (list);
    list = qn_store_list_runs (store, "w", 0);
    assert_non_null (list);
    assert_int_equal (list->n_runs, 1);
    s_free (list);

    Qanat__LogLine **lines;
    size_t count;
    uint64_t last;
    assert_int_equal (qn_store_read_logs (store, 1, 0, NULL, 0, 0, &lines, &count, &last), 0);
    assert_int_equal (count, 2);
    assert_memory_equal (lines [0]->chunk->data.data, "one", 3);
    assert_memory_equal (lines [1]->chunk->data.data, "three", 5);
    assert_int_equal (last, 3);
    qn_store_free_array (lines, count);

    Qanat__TaskInfo **tasks;
    assert_int_equal (qn_store_get_tasks (store, 1, &tasks, &count), 0);
    assert_int_equal (count, 1);
    assert_string_equal (tasks [0]->name, "t");
    qn_store_free_array (tasks, count);

    Qanat__AgentInfo **agents;
    assert_int_equal (qn_store_list_agents (store, &agents, &count), 0);
    assert_int_equal (count, 1);
    assert_string_equal (agents [0]->name, "a");
    qn_store_free_array (agents, count);

    //  A damaged counter is an error, not a reused id
    assert_int_equal (qn_store_begin (store), 0);
    uint64_t id;
    assert_int_equal (qn_store_new_run_id (store, &id), -1);
    assert_non_null (strstr (qn_store_error (store), "corrupt"));
    //  Appending after the damaged log record still gets a fresh sequence
    assert_int_equal (s_append_log (store, 1, "t", 1, "four"), 4);
    assert_int_equal (qn_store_commit (store), 0);
    qn_store_destroy (&store);
}

static void
test_map_full (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    setenv ("QANAT_STORE_MAP_SIZE", "262144", 1);
    qn_store_t *store = s_open (fixture);
    assert_int_equal (qn_store_begin (store), 0);
    s_put_run (store, 1, "w", QANAT__RUN_STATUS__RUN_RUNNING);
    assert_int_equal (s_append_log (store, 1, "t", 1, "kept"), 1);
    assert_int_equal (qn_store_commit (store), 0);

    //  Fill the map in one transaction
    static char big [4097];
    memset (big, 'x', sizeof big - 1);
    Qanat__LogChunk chunk = QANAT__LOG_CHUNK__INIT;
    chunk.data.data = (uint8_t *) big;
    chunk.data.len = sizeof big - 1;
    Qanat__LogLine line = QANAT__LOG_LINE__INIT;
    line.task = "t";
    line.chunk = &chunk;
    assert_int_equal (qn_store_begin (store), 0);
    int failed_at = -1;
    for (int i = 0; i < 1000; i++)
        if (qn_store_append_log (store, 1, &line, NULL)) {
            failed_at = i;
            break;
        }
    assert_true (failed_at > 0);
    assert_non_null (strstr (qn_store_error (store), "MDB_MAP_FULL"));
    //  Later writes in the broken transaction fail too, and the commit
    //  reports the failure and drops everything
    Qanat__RunInfo run = s_run (2, "w", QANAT__RUN_STATUS__RUN_QUEUED);
    assert_int_equal (qn_store_put_run (store, &run), -1);
    assert_non_null (strstr (qn_store_error (store), "MDB_MAP_FULL"));
    assert_null (qn_store_get_run (store, 1));
    assert_true (qn_store_in_txn (store));
    assert_int_equal (qn_store_commit (store), -1);
    assert_false (qn_store_in_txn (store));
    assert_non_null (strstr (qn_store_error (store), "MDB_MAP_FULL"));

    //  The earlier commit is intact and the store still takes writes
    Qanat__LogLine **lines;
    size_t count;
    uint64_t last;
    assert_int_equal (qn_store_read_logs (store, 1, 0, NULL, 0, 0, &lines, &count, &last), 0);
    assert_int_equal (count, 1);
    assert_memory_equal (lines [0]->chunk->data.data, "kept", 4);
    qn_store_free_array (lines, count);
    assert_int_equal (qn_store_begin (store), 0);
    s_put_run (store, 3, "w", QANAT__RUN_STATUS__RUN_QUEUED);
    assert_int_equal (s_append_log (store, 1, "t", 1, "after"), 2);
    assert_int_equal (qn_store_commit (store), 0);
    qn_store_destroy (&store);

    //  Reopen with the normal map size
    unsetenv ("QANAT_STORE_MAP_SIZE");
    store = s_open (fixture);
    Qanat__RunInfo *got = qn_store_get_run (store, 1);
    assert_non_null (got);
    s_free (got);
    assert_null (qn_store_get_run (store, 2));
    got = qn_store_get_run (store, 3);
    assert_non_null (got);
    s_free (got);
    assert_int_equal (qn_store_read_logs (store, 1, 0, NULL, 0, 0, &lines, &count, &last), 0);
    assert_int_equal (count, 2);
    assert_int_equal (last, 2);
    qn_store_free_array (lines, count);
    //  And now the big transaction fits
    assert_int_equal (qn_store_begin (store), 0);
    for (int i = 0; i <= failed_at; i++)
        assert_int_equal (qn_store_append_log (store, 1, &line, NULL), 0);
    assert_int_equal (qn_store_commit (store), 0);
    qn_store_destroy (&store);
}

//  The artifact records: blob references, cache entries, and a run's
//  deletion taking its tasks, logs and metrics along, nothing else.
static void
test_artifact_records (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    qn_store_t *store = s_open (fixture);
    const char *a = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const char *b = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    assert_int_equal (qn_store_begin (store), 0);
    assert_int_equal (qn_store_blob_add (store, a, 100), 0);
    assert_int_equal (qn_store_blob_add (store, b, 7), 0);
    uint32_t refs = 9;
    assert_int_equal (qn_store_blob_ref (store, a, 2, &refs), 0);
    assert_int_equal (refs, 2);
    assert_int_equal (qn_store_blob_add (store, a, 100), 0);        //  kept, not reset
    assert_int_equal (qn_store_blob_ref (store, a, -1, &refs), 0);
    assert_int_equal (refs, 1);
    assert_int_equal (qn_store_blob_ref (store, "not-a-hash", 1, NULL), -1);
    assert_int_equal (qn_store_put_cache (store, b, 5, 2, 1), 0);
    s_put_run (store, 5, "wf", QANAT__RUN_STATUS__RUN_SUCCEEDED);
    s_put_run (store, 6, "wf", QANAT__RUN_STATUS__RUN_SUCCEEDED);
    s_put_run (store, 7, "wf2", QANAT__RUN_STATUS__RUN_SUCCEEDED);
    Qanat__TaskInfo task = QANAT__TASK_INFO__INIT;
    task.name = (char *) "t";
    assert_int_equal (qn_store_put_task (store, 5, &task), 0);
    assert_int_equal (qn_store_put_task (store, 6, &task), 0);
    s_append_log (store, 5, "t", 1, "five");
    s_append_log (store, 6, "t", 1, "six");
    assert_int_equal (qn_store_commit (store), 0);

    uint64_t size;
    assert_int_equal (qn_store_blob_get (store, a, &size, &refs), 1);
    assert_int_equal (size, 100);
    assert_int_equal (refs, 1);
    char **unreferenced;
    size_t count;
    assert_int_equal (qn_store_unreferenced_blobs (store, &unreferenced, &count, 10), 0);
    assert_int_equal (count, 1);
    assert_string_equal (unreferenced [0], b);
    free (unreferenced [0]);
    free (unreferenced);
    uint64_t run_id;
    uint32_t task_index, attempt;
    assert_int_equal (qn_store_get_cache (store, b, &run_id, &task_index, &attempt), 1);
    assert_int_equal (run_id, 5);
    assert_int_equal (task_index, 2);
    assert_int_equal (qn_store_get_cache (store, a, &run_id, &task_index, &attempt), 0);

    uint64_t *ids;
    assert_int_equal (qn_store_workflow_run_ids (store, "wf", &ids, &count), 0);
    assert_int_equal (count, 2);
    assert_int_equal (ids [0], 5);
    assert_int_equal (ids [1], 6);
    free (ids);

    assert_int_equal (qn_store_begin (store), 0);
    assert_int_equal (qn_store_delete_run (store, 5), 0);
    assert_int_equal (qn_store_blob_delete (store, b), 0);
    assert_int_equal (qn_store_delete_cache (store, b), 0);
    assert_int_equal (qn_store_commit (store), 0);
    assert_null (qn_store_get_run (store, 5));
    Qanat__RunInfo *six = qn_store_get_run (store, 6);
    assert_non_null (six);
    s_free (six);
    Qanat__TaskInfo **tasks;
    assert_int_equal (qn_store_get_tasks (store, 5, &tasks, &count), 0);
    assert_int_equal (count, 0);
    qn_store_free_array (tasks, count);
    assert_int_equal (qn_store_get_tasks (store, 6, &tasks, &count), 0);
    assert_int_equal (count, 1);
    qn_store_free_array (tasks, count);
    assert_int_equal (qn_store_workflow_run_ids (store, "wf", &ids, &count), 0);
    assert_int_equal (count, 1);
    assert_int_equal (ids [0], 6);
    free (ids);
    assert_int_equal (qn_store_blob_get (store, b, NULL, NULL), 0);
    qn_store_destroy (&store);
}

//  --------------------------------------------------------------------
//  S3 objects

#define S3_A  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define S3_B  "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define S3_C  "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
#define S3_D  "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

//  A packed ArtifactStore, as the coordinator would keep it
static uint8_t *
s_packed_store (const char *bucket, size_t *size_p)
{
    Qanat__ArtifactStore store = QANAT__ARTIFACT_STORE__INIT;
    store.kind = (char *) "s3";
    store.bucket = (char *) bucket;
    *size_p = qanat__artifact_store__get_packed_size (&store);
    uint8_t *packed = (uint8_t *) malloc (*size_p);
    assert_non_null (packed);
    qanat__artifact_store__pack (&store, packed);
    return packed;
}

//  Finds id among listed objects
static bool
s_listed (qn_store_s3_object_t *objects, size_t count, const char *id)
{
    for (size_t index = 0; index < count; index++)
        if (strcmp (objects [index].id, id) == 0)
            return true;
    return false;
}

static void
test_s3_objects (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    qn_store_t *store = s_open (fixture);
    size_t packed_size;
    uint8_t *packed = s_packed_store ("bucket-one", &packed_size);
    assert_true (packed_size > 0);

    //  Writes need a transaction
    assert_int_equal (qn_store_s3_add (store, S3_A, "s3://b/k", NULL, 0, 1, 100), -1);
    assert_string_equal (qn_store_error (store), "no open transaction");

    assert_int_equal (qn_store_begin (store), 0);
    assert_int_equal (qn_store_s3_add (store, S3_A, "s3://bucket-one/out/a.bin",
                                       packed, packed_size, 12345, 100), 0);
    assert_int_equal (qn_store_s3_add (store, S3_B, "s3://bucket-one/out/b.bin",
                                       NULL, 0, 7, 200), 0);
    //  A second add keeps the first row
    assert_int_equal (qn_store_s3_add (store, S3_A, "s3://other/x", NULL, 0, 1, 999), 0);
    //  Reads inside the transaction see its writes
    qn_store_s3_object_t object;
    assert_int_equal (qn_store_s3_get (store, S3_A, &object), 1);
    assert_string_equal (object.location, "s3://bucket-one/out/a.bin");
    qn_store_s3_object_clear (&object);
    assert_int_equal (qn_store_commit (store), 0);

    assert_int_equal (qn_store_s3_get (store, S3_A, &object), 1);
    assert_string_equal (object.id, S3_A);
    assert_string_equal (object.location, "s3://bucket-one/out/a.bin");
    assert_int_equal (object.store_size, packed_size);
    assert_memory_equal (object.store, packed, packed_size);
    Qanat__ArtifactStore *decoded = qanat__artifact_store__unpack (
        NULL, object.store_size, object.store);
    assert_non_null (decoded);
    assert_string_equal (decoded->bucket, "bucket-one");
    qanat__artifact_store__free_unpacked (decoded, NULL);
    assert_int_equal (object.size, 12345);
    assert_int_equal (object.refs, 0);
    assert_int_equal (object.state, QN_STORE_S3_LIVE);
    assert_int_equal (object.since_us, 100);
    qn_store_s3_object_clear (&object);
    assert_null (object.location);
    assert_null (object.store);
    qn_store_s3_object_clear (&object);         //  twice is fine

    assert_int_equal (qn_store_s3_get (store, S3_B, &object), 1);
    assert_int_equal (object.store_size, 0);
    assert_null (object.store);
    assert_int_equal (object.size, 7);
    qn_store_s3_object_clear (&object);
    assert_int_equal (qn_store_s3_get (store, S3_C, &object), 0);
    assert_null (object.location);
    assert_int_equal (qn_store_s3_get (store, S3_A, NULL), 1);
    assert_int_equal (qn_store_s3_get (store, S3_C, NULL), 0);

    //  References: since_us moves only when they fall to 0, never below 0
    assert_int_equal (qn_store_begin (store), 0);
    uint32_t refs = 99;
    assert_int_equal (qn_store_s3_ref (store, S3_A, 2, 300, &refs), 0);
    assert_int_equal (refs, 2);
    assert_int_equal (qn_store_s3_ref (store, S3_A, -1, 400, &refs), 0);
    assert_int_equal (refs, 1);
    assert_int_equal (qn_store_s3_get (store, S3_A, &object), 1);
    assert_int_equal (object.since_us, 100);
    qn_store_s3_object_clear (&object);
    assert_int_equal (qn_store_s3_ref (store, S3_A, -1, 500, &refs), 0);
    assert_int_equal (refs, 0);
    assert_int_equal (qn_store_s3_get (store, S3_A, &object), 1);
    assert_int_equal (object.refs, 0);
    assert_int_equal (object.since_us, 500);
    qn_store_s3_object_clear (&object);
    //  Already 0: stays 0 and keeps its time
    assert_int_equal (qn_store_s3_ref (store, S3_A, -5, 600, &refs), 0);
    assert_int_equal (refs, 0);
    assert_int_equal (qn_store_s3_get (store, S3_A, &object), 1);
    assert_int_equal (object.refs, 0);
    assert_int_equal (object.since_us, 500);
    qn_store_s3_object_clear (&object);
    //  A missing row cannot be counted
    assert_int_equal (qn_store_s3_ref (store, S3_C, 1, 600, &refs), -1);
    assert_non_null (strstr (qn_store_error (store), "no such"));
    assert_int_equal (qn_store_s3_set_state (store, S3_C, QN_STORE_S3_DELETING, 600), -1);
    assert_int_equal (qn_store_commit (store), 0);

    //  Invalid ids are refused everywhere
    const char *bad_ids [] = {
        NULL, "", "abc",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaag",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "../aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    };
    assert_int_equal (qn_store_begin (store), 0);
    for (size_t index = 0; index < sizeof bad_ids / sizeof bad_ids [0]; index++) {
        const char *id = bad_ids [index];
        assert_int_equal (qn_store_s3_get (store, id, &object), -1);
        assert_string_equal (qn_store_error (store), "invalid S3 object id");
        assert_int_equal (qn_store_s3_add (store, id, "s3://b/k", NULL, 0, 1, 1), -1);
        assert_int_equal (qn_store_s3_ref (store, id, 1, 1, NULL), -1);
        assert_int_equal (qn_store_s3_set_state (store, id, QN_STORE_S3_DELETED, 1), -1);
        assert_int_equal (qn_store_s3_delete (store, id), -1);
    }
    //  Bad arguments to add
    assert_int_equal (qn_store_s3_add (store, S3_C, NULL, NULL, 0, 1, 1), -1);
    assert_int_equal (qn_store_s3_add (store, S3_C, "", NULL, 0, 1, 1), -1);
    char *long_location = (char *) malloc (QN_STORE_S3_LOCATION_MAX + 2);
    assert_non_null (long_location);
    memset (long_location, 'k', QN_STORE_S3_LOCATION_MAX + 1);
    long_location [QN_STORE_S3_LOCATION_MAX + 1] = '\0';
    assert_int_equal (qn_store_s3_add (store, S3_C, long_location, NULL, 0, 1, 1), -1);
    assert_int_equal (qn_store_s3_add (store, S3_C, "s3://b/k", NULL, 3, 1, 1), -1);
    uint8_t *big_store = (uint8_t *) calloc (1, QN_STORE_S3_STORE_MAX + 1);
    assert_non_null (big_store);
    assert_int_equal (qn_store_s3_add (store, S3_C, "s3://b/k", big_store,
                                       QN_STORE_S3_STORE_MAX + 1, 1, 1), -1);
    assert_int_equal (qn_store_s3_get (store, S3_C, NULL), 0);
    //  The limits themselves fit
    long_location [QN_STORE_S3_LOCATION_MAX] = '\0';
    assert_int_equal (qn_store_s3_add (store, S3_C, long_location, big_store,
                                       QN_STORE_S3_STORE_MAX, 3, 700), 0);
    assert_int_equal (qn_store_s3_set_state (store, S3_C, 3, 1), -1);
    assert_int_equal (qn_store_s3_set_state (store, S3_C, -1, 1), -1);
    assert_int_equal (qn_store_commit (store), 0);
    assert_int_equal (qn_store_s3_get (store, S3_C, &object), 1);
    assert_int_equal (strlen (object.location), QN_STORE_S3_LOCATION_MAX);
    assert_int_equal (object.store_size, QN_STORE_S3_STORE_MAX);
    assert_int_equal (object.state, QN_STORE_S3_LIVE);
    qn_store_s3_object_clear (&object);
    free (long_location);
    free (big_store);

    //  Now: A LIVE refs 0 since 500, B LIVE refs 0 since 200, C LIVE refs 0
    //  since 700.  Give B a reference: it drops out of the LIVE list.
    assert_int_equal (qn_store_begin (store), 0);
    assert_int_equal (qn_store_s3_ref (store, S3_B, 1, 800, NULL), 0);
    assert_int_equal (qn_store_s3_add (store, S3_D, "s3://b/d", NULL, 0, 4, 150), 0);
    assert_int_equal (qn_store_commit (store), 0);

    qn_store_s3_object_t *objects;
    size_t count;
    assert_int_equal (qn_store_s3_list (store, QN_STORE_S3_LIVE, 1000, &objects, &count, 10), 0);
    assert_int_equal (count, 3);
    //  In id order: D (0123...), A, C
    assert_string_equal (objects [0].id, S3_D);
    assert_string_equal (objects [1].id, S3_A);
    assert_string_equal (objects [2].id, S3_C);
    assert_string_equal (objects [1].location, "s3://bucket-one/out/a.bin");
    assert_memory_equal (objects [1].store, packed, packed_size);
    assert_int_equal (objects [1].size, 12345);
    assert_int_equal (objects [1].since_us, 500);
    qn_store_s3_objects_free (&objects, count);
    assert_null (objects);
    //  before_us is strict
    assert_int_equal (qn_store_s3_list (store, QN_STORE_S3_LIVE, 500, &objects, &count, 10), 0);
    assert_int_equal (count, 1);
    assert_string_equal (objects [0].id, S3_D);
    qn_store_s3_objects_free (&objects, count);
    assert_int_equal (qn_store_s3_list (store, QN_STORE_S3_LIVE, 501, &objects, &count, 10), 0);
    assert_int_equal (count, 2);
    qn_store_s3_objects_free (&objects, count);
    //  limit
    assert_int_equal (qn_store_s3_list (store, QN_STORE_S3_LIVE, 1000, &objects, &count, 2), 0);
    assert_int_equal (count, 2);
    assert_string_equal (objects [0].id, S3_D);
    assert_string_equal (objects [1].id, S3_A);
    qn_store_s3_objects_free (&objects, count);
    assert_int_equal (qn_store_s3_list (store, QN_STORE_S3_LIVE, 1000, &objects, &count, 0), 0);
    assert_int_equal (count, 0);
    assert_null (objects);
    assert_int_equal (qn_store_s3_list (store, 3, 1000, &objects, &count, 10), -1);
    assert_int_equal (qn_store_s3_list (store, QN_STORE_S3_DELETING, 1000, &objects, &count,
                                        10), 0);
    assert_int_equal (count, 0);

    //  States: A -> DELETING at 900, then DELETED at 1100
    assert_int_equal (qn_store_begin (store), 0);
    assert_int_equal (qn_store_s3_set_state (store, S3_A, QN_STORE_S3_DELETING, 900), 0);
    assert_int_equal (qn_store_commit (store), 0);
    assert_int_equal (qn_store_s3_get (store, S3_A, &object), 1);
    assert_int_equal (object.state, QN_STORE_S3_DELETING);
    assert_int_equal (object.since_us, 900);
    qn_store_s3_object_clear (&object);
    assert_int_equal (qn_store_s3_list (store, QN_STORE_S3_LIVE, 2000, &objects, &count, 10), 0);
    assert_int_equal (count, 2);
    assert_false (s_listed (objects, count, S3_A));
    qn_store_s3_objects_free (&objects, count);
    assert_int_equal (qn_store_s3_list (store, QN_STORE_S3_DELETING, 900, &objects, &count,
                                        10), 0);
    assert_int_equal (count, 0);
    assert_int_equal (qn_store_s3_list (store, QN_STORE_S3_DELETING, 901, &objects, &count,
                                        10), 0);
    assert_int_equal (count, 1);
    assert_string_equal (objects [0].id, S3_A);
    qn_store_s3_objects_free (&objects, count);

    //  A late reference to a DELETING row counts but keeps the state's time;
    //  DELETING rows are listed whatever their references
    assert_int_equal (qn_store_begin (store), 0);
    assert_int_equal (qn_store_s3_ref (store, S3_A, 1, 950, &refs), 0);
    assert_int_equal (refs, 1);
    assert_int_equal (qn_store_s3_ref (store, S3_A, -1, 960, &refs), 0);
    assert_int_equal (refs, 0);
    assert_int_equal (qn_store_commit (store), 0);
    assert_int_equal (qn_store_s3_get (store, S3_A, &object), 1);
    assert_int_equal (object.since_us, 900);
    qn_store_s3_object_clear (&object);

    assert_int_equal (qn_store_begin (store), 0);
    assert_int_equal (qn_store_s3_set_state (store, S3_A, QN_STORE_S3_DELETED, 1100), 0);
    assert_int_equal (qn_store_s3_ref (store, S3_B, 2, 1100, NULL), 0);
    assert_int_equal (qn_store_s3_set_state (store, S3_B, QN_STORE_S3_DELETING, 1200), 0);
    //  add on a tombstone does nothing
    assert_int_equal (qn_store_s3_add (store, S3_A, "s3://x/y", NULL, 0, 1, 1300), 0);
    assert_int_equal (qn_store_commit (store), 0);
    assert_int_equal (qn_store_s3_get (store, S3_A, &object), 1);
    assert_int_equal (object.state, QN_STORE_S3_DELETED);
    assert_int_equal (object.since_us, 1100);
    assert_string_equal (object.location, "s3://bucket-one/out/a.bin");
    qn_store_s3_object_clear (&object);
    assert_int_equal (qn_store_s3_list (store, QN_STORE_S3_DELETED, 5000, &objects, &count,
                                        10), 0);
    assert_int_equal (count, 1);
    assert_string_equal (objects [0].id, S3_A);
    qn_store_s3_objects_free (&objects, count);
    assert_int_equal (qn_store_s3_list (store, QN_STORE_S3_DELETING, 5000, &objects, &count,
                                        10), 0);
    assert_int_equal (count, 1);
    assert_string_equal (objects [0].id, S3_B);
    assert_int_equal (objects [0].refs, 3);
    qn_store_s3_objects_free (&objects, count);

    //  Delete: needs a transaction; a missing row is fine
    assert_int_equal (qn_store_s3_delete (store, S3_A), -1);
    assert_int_equal (qn_store_begin (store), 0);
    assert_int_equal (qn_store_s3_delete (store, S3_A), 0);
    assert_int_equal (qn_store_s3_delete (store, S3_A), 0);
    assert_int_equal (qn_store_commit (store), 0);
    assert_int_equal (qn_store_s3_get (store, S3_A, &object), 0);
    assert_int_equal (qn_store_s3_list (store, QN_STORE_S3_DELETED, 5000, &objects, &count,
                                        10), 0);
    assert_int_equal (count, 0);

    //  An aborted transaction leaves nothing behind
    assert_int_equal (qn_store_begin (store), 0);
    assert_int_equal (qn_store_s3_add (store, S3_A, "s3://b/a", NULL, 0, 1, 1), 0);
    assert_int_equal (qn_store_s3_ref (store, S3_D, 4, 1, NULL), 0);
    qn_store_abort (store);
    assert_int_equal (qn_store_s3_get (store, S3_A, NULL), 0);

    //  The rows survive closing and reopening; the blob index is untouched
    qn_store_destroy (&store);
    store = s_open (fixture);
    assert_int_equal (qn_store_s3_get (store, S3_B, &object), 1);
    assert_int_equal (object.state, QN_STORE_S3_DELETING);
    assert_int_equal (object.refs, 3);
    assert_int_equal (object.since_us, 1200);
    assert_string_equal (object.location, "s3://bucket-one/out/b.bin");
    qn_store_s3_object_clear (&object);
    assert_int_equal (qn_store_s3_get (store, S3_D, &object), 1);
    assert_int_equal (object.refs, 0);
    assert_int_equal (object.size, 4);
    qn_store_s3_object_clear (&object);
    assert_int_equal (qn_store_s3_list (store, QN_STORE_S3_LIVE, 5000, &objects, &count, 10), 0);
    assert_int_equal (count, 2);
    assert_true (s_listed (objects, count, S3_C));
    assert_true (s_listed (objects, count, S3_D));
    qn_store_s3_objects_free (&objects, count);
    assert_int_equal (qn_store_blob_get (store, S3_B, NULL, NULL), 0);
    qn_store_destroy (&store);
    free (packed);
}

//  Rows damaged on disk (or written by a later format): get, ref,
//  set_state and add report an error, list skips them, delete removes
//  them.  The value offsets here follow the layout comment of qn_store.c.
static void
test_s3_objects_corrupt (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    qn_store_t *store = s_open (fixture);
    size_t packed_size;
    uint8_t *packed = s_packed_store ("b", &packed_size);
    assert_int_equal (qn_store_begin (store), 0);
    assert_int_equal (qn_store_s3_add (store, S3_A, "s3://b/good", packed, packed_size, 5, 10), 0);
    assert_int_equal (qn_store_commit (store), 0);
    qn_store_destroy (&store);
    free (packed);

    uint8_t *good;
    size_t good_size;
    s_raw_get (fixture, "s3objects", S3_A, 64, &good, &good_size);
    assert_true (good_size > 30);
    uint8_t *bad = (uint8_t *) malloc (good_size + 1);
    assert_non_null (bad);

    //  Each damaged variant under its own id; the last is a faithful copy,
    //  which must read back, to show the copying itself works
    char ids [9][65];
    for (int index = 0; index < 9; index++) {
        memset (ids [index], '1' + index, 64);
        ids [index][64] = '\0';
        size_t size = good_size;
        memcpy (bad, good, good_size);
        switch (index) {
            case 0: size = good_size - 1; break;                //  truncated
            case 1: bad [size++] = 0; break;                    //  trailing byte
            case 2: bad [0] = 2; break;                         //  unknown format
            case 3: bad [1] = 3; break;                         //  unknown state
            case 4: bad [22] = 0xff; bad [23] = 0xff; break;    //  location length
            case 5: bad [22] = 0; bad [23] = 0; break;          //  empty location
            case 6: bad [24 + 3] = 0; break;                    //  '\0' in location
            case 7: size = 5; break;                            //  far too short
            default: break;                                     //  intact copy
        }
        s_raw_put (fixture, "s3objects", ids [index], 64, bad, size);
    }
    //  Keys that are no object id
    s_raw_put (fixture, "s3objects", "short", 5, good, good_size);
    char upper [65];
    memset (upper, 'F', 64);
    upper [64] = '\0';
    s_raw_put (fixture, "s3objects", upper, 64, good, good_size);
    free (bad);
    free (good);

    store = s_open (fixture);
    qn_store_s3_object_t object;
    for (int index = 0; index < 8; index++) {
        assert_int_equal (qn_store_s3_get (store, ids [index], &object), -1);
        assert_null (object.location);
        assert_int_equal (qn_store_s3_get (store, ids [index], NULL), -1);
    }
    assert_non_null (strstr (qn_store_error (store), "S3 object record"));
    assert_int_equal (qn_store_s3_get (store, ids [8], &object), 1);
    assert_string_equal (object.location, "s3://b/good");
    assert_int_equal (object.size, 5);
    qn_store_s3_object_clear (&object);

    //  list skips every damaged row and returns the others
    qn_store_s3_object_t *objects;
    size_t count;
    assert_int_equal (qn_store_s3_list (store, QN_STORE_S3_LIVE, 100, &objects, &count, 100), 0);
    assert_int_equal (count, 2);
    assert_true (s_listed (objects, count, S3_A));
    assert_true (s_listed (objects, count, ids [8]));
    qn_store_s3_objects_free (&objects, count);
    for (int state_index = QN_STORE_S3_DELETING; state_index <= QN_STORE_S3_DELETED; state_index++) {
        assert_int_equal (qn_store_s3_list (store, state_index, 100, &objects, &count, 100), 0);
        assert_int_equal (count, 0);
    }

    assert_int_equal (qn_store_begin (store), 0);
    for (int index = 0; index < 8; index++) {
        assert_int_equal (qn_store_s3_ref (store, ids [index], 1, 20, NULL), -1);
        assert_int_equal (qn_store_s3_set_state (store, ids [index], QN_STORE_S3_DELETING, 20),
                          -1);
        //  not replaced: its references are unknown
        assert_int_equal (qn_store_s3_add (store, ids [index], "s3://b/new", NULL, 0, 1, 20), -1);
    }
    //  The failures above did not spoil the transaction
    assert_int_equal (qn_store_s3_ref (store, S3_A, 1, 20, NULL), 0);
    for (int index = 0; index < 8; index++)
        assert_int_equal (qn_store_s3_delete (store, ids [index]), 0);
    assert_int_equal (qn_store_commit (store), 0);
    for (int index = 0; index < 8; index++)
        assert_int_equal (qn_store_s3_get (store, ids [index], NULL), 0);
    assert_int_equal (qn_store_s3_list (store, QN_STORE_S3_LIVE, 100, &objects, &count, 100), 0);
    assert_int_equal (count, 1);
    assert_string_equal (objects [0].id, ids [8]);
    qn_store_s3_objects_free (&objects, count);
    qn_store_destroy (&store);
}

//  ---------------------------------------------------------------------
//  store_scan, the one cursor scan behind every listing: prefixes, both
//  directions, a start key, stop and failure.  Raw keys in the cache
//  sub-database (store_scan reads any key).

typedef struct {
    char seen [16][8];
    size_t count;
    size_t stop_after;          //  STORE_SCAN_STOP once this many were seen
    size_t fail_at;             //  STORE_SCAN_FAIL on this one (1-based), 0 never
} scan_log_t;

static store_scan_t
s_scan_visit (qn_store_t *self, const MDB_val *key, const MDB_val *value, void *arg)
{
    (void) self;
    (void) value;
    scan_log_t *log = (scan_log_t *) arg;
    if (log->count >= log->stop_after)
        return STORE_SCAN_STOP;
    assert_true (key->mv_size < sizeof log->seen [0] && log->count < 16);
    memcpy (log->seen [log->count], key->mv_data, key->mv_size);
    log->seen [log->count][key->mv_size] = '\0';
    log->count++;
    return log->count == log->fail_at? STORE_SCAN_FAIL: STORE_SCAN_NEXT;
}

static scan_log_t
s_scan (qn_store_t *store, const char *prefix, size_t prefix_len, const char *from,
        unsigned flags, size_t stop_after, size_t fail_at, int expected_rc)
{
    scan_log_t log = { .stop_after = stop_after, .fail_at = fail_at };
    MDB_txn *txn = store_read_begin (store);
    assert_non_null (txn);
    assert_int_equal (store_scan (store, txn, DB_CACHE, prefix, prefix_len, from,
                                  from? strlen (from): 0, flags, s_scan_visit, &log),
                      expected_rc);
    store_read_end (store, txn);
    return log;
}

static void
test_scan (void **state)
{
    qn_store_t *store = s_open ((fixture_t *) *state);
    static const char *keys [] = {
        "a", "a\xfe", "a\xff", "a\xff\x01", "a\xff\xff", "b", "b\x00x", "b\x01", "\xff\xff\x01"
    };
    size_t sizes [] = { 1, 2, 2, 3, 3, 1, 3, 2, 3 };
    assert_int_equal (qn_store_begin (store), 0);
    for (size_t index = 0; index < sizeof sizes / sizeof sizes [0]; index++)
        assert_int_equal (store_put_raw (store, DB_CACHE, keys [index], sizes [index], "", 0), 0);
    assert_int_equal (qn_store_commit (store), 0);

    //  Every key, both ways
    scan_log_t log = s_scan (store, NULL, 0, NULL, 0, 99, 0, 0);
    assert_int_equal (log.count, 9);
    assert_string_equal (log.seen [0], "a");
    assert_string_equal (log.seen [8], "\xff\xff\x01");
    log = s_scan (store, NULL, 0, NULL, STORE_SCAN_BACKWARD, 99, 0, 0);
    assert_int_equal (log.count, 9);
    assert_string_equal (log.seen [0], "\xff\xff\x01");
    assert_string_equal (log.seen [8], "a");

    //  A prefix ending in 0xff: its range ends before "b"
    log = s_scan (store, "a\xff", 2, NULL, 0, 99, 0, 0);
    assert_int_equal (log.count, 3);
    assert_string_equal (log.seen [0], "a\xff");
    assert_string_equal (log.seen [2], "a\xff\xff");
    log = s_scan (store, "a\xff", 2, NULL, STORE_SCAN_BACKWARD, 99, 0, 0);
    assert_int_equal (log.count, 3);
    assert_string_equal (log.seen [0], "a\xff\xff");
    assert_string_equal (log.seen [1], "a\xff\x01");
    assert_string_equal (log.seen [2], "a\xff");
    //  All 0xff: nothing lies past the range, so it starts from the last key
    log = s_scan (store, "\xff\xff", 2, NULL, STORE_SCAN_BACKWARD, 99, 0, 0);
    assert_int_equal (log.count, 1);
    assert_string_equal (log.seen [0], "\xff\xff\x01");
    //  A name and its '\0', as runs_by_workflow uses them
    log = s_scan (store, "b", 2, NULL, STORE_SCAN_BACKWARD, 99, 0, 0);
    assert_int_equal (log.count, 1);
    assert_int_equal (log.seen [0][0], 'b');
    assert_string_equal (log.seen [0] + 2, "x");
    //  Nothing with the prefix, either way
    log = s_scan (store, "c", 1, NULL, 0, 99, 0, 0);
    assert_int_equal (log.count, 0);
    log = s_scan (store, "c", 1, NULL, STORE_SCAN_BACKWARD, 99, 0, 0);
    assert_int_equal (log.count, 0);

    //  A start key inside the prefix's range
    log = s_scan (store, "a", 1, "a\xff\x01", 0, 99, 0, 0);
    assert_int_equal (log.count, 2);
    assert_string_equal (log.seen [0], "a\xff\x01");
    assert_string_equal (log.seen [1], "a\xff\xff");

    //  Stopped: a success with what was seen; failed: -1
    log = s_scan (store, NULL, 0, NULL, STORE_SCAN_BACKWARD, 2, 0, 0);
    assert_int_equal (log.count, 2);
    log = s_scan (store, "a", 1, NULL, 0, 99, 3, -1);
    assert_int_equal (log.count, 3);
    qn_store_destroy (&store);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup_teardown (test_open_reopen, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_artifact_records, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_s3_objects, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_s3_objects_corrupt, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_open_failures, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_abort_loses_writes, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_notif_outbox, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_crash_recovery, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_reads_see_open_txn, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_workflow_versions, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_run_ids, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_list_runs, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_active_runs, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_tasks, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_logs, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_metrics, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_agents, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_schema, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_secret_access, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_put_without_txn, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_corrupt_records_skipped, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_map_full, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_scan, s_setup, s_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
