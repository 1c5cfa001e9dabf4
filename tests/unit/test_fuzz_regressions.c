/*  Feeds every crash input the fuzzers ever found (tests/fuzz/regressions/)
    and every seed (tests/fuzz/corpus/) through the same functions the
    libFuzzer targets use (tests/fuzz/fuzz_common.h, fuzz_coordinator.h):
    none may crash or break an invariant, seeds named ok-* must be accepted
    and seeds named bad-* refused.  The directory comes from $QANAT_SRCDIR,
    else it is looked for relative to the current directory.
*/
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "../fuzz/fuzz_common.h"
#include "../fuzz/fuzz_coordinator.h"
#include "../fuzz/fuzz_shellref.h"
#include "../fuzz/fuzz_http.h"

typedef int (fz_one_fn) (const uint8_t *data, size_t size);

static char s_fuzzdir [1024];

static void
s_find_fuzzdir (void)
{
    const char *srcdir = getenv ("QANAT_SRCDIR");
    const char *candidates [] = { srcdir, ".", "..", "../..", NULL };
    for (int i = 0; i < 5; i++) {
        if (i == 0 && !srcdir)
            continue;
        if (!candidates [i])
            break;
        snprintf (s_fuzzdir, sizeof s_fuzzdir, "%s/tests/fuzz/corpus", candidates [i]);
        struct stat st;
        if (stat (s_fuzzdir, &st) == 0 && S_ISDIR (st.st_mode)) {
            snprintf (s_fuzzdir, sizeof s_fuzzdir, "%s/tests/fuzz", candidates [i]);
            return;
        }
    }
    *s_fuzzdir = 0;
}

static uint8_t *
s_read (const char *path, size_t *size_p)
{
    FILE *file = fopen (path, "rb");
    assert_non_null (file);
    fseek (file, 0, SEEK_END);
    long size = ftell (file);
    fseek (file, 0, SEEK_SET);
    assert_true (size >= 0);
    uint8_t *data = (uint8_t *) malloc ((size_t) size + 1);
    assert_non_null (data);
    assert_int_equal (fread (data, 1, (size_t) size, file), (size_t) size);
    fclose (file);
    *size_p = (size_t) size;
    return data;
}

//  Feeds every file of <kind>/<target>/ to one; returns how many.
static size_t
s_feed_dir (const char *kind, const char *target, fz_one_fn *one)
{
    char dir [1200];
    snprintf (dir, sizeof dir, "%s/%s/%s", s_fuzzdir, kind, target);
    DIR *handle = opendir (dir);
    if (!handle)
        return 0;
    size_t count = 0;
    struct dirent *entry;
    while ((entry = readdir (handle))) {
        if (*entry->d_name == '.')
            continue;
        char path [1500];
        snprintf (path, sizeof path, "%s/%s", dir, entry->d_name);
        size_t size;
        uint8_t *data = s_read (path, &size);
        int result = one (data, size);
        free (data);
        if (result < 0)
            print_error ("%s: broke an invariant\n", path);
        assert_true (result >= 0);
        //  A seed says what it should give; crash inputs may give either.
        if (streq (kind, "corpus") && strncmp (entry->d_name, "ok-", 3) == 0) {
            if (result != 1)
                print_error ("%s: refused\n", path);
            assert_int_equal (result, 1);
        }
        if (streq (kind, "corpus") && strncmp (entry->d_name, "bad-", 4) == 0
        &&  !strstr (target, "socket")) {
            if (result != 0)
                print_error ("%s: accepted\n", path);
            assert_int_equal (result, 0);
        }
        count++;
    }
    closedir (handle);
    return count;
}

static void
s_target (const char *target, fz_one_fn *one)
{
    assert_true (*s_fuzzdir);
    size_t seeds = s_feed_dir ("corpus", target, one);
    s_feed_dir ("regressions", target, one);
    //  Every target has seeds; an empty corpus means a broken checkout.
    assert_true (seeds > 0);
}

