/*  Unit tests for qn_blobstore: the content-addressed blob directory. */
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
#include <time.h>
#include <unistd.h>
#include "qn_blobstore.h"

#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define ABC_SHA256   "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

typedef struct {
    char dir [64];                      //  the test's temporary directory
    char store [128];                   //  the store inside it
    qn_blobstore_t *blobs;
} fixture_t;

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
    fixture_t *fixture = (fixture_t *) calloc (1, sizeof (fixture_t));
    strcpy (fixture->dir, "/tmp/qn_blobstore_XXXXXX");
    if (!mkdtemp (fixture->dir))
        return -1;
    snprintf (fixture->store, sizeof fixture->store, "%s/data/blobs", fixture->dir);
    fixture->blobs = qn_blobstore_new (fixture->store);
    if (!fixture->blobs)
        return -1;
    *state = fixture;
    return 0;
}

static int
teardown (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    qn_blobstore_destroy (&fixture->blobs);
    nftw (fixture->dir, s_remove_one, 16, FTW_DEPTH | FTW_PHYS);
    free (fixture);
    return 0;
}

static void
s_hex (const uint8_t digest [32], char hex [65])
{
    for (int i = 0; i < 32; i++)
        sprintf (hex + 2 * i, "%02x", digest [i]);
}

static void
s_hash_of (const void *data, size_t size, char hex [65])
{
    uint8_t digest [32];
    assert_int_equal (qn_blobstore_hash_chunk (data, size, digest), 0);
    s_hex (digest, hex);
}

static uint8_t *
s_random (size_t size, unsigned seed)
{
    uint8_t *data = (uint8_t *) malloc (size ? size: 1);
    srand (seed);
    for (size_t i = 0; i < size; i++)
        data [i] = (uint8_t) (rand () >> 7);
    return data;
}

static void
s_write_file (const char *path, const void *data, size_t size)
{
    FILE *file = fopen (path, "wb");
    assert_non_null (file);
    if (size)
        assert_int_equal (fwrite (data, 1, size, file), size);
    fclose (file);
}

//  Sends data in chunks of chunk bytes, each with its hash.
static void
s_send (qn_blobstore_t *blobs, const char *hash, const uint8_t *data, size_t size,
        size_t from, size_t chunk)
{
    char error [256];
    for (size_t offset = from; offset < size; offset += chunk) {
        size_t length = size - offset < chunk? size - offset: chunk;
        uint8_t digest [32];
        qn_blobstore_hash_chunk (data + offset, length, digest);
        int rc = qn_blobstore_write (blobs, hash, offset, data + offset, length, digest,
                                     error, sizeof error);
        if (rc)
            fail_msg ("write at %zu: %s", offset, error);
    }
}

static void
s_assert_content (qn_blobstore_t *blobs, const char *hash, const uint8_t *data, size_t size)
{
    uint8_t *back = (uint8_t *) malloc (size + 16);
    assert_int_equal (qn_blobstore_read (blobs, hash, 0, back, size + 16), (ssize_t) size);
    assert_memory_equal (back, data, size);
    free (back);
}

static void
test_valid_hash (void **state)
{
    (void) state;
    assert_true (qn_blobstore_valid_hash (EMPTY_SHA256));
    assert_true (qn_blobstore_valid_hash (ABC_SHA256));
    assert_false (qn_blobstore_valid_hash (NULL));
    assert_false (qn_blobstore_valid_hash (""));
    assert_false (qn_blobstore_valid_hash (ABC_SHA256 "0"));
    char upper [] = ABC_SHA256;
    upper [3] = 'A';
    assert_false (qn_blobstore_valid_hash (upper));
    char short_one [] = ABC_SHA256;
    short_one [63] = 0;
    assert_false (qn_blobstore_valid_hash (short_one));
    assert_false (qn_blobstore_valid_hash ("../../../../../../../../../../../../../../../../../../../etc/pa"));
    char slash [] = ABC_SHA256;
    slash [2] = '/';
    assert_false (qn_blobstore_valid_hash (slash));
    //  The known vectors, through the chunk hash.
    char hex [65];
    s_hash_of ("abc", 3, hex);
    assert_string_equal (hex, ABC_SHA256);
    s_hash_of ("", 0, hex);
    assert_string_equal (hex, EMPTY_SHA256);
}

static void
test_layout (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    char path [512];
    struct stat st;
    assert_int_equal (stat (fixture->store, &st), 0);
    assert_true (S_ISDIR (st.st_mode));
    assert_int_equal (st.st_mode & 0777, 0700);
    snprintf (path, sizeof path, "%s/objects", fixture->store);
    assert_int_equal (stat (path, &st), 0);
    snprintf (path, sizeof path, "%s/partial", fixture->store);
    assert_int_equal (stat (path, &st), 0);
    assert_null (qn_blobstore_new (NULL));
    assert_null (qn_blobstore_new (""));
    //  A file where the directory should be.
    snprintf (path, sizeof path, "%s/plain", fixture->dir);
    s_write_file (path, "x", 1);
    assert_null (qn_blobstore_new (path));
    qn_blobstore_t *none = NULL;
    qn_blobstore_destroy (&none);
}

