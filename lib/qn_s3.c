/*  qn_s3 - an S3-compatible artifact store client.  See qn_s3.h.

    Signing is libcurl's (CURLOPT_AWS_SIGV4).  libcurl 7.88 (Debian 12)
    takes the payload hash from our x-amz-content-sha256 header and the
    canonical query string verbatim from the URL, so this file always
    builds query strings already in canonical form (sorted names, values
    percent-encoded, "name=" for empty values) and always sends the real
    SHA-256 of the payload; that is correct for newer libcurl too.

    Every request is one blocking curl_easy_perform on a handle owned by
    the client (reset before each request, so connections are reused).
    Transfers are bounded by a connect timeout, a stall limit (less than
    1 byte/s for timeout_s seconds) and, for requests without a large
    payload, a total timeout.  Response bodies that are not downloads are
    kept up to S_BODY_MAX bytes and parsed only for a few XML elements.

    Where the keys, region and endpoint come from (the environment and
    the AWS files) is qn_s3_settings'; this file validates the bucket and
    part size and does the requests.
*/
#include "qn_s3.h"
#include "qn_curl.h"
#include "qn_s3_settings.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_TIMEOUT_DEFAULT_S     60
#define S_BODY_MAX              (64 * 1024)         //  kept of non-download bodies
#define S_ETAG_MAX              256
#define S_UPLOAD_ID_MAX         1024
#define S_SMALL_PART_MIN        1024                //  with QANAT_S3_TEST_SMALL_PARTS
#define S_PART_SIZE_MAX         ((size_t) 5 * 1024 * 1024 * 1024)
#define S_EMPTY_SHA256          "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

struct _qn_s3_t {
    qn_s3_settings_t settings;  //  keys, region, endpoint
    char *bucket;
    bool path_style;
    char *sigv4;                //  "aws:amz:<region>:s3"
    size_t part_size;
    long timeout_s;
    CURL *curl;
};


//  ---------------------------------------------------------------------
//  Small helpers

//  Trims blanks at both ends of [*start, *end).
static void
s_trim_range (const char **start, const char **end)
{
    while (*start < *end && (**start == ' ' || **start == '\t' || **start == '\r'))
        (*start)++;
    while (*end > *start && ((*end) [-1] == ' ' || (*end) [-1] == '\t' || (*end) [-1] == '\r'))
        (*end)--;
}

static void
s_sha256_hex (crypto_hash_sha256_state *state, char hex [65])
{
    unsigned char digest [crypto_hash_sha256_BYTES];
    crypto_hash_sha256_final (state, digest);
    sodium_bin2hex (hex, 65, digest, sizeof digest);
}

//  Percent-encodes text as SigV4 wants it: all but A-Z a-z 0-9 - . _ ~
//  (and '/' when keep_slash) as %XX with upper-case hex.
static char *
s_encode (const char *text, bool keep_slash)
{
    static const char hex [] = "0123456789ABCDEF";
    size_t size = strlen (text);
    char *out = (char *) malloc (size * 3 + 1);
    if (!out)
        return NULL;
    char *o = out;
    for (const unsigned char *p = (const unsigned char *) text; *p; p++) {
        if (isalnum (*p) || *p == '-' || *p == '.' || *p == '_' || *p == '~'
        || (keep_slash && *p == '/'))
            *o++ = (char) *p;
        else {
            *o++ = '%';
            *o++ = hex [*p >> 4];
            *o++ = hex [*p & 15];
        }
    }
    *o = '\0';
    return out;
}

//  ---------------------------------------------------------------------
//  Settings validation (the rest is qn_s3_settings')

//  Path style allows S3's legacy names (upper case, '_', up to 255);
//  virtual-host style needs a DNS label sequence.
static bool
s_bucket_valid (const char *bucket, bool path_style)
{
    size_t size = strlen (bucket);
    if (size < 3 || size > (path_style? 255u: 63u))
        return false;
    for (const char *p = bucket; *p; p++) {
        unsigned char c = (unsigned char) *p;
        bool ok = islower (c) || isdigit (c) || c == '-' || c == '.'
               || (path_style && (isupper (c) || c == '_'));
        if (!ok)
            return false;
    }
    return isalnum ((unsigned char) bucket [0]) && isalnum ((unsigned char) bucket [size - 1]);
}

//  ---------------------------------------------------------------------
//  Constructor and destructor

static qn_s3_t *
s_new_fail (qn_s3_t *self, char **error_p, const char *message)
{
    if (error_p)
        *error_p = strdup (message);
    qn_s3_destroy (&self);
    return NULL;
}

//  The part size: S3 refuses parts under 5 MiB (but the last); tests may
//  go lower on servers that do not check.
static int
s_part_size_set (qn_s3_t *self, size_t part_size, char *error, size_t error_size)
{
    if (!part_size)
        part_size = QN_S3_PART_SIZE_DEFAULT;
    const char *small = qn_s3_env ("QANAT_S3_TEST_SMALL_PARTS");
    size_t part_min = small && strcmp (small, "1") == 0? S_SMALL_PART_MIN: QN_S3_PART_SIZE_MIN;
    if (part_size < part_min) {
        snprintf (error, error_size, "s3: part size %zu is below the minimum %zu",
                  part_size, part_min);
        return -1;
    }
    self->part_size = part_size < S_PART_SIZE_MAX? part_size: S_PART_SIZE_MAX;
    return 0;
}

