/*  Unit tests for qn_keyring: the coordinator and admin keys made at the
    first start (files 0600) and kept at the next, users with roles, join
    tokens bounded by expiry and uses, agents enrolled and revoked, the
    allow-list files that zauth reads, and the keys and names refused.
    No socket is opened: the keyring is driven through its functions. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <czmq.h>
#include <ftw.h>
#include <sys/stat.h>
#include "qn_keyring.h"
#include "qn_msg.h"
#include "qn_token.h"

#define CLIENT_ENDPOINT  "tcp://127.0.0.1:7701"
#define AGENT_ENDPOINT   "tcp://127.0.0.1:7702"

typedef struct {
    char root [256];
    qn_store_t *store;
    qn_keyring_t *keyring;
} fixture_t;

//  Opens the store and the keyring of fixture->root.
static void
s_open (fixture_t *fixture)
{
    char *error = NULL;
    char *dir = zsys_sprintf ("%s/store", fixture->root);
    fixture->store = qn_store_new (dir, false, &error);
    zstr_free (&dir);
    assert_non_null (fixture->store);
    fixture->keyring = qn_keyring_new (fixture->root, fixture->store, CLIENT_ENDPOINT,
                                       AGENT_ENDPOINT, &error);
    if (!fixture->keyring)
        fail_msg ("qn_keyring_new: %s", error? error: "?");
}

//  Commits what the keyring wrote and closes keyring and store.
static void
s_close (fixture_t *fixture)
{
    assert_int_equal (qn_store_commit (fixture->store), 0);
    qn_keyring_destroy (&fixture->keyring);
    qn_store_destroy (&fixture->store);
}

static int
s_setup (void **state)
{
    fixture_t *fixture = (fixture_t *) calloc (1, sizeof (fixture_t));
    const char *tmp = getenv ("TMPDIR");
    snprintf (fixture->root, sizeof fixture->root, "%s/qn_keyring_test.XXXXXX", tmp && *tmp? tmp: "/tmp");
    assert_non_null (mkdtemp (fixture->root));
    s_open (fixture);
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
    if (fixture->store)
        qn_store_abort (fixture->store);
    qn_keyring_destroy (&fixture->keyring);
    qn_store_destroy (&fixture->store);
    nftw (fixture->root, s_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    free (fixture);
    return 0;
}

static mode_t
s_mode (const char *path)
{
    struct stat st;
    assert_int_equal (stat (path, &st), 0);
    return st.st_mode & 07777;
}

//  The whole text of a file (malloc'd).
static char *
s_slurp (const char *path)
{
    FILE *file = fopen (path, "rb");
    assert_non_null (file);
    char *text = (char *) calloc (1, 8192);
    size_t size = fread (text, 1, 8191, file);
    fclose (file);
    assert_true (size > 0);
    return text;
}

//  The public key (Z85, malloc'd) of the certificate text of a client key.
static char *
s_public_of_text (const char *text)
{
    zconfig_t *root = zconfig_str_load (text);
    assert_non_null (root);
    char *key = zconfig_get (root, "curve/public-key", NULL);
    assert_non_null (key);
    char *copy = strdup (key);
    zconfig_destroy (&root);
    assert_int_equal (strlen (copy), QN_Z85_KEY_SIZE);
    return copy;
}

//  The allow-list file of a key (malloc'd): <root>/keys/allowed/<hex>.cert
static char *
s_allowed_path (fixture_t *fixture, const char *public_key)
{
    uint8_t binary [32];
    assert_non_null (zmq_z85_decode (binary, public_key));
    char hex [65];
    for (int i = 0; i < 32; i++)
        snprintf (hex + 2 * i, 3, "%02x", binary [i]);
    return zsys_sprintf ("%s/keys/allowed/%s.cert", fixture->root, hex);
}

static bool
s_allowed (fixture_t *fixture, const char *public_key)
{
    char *path = s_allowed_path (fixture, public_key);
    bool exists = zsys_file_exists (path);
    zstr_free (&path);
    return exists;
}

//  A join token; returns its public key (malloc'd), found in the store
//  under the id the keyring gave it.
static char *
s_token (fixture_t *fixture, uint32_t ttl_s, uint32_t uses, Qanat__Label **labels,
         size_t label_count, int64_t *expires_p)
{
    int64_t expires = 0;
    char *id = NULL;
    char *token = qn_keyring_create_token (fixture->keyring, ttl_s, uses, labels, label_count,
                                           &expires, &id);
    assert_non_null (token);
    assert_non_null (id);
    free (token);
    Qanat__Principal **principals = NULL;
    size_t count = 0;
    assert_int_equal (qn_store_list_principals (fixture->store, &principals, &count), 0);
    char *public_key = NULL;
    for (size_t i = 0; i < count; i++)
        if (streq (principals [i]->kind, "token") && streq (principals [i]->name, id))
            public_key = strdup (principals [i]->public_key);
    qn_store_free_array (principals, count);
    free (id);
    assert_non_null (public_key);
    if (expires_p)
        *expires_p = expires;
    return public_key;
}

//  A fresh agent key pair's public half, raw and in Z85.
static void
s_agent_key (uint8_t raw [32], char z85 [QN_Z85_KEY_SIZE + 1])
{
    zcert_t *cert = zcert_new ();
    assert_non_null (cert);
    memcpy (raw, zcert_public_key (cert), 32);
    zmq_z85_encode (z85, raw, 32);
    zcert_destroy (&cert);
}

//  Enrols an agent named name with token_key; its principal or NULL with
//  the error freed.
static const Qanat__Principal *
s_enrol (fixture_t *fixture, const char *token_key, const char *name, char *z85_p)
{
    uint8_t raw [32];
    char z85 [QN_Z85_KEY_SIZE + 1];
    s_agent_key (raw, z85);
    if (z85_p)
        strcpy (z85_p, z85);
    char *error = NULL;
    const Qanat__Principal *agent = qn_keyring_enrol (fixture->keyring, token_key, name, raw, 32,
                                                      NULL, 0, &error);
    if (agent)
        assert_null (error);
    else
        assert_non_null (error);
    free (error);
    return agent;
}

static void
test_first_start_keys (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    char *keys = zsys_sprintf ("%s/keys", fixture->root);
    char *admin_path = zsys_sprintf ("%s/keys/admin.key", fixture->root);
    char *coordinator_path = zsys_sprintf ("%s/keys/coordinator.key", fixture->root);
    assert_string_equal (qn_keyring_admin_key_path (fixture->keyring), admin_path);
    assert_int_equal (s_mode (keys), 0700);
    assert_int_equal (s_mode (admin_path), 0600);
    assert_int_equal (s_mode (coordinator_path), 0600);

    //  The admin key file is a client key: the admin principal, with the
    //  coordinator's key and the client endpoint in its metadata.
    char *admin_text = s_slurp (admin_path);
    char *admin_key = s_public_of_text (admin_text);
    zconfig_t *config = zconfig_str_load (admin_text);
    assert_string_equal (zconfig_get (config, "metadata/coordinator-key", ""),
                         qn_keyring_public_key (fixture->keyring));
    assert_string_equal (zconfig_get (config, "metadata/endpoint", ""), CLIENT_ENDPOINT);
    assert_string_equal (zconfig_get (config, "metadata/role", ""), "admin");
    zconfig_destroy (&config);
    const Qanat__Principal *admin = qn_keyring_lookup (fixture->keyring, admin_key);
    assert_non_null (admin);
    assert_string_equal (admin->kind, "user");
    assert_string_equal (admin->name, "admin");
    assert_string_equal (admin->role, "admin");
    assert_ptr_equal (qn_keyring_user (fixture->keyring, "admin"), admin);
    assert_true (s_allowed (fixture, admin_key));
    char *coordinator_key = strdup (qn_keyring_public_key (fixture->keyring));
    assert_int_equal (strlen (coordinator_key), QN_Z85_KEY_SIZE);

    //  A second start keeps both keys, file and mode unchanged.
    s_close (fixture);
    s_open (fixture);
    assert_string_equal (qn_keyring_public_key (fixture->keyring), coordinator_key);
    char *again = s_slurp (admin_path);
    assert_string_equal (again, admin_text);
    assert_int_equal (s_mode (admin_path), 0600);
    assert_int_equal (s_mode (coordinator_path), 0600);
    admin = qn_keyring_lookup (fixture->keyring, admin_key);
    assert_non_null (admin);
    assert_string_equal (admin->role, "admin");
    assert_true (s_allowed (fixture, admin_key));

    //  Exactly one admin principal: the second start made no other.
    Qanat__Principal **principals = NULL;
    size_t count = 0;
    assert_int_equal (qn_store_list_principals (fixture->store, &principals, &count), 0);
    assert_int_equal (count, 1);
    qn_store_free_array (principals, count);

    free (again);
    free (coordinator_key);
    free (admin_key);
    free (admin_text);
    zstr_free (&coordinator_path);
    zstr_free (&admin_path);
    zstr_free (&keys);
}

static void
test_users (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    char *error = NULL;
    char *text = qn_keyring_add_user (fixture->keyring, "alice", "user", &error);
    assert_non_null (text);
    assert_null (error);
    assert_non_null (strstr (text, "secret-key"));
    char *alice_key = s_public_of_text (text);
    free (text);

    const Qanat__Principal *alice = qn_keyring_lookup (fixture->keyring, alice_key);
    assert_non_null (alice);
    assert_string_equal (alice->kind, "user");
    assert_string_equal (alice->name, "alice");
    assert_string_equal (alice->role, "user");
    assert_ptr_equal (qn_keyring_user (fixture->keyring, "alice"), alice);
    assert_true (s_allowed (fixture, alice_key));
    assert_null (qn_keyring_user (fixture->keyring, "bob"));

    text = qn_keyring_add_user (fixture->keyring, "bob", "admin", &error);
    assert_non_null (text);
    char *bob_key = s_public_of_text (text);
    free (text);
    const Qanat__Principal *bob = qn_keyring_user (fixture->keyring, "bob");
    assert_non_null (bob);
    assert_string_equal (bob->role, "admin");
    assert_string_equal (bob->public_key, bob_key);
    assert_string_not_equal (bob_key, alice_key);

    //  A second alice, and a role that does not exist, are refused.
    assert_null (qn_keyring_add_user (fixture->keyring, "alice", "admin", &error));
    assert_non_null (strstr (error, "exists already"));
    zstr_free (&error);
    assert_null (qn_keyring_add_user (fixture->keyring, "carol", "root", &error));
    assert_non_null (strstr (error, "unknown role"));
    zstr_free (&error);
    assert_null (qn_keyring_user (fixture->keyring, "carol"));

    //  Users live in the store: a restart finds them again.
    s_close (fixture);
    s_open (fixture);
    alice = qn_keyring_user (fixture->keyring, "alice");
    assert_non_null (alice);
    assert_string_equal (alice->public_key, alice_key);
    assert_ptr_equal (qn_keyring_lookup (fixture->keyring, alice_key), alice);
    assert_true (s_allowed (fixture, alice_key));
    free (bob_key);
    free (alice_key);
}

static void
test_token_uses (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    char *token_key = s_token (fixture, 3600, 2, NULL, 0, NULL);
    const Qanat__Principal *token = qn_keyring_lookup (fixture->keyring, token_key);
    assert_non_null (token);
    assert_string_equal (token->kind, "token");
    assert_int_equal (token->uses_left, 2);
    assert_true (s_allowed (fixture, token_key));
    //  A token is no user.
    assert_null (qn_keyring_user (fixture->keyring, token->name));

    char agent_key [QN_Z85_KEY_SIZE + 1];
    const Qanat__Principal *agent = s_enrol (fixture, token_key, "worker-1", agent_key);
    assert_non_null (agent);
    assert_string_equal (agent->kind, "agent");
    assert_string_equal (agent->name, "worker-1");
    assert_string_equal (agent->public_key, agent_key);
    assert_ptr_equal (qn_keyring_lookup (fixture->keyring, agent_key), agent);
    assert_true (s_allowed (fixture, agent_key));
    token = qn_keyring_lookup (fixture->keyring, token_key);
    assert_non_null (token);
    assert_int_equal (token->uses_left, 1);

    //  The last use is spent: the token is out, its agents stay in.
    assert_non_null (s_enrol (fixture, token_key, "worker-2", NULL));
    assert_null (qn_keyring_lookup (fixture->keyring, token_key));
    assert_false (s_allowed (fixture, token_key));
    assert_null (s_enrol (fixture, token_key, "worker-3", NULL));
    assert_non_null (qn_keyring_lookup (fixture->keyring, agent_key));

    //  uses 0 means one.
    char *single = s_token (fixture, 0, 0, NULL, 0, NULL);
    token = qn_keyring_lookup (fixture->keyring, single);
    assert_non_null (token);
    assert_int_equal (token->uses_left, 1);
    assert_non_null (s_enrol (fixture, single, "worker-3", NULL));
    assert_null (qn_keyring_lookup (fixture->keyring, single));

    //  A spent token stays spent after a restart.
    s_close (fixture);
    s_open (fixture);
    assert_null (qn_keyring_lookup (fixture->keyring, token_key));
    assert_false (s_allowed (fixture, token_key));
    assert_non_null (qn_keyring_lookup (fixture->keyring, agent_key));
    free (single);
    free (token_key);
}

static void
test_token_expiry (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    //  ttl 0 means one hour.
    int64_t before = qn_now_us ();
    int64_t expires = 0;
    char *hour = s_token (fixture, 0, 1, NULL, 0, &expires);
    assert_in_range (expires, before + 3600 * 1000000LL, qn_now_us () + 3600 * 1000000LL);
    free (hour);

    before = qn_now_us ();
    char *token_key = s_token (fixture, 1, 5, NULL, 0, &expires);
    const Qanat__Principal *token = qn_keyring_lookup (fixture->keyring, token_key);
    int64_t after = qn_now_us ();
    assert_in_range (expires, before + 1000000, after + 1000000);
    //  Admitted while it lasts (checked only when the lookup surely ran
    //  before the expiry, so that a stalled machine cannot fail it).
    if (after < expires) {
        assert_non_null (token);
        assert_int_equal (token->uses_left, 5);
    }
    assert_true (s_allowed (fixture, token_key));

    //  Past the expiry: refused, uses left or not, and expire drops its
    //  allow-list file.
    while (qn_now_us () <= expires)
        zclock_sleep (50);
    assert_null (qn_keyring_lookup (fixture->keyring, token_key));
    assert_null (s_enrol (fixture, token_key, "late", NULL));
    assert_true (s_allowed (fixture, token_key));
    qn_keyring_expire (fixture->keyring);
    assert_false (s_allowed (fixture, token_key));
    free (token_key);
}

static void
test_revoke (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    char *token_key = s_token (fixture, 3600, 3, NULL, 0, NULL);
    char agent_key [QN_Z85_KEY_SIZE + 1], other_key [QN_Z85_KEY_SIZE + 1];
    assert_non_null (s_enrol (fixture, token_key, "worker-1", agent_key));
    assert_non_null (s_enrol (fixture, token_key, "worker-2", other_key));

    //  One name enrolled twice is refused while the first is in.
    assert_null (s_enrol (fixture, token_key, "worker-1", NULL));

    assert_int_equal (qn_keyring_revoke_agent (fixture->keyring, "worker-1"), 0);
    assert_null (qn_keyring_lookup (fixture->keyring, agent_key));
    assert_false (s_allowed (fixture, agent_key));
    assert_non_null (qn_keyring_lookup (fixture->keyring, other_key));
    assert_true (s_allowed (fixture, other_key));
    assert_int_equal (qn_keyring_revoke_agent (fixture->keyring, "worker-1"), -1);
    assert_int_equal (qn_keyring_revoke_agent (fixture->keyring, "nobody"), -1);
    //  Users are not agents: revoke_agent leaves them alone.
    assert_int_equal (qn_keyring_revoke_agent (fixture->keyring, "admin"), -1);
    assert_non_null (qn_keyring_user (fixture->keyring, "admin"));

    //  The revocation outlives a restart.
    s_close (fixture);
    s_open (fixture);
    assert_null (qn_keyring_lookup (fixture->keyring, agent_key));
    assert_false (s_allowed (fixture, agent_key));
    assert_non_null (qn_keyring_lookup (fixture->keyring, other_key));

    //  The name is free again, for a new key.
    char new_key [QN_Z85_KEY_SIZE + 1];
    const Qanat__Principal *again = s_enrol (fixture, token_key, "worker-1", new_key);
    assert_non_null (again);
    assert_string_equal (again->public_key, new_key);
    assert_null (qn_keyring_lookup (fixture->keyring, agent_key));
    free (token_key);
}

//  The id of the token whose key is token_key
static char *
s_token_id (fixture_t *fixture, const char *token_key)
{
    const Qanat__Principal *token = qn_keyring_lookup (fixture->keyring, token_key);
    assert_non_null (token);
    return strdup (token->name);
}

static void
test_administration (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    char *error = NULL;
    qn_keyring_change_t failure = 0;
    char *text = qn_keyring_add_user (fixture->keyring, "alice", "user", &error);
    assert_non_null (text);
    char *alice_key = s_public_of_text (text);
    free (text);

    //  Users listed by name, revoked ones too; tokens apart
    char *token_key = s_token (fixture, 3600, 2, NULL, 0, NULL);
    size_t count = 0;
    const Qanat__Principal **users = qn_keyring_list (fixture->keyring, "user", &count);
    assert_int_equal (count, 2);
    assert_string_equal (users [0]->name, "admin");
    assert_string_equal (users [1]->name, "alice");
    free (users);
    const Qanat__Principal **tokens = qn_keyring_list (fixture->keyring, "token", &count);
    assert_int_equal (count, 1);
    assert_int_equal (tokens [0]->uses_left, 2);
    free (tokens);

    //  A revoked user's key is refused at once, and the allow-list drops it
    const Qanat__Principal *alice = qn_keyring_revoke_user (fixture->keyring, "alice", &failure,
                                                            &error);
    assert_non_null (alice);
    assert_true (alice->revoked);
    assert_null (qn_keyring_lookup (fixture->keyring, alice_key));
    assert_false (s_allowed (fixture, alice_key));
    assert_null (qn_keyring_revoke_user (fixture->keyring, "alice", &failure, &error));
    assert_int_equal (failure, QN_KEYRING_NOT_FOUND);
    zstr_free (&error);
    //  The last admin stays
    assert_null (qn_keyring_revoke_user (fixture->keyring, "admin", &failure, &error));
    assert_int_equal (failure, QN_KEYRING_REFUSED);
    assert_non_null (strstr (error, "last admin"));
    zstr_free (&error);
    assert_non_null (qn_keyring_user (fixture->keyring, "admin"));
    users = qn_keyring_list (fixture->keyring, "user", &count);
    assert_int_equal (count, 2);
    free (users);

    //  A revoked token enrols nobody
    char *id = s_token_id (fixture, token_key);
    assert_non_null (qn_keyring_revoke_token (fixture->keyring, id));
    assert_null (qn_keyring_lookup (fixture->keyring, token_key));
    assert_null (s_enrol (fixture, token_key, "late", NULL));
    assert_null (qn_keyring_revoke_token (fixture->keyring, "t00000000"));

    //  Relabelling: set, replace and remove, kept across a restart
    char *other = s_token (fixture, 3600, 1, NULL, 0, NULL);
    char agent_key [QN_Z85_KEY_SIZE + 1];
    assert_non_null (s_enrol (fixture, other, "gpu-1", agent_key));
    Qanat__Label zone = QANAT__LABEL__INIT, gpu = QANAT__LABEL__INIT, bad = QANAT__LABEL__INIT;
    zone.key = "zone"; zone.value = "a";
    gpu.key = "gpu"; gpu.value = "a100";
    bad.key = "x y"; bad.value = "1";
    Qanat__Label *set [] = { &zone, &gpu };
    const Qanat__Principal *agent = qn_keyring_label_agent (fixture->keyring, "gpu-1", set, 2,
                                                            NULL, 0, &failure, &error);
    assert_non_null (agent);
    assert_int_equal (agent->n_labels, 2);
    zone.value = "b";
    char *remove [] = { "gpu" };
    agent = qn_keyring_label_agent (fixture->keyring, "gpu-1", set, 1, remove, 1, &failure,
                                    &error);
    assert_non_null (agent);
    assert_int_equal (agent->n_labels, 1);
    assert_string_equal (agent->labels [0]->value, "b");
    assert_ptr_equal (qn_keyring_lookup (fixture->keyring, agent_key), agent);
    Qanat__Label *bad_set [] = { &bad };
    assert_null (qn_keyring_label_agent (fixture->keyring, "gpu-1", bad_set, 1, NULL, 0,
                                         &failure, &error));
    assert_int_equal (failure, QN_KEYRING_BAD);
    zstr_free (&error);
    assert_null (qn_keyring_label_agent (fixture->keyring, "nobody", set, 1, NULL, 0,
                                         &failure, &error));
    assert_int_equal (failure, QN_KEYRING_NOT_FOUND);
    zstr_free (&error);

    s_close (fixture);
    s_open (fixture);
    assert_null (qn_keyring_lookup (fixture->keyring, alice_key));
    assert_null (qn_keyring_lookup (fixture->keyring, token_key));
    agent = qn_keyring_agent (fixture->keyring, "gpu-1");
    assert_non_null (agent);
    assert_int_equal (agent->n_labels, 1);
    assert_string_equal (agent->labels [0]->key, "zone");

    //  Forgetting an agent takes its keys out of the store and the allow-list
    assert_true (s_allowed (fixture, agent_key));
    assert_int_equal (qn_keyring_forget_agent (fixture->keyring, "gpu-1"), 1);
    assert_null (qn_keyring_lookup (fixture->keyring, agent_key));
    assert_false (s_allowed (fixture, agent_key));
    assert_int_equal (qn_keyring_forget_agent (fixture->keyring, "gpu-1"), 0);
    s_close (fixture);
    s_open (fixture);
    assert_null (qn_keyring_agent (fixture->keyring, "gpu-1"));
    free (other);
    free (id);
    free (token_key);
    free (alice_key);
}

static void
test_unknown_keys (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    uint8_t raw [32];
    char stranger [QN_Z85_KEY_SIZE + 1];
    s_agent_key (raw, stranger);
    assert_null (qn_keyring_lookup (fixture->keyring, stranger));
    assert_false (s_allowed (fixture, stranger));
    assert_null (qn_keyring_lookup (fixture->keyring, NULL));
    assert_null (qn_keyring_lookup (fixture->keyring, ""));
    assert_null (qn_keyring_lookup (fixture->keyring, "not a key"));
    //  The coordinator's own key is no principal.
    assert_null (qn_keyring_lookup (fixture->keyring, qn_keyring_public_key (fixture->keyring)));

    //  Enrolment needs a token: an unknown key, or a user's, will not do.
    assert_null (s_enrol (fixture, stranger, "worker-1", NULL));
    const Qanat__Principal *admin = qn_keyring_user (fixture->keyring, "admin");
    assert_non_null (admin);
    char *admin_key = strdup (admin->public_key);
    char *error = NULL;
    assert_null (qn_keyring_enrol (fixture->keyring, admin_key, "worker-1", raw, 32, NULL, 0, &error));
    assert_non_null (strstr (error, "valid join token"));
    zstr_free (&error);

    //  A key already known, or one of the wrong size, is refused, and
    //  spends no use of the token.
    char *token_key = s_token (fixture, 3600, 1, NULL, 0, NULL);
    uint8_t admin_raw [32];
    assert_non_null (zmq_z85_decode (admin_raw, admin_key));
    assert_null (qn_keyring_enrol (fixture->keyring, token_key, "worker-1", admin_raw, 32, NULL, 0, &error));
    assert_non_null (strstr (error, "already known"));
    zstr_free (&error);
    assert_null (qn_keyring_enrol (fixture->keyring, token_key, "worker-1", raw, 31, NULL, 0, &error));
    assert_non_null (strstr (error, "32 bytes"));
    zstr_free (&error);
    const Qanat__Principal *token = qn_keyring_lookup (fixture->keyring, token_key);
    assert_non_null (token);
    assert_int_equal (token->uses_left, 1);
    free (token_key);
    free (admin_key);
}

static void
test_hostile_names (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    char long_name [130];
    memset (long_name, 'a', 129);
    long_name [129] = 0;
    const char *hostile [] = {
        "", "../etc", "a/b", "a b", "tab\there", "new\nline", "semi;colon", "$(id)",
        "quote'", "caf\xc3\xa9", long_name
    };
    char *token_key = s_token (fixture, 3600, 1, NULL, 0, NULL);
    for (size_t i = 0; i < sizeof hostile / sizeof hostile [0]; i++) {
        char *error = NULL;
        assert_null (qn_keyring_add_user (fixture->keyring, hostile [i], "user", &error));
        assert_non_null (strstr (error, "1 to 128"));
        zstr_free (&error);
        assert_null (qn_keyring_user (fixture->keyring, hostile [i]));

        uint8_t raw [32];
        char z85 [QN_Z85_KEY_SIZE + 1];
        s_agent_key (raw, z85);
        assert_null (qn_keyring_enrol (fixture->keyring, token_key, hostile [i], raw, 32,
                                       NULL, 0, &error));
        assert_non_null (strstr (error, "1 to 128"));
        zstr_free (&error);
        assert_null (qn_keyring_lookup (fixture->keyring, z85));
    }
    //  No refusal spent the token's one use.
    const Qanat__Principal *token = qn_keyring_lookup (fixture->keyring, token_key);
    assert_non_null (token);
    assert_int_equal (token->uses_left, 1);

    //  128 characters of letters, digits, '_', '.' and '-' are fine.
    long_name [128] = 0;
    long_name [0] = 'Z';
    long_name [1] = '_';
    long_name [2] = '.';
    long_name [3] = '-';
    long_name [4] = '9';
    char *error = NULL;
    char *text = qn_keyring_add_user (fixture->keyring, long_name, "user", &error);
    assert_non_null (text);
    free (text);
    assert_non_null (qn_keyring_user (fixture->keyring, long_name));
    assert_non_null (s_enrol (fixture, token_key, long_name, NULL));
    free (token_key);
}

static void
test_token_labels (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    Qanat__Label gpu = QANAT__LABEL__INIT, zone = QANAT__LABEL__INIT, other = QANAT__LABEL__INIT;
    gpu.key = (char *) "gpu";
    gpu.value = (char *) "a100";
    zone.key = (char *) "zone";
    zone.value = (char *) "eu";
    other.key = (char *) "zone";
    other.value = (char *) "us";
    Qanat__Label *granted [] = { &gpu, &zone };
    char *token_key = s_token (fixture, 3600, 3, granted, 2, NULL);

    //  No labels asked: the agent gets the token's.
    const Qanat__Principal *agent = s_enrol (fixture, token_key, "all", NULL);
    assert_non_null (agent);
    assert_int_equal (agent->n_labels, 2);

    //  A subset is granted; a label beyond the token's is refused.
    uint8_t raw [32];
    char z85 [QN_Z85_KEY_SIZE + 1];
    s_agent_key (raw, z85);
    Qanat__Label *subset [] = { &zone };
    char *error = NULL;
    agent = qn_keyring_enrol (fixture->keyring, token_key, "some", raw, 32, subset, 1, &error);
    assert_non_null (agent);
    assert_int_equal (agent->n_labels, 1);
    assert_string_equal (agent->labels [0]->value, "eu");

    s_agent_key (raw, z85);
    Qanat__Label *beyond [] = { &gpu, &other };
    assert_null (qn_keyring_enrol (fixture->keyring, token_key, "more", raw, 32, beyond, 2, &error));
    assert_non_null (strstr (error, "zone=us"));
    zstr_free (&error);
    assert_null (qn_keyring_lookup (fixture->keyring, z85));
    free (token_key);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup_teardown (test_first_start_keys, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_users, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_token_uses, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_token_expiry, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_revoke, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_administration, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_unknown_keys, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_hostile_names, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_token_labels, s_setup, s_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
