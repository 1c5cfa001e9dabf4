/*  qn_backup - a verified copy of a coordinator's data directory, and its
    restore.  See qn_backup.h.

    Everything read from a backup is hostile: manifest paths are checked
    (no "..", nothing outside data.mdb, keys/ and blobs/objects/), and a
    file's size and hash are checked before LMDB ever maps it, so that a
    truncated data.mdb is refused rather than read past its end.
*/
#include "qn_backup.h"
#include "qn_blobstore.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <limits.h>
#include <lmdb.h>
#include <pthread.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "unknown"
#endif

struct _qn_backup_t {
    qn_store_t *store;
    char *data_dir;
    char *dir;
    char *partial;              //  DIR.partial-PID, renamed to DIR when verified
    pthread_t thread;
    atomic_bool finished;
    char *error;                //  NULL: done and complete
    char *manifest;
    uint64_t bytes;
    uint64_t elapsed_ms;
};

//  --------------------------------------------------------------------
//  Small helpers

static char *
s_vformat (const char *format, va_list args)
{
    char *text = NULL;
    if (vasprintf (&text, format, args) < 0)
        text = NULL;
    return text? text: strdup ("out of memory");
}

static char *
s_format (const char *format, ...)
{
    va_list args;
    va_start (args, format);
    char *text = s_vformat (format, args);
    va_end (args);
    return text;
}

static void
s_set_error (char **error_p, const char *format, ...)
{
    if (!error_p || *error_p)
        return;                 //  the first failure says the most
    va_list args;
    va_start (args, format);
    *error_p = s_vformat (format, args);
    va_end (args);
}

static uint64_t
s_now_ms (void)
{
    struct timespec now;
    clock_gettime (CLOCK_MONOTONIC, &now);
    return (uint64_t) now.tv_sec * 1000 + (uint64_t) now.tv_nsec / 1000000;
}

static void
s_hex (const uint8_t digest [32], char hex [65])
{
    sodium_bin2hex (hex, 65, digest, 32);
}

//  0: absent, 1: an empty directory, -1: anything else (*error_p says)
static int
s_dir_state (const char *path, const char *what, char **error_p)
{
    struct stat st;
    if (lstat (path, &st)) {
        if (errno == ENOENT)
            return 0;
        s_set_error (error_p, "cannot use %s %s: %s", what, path, strerror (errno));
        return -1;
    }
    if (!S_ISDIR (st.st_mode)) {
        s_set_error (error_p, "%s %s exists and is not a directory", what, path);
        return -1;
    }
    DIR *handle = opendir (path);
    if (!handle) {
        s_set_error (error_p, "cannot read %s %s: %s", what, path, strerror (errno));
        return -1;
    }
    struct dirent *entry;
    bool empty = true;
    while (empty && (entry = readdir (handle)))
        if (strcmp (entry->d_name, ".") && strcmp (entry->d_name, ".."))
            empty = false;
    closedir (handle);
    if (!empty) {
        s_set_error (error_p, "%s %s exists and is not empty", what, path);
        return -1;
    }
    return 1;
}

static int
s_remove_entry (const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) st;
    (void) ftw;
    if (flag == FTW_DP)
        rmdir (path);
    else
        unlink (path);
    return 0;
}

