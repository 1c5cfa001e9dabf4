/*  qn_keyring - principals, keys and the ZAP allow-list.  See qn_keyring.h. */
#include "qn_keyring.h"
#include "qn_log.h"
#include "qn_hash.h"
#include "qn_msg.h"
#include "qn_token.h"
#include <sys/stat.h>
#include <sodium.h>

#define TOKEN_TTL_DEFAULT_S  3600
#define NAME_MAX_LEN         128

struct _qn_keyring_t {
    qn_store_t *store;
    char *keys_dir;
    char *allowed_dir;
    char *admin_key_path;
    char *client_endpoint;
    char *agent_endpoint;
    zcert_t *cert;                      //  the coordinator's key pair
    zhashx_t *principals;               //  public key (Z85) -> Qanat__Principal
    zhashx_t *api_tokens;               //  sha256 hex of the token -> api_token_t
    zactor_t *auth;
};

//  An API token: its stored record and the principal it stands for
typedef struct {
    Qanat__ApiToken *record;
    Qanat__Principal *principal;
    char hash [65];                     //  its key in the store
} api_token_t;

static void
s_principal_destructor (void **item)
{
    if (*item) {
        protobuf_c_message_free_unpacked ((ProtobufCMessage *) *item, NULL);
        *item = NULL;
    }
}

static void
s_api_token_destructor (void **item)
{
    api_token_t *token = (api_token_t *) *item;
    if (token) {
        protobuf_c_message_free_unpacked (&token->record->base, NULL);
        protobuf_c_message_free_unpacked (&token->principal->base, NULL);
        free (token);
        *item = NULL;
    }
}

static bool
s_valid_name (const char *name)
{
    size_t len = name? strlen (name): 0;
    if (len == 0 || len > NAME_MAX_LEN)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!isalnum ((unsigned char) name [i]) && !strchr ("_.-", name [i]))
            return false;
    return true;
}

//  The allow-list file of a key: its name is the key in hex, because Z85
//  has characters ('/', '.') that a file name cannot carry safely.
static char *
s_allowed_path (qn_keyring_t *self, const char *public_key)
{
    uint8_t binary [32];
    if (strlen (public_key) != QN_Z85_KEY_SIZE || !zmq_z85_decode (binary, public_key))
        return NULL;
    char hex [65];
    for (int i = 0; i < 32; i++)
        snprintf (hex + 2 * i, 3, "%02x", binary [i]);
    return zsys_sprintf ("%s/%s.cert", self->allowed_dir, hex);
}

static bool
s_admitted (const Qanat__Principal *principal, int64_t now)
{
    if (principal->revoked)
        return false;
    if (streq (principal->kind, "token"))
        return principal->uses_left > 0 && principal->expires_us > now;
    return true;
}

//  Keeps the allow-list file of a principal in step with its state, and
//  has the ZAP handler read the list again after a change.  zauth's own
//  check looks only at the folder's time (in seconds), file count and
//  total size: a token used up and the agent it enrolled in the same
//  second, with names of the same length (t1234abcd, workspace), change
//  none of them, and the new agent was refused at every handshake.
static void
s_mirror (qn_keyring_t *self, const Qanat__Principal *principal)
{
    char *path = s_allowed_path (self, principal->public_key);
    if (!path)
        return;
    bool existed = zsys_file_exists (path);
    if (s_admitted (principal, qn_now_us ())) {
        if (!existed) {
            uint8_t public_key [32], no_secret [32] = {0};
            zmq_z85_decode (public_key, principal->public_key);
            zcert_t *cert = zcert_new_from (public_key, no_secret);
            if (cert) {
                zcert_set_meta (cert, "name", "%s", principal->name);
                zcert_set_meta (cert, "kind", "%s", principal->kind);
                zcert_save_public (cert, path);
                zcert_destroy (&cert);
            }
        }
    }
    else
        unlink (path);
    if (self->auth && existed != zsys_file_exists (path)) {
        zstr_sendx (self->auth, "CURVE", self->allowed_dir, NULL);
        zsock_wait (self->auth);
    }
    zstr_free (&path);
}

static Qanat__Principal *
s_principal_new (const char *kind, const char *name, const char *public_key)
{
    Qanat__Principal *principal = (Qanat__Principal *) malloc (sizeof (Qanat__Principal));
    qanat__principal__init (principal);
    principal->kind = strdup (kind);
    principal->name = strdup (name);
    principal->public_key = strdup (public_key);
    principal->role = strdup ("");
    principal->created_us = qn_now_us ();
    return principal;
}

