/*  qn_cli_options - the qanat CLI's option and command tables, the
    parsing made from them, and the help.  See qn_cli_options.h.

    One of the files of the qn_cli class.
*/
#include "qn_cli_options.h"
#include "config.h"
#include <getopt.h>
#include <stddef.h>

//  ---------------------------------------------------------------------
//  Setters of the options that are more than a field

//  -o FORMAT: json (as --json), yaml, wide, or the default table; a
//  file name here is what -o meant for get and user add before --out
static int
s_set_output (options_t *options, const char *format)
{
    if (streq (format, "json"))
        options->json = true;
    else
    if (streq (format, "yaml"))
        options->json = options->yaml = true;
    else
    if (streq (format, "wide"))
        options->wide = true;
    else
    if (!streq (format, "table") && !streq (format, "text")) {
        fprintf (stderr, "%s: -o/--output takes json, yaml, wide or table, not '%s'; "
                 "to save a download or a key use --out %s\n", cli_program, format, format);
        return -1;
    }
    return 0;
}

static int
s_set_timeout (options_t *options, const char *text)
{
    char *end = NULL;
    double seconds = strtod (text, &end);
    if (end == text || *end || !(seconds > 0) || seconds > 86400) {
        fprintf (stderr, "%s: --timeout takes seconds (like 5 or 0.5), not '%s'\n",
                 cli_program, text);
        return -1;
    }
    options->timeout_ms = (int) (seconds * 1000 + 0.5);
    if (options->timeout_ms < 1)
        options->timeout_ms = 1;
    return 0;
}

static int
s_set_color (options_t *options, const char *when)
{
    if (!streq (when, "auto") && !streq (when, "always") && !streq (when, "never")) {
        fprintf (stderr, "%s: --color takes auto, always or never, not '%s'\n", cli_program, when);
        return -1;
    }
    options->color = when;
    return 0;
}

//  ---------------------------------------------------------------------
//  The tables

#define FIELD(f) offsetof (options_t, f), NULL
#define CALL(fn) 0, fn

