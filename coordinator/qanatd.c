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
        "  --config FILE           read settings from a ZPL file (keys as the long options,\n"
        "                          with '_' for '-', under a 'qanatd' section)\n"
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
    OPT_METRICS_PUBLIC, OPT_WEB_DIR, OPT_PLACEMENT
};

//  What the HTTP side is told
typedef struct {
    char *endpoint;
    char *cert;
    char *key;
    char *web_dir;
    bool insecure;
    bool metrics_public;
} s_http_options_t;

static bool
s_is_true (const char *value)
{
    bool truth = true;                  //  a word that is not a boolean: on, as before
    qn_params_bool (value, &truth);
    return truth;
}

static void
s_replace (char **field_p, const char *value)
{
    free (*field_p);
    *field_p = strdup (value);
}

static void
s_http_config_file (zconfig_t *config, s_http_options_t *http)
{
    const char *value;
    if ((value = zconfig_get (config, "qanatd/http_endpoint", NULL)))
        s_replace (&http->endpoint, value);
    if ((value = zconfig_get (config, "qanatd/http_cert", NULL)))
        s_replace (&http->cert, value);
    if ((value = zconfig_get (config, "qanatd/http_key", NULL)))
        s_replace (&http->key, value);
    if ((value = zconfig_get (config, "qanatd/web_dir", NULL)))
        s_replace (&http->web_dir, value);
    if ((value = zconfig_get (config, "qanatd/http_insecure", NULL)))
        http->insecure = s_is_true (value);
    if ((value = zconfig_get (config, "qanatd/metrics_public", NULL)))
        http->metrics_public = s_is_true (value);
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

static struct option s_options [] = {
    {"data-dir", required_argument, 0, 'd'},
    {"restore", required_argument, 0, 'R'},
    {"client-endpoint", required_argument, 0, 'c'},
    {"agent-endpoint", required_argument, 0, 'a'},
    {"config", required_argument, 0, 'f'},
    {"heartbeat-ms", required_argument, 0, 'b'},
    {"lost-after-ms", required_argument, 0, 'l'},
    {"suspect-after-ms", required_argument, 0, 's'},
    {"no-sync", no_argument, 0, 'n'},
    {"keep-runs", required_argument, 0, 'k'},
    {"s3-delete-after", required_argument, 0, 'S'},
    {"insecure", no_argument, 0, 'I'},
    {"http-endpoint", required_argument, 0, OPT_HTTP_ENDPOINT},
    {"http-cert", required_argument, 0, OPT_HTTP_CERT},
    {"http-key", required_argument, 0, OPT_HTTP_KEY},
    {"http-insecure", no_argument, 0, OPT_HTTP_INSECURE},
    {"metrics-public", no_argument, 0, OPT_METRICS_PUBLIC},
    {"web-dir", required_argument, 0, OPT_WEB_DIR},
    {"notify-file", required_argument, 0, 'N'},
    {"notify-give-up", required_argument, 0, 'G'},
    {"public-url", required_argument, 0, 'P'},
    {"placement", required_argument, 0, OPT_PLACEMENT},
    {"verbose", no_argument, 0, 'v'},
    {"help", no_argument, 0, 'h'},
    {"version", no_argument, 0, 'V'},
    {0, 0, 0, 0}
};

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
s_notify_config_file (zconfig_t *config, s_notify_options_t *notify)
{
    const char *value;
    if ((value = zconfig_get (config, "qanatd/notify_file", NULL)))
        s_replace (&notify->file, value);
    if ((value = zconfig_get (config, "qanatd/notify_give_up", NULL)))
        notify->give_up_s = atol (value);
    if ((value = zconfig_get (config, "qanatd/public_url", NULL)))
        s_replace (&notify->public_url, value);
}

static void
s_notify_options_free (s_notify_options_t *notify)
{
    free (notify->file);
    free (notify->public_url);
}

//  A notification flag: true when opt is one (*end_p for a number's end)
static bool
s_notify_flag (int opt, const char *arg, s_notify_options_t *notify, char **end_p)
{
    switch (opt) {
        case 'N': s_replace (&notify->file, arg); return true;
        case 'G': notify->give_up_s = strtol (arg, end_p, 10); return true;
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

//  A number of the config file's qanatd section, when it has the key
static void
s_config_number (zconfig_t *config, const char *key, long *value_p)
{
    char path [64];
    snprintf (path, sizeof path, "qanatd/%s", key);
    const char *value = zconfig_get (config, path, NULL);
    if (value)
        *value_p = atol (value);
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

//  Longer than 150 lines: a case per option until options are table rows
int
main (int argc, char *argv [])
{
    if (s_help_or_version (argc, argv) == 0)
        return 0;
    char *data_dir = NULL, *restore = NULL;
    char *client_endpoint = strdup (QN_DEFAULT_CLIENT_ENDPOINT);
    char *agent_endpoint = strdup (QN_DEFAULT_AGENT_ENDPOINT);
    long heartbeat_ms = 1000, suspect_after_ms = 5000, lost_after_ms = 30000;
    long keep_runs = 0;
    long s3_delete_after_s = 3600;
    s_notify_options_t notify = { NULL, NULL, 86400 };
    bool durable = true, verbose = false, insecure = false;
    qn_placement_mode_t placement = QN_PLACEMENT_PACK;
    s_http_options_t http = { strdup (QN_HTTP_DEFAULT_ENDPOINT), NULL, NULL, NULL, false, false };

    //  First pass: the config file, so that flags override it.
    int opt;
    while ((opt = getopt_long (argc, argv, "vhV", s_options, NULL)) != -1) {
        if (opt == 'f') {
            zconfig_t *config = zconfig_load (optarg);
            if (!config) {
                fprintf (stderr, "qanatd: cannot read config file %s\n", optarg);
                return 2;
            }
            const char *value;
            if ((value = zconfig_get (config, "qanatd/data_dir", NULL)))
                { free (data_dir); data_dir = strdup (value); }
            if ((value = zconfig_get (config, "qanatd/client_endpoint", NULL)))
                { free (client_endpoint); client_endpoint = strdup (value); }
            if ((value = zconfig_get (config, "qanatd/agent_endpoint", NULL)))
                { free (agent_endpoint); agent_endpoint = strdup (value); }
            s_config_number (config, "heartbeat_ms", &heartbeat_ms);
            s_config_number (config, "suspect_after_ms", &suspect_after_ms);
            s_config_number (config, "lost_after_ms", &lost_after_ms);
            s_config_number (config, "keep_runs", &keep_runs);
            s_config_number (config, "s3_delete_after", &s3_delete_after_s);
            s_notify_config_file (config, &notify);
            if ((value = zconfig_get (config, "qanatd/placement", NULL))
            &&  s_placement (value, &placement) == -1)
                return zconfig_destroy (&config), 2;
            if ((value = zconfig_get (config, "qanatd/sync", NULL)))
                durable = s_is_true (value);
            s_http_config_file (config, &http);
            zconfig_destroy (&config);
        }
        else
        if (opt == '?') {
            s_usage (stderr);
            return 2;
        }
    }
    optind = 1;
    while ((opt = getopt_long (argc, argv, "vhV", s_options, NULL)) != -1) {
        char *end = NULL;
        switch (opt) {
            case 'd': free (data_dir); data_dir = strdup (optarg); break;
            case 'R': restore = optarg; break;
            case 'c': free (client_endpoint); client_endpoint = strdup (optarg); break;
            case 'a': free (agent_endpoint); agent_endpoint = strdup (optarg); break;
            case 'b': heartbeat_ms = strtol (optarg, &end, 10); break;
            case 'l': lost_after_ms = strtol (optarg, &end, 10); break;
            case 's': suspect_after_ms = strtol (optarg, &end, 10); break;
            case 'n': durable = false; break;
            case 'k': keep_runs = strtol (optarg, &end, 10); break;
            case 'S': s3_delete_after_s = strtol (optarg, &end, 10); break;
            case 'I': insecure = true; break;
            case 'v': verbose = true; break;
            case OPT_PLACEMENT: if (s_placement (optarg, &placement) == -1) return 2; break;
            case 'h': s_usage (stdout); return 0;
            case 'V': printf ("qanatd %s\n", PACKAGE_VERSION); return 0;
            default:
                if (!s_notify_flag (opt, optarg, &notify, &end))
                    s_http_flag (opt, optarg, &http);
                break;
        }
        if (end && (*end || end == optarg)) {
            fprintf (stderr, "qanatd: '%s' is not a number\n", optarg);
            return 2;
        }
    }
    if (suspect_after_ms > lost_after_ms)
        suspect_after_ms = lost_after_ms;
    if (heartbeat_ms < 10 || heartbeat_ms > 3600000 || suspect_after_ms < heartbeat_ms) {
        fprintf (stderr, "qanatd: need 10 <= --heartbeat-ms <= 3600000 and "
                 "--heartbeat-ms <= --suspect-after-ms <= --lost-after-ms\n");
        return 2;
    }
    if (keep_runs < 0 || keep_runs > 100000000) {
        fprintf (stderr, "qanatd: --keep-runs wants a number from 0 to 100000000\n");
        return 2;
    }
    if (s3_delete_after_s < -1 || s3_delete_after_s > 10L * 365 * 86400) {
        fprintf (stderr, "qanatd: --s3-delete-after wants seconds from 0 to ten years, "
                 "or -1 for never\n");
        return 2;
    }
    if (notify.give_up_s < 1 || notify.give_up_s > 30L * 86400)
        return fprintf (stderr, "qanatd: --notify-give-up wants seconds from 1 to 30 days\n"), 2;
    if (!data_dir)
        data_dir = s_default_data_dir ();
    qn_file_make_parents (data_dir);
    if (restore)                //  installs a backup into an empty data dir, then exits
        return qn_backup_restore_main (restore, data_dir);

    zsys_init ();
    zsys_set_logident ("qanatd");
    qn_coordinator_config_t config = {
        .data_dir = data_dir,
        .client_endpoint = client_endpoint,
        .agent_endpoint = agent_endpoint,
        .durable = durable,
        .heartbeat_ms = (uint32_t) heartbeat_ms,
        .suspect_after_ms = (uint32_t) suspect_after_ms,
        .lost_after_ms = (uint32_t) lost_after_ms,
        .verbose = verbose,
        .insecure = insecure,
        .keep_runs = (uint32_t) keep_runs,
        .s3_delete_after_s = (int64_t) s3_delete_after_s,
        .notify_file = notify.file,
        .notify_give_up_s = notify.give_up_s,
        .public_url = notify.public_url,
        .spread = placement == QN_PLACEMENT_SPREAD
    };
    char *error = NULL;
    qn_coordinator_t *coordinator = qn_coordinator_new (&config, &error);
    if (!coordinator) {
        fprintf (stderr, "qanatd: %s\n", error? error: "cannot start");
        free (error);
        return 1;
    }
    s_warn_unsafe (durable, insecure);
    s_print_started (coordinator, data_dir);
    qn_http_t *http_server = NULL;
    if (s_http_start (&http, coordinator, &http_server) != 0) {
        qn_coordinator_destroy (&coordinator);
        return 1;
    }
    fflush (stdout);
    qn_coordinator_run (coordinator);
    //  The HTTP side stops first: nothing of it waits on an engine gone
    qn_http_destroy (&http_server);
    qn_coordinator_destroy (&coordinator);
    free (http.endpoint);
    free (http.cert);
    free (http.key);
    free (http.web_dir);
    qn_log (QN_LOG_INFO, "qanatd", "stopped");
    free (data_dir);
    free (client_endpoint);
    free (agent_endpoint);
    s_notify_options_free (&notify);
    return 0;
}
