/*  qn_cli - what the files of the qanat command-line client share, and
    nobody else: the parsed options, the exit codes, the calls to the
    coordinator, the output helpers, and every command's entry point.

    The client is one program in several files (see the top of qanat.c
    for which file holds what); only those files include this header.

    One of the files of the qn_cli class.
*/
#ifndef QN_CLI_H_INCLUDED
#define QN_CLI_H_INCLUDED

#include "qanat.h"
#include "qn_tree.h"
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

//  Exit codes: what scripts see, one table (qanat --help and docs/cli.md
//  show it; cli_exit_code maps a failed call to it)
#define EXIT_RUN_FAILED   1         //  the run or task failed (or was canceled)
#define EXIT_USAGE        2         //  bad usage, invalid workflow, bad key file
#define EXIT_NOT_FOUND    3         //  no such run, task, attempt, output, workflow...
#define EXIT_DENIED       4         //  permission denied: role, ownership, key
#define EXIT_UNREACHABLE  5         //  the coordinator could not be reached in time
#define EXIT_CONFLICT     6         //  already ended, already exists...
#define EXIT_INTERRUPTED  130       //  128 + SIGINT, as a shell reports it
//  The coordinator failed the request: prefer cli_exit_code (client)
#define EXIT_COORDINATOR  EXIT_UNREACHABLE

//  The parsed options (cli/qn_cli_options.c has their table: which
//  command takes which); a command reads only those it takes
typedef struct {
    const char *endpoint;
    const char *key;                //  client key file, "none", or NULL for the default
    const char *context;            //  --context: a context of the config file
    const char *color;              //  --color auto|always|never
    const char *ttl;                //  token create
    uint32_t uses;
    const char *labels;
    const char *role;               //  user add, apitoken create
    const char *user;               //  apitoken create: whose runs it makes
    const char *allow;              //  secret set: who may use it
    const char *agent_labels;       //  secret set: agents it may go to
    const char *out;                //  --out FILE: get's target ("-": stdout), user add's key
    const char *url;                //  context add: the HTTP API
    const char *token;              //  context add: its bearer token
    const char *token_file;         //  context add: a file holding it
    int timeout_ms;
    bool json;                      //  --json, -o json (and -o yaml: printed as YAML)
    bool yaml;                      //  -o yaml
    bool wide;                      //  -o wide: every column
    bool help;
    bool version;
    bool follow;
    bool no_cache;
    const char *code_max;           //  run: the largest code to pack (a size)
    bool failed_only;               //  rerun: reuse what succeeded
    uint32_t attempt;
    uint32_t limit;
    zlistx_t *params;       //  "k=v" strings
    bool timestamps;                //  logs: each line's time
    const char *tail;               //  logs: the last N lines (checked by the command)
    const char *since;              //  logs, runs: a duration back from now, or an RFC 3339 time
    const char *status;             //  runs: only runs in this status
    const char *owner;              //  runs: only this user's runs
    bool force;                     //  get: replace what is at the target
} options_t;

//  ---------------------------------------------------------------------
//  Talking to the coordinator (qanat.c)

//  The run that `run --follow` or `logs --follow` is following, so that
//  Ctrl-C can say where it went; 0 when none
extern uint64_t cli_followed_run;

//  Ctrl-C: says how to find the followed run again, exits 130
void
    cli_exit_interrupted (void);

//  Connects, or exits with EXIT_COORDINATOR after saying why
qn_client_t *
    cli_connect (options_t *options);

//  Calls the coordinator; on failure prints the error and exits with
//  the code cli_exit_code gives.
Qanat__Envelope *
    cli_call (qn_client_t *client, Qanat__Request *request);

//  The exit code the last failed call of client earns (the table above)
int
    cli_exit_code (qn_client_t *client);

//  The exit code a failure of that kind earns; error_code is the Error
//  reply's, refusal_code the Refusal's
int
    cli_exit_code_of (qn_client_failure_t failure, int error_code, uint32_t refusal_code);

//  After a helper failed: the code of client's failed call, or local_code
//  when the calls went well (a missing file is the user's, not the
//  coordinator's)
int
    cli_failure_code (qn_client_t *client, int local_code);

//  The program's name as the user typed it (never libtool's lt-qanat)
extern const char *cli_program;

//  A run's snapshot (GetRun), through cli_call
Qanat__Envelope *
    cli_get_run (qn_client_t *client, uint64_t run_id);

//  A command used wrongly: its Usage: line and where to read more, on
//  stderr (qn_cli_options.c); returns EXIT_USAGE
int
    cli_usage_error (const char *command);

//  A run id from the command line, or exits with EXIT_USAGE
uint64_t
    cli_parse_run_id (const char *text);

//  "90", "90s", "30m", "2h", "1d": seconds (at most 100 years), or -1
long
    cli_parse_duration (const char *text);

