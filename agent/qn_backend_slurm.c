/*  qn_backend_slurm - runs attempts as Slurm batch jobs.  See qn_backend.h.

    Each attempt gets <dir>/<run_id>-<task_index>-<attempt>/ on the
    filesystem shared with the compute nodes (option slurm.dir, default
    <data-dir>/slurm), holding job.sh (the generated batch script), the
    job's stdout and stderr files, the metrics file ($QANAT_METRICS) and a
    fresh work/ directory.  The directory is named by the attempt key alone
    so that a restarted agent finds it again.

    Nothing here blocks the loop (but shutdown): sbatch, squeue, scontrol
    and scancel run through qn_command.  Two timers per backend, while
    attempts exist: the tail timer (every S_TAIL_MS) reads new output and
    metrics, fires timeouts and finishes attempts whose job ended; the poll
    timer (every poll_ms) asks squeue about every job at once, and
    `scontrol show job -o` about each job squeue reports ended or does not
    know, for its exit code and reason.

    The cursor is "<stdout>:<stderr>:<metrics>", the byte offsets up to
    which output was handed out as whole lines (or pieces of long lines):
    a re-attached attempt resumes there, with nothing lost or repeated.

    Slurm's end states: COMPLETED -> END_EXIT; FAILED -> END_EXIT with the
    exit code (or signal) of ExitCode=code:signal; OUT_OF_MEMORY, DEADLINE
    -> END_EXIT with "slurm job N: STATE (Reason)"; TIMEOUT -> END_TIMEOUT;
    NODE_FAIL, PREEMPTED, BOOT_FAIL -> END_LOST (the machine's doing, not
    the task's); CANCELLED by our stop -> the stop's reason and kind, by
    anyone else -> END_CANCELED.  A job Slurm no longer knows -> END_LOST.
    Whatever the state, a failure never reports exit code 0.
*/
#include "qn_backend.h"
#include "qn_fs.h"
#include "qn_log.h"
#include "qn_command.h"
#include "qn_slurm_text.h"
#include "qn_msg.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#define S_TAIL_MS               150
#define S_POLL_MS_DEFAULT       1000
#define S_COMMAND_TIMEOUT_MS    60000       //  any one sbatch / squeue call
#define S_STOP_WAIT_MS          30000       //  after scancel, finish anyway
#define S_READ_MAX              (1024 * 1024)   //  per file per tick
#define S_NAME_MAX              64

typedef struct _s_slurm_t s_slurm_t;

//  An attempt: the front end's part (stdout, stderr and metrics read
//  from the files the job writes), then the job's
typedef struct {
    qn_backend_attempt_t base;
    s_slurm_t *backend;
    char *dir;
    char *cwd;                  //  `workdir:` (in place), or NULL for <dir>/work
    char *job_name;
    char job_id [QN_SLURM_JOB_ID_DIGITS + 1];  //  "" until sbatch answered
    qn_command_t *sbatch;
    qn_command_t *scancel;
    qn_command_t *show;         //  scontrol show job, for the end state
    size_t env_skipped;         //  environment names sh cannot export
    //  base.deadline_ms is set once the job runs
    int64_t stop_ms;            //  when we asked scancel; 0 = not yet
    bool cancel_wanted;         //  scancel to (re)send

    bool ended;                 //  Slurm reported an end state
    bool gone;                  //  Slurm does not know the job
    char state [QN_SLURM_STATE_MAX + 1];
    char reason [QN_SLURM_REASON_MAX + 1];
    int exit_code;              //  from ExitCode=code:signal
    int exit_signal;
} s_attempt_t;

struct _s_slurm_t {
    qn_backend_front_t front;   //  the attempts, in start order
    char *dir;
    char *stage_dir;            //  <dir>/.stage: inputs staged on slurm.dir
    char *agent_name;
    char *bin_dir;              //  NULL = PATH
    char *conf;                 //  NULL = Slurm's default
    char *partition;            //  NULL = Slurm's default
    int poll_ms;
    qn_command_t *squeue;
    int tail_timer;
    int poll_timer;
};

static const char *const s_known_options [] = {
    "conf", "bin_dir", "partition", "poll_ms", "dir", NULL
};

static int s_tail_tick (zloop_t *loop, int timer_id, void *arg);
static int s_poll_tick (zloop_t *loop, int timer_id, void *arg);


//  ---------------------------------------------------------------------
//  Small helpers (pure, unit-tested)

//  Writes text single-quoted for sh: every byte literal, ' as '\''
static void
s_shell_quote (FILE *out, const char *text)
{
    fputc ('\'', out);
    for (const char *cur = text? text: ""; *cur; cur++)
        if (*cur == '\'')
            fputs ("'\\''", out);
        else
            fputc (*cur, out);
    fputc ('\'', out);
}

//  A name sh can export: [A-Za-z_][A-Za-z0-9_]*
static bool
s_env_name_ok (const char *name)
{
    if (!name || !*name || !(isalpha ((unsigned char) *name) || *name == '_'))
        return false;
    for (const char *cur = name; *cur; cur++)
        if (!(isalnum ((unsigned char) *cur) || *cur == '_'))
            return false;
    return true;
}

