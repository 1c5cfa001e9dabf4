/*  qanatd - the qanat coordinator.

    Holds every workflow, run and agent in an LMDB store under --data-dir,
    listens for agents and clients on two ZeroMQ endpoints (loopback by
    default), and dispatches work.  Serves the HTTP/JSON API and the web
    UI on --http-endpoint (qn_http, on threads of its own).
*/
#include "qn_coordinator.h"
#include "qn_backup.h"
#include "qn_http.h"
#include "qn_log.h"
#include "qn_config.h"
#include "qn_sdnotify.h"
#include "qn_params.h"
#include "qn_placement.h"
#include "qanat.h"
#include <getopt.h>
#include <sys/stat.h>
#include "qn_file.h"
#include "config.h"

static void
s_usage (FILE *out)
{
    fprintf (out,
        "Usage: qanatd [OPTION]...\n"
        "\n"
        "The qanat coordinator.\n"
        "\n"
        "  --data-dir DIR          where the LMDB store lives (default ~/.qanat/coordinator)\n"
        "  --restore DIR           install the backup DIR into an empty --data-dir, and exit\n"
        "  --client-endpoint EP    socket for the CLI and clients (default " QN_DEFAULT_CLIENT_ENDPOINT ")\n"
        "  --agent-endpoint EP     socket agents connect to (default " QN_DEFAULT_AGENT_ENDPOINT ")\n"
        "  --config FILE           read settings from a YAML file (/etc/qanat/qanatd.yaml;\n"
        "                          keys as the long options with '_' for '-'; flags\n"
        "                          override it; docs/configuration.md)\n"
        "  --check-config          check the config file and options, print the\n"
        "                          effective settings and exit (0 = good, 2 = not)\n"
        "  --heartbeat-ms N        heartbeat interval agents are told to use (default 1000)\n"
        "  --suspect-after-ms N    an agent silent this long gets no new work (default 5000)\n"
        "  --lost-after-ms N       an agent silent this long is lost and its attempts\n"
        "                          are retried (default 30000); agents may bring their own\n"
        "  --keep-runs N           keep the newest N finished runs of each workflow that\n"
        "                          sets no keep_runs of its own, deleting older runs'\n"
        "                          records, logs, metrics and unused blobs (default 0:\n"
        "                          keep everything)\n"
        "  --s3-delete-after SECONDS\n"
        "                          delete an S3 artifact from its bucket once no run has\n"
        "                          referenced it for this long (default 3600; -1 = never;\n"
        "                          needs AWS credentials for the bucket, as agents do)\n"
        "  --no-sync               do not fsync each commit: faster, but a power loss\n"
        "                          loses the last commits (never corrupts the store)\n"
        "  --http-endpoint ADDR:PORT\n"
        "                          the HTTP API and web UI (default " QN_HTTP_DEFAULT_ENDPOINT ",\n"
        "                          [IPv6]:PORT too; 'none' = no HTTP)\n"
        "  --http-cert FILE        PEM certificate (chain) for HTTPS, with --http-key\n"
        "  --http-key FILE         PEM private key for HTTPS\n"
        "  --http-insecure         allow plain HTTP on a non-loopback address\n"
        "  --metrics-public        serve /metrics without a credential to anyone\n"
        "                          (default: only to loopback clients)\n"
        "  --web-dir DIR           the web UI's files (default: $QANAT_WEB_DIR, else the\n"
        "                          installed ones, else the source tree's web/)\n"
        "  --notify-file FILE      a YAML file with a 'notify:' block: the notifications\n"
        "                          of workflows without their own (docs/notifications.md)\n"
        "  --notify-give-up SECONDS\n"
        "                          retry a notification this long, then mark it failed\n"
        "                          (default 86400)\n"
        "  --public-url URL        the web UI's address, for links in notifications\n"
        "  --insecure              plaintext sockets, no keys, everyone an admin: only for\n"
        "                          a trusted test setup on one machine\n"
        "  --placement pack|spread among the agents a task fits on, the tightest fit\n"
        "                          (pack, the default) or the loosest (spread); see\n"
        "                          docs/scheduling.md\n"
        "  --log-format text|json  log lines as text (default) or one JSON object each\n"
        "  -v, --verbose           log every dispatch and run result\n"
        "  -h, --help              this help\n"
        "  -V, --version           print the version and exit\n");
}