//  The global options first: the help lists them in this order
static const cli_option_t s_options [] = {
    {"coordinator", 0, "ENDPOINT", "the coordinator's client socket",
        "$QANAT_COORDINATOR, else the context's, else the key file's, else "
        QN_DEFAULT_CLIENT_ENDPOINT, "*", NULL, CLI_OPT_TEXT, FIELD (endpoint)},
    {"key", 0, "KEYFILE", "the client key file; 'none' talks plaintext to a coordinator"
        " run with --insecure",
        "$QANAT_KEY, else the context's, else ~/.qanat/client.key, else"
        " ~/.qanat/coordinator/keys/admin.key", "*", NULL, CLI_OPT_TEXT, FIELD (key)},
    {"context", 0, "NAME", "take the coordinator, key, URL and token from this context"
        " of the config file", "$QANAT_CONTEXT, else the file's current-context",
        "*", NULL, CLI_OPT_TEXT, FIELD (context)},
    {"timeout", 0, "SECONDS", "the deadline of each call to the coordinator", "5",
        "*", NULL, CLI_OPT_CALL, CALL (s_set_timeout)},
    {"json", 'j', NULL, "machine-readable output, as -o json", NULL,
        "*", NULL, CLI_OPT_FLAG, FIELD (json)},
    {"output", 'o', "FORMAT", "json, yaml, wide (tables with every column) or table",
        "table", "*", "json yaml wide table", CLI_OPT_CALL, CALL (s_set_output)},
    {"color", 0, "WHEN", "colour: auto (on a terminal, unless NO_COLOR is set), always"
        " or never", "auto", "*", "auto always never", CLI_OPT_CALL, CALL (s_set_color)},
    {"help", 'h', NULL, "show this help", NULL, "*", NULL, CLI_OPT_FLAG, FIELD (help)},
    {"version", 'V', NULL, "print the version and exit", NULL, "*", NULL,
        CLI_OPT_FLAG, FIELD (version)},
    //  Options of some commands
    {"follow", 'f', NULL, "stream progress and logs until the run ends", NULL,
        "run rerun logs", NULL, CLI_OPT_FLAG, FIELD (follow)},
    {"param", 'p', "NAME=VALUE", "a workflow parameter (repeat for more); NAME=@PATH"
        " puts a local file or directory for an artifact parameter",
        "the workflow's defaults", "run", NULL, CLI_OPT_LIST, FIELD (params)},
    {"no-cache", 0, NULL, "run every task, taking no cached outputs", NULL,
        "run rerun", NULL, CLI_OPT_FLAG, FIELD (no_cache)},
    {"code-max", 0, "SIZE", "the largest code folder to pack (K, M, G: binary)", "100M",
        "run workflow", NULL, CLI_OPT_TEXT, FIELD (code_max)},
    {"failed-only", 0, NULL, "run only the tasks that did not succeed; the rest are"
        " taken from RUN as cached", NULL, "rerun", NULL, CLI_OPT_FLAG, FIELD (failed_only)},
    {"attempt", 0, "N", "only attempt N of the task", "every attempt",
        "logs", NULL, CLI_OPT_COUNT, FIELD (attempt)},
    {"limit", 0, "N", "list at most N", "50", "runs notifications", NULL,
        CLI_OPT_COUNT, FIELD (limit)},
    {"timestamps", 0, NULL, "each line starts with its time (RFC 3339, UTC)", NULL,
        "logs", NULL, CLI_OPT_FLAG, FIELD (timestamps)},
    {"tail", 0, "N", "only the last N lines (of those --since keeps)", "every line",
        "logs", NULL, CLI_OPT_TEXT, FIELD (tail)},
    {"since", 0, "DURATION|TIME", "only lines (logs) or runs (runs) from this long ago"
        " (30s, 10m, 2h, 1d) or from this RFC 3339 time on", "the beginning",
        "logs runs", NULL, CLI_OPT_TEXT, FIELD (since)},
    {"status", 0, "STATUS", "only runs in this status", "any status", "runs",
        "queued running succeeded succeeded_with_warnings failed canceled",
        CLI_OPT_TEXT, FIELD (status)},
    {"owner", 0, "USER", "only the runs this user started", "anyone's", "runs", NULL,
        CLI_OPT_TEXT, FIELD (owner)},
    {"force", 0, NULL, "replace a file or directory that is at the target already", NULL,
        "get", NULL, CLI_OPT_FLAG, FIELD (force)},
    {"ttl", 0, "DURATION", "how long it stays valid: 90, 90s, 30m, 2h, 1d; 0 = never",
        "1h for a join token, never for an API token", "token apitoken", NULL,
        CLI_OPT_TEXT, FIELD (ttl)},
    {"uses", 0, "N", "how many agents may join with it", "1", "token", NULL,
        CLI_OPT_COUNT, FIELD (uses)},
    {"labels", 0, "k=v,...", "the labels agents that join with it get", "none",
        "token", NULL, CLI_OPT_TEXT, FIELD (labels)},
    {"role", 0, "ROLE", "user or admin", "user", "user apitoken", "user admin",
        CLI_OPT_TEXT, FIELD (role)},
    {"user", 0, "NAME", "the user the API token acts as", "you",
        "apitoken", NULL, CLI_OPT_TEXT, FIELD (user)},
    {"allow", 0, "LIST", "who may use the secret: user:NAME,role:ROLE,workflow:NAME",
        "role:admin", "secret", NULL, CLI_OPT_TEXT, FIELD (allow)},
    {"agents", 0, "k=v,...", "the agents the secret may go to (by their labels)",
        "any agent", "secret", NULL, CLI_OPT_TEXT, FIELD (agent_labels)},
    {"out", 0, "PATH", "get: where to save the output ('-': stdout); user add: where to"
        " write the new key", "get: the output's name here; user add: stdout",
        "get user", NULL, CLI_OPT_TEXT, FIELD (out)},
    {"url", 0, "URL", "the context's HTTP API address (for the Python SDK)", NULL,
        "context", NULL, CLI_OPT_TEXT, FIELD (url)},
    {"token", 0, "TOKEN", "the context's HTTP API bearer token", NULL,
        "context", NULL, CLI_OPT_TEXT, FIELD (token)},
    {"token-file", 0, "PATH", "a file holding the context's HTTP API token", NULL,
        "context", NULL, CLI_OPT_TEXT, FIELD (token_file)},
    {NULL}
};

