/*  qn_enrol - enrols an agent with a join token.  See qn_enrol.h.
*/
#include "qn_enrol.h"
#include "qn_log.h"
#include "qn_handshake.h"
#include "qn_msg.h"
#include "qn_token.h"

#include <assert.h>
#include <string.h>

static int
s_send_enrol (zsock_t *sock, const qn_enrol_request_t *request, zcert_t *cert)
{
    Qanat__Label *labels = (Qanat__Label *) calloc (request->label_count + 1,
                                                    sizeof (Qanat__Label));
    Qanat__Label **label_ptrs = (Qanat__Label **) calloc (request->label_count + 1,
                                                          sizeof (void *));
    int rc = -1;
    if (labels && label_ptrs) {
        Qanat__Enrol enrol = QANAT__ENROL__INIT;
        enrol.name = (char *) request->name;
        enrol.public_key.data = (uint8_t *) zcert_public_key (cert);
        enrol.public_key.len = 32;
        for (size_t i = 0; i < request->label_count; i++) {
            qanat__label__init (&labels [i]);
            labels [i].key = (char *) request->label_keys [i];
            labels [i].value = (char *) request->label_values [i];
            label_ptrs [i] = &labels [i];
        }
        enrol.n_labels = request->label_count;
        enrol.labels = label_ptrs;
        Qanat__Envelope env = QANAT__ENVELOPE__INIT;
        env.body_case = QANAT__ENVELOPE__BODY_ENROL;
        env.enrol = &enrol;
        zframe_t *frame = qn_msg_encode (&env);
        if (frame && zframe_send (&frame, sock, ZFRAME_DONTWAIT) == 0)
            rc = 0;
        zframe_destroy (&frame);
    }
    free (labels);
    free (label_ptrs);
    return rc;
}

//  The answer to Enrol, if this message is one: 1 = enrolled (identity
//  filled), -1 = refused (*error_p set), 0 = something else.
static int
s_enrol_answer (zmsg_t *msg, qn_identity_t *identity, char **error_p)
{
    if (zmsg_size (msg) != 1)
        return 0;
    zframe_t *frame = zmsg_first (msg);
    qn_msg_status_t status;
    uint32_t version = 0;
    Qanat__Envelope *env = qn_msg_decode (zframe_data (frame), zframe_size (frame),
                                          &status, &version);
    if (!env)
        return 0;
    int rc = 0;
    if (env->body_case == QANAT__ENVELOPE__BODY_ENROLLED) {
        Qanat__Enrolled *enrolled = env->enrolled;
        rc = 1;
        if (!qn_identity_name_ok (enrolled->name)) {
            *error_p = strdup ("the coordinator answered with an invalid agent name");
            rc = -1;
        }
        else
        if (qn_identity_set_name (identity, enrolled->name) == -1)
            rc = -1;
        for (size_t i = 0; rc == 1 && i < enrolled->n_labels; i++)
            if (!enrolled->labels [i]
            ||  qn_identity_add_label (identity, enrolled->labels [i]->key,
                                      enrolled->labels [i]->value) == -1)
                rc = -1;
        if (rc == -1 && !*error_p)
            *error_p = strdup ("out of memory");
    }
    else
    if (env->body_case == QANAT__ENVELOPE__BODY_REFUSAL) {
        const char *message = env->refusal->message && *env->refusal->message
                            ? env->refusal->message: "no reason given";
        if (env->refusal->code == QANAT__REFUSAL_CODE__REFUSAL_BAD_VERSION)
            *error_p = zsys_sprintf ("the coordinator refused our protocol version: %s", message);
        else
            *error_p = zsys_sprintf ("enrolment refused: %s", message);
        rc = -1;
    }
    qn_msg_free (&env);
    return rc;
}

//  The enrolment connection: a DEALER with the token's key pair, pinned
//  to the coordinator's key, its handshake monitor and a poller on both.
typedef struct {
    zsock_t *sock;
    qn_handshake_t *handshake;
    zpoller_t *poller;
} s_conn_t;

//  Sets the connection up (not connected yet): 0, or -1 when out of
//  memory (what was made is left for s_conn_close).
static int
s_conn_open (s_conn_t *conn, const qn_token_t *token)
{
    uint8_t token_public [32], token_secret [32];
    zcert_t *token_cert = NULL;
    if (zmq_z85_decode (token_public, token->public_key)
    &&  zmq_z85_decode (token_secret, token->secret_key))
        token_cert = zcert_new_from (token_public, token_secret);
    explicit_bzero (token_secret, sizeof (token_secret));
    if (token_cert && (conn->sock = zsock_new (ZMQ_DEALER))) {
        qn_msg_prepare_socket (conn->sock);
        zcert_apply (token_cert, conn->sock);
        zsock_set_curve_serverkey (conn->sock, token->coordinator_key);
        zsock_set_reconnect_ivl (conn->sock, 250);
        zsock_set_reconnect_ivl_max (conn->sock, 1000);
        conn->handshake = qn_handshake_new (conn->sock);
        if (conn->handshake)
            conn->poller = zpoller_new (conn->sock, qn_handshake_sock (conn->handshake), NULL);
    }
    zcert_destroy (&token_cert);
    return conn->poller? 0: -1;
}

static void
s_conn_close (s_conn_t *conn)
{
    zpoller_destroy (&conn->poller);
    qn_handshake_destroy (&conn->handshake);
    zsock_destroy (&conn->sock);
}

