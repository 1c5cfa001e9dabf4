/*  test_resources - what the agent's machine offers and what each attempt
    gets: memory amounts, the --gpus and --resources overrides and their
    errors, GPUs from a stand-in nvidia-smi, GPUs given out lowest free
    first and never twice, and the cgroup of an attempt, in a plain
    directory standing in for a delegated cgroup v2 group (the files the
    agent writes, and an OOM kill read back as the attempt's reason).
*/
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <sys/stat.h>
#include "qn_resources.h"
#include "test_tmpdir.h"

static void
test_memory_amounts (void **state)
{
    (void) state;
    uint64_t mb = 0;
    assert_int_equal (qn_resources_parse_memory ("512", &mb), 0);
    assert_int_equal (mb, 512);
    assert_int_equal (qn_resources_parse_memory ("16G", &mb), 0);
    assert_int_equal (mb, 16384);
    assert_int_equal (qn_resources_parse_memory ("1Gi", &mb), 0);
    assert_int_equal (mb, 1024);
    assert_int_equal (qn_resources_parse_memory ("2T", &mb), 0);
    assert_int_equal (mb, 2 * 1024 * 1024);
    const char *bad [] = { "", "-1", "0", "12X", "G", "1GG", "99999999999999999999999", NULL };
    for (int i = 0; bad [i]; i++)
        assert_int_equal (qn_resources_parse_memory (bad [i], &mb), -1);
}

static void
test_overrides (void **state)
{
    (void) state;
    char *error = NULL;
    qn_resources_t *machine = qn_resources_new ("3,1", "cpus=4,memory=16G", s_dir, &error);
    assert_non_null (machine);
    assert_int_equal (qn_resources_cpus (machine), 4);
    assert_int_equal (qn_resources_memory_mb (machine), 16384);
    assert_int_equal (qn_resources_gpus (machine), 2);
    Qanat__Register reg = QANAT__REGISTER__INIT;
    qn_resources_register (machine, &reg);
    assert_int_equal (reg.resources->gpus, 2);
    assert_int_equal (reg.n_gpus, 2);
    assert_int_equal (reg.gpus [0]->index, 3);
    qn_resources_destroy (&machine);
    assert_null (machine);

    machine = qn_resources_new (NULL, "gpus=2", s_dir, &error);
    assert_int_equal (qn_resources_gpus (machine), 2);
    qn_resources_destroy (&machine);
    machine = qn_resources_new ("none", NULL, s_dir, &error);
    assert_int_equal (qn_resources_gpus (machine), 0);
    qn_resources_destroy (&machine);

    const char *bad [][2] = {
        { "0,x", NULL }, { "-1", NULL }, { NULL, "cpus=0" }, { NULL, "memory=lots" },
        { NULL, "disks=2" }, { NULL, "cpus" }, { "0,1", "gpus=3" }
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++) {
        machine = qn_resources_new (bad [i][0], bad [i][1], s_dir, &error);
        assert_null (machine);
        assert_non_null (error);
        zstr_free (&error);
    }
}

static void
test_nvidia_smi (void **state)
{
    (void) state;
    char bin [128], smi [160];
    snprintf (bin, sizeof bin, "%s/bin", s_dir);
    mkdir (bin, 0700);
    snprintf (smi, sizeof smi, "%s/nvidia-smi", bin);
    FILE *file = fopen (smi, "w");
    assert_non_null (file);
    fprintf (file, "#!/bin/sh\necho '0, GPU-aa, NVIDIA A100-SXM4-80GB, 81920 MiB'\n"
                   "echo 'garbage'\necho '1, GPU-bb, NVIDIA A100-SXM4-80GB, 81920 MiB'\n");
    fclose (file);
    chmod (smi, 0700);
    char *path = strdup (getenv ("PATH"));
    char *with = zsys_sprintf ("%s:%s", bin, path);
    setenv ("PATH", with, 1);
    char *error = NULL;
    qn_resources_t *machine = qn_resources_new (NULL, NULL, s_dir, &error);
    setenv ("PATH", path, 1);
    free (path);
    free (with);
    assert_non_null (machine);
    Qanat__Register reg = QANAT__REGISTER__INIT;
    qn_resources_register (machine, &reg);
    assert_int_equal (reg.n_gpus, 2);
    assert_string_equal (reg.gpus [1]->uuid, "GPU-bb");
    assert_string_equal (reg.gpus [0]->name, "NVIDIA A100-SXM4-80GB");
    assert_int_equal (reg.gpus [0]->memory_mb, 81920);
    qn_resources_destroy (&machine);
}

static Qanat__Assign
s_assign (uint32_t cpus, uint64_t memory_mb, uint32_t gpus)
{
    Qanat__Assign assign = QANAT__ASSIGN__INIT;
    assign.cpus = cpus;
    assign.memory_mb = memory_mb;
    assign.gpus = gpus;
    return assign;
}