static const cli_command_t s_commands [] = {
    {"run", cli_cmd_run, "FILE|NAME[@V]|-",
        "start a run of a workflow file, a stored workflow (newest or version V), or stdin",
        NULL},
    {"rerun", cli_cmd_rerun, "RUN",
        "run a run's workflow version again, with its params and code", NULL},
    {"workflows", cli_cmd_workflows, "", "stored workflows: latest version, when, runs", NULL},
    {"workflow", cli_cmd_workflow, "publish FILE | show NAME[@V] | diff NAME V1 V2",
        "store a version without running it, print a version's text, or diff two versions",
        "publish show diff"},
    {"schedules", cli_cmd_schedules, "[WORKFLOW]",
        "schedules and triggers: cron, zone, next and last tick, the last tick's run", NULL},
    {"schedule", cli_cmd_schedule, "pause|resume NAME",
        "stop or resume a workflow's schedule ticks (admin); paused ticks are recorded skipped",
        "pause resume"},
    {"runs", cli_cmd_runs, "[WORKFLOW]", "list runs, newest first", NULL},
    {"status", cli_cmd_status, "RUN", "a run's tasks, attempts, checks and why tasks wait",
        NULL},
    {"notifications", cli_cmd_notifications, "[RUN]",
        "notifications of runs' endings: channel, target, state, attempts, last error", NULL},
    {"logs", cli_cmd_logs, "RUN [TASK]", "a run's logs", NULL},
    {"metrics", cli_cmd_metrics, "RUN|WORKFLOW [NAME]",
        "a run's metric series, or a workflow's last value per run", NULL},
    {"artifacts", cli_cmd_artifacts, "RUN", "the outputs a run's tasks produced", NULL},
    {"get", cli_cmd_get, "RUN TASK.OUTPUT",
        "download an output (file or directory, verified), or print a value", NULL},
    {"put", cli_cmd_put, "PATH",
        "feed a file or directory in, for an artifact parameter", NULL},
    {"cancel", cli_cmd_cancel, "RUN [TASK]", "cancel a run, or one task of it", NULL},
    {"validate", cli_cmd_validate, "FILE", "check a workflow file without running it", NULL},
    {"agents", cli_cmd_agents, "", "agents, their labels, slots and state", NULL},
    {"agent", cli_cmd_agent, "drain|undrain|revoke|remove NAME | label NAME KEY=VALUE... [KEY-...]",
        "stop giving an agent new work (it finishes what it runs), resume, cut it off,"
        " forget one that is not connected, or set its labels (admin)",
        "drain undrain revoke remove label"},
    {"token", cli_cmd_token, "create | list | revoke ID",
        "join tokens for new agents: make one, list them (id, expiry, uses left, labels),"
        " or revoke one (admin)", "create list revoke"},
    {"user", cli_cmd_user, "add NAME | list | revoke NAME | weight NAME W | weights",
        "users and their client keys: add one, list them, or revoke one (its key is refused"
        " at once); an owner's fair-share weight (admin)", "add list revoke weight weights"},
    {"pools", cli_cmd_pools, "", "named pools: size, attempts using them, tasks waiting", NULL},
    {"pool", cli_cmd_pool, "set NAME N",
        "size a named pool shared across workflows (0: back to 1) (admin)", "set"},
    {"apitoken", cli_cmd_apitoken, "create NAME | list | revoke NAME",
        "bearer tokens for the HTTP API: a new one is shown once (admin)",
        "create list revoke"},
    {"whoami", cli_cmd_whoami, "", "who the coordinator takes you for, and your role", NULL},
    {"secret", cli_cmd_secret, "set NAME < FILE | allow NAME LIST | list | delete NAME",
        "a secret (stdin, sealed at rest) and who may use it, or delete one (admin)",
        "set allow list delete"},
    {"stats", cli_cmd_stats, "", "coordinator counters (malformed messages, events)", NULL},
    {"admin", cli_cmd_admin, "backup DIR",
        "a verified copy of the coordinator's store, blobs and keys into DIR (absent or"
        " empty) on the coordinator's host; waits up to 10 minutes (admin)", "backup"},
    {"context", cli_cmd_context, "add NAME | use NAME | list | show [NAME] | remove NAME",
        "contexts of the config file: a coordinator and key (and the HTTP API's URL and"
        " token) under a name", "add use list show remove"},
    {"completion", cli_cmd_completion, "bash|zsh",
        "a shell completion script for qanat, on stdout", "bash zsh"},
    {NULL}
};

const cli_option_t *
cli_options_table (void)
{
    return s_options;
}

const cli_command_t *
cli_commands_table (void)
{
    return s_commands;
}

