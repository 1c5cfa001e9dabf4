/*  Tests for the Kubernetes backend's pure parts (qn_kube_api.h): the Job
    manifest built from an Assign, the outcome read from Job and pod JSON,
    kubeconfig and in-cluster configuration (hostile input included).
*/
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qn_backend.h"
#include "qn_kube_api.h"

//  ---------------------------------------------------------------------
//  Helpers

typedef struct {
    Qanat__Assign assign;
    Qanat__AttemptRef ref;
    Qanat__Label labels [16];
    Qanat__Label *options [16];
    Qanat__Label env_labels [4];
    Qanat__Label *env [4];
    char *argv [4];
} s_assign_t;

static void
s_assign_init (s_assign_t *self, const char *task_name)
{
    memset (self, 0, sizeof (*self));
    Qanat__Assign assign = QANAT__ASSIGN__INIT;
    Qanat__AttemptRef ref = QANAT__ATTEMPT_REF__INIT;
    self->assign = assign;
    self->ref = ref;
    self->ref.run_id = 42;
    self->ref.task_index = 3;
    self->ref.attempt = 2;
    self->assign.attempt = &self->ref;
    self->assign.task_name = (char *) task_name;
    self->assign.workflow = "wf";
    self->assign.backend = "kubernetes";
    self->assign.backend_options = self->options;
}

static void
s_option (s_assign_t *self, const char *key, const char *value)
{
    size_t index = self->assign.n_backend_options++;
    Qanat__Label label = QANAT__LABEL__INIT;
    self->labels [index] = label;
    self->labels [index].key = (char *) key;
    self->labels [index].value = (char *) value;
    self->options [index] = &self->labels [index];
}

static void
s_env (s_assign_t *self, const char *key, const char *value)
{
    size_t index = self->assign.n_env++;
    Qanat__Label label = QANAT__LABEL__INIT;
    self->env_labels [index] = label;
    self->env_labels [index].key = (char *) key;
    self->env_labels [index].value = (char *) value;
    self->env [index] = &self->env_labels [index];
    self->assign.env = self->env;
}

static const qn_kube_job_defaults_t s_defaults = { "batch", "registry.example/default:1", "agent-7" };

static const char *
s_str (json_t *root, const char *path)
{
    json_t *node = root;
    char copy [256];
    snprintf (copy, sizeof (copy), "%s", path);
    char *save = NULL;
    for (char *part = strtok_r (copy, ".", &save); part && node; part = strtok_r (NULL, ".", &save)) {
        if (part [0] >= '0' && part [0] <= '9')
            node = json_array_get (node, (size_t) atoi (part));
        else
            node = json_object_get (node, part);
    }
    return json_string_value (node);
}

static json_t *
s_get (json_t *root, const char *path)
{
    json_t *node = root;
    char copy [256];
    snprintf (copy, sizeof (copy), "%s", path);
    char *save = NULL;
    for (char *part = strtok_r (copy, ".", &save); part && node; part = strtok_r (NULL, ".", &save)) {
        if (part [0] >= '0' && part [0] <= '9')
            node = json_array_get (node, (size_t) atoi (part));
        else
            node = json_object_get (node, part);
    }
    return node;
}

//  Label keys contain dots: look them up directly
static const char *
s_label (json_t *labels, const char *key)
{
    return json_string_value (json_object_get (labels, key));
}

static bool
s_dns_label (const char *name)
{
    size_t len = strlen (name);
    if (len == 0 || len > 63)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name [i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return false;
    }
    return name [0] != '-' && name [len - 1] != '-';
}


//  ---------------------------------------------------------------------
//  Manifest

