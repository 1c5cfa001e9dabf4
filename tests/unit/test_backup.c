/*  qn_backup: a backup of a small data directory (store, a blob, a key)
    restores, and every way of misusing or damaging one is refused with
    its reason and leaves nothing behind.  */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "qn_backup.h"
#include "test_tmpdir.h"

static char s_data [128], s_hash [65];

static void
s_write (const char *path, const char *text, mode_t mode)
{
    FILE *file = fopen (path, "w");
    assert_non_null (file);
    fputs (text, file);
    fclose (file);
    chmod (path, mode);
}

//  A data directory: a store with one run id taken, one blob, one key
static qn_store_t *
s_make_data (const char *name, bool damaged_blob)
{
    snprintf (s_data, sizeof s_data, "%s/%s", s_dir, name);
    char *error = NULL;
    qn_store_t *store = qn_store_new (s_data, false, &error);
    assert_non_null (store);
    uint64_t run_id;
    assert_int_equal (qn_store_begin (store), 0);
    assert_int_equal (qn_store_new_run_id (store, &run_id), 0);
    assert_int_equal (qn_store_commit (store), 0);
    uint8_t digest [32];
    const char *content = "blob content\n";
    crypto_hash_sha256 (digest, (const uint8_t *) content, strlen (content));
    sodium_bin2hex (s_hash, sizeof s_hash, digest, 32);
    char path [512];
    snprintf (path, sizeof path, "%s/blobs", s_data);
    mkdir (path, 0700);
    snprintf (path, sizeof path, "%s/blobs/objects", s_data);
    mkdir (path, 0700);
    snprintf (path, sizeof path, "%s/blobs/objects/%.2s", s_data, s_hash);
    mkdir (path, 0700);
    snprintf (path, sizeof path, "%s/blobs/objects/%.2s/%s", s_data, s_hash, s_hash + 2);
    s_write (path, damaged_blob? "blob content?\n": content, 0444);
    snprintf (path, sizeof path, "%s/keys", s_data);
    mkdir (path, 0700);
    snprintf (path, sizeof path, "%s/keys/secrets.key", s_data);
    s_write (path, "not a real key\n", 0600);
    return store;
}

//  Runs a backup to its end; its error or NULL (the caller frees)
static char *
s_backup (qn_store_t *store, const char *dir)
{
    char *error = NULL;
    qn_backup_t *backup = qn_backup_start (store, s_data, dir, &error);
    if (!backup)
        return error;
    for (int i = 0; i < 1000 && !qn_backup_finished (backup); i++)
        usleep (10000);
    assert_true (qn_backup_finished (backup));
    char *result = qn_backup_error (backup)? strdup (qn_backup_error (backup)): NULL;
    if (!result) {
        assert_non_null (strstr (qn_backup_manifest (backup), QN_BACKUP_FORMAT));
        assert_true (qn_backup_bytes (backup) > 0);
    }
    qn_backup_destroy (&backup);
    return result;
}

static bool
s_exists (const char *format, ...)
{
    char path [512];
    va_list args;
    va_start (args, format);
    vsnprintf (path, sizeof path, format, args);
    va_end (args);
    struct stat st;
    return lstat (path, &st) == 0;
}

static void
test_backup_restores (void **state)
{
    (void) state;
    qn_store_t *store = s_make_data ("data1", false);
    char dir [256];
    snprintf (dir, sizeof dir, "%s/backup1", s_dir);
    assert_null (s_backup (store, dir));
    qn_store_destroy (&store);
    assert_false (s_exists ("%s.partial-%d", dir, (int) getpid ()));
    char *error = NULL;
    assert_int_equal (qn_backup_verify (dir, &error), 0);
    char target [256], *summary = NULL;
    snprintf (target, sizeof target, "%s/restored1", s_dir);
    assert_int_equal (qn_backup_restore (dir, target, &summary, &error), 0);
    assert_non_null (strstr (summary, "restored the backup of"));
    free (summary);
    assert_true (s_exists ("%s/data.mdb", target));
    assert_true (s_exists ("%s/keys/secrets.key", target));
    assert_true (s_exists ("%s/blobs/objects/%.2s/%s", target, s_hash, s_hash + 2));
    //  The restored store opens, with its run id taken
    store = qn_store_new (target, false, &error);
    assert_non_null (store);
    uint64_t run_id;
    assert_int_equal (qn_store_begin (store), 0);
    assert_int_equal (qn_store_new_run_id (store, &run_id), 0);
    assert_int_equal (run_id, 2);
    qn_store_destroy (&store);
    //  Never over a data directory with something in it
    assert_int_equal (qn_backup_restore (dir, target, &summary, &error), -1);
    assert_non_null (strstr (error, "exists and is not empty"));
    free (error);
}

