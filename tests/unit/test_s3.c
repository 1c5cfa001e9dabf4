/*  Unit tests for qn_s3 (no network), and a small command-line driver for
    the integration test (tests/integration/test_s3.py):

        test_s3 --driver put|get|head|delete KEY [PATH]

    The driver builds its client from the environment only: the AWS_*
    variables, plus QN_S3_TEST_BUCKET, QN_S3_TEST_PATH_STYLE (1 = path
    style), QN_S3_TEST_PART_SIZE and QN_S3_TEST_TIMEOUT_S.  It prints the
    size for head, errors on stderr, and exits 0 (done), 1 (head: not
    found) or 2 (error).
*/
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qn_s3.h"

static int
s_driver (int argc, char **argv)
{
    if (argc < 4) {
        fprintf (stderr, "usage: test_s3 --driver put|get|head|delete KEY [PATH]\n");
        return 2;
    }
    const char *path_style = getenv ("QN_S3_TEST_PATH_STYLE");
    const char *part_size = getenv ("QN_S3_TEST_PART_SIZE");
    const char *timeout_s = getenv ("QN_S3_TEST_TIMEOUT_S");
    qn_s3_config_t config = {
        .bucket = getenv ("QN_S3_TEST_BUCKET"),
        .path_style = path_style && strcmp (path_style, "1") == 0,
        .part_size = part_size? (size_t) strtoull (part_size, NULL, 10): 0,
        .timeout_s = timeout_s? atoi (timeout_s): 0,
    };
    char *message = NULL;
    qn_s3_t *s3 = qn_s3_new (&config, &message);
    if (!s3) {
        fprintf (stderr, "%s\n", message? message: "s3: cannot create the client");
        free (message);
        return 2;
    }
    const char *op = argv [2], *key = argv [3], *path = argc > 4? argv [4]: NULL;
    char error [2048] = "";
    int rc = 2;
    if (strcmp (op, "put") == 0 && path)
        rc = qn_s3_put_file (s3, key, path, error, sizeof error) == 0? 0: 2;
    else
    if (strcmp (op, "get") == 0 && path)
        rc = qn_s3_get_file (s3, key, path, error, sizeof error) == 0? 0: 2;
    else
    if (strcmp (op, "head") == 0) {
        uint64_t size = 0;
        int found = qn_s3_head (s3, key, &size, error, sizeof error);
        if (found == 0)
            printf ("%" PRIu64 "\n", size);
        rc = found == 0? 0: found == 1? 1: 2;
    }
    else
    if (strcmp (op, "delete") == 0)
        rc = qn_s3_delete (s3, key, error, sizeof error) == 0? 0: 2;
    else
        snprintf (error, sizeof error, "unknown driver command %s", op);
    if (rc == 2)
        fprintf (stderr, "%s\n", error);
    qn_s3_destroy (&s3);
    return rc;
}


//  ---------------------------------------------------------------------
//  Environment and file helpers: every test starts from a clean
//  environment with HOME at a fresh temporary directory.

static char s_home [256];

static const char *s_aws_vars [] = {
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION",
    "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE",
    "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "QANAT_S3_TEST_SMALL_PARTS"
};

static void
s_rmtree (const char *path)
{
    char command [512];
    snprintf (command, sizeof command, "rm -rf '%s'", path);
    assert_int_equal (system (command), 0);
}

static int
s_setup (void **state)
{
    (void) state;
    for (size_t i = 0; i < sizeof s_aws_vars / sizeof s_aws_vars [0]; i++)
        unsetenv (s_aws_vars [i]);
    snprintf (s_home, sizeof s_home, "/tmp/qn-s3-test-XXXXXX");
    if (!mkdtemp (s_home))
        return -1;
    setenv ("HOME", s_home, 1);
    return 0;
}

static int
s_teardown (void **state)
{
    (void) state;
    s_rmtree (s_home);
    return 0;
}

//  Writes data (size bytes, or strlen if size is 0) to HOME/relative.
static char *
s_write (const char *relative, const char *data, size_t size)
{
    static char path [512];
    snprintf (path, sizeof path, "%s/%s", s_home, relative);
    char *slash = strrchr (path, '/');
    *slash = '\0';
    mkdir (path, 0700);
    *slash = '/';
    FILE *file = fopen (path, "wb");
    assert_non_null (file);
    if (size == 0)
        size = strlen (data);
    assert_int_equal (fwrite (data, 1, size, file), size);
    fclose (file);
    return path;
}

