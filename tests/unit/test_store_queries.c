/*  test_store_queries - the store's queries for the HTTP API: runs listed
    newest first through every filter and from a cursor, page after page,
    none lost or repeated, a request's work capped with a cursor to go on
    (damaged records skipped), log lines with their run-wide sequence, and
    the stored workflows with their newest versions, times and runs, and
    notification entries written by an earlier version of the outbox.
    Every test gets its own temporary store, removed afterwards.
*/
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qn_store.h"
#include "qn_store_internal.h"     //  store_put_raw, to damage a record

#define S_RUNS      3000
#define S_OWNERS    3

typedef struct {
    char root [256];
    char dir [300];
    qn_store_t *store;
} fixture_t;

static const char *s_workflows [] = { "alpha", "beta", "gamma" };
static const char *s_owners [S_OWNERS] = { "alice", "bob", "" };

//  The model: what the store holds for run id (1 .. S_RUNS); ids that
//  are multiples of 97 were never stored (a gap, as retention leaves).
static bool
s_stored (uint64_t id)
{
    return id % 97 != 0;
}

static const char *
s_workflow_of (uint64_t id)
{
    return s_workflows [id % 3];
}

static const char *
s_owner_of (uint64_t id)
{
    return s_owners [(id / 3) % S_OWNERS];
}

static Qanat__RunStatus
s_status_of (uint64_t id)
{
    return (Qanat__RunStatus) ((id * 7) % 6);
}

//  Mostly rising with the id, but not always (a clock set back)
static int64_t
s_created_of (uint64_t id)
{
    return 1000000 + (int64_t) id * 10 - (id % 50 == 0? 5000: 0);
}

static int
s_remove_entry (const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) st; (void) flag; (void) ftw;
    return remove (path);
}

static int
s_setup (void **state)
{
    fixture_t *fixture = (fixture_t *) calloc (1, sizeof (fixture_t));
    assert_non_null (fixture);
    const char *tmp = getenv ("TMPDIR");
    snprintf (fixture->root, sizeof fixture->root, "%s/qn_store_queries.XXXXXX",
              tmp && *tmp? tmp: "/tmp");
    assert_non_null (mkdtemp (fixture->root));
    snprintf (fixture->dir, sizeof fixture->dir, "%s/store", fixture->root);
    char *error = NULL;
    fixture->store = qn_store_new (fixture->dir, false, &error);
    if (!fixture->store)
        fail_msg ("qn_store_new: %s", error? error: "?");
    *state = fixture;
    return 0;
}