static void
test_round_trip (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    qn_blobstore_t *blobs = fixture->blobs;
    size_t size = 100000;
    uint8_t *data = s_random (size, 1);
    char hash [65];
    s_hash_of (data, size, hash);
    assert_false (qn_blobstore_has (blobs, hash));
    assert_int_equal (qn_blobstore_partial (blobs, hash), 0);
    s_send (blobs, hash, data, 40000, 0, 10000);
    assert_int_equal (qn_blobstore_partial (blobs, hash), 40000);
    assert_false (qn_blobstore_has (blobs, hash));
    assert_int_equal (qn_blobstore_read (blobs, hash, 0, data, 1), -1);
    s_send (blobs, hash, data, size, 40000, 7777);
    char error [256] = "";
    assert_int_equal (qn_blobstore_finish (blobs, hash, size, error, sizeof error), 0);
    assert_true (qn_blobstore_has (blobs, hash));
    assert_int_equal (qn_blobstore_partial (blobs, hash), 0);
    s_assert_content (blobs, hash, data, size);
    //  Reads at an offset and past the end.
    uint8_t piece [10];
    assert_int_equal (qn_blobstore_read (blobs, hash, 500, piece, 10), 10);
    assert_memory_equal (piece, data + 500, 10);
    assert_int_equal (qn_blobstore_read (blobs, hash, size - 3, piece, 10), 3);
    assert_int_equal (qn_blobstore_read (blobs, hash, size, piece, 10), 0);
    assert_int_equal (qn_blobstore_read (blobs, hash, UINT64_MAX, piece, 10), 0);
    //  The object is at objects/ab/cdef..., read-only.
    char path [512], expected [512];
    assert_int_equal (qn_blobstore_path (blobs, hash, path, sizeof path), 0);
    snprintf (expected, sizeof expected, "%s/objects/%.2s/%s", fixture->store, hash, hash + 2);
    assert_string_equal (path, expected);
    struct stat st;
    assert_int_equal (stat (path, &st), 0);
    assert_int_equal (st.st_mode & 0777, 0444);
    assert_int_equal (qn_blobstore_path (blobs, hash, path, 10), -1);
    assert_int_equal (qn_blobstore_bytes (blobs), size);
    assert_int_equal (qn_blobstore_verify (blobs, hash), 0);
    //  No partial left behind.
    snprintf (path, sizeof path, "%s/partial/%s", fixture->store, hash);
    assert_int_equal (access (path, F_OK), -1);
    free (data);
}

static void
test_out_of_order (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    qn_blobstore_t *blobs = fixture->blobs;
    uint8_t *data = s_random (3000, 2);
    char hash [65], error [256] = "";
    s_hash_of (data, 3000, hash);
    //  The second chunk first: refused.
    assert_int_equal (qn_blobstore_write (blobs, hash, 1000, data + 1000, 1000, NULL, error, sizeof error), -1);
    assert_string_equal (error, "offset 1000, expected 0");
    assert_int_equal (qn_blobstore_partial (blobs, hash), 0);
    assert_int_equal (qn_blobstore_write (blobs, hash, 0, data, 1000, NULL, error, sizeof error), 0);
    //  The first chunk again (a duplicate after a resend): refused too.
    assert_int_equal (qn_blobstore_write (blobs, hash, 0, data, 1000, NULL, error, sizeof error), -1);
    assert_string_equal (error, "offset 0, expected 1000");
    assert_int_equal (qn_blobstore_write (blobs, hash, 2000, data + 2000, 1000, NULL, error, sizeof error), -1);
    assert_string_equal (error, "offset 2000, expected 1000");
    //  An overflowing offset never wraps.
    assert_int_equal (qn_blobstore_write (blobs, hash, UINT64_MAX, data, 10, NULL, error, sizeof error), -1);
    assert_int_equal (qn_blobstore_partial (blobs, hash), 1000);
    //  An empty chunk at the right place is harmless.
    assert_int_equal (qn_blobstore_write (blobs, hash, 1000, data, 0, NULL, error, sizeof error), 0);
    s_send (blobs, hash, data, 3000, 1000, 1000);
    assert_int_equal (qn_blobstore_finish (blobs, hash, 3000, error, sizeof error), 0);
    s_assert_content (blobs, hash, data, 3000);
    //  Without error buffer, still refused.
    char other [65];
    s_hash_of (data, 10, other);
    assert_int_equal (qn_blobstore_write (blobs, other, 5, data, 5, NULL, NULL, 0), -1);
    free (data);
}

static void
test_resume_after_restart (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    size_t size = 50000;
    uint8_t *data = s_random (size, 3);
    char hash [65], error [256] = "";
    s_hash_of (data, size, hash);
    s_send (fixture->blobs, hash, data, 20000, 0, 4096);
    qn_blobstore_destroy (&fixture->blobs);
    assert_null (fixture->blobs);
    qn_blobstore_destroy (&fixture->blobs);           //  idempotent
    fixture->blobs = qn_blobstore_new (fixture->store);
    assert_non_null (fixture->blobs);
    //  The resume point survives, and so must the running hash.
    assert_int_equal (qn_blobstore_partial (fixture->blobs, hash), 20000);
    assert_int_equal (qn_blobstore_write (fixture->blobs, hash, 0, data, 10, NULL, error, sizeof error), -1);
    s_send (fixture->blobs, hash, data, size, 20000, 4096);
    assert_int_equal (qn_blobstore_finish (fixture->blobs, hash, size, error, sizeof error), 0);
    s_assert_content (fixture->blobs, hash, data, size);
    free (data);
}