static Qanat__Label **
s_copy_labels (Qanat__Label **labels, size_t count)
{
    Qanat__Label **copy = (Qanat__Label **) calloc (count + 1, sizeof (Qanat__Label *));
    for (size_t i = 0; i < count; i++) {
        copy [i] = (Qanat__Label *) malloc (sizeof (Qanat__Label));
        qanat__label__init (copy [i]);
        copy [i]->key = strdup (labels [i]->key);
        copy [i]->value = strdup (labels [i]->value);
    }
    return copy;
}

//  Stores and caches a principal (taking ownership), and mirrors it.
static int
s_keep (qn_keyring_t *self, Qanat__Principal *principal)
{
    if (qn_store_begin (self->store) || qn_store_put_principal (self->store, principal)) {
        s_principal_destructor ((void **) &principal);
        return -1;
    }
    zhashx_update (self->principals, principal->public_key, principal);
    s_mirror (self, principal);
    return 0;
}

//  Writes a key pair as a czmq certificate file, 0600.
static int
s_save_secret (zcert_t *cert, const char *path)
{
    mode_t old = umask (077);
    int rc = zcert_save_secret (cert, path);
    umask (old);
    if (rc == 0)
        chmod (path, 0600);
    return rc;
}

static zcert_t *
s_client_cert (qn_keyring_t *self, const char *name, const char *role)
{
    zcert_t *cert = zcert_new ();
    if (cert) {
        zcert_set_meta (cert, "name", "%s", name);
        zcert_set_meta (cert, "role", "%s", role);
        zcert_set_meta (cert, "coordinator-key", "%s", zcert_public_txt (self->cert));
        zcert_set_meta (cert, "endpoint", "%s", self->client_endpoint);
    }
    return cert;
}

static bool
s_has_admin (qn_keyring_t *self)
{
    for (Qanat__Principal *principal = (Qanat__Principal *) zhashx_first (self->principals);
         principal; principal = (Qanat__Principal *) zhashx_next (self->principals))
        if (streq (principal->kind, "user") && streq (principal->role, "admin") && !principal->revoked)
            return true;
    return false;
}

static int s_load_api_tokens (qn_keyring_t *self);

qn_keyring_t *
qn_keyring_new (const char *data_dir, qn_store_t *store, const char *client_endpoint,
                const char *agent_endpoint, char **error_p)
{
    qn_keyring_t *self = (qn_keyring_t *) zmalloc (sizeof (qn_keyring_t));
    self->store = store;
    self->keys_dir = zsys_sprintf ("%s/keys", data_dir);
    self->allowed_dir = zsys_sprintf ("%s/keys/allowed", data_dir);
    self->admin_key_path = zsys_sprintf ("%s/keys/admin.key", data_dir);
    self->client_endpoint = strdup (client_endpoint);
    self->agent_endpoint = strdup (agent_endpoint);
    self->principals = qn_hash_new ();
    zhashx_set_destructor (self->principals, s_principal_destructor);
    self->api_tokens = qn_hash_new ();
    zhashx_set_destructor (self->api_tokens, s_api_token_destructor);
    mkdir (self->keys_dir, 0700);
    mkdir (self->allowed_dir, 0700);
    chmod (self->keys_dir, 0700);

    char *path = zsys_sprintf ("%s/coordinator.key", self->keys_dir);
    self->cert = zsys_file_exists (path)? zcert_load (path): NULL;
    if (!self->cert) {
        if (zsys_file_exists (path)) {
            *error_p = zsys_sprintf ("cannot read the coordinator key %s", path);
            zstr_free (&path);
            qn_keyring_destroy (&self);
            return NULL;
        }
        self->cert = zcert_new ();
        zcert_set_meta (self->cert, "name", "qanatd");
        if (!self->cert || s_save_secret (self->cert, path)) {
            *error_p = zsys_sprintf ("cannot write the coordinator key %s", path);
            zstr_free (&path);
            qn_keyring_destroy (&self);
            return NULL;
        }
        qn_log (QN_LOG_INFO, "keyring", "created the coordinator key %s", path);
    }
    zstr_free (&path);
    path = zsys_sprintf ("%s/coordinator.pub", self->keys_dir);
    zcert_save_public (self->cert, path);
    zstr_free (&path);

    Qanat__Principal **principals = NULL;
    size_t count = 0;
    if (qn_store_list_principals (store, &principals, &count)) {
        *error_p = strdup (qn_store_error (store));
        qn_keyring_destroy (&self);
        return NULL;
    }
    //  The allow-list directory is rebuilt from the store, the truth.
    zdir_t *dir = zdir_new (self->allowed_dir, NULL);
    if (dir) {
        zdir_remove (dir, true);
        zdir_destroy (&dir);
    }
    mkdir (self->allowed_dir, 0700);
    for (size_t i = 0; i < count; i++) {
        zhashx_update (self->principals, principals [i]->public_key, principals [i]);
        s_mirror (self, principals [i]);
    }
    free (principals);
    if (s_load_api_tokens (self)) {
        *error_p = strdup (qn_store_error (store));
        qn_keyring_destroy (&self);
        return NULL;
    }

    if (!s_has_admin (self)) {
        zcert_t *admin = s_client_cert (self, "admin", "admin");
        if (!admin || s_save_secret (admin, self->admin_key_path)) {
            *error_p = zsys_sprintf ("cannot write the admin key %s", self->admin_key_path);
            zcert_destroy (&admin);
            qn_keyring_destroy (&self);
            return NULL;
        }
        Qanat__Principal *principal = s_principal_new ("user", "admin", zcert_public_txt (admin));
        free (principal->role);
        principal->role = strdup ("admin");
        zcert_destroy (&admin);
        if (s_keep (self, principal)) {
            *error_p = strdup (qn_store_error (store));
            qn_keyring_destroy (&self);
            return NULL;
        }
        qn_log (QN_LOG_INFO, "keyring", "created the admin client key %s", self->admin_key_path);
    }
    self->auth = zactor_new (zauth, NULL);
    if (!self->auth) {
        *error_p = strdup ("cannot start the ZAP handler (zauth)");
        qn_keyring_destroy (&self);
        return NULL;
    }
    zstr_sendx (self->auth, "CURVE", self->allowed_dir, NULL);
    zsock_wait (self->auth);
    return self;
}

