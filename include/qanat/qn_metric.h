/*  qn_metric - the metrics file format, and reporting from a task.

    A task reports a metric by appending a line "name value [step]" to the
    file named by $QANAT_METRICS; the agent follows that file and streams
    each point to the coordinator.  Tasks written in C call
    qn_metric_report; Python tasks just write the line.
*/
#ifndef QN_METRIC_H_INCLUDED
#define QN_METRIC_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Longest metric name we accept.
#define QN_METRIC_NAME_MAX  128

//  True when name (len bytes) is a valid metric name.
bool
    qn_metric_name_valid (const char *name, size_t len);

//  Parses one line (without its newline; trailing '\r' and blanks are
//  ignored).  name is [A-Za-z_][A-Za-z0-9_./-]*, value a finite double,
//  step an optional integer.  Returns 0 with name_buf (QN_METRIC_NAME_MAX+1
//  bytes) filled, or -1 with *error_p pointing to a static message.
int
    qn_metric_parse_line (const char *line, size_t len, char *name_buf, double *value_p,
                          int64_t *step_p, bool *has_step_p, const char **error_p);

//  Appends "name value" (or "name value step" when has_step) to the file
//  named by $QANAT_METRICS.  Returns 0, or -1 when the variable is unset,
//  the name is invalid or the write failed.
int
    qn_metric_report (const char *name, double value, int64_t step, bool has_step);

#ifdef __cplusplus
}
#endif
#endif