static void
test_gpus_given_out (void **state)
{
    (void) state;
    char *error = NULL;
    qn_resources_t *machine = qn_resources_new ("0,1,2,3", NULL, "/nonexistent", &error);
    assert_non_null (machine);
    qn_attempt_key_t a = { 1, 0, 1 }, b = { 1, 1, 1 }, c = { 1, 2, 1 }, d = { 1, 3, 1 };
    qn_resources_grant_t grant;
    char message [256];
    Qanat__Assign two = s_assign (0, 0, 2), one = s_assign (0, 0, 1), none = s_assign (1, 0, 0);
    assert_int_equal (qn_resources_attempt_begin (machine, &a, &two, &grant, message, sizeof message), 0);
    assert_string_equal (grant.gpus, "0,1");
    assert_true (grant.gpus_visible);
    assert_int_equal (grant.cgroup_fd, -1);     //  no cgroup to confine it in
    assert_int_equal (qn_resources_attempt_begin (machine, &b, &one, &grant, message, sizeof message), 0);
    assert_string_equal (grant.gpus, "2");
    assert_int_equal (qn_resources_attempt_begin (machine, &c, &two, &grant, message, sizeof message), -1);
    assert_non_null (strstr (message, "needs 2 GPUs, 1 of 4 free"));
    assert_int_equal (qn_resources_attempt_begin (machine, &d, &none, &grant, message, sizeof message), 0);
    assert_string_equal (grant.gpus, "");       //  sees no GPU at all
    assert_false (qn_resources_attempt_end (machine, &a, message, sizeof message));
    assert_int_equal (qn_resources_attempt_begin (machine, &c, &two, &grant, message, sizeof message), 0);
    assert_string_equal (grant.gpus, "0,1");
    qn_resources_attempt_end (machine, &b, message, sizeof message);
    qn_resources_attempt_end (machine, &c, message, sizeof message);
    qn_resources_attempt_end (machine, &c, message, sizeof message);     //  twice: nothing
    qn_resources_attempt_end (machine, &d, message, sizeof message);
    qn_resources_destroy (&machine);
}

//  The text of file dir/name, or "" when there is none
static char *
s_slurp (const char *dir, const char *name)
{
    static char text [256];
    char path [512];
    snprintf (path, sizeof path, "%s/%s", dir, name);
    text [0] = 0;
    FILE *file = fopen (path, "r");
    if (file) {
        size_t got = fread (text, 1, sizeof text - 1, file);
        text [got] = 0;
        fclose (file);
    }
    return text;
}

static void
test_cgroup_of_an_attempt (void **state)
{
    (void) state;
    //  A directory shaped like our delegated group: the path of our group
    //  in /proc/self/cgroup, below a root of our own
    char root [128], own [1200], line [512] = "";
    snprintf (root, sizeof root, "%s/cgroup", s_dir);
    FILE *file = fopen ("/proc/self/cgroup", "r");
    while (file && fgets (line, sizeof line, file) && strncmp (line, "0::", 3))
        ;
    if (file)
        fclose (file);
    line [strcspn (line, "\n")] = 0;
    if (strncmp (line, "0::", 3) != 0)
        skip ();                //  no cgroup v2 line at all
    snprintf (own, sizeof own, "%s%s", root, streq (line + 3, "/")? "": line + 3);
    char *command = zsys_sprintf ("mkdir -p '%s' && echo 'cpuset cpu io memory pids' > '%s/cgroup.controllers'", own, own);
    assert_int_equal (system (command), 0);
    free (command);

    char *error = NULL;
    qn_resources_t *machine = qn_resources_new ("0", NULL, root, &error);
    assert_non_null (machine);
    assert_string_equal (qn_resources_confinement (machine), "cgroup");
    assert_non_null (strstr (s_slurp (own, "cgroup.subtree_control"), "+memory +cpu"));

    qn_attempt_key_t key = { 7, 2, 1 };
    Qanat__Assign assign = s_assign (2, 512, 1);
    qn_resources_grant_t grant;
    char message [256];
    assert_int_equal (qn_resources_attempt_begin (machine, &key, &assign, &grant, message,
                                                  sizeof message), 0);
    assert_true (grant.cgroup_fd >= 0);
    char *group = zsys_sprintf ("%s/qanat-%d-7-2-1", own, (int) getpid ());
    assert_string_equal (s_slurp (group, "memory.max"), "536870912\n");
    assert_string_equal (s_slurp (group, "memory.swap.max"), "0\n");
    assert_string_equal (s_slurp (group, "cpu.max"), "200000 100000\n");
    close (grant.cgroup_fd);
    //  The kernel's count of OOM kills says how it ended
    command = zsys_sprintf ("printf 'oom 1\\noom_kill 1\\n' > '%s/memory.events'", group);
    assert_int_equal (system (command), 0);
    free (command);
    assert_true (qn_resources_attempt_end (machine, &key, message, sizeof message));
    assert_string_equal (message, "out of memory (limit 512 MiB)");

    //  Without an OOM kill it ended as its exit says
    assert_int_equal (qn_resources_attempt_begin (machine, &key, &assign, &grant, message,
                                                  sizeof message), 0);
    close (grant.cgroup_fd);
    command = zsys_sprintf ("printf 'oom_kill 0\\n' > '%s/memory.events'", group);
    assert_int_equal (system (command), 0);
    free (command);
    assert_false (qn_resources_attempt_end (machine, &key, message, sizeof message));
    free (group);
    qn_resources_destroy (&machine);

    //  A group without the memory controller confines nothing, and says why
    command = zsys_sprintf ("echo 'cpu hugetlb' > '%s/cgroup.controllers'", own);
    assert_int_equal (system (command), 0);
    free (command);
    machine = qn_resources_new ("0", NULL, root, &error);
    assert_non_null (strstr (qn_resources_confinement (machine), "none: the memory controller"));
    qn_resources_destroy (&machine);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_memory_amounts),
        cmocka_unit_test (test_overrides),
        cmocka_unit_test (test_nvidia_smi),
        cmocka_unit_test (test_gpus_given_out),
        cmocka_unit_test (test_cgroup_of_an_attempt),
    };
    return cmocka_run_group_tests (tests, s_tmpdir_setup, s_tmpdir_teardown);
}