//  The batch script: the task's environment exported, then ours
//  (QANAT_METRICS, QANAT_WORKDIR) over it, cd to the work directory,
//  exec argv.  Returns a fresh string, or NULL when out of memory.
//  Environment names sh cannot export are counted in *skipped_p.
static char *
s_script (const Qanat__Assign *assign, const char *comment, const char *metrics,
          const char *workdir, size_t *skipped_p)
{
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream (&text, &size);
    if (!out)
        return NULL;
    size_t skipped = 0;
    fputs ("#!/bin/sh\n# ", out);
    fputs (comment, out);
    fputs ("\n", out);
    for (size_t i = 0; i < assign->n_env; i++) {
        const Qanat__Label *label = assign->env [i];
        if (!label || !s_env_name_ok (label->key)) {
            skipped++;
            continue;
        }
        fprintf (out, "export %s=", label->key);
        s_shell_quote (out, label->value);
        fputc ('\n', out);
    }
    for (size_t i = 0; i < assign->n_env; i++)
        if (assign->env [i] && assign->env [i]->key
        &&  streq (assign->env [i]->key, "QANAT_VALUES")) {
            //  On slurm.dir, which the nodes share: beside the work dir
            char *values = zsys_sprintf ("%s/../" QN_BACKEND_VALUES_NAME, workdir);
            fputs ("export QANAT_VALUES=", out);
            s_shell_quote (out, values? values: "/dev/null");
            fputc ('\n', out);
            zstr_free (&values);
        }
    //  `workdir:` runs the task in place, on the filesystem the nodes share
    const char *cwd = assign->workdir && *assign->workdir? assign->workdir: workdir;
    fputs ("export QANAT_METRICS=", out);
    s_shell_quote (out, metrics);
    fputs ("\nexport QANAT_WORKDIR=", out);
    s_shell_quote (out, cwd);
    fputs ("\ncd ", out);
    s_shell_quote (out, cwd);
    fputs (" || exit 126\nexec", out);
    for (size_t i = 0; i < assign->n_argv; i++) {
        fputc (' ', out);
        s_shell_quote (out, assign->argv [i]);
    }
    fputc ('\n', out);
    if (fclose (out) != 0) {
        free (text);
        return NULL;
    }
    if (skipped_p)
        *skipped_p = skipped;
    return text;
}

//  True if value is non-empty printable text without control bytes
static bool
s_value_ok (const char *value)
{
    if (!value || !*value || strlen (value) > 1000)
        return false;
    for (const char *cur = value; *cur; cur++)
        if ((unsigned char) *cur < 0x20 || *cur == 0x7f)
            return false;
    return true;
}

//  sbatch options that would take the job away from us: its output
//  files, its script, its count, or sbatch's own waiting
static const char *const s_forbidden_long [] = {
    "--output", "--error", "--input", "--open-mode", "--chdir", "--wrap", "--array",
    "--wait", "--test-only", "--job-name", "--parsable", "--help", "--usage", "--version",
    NULL
};
//  short forms of the same, and those that take no value (which may be
//  followed by more letters)
#define S_FORBIDDEN_SHORT   "oeiDaWJhV"
#define S_FLAG_SHORT        "HIkOQsv"

//  Checks one sbatch_arg: an option (--name=value or -xVALUE) that does
//  not change what we rely on.  -1 with the reason in error.
static int
s_check_sbatch_arg (const char *arg, char *error, size_t error_size)
{
    if (!s_value_ok (arg) || arg [0] != '-' || arg [1] == '\0') {
        snprintf (error, error_size, "slurm sbatch_arg '%.100s' is not an option "
                  "(write each as --name=value)", arg? arg: "");
        return -1;
    }
    if (arg [1] == '-') {
        size_t name_len = strcspn (arg, "=");
        if (name_len <= 2) {
            snprintf (error, error_size, "slurm sbatch_arg '%.100s' is not an option", arg);
            return -1;
        }
        //  sbatch takes any unambiguous prefix of a long option
        for (size_t i = 0; s_forbidden_long [i]; i++)
            if (strncmp (s_forbidden_long [i], arg, name_len) == 0) {
                snprintf (error, error_size, "slurm sbatch_arg '%.100s' is not allowed "
                          "(qanat sets %s itself)", arg, s_forbidden_long [i]);
                return -1;
            }
        return 0;
    }
    for (const char *cur = arg + 1; *cur; cur++) {
        if (strchr (S_FORBIDDEN_SHORT, *cur)) {
            snprintf (error, error_size, "slurm sbatch_arg '%.100s' is not allowed "
                      "(qanat sets -%c itself)", arg, *cur);
            return -1;
        }
        if (!strchr (S_FLAG_SHORT, *cur))
            break;              //  the rest is this option's value
    }
    return 0;
}

//  Checks the task's backend options.  -1 with the reason in error.
static int
s_check_task_options (const Qanat__Assign *assign, char *error, size_t error_size)
{
    for (size_t i = 0; i < assign->n_backend_options; i++) {
        const Qanat__Label *label = assign->backend_options [i];
        const char *key = label && label->key? label->key: "";
        const char *value = label && label->value? label->value: "";
        if (streq (key, "sbatch_arg")) {
            if (s_check_sbatch_arg (value, error, error_size) == -1)
                return -1;
        }
        else
        if (streq (key, "partition") || streq (key, "account") || streq (key, "qos")) {
            if (!s_value_ok (value) || strchr (value, ' ')) {
                snprintf (error, error_size, "slurm option %s has a bad value '%.100s'",
                          key, value);
                return -1;
            }
        }
        else {
            snprintf (error, error_size, "unknown slurm option '%.100s' (known: partition "
                      "account qos sbatch_args)", key);
            return -1;
        }
    }
    return 0;
}

typedef struct {
    char **items;
    size_t count;
    size_t capacity;
    bool failed;
} s_argv_t;

static void
s_argv_add (s_argv_t *self, const char *format, ...)
{
    if (self->failed)
        return;
    if (self->count + 2 > self->capacity) {
        size_t capacity = self->capacity? self->capacity * 2: 32;
        char **items = (char **) realloc (self->items, capacity * sizeof (char *));
        if (!items) {
            self->failed = true;
            return;
        }
        self->items = items;
        self->capacity = capacity;
    }
    va_list args;
    va_start (args, format);
    char *item = NULL;
    if (vasprintf (&item, format, args) < 0)
        item = NULL;
    va_end (args);
    if (!item) {
        self->failed = true;
        return;
    }
    self->items [self->count++] = item;
    self->items [self->count] = NULL;
}

static void
s_argv_free (s_argv_t *self)
{
    for (size_t i = 0; i < self->count; i++)
        free (self->items [i]);
    free (self->items);
    memset (self, 0, sizeof (*self));
}

static void
s_command_path (s_argv_t *argv, const char *bin_dir, const char *program)
{
    if (bin_dir && *bin_dir)
        s_argv_add (argv, "%s/%s", bin_dir, program);
    else
        s_argv_add (argv, "%s", program);
}

