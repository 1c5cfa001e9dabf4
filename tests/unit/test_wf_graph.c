/*  test_wf_graph - the task graph on its own: lookups by name, needs
    resolved (unknown, self, repeated), inputs linked to outputs with the
    implied needs added, and one shortest cycle reported per component. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qn_wf_graph.h"

#define S_TASKS_MAX 8

//  Tasks built by hand, as the task parser leaves them
typedef struct {
    qn_task_t tasks [S_TASKS_MAX];
    qn_wf_graph_task_t *extra;
    qn_yaml_node_t nodes [S_TASKS_MAX][8];       //  needs per task, at most
    size_t count;
    size_t *by_name;
} s_graph_t;

//  Adds task name on line (line), needing the names in needs (NULL-ended)
static void
s_task (s_graph_t *self, const char *name, const char **needs)
{
    size_t t = self->count++;
    qn_task_t *task = &self->tasks [t];
    task->name = strdup (name);
    task->line = t + 1;
    task->col = 3;
    size_t count = 0;
    while (needs && needs [count])
        count++;
    task->needs = (char **) calloc (count + 1, sizeof (char *));
    task->need_index = (size_t *) calloc (count + 1, sizeof (size_t));
    self->extra [t].need_nodes = (qn_yaml_node_t **) calloc (count + 1,
                                                             sizeof (qn_yaml_node_t *));
    for (size_t i = 0; i < count; i++) {
        task->needs [i] = strdup (needs [i]);
        self->nodes [t][i].line = t + 1;
        self->nodes [t][i].col = 10 + 4 * i;
        self->extra [t].need_nodes [i] = &self->nodes [t][i];
    }
    task->needs_count = count;
}

//  Links the graph; returns the errors (malloc'd) or NULL
static char *
s_link (s_graph_t *self)
{
    self->by_name = qn_wf_graph_index (self->tasks, self->count);
    assert_non_null (self->by_name);
    qn_wf_graph_t graph = { self->tasks, self->count, self->by_name, NULL, 0 };
    qn_yaml_ctx_t ctx = { .filename = "f.yaml" };
    qn_wf_graph_link (&ctx, &graph, self->extra);
    char *errors = ctx.count || ctx.oom? qn_yaml_errors_take (&ctx): NULL;
    free (ctx.errors);
    return errors;
}

static void
s_new (s_graph_t *self)
{
    memset (self, 0, sizeof (s_graph_t));
    self->extra = (qn_wf_graph_task_t *) calloc (S_TASKS_MAX, sizeof (qn_wf_graph_task_t));
}

static void
s_free (s_graph_t *self)
{
    for (size_t t = 0; t < self->count; t++) {
        qn_task_t *task = &self->tasks [t];
        free (task->name);
        for (size_t i = 0; i < task->needs_count; i++)
            free (task->needs [i]);
        free (task->needs);
        free (task->need_index);
        for (size_t i = 0; i < task->output_count; i++)
            free (task->outputs [i].name);
        free (task->outputs);
        for (size_t i = 0; i < task->input_count; i++) {
            free (task->inputs [i].name);
            free (task->inputs [i].task);
            free (task->inputs [i].output);
        }
        free (task->inputs);
    }
    qn_wf_graph_tasks_free (self->extra, S_TASKS_MAX);
    free (self->by_name);
}

static void
test_lookup_and_needs (void **state)
{
    (void) state;
    s_graph_t graph;
    s_new (&graph);
    s_task (&graph, "train", (const char *[]) { "prep", NULL });
    s_task (&graph, "prep", NULL);
    s_task (&graph, "eval", (const char *[]) { "trian", "eval", "prep", "prep", "zzz", NULL });
    char *errors = s_link (&graph);
    assert_string_equal (errors,
        "f.yaml:3:10: task 'eval' needs unknown task 'trian' (did you mean 'train'?)\n"
        "f.yaml:3:14: task 'eval' needs itself\n"
        "f.yaml:3:22: task 'eval' needs 'prep' more than once\n"
        "f.yaml:3:26: task 'eval' needs unknown task 'zzz'");
    free (errors);
    assert_int_equal (graph.tasks [0].need_index [0], 1);
    assert_int_equal (graph.tasks [2].need_index [0], SIZE_MAX);
    assert_int_equal (graph.tasks [2].need_index [2], 1);
    assert_int_equal (qn_wf_graph_lookup (graph.tasks, graph.by_name, 3, "eval"), 2);
    assert_int_equal (qn_wf_graph_lookup (graph.tasks, graph.by_name, 3, "prep"), 1);
    assert_int_equal (qn_wf_graph_lookup (graph.tasks, graph.by_name, 3, "nope"), -1);
    s_free (&graph);
}

static void
test_cycles (void **state)
{
    (void) state;
    s_graph_t graph;
    s_new (&graph);
    //  a -> b -> c -> a, and a shorter way back through d: a -> d -> a
    s_task (&graph, "a", (const char *[]) { "b", "d", NULL });
    s_task (&graph, "b", (const char *[]) { "c", NULL });
    s_task (&graph, "c", (const char *[]) { "a", NULL });
    s_task (&graph, "d", (const char *[]) { "a", NULL });
    //  a component of its own
    s_task (&graph, "x", (const char *[]) { "y", NULL });
    s_task (&graph, "y", (const char *[]) { "x", NULL });
    s_task (&graph, "free", (const char *[]) { "a", NULL });
    char *errors = s_link (&graph);
    assert_string_equal (errors,
        "f.yaml:1:3: dependency cycle: a -> d -> a\n"
        "f.yaml:5:3: dependency cycle: x -> y -> x");
    free (errors);
    s_free (&graph);
}

static void
test_inputs (void **state)
{
    (void) state;
    s_graph_t graph;
    s_new (&graph);
    s_task (&graph, "make", NULL);
    s_task (&graph, "use", NULL);
    qn_task_t *make = &graph.tasks [0], *use = &graph.tasks [1];
    make->outputs = (qn_output_t *) calloc (1, sizeof (qn_output_t));
    make->outputs [0].name = strdup ("model");
    make->output_count = 1;
    use->inputs = (qn_input_t *) calloc (2, sizeof (qn_input_t));
    use->input_count = 2;
    qn_input_t *good = &use->inputs [0], *bad = &use->inputs [1];
    good->name = strdup ("m");
    good->task = strdup ("make");
    good->output = strdup ("model");
    good->line = 7;
    good->col = 12;
    bad->name = strdup ("w");
    bad->task = strdup ("make");
    bad->output = strdup ("weights");
    bad->line = 8;
    bad->col = 12;
    char *errors = s_link (&graph);
    assert_string_equal (errors,
        "f.yaml:8:12: task 'make' has no output 'weights' (for input 'w' of task 'use')");
    free (errors);
    //  The input made 'use' need 'make'
    assert_int_equal (good->task_index, 0);
    assert_int_equal (use->needs_count, 1);
    assert_string_equal (use->needs [0], "make");
    assert_int_equal (use->need_index [0], 0);
    assert_int_equal (graph.extra [1].stand_in_count, 1);
    assert_int_equal (graph.extra [1].need_nodes [0]->line, 7);
    s_free (&graph);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_lookup_and_needs),
        cmocka_unit_test (test_cycles),
        cmocka_unit_test (test_inputs),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