//  Creates a client for bucket "bucket" (path style), returns it or NULL
//  with the error in *error_p (free it).
static qn_s3_t *
s_new (char **error_p)
{
    qn_s3_config_t config = { .bucket = "bucket", .path_style = true };
    *error_p = NULL;
    return qn_s3_new (&config, error_p);
}

//  Expects qn_s3_new to fail with a message containing needle.
static void
s_expect_failure (const qn_s3_config_t *config, const char *needle)
{
    char *error = NULL;
    qn_s3_t *s3 = qn_s3_new (config, &error);
    if (s3)
        fail_msg ("qn_s3_new succeeded, expected an error with '%s'", needle);
    assert_non_null (error);
    if (!strstr (error, needle))
        fail_msg ("error '%s' does not contain '%s'", error, needle);
    free (error);
}


//  ---------------------------------------------------------------------
//  Credentials resolution

static void
test_credentials_from_environment (void **state)
{
    (void) state;
    setenv ("AWS_ACCESS_KEY_ID", "AKIDENV", 1);
    setenv ("AWS_SECRET_ACCESS_KEY", "secret/env+key", 1);
    setenv ("AWS_SESSION_TOKEN", "token-env", 1);
    //  a credentials file too: the environment wins
    s_write (".aws/credentials", "[default]\naws_access_key_id = AKIDFILE\n"
             "aws_secret_access_key = secretfile\n", 0);
    char *error;
    qn_s3_t *s3 = s_new (&error);
    assert_non_null (s3);
    assert_null (error);
    assert_string_equal (qn_s3_access_key (s3), "AKIDENV");
    assert_string_equal (qn_s3_credentials_source (s3), "environment");
    assert_true (qn_s3_credentials_are (s3, "secret/env+key", "token-env"));
    assert_false (qn_s3_credentials_are (s3, "secret/env+key", NULL));
    assert_false (qn_s3_credentials_are (s3, "secretfile", "token-env"));
    assert_string_equal (qn_s3_region (s3), "us-east-1");
    assert_string_equal (qn_s3_endpoint (s3), "https://s3.us-east-1.amazonaws.com");
    qn_s3_destroy (&s3);
    assert_null (s3);
    qn_s3_destroy (&s3);            //  idempotent

    //  Half the pair is an error that names the missing half
    unsetenv ("AWS_SECRET_ACCESS_KEY");
    qn_s3_config_t config = { .bucket = "bucket", .path_style = true };
    s_expect_failure (&config, "AWS_SECRET_ACCESS_KEY is not");
}

static void
test_credentials_from_config_struct (void **state)
{
    (void) state;
    setenv ("AWS_ACCESS_KEY_ID", "AKIDENV", 1);
    setenv ("AWS_SECRET_ACCESS_KEY", "secretenv", 1);
    setenv ("AWS_SESSION_TOKEN", "token-env", 1);
    qn_s3_config_t config = {
        .bucket = "bucket", .path_style = true, .region = "eu-west-3",
        .endpoint = "http://127.0.0.1:9000/", .access_key = "AKIDCFG", .secret_key = "secretcfg"
    };
    char *error = NULL;
    qn_s3_t *s3 = qn_s3_new (&config, &error);
    assert_non_null (s3);
    assert_string_equal (qn_s3_access_key (s3), "AKIDCFG");
    assert_string_equal (qn_s3_credentials_source (s3), "config");
    //  the environment's session token belongs to the environment's keys
    assert_true (qn_s3_credentials_are (s3, "secretcfg", NULL));
    assert_string_equal (qn_s3_region (s3), "eu-west-3");
    assert_string_equal (qn_s3_endpoint (s3), "http://127.0.0.1:9000");
    qn_s3_destroy (&s3);

    config.secret_key = NULL;
    s_expect_failure (&config, "not the secret key");
}

