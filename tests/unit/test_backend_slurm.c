/*  Tests for the Slurm backend (its pure parts: script, sbatch command
    line, parsing of Slurm's output, end states) and for qn_command; then
    one attempt's whole life against a fake Slurm (shell scripts in a
    bin_dir).  The backend's helpers are static: the file is included.
*/
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../agent/qn_backend_slurm.c"

#include <stdio.h>
#include <stdlib.h>

static char *
s_tempdir (void)
{
    char template [] = "/tmp/qanat-test-slurm-XXXXXX";
    char *dir = mkdtemp (template);
    assert_non_null (dir);
    return strdup (dir);
}

static void
s_rmdir (char *dir)
{
    qn_fs_remove_tree (dir);
    free (dir);
}

static Qanat__Label *
s_label (const char *key, const char *value)
{
    Qanat__Label *label = (Qanat__Label *) calloc (1, sizeof (Qanat__Label));
    qanat__label__init (label);
    label->key = strdup (key);
    label->value = strdup (value);
    return label;
}

//  An Assign with argv, env and options from NULL-terminated lists
typedef struct {
    Qanat__Assign assign;
    Qanat__AttemptRef ref;
} s_assign_t;

static s_assign_t *
s_assign_new (const char *const *argv, const char *const *env, const char *const *options)
{
    s_assign_t *self = (s_assign_t *) calloc (1, sizeof (s_assign_t));
    qanat__assign__init (&self->assign);
    qanat__attempt_ref__init (&self->ref);
    self->ref.run_id = 7;
    self->ref.task_index = 2;
    self->ref.attempt = 1;
    self->assign.attempt = &self->ref;
    self->assign.task_name = strdup ("train model");
    self->assign.backend = strdup ("slurm");
    size_t n = 0;
    while (argv && argv [n])
        n++;
    self->assign.argv = (char **) calloc (n + 1, sizeof (char *));
    for (size_t i = 0; i < n; i++)
        self->assign.argv [i] = strdup (argv [i]);
    self->assign.n_argv = n;
    n = 0;
    while (env && env [n])
        n += 2;
    self->assign.env = (Qanat__Label **) calloc (n / 2 + 1, sizeof (Qanat__Label *));
    for (size_t i = 0; i < n; i += 2)
        self->assign.env [self->assign.n_env++] = s_label (env [i], env [i + 1]);
    n = 0;
    while (options && options [n])
        n += 2;
    self->assign.backend_options = (Qanat__Label **) calloc (n / 2 + 1, sizeof (Qanat__Label *));
    for (size_t i = 0; i < n; i += 2)
        self->assign.backend_options [self->assign.n_backend_options++] =
            s_label (options [i], options [i + 1]);
    return self;
}

static void
s_assign_destroy (s_assign_t **self_p)
{
    s_assign_t *self = *self_p;
    for (size_t i = 0; i < self->assign.n_argv; i++)
        free (self->assign.argv [i]);
    free (self->assign.argv);
    Qanat__Label **lists [2] = { self->assign.env, self->assign.backend_options };
    size_t counts [2] = { self->assign.n_env, self->assign.n_backend_options };
    for (int l = 0; l < 2; l++) {
        for (size_t i = 0; i < counts [l]; i++) {
            free (lists [l][i]->key);
            free (lists [l][i]->value);
            free (lists [l][i]);
        }
        free (lists [l]);
    }
    free (self->assign.task_name);
    free (self->assign.backend);
    free (self);
    *self_p = NULL;
}


//  ---------------------------------------------------------------------
//  The batch script

//  The script, run by sh, must hand argv and env over byte for byte
static void
test_script_round_trip (void **state)
{
    (void) state;
    char *dir = s_tempdir ();
    char workdir [512], metrics [512], path [600];
    snprintf (workdir, sizeof (workdir), "%s/work dir 'x'", dir);
    snprintf (metrics, sizeof (metrics), "%s/metrics", dir);
    assert_int_equal (mkdir (workdir, 0700), 0);
    const char *argv [] = {
        "sh", "-c", "printf '[%s]\\n' \"$@\"; printf '<%s><%s><%s>\\n' \"$FOO\" \"$QANAT_METRICS\" "
        "\"$(pwd)\"", "-n", "it's", "$(touch /tmp/qanat-pwned)", "two\nlines", "`x`", "", "\\",
        NULL
    };
    const char *env [] = {
        "FOO", "a'b\"c $HOME `id`", "BAD-NAME", "x", "QANAT_METRICS", "mine", "", "empty",
        NULL
    };
    s_assign_t *a = s_assign_new (argv, env, NULL);
    size_t skipped = 99;
    char *script = s_script (&a->assign, "qanat run=7", metrics, workdir, &skipped);
    assert_non_null (script);
    assert_int_equal (skipped, 2);     //  BAD-NAME and ""
    assert_non_null (strstr (script, "#!/bin/sh\n# qanat run=7\n"));
    snprintf (path, sizeof (path), "%s/job.sh", dir);
    assert_int_equal (s_write_file (path, script, 0700), 0);
    free (script);

    char *run [] = { "/bin/sh", path, NULL };
    qn_command_result_t result;
    assert_int_equal (qn_command_run (run, NULL, NULL, 10000, &result), 0);
    assert_int_equal (result.exit_code, 0);
    char expected [2048];
    char *real_workdir = realpath (workdir, NULL);
    assert_non_null (real_workdir);
    snprintf (expected, sizeof (expected),
              "[it's]\n[$(touch /tmp/qanat-pwned)]\n[two\nlines]\n[`x`]\n[]\n[\\]\n"
              "<a'b\"c $HOME `id`><%s><%s>\n", metrics, real_workdir);
    assert_string_equal (result.out, expected);
    assert_int_equal (access ("/tmp/qanat-pwned", F_OK), -1);
    free (real_workdir);
    qn_command_result_free (&result);
    s_assign_destroy (&a);
    s_rmdir (dir);
}

//  $QANAT_VALUES moves beside the work directory, on the shared slurm.dir
static void
test_script_values_beside_workdir (void **state)
{
    (void) state;
    char *dir = s_tempdir ();
    char workdir [512], path [600], values [600];
    snprintf (workdir, sizeof (workdir), "%s/work", dir);
    assert_int_equal (mkdir (workdir, 0700), 0);
    const char *argv [] = { "sh", "-c", "echo v=1 >> \"$QANAT_VALUES\"", NULL };
    const char *env [] = { "QANAT_VALUES", "/agent-only/values/7-1-1", NULL };
    s_assign_t *a = s_assign_new (argv, env, NULL);
    char *script = s_script (&a->assign, "qanat", "/dev/null", workdir, NULL);
    assert_non_null (script);
    snprintf (path, sizeof (path), "%s/job.sh", dir);
    assert_int_equal (s_write_file (path, script, 0700), 0);
    free (script);
    char *run [] = { "/bin/sh", path, NULL };
    qn_command_result_t result;
    assert_int_equal (qn_command_run (run, NULL, NULL, 10000, &result), 0);
    assert_int_equal (result.exit_code, 0);
    qn_command_result_free (&result);
    snprintf (values, sizeof (values), "%s/" QN_BACKEND_VALUES_NAME, dir);
    FILE *file = fopen (values, "r");
    assert_non_null (file);
    char line [64] = "";
    assert_non_null (fgets (line, sizeof line, file));
    fclose (file);
    assert_string_equal (line, "v=1\n");
    s_assign_destroy (&a);
    s_rmdir (dir);
}