void
qn_keyring_destroy (qn_keyring_t **self_p)
{
    assert (self_p);
    qn_keyring_t *self = *self_p;
    if (self) {
        zactor_destroy (&self->auth);
        zcert_destroy (&self->cert);
        zhashx_destroy (&self->principals);
        zhashx_destroy (&self->api_tokens);
        free (self->keys_dir);
        free (self->allowed_dir);
        free (self->admin_key_path);
        free (self->client_endpoint);
        free (self->agent_endpoint);
        free (self);
        *self_p = NULL;
    }
}

void
qn_keyring_secure (qn_keyring_t *self, zsock_t *sock)
{
    zcert_apply (self->cert, sock);
    zsock_set_curve_server (sock, 1);
    zsock_set_zap_domain (sock, "qanat");
    zsock_set_zap_enforce_domain (sock, 1);
}

const char *
qn_keyring_public_key (qn_keyring_t *self)
{
    return zcert_public_txt (self->cert);
}

const char *
qn_keyring_admin_key_path (qn_keyring_t *self)
{
    return self->admin_key_path;
}

const Qanat__Principal *
qn_keyring_lookup (qn_keyring_t *self, const char *public_key)
{
    if (!public_key)
        return NULL;
    Qanat__Principal *principal = (Qanat__Principal *) zhashx_lookup (self->principals, public_key);
    return principal && s_admitted (principal, qn_now_us ())? principal: NULL;
}

const Qanat__Principal *
qn_keyring_user (qn_keyring_t *self, const char *name)
{
    int64_t now = qn_now_us ();
    for (Qanat__Principal *principal = (Qanat__Principal *) zhashx_first (self->principals);
         principal; principal = (Qanat__Principal *) zhashx_next (self->principals))
        if (streq (principal->kind, "user") && streq (principal->name, name)
        &&  s_admitted (principal, now))
            return principal;
    return NULL;
}

char *
qn_keyring_create_token (qn_keyring_t *self, uint32_t ttl_s, uint32_t uses,
                         Qanat__Label **labels, size_t label_count, int64_t *expires_p,
                         char **id_p)
{
    zcert_t *key = zcert_new ();
    if (!key)
        return NULL;
    char *token = qn_token_format (zcert_public_txt (self->cert), zcert_secret_txt (key),
                                   self->agent_endpoint);
    char id [16];
    snprintf (id, sizeof id, "t%08x", (unsigned) randof (0x7fffffff));
    Qanat__Principal *principal = s_principal_new ("token", id, zcert_public_txt (key));
    zcert_destroy (&key);
    principal->expires_us = qn_now_us () + (int64_t) (ttl_s? ttl_s: TOKEN_TTL_DEFAULT_S) * 1000000;
    principal->uses_left = uses? uses: 1;
    principal->labels = s_copy_labels (labels, label_count);
    principal->n_labels = label_count;
    *expires_p = principal->expires_us;
    *id_p = strdup (id);
    if (!token || s_keep (self, principal)) {
        free (token);
        zstr_free (id_p);
        return NULL;
    }
    return token;
}

