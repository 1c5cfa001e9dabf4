/*  qn_rest - HTTP calls to a REST API from the agent's zloop, through
    libcurl's multi interface: the transport every REST backend shares
    (Kubernetes, Lambda, Databricks, ...).

    curl's sockets become zloop pollers and its timer a zloop timer, so no
    call ever blocks the loop.  Two kinds of call: a request whose answer
    is read whole (and parsed when it is JSON) with a completion callback,
    and a streaming GET (log follow) with a data callback and a completion
    callback.  Callbacks run from the loop; a completion callback may
    start or cancel any call, a data callback should not (it runs inside
    libcurl: a call it cancels is only dropped when libcurl lets go of it).

    Each call gets the client's setup hook (TLS settings, an Authorization
    header: whatever every call of that API needs) and its own extra
    headers, body and AWS SigV4 signing.  While a completion callback runs
    the answer's headers and raw text can be read (qn_rest_header,
    qn_rest_text, qn_rest_retry_after_ms).  libcurl is loaded on the
    first qn_rest_new (qn_curl), not at start.

    Also the helpers every REST backend needs for failures: which answers
    are worth retrying, and how long to wait (Retry-After, else
    exponential backoff with jitter).
*/
#ifndef QN_REST_H_INCLUDED
#define QN_REST_H_INCLUDED

#include <czmq.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include "qn_curl.h"

#ifdef __cplusplus
extern "C" {
#endif

#define QN_REST_RESPONSE_MAX    (16 * 1024 * 1024)  //  largest whole answer we accept
#define QN_REST_HEADERS_MAX     (32 * 1024)         //  largest answer headers we keep

typedef struct _qn_rest_t qn_rest_t;

//  A finished call: status is the HTTP status, 0 when the request failed
//  before an answer (error says why).  body is the parsed JSON answer
//  (borrowed, NULL when there was none or it was not JSON).
typedef void (qn_rest_done_fn) (void *arg, uint64_t call, long status, json_t *body,
                                const char *error);

//  Bytes of a streamed answer as they arrive (only with status 2xx).
//  Returns 0 to go on, -1 to abort the stream (it then completes with
//  status 0).
typedef int (qn_rest_data_fn) (void *arg, uint64_t call, const char *data, size_t size);

//  Sets up every call's easy handle: TLS options, and headers appended to
//  *headers (e.g. Authorization).  0, or -1 to refuse the call.
typedef int (qn_rest_setup_fn) (void *arg, CURL *easy, struct curl_slist **headers);

//  One call.  Only url is required.
typedef struct {
    const char *method;         //  NULL = "GET", or "POST" when there is a body
    const char *url;            //  full URL, query escaped
    json_t *json;               //  JSON body (borrowed), or
    const char *body;           //  a raw body of body_size bytes (copied)
    size_t body_size;
    const char *content_type;   //  of a raw body; NULL = application/json
    const char *const *headers; //  extra "Name: value" headers, NULL-terminated
    long timeout_ms;            //  0 = 30 s for whole answers, none for streams
    const char *aws_sigv4;      //  "aws:amz:REGION:SERVICE" to sign, or NULL
    const char *userpwd;        //  "ACCESS_KEY:SECRET" with aws_sigv4, else "USER:PASSWORD"
                                //  for HTTP Basic
} qn_rest_call_t;

//  Creates a client on loop; setup (may be NULL) runs for every call with
//  setup_arg.  NULL (with a log line) when libcurl cannot be loaded.
qn_rest_t *
    qn_rest_new (zloop_t *loop, const char *name, qn_rest_setup_fn *setup, void *setup_arg);

//  *rest_p, made with qn_rest_new on first use (libcurl is loaded with a
//  backend's first attempt, not with the agent).  0, or -1 with a message
//  naming the backend in error.
int
    qn_rest_ensure (qn_rest_t **rest_p, zloop_t *loop, const char *name,
                    qn_rest_setup_fn *setup, void *setup_arg, char *error, size_t error_size);

//  Cancels every call without calling back, and destroys the client.
void
    qn_rest_destroy (qn_rest_t **self_p);

//  Starts a call whose answer is read whole; done is called once.
//  Returns the call's id (never 0), or 0 on failure.
uint64_t
    qn_rest_request (qn_rest_t *self, const qn_rest_call_t *call, qn_rest_done_fn *done,
                     void *arg);

//  Starts a streaming call: data gets the answer's bytes while it comes,
//  done is called once at the end (body is NULL for a 2xx answer, the
//  parsed error answer otherwise).
uint64_t
    qn_rest_stream (qn_rest_t *self, const qn_rest_call_t *call, qn_rest_data_fn *data,
                    qn_rest_done_fn *done, void *arg);

//  Cancels a call: its callbacks are not called any more.  Unknown or
//  finished ids are ignored.  Safe from any callback.
void
    qn_rest_cancel (qn_rest_t *self, uint64_t call);

//  Stops (true) or resumes reading a streaming call's answer.
void
    qn_rest_pause (qn_rest_t *self, uint64_t call, bool paused);

//  Calls in flight.
size_t
    qn_rest_active (qn_rest_t *self);

//  A call made synchronously, outside the loop (for shutdown), with a
//  bound of call->timeout_ms.  Returns the HTTP status, 0 on failure
//  (error).
long
    qn_rest_request_sync (qn_rest_t *self, const qn_rest_call_t *call, char *error,
                          size_t error_size);

//  Inside call's completion callback: the value of the answer's header
//  name (case-insensitive, trimmed) copied into value, true when present.
bool
    qn_rest_header (qn_rest_t *self, uint64_t call, const char *name, char *value,
                    size_t value_size);

//  Inside call's completion callback: the raw answer and its size (NULL
//  when there was none).
const char *
    qn_rest_text (qn_rest_t *self, uint64_t call, size_t *size_p);

//  Inside call's completion callback: the answer's Retry-After in
//  milliseconds (delta-seconds or an HTTP date), -1 when absent or bad.
int64_t
    qn_rest_retry_after_ms (qn_rest_t *self, uint64_t call);

//  True for answers worth trying again: no answer (status 0), 408, 429,
//  500, 502, 503, 504.
bool
    qn_rest_transient (long status);

//  How long to wait before try number tries (1 = the first retry):
//  retry_after_ms when >= 0 (capped at max_ms), else base_ms doubled per
//  try up to max_ms, with up to a quarter of random jitter.
int64_t
    qn_rest_backoff_ms (unsigned tries, int64_t retry_after_ms, int64_t base_ms,
                        int64_t max_ms);

//  Percent-escapes text for a URL path segment or a query value into a
//  fresh string.  NULL when out of memory.
char *
    qn_rest_escape (const char *text);

#ifdef __cplusplus
}
#endif
#endif