//  An argv[0] starting with '-' is refused: sh's exec differs on it
static void
test_script_dash_command (void **state)
{
    (void) state;
    zloop_t *loop = zloop_new ();
    char *dir = s_tempdir ();
    char option [600];
    snprintf (option, sizeof (option), "slurm.dir=%s", dir);
    char *options [] = { option, NULL };
    qn_backend_config_t config = { .data_dir = dir, .options = options };
    qn_backend_events_t events = { 0 };
    void *backend = qn_backend_slurm.create (loop, &config, &events, NULL);
    assert_non_null (backend);
    const char *argv [] = { "-weird", NULL };
    s_assign_t *a = s_assign_new (argv, NULL, NULL);
    char error [256] = "";
    assert_int_equal (qn_backend_slurm.start (backend, &a->assign, error, sizeof (error)), -1);
    assert_non_null (strstr (error, "'-'"));
    const char *empty [] = { "", NULL };
    s_assign_t *b = s_assign_new (empty, NULL, NULL);
    assert_int_equal (qn_backend_slurm.start (backend, &b->assign, error, sizeof (error)), -1);
    assert_int_equal (qn_backend_slurm.running (backend), 0);
    qn_backend_slurm.destroy (&backend);
    s_assign_destroy (&a);
    s_assign_destroy (&b);
    zloop_destroy (&loop);
    s_rmdir (dir);
}

//  qn_fs_move: a rename on one filesystem, a copy (modes kept, the
//  source removed) across two, and a symlink refused with nothing left
static void
test_move_across_filesystems (void **state)
{
    (void) state;
    char shm_template [] = "/dev/shm/qanat-test-move-XXXXXX";
    char *from_root = mkdtemp (shm_template);
    char *to_root = s_tempdir ();
    struct stat a, b;
    if (!from_root || stat (from_root, &a) || stat (to_root, &b) || a.st_dev == b.st_dev) {
        if (from_root)
            qn_fs_remove_tree (from_root);
        s_rmdir (to_root);
        skip ();                //  no second filesystem here
    }
    char path [700], from [600], to [600], error [800] = "";
    snprintf (from, sizeof from, "%s/stage", from_root);
    snprintf (path, sizeof path, "%s/sub", from);
    assert_int_equal (qn_fs_mkdirs (path, 0700), 0);
    snprintf (path, sizeof path, "%s/a.txt", from);
    assert_int_equal (s_write_file (path, "alpha\n", 0444), 0);
    snprintf (path, sizeof path, "%s/sub/run.sh", from);
    assert_int_equal (s_write_file (path, "#!/bin/sh\n", 0755), 0);
    snprintf (to, sizeof to, "%s/work", to_root);
    assert_int_equal (qn_fs_move (from, to, error, sizeof error), 0);
    assert_int_equal (access (from, F_OK), -1);
    snprintf (path, sizeof path, "%s/a.txt", to);
    assert_int_equal (stat (path, &a), 0);
    assert_int_equal (a.st_mode & 0777, 0444);
    assert_int_equal (a.st_size, 6);
    snprintf (path, sizeof path, "%s/sub/run.sh", to);
    assert_int_equal (stat (path, &a), 0);
    assert_int_equal (a.st_mode & 0777, 0755);

    //  A symlink is never staged: refused, and nothing is left at to
    snprintf (from, sizeof from, "%s/bad", from_root);
    assert_int_equal (mkdir (from, 0700), 0);
    snprintf (path, sizeof path, "%s/link", from);
    assert_int_equal (symlink ("/etc/passwd", path), 0);
    snprintf (to, sizeof to, "%s/bad", to_root);
    assert_int_equal (qn_fs_move (from, to, error, sizeof error), -1);
    assert_non_null (strstr (error, "a symlink"));
    assert_int_equal (access (to, F_OK), -1);
    qn_fs_remove_tree (from_root);
    s_rmdir (to_root);
}

static void
test_safe_name (void **state)
{
    (void) state;
    char buffer [S_NAME_MAX + 1];
    qn_backend_safe_name ("train model/../x", S_NAME_MAX, buffer, sizeof (buffer));
    assert_string_equal (buffer, "train_model_.._x");
    qn_backend_safe_name ("", S_NAME_MAX, buffer, sizeof (buffer));
    assert_string_equal (buffer, "_");
    qn_backend_safe_name (NULL, S_NAME_MAX, buffer, sizeof (buffer));
    assert_string_equal (buffer, "_");
    char long_name [300];
    memset (long_name, 'a', sizeof (long_name) - 1);
    long_name [sizeof (long_name) - 1] = '\0';
    qn_backend_safe_name (long_name, S_NAME_MAX, buffer, sizeof (buffer));
    assert_int_equal (strlen (buffer), S_NAME_MAX);
}


//  ---------------------------------------------------------------------
//  The sbatch command line

static bool
s_has (char **items, const char *item)
{
    for (size_t i = 0; items [i]; i++)
        if (streq (items [i], item))
            return true;
    return false;
}

static void
test_sbatch_argv (void **state)
{
    (void) state;
    const char *argv [] = { "true", NULL };
    const char *options [] = {
        "partition", "gpu", "account", "lab", "qos", "high",
        "sbatch_arg", "--exclusive", "sbatch_arg", "--constraint=a100", NULL
    };
    s_assign_t *a = s_assign_new (argv, NULL, options);
    a->assign.cpus = 4;
    a->assign.memory_mb = 2048;
    a->assign.gpus = 2;
    a->assign.timeout_s = 61;
    char error [256];
    assert_int_equal (s_check_task_options (&a->assign, error, sizeof (error)), 0);
    s_argv_t cmd = { 0 };
    s_sbatch_argv (&cmd, "/opt/slurm/bin", "debug", &a->assign, "qanat-7-x-1", "qanat run=7",
                   "/shared/7-2-1");
    assert_false (cmd.failed);
    assert_string_equal (cmd.items [0], "/opt/slurm/bin/sbatch");
    assert_true (s_has (cmd.items, "--parsable"));
    assert_true (s_has (cmd.items, "--job-name=qanat-7-x-1"));
    assert_true (s_has (cmd.items, "--comment=qanat run=7"));
    assert_true (s_has (cmd.items, "--output=/shared/7-2-1/stdout"));
    assert_true (s_has (cmd.items, "--error=/shared/7-2-1/stderr"));
    assert_true (s_has (cmd.items, "--partition=gpu"));    //  the task's wins
    assert_false (s_has (cmd.items, "--partition=debug"));
    assert_true (s_has (cmd.items, "--account=lab"));
    assert_true (s_has (cmd.items, "--qos=high"));
    assert_true (s_has (cmd.items, "--cpus-per-task=4"));
    assert_true (s_has (cmd.items, "--mem=2048M"));
    assert_true (s_has (cmd.items, "--gres=gpu:2"));
    assert_true (s_has (cmd.items, "--time=2"));           //  61 s: 2 minutes
    //  user arguments in order, the script last
    size_t n = cmd.count;
    assert_string_equal (cmd.items [n - 3], "--exclusive");
    assert_string_equal (cmd.items [n - 2], "--constraint=a100");
    assert_string_equal (cmd.items [n - 1], "/shared/7-2-1/job.sh");
    s_argv_free (&cmd);

    //  No options: Slurm's defaults, PATH lookup
    s_assign_t *b = s_assign_new (argv, NULL, NULL);
    s_sbatch_argv (&cmd, NULL, NULL, &b->assign, "j", "c", "/d");
    assert_string_equal (cmd.items [0], "sbatch");
    for (size_t i = 0; cmd.items [i]; i++) {
        assert_null (strstr (cmd.items [i], "--partition"));
        assert_null (strstr (cmd.items [i], "--time"));
        assert_null (strstr (cmd.items [i], "--mem"));
    }
    s_argv_free (&cmd);
    s_assign_destroy (&a);
    s_assign_destroy (&b);
}