qn_s3_t *
qn_s3_new (const qn_s3_config_t *config, char **error_p)
{
    if (error_p)
        *error_p = NULL;
    if (!config || !config->bucket) {
        if (error_p)
            *error_p = strdup ("s3: no bucket given");
        return NULL;
    }
    char error [512] = "";
    qn_s3_t *self = (qn_s3_t *) calloc (1, sizeof (qn_s3_t));
    if (!self || sodium_init () < 0)
        return s_new_fail (self, error_p, "s3: out of memory");
    char why [256];
    if (qn_curl_load (why, sizeof why) == -1) {
        snprintf (error, sizeof error, "s3: %s", why);
        return s_new_fail (self, error_p, error);
    }
    //  (libcurl's global state was set up once, by qn_curl_load)
    if (!(self->curl = curl_easy_init ()))
        return s_new_fail (self, error_p, "s3: cannot initialise libcurl");
    self->path_style = config->path_style;
    self->timeout_s = config->timeout_s > 0? config->timeout_s: S_TIMEOUT_DEFAULT_S;
    if (!s_bucket_valid (config->bucket, config->path_style)) {
        snprintf (error, sizeof error, "s3: invalid bucket name '%.80s'%s", config->bucket,
                  config->path_style? "": " (virtual-host style needs a DNS-compatible name)");
        return s_new_fail (self, error_p, error);
    }
    self->bucket = strdup (config->bucket);
    if (s_part_size_set (self, config->part_size, error, sizeof error) != 0
    ||  qn_s3_settings_resolve (&self->settings, config->access_key, config->secret_key,
                                config->session_token, config->region, config->endpoint,
                                error, sizeof error) != 0)
        return s_new_fail (self, error_p, error);
    self->sigv4 = qn_s3_printf ("aws:amz:%s:s3", self->settings.region);
    if (!self->bucket || !self->sigv4)
        return s_new_fail (self, error_p, "s3: out of memory");
    return self;
}

void
qn_s3_destroy (qn_s3_t **self_p)
{
    assert (self_p);
    qn_s3_t *self = *self_p;
    if (!self)
        return;
    if (self->curl)
        curl_easy_cleanup (self->curl);
    qn_s3_settings_clear (&self->settings);
    free (self->bucket);
    free (self->sigv4);
    free (self);
    *self_p = NULL;
}


//  ---------------------------------------------------------------------
//  Introspection and helpers

const char *
qn_s3_region (qn_s3_t *self)
{
    assert (self);
    return self->settings.region;
}

const char *
qn_s3_endpoint (qn_s3_t *self)
{
    assert (self);
    return self->settings.endpoint;
}

const char *
qn_s3_access_key (qn_s3_t *self)
{
    assert (self);
    return self->settings.access_key;
}

size_t
qn_s3_part_size (qn_s3_t *self)
{
    assert (self);
    return self->part_size;
}

const char *
qn_s3_credentials_source (qn_s3_t *self)
{
    assert (self);
    return self->settings.credentials_source;
}

bool
qn_s3_credentials_are (qn_s3_t *self, const char *secret_key, const char *session_token)
{
    assert (self);
    if (!secret_key || strcmp (secret_key, self->settings.secret_key) != 0)
        return false;
    if (!session_token || !self->settings.session_token)
        return !session_token && !self->settings.session_token;
    return strcmp (session_token, self->settings.session_token) == 0;
}

int
qn_s3_key_check (const char *key, char *error, size_t error_size)
{
    if (!key || !*key) {
        snprintf (error, error_size, "s3: empty object key");
        return -1;
    }
    size_t size = strnlen (key, QN_S3_KEY_MAX + 1);
    if (size > QN_S3_KEY_MAX) {
        snprintf (error, error_size, "s3: object key longer than %d bytes", QN_S3_KEY_MAX);
        return -1;
    }
    if (qn_s3_has_control (key)) {
        snprintf (error, error_size, "s3: object key has control characters");
        return -1;
    }
    return 0;
}

char *
qn_s3_url (qn_s3_t *self, const char *key, const char *query)
{
    assert (self);
    char error [128];
    if (key && qn_s3_key_check (key, error, sizeof error) != 0)
        return NULL;
    char *encoded = key? s_encode (key, true): strdup ("");
    if (!encoded)
        return NULL;
    const char *q = query && *query? "?": "";
    const char *qv = query && *query? query: "";
    char *url;
    if (self->path_style)
        url = qn_s3_printf ("%s/%s%s%s%s%s", self->settings.endpoint, self->bucket,
                        key? "/": "", encoded, q, qv);
    else {
        //  scheme://bucket.host[:port][/prefix]/key
        const char *host = strstr (self->settings.endpoint, "://") + 3;
        url = qn_s3_printf ("%.*s%s.%s/%s%s%s", (int) (host - self->settings.endpoint), self->settings.endpoint,
                        self->bucket, host, encoded, q, qv);
    }
    free (encoded);
    return url;
}

//  Appends text [start, end) to value with XML entities decoded; returns
//  false when value is full.
static bool
s_xml_decode (const char *start, const char *end, char *value, size_t value_size)
{
    size_t used = 0;
    const char *p = start;
    while (p < end) {
        char c = *p;
        size_t advance = 1;
        if (c == '&') {
            static const struct { const char *name; char c; } entities [] = {
                { "&amp;", '&' }, { "&lt;", '<' }, { "&gt;", '>' },
                { "&quot;", '"' }, { "&apos;", '\'' }
            };
            bool decoded = false;
            for (size_t i = 0; i < sizeof entities / sizeof entities [0] && !decoded; i++) {
                size_t len = strlen (entities [i].name);
                if ((size_t) (end - p) >= len && memcmp (p, entities [i].name, len) == 0) {
                    c = entities [i].c;
                    advance = len;
                    decoded = true;
                }
            }
            //  &#NNN; and &#xHH;: ASCII only, anything else becomes '?'
            if (!decoded && end - p >= 4 && p [1] == '#') {
                const char *q = p + 2;
                bool hex = *q == 'x' || *q == 'X';
                if (hex)
                    q++;
                unsigned long code = 0;
                const char *digits = q;
                while (q < end && q - digits < 8 && isxdigit ((unsigned char) *q)
                && (hex || isdigit ((unsigned char) *q))) {
                    code = code * (hex? 16: 10)
                         + (unsigned long) (isdigit ((unsigned char) *q)? *q - '0'
                                            : tolower ((unsigned char) *q) - 'a' + 10);
                    q++;
                }
                if (q > digits && q < end && *q == ';') {
                    c = code > 0 && code < 0x80? (char) code: '?';
                    advance = (size_t) (q + 1 - p);
                }
            }
        }
        unsigned char u = (unsigned char) c;
        if (u == '\t' || u == '\n' || u == '\r')
            c = ' ';
        else
        if (u < 0x20 || u == 0x7f)
            c = '?';
        if (used + 1 >= value_size) {
            value [used] = '\0';
            return false;
        }
        value [used++] = c;
        p += advance;
    }
    value [used] = '\0';
    return true;
}