static void
test_manifest_fields (void **state)
{
    (void) state;
    s_assign_t a;
    s_assign_init (&a, "train");
    char *argv [] = { "python3", "train.py", "--epochs", "3" };
    a.assign.argv = argv;
    a.assign.n_argv = 4;
    s_env (&a, "LR", "0.1");
    s_env (&a, "QANAT_RUN_ID", "42");
    a.assign.cpus = 2;
    a.assign.memory_mb = 512;
    a.assign.gpus = 1;
    a.assign.timeout_s = 90;
    s_option (&a, "image", "registry.example/train:2");
    s_option (&a, "namespace", "ml");
    s_option (&a, "service_account", "trainer");
    s_option (&a, "node_selector", "disktype=ssd");
    s_option (&a, "node_selector", "example.com/gpu=a100");
    s_option (&a, "toleration", "key=gpu,operator=Equal,value=yes,effect=NoSchedule,"
              "toleration_seconds=30");
    s_option (&a, "toleration", "operator=Exists");
    s_option (&a, "image_pull_secret", "regcred");
    s_option (&a, "image_pull_secret", "other-cred");

    char ns [64];
    char error [256] = "";
    json_t *job = qn_kube_job_manifest (&a.assign, &s_defaults, ns, sizeof (ns),
                                        error, sizeof (error));
    assert_non_null (job);
    assert_string_equal (error, "");
    assert_string_equal (ns, "ml");
    assert_string_equal (s_str (job, "apiVersion"), "batch/v1");
    assert_string_equal (s_str (job, "kind"), "Job");
    assert_string_equal (s_str (job, "metadata.name"), "qanat-42-train-2");
    assert_string_equal (s_str (job, "metadata.namespace"), "ml");
    json_t *labels = s_get (job, "metadata.labels");
    assert_string_equal (s_label (labels, "qanat.io/run"), "42");
    assert_string_equal (s_label (labels, "qanat.io/task"), "3");
    assert_string_equal (s_label (labels, "qanat.io/attempt"), "2");
    assert_string_equal (s_label (labels, "qanat.io/agent"), "agent-7");
    json_t *pod_labels = s_get (job, "spec.template.metadata.labels");
    assert_true (json_equal (labels, pod_labels));
    assert_string_equal (s_label (s_get (job, "metadata.annotations"), "qanat.io/task-name"),
                         "train");

    assert_int_equal (json_integer_value (s_get (job, "spec.backoffLimit")), 0);
    assert_int_equal (json_integer_value (s_get (job, "spec.activeDeadlineSeconds")), 90);
    assert_string_equal (s_str (job, "spec.template.spec.restartPolicy"), "Never");
    json_t *container = s_get (job, "spec.template.spec.containers.0");
    assert_non_null (container);
    assert_int_equal (json_array_size (s_get (job, "spec.template.spec.containers")), 1);
    assert_string_equal (s_str (container, "name"), QN_KUBE_CONTAINER);
    assert_string_equal (s_str (container, "image"), "registry.example/train:2");
    json_t *command = json_object_get (container, "command");
    assert_int_equal (json_array_size (command), 4);
    for (size_t i = 0; i < 4; i++)
        assert_string_equal (json_string_value (json_array_get (command, i)), argv [i]);
    assert_null (json_object_get (container, "args"));
    assert_int_equal (json_array_size (json_object_get (container, "env")), 2);
    assert_string_equal (s_str (container, "env.0.name"), "LR");
    assert_string_equal (s_str (container, "env.0.value"), "0.1");
    assert_string_equal (s_str (container, "env.1.name"), "QANAT_RUN_ID");
    json_t *requests = s_get (container, "resources.requests");
    json_t *limits = s_get (container, "resources.limits");
    assert_string_equal (s_label (requests, "cpu"), "2");
    assert_string_equal (s_label (limits, "cpu"), "2");
    assert_string_equal (s_label (requests, "memory"), "512Mi");
    assert_string_equal (s_label (limits, "memory"), "512Mi");
    assert_string_equal (s_label (limits, "nvidia.com/gpu"), "1");
    assert_string_equal (s_label (requests, "nvidia.com/gpu"), "1");

    json_t *pod = s_get (job, "spec.template.spec");
    assert_string_equal (s_str (pod, "serviceAccountName"), "trainer");
    json_t *selector = json_object_get (pod, "nodeSelector");
    assert_int_equal (json_object_size (selector), 2);
    assert_string_equal (s_label (selector, "disktype"), "ssd");
    assert_string_equal (s_label (selector, "example.com/gpu"), "a100");
    json_t *tolerations = json_object_get (pod, "tolerations");
    assert_int_equal (json_array_size (tolerations), 2);
    assert_string_equal (s_str (tolerations, "0.key"), "gpu");
    assert_string_equal (s_str (tolerations, "0.operator"), "Equal");
    assert_string_equal (s_str (tolerations, "0.value"), "yes");
    assert_string_equal (s_str (tolerations, "0.effect"), "NoSchedule");
    assert_int_equal (json_integer_value (s_get (tolerations, "0.tolerationSeconds")), 30);
    assert_string_equal (s_str (tolerations, "1.operator"), "Exists");
    assert_int_equal (json_object_size (json_array_get (tolerations, 1)), 1);
    json_t *secrets = json_object_get (pod, "imagePullSecrets");
    assert_int_equal (json_array_size (secrets), 2);
    assert_string_equal (s_str (secrets, "0.name"), "regcred");
    assert_string_equal (s_str (secrets, "1.name"), "other-cred");
    json_decref (job);
}

static void
test_manifest_defaults (void **state)
{
    (void) state;
    s_assign_t a;
    s_assign_init (&a, "t");
    char *argv [] = { "true" };
    a.assign.argv = argv;
    a.assign.n_argv = 1;
    char ns [64];
    char error [256];
    json_t *job = qn_kube_job_manifest (&a.assign, &s_defaults, ns, sizeof (ns),
                                        error, sizeof (error));
    assert_non_null (job);
    assert_string_equal (ns, "batch");
    assert_string_equal (s_str (job, "spec.template.spec.containers.0.image"),
                         "registry.example/default:1");
    //  Nothing asked, nothing set
    assert_null (s_get (job, "spec.activeDeadlineSeconds"));
    assert_null (s_get (job, "spec.template.spec.containers.0.resources.requests"));
    assert_null (s_get (job, "spec.template.spec.containers.0.resources.limits"));
    assert_null (s_get (job, "spec.template.spec.nodeSelector"));
    assert_null (s_get (job, "spec.template.spec.tolerations"));
    assert_null (s_get (job, "spec.template.spec.serviceAccountName"));
    assert_null (s_get (job, "spec.template.spec.imagePullSecrets"));
    json_decref (job);

    //  No namespace anywhere: "default"; no image anywhere: refused
    qn_kube_job_defaults_t bare = { NULL, NULL, "" };
    s_option (&a, "image", "busybox");
    job = qn_kube_job_manifest (&a.assign, &bare, ns, sizeof (ns), error, sizeof (error));
    assert_non_null (job);
    assert_string_equal (ns, "default");
    assert_string_equal (s_label (s_get (job, "metadata.labels"), "qanat.io/agent"), "unnamed");
    json_decref (job);
    a.assign.n_backend_options = 0;
    job = qn_kube_job_manifest (&a.assign, &bare, ns, sizeof (ns), error, sizeof (error));
    assert_null (job);
    assert_non_null (strstr (error, "no image"));
}

