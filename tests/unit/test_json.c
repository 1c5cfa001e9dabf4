/*  Unit tests for qn_json: protocol messages as JSON by the HTTP
    contract's rules, times, parameters and errors. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "qn_json.h"
#include "qanat.pb-c.h"

//  The key's string value; fails the test when it is not a string
static const char *
s_text (const json_t *object, const char *key)
{
    json_t *value = json_object_get (object, key);
    assert_true (json_is_string (value));
    return json_string_value (value);
}

static json_int_t
s_int (const json_t *object, const char *key)
{
    json_t *value = json_object_get (object, key);
    assert_true (json_is_integer (value));
    return json_integer_value (value);
}

static void
test_enums_and_defaults (void **state)
{
    (void) state;
    Qanat__RunInfo run = QANAT__RUN_INFO__INIT;
    run.status = QANAT__RUN_STATUS__RUN_SUCCEEDED_WITH_WARNINGS;
    json_t *json = qn_json_from_message (&run.base);
    assert_non_null (json);
    assert_string_equal (s_text (json, "status"), "succeeded_with_warnings");
    //  Every scalar present with its proto3 default
    assert_int_equal (s_int (json, "run_id"), 0);
    assert_string_equal (s_text (json, "workflow"), "");
    assert_int_equal (s_int (json, "version"), 0);
    assert_true (json_is_false (json_object_get (json, "cancel_requested")));
    assert_true (json_is_null (json_object_get (json, "created")));
    assert_true (json_is_null (json_object_get (json, "finished")));
    assert_null (json_object_get (json, "created_us"));
    assert_true (json_is_null (json_object_get (json, "duration_s")));
    assert_true (json_is_array (json_object_get (json, "tasks")));
    assert_int_equal (json_array_size (json_object_get (json, "tasks")), 0);
    assert_true (json_is_object (json_object_get (json, "params")));
    json_decref (json);

    Qanat__LogChunk chunk = QANAT__LOG_CHUNK__INIT;
    chunk.stream = QANAT__STREAM__STREAM_STDERR;
    json = qn_json_from_message (&chunk.base);
    assert_string_equal (s_text (json, "stream"), "stderr");
    assert_string_equal (s_text (json, "data"), "");
    json_decref (json);

    Qanat__TaskInfo task = QANAT__TASK_INFO__INIT;
    task.status = QANAT__TASK_STATUS__TASK_RUNNING;
    json = qn_json_from_message (&task.base);
    assert_string_equal (s_text (json, "status"), "running");
    json_decref (json);

    Qanat__Finished finished = QANAT__FINISHED__INIT;
    finished.kind = QANAT__END_KIND__END_START_FAILED;
    json = qn_json_from_message (&finished.base);
    assert_string_equal (s_text (json, "kind"), "start_failed");
    //  A value the enum does not name: its number
    finished.kind = (Qanat__EndKind) 77;
    json_decref (json);
    json = qn_json_from_message (&finished.base);
    assert_int_equal (s_int (json, "kind"), 77);
    json_decref (json);
}

static void
test_times (void **state)
{
    (void) state;
    char text [QN_JSON_TIME_SIZE];
    int64_t us = 0;
    qn_json_time_format (0, text);
    assert_string_equal (text, "");
    qn_json_time_format (1, text);
    assert_string_equal (text, "1970-01-01T00:00:00.000001Z");
    qn_json_time_format (-1, text);
    assert_string_equal (text, "1969-12-31T23:59:59.999999Z");
    qn_json_time_format (INT64_C (1796666400123456), text);
    assert_string_equal (text, "2026-12-07T18:00:00.123456Z");
    //  Leap days: 2000 (divisible by 400) has one, 1900 and 2100 do not
    assert_int_equal (qn_json_time_parse ("2000-02-29T12:00:00Z", &us), 0);
    qn_json_time_format (us, text);
    assert_string_equal (text, "2000-02-29T12:00:00.000000Z");
    assert_int_equal (qn_json_time_parse ("2100-02-29T00:00:00Z", &us), -1);
    assert_int_equal (qn_json_time_parse ("1900-02-29T00:00:00Z", &us), -1);
    assert_int_equal (qn_json_time_parse ("2024-02-29T00:00:00Z", &us), 0);
    assert_int_equal (qn_json_time_parse ("2024-04-31T00:00:00Z", &us), -1);
    //  Offsets
    assert_int_equal (qn_json_time_parse ("2026-12-07T19:30:00.5+01:30", &us), 0);
    qn_json_time_format (us, text);
    assert_string_equal (text, "2026-12-07T18:00:00.500000Z");
    assert_int_equal (qn_json_time_parse ("2026-12-07T16:00:00-02:00", &us), 0);
    assert_int_equal (us, INT64_C (1796666400000000));
    assert_int_equal (qn_json_time_parse ("1969-12-31T23:59:59.999999Z", &us), 0);
    assert_int_equal (us, -1);
    assert_int_equal (qn_json_time_parse ("0000-01-01T00:00:00Z", &us), 0);
    qn_json_time_format (us, text);
    assert_string_equal (text, "0000-01-01T00:00:00.000000Z");
    //  Against the C library, one day in every 97 over 1900..2200, and
    //  round trips with odd microseconds
    for (int64_t day = -25567; day < 84000; day += 97) {
        int64_t seconds = day * 86400 + 3723;
        time_t t = (time_t) seconds;
        struct tm tm;
        gmtime_r (&t, &tm);
        char expected [64];
        snprintf (expected, sizeof expected, "%04d-%02d-%02dT%02d:%02d:%02d.000007Z",
                  tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                  tm.tm_sec);
        qn_json_time_format (seconds * 1000000 + 7, text);
        assert_string_equal (text, expected);
        assert_int_equal (qn_json_time_parse (text, &us), 0);
        assert_int_equal (us, seconds * 1000000 + 7);
    }
    //  Out of range years: no text (null in JSON), never a crash
    qn_json_time_format (INT64_MAX, text);
    assert_string_equal (text, "");
    qn_json_time_format (INT64_MIN, text);
    assert_string_equal (text, "");
    static const char *bad [] = {
        "", "2026", "2026-12-07", "2026-12-07T18:00:00", "2026-12-07 18:00:00Z",
        "2026-13-01T00:00:00Z", "2026-00-01T00:00:00Z", "2026-12-00T00:00:00Z",
        "2026-12-07T24:00:00Z", "2026-12-07T18:60:00Z", "2026-12-07T18:00:61Z",
        "2026-12-07T18:00:00.Z", "2026-12-07T18:00:00.1234567890Z", "2026-12-07T18:00:00Zjunk",
        "2026-12-07T18:00:00+1:00", "2026-12-07T18:00:00+24:00", "-026-12-07T18:00:00Z",
        "2026-12-07T18:00:00+01:60", "2026-1a-07T18:00:00Z", NULL
    };
    for (size_t i = 0; bad [i]; i++)
        assert_int_equal (qn_json_time_parse (bad [i], &us), -1);
    assert_int_equal (qn_json_time_parse (NULL, &us), -1);
    assert_int_equal (qn_json_time_parse ("2026-12-07t18:00:00.123456789z", &us), 0);
    assert_int_equal (us, INT64_C (1796666400123456));

    Qanat__LogChunk chunk = QANAT__LOG_CHUNK__INIT;
    chunk.time_us = INT64_C (1796666400123456);
    json_t *json = qn_json_from_message (&chunk.base);
    assert_string_equal (s_text (json, "time"), "2026-12-07T18:00:00.123456Z");
    assert_null (json_object_get (json, "time_us"));
    json_decref (json);
}

static void
test_labels (void **state)
{
    (void) state;
    Qanat__Label env = QANAT__LABEL__INIT, gpu = QANAT__LABEL__INIT, again = QANAT__LABEL__INIT;
    env.key = "env";
    env.value = "onprem";
    gpu.key = "gpu\xff";
    gpu.value = "a100";
    again.key = "env";
    again.value = "cloud";
    Qanat__Label *labels [] = { &env, &gpu, &again };
    Qanat__AgentInfo agent = QANAT__AGENT_INFO__INIT;
    agent.name = "a1";
    agent.labels = labels;
    agent.n_labels = 3;
    json_t *json = qn_json_from_message (&agent.base);
    json_t *object = json_object_get (json, "labels");
    assert_true (json_is_object (object));
    assert_int_equal (json_object_size (object), 2);
    assert_string_equal (s_text (object, "env"), "cloud");
    assert_string_equal (s_text (object, "gpu\xEF\xBF\xBD"), "a100");
    //  Other repeated messages stay arrays; repeated strings are arrays
    assert_true (json_is_array (json_object_get (json, "backends")));
    json_decref (json);
}

//  Sets Param.type when the descriptor has it; false when it does not
static bool
s_set_type (Qanat__Param *param, const char *type)
{
    const ProtobufCFieldDescriptor *field =
        protobuf_c_message_descriptor_get_field_by_name (&qanat__param__descriptor, "type");
    if (!field)
        return false;
    *(const char **) ((char *) param + field->offset) = type;
    return true;
}

static void
test_params (void **state)
{
    (void) state;
    json_t *value = qn_json_param_value ("42", "int");
    assert_true (json_is_integer (value));
    assert_int_equal (json_integer_value (value), 42);
    json_decref (value);
    value = qn_json_param_value ("-9223372036854775808", "int");
    assert_int_equal (json_integer_value (value), INT64_MIN);
    json_decref (value);
    //  Values that do not parse as their type stay strings
    static const char *not_int [] = { "", " 4", "4x", "99999999999999999999", "0x10", NULL };
    for (size_t i = 0; not_int [i]; i++) {
        value = qn_json_param_value (not_int [i], "int");
        assert_true (json_is_string (value));
        assert_string_equal (json_string_value (value), not_int [i]);
        json_decref (value);
    }
    value = qn_json_param_value ("0.25", "float");
    assert_true (json_is_real (value));
    assert_true (json_real_value (value) == 0.25);
    json_decref (value);
    static const char *not_float [] = { "1e999", "nan", "inf", "1.5.", "", NULL };
    for (size_t i = 0; not_float [i]; i++) {
        value = qn_json_param_value (not_float [i], "float");
        assert_true (json_is_string (value));
        json_decref (value);
    }
    value = qn_json_param_value ("TRUE", "bool");
    assert_true (json_is_true (value));
    json_decref (value);
    value = qn_json_param_value ("off", "bool");
    assert_true (json_is_false (value));
    json_decref (value);
    value = qn_json_param_value ("maybe", "bool");
    assert_true (json_is_string (value));
    json_decref (value);
    value = qn_json_param_value ("42", NULL);
    assert_true (json_is_string (value));
    json_decref (value);
    value = qn_json_param_value ("file:abc", "artifact");
    assert_string_equal (json_string_value (value), "file:abc");
    json_decref (value);

    //  As RunInfo carries them: typed when Param has its type field
    Qanat__Param lr = QANAT__PARAM__INIT, epochs = QANAT__PARAM__INIT, name = QANAT__PARAM__INIT;
    lr.name = "lr";
    lr.value = "0.5";
    epochs.name = "epochs";
    epochs.value = "10";
    name.name = "name";
    name.value = "10";
    bool typed = s_set_type (&lr, "float") && s_set_type (&epochs, "int")
              && s_set_type (&name, "string");
    Qanat__Param *params [] = { &lr, &epochs, &name };
    Qanat__RunInfo run = QANAT__RUN_INFO__INIT;
    run.params = params;
    run.n_params = 3;
    json_t *json = qn_json_from_message (&run.base);
    json_t *object = json_object_get (json, "params");
    assert_int_equal (json_object_size (object), 3);
    assert_string_equal (s_text (object, "name"), "10");
    if (typed) {
        assert_true (json_real_value (json_object_get (object, "lr")) == 0.5);
        assert_int_equal (s_int (object, "epochs"), 10);
    }
    else {
        assert_string_equal (s_text (object, "lr"), "0.5");
        assert_string_equal (s_text (object, "epochs"), "10");
    }
    json_decref (json);
}

static void
test_param_text (void **state)
{
    (void) state;
    char *text = NULL;
    json_t *value = json_integer (-12);
    assert_int_equal (qn_json_param_text (value, &text), 0);
    assert_string_equal (text, "-12");
    free (text);
    json_decref (value);
    value = json_real (0.1);
    assert_int_equal (qn_json_param_text (value, &text), 0);
    assert_string_equal (text, "0.1");
    free (text);
    json_decref (value);
    value = json_real (1.0 / 3.0);
    assert_int_equal (qn_json_param_text (value, &text), 0);
    assert_true (strtod (text, NULL) == 1.0 / 3.0);
    free (text);
    json_decref (value);
    assert_int_equal (qn_json_param_text (json_true (), &text), 0);
    assert_string_equal (text, "true");
    free (text);
    assert_int_equal (qn_json_param_text (json_false (), &text), 0);
    assert_string_equal (text, "false");
    free (text);
    value = json_string ("hello world");
    assert_int_equal (qn_json_param_text (value, &text), 0);
    assert_string_equal (text, "hello world");
    free (text);
    json_decref (value);
    //  Not scalars, or a string that would lose its tail at a NUL
    value = json_stringn ("a\0b", 3);
    assert_int_equal (qn_json_param_text (value, &text), -1);
    assert_null (text);
    json_decref (value);
    assert_int_equal (qn_json_param_text (json_null (), &text), -1);
    value = json_object ();
    assert_int_equal (qn_json_param_text (value, &text), -1);
    json_decref (value);
    value = json_array ();
    assert_int_equal (qn_json_param_text (value, &text), -1);
    json_decref (value);
    assert_int_equal (qn_json_param_text (NULL, &text), -1);
}

static void
test_bytes (void **state)
{
    (void) state;
    //  Invalid UTF-8: a stray continuation byte, an overlong '/', a
    //  surrogate, a truncated sequence at the end; a valid é and 😀 stay
    static const uint8_t raw [] = "ok \x80 \xC0\xAF \xED\xA0\x80 \xC3\xA9 \xF0\x9F\x98\x80 \xE2\x82";
    Qanat__LogChunk chunk = QANAT__LOG_CHUNK__INIT;
    chunk.data.data = (uint8_t *) raw;
    chunk.data.len = sizeof raw - 1;
    json_t *json = qn_json_from_message (&chunk.base);
    assert_non_null (json);
    assert_string_equal (s_text (json, "data"),
                         "ok \xEF\xBF\xBD \xEF\xBF\xBD\xEF\xBF\xBD "
                         "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD \xC3\xA9 \xF0\x9F\x98\x80 "
                         "\xEF\xBF\xBD\xEF\xBF\xBD");
    char *dumped = json_dumps (json, 0);
    assert_non_null (dumped);
    free (dumped);
    json_decref (json);

    //  A field named source is text; other bytes are base64
    Qanat__SubmitWorkflow submit = QANAT__SUBMIT_WORKFLOW__INIT;
    submit.source.data = (uint8_t *) "name: x\n\xff";
    submit.source.len = 9;
    json = qn_json_from_message (&submit.base);
    assert_string_equal (s_text (json, "source"), "name: x\n\xEF\xBF\xBD");
    json_decref (json);
    Qanat__BlobData blob = QANAT__BLOB_DATA__INIT;
    static const char *plain [] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
    static const char *coded [] = { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=",
                                    "Zm9vYmFy" };
    for (size_t i = 0; i < 7; i++) {
        blob.data.data = (uint8_t *) plain [i];
        blob.data.len = strlen (plain [i]);
        json = qn_json_from_message (&blob.base);
        assert_string_equal (s_text (json, "data"), coded [i]);
        json_decref (json);
    }
    blob.data.data = (uint8_t *) "\xff\xfe\x00";
    blob.data.len = 3;
    json = qn_json_from_message (&blob.base);
    assert_string_equal (s_text (json, "data"), "//4A");
    json_decref (json);
    //  NUL bytes in text are kept (JSON escapes them)
    json_t *text = qn_json_text ("a\0b", 3);
    assert_int_equal (json_string_length (text), 3);
    json_decref (text);
    //  A string field with invalid UTF-8 still makes JSON
    Qanat__Error error = QANAT__ERROR__INIT;
    error.message = "bad \xfe";
    json = qn_json_from_message (&error.base);
    assert_string_equal (s_text (json, "message"), "bad \xEF\xBF\xBD");
    json_decref (json);
}

static void
test_nested_run (void **state)
{
    (void) state;
    Qanat__OutputRecord output = QANAT__OUTPUT_RECORD__INIT;
    output.name = "model";
    output.kind = QANAT__ARTIFACT_KIND__ARTIFACT_DIR;
    output.size = UINT64_MAX;
    Qanat__OutputRecord *outputs [] = { &output };
    Qanat__AttemptInfo first = QANAT__ATTEMPT_INFO__INIT, second = QANAT__ATTEMPT_INFO__INIT;
    first.attempt = 1;
    first.exit_code = -1;
    first.started_us = INT64_C (1796666400000000);
    first.finished_us = INT64_C (1796666401000000);
    first.finished = 1;
    first.end = "exit";
    second.attempt = 2;
    second.outputs = outputs;
    second.n_outputs = 1;
    Qanat__AttemptInfo *attempts [] = { &first, &second };
    Qanat__CheckResult check = QANAT__CHECK_RESULT__INIT;
    check.expr = "accuracy > 0.9";
    check.passed = 1;
    Qanat__CheckResult *checks [] = { &check };
    char *needs [] = { "prepare" };
    Qanat__TaskInfo train = QANAT__TASK_INFO__INIT;
    train.index = 1;
    train.name = "train";
    train.status = QANAT__TASK_STATUS__TASK_SUCCEEDED;
    train.attempts = attempts;
    train.n_attempts = 2;
    train.checks = checks;
    train.n_checks = 1;
    train.needs = needs;
    train.n_needs = 1;
    Qanat__TaskInfo *tasks [] = { &train };
    Qanat__RunInfo run = QANAT__RUN_INFO__INIT;
    run.run_id = 12;
    run.workflow = "wf";
    run.status = QANAT__RUN_STATUS__RUN_FAILED;
    run.created_us = INT64_C (1796666400000000);
    run.finished_us = INT64_C (1796666402500000);
    run.tasks = tasks;
    run.n_tasks = 1;
    //  Inside a Reply: of the oneof only the member set appears
    Qanat__Reply reply = QANAT__REPLY__INIT;
    reply.id = 5;
    reply.body_case = QANAT__REPLY__BODY_RUN;
    reply.run = &run;
    json_t *json = qn_json_from_message (&reply.base);
    assert_non_null (json);
    assert_int_equal (json_object_size (json), 2);
    assert_int_equal (s_int (json, "id"), 5);
    assert_null (json_object_get (json, "error"));
    assert_null (json_object_get (json, "runs"));
    json_t *run_json = json_object_get (json, "run");
    assert_int_equal (s_int (run_json, "run_id"), 12);
    assert_string_equal (s_text (run_json, "status"), "failed");
    assert_true (json_real_value (json_object_get (run_json, "duration_s")) == 2.5);
    json_t *task = json_array_get (json_object_get (run_json, "tasks"), 0);
    assert_string_equal (s_text (task, "status"), "succeeded");
    assert_string_equal (json_string_value (json_array_get (json_object_get (task, "needs"), 0)),
                         "prepare");
    assert_true (json_is_null (json_object_get (task, "retry_at")));
    json_t *check_json = json_array_get (json_object_get (task, "checks"), 0);
    assert_true (json_is_true (json_object_get (check_json, "passed")));
    assert_string_equal (s_text (check_json, "severity"), "");
    json_t *attempt = json_array_get (json_object_get (task, "attempts"), 0);
    assert_int_equal (s_int (attempt, "exit_code"), -1);
    assert_string_equal (s_text (attempt, "started"), "2026-12-07T18:00:00.000000Z");
    assert_string_equal (s_text (attempt, "finished"), "2026-12-07T18:00:01.000000Z");
    //  The time took the key of the bool AttemptInfo.finished
    attempt = json_array_get (json_object_get (task, "attempts"), 1);
    assert_true (json_is_null (json_object_get (attempt, "finished")));
    json_t *output_json = json_array_get (json_object_get (attempt, "outputs"), 0);
    assert_string_equal (s_text (output_json, "kind"), "dir");
    //  Above INT64_MAX: a decimal string
    assert_string_equal (s_text (output_json, "size"), "18446744073709551615");
    assert_true (json_is_null (json_object_get (output_json, "store")));
    json_decref (json);

    //  No body at all: only the id
    reply.body_case = QANAT__REPLY__BODY__NOT_SET;
    json = qn_json_from_message (&reply.base);
    assert_int_equal (json_object_size (json), 1);
    json_decref (json);
}

static void
test_hostile (void **state)
{
    (void) state;
    assert_null (qn_json_from_message (NULL));
    //  A large log chunk of invalid bytes (each grows to three)
    size_t size = 4 * 1024 * 1024;
    uint8_t *data = (uint8_t *) malloc (size);
    assert_non_null (data);
    memset (data, 0xff, size);
    Qanat__LogChunk chunk = QANAT__LOG_CHUNK__INIT;
    chunk.data.data = data;
    chunk.data.len = size;
    json_t *json = qn_json_from_message (&chunk.base);
    assert_non_null (json);
    assert_int_equal (json_string_length (json_object_get (json, "data")), size * 3);
    json_decref (json);
    free (data);
    //  Many labels, many runs
    size_t count = 20000;
    Qanat__Label *labels = (Qanat__Label *) calloc (count, sizeof *labels);
    Qanat__Label **pointers = (Qanat__Label **) calloc (count, sizeof *pointers);
    char (*keys) [16] = calloc (count, 16);
    assert_true (labels && pointers && keys);
    for (size_t i = 0; i < count; i++) {
        qanat__label__init (labels + i);
        snprintf (keys [i], 16, "k%zu", i);
        labels [i].key = keys [i];
        labels [i].value = "";
        pointers [i] = labels + i;
    }
    pointers [7] = NULL;                //  a hole is skipped, not a crash
    Qanat__AgentInfo agent = QANAT__AGENT_INFO__INIT;
    agent.labels = pointers;
    agent.n_labels = count;
    json = qn_json_from_message (&agent.base);
    assert_int_equal (json_object_size (json_object_get (json, "labels")), count - 1);
    json_decref (json);
    //  Counts without arrays are empty
    agent.labels = NULL;
    json = qn_json_from_message (&agent.base);
    assert_int_equal (json_object_size (json_object_get (json, "labels")), 0);
    json_decref (json);
    free (keys);
    free (pointers);
    free (labels);
    //  Not finite doubles are null
    Qanat__MetricPoint point = QANAT__METRIC_POINT__INIT;
    point.value = 1.0 / 0.0;
    json = qn_json_from_message (&point.base);
    assert_true (json_is_null (json_object_get (json, "value")));
    json_decref (json);
    //  A struct that is not a message
    ProtobufCMessage fake = { NULL, 0, NULL };
    assert_null (qn_json_from_message (&fake));
}

static void
test_errors (void **state)
{
    (void) state;
    json_t *json = qn_json_error ("bad_request", "unknown field \"x\xff\"", "x");
    json_t *inner = json_object_get (json, "error");
    assert_string_equal (s_text (inner, "code"), "bad_request");
    assert_string_equal (s_text (inner, "message"), "unknown field \"x\xEF\xBF\xBD\"");
    assert_string_equal (s_text (inner, "field"), "x");
    json_decref (json);
    json = qn_json_error ("not_found", "no such run", NULL);
    inner = json_object_get (json, "error");
    assert_null (json_object_get (inner, "field"));
    assert_int_equal (json_object_size (inner), 2);
    json_decref (json);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_enums_and_defaults),
        cmocka_unit_test (test_times),
        cmocka_unit_test (test_labels),
        cmocka_unit_test (test_params),
        cmocka_unit_test (test_param_text),
        cmocka_unit_test (test_bytes),
        cmocka_unit_test (test_nested_run),
        cmocka_unit_test (test_hostile),
        cmocka_unit_test (test_errors),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
