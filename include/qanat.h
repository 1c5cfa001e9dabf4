/*  libqanat - the qanat client library: one header for all of it. */
#ifndef QANAT_H_INCLUDED
#define QANAT_H_INCLUDED

#include "qanat.pb-c.h"
#include "qn_msg.h"
#include "qn_check.h"
#include "qn_workflow.h"
#include "qn_client.h"
#include "qn_metric.h"
#include "qn_token.h"

#endif
