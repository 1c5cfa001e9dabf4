/*  qn_agent_internal - the agent engine's state, shared by its files.
    One of the files of the qn_agent class, with qn_agent.c (the
    conversation with the coordinator, the engine's life) and
    qn_agent_events.c (what the backends report of an attempt, made
    events for the outbox).  Not for use outside the engine.
*/
#ifndef QN_AGENT_INTERNAL_H_INCLUDED
#define QN_AGENT_INTERNAL_H_INCLUDED

#include <czmq.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include "qn_agent.h"
#include "qn_attempt.h"
#include "qn_backend.h"
#include "qn_blobstore.h"
#include "qn_handshake.h"
#include "qn_outbox.h"
#include "qn_s3.h"
#include "qn_sdnotify.h"
#include "qn_spool.h"
#include "qn_stager.h"
#include "qn_sweeper.h"
#include "qn_transfer.h"

#ifdef __cplusplus
extern "C" {
#endif

//  Where the conversation with the coordinator stands.  Draining is not
//  one of these steps: a drain can begin in any of them (and Register
//  says so), so it is a flag of its own.
typedef enum {
    QN_AGENT_UNREGISTERED,      //  qn_agent_run has not started: nothing sent
    QN_AGENT_REGISTERING,       //  Register sent (again with backoff), no Welcome since
    QN_AGENT_REGISTERED         //  a Welcome came after our last Register, and the
                                //  coordinator has not gone quiet or forgotten us
} qn_agent_registration_t;

//  One backend the agent offers: its ops and its state
typedef struct {
    const qn_backend_ops_t *ops;
    void *state;
} qn_agent_backend_t;

struct _qn_agent_t {
    qn_s3_store_url_t artifact_store;   //  --artifact-store; bucket NULL = none
    uint64_t cache_max;                 //  blob cache bound; 0 = none
    int64_t cache_keep_recent_s;        //  blobs used this recently stay
    size_t keep_workdirs;               //  finished attempts' directories kept
    qn_resources_t *resources;          //  what the machine has (not owned); NULL = unreported
    zlistx_t *kept_dirs;                //  those, oldest first (owned strings)
    qn_sweeper_t *sweeper;              //  removes the older ones off the loop
    char *endpoint;
    char *name;
    char *data_dir;
    char **label_keys;
    char **label_values;
    size_t label_count;
    uint32_t slots;
    char host [256];
    uint32_t ask_heartbeat_ms;
    uint32_t ask_suspect_ms;
    uint32_t ask_lost_ms;
    uint32_t max_backoff_ms;
    uint32_t stop_after_s;
    uint32_t drain_timeout_s;

    zsock_t *sock;
    zloop_t *loop;
    unsigned beats;             //  heartbeats sent, for the transfer tick
    qn_blobstore_t *cache;      //  blobs fetched for inputs, manifests of outputs
    qn_transfer_t *transfer;    //  blob transfers on our socket
    qn_stager_t *stager;        //  inputs in, outputs out
    qn_agent_backend_t backends [QN_AGENT_MAX_BACKENDS];
    size_t backend_count;       //  the first is the default for tasks that name none
    qn_backend_events_t events;
    qn_spool_t *spool;

    zhashx_t *attempts;         //  "run/task/attempt" -> qn_attempt_t
    qn_outbox_t *outbox;        //  their events, on their way out
    bool commit_armed;
    bool commit_retry_armed;
    uint32_t owed_credit;       //  slots to announce once we may

    qn_agent_registration_t registration;
    uint32_t heartbeat_ms;
    uint32_t suspect_after_ms;  //  from the Welcome, 0 = unknown
    int heartbeat_timer;
    int register_timer;
    uint32_t backoff_step;
    unsigned int seed;
    int64_t last_rx_ms;
    int64_t last_register_ms;
    bool cut_off_stopped;       //  stop_after_disconnect fired
    bool retry_armed;
    bool fatal;
    uint64_t malformed;
    bool denied;                //  the coordinator refuses our key

    zcert_t *cert;              //  our key pair, NULL = plaintext
    char *server_key;
    qn_handshake_t *handshake;  //  handshake events of sock (CURVE only)

    int signal_fd;
    sigset_t saved_mask;
    bool mask_saved;
    int signals;                //  SIGTERM/SIGINT received
    bool draining;
    bool drained;               //  the drain completed
    bool exit_now;              //  handlers return -1 to end the loop
};


//  qn_agent_events.c: the backends' callbacks (qn_backend_events_t), with
//  arg the engine.  Each turns what a backend reports of an attempt into
//  an event for the outbox, its secrets redacted.
void
    qn_agent_on_started (void *arg, const qn_attempt_key_t *key, int64_t pid,
                         const char *host, const char *workdir, const char *engine_job_id);
void
    qn_agent_on_cursor (void *arg, const qn_attempt_key_t *key, const char *cursor);
void
    qn_agent_on_link (void *arg, const qn_attempt_key_t *key, const char *url);
void
    qn_agent_on_log (void *arg, const qn_attempt_key_t *key, Qanat__Stream stream,
                     const void *data, size_t size, bool partial, int64_t time_us);
void
    qn_agent_on_metric (void *arg, const qn_attempt_key_t *key, const char *name,
                        double value, int64_t step, bool has_step, int64_t time_us);
//  A success of an attempt with outputs ends only once they are stored.
void
    qn_agent_on_finished (void *arg, const qn_attempt_key_t *key, int exit_code,
                          int signal, const char *stack_trace, const char *reason,
                          Qanat__EndKind kind);

//  Spools an attempt's Finished (it may use the spool's reserve).  The
//  reason and stack trace must be redacted already.
//  True when the assignment has file inputs or outputs a backend without
//  files in common cannot take (value outputs may come back through its
//  values file, QN_BACKEND_VALUE_OUTPUTS).
bool
    qn_agent_wants_files (const qn_backend_ops_t *ops, const Qanat__Assign *assign);

//  Commits the attempt's record (its backend and the engine job id its
//  backend reported from start) to the spool now, before its engine
//  hears of it: after a crash in between, the next agent re-attaches by
//  that id, and the backend submits again under the same idempotent key
//  when the engine has no such work.
void
    qn_agent_record_before_submit (qn_agent_t *self, qn_attempt_t *attempt);

void
    qn_agent_post_finished (qn_agent_t *self, qn_attempt_t *attempt, int exit_code, int signal,
                            const char *stack_trace, const char *reason, Qanat__EndKind kind);

//  Where the attempt's inputs are staged: on its backend's filesystem
//  when the backend says so (NULL = the agent's stage directory)
const char *
    qn_agent_stage_root (qn_agent_t *self, qn_attempt_t *attempt);

//  The blob cache, the transfers and the stager on it (send is how blob
//  messages leave), the sweeper of old work directories, the artifact
//  store; false when one cannot be opened (qn_agent_cache.c)
bool
    qn_agent_cache_open (qn_agent_t *self, const qn_agent_config_t *config,
                         qn_transfer_send_fn *send);

//  Keeps the blob cache under its bound (qn_agent_cache.c)
void
    qn_agent_cache_trim (qn_agent_t *self);

//  systemd, from a one-second timer of the loop: the watchdog, and now
//  and then a status line (qn_agent_sd.c)
int
    qn_agent_sd_tick (zloop_t *loop, int timer_id, void *arg);

#ifdef __cplusplus
}
#endif
#endif
