/*  libqanat - the qanat client library: one header for all of it.

    What a client uses, and all that is installed (under include/qanat/):
    the protocol's messages and codec (qn_msg), the coordinator client
    (qn_client), the workflow parser (qn_workflow, with qn_check's check
    expressions) and the metric line format (qn_metric).  The rest of
    libqanat (blob store, S3, trees, tokens, logging) is private to
    qanat's own programs and lives next to its code in lib/.
*/
#ifndef QANAT_H_INCLUDED
#define QANAT_H_INCLUDED

#include "qanat.pb-c.h"
#include "qn_msg.h"
#include "qn_check.h"
#include "qn_workflow.h"
#include "qn_client.h"
#include "qn_metric.h"

#endif