//  True when [p, end) starts with name followed by '>', '/' or a blank.
static bool
s_xml_name_at (const char *p, const char *end, const char *name, size_t name_size)
{
    if ((size_t) (end - p) <= name_size || memcmp (p, name, name_size) != 0)
        return false;
    char after = p [name_size];
    return after == '>' || after == '/' || after == ' ' || after == '\t'
        || after == '\r' || after == '\n';
}

int
qn_s3_xml_text (const char *xml, size_t size, const char *tag,
                char *value, size_t value_size)
{
    assert (tag && value && value_size > 0);
    value [0] = '\0';
    size_t tag_size = strlen (tag);
    if (!xml || tag_size == 0 || tag_size > 128)
        return -1;
    const char *end = xml + size;
    const char *p = xml;
    while (p < end) {
        const char *open = (const char *) memchr (p, '<', (size_t) (end - p));
        if (!open)
            return -1;
        p = open + 1;
        if (!s_xml_name_at (p, end, tag, tag_size))
            continue;
        const char *gt = (const char *) memchr (p, '>', (size_t) (end - p));
        if (!gt)
            return -1;
        if (gt [-1] == '/')
            return 0;           //  <Tag/>: empty
        const char *text = gt + 1;
        //  the matching close tag: the first "</Tag" after the text
        const char *q = text;
        while (q < end) {
            const char *lt = (const char *) memchr (q, '<', (size_t) (end - q));
            if (!lt)
                return -1;
            if (end - lt > 1 && lt [1] == '/' && s_xml_name_at (lt + 2, end, tag, tag_size))
                return s_xml_decode (text, lt, value, value_size)? 0: 1;
            q = lt + 1;
        }
        return -1;
    }
    return -1;
}


//  ---------------------------------------------------------------------
//  One HTTP request

typedef struct {
    qn_s3_t *s3;
    const char *method;         //  GET PUT POST DELETE HEAD
    const char *key;            //  for URL and messages; NULL = the bucket
    const char *query;          //  canonical query string or NULL
    const char *content_type;   //  NULL = none sent
    //  payload: a file range, or memory, or nothing
    int in_fd;
    uint64_t in_offset;
    uint64_t in_size;
    uint64_t in_pos;
    const char *in_data;
    //  download sink for 200/206 GET bodies; -1 = keep the body in memory
    int out_fd;
    uint64_t range_from;        //  0 = no Range
    bool out_started;
    int out_errno;
    bool out_bad_range;
    //  results
    long status;
    CURLcode curl_rc;
    char curl_error [CURL_ERROR_SIZE];
    char *body;
    size_t body_size;
    char etag [S_ETAG_MAX];
    char content_range [128];
} s_request_t;

static size_t
s_read_cb (char *buffer, size_t size, size_t count, void *arg)
{
    s_request_t *req = (s_request_t *) arg;
    size_t want = size * count;
    uint64_t left = req->in_size - req->in_pos;
    if (want > left)
        want = (size_t) left;
    if (want == 0)
        return 0;
    if (req->in_data) {
        memcpy (buffer, req->in_data + req->in_pos, want);
        req->in_pos += want;
        return want;
    }
    ssize_t got;
    do
        got = pread (req->in_fd, buffer, want, (off_t) (req->in_offset + req->in_pos));
    while (got < 0 && errno == EINTR);
    if (got <= 0)
        return CURL_READFUNC_ABORT;     //  the file shrank or failed: never send short
    req->in_pos += (uint64_t) got;
    return (size_t) got;
}

//  libcurl rewinds the payload when it must send it again (e.g. after a
//  refused 100-continue on a reused connection).
static int
s_seek_cb (void *arg, curl_off_t offset, int origin)
{
    s_request_t *req = (s_request_t *) arg;
    if (origin != SEEK_SET || offset < 0 || (uint64_t) offset > req->in_size)
        return CURL_SEEKFUNC_CANTSEEK;
    req->in_pos = (uint64_t) offset;
    return CURL_SEEKFUNC_OK;
}

static bool
s_write_all (int fd, const char *data, size_t size, int *errno_p)
{
    while (size > 0) {
        ssize_t done = write (fd, data, size);
        if (done < 0 && errno == EINTR)
            continue;
        if (done <= 0) {
            *errno_p = done < 0? errno: ENOSPC;
            return false;
        }
        data += done;
        size -= (size_t) done;
    }
    return true;
}

