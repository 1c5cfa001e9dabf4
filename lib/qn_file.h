/*  qn_file - reading the small files qanat's parts take settings from
    (credentials, kubeconfigs, service-account tokens, the CLI's config):
    the whole of a regular file of a bounded size, never blocking on a
    FIFO put in its place; and making the directories a file goes in.
    Private to qanat's own programs.
*/
#ifndef QN_FILE_H_INCLUDED
#define QN_FILE_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

//  The whole regular file at path, of at most max bytes, NUL-terminated
//  (malloc'd), its size in *size_p (may be NULL).  NULL with the reason
//  in error; when missing_p is given, a file that is not there is no
//  error: NULL with *missing_p set.
char *
    qn_file_read_small (const char *path, size_t max, size_t *size_p, bool *missing_p,
                        char *error, size_t error_size);

//  Creates the directories above path that are missing, mode 0700 (as
//  mkdir -p of its parent); failures show when path itself is used
void
    qn_file_make_parents (const char *path);

#endif