static bool
s_has_label (Qanat__Label **labels, size_t count, const Qanat__Label *label)
{
    for (size_t i = 0; i < count; i++)
        if (streq (labels [i]->key, label->key) && streq (labels [i]->value, label->value))
            return true;
    return false;
}

const Qanat__Principal *
qn_keyring_enrol (qn_keyring_t *self, const char *token_key, const char *name,
                  const uint8_t *public_key, size_t key_size, Qanat__Label **labels,
                  size_t label_count, char **error_p)
{
    Qanat__Principal *token = (Qanat__Principal *) qn_keyring_lookup (self, token_key);
    if (!token || !streq (token->kind, "token")) {
        *error_p = strdup ("enrolment needs a valid join token");
        return NULL;
    }
    if (!s_valid_name (name)) {
        *error_p = strdup ("the agent name must be 1 to 128 letters, digits, '_', '.' or '-'");
        return NULL;
    }
    if (key_size != 32) {
        *error_p = strdup ("the agent's public key must be 32 bytes");
        return NULL;
    }
    char z85 [QN_Z85_KEY_SIZE + 1];
    zmq_z85_encode (z85, public_key, 32);
    if (zhashx_lookup (self->principals, z85)) {
        *error_p = strdup ("this key is already known");
        return NULL;
    }
    for (Qanat__Principal *other = (Qanat__Principal *) zhashx_first (self->principals); other;
         other = (Qanat__Principal *) zhashx_next (self->principals))
        if (streq (other->kind, "agent") && streq (other->name, name) && !other->revoked) {
            *error_p = zsys_sprintf ("an agent named '%s' is already enrolled: revoke it first "
                                     "(qanat agent revoke %s)", name, name);
            return NULL;
        }
    //  The token's labels bound what the agent may claim.
    if (token->n_labels)
        for (size_t i = 0; i < label_count; i++)
            if (!s_has_label (token->labels, token->n_labels, labels [i])) {
                *error_p = zsys_sprintf ("label %s=%s is not granted by the join token",
                                         labels [i]->key, labels [i]->value);
                return NULL;
            }
    Qanat__Principal *agent = s_principal_new ("agent", name, z85);
    if (token->n_labels && label_count == 0) {
        agent->labels = s_copy_labels (token->labels, token->n_labels);
        agent->n_labels = token->n_labels;
    }
    else {                              //  what it asked for: checked above to be within the token's
        agent->labels = s_copy_labels (labels, label_count);
        agent->n_labels = label_count;
    }
    token->uses_left--;
    if (qn_store_begin (self->store) || qn_store_put_principal (self->store, token)) {
        token->uses_left++;
        s_principal_destructor ((void **) &agent);
        *error_p = strdup (qn_store_error (self->store));
        return NULL;
    }
    s_mirror (self, token);
    if (s_keep (self, agent)) {
        *error_p = strdup (qn_store_error (self->store));
        return NULL;
    }
    return (const Qanat__Principal *) zhashx_lookup (self->principals, z85);
}

char *
qn_keyring_add_user (qn_keyring_t *self, const char *name, const char *role, char **error_p)
{
    if (!s_valid_name (name)) {
        *error_p = strdup ("the user name must be 1 to 128 letters, digits, '_', '.' or '-'");
        return NULL;
    }
    if (!streq (role, "admin") && !streq (role, "user")) {
        *error_p = zsys_sprintf ("unknown role '%s' (use admin or user)", role);
        return NULL;
    }
    for (Qanat__Principal *other = (Qanat__Principal *) zhashx_first (self->principals); other;
         other = (Qanat__Principal *) zhashx_next (self->principals))
        if (streq (other->kind, "user") && streq (other->name, name) && !other->revoked) {
            *error_p = zsys_sprintf ("a user named '%s' exists already", name);
            return NULL;
        }
    zcert_t *cert = s_client_cert (self, name, role);
    //  czmq writes certificates to files only: go through a private one.
    char *path = zsys_sprintf ("%s/.new-user-XXXXXX", self->keys_dir);
    int fd = mkstemp (path);
    char *text = NULL;
    if (cert && fd != -1) {
        close (fd);
        if (s_save_secret (cert, path) == 0) {
            zfile_t *file = zfile_new (NULL, path);
            if (file && zfile_input (file) == 0) {
                zchunk_t *chunk = zfile_read (file, zfile_cursize (file), 0);
                if (chunk) {
                    text = (char *) zmalloc (zchunk_size (chunk) + 1);
                    memcpy (text, zchunk_data (chunk), zchunk_size (chunk));
                    zchunk_destroy (&chunk);
                }
            }
            zfile_destroy (&file);
        }
        unlink (path);
    }
    zstr_free (&path);
    if (!text) {
        zcert_destroy (&cert);
        *error_p = strdup ("cannot make a key for the user");
        return NULL;
    }
    Qanat__Principal *principal = s_principal_new ("user", name, zcert_public_txt (cert));
    free (principal->role);
    principal->role = strdup (role);
    zcert_destroy (&cert);
    if (s_keep (self, principal)) {
        free (text);
        *error_p = strdup (qn_store_error (self->store));
        return NULL;
    }
    return text;
}