static void
test_task_options_refused (void **state)
{
    (void) state;
    const char *argv [] = { "true", NULL };
    const char *bad [][2] = {
        { "sbatch_arg", "script.sh" },          //  would become the script
        { "sbatch_arg", "--output=/tmp/x" },
        { "sbatch_arg", "--out=/tmp/x" },       //  a prefix sbatch accepts
        { "sbatch_arg", "-o/tmp/x" },
        { "sbatch_arg", "-Qo/tmp/x" },          //  flags, then -o
        { "sbatch_arg", "--wrap=rm -rf /" },
        { "sbatch_arg", "--array=1-100" },
        { "sbatch_arg", "-W" },
        { "sbatch_arg", "--" },
        { "sbatch_arg", "-" },
        { "sbatch_arg", "" },
        { "sbatch_arg", "--x\n--output=/y" },
        { "partition", "" },
        { "partition", "a b" },
        { "qos", "x\ty" },
        { "nodes", "2" },
        { "", "x" },
    };
    for (size_t i = 0; i < sizeof (bad) / sizeof (bad [0]); i++) {
        const char *options [] = { bad [i][0], bad [i][1], NULL };
        s_assign_t *a = s_assign_new (argv, NULL, options);
        char error [256] = "";
        assert_int_equal (s_check_task_options (&a->assign, error, sizeof (error)), -1);
        assert_true (strlen (error) > 0);
        s_assign_destroy (&a);
    }
    const char *good [] = { "--exclusive", "--constraint=x", "-N1", "-pdebug", "--nodes=1",
                            "-Q", "--mem-per-cpu=100", "--export=ALL", NULL };
    for (size_t i = 0; good [i]; i++) {
        char error [256] = "";
        assert_int_equal (s_check_sbatch_arg (good [i], error, sizeof (error)), 0);
    }
}


//  ---------------------------------------------------------------------
//  Parsing Slurm's output

static void
test_parse_job_id (void **state)
{
    (void) state;
    char id [QN_SLURM_JOB_ID_DIGITS + 1];
    assert_int_equal (qn_slurm_parse_job_id ("12\n", 3, id), 0);
    assert_string_equal (id, "12");
    assert_int_equal (qn_slurm_parse_job_id (" 345;cluster-1\n", 15, id), 0);
    assert_string_equal (id, "345");
    const char *bad [] = {
        "", "\n", "abc", "12abc", "0", "012", "-5", "12 13", "12;a b", "12;",
        "123456789012345678901", "1e5", "12\n13\n", ";x"
    };
    for (size_t i = 0; i < sizeof (bad) / sizeof (bad [0]); i++)
        assert_int_equal (qn_slurm_parse_job_id (bad [i], strlen (bad [i]), id), -1);
    //  12; is accepted only with a cluster name; NUL bytes are garbage
    assert_int_equal (qn_slurm_parse_job_id ("12\0x", 4, id), -1);
    assert_int_equal (qn_slurm_parse_job_id ("12345678901234567890", 20, id), 0);
}

static void
test_parse_cursor (void **state)
{
    (void) state;
    int64_t offsets [3];
    assert_int_equal (qn_slurm_parse_cursor ("", offsets), 0);
    assert_true (offsets [0] == 0 && offsets [1] == 0 && offsets [2] == 0);
    assert_int_equal (qn_slurm_parse_cursor (NULL, offsets), 0);
    assert_int_equal (qn_slurm_parse_cursor ("10:0:12345678901", offsets), 0);
    assert_true (offsets [0] == 10 && offsets [1] == 0 && offsets [2] == 12345678901LL);
    const char *bad [] = {
        "1", "1:2", "1:2:3:4", "a:b:c", "-1:0:0", "1::3", ":1:2", "1:2:", " 1:2:3",
        "99999999999999999999:0:0"
    };
    for (size_t i = 0; i < sizeof (bad) / sizeof (bad [0]); i++)
        assert_int_equal (qn_slurm_parse_cursor (bad [i], offsets), -1);
}

static const char *s_show_oom =
    "JobId=12 JobName=qanat-7-train-1 UserId=root(0) GroupId=root(0) MCS_label=N/A "
    "Priority=4294901759 Nice=0 Account=(null) QOS=(null) JobState=OUT_OF_MEMORY "
    "Reason=OutOfMemory Dependency=(null) Requeue=0 Restarts=0 BatchFlag=1 Reboot=0 "
    "ExitCode=0:125 RunTime=00:00:01 TimeLimit=UNLIMITED Comment=qanat run=7 task=x "
    "JobState=COMPLETED StdOut=/x/stdout Power=\n";

