/*  qn_client - request/reply with a coordinator.  See include/qn_client.h. */
#include "qn_client.h"
#include "qn_handshake.h"

struct _qn_client_t {
    zsock_t *sock;
    char *endpoint;
    char *key_path;                 //  the key file used, NULL for plaintext
    int timeout_ms;
    uint64_t next_id;
    bool secure;                    //  CURVE with a client key
    qn_handshake_t *handshake;      //  a failed handshake ends a call at once
    qn_client_failure_t failure;    //  why the last call failed
    int error_code;                 //  of the last Error reply
    uint32_t refusal_code;          //  of the last Refusal
};

static char *
s_default_key (void)
{
    const char *env = getenv ("QANAT_KEY");
    if (env && *env)
        return strdup (env);
    const char *home = getenv ("HOME");
    if (!home || !*home)
        return NULL;
    char *path = zsys_sprintf ("%s/.qanat/client.key", home);
    if (zsys_file_exists (path))
        return path;
    zstr_free (&path);
    path = zsys_sprintf ("%s/.qanat/coordinator/keys/admin.key", home);
    if (zsys_file_exists (path))
        return path;
    zstr_free (&path);
    return NULL;
}

qn_client_t *
qn_client_new (const char *endpoint, int timeout_ms)
{
    char *error = NULL;
    qn_client_t *self = qn_client_new_keyed (endpoint, NULL, timeout_ms, &error);
    if (!self && error)
        zsys_error ("%s", error);
    free (error);
    return self;
}

qn_client_t *
qn_client_new_keyed (const char *endpoint, const char *key_path, int timeout_ms, char **error_p)
{
    return qn_client_new_checked (endpoint, key_path, timeout_ms, NULL, error_p);
}

qn_client_t *
qn_client_new_checked (const char *endpoint, const char *key_path, int timeout_ms,
                       qn_client_failure_t *failure_p, char **error_p)
{
    char *error_dummy = NULL;
    if (!error_p)
        error_p = &error_dummy;
    qn_client_failure_t failure_dummy;
    if (!failure_p)
        failure_p = &failure_dummy;
    *failure_p = QN_CLIENT_LOCAL;
    char *path = key_path? (streq (key_path, "none")? NULL: strdup (key_path)): s_default_key ();
    zcert_t *cert = NULL;
    const char *server_key = NULL;
    if (path && !zsys_file_exists (path)) {
        //  Said before anything is tried: a typo should not cost a timeout
        *error_p = zsys_sprintf ("key file %s does not exist", path);
        *failure_p = QN_CLIENT_BAD_KEY;
        zstr_free (&path);
        free (error_dummy);
        return NULL;
    }
    if (path) {
        cert = zcert_load (path);
        server_key = cert? zcert_meta (cert, "coordinator-key"): NULL;
        if (!cert || !server_key || strlen (server_key) != 40) {
            *error_p = zsys_sprintf ("%s is not a qanat client key file%s", path,
                                     cert? " (it names no coordinator-key)": "");
            *failure_p = QN_CLIENT_BAD_KEY;
            zcert_destroy (&cert);
            zstr_free (&path);
            free (error_dummy);
            return NULL;
        }
    }
    if (!endpoint || !*endpoint)
        endpoint = getenv ("QANAT_COORDINATOR");
    if ((!endpoint || !*endpoint) && cert)
        endpoint = zcert_meta (cert, "endpoint");
    if (!endpoint || !*endpoint)
        endpoint = QN_DEFAULT_CLIENT_ENDPOINT;
    qn_client_t *self = (qn_client_t *) zmalloc (sizeof (qn_client_t));
    //  Copied now: the key file's endpoint lives in cert, freed below
    self->endpoint = strdup (endpoint);
    endpoint = self->endpoint;
    self->key_path = path;
    self->sock = zsock_new (ZMQ_DEALER);
    if (!self->sock) {
        zcert_destroy (&cert);
        free (self->endpoint);
        free (self->key_path);
        free (self);
        free (error_dummy);
        return NULL;
    }
    qn_msg_prepare_socket (self->sock);
    if (cert) {
        zcert_apply (cert, self->sock);
        zsock_set_curve_serverkey (self->sock, server_key);
        self->secure = true;
    }
    //  Never queue requests for a peer we have not reached: a dead
    //  coordinator should make the call time out, not pile up work.
    zsock_set_immediate (self->sock, 1);
    //  Watched before connecting, so that no handshake goes unseen; a
    //  client without the watch still works, only slower to fail.
    self->handshake = qn_handshake_new (self->sock);
    if (zsock_connect (self->sock, "%s", endpoint) == -1) {
        *error_p = zsys_sprintf ("cannot connect to '%s': %s", endpoint, zmq_strerror (zmq_errno ()));
        *failure_p = QN_CLIENT_UNREACHABLE;
        zcert_destroy (&cert);
        qn_handshake_destroy (&self->handshake);
        zsock_destroy (&self->sock);
        free (self->endpoint);
        free (self->key_path);
        free (self);
        return NULL;
    }
    zcert_destroy (&cert);
    free (error_dummy);
    self->timeout_ms = timeout_ms > 0? timeout_ms: 5000;
    self->next_id = (uint64_t) getpid () << 32;
    return self;
}

