/*  qn_tree - a declared task output or input, as a list of files.

    A task declares outputs as paths relative to its working directory:
    "model.bin" (a file), "data/" or "out/dir" (a directory).  A file is
    one entry with the empty path; a directory is every regular file under
    it, recursively, with paths relative to it, sorted by bytes.  Empty
    directories are not kept.

    The manifest is the deterministic text form, and the identity of a
    directory output is the SHA-256 of its manifest (stored as a blob too):

        qanat-tree 1\n
        <mode octal> <size> <sha256> <path>\n      one line per entry

    mode is the permission bits (at most 777, no setuid/setgid/sticky),
    size decimal, the path %-escaped: '%', space, control characters and
    bytes 0x7f-0xff become %XX (uppercase hex).  There is exactly one
    manifest for a tree; qn_tree_parse_manifest refuses any other.

    What may be scanned: the output path must stay inside the working
    directory after every symlink is resolved; a symlink inside the
    working directory is followed (the file or directory it names is
    taken), one that points outside it, dangling or looping is refused,
    as are devices, fifos and sockets, and names with control characters.

    What staging writes: each file is read-only, keeping its execute bits
    (0444 or 0555), and is the task's own copy of its blob: a reflink
    (FICLONE) where the filesystem shares extents, else a copy
    (copy_file_range, else read and write), never a hard link, so that a
    task writing to its inputs (it may make them writable: it is the
    agent's user) changes neither the store nor any other attempt's
    inputs.  A blob whose file changed since its SHA-256 was last checked
    (qn_blobstore_vouched) is checked again, on the copy staged.  An
    existing file at a target is replaced; other files already in a
    target directory are left alone.

    Errors: on failure, *error_p (if error_p is not NULL) receives a
    message naming the output, which the caller frees.
*/
#ifndef QN_TREE_H_INCLUDED
#define QN_TREE_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "qn_blobstore.h"

#ifdef __cplusplus
extern "C" {
#endif

#define QN_TREE_MAX_ENTRIES 100000
#define QN_TREE_MAX_PATH    4096
#define QN_TREE_MAX_DEPTH   64
#define QN_TREE_MAGIC       "qanat-tree 1\n"

typedef struct {
    char *path;                         //  relative to the output; "" for a file output
    uint32_t mode;                      //  permission bits, <= 0777
    uint64_t size;
    char hash [QN_BLOB_HASH_HEX + 1];
} qn_tree_entry_t;

typedef struct _qn_tree_t qn_tree_t;

//  Checks a declared output or input path (as a submitted workflow gives
//  it): not empty, not absolute, no "..", no control characters, at most
//  QN_TREE_MAX_PATH bytes.  0, or -1 with *error_p set.
int
    qn_tree_check_path (const char *relpath, char **error_p);

//  Scans workdir/relpath, hashing every file.  NULL on failure.
qn_tree_t *
    qn_tree_scan (const char *workdir, const char *relpath, char **error_p);

//  As qn_tree_scan, and stores every file into blobs as it goes (each
//  file is opened once; content already in the store is not copied).
qn_tree_t *
    qn_tree_scan_store (const char *workdir, const char *relpath, qn_blobstore_t *blobs,
                        char **error_p);

//  Which names a filtered scan takes: path is relative to the scanned
//  directory, is_dir says whether the name itself (not followed) is a
//  directory.  False leaves it out, and a directory is not entered.
typedef bool (qn_tree_filter_fn) (void *arg, const char *path, bool is_dir);

//  As qn_tree_scan, taking only what keep keeps.
qn_tree_t *
    qn_tree_scan_filtered (const char *workdir, const char *relpath, qn_tree_filter_fn *keep,
                           void *arg, char **error_p);

bool
    qn_tree_is_dir (qn_tree_t *self);

size_t
    qn_tree_count (qn_tree_t *self);

//  The i-th entry, or NULL past the end.
const qn_tree_entry_t *
    qn_tree_entry (qn_tree_t *self, size_t i);

//  Sum of the entries' sizes.
uint64_t
    qn_tree_bytes (qn_tree_t *self);

//  The manifest text (NUL-terminated too), malloc'd; size_p may be NULL.
char *
    qn_tree_manifest (qn_tree_t *self, size_t *size_p);

//  The manifest's SHA-256 in hex: the identity of the tree.
int
    qn_tree_manifest_hash (qn_tree_t *self, char hash_out [QN_BLOB_HASH_HEX + 1]);

//  Parses a manifest received from anywhere: every field is validated,
//  paths are re-checked (no "." or "..", not absolute, no empty
//  components, no NUL or control characters, no file that is also a
//  directory), and the text must be the canonical one.  NULL on failure.
qn_tree_t *
    qn_tree_parse_manifest (const char *text, size_t size, char **error_p);

//  The largest manifest qn_tree_load_manifest reads (100,000 entries of
//  a few hundred bytes fit)
#define QN_TREE_MANIFEST_MAX (64u * 1024 * 1024)

//  Reads and parses the manifest blob hash (size bytes) from blobs.  NULL
//  when it is missing, too big, unreadable or not a manifest.
qn_tree_t *
    qn_tree_load_manifest (qn_blobstore_t *blobs, const char *hash, uint64_t size,
                           char **error_p);

//  The tree of a single-file output: one entry with the empty path, so
//  that a file and a directory stage the same way.  NULL for a bad hash.
qn_tree_t *
    qn_tree_for_file (const char *hash, uint64_t size);

//  A blob staging cannot use: missing from the store (seen NULL), or
//  damaged (not its size, or not its SHA-256), seen being its file then.
//  Called on the staging thread.
typedef void (qn_tree_damage_fn) (void *arg, const char *hash, uint64_t size,
                                  const struct stat *seen);

//  Materializes the tree at workdir/relpath from blobs, creating parent
//  directories; a directory tree with relpath "." goes into workdir itself.  Refuses a symlink at any component of the way (never
//  writes outside workdir).  A missing or damaged blob is an error, or,
//  with damaged, is reported there and its file skipped (so the caller
//  can fetch it again and stage once more).
int
    qn_tree_stage (qn_tree_t *self, qn_blobstore_t *blobs, const char *workdir,
                   const char *relpath, qn_tree_damage_fn *damaged, void *arg,
                   char **error_p);

void
    qn_tree_destroy (qn_tree_t **self_p);

#ifdef __cplusplus
}
#endif
#endif
