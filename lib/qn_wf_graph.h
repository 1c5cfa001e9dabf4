/*  qn_wf_graph - the dependency graph of a workflow's tasks: each `needs`
    entry resolved to a task index, each input linked to the task and
    output it comes from (and made a dependency), and cycles reported.

    Runs once the whole file is read, so the order of `params` and `tasks`
    in it does not matter.  Errors go to the parse's qn_yaml_ctx_t at the
    position of the entry at fault.  Private to libqanat.

    One of the files of the qn_workflow class: it implements part of
    qn_workflow.h, so the include checker counts it with qn_workflow.
*/
#ifndef QN_WF_GRAPH_H_INCLUDED
#define QN_WF_GRAPH_H_INCLUDED

#include "qn_workflow.h"
#include "qn_yaml.h"

//  What the graph reads and links: the workflow's tasks, their index by
//  name (qn_wf_graph_index), and its parameters (for `param:` inputs).
typedef struct {
    qn_task_t *tasks;
    size_t task_count;
    const size_t *by_name;
    const qn_param_t *params;
    size_t param_count;
} qn_wf_graph_t;

//  Per task, what the graph needs from the tree for error positions.
//  The task parser fills need_nodes; the graph adds the stand-ins.
typedef struct {
    qn_yaml_node_t **need_nodes;    //  scalar of each entry in needs (array owned)
    bool valid_name;
    qn_yaml_node_t **stand_ins;     //  positions of needs implied by inputs (owned)
    size_t stand_in_count;
} qn_wf_graph_task_t;

//  Task indexes sorted by name (malloc'd, count entries), or NULL
size_t *
    qn_wf_graph_index (const qn_task_t *tasks, size_t count);

//  Index of name among tasks, through the sorted index; -1 when absent.
int
    qn_wf_graph_lookup (const qn_task_t *tasks, const size_t *by_name, size_t count,
                        const char *name);

//  Links inputs to their producers (adding the implied needs), resolves
//  needs into need_index (SIZE_MAX marks an edge that failed), and reports
//  one cycle per strongly connected component.  extra has task_count
//  entries.
void
    qn_wf_graph_link (qn_yaml_ctx_t *ctx, qn_wf_graph_t *self, qn_wf_graph_task_t *extra);

//  Frees what count entries of extra hold, and the array
void
    qn_wf_graph_tasks_free (qn_wf_graph_task_t *extra, size_t count);

#endif
