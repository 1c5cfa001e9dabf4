/*  qn_s3_settings - where an S3 client's credentials, region and endpoint
    come from.

    An S3 client takes what its caller gives and fills the rest from the
    usual AWS places, the way the AWS CLI does (the order is in qn_s3.h):
    the environment, then the profile $AWS_PROFILE (default "default") in
    the shared credentials file and in the config file.  This class does
    that resolution and checks the result, so qn_s3 only talks HTTP; it
    reads files and the environment but holds no connection, which lets
    tests drive it with a fake HOME and AWS_* variables.

    The AWS files are INI files read with the AWS CLI's rules: later
    values win, indented lines continue a nested setting and are skipped,
    values with control characters are refused.  Secrets are wiped from
    memory when freed.
*/
#ifndef qn_s3_settings_H_INCLUDED
#define qn_s3_settings_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

//  The resolved settings; fields are malloc'ed.
typedef struct {
    char *access_key;           //  no ':' (libcurl's user:password split)
    char *secret_key;
    char *session_token;        //  NULL = none
    char *credentials_source;   //  "config", "environment" or the file's path
    char *region;               //  a-z 0-9 '-' only: it goes into the SigV4 scope
    char *endpoint;             //  scheme://host[:port][/prefix], no trailing '/'
} qn_s3_settings_t;

//  Resolves into self (which it zeroes first) from the given values,
//  each NULL when not given: the keys come as a pair (with an optional
//  token), else from the environment, else from the profile in the
//  credentials file, else from the profile in the config file; region
//  and endpoint come from the environment, then the config file, else
//  us-east-1 and https://s3.<region>.amazonaws.com.  Returns 0, or -1
//  with the reason in error and self cleared.
int
    qn_s3_settings_resolve (qn_s3_settings_t *self, const char *access_key,
                            const char *secret_key, const char *session_token,
                            const char *region, const char *endpoint,
                            char *error, size_t error_size);

//  Frees the fields (wiping the secrets) and zeroes self.
void
    qn_s3_settings_clear (qn_s3_settings_t *self);

//  Small helpers the S3 client shares with its settings:
//  a malloc'd formatted string, or NULL
char *
    qn_s3_printf (const char *format, ...) __attribute__ ((format (printf, 1, 2)));

//  Wipes and frees *text_p, and nulls it
void
    qn_s3_free_secret (char **text_p);

//  True when text has a byte that must not go into a header or a URL
bool
    qn_s3_has_control (const char *text);

//  The environment variable, or NULL when unset or empty
const char *
    qn_s3_env (const char *name);

#ifdef __cplusplus
}
#endif

#endif