static void
test_truncated_partial (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    size_t size = 30000;
    uint8_t *data = s_random (size, 4);
    char hash [65], error [256] = "", path [512];
    s_hash_of (data, size, hash);
    snprintf (path, sizeof path, "%s/partial/%s", fixture->store, hash);
    //  Cut behind the store's back while it is open: the store notices.
    s_send (fixture->blobs, hash, data, 10000, 0, 1000);
    assert_int_equal (truncate (path, 3000), 0);
    assert_int_equal (qn_blobstore_partial (fixture->blobs, hash), 3000);
    assert_int_equal (qn_blobstore_write (fixture->blobs, hash, 10000, data + 10000, 1000, NULL, error, sizeof error), -1);
    assert_string_equal (error, "offset 10000, expected 3000");
    s_send (fixture->blobs, hash, data, 20000, 3000, 1000);
    //  Cut while closed (as a crash that lost unsynced data would).
    qn_blobstore_destroy (&fixture->blobs);
    assert_int_equal (truncate (path, 12345), 0);
    fixture->blobs = qn_blobstore_new (fixture->store);
    assert_int_equal (qn_blobstore_partial (fixture->blobs, hash), 12345);
    s_send (fixture->blobs, hash, data, size, 12345, 1000);
    assert_int_equal (qn_blobstore_finish (fixture->blobs, hash, size, error, sizeof error), 0);
    s_assert_content (fixture->blobs, hash, data, size);
    //  Partial removed behind our back while open: starts from 0 again.
    s_hash_of (data, 100, hash);
    snprintf (path, sizeof path, "%s/partial/%s", fixture->store, hash);
    s_send (fixture->blobs, hash, data, 50, 0, 50);
    assert_int_equal (unlink (path), 0);
    assert_int_equal (qn_blobstore_partial (fixture->blobs, hash), 0);
    s_send (fixture->blobs, hash, data, 100, 0, 50);
    assert_int_equal (qn_blobstore_finish (fixture->blobs, hash, 100, error, sizeof error), 0);
    s_assert_content (fixture->blobs, hash, data, 100);
    free (data);
}

static void
test_many_open_partials (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    //  More transfers than the LRU holds, interleaved: each one evicted
    //  and reopened, its hash recomputed from disk.
    int count = QN_BLOBSTORE_MAX_OPEN + 20;
    char (*hashes) [65] = calloc ((size_t) count, 65);
    uint8_t *data = s_random (4000, 5);
    char error [256] = "";
    for (int i = 0; i < count; i++) {
        data [0] = (uint8_t) i;
        data [1] = (uint8_t) (i >> 8);
        s_hash_of (data, 4000, hashes [i]);
        s_send (fixture->blobs, hashes [i], data, 2000, 0, 2000);
    }
    //  Descriptors stay bounded: count what this process has open.
    int open_fds = 0;
    for (int fd = 0; fd < 4096; fd++)
        if (fcntl (fd, F_GETFD) != -1)
            open_fds++;
    assert_true (open_fds < QN_BLOBSTORE_MAX_OPEN + 16);
    for (int i = 0; i < count; i++) {
        data [0] = (uint8_t) i;
        data [1] = (uint8_t) (i >> 8);
        assert_int_equal (qn_blobstore_partial (fixture->blobs, hashes [i]), 2000);
        s_send (fixture->blobs, hashes [i], data, 4000, 2000, 2000);
        if (qn_blobstore_finish (fixture->blobs, hashes [i], 4000, error, sizeof error))
            fail_msg ("finish %d: %s", i, error);
    }
    assert_int_equal (qn_blobstore_bytes (fixture->blobs), (uint64_t) count * 4000);
    free (hashes);
    free (data);
}

static void
test_corrupted_chunk (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    uint8_t *data = s_random (2000, 6);
    char hash [65], error [256] = "";
    s_hash_of (data, 2000, hash);
    s_send (fixture->blobs, hash, data, 1000, 0, 1000);
    uint8_t digest [32];
    qn_blobstore_hash_chunk (data + 1000, 1000, digest);
    data [1500] ^= 0x40;                //  a bit flipped on the way
    assert_int_equal (qn_blobstore_write (fixture->blobs, hash, 1000, data + 1000, 1000, digest,
                                          error, sizeof error), -1);
    assert_string_equal (error, "chunk at 1000 corrupted");
    //  Nothing of it was kept; the good chunk goes in.
    assert_int_equal (qn_blobstore_partial (fixture->blobs, hash), 1000);
    data [1500] ^= 0x40;
    assert_int_equal (qn_blobstore_write (fixture->blobs, hash, 1000, data + 1000, 1000, digest,
                                          error, sizeof error), 0);
    assert_int_equal (qn_blobstore_finish (fixture->blobs, hash, 2000, error, sizeof error), 0);
    s_assert_content (fixture->blobs, hash, data, 2000);
    free (data);
}