//  The sbatch command line for an attempt whose files are in dir.
//  Options already checked.  argv->failed when out of memory.
static void
s_sbatch_argv (s_argv_t *argv, const char *bin_dir, const char *default_partition,
               const Qanat__Assign *assign, const char *job_name, const char *comment,
               const char *dir)
{
    s_command_path (argv, bin_dir, "sbatch");
    s_argv_add (argv, "--parsable");
    s_argv_add (argv, "--job-name=%s", job_name);
    s_argv_add (argv, "--comment=%s", comment);
    s_argv_add (argv, "--output=%s/stdout", dir);
    s_argv_add (argv, "--error=%s/stderr", dir);
    s_argv_add (argv, "--open-mode=append");
    s_argv_add (argv, "--chdir=%s", dir);
    //  qanat retries by itself; a requeued job would run twice
    s_argv_add (argv, "--no-requeue");
    const char *partition = qn_backend_task_option (assign, "partition");
    if (!partition)
        partition = default_partition;
    if (partition && *partition)
        s_argv_add (argv, "--partition=%s", partition);
    const char *account = qn_backend_task_option (assign, "account");
    if (account)
        s_argv_add (argv, "--account=%s", account);
    const char *qos = qn_backend_task_option (assign, "qos");
    if (qos)
        s_argv_add (argv, "--qos=%s", qos);
    if (assign->cpus)
        s_argv_add (argv, "--cpus-per-task=%u", assign->cpus);
    if (assign->memory_mb)
        s_argv_add (argv, "--mem=%" PRIu64 "M", assign->memory_mb);
    if (assign->gpus)
        s_argv_add (argv, "--gres=gpu:%u", assign->gpus);
    if (assign->timeout_s)
        s_argv_add (argv, "--time=%u", (unsigned) ((assign->timeout_s + 59u) / 60u));
    for (size_t i = 0; i < assign->n_backend_options; i++) {
        const Qanat__Label *label = assign->backend_options [i];
        if (label && label->key && streq (label->key, "sbatch_arg") && label->value)
            s_argv_add (argv, "%s", label->value);
    }
    s_argv_add (argv, "%s/job.sh", dir);
}

//  ---------------------------------------------------------------------
//  Attempt records

static void
s_attempt_destroy (s_attempt_t **self_p)
{
    s_attempt_t *self = *self_p;
    if (!self)
        return;
    qn_command_destroy (&self->sbatch);
    qn_command_destroy (&self->scancel);
    qn_command_destroy (&self->show);
    qn_backend_attempt_fini (&self->base);
    free (self->job_name);
    free (self->dir);
    free (self->cwd);
    free (self);
    *self_p = NULL;
}

static s_attempt_t *
s_attempt_new (s_slurm_t *backend, const qn_attempt_key_t *key)
{
    s_attempt_t *self = (s_attempt_t *) calloc (1, sizeof (s_attempt_t));
    if (!self)
        return NULL;
    int rc = qn_backend_attempt_init (&self->base, &backend->front, key,
                                      QN_BACKEND_ATTEMPT_STREAMS);
    self->backend = backend;
    if (asprintf (&self->dir, "%s/%" PRIu64 "-%u-%u", backend->dir, key->run_id,
                  key->task_index, key->attempt) < 0)
        self->dir = NULL;
    if (rc == -1 || !self->dir)
        s_attempt_destroy (&self);
    return self;
}

static s_attempt_t *
s_lookup (s_slurm_t *self, const qn_attempt_key_t *key)
{
    return (s_attempt_t *) qn_backend_front_find (&self->front, key);
}

static s_attempt_t *
s_lookup_job (s_slurm_t *self, const char *job_id)
{
    s_attempt_t *attempt = (s_attempt_t *) zlistx_first (self->front.attempts);
    while (attempt) {
        if (streq (attempt->job_id, job_id))
            return attempt;
        attempt = (s_attempt_t *) zlistx_next (self->front.attempts);
    }
    return NULL;
}

//  The environment of every Slurm command we run
static void
s_command_env (s_slurm_t *self, s_argv_t *env)
{
    if (self->conf)
        s_argv_add (env, "SLURM_CONF=%s", self->conf);
}

static qn_command_t *
s_run (s_slurm_t *self, s_argv_t *argv, qn_command_fn *fn, void *arg)
{
    if (argv->failed)
        return NULL;
    s_argv_t env = { 0 };
    s_command_env (self, &env);
    qn_command_t *command = NULL;
    if (!env.failed)
        command = qn_command_new (self->front.loop, argv->items, env.items, NULL,
                                  S_COMMAND_TIMEOUT_MS, fn, arg);
    s_argv_free (&env);
    return command;
}

//  First line of hostile command output, printable, for a reason
static void
s_first_line (const char *text, size_t size, char *buffer, size_t buffer_size)
{
    size_t at = 0;
    size_t i = 0;
    while (i < size && isspace ((unsigned char) text [i]))
        i++;
    for (; i < size && text [i] != '\n' && at + 1 < buffer_size; i++)
        buffer [at++] = (unsigned char) text [i] >= 0x20 && text [i] != 0x7f? text [i]: '?';
    buffer [at] = '\0';
}


//  ---------------------------------------------------------------------
//  Output and metrics

//  Reports where we stand, when it moved: the byte offsets up to which
//  the three files went out
static void
s_report_cursor (s_attempt_t *self)
{
    char cursor [QN_BACKEND_CURSOR_MAX + 1];
    snprintf (cursor, sizeof (cursor), "%" PRId64 ":%" PRId64 ":%" PRId64,
              qn_backend_stream_position (&self->base.out),
              qn_backend_stream_position (&self->base.err),
              qn_backend_stream_position (&self->base.metrics));
    qn_backend_attempt_cursor (&self->base, cursor);
}

//  Reads what is new in all three files, up to S_READ_MAX bytes of each.
//  Returns true when all were read to their end.
static bool
s_read_all (s_attempt_t *self)
{
    bool done = qn_backend_stream_read (&self->base, &self->base.out, S_READ_MAX);
    done &= qn_backend_stream_read (&self->base, &self->base.err, S_READ_MAX);
    done &= qn_backend_stream_read (&self->base, &self->base.metrics, S_READ_MAX);
    return done;
}

static void
s_flush_all (s_attempt_t *self)
{
    qn_backend_stream_flush (&self->base, &self->base.out);
    qn_backend_stream_flush (&self->base, &self->base.err);
    qn_backend_stream_flush (&self->base, &self->base.metrics);
}


