/*  Tests for the agent: a fake coordinator (ROUTER on tcp://127.0.0.1:*,
    the real codec) drives the built qanat-agent binary, started as a
    child process.  Every wait has a deadline, so a broken agent fails the
    test instead of hanging it.

    The binary is $QANAT_BUILDDIR/agent/qanat-agent, else
    ./agent/qanat-agent (tests run from the build's top directory).
    Set QANAT_TEST_VERBOSE=1 to see the agent's log on stderr.
*/
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <czmq.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "qn_msg.h"
#include "qn_token.h"

#define MAX_EVENTS  50000

typedef struct {
    zsock_t *router;
    char *endpoint;
    zframe_t *agent_id;             //  routing id of the agent
    pid_t pid;
    char dir [256];                 //  temporary data directory

    //  What the fake coordinator does on its own
    bool auto_welcome;
    bool auto_ack;
    bool auto_heartbeat;
    uint32_t heartbeat_ms;          //  sent in Welcome

    //  What it saw
    Qanat__Envelope *events [MAX_EVENTS];
    size_t event_count;
    size_t registers;
    Qanat__Envelope *last_register;
    size_t credits;                 //  Credit messages
    uint64_t credit_slots;          //  sum of their slots
    size_t heartbeats;
    bool spool_full;                //  in the last heartbeat
    uint64_t spool_bytes;
    size_t drains;                  //  Drain messages
    char drain_reason [128];
    int64_t register_times [64];    //  zclock_mono of the first Registers
    Qanat__Envelope *transient;     //  the last message not kept above

    //  CURVE: the fake is a CURVE server under czmq's zauth (any key
    //  admitted; the key of each message is in its User-Id)
    bool secure;
    zactor_t *auth;
    zcert_t *server_cert;
    zcert_t *token_cert;            //  the join token's key pair
    char *token;
    bool join;                      //  start the agent with --join token
    const char *enrol_refusal;      //  refuse Enrol with this, else grant
    size_t enrols;
    uint8_t enrol_key [32];         //  the public key in the last Enrol
    size_t enrol_labels;            //  labels it asked for
    char enrol_user [QN_Z85_KEY_SIZE + 1];      //  the key it came with
    char register_user [QN_Z85_KEY_SIZE + 1];   //  the key of the last Register
} fake_t;


//  ---------------------------------------------------------------------
//  The fake coordinator

static void
s_send (fake_t *fake, Qanat__Envelope *env)
{
    assert_non_null (fake->agent_id);
    assert_int_equal (qn_msg_send (fake->router, fake->agent_id, env), 0);
}

static void
s_send_raw (fake_t *fake, const void *data, size_t size)
{
    zframe_t *id = zframe_dup (fake->agent_id);
    zframe_send (&id, fake->router, ZFRAME_MORE);
    zframe_t *frame = zframe_new (data, size);
    zframe_send (&frame, fake->router, 0);
}

static void
s_send_welcome (fake_t *fake)
{
    Qanat__Welcome welcome = QANAT__WELCOME__INIT;
    welcome.agent_name = "test-agent";
    welcome.heartbeat_ms = fake->heartbeat_ms;
    Qanat__Envelope env = QANAT__ENVELOPE__INIT;
    env.body_case = QANAT__ENVELOPE__BODY_WELCOME;
    env.welcome = &welcome;
    s_send (fake, &env);
}

static void
s_send_ack (fake_t *fake, const Qanat__AttemptRef *attempt, uint64_t seq)
{
    Qanat__AttemptRef ref = *attempt;
    Qanat__Ack ack = QANAT__ACK__INIT;
    ack.attempt = &ref;
    ack.seq = seq;
    Qanat__Envelope env = QANAT__ENVELOPE__INIT;
    env.body_case = QANAT__ENVELOPE__BODY_ACK;
    env.ack = &ack;
    s_send (fake, &env);
}

static void
s_send_refusal (fake_t *fake, uint32_t code, const char *message)
{
    Qanat__Refusal refusal = QANAT__REFUSAL__INIT;
    refusal.code = code;
    refusal.message = (char *) message;
    Qanat__Envelope env = QANAT__ENVELOPE__INIT;
    env.body_case = QANAT__ENVELOPE__BODY_REFUSAL;
    env.refusal = &refusal;
    s_send (fake, &env);
}

static void
s_send_cancel (fake_t *fake, uint64_t run_id, const char *reason)
{
    Qanat__AttemptRef ref = QANAT__ATTEMPT_REF__INIT;
    ref.run_id = run_id;
    ref.attempt = 1;
    Qanat__Cancel cancel = QANAT__CANCEL__INIT;
    cancel.attempt = &ref;
    cancel.reason = (char *) reason;
    Qanat__Envelope env = QANAT__ENVELOPE__INIT;
    env.body_case = QANAT__ENVELOPE__BODY_CANCEL;
    env.cancel = &cancel;
    s_send (fake, &env);
}

//  Assigns attempt 1 of task 0 of run_id, running argv (NULL-terminated),
//  with env given as "K=V" strings (NULL-terminated, may be NULL).
static void
s_send_assign_redact (fake_t *fake, uint64_t run_id, uint32_t timeout_s,
                      const char **argv, const char **env, const char **redact);

static void
s_send_assign (fake_t *fake, uint64_t run_id, uint32_t timeout_s,
               const char **argv, const char **env)
{
    s_send_assign_redact (fake, run_id, timeout_s, argv, env, NULL);
}

//  As s_send_assign, with secret values to redact (NULL-terminated, may
//  be NULL).
static void
s_send_assign_redact (fake_t *fake, uint64_t run_id, uint32_t timeout_s,
                      const char **argv, const char **env, const char **redact)
{
    Qanat__AttemptRef ref = QANAT__ATTEMPT_REF__INIT;
    ref.run_id = run_id;
    ref.attempt = 1;
    Qanat__Assign assign = QANAT__ASSIGN__INIT;
    assign.attempt = &ref;
    assign.task_name = "task";
    assign.workflow = "wf";
    size_t argc = 0;
    while (argv [argc])
        argc++;
    assign.n_argv = argc;
    assign.argv = (char **) argv;
    Qanat__Label labels [8];
    Qanat__Label *label_ptrs [8];
    char keys [8][64];
    size_t n_env = 0;
    for (; env && env [n_env] && n_env < 8; n_env++) {
        qanat__label__init (&labels [n_env]);
        const char *eq = strchr (env [n_env], '=');
        assert_non_null (eq);
        snprintf (keys [n_env], sizeof (keys [n_env]), "%.*s", (int) (eq - env [n_env]),
                  env [n_env]);
        labels [n_env].key = keys [n_env];
        labels [n_env].value = (char *) eq + 1;
        label_ptrs [n_env] = &labels [n_env];
    }
    assign.n_env = n_env;
    assign.env = label_ptrs;
    assign.timeout_s = timeout_s;
    //  Asks for no resources: such an attempt reports no usage metrics,
    //  and these tests count its events
    assign.cpus = 0;
    size_t n_redact = 0;
    while (redact && redact [n_redact])
        n_redact++;
    assign.n_redact = n_redact;
    assign.redact = (char **) redact;
    Qanat__Envelope env_msg = QANAT__ENVELOPE__INIT;
    env_msg.body_case = QANAT__ENVELOPE__BODY_ASSIGN;
    env_msg.assign = &assign;
    s_send (fake, &env_msg);
}

//  Receives one message (waiting at most until deadline, zclock_mono ms),
//  reacts as configured and records it.  Returns the envelope (owned by
//  the fake, valid until the next call for non-events) or NULL on timeout.
static Qanat__Envelope *
s_pump_one (fake_t *fake, int64_t deadline)
{
    qn_msg_free (&fake->transient);
    //  zpoller_wait also returns early on a signal: wait again
    zpoller_t *poller = zpoller_new (fake->router, NULL);
    void *which = NULL;
    while (!which) {
        int64_t wait = deadline - zclock_mono ();
        if (wait < 0)
            wait = 0;
        which = zpoller_wait (poller, (int) wait);
        if (!which && zclock_mono () >= deadline)
            break;
    }
    zpoller_destroy (&poller);
    if (!which)
        return NULL;
    zmsg_t *msg = zmsg_recv (fake->router);
    assert_non_null (msg);
    assert_int_equal (zmsg_size (msg), 2);
    zframe_t *id = zmsg_pop (msg);
    if (!fake->agent_id)
        fake->agent_id = zframe_dup (id);
    else
    if (!zframe_eq (id, fake->agent_id)) {
        zframe_destroy (&fake->agent_id);
        fake->agent_id = zframe_dup (id);
    }
    zframe_destroy (&id);
    zframe_t *frame = zmsg_first (msg);
    qn_msg_status_t status;
    Qanat__Envelope *env = qn_msg_decode (zframe_data (frame), zframe_size (frame),
                                          &status, NULL);
    const char *user = fake->secure? zframe_meta (frame, "User-Id"): NULL;
    char user_id [QN_Z85_KEY_SIZE + 1] = "";
    if (user)
        snprintf (user_id, sizeof (user_id), "%s", user);
    zmsg_destroy (&msg);
    assert_non_null (env);

    switch (env->body_case) {
        case QANAT__ENVELOPE__BODY_ENROL: {
            fake->enrols++;
            snprintf (fake->enrol_user, sizeof (fake->enrol_user), "%s", user_id);
            assert_int_equal (env->enrol->public_key.len, 32);
            memcpy (fake->enrol_key, env->enrol->public_key.data, 32);
            fake->enrol_labels = env->enrol->n_labels;
            assert_string_equal (env->enrol->name, "test-agent");
            if (fake->enrol_refusal)
                s_send_refusal (fake, QANAT__REFUSAL_CODE__REFUSAL_DENIED, fake->enrol_refusal);
            else {
                //  Admit the agent's key before answering
                uint8_t no_secret [32] = { 0 };
                zcert_t *cert = zcert_new_from (fake->enrol_key, no_secret);
                char path [400];
                snprintf (path, sizeof (path), "%s/allowed/agent-%zu.cert", fake->dir,
                          fake->enrols);
                assert_int_equal (zcert_save_public (cert, path), 0);
                zcert_destroy (&cert);
                //  Granted: one label, whatever was asked
                Qanat__Label label = QANAT__LABEL__INIT;
                label.key = "env";
                label.value = "granted";
                Qanat__Label *labels [] = { &label };
                Qanat__Enrolled enrolled = QANAT__ENROLLED__INIT;
                enrolled.name = "test-agent";
                enrolled.n_labels = 1;
                enrolled.labels = labels;
                Qanat__Envelope reply = QANAT__ENVELOPE__INIT;
                reply.body_case = QANAT__ENVELOPE__BODY_ENROLLED;
                reply.enrolled = &enrolled;
                s_send (fake, &reply);
            }
            break;
        }
        case QANAT__ENVELOPE__BODY_REGISTER:
            snprintf (fake->register_user, sizeof (fake->register_user), "%s", user_id);
            if (fake->registers < 64)
                fake->register_times [fake->registers] = zclock_mono ();
            fake->registers++;
            qn_msg_free (&fake->last_register);
            fake->last_register = env;
            if (fake->auto_welcome)
                s_send_welcome (fake);
            return env;
        case QANAT__ENVELOPE__BODY_DRAIN:
            fake->drains++;
            assert_true (env->drain->draining);
            snprintf (fake->drain_reason, sizeof (fake->drain_reason), "%s",
                      env->drain->reason? env->drain->reason: "");
            break;
        case QANAT__ENVELOPE__BODY_HEARTBEAT:
            fake->heartbeats++;
            fake->spool_full = env->heartbeat->spool_full;
            fake->spool_bytes = env->heartbeat->spool_bytes;
            if (fake->auto_heartbeat) {
                Qanat__Heartbeat beat = QANAT__HEARTBEAT__INIT;
                Qanat__Envelope reply = QANAT__ENVELOPE__INIT;
                reply.body_case = QANAT__ENVELOPE__BODY_HEARTBEAT;
                reply.heartbeat = &beat;
                s_send (fake, &reply);
            }
            break;
        case QANAT__ENVELOPE__BODY_CREDIT:
            fake->credits++;
            fake->credit_slots += env->credit->slots;
            break;
        case QANAT__ENVELOPE__BODY_EVENT:
            assert_non_null (env->event->attempt);
            assert_true (fake->event_count < MAX_EVENTS);
            fake->events [fake->event_count++] = env;
            if (fake->auto_ack)
                s_send_ack (fake, env->event->attempt, env->event->seq);
            return env;
        default:
            fail_msg ("unexpected message from the agent (body %d)", (int) env->body_case);
    }
    fake->transient = env;
    return env;
}