//  Removes a directory this code made (a partial backup or restore)
static void
s_remove_tree (const char *path)
{
    nftw (path, s_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void
s_fsync_path (const char *path)
{
    int fd = open (path, O_RDONLY);
    if (fd >= 0) {
        fsync (fd);
        close (fd);
    }
}

//  Makes the directories of a relative path's parents under root
static int
s_make_parents (const char *root, const char *relative, char **error_p)
{
    char path [PATH_MAX];
    int length = snprintf (path, sizeof path, "%s/%s", root, relative);
    if (length < 0 || (size_t) length >= sizeof path) {
        s_set_error (error_p, "path too long: %s/%s", root, relative);
        return -1;
    }
    for (char *slash = path + strlen (root) + 1; (slash = strchr (slash, '/')); slash++) {
        *slash = '\0';
        if (mkdir (path, 0700) && errno != EEXIST) {
            s_set_error (error_p, "cannot make %s: %s", path, strerror (errno));
            return -1;
        }
        *slash = '/';
    }
    return 0;
}

//  Reads from (hashing it) and, if to is given, writes a new file to
//  (mode) with the same bytes, synced.  1 if from is gone (a blob that
//  retention removed meanwhile), 0, or -1 with *error_p.
static int
s_copy_hash (const char *from, const char *to, mode_t mode, char hex [65], uint64_t *size_p,
             char **error_p)
{
    int in = open (from, O_RDONLY | O_NOFOLLOW);
    if (in < 0) {
        if (errno == ENOENT)
            return 1;
        s_set_error (error_p, "cannot read %s: %s", from, strerror (errno));
        return -1;
    }
    int out = to? open (to, O_WRONLY | O_CREAT | O_EXCL, mode): -1;
    if (to && out < 0) {
        s_set_error (error_p, "cannot write %s: %s", to, strerror (errno));
        close (in);
        return -1;
    }
    crypto_hash_sha256_state state;
    crypto_hash_sha256_init (&state);
    uint64_t size = 0;
    int rc = 0;
    static __thread uint8_t buffer [1 << 16];
    while (rc == 0) {
        ssize_t got = read (in, buffer, sizeof buffer);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            s_set_error (error_p, "cannot read %s: %s", from, strerror (errno));
            rc = -1;
        }
        if (got <= 0)
            break;
        crypto_hash_sha256_update (&state, buffer, (size_t) got);
        size += (uint64_t) got;
        for (ssize_t done = 0; out >= 0 && done < got; ) {
            ssize_t put = write (out, buffer + done, (size_t) (got - done));
            if (put < 0 && errno == EINTR)
                continue;
            if (put < 0) {
                s_set_error (error_p, "cannot write %s: %s", to, strerror (errno));
                rc = -1;
                break;
            }
            done += put;
        }
    }
    if (out >= 0 && rc == 0 && fsync (out)) {
        s_set_error (error_p, "cannot sync %s: %s", to, strerror (errno));
        rc = -1;
    }
    if (out >= 0)
        close (out);
    close (in);
    uint8_t digest [32];
    crypto_hash_sha256_final (&state, digest);
    s_hex (digest, hex);
    *size_p = size;
    return rc;
}

//  --------------------------------------------------------------------
//  The store's entries, per sub-database, read from a copy's data.mdb
//  (which must have been checked first: LMDB trusts its file)

static json_t *
s_store_counts (const char *dir, uint32_t *schema_p, char **error_p)
{
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    json_t *counts = NULL;
    int rc = mdb_env_create (&env);
    if (rc == 0)
        rc = mdb_env_set_maxdbs (env, 128);
    if (rc == 0)
        rc = mdb_env_open (env, dir, MDB_RDONLY | MDB_NOLOCK, 0600);
    if (rc == 0)
        rc = mdb_txn_begin (env, NULL, MDB_RDONLY, &txn);
    MDB_dbi main_dbi;
    if (rc == 0)
        rc = mdb_dbi_open (txn, NULL, 0, &main_dbi);
    MDB_cursor *cursor = NULL;
    if (rc == 0)
        rc = mdb_cursor_open (txn, main_dbi, &cursor);
    if (rc) {
        s_set_error (error_p, "cannot read the store in %s: %s", dir, mdb_strerror (rc));
        goto done;
    }
    counts = json_object ();
    MDB_val key, value;
    *schema_p = 0;
    for (rc = mdb_cursor_get (cursor, &key, &value, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get (cursor, &key, &value, MDB_NEXT)) {
        char name [64];
        if (key.mv_size == 0 || key.mv_size >= sizeof name)
            continue;
        memcpy (name, key.mv_data, key.mv_size);
        name [key.mv_size] = '\0';
        MDB_dbi dbi;
        MDB_stat stat;
        if (mdb_dbi_open (txn, name, 0, &dbi) || mdb_stat (txn, dbi, &stat))
            continue;               //  not a sub-database
        json_object_set_new (counts, name, json_integer ((json_int_t) stat.ms_entries));
        MDB_val schema_key = { 6, (void *) "schema" }, schema;
        if (strcmp (name, "meta") == 0 && mdb_get (txn, dbi, &schema_key, &schema) == 0
        &&  schema.mv_size == 4) {
            const uint8_t *bytes = (const uint8_t *) schema.mv_data;
            *schema_p = (uint32_t) bytes [0] << 24 | (uint32_t) bytes [1] << 16
                      | (uint32_t) bytes [2] << 8 | bytes [3];
        }
    }
    if (*schema_p == 0) {
        s_set_error (error_p, "%s/data.mdb holds no qanat store (no schema record)", dir);
        json_decref (counts);
        counts = NULL;
    }
done:
    if (cursor)
        mdb_cursor_close (cursor);
    if (txn)
        mdb_txn_abort (txn);
    if (env)
        mdb_env_close (env);
    return counts;
}

//  --------------------------------------------------------------------
//  Taking a backup (on its thread)

//  Copies data_dir/relative (a directory: keys, blobs/objects) into the
//  partial backup, adding each file to files.  Blobs must hash to their
//  names.  Symlinks and other odd entries are not followed.
static int
s_copy_tree (qn_backup_t *self, const char *relative, json_t *files, bool blobs, char **error_p)
{
    char from [PATH_MAX], to [PATH_MAX];
    snprintf (from, sizeof from, "%s/%s", self->data_dir, relative);
    DIR *handle = opendir (from);
    if (!handle)
        return errno == ENOENT? 0: (s_set_error (error_p, "cannot read %s: %s", from,
                                                 strerror (errno)), -1);
    int rc = 0;
    struct dirent *entry;
    while (rc == 0 && (entry = readdir (handle))) {
        if (entry->d_name [0] == '.')
            continue;
        char child [512];
        int length = snprintf (child, sizeof child, "%s/%s", relative, entry->d_name);
        if (length < 0 || (size_t) length >= sizeof child
        ||  strlen (self->data_dir) + strlen (self->partial) + (size_t) length + 2 >= PATH_MAX)
            continue;           //  no name of ours is that long
        snprintf (from, sizeof from, "%s/%s", self->data_dir, child);
        snprintf (to, sizeof to, "%s/%s", self->partial, child);
        struct stat st;
        if (lstat (from, &st))
            continue;
        if (S_ISDIR (st.st_mode)) {
            if (mkdir (to, 0700) && errno != EEXIST) {
                s_set_error (error_p, "cannot make %s: %s", to, strerror (errno));
                rc = -1;
            }
            else
                rc = s_copy_tree (self, child, files, blobs, error_p);
            continue;
        }
        if (!S_ISREG (st.st_mode))
            continue;
        char hex [65];
        uint64_t size;
        int copied = s_copy_hash (from, to, blobs? 0444: 0600, hex, &size, error_p);
        if (copied == 1)
            continue;           //  removed by retention since the listing
        if (copied) {
            rc = -1;
            break;
        }
        if (blobs) {
            //  objects/ab/cdef...: the name is the hash
            char name [sizeof entry->d_name + 4];
            snprintf (name, sizeof name, "%.2s%s", relative + strlen (relative) - 2,
                      entry->d_name);
            if (strcmp (name, hex)) {
                s_set_error (error_p, "blob %s in the store is damaged (its content hashes to %s)",
                             name, hex);
                rc = -1;
                break;
            }
        }
        self->bytes += size;
        json_array_append_new (files, json_pack ("{s:s,s:I,s:s}", "path", child,
                                                 "size", (json_int_t) size, "sha256", hex));
    }
    closedir (handle);
    return rc;
}

static char *
s_utc_now (void)
{
    time_t now = time (NULL);
    struct tm tm;
    gmtime_r (&now, &tm);
    char text [32];
    strftime (text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return strdup (text);
}

static int
s_take (qn_backup_t *self, char **error_p)
{
    if (mkdir (self->partial, 0700)) {
        s_set_error (error_p, "cannot make %s: %s", self->partial, strerror (errno));
        return -1;
    }
    if (qn_store_copy (self->store, self->partial, error_p))
        return -1;
    json_t *files = json_array ();
    char path [PATH_MAX], hex [65];
    uint64_t size;
    snprintf (path, sizeof path, "%s/data.mdb", self->partial);
    int rc = s_copy_hash (path, NULL, 0, hex, &size, error_p);
    if (rc == 1)
        s_set_error (error_p, "the store's copy %s is missing", path);
    if (rc == 0) {
        chmod (path, 0600);     //  LMDB made it by the umask; it holds everything
        s_fsync_path (path);
        self->bytes += size;
        json_array_append_new (files, json_pack ("{s:s,s:I,s:s}", "path", "data.mdb",
                                                 "size", (json_int_t) size, "sha256", hex));
        snprintf (path, sizeof path, "%s/blobs", self->partial);
        mkdir (path, 0700);
        snprintf (path, sizeof path, "%s/blobs/objects", self->partial);
        mkdir (path, 0700);
        snprintf (path, sizeof path, "%s/keys", self->partial);
        mkdir (path, 0700);
        rc = s_copy_tree (self, "keys", files, false, error_p);
    }
    if (rc == 0)
        rc = s_copy_tree (self, "blobs/objects", files, true, error_p);
    uint32_t schema = 0;
    json_t *counts = rc == 0? s_store_counts (self->partial, &schema, error_p): NULL;
    if (!counts) {
        json_decref (files);
        return -1;
    }
    char *created = s_utc_now ();
    json_t *manifest = json_pack ("{s:s,s:s,s:i,s:s,s:s,s:I,s:o,s:o}",
        "format", QN_BACKUP_FORMAT, "qanat_version", PACKAGE_VERSION,
        "schema", (int) schema, "created", created, "data_dir", self->data_dir,
        "bytes", (json_int_t) self->bytes, "counts", counts, "files", files);
    free (created);
    self->manifest = manifest? json_dumps (manifest, JSON_INDENT (1) | JSON_SORT_KEYS): NULL;
    json_decref (manifest);
    snprintf (path, sizeof path, "%s/manifest.json", self->partial);
    FILE *file = self->manifest? fopen (path, "wx"): NULL;
    if (!file || fputs (self->manifest, file) < 0 || fputc ('\n', file) < 0
    ||  fflush (file) || fsync (fileno (file))) {
        s_set_error (error_p, "cannot write %s: %s", path, strerror (errno));
        if (file)
            fclose (file);
        return -1;
    }
    fclose (file);
    //  Read everything back before the name says it is complete
    if (qn_backup_verify (self->partial, error_p))
        return -1;
    if (s_dir_state (self->dir, "backup directory", error_p) == 1 && rmdir (self->dir)) {
        s_set_error (error_p, "cannot replace the empty %s: %s", self->dir, strerror (errno));
        return -1;
    }
    if (rename (self->partial, self->dir)) {
        s_set_error (error_p, "cannot rename %s to %s: %s", self->partial, self->dir,
                     strerror (errno));
        return -1;
    }
    char *parent = strdup (self->dir);
    char *slash = strrchr (parent, '/');
    if (slash && slash != parent)
        *slash = '\0';
    s_fsync_path (parent);
    free (parent);
    return 0;
}

static void *
s_run (void *arg)
{
    qn_backup_t *self = (qn_backup_t *) arg;
    uint64_t started = s_now_ms ();
    char *error = NULL;
    if (s_take (self, &error)) {
        s_remove_tree (self->partial);
        self->error = error? error: strdup ("backup failed");
    }
    self->elapsed_ms = s_now_ms () - started;
    atomic_store (&self->finished, true);
    return NULL;
}

qn_backup_t *
qn_backup_start (qn_store_t *store, const char *data_dir, const char *dir, char **error_p)
{
    *error_p = NULL;
    if (!dir || dir [0] != '/') {
        s_set_error (error_p, "the backup directory must be an absolute path on the "
                              "coordinator's host (got '%s')", dir? dir: "");
        return NULL;
    }
    if (strlen (dir) > PATH_MAX - 512) {
        s_set_error (error_p, "the backup directory's path is too long");
        return NULL;
    }
    if (sodium_init () < 0) {
        s_set_error (error_p, "libsodium cannot start");
        return NULL;
    }
    char *clean = strdup (dir);
    size_t length = strlen (clean);
    while (length > 1 && clean [length - 1] == '/')
        clean [--length] = '\0';
    char *parent = strdup (clean);
    *strrchr (parent, '/') = '\0';
    struct stat st;
    int state = s_dir_state (clean, "backup directory", error_p);
    if (state >= 0 && (stat (*parent? parent: "/", &st) || !S_ISDIR (st.st_mode)))
        s_set_error (error_p, "the backup directory's parent %s is not a directory", parent);
    free (parent);
    if (*error_p) {
        free (clean);
        return NULL;
    }
    qn_backup_t *self = (qn_backup_t *) calloc (1, sizeof (qn_backup_t));
    self->store = store;
    self->data_dir = strdup (data_dir);
    self->dir = clean;
    self->partial = s_format ("%s.partial-%d", clean, (int) getpid ());
    atomic_init (&self->finished, false);
    if (lstat (self->partial, &st) == 0) {
        s_set_error (error_p, "%s exists (left by an earlier backup?): remove it first",
                     self->partial);
        qn_backup_destroy (&self);
        return NULL;
    }
    if (pthread_create (&self->thread, NULL, s_run, self)) {
        s_set_error (error_p, "cannot start the backup's thread");
        atomic_store (&self->finished, true);
        self->thread = 0;
        qn_backup_destroy (&self);
        return NULL;
    }
    return self;
}

bool
qn_backup_finished (qn_backup_t *self)
{
    return atomic_load (&self->finished);
}

const char *
qn_backup_error (qn_backup_t *self)
{
    return self->error;
}

const char *
qn_backup_manifest (qn_backup_t *self)
{
    return self->manifest? self->manifest: "";
}

const char *
qn_backup_dir (qn_backup_t *self)
{
    return self->dir;
}

uint64_t
qn_backup_bytes (qn_backup_t *self)
{
    return self->bytes;
}

uint64_t
qn_backup_elapsed_ms (qn_backup_t *self)
{
    return self->elapsed_ms;
}

void
qn_backup_destroy (qn_backup_t **self_p)
{
    qn_backup_t *self = *self_p;
    if (!self)
        return;
    if (self->thread)
        pthread_join (self->thread, NULL);
    free (self->data_dir);
    free (self->dir);
    free (self->partial);
    free (self->error);
    free (self->manifest);
    free (self);
    *self_p = NULL;
}

//  --------------------------------------------------------------------
//  Checking and restoring

//  A manifest path we write: data.mdb, keys/..., blobs/objects/..., made
//  of plain name characters, no empty, "." or ".." parts
static bool
s_path_valid (const char *path)
{
    if (strcmp (path, "data.mdb") && strncmp (path, "keys/", 5)
    &&  strncmp (path, "blobs/objects/", 14))
        return false;
    if (strlen (path) > 400)
        return false;
    for (const char *part = path; *part; ) {
        size_t length = strcspn (part, "/");
        if (length == 0 || part [0] == '.')
            return false;
        for (size_t i = 0; i < length; i++) {
            char c = part [i];
            if (!(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') && !(c >= '0' && c <= '9')
            &&  c != '.' && c != '_' && c != '-')
                return false;
        }
        part += length;
        if (*part == '/')
            part++;
    }
    return true;
}

//  Checks (and, with copy_to, copies) every file of the manifest, then
//  the counts of the store that was checked.  0 or -1 with *error_p.
static int
s_check (const char *dir, const char *copy_to, json_t **manifest_p, char **error_p)
{
    char path [PATH_MAX];
    snprintf (path, sizeof path, "%s/manifest.json", dir);
    json_error_t parse;
    json_t *manifest = json_load_file (path, JSON_REJECT_DUPLICATES, &parse);
    if (!manifest) {
        s_set_error (error_p, "%s: not a backup manifest (%s, line %d)", path, parse.text,
                     parse.line);
        return -1;
    }
    const char *format = json_string_value (json_object_get (manifest, "format"));
    json_t *files = json_object_get (manifest, "files");
    json_t *counts = json_object_get (manifest, "counts");
    json_int_t schema = json_integer_value (json_object_get (manifest, "schema"));
    int rc = -1;
    if (!format || strcmp (format, QN_BACKUP_FORMAT))
        s_set_error (error_p, "%s: format '%s' is not '%s'", path, format? format: "",
                     QN_BACKUP_FORMAT);
    else
    if (!json_is_array (files) || !json_is_object (counts))
        s_set_error (error_p, "%s: no files or counts", path);
    else
    if (schema < 1 || schema > QN_STORE_SCHEMA_VERSION)
        s_set_error (error_p, "%s: store schema %d is %s this qanatd's (%d)", path, (int) schema,
                     schema < 1? "not a qanat schema, unlike": "newer than", QN_STORE_SCHEMA_VERSION);
    else
        rc = 0;
    bool has_store = false;
    size_t index;
    json_t *file;
    json_array_foreach (files, index, file) {
        if (rc)
            break;
        const char *relative = json_string_value (json_object_get (file, "path"));
        const char *sha = json_string_value (json_object_get (file, "sha256"));
        json_t *size_json = json_object_get (file, "size");
        if (!relative || !s_path_valid (relative) || !qn_blobstore_valid_hash (sha)
        ||  !json_is_integer (size_json)) {
            s_set_error (error_p, "%s: file %zu is not a valid entry", path, index);
            rc = -1;
            break;
        }
        has_store |= strcmp (relative, "data.mdb") == 0;
        char from [PATH_MAX], to [PATH_MAX], hex [65];
        snprintf (from, sizeof from, "%s/%s", dir, relative);
        snprintf (to, sizeof to, "%s/%s", copy_to? copy_to: "", relative);
        if (copy_to && s_make_parents (copy_to, relative, error_p)) {
            rc = -1;
            break;
        }
        bool blob = strncmp (relative, "blobs/", 6) == 0;
        uint64_t size = 0;
        int copied = s_copy_hash (from, copy_to? to: NULL, blob? 0444: 0600, hex, &size,
                                  error_p);
        if (copied == 1)
            s_set_error (error_p, "the backup is damaged: %s is missing", relative);
        else
        if (copied == 0 && size != (uint64_t) json_integer_value (size_json))
            s_set_error (error_p, "the backup is damaged: %s has %llu bytes, the manifest says "
                         "%lld", relative, (unsigned long long) size,
                         (long long) json_integer_value (size_json));
        else
        if (copied == 0 && strcmp (hex, sha))
            s_set_error (error_p, "the backup is damaged: %s hashes to %s, the manifest says %s",
                         relative, hex, sha);
        if (copied || *error_p)
            rc = -1;
    }
    if (rc == 0 && !has_store) {
        s_set_error (error_p, "%s: lists no data.mdb", path);
        rc = -1;
    }
    uint32_t found_schema = 0;
    json_t *found = rc == 0? s_store_counts (copy_to? copy_to: dir, &found_schema, error_p): NULL;
    if (rc == 0 && !found)
        rc = -1;
    if (found && !json_equal (found, counts)) {
        char *text = json_dumps (found, JSON_COMPACT | JSON_SORT_KEYS);
        s_set_error (error_p, "the backup is damaged: its store holds %s, not the manifest's "
                     "counts", text? text: "other entries");
        free (text);
        rc = -1;
    }
    json_decref (found);
    if (rc == 0 && manifest_p)
        *manifest_p = manifest;
    else
        json_decref (manifest);
    return rc;
}

int
qn_backup_verify (const char *dir, char **error_p)
{
    *error_p = NULL;
    if (sodium_init () < 0) {
        s_set_error (error_p, "libsodium cannot start");
        return -1;
    }
    return s_check (dir, NULL, NULL, error_p);
}

//  A string of the manifest, "?" when absent (it was checked for files
//  and counts only)
static const char *
s_text (json_t *manifest, const char *name)
{
    const char *text = json_string_value (json_object_get (manifest, name));
    return text? text: "?";
}

static json_int_t
s_count (json_t *manifest, const char *name)
{
    return json_integer_value (json_object_get (json_object_get (manifest, "counts"), name));
}

int
qn_backup_restore (const char *dir, const char *data_dir, char **summary_p, char **error_p)
{
    *error_p = NULL;
    *summary_p = NULL;
    if (sodium_init () < 0) {
        s_set_error (error_p, "libsodium cannot start");
        return -1;
    }
    struct stat st;
    if (stat (dir, &st) || !S_ISDIR (st.st_mode)) {
        s_set_error (error_p, "backup %s: %s", dir, errno? strerror (errno): "not a directory");
        return -1;
    }
    int state = s_dir_state (data_dir, "data directory", error_p);
    if (state < 0)
        return -1;
    char *partial = s_format ("%s.restore-%d", data_dir, (int) getpid ());
    if (mkdir (partial, 0700)) {
        s_set_error (error_p, "cannot make %s: %s", partial, strerror (errno));
        free (partial);
        return -1;
    }
    json_t *manifest = NULL;
    int rc = s_check (dir, partial, &manifest, error_p);
    if (rc == 0 && state == 1 && rmdir (data_dir)) {
        s_set_error (error_p, "cannot replace the empty %s: %s", data_dir, strerror (errno));
        rc = -1;
    }
    if (rc == 0 && rename (partial, data_dir)) {
        s_set_error (error_p, "cannot rename %s to %s: %s", partial, data_dir, strerror (errno));
        rc = -1;
    }
    if (rc) {
        s_remove_tree (partial);
        free (partial);
        return -1;
    }
    free (partial);
    *summary_p = s_format (
        "restored the backup of %s (qanat %s, store schema %lld) into %s: %lld runs, "
        "%lld tasks, %lld log lines, %lld metric points, %lld blobs, %lld bytes",
        s_text (manifest, "created"), s_text (manifest, "qanat_version"),
        (long long) json_integer_value (json_object_get (manifest, "schema")), data_dir,
        (long long) s_count (manifest, "runs"), (long long) s_count (manifest, "tasks"),
        (long long) s_count (manifest, "logs"), (long long) s_count (manifest, "metrics"),
        (long long) s_count (manifest, "blobs"),
        (long long) json_integer_value (json_object_get (manifest, "bytes")));
    json_decref (manifest);
    return 0;
}

int
qn_backup_restore_main (const char *dir, const char *data_dir)
{
    char *summary = NULL, *error = NULL;
    int rc = qn_backup_restore (dir, data_dir, &summary, &error);
    if (rc)
        fprintf (stderr, "qanatd: cannot restore %s: %s\n", dir, error? error: "failed");
    else
        printf ("qanatd: %s\nstart qanatd with --data-dir %s\n", summary, data_dir);
    free (summary);
    free (error);
    return rc? 1: 0;
}