static void
test_credentials_from_files (void **state)
{
    (void) state;
    //  ~/.aws/credentials, default profile, with comments and blanks
    const char *credentials_path = s_write (".aws/credentials",
        "# comment\n; other comment\n\n[other]\naws_access_key_id=AKIDOTHER\n"
        "aws_secret_access_key=secretother\n"
        "[default]\r\n  \n AWS_ACCESS_KEY_ID = INDENTED\nAWS_ACCESS_KEY_ID = AKIDDEFAULT \r\n"
        "aws_secret_access_key =  secret=with=equals  \n", 0);
    char expected_source [512];
    snprintf (expected_source, sizeof expected_source, "%s", credentials_path);
    char *error;
    qn_s3_t *s3 = s_new (&error);
    assert_non_null (s3);
    assert_string_equal (qn_s3_access_key (s3), "AKIDDEFAULT");
    assert_string_equal (qn_s3_credentials_source (s3), expected_source);
    assert_true (qn_s3_credentials_are (s3, "secret=with=equals", NULL));
    qn_s3_destroy (&s3);

    //  AWS_PROFILE selects another section
    setenv ("AWS_PROFILE", "other", 1);
    s3 = s_new (&error);
    assert_non_null (s3);
    assert_string_equal (qn_s3_access_key (s3), "AKIDOTHER");
    assert_true (qn_s3_credentials_are (s3, "secretother", NULL));
    qn_s3_destroy (&s3);

    //  A profile found nowhere is a clear error
    setenv ("AWS_PROFILE", "missing", 1);
    qn_s3_config_t config = { .bucket = "bucket", .path_style = true };
    s_expect_failure (&config, "profile 'missing' not found");
}

static void
test_credentials_from_config_file (void **state)
{
    (void) state;
    //  Keys, region and endpoint from the config file's "[profile work]";
    //  indented lines belong to nested settings and are skipped.
    const char *config_path = s_write ("elsewhere/config",
        "[default]\nregion = ap-south-1\n"
        "[profile work]\nregion = eu-central-1\n"
        "aws_access_key_id = AKIDWORK\naws_secret_access_key = secretwork\n"
        "aws_session_token = tokenwork\n"
        "s3 =\n  aws_access_key_id = NESTED\n"
        "endpoint_url = http://minio.local:9000\n", 0);
    setenv ("AWS_CONFIG_FILE", config_path, 1);
    setenv ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials", 1);
    setenv ("AWS_PROFILE", "work", 1);
    char *error;
    qn_s3_t *s3 = s_new (&error);
    assert_non_null (s3);
    assert_string_equal (qn_s3_access_key (s3), "AKIDWORK");
    assert_true (qn_s3_credentials_are (s3, "secretwork", "tokenwork"));
    assert_string_equal (qn_s3_region (s3), "eu-central-1");
    assert_string_equal (qn_s3_endpoint (s3), "http://minio.local:9000");
    qn_s3_destroy (&s3);

    //  The environment's region and endpoint win over the file's
    setenv ("AWS_DEFAULT_REGION", "us-west-1", 1);
    setenv ("AWS_ENDPOINT_URL", "http://generic:1", 1);
    s3 = s_new (&error);
    assert_non_null (s3);
    assert_string_equal (qn_s3_region (s3), "us-west-1");
    assert_string_equal (qn_s3_endpoint (s3), "http://generic:1");
    qn_s3_destroy (&s3);
    setenv ("AWS_REGION", "us-west-2", 1);
    setenv ("AWS_ENDPOINT_URL_S3", "https://s3-only:2", 1);
    s3 = s_new (&error);
    assert_non_null (s3);
    assert_string_equal (qn_s3_region (s3), "us-west-2");
    assert_string_equal (qn_s3_endpoint (s3), "https://s3-only:2");
    qn_s3_destroy (&s3);

    //  The credentials file wins over the config file for keys; "[work]"
    //  in the config file (no "profile ") is not the work profile
    s_write ("creds", "[work]\naws_access_key_id = AKIDCRED\n"
             "aws_secret_access_key = secretcred\n", 0);
    char path [512];
    snprintf (path, sizeof path, "%s/creds", s_home);
    setenv ("AWS_SHARED_CREDENTIALS_FILE", path, 1);
    s3 = s_new (&error);
    assert_non_null (s3);
    assert_string_equal (qn_s3_access_key (s3), "AKIDCRED");
    assert_true (qn_s3_credentials_are (s3, "secretcred", NULL));
    qn_s3_destroy (&s3);
}

static void
test_no_credentials (void **state)
{
    (void) state;
    qn_s3_config_t config = { .bucket = "bucket", .path_style = true };
    s_expect_failure (&config, "no credentials");
    //  no HOME at all: still a clear error, not a crash
    unsetenv ("HOME");
    s_expect_failure (&config, "no credentials");
    setenv ("HOME", s_home, 1);
    //  a section with only half the keys is not credentials
    s_write (".aws/credentials", "[default]\naws_access_key_id = AKIDHALF\n", 0);
    s_expect_failure (&config, "no credentials");
    //  no bucket
    qn_s3_config_t no_bucket = { .bucket = NULL };
    s_expect_failure (&no_bucket, "no bucket");
    char *error = NULL;
    assert_null (qn_s3_new (NULL, &error));
    assert_non_null (error);
    free (error);
    assert_null (qn_s3_new (NULL, NULL));
}