static void
s_expect_refused (const char *key, const char *value, const char *message)
{
    s_assign_t a;
    s_assign_init (&a, "t");
    s_option (&a, key, value);
    char ns [64];
    char error [256] = "";
    json_t *job = qn_kube_job_manifest (&a.assign, &s_defaults, ns, sizeof (ns),
                                        error, sizeof (error));
    if (job)
        fail_msg ("%s=%s accepted", key, value);
    if (!strstr (error, message))
        fail_msg ("%s=%s: error '%s' lacks '%s'", key, value, error, message);
}

static void
test_manifest_refuses_bad_options (void **state)
{
    (void) state;
    s_expect_refused ("colour", "blue", "unknown kubernetes option 'colour'");
    s_expect_refused ("namespace", "Not_A_Namespace", "invalid namespace");
    s_expect_refused ("namespace", "-x", "invalid namespace");
    s_expect_refused ("service_account", "a b", "invalid service_account");
    s_expect_refused ("node_selector", "novalue", "invalid node_selector");
    s_expect_refused ("node_selector", "bad key=x", "invalid node_selector");
    s_expect_refused ("node_selector", "k=v v", "invalid node_selector");
    s_expect_refused ("toleration", "operator=Sometimes", "invalid operator");
    s_expect_refused ("toleration", "effect=Never", "invalid effect");
    s_expect_refused ("toleration", "toleration_seconds=soon", "invalid toleration_seconds");
    s_expect_refused ("toleration", "colour=red", "unknown field");
    s_expect_refused ("toleration", "keyonly", "not name=value");
    s_expect_refused ("toleration", ",,,", "empty toleration");
    s_expect_refused ("image_pull_secret", "UPPER", "invalid image_pull_secret");
    s_expect_refused ("image", "has space", "invalid image");

    //  Bytes that are not UTF-8 cannot go into JSON: refused, not mangled
    s_assign_t a;
    s_assign_init (&a, "t");
    char *argv [] = { "echo", "\xff\xfe" };
    a.assign.argv = argv;
    a.assign.n_argv = 2;
    char ns [64];
    char error [256] = "";
    assert_null (qn_kube_job_manifest (&a.assign, &s_defaults, ns, sizeof (ns),
                                       error, sizeof (error)));
    assert_non_null (strstr (error, "UTF-8"));
}

static void
test_job_names (void **state)
{
    (void) state;
    s_assign_t a;
    char name [64];
    s_assign_init (&a, "fetch-data");
    qn_kube_job_name (&a.assign, name, sizeof (name));
    assert_string_equal (name, "qanat-42-fetch-data-2");

    //  Changed by the mapping: the index keeps it apart from "train-x"
    s_assign_init (&a, "Train_X");
    qn_kube_job_name (&a.assign, name, sizeof (name));
    assert_string_equal (name, "qanat-42-train-x-3-2");

    s_assign_init (&a, "___");
    qn_kube_job_name (&a.assign, name, sizeof (name));
    assert_true (s_dns_label (name));
    assert_string_equal (name, "qanat-42-3-2");

    s_assign_init (&a, "");
    qn_kube_job_name (&a.assign, name, sizeof (name));
    assert_string_equal (name, "qanat-42-3-2");

    s_assign_init (&a, "a-very-long-task-name-that-goes-on-and-on-and-on-well-past-the-limit");
    a.ref.run_id = UINT64_MAX;
    a.ref.attempt = UINT32_MAX;
    a.ref.task_index = UINT32_MAX;
    qn_kube_job_name (&a.assign, name, sizeof (name));
    assert_true (s_dns_label (name));
    assert_true (strlen (name) <= 63);
    assert_non_null (strstr (name, "-4294967295-4294967295"));

    char selector [192];
    qn_kube_selector (7, 1, 3, selector, sizeof (selector));
    assert_string_equal (selector, "qanat.io%2Frun%3D7%2Cqanat.io%2Ftask%3D1"
                                   "%2Cqanat.io%2Fattempt%3D3");
}


//  ---------------------------------------------------------------------
//  Outcome

static void
s_outcome (const char *job_text, const char *pods_text, qn_kube_outcome_t *outcome)
{
    json_t *job = job_text? json_loads (job_text, 0, NULL): NULL;
    json_t *pods = pods_text? json_loads (pods_text, 0, NULL): NULL;
    if (job_text && !job)
        fail_msg ("bad job JSON in the test: %s", job_text);
    if (pods_text && !pods)
        fail_msg ("bad pods JSON in the test: %s", pods_text);
    qn_kube_outcome (job, pods, outcome);
    json_decref (job);
    json_decref (pods);
}

#define S_RUNNING_JOB "{\"status\":{\"active\":1}}"
#define S_FAILED_JOB(reason, message) \
    "{\"status\":{\"failed\":1,\"conditions\":[{\"type\":\"Failed\",\"status\":\"True\"," \
    "\"reason\":\"" reason "\",\"message\":\"" message "\"}]}}"