static int
s_teardown (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    qn_store_destroy (&fixture->store);
    nftw (fixture->root, s_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    free (fixture);
    return 0;
}

//  Stores the model's runs, each with a parameter (the listing must give
//  back whole records, not only what the filters read).
static void
s_fill_runs (qn_store_t *store)
{
    assert_int_equal (qn_store_begin (store), 0);
    for (uint64_t id = 1; id <= S_RUNS; id++) {
        if (!s_stored (id))
            continue;
        Qanat__Param param = QANAT__PARAM__INIT;
        param.name = (char *) "lr";
        param.value = (char *) "0.1";
        Qanat__Param *params [1] = { &param };
        Qanat__RunInfo run = QANAT__RUN_INFO__INIT;
        run.run_id = id;
        run.workflow = (char *) s_workflow_of (id);
        run.version = 1;
        run.status = s_status_of (id);
        run.created_us = s_created_of (id);
        run.owner = (char *) s_owner_of (id);
        run.filename = (char *) "wf.yaml";
        run.params = params;
        run.n_params = 1;
        assert_int_equal (qn_store_put_run (store, &run), 0);
    }
    assert_int_equal (qn_store_commit (store), 0);
}

static bool
s_matches (const qn_store_run_filter_t *filter, uint64_t id)
{
    if (!s_stored (id))
        return false;
    if (filter->workflow && *filter->workflow && strcmp (filter->workflow, s_workflow_of (id)))
        return false;
    if (filter->owner && *filter->owner && strcmp (filter->owner, s_owner_of (id)))
        return false;
    if (filter->has_status && (int) s_status_of (id) != filter->status)
        return false;
    if (filter->created_after_us && s_created_of (id) < filter->created_after_us)
        return false;
    if (filter->created_before_us && s_created_of (id) >= filter->created_before_us)
        return false;
    return true;
}

//  Pages through filter (its limit and cap as set) from the newest run
//  and checks that the runs come newest first, each once, exactly those
//  the model says, each page within its limit and each cursor below the
//  last.  Returns the number of pages.
static size_t
s_page_through (qn_store_t *store, qn_store_run_filter_t filter)
{
    uint64_t expected = S_RUNS + 1;         //  the next match must be below this
    size_t pages = 0;
    filter.before_run_id = 0;
    while (true) {
        Qanat__RunList *list = qn_store_find_runs (store, &filter);
        assert_non_null (list);
        pages++;
        assert_true (list->n_runs <= (filter.limit? filter.limit: 50));
        for (size_t i = 0; i < list->n_runs; i++) {
            Qanat__RunInfo *run = list->runs [i];
            //  The model's next match below the previous one
            uint64_t want = expected - 1;
            while (want > 0 && !s_matches (&filter, want))
                want--;
            if (run->run_id != want)
                fail_msg ("page %zu: got run %llu, expected %llu", pages,
                          (unsigned long long) run->run_id, (unsigned long long) want);
            assert_string_equal (run->workflow, s_workflow_of (want));
            assert_int_equal (run->n_params, 1);
            assert_string_equal (run->params [0]->value, "0.1");
            expected = want;
        }
        uint64_t next = list->next_before;
        qanat__run_list__free_unpacked (list, NULL);
        if (next == 0)
            break;
        assert_true (next < (filter.before_run_id? filter.before_run_id: S_RUNS + 1));
        assert_true (next <= expected);
        filter.before_run_id = next;
        assert_true (pages < 100000);
    }
    //  Nothing the model holds was left out at the end
    uint64_t rest = expected - 1;
    while (rest > 0 && !s_matches (&filter, rest))
        rest--;
    if (rest)
        fail_msg ("run %llu was never listed", (unsigned long long) rest);
    return pages;
}

static void
test_every_filter_paged (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_fill_runs (fixture->store);
    qn_store_run_filter_t filters [12];
    memset (filters, 0, sizeof filters);
    size_t count = 0;
    count++;                                            //  none
    filters [count++].workflow = "beta";
    filters [count++].owner = "alice";
    filters [count].has_status = true;
    filters [count++].status = QANAT__RUN_STATUS__RUN_FAILED;
    filters [count].has_status = true;                  //  RUN_QUEUED is 0: still a filter
    filters [count++].status = QANAT__RUN_STATUS__RUN_QUEUED;
    filters [count++].created_after_us = s_created_of (2000);
    filters [count++].created_before_us = s_created_of (700);
    filters [count].created_after_us = s_created_of (1200);
    filters [count++].created_before_us = s_created_of (1900);
    filters [count].workflow = "gamma";                 //  everything at once
    filters [count].owner = "bob";
    filters [count].has_status = true;
    filters [count].status = QANAT__RUN_STATUS__RUN_SUCCEEDED;
    filters [count].created_after_us = s_created_of (300);
    filters [count++].created_before_us = s_created_of (2700);
    filters [count++].owner = "nobody";                 //  matches nothing
    filters [count++].workflow = "delta";               //  no such workflow
    for (size_t f = 0; f < count; f++) {
        //  A small page, a small cap (pages come back short or empty with a
        //  cursor), and the defaults
        qn_store_run_filter_t filter = filters [f];
        filter.limit = 37;
        filter.scan_cap = 250;
        s_page_through (fixture->store, filter);
        filter.limit = 0;
        filter.scan_cap = 0;
        s_page_through (fixture->store, filter);
        filter.limit = 10000;
        assert_int_equal (s_page_through (fixture->store, filter), 1);
    }
}

//  One request examines at most scan_cap runs and says where to go on
static void
test_scan_cap (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_fill_runs (fixture->store);
    qn_store_run_filter_t filter = { 0 };
    filter.owner = "nobody";
    filter.scan_cap = 1000;
    Qanat__RunList *list = qn_store_find_runs (fixture->store, &filter);
    assert_non_null (list);
    assert_int_equal (list->n_runs, 0);
    //  1,000 stored runs down from 3,000, over the gaps at 2,910 and so on
    uint64_t examined = 0, id = S_RUNS + 1;
    while (examined < 1000)
        examined += s_stored (--id);
    assert_int_equal (list->next_before, id);
    qanat__run_list__free_unpacked (list, NULL);
    //  Without filters a page examines what it returns
    filter.owner = NULL;
    filter.limit = 5;
    filter.before_run_id = 100;
    list = qn_store_find_runs (fixture->store, &filter);
    assert_int_equal (list->n_runs, 5);
    assert_int_equal (list->runs [0]->run_id, 99);
    assert_int_equal (list->runs [2]->run_id, 96);       //  97 is a gap
    assert_int_equal (list->runs [4]->run_id, 94);
    assert_int_equal (list->next_before, 94);
    qanat__run_list__free_unpacked (list, NULL);
    //  The end: the first run, and nothing before it
    filter.before_run_id = 3;
    list = qn_store_find_runs (fixture->store, &filter);
    assert_int_equal (list->n_runs, 2);
    assert_int_equal (list->next_before, 0);
    qanat__run_list__free_unpacked (list, NULL);
    filter.before_run_id = 1;
    list = qn_store_find_runs (fixture->store, &filter);
    assert_int_equal (list->n_runs, 0);
    assert_int_equal (list->next_before, 0);
    qanat__run_list__free_unpacked (list, NULL);
    //  The old listing is the unfiltered one
    list = qn_store_list_runs (fixture->store, "alpha", 3);
    assert_int_equal (list->n_runs, 3);
    assert_int_equal (list->runs [0]->run_id, 3000);
    assert_int_equal (list->runs [2]->run_id, 2994);
    qanat__run_list__free_unpacked (list, NULL);
}

//  A record that is not a RunInfo is skipped by every listing; the ones
//  around it are listed
static void
test_damaged_records_skipped (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_fill_runs (fixture->store);
    static const uint8_t garbage [] = { 0x22, 0xff, 0xff, 0x01, 0x07 };     //  runs off the end
    static const uint8_t group [] = { 0x0b, 0x0c };                         //  a group
    uint8_t key [8];
    assert_int_equal (qn_store_begin (fixture->store), 0);
    store_be64_put (key, 2999);
    assert_int_equal (store_put_raw (fixture->store, DB_RUNS, key, 8, garbage, sizeof garbage), 0);
    store_be64_put (key, 2998);
    assert_int_equal (store_put_raw (fixture->store, DB_RUNS, key, 8, group, sizeof group), 0);
    assert_int_equal (qn_store_commit (fixture->store), 0);
    for (int filtered = 0; filtered < 2; filtered++) {
        qn_store_run_filter_t filter = { 0 };
        filter.limit = 3;
        filter.owner = filtered? "alice": NULL;
        Qanat__RunList *list = qn_store_find_runs (fixture->store, &filter);
        assert_non_null (list);
        for (size_t i = 0; i < list->n_runs; i++)
            assert_true (list->runs [i]->run_id != 2999 && list->runs [i]->run_id != 2998);
        assert_int_equal (list->runs [0]->run_id, filtered? 2997: 3000);
        qanat__run_list__free_unpacked (list, NULL);
    }
}

//  Each line read carries its run-wide log sequence; reading after one
//  gives exactly the lines after it, through the task and attempt filters
static void
test_log_sequence (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    qn_store_t *store = fixture->store;
    assert_int_equal (qn_store_begin (store), 0);
    static const char *tasks [] = { "a", "b" };
    for (int i = 0; i < 40; i++) {
        char text [32];
        snprintf (text, sizeof text, "line %d", i + 1);
        Qanat__LogChunk chunk = QANAT__LOG_CHUNK__INIT;
        chunk.data.data = (uint8_t *) text;
        chunk.data.len = strlen (text);
        Qanat__LogLine line = QANAT__LOG_LINE__INIT;
        line.task = (char *) tasks [i % 2];
        line.attempt = 1 + (i / 20);
        line.seq = 1000 + i;
        line.chunk = &chunk;
        uint64_t log_seq = 0;
        assert_int_equal (qn_store_append_log (store, 7, &line, &log_seq), 0);
        assert_int_equal (log_seq, i + 1);
    }
    assert_int_equal (qn_store_commit (store), 0);
    for (uint64_t after = 0; after <= 40; after += 7) {
        Qanat__LogLine **lines = NULL;
        size_t count = 0;
        uint64_t last = 0;
        assert_int_equal (qn_store_read_logs (store, 7, after, NULL, 0, 0, &lines, &count,
                                              &last), 0);
        assert_int_equal (count, 40 - after);
        for (size_t i = 0; i < count; i++) {
            char text [32];
            snprintf (text, sizeof text, "line %llu", (unsigned long long) (after + i + 1));
            assert_int_equal (lines [i]->log_seq, after + i + 1);
            assert_int_equal (lines [i]->seq, 1000 + after + i);
            assert_memory_equal (lines [i]->chunk->data.data, text, strlen (text));
        }
        qn_store_free_array (lines, count);
        //  Task b, attempt 2: lines 22, 24, ... 40
        assert_int_equal (qn_store_read_logs (store, 7, after, "b", 2, 0, &lines, &count,
                                              &last), 0);
        size_t want = 0;
        for (uint64_t s = after + 1; s <= 40; s++)
            want += s % 2 == 0 && s > 20;
        assert_int_equal (count, want);
        for (size_t i = 0; i < count; i++) {
            assert_true (lines [i]->log_seq > after);
            assert_true (lines [i]->log_seq % 2 == 0 && lines [i]->log_seq > 20);
            assert_string_equal (lines [i]->task, "b");
            assert_int_equal (lines [i]->attempt, 2);
        }
        qn_store_free_array (lines, count);
    }
}

static void
s_put_workflow (qn_store_t *store, const char *name, const char *text, uint32_t want)
{
    uint32_t version = 0;
    bool created = false;
    assert_int_equal (qn_store_begin (store), 0);
    assert_int_equal (qn_store_put_workflow (store, name, "f.yaml", text, strlen (text),
                                             &version, &created), 0);
    assert_int_equal (qn_store_commit (store), 0);
    assert_int_equal (version, want);
}

static void
test_list_workflows (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    qn_store_t *store = fixture->store;
    Qanat__WorkflowSummary **workflows = NULL;
    size_t count = 99;
    assert_int_equal (qn_store_list_workflows (store, &workflows, &count), 0);
    assert_int_equal (count, 0);
    s_put_workflow (store, "beta", "one", 1);
    s_put_workflow (store, "beta", "two", 2);
    s_put_workflow (store, "beta", "two", 2);       //  same text: no new version
    s_put_workflow (store, "alpha", "x", 1);
    s_put_workflow (store, "alpha2", "y", 1);       //  "alpha"'s runs are not its
    s_fill_runs (store);
    uint32_t latest = 0;
    assert_int_equal (qn_store_workflow_latest (store, "beta", &latest), 0);
    assert_int_equal (latest, 2);
    assert_int_equal (qn_store_workflow_latest (store, "nope", &latest), 0);
    assert_int_equal (latest, 0);
    assert_int_equal (qn_store_list_workflows (store, &workflows, &count), 0);
    assert_int_equal (count, 3);
    assert_string_equal (workflows [0]->name, "alpha");
    assert_string_equal (workflows [1]->name, "alpha2");
    assert_string_equal (workflows [2]->name, "beta");
    assert_int_equal (workflows [0]->latest, 1);
    assert_int_equal (workflows [2]->latest, 2);
    uint32_t runs [3] = { 0 };
    for (uint64_t id = 1; id <= S_RUNS; id++)
        if (s_stored (id))
            runs [id % 3]++;
    assert_int_equal (workflows [0]->runs, runs [0]);
    assert_int_equal (workflows [1]->runs, 0);
    assert_int_equal (workflows [2]->runs, runs [1]);
    for (size_t i = 0; i < count; i++)
        assert_true (workflows [i]->created_us > 1600000000LL * 1000000);
    qn_store_free_array (workflows, count);
    //  Each version keeps its own time
    Qanat__SubmitWorkflow *one = qn_store_get_workflow (store, "beta", 1);
    Qanat__SubmitWorkflow *two = qn_store_get_workflow (store, "beta", 0);
    assert_non_null (one);
    assert_non_null (two);
    assert_true (one->created_us > 0 && one->created_us <= two->created_us);
    assert_memory_equal (two->source.data, "two", 3);
    qanat__submit_workflow__free_unpacked (one, NULL);
    qanat__submit_workflow__free_unpacked (two, NULL);
}

//  An outbox written by an earlier version: a pending entry whole in
//  notif_outbox with an empty marker in notif_pending.  It is listed once,
//  found by the sender, and moves like a new one when it is delivered.
static void
test_older_outbox_entries (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    qn_store_t *store = fixture->store;
    Qanat__NotifEntry old = QANAT__NOTIF_ENTRY__INIT;
    old.run_id = 5;
    old.kind = "webhook";
    old.state = "pending";
    old.body.data = (uint8_t *) "{\"run\":5}";
    old.body.len = 9;
    uint8_t key [12];
    store_be64_put (key, 5);
    store_be32_put (key + 8, 0);
    assert_int_equal (qn_store_begin (store), 0);
    assert_int_equal (store_put_message (store, DB_NOTIF_OUTBOX, key, sizeof key, &old.base, 0), 0);
    assert_int_equal (store_put_raw (store, DB_NOTIF_PENDING, key, sizeof key, "", 0), 0);
    Qanat__NotifEntry fresh = QANAT__NOTIF_ENTRY__INIT;
    fresh.run_id = 6;
    fresh.kind = "slack";
    fresh.state = "pending";
    assert_int_equal (qn_store_put_notif (store, &fresh), 0);
    assert_int_equal (qn_store_commit (store), 0);

    Qanat__NotifEntry **entries = NULL;
    size_t count = 0;
    assert_int_equal (qn_store_list_notifs (store, 0, 10, &entries, &count), 0);
    assert_int_equal (count, 2);
    assert_int_equal (entries [0]->run_id, 6);
    assert_int_equal (entries [1]->run_id, 5);
    assert_int_equal (entries [1]->body.len, 9);
    qn_store_free_array (entries, count);
    assert_int_equal (qn_store_pending_notifs (store, 10, NULL, NULL, &entries, &count), 0);
    assert_int_equal (count, 2);
    assert_int_equal (entries [0]->run_id, 5);
    qn_store_free_array (entries, count);
    assert_int_equal (qn_store_notifs_pending (store, 5), 1);

    Qanat__NotifEntry *entry = qn_store_get_notif (store, 5, 0);
    assert_non_null (entry);
    char *was = entry->state;
    entry->state = "delivered";
    assert_int_equal (qn_store_begin (store), 0);
    assert_int_equal (qn_store_put_notif (store, entry), 0);
    assert_int_equal (qn_store_commit (store), 0);
    entry->state = was;
    protobuf_c_message_free_unpacked (&entry->base, NULL);
    assert_int_equal (qn_store_notifs_pending (store, 5), 0);
    assert_int_equal (qn_store_list_notifs (store, 5, 0, &entries, &count), 0);
    assert_int_equal (count, 1);
    assert_string_equal (entries [0]->state, "delivered");
    qn_store_free_array (entries, count);
    assert_int_equal (qn_store_pending_notifs (store, 10, NULL, NULL, &entries, &count), 0);
    assert_int_equal (count, 1);
    assert_int_equal (entries [0]->run_id, 6);
    qn_store_free_array (entries, count);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup_teardown (test_every_filter_paged, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_scan_cap, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_damaged_records_skipped, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_log_sequence, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_list_workflows, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_older_outbox_entries, s_setup, s_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
