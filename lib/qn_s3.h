/*  qn_s3 - an S3-compatible artifact store client.

    Moves files between the local disk and one bucket of an S3-compatible
    object store (AWS S3, MinIO, Ceph RGW, s3rver, ...), so an agent can
    move data straight between a task and the bucket.  Requests are signed
    by libcurl (CURLOPT_AWS_SIGV4, "aws:amz:<region>:s3"); every request
    carries x-amz-content-sha256 set to the real SHA-256 of its payload.

    All calls block and are bounded by timeouts (connect, stall, and a
    total limit for small requests); run them in a worker thread.  One
    qn_s3_t must not be used by two threads at once; separate instances
    are independent.

    Credentials and settings, when not given in the config, come from the
    usual AWS places, first match wins:
      keys:     AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN),
                then profile $AWS_PROFILE (default "default") in
                $AWS_SHARED_CREDENTIALS_FILE (default ~/.aws/credentials),
                then the same profile in $AWS_CONFIG_FILE (default
                ~/.aws/config, section "[profile NAME]" or "[default]");
      region:   AWS_REGION, AWS_DEFAULT_REGION, "region" in the profile of
                the config file, else "us-east-1";
      endpoint: AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, "endpoint_url" in
                the profile of the config file, else
                https://s3.<region>.amazonaws.com.

    Test-only knob: with QANAT_S3_TEST_SMALL_PARTS=1 in the environment,
    part_size may go below S3's 5 MiB minimum (down to 1 KiB), so tests
    can exercise multipart uploads with small files.
*/
#ifndef qn_s3_H_INCLUDED
#define qn_s3_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define QN_S3_KEY_MAX           1024                //  bytes, as S3
#define QN_S3_PART_SIZE_DEFAULT (8 * 1024 * 1024)
#define QN_S3_PART_SIZE_MIN     (5 * 1024 * 1024)   //  S3's minimum part size
#define QN_S3_MAX_PARTS         10000               //  S3's part count limit

typedef struct _qn_s3_t qn_s3_t;

typedef struct {
    const char *endpoint;       //  e.g. "http://127.0.0.1:4568"; NULL = env/config, else AWS
    const char *region;         //  NULL = from env/config, else "us-east-1"
    const char *bucket;         //  required
    bool path_style;            //  true for local servers; virtual-host style otherwise
    const char *access_key;     //  NULL (with secret_key NULL) = from the environment/files
    const char *secret_key;
    const char *session_token;  //  sent as x-amz-security-token; NULL = none or from env/files
    size_t part_size;           //  multipart threshold and part size; 0 = 8 MiB, min 5 MiB
    int timeout_s;              //  connect and stall limit, total limit of small
                                //  requests; 0 = 60
} qn_s3_config_t;

//  Creates a client for config->bucket; resolves credentials, region and
//  endpoint as described above.  Returns NULL on failure with a
//  malloc'ed message in *error_p (when error_p is not NULL; free it).
qn_s3_t *
    qn_s3_new (const qn_s3_config_t *config, char **error_p);

//  Destroys the client; idempotent, nulls the pointer.
void
    qn_s3_destroy (qn_s3_t **self_p);

//  Uploads the regular file at path as key: one PUT below part_size,
//  else a multipart upload (aborted on failure).  Returns 0 or -1 with a
//  message in error.
int
    qn_s3_put_file (qn_s3_t *self, const char *key, const char *path,
                    char *error, size_t error_size);

//  Downloads key into path: writes path.part, then renames it to path.
//  An existing path.part is resumed with a Range request (a failed get
//  leaves it for the next try).  Returns 0 or -1 with a message.
int
    qn_s3_get_file (qn_s3_t *self, const char *key, const char *path,
                    char *error, size_t error_size);

//  Returns 0 when key exists (its size in *size_p if not NULL), 1 when it
//  does not, -1 on error with a message.
int
    qn_s3_head (qn_s3_t *self, const char *key, uint64_t *size_p,
                char *error, size_t error_size);

//  Deletes key (deleting a missing key succeeds, as in S3).  Returns 0 or
//  -1 with a message.
int
    qn_s3_delete (qn_s3_t *self, const char *key, char *error, size_t error_size);

//  ---------------------------------------------------------------------
//  Introspection and helpers (diagnostics, tests)

//  The resolved settings; valid until destroy.
const char *
    qn_s3_region (qn_s3_t *self);
const char *
    qn_s3_endpoint (qn_s3_t *self);
const char *
    qn_s3_access_key (qn_s3_t *self);
size_t
    qn_s3_part_size (qn_s3_t *self);

//  Where the credentials came from: "config", "environment", or the path
//  of the file they were read from.  Never the secret.
const char *
    qn_s3_credentials_source (qn_s3_t *self);

//  True when self's secret key and session token equal the given ones
//  (session_token NULL = none); lets tests check the resolution without
//  an accessor that hands the secret out.
bool
    qn_s3_credentials_are (qn_s3_t *self, const char *secret_key, const char *session_token);

//  Returns 0 when key is a valid object key (1..1024 bytes, no control
//  characters), else -1 with the reason in error.
int
    qn_s3_key_check (const char *key, char *error, size_t error_size);

//  Returns the request URL for key (NULL = the bucket itself) with an
//  optional query string appended verbatim; malloc'ed, NULL if key is
//  invalid.  The key is percent-encoded as SigV4 wants it: every byte
//  but A-Z a-z 0-9 - . _ ~ and / as %XX with upper-case hex.
char *
    qn_s3_url (qn_s3_t *self, const char *key, const char *query);

//  Copies the text of the first <tag>...</tag> element found in the
//  first size bytes of xml into value (NUL-terminated, at most
//  value_size - 1 bytes, entities decoded, control characters replaced
//  by '?').  Returns 0, 1 when the text was cut to fit value, or -1
//  when there is no such element.  For hostile input: never reads past
//  size, never needs the input NUL-terminated.
int
    qn_s3_xml_text (const char *xml, size_t size, const char *tag,
                    char *value, size_t value_size);

//  The key of a content-addressed blob in an artifact store:
//  <prefix>blobs/<sha256>, as agents put them, consumers and `qanat get`
//  fetch them and the coordinator's retention deletes them.  prefix may
//  be NULL.
void
    qn_s3_blob_key (const char *prefix, const char *hash, char *key, size_t key_size);

//  A store written as one URL, the way an agent is told where its
//  environment keeps artifacts (qanat-agent --artifact-store):
//      s3://BUCKET[/PREFIX][?endpoint=URL&region=NAME&path_style=true|false]
//  The prefix gets a trailing '/' when it has none, so that keys read
//  PREFIX/blobs/<sha256>.  Fields are malloc'ed; NULL when not given.
typedef struct {
    char *bucket;
    char *prefix;               //  "" when none
    char *endpoint;
    char *region;
    bool path_style;
} qn_s3_store_url_t;

//  Parses text into store (which it clears first).  Returns 0, or -1 with
//  the reason in error and store cleared: a bucket that is not an S3
//  bucket name, a prefix with control characters or "..", an endpoint
//  that is not http(s)://, an unknown or repeated query key.
int
    qn_s3_store_url_parse (const char *text, qn_s3_store_url_t *store, char *error,
                           size_t error_size);

//  Frees the fields and zeroes store.
void
    qn_s3_store_url_clear (qn_s3_store_url_t *store);

#ifdef __cplusplus
}
#endif

#endif
