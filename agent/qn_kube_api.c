/*  qn_kube_api - a Kubernetes API client for the agent's zloop.  See
    qn_kube_api.h.

    libcurl's multi interface is driven by the loop: CURLMOPT_SOCKETFUNCTION
    turns each socket curl wants watched into a zloop poller (replaced when
    the wanted events change, ended on CURL_POLL_REMOVE), and
    CURLMOPT_TIMERFUNCTION keeps one one-shot zloop timer.  Both call
    curl_multi_socket_action, after which finished transfers are collected
    and their completion callbacks run, outside libcurl.
*/
#include "qn_kube_api.h"
#include "qn_log.h"
#include "qn_curl.h"
#include "qn_file.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#define S_SECRETS_DIR           "/var/run/secrets/kubernetes.io/serviceaccount"
#define S_TOKEN_REREAD_MS       60000
#define S_TOKEN_MAX             (64 * 1024)
#define S_CONNECT_TIMEOUT_MS    10000
#define S_REQUEST_TIMEOUT_MS    30000
#define S_ERROR_BODY_MAX        (64 * 1024)


//  ---------------------------------------------------------------------
//  Small helpers

static int
s_b64_value (int c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

char *
qn_kube_base64_decode (const char *text, size_t *size_p)
{
    if (!text)
        return NULL;
    size_t len = strlen (text);
    char *out = (char *) malloc (len / 4 * 3 + 4);
    if (!out)
        return NULL;
    size_t size = 0;
    uint32_t bits = 0;
    int count = 0;
    bool padding = false;
    for (const char *c = text; *c; c++) {
        if (isspace ((unsigned char) *c))
            continue;
        if (*c == '=') {
            padding = true;
            continue;
        }
        int value = s_b64_value ((unsigned char) *c);
        if (value < 0 || padding) {
            free (out);
            return NULL;
        }
        bits = (bits << 6) | (uint32_t) value;
        if (++count == 4) {
            out [size++] = (char) (bits >> 16);
            out [size++] = (char) (bits >> 8);
            out [size++] = (char) bits;
            bits = 0;
            count = 0;
        }
    }
    if (count == 1) {           //  6 bits cannot make a byte
        free (out);
        return NULL;
    }
    if (count == 2)
        out [size++] = (char) (bits >> 4);
    else
    if (count == 3) {
        out [size++] = (char) (bits >> 10);
        out [size++] = (char) (bits >> 2);
    }
    out [size] = '\0';
    if (size_p)
        *size_p = size;
    return out;
}

char *
qn_kube_escape (const char *text)
{
    static const char hex [] = "0123456789ABCDEF";
    size_t len = strlen (text);
    char *out = (char *) malloc (len * 3 + 1);
    if (!out)
        return NULL;
    size_t at = 0;
    for (const unsigned char *c = (const unsigned char *) text; *c; c++) {
        if (isalnum (*c) || *c == '-' || *c == '_' || *c == '.' || *c == '~')
            out [at++] = (char) *c;
        else {
            out [at++] = '%';
            out [at++] = hex [*c >> 4];
            out [at++] = hex [*c & 15];
        }
    }
    out [at] = '\0';
    return out;
}


//  ---------------------------------------------------------------------
//  Configuration

void
qn_kube_config_destroy (qn_kube_config_t **self_p)
{
    assert (self_p);
    qn_kube_config_t *self = *self_p;
    if (!self)
        return;
    free (self->server);
    free (self->namespace_name);
    if (self->token)
        memset (self->token, 0, strlen (self->token));
    free (self->token);
    free (self->token_file);
    free (self->ca_file);
    free (self->ca_data);
    free (self->cert_file);
    free (self->cert_data);
    free (self->key_file);
    if (self->key_data)
        memset (self->key_data, 0, self->key_size);
    free (self->key_data);
    free (self);
    *self_p = NULL;
}

//  A scalar node's text when it is a plain string without NUL bytes
static const char *
s_scalar (yaml_node_t *node)
{
    if (!node || node->type != YAML_SCALAR_NODE || !node->data.scalar.value)
        return NULL;
    if (strlen ((const char *) node->data.scalar.value) != node->data.scalar.length)
        return NULL;
    return (const char *) node->data.scalar.value;
}

//  The value of key in a mapping node, the first if repeated, or NULL
static yaml_node_t *
s_map_get (yaml_document_t *doc, yaml_node_t *map, const char *key)
{
    if (!map || map->type != YAML_MAPPING_NODE)
        return NULL;
    for (yaml_node_pair_t *pair = map->data.mapping.pairs.start;
         pair < map->data.mapping.pairs.top; pair++) {
        const char *text = s_scalar (yaml_document_get_node (doc, pair->key));
        if (text && streq (text, key))
            return yaml_document_get_node (doc, pair->value);
    }
    return NULL;
}

static const char *
s_map_string (yaml_document_t *doc, yaml_node_t *map, const char *key)
{
    return s_scalar (s_map_get (doc, map, key));
}

//  In a sequence of {name: ..., <field>: {...}}, the <field> of the item
//  named name
static yaml_node_t *
s_named (yaml_document_t *doc, yaml_node_t *root, const char *list, const char *field,
         const char *name)
{
    yaml_node_t *seq = s_map_get (doc, root, list);
    if (!seq || seq->type != YAML_SEQUENCE_NODE)
        return NULL;
    for (yaml_node_item_t *item = seq->data.sequence.items.start;
         item < seq->data.sequence.items.top; item++) {
        yaml_node_t *entry = yaml_document_get_node (doc, *item);
        const char *entry_name = s_map_string (doc, entry, "name");
        if (entry_name && streq (entry_name, name)) {
            yaml_node_t *value = s_map_get (doc, entry, field);
            return value && value->type == YAML_MAPPING_NODE? value: NULL;
        }
    }
    return NULL;
}

static bool
s_yaml_true (const char *text)
{
    return text && (streq (text, "true") || streq (text, "True") || streq (text, "TRUE")
                 || streq (text, "yes") || streq (text, "on"));
}

//  A path from the kubeconfig, made absolute against base_dir
static char *
s_config_path (const char *path, const char *base_dir)
{
    if (path [0] == '/' || !base_dir || !*base_dir)
        return strdup (path);
    char *full = NULL;
    if (asprintf (&full, "%s/%s", base_dir, path) < 0)
        return NULL;
    return full;
}

//  Takes a path field or a base64 *-data field; both absent is fine.
static int
s_take_pem (yaml_document_t *doc, yaml_node_t *map, const char *path_key, const char *data_key,
            const char *base_dir, char **file_p, char **data_p, size_t *size_p,
            char *error, size_t error_size)
{
    const char *data = s_map_string (doc, map, data_key);
    const char *path = s_map_string (doc, map, path_key);
    if (data && *data) {
        *data_p = qn_kube_base64_decode (data, size_p);
        if (!*data_p || *size_p == 0) {
            free (*data_p);
            *data_p = NULL;
            snprintf (error, error_size, "kubeconfig: %s is not valid base64", data_key);
            return -1;
        }
    }
    else
    if (path && *path) {
        *file_p = s_config_path (path, base_dir);
        if (!*file_p) {
            snprintf (error, error_size, "out of memory");
            return -1;
        }
    }
    return 0;
}

static int
s_check_server (const char *server, char *error, size_t error_size)
{
    if (!server || !*server) {
        snprintf (error, error_size, "no API server address");
        return -1;
    }
    if ((strncmp (server, "https://", 8) != 0 && strncmp (server, "http://", 7) != 0)
    ||  !qn_kube_printable (server) || strlen (server) > 2000) {
        snprintf (error, error_size, "invalid API server address (want https://host:port)");
        return -1;
    }
    return 0;
}

static int
s_read_token_file (const char *path, char **token_p, char *error, size_t error_size)
{
    char *text = qn_file_read_small (path, S_TOKEN_MAX, NULL, NULL, error, error_size);
    if (!text)
        return -1;
    char *token = qn_kube_trim (text);
    if (!*token || !qn_kube_printable (token)) {
        snprintf (error, error_size, "%s does not hold a token", path);
        free (text);
        return -1;
    }
    char *copy = strdup (token);
    memset (text, 0, strlen (text));
    free (text);
    if (!copy) {
        snprintf (error, error_size, "out of memory");
        return -1;
    }
    free (*token_p);
    *token_p = copy;
    return 0;
}

qn_kube_config_t *
qn_kube_config_parse (const char *text, size_t size, const char *context_name,
                      const char *base_dir, char *error, size_t error_size)
{
    if (!text || size > QN_KUBE_CONFIG_MAX) {
        snprintf (error, error_size, "kubeconfig: missing or larger than %d bytes",
                  QN_KUBE_CONFIG_MAX);
        return NULL;
    }
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize (&parser)) {
        snprintf (error, error_size, "out of memory");
        return NULL;
    }
    yaml_parser_set_input_string (&parser, (const unsigned char *) text, size);
    if (!yaml_parser_load (&parser, &doc)) {
        snprintf (error, error_size, "kubeconfig: YAML error at line %zu: %s",
                  parser.problem_mark.line + 1, parser.problem? parser.problem: "unknown");
        yaml_parser_delete (&parser);
        return NULL;
    }
    yaml_parser_delete (&parser);

    qn_kube_config_t *self = (qn_kube_config_t *) calloc (1, sizeof (qn_kube_config_t));
    yaml_node_t *root = yaml_document_get_root_node (&doc);
    int rc = -1;
    if (!self) {
        snprintf (error, error_size, "out of memory");
        goto done;
    }
    if (!root || root->type != YAML_MAPPING_NODE) {
        snprintf (error, error_size, "kubeconfig: not a mapping");
        goto done;
    }
    if (!context_name || !*context_name)
        context_name = s_map_string (&doc, root, "current-context");
    if (!context_name || !*context_name) {
        snprintf (error, error_size, "kubeconfig: no context given and no current-context");
        goto done;
    }
    yaml_node_t *context = s_named (&doc, root, "contexts", "context", context_name);
    if (!context) {
        snprintf (error, error_size, "kubeconfig: no context named '%.100s'", context_name);
        goto done;
    }
    const char *cluster_name = s_map_string (&doc, context, "cluster");
    const char *user_name = s_map_string (&doc, context, "user");
    const char *namespace_name = s_map_string (&doc, context, "namespace");
    yaml_node_t *cluster = cluster_name? s_named (&doc, root, "clusters", "cluster", cluster_name)
                                       : NULL;
    if (!cluster) {
        snprintf (error, error_size, "kubeconfig: context '%.100s' has no valid cluster",
                  context_name);
        goto done;
    }
    const char *server = s_map_string (&doc, cluster, "server");
    if (s_check_server (server, error, error_size) == -1)
        goto done;
    self->server = strdup (server);
    if (self->server) {
        size_t len = strlen (self->server);
        while (len > 0 && self->server [len - 1] == '/')
            self->server [--len] = '\0';
    }
    if (namespace_name && *namespace_name)
        self->namespace_name = strdup (namespace_name);
    self->insecure = s_yaml_true (s_map_string (&doc, cluster, "insecure-skip-tls-verify"));
    if (s_take_pem (&doc, cluster, "certificate-authority", "certificate-authority-data",
                    base_dir, &self->ca_file, &self->ca_data, &self->ca_size,
                    error, error_size) == -1)
        goto done;

    //  A context may have no user (anonymous access)
    yaml_node_t *user = user_name && *user_name? s_named (&doc, root, "users", "user", user_name)
                                               : NULL;
    if (user_name && *user_name && !user) {
        snprintf (error, error_size, "kubeconfig: no user named '%.100s'", user_name);
        goto done;
    }
    if (user) {
        const char *token = s_map_string (&doc, user, "token");
        const char *token_file = s_map_string (&doc, user, "tokenFile");
        if (!token_file)
            token_file = s_map_string (&doc, user, "token-file");
        if (token && *token) {
            if (!qn_kube_printable (token)) {
                snprintf (error, error_size, "kubeconfig: the user's token is not printable");
                goto done;
            }
            self->token = strdup (token);
        }
        else
        if (token_file && *token_file) {
            self->token_file = s_config_path (token_file, base_dir);
            if (!self->token_file
            ||  s_read_token_file (self->token_file, &self->token, error, error_size) == -1)
                goto done;
        }
        if (s_take_pem (&doc, user, "client-certificate", "client-certificate-data", base_dir,
                        &self->cert_file, &self->cert_data, &self->cert_size,
                        error, error_size) == -1
        ||  s_take_pem (&doc, user, "client-key", "client-key-data", base_dir,
                        &self->key_file, &self->key_data, &self->key_size,
                        error, error_size) == -1)
            goto done;
        bool has_cert = self->cert_file || self->cert_data;
        bool has_key = self->key_file || self->key_data;
        if (has_cert != has_key) {
            snprintf (error, error_size, "kubeconfig: a client certificate needs its key");
            goto done;
        }
        if (!self->token && !has_cert
        &&  (s_map_get (&doc, user, "exec") || s_map_get (&doc, user, "auth-provider"))) {
            snprintf (error, error_size, "kubeconfig: user '%.100s' uses an exec or "
                      "auth-provider plugin, which qanat does not run; give a token",
                      user_name);
            goto done;
        }
    }
    if (!self->server) {
        snprintf (error, error_size, "out of memory");
        goto done;
    }
    rc = 0;

done:
    yaml_document_delete (&doc);
    if (rc == -1)
        qn_kube_config_destroy (&self);
    return self;
}

