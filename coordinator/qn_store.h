/*  qn_store - the coordinator's metadata store on LMDB.

    One environment in a data directory, one named sub-database per record
    kind.  Keys are big-endian integers (or name + big-endian integer) so
    that cursor order is run order and, within a run, log order.  Values are
    protobuf-encoded messages from proto/qanat.proto.

    Writes happen inside one write transaction that the caller opens with
    qn_store_begin and closes with qn_store_commit: the coordinator groups
    all the writes of one loop turn into one durable commit, and sends
    nothing that depends on them before the commit returns.  Reads made while
    a write transaction is open see its uncommitted writes; otherwise each
    read uses its own read-only transaction.

    Every function returns 0 / -1 (or NULL) and never aborts on bad data in
    the store: an undecodable record is skipped and reported through
    qn_store_error.  Returned protobuf messages belong to the caller; free
    one with protobuf_c_message_free_unpacked (msg, NULL), or an array with
    qn_store_free_array.
*/
#ifndef QN_STORE_H_INCLUDED
#define QN_STORE_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "qanat.pb-c.h"

#ifdef __cplusplus
extern "C" {
#endif

#define QN_STORE_SCHEMA_VERSION  1

typedef struct _qn_store_t qn_store_t;

//  Opens (creating if needed) the store in directory dir (created 0700 if
//  missing).  durable=false skips fsync on commit (faster, loses the last
//  commits on power loss; never corrupts).  A store written by a newer
//  schema is refused.  NULL on failure with *error_p a malloc'd message.
//  The environment variable QANAT_STORE_MAP_SIZE (bytes) sets the LMDB
//  map size, for tests that need a full store; the default is 64 GiB of
//  address space (smaller if the process cannot map that much).
qn_store_t *
    qn_store_new (const char *dir, bool durable, char **error_p);

//  Writes a compacted, consistent copy of the store (one snapshot: the
//  writes committed when it starts) as dir/data.mdb; dir must exist and
//  hold no data.mdb.  Safe to call from another thread while the owner
//  keeps using the store (backups).  0, or -1 with *error_p (malloc'd).
int
    qn_store_copy (qn_store_t *self, const char *dir, char **error_p);

void
    qn_store_destroy (qn_store_t **self_p);

//  Message for the last failure; never NULL.
const char *
    qn_store_error (qn_store_t *self);

//  Opens the write transaction if none is open.  0 or -1.
int
    qn_store_begin (qn_store_t *self);

//  Commits the open write transaction (no-op when none is open).  On
//  failure (disk full, ...) the transaction is aborted: none of its writes
//  happened.  0 or -1.
int
    qn_store_commit (qn_store_t *self);

//  Drops the open write transaction, if any.
void
    qn_store_abort (qn_store_t *self);

bool
    qn_store_in_txn (qn_store_t *self);

//  ---- schedules and triggers (qn_store_sched.c; writes need an open
//  transaction; getters return 1 found, 0 not found, -1 error) ----

//  What one schedule tick did: the run it started, or 0 and why not
typedef struct {
    int64_t tick;               //  seconds since the epoch
    uint64_t run_id;
    char reason [200];
} qn_store_tick_t;

int
    qn_store_sched_tick_put (qn_store_t *self, const char *name, uint32_t index,
                             const qn_store_tick_t *tick);
int
    qn_store_sched_tick_get (qn_store_t *self, const char *name, uint32_t index, int64_t tick,
                             qn_store_tick_t *out);
//  The newest tick recorded for the schedule
int
    qn_store_sched_tick_last (qn_store_t *self, const char *name, uint32_t index,
                              qn_store_tick_t *out);
//  With retention, once deleted (count run ids of workflow name, sorted
//  here) are gone in the open transaction: removes the tick records of
//  those runs and the skipped ticks older than them (never a tick the
//  scheduler has yet to pass, nor a schedule's newest record), and what
//  those runs triggered once their triggers have fired.  Adds the
//  records removed to *pruned_p.  0 or -1.
int
    qn_store_sched_prune (qn_store_t *self, const char *name, uint64_t *deleted, size_t count,
                          size_t *pruned_p);
//  The last tick the scheduler considered (or when it first saw the schedule)
int
    qn_store_sched_cursor_get (qn_store_t *self, const char *name, uint32_t index,
                               int64_t *cursor_p);
int
    qn_store_sched_cursor_put (qn_store_t *self, const char *name, uint32_t index,
                               int64_t cursor);
int
    qn_store_sched_paused (qn_store_t *self, const char *name);
int
    qn_store_sched_set_paused (qn_store_t *self, const char *name, bool paused);
//  Runs that ended and whose triggers have not fired yet
int
    qn_store_sched_pending_put (qn_store_t *self, uint64_t run_id);
int
    qn_store_sched_pending_delete (qn_store_t *self, uint64_t run_id);
//  Up to max of them, oldest first.  0 or -1.
int
    qn_store_sched_pending_list (qn_store_t *self, uint64_t *ids, size_t max, size_t *count_p);
//  Every stored workflow's name and newest version, in name order, without
//  counting runs as qn_store_list_workflows does (the scheduler asks every
//  second).  The visit must not use the store.  0 or -1.
typedef void (qn_store_sched_latest_fn) (void *arg, const char *name, uint32_t latest);
int
    qn_store_sched_latest (qn_store_t *self, qn_store_sched_latest_fn *visit, void *arg);
//  The run that upstream's end started of workflow name
int
    qn_store_sched_triggered_get (qn_store_t *self, uint64_t upstream, const char *name,
                                  uint64_t *run_id_p);
int
    qn_store_sched_triggered_put (qn_store_t *self, uint64_t upstream, const char *name,
                                  uint64_t run_id);

//  ---- workflows (writes need an open transaction) ----

//  Stores source as a new version of workflow name, unless it is byte for
//  byte the latest version.  Sets *version_p and *created_p.
int
    qn_store_put_workflow (qn_store_t *self, const char *name, const char *filename,
                           const void *source, size_t len, uint32_t *version_p, bool *created_p);

//  The same, with the version's code ("dir:<sha256>"; NULL or "" = none):
//  the same text with other code is a new version.
int
    qn_store_put_workflow_code (qn_store_t *self, const char *name, const char *filename,
                                const void *source, size_t len, const char *code,
                                uint32_t *version_p, bool *created_p);

//  The stored source of one version (filename, source and created_us: 0
//  for a version stored before it was recorded), or NULL.  version 0
//  means the latest version.
Qanat__SubmitWorkflow *
    qn_store_get_workflow (qn_store_t *self, const char *name, uint32_t version);

//  The latest version of name in *version_p, 0 when there is none.  0 or -1.
int
    qn_store_workflow_latest (qn_store_t *self, const char *name, uint32_t *version_p);

//  Every stored workflow in name order, with its latest version, when
//  that was stored, and its runs in the store (malloc'd array of
//  messages; free with qn_store_free_array).
int
    qn_store_list_workflows (qn_store_t *self, Qanat__WorkflowSummary ***workflows_p,
                             size_t *count_p);

//  ---- runs ----

//  Allocates the next run id (1, 2, ...).  Needs an open transaction.
int
    qn_store_new_run_id (qn_store_t *self, uint64_t *run_id_p);

//  Inserts or replaces a run.  run->tasks is not stored (tasks have their
//  own records).  Also maintains the per-workflow index and the set of
//  active (queued or running) runs.
int
    qn_store_put_run (qn_store_t *self, const Qanat__RunInfo *run);

//  The run without its tasks (see qn_store_get_tasks), or NULL.
Qanat__RunInfo *
    qn_store_get_run (qn_store_t *self, uint64_t run_id);

//  Newest first; workflow NULL or "" lists every workflow; limit 0 = 50.
Qanat__RunList *
    qn_store_list_runs (qn_store_t *self, const char *workflow, uint32_t limit);

//  At most this many runs examined by one qn_store_find_runs by default
#define QN_STORE_FIND_SCAN_CAP  20000

//  Which runs qn_store_find_runs lists; a zero field filters nothing.
typedef struct {
    const char *workflow;       //  NULL or "" = every workflow
    const char *owner;          //  NULL or "" = every owner
    bool has_status;            //  only runs in status...
    int status;                 //  ...a Qanat__RunStatus
    int64_t created_after_us;   //  created_us >= this
    int64_t created_before_us;  //  created_us < this
    uint64_t before_run_id;     //  ids below this (the cursor)
    uint32_t limit;             //  runs returned at most (0 = 50)
    uint32_t scan_cap;          //  runs examined at most (0 = QN_STORE_FIND_SCAN_CAP)
} qn_store_run_filter_t;

//  The runs that pass every filter, newest first, walking the runs (or a
//  workflow's index) down from the cursor.  It stops at limit runs or
//  after examining scan_cap runs; then list->next_before is the id of the
//  last run examined (pass it as before_run_id to go on: a page may be
//  short or empty and more still follow).  next_before is 0 when the walk
//  reached the first run.  Only runs that pass are decoded whole.
Qanat__RunList *
    qn_store_find_runs (qn_store_t *self, const qn_store_run_filter_t *filter);

//  Ids of queued or running runs, oldest first (malloc'd array).
int
    qn_store_active_runs (qn_store_t *self, uint64_t **ids_p, size_t *count_p);

//  ---- tasks of a run ----

int
    qn_store_put_task (qn_store_t *self, uint64_t run_id, const Qanat__TaskInfo *task);

//  All tasks of a run, in index order (malloc'd array of messages).
int
    qn_store_get_tasks (qn_store_t *self, uint64_t run_id, Qanat__TaskInfo ***tasks_p,
                        size_t *count_p);

//  ---- logs ----

//  Appends one log line to a run, giving it the next run-wide log sequence
//  (1, 2, ...), returned in *log_seq_p if not NULL.  The line is stored
//  as given (its seq field is the caller's, not the log sequence).
int
    qn_store_append_log (qn_store_t *self, uint64_t run_id, const Qanat__LogLine *line,
                         uint64_t *log_seq_p);

//  Reads up to limit lines with log sequence > after, keeping those of task
//  (NULL or "" = every task) and attempt (0 = every attempt).  *last_p gets
//  the highest log sequence examined, to pass as after next time (it may
//  be larger than the last returned line's when lines were filtered out).
//  Each line's log_seq is its log sequence.
int
    qn_store_read_logs (qn_store_t *self, uint64_t run_id, uint64_t after, const char *task,
                        uint32_t attempt, uint32_t limit, Qanat__LogLine ***lines_p,
                        size_t *count_p, uint64_t *last_p);

//  ---- metrics ----

int
    qn_store_append_metric (qn_store_t *self, uint64_t run_id, const Qanat__MetricRecord *record);

//  Every metric record of a run in arrival order, only those named name
//  unless name is NULL or "".
int
    qn_store_read_metrics (qn_store_t *self, uint64_t run_id, const char *name,
                           Qanat__MetricRecord ***records_p, size_t *count_p);

//  ---- agents ----

int
    qn_store_put_agent (qn_store_t *self, const Qanat__AgentInfo *agent);

//  Forgets an agent's record (not there is fine).
int
    qn_store_delete_agent (qn_store_t *self, const char *name);

//  Every agent ever registered, by name.
int
    qn_store_list_agents (qn_store_t *self, Qanat__AgentInfo ***agents_p, size_t *count_p);

//  ---- principals: agents, users and join tokens by public key ----

//  Inserts or replaces, keyed by principal->public_key (Z85).
int
    qn_store_put_principal (qn_store_t *self, const Qanat__Principal *principal);

int
    qn_store_delete_principal (qn_store_t *self, const char *public_key);

int
    qn_store_list_principals (qn_store_t *self, Qanat__Principal ***principals_p, size_t *count_p);

//  ---- API tokens: by the SHA-256 (64 hex digits) of the token ----

//  Inserts or replaces; token->token must be empty (never stored).
int
    qn_store_put_api_token (qn_store_t *self, const char *hash_hex, const Qanat__ApiToken *token);

//  Every API token, revoked ones too, with the hash of each (both arrays
//  the caller's: free the strings and qn_store_free_array the tokens).
int
    qn_store_list_api_tokens (qn_store_t *self, char ***hashes_p, Qanat__ApiToken ***tokens_p,
                              size_t *count_p);

//  ---- secrets: opaque (already encrypted) values by name ----

int
    qn_store_put_secret (qn_store_t *self, const char *name, const void *data, size_t size);

//  1 and a malloc'd copy when found, 0 when not, -1 on error.
int
    qn_store_get_secret (qn_store_t *self, const char *name, void **data_p, size_t *size_p);

//  Deletes a secret's value and its access list (not there is fine).
int
    qn_store_delete_secret (qn_store_t *self, const char *name);

//  Names only, in order (malloc'd array of malloc'd strings).
int
    qn_store_list_secrets (qn_store_t *self, char ***names_p, size_t *count_p);

//  Who may use a secret, kept apart from its sealed value.  get: 1 and
//  *access_p (free with protobuf_c_message_free_unpacked) when stored, 0
//  when not (the secret is then for role admin only), -1 on error.
int
    qn_store_put_secret_access (qn_store_t *self, const char *name,
                                const Qanat__SecretAccess *access);
int
    qn_store_get_secret_access (qn_store_t *self, const char *name,
                                Qanat__SecretAccess **access_p);

//  ---- helpers ----

//  ---------------------------------------------------------------------
//  Artifacts

//  The blob index: hash (64 lowercase hex) -> size and references (the
//  attempt outputs and cache entries that use it).  get: 1 found, 0 not,
//  -1 error.  add creates it with 0 references when absent.
int
    qn_store_blob_get (qn_store_t *self, const char *hash, uint64_t *size_p, uint32_t *refs_p);
int
    qn_store_blob_add (qn_store_t *self, const char *hash, uint64_t size);
//  Adds delta to its references (never below 0).
int
    qn_store_blob_ref (qn_store_t *self, const char *hash, int delta, uint32_t *refs_p);
int
    qn_store_blob_delete (qn_store_t *self, const char *hash);
//  Up to limit blobs nobody references: malloc'd strings (free each, then
//  the array).
int
    qn_store_unreferenced_blobs (qn_store_t *self, char ***hashes_p, size_t *count_p,
                                 size_t limit);

//  S3 objects the records point to (outputs in an S3 store), counted like
//  blobs so that retention can delete them from their bucket.  id names
//  one object: 64 lowercase hex (the caller hashes endpoint, bucket and
//  key).  A row goes LIVE -> DELETING (picked for deletion) -> DELETED (a
//  tombstone, kept a while so that a late record of the object is seen).
//  Writes need an open transaction.  A stored row that does not decode
//  (damaged, or written by a newer format) is an error for get, ref and
//  set_state and is skipped by list; delete removes it like any row.
#define QN_STORE_S3_LIVE      0
#define QN_STORE_S3_DELETING  1
#define QN_STORE_S3_DELETED   2

//  Limits on what one row holds
#define QN_STORE_S3_LOCATION_MAX  2048
#define QN_STORE_S3_STORE_MAX     8192

typedef struct {
    char id [65];
    char *location;             //  "s3://bucket/key"
    uint8_t *store;             //  the packed Qanat__ArtifactStore it is in (NULL if empty)
    size_t store_size;
    uint64_t size;
    uint32_t refs;
    int state;                  //  QN_STORE_S3_*
    int64_t since_us;           //  LIVE: when refs last fell to 0 (the add time
                                //  if they never did); else when the state began
} qn_store_s3_object_t;

//  1 found (object filled; free with qn_store_s3_object_clear), 0 not,
//  -1 error (bad id, damaged row).  object may be NULL to test presence;
//  otherwise it is zeroed whenever the result is not 1.
int
    qn_store_s3_get (qn_store_t *self, const char *id, qn_store_s3_object_t *object);

//  Creates a LIVE row with 0 references when there is none (since_us =
//  now_us); does nothing when one exists, whatever its state (but a
//  damaged row is an error, not replaced: its counts are unknown).
//  location: 1 to QN_STORE_S3_LOCATION_MAX bytes; store: at most
//  QN_STORE_S3_STORE_MAX bytes, NULL when store_size is 0.
int
    qn_store_s3_add (qn_store_t *self, const char *id, const char *location,
                     const uint8_t *store, size_t store_size, uint64_t size, int64_t now_us);

//  Adds delta to the references (never below 0, never past UINT32_MAX),
//  in any state.  When a LIVE row's references fall from above 0 to 0,
//  since_us = now_us.  -1 when there is no such row.
int
    qn_store_s3_ref (qn_store_t *self, const char *id, int delta, int64_t now_us,
                     uint32_t *refs_p);

//  Sets the state and since_us = now_us.  -1 when there is no such row.
int
    qn_store_s3_set_state (qn_store_t *self, const char *id, int state, int64_t now_us);

//  Deleting a missing row is fine.
int
    qn_store_s3_delete (qn_store_t *self, const char *id);

//  Up to limit rows (in id order) in state with since_us < before_us,
//  LIVE ones only when they have no references.  *objects_p is a malloc'd
//  array (NULL when count is 0); free with qn_store_s3_objects_free.
int
    qn_store_s3_list (qn_store_t *self, int state, int64_t before_us,
                      qn_store_s3_object_t **objects_p, size_t *count_p, size_t limit);

//  Frees what the object holds and zeroes it.
void
    qn_store_s3_object_clear (qn_store_s3_object_t *object);

//  Clears count objects, frees the array and sets *objects_p to NULL.
void
    qn_store_s3_objects_free (qn_store_s3_object_t **objects_p, size_t count);

//  The cache: a task's identity (hex) -> the successful attempt whose
//  outputs it may reuse.  get: 1 found, 0 not, -1 error.
int
    qn_store_put_cache (qn_store_t *self, const char *key, uint64_t run_id, uint32_t task,
                        uint32_t attempt);
int
    qn_store_get_cache (qn_store_t *self, const char *key, uint64_t *run_id_p, uint32_t *task_p,
                        uint32_t *attempt_p);
int
    qn_store_delete_cache (qn_store_t *self, const char *key);

//  Retention: deletes a run with its tasks, logs and metrics.
int
    qn_store_delete_run (qn_store_t *self, uint64_t run_id);
//  A workflow's run ids, oldest first (free *ids_p).
int
    qn_store_workflow_run_ids (qn_store_t *self, const char *workflow, uint64_t **ids_p,
                               size_t *count_p);

//  ---- the notifications' outbox (qn_store_notify.c) ----

//  Writes an entry (in the open transaction): a "pending" one into the
//  pending table, any other state into the outbox.  0 or -1.
int
    qn_store_put_notif (qn_store_t *self, const Qanat__NotifEntry *entry);
//  One entry, or NULL
Qanat__NotifEntry *
    qn_store_get_notif (qn_store_t *self, uint64_t run_id, uint32_t channel);
//  Whether the entry is stored, without decoding it: 1, 0, or -1
int
    qn_store_has_notif (qn_store_t *self, uint64_t run_id, uint32_t channel);
//  Whether a run has an entry still to send: 1, 0, or -1
int
    qn_store_notifs_pending (qn_store_t *self, uint64_t run_id);
//  Deletes every entry of a run (in the open transaction), adding their
//  number to *deleted_p when given.  0 or -1.
int
    qn_store_delete_notifs (qn_store_t *self, uint64_t run_id, size_t *deleted_p);
//  A run's entries in channel order, or (run_id 0) every run's, newest
//  run first; at most limit.  Free with qn_store_free_array.  0 or -1.
int
    qn_store_list_notifs (qn_store_t *self, uint64_t run_id, size_t limit,
                          Qanat__NotifEntry ***entries_p, size_t *count_p);
//  Whether a pending entry is passed over (not decoded, not counted)
typedef bool (qn_store_notif_skip_fn) (uint64_t run_id, uint32_t channel, void *arg);
//  Pending entries, oldest run first, at most limit of those skip (when
//  given) does not pass over.  0 or -1.
int
    qn_store_pending_notifs (qn_store_t *self, size_t limit, qn_store_notif_skip_fn *skip,
                             void *skip_arg, Qanat__NotifEntry ***entries_p, size_t *count_p);

//  Frees count protobuf messages and the array itself.
void
    qn_store_free_array (void *array, size_t count);

//  Pool sizes and owners' weights (qn_store_limits.c): kind is "pool" or
//  "weight"; value 0 deletes.  0 or -1.
int
    qn_store_limit_put (qn_store_t *self, const char *kind, const char *name, uint32_t value);

typedef void (qn_store_limit_fn) (const char *kind, const char *name, uint32_t value,
                                  void *arg);
//  Visits every stored limit.  0 or -1.
int
    qn_store_limit_each (qn_store_t *self, qn_store_limit_fn *visit, void *arg);


#ifdef __cplusplus
}
#endif
#endif
