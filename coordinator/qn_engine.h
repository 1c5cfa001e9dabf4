/*  qn_engine - the coordinator engine's private header: the records the
    engine's files share.  Not installed, not for the programs: only the
    coordinator's own files (qn_coordinator.c, qn_api.c, ...) include it.

    Who owns what.  The engine (qn_coordinator_t, made and destroyed by
    qn_coordinator_new/destroy in qn_coordinator.c) owns every record
    here: the agents (by name), the active runs (by id), the ready queues,
    the outbox and the pending acknowledgements.  The other files borrow
    them for the length of one call and never keep a pointer past it:
    a run may be retired (freed) at the end of any loop turn, an agent
    record lives as long as the engine.  Fields marked "not owned" point
    into another of the engine's tables.

    Memory and store: the store is the truth, these records the active
    part of it (see the contract in qn_turn.h: what a turn changes is
    marked dirty and written in the turn's one commit, and whatever
    depends on a write waits in the outbox until then).

    One of the files of the qn_coordinator class: it shares the engine's
    records (qn_engine.h), so the include checker counts it with
    qn_coordinator.
*/
#ifndef QN_ENGINE_H_INCLUDED
#define QN_ENGINE_H_INCLUDED

#include "qanat.h"
#include "qn_coordinator.h"
#include "qn_dag.h"
#include "qn_keyring.h"
#include "qn_vault.h"
#include "qn_artifacts.h"
#include "qn_blobserver.h"
#include "qn_s3gc.h"
#include "qn_api.h"
#include "qn_wf_notify.h"
#include "qn_placement.h"
#include "qn_limits.h"
//  Commit latency buckets: at most 0.5, 1, 2, 5, 10, 25, 50, 100, 250 ms,
//  and longer (qn_turn_latency_bound)
#define QN_ENGINE_LATENCY_BUCKETS   10
//  Room for every qn_end_t (qn_run.c checks that it is enough)
#define QN_ENGINE_END_KINDS         16

//  An agent the engine knows: connected now, or known from the store.
//  In the engine's agents table by name for the engine's lifetime
//  (qn_fleet makes, connects and sweeps them).
typedef struct {
    char *name;
    zframe_t *routing_id;               //  NULL while not connected
    char *route_key;                    //  hex of routing_id, key in by_route
    Qanat__AgentInfo *info;             //  owned; labels, capacity, credit...
    int64_t last_seen;                  //  zclock_mono of its last message
    bool lost;                          //  declared lost (vs. never seen since our start)
    bool drained_by_admin;              //  `qanat agent drain`
    bool drained_by_itself;             //  shutting down
    zhashx_t *attempts;                 //  "run:task" of its running attempts -> ready_t
    zhashx_t *fetchable;                //  blob hashes its attempts' inputs use (a set)
    const char *state;                  //  the static name last copied into info->state
    uint64_t cache_damaged;             //  as its last heartbeat said (it counts from its start)
    qn_place_t place;                   //  what it has and its running attempts use
    //  "run:task:attempt" -> qn_res_t of attempts no longer current that
    //  it may still run (canceled, fenced: killed, not yet ended there);
    //  counted in place.used until their Finished comes (qn_fleet_hold)
    zhashx_t *held;
} agent_t;

//  An active (queued or running) run, in the engine's runs table until
//  it finishes and is retired at the end of a loop turn.
typedef struct {
    uint64_t id;
    qn_coordinator_t *owner;
    qn_workflow_t *wf;
    qn_dag_t *dag;
    Qanat__RunInfo *info;               //  owned, with every task
    size_t warnings;                    //  tasks whose latest checks include a failed warning
    bool dirty;                         //  run record to write
    bool listed;                        //  in the owner's dirty list
    bool *dirty_task;                   //  task records to write...
    size_t *dirty_list;                 //  ...and their indexes
    size_t dirty_count;
    size_t *scratch;                    //  room for every task index, for qn_dag
    bool admitted;                      //  counted against its workflow's concurrency
} run_t;

//  A task waiting for an agent.
typedef struct {
    uint64_t run_id;
    uint32_t task;
    int64_t queued_us;                  //  when it joined its queue (priority ageing)
} ready_t;