//  ---------------------------------------------------------------------
//  Finishing

static void
s_attempt_finish (s_attempt_t *self)
{
    qn_slurm_job_t info;
    memset (&info, 0, sizeof (info));
    snprintf (info.state, sizeof (info.state), "%s", self->state);
    snprintf (info.reason, sizeof (info.reason), "%s", self->reason);
    info.exit_code = self->exit_code;
    info.exit_signal = self->exit_signal;
    qn_slurm_outcome_t outcome;
    qn_slurm_outcome (self->job_id, self->gone || !self->ended, &info, self->base.stop_reason,
               self->base.stop_kind, &outcome);
    qn_log (QN_LOG_INFO, "slurm", "attempt %" PRIu64 "/%u/%u: slurm job %s ended %s%s%s",
                  self->base.key.run_id, self->base.key.task_index, self->base.key.attempt,
                  self->job_id [0]? self->job_id: "(none)",
                  self->ended? self->state: "(unknown)", *outcome.reason? ": ": "",
                  outcome.reason);
    qn_backend_attempt_finished (&self->base, outcome.exit_code, outcome.signal, outcome.reason,
                                 outcome.kind);
}

static void s_timers_stop_if_idle (s_slurm_t *self);

//  Forgets an attempt (from a timer or a command callback: nothing of it
//  is on the loop but its commands, which destroy kills).
static void
s_attempt_remove (s_attempt_t *attempt)
{
    qn_backend_front_remove (&attempt->backend->front, &attempt->base);
}


//  ---------------------------------------------------------------------
//  Canceling

static void
s_on_scancel (qn_command_t *command, const qn_command_result_t *result, void *arg)
{
    (void) command;
    s_attempt_t *self = (s_attempt_t *) arg;
    if (result->exit_code != 0) {
        char line [200];
        s_first_line (result->err, result->err_size, line, sizeof (line));
        qn_log (QN_LOG_WARNING, "slurm", "scancel %s failed (%d): %s", self->job_id,
                      result->exit_code, line);
        //  Already ended is fine; anything else we try again at the next poll
        if (!strstr (result->err, "Invalid job id") && !strstr (result->err, "already completing"))
            self->cancel_wanted = true;
    }
    qn_command_destroy (&self->scancel);
}

static void
s_send_cancel (s_attempt_t *self)
{
    if (!self->job_id [0] || self->scancel || self->ended || self->gone)
        return;
    self->cancel_wanted = false;
    s_argv_t argv = { 0 };
    s_command_path (&argv, self->backend->bin_dir, "scancel");
    s_argv_add (&argv, "%s", self->job_id);
    self->scancel = s_run (self->backend, &argv, s_on_scancel, self);
    s_argv_free (&argv);
    if (!self->scancel) {
        qn_log (QN_LOG_WARNING, "slurm", "cannot run scancel for slurm job %s", self->job_id);
        self->cancel_wanted = true;
    }
}

//  Asks Slurm to end the job; the first reason wins
static void
s_attempt_stop (qn_backend_attempt_t *base, const char *reason, Qanat__EndKind kind)
{
    s_attempt_t *self = (s_attempt_t *) base;
    qn_backend_attempt_stopping (&self->base, reason, kind);
    if (self->stop_ms)
        return;
    self->stop_ms = zclock_mono ();
    s_send_cancel (self);
}


//  ---------------------------------------------------------------------
//  Status polling

static void
s_on_show (qn_command_t *command, const qn_command_result_t *result, void *arg)
{
    (void) command;
    s_attempt_t *self = (s_attempt_t *) arg;
    qn_slurm_job_t info;
    if (result->exit_code == 0
    &&  qn_slurm_parse_show_job (result->out, result->out_size, self->job_id, &info) == 0) {
        if (qn_slurm_state_ended (info.state)) {
            self->ended = true;
            snprintf (self->state, sizeof (self->state), "%s", info.state);
            snprintf (self->reason, sizeof (self->reason), "%s", info.reason);
            self->exit_code = info.exit_code;
            self->exit_signal = info.exit_signal;
        }
    }
    else
    if (result->exit_code > 0 && strstr (result->err, "Invalid job id"))
        self->gone = true;
    qn_command_destroy (&self->show);
}

static void
s_show_job (s_attempt_t *self)
{
    if (self->show || self->ended || self->gone || !self->job_id [0])
        return;
    s_argv_t argv = { 0 };
    s_command_path (&argv, self->backend->bin_dir, "scontrol");
    s_argv_add (&argv, "show");
    s_argv_add (&argv, "job");
    s_argv_add (&argv, "-o");
    s_argv_add (&argv, "%s", self->job_id);
    self->show = s_run (self->backend, &argv, s_on_show, self);
    s_argv_free (&argv);
}

typedef struct {
    s_slurm_t *backend;
    int64_t now;
} s_squeue_ctx_t;

static void
s_on_squeue_line (const char *job_id, const char *state, void *arg)
{
    s_squeue_ctx_t *ctx = (s_squeue_ctx_t *) arg;
    s_attempt_t *attempt = s_lookup_job (ctx->backend, job_id);
    if (!attempt || attempt->ended || attempt->gone)
        return;
    snprintf (attempt->state, sizeof (attempt->state), "%s", state);
    //  The timeout counts from when the job runs, not from its submission
    if (!attempt->base.deadline_ms && attempt->base.timeout_s && !streq (state, "PENDING"))
        attempt->base.deadline_ms = ctx->now + (int64_t) attempt->base.timeout_s * 1000;
    if (qn_slurm_state_ended (state))
        s_show_job (attempt);
}