static void
test_start_refusals (void **state)
{
    (void) state;
    qn_store_t *store = s_make_data ("data2", false);
    char *error = s_backup (store, "relative/backup");
    assert_non_null (strstr (error, "absolute path"));
    free (error);
    char dir [256];
    snprintf (dir, sizeof dir, "%s/no/such/parent", s_dir);
    error = s_backup (store, dir);
    assert_non_null (strstr (error, "is not a directory"));
    free (error);
    error = s_backup (store, s_data);          //  not empty
    assert_non_null (strstr (error, "exists and is not empty"));
    free (error);
    qn_store_destroy (&store);
    //  A blob whose content is not its name fails the backup, leaving nothing
    store = s_make_data ("data3", true);
    snprintf (dir, sizeof dir, "%s/backup3", s_dir);
    error = s_backup (store, dir);
    assert_non_null (strstr (error, "is damaged"));
    free (error);
    assert_false (s_exists ("%s", dir));
    assert_false (s_exists ("%s.partial-%d", dir, (int) getpid ()));
    qn_store_destroy (&store);
}

//  Rewrites the backup's manifest with one string replaced
static void
s_edit_manifest (const char *dir, const char *from, const char *to)
{
    char path [512];
    snprintf (path, sizeof path, "%s/manifest.json", dir);
    FILE *file = fopen (path, "r");
    assert_non_null (file);
    static char text [65536];
    size_t size = fread (text, 1, sizeof text - 1, file);
    fclose (file);
    text [size] = '\0';
    char *at = strstr (text, from);
    assert_non_null (at);
    char *edited = NULL;
    assert_true (asprintf (&edited, "%.*s%s%s", (int) (at - text), text, to,
                           at + strlen (from)) > 0);
    s_write (path, edited, 0600);
    free (edited);
}

static void
test_hostile_manifests (void **state)
{
    (void) state;
    qn_store_t *store = s_make_data ("data4", false);
    const struct { const char *from, *to, *why; } cases [] = {
        { "qanat-backup 1", "qanat-backup 9", "is not 'qanat-backup 1'" },
        { "\"schema\": 1", "\"schema\": 99", "newer than" },
        { "\"path\": \"keys/secrets.key\"", "\"path\": \"keys/../../x\"", "not a valid entry" },
        { "\"path\": \"data.mdb\"", "\"path\": \"keys/data.mdb\"", "is missing" },
        { "\"runs\": 0", "\"runs\": 5", "not the manifest's counts" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases [0]; i++) {
        char dir [256], target [256];
        snprintf (dir, sizeof dir, "%s/backup4-%zu", s_dir, i);
        snprintf (target, sizeof target, "%s/restored4-%zu", s_dir, i);
        assert_null (s_backup (store, dir));
        s_edit_manifest (dir, cases [i].from, cases [i].to);
        char *error = NULL, *summary = NULL;
        assert_int_equal (qn_backup_restore (dir, target, &summary, &error), -1);
        if (!strstr (error, cases [i].why))
            fail_msg ("case %zu: '%s' does not say '%s'", i, error, cases [i].why);
        free (error);
        assert_false (s_exists ("%s", target));
        assert_false (s_exists ("%s.restore-%d", target, (int) getpid ()));
    }
    qn_store_destroy (&store);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_backup_restores),
        cmocka_unit_test (test_start_refusals),
        cmocka_unit_test (test_hostile_manifests),
    };
    return cmocka_run_group_tests (tests, s_tmpdir_setup, s_tmpdir_teardown);
}