static void
test_parse_show_job (void **state)
{
    (void) state;
    qn_slurm_job_t info;
    assert_int_equal (qn_slurm_parse_show_job (s_show_oom, strlen (s_show_oom), "12", &info), 0);
    assert_string_equal (info.state, "OUT_OF_MEMORY");     //  not the comment's
    assert_string_equal (info.reason, "OutOfMemory");
    assert_int_equal (info.exit_code, 0);
    assert_int_equal (info.exit_signal, 125);
    //  Another job's line is not ours: 1 is not 12, nor is 123
    assert_int_equal (qn_slurm_parse_show_job (s_show_oom, strlen (s_show_oom), "1", &info), -1);
    assert_int_equal (qn_slurm_parse_show_job (s_show_oom, strlen (s_show_oom), "123", &info), -1);

    const char *failed = "garbage line\nJobId=5 JobState=FAILED Reason=NonZeroExitCode "
                         "ExitCode=3:0\n";
    assert_int_equal (qn_slurm_parse_show_job (failed, strlen (failed), "5", &info), 0);
    assert_string_equal (info.state, "FAILED");
    assert_int_equal (info.exit_code, 3);
    assert_int_equal (info.exit_signal, 0);

    const char *none = "JobId=6 JobState=CANCELLED Reason=None ExitCode=0:15";
    assert_int_equal (qn_slurm_parse_show_job (none, strlen (none), "6", &info), 0);
    assert_string_equal (info.reason, "");
    assert_int_equal (info.exit_signal, 15);

    //  Hostile: no state, an overlong state, control bytes, no newline
    const char *bad [] = {
        "JobId=6 Reason=None", "JobId=6 JobState=", "JobId=6 JobState=" 
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "XJobId=6 JobState=FAILED",
        " JobId=6 JobState=FAILED", ""
    };
    for (size_t i = 0; i < sizeof (bad) / sizeof (bad [0]); i++)
        assert_int_equal (qn_slurm_parse_show_job (bad [i], strlen (bad [i]), "6", &info), -1);
    const char *odd = "JobId=6 JobState=FA\x01\xffLED Reason=\x1b[31m ExitCode=999:-4";
    assert_int_equal (qn_slurm_parse_show_job (odd, strlen (odd), "6", &info), 0);
    assert_false (qn_slurm_state_ended (info.state));
    for (const char *c = info.reason; *c; c++)
        assert_true (*c > 0x20 && *c < 0x7f);
    assert_int_equal (info.exit_code, 1);   //  out of range: some failure

    //  Random bytes never crash it
    char noise [4096];
    unsigned seed = 1;
    for (int round = 0; round < 200; round++) {
        for (size_t i = 0; i < sizeof (noise); i++)
            noise [i] = (char) (rand_r (&seed) % 7 == 0? ' ': rand_r (&seed) % 256);
        memcpy (noise + round, "JobId=6 JobState=", 17);
        qn_slurm_parse_show_job (noise, sizeof (noise), "6", &info);
    }
}

typedef struct {
    char seen [16][64];
    size_t count;
} s_seen_t;

static void
s_collect (const char *job_id, const char *state, void *arg)
{
    s_seen_t *seen = (s_seen_t *) arg;
    if (seen->count < 16)
        snprintf (seen->seen [seen->count++], 64, "%s=%s", job_id, state);
}

static void
test_parse_squeue (void **state)
{
    (void) state;
    const char *text = "12|RUNNING\n13|COMPLETED\r\n14_3|PENDING\nxx|FAILED\n15|lower\n"
                       "16|\n|RUNNING\n17|TIMEOUT";
    s_seen_t seen = { 0 };
    qn_slurm_parse_squeue (text, strlen (text), s_collect, &seen);
    assert_int_equal (seen.count, 3);
    assert_string_equal (seen.seen [0], "12=RUNNING");
    assert_string_equal (seen.seen [1], "13=COMPLETED");
    assert_string_equal (seen.seen [2], "17=TIMEOUT");

    //  Huge output: every line read, nothing kept beyond the callback
    size_t size = 4 * 1024 * 1024;
    char *huge = (char *) malloc (size);
    for (size_t i = 0; i < size; i++)
        huge [i] = "9|RUNNING\n" [i % 10];
    seen.count = 0;
    qn_slurm_parse_squeue (huge, size, s_collect, &seen);
    assert_int_equal (seen.count, 16);
    memset (huge, '|', size);
    seen.count = 0;
    qn_slurm_parse_squeue (huge, size, s_collect, &seen);
    assert_int_equal (seen.count, 0);
    free (huge);
}

static void
test_outcome (void **state)
{
    (void) state;
    struct {
        const char *state, *reason;
        int code, sig;
        const char *stop;
        int want_code, want_sig;
        Qanat__EndKind want_kind;
        const char *want_reason;
    } cases [] = {
        { "COMPLETED", "", 0, 0, NULL, 0, 0, QANAT__END_KIND__END_EXIT, "" },
        { "FAILED", "NonZeroExitCode", 3, 0, NULL, 3, 0, QANAT__END_KIND__END_EXIT,
          "exit code 3" },
        { "FAILED", "JobLaunchFailure", 0, 11, NULL, 139, 11, QANAT__END_KIND__END_EXIT,
          "killed by signal SIGSEGV" },
        { "FAILED", "JobLaunchFailure", 0, 0, NULL, -1, 0, QANAT__END_KIND__END_EXIT,
          "slurm job 12: FAILED (JobLaunchFailure)" },
        { "OUT_OF_MEMORY", "OutOfMemory", 0, 125, NULL, -1, 0, QANAT__END_KIND__END_EXIT,
          "slurm job 12: OUT_OF_MEMORY (OutOfMemory)" },
        { "TIMEOUT", "TimeLimit", 0, 15, NULL, 143, 15, QANAT__END_KIND__END_TIMEOUT,
          "slurm job 12: TIMEOUT (TimeLimit)" },
        { "CANCELLED", "", 0, 15, NULL, 143, 15, QANAT__END_KIND__END_CANCELED,
          "slurm job 12: CANCELLED" },
        { "CANCELLED", "", 0, 15, "canceled by user", 143, 15, QANAT__END_KIND__END_CANCELED,
          "canceled by user" },
        { "NODE_FAIL", "NodeDown", 0, 0, NULL, -1, 0, QANAT__END_KIND__END_LOST,
          "slurm job 12: NODE_FAIL (NodeDown)" },
        { "PREEMPTED", "", 0, 0, NULL, -1, 0, QANAT__END_KIND__END_LOST,
          "slurm job 12: PREEMPTED" },
        { "DEADLINE", "", 0, 0, NULL, -1, 0, QANAT__END_KIND__END_EXIT,
          "slurm job 12: DEADLINE" },
    };
    for (size_t i = 0; i < sizeof (cases) / sizeof (cases [0]); i++) {
        qn_slurm_job_t info;
        memset (&info, 0, sizeof (info));
        snprintf (info.state, sizeof (info.state), "%s", cases [i].state);
        snprintf (info.reason, sizeof (info.reason), "%s", cases [i].reason);
        info.exit_code = cases [i].code;
        info.exit_signal = cases [i].sig;
        qn_slurm_outcome_t outcome;
        qn_slurm_outcome ("12", false, &info, cases [i].stop, QANAT__END_KIND__END_CANCELED, &outcome);
        assert_int_equal (outcome.exit_code, cases [i].want_code);
        assert_int_equal (outcome.signal, cases [i].want_sig);
        assert_int_equal (outcome.kind, cases [i].want_kind);
        assert_string_equal (outcome.reason, cases [i].want_reason);
    }
    qn_slurm_outcome_t outcome;
    qn_slurm_outcome ("12", true, NULL, NULL, 0, &outcome);
    assert_int_equal (outcome.kind, QANAT__END_KIND__END_LOST);
    assert_string_equal (outcome.reason, "slurm job 12 is gone");
    assert_int_not_equal (outcome.exit_code, 0);
    qn_slurm_outcome ("12", true, NULL, "timed out after 5s", QANAT__END_KIND__END_TIMEOUT, &outcome);
    assert_int_equal (outcome.kind, QANAT__END_KIND__END_TIMEOUT);
    assert_string_equal (outcome.reason, "timed out after 5s");
}