int
qn_keyring_revoke_agent (qn_keyring_t *self, const char *name)
{
    int revoked = 0;
    for (Qanat__Principal *principal = (Qanat__Principal *) zhashx_first (self->principals);
         principal; principal = (Qanat__Principal *) zhashx_next (self->principals))
        if (streq (principal->kind, "agent") && streq (principal->name, name) && !principal->revoked) {
            principal->revoked = true;
            if (qn_store_begin (self->store) == 0)
                qn_store_put_principal (self->store, principal);
            s_mirror (self, principal);
            revoked++;
        }
    return revoked? 0: -1;
}

void
qn_keyring_expire (qn_keyring_t *self)
{
    int64_t now = qn_now_us ();
    for (Qanat__Principal *principal = (Qanat__Principal *) zhashx_first (self->principals);
         principal; principal = (Qanat__Principal *) zhashx_next (self->principals))
        if (streq (principal->kind, "token") && principal->expires_us <= now) {
            char *path = s_allowed_path (self, principal->public_key);
            if (path && zsys_file_exists (path))
                unlink (path);
            zstr_free (&path);
        }
}

//  ---------------------------------------------------------------------
//  Administration

//  Listings go by name, then by creation (a name may come back after a
//  revocation)
static int
s_by_name (const char *name, int64_t created_us, const char *other_name, int64_t other_created_us)
{
    int order = strcmp (name, other_name);
    if (order == 0)
        order = created_us < other_created_us? -1: created_us > other_created_us;
    return order;
}

static int
s_compare_principals (const void *a, const void *b)
{
    const Qanat__Principal *one = *(const Qanat__Principal *const *) a;
    const Qanat__Principal *other = *(const Qanat__Principal *const *) b;
    return s_by_name (one->name, one->created_us, other->name, other->created_us);
}

const Qanat__Principal **
qn_keyring_list (qn_keyring_t *self, const char *kind, size_t *count_p)
{
    size_t count = zhashx_size (self->principals);
    const Qanat__Principal **list = (const Qanat__Principal **) calloc (count + 1,
                                                                       sizeof (void *));
    size_t listed = 0;
    for (Qanat__Principal *principal = (Qanat__Principal *) zhashx_first (self->principals);
         principal && list; principal = (Qanat__Principal *) zhashx_next (self->principals))
        if (streq (principal->kind, kind))
            list [listed++] = principal;
    if (list)
        qsort (list, listed, sizeof (void *), s_compare_principals);
    *count_p = list? listed: 0;
    return list;
}

//  The live principal of kind named name, or NULL
static Qanat__Principal *
s_live_named (qn_keyring_t *self, const char *kind, const char *name)
{
    for (Qanat__Principal *principal = (Qanat__Principal *) zhashx_first (self->principals);
         principal; principal = (Qanat__Principal *) zhashx_next (self->principals))
        if (streq (principal->kind, kind) && streq (principal->name, name) && !principal->revoked)
            return principal;
    return NULL;
}

//  Writes a changed principal and mirrors it; -1 when the store failed
static int
s_rewrite (qn_keyring_t *self, Qanat__Principal *principal)
{
    if (qn_store_begin (self->store) || qn_store_put_principal (self->store, principal))
        return -1;
    s_mirror (self, principal);
    return 0;
}