static void
test_whole_hash_mismatch (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    uint8_t *data = s_random (5000, 7);
    char hash [65], error [256] = "";
    s_hash_of (data, 5000, hash);
    //  Every chunk consistent with itself, but not the blob announced.
    data [4000] ^= 1;
    s_send (fixture->blobs, hash, data, 5000, 0, 1000);
    assert_int_equal (qn_blobstore_finish (fixture->blobs, hash, 5000, error, sizeof error), -1);
    assert_non_null (strstr (error, "content hashes to"));
    assert_false (qn_blobstore_has (fixture->blobs, hash));
    assert_int_equal (qn_blobstore_partial (fixture->blobs, hash), 0);
    //  The sender starts again at 0, this time right.
    data [4000] ^= 1;
    s_send (fixture->blobs, hash, data, 5000, 0, 1000);
    //  Wrong size: refused, partial dropped.
    assert_int_equal (qn_blobstore_finish (fixture->blobs, hash, 5001, error, sizeof error), -1);
    assert_non_null (strstr (error, "size 5000, expected 5001"));
    assert_int_equal (qn_blobstore_partial (fixture->blobs, hash), 0);
    s_send (fixture->blobs, hash, data, 5000, 0, 1000);
    assert_int_equal (qn_blobstore_finish (fixture->blobs, hash, 5000, error, sizeof error), 0);
    assert_int_equal (qn_blobstore_verify (fixture->blobs, hash), 0);
    //  Finish with nothing sent.
    char other [65];
    s_hash_of ("nothing", 7, other);
    assert_int_equal (qn_blobstore_finish (fixture->blobs, other, 7, error, sizeof error), -1);
    assert_non_null (strstr (error, "no transfer"));
    assert_int_equal (qn_blobstore_finish (fixture->blobs, "zz", 7, error, sizeof error), -1);
    free (data);
}

static void
test_dedup (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    qn_blobstore_t *blobs = fixture->blobs;
    uint8_t *data = s_random (10000, 8);
    char one [512], two [512], error [256] = "";
    snprintf (one, sizeof one, "%s/one", fixture->dir);
    snprintf (two, sizeof two, "%s/two", fixture->dir);
    s_write_file (one, data, 10000);
    s_write_file (two, data, 10000);
    char hash_one [65], hash_two [65], expected [65];
    uint64_t size = 0;
    s_hash_of (data, 10000, expected);
    assert_int_equal (qn_blobstore_put_file (blobs, one, hash_one, &size, error, sizeof error), 0);
    assert_string_equal (hash_one, expected);
    assert_int_equal (size, 10000);
    char path [512];
    assert_int_equal (qn_blobstore_path (blobs, hash_one, path, sizeof path), 0);
    struct stat before, after;
    assert_int_equal (stat (path, &before), 0);
    assert_int_equal (qn_blobstore_put_file (blobs, two, hash_two, &size, error, sizeof error), 0);
    assert_string_equal (hash_two, hash_one);
    assert_int_equal (stat (path, &after), 0);
    assert_int_equal (before.st_ino, after.st_ino);      //  not copied again
    assert_int_equal (qn_blobstore_bytes (blobs), 10000);
    //  The same content arriving over the wire: chunks dropped, finish 0.
    s_send (blobs, hash_one, data, 10000, 0, 3000);
    assert_int_equal (qn_blobstore_partial (blobs, hash_one), 0);
    assert_int_equal (qn_blobstore_finish (blobs, hash_one, 10000, error, sizeof error), 0);
    assert_int_equal (qn_blobstore_bytes (blobs), 10000);
    //  The source files are untouched (a copy, not a move).
    assert_int_equal (access (one, F_OK), 0);
    //  A buffer with that content too.
    char hash_buffer [65];
    assert_int_equal (qn_blobstore_put_buffer (blobs, data, 10000, hash_buffer, error, sizeof error), 0);
    assert_string_equal (hash_buffer, hash_one);
    assert_int_equal (qn_blobstore_bytes (blobs), 10000);
    assert_int_equal (qn_blobstore_put_buffer (blobs, "abc", 3, hash_buffer, error, sizeof error), 0);
    assert_string_equal (hash_buffer, ABC_SHA256);
    assert_int_equal (qn_blobstore_bytes (blobs), 10003);
    free (data);
}

static void
test_empty_blob (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    char error [256] = "";
    //  No chunk at all, then finish with size 0.
    assert_int_equal (qn_blobstore_finish (fixture->blobs, EMPTY_SHA256, 0, error, sizeof error), 0);
    assert_true (qn_blobstore_has (fixture->blobs, EMPTY_SHA256));
    uint8_t byte;
    assert_int_equal (qn_blobstore_read (fixture->blobs, EMPTY_SHA256, 0, &byte, 1), 0);
    assert_int_equal (qn_blobstore_bytes (fixture->blobs), 0);
    //  The empty blob claimed for non-empty content: refused.
    assert_int_equal (qn_blobstore_remove (fixture->blobs, EMPTY_SHA256), 0);
    assert_int_equal (qn_blobstore_write (fixture->blobs, EMPTY_SHA256, 0, "x", 1, NULL, error, sizeof error), 0);
    assert_int_equal (qn_blobstore_finish (fixture->blobs, EMPTY_SHA256, 1, error, sizeof error), -1);
    assert_false (qn_blobstore_has (fixture->blobs, EMPTY_SHA256));
    //  An empty file through put_file.
    char path [512], hash [65];
    uint64_t size = 99;
    snprintf (path, sizeof path, "%s/empty", fixture->dir);
    s_write_file (path, "", 0);
    assert_int_equal (qn_blobstore_put_file (fixture->blobs, path, hash, &size, error, sizeof error), 0);
    assert_string_equal (hash, EMPTY_SHA256);
    assert_int_equal (size, 0);
    assert_true (qn_blobstore_has (fixture->blobs, EMPTY_SHA256));
}

