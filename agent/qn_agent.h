/*  qn_agent - the agent engine: one DEALER connection to the coordinator,
    attempts run through a backend, every event kept in a durable spool
    (qn_spool) until acknowledged.

    Conversation (proto/qanat.proto, docs/protocol.md):
    - Register at start and whenever we learn we are not registered, again
      after 250 ms x 2^n (capped, +-20% jitter) while no Welcome comes;
      Welcome -> Credit{capacity - running} and replay of every
      unacknowledged event, in seq order, from the spool.
    - Heartbeat{running, spool_bytes, spool_full} every heartbeat_ms.
      Silence from the coordinator for max(5 x heartbeat_ms,
      suspect_after_ms) means disconnected: attempts keep running, events
      keep spooling, Register goes out with backoff until a Welcome.
      Cut off longer than stop_after_disconnect_s (when set), the agent
      stops its attempts (END_LOST).
    - Assign starts an attempt; its events carry seq 1, 2, 3... and are
      committed to the spool (one transaction per loop turn) before they
      are sent; Credit{1} when it ends.  Ack{attempt, seq} deletes the
      attempt's events up to seq.  A full spool pauses the tasks' output,
      withholds credit and refuses Assigns (END_START_FAILED).
    - Cancel kills an attempt.  Refusal NOT_REGISTERED -> Register again;
      BAD_VERSION -> the engine stops with an error.  DENIED (our key is
      revoked), or a handshake the coordinator's ZAP handler refuses: the
      attempts are stopped (END_LOST, their Finished spooled) and the
      engine stops with an error.
    - Assign.redact: every secret value in it is shown as *** in the
      attempt's log chunks (all streams), metric names, Finished reason
      and stack trace, before anything is spooled.  See qn_redact.h.
    - A restarted agent finds its attempts in the spool, kills what is
      left of their processes, ends those without a Finished as END_LOST,
      reports them all in Register.running and replays their events.
    - First SIGTERM/SIGINT: drain (Drain{true}, no new work, wait for the
      running attempts to end and their events to be acknowledged, then
      stop).  A second one: kill the attempts and stop.
*/
#ifndef QN_AGENT_H_INCLUDED
#define QN_AGENT_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define QN_AGENT_DEFAULT_MAX_BACKOFF_MS  30000
#define QN_AGENT_MAX_BACKENDS            8

typedef struct {
    const char *endpoint;           //  coordinator's agent endpoint
    const char *name;
    const char **label_keys;        //  label_count each
    const char **label_values;
    size_t label_count;
    uint32_t slots;
    const char *data_dir;           //  must exist; the spool is in <data_dir>/spool
    size_t outbox_limit;            //  unacknowledged bytes above which task output
                                    //  pauses; 0 = when the spool is full
    int kill_grace_ms;              //  0 = backend default (5 s)
    uint64_t spool_max;             //  spool bound in bytes; 0 = QN_SPOOL_DEFAULT_MAX
    uint32_t heartbeat_ms;          //  timer profile asked in Register;
    uint32_t suspect_after_ms;      //  0 = the coordinator decides
    uint32_t lost_after_ms;
    uint32_t max_backoff_ms;        //  cap of the Register backoff; 0 = 30 s
    uint32_t stop_after_disconnect_s;   //  0 = never stop work when cut off
    uint32_t drain_timeout_s;       //  0 = a drain waits as long as it takes
    zcert_t *cert;                  //  our key pair (copied): CURVE client; NULL =
                                    //  plaintext, for a coordinator run --insecure
    const char *server_key;         //  with cert: the coordinator's public key (Z85)
    const char **backends;          //  backend_count names ("local", "slurm",
    size_t backend_count;           //  "kubernetes"); the first is the default; 0 = local
    char **backend_options;         //  "backend.key=value", NULL-terminated; may be NULL
    //  This environment's artifact store (--artifact-store), used for the
    //  outputs of workflows that name no store of their own; checked with
    //  qn_s3_store_url_parse.  NULL = the coordinator's blob store.
    const char *artifact_store;
    //  Bound of the blob cache (inputs fetched from the coordinator), in
    //  bytes; the least recently used blobs go first, none used in the
    //  last hour.  0 = unbounded.
    uint64_t cache_max;
    int64_t cache_keep_recent_s;    //  blobs used this recently stay; < 0 = 3600
    //  Work directories of the newest keep_workdirs finished attempts stay
    //  for inspection; older ones are removed.  < 0 = 100.
    int keep_workdirs;
    //  What this machine has for the local backend, reported in Register
    //  and handed out per attempt (qn_resources.h; not owned, outlives the
    //  engine).  NULL: the agent fronts a cluster, only its slots count.
    struct _qn_resources_t *resources;
} qn_agent_config_t;

typedef struct _qn_agent_t qn_agent_t;

//  Creates the engine, opens the spool (taking over the attempts an
//  earlier agent left in it) and connects (ZeroMQ connects lazily: a
//  missing coordinator is not an error).  Blocks SIGTERM and SIGINT in
//  the calling process (they are read from a signalfd); call it before
//  starting threads.  The config is copied.  NULL on failure.
qn_agent_t *
    qn_agent_new (const qn_agent_config_t *config);

//  Runs until a drain completes (first SIGTERM/SIGINT), a second signal,
//  or a fatal refusal; kills what still runs.  Returns 0 after a signal,
//  -1 after a fatal error.
int
    qn_agent_run (qn_agent_t *self);

//  Destroys the engine, restores the signal mask, nulls the pointer.
//  Idempotent.
void
    qn_agent_destroy (qn_agent_t **self_p);

//  The agent's identity (its key pair, the coordinator's key it pins,
//  its name and labels) is qn_identity; enrolment with a join token is
//  qn_enrol.

#ifdef __cplusplus
}
#endif
#endif
