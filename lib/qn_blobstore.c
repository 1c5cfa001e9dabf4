/*  qn_blobstore - a content-addressed directory of blobs.  See
    include/qn_blobstore.h for the layout and the contract. */
#include "qn_blobstore.h"
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define S_IO_BUFFER (256 * 1024)
#define S_TMP_PREFIX "tmp."

//  One open partial transfer: its file and the SHA-256 of what it holds.
typedef struct {
    char hash [QN_BLOB_HASH_HEX + 1];
    int fd;                             //  -1 when the slot is free
    uint64_t size;                      //  bytes in the file and the state
    crypto_hash_sha256_state state;
    uint64_t used;                      //  LRU tick
} s_partial_t;

//  What a complete blob's file was when its SHA-256 was last checked.
//  Any write to it moves its ctime, which no one can set back, so the
//  same identity means the same bytes.
typedef struct {
    char hash [QN_BLOB_HASH_HEX + 1];   //  empty: a free slot
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
    struct timespec ctime;
} s_vouched_t;

//  Slots of the vouched table, direct-mapped by the hash's first hex
//  digits: a blob that lost its slot is only hashed again when used.
#define S_VOUCHED_SLOTS 16384

struct _qn_blobstore_t {
    char *dir;
    char *objects;
    char *partial;
    s_partial_t open [QN_BLOBSTORE_MAX_OPEN];
    uint64_t tick;
    //  For trim: the bytes objects/ held at the last trim, plus what was
    //  installed since (removals not taken off: never less than the truth,
    //  so a trim that sees it under the bound need not walk objects/)
    bool trim_known;
    uint64_t trim_bytes;
    //  Staging threads read and write it (qn_blobstore_vouched)
    pthread_mutex_t vouched_lock;
    s_vouched_t *vouched;               //  allocated at the first vouch
};

static void
s_error (char *error, size_t error_size, const char *format, ...)
{
    if (!error || !error_size)
        return;
    va_list args;
    va_start (args, format);
    vsnprintf (error, error_size, format, args);
    va_end (args);
}

static void
s_sodium (void)
{
    static bool initialized = false;
    if (!initialized) {
        //  crypto_hash_sha256 needs no init, but the CPU feature probe
        //  picks the fast implementation.
        if (sodium_init () >= 0)
            initialized = true;
    }
}

static void
s_hex (const uint8_t digest [32], char hex [QN_BLOB_HASH_HEX + 1])
{
    static const char digits [] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        hex [2 * i] = digits [digest [i] >> 4];
        hex [2 * i + 1] = digits [digest [i] & 15];
    }
    hex [QN_BLOB_HASH_HEX] = 0;
}

static char *
s_join (const char *dir, const char *name)
{
    size_t size = strlen (dir) + strlen (name) + 2;
    char *path = (char *) malloc (size);
    if (path)
        snprintf (path, size, "%s/%s", dir, name);
    return path;
}

//  Creates dir and its missing parents, each 0700.
static int
s_mkdir_p (const char *dir)
{
    char *copy = strdup (dir);
    if (!copy)
        return -1;
    for (char *slash = copy + 1; *slash; slash++) {
        if (*slash != '/')
            continue;
        *slash = 0;
        if (mkdir (copy, 0700) && errno != EEXIST) {
            free (copy);
            return -1;
        }
        *slash = '/';
    }
    int rc = mkdir (copy, 0700);
    free (copy);
    if (rc && errno != EEXIST)
        return -1;
    struct stat st;
    return stat (dir, &st) == 0 && S_ISDIR (st.st_mode)? 0: -1;
}

static void
s_fsync_dir (const char *dir)
{
    int fd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync (fd);
        close (fd);
    }
}

static void
s_object_path (qn_blobstore_t *self, const char *hash, char *path, size_t size)
{
    snprintf (path, size, "%s/%.2s/%s", self->objects, hash, hash + 2);
}

static void
s_partial_path (qn_blobstore_t *self, const char *hash, char *path, size_t size)
{
    snprintf (path, size, "%s/%s", self->partial, hash);
}