static void
test_big_file (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    size_t size = 20 * 1024 * 1024 + 17;
    uint8_t *data = s_random (size, 9);
    char path [512], hash [65], expected [65], error [256] = "";
    snprintf (path, sizeof path, "%s/big", fixture->dir);
    s_write_file (path, data, size);
    s_hash_of (data, size, expected);
    uint64_t hashed_size = 0;
    assert_int_equal (qn_blobstore_hash_file (path, hash, &hashed_size, error, sizeof error), 0);
    assert_string_equal (hash, expected);
    assert_int_equal (hashed_size, size);
    //  Over the wire in 1 MB chunks, with a restart in the middle.
    s_send (fixture->blobs, expected, data, 9 * 1024 * 1024, 0, 1024 * 1024);
    qn_blobstore_destroy (&fixture->blobs);
    fixture->blobs = qn_blobstore_new (fixture->store);
    assert_int_equal (qn_blobstore_partial (fixture->blobs, expected), 9 * 1024 * 1024);
    s_send (fixture->blobs, expected, data, size, 9 * 1024 * 1024, 1024 * 1024);
    assert_int_equal (qn_blobstore_finish (fixture->blobs, expected, size, error, sizeof error), 0);
    s_assert_content (fixture->blobs, expected, data, size);
    assert_int_equal (qn_blobstore_bytes (fixture->blobs), size);
    //  And through put_file: already there.
    assert_int_equal (qn_blobstore_put_file (fixture->blobs, path, hash, NULL, error, sizeof error), 0);
    assert_string_equal (hash, expected);
    assert_int_equal (qn_blobstore_remove (fixture->blobs, expected), 0);
    assert_int_equal (qn_blobstore_put_file (fixture->blobs, path, hash, NULL, error, sizeof error), 0);
    s_assert_content (fixture->blobs, expected, data, size);
    free (data);
}

static void
test_strays_and_scratch (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    char path [512], error [256] = "";
    assert_int_equal (qn_blobstore_put_buffer (fixture->blobs, "abc", 3, NULL, error, sizeof error), 0);
    qn_blobstore_destroy (&fixture->blobs);
    //  Junk on disk: a scratch file from a crashed put, stray names.
    snprintf (path, sizeof path, "%s/partial/tmp.crashed", fixture->store);
    s_write_file (path, "junk", 4);
    snprintf (path, sizeof path, "%s/partial/notahash", fixture->store);
    s_write_file (path, "junk", 4);
    snprintf (path, sizeof path, "%s/objects/zz", fixture->store);
    assert_int_equal (mkdir (path, 0700), 0);
    snprintf (path, sizeof path, "%s/objects/zz/whatever", fixture->store);
    s_write_file (path, "junkjunk", 8);
    snprintf (path, sizeof path, "%s/objects/ba/short", fixture->store);
    s_write_file (path, "junkjunk", 8);
    snprintf (path, sizeof path, "%s/objects/README", fixture->store);
    s_write_file (path, "junkjunk", 8);
    //  A directory where a partial would go.
    char blocked [65];
    s_hash_of ("blocked", 7, blocked);
    snprintf (path, sizeof path, "%s/partial/%s", fixture->store, blocked);
    assert_int_equal (mkdir (path, 0700), 0);
    fixture->blobs = qn_blobstore_new (fixture->store);
    assert_non_null (fixture->blobs);
    snprintf (path, sizeof path, "%s/partial/tmp.crashed", fixture->store);
    assert_int_equal (access (path, F_OK), -1);
    snprintf (path, sizeof path, "%s/partial/notahash", fixture->store);
    assert_int_equal (access (path, F_OK), 0);
    assert_int_equal (qn_blobstore_bytes (fixture->blobs), 3);
    assert_true (qn_blobstore_has (fixture->blobs, ABC_SHA256));
    assert_int_equal (qn_blobstore_write (fixture->blobs, blocked, 0, "blocked", 7, NULL, error, sizeof error), -1);
    assert_int_equal (qn_blobstore_partial (fixture->blobs, blocked), 0);
    //  A blob whose content rotted on disk is found by verify and removed.
    char object [512];
    assert_int_equal (qn_blobstore_path (fixture->blobs, ABC_SHA256, object, sizeof object), 0);
    assert_int_equal (chmod (object, 0600), 0);
    s_write_file (object, "abd", 3);
    assert_int_equal (qn_blobstore_verify (fixture->blobs, ABC_SHA256), -1);
    assert_false (qn_blobstore_has (fixture->blobs, ABC_SHA256));
    assert_int_equal (qn_blobstore_verify (fixture->blobs, ABC_SHA256), -1);
    //  A symlink planted as an object is not a blob.
    char planted [65];
    s_hash_of ("planted", 7, planted);
    snprintf (path, sizeof path, "%s/objects/%.2s", fixture->store, planted);
    mkdir (path, 0700);
    snprintf (path, sizeof path, "%s/objects/%.2s/%s", fixture->store, planted, planted + 2);
    assert_int_equal (symlink ("/etc/passwd", path), 0);
    assert_false (qn_blobstore_has (fixture->blobs, planted));
    uint8_t buffer [16];
    assert_int_equal (qn_blobstore_read (fixture->blobs, planted, 0, buffer, sizeof buffer), -1);
}

