/*  qanat - the command-line client.

    Every command talks to a coordinator's client socket through
    libqanat's qn_client, with a deadline on every call, so a coordinator
    that cannot be reached is a clear error within seconds, never a hang.
    Every query takes --json (or -o json) for scripts.

    Exit codes: the table s_exit_codes (--help, docs/cli.md); the
    coordinator's Error.code picks one, never its message's text.

    Files: one program in several, one family of commands each, sharing
    the options, the exit codes and the helpers through qn_cli.h (private
    to these files):

        qanat.c             main: the global options, the command table
                            and the help text; connecting to and calling
                            the coordinator, and Ctrl-C
        qn_cli_output.c     JSON strings and labels, times and durations
        qn_cli_runs.c       run (with --param NAME=@PATH), runs, status,
                            cancel, validate; a run as a table or as JSON
        qn_cli_follow.c     run --follow: the starts, log lines and ends
                            of a run's attempts merged in time order
        qn_cli_logs.c       logs (and logs --follow); printing a log line
        qn_cli_metrics.c    metrics; the summary that ends run --follow
        qn_cli_artifacts.c  artifacts; get, from the coordinator or S3;
                            put, in resumable pieces
        qn_cli_workflows.c  workflow(s), rerun, run NAME[@V] and run -
        qn_cli_admin.c      agents, agent drain|undrain|revoke, token,
                            user, apitoken, whoami, secret, stats
        qn_cli_manage.c     user list|revoke, token list|revoke, secret
                            delete, agent remove|label

    A new command is a cli_cmd_NAME function in the file of its family,
    its prototype in qn_cli.h and its row in s_commands below.

    One of the files of the qn_cli class.
*/
#include "qn_cli.h"
#include "config.h"
#include <getopt.h>

//  ---------------------------------------------------------------------
//  Talking to the coordinator

//  The run `--follow` is following, so that Ctrl-C can say where it went
uint64_t cli_followed_run;

const char *cli_program = "qanat";

//  Ctrl-C (czmq's handler sets zsys_interrupted) stops this client; the
//  run it followed goes on, and the user is told how to stop it.  Only
//  fixed text and a number: nothing read from the network is printed.
void
cli_exit_interrupted (void)
{
    fflush (stdout);
    if (cli_followed_run)
        fprintf (stderr, "\nrun %llu continues (%s cancel %llu to stop it)\n",
                 (unsigned long long) cli_followed_run, cli_program,
                 (unsigned long long) cli_followed_run);
    else
        fprintf (stderr, "\n%s: interrupted\n", cli_program);
    exit (EXIT_INTERRUPTED);
}

qn_client_t *
cli_connect (options_t *options)
{
    char *error = NULL;
    qn_client_failure_t failure = QN_CLIENT_LOCAL;
    qn_client_t *client = qn_client_new_checked (options->endpoint, options->key,
                                                 options->timeout_ms, &failure, &error);
    if (!client) {
        fprintf (stderr, "%s: %s\n", cli_program, error? error: "cannot connect");
        free (error);
        exit (cli_exit_code_of (failure, 0, 0));
    }
    return client;
}

int
cli_exit_code_of (qn_client_failure_t failure, int error_code, uint32_t refusal_code)
{
    switch (failure) {
        case QN_CLIENT_OK:          return 0;
        case QN_CLIENT_ERROR:
            switch (error_code) {
                case QANAT__ERROR_CODE__ERROR_NOT_FOUND:    return EXIT_NOT_FOUND;
                case QANAT__ERROR_CODE__ERROR_DENIED:       return EXIT_DENIED;
                case QANAT__ERROR_CODE__ERROR_CONFLICT:     return EXIT_CONFLICT;
                case QANAT__ERROR_CODE__ERROR_UNAVAILABLE:  return EXIT_UNREACHABLE;
                default:                                    return EXIT_USAGE;
            }
        case QN_CLIENT_REFUSED:
            //  A key not admitted is denied; the rest (the wrong socket, a
            //  malformed or unsupported message) is a mistake of usage
            return refusal_code == QANAT__REFUSAL_CODE__REFUSAL_DENIED? EXIT_DENIED: EXIT_USAGE;
        case QN_CLIENT_DENIED:      return EXIT_DENIED;
        case QN_CLIENT_UNREACHABLE: return EXIT_UNREACHABLE;
        case QN_CLIENT_INTERRUPTED: return EXIT_INTERRUPTED;
        default:                    return EXIT_USAGE;      //  bad key file, request too large
    }
}