const Qanat__Principal *
qn_keyring_revoke_user (qn_keyring_t *self, const char *name, qn_keyring_change_t *failure_p,
                        char **error_p)
{
    Qanat__Principal *user = name? s_live_named (self, "user", name): NULL;
    if (!user) {
        *failure_p = QN_KEYRING_NOT_FOUND;
        *error_p = zsys_sprintf ("no user named '%s' (qanat user list shows them)",
                                 name? name: "");
        return NULL;
    }
    user->revoked = true;
    //  Somebody must be left to undo a mistake
    if (streq (user->role, "admin") && !s_has_admin (self)) {
        user->revoked = false;
        *failure_p = QN_KEYRING_REFUSED;
        *error_p = zsys_sprintf ("'%s' is the last admin: add another admin first "
                                 "(qanat user add NAME --role admin)", name);
        return NULL;
    }
    if (s_rewrite (self, user)) {
        user->revoked = false;
        *failure_p = QN_KEYRING_FAILED;
        *error_p = strdup (qn_store_error (self->store));
        return NULL;
    }
    return user;
}

const Qanat__Principal *
qn_keyring_revoke_token (qn_keyring_t *self, const char *id)
{
    for (Qanat__Principal *token = (Qanat__Principal *) zhashx_first (self->principals); token;
         token = (Qanat__Principal *) zhashx_next (self->principals))
        if (id && streq (token->kind, "token") && streq (token->name, id)) {
            if (!token->revoked) {
                token->revoked = true;
                if (s_rewrite (self, token))
                    qn_log (QN_LOG_ERROR, "keyring", "cannot store the revocation of token %s: %s",
                            id, qn_store_error (self->store));
            }
            return token;
        }
    return NULL;
}

const Qanat__Principal *
qn_keyring_agent (qn_keyring_t *self, const char *name)
{
    return name? s_live_named (self, "agent", name): NULL;
}

int
qn_keyring_forget_agent (qn_keyring_t *self, const char *name)
{
    //  Keys first gathered: the table cannot change under its iterator
    zlistx_t *keys = zlistx_new ();
    for (Qanat__Principal *principal = (Qanat__Principal *) zhashx_first (self->principals);
         principal; principal = (Qanat__Principal *) zhashx_next (self->principals))
        if (streq (principal->kind, "agent") && streq (principal->name, name))
            zlistx_add_end (keys, principal->public_key);
    int forgotten = 0;
    for (const char *key = (const char *) zlistx_first (keys); key && forgotten >= 0;
         key = (const char *) zlistx_next (keys)) {
        if (qn_store_begin (self->store) || qn_store_delete_principal (self->store, key))
            forgotten = -1;
        else {
            char *path = s_allowed_path (self, key);
            if (path)
                unlink (path);
            zstr_free (&path);
            zhashx_delete (self->principals, key);
            forgotten++;
        }
    }
    zlistx_destroy (&keys);
    return forgotten;
}

//  A label an admin may set: the key as a name, the value printable, at
//  most 256 bytes, without the ',' that separates labels on a command line
static bool
s_valid_label (const Qanat__Label *label)
{
    if (!label->key || !s_valid_name (label->key) || !label->value || strlen (label->value) > 256)
        return false;
    for (const char *c = label->value; *c; c++)
        if ((unsigned char) *c < 0x20 || *c == 0x7f || *c == ',')
            return false;
    return true;
}

//  A deep copy (through its wire form), or NULL
static Qanat__Principal *
s_principal_copy (const Qanat__Principal *principal)
{
    size_t size = qanat__principal__get_packed_size (principal);
    uint8_t *buffer = (uint8_t *) malloc (size? size: 1);
    Qanat__Principal *copy = NULL;
    if (buffer) {
        qanat__principal__pack (principal, buffer);
        copy = qanat__principal__unpack (NULL, size, buffer);
        free (buffer);
    }
    return copy;
}

static void
s_label_remove (Qanat__Principal *agent, const char *key)
{
    for (size_t i = 0; i < agent->n_labels; i++)
        if (streq (agent->labels [i]->key, key)) {
            protobuf_c_message_free_unpacked (&agent->labels [i]->base, NULL);
            memmove (agent->labels + i, agent->labels + i + 1,
                     (agent->n_labels - i - 1) * sizeof (void *));
            agent->n_labels--;
            return;
        }
}

