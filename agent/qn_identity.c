/*  qn_identity - the agent's identity: its key pair and what enrolment
    granted.  See qn_identity.h.
*/
#include "qn_identity.h"
#include "qn_log.h"
#include "qn_token.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct _qn_identity_t {
    zcert_t *cert;
    char *coordinator_key;
    char *endpoint;
    char *name;
    char **label_keys;
    char **label_values;
    size_t label_count;
};

qn_identity_t *
qn_identity_new (const char *coordinator_key, const char *endpoint)
{
    assert (coordinator_key);
    assert (endpoint);
    qn_identity_t *self = (qn_identity_t *) calloc (1, sizeof (*self));
    if (self) {
        self->cert = zcert_new ();
        self->coordinator_key = strdup (coordinator_key);
        self->endpoint = strdup (endpoint);
        if (!self->cert || !self->coordinator_key || !self->endpoint)
            qn_identity_destroy (&self);
    }
    return self;
}

void
qn_identity_destroy (qn_identity_t **self_p)
{
    assert (self_p);
    qn_identity_t *self = *self_p;
    if (!self)
        return;
    zcert_destroy (&self->cert);
    for (size_t i = 0; i < self->label_count; i++) {
        free (self->label_keys [i]);
        free (self->label_values [i]);
    }
    free (self->label_keys);
    free (self->label_values);
    free (self->coordinator_key);
    free (self->endpoint);
    free (self->name);
    free (self);
    *self_p = NULL;
}

zcert_t *
qn_identity_cert (qn_identity_t *self)
{
    assert (self);
    return self->cert;
}

const char *
qn_identity_coordinator_key (qn_identity_t *self)
{
    assert (self);
    return self->coordinator_key;
}

const char *
qn_identity_endpoint (qn_identity_t *self)
{
    assert (self);
    return self->endpoint;
}

const char *
qn_identity_name (qn_identity_t *self)
{
    assert (self);
    return self->name;
}

size_t
qn_identity_label_count (qn_identity_t *self)
{
    assert (self);
    return self->label_count;
}

const char **
qn_identity_label_keys (qn_identity_t *self)
{
    assert (self);
    return (const char **) self->label_keys;
}

const char **
qn_identity_label_values (qn_identity_t *self)
{
    assert (self);
    return (const char **) self->label_values;
}

static bool
s_z85_key_ok (const char *text)
{
    uint8_t binary [32];
    return text && strlen (text) == QN_Z85_KEY_SIZE && zmq_z85_decode (binary, text) != NULL;
}

bool
qn_identity_name_ok (const char *name)
{
    size_t size = name? strlen (name): 0;
    if (size == 0 || size > 128)
        return false;
    for (size_t i = 0; i < size; i++) {
        char c = name [i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
              || c == '_' || c == '.' || c == '-'))
            return false;
    }
    return true;
}

int
qn_identity_set_name (qn_identity_t *self, const char *name)
{
    assert (self);
    assert (name);
    char *copy = strdup (name);
    if (!copy)
        return -1;
    free (self->name);
    self->name = copy;
    return 0;
}

//  Label text in a certificate's metadata: czmq writes a value between
//  double quotes without escaping, so quotes, the separators and
//  anything not printable are %-escaped.
static bool
s_label_byte_plain (uint8_t c)
{
    return c > 0x20 && c < 0x7f && c != '%' && c != ',' && c != '=' && c != '"'
        && c != '\'' && c != '\\' && c != '#';
}

static void
s_escape_into (zchunk_t *chunk, const char *text)
{
    for (const uint8_t *cur = (const uint8_t *) text; *cur; cur++) {
        if (s_label_byte_plain (*cur))
            zchunk_extend (chunk, cur, 1);
        else {
            char escaped [4];
            snprintf (escaped, sizeof (escaped), "%%%02X", *cur);
            zchunk_extend (chunk, escaped, 3);
        }
    }
}

//  Decodes size bytes of text; NULL on a bad escape.
static char *
s_unescape (const char *text, size_t size)
{
    char *out = (char *) malloc (size + 1);
    if (!out)
        return NULL;
    size_t at = 0;
    for (size_t i = 0; i < size; i++) {
        if (text [i] != '%') {
            out [at++] = text [i];
            continue;
        }
        unsigned int byte;
        char hex [3] = { 0, 0, 0 };
        if (i + 2 >= size) {
            free (out);
            return NULL;
        }
        hex [0] = text [i + 1];
        hex [1] = text [i + 2];
        if (!isxdigit ((unsigned char) hex [0]) || !isxdigit ((unsigned char) hex [1])
        ||  sscanf (hex, "%2x", &byte) != 1 || byte == 0) {
            free (out);
            return NULL;
        }
        out [at++] = (char) byte;
        i += 2;
    }
    out [at] = '\0';
    return out;
}

int
qn_identity_add_label (qn_identity_t *self, const char *key, const char *value)
{
    char **keys = (char **) realloc (self->label_keys,
                                     (self->label_count + 1) * sizeof (char *));
    if (keys)
        self->label_keys = keys;
    char **values = (char **) realloc (self->label_values,
                                       (self->label_count + 1) * sizeof (char *));
    if (values)
        self->label_values = values;
    char *key_copy = strdup (key? key: "");
    char *value_copy = strdup (value? value: "");
    if (!keys || !values || !key_copy || !value_copy) {
        free (key_copy);
        free (value_copy);
        return -1;
    }
    self->label_keys [self->label_count] = key_copy;
    self->label_values [self->label_count] = value_copy;
    self->label_count++;
    return 0;
}