qn_kube_config_t *
qn_kube_config_load (const char *path, const char *context, char *error, size_t error_size)
{
    size_t size = 0;
    char *text = qn_file_read_small (path, QN_KUBE_CONFIG_MAX, &size, NULL, error, error_size);
    if (!text)
        return NULL;
    char *dir = strdup (path);
    char *slash = dir? strrchr (dir, '/'): NULL;
    if (slash)
        *slash = '\0';
    qn_kube_config_t *self = qn_kube_config_parse (text, size, context,
                                                   slash? dir: ".", error, error_size);
    free (dir);
    free (text);
    return self;
}

qn_kube_config_t *
qn_kube_config_in_cluster (const char *secrets_dir, char *error, size_t error_size)
{
    if (!secrets_dir)
        secrets_dir = S_SECRETS_DIR;
    const char *host = getenv ("KUBERNETES_SERVICE_HOST");
    const char *port = getenv ("KUBERNETES_SERVICE_PORT");
    if (!host || !*host || !port || !*port) {
        snprintf (error, error_size, "not in a cluster: KUBERNETES_SERVICE_HOST/PORT unset");
        return NULL;
    }
    for (const char *c = port; *c; c++)
        if (!isdigit ((unsigned char) *c)) {
            snprintf (error, error_size, "invalid KUBERNETES_SERVICE_PORT");
            return NULL;
        }
    qn_kube_config_t *self = (qn_kube_config_t *) calloc (1, sizeof (qn_kube_config_t));
    if (!self) {
        snprintf (error, error_size, "out of memory");
        return NULL;
    }
    bool ipv6 = strchr (host, ':') != NULL;
    if (asprintf (&self->server, ipv6? "https://[%s]:%s": "https://%s:%s", host, port) < 0)
        self->server = NULL;
    if (asprintf (&self->token_file, "%s/token", secrets_dir) < 0)
        self->token_file = NULL;
    if (asprintf (&self->ca_file, "%s/ca.crt", secrets_dir) < 0)
        self->ca_file = NULL;
    if (!self->server || !self->token_file || !self->ca_file) {
        snprintf (error, error_size, "out of memory");
        qn_kube_config_destroy (&self);
        return NULL;
    }
    if (s_check_server (self->server, error, error_size) == -1
    ||  s_read_token_file (self->token_file, &self->token, error, error_size) == -1) {
        qn_kube_config_destroy (&self);
        return NULL;
    }
    char *path = NULL;
    if (asprintf (&path, "%s/namespace", secrets_dir) >= 0) {
        char ignored [256];
        char *text = qn_file_read_small (path, 256, NULL, NULL, ignored, sizeof (ignored));
        if (text && *qn_kube_trim (text))
            self->namespace_name = strdup (qn_kube_trim (text));
        free (text);
        free (path);
    }
    return self;
}

