/*  Unit tests for the scheduler's store records (qn_store_sched.c): tick
    records and the newest of them, cursors, pauses, pending run ends and
    fired triggers; what an aborted transaction leaves (nothing), and what
    survives reopening the store; pruning with retention. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include "qn_store.h"
#include "test_tmpdir.h"

static qn_store_t *
s_open (void)
{
    char *error = NULL;
    qn_store_t *store = qn_store_new (s_dir, false, &error);
    if (!store)
        fail_msg ("store: %s", error);
    return store;
}

static qn_store_tick_t
s_tick (int64_t when, uint64_t run_id, const char *reason)
{
    qn_store_tick_t tick;
    memset (&tick, 0, sizeof tick);
    tick.tick = when;
    tick.run_id = run_id;
    snprintf (tick.reason, sizeof tick.reason, "%s", reason);
    return tick;
}

static void
s_collect (void *arg, const char *name, uint32_t latest)
{
    char *out = (char *) arg;
    sprintf (out + strlen (out), "%s=%u;", name, latest);
}

static void
test_records (void **state)
{
    (void) state;
    qn_store_t *store = s_open ();
    qn_store_tick_t got;
    int64_t cursor = 0;
    assert_int_equal (qn_store_sched_tick_last (store, "nightly", 0, &got), 0);
    assert_int_equal (qn_store_sched_cursor_get (store, "nightly", 0, &cursor), 0);
    //  Writes need a transaction
    qn_store_tick_t tick = s_tick (1800000000, 7, "");
    assert_int_equal (qn_store_sched_tick_put (store, "nightly", 0, &tick), -1);

    assert_int_equal (qn_store_begin (store), 0);
    assert_int_equal (qn_store_sched_tick_put (store, "nightly", 0, &tick), 0);
    tick = s_tick (1800000060, 0, "max_active 1 reached (1 active)");
    assert_int_equal (qn_store_sched_tick_put (store, "nightly", 0, &tick), 0);
    tick = s_tick (1700000000, 3, "");
    assert_int_equal (qn_store_sched_tick_put (store, "nightly", 1, &tick), 0);
    //  A name that is a prefix of another keeps its own records
    tick = s_tick (1900000000, 9, "");
    assert_int_equal (qn_store_sched_tick_put (store, "nightly2", 0, &tick), 0);
    assert_int_equal (qn_store_sched_cursor_put (store, "nightly", 0, 1800000060), 0);
    assert_int_equal (qn_store_sched_set_paused (store, "nightly", true), 0);
    assert_int_equal (qn_store_sched_pending_put (store, 5), 0);
    assert_int_equal (qn_store_sched_pending_put (store, 2), 0);
    assert_int_equal (qn_store_sched_triggered_put (store, 5, "down", 6), 0);
    uint32_t version;
    bool created;
    assert_int_equal (qn_store_put_workflow (store, "nightly", "n.yaml", "x", 1, &version,
                                             &created), 0);
    assert_int_equal (qn_store_commit (store), 0);
    qn_store_destroy (&store);

    store = s_open ();
    assert_int_equal (qn_store_sched_tick_get (store, "nightly", 0, 1800000000, &got), 1);
    assert_int_equal (got.run_id, 7);
    assert_string_equal (got.reason, "");
    assert_int_equal (qn_store_sched_tick_get (store, "nightly", 0, 1800000001, &got), 0);
    assert_int_equal (qn_store_sched_tick_last (store, "nightly", 0, &got), 1);
    assert_int_equal (got.tick, 1800000060);
    assert_int_equal (got.run_id, 0);
    assert_string_equal (got.reason, "max_active 1 reached (1 active)");
    assert_int_equal (qn_store_sched_tick_last (store, "nightly", 1, &got), 1);
    assert_int_equal (got.tick, 1700000000);
    assert_int_equal (qn_store_sched_tick_last (store, "nightly", 2, &got), 0);
    assert_int_equal (qn_store_sched_cursor_get (store, "nightly", 0, &cursor), 1);
    assert_int_equal (cursor, 1800000060);
    assert_int_equal (qn_store_sched_paused (store, "nightly"), 1);
    assert_int_equal (qn_store_sched_paused (store, "nightly2"), 0);
    uint64_t ids [4];
    size_t count = 0;
    assert_int_equal (qn_store_sched_pending_list (store, ids, 4, &count), 0);
    assert_int_equal (count, 2);
    assert_int_equal (ids [0], 2);
    assert_int_equal (ids [1], 5);
    assert_int_equal (qn_store_sched_pending_list (store, ids, 1, &count), 0);
    assert_int_equal (count, 1);
    uint64_t run_id = 0;
    assert_int_equal (qn_store_sched_triggered_get (store, 5, "down", &run_id), 1);
    assert_int_equal (run_id, 6);
    assert_int_equal (qn_store_sched_triggered_get (store, 5, "dow", &run_id), 0);
    char listed [256] = "";
    assert_int_equal (qn_store_sched_latest (store, s_collect, listed), 0);
    assert_string_equal (listed, "nightly=1;");

    //  An aborted transaction leaves nothing
    assert_int_equal (qn_store_begin (store), 0);
    assert_int_equal (qn_store_sched_pending_delete (store, 5), 0);
    assert_int_equal (qn_store_sched_set_paused (store, "nightly", false), 0);
    tick = s_tick (1800000120, 8, "");
    assert_int_equal (qn_store_sched_tick_put (store, "nightly", 0, &tick), 0);
    qn_store_abort (store);
    assert_int_equal (qn_store_sched_paused (store, "nightly"), 1);
    assert_int_equal (qn_store_sched_tick_last (store, "nightly", 0, &got), 1);
    assert_int_equal (got.tick, 1800000060);
    assert_int_equal (qn_store_sched_pending_list (store, ids, 4, &count), 0);
    assert_int_equal (count, 2);

    //  Hostile names are refused, not stored
    assert_int_equal (qn_store_begin (store), 0);
    assert_int_equal (qn_store_sched_set_paused (store, "", true), -1);
    qn_store_abort (store);
    qn_store_destroy (&store);
}

//  Retention's pruning: the tick records of deleted runs and the skipped
//  ticks before them go, never a tick after the cursor nor a schedule's
//  newest; what a deleted run triggered goes once it is no longer pending.
//  A run's notifications go with it.
static void
test_prune (void **state)
{
    (void) state;
    qn_store_t *store = s_open ();
    int64_t t0 = 1900000000;
    uint64_t runs [6] = { 101, 0, 102, 0, 103, 104 };
    assert_int_equal (qn_store_begin (store), 0);
    for (int k = 0; k < 6; k++) {
        qn_store_tick_t tick = s_tick (t0 + 60 * k, runs [k], runs [k]? "": "paused");
        assert_int_equal (qn_store_sched_tick_put (store, "hourly", 0, &tick), 0);
    }
    assert_int_equal (qn_store_sched_cursor_put (store, "hourly", 0, t0 + 3 * 60), 0);
    assert_int_equal (qn_store_sched_triggered_put (store, 101, "down", 200), 0);
    assert_int_equal (qn_store_sched_triggered_put (store, 102, "down", 201), 0);
    assert_int_equal (qn_store_sched_pending_put (store, 102), 0);
    for (uint32_t channel = 0; channel < 2; channel++) {
        Qanat__NotifEntry entry = QANAT__NOTIF_ENTRY__INIT;
        entry.run_id = 101;
        entry.channel = channel;
        entry.kind = "webhook";
        entry.state = channel? "delivered": "pending";
        assert_int_equal (qn_store_put_notif (store, &entry), 0);
    }
    assert_int_equal (qn_store_commit (store), 0);
    assert_int_equal (qn_store_notifs_pending (store, 101), 1);
    assert_int_equal (qn_store_notifs_pending (store, 102), 0);
    assert_int_equal (qn_store_has_notif (store, 101, 1), 1);
    Qanat__NotifEntry **entries = NULL;
    size_t count = 0;
    assert_int_equal (qn_store_list_notifs (store, 101, 0, &entries, &count), 0);
    assert_int_equal (count, 2);
    assert_string_equal (entries [0]->state, "pending");
    assert_string_equal (entries [1]->state, "delivered");
    qn_store_free_array (entries, count);

    uint64_t deleted [] = { 104, 102, 101, 103 };
    size_t pruned = 0;
    assert_int_equal (qn_store_begin (store), 0);
    assert_int_equal (qn_store_sched_prune (store, "hourly", deleted, 4, &pruned), 0);
    assert_int_equal (qn_store_delete_notifs (store, 101, &pruned), 0);
    assert_int_equal (qn_store_commit (store), 0);
    //  t0 (run 101), t0+60 (skipped, older), t0+120 (run 102), the
    //  trigger of 101, its two notifications
    assert_int_equal (pruned, 6);
    qn_store_tick_t got;
    bool kept [6] = { false, false, false, true, true, true };
    for (int k = 0; k < 6; k++)
        assert_int_equal (qn_store_sched_tick_get (store, "hourly", 0, t0 + 60 * k, &got),
                          kept [k]? 1: 0);
    uint64_t run_id = 0;
    assert_int_equal (qn_store_sched_triggered_get (store, 101, "down", &run_id), 0);
    assert_int_equal (qn_store_sched_triggered_get (store, 102, "down", &run_id), 1);
    assert_int_equal (qn_store_list_notifs (store, 101, 0, &entries, &count), 0);
    assert_int_equal (count, 0);
    free (entries);
    assert_int_equal (qn_store_notifs_pending (store, 101), 0);
    //  Without a transaction nothing is pruned
    assert_int_equal (qn_store_sched_prune (store, "hourly", deleted, 4, &pruned), -1);
    qn_store_destroy (&store);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_records),
        cmocka_unit_test (test_prune),
    };
    return cmocka_run_group_tests (tests, s_tmpdir_setup, s_tmpdir_teardown);
}
