/*  qn_tar - POSIX ustar headers.  See qn_tar.h. */
#include "qn_tar.h"
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

//  Field offsets and sizes of the ustar header
#define S_NAME      0
#define S_NAME_SIZE 100
#define S_MODE      100
#define S_UID       108
#define S_GID       116
#define S_SIZE      124
#define S_MTIME     136
#define S_CHECKSUM  148
#define S_TYPE      156
#define S_MAGIC     257
#define S_VERSION   263
#define S_DEVMAJOR  329
#define S_DEVMINOR  337
#define S_PREFIX    345
#define S_PREFIX_SIZE 155

//  Largest value of 11 octal digits
#define S_OCTAL_MAX UINT64_C (077777777777)

//  No empty, absolute or overlong path, no ".." component, no control byte
static bool
s_path_ok (const char *path)
{
    if (!path || !*path || *path == '/' || strlen (path) > QN_TAR_PATH_MAX)
        return false;
    for (const char *c = path; *c; c++)
        if ((unsigned char) *c < 0x20 || *c == 0x7f)
            return false;
    for (const char *part = path; part; part = strchr (part, '/')) {
        if (*part == '/')
            part++;
        if (part [0] == '.' && part [1] == '.' && (part [2] == '/' || part [2] == 0))
            return false;
    }
    return true;
}

//  value as width - 1 octal digits and a NUL
static void
s_octal (uint8_t *field, size_t width, uint64_t value)
{
    char text [32];
    snprintf (text, sizeof text, "%0*llo", (int) width - 1, (unsigned long long) value);
    memcpy (field, text, width - 1);
    field [width - 1] = 0;
}

//  value in the 12-byte size field: octal when it fits, else base-256
//  (the high bit of the first byte set, then the number big-endian)
static void
s_number12 (uint8_t *field, uint64_t value)
{
    if (value <= S_OCTAL_MAX) {
        s_octal (field, 12, value);
        return;
    }
    memset (field, 0, 12);
    field [0] = 0x80;
    for (int i = 11; i >= 4; i--, value >>= 8)
        field [i] = (uint8_t) (value & 0xff);
}

static void
s_checksum (uint8_t out [QN_TAR_BLOCK])
{
    memset (out + S_CHECKSUM, ' ', 8);
    unsigned sum = 0;
    for (size_t i = 0; i < QN_TAR_BLOCK; i++)
        sum += out [i];
    char text [16];
    snprintf (text, sizeof text, "%06o", sum & 0777777);
    memcpy (out + S_CHECKSUM, text, 6);
    out [S_CHECKSUM + 6] = 0;
    out [S_CHECKSUM + 7] = ' ';
}

//  The fields every header has
static void
s_fill (uint8_t out [QN_TAR_BLOCK], uint64_t size, uint32_t mode, int64_t mtime_s, char type)
{
    memset (out, 0, QN_TAR_BLOCK);
    s_octal (out + S_MODE, 8, mode & 07777);
    s_octal (out + S_UID, 8, 0);
    s_octal (out + S_GID, 8, 0);
    s_number12 (out + S_SIZE, size);
    uint64_t mtime = mtime_s < 0? 0: (uint64_t) mtime_s > S_OCTAL_MAX? S_OCTAL_MAX: (uint64_t) mtime_s;
    s_octal (out + S_MTIME, 12, mtime);
    out [S_TYPE] = (uint8_t) type;
    memcpy (out + S_MAGIC, "ustar", 6);
    memcpy (out + S_VERSION, "00", 2);
    s_octal (out + S_DEVMAJOR, 8, 0);
    s_octal (out + S_DEVMINOR, 8, 0);
}

//  Puts full (length bytes) in name, or split at a '/' into prefix and
//  name; false when it fits neither way
static bool
s_place (uint8_t out [QN_TAR_BLOCK], const char *full, size_t length)
{
    if (length <= S_NAME_SIZE) {
        memcpy (out + S_NAME, full, length);
        return true;
    }
    //  The first '/' that leaves a name short enough (a directory's own
    //  trailing '/' is part of its name, never the split)
    for (size_t i = 1; i <= S_PREFIX_SIZE && i < length - 1; i++)
        if (full [i] == '/' && length - i - 1 <= S_NAME_SIZE) {
            memcpy (out + S_PREFIX, full, i);
            memcpy (out + S_NAME, full + i + 1, length - i - 1);
            return true;
        }
    return false;
}

int
qn_tar_header (uint8_t out [QN_TAR_BLOCK], const char *path, uint64_t size, uint32_t mode,
               int64_t mtime_s, char type)
{
    if (!out || !s_path_ok (path) || (type != '0' && type != '5'))
        return -1;
    size_t length = strlen (path);
    if (type == '0' && path [length - 1] == '/')
        return -1;                      //  a file named like a directory
    char full [QN_TAR_PATH_MAX + 2];
    memcpy (full, path, length + 1);
    if (type == '5') {
        size = 0;
        if (full [length - 1] != '/')
            full [length++] = '/';
        full [length] = 0;
    }
    s_fill (out, size, mode, mtime_s, type);
    int rc = 0;
    if (!s_place (out, full, length)) {
        //  The pax record before this header names it; a reader without
        //  pax sees a harmless placeholder
        memset (out + S_NAME, 0, S_NAME_SIZE);
        memset (out + S_PREFIX, 0, S_PREFIX_SIZE);
        const char *placeholder = type == '5'? "qanat-long-path/": "qanat-long-path";
        memcpy (out + S_NAME, placeholder, strlen (placeholder));
        rc = 1;
    }
    s_checksum (out);
    return rc;
}

size_t
qn_tar_pax_path (uint8_t *out, size_t out_size, const char *path)
{
    if (!out || !s_path_ok (path))
        return 0;
    //  A record is "<length> path=<path>\n" where length counts itself
    size_t body = strlen (" path=") + strlen (path) + 1;
    size_t length = body + 1;
    char digits [24];
    while (length != body + (size_t) snprintf (digits, sizeof digits, "%zu", length))
        length = body + strlen (digits);
    size_t total = QN_TAR_BLOCK + length + qn_tar_padding (length);
    if (out_size < total)
        return 0;
    s_fill (out, length, 0644, 0, 'x');
    memcpy (out + S_NAME, "qanat-pax-header", 16);
    s_checksum (out);
    uint8_t *record = out + QN_TAR_BLOCK;
    memset (record, 0, total - QN_TAR_BLOCK);
    size_t used = (size_t) sprintf ((char *) record, "%zu path=", length);
    memcpy (record + used, path, strlen (path));
    record [length - 1] = '\n';
    return total;
}

size_t
qn_tar_padding (uint64_t size)
{
    return (size_t) ((QN_TAR_BLOCK - size % QN_TAR_BLOCK) % QN_TAR_BLOCK);
}