qn_kube_config_t *
qn_kube_config_resolve (const char *path, const char *context, char *error, size_t error_size)
{
    if (path && *path)
        return qn_kube_config_load (path, context, error, error_size);
    const char *env = getenv ("KUBECONFIG");
    if (env && *env) {
        char *first = strdup (env);
        if (!first) {
            snprintf (error, error_size, "out of memory");
            return NULL;
        }
        char *colon = strchr (first, ':');
        if (colon)
            *colon = '\0';
        qn_kube_config_t *self = qn_kube_config_load (first, context, error, error_size);
        free (first);
        return self;
    }
    const char *host = getenv ("KUBERNETES_SERVICE_HOST");
    if (host && *host)
        return qn_kube_config_in_cluster (NULL, error, error_size);
    const char *home = getenv ("HOME");
    if (!home || !*home) {
        snprintf (error, error_size, "no kubeconfig: set kubernetes.kubeconfig or $KUBECONFIG");
        return NULL;
    }
    char *home_config = NULL;
    if (asprintf (&home_config, "%s/.kube/config", home) < 0) {
        snprintf (error, error_size, "out of memory");
        return NULL;
    }
    qn_kube_config_t *self = qn_kube_config_load (home_config, context, error, error_size);
    free (home_config);
    return self;
}


