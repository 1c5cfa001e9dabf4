/*  Unit tests for qn_vault's access lists: who may use a secret, the
    default for secrets without a list, and the references a text makes. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <czmq.h>
#include <ftw.h>
#include "qn_vault.h"

typedef struct {
    char root [256];
    qn_store_t *store;
    qn_vault_t *vault;
} fixture_t;

static int
s_setup (void **state)
{
    fixture_t *fixture = (fixture_t *) calloc (1, sizeof (fixture_t));
    const char *tmp = getenv ("TMPDIR");
    snprintf (fixture->root, sizeof fixture->root, "%s/qn_vault_test.XXXXXX", tmp && *tmp? tmp: "/tmp");
    assert_non_null (mkdtemp (fixture->root));
    char *error = NULL;
    char *dir = zsys_sprintf ("%s/store", fixture->root);
    fixture->store = qn_store_new (dir, false, &error);
    zstr_free (&dir);
    assert_non_null (fixture->store);
    fixture->vault = qn_vault_new (fixture->root, fixture->store, &error);
    assert_non_null (fixture->vault);
    *state = fixture;
    return 0;
}

static int
s_remove_entry (const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) st; (void) flag; (void) ftw;
    return remove (path);
}

static int
s_teardown (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    qn_vault_destroy (&fixture->vault);
    qn_store_destroy (&fixture->store);
    nftw (fixture->root, s_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    free (fixture);
    return 0;
}

//  Sets name's list from "a,b" and agent labels "k=v" (or NULL); the
//  error text, or NULL.
static char *
s_allow (fixture_t *fixture, const char *name, const char *entries, const char *label)
{
    char *copy = strdup (entries), *allow [8];
    Qanat__SecretAccess access = QANAT__SECRET_ACCESS__INIT;
    for (char *item = strtok (copy, ","); item; item = strtok (NULL, ","))
        allow [access.n_allow++] = item;
    access.allow = allow;
    char key [32] = "", *value = NULL;
    Qanat__Label agent = QANAT__LABEL__INIT;
    Qanat__Label *agents [] = { &agent };
    if (label) {
        snprintf (key, sizeof key, "%s", label);
        value = strchr (key, '=');
        *value++ = 0;
        agent.key = key;
        agent.value = value;
        access.agents = agents;
        access.n_agents = 1;
    }
    char *error = NULL;
    int rc = qn_vault_set_access (fixture->vault, name, &access, &error);
    free (copy);
    assert_int_equal (rc, error? -1: 0);
    if (!error)
        assert_int_equal (qn_store_commit (fixture->store), 0);
    return error;
}

//  Asserts that the refusal contains expected (NULL: allowed).
static void
s_expect (fixture_t *fixture, const char *name, const char *user, const char *role,
          const char *workflow, const char *label, const char *expected)
{
    qn_kv_t labels [1] = {{ NULL, NULL }};
    char copy [32] = "";
    if (label) {
        snprintf (copy, sizeof copy, "%s", label);
        labels [0].key = copy;
        labels [0].value = strchr (copy, '=');
        *labels [0].value++ = 0;
    }
    qn_vault_use_t use = { user, role, workflow, labels, label? 1: 0, "task t does not select" };
    char *reason = qn_vault_refusal (fixture->vault, name, &use);
    if (!expected)
        assert_null (reason);
    else {
        assert_non_null (reason);
        if (!strstr (reason, expected))
            fail_msg ("reason %s, expected %s", reason, expected);
    }
    free (reason);
}

static void
test_default_is_admins_only (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    assert_int_equal (qn_vault_set (fixture->vault, "DBPASS", "v", 1), 0);
    assert_int_equal (qn_store_commit (fixture->store), 0);
    s_expect (fixture, "DBPASS", "admin", "admin", "any", NULL, NULL);
    s_expect (fixture, "DBPASS", "eve", "user", "any", NULL,
              "secret DBPASS may not be used by user eve (allowed: role:admin)");
    //  A user who is not admitted now matches no role
    s_expect (fixture, "DBPASS", "old", NULL, "any", NULL, "not an admitted user now");
    Qanat__SecretAccess *access = qn_vault_access (fixture->vault, "DBPASS");
    assert_int_equal (access->n_allow, 1);
    assert_string_equal (access->allow [0], "role:admin");
    protobuf_c_message_free_unpacked (&access->base, NULL);
}

static void
test_users_roles_and_workflows (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    assert_null (s_allow (fixture, "K", "user:eve,workflow:ml,workflow:etl", NULL));
    s_expect (fixture, "K", "eve", "user", "ml", NULL, NULL);
    s_expect (fixture, "K", "eve", "user", "etl", NULL, NULL);
    s_expect (fixture, "K", "eve", "user", "scraper", NULL,
              "secret K may not be used by workflow scraper "
              "(allowed: user:eve, workflow:ml, workflow:etl)");
    //  Admins are not implicit
    s_expect (fixture, "K", "admin", "admin", "ml", NULL, "may not be used by user admin");
    assert_null (s_allow (fixture, "K", "role:user", NULL));
    s_expect (fixture, "K", "bob", "user", "x", NULL, NULL);
    s_expect (fixture, "K", "admin", "admin", "x", NULL, "may not be used by user admin");
    //  Without a principal entry the default stands beside the scope
    assert_null (s_allow (fixture, "K", "workflow:ml", NULL));
    Qanat__SecretAccess *access = qn_vault_access (fixture->vault, "K");
    assert_int_equal (access->n_allow, 2);
    assert_string_equal (access->allow [0], "role:admin");
    assert_string_equal (access->allow [1], "workflow:ml");
    protobuf_c_message_free_unpacked (&access->base, NULL);
    s_expect (fixture, "K", "admin", "admin", "ml", NULL, NULL);
    s_expect (fixture, "K", "eve", "user", "ml", NULL, "may not be used by user eve");
}

static void
test_agent_labels (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    assert_null (s_allow (fixture, "P", "role:user", "env=prod"));
    s_expect (fixture, "P", "eve", "user", "w", "env=prod", NULL);
    s_expect (fixture, "P", "eve", "user", "w", "env=dev",
              "secret P is only given to agents labelled env=prod: task t does not select env=prod");
    s_expect (fixture, "P", "eve", "user", "w", NULL, "does not select env=prod");
}

static void
test_bad_entries_leave_the_list (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    assert_null (s_allow (fixture, "K", "user:eve", NULL));
    const char *bad [] = { "eve", "role:root", "user:", "workflow:a/b", "team:x", "user:a b" };
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++) {
        char *error = s_allow (fixture, "K", bad [i], NULL);
        assert_non_null (error);
        assert_non_null (strstr (error, "access list"));
        free (error);
    }
    char *error = s_allow (fixture, "K", "user:eve", "env=a b");
    assert_non_null (error);
    free (error);
    s_expect (fixture, "K", "eve", "user", "w", NULL, NULL);
}

static void
test_references (void **state)
{
    (void) state;
    zlistx_t *names = zlistx_new ();
    zlistx_set_destructor (names, (zlistx_destructor_fn *) zstr_free);
    zlistx_set_duplicator (names, (zlistx_duplicator_fn *) strdup);
    char *error = NULL;
    assert_int_equal (qn_vault_references ("plain", names, &error), 0);
    assert_int_equal (qn_vault_references ("a${{ secrets.A }}b${{secrets.B}}", names, &error), 0);
    assert_int_equal (zlistx_size (names), 2);
    assert_string_equal ((char *) zlistx_first (names), "A");
    assert_string_equal ((char *) zlistx_next (names), "B");
    assert_int_equal (qn_vault_references ("${{ params.x }}", names, &error), -1);
    assert_non_null (strstr (error, "unknown reference"));
    zstr_free (&error);
    assert_int_equal (qn_vault_references ("${{ secrets.A ", names, &error), -1);
    zstr_free (&error);
    zlistx_destroy (&names);
}

int
main (void)
{
    zsys_init ();
    zsys_set_logstream (NULL);
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup_teardown (test_default_is_admins_only, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_users_roles_and_workflows, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_agent_labels, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_bad_entries_leave_the_list, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_references, s_setup, s_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