static void
test_outcome_states (void **state)
{
    (void) state;
    qn_kube_outcome_t o;
    s_outcome (S_RUNNING_JOB, "{\"items\":[]}", &o);
    assert_int_equal (o.state, QN_KUBE_PENDING);
    assert_false (o.container_started);
    assert_string_equal (o.pod, "");

    s_outcome (S_RUNNING_JOB, "{\"items\":[{\"metadata\":{\"name\":\"p-1\"},\"status\":"
               "{\"phase\":\"Pending\",\"containerStatuses\":[{\"name\":\"main\",\"state\":"
               "{\"waiting\":{\"reason\":\"ContainerCreating\"}}}]}}]}", &o);
    assert_int_equal (o.state, QN_KUBE_PENDING);
    assert_string_equal (o.pod, "p-1");

    s_outcome (S_RUNNING_JOB, "{\"items\":[{\"metadata\":{\"name\":\"p-1\"},\"status\":"
               "{\"phase\":\"Running\",\"containerStatuses\":[{\"name\":\"main\",\"state\":"
               "{\"running\":{\"startedAt\":\"2024-01-01T00:00:00Z\"}}}]}}]}", &o);
    assert_int_equal (o.state, QN_KUBE_RUNNING);
    assert_true (o.container_started);
    assert_true (o.container_running);

    s_outcome ("{\"status\":{\"succeeded\":1,\"conditions\":[{\"type\":\"Complete\","
               "\"status\":\"True\"}]}}",
               "{\"items\":[{\"metadata\":{\"name\":\"p-1\"},\"status\":{\"phase\":"
               "\"Succeeded\",\"containerStatuses\":[{\"name\":\"main\",\"state\":"
               "{\"terminated\":{\"exitCode\":0,\"reason\":\"Completed\"}}}]}}]}", &o);
    assert_int_equal (o.state, QN_KUBE_SUCCEEDED);
    assert_int_equal (o.exit_code, 0);
    assert_string_equal (o.reason, "");
    assert_true (o.container_started);
    assert_false (o.container_running);

    //  A condition that is not "True" decides nothing
    s_outcome ("{\"status\":{\"conditions\":[{\"type\":\"Failed\",\"status\":\"False\"}]}}",
               NULL, &o);
    assert_int_equal (o.state, QN_KUBE_PENDING);
}

static void
test_outcome_failures (void **state)
{
    (void) state;
    qn_kube_outcome_t o;
    //  OOMKilled beats the Job's BackoffLimitExceeded
    s_outcome (S_FAILED_JOB ("BackoffLimitExceeded", "Job has reached the specified backoff limit"),
               "{\"items\":[{\"metadata\":{\"name\":\"p\"},\"status\":{\"phase\":\"Failed\","
               "\"containerStatuses\":[{\"name\":\"main\",\"state\":{\"terminated\":"
               "{\"exitCode\":137,\"reason\":\"OOMKilled\"}}}]}}]}", &o);
    assert_int_equal (o.state, QN_KUBE_FAILED);
    assert_int_equal (o.exit_code, 137);
    assert_string_equal (o.reason, "OOMKilled (exit 137)");
    assert_false (o.timed_out);

    s_outcome (S_FAILED_JOB ("BackoffLimitExceeded", "Job has reached the specified backoff limit"),
               "{\"items\":[{\"metadata\":{\"name\":\"p\"},\"status\":{\"phase\":\"Failed\","
               "\"containerStatuses\":[{\"name\":\"main\",\"state\":{\"terminated\":"
               "{\"exitCode\":3,\"reason\":\"Error\"}}}]}}]}", &o);
    assert_int_equal (o.state, QN_KUBE_FAILED);
    assert_int_equal (o.exit_code, 3);
    assert_string_equal (o.reason, "BackoffLimitExceeded: Job has reached the specified "
                                   "backoff limit (exit 3)");

    s_outcome (S_FAILED_JOB ("DeadlineExceeded", "Job was active longer than specified deadline"),
               "{\"items\":[{\"metadata\":{\"name\":\"p\"},\"status\":{\"phase\":\"Failed\","
               "\"containerStatuses\":[{\"name\":\"main\",\"state\":{\"terminated\":"
               "{\"exitCode\":137,\"reason\":\"Error\"}}}]}}]}", &o);
    assert_int_equal (o.state, QN_KUBE_FAILED);
    assert_true (o.timed_out);
    assert_string_equal (o.reason, "DeadlineExceeded: Job was active longer than specified "
                                   "deadline");

    //  Evicted: the pod failed with a reason, even before the Job says so
    s_outcome (S_RUNNING_JOB,
               "{\"items\":[{\"metadata\":{\"name\":\"p\"},\"status\":{\"phase\":\"Failed\","
               "\"reason\":\"Evicted\",\"message\":\"The node was low on resource: memory.\"}}]}",
               &o);
    assert_int_equal (o.state, QN_KUBE_FAILED);
    assert_string_equal (o.reason, "Evicted: The node was low on resource: memory.");
    assert_int_equal (o.exit_code, -1);

    s_outcome (S_RUNNING_JOB,
               "{\"items\":[{\"metadata\":{\"name\":\"p\"},\"status\":{\"phase\":\"Pending\","
               "\"containerStatuses\":[{\"name\":\"main\",\"state\":{\"waiting\":{\"reason\":"
               "\"ImagePullBackOff\",\"message\":\"Back-off pulling image \\\"x\\\"\"}}}]}}]}", &o);
    assert_int_equal (o.state, QN_KUBE_PULL_ERROR);
    assert_string_equal (o.reason, "ImagePullBackOff: Back-off pulling image \"x\"");
    assert_false (o.container_started);

    s_outcome (S_RUNNING_JOB,
               "{\"items\":[{\"metadata\":{\"name\":\"p\"},\"status\":{\"phase\":\"Pending\","
               "\"containerStatuses\":[{\"name\":\"main\",\"state\":{\"waiting\":{\"reason\":"
               "\"ErrImagePull\"}}}]}}]}", &o);
    assert_int_equal (o.state, QN_KUBE_PULL_ERROR);
    assert_string_equal (o.reason, "ErrImagePull");

    //  The newest pod counts; other containers (sidecars) do not
    s_outcome (S_RUNNING_JOB,
               "{\"items\":[{\"metadata\":{\"name\":\"new\",\"creationTimestamp\":"
               "\"2024-01-02T00:00:00Z\"},\"status\":{\"containerStatuses\":["
               "{\"name\":\"sidecar\",\"state\":{\"waiting\":{\"reason\":\"ErrImagePull\"}}},"
               "{\"name\":\"main\",\"state\":{\"running\":{}}}]}},"
               "{\"metadata\":{\"name\":\"old\",\"creationTimestamp\":\"2024-01-01T00:00:00Z\"},"
               "\"status\":{\"phase\":\"Failed\",\"reason\":\"Evicted\"}}]}", &o);
    assert_int_equal (o.state, QN_KUBE_RUNNING);
    assert_string_equal (o.pod, "new");
}