//  Full pwrite; 0 or -1 with errno.
static int
s_pwrite_all (int fd, const void *data, size_t size, uint64_t offset)
{
    const uint8_t *bytes = (const uint8_t *) data;
    while (size) {
        ssize_t rc = pwrite (fd, bytes, size, (off_t) offset);
        if (rc < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        bytes += rc;
        size -= (size_t) rc;
        offset += (uint64_t) rc;
    }
    return 0;
}

qn_blobstore_t *
qn_blobstore_new (const char *dir)
{
    if (!dir || !*dir)
        return NULL;
    s_sodium ();
    qn_blobstore_t *self = (qn_blobstore_t *) calloc (1, sizeof (qn_blobstore_t));
    if (!self)
        return NULL;
    for (int i = 0; i < QN_BLOBSTORE_MAX_OPEN; i++)
        self->open [i].fd = -1;
    pthread_mutex_init (&self->vouched_lock, NULL);
    self->dir = strdup (dir);
    self->objects = s_join (dir, "objects");
    self->partial = s_join (dir, "partial");
    if (!self->dir || !self->objects || !self->partial
    ||  s_mkdir_p (dir) || s_mkdir_p (self->objects) || s_mkdir_p (self->partial)) {
        qn_blobstore_destroy (&self);
        return NULL;
    }
    //  Scratch files belong to a put that a crash interrupted: nobody can
    //  resume them.  Named partials stay, they are resume points.
    DIR *handle = opendir (self->partial);
    if (!handle) {
        qn_blobstore_destroy (&self);
        return NULL;
    }
    int dir_fd = dirfd (handle);
    struct dirent *entry;
    while ((entry = readdir (handle)))
        if (strncmp (entry->d_name, S_TMP_PREFIX, strlen (S_TMP_PREFIX)) == 0)
            unlinkat (dir_fd, entry->d_name, 0);
    closedir (handle);
    return self;
}

static void
s_slot_close (s_partial_t *slot)
{
    if (slot->fd >= 0)
        close (slot->fd);
    slot->fd = -1;
    slot->hash [0] = 0;
    slot->size = 0;
}

void
qn_blobstore_destroy (qn_blobstore_t **self_p)
{
    assert (self_p);
    qn_blobstore_t *self = *self_p;
    if (!self)
        return;
    for (int i = 0; i < QN_BLOBSTORE_MAX_OPEN; i++)
        s_slot_close (&self->open [i]);
    free (self->dir);
    free (self->objects);
    free (self->partial);
    free (self->vouched);
    pthread_mutex_destroy (&self->vouched_lock);
    free (self);
    *self_p = NULL;
}

bool
qn_blobstore_valid_hash (const char *hash)
{
    if (!hash)
        return false;
    for (int i = 0; i < QN_BLOB_HASH_HEX; i++) {
        char c = hash [i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;       //  also stops at the terminator of a short one
    }
    return hash [QN_BLOB_HASH_HEX] == 0;
}

bool
qn_blobstore_has (qn_blobstore_t *self, const char *hash)
{
    assert (self);
    if (!qn_blobstore_valid_hash (hash))
        return false;
    char path [PATH_MAX];
    s_object_path (self, hash, path, sizeof path);
    struct stat st;
    return lstat (path, &st) == 0 && S_ISREG (st.st_mode);
}

int
qn_blobstore_path (qn_blobstore_t *self, const char *hash, char *path, size_t size)
{
    assert (self);
    if (!path || !qn_blobstore_has (self, hash))
        return -1;
    int length = snprintf (path, size, "%s/%.2s/%s", self->objects, hash, hash + 2);
    return length < 0 || (size_t) length >= size? -1: 0;
}

static s_partial_t *
s_slot_find (qn_blobstore_t *self, const char *hash)
{
    for (int i = 0; i < QN_BLOBSTORE_MAX_OPEN; i++)
        if (self->open [i].fd >= 0 && strcmp (self->open [i].hash, hash) == 0)
            return &self->open [i];
    return NULL;
}

//  Recomputes the running hash from the partial file itself: after a
//  restart, an eviction from the LRU, or when the file is not the size we
//  remember (truncated by a crash or by hand).  Whatever the file holds is
//  the resume point; the final hash check catches bad content.
static int
s_slot_rehash (s_partial_t *slot)
{
    uint8_t *buffer = (uint8_t *) malloc (S_IO_BUFFER);
    if (!buffer)
        return -1;
    crypto_hash_sha256_init (&slot->state);
    uint64_t offset = 0;
    while (true) {
        ssize_t rc = pread (slot->fd, buffer, S_IO_BUFFER, (off_t) offset);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc < 0) {
            free (buffer);
            return -1;
        }
        if (rc == 0)
            break;
        crypto_hash_sha256_update (&slot->state, buffer, (unsigned long long) rc);
        offset += (uint64_t) rc;
    }
    free (buffer);
    slot->size = offset;
    return 0;
}

//  Returns the open partial of hash, opening (and with create, creating)
//  it if needed.  NULL if there is none or it cannot be opened.
static s_partial_t *
s_slot_open (qn_blobstore_t *self, const char *hash, bool create, char *error, size_t error_size)
{
    struct stat st;
    s_partial_t *slot = s_slot_find (self, hash);
    if (slot) {
        if (fstat (slot->fd, &st) == 0 && st.st_nlink > 0
        &&  (uint64_t) st.st_size == slot->size) {
            slot->used = ++self->tick;
            return slot;
        }
        //  Changed behind our back (the file was truncated or removed and
        //  recreated): start from what is on disk now.
        s_slot_close (slot);
    }
    char path [PATH_MAX];
    s_partial_path (self, hash, path, sizeof path);
    int flags = O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | (create? O_CREAT: 0);
    int fd = open (path, flags, 0600);
    if (fd < 0) {
        if (errno != ENOENT || create)
            s_error (error, error_size, "cannot open partial %s: %s", hash, strerror (errno));
        else
            s_error (error, error_size, "no transfer of %s in progress", hash);
        return NULL;
    }
    if (fstat (fd, &st) || !S_ISREG (st.st_mode)) {
        close (fd);
        s_error (error, error_size, "partial %s is not a regular file", hash);
        return NULL;
    }
    //  A free slot, else the least recently used one.
    slot = &self->open [0];
    for (int i = 0; i < QN_BLOBSTORE_MAX_OPEN; i++) {
        if (self->open [i].fd < 0) {
            slot = &self->open [i];
            break;
        }
        if (self->open [i].used < slot->used)
            slot = &self->open [i];
    }
    s_slot_close (slot);
    slot->fd = fd;
    memcpy (slot->hash, hash, QN_BLOB_HASH_HEX + 1);
    if (s_slot_rehash (slot)) {
        s_error (error, error_size, "cannot read partial %s: %s", hash, strerror (errno));
        s_slot_close (slot);
        return NULL;
    }
    slot->used = ++self->tick;
    return slot;
}

uint64_t
qn_blobstore_partial (qn_blobstore_t *self, const char *hash)
{
    assert (self);
    if (!qn_blobstore_valid_hash (hash))
        return 0;
    s_partial_t *slot = s_slot_find (self, hash);
    struct stat st;
    if (slot && fstat (slot->fd, &st) == 0 && st.st_nlink > 0
    &&  (uint64_t) st.st_size == slot->size)
        return slot->size;
    char path [PATH_MAX];
    s_partial_path (self, hash, path, sizeof path);
    if (lstat (path, &st) || !S_ISREG (st.st_mode))
        return 0;
    return (uint64_t) st.st_size;
}

int
qn_blobstore_write (qn_blobstore_t *self, const char *hash, uint64_t offset,
                    const void *data, size_t size, const uint8_t *chunk_sha256,
                    char *error, size_t error_size)
{
    assert (self);
    if (!qn_blobstore_valid_hash (hash)) {
        s_error (error, error_size, "invalid blob hash");
        return -1;
    }
    if (size && !data) {
        s_error (error, error_size, "no data");
        return -1;
    }
    if (qn_blobstore_has (self, hash))
        return 0;               //  content we hold already: nothing to keep
    s_partial_t *slot = s_slot_open (self, hash, true, error, error_size);
    if (!slot)
        return -1;
    if (offset != slot->size) {
        s_error (error, error_size, "offset %" PRIu64 ", expected %" PRIu64, offset, slot->size);
        return -1;
    }
    if (size > UINT64_MAX - offset || offset + size > (uint64_t) INT64_MAX) {
        s_error (error, error_size, "chunk at %" PRIu64 " too large", offset);
        return -1;
    }
    if (chunk_sha256) {
        uint8_t digest [32];
        qn_blobstore_hash_chunk (data, size, digest);
        if (memcmp (digest, chunk_sha256, 32)) {
            s_error (error, error_size, "chunk at %" PRIu64 " corrupted", offset);
            return -1;
        }
    }
    if (s_pwrite_all (slot->fd, data, size, offset)) {
        int saved = errno;
        //  Back to the last good size, so that the resume point holds.
        if (ftruncate (slot->fd, (off_t) offset))
            s_slot_close (slot);
        s_error (error, error_size, "cannot write chunk at %" PRIu64 ": %s", offset, strerror (saved));
        return -1;
    }
    crypto_hash_sha256_update (&slot->state, (const uint8_t *) data, size);
    slot->size += size;
    return 0;
}

//  The slot of hash in the vouched table; the caller holds the lock
static s_vouched_t *
s_vouched_slot (qn_blobstore_t *self, const char *hash)
{
    unsigned index = 0;
    for (int i = 0; i < 4; i++)
        index = index * 16 + (unsigned) (hash [i] <= '9'? hash [i] - '0': hash [i] - 'a' + 10);
    return &self->vouched [index % S_VOUCHED_SLOTS];
}

static bool
s_same_time (struct timespec a, struct timespec b)
{
    return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

void
qn_blobstore_vouch (qn_blobstore_t *self, const char *hash, const struct stat *st)
{
    assert (self);
    if (!qn_blobstore_valid_hash (hash) || !st || !S_ISREG (st->st_mode))
        return;
    pthread_mutex_lock (&self->vouched_lock);
    if (!self->vouched)
        self->vouched = (s_vouched_t *) calloc (S_VOUCHED_SLOTS, sizeof (s_vouched_t));
    if (self->vouched) {
        s_vouched_t *slot = s_vouched_slot (self, hash);
        memcpy (slot->hash, hash, QN_BLOB_HASH_HEX + 1);
        slot->dev = st->st_dev;
        slot->ino = st->st_ino;
        slot->size = st->st_size;
        slot->mtime = st->st_mtim;
        slot->ctime = st->st_ctim;
    }
    pthread_mutex_unlock (&self->vouched_lock);
}

bool
qn_blobstore_vouched (qn_blobstore_t *self, const char *hash, const struct stat *st)
{
    assert (self);
    if (!qn_blobstore_valid_hash (hash) || !st)
        return false;
    pthread_mutex_lock (&self->vouched_lock);
    const s_vouched_t *slot = self->vouched? s_vouched_slot (self, hash): NULL;
    bool same = slot && strcmp (slot->hash, hash) == 0 && S_ISREG (st->st_mode)
             && slot->dev == st->st_dev && slot->ino == st->st_ino && slot->size == st->st_size
             && s_same_time (slot->mtime, st->st_mtim) && s_same_time (slot->ctime, st->st_ctim);
    pthread_mutex_unlock (&self->vouched_lock);
    return same;
}

//  Moves a verified file into objects/, durably: the data is fsynced
//  before the rename, the directories after it.
static int
s_install (qn_blobstore_t *self, int fd, const char *from, const char *hash,
           char *error, size_t error_size)
{
    if (fchmod (fd, 0444) || fsync (fd)) {
        s_error (error, error_size, "cannot sync blob %s: %s", hash, strerror (errno));
        return -1;
    }
    char subdir [PATH_MAX];
    snprintf (subdir, sizeof subdir, "%s/%.2s", self->objects, hash);
    if (mkdir (subdir, 0700) && errno != EEXIST) {
        s_error (error, error_size, "cannot create %s: %s", subdir, strerror (errno));
        return -1;
    }
    char path [PATH_MAX];
    s_object_path (self, hash, path, sizeof path);
    struct stat st;
    uint64_t size = fstat (fd, &st) == 0? (uint64_t) st.st_size: 0;
    if (rename (from, path)) {
        s_error (error, error_size, "cannot store blob %s: %s", hash, strerror (errno));
        return -1;
    }
    self->trim_bytes += size;
    //  After the rename, which may move the ctime
    if (lstat (path, &st) == 0)
        qn_blobstore_vouch (self, hash, &st);
    s_fsync_dir (subdir);
    s_fsync_dir (self->partial);
    return 0;
}

int
qn_blobstore_finish (qn_blobstore_t *self, const char *hash, uint64_t size,
                     char *error, size_t error_size)
{
    assert (self);
    if (!qn_blobstore_valid_hash (hash)) {
        s_error (error, error_size, "invalid blob hash");
        return -1;
    }
    if (qn_blobstore_has (self, hash)) {
        qn_blobstore_abandon (self, hash);
        return 0;
    }
    //  An empty blob may arrive without any chunk.
    s_partial_t *slot = s_slot_open (self, hash, size == 0, error, error_size);
    if (!slot)
        return -1;
    if (slot->size != size) {
        s_error (error, error_size, "blob %s: size %" PRIu64 ", expected %" PRIu64,
                 hash, slot->size, size);
        qn_blobstore_abandon (self, hash);
        return -1;
    }
    crypto_hash_sha256_state state = slot->state;
    uint8_t digest [32];
    crypto_hash_sha256_final (&state, digest);
    char actual [QN_BLOB_HASH_HEX + 1];
    s_hex (digest, actual);
    if (strcmp (actual, hash)) {
        s_error (error, error_size, "blob %s: content hashes to %s", hash, actual);
        qn_blobstore_abandon (self, hash);
        return -1;
    }
    char path [PATH_MAX];
    s_partial_path (self, hash, path, sizeof path);
    int rc = s_install (self, slot->fd, path, hash, error, error_size);
    s_slot_close (slot);
    return rc;
}

int
qn_blobstore_hash_chunk (const void *data, size_t size, uint8_t out [32])
{
    if (!out || (size && !data))
        return -1;
    s_sodium ();
    crypto_hash_sha256 (out, (const uint8_t *) data, size);
    return 0;
}

//  Reads fd from 0 to its end into a hash; with copy_fd >= 0 also writes
//  every byte there.  The digest goes to digest, the length to size_p.
static int
s_hash_copy (int fd, int copy_fd, uint8_t digest [32], uint64_t *size_p,
             char *error, size_t error_size)
{
    uint8_t *buffer = (uint8_t *) malloc (S_IO_BUFFER);
    if (!buffer) {
        s_error (error, error_size, "out of memory");
        return -1;
    }
    s_sodium ();
    crypto_hash_sha256_state state;
    crypto_hash_sha256_init (&state);
    uint64_t offset = 0;
    while (true) {
        ssize_t rc = pread (fd, buffer, S_IO_BUFFER, (off_t) offset);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc < 0) {
            s_error (error, error_size, "read error: %s", strerror (errno));
            free (buffer);
            return -1;
        }
        if (rc == 0)
            break;
        if (copy_fd >= 0 && s_pwrite_all (copy_fd, buffer, (size_t) rc, offset)) {
            s_error (error, error_size, "write error: %s", strerror (errno));
            free (buffer);
            return -1;
        }
        crypto_hash_sha256_update (&state, buffer, (unsigned long long) rc);
        offset += (uint64_t) rc;
    }
    free (buffer);
    crypto_hash_sha256_final (&state, digest);
    *size_p = offset;
    return 0;
}

int
qn_blobstore_hash_fd (int fd, char hash_out [QN_BLOB_HASH_HEX + 1],
                      uint64_t *size_out, char *error, size_t error_size)
{
    struct stat st;
    if (fd < 0 || !hash_out || fstat (fd, &st)) {
        s_error (error, error_size, "bad file descriptor");
        return -1;
    }
    if (!S_ISREG (st.st_mode)) {
        s_error (error, error_size, "not a regular file");
        return -1;
    }
    uint8_t digest [32];
    uint64_t size;
    if (s_hash_copy (fd, -1, digest, &size, error, error_size))
        return -1;
    s_hex (digest, hash_out);
    if (size_out)
        *size_out = size;
    return 0;
}

int
qn_blobstore_hash_file (const char *path, char hash_out [QN_BLOB_HASH_HEX + 1],
                        uint64_t *size_out, char *error, size_t error_size)
{
    if (!path || !hash_out) {
        s_error (error, error_size, "no path");
        return -1;
    }
    //  Never open what is not a regular file: opening a fifo blocks, a
    //  device may act.  O_NONBLOCK covers a swap between stat and open.
    struct stat st;
    if (stat (path, &st)) {
        s_error (error, error_size, "%s: %s", path, strerror (errno));
        return -1;
    }
    if (!S_ISREG (st.st_mode)) {
        s_error (error, error_size, "%s: not a regular file", path);
        return -1;
    }
    int fd = open (path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
        s_error (error, error_size, "%s: %s", path, strerror (errno));
        return -1;
    }
    char reason [256] = "";
    int rc = qn_blobstore_hash_fd (fd, hash_out, size_out, reason, sizeof reason);
    close (fd);
    if (rc)
        s_error (error, error_size, "%s: %s", path, reason);
    return rc;
}

//  A scratch file in partial/, for puts.
static int
s_scratch (qn_blobstore_t *self, char *path, size_t size, char *error, size_t error_size)
{
    snprintf (path, size, "%s/" S_TMP_PREFIX "XXXXXX", self->partial);
    int fd = mkostemp (path, O_CLOEXEC);
    if (fd < 0)
        s_error (error, error_size, "cannot create a file in %s: %s", self->partial, strerror (errno));
    return fd;
}

int
qn_blobstore_put_fd (qn_blobstore_t *self, int fd, char hash_out [QN_BLOB_HASH_HEX + 1],
                     uint64_t *size_out, char *error, size_t error_size)
{
    assert (self);
    char hash [QN_BLOB_HASH_HEX + 1];
    uint64_t size;
    if (qn_blobstore_hash_fd (fd, hash, &size, error, error_size))
        return -1;
    if (!qn_blobstore_has (self, hash)) {
        char scratch [PATH_MAX];
        int copy_fd = s_scratch (self, scratch, sizeof scratch, error, error_size);
        if (copy_fd < 0)
            return -1;
        uint8_t digest [32];
        uint64_t copied;
        char actual [QN_BLOB_HASH_HEX + 1];
        int rc = s_hash_copy (fd, copy_fd, digest, &copied, error, error_size);
        if (rc == 0) {
            s_hex (digest, actual);
            //  Hashed twice because the file may be written to meanwhile:
            //  the stored copy must be what its name says.
            if (copied != size || strcmp (actual, hash)) {
                s_error (error, error_size, "file changed while it was being stored");
                rc = -1;
            }
        }
        if (rc == 0)
            rc = s_install (self, copy_fd, scratch, hash, error, error_size);
        close (copy_fd);
        if (rc) {
            unlink (scratch);
            return -1;
        }
    }
    if (hash_out)
        memcpy (hash_out, hash, QN_BLOB_HASH_HEX + 1);
    if (size_out)
        *size_out = size;
    return 0;
}

int
qn_blobstore_put_file (qn_blobstore_t *self, const char *path, char hash_out [QN_BLOB_HASH_HEX + 1],
                       uint64_t *size_out, char *error, size_t error_size)
{
    assert (self);
    if (!path) {
        s_error (error, error_size, "no path");
        return -1;
    }
    struct stat st;
    if (stat (path, &st)) {
        s_error (error, error_size, "%s: %s", path, strerror (errno));
        return -1;
    }
    if (!S_ISREG (st.st_mode)) {
        s_error (error, error_size, "%s: not a regular file", path);
        return -1;
    }
    int fd = open (path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
        s_error (error, error_size, "%s: %s", path, strerror (errno));
        return -1;
    }
    char reason [256] = "";
    int rc = qn_blobstore_put_fd (self, fd, hash_out, size_out, reason, sizeof reason);
    close (fd);
    if (rc)
        s_error (error, error_size, "%s: %s", path, reason);
    return rc;
}

int
qn_blobstore_put_buffer (qn_blobstore_t *self, const void *data, size_t size,
                         char hash_out [QN_BLOB_HASH_HEX + 1], char *error, size_t error_size)
{
    assert (self);
    if (size && !data) {
        s_error (error, error_size, "no data");
        return -1;
    }
    uint8_t digest [32];
    char hash [QN_BLOB_HASH_HEX + 1];
    qn_blobstore_hash_chunk (data, size, digest);
    s_hex (digest, hash);
    if (!qn_blobstore_has (self, hash)) {
        char scratch [PATH_MAX];
        int fd = s_scratch (self, scratch, sizeof scratch, error, error_size);
        if (fd < 0)
            return -1;
        int rc = s_pwrite_all (fd, data, size, 0);
        if (rc)
            s_error (error, error_size, "write error: %s", strerror (errno));
        else
            rc = s_install (self, fd, scratch, hash, error, error_size);
        close (fd);
        if (rc) {
            unlink (scratch);
            return -1;
        }
    }
    if (hash_out)
        memcpy (hash_out, hash, QN_BLOB_HASH_HEX + 1);
    return 0;
}

static int
s_open_object (qn_blobstore_t *self, const char *hash)
{
    if (!qn_blobstore_valid_hash (hash))
        return -1;
    char path [PATH_MAX];
    s_object_path (self, hash, path, sizeof path);
    int fd = open (path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
    struct stat st;
    if (fd >= 0 && (fstat (fd, &st) || !S_ISREG (st.st_mode))) {
        close (fd);
        fd = -1;
    }
    return fd;
}

ssize_t
qn_blobstore_read (qn_blobstore_t *self, const char *hash, uint64_t offset, void *buffer, size_t size)
{
    assert (self);
    if (size && !buffer)
        return -1;
    int fd = s_open_object (self, hash);
    if (fd < 0)
        return -1;
    if (offset > (uint64_t) INT64_MAX) {
        close (fd);
        return 0;
    }
    if (size > SSIZE_MAX)
        size = SSIZE_MAX;
    size_t done = 0;
    while (done < size) {
        ssize_t rc = pread (fd, (uint8_t *) buffer + done, size - done, (off_t) (offset + done));
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc < 0) {
            close (fd);
            return -1;
        }
        if (rc == 0)
            break;
        done += (size_t) rc;
    }
    close (fd);
    return (ssize_t) done;
}

int
qn_blobstore_verify (qn_blobstore_t *self, const char *hash)
{
    assert (self);
    int fd = s_open_object (self, hash);
    if (fd < 0)
        return -1;
    char actual [QN_BLOB_HASH_HEX + 1];
    uint64_t size;
    struct stat before, after;
    int rc = fstat (fd, &before) == 0? qn_blobstore_hash_fd (fd, actual, &size, NULL, 0): -1;
    if (rc == 0 && strcmp (actual, hash) == 0) {
        if (fstat (fd, &after) == 0 && s_same_time (before.st_ctim, after.st_ctim))
            qn_blobstore_vouch (self, hash, &after);
        close (fd);
        return 0;
    }
    close (fd);
    char path [PATH_MAX];
    s_object_path (self, hash, path, sizeof path);
    unlink (path);
    return -1;
}

int
qn_blobstore_abandon (qn_blobstore_t *self, const char *hash)
{
    assert (self);
    if (!qn_blobstore_valid_hash (hash))
        return -1;
    s_partial_t *slot = s_slot_find (self, hash);
    if (slot)
        s_slot_close (slot);
    char path [PATH_MAX];
    s_partial_path (self, hash, path, sizeof path);
    return unlink (path) == 0? 0: -1;
}

int
qn_blobstore_remove (qn_blobstore_t *self, const char *hash)
{
    assert (self);
    if (!qn_blobstore_valid_hash (hash))
        return -1;
    int partial = qn_blobstore_abandon (self, hash);
    char path [PATH_MAX];
    s_object_path (self, hash, path, sizeof path);
    int complete = unlink (path);
    return partial == 0 || complete == 0? 0: -1;
}

static bool
s_hex_name (const char *name, size_t length)
{
    if (strlen (name) != length)
        return false;
    for (size_t i = 0; i < length; i++)
        if (!((name [i] >= '0' && name [i] <= '9') || (name [i] >= 'a' && name [i] <= 'f')))
            return false;
    return true;
}

uint64_t
qn_blobstore_bytes (qn_blobstore_t *self)
{
    assert (self);
    uint64_t total = 0;
    DIR *top = opendir (self->objects);
    if (!top)
        return 0;
    struct dirent *entry;
    while ((entry = readdir (top))) {
        if (!s_hex_name (entry->d_name, 2))
            continue;           //  stray files are not blobs
        int fd = openat (dirfd (top), entry->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
            continue;
        DIR *sub = fdopendir (fd);
        if (!sub) {
            close (fd);
            continue;
        }
        struct dirent *blob;
        struct stat st;
        while ((blob = readdir (sub)))
            if (s_hex_name (blob->d_name, QN_BLOB_HASH_HEX - 2)
            &&  fstatat (fd, blob->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0
            &&  S_ISREG (st.st_mode))
                total += (uint64_t) st.st_size;
        closedir (sub);
    }
    closedir (top);
    return total;
}

int
qn_blobstore_touch (qn_blobstore_t *self, const char *hash)
{
    assert (self);
    if (!qn_blobstore_valid_hash (hash))
        return -1;
    char path [4096];
    s_object_path (self, hash, path, sizeof path);
    //  Our own change moves the ctime: a blob vouched for before it stays
    //  so (a write landing between the stat and the utimensat would be
    //  missed; staged inputs are copies, so only a writer outside qanat
    //  can reach the file)
    struct stat st;
    bool vouched = lstat (path, &st) == 0 && qn_blobstore_vouched (self, hash, &st);
    //  NULL times = now; allowed on our own read-only files
    if (utimensat (AT_FDCWD, path, NULL, AT_SYMLINK_NOFOLLOW) != 0)
        return -1;
    if (vouched && lstat (path, &st) == 0)
        qn_blobstore_vouch (self, hash, &st);
    return 0;
}

int
qn_blobstore_drop (qn_blobstore_t *self, const char *hash, const struct stat *seen)
{
    assert (self);
    if (!qn_blobstore_valid_hash (hash) || !seen)
        return -1;
    char path [PATH_MAX];
    s_object_path (self, hash, path, sizeof path);
    struct stat st;
    //  Not by ctime: the agent's touch moves it.  A good copy fetched
    //  since (even on a reused inode number) is vouched for.
    if (lstat (path, &st) != 0 || st.st_dev != seen->st_dev || st.st_ino != seen->st_ino
    ||  qn_blobstore_vouched (self, hash, &st))
        return -1;
    return unlink (path) == 0? 0: -1;
}

int
qn_blobstore_drop_misfit (qn_blobstore_t *self, const char *hash, uint64_t size)
{
    assert (self);
    if (!qn_blobstore_valid_hash (hash))
        return -1;
    char path [PATH_MAX];
    s_object_path (self, hash, path, sizeof path);
    struct stat st;
    if (lstat (path, &st) != 0 || (S_ISREG (st.st_mode) && (uint64_t) st.st_size == size))
        return 0;
    int rc = S_ISDIR (st.st_mode)? rmdir (path): unlink (path);
    return rc == 0? 1: -1;
}

uint64_t
qn_blobstore_sweep_partials (qn_blobstore_t *self, int64_t max_age_s)
{
    assert (self);
    DIR *handle = opendir (self->partial);
    if (!handle)
        return 0;
    time_t now = time (NULL);
    uint64_t freed = 0;
    struct dirent *entry;
    struct stat st;
    while ((entry = readdir (handle))) {
        if (!s_hex_name (entry->d_name, QN_BLOB_HASH_HEX) || s_slot_find (self, entry->d_name))
            continue;
        if (fstatat (dirfd (handle), entry->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0
        &&  S_ISREG (st.st_mode) && (int64_t) (now - st.st_mtime) > max_age_s
        &&  unlinkat (dirfd (handle), entry->d_name, 0) == 0)
            freed += (uint64_t) st.st_size;
    }
    closedir (handle);
    return freed;
}

typedef struct {
    char hash [QN_BLOB_HASH_HEX + 1];
    uint64_t size;
    int64_t used;                       //  mtime, ns
} s_trim_entry_t;

static int
s_trim_order (const void *a, const void *b)
{
    const s_trim_entry_t *x = (const s_trim_entry_t *) a;
    const s_trim_entry_t *y = (const s_trim_entry_t *) b;
    return x->used < y->used? -1: x->used > y->used? 1: strcmp (x->hash, y->hash);
}

uint64_t
qn_blobstore_trim (qn_blobstore_t *self, uint64_t max_bytes, int64_t spare_s, size_t *count_p)
{
    assert (self);
    if (count_p)
        *count_p = 0;
    if (self->trim_known && self->trim_bytes <= max_bytes)
        return 0;               //  under the bound for sure: no walk
    //  Every blob with its size and last use, then the oldest go first
    s_trim_entry_t *entries = NULL;
    size_t count = 0, capacity = 0;
    uint64_t total = 0;
    DIR *top = opendir (self->objects);
    struct dirent *entry;
    while (top && (entry = readdir (top))) {
        if (!s_hex_name (entry->d_name, 2))
            continue;
        int fd = openat (dirfd (top), entry->d_name,
                         O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        DIR *sub = fd >= 0? fdopendir (fd): NULL;
        if (!sub) {
            if (fd >= 0)
                close (fd);
            continue;
        }
        struct dirent *blob;
        struct stat st;
        while ((blob = readdir (sub))) {
            if (!s_hex_name (blob->d_name, QN_BLOB_HASH_HEX - 2)
            ||  fstatat (fd, blob->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0
            ||  !S_ISREG (st.st_mode))
                continue;
            if (count == capacity) {
                size_t grown_capacity = capacity? capacity * 2: 256;
                s_trim_entry_t *grown = (s_trim_entry_t *) realloc (
                    entries, grown_capacity * sizeof (s_trim_entry_t));
                if (!grown)
                    break;
                entries = grown;
                capacity = grown_capacity;
            }
            snprintf (entries [count].hash, sizeof entries [count].hash, "%s%s",
                      entry->d_name, blob->d_name);
            entries [count].size = (uint64_t) st.st_size;
            entries [count].used = (int64_t) st.st_mtim.tv_sec * 1000000000
                                 + st.st_mtim.tv_nsec;
            total += (uint64_t) st.st_size;
            count++;
        }
        closedir (sub);
    }
    if (top)
        closedir (top);
    uint64_t freed = 0;
    if (total > max_bytes && count) {
        qsort (entries, count, sizeof (s_trim_entry_t), s_trim_order);
        struct timespec now;
        clock_gettime (CLOCK_REALTIME, &now);
        int64_t spare_from = ((int64_t) now.tv_sec - spare_s) * 1000000000 + now.tv_nsec;
        for (size_t i = 0; i < count && total - freed > max_bytes; i++) {
            if (entries [i].used >= spare_from)
                break;                  //  the rest are newer still
            char path [4096];
            s_object_path (self, entries [i].hash, path, sizeof path);
            if (unlink (path) == 0) {
                freed += entries [i].size;
                if (count_p)
                    (*count_p)++;
            }
        }
    }
    free (entries);
    self->trim_known = true;
    self->trim_bytes = total - freed;
    return freed;
}
