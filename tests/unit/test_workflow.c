/*  test_workflow - the workflow file parser: fields, every error class with
    its exact position, parameters, and hostile input. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qn_workflow.h"

//  Fixture path: tests/data/workflows/NAME under $QANAT_SRCDIR (set by
//  make check) or the current directory.
static char *
s_fixture (const char *name)
{
    const char *srcdir = getenv ("QANAT_SRCDIR");
    char *path = NULL;
    assert_true (asprintf (&path, "%s/tests/data/workflows/%s", srcdir? srcdir: ".", name) > 0);
    return path;
}

static qn_workflow_t *
s_parse_ok (const char *yaml)
{
    char *error = NULL;
    qn_workflow_t *workflow = qn_workflow_parse ("wf.yaml", yaml, strlen (yaml), &error);
    if (!workflow)
        fail_msg ("parse failed:\n%s", error);
    assert_null (error);
    return workflow;
}

//  Parses yaml, which must fail, and returns the error text (caller frees).
static char *
s_parse_bad (const char *yaml)
{
    char *error = NULL;
    qn_workflow_t *workflow = qn_workflow_parse ("wf.yaml", yaml, strlen (yaml), &error);
    if (workflow)
        fail_msg ("parsed but should not:\n%s", yaml);
    assert_non_null (error);
    return error;
}

//  The error text must hold line as one whole line.
static void
s_assert_line (const char *errors, const char *line)
{
    size_t len = strlen (line);
    const char *p = errors;
    while ((p = strstr (p, line))) {
        bool starts = p == errors || p [-1] == '\n';
        bool ends = p [len] == '\0' || p [len] == '\n';
        if (starts && ends)
            return;
        p++;
    }
    fail_msg ("missing line:\n  %s\nin:\n%s", line, errors);
}

static size_t
s_count_lines (const char *text)
{
    size_t lines = 1;
    for (; *text; text++)
        lines += *text == '\n';
    return lines;
}

//  Parses yaml and asserts it fails with exactly the one given error line.
static void
s_expect_only (const char *yaml, const char *line)
{
    char *error = s_parse_bad (yaml);
    if (strcmp (error, line) != 0)
        fail_msg ("expected only:\n  %s\ngot:\n%s", line, error);
    free (error);
}

static const char *
s_env (const qn_kv_t *pairs, size_t count, const char *key)
{
    for (size_t i = 0; i < count; i++)
        if (strcmp (pairs [i].key, key) == 0)
            return pairs [i].value;
    return NULL;
}


//  --------------------------------------------------------------------
//  Valid files

static void
test_full_example (void **state)
{
    (void) state;
    char *path = s_fixture ("full.yaml");
    char *error = NULL;
    qn_workflow_t *workflow = qn_workflow_load (path, &error);
    if (!workflow)
        fail_msg ("%s", error);
    free (path);

    assert_string_equal (qn_workflow_name (workflow), "ml-pipeline");
    assert_string_equal (qn_workflow_description (workflow), "Prepare, train, evaluate");

    assert_int_equal (qn_workflow_param_count (workflow), 3);
    const qn_param_t *param = qn_workflow_param (workflow, 0);
    assert_string_equal (param->name, "epochs");
    assert_string_equal (param->default_value, "20");
    assert_null (param->description);
    param = qn_workflow_param (workflow, 1);
    assert_string_equal (param->name, "lr");
    assert_string_equal (param->default_value, "0.1");
    assert_string_equal (param->description, "learning rate");
    param = qn_workflow_param (workflow, 2);
    assert_string_equal (param->name, "dataset");
    assert_null (param->default_value);
    assert_string_equal (param->description, "path of the input data (required)");
    assert_null (qn_workflow_param (workflow, 3));

    assert_int_equal (qn_workflow_task_count (workflow), 3);
    assert_null (qn_workflow_task (workflow, 3));

    //  prepare: a shell string
    const qn_task_t *task = qn_workflow_task (workflow, 0);
    assert_string_equal (task->name, "prepare");
    assert_int_equal (task->line, 11);
    assert_int_equal (task->col, 3);
    assert_int_equal (task->argc, 3);
    assert_string_equal (task->argv [0], "/bin/sh");
    assert_string_equal (task->argv [1], "-c");
    assert_string_equal (task->argv [2],
                         "python3 prepare.py --rows 1000 --data \"$QANAT_PARAM_DATASET\"");
    assert_null (task->argv [3]);
    assert_string_equal (task->shell, task->argv [2]);
    assert_int_equal (task->needs_count, 0);
    assert_int_equal (task->memory_mb, 512);
    assert_int_equal (task->cpus, 0);
    assert_int_equal (task->gpus, 0);
    assert_int_equal (task->retries, 0);
    assert_int_equal (task->timeout_s, 0);
    assert_int_equal (task->env_count, 0);
    assert_int_equal (task->selector_count, 0);
    assert_int_equal (task->metrics_count, 0);
    assert_int_equal (task->checks_count, 0);

    //  train: everything
    task = qn_workflow_task (workflow, 1);
    assert_string_equal (task->name, "train");
    assert_int_equal (task->line, 14);
    assert_int_equal (task->col, 3);
    assert_int_equal (task->argc, 2);
    assert_string_equal (task->argv [0], "python3");
    assert_string_equal (task->argv [1], "train.py");
    assert_null (task->argv [2]);
    assert_null (task->shell);
    assert_int_equal (task->needs_count, 1);
    assert_string_equal (task->needs [0], "prepare");
    assert_int_equal (task->need_index [0], 0);
    assert_int_equal (task->env_count, 2);
    assert_string_equal (s_env (task->env, task->env_count, "PYTHONUNBUFFERED"), "1");
    assert_string_equal (s_env (task->env, task->env_count, "SEED"), "42");
    assert_int_equal (task->selector_count, 2);
    assert_string_equal (task->selector [0].key, "env");
    assert_string_equal (task->selector [0].value, "onprem");
    assert_string_equal (task->selector [1].key, "gpu");
    assert_string_equal (task->selector [1].value, "true");
    assert_int_equal (task->cpus, 2);
    assert_int_equal (task->memory_mb, 4096);
    assert_int_equal (task->gpus, 1);
    assert_int_equal (task->retries, 2);
    assert_int_equal (task->timeout_s, 5400);
    assert_int_equal (task->metrics_count, 2);
    assert_string_equal (task->metrics [0], "loss");
    assert_string_equal (task->metrics [1], "accuracy");
    assert_int_equal (task->checks_count, 2);
    assert_string_equal (qn_check_expr (task->checks [0].check), "accuracy >= 0.9");
    assert_string_equal (qn_check_metric (task->checks [0].check), "accuracy");
    assert_int_equal (task->checks [0].severity, QN_SEVERITY_ERROR);
    assert_string_equal (qn_check_expr (task->checks [1].check), "max(loss) < 2.5");
    assert_int_equal (task->checks [1].severity, QN_SEVERITY_WARNING);

    //  evaluate: needs as one string, a single check string, plain seconds
    task = qn_workflow_task (workflow, 2);
    assert_string_equal (task->name, "evaluate");
    assert_int_equal (task->needs_count, 1);
    assert_int_equal (task->need_index [0], 1);
    assert_int_equal (task->timeout_s, 600);
    assert_int_equal (task->checks_count, 1);
    assert_string_equal (qn_check_metric (task->checks [0].check), "latency_ms");

    assert_int_equal (qn_workflow_task_index (workflow, "prepare"), 0);
    assert_int_equal (qn_workflow_task_index (workflow, "train"), 1);
    assert_int_equal (qn_workflow_task_index (workflow, "evaluate"), 2);
    assert_int_equal (qn_workflow_task_index (workflow, "nope"), -1);
    assert_int_equal (qn_workflow_task_index (workflow, NULL), -1);

    qn_workflow_destroy (&workflow);
    assert_null (workflow);
    qn_workflow_destroy (&workflow);
}

static void
test_minimal_and_block_style (void **state)
{
    (void) state;
    //  The least a workflow needs; everything else takes its default
    qn_workflow_t *workflow = s_parse_ok ("name: w\ntasks:\n  a:\n    run: echo hi\n");
    assert_string_equal (qn_workflow_name (workflow), "w");
    assert_null (qn_workflow_description (workflow));
    assert_int_equal (qn_workflow_param_count (workflow), 0);
    assert_int_equal (qn_workflow_task_count (workflow), 1);
    const qn_task_t *task = qn_workflow_task (workflow, 0);
    assert_string_equal (task->shell, "echo hi");
    assert_int_equal (task->needs_count, 0);
    assert_null (task->needs);
    assert_int_equal (task->retries + task->timeout_s + task->cpus + task->gpus, 0);
    assert_int_equal (task->memory_mb, 0);
    assert_int_equal (task->env_count + task->selector_count + task->metrics_count
                      + task->checks_count, 0);
    qn_workflow_destroy (&workflow);

    //  Block style, needs as a block list, comments, a document marker
    workflow = s_parse_ok ("---\n# comment\nname: w.x_1-2\ntasks:\n  b:\n    run:\n"
                           "      - echo\n      - hi there\n  c:\n    run: >\n"
                           "      echo folded\n    needs:\n      - b\n...\n");
    assert_string_equal (qn_workflow_name (workflow), "w.x_1-2");
    task = qn_workflow_task (workflow, 0);
    assert_int_equal (task->argc, 2);
    assert_string_equal (task->argv [1], "hi there");
    task = qn_workflow_task (workflow, 1);
    assert_string_equal (task->shell, "echo folded\n");
    assert_int_equal (task->need_index [0], 0);
    qn_workflow_destroy (&workflow);
}

static void
test_units (void **state)
{
    (void) state;
    struct { const char *memory; uint64_t mb; } memory [] = {
        { "512", 512 }, { "\"512\"", 512 }, { "512M", 512 }, { "512Mi", 512 }, { "512MB", 512 },
        { "4G", 4096 }, { "1Gi", 1024 }, { "2GiB", 2048 }, { "1T", 1048576 }, { "0", 0 },
    };
    for (size_t i = 0; i < sizeof (memory) / sizeof (memory [0]); i++) {
        char yaml [256];
        snprintf (yaml, sizeof (yaml),
                  "name: w\ntasks:\n  a:\n    run: x\n    resources: {memory: %s}\n",
                  memory [i].memory);
        qn_workflow_t *workflow = s_parse_ok (yaml);
        if (qn_workflow_task (workflow, 0)->memory_mb != memory [i].mb)
            fail_msg ("memory %s gave %llu", memory [i].memory,
                      (unsigned long long) qn_workflow_task (workflow, 0)->memory_mb);
        qn_workflow_destroy (&workflow);
    }
    struct { const char *timeout; uint32_t seconds; } timeout [] = {
        { "90", 90 }, { "90s", 90 }, { "30m", 1800 }, { "2h", 7200 }, { "1h30m", 5400 },
        { "1d", 86400 }, { "1h2m3s", 3723 }, { "0", 0 }, { "'45'", 45 },
        { "4294967295", 4294967295u },
    };
    for (size_t i = 0; i < sizeof (timeout) / sizeof (timeout [0]); i++) {
        char yaml [256];
        snprintf (yaml, sizeof (yaml), "name: w\ntasks:\n  a:\n    run: x\n    timeout: %s\n",
                  timeout [i].timeout);
        qn_workflow_t *workflow = s_parse_ok (yaml);
        if (qn_workflow_task (workflow, 0)->timeout_s != timeout [i].seconds)
            fail_msg ("timeout %s gave %u", timeout [i].timeout,
                      qn_workflow_task (workflow, 0)->timeout_s);
        qn_workflow_destroy (&workflow);
    }
    const char *bad_timeouts [] = {
        "1x", "m", "30m1h", "1h1h", "-5", "1.5h", "true", "''", "4294967296", "49711d",
        "[1]", "{a: 1}",
    };
    for (size_t i = 0; i < sizeof (bad_timeouts) / sizeof (bad_timeouts [0]); i++) {
        char yaml [256];
        snprintf (yaml, sizeof (yaml), "name: w\ntasks:\n  a:\n    run: x\n    timeout: %s\n",
                  bad_timeouts [i]);
        char *error = s_parse_bad (yaml);
        s_assert_line (error, "wf.yaml:5:14: expected a duration for 'timeout' (seconds, "
                       "or like 90s, 30m, 2h, 1h30m)");
        free (error);
    }
    const char *bad_memory [] = { "lots", "4g", "4K", "-1", "1.5G", "4Gx", "G", "true" };
    for (size_t i = 0; i < sizeof (bad_memory) / sizeof (bad_memory [0]); i++) {
        char yaml [256];
        snprintf (yaml, sizeof (yaml),
                  "name: w\ntasks:\n  a:\n    run: x\n    resources:\n      memory: %s\n",
                  bad_memory [i]);
        char *error = s_parse_bad (yaml);
        s_assert_line (error, "wf.yaml:6:15: expected a memory size for 'memory' "
                       "(megabytes, or like 512M, 4G, 1Gi)");
        free (error);
    }
    //  A memory size that overflows
    char *error = s_parse_bad ("name: w\ntasks:\n  a: {run: x, resources: "
                               "{memory: 18446744073709551615T}}\n");
    s_assert_line (error, "wf.yaml:3:35: value for 'memory' is too large");
    free (error);
}

static void
test_scalars_as_text (void **state)
{
    (void) state;
    qn_workflow_t *workflow = s_parse_ok (
        "name: w\n"
        "params:\n"
        "  flag: true\n"
        "  ratio: 1.50\n"
        "tasks:\n"
        "  a:\n"
        "    run: [echo, 1, true, '', ~x]\n"
        "    env: {A: 1.50, B: false, C: ~, D: \"\", E: 0x1F}\n"
        "    on: {on: yes, gpu: 1}\n"
        "    retries: \"3\"\n"
        "    needs: []\n"
        "    metrics: acc\n");
    const qn_task_t *task = qn_workflow_task (workflow, 0);
    assert_int_equal (task->argc, 5);
    assert_string_equal (task->argv [1], "1");
    assert_string_equal (task->argv [2], "true");
    assert_string_equal (task->argv [3], "");
    assert_string_equal (task->argv [4], "~x");
    assert_string_equal (s_env (task->env, task->env_count, "A"), "1.50");
    assert_string_equal (s_env (task->env, task->env_count, "B"), "false");
    assert_string_equal (s_env (task->env, task->env_count, "C"), "");
    assert_string_equal (s_env (task->env, task->env_count, "D"), "");
    assert_string_equal (s_env (task->env, task->env_count, "E"), "0x1F");
    assert_string_equal (s_env (task->selector, task->selector_count, "on"), "yes");
    assert_string_equal (s_env (task->selector, task->selector_count, "gpu"), "1");
    assert_int_equal (task->retries, 3);
    assert_int_equal (task->needs_count, 0);
    assert_int_equal (task->metrics_count, 1);
    assert_string_equal (qn_workflow_param (workflow, 0)->default_value, "true");
    assert_string_equal (qn_workflow_param (workflow, 1)->default_value, "1.50");
    assert_null (qn_workflow_description (workflow));
    qn_workflow_destroy (&workflow);
}

static void
test_diamond_order (void **state)
{
    (void) state;
    qn_workflow_t *workflow = s_parse_ok (
        "name: diamond\n"
        "tasks:\n"
        "  d: {run: x, needs: [b, c]}\n"
        "  b: {run: x, needs: a}\n"
        "  c: {run: x, needs: a}\n"
        "  a: {run: x}\n");
    //  File order is kept, dependencies resolve by name
    assert_string_equal (qn_workflow_task (workflow, 0)->name, "d");
    assert_string_equal (qn_workflow_task (workflow, 3)->name, "a");
    const qn_task_t *d = qn_workflow_task (workflow, 0);
    assert_int_equal (d->need_index [0], 1);
    assert_int_equal (d->need_index [1], 2);
    assert_int_equal (qn_workflow_task (workflow, 1)->need_index [0], 3);
    assert_int_equal (qn_workflow_task_index (workflow, "c"), 2);
    qn_workflow_destroy (&workflow);
}


//  --------------------------------------------------------------------
//  Errors, one class at a time, with exact positions

static void
test_error_fixture (void **state)
{
    (void) state;
    char *path = s_fixture ("errors.yaml");
    char *error = NULL;
    assert_null (qn_workflow_load (path, &error));
    assert_non_null (error);
    //  Every problem, sorted by position, one per line
    const char *expected [] = {
        "1:7: invalid workflow name 'ml pipeline' (use letters, digits, '_', '.', '-', "
            "at most 128 characters, no '..')",
        "4:10: empty command for task 'prepare'",
        "7:5: unknown key 'need' in task 'train' (did you mean 'needs'?)",
        "8:14: expected a non-negative integer for 'retries'",
        "9:12: task 'train' needs unknown task 'prep' (did you mean 'prepare'?)",
        "11:9: invalid check 'accuracy >=': expected a number after '>=' (at character 12)",
        "12:45: invalid severity 'fatal' (use error or warning)",
        "13:3: duplicate task 'train' (first defined at line 5)",
        "15:3: dependency cycle: a -> b -> c -> a",
    };
    size_t count = sizeof (expected) / sizeof (expected [0]);
    char *all = NULL;
    size_t size = 0;
    FILE *stream = open_memstream (&all, &size);
    for (size_t i = 0; i < count; i++)
        fprintf (stream, "%s%s:%s", i? "\n": "", path, expected [i]);
    fclose (stream);
    assert_string_equal (error, all);
    assert_int_equal (s_count_lines (error), count);
    free (all);
    free (error);
    free (path);
}

static void
test_syntax_error (void **state)
{
    (void) state;
    char *path = s_fixture ("syntax.yaml");
    char *error = NULL;
    assert_null (qn_workflow_load (path, &error));
    char *expected = NULL;
    assert_true (asprintf (&expected, "%s:5:4: YAML syntax error: did not find expected ',' "
                           "or ']' (while parsing a flow sequence at line 4)", path) > 0);
    assert_string_equal (error, expected);
    free (expected);
    free (error);
    free (path);

    error = s_parse_bad ("name: w\ntasks:\n  a:\n    run: x\n   bad: y\n");
    assert_non_null (strstr (error, "wf.yaml:5:"));
    assert_non_null (strstr (error, "YAML syntax error"));
    free (error);

    s_expect_only ("name: w\n\ttasks: {}\n",
                   "wf.yaml:2:1: YAML syntax error: found a tab character that violates "
                   "indentation (while scanning a plain scalar at line 1)");
    s_expect_only ("name: w\ntasks:\n  a: {run: \"x}\n",
                   "wf.yaml:4:1: YAML syntax error: found unexpected end of stream "
                   "(while scanning a quoted scalar at line 3)");
}

static void
test_unknown_keys (void **state)
{
    (void) state;
    char *error = s_parse_bad (
        "name: w\n"
        "descripton: d\n"
        "parms: {}\n"
        "tasks:\n"
        "  train:\n"
        "    run: x\n"
        "    need: [a]\n"
        "    resources: {cpu: 1, mem: 2}\n"
        "    retry: 1\n"
        "    zzzzzz: 1\n"
        "    checks:\n"
        "      - {exp: \"a > 1\"}\n"
        "params2: 1\n");
    s_assert_line (error, "wf.yaml:2:1: unknown key 'descripton' (did you mean 'description'?)");
    s_assert_line (error, "wf.yaml:3:1: unknown key 'parms' (did you mean 'params'?)");
    s_assert_line (error, "wf.yaml:7:5: unknown key 'need' in task 'train' (did you mean 'needs'?)");
    s_assert_line (error, "wf.yaml:8:17: unknown key 'cpu' in resources of task 'train' "
                   "(did you mean 'cpus'?)");
    s_assert_line (error, "wf.yaml:8:25: unknown key 'mem' in resources of task 'train' "
                   "(did you mean 'memory'?)");
    s_assert_line (error, "wf.yaml:9:5: unknown key 'retry' in task 'train' "
                   "(did you mean 'retries'?)");
    s_assert_line (error, "wf.yaml:10:5: unknown key 'zzzzzz' in task 'train'");
    s_assert_line (error, "wf.yaml:12:10: unknown key 'exp' in a check of task 'train' "
                   "(did you mean 'expr'?)");
    s_assert_line (error, "wf.yaml:12:9: check in task 'train' has no 'expr'");
    s_assert_line (error, "wf.yaml:13:1: unknown key 'params2' (did you mean 'params'?)");
    assert_int_equal (s_count_lines (error), 10);
    free (error);

    s_expect_only ("name: w\nparams:\n  lr: {defualt: 1}\ntasks: {a: {run: x}}\n",
                   "wf.yaml:3:8: unknown key 'defualt' in parameter 'lr' "
                   "(did you mean 'default'?)");
    //  Far from everything: no suggestion; two letters are not "close" to 'on'
    s_expect_only ("name: w\ntasks: {a: {run: x, qqqq: 1}}\n",
                   "wf.yaml:2:21: unknown key 'qqqq' in task 'a'");
}

static void
test_wrong_types (void **state)
{
    (void) state;
    s_expect_only ("name: w\ntasks:\n  a:\n    run: x\n    retries: abc\n",
                   "wf.yaml:5:14: expected a non-negative integer for 'retries'");
    //  A plain true is a boolean-looking word, not a number
    s_expect_only ("name: w\ntasks:\n  a:\n    run: x\n    retries: true\n",
                   "wf.yaml:5:14: expected a non-negative integer for 'retries'");
    s_expect_only ("name: w\ntasks:\n  a:\n    run: x\n    retries: -1\n",
                   "wf.yaml:5:14: expected a non-negative integer for 'retries'");
    s_expect_only ("name: w\ntasks:\n  a:\n    run: x\n    retries: 1.0\n",
                   "wf.yaml:5:14: expected a non-negative integer for 'retries'");
    s_expect_only ("name: w\ntasks:\n  a:\n    run: x\n    retries: [1]\n",
                   "wf.yaml:5:14: expected a non-negative integer for 'retries'");
    s_expect_only ("name: w\ntasks:\n  a:\n    run: x\n    retries: 4294967296\n",
                   "wf.yaml:5:14: value for 'retries' is too large (at most 4294967295)");
    s_expect_only ("name: w\ntasks:\n  a:\n    run: x\n    resources: {gpus: two}\n",
                   "wf.yaml:5:23: expected a non-negative integer for 'gpus'");
    s_expect_only ("name: w\ntasks:\n  a:\n    run: x\n    resources: 4\n",
                   "wf.yaml:5:16: expected a mapping with cpus, memory, gpus for 'resources'");
    s_expect_only ("name: w\ntasks:\n  - a\n  - b\n",
                   "wf.yaml:3:3: expected a mapping of task names to tasks for 'tasks'");
    s_expect_only ("name: w\ntasks:\n  a:\n    run: x\n    needs: {b: 1}\n",
                   "wf.yaml:5:12: expected a task name or a list of task names for 'needs'");
    s_expect_only ("name: w\ntasks:\n  a:\n    run: x\n    needs: [[b]]\n",
                   "wf.yaml:5:13: expected a task name or a list of task names for 'needs'");
    s_expect_only ("name: w\ntasks:\n  a: echo\n",
                   "wf.yaml:3:6: expected a mapping for task 'a'");
    s_expect_only ("name: w\ntasks:\n  a:\n    run: {x: 1}\n",
                   "wf.yaml:4:10: expected a command string or a list of strings for 'run'");
    s_expect_only ("name: w\ntasks:\n  a:\n    run: [echo, [x]]\n",
                   "wf.yaml:4:17: expected a string in the 'run' list of task 'a'");
    s_expect_only ("name: w\ntasks:\n  a:\n    run: x\n    env: [A]\n",
                   "wf.yaml:5:10: expected a mapping of variable names to values for 'env'");
    s_expect_only ("name: w\ntasks:\n  a:\n    run: x\n    env: {A: [1]}\n",
                   "wf.yaml:5:14: expected a string or number for 'A' in 'env'");
    s_expect_only ("name: w\ntasks:\n  a:\n    run: x\n    env: {1A: x}\n",
                   "wf.yaml:5:11: invalid environment variable name '1A' in task 'a'");
    s_expect_only ("name: w\ntasks:\n  a:\n    run: x\n    env: {QANAT_TASK: x}\n",
                   "wf.yaml:5:11: environment variable 'QANAT_TASK' is reserved for qanat");
    s_expect_only ("name: w\ntasks:\n  a:\n    run: x\n    on: gpu\n",
                   "wf.yaml:5:9: expected a mapping of labels to values for 'on'");
    s_expect_only ("name: w\ntasks:\n  a:\n    run: x\n    on: {gpu: }\n",
                   "wf.yaml:5:15: expected a string or number for 'gpu' in 'on'");
    s_expect_only ("name: w\ntasks:\n  a:\n    run: x\n    metrics: [ok, 9bad]\n",
                   "wf.yaml:5:19: invalid metric name '9bad' in 'metrics'");
    s_expect_only ("name: w\ntasks:\n  a:\n    run: x\n    checks: {expr: a > 1}\n",
                   "wf.yaml:5:13: expected a list of checks for 'checks'");
    s_expect_only ("name: w\ntasks:\n  a:\n    run: x\n    checks: [[a > 1]]\n",
                   "wf.yaml:5:14: expected a check expression or a mapping with 'expr' "
                   "and 'severity'");
    s_expect_only ("name: [w]\ntasks: {a: {run: x}}\n",
                   "wf.yaml:1:7: expected a workflow name for 'name'");
    s_expect_only ("name: w\ndescription: [x]\ntasks: {a: {run: x}}\n",
                   "wf.yaml:2:14: expected a string for 'description'");
    s_expect_only ("name: w\nparams: [a]\ntasks: {a: {run: x}}\n",
                   "wf.yaml:2:9: expected a mapping of parameter names for 'params'");
    s_expect_only ("name: w\nparams: {a: [1]}\ntasks: {a: {run: x}}\n",
                   "wf.yaml:2:13: expected a default value or a mapping with 'default' and "
                   "'description' for parameter 'a'");
    s_expect_only ("name: w\nparams: {a: {default: [1]}}\ntasks: {a: {run: x}}\n",
                   "wf.yaml:2:23: expected a string or number for the default of "
                   "parameter 'a'");
    s_expect_only ("- a\n- b\n",
                   "wf.yaml:1:1: expected a mapping with 'name' and 'tasks' at the top level");
    s_expect_only ("name: w\ntasks: {a: {run: x}}\n[x]: 1\n",
                   "wf.yaml:3:1: mapping keys must be strings");
}

static void
test_empty_commands (void **state)
{
    (void) state;
    s_expect_only ("name: w\ntasks:\n  a:\n    run: \"\"\n",
                   "wf.yaml:4:10: empty command for task 'a'");
    s_expect_only ("name: w\ntasks:\n  a:\n    run: '   '\n",
                   "wf.yaml:4:10: empty command for task 'a'");
    s_expect_only ("name: w\ntasks:\n  a:\n    run: []\n",
                   "wf.yaml:4:10: empty command for task 'a'");
    s_expect_only ("name: w\ntasks:\n  a:\n    run: [\"\", x]\n",
                   "wf.yaml:4:11: empty command for task 'a'");
    s_expect_only ("name: w\ntasks:\n  a:\n    run:\n    retries: 1\n",
                   "wf.yaml:4:9: empty command for task 'a'");
    s_expect_only ("name: w\ntasks:\n  a:\n    retries: 1\n",
                   "wf.yaml:3:3: task 'a' has no 'run' command");
    s_expect_only ("name: w\ntasks:\n  a:\n  b: {run: x}\n",
                   "wf.yaml:3:3: task 'a' has no 'run' command");
    s_expect_only ("name: w\ntasks:\n  a: {}\n",
                   "wf.yaml:3:3: task 'a' has no 'run' command");
}

static void
test_dependencies (void **state)
{
    (void) state;
    s_expect_only ("name: w\ntasks:\n  prepare: {run: x}\n  train:\n    run: x\n"
                   "    needs: [prep]\n",
                   "wf.yaml:6:13: task 'train' needs unknown task 'prep' "
                   "(did you mean 'prepare'?)");
    s_expect_only ("name: w\ntasks:\n  prepare: {run: x}\n  train:\n    run: x\n"
                   "    needs: [prepaer]\n",
                   "wf.yaml:6:13: task 'train' needs unknown task 'prepaer' "
                   "(did you mean 'prepare'?)");
    s_expect_only ("name: w\ntasks:\n  prepare: {run: x}\n  train:\n    run: x\n"
                   "    needs: [zzz]\n",
                   "wf.yaml:6:13: task 'train' needs unknown task 'zzz'");
    s_expect_only ("name: w\ntasks:\n  a:\n    run: x\n    needs: a\n",
                   "wf.yaml:5:12: task 'a' needs itself");
    s_expect_only ("name: w\ntasks:\n  a: {run: x}\n  b:\n    run: x\n    needs: [a, a]\n",
                   "wf.yaml:6:16: task 'b' needs 'a' more than once");
}

static void
test_duplicates (void **state)
{
    (void) state;
    s_expect_only ("name: w\ntasks:\n  a: {run: x}\n  b: {run: x}\n  a: {run: y}\n",
                   "wf.yaml:5:3: duplicate task 'a' (first defined at line 3)");
    s_expect_only ("name: w\ntasks:\n  a:\n    run: x\n    run: y\n",
                   "wf.yaml:5:5: duplicate key 'run' (first defined at line 4)");
    s_expect_only ("name: w\nname: v\ntasks: {a: {run: x}}\n",
                   "wf.yaml:2:1: duplicate key 'name' (first defined at line 1)");
    s_expect_only ("name: w\ntasks: {a: {run: x, env: {A: 1, A: 2}}}\n",
                   "wf.yaml:2:33: duplicate key 'A' (first defined at line 2)");
    s_expect_only ("name: w\nparams: {p: 1, p: 2}\ntasks: {a: {run: x}}\n",
                   "wf.yaml:2:16: duplicate key 'p' (first defined at line 2)");
    //  A second 'tasks' is a duplicate key; its contents are not tasks
    s_expect_only ("name: w\ntasks: {a: {run: x}}\ntasks: {a: {run: x}, a: {run: y}}\n",
                   "wf.yaml:3:1: duplicate key 'tasks' (first defined at line 2)\n"
                   "wf.yaml:3:22: duplicate key 'a' (first defined at line 3)");

    //  The first definition wins and the workflow is otherwise checked
    char *error = s_parse_bad ("name: w\ntasks:\n  a: {run: x}\n  a: {run: ''}\n"
                               "  b: {run: x, needs: c}\n");
    s_assert_line (error, "wf.yaml:4:3: duplicate task 'a' (first defined at line 3)");
    s_assert_line (error, "wf.yaml:5:22: task 'b' needs unknown task 'c'");
    assert_int_equal (s_count_lines (error), 2);
    free (error);
}

static void
test_cycles (void **state)
{
    (void) state;
    s_expect_only ("name: w\ntasks:\n  x: {run: x}\n  a: {run: x, needs: b}\n"
                   "  b: {run: x, needs: c}\n  c: {run: x, needs: [x, a]}\n",
                   "wf.yaml:4:3: dependency cycle: a -> b -> c -> a");
    //  The cycle starts at its first task in file order
    s_expect_only ("name: w\ntasks:\n  c: {run: x, needs: a}\n  b: {run: x, needs: c}\n"
                   "  a: {run: x, needs: b}\n",
                   "wf.yaml:3:3: dependency cycle: c -> a -> b -> c");
    //  Two separate cycles: one message each
    char *error = s_parse_bad ("name: w\ntasks:\n  a: {run: x, needs: b}\n"
                               "  b: {run: x, needs: a}\n  c: {run: x, needs: d}\n"
                               "  d: {run: x, needs: [c, a]}\n");
    assert_string_equal (error, "wf.yaml:3:3: dependency cycle: a -> b -> a\n"
                         "wf.yaml:5:3: dependency cycle: c -> d -> c");
    free (error);
    //  Several cycles through one component: one message, the shortest
    //  through its first task
    s_expect_only ("name: w\ntasks:\n  a: {run: x, needs: [b, c]}\n"
                   "  b: {run: x, needs: c}\n  c: {run: x, needs: a}\n",
                   "wf.yaml:3:3: dependency cycle: a -> c -> a");

    //  A long cycle is elided in the middle
    char *yaml = NULL;
    size_t size = 0;
    FILE *stream = open_memstream (&yaml, &size);
    fprintf (stream, "name: w\ntasks:\n");
    for (int i = 0; i < 500; i++)
        fprintf (stream, "  t%d: {run: x, needs: t%d}\n", i, (i + 1) % 500);
    fclose (stream);
    error = s_parse_bad (yaml);
    assert_string_equal (error, "wf.yaml:3:3: dependency cycle: t0 -> t1 -> t2 -> t3 -> t4 "
                         "-> t5 -> t6 -> t7 -> t8 -> t9 -> ... (489 more) -> t499 -> t0");
    free (error);
    free (yaml);
}

static void
test_names_and_required (void **state)
{
    (void) state;
    s_expect_only ("tasks: {a: {run: x}}\n", "wf.yaml:1:1: missing required key 'name'");
    s_expect_only ("name: w\n", "wf.yaml:1:1: missing required key 'tasks'");
    s_expect_only ("name: w\ntasks:\n", "wf.yaml:2:1: 'tasks' is empty: a workflow needs at "
                   "least one task");
    s_expect_only ("name: w\ntasks: {}\n", "wf.yaml:2:8: 'tasks' is empty: a workflow needs "
                   "at least one task");
    s_expect_only ("name:\ntasks: {a: {run: x}}\n",
                   "wf.yaml:1:6: expected a workflow name for 'name'");
    s_expect_only ("", "wf.yaml:1:1: the workflow file is empty (needs 'name' and 'tasks')");
    s_expect_only ("# only a comment\n",
                   "wf.yaml:1:1: the workflow file is empty (needs 'name' and 'tasks')");
    s_expect_only ("name: a/b\ntasks: {a: {run: x}}\n",
                   "wf.yaml:1:7: invalid workflow name 'a/b' (use letters, digits, '_', '.', "
                   "'-', at most 128 characters, no '..')");
    const char *bad [] = { "a/b", "..", "a..b", ".", "a b", "\"a\\tb\"", "caf\xc3\xa9", "''" };
    for (size_t i = 0; i < sizeof (bad) / sizeof (bad [0]); i++) {
        char yaml [256];
        snprintf (yaml, sizeof (yaml), "name: w\ntasks:\n  %s: {run: x}\n", bad [i]);
        char *error = s_parse_bad (yaml);
        if (!strstr (error, "wf.yaml:3:3: invalid task name '"))
            fail_msg ("task name %s: %s", bad [i], error);
        assert_int_equal (s_count_lines (error), 1);
        //  Control characters are never echoed raw
        assert_null (strchr (error, '\t'));
        free (error);
    }
    //  128 characters is the longest name
    char yaml [512];
    char name [140];
    memset (name, 'n', 128);
    name [128] = '\0';
    snprintf (yaml, sizeof (yaml), "name: %s\ntasks:\n  %s: {run: x}\n", name, name);
    qn_workflow_t *workflow = s_parse_ok (yaml);
    assert_int_equal (strlen (qn_workflow_task (workflow, 0)->name), 128);
    qn_workflow_destroy (&workflow);
    strcat (name, "n");
    snprintf (yaml, sizeof (yaml), "name: w\ntasks:\n  %s: {run: x}\n", name);
    char *error = s_parse_bad (yaml);
    assert_non_null (strstr (error, "wf.yaml:3:3: invalid task name 'nnnn"));
    assert_non_null (strstr (error, "...'"));    //  long names are cut in messages
    free (error);

    s_expect_only ("name: w\nparams: {a b: 1}\ntasks: {a: {run: x}}\n",
                   "wf.yaml:2:10: invalid parameter name 'a b' (use letters, digits, '_', "
                   "'.', '-')");
    s_expect_only ("name: w\nparams: {my-lr: 1, MY_LR: 2}\ntasks: {a: {run: x}}\n",
                   "wf.yaml:2:20: parameter 'MY_LR' clashes with 'my-lr' (both become "
                   "QANAT_PARAM_ variable names alike)");
}

static void
test_checks (void **state)
{
    (void) state;
    s_expect_only ("name: w\ntasks:\n  a:\n    run: x\n    checks:\n      - accuracy >=\n",
                   "wf.yaml:6:9: invalid check 'accuracy >=': expected a number after '>=' "
                   "(at character 12)");
    s_expect_only ("name: w\ntasks:\n  a:\n    run: x\n    checks:\n"
                   "      - {expr: \"median(x) < 1\"}\n",
                   "wf.yaml:6:16: invalid check 'median(x) < 1': unknown aggregator 'median' "
                   "(use last, min, max or mean) (at character 1)");
    s_expect_only ("name: w\ntasks:\n  a:\n    run: x\n    checks:\n"
                   "      - {expr: \"x < 1\", severity: fatal}\n",
                   "wf.yaml:6:35: invalid severity 'fatal' (use error or warning)");
    s_expect_only ("name: w\ntasks:\n  a:\n    run: x\n    checks:\n"
                   "      - {expr: \"x < 1\", severity: [error]}\n",
                   "wf.yaml:6:35: expected error or warning for 'severity'");
    s_expect_only ("name: w\ntasks:\n  a:\n    run: x\n    checks:\n      - {expr: }\n",
                   "wf.yaml:6:16: expected a check expression for 'expr'");
    s_expect_only ("name: w\ntasks:\n  a:\n    run: x\n    checks:\n      - x > 1 y\n",
                   "wf.yaml:6:9: invalid check 'x > 1 y': unexpected text after the number "
                   "(at character 7)");
}


//  --------------------------------------------------------------------
//  Parameters

static void
test_params_resolve (void **state)
{
    (void) state;
    qn_workflow_t *workflow = s_parse_ok (
        "name: w\n"
        "params:\n"
        "  epochs: 20\n"
        "  lr: {default: 0.1, description: learning rate}\n"
        "  data:\n"
        "  mode: {description: required too}\n"
        "tasks: {a: {run: x}}\n");
    assert_int_equal (qn_workflow_param_count (workflow), 4);
    assert_null (qn_workflow_param (workflow, 2)->default_value);
    assert_null (qn_workflow_param (workflow, 3)->default_value);

    //  Required ones missing: one error line each
    char *error = NULL;
    assert_null (qn_workflow_resolve_params (workflow, NULL, 0, &error));
    assert_string_equal (error, "parameter 'data' is required (it has no default)\n"
                         "parameter 'mode' is required (it has no default)");
    free (error);

    qn_kv_t overrides [] = {
        { "data", "/d" }, { "lr", "0.5" }, { "mode", "fast" }, { "lr", "0.7" },
    };
    qn_kv_t *values = qn_workflow_resolve_params (workflow, overrides, 4, &error);
    assert_non_null (values);
    assert_null (error);
    assert_string_equal (values [0].key, "epochs");
    assert_string_equal (values [0].value, "20");
    assert_string_equal (values [1].key, "lr");
    assert_string_equal (values [1].value, "0.7");          //  the last override wins
    assert_string_equal (values [2].key, "data");
    assert_string_equal (values [2].value, "/d");
    assert_string_equal (values [3].key, "mode");
    assert_string_equal (values [3].value, "fast");
    qn_kv_free (values, 4);

    qn_kv_t unknown [] = { { "x", "1" }, { "data", "/d" }, { "mode", "m" } };
    assert_null (qn_workflow_resolve_params (workflow, unknown, 3, &error));
    assert_string_equal (error, "unknown parameter 'x' (declared: epochs, lr, data, mode)");
    free (error);
    //  No error pointer: still fails cleanly
    assert_null (qn_workflow_resolve_params (workflow, unknown, 3, NULL));
    qn_workflow_destroy (&workflow);

    workflow = s_parse_ok ("name: w\ntasks: {a: {run: x}}\n");
    values = qn_workflow_resolve_params (workflow, NULL, 0, &error);
    assert_non_null (values);                   //  empty, but not an error
    qn_kv_free (values, 0);
    qn_kv_t one [] = { { "x", "1" } };
    assert_null (qn_workflow_resolve_params (workflow, one, 1, &error));
    assert_string_equal (error, "unknown parameter 'x' (this workflow declares no parameters)");
    free (error);
    qn_workflow_destroy (&workflow);
}


//  --------------------------------------------------------------------
//  Hostile input

static void
test_aliases_and_anchors (void **state)
{
    (void) state;
    char *error = s_parse_bad ("name: w\ncommon: &c {run: x}\ntasks:\n  a: *c\n");
    s_assert_line (error, "wf.yaml:2:9: YAML anchors are not supported ('&c')");
    s_assert_line (error, "wf.yaml:4:6: YAML aliases are not supported");
    free (error);
    //  The classic "billion laughs" stays cheap: refused at the first anchor
    error = s_parse_bad ("a: &a [x, x, x, x, x, x, x, x, x]\n"
                         "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                         "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
                         "d: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n");
    assert_non_null (strstr (error, "wf.yaml:1:4: YAML anchors are not supported ('&a')"));
    free (error);
}

static void
test_depth (void **state)
{
    (void) state;
    //  Depth 32 (the top mapping is 1) parses as far as structure goes
    char yaml [2048];
    strcpy (yaml, "name: w\ntasks: {a: {run: x}}\nx: ");
    for (int i = 0; i < 31; i++)
        strcat (yaml, "[");
    for (int i = 0; i < 31; i++)
        strcat (yaml, "]");
    strcat (yaml, "\n");
    char *error = s_parse_bad (yaml);
    assert_string_equal (error, "wf.yaml:3:1: unknown key 'x'");
    free (error);

    strcpy (yaml, "name: w\ntasks: {a: {run: x}}\nx: ");
    for (int i = 0; i < 32; i++)
        strcat (yaml, "[");
    for (int i = 0; i < 32; i++)
        strcat (yaml, "]");
    strcat (yaml, "\n");
    error = s_parse_bad (yaml);
    assert_string_equal (error, "wf.yaml:3:35: nesting is deeper than 32 levels");
    free (error);

    //  Very deep: refused early, no stack exhaustion
    char *deep = malloc (200001);
    memset (deep, '[', 100000);
    memset (deep + 100000, ']', 100000);
    deep [200000] = '\0';
    error = s_parse_bad (deep);
    assert_string_equal (error, "wf.yaml:1:33: nesting is deeper than 32 levels");
    free (error);
    free (deep);
}

static void
test_size_limits (void **state)
{
    (void) state;
    //  More than 1 MiB is refused before parsing
    size_t big = 1024 * 1024 + 1;
    char *text = malloc (big + 1);
    memset (text, '#', big);
    text [big] = '\0';
    char *error = NULL;
    assert_null (qn_workflow_parse ("wf.yaml", text, big, &error));
    assert_string_equal (error, "wf.yaml:1:1: file is larger than 1 MiB");
    free (error);

    //  The same message through a file (the CLI reads it, the coordinator
    //  parses what it is sent)
    char path [] = "/tmp/qn_workflow_big_XXXXXX";
    int fd = mkstemp (path);
    assert_true (fd >= 0);
    assert_int_equal (write (fd, text, big), (ssize_t) big);
    close (fd);
    assert_null (qn_workflow_load (path, &error));
    char *expected = NULL;
    assert_true (asprintf (&expected, "%s:1:1: file is larger than 1 MiB", path) > 0);
    assert_string_equal (error, expected);
    free (expected);
    free (error);
    unlink (path);
    free (text);

    //  Exactly 10,000 tasks are fine; 10,001 are not
    for (int extra = 0; extra <= 1; extra++) {
        char *yaml = NULL;
        size_t size = 0;
        FILE *stream = open_memstream (&yaml, &size);
        fprintf (stream, "name: w\ntasks:\n");
        int count = 10000 + extra;
        for (int i = 0; i < count; i++)
            fprintf (stream, "  t%d: {run: x%s%d}\n", i, i? ", needs: t": "", i? i - 1: 0);
        fclose (stream);
        assert_true (size < 1024 * 1024);
        qn_workflow_t *workflow = qn_workflow_parse ("wf.yaml", yaml, size, &error);
        if (extra == 0) {
            assert_non_null (workflow);
            assert_int_equal (qn_workflow_task_count (workflow), 10000);
            assert_int_equal (qn_workflow_task_index (workflow, "t9999"), 9999);
            assert_int_equal (qn_workflow_task (workflow, 9999)->need_index [0], 9998);
            qn_workflow_destroy (&workflow);
        }
        else {
            assert_null (workflow);
            assert_string_equal (error, "wf.yaml:2:1: too many tasks: 10001 (limit 10000)");
            free (error);
        }
        free (yaml);
    }
}

static void
test_many_errors_capped (void **state)
{
    (void) state;
    char *yaml = NULL;
    size_t size = 0;
    FILE *stream = open_memstream (&yaml, &size);
    fprintf (stream, "name: w\ntasks:\n");
    for (int i = 0; i < 5000; i++)
        fprintf (stream, "  t%d: {run: x, needs: nothing%d}\n", i, i);
    fclose (stream);
    char *error = s_parse_bad (yaml);
    assert_int_equal (s_count_lines (error), 101);
    assert_non_null (strstr (error, "\nwf.yaml: 4900 more errors not shown"));
    s_assert_line (error, "wf.yaml:3:23: task 't0' needs unknown task 'nothing0'");
    free (error);
    free (yaml);
}

static void
test_garbage (void **state)
{
    (void) state;
    //  NUL inside a scalar, invalid UTF-8, several documents, binary junk
    char *error = NULL;
    const char nul [] = "name: \"a\\0b\"\ntasks: {a: {run: x}}\n";
    assert_null (qn_workflow_parse ("wf.yaml", nul, sizeof (nul) - 1, &error));
    s_assert_line (error, "wf.yaml:1:7: NUL characters are not allowed in strings");
    free (error);

    const char raw_nul [] = "name: w\ntasks: {a: {run: x}}\n\0junk";
    assert_null (qn_workflow_parse ("wf.yaml", raw_nul, sizeof (raw_nul) - 1, &error));
    assert_string_equal (error, "wf.yaml:3:1: YAML error: control characters are not allowed");
    free (error);

    s_expect_only ("name: w\ntasks: {a: {run: \xff}}\n",
                   "wf.yaml:2:18: YAML error: invalid leading UTF-8 octet");
    s_expect_only ("name: w\ntasks: {a: {run: x}}\n---\nname: v\n",
                   "wf.yaml:3:1: only one YAML document is allowed in a workflow file");

    assert_null (qn_workflow_parse (NULL, NULL, 0, &error));
    assert_string_equal (error, "<input>:1:1: the workflow file is empty (needs 'name' and "
                         "'tasks')");
    free (error);
    //  No error pointer is fine
    assert_null (qn_workflow_parse ("wf.yaml", "x", 1, NULL));

    assert_null (qn_workflow_load ("/nonexistent/wf.yaml", &error));
    assert_string_equal (error, "/nonexistent/wf.yaml: No such file or directory");
    free (error);
    assert_null (qn_workflow_load ("/", &error));
    assert_string_equal (error, "/: Is a directory");
    free (error);
}

//  Random mutations of the full example: nothing may crash or leak
//  (run under valgrind), and whatever parses must be coherent.
static void
test_fuzz (void **state)
{
    (void) state;
    char *path = s_fixture ("full.yaml");
    FILE *file = fopen (path, "r");
    assert_non_null (file);
    free (path);
    char base [4096];
    size_t len = fread (base, 1, sizeof (base), file);
    fclose (file);
    assert_true (len > 100);

    const char alphabet [] = "[]{}:,-&*!|>'\"#%@` \n\t\r\\0aZ~?";
    unsigned int seed = 12345;
    size_t parsed = 0;
    for (int round = 0; round < 1500; round++) {
        char text [4096];
        memcpy (text, base, len);
        size_t size = len;
        int edits = 1 + rand_r (&seed) % 4;
        for (int e = 0; e < edits; e++) {
            size_t at = (size_t) rand_r (&seed) % size;
            int kind = rand_r (&seed) % 3;
            if (kind == 0)
                text [at] = alphabet [rand_r (&seed) % (sizeof (alphabet) - 1)];
            else
            if (kind == 1)
                text [at] = (char) (rand_r (&seed) & 0xff);
            else
                size = at + 1;          //  truncate
        }
        char *error = NULL;
        qn_workflow_t *workflow = qn_workflow_parse ("f.yaml", text, size, &error);
        if (workflow) {
            assert_null (error);
            parsed++;
            for (size_t i = 0; i < qn_workflow_task_count (workflow); i++) {
                const qn_task_t *task = qn_workflow_task (workflow, i);
                assert_true (task->argc > 0);
                assert_non_null (task->argv [0]);
                assert_null (task->argv [task->argc]);
                for (size_t j = 0; j < task->needs_count; j++)
                    assert_true (task->need_index [j] < qn_workflow_task_count (workflow));
            }
            qn_workflow_destroy (&workflow);
        }
        else {
            assert_non_null (error);
            assert_true (strncmp (error, "f.yaml:", 7) == 0);
            free (error);
        }
    }
    //  Some mutations land in comments or strings and still parse
    assert_true (parsed > 0);
}

//  backend: and its options block become flat pairs in file order, as
//  Assign.backend_options carries them.
static void
test_backend_options (void **state)
{
    (void) state;
    qn_workflow_t *wf = s_parse_ok (
        "name: hybrid\n"
        "tasks:\n"
        "  prep:\n"
        "    run: echo prep\n"
        "  train:\n"
        "    run: python train.py\n"
        "    needs: prep\n"
        "    backend: slurm\n"
        "    slurm:\n"
        "      partition: gpu\n"
        "      account: ml\n"
        "      sbatch_args: [\"--exclusive\", \"--constraint=a100\"]\n"
        "  eval:\n"
        "    run: python eval.py\n"
        "    needs: train\n"
        "    backend: kubernetes\n"
        "    kubernetes:\n"
        "      image: python:3.11-slim\n"
        "      node_selector: {pool: gpu, zone: a}\n"
        "      tolerations:\n"
        "        - {key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}\n"
        "      image_pull_secrets: regcred\n");
    const qn_task_t *prep = qn_workflow_task (wf, 0);
    assert_null (prep->backend);
    assert_int_equal (prep->backend_option_count, 0);
    const qn_task_t *train = qn_workflow_task (wf, 1);
    assert_string_equal (train->backend, "slurm");
    assert_int_equal (train->backend_option_count, 4);
    assert_string_equal (train->backend_options [0].key, "partition");
    assert_string_equal (train->backend_options [0].value, "gpu");
    assert_string_equal (train->backend_options [1].key, "account");
    assert_string_equal (train->backend_options [2].key, "sbatch_arg");
    assert_string_equal (train->backend_options [2].value, "--exclusive");
    assert_string_equal (train->backend_options [3].value, "--constraint=a100");
    const qn_task_t *eval = qn_workflow_task (wf, 2);
    assert_string_equal (eval->backend, "kubernetes");
    assert_int_equal (eval->backend_option_count, 5);
    assert_string_equal (eval->backend_options [0].key, "image");
    assert_string_equal (eval->backend_options [1].key, "node_selector");
    assert_string_equal (eval->backend_options [1].value, "pool=gpu");
    assert_string_equal (eval->backend_options [2].value, "zone=a");
    assert_string_equal (eval->backend_options [3].key, "toleration");
    assert_string_equal (eval->backend_options [3].value,
                         "key=nvidia.com/gpu,operator=Exists,effect=NoSchedule");
    assert_string_equal (eval->backend_options [4].key, "image_pull_secret");
    assert_string_equal (eval->backend_options [4].value, "regcred");
    qn_workflow_destroy (&wf);
}

//  A Lambda block: its payload any YAML value, kept as compact JSON with
//  plain scalars typed; the function is required, values are checked
static void
test_backend_lambda (void **state)
{
    (void) state;
    qn_workflow_t *wf = s_parse_ok (
        "name: w\ntasks:\n  a:\n    run: x\n    backend: lambda\n"
        "    lambda:\n      function: arn:aws:lambda:eu-west-1:123456789012:function:score\n"
        "      qualifier: live\n      region: eu-west-1\n"
        "      payload: {n: 3, ok: true, none: null, s: \"3\", list: [a, 1.5], "
        "lr: \"${{ params.lr }}\"}\n");
    const qn_task_t *task = qn_workflow_task (wf, 0);
    assert_string_equal (task->backend, "lambda");
    assert_int_equal (task->backend_option_count, 4);
    assert_string_equal (task->backend_options [0].key, "function");
    assert_string_equal (task->backend_options [1].value, "live");
    assert_string_equal (task->backend_options [3].key, "payload");
    assert_string_equal (task->backend_options [3].value,
                         "{\"n\":3,\"ok\":true,\"none\":null,\"s\":\"3\",\"list\":[\"a\",1.5],"
                         "\"lr\":\"${{ params.lr }}\"}");
    qn_workflow_destroy (&wf);
    s_expect_only ("name: w\ntasks:\n  a:\n    run: x\n    backend: lambda\n",
                   "wf.yaml:5:14: backend 'lambda' needs a 'lambda:' block with 'function'");
    s_expect_only ("name: w\ntasks:\n  a:\n    run: x\n    backend: lambda\n"
                   "    lambda: {qualifier: live}\n",
                   "wf.yaml:6:13: 'lambda' needs 'function'");
    s_expect_only ("name: w\ntasks:\n  a:\n    run: x\n    backend: lambda\n"
                   "    lambda: {function: f, region: EU/West}\n",
                   "wf.yaml:6:35: invalid value 'EU/West' for 'region' in 'lambda' "
                   "(a region such as eu-west-1)");
    s_expect_only ("name: w\ntasks:\n  a:\n    run: x\n    backend: lambda\n"
                   "    lambda: {function: \"f/../g\"}\n",
                   "wf.yaml:6:24: invalid value 'f/../g' for 'function' in 'lambda' (a function "
                   "name, partial ARN or ARN: letters, digits, '-', '_', ':', at most 170 "
                   "characters)");
    //  'run' only for the backends that run a command
    wf = s_parse_ok ("name: w\ntasks:\n  a:\n    backend: lambda\n    lambda: {function: f}\n"
                     "  b:\n    backend: airflow\n    airflow: {dag_id: d}\n");
    assert_int_equal (qn_workflow_task (wf, 0)->argc, 0);
    assert_null (qn_workflow_task (wf, 1)->argv);
    qn_workflow_destroy (&wf);
    s_expect_only ("name: w\ntasks:\n  a:\n    backend: slurm\n",
                   "wf.yaml:3:3: task 'a' has no 'run' command");
    s_expect_only ("name: w\ntasks:\n  a:\n    backend: ray\n",
                   "wf.yaml:3:3: task 'a' has no 'run' command");
}

static void
test_backend_errors (void **state)
{
    (void) state;
    s_expect_only ("name: w\ntasks:\n  a:\n    run: x\n    backend: lambada\n",
                   "wf.yaml:5:14: unknown backend 'lambada' (known: local, slurm, kubernetes, "
                   "lambda, databricks, ray, airflow)");
    s_expect_only ("name: w\ntasks:\n  a:\n    run: x\n    slurm: {partition: gpu}\n",
                   "wf.yaml:5:5: 'slurm' options given, but the task's backend is the agent's "
                   "default (add 'backend: slurm')");
    s_expect_only ("name: w\ntasks:\n  a:\n    run: x\n    backend: slurm\n    slurm: {partiton: gpu}\n",
                   "wf.yaml:6:13: unknown key 'partiton' in 'slurm' (did you mean 'partition'?)");
    s_expect_only ("name: w\ntasks:\n  a:\n    run: x\n    backend: slurm\n"
                   "    slurm: {sbatch_args: [\"--output=/etc/x\"]}\n",
                   "wf.yaml:6:27: sbatch argument '--output=/etc/x' is not allowed (an option "
                   "starting with '-'; qanat sets --output, --error, --job-name, --chdir itself)");
    s_expect_only ("name: w\ntasks:\n  a:\n    run: x\n    backend: kubernetes\n"
                   "    kubernetes: {image: \"a,b\"}\n",
                   "wf.yaml:6:25: invalid value 'a,b' for 'image' in 'kubernetes' (no control "
                   "characters or commas)");
    s_expect_only ("name: w\ntasks:\n  a:\n    run: x\n    backend: kubernetes\n"
                   "    kubernetes: {tolerations: {key: a}}\n",
                   "wf.yaml:6:31: expected a list of mappings for 'tolerations'");
}

//  Typed parameters: defaults and allowed values are checked at parse
//  time, run values when a run starts; ${{ params.x }} expands in run.
static void
test_typed_params (void **state)
{
    (void) state;
    qn_workflow_t *wf = s_parse_ok (
        "name: typed\n"
        "params:\n"
        "  epochs: {type: int, default: 5}\n"
        "  lr: {type: float, default: 0.01}\n"
        "  shuffle: {type: bool, default: yes}\n"
        "  optimizer: {type: string, default: adam, allowed: [adam, sgd]}\n"
        "  note: {default: \"it's\"}\n"
        "tasks:\n"
        "  train:\n"
        "    run: python train.py --epochs ${{ params.epochs }} --note ${{params.note}}\n"
        "  listed:\n"
        "    run: [echo, \"${{ params.optimizer }}\"]\n");
    assert_int_equal (qn_workflow_param (wf, 0)->type, QN_PARAM_INT);
    assert_string_equal (qn_workflow_param (wf, 2)->default_value, "true");
    assert_int_equal (qn_workflow_param (wf, 3)->allowed_count, 2);

    char *error = NULL;
    qn_kv_t bad [] = { { (char *) "epochs", (char *) "abc" } };
    assert_null (qn_workflow_resolve_params (wf, bad, 1, &error));
    assert_string_equal (error, "parameter 'epochs' wants an int, not 'abc'");
    free (error);
    qn_kv_t bad_choice [] = { { (char *) "optimizer", (char *) "rmsprop" } };
    assert_null (qn_workflow_resolve_params (wf, bad_choice, 1, &error));
    assert_string_equal (error, "parameter 'optimizer' must be one of: adam, sgd (not 'rmsprop')");
    free (error);
    qn_kv_t bad_float [] = { { (char *) "lr", (char *) "nan" } };
    assert_null (qn_workflow_resolve_params (wf, bad_float, 1, &error));
    free (error);
    qn_kv_t good [] = { { (char *) "epochs", (char *) "12" }, { (char *) "shuffle", (char *) "0" } };
    qn_kv_t *params = qn_workflow_resolve_params (wf, good, 2, &error);
    assert_non_null (params);
    assert_string_equal (params [0].value, "12");
    assert_string_equal (params [2].value, "false");

    //  In a shell string a reference becomes the variable that carries the
    //  value; in a list the value is verbatim.  The cache key's identity
    //  has the values, quoted in a shell string.
    char **argv = qn_workflow_task_argv (qn_workflow_task (wf, 0), params, 5, &error);
    assert_non_null (argv);
    assert_string_equal (argv [2], "python train.py --epochs \"${QANAT_PARAM_EPOCHS}\" "
                                   "--note \"${QANAT_PARAM_NOTE}\"");
    for (size_t i = 0; argv [i]; i++)
        free (argv [i]);
    free (argv);
    argv = qn_workflow_task_identity (qn_workflow_task (wf, 0), params, 5, &error);
    assert_non_null (argv);
    assert_string_equal (argv [2], "python train.py --epochs '12' --note 'it'\\''s'");
    for (size_t i = 0; argv [i]; i++)
        free (argv [i]);
    free (argv);
    argv = qn_workflow_task_argv (qn_workflow_task (wf, 1), params, 5, &error);
    assert_non_null (argv);
    assert_string_equal (argv [1], "adam");
    assert_null (argv [2]);
    for (size_t i = 0; argv [i]; i++)
        free (argv [i]);
    free (argv);
    qn_kv_free (params, 5);
    qn_workflow_destroy (&wf);

    s_expect_only ("name: w\nparams:\n  n: {type: int, default: ten}\ntasks:\n  a: {run: x}\n",
                   "wf.yaml:3:27: default of parameter 'n' wants an int, not 'ten'");
    s_expect_only ("name: w\nparams:\n  n: {type: integer}\ntasks:\n  a: {run: x}\n",
                   "wf.yaml:3:13: unknown type 'integer' for parameter 'n' (use string, int, "
                   "float, bool or artifact)");
    s_expect_only ("name: w\nparams:\n  n: {type: int, allowed: [1, two]}\ntasks:\n  a: {run: x}\n",
                   "wf.yaml:3:31: parameter 'n' wants an int, not 'two'");
    s_expect_only ("name: w\ntasks:\n  a: {run: \"echo ${{ params.nope }}\"}\n",
                   "wf.yaml:3:12: unknown parameter 'nope' in '${{ params.nope }}' in the 'run' "
                   "of task 'a'");
}

//  outputs, inputs (with the implied dependency), cache, keep_runs and
//  the artifact store.
static void
test_artifacts (void **state)
{
    (void) state;
    qn_workflow_t *wf = s_parse_ok (
        "name: arts\n"
        "keep_runs: 5\n"
        "artifacts: {store: s3, bucket: ml, prefix: runs/, endpoint: \"http://127.0.0.1:1\", "
        "path_style: true}\n"
        "tasks:\n"
        "  prepare:\n"
        "    run: make-data\n"
        "    outputs:\n"
        "      dataset: data/\n"
        "      rows: {value: true}\n"
        "  train:\n"
        "    run: train\n"
        "    cache: true\n"
        "    inputs:\n"
        "      dataset: prepare.dataset\n"
        "      rows: {from: prepare.rows}\n"
        "      again: {from: prepare.dataset, path: in/d}\n"
        "    outputs: {model: model.bin}\n");
    assert_int_equal (qn_workflow_keep_runs (wf), 5);
    const qn_artifact_store_t *store = qn_workflow_artifact_store (wf);
    assert_string_equal (store->kind, "s3");
    assert_string_equal (store->bucket, "ml");
    assert_true (store->path_style);
    const qn_task_t *prepare = qn_workflow_task (wf, 0);
    assert_int_equal (prepare->output_count, 2);
    assert_string_equal (prepare->outputs [0].path, "data/");
    assert_true (prepare->outputs [1].value);
    assert_null (prepare->outputs [1].path);
    const qn_task_t *train = qn_workflow_task (wf, 1);
    assert_true (train->cache);
    assert_int_equal (train->input_count, 3);
    assert_string_equal (train->inputs [0].task, "prepare");
    assert_string_equal (train->inputs [0].output, "dataset");
    assert_string_equal (train->inputs [0].path, "dataset");
    assert_string_equal (train->inputs [2].path, "in/d");
    assert_int_equal (train->inputs [1].task_index, 0);
    //  The input made prepare a dependency, once
    assert_int_equal (train->needs_count, 1);
    assert_int_equal (train->need_index [0], 0);
    qn_workflow_destroy (&wf);

    s_expect_only ("name: w\ntasks:\n  a:\n    run: x\n    outputs: {m: ../model.bin}\n",
                   "wf.yaml:5:18: output 'm': '../model.bin' is not a path inside the working "
                   "directory (relative, no '..')");
    s_expect_only ("name: w\ntasks:\n  a:\n    run: x\n    outputs: {m: /etc/passwd}\n",
                   "wf.yaml:5:18: output 'm': '/etc/passwd' is not a path inside the working "
                   "directory (relative, no '..')");
    s_expect_only ("name: w\ntasks:\n  a: {run: x, outputs: {m: m.bin}}\n"
                   "  b: {run: y, inputs: {m: a.model}}\n",
                   "wf.yaml:4:27: task 'a' has no output 'model' (for input 'm' of task 'b')");
    s_expect_only ("name: w\ntasks:\n  b: {run: y, inputs: {m: nope.model}}\n",
                   "wf.yaml:3:27: input 'm' of task 'b' comes from unknown task 'nope'");
    s_expect_only ("name: w\ntasks:\n  b: {run: y, inputs: {m: model}}\n",
                   "wf.yaml:3:27: expected TASK.OUTPUT for input 'm'");
    //  A cycle made only of inputs is still a cycle
    char *error = s_parse_bad ("name: w\ntasks:\n"
                               "  a: {run: x, outputs: {o: o}, inputs: {i: b.o}}\n"
                               "  b: {run: y, outputs: {o: o}, inputs: {i: a.o}}\n");
    assert_non_null (strstr (error, "cycle"));
    free (error);
}

#define S_HEX64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define S_HEX64_UPPER "0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF"

//  retry_on: every ending by name, all of them by default
static void
test_retry_on (void **state)
{
    (void) state;
    qn_workflow_t *workflow = s_parse_ok ("name: w\ntasks:\n  a: {run: x}\n"
                                          "  b: {run: x, retry_on: [output, timeout]}\n");
    assert_int_equal (qn_workflow_task (workflow, 0)->retry_on, QN_RETRY_ON_ALL);
    assert_true (QN_RETRY_ON_ALL & QN_RETRY_ON_OUTPUT);
    assert_int_equal (qn_workflow_task (workflow, 1)->retry_on,
                      QN_RETRY_ON_OUTPUT | QN_RETRY_ON_TIMEOUT);
    qn_workflow_destroy (&workflow);
    s_expect_only ("name: w\ntasks:\n  a: {run: x, retry_on: [outptu]}\n",
                   "wf.yaml:3:26: unknown retry_on value 'outptu' (did you mean 'output'?)");
}

//  Artifact parameters: the values qn_workflow_param_check takes for them
static void
test_artifact_param_check (void **state)
{
    (void) state;
    qn_param_t param = { (char *) "dataset", NULL, NULL, QN_PARAM_ARTIFACT, NULL, 0 };
    assert_string_equal (qn_param_type_name (QN_PARAM_ARTIFACT), "artifact");
    char *error = NULL;
    char *value = qn_workflow_param_check (&param, "file:" S_HEX64, &error);
    assert_non_null (value);
    assert_null (error);
    assert_string_equal (value, "file:" S_HEX64);
    free (value);
    value = qn_workflow_param_check (&param, "dir:" S_HEX64, &error);
    assert_non_null (value);
    assert_string_equal (value, "dir:" S_HEX64);
    free (value);
    //  Upper-case hex is taken and comes back as qanat put prints it
    value = qn_workflow_param_check (&param, "dir:" S_HEX64_UPPER, &error);
    assert_non_null (value);
    assert_string_equal (value, "dir:" S_HEX64);
    free (value);

    assert_null (qn_workflow_param_check (&param, "abc", &error));
    assert_string_equal (error, "parameter 'dataset' wants an artifact reference "
                         "(file:<sha256> or dir:<sha256>, as qanat put prints), not 'abc'");
    free (error);
    static const char *refused [] = {
        "", "file:", "dir:", S_HEX64, ":" S_HEX64, "blob:" S_HEX64, "File:" S_HEX64,
        "DIR:" S_HEX64, " file:" S_HEX64, "file: " S_HEX64, "file:" S_HEX64 " ",
        "file:" S_HEX64 "\n", "file:" S_HEX64 "0", "dir:" S_HEX64 "/x",
        "file:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde",
        "file:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeg",
        "file:0x23456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "@./data.csv", "file:@./data.csv", NULL
    };
    for (size_t i = 0; refused [i]; i++) {
        error = NULL;
        value = qn_workflow_param_check (&param, refused [i], &error);
        if (value)
            fail_msg ("took '%s' as an artifact reference", refused [i]);
        assert_non_null (error);
        assert_non_null (strstr (error, "wants an artifact reference"));
        free (error);
    }
    //  No value, no error pointer: refused without a crash
    assert_null (qn_workflow_param_check (&param, NULL, &error));
    free (error);
    assert_null (qn_workflow_param_check (&param, "x", NULL));
}

//  Artifact parameters in a workflow, and inputs staged from them
static void
test_artifact_params (void **state)
{
    (void) state;
    //  'params' after 'tasks': inputs are resolved once both are read
    qn_workflow_t *wf = s_parse_ok (
        "name: put\n"
        "tasks:\n"
        "  prep: {run: p, outputs: {out: out/}}\n"
        "  train:\n"
        "    run: \"train --data-ref ${{ params.dataset }}\"\n"
        "    inputs:\n"
        "      data: {param: dataset}\n"
        "      cfg: {param: config, path: in/cfg.json}\n"
        "      mixed: prep.out\n"
        "      again: {path: in/again, param: dataset}\n"
        "params:\n"
        "  dataset: {type: artifact, description: training data}\n"
        "  config: {type: artifact}\n"
        "  epochs: {type: int, default: 3}\n");
    assert_int_equal (qn_workflow_param_count (wf), 3);
    const qn_param_t *dataset = qn_workflow_param (wf, 0);
    assert_int_equal (dataset->type, QN_PARAM_ARTIFACT);
    assert_null (dataset->default_value);
    assert_int_equal (dataset->allowed_count, 0);
    assert_string_equal (dataset->description, "training data");

    const qn_task_t *train = qn_workflow_task (wf, 1);
    assert_int_equal (train->input_count, 4);
    const qn_input_t *data = &train->inputs [0];
    assert_string_equal (data->name, "data");
    assert_string_equal (data->param, "dataset");
    assert_null (data->task);
    assert_null (data->output);
    assert_true (data->task_index == SIZE_MAX);
    assert_string_equal (data->path, "data");
    assert_int_equal (data->line, 7);
    assert_int_equal (data->col, 21);
    assert_string_equal (train->inputs [1].param, "config");
    assert_string_equal (train->inputs [1].path, "in/cfg.json");
    assert_null (train->inputs [2].param);
    assert_string_equal (train->inputs [2].task, "prep");
    assert_int_equal (train->inputs [2].task_index, 0);
    assert_string_equal (train->inputs [3].param, "dataset");
    assert_string_equal (train->inputs [3].path, "in/again");
    //  Only the task input makes a dependency
    assert_int_equal (train->needs_count, 1);
    assert_string_equal (train->needs [0], "prep");
    assert_int_equal (train->need_index [0], 0);
    assert_int_equal (qn_workflow_task (wf, 0)->needs_count, 0);

    //  An artifact parameter is always required
    char *error = NULL;
    assert_null (qn_workflow_resolve_params (wf, NULL, 0, &error));
    assert_string_equal (error, "parameter 'dataset' is required (it has no default)\n"
                         "parameter 'config' is required (it has no default)");
    free (error);
    qn_kv_t bad [] = {
        { (char *) "dataset", (char *) "@./data.csv" },
        { (char *) "config", (char *) "file:" S_HEX64 },
    };
    assert_null (qn_workflow_resolve_params (wf, bad, 2, &error));
    assert_string_equal (error, "parameter 'dataset' wants an artifact reference "
                         "(file:<sha256> or dir:<sha256>, as qanat put prints), "
                         "not '@./data.csv'");
    free (error);
    qn_kv_t good [] = {
        { (char *) "dataset", (char *) "dir:" S_HEX64_UPPER },
        { (char *) "config", (char *) "file:" S_HEX64 },
    };
    qn_kv_t *params = qn_workflow_resolve_params (wf, good, 2, &error);
    assert_non_null (params);
    assert_null (error);
    assert_string_equal (params [0].value, "dir:" S_HEX64);
    assert_string_equal (params [1].value, "file:" S_HEX64);
    assert_string_equal (params [2].value, "3");
    //  In the command, the parameter is the reference itself
    char **argv = qn_workflow_task_identity (train, params, 3, &error);
    assert_non_null (argv);
    assert_string_equal (argv [2], "train --data-ref 'dir:" S_HEX64 "'");
    for (size_t i = 0; argv [i]; i++)
        free (argv [i]);
    free (argv);
    qn_kv_free (params, 3);
    qn_workflow_destroy (&wf);

    //  No default, no allowed; the parameter still exists, so an input
    //  naming it adds no second error
    s_expect_only ("name: w\nparams:\n  d: {type: artifact, default: \"file:" S_HEX64 "\"}\n"
                   "tasks:\n  a: {run: x, inputs: {i: {param: d}}}\n",
                   "wf.yaml:3:32: artifact parameter 'd' cannot have a default (it would name "
                   "a blob nobody keeps): give it at run time, e.g. --param d=@PATH");
    s_expect_only ("name: w\nparams:\n  d: {type: artifact, allowed: [\"file:" S_HEX64 "\"]}\n"
                   "tasks:\n  a: {run: x, inputs: {i: {param: d}}}\n",
                   "wf.yaml:3:32: artifact parameter 'd' cannot have 'allowed'");
    //  A null default is no default
    wf = s_parse_ok ("name: w\nparams:\n  d: {type: artifact, default: ~}\n"
                     "tasks:\n  a: {run: x}\n");
    assert_null (qn_workflow_param (wf, 0)->default_value);
    qn_workflow_destroy (&wf);

    //  Inputs: from or param, exactly one
    s_expect_only ("name: w\nparams: {d: {type: artifact}}\ntasks:\n"
                   "  a: {run: x, outputs: {o: o}}\n"
                   "  b: {run: y, inputs: {m: {from: a.o, param: d}}}\n",
                   "wf.yaml:5:27: input 'm' comes either 'from' a task or from a 'param', "
                   "not both");
    s_expect_only ("name: w\ntasks:\n  b: {run: y, inputs: {m: {path: x}}}\n",
                   "wf.yaml:3:27: input 'm' needs 'from: TASK.OUTPUT' or 'param: NAME'");
    s_expect_only ("name: w\ntasks:\n  b: {run: y, inputs: {m: {}}}\n",
                   "wf.yaml:3:27: input 'm' needs 'from: TASK.OUTPUT' or 'param: NAME'");
    s_expect_only ("name: w\ntasks:\n  b: {run: y, inputs: {m: {param: [d]}}}\n",
                   "wf.yaml:3:35: expected a parameter name for 'param' of input 'm'");
    s_expect_only ("name: w\ntasks:\n  b: {run: y, inputs: {m: {param: }}}\n",
                   "wf.yaml:3:35: expected a parameter name for 'param' of input 'm'");
    s_expect_only ("name: w\ntasks:\n  b: {run: y, inputs: {m: {param: ~}}}\n",
                   "wf.yaml:3:35: expected a parameter name for 'param' of input 'm'");
    s_expect_only ("name: w\nparams: {d: {type: artifact}}\ntasks:\n"
                   "  b: {run: y, inputs: {m: {param: d, path: ../x}}}\n",
                   "wf.yaml:4:44: input 'm': not a path inside the working directory "
                   "(relative, no '..')");
    //  The parameter must be declared, and an artifact
    s_expect_only ("name: w\ntasks:\n  b: {run: y, inputs: {m: {param: nope}}}\n",
                   "wf.yaml:3:35: input 'm': no parameter 'nope'");
    s_expect_only ("name: w\ntasks:\n  b: {run: y, inputs: {m: {param: epochs}}}\n"
                   "params:\n  epochs: {type: int, default: 3}\n",
                   "wf.yaml:3:35: input 'm': parameter 'epochs' is an int, not an artifact");
    s_expect_only ("name: w\ntasks:\n  b: {run: y, inputs: {m: {param: p}}}\n"
                   "params:\n  p: /data\n",
                   "wf.yaml:3:35: input 'm': parameter 'p' is a string, not an artifact");
    s_expect_only ("name: w\nparams: {f: {type: float, default: 1.5}}\ntasks:\n"
                   "  b: {run: y, inputs: {m: {param: f}}}\n",
                   "wf.yaml:4:35: input 'm': parameter 'f' is a float, not an artifact");
    //  A misspelt key: named, and the input still lacks its source
    char *errors = s_parse_bad ("name: w\ntasks:\n  b: {run: y, inputs: {m: {parm: d}}}\n");
    s_assert_line (errors, "wf.yaml:3:28: unknown key 'parm' in an input (did you mean 'param'?)");
    s_assert_line (errors, "wf.yaml:3:27: input 'm' needs 'from: TASK.OUTPUT' or 'param: NAME'");
    assert_int_equal (s_count_lines (errors), 2);
    free (errors);
    //  Every input error is reported, each at its place
    errors = s_parse_bad ("name: w\ntasks:\n  b:\n    run: y\n    inputs:\n"
                          "      i: {param: x}\n      j: {param: n}\n      k: {param: d}\n"
                          "params: {n: {type: int}, d: {type: artifact}}\n");
    assert_string_equal (errors, "wf.yaml:6:18: input 'i': no parameter 'x'\n"
                         "wf.yaml:7:18: input 'j': parameter 'n' is an int, not an artifact");
    free (errors);
}

//  The workflow's code: a top-level folder or none, a task's `code: none`
//  and `workdir:`, with their errors
//  `warm:` (qn_wf_warm): true, false, absent; anything else is an error
static void
test_warm (void **state)
{
    (void) state;
    qn_workflow_t *wf = s_parse_ok ("name: w\ntasks:\n"
                                    "  a:\n    run: x\n    warm: true\n"
                                    "  b:\n    run: x\n    warm: false\n"
                                    "  c:\n    run: x\n");
    assert_true (qn_workflow_task (wf, 0)->warm);
    assert_false (qn_workflow_task (wf, 1)->warm);
    assert_false (qn_workflow_task (wf, 2)->warm);
    qn_workflow_destroy (&wf);
    s_expect_only ("name: w\ntasks:\n  a:\n    run: x\n    warm: yes\n",
                   "wf.yaml:5:11: expected true or false for 'warm'");
    s_expect_only ("name: w\ntasks:\n  a:\n    run: x\n    warm: [true]\n",
                   "wf.yaml:5:11: expected true or false for 'warm'");
}

static void
test_code_and_workdir (void **state)
{
    (void) state;
    qn_workflow_t *wf = s_parse_ok ("name: c\ncode: ../src\ntasks:\n"
                                    "  a:\n    run: x\n"
                                    "  b:\n    code: none\n    run: x\n"
                                    "  c:\n    workdir: /srv/shared/proj\n    run: x\n");
    assert_string_equal (qn_workflow_code (wf), "../src");
    assert_false (qn_workflow_task (wf, 0)->no_code);
    assert_null (qn_workflow_task (wf, 0)->workdir);
    assert_true (qn_workflow_task (wf, 1)->no_code);
    assert_string_equal (qn_workflow_task (wf, 2)->workdir, "/srv/shared/proj");
    qn_workflow_destroy (&wf);
    wf = s_parse_ok ("name: c\ntasks:\n  a:\n    run: x\n");
    assert_null (qn_workflow_code (wf));
    qn_workflow_destroy (&wf);
    s_expect_only ("name: c\ntasks:\n  a:\n    run: x\n    code: yes\n",
                   "wf.yaml:5:11: a task's 'code' can only be 'none' (the workflow's top-level "
                   "'code' names the folder)");
    s_expect_only ("name: c\ntasks:\n  a:\n    run: x\n    workdir: rel/dir\n",
                   "wf.yaml:5:14: 'workdir' must be an absolute path without '..'");
    s_expect_only ("name: c\ntasks:\n  a:\n    run: x\n    workdir: /a/../etc\n",
                   "wf.yaml:5:14: 'workdir' must be an absolute path without '..'");
    s_expect_only ("name: c\ntasks:\n  p:\n    run: x\n    outputs: {o: o}\n"
                   "  a:\n    run: x\n    inputs: {i: p.o}\n    workdir: /srv\n",
                   "wf.yaml:9:14: a task with 'workdir' runs in place: it cannot also have "
                   "'inputs'");
    s_expect_only ("name: c\ncode: [a]\ntasks:\n  a:\n    run: x\n",
                   "wf.yaml:2:7: expected a string for 'code'");
    s_expect_only ("name: c\ncode: \"a\\tb\"\ntasks:\n  a:\n    run: x\n",
                   "wf.yaml:2:7: 'code' contains a control character");
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_backend_options),
        cmocka_unit_test (test_typed_params),
        cmocka_unit_test (test_artifacts),
        cmocka_unit_test (test_artifact_param_check),
        cmocka_unit_test (test_retry_on),
        cmocka_unit_test (test_artifact_params),
        cmocka_unit_test (test_backend_errors),
        cmocka_unit_test (test_backend_lambda),
        cmocka_unit_test (test_full_example),
        cmocka_unit_test (test_minimal_and_block_style),
        cmocka_unit_test (test_units),
        cmocka_unit_test (test_scalars_as_text),
        cmocka_unit_test (test_diamond_order),
        cmocka_unit_test (test_error_fixture),
        cmocka_unit_test (test_syntax_error),
        cmocka_unit_test (test_unknown_keys),
        cmocka_unit_test (test_wrong_types),
        cmocka_unit_test (test_empty_commands),
        cmocka_unit_test (test_dependencies),
        cmocka_unit_test (test_duplicates),
        cmocka_unit_test (test_cycles),
        cmocka_unit_test (test_names_and_required),
        cmocka_unit_test (test_checks),
        cmocka_unit_test (test_params_resolve),
        cmocka_unit_test (test_aliases_and_anchors),
        cmocka_unit_test (test_depth),
        cmocka_unit_test (test_size_limits),
        cmocka_unit_test (test_many_errors_capped),
        cmocka_unit_test (test_garbage),
        cmocka_unit_test (test_fuzz),
        cmocka_unit_test (test_code_and_workdir),
        cmocka_unit_test (test_warm),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