//  The highest seq of one attempt to acknowledge at the end of the turn.
typedef struct {
    zframe_t *routing_id;
    uint64_t run_id;
    uint32_t task;
    uint32_t attempt;
    uint64_t seq;
} pending_ack_t;

//  A blob stored for an attempt whose Finished has not come yet
typedef struct {
    int64_t when;                       //  zclock_mono when it was stored
    uint64_t run_id;
    uint32_t task;
    uint32_t attempt;
} upload_t;

//  Something to send once the turn's commit has succeeded.
typedef struct {
    zsock_t *sock;
    zframe_t *routing_id;
    zframe_t *frame;
    uint64_t request_id;                //  client replies only, else 0
} outgoing_t;

//  The engine itself (qn_coordinator.h names it; qn_coordinator.c makes it).
struct _qn_coordinator_t {
    qn_coordinator_config_t config;
    char *data_dir;
    qn_store_t *store;
    zsock_t *agents_sock;
    zsock_t *clients_sock;
    zsock_t *api_sock;                  //  the HTTP side's requests (qn_api_bridge.c)
    //  This process's HTTP server's own credential, for what it may serve
    //  without a caller's token (/metrics from loopback): a user's rights
    char http_credential [80];
    Qanat__Principal http_reader;
    zsock_t *events_sock;               //  what each commit changed, for the HTTP side
    char *agent_endpoint;
    char *client_endpoint;
    char *api_endpoint;                 //  as bound, for unbinding (inproc is released at once)
    char *events_endpoint;
    zloop_t *loop;
    zhashx_t *agents;                   //  name -> agent_t
    zhashx_t *by_route;                 //  route key -> agent_t (not owned)
    zhashx_t *runs;                     //  "%llu" id -> run_t
    zhashx_t *queues;                   //  selector text -> zlistx of ready_t, oldest first
    zlistx_t *delayed;                  //  ready_t of retries waiting out their backoff
    zhashx_t *with_credit;              //  name -> agent_t with credit (not owned)
    zlistx_t *dirty_runs;               //  run_t changed this turn (not owned)
    zlistx_t *outbox;                   //  outgoing_t
    zhashx_t *acks;                     //  pending_ack_t by connection and attempt
    Qanat__Stats stats;
    uint64_t put_bytes_in;                  //  blob bytes clients fed in (qanat put, code)
    //  Counters that GetStats turns into Stats' repeated fields
    uint64_t commit_latency [QN_ENGINE_LATENCY_BUCKETS];    //  commits per bucket (qn_turn.c)
    uint64_t attempts_ended [QN_ENGINE_END_KINDS];          //  by qn_end_t (qn_run.h)
    int64_t started;
    qn_keyring_t *keyring;              //  NULL when --insecure
    qn_vault_t *vault;
    qn_artifacts_t *artifacts;          //  blob index, cache, retention
    qn_blobserver_t *blobserver;        //  blob transfers with agents
    int timer_turns;                    //  of s_on_timer, for the blob server's tick
    zhashx_t *uploading;                //  blobs stored for attempts still running (kept from GC)
    qn_s3gc_t *s3gc;                    //  deletes unreferenced S3 artifacts off the loop
    zhashx_t *s3_queued;                //  ids of S3 objects handed to s3gc
    int64_t s3_failure_logged;          //  when a failed deletion was last logged (mono ms)
    bool s3_collect_due;                //  references fell, or a pass left work: look soon
    const Qanat__Principal *sender;     //  who sent the message being handled
    zhashx_t *strikes;                  //  route key -> malformed messages, for cut-offs
    int backoff_ms;                     //  pause after a failed commit, doubled while they fail
    bool paused;                        //  readers off until the pause ends
    bool runs_changed;                  //  this turn created a run or changed a run's status
    bool agents_changed;                //  this turn changed an agent's record
    struct _qn_scheduler_t *scheduler;  //  schedules and triggers (qn_scheduler.c)
    struct _qn_notify_t *notifier;      //  sends the notifications' outbox (qn_notify.c)
    qn_wf_notify_t *notify_default;     //  --notify-file: for workflows without notify:
    qn_limits_t *limits;                //  pools, weights, running counts (qn_dispatch.c)
    zhashx_t *admitted;                 //  workflow -> runs admitted under its concurrency
    struct _qn_api_backup_t *backup;    //  the backup being taken, if any (qn_api_backup.c)
};

