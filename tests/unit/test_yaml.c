/*  test_yaml - the YAML tree (positions, refusals, duplicate keys), the
    error list and its "file:line:col" text, "did you mean", and the typed
    reads of scalars. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qn_yaml.h"

//  Builds text into a tree; *errors_p gets the errors (or NULL)
static qn_yaml_node_t *
s_build (const char *text, bool *fatal_p, char **errors_p)
{
    qn_yaml_ctx_t ctx = { .filename = "f.yaml" };
    bool fatal = false;
    qn_yaml_node_t *root = qn_yaml_build (&ctx, text, strlen (text), &fatal);
    if (fatal_p)
        *fatal_p = fatal;
    *errors_p = ctx.count || ctx.oom? qn_yaml_errors_take (&ctx): NULL;
    free (ctx.errors);
    return root;
}

static void
test_tree (void **state)
{
    (void) state;
    char *errors;
    qn_yaml_node_t *root = s_build ("a: 1\nb:\n  - x\n  - 'y'\nc: ~\n", NULL, &errors);
    assert_null (errors);
    assert_non_null (root);
    assert_int_equal (root->kind, QN_YAML_MAPPING);
    assert_int_equal (root->count, 6);
    qn_yaml_node_t *key = NULL;
    qn_yaml_node_t *b = qn_yaml_map_get (root, "b", &key);
    assert_non_null (b);
    assert_int_equal (key->line, 2);
    assert_int_equal (key->col, 1);
    assert_int_equal (b->kind, QN_YAML_SEQUENCE);
    assert_int_equal (b->count, 2);
    assert_int_equal (b->items [1]->line, 4);
    assert_int_equal (b->items [1]->col, 5);
    assert_true (b->items [0]->plain);
    assert_false (b->items [1]->plain);
    assert_string_equal (b->items [1]->value, "y");
    assert_true (qn_yaml_is_null (qn_yaml_map_get (root, "c", NULL)));
    assert_true (qn_yaml_is_null (qn_yaml_map_get (root, "missing", NULL)));
    assert_false (qn_yaml_is_null (qn_yaml_map_get (root, "a", NULL)));
    qn_yaml_node_free (&root);
    assert_null (root);

    //  An empty stream has no root and no error
    root = s_build ("", NULL, &errors);
    assert_null (root);
    assert_null (errors);
}

static void
test_refused (void **state)
{
    (void) state;
    char *errors;
    bool fatal;
    qn_yaml_node_t *root = s_build ("a: &x 1\nb: *x\n", &fatal, &errors);
    assert_false (fatal);
    assert_string_equal (errors,
        "f.yaml:1:4: YAML anchors are not supported ('&x')\n"
        "f.yaml:2:4: YAML aliases are not supported");
    //  The alias's stand-in keeps keys and values paired
    assert_int_equal (root->count, 4);
    qn_yaml_node_free (&root);
    free (errors);

    root = s_build ("a: 1\n---\nb: 2\n", &fatal, &errors);
    assert_true (fatal);
    assert_string_equal (errors,
        "f.yaml:2:1: only one YAML document is allowed in a workflow file");
    qn_yaml_node_free (&root);
    free (errors);

    char deep [200] = "";
    for (int i = 0; i < 40; i++)
        strcat (deep, "[");
    root = s_build (deep, &fatal, &errors);
    assert_true (fatal);
    assert_non_null (strstr (errors, "nesting is deeper than 32 levels"));
    qn_yaml_node_free (&root);
    free (errors);

    root = s_build ("a: [1\n", &fatal, &errors);
    assert_true (fatal);
    assert_non_null (strstr (errors, "YAML syntax error"));
    qn_yaml_node_free (&root);
    free (errors);
}

static void
test_duplicates (void **state)
{
    (void) state;
    const char *text = "tasks:\n  a: 1\n  a: 2\nname: x\nname: y\nother:\n  k: 1\n  k: 2\n"
                       "tasks: 3\n";
    qn_yaml_ctx_t ctx = { .filename = "f.yaml" };
    bool fatal;
    qn_yaml_node_t *root = qn_yaml_build (&ctx, text, strlen (text), &fatal);
    assert_int_equal (ctx.count, 0);
    qn_yaml_mark_duplicates (&ctx, root, "tasks", "task");
    char *errors = qn_yaml_errors_take (&ctx);
    assert_string_equal (errors,
        "f.yaml:3:3: duplicate task 'a' (first defined at line 2)\n"
        "f.yaml:5:1: duplicate key 'name' (first defined at line 4)\n"
        "f.yaml:8:3: duplicate key 'k' (first defined at line 7)\n"
        "f.yaml:9:1: duplicate key 'tasks' (first defined at line 1)");
    free (errors);
    //  Lookups see the first occurrence only
    assert_string_equal (qn_yaml_map_get (root, "name", NULL)->value, "x");
    assert_int_equal (qn_yaml_map_get (root, "tasks", NULL)->kind, QN_YAML_MAPPING);
    qn_yaml_node_free (&root);
}

static void
test_errors (void **state)
{
    (void) state;
    qn_yaml_ctx_t ctx = { .filename = "w.yaml" };
    qn_yaml_error (&ctx, 3, 1, "third");
    qn_yaml_error (&ctx, 1, 5, "first %s", "b");
    qn_yaml_error (&ctx, 1, 2, "first a");
    qn_yaml_error (&ctx, 3, 1, "third, later");
    char *errors = qn_yaml_errors_take (&ctx);
    assert_string_equal (errors, "w.yaml:1:2: first a\nw.yaml:1:5: first b\n"
                                 "w.yaml:3:1: third\nw.yaml:3:1: third, later");
    free (errors);
    assert_int_equal (ctx.count, 0);
    assert_null (ctx.errors);

    for (size_t i = 0; i < 105; i++)
        qn_yaml_error (&ctx, i + 1, 1, "e");
    ctx.oom = true;
    errors = qn_yaml_errors_take (&ctx);
    assert_non_null (strstr (errors, "w.yaml:100:1: e\nw.yaml: 5 more errors not shown\n"
                                     "w.yaml: out of memory"));
    assert_null (strstr (errors, "w.yaml:101:1"));
    free (errors);

    qn_yaml_echo_t echo;
    assert_string_equal (qn_yaml_echo ("a\tb\n\xc3\xa9", echo), "a?b???");
    char long_text [200];
    memset (long_text, 'x', sizeof (long_text) - 1);
    long_text [sizeof (long_text) - 1] = '\0';
    const char *cut = qn_yaml_echo (long_text, echo);
    assert_int_equal (strlen (cut), QN_YAML_ECHO_MAX + 3);
    assert_string_equal (cut + QN_YAML_ECHO_MAX, "...");
}

static void
test_suggestions (void **state)
{
    (void) state;
    const char *known [] = { "retries", "prepare", "run", "needs", NULL };
    assert_string_equal (qn_yaml_closest ("retry", known, 4), "retries");
    assert_string_equal (qn_yaml_closest ("prep", known, 4), "prepare");
    assert_string_equal (qn_yaml_closest ("nedds", known, 4), "needs");
    assert_null (qn_yaml_closest ("xyz", known, 4));
    assert_null (qn_yaml_closest ("run", known, 4));      //  equal is not a suggestion
    assert_true (qn_yaml_is_known ("run", known));
    assert_false (qn_yaml_is_known ("ru", known));

    char *errors;
    qn_yaml_node_t *root = s_build ("rnu: 1\nzzz: 2\nrun: 3\n", NULL, &errors);
    qn_yaml_ctx_t ctx = { .filename = "f.yaml" };
    qn_yaml_check_keys (&ctx, root, known, " in task 't'");
    errors = qn_yaml_errors_take (&ctx);
    assert_string_equal (errors,
        "f.yaml:1:1: unknown key 'rnu' in task 't' (did you mean 'run'?)\n"
        "f.yaml:2:1: unknown key 'zzz' in task 't'");
    free (errors);
    qn_yaml_node_free (&root);
}

//  Typed reads of scalars; each failure is reported at its node
static void
test_scalars (void **state)
{
    (void) state;
    char *errors;
    qn_yaml_node_t *root = s_build (
        "n: '42'\nbig: 99999999999\nneg: -1\n"
        "m1: 512\nm2: 4G\nm3: 1Gi\nm4: 3X\n"
        "d1: 90\nd2: 1h30m\nd3: 2d\nd4: 30m1h\nd5: ''\n"
        "l1: one\nl2: [a, b]\nl3: [a, {x: 1}]\nl4:\n", NULL, &errors);
    assert_null (errors);
    qn_yaml_ctx_t ctx = { .filename = "f.yaml" };
    uint32_t u = 0;
    uint64_t mb = 0;
    assert_int_equal (qn_yaml_uint32 (&ctx, qn_yaml_map_get (root, "n", NULL), "n", &u), 0);
    assert_int_equal (u, 42);
    assert_int_equal (qn_yaml_uint32 (&ctx, qn_yaml_map_get (root, "big", NULL), "big", &u), -1);
    assert_int_equal (qn_yaml_uint32 (&ctx, qn_yaml_map_get (root, "neg", NULL), "neg", &u), -1);
    assert_int_equal (qn_yaml_memory (&ctx, qn_yaml_map_get (root, "m1", NULL), &mb), 0);
    assert_int_equal (mb, 512);
    assert_int_equal (qn_yaml_memory (&ctx, qn_yaml_map_get (root, "m2", NULL), &mb), 0);
    assert_int_equal (mb, 4096);
    assert_int_equal (qn_yaml_memory (&ctx, qn_yaml_map_get (root, "m3", NULL), &mb), 0);
    assert_int_equal (mb, 1024);
    assert_int_equal (qn_yaml_memory (&ctx, qn_yaml_map_get (root, "m4", NULL), &mb), -1);
    assert_int_equal (qn_yaml_duration (&ctx, qn_yaml_map_get (root, "d1", NULL), "d1", &u), 0);
    assert_int_equal (u, 90);
    assert_int_equal (qn_yaml_duration (&ctx, qn_yaml_map_get (root, "d2", NULL), "d2", &u), 0);
    assert_int_equal (u, 5400);
    assert_int_equal (qn_yaml_duration (&ctx, qn_yaml_map_get (root, "d3", NULL), "d3", &u), 0);
    assert_int_equal (u, 172800);
    assert_int_equal (qn_yaml_duration (&ctx, qn_yaml_map_get (root, "d4", NULL), "d4", &u), -1);
    assert_int_equal (qn_yaml_duration (&ctx, qn_yaml_map_get (root, "d5", NULL), "d5", &u), -1);

    qn_yaml_node_t **items;
    size_t count;
    assert_int_equal (qn_yaml_scalar_list (&ctx, qn_yaml_map_get (root, "l1", NULL), "names",
                                           &items, &count), 0);
    assert_int_equal (count, 1);
    assert_string_equal (items [0]->value, "one");
    free (items);
    assert_int_equal (qn_yaml_scalar_list (&ctx, qn_yaml_map_get (root, "l2", NULL), "names",
                                           &items, &count), 0);
    assert_int_equal (count, 2);
    free (items);
    assert_int_equal (qn_yaml_scalar_list (&ctx, qn_yaml_map_get (root, "l3", NULL), "names",
                                           &items, &count), -1);
    assert_int_equal (count, 1);
    free (items);
    assert_int_equal (qn_yaml_scalar_list (&ctx, qn_yaml_map_get (root, "l4", NULL), "names",
                                           &items, &count), 0);
    assert_int_equal (count, 0);
    assert_null (items);

    errors = qn_yaml_errors_take (&ctx);
    assert_string_equal (errors,
        "f.yaml:2:6: value for 'big' is too large (at most 4294967295)\n"
        "f.yaml:3:6: expected a non-negative integer for 'neg'\n"
        "f.yaml:7:5: expected a memory size for 'memory' (megabytes, or like 512M, 4G, 1Gi)\n"
        "f.yaml:11:5: expected a duration for 'd4' (seconds, or like 90s, 30m, 2h, 1h30m)\n"
        "f.yaml:12:5: expected a duration for 'd5' (seconds, or like 90s, 30m, 2h, 1h30m)\n"
        "f.yaml:15:9: expected names");
    free (errors);
    qn_yaml_node_free (&root);

    assert_true (qn_yaml_name_valid ("train-1.v_2"));
    assert_false (qn_yaml_name_valid (""));
    assert_false (qn_yaml_name_valid ("."));
    assert_false (qn_yaml_name_valid ("a..b"));
    assert_false (qn_yaml_name_valid ("a/b"));
    char long_name [QN_YAML_NAME_MAX + 2];
    memset (long_name, 'a', sizeof (long_name) - 1);
    long_name [sizeof (long_name) - 1] = '\0';
    assert_false (qn_yaml_name_valid (long_name));
    long_name [QN_YAML_NAME_MAX] = '\0';
    assert_true (qn_yaml_name_valid (long_name));

    char *text = qn_yaml_format ("%s-%d", "x", 7);
    assert_string_equal (text, "x-7");
    free (text);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_tree),
        cmocka_unit_test (test_refused),
        cmocka_unit_test (test_duplicates),
        cmocka_unit_test (test_errors),
        cmocka_unit_test (test_suggestions),
        cmocka_unit_test (test_scalars),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