//  ---------------------------------------------------------------------
//  The client

typedef struct {
    qn_kube_api_t *api;
    void *handle;               //  in api->calls
    uint64_t id;
    CURL *easy;
    struct curl_slist *headers;
    char *request_body;
    char *buffer;               //  the answer (JSON calls, error answers of streams)
    size_t size;
    size_t max;
    bool overflow;
    bool streaming;
    bool canceled;              //  from inside libcurl: forgotten when it completes
    bool paused;                //  as applied to curl
    bool want_paused;           //  as asked
    qn_kube_data_fn *data;
    qn_kube_done_fn *done;
    void *arg;
    char errbuf [CURL_ERROR_SIZE];
} s_call_t;

struct _qn_kube_api_t {
    zloop_t *loop;
    qn_kube_config_t *config;
    CURLM *multi;
    zlistx_t *calls;            //  s_call_t in flight
    uint64_t next_id;
    int timer_id;
    int in_curl;                //  > 0 while inside libcurl: defer pauses
    bool pause_dirty;
    int64_t token_read_ms;
};

static void
s_call_destroy (s_call_t **self_p)
{
    s_call_t *self = *self_p;
    if (!self)
        return;
    if (self->easy)
        curl_easy_cleanup (self->easy);
    curl_slist_free_all (self->headers);
    free (self->request_body);
    free (self->buffer);
    free (self);
    *self_p = NULL;
}

