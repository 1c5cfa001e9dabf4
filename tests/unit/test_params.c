/*  test_params - typed parameters: the `params:` block read from a tree
    (types, defaults, allowed lists, name clashes, artifact rules) and a
    run's values resolved from defaults and overrides. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qn_params.h"

//  Parses the value of the top-level 'params' key of text; returns the
//  errors (malloc'd) or NULL
static char *
s_parse (const char *text, qn_param_t **params_p, size_t *count_p)
{
    qn_yaml_ctx_t ctx = { .filename = "f.yaml" };
    bool fatal;
    qn_yaml_node_t *root = qn_yaml_build (&ctx, text, strlen (text), &fatal);
    assert_false (fatal);
    qn_yaml_mark_duplicates (&ctx, root, "tasks", "task");
    *params_p = NULL;
    *count_p = 0;
    qn_params_parse (&ctx, qn_yaml_map_get (root, "params", NULL), params_p, count_p);
    qn_yaml_node_free (&root);
    char *errors = ctx.count || ctx.oom? qn_yaml_errors_take (&ctx): NULL;
    free (ctx.errors);
    return errors;
}

static void
test_parse (void **state)
{
    (void) state;
    qn_param_t *params;
    size_t count;
    char *errors = s_parse ("params:\n"
                            "  lr: 0.1\n"
                            "  epochs: {type: int, default: 3, description: passes}\n"
                            "  verbose: {type: bool, default: Yes}\n"
                            "  mode: {allowed: [fast, slow], default: fast}\n"
                            "  data: {type: artifact}\n", &params, &count);
    assert_null (errors);
    assert_int_equal (count, 5);
    assert_string_equal (params [0].name, "lr");
    assert_int_equal (params [0].type, QN_PARAM_STRING);
    assert_string_equal (params [0].default_value, "0.1");
    assert_int_equal (params [1].type, QN_PARAM_INT);
    assert_string_equal (params [1].description, "passes");
    assert_string_equal (params [2].default_value, "true");       //  canonical
    assert_int_equal (params [3].allowed_count, 2);
    assert_string_equal (params [3].allowed [1], "slow");
    assert_int_equal (params [4].type, QN_PARAM_ARTIFACT);
    assert_null (params [4].default_value);
    qn_params_free (params, count);
}

static void
test_parse_errors (void **state)
{
    (void) state;
    qn_param_t *params;
    size_t count;
    char *errors = s_parse ("params:\n"
                            "  my-lr: 1\n"
                            "  my_lr: 2\n"
                            "  n: {type: integer}\n"
                            "  k: {type: int, default: x}\n"
                            "  c: {type: int, allowed: [1, two]}\n"
                            "  blob: {type: artifact, default: x, allowed: [y]}\n"
                            "  e: {defualt: 1}\n"
                            "  bad/name: 1\n", &params, &count);
    assert_string_equal (errors,
        "f.yaml:3:3: parameter 'my_lr' clashes with 'my-lr' (both become QANAT_PARAM_ "
        "variable names alike)\n"
        "f.yaml:4:13: unknown type 'integer' for parameter 'n' (use string, int, float, bool "
        "or artifact)\n"
        "f.yaml:5:27: default of parameter 'k' wants an int, not 'x'\n"
        "f.yaml:6:31: parameter 'c' wants an int, not 'two'\n"
        "f.yaml:7:35: artifact parameter 'blob' cannot have a default (it would name a blob "
        "nobody keeps): give it at run time, e.g. --param blob=@PATH\n"
        "f.yaml:7:47: artifact parameter 'blob' cannot have 'allowed'\n"
        "f.yaml:8:7: unknown key 'defualt' in parameter 'e' (did you mean 'default'?)\n"
        "f.yaml:9:3: invalid parameter name 'bad/name' (use letters, digits, '_', '.', '-')");
    free (errors);
    //  The artifact parameter stays, without default and allowed, so that
    //  inputs naming it resolve
    bool blob = false;
    for (size_t i = 0; i < count; i++)
        if (strcmp (params [i].name, "blob") == 0)
            blob = !params [i].default_value && params [i].allowed_count == 0;
    assert_true (blob);
    qn_params_free (params, count);

    errors = s_parse ("params: [a]\n", &params, &count);
    assert_string_equal (errors, "f.yaml:1:9: expected a mapping of parameter names for "
                                 "'params'");
    free (errors);
    qn_params_free (params, count);
}

static void
test_resolve (void **state)
{
    (void) state;
    qn_param_t *params;
    size_t count;
    char *errors = s_parse ("params:\n"
                            "  lr: 0.1\n"
                            "  flag: {type: bool, default: off}\n"
                            "  need: {type: int}\n", &params, &count);
    assert_null (errors);
    qn_kv_t overrides [] = { { (char *) "need", (char *) "7" },
                             { (char *) "flag", (char *) "YES" },
                             { (char *) "need", (char *) "8" } };
    qn_kv_t *values = qn_params_resolve (params, count, overrides, 3, &errors);
    assert_non_null (values);
    assert_string_equal (values [0].value, "0.1");
    assert_string_equal (values [1].value, "true");
    assert_string_equal (values [2].key, "need");
    assert_string_equal (values [2].value, "8");                   //  the last override wins
    qn_kv_free (values, count);

    qn_kv_t wrong [] = { { (char *) "lrr", (char *) "1" },
                         { (char *) "flag", (char *) "maybe" } };
    values = qn_params_resolve (params, count, wrong, 2, &errors);
    assert_null (values);
    assert_string_equal (errors,
        "unknown parameter 'lrr' (declared: lr, flag, need)\n"
        "parameter 'flag' wants a bool, not 'maybe'\n"
        "parameter 'need' is required (it has no default)");
    free (errors);

    values = qn_params_resolve (NULL, 0, wrong, 1, &errors);
    assert_null (values);
    assert_string_equal (errors, "unknown parameter 'lrr' (this workflow declares no "
                                 "parameters)");
    free (errors);
    qn_params_free (params, count);
}

//  One reader of boolean words serves bool params, their JSON and qanatd's
//  config file
static void
test_bool_words (void **state)
{
    (void) state;
    const char *yes [] = { "true", "YES", "On", "1" };
    const char *no [] = { "false", "No", "OFF", "0" };
    for (size_t i = 0; i < 4; i++) {
        bool value = false;
        assert_int_equal (qn_params_bool (yes [i], &value), 0);
        assert_true (value);
        value = true;
        assert_int_equal (qn_params_bool (no [i], &value), 0);
        assert_false (value);
    }
    bool untouched = true;
    assert_int_equal (qn_params_bool ("maybe", &untouched), -1);
    assert_int_equal (qn_params_bool ("", &untouched), -1);
    assert_int_equal (qn_params_bool (NULL, &untouched), -1);
    assert_true (untouched);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_parse),
        cmocka_unit_test (test_parse_errors),
        cmocka_unit_test (test_resolve),
        cmocka_unit_test (test_bool_words),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