//  Sends Enrol and waits for the answer until the request's timeout: 1 =
//  enrolled (identity filled), else 0 with *error_p set.
static int
s_exchange (s_conn_t *conn, const qn_enrol_request_t *request, qn_identity_t *identity,
            const char *endpoint, char **error_p)
{
    //  One Enrol per connection that got through the handshake: a
    //  message queued on a connection that then dies is lost, and a
    //  second one on a live connection would meet a spent token.
    int timeout = request->timeout_ms > 0? request->timeout_ms: QN_ENROL_TIMEOUT_MS;
    int64_t deadline = zclock_mono () + timeout;
    bool connected = false;
    bool sent = false;
    size_t enrols = 0;
    size_t handshake_failures = 0;
    int answer = 0;
    char *late_refusal = NULL;
    zsock_t *monitor = qn_handshake_sock (conn->handshake);
    while (!*error_p && answer == 0 && zclock_mono () < deadline) {
        if (connected && !sent
        &&  s_send_enrol (conn->sock, request, qn_identity_cert (identity)) == 0) {
            sent = true;
            enrols++;
            qn_log (QN_LOG_INFO, "enrol", "enrolling as %s with %s", request->name, endpoint);
        }
        int64_t wait = deadline - zclock_mono ();
        if (wait > 100)
            wait = 100;
        void *which = zpoller_wait (conn->poller, wait > 0? (int) wait: 0);
        if (which == monitor) {
            uint16_t event;
            uint32_t value;
            if (qn_handshake_read (conn->handshake, &event, &value) == -1)
                continue;
            if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
                connected = true;
                sent = false;
            }
            else
            if (event == ZMQ_EVENT_DISCONNECTED)
                connected = false;
            else
            if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH && value == 400)
                *error_p = strdup ("enrolment refused: the coordinator does not admit this "
                                   "join token (used up, expired, or never made there)");
            else
                handshake_failures++;
        }
        else
        if (which == conn->sock) {
            zmsg_t *msg = zmsg_recv (conn->sock);
            if (!msg)
                continue;
            char *refusal = NULL;
            answer = s_enrol_answer (msg, identity, &refusal);
            zmsg_destroy (&msg);
            if (answer == -1 && enrols > 1 && !qn_identity_name (identity)) {
                //  The refusal may answer a second Enrol after the first
                //  was granted: wait a moment for the Enrolled
                qn_log (QN_LOG_DEBUG, "enrol", "%s", refusal? refusal: "refused");
                int64_t grace = zclock_mono () + 1000;
                if (deadline > grace)
                    deadline = grace;
                zstr_free (&late_refusal);
                late_refusal = refusal;
                answer = 0;
                continue;
            }
            if (answer == -1)
                *error_p = refusal? refusal: strdup ("enrolment refused");
            else
                zstr_free (&refusal);
        }
        else
        if (zpoller_terminated (conn->poller))
            *error_p = strdup ("interrupted");
    }
    if (answer == 0 && !*error_p && late_refusal) {
        *error_p = late_refusal;
        late_refusal = NULL;
    }
    zstr_free (&late_refusal);
    if (answer == 0 && !*error_p)
        *error_p = zsys_sprintf ("could not reach the coordinator at %s to enrol (is the "
                                 "token's coordinator key right? expired token?)%s", endpoint,
                                 handshake_failures? " (the CURVE handshake failed)": "");
    return answer == 1? 1: 0;
}

qn_identity_t *
qn_enrol_join (const qn_enrol_request_t *request, char **error_p)
{
    assert (request);
    assert (request->token);
    assert (request->path);
    assert (error_p);
    *error_p = NULL;
    qn_token_t token;
    const char *problem = NULL;
    if (qn_token_parse (request->token, &token, &problem) == -1) {
        *error_p = zsys_sprintf ("bad join token: %s", problem? problem: "malformed");
        return NULL;
    }
    const char *endpoint = request->endpoint && *request->endpoint? request->endpoint
                                                                  : token.endpoint;
    if (!*endpoint) {
        *error_p = strdup ("the join token names no endpoint: give --coordinator");
        return NULL;
    }
    if (!qn_identity_name_ok (request->name)) {
        *error_p = zsys_sprintf ("agent name '%s': use 1 to 128 letters, digits, '_', '.' "
                                 "or '-'", request->name? request->name: "");
        return NULL;
    }
    qn_identity_t *identity = qn_identity_new (token.coordinator_key, endpoint);
    s_conn_t conn = { NULL, NULL, NULL };
    int rc = identity? s_conn_open (&conn, &token): -1;
    //  The token's secret goes; its endpoint lives on in the identity
    explicit_bzero (&token, sizeof (token));
    endpoint = identity? qn_identity_endpoint (identity): "";
    if (rc == -1)
        *error_p = strdup ("cannot set up the enrolment connection (out of memory?)");
    else
    if (zsock_connect (conn.sock, "%s", endpoint) == -1)
        *error_p = zsys_sprintf ("cannot connect to %s: %s", endpoint,
                                 zmq_strerror (zmq_errno ()));
    int answer = *error_p? 0: s_exchange (&conn, request, identity, endpoint, error_p);
    if (answer == 1 && qn_identity_save (identity, request->path, error_p) == 0)
        qn_log (QN_LOG_INFO, "enrol", "enrolled as %s; identity saved in %s",
                      qn_identity_name (identity), request->path);
    else
        qn_identity_destroy (&identity);
    s_conn_close (&conn);
    return identity;
}
