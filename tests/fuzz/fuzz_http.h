/*  fuzz_http - one fuzz input through qn_http_api_decode (the HTTP API's
    request decoding, without sockets), shared by the libFuzzer target
    (fuzz_http.c) and the regression test (tests/unit/test_fuzz_regressions.c).

    An input is "<method byte><path>\n<query>\n<body>": the first byte
    picks GET, POST, DELETE, PUT or HEAD; the query is k=v pairs joined
    by '&' (as given, not %-decoded).  Invariants: an accepted request has
    a route, a success status and (but for DELETE /session) an engine
    request that encodes; a refused one has a 4xx status, a JSON error
    object with a code and message, and no request left behind.  Returns
    1 when accepted, 0 when refused, -1 on a broken invariant.
*/
#ifndef FUZZ_HTTP_H_INCLUDED
#define FUZZ_HTTP_H_INCLUDED

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "qn_http_api.h"

typedef struct {
    char *keys [16];
    char *values [16];
    size_t count;
} fz_query_t;

static inline const char *
fz_http_query (void *arg, const char *key)
{
    fz_query_t *query = (fz_query_t *) arg;
    for (size_t i = 0; i < query->count; i++)
        if (strcmp (query->keys [i], key) == 0)
            return query->values [i];
    return NULL;
}

//  Splits text (modified) into at most 16 pairs
static inline void
fz_http_split_query (char *text, fz_query_t *query)
{
    query->count = 0;
    char *cursor = text;
    while (cursor && *cursor && query->count < 16) {
        char *amp = strchr (cursor, '&');
        if (amp)
            *amp = 0;
        char *equal = strchr (cursor, '=');
        if (equal) {
            *equal = 0;
            query->keys [query->count] = cursor;
            query->values [query->count++] = equal + 1;
        }
        cursor = amp? amp + 1: NULL;
    }
}

static inline int
fz_http_one (const uint8_t *data, size_t size)
{
    static const char *methods [] = { "GET", "POST", "DELETE", "PUT", "HEAD" };
    if (size == 0)
        return 0;
    const char *method = methods [data [0] % 5];
    //  The path and query as C strings, the body as exact bytes
    char *text = (char *) malloc (size);
    memcpy (text, data + 1, size - 1);
    text [size - 1] = 0;
    char *path = text;
    char *query_text = strchr (path, '\n');
    char *body = NULL;
    size_t body_size = 0;
    if (query_text) {
        *query_text++ = 0;
        char *end = strchr (query_text, '\n');
        if (end) {
            *end = 0;
            size_t offset = (size_t) (end + 1 - text);
            body_size = size - 1 - offset;
            body = (char *) malloc (body_size + 1);
            memcpy (body, data + 1 + offset, body_size);
        }
    }
    fz_query_t query;
    fz_http_split_query (query_text? query_text: (char *) "", &query);
    Qanat__Request request;
    qn_http_route_t route;
    json_t *error = NULL;
    int status = qn_http_api_decode (method, path, fz_http_query, &query, body, body_size,
                                     &request, &route, &error);
    int result = status == 0? 1: 0;
    if (status == 0) {
        if (route.id == QN_HTTP_ROUTE_NONE || error
        ||  (route.status != 200 && route.status != 201 && route.status != 202
             && route.status != 204))
            result = -1;
        if (request.body_case == QANAT__REQUEST__BODY__NOT_SET
        &&  route.id != QN_HTTP_ROUTE_SESSION_DELETE)
            result = -1;
        if (request.body_case != QANAT__REQUEST__BODY__NOT_SET) {
            Qanat__Envelope env = QANAT__ENVELOPE__INIT;
            env.body_case = QANAT__ENVELOPE__BODY_REQUEST;
            env.request = &request;
            zframe_t *frame = qn_msg_encode (&env);
            if (!frame)
                result = -1;
            zframe_destroy (&frame);
        }
        qn_http_api_request_reset (&request);
    }
    else {
        json_t *inner = error? json_object_get (error, "error"): NULL;
        if (status < 400 || status > 499 || !inner
        ||  !json_is_string (json_object_get (inner, "code"))
        ||  !json_is_string (json_object_get (inner, "message"))
        ||  request.body_case != QANAT__REQUEST__BODY__NOT_SET)
            result = -1;
        json_decref (error);
    }
    free (body);
    free (text);
    return result;
}

#endif