//  ---------------------------------------------------------------------
//  qn_command

typedef struct {
    qn_command_result_t copy;
    char *out;
    char *err;
    int calls;
    qn_command_t *command;
} s_got_t;

static void
s_on_result (qn_command_t *command, const qn_command_result_t *result, void *arg)
{
    s_got_t *got = (s_got_t *) arg;
    got->calls++;
    got->copy = *result;
    got->out = (char *) malloc (result->out_size + 1);
    memcpy (got->out, result->out, result->out_size + 1);
    got->err = strdup (result->err);
    assert_ptr_equal (command, got->command);
    assert_true (qn_command_done (command));
    qn_command_destroy (&got->command);     //  allowed from the callback
}

static int
s_until_done (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    s_got_t *got = (s_got_t *) arg;
    return got->calls? -1: 0;
}

static void
s_run_async (char **argv, char **env, const char *input, int timeout_ms, s_got_t *got)
{
    zloop_t *loop = zloop_new ();
    memset (got, 0, sizeof (*got));
    got->command = qn_command_new (loop, argv, env, input, timeout_ms, s_on_result, got);
    assert_non_null (got->command);
    assert_true (qn_command_pid (got->command) > 0);
    zloop_timer (loop, 5, 0, s_until_done, got);
    int guard = zloop_timer (loop, 20000, 1, s_until_done, got);
    (void) guard;
    zloop_start (loop);
    zloop_destroy (&loop);
    assert_int_equal (got->calls, 1);
}

static void
s_got_free (s_got_t *got)
{
    free (got->out);
    free (got->err);
}

static void
test_command_async (void **state)
{
    (void) state;
    char *argv [] = { "/bin/sh", "-c", "echo out; echo \"$QN_X\" >&2; cat; exit 3", NULL };
    char *env [] = { "QN_X=extra env", NULL };
    s_got_t got;
    s_run_async (argv, env, "from stdin\n", 10000, &got);
    assert_int_equal (got.copy.exit_code, 3);
    assert_false (got.copy.timed_out);
    assert_string_equal (got.out, "out\nfrom stdin\n");
    assert_string_equal (got.err, "extra env\n");
    s_got_free (&got);

    //  Killed by a signal
    char *killed [] = { "/bin/sh", "-c", "kill -9 $$", NULL };
    s_run_async (killed, NULL, NULL, 10000, &got);
    assert_int_equal (got.copy.signal, 9);
    assert_int_equal (got.copy.exit_code, 137);
    s_got_free (&got);

    //  Not a program
    char *missing [] = { "/nonexistent/qanat-no-such-program", NULL };
    s_run_async (missing, NULL, NULL, 10000, &got);
    assert_int_equal (got.copy.exit_code, 127);
    s_got_free (&got);

    //  Huge output: bounded, and the child is not blocked by a full pipe
    char *huge [] = { "/bin/sh", "-c", "head -c 3000000 /dev/zero; head -c 200000 /dev/zero >&2",
                      NULL };
    s_run_async (huge, NULL, NULL, 10000, &got);
    assert_int_equal (got.copy.exit_code, 0);
    assert_int_equal (got.copy.out_size, QN_COMMAND_OUTPUT_MAX);
    assert_int_equal (got.copy.err_size, QN_COMMAND_OUTPUT_MAX);
    assert_true (got.copy.out_truncated && got.copy.err_truncated);
    s_got_free (&got);

    //  Big stdin: written as the child reads it
    size_t big = 1024 * 1024;
    char *input = (char *) malloc (big + 1);
    memset (input, 'x', big);
    input [big] = '\0';
    char *count [] = { "/bin/sh", "-c", "wc -c", NULL };
    s_run_async (count, NULL, input, 10000, &got);
    assert_int_equal (atoi (got.out), (int) big);
    s_got_free (&got);
    free (input);

    //  The deadline: killed, group and all
    int64_t started = zclock_mono ();
    char *slow [] = { "/bin/sh", "-c", "sleep 30 & sleep 30", NULL };
    s_run_async (slow, NULL, NULL, 300, &got);
    assert_true (got.copy.timed_out);
    assert_int_equal (got.copy.exit_code, -1);
    assert_true (zclock_mono () - started < 5000);
    s_got_free (&got);
}

static void
test_command_destroy_running (void **state)
{
    (void) state;
    zloop_t *loop = zloop_new ();
    s_got_t got = { 0 };
    char *argv [] = { "/bin/sleep", "30", NULL };
    qn_command_t *command = qn_command_new (loop, argv, NULL, NULL, 0, s_on_result, &got);
    assert_non_null (command);
    int pid = qn_command_pid (command);
    qn_command_destroy (&command);
    assert_null (command);
    qn_command_destroy (&command);
    assert_int_equal (kill (pid, 0), -1);   //  killed and reaped
    assert_int_equal (got.calls, 0);
    char *empty [] = { NULL };
    assert_null (qn_command_new (loop, empty, NULL, NULL, 0, s_on_result, &got));
    zloop_destroy (&loop);
}

static void
test_command_sync (void **state)
{
    (void) state;
    qn_command_result_t result;
    char *argv [] = { "/bin/sh", "-c", "cat; echo done >&2", NULL };
    assert_int_equal (qn_command_run (argv, NULL, "abc", 5000, &result), 0);
    assert_string_equal (result.out, "abc");
    assert_string_equal (result.err, "done\n");
    qn_command_result_free (&result);

    int64_t started = zclock_mono ();
    char *slow [] = { "/bin/sleep", "30", NULL };
    assert_int_equal (qn_command_run (slow, NULL, NULL, 200, &result), -1);
    assert_true (result.timed_out);
    assert_true (zclock_mono () - started < 5000);
    qn_command_result_free (&result);

    char *empty [] = { NULL };
    assert_int_equal (qn_command_run (empty, NULL, NULL, 200, &result), -1);
    qn_command_result_free (&result);
}


//  ---------------------------------------------------------------------
//  One attempt against a fake Slurm: shell scripts that answer from
//  files the test writes

typedef struct {
    int started;
    char job_id [64];
    char out [4096];
    int lines;
    int metrics;
    char metric_name [64];
    char cursor [128];
    int finished;
    int exit_code;
    Qanat__EndKind kind;
    char reason [600];
    bool finished_after_started;
} s_events_t;

static void
s_ev_started (void *arg, const qn_attempt_key_t *key, int64_t pid, const char *host,
              const char *workdir, const char *engine_job_id)
{
    (void) key; (void) pid; (void) host; (void) workdir;
    s_events_t *ev = (s_events_t *) arg;
    ev->started++;
    snprintf (ev->job_id, sizeof (ev->job_id), "%s", engine_job_id);
}

static void
s_ev_log (void *arg, const qn_attempt_key_t *key, Qanat__Stream stream, const void *data,
          size_t size, bool partial, int64_t time_us)
{
    (void) key; (void) partial; (void) time_us;
    s_events_t *ev = (s_events_t *) arg;
    if (stream == QANAT__STREAM__STREAM_SYSTEM)
        return;
    ev->lines++;
    size_t used = strlen (ev->out);
    snprintf (ev->out + used, sizeof (ev->out) - used, "%s:%.*s\n",
              stream == QANAT__STREAM__STREAM_STDOUT? "out": "err", (int) size,
              (const char *) data);
}

