/*  qn_wf_graph - the dependency graph of a workflow's tasks.  See
    qn_wf_graph.h.

    One of the files of the qn_workflow class: it implements part of
    qn_workflow.h, so the include checker counts it with qn_workflow.
*/
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qn_wf_graph.h"

//  A task in messages: a matrix expansion as written, so that its
//  expansions say the same words once (qn_yaml drops repeats)
#define S_SHOWN(task)   ((task)->matrix_of? (task)->matrix_of: (task)->name)

#define S_MAX_SUGGEST   50      //  bounds the edit-distance work on hostile input
#define S_CYCLE_SHOWN   12      //  longer cycles are elided in the middle


//  ---------------------------------------------------------------------
//  Tasks by name

static int
s_by_name_compare (const void *a, const void *b, void *arg)
{
    const qn_task_t *tasks = (const qn_task_t *) arg;
    size_t x = *(const size_t *) a, y = *(const size_t *) b;
    int rc = strcmp (tasks [x].name, tasks [y].name);
    return rc? rc: (x < y? -1: (x > y));
}

size_t *
qn_wf_graph_index (const qn_task_t *tasks, size_t count)
{
    size_t *by_name = (size_t *) malloc ((count? count: 1) * sizeof (size_t));
    if (by_name) {
        for (size_t i = 0; i < count; i++)
            by_name [i] = i;
        //  qsort_r, not a static: several threads may parse at once
        qsort_r (by_name, count, sizeof (size_t), s_by_name_compare, (void *) tasks);
    }
    return by_name;
}

int
qn_wf_graph_lookup (const qn_task_t *tasks, const size_t *by_name, size_t count, const char *name)
{
    size_t low = 0, high = count;
    while (low < high) {
        size_t mid = low + (high - low) / 2;
        int rc = strcmp (tasks [by_name [mid]].name, name);
        if (rc == 0)
            return (int) by_name [mid];
        if (rc < 0)
            low = mid + 1;
        else
            high = mid;
    }
    return -1;
}


//  ---------------------------------------------------------------------
//  Inputs

//  A param input names an artifact parameter of the workflow.  Runs after
//  the whole file is read, so the order of 'params' and 'tasks' in it
//  does not matter.  No dependency: the blob exists before the run starts.
static void
s_resolve_param_input (qn_yaml_ctx_t *ctx, qn_wf_graph_t *self, const qn_input_t *input)
{
    qn_yaml_echo_t echo, echo2;
    const qn_param_t *param = NULL;
    for (size_t p = 0; p < self->param_count && !param; p++)
        if (self->params [p].name && strcmp (self->params [p].name, input->param) == 0)
            param = &self->params [p];
    if (!param)
        qn_yaml_error (ctx, input->line, input->col, "input '%s': no parameter '%s'",
                       qn_yaml_echo (input->name, echo), qn_yaml_echo (input->param, echo2));
    else
    if (param->type != QN_PARAM_ARTIFACT)
        qn_yaml_error (ctx, input->line, input->col, "input '%s': parameter '%s' is %s %s, "
                       "not an artifact", qn_yaml_echo (input->name, echo), param->name,
                       param->type == QN_PARAM_INT? "an": "a", qn_param_type_name (param->type));
}