int
cli_exit_code (qn_client_t *client)
{
    return cli_exit_code_of (qn_client_failure (client), qn_client_error_code (client),
                             qn_client_refusal_code (client));
}

int
cli_failure_code (qn_client_t *client, int local_code)
{
    return qn_client_failure (client) == QN_CLIENT_OK? local_code: cli_exit_code (client);
}

//  Calls the coordinator; on failure prints the error and exits.
Qanat__Envelope *
cli_call (qn_client_t *client, Qanat__Request *request)
{
    char *error = NULL;
    Qanat__Envelope *reply = qn_client_call (client, request, &error);
    if (!reply && (zsys_interrupted || qn_client_failure (client) == QN_CLIENT_INTERRUPTED))
        cli_exit_interrupted ();
    if (!reply) {
        fprintf (stderr, "%s: %s\n", cli_program, error? error: "request failed");
        free (error);
        exit (cli_exit_code (client));
    }
    return reply;
}

Qanat__Envelope *
cli_get_run (qn_client_t *client, uint64_t run_id)
{
    Qanat__GetRun get = QANAT__GET_RUN__INIT;
    get.run_id = run_id;
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.body_case = QANAT__REQUEST__BODY_GET_RUN;
    request.get_run = &get;
    return cli_call (client, &request);
}

uint64_t
cli_parse_run_id (const char *text)
{
    char *end = NULL;
    unsigned long long value = strtoull (text, &end, 10);
    if (!*text || *end || value == 0) {
        fprintf (stderr, "%s: '%s' is not a run id (runs are numbered 1, 2, ...)\n", cli_program, text);
        exit (EXIT_USAGE);
    }
    return (uint64_t) value;
}

//  ---------------------------------------------------------------------
//  The commands and their help

typedef struct {
    const char *name;
    int (*fn) (options_t *, int, char **);
    const char *usage;
    const char *summary;
} command_t;

static command_t s_commands [] = {
    {"run", cli_cmd_run, "run FILE|NAME[@V]|- [--param NAME=VALUE ...] [--follow] [--no-cache] [--code-max SIZE]",
        "start a run of a workflow file, a stored workflow (newest or version V), or stdin;"
        " --follow streams progress and logs to the end"},
    {"rerun", cli_cmd_rerun, "rerun RUN [--failed-only] [--follow]",
        "run a run's workflow version again with its params; --failed-only takes the tasks"
        " that succeeded as cached from it"},
    {"workflows", cli_cmd_workflows, "workflows", "stored workflows: latest version, when, runs"},
    {"workflow", cli_cmd_workflow, "workflow publish FILE | show NAME[@V] | diff NAME V1 V2",
        "store a version without running it, print a version's text, or diff two versions"},
    {"runs", cli_cmd_runs, "runs [WORKFLOW] [--limit N]", "list runs, newest first"},
    {"status", cli_cmd_status, "status RUN", "a run's tasks, attempts, checks and why tasks wait"},
    {"logs", cli_cmd_logs, "logs RUN [TASK] [--attempt N] [--follow]", "a run's logs"},
    {"metrics", cli_cmd_metrics, "metrics RUN|WORKFLOW [NAME]",
        "a run's metric series, or a workflow's last value per run"},
    {"agents", cli_cmd_agents, "agents", "agents, their labels, slots and state"},
    {"cancel", cli_cmd_cancel, "cancel RUN [TASK]", "cancel a run, or one task of it"},
    {"agent", cli_cmd_agent, "agent drain|undrain|revoke NAME",
        "stop giving an agent new work (it finishes what it runs), resume, or cut it off"},
    {"token", cli_cmd_token, "token create [--ttl 1h] [--uses N] [--labels k=v,..]",
        "a join token for new agents (admin)"},
    {"user", cli_cmd_user, "user add NAME [--role user|admin] [--out KEYFILE]",
        "a user and their client key (admin)"},
    {"apitoken", cli_cmd_apitoken,
        "apitoken create NAME [--role user|admin] [--user U] [--ttl 30d] | list | revoke NAME",
        "bearer tokens for the HTTP API: a new one is shown once; --ttl 0 never expires (admin)"},
    {"whoami", cli_cmd_whoami, "whoami", "who the coordinator takes you for, and your role"},
    {"secret", cli_cmd_secret, "secret set NAME [--allow LIST] < FILE | allow NAME LIST | list",
        "a secret (stdin, sealed at rest) and who may use it: LIST is user:NAME,role:ROLE,"
        "workflow:NAME (default role:admin), --agents k=v,.. the agents it may go to (admin)"},
    {"validate", cli_cmd_validate, "validate FILE", "check a workflow file without running it"},
    {"artifacts", cli_cmd_artifacts, "artifacts RUN", "the outputs a run's tasks produced"},
    {"get", cli_cmd_get, "get RUN TASK.OUTPUT [--out PATH|-]",
        "download an output (file or directory, verified), or print a value"},
    {"put", cli_cmd_put, "put PATH",
        "feed a file or directory in, for an artifact parameter (run --param NAME=@PATH does it too)"},
    {"stats", cli_cmd_stats, "stats", "coordinator counters (malformed messages, events)"},
    {NULL, NULL, NULL, NULL}
};

