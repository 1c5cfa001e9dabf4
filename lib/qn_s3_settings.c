/*  qn_s3_settings - where an S3 client's credentials, region and endpoint
    come from.  See qn_s3_settings.h.

    The resolution keeps the AWS CLI's order and reports the first thing
    wrong, in the order a user would fix them: the profile name, the
    files, the keys, then region and endpoint.
*/
#include "qn_s3_settings.h"
#include "qn_file.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_CONFIG_FILE_MAX       (1024 * 1024)       //  AWS credentials/config files
#define S_VALUE_MAX             4096                //  one value in those files
#define S_PROFILE_MAX           128


//  ---------------------------------------------------------------------
//  Small helpers

static char *
s_strndup (const char *text, size_t size)
{
    char *copy = (char *) malloc (size + 1);
    if (copy) {
        memcpy (copy, text, size);
        copy [size] = '\0';
    }
    return copy;
}

void
qn_s3_free_secret (char **text_p)
{
    if (*text_p) {
        sodium_memzero (*text_p, strlen (*text_p));
        free (*text_p);
        *text_p = NULL;
    }
}

char *
qn_s3_printf (const char *format, ...)
{
    va_list args;
    va_start (args, format);
    char *text = NULL;
    if (vasprintf (&text, format, args) == -1)
        text = NULL;
    va_end (args);
    return text;
}

