/*  qn_vault - secrets, encrypted at rest.  See qn_vault.h. */
#include <czmq.h>
#include <sodium.h>
#include <sys/stat.h>
#include "qn_vault.h"

#define SECRET_MAX  (64 * 1024)

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
    if (size > SECRET_MAX)
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

char *
qn_vault_expand (qn_vault_t *self, const char *text, zlistx_t *redact, char **error_p)
{
    const char *open = "${{";
    if (!strstr (text, open))
        return strdup (text);
    size_t size = strlen (text) + 1;
    char *result = (char *) malloc (size);
    size_t used = 0;
    const char *at = text;
    while (*at) {
        const char *start = strstr (at, open);
        if (!start) {
            size_t rest = strlen (at);
            memcpy (result + used, at, rest);
            used += rest;
            break;
        }
        memcpy (result + used, at, (size_t) (start - at));
        used += (size_t) (start - at);
        const char *close = strstr (start, "}}");
        if (!close) {
            *error_p = strdup ("'${{' without its closing '}}'");
            free (result);
            return NULL;
        }
        //  Trim "${{ secrets.NAME }}" down to NAME.
        const char *name = start + 3;
        while (*name == ' ')
            name++;
        const char *end = close;
        while (end > name && end [-1] == ' ')
            end--;
        if (strncmp (name, "secrets.", 8) != 0) {
            *error_p = zsys_sprintf ("unknown reference '%.*s' (only secrets.NAME here)",
                                     (int) (end - name), name);
            free (result);
            return NULL;
        }
        char *key = strndup (name + 8, (size_t) (end - name - 8));
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
        at = close + 2;
    }
    result [used] = 0;
    return result;
}
