/*  qn_backend - what every backend shares: the list of backends this
    agent build offers, and the reading of --backend-option values and of
    a task's backend options.  See qn_backend.h for the ops contract.
*/
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include "qn_backend.h"

const qn_backend_ops_t *qn_backends [] = {
    &qn_backend_local, &qn_backend_slurm, &qn_backend_kube, NULL
};

const qn_backend_ops_t *
qn_backend_find (const char *name)
{
    for (size_t i = 0; name && qn_backends [i]; i++)
        if (streq (qn_backends [i]->name, name))
            return qn_backends [i];
    return NULL;
}

//  The key part of "<backend>.<key>=value" when the prefix is backend's,
//  else NULL.
static const char *
s_own_key (const char *option, const char *backend)
{
    size_t len = strlen (backend);
    if (strncmp (option, backend, len) != 0 || option [len] != '.')
        return NULL;
    return option + len + 1;
}

const char *
qn_backend_option (const qn_backend_config_t *config, const char *backend, const char *key)
{
    if (!config || !config->options)
        return NULL;
    size_t key_len = strlen (key);
    for (char **option = config->options; *option; option++) {
        const char *own = s_own_key (*option, backend);
        if (own && strncmp (own, key, key_len) == 0 && own [key_len] == '=')
            return own + key_len + 1;
    }
    return NULL;
}

int
qn_backend_options_check (const qn_backend_config_t *config, const char *backend,
                          const char *const *known, char *error, size_t error_size)
{
    if (!config || !config->options)
        return 0;
    for (char **option = config->options; *option; option++) {
        const char *own = s_own_key (*option, backend);
        if (!own)
            continue;
        const char *equals = strchr (own, '=');
        size_t key_len = equals? (size_t) (equals - own): strlen (own);
        bool found = false;
        for (size_t i = 0; known [i] && !found; i++)
            found = strlen (known [i]) == key_len && strncmp (known [i], own, key_len) == 0;
        if (!found || !equals) {
            size_t used = (size_t) snprintf (error, error_size, "%s option %s.%.*s (known:",
                                             equals? "unknown": "no value for", backend,
                                             (int) key_len, own);
            for (size_t i = 0; known [i] && used < error_size; i++)
                used += (size_t) snprintf (error + used, error_size - used, " %s", known [i]);
            if (used < error_size)
                snprintf (error + used, error_size - used, ")");
            return -1;
        }
    }
    return 0;
}

const char *
qn_backend_task_option (const Qanat__Assign *assign, const char *key)
{
    for (size_t i = 0; assign && i < assign->n_backend_options; i++)
        if (assign->backend_options [i]->key && streq (assign->backend_options [i]->key, key))
            return assign->backend_options [i]->value;
    return NULL;
}

int
qn_backend_make_workdir (const Qanat__Assign *assign, const char *workdir, char *error,
                         size_t error_size)
{
    const char *stage = NULL;
    for (size_t i = 0; assign && i < assign->n_env; i++)
        if (assign->env [i]->key && streq (assign->env [i]->key, "QANAT_STAGE_DIR"))
            stage = assign->env [i]->value;
    struct stat st;
    if (stage && lstat (stage, &st) == 0 && S_ISDIR (st.st_mode)) {
        //  The staged inputs become the work directory, in one rename
        if (rename (stage, workdir) == 0)
            return 0;
        snprintf (error, error_size, "cannot move the staged inputs %s to %s: %s%s", stage,
                  workdir, strerror (errno), errno == EXDEV? " (they must be on one filesystem)"
                                                           : "");
        return -1;
    }
    if (mkdir (workdir, 0700) == -1) {
        snprintf (error, error_size, "cannot create %s: %s", workdir, strerror (errno));
        return -1;
    }
    return 0;
}
