/*  qn_tar - POSIX ustar headers, for streaming a directory artifact as one
    download (application/x-tar).

    The caller writes, for each entry in turn: for a path that does not
    fit the ustar fields, the pax extended header from qn_tar_pax_path;
    then the header from qn_tar_header; then the file's bytes and
    qn_tar_padding zero bytes.  After the last entry come two zero blocks
    (QN_TAR_END_SIZE bytes).  Nothing is buffered here, so an archive of
    any size streams in constant memory.

    A path of up to 100 bytes is the ustar name; up to 255, split at a '/'
    into prefix and name; longer (up to QN_TAR_PATH_MAX), a pax 'x' record
    "path=..." carries it and the ustar header holds a placeholder.  A
    size of 8 GiB or more, which 11 octal digits cannot hold, is written
    in the base-256 form GNU tar, bsdtar and Python's tarfile read.
    Paths are refused when empty, absolute, with a ".." component or a
    control byte: whoever extracts the archive must not be led outside
    its directory.
*/
#ifndef QN_TAR_H_INCLUDED
#define QN_TAR_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

#define QN_TAR_BLOCK 512
#define QN_TAR_END_SIZE (2 * QN_TAR_BLOCK)
#define QN_TAR_PATH_MAX 4096
//  The most qn_tar_pax_path writes: its header and the record's blocks
#define QN_TAR_PAX_MAX (QN_TAR_BLOCK + (QN_TAR_PATH_MAX + 32 + QN_TAR_BLOCK - 1) \
                        / QN_TAR_BLOCK * QN_TAR_BLOCK)

//  Fills out with the header of path: type '0' a file of size bytes, '5'
//  a directory (size 0; a '/' is added to its name).  mode keeps its
//  permission bits; mtime_s is clamped to what the field holds.  Returns 0,
//  1 when the path needs qn_tar_pax_path's blocks before this header, or
//  -1 when the path or type is refused.
int
    qn_tar_header (uint8_t out [QN_TAR_BLOCK], const char *path, uint64_t size, uint32_t mode,
                   int64_t mtime_s, char type);

//  Writes the pax extended header carrying path (as given to
//  qn_tar_header, a directory's without its trailing '/') and returns its
//  size in bytes, a multiple of 512 of at most QN_TAR_PAX_MAX; 0 when the
//  path is refused or out_size is too small.
size_t
    qn_tar_pax_path (uint8_t *out, size_t out_size, const char *path);

//  Zero bytes after size bytes of content, to the next 512 boundary
size_t
    qn_tar_padding (uint64_t size);

#endif
