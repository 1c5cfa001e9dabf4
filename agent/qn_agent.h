/*  qn_agent - the agent engine: one DEALER connection to the coordinator,
    attempts run through a backend, events buffered until acknowledged.

    Conversation (proto/qanat.proto, docs/protocol.md):
    - Register at start and whenever we learn we are not registered;
      Welcome -> Credit{capacity - running} and replay of every
      unacknowledged event.
    - Heartbeat every heartbeat_ms.  Silence from the coordinator for
      5 x heartbeat_ms means disconnected: attempts keep running, events
      keep buffering, Register is sent every heartbeat until a Welcome.
    - Assign starts an attempt; its events carry seq 1, 2, 3...; Credit{1}
      when it ends.  Ack{attempt, seq} drops the events up to seq.
    - Cancel kills an attempt.  Refusal NOT_REGISTERED -> Register again;
      BAD_VERSION -> the engine stops with an error.
*/
#ifndef QN_AGENT_H_INCLUDED
#define QN_AGENT_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Unacknowledged bytes above which we stop reading the attempts' output
#define QN_AGENT_OUTBOX_LIMIT  (64 * 1024 * 1024)

typedef struct {
    const char *endpoint;           //  coordinator's agent endpoint
    const char *name;
    const char **label_keys;        //  label_count each
    const char **label_values;
    size_t label_count;
    uint32_t slots;
    const char *data_dir;           //  must exist
    size_t outbox_limit;            //  0 = QN_AGENT_OUTBOX_LIMIT
    int kill_grace_ms;              //  0 = backend default (5 s)
} qn_agent_config_t;

typedef struct _qn_agent_t qn_agent_t;

//  Creates the engine and connects (ZeroMQ connects lazily: a missing
//  coordinator is not an error).  The config is copied.  NULL on failure.
qn_agent_t *
    qn_agent_new (const qn_agent_config_t *config);

//  Runs until SIGINT/SIGTERM or a fatal refusal, then kills the running
//  attempts.  Returns 0 after a signal, -1 after a fatal error.
int
    qn_agent_run (qn_agent_t *self);

//  Destroys the engine and nulls the pointer.  Idempotent.
void
    qn_agent_destroy (qn_agent_t **self_p);

//  Logging to stderr with a timestamp and a level, shared by the engine,
//  its backends and main.
typedef enum {
    QN_LOG_DEBUG,
    QN_LOG_INFO,
    QN_LOG_WARNING,
    QN_LOG_ERROR
} qn_log_level_t;

void
    qn_agent_log_set_verbose (bool verbose);

void
    qn_agent_log (qn_log_level_t level, const char *format, ...)
    __attribute__ ((format (printf, 2, 3)));

#ifdef __cplusplus
}
#endif
#endif
