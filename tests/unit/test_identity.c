/*  Tests for qn_identity: the agent's key file saved and loaded back,
    and hostile key files refused, in a temporary directory.
*/
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <czmq.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "qn_identity.h"

typedef struct {
    char dir [64];
    char path [128];
    char coordinator_key [41];
} fixture_t;

static int
s_setup (void **state)
{
    fixture_t *fixture = (fixture_t *) calloc (1, sizeof (fixture_t));
    assert_non_null (fixture);
    snprintf (fixture->dir, sizeof (fixture->dir), "/tmp/qn-test-identity-XXXXXX");
    assert_non_null (mkdtemp (fixture->dir));
    snprintf (fixture->path, sizeof (fixture->path), "%s/" QN_IDENTITY_FILE, fixture->dir);
    zcert_t *coordinator = zcert_new ();
    assert_non_null (coordinator);
    snprintf (fixture->coordinator_key, sizeof (fixture->coordinator_key), "%s",
              zcert_public_txt (coordinator));
    zcert_destroy (&coordinator);
    *state = fixture;
    return 0;
}

static int
s_teardown (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    char path [160];
    snprintf (path, sizeof (path), "%s.new", fixture->path);
    unlink (path);
    unlink (fixture->path);
    rmdir (fixture->dir);
    free (fixture);
    return 0;
}

//  Writes a key file by hand: cert with the metadata given (NULL = left out)
static void
s_write (const char *path, zcert_t *cert, const char *coordinator_key, const char *name,
         const char *labels)
{
    if (coordinator_key)
        zcert_set_meta (cert, "coordinator-key", "%s", coordinator_key);
    if (name)
        zcert_set_meta (cert, "name", "%s", name);
    if (labels)
        zcert_set_meta (cert, "labels", "%s", labels);
    assert_int_equal (zcert_save_secret (cert, path), 0);
    assert_int_equal (chmod (path, 0600), 0);
}

static void
s_assert_refused (const char *path, const char *why)
{
    char *error = NULL;
    qn_identity_t *identity = qn_identity_load (path, &error);
    assert_null (identity);
    assert_non_null (error);
    assert_non_null (strstr (error, why));
    free (error);
}

static void
test_name_ok (void **state)
{
    (void) state;
    assert_true (qn_identity_name_ok ("gpu-01.lab_A"));
    assert_false (qn_identity_name_ok (NULL));
    assert_false (qn_identity_name_ok (""));
    assert_false (qn_identity_name_ok ("a b"));
    assert_false (qn_identity_name_ok ("a/b"));
    char long_name [130];
    memset (long_name, 'a', 129);
    long_name [129] = '\0';
    assert_false (qn_identity_name_ok (long_name));
    long_name [128] = '\0';
    assert_true (qn_identity_name_ok (long_name));
}

static void
test_save_and_load (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    qn_identity_t *identity = qn_identity_new (fixture->coordinator_key, "tcp://10.0.0.1:7711");
    assert_non_null (identity);
    assert_null (qn_identity_name (identity));
    assert_int_equal (qn_identity_set_name (identity, "worker-1"), 0);
    //  Label text with every byte the metadata cannot hold as it is
    assert_int_equal (qn_identity_add_label (identity, "gpu", "a100"), 0);
    assert_int_equal (qn_identity_add_label (identity, "odd,key=", "50% \"quoted\" 'x' #\\"), 0);
    assert_int_equal (qn_identity_add_label (identity, "empty", NULL), 0);
    char public_key [41];
    snprintf (public_key, sizeof (public_key), "%s", zcert_public_txt (qn_identity_cert (identity)));

    char *error = NULL;
    assert_int_equal (qn_identity_save (identity, fixture->path, &error), 0);
    assert_null (error);
    qn_identity_destroy (&identity);
    assert_null (identity);
    qn_identity_destroy (&identity);

    struct stat st;
    assert_int_equal (stat (fixture->path, &st), 0);
    assert_int_equal (st.st_mode & 0777, 0600);
    char temp [160];
    snprintf (temp, sizeof (temp), "%s.new", fixture->path);
    assert_int_equal (access (temp, F_OK), -1);

    identity = qn_identity_load (fixture->path, &error);
    assert_null (error);
    assert_non_null (identity);
    assert_string_equal (qn_identity_name (identity), "worker-1");
    assert_string_equal (qn_identity_endpoint (identity), "tcp://10.0.0.1:7711");
    assert_string_equal (qn_identity_coordinator_key (identity), fixture->coordinator_key);
    assert_string_equal (zcert_public_txt (qn_identity_cert (identity)), public_key);
    assert_int_equal (qn_identity_label_count (identity), 3);
    const char **keys = qn_identity_label_keys (identity);
    const char **values = qn_identity_label_values (identity);
    assert_string_equal (keys [0], "gpu");
    assert_string_equal (values [0], "a100");
    assert_string_equal (keys [1], "odd,key=");
    assert_string_equal (values [1], "50% \"quoted\" 'x' #\\");
    assert_string_equal (keys [2], "empty");
    assert_string_equal (values [2], "");
    qn_identity_destroy (&identity);
}