static char *
s_default_data_dir (void)
{
    const char *home = getenv ("HOME");
    return zsys_sprintf ("%s/.qanat/coordinator", home && *home? home: ".");
}

//  Says loudly when the coordinator runs without fsync or without CURVE.
static void
s_warn_unsafe (bool durable, bool insecure)
{
    if (!durable)
        qn_log (QN_LOG_WARNING, "qanatd",
                "--no-sync: commits are not fsynced; a power loss may lose the last ones");
    if (insecure) {
        qn_log (QN_LOG_WARNING, "qanatd",
                "****************************************************************");
        qn_log (QN_LOG_WARNING, "qanatd",
                "--insecure: NO encryption, NO authentication. Anyone who reaches");
        qn_log (QN_LOG_WARNING, "qanatd",
                "these sockets can run commands on every agent. Do not use this");
        qn_log (QN_LOG_WARNING, "qanatd", "outside a trusted test setup.");
        qn_log (QN_LOG_WARNING, "qanatd",
                "****************************************************************");
    }
}

//  Long options without a letter
enum {
    OPT_HTTP_ENDPOINT = 1000, OPT_HTTP_CERT, OPT_HTTP_KEY, OPT_HTTP_INSECURE,
    OPT_METRICS_PUBLIC, OPT_WEB_DIR, OPT_PLACEMENT, OPT_LOG_FORMAT, OPT_CHECK_CONFIG
};