//  True when text has a byte that must not go into a header or a URL.
bool
qn_s3_has_control (const char *text)
{
    for (const unsigned char *p = (const unsigned char *) text; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return true;
    return false;
}

//  Returns the environment variable, or NULL when unset or empty.
const char *
qn_s3_env (const char *name)
{
    const char *value = getenv (name);
    return value && *value? value: NULL;
}


//  ---------------------------------------------------------------------
//  AWS shared credentials and config files (INI)

typedef struct {
    bool found;                 //  the section exists
    char *access_key;
    char *secret_key;
    char *session_token;
    char *region;
    char *endpoint_url;
} s_profile_t;

static void
s_profile_clear (s_profile_t *profile)
{
    qn_s3_free_secret (&profile->access_key);
    qn_s3_free_secret (&profile->secret_key);
    qn_s3_free_secret (&profile->session_token);
    free (profile->region);
    free (profile->endpoint_url);
    memset (profile, 0, sizeof *profile);
}

//  Trims blanks at both ends of [*start, *end).
static void
s_trim_range (const char **start, const char **end)
{
    while (*start < *end && (**start == ' ' || **start == '\t' || **start == '\r'))
        (*start)++;
    while (*end > *start && ((*end) [-1] == ' ' || (*end) [-1] == '\t' || (*end) [-1] == '\r'))
        (*end)--;
}

//  True when the section header text [start, end) names the profile: in
//  the credentials file "[NAME]"; in the config file "[profile NAME]",
//  or "[default]" for the default profile.
static bool
s_section_matches (const char *start, const char *end, const char *profile, bool config_file)
{
    s_trim_range (&start, &end);
    if (config_file && end - start > 8 && memcmp (start, "profile", 7) == 0
    && (start [7] == ' ' || start [7] == '\t')) {
        start += 8;
        s_trim_range (&start, &end);
    }
    else
    if (config_file && strcmp (profile, "default") != 0)
        return false;
    return (size_t) (end - start) == strlen (profile)
        && memcmp (start, profile, (size_t) (end - start)) == 0;
}

//  Reads the profile's settings from an AWS INI file into profile (later
//  values win, as in the AWS CLI).  A missing file is not an error.
//  Indented lines continue a nested setting (e.g. "s3 =") and are
//  skipped; values with control characters are refused.
static int
s_profile_read (const char *path, const char *profile_name, bool config_file,
                s_profile_t *profile, char *error, size_t error_size)
{
    size_t size = 0;
    bool missing = false;
    char reason [512];
    char *data = qn_file_read_small (path, S_CONFIG_FILE_MAX, &size, &missing,
                                     reason, sizeof reason);
    if (!data && !missing)
        snprintf (error, error_size, "s3: %s", reason);
    if (!data)
        return missing? 0: -1;

    static const char *names [] = {
        "aws_access_key_id", "aws_secret_access_key", "aws_session_token",
        "region", "endpoint_url"
    };
    char **slots [] = {
        &profile->access_key, &profile->secret_key, &profile->session_token,
        &profile->region, &profile->endpoint_url
    };
    int rc = 0;
    bool in_section = false;
    const char *line = data;
    const char *data_end = data + size;
    unsigned line_number = 0;
    while (line < data_end && rc == 0) {
        const char *eol = (const char *) memchr (line, '\n', (size_t) (data_end - line));
        if (!eol)
            eol = data_end;
        const char *next = eol < data_end? eol + 1: eol;
        line_number++;
        if (memchr (line, '\0', (size_t) (eol - line))) {
            snprintf (error, error_size, "s3: %s line %u: NUL byte", path, line_number);
            rc = -1;
            break;
        }
        bool indented = line < eol && (*line == ' ' || *line == '\t');
        const char *start = line, *end = eol;
        s_trim_range (&start, &end);
        line = next;
        if (start == end || *start == '#' || *start == ';')
            continue;
        if (*start == '[') {
            const char *close = (const char *) memchr (start, ']', (size_t) (end - start));
            in_section = close && s_section_matches (start + 1, close, profile_name, config_file);
            if (in_section)
                profile->found = true;
            continue;
        }
        if (!in_section || indented)
            continue;
        const char *equals = (const char *) memchr (start, '=', (size_t) (end - start));
        if (!equals)
            continue;           //  not a setting; the AWS CLI would refuse the file
        const char *name = start, *name_end = equals;
        const char *value = equals + 1, *value_end = end;
        s_trim_range (&name, &name_end);
        s_trim_range (&value, &value_end);
        for (size_t i = 0; i < sizeof names / sizeof names [0]; i++) {
            if ((size_t) (name_end - name) != strlen (names [i])
            ||  strncasecmp (name, names [i], strlen (names [i])) != 0)
                continue;
            if ((size_t) (value_end - value) > S_VALUE_MAX) {
                snprintf (error, error_size, "s3: %s line %u: %s is too long",
                          path, line_number, names [i]);
                rc = -1;
                break;
            }
            char *copy = s_strndup (value, (size_t) (value_end - value));
            if (!copy) {
                snprintf (error, error_size, "s3: out of memory");
                rc = -1;
                break;
            }
            if (qn_s3_has_control (copy)) {
                snprintf (error, error_size, "s3: %s line %u: %s has control characters",
                          path, line_number, names [i]);
                qn_s3_free_secret (&copy);
                rc = -1;
                break;
            }
            qn_s3_free_secret (slots [i]);
            *slots [i] = copy;
        }
    }
    sodium_memzero (data, size);
    free (data);
    return rc;
}

//  Returns the path of an AWS file: $env_name, else ~/.aws/<leaf>, else
//  NULL (no HOME).  Malloc'ed.
static char *
s_aws_file (const char *env_name, const char *leaf)
{
    const char *path = qn_s3_env (env_name);
    if (path)
        return strdup (path);
    const char *home = qn_s3_env ("HOME");
    return home? qn_s3_printf ("%s/.aws/%s", home, leaf): NULL;
}


//  ---------------------------------------------------------------------
//  Settings validation

//  Regions go into the CURLOPT_AWS_SIGV4 string, where ':' would split
//  it: letters, digits and '-' only.
static bool
s_region_valid (const char *region)
{
    size_t size = strlen (region);
    if (size == 0 || size > 64)
        return false;
    for (const char *p = region; *p; p++)
        if (!(islower ((unsigned char) *p) || isdigit ((unsigned char) *p) || *p == '-'))
            return false;
    return true;
}

//  Returns a normalized copy of the endpoint URL (http or https, a host,
//  no user info, query or fragment, no trailing '/'), or NULL.
static char *
s_endpoint_normalize (const char *endpoint)
{
    const char *host = NULL;
    if (strncasecmp (endpoint, "http://", 7) == 0)
        host = endpoint + 7;
    else
    if (strncasecmp (endpoint, "https://", 8) == 0)
        host = endpoint + 8;
    if (!host || !*host || *host == '/' || *host == ':' || strlen (endpoint) > 2048)
        return NULL;
    for (const char *p = endpoint; *p; p++) {
        unsigned char c = (unsigned char) *p;
        if (c <= 0x20 || c >= 0x7f || c == '?' || c == '#' || c == '@' || c == '\\')
            return NULL;
    }
    char *copy = strdup (endpoint);
    if (copy) {
        size_t size = strlen (copy);
        while (size > (size_t) (host - endpoint) && copy [size - 1] == '/')
            copy [--size] = '\0';
        //  lower-case the scheme so URL building can rely on it
        for (char *p = copy; *p != ':'; p++)
            *p = (char) tolower ((unsigned char) *p);
    }
    return copy;
}


//  ---------------------------------------------------------------------
//  Resolution

//  The profile and the two files it is read from
typedef struct {
    const char *name;
    bool name_explicit;         //  from AWS_PROFILE, so a missing one is an error
    char *credentials_path;     //  NULL = no HOME
    char *config_path;
    s_profile_t credentials_file;
    s_profile_t config_file;
} s_sources_t;

static void
s_sources_clear (s_sources_t *sources)
{
    s_profile_clear (&sources->credentials_file);
    s_profile_clear (&sources->config_file);
    free (sources->credentials_path);
    free (sources->config_path);
}

//  Names the profile and reads the config file, which every setting may
//  come from; the credentials file is read only when the keys come from
//  a file.
static int
s_sources_open (s_sources_t *sources, char *error, size_t error_size)
{
    sources->name = qn_s3_env ("AWS_PROFILE");
    sources->name_explicit = sources->name != NULL;
    if (!sources->name)
        sources->name = "default";
    if (strlen (sources->name) > S_PROFILE_MAX || qn_s3_has_control (sources->name)
    || strchr (sources->name, ']')) {
        snprintf (error, error_size, "s3: invalid AWS_PROFILE");
        return -1;
    }
    sources->credentials_path = s_aws_file ("AWS_SHARED_CREDENTIALS_FILE", "credentials");
    sources->config_path = s_aws_file ("AWS_CONFIG_FILE", "config");
    if (sources->config_path)
        return s_profile_read (sources->config_path, sources->name, true,
                               &sources->config_file, error, error_size);
    return 0;
}

//  Keys from the profile: the credentials file, then the config file.
//  Takes them over from the profile rather than copying them, so that a
//  secret is in memory once.
static int
s_keys_from_files (qn_s3_settings_t *self, s_sources_t *sources,
                   char *error, size_t error_size)
{
    int rc = 0;
    if (sources->credentials_path)
        rc = s_profile_read (sources->credentials_path, sources->name, false,
                             &sources->credentials_file, error, error_size);
    if (rc != 0)
        return rc;
    s_profile_t *from = NULL;
    const char *from_path = NULL;
    if (sources->credentials_file.access_key && sources->credentials_file.secret_key) {
        from = &sources->credentials_file;
        from_path = sources->credentials_path;
    }
    else
    if (sources->config_file.access_key && sources->config_file.secret_key) {
        from = &sources->config_file;
        from_path = sources->config_path;
    }
    if (from) {
        self->access_key = from->access_key;
        self->secret_key = from->secret_key;
        self->session_token = from->session_token;
        from->access_key = from->secret_key = from->session_token = NULL;
        self->credentials_source = strdup (from_path);
        return 0;
    }
    const char *credentials_path = sources->credentials_path;
    const char *config_path = sources->config_path;
    if (sources->name_explicit && !sources->credentials_file.found
    && !sources->config_file.found)
        snprintf (error, error_size,
                  "s3: AWS profile '%s' not found in %s or %s", sources->name,
                  credentials_path? credentials_path: "~/.aws/credentials",
                  config_path? config_path: "~/.aws/config");
    else
        snprintf (error, error_size,
                  "s3: no credentials: set AWS_ACCESS_KEY_ID and "
                  "AWS_SECRET_ACCESS_KEY, or aws_access_key_id and "
                  "aws_secret_access_key in profile '%s' of %s",
                  sources->name, credentials_path? credentials_path: "~/.aws/credentials");
    return -1;
}

//  Keys: the given pair, then the environment, then the files.  Half a
//  pair is an error rather than a reason to look further: the user
//  meant to set them there.
static int
s_keys_resolve (qn_s3_settings_t *self, s_sources_t *sources, const char *access_key,
                const char *secret_key, const char *session_token,
                char *error, size_t error_size)
{
    const char *env_access = qn_s3_env ("AWS_ACCESS_KEY_ID");
    const char *env_secret = qn_s3_env ("AWS_SECRET_ACCESS_KEY");
    if (access_key || secret_key) {
        if (!access_key || !secret_key) {
            snprintf (error, error_size, "s3: the config gives %s but not %s",
                      access_key? "an access key": "a secret key",
                      access_key? "the secret key": "the access key");
            return -1;
        }
        self->access_key = strdup (access_key);
        self->secret_key = strdup (secret_key);
        if (session_token)
            self->session_token = strdup (session_token);
        self->credentials_source = strdup ("config");
        return 0;
    }
    if (env_access || env_secret) {
        if (!env_access || !env_secret) {
            snprintf (error, error_size, "s3: %s is set but %s is not",
                      env_access? "AWS_ACCESS_KEY_ID": "AWS_SECRET_ACCESS_KEY",
                      env_access? "AWS_SECRET_ACCESS_KEY": "AWS_ACCESS_KEY_ID");
            return -1;
        }
        self->access_key = strdup (env_access);
        self->secret_key = strdup (env_secret);
        if (qn_s3_env ("AWS_SESSION_TOKEN"))
            self->session_token = strdup (qn_s3_env ("AWS_SESSION_TOKEN"));
        self->credentials_source = strdup ("environment");
        return 0;
    }
    return s_keys_from_files (self, sources, error, error_size);
}

//  The keys go to libcurl as user:password and into headers.
static int
s_keys_check (qn_s3_settings_t *self, char *error, size_t error_size)
{
    if (!self->access_key || !self->secret_key || !self->credentials_source) {
        snprintf (error, error_size, "s3: out of memory");
        return -1;
    }
    if (!*self->access_key || !*self->secret_key
    || strchr (self->access_key, ':') || qn_s3_has_control (self->access_key)
    || qn_s3_has_control (self->secret_key)
    || (self->session_token && qn_s3_has_control (self->session_token))) {
        snprintf (error, error_size,
                  "s3: invalid credentials from %s (empty, a ':' in the access key, "
                  "or control characters)", self->credentials_source);
        return -1;
    }
    return 0;
}

static int
s_region_resolve (qn_s3_settings_t *self, s_sources_t *sources, const char *region,
                  char *error, size_t error_size)
{
    if (!region)
        region = qn_s3_env ("AWS_REGION");
    if (!region)
        region = qn_s3_env ("AWS_DEFAULT_REGION");
    if (!region)
        region = sources->config_file.region;
    if (!region)
        region = "us-east-1";
    if (!s_region_valid (region)) {
        snprintf (error, error_size, "s3: invalid region '%.64s'", region);
        return -1;
    }
    self->region = strdup (region);
    return 0;
}

//  After the region, which names AWS's default endpoint.
static int
s_endpoint_resolve (qn_s3_settings_t *self, s_sources_t *sources, const char *endpoint,
                    char *error, size_t error_size)
{
    if (!endpoint)
        endpoint = qn_s3_env ("AWS_ENDPOINT_URL_S3");
    if (!endpoint)
        endpoint = qn_s3_env ("AWS_ENDPOINT_URL");
    if (!endpoint)
        endpoint = sources->config_file.endpoint_url;
    if (endpoint) {
        self->endpoint = s_endpoint_normalize (endpoint);
        if (!self->endpoint) {
            snprintf (error, error_size,
                      "s3: invalid endpoint '%.200s' (want http[s]://host[:port])", endpoint);
            return -1;
        }
    }
    else
    if (self->region)
        self->endpoint = qn_s3_printf ("https://s3.%s.amazonaws.com", self->region);
    return 0;
}

int
qn_s3_settings_resolve (qn_s3_settings_t *self, const char *access_key,
                        const char *secret_key, const char *session_token,
                        const char *region, const char *endpoint,
                        char *error, size_t error_size)
{
    assert (self);
    memset (self, 0, sizeof *self);
    s_sources_t sources = { 0 };
    int rc = s_sources_open (&sources, error, error_size);
    if (rc == 0)
        rc = s_keys_resolve (self, &sources, access_key, secret_key, session_token,
                             error, error_size);
    if (rc == 0)
        rc = s_keys_check (self, error, error_size);
    if (rc == 0)
        rc = s_region_resolve (self, &sources, region, error, error_size);
    if (rc == 0)
        rc = s_endpoint_resolve (self, &sources, endpoint, error, error_size);
    if (rc == 0 && (!self->region || !self->endpoint)) {
        snprintf (error, error_size, "s3: out of memory");
        rc = -1;
    }
    s_sources_clear (&sources);
    if (rc != 0)
        qn_s3_settings_clear (self);
    return rc;
}

void
qn_s3_settings_clear (qn_s3_settings_t *self)
{
    assert (self);
    qn_s3_free_secret (&self->access_key);
    qn_s3_free_secret (&self->secret_key);
    qn_s3_free_secret (&self->session_token);
    free (self->credentials_source);
    free (self->region);
    free (self->endpoint);
    memset (self, 0, sizeof *self);
}
