/*  qn_blobstore - a content-addressed directory of blobs (artifacts).

    Blobs are named by the SHA-256 of their content, in lowercase hex:

        <dir>/objects/ab/cdef...      complete blobs, read-only (0444)
        <dir>/partial/<hash>          unfinished transfers, resumable
        <dir>/partial/tmp.*           scratch files of put_file / put_buffer

    The coordinator keeps one under <data-dir>/blobs, an agent one under
    <agent-data-dir>/blobs as its local cache.  A blob arrives in chunks
    written strictly in order: the resume point after a disconnect or a
    restart is the size of the partial file.  Every chunk may carry its own
    SHA-256; the whole blob is verified when it is finished and only then
    renamed, atomically, into objects/.  The same content is stored once.

    Nothing read from the network or the disk is trusted: every hash
    argument goes through qn_blobstore_valid_hash, a partial file shorter
    than the store remembers is re-read, stray files are ignored.

    One process owns a store directory: qn_blobstore_new removes scratch
    files left by a crash, so two live stores on one directory would
    remove each other's scratch files.  Not thread-safe, except where a
    function says so.

    The store remembers what each complete blob's file was (device,
    inode, size, mtime, ctime) when its SHA-256 was last checked: at
    install, by qn_blobstore_verify, or by a caller that hashed it
    (qn_blobstore_vouch).  Any write to the file moves its ctime, so a
    file that still matches holds the bytes its name says without being
    read again (qn_blobstore_vouched).  The table is in memory: after a
    restart every blob is hashed again once.
*/
#ifndef QN_BLOBSTORE_H_INCLUDED
#define QN_BLOBSTORE_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define QN_BLOB_HASH_HEX 64
//  Partials kept open at once (file descriptor and running hash); the
//  least recently used one is closed beyond this, and re-read on its
//  next chunk.
#define QN_BLOBSTORE_MAX_OPEN 64

typedef struct _qn_blobstore_t qn_blobstore_t;

//  Opens the store in dir, creating dir (0700, with its parents), objects/
//  and partial/, and removing stale scratch files.  NULL on failure.
qn_blobstore_t *
    qn_blobstore_new (const char *dir);

void
    qn_blobstore_destroy (qn_blobstore_t **self_p);

//  True for exactly 64 lowercase hex characters (NULL is false).
bool
    qn_blobstore_valid_hash (const char *hash);

//  True if the complete blob is in the store.
bool
    qn_blobstore_has (qn_blobstore_t *self, const char *hash);

//  Writes the path of a complete blob into path (for staging, which
//  copies it).  -1 if the hash is invalid, the blob absent or size too small.
int
    qn_blobstore_path (qn_blobstore_t *self, const char *hash, char *path, size_t size);

//  Bytes already received of an unfinished transfer: the offset of the
//  next chunk.  0 if none (or the hash is invalid).
uint64_t
    qn_blobstore_partial (qn_blobstore_t *self, const char *hash);

//  Appends a chunk to the partial blob.  offset must equal the partial
//  size (else -1, "offset N, expected M"); when chunk_sha256 (32 bytes) is
//  given the chunk must hash to it (else -1, "chunk at N corrupted", and
//  nothing is written).  If the complete blob is already present the chunk
//  is accepted and dropped.  error may be NULL.
int
    qn_blobstore_write (qn_blobstore_t *self, const char *hash, uint64_t offset,
                        const void *data, size_t size, const uint8_t *chunk_sha256,
                        char *error, size_t error_size);

//  Completes a transfer: checks the size and the SHA-256 of the whole
//  partial, fsyncs it and renames it into objects/.  On a mismatch the
//  partial is deleted (the sender must start again at 0) and -1 returned.
//  A blob already present is 0, and any partial of it is dropped.
int
    qn_blobstore_finish (qn_blobstore_t *self, const char *hash, uint64_t size,
                         char *error, size_t error_size);

//  Hashes a local regular file and stores it, copying only if the content
//  is not present yet.  The copy is hashed again: a file that changes
//  while it is stored is an error.
int
    qn_blobstore_put_file (qn_blobstore_t *self, const char *path,
                           char hash_out [QN_BLOB_HASH_HEX + 1], uint64_t *size_out,
                           char *error, size_t error_size);

//  As put_file, from an open file descriptor (read from offset 0 with
//  pread; the descriptor's offset is not used).
int
    qn_blobstore_put_fd (qn_blobstore_t *self, int fd,
                         char hash_out [QN_BLOB_HASH_HEX + 1], uint64_t *size_out,
                         char *error, size_t error_size);