const cli_command_t *
cli_command_find (const char *name)
{
    for (const cli_command_t *command = s_commands; command->name; command++)
        if (streq (command->name, name))
            return command;
    return NULL;
}

//  True when word is one of the space-separated words of list
static bool
s_word_in (const char *list, const char *word)
{
    size_t size = strlen (word);
    for (const char *at = list; at && *at; ) {
        const char *end = strchr (at, ' ');
        size_t length = end? (size_t) (end - at): strlen (at);
        if (length == size && memcmp (at, word, size) == 0)
            return true;
        at = end? end + 1: at + length;
    }
    return false;
}

bool
cli_option_applies (const cli_option_t *option, const char *command)
{
    return streq (option->commands, "*") || (command && s_word_in (option->commands, command));
}

//  ---------------------------------------------------------------------
//  Parsing

#define OPTIONS_MAX 64      //  rows of s_options; a static check below
#define LONG_ID_BASE 256    //  getopt's value of a row with no letter: base + row

static int
s_set (options_t *options, const cli_option_t *option, const char *arg)
{
    char *field = (char *) options + option->offset;
    switch (option->kind) {
        case CLI_OPT_FLAG:
            *(bool *) field = true;
            return 0;
        case CLI_OPT_TEXT:
            *(const char **) field = arg;
            return 0;
        case CLI_OPT_LIST:
            zlistx_add_end (*(zlistx_t **) field, (void *) arg);
            return 0;
        case CLI_OPT_COUNT: {
            char *end = NULL;
            errno = 0;
            unsigned long long value = strtoull (arg, &end, 10);
            if (!isdigit ((unsigned char) *arg) || *end || errno || value > UINT32_MAX) {
                fprintf (stderr, "%s: --%s takes a whole number, not '%s'\n",
                         cli_program, option->name, arg);
                return -1;
            }
            *(uint32_t *) field = (uint32_t) value;
            return 0;
        }
        case CLI_OPT_CALL:
            return option->set (options, arg);
    }
    return -1;
}

int
cli_options_parse (options_t *options, int argc, char **argv, int *command_at_p)
{
    size_t rows = 0;
    while (s_options [rows].name)
        rows++;
    assert (rows < OPTIONS_MAX);
    struct option long_options [OPTIONS_MAX + 1];
    char letters [OPTIONS_MAX * 2 + 2];
    size_t at = 0;
    //  GNU permutation, so options may come after the command; a leading
    //  ':' would hide getopt's own message, which names the option well
    for (size_t row = 0; row < rows; row++) {
        const cli_option_t *option = &s_options [row];
        int id = option->letter? option->letter: LONG_ID_BASE + (int) row;
        long_options [row] = (struct option) {
            option->name, option->arg? required_argument: no_argument, NULL, id
        };
        if (option->letter) {
            letters [at++] = option->letter;
            if (option->arg)
                letters [at++] = ':';
        }
    }
    letters [at] = 0;
    long_options [rows] = (struct option) {0};

    bool given [OPTIONS_MAX] = {false};
    int opt;
    while ((opt = getopt_long (argc, argv, letters, long_options, NULL)) != -1) {
        size_t row = rows;
        if (opt >= LONG_ID_BASE)
            row = (size_t) (opt - LONG_ID_BASE);
        else
            for (row = 0; row < rows && s_options [row].letter != opt; row++)
                ;
        if (opt == '?' || row >= rows) {
            fprintf (stderr, "Run '%s --help' for the commands and options.\n", cli_program);
            return EXIT_USAGE;
        }
        if (s_set (options, &s_options [row], optarg))
            return EXIT_USAGE;
        given [row] = true;
    }
    *command_at_p = optind;
    const char *command = optind < argc? argv [optind]: NULL;
    if (!command || options->help || options->version || !cli_command_find (command))
        return 0;
    for (size_t row = 0; row < rows; row++)
        if (given [row] && !cli_option_applies (&s_options [row], command)) {
            fprintf (stderr, "%s: %s does not take --%s (see '%s %s --help')\n",
                     cli_program, command, s_options [row].name, cli_program, command);
            return EXIT_USAGE;
        }
    return 0;
}

//  ---------------------------------------------------------------------
//  Help