static void
test_outcome_hostile (void **state)
{
    (void) state;
    qn_kube_outcome_t o;
    qn_kube_outcome (NULL, NULL, &o);
    assert_int_equal (o.state, QN_KUBE_PENDING);
    s_outcome ("[]", "[1,2,3]", &o);
    assert_int_equal (o.state, QN_KUBE_PENDING);
    s_outcome ("{\"status\":{\"conditions\":\"Failed\"}}", "{\"items\":{\"a\":1}}", &o);
    assert_int_equal (o.state, QN_KUBE_PENDING);
    s_outcome ("{\"status\":{\"conditions\":[1,null,{\"type\":7,\"status\":\"True\"}]}}",
               "{\"items\":[null,7,{\"metadata\":{\"name\":\"Bad Name/..\"},\"status\":"
               "{\"containerStatuses\":[{\"state\":{\"terminated\":{\"exitCode\":1e99}}}]}}]}",
               &o);
    assert_int_equal (o.state, QN_KUBE_RUNNING);
    assert_string_equal (o.pod, "");          //  not a name we would put in a URL
    assert_int_equal (o.exit_code, -1);       //  not an integer

    s_outcome (S_FAILED_JOB ("BackoffLimitExceeded", "x"),
               "{\"items\":[{\"status\":{\"containerStatuses\":[{\"name\":\"main\",\"state\":"
               "{\"terminated\":{\"exitCode\":99999999999,\"reason\":7}}}]}}]}", &o);
    assert_int_equal (o.state, QN_KUBE_FAILED);
    assert_int_equal (o.exit_code, -1);
    assert_string_equal (o.reason, "BackoffLimitExceeded: x");

    //  A long message is cut, not overflowed
    char big [4096];
    memset (big, 'm', sizeof (big) - 1);
    big [sizeof (big) - 1] = '\0';
    json_t *pods = json_pack ("{s:[{s:{s:s,s:s,s:s}}]}", "items", "status", "phase", "Failed",
                              "reason", "Evicted", "message", big);
    qn_kube_outcome (NULL, pods, &o);
    json_decref (pods);
    assert_int_equal (o.state, QN_KUBE_FAILED);
    assert_true (strlen (o.reason) < sizeof (o.reason));
    assert_memory_equal (o.reason, "Evicted: mmm", 12);
}


//  ---------------------------------------------------------------------
//  Configuration

static const char *s_kubeconfig =
    "apiVersion: v1\n"
    "kind: Config\n"
    "current-context: dev\n"
    "clusters:\n"
    "- name: prod-cluster\n"
    "  cluster:\n"
    "    server: https://prod.example:6443\n"
    "- name: dev-cluster\n"
    "  cluster:\n"
    "    server: https://10.0.0.1:6443/\n"
    "    certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==\n"
    "contexts:\n"
    "- name: prod\n"
    "  context: {cluster: prod-cluster, user: admin}\n"
    "- name: dev\n"
    "  context:\n"
    "    cluster: dev-cluster\n"
    "    user: dev-user\n"
    "    namespace: team-a\n"
    "users:\n"
    "- name: dev-user\n"
    "  user:\n"
    "    token: abc.def.ghi\n"
    "- name: admin\n"
    "  user:\n"
    "    client-certificate: certs/admin.crt\n"
    "    client-key: /abs/admin.key\n";