static void
s_ev_metric (void *arg, const qn_attempt_key_t *key, const char *name, double value,
             int64_t step, bool has_step, int64_t time_us)
{
    (void) key; (void) value; (void) step; (void) has_step; (void) time_us;
    s_events_t *ev = (s_events_t *) arg;
    ev->metrics++;
    snprintf (ev->metric_name, sizeof (ev->metric_name), "%s", name);
}

static void
s_ev_finished (void *arg, const qn_attempt_key_t *key, int exit_code, int sig,
               const char *stack_trace, const char *reason, Qanat__EndKind kind)
{
    (void) key; (void) sig; (void) stack_trace;
    s_events_t *ev = (s_events_t *) arg;
    ev->finished++;
    ev->finished_after_started = ev->started > 0;
    ev->exit_code = exit_code;
    ev->kind = kind;
    snprintf (ev->reason, sizeof (ev->reason), "%s", reason);
}

static void
s_ev_cursor (void *arg, const qn_attempt_key_t *key, const char *cursor)
{
    (void) key;
    s_events_t *ev = (s_events_t *) arg;
    snprintf (ev->cursor, sizeof (ev->cursor), "%s", cursor);
}

static const qn_backend_events_t s_events = {
    s_ev_started, s_ev_log, s_ev_metric, s_ev_finished, s_ev_cursor
};

typedef struct {
    s_events_t *ev;
    char *fake;         //  the fake Slurm's directory
    char *jobs;         //  slurm.dir
    int phase;
    int64_t phase_ms;
    void *backend;
    const char *end_state;
} s_drive_t;

static void
s_put (const char *dir, const char *name, const char *text)
{
    char path [600];
    snprintf (path, sizeof (path), "%s/%s", dir, name);
    FILE *file = fopen (path, "a");
    assert_non_null (file);
    fputs (text, file);
    fclose (file);
}

static void
s_replace (const char *dir, const char *name, const char *text)
{
    char path [600];
    snprintf (path, sizeof (path), "%s/%s", dir, name);
    assert_int_equal (s_write_file (path, text, 0755), 0);
}

static char *
s_fake_slurm (void)
{
    char *fake = s_tempdir ();
    char script [1024];
    //  sbatch records its argv, prints a job id (from a file) and fails
    //  when told to
    snprintf (script, sizeof (script),
              "#!/bin/sh\nprintf '%%s\\n' \"$@\" > %s/sbatch.args\n"
              "echo \"$SLURM_CONF\" > %s/sbatch.conf\n"
              "if [ -e %s/sbatch.fail ]; then echo 'sbatch: error: Batch job submission "
              "failed: Invalid partition name specified' >&2; exit 1; fi\n"
              "cat %s/sbatch.out\n", fake, fake, fake, fake);
    s_replace (fake, "sbatch", script);
    snprintf (script, sizeof (script), "#!/bin/sh\ncat %s/squeue.out 2>/dev/null\n", fake);
    s_replace (fake, "squeue", script);
    snprintf (script, sizeof (script),
              "#!/bin/sh\nif [ -e %s/show.out ]; then cat %s/show.out; else "
              "echo 'slurm_load_jobs error: Invalid job id specified' >&2; exit 1; fi\n",
              fake, fake);
    s_replace (fake, "scontrol", script);
    snprintf (script, sizeof (script), "#!/bin/sh\necho \"$@\" >> %s/scancel.args\n", fake);
    s_replace (fake, "scancel", script);
    s_replace (fake, "sbatch.out", "4242;cluster\n");
    return fake;
}

static void *
s_backend_new (zloop_t *loop, s_drive_t *drive, s_events_t *ev)
{
    char bin [600], dir [600], conf [600];
    snprintf (bin, sizeof (bin), "slurm.bin_dir=%s", drive->fake);
    snprintf (dir, sizeof (dir), "slurm.dir=%s/jobs/", drive->fake);
    snprintf (conf, sizeof (conf), "slurm.conf=/etc/qanat-test/slurm.conf");
    char *options [] = { bin, dir, conf, "slurm.poll_ms=50", "local.other=1", NULL };
    qn_backend_config_t config = {
        .data_dir = drive->fake, .host = "here", .agent_name = "a1", .options = options
    };
    return qn_backend_slurm.create (loop, &config, &s_events, ev);
}

//  Walks the fake job through its life, one phase per tick
static int
s_drive (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    s_drive_t *drive = (s_drive_t *) arg;
    char jobdir [700];
    snprintf (jobdir, sizeof (jobdir), "%s/jobs/7-2-1", drive->fake);
    if (drive->ev->finished)
        return -1;
    if (zclock_mono () - drive->phase_ms > 15000)
        return -1;          //  stuck: the assertions will say where
    if (drive->phase == 0 && drive->ev->started) {
        s_replace (drive->fake, "squeue.out", "4242|RUNNING\n");
        s_put (jobdir, "stdout", "hello\npart");
        s_put (jobdir, "stderr", "warn 1\n");
        s_put (jobdir, "metrics", "loss 0.5 1\nbad line here\n");
        drive->phase = 1;
    }
    else
    if (drive->phase == 1 && strlen (drive->ev->cursor) && drive->ev->metrics == 1) {
        s_put (jobdir, "stdout", "ial line\nlast without newline");
        char show [256];
        snprintf (show, sizeof (show), "JobId=4242 JobName=x JobState=%s Reason=None "
                  "ExitCode=%s\n", drive->end_state,
                  streq (drive->end_state, "COMPLETED")? "0:0": "0:15");
        s_replace (drive->fake, "show.out", show);
        snprintf (show, sizeof (show), "4242|%s\n", drive->end_state);
        s_replace (drive->fake, "squeue.out", show);
        drive->phase = 2;
    }
    return 0;
}

