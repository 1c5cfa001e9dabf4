/*  qn_notify_worker - sends notifications off the coordinator's loop.

    A thread of its own (a zactor) with one libcurl multi handle: the loop
    hands it finished requests (URL, body, headers, or an SMTP envelope)
    as messages on the actor's pipe and reads one result per request back
    on the same pipe.  The worker never sees the store; every request has
    a connect and a total timeout, so a receiver that hangs costs one
    transfer slot for at most QN_NOTIFY_TIMEOUT_S and nothing else.

    Messages, all frames strings:
      loop -> worker  "SEND" id kind url body headers from to user password
                      (kind "http" or "smtp"; headers and to '\n'-separated)
      worker -> loop  "DONE" id status error  (status "0" delivered, "-1" not)
*/
#ifndef QN_NOTIFY_WORKER_H_INCLUDED
#define QN_NOTIFY_WORKER_H_INCLUDED

#include <czmq.h>

//  Connect limit and total limit of one delivery, in seconds
#define QN_NOTIFY_CONNECT_TIMEOUT_S     5
#define QN_NOTIFY_TIMEOUT_S             10

//  Starts the worker; NULL when libcurl cannot be loaded or no thread.
zactor_t *
    qn_notify_worker_new (char **error_p);

//  One request for the worker (copies nothing: sends at once).  0 or -1.
typedef struct {
    const char *id;
    bool smtp;
    const char *url;
    const char *body;
    const char *headers;        //  "Name: value" lines, '\n'-separated (http)
    const char *from;           //  smtp
    const char *to;             //  smtp, '\n'-separated
    const char *user;           //  smtp login, "" = none
    const char *password;
} qn_notify_request_t;

int
    qn_notify_worker_send (zactor_t *worker, const qn_notify_request_t *request);

#endif