static void
test_hostile_config_files (void **state)
{
    (void) state;
    qn_s3_config_t config = { .bucket = "bucket", .path_style = true };
    //  NUL byte
    s_write (".aws/credentials", "[default]\naws_access_key_id = A\0B\n"
             "aws_secret_access_key = s\n", 48);
    s_expect_failure (&config, "NUL byte");
    //  control character in a value (header injection)
    s_write (".aws/credentials", "[default]\naws_access_key_id = AKID\n"
             "aws_secret_access_key = se\x01" "cret\n", 0);
    s_expect_failure (&config, "control characters");
    //  ':' in the access key would split the user:password pair
    s_write (".aws/credentials", "[default]\naws_access_key_id = AK:ID\n"
             "aws_secret_access_key = secret\n", 0);
    s_expect_failure (&config, "invalid credentials");
    //  a value too long
    char *big = (char *) malloc (10000);
    assert_non_null (big);
    memset (big, 'x', 9999);
    big [9999] = '\0';
    memcpy (big, "[default]\naws_access_key_id = ", 30);
    s_write (".aws/credentials", big, 0);
    s_expect_failure (&config, "too long");
    free (big);
    //  a file over 1 MiB
    char *huge = (char *) calloc (1, 1100 * 1024);
    assert_non_null (huge);
    memset (huge, '#', 1100 * 1024 - 1);
    s_write (".aws/credentials", huge, 0);
    s_expect_failure (&config, "at most");
    free (huge);
    //  a directory and a FIFO instead of the file: errors, and no hang
    char path [512];
    snprintf (path, sizeof path, "%s/.aws/credentials", s_home);
    assert_int_equal (unlink (path), 0);
    assert_int_equal (mkdir (path, 0700), 0);
    s_expect_failure (&config, "not a regular file");
    assert_int_equal (rmdir (path), 0);
    assert_int_equal (mkfifo (path, 0600), 0);
    s_expect_failure (&config, "not a regular file");
    assert_int_equal (unlink (path), 0);
    //  garbage: unterminated sections, lines without '=', no newline at end
    s_write (".aws/credentials", "[default\naws_access_key_id = A\n[]\n=\n==\n[default]\n"
             "junk line\naws_access_key_id\naws_access_key_id = AKIDOK\n"
             "aws_secret_access_key = last", 0);
    char *error;
    qn_s3_t *s3 = s_new (&error);
    assert_non_null (s3);
    assert_string_equal (qn_s3_access_key (s3), "AKIDOK");
    assert_true (qn_s3_credentials_are (s3, "last", NULL));
    qn_s3_destroy (&s3);
    //  random bytes: never a crash (success or a clean error)
    srand (42);
    char noise [600];
    for (int round = 0; round < 300; round++) {
        size_t size = 1 + (size_t) rand () % sizeof noise;
        for (size_t i = 0; i < size; i++) {
            static const char alphabet [] = "[]=\n\r \t#;:aws_ecrkyidpofl\x01\x7f\xff" "default";
            noise [i] = alphabet [rand () % (int) (sizeof alphabet - 1)];
        }
        s_write (".aws/credentials", noise, size);
        s3 = s_new (&error);
        assert_true ((s3 != NULL) != (error != NULL));
        qn_s3_destroy (&s3);
        free (error);
    }
    //  a hostile AWS_PROFILE
    s_write (".aws/credentials", "[default]\naws_access_key_id = A\n"
             "aws_secret_access_key = s\n", 0);
    setenv ("AWS_PROFILE", "a]b", 1);
    s_expect_failure (&config, "invalid AWS_PROFILE");
}

