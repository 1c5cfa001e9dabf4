/*  Unit tests for qn_transfer (the agent's end of blob transfers) and
    qn_blobserver (the coordinator's end), wired to each other in memory:
    every message goes through the real codec, and the test delivers it
    to the other end, corrupting, dropping or discarding some on the way. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "qn_msg.h"
#include "qn_blobstore.h"
#include "qn_transfer.h"
#include "qn_blobserver.h"

#define PEER        "agent-1"
#define OTHER_PEER  "agent-2"
#define MB          (1000 * 1000)

typedef struct {
    char dir [64];
    char agent_store [128];
    char coord_store [128];
    char file [128];                    //  the file uploaded
    qn_blobstore_t *cache;              //  the agent's
    qn_blobstore_t *blobs;              //  the coordinator's
    qn_transfer_t *transfer;
    qn_blobserver_t *server;
    zlist_t *to_coord;                  //  encoded frames in flight
    zlist_t *to_agent;
    zlist_t *to_other;                  //  for OTHER_PEER, never delivered
    //  Faults: the nth chunk (1-based) delivered in a direction, 0 = none
    int corrupt_to_coord;
    int corrupt_to_agent;
    int bad_sha_to_coord;
    int drop_chunk_to_coord;
    int drop_want_to_agent;
    int chunks_to_coord;
    int chunks_to_agent;
    int wants_to_agent;
    //  What was seen on the wire
    uint64_t in_flight_to_coord;        //  chunk data bytes queued
    uint64_t in_flight_to_agent;
    uint64_t max_in_flight_to_coord;
    uint64_t max_in_flight_to_agent;
    size_t max_chunk;
    int offers;
    int completes_to_agent;             //  BlobWant {complete} from the coordinator
    //  Callbacks
    int done_calls;
    int done_status;
    char done_error [512];
    char done_hash [65];
    int stored_calls;
    char stored_peer [32];
    uint64_t stored_size;
    bool stored_attempt;
    Qanat__AttemptRef stored_ref;
} fixture_t;

// ---------------------------------------------------------------------
// The wire

static void
s_account (fixture_t *f, Qanat__Envelope *envelope, bool to_coord, bool queued)
{
    if (envelope->body_case != QANAT__ENVELOPE__BODY_BLOB_CHUNK)
        return;
    uint64_t size = envelope->blob_chunk->data.len;
    uint64_t *in_flight = to_coord? &f->in_flight_to_coord: &f->in_flight_to_agent;
    uint64_t *max = to_coord? &f->max_in_flight_to_coord: &f->max_in_flight_to_agent;
    if (queued) {
        *in_flight += size;
        if (*in_flight > *max)
            *max = *in_flight;
        if (size > f->max_chunk)
            f->max_chunk = size;
    }
    else
        *in_flight -= size;
}

static int
s_agent_send (void *arg, Qanat__Envelope *envelope)
{
    fixture_t *f = (fixture_t *) arg;
    zframe_t *frame = qn_msg_encode (envelope);
    assert_non_null (frame);
    if (envelope->body_case == QANAT__ENVELOPE__BODY_BLOB_OFFER)
        f->offers++;
    s_account (f, envelope, true, true);
    zlist_append (f->to_coord, frame);
    return 0;
}

static int
s_server_send (void *arg, const char *peer, Qanat__Envelope *envelope)
{
    fixture_t *f = (fixture_t *) arg;
    zframe_t *frame = qn_msg_encode (envelope);
    assert_non_null (frame);
    if (streq (peer, OTHER_PEER)) {
        zlist_append (f->to_other, frame);
        return 0;
    }
    assert_string_equal (peer, PEER);
    if (envelope->body_case == QANAT__ENVELOPE__BODY_BLOB_WANT && envelope->blob_want->complete)
        f->completes_to_agent++;
    s_account (f, envelope, false, true);
    zlist_append (f->to_agent, frame);
    return 0;
}

static void
s_done (void *arg, const char *hash, int status, const char *error)
{
    fixture_t *f = (fixture_t *) arg;
    f->done_calls++;
    f->done_status = status;
    snprintf (f->done_hash, sizeof f->done_hash, "%s", hash);
    snprintf (f->done_error, sizeof f->done_error, "%s", error? error: "");
}

static void
s_stored (void *arg, const char *peer, const char *hash, uint64_t size,
          const Qanat__AttemptRef *attempt)
{
    fixture_t *f = (fixture_t *) arg;
    f->stored_calls++;
    snprintf (f->stored_peer, sizeof f->stored_peer, "%s", peer);
    f->stored_size = size;
    f->stored_attempt = attempt != NULL;
    if (attempt)
        f->stored_ref = *attempt;
    assert_true (qn_blobstore_has (f->blobs, hash));
}

static Qanat__Envelope *
s_decode (zframe_t *frame)
{
    qn_msg_status_t status;
    Qanat__Envelope *envelope = qn_msg_decode (zframe_data (frame), zframe_size (frame), &status, NULL);
    assert_non_null (envelope);
    return envelope;
}

//  Delivers the oldest message toward the coordinator.  false if none.
static bool
s_deliver_to_coord (fixture_t *f)
{
    zframe_t *frame = (zframe_t *) zlist_pop (f->to_coord);
    if (!frame)
        return false;
    Qanat__Envelope *envelope = s_decode (frame);
    zframe_destroy (&frame);
    s_account (f, envelope, true, false);
    if (envelope->body_case == QANAT__ENVELOPE__BODY_BLOB_OFFER)
        qn_blobserver_on_offer (f->server, PEER, envelope->blob_offer);
    else
    if (envelope->body_case == QANAT__ENVELOPE__BODY_BLOB_WANT)
        qn_blobserver_on_want (f->server, PEER, envelope->blob_want);
    else
    if (envelope->body_case == QANAT__ENVELOPE__BODY_BLOB_CHUNK) {
        Qanat__BlobChunk *chunk = envelope->blob_chunk;
        f->chunks_to_coord++;
        if (f->chunks_to_coord == f->corrupt_to_coord && chunk->data.len)
            chunk->data.data [chunk->data.len / 2] ^= 0x5a;
        if (f->chunks_to_coord == f->bad_sha_to_coord)
            chunk->sha256.len = 31;
        if (f->chunks_to_coord != f->drop_chunk_to_coord)
            qn_blobserver_on_chunk (f->server, PEER, chunk);
    }
    else
        fail_msg ("unexpected message %d toward the coordinator", envelope->body_case);
    qn_msg_free (&envelope);
    return true;
}

static bool
s_deliver_to_agent (fixture_t *f)
{
    zframe_t *frame = (zframe_t *) zlist_pop (f->to_agent);
    if (!frame)
        return false;
    Qanat__Envelope *envelope = s_decode (frame);
    zframe_destroy (&frame);
    s_account (f, envelope, false, false);
    if (envelope->body_case == QANAT__ENVELOPE__BODY_BLOB_WANT) {
        f->wants_to_agent++;
        if (f->wants_to_agent != f->drop_want_to_agent)
            qn_transfer_on_want (f->transfer, envelope->blob_want);
    }
    else
    if (envelope->body_case == QANAT__ENVELOPE__BODY_BLOB_CHUNK) {
        Qanat__BlobChunk *chunk = envelope->blob_chunk;
        f->chunks_to_agent++;
        if (f->chunks_to_agent == f->corrupt_to_agent && chunk->data.len)
            chunk->data.data [0] ^= 0x01;
        qn_transfer_on_chunk (f->transfer, chunk);
    }
    else
        fail_msg ("unexpected message %d toward the agent", envelope->body_case);
    qn_msg_free (&envelope);
    return true;
}

//  Delivers messages one at a time in each direction, in turn, until
//  none is left or the receiving ends have taken stop_after bytes (0 = no
//  limit).
static void
s_pump (fixture_t *f, uint64_t stop_after)
{
    for (int turns = 0; turns < 1000000; turns++) {
        bool moved = s_deliver_to_coord (f);
        moved = s_deliver_to_agent (f) || moved;
        if (!moved)
            return;
        if (stop_after) {
            qn_transfer_stats_t agent;
            qn_blobserver_stats_t server;
            qn_transfer_stats (f->transfer, &agent);
            qn_blobserver_stats (f->server, &server);
            if (agent.bytes_received + server.bytes_in >= stop_after)
                return;
        }
    }
    fail_msg ("the transfer never settles");
}

static void
s_discard (zlist_t *list)
{
    zframe_t *frame;
    while ((frame = (zframe_t *) zlist_pop (list)))
        zframe_destroy (&frame);
}

//  The connection breaks: what was in flight is lost.
static void
s_disconnect (fixture_t *f)
{
    s_discard (f->to_coord);
    s_discard (f->to_agent);
    f->in_flight_to_coord = f->in_flight_to_agent = 0;
    qn_transfer_disconnected (f->transfer);
    qn_blobserver_peer_gone (f->server, PEER);
}

// ---------------------------------------------------------------------
// Fixture

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
    strcpy (f->dir, "/tmp/qn_transfer_XXXXXX");
    if (!mkdtemp (f->dir))
        return -1;
    snprintf (f->agent_store, sizeof f->agent_store, "%s/agent/blobs", f->dir);
    snprintf (f->coord_store, sizeof f->coord_store, "%s/coord/blobs", f->dir);
    snprintf (f->file, sizeof f->file, "%s/output.bin", f->dir);
    f->cache = qn_blobstore_new (f->agent_store);
    f->blobs = qn_blobstore_new (f->coord_store);
    f->to_coord = zlist_new ();
    f->to_agent = zlist_new ();
    f->to_other = zlist_new ();
    if (!f->cache || !f->blobs)
        return -1;
    f->transfer = qn_transfer_new (f->cache, s_agent_send, f);
    f->server = qn_blobserver_new (f->blobs, s_server_send, s_stored, f);
    if (!f->transfer || !f->server)
        return -1;
    qn_transfer_reconnected (f->transfer);
    *state = f;
    return 0;
}

static int
teardown (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    qn_transfer_destroy (&f->transfer);
    qn_blobserver_destroy (&f->server);
    qn_blobstore_destroy (&f->cache);
    qn_blobstore_destroy (&f->blobs);
    s_discard (f->to_coord);
    s_discard (f->to_agent);
    s_discard (f->to_other);
    zlist_destroy (&f->to_coord);
    zlist_destroy (&f->to_agent);
    zlist_destroy (&f->to_other);
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

//  Writes the upload file; returns its hash in hash.
static void
s_make_file (fixture_t *f, size_t size, uint32_t seed, char hash [65])
{
    uint8_t *data = s_content (size, seed);
    int fd = open (f->file, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true (fd >= 0);
    assert_int_equal (write (fd, data, size), (ssize_t) size);
    close (fd);
    free (data);
    uint64_t hashed;
    assert_int_equal (qn_blobstore_hash_file (f->file, hash, &hashed, NULL, 0), 0);
    assert_int_equal (hashed, size);
}

//  Puts a blob into a store directly; returns its hash.
static void
s_put (qn_blobstore_t *store, size_t size, uint32_t seed, char hash [65])
{
    uint8_t *data = s_content (size, seed);
    assert_int_equal (qn_blobstore_put_buffer (store, data, size, hash, NULL, 0), 0);
    free (data);
}

static Qanat__AttemptRef
s_attempt (void)
{
    Qanat__AttemptRef attempt = QANAT__ATTEMPT_REF__INIT;
    attempt.run_id = 42;
    attempt.task_index = 3;
    attempt.attempt = 2;
    return attempt;
}

// ---------------------------------------------------------------------
// Tests

static void
test_upload_large (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    size_t size = 20 * MB + 12345;      //  not a whole number of chunks
    char hash [65];
    s_make_file (f, size, 1, hash);
    Qanat__AttemptRef attempt = s_attempt ();
    assert_int_equal (qn_transfer_upload (f->transfer, hash, size, f->file, &attempt, s_done, f), 0);
    assert_int_equal (qn_transfer_active (f->transfer), 1);
    assert_int_equal (f->offers, 1);
    s_pump (f, 0);

    assert_int_equal (f->done_calls, 1);
    assert_int_equal (f->done_status, 0);
    assert_string_equal (f->done_hash, hash);
    assert_int_equal (qn_transfer_active (f->transfer), 0);
    assert_true (qn_blobstore_has (f->blobs, hash));
    assert_int_equal (qn_blobstore_verify (f->blobs, hash), 0);
    assert_int_equal (qn_blobstore_partial (f->blobs, hash), 0);
    assert_int_equal (qn_blobserver_uploads (f->server), 0);

    //  The coordinator was told, with the offer's attempt.
    assert_int_equal (f->stored_calls, 1);
    assert_string_equal (f->stored_peer, PEER);
    assert_int_equal (f->stored_size, size);
    assert_true (f->stored_attempt);
    assert_int_equal (f->stored_ref.run_id, 42);
    assert_int_equal (f->stored_ref.task_index, 3);
    assert_int_equal (f->stored_ref.attempt, 2);

    //  Every byte once, in chunks, never more than a window in flight.
    qn_transfer_stats_t agent;
    qn_blobserver_stats_t server;
    qn_transfer_stats (f->transfer, &agent);
    qn_blobserver_stats (f->server, &server);
    assert_int_equal (agent.bytes_sent, size);
    assert_int_equal (server.bytes_in, size);
    assert_int_equal (server.chunks_rejected, 0);
    assert_int_equal (server.uploads_completed, 1);
    assert_int_equal (agent.completed, 1);
    assert_int_equal (f->max_chunk, QN_TRANSFER_CHUNK);
    assert_true (f->max_in_flight_to_coord <= QN_TRANSFER_WINDOW);
    assert_true (f->max_in_flight_to_coord >= QN_TRANSFER_WINDOW / 2);
    assert_int_equal (f->chunks_to_coord, (size + QN_TRANSFER_CHUNK - 1) / QN_TRANSFER_CHUNK);
}

static void
test_download (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    size_t size = 5 * MB + 7;
    char hash [65];
    s_put (f->blobs, size, 2, hash);
    assert_int_equal (qn_transfer_download (f->transfer, hash, size, s_done, f), 0);
    s_pump (f, 0);
    assert_int_equal (f->done_calls, 1);
    assert_int_equal (f->done_status, 0);
    assert_true (qn_blobstore_has (f->cache, hash));
    assert_int_equal (qn_blobstore_verify (f->cache, hash), 0);
    qn_transfer_stats_t agent;
    qn_blobserver_stats_t server;
    qn_transfer_stats (f->transfer, &agent);
    qn_blobserver_stats (f->server, &server);
    assert_int_equal (agent.bytes_received, size);
    assert_int_equal (server.bytes_out, size);
    assert_int_equal (agent.chunks_rejected, 0);
    assert_true (f->max_in_flight_to_agent <= QN_TRANSFER_WINDOW);
    assert_true (f->max_chunk <= QN_TRANSFER_CHUNK);

    //  Cached: done before the call returns, nothing on the wire.
    assert_int_equal (qn_transfer_download (f->transfer, hash, size, s_done, f), 0);
    assert_int_equal (f->done_calls, 2);
    assert_int_equal (f->done_status, 0);
    assert_int_equal (zlist_size (f->to_coord), 0);

    //  An empty blob.
    char empty [65];
    s_put (f->blobs, 0, 0, empty);
    assert_int_equal (qn_transfer_download (f->transfer, empty, 0, s_done, f), 0);
    s_pump (f, 0);
    assert_int_equal (f->done_calls, 3);
    assert_int_equal (f->done_status, 0);
    assert_true (qn_blobstore_has (f->cache, empty));

    //  A blob the coordinator does not have.
    char unknown [65];
    s_put (f->cache, 100, 3, unknown);
    assert_int_equal (qn_blobstore_remove (f->cache, unknown), 0);
    assert_int_equal (qn_transfer_download (f->transfer, unknown, 100, s_done, f), 0);
    s_pump (f, 0);
    assert_int_equal (f->done_calls, 4);
    assert_int_equal (f->done_status, -1);
    assert_non_null (strstr (f->done_error, "unknown blob"));
    assert_int_equal (qn_transfer_active (f->transfer), 0);

    //  Bad arguments: refused, no callback.
    assert_int_equal (qn_transfer_download (f->transfer, "nothex", 1, s_done, f), -1);
    assert_int_equal (qn_transfer_upload (f->transfer, hash, size, "/nonexistent/file", NULL, s_done, f), -1);
    assert_int_equal (f->done_calls, 4);
}

//  Several downloads at once, more than may run: all arrive.
static void
test_download_many (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    char hashes [10][65];
    for (int i = 0; i < 10; i++) {
        s_put (f->blobs, 300 * 1000 + (size_t) i, 10 + (uint32_t) i, hashes [i]);
        assert_int_equal (qn_transfer_download (f->transfer, hashes [i], 300 * 1000 + (size_t) i, s_done, f), 0);
    }
    //  The same blob twice: runs after the first, from the cache.
    assert_int_equal (qn_transfer_download (f->transfer, hashes [0], 300 * 1000, s_done, f), 0);
    assert_int_equal (qn_transfer_active (f->transfer), 11);
    s_pump (f, 0);
    assert_int_equal (f->done_calls, 11);
    assert_int_equal (f->done_status, 0);
    for (int i = 0; i < 10; i++)
        assert_true (qn_blobstore_has (f->cache, hashes [i]));
    qn_transfer_stats_t agent;
    qn_transfer_stats (f->transfer, &agent);
    assert_int_equal (agent.completed, 11);
    assert_true (f->max_in_flight_to_agent <= (uint64_t) QN_TRANSFER_MAX_ACTIVE * QN_TRANSFER_WINDOW);
}

static void
test_corrupted_chunk (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    size_t size = 6 * MB;
    char hash [65];
    s_make_file (f, size, 4, hash);
    f->corrupt_to_coord = 3;
    f->bad_sha_to_coord = 10;
    assert_int_equal (qn_transfer_upload (f->transfer, hash, size, f->file, NULL, s_done, f), 0);
    s_pump (f, 0);
    assert_int_equal (f->done_calls, 1);
    assert_int_equal (f->done_status, 0);
    assert_int_equal (qn_blobstore_verify (f->blobs, hash), 0);
    assert_int_equal (f->stored_calls, 1);
    assert_false (f->stored_attempt);
    qn_transfer_stats_t agent;
    qn_blobserver_stats_t server;
    qn_transfer_stats (f->transfer, &agent);
    qn_blobserver_stats (f->server, &server);
    assert_int_equal (server.chunks_rejected, 2);
    assert_int_equal (server.bytes_in, size);
    //  What was re-sent is bounded by the window each time.
    assert_true (agent.bytes_sent > size);
    assert_true (agent.bytes_sent <= size + 2 * QN_TRANSFER_WINDOW);

    //  The same on a download.
    char blob [65];
    s_put (f->blobs, 3 * MB, 5, blob);
    f->corrupt_to_agent = 5;
    f->done_calls = 0;
    assert_int_equal (qn_transfer_download (f->transfer, blob, 3 * MB, s_done, f), 0);
    s_pump (f, 0);
    assert_int_equal (f->done_calls, 1);
    assert_int_equal (f->done_status, 0);
    assert_int_equal (qn_blobstore_verify (f->cache, blob), 0);
    qn_transfer_stats (f->transfer, &agent);
    assert_int_equal (agent.chunks_rejected, 1);
    assert_int_equal (agent.bytes_received, 3 * MB);
}

//  A chunk lost on the way leaves a gap: re-fetched.  A lost last chunk
//  stalls the transfer until a tick asks again.
static void
test_lost_messages (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    size_t size = 4 * MB;
    char hash [65];
    s_make_file (f, size, 6, hash);
    f->drop_chunk_to_coord = 2;
    assert_int_equal (qn_transfer_upload (f->transfer, hash, size, f->file, NULL, s_done, f), 0);
    s_pump (f, 0);
    assert_int_equal (f->done_calls, 1);
    assert_int_equal (f->done_status, 0);
    assert_int_equal (qn_blobstore_verify (f->blobs, hash), 0);
    qn_blobserver_stats_t server;
    qn_blobserver_stats (f->server, &server);
    assert_int_equal (server.chunks_rejected, 1);
    assert_int_equal (server.bytes_in, size);

    //  The last chunk (of four) lost: nothing more comes.
    char last [65];
    size = 3 * QN_TRANSFER_CHUNK + 5;
    s_make_file (f, size, 7, last);
    f->drop_chunk_to_coord = f->chunks_to_coord + 4;
    assert_int_equal (qn_transfer_upload (f->transfer, last, size, f->file, NULL, s_done, f), 0);
    s_pump (f, 0);
    assert_int_equal (f->done_calls, 1);
    assert_int_equal (qn_blobserver_uploads (f->server), 1);
    //  The first tick sees progress since the one before, the second none.
    qn_blobserver_tick (f->server);
    assert_int_equal (zlist_size (f->to_agent), 0);
    qn_blobserver_tick (f->server);
    assert_int_equal (zlist_size (f->to_agent), 1);
    s_pump (f, 0);
    assert_int_equal (f->done_calls, 2);
    assert_int_equal (f->done_status, 0);
    assert_int_equal (qn_blobstore_verify (f->blobs, last), 0);
    qn_blobserver_stats (f->server, &server);
    assert_int_equal (server.resumes, 1);
    assert_int_equal (server.bytes_in, 4 * MB + size);

    //  An offer lost: the agent's ticks offer again.
    char other [65];
    s_make_file (f, 1 * MB, 8, other);
    assert_int_equal (qn_transfer_upload (f->transfer, other, 1 * MB, f->file, NULL, s_done, f), 0);
    s_discard (f->to_coord);
    qn_transfer_tick (f->transfer);
    assert_int_equal (zlist_size (f->to_coord), 0);
    qn_transfer_tick (f->transfer);
    assert_int_equal (zlist_size (f->to_coord), 1);
    s_pump (f, 0);
    assert_int_equal (f->done_calls, 3);
    assert_int_equal (f->done_status, 0);
    assert_true (qn_blobstore_has (f->blobs, other));
}

static void
test_resume_upload (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    size_t size = 20 * MB;
    char hash [65];
    s_make_file (f, size, 8, hash);
    Qanat__AttemptRef attempt = s_attempt ();
    assert_int_equal (qn_transfer_upload (f->transfer, hash, size, f->file, &attempt, s_done, f), 0);
    s_pump (f, 7 * MB);
    assert_int_equal (f->done_calls, 0);

    //  The agent restarts mid-transfer; what was in flight is lost.
    s_disconnect (f);
    assert_int_equal (qn_blobserver_uploads (f->server), 0);
    qn_transfer_destroy (&f->transfer);
    assert_int_equal (f->done_calls, 0);
    uint64_t partial = qn_blobstore_partial (f->blobs, hash);
    assert_true (partial >= 7 * MB);
    assert_true (partial < size);

    f->transfer = qn_transfer_new (f->cache, s_agent_send, f);
    assert_non_null (f->transfer);
    assert_int_equal (qn_transfer_upload (f->transfer, hash, size, f->file, &attempt, s_done, f), 0);
    //  Nothing leaves before the Welcome.
    assert_int_equal (zlist_size (f->to_coord), 0);
    qn_transfer_reconnected (f->transfer);
    s_pump (f, 0);
    assert_int_equal (f->done_calls, 1);
    assert_int_equal (f->done_status, 0);
    assert_int_equal (qn_blobstore_verify (f->blobs, hash), 0);
    qn_transfer_stats_t agent;
    qn_blobserver_stats_t server;
    qn_transfer_stats (f->transfer, &agent);
    qn_blobserver_stats (f->server, &server);
    //  Only what had not arrived was sent again.
    assert_int_equal (agent.bytes_sent, size - partial);
    assert_int_equal (server.bytes_in, size);
    assert_int_equal (f->stored_calls, 1);

    //  A reconnect without a restart: the upload is offered again and
    //  resumes from the coordinator's partial.
    char other [65];
    s_make_file (f, 9 * MB, 9, other);
    assert_int_equal (qn_transfer_upload (f->transfer, other, 9 * MB, f->file, NULL, s_done, f), 0);
    s_pump (f, server.bytes_in + 3 * MB);
    s_disconnect (f);
    partial = qn_blobstore_partial (f->blobs, other);
    assert_true (partial >= 3 * MB);
    qn_transfer_stats (f->transfer, &agent);
    uint64_t sent_before = agent.bytes_sent;
    qn_transfer_reconnected (f->transfer);
    assert_int_equal (f->offers, 4);     //  hash once per object, other twice
    s_pump (f, 0);
    assert_int_equal (f->done_calls, 2);
    assert_int_equal (f->done_status, 0);
    assert_true (qn_blobstore_has (f->blobs, other));
    qn_transfer_stats (f->transfer, &agent);
    assert_int_equal (agent.bytes_sent - sent_before, 9 * MB - partial);
    assert_int_equal (agent.resumes, 1);
}

static void
test_resume_download (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    size_t size = 20 * MB;
    char hash [65];
    s_put (f->blobs, size, 11, hash);
    assert_int_equal (qn_transfer_download (f->transfer, hash, size, s_done, f), 0);
    s_pump (f, 9 * MB);

    //  The agent dies: its cache is reopened from disk.
    s_disconnect (f);
    qn_transfer_destroy (&f->transfer);
    qn_blobstore_destroy (&f->cache);
    f->cache = qn_blobstore_new (f->agent_store);
    assert_non_null (f->cache);
    uint64_t partial = qn_blobstore_partial (f->cache, hash);
    assert_true (partial >= 9 * MB);
    assert_true (partial < size);
    qn_blobserver_stats_t server;
    qn_blobserver_stats (f->server, &server);
    uint64_t out_before = server.bytes_out;

    f->transfer = qn_transfer_new (f->cache, s_agent_send, f);
    assert_non_null (f->transfer);
    qn_transfer_reconnected (f->transfer);
    assert_int_equal (qn_transfer_download (f->transfer, hash, size, s_done, f), 0);
    s_pump (f, 0);
    assert_int_equal (f->done_calls, 1);
    assert_int_equal (f->done_status, 0);
    assert_int_equal (qn_blobstore_verify (f->cache, hash), 0);
    qn_transfer_stats_t agent;
    qn_transfer_stats (f->transfer, &agent);
    qn_blobserver_stats (f->server, &server);
    assert_int_equal (agent.bytes_received, size - partial);
    assert_int_equal (server.bytes_out - out_before, size - partial);
}

static void
test_dedup (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    size_t size = 3 * MB;
    char hash [65];
    s_make_file (f, size, 12, hash);
    char stored [65];
    s_put (f->blobs, size, 12, stored);
    assert_string_equal (hash, stored);

    Qanat__AttemptRef attempt = s_attempt ();
    assert_int_equal (qn_transfer_upload (f->transfer, hash, size, f->file, &attempt, s_done, f), 0);
    s_pump (f, 0);
    assert_int_equal (f->done_calls, 1);
    assert_int_equal (f->done_status, 0);
    assert_int_equal (f->chunks_to_coord, 0);
    assert_int_equal (f->completes_to_agent, 1);
    assert_int_equal (f->stored_calls, 1);
    assert_int_equal (f->stored_ref.run_id, 42);
    qn_blobserver_stats_t server;
    qn_blobserver_stats (f->server, &server);
    assert_int_equal (server.uploads_deduplicated, 1);
    assert_int_equal (server.bytes_in, 0);

    //  Two agents offer one blob at once: one sends it, the other waits
    //  and is told it is stored.
    char blob [65];
    size = 5 * MB;
    s_make_file (f, size, 13, blob);
    assert_int_equal (qn_transfer_upload (f->transfer, blob, size, f->file, &attempt, s_done, f), 0);
    assert_int_equal (zlist_size (f->to_coord), 1);
    s_deliver_to_coord (f);                 //  agent-1's offer runs
    Qanat__BlobOffer offer = QANAT__BLOB_OFFER__INIT;
    Qanat__AttemptRef other_attempt = s_attempt ();
    other_attempt.attempt = 7;
    offer.hash = blob;
    offer.size = size;
    offer.attempt = &other_attempt;
    qn_blobserver_on_offer (f->server, OTHER_PEER, &offer);
    assert_int_equal (zlist_size (f->to_other), 0);    //  waits its turn
    assert_int_equal (qn_blobserver_uploads (f->server), 2);
    s_pump (f, 0);
    assert_int_equal (f->done_calls, 2);
    assert_int_equal (f->done_status, 0);
    assert_int_equal (f->stored_calls, 3);
    assert_string_equal (f->stored_peer, OTHER_PEER);
    assert_int_equal (f->stored_ref.attempt, 7);
    assert_int_equal (zlist_size (f->to_other), 1);
    zframe_t *frame = (zframe_t *) zlist_pop (f->to_other);
    Qanat__Envelope *envelope = s_decode (frame);
    assert_int_equal (envelope->body_case, QANAT__ENVELOPE__BODY_BLOB_WANT);
    assert_true (envelope->blob_want->complete);
    qn_msg_free (&envelope);
    zframe_destroy (&frame);
    assert_int_equal (qn_blobserver_uploads (f->server), 0);

    //  The sending agent goes away: the waiting one takes over from the
    //  partial.
    char third [65];
    s_make_file (f, size, 19, third);
    assert_int_equal (qn_transfer_upload (f->transfer, third, size, f->file, NULL, s_done, f), 0);
    qn_blobserver_stats_t before;
    qn_blobserver_stats (f->server, &before);
    s_pump (f, before.bytes_in + 1 * MB);
    offer.hash = third;
    qn_blobserver_on_offer (f->server, OTHER_PEER, &offer);
    assert_int_equal (zlist_size (f->to_other), 0);
    s_disconnect (f);
    uint64_t partial = qn_blobstore_partial (f->blobs, third);
    assert_true (partial >= 1 * MB);
    assert_int_equal (qn_blobserver_uploads (f->server), 1);
    assert_int_equal (zlist_size (f->to_other), 1);
    frame = (zframe_t *) zlist_pop (f->to_other);
    envelope = s_decode (frame);
    assert_int_equal (envelope->body_case, QANAT__ENVELOPE__BODY_BLOB_WANT);
    assert_false (envelope->blob_want->complete);
    assert_int_equal (envelope->blob_want->offset, partial);
    assert_int_equal (envelope->blob_want->window, QN_BLOBSERVER_WINDOW);
    qn_msg_free (&envelope);
    zframe_destroy (&frame);
    qn_blobserver_peer_gone (f->server, OTHER_PEER);
    assert_int_equal (qn_blobserver_uploads (f->server), 0);
    assert_int_equal (qn_blobstore_partial (f->blobs, third), partial);
}

//  The whole blob does not match its name: tried again from 0, then
//  given up with an error on both ends.
static void
test_hash_mismatch (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    size_t size = 1 * MB;
    char hash [65];
    s_make_file (f, size, 14, hash);
    char wrong [65];
    s_put (f->cache, size, 15, wrong);      //  a real hash, of other content
    assert_int_equal (qn_transfer_upload (f->transfer, wrong, size, f->file, NULL, s_done, f), 0);
    s_pump (f, 0);
    assert_int_equal (f->done_calls, 1);
    assert_int_equal (f->done_status, -1);
    assert_true (strlen (f->done_error) > 0);
    assert_false (qn_blobstore_has (f->blobs, wrong));
    assert_int_equal (qn_blobstore_partial (f->blobs, wrong), 0);
    qn_transfer_stats_t agent;
    qn_blobserver_stats_t server;
    qn_transfer_stats (f->transfer, &agent);
    qn_blobserver_stats (f->server, &server);
    assert_int_equal (server.restarts, QN_BLOBSERVER_MAX_FAILURES - 1);
    assert_int_equal (server.uploads_failed, 1);
    assert_int_equal (agent.bytes_sent, QN_BLOBSERVER_MAX_FAILURES * size);
    assert_int_equal (f->stored_calls, 0);
    assert_int_equal (qn_blobserver_uploads (f->server), 0);
}

static void
test_hostile (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    char hash [65];
    s_put (f->blobs, 1 * MB, 16, hash);
    uint8_t junk [QN_TRANSFER_CHUNK + 100];
    memset (junk, 0xab, sizeof junk);
    uint8_t sha [32];
    qn_blobstore_hash_chunk (junk, 1000, sha);

    //  The coordinator's end
    qn_blobserver_on_offer (f->server, PEER, NULL);
    qn_blobserver_on_chunk (f->server, PEER, NULL);
    qn_blobserver_on_want (f->server, PEER, NULL);
    Qanat__BlobOffer offer = QANAT__BLOB_OFFER__INIT;
    qn_blobserver_on_offer (f->server, NULL, &offer);
    const char *bad_hashes [] = { "", "xyz", "../../etc/passwd",
        "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8550" };
    for (size_t i = 0; i < sizeof bad_hashes / sizeof bad_hashes [0]; i++) {
        offer.hash = (char *) bad_hashes [i];
        offer.size = 10;
        qn_blobserver_on_offer (f->server, PEER, &offer);
        Qanat__BlobWant want = QANAT__BLOB_WANT__INIT;
        want.hash = (char *) bad_hashes [i];
        want.window = 100;
        qn_blobserver_on_want (f->server, PEER, &want);
    }
    assert_int_equal (qn_blobserver_uploads (f->server), 0);
    assert_int_equal (zlist_size (f->to_agent), 0);

    //  A chunk nobody asked for
    char fresh [65];
    s_make_file (f, 3 * MB, 17, fresh);
    Qanat__BlobChunk chunk = QANAT__BLOB_CHUNK__INIT;
    chunk.hash = fresh;
    chunk.data.data = junk;
    chunk.data.len = 1000;
    chunk.sha256.data = sha;
    chunk.sha256.len = 32;
    qn_blobserver_on_chunk (f->server, PEER, &chunk);
    assert_int_equal (qn_blobstore_partial (f->blobs, fresh), 0);

    //  Too large
    qn_blobserver_set_max_size (f->server, 1 * MB);
    offer.hash = fresh;
    offer.size = 3 * MB;
    qn_blobserver_on_offer (f->server, PEER, &offer);
    assert_int_equal (qn_blobserver_uploads (f->server), 0);
    assert_int_equal (zlist_size (f->to_agent), 1);
    zframe_t *frame = (zframe_t *) zlist_pop (f->to_agent);
    Qanat__Envelope *envelope = s_decode (frame);
    assert_int_equal (envelope->body_case, QANAT__ENVELOPE__BODY_BLOB_WANT);
    assert_non_null (strstr (envelope->blob_want->error, "exceeds"));
    qn_msg_free (&envelope);
    zframe_destroy (&frame);
    qn_blobserver_set_max_size (f->server, QN_BLOBSERVER_MAX_SIZE);

    //  A blob already stored, offered with another size
    offer.hash = hash;
    offer.size = 5;
    qn_blobserver_on_offer (f->server, PEER, &offer);
    assert_int_equal (f->stored_calls, 0);
    s_discard (f->to_agent);

    //  Too many uploads at once
    qn_blobserver_set_max_uploads (f->server, 2);
    char hashes [3][65];
    for (int i = 0; i < 3; i++) {
        s_put (f->cache, 1000, 20 + (uint32_t) i, hashes [i]);
        offer.hash = hashes [i];
        offer.size = 1000;
        qn_blobserver_on_offer (f->server, PEER, &offer);
    }
    assert_int_equal (qn_blobserver_uploads (f->server), 2);
    qn_blobserver_stats_t server;
    qn_blobserver_stats (f->server, &server);
    assert_int_equal (server.refused, 3);

    //  Chunks of a running upload (1000 bytes): out of range, oversize,
    //  bad sha length, a huge offset, no data
    s_discard (f->to_agent);
    chunk.hash = hashes [0];
    chunk.offset = 900;
    qn_blobserver_on_chunk (f->server, PEER, &chunk);  //  past the end
    chunk.offset = UINT64_MAX - 10;
    qn_blobserver_on_chunk (f->server, PEER, &chunk);
    chunk.offset = 0;
    chunk.data.len = sizeof junk;
    qn_blobserver_on_chunk (f->server, PEER, &chunk);  //  oversize
    chunk.data.len = 0;
    qn_blobserver_on_chunk (f->server, PEER, &chunk);
    chunk.data.len = 1000;
    chunk.sha256.len = 3;
    qn_blobserver_on_chunk (f->server, PEER, &chunk);  //  re-asked
    chunk.sha256.len = 32;
    chunk.hash = hashes [1];
    chunk.offset = 0;
    qn_blobserver_on_chunk (f->server, OTHER_PEER, &chunk);    //  not that peer's
    assert_int_equal (qn_blobstore_partial (f->blobs, hashes [0]), 0);
    assert_int_equal (qn_blobstore_partial (f->blobs, hashes [1]), 0);
    qn_blobserver_stats (f->server, &server);
    assert_int_equal (server.chunks_rejected, 1);
    assert_true (server.dropped >= 10);
    assert_int_equal (server.bytes_in, 0);
    //  A peer that goes away leaves nothing behind.
    qn_blobserver_peer_gone (f->server, PEER);
    qn_blobserver_peer_gone (f->server, NULL);
    assert_int_equal (qn_blobserver_uploads (f->server), 0);
    s_discard (f->to_agent);

    //  Downloads: a huge window is cut to one window; an offset past the
    //  end is an error; a huge offset does not wrap.
    Qanat__BlobWant want = QANAT__BLOB_WANT__INIT;
    want.hash = hash;
    want.window = UINT32_MAX;
    qn_blobserver_on_want (f->server, PEER, &want);
    qn_blobserver_stats (f->server, &server);
    assert_int_equal (server.bytes_out, 1 * MB);       //  the whole blob, < a window
    want.offset = UINT64_MAX - 5;
    qn_blobserver_on_want (f->server, PEER, &want);
    want.offset = 2 * MB;
    qn_blobserver_on_want (f->server, PEER, &want);
    qn_blobserver_stats (f->server, &server);
    assert_int_equal (server.bytes_out, 1 * MB);
    frame = (zframe_t *) zlist_last (f->to_agent);
    envelope = s_decode (frame);
    assert_int_equal (envelope->body_case, QANAT__ENVELOPE__BODY_BLOB_CHUNK);
    assert_non_null (strstr (envelope->blob_chunk->error, "past the end"));
    qn_msg_free (&envelope);
    s_discard (f->to_agent);

    //  The agent's end
    qn_transfer_on_want (f->transfer, NULL);
    qn_transfer_on_chunk (f->transfer, NULL);
    want.hash = fresh;
    want.offset = 0;
    want.window = 100;
    qn_transfer_on_want (f->transfer, &want);          //  no such upload
    chunk.hash = fresh;
    qn_transfer_on_chunk (f->transfer, &chunk);        //  no such download
    assert_int_equal (zlist_size (f->to_coord), 0);

    //  A running upload (the coordinator's side is not told: we play it)
    assert_int_equal (qn_transfer_upload (f->transfer, fresh, 3 * MB, f->file, NULL, s_done, f), 0);
    s_discard (f->to_coord);
    want.offset = 3 * MB + 1;
    qn_transfer_on_want (f->transfer, &want);          //  past the end
    want.offset = UINT64_MAX;
    qn_transfer_on_want (f->transfer, &want);
    assert_int_equal (zlist_size (f->to_coord), 0);
    want.offset = 100;
    want.window = UINT32_MAX;                           //  cut to one window
    qn_transfer_on_want (f->transfer, &want);
    qn_transfer_stats_t agent;
    qn_transfer_stats (f->transfer, &agent);
    assert_int_equal (agent.bytes_sent, QN_TRANSFER_WINDOW);
    assert_int_equal (zlist_size (f->to_coord), QN_TRANSFER_WINDOW / QN_TRANSFER_CHUNK);
    s_discard (f->to_coord);
    f->in_flight_to_coord = 0;

    //  A running download: bad chunks never reach the cache.
    char blob [65];
    s_put (f->blobs, 1 * MB, 18, blob);
    assert_int_equal (qn_transfer_download (f->transfer, blob, 1 * MB, s_done, f), 0);
    s_discard (f->to_coord);
    chunk.hash = blob;
    chunk.offset = 1 * MB - 10;
    chunk.data.len = 1000;
    qn_transfer_on_chunk (f->transfer, &chunk);        //  past the end
    chunk.offset = 0;
    chunk.data.len = sizeof junk;
    qn_transfer_on_chunk (f->transfer, &chunk);        //  oversize
    chunk.data.len = 1000;
    chunk.sha256.len = 64;
    qn_transfer_on_chunk (f->transfer, &chunk);        //  bad sha: re-asked
    chunk.sha256.len = 32;
    chunk.offset = 0;
    qn_transfer_on_chunk (f->transfer, &chunk);        //  good sha, wrong content: in the cache
    assert_int_equal (qn_blobstore_partial (f->cache, blob), 1000);
    qn_transfer_stats (f->transfer, &agent);
    assert_int_equal (agent.chunks_rejected, 1);
    assert_true (agent.dropped >= 5);
    //  ... but the whole-hash check catches it: the download starts over
    //  from 0 and, with the real coordinator, completes.
    s_discard (f->to_coord);
    qn_transfer_disconnected (f->transfer);
    qn_transfer_reconnected (f->transfer);
    assert_int_equal (f->done_calls, 0);
    s_pump (f, 0);
    //  The upload is offered again, and stored; the download completes
    //  after one restart.
    assert_int_equal (f->done_calls, 2);
    assert_int_equal (f->done_status, 0);
    assert_true (qn_blobstore_has (f->blobs, fresh));
    assert_true (qn_blobstore_has (f->cache, blob));
    assert_int_equal (qn_blobstore_verify (f->cache, blob), 0);
    qn_transfer_stats (f->transfer, &agent);
    assert_int_equal (agent.restarts, 1);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup_teardown (test_upload_large, setup, teardown),
        cmocka_unit_test_setup_teardown (test_download, setup, teardown),
        cmocka_unit_test_setup_teardown (test_download_many, setup, teardown),
        cmocka_unit_test_setup_teardown (test_corrupted_chunk, setup, teardown),
        cmocka_unit_test_setup_teardown (test_lost_messages, setup, teardown),
        cmocka_unit_test_setup_teardown (test_resume_upload, setup, teardown),
        cmocka_unit_test_setup_teardown (test_resume_download, setup, teardown),
        cmocka_unit_test_setup_teardown (test_dedup, setup, teardown),
        cmocka_unit_test_setup_teardown (test_hash_mismatch, setup, teardown),
        cmocka_unit_test_setup_teardown (test_hostile, setup, teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
