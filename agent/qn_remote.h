/*  qn_remote - what the backends of remote engines reached over REST
    (Ray, Airflow) share: their log lines as qanat events, their
    credentials, and their answers read as one kind of reply.

    Log lines.  The lines of a remote engine's log (a Ray job's driver
    log, an Airflow task instance's log) become qanat events.

    A remote engine gives an attempt no $QANAT_METRICS or $QANAT_VALUES
    file the agent can read, only its log.  So two kinds of line in it
    are qanat's, wherever the engine lets the task's output through:
        ::qanat-metric NAME=VALUE [step=N]     a metric point
        ::qanat-output NAME=VALUE              a value output
    A metric becomes a metric event (qn_backend_attempt_metric_line, the
    rule of every backend without a metrics file); a value is appended as NAME=VALUE
    to the attempt's values file (beside its work directory, where the
    agent reads values, see qn_backend.h); neither is shown as a log
    line.  Every other line is a log line (stdout, kept for the stack
    trace).  A malformed marker line is reported as a system line.
*/
#ifndef QN_REMOTE_H_INCLUDED
#define QN_REMOTE_H_INCLUDED

#include "qn_backend.h"
#include "qn_rest.h"

#ifdef __cplusplus
extern "C" {
#endif

#define QN_REMOTE_OUTPUT_PREFIX  "::qanat-output "

//  One whole line (no newline) of an attempt's engine log.  The task's
//  own text starts at payload (0, or after the engine's own prefix such
//  as Airflow's "[time] {file:line} INFO - "): markers are looked for
//  there.  values_path: the attempt's values file, NULL when it has none
//  (an output line is then refused with a system line).
void
    qn_remote_log_line (qn_backend_attempt_t *attempt, const char *values_path,
                        const char *line, size_t size, size_t payload, int64_t time_us);

//  Appends "NAME=VALUE" (size bytes, no newline) to the attempt's values
//  file; a bad name, no values file or a failed write is a system line.
void
    qn_remote_output (qn_backend_attempt_t *attempt, const char *values_path,
                      const char *text, size_t size);

//  Makes <dir> and <dir>/work (the work directory reported in started,
//  whose "values" sibling the agent reads) if missing.  -1 with the
//  reason in error.
int
    qn_remote_log_dirs (const char *dir, char *error, size_t error_size);

//  ---------------------------------------------------------------------
//  Credentials, only ever from the agent's side (--backend-option paths
//  and the environment), never from a workflow

typedef struct {
    char *token_file;           //  a bearer token, read again for every call
                                //  (a rotated token is picked up), or NULL
    char *username;             //  basic auth, with...
    char *password_file;        //  ...the password in this file, or NULL
    char *ca_file;              //  CA bundle for https, or NULL (the system's)
} qn_remote_auth_t;

//  Frees the fields of auth.
void
    qn_remote_auth_fini (qn_remote_auth_t *auth);

//  A qn_rest_setup_fn for a qn_remote_auth_t *: the Authorization header
//  and the CA.  Refuses the call when a credentials file cannot be read.
int
    qn_remote_setup (void *arg, CURL *easy, struct curl_slist **headers);

//  ---------------------------------------------------------------------
//  Answers

typedef struct {
    long status;                //  HTTP status, 0 = no answer
    json_t *json;               //  the answer as JSON (borrowed), or NULL
    const char *text;           //  the raw answer, or NULL
    size_t size;
    const char *error;          //  why there was no answer
    int64_t retry_after_ms;     //  -1 = none
} qn_remote_reply_t;

//  Fills reply inside a qn_rest completion callback.
void
    qn_remote_reply (qn_rest_t *rest, uint64_t call, long status, json_t *body,
                     const char *error, qn_remote_reply_t *reply);

//  "HTTP 429: <the engine's message>" (its JSON detail, message or title,
//  else the first line of its text), or the transport's error.
void
    qn_remote_describe (const qn_remote_reply_t *reply, char *buffer, size_t size);

//  How long to wait before try number tries after reply: its Retry-After,
//  else exponential backoff from 500 ms up to 60 s.
int64_t
    qn_remote_wait_ms (const qn_remote_reply_t *reply, unsigned tries);

//  ---------------------------------------------------------------------
//  A backend of a remote engine: its state and its attempts' common part,
//  the poll timer, one call in flight per attempt, waits after troubles,
//  stop, shutdown.  The backend's own state embeds qn_remote_t first, its
//  attempts qn_remote_attempt_t first.

typedef struct _qn_remote_t qn_remote_t;
typedef struct _qn_remote_attempt_t qn_remote_attempt_t;

typedef struct {
    const char *name;           //  "ray": options prefix, log source, data subdirectory
    const char *what;           //  "ray job": how reasons name an attempt's work
    const char *url_option;     //  the option with the engine's address ("address")
    const char *url_env [3];    //  else these variables, NULL-terminated
    bool needs_credentials;     //  a token file or a user and password file, always
    //  The attempt's next call (no call is in flight, no stop asked):
    //  start the work when it does not exist yet, else poll it.
    void (*step) (qn_remote_attempt_t *attempt);
    //  The call that ends the attempt's work (a stop, a state change):
    //  fills call (its url in url), false when there is none.
    bool (*end_call) (qn_remote_attempt_t *attempt, qn_rest_call_t *call, char *url,
                      size_t url_size);
    //  Frees an attempt (which calls qn_remote_attempt_fini).
    void (*destroy) (qn_remote_attempt_t *attempt);
} qn_remote_ops_t;

struct _qn_remote_t {
    qn_backend_front_t front;   //  first: the front end's ops work on us
    const qn_remote_ops_t *ops;
    qn_rest_t *rest;
    qn_remote_auth_t auth;
    char *url;                  //  the engine's address, no trailing '/'
    char *data_dir;
    char *agent_name;
    int poll_ms;
};

struct _qn_remote_attempt_t {
    qn_backend_attempt_t base;  //  first
    qn_remote_t *engine;
    char id [96];               //  qanat-<run>-<task index>-<attempt>, the idempotent key
    char engine_id [QN_BACKEND_JOB_ID_MAX + 1];
    char *dir;                  //  <data_dir>/<name>/<id>: work/ and values
    char *values;
    char *workdir;
    bool exists;                //  the work is there (started, found or re-attached)
    bool verified;              //  it was checked to be this attempt's
    bool announced;             //  started was reported
    uint64_t call;              //  the one call in flight, 0 = none
    int tries;                  //  of the call being tried again
    int auth_failures;          //  401/403 in a row
    int unsent;                 //  calls in a row that could not be made
    int64_t not_before;         //  zclock_mono: no call before (Retry-After, backoff)
};

//  Sets up the common state from the agent's options (known: the
//  backend's, NULL-terminated, besides url_option, token_file, username,
//  password_file, ca_file and poll_ms).  -1 after logging why (call
//  qn_remote_fini all the same).
int
    qn_remote_init (qn_remote_t *self, const qn_remote_ops_t *ops, zloop_t *loop,
                    const qn_backend_config_t *config, const qn_backend_events_t *events,
                    void *arg);

//  Destroys the attempts left and frees the common state.
void
    qn_remote_fini (qn_remote_t *self);

//  The ops create and destroy for a backend whose state is a bare
//  qn_remote_t: a new state (NULL after logging why), and its end.
void *
    qn_remote_create (const qn_remote_ops_t *ops, zloop_t *loop,
                      const qn_backend_config_t *config, const qn_backend_events_t *events,
                      void *arg);
void
    qn_remote_destroy (void **state_p);

//  The attempt key of a re-attach's assignment; -1 with the reason in
//  error when that attempt is followed already.
int
    qn_remote_reattach_key (qn_remote_t *self, const Qanat__Assign *assign,
                            qn_attempt_key_t *key, char *error, size_t error_size);

//  Sets up an attempt's common part.  Its id is the idempotent key of
//  every backend, qanat-<run>-<task index>-<attempt> (decimal numbers
//  only: any engine takes it, and at most 48 bytes it fits Databricks'
//  64), or id when not NULL (a re-attach: the id the engine knows, which
//  must start with qanat-<run>- and end with -<attempt>).  -1 when out
//  of memory or id does not fit.
int
    qn_remote_attempt_init (qn_remote_attempt_t *attempt, qn_remote_t *engine,
                            const qn_attempt_key_t *key, const char *id);

//  Frees an attempt's common part, cancelling its call.
void
    qn_remote_attempt_fini (qn_remote_attempt_t *attempt);

//  Follows a new attempt (start: makes its directories; its first call
//  is made now, -1 with the reason in error when none could be) or an
//  existing one (reattach: exists set).
int
    qn_remote_follow (qn_remote_attempt_t *attempt, uint32_t timeout_s, char *error,
                      size_t error_size);

//  The attempt's next step, unless a call is in flight or a wait is on.
void
    qn_remote_next (qn_remote_attempt_t *attempt);

//  Starts a call (Accept: application/json) as the attempt's one call.
void
    qn_remote_request (qn_remote_attempt_t *attempt, const char *method, const char *url,
                       json_t *body, qn_rest_done_fn *done);

//  Reports started with the engine's job id and the link to its page.
void
    qn_remote_started (qn_remote_attempt_t *attempt, const char *engine_url);

//  Reports finished and destroys the attempt.
void
    qn_remote_finish (qn_remote_attempt_t *attempt, int exit_code, const char *reason,
                      Qanat__EndKind kind);

//  An answer that is not a success.  Transient ones (no answer, 429,
//  5xx) wait (Retry-After, backoff) to be tried again, up to max_tries;
//  401/403 up to three times in a row; then the attempt finishes with
//  kind and the engine's own message (or its stop reason).  True when it
//  finished (and is gone).
bool
    qn_remote_trouble (qn_remote_attempt_t *attempt, const qn_remote_reply_t *reply,
                       const char *what, int max_tries, Qanat__EndKind kind);

//  The ops stop, for a front end of qn_remote_t
void
    qn_remote_stop (qn_backend_attempt_t *base, const char *reason, Qanat__EndKind kind);

#ifdef __cplusplus
}
#endif
#endif