static void
test_settings_validation (void **state)
{
    (void) state;
    qn_s3_config_t config = {
        .bucket = "bucket", .path_style = true, .access_key = "AK", .secret_key = "SK"
    };
    char *error = NULL;
    //  regions go into "aws:amz:<region>:s3": no ':' or odd bytes
    config.region = "us-east-1:evil";
    s_expect_failure (&config, "invalid region");
    config.region = "";
    s_expect_failure (&config, "invalid region");
    setenv ("AWS_REGION", "EU WEST", 1);
    config.region = NULL;
    s_expect_failure (&config, "invalid region");
    unsetenv ("AWS_REGION");
    //  endpoints
    const char *bad_endpoints [] = {
        "ftp://host", "host:9000", "http://", "http://user@host", "http://host/?q=1",
        "http://host/a b", "http://host#frag", "http:///path", "http://ho\nst"
    };
    for (size_t i = 0; i < sizeof bad_endpoints / sizeof bad_endpoints [0]; i++) {
        config.endpoint = bad_endpoints [i];
        s_expect_failure (&config, "invalid endpoint");
    }
    config.endpoint = "HTTPS://Host.Example:8443/prefix//";
    qn_s3_t *s3 = qn_s3_new (&config, &error);
    assert_non_null (s3);
    assert_string_equal (qn_s3_endpoint (s3), "https://Host.Example:8443/prefix");
    qn_s3_destroy (&s3);
    config.endpoint = NULL;
    //  buckets
    const char *bad_buckets [] = { "", "ab", "-bucket", "bucket-", "buck et", "bu/cket", "b\x01ucket" };
    for (size_t i = 0; i < sizeof bad_buckets / sizeof bad_buckets [0]; i++) {
        config.bucket = bad_buckets [i];
        s_expect_failure (&config, "invalid bucket");
    }
    config.bucket = "Legacy_Bucket";
    s3 = qn_s3_new (&config, &error);
    assert_non_null (s3);               //  path style takes legacy names
    qn_s3_destroy (&s3);
    config.path_style = false;
    s_expect_failure (&config, "DNS-compatible");
    config.bucket = "bucket";
    //  part size: 5 MiB minimum unless the test knob says otherwise
    s3 = qn_s3_new (&config, &error);
    assert_non_null (s3);
    assert_int_equal (qn_s3_part_size (s3), QN_S3_PART_SIZE_DEFAULT);
    qn_s3_destroy (&s3);
    config.part_size = 1024 * 1024;
    s_expect_failure (&config, "below the minimum");
    setenv ("QANAT_S3_TEST_SMALL_PARTS", "1", 1);
    s3 = qn_s3_new (&config, &error);
    assert_non_null (s3);
    assert_int_equal (qn_s3_part_size (s3), 1024 * 1024);
    qn_s3_destroy (&s3);
    config.part_size = 100;
    s_expect_failure (&config, "below the minimum");
}


//  ---------------------------------------------------------------------
//  Keys and URLs

static void
test_key_check (void **state)
{
    (void) state;
    char error [256];
    assert_int_equal (qn_s3_key_check ("a", error, sizeof error), 0);
    assert_int_equal (qn_s3_key_check ("dir/sub dir/é+&?#%.txt", error, sizeof error), 0);
    assert_int_equal (qn_s3_key_check (NULL, error, sizeof error), -1);
    assert_int_equal (qn_s3_key_check ("", error, sizeof error), -1);
    assert_non_null (strstr (error, "empty"));
    char key [1100];
    memset (key, 'k', sizeof key);
    key [QN_S3_KEY_MAX] = '\0';
    assert_int_equal (qn_s3_key_check (key, error, sizeof error), 0);
    key [QN_S3_KEY_MAX] = 'k';
    key [QN_S3_KEY_MAX + 1] = '\0';
    assert_int_equal (qn_s3_key_check (key, error, sizeof error), -1);
    assert_non_null (strstr (error, "1024"));
    const char *controls [] = { "a\nb", "a\rb", "\x01", "tab\there", "del\x7f" };
    for (size_t i = 0; i < sizeof controls / sizeof controls [0]; i++) {
        assert_int_equal (qn_s3_key_check (controls [i], error, sizeof error), -1);
        assert_non_null (strstr (error, "control"));
    }
}

static qn_s3_t *
s_client (const char *endpoint, const char *bucket, bool path_style)
{
    qn_s3_config_t config = {
        .bucket = bucket, .path_style = path_style, .endpoint = endpoint,
        .access_key = "AK", .secret_key = "SK", .region = "eu-west-1", .timeout_s = 5
    };
    char *error = NULL;
    qn_s3_t *s3 = qn_s3_new (&config, &error);
    if (!s3)
        fail_msg ("qn_s3_new: %s", error);
    return s3;
}

