/*  qn_notify_worker - sends notifications off the coordinator's loop.
    See qn_notify_worker.h.

    Everything here runs on the worker's thread except qn_notify_worker_new
    and _send.  A transfer owns its strings and curl lists until it ends.
*/
#include "qn_notify_worker.h"
#include "qn_curl.h"

//  Transfers in flight at once; more wait in the pipe
#define S_TRANSFERS_MAX     32
//  The part of a receiver's answer kept for the error message
#define S_ANSWER_MAX        200

typedef struct {
    CURL *easy;
    char *id;
    char *url;
    char *body;
    size_t body_size;
    size_t sent;                //  smtp: bytes of body read by curl
    char *from, *user, *password;
    struct curl_slist *headers;
    struct curl_slist *rcpt;
    char answer [S_ANSWER_MAX + 1];
    size_t answer_size;
    char curl_error [CURL_ERROR_SIZE];
} s_transfer_t;

static void
s_transfer_destroy (s_transfer_t **transfer_p)
{
    s_transfer_t *transfer = *transfer_p;
    if (!transfer)
        return;
    if (transfer->easy)
        curl_easy_cleanup (transfer->easy);
    curl_slist_free_all (transfer->headers);
    curl_slist_free_all (transfer->rcpt);
    zstr_free (&transfer->id);
    zstr_free (&transfer->url);
    zstr_free (&transfer->body);
    zstr_free (&transfer->from);
    zstr_free (&transfer->user);
    if (transfer->password) {
        memset (transfer->password, 0, strlen (transfer->password));
        zstr_free (&transfer->password);
    }
    free (transfer);
    *transfer_p = NULL;
}

static size_t
s_on_answer (char *data, size_t size, size_t count, void *arg)
{
    s_transfer_t *transfer = (s_transfer_t *) arg;
    size_t bytes = size * count;
    size_t room = S_ANSWER_MAX - transfer->answer_size;
    size_t take = bytes < room? bytes: room;
    memcpy (transfer->answer + transfer->answer_size, data, take);
    transfer->answer_size += take;
    transfer->answer [transfer->answer_size] = 0;
    return bytes;
}

static size_t
s_on_read (char *buffer, size_t size, size_t count, void *arg)
{
    s_transfer_t *transfer = (s_transfer_t *) arg;
    size_t room = size * count;
    size_t left = transfer->body_size - transfer->sent;
    size_t take = left < room? left: room;
    memcpy (buffer, transfer->body + transfer->sent, take);
    transfer->sent += take;
    return take;
}

static struct curl_slist *
s_lines (const char *text)
{
    struct curl_slist *list = NULL;
    char *copy = strdup (text? text: "");
    char *save = NULL;
    for (char *line = strtok_r (copy, "\n", &save); line; line = strtok_r (NULL, "\n", &save))
        list = curl_slist_append (list, line);
    free (copy);
    return list;
}

//  smtp:// to loopback may stay plain (a local relay); anywhere else the
//  mail needs TLS: smtps:// from the start, or STARTTLS.
static bool
s_loopback_smtp (const char *url)
{
    static const char *plain [] = {
        "smtp://localhost", "smtp://127.0.0.1", "smtp://[::1]", NULL
    };
    for (size_t i = 0; plain [i]; i++) {
        size_t len = strlen (plain [i]);
        if (strncmp (url, plain [i], len) == 0 && strchr (":/", url [len] ? url [len]: '/'))
            return true;
    }
    return false;
}