static void
test_kubeconfig_parse (void **state)
{
    (void) state;
    char error [256] = "";
    qn_kube_config_t *config = qn_kube_config_parse (s_kubeconfig, strlen (s_kubeconfig), NULL,
                                                     "/home/u/.kube", error, sizeof (error));
    assert_non_null (config);
    assert_string_equal (config->server, "https://10.0.0.1:6443");
    assert_string_equal (config->namespace_name, "team-a");
    assert_string_equal (config->token, "abc.def.ghi");
    assert_non_null (config->ca_data);
    assert_int_equal (config->ca_size, 28);
    assert_memory_equal (config->ca_data, "-----BEGIN CERTIFICATE-----\n", 28);
    assert_null (config->ca_file);
    assert_null (config->cert_file);
    assert_false (config->insecure);
    qn_kube_config_destroy (&config);
    assert_null (config);
    qn_kube_config_destroy (&config);

    config = qn_kube_config_parse (s_kubeconfig, strlen (s_kubeconfig), "prod",
                                   "/home/u/.kube", error, sizeof (error));
    assert_non_null (config);
    assert_string_equal (config->server, "https://prod.example:6443");
    assert_null (config->namespace_name);
    assert_null (config->token);
    assert_string_equal (config->cert_file, "/home/u/.kube/certs/admin.crt");
    assert_string_equal (config->key_file, "/abs/admin.key");
    qn_kube_config_destroy (&config);

    const char *inline_cert =
        "current-context: c\n"
        "clusters: [{name: k, cluster: {server: 'http://127.0.0.1:8080', "
        "insecure-skip-tls-verify: true, certificate-authority: ca.pem}}]\n"
        "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
        "users: [{name: u, user: {client-certificate-data: Y2VydA==, "
        "client-key-data: a2V5}}]\n";
    config = qn_kube_config_parse (inline_cert, strlen (inline_cert), NULL, "/etc/k",
                                   error, sizeof (error));
    assert_non_null (config);
    assert_true (config->insecure);
    assert_string_equal (config->ca_file, "/etc/k/ca.pem");
    assert_int_equal (config->cert_size, 4);
    assert_memory_equal (config->cert_data, "cert", 4);
    assert_int_equal (config->key_size, 3);
    assert_memory_equal (config->key_data, "key", 3);
    qn_kube_config_destroy (&config);
}