//  Pumps until the given number of credit messages has been seen.
static bool
s_wait_credits (fake_t *fake, size_t credits, int timeout_ms)
{
    int64_t deadline = zclock_mono () + timeout_ms;
    while (fake->credits < credits)
        if (!s_pump_one (fake, deadline))
            return false;
    return true;
}

static bool
s_wait_registers (fake_t *fake, size_t registers, int timeout_ms)
{
    int64_t deadline = zclock_mono () + timeout_ms;
    while (fake->registers < registers)
        if (!s_pump_one (fake, deadline))
            return false;
    return true;
}

static Qanat__Event *
s_find_event (fake_t *fake, uint64_t run_id, Qanat__Event__BodyCase body, size_t skip)
{
    for (size_t i = 0; i < fake->event_count; i++) {
        Qanat__Event *event = fake->events [i]->event;
        if (event->attempt->run_id == run_id && event->body_case == body) {
            if (skip == 0)
                return event;
            skip--;
        }
    }
    return NULL;
}

//  Pumps until the attempt of run_id sent its Finished event.
static Qanat__Event *
s_wait_event (fake_t *fake, uint64_t run_id, Qanat__Event__BodyCase body, int timeout_ms)
{
    int64_t deadline = zclock_mono () + timeout_ms;
    Qanat__Event *event;
    while (!(event = s_find_event (fake, run_id, body, 0)))
        if (!s_pump_one (fake, deadline))
            return NULL;
    return event;
}

//  Pumps for the whole duration, whatever comes.
static void
s_pump_for (fake_t *fake, int duration_ms)
{
    int64_t deadline = zclock_mono () + duration_ms;
    while (zclock_mono () < deadline)
        s_pump_one (fake, deadline);
}

static size_t
s_count_events (fake_t *fake, uint64_t run_id)
{
    size_t count = 0;
    for (size_t i = 0; i < fake->event_count; i++)
        if (fake->events [i]->event->attempt->run_id == run_id)
            count++;
    return count;
}

//  Checks that run_id's events carry seq 1, 2, 3... with Started first
//  and Finished last, in the order received.
static void
s_check_sequence (fake_t *fake, uint64_t run_id)
{
    uint64_t expect = 1;
    size_t count = 0;
    for (size_t i = 0; i < fake->event_count; i++) {
        Qanat__Event *event = fake->events [i]->event;
        if (event->attempt->run_id != run_id)
            continue;
        assert_int_equal (event->seq, expect);
        if (expect == 1)
            assert_int_equal (event->body_case, QANAT__EVENT__BODY_STARTED);
        expect++;
        count++;
    }
    assert_true (count >= 2);
    Qanat__Event *finished = s_find_event (fake, run_id, QANAT__EVENT__BODY_FINISHED, 0);
    assert_non_null (finished);
    assert_int_equal (finished->seq, expect - 1);
}

//  A LogChunk holds one or more whole lines joined by '\n', or one piece
//  of a long line (partial, or the last piece after partial ones).  The
//  agent packs what one read of a pipe brings, so how lines fall into
//  chunks depends on timing: tests look for lines, not chunks.

//  True when one of the '\n'-separated lines of data is text.
static bool
s_chunk_has_line (const uint8_t *data, size_t size, const char *text)
{
    size_t length = strlen (text);
    size_t at = 0;
    while (true) {
        const uint8_t *newline = (const uint8_t *) memchr (data + at, '\n', size - at);
        size_t end = newline? (size_t) (newline - data): size;
        if (end - at == length && memcmp (data + at, text, length) == 0)
            return true;
        if (!newline)
            return false;
        at = end + 1;
    }
}

//  The chunk of run_id's stream that holds text as one of its lines (or,
//  for a piece of a long line, as the whole piece), or NULL.
static Qanat__Event *
s_find_log (fake_t *fake, uint64_t run_id, Qanat__Stream stream, const char *text)
{
    for (size_t i = 0; i < fake->event_count; i++) {
        Qanat__Event *event = fake->events [i]->event;
        if (event->attempt->run_id != run_id || event->body_case != QANAT__EVENT__BODY_LOG
        ||  event->log->stream != stream)
            continue;
        if (event->log->partial) {
            if (event->log->data.len == strlen (text)
            &&  memcmp (event->log->data.data, text, strlen (text)) == 0)
                return event;
        }
        else
        if (s_chunk_has_line (event->log->data.data, event->log->data.len, text))
            return event;
    }
    return NULL;
}

//  Lines that chunks of run_id (any stream) complete: each chunk that is
//  not partial ends one line more than it holds '\n's.
static size_t
s_count_lines (fake_t *fake, uint64_t run_id)
{
    size_t lines = 0;
    for (size_t i = 0; i < fake->event_count; i++) {
        Qanat__Event *event = fake->events [i]->event;
        if (event->attempt->run_id != run_id || event->body_case != QANAT__EVENT__BODY_LOG
        ||  event->log->partial)
            continue;
        lines++;
        for (size_t j = 0; j < event->log->data.len; j++)
            if (event->log->data.data [j] == '\n')
                lines++;
    }
    return lines;
}

//  Every stdout (or stderr) byte of run_id, pieces joined, each line
//  ended by '\n'.  Caller frees.
static char *
s_stream_text (fake_t *fake, uint64_t run_id, Qanat__Stream stream)
{
    size_t size = 0;
    for (size_t i = 0; i < fake->event_count; i++) {
        Qanat__Event *event = fake->events [i]->event;
        if (event->attempt->run_id == run_id && event->body_case == QANAT__EVENT__BODY_LOG
        &&  event->log->stream == stream)
            size += event->log->data.len + 1;
    }
    char *text = (char *) calloc (1, size + 1);
    assert_non_null (text);
    size_t at = 0;
    for (size_t i = 0; i < fake->event_count; i++) {
        Qanat__Event *event = fake->events [i]->event;
        if (event->attempt->run_id == run_id && event->body_case == QANAT__EVENT__BODY_LOG
        &&  event->log->stream == stream) {
            memcpy (text + at, event->log->data.data, event->log->data.len);
            at += event->log->data.len;
            if (!event->log->partial)
                text [at++] = '\n';
        }
    }
    return text;
}


//  ---------------------------------------------------------------------
//  Starting and stopping the agent

static const char *
s_agent_path (void)
{
    static char path [1024];
    const char *builddir = getenv ("QANAT_BUILDDIR");
    if (builddir && *builddir)
        snprintf (path, sizeof (path), "%s/agent/qanat-agent", builddir);
    else
        snprintf (path, sizeof (path), "./agent/qanat-agent");
    return path;
}

//  More options for the agent of the next test (NULL-terminated)
static const char *s_extra_options [8] = { NULL };

//  Starts the agent on the fake's endpoint and data directory.
static void
s_spawn_agent (fake_t *fake)
{
    const char *path = s_agent_path ();
    char data_dir [300];
    char log_path [300];
    snprintf (data_dir, sizeof (data_dir), "%s/data", fake->dir);
    snprintf (log_path, sizeof (log_path), "%s/agent.log", fake->dir);
    fake->pid = fork ();
    assert_true (fake->pid >= 0);
    if (fake->pid == 0) {
        if (!getenv ("QANAT_TEST_VERBOSE")) {
            FILE *log = freopen (log_path, "a", stderr);
            (void) log;
        }
        const char *args [40];
        size_t n = 0;
        //  QANAT_AGENT_WRAPPER (a program such as a valgrind script) gets
        //  the agent's command line as its arguments
        const char *wrapper = getenv ("QANAT_AGENT_WRAPPER");
        if (wrapper && *wrapper)
            args [n++] = wrapper;
        args [n++] = path;
        args [n++] = "--coordinator";
        args [n++] = fake->endpoint;
        args [n++] = "--name";
        args [n++] = "test-agent";
        args [n++] = "--slots";
        args [n++] = "2";
        args [n++] = "--data-dir";
        args [n++] = data_dir;
        args [n++] = "--labels";
        args [n++] = "env=test,zone=a";
        args [n++] = "--label";
        args [n++] = "gpu=none";
        args [n++] = "--verbose";
        if (!fake->secure)
            args [n++] = "--insecure";
        else
        if (fake->join) {
            args [n++] = "--join";
            args [n++] = fake->token;
        }
        for (size_t i = 0; s_extra_options [i] && i < 8; i++)
            args [n++] = s_extra_options [i];
        args [n] = NULL;
        execv (args [0], (char **) args);
        fprintf (stderr, "cannot run %s: %s\n", path, strerror (errno));
        _exit (127);
    }
}

//  How the next setup starts the agent
typedef enum { S_PLAIN, S_SECURE_JOIN, S_SECURE_NO_TOKEN, S_SECURE_BAD_TOKEN } s_mode_t;