const Qanat__Principal *
qn_keyring_label_agent (qn_keyring_t *self, const char *name, Qanat__Label **set,
                        size_t set_count, char **remove, size_t remove_count,
                        qn_keyring_change_t *failure_p, char **error_p)
{
    Qanat__Principal *agent = name? s_live_named (self, "agent", name): NULL;
    if (!agent) {
        *failure_p = QN_KEYRING_NOT_FOUND;
        *error_p = zsys_sprintf ("no enrolled agent named '%s'", name? name: "");
        return NULL;
    }
    for (size_t i = 0; i < set_count; i++)
        if (!s_valid_label (set [i])) {
            *failure_p = QN_KEYRING_BAD;
            *error_p = zsys_sprintf ("label '%s=%s': the key is 1 to 128 letters, digits, '_', "
                                     "'.' or '-', the value at most 256 printable characters "
                                     "without ','", set [i]->key? set [i]->key: "",
                                     set [i]->value? set [i]->value: "");
            return NULL;
        }
    if (agent->n_labels + set_count > 256) {
        *failure_p = QN_KEYRING_BAD;
        *error_p = strdup ("an agent has at most 256 labels");
        return NULL;
    }
    //  The new set is made on a copy: a failed write leaves the old one
    Qanat__Principal *copy = s_principal_copy (agent);
    if (!copy) {
        *failure_p = QN_KEYRING_FAILED;
        *error_p = strdup ("out of memory");
        return NULL;
    }
    for (size_t i = 0; i < remove_count; i++)
        s_label_remove (copy, remove [i]);
    for (size_t i = 0; i < set_count; i++) {
        s_label_remove (copy, set [i]->key);
        Qanat__Label **grown = (Qanat__Label **) realloc (copy->labels,
                                                          (copy->n_labels + 1) * sizeof (void *));
        if (grown) {
            copy->labels = grown;
            Qanat__Label **one = s_copy_labels (set + i, 1);
            copy->labels [copy->n_labels++] = one [0];
            free (one);
        }
    }
    if (qn_store_begin (self->store) || qn_store_put_principal (self->store, copy)) {
        s_principal_destructor ((void **) &copy);
        *failure_p = QN_KEYRING_FAILED;
        *error_p = strdup (qn_store_error (self->store));
        return NULL;
    }
    zhashx_update (self->principals, copy->public_key, copy);
    return copy;
}

//  ---------------------------------------------------------------------
//  API tokens

static bool
s_valid_api_name (const char *name)
{
    return s_valid_name (name) && strlen (name) <= QN_KEYRING_API_NAME_MAX;
}

//  The principal an API token's record stands for.
static Qanat__Principal *
s_api_principal (const Qanat__ApiToken *record)
{
    Qanat__Principal *principal = s_principal_new ("apitoken", record->user, "");
    free (principal->role);
    principal->role = strdup (record->role);
    principal->expires_us = record->expires_us;
    principal->revoked = record->revoked;
    principal->created_us = record->created_us;
    return principal;
}

static void
s_api_token_add (qn_keyring_t *self, const char *hash, Qanat__ApiToken *record)
{
    api_token_t *token = (api_token_t *) zmalloc (sizeof (api_token_t));
    token->record = record;
    token->principal = s_api_principal (record);
    snprintf (token->hash, sizeof token->hash, "%s", hash);
    zhashx_update (self->api_tokens, hash, token);
}

static int
s_load_api_tokens (qn_keyring_t *self)
{
    char **hashes = NULL;
    Qanat__ApiToken **records = NULL;
    size_t count = 0;
    if (qn_store_list_api_tokens (self->store, &hashes, &records, &count))
        return -1;
    for (size_t i = 0; i < count; i++) {
        s_api_token_add (self, hashes [i], records [i]);
        free (hashes [i]);
    }
    free (hashes);
    free (records);
    return 0;
}

//  The SHA-256 of a token's text, in hex (65 bytes with the '\0').
static void
s_token_hash (const char *text, char *hex)
{
    uint8_t digest [crypto_hash_sha256_BYTES];
    crypto_hash_sha256 (digest, (const unsigned char *) text, strlen (text));
    sodium_bin2hex (hex, 65, digest, sizeof digest);
}

static api_token_t *
s_api_token_named (qn_keyring_t *self, const char *name, bool live_only)
{
    api_token_t *found = NULL;
    for (api_token_t *token = (api_token_t *) zhashx_first (self->api_tokens); token;
         token = (api_token_t *) zhashx_next (self->api_tokens)) {
        if (!streq (token->record->name, name) || (live_only && token->record->revoked))
            continue;
        //  A name may have been used again after a revocation: the live
        //  one, else the newest
        if (!found || (found->record->revoked && !token->record->revoked)
        ||  (found->record->revoked == token->record->revoked
             && token->record->created_us > found->record->created_us))
            found = token;
    }
    return found;
}

