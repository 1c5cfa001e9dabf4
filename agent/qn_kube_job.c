/*  qn_kube_job - the batch/v1 Job of an attempt.  See qn_kube_job.h.

    The manifest is built in parts, each checking the options it uses, in
    the order a user would fix them: unknown options, the image and where
    the Job goes, the scheduling options, then the container.  The first
    problem found is the one reported.
*/
#include "qn_kube_job.h"
#include "qn_backend.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


//  ---------------------------------------------------------------------
//  Small helpers

//  Strips blanks and newlines at both ends, in place.
char *
qn_kube_trim (char *text)
{
    while (*text && isspace ((unsigned char) *text))
        text++;
    size_t len = strlen (text);
    while (len > 0 && isspace ((unsigned char) text [len - 1]))
        text [--len] = '\0';
    return text;
}

//  True when text has only printable ASCII (no blanks, no control bytes):
//  what may go into a URL or a header.
bool
qn_kube_printable (const char *text)
{
    for (const unsigned char *c = (const unsigned char *) text; *c; c++)
        if (*c <= ' ' || *c >= 0x7f)
            return false;
    return true;
}


//  ---------------------------------------------------------------------
//  Names and labels

#define S_LABEL_MAX         63
#define S_DNS_LABEL_MAX     63
#define S_DNS_SUBDOMAIN_MAX 253
#define S_TTL_AFTER_FINISHED_S  86400

