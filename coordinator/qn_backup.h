/*  qn_backup - a verified copy of a coordinator's data directory, taken
    while it runs, and its restore into a fresh data directory.

    A backup is a directory on the coordinator's own host:

        DIR/data.mdb           the store: a compacted LMDB copy of one
                               snapshot (mdb_env_copy2, MDB_CP_COMPACT)
        DIR/blobs/objects/..   the blob store's complete blobs (partial
                               transfers are left out: agents resend them)
        DIR/keys/..            the coordinator's keys, the admin key, the
                               secrets' key and the admitted public keys:
                               without them the secrets cannot be opened
                               and the agents would not know the server
        DIR/manifest.json      format, qanat version, store schema, the
                               entries of every sub-database, and each
                               file's path, size and SHA-256

    It is written under DIR.partial-PID beside DIR, checked against its
    manifest by reading every file back, and only then renamed to DIR, so
    that a DIR that exists is complete.  DIR must be absent or empty.

    The copy runs on a thread of its own: the engine's loop goes on, and
    its writes during the copy are simply not in the snapshot.  The blobs
    are copied after the store, so every blob the snapshot names is there
    unless retention removed it meanwhile (then its run is one that the
    retention was deleting anyway).

    Restore refuses a data directory that is not empty, checks every file
    of the backup against the manifest while copying it, and the store's
    entries against the manifest's counts, then renames the copy into
    place.  A damaged backup (a flipped byte, a truncated file, a missing
    blob, a manifest that does not parse) is refused naming the file.
*/
#ifndef QN_BACKUP_H_INCLUDED
#define QN_BACKUP_H_INCLUDED

#include "qn_store.h"
#include <stdbool.h>
#include <stdint.h>

//  The manifest's "format"
#define QN_BACKUP_FORMAT "qanat-backup 1"

typedef struct _qn_backup_t qn_backup_t;

//  Checks dir (an absolute path, absent or an empty directory, its parent
//  a directory) and starts copying store and data_dir into it on a
//  thread.  NULL with *error_p (malloc'd) when dir cannot be used.
qn_backup_t *
    qn_backup_start (qn_store_t *store, const char *data_dir, const char *dir, char **error_p);

//  True once the thread is done (successful or not); never blocks.
bool
    qn_backup_finished (qn_backup_t *self);

//  After qn_backup_finished: NULL when the backup is complete, else why
//  it failed (nothing is left behind then).
const char *
    qn_backup_error (qn_backup_t *self);

//  After a successful backup: the manifest's text, bytes copied, time.
const char *
    qn_backup_manifest (qn_backup_t *self);
const char *
    qn_backup_dir (qn_backup_t *self);
uint64_t
    qn_backup_bytes (qn_backup_t *self);
uint64_t
    qn_backup_elapsed_ms (qn_backup_t *self);

//  Waits for the thread, then frees everything.
void
    qn_backup_destroy (qn_backup_t **self_p);

//  Checks the backup in dir against its manifest (every file's size and
//  SHA-256, every sub-database's entries).  0, or -1 with *error_p.
int
    qn_backup_verify (const char *dir, char **error_p);

//  Restores the backup in dir into data_dir (absent or empty), checking
//  it as qn_backup_verify does.  0 with *summary_p (malloc'd: what was
//  restored), or -1 with *error_p; data_dir is untouched on failure.
int
    qn_backup_restore (const char *dir, const char *data_dir, char **summary_p,
                       char **error_p);

//  qanatd --restore: restores, prints what on stdout (or why not on
//  stderr), returns the exit code (0, or 1).
int
    qn_backup_restore_main (const char *dir, const char *data_dir);

#endif