void
qn_client_destroy (qn_client_t **self_p)
{
    assert (self_p);
    qn_client_t *self = *self_p;
    if (self) {
        qn_handshake_destroy (&self->handshake);
        zsock_destroy (&self->sock);
        free (self->endpoint);
        free (self->key_path);
        free (self);
        *self_p = NULL;
    }
}

const char *
qn_client_endpoint (qn_client_t *self)
{
    return self->endpoint;
}

static char *
s_unreachable (qn_client_t *self)
{
    char *message = zsys_sprintf (
        "cannot reach the coordinator at %s: no answer within %.1f s (is qanatd running? "
        "set --coordinator or QANAT_COORDINATOR)", self->endpoint, self->timeout_ms / 1000.0);
    return message;
}

//  Reads the handshake events waiting; a handshake that cannot succeed
//  returns its message (malloc'd), else NULL.  A ZAP status other than
//  400 is the handler's own trouble: libzmq tries again.
static char *
s_handshake_failed (qn_client_t *self)
{
    if (!self->handshake)
        return NULL;
    zsock_t *events = qn_handshake_sock (self->handshake);
    while (zsock_events (events) & ZMQ_POLLIN) {
        uint16_t event = 0;
        uint32_t value = 0;
        if (qn_handshake_read (self->handshake, &event, &value))
            break;
        if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH && value == 400)
            return zsys_sprintf ("the coordinator at %s does not admit the key in %s "
                                 "(unknown, revoked or expired)", self->endpoint,
                                 self->key_path);
        if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL
        ||  event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL)
            return self->secure
                ? zsys_sprintf ("no secure handshake with %s: it is not the coordinator %s "
                                "was made for, or it runs --insecure (then use --key none)",
                                self->endpoint, self->key_path)
                : zsys_sprintf ("no client key: set QANAT_KEY or use --key (the coordinator "
                                "at %s wants one)", self->endpoint);
    }
    return NULL;
}