static void
test_kubeconfig_token_file (void **state)
{
    (void) state;
    char dir [] = "/tmp/qn-kube-test-XXXXXX";
    assert_non_null (mkdtemp (dir));
    char path [512];
    snprintf (path, sizeof (path), "%s/token", dir);
    FILE *file = fopen (path, "w");
    assert_non_null (file);
    fputs ("  sa-token-123\n", file);
    fclose (file);
    char config_path [512];
    snprintf (config_path, sizeof (config_path), "%s/config", dir);
    file = fopen (config_path, "w");
    assert_non_null (file);
    fputs ("current-context: c\n"
           "clusters: [{name: k, cluster: {server: 'https://h:1'}}]\n"
           "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
           "users: [{name: u, user: {tokenFile: token}}]\n", file);
    fclose (file);
    char error [256] = "";
    qn_kube_config_t *config = qn_kube_config_load (config_path, NULL, error, sizeof (error));
    assert_non_null (config);
    assert_string_equal (config->token, "sa-token-123");
    assert_string_equal (config->token_file, path);
    qn_kube_config_destroy (&config);

    //  In-cluster, from a service account directory of our own
    file = fopen (config_path, "w");
    assert_non_null (file);
    fputs ("ns-1\n", file);
    fclose (file);
    char ns_path [512];
    snprintf (ns_path, sizeof (ns_path), "%s/namespace", dir);
    assert_int_equal (rename (config_path, ns_path), 0);
    unsetenv ("KUBERNETES_SERVICE_HOST");
    config = qn_kube_config_in_cluster (dir, error, sizeof (error));
    assert_null (config);
    assert_non_null (strstr (error, "KUBERNETES_SERVICE_HOST"));
    setenv ("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
    setenv ("KUBERNETES_SERVICE_PORT", "443", 1);
    config = qn_kube_config_in_cluster (dir, error, sizeof (error));
    assert_non_null (config);
    assert_string_equal (config->server, "https://[fd00::1]:443");
    assert_string_equal (config->token, "sa-token-123");
    assert_string_equal (config->namespace_name, "ns-1");
    char ca [512];
    snprintf (ca, sizeof (ca), "%s/ca.crt", dir);
    assert_string_equal (config->ca_file, ca);
    qn_kube_config_destroy (&config);
    setenv ("KUBERNETES_SERVICE_PORT", "443; rm", 1);
    assert_null (qn_kube_config_in_cluster (dir, error, sizeof (error)));
    unsetenv ("KUBERNETES_SERVICE_HOST");
    unsetenv ("KUBERNETES_SERVICE_PORT");

    //  The resolution order: an explicit path wins over $KUBECONFIG
    setenv ("KUBECONFIG", "/nonexistent/one:/nonexistent/two", 1);
    config = qn_kube_config_resolve (NULL, NULL, error, sizeof (error));
    assert_null (config);
    assert_non_null (strstr (error, "/nonexistent/one"));
    config = qn_kube_config_resolve ("/nonexistent/three", NULL, error, sizeof (error));
    assert_null (config);
    assert_non_null (strstr (error, "/nonexistent/three"));
    unsetenv ("KUBECONFIG");

    unlink (path);
    unlink (ns_path);
    rmdir (dir);
}

static void
s_expect_bad_config (const char *text, size_t size, const char *message)
{
    char error [256] = "";
    qn_kube_config_t *config = qn_kube_config_parse (text, size, NULL, NULL, error,
                                                     sizeof (error));
    if (config) {
        qn_kube_config_destroy (&config);
        fail_msg ("accepted: %.80s", text);
    }
    if (!strstr (error, message))
        fail_msg ("error '%s' lacks '%s' for %.80s", error, message, text);
}

#define S_CONTEXT "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
#define S_CLUSTER "clusters: [{name: k, cluster: {server: 'https://h:1'}}]\n"

static void
test_kubeconfig_hostile (void **state)
{
    (void) state;
    s_expect_bad_config ("", 0, "not a mapping");
    s_expect_bad_config ("[1, 2", 5, "YAML error");
    s_expect_bad_config ("- a\n- b\n", 8, "not a mapping");
    s_expect_bad_config ("{a: 1}", 6, "no current-context");
    const char *text = "current-context: [x]\n";
    s_expect_bad_config (text, strlen (text), "no current-context");
    text = "current-context: c\n";
    s_expect_bad_config (text, strlen (text), "no context named 'c'");
    text = "current-context: c\ncontexts: {c: 1}\n";
    s_expect_bad_config (text, strlen (text), "no context named");
    text = "current-context: c\ncontexts: [{name: c, context: [1]}]\n";
    s_expect_bad_config (text, strlen (text), "no context named");
    text = "current-context: c\n" S_CONTEXT;
    s_expect_bad_config (text, strlen (text), "no valid cluster");
    text = "current-context: c\n" S_CONTEXT "clusters: [{name: k, cluster: {server: "
           "'file:///etc/passwd'}}]\n";
    s_expect_bad_config (text, strlen (text), "invalid API server");
    text = "current-context: c\n" S_CONTEXT "clusters: [{name: k, cluster: {server: "
           "\"https://h:1/\\nHost: x\"}}]\n";
    s_expect_bad_config (text, strlen (text), "invalid API server");
    text = "current-context: c\n" S_CONTEXT "clusters: [{name: k, cluster: {}}]\n";
    s_expect_bad_config (text, strlen (text), "no API server");
    text = "current-context: c\n" S_CONTEXT S_CLUSTER;
    s_expect_bad_config (text, strlen (text), "no user named 'u'");
    text = "current-context: c\n" S_CONTEXT "clusters: [{name: k, cluster: {server: "
           "'https://h:1', certificate-authority-data: '!!!not base64'}}]\n";
    s_expect_bad_config (text, strlen (text), "not valid base64");
    text = "current-context: c\n" S_CONTEXT S_CLUSTER
           "users: [{name: u, user: {client-certificate-data: Y2VydA==}}]\n";
    s_expect_bad_config (text, strlen (text), "needs its key");
    text = "current-context: c\n" S_CONTEXT S_CLUSTER
           "users: [{name: u, user: {exec: {command: aws}}}]\n";
    s_expect_bad_config (text, strlen (text), "exec or auth-provider");
    text = "current-context: c\n" S_CONTEXT S_CLUSTER
           "users: [{name: u, user: {token: \"a\\nb\"}}]\n";
    s_expect_bad_config (text, strlen (text), "not printable");
    text = "current-context: c\n" S_CONTEXT S_CLUSTER
           "users: [{name: u, user: {tokenFile: /nonexistent/token}}]\n";
    s_expect_bad_config (text, strlen (text), "cannot open /nonexistent/token");
    //  A NUL byte inside a scalar is not the string it seems to be
    static const char nul [] = "current-context: \"c\\0d\"\n" S_CONTEXT S_CLUSTER
                               "users: [{name: u, user: {}}]\n";
    s_expect_bad_config (nul, sizeof (nul) - 1, "no current-context");
    s_expect_bad_config ("x", QN_KUBE_CONFIG_MAX + 1, "larger than");

    //  Aliases are references, never expanded: a "billion laughs" costs
    //  nothing, and a context made of aliases still reads
    const char *laughs =
        "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
        "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
        "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
        "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
        "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
        "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
        "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]\n"
        "current-context: &name c\n"
        "contexts: [{name: *name, context: {cluster: k, user: u}}]\n"
        "clusters: [{name: k, cluster: {server: 'https://h:1'}}]\n"
        "users: [{name: u, user: {token: t}}]\n";
    char error [256] = "";
    qn_kube_config_t *config = qn_kube_config_parse (laughs, strlen (laughs), NULL, NULL,
                                                     error, sizeof (error));
    assert_non_null (config);
    assert_string_equal (config->token, "t");
    qn_kube_config_destroy (&config);

    //  Deep nesting is refused by the parser or read as nothing useful
    size_t depth = 100000;
    char *deep = (char *) malloc (depth * 2 + 1);
    assert_non_null (deep);
    memset (deep, '[', depth);
    memset (deep + depth, ']', depth);
    deep [depth * 2] = '\0';
    config = qn_kube_config_parse (deep, depth * 2, NULL, NULL, error, sizeof (error));
    assert_null (config);
    free (deep);

    //  Garbage bytes
    char noise [4096];
    unsigned int seed = 7;
    for (int round = 0; round < 200; round++) {
        for (size_t i = 0; i < sizeof (noise); i++)
            noise [i] = (char) (rand_r (&seed) & 0xff);
        config = qn_kube_config_parse (noise, sizeof (noise), NULL, NULL, error,
                                       sizeof (error));
        assert_null (config);
    }
}

static void
test_base64 (void **state)
{
    (void) state;
    size_t size = 0;
    char *data = qn_kube_base64_decode ("aGVsbG8gd29ybGQ=", &size);
    assert_non_null (data);
    assert_int_equal (size, 11);
    assert_string_equal (data, "hello world");
    free (data);
    data = qn_kube_base64_decode ("aGVs\nbG8", &size);
    assert_non_null (data);
    assert_int_equal (size, 5);
    assert_string_equal (data, "hello");
    free (data);
    data = qn_kube_base64_decode ("", &size);
    assert_non_null (data);
    assert_int_equal (size, 0);
    free (data);
    assert_null (qn_kube_base64_decode ("a", &size));
    assert_null (qn_kube_base64_decode ("ab=c", &size));
    assert_null (qn_kube_base64_decode ("ab$c", &size));
    assert_null (qn_kube_base64_decode (NULL, &size));

    char *escaped = qn_kube_escape ("a b/c=d,e~");
    assert_string_equal (escaped, "a%20b%2Fc%3Dd%2Ce~");
    free (escaped);
}


//  ---------------------------------------------------------------------
//  The backend's own checks

static void
s_no_started (void *arg, const qn_attempt_key_t *key, int64_t pid, const char *host,
              const char *workdir, const char *engine_job_id)
{
    (void) arg; (void) key; (void) pid; (void) host; (void) workdir; (void) engine_job_id;
    fail_msg ("no attempt should start");
}

static void
test_backend_create (void **state)
{
    (void) state;
    assert_string_equal (qn_backend_kube.name, "kubernetes");
    assert_true (qn_backend_kube.flags & QN_BACKEND_CAN_REATTACH);
    assert_true (qn_backend_kube.flags & QN_BACKEND_REMOTE);
    assert_non_null (qn_backend_kube.reattach);
    assert_ptr_equal (qn_backend_find ("kubernetes"), &qn_backend_kube);

    zloop_t *loop = zloop_new ();
    qn_backend_events_t events = { s_no_started, NULL, NULL, NULL, NULL };
    //  A typo is an error, not a default
    char *typo [] = { "kubernetes.namespaec=x", NULL };
    qn_backend_config_t config = { .data_dir = "/tmp", .host = "host", .agent_name = "agent",
                                   .options = typo };
    assert_null (qn_backend_kube.create (loop, &config, &events, NULL));
    char *bad_poll [] = { "kubernetes.kubeconfig=/nonexistent", "kubernetes.poll_ms=0", NULL };
    config.options = bad_poll;
    assert_null (qn_backend_kube.create (loop, &config, &events, NULL));
    char *missing [] = { "kubernetes.kubeconfig=/nonexistent/kubeconfig", NULL };
    config.options = missing;
    assert_null (qn_backend_kube.create (loop, &config, &events, NULL));

    //  A good one: start refuses bad options synchronously, reattach bad ids
    char dir [] = "/tmp/qn-kube-test-XXXXXX";
    assert_non_null (mkdtemp (dir));
    char path [512];
    snprintf (path, sizeof (path), "%s/config", dir);
    FILE *file = fopen (path, "w");
    assert_non_null (file);
    fputs ("current-context: c\n" S_CONTEXT
           "clusters: [{name: k, cluster: {server: 'https://127.0.0.1:1'}}]\n"
           "users: [{name: u, user: {token: t}}]\n", file);
    fclose (file);
    char option [600];
    snprintf (option, sizeof (option), "kubernetes.kubeconfig=%s", path);
    char *good [] = { option, NULL };
    config.options = good;
    void *backend = qn_backend_kube.create (loop, &config, &events, NULL);
    assert_non_null (backend);
    s_assign_t a;
    s_assign_init (&a, "t");
    char error [256] = "";
    assert_int_equal (qn_backend_kube.start (backend, &a.assign, error, sizeof (error)), -1);
    assert_non_null (strstr (error, "no image"));
    assert_int_equal (qn_backend_kube.reattach (backend, &a.assign, "no-slash", "",
                                                error, sizeof (error)), -1);
    assert_int_equal (qn_backend_kube.reattach (backend, &a.assign, "ns/Bad_Name", "",
                                                error, sizeof (error)), -1);
    assert_int_equal (qn_backend_kube.reattach (backend, &a.assign, "ns/job-1", "yesterday 3",
                                                error, sizeof (error)), -1);
    assert_non_null (strstr (error, "cursor"));
    assert_int_equal (qn_backend_kube.running (backend), 0);
    qn_attempt_key_t key = { 42, 3, 2 };
    assert_int_equal (qn_backend_kube.stop (backend, &key, "x", QANAT__END_KIND__END_CANCELED), -1);
    qn_backend_kube.destroy (&backend);
    assert_null (backend);
    unlink (path);
    rmdir (dir);
    zloop_destroy (&loop);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_manifest_fields),
        cmocka_unit_test (test_manifest_defaults),
        cmocka_unit_test (test_manifest_refuses_bad_options),
        cmocka_unit_test (test_job_names),
        cmocka_unit_test (test_outcome_states),
        cmocka_unit_test (test_outcome_failures),
        cmocka_unit_test (test_outcome_hostile),
        cmocka_unit_test (test_kubeconfig_parse),
        cmocka_unit_test (test_kubeconfig_token_file),
        cmocka_unit_test (test_kubeconfig_hostile),
        cmocka_unit_test (test_base64),
        cmocka_unit_test (test_backend_create),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
