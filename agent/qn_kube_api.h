/*  qn_kube_api - a Kubernetes API client for the agent's zloop, and the
    pieces of the Kubernetes backend that are pure functions (so that they
    can be tested on their own).

    qn_kube_config_t says where the API server is and how to authenticate:
    read from a kubeconfig file (parsed with libyaml, as hostile input) or
    from the in-cluster service account.

    qn_kube_api_t runs HTTP requests through qn_rest (libcurl's multi
    interface driven by the zloop), adding the cluster's TLS settings and
    bearer token to each, so no request ever blocks the loop.  Two kinds of call:
    a JSON request with a completion callback, and a streaming GET (log
    follow) with a data callback and a completion callback.  Callbacks run
    from the loop; a completion callback may start or cancel any call, a
    data callback should not (it runs inside libcurl: a call it cancels
    is only dropped when libcurl lets go of it).

    The Job itself (its name, manifest and outcome) is qn_kube_job's;
    this header includes qn_kube_job.h so the backend sees both.
*/
#ifndef QN_KUBE_API_H_INCLUDED
#define QN_KUBE_API_H_INCLUDED

#include <czmq.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include "qanat.pb-c.h"
#include "qn_kube_job.h"
#include "qn_rest.h"

#ifdef __cplusplus
extern "C" {
#endif

//  Largest kubeconfig we read, and largest JSON answer we accept
#define QN_KUBE_CONFIG_MAX      (1024 * 1024)
#define QN_KUBE_RESPONSE_MAX    QN_REST_RESPONSE_MAX

//  ---------------------------------------------------------------------
//  Where the API server is and who we are

typedef struct {
    char *server;               //  "https://host:port", no trailing '/'
    char *namespace_name;       //  from the context or the pod; NULL if none
    char *token;                //  bearer token, or NULL
    char *token_file;           //  re-read now and then (rotated tokens), or NULL
    char *ca_file;              //  CA bundle path, or NULL
    char *ca_data;              //  CA bundle PEM (decoded), or NULL
    size_t ca_size;
    char *cert_file;            //  client certificate path, or NULL
    char *cert_data;            //  client certificate PEM (decoded), or NULL
    size_t cert_size;
    char *key_file;             //  client key path, or NULL
    char *key_data;             //  client key PEM (decoded), or NULL
    size_t key_size;
    bool insecure;              //  insecure-skip-tls-verify
} qn_kube_config_t;

//  Destroys a configuration and nulls the pointer.  Idempotent.
void
    qn_kube_config_destroy (qn_kube_config_t **self_p);

//  Parses kubeconfig text: context (NULL = current-context) names the
//  cluster and the user.  Relative file paths are taken from base_dir
//  (the kubeconfig's directory; NULL = as they are).  NULL with a message
//  in error on anything we cannot use.
qn_kube_config_t *
    qn_kube_config_parse (const char *text, size_t size, const char *context,
                          const char *base_dir, char *error, size_t error_size);

//  Reads and parses the kubeconfig file at path.
qn_kube_config_t *
    qn_kube_config_load (const char *path, const char *context, char *error,
                         size_t error_size);

//  The in-cluster configuration: KUBERNETES_SERVICE_HOST and _PORT from
//  the environment, token, ca.crt and namespace from secrets_dir (NULL =
//  /var/run/secrets/kubernetes.io/serviceaccount).
qn_kube_config_t *
    qn_kube_config_in_cluster (const char *secrets_dir, char *error, size_t error_size);

//  The configuration an agent uses: the kubeconfig at path if given, else
//  $KUBECONFIG (its first file), else in-cluster when
//  KUBERNETES_SERVICE_HOST is set, else ~/.kube/config.
qn_kube_config_t *
    qn_kube_config_resolve (const char *path, const char *context, char *error,
                            size_t error_size);

//  Decodes standard base64 (padding optional, whitespace ignored) into a
//  fresh NUL-terminated buffer; *size_p gets its size.  NULL on bad input.
char *
    qn_kube_base64_decode (const char *text, size_t *size_p);


//  ---------------------------------------------------------------------
//  The client

typedef struct _qn_kube_api_t qn_kube_api_t;

//  A finished call and the bytes of a streamed answer: as qn_rest's
typedef qn_rest_done_fn qn_kube_done_fn;
typedef qn_rest_data_fn qn_kube_data_fn;

//  Creates a client on loop, taking the configuration (*config_p is
//  nulled).  NULL on failure.
qn_kube_api_t *
    qn_kube_api_new (zloop_t *loop, qn_kube_config_t **config_p);

//  Cancels every call without calling back, and destroys the client.
void
    qn_kube_api_destroy (qn_kube_api_t **self_p);

//  The configuration in use.
const qn_kube_config_t *
    qn_kube_api_config (qn_kube_api_t *self);

//  Starts a request: method ("GET", "POST", "DELETE"...), path with its
//  query (already escaped), an optional JSON body (borrowed).  done is
//  called once.  Returns the call's id (never 0), or 0 on failure.
uint64_t
    qn_kube_api_request (qn_kube_api_t *self, const char *method, const char *path,
                         json_t *body, qn_kube_done_fn *done, void *arg);

//  Starts a streaming GET: data gets the answer's bytes while it comes,
//  done is called once at the end (body is NULL for a 2xx answer, the
//  parsed error answer otherwise).
uint64_t
    qn_kube_api_stream (qn_kube_api_t *self, const char *path, qn_kube_data_fn *data,
                        qn_kube_done_fn *done, void *arg);

//  Cancels a call: its callbacks are not called any more.  Unknown or
//  finished ids are ignored.  Safe from any callback.
void
    qn_kube_api_cancel (qn_kube_api_t *self, uint64_t call);

//  Stops (true) or resumes reading a streaming call's answer.
void
    qn_kube_api_pause (qn_kube_api_t *self, uint64_t call, bool paused);

//  Calls in flight.
size_t
    qn_kube_api_active (qn_kube_api_t *self);

//  A request made synchronously, outside the loop (for shutdown), with a
//  bound of timeout_ms.  Returns the HTTP status, 0 on failure (error).
long
    qn_kube_api_request_sync (qn_kube_api_t *self, const char *method, const char *path,
                              json_t *body, int timeout_ms, char *error, size_t error_size);

//  Percent-escapes text for a URL path segment or a query value into a
//  fresh string.  NULL when out of memory.
char *
    qn_kube_escape (const char *text);

#ifdef __cplusplus
}
#endif
#endif