static bool
s_lower_alnum (char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool
s_alnum (char c)
{
    return s_lower_alnum (c) || (c >= 'A' && c <= 'Z');
}

//  RFC 1123 label: [a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63
static bool
s_dns_label (const char *text, size_t len)
{
    if (len == 0 || len > S_DNS_LABEL_MAX)
        return false;
    if (!s_lower_alnum (text [0]) || !s_lower_alnum (text [len - 1]))
        return false;
    for (size_t i = 0; i < len; i++)
        if (!s_lower_alnum (text [i]) && text [i] != '-')
            return false;
    return true;
}

//  RFC 1123 subdomain: labels joined by '.', at most 253
static bool
s_dns_subdomain (const char *text)
{
    size_t len = strlen (text);
    if (len == 0 || len > S_DNS_SUBDOMAIN_MAX)
        return false;
    const char *start = text;
    while (true) {
        const char *dot = strchr (start, '.');
        size_t part = dot? (size_t) (dot - start): strlen (start);
        if (!s_dns_label (start, part))
            return false;
        if (!dot)
            return true;
        start = dot + 1;
    }
}

//  Label value: empty, or [A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?, at most 63
static bool
s_label_value (const char *text, size_t len)
{
    if (len == 0)
        return true;
    if (len > S_LABEL_MAX || !s_alnum (text [0]) || !s_alnum (text [len - 1]))
        return false;
    for (size_t i = 0; i < len; i++)
        if (!s_alnum (text [i]) && text [i] != '-' && text [i] != '_' && text [i] != '.')
            return false;
    return true;
}

//  Label key: an optional DNS subdomain prefix and '/', then a name like
//  a non-empty label value
static bool
s_label_key (const char *text, size_t len)
{
    const char *slash = memchr (text, '/', len);
    const char *name = text;
    size_t name_len = len;
    if (slash) {
        char prefix [S_DNS_SUBDOMAIN_MAX + 1];
        size_t prefix_len = (size_t) (slash - text);
        if (prefix_len == 0 || prefix_len > S_DNS_SUBDOMAIN_MAX)
            return false;
        memcpy (prefix, text, prefix_len);
        prefix [prefix_len] = '\0';
        if (!s_dns_subdomain (prefix))
            return false;
        name = slash + 1;
        name_len = len - prefix_len - 1;
    }
    return name_len > 0 && s_label_value (name, name_len);
}

//  Makes text into a valid label value (for the agent's name)
static void
s_label_safe (const char *text, char *buffer, size_t size)
{
    size_t at = 0;
    for (const char *c = text; *c && at + 1 < size && at < S_LABEL_MAX; c++) {
        bool ok = s_alnum (*c) || *c == '-' || *c == '_' || *c == '.';
        buffer [at++] = ok? *c: '_';
    }
    buffer [at] = '\0';
    while (at > 0 && !s_alnum (buffer [at - 1]))
        buffer [--at] = '\0';
    size_t skip = 0;
    while (buffer [skip] && !s_alnum (buffer [skip]))
        skip++;
    memmove (buffer, buffer + skip, strlen (buffer + skip) + 1);
    if (!*buffer && size > 8)
        snprintf (buffer, size, "unnamed");
}

void
qn_kube_job_name (const Qanat__Assign *assign, char *buffer, size_t size)
{
    assert (assign && assign->attempt);
    assert (size > S_DNS_LABEL_MAX);
    char head [32];
    char tail [16];
    snprintf (head, sizeof (head), "qanat-%" PRIu64 "-", assign->attempt->run_id);
    snprintf (tail, sizeof (tail), "-%u", assign->attempt->attempt);
    size_t room = S_DNS_LABEL_MAX - strlen (head) - strlen (tail);

    char task [S_DNS_LABEL_MAX + 1] = "";
    size_t at = 0;
    bool altered = false;
    const char *name = assign->task_name? assign->task_name: "";
    for (const char *c = name; *c; c++) {
        char lower = (char) tolower ((unsigned char) *c);
        if (lower != *c)
            altered = true;
        if (!s_lower_alnum (lower) && lower != '-') {
            lower = '-';
            altered = true;
        }
        if (at < room)
            task [at++] = lower;
        else
            altered = true;
    }
    task [at] = '\0';
    //  Leading '-' would double the one after the run id: trim them
    size_t skip = 0;
    while (task [skip] == '-')
        skip++;
    if (skip)
        altered = true;
    memmove (task, task + skip, strlen (task + skip) + 1);
    at = strlen (task);
    if (altered || at == 0) {
        char index [16];
        snprintf (index, sizeof (index), "%s%u", at? "-": "", assign->attempt->task_index);
        if (at + strlen (index) > room)
            at = room - strlen (index);
        task [at] = '\0';
        while (at > 0 && task [at - 1] == '-')
            task [--at] = '\0';
        if (at == 0)
            snprintf (index, sizeof (index), "%u", assign->attempt->task_index);
        strcat (task, index);
    }
    snprintf (buffer, size, "%s%s%s", head, task, tail);
}

void
qn_kube_selector (uint64_t run_id, uint32_t task_index, uint32_t attempt,
                  char *buffer, size_t size)
{
    //  Only digits, '.', '/', '=' and ',': escape those we must
    snprintf (buffer, size, "qanat.io%%2Frun%%3D%" PRIu64 "%%2Cqanat.io%%2Ftask%%3D%u"
              "%%2Cqanat.io%%2Fattempt%%3D%u", run_id, task_index, attempt);
}


//  ---------------------------------------------------------------------
//  The manifest

static bool
s_image_ok (const char *image)
{
    size_t len = strlen (image);
    return len > 0 && len <= 1024 && qn_kube_printable (image);
}

//  "key=K,operator=O,value=V,effect=E,toleration_seconds=N" into a
//  Toleration
static json_t *
s_toleration (const char *text, char *error, size_t error_size)
{
    json_t *toleration = json_object ();
    char *copy = strdup (text);
    if (!toleration || !copy) {
        json_decref (toleration);
        free (copy);
        snprintf (error, error_size, "out of memory");
        return NULL;
    }
    char *save = NULL;
    bool ok = true;
    for (char *field = strtok_r (copy, ",", &save); field && ok;
         field = strtok_r (NULL, ",", &save)) {
        char *equals = strchr (field, '=');
        if (!equals) {
            snprintf (error, error_size, "toleration '%.200s': '%.100s' is not name=value",
                      text, field);
            ok = false;
            break;
        }
        *equals = '\0';
        const char *name = qn_kube_trim (field);
        const char *value = qn_kube_trim (equals + 1);
        if (streq (name, "key")) {
            ok = !*value || s_label_key (value, strlen (value));
            if (ok)
                json_object_set_new (toleration, "key", json_string (value));
        }
        else
        if (streq (name, "operator")) {
            ok = streq (value, "Exists") || streq (value, "Equal");
            if (ok)
                json_object_set_new (toleration, "operator", json_string (value));
        }
        else
        if (streq (name, "value")) {
            ok = s_label_value (value, strlen (value));
            if (ok)
                json_object_set_new (toleration, "value", json_string (value));
        }
        else
        if (streq (name, "effect")) {
            ok = streq (value, "NoSchedule") || streq (value, "PreferNoSchedule")
              || streq (value, "NoExecute");
            if (ok)
                json_object_set_new (toleration, "effect", json_string (value));
        }
        else
        if (streq (name, "toleration_seconds")) {
            char *end = NULL;
            errno = 0;
            long long seconds = strtoll (value, &end, 10);
            ok = *value && end && !*end && errno == 0;
            if (ok)
                json_object_set_new (toleration, "tolerationSeconds", json_integer (seconds));
        }
        else {
            snprintf (error, error_size, "toleration '%.200s': unknown field '%.50s' (known: "
                      "key operator value effect toleration_seconds)", text, name);
            ok = false;
            break;
        }
        if (!ok)
            snprintf (error, error_size, "toleration '%.200s': invalid %s '%.100s'",
                      text, name, value);
    }
    free (copy);
    if (ok && json_object_size (toleration) == 0) {
        snprintf (error, error_size, "empty toleration");
        ok = false;
    }
    if (!ok) {
        json_decref (toleration);
        return NULL;
    }
    return toleration;
}

static json_t *
s_labels (const Qanat__Assign *assign, const char *agent_name)
{
    char value [32];
    char agent [S_LABEL_MAX + 1];
    json_t *labels = json_object ();
    snprintf (value, sizeof (value), "%" PRIu64, assign->attempt->run_id);
    json_object_set_new (labels, "qanat.io/run", json_string (value));
    snprintf (value, sizeof (value), "%u", assign->attempt->task_index);
    json_object_set_new (labels, "qanat.io/task", json_string (value));
    snprintf (value, sizeof (value), "%u", assign->attempt->attempt);
    json_object_set_new (labels, "qanat.io/attempt", json_string (value));
    s_label_safe (agent_name? agent_name: "", agent, sizeof (agent));
    json_object_set_new (labels, "qanat.io/agent", json_string (agent));
    return labels;
}

//  Every backend option must be one we know: a typo must not silently
//  run the task somewhere else.
static int
s_options_check (const Qanat__Assign *assign, char *error, size_t error_size)
{
    static const char *known [] = {
        "image", "namespace", "service_account", "node_selector", "toleration",
        "image_pull_secret", NULL
    };
    for (size_t i = 0; i < assign->n_backend_options; i++) {
        const Qanat__Label *option = assign->backend_options [i];
        bool found = false;
        for (size_t k = 0; option && option->key && known [k] && !found; k++)
            found = streq (known [k], option->key);
        if (!found || !option->value) {
            snprintf (error, error_size, "unknown kubernetes option '%.100s' (known: image "
                      "namespace service_account node_selector toleration image_pull_secret)",
                      option && option->key? option->key: "");
            return -1;
        }
    }
    return 0;
}

//  What runs and where: the task's options, else the agent's defaults
typedef struct {
    const char *image;
    const char *namespace_name;
    const char *service_account;    //  NULL = the namespace's default
} s_placement_t;

static int
s_placement (const Qanat__Assign *assign, const qn_kube_job_defaults_t *defaults,
             s_placement_t *placement, char *namespace_buf, size_t namespace_size,
             char *error, size_t error_size)
{
    const char *image = qn_backend_task_option (assign, "image");
    if (!image || !*image)
        image = defaults->image;
    if (!image || !*image) {
        snprintf (error, error_size, "no image: set the task's kubernetes image or the "
                  "agent's kubernetes.image");
        return -1;
    }
    if (!s_image_ok (image)) {
        snprintf (error, error_size, "invalid image '%.200s'", image);
        return -1;
    }
    const char *namespace_name = qn_backend_task_option (assign, "namespace");
    if (!namespace_name || !*namespace_name)
        namespace_name = defaults->namespace_name;
    if (!namespace_name || !*namespace_name)
        namespace_name = "default";
    if (!s_dns_label (namespace_name, strlen (namespace_name))) {
        snprintf (error, error_size, "invalid namespace '%.100s'", namespace_name);
        return -1;
    }
    snprintf (namespace_buf, namespace_size, "%s", namespace_name);
    const char *service_account = qn_backend_task_option (assign, "service_account");
    if (service_account && !s_dns_subdomain (service_account)) {
        snprintf (error, error_size, "invalid service_account '%.100s'", service_account);
        return -1;
    }
    placement->image = image;
    placement->namespace_name = namespace_name;
    placement->service_account = service_account;
    return 0;
}

//  The options that repeat, which say on which nodes the pod may run and
//  how it pulls its image
typedef struct {
    json_t *node_selector;
    json_t *tolerations;
    json_t *pull_secrets;
} s_scheduling_t;

static void
s_scheduling_clear (s_scheduling_t *scheduling)
{
    json_decref (scheduling->node_selector);
    json_decref (scheduling->tolerations);
    json_decref (scheduling->pull_secrets);
    memset (scheduling, 0, sizeof (*scheduling));
}

//  node_selector=label=value
static int
s_node_selector_add (json_t *node_selector, const char *value, char *error, size_t error_size)
{
    const char *equals = strchr (value, '=');
    if (!equals || !s_label_key (value, (size_t) (equals - value))
    ||  !s_label_value (equals + 1, strlen (equals + 1))) {
        snprintf (error, error_size, "invalid node_selector '%.200s' (want "
                  "label=value)", value);
        return -1;
    }
    char *label = strndup (value, (size_t) (equals - value));
    if (label)
        json_object_set_new (node_selector, label, json_string (equals + 1));
    free (label);
    return 0;
}

static int
s_scheduling_build (const Qanat__Assign *assign, s_scheduling_t *scheduling,
                    char *error, size_t error_size)
{
    scheduling->node_selector = json_object ();
    scheduling->tolerations = json_array ();
    scheduling->pull_secrets = json_array ();
    bool ok = scheduling->node_selector && scheduling->tolerations
           && scheduling->pull_secrets;
    if (!ok)
        snprintf (error, error_size, "out of memory");
    for (size_t i = 0; ok && i < assign->n_backend_options; i++) {
        const char *key = assign->backend_options [i]->key;
        const char *value = assign->backend_options [i]->value;
        if (streq (key, "node_selector"))
            ok = s_node_selector_add (scheduling->node_selector, value,
                                      error, error_size) == 0;
        else
        if (streq (key, "toleration")) {
            json_t *toleration = s_toleration (value, error, error_size);
            if (!toleration)
                ok = false;
            else
                json_array_append_new (scheduling->tolerations, toleration);
        }
        else
        if (streq (key, "image_pull_secret")) {
            if (!s_dns_subdomain (value)) {
                snprintf (error, error_size, "invalid image_pull_secret '%.100s'", value);
                ok = false;
                break;
            }
            json_t *reference = json_object ();
            json_object_set_new (reference, "name", json_string (value));
            json_array_append_new (scheduling->pull_secrets, reference);
        }
    }
    if (!ok)
        s_scheduling_clear (scheduling);
    return ok? 0: -1;
}

//  Puts the non-empty parts into the pod spec; takes them over.
static void
s_scheduling_into_pod (s_scheduling_t *scheduling, json_t *pod)
{
    if (json_object_size (scheduling->node_selector))
        json_object_set_new (pod, "nodeSelector", scheduling->node_selector);
    else
        json_decref (scheduling->node_selector);
    if (json_array_size (scheduling->tolerations))
        json_object_set_new (pod, "tolerations", scheduling->tolerations);
    else
        json_decref (scheduling->tolerations);
    if (json_array_size (scheduling->pull_secrets))
        json_object_set_new (pod, "imagePullSecrets", scheduling->pull_secrets);
    else
        json_decref (scheduling->pull_secrets);
    memset (scheduling, 0, sizeof (*scheduling));
}

//  The task's argv as the container's command; no argv: the image's own
//  entrypoint.
static int
s_command (const Qanat__Assign *assign, json_t *container, char *error, size_t error_size)
{
    if (assign->n_argv == 0)
        return 0;
    bool ok = true;
    json_t *command = json_array ();
    for (size_t i = 0; i < assign->n_argv && ok; i++) {
        json_t *arg = assign->argv [i]? json_string (assign->argv [i]): NULL;
        if (!arg) {
            snprintf (error, error_size, "argument %zu is not valid UTF-8", i);
            ok = false;
        }
        json_array_append_new (command, arg);
    }
    json_object_set_new (container, "command", command);
    return ok? 0: -1;
}

//  The task's environment; names that the kubelet would refuse (empty,
//  with '=') are left out.
static json_t *
s_environment (const Qanat__Assign *assign, char *error, size_t error_size)
{
    json_t *env = json_array ();
    if (!env) {
        snprintf (error, error_size, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < assign->n_env; i++) {
        const Qanat__Label *label = assign->env [i];
        if (!label || !label->key || !*label->key || strchr (label->key, '='))
            continue;
        json_t *name_json = json_string (label->key);
        json_t *value_json = json_string (label->value? label->value: "");
        if (!name_json || !value_json) {
            json_decref (name_json);
            json_decref (value_json);
            snprintf (error, error_size, "environment variable %zu is not valid UTF-8", i);
            json_decref (env);
            return NULL;
        }
        json_t *variable = json_object ();
        json_object_set_new (variable, "name", name_json);
        json_object_set_new (variable, "value", value_json);
        json_array_append_new (env, variable);
    }
    return env;
}

//  Requests equal to limits: the task gets what it asked for, and no
//  more
static json_t *
s_resources (const Qanat__Assign *assign)
{
    json_t *resources = json_object ();
    json_t *requests = json_object ();
    json_t *limits = json_object ();
    if (!resources || !requests || !limits) {
        json_decref (resources);
        json_decref (requests);
        json_decref (limits);
        return NULL;
    }
    char quantity [32];
    if (assign->cpus) {
        snprintf (quantity, sizeof (quantity), "%u", assign->cpus);
        json_object_set_new (requests, "cpu", json_string (quantity));
        json_object_set_new (limits, "cpu", json_string (quantity));
    }
    if (assign->memory_mb) {
        snprintf (quantity, sizeof (quantity), "%" PRIu64 "Mi", assign->memory_mb);
        json_object_set_new (requests, "memory", json_string (quantity));
        json_object_set_new (limits, "memory", json_string (quantity));
    }
    //  Extended resources: a request, if any, must equal the limit
    if (assign->gpus) {
        snprintf (quantity, sizeof (quantity), "%u", assign->gpus);
        json_object_set_new (requests, "nvidia.com/gpu", json_string (quantity));
        json_object_set_new (limits, "nvidia.com/gpu", json_string (quantity));
    }
    if (json_object_size (requests))
        json_object_set_new (resources, "requests", requests);
    else
        json_decref (requests);
    if (json_object_size (limits))
        json_object_set_new (resources, "limits", limits);
    else
        json_decref (limits);
    return resources;
}

//  The one container: command, image, environment, resources
static json_t *
s_container (const Qanat__Assign *assign, const char *image, char *error, size_t error_size)
{
    json_t *container = json_object ();
    if (!container) {
        snprintf (error, error_size, "out of memory");
        return NULL;
    }
    json_t *env = NULL;
    json_t *resources = NULL;
    if (s_command (assign, container, error, error_size) != 0
    ||  !(env = s_environment (assign, error, error_size))) {
        json_decref (container);
        return NULL;
    }
    if (!(resources = s_resources (assign))) {
        snprintf (error, error_size, "out of memory");
        json_decref (env);
        json_decref (container);
        return NULL;
    }
    json_object_set_new (container, "name", json_string (QN_KUBE_CONTAINER));
    json_object_set_new (container, "image", json_string (image));
    json_object_set_new (container, "env", env);
    json_object_set_new (container, "resources", resources);
    return container;
}

//  The pod template around the container; takes over the container and
//  the scheduling parts.  NULL when out of memory.
static json_t *
s_pod_template (const Qanat__Assign *assign, const qn_kube_job_defaults_t *defaults,
                json_t *container, s_scheduling_t *scheduling, const char *service_account)
{
    json_t *template = json_object ();
    json_t *template_metadata = json_object ();
    json_t *pod = json_object ();
    json_t *containers = json_array ();
    if (!template || !template_metadata || !pod || !containers) {
        json_decref (template);
        json_decref (template_metadata);
        json_decref (pod);
        json_decref (containers);
        json_decref (container);
        s_scheduling_clear (scheduling);
        return NULL;
    }
    json_array_append_new (containers, container);
    json_object_set_new (pod, "restartPolicy", json_string ("Never"));
    json_object_set_new (pod, "containers", containers);
    s_scheduling_into_pod (scheduling, pod);
    if (service_account)
        json_object_set_new (pod, "serviceAccountName", json_string (service_account));

    json_object_set_new (template_metadata, "labels", s_labels (assign, defaults->agent_name));
    json_object_set_new (template, "metadata", template_metadata);
    json_object_set_new (template, "spec", pod);
    return template;
}

//  The Job around the pod template; takes over the template.  NULL when
//  out of memory.
static json_t *
s_job (const Qanat__Assign *assign, const qn_kube_job_defaults_t *defaults,
       const char *namespace_name, json_t *template)
{
    char name [S_DNS_LABEL_MAX + 1];
    qn_kube_job_name (assign, name, sizeof (name));
    json_t *job = json_object ();
    json_t *metadata = json_object ();
    json_t *spec = json_object ();
    json_t *annotations = json_object ();
    if (!job || !metadata || !spec || !annotations) {
        json_decref (job);
        json_decref (metadata);
        json_decref (spec);
        json_decref (annotations);
        json_decref (template);
        return NULL;
    }
    //  No retries by Kubernetes: qanat owns retries, each one a new Job
    json_object_set_new (spec, "backoffLimit", json_integer (0));
    if (assign->timeout_s)
        json_object_set_new (spec, "activeDeadlineSeconds", json_integer (assign->timeout_s));
    //  Finished Jobs go after a day, long enough for a re-attach or a look
    json_object_set_new (spec, "ttlSecondsAfterFinished", json_integer (S_TTL_AFTER_FINISHED_S));
    json_object_set_new (spec, "template", template);

    if (assign->task_name)
        json_object_set_new (annotations, "qanat.io/task-name", json_string (assign->task_name));
    if (assign->workflow)
        json_object_set_new (annotations, "qanat.io/workflow", json_string (assign->workflow));
    json_object_set_new (metadata, "name", json_string (name));
    json_object_set_new (metadata, "namespace", json_string (namespace_name));
    json_object_set_new (metadata, "labels", s_labels (assign, defaults->agent_name));
    json_object_set_new (metadata, "annotations", annotations);

    json_object_set_new (job, "apiVersion", json_string ("batch/v1"));
    json_object_set_new (job, "kind", json_string ("Job"));
    json_object_set_new (job, "metadata", metadata);
    json_object_set_new (job, "spec", spec);
    return job;
}

json_t *
qn_kube_job_manifest (const Qanat__Assign *assign, const qn_kube_job_defaults_t *defaults,
                      char *namespace_buf, size_t namespace_size,
                      char *error, size_t error_size)
{
    assert (assign && assign->attempt);
    assert (defaults);
    s_placement_t placement;
    s_scheduling_t scheduling;
    if (s_options_check (assign, error, error_size) != 0
    ||  s_placement (assign, defaults, &placement, namespace_buf, namespace_size,
                     error, error_size) != 0
    ||  s_scheduling_build (assign, &scheduling, error, error_size) != 0)
        return NULL;
    json_t *container = s_container (assign, placement.image, error, error_size);
    if (!container) {
        s_scheduling_clear (&scheduling);
        return NULL;
    }
    json_t *template = s_pod_template (assign, defaults, container, &scheduling,
                                       placement.service_account);
    json_t *job = template? s_job (assign, defaults, placement.namespace_name, template): NULL;
    if (!job)
        snprintf (error, error_size, "out of memory");
    return job;
}


//  ---------------------------------------------------------------------
//  Outcome

static const char *
s_json_string (json_t *object, const char *key)
{
    return json_string_value (json_object_get (object, key));
}

//  Waiting reasons that will not go away by themselves
static bool
s_waiting_error (const char *reason)
{
    static const char *errors [] = {
        "ImagePullBackOff", "ErrImagePull", "InvalidImageName", "ErrImageNeverPull",
        "CreateContainerConfigError", "CreateContainerError", "RunContainerError", NULL
    };
    for (size_t i = 0; reason && errors [i]; i++)
        if (streq (reason, errors [i]))
            return true;
    return false;
}

//  The newest pod of a PodList
static json_t *
s_newest_pod (json_t *pods)
{
    json_t *items = json_object_get (pods, "items");
    json_t *newest = NULL;
    const char *newest_time = "";
    size_t index;
    json_t *pod;
    json_array_foreach (items, index, pod) {
        if (!json_is_object (pod))
            continue;
        const char *created = s_json_string (json_object_get (pod, "metadata"),
                                             "creationTimestamp");
        if (!created)
            created = "";
        //  RFC 3339 in UTC, second precision: compares as text
        if (!newest || strcmp (created, newest_time) >= 0) {
            newest = pod;
            newest_time = created;
        }
    }
    return newest;
}

void
qn_kube_outcome (json_t *job, json_t *pods, qn_kube_outcome_t *outcome)
{
    assert (outcome);
    memset (outcome, 0, sizeof (*outcome));
    outcome->state = QN_KUBE_PENDING;
    outcome->exit_code = -1;

    const char *pod_reason = NULL;
    const char *pod_message = NULL;
    const char *terminated_reason = NULL;
    char waiting [400] = "";
    bool running = false;
    bool pod_failed = false;

    json_t *pod = s_newest_pod (pods);
    if (pod) {
        const char *name = s_json_string (json_object_get (pod, "metadata"), "name");
        if (name && strlen (name) < sizeof (outcome->pod) && s_dns_subdomain (name))
            snprintf (outcome->pod, sizeof (outcome->pod), "%s", name);
        json_t *status = json_object_get (pod, "status");
        const char *phase = s_json_string (status, "phase");
        pod_reason = s_json_string (status, "reason");
        pod_message = s_json_string (status, "message");
        pod_failed = phase && streq (phase, "Failed");
        json_t *statuses = json_object_get (status, "containerStatuses");
        json_t *chosen = NULL;
        size_t index;
        json_t *item;
        json_array_foreach (statuses, index, item) {
            const char *container = s_json_string (item, "name");
            if (!chosen || (container && streq (container, QN_KUBE_CONTAINER)))
                chosen = item;
        }
        json_t *state = json_object_get (chosen, "state");
        json_t *terminated = json_object_get (state, "terminated");
        json_t *waiting_state = json_object_get (state, "waiting");
        if (json_is_object (json_object_get (state, "running"))) {
            running = true;
            outcome->container_started = true;
            outcome->container_running = true;
        }
        if (json_is_object (terminated)) {
            outcome->container_started = true;
            json_t *code = json_object_get (terminated, "exitCode");
            if (json_is_integer (code) && json_integer_value (code) >= INT32_MIN
            &&  json_integer_value (code) <= INT32_MAX)
                outcome->exit_code = (int) json_integer_value (code);
            terminated_reason = s_json_string (terminated, "reason");
        }
        if (json_is_object (waiting_state)) {
            const char *reason = s_json_string (waiting_state, "reason");
            if (s_waiting_error (reason)) {
                const char *message = s_json_string (waiting_state, "message");
                snprintf (waiting, sizeof (waiting), "%s%s%.300s", reason,
                          message && *message? ": ": "", message? message: "");
            }
        }
    }

    const char *job_state = NULL;
    const char *job_reason = NULL;
    const char *job_message = NULL;
    json_t *conditions = json_object_get (json_object_get (job, "status"), "conditions");
    size_t index;
    json_t *condition;
    json_array_foreach (conditions, index, condition) {
        const char *type = s_json_string (condition, "type");
        const char *status = s_json_string (condition, "status");
        if (!type || !status || !streq (status, "True"))
            continue;
        if (streq (type, "Complete") || streq (type, "Failed")) {
            job_state = type;
            job_reason = s_json_string (condition, "reason");
            job_message = s_json_string (condition, "message");
        }
    }

    char exit_text [32] = "";
    if (outcome->exit_code != -1)
        snprintf (exit_text, sizeof (exit_text), " (exit %d)", outcome->exit_code);
    if (job_state && streq (job_state, "Complete")) {
        outcome->state = QN_KUBE_SUCCEEDED;
        if (outcome->exit_code == -1)
            outcome->exit_code = 0;
        if (outcome->exit_code != 0)
            snprintf (outcome->reason, sizeof (outcome->reason), "exit code %d",
                      outcome->exit_code);
    }
    else
    if (job_state || (pod_failed && pod_reason)) {
        //  The most telling cause first: what happened to the pod, then
        //  to the container, then what the Job controller concluded
        outcome->state = QN_KUBE_FAILED;
        if (pod_failed && pod_reason)
            snprintf (outcome->reason, sizeof (outcome->reason), "%.100s%s%.300s%s", pod_reason,
                      pod_message && *pod_message? ": ": "", pod_message? pod_message: "",
                      exit_text);
        else
        if (terminated_reason && streq (terminated_reason, "OOMKilled"))
            snprintf (outcome->reason, sizeof (outcome->reason), "OOMKilled%s", exit_text);
        else
        if (job_reason && streq (job_reason, "DeadlineExceeded")) {
            outcome->timed_out = true;
            snprintf (outcome->reason, sizeof (outcome->reason), "DeadlineExceeded%s%.300s",
                      job_message && *job_message? ": ": "", job_message? job_message: "");
        }
        else
        if (*waiting)
            snprintf (outcome->reason, sizeof (outcome->reason), "%s", waiting);
        else
            snprintf (outcome->reason, sizeof (outcome->reason), "%.100s%s%.300s%s",
                      job_reason? job_reason: "Failed",
                      job_message && *job_message? ": ": "", job_message? job_message: "",
                      exit_text);
        if (outcome->exit_code == 0)
            outcome->exit_code = -1;    //  a failure is never a success
    }
    else
    if (*waiting) {
        outcome->state = QN_KUBE_PULL_ERROR;
        snprintf (outcome->reason, sizeof (outcome->reason), "%s", waiting);
    }
    else
    if (running || outcome->container_started)
        outcome->state = QN_KUBE_RUNNING;
}