const char *cli_exit_codes_text =
    "Exit codes:\n"
    "  0    ok\n"
    "  1    the run or task failed (or was canceled)\n"
    "  2    usage, an invalid workflow, a bad key file, the wrong socket\n"
    "  3    not found: run, task, attempt, output, workflow, agent, metric\n"
    "  4    permission denied: role, ownership, a key not admitted or missing\n"
    "  5    the coordinator unreachable or timed out\n"
    "  6    conflict: already ended, already exists, already enrolled\n"
    "  130  interrupted (Ctrl-C); a followed run goes on\n";

#define HELP_WIDTH  79
#define HELP_INDENT 28

//  Prints text from column `column`, wrapped at HELP_WIDTH with later
//  lines indented by indent
static void
s_wrap (FILE *out, const char *text, size_t column, size_t indent)
{
    const char *at = text;
    while (*at) {
        size_t room = HELP_WIDTH > column? HELP_WIDTH - column: 20;
        size_t length = strlen (at);
        if (length > room) {
            size_t cut = room;
            while (cut > 0 && at [cut] != ' ')
                cut--;
            length = cut? cut: room;
        }
        fprintf (out, "%.*s\n", (int) length, at);
        at += length;
        while (*at == ' ')
            at++;
        if (*at)
            fprintf (out, "%*s", (int) indent, "");
        column = indent;
    }
}

static void
s_print_option (FILE *out, const cli_option_t *option)
{
    char head [64];
    snprintf (head, sizeof head, "  %c%c%s--%s%s%s",
              option->letter? '-': ' ', option->letter? option->letter: ' ',
              option->letter? ", ": "  ", option->name, option->arg? " ": "",
              option->arg? option->arg: "");
    size_t column = strlen (head);
    fputs (head, out);
    if (column + 2 > HELP_INDENT) {
        fprintf (out, "\n%*s", HELP_INDENT, "");
        column = HELP_INDENT;
    }
    else {
        fprintf (out, "%*s", (int) (HELP_INDENT - column), "");
        column = HELP_INDENT;
    }
    char *text = option->fallback
               ? zsys_sprintf ("%s (default: %s)", option->help, option->fallback)
               : strdup (option->help);
    s_wrap (out, text? text: option->help, column, HELP_INDENT);
    free (text);
}

static void
s_print_globals (FILE *out)
{
    fprintf (out, "Global options (every command):\n");
    for (const cli_option_t *option = s_options; option->name; option++)
        if (streq (option->commands, "*"))
            s_print_option (out, option);
}

void
cli_help_print (FILE *out)
{
    fprintf (out, "Usage: %s [OPTION]... COMMAND [ARG]...\n\n"
                  "The qanat client: runs, their logs, metrics and outputs, and the"
                  " coordinator's\nusers, agents and secrets.\n\nCommands:\n", cli_program);
    for (const cli_command_t *command = s_commands; command->name; command++) {
        //  The longest name (notifications) and a space
        fprintf (out, "  %-14s", command->name);
        s_wrap (out, command->summary, 16, 16);
    }
    fprintf (out, "\n");
    s_print_globals (out);
    fprintf (out, "\nOptions may come before or after the command; '%s COMMAND --help' shows\n"
                  "a command's own.  The config file ($XDG_CONFIG_HOME/qanat/config.yaml)\n"
                  "holds contexts; the command line wins over the environment, which wins\n"
                  "over the context.\n\n%s", cli_program, cli_exit_codes_text);
}

void
cli_help_command (FILE *out, const cli_command_t *command)
{
    bool own = false;
    for (const cli_option_t *option = s_options; option->name; option++)
        own |= !streq (option->commands, "*") && cli_option_applies (option, command->name);
    fprintf (out, "Usage: %s %s%s%s [OPTION]...\n\n", cli_program, command->name,
             *command->args? " ": "", command->args);
    s_wrap (out, command->summary, 0, 0);
    if (own) {
        fprintf (out, "\nOptions:\n");
        for (const cli_option_t *option = s_options; option->name; option++)
            if (!streq (option->commands, "*") && cli_option_applies (option, command->name))
                s_print_option (out, option);
    }
    fprintf (out, "\n");
    s_print_globals (out);
    fprintf (out, "\n%s", cli_exit_codes_text);
}

int
cli_usage_error (const char *name)
{
    const cli_command_t *command = cli_command_find (name);
    if (command)
        fprintf (stderr, "Usage: %s %s%s%s [OPTION]...\n", cli_program, command->name,
                 *command->args? " ": "", command->args);
    fprintf (stderr, "Run '%s %s --help' for more.\n", cli_program, name);
    return EXIT_USAGE;
}