//  Inputs name their producers: each must exist and declare the output,
//  and becomes a dependency (added to needs when not there already).
static void
s_resolve_inputs (qn_yaml_ctx_t *ctx, qn_wf_graph_t *self, qn_wf_graph_task_t *extra)
{
    qn_yaml_echo_t echo, echo2;
    for (size_t t = 0; t < self->task_count; t++) {
        qn_task_t *task = &self->tasks [t];
        for (size_t i = 0; i < task->input_count; i++) {
            qn_input_t *input = &task->inputs [i];
            if (input->param) {
                s_resolve_param_input (ctx, self, input);
                continue;
            }
            if (!input->task || !input->output)
                continue;
            int index = qn_wf_graph_lookup (self->tasks, self->by_name, self->task_count,
                                            input->task);
            bool matrix = false;
            for (size_t m = 0; index < 0 && m < self->task_count && !matrix; m++)
                matrix = self->tasks [m].matrix_of
                      && strcmp (self->tasks [m].matrix_of, input->task) == 0;
            if (index < 0 || (size_t) index == t) {
                qn_yaml_error (ctx, input->line, input->col, "input '%s' of task '%s' comes "
                               "from %s task '%s'%s", qn_yaml_echo (input->name, echo),
                               S_SHOWN (task), index >= 0? "its own": matrix? "the matrix"
                               : "unknown", qn_yaml_echo (input->task, echo2),
                               matrix? ": inputs from a matrix are not supported": "");
                continue;
            }
            const qn_task_t *producer = &self->tasks [index];
            if (qn_task_output_index (producer, input->output) < 0) {
                qn_yaml_error (ctx, input->line, input->col, "task '%s' has no output '%s' "
                               "(for input '%s' of task '%s')", producer->name,
                               qn_yaml_echo (input->output, echo),
                               qn_yaml_echo (input->name, echo2), S_SHOWN (task));
                continue;
            }
            input->task_index = (size_t) index;
            bool listed = false;
            for (size_t n = 0; n < task->needs_count && !listed; n++)
                listed = task->needs [n] && strcmp (task->needs [n], input->task) == 0;
            if (listed)
                continue;
            //  The implicit dependency, with the input's position for errors
            char **needs = (char **) realloc (task->needs,
                                              (task->needs_count + 1) * sizeof (char *));
            size_t *index_p = (size_t *) realloc (task->need_index,
                                                 (task->needs_count + 1) * sizeof (size_t));
            qn_yaml_node_t **nodes = (qn_yaml_node_t **)
                realloc (extra [t].need_nodes, (task->needs_count + 1) * sizeof (qn_yaml_node_t *));
            if (needs)
                task->needs = needs;
            if (index_p)
                task->need_index = index_p;
            if (nodes)
                extra [t].need_nodes = nodes;
            if (!needs || !index_p || !nodes) {
                ctx->oom = true;
                return;
            }
            //  A stand-in node that carries the input's position
            qn_yaml_node_t **stand_ins = (qn_yaml_node_t **) realloc (extra [t].stand_ins,
                                   (extra [t].stand_in_count + 1) * sizeof (qn_yaml_node_t *));
            qn_yaml_node_t *stand_in = (qn_yaml_node_t *) calloc (1, sizeof (qn_yaml_node_t));
            if (stand_ins)
                extra [t].stand_ins = stand_ins;
            if (!stand_ins || !stand_in) {
                free (stand_in);
                ctx->oom = true;
                return;
            }
            stand_in->line = input->line;
            stand_in->col = input->col;
            stand_ins [extra [t].stand_in_count++] = stand_in;
            nodes [task->needs_count] = stand_in;
            needs [task->needs_count] = qn_yaml_strdup (ctx, input->task);
            task->needs_count++;
        }
    }
}



//  ---------------------------------------------------------------------
//  Needs

//  Resolves needs into need_index; SIZE_MAX marks an edge that failed.
static void
s_resolve_needs (qn_yaml_ctx_t *ctx, qn_wf_graph_t *self, qn_wf_graph_task_t *extra)
{
    qn_yaml_echo_t echo, echo2;
    size_t n = self->task_count;
    const char **names = (const char **) calloc (n? n: 1, sizeof (char *));
    size_t *seen = (size_t *) malloc ((n? n: 1) * sizeof (size_t));
    if (!names || !seen) {
        free (names);
        free (seen);
        ctx->oom = true;
        return;
    }
    for (size_t i = 0; i < n; i++)
        seen [i] = SIZE_MAX;
    for (size_t i = 0; i < n; i++)
        names [i] = self->tasks [i].name;
    size_t suggestions = 0;

    for (size_t t = 0; t < n; t++) {
        qn_task_t *task = &self->tasks [t];
        for (size_t i = 0; i < task->needs_count; i++) {
            qn_yaml_node_t *where = extra [t].need_nodes [i];
            const char *need = task->needs [i];
            task->need_index [i] = SIZE_MAX;
            if (!need)
                continue;
            int index = qn_wf_graph_lookup (self->tasks, self->by_name, n, need);
            if (index < 0) {
                const char *close = NULL;
                if (suggestions++ < S_MAX_SUGGEST)
                    close = qn_yaml_closest (need, names, n);
                if (close)
                    qn_yaml_node_error (ctx, where, "task '%s' needs unknown task '%s' "
                                        "(did you mean '%s'?)",
                                        qn_yaml_echo (S_SHOWN (task), echo),
                                        qn_yaml_echo (need, echo2), close);
                else
                    qn_yaml_node_error (ctx, where, "task '%s' needs unknown task '%s'",
                                        qn_yaml_echo (S_SHOWN (task), echo),
                                        qn_yaml_echo (need, echo2));
                continue;
            }
            if ((size_t) index == t) {
                qn_yaml_node_error (ctx, where, "task '%s' needs itself",
                                    qn_yaml_echo (S_SHOWN (task), echo));
                continue;
            }
            //  seen [index] remembers the last task that needed index, so
            //  a hostile list of a million repeats stays linear
            if (seen [index] == t) {
                qn_yaml_node_error (ctx, where, "task '%s' needs '%s' more than once",
                                    qn_yaml_echo (S_SHOWN (task), echo),
                                    qn_yaml_echo (need, echo2));
                continue;
            }
            seen [index] = t;
            task->need_index [i] = (size_t) index;
        }
    }
    free (names);
    free (seen);
}


