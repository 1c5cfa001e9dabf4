/*  test_wf_matrix - a task's matrix through the whole parser: one task
    per combination in a stable order and name, the values in ${{
    matrix.KEY }} (a shell variable in a script, the text in an argument,
    quoted in the cache identity) and QANAT_MATRIX_KEY in env, needs on
    the task as written meaning every expansion, and the errors, each once
    at its place. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qn_workflow.h"

static qn_workflow_t *
s_parse (const char *yaml)
{
    char *error = NULL;
    qn_workflow_t *wf = qn_workflow_parse ("wf.yaml", yaml, strlen (yaml), &error);
    if (!wf)
        fail_msg ("did not parse: %s", error? error: "?");
    return wf;
}

static void
s_expect (const char *yaml, const char *errors)
{
    char *error = NULL;
    qn_workflow_t *wf = qn_workflow_parse ("wf.yaml", yaml, strlen (yaml), &error);
    if (wf)
        fail_msg ("parsed but should not:\n%s", yaml);
    if (strcmp (error, errors) != 0)
        fail_msg ("expected:\n%s\ngot:\n%s", errors, error);
    free (error);
}

static const char *
s_env (const qn_task_t *task, const char *key)
{
    for (size_t i = 0; i < task->env_count; i++)
        if (strcmp (task->env [i].key, key) == 0)
            return task->env [i].value;
    return NULL;
}

static void
s_free_argv (char **argv)
{
    for (size_t i = 0; argv && argv [i]; i++)
        free (argv [i]);
    free (argv);
}

static void
test_expansion (void **state)
{
    (void) state;
    qn_workflow_t *wf = s_parse (
        "name: sweep\n"
        "params: {tag: {default: t}}\n"
        "tasks:\n"
        "  prep: {run: echo}\n"
        "  train:\n"
        "    needs: [prep]\n"
        "    matrix: {lr: [0.1, 1e-3], Seed: [1, 2, 3]}\n"
        "    env: {A: b}\n"
        "    run: echo ${{ matrix.lr }} ${{ params.tag }}\n"
        "  exec:\n"
        "    matrix: {opt: [adam]}\n"
        "    run: [echo, \"--opt=${{ matrix.opt }}\"]\n"
        "  report: {run: echo, needs: [exec, train]}\n");
    const char *names [] = { "prep", "train[lr=0.1,Seed=1]", "train[lr=0.1,Seed=2]",
                             "train[lr=0.1,Seed=3]", "train[lr=1e-3,Seed=1]",
                             "train[lr=1e-3,Seed=2]", "train[lr=1e-3,Seed=3]",
                             "exec[opt=adam]", "report" };
    assert_int_equal (qn_workflow_task_count (wf), 9);
    for (size_t t = 0; t < 9; t++) {
        assert_string_equal (qn_workflow_task (wf, t)->name, names [t]);
        assert_int_equal (qn_workflow_task_index (wf, names [t]), (int) t);
    }
    const qn_task_t *train = qn_workflow_task (wf, 5);
    assert_string_equal (train->matrix_of, "train");
    assert_int_equal (train->matrix_count, 2);
    assert_string_equal (train->matrix [0].key, "lr");
    assert_string_equal (train->matrix [0].value, "1e-3");
    assert_string_equal (train->matrix [1].value, "2");
    assert_string_equal (s_env (train, "QANAT_MATRIX_LR"), "1e-3");
    assert_string_equal (s_env (train, "QANAT_MATRIX_SEED"), "2");
    assert_string_equal (s_env (train, "A"), "b");
    assert_int_equal (train->line, 5);
    assert_int_equal (train->needs_count, 1);
    assert_null (qn_workflow_task (wf, 0)->matrix_of);
    //  report needs exec's one expansion and train's six, each resolved
    const qn_task_t *report = qn_workflow_task (wf, 8);
    assert_int_equal (report->needs_count, 7);
    assert_string_equal (report->needs [0], "exec[opt=adam]");
    for (size_t n = 1; n < 7; n++) {
        assert_string_equal (report->needs [n], names [n]);
        assert_int_equal (report->need_index [n], n);
    }
    //  A script gets the variable, an argument and the identity the value
    qn_kv_t params [] = { { (char *) "tag", (char *) "x" } };
    char *error = NULL;
    char **argv = qn_workflow_task_argv (train, params, 1, &error);
    assert_non_null (argv);
    assert_string_equal (argv [2], "echo \"${QANAT_MATRIX_LR}\" \"${QANAT_PARAM_TAG}\"");
    s_free_argv (argv);
    argv = qn_workflow_task_identity (train, params, 1, &error);
    assert_string_equal (argv [2], "echo '1e-3' 'x'");
    s_free_argv (argv);
    argv = qn_workflow_task_argv (qn_workflow_task (wf, 7), params, 1, &error);
    assert_string_equal (argv [1], "--opt=adam");
    s_free_argv (argv);
    qn_workflow_destroy (&wf);
}

static void
test_errors (void **state)
{
    (void) state;
    s_expect ("name: w\ntasks:\n  t:\n    matrix: {lr: [0.1, 'a b']}\n    run: echo\n",
              "wf.yaml:4:24: invalid value for matrix key 'lr' in task 't' (1 to 64 of letters, "
              "digits, '_', '.', '+', '-')");
    s_expect ("name: w\ntasks:\n  t:\n    matrix: {1x: [1]}\n    run: echo\n",
              "wf.yaml:4:14: invalid matrix key '1x' in task 't' (use letters, digits and '_', "
              "not starting with a digit)");
    s_expect ("name: w\ntasks:\n  t:\n    matrix: {a: [1], A: [2]}\n    run: echo\n",
              "wf.yaml:4:22: matrix keys 'a' and 'A' in task 't' are the same variable");
    s_expect ("name: w\ntasks:\n  t:\n    matrix: {a: []}\n    run: echo\n",
              "wf.yaml:4:14: expected a non-empty list of values for matrix key 'a' in task 't'");
    s_expect ("name: w\ntasks:\n  t:\n    matrix: [a]\n    run: echo\n",
              "wf.yaml:4:13: expected a mapping of keys to lists of values for 'matrix' in task 't'");
    s_expect ("name: w\ntasks:\n  t:\n    matrix: {a: [1, 1]}\n    run: echo\n",
              "wf.yaml:4:21: value '1' twice for matrix key 'a' in task 't'");
    //  An error in the task is said once, not once per combination
    s_expect ("name: w\ntasks:\n  t:\n    matrix: {a: [1, 2]}\n    run: echo ${{ matrix.b }}\n"
              "    needs: [nope]\n",
              "wf.yaml:5:10: unknown matrix key 'b' in '${{ matrix.b }}' in the 'run' of task 't'\n"
              "wf.yaml:6:13: task 't' needs unknown task 'nope'");
    s_expect ("name: w\ntasks:\n  t:\n    matrix: {a: [1, 2]}\n    run: echo\n    needs: [t]\n",
              "wf.yaml:3:3: dependency cycle: t[a=1] -> t[a=2] -> t[a=1]\n"
              "wf.yaml:6:13: task 't' needs itself");
    s_expect ("name: w\ntasks:\n  t:\n    matrix: {a: [1, 2]}\n    run: echo\n"
              "  u: {run: echo, inputs: {m: {from: t.out}}}\n",
              "wf.yaml:6:37: input 'm' of task 'u' comes from the matrix task 't': inputs from a "
              "matrix are not supported");
    s_expect ("name: w\ntasks:\n  t:\n    run: echo ${{ matrix.a }}\n",
              "wf.yaml:4:10: unknown matrix key 'a' in '${{ matrix.a }}' in the 'run' of task 't'");
    char big [512];
    snprintf (big, sizeof big, "name: w\ntasks:\n  t:\n    matrix: {a: [%s], b: [%s]}\n"
              "    run: echo\n", "0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16",
              "0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15");
    s_expect (big, "wf.yaml:4:13: the matrix of task 't' makes more than 256 tasks");
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_expansion),
        cmocka_unit_test (test_errors),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