//  The one table of exit codes (docs/cli.md has it too)
static const char *s_exit_codes =
    "Exit codes:\n"
    "  0    ok\n"
    "  1    the run or task failed (or was canceled)\n"
    "  2    usage, an invalid workflow, a bad key file, the wrong socket\n"
    "  3    not found: run, task, attempt, output, workflow, agent, metric\n"
    "  4    permission denied: role, ownership, a key not admitted or missing\n"
    "  5    the coordinator unreachable or timed out\n"
    "  6    conflict: already ended, already exists, already enrolled\n"
    "  130  interrupted (Ctrl-C); a followed run goes on\n";

static void
s_usage (FILE *out)
{
    fprintf (out, "usage: qanat [--coordinator ENDPOINT] [--key KEYFILE] [--timeout SECONDS] COMMAND [ARGS]\n\n"
                  "Commands:\n");
    for (command_t *command = s_commands; command->name; command++)
        fprintf (out, "  %-46s %s\n", command->usage, command->summary);
    fprintf (out, "\nEvery query takes --json (also -o json, --output json); runs -o wide adds\n"
                  "columns.  get saves to --out PATH, or to stdout with --out -.\n"
                  "The coordinator is ENDPOINT, else $QANAT_COORDINATOR, else the key file's, else\n"
                  QN_DEFAULT_CLIENT_ENDPOINT ".  The client key is KEYFILE, else\n"
                  "$QANAT_KEY, else ~/.qanat/client.key, else ~/.qanat/coordinator/keys/admin.key;\n"
                  "--key none talks plaintext to a coordinator run with --insecure.\n"
                  "'qanat COMMAND --help' shows one command.\n\n%s", s_exit_codes);
}

//  The name the user typed: libtool runs an uninstalled build as
//  .libs/lt-qanat, which is nobody's business
static const char *
s_program_name (const char *argv0)
{
    const char *slash = argv0? strrchr (argv0, '/'): NULL;
    const char *name = slash? slash + 1: argv0;
    if (name && strncmp (name, "lt-", 3) == 0)
        name += 3;
    return name && *name? name: "qanat";
}

//  -o FORMAT: json (as --json), wide, or the default table; a file name
//  here is what -o meant for get and user add before --out
static int
s_set_format (options_t *options, const char *format)
{
    if (streq (format, "json"))
        options->json = true;
    else
    if (streq (format, "wide"))
        options->wide = true;
    else
    if (!streq (format, "table") && !streq (format, "text")) {
        fprintf (stderr, "%s: -o/--output takes json, wide or table, not '%s'; "
                 "to save a download or a key use --out %s\n", cli_program, format, format);
        return -1;
    }
    return 0;
}