//  --since: a duration back from now ("10m", "1d") or an RFC 3339 time,
//  in microseconds since 1970; exits with EXIT_USAGE, naming option,
//  when it is neither
int64_t
    cli_parse_since (const char *option, const char *text);

//  ---------------------------------------------------------------------
//  Output helpers (qn_cli_output.c)

//  JSON values made with jansson, so that the output is valid UTF-8
//  (invalid bytes become U+FFFD): text (NULL as ""); params typed by
//  their Param.type (a number, true/false, else a string); labels as
//  {"key":"value",...}.  New references.
json_t *
    cli_json_text (const char *text);
json_t *
    cli_json_params (Qanat__Param **params, size_t count);
json_t *
    cli_json_labels (Qanat__Label **labels, size_t count);

//  Prints value (compact JSON and a newline, or YAML with -o yaml) on
//  stdout, and drops the reference.  Every --json output goes through
//  here.
void
    cli_json_print (json_t *value);

//  value as one YAML document on out (qn_cli_yaml.c); explicit_start
//  writes "---" first.  0, or -1 when libyaml failed.
int
    cli_yaml_print (FILE *out, json_t *value, bool explicit_start);

//  Decides colour (--color, NO_COLOR, a terminal), relative times (a
//  terminal) and YAML (-o yaml) once, before the command runs
void
    cli_output_init (options_t *options);
extern bool cli_color;
extern bool cli_output_yaml;

//  status wrapped in its colour when colour is on (red failures, green
//  successes, yellow retries and cancels, cyan running)
const char *
    cli_status_paint (const char *status);

//  "1 task", "2 tasks"
const char *
    cli_plural (uint64_t count, const char *one, const char *many);

//  value with the fewest digits that read back as it: 0.1, 519264360000
const char *
    cli_number_text (double value);

//  A table whose columns are as wide as their widest cell.  headers is
//  space-separated ("RUN WORKFLOW >SIZE": '>' aligns right); each row
//  gives one string per column (NULL or "" is shown "-").
typedef struct _cli_table_t cli_table_t;
cli_table_t *
    cli_table_new (const char *headers);
void
    cli_table_add (cli_table_t *self, ...);
//  A line printed as it is under the last row added (a check, a trace)
void
    cli_table_note (cli_table_t *self, const char *note);
void
    cli_table_print (cli_table_t *self, FILE *out);
void
    cli_table_destroy (cli_table_t **self_p);

//  A time, "-" for none: "3 min ago" on a terminal (within a week), else
//  local "YYYY-MM-DD HH:MM:SS"; a duration, to now if it has not ended.
//  Both return a static buffer, good until the next call.
char *
    cli_time_text (int64_t us);
char *
    cli_duration_text (int64_t from_us, int64_t to_us);

//  ---------------------------------------------------------------------
//  Runs (qn_cli_runs.c), following one (qn_cli_follow.c)

//  An attempt that took an earlier run's outputs (cache: true)
bool
    cli_attempt_cached (const Qanat__AttemptInfo *attempt);

//  A run as JSON (a new reference), or as the table `qanat status` shows
json_t *
    cli_run_json (Qanat__RunInfo *run);
void
    cli_print_run (Qanat__RunInfo *run);

//  What the NOTE column says of a task (malloc'd): why it waits, a
//  retry counting down to its start, or its attempt's reason
char *
    cli_task_note (const Qanat__TaskInfo *task, const Qanat__AttemptInfo *attempt);

//  "retrying in 2.3s (attempt 2 of 3)" after attempts [failed] failed
//  (malloc'd): the real wait, from its end to the next start (or the
//  planned one); retries is the task's, when known (0: unknown)
char *
    cli_retry_text (const Qanat__TaskInfo *task, size_t failed, unsigned retries);

//  Streams a started run to its end; returns the exit code it earns
int
    cli_follow_run (qn_client_t *client, uint64_t run_id);

//  ---------------------------------------------------------------------
//  Logs (qn_cli_logs.c), metrics (qn_cli_metrics.c), artifacts
//  (qn_cli_artifacts.c)

//  Prints one stored log chunk, as text (prefixed with its task when
//  prefix) or as one JSON object per line
void
    cli_print_log_line (Qanat__LogLine *line, bool prefix, bool json, bool *at_line_start);

//  The last value of each of a run's metric series, if it has any
void
    cli_print_metric_summary (qn_client_t *client, uint64_t run_id);

//  Puts a local file or directory into the coordinator's store and
//  returns its reference ("file:<sha256>" or "dir:<sha256>", malloc'd),
//  with its bytes in *bytes_p; NULL after saying why.
char *
    cli_put_path (qn_client_t *client, const char *path, uint64_t *bytes_p);

//  --code-max SIZE in bytes (default 100 MiB); 0 when SIZE is not a size
uint64_t
    cli_code_max (const char *text);

