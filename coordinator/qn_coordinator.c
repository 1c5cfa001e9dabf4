/*  qn_coordinator - the coordinator engine.  See qn_coordinator.h.

    Memory and store.  The store is the truth; the engine keeps the active
    runs (queued or running) in memory as full RunInfo messages, marks what
    a loop turn changed as dirty, and writes the dirty records in the turn's
    single write transaction.  Finished runs live only in the store.

    Durable before visible.  Everything a turn wants to send that depends
    on its writes (assignments, acknowledgements, client replies) waits in
    an outbox until the commit succeeded.  If a commit fails (disk full),
    the engine throws its memory away and reloads it from the store, tells
    every agent to register again (so each replays the events it has not
    seen acknowledged) and answers waiting clients with an error.

    Messages are hostile until decoded: a frame we cannot decode is counted,
    logged with the peer's identity, and dropped.
*/
#include "qn_coordinator.h"
#include "qn_dag.h"
#include "qn_hash.h"
#include "qn_keyring.h"
#include "qn_vault.h"
#include "qn_artifacts.h"
#include "qn_blobserver.h"
#include "qn_s3gc.h"
#include "qanat.h"
#include <math.h>

#define BATCH_MAX            8192       //  messages read per socket per turn, at most...
#define BATCH_MS             2          //  ...and for at most this long: one commit each
#define LOG_PAGE_DEFAULT     500
#define LOG_PAGE_MAX         1000
#define LIST_RUNS_MAX        10000
#define HISTORY_RUNS_MAX     1000

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
} agent_t;

typedef struct _qn_coordinator_t qn_coordinator_t;

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
} run_t;