static void
s_expect_url (qn_s3_t *s3, const char *key, const char *query, const char *expected)
{
    char *url = qn_s3_url (s3, key, query);
    assert_non_null (url);
    assert_string_equal (url, expected);
    free (url);
}

static void
test_urls (void **state)
{
    (void) state;
    qn_s3_t *s3 = s_client ("http://127.0.0.1:4568", "my-bucket", true);
    s_expect_url (s3, "a/b.txt", NULL, "http://127.0.0.1:4568/my-bucket/a/b.txt");
    s_expect_url (s3, "sp ace+plus&amp=eq?q#h%pct~t_u-v.w", NULL,
                  "http://127.0.0.1:4568/my-bucket/sp%20ace%2Bplus%26amp%3Deq%3Fq%23h%25pct~t_u-v.w");
    s_expect_url (s3, "\xc3\xa9t\xc3\xa9/\xff", NULL,
                  "http://127.0.0.1:4568/my-bucket/%C3%A9t%C3%A9/%FF");
    s_expect_url (s3, "../x/./y", NULL, "http://127.0.0.1:4568/my-bucket/../x/./y");
    s_expect_url (s3, "k", "partNumber=1&uploadId=u%2Fv",
                  "http://127.0.0.1:4568/my-bucket/k?partNumber=1&uploadId=u%2Fv");
    s_expect_url (s3, NULL, NULL, "http://127.0.0.1:4568/my-bucket");
    assert_null (qn_s3_url (s3, "", NULL));
    assert_null (qn_s3_url (s3, "bad\nkey", NULL));
    qn_s3_destroy (&s3);

    //  Virtual-host style puts the bucket in the host name
    s3 = s_client (NULL, "my-bucket", false);
    s_expect_url (s3, "a b", NULL, "https://my-bucket.s3.eu-west-1.amazonaws.com/a%20b");
    s_expect_url (s3, NULL, "uploads=", "https://my-bucket.s3.eu-west-1.amazonaws.com/?uploads=");
    qn_s3_destroy (&s3);
    s3 = s_client ("http://minio.local:9000/base/", "b-1", false);
    s_expect_url (s3, "k", NULL, "http://b-1.minio.local:9000/base/k");
    qn_s3_destroy (&s3);
}


//  ---------------------------------------------------------------------
//  XML

