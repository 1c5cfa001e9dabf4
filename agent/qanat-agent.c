/*  qanat-agent - runs qanat tasks on this machine for a coordinator.

    Parses options (s_options_parse), settles the configuration (timers,
    data directory, identity: s_options_settle, s_identify, s_configure)
    and runs the engine, qn_agent (s_run), in the foreground or detached
    (--daemon).  `qanat-agent enrol` (s_enrol_main) only enrols: a
    one-time step before the service starts, without a token from then on.
*/
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include "qn_agent.h"
#include "qn_log.h"
#include "qn_config.h"
#include "qn_enrol.h"
#include "qn_identity.h"
#include "qn_s3.h"
#include "qn_backend.h"
#include "qn_resources.h"
#include "qn_daemon.h"
#include "qn_sdnotify.h"

#include <czmq.h>
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <inttypes.h>
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
        "       qanat-agent enrol --token TOKEN [OPTION]...  (see qanat-agent enrol --help)\n"
        "Run qanat tasks on this machine for a coordinator.\n"
        "\n"
        "  -c, --coordinator ENDPOINT  coordinator's agent endpoint (default\n"
        "                              $QANAT_AGENT_ENDPOINT, else the one this agent\n"
        "                              enrolled through, else " S_DEFAULT_ENDPOINT ")\n"
        "  -j, --join TOKEN            enrol with a join token (made by `qanat token\n"
        "                              create`; default $QANAT_JOIN_TOKEN), once: the\n"
        "                              identity goes to <data-dir>/agent.key\n"
        "      --force                 with --join, enrol anew even when enrolled: a new\n"
        "                              key replaces <data-dir>/agent.key (without it,\n"
        "                              --join on an enrolled agent is refused)\n"
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
        "      --gpus I,J...           this machine's GPUs by index, instead of asking\n"
        "                              nvidia-smi ('none': no GPU)\n"
        "      --resources cpus=N,memory=SIZE,gpus=N\n"
        "                              what this machine offers tasks, instead of what\n"
        "                              is detected (CPU affinity and cgroup quota,\n"
        "                              memory, NVIDIA GPUs).  See docs/scheduling.md\n"
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
        "                              kubernetes, lambda, databricks, ray, airflow\n"
        "                              (repeatable, or comma-separated; the first is the\n"
        "                              default for tasks naming none; default local)\n"
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
        "      --warm-python N         keep up to N warm Python workers for SDK ops\n"
        "                              (docs/python.md; local.warm_rss_mb bounds each)\n"
        "      --daemon                run in the background (no service manager needed):\n"
        "                              the process id goes to the pid file, the output\n"
        "                              to the log file; refused while the pid file names\n"
        "                              a running agent\n"
        "      --pid-file FILE         with --daemon (default <data-dir>/agent.pid)\n"
        "      --log-file FILE         with --daemon (default <data-dir>/agent.log)\n"
        "      --config FILE           read settings from a YAML file (/etc/qanat/agent.yaml;\n"
        "                              keys as the long options with '_' for '-'; flags\n"
        "                              override it; docs/configuration.md)\n"
        "      --check-config          check the config file and options, print the\n"
        "                              effective settings and exit (0 = good, 2 = not)\n"
        "      --log-format text|json  log lines as text (default) or JSON objects\n"
        "  -v, --verbose               log debugging detail\n"
        "  -h, --help                  show this help and exit\n"
        "  -V, --version               show the version and exit\n");
}

