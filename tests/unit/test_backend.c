/*  Tests for the backend front end (qn_backend.c): the attempt registry
    and start checks, the ops it implements for every engine (stop,
    set_paused, running, shutdown) through a fake engine, output streams
    (line packing, long lines, the stack-trace ring, the metrics file and
    the cursor position) and finishing.
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
#include "qn_backend.h"

//  ---------------------------------------------------------------------
//  What the events saw

#define S_MAX_EVENTS 64

typedef struct {
    char kind;                  //  'l'og, 'm'etric, 'f'inished, 'c'ursor
    Qanat__Stream stream;
    char text [16384];
    bool partial;
    double value;
    int exit_code;
    char trace [1024];
    Qanat__EndKind end_kind;
} s_event_t;

typedef struct {
    s_event_t events [S_MAX_EVENTS];
    size_t count;
} s_seen_t;

static s_event_t *
s_next (s_seen_t *seen, char kind)
{
    assert_true (seen->count < S_MAX_EVENTS);
    s_event_t *event = &seen->events [seen->count++];
    memset (event, 0, sizeof (*event));
    event->kind = kind;
    return event;
}

static void
s_ev_log (void *arg, const qn_attempt_key_t *key, Qanat__Stream stream, const void *data,
          size_t size, bool partial, int64_t time_us)
{
    (void) key;
    (void) time_us;
    s_event_t *event = s_next ((s_seen_t *) arg, 'l');
    event->stream = stream;
    assert_true (size < sizeof (event->text));
    memcpy (event->text, data, size);
    event->partial = partial;
}

static void
s_ev_metric (void *arg, const qn_attempt_key_t *key, const char *name, double value,
             int64_t step, bool has_step, int64_t time_us)
{
    (void) key;
    (void) step;
    (void) has_step;
    (void) time_us;
    s_event_t *event = s_next ((s_seen_t *) arg, 'm');
    snprintf (event->text, sizeof (event->text), "%s", name);
    event->value = value;
}

static void
s_ev_finished (void *arg, const qn_attempt_key_t *key, int exit_code, int sig,
               const char *stack_trace, const char *reason, Qanat__EndKind kind)
{
    (void) key;
    (void) sig;
    s_event_t *event = s_next ((s_seen_t *) arg, 'f');
    event->exit_code = exit_code;
    snprintf (event->text, sizeof (event->text), "%s", reason);
    snprintf (event->trace, sizeof (event->trace), "%s", stack_trace);
    event->end_kind = kind;
}

static void
s_ev_cursor (void *arg, const qn_attempt_key_t *key, const char *cursor)
{
    (void) key;
    s_event_t *event = s_next ((s_seen_t *) arg, 'c');
    snprintf (event->text, sizeof (event->text), "%s", cursor);
}

static const qn_backend_events_t s_events = {
    NULL, s_ev_log, s_ev_metric, s_ev_finished, s_ev_cursor
};


//  ---------------------------------------------------------------------
//  A fake engine: records what the front end asked of it

typedef struct {
    qn_backend_front_t front;
    char calls [256];           //  one letter per hook call
} s_fake_t;

static s_fake_t *s_fake;

static void
s_call (char letter)
{
    size_t at = strlen (s_fake->calls);
    assert_true (at + 1 < sizeof (s_fake->calls));
    s_fake->calls [at] = letter;
    s_fake->calls [at + 1] = '\0';
}

static void
s_fake_destroy (qn_backend_attempt_t *attempt)
{
    s_call ('d');
    qn_backend_attempt_fini (attempt);
    free (attempt);
}

static void
s_fake_stop (qn_backend_attempt_t *attempt, const char *reason, Qanat__EndKind kind)
{
    s_call ('s');
    qn_backend_attempt_stopping (attempt, reason, kind);
}

static void
s_fake_pause (qn_backend_attempt_t *attempt, bool paused)
{
    (void) attempt;
    s_call (paused? 'p': 'r');
}

static void
s_fake_end_all (qn_backend_front_t *front, int grace_ms, const char *reason)
{
    (void) front;
    assert_int_equal (grace_ms, 10);
    assert_string_equal (reason, "leaving");
    s_call ('e');
}

static void
s_fake_lost (qn_backend_attempt_t *attempt, const char *reason)
{
    s_call ('l');
    assert_null (attempt->handle);
    qn_backend_attempt_finished (attempt, -1, 0, reason, QANAT__END_KIND__END_LOST);
}

static void
s_fake_idle (qn_backend_front_t *front)
{
    assert_int_equal (zlistx_size (front->attempts), 0);
    s_call ('i');
}

static const qn_backend_engine_t s_engine = {
    "fake", s_fake_destroy, s_fake_stop, s_fake_pause, s_fake_end_all, s_fake_lost, s_fake_idle
};

static qn_backend_attempt_t *
s_attempt (s_fake_t *fake, uint64_t run_id, unsigned parts)
{
    qn_backend_attempt_t *attempt = (qn_backend_attempt_t *) calloc (1, sizeof (*attempt));
    assert_non_null (attempt);
    qn_attempt_key_t key = { run_id, 1, 0 };
    assert_int_equal (qn_backend_attempt_init (attempt, &fake->front, &key, parts), 0);
    return attempt;
}

static Qanat__Assign *
s_assign (uint64_t run_id, const char *const *argv, size_t argc)
{
    Qanat__Assign *assign = (Qanat__Assign *) calloc (1, sizeof (Qanat__Assign));
    Qanat__AttemptRef *ref = (Qanat__AttemptRef *) calloc (1, sizeof (Qanat__AttemptRef));
    qanat__assign__init (assign);
    qanat__attempt_ref__init (ref);
    ref->run_id = run_id;
    ref->task_index = 1;
    assign->attempt = ref;
    assign->n_argv = argc;
    assign->argv = (char **) argv;
    return assign;
}

static void
s_assign_free (Qanat__Assign *assign)
{
    free (assign->attempt);
    free (assign);
}

static void
test_registry_and_ops (void **state)
{
    (void) state;
    zloop_t *loop = zloop_new ();
    s_seen_t seen = { .count = 0 };
    s_fake_t fake;
    memset (&fake, 0, sizeof (fake));
    s_fake = &fake;
    qn_backend_config_t config = { .data_dir = "/tmp", .host = "here" };
    assert_int_equal (qn_backend_front_init (&fake.front, &s_engine, loop, &config, &s_events,
                                             &seen), 0);
    assert_string_equal (fake.front.host, "here");

    qn_backend_attempt_t *one = s_attempt (&fake, 1, 0);
    qn_backend_attempt_t *two = s_attempt (&fake, 2, 0);
    qn_backend_front_add (&fake.front, one);
    qn_backend_front_add (&fake.front, two);
    assert_int_equal (qn_backend_front_running (&fake), 2);
    qn_attempt_key_t key = { 2, 1, 0 };
    assert_ptr_equal (qn_backend_front_find (&fake.front, &key), two);
    key.attempt = 1;
    assert_null (qn_backend_front_find (&fake.front, &key));

    //  Start checks
    char error [200];
    const char *argv [] = { "run", NULL };
    Qanat__Assign *assign = s_assign (2, argv, 1);
    assert_int_equal (qn_backend_front_check (&fake.front, assign, QN_BACKEND_CHECK_COMMAND,
                                              &key, error, sizeof (error)), -1);
    assert_string_equal (error, "attempt is already running");
    assign->attempt->run_id = 3;
    assert_int_equal (qn_backend_front_check (&fake.front, assign, QN_BACKEND_CHECK_COMMAND,
                                              &key, error, sizeof (error)), 0);
    assert_int_equal (key.run_id, 3);
    assert_int_equal (key.task_index, 1);
    assign->n_argv = 2;
    assert_int_equal (qn_backend_front_check (&fake.front, assign, QN_BACKEND_CHECK_COMMAND,
                                              &key, error, sizeof (error)), -1);
    assert_string_equal (error, "missing argument 1");
    const char *empty [] = { "" };
    assign->argv = (char **) empty;
    assign->n_argv = 1;
    assert_int_equal (qn_backend_front_check (&fake.front, assign, QN_BACKEND_CHECK_COMMAND,
                                              &key, error, sizeof (error)), -1);
    assert_string_equal (error, "empty command");
    //  Without CHECK_COMMAND the engine checks the command itself
    assert_int_equal (qn_backend_front_check (&fake.front, assign, 0, &key, error,
                                              sizeof (error)), 0);
    s_assign_free (assign);

    //  stop: the engine's, for a known attempt; the first reason stays
    key = (qn_attempt_key_t) { 1, 1, 0 };
    assert_int_equal (qn_backend_front_stop (&fake, &key, "canceled",
                                             QANAT__END_KIND__END_CANCELED), 0);
    assert_int_equal (qn_backend_front_stop (&fake, &key, NULL, QANAT__END_KIND__END_LOST), 0);
    assert_string_equal (one->stop_reason, "canceled");
    assert_int_equal (one->stop_kind, QANAT__END_KIND__END_CANCELED);
    key.run_id = 9;
    assert_int_equal (qn_backend_front_stop (&fake, &key, "x", QANAT__END_KIND__END_LOST), -1);
    assert_string_equal (fake.calls, "ss");

    //  set_paused: once per change, for every attempt
    qn_backend_front_set_paused (&fake, true);
    qn_backend_front_set_paused (&fake, true);
    qn_backend_front_set_paused (&fake, false);
    assert_string_equal (fake.calls, "sspprr");
    assert_false (fake.front.paused);

    //  The list copy
    size_t count = 0;
    qn_backend_attempt_t **list = qn_backend_front_list (&fake.front, &count);
    assert_int_equal (count, 2);
    assert_ptr_equal (list [0], one);
    assert_ptr_equal (list [1], two);
    free (list);

    //  shutdown: end_all, then each attempt lost and destroyed, then idle
    fake.calls [0] = '\0';
    qn_backend_front_shutdown (&fake, 10, "leaving");
    assert_string_equal (fake.calls, "eldldi");
    assert_int_equal (qn_backend_front_running (&fake), 0);
    assert_int_equal (seen.count, 2);
    assert_int_equal (seen.events [0].kind, 'f');
    assert_string_equal (seen.events [0].text, "leaving");
    assert_int_equal (seen.events [0].end_kind, QANAT__END_KIND__END_LOST);
    //  ...and nothing with nothing to shut down
    fake.calls [0] = '\0';
    qn_backend_front_shutdown (&fake, 10, "leaving");
    assert_string_equal (fake.calls, "");

    //  remove, and fini destroys what is left
    one = s_attempt (&fake, 1, 0);
    two = s_attempt (&fake, 2, 0);
    qn_backend_front_add (&fake.front, one);
    qn_backend_front_add (&fake.front, two);
    qn_backend_front_remove (&fake.front, one);
    assert_int_equal (qn_backend_front_running (&fake), 1);
    qn_backend_front_fini (&fake.front);
    assert_string_equal (fake.calls, "dd");
    assert_null (fake.front.attempts);
    zloop_destroy (&loop);
}

static void
test_streams (void **state)
{
    (void) state;
    zloop_t *loop = zloop_new ();
    s_seen_t seen = { .count = 0 };
    s_fake_t fake;
    memset (&fake, 0, sizeof (fake));
    s_fake = &fake;
    assert_int_equal (qn_backend_front_init (&fake.front, &s_engine, loop, NULL, &s_events,
                                             &seen), 0);
    assert_string_equal (fake.front.host, "");
    qn_backend_attempt_t *attempt = s_attempt (&fake, 1, QN_BACKEND_ATTEMPT_STREAMS);

    //  Unpacked: one event a line, the unterminated rest at the flush
    qn_backend_stream_feed (attempt, &attempt->out, "a\nb\nc", 5);
    assert_int_equal (seen.count, 2);
    assert_string_equal (seen.events [0].text, "a");
    assert_int_equal (seen.events [0].stream, QANAT__STREAM__STREAM_STDOUT);
    assert_string_equal (seen.events [1].text, "b");
    qn_backend_stream_flush (attempt, &attempt->out);
    assert_int_equal (seen.count, 3);
    assert_string_equal (seen.events [2].text, "c");
    seen.count = 0;

    //  Packed: whole lines of one feed in one event, up to pack_max bytes
    attempt->err.pack_max = 8;
    qn_backend_stream_feed (attempt, &attempt->err, "one\ntwo\nthree\n", 14);
    assert_int_equal (seen.count, 2);
    assert_string_equal (seen.events [0].text, "one\ntwo");
    assert_int_equal (seen.events [0].stream, QANAT__STREAM__STREAM_STDERR);
    assert_string_equal (seen.events [1].text, "three");
    seen.count = 0;

    //  A long line: its pieces alone, the last one too
    char line [QN_LINEBUF_CHUNK + 11];
    memset (line, 'x', sizeof (line) - 1);
    line [sizeof (line) - 1] = '\n';
    attempt->err.pack_max = 8192;
    qn_backend_stream_feed (attempt, &attempt->err, "before\n", 7);
    qn_backend_stream_feed (attempt, &attempt->err, line, sizeof (line));
    assert_int_equal (seen.count, 3);
    assert_string_equal (seen.events [0].text, "before");
    assert_true (seen.events [1].partial);
    assert_int_equal (strlen (seen.events [1].text), QN_LINEBUF_CHUNK);
    assert_false (seen.events [2].partial);
    assert_string_equal (seen.events [2].text, "xxxxxxxxxx");
    seen.count = 0;

    //  stderr is traced: a failure carries its last lines, a success none
    qn_backend_attempt_finished (attempt, 0, 0, "", QANAT__END_KIND__END_EXIT);
    assert_string_equal (seen.events [0].trace, "");
    qn_backend_attempt_finished (attempt, 1, 0, "exit code 1", QANAT__END_KIND__END_EXIT);
    assert_non_null (strstr (seen.events [1].trace, "one\ntwo\nthree\nbefore\nxxx"));
    seen.count = 0;

    //  The metrics file, read from an offset; the cursor position leaves
    //  out what waits for its end of line
    char path [] = "/tmp/qanat-test-backend-XXXXXX";
    int fd = mkstemp (path);
    assert_true (fd != -1);
    const char *text = "skipped 1\nloss 0.5\nbad line\nacc 0.7\npartial 1";
    assert_int_equal (write (fd, text, strlen (text)), (ssize_t) strlen (text));
    close (fd);
    assert_int_equal (qn_backend_stream_open (&attempt->metrics, path, 10), 0);
    assert_true (qn_backend_stream_read (attempt, &attempt->metrics, 1024 * 1024));
    assert_int_equal (seen.count, 3);
    assert_int_equal (seen.events [0].kind, 'm');
    assert_string_equal (seen.events [0].text, "loss");
    assert_true (seen.events [0].value == 0.5);
    assert_int_equal (seen.events [1].kind, 'l');
    assert_int_equal (seen.events [1].stream, QANAT__STREAM__STREAM_SYSTEM);
    assert_non_null (strstr (seen.events [1].text, "ignored metrics line 2"));
    assert_string_equal (seen.events [2].text, "acc");
    assert_int_equal (qn_backend_stream_position (&attempt->metrics), (int64_t) strlen (text) - 9);
    qn_backend_stream_flush (attempt, &attempt->metrics);
    assert_int_equal (seen.count, 4);
    assert_string_equal (seen.events [3].text, "partial");
    //  No file: nothing to read
    qn_backend_stream_close (&attempt->metrics);
    assert_true (qn_backend_stream_read (attempt, &attempt->metrics, 10));
    assert_int_equal (qn_backend_stream_open (&attempt->metrics, "/nonexistent/x", 0), -1);
    unlink (path);
    seen.count = 0;

    //  Cursors: only when they moved
    qn_backend_attempt_cursor (attempt, "1:2:3");
    qn_backend_attempt_cursor (attempt, "1:2:3");
    qn_backend_attempt_cursor (attempt, "4:2:3");
    assert_int_equal (seen.count, 2);
    assert_string_equal (seen.events [1].text, "4:2:3");
    seen.count = 0;

    //  System lines, timeouts, stop reasons
    qn_backend_attempt_system_log (attempt, "%d left", 3);
    assert_string_equal (seen.events [0].text, "3 left");
    char reason [64];
    assert_false (qn_backend_attempt_overdue (attempt, 100, reason, sizeof (reason)));
    attempt->timeout_s = 7;
    attempt->deadline_ms = 50;
    assert_false (qn_backend_attempt_overdue (attempt, 49, reason, sizeof (reason)));
    assert_true (qn_backend_attempt_overdue (attempt, 50, reason, sizeof (reason)));
    assert_string_equal (reason, "timed out after 7s");
    assert_true (qn_backend_attempt_stopping (attempt, reason, QANAT__END_KIND__END_TIMEOUT));
    assert_false (qn_backend_attempt_stopping (attempt, "canceled", QANAT__END_KIND__END_CANCELED));
    assert_string_equal (attempt->stop_reason, "timed out after 7s");
    assert_false (qn_backend_attempt_overdue (attempt, 100, reason, sizeof (reason)));

    qn_backend_front_add (&fake.front, attempt);
    qn_backend_front_fini (&fake.front);
    zloop_destroy (&loop);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_registry_and_ops),
        cmocka_unit_test (test_streams),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