static int
s_setup_mode (void **state, s_mode_t mode)
{
    fake_t *fake = (fake_t *) calloc (1, sizeof (fake_t));
    assert_non_null (fake);
    fake->auto_welcome = true;
    fake->auto_ack = true;
    fake->auto_heartbeat = true;
    fake->heartbeat_ms = 200;
    fake->router = zsock_new (ZMQ_ROUTER);
    assert_non_null (fake->router);
    qn_msg_prepare_socket (fake->router);
    if (mode != S_PLAIN) {
        fake->secure = true;
        fake->join = mode == S_SECURE_JOIN || mode == S_SECURE_BAD_TOKEN;
        //  As the coordinator does: an allow-list directory, where the
        //  token's key is, and the agent's once it enrols (zauth then
        //  reports each message's key as its User-Id)
        snprintf (fake->dir, sizeof (fake->dir), "/tmp/qanat-test-agent-XXXXXX");
        assert_non_null (mkdtemp (fake->dir));
        char allowed [300];
        snprintf (allowed, sizeof (allowed), "%s/allowed", fake->dir);
        assert_int_equal (mkdir (allowed, 0700), 0);
        fake->server_cert = zcert_new ();
        fake->token_cert = zcert_new ();
        char path [400];
        snprintf (path, sizeof (path), "%s/token.cert", allowed);
        assert_int_equal (zcert_save_public (fake->token_cert, path), 0);
        fake->auth = zactor_new (zauth, NULL);
        assert_non_null (fake->auth);
        zstr_sendx (fake->auth, "CURVE", allowed, NULL);
        zsock_wait (fake->auth);
        zcert_apply (fake->server_cert, fake->router);
        zsock_set_curve_server (fake->router, 1);
        zsock_set_zap_domain (fake->router, "qanat");
    }
    assert_true (zsock_bind (fake->router, "tcp://127.0.0.1:*") > 0);
    fake->endpoint = zsock_last_endpoint (fake->router);
    if (fake->secure) {
        fake->token = qn_token_format (zcert_public_txt (fake->server_cert),
                                       zcert_secret_txt (fake->token_cert), fake->endpoint);
        assert_non_null (fake->token);
        if (mode == S_SECURE_BAD_TOKEN)
            fake->token [7] = ' ';          //  not Z85
    }
    if (!*fake->dir) {
        snprintf (fake->dir, sizeof (fake->dir), "/tmp/qanat-test-agent-XXXXXX");
        assert_non_null (mkdtemp (fake->dir));
    }
    s_spawn_agent (fake);
    *state = fake;
    return 0;
}

static int
s_setup (void **state)
{
    return s_setup_mode (state, S_PLAIN);
}

static int
s_setup_join (void **state)
{
    return s_setup_mode (state, S_SECURE_JOIN);
}

static int
s_setup_bad_token (void **state)
{
    return s_setup_mode (state, S_SECURE_BAD_TOKEN);
}

static int
s_setup_no_token (void **state)
{
    return s_setup_mode (state, S_SECURE_NO_TOKEN);
}

//  Waits (bounded) for the agent to exit; returns its status, or -1.
static int
s_wait_exit (fake_t *fake, int timeout_ms)
{
    int64_t deadline = zclock_mono () + timeout_ms;
    int status = 0;
    pid_t rc;
    while ((rc = waitpid (fake->pid, &status, WNOHANG)) == 0 && zclock_mono () < deadline)
        zclock_sleep (20);
    if (rc != fake->pid)
        return -1;
    fake->pid = 0;
    return status;
}

static int
s_teardown (void **state)
{
    fake_t *fake = (fake_t *) *state;
    int rc = 0;
    if (fake->pid > 0) {
        //  SIGTERM drains: an idle agent stops at once, with status 0; one
        //  that still holds work stops at a second SIGTERM, also with 0
        kill (fake->pid, SIGTERM);
        int status = s_wait_exit (fake, 1000);
        if (status == -1) {
            kill (fake->pid, SIGTERM);
            status = s_wait_exit (fake, 20000);
        }
        if (status == -1) {
            fprintf (stderr, "agent did not stop on SIGTERM\n");
            kill (fake->pid, SIGKILL);
            waitpid (fake->pid, &status, 0);
        }
        if (!WIFEXITED (status) || WEXITSTATUS (status) != 0) {
            fprintf (stderr, "agent ended with status 0x%x (see %s/agent.log)\n",
                     status, fake->dir);
            rc = -1;
        }
    }
    for (size_t i = 0; i < fake->event_count; i++)
        qn_msg_free (&fake->events [i]);
    qn_msg_free (&fake->last_register);
    qn_msg_free (&fake->transient);
    zframe_destroy (&fake->agent_id);
    zstr_free (&fake->endpoint);
    zsock_destroy (&fake->router);
    zactor_destroy (&fake->auth);
    zcert_destroy (&fake->server_cert);
    zcert_destroy (&fake->token_cert);
    zstr_free (&fake->token);
    char command [600];
    snprintf (command, sizeof (command), "rm -rf '%s'", fake->dir);
    if (rc == 0 && system (command) != 0)
        fprintf (stderr, "could not remove %s\n", fake->dir);
    free (fake);
    return rc;
}

static int
s_setup_small_outbox (void **state)
{
    s_extra_options [0] = "--max-unacked=65536";
    int rc = s_setup (state);
    s_extra_options [0] = NULL;
    return rc;
}

static void
s_welcomed (fake_t *fake)
{
    assert_true (s_wait_credits (fake, 1, 10000));
}


//  ---------------------------------------------------------------------
//  Cases

static void
test_register_welcome_credit (void **state)
{
    fake_t *fake = (fake_t *) *state;
    s_welcomed (fake);
    Qanat__Register *reg = fake->last_register->register_;
    assert_string_equal (reg->name, "test-agent");
    assert_int_equal (reg->capacity, 2);
    assert_int_equal (reg->n_backends, 1);
    assert_string_equal (reg->backends [0], "local");
    assert_int_equal (reg->n_running, 0);
    assert_true (strlen (reg->version) > 0);
    assert_int_equal (reg->n_labels, 3);
    assert_string_equal (reg->labels [0]->key, "env");
    assert_string_equal (reg->labels [0]->value, "test");
    assert_string_equal (reg->labels [1]->key, "zone");
    assert_string_equal (reg->labels [2]->key, "gpu");
    assert_string_equal (reg->labels [2]->value, "none");
    assert_int_equal (fake->credit_slots, 2);
    //  Heartbeats follow, every 200 ms as the Welcome said (5 due in a
    //  second; at least 3 even on a loaded machine), and no 1000 ms beat
    s_pump_for (fake, 1000);
    assert_true (fake->heartbeats >= 3);
    assert_true (fake->heartbeats <= 6);
    assert_int_equal (fake->registers, 1);
}

static void
test_run_exit_code (void **state)
{
    fake_t *fake = (fake_t *) *state;
    s_welcomed (fake);
    const char *argv [] = { "sh", "-c",
        "echo out; echo err >&2; echo \"acc 0.5 1\" >> \"$QANAT_METRICS\"; "
        "echo 'bad metric line' >> \"$QANAT_METRICS\"; exit 3", NULL };
    s_send_assign (fake, 7, 0, argv, NULL);
    Qanat__Event *finished = s_wait_event (fake, 7, QANAT__EVENT__BODY_FINISHED, 10000);
    assert_non_null (finished);
    s_check_sequence (fake, 7);

    Qanat__Event *started = s_find_event (fake, 7, QANAT__EVENT__BODY_STARTED, 0);
    assert_true (started->started->pid > 0);
    assert_true (strlen (started->started->host) > 0);
    assert_non_null (strstr (started->started->workdir, "/attempts/7-task-1/work"));

    assert_non_null (s_find_log (fake, 7, QANAT__STREAM__STREAM_STDOUT, "out"));
    assert_non_null (s_find_log (fake, 7, QANAT__STREAM__STREAM_STDERR, "err"));
    assert_null (s_find_log (fake, 7, QANAT__STREAM__STREAM_STDOUT, "err"));

    Qanat__Event *metric = s_find_event (fake, 7, QANAT__EVENT__BODY_METRIC, 0);
    assert_non_null (metric);
    assert_string_equal (metric->metric->name, "acc");
    assert_true (metric->metric->value == 0.5);
    assert_true (metric->metric->has_step);
    assert_int_equal (metric->metric->step, 1);
    assert_null (s_find_event (fake, 7, QANAT__EVENT__BODY_METRIC, 1));

    //  The bad line is reported on the system stream with its number
    bool reported = false;
    for (size_t i = 0; i < fake->event_count; i++) {
        Qanat__Event *event = fake->events [i]->event;
        if (event->attempt->run_id == 7 && event->body_case == QANAT__EVENT__BODY_LOG
        &&  event->log->stream == QANAT__STREAM__STREAM_SYSTEM
        &&  event->log->data.len > 22
        &&  memcmp (event->log->data.data, "ignored metrics line 2", 22) == 0)
            reported = true;
    }
    assert_true (reported);

    assert_int_equal (finished->finished->exit_code, 3);
    assert_int_equal (finished->finished->signal, 0);
    assert_string_equal (finished->finished->reason, "exit code 3");
    assert_non_null (strstr (finished->finished->stack_trace, "err"));

    //  The slot comes back
    assert_true (s_wait_credits (fake, 2, 5000));
    assert_int_equal (fake->credit_slots, 3);
}

static void
test_environment (void **state)
{
    fake_t *fake = (fake_t *) *state;
    s_welcomed (fake);
    const char *argv [] = { "sh", "-c",
        "echo \"FOO=$FOO\"; echo \"M=$QANAT_METRICS\"; echo \"W=$QANAT_WORKDIR\"; "
        "echo \"P=$(pwd -P)\"; test -f \"$QANAT_METRICS\" && echo metrics-exists; "
        "read line; echo \"stdin=$? $line\"", NULL };
    const char *env [] = { "FOO=bar baz", NULL };
    s_send_assign (fake, 8, 0, argv, env);
    Qanat__Event *finished = s_wait_event (fake, 8, QANAT__EVENT__BODY_FINISHED, 10000);
    assert_non_null (finished);
    assert_int_equal (finished->finished->exit_code, 0);
    assert_string_equal (finished->finished->reason, "");
    assert_string_equal (finished->finished->stack_trace, "");
    assert_non_null (s_find_log (fake, 8, QANAT__STREAM__STREAM_STDOUT, "FOO=bar baz"));
    assert_non_null (s_find_log (fake, 8, QANAT__STREAM__STREAM_STDOUT, "metrics-exists"));
    //  stdin is /dev/null: read fails at once
    assert_non_null (s_find_log (fake, 8, QANAT__STREAM__STREAM_STDOUT, "stdin=1 "));

    char expect [PATH_MAX + 100];
    char real_dir [PATH_MAX];
    assert_non_null (realpath (fake->dir, real_dir));
    snprintf (expect, sizeof (expect), "M=%s/data/attempts/8-task-1/metrics", fake->dir);
    assert_non_null (s_find_log (fake, 8, QANAT__STREAM__STREAM_STDOUT, expect));
    snprintf (expect, sizeof (expect), "W=%s/data/attempts/8-task-1/work", fake->dir);
    assert_non_null (s_find_log (fake, 8, QANAT__STREAM__STREAM_STDOUT, expect));
    snprintf (expect, sizeof (expect), "P=%s/data/attempts/8-task-1/work", real_dir);
    assert_non_null (s_find_log (fake, 8, QANAT__STREAM__STREAM_STDOUT, expect));
}