static s_transfer_t *
s_transfer_new (zmsg_t *msg)
{
    s_transfer_t *transfer = (s_transfer_t *) zmalloc (sizeof (s_transfer_t));
    transfer->id = zmsg_popstr (msg);
    char *kind = zmsg_popstr (msg);
    transfer->url = zmsg_popstr (msg);
    transfer->body = zmsg_popstr (msg);
    char *headers = zmsg_popstr (msg);
    transfer->from = zmsg_popstr (msg);
    char *to = zmsg_popstr (msg);
    transfer->user = zmsg_popstr (msg);
    transfer->password = zmsg_popstr (msg);
    transfer->easy = curl_easy_init ();
    if (!transfer->id || !kind || !transfer->url || !transfer->body || !transfer->password
    ||  !transfer->easy) {
        zstr_free (&kind);
        zstr_free (&headers);
        zstr_free (&to);
        s_transfer_destroy (&transfer);
        return NULL;
    }
    transfer->body_size = strlen (transfer->body);
    CURL *easy = transfer->easy;
    curl_easy_setopt (easy, CURLOPT_URL, transfer->url);
    curl_easy_setopt (easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt (easy, CURLOPT_CONNECTTIMEOUT, (long) QN_NOTIFY_CONNECT_TIMEOUT_S);
    curl_easy_setopt (easy, CURLOPT_TIMEOUT, (long) QN_NOTIFY_TIMEOUT_S);
    curl_easy_setopt (easy, CURLOPT_ERRORBUFFER, transfer->curl_error);
    curl_easy_setopt (easy, CURLOPT_PRIVATE, transfer);
    if (streq (kind, "smtp")) {
        curl_easy_setopt (easy, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
        curl_easy_setopt (easy, CURLOPT_USE_SSL, s_loopback_smtp (transfer->url)
                          ? (long) CURLUSESSL_TRY: (long) CURLUSESSL_ALL);
        curl_easy_setopt (easy, CURLOPT_MAIL_FROM, transfer->from);
        transfer->rcpt = s_lines (to);
        curl_easy_setopt (easy, CURLOPT_MAIL_RCPT, transfer->rcpt);
        if (*transfer->user) {
            curl_easy_setopt (easy, CURLOPT_USERNAME, transfer->user);
            curl_easy_setopt (easy, CURLOPT_PASSWORD, transfer->password);
        }
        curl_easy_setopt (easy, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt (easy, CURLOPT_READFUNCTION, s_on_read);
        curl_easy_setopt (easy, CURLOPT_READDATA, transfer);
        curl_easy_setopt (easy, CURLOPT_INFILESIZE, (long) transfer->body_size);
    }
    else {
        curl_easy_setopt (easy, CURLOPT_PROTOCOLS_STR, "http,https");
        transfer->headers = s_lines (headers);
        curl_easy_setopt (easy, CURLOPT_HTTPHEADER, transfer->headers);
        curl_easy_setopt (easy, CURLOPT_POSTFIELDS, transfer->body);
        curl_easy_setopt (easy, CURLOPT_POSTFIELDSIZE, (long) transfer->body_size);
        curl_easy_setopt (easy, CURLOPT_WRITEFUNCTION, s_on_answer);
        curl_easy_setopt (easy, CURLOPT_WRITEDATA, transfer);
    }
    zstr_free (&kind);
    zstr_free (&headers);
    zstr_free (&to);
    return transfer;
}

//  The result of an ended transfer, to the loop
static void
s_report (zsock_t *pipe, s_transfer_t *transfer, CURLcode code)
{
    char error [512] = "";
    long status = 0;
    curl_easy_getinfo (transfer->easy, CURLINFO_RESPONSE_CODE, &status);
    if (code != CURLE_OK)
        snprintf (error, sizeof error, "%s", *transfer->curl_error? transfer->curl_error
                                             : curl_easy_strerror (code));
    else
    if (!transfer->rcpt && (status < 200 || status > 299)) {
        //  The receiver's words, on one line, for `qanat notifications`
        for (char *c = transfer->answer; *c; c++)
            if (*c == '\n' || *c == '\r' || *c == '\t')
                *c = ' ';
        snprintf (error, sizeof error, "HTTP %ld%s%.200s", status,
                  *transfer->answer? ": ": "", transfer->answer);
    }
    zstr_sendm (pipe, "DONE");
    zstr_sendm (pipe, transfer->id);
    zstr_sendm (pipe, *error? "-1": "0");
    zstr_send (pipe, error);
}

static void
s_worker (zsock_t *pipe, void *args)
{
    (void) args;
    CURLM *multi = curl_multi_init ();
    zsock_signal (pipe, multi? 0: 1);
    if (!multi)
        return;
    zpoller_t *poller = zpoller_new (pipe, NULL);
    size_t active = 0;
    bool stop = false;
    while (!stop) {
        //  Idle: sleep on the pipe.  Busy: glance at it, then wait on curl.
        zsock_t *ready = (zsock_t *) zpoller_wait (poller, active? 0: 500);
        while (ready && active < S_TRANSFERS_MAX && (zsock_events (pipe) & ZMQ_POLLIN)) {
            zmsg_t *msg = zmsg_recv (pipe);
            char *command = msg? zmsg_popstr (msg): NULL;
            if (!command || streq (command, "$TERM"))
                stop = true;
            else
            if (streq (command, "SEND")) {
                s_transfer_t *transfer = s_transfer_new (msg);
                if (transfer && curl_multi_add_handle (multi, transfer->easy) == CURLM_OK)
                    active++;
                else
                    s_transfer_destroy (&transfer);
            }
            zstr_free (&command);
            zmsg_destroy (&msg);
            if (stop)
                break;
        }
        if (stop || zpoller_terminated (poller))
            break;
        int running = 0;
        curl_multi_perform (multi, &running);
        CURLMsg *info;
        int queued = 0;
        while ((info = curl_multi_info_read (multi, &queued))) {
            if (info->msg != CURLMSG_DONE)
                continue;
            s_transfer_t *transfer = NULL;
            curl_easy_getinfo (info->easy_handle, CURLINFO_PRIVATE, (char **) &transfer);
            CURLcode code = info->data.result;
            curl_multi_remove_handle (multi, info->easy_handle);
            s_report (pipe, transfer, code);
            s_transfer_destroy (&transfer);
            active--;
        }
        if (active)
            curl_multi_wait (multi, NULL, 0, 50, NULL);
    }
    //  Transfers still running are dropped: their entries stay pending in
    //  the store and go out again after the restart
    zpoller_destroy (&poller);
    curl_multi_cleanup (multi);
}

zactor_t *
qn_notify_worker_new (char **error_p)
{
    char error [256];
    if (qn_curl_load (error, sizeof error)) {
        *error_p = zsys_sprintf ("cannot load libcurl: %s", error);
        return NULL;
    }
    zactor_t *worker = zactor_new (s_worker, NULL);
    if (!worker)
        *error_p = strdup ("cannot start the notification thread");
    return worker;
}

int
qn_notify_worker_send (zactor_t *worker, const qn_notify_request_t *request)
{
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, "SEND");
    zmsg_addstr (msg, request->id);
    zmsg_addstr (msg, request->smtp? "smtp": "http");
    zmsg_addstr (msg, request->url);
    zmsg_addstr (msg, request->body);
    zmsg_addstr (msg, request->headers? request->headers: "");
    zmsg_addstr (msg, request->from? request->from: "");
    zmsg_addstr (msg, request->to? request->to: "");
    zmsg_addstr (msg, request->user? request->user: "");
    zmsg_addstr (msg, request->password? request->password: "");
    return zmsg_send (&msg, worker);
}
