/*  Tests for qn_lambda: the Lambda backend's payload from a template and
    the attempt's values, its client context, the result's values, a
    FunctionError's reason and trace, and Lambda's own log lines.
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
#include "qn_lambda.h"

//  An assignment with QANAT_PARAM_LR=0.5, QANAT_PARAM_NAME=x y and the
//  value input rows=12
typedef struct {
    Qanat__Assign assign;
    Qanat__Label env [2];
    Qanat__Label *env_p [2];
    Qanat__InputSpec input;
    Qanat__InputSpec *input_p [1];
    Qanat__OutputSpec outputs [3];
    Qanat__OutputSpec *output_p [3];
} s_fixture_t;

static void
s_fixture (s_fixture_t *f)
{
    memset (f, 0, sizeof (*f));
    qanat__assign__init (&f->assign);
    for (int i = 0; i < 2; i++) {
        qanat__label__init (&f->env [i]);
        f->env_p [i] = &f->env [i];
    }
    f->env [0].key = "QANAT_PARAM_LR";
    f->env [0].value = "0.5";
    f->env [1].key = "QANAT_PARAM_NAME";
    f->env [1].value = "x y";
    f->assign.env = f->env_p;
    f->assign.n_env = 2;
    qanat__input_spec__init (&f->input);
    f->input.name = "rows";
    f->input.kind = QANAT__ARTIFACT_KIND__ARTIFACT_VALUE;
    f->input.value = "12";
    f->input_p [0] = &f->input;
    f->assign.inputs = f->input_p;
    f->assign.n_inputs = 1;
    const char *names [] = { "total", "label", "result" };
    for (int i = 0; i < 3; i++) {
        qanat__output_spec__init (&f->outputs [i]);
        f->outputs [i].name = (char *) names [i];
        f->outputs [i].value = true;
        f->output_p [i] = &f->outputs [i];
    }
    f->assign.outputs = f->output_p;
    f->assign.n_outputs = 3;
}

static void
test_payload (void **state)
{
    (void) state;
    s_fixture_t f;
    s_fixture (&f);
    char error [256] = "";
    char *text = qn_lambda_payload (&f.assign, NULL, error, sizeof (error));
    assert_string_equal (text, "{\"params\":{\"lr\":\"0.5\",\"name\":\"x y\"},\"inputs\":{\"rows\":\"12\"}}");
    free (text);
    text = qn_lambda_payload (&f.assign, "{\"lr\":\"${{ params.lr }}\",\"rows\":\"${{inputs.rows}}\","
                              "\"say\":\"hi ${{ params.name }}!\",\"deep\":[{\"n\":\"${{ params.name }}\"},3]}",
                              error, sizeof (error));
    assert_string_equal (text, "{\"lr\":0.5,\"rows\":12,\"say\":\"hi x y!\",\"deep\":[{\"n\":\"x y\"},3]}");
    free (text);
    text = qn_lambda_payload (&f.assign, "\"${{ inputs.rows }}\"", error, sizeof (error));
    assert_string_equal (text, "12");
    free (text);
    assert_null (qn_lambda_payload (&f.assign, "{\"a\":\"${{ secrets.key }}\"}", error,
                                    sizeof (error)));
    assert_non_null (strstr (error, "unknown reference '${{ secrets.key }}'"));
    assert_null (qn_lambda_payload (&f.assign, "{nope", error, sizeof (error)));
    //  An unclosed reference is text
    text = qn_lambda_payload (&f.assign, "\"a ${{ b\"", error, sizeof (error));
    assert_string_equal (text, "\"a ${{ b\"");
    free (text);
}

static void
test_client_context (void **state)
{
    (void) state;
    char *context = qn_lambda_client_context (7, 2, 3);
    //  base64 of {"custom":{"qanat_key":"qanat-7-2-3"}}
    assert_string_equal (context, "eyJjdXN0b20iOnsicWFuYXRfa2V5IjoicWFuYXQtNy0yLTMifX0=");
    free (context);
}

static void
test_values (void **state)
{
    (void) state;
    s_fixture_t f;
    s_fixture (&f);
    char path [] = "/tmp/qn-lambda-values-XXXXXX";
    int fd = mkstemp (path);
    assert_true (fd >= 0);
    close (fd);
    char error [256] = "";
    const char *answer = "{\"total\":20,\"label\":\"done\",\"extra\":[1,2]}";
    assert_int_equal (qn_lambda_write_values (&f.assign, answer, strlen (answer), path, error,
                                              sizeof (error)), 0);
    FILE *file = fopen (path, "r");
    char text [512] = "";
    size_t size = fread (text, 1, sizeof (text) - 1, file);
    fclose (file);
    text [size] = '\0';
    assert_string_equal (text, "total=20\nlabel=done\n"
                               "result={\"total\":20,\"label\":\"done\",\"extra\":[1,2]}\n");
    //  A missing member, a value with a newline
    assert_int_equal (qn_lambda_write_values (&f.assign, "{\"total\":1}", 11, path, error,
                                              sizeof (error)), -1);
    assert_non_null (strstr (error, "output 'label': the function's result has no member"));
    const char *newline = "{\"total\":1,\"label\":\"a\\nb\"}";
    assert_int_equal (qn_lambda_write_values (&f.assign, newline, strlen (newline), path, error,
                                              sizeof (error)), -1);
    assert_non_null (strstr (error, "newline"));
    unlink (path);
}

static void
test_function_error (void **state)
{
    (void) state;
    char reason [256];
    const char *answer = "{\"errorMessage\":\"bad input\",\"errorType\":\"ValueError\","
                         "\"stackTrace\":[\"  File \\\"app.py\\\", line 9\\n\"]}";
    char *trace = qn_lambda_function_error (answer, strlen (answer), "Unhandled", reason,
                                            sizeof (reason));
    assert_string_equal (reason, "ValueError: bad input (Lambda Unhandled function error)");
    assert_string_equal (trace, "ValueError: bad input\n  File \"app.py\", line 9\n\n");
    free (trace);
    trace = qn_lambda_function_error ("not json", 8, "Handled", reason, sizeof (reason));
    assert_string_equal (reason, "the function failed (Lambda Handled function error)");
    assert_string_equal (trace, "not json\n");
    free (trace);
}

static void
test_lines (void **state)
{
    (void) state;
    char id [QN_LAMBDA_REQUEST_ID_MAX + 1];
    qn_lambda_report_t report;
    assert_int_equal (qn_lambda_line ("START RequestId: 8f5e-11 Version: $LATEST\n", id, NULL),
                      QN_LAMBDA_LINE_START);
    assert_string_equal (id, "8f5e-11");
    assert_int_equal (qn_lambda_line ("END RequestId: 8f5e-11\n", id, NULL), QN_LAMBDA_LINE_END);
    assert_int_equal (qn_lambda_line ("REPORT RequestId: 8f5e-11\tDuration: 102.25 ms\t"
                                      "Billed Duration: 103 ms\tMemory Size: 128 MB\t"
                                      "Max Memory Used: 42 MB\tInit Duration: 180.50 ms\t\n",
                                      id, &report), QN_LAMBDA_LINE_REPORT);
    assert_true (report.duration_ms == 102.25 && report.billed_ms == 103
                 && report.memory_size_mb == 128 && report.max_memory_mb == 42
                 && report.init_ms == 180.5);
    assert_int_equal (qn_lambda_line ("REPORT RequestId: 1\tDuration: 1.00 ms\t", id, &report),
                      QN_LAMBDA_LINE_REPORT);
    assert_true (report.init_ms < 0 && report.billed_ms < 0);
    assert_int_equal (qn_lambda_line ("START RequestId: \n", id, NULL), QN_LAMBDA_LINE_PLAIN);
    assert_int_equal (qn_lambda_line ("hello START RequestId: 1", id, NULL), QN_LAMBDA_LINE_PLAIN);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_payload),
        cmocka_unit_test (test_client_context),
        cmocka_unit_test (test_values),
        cmocka_unit_test (test_function_error),
        cmocka_unit_test (test_lines),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