//  Every option once: its long name is also its key in the config file
//  (with '_' for '-'), its type and range are checked for both
//  (lib/qn_config.h).  Adding an option is a row here, a case in s_flag
//  (or s_http_flag, s_notify_flag) and its line in s_usage.
static const qn_config_option_t s_table [] = {
    { "data-dir", 'd', QN_CONFIG_STRING, 0, 0, NULL, "(~/.qanat/coordinator)", 0 },
    { "client-endpoint", 'c', QN_CONFIG_STRING, 0, 0, NULL, QN_DEFAULT_CLIENT_ENDPOINT, 0 },
    { "agent-endpoint", 'a', QN_CONFIG_STRING, 0, 0, NULL, QN_DEFAULT_AGENT_ENDPOINT, 0 },
    { "heartbeat-ms", 'b', QN_CONFIG_NUMBER, 10, 3600000, NULL, "1000", 0 },
    { "suspect-after-ms", 's', QN_CONFIG_NUMBER, 10, 86400000, NULL, "5000", 0 },
    { "lost-after-ms", 'l', QN_CONFIG_NUMBER, 10, 86400000, NULL, "30000", 0 },
    { "keep-runs", 'k', QN_CONFIG_NUMBER, 0, 100000000, NULL, "0", 0 },
    { "s3-delete-after", 'S', QN_CONFIG_NUMBER, -1, 10LL * 365 * 86400, NULL, "3600", 0 },
    { "no-sync", 'n', QN_CONFIG_FLAG, 0, 0, NULL, NULL, 0 },
    { "http-endpoint", OPT_HTTP_ENDPOINT, QN_CONFIG_STRING, 0, 0, NULL,
      QN_HTTP_DEFAULT_ENDPOINT, 0 },
    { "http-cert", OPT_HTTP_CERT, QN_CONFIG_STRING, 0, 0, NULL, "(plain HTTP)", 0 },
    { "http-key", OPT_HTTP_KEY, QN_CONFIG_STRING, 0, 0, NULL, "(plain HTTP)", 0 },
    { "http-insecure", OPT_HTTP_INSECURE, QN_CONFIG_FLAG, 0, 0, NULL, NULL, 0 },
    { "metrics-public", OPT_METRICS_PUBLIC, QN_CONFIG_FLAG, 0, 0, NULL, NULL, 0 },
    { "web-dir", OPT_WEB_DIR, QN_CONFIG_STRING, 0, 0, NULL, "(the installed web UI)", 0 },
    { "notify-file", 'N', QN_CONFIG_STRING, 0, 0, NULL, "(none)", 0 },
    { "notify-give-up", 'G', QN_CONFIG_NUMBER, 1, 30L * 86400, NULL, "86400", 0 },
    { "public-url", 'P', QN_CONFIG_STRING, 0, 0, NULL, "(none)", 0 },
    { "placement", OPT_PLACEMENT, QN_CONFIG_CHOICE, 0, 0, "pack|spread", "pack", 0 },
    { "insecure", 'I', QN_CONFIG_FLAG, 0, 0, NULL, NULL, 0 },
    { "log-format", OPT_LOG_FORMAT, QN_CONFIG_CHOICE, 0, 0, "text|json", "text", 0 },
    { "verbose", 'v', QN_CONFIG_FLAG, 0, 0, NULL, NULL, 0 },
    { "config", 'f', QN_CONFIG_STRING, 0, 0, NULL, NULL, QN_CONFIG_CLI_ONLY },
    { "restore", 'R', QN_CONFIG_STRING, 0, 0, NULL, NULL, QN_CONFIG_CLI_ONLY },
    { "check-config", OPT_CHECK_CONFIG, QN_CONFIG_FLAG, 0, 0, NULL, NULL, QN_CONFIG_CLI_ONLY },
    { "help", 'h', QN_CONFIG_FLAG, 0, 0, NULL, NULL, QN_CONFIG_CLI_ONLY },
    { "version", 'V', QN_CONFIG_FLAG, 0, 0, NULL, NULL, QN_CONFIG_CLI_ONLY },
    { NULL, 0, 0, 0, 0, NULL, NULL, 0 }
};
#define S_SHORT_OPTIONS "vhV"

//  What the HTTP side is told
typedef struct {
    char *endpoint;
    char *cert;
    char *key;
    char *web_dir;
    bool insecure;
    bool metrics_public;
} s_http_options_t;

static void
s_replace (char **field_p, const char *value)
{
    free (*field_p);
    *field_p = strdup (value);
}

//  Where the web UI's files are: --web-dir, $QANAT_WEB_DIR, the source
//  tree's web/ when this qanatd runs from its build tree (tests and the
//  quickstart work uninstalled), else the installed ones
static char *
s_default_web_dir (void)
{
    const char *env = getenv ("QANAT_WEB_DIR");
    if (env && *env)
        return strdup (env);
#if defined (QN_BUILD_DIR) && defined (QN_SOURCE_WEB_DIR)
    char exe [4096];
    ssize_t len = readlink ("/proc/self/exe", exe, sizeof exe - 1);
    if (len > 0) {
        exe [len] = 0;
        size_t build = strlen (QN_BUILD_DIR);
        if (strncmp (exe, QN_BUILD_DIR, build) == 0 && exe [build] == '/')
            return strdup (QN_SOURCE_WEB_DIR);
    }
#endif
#ifdef QN_WEB_DIR
    return strdup (QN_WEB_DIR);
#else
    return strdup ("web");
#endif
}

