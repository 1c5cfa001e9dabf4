/*  qn_kube_api - a Kubernetes API client for the agent's zloop.  See
    qn_kube_api.h.

    libcurl's multi interface is driven by the loop: CURLMOPT_SOCKETFUNCTION
    turns each socket curl wants watched into a zloop poller (replaced when
    the wanted events change, ended on CURL_POLL_REMOVE), and
    CURLMOPT_TIMERFUNCTION keeps one one-shot zloop timer (qn_rest, which
    this client wraps with the cluster's TLS settings and bearer token).
*/
#include "qn_kube_api.h"
#include "qn_log.h"
#include "qn_rest.h"
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
    return qn_rest_escape (text);
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
//  The client: qn_rest, with the cluster's TLS settings and token on
//  every call

struct _qn_kube_api_t {
    qn_kube_config_t *config;
    qn_rest_t *rest;
    int64_t token_read_ms;
};

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

static int
s_setup (void *arg, CURL *easy, struct curl_slist **headers)
{
    qn_kube_api_t *self = (qn_kube_api_t *) arg;
    qn_kube_config_t *config = self->config;
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

    const char *token = s_token (self);
    if (!token)
        return 0;
    char *header = NULL;
    if (asprintf (&header, "Authorization: Bearer %s", token) < 0)
        return -1;
    struct curl_slist *more = curl_slist_append (*headers, header);
    memset (header, 0, strlen (header));
    free (header);
    if (!more)
        return -1;
    *headers = more;
    return 0;
}

qn_kube_api_t *
qn_kube_api_new (zloop_t *loop, qn_kube_config_t **config_p)
{
    assert (loop);
    assert (config_p && *config_p);
    qn_kube_api_t *self = (qn_kube_api_t *) calloc (1, sizeof (qn_kube_api_t));
    if (!self)
        return NULL;
    self->token_read_ms = zclock_mono ();
    self->rest = qn_rest_new (loop, "kubernetes", s_setup, self);
    if (!self->rest) {
        free (self);
        return NULL;
    }
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
    qn_rest_destroy (&self->rest);
    qn_kube_config_destroy (&self->config);
    free (self);
    *self_p = NULL;
}

const qn_kube_config_t *
qn_kube_api_config (qn_kube_api_t *self)
{
    return self->config;
}

//  Starts a call on the API server's path
static uint64_t
s_start (qn_kube_api_t *self, const char *method, const char *path, json_t *body,
         bool streaming, qn_kube_data_fn *data, qn_kube_done_fn *done, void *arg)
{
    assert (self);
    assert (method && path);
    char *url = NULL;
    if (asprintf (&url, "%s%s", self->config->server, path) < 0)
        return 0;
    qn_rest_call_t call = { .method = method, .url = url, .json = body };
    uint64_t id = streaming? qn_rest_stream (self->rest, &call, data, done, arg)
                      : qn_rest_request (self->rest, &call, done, arg);
    free (url);
    return id;
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
    qn_rest_cancel (self->rest, id);
}

void
qn_kube_api_pause (qn_kube_api_t *self, uint64_t id, bool paused)
{
    assert (self);
    qn_rest_pause (self->rest, id, paused);
}

size_t
qn_kube_api_active (qn_kube_api_t *self)
{
    return qn_rest_active (self->rest);
}

long
qn_kube_api_request_sync (qn_kube_api_t *self, const char *method, const char *path,
                          json_t *body, int timeout_ms, char *error, size_t error_size)
{
    assert (self);
    char *url = NULL;
    if (asprintf (&url, "%s%s", self->config->server, path) < 0) {
        snprintf (error, error_size, "out of memory");
        return 0;
    }
    qn_rest_call_t call = { .method = method, .url = url, .json = body,
                            .timeout_ms = timeout_ms > 0? timeout_ms: 1 };
    long status = qn_rest_request_sync (self->rest, &call, error, error_size);
    free (url);
    return status;
}