static void
s_on_squeue (qn_command_t *command, const qn_command_result_t *result, void *arg)
{
    (void) command;
    s_slurm_t *self = (s_slurm_t *) arg;
    bool answered = result->exit_code == 0 || strstr (result->err, "Invalid job id");
    if (!answered) {
        char line [200];
        s_first_line (result->err, result->err_size, line, sizeof (line));
        qn_log (QN_LOG_WARNING, "slurm", "squeue failed (%d): %s", result->exit_code, line);
    }
    else {
        //  Forget the states of the jobs still running, then take what
        //  squeue knows
        s_attempt_t *attempt = (s_attempt_t *) zlistx_first (self->front.attempts);
        while (attempt) {
            if (!attempt->ended && !attempt->gone)
                attempt->state [0] = '\0';
            attempt = (s_attempt_t *) zlistx_next (self->front.attempts);
        }
        s_squeue_ctx_t ctx = { self, zclock_mono () };
        if (result->exit_code == 0)
            qn_slurm_parse_squeue (result->out, result->out_size, s_on_squeue_line, &ctx);
        //  A job squeue does not list may have left its memory: ask
        //  scontrol, which says so plainly
        attempt = (s_attempt_t *) zlistx_first (self->front.attempts);
        while (attempt) {
            if (attempt->job_id [0] && !attempt->state [0] && !attempt->ended)
                s_show_job (attempt);
            attempt = (s_attempt_t *) zlistx_next (self->front.attempts);
        }
    }
    qn_command_destroy (&self->squeue);
}

static int
s_poll_tick (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    s_slurm_t *self = (s_slurm_t *) arg;
    if (self->squeue)
        return 0;
    s_argv_t argv = { 0 };
    s_command_path (&argv, self->bin_dir, "squeue");
    s_argv_add (&argv, "-h");
    s_argv_add (&argv, "-t");
    s_argv_add (&argv, "all");
    s_argv_add (&argv, "-o");
    s_argv_add (&argv, "%%i|%%T");
    char *ids = NULL;
    size_t ids_size = 0;
    FILE *out = open_memstream (&ids, &ids_size);
    size_t count = 0;
    s_attempt_t *attempt = (s_attempt_t *) zlistx_first (self->front.attempts);
    while (attempt && out) {
        if (attempt->job_id [0] && !attempt->ended && !attempt->gone) {
            fprintf (out, "%s%s", count? ",": "", attempt->job_id);
            count++;
        }
        if (attempt->cancel_wanted)
            s_send_cancel (attempt);
        attempt = (s_attempt_t *) zlistx_next (self->front.attempts);
    }
    if (out)
        fclose (out);
    if (count && ids) {
        s_argv_add (&argv, "-j");
        s_argv_add (&argv, "%s", ids);
        self->squeue = s_run (self, &argv, s_on_squeue, self);
    }
    free (ids);
    s_argv_free (&argv);
    return 0;
}


//  ---------------------------------------------------------------------
//  The tail timer

//  One step of an attempt.  Returns true when it finished.
static bool
s_attempt_step (s_attempt_t *self, int64_t now)
{
    char reason [64];
    if (!self->ended && !self->gone
    &&  qn_backend_attempt_overdue (&self->base, now, reason, sizeof (reason))) {
        qn_log (QN_LOG_INFO, "slurm", "attempt %" PRIu64 "/%u/%u (slurm job %s) %s",
                      self->base.key.run_id, self->base.key.task_index, self->base.key.attempt,
                      self->job_id, reason);
        s_attempt_stop (&self->base, reason, QANAT__END_KIND__END_TIMEOUT);
    }
    bool given_up = self->stop_ms && now - self->stop_ms > S_STOP_WAIT_MS
                 && !self->sbatch && !self->ended;
    if (self->backend->front.paused)
        return false;
    bool at_end = s_read_all (self);
    if ((!self->ended && !self->gone && !given_up) || !at_end) {
        s_report_cursor (self);
        return false;
    }
    s_flush_all (self);
    s_report_cursor (self);
    if (given_up && !self->ended)
        self->gone = true;      //  reported with our stop reason
    s_attempt_finish (self);
    return true;
}

static void
s_timers_stop_if_idle (s_slurm_t *self)
{
    if (zlistx_size (self->front.attempts) > 0)
        return;
    if (self->tail_timer != -1)
        zloop_timer_end (self->front.loop, self->tail_timer);
    if (self->poll_timer != -1)
        zloop_timer_end (self->front.loop, self->poll_timer);
    self->tail_timer = self->poll_timer = -1;
}

static void
s_timers_start (s_slurm_t *self)
{
    if (self->tail_timer == -1)
        self->tail_timer = zloop_timer (self->front.loop, S_TAIL_MS, 1, s_tail_tick, self);
    if (self->poll_timer == -1)
        self->poll_timer = zloop_timer (self->front.loop, (size_t) self->poll_ms, 0, s_poll_tick, self);
    if (self->tail_timer == -1 || self->poll_timer == -1)
        qn_log (QN_LOG_ERROR, "slurm", "cannot start the slurm backend's timers");
}

//  Callbacks may pause us: walk a copy of the list
static int
s_tail_tick (zloop_t *loop, int timer_id, void *arg)
{
    (void) timer_id;
    s_slurm_t *self = (s_slurm_t *) arg;
    //  One shot, armed again while there is work: a timer must not end
    //  itself from its own handler (zloop may free it at once)
    self->tail_timer = -1;
    size_t count;
    qn_backend_attempt_t **attempts = qn_backend_front_list (&self->front, &count);
    int64_t now = zclock_mono ();
    for (size_t i = 0; i < count; i++)
        if (s_attempt_step ((s_attempt_t *) attempts [i], now))
            s_attempt_remove ((s_attempt_t *) attempts [i]);
    free (attempts);
    if (zlistx_size (self->front.attempts) && self->tail_timer == -1)
        self->tail_timer = zloop_timer (loop, S_TAIL_MS, 1, s_tail_tick, self);
    s_timers_stop_if_idle (self);
    return 0;
}


//  ---------------------------------------------------------------------
//  Starting

static int
s_write_file (const char *path, const char *text, mode_t mode)
{
    int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd == -1)
        return -1;
    size_t size = text? strlen (text): 0;
    while (size > 0) {
        ssize_t put = write (fd, text, size);
        if (put < 0 && errno == EINTR)
            continue;
        if (put <= 0) {
            close (fd);
            return -1;
        }
        text += put;
        size -= (size_t) put;
    }
    return close (fd);
}

