/*  qn_kube_job - the batch/v1 Job that runs one attempt of a task on
    Kubernetes: its name and labels, its manifest built from the Assign,
    and what became of it, read from the Job and its pods.

    Pure functions of their input, with no API server and no loop, so the
    mapping from an Assign to a Job (described in qn_backend_kube.c) and
    the reading of Kubernetes' answers (hostile input) can be tested on
    their own.  qn_kube_api talks to the server.
*/
#ifndef QN_KUBE_JOB_H_INCLUDED
#define QN_KUBE_JOB_H_INCLUDED

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "qanat.pb-c.h"

#ifdef __cplusplus
extern "C" {
#endif

//  The container's name inside every Job we create
#define QN_KUBE_CONTAINER       "main"

typedef struct {
    const char *namespace_name; //  the agent's default namespace
    const char *image;          //  the agent's default image, or NULL
    const char *agent_name;     //  for the qanat.io/agent label
} qn_kube_job_defaults_t;

//  The Job's name for an attempt: qanat-<run>-<task>-<attempt>, a valid
//  DNS-1123 label (63 characters at most).  <task> is the task name
//  lowercased with other characters than [a-z0-9-] made '-'; when that
//  changed it or had to be cut, the task index follows it, so that two
//  tasks never share a name.
void
    qn_kube_job_name (const Qanat__Assign *assign, char *buffer, size_t size);

//  The label selector that finds an attempt's pods (and Jobs), escaped
//  for a query.
void
    qn_kube_selector (uint64_t run_id, uint32_t task_index, uint32_t attempt,
                      char *buffer, size_t size);

//  Builds the batch/v1 Job for an Assign (see qn_backend_kube.c for the
//  mapping) and the namespace it goes to.  The task's backend options are
//  checked here: NULL with a message in error for an unknown or invalid
//  one, or when no image is known.
json_t *
    qn_kube_job_manifest (const Qanat__Assign *assign, const qn_kube_job_defaults_t *defaults,
                          char *namespace_buf, size_t namespace_size,
                          char *error, size_t error_size);

typedef enum {
    QN_KUBE_PENDING,            //  no container has run yet
    QN_KUBE_RUNNING,            //  the container runs
    QN_KUBE_SUCCEEDED,          //  the Job completed
    QN_KUBE_FAILED,             //  the Job failed
    QN_KUBE_PULL_ERROR          //  the container waits on an error (bad image...)
} qn_kube_state_t;

typedef struct {
    qn_kube_state_t state;
    int exit_code;              //  the container's, when it terminated (else -1)
    bool timed_out;             //  failed by the Job's activeDeadlineSeconds
    bool container_started;     //  the container runs or ran: its log exists
    bool container_running;     //  it runs now
    char pod [254];             //  the pod to read the log from, "" if none
    char reason [512];          //  "OOMKilled (exit 137)", "Evicted: ...", "" on success
} qn_kube_outcome_t;

//  Reads the state of an attempt from its Job and the list of its pods
//  (a PodList, may be NULL).  Treats both as hostile: anything missing or
//  of the wrong type reads as "not known yet".
void
    qn_kube_outcome (json_t *job, json_t *pods, qn_kube_outcome_t *outcome);


//  Strips blanks and newlines at both ends of text, in place; returns
//  where it now starts.
char *
    qn_kube_trim (char *text);

//  True when text has only printable ASCII (no blanks, no control bytes):
//  what may go into a URL or a header.
bool
    qn_kube_printable (const char *text);

#ifdef __cplusplus
}
#endif

#endif
