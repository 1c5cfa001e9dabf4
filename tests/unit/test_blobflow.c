/*  Unit tests for qn_blobflow: the receiver's decisions over a real blob
    store, and the sender's answer to one want, each fed by hand. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "qn_blobflow.h"

#define MAX_SENT 64

//  One message the send callback saw, copied.
typedef struct {
    Qanat__Envelope__BodyCase kind;
    char hash [QN_BLOB_HASH_HEX + 1];
    uint64_t offset;
    uint32_t window;            //  wants
    bool complete;
    char error [256];
    uint8_t *data;              //  chunks
    size_t size;
    bool sha_ok;                //  the chunk's sha256 is that of its data
} sent_t;

typedef struct {
    char dir [64];
    qn_blobstore_t *store;
    qn_blobflow_tally_t tally;
    sent_t sent [MAX_SENT];
    size_t count;
    int fail_after;             //  sends that succeed before they all fail; -1 never
    //  The blob the read callback serves
    const uint8_t *blob;
    uint64_t blob_size;
    uint64_t fail_read_at;      //  UINT64_MAX: never
} fixture_t;

// ---------------------------------------------------------------------
// Helpers

static int
s_send (void *arg, Qanat__Envelope *envelope)
{
    fixture_t *f = (fixture_t *) arg;
    if (f->fail_after >= 0 && (int) f->count >= f->fail_after)
        return -1;
    assert_true (f->count < MAX_SENT);
    sent_t *sent = &f->sent [f->count++];
    memset (sent, 0, sizeof *sent);
    sent->kind = envelope->body_case;
    if (envelope->body_case == QANAT__ENVELOPE__BODY_BLOB_WANT) {
        Qanat__BlobWant *want = envelope->blob_want;
        snprintf (sent->hash, sizeof sent->hash, "%s", want->hash);
        sent->offset = want->offset;
        sent->window = want->window;
        sent->complete = want->complete;
        if (want->error)
            snprintf (sent->error, sizeof sent->error, "%s", want->error);
    }
    else {
        assert_int_equal (envelope->body_case, QANAT__ENVELOPE__BODY_BLOB_CHUNK);
        Qanat__BlobChunk *chunk = envelope->blob_chunk;
        snprintf (sent->hash, sizeof sent->hash, "%s", chunk->hash);
        sent->offset = chunk->offset;
        if (chunk->error)
            snprintf (sent->error, sizeof sent->error, "%s", chunk->error);
        sent->size = chunk->data.len;
        if (sent->size) {
            sent->data = (uint8_t *) malloc (sent->size);
            assert_non_null (sent->data);
            memcpy (sent->data, chunk->data.data, sent->size);
            uint8_t digest [32];
            qn_blobstore_hash_chunk (chunk->data.data, chunk->data.len, digest);
            sent->sha_ok = chunk->sha256.len == 32
                        && memcmp (digest, chunk->sha256.data, 32) == 0;
        }
    }
    return 0;
}

static void
s_forget_sent (fixture_t *f)
{
    for (size_t i = 0; i < f->count; i++)
        free (f->sent [i].data);
    f->count = 0;
}

//  Reads the fixture's blob; a short read at its end.
static ssize_t
s_read (void *arg, const char *hash, uint64_t offset, uint8_t *buffer, size_t size,
        char *error, size_t error_size)
{
    (void) hash;
    fixture_t *f = (fixture_t *) arg;
    if (offset <= f->fail_read_at && f->fail_read_at < offset + size) {
        snprintf (error, error_size, "disk on fire at %llu", (unsigned long long) offset);
        return -1;
    }
    if (offset >= f->blob_size)
        return 0;
    if (size > f->blob_size - offset)
        size = (size_t) (f->blob_size - offset);
    memcpy (buffer, f->blob + offset, size);
    return (ssize_t) size;
}

static int
s_remove_one (const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) st; (void) flag; (void) ftw;
    remove (path);
    return 0;
}

static int
setup (void **state)
{
    fixture_t *f = (fixture_t *) calloc (1, sizeof (fixture_t));
    if (!f)
        return -1;
    strcpy (f->dir, "/tmp/qn_blobflow_XXXXXX");
    if (!mkdtemp (f->dir))
        return -1;
    f->store = qn_blobstore_new (f->dir);
    if (!f->store)
        return -1;
    f->fail_after = -1;
    f->fail_read_at = UINT64_MAX;
    *state = f;
    return 0;
}

static int
teardown (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    s_forget_sent (f);
    qn_blobstore_destroy (&f->store);
    nftw (f->dir, s_remove_one, 16, FTW_DEPTH | FTW_PHYS);
    free (f);
    return 0;
}

//  Deterministic content that differs with seed.
static uint8_t *
s_content (size_t size, uint32_t seed)
{
    uint8_t *data = (uint8_t *) malloc (size? size: 1);
    assert_non_null (data);
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < size; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        data [i] = (uint8_t) x;
    }
    return data;
}

static void
s_hash (const uint8_t *data, size_t size, char hash [QN_BLOB_HASH_HEX + 1])
{
    uint8_t digest [32];
    assert_int_equal (qn_blobstore_hash_chunk (data, size, digest), 0);
    for (int i = 0; i < 32; i++)
        snprintf (hash + 2 * i, 3, "%02x", digest [i]);
}

//  A chunk of data [offset, offset + size) with its (right) sha256 in
//  digest, which must outlive it.
static Qanat__BlobChunk
s_chunk (const char *hash, const uint8_t *data, uint64_t offset, size_t size,
         uint8_t digest [32])
{
    Qanat__BlobChunk chunk = QANAT__BLOB_CHUNK__INIT;
    chunk.hash = (char *) hash;
    chunk.offset = offset;
    chunk.data.data = (uint8_t *) data + offset;
    chunk.data.len = size;
    qn_blobstore_hash_chunk (data + offset, size, digest);
    chunk.sha256.data = digest;
    chunk.sha256.len = 32;
    return chunk;
}

static qn_blobflow_action_t
s_give (qn_blobflow_receiver_t *receiver, fixture_t *f, const char *hash,
        const uint8_t *data, uint64_t offset, size_t size, qn_blobflow_want_t *want)
{
    uint8_t digest [32];
    Qanat__BlobChunk chunk = s_chunk (hash, data, offset, size, digest);
    char error [256];
    return qn_blobflow_receive (receiver, f->store, &chunk, want, NULL, error, sizeof error);
}

// ---------------------------------------------------------------------
// Receiver

//  A blob of several windows, sent in order: the wants cover every byte
//  exactly once, the next want goes out when half a window is used, no
//  more than a window is ever asked ahead, and the blob ends verified.
static void
test_receive_in_order (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    size_t size = 5 * QN_BLOBFLOW_WINDOW + 12345;
    uint8_t *data = s_content (size, 1);
    char hash [QN_BLOB_HASH_HEX + 1];
    s_hash (data, size, hash);

    qn_blobflow_receiver_t receiver;
    qn_blobflow_receiver_init (&receiver, hash, size, &f->tally);
    qn_blobflow_want_t want = { 99, 99 };
    char error [256] = "";
    assert_int_equal (qn_blobflow_resume (&receiver, f->store, &want, error, sizeof error),
                      QN_BLOBFLOW_WANT);
    assert_int_equal (want.offset, 0);
    assert_int_equal (want.window, QN_BLOBFLOW_WINDOW);

    uint64_t asked = want.window;           //  end of all wants so far
    uint64_t wants = 1;
    qn_blobflow_action_t action = QN_BLOBFLOW_WRITTEN;
    for (uint64_t at = 0; at < size; ) {
        size_t chunk = size - at < QN_BLOBFLOW_CHUNK? size - at: QN_BLOBFLOW_CHUNK;
        size_t written = 0;
        uint8_t digest [32];
        Qanat__BlobChunk message = s_chunk (hash, data, at, chunk, digest);
        action = qn_blobflow_receive (&receiver, f->store, &message, &want, &written,
                                      error, sizeof error);
        assert_int_equal (written, chunk);
        at += chunk;
        assert_int_equal (receiver.position, at);
        if (action == QN_BLOBFLOW_WANT_MORE) {
            //  Contiguous with the previous ask, up to one window past us.
            assert_int_equal (want.offset, asked);
            assert_true (want.window > 0);
            assert_true (want.offset + want.window <= at + QN_BLOBFLOW_WINDOW);
            assert_true (asked - at <= QN_BLOBFLOW_WINDOW / 2);
            asked = want.offset + want.window;
            wants++;
        }
        else
        if (at < size) {
            //  Not asking yet: more than half a window still in flight,
            //  or all of the blob asked for.
            assert_int_equal (action, QN_BLOBFLOW_WRITTEN);
            assert_true (asked - at > QN_BLOBFLOW_WINDOW / 2 || asked == size);
        }
        assert_true (asked <= size);
        assert_true (asked >= at);
    }
    assert_int_equal (action, QN_BLOBFLOW_COMPLETE);
    assert_int_equal (asked, size);
    assert_true (wants > 5);
    assert_true (qn_blobstore_has (f->store, hash));
    assert_int_equal (f->tally.bytes, size);
    assert_int_equal (f->tally.dropped, 0);
    assert_int_equal (f->tally.rejected, 0);
    assert_int_equal (f->tally.restarts, 0);

    //  Taken up again, it is there already.
    qn_blobflow_receiver_init (&receiver, hash, size, &f->tally);
    assert_int_equal (qn_blobflow_resume (&receiver, f->store, &want, error, sizeof error),
                      QN_BLOBFLOW_PRESENT);
    free (data);
}

//  Malformed, foreign and duplicate chunks change nothing; a gap is
//  re-fetched once, and its stale followers dropped; a bad sha256 is
//  always re-fetched.
static void
test_receive_rejects (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    size_t size = 3 * QN_BLOBFLOW_CHUNK + 100;
    uint8_t *data = s_content (size, 2);
    char hash [QN_BLOB_HASH_HEX + 1];
    s_hash (data, size, hash);
    qn_blobflow_receiver_t receiver;
    qn_blobflow_receiver_init (&receiver, hash, size, &f->tally);
    qn_blobflow_want_t want;
    char error [256];
    assert_int_equal (qn_blobflow_resume (&receiver, f->store, &want, error, sizeof error),
                      QN_BLOBFLOW_WANT);
    assert_int_equal (want.window, size);
    assert_int_equal (s_give (&receiver, f, hash, data, 0, QN_BLOBFLOW_CHUNK, &want),
                      QN_BLOBFLOW_WRITTEN);

    //  Hostile or stale: dropped, counted, the position unchanged.
    uint8_t digest [32];
    Qanat__BlobChunk chunk = s_chunk (hash, data, QN_BLOBFLOW_CHUNK, 10, digest);
    size_t written = 1;
    assert_int_equal (qn_blobflow_receive (&receiver, f->store, NULL, &want, &written,
                                           error, sizeof error), QN_BLOBFLOW_DROPPED);
    assert_int_equal (written, 0);
    chunk.hash = NULL;
    assert_int_equal (qn_blobflow_receive (&receiver, f->store, &chunk, &want, NULL,
                                           error, sizeof error), QN_BLOBFLOW_DROPPED);
    char other [QN_BLOB_HASH_HEX + 1];
    memcpy (other, hash, sizeof other);
    other [0] = other [0] == 'a'? 'b': 'a';
    chunk.hash = other;
    assert_int_equal (qn_blobflow_receive (&receiver, f->store, &chunk, &want, NULL,
                                           error, sizeof error), QN_BLOBFLOW_DROPPED);
    chunk.hash = hash;
    chunk.data.len = 0;
    assert_int_equal (qn_blobflow_receive (&receiver, f->store, &chunk, &want, NULL,
                                           error, sizeof error), QN_BLOBFLOW_DROPPED);
    chunk.data.len = QN_BLOBFLOW_CHUNK + 1;
    assert_int_equal (qn_blobflow_receive (&receiver, f->store, &chunk, &want, NULL,
                                           error, sizeof error), QN_BLOBFLOW_DROPPED);
    chunk.data.len = 10;
    chunk.data.data = NULL;
    assert_int_equal (qn_blobflow_receive (&receiver, f->store, &chunk, &want, NULL,
                                           error, sizeof error), QN_BLOBFLOW_DROPPED);
    chunk = s_chunk (hash, data, size - 10, 10, digest);
    chunk.offset = size - 5;                //  runs past the end
    assert_int_equal (qn_blobflow_receive (&receiver, f->store, &chunk, &want, NULL,
                                           error, sizeof error), QN_BLOBFLOW_DROPPED);
    chunk.offset = UINT64_MAX;
    assert_int_equal (qn_blobflow_receive (&receiver, f->store, &chunk, &want, NULL,
                                           error, sizeof error), QN_BLOBFLOW_DROPPED);
    //  A duplicate of what we hold.
    assert_int_equal (s_give (&receiver, f, hash, data, 0, QN_BLOBFLOW_CHUNK, &want),
                      QN_BLOBFLOW_DROPPED);
    assert_int_equal (f->tally.dropped, 9);
    assert_int_equal (receiver.position, QN_BLOBFLOW_CHUNK);
    assert_int_equal (f->tally.rejected, 0);

    //  A gap: asked again from the position, once.
    want.offset = want.window = 0;
    assert_int_equal (s_give (&receiver, f, hash, data, 2 * QN_BLOBFLOW_CHUNK,
                              QN_BLOBFLOW_CHUNK, &want), QN_BLOBFLOW_REFETCH);
    assert_int_equal (want.offset, QN_BLOBFLOW_CHUNK);
    assert_int_equal (want.window, size - QN_BLOBFLOW_CHUNK);
    assert_true (receiver.refetching);
    assert_int_equal (f->tally.rejected, 1);
    assert_int_equal (s_give (&receiver, f, hash, data, 3 * QN_BLOBFLOW_CHUNK, 100, &want),
                      QN_BLOBFLOW_DROPPED);
    assert_int_equal (f->tally.rejected, 1);
    assert_int_equal (f->tally.dropped, 10);

    //  A bad sha256 is re-fetched even while re-fetching.
    chunk = s_chunk (hash, data, QN_BLOBFLOW_CHUNK, QN_BLOBFLOW_CHUNK, digest);
    digest [0] ^= 1;
    assert_int_equal (qn_blobflow_receive (&receiver, f->store, &chunk, &want, NULL,
                                           error, sizeof error), QN_BLOBFLOW_REFETCH);
    chunk.sha256.len = 31;
    assert_int_equal (qn_blobflow_receive (&receiver, f->store, &chunk, &want, NULL,
                                           error, sizeof error), QN_BLOBFLOW_REFETCH);
    assert_int_equal (f->tally.rejected, 3);
    assert_int_equal (receiver.position, QN_BLOBFLOW_CHUNK);
    assert_int_equal (qn_blobstore_partial (f->store, hash), QN_BLOBFLOW_CHUNK);

    //  The re-fetched chunk goes in, and the rest to the end.
    assert_int_equal (s_give (&receiver, f, hash, data, QN_BLOBFLOW_CHUNK,
                              QN_BLOBFLOW_CHUNK, &want), QN_BLOBFLOW_WRITTEN);
    assert_false (receiver.refetching);
    assert_int_equal (s_give (&receiver, f, hash, data, 2 * QN_BLOBFLOW_CHUNK,
                              QN_BLOBFLOW_CHUNK, &want), QN_BLOBFLOW_WRITTEN);
    assert_int_equal (s_give (&receiver, f, hash, data, 3 * QN_BLOBFLOW_CHUNK, 100, &want),
                      QN_BLOBFLOW_COMPLETE);
    assert_int_equal (f->tally.bytes, size);
    assert_true (qn_blobstore_has (f->store, hash));

    //  A stall: asked again from the position, not counted as rejected.
    qn_blobflow_receiver_init (&receiver, hash, size, NULL);
    receiver.position = 7;
    qn_blobflow_refetch (&receiver, &want);
    assert_true (receiver.refetching);
    assert_int_equal (want.offset, 7);
    assert_int_equal (want.window, size - 7);
    assert_int_equal (f->tally.rejected, 3);
    free (data);
}

//  Chunks that are each right but make another blob: the whole hash
//  fails, the transfer starts again from 0, and gives up after
//  QN_BLOBFLOW_MAX_FAILURES.
static void
test_receive_mismatch (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    size_t size = QN_BLOBFLOW_CHUNK + 1000;
    uint8_t *data = s_content (size, 3);
    uint8_t *wrong = s_content (size, 4);
    char hash [QN_BLOB_HASH_HEX + 1];
    s_hash (data, size, hash);
    qn_blobflow_receiver_t receiver;
    qn_blobflow_receiver_init (&receiver, hash, size, &f->tally);
    qn_blobflow_want_t want;
    char error [256] = "";
    assert_int_equal (qn_blobflow_resume (&receiver, f->store, &want, error, sizeof error),
                      QN_BLOBFLOW_WANT);
    for (int round = 1; round <= QN_BLOBFLOW_MAX_FAILURES; round++) {
        assert_int_equal (s_give (&receiver, f, hash, wrong, 0, QN_BLOBFLOW_CHUNK, &want),
                          QN_BLOBFLOW_WRITTEN);
        size_t written = 0;
        uint8_t digest [32];
        Qanat__BlobChunk chunk = s_chunk (hash, wrong, QN_BLOBFLOW_CHUNK, 1000, digest);
        qn_blobflow_action_t action = qn_blobflow_receive (&receiver, f->store, &chunk,
                                                           &want, &written,
                                                           error, sizeof error);
        assert_int_equal (written, 1000);
        assert_int_equal (receiver.position, 0);
        assert_int_equal (qn_blobstore_partial (f->store, hash), 0);
        assert_int_equal (receiver.failures, round);
        if (round < QN_BLOBFLOW_MAX_FAILURES) {
            assert_int_equal (action, QN_BLOBFLOW_RESTART);
            assert_int_equal (want.offset, 0);
            assert_int_equal (want.window, size);
        }
        else {
            assert_int_equal (action, QN_BLOBFLOW_FAILED);
            assert_true (strlen (error) > 0);
        }
    }
    assert_int_equal (f->tally.restarts, QN_BLOBFLOW_MAX_FAILURES - 1);
    assert_int_equal (f->tally.bytes, QN_BLOBFLOW_MAX_FAILURES * size);
    assert_false (qn_blobstore_has (f->store, hash));
    free (data);
    free (wrong);
}

//  Resuming: from the partial, from 0 when the partial is larger than the
//  blob, and straight to the whole-hash check when it holds every byte.
static void
test_resume (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    size_t size = 2 * QN_BLOBFLOW_CHUNK;
    uint8_t *data = s_content (size, 5);
    char hash [QN_BLOB_HASH_HEX + 1];
    s_hash (data, size, hash);
    char error [256] = "";
    assert_int_equal (qn_blobstore_write (f->store, hash, 0, data, QN_BLOBFLOW_CHUNK, NULL,
                                          error, sizeof error), 0);
    qn_blobflow_receiver_t receiver;
    qn_blobflow_receiver_init (&receiver, hash, size, &f->tally);
    qn_blobflow_want_t want;
    assert_int_equal (qn_blobflow_resume (&receiver, f->store, &want, error, sizeof error),
                      QN_BLOBFLOW_WANT);
    assert_int_equal (receiver.position, QN_BLOBFLOW_CHUNK);
    assert_int_equal (want.offset, QN_BLOBFLOW_CHUNK);
    assert_int_equal (want.window, QN_BLOBFLOW_CHUNK);

    //  Told of a smaller blob than the partial holds: start clean.
    qn_blobflow_receiver_init (&receiver, hash, 100, &f->tally);
    assert_int_equal (qn_blobflow_resume (&receiver, f->store, &want, error, sizeof error),
                      QN_BLOBFLOW_WANT);
    assert_int_equal (receiver.position, 0);
    assert_int_equal (want.offset, 0);
    assert_int_equal (want.window, 100);
    assert_int_equal (qn_blobstore_partial (f->store, hash), 0);

    //  Every byte held already: verified at once.
    assert_int_equal (qn_blobstore_write (f->store, hash, 0, data, size, NULL,
                                          error, sizeof error), 0);
    qn_blobflow_receiver_init (&receiver, hash, size, &f->tally);
    assert_int_equal (qn_blobflow_resume (&receiver, f->store, &want, error, sizeof error),
                      QN_BLOBFLOW_COMPLETE);
    assert_true (qn_blobstore_has (f->store, hash));
    assert_int_equal (f->tally.bytes, 0);

    //  An empty blob: complete at once, or failed at once if it is not
    //  the empty blob's hash.
    char empty [QN_BLOB_HASH_HEX + 1];
    s_hash (data, 0, empty);
    qn_blobflow_receiver_init (&receiver, empty, 0, &f->tally);
    assert_int_equal (qn_blobflow_resume (&receiver, f->store, &want, error, sizeof error),
                      QN_BLOBFLOW_COMPLETE);
    char bogus [QN_BLOB_HASH_HEX + 1];
    memset (bogus, 'c', QN_BLOB_HASH_HEX);
    bogus [QN_BLOB_HASH_HEX] = 0;
    qn_blobflow_receiver_init (&receiver, bogus, 0, &f->tally);
    error [0] = 0;
    assert_int_equal (qn_blobflow_resume (&receiver, f->store, &want, error, sizeof error),
                      QN_BLOBFLOW_FAILED);
    assert_true (strlen (error) > 0);
    assert_int_equal (receiver.failures, 1);
    assert_int_equal (f->tally.restarts, 0);
    free (data);
}

// ---------------------------------------------------------------------
// Sender

//  Checks that f->sent holds chunks covering [from, to) exactly, each
//  at most QN_BLOBFLOW_CHUNK with the right data and sha256.
static void
s_check_cover (fixture_t *f, const char *hash, uint64_t from, uint64_t to)
{
    uint64_t at = from;
    for (size_t i = 0; i < f->count; i++) {
        sent_t *sent = &f->sent [i];
        assert_int_equal (sent->kind, QANAT__ENVELOPE__BODY_BLOB_CHUNK);
        assert_string_equal (sent->hash, hash);
        assert_string_equal (sent->error, "");
        assert_int_equal (sent->offset, at);
        assert_true (sent->size > 0 && sent->size <= QN_BLOBFLOW_CHUNK);
        assert_true (sent->sha_ok);
        assert_memory_equal (sent->data, f->blob + at, sent->size);
        at += sent->size;
    }
    assert_int_equal (at, to);
}

static void
test_answer (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    size_t size = 3 * QN_BLOBFLOW_WINDOW + 777;
    uint8_t *data = s_content (size, 6);
    char hash [QN_BLOB_HASH_HEX + 1];
    s_hash (data, size, hash);
    f->blob = data;
    f->blob_size = size;
    uint8_t *buffer = (uint8_t *) malloc (QN_BLOBFLOW_CHUNK);
    assert_non_null (buffer);
    Qanat__BlobWant want = QANAT__BLOB_WANT__INIT;
    want.hash = hash;
    uint64_t sent = 0;
    char error [256] = "";

    //  With the size known or not, a want is covered exactly; the window
    //  is capped, and cut at the end.
    for (int known = 0; known < 2; known++) {
        uint64_t blob_size = known? size: QN_BLOBFLOW_SIZE_UNKNOWN;
        want.offset = 1000;
        want.window = QN_BLOBFLOW_CHUNK + 5;
        assert_int_equal (qn_blobflow_answer (&want, blob_size, s_read, f, s_send, f, buffer,
                                              &sent, error, sizeof error), 0);
        s_check_cover (f, hash, 1000, 1000 + QN_BLOBFLOW_CHUNK + 5);
        assert_int_equal (sent, QN_BLOBFLOW_CHUNK + 5);
        s_forget_sent (f);

        want.offset = 0;
        want.window = UINT32_MAX;
        assert_int_equal (qn_blobflow_answer (&want, blob_size, s_read, f, s_send, f, buffer,
                                              &sent, error, sizeof error), 0);
        s_check_cover (f, hash, 0, QN_BLOBFLOW_WINDOW);
        assert_int_equal (sent, QN_BLOBFLOW_WINDOW);
        s_forget_sent (f);

        want.offset = size - 300;
        want.window = QN_BLOBFLOW_WINDOW;
        assert_int_equal (qn_blobflow_answer (&want, blob_size, s_read, f, s_send, f, buffer,
                                              &sent, error, sizeof error), 0);
        s_check_cover (f, hash, size - 300, size);
        assert_int_equal (sent, 300);
        s_forget_sent (f);

        //  An offset near the top of the range does not wrap.
        want.offset = UINT64_MAX - 10;
        assert_int_equal (qn_blobflow_answer (&want, blob_size, s_read, f, s_send, f, buffer,
                                              &sent, error, sizeof error), known? 0: -1);
        assert_int_equal (sent, 0);
        assert_int_equal (f->count, known? 0: 1);
        s_forget_sent (f);
    }
    //  Size unknown: an offset at or past the end is told so.
    want.offset = size;
    want.window = 10;
    assert_int_equal (qn_blobflow_answer (&want, QN_BLOBFLOW_SIZE_UNKNOWN, s_read, f, s_send,
                                          f, buffer, &sent, error, sizeof error), -1);
    assert_int_equal (f->count, 1);
    assert_int_equal (f->sent [0].size, 0);
    assert_int_equal (f->sent [0].offset, size);
    assert_string_equal (f->sent [0].error, "offset past the end of the blob");
    assert_string_equal (error, "offset past the end of the blob");
    s_forget_sent (f);
    //  Size known: nothing to send at the end.
    assert_int_equal (qn_blobflow_answer (&want, size, s_read, f, s_send, f, buffer,
                                          &sent, error, sizeof error), 0);
    assert_int_equal (f->count, 0);

    //  A read that fails: the chunks before it, then the error.
    f->fail_read_at = 2 * QN_BLOBFLOW_CHUNK + 1;
    want.offset = 0;
    want.window = QN_BLOBFLOW_WINDOW;
    assert_int_equal (qn_blobflow_answer (&want, size, s_read, f, s_send, f, buffer,
                                          &sent, error, sizeof error), -1);
    assert_int_equal (sent, 2 * QN_BLOBFLOW_CHUNK);
    assert_int_equal (f->count, 3);
    assert_int_equal (f->sent [2].offset, 2 * QN_BLOBFLOW_CHUNK);
    assert_int_equal (f->sent [2].size, 0);
    assert_non_null (strstr (f->sent [2].error, "disk on fire"));
    assert_string_equal (error, f->sent [2].error);
    s_forget_sent (f);
    f->fail_read_at = UINT64_MAX;

    //  A send that fails stops the answer; what went is counted.
    f->fail_after = 2;
    assert_int_equal (qn_blobflow_answer (&want, size, s_read, f, s_send, f, buffer,
                                          &sent, error, sizeof error), 0);
    assert_int_equal (f->count, 2);
    assert_int_equal (sent, 2 * QN_BLOBFLOW_CHUNK);
    free (buffer);
    free (data);
}

//  What a receiver asks for is what a sender answers, end to end.
static void
test_round_trip (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    size_t size = 2 * QN_BLOBFLOW_WINDOW + 4321;
    uint8_t *data = s_content (size, 7);
    char hash [QN_BLOB_HASH_HEX + 1];
    s_hash (data, size, hash);
    f->blob = data;
    f->blob_size = size;
    uint8_t *buffer = (uint8_t *) malloc (QN_BLOBFLOW_CHUNK);
    assert_non_null (buffer);

    qn_blobflow_receiver_t receiver;
    qn_blobflow_receiver_init (&receiver, hash, size, &f->tally);
    qn_blobflow_want_t next;
    char error [256] = "";
    qn_blobflow_action_t action = qn_blobflow_resume (&receiver, f->store, &next,
                                                      error, sizeof error);
    //  Wants waiting to be answered, in order.
    qn_blobflow_want_t queue [64];
    size_t head = 0, tail = 0;
    queue [tail++] = next;
    int loops = 0;
    while (action != QN_BLOBFLOW_COMPLETE && head < tail) {
        assert_true (++loops < 64);
        Qanat__BlobWant want = QANAT__BLOB_WANT__INIT;
        want.hash = hash;
        want.offset = queue [head].offset;
        want.window = queue [head].window;
        head++;
        uint64_t sent = 0;
        assert_int_equal (qn_blobflow_answer (&want, size, s_read, f, s_send, f, buffer,
                                              &sent, error, sizeof error), 0);
        for (size_t i = 0; i < f->count && action != QN_BLOBFLOW_COMPLETE; i++) {
            Qanat__BlobChunk chunk = QANAT__BLOB_CHUNK__INIT;
            uint8_t digest [32];
            chunk.hash = f->sent [i].hash;
            chunk.offset = f->sent [i].offset;
            chunk.data.data = f->sent [i].data;
            chunk.data.len = f->sent [i].size;
            qn_blobstore_hash_chunk (chunk.data.data, chunk.data.len, digest);
            chunk.sha256.data = digest;
            chunk.sha256.len = 32;
            action = qn_blobflow_receive (&receiver, f->store, &chunk, &next, NULL,
                                          error, sizeof error);
            assert_true (action == QN_BLOBFLOW_WRITTEN || action == QN_BLOBFLOW_WANT_MORE
                      || action == QN_BLOBFLOW_COMPLETE);
            if (action == QN_BLOBFLOW_WANT_MORE)
                queue [tail++] = next;
        }
        s_forget_sent (f);
    }
    assert_int_equal (action, QN_BLOBFLOW_COMPLETE);
    assert_true (qn_blobstore_has (f->store, hash));
    assert_int_equal (f->tally.bytes, size);
    free (buffer);
    free (data);
}

//  The message helpers fill in what they are given.
static void
test_messages (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    char hash [QN_BLOB_HASH_HEX + 1];
    s_hash ((const uint8_t *) "x", 1, hash);
    assert_int_equal (qn_blobflow_send_want (s_send, f, hash, 12, 34, false, NULL), 0);
    assert_int_equal (qn_blobflow_send_want (s_send, f, hash, 56, 0, true, NULL), 0);
    assert_int_equal (qn_blobflow_send_want (s_send, f, hash, 0, 0, false, "nope"), 0);
    assert_int_equal (qn_blobflow_send_error (s_send, f, hash, 78, "unknown blob"), 0);
    assert_int_equal (f->count, 4);
    assert_int_equal (f->sent [0].kind, QANAT__ENVELOPE__BODY_BLOB_WANT);
    assert_string_equal (f->sent [0].hash, hash);
    assert_int_equal (f->sent [0].offset, 12);
    assert_int_equal (f->sent [0].window, 34);
    assert_false (f->sent [0].complete);
    assert_string_equal (f->sent [0].error, "");
    assert_true (f->sent [1].complete);
    assert_int_equal (f->sent [1].offset, 56);
    assert_string_equal (f->sent [2].error, "nope");
    assert_int_equal (f->sent [3].kind, QANAT__ENVELOPE__BODY_BLOB_CHUNK);
    assert_int_equal (f->sent [3].offset, 78);
    assert_int_equal (f->sent [3].size, 0);
    assert_string_equal (f->sent [3].error, "unknown blob");
    f->fail_after = 4;
    assert_int_equal (qn_blobflow_send_want (s_send, f, hash, 0, 1, false, NULL), -1);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup_teardown (test_receive_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown (test_receive_rejects, setup, teardown),
        cmocka_unit_test_setup_teardown (test_receive_mismatch, setup, teardown),
        cmocka_unit_test_setup_teardown (test_resume, setup, teardown),
        cmocka_unit_test_setup_teardown (test_answer, setup, teardown),
        cmocka_unit_test_setup_teardown (test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown (test_messages, setup, teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
