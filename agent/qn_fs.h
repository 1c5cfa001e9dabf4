/*  qn_fs - filesystem helpers the agent's parts share: remove a tree
    without following symlinks, move a tree across filesystems, make a
    path with its parents.  No knowledge of attempts or backends.
*/
#ifndef QN_FS_H_INCLUDED
#define QN_FS_H_INCLUDED

#include <stddef.h>
#include <sys/types.h>

//  Removes path and everything below it (no symlink followed); a path
//  that is not there is fine.  0 or -1.
int
    qn_fs_remove_tree (const char *path);

//  Moves from (a file, or a directory of regular files and directories)
//  to to, which must not exist: a rename, or on another filesystem
//  (EXDEV) a copy keeping the modes, then from is removed.  A copy
//  refuses symlinks, devices, fifos and sockets (and leaves nothing at
//  to).  -1 with the reason in error.
int
    qn_fs_move (const char *from, const char *to, char *error, size_t error_size);

//  Creates path and its missing parents (each with mode).  0 or -1.
int
    qn_fs_mkdirs (const char *path, mode_t mode);

#endif