//  Starts the HTTP side, or not (--http-endpoint none).  -1 on failure.
static int
s_http_start (s_http_options_t *http, qn_coordinator_t *coordinator, qn_http_t **server_p)
{
    *server_p = NULL;
    if (streq (http->endpoint, "none"))
        return 0;
    if (!http->web_dir)
        http->web_dir = s_default_web_dir ();
    qn_http_config_t config = {
        .endpoint = http->endpoint,
        .cert_file = http->cert,
        .key_file = http->key,
        .insecure = http->insecure,
        .metrics_public = http->metrics_public,
        .web_dir = http->web_dir,
        .metrics_credential = qn_coordinator_http_credential (coordinator),
        //  Set exactly when the engine has a keyring to check tokens against
        .credential_required = qn_coordinator_http_credential (coordinator) != NULL
    };
    char *error = NULL;
    *server_p = qn_http_new (&config, &error);
    if (!*server_p) {
        fprintf (stderr, "qanatd: %s\n", error? error: "cannot start the HTTP server");
        free (error);
        return -1;
    }
    printf ("web UI and HTTP API on %s\n", qn_http_url (*server_p));
    return 0;
}


//  A flag of the HTTP side: true when opt is one
static bool
s_http_flag (int opt, const char *arg, s_http_options_t *http)
{
    switch (opt) {
        case OPT_HTTP_ENDPOINT: s_replace (&http->endpoint, arg); return true;
        case OPT_HTTP_CERT: s_replace (&http->cert, arg); return true;
        case OPT_HTTP_KEY: s_replace (&http->key, arg); return true;
        case OPT_HTTP_INSECURE: http->insecure = true; return true;
        case OPT_METRICS_PUBLIC: http->metrics_public = true; return true;
        case OPT_WEB_DIR: s_replace (&http->web_dir, arg); return true;
        default: return false;
    }
}

//  Notifications' settings (qn_notify.h)
typedef struct {
    char *file;
    char *public_url;
    long give_up_s;
} s_notify_options_t;

static void
s_notify_options_free (s_notify_options_t *notify)
{
    free (notify->file);
    free (notify->public_url);
}

//  A notification flag: true when opt is one
static bool
s_notify_flag (int opt, const char *arg, s_notify_options_t *notify)
{
    switch (opt) {
        case 'N': s_replace (&notify->file, arg); return true;
        case 'G': notify->give_up_s = atol (arg); return true;
        case 'P': s_replace (&notify->public_url, arg); return true;
        default: return false;
    }
}

//  --placement (or placement in the config file): 0, or -1 with a message
static int
s_placement (const char *text, qn_placement_mode_t *mode)
{
    if (qn_placement_mode_parse (text, mode) == 0)
        return 0;
    fprintf (stderr, "qanatd: placement wants pack or spread, not '%s'\n", text);
    return -1;
}

//  Where it listens and the first admin's key, for the one who started it
static void
s_print_started (qn_coordinator_t *coordinator, const char *data_dir)
{
    printf ("qanatd %s: clients on %s, agents on %s, data in %s\n", PACKAGE_VERSION,
            qn_coordinator_client_endpoint (coordinator),
            qn_coordinator_agent_endpoint (coordinator), data_dir);
    if (qn_coordinator_admin_key (coordinator))
        printf ("admin client key: %s (qanat --key %s, or QANAT_KEY)\n",
                qn_coordinator_admin_key (coordinator), qn_coordinator_admin_key (coordinator));
}

//  --help and --version need nothing else, and are answered before
//  anything is allocated: 0 after answering, -1 when neither is asked
static int
s_help_or_version (int argc, char *argv [])
{
    for (int i = 1; i < argc && !streq (argv [i], "--"); i++) {
        if (streq (argv [i], "--version") || streq (argv [i], "-V")) {
            printf ("qanatd %s\n", PACKAGE_VERSION);
            return 0;
        }
        if (streq (argv [i], "--help") || streq (argv [i], "-h")) {
            s_usage (stdout);
            return 0;
        }
    }
    return -1;
}

//  Everything the config file and the command line say
typedef struct {
    char *data_dir;
    char *client_endpoint;
    char *agent_endpoint;
    char *restore;                  //  --restore DIR: install a backup, then exit
    long heartbeat_ms, suspect_after_ms, lost_after_ms;
    long keep_runs;
    long s3_delete_after_s;
    s_notify_options_t notify;
    bool durable, verbose, insecure, check_config;
    qn_placement_mode_t placement;
    qn_log_format_t log_format;
    s_http_options_t http;
} s_settings_t;