static void
s_enrol_usage (FILE *out)
{
    fprintf (out,
        "Usage: qanat-agent enrol --token TOKEN [OPTION]...\n"
        "Enrol this agent with a coordinator, once, and exit: the agent's key, name,\n"
        "labels and coordinator go to <data-dir>/agent.key, and the agent then starts\n"
        "without a token (e.g. systemctl start qanat-agent).  One token made with\n"
        "`qanat token create --uses N` enrols N agents, each under its own name.\n"
        "\n"
        "  -t, --token TOKEN           the join token (default $QANAT_JOIN_TOKEN)\n"
        "  -c, --coordinator ENDPOINT  the coordinator's agent endpoint (default: the\n"
        "                              one the token names)\n"
        "  -n, --name NAME             the agent's name (default: the host name)\n"
        "  -l, --labels K=V[,K=V...]   labels asked for (repeatable)\n"
        "  -L, --label K=V             one label (repeatable)\n"
        "  -d, --data-dir DIR          where the key goes (default: as root, when the\n"
        "                              user qanat-agent exists, /var/lib/qanat-agent;\n"
        "                              else $HOME/.qanat/agent)\n"
        "  -u, --user USER             as root, give the data directory and key to USER\n"
        "                              (default qanat-agent, when it exists and the data\n"
        "                              directory is the default one)\n"
        "      --force                 enrol anew even when enrolled (a new key)\n"
        "      --enrol-timeout SECONDS how long to wait for the coordinator (default 10)\n"
        "  -v, --verbose               log debugging detail\n"
        "  -h, --help                  show this help and exit\n");
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
//  An identity that exists is kept: --join then is refused, unless force
//  (enrol anew, replacing it); a token from $QANAT_JOIN_TOKEN (join_flag
//  false) is ignored, so that a container restarted with the same
//  environment keeps its identity.
static int
s_identify (const char *data_dir, const char *join, bool join_flag, bool force, bool insecure,
            const char *endpoint, const char *name, s_labels_t *labels, int enrol_timeout_ms,
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
            qn_log (QN_LOG_INFO, "agent", "--insecure: not using %s", path);
        return 0;
    }
    char *error = NULL;
    bool enrolled = access (path, F_OK) == 0;
    if (enrolled && join && join_flag && !force) {
        fprintf (stderr, "qanat-agent: this agent is already enrolled (%s): a new "
                 "enrolment would replace its identity; add --force to enrol anew with a new "
                 "key (an agent of the same name must be revoked first: qanat agent revoke "
                 "NAME), or start it without a token to run as enrolled\n", path);
        return -1;
    }
    if (enrolled && !(join && force)) {
        if (join)
            qn_log (QN_LOG_INFO, "agent", "already enrolled (%s): $QANAT_JOIN_TOKEN ignored "
                    "(--force enrols anew)", path);
        *identity_p = qn_identity_load (path, &error);
    }
    else
    if (join) {
        if (enrolled)
            qn_log (QN_LOG_WARNING, "agent", "--force: enrolling anew; %s is replaced once "
                    "the coordinator accepts the new key", path);
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

//  ---------------------------------------------------------------------
//  Options

//  Long options without a letter of their own
enum { OPT_LOG_FORMAT = 1000, OPT_CHECK_CONFIG };

//  Every option of the service once: its long name is also its key in
//  the config file (with '_' for '-'), and its type and range are checked
//  for both (lib/qn_config.h).  Adding an option is a row here, a case in
//  s_options_parse (or s_parse_capacity, s_parse_timer) and its line in
//  s_usage.  The letters of options without a short form are only
//  getopt's values (S_SHORT_OPTIONS has the short ones).
static const qn_config_option_t s_table [] = {
    { "coordinator", 'c', QN_CONFIG_STRING, 0, 0, NULL,
      "($QANAT_AGENT_ENDPOINT, else the enrolled one, else " S_DEFAULT_ENDPOINT ")", 0 },
    { "join", 'j', QN_CONFIG_STRING, 0, 0, NULL, "($QANAT_JOIN_TOKEN)", QN_CONFIG_SECRET },
    { "force", 'F', QN_CONFIG_FLAG, 0, 0, NULL, NULL, QN_CONFIG_CLI_ONLY },
    { "enrol-timeout", 'E', QN_CONFIG_NUMBER, 1, 3600, NULL, "10", 0 },
    { "insecure", 'I', QN_CONFIG_FLAG, 0, 0, NULL, NULL, 0 },
    { "name", 'n', QN_CONFIG_STRING, 0, 0, NULL, "(the enrolled name, else the host name)", 0 },
    { "labels", 'l', QN_CONFIG_LIST, 0, 0, NULL, "(the enrolled ones)", 0 },
    { "label", 'L', QN_CONFIG_LIST, 0, 0, NULL, "(the enrolled ones)", 0 },
    { "slots", 's', QN_CONFIG_NUMBER, 1, 100000, NULL, "(online CPUs)", 0 },
    { "gpus", 'G', QN_CONFIG_STRING, 0, 0, NULL, "(detected with nvidia-smi)", 0 },
    { "resources", 'X', QN_CONFIG_STRING, 0, 0, NULL, "(detected)", 0 },
    { "data-dir", 'd', QN_CONFIG_STRING, 0, 0, NULL, "($HOME/.qanat/agent)", 0 },
    { "spool-max", 'S', QN_CONFIG_SIZE, 256 * 1024, 1LL << 40, NULL, "256M", 0 },
    { "max-unacked", 'M', QN_CONFIG_SIZE, 1024, 1LL << 40, NULL, "(when the spool is full)", 0 },
    { "profile", 'P', QN_CONFIG_CHOICE, 0, 0, "lan|wan", "(the coordinator decides)", 0 },
    { "heartbeat-ms", 'H', QN_CONFIG_NUMBER, 0, 600000, NULL, "0", 0 },
    { "suspect-after-ms", 'U', QN_CONFIG_NUMBER, 0, 86400000, NULL, "0", 0 },
    { "lost-after-ms", 'O', QN_CONFIG_NUMBER, 0, 86400000, NULL, "0", 0 },
    { "max-backoff-ms", 'B', QN_CONFIG_NUMBER, 250, 3600000, NULL, "30000", 0 },
    { "stop-after-disconnect", 'D', QN_CONFIG_NUMBER, 0, 31536000, NULL, "0", 0 },
    { "drain-timeout", 'T', QN_CONFIG_NUMBER, 0, 31536000, NULL, "0", 0 },
    { "backend", 'b', QN_CONFIG_LIST, 0, 0, NULL, "local", 0 },
    { "backend-option", 'o', QN_CONFIG_LIST, 0, 0, NULL, "(none)", 0 },
    { "artifact-store", 'A', QN_CONFIG_STRING, 0, 0, NULL, "(the coordinator's blob store)", 0 },
    { "cache-max", 'K', QN_CONFIG_SIZE, 0, 1LL << 50, NULL, "10G", 0 },
    { "cache-keep-recent", 'R', QN_CONFIG_NUMBER, 0, 365LL * 86400, NULL, "3600", 0 },
    { "keep-workdirs", 'W', QN_CONFIG_NUMBER, 0, 1000000, NULL, "100", 0 },
    { "warm-python", 'w', QN_CONFIG_NUMBER, 0, 64, NULL, "0", 0 },
    { "daemon", 'Z', QN_CONFIG_FLAG, 0, 0, NULL, NULL, 0 },
    { "pid-file", 'Q', QN_CONFIG_STRING, 0, 0, NULL, "(<data-dir>/agent.pid)", 0 },
    { "log-file", 'Y', QN_CONFIG_STRING, 0, 0, NULL, "(<data-dir>/agent.log)", 0 },
    { "log-format", OPT_LOG_FORMAT, QN_CONFIG_CHOICE, 0, 0, "text|json", "text", 0 },
    { "verbose", 'v', QN_CONFIG_FLAG, 0, 0, NULL, NULL, 0 },
    { "config", 'f', QN_CONFIG_STRING, 0, 0, NULL, NULL, QN_CONFIG_CLI_ONLY },
    { "check-config", OPT_CHECK_CONFIG, QN_CONFIG_FLAG, 0, 0, NULL, NULL, QN_CONFIG_CLI_ONLY },
    { "help", 'h', QN_CONFIG_FLAG, 0, 0, NULL, NULL, QN_CONFIG_CLI_ONLY },
    { "version", 'V', QN_CONFIG_FLAG, 0, 0, NULL, NULL, QN_CONFIG_CLI_ONLY },
    { NULL, 0, 0, 0, 0, NULL, NULL, 0 }
};
#define S_SHORT_OPTIONS "c:j:n:l:L:s:d:b:o:vhV"

//  An option's value against its row.  0, or -1 with a message.
static int
s_check_value (int opt, const char *arg)
{
    char *error = NULL;
    for (size_t i = 0; s_table [i].name; i++)
        if (s_table [i].val == opt && arg && qn_config_check (&s_table [i], arg, &error) == -1) {
            fprintf (stderr, "qanat-agent: --%s %s\n", s_table [i].name, error);
            free (error);
            return -1;
        }
    return 0;
}

//  The join token is wiped from the real argv too (ps shows that one)
static void
s_wipe_join (int argc, char *argv [])
{
    for (int i = 1; i < argc && strcmp (argv [i], "--") != 0; i++) {
        char *token = NULL;
        if ((streq (argv [i], "--join") || streq (argv [i], "-j")) && i + 1 < argc)
            token = argv [++i];
        else
        if (strncmp (argv [i], "--join=", 7) == 0)
            token = argv [i] + 7;
        else
        if (strncmp (argv [i], "-j", 2) == 0)
            token = argv [i] + 2;
        if (token)
            memset (token, 'x', strlen (token));
    }
}

//  Everything the command line (and the environment) says
typedef struct {
    const char *endpoint;
    const char *join;
    char *join_copy;                        //  --join, kept off argv
    bool force;                             //  --force: enrol again when enrolled
    bool insecure;
    long long enrol_timeout_s;
    const char *name;
    const char *data_dir;
    long slots;
    unsigned long long max_unacked;
    unsigned long long spool_max;
    long long heartbeat_ms;                 //  -1 = not given
    long long suspect_ms;
    long long lost_ms;
    long long profile [3];
    long long max_backoff_ms;
    long long stop_after_s;
    long long drain_timeout_s;
    bool verbose;
    s_labels_t labels;
    const char *backends [QN_AGENT_MAX_BACKENDS];
    size_t backend_count;
    char *backend_text [QN_AGENT_MAX_BACKENDS];     //  strtok copies
    size_t backend_text_count;
    char *backend_options [S_MAX_BACKEND_OPTIONS + 1];
    size_t backend_option_count;
    const char *artifact_store;
    unsigned long long cache_max;
    long long cache_keep_recent_s;
    int keep_workdirs;
    bool daemon;                            //  --daemon
    const char *pid_file;
    const char *log_file;
    char pid_default [4200];
    char log_default [4200];
    const char *gpus;                       //  --gpus, NULL = detect
    const char *resources;                  //  --resources, NULL = detect
    bool check_config;                      //  --check-config
    qn_log_format_t log_format;
    int argc;                               //  the config file's settings, then argv
    char **argv;
    char default_dir [4096];                //  data_dir when not given
    char hostname [256];                    //  name when not given
} s_options_t;

static void
s_options_init (s_options_t *self)
{
    memset (self, 0, sizeof (*self));
    self->endpoint = getenv ("QANAT_AGENT_ENDPOINT");
    if (self->endpoint && !*self->endpoint)
        self->endpoint = NULL;
    self->join = getenv ("QANAT_JOIN_TOKEN");
    if (self->join && !*self->join)
        self->join = NULL;
    self->heartbeat_ms = -1;
    self->suspect_ms = -1;
    self->lost_ms = -1;
    self->cache_max = 10ULL * 1024 * 1024 * 1024;
    self->cache_keep_recent_s = -1;
    self->keep_workdirs = -1;
}

static void
s_options_free (s_options_t *self)
{
    if (self->join_copy) {
        explicit_bzero (self->join_copy, strlen (self->join_copy));
        free (self->join_copy);
        self->join_copy = NULL;
    }
    s_labels_free (&self->labels);
    qn_config_argv_free (self->argc, self->argv);
    self->argv = NULL;
    for (size_t i = 0; i < self->backend_text_count; i++)
        free (self->backend_text [i]);
    self->backend_text_count = 0;
}

//  --join / enrol --token: kept aside and wiped from argv, so that ps
//  does not show the token for as long as the agent runs.  0, or -1.
static int
s_keep_token (s_options_t *self, char *text)
{
    free (self->join_copy);
    self->join = self->join_copy = strdup (text);
    if (!self->join) {
        fprintf (stderr, "qanat-agent: out of memory\n");
        return -1;
    }
    memset (text, 'x', strlen (text));
    return 0;
}

//  --backend NAME[,NAME...]: 0, or -1 with a message
static int
s_add_backends (s_options_t *self, const char *text)
{
    if (self->backend_text_count == QN_AGENT_MAX_BACKENDS
    ||  !(self->backend_text [self->backend_text_count] = strdup (text))) {
        fprintf (stderr, "qanat-agent: too many --backend options\n");
        return -1;
    }
    char *save = NULL;
    for (char *word = strtok_r (self->backend_text [self->backend_text_count++], ",", &save);
         word; word = strtok_r (NULL, ",", &save)) {
        if (self->backend_count == QN_AGENT_MAX_BACKENDS) {
            fprintf (stderr, "qanat-agent: at most %d backends\n", QN_AGENT_MAX_BACKENDS);
            return -1;
        }
        if (!qn_backend_find (word)) {
            char known [256];
            fprintf (stderr, "qanat-agent: unknown backend '%s' (known: %s)\n", word,
                     qn_backend_names (known, sizeof known));
            return -1;
        }
        self->backends [self->backend_count++] = word;
    }
    return 0;
}

//  --backend-option BACKEND.KEY=VALUE: 0, or -1 with a message
static int
s_add_backend_option (s_options_t *self, char *text)
{
    const char *dot = strchr (text, '.');
    const char *equals = strchr (text, '=');
    if (!dot || !equals || dot > equals || dot == text || equals == dot + 1) {
        fprintf (stderr, "qanat-agent: --backend-option wants BACKEND.KEY=VALUE, "
                 "not '%s'\n", text);
        return -1;
    }
    if (self->backend_option_count == S_MAX_BACKEND_OPTIONS) {
        fprintf (stderr, "qanat-agent: at most %d --backend-option values\n",
                 S_MAX_BACKEND_OPTIONS);
        return -1;
    }
    self->backend_options [self->backend_option_count++] = text;
    return 0;
}

//  --profile lan|wan: 0, or -1 with a message
static int
s_set_profile (s_options_t *self, const char *text)
{
    if (streq (text, "lan")) {
        self->profile [0] = 1000;
        self->profile [1] = 5000;
        self->profile [2] = 30000;
    }
    else
    if (streq (text, "wan")) {
        self->profile [0] = 10000;
        self->profile [1] = 120000;
        self->profile [2] = 600000;
    }
    else {
        fprintf (stderr, "qanat-agent: --profile wants lan or wan, not '%s'\n", text);
        return -1;
    }
    return 0;
}

//  The options of the engine's capacity and storage (slots, sizes,
//  counts, the artifact store).  0, or -1 with a message.
static int
s_parse_capacity (s_options_t *self, int opt, const char *arg)
{
    char *end = NULL;
    errno = 0;
    switch (opt) {
        case 's':
            self->slots = strtol (arg, &end, 10);
            if (errno || !end || *end || end == arg || self->slots < 1 || self->slots > 100000) {
                fprintf (stderr, "qanat-agent: --slots wants a number from 1 to 100000, "
                         "not '%s'\n", arg);
                return -1;
            }
            return 0;
        case 'A': {
            qn_s3_store_url_t store;
            char error [256] = "";
            if (qn_s3_store_url_parse (arg, &store, error, sizeof error) == -1) {
                fprintf (stderr, "qanat-agent: --artifact-store: %s\n", error);
                return -1;
            }
            qn_s3_store_url_clear (&store);
            self->artifact_store = arg;
            return 0;
        }
        case 'K':
            if (s_parse_size (arg, &self->cache_max) == -1) {
                fprintf (stderr, "qanat-agent: --cache-max wants a number of bytes with "
                         "an optional K, M or G, not '%s'\n", arg);
                return -1;
            }
            return 0;
        case 'W': {
            long count = strtol (arg, &end, 10);
            if (errno || end == arg || *end || count < 0 || count > 1000000) {
                fprintf (stderr, "qanat-agent: --keep-workdirs wants a number from 0 to "
                         "1000000, not '%s'\n", arg);
                return -1;
            }
            self->keep_workdirs = (int) count;
            return 0;
        }
        case 'R': {
            long long seconds = strtoll (arg, &end, 10);
            if (errno || end == arg || *end || seconds < 0 || seconds > 365LL * 86400) {
                fprintf (stderr, "qanat-agent: --cache-keep-recent wants seconds (0 to "
                         "a year), not '%s'\n", arg);
                return -1;
            }
            self->cache_keep_recent_s = seconds;
            return 0;
        }
        case 'M':
            if (s_parse_size (arg, &self->max_unacked) == -1 || self->max_unacked < 1024) {
                fprintf (stderr, "qanat-agent: --max-unacked wants a number of bytes "
                         "(at least 1024), not '%s'\n", arg);
                return -1;
            }
            return 0;
        case 'S':
            if (s_parse_size (arg, &self->spool_max) == -1 || self->spool_max < 256 * 1024
            ||  self->spool_max > (1ULL << 40)) {
                fprintf (stderr, "qanat-agent: --spool-max wants a number of bytes "
                         "from 256K to 1024G, not '%s'\n", arg);
                return -1;
            }
            return 0;
        default:
            return -1;
    }
}

//  The timer options (heartbeat, suspicion, loss, backoff, disconnect,
//  drain).  0, or -1 with a message.
static int
s_parse_timer (s_options_t *self, int opt, const char *arg)
{
    switch (opt) {
        case 'P':
            return s_set_profile (self, arg);
        case 'H':
            if (s_parse_number ("--heartbeat-ms", arg, 0, 600000, &self->heartbeat_ms) == -1)
                return -1;
            if (self->heartbeat_ms > 0 && self->heartbeat_ms < 50) {
                fprintf (stderr, "qanat-agent: --heartbeat-ms must be 0 or at least 50\n");
                return -1;
            }
            return 0;
        case 'U':
            return s_parse_number ("--suspect-after-ms", arg, 0, 86400000, &self->suspect_ms);
        case 'O':
            return s_parse_number ("--lost-after-ms", arg, 0, 86400000, &self->lost_ms);
        case 'B':
            return s_parse_number ("--max-backoff-ms", arg, 250, 3600000,
                                   &self->max_backoff_ms);
        case 'D':
            return s_parse_number ("--stop-after-disconnect", arg, 0, 31536000,
                                   &self->stop_after_s);
        case 'T':
            return s_parse_number ("--drain-timeout", arg, 0, 31536000,
                                   &self->drain_timeout_s);
        default:
            return -1;
    }
}

//  Parses the command line.  0 = run; 1 = done, exit 0 (--help,
//  --version); -1 = exit 1 after a message.
static int
s_options_parse (s_options_t *self, int argc, char *argv [])
{
    char *error = NULL;
    if (qn_config_argv (s_table, argc, argv, &self->argc, &self->argv, &error) == -1) {
        fprintf (stderr, "qanat-agent: %s\n", error);
        free (error);
        return -1;
    }
    s_wipe_join (argc, argv);
    argc = self->argc;
    argv = self->argv;
    struct option *options = qn_config_getopt (s_table);
    if (!options)
        return -1;
    optind = 0;
    int opt;
    while ((opt = getopt_long (argc, argv, S_SHORT_OPTIONS, options, NULL)) != -1) {
        int rc = s_check_value (opt, optarg);
        switch (rc == 0? opt: 0) {
            case 0:
                break;
            case 'f':
                break;                  //  read by qn_config_argv
            case OPT_CHECK_CONFIG:
                self->check_config = true;
                break;
            case OPT_LOG_FORMAT:
                qn_log_format_parse (optarg, &self->log_format);
                break;
            case 'c':
                self->endpoint = optarg;
                break;
            case 'j':
                rc = s_keep_token (self, optarg);
                break;
            case 'E':
                rc = s_parse_number ("--enrol-timeout", optarg, 1, 3600, &self->enrol_timeout_s);
                break;
            case 'I':
                self->insecure = true;
                break;
            case 'F':
                self->force = true;
                break;
            case 'n':
                self->name = optarg;
                break;
            case 'l':
            case 'L':
                rc = s_add_labels (&self->labels, optarg);
                break;
            case 'd':
                self->data_dir = optarg;
                break;
            case 'b':
                rc = s_add_backends (self, optarg);
                break;
            case 'o':
                rc = s_add_backend_option (self, optarg);
                break;
            case 'w': {         //  --warm-python N: the local backend's option warm_python
                static char warm [48];
                int count = atoi (optarg);
                snprintf (warm, sizeof warm, "local.warm_python=%d", count);
                if (count < 0 || count > 64 || strspn (optarg, "0123456789") != strlen (optarg)) {
                    fprintf (stderr, "qanat-agent: --warm-python wants 0 to 64, not '%s'\n",
                             optarg);
                    rc = -1;
                }
                else
                    rc = s_add_backend_option (self, warm);
                break;
            }
            case 's': case 'A': case 'K': case 'W': case 'R': case 'M': case 'S':
                rc = s_parse_capacity (self, opt, optarg);
                break;
            case 'P': case 'H': case 'U': case 'O': case 'B': case 'D': case 'T':
                rc = s_parse_timer (self, opt, optarg);
                break;
            case 'G':
                self->gpus = optarg;
                break;
            case 'X':
                self->resources = optarg;
                break;
            case 'Z':
                self->daemon = true;
                break;
            case 'Q':
                self->pid_file = optarg;
                break;
            case 'Y':
                self->log_file = optarg;
                break;
            case 'v':
                self->verbose = true;
                break;
            case 'h':
                s_usage (stdout);
                return free (options), 1;
            case 'V':
                printf ("qanat-agent %s\n", PACKAGE_VERSION);
                return free (options), 1;
            default:
                s_usage (stderr);
                return free (options), -1;
        }
        if (rc == -1)
            return free (options), -1;
    }
    free (options);
    if (optind < argc) {
        fprintf (stderr, "qanat-agent: unexpected argument '%s'\n", argv [optind]);
        s_usage (stderr);
        return -1;
    }
    if (self->name && !*self->name) {
        fprintf (stderr, "qanat-agent: --name must not be empty\n");
        return -1;
    }
    if ((self->pid_file || self->log_file) && !self->daemon) {
        fprintf (stderr, "qanat-agent: --pid-file and --log-file go with --daemon\n");
        return -1;
    }
    if (self->daemon && self->join_copy) {
        fprintf (stderr, "qanat-agent: enrol first (qanat-agent enrol --token TOKEN), then "
                 "start with --daemon\n");
        return -1;
    }
    return 0;
}


//  ---------------------------------------------------------------------
//  Settling the configuration

//  The timers (explicit ones override the profile's, whatever their
//  order), the slots and the data directory (made when missing).  0, or
//  -1 with a message.
static int
s_options_settle (s_options_t *self)
{
    if (self->heartbeat_ms < 0)
        self->heartbeat_ms = self->profile [0];
    if (self->suspect_ms < 0)
        self->suspect_ms = self->profile [1];
    if (self->lost_ms < 0)
        self->lost_ms = self->profile [2];
    if (self->heartbeat_ms && self->suspect_ms && self->suspect_ms < self->heartbeat_ms) {
        fprintf (stderr, "qanat-agent: --suspect-after-ms (%lld) is shorter than the "
                 "heartbeat (%lld ms)\n", self->suspect_ms, self->heartbeat_ms);
        return -1;
    }
    if (self->suspect_ms && self->lost_ms && self->lost_ms < self->suspect_ms) {
        fprintf (stderr, "qanat-agent: --lost-after-ms (%lld) is shorter than "
                 "--suspect-after-ms (%lld)\n", self->lost_ms, self->suspect_ms);
        return -1;
    }
    if (self->slots == 0) {
        long cpus = sysconf (_SC_NPROCESSORS_ONLN);
        self->slots = cpus > 0? cpus: 1;
    }
    if (!self->data_dir) {
        const char *home = getenv ("HOME");
        if (!home || !*home) {
            fprintf (stderr, "qanat-agent: $HOME is not set; give --data-dir\n");
            return -1;
        }
        snprintf (self->default_dir, sizeof (self->default_dir), "%s/.qanat/agent", home);
        self->data_dir = self->default_dir;
    }
    if (!self->check_config && s_make_dirs (self->data_dir, 0700) == -1) {
        fprintf (stderr, "qanat-agent: cannot create data directory %s: %s\n",
                 self->data_dir, strerror (errno));
        return -1;
    }
    return 0;
}

//  An option for a backend the agent does not run is a mistake to say.
//  0, or -1 with a message.
static int
s_check_backend_options (s_options_t *self)
{
    for (size_t i = 0; i < self->backend_option_count; i++) {
        bool used = false;
        size_t count = self->backend_count? self->backend_count: 1;
        for (size_t b = 0; b < count && !used; b++) {
            const char *backend = self->backend_count? self->backends [b]: "local";
            size_t len = strlen (backend);
            used = strncmp (self->backend_options [i], backend, len) == 0
                && self->backend_options [i][len] == '.';
        }
        if (!used) {
            fprintf (stderr, "qanat-agent: --backend-option %s is for a backend this agent "
                     "does not run (add --backend)\n", self->backend_options [i]);
            return -1;
        }
    }
    return 0;
}

//  The engine's configuration from the options and the identity (NULL
//  for --insecure): the enrolled name, the granted labels, the endpoint
//  enrolled through.  The config points into both.  0, or -1 with a
//  message.
static int
s_configure (s_options_t *self, qn_identity_t *identity, qn_agent_config_t *config)
{
    const char *name = self->name;
    const char *endpoint = self->endpoint;
    const char **label_keys = (const char **) self->labels.keys;
    const char **label_values = (const char **) self->labels.values;
    size_t label_count = self->labels.count;
    if (identity) {
        const char *enrolled = qn_identity_name (identity);
        if (name && !streq (name, enrolled)) {
            fprintf (stderr, "qanat-agent: this agent is enrolled as '%s' (%s/" QN_IDENTITY_FILE
                     "), not '%s': drop --name, or revoke it and enrol again to rename it\n",
                     enrolled, self->data_dir, name);
            return -1;
        }
        name = enrolled;
        label_keys = qn_identity_label_keys (identity);
        label_values = qn_identity_label_values (identity);
        label_count = qn_identity_label_count (identity);
        if (self->labels.count && !s_same_labels (&self->labels, identity))
            qn_log (QN_LOG_WARNING, "agent", "--labels differ from the labels granted at "
                          "enrolment; the granted ones apply");
        if (!endpoint && *qn_identity_endpoint (identity))
            endpoint = qn_identity_endpoint (identity);
    }
    if (!name)
        name = self->hostname;
    if (!endpoint)
        endpoint = S_DEFAULT_ENDPOINT;
    *config = (qn_agent_config_t) {
        .endpoint = endpoint,
        .name = name,
        .label_keys = label_keys,
        .label_values = label_values,
        .label_count = label_count,
        .slots = (uint32_t) self->slots,
        .data_dir = self->data_dir,
        .outbox_limit = (size_t) self->max_unacked,
        .spool_max = self->spool_max,
        .heartbeat_ms = (uint32_t) self->heartbeat_ms,
        .suspect_after_ms = (uint32_t) self->suspect_ms,
        .lost_after_ms = (uint32_t) self->lost_ms,
        .max_backoff_ms = (uint32_t) self->max_backoff_ms,
        .stop_after_disconnect_s = (uint32_t) self->stop_after_s,
        .drain_timeout_s = (uint32_t) self->drain_timeout_s,
        .cert = identity? qn_identity_cert (identity): NULL,
        .server_key = identity? qn_identity_coordinator_key (identity): NULL,
        .backends = self->backends,
        .backend_count = self->backend_count,
        .backend_options = self->backend_options,
        .artifact_store = self->artifact_store,
        .cache_max = (uint64_t) self->cache_max,
        .cache_keep_recent_s = (int64_t) self->cache_keep_recent_s,
        .keep_workdirs = self->keep_workdirs
    };
    return 0;
}


//  What this machine offers the local backend, when that is the default
//  one (an agent in front of a cluster counts slots only).  0, or -1 with
//  a message.
static int
s_machine (s_options_t *self, qn_resources_t **machine_p)
{
    if (self->backend_count && !streq (self->backends [0], "local")) {
        if (self->gpus || self->resources) {
            fprintf (stderr, "qanat-agent: --gpus and --resources describe this machine for "
                     "the local backend, and the default backend here is %s\n",
                     self->backends [0]);
            return -1;
        }
        return 0;
    }
    char *error = NULL;
    *machine_p = qn_resources_new (self->gpus, self->resources, NULL, &error);
    if (!*machine_p) {
        fprintf (stderr, "qanat-agent: %s\n", error? error: "out of memory");
        free (error);
        return -1;
    }
    qn_resources_t *machine = *machine_p;
    qn_log (QN_LOG_INFO, "agent", "this machine offers %u CPUs, %" PRIu64 " MiB of memory and "
            "%u GPUs", qn_resources_cpus (machine), qn_resources_memory_mb (machine),
            qn_resources_gpus (machine));
    const char *confinement = qn_resources_confinement (machine);
    if (strncmp (confinement, "none", 4) == 0)
        qn_log (QN_LOG_WARNING, "agent", "attempts are not held to their CPUs and memory (%s); "
                "GPUs are still given out one attempt at a time.  See docs/scheduling.md",
                confinement);
    else
    if (!streq (confinement, "cgroup"))
        qn_log (QN_LOG_WARNING, "agent", "attempts are held to their memory, not their CPUs "
                "(%s).  See docs/scheduling.md", confinement);
    return 0;
}

//  ---------------------------------------------------------------------
//  Running

//  --daemon: into the background, once per pid file.  0 in the
//  background process, -1 with a message.
static int
s_detach (s_options_t *self)
{
    if (!self->pid_file) {
        snprintf (self->pid_default, sizeof self->pid_default, "%s/agent.pid", self->data_dir);
        self->pid_file = self->pid_default;
    }
    if (!self->log_file) {
        snprintf (self->log_default, sizeof self->log_default, "%s/agent.log", self->data_dir);
        self->log_file = self->log_default;
    }
    pid_t running = qn_daemon_running (self->pid_file);
    if (running) {
        fprintf (stderr, "qanat-agent: already running as pid %ld (%s)\n",
                 (long) running, self->pid_file);
        return -1;
    }
    const char *error = NULL;
    if (qn_daemon_detach (self->pid_file, self->log_file, &error) == -1) {
        fprintf (stderr, "qanat-agent: --daemon: %s (%s, %s): %s\n", error,
                 self->pid_file, self->log_file, strerror (errno));
        return -1;
    }
    return 0;
}

//  Runs the engine until it stops: 0 after a signal, 1 after an error.
static int
s_run (const qn_agent_config_t *config, bool secure)
{
    char label_text [2048] = "";
    size_t at = 0;
    for (size_t i = 0; i < config->label_count && at < sizeof (label_text); i++) {
        int n = snprintf (label_text + at, sizeof (label_text) - at, "%s%s=%s",
                          i? ",": "", config->label_keys [i], config->label_values [i]);
        if (n < 0)
            break;
        at += (size_t) n;
    }
    qn_log (QN_LOG_INFO, "agent", "qanat-agent %s connecting to %s with labels %s and %ld slots"
                  " (%s)", config->name, config->endpoint,
                  config->label_count? label_text: "(none)", (long) config->slots,
                  secure? "CURVE": "plaintext, --insecure");

    qn_agent_t *agent = qn_agent_new (config);
    if (!agent) {
        fprintf (stderr, "qanat-agent: cannot start (bad endpoint '%s'?)\n", config->endpoint);
        return 1;
    }
    //  Connecting is ZeroMQ's from here on: ready to systemd (Type=notify)
    qn_sdnotify_ready ();
    int rc = qn_agent_run (agent) == 0? 0: 1;
    qn_sdnotify_stopping ();
    qn_agent_destroy (&agent);
    qn_log (QN_LOG_INFO, "agent", "qanat-agent %s stopped", config->name);
    return rc;
}

//  ---------------------------------------------------------------------
//  qanat-agent enrol

//  The options of `qanat-agent enrol`.  0 = enrol; 1 = done (--help);
//  -1 = exit 1 after a message.
static int
s_enrol_parse (s_options_t *self, const char **user_p, int argc, char *argv [])
{
    static const struct option options [] = {
        { "token",       required_argument, NULL, 't' },
        { "coordinator", required_argument, NULL, 'c' },
        { "name",        required_argument, NULL, 'n' },
        { "labels",      required_argument, NULL, 'l' },
        { "label",       required_argument, NULL, 'L' },
        { "data-dir",    required_argument, NULL, 'd' },
        { "user",        required_argument, NULL, 'u' },
        { "force",       no_argument,       NULL, 'F' },
        { "enrol-timeout", required_argument, NULL, 'E' },
        { "verbose",     no_argument,       NULL, 'v' },
        { "help",        no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    int opt;
    while ((opt = getopt_long (argc, argv, "t:c:n:l:L:d:u:vh", options, NULL)) != -1) {
        int rc = 0;
        switch (opt) {
            case 't':
                rc = s_keep_token (self, optarg);
                break;
            case 'c': self->endpoint = optarg; break;
            case 'n': self->name = optarg; break;
            case 'l': case 'L': rc = s_add_labels (&self->labels, optarg); break;
            case 'd': self->data_dir = optarg; break;
            case 'u': *user_p = optarg; break;
            case 'F': self->force = true; break;
            case 'E':
                rc = s_parse_number ("--enrol-timeout", optarg, 1, 3600, &self->enrol_timeout_s);
                break;
            case 'v': self->verbose = true; break;
            case 'h':
                s_enrol_usage (stdout);
                return 1;
            default:
                s_enrol_usage (stderr);
                return -1;
        }
        if (rc == -1)
            return -1;
    }
    if (optind < argc) {
        fprintf (stderr, "qanat-agent enrol: unexpected argument '%s'\n", argv [optind]);
        return -1;
    }
    if (!self->join) {
        fprintf (stderr, "qanat-agent enrol: no token: give --token TOKEN (made by `qanat "
                 "token create`) or set $QANAT_JOIN_TOKEN\n");
        return -1;
    }
    if (self->name && !*self->name) {
        fprintf (stderr, "qanat-agent enrol: --name must not be empty\n");
        return -1;
    }
    return 0;
}

//  Who owns the data directory after enrolment: as root, --user, else
//  the service user when the data directory is the service's (the
//  default).  Fills *owner (pw_name NULL: nobody else).  0, or -1 with
//  a message.
static int
s_enrol_owner (s_options_t *self, const char *user, struct passwd *owner)
{
    owner->pw_name = NULL;
    struct passwd *found = NULL;
    if (geteuid () != 0) {
        if (user) {
            fprintf (stderr, "qanat-agent enrol: --user needs root\n");
            return -1;
        }
        return 0;
    }
    if (user) {
        found = getpwnam (user);
        if (!found) {
            fprintf (stderr, "qanat-agent enrol: no user '%s' on this machine\n", user);
            return -1;
        }
    }
    else
    if (!self->data_dir && (found = getpwnam ("qanat-agent")))
        self->data_dir = "/var/lib/qanat-agent";
    if (found)
        *owner = *found;
    return 0;
}

//  Gives path to the owner, if any.  0, or -1 with a message.
static int
s_enrol_chown (const struct passwd *owner, const char *path)
{
    if (owner->pw_name && chown (path, owner->pw_uid, owner->pw_gid) == -1) {
        fprintf (stderr, "qanat-agent enrol: cannot give %s to %s: %s\n",
                 path, owner->pw_name, strerror (errno));
        return -1;
    }
    return 0;
}

static int
s_enrol_main (int argc, char *argv [])
{
    s_options_t options;
    s_options_init (&options);
    qn_identity_t *identity = NULL;
    const char *user = NULL;
    struct passwd owner;
    int rc = 1;
    int parsed = s_enrol_parse (&options, &user, argc, argv);
    if (parsed == 1)
        rc = 0;
    if (parsed != 0 || s_enrol_owner (&options, user, &owner) == -1
    ||  s_options_settle (&options) == -1)
        goto done;
    qn_log_set_verbose (options.verbose);
    if (!options.name
    &&  (gethostname (options.hostname, sizeof (options.hostname) - 1) == -1 || !*options.hostname))
        snprintf (options.hostname, sizeof (options.hostname), "localhost");
    if (s_identify (options.data_dir, options.join, true, options.force, false,
                    options.endpoint, options.name? options.name: options.hostname,
                    &options.labels, (int) options.enrol_timeout_s * 1000, &identity) == -1)
        goto done;
    char key [4200];
    snprintf (key, sizeof key, "%s/" QN_IDENTITY_FILE, options.data_dir);
    if (s_enrol_chown (&owner, options.data_dir) == -1 || s_enrol_chown (&owner, key) == -1)
        goto done;
    printf ("enrolled as %s with %s; key in %s%s%s\n", qn_identity_name (identity),
            *qn_identity_endpoint (identity)? qn_identity_endpoint (identity): "the coordinator",
            key, owner.pw_name? ", owned by ": "", owner.pw_name? owner.pw_name: "");
    rc = 0;
done:
    qn_identity_destroy (&identity);
    s_options_free (&options);
    return rc;
}

int
main (int argc, char *argv [])
{
    if (argc > 1 && streq (argv [1], "enrol"))
        return s_enrol_main (argc - 1, argv + 1);
    s_options_t options;
    s_options_init (&options);
    qn_identity_t *identity = NULL;
    qn_resources_t *machine = NULL;
    int rc = 1;
    //  --check-config: exit 0 with the settings, or 2 with what is wrong
    bool checking = false;
    for (int i = 1; i < argc && !streq (argv [i], "--"); i++)
        checking |= streq (argv [i], "--check-config");
    int parsed = s_options_parse (&options, argc, argv);
    if (parsed == 1)
        rc = 0;
    if (parsed != 0 || s_options_settle (&options) == -1)
        goto done;
    qn_log_set_verbose (options.verbose);
    qn_log_set_format (options.log_format);
    if (checking) {
        if (s_check_backend_options (&options) == 0) {
            qn_config_print (stdout, s_table, S_SHORT_OPTIONS, options.argc, options.argv);
            rc = 0;
        }
        goto done;
    }
    if (!options.name) {
        if (gethostname (options.hostname, sizeof (options.hostname) - 1) == -1
        ||  !*options.hostname)
            snprintf (options.hostname, sizeof (options.hostname), "localhost");
    }
    if (s_identify (options.data_dir, options.join, options.join_copy != NULL, options.force,
                    options.insecure, options.endpoint,
                    options.name? options.name: options.hostname, &options.labels,
                    (int) options.enrol_timeout_s * 1000, &identity) == -1)
        goto done;
    qn_agent_config_t config;
    if (s_configure (&options, identity, &config) == -1
    ||  s_check_backend_options (&options) == -1
    ||  s_machine (&options, &machine) == -1)
        goto done;
    config.resources = machine;
    if (options.daemon && s_detach (&options) == -1)
        goto done;
    qn_log_set_format (options.log_format);     //  stderr may be the log file now
    rc = s_run (&config, identity != NULL);
    if (options.daemon)
        qn_daemon_forget (options.pid_file);

done:
    if (checking && rc != 0)
        rc = 2;
    qn_resources_destroy (&machine);
    qn_identity_destroy (&identity);
    s_options_free (&options);
    return rc;
}
