/*  qn_api_views - what client replies show beyond the stored records:
    the parameter types of runs stored before types were recorded, and
    the counters GetStats computes when asked (commit latency histogram,
    attempts ended by reason, queue depths, agents by state).

    One of the files of the qn_coordinator class: it shares the engine's
    records (qn_engine.h), so the include checker counts it with
    qn_coordinator.
*/
#ifndef QN_API_VIEWS_H_INCLUDED
#define QN_API_VIEWS_H_INCLUDED

#include "qn_engine.h"

//  Fills in the param types that runs read from the store lack, from the
//  workflow version each run was started from (parsed once per version
//  per call).  A version that cannot be read leaves its runs' types
//  empty.
void
    qn_api_views_param_types (qn_coordinator_t *self, Qanat__RunInfo **runs, size_t count);

//  Sets *stats to the engine's counters with the repeated fields filled
//  now.  *stats borrows the engine's strings and scalars and owns its
//  repeated fields: release them with qn_api_views_stats_free.
void
    qn_api_views_stats (qn_coordinator_t *self, Qanat__Stats *stats);

void
    qn_api_views_stats_free (Qanat__Stats *stats);

#endif
