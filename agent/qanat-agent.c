/*  qanat-agent - runs qanat tasks on this machine for a coordinator.

    Parses options and hands them to the engine (qn_agent).
*/
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include "qn_agent.h"
#include "qn_enrol.h"
#include "qn_identity.h"
#include "qn_s3.h"
#include "qn_backend.h"

#include <czmq.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "unknown"
#endif

#define S_DEFAULT_ENDPOINT  "tcp://127.0.0.1:7711"
#define S_MAX_LABELS        256
#define S_MAX_BACKEND_OPTIONS 64

static void
s_usage (FILE *out)
{
    fprintf (out,
        "Usage: qanat-agent [OPTION]...\n"
        "Run qanat tasks on this machine for a coordinator.\n"
        "\n"
        "  -c, --coordinator ENDPOINT  coordinator's agent endpoint (default\n"
        "                              $QANAT_AGENT_ENDPOINT, else the one this agent\n"
        "                              enrolled through, else " S_DEFAULT_ENDPOINT ")\n"
        "  -j, --join TOKEN            enrol with a join token (made by `qanat token\n"
        "                              create`; default $QANAT_JOIN_TOKEN), once: the\n"
        "                              identity goes to <data-dir>/agent.key\n"
        "      --enrol-timeout SECONDS how long to wait for the coordinator to answer\n"
        "                              the enrolment (default 10)\n"
        "      --insecure              plaintext, no keys: only for a coordinator run\n"
        "                              with --insecure on a trusted machine\n"
        "  -n, --name NAME             agent name (default: the enrolled name, else the\n"
        "                              host name)\n"
        "  -l, --labels K=V[,K=V...]   labels asked for at enrolment (repeatable); once\n"
        "                              enrolled, the granted labels are used\n"
        "  -L, --label K=V             one label (repeatable)\n"
        "  -s, --slots N               tasks run at once (default: online CPUs)\n"
        "  -d, --data-dir DIR          attempts' directories and the event spool\n"
        "                              (default $HOME/.qanat/agent)\n"
        "      --spool-max BYTES       bound of the durable event spool (default 256M;\n"
        "                              K, M, G suffixes); when full, task output pauses\n"
        "                              and new work is refused\n"
        "      --max-unacked BYTES     unacknowledged event bytes before task output\n"
        "                              is paused (default: when the spool is full)\n"
        "      --profile lan|wan       timer profile: lan = heartbeat 1 s, suspect after\n"
        "                              5 s, lost after 30 s; wan = 10 s, 120 s, 600 s\n"
        "      --heartbeat-ms N        heartbeat interval asked of the coordinator\n"
        "      --suspect-after-ms N    silence before the coordinator suspects us\n"
        "      --lost-after-ms N       silence before it declares us lost\n"
        "                              (timers: 0 or unset = the coordinator decides)\n"
        "      --max-backoff-ms N      cap of the reconnection backoff (default 30000)\n"
        "      --stop-after-disconnect SECONDS\n"
        "                              cut off from the coordinator this long, stop the\n"
        "                              running tasks (default 0 = never)\n"
        "      --drain-timeout SECONDS after SIGTERM, wait at most this long for tasks\n"
        "                              to finish before killing them (default 0 = no limit;\n"
        "                              a second SIGTERM kills them at once)\n"
        "  -b, --backend NAME          run tasks through this backend: local, slurm,\n"
        "                              kubernetes (repeatable, or comma-separated; the\n"
        "                              first is the default for tasks that name none;\n"
        "                              default local).  See docs/backends.md\n"
        "  -o, --backend-option BACKEND.KEY=VALUE\n"
        "                              a backend's setting (repeatable), e.g.\n"
        "                              slurm.partition=gpu, kubernetes.namespace=ml\n"
        "      --artifact-store s3://BUCKET[/PREFIX][?endpoint=URL&region=NAME&path_style=true]\n"
        "                              this environment's S3 store: outputs of workflows\n"
        "                              that name no store go straight there (credentials\n"
        "                              from the AWS variables or ~/.aws; default: the\n"
        "                              coordinator's blob store).  See docs/artifacts.md\n"
        "      --cache-max SIZE        bound of the input blob cache (K, M, G suffixes;\n"
        "                              default 10G, 0 = unbounded): least recently used\n"
        "                              blobs go first, none used in the last hour\n"
        "      --cache-keep-recent SECONDS\n"
        "                              blobs used this recently stay even over the\n"
        "                              bound (default 3600)\n"
        "      --keep-workdirs N       keep the work directories of the newest N finished\n"
        "                              attempts for inspection, remove older ones\n"
        "                              (default 100)\n"
        "  -v, --verbose               log debugging detail\n"
        "  -h, --help                  show this help and exit\n"
        "  -V, --version               show the version and exit\n");
}