static void
test_command_not_found (void **state)
{
    fake_t *fake = (fake_t *) *state;
    s_welcomed (fake);
    const char *argv [] = { "qanat-no-such-command", "x", NULL };
    s_send_assign (fake, 9, 0, argv, NULL);
    Qanat__Event *finished = s_wait_event (fake, 9, QANAT__EVENT__BODY_FINISHED, 10000);
    assert_non_null (finished);
    assert_int_equal (finished->finished->exit_code, 127);
    assert_string_equal (finished->finished->reason, "exit code 127");
    assert_non_null (s_find_log (fake, 9, QANAT__STREAM__STREAM_STDERR,
        "qanat-agent: cannot run 'qanat-no-such-command': No such file or directory"));
    assert_non_null (strstr (finished->finished->stack_trace, "cannot run"));
}

static void
test_long_line (void **state)
{
    fake_t *fake = (fake_t *) *state;
    s_welcomed (fake);
    const char *argv [] = { "sh", "-c",
        "head -c 20000 /dev/zero | tr '\\000' x; echo; echo short", NULL };
    s_send_assign (fake, 10, 0, argv, NULL);
    assert_non_null (s_wait_event (fake, 10, QANAT__EVENT__BODY_FINISHED, 10000));
    s_check_sequence (fake, 10);
    size_t sizes [3] = { 8192, 8192, 20000 - 16384 };
    for (size_t i = 0; i < 3; i++) {
        Qanat__Event *chunk = s_find_event (fake, 10, QANAT__EVENT__BODY_LOG, i);
        assert_non_null (chunk);
        assert_int_equal (chunk->log->stream, QANAT__STREAM__STREAM_STDOUT);
        assert_int_equal (chunk->log->data.len, sizes [i]);
        assert_int_equal (chunk->log->partial, i < 2);
        for (size_t j = 0; j < chunk->log->data.len; j++)
            if (chunk->log->data.data [j] != 'x')
                fail_msg ("byte %zu of chunk %zu is %d", j, i, chunk->log->data.data [j]);
    }
    Qanat__Event *last = s_find_event (fake, 10, QANAT__EVENT__BODY_LOG, 3);
    assert_non_null (last);
    assert_false (last->log->partial);
    assert_int_equal (last->log->data.len, 5);
    assert_memory_equal (last->log->data.data, "short", 5);
}

static void
test_python_traceback (void **state)
{
    fake_t *fake = (fake_t *) *state;
    if (system ("command -v python3 >/dev/null 2>&1") != 0)
        skip ();
    s_welcomed (fake);
    const char *argv [] = { "python3", "-c",
        "import sys\nprint('working', file=sys.stderr)\n"
        "def f():\n    raise ValueError(\"boom\")\nf()\n", NULL };
    s_send_assign (fake, 11, 0, argv, NULL);
    Qanat__Event *finished = s_wait_event (fake, 11, QANAT__EVENT__BODY_FINISHED, 20000);
    assert_non_null (finished);
    assert_int_equal (finished->finished->exit_code, 1);
    const char *trace = finished->finished->stack_trace;
    const char *header = "Traceback (most recent call last):";
    assert_memory_equal (trace, header, strlen (header));
    const char *tail = "ValueError: boom";
    assert_true (strlen (trace) > strlen (tail));
    assert_string_equal (trace + strlen (trace) - strlen (tail), tail);
    assert_null (strstr (trace, "working"));
}

static void
test_timeout (void **state)
{
    fake_t *fake = (fake_t *) *state;
    s_welcomed (fake);
    const char *argv [] = { "sleep", "100", NULL };
    int64_t start = zclock_mono ();
    s_send_assign (fake, 12, 1, argv, NULL);
    Qanat__Event *finished = s_wait_event (fake, 12, QANAT__EVENT__BODY_FINISHED, 10000);
    assert_non_null (finished);
    int64_t took = zclock_mono () - start;
    assert_true (took >= 900 && took < 5000);
    assert_int_equal (finished->finished->signal, SIGTERM);
    assert_int_equal (finished->finished->exit_code, 128 + SIGTERM);
    assert_string_equal (finished->finished->reason, "timed out after 1s");
}

static void
test_timeout_needs_kill (void **state)
{
    //  A task that ignores SIGTERM is killed after the grace
    fake_t *fake = (fake_t *) *state;
    s_welcomed (fake);
    const char *argv [] = { "sh", "-c", "trap '' TERM; while :; do sleep 0.1; done", NULL };
    s_send_assign (fake, 13, 1, argv, NULL);
    Qanat__Event *finished = s_wait_event (fake, 13, QANAT__EVENT__BODY_FINISHED, 15000);
    assert_non_null (finished);
    assert_int_equal (finished->finished->signal, SIGKILL);
    assert_string_equal (finished->finished->reason, "timed out after 1s");
}

static void
test_cancel (void **state)
{
    fake_t *fake = (fake_t *) *state;
    s_welcomed (fake);
    const char *argv [] = { "sleep", "100", NULL };
    s_send_assign (fake, 14, 0, argv, NULL);
    Qanat__Event *started = s_wait_event (fake, 14, QANAT__EVENT__BODY_STARTED, 10000);
    assert_non_null (started);
    pid_t pid = (pid_t) started->started->pid;
    s_send_cancel (fake, 14, "user asked");
    Qanat__Event *finished = s_wait_event (fake, 14, QANAT__EVENT__BODY_FINISHED, 10000);
    assert_non_null (finished);
    assert_string_equal (finished->finished->reason, "canceled: user asked");
    assert_int_equal (finished->finished->signal, SIGTERM);
    //  Reaped by the agent: the pid is gone
    assert_int_equal (kill (pid, 0), -1);
    //  A cancel of an unknown attempt is harmless
    s_send_cancel (fake, 999, "nothing");
    s_pump_for (fake, 200);
}

static void
test_replay_after_refusal (void **state)
{
    fake_t *fake = (fake_t *) *state;
    fake->auto_ack = false;
    s_welcomed (fake);
    //  The lines may come in one chunk or several (the agent packs what
    //  one read brings): a sleep between them makes several likely, but
    //  the checks hold for any packing
    const char *argv [] = { "sh", "-c", "echo a; echo b; sleep 0.1; echo c", NULL };
    s_send_assign (fake, 15, 0, argv, NULL);
    assert_non_null (s_wait_event (fake, 15, QANAT__EVENT__BODY_FINISHED, 10000));
    s_check_sequence (fake, 15);
    size_t first = s_count_events (fake, 15);
    //  started, the chunks of a, b, c, finished
    assert_true (first >= 3 && first <= 5);
    assert_int_equal (s_count_lines (fake, 15), 3);
    char *out = s_stream_text (fake, 15, QANAT__STREAM__STREAM_STDOUT);
    assert_string_equal (out, "a\nb\nc\n");
    free (out);
    size_t replayed = first - 1;

    //  Acknowledge Started only; the coordinator then "restarts"
    s_send_ack (fake, fake->events [0]->event->attempt, 1);
    s_pump_for (fake, 100);
    s_send_refusal (fake, QANAT__REFUSAL_CODE__REFUSAL_NOT_REGISTERED, "who are you");
    size_t registers = fake->registers;
    size_t credits = fake->credits;
    assert_true (s_wait_registers (fake, registers + 1, 5000));
    assert_true (s_wait_credits (fake, credits + 1, 5000));
    int64_t deadline = zclock_mono () + 5000;
    while (s_count_events (fake, 15) < first + replayed && s_pump_one (fake, deadline))
        ;
    assert_int_equal (s_count_events (fake, 15), first + replayed);
    //  Every event after Started again, in order and identical
    for (size_t i = 0; i < replayed; i++) {
        Qanat__Event *orig = fake->events [first - replayed + i]->event;
        Qanat__Event *again = fake->events [fake->event_count - replayed + i]->event;
        assert_int_equal (again->seq, 2 + i);
        assert_int_equal (again->body_case, orig->body_case);
        if (again->body_case == QANAT__EVENT__BODY_LOG) {
            assert_int_equal (again->log->data.len, orig->log->data.len);
            assert_memory_equal (again->log->data.data, orig->log->data.data,
                                 orig->log->data.len);
        }
    }
    //  Once everything is acknowledged, nothing more is replayed
    s_send_ack (fake, fake->events [0]->event->attempt, first);
    s_pump_for (fake, 100);
    size_t total = fake->event_count;
    s_send_refusal (fake, QANAT__REFUSAL_CODE__REFUSAL_NOT_REGISTERED, "again");
    assert_true (s_wait_registers (fake, fake->registers + 1, 5000));
    s_pump_for (fake, 500);
    assert_int_equal (fake->event_count, total);
}

static void
test_reconnect_after_silence (void **state)
{
    //  A coordinator that stops answering: the agent re-registers after
    //  5 heartbeats, buffering the events of a task meanwhile
    fake_t *fake = (fake_t *) *state;
    fake->heartbeat_ms = 100;
    s_welcomed (fake);
    fake->auto_heartbeat = false;
    fake->auto_welcome = false;
    const char *argv [] = { "sh", "-c", "sleep 1; echo late", NULL };
    s_send_assign (fake, 16, 0, argv, NULL);
    size_t registers = fake->registers;
    assert_true (s_wait_registers (fake, registers + 1, 5000));
    //  Still registering every heartbeat, and no events sent meanwhile
    size_t events_before = s_count_events (fake, 16);
    assert_true (s_wait_registers (fake, registers + 3, 5000));
    zclock_sleep (1500);        //  the task ends while we are "away"
    s_pump_for (fake, 300);
    assert_int_equal (s_count_events (fake, 16), events_before);
    Qanat__Register *reg = fake->last_register->register_;
    (void) reg;
    fake->auto_welcome = true;
    fake->auto_heartbeat = true;
    assert_non_null (s_wait_event (fake, 16, QANAT__EVENT__BODY_FINISHED, 5000));
    assert_non_null (s_find_log (fake, 16, QANAT__STREAM__STREAM_STDOUT, "late"));
}

static void
test_running_in_register (void **state)
{
    fake_t *fake = (fake_t *) *state;
    s_welcomed (fake);
    const char *argv [] = { "sleep", "100", NULL };
    s_send_assign (fake, 17, 0, argv, NULL);
    assert_non_null (s_wait_event (fake, 17, QANAT__EVENT__BODY_STARTED, 10000));
    size_t credits = fake->credits;
    uint64_t slots = fake->credit_slots;
    s_send_refusal (fake, QANAT__REFUSAL_CODE__REFUSAL_NOT_REGISTERED, "restart");
    assert_true (s_wait_credits (fake, credits + 1, 5000));
    Qanat__Register *reg = fake->last_register->register_;
    assert_int_equal (reg->n_running, 1);
    assert_int_equal (reg->running [0]->run_id, 17);
    assert_int_equal (reg->running [0]->attempt, 1);
    //  One of the two slots is taken
    assert_int_equal (fake->credit_slots - slots, 1);
    //  A duplicate Assign does not start it twice
    s_send_assign (fake, 17, 0, argv, NULL);
    s_pump_for (fake, 300);
    assert_null (s_find_event (fake, 17, QANAT__EVENT__BODY_STARTED, 1));
}