//  Stores a buffer (e.g. a tree manifest).
int
    qn_blobstore_put_buffer (qn_blobstore_t *self, const void *data, size_t size,
                             char hash_out [QN_BLOB_HASH_HEX + 1],
                             char *error, size_t error_size);

//  SHA-256 of a regular file (a fifo or device is refused, never opened
//  for blocking).  size_out may be NULL.
int
    qn_blobstore_hash_file (const char *path, char hash_out [QN_BLOB_HASH_HEX + 1],
                            uint64_t *size_out, char *error, size_t error_size);

//  SHA-256 of an open regular file, read from offset 0 with pread.
int
    qn_blobstore_hash_fd (int fd, char hash_out [QN_BLOB_HASH_HEX + 1],
                          uint64_t *size_out, char *error, size_t error_size);

//  SHA-256 of a buffer, binary.
int
    qn_blobstore_hash_chunk (const void *data, size_t size, uint8_t out [32]);

//  Reads up to size bytes of a complete blob at offset; returns the bytes
//  read (0 at or past the end), or -1 if the blob is absent.
ssize_t
    qn_blobstore_read (qn_blobstore_t *self, const char *hash, uint64_t offset,
                       void *buffer, size_t size);

//  Re-hashes a complete blob; a blob whose content no longer matches its
//  name is removed, a good one is vouched for.  0 if good, -1 if absent
//  or bad.
int
    qn_blobstore_verify (qn_blobstore_t *self, const char *hash);

//  Thread-safe.  Records st (the blob's file, as fstat or lstat saw it)
//  as holding the bytes of hash: the caller checked them.
void
    qn_blobstore_vouch (qn_blobstore_t *self, const char *hash, const struct stat *st);

//  Thread-safe.  True if st is the blob's file as it was when its bytes
//  were last checked (see above); false if it changed since, or its
//  check is not remembered.
bool
    qn_blobstore_vouched (qn_blobstore_t *self, const char *hash, const struct stat *st);

//  Removes a complete blob found damaged, if its file is still the one
//  seen (device and inode) and not vouched for: never a good copy fetched
//  since.  0 if it removed it, else -1.
int
    qn_blobstore_drop (qn_blobstore_t *self, const char *hash, const struct stat *seen);

//  Removes what is at the place of a complete blob if it is not a
//  regular file of size bytes (appended to, truncated, a symlink...).
//  1 if it removed something, 0 if there is nothing or it looks whole,
//  -1 if it could not remove it (or the hash is invalid).
int
    qn_blobstore_drop_misfit (qn_blobstore_t *self, const char *hash, uint64_t size);

//  Removes the complete blob and any partial of it.  0 if something was
//  removed, -1 if there was nothing (or the hash is invalid).
int
    qn_blobstore_remove (qn_blobstore_t *self, const char *hash);

//  Drops a partial transfer.  0 if there was one, else -1.
int
    qn_blobstore_abandon (qn_blobstore_t *self, const char *hash);

//  Total bytes of complete blobs (walks objects/).
uint64_t
    qn_blobstore_bytes (qn_blobstore_t *self);

//  Marks a complete blob as used now (its mtime), for qn_blobstore_trim;
//  a blob vouched for stays so.  0, or -1 if it is absent.
int
    qn_blobstore_touch (qn_blobstore_t *self, const char *hash);

//  Removes partial transfers nobody wrote to for max_age_s seconds (a
//  sender that never came back), except those open now.  Returns the
//  bytes freed.
uint64_t
    qn_blobstore_sweep_partials (qn_blobstore_t *self, int64_t max_age_s);

//  A cache's bound: removes the least recently used complete blobs
//  (oldest mtime: stored or touched) until at most max_bytes remain,
//  sparing every blob used in the last spare_s seconds, which may be on
//  their way into a task.  Returns the bytes freed; *count_p (may be
//  NULL) gets the number of blobs removed.  Walks objects/ only when the
//  store may be over the bound (what it held at the last trim plus what
//  this instance stored since): cheap to call after every staging, for a
//  store only this instance writes.
uint64_t
    qn_blobstore_trim (qn_blobstore_t *self, uint64_t max_bytes, int64_t spare_s,
                       size_t *count_p);

#ifdef __cplusplus
}
#endif
#endif