//  As cli_put_path, taking only what keep keeps (qn_tree_scan_filtered).
//  *unreadable_p (if not NULL) is set when the local files could not be
//  read, as opposed to put.
char *
    cli_put_filtered (qn_client_t *client, const char *path, qn_tree_filter_fn *keep,
                      void *arg, uint64_t *bytes_p, bool *unreadable_p);

//  Packs and puts the workflow's code (the folder holding workflow_path,
//  or its `code:`) for `qanat run` and `workflow publish`, up to max_text
//  (--code-max; NULL: 100 MiB): "dir:<sha256>" in *ref_p (malloc'd), or
//  NULL with `code: none`.  0, or an exit code after saying why.
int
    cli_pack_code (qn_client_t *client, const char *workflow_path, qn_workflow_t *wf,
                   const char *max_text, char **ref_p);

//  ---------------------------------------------------------------------
//  The commands, one function each: the command table in qanat.c calls
//  them with the words after the command's name.  Each returns the
//  program's exit code.

//  qn_cli_runs.c
int cli_cmd_run (options_t *options, int argc, char **argv);
int cli_cmd_runs (options_t *options, int argc, char **argv);
int cli_cmd_status (options_t *options, int argc, char **argv);
int cli_cmd_cancel (options_t *options, int argc, char **argv);
int cli_cmd_validate (options_t *options, int argc, char **argv);
//  qn_cli_logs.c, qn_cli_metrics.c
int cli_cmd_logs (options_t *options, int argc, char **argv);
int cli_cmd_metrics (options_t *options, int argc, char **argv);
//  qn_cli_artifacts.c
int cli_cmd_artifacts (options_t *options, int argc, char **argv);
int cli_cmd_get (options_t *options, int argc, char **argv);
int cli_cmd_put (options_t *options, int argc, char **argv);
//  qn_cli_workflows.c: stored workflows, rerun, run NAME and run -
int cli_cmd_workflow (options_t *options, int argc, char **argv);
int cli_cmd_workflows (options_t *options, int argc, char **argv);
//  qn_cli_schedules.c: schedules and triggers
int cli_cmd_schedules (options_t *options, int argc, char **argv);
int cli_cmd_schedule (options_t *options, int argc, char **argv);
int cli_cmd_pools (options_t *options, int argc, char **argv);
int cli_cmd_pool (options_t *options, int argc, char **argv);
//  `user weights` and `user weight NAME W`; -1 for any other words
int cli_user_weights (options_t *options, int argc, char **argv);
int cli_cmd_rerun (options_t *options, int argc, char **argv);
//  run with a word that is no existing path: "-" (stdin) or NAME[@V]
int cli_run_stored (options_t *options, const char *word);
//  start's params from the --param NAME=VALUE pairs, an artifact's @PATH
//  put first (as wf declares them); 0 or an exit code after saying why.
//  Free them with cli_start_params_free.
int cli_start_params (qn_client_t *client, qn_workflow_t *wf, zlistx_t *pairs,
                      Qanat__StartRun *start);
void cli_start_params_free (Qanat__StartRun *start);
//  qn_cli_admin.c
int cli_cmd_agents (options_t *options, int argc, char **argv);
int cli_cmd_agent (options_t *options, int argc, char **argv);
int cli_cmd_token (options_t *options, int argc, char **argv);
int cli_cmd_user (options_t *options, int argc, char **argv);
int cli_cmd_apitoken (options_t *options, int argc, char **argv);
int cli_cmd_whoami (options_t *options, int argc, char **argv);
int cli_cmd_secret (options_t *options, int argc, char **argv);
int cli_cmd_stats (options_t *options, int argc, char **argv);
int cli_cmd_admin (options_t *options, int argc, char **argv);
//  qn_cli_config.c: the config file's contexts
int cli_cmd_context (options_t *options, int argc, char **argv);
//  Fills the coordinator and key the flags and the environment left
//  unset from the selected context; 0, or an exit code after saying why
//  (a malformed file, a context that is not there)
int cli_config_apply (options_t *options);
int cli_cmd_notifications (options_t *options, int argc, char **argv);
//  Prints the run's failed notifications, if any (qanat status)
void cli_notify_failures (qn_client_t *client, uint64_t run_id);
//  qn_cli_manage.c: the sub-commands that list, revoke, delete, remove
//  and relabel (their commands' dispatch is in qn_cli_admin.c)
int cli_user_list (options_t *options);
int cli_user_revoke (options_t *options, const char *name);
int cli_token_list (options_t *options);
int cli_token_revoke (options_t *options, const char *id);
int cli_secret_delete (options_t *options, const char *name);
int cli_agent_remove (options_t *options, const char *name);
int cli_agent_label (options_t *options, const char *name, int argc, char **argv);

#endif
