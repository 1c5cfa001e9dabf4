/*  qn_check - a check expression over a task's metrics.

    Grammar:  [AGG '('] METRIC [')'] OP NUMBER
      METRIC  [A-Za-z_][A-Za-z0-9_./-]*
      AGG     last | min | max | mean      (default: last)
      OP      < <= > >= == !=
    Examples: "accuracy >= 0.9", "max(loss) < 2.5", "mean(latency_ms) <= 40".
    Whitespace is free.  Anything else is a parse error with the column
    (0-based offset into the expression) where it went wrong.
*/
#ifndef QN_CHECK_H_INCLUDED
#define QN_CHECK_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _qn_check_t qn_check_t;

typedef enum { QN_SEVERITY_ERROR = 0, QN_SEVERITY_WARNING = 1 } qn_severity_t;

//  Parses expr.  On failure returns NULL; when error_p is not NULL it gets
//  a malloc'd message (caller frees) and *error_offset_p (if not NULL) the
//  offset into expr where the problem starts.
qn_check_t *
    qn_check_new (const char *expr, char **error_p, size_t *error_offset_p);

void
    qn_check_destroy (qn_check_t **self_p);

//  The metric name the check reads.
const char *
    qn_check_metric (qn_check_t *self);

//  The expression as written (trimmed).
const char *
    qn_check_expr (qn_check_t *self);

//  Evaluates the check over the series of values reported for its metric,
//  in report order.  Sets *passed.  Returns a malloc'd detail for people,
//  e.g. "accuracy = 0.82 (needs >= 0.9)" or "metric accuracy was never
//  reported" (count == 0 always fails).  Never returns NULL.
char *
    qn_check_eval (qn_check_t *self, const double *values, size_t count, bool *passed);


#ifdef __cplusplus
}
#endif
#endif
