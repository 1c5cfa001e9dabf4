/*  qn_s3gc - deletes objects from S3 buckets off the coordinator's loop.

    The coordinator counts references to the artifacts kept in S3 stores;
    an object nobody references any more is handed to this class, which
    deletes it from its bucket on a worker thread (an S3 request blocks
    for as long as the network makes it) and reports back on the loop.

    One worker takes the requests in the order they were queued, so the
    callbacks come in that order too.  It keeps one S3 client per store
    (bucket, endpoint, region, addressing style) it has met, up to
    QN_S3GC_CLIENTS_MAX of them, so connections are reused.  Credentials,
    and the endpoint and region a store leaves empty, come from the
    coordinator's environment and ~/.aws, as qn_s3 resolves them.

    Everything but the worker runs on the loop's thread; callbacks come
    from the loop.
*/
#ifndef QN_S3GC_H_INCLUDED
#define QN_S3GC_H_INCLUDED

#include <czmq.h>
#include "qanat.pb-c.h"

#ifdef __cplusplus
extern "C" {
#endif

//  Requests accepted and not yet reported, at most
#define QN_S3GC_QUEUE_MAX    1000
//  S3 clients kept at once (the least recently used goes first)
#define QN_S3GC_CLIENTS_MAX  16
//  Connect, stall and total limit of one DELETE, in seconds
#define QN_S3GC_TIMEOUT_S    30

typedef struct _qn_s3gc_t qn_s3gc_t;

//  Called on the loop for each request, in order: status 0 = the object
//  is gone from its bucket (deleted, or was not there), -1 = it could not
//  be deleted (error says why: no credentials, 403, unreachable...).  id
//  and error are valid until the callback returns.  The callback may
//  queue more requests, and may destroy the instance (no callback
//  follows then).
typedef void (qn_s3gc_done_fn) (void *arg, const char *id, int status, const char *error);

//  Starts the worker.  NULL on failure (no thread, no pipe).
qn_s3gc_t *
    qn_s3gc_new (zloop_t *loop, qn_s3gc_done_fn *done, void *arg);

//  Stops the worker: waits for the request in flight (at most about
//  QN_S3GC_TIMEOUT_S seconds against a server that does not answer) and
//  drops the others without callbacks.  Idempotent, nulls the pointer.
void
    qn_s3gc_destroy (qn_s3gc_t **self_p);

//  Queues the deletion of key from store (kind "s3", bucket, endpoint,
//  region, path_style; its prefix is not used: key is the whole object
//  key in the bucket).  id is opaque and given back to the callback.
//  Copies everything.  Returns 0, or -1 with no callback to follow and
//  errno set: EINVAL for a NULL id, a store that is NULL, not of kind
//  "s3" or without a bucket, or a key qn_s3_key_check refuses; EAGAIN
//  when QN_S3GC_QUEUE_MAX requests are pending already; ENOMEM.
int
    qn_s3gc_delete (qn_s3gc_t *self, const char *id, const Qanat__ArtifactStore *store,
                    const char *key);

//  Requests accepted whose callback has not run yet (queued, in flight,
//  or done and about to be reported).
size_t
    qn_s3gc_pending (qn_s3gc_t *self);

#ifdef __cplusplus
}
#endif
#endif
