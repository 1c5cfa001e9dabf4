/*  qn_vault - secrets, encrypted at rest.  See qn_vault.h. */
#include <czmq.h>
#include <sodium.h>
#include <sys/stat.h>
#include "qn_vault.h"


struct _qn_vault_t {
    qn_store_t *store;
    uint8_t key [crypto_secretbox_KEYBYTES];
};

qn_vault_t *
qn_vault_new (const char *data_dir, qn_store_t *store, char **error_p)
{
    if (sodium_init () < 0) {
        *error_p = strdup ("cannot initialise libsodium");
        return NULL;
    }
    qn_vault_t *self = (qn_vault_t *) zmalloc (sizeof (qn_vault_t));
    self->store = store;
    char *dir = zsys_sprintf ("%s/keys", data_dir);
    mkdir (dir, 0700);
    char *path = zsys_sprintf ("%s/secrets.key", dir);
    zstr_free (&dir);
    FILE *file = fopen (path, "rb");
    if (file) {
        size_t got = fread (self->key, 1, sizeof self->key, file);
        fclose (file);
        if (got != sizeof self->key) {
            *error_p = zsys_sprintf ("%s is damaged: expected %zu bytes", path, sizeof self->key);
            zstr_free (&path);
            qn_vault_destroy (&self);
            return NULL;
        }
    }
    else {
        crypto_secretbox_keygen (self->key);
        int fd = open (path, O_WRONLY | O_CREAT | O_EXCL, 0600);
        if (fd == -1 || write (fd, self->key, sizeof self->key) != (ssize_t) sizeof self->key) {
            *error_p = zsys_sprintf ("cannot write %s: %s", path, strerror (errno));
            if (fd != -1)
                close (fd);
            zstr_free (&path);
            qn_vault_destroy (&self);
            return NULL;
        }
        fsync (fd);
        close (fd);
    }
    zstr_free (&path);
    return self;
}

void
qn_vault_destroy (qn_vault_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        sodium_memzero ((*self_p)->key, sizeof (*self_p)->key);
        free (*self_p);
        *self_p = NULL;
    }
}

int
qn_vault_set (qn_vault_t *self, const char *name, const void *value, size_t size)
{
    if (size > QN_VAULT_SECRET_MAX)
        return -1;
    size_t sealed_size = crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + size;
    uint8_t *sealed = (uint8_t *) malloc (sealed_size);
    if (!sealed)
        return -1;
    randombytes_buf (sealed, crypto_secretbox_NONCEBYTES);
    crypto_secretbox_easy (sealed + crypto_secretbox_NONCEBYTES, (const uint8_t *) value, size,
                           sealed, self->key);
    int rc = qn_store_begin (self->store) || qn_store_put_secret (self->store, name, sealed, sealed_size);
    free (sealed);
    return rc? -1: 0;
}

char *
qn_vault_get (qn_vault_t *self, const char *name)
{
    void *sealed = NULL;
    size_t size = 0;
    if (qn_store_get_secret (self->store, name, &sealed, &size) != 1)
        return NULL;
    char *value = NULL;
    if (size >= crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES) {
        size_t clear_size = size - crypto_secretbox_NONCEBYTES - crypto_secretbox_MACBYTES;
        value = (char *) malloc (clear_size + 1);
        if (value && crypto_secretbox_open_easy ((uint8_t *) value,
                (const uint8_t *) sealed + crypto_secretbox_NONCEBYTES,
                size - crypto_secretbox_NONCEBYTES, (const uint8_t *) sealed, self->key) == 0)
            value [clear_size] = 0;
        else {
            free (value);
            value = NULL;
        }
    }
    free (sealed);
    return value;
}

//  Finds the first ${{ ... }} in text: 1 with *start_p, *after_p (past
//  the '}}') and *name_p (malloc'd NAME of secrets.NAME), 0 when there is
//  none, -1 with *error_p when it is malformed.
static int
s_reference (const char *text, const char **start_p, const char **after_p, char **name_p,
             char **error_p)
{
    const char *start = strstr (text, "${{");
    if (!start)
        return 0;
    const char *close = strstr (start, "}}");
    if (!close) {
        *error_p = strdup ("'${{' without its closing '}}'");
        return -1;
    }
    //  Trim "${{ secrets.NAME }}" down to NAME.
    const char *name = start + 3;
    while (*name == ' ')
        name++;
    const char *end = close;
    while (end > name && end [-1] == ' ')
        end--;
    if (end - name < 8 || strncmp (name, "secrets.", 8) != 0) {
        *error_p = zsys_sprintf ("unknown reference '%.*s' (only secrets.NAME here)",
                                 (int) (end - name), name);
        return -1;
    }
    *name_p = strndup (name + 8, (size_t) (end - name - 8));
    *start_p = start;
    *after_p = close + 2;
    return 1;
}