static s_call_t *
s_call_find (qn_kube_api_t *self, uint64_t id)
{
    s_call_t *call = (s_call_t *) zlistx_first (self->calls);
    while (call && (call->id != id || call->canceled))
        call = (s_call_t *) zlistx_next (self->calls);
    return call;
}

//  Bounded buffering of an answer
static size_t
s_buffer_append (s_call_t *call, const char *data, size_t size)
{
    if (call->overflow || call->size + size > call->max) {
        call->overflow = true;
        return size;
    }
    char *grown = (char *) realloc (call->buffer, call->size + size + 1);
    if (!grown)
        return 0;
    call->buffer = grown;
    memcpy (call->buffer + call->size, data, size);
    call->size += size;
    call->buffer [call->size] = '\0';
    return size;
}

static size_t
s_write (char *data, size_t one, size_t count, void *arg)
{
    s_call_t *call = (s_call_t *) arg;
    size_t size = one * count;
    if (call->canceled)
        return 0;               //  aborts the transfer
    if (call->streaming) {
        long status = 0;
        curl_easy_getinfo (call->easy, CURLINFO_RESPONSE_CODE, &status);
        if (status >= 200 && status < 300) {
            if (call->data && call->data (call->arg, call->id, data, size) == -1)
                return 0;
            return size;
        }
    }
    return s_buffer_append (call, data, size);
}

//  The bearer token, re-read from its file now and then: service account
//  tokens are rotated under our feet.
static const char *
s_token (qn_kube_api_t *self)
{
    qn_kube_config_t *config = self->config;
    if (config->token_file && zclock_mono () - self->token_read_ms > S_TOKEN_REREAD_MS) {
        char error [256];
        if (s_read_token_file (config->token_file, &config->token, error, sizeof (error)) == -1)
            qn_log (QN_LOG_WARNING, "kube", "kubernetes: %s (keeping the token we had)", error);
        self->token_read_ms = zclock_mono ();
    }
    return config->token;
}