static void
test_garbage (void **state)
{
    fake_t *fake = (fake_t *) *state;
    s_welcomed (fake);
    //  Random bytes, an empty frame, a huge frame
    s_send_raw (fake, "\xff\xff\xff\xff garbage", 13);
    s_send_raw (fake, "", 0);
    size_t huge_size = 2 * 1024 * 1024;
    char *huge = malloc (huge_size);
    for (size_t i = 0; i < huge_size; i++)
        huge [i] = (char) (i * 131 + 7);
    s_send_raw (fake, huge, huge_size);
    free (huge);
    //  A message of two frames
    zframe_t *id = zframe_dup (fake->agent_id);
    zframe_send (&id, fake->router, ZFRAME_MORE);
    zstr_sendm (fake->router, "one");
    zstr_send (fake->router, "two");
    //  Valid envelopes that make no sense here
    Qanat__Envelope env = QANAT__ENVELOPE__INIT;
    Qanat__Assign assign = QANAT__ASSIGN__INIT;        //  no attempt
    env.body_case = QANAT__ENVELOPE__BODY_ASSIGN;
    env.assign = &assign;
    s_send (fake, &env);
    Qanat__Ack ack = QANAT__ACK__INIT;                 //  no attempt
    env.body_case = QANAT__ENVELOPE__BODY_ACK;
    env.ack = &ack;
    s_send (fake, &env);
    Qanat__Credit credit = QANAT__CREDIT__INIT;        //  wrong direction
    env.body_case = QANAT__ENVELOPE__BODY_CREDIT;
    env.credit = &credit;
    s_send (fake, &env);
    //  A wrong protocol version
    Qanat__Heartbeat beat = QANAT__HEARTBEAT__INIT;
    Qanat__Envelope bad = QANAT__ENVELOPE__INIT;
    bad.body_case = QANAT__ENVELOPE__BODY_HEARTBEAT;
    bad.heartbeat = &beat;
    zframe_t *frame = qn_msg_encode (&bad);
    zframe_data (frame) [1] = 99;       //  version field's value
    s_send_raw (fake, zframe_data (frame), zframe_size (frame));
    zframe_destroy (&frame);
    //  An Assign with an empty command and a hostile task name
    Qanat__AttemptRef ref = QANAT__ATTEMPT_REF__INIT;
    ref.run_id = 18;
    ref.attempt = 1;
    assign.attempt = &ref;
    assign.task_name = "../../etc";
    env.body_case = QANAT__ENVELOPE__BODY_ASSIGN;
    env.assign = &assign;
    s_send (fake, &env);
    Qanat__Event *finished = s_wait_event (fake, 18, QANAT__EVENT__BODY_FINISHED, 5000);
    assert_non_null (finished);
    assert_non_null (strstr (finished->finished->reason, "cannot start"));
    s_check_sequence (fake, 18);

    //  Still alive and working
    assert_int_equal (waitpid (fake->pid, NULL, WNOHANG), 0);
    const char *argv [] = { "echo", "alive", NULL };
    s_send_assign (fake, 19, 0, argv, NULL);
    assert_non_null (s_wait_event (fake, 19, QANAT__EVENT__BODY_FINISHED, 10000));
    assert_non_null (s_find_log (fake, 19, QANAT__STREAM__STREAM_STDOUT, "alive"));
}

static void
test_sigterm_kills_tasks (void **state)
{
    fake_t *fake = (fake_t *) *state;
    s_welcomed (fake);
    const char *argv [] = { "sh", "-c", "sleep 100 & sleep 100; wait", NULL };
    s_send_assign (fake, 20, 0, argv, NULL);
    Qanat__Event *started = s_wait_event (fake, 20, QANAT__EVENT__BODY_STARTED, 10000);
    assert_non_null (started);
    pid_t group = (pid_t) started->started->pid;
    zclock_sleep (200);
    assert_int_equal (kill (-group, 0), 0);
    //  The first SIGTERM drains: the task runs on
    kill (fake->pid, SIGTERM);
    int64_t deadline = zclock_mono () + 5000;
    while (fake->drains == 0 && zclock_mono () < deadline)
        s_pump_one (fake, deadline);
    assert_int_equal (fake->drains, 1);
    s_pump_for (fake, 300);
    assert_int_equal (waitpid (fake->pid, NULL, WNOHANG), 0);
    assert_int_equal (kill (-group, 0), 0);
    //  The second kills it, and the agent stops with status 0
    kill (fake->pid, SIGTERM);
    int status = s_wait_exit (fake, 10000);
    assert_int_not_equal (status, -1);
    assert_true (WIFEXITED (status));
    assert_int_equal (WEXITSTATUS (status), 0);
    //  The whole process group is gone (the background sleep, reparented
    //  when its shell died, may take a moment to be reaped)
    deadline = zclock_mono () + 3000;
    while (kill (-group, 0) == 0 && zclock_mono () < deadline)
        zclock_sleep (20);
    if (kill (-group, 0) == 0) {
        char command [100];
        snprintf (command, sizeof (command), "ps -o pid,ppid,pgid,stat,args -g %d", (int) group);
        if (system (command) != 0)
            fprintf (stderr, "ps failed\n");
    }
    assert_int_equal (kill (-group, 0), -1);
    assert_int_equal (errno, ESRCH);
}

static void
test_bad_version_refusal_exits (void **state)
{
    fake_t *fake = (fake_t *) *state;
    s_welcomed (fake);
    s_send_refusal (fake, QANAT__REFUSAL_CODE__REFUSAL_BAD_VERSION, "speak v2");
    int status = 0;
    int64_t deadline = zclock_mono () + 10000;
    pid_t rc;
    while ((rc = waitpid (fake->pid, &status, WNOHANG)) == 0 && zclock_mono () < deadline)
        zclock_sleep (20);
    assert_int_equal (rc, fake->pid);
    fake->pid = 0;
    assert_true (WIFEXITED (status));
    assert_int_equal (WEXITSTATUS (status), 1);
}

static size_t
s_log_bytes (fake_t *fake, uint64_t run_id, size_t *events_p)
{
    size_t bytes = 0;
    size_t events = 0;
    for (size_t i = 0; i < fake->event_count; i++) {
        Qanat__Event *event = fake->events [i]->event;
        if (event->attempt->run_id == run_id && event->body_case == QANAT__EVENT__BODY_LOG) {
            bytes += event->log->data.len;
            events++;
        }
    }
    if (events_p)
        *events_p = events;
    return bytes;
}

static void
test_back_pressure (void **state)
{
    //  With nothing acknowledged, the agent stops reading the task's
    //  output once 64 KiB of events wait; the task blocks on its pipe.
    //  Acknowledging lets everything through, in order.
    fake_t *fake = (fake_t *) *state;
    fake->auto_ack = false;
    s_welcomed (fake);
    const char *argv [] = { "sh", "-c", "i=0; while [ $i -lt 40000 ]; do "
                            "echo \"line $i of a task that talks a lot\"; i=$((i+1)); done",
                            NULL };
    s_send_assign (fake, 21, 0, argv, NULL);
    s_pump_for (fake, 2500);
    size_t bytes = s_log_bytes (fake, 21, NULL);
    assert_true (bytes > 1000);
    //  64 KiB of events, plus what one read of the pipe brings
    assert_true (bytes < 200 * 1024);
    assert_null (s_find_event (fake, 21, QANAT__EVENT__BODY_FINISHED, 0));

    //  Now acknowledge as we go
    int64_t deadline = zclock_mono () + 60000;
    Qanat__AttemptRef ref = *fake->events [fake->event_count - 1]->event->attempt;
    s_send_ack (fake, &ref, fake->events [fake->event_count - 1]->event->seq);
    fake->auto_ack = true;
    while (!s_find_event (fake, 21, QANAT__EVENT__BODY_FINISHED, 0))
        if (!s_pump_one (fake, deadline))
            fail_msg ("no Finished after acknowledging");
    s_check_sequence (fake, 21);
    assert_int_equal (s_count_lines (fake, 21), 40000);
    //  Packed: far fewer events than lines (one read brings many)
    size_t events = 0;
    s_log_bytes (fake, 21, &events);
    assert_true (events < 40000);
    //  Every line, in order
    char *out = s_stream_text (fake, 21, QANAT__STREAM__STREAM_STDOUT);
    char *line = out;
    for (int i = 0; i < 40000; i++) {
        char expect [64];
        int size = snprintf (expect, sizeof (expect), "line %d of a task that talks a lot\n", i);
        if (strncmp (line, expect, (size_t) size) != 0)
            fail_msg ("line %d is not '%.*s'", i, size - 1, expect);
        line += size;
    }
    assert_int_equal (*line, 0);
    free (out);
}

//  ---------------------------------------------------------------------
//  Reliability: the spool, restarts, backoff, cut-off, drain

static int
s_setup_options (void **state, const char *a, const char *b, const char *c)
{
    s_extra_options [0] = a;
    s_extra_options [1] = b;
    s_extra_options [2] = c;
    s_extra_options [3] = NULL;
    int rc = s_setup (state);
    s_extra_options [0] = NULL;
    return rc;
}

static int
s_setup_small_spool (void **state)
{
    return s_setup_options (state, "--spool-max=1M", NULL, NULL);
}

static int
s_setup_wan_profile (void **state)
{
    //  The profile's heartbeat is overridden, whatever the order
    return s_setup_options (state, "--heartbeat-ms=2000", "--profile=wan", NULL);
}

static int
s_setup_stop_after (void **state)
{
    return s_setup_options (state, "--stop-after-disconnect=1", "--profile=lan", NULL);
}

//  Counts the events of (run_id, seq) received from index first on.
static size_t
s_count_seq (fake_t *fake, size_t first, uint64_t run_id, uint64_t seq)
{
    size_t count = 0;
    for (size_t i = first; i < fake->event_count; i++) {
        Qanat__Event *event = fake->events [i]->event;
        if (event->attempt->run_id == run_id && event->seq == seq)
            count++;
    }
    return count;
}

static Qanat__Event *
s_find_seq (fake_t *fake, size_t first, uint64_t run_id, uint64_t seq)
{
    for (size_t i = first; i < fake->event_count; i++) {
        Qanat__Event *event = fake->events [i]->event;
        if (event->attempt->run_id == run_id && event->seq == seq)
            return event;
    }
    return NULL;
}