char *
qn_keyring_create_api_token (qn_keyring_t *self, const char *name, const char *role,
                             const char *user, uint32_t ttl_s, const Qanat__ApiToken **record_p,
                             qn_keyring_failure_t *failure_p, char **error_p)
{
    *failure_p = QN_KEYRING_INVALID;
    if (!user || !*user)
        user = name;
    if (!s_valid_api_name (name)) {
        *error_p = strdup ("an API token name is 1 to 64 letters, digits, '_', '.' or '-'");
        return NULL;
    }
    if (!s_valid_api_name (user)) {
        *error_p = strdup ("an API token's user is 1 to 64 letters, digits, '_', '.' or '-'");
        return NULL;
    }
    if (!role || (!streq (role, "admin") && !streq (role, "user"))) {
        *error_p = zsys_sprintf ("unknown role '%s' (use admin or user)", role? role: "");
        return NULL;
    }
    if (s_api_token_named (self, name, true)) {
        *failure_p = QN_KEYRING_EXISTS;
        *error_p = zsys_sprintf ("an API token named '%s' exists already: revoke it first "
                                 "(qanat apitoken revoke %s)", name, name);
        return NULL;
    }
    uint8_t secret [32];
    randombytes_buf (secret, sizeof secret);
    size_t size = sodium_base64_ENCODED_LEN (sizeof secret,
                                             sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    char *text = (char *) zmalloc (4 + size);
    memcpy (text, "qat_", 4);
    sodium_bin2base64 (text + 4, size, secret, sizeof secret,
                       sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero (secret, sizeof secret);
    char hash [65];
    s_token_hash (text, hash);

    Qanat__ApiToken *record = (Qanat__ApiToken *) malloc (sizeof (Qanat__ApiToken));
    qanat__api_token__init (record);
    record->name = strdup (name);
    record->role = strdup (role);
    record->user = strdup (user);
    record->created_us = qn_now_us ();
    record->expires_us = ttl_s? record->created_us + (int64_t) ttl_s * 1000000: 0;
    if (qn_store_begin (self->store) || qn_store_put_api_token (self->store, hash, record)) {
        *failure_p = QN_KEYRING_STORE;
        *error_p = strdup (qn_store_error (self->store));
        protobuf_c_message_free_unpacked (&record->base, NULL);
        sodium_memzero (text, strlen (text));
        free (text);
        return NULL;
    }
    s_api_token_add (self, hash, record);
    *record_p = record;
    return text;
}

const Qanat__ApiToken *
qn_keyring_revoke_api_token (qn_keyring_t *self, const char *name)
{
    api_token_t *token = name? s_api_token_named (self, name, false): NULL;
    if (!token)
        return NULL;
    if (!token->record->revoked) {
        token->record->revoked = true;
        token->principal->revoked = true;
        if (qn_store_begin (self->store) == 0)
            qn_store_put_api_token (self->store, token->hash, token->record);
    }
    return token->record;
}

static int
s_compare_names (const void *a, const void *b)
{
    const Qanat__ApiToken *one = *(const Qanat__ApiToken *const *) a;
    const Qanat__ApiToken *other = *(const Qanat__ApiToken *const *) b;
    return s_by_name (one->name, one->created_us, other->name, other->created_us);
}

const Qanat__ApiToken **
qn_keyring_api_tokens (qn_keyring_t *self, size_t *count_p)
{
    size_t count = zhashx_size (self->api_tokens);
    const Qanat__ApiToken **records = (const Qanat__ApiToken **) calloc (count + 1,
                                                                        sizeof (void *));
    size_t listed = 0;
    for (api_token_t *token = (api_token_t *) zhashx_first (self->api_tokens);
         token && records; token = (api_token_t *) zhashx_next (self->api_tokens))
        records [listed++] = token->record;
    if (records)
        qsort (records, listed, sizeof (void *), s_compare_names);
    *count_p = records? listed: 0;
    return records;
}

const Qanat__Principal *
qn_keyring_lookup_token (qn_keyring_t *self, const char *token_text)
{
    //  Only what could be one of ours is hashed
    if (!token_text || strncmp (token_text, "qat_", 4) != 0 || strlen (token_text) > 256)
        return NULL;
    char hash [65];
    s_token_hash (token_text, hash);
    api_token_t *token = (api_token_t *) zhashx_lookup (self->api_tokens, hash);
    if (!token || token->record->revoked)
        return NULL;
    if (token->record->expires_us && token->record->expires_us <= qn_now_us ())
        return NULL;
    return token->principal;
}