static void test_envelope (void **state)    { (void) state; s_target ("fuzz_envelope", fz_envelope_one); }
static void test_workflow (void **state)    { (void) state; s_target ("fuzz_workflow", fz_workflow_one); }
static void test_check (void **state)       { (void) state; s_target ("fuzz_check", fz_check_one); }
static void test_token (void **state)       { (void) state; s_target ("fuzz_token", fz_token_one); }
static void test_metric_line (void **state) { (void) state; s_target ("fuzz_metric_line", fz_metric_line_one); }
static void test_manifest (void **state)    { (void) state; s_target ("fuzz_manifest", fz_manifest_one); }
static void test_shellref (void **state)    { (void) state; s_target ("fuzz_shellref", fz_shellref_one); }
static void test_http (void **state)        { (void) state; s_target ("fuzz_http", fz_http_one); }
//  Each socket target gets a coordinator of its own, as each fuzzer
//  process does.
static void
test_agent_socket (void **state)
{
    (void) state;
    fz_teardown ();
    s_target ("fuzz_agent_socket", fz_agent_socket_one);
}

static void
test_client_socket (void **state)
{
    (void) state;
    fz_teardown ();
    s_target ("fuzz_client_socket", fz_client_socket_one);
}

static Qanat__Stats *
s_stats (void)
{
    Qanat__GetStats get = QANAT__GET_STATS__INIT;
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.body_case = QANAT__REQUEST__BODY_GET_STATS;
    request.get_stats = &get;
    Qanat__Envelope *reply = fz_request (&request, 2000);
    assert_non_null (reply);
    assert_int_equal (reply->reply->body_case, QANAT__REPLY__BODY_STATS);
    Qanat__Stats *stats = (Qanat__Stats *) malloc (sizeof (Qanat__Stats));
    *stats = *reply->reply->stats;
    qn_msg_free (&reply);
    return stats;
}

static void
s_feed_seed (const char *target, const char *name, fz_one_fn *one)
{
    char path [1500];
    snprintf (path, sizeof path, "%s/corpus/%s/%s", s_fuzzdir, target, name);
    size_t size;
    uint8_t *data = s_read (path, &size);
    assert_int_equal (one (data, size), 1);
    free (data);
}

//  The harness reaches deep code: the seed of a whole run commits its
//  events, with none malformed; the garbage seed is counted as such.
static void
test_socket_effects (void **state)
{
    (void) state;
    assert_true (*s_fuzzdir);
    fz_teardown ();
    assert_non_null (fz_setup ());
    Qanat__Stats *before = s_stats ();
    s_feed_seed ("fuzz_agent_socket", "ok-run-succeeds", fz_agent_socket_one);
    Qanat__Stats *after = s_stats ();
    assert_int_equal (after->events_committed - before->events_committed, 9);
    assert_int_equal (after->malformed_agent_frames, before->malformed_agent_frames);
    assert_int_equal (after->stale_events, before->stale_events);
    free (before);
    before = after;
    s_feed_seed ("fuzz_agent_socket", "bad-messages", fz_agent_socket_one);
    after = s_stats ();
    assert_true (after->malformed_agent_frames >= before->malformed_agent_frames + 2);
    assert_true (after->bad_version > before->bad_version);
    free (before);
    before = after;
    s_feed_seed ("fuzz_client_socket", "bad-requests", fz_client_socket_one);
    after = s_stats ();
    assert_true (after->malformed_client_frames > before->malformed_client_frames);
    free (before);
    free (after);
}

int
main (void)
{
    s_find_fuzzdir ();
    if (!*s_fuzzdir)
        fprintf (stderr, "test_fuzz_regressions: tests/fuzz not found (set QANAT_SRCDIR)\n");
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_envelope),
        cmocka_unit_test (test_workflow),
        cmocka_unit_test (test_check),
        cmocka_unit_test (test_token),
        cmocka_unit_test (test_manifest),
        cmocka_unit_test (test_metric_line),
        cmocka_unit_test (test_shellref),
        cmocka_unit_test (test_http),
        cmocka_unit_test (test_agent_socket),
        cmocka_unit_test (test_client_socket),
        cmocka_unit_test (test_socket_effects),
    };
    int rc = cmocka_run_group_tests (tests, NULL, NULL);
    fz_teardown ();
    return rc;
}