static void
test_xml (void **state)
{
    (void) state;
    char value [64];
    const char *create =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<InitiateMultipartUploadResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
        "<Bucket>b</Bucket><Key>k</Key><UploadId>VXBsb2FkIElE.x-y_z</UploadId>"
        "</InitiateMultipartUploadResult>";
    assert_int_equal (qn_s3_xml_text (create, strlen (create), "UploadId", value, sizeof value), 0);
    assert_string_equal (value, "VXBsb2FkIElE.x-y_z");
    assert_int_equal (qn_s3_xml_text (create, strlen (create), "Bucket", value, sizeof value), 0);
    assert_string_equal (value, "b");

    const char *error =
        "<Error><Code>SignatureDoesNotMatch</Code>\n<Message>The request &amp; its &quot;sig"
        "&quot; &lt;x&gt; &#65;&#x42; &#x263A; &bogus;\r\n\x01 end</Message></Error>";
    assert_int_equal (qn_s3_xml_text (error, strlen (error), "Code", value, sizeof value), 0);
    assert_string_equal (value, "SignatureDoesNotMatch");
    char message [256];
    assert_int_equal (qn_s3_xml_text (error, strlen (error), "Message", message, sizeof message), 0);
    assert_string_equal (message, "The request & its \"sig\" <x> AB ? &bogus;  ? end");

    //  Names must match whole: <CodeX> is not <Code>; attributes allowed
    const char *prefix = "<CodeX>no</CodeX><Code a=\"1\">yes</Code>";
    assert_int_equal (qn_s3_xml_text (prefix, strlen (prefix), "Code", value, sizeof value), 0);
    assert_string_equal (value, "yes");
    //  Empty and self-closing
    assert_int_equal (qn_s3_xml_text ("<Code/>", 7, "Code", value, sizeof value), 0);
    assert_string_equal (value, "");
    assert_int_equal (qn_s3_xml_text ("<Code></Code>", 13, "Code", value, sizeof value), 0);
    assert_string_equal (value, "");
    //  Truncated to fit: 1, and the prefix
    char small [5];
    assert_int_equal (qn_s3_xml_text ("<Code>abcdefgh</Code>", 21, "Code", small, sizeof small), 1);
    assert_string_equal (small, "abcd");
    //  Missing, unterminated, cut by size, NUL bytes, garbage: -1
    const char *cases [] = {
        "", "<", "<Code", "<Code>", "<Code>abc", "<Code>abc</Cod", "<Code>abc</CodeX>",
        "no xml at all", "<<<<>>>></></>", "<Code >x</Codex"
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases [0]; i++)
        assert_int_equal (qn_s3_xml_text (cases [i], strlen (cases [i]), "Code",
                                          value, sizeof value), -1);
    assert_int_equal (qn_s3_xml_text ("<Code>abc</Code>", 12, "Code", value, sizeof value), -1);
    assert_int_equal (qn_s3_xml_text (NULL, 0, "Code", value, sizeof value), -1);
    const char with_nul [] = "<Error>\0<Code>a\0b</Code>";
    assert_int_equal (qn_s3_xml_text (with_nul, sizeof with_nul - 1, "Code", value, sizeof value), 0);
    assert_string_equal (value, "a?b");
    //  Truncated entities and numeric entities that overflow
    const char *entities = "<M>&amp &#; &#x; &#99999999999; &#0; &</M>";
    assert_int_equal (qn_s3_xml_text (entities, strlen (entities), "M", value, sizeof value), 0);
    assert_string_equal (value, "&amp &#; &#x; &#99999999999; ? &");

    //  Random input, read through a buffer with no NUL after it (valgrind
    //  catches any read past the end)
    srand (7);
    for (int round = 0; round < 2000; round++) {
        size_t size = (size_t) rand () % 200;
        char *buffer = (char *) malloc (size + 1);
        assert_non_null (buffer);
        static const char alphabet [] = "<>/&#;x0Code UploadId\"=\x01";
        for (size_t i = 0; i < size; i++)
            buffer [i] = alphabet [rand () % (int) (sizeof alphabet - 1)];
        int rc = qn_s3_xml_text (size? buffer: NULL, size, round % 2? "Code": "UploadId",
                                 value, sizeof value);
        assert_true (rc >= -1 && rc <= 1);
        assert_true (strlen (value) < sizeof value);
        for (const char *p = value; *p; p++)
            assert_true ((unsigned char) *p >= 0x20 && *p != 0x7f);
        free (buffer);
    }
}


//  ---------------------------------------------------------------------
//  Failures without a server

static void
test_operations_fail_cleanly (void **state)
{
    (void) state;
    //  Port 1 on loopback: connection refused at once
    qn_s3_t *s3 = s_client ("http://127.0.0.1:1", "bucket", true);
    char error [1024];
    char *path = s_write ("file.txt", "hello", 0);
    char file [512];
    snprintf (file, sizeof file, "%s", path);
    assert_int_equal (qn_s3_put_file (s3, "dir/key", file, error, sizeof error), -1);
    assert_non_null (strstr (error, "s3: PUT s3://bucket/dir/key: "));
    assert_non_null (strstr (error, "connect"));

    char out [512], part [520];
    snprintf (out, sizeof out, "%s/out.txt", s_home);
    snprintf (part, sizeof part, "%s.part", out);
    assert_int_equal (qn_s3_get_file (s3, "dir/key", out, error, sizeof error), -1);
    assert_non_null (strstr (error, "s3: GET s3://bucket/dir/key: "));
    assert_int_equal (access (part, F_OK), -1);     //  nothing to resume: no .part left
    assert_int_equal (access (out, F_OK), -1);
    //  a .part with data stays for the next try
    s_write ("out.txt.part", "partial", 0);
    assert_int_equal (qn_s3_get_file (s3, "dir/key", out, error, sizeof error), -1);
    assert_int_equal (access (part, F_OK), 0);

    uint64_t size = 99;
    assert_int_equal (qn_s3_head (s3, "dir/key", &size, error, sizeof error), -1);
    assert_non_null (strstr (error, "s3: HEAD s3://bucket/dir/key: "));
    assert_int_equal (size, 99);
    assert_int_equal (qn_s3_delete (s3, "dir/key", error, sizeof error), -1);
    assert_non_null (strstr (error, "s3: DELETE s3://bucket/dir/key: "));

    //  Bad input refused before any request
    assert_int_equal (qn_s3_put_file (s3, "", file, error, sizeof error), -1);
    assert_non_null (strstr (error, "empty"));
    assert_int_equal (qn_s3_put_file (s3, "k", "/nonexistent/file", error, sizeof error), -1);
    assert_non_null (strstr (error, "cannot upload /nonexistent/file"));
    assert_int_equal (qn_s3_put_file (s3, "k", s_home, error, sizeof error), -1);
    assert_non_null (strstr (error, "not a regular file"));
    assert_int_equal (qn_s3_put_file (s3, "k", NULL, error, sizeof error), -1);
    assert_int_equal (qn_s3_get_file (s3, "k\n", out, error, sizeof error), -1);
    assert_non_null (strstr (error, "control"));
    assert_int_equal (qn_s3_get_file (s3, "k", "/nonexistent/dir/out", error, sizeof error), -1);
    assert_non_null (strstr (error, "cannot write"));
    assert_int_equal (qn_s3_head (s3, "", NULL, error, sizeof error), -1);
    assert_int_equal (qn_s3_delete (s3, NULL, error, sizeof error), -1);
    qn_s3_destroy (&s3);
}

