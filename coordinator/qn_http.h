/*  qn_http - qanatd's HTTP server: the JSON API (/api/v1), server-sent
    event streams, downloads, Prometheus /metrics and the web UI's files.

    It runs libmicrohttpd on its own threads, beside the engine's loop,
    and never touches engine state or the store: every API request
    becomes the protobuf Request the CLI sends, carried to the engine
    over an inproc socket (qn_http_bridge), and every change an event
    stream reports comes from the engine's inproc PUB.

    Threads: MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD.
    Each connection has its own thread, so its bridge socket is used by
    that thread only, and an event stream's reader may block on its SUB
    socket (in short slices, so that stopping the server is prompt)
    without holding anyone else up.  At most 256 connections (32 per IP
    address) are served, so the threads are bounded too.

    Security: refuses to listen beyond loopback without TLS unless told
    insecure; sends the same security headers on every response it
    makes; static files are served only from inside their root (real
    paths checked, no "..", no symlink leaving it).
*/
#ifndef QN_HTTP_H_INCLUDED
#define QN_HTTP_H_INCLUDED

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define QN_HTTP_DEFAULT_ENDPOINT   "127.0.0.1:7780"
#define QN_HTTP_JAVASCRIPT_DIR     "/usr/share/javascript"

typedef struct {
    const char *endpoint;           //  "ADDR:PORT" or "[IPv6]:PORT"; port 0 = any free one
    const char *cert_file;          //  PEM certificate (chain); with key_file: HTTPS
    const char *key_file;
    bool insecure;                  //  allow a non-loopback bind without TLS
    bool metrics_public;            //  /metrics without a credential from anywhere
    const char *web_dir;            //  index.html and static/
    const char *javascript_dir;     //  NULL = QN_HTTP_JAVASCRIPT_DIR
    const char *api_endpoint;       //  NULL = QN_HTTP_API_ENDPOINT
    const char *events_endpoint;    //  NULL = QN_HTTP_EVENTS_ENDPOINT
    int call_timeout_ms;            //  an engine call waits this long (0 = 10 s)
    //  The credential the server itself uses for /metrics asked without
    //  one (from loopback, or from anywhere with metrics_public); NULL
    //  when the engine needs none (qn_coordinator_http_credential)
    const char *metrics_credential;
    //  The engine refuses every request without a credential (it has a
    //  keyring): such requests get 401 before their body is decoded
    bool credential_required;
} qn_http_config_t;

typedef struct _qn_http_t qn_http_t;

//  Starts the server.  NULL with *error_p (malloc'd) on failure.
qn_http_t *
    qn_http_new (const qn_http_config_t *config, char **error_p);

//  Stops the server (open event streams end) and frees it.
void
    qn_http_destroy (qn_http_t **self_p);

//  The port it listens on (the one picked when the endpoint said 0)
uint16_t
    qn_http_port (qn_http_t *self);

//  Its base URL, "http://127.0.0.1:7780/"
const char *
    qn_http_url (qn_http_t *self);

#ifdef __cplusplus
}
#endif
#endif
