/*  Unit tests for qn_tree: scanning outputs, manifests, staging inputs. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include "qn_tree.h"

typedef struct {
    char dir [64];                      //  the test's temporary directory
    char work [128];                    //  a task's working directory
    char stage [128];                   //  another task's working directory
    char outside [128];                 //  a place no task may touch
    qn_blobstore_t *blobs;
} fixture_t;

static int
s_remove_one (const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) st; (void) flag; (void) ftw;
    remove (path);
    return 0;
}

static int
setup (void **state)
{
    fixture_t *fixture = (fixture_t *) calloc (1, sizeof (fixture_t));
    strcpy (fixture->dir, "/tmp/qn_tree_XXXXXX");
    if (!mkdtemp (fixture->dir))
        return -1;
    snprintf (fixture->work, sizeof fixture->work, "%s/work", fixture->dir);
    snprintf (fixture->stage, sizeof fixture->stage, "%s/stage", fixture->dir);
    snprintf (fixture->outside, sizeof fixture->outside, "%s/outside", fixture->dir);
    mkdir (fixture->work, 0755);
    mkdir (fixture->stage, 0755);
    mkdir (fixture->outside, 0755);
    char store [160];
    snprintf (store, sizeof store, "%s/blobs", fixture->dir);
    fixture->blobs = qn_blobstore_new (store);
    *state = fixture;
    return fixture->blobs? 0: -1;
}

static int
teardown (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    qn_blobstore_destroy (&fixture->blobs);
    nftw (fixture->dir, s_remove_one, 16, FTW_DEPTH | FTW_PHYS);
    free (fixture);
    return 0;
}

//  Writes base/relative (creating parents), with mode.
static void
s_file (const char *base, const char *relative, const char *content, mode_t mode)
{
    char path [1024];
    snprintf (path, sizeof path, "%s/%s", base, relative);
    for (char *slash = strchr (path + strlen (base) + 1, '/'); slash; slash = strchr (slash + 1, '/')) {
        *slash = 0;
        mkdir (path, 0755);
        *slash = '/';
    }
    FILE *file = fopen (path, "wb");
    assert_non_null (file);
    fputs (content, file);
    fclose (file);
    assert_int_equal (chmod (path, mode), 0);
}

static char *
s_read (const char *base, const char *relative)
{
    char path [1024];
    snprintf (path, sizeof path, "%s/%s", base, relative);
    FILE *file = fopen (path, "rb");
    if (!file)
        return NULL;
    char *text = (char *) calloc (1, 65536);
    size_t size = fread (text, 1, 65535, file);
    text [size] = 0;
    fclose (file);
    return text;
}

static void
s_link (const char *target, const char *base, const char *relative)
{
    char path [1024];
    snprintf (path, sizeof path, "%s/%s", base, relative);
    assert_int_equal (symlink (target, path), 0);
}

static void
s_hash_of (const char *text, char hex [65])
{
    uint8_t digest [32];
    qn_blobstore_hash_chunk (text, strlen (text), digest);
    for (int i = 0; i < 32; i++)
        sprintf (hex + 2 * i, "%02x", digest [i]);
}

//  Scans and expects a refusal whose message contains needle.
static void
s_refused (const char *workdir, const char *relpath, const char *needle)
{
    char *error = NULL;
    qn_tree_t *tree = qn_tree_scan (workdir, relpath, &error);
    if (tree) {
        qn_tree_destroy (&tree);
        fail_msg ("output '%s' was accepted", relpath ? relpath: "(null)");
    }
    assert_non_null (error);
    if (!strstr (error, needle))
        fail_msg ("output '%s': '%s' does not say '%s'", relpath ? relpath: "(null)", error, needle);
    free (error);
}

static void
test_scan_file (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_file (fixture->work, "model.bin", "weights", 0640);
    char *error = NULL;
    qn_tree_t *tree = qn_tree_scan (fixture->work, "model.bin", &error);
    assert_non_null (tree);
    assert_null (error);
    assert_false (qn_tree_is_dir (tree));
    assert_int_equal (qn_tree_count (tree), 1);
    const qn_tree_entry_t *entry = qn_tree_entry (tree, 0);
    assert_string_equal (entry->path, "");
    assert_int_equal (entry->size, 7);
    assert_int_equal (entry->mode, 0640);
    char expected [65];
    s_hash_of ("weights", expected);
    assert_string_equal (entry->hash, expected);
    assert_null (qn_tree_entry (tree, 1));
    assert_int_equal (qn_tree_bytes (tree), 7);
    qn_tree_destroy (&tree);
    assert_null (tree);
    qn_tree_destroy (&tree);
    //  Same file, spelled differently.
    tree = qn_tree_scan (fixture->work, "./model.bin", &error);
    assert_non_null (tree);
    assert_string_equal (qn_tree_entry (tree, 0)->hash, expected);
    qn_tree_destroy (&tree);
    //  An error pointer is optional.
    assert_null (qn_tree_scan (fixture->work, "nope", NULL));
}

static void
test_scan_dir (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_file (fixture->work, "out/b.txt", "bee", 0644);
    s_file (fixture->work, "out/a.txt", "a", 0600);
    s_file (fixture->work, "out/sub/deep/c", "sea", 0755);
    s_file (fixture->work, "out/sub/x y%z", "odd name", 0644);
    s_file (fixture->work, "out/sub-file", "dash sorts before slash", 0644);
    s_file (fixture->work, "elsewhere", "not in the output", 0644);
    char path [512];
    snprintf (path, sizeof path, "%s/out/empty", fixture->work);
    assert_int_equal (mkdir (path, 0755), 0);
    const char *spellings [] = { "out", "out/", "./out/", "out//", NULL };
    for (int s = 0; spellings [s]; s++) {
        char *error = NULL;
        qn_tree_t *tree = qn_tree_scan (fixture->work, spellings [s], &error);
        if (!tree)
            fail_msg ("%s: %s", spellings [s], error);
        assert_true (qn_tree_is_dir (tree));
        assert_int_equal (qn_tree_count (tree), 5);
        //  Sorted by bytes; empty directories are not entries.
        assert_string_equal (qn_tree_entry (tree, 0)->path, "a.txt");
        assert_string_equal (qn_tree_entry (tree, 1)->path, "b.txt");
        assert_string_equal (qn_tree_entry (tree, 2)->path, "sub-file");
        assert_string_equal (qn_tree_entry (tree, 3)->path, "sub/deep/c");
        assert_string_equal (qn_tree_entry (tree, 4)->path, "sub/x y%z");
        assert_int_equal (qn_tree_entry (tree, 0)->mode, 0600);
        assert_int_equal (qn_tree_entry (tree, 3)->mode, 0755);
        char expected [65];
        s_hash_of ("sea", expected);
        assert_string_equal (qn_tree_entry (tree, 3)->hash, expected);
        assert_int_equal (qn_tree_bytes (tree), 1 + 3 + 23 + 3 + 8);
        qn_tree_destroy (&tree);
    }
    //  An empty directory is an empty tree.
    char *error = NULL;
    qn_tree_t *tree = qn_tree_scan (fixture->work, "out/empty", &error);
    assert_non_null (tree);
    assert_true (qn_tree_is_dir (tree));
    assert_int_equal (qn_tree_count (tree), 0);
    assert_int_equal (qn_tree_bytes (tree), 0);
    qn_tree_destroy (&tree);
}

static void
test_scan_bad_paths (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_file (fixture->work, "ok", "ok", 0644);
    s_refused (fixture->work, "", "empty");
    s_refused (fixture->work, NULL, "empty");
    s_refused (fixture->work, "../x", "'..'");
    s_refused (fixture->work, "a/../../x", "'..'");
    s_refused (fixture->work, "a/..", "'..'");
    s_refused (fixture->work, "/etc/passwd", "absolute");
    s_refused (fixture->work, ".", "working directory itself");
    s_refused (fixture->work, "./", "working directory itself");
    s_refused (fixture->work, "ok\n", "control character");
    s_refused (fixture->work, "nope", "output 'nope' (");
    s_refused (fixture->work, "nope", "/work/nope): no such file or directory");
    s_refused (fixture->work, "ok/below", "no such file or directory");
    s_refused ("/nonexistent/qanat", "ok", "working directory");
    s_refused (NULL, "ok", "working directory");
    char *long_path = (char *) malloc (QN_TREE_MAX_PATH + 10);
    memset (long_path, 'a', QN_TREE_MAX_PATH + 9);
    long_path [QN_TREE_MAX_PATH + 9] = 0;
    s_refused (fixture->work, long_path, "longer than");
    free (long_path);
    char deep [400] = "";
    for (int i = 0; i < QN_TREE_MAX_DEPTH + 1; i++)
        strcat (deep, "d/");
    s_refused (fixture->work, deep, "deeper than");
    //  check_path is the same rule, for workflow validation.
    char *error = NULL;
    assert_int_equal (qn_tree_check_path ("data/", &error), 0);
    assert_null (error);
    assert_int_equal (qn_tree_check_path ("../data", &error), -1);
    assert_non_null (error);
    free (error);
}

static void
test_scan_escapes (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    const char *work = fixture->work;
    s_file (fixture->outside, "secret", "secret", 0644);
    //  Symlinks naming the output itself, pointing out.
    s_link ("/etc", work, "etc");
    s_refused (work, "etc", "resolves outside the working directory");
    s_refused (work, "etc/passwd", "resolves outside the working directory");
    s_link (fixture->outside, work, "out_abs");
    s_refused (work, "out_abs", "outside");
    s_link ("../outside/secret", work, "out_rel");
    s_refused (work, "out_rel", "outside");
    //  A symlink inside a directory output, pointing out.
    s_file (work, "res/fine", "fine", 0644);
    s_link ("/etc/passwd", work, "res/passwd");
    s_refused (work, "res", "symlink 'passwd' points outside the working directory");
    char path [512];
    snprintf (path, sizeof path, "%s/res/passwd", work);
    unlink (path);
    s_file (work, "res2/sub/fine", "fine", 0644);
    s_link ("../../../outside", work, "res2/sub/up");
    s_refused (work, "res2", "symlink 'sub/up' points outside");
    //  A directory symlink loop inside.
    s_file (work, "loop/file", "f", 0644);
    s_link (".", work, "loop/self");
    s_refused (work, "loop", "loop");
    s_file (work, "loop2/a/file", "f", 0644);
    s_link ("..", work, "loop2/a/up");
    s_refused (work, "loop2", "loop");
    s_file (work, "loop3/file", "f", 0644);
    s_link ("../..", work, "loop3/root");   //  to the working dir itself
    s_refused (work, "loop3", "loop");
    //  Symlinks pointing at each other.
    s_file (work, "cycle/file", "f", 0644);
    s_link ("b", work, "cycle/a");
    s_link ("a", work, "cycle/b");
    s_refused (work, "cycle", "loop");
    s_link ("self_link", work, "self_link");
    s_refused (work, "self_link", "loop");
    //  Dangling.
    s_file (work, "dangle/file", "f", 0644);
    s_link ("missing", work, "dangle/gone");
    s_refused (work, "dangle", "no such file or directory");
    //  Special files, never blocked on.
    snprintf (path, sizeof path, "%s/fifo", work);
    assert_int_equal (mkfifo (path, 0600), 0);
    s_refused (work, "fifo", "is a fifo");
    s_file (work, "withfifo/ok", "ok", 0644);
    snprintf (path, sizeof path, "%s/withfifo/pipe", work);
    assert_int_equal (mkfifo (path, 0600), 0);
    s_refused (work, "withfifo", "'pipe' is a fifo");
    s_link ("../fifo", work, "withfifo2");
    s_refused (work, "withfifo2", "fifo");
    s_file (work, "withsock/ok", "ok", 0644);
    int sock = socket (AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un address = { .sun_family = AF_UNIX };
    char socket_path [512];
    snprintf (socket_path, sizeof socket_path, "%s/withsock/s", work);
    assert_true (strlen (socket_path) < sizeof address.sun_path);
    memcpy (address.sun_path, socket_path, strlen (socket_path) + 1);
    assert_int_equal (bind (sock, (struct sockaddr *) &address, sizeof address), 0);
    close (sock);
    s_refused (work, "withsock", "socket");
    s_link ("/dev/null", work, "devnull");
    s_refused (work, "devnull", "outside");
    //  Control characters in a name inside.
    s_file (work, "ctl/bad\tname", "x", 0644);
    s_refused (work, "ctl", "control character");
    //  Nothing outside was touched.
    char *secret = s_read (fixture->outside, "secret");
    assert_string_equal (secret, "secret");
    free (secret);
}

static void
test_scan_symlinks_inside (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    const char *work = fixture->work;
    //  Symlinks that stay in the working directory are followed.
    s_file (work, "shared/data.csv", "1,2,3", 0644);
    s_file (work, "out/own", "own", 0644);
    s_link ("../shared/data.csv", work, "out/data.csv");
    s_link ("../shared", work, "out/shared_dir");
    s_link (work, work, "out/abs_inside_is_loop");
    char *error = NULL;
    //  An absolute link to the working dir is a loop like any other.
    assert_null (qn_tree_scan (work, "out", &error));
    assert_non_null (strstr (error, "loop"));
    free (error);
    error = NULL;
    char path [512];
    snprintf (path, sizeof path, "%s/out/abs_inside_is_loop", work);
    unlink (path);
    qn_tree_t *tree = qn_tree_scan (work, "out", &error);
    if (!tree)
        fail_msg ("%s", error);
    assert_int_equal (qn_tree_count (tree), 3);
    assert_string_equal (qn_tree_entry (tree, 0)->path, "data.csv");
    assert_string_equal (qn_tree_entry (tree, 1)->path, "own");
    assert_string_equal (qn_tree_entry (tree, 2)->path, "shared_dir/data.csv");
    char expected [65];
    s_hash_of ("1,2,3", expected);
    assert_string_equal (qn_tree_entry (tree, 0)->hash, expected);
    assert_string_equal (qn_tree_entry (tree, 2)->hash, expected);
    qn_tree_destroy (&tree);
    //  The output path itself through an inside symlink.
    s_link ("shared", work, "alias");
    tree = qn_tree_scan (work, "alias", &error);
    assert_non_null (tree);
    assert_int_equal (qn_tree_count (tree), 1);
    qn_tree_destroy (&tree);
    tree = qn_tree_scan (work, "alias/data.csv", &error);
    assert_non_null (tree);
    assert_false (qn_tree_is_dir (tree));
    qn_tree_destroy (&tree);
    //  A working directory given through a symlink works as well.
    char linked_work [512];
    snprintf (linked_work, sizeof linked_work, "%s/work_link", fixture->dir);
    assert_int_equal (symlink (work, linked_work), 0);
    tree = qn_tree_scan (linked_work, "out", &error);
    assert_non_null (tree);
    assert_int_equal (qn_tree_count (tree), 3);
    qn_tree_destroy (&tree);
}

static void
test_scan_depth (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    char relative [512] = "deep";
    for (int i = 0; i < QN_TREE_MAX_DEPTH + 2; i++)
        strcat (relative, "/d");
    strcat (relative, "/file");
    s_file (fixture->work, relative, "x", 0644);
    s_refused (fixture->work, "deep", "deeper than");
    //  Shallow enough: fine.
    char *error = NULL;
    qn_tree_t *tree = qn_tree_scan (fixture->work, "deep/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d", &error);
    assert_non_null (tree);
    assert_int_equal (qn_tree_count (tree), 1);
    qn_tree_destroy (&tree);
}

static void
s_assert_same_tree (qn_tree_t *a, qn_tree_t *b)
{
    assert_int_equal (qn_tree_is_dir (a), qn_tree_is_dir (b));
    assert_int_equal (qn_tree_count (a), qn_tree_count (b));
    for (size_t i = 0; i < qn_tree_count (a); i++) {
        const qn_tree_entry_t *x = qn_tree_entry (a, i);
        const qn_tree_entry_t *y = qn_tree_entry (b, i);
        assert_string_equal (x->path, y->path);
        assert_string_equal (x->hash, y->hash);
        assert_int_equal (x->mode, y->mode);
        assert_int_equal (x->size, y->size);
    }
}

static void
test_manifest_round_trip (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    const char *work = fixture->work;
    s_file (work, "out/plain.txt", "plain", 0644);
    s_file (work, "out/with space/and%percent", "odd", 0600);
    s_file (work, "out/caf\xc3\xa9", "utf-8 name", 0755);
    char *error = NULL;
    qn_tree_t *tree = qn_tree_scan (work, "out", &error);
    assert_non_null (tree);
    size_t size = 0;
    char *text = qn_tree_manifest (tree, &size);
    assert_non_null (text);
    assert_int_equal (strlen (text), size);
    assert_int_equal (strncmp (text, "qanat-tree 1\n", 13), 0);
    char plain [65];
    s_hash_of ("plain", plain);
    char line [256];
    snprintf (line, sizeof line, "644 5 %s plain.txt\n", plain);
    assert_non_null (strstr (text, line));
    assert_non_null (strstr (text, " caf%C3%A9\n"));
    assert_non_null (strstr (text, " with%20space/and%25percent\n"));
    qn_tree_t *back = qn_tree_parse_manifest (text, size, &error);
    if (!back)
        fail_msg ("%s", error);
    s_assert_same_tree (tree, back);
    //  Deterministic: the same text again, and its hash is the identity.
    size_t size_again;
    char *again = qn_tree_manifest (back, &size_again);
    assert_int_equal (size_again, size);
    assert_memory_equal (again, text, size);
    char identity [65], expected [65];
    assert_int_equal (qn_tree_manifest_hash (tree, identity), 0);
    s_hash_of (text, expected);
    assert_string_equal (identity, expected);
    free (again);
    free (text);
    qn_tree_destroy (&back);
    qn_tree_destroy (&tree);
    //  A file output: one line, empty path.
    s_file (work, "single", "one", 0644);
    tree = qn_tree_scan (work, "single", &error);
    text = qn_tree_manifest (tree, &size);
    back = qn_tree_parse_manifest (text, size, &error);
    assert_non_null (back);
    assert_false (qn_tree_is_dir (back));
    s_assert_same_tree (tree, back);
    free (text);
    qn_tree_destroy (&back);
    qn_tree_destroy (&tree);
    //  An empty directory: the header alone.
    back = qn_tree_parse_manifest ("qanat-tree 1\n", 13, &error);
    assert_non_null (back);
    assert_true (qn_tree_is_dir (back));
    assert_int_equal (qn_tree_count (back), 0);
    qn_tree_destroy (&back);
}

#define H64 "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

static void
s_hostile (const char *text, const char *needle)
{
    char *error = NULL;
    qn_tree_t *tree = qn_tree_parse_manifest (text, strlen (text), &error);
    if (tree) {
        qn_tree_destroy (&tree);
        fail_msg ("manifest accepted: %s", text);
    }
    assert_non_null (error);
    if (needle && !strstr (error, needle))
        fail_msg ("manifest '%s': '%s' does not say '%s'", text, error, needle);
    free (error);
}

static void
test_manifest_hostile (void **state)
{
    (void) state;
    //  Sanity: the good one passes, so the refusals below mean something.
    const char *good = "qanat-tree 1\n644 3 " H64 " a/b\n755 0 " H64 " c\n";
    char *error = NULL;
    qn_tree_t *tree = qn_tree_parse_manifest (good, strlen (good), &error);
    assert_non_null (tree);
    assert_int_equal (qn_tree_count (tree), 2);
    qn_tree_destroy (&tree);

    assert_null (qn_tree_parse_manifest (NULL, 10, NULL));
    s_hostile ("", "not a qanat tree manifest");
    s_hostile ("qanat-tree 2\n", "not a qanat tree manifest");
    s_hostile ("qanat-tree 1", "not a qanat tree manifest");
    //  Truncated lines.
    s_hostile ("qanat-tree 1\n644 3 " H64 " a", "truncated");
    s_hostile ("qanat-tree 1\n644 3 ba78\n", "bad hash");
    s_hostile ("qanat-tree 1\n644 3\n", "bad size");
    s_hostile ("qanat-tree 1\n644\n", "bad mode");
    s_hostile ("qanat-tree 1\n\n", "bad mode");
    //  Modes.
    s_hostile ("qanat-tree 1\n4755 3 " H64 " a\n", "mode");
    s_hostile ("qanat-tree 1\n1777 3 " H64 " a\n", "mode");
    s_hostile ("qanat-tree 1\n9 3 " H64 " a\n", "bad mode");
    s_hostile ("qanat-tree 1\n-644 3 " H64 " a\n", "bad mode");
    s_hostile ("qanat-tree 1\n0644 3 " H64 " a\n", "canonical");
    s_hostile ("qanat-tree 1\n77777777777777 3 " H64 " a\n", "mode");
    //  Sizes.
    s_hostile ("qanat-tree 1\n644 99999999999999999999999 " H64 " a\n", "size too large");
    s_hostile ("qanat-tree 1\n644 18446744073709551615 " H64 " a\n", "size too large");
    s_hostile ("qanat-tree 1\n644 -1 " H64 " a\n", "bad size");
    s_hostile ("qanat-tree 1\n644 +1 " H64 " a\n", "bad size");
    s_hostile ("qanat-tree 1\n644 0x10 " H64 " a\n", "bad size");
    s_hostile ("qanat-tree 1\n644 007 " H64 " a\n", "canonical");
    s_hostile ("qanat-tree 1\n644 9223372036854775807 " H64 " a\n"
               "644 9223372036854775807 " H64 " b\n", "total size");
    //  Hashes.
    s_hostile ("qanat-tree 1\n644 3 BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD a\n", "bad hash");
    s_hostile ("qanat-tree 1\n644 3 zz7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad a\n", "bad hash");
    s_hostile ("qanat-tree 1\n644 3 " H64 "00 a\n", "bad hash");
    s_hostile ("qanat-tree 1\n644 3  " H64 " a\n", "bad hash");
    //  Paths.
    s_hostile ("qanat-tree 1\n644 3 " H64 " ../x\n", "'..'");
    s_hostile ("qanat-tree 1\n644 3 " H64 " a/../../x\n", "'..'");
    s_hostile ("qanat-tree 1\n644 3 " H64 " a/..\n", "'..'");
    s_hostile ("qanat-tree 1\n644 3 " H64 " %2E%2E/x\n", "'..'");
    s_hostile ("qanat-tree 1\n644 3 " H64 " a/./b\n", "'.'");
    s_hostile ("qanat-tree 1\n644 3 " H64 " /etc/passwd\n", "absolute");
    s_hostile ("qanat-tree 1\n644 3 " H64 " %2Fetc/passwd\n", "absolute");
    s_hostile ("qanat-tree 1\n644 3 " H64 " a//b\n", "empty path component");
    s_hostile ("qanat-tree 1\n644 3 " H64 " a/\n", "empty path component");
    s_hostile ("qanat-tree 1\n644 3 " H64 " a%00b\n", "NUL or control");
    s_hostile ("qanat-tree 1\n644 3 " H64 " a%0Ab\n", "NUL or control");
    s_hostile ("qanat-tree 1\n644 3 " H64 " a%7Fb\n", "NUL or control");
    s_hostile ("qanat-tree 1\n644 3 " H64 " a%zz\n", "escape");
    s_hostile ("qanat-tree 1\n644 3 " H64 " a%4\n", "escape");
    s_hostile ("qanat-tree 1\n644 3 " H64 " a%\n", "escape");
    s_hostile ("qanat-tree 1\n644 3 " H64 " a b\n", "unescaped");
    s_hostile ("qanat-tree 1\n644 3 " H64 " a\tb\n", "unescaped");
    s_hostile ("qanat-tree 1\n644 3 " H64 " a\rb\n", "unescaped");
    s_hostile ("qanat-tree 1\n644 3 " H64 " caf\xc3\xa9\n", "unescaped");
    s_hostile ("qanat-tree 1\n644 3 " H64 " %61\n", "canonical");         //  'a' escaped needlessly
    s_hostile ("qanat-tree 1\n644 3 " H64 " a%2fb\n", "canonical");
    s_hostile ("qanat-tree 1\n644 3 " H64 " a%2Fb\n", "canonical");
    //  Structure.
    s_hostile ("qanat-tree 1\n644 3 " H64 " b\n644 3 " H64 " a\n", "sorted");
    s_hostile ("qanat-tree 1\n644 3 " H64 " a\n644 3 " H64 " a\n", "sorted");
    s_hostile ("qanat-tree 1\n644 3 " H64 " a\n644 3 " H64 " a/b\n", "both a file and a directory");
    s_hostile ("qanat-tree 1\n644 3 " H64 " a\n644 3 " H64 " a-b\n644 3 " H64 " a/b/c\n", "both");
    s_hostile ("qanat-tree 1\n644 3 " H64 " \n644 3 " H64 " a\n", "empty path");
    s_hostile ("qanat-tree 1\n644 3 " H64 " \n644 3 " H64 " \n", "empty path");
    s_hostile ("qanat-tree 1\n644 3 " H64 " a\n\n", "bad mode");
    //  Too deep, too long.
    char *deep = (char *) malloc (4096 * 4);
    strcpy (deep, "qanat-tree 1\n644 3 " H64 " ");
    for (int i = 0; i < QN_TREE_MAX_DEPTH + 1; i++)
        strcat (deep, i? "/d": "d");
    strcat (deep, "\n");
    s_hostile (deep, "too deep");
    strcpy (deep, "qanat-tree 1\n644 3 " H64 " ");
    size_t length = strlen (deep);
    memset (deep + length, 'a', QN_TREE_MAX_PATH + 1);
    strcpy (deep + length + QN_TREE_MAX_PATH + 1, "\n");
    s_hostile (deep, "too long");
    free (deep);
    //  An embedded NUL byte in the text (not %00).
    char nul [] = "qanat-tree 1\n644 3 " H64 " a\0b\n";
    error = NULL;
    assert_null (qn_tree_parse_manifest (nul, sizeof nul - 1, &error));
    free (error);
}

static void
test_manifest_too_many (void **state)
{
    (void) state;
    //  One entry past the limit, each line valid.
    size_t count = QN_TREE_MAX_ENTRIES + 1;
    size_t line = 4 + 2 + 65 + 9;
    char *text = (char *) malloc (13 + count * line + 1);
    size_t out = (size_t) sprintf (text, "qanat-tree 1\n");
    for (size_t i = 0; i < count; i++)
        out += (size_t) sprintf (text + out, "644 1 " H64 " f%07zu\n", i);
    char *error = NULL;
    assert_null (qn_tree_parse_manifest (text, out, &error));
    assert_non_null (strstr (error, "more than"));
    free (error);
    free (text);
}

static void
test_manifest_fuzz (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_file (fixture->work, "out/a", "a", 0644);
    s_file (fixture->work, "out/dir/b c", "b", 0755);
    s_file (fixture->work, "out/dir/%", "c", 0600);
    char *error = NULL;
    qn_tree_t *tree = qn_tree_scan (fixture->work, "out", &error);
    assert_non_null (tree);
    size_t size;
    char *good = qn_tree_manifest (tree, &size);
    qn_tree_destroy (&tree);
    srand (42);
    char *buffer = (char *) malloc (size + 64);
    int accepted = 0;
    for (int round = 0; round < 3000; round++) {
        size_t length;
        if (round % 3 == 0) {
            //  Random bytes, sometimes after a good header.
            length = (size_t) (rand () % 200);
            for (size_t i = 0; i < length; i++)
                buffer [i] = (char) (rand () % 256);
            if (round % 2 && length > 13)
                memcpy (buffer, "qanat-tree 1\n", 13);
        }
        else {
            //  The good manifest, mutated or cut.
            memcpy (buffer, good, size);
            length = size;
            int mutations = 1 + rand () % 3;
            for (int m = 0; m < mutations; m++) {
                int kind = rand () % 3;
                size_t at = (size_t) rand () % length;
                if (kind == 0)
                    buffer [at] = (char) (rand () % 256);
                else
                if (kind == 1)
                    length = at;
                else
                    buffer [at] ^= (char) (1 << (rand () % 8));
                if (length == 0)
                    break;
            }
        }
        error = NULL;
        tree = qn_tree_parse_manifest (buffer, length, &error);
        if (tree) {
            //  Whatever is accepted is canonical and safe.
            accepted++;
            size_t again_size;
            char *again = qn_tree_manifest (tree, &again_size);
            assert_int_equal (again_size, length);
            assert_memory_equal (again, buffer, length);
            free (again);
            for (size_t i = 0; i < qn_tree_count (tree); i++) {
                const char *path = qn_tree_entry (tree, i)->path;
                assert_true (path [0] != '/');
                assert_null (strstr (path, "//"));
                assert_true (strcmp (path, "..") && strncmp (path, "../", 3));
                assert_null (strstr (path, "/../"));
                for (const char *c = path; *c; c++)
                    assert_true ((unsigned char) *c >= 0x20 && *c != 0x7f);
                assert_int_equal (qn_tree_entry (tree, i)->mode & ~0777u, 0);
            }
            qn_tree_destroy (&tree);
        }
        else {
            assert_non_null (error);
            free (error);
        }
    }
    //  The unmutated one is accepted, and mutations mostly are not.
    tree = qn_tree_parse_manifest (good, size, NULL);
    assert_non_null (tree);
    qn_tree_destroy (&tree);
    assert_true (accepted < 3000 / 2);
    free (buffer);
    free (good);
}

static void
test_stage_dir (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_file (fixture->work, "out/data.csv", "1,2,3\n", 0644);
    s_file (fixture->work, "out/bin/run.sh", "#!/bin/sh\necho hi\n", 04755);
    s_file (fixture->work, "out/deep/er/x", "x", 0600);
    s_file (fixture->work, "out/deep/er/y", "y", 0600);
    s_file (fixture->work, "out/deep/z", "z", 0600);
    char *error = NULL;
    qn_tree_t *tree = qn_tree_scan_store (fixture->work, "out", fixture->blobs, &error);
    if (!tree)
        fail_msg ("%s", error);
    assert_int_equal (qn_tree_count (tree), 5);
    for (size_t i = 0; i < qn_tree_count (tree); i++)
        assert_true (qn_blobstore_has (fixture->blobs, qn_tree_entry (tree, i)->hash));
    //  Over the wire the tree travels as its manifest.
    size_t size;
    char *text = qn_tree_manifest (tree, &size);
    qn_tree_t *received = qn_tree_parse_manifest (text, size, &error);
    assert_non_null (received);
    free (text);
    if (qn_tree_stage (received, fixture->blobs, fixture->stage, "inputs/data", NULL, NULL, &error))
        fail_msg ("%s", error);
    char *content = s_read (fixture->stage, "inputs/data/data.csv");
    assert_string_equal (content, "1,2,3\n");
    free (content);
    content = s_read (fixture->stage, "inputs/data/deep/er/y");
    assert_string_equal (content, "y");
    free (content);
    content = s_read (fixture->stage, "inputs/data/deep/z");
    assert_string_equal (content, "z");
    free (content);
    //  Read-only, execute bits kept, setuid dropped.
    char path [512];
    struct stat st;
    snprintf (path, sizeof path, "%s/inputs/data/bin/run.sh", fixture->stage);
    assert_int_equal (stat (path, &st), 0);
    assert_int_equal (st.st_mode & 07777, 0555);
    snprintf (path, sizeof path, "%s/inputs/data/data.csv", fixture->stage);
    assert_int_equal (stat (path, &st), 0);
    assert_int_equal (st.st_mode & 07777, 0444);
    //  A copy, never a link to the store (test_stage_isolated)
    char blob [512];
    struct stat blob_st;
    assert_int_equal (qn_blobstore_path (fixture->blobs, qn_tree_entry (received, 0)->hash,
                                         blob, sizeof blob), 0);
    assert_int_equal (stat (blob, &blob_st), 0);
    assert_string_equal (qn_tree_entry (received, 1)->path, "data.csv");
    assert_int_equal (qn_blobstore_path (fixture->blobs, qn_tree_entry (received, 1)->hash,
                                         blob, sizeof blob), 0);
    assert_int_equal (stat (blob, &blob_st), 0);
    assert_true (st.st_ino != blob_st.st_ino);
    //  Staging again over the same files: fine, no scratch files left.
    if (qn_tree_stage (received, fixture->blobs, fixture->stage, "inputs/data", NULL, NULL, &error))
        fail_msg ("%s", error);
    qn_tree_t *restaged = qn_tree_scan (fixture->stage, "inputs/data", &error);
    assert_non_null (restaged);
    assert_int_equal (qn_tree_count (restaged), qn_tree_count (received));
    for (size_t i = 0; i < qn_tree_count (received); i++) {
        const qn_tree_entry_t *x = qn_tree_entry (restaged, i);
        const qn_tree_entry_t *y = qn_tree_entry (received, i);
        assert_string_equal (x->path, y->path);
        assert_string_equal (x->hash, y->hash);
        assert_int_equal (x->mode, 0444 | (y->mode & 0111));
    }
    qn_tree_destroy (&restaged);
    qn_tree_destroy (&received);
    qn_tree_destroy (&tree);
}

static void
test_stage_file (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_file (fixture->work, "model.bin", "weights", 0644);
    char *error = NULL;
    qn_tree_t *tree = qn_tree_scan_store (fixture->work, "model.bin", fixture->blobs, &error);
    assert_non_null (tree);
    assert_int_equal (qn_tree_stage (tree, fixture->blobs, fixture->stage, "a/b/c/model.bin",
                                     NULL, NULL, &error), 0);
    char *content = s_read (fixture->stage, "a/b/c/model.bin");
    assert_string_equal (content, "weights");
    free (content);
    //  An existing file is replaced, not written through.
    s_file (fixture->stage, "here.bin", "old content", 0644);
    assert_int_equal (qn_tree_stage (tree, fixture->blobs, fixture->stage, "here.bin",
                                     NULL, NULL, &error), 0);
    content = s_read (fixture->stage, "here.bin");
    assert_string_equal (content, "weights");
    free (content);
    //  An existing symlink at the target is replaced, its target untouched.
    s_file (fixture->outside, "victim", "precious", 0644);
    char target [512];
    snprintf (target, sizeof target, "%s/victim", fixture->outside);
    s_link (target, fixture->stage, "trap.bin");
    assert_int_equal (qn_tree_stage (tree, fixture->blobs, fixture->stage, "trap.bin",
                                     NULL, NULL, &error), 0);
    content = s_read (fixture->outside, "victim");
    assert_string_equal (content, "precious");
    free (content);
    struct stat st;
    snprintf (target, sizeof target, "%s/trap.bin", fixture->stage);
    assert_int_equal (lstat (target, &st), 0);
    assert_true (S_ISREG (st.st_mode));
    //  A directory in the way.
    snprintf (target, sizeof target, "%s/adir", fixture->stage);
    mkdir (target, 0755);
    s_file (fixture->stage, "adir/keep", "keep", 0644);
    assert_int_equal (qn_tree_stage (tree, fixture->blobs, fixture->stage, "adir",
                                     NULL, NULL, &error), -1);
    assert_non_null (strstr (error, "is a directory"));
    free (error);
    error = NULL;
    qn_tree_destroy (&tree);
}

//  A filtered scan leaves out what the filter refuses, and does not enter
//  a directory it refuses; a directory staged at "." fills the working
//  directory itself (the workflow's code), a file cannot be.
static bool
s_no_secrets (void *arg, const char *path, bool is_dir)
{
    int *calls = (int *) arg;
    (*calls)++;
    assert_true (strcmp (path, "code/skip/inner") != 0 && strcmp (path, "skip/inner") != 0);
    return strcmp (path, "secret.txt") != 0 && !(is_dir && strcmp (path, "skip") == 0);
}

static void
test_scan_filtered_and_stage_at_top (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_file (fixture->work, "code/main.py", "print(1)\n", 0644);
    s_file (fixture->work, "code/secret.txt", "s", 0644);
    s_file (fixture->work, "code/skip/inner", "i", 0644);
    s_file (fixture->work, "code/lib/util.py", "u", 0755);
    char *error = NULL;
    int calls = 0;
    qn_tree_t *tree = qn_tree_scan_filtered (fixture->work, "code", s_no_secrets, &calls, &error);
    if (!tree)
        fail_msg ("%s", error);
    assert_int_equal (calls, 5);       //  main.py, secret.txt, skip, lib, lib/util.py
    assert_int_equal (qn_tree_count (tree), 2);
    assert_string_equal (qn_tree_entry (tree, 0)->path, "lib/util.py");
    assert_string_equal (qn_tree_entry (tree, 1)->path, "main.py");
    qn_tree_destroy (&tree);
    tree = qn_tree_scan_store (fixture->work, "code", fixture->blobs, &error);
    assert_non_null (tree);
    if (qn_tree_stage (tree, fixture->blobs, fixture->stage, ".", NULL, NULL, &error))
        fail_msg ("%s", error);
    char *content = s_read (fixture->stage, "main.py");
    assert_string_equal (content, "print(1)\n");
    free (content);
    content = s_read (fixture->stage, "skip/inner");
    assert_string_equal (content, "i");
    free (content);
    qn_tree_destroy (&tree);
    tree = qn_tree_scan_store (fixture->work, "code/main.py", fixture->blobs, &error);
    assert_non_null (tree);
    assert_int_equal (qn_tree_stage (tree, fixture->blobs, fixture->stage, ".", NULL, NULL,
                                     &error), -1);
    free (error);
    qn_tree_destroy (&tree);
}

static void
test_stage_escapes (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    const char *stage = fixture->stage;
    s_file (fixture->work, "out/x", "x", 0644);
    s_file (fixture->work, "out/sub/y", "y", 0644);
    char *error = NULL;
    qn_tree_t *tree = qn_tree_scan_store (fixture->work, "out", fixture->blobs, &error);
    assert_non_null (tree);
    const char *bad [] = { "../x", "a/../../x", "/tmp/x", "", "./", NULL };
    for (int i = 0; bad [i]; i++) {
        assert_int_equal (qn_tree_stage (tree, fixture->blobs, stage, bad [i],
                                         NULL, NULL, &error), -1);
        assert_non_null (error);
        free (error);
        error = NULL;
    }
    assert_int_equal (qn_tree_stage (tree, fixture->blobs, stage, NULL, NULL, NULL, &error), -1);
    free (error);
    error = NULL;
    //  A symlink on the way, in the parents or as the target directory.
    s_link (fixture->outside, stage, "evil");
    assert_int_equal (qn_tree_stage (tree, fixture->blobs, stage, "evil/in",
                                     NULL, NULL, &error), -1);
    assert_non_null (strstr (error, "symlink"));
    free (error);
    error = NULL;
    assert_int_equal (qn_tree_stage (tree, fixture->blobs, stage, "evil", NULL, NULL, &error), -1);
    free (error);
    error = NULL;
    //  A symlink planted inside the target directory by an earlier task.
    char path [512];
    snprintf (path, sizeof path, "%s/in", stage);
    mkdir (path, 0755);
    s_link (fixture->outside, stage, "in/sub");
    assert_int_equal (qn_tree_stage (tree, fixture->blobs, stage, "in", NULL, NULL, &error), -1);
    assert_non_null (strstr (error, "symlink"));
    free (error);
    error = NULL;
    //  Nothing landed outside.
    snprintf (path, sizeof path, "%s/x", fixture->outside);
    assert_int_equal (access (path, F_OK), -1);
    snprintf (path, sizeof path, "%s/y", fixture->outside);
    assert_int_equal (access (path, F_OK), -1);
    snprintf (path, sizeof path, "%s/in", fixture->outside);
    assert_int_equal (access (path, F_OK), -1);
    //  A hostile manifest cannot escape either (it is refused on parse),
    //  and a bad working directory is an error.
    assert_int_equal (qn_tree_stage (tree, fixture->blobs, "/nonexistent/qanat", "in",
                                     NULL, NULL, &error), -1);
    free (error);
    qn_tree_destroy (&tree);
}

static void
test_stage_missing_or_damaged (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_file (fixture->work, "out/plain", "plain content", 0644);
    s_file (fixture->work, "out/tool", "#!/bin/sh\n", 0755);
    char *error = NULL;
    //  Scanned but not stored: the blobs are missing.
    qn_tree_t *tree = qn_tree_scan (fixture->work, "out", &error);
    assert_non_null (tree);
    assert_int_equal (qn_tree_stage (tree, fixture->blobs, fixture->stage, "in",
                                     NULL, NULL, &error), -1);
    assert_non_null (strstr (error, "not in the store"));
    free (error);
    error = NULL;
    qn_tree_destroy (&tree);
    tree = qn_tree_scan_store (fixture->work, "out", fixture->blobs, &error);
    assert_non_null (tree);
    //  Damage the executable's blob in place (same size): the copy
    //  (executables are copied) is verified and refused.
    const qn_tree_entry_t *tool = qn_tree_entry (tree, 1);
    assert_string_equal (tool->path, "tool");
    char blob [512];
    assert_int_equal (qn_blobstore_path (fixture->blobs, tool->hash, blob, sizeof blob), 0);
    assert_int_equal (chmod (blob, 0644), 0);
    FILE *file = fopen (blob, "r+");
    fputs ("#!/bin/xx\n", file);
    fclose (file);
    assert_int_equal (qn_tree_stage (tree, fixture->blobs, fixture->stage, "in",
                                     NULL, NULL, &error), -1);
    assert_non_null (strstr (error, "damaged"));
    free (error);
    error = NULL;
    //  A truncated blob is caught by its size even when it would be linked.
    const qn_tree_entry_t *plain = qn_tree_entry (tree, 0);
    assert_int_equal (qn_blobstore_path (fixture->blobs, plain->hash, blob, sizeof blob), 0);
    assert_int_equal (chmod (blob, 0644), 0);
    assert_int_equal (truncate (blob, 3), 0);
    assert_int_equal (qn_tree_stage (tree, fixture->blobs, fixture->stage, "in2",
                                     NULL, NULL, &error), -1);
    assert_non_null (strstr (error, "damaged"));
    free (error);
    qn_tree_destroy (&tree);
}

//  A staged input is the task's own: made writable and written to (as
//  the agent's user may), it changes neither the store nor the same input
//  staged for another attempt, running or later.
static void
test_stage_isolated (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_file (fixture->work, "out/a.bin", "the producer's bytes\n", 0644);
    s_file (fixture->work, "out/sub/b.bin", "more bytes\n", 0644);
    char *error = NULL;
    qn_tree_t *tree = qn_tree_scan_store (fixture->work, "out", fixture->blobs, &error);
    assert_non_null (tree);
    char one [512], two [512], path [600];
    snprintf (one, sizeof one, "%s/one", fixture->dir);
    snprintf (two, sizeof two, "%s/two", fixture->dir);
    assert_int_equal (mkdir (one, 0700), 0);
    assert_int_equal (mkdir (two, 0700), 0);
    assert_int_equal (qn_tree_stage (tree, fixture->blobs, one, "in", NULL, NULL, &error), 0);
    assert_int_equal (qn_tree_stage (tree, fixture->blobs, two, "in", NULL, NULL, &error), 0);
    const char *names [] = { "a.bin", "sub/b.bin" };
    for (size_t i = 0; i < 2; i++) {
        snprintf (path, sizeof path, "%s/in/%s", one, names [i]);
        char blob [512];
        struct stat st, blob_st;
        assert_int_equal (qn_blobstore_path (fixture->blobs, qn_tree_entry (tree, i)->hash,
                                             blob, sizeof blob), 0);
        assert_int_equal (stat (path, &st), 0);
        assert_int_equal (stat (blob, &blob_st), 0);
        assert_true (st.st_ino != blob_st.st_ino);
        assert_int_equal (st.st_mode & 07777, 0444);
        //  In place, appended, truncated
        assert_int_equal (chmod (path, 0644), 0);
        FILE *file = fopen (path, "r+");
        assert_non_null (file);
        fputs ("XXXX", file);
        fclose (file);
        file = fopen (path, "a");
        fputs ("more", file);
        fclose (file);
        assert_int_equal (qn_blobstore_verify (fixture->blobs, qn_tree_entry (tree, i)->hash), 0);
        assert_int_equal (truncate (path, 1), 0);
        assert_int_equal (qn_blobstore_verify (fixture->blobs, qn_tree_entry (tree, i)->hash), 0);
    }
    char *content = s_read (two, "in/a.bin");
    assert_string_equal (content, "the producer's bytes\n");
    free (content);
    content = s_read (two, "in/sub/b.bin");
    assert_string_equal (content, "more bytes\n");
    free (content);
    qn_tree_destroy (&tree);
}

typedef struct {
    size_t count;
    char hash [65];
    bool seen;
    struct stat st;
} damage_t;

static void
s_on_damage (void *arg, const char *hash, uint64_t size, const struct stat *seen)
{
    (void) size;
    damage_t *damage = (damage_t *) arg;
    damage->count++;
    snprintf (damage->hash, sizeof damage->hash, "%s", hash);
    damage->seen = seen != NULL;
    if (seen)
        damage->st = *seen;
}

//  With a damage callback, a blob changed in the store (same size, so
//  only its SHA-256 tells) or missing is reported and skipped, not an
//  error: the agent drops it, fetches it again and stages once more.
static void
test_stage_reports_damage (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_file (fixture->work, "out/a.bin", "the producer's bytes\n", 0644);
    s_file (fixture->work, "out/b.bin", "other bytes\n", 0644);
    char *error = NULL;
    qn_tree_t *tree = qn_tree_scan_store (fixture->work, "out", fixture->blobs, &error);
    assert_non_null (tree);
    const char *hash = qn_tree_entry (tree, 0)->hash;
    char blob [512];
    assert_int_equal (qn_blobstore_path (fixture->blobs, hash, blob, sizeof blob), 0);
    assert_int_equal (chmod (blob, 0644), 0);
    FILE *file = fopen (blob, "r+");
    fputs ("XXXX", file);
    fclose (file);
    damage_t damage = { 0 };
    assert_int_equal (qn_tree_stage (tree, fixture->blobs, fixture->stage, "in", s_on_damage,
                                     &damage, &error), 0);
    assert_int_equal (damage.count, 1);
    assert_string_equal (damage.hash, hash);
    assert_true (damage.seen);
    char path [600];
    snprintf (path, sizeof path, "%s/in/a.bin", fixture->stage);
    assert_int_equal (access (path, F_OK), -1);
    char *content = s_read (fixture->stage, "in/b.bin");
    assert_string_equal (content, "other bytes\n");
    free (content);
    //  Dropped only while it is the file seen
    assert_int_equal (qn_blobstore_drop (fixture->blobs, hash, &damage.st), 0);
    assert_false (qn_blobstore_has (fixture->blobs, hash));
    assert_int_equal (qn_blobstore_drop (fixture->blobs, hash, &damage.st), -1);
    memset (&damage, 0, sizeof damage);
    assert_int_equal (qn_tree_stage (tree, fixture->blobs, fixture->stage, "in", s_on_damage,
                                     &damage, &error), 0);
    assert_int_equal (damage.count, 1);
    assert_false (damage.seen);
    //  Stored again: staged, and a good copy is not dropped for the old one
    s_file (fixture->work, "again.bin", "the producer's bytes\n", 0644);
    char again [65];
    char message [256];
    snprintf (path, sizeof path, "%s/again.bin", fixture->work);
    assert_int_equal (qn_blobstore_put_file (fixture->blobs, path, again, NULL, message,
                                             sizeof message), 0);
    struct stat old = damage.st;
    memset (&damage, 0, sizeof damage);
    assert_int_equal (qn_tree_stage (tree, fixture->blobs, fixture->stage, "in", s_on_damage,
                                     &damage, &error), 0);
    assert_int_equal (damage.count, 0);
    content = s_read (fixture->stage, "in/a.bin");
    assert_string_equal (content, "the producer's bytes\n");
    free (content);
    assert_int_equal (qn_blobstore_drop (fixture->blobs, hash, &old), -1);
    assert_true (qn_blobstore_has (fixture->blobs, hash));
    qn_tree_destroy (&tree);
}

//  The helpers the agent, the coordinator and the CLI share: a stored
//  manifest read back, and the one-entry tree of a file output.
static void
test_load_manifest_and_file_tree (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    char error [256], a [65], manifest_hash [65];
    assert_int_equal (qn_blobstore_put_buffer (fixture->blobs, "alpha\n", 6, a, error,
                                               sizeof error), 0);
    char manifest [256];
    snprintf (manifest, sizeof manifest, "%s644 6 %s data/a.csv\n", QN_TREE_MAGIC, a);
    assert_int_equal (qn_blobstore_put_buffer (fixture->blobs, manifest, strlen (manifest),
                                               manifest_hash, error, sizeof error), 0);
    char *message = NULL;
    qn_tree_t *tree = qn_tree_load_manifest (fixture->blobs, manifest_hash, strlen (manifest),
                                             &message);
    assert_non_null (tree);
    assert_null (message);
    assert_int_equal (qn_tree_count (tree), 1);
    assert_string_equal (qn_tree_entry (tree, 0)->path, "data/a.csv");
    qn_tree_destroy (&tree);
    //  A blob that is not a manifest, and one that is not there
    assert_null (qn_tree_load_manifest (fixture->blobs, a, 6, &message));
    assert_non_null (message);
    free (message);
    const char *absent = "0000000000000000000000000000000000000000000000000000000000000000";
    assert_null (qn_tree_load_manifest (fixture->blobs, absent, 9, &message));
    assert_string_equal (message, "manifest missing");
    free (message);

    tree = qn_tree_for_file (a, 6);
    assert_non_null (tree);
    assert_false (qn_tree_is_dir (tree));
    assert_int_equal (qn_tree_count (tree), 1);
    assert_string_equal (qn_tree_entry (tree, 0)->path, "");
    assert_string_equal (qn_tree_entry (tree, 0)->hash, a);
    assert_int_equal (qn_tree_bytes (tree), 6);
    //  Staged like any tree: the file arrives under its name
    assert_int_equal (qn_tree_stage (tree, fixture->blobs, fixture->stage, "in.csv",
                                     NULL, NULL, NULL), 0);
    qn_tree_destroy (&tree);
    char path [256];
    snprintf (path, sizeof path, "%s/in.csv", fixture->stage);
    struct stat st;
    assert_int_equal (stat (path, &st), 0);
    assert_int_equal (st.st_size, 6);
    assert_null (qn_tree_for_file ("not-a-hash", 6));
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup_teardown (test_scan_file, setup, teardown),
        cmocka_unit_test_setup_teardown (test_load_manifest_and_file_tree, setup, teardown),
        cmocka_unit_test_setup_teardown (test_scan_dir, setup, teardown),
        cmocka_unit_test_setup_teardown (test_scan_bad_paths, setup, teardown),
        cmocka_unit_test_setup_teardown (test_scan_escapes, setup, teardown),
        cmocka_unit_test_setup_teardown (test_scan_symlinks_inside, setup, teardown),
        cmocka_unit_test_setup_teardown (test_scan_depth, setup, teardown),
        cmocka_unit_test_setup_teardown (test_manifest_round_trip, setup, teardown),
        cmocka_unit_test (test_manifest_hostile),
        cmocka_unit_test (test_manifest_too_many),
        cmocka_unit_test_setup_teardown (test_manifest_fuzz, setup, teardown),
        cmocka_unit_test_setup_teardown (test_stage_dir, setup, teardown),
        cmocka_unit_test_setup_teardown (test_stage_file, setup, teardown),
        cmocka_unit_test_setup_teardown (test_stage_escapes, setup, teardown),
        cmocka_unit_test_setup_teardown (test_scan_filtered_and_stage_at_top, setup, teardown),
        cmocka_unit_test_setup_teardown (test_stage_missing_or_damaged, setup, teardown),
        cmocka_unit_test_setup_teardown (test_stage_isolated, setup, teardown),
        cmocka_unit_test_setup_teardown (test_stage_reports_damage, setup, teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
