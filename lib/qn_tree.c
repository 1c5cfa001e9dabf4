/*  qn_tree - a declared task output or input, as a list of files.  See
    include/qn_tree.h for the manifest format and the rules. */
#include "qn_tree.h"
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

struct _qn_tree_t {
    bool is_dir;
    qn_tree_entry_t *entries;
    size_t count;
    size_t capacity;
};

static void
s_fail (char **error_p, const char *format, ...)
{
    if (!error_p)
        return;
    va_list args;
    va_start (args, format);
    char *message = NULL;
    if (vasprintf (&message, format, args) < 0)
        message = NULL;
    va_end (args);
    *error_p = message;
}

static qn_tree_t *
s_tree_new (bool is_dir)
{
    qn_tree_t *self = (qn_tree_t *) calloc (1, sizeof (qn_tree_t));
    if (self)
        self->is_dir = is_dir;
    return self;
}

void
qn_tree_destroy (qn_tree_t **self_p)
{
    assert (self_p);
    qn_tree_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < self->count; i++)
        free (self->entries [i].path);
    free (self->entries);
    free (self);
    *self_p = NULL;
}

//  Takes ownership of path.
static int
s_tree_add (qn_tree_t *self, char *path, uint32_t mode, uint64_t size, const char *hash)
{
    if (self->count == self->capacity) {
        size_t capacity = self->capacity? self->capacity * 2: 16;
        qn_tree_entry_t *entries = (qn_tree_entry_t *)
            realloc (self->entries, capacity * sizeof (qn_tree_entry_t));
        if (!entries) {
            free (path);
            return -1;
        }
        self->entries = entries;
        self->capacity = capacity;
    }
    qn_tree_entry_t *entry = &self->entries [self->count++];
    entry->path = path;
    entry->mode = mode;
    entry->size = size;
    memcpy (entry->hash, hash, QN_BLOB_HASH_HEX + 1);
    return 0;
}

static int
s_entry_compare (const void *a, const void *b)
{
    return strcmp (((const qn_tree_entry_t *) a)->path, ((const qn_tree_entry_t *) b)->path);
}

static bool
s_control (unsigned char c)
{
    return c < 0x20 || c == 0x7f;
}

//  Validates relpath and returns it normalized ("./a//b/" is "a/b"),
//  malloc'd, or NULL with *error_p set.
static char *
s_normalize (const char *relpath, const char *what, char **error_p)
{
    if (!relpath || !*relpath) {
        s_fail (error_p, "%s path is empty", what);
        return NULL;
    }
    size_t length = strnlen (relpath, QN_TREE_MAX_PATH + 1);
    if (length > QN_TREE_MAX_PATH) {
        s_fail (error_p, "%s path is longer than %d bytes", what, QN_TREE_MAX_PATH);
        return NULL;
    }
    if (relpath [0] == '/') {
        s_fail (error_p, "%s '%s' is absolute: it must be relative to the working directory",
                what, relpath);
        return NULL;
    }
    for (size_t i = 0; i < length; i++)
        if (s_control ((unsigned char) relpath [i])) {
            s_fail (error_p, "%s path contains a control character", what);
            return NULL;
        }
    char *normal = (char *) malloc (length + 1);
    if (!normal) {
        s_fail (error_p, "out of memory");
        return NULL;
    }
    size_t out = 0;
    int depth = 0;
    const char *cursor = relpath;
    while (*cursor) {
        const char *end = strchr (cursor, '/');
        size_t size = end? (size_t) (end - cursor): strlen (cursor);
        if (size == 2 && cursor [0] == '.' && cursor [1] == '.') {
            s_fail (error_p, "%s '%s' contains '..': it must stay inside the working directory",
                    what, relpath);
            free (normal);
            return NULL;
        }
        if (size && !(size == 1 && cursor [0] == '.')) {
            if (out)
                normal [out++] = '/';
            memcpy (normal + out, cursor, size);
            out += size;
            depth++;
        }
        cursor += size;
        if (*cursor == '/')
            cursor++;
    }
    normal [out] = 0;
    if (out == 0) {
        s_fail (error_p, "%s '%s' names the working directory itself", what, relpath);
        free (normal);
        return NULL;
    }
    if (depth > QN_TREE_MAX_DEPTH) {
        s_fail (error_p, "%s '%s' is deeper than %d levels", what, relpath, QN_TREE_MAX_DEPTH);
        free (normal);
        return NULL;
    }
    return normal;
}

int
qn_tree_check_path (const char *relpath, char **error_p)
{
    char *normal = s_normalize (relpath, "output", error_p);
    free (normal);
    return normal? 0: -1;
}

static const char *
s_kind (mode_t mode)
{
    if (S_ISFIFO (mode))
        return "a fifo";
    if (S_ISSOCK (mode))
        return "a socket";
    if (S_ISCHR (mode))
        return "a character device";
    if (S_ISBLK (mode))
        return "a block device";
    if (S_ISLNK (mode))
        return "a symlink";
    return "not a regular file";
}

//  ---------------------------------------------------------------------
//  Scanning

typedef struct {
    const char *declared;               //  the output as the user wrote it
    char *root;                         //  realpath of the working directory
    int root_fd;
    qn_blobstore_t *blobs;              //  store files as we go, or NULL
    qn_tree_t *tree;
    char **error_p;
    dev_t dev [QN_TREE_MAX_DEPTH + 2];  //  directories being scanned, to
    ino_t ino [QN_TREE_MAX_DEPTH + 2];  //  catch loops through symlinks
    int depth;
    qn_tree_filter_fn *keep;            //  which names to take, or NULL for all
    void *keep_arg;
} s_scan_t;

