/*  qn_fs - filesystem helpers.  See qn_fs.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "qn_fs.h"

//  Deepest tree s_copy_tree follows: a stage directory is the agent's own
//  making, so deeper is a bug or an attack, not data
#define S_COPY_DEPTH_MAX    256

#define streq(a, b) (strcmp ((a), (b)) == 0)

//  Copies the open regular file in (whose stat is st) to a new file to,
//  with its mode.  Apart from the tree walk, so that its buffer is not
//  on the stack of every level of a deep tree.
static int
s_copy_file (int in, const struct stat *st, const char *to, const char *from, char *error,
             size_t error_size)
{
    int out = open (to, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (out == -1) {
        snprintf (error, error_size, "cannot create %s: %s", to, strerror (errno));
        return -1;
    }
    char buffer [65536];
    int rc = 0;
    while (rc == 0) {
        ssize_t got = read (in, buffer, sizeof (buffer));
        if (got == -1 && errno == EINTR)
            continue;
        if (got == -1) {
            snprintf (error, error_size, "cannot read %s: %s", from, strerror (errno));
            rc = -1;
        }
        if (got <= 0)
            break;
        for (ssize_t done = 0; rc == 0 && done < got; ) {
            ssize_t put = write (out, buffer + done, (size_t) (got - done));
            if (put == -1 && errno == EINTR)
                continue;
            if (put <= 0) {
                snprintf (error, error_size, "cannot write %s: %s", to,
                          put == -1? strerror (errno): "no progress");
                rc = -1;
            }
            else
                done += put;
        }
    }
    if (rc == 0 && fchmod (out, st->st_mode & 07777) == -1) {
        snprintf (error, error_size, "cannot set the mode of %s: %s", to, strerror (errno));
        rc = -1;
    }
    if (close (out) == -1 && rc == 0) {
        snprintf (error, error_size, "cannot write %s: %s", to, strerror (errno));
        rc = -1;
    }
    return rc;
}


//  Copies from (a regular file, or a directory of them) to to, which must
//  not exist, with the modes of the originals.  Nothing else is ever
//  staged, so anything else (a symlink, a device, a fifo) is refused.
//  -1 with the reason in error; what was copied so far stays for the
//  caller to remove.
static int
s_copy_tree (const char *from, const char *to, int depth, char *error, size_t error_size)
{
    if (depth > S_COPY_DEPTH_MAX) {
        snprintf (error, error_size, "cannot copy %s: nested too deep", from);
        return -1;
    }
    int in = open (from, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (in == -1 || fstat (in, &st) == -1) {
        snprintf (error, error_size, "cannot copy %s: %s", from,
                  errno == ELOOP? "a symlink": strerror (errno));
        if (in != -1)
            close (in);
        return -1;
    }
    if (S_ISDIR (st.st_mode)) {
        DIR *dir = fdopendir (in);
        if (!dir) {
            snprintf (error, error_size, "cannot read %s: %s", from, strerror (errno));
            close (in);
            return -1;
        }
        int rc = 0;
        if (mkdir (to, 0700) == -1) {
            snprintf (error, error_size, "cannot create %s: %s", to, strerror (errno));
            rc = -1;
        }
        struct dirent *entry;
        while (rc == 0 && (entry = readdir (dir))) {
            if (streq (entry->d_name, ".") || streq (entry->d_name, ".."))
                continue;
            char *child_from = NULL, *child_to = NULL;
            if (asprintf (&child_from, "%s/%s", from, entry->d_name) < 0)
                child_from = NULL;
            if (asprintf (&child_to, "%s/%s", to, entry->d_name) < 0)
                child_to = NULL;
            if (!child_from || !child_to) {
                snprintf (error, error_size, "out of memory");
                rc = -1;
            }
            else
                rc = s_copy_tree (child_from, child_to, depth + 1, error, error_size);
            free (child_from);
            free (child_to);
        }
        closedir (dir);
        //  Last, so that a read-only directory could still be filled
        if (rc == 0 && chmod (to, st.st_mode & 07777) == -1) {
            snprintf (error, error_size, "cannot set the mode of %s: %s", to, strerror (errno));
            rc = -1;
        }
        return rc;
    }
    if (!S_ISREG (st.st_mode)) {
        snprintf (error, error_size, "cannot copy %s: not a regular file or a directory", from);
        close (in);
        return -1;
    }
    int rc = s_copy_file (in, &st, to, from, error, error_size);
    close (in);
    return rc;
}

int
qn_fs_move (const char *from, const char *to, char *error, size_t error_size)
{
    if (rename (from, to) == 0)
        return 0;
    if (errno != EXDEV) {
        snprintf (error, error_size, "cannot move %s to %s: %s", from, to, strerror (errno));
        return -1;
    }
    //  Another filesystem: a copy, then the original goes
    char reason [600] = "";
    if (s_copy_tree (from, to, 0, reason, sizeof (reason)) == -1) {
        int saved = errno;
        qn_fs_remove_tree (to);
        errno = saved;
        snprintf (error, error_size, "cannot move %s to %s (another filesystem): %s",
                  from, to, reason);
        return -1;
    }
    if (qn_fs_remove_tree (from) == -1) {
        snprintf (error, error_size, "copied %s to %s, but cannot remove it: %s", from, to,
                  strerror (errno));
        return -1;
    }
    return 0;
}

static int
s_remove_entry (const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void) sb;
    (void) flag;
    (void) ftw;
    return remove (path);
}

int
qn_fs_remove_tree (const char *path)
{
    struct stat st;
    if (lstat (path, &st) == -1)
        return errno == ENOENT? 0: -1;
    return nftw (path, s_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int
qn_fs_mkdirs (const char *path, mode_t mode)
{
    char *copy = strdup (path);
    if (!copy)
        return -1;
    for (char *slash = strchr (copy + 1, '/'); slash; slash = strchr (slash + 1, '/')) {
        *slash = '\0';
        if (mkdir (copy, mode) == -1 && errno != EEXIST) {
            free (copy);
            return -1;
        }
        *slash = '/';
    }
    free (copy);
    return mkdir (path, mode) == -1 && errno != EEXIST? -1: 0;
}