//  A number of bytes with an optional K, M or G suffix (powers of 1024).
//  Returns 0, or -1 for anything else.
static int
s_parse_size (const char *text, unsigned long long *value_p)
{
    char *end = NULL;
    errno = 0;
    if (!text || *text == '-' || *text == '\0')
        return -1;
    unsigned long long value = strtoull (text, &end, 10);
    if (errno || end == text)
        return -1;
    unsigned long long unit = 1;
    if (*end == 'k' || *end == 'K')
        unit = 1024ULL;
    else
    if (*end == 'm' || *end == 'M')
        unit = 1024ULL * 1024;
    else
    if (*end == 'g' || *end == 'G')
        unit = 1024ULL * 1024 * 1024;
    if (unit > 1) {
        end++;
        if (*end == 'i' && end [1] == 'B')
            end += 2;
        else
        if (*end == 'B')
            end++;
    }
    if (*end || value > ULLONG_MAX / unit)
        return -1;
    *value_p = value * unit;
    return 0;
}

//  A whole number from min to max.  Returns 0, or -1 with a message.
static int
s_parse_number (const char *option, const char *text, long long min, long long max,
                long long *value_p)
{
    char *end = NULL;
    errno = 0;
    long long value = strtoll (text, &end, 10);
    if (errno || !end || *end || end == text || value < min || value > max) {
        fprintf (stderr, "qanat-agent: %s wants a number from %lld to %lld, not '%s'\n",
                 option, min, max, text);
        return -1;
    }
    *value_p = value;
    return 0;
}

typedef struct {
    char *keys [S_MAX_LABELS];
    char *values [S_MAX_LABELS];
    size_t count;
} s_labels_t;

static bool
s_label_key_ok (const char *key, size_t size)
{
    if (size == 0)
        return false;
    for (size_t i = 0; i < size; i++) {
        char c = key [i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
              || c == '_' || c == '.' || c == '-'))
            return false;
    }
    return true;
}

//  Adds "k=v,k=v" (--labels) or "k=v" (--label; values never hold
//  commas, so both parse alike).  Returns 0, or -1 with a message on
//  stderr.  A later label replaces an earlier one with the same key.
static int
s_add_labels (s_labels_t *labels, const char *text)
{
    const char *cur = text;
    while (true) {
        const char *end = strchr (cur, ',');
        size_t size = end? (size_t) (end - cur): strlen (cur);
        const char *eq = memchr (cur, '=', size);
        if (!eq || !s_label_key_ok (cur, (size_t) (eq - cur))) {
            fprintf (stderr, "qanat-agent: invalid label '%.*s' in '%s': expected "
                     "KEY=VALUE with KEY made of letters, digits, '_', '.' or '-'\n",
                     (int) size, cur, text);
            return -1;
        }
        char *key = strndup (cur, (size_t) (eq - cur));
        char *value = strndup (eq + 1, size - (size_t) (eq - cur) - 1);
        if (!key || !value) {
            free (key);
            free (value);
            fprintf (stderr, "qanat-agent: out of memory\n");
            return -1;
        }
        size_t i;
        for (i = 0; i < labels->count; i++)
            if (streq (labels->keys [i], key))
                break;
        if (i < labels->count) {
            free (labels->keys [i]);
            free (labels->values [i]);
        }
        else
        if (labels->count == S_MAX_LABELS) {
            free (key);
            free (value);
            fprintf (stderr, "qanat-agent: more than %d labels\n", S_MAX_LABELS);
            return -1;
        }
        else
            labels->count++;
        labels->keys [i] = key;
        labels->values [i] = value;
        if (!end)
            return 0;
        cur = end + 1;
    }
}