//  Opens the attempt's three files for reading, at the given offsets
static int
s_open_files (s_attempt_t *self, const int64_t offsets [3])
{
    const char *names [3] = { "stdout", "stderr", "metrics" };
    qn_backend_stream_t *streams [3] = { &self->base.out, &self->base.err, &self->base.metrics };
    for (int i = 0; i < 3; i++) {
        char path [4096];
        snprintf (path, sizeof (path), "%s/%s", self->dir, names [i]);
        if (qn_backend_stream_open (streams [i], path, offsets [i]) == -1)
            return -1;
    }
    return 0;
}

static void
s_on_sbatch (qn_command_t *command, const qn_command_result_t *result, void *arg)
{
    (void) command;
    s_attempt_t *self = (s_attempt_t *) arg;
    s_slurm_t *backend = self->backend;
    char job_id [QN_SLURM_JOB_ID_DIGITS + 1];
    if (result->exit_code == 0
    &&  qn_slurm_parse_job_id (result->out, result->out_size, job_id) == 0) {
        memcpy (self->job_id, job_id, sizeof (job_id));
        qn_command_destroy (&self->sbatch);
        char workdir [4200];
        snprintf (workdir, sizeof (workdir), "%s/work", self->dir);
        if (self->cwd)
            snprintf (workdir, sizeof (workdir), "%s", self->cwd);
        backend->front.events->started (backend->front.arg, &self->base.key, 0, backend->front.host, workdir,
                                  self->job_id);
        qn_log (QN_LOG_INFO, "slurm", "attempt %" PRIu64 "/%u/%u submitted as slurm job %s (%s)",
                      self->base.key.run_id, self->base.key.task_index, self->base.key.attempt,
                      self->job_id, self->job_name);
        if (self->env_skipped)
            qn_backend_attempt_system_log (&self->base, "%zu environment variable(s) with names sh cannot export "
                          "were left out", self->env_skipped);
        if (self->base.stop_reason)
            s_send_cancel (self);
        return;
    }
    char line [400];
    if (result->exit_code == 0) {
        s_first_line (result->out, result->out_size, line, sizeof (line));
        char reason [600];
        snprintf (reason, sizeof (reason), "sbatch printed no job id: '%s'", line);
        backend->front.events->finished (backend->front.arg, &self->base.key, -1, 0, "", reason,
                                   QANAT__END_KIND__END_START_FAILED);
    }
    else {
        //  sbatch's message is its last stderr line ("sbatch: error: ...")
        const char *err = result->err;
        size_t size = result->err_size;
        while (size > 0 && isspace ((unsigned char) err [size - 1]))
            size--;
        const char *last = err;
        for (size_t i = 0; i < size; i++)
            if (err [i] == '\n')
                last = err + i + 1;
        s_first_line (last, (size_t) (err + size - last), line, sizeof (line));
        char reason [600];
        if (result->timed_out)
            snprintf (reason, sizeof (reason), "sbatch did not answer within %d s",
                      S_COMMAND_TIMEOUT_MS / 1000);
        else
            snprintf (reason, sizeof (reason), "sbatch failed (exit code %d): %s",
                      result->exit_code, *line? line: "no message");
        backend->front.events->finished (backend->front.arg, &self->base.key, -1, 0, "", reason,
                                   QANAT__END_KIND__END_START_FAILED);
    }
    //  We are in the command's callback: removing the attempt destroys it,
    //  which its contract allows
    s_attempt_remove (self);
    s_timers_stop_if_idle (backend);
}

static int
s_slurm_start (void *state, const Qanat__Assign *assign, char *error, size_t error_size)
{
    s_slurm_t *self = (s_slurm_t *) state;
    assert (self);
    qn_attempt_key_t key;
    if (qn_backend_front_check (&self->front, assign, QN_BACKEND_CHECK_COMMAND, &key, error,
                                error_size) == -1)
        return -1;
    //  sh's exec would take it for an option (bash) or not (dash)
    if (assign->argv [0][0] == '-') {
        snprintf (error, error_size, "a command starting with '-' cannot run as a slurm job");
        return -1;
    }
    if (s_check_task_options (assign, error, error_size) == -1)
        return -1;

    s_attempt_t *attempt = s_attempt_new (self, &key);
    char *script = NULL;
    s_argv_t argv = { 0 };
    int rc = -1;
    if (!attempt) {
        snprintf (error, error_size, "out of memory");
        goto done;
    }
    char task [S_NAME_MAX + 1], agent [S_NAME_MAX + 1];
    qn_backend_safe_name (assign->task_name, S_NAME_MAX, task, sizeof (task));
    qn_backend_safe_name (self->agent_name, S_NAME_MAX, agent, sizeof (agent));
    char comment [300];
    snprintf (comment, sizeof (comment), "qanat run=%" PRIu64 " task=%s attempt=%u agent=%s",
              key.run_id, task, key.attempt, agent);
    if (asprintf (&attempt->job_name, "qanat-%" PRIu64 "-%s-%u", key.run_id, task,
                  key.attempt) < 0) {
        attempt->job_name = NULL;
        snprintf (error, error_size, "out of memory");
        goto done;
    }
    char workdir [4200], metrics [4200], path [4200];
    snprintf (workdir, sizeof (workdir), "%s/work", attempt->dir);
    snprintf (metrics, sizeof (metrics), "%s/metrics", attempt->dir);
    size_t skipped = 0;
    script = s_script (assign, comment, metrics, workdir, &skipped);
    if (!script) {
        snprintf (error, error_size, "out of memory");
        goto done;
    }
    //  A fresh directory, even when an earlier agent left one behind
    if (qn_fs_remove_tree (attempt->dir) == -1 || qn_fs_mkdirs (attempt->dir, 0700) == -1) {
        snprintf (error, error_size, "cannot create %s: %s", attempt->dir, strerror (errno));
        goto done;
    }
    //  Staged inputs, if any, become the work directory (slurm.dir must
    //  then be on the agent's filesystem, shared with the nodes)
    if (qn_backend_make_workdir (assign, workdir, error, error_size) == -1)
        goto done;
    const char *names [3] = { "stdout", "stderr", "metrics" };
    for (int i = 0; i < 3; i++) {
        snprintf (path, sizeof (path), "%s/%s", attempt->dir, names [i]);
        if (s_write_file (path, "", 0600) == -1) {
            snprintf (error, error_size, "cannot create %s: %s", path, strerror (errno));
            goto done;
        }
    }
    snprintf (path, sizeof (path), "%s/job.sh", attempt->dir);
    if (s_write_file (path, script, 0700) == -1) {
        snprintf (error, error_size, "cannot write %s: %s", path, strerror (errno));
        goto done;
    }
    int64_t zero [3] = { 0, 0, 0 };
    if (s_open_files (attempt, zero) == -1) {
        snprintf (error, error_size, "cannot open the output of %s: %s", attempt->dir,
                  strerror (errno));
        goto done;
    }
    s_sbatch_argv (&argv, self->bin_dir, self->partition, assign, attempt->job_name,
                   comment, attempt->dir);
    attempt->sbatch = s_run (self, &argv, s_on_sbatch, attempt);
    if (!attempt->sbatch) {
        snprintf (error, error_size, "cannot run sbatch");
        goto done;
    }
    attempt->base.timeout_s = assign->timeout_s;
    if (assign->workdir && *assign->workdir)
        attempt->cwd = strdup (assign->workdir);
    qn_backend_front_add (&self->front, &attempt->base);
    attempt->env_skipped = skipped;
    s_timers_start (self);
    attempt = NULL;
    rc = 0;
done:
    s_attempt_destroy (&attempt);
    s_argv_free (&argv);
    free (script);
    return rc;
}