static void
s_settings_init (s_settings_t *self)
{
    *self = (s_settings_t) {
        .client_endpoint = strdup (QN_DEFAULT_CLIENT_ENDPOINT),
        .agent_endpoint = strdup (QN_DEFAULT_AGENT_ENDPOINT),
        .heartbeat_ms = 1000, .suspect_after_ms = 5000, .lost_after_ms = 30000,
        .s3_delete_after_s = 3600,
        .notify = { NULL, NULL, 86400 },
        .durable = true,
        .placement = QN_PLACEMENT_PACK,
        .http = { strdup (QN_HTTP_DEFAULT_ENDPOINT), NULL, NULL, NULL, false, false }
    };
}

static void
s_settings_free (s_settings_t *self)
{
    free (self->http.endpoint);
    free (self->http.cert);
    free (self->http.key);
    free (self->http.web_dir);
    free (self->data_dir);
    free (self->client_endpoint);
    free (self->agent_endpoint);
    free (self->restore);
    s_notify_options_free (&self->notify);
}

//  One option (its value already checked against its row).  0, or -1
//  with a message.
static int
s_flag (s_settings_t *self, int opt, const char *arg)
{
    switch (opt) {
        case 'd': s_replace (&self->data_dir, arg); break;
        case 'c': s_replace (&self->client_endpoint, arg); break;
        case 'a': s_replace (&self->agent_endpoint, arg); break;
        case 'R': s_replace (&self->restore, arg); break;
        case 'b': self->heartbeat_ms = atol (arg); break;
        case 'l': self->lost_after_ms = atol (arg); break;
        case 's': self->suspect_after_ms = atol (arg); break;
        case 'n': self->durable = false; break;
        case 'k': self->keep_runs = atol (arg); break;
        case 'S': self->s3_delete_after_s = atol (arg); break;
        case 'I': self->insecure = true; break;
        case 'v': self->verbose = true; break;
        case 'f': break;                //  read by qn_config_argv
        case OPT_CHECK_CONFIG: self->check_config = true; break;
        case OPT_PLACEMENT: return s_placement (arg, &self->placement);
        case OPT_LOG_FORMAT: qn_log_format_parse (arg, &self->log_format); break;
        default:
            if (!s_notify_flag (opt, arg, &self->notify)
            &&  !s_http_flag (opt, arg, &self->http)) {
                s_usage (stderr);
                return -1;
            }
    }
    return 0;
}

//  The options that tie together.  0, or -1 with a message.
static int
s_settings_check (s_settings_t *self)
{
    if (self->suspect_after_ms > self->lost_after_ms)
        self->suspect_after_ms = self->lost_after_ms;
    if (self->suspect_after_ms < self->heartbeat_ms) {
        fprintf (stderr, "qanatd: need heartbeat_ms <= suspect_after_ms <= lost_after_ms "
                 "(--heartbeat-ms, --suspect-after-ms, --lost-after-ms)\n");
        return -1;
    }
    return 0;
}