//  Waits for the reply to request_id until the deadline; NULL with
//  self->failure and *error_p set when none comes.
static Qanat__Envelope *
s_wait_reply (qn_client_t *self, uint64_t request_id, int64_t deadline, char **error_p)
{
    zpoller_t *poller = zpoller_new (self->sock, NULL);
    if (self->handshake)
        zpoller_add (poller, qn_handshake_sock (self->handshake));
    Qanat__Envelope *reply = NULL;
    while (!reply) {
        int64_t left = deadline - zclock_mono ();
        if (left <= 0 || zsys_interrupted)
            break;
        void *which = zpoller_wait (poller, (int) left);
        if (!which)
            break;
        if (which != self->sock) {
            char *failed = s_handshake_failed (self);
            if (failed) {
                self->failure = QN_CLIENT_DENIED;
                *error_p = failed;
                break;
            }
            continue;
        }
        zframe_t *in = zframe_recv (self->sock);
        if (!in)
            break;
        qn_msg_status_t status;
        Qanat__Envelope *candidate = qn_msg_decode (zframe_data (in), zframe_size (in), &status, NULL);
        zframe_destroy (&in);
        if (!candidate)
            continue;
        if (candidate->body_case == QANAT__ENVELOPE__BODY_REFUSAL) {
            self->failure = QN_CLIENT_REFUSED;
            self->refusal_code = candidate->refusal->code;
            *error_p = zsys_sprintf ("the coordinator refused the request: %s",
                                     candidate->refusal->message);
            qn_msg_free (&candidate);
            break;
        }
        if (candidate->body_case == QANAT__ENVELOPE__BODY_REPLY
        &&  candidate->reply->id == request_id)
            reply = candidate;
        else
            qn_msg_free (&candidate);     //  a late reply to an earlier call
    }
    zpoller_destroy (&poller);
    return reply;
}

Qanat__Envelope *
qn_client_call (qn_client_t *self, Qanat__Request *request, char **error_p)
{
    assert (self);
    char *error_dummy = NULL;
    if (!error_p)
        error_p = &error_dummy;
    *error_p = NULL;
    self->failure = QN_CLIENT_OK;
    request->id = ++self->next_id;
    Qanat__Envelope env = QANAT__ENVELOPE__INIT;
    env.body_case = QANAT__ENVELOPE__BODY_REQUEST;
    env.request = request;

    int64_t deadline = zclock_mono () + self->timeout_ms;
    zframe_t *frame = qn_msg_encode (&env);
    if (!frame) {
        self->failure = QN_CLIENT_LOCAL;
        *error_p = strdup ("request too large");
        free (error_dummy);
        return NULL;
    }
    //  With ZMQ_IMMEDIATE a send fails (EAGAIN) until the connection is up,
    //  so retry until the deadline instead of blocking forever; a
    //  handshake that fails for good ends the wait at once.
    bool sent = false;
    while (!sent && !zsys_interrupted && zclock_mono () < deadline && !*error_p) {
        if (zmq_send (zsock_resolve (self->sock), zframe_data (frame), zframe_size (frame),
                      ZMQ_DONTWAIT) >= 0)
            sent = true;
        else
        if ((*error_p = s_handshake_failed (self)))
            self->failure = QN_CLIENT_DENIED;
        else
            zclock_sleep (20);
    }
    zframe_destroy (&frame);
    Qanat__Envelope *reply = sent? s_wait_reply (self, request->id, deadline, error_p): NULL;
    if (!reply && !*error_p) {
        //  Ctrl-C (czmq's handler) ends the wait: not the coordinator's fault
        self->failure = zsys_interrupted? QN_CLIENT_INTERRUPTED: QN_CLIENT_UNREACHABLE;
        *error_p = zsys_interrupted? strdup ("interrupted"): s_unreachable (self);
    }
    if (reply && reply->reply->body_case == QANAT__REPLY__BODY_ERROR) {
        self->failure = QN_CLIENT_ERROR;
        self->error_code = reply->reply->error->code;
        *error_p = strdup (reply->reply->error->message);
        qn_msg_free (&reply);
    }
    free (error_dummy);
    return reply;
}

qn_client_failure_t
qn_client_failure (qn_client_t *self)
{
    assert (self);
    return self->failure;
}

int
qn_client_error_code (qn_client_t *self)
{
    assert (self);
    return self->error_code;
}

uint32_t
qn_client_refusal_code (qn_client_t *self)
{
    assert (self);
    return self->refusal_code;
}