static bool
s_register_holds (Qanat__Register *reg, uint64_t run_id)
{
    for (size_t i = 0; i < reg->n_running; i++)
        if (reg->running [i]->run_id == run_id && reg->running [i]->attempt == 1)
            return true;
    return false;
}

static bool
s_group_gone (pid_t group, int timeout_ms)
{
    int64_t deadline = zclock_mono () + timeout_ms;
    while (kill (-group, 0) == 0 && zclock_mono () < deadline)
        zclock_sleep (20);
    return kill (-group, 0) == -1 && errno == ESRCH;
}

static void
test_restart_replays_spool (void **state)
{
    //  Events survive kill -9 of the agent and are replayed exactly once
    //  by the next agent on the same data directory
    fake_t *fake = (fake_t *) *state;
    fake->auto_ack = false;
    s_welcomed (fake);
    //  30: still running at the crash; 31: finished before it; 32: its
    //  process ends while no agent runs (events: Started, d, then the
    //  synthetic Finished as seq 3).  30's two lines may come in one
    //  chunk or two: last30 is its last event before the crash.
    const char *argv30 [] = { "sh", "-c", "echo a; echo b; exec sleep 100", NULL };
    const char *argv31 [] = { "echo", "c", NULL };
    const char *argv32 [] = { "sh", "-c", "echo d; sleep 1", NULL };
    s_send_assign (fake, 30, 0, argv30, NULL);
    s_send_assign (fake, 31, 0, argv31, NULL);
    assert_non_null (s_wait_event (fake, 31, QANAT__EVENT__BODY_FINISHED, 10000));
    s_send_assign (fake, 32, 0, argv32, NULL);
    int64_t deadline = zclock_mono () + 10000;
    while ((!s_find_log (fake, 30, QANAT__STREAM__STREAM_STDOUT, "b")
            || !s_find_log (fake, 32, QANAT__STREAM__STREAM_STDOUT, "d"))
           && s_pump_one (fake, deadline))
        ;
    assert_non_null (s_find_log (fake, 30, QANAT__STREAM__STREAM_STDOUT, "a"));
    assert_non_null (s_find_log (fake, 30, QANAT__STREAM__STREAM_STDOUT, "b"));
    assert_non_null (s_find_log (fake, 32, QANAT__STREAM__STREAM_STDOUT, "d"));
    uint64_t last30 = s_count_events (fake, 30);
    assert_true (last30 == 2 || last30 == 3);
    pid_t group30 = (pid_t) s_find_event (fake, 30, QANAT__EVENT__BODY_STARTED, 0)->started->pid;
    //  The coordinator committed event 1 of run 30 only
    Qanat__AttemptRef ref30 = *s_find_event (fake, 30, QANAT__EVENT__BODY_STARTED, 0)->attempt;
    s_send_ack (fake, &ref30, 1);
    s_pump_for (fake, 300);

    kill (fake->pid, SIGKILL);
    int status = s_wait_exit (fake, 5000);
    assert_true (WIFSIGNALED (status));
    //  Its task lives on, orphaned
    assert_int_equal (kill (-group30, 0), 0);
    zclock_sleep (1500);        //  32's process ends meanwhile

    size_t first = fake->event_count;
    size_t registers = fake->registers;
    s_spawn_agent (fake);
    assert_true (s_wait_registers (fake, registers + 1, 10000));
    Qanat__Register *reg = fake->last_register->register_;
    assert_int_equal (reg->n_running, 3);
    assert_true (s_register_holds (reg, 30));
    assert_true (s_register_holds (reg, 31));
    assert_true (s_register_holds (reg, 32));
    //  The replay: 30 from seq 2 on, then its synthetic Finished; 31 and
    //  32 whole
    deadline = zclock_mono () + 10000;
    while ((!s_find_seq (fake, first, 30, last30 + 1) || !s_find_seq (fake, first, 31, 3)
            || !s_find_seq (fake, first, 32, 3))
           && s_pump_one (fake, deadline))
        ;
    s_pump_for (fake, 500);     //  anything more would be a duplicate
    assert_int_equal (s_count_seq (fake, first, 30, 1), 0);
    for (uint64_t seq = 2; seq <= last30 + 1; seq++)
        assert_int_equal (s_count_seq (fake, first, 30, seq), 1);
    assert_int_equal (s_count_seq (fake, first, 30, last30 + 2), 0);
    for (uint64_t seq = 1; seq <= 3; seq++)
        assert_int_equal (s_count_seq (fake, first, 31, seq), 1);
    assert_int_equal (s_count_seq (fake, first, 31, 4), 0);
    for (uint64_t seq = 1; seq <= 3; seq++)
        assert_int_equal (s_count_seq (fake, first, 32, seq), 1);
    assert_int_equal (s_count_seq (fake, first, 32, 4), 0);
    //  Replayed in seq order
    uint64_t last = 0;
    for (size_t i = first; i < fake->event_count; i++) {
        Qanat__Event *event = fake->events [i]->event;
        if (event->attempt->run_id != 30)
            continue;
        assert_true (event->seq > last);
        last = event->seq;
    }
    //  The replayed lines are a and b, in order
    char replayed [8] = "";
    for (uint64_t seq = 2; seq <= last30; seq++) {
        Qanat__Event *chunk = s_find_seq (fake, first, 30, seq);
        assert_int_equal (chunk->body_case, QANAT__EVENT__BODY_LOG);
        assert_false (chunk->log->partial);
        assert_true (strlen (replayed) + chunk->log->data.len + 1 < sizeof (replayed));
        strncat (replayed, (const char *) chunk->log->data.data, chunk->log->data.len);
        strcat (replayed, "\n");
    }
    assert_string_equal (replayed, "a\nb\n");
    Qanat__Event *lost = s_find_seq (fake, first, 30, last30 + 1);
    assert_int_equal (lost->body_case, QANAT__EVENT__BODY_FINISHED);
    assert_int_equal (lost->finished->exit_code, -1);
    assert_int_equal (lost->finished->kind, QANAT__END_KIND__END_LOST);
    assert_string_equal (lost->finished->reason,
                         "agent restarted: the attempt's process was lost");
    lost = s_find_seq (fake, first, 32, 3);
    assert_int_equal (lost->body_case, QANAT__EVENT__BODY_FINISHED);
    assert_int_equal (lost->finished->kind, QANAT__END_KIND__END_LOST);
    Qanat__Event *real = s_find_seq (fake, first, 31, 3);
    assert_int_equal (real->body_case, QANAT__EVENT__BODY_FINISHED);
    assert_int_equal (real->finished->exit_code, 0);
    assert_int_equal (real->finished->kind, QANAT__END_KIND__END_EXIT);
    //  The leftover process group was killed
    assert_true (s_group_gone (group30, 5000));

    //  Acknowledged in full, the attempts are let go
    Qanat__AttemptRef ref = ref30;
    s_send_ack (fake, &ref, last30 + 1);
    ref.run_id = 31;
    s_send_ack (fake, &ref, 3);
    ref.run_id = 32;
    s_send_ack (fake, &ref, 3);
    s_pump_for (fake, 300);
    registers = fake->registers;
    s_send_refusal (fake, QANAT__REFUSAL_CODE__REFUSAL_NOT_REGISTERED, "restart");
    assert_true (s_wait_registers (fake, registers + 1, 5000));
    assert_int_equal (fake->last_register->register_->n_running, 0);
}

static void
test_spool_full (void **state)
{
    //  A 1 MiB spool that nobody acknowledges fills up: task output
    //  pauses, heartbeats say so, no credit goes out, Assigns are refused
    fake_t *fake = (fake_t *) *state;
    fake->auto_ack = false;
    s_welcomed (fake);
    const char *argv [] = { "sh", "-c", "i=0; while [ $i -lt 30000 ]; do "
                            "echo \"line $i of a task that fills the spool\"; i=$((i+1)); done",
                            NULL };
    s_send_assign (fake, 60, 0, argv, NULL);
    int64_t deadline = zclock_mono () + 20000;
    while (!fake->spool_full && s_pump_one (fake, deadline))
        ;
    assert_true (fake->spool_full);
    assert_true (fake->spool_bytes > 512 * 1024);
    assert_true (fake->spool_bytes <= 1024 * 1024);
    size_t credits = fake->credits;
    const char *argv61 [] = { "echo", "never", NULL };
    s_send_assign (fake, 61, 0, argv61, NULL);
    Qanat__Event *refused = s_wait_event (fake, 61, QANAT__EVENT__BODY_FINISHED, 5000);
    assert_non_null (refused);
    assert_int_equal (refused->seq, 1);
    assert_int_equal (refused->finished->kind, QANAT__END_KIND__END_START_FAILED);
    assert_memory_equal (refused->finished->reason, "agent spool full: ", 18);
    assert_null (s_find_event (fake, 61, QANAT__EVENT__BODY_STARTED, 0));
    s_pump_for (fake, 500);
    assert_int_equal (fake->credits, credits);
    assert_true (fake->spool_full);
    assert_null (s_find_event (fake, 60, QANAT__EVENT__BODY_FINISHED, 0));

    //  Acknowledging drains it: output resumes, credit comes back
    Qanat__AttemptRef ref = *refused->attempt;
    s_send_ack (fake, &ref, 1);
    uint64_t top = 0;
    for (size_t i = 0; i < fake->event_count; i++)
        if (fake->events [i]->event->attempt->run_id == 60
        &&  fake->events [i]->event->seq > top)
            top = fake->events [i]->event->seq;
    ref.run_id = 60;
    s_send_ack (fake, &ref, top);
    fake->auto_ack = true;
    deadline = zclock_mono () + 60000;
    while (!s_find_event (fake, 60, QANAT__EVENT__BODY_FINISHED, 0) && s_pump_one (fake, deadline))
        ;
    s_check_sequence (fake, 60);
    assert_int_equal (s_count_lines (fake, 60), 30000);
    assert_true (s_wait_credits (fake, credits + 1, 5000));
    s_pump_for (fake, 600);
    assert_false (fake->spool_full);
}

static void
test_register_backoff (void **state)
{
    //  A coordinator that never answers gets Register at 250, 500, 1000,
    //  2000 ms (each +-20%)
    fake_t *fake = (fake_t *) *state;
    fake->auto_welcome = false;
    assert_true (s_wait_registers (fake, 5, 10000));
    Qanat__Register *reg = fake->last_register->register_;
    assert_int_equal (reg->heartbeat_ms, 2000);
    assert_int_equal (reg->suspect_after_ms, 120000);
    assert_int_equal (reg->lost_after_ms, 600000);
    assert_false (reg->draining);
    int64_t nominal = 250;
    for (size_t i = 1; i < 5; i++) {
        int64_t interval = fake->register_times [i] - fake->register_times [i - 1];
        if (interval < nominal * 8 / 10 - 30 || interval > nominal * 12 / 10 + 100)
            fail_msg ("Register %zu came %" PRId64 " ms after the one before, not %" PRId64
                      " ms +- 20%%", i, interval, nominal);
        nominal *= 2;
    }
    //  A Welcome resets the backoff: after the next refusal, Register at
    //  once, then 250 ms later
    s_send_welcome (fake);
    assert_true (s_wait_credits (fake, 1, 5000));
    size_t registers = fake->registers;
    s_send_refusal (fake, QANAT__REFUSAL_CODE__REFUSAL_NOT_REGISTERED, "restart");
    assert_true (s_wait_registers (fake, registers + 2, 5000));
    int64_t interval = fake->register_times [registers + 1] - fake->register_times [registers];
    assert_true (interval >= 170 && interval <= 400);
}