//  The store vouches for a blob's file as long as it is the file whose
//  bytes were checked: stored, touched (its own change), verified; not
//  once it is written to.  What is not a file of its size is dropped.
static void
test_vouched (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    char error [256], hash [65], object [512];
    assert_int_equal (qn_blobstore_put_buffer (fixture->blobs, "abc", 3, hash, error,
                                               sizeof error), 0);
    assert_int_equal (qn_blobstore_path (fixture->blobs, hash, object, sizeof object), 0);
    struct stat st;
    assert_int_equal (stat (object, &st), 0);
    assert_true (qn_blobstore_vouched (fixture->blobs, hash, &st));
    usleep (20000);             //  past the clock's tick, so that times move
    assert_int_equal (qn_blobstore_touch (fixture->blobs, hash), 0);
    struct stat touched;
    assert_int_equal (stat (object, &touched), 0);
    assert_false (qn_blobstore_vouched (fixture->blobs, hash, &st));
    assert_true (qn_blobstore_vouched (fixture->blobs, hash, &touched));
    //  Written in place, same size: no longer vouched for, touched or not
    usleep (20000);
    assert_int_equal (chmod (object, 0644), 0);
    s_write_file (object, "abd", 3);
    assert_int_equal (stat (object, &st), 0);
    assert_false (qn_blobstore_vouched (fixture->blobs, hash, &st));
    assert_int_equal (qn_blobstore_touch (fixture->blobs, hash), 0);
    assert_int_equal (stat (object, &st), 0);
    assert_false (qn_blobstore_vouched (fixture->blobs, hash, &st));
    //  Written back: vouched for again once verified
    s_write_file (object, "abc", 3);
    assert_int_equal (qn_blobstore_verify (fixture->blobs, hash), 0);
    assert_int_equal (stat (object, &st), 0);
    assert_true (qn_blobstore_vouched (fixture->blobs, hash, &st));
    assert_false (qn_blobstore_vouched (fixture->blobs, ABC_SHA256 "x", &st));
    //  Misfits: the right size stays, another size or a symlink goes
    assert_int_equal (qn_blobstore_drop_misfit (fixture->blobs, hash, 3), 0);
    assert_int_equal (qn_blobstore_drop_misfit (fixture->blobs, hash, 4), 1);
    assert_false (qn_blobstore_has (fixture->blobs, hash));
    assert_int_equal (qn_blobstore_drop_misfit (fixture->blobs, hash, 3), 0);
    assert_int_equal (symlink ("/etc/passwd", object), 0);
    assert_int_equal (qn_blobstore_drop_misfit (fixture->blobs, hash, 3), 1);
    assert_int_equal (lstat (object, &st), -1);
}

static void
test_hostile_hashes (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    qn_blobstore_t *blobs = fixture->blobs;
    const char *bad [] = {
        "../../../../etc/passwd",
        "",
        "ab/../../../../../../../../../../../../../../../../../../../../../..",
        "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD",
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015a",
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad/",
        "tmp.XXXXXX",
        NULL
    };
    char error [256], path [512];
    uint8_t buffer [4];
    for (int i = 0; bad [i]; i++) {
        error [0] = 0;
        assert_int_equal (qn_blobstore_write (blobs, bad [i], 0, "x", 1, NULL, error, sizeof error), -1);
        assert_string_equal (error, "invalid blob hash");
        assert_int_equal (qn_blobstore_finish (blobs, bad [i], 1, error, sizeof error), -1);
        assert_false (qn_blobstore_has (blobs, bad [i]));
        assert_int_equal (qn_blobstore_partial (blobs, bad [i]), 0);
        assert_int_equal (qn_blobstore_path (blobs, bad [i], path, sizeof path), -1);
        assert_int_equal (qn_blobstore_read (blobs, bad [i], 0, buffer, 4), -1);
        assert_int_equal (qn_blobstore_remove (blobs, bad [i]), -1);
        assert_int_equal (qn_blobstore_abandon (blobs, bad [i]), -1);
        assert_int_equal (qn_blobstore_verify (blobs, bad [i]), -1);
    }
    assert_int_equal (qn_blobstore_write (blobs, NULL, 0, "x", 1, NULL, error, sizeof error), -1);
    assert_int_equal (qn_blobstore_write (blobs, ABC_SHA256, 0, NULL, 1, NULL, error, sizeof error), -1);
    //  /etc/passwd is still there, nothing was written outside.
    assert_int_equal (access ("/etc/passwd", F_OK), 0);
}

