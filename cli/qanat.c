/*  qanat - the command-line client.

    Every command talks to a coordinator's client socket through
    libqanat's qn_client, with a deadline on every call, so a coordinator
    that cannot be reached is a clear error within seconds, never a hang.
    Every query takes --json (or -o json) for scripts.

    Exit codes: the table cli_exit_codes_text (--help, docs/cli.md); the
    coordinator's Error.code picks one, never its message's text.

    Files: one program in several, one family of commands each, sharing
    the options, the exit codes and the helpers through qn_cli.h (private
    to these files):

        qanat.c             main; connecting to and calling the
                            coordinator, and Ctrl-C
        qn_cli_options.c    the option and command tables, parsing,
                            the help made from them
        qn_cli_complete.c   the bash and zsh completion scripts, made
                            from the same tables
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
        qn_cli_schedules.c  schedules, schedule pause|resume
        qn_cli_admin.c      agents, agent drain|undrain|revoke, token,
                            user, apitoken, whoami, secret, stats
        qn_cli_manage.c     user list|revoke, token list|revoke, secret
                            delete, agent remove|label
        qn_cli_backup.c     admin backup (waits for the verified copy)

    A new command is a cli_cmd_NAME function in the file of its family,
    its prototype in qn_cli.h and its row in s_commands
    (qn_cli_options.c); a new option is a row of s_options there.

    One of the files of the qn_cli class.
*/
#include "qn_cli.h"
#include "qn_cli_options.h"
#include "config.h"

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
//  main

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

//  Everything main does once options are made: each early return still
//  goes back to main, which frees the options (LeakSanitizer checks it)
static int
s_main (options_t *options, int argc, char *argv [])
{
    int command_at = argc;
    int rc = cli_options_parse (options, argc, argv, &command_at);
    if (rc)
        return rc;
    if (options->version) {
        printf ("qanat %s\n", PACKAGE_VERSION);
        return 0;
    }
    if (command_at >= argc) {
        cli_help_print (options->help? stdout: stderr);
        return options->help? 0: EXIT_USAGE;
    }
    const char *name = argv [command_at];
    const cli_command_t *command = cli_command_find (name);
    if (!command) {
        fprintf (stderr, "%s: unknown command '%s'\nRun '%s --help' for the commands.\n",
                 cli_program, name, cli_program);
        return EXIT_USAGE;
    }
    if (options->help) {
        cli_help_command (stdout, command);
        return 0;
    }
    cli_output_init (options);
    //  context edits the file itself; completion needs no coordinator
    if (!streq (name, "context") && !streq (name, "completion")
    &&  (rc = cli_config_apply (options)))
        return rc;
    return command->fn (options, argc - command_at - 1, argv + command_at + 1);
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
    int rc = s_main (&options, argc, argv);
    zlistx_destroy (&options.params);
    return rc;
}