//  ---------------------------------------------------------------------
//  Cycles

//  Reports one cycle per strongly connected component (Tarjan, iterative so
//  a 10,000-task chain cannot blow the C stack).  The cycle starts at the
//  component's first task in file order, follows needs, and is found by a
//  breadth-first search, so it is a shortest one through that task.
//  s_find_cycles holds the scratch arrays; s_components labels the
//  components, s_report_cycle finds and reports one cycle.

//  Scratch space: n entries each (path n + 1)
typedef struct {
    size_t *index, *low;            //  Tarjan's numbering
    size_t *comp, *comp_size;       //  each task's component, each component's size
    bool *on_stack, *reported;
    size_t *stack, *frame_v, *frame_e;
    size_t *parent, *queue, *path;  //  the breadth-first search
} s_scratch_t;

//  Labels every task with its strongly connected component (s->comp)
static void
s_components (qn_wf_graph_t *self, s_scratch_t *s)
{
    size_t n = self->task_count;
    size_t *index = s->index, *low = s->low, *comp = s->comp, *comp_size = s->comp_size;
    size_t *stack = s->stack, *frame_v = s->frame_v, *frame_e = s->frame_e;
    bool *on_stack = s->on_stack;
    size_t counter = 0, comps = 0, sp = 0;
    for (size_t root = 0; root < n; root++) {
        if (index [root] != SIZE_MAX)
            continue;
        size_t fp = 0;
        index [root] = low [root] = counter++;
        stack [sp++] = root;
        on_stack [root] = true;
        frame_v [fp] = root;
        frame_e [fp++] = 0;
        while (fp > 0) {
            size_t v = frame_v [fp - 1];
            qn_task_t *task = &self->tasks [v];
            if (frame_e [fp - 1] < task->needs_count) {
                size_t w = task->need_index [frame_e [fp - 1]++];
                if (w == SIZE_MAX)
                    continue;
                if (index [w] == SIZE_MAX) {
                    index [w] = low [w] = counter++;
                    stack [sp++] = w;
                    on_stack [w] = true;
                    frame_v [fp] = w;
                    frame_e [fp++] = 0;
                }
                else
                if (on_stack [w] && index [w] < low [v])
                    low [v] = index [w];
                continue;
            }
            if (low [v] == index [v]) {
                size_t w;
                do {
                    w = stack [--sp];
                    on_stack [w] = false;
                    comp [w] = comps;
                    comp_size [comps]++;
                } while (w != v);
                comps++;
            }
            fp--;
            if (fp > 0) {
                size_t u = frame_v [fp - 1];
                if (low [v] < low [u])
                    low [u] = low [v];
            }
        }
    }
}