//  A task waiting for an agent.
typedef struct {
    uint64_t run_id;
    uint32_t task;
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

struct _qn_coordinator_t {
    qn_coordinator_config_t config;
    char *data_dir;
    qn_store_t *store;
    zsock_t *agents_sock;
    zsock_t *clients_sock;
    char *agent_endpoint;
    char *client_endpoint;
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
};

//  A peer that sends this many malformed messages is cut off.
#define STRIKES_MAX  20

static void s_run_destroy (run_t **run_p);
static int s_reload (qn_coordinator_t *self, char **error_p);

//  ---------------------------------------------------------------------
//  Small helpers

static char *
s_strdup (const char *text)
{
    return strdup (text? text: "");
}

//  Replaces a string field of a message we own.  Fields start out as
//  protobuf-c's shared empty string, which must never be freed.
static void
s_replace_string (char **field, char *value)
{
    if (*field && *field != protobuf_c_empty_string)
        free (*field);
    *field = value;
}

static void
s_free_item (void **item)
{
    free (*item);
    *item = NULL;
}

static void
s_free_message (void *message)
{
    if (message)
        protobuf_c_message_free_unpacked ((ProtobufCMessage *) message, NULL);
}

static char *
s_run_key (uint64_t run_id)
{
    static char key [32];
    snprintf (key, sizeof key, "%llu", (unsigned long long) run_id);
    return key;
}

static char *
s_route_key (zframe_t *routing_id)
{
    return zframe_strhex (routing_id);
}

static Qanat__Label *
s_label_new (const char *key, const char *value)
{
    Qanat__Label *label = (Qanat__Label *) malloc (sizeof (Qanat__Label));
    qanat__label__init (label);
    label->key = s_strdup (key);
    label->value = s_strdup (value);
    return label;
}

//  Appends an element to a protobuf repeated field of pointers.
static void
s_append (void ***array, size_t *count, void *item)
{
    *array = realloc (*array, (*count + 1) * sizeof (void *));
    (*array) [(*count)++] = item;
}

//  Queues env for sending after the next successful commit.
//  An error reply to request_id, encoded.
static zframe_t *
s_error_frame (uint64_t request_id, const char *message)
{
    Qanat__Error error = QANAT__ERROR__INIT;
    error.message = (char *) message;
    Qanat__Reply reply = QANAT__REPLY__INIT;
    reply.id = request_id;
    reply.body_case = QANAT__REPLY__BODY_ERROR;
    reply.error = &error;
    Qanat__Envelope env = QANAT__ENVELOPE__INIT;
    env.body_case = QANAT__ENVELOPE__BODY_REPLY;
    env.reply = &reply;
    return qn_msg_encode (&env);
}

static void
s_post (qn_coordinator_t *self, zsock_t *sock, zframe_t *routing_id, Qanat__Envelope *env,
        uint64_t request_id)
{
    zframe_t *frame = qn_msg_encode (env);
    if (!frame && request_id)
        //  A reply over the message size limit: the client still gets an
        //  answer, and learns to ask for less.
        frame = s_error_frame (request_id, "the reply would be larger than 16 MiB: ask for "
                                           "less (a smaller --limit, one task, one metric)");
    if (!frame) {
        zsys_error ("cannot encode an outgoing message");
        return;
    }
    outgoing_t *out = (outgoing_t *) zmalloc (sizeof (outgoing_t));
    out->sock = sock;
    out->routing_id = zframe_dup (routing_id);
    out->frame = frame;
    out->request_id = request_id;
    zlistx_add_end (self->outbox, out);
}

static void
s_outgoing_destroy (outgoing_t **out_p)
{
    if (*out_p) {
        zframe_destroy (&(*out_p)->routing_id);
        zframe_destroy (&(*out_p)->frame);
        free (*out_p);
        *out_p = NULL;
    }
}

static void
s_send_now (zsock_t *sock, zframe_t *routing_id, Qanat__Envelope *env)
{
    qn_msg_send (sock, routing_id, env);
}

static void
s_refuse (zsock_t *sock, zframe_t *routing_id,
          Qanat__RefusalCode code, const char *message)
{
    Qanat__Refusal refusal = QANAT__REFUSAL__INIT;
    refusal.code = code;
    refusal.message = (char *) message;
    Qanat__Envelope env = QANAT__ENVELOPE__INIT;
    env.body_case = QANAT__ENVELOPE__BODY_REFUSAL;
    env.refusal = &refusal;
    s_send_now (sock, routing_id, &env);
}

static void
s_post_reply (qn_coordinator_t *self, zframe_t *routing_id, Qanat__Reply *reply)
{
    Qanat__Envelope env = QANAT__ENVELOPE__INIT;
    env.body_case = QANAT__ENVELOPE__BODY_REPLY;
    env.reply = reply;
    s_post (self, self->clients_sock, routing_id, &env, reply->id);
}

static void
s_post_error (qn_coordinator_t *self, zframe_t *routing_id, uint64_t request_id,
              const char *message)
{
    Qanat__Error error = QANAT__ERROR__INIT;
    error.message = (char *) message;
    Qanat__Reply reply = QANAT__REPLY__INIT;
    reply.id = request_id;
    reply.body_case = QANAT__REPLY__BODY_ERROR;
    reply.error = &error;
    s_post_reply (self, routing_id, &reply);
}

//  ---------------------------------------------------------------------
//  Agents

static void
s_agent_destroy (agent_t **agent_p)
{
    agent_t *agent = *agent_p;
    if (agent) {
        free (agent->name);
        zframe_destroy (&agent->routing_id);
        free (agent->route_key);
        s_free_message (agent->info);
        zhashx_destroy (&agent->attempts);
        zhashx_destroy (&agent->fetchable);
        free (agent);
        *agent_p = NULL;
    }
}

static void
s_agent_destructor (void **item)
{
    s_agent_destroy ((agent_t **) item);
}

static agent_t *
s_agent_new (const char *name)
{
    agent_t *agent = (agent_t *) zmalloc (sizeof (agent_t));
    agent->name = strdup (name);
    agent->info = (Qanat__AgentInfo *) malloc (sizeof (Qanat__AgentInfo));
    qanat__agent_info__init (agent->info);
    agent->info->name = strdup (name);
    agent->attempts = qn_hash_new ();
    agent->fetchable = qn_hash_new ();
    zhashx_set_destructor (agent->attempts, s_free_item);
    return agent;
}

//  Credit lives in the agent record; the set of agents with credit is
//  what dispatch walks.
static void
s_agent_set_credit (qn_coordinator_t *self, agent_t *agent, uint32_t credit)
{
    agent->info->credit = credit;
    if (credit && agent->routing_id)
        zhashx_update (self->with_credit, agent->name, agent);
    else
        zhashx_delete (self->with_credit, agent->name);
}

static void
s_agent_disconnect (qn_coordinator_t *self, agent_t *agent)
{
    if (self->blobserver)
        qn_blobserver_peer_gone (self->blobserver, agent->name);
    if (agent->route_key)
        zhashx_delete (self->by_route, agent->route_key);
    zstr_free (&agent->route_key);
    zframe_destroy (&agent->routing_id);
    agent->info->connected = false;
    s_agent_set_credit (self, agent, 0);
}

static bool
s_agent_matches (agent_t *agent, const qn_task_t *task)
{
    if (task->backend) {
        bool offered = false;
        for (size_t b = 0; b < agent->info->n_backends && !offered; b++)
            offered = streq (agent->info->backends [b], task->backend);
        if (!offered)
            return false;
    }
    for (size_t s = 0; s < task->selector_count; s++) {
        bool found = false;
        for (size_t l = 0; l < agent->info->n_labels && !found; l++)
            if (streq (agent->info->labels [l]->key, task->selector [s].key)
            &&  streq (agent->info->labels [l]->value, task->selector [s].value))
                found = true;
        if (!found)
            return false;
    }
    return true;
}

//  connected, suspect (silent past its grace: no new work), lost (silent
//  past its deadline: its attempts were retried), or disconnected (known
//  from the store, not seen since our start).
static const char *
s_agent_state (agent_t *agent, int64_t now)
{
    if (!agent->routing_id)
        return agent->lost? "lost": "disconnected";
    if (now - agent->last_seen > agent->info->suspect_after_ms)
        return "suspect";
    return "connected";
}

static void
s_agent_update_state (agent_t *agent, int64_t now)
{
    //  The state names are static strings: compare pointers, and copy
    //  into the record only on a change (this runs for every agent on
    //  every timer tick).
    const char *state = s_agent_state (agent, now);
    if (state != agent->state) {
        agent->state = state;
        s_replace_string (&agent->info->state, strdup (state));
    }
    agent->info->draining = agent->drained_by_admin || agent->drained_by_itself;
    agent->info->drained_by_admin = agent->drained_by_admin;
}

//  Why an agent that matches a task takes no new work, or NULL.
static const char *
s_agent_unavailable (agent_t *agent, int64_t now)
{
    if (agent->drained_by_admin || agent->drained_by_itself)
        return "draining";
    if (agent->info->spool_full)
        return "spool full";
    if (now - agent->last_seen > agent->info->suspect_after_ms)
        return "suspect";
    return NULL;
}

static void
s_agent_persist (qn_coordinator_t *self, agent_t *agent)
{
    if (qn_store_begin (self->store) == 0)
        qn_store_put_agent (self->store, agent->info);
}

//  ---------------------------------------------------------------------
//  Runs

static run_t *
s_run_find (qn_coordinator_t *self, uint64_t run_id)
{
    return (run_t *) zhashx_lookup (self->runs, s_run_key (run_id));
}

static void
s_run_destroy (run_t **run_p)
{
    run_t *run = *run_p;
    if (run) {
        qn_dag_destroy (&run->dag);
        qn_workflow_destroy (&run->wf);
        s_free_message (run->info);
        free (run->dirty_task);
        free (run->dirty_list);
        free (run->scratch);
        free (run);
        *run_p = NULL;
    }
}

static void
s_run_destructor (void **item)
{
    s_run_destroy ((run_t **) item);
}

static Qanat__TaskInfo *
s_task (run_t *run, size_t index)
{
    return run->info->tasks [index];
}

static Qanat__AttemptInfo *
s_current_attempt (Qanat__TaskInfo *task)
{
    return task->n_attempts? task->attempts [task->n_attempts - 1]: NULL;
}

static bool
s_task_warned (Qanat__TaskInfo *task)
{
    for (size_t c = 0; c < task->n_checks; c++)
        if (!task->checks [c]->passed && streq (task->checks [c]->severity, "warning"))
            return true;
    return false;
}

//  Check results belong to the latest attempt only.
static void
s_task_clear_checks (run_t *run, Qanat__TaskInfo *task)
{
    if (s_task_warned (task) && run->warnings)
        run->warnings--;
    for (size_t c = 0; c < task->n_checks; c++)
        s_free_message (task->checks [c]);
    free (task->checks);
    task->checks = NULL;
    task->n_checks = 0;
}

//  Records that the run's own record changed this turn.
static void
s_mark_run (run_t *run)
{
    run->dirty = true;
    if (!run->listed) {
        run->listed = true;
        zlistx_add_end (run->owner->dirty_runs, run);
    }
}

//  Records that a task's record changed this turn.
static void
s_mark_task (run_t *run, size_t index)
{
    if (!run->dirty_task [index]) {
        run->dirty_task [index] = true;
        run->dirty_list [run->dirty_count++] = index;
    }
    if (!run->listed) {
        run->listed = true;
        zlistx_add_end (run->owner->dirty_runs, run);
    }
}

static char *
s_attempt_key (uint64_t run_id, size_t task)
{
    return zsys_sprintf ("%llu:%zu", (unsigned long long) run_id, task);
}

//  Keeps each agent's set of running attempts in step with task statuses:
//  the set is what lost agents, reconciliation and slot counts read.
static void
s_track_running (run_t *run, size_t index, bool running)
{
    Qanat__AttemptInfo *attempt = s_current_attempt (s_task (run, index));
    agent_t *agent = attempt? (agent_t *) zhashx_lookup (run->owner->agents, attempt->agent): NULL;
    if (!agent)
        return;
    char *key = s_attempt_key (run->id, index);
    if (running) {
        ready_t *ref = (ready_t *) zmalloc (sizeof (ready_t));
        ref->run_id = run->id;
        ref->task = (uint32_t) index;
        zhashx_update (agent->attempts, key, ref);
    }
    else
        zhashx_delete (agent->attempts, key);
    zstr_free (&key);
    agent->info->running = (uint32_t) zhashx_size (agent->attempts);
}

static void
s_task_set_status (run_t *run, size_t index, Qanat__TaskStatus status)
{
    Qanat__TaskStatus old = s_task (run, index)->status;
    if (old == QANAT__TASK_STATUS__TASK_RUNNING && status != QANAT__TASK_STATUS__TASK_RUNNING)
        s_track_running (run, index, false);
    qn_dag_set_status (run->dag, index, status);
    s_task (run, index)->status = status;
    if (status == QANAT__TASK_STATUS__TASK_RUNNING && old != QANAT__TASK_STATUS__TASK_RUNNING)
        s_track_running (run, index, true);
    s_mark_task (run, index);
}

static char *
s_selector_key (const qn_task_t *spec)
{
    //  File order is fine: the same workflow always spells it the same way,
    //  and two spellings of one selector only cost a second queue.  The
    //  backend is part of what an agent must offer, so part of the key.
    size_t size = 2 + (spec->backend? strlen (spec->backend): 0);
    for (size_t s = 0; s < spec->selector_count; s++)
        size += strlen (spec->selector [s].key) + strlen (spec->selector [s].value) + 2;
    char *key = (char *) malloc (size);
    key [0] = 0;
    for (size_t s = 0; s < spec->selector_count; s++) {
        if (s)
            strcat (key, ",");
        strcat (key, spec->selector [s].key);
        strcat (key, "=");
        strcat (key, spec->selector [s].value);
    }
    if (spec->backend) {
        strcat (key, "@");
        strcat (key, spec->backend);
    }
    return key;
}

static void
s_ready_destructor (void **item)
{
    free (*item);
    *item = NULL;
}

//  Ready tasks wait in one queue per label selector, so that dispatch
//  looks at the queues agents can serve, never at every waiting task.
static void
s_queue_ready (qn_coordinator_t *self, run_t *run, size_t index)
{
    ready_t *ready = (ready_t *) zmalloc (sizeof (ready_t));
    ready->run_id = run->id;
    ready->task = (uint32_t) index;
    if (s_task (run, index)->retry_at_us > qn_now_us ()) {
        zlistx_add_end (self->delayed, ready);
        return;
    }
    char *key = s_selector_key (qn_workflow_task (run->wf, index));
    zlistx_t *queue = (zlistx_t *) zhashx_lookup (self->queues, key);
    if (!queue) {
        queue = zlistx_new ();
        zlistx_set_destructor (queue, s_ready_destructor);
        zhashx_insert (self->queues, key, queue);
    }
    free (key);
    zlistx_add_end (queue, ready);
}

//  Keeps the newest keep finished runs of a workflow: older ones go with
//  their tasks, logs and metrics, and blobs no run references any more.
static void
s_retain (qn_coordinator_t *self, const char *workflow, uint32_t keep)
{
    uint64_t *ids = NULL;
    size_t count = 0;
    if (qn_store_workflow_run_ids (self->store, workflow, &ids, &count) != 0 || count <= keep) {
        free (ids);
        return;
    }
    if (qn_store_begin (self->store) != 0) {
        free (ids);
        return;
    }
    size_t deleted = 0;
    //  Oldest first; runs still in memory (not finished) are never touched,
    //  and they count among the kept.
    size_t excess = count - keep;
    for (size_t i = 0; i < count && deleted < excess; i++) {
        if (zhashx_lookup (self->runs, s_run_key (ids [i])))
            continue;
        Qanat__TaskInfo **tasks = NULL;
        size_t task_count = 0;
        if (qn_store_get_tasks (self->store, ids [i], &tasks, &task_count) == 0) {
            qn_artifacts_release_tasks (self->artifacts, tasks, task_count);
            qn_store_free_array (tasks, task_count);
        }
        Qanat__RunInfo *info = qn_store_get_run (self->store, ids [i]);
        if (info) {
            qn_artifacts_ref_outputs (self->artifacts, info->artifacts, info->n_artifacts, -1);
            qanat__run_info__free_unpacked (info, NULL);
        }
        if (qn_store_delete_run (self->store, ids [i]) == 0)
            deleted++;
    }
    free (ids);
    //  Uploads of the last hour may belong to attempts still on their way
    int64_t now = zclock_mono ();
    zlistx_t *old = zlistx_new ();
    for (upload_t *upload = (upload_t *) zhashx_first (self->uploading); upload;
         upload = (upload_t *) zhashx_next (self->uploading))
        if (now - upload->when > 3600 * 1000)
            zlistx_add_end (old, (void *) zhashx_cursor (self->uploading));
    for (const char *hash = (const char *) zlistx_first (old); hash;
         hash = (const char *) zlistx_next (old))
        zhashx_delete (self->uploading, hash);
    zlistx_destroy (&old);
    uint64_t freed = qn_artifacts_collect (self->artifacts, self->uploading);
    self->s3_collect_due = self->s3_collect_due || deleted > 0;
    self->stats.runs_deleted += deleted;
    self->stats.blob_bytes_freed += freed;
    if (deleted && self->config.verbose)
        zsys_info ("retention: %zu run(s) of %s deleted, %llu blob bytes freed", deleted,
                   workflow, (unsigned long long) freed);
}

//  The task's argv with the run's parameters in place (see
//  qn_workflow_task_argv); NULL with *error_p when it cannot be made.
static char **
s_task_argv (run_t *run, const qn_task_t *spec, char **error_p)
{
    *error_p = NULL;
    qn_kv_t *params = (qn_kv_t *) calloc (run->info->n_params + 1, sizeof (qn_kv_t));
    if (!params)
        return NULL;
    for (size_t p = 0; p < run->info->n_params; p++) {
        params [p].key = run->info->params [p]->name;
        params [p].value = run->info->params [p]->value;
    }
    char **argv = qn_workflow_task_argv (spec, params, run->info->n_params, error_p);
    free (params);
    return argv;
}

//  The task's cache key: its command after parameters and its inputs'
//  hashes, with what else makes it the same work (qn_artifacts).
static int
s_cache_key (qn_coordinator_t *self, run_t *run, size_t index, char *key)
{
    const qn_task_t *spec = qn_workflow_task (run->wf, index);
    char *error = NULL;
    char **argv = s_task_argv (run, spec, &error);
    free (error);
    Qanat__InputSpec **inputs = NULL;
    size_t input_count = 0;
    int rc = argv? qn_artifacts_inputs (self->artifacts, spec, run->info, NULL, &inputs,
                                        &input_count, &error): -1;
    free (error);
    if (rc == 0)
        rc = qn_artifacts_cache_key (self->artifacts, run->info->workflow, spec, argv, inputs,
                                     input_count, key);
    qn_artifacts_free_inputs (inputs, input_count);
    for (size_t i = 0; argv && argv [i]; i++)
        free (argv [i]);
    free (argv);
    return rc;
}

//  A task with cache: true whose identical work succeeded before takes
//  that attempt's outputs instead of running.  True when it did.
static bool
s_try_cache (qn_coordinator_t *self, run_t *run, size_t index)
{
    const qn_task_t *spec = qn_workflow_task (run->wf, index);
    if (!spec->cache || run->info->no_cache)
        return false;
    char key [QN_ARTIFACTS_KEY_HEX + 1];
    uint64_t source_run = 0;
    Qanat__AttemptInfo *source = NULL;
    if (s_cache_key (self, run, index, key) != 0
    ||  qn_artifacts_cache_lookup (self->artifacts, key, &source_run, &source) != 1)
        return false;
    if (qn_store_begin (self->store) != 0) {
        qanat__attempt_info__free_unpacked (source, NULL);
        return false;
    }
    Qanat__TaskInfo *task = s_task (run, index);
    Qanat__AttemptInfo *attempt = (Qanat__AttemptInfo *) malloc (sizeof (Qanat__AttemptInfo));
    qanat__attempt_info__init (attempt);
    attempt->attempt = (uint32_t) task->n_attempts + 1;
    attempt->agent = s_strdup ("");
    attempt->started_us = attempt->finished_us = qn_now_us ();
    attempt->finished = true;
    attempt->end = s_strdup ("cached");
    attempt->reason = zsys_sprintf ("cached from run %llu", (unsigned long long) source_run);
    attempt->backend = s_strdup (source->backend);
    attempt->engine_job_id = s_strdup ("");
    attempt->environment = s_strdup (source->environment);
    attempt->host = s_strdup (source->host);
    //  The outputs move over, each blob gaining this run's reference
    attempt->outputs = source->outputs;
    attempt->n_outputs = source->n_outputs;
    source->outputs = NULL;
    source->n_outputs = 0;
    qanat__attempt_info__free_unpacked (source, NULL);
    qn_artifacts_ref_outputs (self->artifacts, attempt->outputs, attempt->n_outputs, 1);
    s_append ((void ***) &task->attempts, &task->n_attempts, attempt);
    task->cached_from = source_run;
    s_task_set_status (run, index, QANAT__TASK_STATUS__TASK_SUCCEEDED);
    if (self->config.verbose)
        zsys_info ("run %llu task %s cached from run %llu", (unsigned long long) run->id,
                   spec->name, (unsigned long long) source_run);
    return true;
}

//  Promotes tasks whose dependencies are done and queues them (or takes
//  their outputs from the cache).
static void
s_run_advance (qn_coordinator_t *self, run_t *run)
{
    size_t promoted = run->info->cancel_requested? 0: qn_dag_promote (run->dag, run->scratch);
    size_t cached = 0;
    for (size_t i = 0; i < promoted; i++) {
        size_t index = run->scratch [i];
        s_task (run, index)->status = QANAT__TASK_STATUS__TASK_QUEUED;
        s_mark_task (run, index);
        if (s_try_cache (self, run, index))
            cached++;
        else
            s_queue_ready (self, run, index);
    }
    if (cached) {
        //  Their dependents may be ready now
        s_run_advance (self, run);
        return;
    }
    Qanat__RunStatus status = qn_dag_run_status (run->dag, run->info->cancel_requested,
                                                 run->warnings > 0);
    if (status != run->info->status) {
        run->info->status = status;
        s_mark_run (run);
        if (qn_dag_finished (run->dag)) {
            run->info->finished_us = qn_now_us ();
            if (self->config.verbose)
                zsys_info ("run %llu %s", (unsigned long long) run->id, qn_run_status_name (status));
        }
    }
}

//  Builds the in-memory run from a parsed workflow.
static run_t *
s_run_alloc (qn_coordinator_t *self, uint64_t run_id, qn_workflow_t *wf)
{
    run_t *run = (run_t *) zmalloc (sizeof (run_t));
    run->id = run_id;
    run->owner = self;
    run->wf = wf;
    run->dag = qn_dag_new (wf);
    size_t count = qn_workflow_task_count (wf) + 1;
    run->dirty_task = (bool *) calloc (count, sizeof (bool));
    run->dirty_list = (size_t *) calloc (count, sizeof (size_t));
    run->scratch = (size_t *) calloc (count, sizeof (size_t));
    if (!run->dag || !run->dirty_task || !run->dirty_list || !run->scratch) {
        run->wf = NULL;                 //  the caller still owns it
        s_run_destroy (&run);
    }
    return run;
}

static run_t *
s_run_new (qn_coordinator_t *self, uint64_t run_id, qn_workflow_t *wf, uint32_t version,
           const char *filename, const qn_kv_t *params, size_t param_count)
{
    run_t *run = s_run_alloc (self, run_id, wf);
    if (!run)
        return NULL;
    size_t count = qn_workflow_task_count (wf);
    Qanat__RunInfo *info = (Qanat__RunInfo *) malloc (sizeof (Qanat__RunInfo));
    qanat__run_info__init (info);
    info->run_id = run_id;
    info->workflow = s_strdup (qn_workflow_name (wf));
    info->version = version;
    info->filename = s_strdup (filename);
    info->status = QANAT__RUN_STATUS__RUN_QUEUED;
    info->created_us = qn_now_us ();
    for (size_t p = 0; p < param_count; p++) {
        Qanat__Param *param = (Qanat__Param *) malloc (sizeof (Qanat__Param));
        qanat__param__init (param);
        param->name = s_strdup (params [p].key);
        param->value = s_strdup (params [p].value);
        s_append ((void ***) &info->params, &info->n_params, param);
    }
    info->tasks = (Qanat__TaskInfo **) calloc (count + 1, sizeof (Qanat__TaskInfo *));
    for (size_t t = 0; t < count; t++) {
        const qn_task_t *spec = qn_workflow_task (wf, t);
        Qanat__TaskInfo *task = (Qanat__TaskInfo *) malloc (sizeof (Qanat__TaskInfo));
        qanat__task_info__init (task);
        task->index = (uint32_t) t;
        task->name = s_strdup (spec->name);
        for (size_t n = 0; n < spec->needs_count; n++)
            s_append ((void ***) &task->needs, &task->n_needs, s_strdup (spec->needs [n]));
        for (size_t s = 0; s < spec->selector_count; s++)
            s_append ((void ***) &task->selector, &task->n_selector,
                      s_label_new (spec->selector [s].key, spec->selector [s].value));
        info->tasks [info->n_tasks++] = task;
    }
    run->info = info;
    for (size_t t = 0; t < count; t++)
        s_mark_task (run, t);
    s_mark_run (run);
    return run;
}

//  Writes the run's dirty records into the open transaction.
static int
s_run_persist (qn_coordinator_t *self, run_t *run)
{
    if (qn_store_begin (self->store))
        return -1;
    if (run->dirty) {
        if (qn_store_put_run (self->store, run->info))
            return -1;
        run->dirty = false;
    }
    for (size_t i = 0; i < run->dirty_count; i++) {
        size_t t = run->dirty_list [i];
        if (qn_store_put_task (self->store, run->id, s_task (run, t)))
            return -1;
        run->dirty_task [t] = false;
    }
    run->dirty_count = 0;
    run->listed = false;
    return 0;
}

//  Ends the current attempt of a task and decides what follows: another
//  attempt (retries left), or failure and the skipping of dependents.
static agent_t *
s_agent_of (qn_coordinator_t *self, Qanat__AttemptInfo *attempt)
{
    return attempt? (agent_t *) zhashx_lookup (self->agents, attempt->agent): NULL;
}

static unsigned
s_retry_flag (const char *end)
{
    if (streq (end, "timeout"))
        return QN_RETRY_ON_TIMEOUT;
    if (streq (end, "agent_lost") || streq (end, "start"))
        return QN_RETRY_ON_AGENT_LOST;
    if (streq (end, "check"))
        return QN_RETRY_ON_CHECK;
    if (streq (end, "exit"))
        return QN_RETRY_ON_EXIT;
    return 0;                               //  canceled: never retried
}

//  Exponential backoff with +-20% jitter, so that tasks failing together
//  do not come back together.
static int64_t
s_retry_delay_us (const qn_task_t *spec, size_t attempts)
{
    double delay = spec->retry_delay_s;
    for (size_t i = 1; i < attempts && delay < spec->retry_max_delay_s; i++)
        delay *= 2;
    if (delay > spec->retry_max_delay_s)
        delay = spec->retry_max_delay_s;
    delay *= 0.8 + 0.4 * ((double) randof (1000) / 1000.0);
    return (int64_t) (delay * 1e6);
}

//  Ends the current attempt of a task and decides what follows: another
//  attempt, if retries are left and the task retries this kind of ending,
//  or failure and the skipping of dependents.  end is one of exit,
//  timeout, canceled, agent_lost, check, start.
static void
s_task_attempt_failed (qn_coordinator_t *self, run_t *run, size_t index, const char *reason,
                       const char *end)
{
    Qanat__TaskInfo *task = s_task (run, index);
    Qanat__AttemptInfo *attempt = s_current_attempt (task);
    if (attempt && !attempt->finished) {
        attempt->finished = true;
        attempt->finished_us = qn_now_us ();
        s_replace_string (&attempt->reason, s_strdup (reason));
    }
    if (attempt)
        s_replace_string (&attempt->end, s_strdup (end));
    const qn_task_t *spec = qn_workflow_task (run->wf, index);
    if (!run->info->cancel_requested && task->n_attempts <= spec->retries
    &&  (spec->retry_on & s_retry_flag (end))) {
        int64_t delay = s_retry_delay_us (spec, task->n_attempts);
        task->retry_at_us = qn_now_us () + delay;
        s_replace_string (&task->waiting_reason,
                          zsys_sprintf ("retry %zu of %u in %.1fs, after: %s", task->n_attempts,
                                        spec->retries, delay / 1e6, reason));
        s_task_set_status (run, index, QANAT__TASK_STATUS__TASK_QUEUED);
        s_queue_ready (self, run, index);
    }
    else {
        s_task_set_status (run, index, QANAT__TASK_STATUS__TASK_FAILED);
        size_t *changed = run->scratch;
        size_t count = qn_dag_skip_dependents (run->dag, index, changed);
        for (size_t i = 0; i < count; i++) {
            s_task (run, changed [i])->status = QANAT__TASK_STATUS__TASK_SKIPPED;
            s_replace_string (&s_task (run, changed [i])->waiting_reason,
                              zsys_sprintf ("skipped: %s failed", spec->name));
            s_mark_task (run, changed [i]);
        }
    }
    s_mark_task (run, index);
    s_run_advance (self, run);
}

static void
s_post_cancel (qn_coordinator_t *self, agent_t *agent, uint64_t run_id, uint32_t task,
               uint32_t attempt, const char *reason)
{
    if (!agent || !agent->routing_id)
        return;
    Qanat__AttemptRef ref = QANAT__ATTEMPT_REF__INIT;
    ref.run_id = run_id;
    ref.task_index = task;
    ref.attempt = attempt;
    Qanat__Cancel cancel = QANAT__CANCEL__INIT;
    cancel.attempt = &ref;
    cancel.reason = (char *) reason;
    Qanat__Envelope env = QANAT__ENVELOPE__INIT;
    env.body_case = QANAT__ENVELOPE__BODY_CANCEL;
    env.cancel = &cancel;
    s_post (self, self->agents_sock, agent->routing_id, &env, 0);
}

//  ---------------------------------------------------------------------
//  Dispatch: match ready tasks to agents with credit and matching labels.

static char *
s_selector_text (const qn_task_t *spec)
{
    if (spec->selector_count == 0 && !spec->backend)
        return strdup ("any agent");
    size_t size = 64 + (spec->backend? strlen (spec->backend): 0);
    for (size_t s = 0; s < spec->selector_count; s++)
        size += strlen (spec->selector [s].key) + strlen (spec->selector [s].value) + 2;
    char *text = (char *) malloc (size);
    strcpy (text, spec->selector_count? "an agent with ": "an agent");
    for (size_t s = 0; s < spec->selector_count; s++) {
        if (s)
            strcat (text, ",");
        strcat (text, spec->selector [s].key);
        strcat (text, "=");
        strcat (text, spec->selector [s].value);
    }
    if (spec->backend) {
        strcat (text, spec->selector_count? " and backend ": " with backend ");
        strcat (text, spec->backend);
    }
    return text;
}

//  Why a queued task has not started, worked out when someone asks
//  rather than on every dispatch.
static char *
s_waiting_reason (qn_coordinator_t *self, const qn_task_t *spec)
{
    int64_t now = zclock_mono ();
    size_t matching = 0;
    const char *unavailable = NULL;
    for (agent_t *agent = (agent_t *) zhashx_first (self->agents); agent;
         agent = (agent_t *) zhashx_next (self->agents)) {
        if (!agent->routing_id || !s_agent_matches (agent, spec))
            continue;
        matching++;
        const char *why = s_agent_unavailable (agent, now);
        if (why)
            unavailable = why;
    }
    char *selector = s_selector_text (spec);
    char *reason = matching
        ? zsys_sprintf ("waiting for a free slot on %s (%zu connected, all busy%s%s)", selector,
                        matching, unavailable? " or ": "", unavailable? unavailable: "")
        : zsys_sprintf ("waiting for %s", selector);
    free (selector);
    return reason;
}

static void
s_explain_waiting (qn_coordinator_t *self, run_t *run)
{
    int64_t wall = qn_now_us ();
    for (size_t t = 0; t < run->info->n_tasks; t++) {
        Qanat__TaskInfo *task = s_task (run, t);
        if (task->status == QANAT__TASK_STATUS__TASK_QUEUED && task->retry_at_us <= wall)
            s_replace_string (&task->waiting_reason,
                              s_waiting_reason (self, qn_workflow_task (run->wf, t)));
    }
}

//  The task's env with ${{ secrets.NAME }} resolved; the values used go
//  to redact.  NULL with *error_p when a secret cannot be given.
static Qanat__Label **
s_task_env (qn_coordinator_t *self, const qn_task_t *spec, zlistx_t *redact, char **error_p)
{
    Qanat__Label **env = (Qanat__Label **) calloc (spec->env_count + 1, sizeof (Qanat__Label *));
    for (size_t e = 0; e < spec->env_count; e++) {
        const char *value = spec->env [e].value;
        char *expanded = NULL;
        if (strstr (value, "${{")) {
            if (!self->keyring) {
                *error_p = strdup ("secrets are only given out over CURVE: this coordinator "
                                   "runs --insecure");
            }
            else
                expanded = qn_vault_expand (self->vault, value, redact, error_p);
            if (!expanded) {
                for (size_t i = 0; i < e; i++)
                    s_free_message (env [i]);
                free (env);
                return NULL;
            }
        }
        env [e] = s_label_new (spec->env [e].key, expanded? expanded: value);
        free (expanded);
    }
    return env;
}

//  A task that cannot even be handed out (a secret is missing) fails
//  without an attempt, and without retries: nothing would change.
static void
s_fail_unstartable (qn_coordinator_t *self, run_t *run, size_t index, const char *reason)
{
    Qanat__TaskInfo *task = s_task (run, index);
    s_replace_string (&task->waiting_reason, zsys_sprintf ("cannot start: %s", reason));
    s_task_set_status (run, index, QANAT__TASK_STATUS__TASK_FAILED);
    size_t count = qn_dag_skip_dependents (run->dag, index, run->scratch);
    for (size_t i = 0; i < count; i++) {
        s_task (run, run->scratch [i])->status = QANAT__TASK_STATUS__TASK_SKIPPED;
        s_replace_string (&s_task (run, run->scratch [i])->waiting_reason,
                          zsys_sprintf ("skipped: %s failed", task->name));
        s_mark_task (run, run->scratch [i]);
    }
    s_run_advance (self, run);
}

//  An assignment message and what it owns.
typedef struct {
    Qanat__AttemptRef ref;
    Qanat__Assign assign;
    zlistx_t *redact;
    Qanat__ArtifactStore store;
} assignment_t;

static void
s_assignment_free (assignment_t *self)
{
    for (size_t i = 0; self->assign.argv && i < self->assign.n_argv; i++)
        free (self->assign.argv [i]);
    free (self->assign.argv);
    for (size_t i = 0; i < self->assign.n_env; i++)
        s_free_message (self->assign.env [i]);
    free (self->assign.env);
    for (size_t i = 0; i < self->assign.n_backend_options; i++)
        s_free_message (self->assign.backend_options [i]);
    free (self->assign.backend_options);
    free (self->assign.redact);
    zlistx_destroy (&self->redact);
    qn_artifacts_free_inputs (self->assign.inputs, self->assign.n_inputs);
    for (size_t i = 0; i < self->assign.n_outputs; i++)
        free (self->assign.outputs [i]);
    free (self->assign.outputs);
}

//  Builds attempt attempt_no of task index: argv, an environment that
//  tells the task who it is, its secrets' values to redact, its backend
//  and options.  -1 with *error_p (malloc'd) when a secret it names is
//  not there.
static int
s_assignment_build (qn_coordinator_t *self, run_t *run, size_t index, uint32_t attempt_no,
                    assignment_t *out, zhashx_t *fetchable, char **error_p)
{
    const qn_task_t *spec = qn_workflow_task (run->wf, index);
    memset (out, 0, sizeof (*out));
    out->redact = zlistx_new ();
    zlistx_set_destructor (out->redact, (zlistx_destructor_fn *) zstr_free);
    zlistx_set_duplicator (out->redact, (zlistx_duplicator_fn *) strdup);
    Qanat__Label **task_env = s_task_env (self, spec, out->redact, error_p);
    if (!task_env) {
        zlistx_destroy (&out->redact);
        return -1;
    }
    qanat__attempt_ref__init (&out->ref);
    out->ref.run_id = run->id;
    out->ref.task_index = (uint32_t) index;
    out->ref.attempt = attempt_no;
    Qanat__Assign *assign = &out->assign;
    qanat__assign__init (assign);
    assign->attempt = &out->ref;
    assign->task_name = spec->name;
    assign->workflow = run->info->workflow;
    char *argv_error = NULL;
    assign->argv = s_task_argv (run, spec, &argv_error);
    if (!assign->argv) {
        *error_p = argv_error? argv_error: strdup ("out of memory");
        for (size_t e = 0; e < spec->env_count; e++)
            s_free_message (task_env [e]);
        free (task_env);
        zlistx_destroy (&out->redact);
        return -1;
    }
    assign->n_argv = spec->argc;
    assign->timeout_s = spec->timeout_s;
    assign->cpus = spec->cpus;
    assign->memory_mb = spec->memory_mb;
    assign->gpus = spec->gpus;
    assign->backend = spec->backend? spec->backend: (char *) "";
    size_t env_count = 3 + run->info->n_params + spec->env_count;
    Qanat__Label **env = (Qanat__Label **) calloc (env_count, sizeof (Qanat__Label *));
    size_t n = 0;
    char number [32];
    snprintf (number, sizeof number, "%llu", (unsigned long long) run->id);
    env [n++] = s_label_new ("QANAT_RUN_ID", number);
    env [n++] = s_label_new ("QANAT_TASK", spec->name);
    snprintf (number, sizeof number, "%u", attempt_no);
    env [n++] = s_label_new ("QANAT_ATTEMPT", number);
    for (size_t p = 0; p < run->info->n_params; p++) {
        char *name = zsys_sprintf ("QANAT_PARAM_%s", run->info->params [p]->name);
        for (char *c = name; *c; c++)
            *c = isalnum ((unsigned char) *c)? (char) toupper ((unsigned char) *c): '_';
        env [n++] = s_label_new (name, run->info->params [p]->value);
        zstr_free (&name);
    }
    for (size_t e = 0; e < spec->env_count; e++)
        env [n++] = task_env [e];
    free (task_env);
    assign->env = env;
    assign->n_env = n;
    if (spec->backend_option_count) {
        assign->backend_options = (Qanat__Label **) calloc (spec->backend_option_count,
                                                            sizeof (Qanat__Label *));
        for (size_t o = 0; o < spec->backend_option_count; o++)
            assign->backend_options [o] = s_label_new (spec->backend_options [o].key,
                                                       spec->backend_options [o].value);
        assign->n_backend_options = spec->backend_option_count;
    }
    //  Artifacts: what to stage, what to collect, where blobs go
    if (qn_artifacts_inputs (self->artifacts, spec, run->info, fetchable, &assign->inputs,
                             &assign->n_inputs, error_p) == -1) {
        assign->redact = NULL;
        s_assignment_free (out);
        return -1;
    }
    if (spec->output_count) {
        assign->outputs = (Qanat__OutputSpec **) calloc (spec->output_count, sizeof (void *));
        for (size_t o = 0; assign->outputs && o < spec->output_count; o++) {
            Qanat__OutputSpec *output = (Qanat__OutputSpec *) malloc (sizeof (Qanat__OutputSpec));
            qanat__output_spec__init (output);
            output->name = spec->outputs [o].name;
            output->path = spec->outputs [o].path? spec->outputs [o].path: (char *) "";
            output->value = spec->outputs [o].value;
            assign->outputs [assign->n_outputs++] = output;
        }
    }
    //  A store the workflow names, even the coordinator's, wins over the
    //  one an agent's environment has (qanat-agent --artifact-store)
    const qn_artifact_store_t *store = qn_workflow_artifact_store (run->wf);
    if (store->kind && streq (store->kind, "coordinator")) {
        qanat__artifact_store__init (&out->store);
        out->store.kind = store->kind;
        assign->store = &out->store;
    }
    else
    if (store->kind && streq (store->kind, "s3")) {
        qanat__artifact_store__init (&out->store);
        out->store.kind = store->kind;
        out->store.bucket = store->bucket? store->bucket: (char *) "";
        out->store.prefix = store->prefix? store->prefix: (char *) "";
        out->store.endpoint = store->endpoint? store->endpoint: (char *) "";
        out->store.region = store->region? store->region: (char *) "";
        out->store.path_style = store->path_style;
        assign->store = &out->store;
    }
    size_t redact_count = zlistx_size (out->redact);
    char **values = (char **) calloc (redact_count + 1, sizeof (char *));
    size_t r = 0;
    for (char *value = (char *) zlistx_first (out->redact); value;
         value = (char *) zlistx_next (out->redact))
        values [r++] = value;
    assign->redact = values;
    assign->n_redact = r;
    return 0;
}

//  The agent's "env" label: the environment `qanat status` shows.
static const char *
s_agent_environment (agent_t *agent)
{
    for (size_t l = 0; l < agent->info->n_labels; l++)
        if (streq (agent->info->labels [l]->key, "env"))
            return agent->info->labels [l]->value;
    return "";
}

static bool
s_assign (qn_coordinator_t *self, run_t *run, size_t index, agent_t *agent)
{
    const qn_task_t *spec = qn_workflow_task (run->wf, index);
    Qanat__TaskInfo *task = s_task (run, index);
    char *error = NULL;
    assignment_t assignment;
    if (s_assignment_build (self, run, index, (uint32_t) task->n_attempts + 1,
                            &assignment, agent->fetchable, &error) == -1) {
        s_fail_unstartable (self, run, index, error);
        free (error);
        return false;
    }
    Qanat__AttemptInfo *attempt = (Qanat__AttemptInfo *) malloc (sizeof (Qanat__AttemptInfo));
    qanat__attempt_info__init (attempt);
    attempt->attempt = (uint32_t) task->n_attempts + 1;
    attempt->agent = s_strdup (agent->name);
    attempt->started_us = qn_now_us ();
    attempt->environment = s_strdup (s_agent_environment (agent));
    attempt->backend = s_strdup (spec->backend? spec->backend
                               : agent->info->n_backends? agent->info->backends [0]: "");
    s_append ((void ***) &task->attempts, &task->n_attempts, attempt);
    s_replace_string (&task->waiting_reason, s_strdup (""));
    s_task_clear_checks (run, task);
    task->retry_at_us = 0;
    s_task_set_status (run, index, QANAT__TASK_STATUS__TASK_RUNNING);
    s_agent_set_credit (self, agent, agent->info->credit - 1);
    s_run_advance (self, run);

    Qanat__Envelope envelope = QANAT__ENVELOPE__INIT;
    envelope.body_case = QANAT__ENVELOPE__BODY_ASSIGN;
    envelope.assign = &assignment.assign;
    s_post (self, self->agents_sock, agent->routing_id, &envelope, 0);
    s_assignment_free (&assignment);
    if (self->config.verbose)
        zsys_info ("run %llu task %s attempt %u -> agent %s", (unsigned long long) run->id,
                   spec->name, attempt->attempt, agent->name);
    return true;
}

//  One pass over the ready list.  Each task goes to the connected,
//  matching agent with the most free credit; a task that cannot be placed
//  stays in the list with the reason recorded for `qanat status`.
static void
s_dispatch (qn_coordinator_t *self)
{
    if (zhashx_size (self->with_credit) == 0)
        return;
    int64_t now = zclock_mono ();
    for (zlistx_t *queue = (zlistx_t *) zhashx_first (self->queues); queue;
         queue = (zlistx_t *) zhashx_next (self->queues)) {
        if (zlistx_size (queue) == 0)
            continue;
        //  The agents that can serve this queue now.
        const qn_task_t *spec = NULL;
        zlistx_t *candidates = zlistx_new ();
        ready_t *ready = (ready_t *) zlistx_first (queue);
        while (ready) {
            run_t *run = s_run_find (self, ready->run_id);
            if (run && qn_dag_status (run->dag, ready->task) == QANAT__TASK_STATUS__TASK_QUEUED) {
                spec = qn_workflow_task (run->wf, ready->task);
                break;
            }
            zlistx_delete (queue, zlistx_cursor (queue));       //  canceled or gone
            ready = (ready_t *) zlistx_first (queue);
        }
        if (spec)
            for (agent_t *agent = (agent_t *) zhashx_first (self->with_credit); agent;
                 agent = (agent_t *) zhashx_next (self->with_credit))
                if (s_agent_matches (agent, spec) && !s_agent_unavailable (agent, now))
                    zlistx_add_end (candidates, agent);
        //  Hand out tasks in order, each to the candidate with most credit
        //  left, which spreads work across agents.
        while (zlistx_size (candidates) && (ready = (ready_t *) zlistx_first (queue))) {
            void *handle = zlistx_cursor (queue);
            run_t *run = s_run_find (self, ready->run_id);
            if (run && qn_dag_status (run->dag, ready->task) == QANAT__TASK_STATUS__TASK_QUEUED) {
                void *best_handle = NULL;
                agent_t *best = NULL;
                for (agent_t *agent = (agent_t *) zlistx_first (candidates); agent;
                     agent = (agent_t *) zlistx_next (candidates))
                    if (!best || agent->info->credit > best->info->credit) {
                        best = agent;
                        best_handle = zlistx_cursor (candidates);
                    }
                if (s_assign (self, run, ready->task, best) && best->info->credit == 0)
                    zlistx_delete (candidates, best_handle);
            }
            zlistx_delete (queue, handle);
        }
        zlistx_destroy (&candidates);
    }
}

//  ---------------------------------------------------------------------
//  Agent messages

//  Welcome carries the assignments of the unfinished attempts the agent
//  holds and we still count as current, so that a restarted agent can
//  take back engine jobs that outlived it, with their redactions.
static void
s_post_welcome (qn_coordinator_t *self, agent_t *agent, Qanat__Register *reg)
{
    Qanat__Welcome welcome = QANAT__WELCOME__INIT;
    welcome.agent_name = agent->name;
    welcome.heartbeat_ms = agent->info->heartbeat_ms;
    welcome.suspect_after_ms = agent->info->suspect_after_ms;
    welcome.lost_after_ms = agent->info->lost_after_ms;
    size_t held = 0;
    assignment_t *assignments = reg->n_running?
        (assignment_t *) calloc (reg->n_running, sizeof (assignment_t)): NULL;
    Qanat__Assign **held_ptrs = reg->n_running?
        (Qanat__Assign **) calloc (reg->n_running, sizeof (Qanat__Assign *)): NULL;
    for (size_t i = 0; assignments && held_ptrs && i < reg->n_running; i++) {
        Qanat__AttemptRef *ref = reg->running [i];
        run_t *run = s_run_find (self, ref->run_id);
        Qanat__TaskInfo *task = run && ref->task_index < run->info->n_tasks?
                                s_task (run, ref->task_index): NULL;
        Qanat__AttemptInfo *attempt = task? s_current_attempt (task): NULL;
        if (!attempt || attempt->attempt != ref->attempt || attempt->finished
        ||  task->status != QANAT__TASK_STATUS__TASK_RUNNING || !streq (attempt->agent, agent->name))
            continue;
        char *error = NULL;
        if (s_assignment_build (self, run, ref->task_index, ref->attempt,
                                &assignments [held], agent->fetchable, &error) == -1) {
            free (error);
            continue;
        }
        held_ptrs [held] = &assignments [held].assign;
        held++;
    }
    welcome.held = held_ptrs;
    welcome.n_held = held;
    Qanat__Envelope env = QANAT__ENVELOPE__INIT;
    env.body_case = QANAT__ENVELOPE__BODY_WELCOME;
    env.welcome = &welcome;
    s_post (self, self->agents_sock, agent->routing_id, &env, 0);
    for (size_t i = 0; i < held; i++)
        s_assignment_free (&assignments [i]);
    free (assignments);
    free (held_ptrs);
}

static bool
s_reported (Qanat__Register *reg, uint64_t run_id, uint32_t task, uint32_t attempt)
{
    for (size_t i = 0; i < reg->n_running; i++)
        if (reg->running [i]->run_id == run_id && reg->running [i]->task_index == task
        &&  reg->running [i]->attempt == attempt)
            return true;
    return false;
}

//  An agent (re)registers.  Its report of the attempts it still runs is
//  reconciled with ours: attempts we consider current continue; attempts
//  it runs that are no longer current are killed; attempts we believe it
//  runs but it does not know of have been lost with its previous life.
static void
s_handle_register (qn_coordinator_t *self, zframe_t *routing_id, Qanat__Register *reg)
{
    if (!reg->name || !*reg->name || strlen (reg->name) > 128) {
        s_refuse (self->agents_sock, routing_id, QANAT__REFUSAL_CODE__REFUSAL_BAD_REQUEST,
                  "register: the agent name must be 1 to 128 characters");
        return;
    }
    //  With CURVE an agent is who its key says, with the labels it was
    //  granted at enrolment, whatever it claims.
    Qanat__Label **labels = reg->labels;
    size_t label_count = reg->n_labels;
    if (self->sender) {
        if (!streq (self->sender->name, reg->name)) {
            self->stats.denied++;
            char *message = zsys_sprintf ("this key belongs to agent '%s', not '%s'",
                                          self->sender->name, reg->name);
            s_refuse (self->agents_sock, routing_id, QANAT__REFUSAL_CODE__REFUSAL_DENIED, message);
            free (message);
            return;
        }
        labels = self->sender->labels;
        label_count = self->sender->n_labels;
    }
    agent_t *agent = (agent_t *) zhashx_lookup (self->agents, reg->name);
    if (!agent) {
        agent = s_agent_new (reg->name);
        zhashx_insert (self->agents, agent->name, agent);
    }
    else
        s_agent_disconnect (self, agent);
    //  A connection that registers under a new name leaves its old one.
    char *route_key = s_route_key (routing_id);
    agent_t *previous = (agent_t *) zhashx_lookup (self->by_route, route_key);
    if (previous && previous != agent)
        s_agent_disconnect (self, previous);
    agent->routing_id = zframe_dup (routing_id);
    agent->route_key = route_key;
    zhashx_insert (self->by_route, route_key, agent);
    agent->last_seen = zclock_mono ();

    Qanat__AgentInfo *info = agent->info;
    for (size_t i = 0; i < info->n_labels; i++)
        s_free_message (info->labels [i]);
    free (info->labels);
    info->labels = NULL;
    info->n_labels = 0;
    for (size_t i = 0; i < label_count; i++)
        s_append ((void ***) &info->labels, &info->n_labels,
                  s_label_new (labels [i]->key, labels [i]->value));
    for (size_t i = 0; i < info->n_backends; i++)
        free (info->backends [i]);
    free (info->backends);
    info->backends = NULL;
    info->n_backends = 0;
    for (size_t i = 0; i < reg->n_backends; i++)
        s_append ((void ***) &info->backends, &info->n_backends, s_strdup (reg->backends [i]));
    info->capacity = reg->capacity;
    s_agent_set_credit (self, agent, 0);
    info->connected = true;
    info->last_seen_us = qn_now_us ();
    agent->lost = false;
    agent->drained_by_itself = reg->draining;
    //  The agent's own timer profile, within sane bounds, else ours.
    uint32_t lost_after = reg->lost_after_ms? reg->lost_after_ms: self->config.lost_after_ms;
    uint32_t suspect_after = reg->suspect_after_ms? reg->suspect_after_ms: self->config.suspect_after_ms;
    uint32_t heartbeat = reg->heartbeat_ms? reg->heartbeat_ms: self->config.heartbeat_ms;
    if (heartbeat < 10)
        heartbeat = 10;
    if (heartbeat > 3600000)
        heartbeat = 3600000;
    if (suspect_after < 2 * heartbeat)
        suspect_after = 2 * heartbeat;
    if (lost_after < suspect_after)
        lost_after = suspect_after;
    info->heartbeat_ms = heartbeat;
    info->suspect_after_ms = suspect_after;
    info->lost_after_ms = lost_after;
    info->spool_full = false;
    s_agent_update_state (agent, zclock_mono ());

    //  Reconcile what we believe it runs with what it reports.
    zlistx_t *gone = zlistx_new ();
    for (ready_t *ref = (ready_t *) zhashx_first (agent->attempts); ref;
         ref = (ready_t *) zhashx_next (agent->attempts)) {
        run_t *run = s_run_find (self, ref->run_id);
        Qanat__AttemptInfo *attempt = run? s_current_attempt (s_task (run, ref->task)): NULL;
        if (!attempt || !s_reported (reg, ref->run_id, ref->task, attempt->attempt))
            zlistx_add_end (gone, ref);
    }
    for (ready_t *ref = (ready_t *) zlistx_first (gone); ref; ref = (ready_t *) zlistx_next (gone)) {
        run_t *run = s_run_find (self, ref->run_id);
        if (run)
            s_task_attempt_failed (self, run, ref->task, "agent lost: it does not hold this attempt",
                                   "agent_lost");
        else {
            char *key = s_attempt_key (ref->run_id, ref->task);
            zhashx_delete (agent->attempts, key);
            zstr_free (&key);
        }
    }
    zlistx_destroy (&gone);
    info->running = (uint32_t) zhashx_size (agent->attempts);
    for (size_t i = 0; i < reg->n_running; i++) {
        Qanat__AttemptRef *ref = reg->running [i];
        run_t *run = s_run_find (self, ref->run_id);
        Qanat__TaskInfo *task = run && ref->task_index < run->info->n_tasks?
                                s_task (run, ref->task_index): NULL;
        Qanat__AttemptInfo *attempt = task? s_current_attempt (task): NULL;
        bool current = attempt && attempt->attempt == ref->attempt
                    && task->status == QANAT__TASK_STATUS__TASK_RUNNING
                    && streq (attempt->agent, agent->name);
        if (!current)
            s_post_cancel (self, agent, ref->run_id, ref->task_index, ref->attempt,
                           "this attempt is no longer current");
    }
    s_agent_persist (self, agent);
    s_post_welcome (self, agent, reg);
    zsys_info ("agent %s registered (%zu labels, %u slots, %u attempts running)",
               agent->name, info->n_labels, info->capacity, info->running);
}

//  Acknowledgements are coalesced per attempt and connection: one Ack
//  with the highest seq per loop turn, sent after the turn's commit.
static void
s_post_ack (qn_coordinator_t *self, agent_t *agent, Qanat__AttemptRef *ref, uint64_t seq)
{
    char key [160];
    snprintf (key, sizeof key, "%s|%llu:%u:%u", agent->route_key, (unsigned long long) ref->run_id,
              ref->task_index, ref->attempt);
    pending_ack_t *pending = (pending_ack_t *) zhashx_lookup (self->acks, key);
    if (!pending) {
        pending = (pending_ack_t *) zmalloc (sizeof (pending_ack_t));
        pending->routing_id = zframe_dup (agent->routing_id);
        pending->run_id = ref->run_id;
        pending->task = ref->task_index;
        pending->attempt = ref->attempt;
        zhashx_insert (self->acks, key, pending);
    }
    if (seq > pending->seq)
        pending->seq = seq;
}

static void
s_pending_ack_destructor (void **item)
{
    pending_ack_t *pending = (pending_ack_t *) *item;
    if (pending) {
        zframe_destroy (&pending->routing_id);
        free (pending);
        *item = NULL;
    }
}

static void
s_send_acks (qn_coordinator_t *self)
{
    for (pending_ack_t *pending = (pending_ack_t *) zhashx_first (self->acks); pending;
         pending = (pending_ack_t *) zhashx_next (self->acks)) {
        Qanat__AttemptRef ref = QANAT__ATTEMPT_REF__INIT;
        ref.run_id = pending->run_id;
        ref.task_index = pending->task;
        ref.attempt = pending->attempt;
        Qanat__Ack ack = QANAT__ACK__INIT;
        ack.attempt = &ref;
        ack.seq = pending->seq;
        Qanat__Envelope env = QANAT__ENVELOPE__INIT;
        env.body_case = QANAT__ENVELOPE__BODY_ACK;
        env.ack = &ack;
        s_send_now (self->agents_sock, pending->routing_id, &env);
    }
    zhashx_purge (self->acks);
}

//  Evaluates the task's checks over the metrics its attempt reported.
//  Returns the first failing error check's description, or NULL.
static char *
s_evaluate_checks (qn_coordinator_t *self, run_t *run, size_t index, uint32_t attempt_number)
{
    const qn_task_t *spec = qn_workflow_task (run->wf, index);
    Qanat__TaskInfo *task = s_task (run, index);
    s_task_clear_checks (run, task);
    char *failure = NULL;
    for (size_t c = 0; c < spec->checks_count; c++) {
        qn_check_t *check = spec->checks [c].check;
        Qanat__MetricRecord **records = NULL;
        size_t count = 0;
        qn_store_read_metrics (self->store, run->id, qn_check_metric (check), &records, &count);
        double *values = (double *) calloc (count? count: 1, sizeof (double));
        size_t found = 0;
        for (size_t r = 0; r < count; r++)
            if (streq (records [r]->task, spec->name) && records [r]->attempt == attempt_number
            &&  records [r]->point)
                values [found++] = records [r]->point->value;
        qn_store_free_array (records, count);
        bool passed = false;
        char *detail = qn_check_eval (check, values, found, &passed);
        free (values);
        Qanat__CheckResult *result = (Qanat__CheckResult *) malloc (sizeof (Qanat__CheckResult));
        qanat__check_result__init (result);
        result->expr = s_strdup (qn_check_expr (check));
        bool warning = spec->checks [c].severity == QN_SEVERITY_WARNING;
        result->severity = s_strdup (warning? "warning": "error");
        result->passed = passed;
        result->detail = detail;
        s_append ((void ***) &task->checks, &task->n_checks, result);
        if (!passed && !warning && !failure)
            failure = zsys_sprintf ("check failed: %s", detail);
    }
    if (s_task_warned (task))
        run->warnings++;
    return failure;
}

//  The attempt's Finished is in: its uploads are referenced by its
//  record now (or by nothing, and retention may take them).
static void
s_uploads_settled (qn_coordinator_t *self, uint64_t run_id, uint32_t task, uint32_t attempt)
{
    if (zhashx_size (self->uploading) == 0)
        return;                 //  the common case: no artifacts in flight
    zlistx_t *done = zlistx_new ();
    for (upload_t *upload = (upload_t *) zhashx_first (self->uploading); upload;
         upload = (upload_t *) zhashx_next (self->uploading))
        if (upload->run_id == run_id && upload->task == task && upload->attempt == attempt)
            zlistx_add_end (done, (void *) zhashx_cursor (self->uploading));
    for (const char *hash = (const char *) zlistx_first (done); hash;
         hash = (const char *) zlistx_next (done))
        zhashx_delete (self->uploading, hash);
    zlistx_destroy (&done);
}

static void
s_handle_finished (qn_coordinator_t *self, run_t *run, size_t index,
                   Qanat__AttemptInfo *attempt, Qanat__Finished *finished)
{
    s_uploads_settled (self, run->id, (uint32_t) index, attempt->attempt);
    attempt->exit_code = finished->exit_code;
    attempt->signal = finished->signal;
    s_replace_string (&attempt->stack_trace, s_strdup (finished->stack_trace));
    s_replace_string (&attempt->reason, s_strdup (finished->reason));
    bool ok = finished->exit_code == 0 && finished->signal == 0;
    if (ok) {
        char *failure = s_evaluate_checks (self, run, index, attempt->attempt);
        if (failure) {
            s_task_attempt_failed (self, run, index, failure, "check");
            free (failure);
            return;
        }
        const qn_task_t *spec = qn_workflow_task (run->wf, index);
        char *missing = qn_store_begin (self->store) == 0
                      ? qn_artifacts_record (self->artifacts, spec, attempt, finished)
                      : strdup ("the store cannot record the outputs");
        if (missing) {
            s_task_attempt_failed (self, run, index, missing, "output");
            free (missing);
            return;
        }
        if (spec->cache && !run->info->no_cache) {
            char key [QN_ARTIFACTS_KEY_HEX + 1];
            if (s_cache_key (self, run, index, key) == 0)
                qn_artifacts_cache_put (self->artifacts, key, run->id, (uint32_t) index,
                                        attempt->attempt);
        }
        attempt->finished = true;
        attempt->finished_us = qn_now_us ();
        s_replace_string (&attempt->end, strdup ("exit"));
        s_task_set_status (run, index, QANAT__TASK_STATUS__TASK_SUCCEEDED);
        s_run_advance (self, run);
    }
    else {
        char *reason = *finished->reason? strdup (finished->reason)
                     : finished->signal? zsys_sprintf ("killed by signal %d", finished->signal)
                     : zsys_sprintf ("exit code %d", finished->exit_code);
        const char *end = finished->kind == QANAT__END_KIND__END_TIMEOUT? "timeout"
                        : finished->kind == QANAT__END_KIND__END_CANCELED? "canceled"
                        : finished->kind == QANAT__END_KIND__END_LOST? "agent_lost"
                        : finished->kind == QANAT__END_KIND__END_START_FAILED? "start": "exit";
        s_task_attempt_failed (self, run, index, reason, end);
        free (reason);
    }
}

//  One event of one attempt.  Fencing: only the current attempt of a
//  running task may change it; anything else is acknowledged (so the agent
//  can let go of it) and, if the attempt may still run, killed.
static void
s_handle_event (qn_coordinator_t *self, agent_t *agent, Qanat__Event *event)
{
    Qanat__AttemptRef *ref = event->attempt;
    if (!ref || event->seq == 0 || event->body_case == QANAT__EVENT__BODY__NOT_SET) {
        self->stats.malformed_agent_frames++;
        return;
    }
    run_t *run = s_run_find (self, ref->run_id);
    Qanat__TaskInfo *task = run && ref->task_index < run->info->n_tasks?
                            s_task (run, ref->task_index): NULL;
    Qanat__AttemptInfo *attempt = task? s_current_attempt (task): NULL;
    bool current = attempt && attempt->attempt == ref->attempt
                && task->status == QANAT__TASK_STATUS__TASK_RUNNING
                && streq (attempt->agent, agent->name);
    if (!current) {
        self->stats.stale_events++;
        s_post_ack (self, agent, ref, event->seq);
        if (event->body_case != QANAT__EVENT__BODY_FINISHED)
            s_post_cancel (self, agent, ref->run_id, ref->task_index, ref->attempt,
                           "this attempt is no longer current");
        return;
    }
    if (event->seq <= attempt->last_seq) {
        self->stats.duplicate_events++;
        s_post_ack (self, agent, ref, attempt->last_seq);
        return;
    }
    if (event->seq != attempt->last_seq + 1)
        return;     //  a gap: the agent replays from its last acknowledgement

    switch (event->body_case) {
        case QANAT__EVENT__BODY_STARTED: {
            Qanat__Started *started = event->started;
            attempt->pid = started->pid;
            //  Shown by `qanat status`; bounded like every agent string
            if (started->engine_job_id && strlen (started->engine_job_id) <= 255)
                s_replace_string (&attempt->engine_job_id, s_strdup (started->engine_job_id));
            if (started->backend && *started->backend && strlen (started->backend) <= 64)
                s_replace_string (&attempt->backend, s_strdup (started->backend));
            if (started->host && strlen (started->host) <= 255)
                s_replace_string (&attempt->host, s_strdup (started->host));
            break;
        }
        case QANAT__EVENT__BODY_LOG: {
            Qanat__LogLine line = QANAT__LOG_LINE__INIT;
            line.task = task->name;
            line.attempt = attempt->attempt;
            line.seq = event->seq;
            line.chunk = event->log;
            if (qn_store_begin (self->store) == 0)
                qn_store_append_log (self->store, run->id, &line, NULL);
            break;
        }
        case QANAT__EVENT__BODY_METRIC: {
            if (!event->metric->name || !*event->metric->name || !isfinite (event->metric->value)) {
                self->stats.malformed_agent_frames++;
                break;
            }
            Qanat__MetricRecord record = QANAT__METRIC_RECORD__INIT;
            record.task = task->name;
            record.attempt = attempt->attempt;
            record.seq = event->seq;
            record.point = event->metric;
            if (qn_store_begin (self->store) == 0)
                qn_store_append_metric (self->store, run->id, &record);
            break;
        }
        default:
            break;
    }
    attempt->last_seq = event->seq;
    s_mark_task (run, ref->task_index);
    self->stats.events_committed++;
    if (event->body_case == QANAT__EVENT__BODY_FINISHED)
        s_handle_finished (self, run, ref->task_index, attempt, event->finished);
    s_post_ack (self, agent, ref, event->seq);
}

//  An agent connected with a join token's key presents its own key.
static void
s_handle_enrol (qn_coordinator_t *self, zframe_t *routing_id, Qanat__Enrol *enrol)
{
    char *error = NULL;
    const Qanat__Principal *agent = qn_keyring_enrol (
        self->keyring, self->sender->public_key, enrol->name, enrol->public_key.data,
        enrol->public_key.len, enrol->labels, enrol->n_labels, &error);
    if (!agent) {
        self->stats.denied++;
        zsys_warning ("enrolment of agent '%s' refused: %s", enrol->name, error);
        s_refuse (self->agents_sock, routing_id, QANAT__REFUSAL_CODE__REFUSAL_DENIED, error);
        free (error);
        return;
    }
    zsys_info ("agent %s enrolled with join token %s", agent->name, self->sender->name);
    Qanat__Enrolled enrolled = QANAT__ENROLLED__INIT;
    enrolled.name = agent->name;
    enrolled.labels = agent->labels;
    enrolled.n_labels = agent->n_labels;
    Qanat__Envelope reply = QANAT__ENVELOPE__INIT;
    reply.body_case = QANAT__ENVELOPE__BODY_ENROLLED;
    reply.enrolled = &enrolled;
    s_post (self, self->agents_sock, routing_id, &reply, 0);
}

//  ---------------------------------------------------------------------
//  Blob transfers (qn_blobserver does the protocol; we say who may)

static int
s_blob_send (void *arg, const char *peer, Qanat__Envelope *envelope)
{
    qn_coordinator_t *self = (qn_coordinator_t *) arg;
    agent_t *agent = (agent_t *) zhashx_lookup (self->agents, peer);
    if (!agent || !agent->routing_id)
        return -1;
    s_post (self, self->agents_sock, agent->routing_id, envelope, 0);
    return 0;
}

//  A blob stored on its way to a record (an attempt's output, or a put
//  for a run's parameter): indexed, and kept from retention for an hour
//  unless a record references it sooner
static void
s_keep_upload (qn_coordinator_t *self, const char *hash, uint64_t size,
               const Qanat__AttemptRef *attempt)
{
    if (qn_store_begin (self->store) == 0)
        qn_store_blob_add (self->store, hash, size);
    upload_t *upload = (upload_t *) zmalloc (sizeof (upload_t));
    if (upload) {
        upload->when = zclock_mono ();
        if (attempt) {
            upload->run_id = attempt->run_id;
            upload->task = attempt->task_index;
            upload->attempt = attempt->attempt;
        }
        zhashx_update (self->uploading, hash, upload);
    }
}

static void
s_blob_stored (void *arg, const char *peer, const char *hash, uint64_t size,
               const Qanat__AttemptRef *attempt)
{
    (void) peer;
    qn_coordinator_t *self = (qn_coordinator_t *) arg;
    s_keep_upload (self, hash, size, attempt);
    self->stats.blobs_stored++;
}

//  An agent may store outputs only for an attempt it runs now.
static void
s_handle_blob_offer (qn_coordinator_t *self, agent_t *agent, Qanat__BlobOffer *offer)
{
    Qanat__AttemptRef *ref = offer->attempt;
    run_t *run = ref? s_run_find (self, ref->run_id): NULL;
    Qanat__TaskInfo *task = run && ref->task_index < run->info->n_tasks?
                            s_task (run, ref->task_index): NULL;
    Qanat__AttemptInfo *attempt = task? s_current_attempt (task): NULL;
    if (!attempt || attempt->attempt != ref->attempt || attempt->finished
    ||  !streq (attempt->agent, agent->name)) {
        Qanat__BlobWant want = QANAT__BLOB_WANT__INIT;
        want.hash = offer->hash? offer->hash: (char *) "";
        want.error = (char *) "not an output of an attempt this agent runs";
        Qanat__Envelope env = QANAT__ENVELOPE__INIT;
        env.body_case = QANAT__ENVELOPE__BODY_BLOB_WANT;
        env.blob_want = &want;
        s_post (self, self->agents_sock, agent->routing_id, &env, 0);
        self->stats.denied++;
        return;
    }
    qn_blobserver_on_offer (self->blobserver, agent->name, offer);
}

//  An agent may fetch the blobs of its attempts' inputs, nothing else.
static void
s_handle_blob_want (qn_coordinator_t *self, agent_t *agent, Qanat__BlobWant *want)
{
    bool ends_upload = want->complete || (want->error && *want->error);
    if (!ends_upload && (!want->hash || !zhashx_lookup (agent->fetchable, want->hash))) {
        Qanat__BlobChunk chunk = QANAT__BLOB_CHUNK__INIT;
        chunk.hash = want->hash? want->hash: (char *) "";
        chunk.offset = want->offset;
        chunk.error = (char *) "not an input of an attempt this agent runs";
        Qanat__Envelope env = QANAT__ENVELOPE__INIT;
        env.body_case = QANAT__ENVELOPE__BODY_BLOB_CHUNK;
        env.blob_chunk = &chunk;
        s_post (self, self->agents_sock, agent->routing_id, &env, 0);
        self->stats.denied++;
        return;
    }
    qn_blobserver_on_want (self->blobserver, agent->name, want);
}

static void
s_handle_agent_message (qn_coordinator_t *self, zframe_t *routing_id, Qanat__Envelope *env)
{
    //  A join token's key is good for enrolment and nothing else.
    bool token = self->sender && streq (self->sender->kind, "token");
    if (token != (env->body_case == QANAT__ENVELOPE__BODY_ENROL)) {
        self->stats.denied++;
        s_refuse (self->agents_sock, routing_id, QANAT__REFUSAL_CODE__REFUSAL_DENIED, token
                  ? "a join token's key may only enrol": "this agent is enrolled already");
        return;
    }
    if (token) {
        s_handle_enrol (self, routing_id, env->enrol);
        return;
    }
    if (env->body_case == QANAT__ENVELOPE__BODY_REGISTER) {
        s_handle_register (self, routing_id, env->register_);
        return;
    }
    char *route_key = s_route_key (routing_id);
    agent_t *agent = (agent_t *) zhashx_lookup (self->by_route, route_key);
    free (route_key);
    if (!agent) {
        //  We restarted, or declared it lost: it must register again.
        s_refuse (self->agents_sock, routing_id,
                  QANAT__REFUSAL_CODE__REFUSAL_NOT_REGISTERED, "register first");
        return;
    }
    agent->last_seen = zclock_mono ();
    agent->info->last_seen_us = qn_now_us ();
    switch (env->body_case) {
        case QANAT__ENVELOPE__BODY_HEARTBEAT: {
            if (agent->info->spool_full != env->heartbeat->spool_full) {
                zsys_warning ("agent %s %s", agent->name, env->heartbeat->spool_full?
                              "reports its spool full: no new work for it": "has spool room again");
                agent->info->spool_full = env->heartbeat->spool_full;
            }
            agent->info->spool_bytes = env->heartbeat->spool_bytes;
            //  A count lower than the last is a restarted agent's own
            uint64_t damaged = env->heartbeat->cache_damaged;
            self->stats.agent_cache_damaged += damaged >= agent->cache_damaged
                                             ? damaged - agent->cache_damaged: damaged;
            agent->cache_damaged = damaged;
            Qanat__Heartbeat heartbeat = QANAT__HEARTBEAT__INIT;
            heartbeat.running = agent->info->running;
            Qanat__Envelope reply = QANAT__ENVELOPE__INIT;
            reply.body_case = QANAT__ENVELOPE__BODY_HEARTBEAT;
            reply.heartbeat = &heartbeat;
            s_post (self, self->agents_sock, routing_id, &reply, 0);
            break;
        }
        case QANAT__ENVELOPE__BODY_CREDIT: {
            //  Capped at the agent's capacity, not at capacity minus what we
            //  count as running: after a reconnect we still count attempts
            //  whose Finished is on its way, while the agent already offers
            //  their slots; they would never come back.
            uint64_t credit = (uint64_t) agent->info->credit + env->credit->slots;
            uint32_t room = agent->info->capacity;
            s_agent_set_credit (self, agent, credit > room? room: (uint32_t) credit);
            break;
        }
        case QANAT__ENVELOPE__BODY_EVENT:
            s_handle_event (self, agent, env->event);
            break;
        case QANAT__ENVELOPE__BODY_BLOB_OFFER:
            s_handle_blob_offer (self, agent, env->blob_offer);
            break;
        case QANAT__ENVELOPE__BODY_BLOB_CHUNK:
            qn_blobserver_on_chunk (self->blobserver, agent->name, env->blob_chunk);
            break;
        case QANAT__ENVELOPE__BODY_BLOB_WANT:
            s_handle_blob_want (self, agent, env->blob_want);
            break;
        case QANAT__ENVELOPE__BODY_DRAIN:
            agent->drained_by_itself = env->drain->draining;
            s_agent_update_state (agent, zclock_mono ());
            s_agent_persist (self, agent);
            zsys_info ("agent %s %s%s%s", agent->name,
                       env->drain->draining? "draining": "takes work again",
                       *env->drain->reason? ": ": "", env->drain->reason);
            break;
        default:
            self->stats.malformed_agent_frames++;
            s_refuse (self->agents_sock, routing_id, QANAT__REFUSAL_CODE__REFUSAL_BAD_REQUEST,
                      "not a message an agent may send");
            break;
    }
}

//  ---------------------------------------------------------------------
//  Client requests

static bool
s_is_admin (qn_coordinator_t *self)
{
    return !self->sender || streq (self->sender->role, "admin");
}

static const char *
s_sender_name (qn_coordinator_t *self)
{
    return self->sender? self->sender->name: "local";
}


static qn_workflow_t *
s_parse_submitted (Qanat__SubmitWorkflow *submit, char **error_p)
{
    if (!submit) {
        *error_p = strdup ("no workflow given");
        return NULL;
    }
    const char *filename = submit->filename && *submit->filename? submit->filename: "workflow";
    return qn_workflow_parse (filename, (const char *) submit->source.data, submit->source.len,
                              error_p);
}

static void
s_handle_submit (qn_coordinator_t *self, zframe_t *routing_id, Qanat__Request *request)
{
    char *error = NULL;
    qn_workflow_t *wf = s_parse_submitted (request->submit, &error);
    if (!wf) {
        s_post_error (self, routing_id, request->id, error);
        free (error);
        return;
    }
    Qanat__WorkflowVersion version = QANAT__WORKFLOW_VERSION__INIT;
    version.name = (char *) qn_workflow_name (wf);
    uint32_t number = 0;
    bool created = false;
    if (qn_store_begin (self->store)
    ||  qn_store_put_workflow (self->store, version.name, request->submit->filename,
                               request->submit->source.data, request->submit->source.len,
                               &number, &created))
        s_post_error (self, routing_id, request->id, qn_store_error (self->store));
    else {
        version.version = number;
        version.created = created;
        Qanat__Reply reply = QANAT__REPLY__INIT;
        reply.id = request->id;
        reply.body_case = QANAT__REPLY__BODY_WORKFLOW;
        reply.workflow = &version;
        s_post_reply (self, routing_id, &reply);
    }
    qn_workflow_destroy (&wf);
}

static void
s_handle_start_run (qn_coordinator_t *self, zframe_t *routing_id, Qanat__Request *request)
{
    Qanat__StartRun *start = request->start_run;
    char *error = NULL;
    qn_workflow_t *wf = s_parse_submitted (start->workflow, &error);
    if (!wf) {
        s_post_error (self, routing_id, request->id, error);
        free (error);
        return;
    }
    qn_kv_t *overrides = (qn_kv_t *) calloc (start->n_params + 1, sizeof (qn_kv_t));
    for (size_t p = 0; p < start->n_params; p++) {
        overrides [p].key = start->params [p]->name;
        overrides [p].value = start->params [p]->value;
    }
    qn_kv_t *params = qn_workflow_resolve_params (wf, overrides, start->n_params, &error);
    free (overrides);
    if (!params) {
        s_post_error (self, routing_id, request->id, error);
        free (error);
        qn_workflow_destroy (&wf);
        return;
    }
    size_t param_count = qn_workflow_param_count (wf);
    uint32_t version = 0;
    bool created = false;
    uint64_t run_id = 0;
    if (qn_store_begin (self->store)
    ||  qn_store_put_workflow (self->store, qn_workflow_name (wf), start->workflow->filename,
                               start->workflow->source.data, start->workflow->source.len,
                               &version, &created)
    ||  qn_store_new_run_id (self->store, &run_id)) {
        s_post_error (self, routing_id, request->id, qn_store_error (self->store));
        qn_kv_free (params, param_count);
        qn_workflow_destroy (&wf);
        return;
    }
    //  Artifact parameters name blobs fed in with qanat put: each must be
    //  whole here, and the run references it while it exists
    Qanat__OutputRecord **artifacts = NULL;
    size_t artifact_count = 0;
    for (size_t p = 0; p < param_count && !error; p++) {
        const qn_param_t *param = qn_workflow_param (wf, p);
        if (param->type != QN_PARAM_ARTIFACT)
            continue;
        Qanat__OutputRecord *record = qn_artifacts_param_blob (self->artifacts, params [p].key,
                                                               params [p].value, &error);
        if (record)
            s_append ((void ***) &artifacts, &artifact_count, record);
    }
    run_t *run = error? NULL: s_run_new (self, run_id, wf, version, start->workflow->filename,
                                          params, param_count);
    qn_kv_free (params, param_count);
    if (run) {
        s_replace_string (&run->info->owner, strdup (s_sender_name (self)));
        run->info->no_cache = start->no_cache;
        run->info->artifacts = artifacts;
        run->info->n_artifacts = artifact_count;
        qn_artifacts_ref_outputs (self->artifacts, artifacts, artifact_count, 1);
    }
    if (!run) {
        for (size_t a = 0; a < artifact_count; a++)
            protobuf_c_message_free_unpacked ((ProtobufCMessage *) artifacts [a], NULL);
        free (artifacts);
        s_post_error (self, routing_id, request->id, error? error: "out of memory");
        free (error);
        qn_workflow_destroy (&wf);
        return;
    }
    zhashx_insert (self->runs, s_run_key (run_id), run);
    s_run_advance (self, run);
    s_dispatch (self);
    s_run_persist (self, run);
    zsys_info ("run %llu of %s v%u started", (unsigned long long) run_id,
               run->info->workflow, version);

    Qanat__Reply reply = QANAT__REPLY__INIT;
    reply.id = request->id;
    reply.body_case = QANAT__REPLY__BODY_RUN;
    reply.run = run->info;
    s_post_reply (self, routing_id, &reply);
}

//  The run as clients see it: from memory while active, else the store.
//  Sets *owned when the caller must free the result.
static Qanat__RunInfo *
s_lookup_run (qn_coordinator_t *self, uint64_t run_id, bool with_tasks, bool *owned)
{
    run_t *run = s_run_find (self, run_id);
    if (run) {
        *owned = false;
        return run->info;
    }
    Qanat__RunInfo *info = qn_store_get_run (self->store, run_id);
    if (info && with_tasks) {
        Qanat__TaskInfo **tasks = NULL;
        size_t count = 0;
        if (qn_store_get_tasks (self->store, run_id, &tasks, &count) == 0) {
            info->tasks = tasks;
            info->n_tasks = count;
        }
    }
    *owned = true;
    return info;
}

static void
s_handle_get_run (qn_coordinator_t *self, zframe_t *routing_id, Qanat__Request *request)
{
    bool owned = false;
    run_t *active = s_run_find (self, request->get_run->run_id);
    if (active)
        s_explain_waiting (self, active);
    Qanat__RunInfo *info = s_lookup_run (self, request->get_run->run_id, true, &owned);
    if (!info) {
        char *message = zsys_sprintf ("no run %llu", (unsigned long long) request->get_run->run_id);
        s_post_error (self, routing_id, request->id, message);
        free (message);
        return;
    }
    Qanat__Reply reply = QANAT__REPLY__INIT;
    reply.id = request->id;
    reply.body_case = QANAT__REPLY__BODY_RUN;
    reply.run = info;
    s_post_reply (self, routing_id, &reply);
    if (owned)
        s_free_message (info);
}

static void
s_handle_list_runs (qn_coordinator_t *self, zframe_t *routing_id, Qanat__Request *request)
{
    Qanat__RunList *list = qn_store_list_runs (self->store, request->list_runs->workflow,
                                               request->list_runs->limit > LIST_RUNS_MAX
                                               ? LIST_RUNS_MAX: request->list_runs->limit);
    if (!list) {
        s_post_error (self, routing_id, request->id, qn_store_error (self->store));
        return;
    }
    Qanat__Reply reply = QANAT__REPLY__INIT;
    reply.id = request->id;
    reply.body_case = QANAT__REPLY__BODY_RUNS;
    reply.runs = list;
    s_post_reply (self, routing_id, &reply);
    s_free_message (list);
}

static void
s_handle_read_logs (qn_coordinator_t *self, zframe_t *routing_id, Qanat__Request *request)
{
    Qanat__ReadLogs *read = request->read_logs;
    bool owned = false;
    Qanat__RunInfo *info = s_lookup_run (self, read->run_id, false, &owned);
    if (!info) {
        char *message = zsys_sprintf ("no run %llu", (unsigned long long) read->run_id);
        s_post_error (self, routing_id, request->id, message);
        free (message);
        return;
    }
    bool finished = info->status != QANAT__RUN_STATUS__RUN_QUEUED
                 && info->status != QANAT__RUN_STATUS__RUN_RUNNING;
    if (owned)
        s_free_message (info);
    uint64_t after = 0;
    if (read->cursor.len == 8)
        for (size_t i = 0; i < 8; i++)
            after = (after << 8) | read->cursor.data [i];
    //  At most 1,000 chunks of at most 8 KiB: a page always fits a message.
    uint32_t limit = read->limit && read->limit <= LOG_PAGE_MAX? read->limit: LOG_PAGE_DEFAULT;
    Qanat__LogLine **lines = NULL;
    size_t count = 0;
    uint64_t last = after;
    if (qn_store_read_logs (self->store, read->run_id, after, read->task, read->attempt, limit,
                            &lines, &count, &last)) {
        s_post_error (self, routing_id, request->id, qn_store_error (self->store));
        return;
    }
    uint8_t cursor [8];
    for (size_t i = 0; i < 8; i++)
        cursor [i] = (uint8_t) (last >> (56 - 8 * i));
    Qanat__LogPage page = QANAT__LOG_PAGE__INIT;
    page.lines = lines;
    page.n_lines = count;
    page.cursor.data = cursor;
    page.cursor.len = 8;
    //  The run had ended before we read, so a short page is the very end.
    page.run_finished = finished && count < limit;
    Qanat__Reply reply = QANAT__REPLY__INIT;
    reply.id = request->id;
    reply.body_case = QANAT__REPLY__BODY_LOGS;
    reply.logs = &page;
    s_post_reply (self, routing_id, &reply);
    qn_store_free_array (lines, count);
}

static Qanat__MetricSeries *
s_series_find (Qanat__MetricReport *report, uint64_t run_id, const char *task, const char *name)
{
    for (size_t i = 0; i < report->n_series; i++) {
        Qanat__MetricSeries *series = report->series [i];
        if (series->run_id == run_id && streq (series->task, task) && streq (series->name, name))
            return series;
    }
    Qanat__MetricSeries *series = (Qanat__MetricSeries *) malloc (sizeof (Qanat__MetricSeries));
    qanat__metric_series__init (series);
    series->run_id = run_id;
    series->task = s_strdup (task);
    series->name = s_strdup (name);
    s_append ((void ***) &report->series, &report->n_series, series);
    return series;
}

static Qanat__MetricPoint *
s_point_copy (const Qanat__MetricPoint *point)
{
    Qanat__MetricPoint *copy = (Qanat__MetricPoint *) malloc (sizeof (Qanat__MetricPoint));
    *copy = *point;
    copy->name = s_strdup (point->name);
    return copy;
}

//  One run: every series.  A workflow: for each of its runs (newest
//  first), the last value of each metric - the history across runs.
static void
s_handle_read_metrics (qn_coordinator_t *self, zframe_t *routing_id, Qanat__Request *request)
{
    Qanat__ReadMetrics *read = request->read_metrics;
    Qanat__MetricReport *report = (Qanat__MetricReport *) malloc (sizeof (Qanat__MetricReport));
    qanat__metric_report__init (report);
    uint64_t *run_ids = NULL;
    size_t run_count = 0;
    bool history = read->run_id == 0;
    if (history) {
        if (!read->workflow || !*read->workflow) {
            s_post_error (self, routing_id, request->id, "read metrics: give a run or a workflow");
            s_free_message (report);
            return;
        }
        Qanat__RunList *list = qn_store_list_runs (self->store, read->workflow, HISTORY_RUNS_MAX);
        if (list) {
            run_ids = (uint64_t *) calloc (list->n_runs + 1, sizeof (uint64_t));
            for (size_t i = list->n_runs; i-- > 0; )
                run_ids [run_count++] = list->runs [i]->run_id;     //  oldest first
            s_free_message (list);
        }
    }
    else {
        run_ids = (uint64_t *) calloc (1, sizeof (uint64_t));
        run_ids [run_count++] = read->run_id;
    }
    for (size_t r = 0; r < run_count; r++) {
        Qanat__MetricRecord **records = NULL;
        size_t count = 0;
        if (qn_store_read_metrics (self->store, run_ids [r], read->name, &records, &count))
            continue;
        for (size_t i = 0; i < count; i++) {
            if (!records [i]->point)
                continue;
            Qanat__MetricSeries *series = s_series_find (report, run_ids [r], records [i]->task,
                                                         records [i]->point->name);
            if (history && series->n_points) {
                //  Keep only the last value per run.
                s_free_message (series->points [0]);
                series->points [0] = s_point_copy (records [i]->point);
            }
            else
                s_append ((void ***) &series->points, &series->n_points,
                          s_point_copy (records [i]->point));
        }
        qn_store_free_array (records, count);
    }
    free (run_ids);
    Qanat__Reply reply = QANAT__REPLY__INIT;
    reply.id = request->id;
    reply.body_case = QANAT__REPLY__BODY_METRICS;
    reply.metrics = report;
    s_post_reply (self, routing_id, &reply);
    s_free_message (report);
}

static void
s_handle_list_agents (qn_coordinator_t *self, zframe_t *routing_id, Qanat__Request *request)
{
    Qanat__AgentList list = QANAT__AGENT_LIST__INIT;
    size_t count = zhashx_size (self->agents);
    list.agents = (Qanat__AgentInfo **) calloc (count + 1, sizeof (Qanat__AgentInfo *));
    int64_t now = zclock_mono ();
    for (agent_t *agent = (agent_t *) zhashx_first (self->agents); agent;
         agent = (agent_t *) zhashx_next (self->agents)) {
        s_agent_update_state (agent, now);
        list.agents [list.n_agents++] = agent->info;
    }
    Qanat__Reply reply = QANAT__REPLY__INIT;
    reply.id = request->id;
    reply.body_case = QANAT__REPLY__BODY_AGENTS;
    reply.agents = &list;
    s_post_reply (self, routing_id, &reply);
    free (list.agents);
}

//  Cancels one task: a running attempt is told to stop and ends as
//  canceled now (whatever it sends afterwards is no longer current and is
//  ignored); a task not started is canceled; its dependents are skipped.
static void
s_cancel_task (qn_coordinator_t *self, run_t *run, size_t index, const char *why)
{
    Qanat__TaskInfo *task = s_task (run, index);
    if (task->status == QANAT__TASK_STATUS__TASK_RUNNING) {
        Qanat__AttemptInfo *attempt = s_current_attempt (task);
        agent_t *agent = s_agent_of (self, attempt);
        s_post_cancel (self, agent, run->id, (uint32_t) index, attempt->attempt, why);
        attempt->finished = true;
        attempt->finished_us = qn_now_us ();
        s_replace_string (&attempt->reason, zsys_sprintf ("canceled: %s", why));
        s_replace_string (&attempt->end, strdup ("canceled"));
    }
    s_replace_string (&task->waiting_reason, s_strdup (""));
    s_task_set_status (run, index, QANAT__TASK_STATUS__TASK_CANCELED);
    size_t *changed = run->scratch;
    size_t count = qn_dag_skip_dependents (run->dag, index, changed);
    for (size_t i = 0; i < count; i++) {
        s_task (run, changed [i])->status = QANAT__TASK_STATUS__TASK_SKIPPED;
        s_replace_string (&s_task (run, changed [i])->waiting_reason,
                          zsys_sprintf ("skipped: %s canceled", task->name));
        s_mark_task (run, changed [i]);
    }
}

static void
s_handle_cancel_run (qn_coordinator_t *self, zframe_t *routing_id, Qanat__Request *request)
{
    uint64_t run_id = request->cancel_run->run_id;
    const char *task_name = request->cancel_run->task;
    run_t *run = s_run_find (self, run_id);
    if (!run) {
        bool owned;
        Qanat__RunInfo *info = s_lookup_run (self, run_id, false, &owned);
        char *message = info? zsys_sprintf ("run %llu has already ended (%s)",
                                            (unsigned long long) run_id,
                                            qn_run_status_name (info->status))
                            : zsys_sprintf ("no run %llu", (unsigned long long) run_id);
        if (info && owned)
            s_free_message (info);
        s_post_error (self, routing_id, request->id, message);
        free (message);
        return;
    }
    if (!s_is_admin (self) && !streq (run->info->owner, s_sender_name (self))) {
        self->stats.denied++;
        char *message = zsys_sprintf ("permission denied: run %llu belongs to %s",
                                      (unsigned long long) run_id, run->info->owner);
        s_post_error (self, routing_id, request->id, message);
        free (message);
        return;
    }
    if (task_name && *task_name) {
        int index = qn_workflow_task_index (run->wf, task_name);
        char *message = NULL;
        if (index < 0)
            message = zsys_sprintf ("run %llu has no task '%s'", (unsigned long long) run_id, task_name);
        else
        if (qn_dag_finished_task (run->dag, (size_t) index))
            message = zsys_sprintf ("task %s has already ended (%s)", task_name,
                                    qn_task_status_name (s_task (run, (size_t) index)->status));
        if (message) {
            s_post_error (self, routing_id, request->id, message);
            free (message);
            return;
        }
        s_cancel_task (self, run, (size_t) index, "task canceled");
        zsys_info ("run %llu task %s canceled", (unsigned long long) run_id, task_name);
    }
    else {
        run->info->cancel_requested = true;
        s_mark_run (run);
        for (size_t t = 0; t < run->info->n_tasks; t++)
            if (!qn_dag_finished_task (run->dag, t))
                s_cancel_task (self, run, t, "run canceled");
        zsys_info ("run %llu canceled", (unsigned long long) run_id);
    }
    s_run_advance (self, run);
    Qanat__Reply reply = QANAT__REPLY__INIT;
    reply.id = request->id;
    reply.body_case = QANAT__REPLY__BODY_RUN;
    reply.run = run->info;
    s_post_reply (self, routing_id, &reply);
}

//  A reply naming one agent (none when agent is NULL).
static void
s_post_agent_reply (qn_coordinator_t *self, zframe_t *routing_id, uint64_t request_id,
                    agent_t *agent)
{
    Qanat__AgentList list = QANAT__AGENT_LIST__INIT;
    Qanat__AgentInfo *one [1] = { agent? agent->info: NULL };
    list.agents = one;
    list.n_agents = agent? 1: 0;
    Qanat__Reply reply = QANAT__REPLY__INIT;
    reply.id = request_id;
    reply.body_case = QANAT__REPLY__BODY_AGENTS;
    reply.agents = &list;
    s_post_reply (self, routing_id, &reply);
}

//  `qanat agent drain NAME`: the agent finishes what it runs and gets
//  nothing new until undrained.
static void
s_handle_drain_agent (qn_coordinator_t *self, zframe_t *routing_id, Qanat__Request *request)
{
    agent_t *agent = (agent_t *) zhashx_lookup (self->agents, request->drain_agent->name);
    if (!agent) {
        char *message = zsys_sprintf ("no agent named '%s'", request->drain_agent->name);
        s_post_error (self, routing_id, request->id, message);
        free (message);
        return;
    }
    agent->drained_by_admin = request->drain_agent->drain;
    s_agent_update_state (agent, zclock_mono ());
    s_agent_persist (self, agent);
    zsys_info ("agent %s %s by request", agent->name, agent->drained_by_admin? "drained": "undrained");
    s_post_agent_reply (self, routing_id, request->id, agent);
}

static void
s_handle_create_token (qn_coordinator_t *self, zframe_t *routing_id, Qanat__Request *request)
{
    if (!self->keyring) {
        s_post_error (self, routing_id, request->id,
                      "join tokens need CURVE: this coordinator runs --insecure");
        return;
    }
    Qanat__CreateToken *create = request->create_token;
    int64_t expires = 0;
    char *id = NULL;
    char *text = qn_keyring_create_token (self->keyring, create->ttl_s, create->uses,
                                          create->labels, create->n_labels, &expires, &id);
    if (!text) {
        s_post_error (self, routing_id, request->id, "cannot create a join token");
        return;
    }
    zsys_info ("join token %s created by %s", id, s_sender_name (self));
    Qanat__JoinToken token = QANAT__JOIN_TOKEN__INIT;
    token.token = text;
    token.id = id;
    token.expires_us = expires;
    token.uses = create->uses? create->uses: 1;
    Qanat__Reply reply = QANAT__REPLY__INIT;
    reply.id = request->id;
    reply.body_case = QANAT__REPLY__BODY_TOKEN;
    reply.token = &token;
    s_post_reply (self, routing_id, &reply);
    free (text);
    free (id);
}

static void
s_handle_add_user (qn_coordinator_t *self, zframe_t *routing_id, Qanat__Request *request)
{
    if (!self->keyring) {
        s_post_error (self, routing_id, request->id, "users need CURVE: this coordinator runs --insecure");
        return;
    }
    char *error = NULL;
    char *key_file = qn_keyring_add_user (self->keyring, request->add_user->name,
                                          request->add_user->role, &error);
    if (!key_file) {
        s_post_error (self, routing_id, request->id, error);
        free (error);
        return;
    }
    zsys_info ("user %s (%s) added by %s", request->add_user->name, request->add_user->role,
               s_sender_name (self));
    Qanat__UserKey key = QANAT__USER_KEY__INIT;
    key.name = request->add_user->name;
    key.role = request->add_user->role;
    key.key_file = key_file;
    Qanat__Reply reply = QANAT__REPLY__INIT;
    reply.id = request->id;
    reply.body_case = QANAT__REPLY__BODY_USER_KEY;
    reply.user_key = &key;
    s_post_reply (self, routing_id, &reply);
    free (key_file);
}

//  Revocation: the key leaves the allow-list, the agent is disconnected at
//  once (its messages are refused from now on), and the attempts it ran
//  end as "agent revoked" and retry elsewhere by policy.
static void
s_handle_revoke_agent (qn_coordinator_t *self, zframe_t *routing_id, Qanat__Request *request)
{
    const char *name = request->revoke_agent->name;
    if (!self->keyring || qn_keyring_revoke_agent (self->keyring, name)) {
        char *message = zsys_sprintf ("no enrolled agent named '%s'", name);
        s_post_error (self, routing_id, request->id, message);
        free (message);
        return;
    }
    agent_t *agent = (agent_t *) zhashx_lookup (self->agents, name);
    if (agent) {
        s_agent_disconnect (self, agent);
        agent->lost = true;
        zlistx_t *refs = zlistx_new ();
        for (ready_t *ref = (ready_t *) zhashx_first (agent->attempts); ref;
             ref = (ready_t *) zhashx_next (agent->attempts)) {
            ready_t *copy = (ready_t *) zmalloc (sizeof (ready_t));
            *copy = *ref;
            zlistx_add_end (refs, copy);
        }
        for (ready_t *ref = (ready_t *) zlistx_first (refs); ref; ref = (ready_t *) zlistx_next (refs)) {
            run_t *run = s_run_find (self, ref->run_id);
            if (run)
                s_task_attempt_failed (self, run, ref->task, "agent revoked", "agent_lost");
            free (ref);
        }
        zlistx_destroy (&refs);
        s_agent_update_state (agent, zclock_mono ());
        s_agent_persist (self, agent);
    }
    zsys_warning ("agent %s revoked by %s", name, s_sender_name (self));
    s_post_agent_reply (self, routing_id, request->id, agent);
}

static void
s_handle_set_secret (qn_coordinator_t *self, zframe_t *routing_id, Qanat__Request *request)
{
    Qanat__SetSecret *set = request->set_secret;
    bool valid = set->name && *set->name && strlen (set->name) <= 128;
    for (const char *c = set->name; valid && *c; c++)
        valid = isalnum ((unsigned char) *c) || *c == '_' || *c == '-' || *c == '.';
    if (!valid) {
        s_post_error (self, routing_id, request->id,
                      "a secret name is 1 to 128 letters, digits, '_', '-' or '.'");
        return;
    }
    if (!self->vault || qn_vault_set (self->vault, set->name, set->value.data, set->value.len)) {
        s_post_error (self, routing_id, request->id, self->vault? "cannot store the secret (at most 64 KiB)"
                                                                : "secrets need CURVE: this coordinator runs --insecure");
        return;
    }
    zsys_info ("secret %s set by %s", set->name, s_sender_name (self));
    Qanat__SecretList list = QANAT__SECRET_LIST__INIT;
    char *names [1] = { set->name };
    list.names = names;
    list.n_names = 1;
    Qanat__Reply reply = QANAT__REPLY__INIT;
    reply.id = request->id;
    reply.body_case = QANAT__REPLY__BODY_SECRETS;
    reply.secrets = &list;
    s_post_reply (self, routing_id, &reply);
}

static void
s_handle_list_secrets (qn_coordinator_t *self, zframe_t *routing_id, Qanat__Request *request)
{
    Qanat__SecretList list = QANAT__SECRET_LIST__INIT;
    char **names = NULL;
    size_t count = 0;
    qn_store_list_secrets (self->store, &names, &count);
    list.names = names;
    list.n_names = count;
    Qanat__Reply reply = QANAT__REPLY__INIT;
    reply.id = request->id;
    reply.body_case = QANAT__REPLY__BODY_SECRETS;
    reply.secrets = &list;
    s_post_reply (self, routing_id, &reply);
    for (size_t i = 0; i < count; i++)
        free (names [i]);
    free (names);
}

//  A piece of a stored blob (`qanat get`), at most 1 MiB so that the
//  reply fits a message.
static void
s_handle_get_blob (qn_coordinator_t *self, zframe_t *routing_id, Qanat__Request *request)
{
    Qanat__GetBlob *get = request->get_blob;
    qn_blobstore_t *blobs = qn_artifacts_blobs (self->artifacts);
    uint64_t total = 0;
    if (!get->hash || !qn_blobstore_valid_hash (get->hash)
    ||  qn_store_blob_get (self->store, get->hash, &total, NULL) != 1
    ||  !qn_blobstore_has (blobs, get->hash)) {
        s_post_error (self, routing_id, request->id, "no such blob");
        return;
    }
    uint32_t size = get->size && get->size < 1024 * 1024? get->size: 1024 * 1024;
    if (get->offset > total) {
        s_post_error (self, routing_id, request->id, "offset past the end of the blob");
        return;
    }
    if (size > total - get->offset)
        size = (uint32_t) (total - get->offset);
    uint8_t *buffer = (uint8_t *) malloc (size? size: 1);
    ssize_t got = buffer? qn_blobstore_read (blobs, get->hash, get->offset, buffer, size): -1;
    if (got < 0) {
        free (buffer);
        s_post_error (self, routing_id, request->id, "cannot read the blob");
        return;
    }
    Qanat__BlobData data = QANAT__BLOB_DATA__INIT;
    data.hash = get->hash;
    data.offset = get->offset;
    data.total_size = total;
    data.data.data = buffer;
    data.data.len = (size_t) got;
    Qanat__Reply reply = QANAT__REPLY__INIT;
    reply.id = request->id;
    reply.body_case = QANAT__REPLY__BODY_BLOB;
    reply.blob = &data;
    s_post_reply (self, routing_id, &reply);
    free (buffer);
}

//  A client feeding a blob in (qanat put): pieces in order, each answered
//  with how many bytes we hold, so that an interrupted put resumes there.
//  The blob is verified whole, then kept an hour unreferenced (on its way
//  to a run, like an agent's upload) before retention may take it.
static void
s_handle_put_blob (qn_coordinator_t *self, zframe_t *routing_id, Qanat__Request *request)
{
    Qanat__PutBlob *put = request->put_blob;
    qn_blobstore_t *blobs = qn_artifacts_blobs (self->artifacts);
    if (!put->hash || !qn_blobstore_valid_hash (put->hash) || put->data.len > 1024 * 1024
    ||  put->offset > put->total_size || put->data.len > put->total_size - put->offset) {
        s_post_error (self, routing_id, request->id, "put blob: bad hash, offset or size");
        return;
    }
    char error [256] = "";
    uint64_t held = qn_blobstore_has (blobs, put->hash)? put->total_size
                  : qn_blobstore_partial (blobs, put->hash);
    if (held < put->total_size && put->offset == held && put->data.len) {
        if (qn_blobstore_write (blobs, put->hash, put->offset, put->data.data, put->data.len,
                                NULL, error, sizeof error) != 0) {
            s_post_error (self, routing_id, request->id, error);
            return;
        }
        held += put->data.len;
    }
    if (held == put->total_size && !qn_blobstore_has (blobs, put->hash)) {
        if (qn_blobstore_finish (blobs, put->hash, put->total_size, error, sizeof error) != 0) {
            qn_blobstore_abandon (blobs, put->hash);
            s_post_error (self, routing_id, request->id, error);
            return;
        }
        self->stats.blobs_stored++;
    }
    if (held == put->total_size)        //  new, or put again: an hour more
        s_keep_upload (self, put->hash, put->total_size, NULL);
    Qanat__BlobData data = QANAT__BLOB_DATA__INIT;
    data.hash = put->hash;
    data.offset = held;
    data.total_size = put->total_size;
    Qanat__Reply reply = QANAT__REPLY__INIT;
    reply.id = request->id;
    reply.body_case = QANAT__REPLY__BODY_BLOB;
    reply.blob = &data;
    s_post_reply (self, routing_id, &reply);
}

static void
s_handle_client_message (qn_coordinator_t *self, zframe_t *routing_id, Qanat__Envelope *env)
{
    if (env->body_case != QANAT__ENVELOPE__BODY_REQUEST) {
        self->stats.malformed_client_frames++;
        s_refuse (self->clients_sock, routing_id, QANAT__REFUSAL_CODE__REFUSAL_BAD_REQUEST,
                  "clients send requests only");
        return;
    }
    Qanat__Request *request = env->request;
    //  What a user may not do; an admin may do everything.
    bool admin_only = request->body_case == QANAT__REQUEST__BODY_DRAIN_AGENT
                   || request->body_case == QANAT__REQUEST__BODY_CREATE_TOKEN
                   || request->body_case == QANAT__REQUEST__BODY_ADD_USER
                   || request->body_case == QANAT__REQUEST__BODY_REVOKE_AGENT
                   || request->body_case == QANAT__REQUEST__BODY_SET_SECRET
                   || request->body_case == QANAT__REQUEST__BODY_LIST_SECRETS;
    if (admin_only && !s_is_admin (self)) {
        self->stats.denied++;
        zsys_warning ("user %s was denied an admin request", s_sender_name (self));
        s_post_error (self, routing_id, request->id, "permission denied: needs role admin");
        return;
    }
    switch (request->body_case) {
        case QANAT__REQUEST__BODY_SUBMIT:       s_handle_submit (self, routing_id, request); break;
        case QANAT__REQUEST__BODY_START_RUN:
            if (!request->start_run->workflow)
                s_post_error (self, routing_id, request->id, "start run: no workflow given");
            else
                s_handle_start_run (self, routing_id, request);
            break;
        case QANAT__REQUEST__BODY_GET_RUN:      s_handle_get_run (self, routing_id, request); break;
        case QANAT__REQUEST__BODY_LIST_RUNS:    s_handle_list_runs (self, routing_id, request); break;
        case QANAT__REQUEST__BODY_READ_LOGS:    s_handle_read_logs (self, routing_id, request); break;
        case QANAT__REQUEST__BODY_READ_METRICS: s_handle_read_metrics (self, routing_id, request); break;
        case QANAT__REQUEST__BODY_LIST_AGENTS:  s_handle_list_agents (self, routing_id, request); break;
        case QANAT__REQUEST__BODY_CANCEL_RUN:   s_handle_cancel_run (self, routing_id, request); break;
        case QANAT__REQUEST__BODY_DRAIN_AGENT:  s_handle_drain_agent (self, routing_id, request); break;
        case QANAT__REQUEST__BODY_CREATE_TOKEN: s_handle_create_token (self, routing_id, request); break;
        case QANAT__REQUEST__BODY_ADD_USER:     s_handle_add_user (self, routing_id, request); break;
        case QANAT__REQUEST__BODY_REVOKE_AGENT: s_handle_revoke_agent (self, routing_id, request); break;
        case QANAT__REQUEST__BODY_SET_SECRET:   s_handle_set_secret (self, routing_id, request); break;
        case QANAT__REQUEST__BODY_LIST_SECRETS: s_handle_list_secrets (self, routing_id, request); break;
        case QANAT__REQUEST__BODY_GET_BLOB:     s_handle_get_blob (self, routing_id, request); break;
        case QANAT__REQUEST__BODY_PUT_BLOB:     s_handle_put_blob (self, routing_id, request); break;
        case QANAT__REQUEST__BODY_GET_STATS: {
            qn_blobserver_stats_t blob_stats;
            qn_blobserver_stats (self->blobserver, &blob_stats);
            self->stats.blob_bytes_in = blob_stats.bytes_in;
            self->stats.blob_bytes_out = blob_stats.bytes_out;
            self->stats.blob_chunks_rejected = blob_stats.chunks_rejected;
            Qanat__Reply reply = QANAT__REPLY__INIT;
            reply.id = request->id;
            reply.body_case = QANAT__REPLY__BODY_STATS;
            reply.stats = &self->stats;
            s_post_reply (self, routing_id, &reply);
            break;
        }
        default:
            self->stats.malformed_client_frames++;
            s_post_error (self, routing_id, request->id, "unknown request");
            break;
    }
}

//  ---------------------------------------------------------------------
//  Loading from the store (at start, and after a failed commit)

static run_t *
s_run_load (qn_coordinator_t *self, uint64_t run_id)
{
    Qanat__RunInfo *info = qn_store_get_run (self->store, run_id);
    if (!info)
        return NULL;
    Qanat__SubmitWorkflow *source = qn_store_get_workflow (self->store, info->workflow, info->version);
    char *error = NULL;
    qn_workflow_t *wf = source? qn_workflow_parse (source->filename, (const char *) source->source.data,
                                                   source->source.len, &error): NULL;
    s_free_message (source);
    Qanat__TaskInfo **tasks = NULL;
    size_t count = 0;
    if (!wf || qn_store_get_tasks (self->store, run_id, &tasks, &count)
    ||  count != qn_workflow_task_count (wf)) {
        zsys_error ("run %llu cannot be reloaded (%s); it is marked failed",
                    (unsigned long long) run_id, error? error: "its records are incomplete");
        free (error);
        qn_store_free_array (tasks, count);
        qn_workflow_destroy (&wf);
        info->status = QANAT__RUN_STATUS__RUN_FAILED;
        info->finished_us = qn_now_us ();
        if (qn_store_begin (self->store) == 0)
            qn_store_put_run (self->store, info);
        s_free_message (info);
        return NULL;
    }
    run_t *run = s_run_alloc (self, run_id, wf);
    if (!run) {
        qn_store_free_array (tasks, count);
        qn_workflow_destroy (&wf);
        s_free_message (info);
        return NULL;
    }
    info->tasks = tasks;
    info->n_tasks = count;
    run->info = info;
    for (size_t t = 0; t < count; t++) {
        //  A status we do not know (a damaged record) ends the task.
        if ((int) tasks [t]->status < 0 || tasks [t]->status > QANAT__TASK_STATUS__TASK_CANCELED)
            tasks [t]->status = QANAT__TASK_STATUS__TASK_FAILED;
        qn_dag_set_status (run->dag, t, tasks [t]->status);
        for (size_t c = 0; c < tasks [t]->n_checks; c++)
            if (!tasks [t]->checks [c]->passed && streq (tasks [t]->checks [c]->severity, "warning")) {
                run->warnings++;
                break;
            }
    }
    return run;
}

static int
s_reload (qn_coordinator_t *self, char **error_p)
{
    zlistx_purge (self->dirty_runs);
    zhashx_purge (self->runs);
    zhashx_purge (self->queues);
    zlistx_purge (self->delayed);
    for (agent_t *agent = (agent_t *) zhashx_first (self->agents); agent;
         agent = (agent_t *) zhashx_next (self->agents)) {
        zhashx_purge (agent->attempts);
        agent->info->running = 0;
    }
    uint64_t *ids = NULL;
    size_t count = 0;
    if (qn_store_active_runs (self->store, &ids, &count)) {
        *error_p = strdup (qn_store_error (self->store));
        return -1;
    }
    for (size_t i = 0; i < count; i++) {
        run_t *run = s_run_load (self, ids [i]);
        if (!run)
            continue;
        zhashx_insert (self->runs, s_run_key (run->id), run);
        for (size_t t = 0; t < run->info->n_tasks; t++) {
            Qanat__TaskInfo *task = s_task (run, t);
            if (task->status == QANAT__TASK_STATUS__TASK_QUEUED)
                s_queue_ready (self, run, t);
            else
            if (task->status == QANAT__TASK_STATUS__TASK_RUNNING) {
                //  It waits for its agent to come back and report, or to
                //  be declared lost; an agent we never knew gets a record.
                Qanat__AttemptInfo *attempt = s_current_attempt (task);
                if (attempt && !zhashx_lookup (self->agents, attempt->agent)) {
                    agent_t *agent = s_agent_new (attempt->agent);
                    agent->info->lost_after_ms = self->config.lost_after_ms;
                    agent->info->suspect_after_ms = self->config.suspect_after_ms;
                    agent->last_seen = zclock_mono ();
                    s_agent_update_state (agent, agent->last_seen);
                    zhashx_insert (self->agents, agent->name, agent);
                }
                s_track_running (run, t, true);
            }
        }
        s_run_advance (self, run);
    }
    free (ids);
    return 0;
}

static void
s_load_agents (qn_coordinator_t *self)
{
    Qanat__AgentInfo **agents = NULL;
    size_t count = 0;
    if (qn_store_list_agents (self->store, &agents, &count))
        return;
    for (size_t i = 0; i < count; i++) {
        agent_t *agent = s_agent_new (agents [i]->name);
        s_free_message (agent->info);
        agent->info = agents [i];
        agent->info->connected = false;
        agent->info->credit = 0;
        agent->info->running = 0;
        //  Only an administrator's drain outlives us; an agent that drained
        //  itself says so again when it registers.
        agent->drained_by_admin = agent->info->drained_by_admin;
        if (!agent->info->lost_after_ms)
            agent->info->lost_after_ms = self->config.lost_after_ms;
        if (!agent->info->suspect_after_ms)
            agent->info->suspect_after_ms = self->config.suspect_after_ms;
        s_agent_update_state (agent, zclock_mono ());
        //  Known agents get a full lost deadline from our start to come back.
        agent->last_seen = zclock_mono ();
        zhashx_insert (self->agents, agent->name, agent);
    }
    free (agents);
}

//  ---------------------------------------------------------------------
//  The loop turn

//  A commit failed: nothing of this turn happened.  Start again from the
//  store; agents re-register and replay what we never acknowledged.
static void
s_recover (qn_coordinator_t *self)
{
    const char *why = qn_store_error (self->store);
    zsys_error ("store commit failed (%s); reloading from the store", why);
    outgoing_t *out = (outgoing_t *) zlistx_first (self->outbox);
    while (out) {
        if (out->request_id) {
            char *message = zsys_sprintf ("the coordinator could not store this change (%s); "
                                          "nothing was changed", why);
            zframe_t *frame = s_error_frame (out->request_id, message);
            zframe_t *id = zframe_dup (out->routing_id);
            if (frame && zframe_send (&id, out->sock, ZFRAME_MORE | ZFRAME_DONTWAIT) == 0)
                zframe_send (&frame, out->sock, ZFRAME_DONTWAIT);
            zframe_destroy (&id);
            zframe_destroy (&frame);
            free (message);
        }
        out = (outgoing_t *) zlistx_next (self->outbox);
    }
    zlistx_purge (self->outbox);
    zhashx_purge (self->acks);
    for (agent_t *agent = (agent_t *) zhashx_first (self->agents); agent;
         agent = (agent_t *) zhashx_next (self->agents))
        if (agent->routing_id) {
            s_refuse (self->agents_sock, agent->routing_id,
                      QANAT__REFUSAL_CODE__REFUSAL_NOT_REGISTERED, "register again");
            s_agent_disconnect (self, agent);
        }
    char *error = NULL;
    if (s_reload (self, &error)) {
        zsys_error ("cannot reload from the store: %s", error);
        free (error);
    }
    qn_store_abort (self->store);
}

static int s_on_agents (zloop_t *loop, zsock_t *sock, void *arg);
static int s_on_clients (zloop_t *loop, zsock_t *sock, void *arg);

static int
s_on_resume (zloop_t *loop, int timer_id, void *arg)
{
    (void) timer_id;
    qn_coordinator_t *self = (qn_coordinator_t *) arg;
    self->paused = false;
    zloop_reader (loop, self->agents_sock, s_on_agents, self);
    zloop_reader (loop, self->clients_sock, s_on_clients, self);
    return 0;
}

//  After a failed commit (a full disk) stop reading for a while, longer
//  each time it fails again, rather than spin on commits that cannot
//  succeed; what peers send meanwhile waits in their queues.
static void
s_pause (qn_coordinator_t *self)
{
    self->backoff_ms = self->backoff_ms? self->backoff_ms * 2: 100;
    if (self->backoff_ms > 1000)
        self->backoff_ms = 1000;
    if (!self->loop || self->paused)
        return;
    self->paused = true;
    zloop_reader_end (self->loop, self->agents_sock);
    zloop_reader_end (self->loop, self->clients_sock);
    zloop_timer (self->loop, (size_t) self->backoff_ms, 1, s_on_resume, self);
}

static void
s_end_turn (qn_coordinator_t *self)
{
    s_dispatch (self);
    zlistx_t *changed = self->dirty_runs;
    self->dirty_runs = zlistx_new ();
    for (run_t *run = (run_t *) zlistx_first (changed); run; run = (run_t *) zlistx_next (changed))
        s_run_persist (self, run);
    bool writing = qn_store_in_txn (self->store);
    if (qn_store_commit (self->store)) {
        zlistx_destroy (&changed);
        self->stats.commit_failures++;
        s_recover (self);
        s_pause (self);
        return;
    }
    if (writing) {
        self->stats.commits++;
        self->backoff_ms = 0;
    }
    //  Finished runs leave memory once they are safely stored; only a run
    //  that changed this turn can have just finished.
    zlistx_t *retain = NULL;
    for (run_t *run = (run_t *) zlistx_first (changed); run; run = (run_t *) zlistx_next (changed))
        if (qn_dag_finished (run->dag) && !run->listed) {
            uint32_t keep = qn_workflow_keep_runs (run->wf);
            if (!keep)
                keep = self->config.keep_runs;
            if (keep) {
                if (!retain) {
                    retain = zlistx_new ();
                    zlistx_set_destructor (retain, (zlistx_destructor_fn *) zstr_free);
                }
                zlistx_add_end (retain, zsys_sprintf ("%u %s", keep, run->info->workflow));
            }
            zhashx_delete (self->runs, s_run_key (run->id));
        }
    zlistx_destroy (&changed);
    //  Retention, in a transaction the next turn commits
    for (char *item = retain? (char *) zlistx_first (retain): NULL; item;
         item = (char *) zlistx_next (retain)) {
        char *name = strchr (item, ' ');
        s_retain (self, name + 1, (uint32_t) atol (item));
    }
    zlistx_destroy (&retain);

    outgoing_t *out = (outgoing_t *) zlistx_first (self->outbox);
    while (out) {
        zframe_t *frame = out->frame;
        out->frame = NULL;
        zframe_t *id = out->routing_id;
        out->routing_id = NULL;
        if (zframe_send (&id, out->sock, ZFRAME_MORE | ZFRAME_DONTWAIT) != 0
        ||  zframe_send (&frame, out->sock, ZFRAME_DONTWAIT) != 0) {
            self->stats.sends_refused++;
            if (out->request_id)
                zsys_warning ("a reply to request %llu could not be sent: %s",
                              (unsigned long long) out->request_id, zmq_strerror (zmq_errno ()));
        }
        zframe_destroy (&id);
        zframe_destroy (&frame);
        out = (outgoing_t *) zlistx_next (self->outbox);
    }
    zlistx_purge (self->outbox);
    s_send_acks (self);
}

static void
s_outgoing_destructor (void **item)
{
    s_outgoing_destroy ((outgoing_t **) item);
}

//  Who sent this message: the principal of the CURVE key libzmq reports
//  as the connection's User-Id.  Agents' sockets take agents and join
//  tokens, clients' sockets take users.  Anyone else is refused, counted
//  and logged with the key.  Without CURVE (--insecure) everyone is a
//  local administrator.
static bool
s_identify (qn_coordinator_t *self, zsock_t *sock, zframe_t *routing_id, zframe_t *payload,
            bool agents)
{
    self->sender = NULL;
    if (!self->keyring)
        return true;
    const char *key = zframe_meta (payload, "User-Id");
    const Qanat__Principal *principal = qn_keyring_lookup (self->keyring, key);
    bool fits = principal && (agents? !streq (principal->kind, "user")
                                    : streq (principal->kind, "user"));
    if (!fits) {
        self->stats.denied++;
        zsys_warning ("refused a message from %s key %s: %s", agents? "agent": "client",
                      key? key: "(none)", principal? "wrong socket for this key"
                                          : "not admitted (unknown, revoked or expired)");
        s_refuse (sock, routing_id, QANAT__REFUSAL_CODE__REFUSAL_DENIED,
                  "your key is not admitted here (unknown, revoked or expired)");
        return false;
    }
    self->sender = principal;
    return true;
}

//  A peer that keeps sending malformed messages is cut off: everything it
//  sends is dropped unread.  (A ROUTER socket cannot close one peer's
//  connection; with CURVE the peer's key can also be revoked.)
static void
s_strike (qn_coordinator_t *self, zsock_t *sock, zframe_t *routing_id, bool agents)
{
    char *key = s_route_key (routing_id);
    size_t *strikes = (size_t *) zhashx_lookup (self->strikes, key);
    if (!strikes) {
        strikes = (size_t *) zmalloc (sizeof (size_t));
        zhashx_insert (self->strikes, key, strikes);
    }
    if (++*strikes == STRIKES_MAX) {
        const char *who = self->sender? self->sender->name: "";
        zsys_warning ("cut off %s peer %s%s%s after %d malformed messages", agents? "agent": "client",
                      key, *who? " key of ": "", who, STRIKES_MAX);
        s_refuse (sock, routing_id, QANAT__REFUSAL_CODE__REFUSAL_MALFORMED,
                  "too many malformed messages: cut off");
    }
    zstr_free (&key);
}

static size_t
s_strikes (qn_coordinator_t *self, zframe_t *routing_id)
{
    if (zhashx_size (self->strikes) == 0)
        return 0;
    char *key = s_route_key (routing_id);
    size_t *strikes = (size_t *) zhashx_lookup (self->strikes, key);
    zstr_free (&key);
    return strikes? *strikes: 0;
}

//  Applies one message of a ROUTER socket (routing id, payload).  Anything
//  else is dropped and counted; a peer's first few drops are logged with
//  its identity, then it goes quiet so that a flood cannot fill the log.
static void
s_handle_message (qn_coordinator_t *self, zsock_t *sock, bool agents, zmsg_t *msg)
{
    zframe_t *routing_id = zmsg_pop (msg);
    zframe_t *payload = zmsg_pop (msg);
    uint64_t *malformed = agents? &self->stats.malformed_agent_frames
                                : &self->stats.malformed_client_frames;
    uint64_t malformed_before = self->stats.malformed_agent_frames
                              + self->stats.malformed_client_frames + self->stats.bad_version;
    size_t strikes = routing_id? s_strikes (self, routing_id): 0;
    bool quiet = strikes >= 3;
    if (strikes >= STRIKES_MAX) {
        (*malformed)++;
        malformed_before++;                 //  counted, but no new strike
    }
    else
    if (!routing_id || !payload || zmsg_size (msg) != 0) {
        (*malformed)++;
        char *peer = routing_id? zframe_strhex (routing_id): strdup ("?");
        if (!quiet)
            zsys_warning ("dropped a message of %zu frames from %s peer %s",
                          zmsg_size (msg) + (payload? 2: 1), agents? "agent": "client", peer);
        free (peer);
    }
    else {
        qn_msg_status_t status;
        uint32_t version = 0;
        Qanat__Envelope *env = qn_msg_decode (zframe_data (payload), zframe_size (payload),
                                              &status, &version);
        if (!env) {
            char *peer = zframe_strhex (routing_id);
            if (status == QN_MSG_BAD_VERSION) {
                self->stats.bad_version++;
                char *message = zsys_sprintf ("protocol version %u is not supported; this "
                                              "coordinator speaks version %u",
                                              version, QN_PROTOCOL_VERSION);
                s_refuse (sock, routing_id, QANAT__REFUSAL_CODE__REFUSAL_BAD_VERSION, message);
                free (message);
            }
            else
                (*malformed)++;
            if (!quiet)
                zsys_warning ("dropped %s (%zu bytes) from %s peer %s", qn_msg_status_str (status),
                              zframe_size (payload), agents? "agent": "client", peer);
            free (peer);
        }
        else {
            if (s_identify (self, sock, routing_id, payload, agents)) {
                if (agents)
                    s_handle_agent_message (self, routing_id, env);
                else
                    s_handle_client_message (self, routing_id, env);
            }
            self->sender = NULL;
            qn_msg_free (&env);
        }
    }
    uint64_t malformed_after = self->stats.malformed_agent_frames
                             + self->stats.malformed_client_frames + self->stats.bad_version;
    if (routing_id && malformed_after > malformed_before)
        s_strike (self, sock, routing_id, agents);
    zframe_destroy (&routing_id);
    zframe_destroy (&payload);
}

//  Reads up to BATCH_MAX messages from a ROUTER socket and applies each,
//  then ends the loop turn: one commit for the whole batch.
static int
s_read_socket (qn_coordinator_t *self, zsock_t *sock, bool agents)
{
    //  The sockets have a receive timeout of 0: zmsg_recv returns NULL as
    //  soon as nothing is waiting, with no poll per message.
    int64_t until = zclock_mono () + BATCH_MS;
    for (int count = 0; count < BATCH_MAX; count++) {
        zmsg_t *msg = zmsg_recv (sock);
        if (!msg)
            break;
        s_handle_message (self, sock, agents, msg);
        zmsg_destroy (&msg);
        if ((count & 63) == 63 && zclock_mono () >= until)
            break;
    }
    s_end_turn (self);
    return 0;
}

static int
s_on_agents (zloop_t *loop, zsock_t *sock, void *arg)
{
    (void) loop;
    return s_read_socket ((qn_coordinator_t *) arg, sock, true);
}

static int
s_on_clients (zloop_t *loop, zsock_t *sock, void *arg)
{
    (void) loop;
    return s_read_socket ((qn_coordinator_t *) arg, sock, false);
}

//  Agents silent past the deadline are lost, and so are the attempts they
//  ran, which then retry by policy.  Attempts of agents that never came
//  back after our own restart end the same way.
//  ---------------------------------------------------------------------
//  S3 retention: objects nobody has referenced for s3_delete_after_s are
//  deleted from their buckets by qn_s3gc, in two steps on two turns: one
//  turn marks them DELETING (so that a record arriving meanwhile is
//  refused, see qn_artifacts), a later one hands those committed to the
//  worker.  A restart finds the DELETING ones again.

#define S_S3_IN_FLIGHT_MAX  100

static void
s_on_s3_deleted (void *arg, const char *id, int status, const char *error)
{
    qn_coordinator_t *self = (qn_coordinator_t *) arg;
    zhashx_delete (self->s3_queued, id);
    if (qn_store_begin (self->store) != 0)
        return;                 //  still DELETING: queued again after a restart
    qn_artifacts_s3_deleted (self->artifacts, id, status == 0, qn_now_us ());
    self->s3_collect_due = true;        //  room for the next ones
    if (status == 0)
        self->stats.s3_objects_deleted++;
    else {
        self->stats.s3_delete_failures++;
        int64_t now = zclock_mono ();
        if (!self->s3_failure_logged || now - self->s3_failure_logged > 600 * 1000) {
            zsys_warning ("S3 retention: cannot delete an unreferenced artifact (%s); kept, "
                          "tried again later (give qanatd credentials for the bucket, or "
                          "--s3-delete-after -1)", error? error: "unknown error");
            self->s3_failure_logged = now;
        }
    }
    s_end_turn (self);
}

static void
s_s3_collect (qn_coordinator_t *self)
{
    if (!self->s3gc || self->config.s3_delete_after_s < 0)
        return;
    size_t pending = qn_s3gc_pending (self->s3gc);
    if (pending >= S_S3_IN_FLIGHT_MAX || qn_store_begin (self->store) != 0)
        return;
    //  Step two first: what an earlier turn marked, now committed
    qn_store_s3_object_t *objects = NULL;
    size_t count = 0;
    if (qn_artifacts_s3_deleting (self->artifacts, &objects, &count,
                                  S_S3_IN_FLIGHT_MAX + zhashx_size (self->s3_queued)) == 0)
        for (size_t i = 0; i < count && pending < S_S3_IN_FLIGHT_MAX; i++) {
            if (zhashx_lookup (self->s3_queued, objects [i].id))
                continue;
            Qanat__ArtifactStore *store = qanat__artifact_store__unpack (
                NULL, objects [i].store_size, objects [i].store);
            const char *bucket_end = objects [i].location && store && store->bucket
                ? objects [i].location + 5 + strlen (store->bucket): NULL;
            bool queued = bucket_end && strlen (objects [i].location) > 6 + strlen (store->bucket)
                       && *bucket_end == '/'
                       && qn_s3gc_delete (self->s3gc, objects [i].id, store, bucket_end + 1) == 0;
            if (queued) {
                zhashx_insert (self->s3_queued, objects [i].id, (void *) 1);
                pending++;
            }
            else    //  a row we cannot act on: back to live, tried again later
                qn_artifacts_s3_deleted (self->artifacts, objects [i].id, false, qn_now_us ());
            if (store)
                qanat__artifact_store__free_unpacked (store, NULL);
        }
    qn_store_s3_objects_free (&objects, count);
    //  Step one: mark the next ones
    if (pending < S_S3_IN_FLIGHT_MAX
    &&  qn_artifacts_s3_pick (self->artifacts, qn_now_us (),
                              self->config.s3_delete_after_s * 1000000,
                              &objects, &count, S_S3_IN_FLIGHT_MAX - pending) == 0) {
        //  Marked this turn: handed over on the next pass, once committed
        if (count)
            self->s3_collect_due = true;
        qn_store_s3_objects_free (&objects, count);
    }
}

static int
s_on_timer (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    qn_coordinator_t *self = (qn_coordinator_t *) arg;
    int64_t now = zclock_mono ();
    if (++self->timer_turns % 8 == 0)           //  every 2 s
        qn_blobserver_tick (self->blobserver);
    //  S3 retention: soon after references fell, else once a minute (for
    //  objects whose grace has run out since)
    if ((self->s3_collect_due && self->timer_turns % 4 == 1) || self->timer_turns % 240 == 1) {
        self->s3_collect_due = false;
        s_s3_collect (self);
    }
    if (self->timer_turns % (4 * 3600) == 1) {  //  at start, then hourly
        //  Uploads from agents that never came back to finish them
        uint64_t freed = qn_blobstore_sweep_partials (qn_artifacts_blobs (self->artifacts),
                                                      QN_COORDINATOR_PARTIAL_MAX_AGE_S);
        self->stats.blob_bytes_freed += freed;
        if (freed)
            zsys_info ("removed %" PRIu64 " bytes of uploads not resumed for %d hours", freed,
                       QN_COORDINATOR_PARTIAL_MAX_AGE_S / 3600);
    }
    for (agent_t *agent = (agent_t *) zhashx_first (self->agents); agent;
         agent = (agent_t *) zhashx_next (self->agents)) {
        bool was_suspect = agent->state && streq (agent->state, "suspect");
        bool changed = false;
        if (agent->routing_id && now - agent->last_seen > agent->info->lost_after_ms) {
            changed = true;
            zsys_warning ("agent %s lost: silent for %lld ms", agent->name,
                          (long long) (now - agent->last_seen));
            s_agent_disconnect (self, agent);
            agent->lost = true;
            agent->info->running = 0;
        }
        s_agent_update_state (agent, now);
        bool is_suspect = streq (agent->state, "suspect");
        if (is_suspect && !was_suspect)
            zsys_warning ("agent %s suspect: silent for %lld ms", agent->name,
                          (long long) (now - agent->last_seen));
        if (was_suspect != is_suspect || changed)
            s_agent_persist (self, agent);
    }
    //  The attempts of agents gone past their deadline are lost.
    zlistx_t *lost = zlistx_new ();
    for (agent_t *agent = (agent_t *) zhashx_first (self->agents); agent;
         agent = (agent_t *) zhashx_next (self->agents))
        if (!agent->routing_id && zhashx_size (agent->attempts)
        &&  now - agent->last_seen > agent->info->lost_after_ms)
            for (ready_t *ref = (ready_t *) zhashx_first (agent->attempts); ref;
                 ref = (ready_t *) zhashx_next (agent->attempts)) {
                ready_t *copy = (ready_t *) zmalloc (sizeof (ready_t));
                *copy = *ref;
                zlistx_add_end (lost, copy);
            }
    for (ready_t *ref = (ready_t *) zlistx_first (lost); ref; ref = (ready_t *) zlistx_next (lost)) {
        run_t *run = s_run_find (self, ref->run_id);
        if (run && s_task (run, ref->task)->status == QANAT__TASK_STATUS__TASK_RUNNING)
            s_task_attempt_failed (self, run, ref->task, "agent lost", "agent_lost");
        free (ref);
    }
    zlistx_destroy (&lost);
    if (self->keyring)
        qn_keyring_expire (self->keyring);
    //  Retries whose backoff is over join their queue.
    int64_t wall = qn_now_us ();
    ready_t *ready = (ready_t *) zlistx_first (self->delayed);
    while (ready) {
        void *handle = zlistx_cursor (self->delayed);
        ready_t *next = (ready_t *) zlistx_next (self->delayed);
        run_t *run = s_run_find (self, ready->run_id);
        if (!run || s_task (run, ready->task)->retry_at_us <= wall) {
            if (run && s_task (run, ready->task)->status == QANAT__TASK_STATUS__TASK_QUEUED)
                s_queue_ready (self, run, ready->task);
            zlistx_delete (self->delayed, handle);
        }
        ready = next;
    }
    s_end_turn (self);
    return 0;
}

//  ---------------------------------------------------------------------
//  Construction

static int
s_bind (zsock_t *sock, const char *endpoint, char **bound_p, char **error_p)
{
    qn_msg_prepare_socket (sock);
    zsock_set_router_mandatory (sock, 0);
    zsock_set_rcvtimeo (sock, 0);
    if (zsock_bind (sock, "%s", endpoint) == -1) {
        *error_p = zsys_sprintf ("cannot bind %s: %s", endpoint, zmq_strerror (zmq_errno ()));
        return -1;
    }
    *bound_p = zsock_last_endpoint (sock);
    return 0;
}

qn_coordinator_t *
qn_coordinator_new (const qn_coordinator_config_t *config, char **error_p)
{
    qn_coordinator_t *self = (qn_coordinator_t *) zmalloc (sizeof (qn_coordinator_t));
    self->config = *config;
    if (!self->config.heartbeat_ms)
        self->config.heartbeat_ms = 1000;
    if (!self->config.lost_after_ms)
        self->config.lost_after_ms = 30000;
    if (!self->config.suspect_after_ms || self->config.suspect_after_ms > self->config.lost_after_ms)
        self->config.suspect_after_ms = self->config.lost_after_ms < 5000? self->config.lost_after_ms: 5000;
    self->data_dir = strdup (config->data_dir);
    self->config.data_dir = self->data_dir;
    qanat__stats__init (&self->stats);
    self->agents = qn_hash_new ();
    if (!self->agents) {
        *error_p = strdup ("cannot make hash tables (libsodium unusable?)");
        free (self->data_dir);
        free (self);
        return NULL;
    }
    zhashx_set_destructor (self->agents, s_agent_destructor);
    self->by_route = qn_hash_new ();
    self->runs = qn_hash_new ();
    zhashx_set_destructor (self->runs, s_run_destructor);
    self->queues = qn_hash_new ();
    zhashx_set_destructor (self->queues, (zhashx_destructor_fn *) zlistx_destroy);
    self->delayed = zlistx_new ();
    zlistx_set_destructor (self->delayed, s_ready_destructor);
    self->with_credit = qn_hash_new ();
    self->dirty_runs = zlistx_new ();
    self->acks = qn_hash_new ();
    zhashx_set_destructor (self->acks, s_pending_ack_destructor);
    self->outbox = zlistx_new ();
    zlistx_set_destructor (self->outbox, s_outgoing_destructor);

    self->store = qn_store_new (self->data_dir, config->durable, error_p);
    if (!self->store) {
        qn_coordinator_destroy (&self);
        return NULL;
    }
    self->strikes = qn_hash_new ();
    zhashx_set_destructor (self->strikes, s_free_item);
    char *blob_dir = zsys_sprintf ("%s/blobs", self->data_dir);
    self->artifacts = blob_dir? qn_artifacts_new (self->store, blob_dir, error_p): NULL;
    zstr_free (&blob_dir);
    self->uploading = qn_hash_new ();
    zhashx_set_destructor (self->uploading, s_free_item);
    self->s3_queued = qn_hash_new ();
    if (self->artifacts)
        self->blobserver = qn_blobserver_new (qn_artifacts_blobs (self->artifacts),
                                              s_blob_send, s_blob_stored, self);
    if (!self->artifacts || !self->blobserver) {
        qn_coordinator_destroy (&self);
        return NULL;
    }
    if (!config->insecure) {
        //  Secrets only where they can be given out over CURVE.
        self->vault = qn_vault_new (self->data_dir, self->store, error_p);
        if (!self->vault) {
            qn_coordinator_destroy (&self);
            return NULL;
        }
        self->keyring = qn_keyring_new (self->data_dir, self->store, config->client_endpoint,
                                        config->agent_endpoint, error_p);
        if (!self->keyring) {
            qn_coordinator_destroy (&self);
            return NULL;
        }
    }
    s_load_agents (self);
    if (s_reload (self, error_p) || qn_store_commit (self->store)) {
        qn_coordinator_destroy (&self);
        return NULL;
    }
    self->agents_sock = zsock_new (ZMQ_ROUTER);
    self->clients_sock = zsock_new (ZMQ_ROUTER);
    if (self->keyring && self->agents_sock && self->clients_sock) {
        qn_keyring_secure (self->keyring, self->agents_sock);
        qn_keyring_secure (self->keyring, self->clients_sock);
    }
    if (!self->agents_sock || !self->clients_sock
    ||  s_bind (self->agents_sock, config->agent_endpoint, &self->agent_endpoint, error_p)
    ||  s_bind (self->clients_sock, config->client_endpoint, &self->client_endpoint, error_p)) {
        qn_coordinator_destroy (&self);
        return NULL;
    }
    self->started = zclock_mono ();
    return self;
}

void
qn_coordinator_destroy (qn_coordinator_t **self_p)
{
    assert (self_p);
    qn_coordinator_t *self = *self_p;
    if (self) {
        qn_s3gc_destroy (&self->s3gc);
        zhashx_destroy (&self->s3_queued);
        zloop_destroy (&self->loop);
        zsock_destroy (&self->agents_sock);
        zsock_destroy (&self->clients_sock);
        qn_keyring_destroy (&self->keyring);
        qn_vault_destroy (&self->vault);
        qn_blobserver_destroy (&self->blobserver);
        qn_artifacts_destroy (&self->artifacts);
        zhashx_destroy (&self->uploading);
        zhashx_destroy (&self->strikes);
        zlistx_destroy (&self->outbox);
        zhashx_destroy (&self->acks);
        zhashx_destroy (&self->queues);
        zlistx_destroy (&self->delayed);
        zhashx_destroy (&self->with_credit);
        zlistx_destroy (&self->dirty_runs);
        zhashx_destroy (&self->runs);
        zhashx_destroy (&self->by_route);
        zhashx_destroy (&self->agents);
        if (self->store)
            qn_store_commit (self->store);
        qn_store_destroy (&self->store);
        zstr_free (&self->agent_endpoint);
        zstr_free (&self->client_endpoint);
        free (self->data_dir);
        free (self);
        *self_p = NULL;
    }
}

const char *
qn_coordinator_client_endpoint (qn_coordinator_t *self)
{
    return self->client_endpoint;
}

const char *
qn_coordinator_agent_endpoint (qn_coordinator_t *self)
{
    return self->agent_endpoint;
}

void
qn_coordinator_feed (qn_coordinator_t *self, bool agents, const void *routing_id, size_t id_size,
                     const void *payload, size_t size)
{
    zmsg_t *msg = zmsg_new ();
    zmsg_addmem (msg, routing_id, id_size);
    zmsg_addmem (msg, payload, size);
    s_handle_message (self, agents? self->agents_sock: self->clients_sock, agents, msg);
    zmsg_destroy (&msg);
    s_end_turn (self);
}

const char *
qn_coordinator_admin_key (qn_coordinator_t *self)
{
    return self->keyring? qn_keyring_admin_key_path (self->keyring): NULL;
}

int
qn_coordinator_run (qn_coordinator_t *self)
{
    self->loop = zloop_new ();
    if (self->config.s3_delete_after_s >= 0) {
        self->s3gc = qn_s3gc_new (self->loop, s_on_s3_deleted, self);
        if (!self->s3gc)
            zsys_warning ("cannot start the S3 deletion worker: S3 artifacts stay in "
                          "their buckets");
    }
    zloop_reader (self->loop, self->agents_sock, s_on_agents, self);
    zloop_reader (self->loop, self->clients_sock, s_on_clients, self);
    zloop_timer (self->loop, 250, 0, s_on_timer, self);
    zloop_start (self->loop);
    s_end_turn (self);
    return 0;
}