//  ---------------------------------------------------------------------
//  Small helpers for the messages the engine owns

static inline char *
qn_engine_strdup (const char *text)
{
    return strdup (text? text: "");
}

//  Replaces a string field of a message we own.  Fields start out as
//  protobuf-c's shared empty string, which must never be freed.
static inline void
qn_engine_replace_string (char **field, char *value)
{
    if (*field && *field != protobuf_c_empty_string)
        free (*field);
    *field = value;
}

//  Appends an element to a protobuf repeated field of pointers.
static inline void
qn_engine_append (void ***array, size_t *count, void *item)
{
    *array = realloc (*array, (*count + 1) * sizeof (void *));
    (*array) [(*count)++] = item;
}

//  Frees every message of a repeated field of a message we own, and empties it.
static inline void
qn_engine_free_repeated (void ***array, size_t *count)
{
    for (size_t i = 0; i < *count; i++)
        protobuf_c_message_free_unpacked ((ProtobufCMessage *) (*array) [i], NULL);
    free (*array);
    *array = NULL;
    *count = 0;
}

static inline Qanat__Label *
qn_engine_label_new (const char *key, const char *value)
{
    Qanat__Label *label = (Qanat__Label *) malloc (sizeof (Qanat__Label));
    qanat__label__init (label);
    label->key = qn_engine_strdup (key);
    label->value = qn_engine_strdup (value);
    return label;
}

static inline void
qn_engine_free_message (void *message)
{
    if (message)
        protobuf_c_message_free_unpacked ((ProtobufCMessage *) message, NULL);
}

//  ---------------------------------------------------------------------
//  What qn_coordinator.c offers the engine's other files (each is
//  described where it is defined).  Runs and agents stay the engine's;
//  the run record and its transitions are qn_run's (qn_run.h), the agent
//  records, routes, credit and liveness qn_fleet's (qn_fleet.h), the
//  agents' messages qn_agent_link's (qn_agent_link.h), the outbox, acks
//  and the turn's commit qn_turn's (qn_turn.h).

//  Sends a refusal now (it depends on no write).
void
    qn_engine_refuse (zsock_t *sock, zframe_t *routing_id, Qanat__RefusalCode code,
                      const char *message);

//  Refuses a peer on the wrong socket (a CLI on the agent socket, an
//  agent on the client one) and says which socket it wants
void
    qn_engine_refuse_wrong_socket (qn_coordinator_t *self, zsock_t *sock, zframe_t *routing_id,
                                   bool agents);
//  The loop reads every socket (on), or none (off: a pause).
void
    qn_engine_listen (qn_coordinator_t *self, bool on);

//  ---------------------------------------------------------------------
//  The HTTP side's sockets (qn_api_bridge.c)

//  Binds the request bridge's ROUTER and the notifications' PUB.  0, or
//  -1 with *error_p (malloc'd).
int
    qn_engine_bridge_bind (qn_coordinator_t *self, char **error_p);

//  Who sent a request on the bridge: the principal of its API token
//  (credential, the request's second frame).  Sets self->sender and
//  returns true, or refuses (REFUSAL_DENIED) and returns false.  Without
//  a keyring (--insecure) everyone is a local administrator.
bool
    qn_engine_bridge_identify (qn_coordinator_t *self, zframe_t *routing_id,
                               zframe_t *credential);

//  The reply function of the bridge's calls (sink: the routing id).
void
    qn_engine_bridge_reply (qn_api_call_t *call, Qanat__Reply *reply);

//  Unbinds and destroys the two sockets (an inproc endpoint is free again
//  at once, for the next engine of the process).
void
    qn_engine_bridge_close (qn_coordinator_t *self);

//  After a successful commit: publishes "run.<id>." for each run in
//  changed (run_t, duplicates allowed), then "runs." and "agents." when
//  the turn's flags say so, each once, and clears the flags.
void
    qn_engine_publish (qn_coordinator_t *self, zlistx_t *changed);

#endif
