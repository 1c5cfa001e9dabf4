/*  qn_stager - moves an attempt's artifacts in and out of the agent.

    Before an attempt starts, its inputs (Assign.inputs) are fetched into
    the agent's blob cache (qn_transfer, resumable, verified) and staged,
    read-only, into a stage directory of their own; the backend moves the
    stage directory's entries into the fresh working directory before the
    command starts ($QANAT_STAGE_DIR).  Each input is also named by an
    environment variable: QANAT_INPUT_<NAME> is its path relative to the
    working directory, or the value itself for a value input.

    After a successful exit, its outputs (Assign.outputs) are collected
    from the working directory: files and directories are scanned and
    hashed on a worker thread (a 200 MB model must not stop the agent's
    heartbeats), checked against escapes (qn_tree), and uploaded; values
    are read from the attempt's values file ($QANAT_VALUES, lines
    NAME=VALUE, the last one of a name wins).  The records then go into
    the attempt's Finished.

    Everything runs on the agent's loop; callbacks come from it.
*/
#ifndef QN_STAGER_H_INCLUDED
#define QN_STAGER_H_INCLUDED

#include <czmq.h>
#include "qn_backend.h"
#include "qn_blobstore.h"
#include "qn_transfer.h"

#ifdef __cplusplus
extern "C" {
#endif

//  Largest value a task may return inline
#define QN_STAGER_VALUE_MAX  65536

typedef struct _qn_stager_t qn_stager_t;

//  Inputs staged (status 0) or not (-1, error says why).  env holds the
//  variables to add to the attempt's environment (Labels owned by the
//  stager until the callback returns).
typedef void (qn_stager_ready_fn) (void *arg, const qn_attempt_key_t *key, int status,
                                   const char *error, Qanat__Label **env, size_t env_count);

//  Outputs collected and stored (status 0, records owned by the stager
//  until the callback returns) or not (-1, error names the output).
typedef void (qn_stager_collected_fn) (void *arg, const qn_attempt_key_t *key, int status,
                                       const char *error, Qanat__OutputRecord **outputs,
                                       size_t count);

//  data_dir: the agent's; stage directories go under <data_dir>/stage and
//  values files under <data_dir>/values.  NULL on failure.
qn_stager_t *
    qn_stager_new (zloop_t *loop, qn_transfer_t *transfer, qn_blobstore_t *cache,
                   const char *data_dir);

void
    qn_stager_destroy (qn_stager_t **self_p);

//  The attempt's stage directory and values file paths (for its env).
//  stage_root: where its backend wants inputs staged (on the filesystem
//  of its work directories, so that they move there by a rename), or
//  NULL for <data_dir>/stage.
void
    qn_stager_paths (qn_stager_t *self, const qn_attempt_key_t *key, const char *stage_root,
                     char *stage, size_t stage_size, char *values, size_t values_size);

//  Fetches the inputs, then stages them into the stage directory under
//  stage_root (as for qn_stager_paths) on a worker thread, since a copy
//  to another filesystem may take long; ready follows on the loop
//  (perhaps at once).  Returns 0, or -1 when it cannot begin (ready not
//  called).
int
    qn_stager_inputs (qn_stager_t *self, const qn_attempt_key_t *key, const Qanat__Assign *assign,
                      const char *stage_root, qn_stager_ready_fn *ready, void *arg);

//  Collects and uploads the outputs from workdir; collected follows.
int
    qn_stager_outputs (qn_stager_t *self, const qn_attempt_key_t *key, const Qanat__Assign *assign,
                       const char *workdir, qn_stager_collected_fn *collected, void *arg);

//  Forgets an attempt's work in progress (no callback) and removes its
//  stage directory (under stage_root, as for qn_stager_paths) and values
//  file.
void
    qn_stager_forget (qn_stager_t *self, const qn_attempt_key_t *key, const char *stage_root);

//  Damaged blobs found in the cache and removed (to be fetched again)
//  since the stager started: a staging checks each cached blob's file
//  against what it was when its bytes were last hashed, and hashes it
//  again if it changed.
uint64_t
    qn_stager_damaged (qn_stager_t *self);

//  Attempts with staging or collection under way.
size_t
    qn_stager_busy (qn_stager_t *self);

#ifdef __cplusplus
}
#endif
#endif
