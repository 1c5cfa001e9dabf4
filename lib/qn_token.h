/*  qn_token - agent join tokens.

    A join token carries everything an agent needs to enrol, and nothing
    it could use against anyone else:

        qnj1-<coordinator public key><token secret key>[endpoint]

    Both keys are CURVE keys in Z85 (40 characters each; Z85 uses '.',
    ':' and '@', so the fields are fixed-width rather than separated).
    The coordinator key pins the server: the agent trusts no one else, no
    trust on first use.  The token key is a short-lived client key the
    coordinator admitted for enrolment only; with it the agent presents the
    public half of its own key pair, made on its own machine.
*/
#ifndef QN_TOKEN_H_INCLUDED
#define QN_TOKEN_H_INCLUDED

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define QN_TOKEN_PREFIX     "qnj1-"
#define QN_Z85_KEY_SIZE     40
#define QN_TOKEN_ENDPOINT_MAX 256

typedef struct {
    char coordinator_key [QN_Z85_KEY_SIZE + 1];  //  the coordinator's public key
    char secret_key [QN_Z85_KEY_SIZE + 1];       //  the token's secret key
    char public_key [QN_Z85_KEY_SIZE + 1];       //  derived from secret_key
    char endpoint [QN_TOKEN_ENDPOINT_MAX + 1];   //  agent endpoint, or ""
} qn_token_t;

//  Parses text (surrounding whitespace allowed).  Returns 0, or -1 with
//  *error_p a static message saying what is wrong.
int
    qn_token_parse (const char *text, qn_token_t *token, const char **error_p);

//  Formats a token; endpoint may be NULL.  Returns a malloc'd string, or
//  NULL if a key is not 40 characters of Z85 or the endpoint is invalid.
char *
    qn_token_format (const char *coordinator_key, const char *secret_key, const char *endpoint);

#ifdef __cplusplus
}
#endif
#endif