static void
test_readable_by_others_still_loads (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    zcert_t *cert = zcert_new ();
    s_write (fixture->path, cert, fixture->coordinator_key, "worker-2", NULL);
    zcert_destroy (&cert);
    assert_int_equal (chmod (fixture->path, 0644), 0);
    char *error = NULL;
    qn_identity_t *identity = qn_identity_load (fixture->path, &error);
    assert_non_null (identity);
    assert_null (error);
    assert_string_equal (qn_identity_endpoint (identity), "");
    assert_int_equal (qn_identity_label_count (identity), 0);
    qn_identity_destroy (&identity);
}

static void
test_hostile_files_refused (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_assert_refused (fixture->path, "cannot read");

    FILE *file = fopen (fixture->path, "w");
    assert_non_null (file);
    fputs ("not a certificate at all\n", file);
    fclose (file);
    s_assert_refused (fixture->path, "not a key file");

    //  A public key that is not the secret key's
    zcert_t *mine = zcert_new ();
    zcert_t *other = zcert_new ();
    zcert_t *forged = zcert_new_from (zcert_public_key (other), zcert_secret_key (mine));
    s_write (fixture->path, forged, fixture->coordinator_key, "worker-3", NULL);
    s_assert_refused (fixture->path, "its public key is not its secret key's");
    zcert_destroy (&forged);
    zcert_destroy (&other);

    zcert_t *cert = zcert_dup (mine);
    s_write (fixture->path, cert, NULL, "worker-3", NULL);
    s_assert_refused (fixture->path, "no valid coordinator-key");
    zcert_destroy (&cert);
    cert = zcert_dup (mine);
    s_write (fixture->path, cert, "tooshort", "worker-3", NULL);
    s_assert_refused (fixture->path, "no valid coordinator-key");
    zcert_destroy (&cert);
    cert = zcert_dup (mine);
    s_write (fixture->path, cert, fixture->coordinator_key, "bad name", NULL);
    s_assert_refused (fixture->path, "no valid name");
    zcert_destroy (&cert);
    cert = zcert_dup (mine);
    s_write (fixture->path, cert, fixture->coordinator_key, "worker-3", "novalue");
    s_assert_refused (fixture->path, "malformed labels");
    zcert_destroy (&cert);
    cert = zcert_dup (mine);
    s_write (fixture->path, cert, fixture->coordinator_key, "worker-3", "k=%zz");
    s_assert_refused (fixture->path, "malformed labels");
    zcert_destroy (&cert);
    cert = zcert_dup (mine);
    s_write (fixture->path, cert, fixture->coordinator_key, "worker-3", "k=%00");
    s_assert_refused (fixture->path, "malformed labels");
    zcert_destroy (&cert);
    zcert_destroy (&mine);
}

static void
test_save_fails_cleanly (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    qn_identity_t *identity = qn_identity_new (fixture->coordinator_key, "");
    assert_non_null (identity);
    assert_int_equal (qn_identity_set_name (identity, "worker-4"), 0);
    char path [160];
    snprintf (path, sizeof (path), "%s/missing/" QN_IDENTITY_FILE, fixture->dir);
    char *error = NULL;
    assert_int_equal (qn_identity_save (identity, path, &error), -1);
    assert_non_null (error);
    assert_non_null (strstr (error, "cannot write"));
    free (error);
    qn_identity_destroy (&identity);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_name_ok),
        cmocka_unit_test_setup_teardown (test_save_and_load, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_readable_by_others_still_loads, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (test_hostile_files_refused, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_save_fails_cleanly, s_setup, s_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