static int
s_slurm_reattach (void *state, const Qanat__Assign *assign, const char *engine_job_id,
                  const char *cursor, char *error, size_t error_size)
{
    s_slurm_t *self = (s_slurm_t *) state;
    assert (self);
    assert (assign && assign->attempt);
    qn_attempt_key_t key = {
        assign->attempt->run_id, assign->attempt->task_index, assign->attempt->attempt
    };
    char job_id [QN_SLURM_JOB_ID_DIGITS + 1];
    int64_t offsets [3];
    if (!engine_job_id
    ||  qn_slurm_parse_job_id (engine_job_id, strlen (engine_job_id), job_id) == -1) {
        snprintf (error, error_size, "bad slurm job id '%.40s'", engine_job_id? engine_job_id: "");
        return -1;
    }
    if (qn_slurm_parse_cursor (cursor, offsets) == -1) {
        snprintf (error, error_size, "bad cursor '%.40s'", cursor);
        return -1;
    }
    if (s_lookup (self, &key) || s_lookup_job (self, job_id)) {
        snprintf (error, error_size, "attempt is already followed");
        return -1;
    }
    s_attempt_t *attempt = s_attempt_new (self, &key);
    if (!attempt) {
        snprintf (error, error_size, "out of memory");
        return -1;
    }
    if (s_open_files (attempt, offsets) == -1) {
        snprintf (error, error_size, "cannot open the output of slurm job %s in %s: %s",
                  job_id, attempt->dir, strerror (errno));
        s_attempt_destroy (&attempt);
        return -1;
    }
    memcpy (attempt->job_id, job_id, sizeof (job_id));
    char name [S_NAME_MAX + 1];
    qn_backend_safe_name (assign->task_name, S_NAME_MAX, name, sizeof (name));
    if (asprintf (&attempt->job_name, "qanat-%" PRIu64 "-%s-%u", key.run_id, name,
                  key.attempt) < 0)
        attempt->job_name = NULL;
    attempt->base.timeout_s = assign->timeout_s;
    snprintf (attempt->base.cursor, sizeof (attempt->base.cursor), "%s", cursor? cursor: "");
    qn_backend_front_add (&self->front, &attempt->base);
    s_timers_start (self);
    qn_log (QN_LOG_INFO, "slurm", "attempt %" PRIu64 "/%u/%u: following slurm job %s again "
                  "from %s", key.run_id, key.task_index, key.attempt, job_id,
                  cursor && *cursor? cursor: "the start");
    return 0;
}


//  ---------------------------------------------------------------------
//  The rest of the ops table

static void s_slurm_destroy (void **state_p);

static void
s_engine_destroy (qn_backend_attempt_t *base)
{
    s_attempt_t *attempt = (s_attempt_t *) base;
    s_attempt_destroy (&attempt);
}

static void s_engine_end_all (qn_backend_front_t *front, int grace_ms, const char *reason);
static void s_engine_lost (qn_backend_attempt_t *base, const char *reason);
static void s_engine_idle (qn_backend_front_t *front);

//  The backend's paused flag is enough: the tail timer reads nothing then
static const qn_backend_engine_t s_engine = {
    .name = "slurm",
    .destroy = s_engine_destroy,
    .stop = s_attempt_stop,
    .end_all = s_engine_end_all,
    .lost = s_engine_lost,
    .idle = s_engine_idle
};

