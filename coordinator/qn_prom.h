/*  qn_prom - a page of metrics in the Prometheus text format 0.0.4, for
    GET /metrics.

    Samples are added in any order and grouped by family when the text is
    made: each family is one "# HELP" and one "# TYPE" line followed by
    all its samples, as the format wants, however many label sets it has.
    A family keeps the type and help of its first sample; a sample whose
    name is not a valid metric name, or whose type differs from its
    family's, is dropped.  Label values are escaped (\\, \", \n) by
    qn_prom_label_text; HELP text likewise (\\, \n).

    qn_prom_add_stats reads a qanat.Stats generically: each singular uint64
    field is a counter qanat_<field>_total, so a new counter needs no code
    here.  A few fields are known by name when the message has them:
    attempts_ended (qanat_attempts_ended_total{reason}), queue_depth
    (qanat_queue_depth{selector}), agents_by_state (qanat_agents{state}),
    commit_latency_bucket with commit_latency_sum_ms (the histogram
    qanat_commit_latency_seconds).  Other repeated fields are skipped.
*/
#ifndef QN_PROM_H_INCLUDED
#define QN_PROM_H_INCLUDED

#include <stddef.h>
#include <stdint.h>
#include <protobuf-c/protobuf-c.h>

typedef struct _qn_prom_t qn_prom_t;

//  The bounds, in seconds, of qanat_commit_latency_seconds; Stats'
//  commit_latency_bucket holds one cumulative count per bound and +Inf
#define QN_PROM_COMMIT_BOUNDS 9
extern const double qn_prom_commit_bounds [QN_PROM_COMMIT_BOUNDS];

//  An empty page, or NULL when out of memory
qn_prom_t *
    qn_prom_new (void);

void
    qn_prom_destroy (qn_prom_t **self_p);

//  A sample of the counter family name.  label_text is the inside of the
//  braces, e.g. reason="exit" (see qn_prom_label_text), or NULL.
void
    qn_prom_counter (qn_prom_t *self, const char *name, const char *help,
                     const char *label_text, double value);

//  The same for a gauge
void
    qn_prom_gauge (qn_prom_t *self, const char *name, const char *help,
                   const char *label_text, double value);

//  A histogram: cumulative [i] observations were at most bounds [i], for
//  n bounds in increasing order (a last bound of +Inf is allowed; a +Inf
//  bucket holding count is added when it is missing).  A cumulative count
//  lower than the one before is raised to it, so that the buckets stay
//  monotonic even from a bad source.
void
    qn_prom_histogram (qn_prom_t *self, const char *name, const char *help,
                       const double *bounds, const uint64_t *cumulative, size_t n,
                       double sum, uint64_t count);

//  Every metric of a qanat.Stats (or a message shaped like it)
void
    qn_prom_add_stats (qn_prom_t *self, const ProtobufCMessage *stats);

//  name="value" with the value escaped, malloc'd (the caller frees), or
//  NULL when out of memory or name is not a valid label name
char *
    qn_prom_label_text (const char *name, const char *value);

//  The page (malloc'd, the caller frees), or NULL when out of memory at
//  any point since qn_prom_new
char *
    qn_prom_text (qn_prom_t *self);

#endif
