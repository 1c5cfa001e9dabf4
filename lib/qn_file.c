/*  qn_file - reading small settings files.  See qn_file.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "qn_file.h"

char *
qn_file_read_small (const char *path, size_t max, size_t *size_p, bool *missing_p,
                    char *error, size_t error_size)
{
    if (missing_p)
        *missing_p = false;
    //  Non-blocking: a FIFO in the file's place cannot hang the caller
    int fd = open (path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd == -1) {
        if (missing_p && (errno == ENOENT || errno == ENOTDIR)) {
            *missing_p = true;
            return NULL;
        }
        snprintf (error, error_size, "cannot open %s: %s", path, strerror (errno));
        return NULL;
    }
    struct stat st;
    if (fstat (fd, &st) == -1 || !S_ISREG (st.st_mode) || (uint64_t) st.st_size > max) {
        snprintf (error, error_size, "%s is not a regular file of at most %zu bytes", path, max);
        close (fd);
        return NULL;
    }
    char *data = (char *) malloc ((size_t) st.st_size + 1);
    size_t size = 0;
    while (data && size < (size_t) st.st_size) {
        ssize_t got = read (fd, data + size, (size_t) st.st_size - size);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        size += (size_t) got;
    }
    close (fd);
    if (!data) {
        snprintf (error, error_size, "out of memory");
        return NULL;
    }
    data [size] = '\0';
    if (size_p)
        *size_p = size;
    return data;
}

void
qn_file_make_parents (const char *path)
{
    char *copy = strdup (path);
    for (char *slash = copy? strchr (copy + 1, '/'): NULL; slash; slash = strchr (slash + 1, '/')) {
        *slash = 0;
        mkdir (copy, 0700);
        *slash = '/';
    }
    free (copy);
}
