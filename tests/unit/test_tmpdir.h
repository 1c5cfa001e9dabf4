/*  A scratch directory for unit tests that run command-line tools (diff,
    patch, tar) on files: made by the group setup, removed by its teardown.
    Include once per test program, after cmocka.h. */
#ifndef TEST_TMPDIR_H_INCLUDED
#define TEST_TMPDIR_H_INCLUDED

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static char s_dir [64];

static int
s_tmpdir_setup (void **state)
{
    (void) state;
    snprintf (s_dir, sizeof s_dir, "/tmp/qn_test_XXXXXX");
    return mkdtemp (s_dir)? 0: -1;
}

static int
s_tmpdir_teardown (void **state)
{
    (void) state;
    char command [128];
    snprintf (command, sizeof command, "rm -rf %s", s_dir);
    return system (command) == 0? 0: -1;
}

#endif