//  Reports the cycle through start, the first task of its component in
//  file order.  -1 when out of memory.
static int
s_report_cycle (qn_yaml_ctx_t *ctx, qn_wf_graph_t *self, s_scratch_t *s, size_t start)
{
    size_t *comp = s->comp, *parent = s->parent, *queue = s->queue, *path = s->path;
    size_t c = comp [start];
    //  Breadth-first from start, within its component, back to start
    size_t head = 0, tail = 0, last = SIZE_MAX;
    queue [tail++] = start;
    parent [start] = start;
    while (head < tail && last == SIZE_MAX) {
        size_t v = queue [head++];
        qn_task_t *task = &self->tasks [v];
        for (size_t i = 0; i < task->needs_count; i++) {
            size_t w = task->need_index [i];
            if (w == SIZE_MAX || comp [w] != c)
                continue;
            if (w == start) {
                last = v;
                break;
            }
            if (parent [w] == SIZE_MAX) {
                parent [w] = v;
                queue [tail++] = w;
            }
        }
    }
    size_t length = 0;
    if (last != SIZE_MAX) {
        for (size_t v = last; v != start; v = parent [v])
            path [length++] = v;
        path [length++] = start;
    }
    for (size_t i = 0; i < tail; i++)
        parent [queue [i]] = SIZE_MAX;
    if (length == 0)
        return 0;                   //  cannot happen in a real component

    //  path holds the cycle backwards; print it forwards, eliding a
    //  long middle so a hostile file cannot make the message huge
    char *text = NULL;
    size_t size = 0;
    FILE *stream = open_memstream (&text, &size);
    if (!stream) {
        ctx->oom = true;
        return -1;
    }
    qn_yaml_echo_t echo;
    for (size_t k = 0; k < length; k++) {
        size_t v = path [length - 1 - k];
        if (length > S_CYCLE_SHOWN && k == S_CYCLE_SHOWN - 2) {
            fprintf (stream, " -> ... (%zu more)", length - S_CYCLE_SHOWN + 1);
            k = length - 2;
            continue;
        }
        fprintf (stream, "%s%s", k? " -> ": "", qn_yaml_echo (self->tasks [v].name, echo));
    }
    fprintf (stream, " -> %s", qn_yaml_echo (self->tasks [start].name, echo));
    if (fclose (stream) == 0 && text)
        qn_yaml_error (ctx, self->tasks [start].line, self->tasks [start].col,
                       "dependency cycle: %s", text);
    else
        ctx->oom = true;
    free (text);
    return 0;
}

static void
s_find_cycles (qn_yaml_ctx_t *ctx, qn_wf_graph_t *self)
{
    size_t n = self->task_count;
    if (n == 0)
        return;
    s_scratch_t s = {
        .index = (size_t *) malloc (n * sizeof (size_t)),
        .low = (size_t *) malloc (n * sizeof (size_t)),
        .comp = (size_t *) malloc (n * sizeof (size_t)),
        .comp_size = (size_t *) calloc (n, sizeof (size_t)),
        .reported = (bool *) calloc (n, sizeof (bool)),
        .on_stack = (bool *) calloc (n, sizeof (bool)),
        .stack = (size_t *) malloc (n * sizeof (size_t)),
        .frame_v = (size_t *) malloc (n * sizeof (size_t)),
        .frame_e = (size_t *) malloc (n * sizeof (size_t)),
        .parent = (size_t *) malloc (n * sizeof (size_t)),
        .queue = (size_t *) malloc (n * sizeof (size_t)),
        .path = (size_t *) malloc ((n + 1) * sizeof (size_t))
    };
    if (!s.index || !s.low || !s.comp || !s.comp_size || !s.reported || !s.on_stack
    ||  !s.stack || !s.frame_v || !s.frame_e || !s.parent || !s.queue || !s.path) {
        ctx->oom = true;
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        s.index [i] = SIZE_MAX;
        s.comp [i] = SIZE_MAX;
        s.parent [i] = SIZE_MAX;
    }
    s_components (self, &s);
    for (size_t start = 0; start < n; start++) {
        size_t c = s.comp [start];
        if (s.comp_size [c] < 2 || s.reported [c])
            continue;
        s.reported [c] = true;
        if (s_report_cycle (ctx, self, &s, start))
            break;
    }
done:
    free (s.index);
    free (s.low);
    free (s.comp);
    free (s.comp_size);
    free (s.reported);
    free (s.on_stack);
    free (s.stack);
    free (s.frame_v);
    free (s.frame_e);
    free (s.parent);
    free (s.queue);
    free (s.path);
}


//  ---------------------------------------------------------------------
//  The pass

void
qn_wf_graph_link (qn_yaml_ctx_t *ctx, qn_wf_graph_t *self, qn_wf_graph_task_t *extra)
{
    assert (self);
    s_resolve_inputs (ctx, self, extra);
    s_resolve_needs (ctx, self, extra);
    s_find_cycles (ctx, self);
}

void
qn_wf_graph_tasks_free (qn_wf_graph_task_t *extra, size_t count)
{
    for (size_t i = 0; extra && i < count; i++) {
        free (extra [i].need_nodes);
        for (size_t j = 0; j < extra [i].stand_in_count; j++)
            free (extra [i].stand_ins [j]);
        free (extra [i].stand_ins);
    }
    free (extra);
}