char *
qn_vault_expand (qn_vault_t *self, const char *text, zlistx_t *redact, char **error_p)
{
    size_t size = strlen (text) + 1;
    char *result = (char *) malloc (size);
    size_t used = 0;
    const char *at = text, *start, *after;
    char *key = NULL;
    int found;
    while ((found = s_reference (at, &start, &after, &key, error_p)) == 1) {
        memcpy (result + used, at, (size_t) (start - at));
        used += (size_t) (start - at);
        char *value = qn_vault_get (self, key);
        if (!value) {
            *error_p = zsys_sprintf ("secret '%s' is not set (qanat secret set %s)", key, key);
            free (key);
            free (result);
            return NULL;
        }
        free (key);
        size_t value_len = strlen (value);
        size += value_len;
        result = (char *) realloc (result, size);
        memcpy (result + used, value, value_len);
        used += value_len;
        if (value_len)
            zlistx_add_end (redact, value);
        free (value);
        at = after;
    }
    if (found == -1) {
        free (result);
        return NULL;
    }
    size_t rest = strlen (at);
    memcpy (result + used, at, rest);
    result [used + rest] = 0;
    return result;
}

int
qn_vault_references (const char *text, zlistx_t *names, char **error_p)
{
    const char *start, *after;
    char *name = NULL;
    int found;
    while ((found = s_reference (text, &start, &after, &name, error_p)) == 1) {
        zlistx_add_end (names, name);
        free (name);
        text = after;
    }
    return found;
}

//  ---------------------------------------------------------------------
//  Access lists

#define ACCESS_MAX  64

static bool
s_valid_name (const char *name)
{
    size_t len = strlen (name);
    if (len == 0 || len > 128)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!isalnum ((unsigned char) name [i]) && !strchr ("_.-", name [i]))
            return false;
    return true;
}

//  Labels keep to the alphabet agents are granted them in (key=value,
//  no commas).
static bool
s_valid_label (const char *text)
{
    if (!text || !*text || strlen (text) > 256)
        return false;
    for (const char *c = text; *c; c++)
        if (!isgraph ((unsigned char) *c) || *c == ',' || *c == '=')
            return false;
    return true;
}

//  Why an entry is not one, or NULL.  Roles are the keyring's two: a
//  misspelt role would otherwise grant nothing without a word.
static char *
s_entry_invalid (const char *entry)
{
    const char *colon = strchr (entry, ':');
    const char *rest = colon? colon + 1: "";
    bool user = colon && !strncmp (entry, "user:", 5);
    bool role = colon && !strncmp (entry, "role:", 5);
    bool workflow = colon && !strncmp (entry, "workflow:", 9);
    if (!user && !role && !workflow)
        return zsys_sprintf ("access list: '%s' is not user:NAME, role:ROLE or workflow:NAME",
                             entry);
    if (role && !streq (rest, "admin") && !streq (rest, "user"))
        return zsys_sprintf ("access list: '%s': the roles are admin and user", entry);
    //  The owners of the runs the scheduler starts (docs/schedules.md)
    if (user && (streq (rest, "@schedule") || streq (rest, "@trigger")))
        return NULL;
    if (!s_valid_name (rest))
        return zsys_sprintf ("access list: '%s': a name is 1 to 128 letters, digits, "
                             "'_', '.' or '-'", entry);
    return NULL;
}

static bool
s_is_principal (const char *entry)
{
    return !strncmp (entry, "user:", 5) || !strncmp (entry, "role:", 5);
}

int
qn_vault_set_access (qn_vault_t *self, const char *name, const Qanat__SecretAccess *access,
                     char **error_p)
{
    if (access->n_allow > ACCESS_MAX || access->n_agents > ACCESS_MAX) {
        *error_p = zsys_sprintf ("access list: at most %d entries and %d agent labels",
                                 ACCESS_MAX, ACCESS_MAX);
        return -1;
    }
    bool principal = false;
    for (size_t i = 0; i < access->n_allow; i++) {
        if ((*error_p = s_entry_invalid (access->allow [i])))
            return -1;
        principal |= s_is_principal (access->allow [i]);
    }
    for (size_t i = 0; i < access->n_agents; i++)
        if (!s_valid_label (access->agents [i]->key) || !s_valid_label (access->agents [i]->value)) {
            *error_p = strdup ("access list: agent labels are KEY=VALUE, without spaces or commas");
            return -1;
        }
    //  Without a principal nobody could use it: the default stands.
    Qanat__SecretAccess stored = *access;
    char **allow = (char **) calloc (access->n_allow + 1, sizeof (char *));
    if (!allow) {
        *error_p = strdup ("out of memory");
        return -1;
    }
    size_t count = 0;
    if (!principal)
        allow [count++] = (char *) "role:admin";
    for (size_t i = 0; i < access->n_allow; i++)
        allow [count++] = access->allow [i];
    stored.allow = allow;
    stored.n_allow = count;
    int rc = qn_store_begin (self->store) || qn_store_put_secret_access (self->store, name, &stored);
    free (allow);
    if (rc)
        *error_p = strdup (qn_store_error (self->store));
    return rc? -1: 0;
}