//  An easy handle for one request, ready to run.  -1 when out of memory.
static int
s_call_setup (qn_kube_api_t *self, s_call_t *call, const char *method, const char *path,
              json_t *body, long timeout_ms)
{
    qn_kube_config_t *config = self->config;
    char *url = NULL;
    if (asprintf (&url, "%s%s", config->server, path) < 0)
        return -1;
    call->easy = curl_easy_init ();
    if (!call->easy) {
        free (url);
        return -1;
    }
    CURL *easy = call->easy;
    curl_easy_setopt (easy, CURLOPT_URL, url);
    free (url);                 //  curl keeps its own copy
    curl_easy_setopt (easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt (easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt (easy, CURLOPT_PRIVATE, call);
    curl_easy_setopt (easy, CURLOPT_ERRORBUFFER, call->errbuf);
    curl_easy_setopt (easy, CURLOPT_WRITEFUNCTION, s_write);
    curl_easy_setopt (easy, CURLOPT_WRITEDATA, call);
    curl_easy_setopt (easy, CURLOPT_CONNECTTIMEOUT_MS, (long) S_CONNECT_TIMEOUT_MS);
    curl_easy_setopt (easy, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt (easy, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt (easy, CURLOPT_USERAGENT, "qanat-agent");
    if (config->insecure) {
        curl_easy_setopt (easy, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt (easy, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (config->ca_data) {
        struct curl_blob blob = { config->ca_data, config->ca_size, CURL_BLOB_COPY };
        curl_easy_setopt (easy, CURLOPT_CAINFO_BLOB, &blob);
    }
    else
    if (config->ca_file)
        curl_easy_setopt (easy, CURLOPT_CAINFO, config->ca_file);
    if (config->cert_data) {
        struct curl_blob blob = { config->cert_data, config->cert_size, CURL_BLOB_COPY };
        curl_easy_setopt (easy, CURLOPT_SSLCERT_BLOB, &blob);
        curl_easy_setopt (easy, CURLOPT_SSLCERTTYPE, "PEM");
    }
    else
    if (config->cert_file)
        curl_easy_setopt (easy, CURLOPT_SSLCERT, config->cert_file);
    if (config->key_data) {
        struct curl_blob blob = { config->key_data, config->key_size, CURL_BLOB_COPY };
        curl_easy_setopt (easy, CURLOPT_SSLKEY_BLOB, &blob);
        curl_easy_setopt (easy, CURLOPT_SSLKEYTYPE, "PEM");
    }
    else
    if (config->key_file)
        curl_easy_setopt (easy, CURLOPT_SSLKEY, config->key_file);

    struct curl_slist *headers = curl_slist_append (NULL, "Accept: application/json");
    const char *token = s_token (self);
    if (headers && token) {
        char *header = NULL;
        if (asprintf (&header, "Authorization: Bearer %s", token) < 0)
            header = NULL;
        struct curl_slist *more = header? curl_slist_append (headers, header): NULL;
        if (header) {
            memset (header, 0, strlen (header));
            free (header);
        }
        if (!more) {
            curl_slist_free_all (headers);
            headers = NULL;
        }
    }
    if (!headers)
        return -1;
    call->headers = headers;
    if (body) {
        call->request_body = json_dumps (body, JSON_COMPACT);
        struct curl_slist *more = call->request_body?
            curl_slist_append (call->headers, "Content-Type: application/json"): NULL;
        if (!more)
            return -1;
        curl_easy_setopt (easy, CURLOPT_POSTFIELDS, call->request_body);
        curl_easy_setopt (easy, CURLOPT_POSTFIELDSIZE, (long) strlen (call->request_body));
    }
    curl_easy_setopt (easy, CURLOPT_HTTPHEADER, call->headers);
    if (streq (method, "GET"))
        curl_easy_setopt (easy, CURLOPT_HTTPGET, 1L);
    else
    if (!streq (method, "POST") || !body)
        curl_easy_setopt (easy, CURLOPT_CUSTOMREQUEST, method);
    return 0;
}

//  Runs the completion of one transfer and forgets it.
static void
s_call_complete (qn_kube_api_t *self, s_call_t *call, CURLcode result)
{
    (void) self;
    long status = 0;
    char error [CURL_ERROR_SIZE + 64] = "";
    json_t *body = NULL;
    if (result == CURLE_OK) {
        curl_easy_getinfo (call->easy, CURLINFO_RESPONSE_CODE, &status);
        if (call->overflow)
            snprintf (error, sizeof (error), "answer larger than %zu bytes", call->max);
        else
        if (call->buffer && call->size > 0)
            body = json_loadb (call->buffer, call->size, 0, NULL);
    }
    else
        snprintf (error, sizeof (error), "%s%s%s", curl_easy_strerror (result),
                  *call->errbuf? ": ": "", call->errbuf);
    if (call->done)
        call->done (call->arg, call->id, status, body, error);
    json_decref (body);
    s_call_destroy (&call);
}

static void
s_apply_pauses (qn_kube_api_t *self)
{
    while (self->pause_dirty) {
        self->pause_dirty = false;
        s_call_t *call = (s_call_t *) zlistx_first (self->calls);
        while (call) {
            if (call->paused != call->want_paused && !call->canceled) {
                call->paused = call->want_paused;
                self->in_curl++;
                curl_easy_pause (call->easy, call->paused? CURLPAUSE_RECV: CURLPAUSE_CONT);
                self->in_curl--;
                //  Unpausing may have delivered data, whose callback may
                //  have changed the list: start over
                self->pause_dirty = true;
                break;
            }
            call = (s_call_t *) zlistx_next (self->calls);
        }
    }
}

static void
s_collect (qn_kube_api_t *self)
{
    CURLMsg *message;
    int left;
    while ((message = curl_multi_info_read (self->multi, &left))) {
        if (message->msg != CURLMSG_DONE)
            continue;
        CURL *easy = message->easy_handle;
        CURLcode result = message->data.result;
        s_call_t *call = NULL;
        curl_easy_getinfo (easy, CURLINFO_PRIVATE, (char **) &call);
        curl_multi_remove_handle (self->multi, easy);
        if (!call)
            continue;
        zlistx_detach (self->calls, call->handle);
        s_call_complete (self, call, result);
    }
    //  Calls canceled while libcurl was on the stack go now
    s_call_t *call = (s_call_t *) zlistx_first (self->calls);
    while (call) {
        s_call_t *next = (s_call_t *) zlistx_next (self->calls);
        if (call->canceled) {
            zlistx_detach (self->calls, call->handle);
            curl_multi_remove_handle (self->multi, call->easy);
            s_call_destroy (&call);
        }
        call = next;
    }
    s_apply_pauses (self);
}

static void
s_action (qn_kube_api_t *self, curl_socket_t fd, int flags)
{
    int running = 0;
    self->in_curl++;
    curl_multi_socket_action (self->multi, fd, flags, &running);
    self->in_curl--;
    s_collect (self);
}

static int
s_socket_ready (zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    (void) loop;
    qn_kube_api_t *self = (qn_kube_api_t *) arg;
    int flags = 0;
    if (item->revents & ZMQ_POLLIN)
        flags |= CURL_CSELECT_IN;
    if (item->revents & ZMQ_POLLOUT)
        flags |= CURL_CSELECT_OUT;
    if (item->revents & ZMQ_POLLERR)
        flags |= CURL_CSELECT_ERR;
    s_action (self, item->fd, flags);
    return 0;
}

static int
s_timer_fired (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    qn_kube_api_t *self = (qn_kube_api_t *) arg;
    if (timer_id == self->timer_id)
        self->timer_id = -1;    //  one-shot: the loop ends it
    s_action (self, CURL_SOCKET_TIMEOUT, 0);
    return 0;
}

static int
s_socket_cb (CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void) easy;
    (void) socketp;
    qn_kube_api_t *self = (qn_kube_api_t *) userp;
    zmq_pollitem_t item = { NULL, fd, 0, 0 };
    zloop_poller_end (self->loop, &item);
    if (what == CURL_POLL_REMOVE)
        return 0;
    if (what & CURL_POLL_IN)
        item.events |= ZMQ_POLLIN;
    if (what & CURL_POLL_OUT)
        item.events |= ZMQ_POLLOUT;
    if (zloop_poller (self->loop, &item, s_socket_ready, self) == -1)
        return -1;
    zloop_poller_set_tolerant (self->loop, &item);
    return 0;
}

static int
s_timer_cb (CURLM *multi, long timeout_ms, void *userp)
{
    (void) multi;
    qn_kube_api_t *self = (qn_kube_api_t *) userp;
    if (self->timer_id != -1) {
        zloop_timer_end (self->loop, self->timer_id);
        self->timer_id = -1;
    }
    if (timeout_ms >= 0) {
        self->timer_id = zloop_timer (self->loop, timeout_ms > 0? (size_t) timeout_ms: 1, 1,
                                      s_timer_fired, self);
        if (self->timer_id == -1)
            return -1;
    }
    return 0;
}

qn_kube_api_t *
qn_kube_api_new (zloop_t *loop, qn_kube_config_t **config_p)
{
    assert (loop);
    assert (config_p && *config_p);
    char why [256];
    if (qn_curl_load (why, sizeof why) == -1) {
        qn_log (QN_LOG_ERROR, "kube", "kubernetes backend: %s", why);
        return NULL;
    }
    qn_kube_api_t *self = (qn_kube_api_t *) calloc (1, sizeof (qn_kube_api_t));
    if (!self)
        return NULL;
    self->loop = loop;
    self->timer_id = -1;
    self->next_id = 1;
    self->token_read_ms = zclock_mono ();
    self->multi = curl_multi_init ();
    self->calls = zlistx_new ();
    if (!self->multi || !self->calls) {
        if (self->multi)
            curl_multi_cleanup (self->multi);
        zlistx_destroy (&self->calls);
        free (self);
        return NULL;
    }
    curl_multi_setopt (self->multi, CURLMOPT_SOCKETFUNCTION, s_socket_cb);
    curl_multi_setopt (self->multi, CURLMOPT_SOCKETDATA, self);
    curl_multi_setopt (self->multi, CURLMOPT_TIMERFUNCTION, s_timer_cb);
    curl_multi_setopt (self->multi, CURLMOPT_TIMERDATA, self);
    self->config = *config_p;
    *config_p = NULL;
    return self;
}

void
qn_kube_api_destroy (qn_kube_api_t **self_p)
{
    assert (self_p);
    qn_kube_api_t *self = *self_p;
    if (!self)
        return;
    s_call_t *call;
    while ((call = (s_call_t *) zlistx_detach (self->calls, NULL))) {
        curl_multi_remove_handle (self->multi, call->easy);
        s_call_destroy (&call);
    }
    zlistx_destroy (&self->calls);
    curl_multi_cleanup (self->multi);
    if (self->timer_id != -1)
        zloop_timer_end (self->loop, self->timer_id);
    qn_kube_config_destroy (&self->config);
    free (self);
    *self_p = NULL;
}

const qn_kube_config_t *
qn_kube_api_config (qn_kube_api_t *self)
{
    return self->config;
}

static uint64_t
s_start (qn_kube_api_t *self, const char *method, const char *path, json_t *body,
         bool streaming, qn_kube_data_fn *data, qn_kube_done_fn *done, void *arg)
{
    assert (self);
    assert (method && path);
    s_call_t *call = (s_call_t *) calloc (1, sizeof (s_call_t));
    if (!call)
        return 0;
    call->api = self;
    call->id = self->next_id++;
    call->streaming = streaming;
    call->max = streaming? S_ERROR_BODY_MAX: QN_KUBE_RESPONSE_MAX;
    call->data = data;
    call->done = done;
    call->arg = arg;
    if (s_call_setup (self, call, method, path, body,
                      streaming? 0L: (long) S_REQUEST_TIMEOUT_MS) == -1) {
        s_call_destroy (&call);
        return 0;
    }
    call->handle = zlistx_add_end (self->calls, call);
    if (!call->handle) {
        s_call_destroy (&call);
        return 0;
    }
    if (curl_multi_add_handle (self->multi, call->easy) != CURLM_OK) {
        zlistx_detach (self->calls, call->handle);
        s_call_destroy (&call);
        return 0;
    }
    return call->id;
}

uint64_t
qn_kube_api_request (qn_kube_api_t *self, const char *method, const char *path,
                     json_t *body, qn_kube_done_fn *done, void *arg)
{
    return s_start (self, method, path, body, false, NULL, done, arg);
}

uint64_t
qn_kube_api_stream (qn_kube_api_t *self, const char *path, qn_kube_data_fn *data,
                    qn_kube_done_fn *done, void *arg)
{
    return s_start (self, "GET", path, NULL, true, data, done, arg);
}

void
qn_kube_api_cancel (qn_kube_api_t *self, uint64_t id)
{
    assert (self);
    s_call_t *call = id? s_call_find (self, id): NULL;
    if (!call)
        return;
    if (self->in_curl) {
        //  libcurl is on the stack: the transfer cannot be removed now;
        //  it ends at its next write and is then dropped without a word
        call->canceled = true;
        call->data = NULL;
        call->done = NULL;
        return;
    }
    zlistx_detach (self->calls, call->handle);
    curl_multi_remove_handle (self->multi, call->easy);
    s_call_destroy (&call);
}

void
qn_kube_api_pause (qn_kube_api_t *self, uint64_t id, bool paused)
{
    assert (self);
    s_call_t *call = id? s_call_find (self, id): NULL;
    if (!call || !call->streaming)
        return;
    call->want_paused = paused;
    self->pause_dirty = true;
    if (self->in_curl == 0)
        s_apply_pauses (self);
}

size_t
qn_kube_api_active (qn_kube_api_t *self)
{
    return zlistx_size (self->calls);
}

long
qn_kube_api_request_sync (qn_kube_api_t *self, const char *method, const char *path,
                          json_t *body, int timeout_ms, char *error, size_t error_size)
{
    assert (self);
    s_call_t *call = (s_call_t *) calloc (1, sizeof (s_call_t));
    if (!call) {
        snprintf (error, error_size, "out of memory");
        return 0;
    }
    call->max = S_ERROR_BODY_MAX;
    long status = 0;
    if (s_call_setup (self, call, method, path, body, timeout_ms > 0? timeout_ms: 1) == -1)
        snprintf (error, error_size, "out of memory");
    else {
        CURLcode result = curl_easy_perform (call->easy);
        if (result == CURLE_OK)
            curl_easy_getinfo (call->easy, CURLINFO_RESPONSE_CODE, &status);
        else
            snprintf (error, error_size, "%s%s%s", curl_easy_strerror (result),
                      *call->errbuf? ": ": "", call->errbuf);
    }
    s_call_destroy (&call);
    return status;
}