//  The config file (--config), then the command line over it.  0 = run,
//  1 = done (--check-config printed the settings), -1 = exit 2 after a
//  message.
static int
s_settings_parse (s_settings_t *self, int argc, char *argv [])
{
    int merged_argc = 0;
    char **merged = NULL;
    char *error = NULL;
    if (qn_config_argv (s_table, argc, argv, &merged_argc, &merged, &error) == -1) {
        fprintf (stderr, "qanatd: %s\n", error);
        free (error);
        return -1;
    }
    struct option *options = qn_config_getopt (s_table);
    int rc = options? 0: -1, opt, index = -1;
    optind = 0;
    while (rc == 0
       && (opt = getopt_long (merged_argc, merged, S_SHORT_OPTIONS, options, &index)) != -1) {
        const qn_config_option_t *row = NULL;
        for (size_t i = 0; s_table [i].name && !row; i++)
            if (s_table [i].val == opt)
                row = &s_table [i];
        if (row && optarg && qn_config_check (row, optarg, &error) == -1) {
            fprintf (stderr, "qanatd: --%s %s\n", row->name, error);
            free (error);
            rc = -1;
        }
        else
        if (opt == '?') {
            s_usage (stderr);
            rc = -1;
        }
        else
            rc = s_flag (self, opt, optarg);
    }
    if (rc == 0 && optind < merged_argc) {
        fprintf (stderr, "qanatd: unexpected argument '%s'\n", merged [optind]);
        rc = -1;
    }
    if (rc == 0)
        rc = s_settings_check (self);
    if (rc == 0 && self->check_config) {
        qn_config_print (stdout, s_table, S_SHORT_OPTIONS, merged_argc, merged);
        rc = 1;
    }
    free (options);
    qn_config_argv_free (merged_argc, merged);
    return rc;
}

int
main (int argc, char *argv [])
{
    if (s_help_or_version (argc, argv) == 0)
        return 0;
    s_settings_t settings;
    s_settings_init (&settings);
    int parsed = s_settings_parse (&settings, argc, argv);
    if (parsed != 0) {
        s_settings_free (&settings);
        return parsed == 1? 0: 2;
    }
    qn_log_set_format (settings.log_format);
    if (!settings.data_dir)
        settings.data_dir = s_default_data_dir ();
    qn_file_make_parents (settings.data_dir);
    if (settings.restore) {     //  installs a backup into an empty data dir, then exits
        int rc = qn_backup_restore_main (settings.restore, settings.data_dir);
        s_settings_free (&settings);
        return rc;
    }

    zsys_init ();
    zsys_set_logident ("qanatd");
    s_settings_t *my = &settings;
    qn_coordinator_config_t config = {
        .data_dir = my->data_dir,
        .client_endpoint = my->client_endpoint,
        .agent_endpoint = my->agent_endpoint,
        .durable = my->durable,
        .heartbeat_ms = (uint32_t) my->heartbeat_ms,
        .suspect_after_ms = (uint32_t) my->suspect_after_ms,
        .lost_after_ms = (uint32_t) my->lost_after_ms,
        .verbose = my->verbose,
        .insecure = my->insecure,
        .keep_runs = (uint32_t) my->keep_runs,
        .s3_delete_after_s = (int64_t) my->s3_delete_after_s,
        .notify_file = my->notify.file,
        .notify_give_up_s = my->notify.give_up_s,
        .public_url = my->notify.public_url,
        .spread = my->placement == QN_PLACEMENT_SPREAD
    };
    char *error = NULL;
    int rc = 1;
    qn_http_t *http_server = NULL;
    qn_coordinator_t *coordinator = qn_coordinator_new (&config, &error);
    if (!coordinator) {
        fprintf (stderr, "qanatd: %s\n", error? error: "cannot start");
        free (error);
        goto done;
    }
    s_warn_unsafe (my->durable, my->insecure);
    s_print_started (coordinator, my->data_dir);
    if (s_http_start (&my->http, coordinator, &http_server) != 0)
        goto done;
    fflush (stdout);
    //  The store is open and every socket bound: systemd may start what
    //  waits on us (Type=notify)
    qn_sdnotify_ready ();
    qn_coordinator_run (coordinator);
    qn_sdnotify_stopping ();
    rc = 0;
done:
    //  The HTTP side stops first: nothing of it waits on an engine gone
    qn_http_destroy (&http_server);
    qn_coordinator_destroy (&coordinator);
    if (rc == 0)
        qn_log (QN_LOG_INFO, "qanatd", "stopped");
    s_settings_free (&settings);
    return rc;
}
