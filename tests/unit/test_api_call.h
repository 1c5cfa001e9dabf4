/*  test_api_call - handing one request to qn_api on a test engine and
    keeping its one reply, for the unit tests of the request handlers.
    Include after cmocka.h.
*/
#ifndef TEST_API_CALL_H_INCLUDED
#define TEST_API_CALL_H_INCLUDED

#include "qn_api.h"

//  The replies one call gave, copied out of the borrowed message.
typedef struct {
    size_t count;
    Qanat__Reply *last;
} test_api_replies_t;

static inline void
test_api_capture (qn_api_call_t *call, Qanat__Reply *reply)
{
    test_api_replies_t *replies = (test_api_replies_t *) call->sink;
    size_t size = qanat__reply__get_packed_size (reply);
    uint8_t *packed = (uint8_t *) malloc (size? size: 1);
    assert_non_null (packed);
    qanat__reply__pack (reply, packed);
    if (replies->last)
        qanat__reply__free_unpacked (replies->last, NULL);
    replies->last = qanat__reply__unpack (NULL, size, packed);
    assert_non_null (replies->last);
    free (packed);
    replies->count++;
}

//  Handles request as principal (NULL: a local admin) and returns its one
//  reply, which repeats the request's id; free it with
//  qanat__reply__free_unpacked.
static inline Qanat__Reply *
test_api_call (qn_coordinator_t *engine, const Qanat__Principal *principal,
               Qanat__Request *request)
{
    test_api_replies_t replies = { 0, NULL };
    qn_api_call_t call = { engine, principal, test_api_capture, &replies };
    qn_api_handle (&call, request);
    assert_int_equal (replies.count, 1);
    assert_int_equal (replies.last->id, request->id);
    return replies.last;
}

#endif
