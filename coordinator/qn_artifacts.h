/*  qn_artifacts - what the coordinator knows about tasks' outputs.

    The blob bytes live in a qn_blobstore under <data-dir>/blobs (or in an
    S3 bucket the agents write to directly); this class keeps the records
    that make them usable and bounded:

    - inputs: for an assignment, each declared input becomes an InputSpec
      from the producing task's recorded output (hash, size, kind, value,
      location), and the hashes the agent may then fetch are collected
      (a directory's manifest and every file it lists);
    - outputs: when an attempt succeeds, every declared output must be in
      its Finished, of the declared kind, and (for the coordinator's
      store) stored and verified here; the records are copied into the
      attempt and each blob gains a reference in the store's index;
    - cache: a task's identity (its command after parameters, environment
      as written, backend and options, outputs declared, and the hashes
      of its inputs) keys the successful attempt whose outputs a later
      identical task reuses;
    - retention: a deleted run gives back its references, and blobs
      nobody references any more are removed.
*/
#ifndef QN_ARTIFACTS_H_INCLUDED
#define QN_ARTIFACTS_H_INCLUDED

#include <czmq.h>
#include "qn_blobstore.h"
#include "qn_store.h"
#include "qn_workflow.h"
#include "qanat.pb-c.h"

#ifdef __cplusplus
extern "C" {
#endif

#define QN_ARTIFACTS_KEY_HEX  64
//  Values bigger than this are refused (they belong in a file output)
#define QN_ARTIFACTS_VALUE_MAX  65536

typedef struct _qn_artifacts_t qn_artifacts_t;

//  Opens (creating) the blob directory.  The store is not owned.  NULL
//  with *error_p on failure.
qn_artifacts_t *
    qn_artifacts_new (qn_store_t *store, const char *blob_dir, char **error_p);

void
    qn_artifacts_destroy (qn_artifacts_t **self_p);

qn_blobstore_t *
    qn_artifacts_blobs (qn_artifacts_t *self);

//  The InputSpecs of task index of run (every producer has succeeded).
//  Adds the hashes the agent may fetch to allowed (a set; values (void *) 1).
//  -1 with *error_p (malloc'd) when a producer's output is not recorded.
int
    qn_artifacts_inputs (qn_artifacts_t *self, const qn_task_t *spec,
                         const Qanat__RunInfo *run, zhashx_t *allowed,
                         Qanat__InputSpec ***inputs_p, size_t *count_p, char **error_p);

void
    qn_artifacts_free_inputs (Qanat__InputSpec **inputs, size_t count);

//  Checks a successful attempt's outputs against the task's declaration
//  and records them in attempt (references taken; the store must be in a
//  transaction).  NULL when all is well, else the malloc'd reason the
//  attempt fails.
char *
    qn_artifacts_record (qn_artifacts_t *self, const qn_task_t *spec,
                         Qanat__AttemptInfo *attempt, const Qanat__Finished *finished);

//  The task's cache key (hex), from its expanded argv and inputs.
int
    qn_artifacts_cache_key (qn_artifacts_t *self, const char *workflow, const qn_task_t *spec,
                            char *const *argv, Qanat__InputSpec **inputs, size_t input_count,
                            char key [QN_ARTIFACTS_KEY_HEX + 1]);

//  The attempt a cache key points at, if its run, task and blobs are all
//  still there: 1 with *run_id_p and *attempt_p (a copy to free with
//  qanat__attempt_info__free_unpacked), 0 when there is no usable entry.
int
    qn_artifacts_cache_lookup (qn_artifacts_t *self, const char *key, uint64_t *run_id_p,
                               Qanat__AttemptInfo **attempt_p);

//  Remembers a successful attempt under key (store in a transaction).
int
    qn_artifacts_cache_put (qn_artifacts_t *self, const char *key, uint64_t run_id,
                            uint32_t task, uint32_t attempt);

//  Takes a reference on every blob of outputs (a cached task reusing
//  them).  Store in a transaction.
int
    qn_artifacts_ref_outputs (qn_artifacts_t *self, Qanat__OutputRecord **outputs,
                              size_t count, int delta);

//  Gives back the references of a run about to be deleted.
int
    qn_artifacts_release_tasks (qn_artifacts_t *self, Qanat__TaskInfo **tasks, size_t count);

//  Removes blobs nobody references, except those in keep (uploads whose
//  attempt has not finished yet).  Store in a transaction.  Returns the
//  bytes freed.
uint64_t
    qn_artifacts_collect (qn_artifacts_t *self, zhashx_t *keep);

//  The name of the run's code among its artifacts (no parameter can have
//  it), and of the input that stages it at "." in every task that has code
#define QN_ARTIFACTS_CODE ".code"


//  The record of the blob an artifact parameter names (value
//  "file:<sha256>" or "dir:<sha256>", fed in with qanat put), if it is
//  whole in the blob store; NULL with *error_p (malloc'd) otherwise.  Free
//  with protobuf_c_message_free_unpacked.
Qanat__OutputRecord *
    qn_artifacts_param_blob (qn_artifacts_t *self, const char *name, const char *value,
                             char **error_p);

//  S3 objects to delete from their buckets: those nobody has referenced
//  since before now_us - grace_us, up to limit, marked DELETING (store in
//  a transaction; free with qn_store_s3_objects_free).  Also forgets
//  tombstones older than a day.
int
    qn_artifacts_s3_pick (qn_artifacts_t *self, int64_t now_us, int64_t grace_us,
                          qn_store_s3_object_t **objects_p, size_t *count_p, size_t limit);

//  Those marked DELETING (a deletion a restart cut short), to queue again.
int
    qn_artifacts_s3_deleting (qn_artifacts_t *self, qn_store_s3_object_t **objects_p,
                              size_t *count_p, size_t limit);

//  A deletion ended: gone (a tombstone now) or not (live again, tried
//  after the next grace).  Store in a transaction.
void
    qn_artifacts_s3_deleted (qn_artifacts_t *self, const char *id, bool gone, int64_t now_us);

#ifdef __cplusplus
}
#endif
#endif