//  Parses "k=v,k=v" (escaped) into the identity's labels.
static int
s_parse_labels (qn_identity_t *self, const char *text)
{
    const char *cur = text;
    while (*cur) {
        const char *end = strchr (cur, ',');
        size_t size = end? (size_t) (end - cur): strlen (cur);
        const char *eq = (const char *) memchr (cur, '=', size);
        if (!eq || eq == cur)
            return -1;
        char *key = s_unescape (cur, (size_t) (eq - cur));
        char *value = s_unescape (eq + 1, size - (size_t) (eq - cur) - 1);
        int rc = key && value? qn_identity_add_label (self, key, value): -1;
        free (key);
        free (value);
        if (rc == -1)
            return -1;
        if (!end)
            break;
        cur = end + 1;
    }
    return 0;
}

//  Whether path holds text in zconfig's format at all.  zcert_load on
//  anything else fails, but czmq's zconfig_load leaks its zfile on that
//  path: a damaged key file is checked here first, without zfile.
static bool
s_parses (const char *path)
{
    FILE *file = fopen (path, "r");
    if (!file)
        return false;
    char text [64 * 1024];
    size_t size = fread (text, 1, sizeof text - 1, file);
    bool whole = feof (file);
    fclose (file);
    text [size] = '\0';
    if (!whole || memchr (text, '\0', size))
        return false;           //  no key file is this large, or binary
    zconfig_t *config = zconfig_str_load (text);
    bool parses = config != NULL;
    zconfig_destroy (&config);
    explicit_bzero (text, sizeof text);
    return parses;
}

qn_identity_t *
qn_identity_load (const char *path, char **error_p)
{
    assert (path);
    assert (error_p);
    *error_p = NULL;
    struct stat st;
    if (stat (path, &st) == -1) {
        *error_p = zsys_sprintf ("cannot read %s: %s", path, strerror (errno));
        return NULL;
    }
    if (st.st_mode & 077)
        qn_log (QN_LOG_WARNING, "identity", "%s is readable by others (mode %03o): it holds this "
                      "agent's secret key; chmod 600 it", path, (unsigned) (st.st_mode & 0777));
    qn_identity_t *self = (qn_identity_t *) calloc (1, sizeof (*self));
    if (!self) {
        *error_p = strdup ("out of memory");
        return NULL;
    }
    self->cert = s_parses (path)? zcert_load (path): NULL;
    const char *problem = NULL;
    if (!self->cert)
        problem = "not a key file";
    else {
        //  The public key must be the secret key's: a file with a public
        //  key only (or a forged one) would not get through the handshake
        uint8_t derived [32];
        char derived_txt [QN_Z85_KEY_SIZE + 1];
        if (zmq_curve_public (derived_txt, zcert_secret_txt (self->cert)) != 0
        ||  !streq (derived_txt, zcert_public_txt (self->cert))
        ||  !zmq_z85_decode (derived, derived_txt))
            problem = "its public key is not its secret key's";
        else {
            const char *key = zcert_meta (self->cert, "coordinator-key");
            const char *name = zcert_meta (self->cert, "name");
            const char *endpoint = zcert_meta (self->cert, "endpoint");
            const char *labels = zcert_meta (self->cert, "labels");
            if (!s_z85_key_ok (key))
                problem = "no valid coordinator-key";
            else
            if (!qn_identity_name_ok (name))
                problem = "no valid name";
            else {
                self->coordinator_key = strdup (key);
                self->name = strdup (name);
                self->endpoint = strdup (endpoint? endpoint: "");
                if (!self->coordinator_key || !self->name || !self->endpoint)
                    problem = "out of memory";
                else
                if (labels && s_parse_labels (self, labels) == -1)
                    problem = "malformed labels";
            }
        }
    }
    if (problem) {
        *error_p = zsys_sprintf ("%s: %s (enrol again: delete it and run once with "
                                 "--join TOKEN)", path, problem);
        qn_identity_destroy (&self);
    }
    return self;
}

//  Writes the identity (0600) beside path, then renames it into place,
//  so that a crash never leaves half a key file.
int
qn_identity_save (qn_identity_t *self, const char *path, char **error_p)
{
    zcert_set_meta (self->cert, "coordinator-key", "%s", self->coordinator_key);
    zcert_set_meta (self->cert, "endpoint", "%s", self->endpoint);
    zcert_set_meta (self->cert, "name", "%s", self->name);
    zchunk_t *labels = zchunk_new (NULL, 256);
    if (!labels) {
        *error_p = strdup ("out of memory");
        return -1;
    }
    for (size_t i = 0; i < self->label_count; i++) {
        if (i)
            zchunk_extend (labels, ",", 1);
        s_escape_into (labels, self->label_keys [i]);
        zchunk_extend (labels, "=", 1);
        s_escape_into (labels, self->label_values [i]);
    }
    zchunk_extend (labels, "", 1);
    zcert_set_meta (self->cert, "labels", "%s", (char *) zchunk_data (labels));
    zchunk_destroy (&labels);

    char *temp = zsys_sprintf ("%s.new", path);
    if (!temp) {
        *error_p = strdup ("out of memory");
        return -1;
    }
    mode_t old = umask (077);
    unlink (temp);
    int rc = zcert_save_secret (self->cert, temp);
    umask (old);
    if (rc == 0 && chmod (temp, 0600) == 0 && rename (temp, path) == 0) {
        //  The rename must survive a crash too
        char *dir = strdup (path);
        char *slash = dir? strrchr (dir, '/'): NULL;
        if (slash) {
            *slash = '\0';
            int fd = open (*dir? dir: "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (fd != -1) {
                fsync (fd);
                close (fd);
            }
        }
        free (dir);
        zstr_free (&temp);
        return 0;
    }
    *error_p = zsys_sprintf ("cannot write %s: %s", path, strerror (errno));
    unlink (temp);
    zstr_free (&temp);
    return -1;
}