static void
test_backend_fake_slurm (void **state)
{
    (void) state;
    const char *ends [] = { "COMPLETED", "CANCELLED" };
    for (int round = 0; round < 2; round++) {
        s_events_t ev;
        memset (&ev, 0, sizeof (ev));
        s_drive_t drive = { &ev, s_fake_slurm (), NULL, 0, zclock_mono (), NULL, ends [round] };
        zloop_t *loop = zloop_new ();
        void *backend = s_backend_new (loop, &drive, &ev);
        assert_non_null (backend);
        drive.backend = backend;

        const char *argv [] = { "python3", "train.py", NULL };
        const char *env [] = { "SEED", "1", NULL };
        s_assign_t *a = s_assign_new (argv, env, NULL);
        a->assign.memory_mb = 100;
        char error [256];
        assert_int_equal (qn_backend_slurm.start (backend, &a->assign, error, sizeof (error)), 0);
        assert_int_equal (qn_backend_slurm.running (backend), 1);
        //  the same attempt twice is refused
        assert_int_equal (qn_backend_slurm.start (backend, &a->assign, error, sizeof (error)), -1);
        zloop_timer (loop, 20, 0, s_drive, &drive);
        zloop_start (loop);

        assert_int_equal (ev.started, 1);
        assert_string_equal (ev.job_id, "4242");
        assert_int_equal (ev.finished, 1);
        assert_true (ev.finished_after_started);
        assert_string_equal (ev.out, "out:hello\nerr:warn 1\nout:partial line\n"
                                     "out:last without newline\n");
        assert_int_equal (ev.metrics, 1);
        assert_string_equal (ev.metric_name, "loss");
        //  "hello\npartial line\nlast without newline" + "warn 1\n" + metrics
        assert_string_equal (ev.cursor, "39:7:25");
        if (round == 0) {
            assert_int_equal (ev.exit_code, 0);
            assert_int_equal (ev.kind, QANAT__END_KIND__END_EXIT);
            assert_string_equal (ev.reason, "");
        }
        else {
            assert_int_equal (ev.exit_code, 143);
            assert_int_equal (ev.kind, QANAT__END_KIND__END_CANCELED);
            assert_string_equal (ev.reason, "slurm job 4242: CANCELLED");
        }
        assert_int_equal (qn_backend_slurm.running (backend), 0);

        //  sbatch saw our options and SLURM_CONF
        char path [700];
        snprintf (path, sizeof (path), "%s/sbatch.args", drive.fake);
        FILE *file = fopen (path, "r");
        assert_non_null (file);
        char args [4096] = "";
        size_t got = fread (args, 1, sizeof (args) - 1, file);
        args [got] = '\0';
        fclose (file);
        assert_non_null (strstr (args, "--job-name=qanat-7-train_model-1\n"));
        assert_non_null (strstr (args, "--mem=100M\n"));
        assert_non_null (strstr (args, "--comment=qanat run=7 task=train_model attempt=1 "
                                       "agent=a1\n"));
        assert_non_null (strstr (args, "/jobs/7-2-1/job.sh\n"));
        assert_null (strstr (args, "//"));
        snprintf (path, sizeof (path), "%s/sbatch.conf", drive.fake);
        file = fopen (path, "r");
        got = fread (args, 1, sizeof (args) - 1, file);
        args [got] = '\0';
        fclose (file);
        assert_string_equal (args, "/etc/qanat-test/slurm.conf\n");

        qn_backend_slurm.destroy (&backend);
        assert_null (backend);
        zloop_destroy (&loop);
        s_assign_destroy (&a);
        s_rmdir (drive.fake);
    }
}

//  sbatch fails: finished END_START_FAILED with its message, no started
static void
test_backend_sbatch_fails (void **state)
{
    (void) state;
    s_events_t ev;
    memset (&ev, 0, sizeof (ev));
    s_drive_t drive = { &ev, s_fake_slurm (), NULL, 0, zclock_mono (), NULL, "COMPLETED" };
    s_replace (drive.fake, "sbatch.fail", "");
    zloop_t *loop = zloop_new ();
    void *backend = s_backend_new (loop, &drive, &ev);
    const char *argv [] = { "true", NULL };
    s_assign_t *a = s_assign_new (argv, NULL, NULL);
    char error [256];
    assert_int_equal (qn_backend_slurm.start (backend, &a->assign, error, sizeof (error)), 0);
    zloop_timer (loop, 20, 0, s_drive, &drive);
    zloop_start (loop);
    assert_int_equal (ev.started, 0);
    assert_int_equal (ev.finished, 1);
    assert_int_equal (ev.kind, QANAT__END_KIND__END_START_FAILED);
    assert_non_null (strstr (ev.reason, "Invalid partition name specified"));
    assert_int_equal (qn_backend_slurm.running (backend), 0);

    //  Garbage instead of a job id
    unlink (strcat (strcpy (error, drive.fake), "/sbatch.fail"));
    s_replace (drive.fake, "sbatch.out", "Submitted batch job \x01\xff\n");
    memset (&ev, 0, sizeof (ev));
    assert_int_equal (qn_backend_slurm.start (backend, &a->assign, error, sizeof (error)), 0);
    drive.phase_ms = zclock_mono ();
    zloop_start (loop);
    assert_int_equal (ev.finished, 1);
    assert_int_equal (ev.kind, QANAT__END_KIND__END_START_FAILED);
    assert_non_null (strstr (ev.reason, "sbatch printed no job id"));

    //  A bad task option is refused at once, without callbacks
    const char *options [] = { "sbatch_arg", "--output=/x", NULL };
    s_assign_t *b = s_assign_new (argv, NULL, options);
    memset (&ev, 0, sizeof (ev));
    assert_int_equal (qn_backend_slurm.start (backend, &b->assign, error, sizeof (error)), -1);
    assert_non_null (strstr (error, "--output"));
    assert_int_equal (ev.finished + ev.started, 0);
    qn_backend_slurm.destroy (&backend);
    zloop_destroy (&loop);
    s_assign_destroy (&a);
    s_assign_destroy (&b);
    s_rmdir (drive.fake);
}

//  A reattached attempt resumes at its cursor; a job Slurm forgot is lost
static void
test_backend_reattach (void **state)
{
    (void) state;
    s_events_t ev;
    memset (&ev, 0, sizeof (ev));
    s_drive_t drive = { &ev, s_fake_slurm (), NULL, 2, zclock_mono (), NULL, "COMPLETED" };
    char jobdir [700];
    snprintf (jobdir, sizeof (jobdir), "%s/jobs/7-2-1", drive.fake);
    assert_int_equal (qn_fs_mkdirs (jobdir, 0700), 0);
    s_put (jobdir, "stdout", "seen\nnew 1\nnew 2\n");
    s_put (jobdir, "stderr", "");
    s_put (jobdir, "metrics", "a 1\nb 2\n");
    s_replace (drive.fake, "squeue.out", "4242|COMPLETED\n");
    s_replace (drive.fake, "show.out", "JobId=4242 JobState=COMPLETED Reason=None ExitCode=0:0\n");
    zloop_t *loop = zloop_new ();
    void *backend = s_backend_new (loop, &drive, &ev);
    const char *argv [] = { NULL };
    s_assign_t *a = s_assign_new (argv, NULL, NULL);
    char error [256];
    assert_int_equal (qn_backend_slurm.reattach (backend, &a->assign, "x1", "", error,
                                                 sizeof (error)), -1);
    assert_int_equal (qn_backend_slurm.reattach (backend, &a->assign, "4242", "1:2", error,
                                                 sizeof (error)), -1);
    assert_int_equal (qn_backend_slurm.reattach (backend, &a->assign, "4242", "5:0:4", error,
                                                 sizeof (error)), 0);
    assert_int_equal (qn_backend_slurm.reattach (backend, &a->assign, "4242", "5:0:4", error,
                                                 sizeof (error)), -1);
    zloop_timer (loop, 20, 0, s_drive, &drive);
    zloop_start (loop);
    assert_int_equal (ev.started, 0);
    assert_int_equal (ev.finished, 1);
    assert_string_equal (ev.out, "out:new 1\nout:new 2\n");
    assert_int_equal (ev.metrics, 1);
    assert_string_equal (ev.metric_name, "b");
    assert_int_equal (ev.kind, QANAT__END_KIND__END_EXIT);

    //  Gone: squeue and scontrol do not know it
    unlink (strcat (strcpy (error, drive.fake), "/show.out"));
    s_replace (drive.fake, "squeue.out", "");
    memset (&ev, 0, sizeof (ev));
    drive.phase_ms = zclock_mono ();
    assert_int_equal (qn_backend_slurm.reattach (backend, &a->assign, "4243", "", error,
                                                 sizeof (error)), 0);
    zloop_start (loop);
    assert_int_equal (ev.finished, 1);
    assert_int_equal (ev.kind, QANAT__END_KIND__END_LOST);
    assert_string_equal (ev.reason, "slurm job 4243 is gone");
    //  the whole output again, since the cursor was ""
    assert_int_equal (ev.lines, 3);

    //  A missing directory cannot be followed
    a->ref.attempt = 9;
    assert_int_equal (qn_backend_slurm.reattach (backend, &a->assign, "4244", "", error,
                                                 sizeof (error)), -1);
    qn_backend_slurm.destroy (&backend);
    zloop_destroy (&loop);
    s_assign_destroy (&a);
    s_rmdir (drive.fake);
}

