/*  qn_wf_matrix - a task's `matrix:`, expanded into one task per
    combination of its values.

        train:
          matrix: {lr: [0.1, 0.01], seed: [1, 2]}
          run: python3 train.py --lr ${{ matrix.lr }}

    becomes train[lr=0.1,seed=1], train[lr=0.1,seed=2], train[lr=0.01,seed=1],
    train[lr=0.01,seed=2]: keys in file order, values in file order, the
    last key varying fastest, so that a name stays the same while the
    file's matrix does.  Each expansion carries its values (qn_task_t
    matrix, for ${{ matrix.KEY }}) and QANAT_MATRIX_<KEY> in its env; a
    `needs:` entry that names the task as written means every expansion.
    Keys are [A-Za-z_][A-Za-z0-9_]*, values 1 to 64 of [A-Za-z0-9_.+-] (a
    task name stays readable and safe), at most QN_WF_MATRIX_MAX
    combinations per task.  Private to libqanat.

    One of the files of the qn_workflow class: it implements part of
    qn_workflow.h, so the include checker counts it with qn_workflow.
*/
#ifndef QN_WF_MATRIX_H_INCLUDED
#define QN_WF_MATRIX_H_INCLUDED

#include "qn_workflow.h"
#include "qn_yaml.h"
#include "qn_wf_graph.h"

#define QN_WF_MATRIX_MAX        256
#define QN_WF_MATRIX_VALUE_MAX  64

//  A parsed matrix: keys and, per key, its value nodes
typedef struct {
    size_t key_count;
    qn_yaml_node_t **keys;
    qn_yaml_node_t ***values;
    size_t *value_counts;
    size_t combinations;        //  0 after an error
} qn_wf_matrix_t;

//  The combinations a task's mapping asks for: 1 without a matrix, 0 when
//  its matrix is invalid (reported to ctx).  Fills matrix when there is one.
size_t
    qn_wf_matrix_parse (qn_yaml_ctx_t *ctx, qn_yaml_node_t *task_key, qn_yaml_node_t *task_map,
                        qn_wf_matrix_t *matrix);

//  Gives task combination c's values (task->matrix), before it is parsed
void
    qn_wf_matrix_values (qn_yaml_ctx_t *ctx, const qn_wf_matrix_t *matrix, size_t c,
                         qn_task_t *task);

//  Once parsed: names the task NAME[k=v,...] (matrix_of the name as
//  written) and adds QANAT_MATRIX_<KEY> to its env
void
    qn_wf_matrix_finish (qn_yaml_ctx_t *ctx, qn_task_t *task);

//  Every needs entry that names a matrix task as written becomes its
//  expansions (an input from one is refused by qn_wf_graph)
void
    qn_wf_matrix_expand_needs (qn_yaml_ctx_t *ctx, qn_task_t *tasks, size_t count,
                               qn_wf_graph_task_t *extra);

void
    qn_wf_matrix_free (qn_wf_matrix_t *matrix);

#endif