static void
s_labels_free (s_labels_t *labels)
{
    for (size_t i = 0; i < labels->count; i++) {
        free (labels->keys [i]);
        free (labels->values [i]);
    }
    labels->count = 0;
}

//  mkdir -p, the last component with mode; missing parents get 0700 too,
//  since they hold nothing but ours.
static int
s_make_dirs (const char *path, mode_t mode)
{
    char *copy = strdup (path);
    if (!copy)
        return -1;
    for (char *cur = copy + 1; *cur; cur++) {
        if (*cur != '/')
            continue;
        *cur = '\0';
        if (mkdir (copy, mode) == -1 && errno != EEXIST) {
            free (copy);
            return -1;
        }
        *cur = '/';
    }
    free (copy);
    if (mkdir (path, mode) == -1 && errno != EEXIST)
        return -1;
    struct stat st;
    if (stat (path, &st) == -1 || !S_ISDIR (st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

static bool
s_same_labels (s_labels_t *labels, qn_identity_t *identity)
{
    size_t count = qn_identity_label_count (identity);
    if (labels->count != count)
        return false;
    const char **keys = qn_identity_label_keys (identity);
    const char **values = qn_identity_label_values (identity);
    for (size_t i = 0; i < labels->count; i++) {
        size_t j;
        for (j = 0; j < count; j++)
            if (streq (labels->keys [i], keys [j]) && streq (labels->values [i], values [j]))
                break;
        if (j == count)
            return false;
    }
    return true;
}

//  Who we are: with --insecure nobody (plaintext); else the identity in
//  <data-dir>/agent.key, made first by enrolling with the join token when
//  there is none.  Returns 0 with *identity_p (NULL for --insecure), or
//  -1 after telling the operator why.
static int
s_identify (const char *data_dir, const char *join, bool insecure, const char *endpoint,
            const char *name, s_labels_t *labels, int enrol_timeout_ms,
            qn_identity_t **identity_p)
{
    *identity_p = NULL;
    char path [4200];
    snprintf (path, sizeof (path), "%s/" QN_IDENTITY_FILE, data_dir);
    if (insecure) {
        if (join) {
            fprintf (stderr, "qanat-agent: --join and --insecure do not go together: a join "
                     "token enrols with a CURVE coordinator\n");
            return -1;
        }
        if (access (path, F_OK) == 0)
            qn_agent_log (QN_LOG_INFO, "--insecure: not using %s", path);
        return 0;
    }
    char *error = NULL;
    if (access (path, F_OK) == 0) {
        if (join)
            qn_agent_log (QN_LOG_INFO, "already enrolled (%s): --join ignored", path);
        *identity_p = qn_identity_load (path, &error);
    }
    else
    if (join) {
        qn_enrol_request_t request = {
            .token = join,
            .endpoint = endpoint,
            .name = name,
            .label_keys = (const char **) labels->keys,
            .label_values = (const char **) labels->values,
            .label_count = labels->count,
            .path = path,
            .timeout_ms = enrol_timeout_ms
        };
        *identity_p = qn_enrol_join (&request, &error);
    }
    else {
        fprintf (stderr, "qanat-agent: this agent is not enrolled: run it once with --join "
                 "TOKEN (made by `qanat token create`), or --insecure for a coordinator run "
                 "with --insecure\n");
        return -1;
    }
    if (!*identity_p) {
        fprintf (stderr, "qanat-agent: %s\n", error? error: "out of memory");
        free (error);
        return -1;
    }
    return 0;
}

int
main (int argc, char *argv [])
{
    static const struct option options [] = {
        { "coordinator", required_argument, NULL, 'c' },
        { "name",        required_argument, NULL, 'n' },
        { "labels",      required_argument, NULL, 'l' },
        { "label",       required_argument, NULL, 'L' },
        { "slots",       required_argument, NULL, 's' },
        { "data-dir",    required_argument, NULL, 'd' },
        { "max-unacked", required_argument, NULL, 'M' },
        { "spool-max",   required_argument, NULL, 'S' },
        { "profile",     required_argument, NULL, 'P' },
        { "heartbeat-ms", required_argument, NULL, 'H' },
        { "suspect-after-ms", required_argument, NULL, 'U' },
        { "lost-after-ms", required_argument, NULL, 'O' },
        { "max-backoff-ms", required_argument, NULL, 'B' },
        { "stop-after-disconnect", required_argument, NULL, 'D' },
        { "drain-timeout", required_argument, NULL, 'T' },
        { "join",        required_argument, NULL, 'j' },
        { "backend",     required_argument, NULL, 'b' },
        { "backend-option", required_argument, NULL, 'o' },
        { "artifact-store", required_argument, NULL, 'A' },
        { "cache-max",   required_argument, NULL, 'K' },
        { "cache-keep-recent", required_argument, NULL, 'R' },
        { "keep-workdirs", required_argument, NULL, 'W' },
        { "enrol-timeout", required_argument, NULL, 'E' },
        { "insecure",    no_argument,       NULL, 'I' },
        { "verbose",     no_argument,       NULL, 'v' },
        { "help",        no_argument,       NULL, 'h' },
        { "version",     no_argument,       NULL, 'V' },
        { NULL, 0, NULL, 0 }
    };
    const char *endpoint = getenv ("QANAT_AGENT_ENDPOINT");
    if (endpoint && !*endpoint)
        endpoint = NULL;
    const char *join = getenv ("QANAT_JOIN_TOKEN");
    if (join && !*join)
        join = NULL;
    char *join_copy = NULL;
    bool insecure = false;
    long long enrol_timeout_s = 0;
    qn_identity_t *identity = NULL;
    const char *name = NULL;
    const char *data_dir = NULL;
    long slots = 0;
    unsigned long long max_unacked = 0;
    unsigned long long spool_max = 0;
    long long heartbeat_ms = -1;            //  -1 = not given
    long long suspect_ms = -1;
    long long lost_ms = -1;
    long long profile [3] = { 0, 0, 0 };
    long long max_backoff_ms = 0;
    long long stop_after_s = 0;
    long long drain_timeout_s = 0;
    bool verbose = false;
    s_labels_t labels = { { NULL }, { NULL }, 0 };
    const char *backends [QN_AGENT_MAX_BACKENDS];
    size_t backend_count = 0;
    char *backend_text [QN_AGENT_MAX_BACKENDS];     //  strtok copies
    size_t backend_text_count = 0;
    char *backend_options [S_MAX_BACKEND_OPTIONS + 1] = { NULL };
    size_t backend_option_count = 0;
    const char *artifact_store = NULL;
    unsigned long long cache_max = 10ULL * 1024 * 1024 * 1024;
    long long cache_keep_recent_s = -1;
    int keep_workdirs = -1;
    int rc = 1;

    int opt;
    while ((opt = getopt_long (argc, argv, "c:j:n:l:L:s:d:b:o:vhV", options, NULL)) != -1) {
        switch (opt) {
            case 'c':
                endpoint = optarg;
                break;
            case 'j':
                //  Kept aside and wiped from argv, so that ps does not show
                //  the token for as long as the agent runs
                free (join_copy);
                join = join_copy = strdup (optarg);
                if (!join) {
                    fprintf (stderr, "qanat-agent: out of memory\n");
                    goto done;
                }
                memset (optarg, 'x', strlen (optarg));
                break;
            case 'E':
                if (s_parse_number ("--enrol-timeout", optarg, 1, 3600, &enrol_timeout_s) == -1)
                    goto done;
                break;
            case 'I':
                insecure = true;
                break;
            case 'n':
                name = optarg;
                break;
            case 'l':
            case 'L':
                if (s_add_labels (&labels, optarg) == -1)
                    goto done;
                break;
            case 's': {
                char *end = NULL;
                errno = 0;
                slots = strtol (optarg, &end, 10);
                if (errno || !end || *end || end == optarg || slots < 1 || slots > 100000) {
                    fprintf (stderr, "qanat-agent: --slots wants a number from 1 to 100000, "
                             "not '%s'\n", optarg);
                    goto done;
                }
                break;
            }
            case 'd':
                data_dir = optarg;
                break;
            case 'b': {
                if (backend_text_count == QN_AGENT_MAX_BACKENDS
                ||  !(backend_text [backend_text_count] = strdup (optarg))) {
                    fprintf (stderr, "qanat-agent: too many --backend options\n");
                    goto done;
                }
                char *save = NULL;
                for (char *word = strtok_r (backend_text [backend_text_count++], ",", &save);
                     word; word = strtok_r (NULL, ",", &save)) {
                    if (backend_count == QN_AGENT_MAX_BACKENDS) {
                        fprintf (stderr, "qanat-agent: at most %d backends\n",
                                 QN_AGENT_MAX_BACKENDS);
                        goto done;
                    }
                    if (!qn_backend_find (word)) {
                        fprintf (stderr, "qanat-agent: unknown backend '%s' (known: local, "
                                 "slurm, kubernetes)\n", word);
                        goto done;
                    }
                    backends [backend_count++] = word;
                }
                break;
            }
            case 'o': {
                const char *dot = strchr (optarg, '.');
                const char *equals = strchr (optarg, '=');
                if (!dot || !equals || dot > equals || dot == optarg || equals == dot + 1) {
                    fprintf (stderr, "qanat-agent: --backend-option wants BACKEND.KEY=VALUE, "
                             "not '%s'\n", optarg);
                    goto done;
                }
                if (backend_option_count == S_MAX_BACKEND_OPTIONS) {
                    fprintf (stderr, "qanat-agent: at most %d --backend-option values\n",
                             S_MAX_BACKEND_OPTIONS);
                    goto done;
                }
                backend_options [backend_option_count++] = optarg;
                break;
            }
            case 'A': {
                qn_s3_store_url_t store;
                char error [256] = "";
                if (qn_s3_store_url_parse (optarg, &store, error, sizeof error) == -1) {
                    fprintf (stderr, "qanat-agent: --artifact-store: %s\n", error);
                    goto done;
                }
                qn_s3_store_url_clear (&store);
                artifact_store = optarg;
                break;
            }
            case 'K':
                if (s_parse_size (optarg, &cache_max) == -1) {
                    fprintf (stderr, "qanat-agent: --cache-max wants a number of bytes with "
                             "an optional K, M or G, not '%s'\n", optarg);
                    goto done;
                }
                break;
            case 'W': {
                char *end = NULL;
                errno = 0;
                long count = strtol (optarg, &end, 10);
                if (errno || end == optarg || *end || count < 0 || count > 1000000) {
                    fprintf (stderr, "qanat-agent: --keep-workdirs wants a number from 0 to "
                             "1000000, not '%s'\n", optarg);
                    goto done;
                }
                keep_workdirs = (int) count;
                break;
            }
            case 'R': {
                char *end = NULL;
                errno = 0;
                long long seconds = strtoll (optarg, &end, 10);
                if (errno || end == optarg || *end || seconds < 0 || seconds > 365LL * 86400) {
                    fprintf (stderr, "qanat-agent: --cache-keep-recent wants seconds (0 to "
                             "a year), not '%s'\n", optarg);
                    goto done;
                }
                cache_keep_recent_s = seconds;
                break;
            }
            case 'M':
                if (s_parse_size (optarg, &max_unacked) == -1 || max_unacked < 1024) {
                    fprintf (stderr, "qanat-agent: --max-unacked wants a number of bytes "
                             "(at least 1024), not '%s'\n", optarg);
                    goto done;
                }
                break;
            case 'S':
                if (s_parse_size (optarg, &spool_max) == -1 || spool_max < 256 * 1024
                ||  spool_max > (1ULL << 40)) {
                    fprintf (stderr, "qanat-agent: --spool-max wants a number of bytes "
                             "from 256K to 1024G, not '%s'\n", optarg);
                    goto done;
                }
                break;
            case 'P':
                if (streq (optarg, "lan")) {
                    profile [0] = 1000;
                    profile [1] = 5000;
                    profile [2] = 30000;
                }
                else
                if (streq (optarg, "wan")) {
                    profile [0] = 10000;
                    profile [1] = 120000;
                    profile [2] = 600000;
                }
                else {
                    fprintf (stderr, "qanat-agent: --profile wants lan or wan, not '%s'\n",
                             optarg);
                    goto done;
                }
                break;
            case 'H':
                if (s_parse_number ("--heartbeat-ms", optarg, 0, 600000, &heartbeat_ms) == -1)
                    goto done;
                if (heartbeat_ms > 0 && heartbeat_ms < 50) {
                    fprintf (stderr, "qanat-agent: --heartbeat-ms must be 0 or at least 50\n");
                    goto done;
                }
                break;
            case 'U':
                if (s_parse_number ("--suspect-after-ms", optarg, 0, 86400000, &suspect_ms) == -1)
                    goto done;
                break;
            case 'O':
                if (s_parse_number ("--lost-after-ms", optarg, 0, 86400000, &lost_ms) == -1)
                    goto done;
                break;
            case 'B':
                if (s_parse_number ("--max-backoff-ms", optarg, 250, 3600000,
                                    &max_backoff_ms) == -1)
                    goto done;
                break;
            case 'D':
                if (s_parse_number ("--stop-after-disconnect", optarg, 0, 31536000,
                                    &stop_after_s) == -1)
                    goto done;
                break;
            case 'T':
                if (s_parse_number ("--drain-timeout", optarg, 0, 31536000,
                                    &drain_timeout_s) == -1)
                    goto done;
                break;
            case 'v':
                verbose = true;
                break;
            case 'h':
                s_usage (stdout);
                rc = 0;
                goto done;
            case 'V':
                printf ("qanat-agent %s\n", PACKAGE_VERSION);
                rc = 0;
                goto done;
            default:
                s_usage (stderr);
                goto done;
        }
    }
    if (optind < argc) {
        fprintf (stderr, "qanat-agent: unexpected argument '%s'\n", argv [optind]);
        s_usage (stderr);
        goto done;
    }
    if (name && !*name) {
        fprintf (stderr, "qanat-agent: --name must not be empty\n");
        goto done;
    }
    //  Explicit timers override the profile's, whatever their order
    if (heartbeat_ms < 0)
        heartbeat_ms = profile [0];
    if (suspect_ms < 0)
        suspect_ms = profile [1];
    if (lost_ms < 0)
        lost_ms = profile [2];
    if (heartbeat_ms && suspect_ms && suspect_ms < heartbeat_ms) {
        fprintf (stderr, "qanat-agent: --suspect-after-ms (%lld) is shorter than the "
                 "heartbeat (%lld ms)\n", suspect_ms, heartbeat_ms);
        goto done;
    }
    if (suspect_ms && lost_ms && lost_ms < suspect_ms) {
        fprintf (stderr, "qanat-agent: --lost-after-ms (%lld) is shorter than "
                 "--suspect-after-ms (%lld)\n", lost_ms, suspect_ms);
        goto done;
    }
    if (slots == 0) {
        long cpus = sysconf (_SC_NPROCESSORS_ONLN);
        slots = cpus > 0? cpus: 1;
    }
    char default_dir [4096];
    if (!data_dir) {
        const char *home = getenv ("HOME");
        if (!home || !*home) {
            fprintf (stderr, "qanat-agent: $HOME is not set; give --data-dir\n");
            goto done;
        }
        snprintf (default_dir, sizeof (default_dir), "%s/.qanat/agent", home);
        data_dir = default_dir;
    }
    if (s_make_dirs (data_dir, 0700) == -1) {
        fprintf (stderr, "qanat-agent: cannot create data directory %s: %s\n",
                 data_dir, strerror (errno));
        goto done;
    }
    qn_agent_log_set_verbose (verbose);

    char hostname [256] = "";
    if (!name) {
        if (gethostname (hostname, sizeof (hostname) - 1) == -1 || !*hostname)
            snprintf (hostname, sizeof (hostname), "localhost");
    }
    if (s_identify (data_dir, join, insecure, endpoint, name? name: hostname, &labels,
                    (int) enrol_timeout_s * 1000, &identity) == -1)
        goto done;
    const char **label_keys = (const char **) labels.keys;
    const char **label_values = (const char **) labels.values;
    size_t label_count = labels.count;
    if (identity) {
        const char *enrolled = qn_identity_name (identity);
        if (name && !streq (name, enrolled)) {
            fprintf (stderr, "qanat-agent: this agent is enrolled as '%s' (%s/" QN_IDENTITY_FILE
                     "), not '%s': drop --name, or revoke it and enrol again to rename it\n",
                     enrolled, data_dir, name);
            goto done;
        }
        name = enrolled;
        label_keys = qn_identity_label_keys (identity);
        label_values = qn_identity_label_values (identity);
        label_count = qn_identity_label_count (identity);
        if (labels.count && !s_same_labels (&labels, identity))
            qn_agent_log (QN_LOG_WARNING, "--labels differ from the labels granted at "
                          "enrolment; the granted ones apply");
        if (!endpoint && *qn_identity_endpoint (identity))
            endpoint = qn_identity_endpoint (identity);
    }
    if (!name)
        name = hostname;
    if (!endpoint)
        endpoint = S_DEFAULT_ENDPOINT;
    qn_agent_config_t config = {
        .endpoint = endpoint,
        .name = name,
        .label_keys = label_keys,
        .label_values = label_values,
        .label_count = label_count,
        .slots = (uint32_t) slots,
        .data_dir = data_dir,
        .outbox_limit = (size_t) max_unacked,
        .spool_max = spool_max,
        .heartbeat_ms = (uint32_t) heartbeat_ms,
        .suspect_after_ms = (uint32_t) suspect_ms,
        .lost_after_ms = (uint32_t) lost_ms,
        .max_backoff_ms = (uint32_t) max_backoff_ms,
        .stop_after_disconnect_s = (uint32_t) stop_after_s,
        .drain_timeout_s = (uint32_t) drain_timeout_s,
        .cert = identity? qn_identity_cert (identity): NULL,
        .server_key = identity? qn_identity_coordinator_key (identity): NULL,
        .backends = backends,
        .backend_count = backend_count,
        .backend_options = backend_options,
        .artifact_store = artifact_store,
        .cache_max = (uint64_t) cache_max,
        .cache_keep_recent_s = (int64_t) cache_keep_recent_s,
        .keep_workdirs = keep_workdirs
    };
    //  An option for a backend the agent does not run is a mistake to say
    for (size_t i = 0; i < backend_option_count; i++) {
        bool used = false;
        for (size_t b = 0; b < (backend_count? backend_count: 1) && !used; b++) {
            const char *backend = backend_count? backends [b]: "local";
            size_t len = strlen (backend);
            used = strncmp (backend_options [i], backend, len) == 0
                && backend_options [i][len] == '.';
        }
        if (!used) {
            fprintf (stderr, "qanat-agent: --backend-option %s is for a backend this agent "
                     "does not run (add --backend)\n", backend_options [i]);
            goto done;
        }
    }
    char label_text [2048] = "";
    size_t at = 0;
    for (size_t i = 0; i < label_count && at < sizeof (label_text); i++) {
        int n = snprintf (label_text + at, sizeof (label_text) - at, "%s%s=%s",
                          i? ",": "", label_keys [i], label_values [i]);
        if (n < 0)
            break;
        at += (size_t) n;
    }
    qn_agent_log (QN_LOG_INFO, "qanat-agent %s connecting to %s with labels %s and %ld slots"
                  " (%s)", name, endpoint, label_count? label_text: "(none)", slots,
                  identity? "CURVE": "plaintext, --insecure");

    qn_agent_t *agent = qn_agent_new (&config);
    if (!agent) {
        fprintf (stderr, "qanat-agent: cannot start (bad endpoint '%s'?)\n", endpoint);
        goto done;
    }
    rc = qn_agent_run (agent) == 0? 0: 1;
    qn_agent_destroy (&agent);
    qn_agent_log (QN_LOG_INFO, "qanat-agent %s stopped", name);

done:
    if (join_copy) {
        explicit_bzero (join_copy, strlen (join_copy));
        free (join_copy);
    }
    qn_identity_destroy (&identity);
    s_labels_free (&labels);
    for (size_t i = 0; i < backend_text_count; i++)
        free (backend_text [i]);
    return rc;
}
