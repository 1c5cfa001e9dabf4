/*  qn_token - agent join tokens.  See include/qn_token.h. */
#include "qn_token.h"
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

static int
s_valid_key (const char *text, size_t len)
{
    if (len != QN_Z85_KEY_SIZE)
        return 0;
    char copy [QN_Z85_KEY_SIZE + 1];
    memcpy (copy, text, QN_Z85_KEY_SIZE);
    copy [QN_Z85_KEY_SIZE] = 0;
    uint8_t binary [32];
    //  zmq_z85_decode checks the alphabet and the length.
    return zmq_z85_decode (binary, copy) != NULL;
}

static int
s_valid_endpoint (const char *text, size_t len)
{
    if (len == 0)
        return 1;
    if (len > QN_TOKEN_ENDPOINT_MAX)
        return 0;
    if (strncmp (text, "tcp://", 6) && strncmp (text, "ipc://", 6))
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!isgraph ((unsigned char) text [i]))
            return 0;
    return 1;
}

int
qn_token_parse (const char *text, qn_token_t *token, const char **error_p)
{
    const char *dummy;
    if (!error_p)
        error_p = &dummy;
    memset (token, 0, sizeof *token);
    if (!text) {
        *error_p = "no token given";
        return -1;
    }
    while (isspace ((unsigned char) *text))
        text++;
    size_t len = strlen (text);
    while (len && isspace ((unsigned char) text [len - 1]))
        len--;
    size_t prefix = strlen (QN_TOKEN_PREFIX);
    if (len < prefix || strncmp (text, QN_TOKEN_PREFIX, prefix)) {
        *error_p = "not a qanat join token (it should start with " QN_TOKEN_PREFIX ")";
        return -1;
    }
    text += prefix;
    len -= prefix;
    if (len < 2 * QN_Z85_KEY_SIZE) {
        *error_p = "join token too short: it was cut when copied?";
        return -1;
    }
    if (!s_valid_key (text, QN_Z85_KEY_SIZE)) {
        *error_p = "the coordinator key in the join token is not valid";
        return -1;
    }
    if (!s_valid_key (text + QN_Z85_KEY_SIZE, QN_Z85_KEY_SIZE)) {
        *error_p = "the secret key in the join token is not valid";
        return -1;
    }
    const char *endpoint = text + 2 * QN_Z85_KEY_SIZE;
    size_t endpoint_len = len - 2 * QN_Z85_KEY_SIZE;
    if (!s_valid_endpoint (endpoint, endpoint_len)) {
        *error_p = "the endpoint in the join token is not a tcp:// or ipc:// address";
        return -1;
    }
    memcpy (token->coordinator_key, text, QN_Z85_KEY_SIZE);
    memcpy (token->secret_key, text + QN_Z85_KEY_SIZE, QN_Z85_KEY_SIZE);
    memcpy (token->endpoint, endpoint, endpoint_len);
    if (zmq_curve_public (token->public_key, token->secret_key) != 0) {
        memset (token, 0, sizeof *token);
        *error_p = "cannot derive the public key of the join token";
        return -1;
    }
    return 0;
}

char *
qn_token_format (const char *coordinator_key, const char *secret_key, const char *endpoint)
{
    if (!coordinator_key || !secret_key
    ||  !s_valid_key (coordinator_key, strlen (coordinator_key))
    ||  !s_valid_key (secret_key, strlen (secret_key)))
        return NULL;
    if (!endpoint)
        endpoint = "";
    if (!s_valid_endpoint (endpoint, strlen (endpoint)))
        return NULL;
    size_t size = strlen (QN_TOKEN_PREFIX) + 2 * QN_Z85_KEY_SIZE + strlen (endpoint) + 1;
    char *token = (char *) malloc (size);
    if (token)
        snprintf (token, size, "%s%s%s%s", QN_TOKEN_PREFIX, coordinator_key, secret_key, endpoint);
    return token;
}