static void *
s_slurm_create (zloop_t *loop, const qn_backend_config_t *config,
                const qn_backend_events_t *events, void *arg)
{
    assert (loop);
    assert (config && config->data_dir);
    assert (events);
    char error [512];
    if (qn_backend_options_check (config, "slurm", s_known_options, error,
                                  sizeof (error)) == -1) {
        qn_log (QN_LOG_ERROR, "slurm", "slurm backend: %s", error);
        return NULL;
    }
    int poll_ms = S_POLL_MS_DEFAULT;
    const char *poll = qn_backend_option (config, "slurm", "poll_ms");
    if (poll) {
        char *end = NULL;
        long value = strtol (poll, &end, 10);
        if (!*poll || *end || value < 10 || value > 3600000) {
            qn_log (QN_LOG_ERROR, "slurm", "slurm backend: poll_ms '%s' is not a number of "
                          "milliseconds from 10 to 3600000", poll);
            return NULL;
        }
        poll_ms = (int) value;
    }
    s_slurm_t *self = (s_slurm_t *) calloc (1, sizeof (s_slurm_t));
    if (!self)
        return NULL;
    int rc = qn_backend_front_init (&self->front, &s_engine, loop, config, events, arg);
    self->poll_ms = poll_ms;
    self->tail_timer = self->poll_timer = -1;
    const char *dir = qn_backend_option (config, "slurm", "dir");
    if (dir && *dir) {
        self->dir = strdup (dir);
        //  no trailing slash: paths are built with "/"
        while (self->dir && strlen (self->dir) > 1 && self->dir [strlen (self->dir) - 1] == '/')
            self->dir [strlen (self->dir) - 1] = '\0';
    }
    else
    if (asprintf (&self->dir, "%s/slurm", config->data_dir) < 0)
        self->dir = NULL;
    if (self->dir && asprintf (&self->stage_dir, "%s/.stage", self->dir) < 0)
        self->stage_dir = NULL;
    self->agent_name = strdup (config->agent_name? config->agent_name: "");
    const char *bin_dir = qn_backend_option (config, "slurm", "bin_dir");
    const char *conf = qn_backend_option (config, "slurm", "conf");
    const char *partition = qn_backend_option (config, "slurm", "partition");
    self->bin_dir = bin_dir && *bin_dir? strdup (bin_dir): NULL;
    self->conf = conf && *conf? strdup (conf): NULL;
    self->partition = partition && *partition? strdup (partition): NULL;
    if (rc == -1 || !self->dir || !self->agent_name
    ||  (bin_dir && *bin_dir && !self->bin_dir) || (conf && *conf && !self->conf)
    ||  (partition && *partition && !self->partition)) {
        void *state = self;
        s_slurm_destroy (&state);
        return NULL;
    }
    if (*self->dir != '/') {
        qn_log (QN_LOG_ERROR, "slurm", "slurm backend: dir '%s' is not an absolute path",
                      self->dir);
        void *state = self;
        s_slurm_destroy (&state);
        return NULL;
    }
    if (qn_fs_mkdirs (self->dir, 0700) == -1) {
        qn_log (QN_LOG_ERROR, "slurm", "slurm backend: cannot create %s: %s", self->dir,
                      strerror (errno));
        void *state = self;
        s_slurm_destroy (&state);
        return NULL;
    }
    return self;
}

//  Shutdown: cancels our jobs first, blocking at most about grace_ms (a
//  restarted agent could otherwise re-attach them; the contract of
//  shutdown is that the work goes).
static void
s_engine_end_all (qn_backend_front_t *front, int grace_ms, const char *reason)
{
    (void) reason;
    s_slurm_t *self = (s_slurm_t *) front;
    int64_t deadline = zclock_mono () + (grace_ms > 0? grace_ms: 1000);
    s_argv_t env = { 0 };
    s_command_env (self, &env);
    s_argv_t argv = { 0 };
    s_command_path (&argv, self->bin_dir, "scancel");
    size_t ids = 0;
    s_attempt_t *attempt = (s_attempt_t *) zlistx_first (self->front.attempts);
    while (attempt) {
        if (attempt->sbatch) {
            //  Submitted or not, we cannot know: kill sbatch, cancel by name
            qn_command_destroy (&attempt->sbatch);
            s_argv_t by_name = { 0 };
            s_command_path (&by_name, self->bin_dir, "scancel");
            s_argv_add (&by_name, "--name=%s", attempt->job_name? attempt->job_name: "");
            int64_t left = deadline - zclock_mono ();
            if (!by_name.failed && !env.failed && attempt->job_name && left > 0) {
                qn_command_result_t result;
                qn_command_run (by_name.items, env.items, NULL, (int) left, &result);
                qn_command_result_free (&result);
            }
            s_argv_free (&by_name);
        }
        else
        if (attempt->job_id [0] && !attempt->ended && !attempt->gone) {
            s_argv_add (&argv, "%s", attempt->job_id);
            ids++;
        }
        attempt = (s_attempt_t *) zlistx_next (self->front.attempts);
    }
    int64_t left = deadline - zclock_mono ();
    if (ids && !argv.failed && !env.failed) {
        qn_command_result_t result;
        if (qn_command_run (argv.items, env.items, NULL, left > 100? (int) left: 100,
                            &result) == -1 || result.exit_code != 0) {
            char line [200];
            s_first_line (result.err? result.err: "", result.err_size, line, sizeof (line));
            qn_log (QN_LOG_WARNING, "slurm", "scancel at shutdown failed: %s", line);
        }
        qn_command_result_free (&result);
    }
    s_argv_free (&argv);
    s_argv_free (&env);
}

//  Shutdown, then: what output is already there, then report
static void
s_engine_lost (qn_backend_attempt_t *base, const char *reason)
{
    s_attempt_t *attempt = (s_attempt_t *) base;
    s_read_all (attempt);
    s_flush_all (attempt);
    s_report_cursor (attempt);
    qn_backend_attempt_finished (&attempt->base, -1, 0, reason, QANAT__END_KIND__END_LOST);
}

static void
s_engine_idle (qn_backend_front_t *front)
{
    s_timers_stop_if_idle ((s_slurm_t *) front);
}

static void
s_slurm_destroy (void **state_p)
{
    assert (state_p);
    s_slurm_t *self = (s_slurm_t *) *state_p;
    if (!self)
        return;
    qn_backend_front_fini (&self->front);
    qn_command_destroy (&self->squeue);
    if (self->tail_timer != -1)
        zloop_timer_end (self->front.loop, self->tail_timer);
    if (self->poll_timer != -1)
        zloop_timer_end (self->front.loop, self->poll_timer);
    free (self->dir);
    free (self->stage_dir);
    free (self->agent_name);
    free (self->bin_dir);
    free (self->conf);
    free (self->partition);
    free (self);
    *state_p = NULL;
}

//  Inputs are staged on slurm.dir, so that they become a job's work
//  directory by a rename whatever filesystem the agent's data dir is on
static const char *
s_slurm_stage_dir (void *state)
{
    return ((s_slurm_t *) state)->stage_dir;
}

const qn_backend_ops_t qn_backend_slurm = {
    .name = "slurm",
    .flags = QN_BACKEND_CAN_REATTACH | QN_BACKEND_REMOTE,
    .stage_dir = s_slurm_stage_dir,
    .create = s_slurm_create,
    .start = s_slurm_start,
    .reattach = s_slurm_reattach,
    .stop = qn_backend_front_stop,
    .set_paused = qn_backend_front_set_paused,
    .running = qn_backend_front_running,
    .shutdown = qn_backend_front_shutdown,
    .destroy = s_slurm_destroy
};