static size_t
s_write_cb (char *data, size_t size, size_t count, void *arg)
{
    s_request_t *req = (s_request_t *) arg;
    size_t total = size * count;
    long status = 0;
    curl_easy_getinfo (req->s3->curl, CURLINFO_RESPONSE_CODE, &status);
    if (req->out_fd != -1 && (status == 200 || status == 206)) {
        if (!req->out_started) {
            req->out_started = true;
            if (status == 200 && req->range_from > 0) {
                //  the server ignored the Range: start the file over
                if (ftruncate (req->out_fd, 0) != 0 || lseek (req->out_fd, 0, SEEK_SET) != 0) {
                    req->out_errno = errno;
                    return 0;
                }
            }
            else
            if (status == 206) {
                //  only "bytes <range_from>-..." continues our file
                uint64_t start = UINT64_MAX;
                if (sscanf (req->content_range, "bytes %" SCNu64 "-", &start) != 1
                || start != req->range_from) {
                    req->out_bad_range = true;
                    return 0;
                }
            }
        }
        return s_write_all (req->out_fd, data, total, &req->out_errno)? total: 0;
    }
    //  Anything else is kept, bounded, for the error message or parsing
    size_t room = S_BODY_MAX - req->body_size;
    size_t keep = total < room? total: room;
    if (keep > 0) {
        char *body = (char *) realloc (req->body, req->body_size + keep + 1);
        if (!body)
            return 0;
        memcpy (body + req->body_size, data, keep);
        req->body = body;
        req->body_size += keep;
        req->body [req->body_size] = '\0';
    }
    return total;
}

//  Copies the value of header line [line, line + size) into value when
//  its name is name; blanks trimmed, control characters refused.
static void
s_header_value (const char *line, size_t size, const char *name, char *value, size_t value_size)
{
    size_t name_size = strlen (name);
    if (size <= name_size || strncasecmp (line, name, name_size) != 0 || line [name_size] != ':')
        return;
    const char *start = line + name_size + 1, *end = line + size;
    while (end > start && (end [-1] == '\n' || end [-1] == '\r'))
        end--;
    s_trim_range (&start, &end);
    if ((size_t) (end - start) >= value_size)
        return;
    for (const char *p = start; p < end; p++)
        if ((unsigned char) *p < 0x20 || *p == 0x7f)
            return;
    memcpy (value, start, (size_t) (end - start));
    value [end - start] = '\0';
}

static size_t
s_header_cb (char *line, size_t size, size_t count, void *arg)
{
    s_request_t *req = (s_request_t *) arg;
    size_t total = size * count;
    if (total >= 5 && memcmp (line, "HTTP/", 5) == 0) {
        //  a new response (after 100 Continue, say): forget the last one's
        req->etag [0] = '\0';
        req->content_range [0] = '\0';
    }
    s_header_value (line, total, "etag", req->etag, sizeof req->etag);
    s_header_value (line, total, "content-range", req->content_range, sizeof req->content_range);
    return total;
}

//  Computes the SHA-256 of the request's payload, as hex.
static int
s_payload_hash (s_request_t *req, char hex [65], char *error, size_t error_size)
{
    crypto_hash_sha256_state state;
    crypto_hash_sha256_init (&state);
    if (req->in_data)
        crypto_hash_sha256_update (&state, (const unsigned char *) req->in_data, req->in_size);
    else
    if (req->in_fd != -1) {
        unsigned char *buffer = (unsigned char *) malloc (256 * 1024);
        if (!buffer) {
            snprintf (error, error_size, "s3: out of memory");
            return -1;
        }
        uint64_t done = 0;
        while (done < req->in_size) {
            size_t want = req->in_size - done < 256 * 1024? (size_t) (req->in_size - done)
                                                           : 256 * 1024;
            ssize_t got = pread (req->in_fd, buffer, want, (off_t) (req->in_offset + done));
            if (got < 0 && errno == EINTR)
                continue;
            if (got <= 0) {
                snprintf (error, error_size, "s3: cannot read the file to upload: %s",
                          got < 0? strerror (errno): "it shrank");
                free (buffer);
                return -1;
            }
            crypto_hash_sha256_update (&state, buffer, (size_t) got);
            done += (uint64_t) got;
        }
        free (buffer);
    }
    s_sha256_hex (&state, hex);
    return 0;
}

static const char *
s_status_text (long status)
{
    switch (status) {
        case 400: return "Bad Request";
        case 401: return "Unauthorized";
        case 403: return "Forbidden";
        case 404: return "Not Found";
        case 405: return "Method Not Allowed";
        case 409: return "Conflict";
        case 411: return "Length Required";
        case 412: return "Precondition Failed";
        case 416: return "Range Not Satisfiable";
        case 500: return "Internal Server Error";
        case 501: return "Not Implemented";
        case 502: return "Bad Gateway";
        case 503: return "Service Unavailable";
        case 504: return "Gateway Timeout";
        default:  return "HTTP error";
    }
}

//  Writes "s3: METHOD s3://bucket/key: <what went wrong>" into error.
static void
s_request_error (s_request_t *req, char *error, size_t error_size)
{
    char where [QN_S3_KEY_MAX + 400];
    snprintf (where, sizeof where, "s3: %s s3://%s/%s", req->method, req->s3->bucket,
              req->key? req->key: "");
    if (req->curl_rc != CURLE_OK) {
        if (req->out_bad_range)
            snprintf (error, error_size, "%s: the server answered the Range request with "
                      "Content-Range '%s'", where, req->content_range);
        else
        if (req->out_errno)
            snprintf (error, error_size, "%s: cannot write the download: %s",
                      where, strerror (req->out_errno));
        else
            snprintf (error, error_size, "%s: %s%s%s%s", where, curl_easy_strerror (req->curl_rc),
                      req->curl_error [0]? " (": "", req->curl_error,
                      req->curl_error [0]? ")": "");
        return;
    }
    char code [128], message [512];
    bool has_code = req->body
                 && qn_s3_xml_text (req->body, req->body_size, "Code", code, sizeof code) >= 0
                 && *code;
    bool has_message = req->body
                 && qn_s3_xml_text (req->body, req->body_size, "Message", message,
                                    sizeof message) >= 0 && *message;
    snprintf (error, error_size, "%s: %ld %s%s%s", where, req->status,
              has_code? code: s_status_text (req->status),
              has_message? ": ": "", has_message? message: "");
}

