/*  qn_linebuf - splits a byte stream into lines.  See qn_linebuf.h. */
#include "qn_linebuf.h"
#include <assert.h>
#include <stdlib.h>
#include <string.h>

struct _qn_linebuf_t {
    char *buf;              //  chunk_size bytes
    size_t chunk_size;
    size_t used;
};

qn_linebuf_t *
qn_linebuf_new (size_t chunk_size)
{
    qn_linebuf_t *self = (qn_linebuf_t *) calloc (1, sizeof (qn_linebuf_t));
    if (!self)
        return NULL;
    self->chunk_size = chunk_size? chunk_size: QN_LINEBUF_CHUNK;
    self->buf = (char *) malloc (self->chunk_size);
    if (!self->buf) {
        free (self);
        return NULL;
    }
    return self;
}

void
qn_linebuf_destroy (qn_linebuf_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        free ((*self_p)->buf);
        free (*self_p);
        *self_p = NULL;
    }
}

//  A full buffer is only known to be a partial piece once a byte other
//  than '\n' follows it; that is why we wait for the next byte instead of
//  emitting as soon as the buffer fills, so that a line of exactly
//  chunk_size bytes comes out whole.
void
qn_linebuf_feed (qn_linebuf_t *self, const void *data, size_t size,
                 qn_linebuf_fn *fn, void *arg)
{
    assert (self);
    assert (fn);
    const char *cur = (const char *) data;
    const char *end = cur + size;
    while (cur < end) {
        if (self->used == self->chunk_size) {
            if (*cur == '\n') {
                fn (self->buf, self->used, false, arg);
                self->used = 0;
                cur++;
                continue;
            }
            fn (self->buf, self->used, true, arg);
            self->used = 0;
        }
        const char *nl = (const char *) memchr (cur, '\n', (size_t) (end - cur));
        size_t span = nl? (size_t) (nl - cur): (size_t) (end - cur);
        size_t room = self->chunk_size - self->used;
        if (nl && span <= room) {
            //  Line completes within this chunk: avoid a copy when nothing
            //  is buffered yet
            if (self->used == 0)
                fn (cur, span, false, arg);
            else {
                memcpy (self->buf + self->used, cur, span);
                fn (self->buf, self->used + span, false, arg);
            }
            self->used = 0;
            cur = nl + 1;
        }
        else {
            size_t take = span < room? span: room;
            memcpy (self->buf + self->used, cur, take);
            self->used += take;
            cur += take;
        }
    }
}

int
qn_linebuf_flush (qn_linebuf_t *self, qn_linebuf_fn *fn, void *arg)
{
    assert (self);
    assert (fn);
    if (self->used == 0)
        return 0;
    fn (self->buf, self->used, false, arg);
    self->used = 0;
    return 1;
}

size_t
qn_linebuf_pending (qn_linebuf_t *self)
{
    assert (self);
    return self->used;
}