int
main (int argc, char *argv [])
{
    zsys_init ();
    zsys_set_logstream (NULL);
    cli_program = s_program_name (argv [0]);
    argv [0] = (char *) cli_program;        //  getopt's messages name it
    options_t options = {0};
    options.timeout_ms = 5000;
    options.params = zlistx_new ();
    zlistx_set_destructor (options.params, (zlistx_destructor_fn *) zstr_free);
    zlistx_set_duplicator (options.params, (zlistx_duplicator_fn *) strdup);
    static struct option long_options [] = {
        {"coordinator", required_argument, 0, 'c'},
        {"timeout", required_argument, 0, 't'},
        {"json", no_argument, 0, 'j'},
        {"follow", no_argument, 0, 'f'},
        {"no-cache", no_argument, 0, 'N'},
        {"code-max", required_argument, 0, 'M'},
        {"failed-only", no_argument, 0, 'F'},
        {"param", required_argument, 0, 'p'},
        {"attempt", required_argument, 0, 'a'},
        {"limit", required_argument, 0, 'l'},
        {"key", required_argument, 0, 'k'},
        {"ttl", required_argument, 0, 'T'},
        {"uses", required_argument, 0, 'U'},
        {"labels", required_argument, 0, 'L'},
        {"role", required_argument, 0, 'R'},
        {"user", required_argument, 0, 'S'},
        {"allow", required_argument, 0, 'A'},
        {"agents", required_argument, 0, 'G'},
        {"output", required_argument, 0, 'o'},
        {"out", required_argument, 0, 'O'},
        {"help", no_argument, 0, 'h'},
        {"version", no_argument, 0, 'V'},
        {0, 0, 0, 0}
    };
    bool help = false;
    int opt;
    //  Options may come before or after the command (GNU permutation).
    while ((opt = getopt_long (argc, argv, "fhjp:o:", long_options, NULL)) != -1) {
        switch (opt) {
            case 'c': options.endpoint = optarg; break;
            case 't': options.timeout_ms = (int) (atof (optarg) * 1000); break;
            case 'j': options.json = true; break;
            case 'f': options.follow = true; break;
            case 'N': options.no_cache = true; break;
            case 'M': options.code_max = optarg; break;
            case 'F': options.failed_only = true; break;
            case 'p': zlistx_add_end (options.params, optarg); break;
            case 'a': options.attempt = (uint32_t) atoi (optarg); break;
            case 'l': options.limit = (uint32_t) atoi (optarg); break;
            case 'k': options.key = optarg; break;
            case 'T': options.ttl = optarg; break;
            case 'U': options.uses = (uint32_t) atoi (optarg); break;
            case 'L': options.labels = optarg; break;
            case 'R': options.role = optarg; break;
            case 'S': options.user = optarg; break;
            case 'A': options.allow = optarg; break;
            case 'G': options.agent_labels = optarg; break;
            case 'o':
                if (s_set_format (&options, optarg))
                    return EXIT_USAGE;
                break;
            case 'O': options.out = optarg; break;
            case 'h': help = true; break;
            case 'V': printf ("qanat %s\n", PACKAGE_VERSION); return 0;
            default: s_usage (stderr); return EXIT_USAGE;
        }
    }
    if (options.timeout_ms <= 0)
        options.timeout_ms = 5000;
    if (optind >= argc) {
        s_usage (help? stdout: stderr);
        return help? 0: EXIT_USAGE;
    }
    const char *name = argv [optind];
    for (command_t *command = s_commands; command->name; command++)
        if (streq (command->name, name)) {
            if (help) {
                printf ("usage: %s %s [--json|-o json] [--coordinator ENDPOINT]\n\n%s\n\n%s",
                        cli_program, command->usage, command->summary, s_exit_codes);
                return 0;
            }
            int rc = command->fn (&options, argc - optind - 1, argv + optind + 1);
            zlistx_destroy (&options.params);
            return rc;
        }
    fprintf (stderr, "%s: unknown command '%s'\n\n", cli_program, name);
    s_usage (stderr);
    return EXIT_USAGE;
}