//  Performs the request; returns 0 when it got a 2xx answer without an
//  S3 <Error> body, else -1 with the message in error (and req->status
//  set when the server answered).
static int
s_request_run (s_request_t *req, char *error, size_t error_size)
{
    qn_s3_t *self = req->s3;
    char payload_hash [65] = S_EMPTY_SHA256;
    if ((req->in_fd != -1 || req->in_data)
    &&  s_payload_hash (req, payload_hash, error, error_size) != 0)
        return -1;
    char *url = qn_s3_url (self, req->key, req->query);
    char header_hash [100];
    snprintf (header_hash, sizeof header_hash, "x-amz-content-sha256: %s", payload_hash);
    char *header_token = self->settings.session_token?
        qn_s3_printf ("x-amz-security-token: %s", self->settings.session_token): NULL;
    char *header_type = req->content_type?
        qn_s3_printf ("Content-Type: %s", req->content_type): NULL;
    struct curl_slist *headers = curl_slist_append (NULL, header_hash);
    struct curl_slist *tail = headers;
    if (tail && header_token)
        tail = curl_slist_append (tail, header_token);
    if (tail && header_type)
        tail = curl_slist_append (tail, header_type);
    if (!url || !tail || (self->settings.session_token && !header_token)
    || (req->content_type && !header_type)) {
        snprintf (error, error_size, "s3: out of memory");
        free (url);
        qn_s3_free_secret (&header_token);
        free (header_type);
        curl_slist_free_all (headers);
        return -1;
    }

    CURL *curl = self->curl;
    curl_easy_reset (curl);
    req->curl_error [0] = '\0';
    curl_easy_setopt (curl, CURLOPT_URL, url);
    curl_easy_setopt (curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt (curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt (curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt (curl, CURLOPT_PATH_AS_IS, 1L);    //  keys may hold "../"
    curl_easy_setopt (curl, CURLOPT_ERRORBUFFER, req->curl_error);
    curl_easy_setopt (curl, CURLOPT_CONNECTTIMEOUT, self->timeout_s);
    curl_easy_setopt (curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt (curl, CURLOPT_LOW_SPEED_TIME, self->timeout_s);
    curl_easy_setopt (curl, CURLOPT_USERAGENT, "qanat-s3");
    curl_easy_setopt (curl, CURLOPT_AWS_SIGV4, self->sigv4);
    curl_easy_setopt (curl, CURLOPT_USERNAME, self->settings.access_key);
    curl_easy_setopt (curl, CURLOPT_PASSWORD, self->settings.secret_key);
    curl_easy_setopt (curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt (curl, CURLOPT_WRITEFUNCTION, s_write_cb);
    curl_easy_setopt (curl, CURLOPT_WRITEDATA, req);
    curl_easy_setopt (curl, CURLOPT_HEADERFUNCTION, s_header_cb);
    curl_easy_setopt (curl, CURLOPT_HEADERDATA, req);
    bool large = req->in_fd != -1 || req->out_fd != -1;
    if (!large)
        curl_easy_setopt (curl, CURLOPT_TIMEOUT, self->timeout_s);

    bool has_payload = req->in_fd != -1 || req->in_data;
    if (strcmp (req->method, "HEAD") == 0)
        curl_easy_setopt (curl, CURLOPT_NOBODY, 1L);
    else
    if (strcmp (req->method, "PUT") == 0) {
        curl_easy_setopt (curl, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt (curl, CURLOPT_INFILESIZE_LARGE, (curl_off_t) req->in_size);
    }
    else
    if (strcmp (req->method, "POST") == 0) {
        curl_easy_setopt (curl, CURLOPT_POST, 1L);
        curl_easy_setopt (curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) req->in_size);
    }
    else
    if (strcmp (req->method, "GET") != 0)
        curl_easy_setopt (curl, CURLOPT_CUSTOMREQUEST, req->method);
    if (has_payload || strcmp (req->method, "PUT") == 0 || strcmp (req->method, "POST") == 0) {
        curl_easy_setopt (curl, CURLOPT_READFUNCTION, s_read_cb);
        curl_easy_setopt (curl, CURLOPT_READDATA, req);
        curl_easy_setopt (curl, CURLOPT_SEEKFUNCTION, s_seek_cb);
        curl_easy_setopt (curl, CURLOPT_SEEKDATA, req);
    }
    char range [48];
    if (req->range_from > 0) {
        //  CURLOPT_RANGE, not RESUME_FROM: we handle a 200 answer ourselves
        snprintf (range, sizeof range, "%" PRIu64 "-", req->range_from);
        curl_easy_setopt (curl, CURLOPT_RANGE, range);
    }

    req->in_pos = 0;
    req->curl_rc = curl_easy_perform (curl);
    curl_easy_getinfo (curl, CURLINFO_RESPONSE_CODE, &req->status);
    curl_easy_setopt (curl, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt (curl, CURLOPT_PASSWORD, "");
    free (url);
    qn_s3_free_secret (&header_token);
    free (header_type);
    curl_slist_free_all (headers);

    bool ok = req->curl_rc == CURLE_OK && req->status >= 200 && req->status < 300;
    //  S3 may answer 200 and put an error in the body (CompleteMultipartUpload)
    char code [128];
    if (ok && req->out_fd == -1 && req->body
    && qn_s3_xml_text (req->body, req->body_size, "Code", code, sizeof code) >= 0
    && memmem (req->body, req->body_size, "<Error", 6)) {
        ok = false;
    }
    if (!ok)
        s_request_error (req, error, error_size);
    return ok? 0: -1;
}

static void
s_request_init (s_request_t *req, qn_s3_t *self, const char *method, const char *key)
{
    memset (req, 0, sizeof *req);
    req->s3 = self;
    req->method = method;
    req->key = key;
    req->in_fd = -1;
    req->out_fd = -1;
}

static void
s_request_done (s_request_t *req)
{
    free (req->body);
    req->body = NULL;
    req->body_size = 0;
}


//  ---------------------------------------------------------------------
//  Operations

//  Uploads in parts: Create, UploadPart for each part_size slice (grown
//  when the file would need more than S3's 10000 parts), Complete; any
//  failure aborts the upload so no parts are left behind.
static int
s_put_multipart (qn_s3_t *self, const char *key, int fd, uint64_t size,
                 char *error, size_t error_size)
{
    uint64_t part_size = self->part_size;
    if ((size + part_size - 1) / part_size > QN_S3_MAX_PARTS) {
        part_size = (size + QN_S3_MAX_PARTS - 1) / QN_S3_MAX_PARTS;
        part_size = (part_size + (1 << 20) - 1) & ~(uint64_t) ((1 << 20) - 1);
    }
    size_t parts = (size_t) ((size + part_size - 1) / part_size);

    s_request_t req;
    s_request_init (&req, self, "POST", key);
    req.query = "uploads=";
    req.content_type = "application/octet-stream";
    if (s_request_run (&req, error, error_size) != 0) {
        s_request_done (&req);
        return -1;
    }
    char upload_id [S_UPLOAD_ID_MAX];
    int found = req.body? qn_s3_xml_text (req.body, req.body_size, "UploadId",
                                          upload_id, sizeof upload_id): -1;
    s_request_done (&req);
    if (found != 0 || !*upload_id) {
        snprintf (error, error_size, "s3: POST s3://%s/%s?uploads: no usable UploadId in the "
                  "answer", self->bucket, key);
        return -1;
    }
    char *upload_id_encoded = s_encode (upload_id, false);
    char (*etags) [S_ETAG_MAX] = (char (*) [S_ETAG_MAX]) calloc (parts, S_ETAG_MAX);
    char *query = NULL;
    int rc = upload_id_encoded && etags? 0: -1;
    if (rc != 0)
        snprintf (error, error_size, "s3: out of memory");

    for (size_t i = 0; rc == 0 && i < parts; i++) {
        free (query);
        query = qn_s3_printf ("partNumber=%zu&uploadId=%s", i + 1, upload_id_encoded);
        s_request_init (&req, self, "PUT", key);
        req.query = query;
        req.in_fd = fd;
        req.in_offset = (uint64_t) i * part_size;
        req.in_size = size - req.in_offset < part_size? size - req.in_offset: part_size;
        if (!query) {
            snprintf (error, error_size, "s3: out of memory");
            rc = -1;
        }
        else
        if (s_request_run (&req, error, error_size) != 0)
            rc = -1;
        else
        if (!req.etag [0]) {
            snprintf (error, error_size, "s3: PUT s3://%s/%s part %zu: no ETag in the answer",
                      self->bucket, key, i + 1);
            rc = -1;
        }
        else
            memcpy (etags [i], req.etag, S_ETAG_MAX);
        s_request_done (&req);
    }

    //  The Complete body: ETags as the server gave them, with & < >
    //  escaped; quotes stay literal (valid in element text).
    char *xml = NULL;
    size_t xml_size = 0;
    if (rc == 0) {
        FILE *stream = open_memstream (&xml, &xml_size);
        if (stream) {
            fputs ("<CompleteMultipartUpload>", stream);
            for (size_t i = 0; i < parts; i++) {
                fprintf (stream, "<Part><PartNumber>%zu</PartNumber><ETag>", i + 1);
                for (const char *p = etags [i]; *p; p++) {
                    if (*p == '&')
                        fputs ("&amp;", stream);
                    else
                    if (*p == '<')
                        fputs ("&lt;", stream);
                    else
                    if (*p == '>')
                        fputs ("&gt;", stream);
                    else
                        fputc (*p, stream);
                }
                fputs ("</ETag></Part>", stream);
            }
            fputs ("</CompleteMultipartUpload>", stream);
            if (fclose (stream) != 0) {
                free (xml);
                xml = NULL;
            }
        }
        if (!xml) {
            snprintf (error, error_size, "s3: out of memory");
            rc = -1;
        }
    }
    if (rc == 0) {
        free (query);
        query = qn_s3_printf ("uploadId=%s", upload_id_encoded);
        s_request_init (&req, self, "POST", key);
        req.query = query;
        req.content_type = "application/xml";
        req.in_data = xml;
        req.in_size = xml_size;
        if (!query) {
            snprintf (error, error_size, "s3: out of memory");
            rc = -1;
        }
        else
            rc = s_request_run (&req, error, error_size);
        s_request_done (&req);
    }
    if (rc != 0 && upload_id_encoded) {
        free (query);
        query = qn_s3_printf ("uploadId=%s", upload_id_encoded);
        if (query) {
            char abort_error [256];
            s_request_init (&req, self, "DELETE", key);
            req.query = query;
            if (s_request_run (&req, abort_error, sizeof abort_error) != 0) {
                size_t used = strlen (error);
                snprintf (error + used, error_size - used,
                          " (aborting the multipart upload failed too)");
            }
            s_request_done (&req);
        }
    }
    free (xml);
    free (query);
    free (etags);
    free (upload_id_encoded);
    return rc;
}

int
qn_s3_put_file (qn_s3_t *self, const char *key, const char *path,
                char *error, size_t error_size)
{
    assert (self);
    assert (error && error_size > 0);
    if (qn_s3_key_check (key, error, error_size) != 0)
        return -1;
    if (!path) {
        snprintf (error, error_size, "s3: no file to upload");
        return -1;
    }
    int fd = open (path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    struct stat st;
    if (fd == -1 || fstat (fd, &st) != 0 || !S_ISREG (st.st_mode)) {
        snprintf (error, error_size, "s3: cannot upload %s: %s", path,
                  fd == -1? strerror (errno): "not a regular file");
        if (fd != -1)
            close (fd);
        return -1;
    }
    uint64_t size = (uint64_t) st.st_size;
    int rc;
    if (size <= self->part_size) {
        s_request_t req;
        s_request_init (&req, self, "PUT", key);
        req.in_fd = fd;
        req.in_size = size;
        rc = s_request_run (&req, error, error_size);
        s_request_done (&req);
    }
    else
        rc = s_put_multipart (self, key, fd, size, error, error_size);
    close (fd);
    return rc;
}

int
qn_s3_get_file (qn_s3_t *self, const char *key, const char *path,
                char *error, size_t error_size)
{
    assert (self);
    assert (error && error_size > 0);
    if (qn_s3_key_check (key, error, error_size) != 0)
        return -1;
    char *part_path = path? qn_s3_printf ("%s.part", path): NULL;
    if (!part_path) {
        snprintf (error, error_size, path? "s3: out of memory": "s3: no file to download to");
        return -1;
    }
    int fd = open (part_path, O_WRONLY | O_CREAT | O_NONBLOCK | O_CLOEXEC, 0644);
    struct stat st;
    if (fd == -1 || fstat (fd, &st) != 0 || !S_ISREG (st.st_mode)
    || lseek (fd, 0, SEEK_END) == (off_t) -1) {
        snprintf (error, error_size, "s3: cannot write %s: %s", part_path,
                  fd != -1 && !S_ISREG (st.st_mode)? "not a regular file": strerror (errno));
        if (fd != -1)
            close (fd);
        free (part_path);
        return -1;
    }
    int rc = -1;
    for (int attempt = 0; attempt < 2; attempt++) {
        s_request_t req;
        s_request_init (&req, self, "GET", key);
        req.out_fd = fd;
        off_t have = lseek (fd, 0, SEEK_END);
        req.range_from = have > 0? (uint64_t) have: 0;
        rc = s_request_run (&req, error, error_size);
        if (rc != 0 && req.status == 416 && req.range_from > 0 && req.curl_rc == CURLE_OK) {
            //  the .part is not a prefix of this object (as long or longer):
            //  start over once
            s_request_done (&req);
            if (ftruncate (fd, 0) != 0) {
                snprintf (error, error_size, "s3: cannot truncate %s: %s", part_path,
                          strerror (errno));
                break;
            }
            continue;
        }
        if (rc != 0 && req.out_bad_range) {
            //  this .part cannot be continued: the next try starts over
            if (ftruncate (fd, 0) != 0)
                unlink (part_path);
        }
        if (rc == 0) {
            //  a 206 says the total size: the file must have it now
            uint64_t total = 0;
            const char *slash = strchr (req.content_range, '/');
            struct stat done;
            if (req.status == 206 && slash && sscanf (slash + 1, "%" SCNu64, &total) == 1
            && (fstat (fd, &done) != 0 || (uint64_t) done.st_size != total)) {
                snprintf (error, error_size, "s3: GET s3://%s/%s: resumed download has the "
                          "wrong size; removed %s", self->bucket, key, part_path);
                unlink (part_path);
                rc = -1;
            }
        }
        s_request_done (&req);
        break;
    }
    if (rc == 0 && fsync (fd) != 0) {
        snprintf (error, error_size, "s3: cannot write %s: %s", part_path, strerror (errno));
        rc = -1;
    }
    struct stat now;
    bool empty = fstat (fd, &now) == 0 && now.st_size == 0;
    if (close (fd) != 0 && rc == 0) {
        snprintf (error, error_size, "s3: cannot write %s: %s", part_path, strerror (errno));
        rc = -1;
    }
    if (rc == 0 && rename (part_path, path) != 0) {
        snprintf (error, error_size, "s3: cannot rename %s to %s: %s", part_path, path,
                  strerror (errno));
        rc = -1;
    }
    else
    if (rc != 0 && empty)
        unlink (part_path);     //  nothing to resume: leave no litter
    free (part_path);
    return rc;
}

int
qn_s3_head (qn_s3_t *self, const char *key, uint64_t *size_p, char *error, size_t error_size)
{
    assert (self);
    assert (error && error_size > 0);
    if (qn_s3_key_check (key, error, error_size) != 0)
        return -1;
    s_request_t req;
    s_request_init (&req, self, "HEAD", key);
    int rc = s_request_run (&req, error, error_size);
    if (rc != 0 && req.curl_rc == CURLE_OK && req.status == 404)
        rc = 1;
    else
    if (rc == 0 && size_p) {
        curl_off_t length = -1;
        curl_easy_getinfo (self->curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length);
        if (length < 0) {
            snprintf (error, error_size, "s3: HEAD s3://%s/%s: no Content-Length in the answer",
                      self->bucket, key);
            rc = -1;
        }
        else
            *size_p = (uint64_t) length;
    }
    s_request_done (&req);
    return rc;
}

int
qn_s3_delete (qn_s3_t *self, const char *key, char *error, size_t error_size)
{
    assert (self);
    assert (error && error_size > 0);
    if (qn_s3_key_check (key, error, error_size) != 0)
        return -1;
    s_request_t req;
    s_request_init (&req, self, "DELETE", key);
    int rc = s_request_run (&req, error, error_size);
    s_request_done (&req);
    return rc;
}

//  ---------------------------------------------------------------------
//  Store URLs

void
qn_s3_blob_key (const char *prefix, const char *hash, char *key, size_t key_size)
{
    snprintf (key, key_size, "%sblobs/%s", prefix? prefix: "", hash);
}

void
qn_s3_store_url_clear (qn_s3_store_url_t *store)
{
    assert (store);
    free (store->bucket);
    free (store->prefix);
    free (store->endpoint);
    free (store->region);
    memset (store, 0, sizeof (*store));
}

//  S3's bucket naming rules: 3 to 63 of a-z 0-9 . -, a letter or digit
//  at both ends
static bool
s_bucket_name_ok (const char *name, size_t size)
{
    if (size < 3 || size > 63 || !isalnum ((unsigned char) name [0])
    ||  !isalnum ((unsigned char) name [size - 1]))
        return false;
    for (size_t i = 0; i < size; i++)
        if (!(islower ((unsigned char) name [i]) || isdigit ((unsigned char) name [i])
              || name [i] == '.' || name [i] == '-'))
            return false;
    return true;
}

static bool
s_printable (const char *text, size_t size)
{
    for (size_t i = 0; i < size; i++)
        if ((unsigned char) text [i] <= ' ' || text [i] == 0x7f)
            return false;
    return true;
}

int
qn_s3_store_url_parse (const char *text, qn_s3_store_url_t *store, char *error,
                       size_t error_size)
{
    assert (store);
    memset (store, 0, sizeof (*store));
    if (!text || strncmp (text, "s3://", 5) != 0) {
        snprintf (error, error_size, "a store is written s3://BUCKET[/PREFIX][?endpoint="
                  "URL&region=NAME&path_style=true]");
        return -1;
    }
    if (strlen (text) > 2048) {
        snprintf (error, error_size, "the store URL is over 2048 bytes");
        return -1;
    }
    const char *bucket = text + 5;
    const char *query = strchr (bucket, '?');
    const char *end = query? query: bucket + strlen (bucket);
    const char *slash = memchr (bucket, '/', (size_t) (end - bucket));
    size_t bucket_size = (size_t) ((slash? slash: end) - bucket);
    if (!s_bucket_name_ok (bucket, bucket_size)) {
        snprintf (error, error_size, "'%.*s' is not an S3 bucket name (3 to 63 of a-z, "
                  "0-9, '.' and '-')", (int) (bucket_size > 64? 64: bucket_size), bucket);
        return -1;
    }
    store->bucket = strndup (bucket, bucket_size);
    const char *prefix = slash? slash + 1: end;
    size_t prefix_size = (size_t) (end - prefix);
    if (!s_printable (prefix, prefix_size) || prefix_size > 512 || *prefix == '/'
    ||  memmem (prefix, prefix_size, "..", 2) || memmem (prefix, prefix_size, "//", 2)) {
        snprintf (error, error_size, "the prefix must be up to 512 printable characters "
                  "without '..', '//' or a leading '/'");
        qn_s3_store_url_clear (store);
        return -1;
    }
    bool slash_needed = prefix_size && prefix [prefix_size - 1] != '/';
    store->prefix = (char *) malloc (prefix_size + 2);
    if (store->prefix)
        snprintf (store->prefix, prefix_size + 2, "%.*s%s", (int) prefix_size, prefix,
                  slash_needed? "/": "");
    bool path_style_seen = false;
    const char *cursor = query? query + 1: NULL;
    while (cursor && *cursor && store->bucket && store->prefix) {
        const char *amp = strchr (cursor, '&');
        size_t size = amp? (size_t) (amp - cursor): strlen (cursor);
        const char *equals = memchr (cursor, '=', size);
        size_t key_size = equals? (size_t) (equals - cursor): size;
        const char *value = equals? equals + 1: cursor + size;
        size_t value_size = (size_t) (cursor + size - value);
        char **field = NULL;
        if (key_size == 8 && strncmp (cursor, "endpoint", 8) == 0)
            field = &store->endpoint;
        else
        if (key_size == 6 && strncmp (cursor, "region", 6) == 0)
            field = &store->region;
        else
        if (!(key_size == 10 && strncmp (cursor, "path_style", 10) == 0)) {
            snprintf (error, error_size, "unknown store setting '%.*s' (known: endpoint, "
                      "region, path_style)", (int) (key_size > 32? 32: key_size), cursor);
            qn_s3_store_url_clear (store);
            return -1;
        }
        if ((field && *field) || (!field && path_style_seen) || !equals || !value_size
        ||  !s_printable (value, value_size)) {
            snprintf (error, error_size, "store setting '%.*s' %s", (int) key_size, cursor,
                      (field && *field) || (!field && path_style_seen)? "given twice"
                                                                         : "has no value");
            qn_s3_store_url_clear (store);
            return -1;
        }
        if (!field) {
            path_style_seen = true;
            if (value_size == 4 && strncmp (value, "true", 4) == 0)
                store->path_style = true;
            else
            if (!(value_size == 5 && strncmp (value, "false", 5) == 0)) {
                snprintf (error, error_size, "path_style wants true or false");
                qn_s3_store_url_clear (store);
                return -1;
            }
        }
        else
        if (field == &store->endpoint && strncmp (value, "http://", 7) != 0
                                      && strncmp (value, "https://", 8) != 0) {
            snprintf (error, error_size, "the endpoint must be an http:// or https:// URL");
            qn_s3_store_url_clear (store);
            return -1;
        }
        else
            *field = strndup (value, value_size);
        cursor = amp? amp + 1: NULL;
    }
    if (!store->bucket || !store->prefix) {
        snprintf (error, error_size, "out of memory");
        qn_s3_store_url_clear (store);
        return -1;
    }
    return 0;
}
