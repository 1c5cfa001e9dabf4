/*  Unit tests for qn_prom: the page is parsed back line by line and
    checked for the rules of the Prometheus text format 0.0.4 (one HELP
    and TYPE per family, samples grouped under it, escapes, histogram
    buckets). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "qn_prom.h"
#include "qanat.pb-c.h"

//  ---------------------------------------------------------------------
//  A checker of the text format

#define S_MAX_FAMILIES 64

typedef struct {
    char names [S_MAX_FAMILIES][128];
    char types [S_MAX_FAMILIES][16];
    size_t count;
} s_seen_t;

//  The family a sample name belongs to, for the current family
static bool
s_belongs (const char *sample, const char *family, const char *type)
{
    if (strcmp (sample, family) == 0)
        return strcmp (type, "histogram") != 0;
    if (strcmp (type, "histogram"))
        return false;
    size_t length = strlen (family);
    return strncmp (sample, family, length) == 0
        && (strcmp (sample + length, "_bucket") == 0 || strcmp (sample + length, "_sum") == 0
         || strcmp (sample + length, "_count") == 0);
}

//  Checks one sample line: name, optional {labels}, a number
static void
s_check_sample (const char *line, const char *family, const char *type)
{
    char name [160];
    size_t length = strcspn (line, "{ ");
    assert_true (length > 0 && length < sizeof name);
    memcpy (name, line, length);
    name [length] = 0;
    if (!s_belongs (name, family, type))
        fail_msg ("sample %s outside its family (now %s)", line, family);
    const char *at = line + length;
    if (*at == '{') {
        //  label="value" pairs; inside quotes only \\, \" and \n escapes
        at++;
        while (*at != '}') {
            while (*at && *at != '=')
                at++;
            assert_int_equal (*at++, '=');
            assert_int_equal (*at++, '"');
            while (*at != '"') {
                assert_true (*at && *at != '\n');
                if (*at == '\\') {
                    at++;
                    assert_non_null (strchr ("\\\"n", *at));
                }
                at++;
            }
            at++;
            if (*at == ',')
                at++;
        }
        at++;
    }
    assert_int_equal (*at++, ' ');
    char *end = NULL;
    strtod (at, &end);
    if (!end || *end || end == at)
        fail_msg ("not a number in %s", line);
}

//  Parses the page; fails on a rule broken
static void
s_parse (const char *text, s_seen_t *seen)
{
    memset (seen, 0, sizeof *seen);
    char *copy = strdup (text);
    assert_true (strlen (text) == 0 || text [strlen (text) - 1] == '\n');
    char *save = NULL;
    const char *family = "", *type = "";
    bool want_type = false;
    for (char *line = strtok_r (copy, "\n", &save); line; line = strtok_r (NULL, "\n", &save)) {
        if (strncmp (line, "# HELP ", 7) == 0) {
            assert_false (want_type);
            char name [128];
            assert_int_equal (sscanf (line + 7, "%127s", name), 1);
            for (size_t i = 0; i < seen->count; i++)
                if (strcmp (seen->names [i], name) == 0)
                    fail_msg ("family %s twice", name);
            assert_true (seen->count < S_MAX_FAMILIES);
            strcpy (seen->names [seen->count], name);
            want_type = true;
        }
        else
        if (strncmp (line, "# TYPE ", 7) == 0) {
            assert_true (want_type);
            char name [128], kind [16];
            assert_int_equal (sscanf (line + 7, "%127s %15s", name, kind), 2);
            assert_string_equal (name, seen->names [seen->count]);
            assert_non_null (strstr ("counter gauge histogram", kind));
            strcpy (seen->types [seen->count], kind);
            family = seen->names [seen->count];
            type = seen->types [seen->count];
            seen->count++;
            want_type = false;
        }
        else {
            assert_false (want_type);
            assert_int_not_equal (line [0], '#');
            s_check_sample (line, family, type);
        }
    }
    assert_false (want_type);
    free (copy);
}

//  The value of the line that starts with prefix, -1 when none
static double
s_value (const char *text, const char *prefix)
{
    for (const char *line = text; line && *line; line = strchr (line, '\n')) {
        if (*line == '\n')
            line++;
        if (strncmp (line, prefix, strlen (prefix)) == 0 && line [strlen (prefix)] == ' ')
            return strtod (line + strlen (prefix) + 1, NULL);
    }
    return -1;
}

//  Buckets of the histogram name: le increasing, counts not decreasing,
//  the last le="+Inf" equal to _count
static void
s_check_histogram (const char *text, const char *name, size_t buckets)
{
    char prefix [160];
    snprintf (prefix, sizeof prefix, "%s_bucket{le=\"", name);
    double last_bound = -INFINITY, last_count = -1;
    size_t found = 0;
    for (const char *line = strstr (text, prefix); line; line = strstr (line + 1, prefix)) {
        char *end = NULL;
        const char *bound_text = line + strlen (prefix);
        double bound = strncmp (bound_text, "+Inf", 4) == 0? INFINITY: strtod (bound_text, &end);
        assert_true (bound > last_bound);
        double count = strtod (strchr (line, ' ') + 1, NULL);
        assert_true (count >= last_count);
        last_bound = bound;
        last_count = count;
        found++;
    }
    assert_int_equal (found, buckets);
    assert_true (isinf (last_bound));
    snprintf (prefix, sizeof prefix, "%s_count", name);
    assert_true (s_value (text, prefix) == last_count);
}

//  ---------------------------------------------------------------------

static void
test_families (void **state)
{
    (void) state;
    qn_prom_t *prom = qn_prom_new ();
    assert_non_null (prom);
    char *exit_label = qn_prom_label_text ("reason", "exit");
    char *odd_label = qn_prom_label_text ("reason", "a\"b\\c\nd");
    qn_prom_counter (prom, "qanat_http_requests_total", "HTTP requests", "code=\"200\"", 10);
    qn_prom_gauge (prom, "qanat_up", "1 when up", NULL, 1);
    qn_prom_counter (prom, "qanat_http_requests_total", "other help", "code=\"404\"", 2);
    qn_prom_counter (prom, "qanat_ended_total", "ended\\with \"help\"\nsecond", exit_label, 3);
    qn_prom_counter (prom, "qanat_ended_total", NULL, odd_label, 0.5);
    //  Dropped: a bad name, a type that differs, a label text with a line end
    qn_prom_counter (prom, "9bad", "x", NULL, 1);
    qn_prom_counter (prom, "bad name", "x", NULL, 1);
    qn_prom_counter (prom, "qanat_up", "x", NULL, 2);
    qn_prom_gauge (prom, "qanat_up", "x", "a=\"1\"\n# TYPE x", 2);
    qn_prom_gauge (prom, "qanat_odd", NULL, NULL, NAN);
    qn_prom_gauge (prom, "qanat_big", NULL, NULL, -INFINITY);
    qn_prom_gauge (prom, "qanat_small", NULL, NULL, 1e-9);
    free (exit_label);
    free (odd_label);
    char *text = qn_prom_text (prom);
    assert_non_null (text);
    s_seen_t seen;
    s_parse (text, &seen);
    assert_int_equal (seen.count, 6);
    assert_string_equal (seen.names [0], "qanat_http_requests_total");
    assert_string_equal (seen.types [1], "gauge");
    //  Grouped: the 404 sample follows the 200 one under one header
    assert_non_null (strstr (text, "# HELP qanat_http_requests_total HTTP requests\n"
                                   "# TYPE qanat_http_requests_total counter\n"
                                   "qanat_http_requests_total{code=\"200\"} 10\n"
                                   "qanat_http_requests_total{code=\"404\"} 2\n"));
    assert_non_null (strstr (text, "# HELP qanat_ended_total ended\\\\with \"help\"\\nsecond\n"));
    assert_non_null (strstr (text, "qanat_ended_total{reason=\"a\\\"b\\\\c\\nd\"} 0.5\n"));
    assert_non_null (strstr (text, "qanat_up 1\n"));
    assert_null (strstr (text, "qanat_up 2"));
    assert_null (strstr (text, "bad"));
    assert_non_null (strstr (text, "qanat_odd NaN\n"));
    assert_non_null (strstr (text, "qanat_big -Inf\n"));
    assert_non_null (strstr (text, "qanat_small 1e-09\n"));
    free (text);
    qn_prom_destroy (&prom);
    assert_null (prom);
    qn_prom_destroy (&prom);
    assert_null (qn_prom_label_text ("bad-name", "x"));
    assert_null (qn_prom_label_text (NULL, "x"));
}

static void
test_histogram (void **state)
{
    (void) state;
    qn_prom_t *prom = qn_prom_new ();
    static const double bounds [] = { 0.1, 0.5, 0.3, 1 };
    //  Not monotonic at the source, and a bound out of order
    static const uint64_t cumulative [] = { 4, 2, 9, 7 };
    qn_prom_histogram (prom, "qanat_wait_seconds", "wait", bounds, cumulative, 4, 2.5, 5);
    static const double with_inf [] = { 1, INFINITY };
    static const uint64_t two [] = { 1, 3 };
    qn_prom_histogram (prom, "qanat_other_seconds", "other", with_inf, two, 2, 0.25, 3);
    qn_prom_histogram (prom, "qanat_empty_seconds", "empty", NULL, NULL, 0, 0, 0);
    char *text = qn_prom_text (prom);
    s_seen_t seen;
    s_parse (text, &seen);
    assert_int_equal (seen.count, 3);
    s_check_histogram (text, "qanat_wait_seconds", 4);
    assert_true (s_value (text, "qanat_wait_seconds_count") == 9);
    assert_true (s_value (text, "qanat_wait_seconds_sum") == 2.5);
    s_check_histogram (text, "qanat_other_seconds", 2);
    assert_true (s_value (text, "qanat_other_seconds_bucket{le=\"1\"}") == 1);
    s_check_histogram (text, "qanat_empty_seconds", 1);
    free (text);
    qn_prom_destroy (&prom);
}

//  A message shaped like qanat.Stats with the fields known by name, so
//  that they are tested whatever proto/qanat.proto holds today
typedef struct {
    ProtobufCMessage base;
    uint64_t events_committed;
    size_t n_attempts_ended;
    Qanat__Label **attempts_ended;
    size_t n_queue_depth;
    Qanat__Label **queue_depth;
    size_t n_agents_by_state;
    Qanat__Label **agents_by_state;
    size_t n_commit_latency_bucket;
    uint64_t *commit_latency_bucket;
    double commit_latency_sum_ms;
    size_t n_names;
    char **names;
    uint32_t running;
} s_stats_t;

#define S_REPEATED(field, kind, type_descriptor) \
    { #field, 0, PROTOBUF_C_LABEL_REPEATED, kind, offsetof (s_stats_t, n_##field), \
      offsetof (s_stats_t, field), type_descriptor, NULL, 0, 0, NULL, NULL }
#define S_SINGLE(field, kind) \
    { #field, 0, PROTOBUF_C_LABEL_NONE, kind, 0, offsetof (s_stats_t, field), NULL, NULL, \
      0, 0, NULL, NULL }

static const ProtobufCFieldDescriptor s_stats_fields [] = {
    S_SINGLE (events_committed, PROTOBUF_C_TYPE_UINT64),
    S_REPEATED (attempts_ended, PROTOBUF_C_TYPE_MESSAGE, &qanat__label__descriptor),
    S_REPEATED (queue_depth, PROTOBUF_C_TYPE_MESSAGE, &qanat__label__descriptor),
    S_REPEATED (agents_by_state, PROTOBUF_C_TYPE_MESSAGE, &qanat__label__descriptor),
    S_REPEATED (commit_latency_bucket, PROTOBUF_C_TYPE_UINT64, NULL),
    S_SINGLE (commit_latency_sum_ms, PROTOBUF_C_TYPE_DOUBLE),
    S_REPEATED (names, PROTOBUF_C_TYPE_STRING, NULL),
    S_SINGLE (running, PROTOBUF_C_TYPE_UINT32),
};

static const ProtobufCMessageDescriptor s_stats_descriptor = {
    PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC, "test.Stats", "Stats", "Test__Stats", "test",
    sizeof (s_stats_t), sizeof s_stats_fields / sizeof s_stats_fields [0], s_stats_fields,
    NULL, 0, NULL, NULL, NULL, NULL, NULL
};

static void
test_stats_by_name (void **state)
{
    (void) state;
    Qanat__Label exit_label = QANAT__LABEL__INIT, timeout = QANAT__LABEL__INIT,
                 bad = QANAT__LABEL__INIT, selector = QANAT__LABEL__INIT,
                 connected = QANAT__LABEL__INIT, lost = QANAT__LABEL__INIT;
    exit_label.key = "exit";
    exit_label.value = "12";
    timeout.key = "timeout";
    timeout.value = "3";
    bad.key = "odd";
    bad.value = "12 # not a count";
    selector.key = "env=\"gpu\"";
    selector.value = "4";
    connected.key = "connected";
    connected.value = "2";
    lost.key = "lost";
    lost.value = "0";
    Qanat__Label *ended [] = { &exit_label, &timeout, &bad, NULL };
    Qanat__Label *queues [] = { &selector };
    Qanat__Label *agents [] = { &connected, &lost };
    uint64_t buckets [] = { 1, 2, 5, 5, 9, 10, 10, 10, 11, 12 };
    char *names [] = { "x" };
    s_stats_t stats;
    memset (&stats, 0, sizeof stats);
    stats.base.descriptor = &s_stats_descriptor;
    stats.events_committed = 42;
    stats.attempts_ended = ended;
    stats.n_attempts_ended = 4;
    stats.queue_depth = queues;
    stats.n_queue_depth = 1;
    stats.agents_by_state = agents;
    stats.n_agents_by_state = 2;
    stats.commit_latency_bucket = buckets;
    stats.n_commit_latency_bucket = 10;
    stats.commit_latency_sum_ms = 1500;
    stats.names = names;
    stats.n_names = 1;
    stats.running = 7;
    qn_prom_t *prom = qn_prom_new ();
    qn_prom_add_stats (prom, &stats.base);
    char *text = qn_prom_text (prom);
    s_seen_t seen;
    s_parse (text, &seen);
    assert_int_equal (seen.count, 5);
    assert_true (s_value (text, "qanat_events_committed_total") == 42);
    assert_true (s_value (text, "qanat_attempts_ended_total{reason=\"exit\"}") == 12);
    assert_true (s_value (text, "qanat_attempts_ended_total{reason=\"timeout\"}") == 3);
    assert_null (strstr (text, "odd"));
    assert_true (s_value (text, "qanat_queue_depth{selector=\"env=\\\"gpu\\\"\"}") == 4);
    assert_true (s_value (text, "qanat_agents{state=\"lost\"}") == 0);
    assert_non_null (strstr (text, "# TYPE qanat_agents gauge\n"));
    assert_non_null (strstr (text, "# TYPE qanat_commit_latency_seconds histogram\n"));
    s_check_histogram (text, "qanat_commit_latency_seconds", 10);
    assert_true (s_value (text, "qanat_commit_latency_seconds_bucket{le=\"0.0005\"}") == 1);
    assert_true (s_value (text, "qanat_commit_latency_seconds_bucket{le=\"0.25\"}") == 11);
    assert_true (s_value (text, "qanat_commit_latency_seconds_count") == 12);
    assert_true (s_value (text, "qanat_commit_latency_seconds_sum") == 1.5);
    assert_null (strstr (text, "names"));
    assert_null (strstr (text, "running"));
    free (text);
    qn_prom_destroy (&prom);

    //  Fewer buckets than bounds: the last one repeats, still monotonic
    stats.n_commit_latency_bucket = 3;
    stats.attempts_ended = NULL;
    prom = qn_prom_new ();
    qn_prom_add_stats (prom, &stats.base);
    text = qn_prom_text (prom);
    s_parse (text, &seen);
    s_check_histogram (text, "qanat_commit_latency_seconds", 10);
    assert_true (s_value (text, "qanat_commit_latency_seconds_count") == 5);
    free (text);
    qn_prom_destroy (&prom);
}

static void
test_real_stats (void **state)
{
    (void) state;
    Qanat__Stats stats = QANAT__STATS__INIT;
    stats.events_committed = 7;
    stats.malformed_agent_frames = UINT64_MAX;
    qn_prom_t *prom = qn_prom_new ();
    qn_prom_add_stats (prom, &stats.base);
    qn_prom_add_stats (prom, NULL);
    char *text = qn_prom_text (prom);
    s_seen_t seen;
    s_parse (text, &seen);
    //  Every singular uint64 field of Stats is a counter, in full
    size_t counters = 0;
    for (unsigned i = 0; i < qanat__stats__descriptor.n_fields; i++)
        if (qanat__stats__descriptor.fields [i].type == PROTOBUF_C_TYPE_UINT64
        &&  qanat__stats__descriptor.fields [i].label != PROTOBUF_C_LABEL_REPEATED)
            counters++;
    size_t found = 0;
    for (size_t i = 0; i < seen.count; i++)
        if (strcmp (seen.types [i], "counter") == 0 && strncmp (seen.names [i], "qanat_", 6) == 0)
            found++;
    assert_true (found >= counters);
    assert_true (s_value (text, "qanat_events_committed_total") == 7);
    assert_non_null (strstr (text, "\nqanat_malformed_agent_frames_total 18446744073709551615\n"));
    assert_non_null (strstr (text, "# HELP qanat_events_committed_total events committed\n"));
    free (text);
    qn_prom_destroy (&prom);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_families),
        cmocka_unit_test (test_histogram),
        cmocka_unit_test (test_stats_by_name),
        cmocka_unit_test (test_real_stats),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