static void
test_special_files (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    char path [512], hash [65], error [256] = "";
    snprintf (path, sizeof path, "%s/fifo", fixture->dir);
    assert_int_equal (mkfifo (path, 0600), 0);
    //  Refused, and above all not blocked on.
    assert_int_equal (qn_blobstore_hash_file (path, hash, NULL, error, sizeof error), -1);
    assert_non_null (strstr (error, "not a regular file"));
    assert_int_equal (qn_blobstore_put_file (fixture->blobs, path, hash, NULL, error, sizeof error), -1);
    assert_int_equal (qn_blobstore_hash_file (fixture->dir, hash, NULL, error, sizeof error), -1);
    assert_int_equal (qn_blobstore_put_file (fixture->blobs, fixture->dir, hash, NULL, error, sizeof error), -1);
    snprintf (path, sizeof path, "%s/missing", fixture->dir);
    assert_int_equal (qn_blobstore_hash_file (path, hash, NULL, error, sizeof error), -1);
    assert_non_null (strstr (error, "No such file"));
    assert_int_equal (qn_blobstore_put_file (fixture->blobs, path, hash, NULL, error, sizeof error), -1);
    assert_int_equal (qn_blobstore_hash_fd (-1, hash, NULL, error, sizeof error), -1);
    assert_int_equal (qn_blobstore_put_fd (fixture->blobs, -1, hash, NULL, error, sizeof error), -1);
    assert_int_equal (qn_blobstore_hash_file ("/dev/null", hash, NULL, error, sizeof error), -1);
    assert_int_equal (qn_blobstore_hash_chunk (NULL, 5, (uint8_t *) hash), -1);
    assert_int_equal (qn_blobstore_bytes (fixture->blobs), 0);
}

static void
test_remove_abandon (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    qn_blobstore_t *blobs = fixture->blobs;
    char hash [65], error [256] = "";
    s_hash_of ("hello world", 11, hash);
    assert_int_equal (qn_blobstore_abandon (blobs, hash), -1);
    assert_int_equal (qn_blobstore_remove (blobs, hash), -1);
    assert_int_equal (qn_blobstore_write (blobs, hash, 0, "hello", 5, NULL, error, sizeof error), 0);
    assert_int_equal (qn_blobstore_abandon (blobs, hash), 0);
    assert_int_equal (qn_blobstore_partial (blobs, hash), 0);
    //  After abandon, the transfer starts at 0 and the hash from scratch.
    assert_int_equal (qn_blobstore_write (blobs, hash, 0, "hello", 5, NULL, error, sizeof error), 0);
    assert_int_equal (qn_blobstore_remove (blobs, hash), 0);
    assert_int_equal (qn_blobstore_write (blobs, hash, 0, "hello world", 11, NULL, error, sizeof error), 0);
    assert_int_equal (qn_blobstore_finish (blobs, hash, 11, error, sizeof error), 0);
    assert_int_equal (qn_blobstore_bytes (blobs), 11);
    assert_int_equal (qn_blobstore_remove (blobs, hash), 0);
    assert_false (qn_blobstore_has (blobs, hash));
    assert_int_equal (qn_blobstore_bytes (blobs), 0);
    assert_int_equal (qn_blobstore_remove (blobs, hash), -1);
}

//  Sets a blob's (or partial's) mtime to seconds ago
static void
s_age (const char *path, int64_t seconds)
{
    struct timespec times [2];
    clock_gettime (CLOCK_REALTIME, &times [0]);
    times [0].tv_sec -= seconds;
    times [1] = times [0];
    assert_int_equal (utimensat (AT_FDCWD, path, times, AT_SYMLINK_NOFOLLOW), 0);
}

static void
test_sweep_and_trim (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    qn_blobstore_t *blobs = fixture->blobs;
    char hashes [4][65], path [512], error [256] = "";
    const char *contents [] = { "aaaaaaaaaa", "bbbbbbbbbbbbbbbbbbbb", "cccccccccccccccccccccccccccccc",
                                "dddddddddddddddddddddddddddddddddddddddd" };
    //  Four blobs of 10, 20, 30, 40 bytes used 400, 300, 200 and 100 s ago
    for (int i = 0; i < 4; i++) {
        assert_int_equal (qn_blobstore_put_buffer (blobs, contents [i], strlen (contents [i]),
                                                   hashes [i], error, sizeof error), 0);
        assert_int_equal (qn_blobstore_path (blobs, hashes [i], path, sizeof path), 0);
        s_age (path, 400 - 100 * i);
    }
    assert_int_equal (qn_blobstore_bytes (blobs), 100);
    //  Under the bound: nothing goes
    size_t removed = 99;
    assert_int_equal (qn_blobstore_trim (blobs, 100, 0, &removed), 0);
    assert_int_equal (removed, 0);
    //  Using the oldest makes it the newest
    assert_int_equal (qn_blobstore_touch (blobs, hashes [0]), 0);
    //  Down to 75 bytes: the least recently used (20 bytes) and then the
    //  next (30) go; the touched one stays
    assert_int_equal (qn_blobstore_trim (blobs, 75, 0, &removed), 50);
    assert_int_equal (removed, 2);
    assert_true (qn_blobstore_has (blobs, hashes [0]));
    assert_false (qn_blobstore_has (blobs, hashes [1]));
    assert_false (qn_blobstore_has (blobs, hashes [2]));
    assert_true (qn_blobstore_has (blobs, hashes [3]));
    //  Blobs used in the last spare_s seconds stay even over the bound
    assert_int_equal (qn_blobstore_trim (blobs, 0, 50, &removed), 40);
    assert_int_equal (removed, 1);
    assert_true (qn_blobstore_has (blobs, hashes [0]));
    assert_int_equal (qn_blobstore_touch (blobs, hashes [3]), -1);
    assert_int_equal (qn_blobstore_touch (blobs, "zz"), -1);

    //  Partials: a stale one goes, a fresh one and an open one stay
    char stale [65], fresh [65], open_one [65];
    s_hash_of ("stale transfer", 14, stale);
    s_hash_of ("fresh transfer", 14, fresh);
    s_hash_of ("open transfer!", 14, open_one);
    assert_int_equal (qn_blobstore_write (blobs, stale, 0, "stale", 5, NULL, error, sizeof error), 0);
    assert_int_equal (qn_blobstore_write (blobs, fresh, 0, "fresh", 5, NULL, error, sizeof error), 0);
    assert_int_equal (qn_blobstore_write (blobs, open_one, 0, "open", 4, NULL, error, sizeof error), 0);
    //  Reopening the store closes every open partial; then one is opened again
    qn_blobstore_destroy (&fixture->blobs);
    fixture->blobs = blobs = qn_blobstore_new (fixture->store);
    assert_non_null (blobs);
    assert_int_equal (qn_blobstore_write (blobs, open_one, 4, " tr", 3, NULL, error, sizeof error), 0);
    snprintf (path, sizeof path, "%s/partial/%s", fixture->store, stale);
    s_age (path, 7200);
    snprintf (path, sizeof path, "%s/partial/%s", fixture->store, open_one);
    s_age (path, 7200);
    assert_int_equal (qn_blobstore_sweep_partials (blobs, 3600), 5);
    assert_int_equal (qn_blobstore_partial (blobs, stale), 0);
    assert_int_equal (qn_blobstore_partial (blobs, fresh), 5);
    assert_int_equal (qn_blobstore_partial (blobs, open_one), 7);
}