Qanat__SecretAccess *
qn_vault_access (qn_vault_t *self, const char *name)
{
    Qanat__SecretAccess *access = NULL;
    int found = qn_store_get_secret_access (self->store, name, &access);
    if (found)
        return found == 1? access: NULL;
    //  Stored before access lists, or never given one
    access = (Qanat__SecretAccess *) malloc (sizeof (Qanat__SecretAccess));
    char **allow = (char **) malloc (sizeof (char *));
    char *entry = strdup ("role:admin");
    if (!access || !allow || !entry) {
        free (access);
        free (allow);
        free (entry);
        return NULL;
    }
    qanat__secret_access__init (access);
    allow [0] = entry;
    access->allow = allow;
    access->n_allow = 1;
    return access;
}

//  "user:eve, workflow:ml" (malloc'd)
static char *
s_allow_text (const Qanat__SecretAccess *access)
{
    size_t size = 1;
    for (size_t i = 0; i < access->n_allow; i++)
        size += strlen (access->allow [i]) + 2;
    char *text = (char *) zmalloc (size);
    for (size_t i = 0; i < access->n_allow; i++) {
        if (i)
            strcat (text, ", ");
        strcat (text, access->allow [i]);
    }
    return text;
}

static bool
s_has_label (const qn_vault_use_t *use, const Qanat__Label *label)
{
    for (size_t i = 0; i < use->label_count; i++)
        if (streq (use->labels [i].key, label->key) && streq (use->labels [i].value, label->value))
            return true;
    return false;
}

static char *
s_access_refusal (const Qanat__SecretAccess *access, const char *name, const qn_vault_use_t *use)
{
    bool principal = false, scoped = false, in_scope = false;
    for (size_t i = 0; i < access->n_allow; i++) {
        const char *entry = access->allow [i];
        if (!strncmp (entry, "user:", 5))
            principal |= streq (entry + 5, use->user);
        else
        if (!strncmp (entry, "role:", 5))
            principal |= use->role && streq (entry + 5, use->role);
        else
        if (!strncmp (entry, "workflow:", 9)) {
            scoped = true;
            in_scope |= streq (entry + 9, use->workflow);
        }
    }
    char *reason = NULL;
    if (!principal || (scoped && !in_scope)) {
        char *allowed = s_allow_text (access);
        reason = !principal && !use->role
               ? zsys_sprintf ("secret %s may not be used by user %s: not an admitted user now "
                               "(allowed: %s)", name, use->user, allowed)
               : !principal
               ? zsys_sprintf ("secret %s may not be used by user %s (allowed: %s)",
                               name, use->user, allowed)
               : zsys_sprintf ("secret %s may not be used by workflow %s (allowed: %s)",
                               name, use->workflow, allowed);
        free (allowed);
        return reason;
    }
    for (size_t i = 0; i < access->n_agents; i++)
        if (!s_has_label (use, access->agents [i])) {
            size_t size = 1;
            for (size_t l = 0; l < access->n_agents; l++)
                size += strlen (access->agents [l]->key) + strlen (access->agents [l]->value) + 2;
            char *labels = (char *) zmalloc (size);
            for (size_t l = 0; l < access->n_agents; l++)
                sprintf (labels + strlen (labels), "%s%s=%s", l? ",": "",
                         access->agents [l]->key, access->agents [l]->value);
            reason = zsys_sprintf ("secret %s is only given to agents labelled %s: %s %s=%s",
                                   name, labels, use->labels_of, access->agents [i]->key,
                                   access->agents [i]->value);
            free (labels);
            return reason;
        }
    return NULL;
}

char *
qn_vault_refusal (qn_vault_t *self, const char *name, const qn_vault_use_t *use)
{
    Qanat__SecretAccess *access = qn_vault_access (self, name);
    if (!access)
        return zsys_sprintf ("cannot read the access list of secret %s", name);
    char *reason = s_access_refusal (access, name, use);
    protobuf_c_message_free_unpacked (&access->base, NULL);
    return reason;
}
