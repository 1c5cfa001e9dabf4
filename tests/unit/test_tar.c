/*  Unit tests for qn_tar: an archive of a few files and directories,
    long paths included, listed and extracted by GNU tar and compared. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "qn_tar.h"
#include "test_tmpdir.h"

//  One entry as the HTTP side streams it: pax blocks when needed, the
//  header, the content, the padding
static void
s_add (FILE *file, const char *path, const char *content, size_t size, uint32_t mode, char type)
{
    uint8_t header [QN_TAR_BLOCK];
    int rc = qn_tar_header (header, path, size, mode, 1796666400, type);
    assert_true (rc == 0 || rc == 1);
    if (rc == 1) {
        static uint8_t pax [QN_TAR_PAX_MAX];
        size_t pax_size = qn_tar_pax_path (pax, sizeof pax, path);
        assert_true (pax_size > 0 && pax_size % QN_TAR_BLOCK == 0);
        assert_int_equal (fwrite (pax, 1, pax_size, file), pax_size);
    }
    assert_int_equal (fwrite (header, 1, QN_TAR_BLOCK, file), QN_TAR_BLOCK);
    static const uint8_t zeros [QN_TAR_BLOCK];
    if (size) {
        assert_int_equal (fwrite (content, 1, size, file), size);
        assert_int_equal (fwrite (zeros, 1, qn_tar_padding (size), file), qn_tar_padding (size));
    }
}

static char *
s_read (const char *path, size_t *size_p)
{
    FILE *file = fopen (path, "rb");
    if (!file)
        fail_msg ("cannot open %s", path);
    char *data = (char *) malloc (1 << 20);
    *size_p = fread (data, 1, 1 << 20, file);
    fclose (file);
    return data;
}

//  A path of exactly length bytes: directories of 40 'd's, then a file name
static void
s_long_path (char *out, size_t length, char letter)
{
    size_t at = 0;
    while (length - at > 60) {
        memset (out + at, letter, 40);
        out [at + 40] = '/';
        at += 41;
    }
    memset (out + at, 'f', length - at);
    out [length] = 0;
}

//  Makes every parent directory of a long path as an entry
static void
s_add_parents (FILE *file, const char *path)
{
    char parent [QN_TAR_PATH_MAX + 1];
    for (const char *slash = strchr (path, '/'); slash; slash = strchr (slash + 1, '/')) {
        memcpy (parent, path, (size_t) (slash - path));
        parent [slash - path] = 0;
        s_add (file, parent, NULL, 0, 0755, '5');
    }
}

static void
test_archive (void **state)
{
    (void) state;
    char archive [128], out [128], command [512];
    snprintf (archive, sizeof archive, "%s/a.tar", s_dir);
    snprintf (out, sizeof out, "%s/out", s_dir);
    FILE *file = fopen (archive, "wb");
    assert_non_null (file);
    char weights [1500];
    for (size_t i = 0; i < sizeof weights; i++)
        weights [i] = (char) (i * 7);
    char path150 [160], path300 [310], name120 [130];
    s_long_path (path150, 150, 'd');
    s_long_path (path300, 300, 'e');
    memset (name120, 'n', 120);
    name120 [120] = 0;
    s_add (file, "model", NULL, 0, 0755, '5');
    s_add (file, "model/weights.bin", weights, sizeof weights, 0600, '0');
    s_add (file, "model/empty", "", 0, 0644, '0');
    s_add (file, "model/sub/", NULL, 0, 0750, '5');
    s_add (file, "model/sub/exactly512", weights, 512, 0644, '0');
    s_add_parents (file, path150);
    s_add (file, path150, "one fifty\n", 10, 0644, '0');
    s_add_parents (file, path300);
    s_add (file, path300, "three hundred\n", 14, 0644, '0');
    s_add (file, name120, "no slash\n", 9, 0644, '0');
    static const uint8_t end [QN_TAR_END_SIZE];
    assert_int_equal (fwrite (end, 1, sizeof end, file), sizeof end);
    fclose (file);

    //  Listing: every entry, with its mode and size, and no complaint
    snprintf (command, sizeof command, "tar -tvf %s 2>&1", archive);
    FILE *pipe = popen (command, "r");
    char listing [16384];
    size_t got = fread (listing, 1, sizeof listing - 1, pipe);
    listing [got] = 0;
    assert_int_equal (pclose (pipe), 0);
    assert_non_null (strstr (listing, "-rw------- 0/0            1500 "));
    assert_non_null (strstr (listing, " model/weights.bin\n"));
    assert_non_null (strstr (listing, "drwxr-x--- 0/0               0 "));
    assert_non_null (strstr (listing, " model/sub/\n"));
    assert_non_null (strstr (listing, path150));
    assert_non_null (strstr (listing, path300));
    assert_non_null (strstr (listing, name120));
    assert_null (strstr (listing, "qanat-"));
    assert_null (strstr (listing, "tar:"));

    //  Extracted: the same bytes
    snprintf (command, sizeof command, "mkdir -p %s && tar -xf %s -C %s 2>&1", out, archive, out);
    assert_int_equal (system (command), 0);
    char path [512];
    size_t size;
    snprintf (path, sizeof path, "%s/model/weights.bin", out);
    char *data = s_read (path, &size);
    assert_int_equal (size, sizeof weights);
    assert_memory_equal (data, weights, size);
    free (data);
    struct stat info;
    assert_int_equal (stat (path, &info), 0);
    assert_int_equal (info.st_mode & 0777, 0600);
    assert_int_equal (info.st_mtime, 1796666400);
    snprintf (path, sizeof path, "%s/model/empty", out);
    free (s_read (path, &size));
    assert_int_equal (size, 0);
    snprintf (path, sizeof path, "%s/model/sub/exactly512", out);
    data = s_read (path, &size);
    assert_int_equal (size, 512);
    assert_memory_equal (data, weights, 512);
    free (data);
    snprintf (path, sizeof path, "%s/%s", out, path150);
    data = s_read (path, &size);
    assert_int_equal (size, 10);
    assert_memory_equal (data, "one fifty\n", 10);
    free (data);
    snprintf (path, sizeof path, "%s/%s", out, path300);
    data = s_read (path, &size);
    assert_int_equal (size, 14);
    assert_memory_equal (data, "three hundred\n", 14);
    free (data);
    snprintf (path, sizeof path, "%s/%s", out, name120);
    data = s_read (path, &size);
    assert_int_equal (size, 9);
    free (data);
}

static void
test_header_fields (void **state)
{
    (void) state;
    uint8_t header [QN_TAR_BLOCK];
    //  150 bytes: split into prefix and name, no pax
    char path [QN_TAR_PATH_MAX + 8];
    s_long_path (path, 150, 'd');
    assert_int_equal (qn_tar_header (header, path, 1, 0644, 0, '0'), 0);
    //  Split at the first '/' that leaves at most 100 bytes
    assert_int_equal (header [345 + 81], 0);
    assert_memory_equal (header + 345, path, 81);
    assert_string_equal ((char *) header, path + 82);
    assert_memory_equal (header + 257, "ustar\0" "00", 8);
    //  A name without a '/' past 100 bytes, and 300 bytes: pax
    s_long_path (path, 300, 'e');
    assert_int_equal (qn_tar_header (header, path, 1, 0644, 0, '0'), 1);
    uint8_t pax [QN_TAR_PAX_MAX];
    size_t size = qn_tar_pax_path (pax, sizeof pax, path);
    assert_int_equal (size, 1024);
    assert_int_equal (pax [156], 'x');
    assert_memory_equal (pax + 512, "310 path=", 9);
    assert_int_equal (pax [512 + 309], '\n');
    assert_int_equal (qn_tar_pax_path (pax, 1023, path), 0);
    //  The longest path: its record fills the room the constant promises
    s_long_path (path, QN_TAR_PATH_MAX, 'g');
    size = qn_tar_pax_path (pax, sizeof pax, path);
    assert_true (size > 0 && size <= QN_TAR_PAX_MAX);
    //  A record whose length is a multiple of 512 writes nothing past it
    s_long_path (path, 502, 'h');
    uint8_t exact [1024 + 1];
    exact [1024] = 0xAA;
    assert_int_equal (qn_tar_pax_path (exact, 1024, path), 1024);
    assert_int_equal (exact [1024], 0xAA);
    assert_memory_equal (exact + 512, "512 path=", 9);
    //  Sizes past 11 octal digits: base-256
    assert_int_equal (qn_tar_header (header, "big", UINT64_C (10737418240), 0644, -5, '0'), 0);
    assert_int_equal (header [124], 0x80);
    assert_int_equal (header [124 + 7], 0x02);
    assert_int_equal (header [124 + 8], 0x80);
    assert_memory_equal (header + 136, "00000000000", 11);
    //  A directory's size is 0 and its name ends in '/'
    assert_int_equal (qn_tar_header (header, "dir", 99, 0755, 0, '5'), 0);
    assert_string_equal ((char *) header, "dir/");
    assert_memory_equal (header + 124, "00000000000", 11);
    //  Padding
    assert_int_equal (qn_tar_padding (0), 0);
    assert_int_equal (qn_tar_padding (1), 511);
    assert_int_equal (qn_tar_padding (512), 0);
    assert_int_equal (qn_tar_padding (513), 511);
    assert_int_equal (qn_tar_padding (UINT64_MAX), 1);
}

static void
test_refused (void **state)
{
    (void) state;
    uint8_t header [QN_TAR_BLOCK], pax [QN_TAR_PAX_MAX];
    static const char *bad [] = {
        "", "/etc/passwd", "..", "../x", "a/..", "a/../b", "a/b/../../..", "a\nb", "a\tb",
        "tab\x7f", "ok/\x1b[31m", NULL
    };
    for (size_t i = 0; bad [i]; i++) {
        assert_int_equal (qn_tar_header (header, bad [i], 0, 0644, 0, '0'), -1);
        assert_int_equal (qn_tar_pax_path (pax, sizeof pax, bad [i]), 0);
    }
    assert_int_equal (qn_tar_header (header, NULL, 0, 0644, 0, '0'), -1);
    assert_int_equal (qn_tar_header (header, "x", 0, 0644, 0, '2'), -1);
    assert_int_equal (qn_tar_header (header, "x/", 0, 0644, 0, '0'), -1);
    //  Names that only look like "..": fine
    assert_int_equal (qn_tar_header (header, "..a/b..", 0, 0644, 0, '0'), 0);
    assert_int_equal (qn_tar_header (header, "a/.../b", 0, 0644, 0, '0'), 0);
    char path [QN_TAR_PATH_MAX + 2];
    memset (path, 'p', QN_TAR_PATH_MAX + 1);
    path [QN_TAR_PATH_MAX + 1] = 0;
    assert_int_equal (qn_tar_header (header, path, 0, 0644, 0, '0'), -1);
    assert_int_equal (qn_tar_pax_path (pax, sizeof pax, path), 0);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_archive),
        cmocka_unit_test (test_header_fields),
        cmocka_unit_test (test_refused),
    };
    return cmocka_run_group_tests (tests, s_tmpdir_setup, s_tmpdir_teardown);
}