//  A trim walks objects/ only when what this instance stored may have
//  passed the bound: a file someone else put there is not seen until then
static void
test_trim_walks_only_when_over (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    qn_blobstore_t *blobs = fixture->blobs;
    char a [65], b [65], c [65], foreign [65], path [512], error [256] = "";
    assert_int_equal (qn_blobstore_put_buffer (blobs, "aaaaaaaaaa", 10, a, error, sizeof error), 0);
    assert_int_equal (qn_blobstore_put_buffer (blobs, "bbbbbbbbbbbbbbbbbbbb", 20, b, error,
                                               sizeof error), 0);
    assert_int_equal (qn_blobstore_trim (blobs, 1000, 0, NULL), 0);     //  walks: 30 bytes
    //  500 bytes behind the store's back, in the old past
    char big [500];
    memset (big, 'f', sizeof big);
    s_hash_of (big, sizeof big, foreign);
    snprintf (path, sizeof path, "%s/objects/%.2s", fixture->store, foreign);
    mkdir (path, 0700);
    snprintf (path, sizeof path, "%s/objects/%.2s/%s", fixture->store, foreign, foreign + 2);
    FILE *file = fopen (path, "w");
    assert_non_null (file);
    assert_int_equal (fwrite (big, 1, sizeof big, file), sizeof big);
    fclose (file);
    s_age (path, 1000);
    size_t removed = 9;
    assert_int_equal (qn_blobstore_trim (blobs, 100, 0, &removed), 0);   //  30 <= 100: no walk
    assert_int_equal (removed, 0);
    assert_true (qn_blobstore_has (blobs, foreign));
    //  Storing 80 more may cross the bound: the next trim walks, finds
    //  610 bytes, and the oldest go first: the foreign file, then a
    char eighty [80];
    memset (eighty, 'e', sizeof eighty);
    assert_int_equal (qn_blobstore_put_buffer (blobs, eighty, sizeof eighty, c, error,
                                               sizeof error), 0);
    assert_int_equal (qn_blobstore_trim (blobs, 100, 0, &removed), 510);
    assert_int_equal (removed, 2);
    assert_false (qn_blobstore_has (blobs, foreign));
    assert_false (qn_blobstore_has (blobs, a));
    assert_true (qn_blobstore_has (blobs, b));
    assert_true (qn_blobstore_has (blobs, c));
    assert_int_equal (qn_blobstore_trim (blobs, 100, 0, &removed), 0);   //  100: no walk
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_valid_hash),
        cmocka_unit_test_setup_teardown (test_layout, setup, teardown),
        cmocka_unit_test_setup_teardown (test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown (test_out_of_order, setup, teardown),
        cmocka_unit_test_setup_teardown (test_resume_after_restart, setup, teardown),
        cmocka_unit_test_setup_teardown (test_truncated_partial, setup, teardown),
        cmocka_unit_test_setup_teardown (test_many_open_partials, setup, teardown),
        cmocka_unit_test_setup_teardown (test_corrupted_chunk, setup, teardown),
        cmocka_unit_test_setup_teardown (test_whole_hash_mismatch, setup, teardown),
        cmocka_unit_test_setup_teardown (test_dedup, setup, teardown),
        cmocka_unit_test_setup_teardown (test_empty_blob, setup, teardown),
        cmocka_unit_test_setup_teardown (test_big_file, setup, teardown),
        cmocka_unit_test_setup_teardown (test_strays_and_scratch, setup, teardown),
        cmocka_unit_test_setup_teardown (test_vouched, setup, teardown),
        cmocka_unit_test_setup_teardown (test_hostile_hashes, setup, teardown),
        cmocka_unit_test_setup_teardown (test_special_files, setup, teardown),
        cmocka_unit_test_setup_teardown (test_remove_abandon, setup, teardown),
        cmocka_unit_test_setup_teardown (test_sweep_and_trim, setup, teardown),
        cmocka_unit_test_setup_teardown (test_trim_walks_only_when_over, setup, teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
