/*  qn_coordinator - the coordinator engine behind qanatd.

    Binds a ROUTER socket for agents and one for clients, keeps every active
    run's graph in memory with the LMDB store as the truth underneath, and
    drives a zloop: it reads a batch of messages, applies them, dispatches
    ready tasks, commits once, and only then sends what depends on that
    commit (assignments, acknowledgements, replies).
*/
#ifndef QN_COORDINATOR_H_INCLUDED
#define QN_COORDINATOR_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  An upload an agent has not resumed for this long is removed: the agent
//  is gone, or its attempt ended long ago
#define QN_COORDINATOR_PARTIAL_MAX_AGE_S  (24 * 3600)

typedef struct {
    const char *data_dir;
    const char *client_endpoint;     //  e.g. tcp://127.0.0.1:7710
    const char *agent_endpoint;      //  e.g. tcp://127.0.0.1:7711
    bool durable;                    //  fsync every commit (default true)
    //  The default timer profile; an agent may bring its own.
    uint32_t heartbeat_ms;           //  interval agents are told to use
    uint32_t suspect_after_ms;       //  an agent silent this long gets no new work
    uint32_t lost_after_ms;          //  an agent silent this long is lost
    bool verbose;
    bool insecure;                   //  plaintext sockets, no keys: for trusted test setups only
    uint32_t keep_runs;              //  runs kept per workflow without keep_runs; 0 = all
    //  An S3 object no record has referenced for this long is deleted
    //  from its bucket; -1 = never.  0 in a zeroed config means at once.
    int64_t s3_delete_after_s;
    //  The HTTP side's two sockets (see qn_api_bridge.c): requests with an
    //  API token come in on a ROUTER at api_endpoint (NULL: the default,
    //  inproc://qanat-api), and what each commit changed goes out on a PUB
    //  at events_endpoint (NULL: inproc://qanat-events).  Two engines in
    //  one process need endpoints of their own.
    const char *api_endpoint;
    const char *events_endpoint;
    //  Notifications (qn_notify.h): the default `notify:` for workflows
    //  without one (a YAML file, NULL = none), how long a notification is
    //  retried (0 in a zeroed config: 24 h), and the web UI's address for
    //  links (NULL = none)
    const char *notify_file;
    int64_t notify_give_up_s;
    const char *public_url;
    //  Among the agents a task fits on: false = the tightest fit
    //  (bin-packing), true = the loosest (spread).  docs/scheduling.md
    bool spread;
} qn_coordinator_config_t;

#define QN_COORDINATOR_API_ENDPOINT     "inproc://qanat-api"
#define QN_COORDINATOR_EVENTS_ENDPOINT  "inproc://qanat-events"

typedef struct _qn_coordinator_t qn_coordinator_t;

//  Opens the store, reloads active runs and binds both sockets.  NULL on
//  failure with *error_p a malloc'd message.
qn_coordinator_t *
    qn_coordinator_new (const qn_coordinator_config_t *config, char **error_p);

void
    qn_coordinator_destroy (qn_coordinator_t **self_p);

//  Runs until interrupted (SIGINT/SIGTERM).  Returns 0.
int
    qn_coordinator_run (qn_coordinator_t *self);

//  The endpoints actually bound (a "*" port resolved).
const char *
    qn_coordinator_client_endpoint (qn_coordinator_t *self);
const char *
    qn_coordinator_agent_endpoint (qn_coordinator_t *self);

//  Handles one message as if it had arrived on the agents' (or clients')
//  socket, then ends the loop turn.  For tests and fuzzing; the identity
//  check sees no CURVE key, so use it with an insecure coordinator.
void
    qn_coordinator_feed (qn_coordinator_t *self, bool agents, const void *routing_id,
                         size_t id_size, const void *payload, size_t size);

//  One loop turn by hand, for tests: reads what waits on each socket
//  (the request bridge's too) and ends the turn after each.
void
    qn_coordinator_turn (qn_coordinator_t *self);

//  The credential this process's own HTTP server uses on the request
//  bridge for what it serves without a caller's token (/metrics from
//  loopback): a secret made at each start, never stored, with a user's
//  rights.  NULL when insecure (no keyring: no credential is needed).
const char *
    qn_coordinator_http_credential (qn_coordinator_t *self);

//  Path of the admin client key, or NULL when insecure.
const char *
    qn_coordinator_admin_key (qn_coordinator_t *self);

#endif