static void
test_store_urls (void **state)
{
    (void) state;
    qn_s3_store_url_t store;
    char error [256] = "";
    assert_int_equal (qn_s3_store_url_parse ("s3://ml-data/runs/cloud?endpoint=http://127.0.0.1:4568"
                                             "&region=eu-west-1&path_style=true",
                                             &store, error, sizeof error), 0);
    assert_string_equal (store.bucket, "ml-data");
    assert_string_equal (store.prefix, "runs/cloud/");
    assert_string_equal (store.endpoint, "http://127.0.0.1:4568");
    assert_string_equal (store.region, "eu-west-1");
    assert_true (store.path_style);
    qn_s3_store_url_clear (&store);
    assert_null (store.bucket);

    assert_int_equal (qn_s3_store_url_parse ("s3://bucket.one", &store, error, sizeof error), 0);
    assert_string_equal (store.bucket, "bucket.one");
    assert_string_equal (store.prefix, "");
    assert_null (store.endpoint);
    assert_null (store.region);
    assert_false (store.path_style);
    qn_s3_store_url_clear (&store);

    assert_int_equal (qn_s3_store_url_parse ("s3://b12/p/", &store, error, sizeof error), 0);
    assert_string_equal (store.prefix, "p/");
    qn_s3_store_url_clear (&store);

    const char *bad [][2] = {
        { "http://bucket", "s3://BUCKET" },
        { "s3://", "not an S3 bucket name" },
        { "s3://Upper", "not an S3 bucket name" },
        { "s3://ab", "not an S3 bucket name" },
        { "s3://-abc", "not an S3 bucket name" },
        { "s3://abc/../x", "prefix" },
        { "s3://abc//x", "prefix" },
        { "s3://abc/a b", "prefix" },
        { "s3://abc?color=red", "unknown store setting 'color'" },
        { "s3://abc?region=a&region=b", "given twice" },
        { "s3://abc?region=", "has no value" },
        { "s3://abc?region", "has no value" },
        { "s3://abc?path_style=yes", "path_style wants true or false" },
        { "s3://abc?endpoint=ftp://x", "http:// or https://" },
        { "s3://abc?endpoint=http://a\x01b", "has no value" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++) {
        error [0] = '\0';
        store.bucket = (char *) "stale";       //  cleared by the parser, not freed
        assert_int_equal (qn_s3_store_url_parse (bad [i][0], &store, error, sizeof error), -1);
        assert_null (store.bucket);
        if (!strstr (error, bad [i][1]))
            fail_msg ("'%s': error '%s' lacks '%s'", bad [i][0], error, bad [i][1]);
    }
    assert_int_equal (qn_s3_store_url_parse (NULL, &store, error, sizeof error), -1);
}

int
main (int argc, char **argv)
{
    if (argc > 1 && strcmp (argv [1], "--driver") == 0)
        return s_driver (argc, argv);
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup_teardown (test_credentials_from_environment, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_credentials_from_config_struct, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_credentials_from_files, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_credentials_from_config_file, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_no_credentials, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_hostile_config_files, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_settings_validation, s_setup, s_teardown),
        cmocka_unit_test (test_key_check),
        cmocka_unit_test_setup_teardown (test_urls, s_setup, s_teardown),
        cmocka_unit_test (test_xml),
        cmocka_unit_test (test_store_urls),
        cmocka_unit_test_setup_teardown (test_operations_fail_cleanly, s_setup, s_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