static void
test_stop_after_disconnect (void **state)
{
    //  Cut off for longer than --stop-after-disconnect, the agent stops
    //  its attempts and reports them lost when it is back
    fake_t *fake = (fake_t *) *state;
    fake->heartbeat_ms = 100;
    s_welcomed (fake);
    const char *argv [] = { "sleep", "100", NULL };
    s_send_assign (fake, 50, 0, argv, NULL);
    Qanat__Event *started = s_wait_event (fake, 50, QANAT__EVENT__BODY_STARTED, 10000);
    assert_non_null (started);
    pid_t pid = (pid_t) started->started->pid;
    s_pump_for (fake, 200);
    //  Silence from now on
    fake->auto_heartbeat = false;
    fake->auto_welcome = false;
    fake->auto_ack = false;
    int64_t silent_since = zclock_mono ();
    int64_t deadline = silent_since + 8000;
    while (kill (pid, 0) == 0 && zclock_mono () < deadline)
        s_pump_one (fake, zclock_mono () + 20);
    int64_t took = zclock_mono () - silent_since;
    assert_int_equal (kill (pid, 0), -1);
    assert_true (took >= 1000);
    assert_true (took < 6000);
    assert_null (s_find_event (fake, 50, QANAT__EVENT__BODY_FINISHED, 0));
    //  Back in touch: the Finished comes with the replay
    fake->auto_heartbeat = true;
    fake->auto_welcome = true;
    fake->auto_ack = true;
    Qanat__Event *finished = s_wait_event (fake, 50, QANAT__EVENT__BODY_FINISHED, 10000);
    assert_non_null (finished);
    assert_int_equal (finished->finished->kind, QANAT__END_KIND__END_LOST);
    assert_int_equal (finished->finished->signal, SIGTERM);
    assert_string_equal (finished->finished->reason,
                         "stopped: cut off from the coordinator for 1s");
}

static void
test_drain (void **state)
{
    //  SIGTERM drains: the running attempt ends normally, a new Assign is
    //  refused, and the agent leaves with status 0 once all is acknowledged
    fake_t *fake = (fake_t *) *state;
    s_welcomed (fake);
    const char *argv [] = { "sh", "-c", "sleep 1; echo done", NULL };
    s_send_assign (fake, 40, 0, argv, NULL);
    assert_non_null (s_wait_event (fake, 40, QANAT__EVENT__BODY_STARTED, 10000));
    kill (fake->pid, SIGTERM);
    int64_t deadline = zclock_mono () + 5000;
    while (fake->drains == 0 && s_pump_one (fake, deadline))
        ;
    assert_int_equal (fake->drains, 1);
    assert_string_equal (fake->drain_reason, "agent shutting down");
    size_t credits = fake->credits;
    const char *argv41 [] = { "echo", "never", NULL };
    s_send_assign (fake, 41, 0, argv41, NULL);
    Qanat__Event *refused = s_wait_event (fake, 41, QANAT__EVENT__BODY_FINISHED, 5000);
    assert_non_null (refused);
    assert_int_equal (refused->finished->kind, QANAT__END_KIND__END_START_FAILED);
    assert_string_equal (refused->finished->reason, "agent draining");
    Qanat__Event *finished = s_wait_event (fake, 40, QANAT__EVENT__BODY_FINISHED, 10000);
    assert_non_null (finished);
    assert_int_equal (finished->finished->exit_code, 0);
    assert_int_equal (finished->finished->kind, QANAT__END_KIND__END_EXIT);
    assert_non_null (s_find_log (fake, 40, QANAT__STREAM__STREAM_STDOUT, "done"));
    //  It leaves on its own once the acknowledgements are in
    int status = -1;
    deadline = zclock_mono () + 10000;
    while (zclock_mono () < deadline) {
        s_pump_one (fake, zclock_mono () + 50);
        status = s_wait_exit (fake, 0);
        if (status != -1)
            break;
    }
    assert_int_not_equal (status, -1);
    assert_true (WIFEXITED (status));
    assert_int_equal (WEXITSTATUS (status), 0);
    //  No credit while draining
    assert_int_equal (fake->credits, credits);
}

static void
test_end_kinds (void **state)
{
    //  Every Finished says how the attempt ended
    fake_t *fake = (fake_t *) *state;
    s_welcomed (fake);
    const char *exit3 [] = { "sh", "-c", "exit 3", NULL };
    const char *missing [] = { "qanat-no-such-command", NULL };
    const char *slow [] = { "sleep", "100", NULL };
    s_send_assign (fake, 70, 0, exit3, NULL);
    s_send_assign (fake, 71, 0, missing, NULL);
    Qanat__Event *finished = s_wait_event (fake, 70, QANAT__EVENT__BODY_FINISHED, 10000);
    assert_non_null (finished);
    assert_int_equal (finished->finished->kind, QANAT__END_KIND__END_EXIT);
    finished = s_wait_event (fake, 71, QANAT__EVENT__BODY_FINISHED, 10000);
    assert_non_null (finished);
    assert_int_equal (finished->finished->kind, QANAT__END_KIND__END_START_FAILED);
    s_send_assign (fake, 72, 1, slow, NULL);
    s_send_assign (fake, 73, 0, slow, NULL);
    assert_non_null (s_wait_event (fake, 73, QANAT__EVENT__BODY_STARTED, 10000));
    s_send_cancel (fake, 73, "enough");
    finished = s_wait_event (fake, 73, QANAT__EVENT__BODY_FINISHED, 10000);
    assert_non_null (finished);
    assert_int_equal (finished->finished->kind, QANAT__END_KIND__END_CANCELED);
    finished = s_wait_event (fake, 72, QANAT__EVENT__BODY_FINISHED, 10000);
    assert_non_null (finished);
    assert_int_equal (finished->finished->kind, QANAT__END_KIND__END_TIMEOUT);
}

//  The hex mask of a "Name:\tHEX" line of /proc/PID/status that the task
//  of run_id printed, or UINT64_MAX when it did not.
static uint64_t
s_status_mask (fake_t *fake, uint64_t run_id, const char *name)
{
    char *out = s_stream_text (fake, run_id, QANAT__STREAM__STREAM_STDOUT);
    uint64_t mask = UINT64_MAX;
    size_t size = strlen (name);
    for (char *line = out; *line && mask == UINT64_MAX; ) {
        char *newline = strchr (line, '\n');
        if (newline)
            *newline = '\0';
        if (strncmp (line, name, size) == 0 && line [size] == ':')
            mask = strtoull (line + size + 1, NULL, 16);
        line = newline? newline + 1: line + strlen (line);
    }
    free (out);
    return mask;
}

static void
test_child_signals (void **state)
{
    //  The agent blocks SIGTERM and SIGINT for its signalfd; its tasks
    //  must start with no standard signal blocked or ignored.  (Signals
    //  32 and 33 belong to the C library, which lets nobody reset them:
    //  whatever the agent's parent did with them, the task inherits.)
    fake_t *fake = (fake_t *) *state;
    s_welcomed (fake);
    const char *argv [] = { "grep", "-E", "^Sig(Blk|Ign):", "/proc/self/status", NULL };
    s_send_assign (fake, 80, 0, argv, NULL);
    Qanat__Event *finished = s_wait_event (fake, 80, QANAT__EVENT__BODY_FINISHED, 10000);
    assert_non_null (finished);
    assert_int_equal (finished->finished->exit_code, 0);
    uint64_t standard = (1ULL << 31) - 1;       //  signals 1 to 31
    uint64_t blocked = s_status_mask (fake, 80, "SigBlk");
    uint64_t ignored = s_status_mask (fake, 80, "SigIgn");
    assert_true (blocked != UINT64_MAX);
    assert_true (ignored != UINT64_MAX);
    if (blocked & standard)
        fail_msg ("the task started with signals blocked: %" PRIx64, blocked);
    if (ignored & standard)
        fail_msg ("the task started with signals ignored: %" PRIx64, ignored);
}

//  ---------------------------------------------------------------------
//  Enrolment, identity, refusals, redaction

//  The whole file (caller frees), NULL when it cannot be read.
static char *
s_read_file (const char *path, size_t *size_p)
{
    FILE *file = fopen (path, "rb");
    if (!file)
        return NULL;
    size_t room = 4096, size = 0, got;
    char *data = (char *) malloc (room + 1);
    while (data && (got = fread (data + size, 1, room - size, file)) > 0) {
        size += got;
        if (size == room) {
            room *= 2;
            char *bigger = (char *) realloc (data, room + 1);
            if (!bigger) {
                free (data);
                data = NULL;
            }
            data = bigger;
        }
    }
    fclose (file);
    if (data)
        data [size] = '\0';
    *size_p = size;
    return data;
}

//  True when the file holds the bytes anywhere (a strings-like scan of
//  binary files such as LMDB's data.mdb).
static bool
s_file_holds (const char *path, const void *needle, size_t needle_size)
{
    size_t size = 0;
    char *data = s_read_file (path, &size);
    assert_non_null (data);
    bool found = memmem (data, size, needle, needle_size) != NULL;
    free (data);
    return found;
}

//  True when the agent's log holds text (always true when the log goes
//  to the terminal, QANAT_TEST_VERBOSE).
static bool
s_log_holds (fake_t *fake, const char *text)
{
    if (getenv ("QANAT_TEST_VERBOSE"))
        return true;
    char path [300];
    snprintf (path, sizeof (path), "%s/agent.log", fake->dir);
    return s_file_holds (path, text, strlen (text));
}

static void
s_key_path (fake_t *fake, char *path, size_t size)
{
    snprintf (path, size, "%s/data/agent.key", fake->dir);
}

//  Waits for the agent to exit and checks its exit code.
static void
s_expect_exit (fake_t *fake, int code, int timeout_ms)
{
    int64_t deadline = zclock_mono () + timeout_ms;
    int status = -1;
    while (zclock_mono () < deadline) {
        s_pump_one (fake, zclock_mono () + 50);
        pid_t rc = waitpid (fake->pid, &status, WNOHANG);
        if (rc == fake->pid) {
            fake->pid = 0;
            break;
        }
    }
    assert_int_equal (fake->pid, 0);
    assert_true (WIFEXITED (status));
    assert_int_equal (WEXITSTATUS (status), code);
}