//  Opens a symlink-free path relative to the working directory, never
//  following a symlink on the way: it was resolved by realpath, so a
//  symlink now means someone is changing the tree under us.  Fills st.
//  Returns a readable descriptor, -1 with errno, or -2 (st filled) when
//  the path is a symlink or a special file, which is never opened.
static int
s_open_beneath (int root_fd, const char *relative, struct stat *st)
{
    char *copy = strdup (relative);
    if (!copy)
        return -1;
    int fd = dup (root_fd);
    char *cursor = copy;
    while (fd >= 0) {
        char *slash = strchr (cursor, '/');
        if (slash)
            *slash = 0;
        if (fstatat (fd, cursor, st, AT_SYMLINK_NOFOLLOW)) {
            close (fd);
            fd = -1;
            break;
        }
        int next;
        if (S_ISDIR (st->st_mode))
            next = openat (fd, cursor, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        else
        if (S_ISREG (st->st_mode) && !slash)
            next = openat (fd, cursor, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
        else {
            //  A symlink or a special file: not opened, the caller reads st.
            close (fd);
            free (copy);
            errno = S_ISLNK (st->st_mode)? ELOOP: EPERM;
            return -2;
        }
        close (fd);
        fd = next;
        if (fd < 0 || !slash)
            break;
        cursor = slash + 1;
    }
    free (copy);
    if (fd >= 0 && fstat (fd, st)) {
        close (fd);
        fd = -1;
    }
    return fd;
}

//  Resolves root/relative with realpath and checks that it is inside the
//  working directory.  Returns the resolved path relative to root
//  (malloc'd, "" for root itself), or NULL with the reason in *error_p.
static char *
s_resolve (s_scan_t *scan, const char *relative, const char *shown)
{
    char *full = NULL;
    if (asprintf (&full, "%s/%s", strcmp (scan->root, "/")? scan->root: "", relative) < 0) {
        s_fail (scan->error_p, "out of memory");
        return NULL;
    }
    char *resolved = realpath (full, NULL);
    if (!resolved) {
        int saved = errno;
        if (saved == ENOENT || saved == ENOTDIR)
            s_fail (scan->error_p, "output '%s' (%s): no such file or directory%s",
                    scan->declared, full, *shown? " (a dangling symlink?)": "");
        else
        if (saved == ELOOP)
            s_fail (scan->error_p, "output '%s' (%s): symlink loop", scan->declared, full);
        else
            s_fail (scan->error_p, "output '%s' (%s): %s", scan->declared, full, strerror (saved));
        free (full);
        return NULL;
    }
    free (full);
    size_t root_length = strcmp (scan->root, "/")? strlen (scan->root): 0;
    char *relative_out = NULL;
    if (strcmp (resolved, scan->root) == 0)
        relative_out = strdup ("");
    else
    if (strncmp (resolved, scan->root, root_length) == 0 && resolved [root_length] == '/')
        relative_out = strdup (resolved + root_length + 1);
    else {
        if (*shown)
            s_fail (scan->error_p, "output '%s': symlink '%s' points outside the working directory (to %s)",
                    scan->declared, shown, resolved);
        else
            s_fail (scan->error_p, "output '%s' resolves outside the working directory (to %s)",
                    scan->declared, resolved);
        free (resolved);
        return NULL;
    }
    free (resolved);
    if (!relative_out)
        s_fail (scan->error_p, "out of memory");
    return relative_out;
}

static int
s_scan_file (s_scan_t *scan, int fd, const struct stat *st, char *path)
{
    if (scan->tree->count >= QN_TREE_MAX_ENTRIES) {
        s_fail (scan->error_p, "output '%s' has more than %d files", scan->declared, QN_TREE_MAX_ENTRIES);
        free (path);
        return -1;
    }
    char hash [QN_BLOB_HASH_HEX + 1];
    uint64_t size;
    char reason [256] = "";
    int rc = scan->blobs
        ? qn_blobstore_put_fd (scan->blobs, fd, hash, &size, reason, sizeof reason)
        : qn_blobstore_hash_fd (fd, hash, &size, reason, sizeof reason);
    if (rc) {
        s_fail (scan->error_p, "output '%s': '%s': %s", scan->declared, path, reason);
        free (path);
        return -1;
    }
    if (s_tree_add (scan->tree, path, (uint32_t) (st->st_mode & 0777), size, hash)) {
        s_fail (scan->error_p, "out of memory");
        return -1;
    }
    return 0;
}

static int s_scan_dir (s_scan_t *scan, int fd, const struct stat *st, const char *prefix,
                       const char *real);

//  One name in a directory being scanned: prefix is its path in the
//  output, real the directory's symlink-free path in the working dir.
static int
s_scan_name (s_scan_t *scan, int dir_fd, const char *name, const char *prefix, const char *real)
{
    for (const char *c = name; *c; c++)
        if (s_control ((unsigned char) *c)) {
            s_fail (scan->error_p, "output '%s': a file name in '%s' contains a control character",
                    scan->declared, *prefix? prefix: ".");
            return -1;
        }
    char *path = NULL;
    char *child_real = NULL;
    if (asprintf (&path, "%s%s%s", prefix, *prefix? "/": "", name) < 0)
        path = NULL;
    if (!path || strlen (path) > QN_TREE_MAX_PATH) {
        s_fail (scan->error_p, "output '%s': path '%s' too long", scan->declared, path? path: name);
        free (path);
        return -1;
    }
    struct stat st;
    if (fstatat (dir_fd, name, &st, AT_SYMLINK_NOFOLLOW)) {
        s_fail (scan->error_p, "output '%s': '%s': %s", scan->declared, path, strerror (errno));
        free (path);
        return -1;
    }
    //  A name left out is neither followed nor entered
    if (scan->keep && !scan->keep (scan->keep_arg, path, S_ISDIR (st.st_mode))) {
        free (path);
        return 0;
    }
    int fd = -1;
    if (S_ISLNK (st.st_mode)) {
        //  A symlink is followed only to a place inside the working dir.
        char *link = NULL;
        if (asprintf (&link, "%s%s%s", real, *real? "/": "", name) < 0)
            link = NULL;
        child_real = link? s_resolve (scan, link, path): NULL;
        free (link);
        if (!child_real) {
            free (path);
            return -1;
        }
        if (*child_real == 0) {
            s_fail (scan->error_p, "output '%s': symlink '%s' loops back to the working directory",
                    scan->declared, path);
            free (child_real);
            free (path);
            return -1;
        }
        fd = s_open_beneath (scan->root_fd, child_real, &st);
    }
    else {
        if (asprintf (&child_real, "%s%s%s", real, *real? "/": "", name) < 0) {
            s_fail (scan->error_p, "out of memory");
            free (path);
            return -1;
        }
        if (S_ISDIR (st.st_mode))
            fd = openat (dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        else
        if (S_ISREG (st.st_mode))
            fd = openat (dir_fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
        else
            fd = -2;
        if (fd >= 0 && fstat (fd, &st)) {
            close (fd);
            fd = -1;
        }
    }
    int rc = -1;
    if (fd == -2 || (fd >= 0 && !S_ISDIR (st.st_mode) && !S_ISREG (st.st_mode)))
        s_fail (scan->error_p, "output '%s': '%s' is %s (only regular files and directories can be outputs)",
                scan->declared, path, s_kind (st.st_mode));
    else
    if (fd < 0)
        s_fail (scan->error_p, "output '%s': '%s': %s", scan->declared, path, strerror (errno));
    else
    if (S_ISDIR (st.st_mode))
        rc = s_scan_dir (scan, fd, &st, path, child_real);
    else {
        rc = s_scan_file (scan, fd, &st, path);
        path = NULL;            //  the tree owns it now, or it was freed
    }
    free (path);
    if (fd >= 0)
        close (fd);
    free (child_real);
    return rc;
}

static int
s_name_compare (const void *a, const void *b)
{
    return strcmp (*(char * const *) a, *(char * const *) b);
}

static int
s_scan_dir (s_scan_t *scan, int fd, const struct stat *st, const char *prefix, const char *real)
{
    for (int i = 0; i < scan->depth; i++)
        if (scan->dev [i] == st->st_dev && scan->ino [i] == st->st_ino) {
            s_fail (scan->error_p, "output '%s': '%s' is a symlink loop", scan->declared, prefix);
            return -1;
        }
    if (scan->depth > QN_TREE_MAX_DEPTH) {
        s_fail (scan->error_p, "output '%s': '%s' is deeper than %d levels",
                scan->declared, prefix, QN_TREE_MAX_DEPTH);
        return -1;
    }
    int list_fd = dup (fd);
    DIR *handle = list_fd >= 0? fdopendir (list_fd): NULL;
    if (!handle) {
        if (list_fd >= 0)
            close (list_fd);
        s_fail (scan->error_p, "output '%s': '%s': %s", scan->declared, prefix, strerror (errno));
        return -1;
    }
    //  Names first, so that the directory stream is closed before going
    //  deeper: descriptors stay bounded by the depth.
    char **names = NULL;
    size_t count = 0, capacity = 0;
    int rc = 0;
    struct dirent *entry;
    while ((entry = readdir (handle))) {
        if (strcmp (entry->d_name, ".") == 0 || strcmp (entry->d_name, "..") == 0)
            continue;
        if (scan->tree->count + count >= QN_TREE_MAX_ENTRIES) {
            s_fail (scan->error_p, "output '%s' has more than %d files", scan->declared, QN_TREE_MAX_ENTRIES);
            rc = -1;
            break;
        }
        if (count == capacity) {
            capacity = capacity? capacity * 2: 16;
            char **grown = (char **) realloc (names, capacity * sizeof (char *));
            if (!grown) {
                rc = -1;
                break;
            }
            names = grown;
        }
        if (!(names [count] = strdup (entry->d_name))) {
            rc = -1;
            break;
        }
        count++;
    }
    closedir (handle);
    if (rc == 0 && count)
        qsort (names, count, sizeof (char *), s_name_compare);
    scan->dev [scan->depth] = st->st_dev;
    scan->ino [scan->depth] = st->st_ino;
    scan->depth++;
    for (size_t i = 0; rc == 0 && i < count; i++)
        rc = s_scan_name (scan, fd, names [i], prefix, real);
    scan->depth--;
    for (size_t i = 0; i < count; i++)
        free (names [i]);
    free (names);
    if (rc && scan->error_p && !*scan->error_p)
        s_fail (scan->error_p, "output '%s': out of memory", scan->declared);
    return rc;
}

static qn_tree_t *
s_scan (const char *workdir, const char *relpath, qn_blobstore_t *blobs,
        qn_tree_filter_fn *keep, void *keep_arg, char **error_p)
{
    char *dummy = NULL;
    if (!error_p)
        error_p = &dummy;
    *error_p = NULL;
    char *normal = s_normalize (relpath, "output", error_p);
    if (!normal)
        return NULL;
    s_scan_t scan;
    memset (&scan, 0, sizeof scan);
    scan.declared = relpath;
    scan.blobs = blobs;
    scan.keep = keep;
    scan.keep_arg = keep_arg;
    scan.error_p = error_p;
    scan.root_fd = -1;
    qn_tree_t *tree = NULL;
    char *real = NULL;
    int fd = -1;
    scan.root = workdir? realpath (workdir, NULL): NULL;
    if (!scan.root) {
        s_fail (error_p, "working directory '%s': %s", workdir? workdir: "(null)",
                workdir? strerror (errno): "not given");
        goto done;
    }
    scan.root_fd = open (scan.root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (scan.root_fd < 0) {
        s_fail (error_p, "working directory '%s': %s", scan.root, strerror (errno));
        goto done;
    }
    real = s_resolve (&scan, normal, "");
    if (!real)
        goto done;
    if (*real == 0) {
        s_fail (error_p, "output '%s' resolves to the working directory itself", relpath);
        goto done;
    }
    struct stat st;
    fd = s_open_beneath (scan.root_fd, real, &st);
    if (fd == -2 || (fd >= 0 && !S_ISDIR (st.st_mode) && !S_ISREG (st.st_mode))) {
        s_fail (error_p, "output '%s' (%s/%s) is %s (only regular files and directories can be outputs)",
                relpath, scan.root, real, S_ISLNK (st.st_mode)
                ? "a symlink that changed while scanning": s_kind (st.st_mode));
        goto done;
    }
    if (fd < 0) {
        s_fail (error_p, "output '%s' (%s/%s): %s", relpath, scan.root, real, strerror (errno));
        goto done;
    }
    scan.tree = s_tree_new (S_ISDIR (st.st_mode));
    if (!scan.tree) {
        s_fail (error_p, "out of memory");
        goto done;
    }
    //  The working directory itself counts as an ancestor for loops.
    struct stat root_st;
    if (fstat (scan.root_fd, &root_st) == 0) {
        scan.dev [0] = root_st.st_dev;
        scan.ino [0] = root_st.st_ino;
        scan.depth = 1;
    }
    int rc;
    if (S_ISDIR (st.st_mode))
        rc = s_scan_dir (&scan, fd, &st, "", real);
    else {
        char *empty = strdup ("");
        rc = empty? s_scan_file (&scan, fd, &st, empty): -1;
    }
    if (rc == 0) {
        if (scan.tree->count > 1)
            qsort (scan.tree->entries, scan.tree->count, sizeof (qn_tree_entry_t), s_entry_compare);
        tree = scan.tree;
        scan.tree = NULL;
    }
    else
    if (!*error_p)
        s_fail (error_p, "output '%s': out of memory", relpath);
done:
    qn_tree_destroy (&scan.tree);
    if (fd >= 0)
        close (fd);
    if (scan.root_fd >= 0)
        close (scan.root_fd);
    free (scan.root);
    free (real);
    free (normal);
    free (dummy);
    return tree;
}

qn_tree_t *
qn_tree_scan_store (const char *workdir, const char *relpath, qn_blobstore_t *blobs, char **error_p)
{
    return s_scan (workdir, relpath, blobs, NULL, NULL, error_p);
}

qn_tree_t *
qn_tree_scan (const char *workdir, const char *relpath, char **error_p)
{
    return s_scan (workdir, relpath, NULL, NULL, NULL, error_p);
}

qn_tree_t *
qn_tree_scan_filtered (const char *workdir, const char *relpath, qn_tree_filter_fn *keep,
                       void *arg, char **error_p)
{
    return s_scan (workdir, relpath, NULL, keep, arg, error_p);
}

bool
qn_tree_is_dir (qn_tree_t *self)
{
    assert (self);
    return self->is_dir;
}

size_t
qn_tree_count (qn_tree_t *self)
{
    assert (self);
    return self->count;
}

const qn_tree_entry_t *
qn_tree_entry (qn_tree_t *self, size_t i)
{
    assert (self);
    return i < self->count? &self->entries [i]: NULL;
}

uint64_t
qn_tree_bytes (qn_tree_t *self)
{
    assert (self);
    uint64_t total = 0;
    for (size_t i = 0; i < self->count; i++)
        total += self->entries [i].size;
    return total;
}

//  ---------------------------------------------------------------------
//  Manifest

static bool
s_escaped (unsigned char c)
{
    return c <= 0x20 || c >= 0x7f || c == '%';
}

char *
qn_tree_manifest (qn_tree_t *self, size_t *size_p)
{
    assert (self);
    size_t size = strlen (QN_TREE_MAGIC) + 1;
    for (size_t i = 0; i < self->count; i++)
        size += 4 + 21 + QN_BLOB_HASH_HEX + 3 * strlen (self->entries [i].path) + 4;
    char *text = (char *) malloc (size);
    if (!text)
        return NULL;
    size_t out = (size_t) sprintf (text, "%s", QN_TREE_MAGIC);
    static const char digits [] = "0123456789ABCDEF";
    for (size_t i = 0; i < self->count; i++) {
        const qn_tree_entry_t *entry = &self->entries [i];
        out += (size_t) sprintf (text + out, "%o %" PRIu64 " %s ",
                                 (unsigned) (entry->mode & 0777), entry->size, entry->hash);
        for (const unsigned char *c = (const unsigned char *) entry->path; *c; c++)
            if (s_escaped (*c)) {
                text [out++] = '%';
                text [out++] = digits [*c >> 4];
                text [out++] = digits [*c & 15];
            }
            else
                text [out++] = (char) *c;
        text [out++] = '\n';
    }
    text [out] = 0;
    if (size_p)
        *size_p = out;
    return text;
}

int
qn_tree_manifest_hash (qn_tree_t *self, char hash_out [QN_BLOB_HASH_HEX + 1])
{
    assert (self);
    size_t size;
    char *text = qn_tree_manifest (self, &size);
    if (!text)
        return -1;
    uint8_t digest [32];
    qn_blobstore_hash_chunk (text, size, digest);
    free (text);
    static const char digits [] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        hash_out [2 * i] = digits [digest [i] >> 4];
        hash_out [2 * i + 1] = digits [digest [i] & 15];
    }
    hash_out [QN_BLOB_HASH_HEX] = 0;
    return 0;
}

static int
s_hex_digit (char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

//  Parses one entry line (without its newline).  Returns the decoded path
//  (malloc'd) or NULL with *reason set to a static message.
static char *
s_parse_line (const char *line, size_t length, uint32_t *mode, uint64_t *size, char *hash,
              const char **reason)
{
    const char *end = line + length;
    const char *cursor = line;
    //  mode: octal, at most 777
    uint32_t value = 0;
    int digits = 0;
    while (cursor < end && *cursor >= '0' && *cursor <= '7' && digits < 4) {
        value = value * 8 + (uint32_t) (*cursor++ - '0');
        digits++;
    }
    if (!digits || cursor >= end || *cursor != ' ') {
        *reason = "bad mode";
        return NULL;
    }
    if (value > 0777) {
        *reason = "mode has bits beyond 777";
        return NULL;
    }
    *mode = value;
    cursor++;
    //  size: decimal, fits in 63 bits
    uint64_t bytes = 0;
    digits = 0;
    while (cursor < end && *cursor >= '0' && *cursor <= '9') {
        unsigned digit = (unsigned) (*cursor++ - '0');
        if (bytes > ((uint64_t) INT64_MAX - digit) / 10) {
            *reason = "size too large";
            return NULL;
        }
        bytes = bytes * 10 + digit;
        digits++;
    }
    if (!digits || cursor >= end || *cursor != ' ') {
        *reason = "bad size";
        return NULL;
    }
    *size = bytes;
    cursor++;
    //  hash: 64 lowercase hex
    if (end - cursor < QN_BLOB_HASH_HEX + 1 || cursor [QN_BLOB_HASH_HEX] != ' ') {
        *reason = "bad hash";
        return NULL;
    }
    memcpy (hash, cursor, QN_BLOB_HASH_HEX);
    hash [QN_BLOB_HASH_HEX] = 0;
    if (!qn_blobstore_valid_hash (hash)) {
        *reason = "bad hash";
        return NULL;
    }
    cursor += QN_BLOB_HASH_HEX + 1;
    //  path: %-escaped, decoded then checked
    size_t raw = (size_t) (end - cursor);
    if (raw > 3 * QN_TREE_MAX_PATH) {
        *reason = "path too long";
        return NULL;
    }
    char *path = (char *) malloc (raw + 1);
    if (!path) {
        *reason = "out of memory";
        return NULL;
    }
    size_t out = 0;
    while (cursor < end) {
        unsigned char c = (unsigned char) *cursor;
        if (c == '%') {
            if (end - cursor < 3 || s_hex_digit (cursor [1]) < 0 || s_hex_digit (cursor [2]) < 0) {
                *reason = "bad %-escape in path";
                free (path);
                return NULL;
            }
            c = (unsigned char) (s_hex_digit (cursor [1]) * 16 + s_hex_digit (cursor [2]));
            cursor += 3;
        }
        else {
            if (c <= 0x20 || c >= 0x7f) {
                *reason = "unescaped space or control character in path";
                free (path);
                return NULL;
            }
            cursor++;
        }
        if (c == 0 || s_control (c)) {
            *reason = "NUL or control character in path";
            free (path);
            return NULL;
        }
        path [out++] = (char) c;
    }
    path [out] = 0;
    if (out > QN_TREE_MAX_PATH) {
        *reason = "path too long";
        free (path);
        return NULL;
    }
    if (out == 0)
        return path;            //  the caller decides whether "" is allowed
    if (path [0] == '/') {
        *reason = "absolute path";
        free (path);
        return NULL;
    }
    int depth = 0;
    const char *component = path;
    while (true) {
        const char *slash = strchr (component, '/');
        size_t size_c = slash? (size_t) (slash - component): strlen (component);
        if (size_c == 0) {
            *reason = "empty path component";
            free (path);
            return NULL;
        }
        if ((size_c == 1 && component [0] == '.')
        ||  (size_c == 2 && component [0] == '.' && component [1] == '.')) {
            *reason = "'.' or '..' in path";
            free (path);
            return NULL;
        }
        if (++depth > QN_TREE_MAX_DEPTH) {
            *reason = "path too deep";
            free (path);
            return NULL;
        }
        if (!slash)
            break;
        component = slash + 1;
    }
    return path;
}

//  True if some entry is also a directory of another: "a" and "a/b".
static bool
s_file_dir_conflict (qn_tree_t *self)
{
    char prefix [QN_TREE_MAX_PATH + 1];
    for (size_t i = 0; i < self->count; i++) {
        //  A copy to cut: the entry itself is in the array searched.
        snprintf (prefix, sizeof prefix, "%s", self->entries [i].path);
        for (char *slash = strchr (prefix, '/'); slash; slash = strchr (slash + 1, '/')) {
            *slash = 0;
            qn_tree_entry_t key = { .path = prefix };
            bool found = bsearch (&key, self->entries, self->count, sizeof (qn_tree_entry_t),
                                  s_entry_compare) != NULL;
            *slash = '/';
            if (found)
                return true;
        }
    }
    return false;
}

qn_tree_t *
qn_tree_parse_manifest (const char *text, size_t size, char **error_p)
{
    size_t magic = strlen (QN_TREE_MAGIC);
    if (!text || size < magic || memcmp (text, QN_TREE_MAGIC, magic)) {
        s_fail (error_p, "not a qanat tree manifest");
        return NULL;
    }
    qn_tree_t *self = s_tree_new (true);
    if (!self) {
        s_fail (error_p, "out of memory");
        return NULL;
    }
    size_t offset = magic;
    size_t line_number = 1;
    bool has_empty = false;
    while (offset < size) {
        line_number++;
        const char *line = text + offset;
        const char *newline = (const char *) memchr (line, '\n', size - offset);
        if (!newline) {
            s_fail (error_p, "manifest line %zu: truncated (no newline)", line_number);
            qn_tree_destroy (&self);
            return NULL;
        }
        if (self->count >= QN_TREE_MAX_ENTRIES) {
            s_fail (error_p, "manifest has more than %d entries", QN_TREE_MAX_ENTRIES);
            qn_tree_destroy (&self);
            return NULL;
        }
        uint32_t mode;
        uint64_t bytes;
        char hash [QN_BLOB_HASH_HEX + 1];
        const char *reason = "invalid";
        char *path = s_parse_line (line, (size_t) (newline - line), &mode, &bytes, hash, &reason);
        if (!path) {
            s_fail (error_p, "manifest line %zu: %s", line_number, reason);
            qn_tree_destroy (&self);
            return NULL;
        }
        if (*path == 0)
            has_empty = true;
        if (s_tree_add (self, path, mode, bytes, hash)) {
            s_fail (error_p, "out of memory");
            qn_tree_destroy (&self);
            return NULL;
        }
        offset = (size_t) (newline - text) + 1;
    }
    if (has_empty) {
        //  A file output: exactly one entry, with the empty path.
        if (self->count != 1) {
            s_fail (error_p, "manifest: an empty path is only valid as the single entry of a file");
            qn_tree_destroy (&self);
            return NULL;
        }
        self->is_dir = false;
    }
    uint64_t total = 0;
    for (size_t i = 0; i < self->count; i++) {
        if (i && strcmp (self->entries [i - 1].path, self->entries [i].path) >= 0) {
            s_fail (error_p, "manifest line %zu: paths not sorted or repeated", i + 2);
            qn_tree_destroy (&self);
            return NULL;
        }
        if (self->entries [i].size > (uint64_t) INT64_MAX - total) {
            s_fail (error_p, "manifest: total size too large");
            qn_tree_destroy (&self);
            return NULL;
        }
        total += self->entries [i].size;
    }
    if (s_file_dir_conflict (self)) {
        s_fail (error_p, "manifest: a path is both a file and a directory");
        qn_tree_destroy (&self);
        return NULL;
    }
    //  One tree, one text: the identity of a tree is the hash of its
    //  manifest, so another spelling of the same tree is refused.
    size_t canonical_size;
    char *canonical = qn_tree_manifest (self, &canonical_size);
    bool same = canonical && canonical_size == size && memcmp (canonical, text, size) == 0;
    free (canonical);
    if (!same) {
        s_fail (error_p, "manifest is not in canonical form");
        qn_tree_destroy (&self);
        return NULL;
    }
    return self;
}

//  ---------------------------------------------------------------------
//  Staging

//  Opens (creating it if missing) directory name under dir_fd, never
//  following a symlink.  -1 with *error_p set.
static int
s_stage_dir (int dir_fd, const char *name, const char *shown, const char *relpath, char **error_p)
{
    if (mkdirat (dir_fd, name, 0755) && errno != EEXIST) {
        s_fail (error_p, "input '%s': cannot create '%s': %s", relpath, shown, strerror (errno));
        return -1;
    }
    int fd = openat (dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        struct stat st;
        if (errno == ELOOP || errno == ENOTDIR) {
            bool link = fstatat (dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK (st.st_mode);
            s_fail (error_p, "input '%s': '%s' is %s, not a directory", relpath, shown,
                    link? "a symlink": "in the way");
        }
        else
            s_fail (error_p, "input '%s': '%s': %s", relpath, shown, strerror (errno));
    }
    return fd;
}

#define S_COPY_BUFFER (256 * 1024)

//  Copies up to want bytes at offset through buffer: the bytes copied,
//  0 at the end of in, -1 on an error
static ssize_t
s_copy_chunk (int in, int out, uint8_t *buffer, size_t want, uint64_t offset)
{
    ssize_t got = pread (in, buffer, want, (off_t) offset);
    for (ssize_t at = 0; got > 0 && at < got; ) {
        ssize_t put = pwrite (out, buffer + at, (size_t) (got - at),
                              (off_t) (offset + (uint64_t) at));
        if (put > 0)
            at += put;
        else
        if (put == 0 || errno != EINTR)
            return -1;
    }
    return got;
}

//  Copies size bytes of in to out, both at offset 0: a reflink where the
//  filesystem shares extents (a write to either then copies them), else
//  in the kernel, else through a buffer.  Never a hard link: the copy is
//  the task's own, what it does to it reaches no cache entry and no other
//  attempt.  A short source gives a short copy, for the caller's checks.
static int
s_copy_bytes (int in, int out, uint64_t size)
{
#ifdef FICLONE
    if (ioctl (out, FICLONE, in) == 0)
        return 0;
#endif
    bool kernel = true;
    uint8_t *buffer = NULL;
    uint64_t done = 0;
    while (done < size) {
        size_t want = size - done > (1u << 30)? (1u << 30): (size_t) (size - done);
        ssize_t got;
        if (kernel) {
            loff_t from = (loff_t) done, to = (loff_t) done;
            got = copy_file_range (in, &from, out, &to, want, 0);
            if (got < 0 && errno != EINTR && done == 0) {
                kernel = false;         //  not between these files: by hand
                continue;
            }
        }
        else {
            if (!buffer && !(buffer = (uint8_t *) malloc (S_COPY_BUFFER)))
                return -1;
            got = s_copy_chunk (in, out, buffer, want < S_COPY_BUFFER? want: S_COPY_BUFFER,
                                done);
        }
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        done += (uint64_t) got;
    }
    free (buffer);
    return done == size? 0: -1;
}

static bool
s_same_file (const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size
        && a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec
        && a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

//  Where staging reports a blob it cannot use
typedef struct {
    qn_tree_damage_fn *fn;              //  NULL: such a blob is an error
    void *arg;
} s_report_t;

//  A blob missing (seen NULL) or damaged: reported (0, the entry is
//  skipped) or an error (-1).
static int
s_unusable (const s_report_t *report, const qn_tree_entry_t *entry, const struct stat *seen,
            const char *why, const char *shown, const char *relpath, char **error_p)
{
    if (report->fn) {
        report->fn (report->arg, entry->hash, entry->size, seen);
        return 0;
    }
    if (seen)
        s_fail (error_p, "input '%s': '%s': blob %s in the store is damaged%s", relpath, shown,
                entry->hash, why);
    else
        s_fail (error_p, "input '%s': '%s': blob %s is not in the store", relpath, shown,
                entry->hash);
    return -1;
}

//  Puts one file at dir_fd/name, a copy of its blob (s_copy_bytes):
//  through a scratch name and a rename, so that an existing file (or
//  symlink) there is replaced, not written through.  The copy is hashed
//  unless the blob's file is as it was when its bytes were last checked
//  (qn_blobstore_vouched) before and after the copy.
static int
s_stage_file (qn_blobstore_t *blobs, const qn_tree_entry_t *entry, int dir_fd, const char *name,
              const char *shown, const char *relpath, const s_report_t *report, char **error_p)
{
    char blob_path [PATH_MAX];
    int blob_fd = qn_blobstore_path (blobs, entry->hash, blob_path, sizeof blob_path) == 0
                ? open (blob_path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC): -1;
    struct stat seen, after;
    if (blob_fd < 0 || fstat (blob_fd, &seen)) {
        if (blob_fd >= 0)
            close (blob_fd);
        return s_unusable (report, entry, NULL, "", shown, relpath, error_p);
    }
    if (!S_ISREG (seen.st_mode) || (uint64_t) seen.st_size != entry->size) {
        close (blob_fd);
        return s_unusable (report, entry, &seen, " (size differs)", shown, relpath, error_p);
    }
    mode_t want = 0444 | (entry->mode & 0111);
    static unsigned counter = 0;
    char scratch [64];
    int fd = -1;
    for (int attempt = 0; attempt < 100 && fd < 0; attempt++) {
        snprintf (scratch, sizeof scratch, ".qanat-stage-%d-%u", (int) getpid (), counter++);
        fd = openat (dir_fd, scratch, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0 && errno != EEXIST)
            break;
    }
    if (fd < 0) {
        s_fail (error_p, "input '%s': cannot create '%s': %s", relpath, shown, strerror (errno));
        close (blob_fd);
        return -1;
    }
    bool trusted = qn_blobstore_vouched (blobs, entry->hash, &seen);
    int rc = s_copy_bytes (blob_fd, fd, entry->size);
    if (rc == 0 && fstat (blob_fd, &after))
        rc = -1;
    bool damaged = false;
    if (rc == 0 && !(trusted && qn_blobstore_vouched (blobs, entry->hash, &after))) {
        //  Changed since it was checked, or never checked by this store:
        //  what the task will read is checked
        char actual [QN_BLOB_HASH_HEX + 1];
        uint64_t size = 0;
        if (qn_blobstore_hash_fd (fd, actual, &size, NULL, 0))
            rc = -1;
        else
            damaged = size != entry->size || strcmp (actual, entry->hash) != 0;
        if (rc == 0 && !damaged && s_same_file (&seen, &after))
            qn_blobstore_vouch (blobs, entry->hash, &after);
    }
    if (rc == 0 && !damaged && fchmod (fd, want))
        rc = -1;
    if (close (fd) && rc == 0)
        rc = -1;
    close (blob_fd);
    if (rc || damaged) {
        int saved = errno;
        unlinkat (dir_fd, scratch, 0);
        if (damaged)
            return s_unusable (report, entry, &after, "", shown, relpath, error_p);
        s_fail (error_p, "input '%s': cannot write '%s': %s", relpath, shown, strerror (saved));
        return -1;
    }
    if (renameat (dir_fd, scratch, dir_fd, name)) {
        int saved = errno;
        if (saved == EISDIR || saved == ENOTEMPTY || saved == EEXIST)
            s_fail (error_p, "input '%s': '%s' exists and is a directory", relpath, shown);
        else
            s_fail (error_p, "input '%s': cannot create '%s': %s", relpath, shown, strerror (saved));
        unlinkat (dir_fd, scratch, 0);
        return -1;
    }
    return 0;
}

int
qn_tree_stage (qn_tree_t *self, qn_blobstore_t *blobs, const char *workdir, const char *relpath,
               qn_tree_damage_fn *damaged, void *arg, char **error_p)
{
    assert (self);
    assert (blobs);
    s_report_t report = { damaged, arg };
    //  "." is a directory staged as the working directory itself (the
    //  workflow's code)
    bool top = self->is_dir && relpath && strcmp (relpath, ".") == 0;
    char *normal = top? strdup (""): s_normalize (relpath, "input", error_p);
    if (!normal)
        return -1;
    int root_fd = workdir? open (workdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC): -1;
    if (root_fd < 0) {
        s_fail (error_p, "working directory '%s': %s", workdir? workdir: "(null)",
                workdir? strerror (errno): "not given");
        free (normal);
        return -1;
    }
    //  The parents of the target, created as needed, never through a symlink.
    int rc = 0;
    int dir_fd = root_fd;
    char *last = normal;
    for (char *slash = strchr (normal, '/'); slash && rc == 0; slash = strchr (last, '/')) {
        *slash = 0;
        int next = s_stage_dir (dir_fd, last, normal, relpath, error_p);
        *slash = '/';
        if (next < 0)
            rc = -1;
        else {
            if (dir_fd != root_fd)
                close (dir_fd);
            dir_fd = next;
            last = slash + 1;
        }
    }
    if (rc == 0 && !self->is_dir) {
        if (self->count != 1) {
            s_fail (error_p, "input '%s': a file tree needs exactly one entry", relpath);
            rc = -1;
        }
        else
            rc = s_stage_file (blobs, &self->entries [0], dir_fd, last, normal, relpath, &report,
                               error_p);
    }
    else
    if (rc == 0) {
        int top_fd = top? dup (root_fd): s_stage_dir (dir_fd, last, normal, relpath, error_p);
        if (top_fd < 0)
            rc = -1;
        //  Entries are sorted, so consecutive ones share their directory:
        //  keep the last one open.
        char *open_path = NULL;
        int open_fd = -1;
        for (size_t i = 0; rc == 0 && i < self->count; i++) {
            const qn_tree_entry_t *entry = &self->entries [i];
            char *shown = NULL;
            if (asprintf (&shown, "%s%s%s", normal, top? "": "/", entry->path) < 0) {
                s_fail (error_p, "out of memory");
                rc = -1;
                break;
            }
            const char *slash = strrchr (entry->path, '/');
            const char *name = slash? slash + 1: entry->path;
            size_t parent_size = slash? (size_t) (slash - entry->path): 0;
            if (!*name || strcmp (name, ".") == 0 || strcmp (name, "..") == 0) {
                s_fail (error_p, "input '%s': bad entry path '%s'", relpath, entry->path);
                rc = -1;
            }
            else
            if (!open_path || strlen (open_path) != parent_size
            ||  memcmp (open_path, entry->path, parent_size)) {
                free (open_path);
                if (open_fd >= 0)
                    close (open_fd);
                open_fd = dup (top_fd);
                open_path = strndup (entry->path, parent_size);
                if (open_fd < 0 || !open_path) {
                    s_fail (error_p, "out of memory");
                    rc = -1;
                }
                //  Walk the entry's directories from the top, again
                //  creating and refusing symlinks.
                char *walk = open_path? strdup (open_path): NULL;
                char *component = walk;
                while (rc == 0 && component && *component) {
                    char *next_slash = strchr (component, '/');
                    if (next_slash)
                        *next_slash = 0;
                    if (!*component || strcmp (component, ".") == 0 || strcmp (component, "..") == 0) {
                        s_fail (error_p, "input '%s': bad entry path '%s'", relpath, entry->path);
                        rc = -1;
                        break;
                    }
                    int next = s_stage_dir (open_fd, component, shown, relpath, error_p);
                    close (open_fd);
                    open_fd = next;
                    if (next < 0)
                        rc = -1;
                    component = next_slash? next_slash + 1: NULL;
                }
                free (walk);
                if (rc) {
                    free (open_path);
                    open_path = NULL;
                }
            }
            if (rc == 0)
                rc = s_stage_file (blobs, entry, open_fd, name, shown, relpath, &report, error_p);
            free (shown);
        }
        free (open_path);
        if (open_fd >= 0)
            close (open_fd);
        if (top_fd >= 0)
            close (top_fd);
    }
    if (dir_fd != root_fd)
        close (dir_fd);
    close (root_fd);
    free (normal);
    return rc;
}

qn_tree_t *
qn_tree_load_manifest (qn_blobstore_t *blobs, const char *hash, uint64_t size, char **error_p)
{
    if (error_p)
        *error_p = NULL;
    if (size == 0 || size > QN_TREE_MANIFEST_MAX || !qn_blobstore_has (blobs, hash)) {
        if (error_p)
            *error_p = strdup (size > QN_TREE_MANIFEST_MAX? "manifest too big"
                                                          : "manifest missing");
        return NULL;
    }
    char *text = (char *) malloc ((size_t) size);
    if (!text)
        return NULL;
    qn_tree_t *tree = NULL;
    if (qn_blobstore_read (blobs, hash, 0, text, (size_t) size) == (ssize_t) size)
        tree = qn_tree_parse_manifest (text, (size_t) size, error_p);
    else
    if (error_p)
        *error_p = strdup ("manifest unreadable");
    free (text);
    return tree;
}

qn_tree_t *
qn_tree_for_file (const char *hash, uint64_t size)
{
    char manifest [sizeof (QN_TREE_MAGIC) + 128];
    snprintf (manifest, sizeof manifest, "%s644 %llu %s \n", QN_TREE_MAGIC,
              (unsigned long long) size, hash? hash: "");
    return qn_tree_parse_manifest (manifest, strlen (manifest), NULL);
}
