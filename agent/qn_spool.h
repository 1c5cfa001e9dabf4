/*  qn_spool - the agent's durable spool of unacknowledged events.

    Every event an attempt produces is written here before it is sent, and
    deleted only once the coordinator acknowledged it, so that neither a
    disconnection nor an agent crash (kill -9, power loss) loses or
    duplicates a log line.  The spool is an LMDB environment in its own
    directory with two sub-databases:

    - "events":   run_id (be64) task_index (be32) attempt (be32) seq (be64)
                  -> an encoded qanat.Event.  Keys sort by attempt, then
                  seq, so one attempt's events read back in order.
    - "attempts": run_id (be64) task_index (be32) attempt (be32)
                  -> the attempt's metadata (qn_spool_meta_t), kept until
                  the attempt is forgotten.

    Writes are grouped: the first write opens a write transaction, and
    qn_spool_commit makes everything since durable at once (one fsync),
    which is what keeps a chatty task from costing one disk flush per
    line.  Reads see committed records only.

    Size bound: the events' bytes (keys and values) never pass max_bytes.
    The last reserve_bytes of the bound take only events put with reserve
    set (the agent uses it for Finished events), so that an attempt can
    always be ended even when output filled the spool.

    Opening checks every record: a key of the wrong size is deleted; a
    value that is not an Event of that very attempt and seq is replaced by
    a system log line saying the event was lost (the sequence stays
    whole, so the coordinator is not left waiting for it); an attempt
    with events but no readable metadata gets metadata rebuilt from its
    events.  Nothing read from the disk can crash us.
*/
#ifndef QN_SPOOL_H_INCLUDED
#define QN_SPOOL_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "qn_backend.h"

#ifdef __cplusplus
extern "C" {
#endif

#define QN_SPOOL_DEFAULT_MAX       (256ULL * 1024 * 1024)
#define QN_SPOOL_DEFAULT_RESERVE   (1024ULL * 1024)
#define QN_SPOOL_TASK_NAME_MAX     255
#define QN_SPOOL_BACKEND_MAX       31
#define QN_SPOOL_WORKDIR_MAX       4095
//  Bytes an event record takes beyond its value (the key)
#define QN_SPOOL_KEY_SIZE          24

typedef struct {
    qn_attempt_key_t key;
    int64_t pid;                //  process and process group id; 0 = none
    uint64_t start_time;        //  the process's start time in clock ticks
                                //  since boot (/proc/PID/stat); 0 = unknown
    uint64_t next_seq;          //  seq the attempt's next event gets
    bool finished;              //  its Finished event is spooled
    char task_name [QN_SPOOL_TASK_NAME_MAX + 1];
    //  For backends whose work outlives the agent (QN_BACKEND_CAN_REATTACH):
    //  which backend runs it, the engine's job id and the backend's
    //  cursor, kept in the same commit as the events they cover.  "" = none.
    char backend [QN_SPOOL_BACKEND_MAX + 1];
    char engine_job_id [QN_BACKEND_JOB_ID_MAX + 1];
    char cursor [QN_BACKEND_CURSOR_MAX + 1];
    //  Where the backend's work directory is, for the outputs of an
    //  attempt re-attached after a restart; "" = none or unknown.
    char workdir [QN_SPOOL_WORKDIR_MAX + 1];
} qn_spool_meta_t;

typedef struct _qn_spool_t qn_spool_t;

//  Opens (creating) the spool in directory path, which must exist.
//  max_bytes 0 = QN_SPOOL_DEFAULT_MAX; reserve_bytes is capped at a
//  quarter of max_bytes.  Checks and repairs every record (see above).
//  NULL on failure, with a message logged.
qn_spool_t *
    qn_spool_new (const char *path, uint64_t max_bytes, uint64_t reserve_bytes);

//  Aborts what was not committed, closes, nulls the pointer.  Idempotent.
void
    qn_spool_destroy (qn_spool_t **self_p);

//  Adds an event (size bytes of an encoded qanat.Event) to the current
//  write transaction.  Returns 0; -1 with errno ENOSPC when the bound (or
//  its reserve, for reserve = false) leaves no room, in which case the
//  transaction stays usable; -1 with errno EIO when LMDB failed, in which
//  case only qn_spool_abort is left.
int
    qn_spool_put (qn_spool_t *self, const qn_attempt_key_t *key, uint64_t seq,
                  const void *data, size_t size, bool reserve);

//  Deletes the attempt's events with seq <= seq (only that attempt's).
//  Returns the number deleted, or -1.
int
    qn_spool_ack (qn_spool_t *self, const qn_attempt_key_t *key, uint64_t seq);

//  Writes an attempt's metadata.  Returns 0 or -1.
int
    qn_spool_meta_put (qn_spool_t *self, const qn_spool_meta_t *meta);

//  Deletes an attempt: its metadata and every event it still has.
//  Returns 0 or -1.
int
    qn_spool_meta_delete (qn_spool_t *self, const qn_attempt_key_t *key);

//  Makes the current write transaction durable.  0 when there was none.
//  On failure the transaction is gone (as after qn_spool_abort) and -1
//  is returned: the caller still holds what it meant to write.
int
    qn_spool_commit (qn_spool_t *self);

//  Drops the current write transaction, if any.
void
    qn_spool_abort (qn_spool_t *self);

//  Calls fn for the committed events of one attempt with seq >= from_seq,
//  in seq order (key NULL: every attempt's, in key order).  fn returns 0
//  to go on, anything else to stop.  Returns the number of calls made,
//  or -1.  data is valid during the call only.
typedef int (qn_spool_event_fn) (const qn_attempt_key_t *key, uint64_t seq,
                                 const void *data, size_t size, void *arg);
int
    qn_spool_events (qn_spool_t *self, const qn_attempt_key_t *key, uint64_t from_seq,
                     qn_spool_event_fn *fn, void *arg);

//  Calls fn for every committed attempt's metadata, in key order.
//  Returns the number of calls made, or -1.
typedef int (qn_spool_meta_fn) (const qn_spool_meta_t *meta, void *arg);
int
    qn_spool_metas (qn_spool_t *self, qn_spool_meta_fn *fn, void *arg);

//  Reads one attempt's committed metadata.  Returns 0, or -1 when absent.
int
    qn_spool_meta_get (qn_spool_t *self, const qn_attempt_key_t *key, qn_spool_meta_t *meta);

//  Events' bytes, counting the open transaction.
uint64_t
    qn_spool_bytes (qn_spool_t *self);

//  Events' bytes that are committed.
uint64_t
    qn_spool_committed_bytes (qn_spool_t *self);

//  The bound and its reserve, as in force.
uint64_t
    qn_spool_max (qn_spool_t *self);
uint64_t
    qn_spool_reserve (qn_spool_t *self);

//  Records found damaged (and skipped or repaired) when opening.
uint64_t
    qn_spool_damaged (qn_spool_t *self);

#ifdef __cplusplus
}
#endif
#endif