static void
test_enrol_and_restart (void **state)
{
    fake_t *fake = (fake_t *) *state;
    s_welcomed (fake);
    //  Enrol came with the token's key, asking for the --labels
    assert_int_equal (fake->enrols, 1);
    assert_string_equal (fake->enrol_user, zcert_public_txt (fake->token_cert));
    assert_int_equal (fake->enrol_labels, 3);
    //  Register came with the agent's own key, the one it enrolled, and
    //  the labels granted rather than those asked for
    char enrolled_txt [QN_Z85_KEY_SIZE + 1];
    zmq_z85_encode (enrolled_txt, fake->enrol_key, 32);
    assert_string_equal (fake->register_user, enrolled_txt);
    assert_string_not_equal (enrolled_txt, zcert_public_txt (fake->token_cert));
    Qanat__Register *reg = fake->last_register->register_;
    assert_string_equal (reg->name, "test-agent");
    assert_int_equal (reg->n_labels, 1);
    assert_string_equal (reg->labels [0]->key, "env");
    assert_string_equal (reg->labels [0]->value, "granted");

    //  agent.key: private, the key pair enrolled, the pinned coordinator,
    //  and nothing of the token's secret
    char path [300];
    s_key_path (fake, path, sizeof (path));
    struct stat st;
    assert_int_equal (stat (path, &st), 0);
    assert_int_equal (st.st_mode & 0777, 0600);
    char data_dir [300];
    snprintf (data_dir, sizeof (data_dir), "%s/data", fake->dir);
    assert_int_equal (stat (data_dir, &st), 0);
    assert_int_equal (st.st_mode & 0777, 0700);
    zcert_t *cert = zcert_load (path);
    assert_non_null (cert);
    assert_memory_equal (zcert_public_key (cert), fake->enrol_key, 32);
    assert_string_equal (zcert_meta (cert, "coordinator-key"),
                         zcert_public_txt (fake->server_cert));
    assert_string_equal (zcert_meta (cert, "name"), "test-agent");
    assert_string_equal (zcert_meta (cert, "labels"), "env=granted");
    assert_string_equal (zcert_meta (cert, "endpoint"), fake->endpoint);
    zcert_destroy (&cert);
    const char *token_secret = zcert_secret_txt (fake->token_cert);
    assert_false (s_file_holds (path, token_secret, strlen (token_secret)));

    //  A restart uses agent.key, without a token
    kill (fake->pid, SIGTERM);
    s_expect_exit (fake, 0, 10000);
    fake->join = false;
    zframe_destroy (&fake->agent_id);
    memset (fake->register_user, 0, sizeof (fake->register_user));
    size_t registers = fake->registers;
    s_spawn_agent (fake);
    assert_true (s_wait_registers (fake, registers + 1, 10000));
    assert_int_equal (fake->enrols, 1);
    assert_string_equal (fake->register_user, enrolled_txt);
    reg = fake->last_register->register_;
    assert_int_equal (reg->n_labels, 1);
    assert_string_equal (reg->labels [0]->value, "granted");
    //  ...and a token given again on the command line is refused (--force
    //  would enrol anew): the identity stays, nothing is sent
    kill (fake->pid, SIGTERM);
    s_expect_exit (fake, 0, 10000);
    fake->join = true;
    s_spawn_agent (fake);
    s_expect_exit (fake, 1, 10000);
    assert_int_equal (fake->enrols, 1);
    assert_int_equal (fake->registers, registers + 1);
    assert_true (s_log_holds (fake, "this agent is already enrolled"));
    fake->join = false;
}

static void
test_enrol_refused (void **state)
{
    fake_t *fake = (fake_t *) *state;
    fake->enrol_refusal = "label gpu=h100 is not granted by the join token";
    s_expect_exit (fake, 1, 15000);
    assert_int_equal (fake->enrols, 1);
    assert_true (s_log_holds (fake, "enrolment refused: label gpu=h100 is not granted by "
                                    "the join token"));
    char path [300];
    s_key_path (fake, path, sizeof (path));
    assert_int_equal (access (path, F_OK), -1);
    assert_int_equal (fake->registers, 0);
}

static void
test_not_enrolled (void **state)
{
    fake_t *fake = (fake_t *) *state;
    s_expect_exit (fake, 1, 10000);
    assert_true (s_log_holds (fake, "this agent is not enrolled: run it once with --join TOKEN"));
    assert_int_equal (fake->registers + fake->enrols, 0);
}

static void
test_bad_token (void **state)
{
    fake_t *fake = (fake_t *) *state;
    s_expect_exit (fake, 1, 10000);
    assert_true (s_log_holds (fake, "bad join token"));
    assert_int_equal (fake->enrols, 0);
}

static void
test_denied_at_run_time (void **state)
{
    fake_t *fake = (fake_t *) *state;
    s_welcomed (fake);
    const char *argv [] = { "sleep", "30", NULL };
    s_send_assign (fake, 31, 0, argv, NULL);
    Qanat__Event *started = s_wait_event (fake, 31, QANAT__EVENT__BODY_STARTED, 10000);
    assert_non_null (started);
    pid_t group = (pid_t) started->started->pid;
    assert_true (group > 0);
    s_send_refusal (fake, QANAT__REFUSAL_CODE__REFUSAL_DENIED,
                    "your key is not admitted here (unknown, revoked or expired)");
    s_expect_exit (fake, 1, 15000);
    Qanat__Event *finished = s_find_event (fake, 31, QANAT__EVENT__BODY_FINISHED, 0);
    assert_non_null (finished);
    assert_int_equal (finished->finished->kind, QANAT__END_KIND__END_LOST);
    assert_non_null (strstr (finished->finished->reason, "refuses this agent's key"));
    assert_int_equal (kill (-group, 0), -1);
    assert_true (s_log_holds (fake, "the coordinator refuses this agent's key (revoked?)"));
}

static void
test_redaction (void **state)
{
    fake_t *fake = (fake_t *) *state;
    //  Events stay unacknowledged, so that they stay in the spool to be
    //  searched for the secrets
    fake->auto_ack = false;
    s_welcomed (fake);
    const char *redact [] = { "s3cr3t-Value", "ab", "first-line-pw\nsecond-line-pw", NULL };
    //  A secret on stdout, twice on stderr, one 1-byte-shifted across the
    //  8 KiB split of a long line, a short one, a multi-line one
    const char *argv [] = { "sh", "-c",
        "echo \"out $MY end\"; echo \"err $MY and $MY\" >&2; "
        "head -c 8190 /dev/zero | tr '\\0' x; echo \"${MY}tail\"; "
        "echo 'cabd'; printf 'first-line-pw\\nsecond-line-pw\\n'; "
        "echo \"trace $MY\" >&2; exit 3", NULL };
    const char *env [] = { "MY=s3cr3t-Value", NULL };
    s_send_assign_redact (fake, 41, 0, argv, env, redact);
    Qanat__Event *finished = s_wait_event (fake, 41, QANAT__EVENT__BODY_FINISHED, 10000);
    assert_non_null (finished);
    s_check_sequence (fake, 41);
    assert_non_null (s_find_log (fake, 41, QANAT__STREAM__STREAM_STDOUT, "out *** end"));
    assert_non_null (s_find_log (fake, 41, QANAT__STREAM__STREAM_STDERR, "err *** and ***"));
    assert_non_null (s_find_log (fake, 41, QANAT__STREAM__STREAM_STDOUT, "c***d"));
    char *out = s_stream_text (fake, 41, QANAT__STREAM__STREAM_STDOUT);
    char *err = s_stream_text (fake, 41, QANAT__STREAM__STREAM_STDERR);
    assert_null (strstr (out, "s3cr3t"));
    assert_null (strstr (err, "s3cr3t"));
    assert_null (strstr (out, "line-pw"));
    //  The long line: 8190 x, the secret that straddled the split, tail
    char *long_line = strstr (out, "xxxx");
    assert_non_null (long_line);
    assert_int_equal (strspn (long_line, "x"), 8190);
    assert_memory_equal (long_line + 8190, "***tail\n", 8);
    //  The multi-line secret: each of its lines hidden when they came in
    //  two chunks, or the whole value (one "***") when packed in one
    char *multi = strstr (out, "c***d\n");
    assert_non_null (multi);
    multi += 6;
    if (strcmp (multi, "***\n***\n") != 0 && strcmp (multi, "***\n") != 0)
        fail_msg ("the multi-line secret came out as '%s'", multi);
    free (out);
    free (err);
    const char *trace = finished->finished->stack_trace;
    assert_non_null (strstr (trace, "trace ***"));
    assert_null (strstr (trace, "s3cr3t"));

    //  Stop (the second SIGTERM: events are not acknowledged), then
    //  search the spool's LMDB file: what was sent is there, redacted,
    //  and the secrets are not
    kill (fake->pid, SIGTERM);
    zclock_sleep (300);
    kill (fake->pid, SIGTERM);
    s_expect_exit (fake, 0, 15000);
    char path [300];
    snprintf (path, sizeof (path), "%s/data/spool/data.mdb", fake->dir);
    assert_true (s_file_holds (path, "out *** end", 11));
    assert_true (s_file_holds (path, "trace ***", 9));
    assert_false (s_file_holds (path, "s3cr3t-Value", 12));
    assert_false (s_file_holds (path, "first-line-pw", 13));
    assert_false (s_file_holds (path, "second-line-pw", 14));
}

int
main (void)
{
    zsys_init ();
    //  QANAT_TEST_FILTER=test_cancel runs matching cases only
    if (getenv ("QANAT_TEST_FILTER"))
        cmocka_set_test_filter (getenv ("QANAT_TEST_FILTER"));
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup_teardown (test_register_welcome_credit, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_run_exit_code, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_environment, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_command_not_found, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_long_line, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_python_traceback, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_timeout, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_timeout_needs_kill, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_cancel, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_replay_after_refusal, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_reconnect_after_silence, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_running_in_register, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_garbage, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_sigterm_kills_tasks, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_bad_version_refusal_exits, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_back_pressure, s_setup_small_outbox, s_teardown),
        cmocka_unit_test_setup_teardown (test_restart_replays_spool, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_spool_full, s_setup_small_spool, s_teardown),
        cmocka_unit_test_setup_teardown (test_register_backoff, s_setup_wan_profile, s_teardown),
        cmocka_unit_test_setup_teardown (test_stop_after_disconnect, s_setup_stop_after, s_teardown),
        cmocka_unit_test_setup_teardown (test_drain, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_end_kinds, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_child_signals, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_enrol_and_restart, s_setup_join, s_teardown),
        cmocka_unit_test_setup_teardown (test_enrol_refused, s_setup_join, s_teardown),
        cmocka_unit_test_setup_teardown (test_not_enrolled, s_setup_no_token, s_teardown),
        cmocka_unit_test_setup_teardown (test_bad_token, s_setup_bad_token, s_teardown),
        cmocka_unit_test_setup_teardown (test_denied_at_run_time, s_setup_join, s_teardown),
        cmocka_unit_test_setup_teardown (test_redaction, s_setup, s_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
