/*  qn_linebuf - splits a byte stream into lines for the log.

    Bytes go in as they come off a pipe, in pieces of any size; complete
    lines come out through a callback, without their '\n'.  Nothing else
    is interpreted: a '\r' before the '\n', NUL bytes and invalid UTF-8 are
    passed through untouched.

    A line longer than the chunk size (8 KiB by default) comes out in
    chunk-size pieces, each marked partial, followed by its last piece
    (1 to chunk-size bytes) marked not partial.  A line of exactly the
    chunk size is one piece.  qn_linebuf_flush hands out a trailing line
    that never got its '\n' (call it at end of stream).
*/
#ifndef QN_LINEBUF_H_INCLUDED
#define QN_LINEBUF_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define QN_LINEBUF_CHUNK  8192

typedef struct _qn_linebuf_t qn_linebuf_t;

//  Receives one line or one piece of a long line.  data is not
//  NUL-terminated and is only valid during the call.
typedef void (qn_linebuf_fn) (const char *data, size_t size, bool partial, void *arg);

//  Creates a splitter; chunk_size 0 means QN_LINEBUF_CHUNK.  NULL on failure.
qn_linebuf_t *
    qn_linebuf_new (size_t chunk_size);

//  Destroys the splitter and nulls the pointer.  Idempotent.
void
    qn_linebuf_destroy (qn_linebuf_t **self_p);

//  Feeds size bytes; calls fn for every line or piece they complete, in
//  order.
void
    qn_linebuf_feed (qn_linebuf_t *self, const void *data, size_t size,
                     qn_linebuf_fn *fn, void *arg);

//  Hands out the buffered unterminated line, if any, as a last (not
//  partial) piece.  Returns 1 if it called fn, 0 if nothing was pending.
int
    qn_linebuf_flush (qn_linebuf_t *self, qn_linebuf_fn *fn, void *arg);

//  Bytes buffered, waiting for the end of their line.
size_t
    qn_linebuf_pending (qn_linebuf_t *self);

#ifdef __cplusplus
}
#endif
#endif