//  stop cancels through scancel and finishes with the stop's reason;
//  shutdown cancels what runs and reports it lost
static void
test_backend_stop_and_shutdown (void **state)
{
    (void) state;
    s_events_t ev;
    memset (&ev, 0, sizeof (ev));
    s_drive_t drive = { &ev, s_fake_slurm (), NULL, 99, zclock_mono (), NULL, "CANCELLED" };
    s_replace (drive.fake, "squeue.out", "4242|RUNNING\n");
    zloop_t *loop = zloop_new ();
    void *backend = s_backend_new (loop, &drive, &ev);
    const char *argv [] = { "sleep", "100", NULL };
    s_assign_t *a = s_assign_new (argv, NULL, NULL);
    char error [256];
    assert_int_equal (qn_backend_slurm.start (backend, &a->assign, error, sizeof (error)), 0);
    qn_attempt_key_t key = { 7, 2, 1 };
    assert_int_equal (qn_backend_slurm.stop (backend, &key, "canceled by test",
                                             QANAT__END_KIND__END_CANCELED), 0);
    qn_attempt_key_t other = { 7, 2, 2 };
    assert_int_equal (qn_backend_slurm.stop (backend, &other, "x", QANAT__END_KIND__END_CANCELED),
                      -1);
    //  Let sbatch answer and scancel run, then Slurm says CANCELLED
    int64_t until = zclock_mono () + 10000;
    char path [700];
    snprintf (path, sizeof (path), "%s/scancel.args", drive.fake);
    while (access (path, F_OK) == -1 && zclock_mono () < until) {
        zloop_timer (loop, 20, 1, s_until_done, &(s_got_t) { .calls = 1 });
        zloop_start (loop);
    }
    assert_int_equal (ev.started, 1);
    assert_int_equal (access (path, F_OK), 0);
    s_replace (drive.fake, "squeue.out", "4242|CANCELLED\n");
    s_replace (drive.fake, "show.out", "JobId=4242 JobState=CANCELLED Reason=None ExitCode=0:15\n");
    drive.phase_ms = zclock_mono ();
    zloop_timer (loop, 20, 0, s_drive, &drive);
    zloop_start (loop);
    assert_int_equal (ev.finished, 1);
    assert_int_equal (ev.kind, QANAT__END_KIND__END_CANCELED);
    assert_string_equal (ev.reason, "canceled by test");

    //  shutdown: scancel, then lost
    unlink (path);
    s_replace (drive.fake, "squeue.out", "4242|RUNNING\n");
    memset (&ev, 0, sizeof (ev));
    assert_int_equal (qn_backend_slurm.start (backend, &a->assign, error, sizeof (error)), 0);
    until = zclock_mono () + 10000;
    while (!ev.started && zclock_mono () < until) {
        zloop_timer (loop, 20, 1, s_until_done, &(s_got_t) { .calls = 1 });
        zloop_start (loop);
    }
    assert_int_equal (ev.started, 1);
    qn_backend_slurm.shutdown (backend, 5000, "agent is leaving");
    assert_int_equal (ev.finished, 1);
    assert_int_equal (ev.kind, QANAT__END_KIND__END_LOST);
    assert_string_equal (ev.reason, "agent is leaving");
    assert_int_equal (access (path, F_OK), 0);
    assert_int_equal (qn_backend_slurm.running (backend), 0);
    qn_backend_slurm.destroy (&backend);
    zloop_destroy (&loop);
    s_assign_destroy (&a);
    s_rmdir (drive.fake);
}

static void
test_backend_bad_options (void **state)
{
    (void) state;
    zloop_t *loop = zloop_new ();
    s_events_t ev;
    const char *sets [][2] = {
        { "slurm.partiton=x", NULL }, { "slurm.poll_ms=fast", NULL }, { "slurm.poll_ms=0", NULL },
        { "slurm.dir=relative/path", NULL }, { "slurm.conf", NULL }
    };
    for (size_t i = 0; i < sizeof (sets) / sizeof (sets [0]); i++) {
        char *options [] = { (char *) sets [i][0], NULL };
        qn_backend_config_t config = { .data_dir = "/tmp", .options = options };
        assert_null (qn_backend_slurm.create (loop, &config, &s_events, &ev));
    }
    assert_true (qn_backend_slurm.flags & QN_BACKEND_CAN_REATTACH);
    assert_true (qn_backend_slurm.flags & QN_BACKEND_REMOTE);
    assert_ptr_equal (qn_backend_find ("slurm"), &qn_backend_slurm);
    zloop_destroy (&loop);
}

int
main (void)
{
    qn_log_set_verbose (false);
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_script_round_trip),
        cmocka_unit_test (test_script_values_beside_workdir),
        cmocka_unit_test (test_move_across_filesystems),
        cmocka_unit_test (test_script_dash_command),
        cmocka_unit_test (test_safe_name),
        cmocka_unit_test (test_sbatch_argv),
        cmocka_unit_test (test_task_options_refused),
        cmocka_unit_test (test_parse_job_id),
        cmocka_unit_test (test_parse_cursor),
        cmocka_unit_test (test_parse_show_job),
        cmocka_unit_test (test_parse_squeue),
        cmocka_unit_test (test_outcome),
        cmocka_unit_test (test_command_async),
        cmocka_unit_test (test_command_destroy_running),
        cmocka_unit_test (test_command_sync),
        cmocka_unit_test (test_backend_fake_slurm),
        cmocka_unit_test (test_backend_sbatch_fails),
        cmocka_unit_test (test_backend_reattach),
        cmocka_unit_test (test_backend_stop_and_shutdown),
        cmocka_unit_test (test_backend_bad_options),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
