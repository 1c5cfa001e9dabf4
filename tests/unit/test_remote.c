/*  Tests for qn_remote's pure parts: the lines of a remote engine's log
    (metric and output markers, plain lines), how an answer is described
    in a reason, and the attempt's idempotent id.  The calls themselves
    run in tests/integration/test_ray.py and test_airflow.py, against
    their fakes.
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
#include "qn_remote.h"

typedef struct {
    int logs, metrics;
    char last_log [256];
    char metric_name [64];
    double metric_value;
    int64_t metric_step;
    bool has_step;
    int system;
} seen_t;

static void
s_log (void *arg, const qn_attempt_key_t *key, Qanat__Stream stream, const void *data,
       size_t size, bool partial, int64_t time_us)
{
    (void) key; (void) partial; (void) time_us;
    seen_t *seen = (seen_t *) arg;
    if (stream == QANAT__STREAM__STREAM_SYSTEM)
        seen->system++;
    else {
        seen->logs++;
        snprintf (seen->last_log, sizeof (seen->last_log), "%.*s", (int) size,
                  (const char *) data);
    }
}

static void
s_metric (void *arg, const qn_attempt_key_t *key, const char *name, double value,
          int64_t step, bool has_step, int64_t time_us)
{
    (void) key; (void) time_us;
    seen_t *seen = (seen_t *) arg;
    seen->metrics++;
    snprintf (seen->metric_name, sizeof (seen->metric_name), "%s", name);
    seen->metric_value = value;
    seen->metric_step = step;
    seen->has_step = has_step;
}

static const qn_backend_events_t s_events = { .log = s_log, .metric = s_metric };

static const qn_backend_engine_t s_none = { .name = "test" };

static void
s_line (qn_backend_attempt_t *attempt, const char *values, const char *line, size_t payload)
{
    qn_remote_log_line (attempt, values, line, strlen (line), payload, 1);
}

static void
test_log_lines (void **state)
{
    (void) state;
    seen_t seen;
    memset (&seen, 0, sizeof (seen));
    qn_backend_front_t front;
    memset (&front, 0, sizeof (front));
    front.engine = &s_none;
    front.events = &s_events;
    front.arg = &seen;
    qn_backend_attempt_t attempt;
    memset (&attempt, 0, sizeof (attempt));
    attempt.front = &front;
    attempt.ring = qn_stacktrace_new (20);
    char values [] = "/tmp/qn-test-engine-XXXXXX";
    int fd = mkstemp (values);
    assert_true (fd >= 0);
    close (fd);

    s_line (&attempt, values, "plain text", 0);
    assert_int_equal (seen.logs, 1);
    assert_string_equal (seen.last_log, "plain text");

    s_line (&attempt, values, "::qanat-metric loss=0.5 step=3", 0);
    assert_int_equal (seen.metrics, 1);
    assert_string_equal (seen.metric_name, "loss");
    assert_true (seen.metric_value == 0.5 && seen.has_step && seen.metric_step == 3);
    assert_int_equal (seen.logs, 1);

    //  After an engine's prefix
    s_line (&attempt, values, "[t] {x.py:1} INFO - ::qanat-metric acc=0.9", 20);
    assert_int_equal (seen.metrics, 2);
    assert_false (seen.has_step);
    //  A marker not at the payload's start is text
    s_line (&attempt, values, "echo ::qanat-metric acc=1", 0);
    assert_int_equal (seen.logs, 2);

    //  Malformed markers: a system line each, nothing else
    s_line (&attempt, values, "::qanat-metric loss", 0);
    s_line (&attempt, values, "::qanat-metric loss=abc", 0);
    s_line (&attempt, values, "::qanat-output =x", 0);
    s_line (&attempt, values, "::qanat-output a b=x", 0);
    assert_int_equal (seen.system, 4);
    assert_int_equal (seen.metrics, 2);
    assert_int_equal (seen.logs, 2);

    //  Outputs go to the values file, the last of a name wins there
    s_line (&attempt, values, "::qanat-output total=20", 0);
    s_line (&attempt, values, "::qanat-output total=21\r", 0);
    s_line (&attempt, NULL, "::qanat-output lost=1", 0);
    assert_int_equal (seen.system, 5);
    FILE *file = fopen (values, "r");
    assert_non_null (file);
    char text [100] = "";
    size_t got = fread (text, 1, sizeof (text) - 1, file);
    fclose (file);
    text [got] = '\0';
    assert_string_equal (text, "total=20\ntotal=21\n");
    unlink (values);
    qn_stacktrace_destroy (&attempt.ring);
}

static void
test_describe (void **state)
{
    (void) state;
    char text [400];
    qn_remote_reply_t reply;
    memset (&reply, 0, sizeof (reply));
    reply.error = "Connection refused";
    qn_remote_describe (&reply, text, sizeof (text));
    assert_string_equal (text, "Connection refused");

    //  Airflow's problem+json: its detail
    reply.status = 404;
    reply.json = json_pack ("{s:s, s:s}", "title", "DAG not found",
                            "detail", "DAG with dag_id: 'x' not found");
    qn_remote_describe (&reply, text, sizeof (text));
    assert_string_equal (text, "HTTP 404: DAG with dag_id: 'x' not found");
    json_decref (reply.json);
    reply.json = NULL;

    //  Ray's plain text: the last line, after a traceback
    const char *ray = "Traceback (most recent call last):\n  File x\nValueError: Job with "
                      "submission_id q already exists.\n";
    reply.status = 400;
    reply.text = ray;
    reply.size = strlen (ray);
    qn_remote_describe (&reply, text, sizeof (text));
    assert_string_equal (text, "HTTP 400: ValueError: Job with submission_id q already exists.");

    reply.text = NULL;
    reply.size = 0;
    reply.status = 503;
    qn_remote_describe (&reply, text, sizeof (text));
    assert_string_equal (text, "HTTP 503");

    //  Retry-After wins over the backoff
    reply.retry_after_ms = 2000;
    assert_int_equal (qn_remote_wait_ms (&reply, 5), 2000);
    reply.retry_after_ms = -1;
    int64_t wait = qn_remote_wait_ms (&reply, 1);
    assert_true (wait > 0 && wait <= 500);
}

static void
test_attempt_ids (void **state)
{
    (void) state;
    static const qn_remote_ops_t ops = { .name = "test", .what = "test job" };
    qn_remote_t engine;
    memset (&engine, 0, sizeof (engine));
    engine.ops = &ops;
    engine.data_dir = (char *) "/tmp";
    qn_attempt_key_t key = { 7, 2, 3 };
    qn_remote_attempt_t attempt;
    memset (&attempt, 0, sizeof (attempt));
    //  The task's index, never its name: any engine takes the key
    assert_int_equal (qn_remote_attempt_init (&attempt, &engine, &key, NULL), 0);
    assert_string_equal (attempt.id, "qanat-7-2-3");
    assert_string_equal (attempt.workdir, "/tmp/test/qanat-7-2-3/work");
    assert_string_equal (attempt.values, "/tmp/test/qanat-7-2-3/values");
    qn_remote_attempt_fini (&attempt);

    //  A re-attach's id must be this attempt's, in the safe alphabet
    const char *bad [] = {
        "qanat-8-train-3", "qanat-7-train-4", "qanat-7-../x-3", "qanat-7--3", "", NULL
    };
    for (int i = 0; bad [i]; i++) {
        memset (&attempt, 0, sizeof (attempt));
        assert_int_equal (qn_remote_attempt_init (&attempt, &engine, &key, bad [i]), -1);
        qn_remote_attempt_fini (&attempt);
    }
    memset (&attempt, 0, sizeof (attempt));
    assert_int_equal (qn_remote_attempt_init (&attempt, &engine, &key, "qanat-7-train-3"), 0);
    assert_string_equal (attempt.engine_id, "qanat-7-train-3");
    qn_remote_attempt_fini (&attempt);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_log_lines),
        cmocka_unit_test (test_describe),
        cmocka_unit_test (test_attempt_ids),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
