/*  qn_client - request/reply with a coordinator.  See include/qn_client.h. */
#include "qn_client.h"

struct _qn_client_t {
    zsock_t *sock;
    char *endpoint;
    int timeout_ms;
    uint64_t next_id;
    bool secure;                    //  CURVE with a client key
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
    char *error_dummy = NULL;
    if (!error_p)
        error_p = &error_dummy;
    char *path = key_path? (streq (key_path, "none")? NULL: strdup (key_path)): s_default_key ();
    zcert_t *cert = NULL;
    const char *server_key = NULL;
    if (path) {
        cert = zcert_load (path);
        server_key = cert? zcert_meta (cert, "coordinator-key"): NULL;
        if (!cert || !server_key || strlen (server_key) != 40) {
            *error_p = zsys_sprintf ("%s is not a qanat client key file%s", path,
                                     cert? " (it names no coordinator-key)": "");
            zcert_destroy (&cert);
            zstr_free (&path);
            free (error_dummy);
            return NULL;
        }
    }
    zstr_free (&path);
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
    self->sock = zsock_new (ZMQ_DEALER);
    if (!self->sock) {
        zcert_destroy (&cert);
        free (self->endpoint);
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
    if (zsock_connect (self->sock, "%s", endpoint) == -1) {
        *error_p = zsys_sprintf ("cannot connect to '%s': %s", endpoint, zmq_strerror (zmq_errno ()));
        zcert_destroy (&cert);
        zsock_destroy (&self->sock);
        free (self->endpoint);
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
        zsock_destroy (&self->sock);
        free (self->endpoint);
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
        "set --coordinator or QANAT_COORDINATOR%s)", self->endpoint, self->timeout_ms / 1000.0,
        self->secure? "; is your key (--key, QANAT_KEY) one it admits?"
                    : "; it may want a client key: --key or QANAT_KEY");
    return message;
}

Qanat__Envelope *
qn_client_call (qn_client_t *self, Qanat__Request *request, char **error_p)
{
    assert (self);
    request->id = ++self->next_id;
    Qanat__Envelope env = QANAT__ENVELOPE__INIT;
    env.body_case = QANAT__ENVELOPE__BODY_REQUEST;
    env.request = request;

    int64_t deadline = zclock_mono () + self->timeout_ms;
    zpoller_t *poller = zpoller_new (self->sock, NULL);
    //  With ZMQ_IMMEDIATE a send fails (EAGAIN) until the connection is up,
    //  so retry until the deadline instead of blocking forever.
    zframe_t *frame = qn_msg_encode (&env);
    if (!frame) {
        zpoller_destroy (&poller);
        if (error_p)
            *error_p = strdup ("request too large");
        return NULL;
    }
    bool sent = false;
    while (!sent && !zsys_interrupted && zclock_mono () < deadline) {
        zframe_t *copy = zframe_dup (frame);
        if (zmq_send (zsock_resolve (self->sock), zframe_data (copy), zframe_size (copy),
                      ZMQ_DONTWAIT) >= 0)
            sent = true;
        zframe_destroy (&copy);
        if (!sent)
            zclock_sleep (20);
    }
    zframe_destroy (&frame);

    Qanat__Envelope *reply = NULL;
    while (sent && !reply) {
        int64_t left = deadline - zclock_mono ();
        if (left <= 0)
            break;
        if (!zpoller_wait (poller, (int) left))
            break;
        zframe_t *in = zframe_recv (self->sock);
        if (!in)
            break;
        qn_msg_status_t status;
        Qanat__Envelope *candidate = qn_msg_decode (zframe_data (in), zframe_size (in), &status, NULL);
        zframe_destroy (&in);
        if (!candidate)
            continue;
        if (candidate->body_case == QANAT__ENVELOPE__BODY_REFUSAL) {
            if (error_p)
                *error_p = zsys_sprintf ("coordinator refused the request: %s",
                                         candidate->refusal->message);
            qn_msg_free (&candidate);
            zpoller_destroy (&poller);
            return NULL;
        }
        if (candidate->body_case == QANAT__ENVELOPE__BODY_REPLY
        &&  candidate->reply->id == request->id)
            reply = candidate;
        else
            qn_msg_free (&candidate);     //  a late reply to an earlier call
    }
    zpoller_destroy (&poller);
    if (!reply) {
        //  Ctrl-C (czmq's handler) ends the wait: not the coordinator's fault
        if (error_p)
            *error_p = zsys_interrupted? strdup ("interrupted"): s_unreachable (self);
        return NULL;
    }
    if (reply->reply->body_case == QANAT__REPLY__BODY_ERROR) {
        if (error_p)
            *error_p = strdup (reply->reply->error->message);
        qn_msg_free (&reply);
        return NULL;
    }
    return reply;
}
