/*  fuzz_shellref - one fuzz input through qn_shellref and a real /bin/sh,
    shared by the libFuzzer target (fuzz_shellref.c) and the regression
    test (tests/unit/test_fuzz_regressions.c).

    Each input byte picks a fragment of shell syntax (quotes, $(…), $((…)),
    ${…}, backticks, here-documents, comments, a reference); the script
    they make is rewritten and, when accepted, run by /bin/sh in an empty
    directory with a hostile value in $QANAT_PARAM_V.  No fragment can
    name a file, so any PWN* file there came from the value: the
    invariant "a value is data, never code" broke.  Returns 1 when the
    script ran, 0 when it was refused, -1 on a broken invariant.
*/
#ifndef FUZZ_SHELLREF_H_INCLUDED
#define FUZZ_SHELLREF_H_INCLUDED

#include <dirent.h>
#include <stdbool.h>
#include <stdint.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "qn_shellref.h"

#define FZ_SHELL_VALUE "$(touch PWN1)`touch PWN2`'; touch PWN3; '\"; touch PWN4; \"\nE\n" \
                       "touch PWN5\n${{ params.v }}\\"

static char *
fz_shell_resolve (void *arg, const char *ref, size_t len, char **error_p)
{
    (void) arg;
    if (len == 8 && strncmp (ref, "params.v", 8) == 0)
        return strdup ("QANAT_PARAM_V");
    *error_p = strdup ("unknown reference");
    return NULL;
}

//  Runs script under /bin/sh -c in dir, at most about two seconds
static void
fz_shell_run (const char *dir, const char *script)
{
    pid_t pid = fork ();
    if (pid < 0)
        return;
    if (pid == 0) {
        setpgid (0, 0);
        int null = open ("/dev/null", O_RDWR);
        dup2 (null, 0);
        dup2 (null, 1);
        dup2 (null, 2);
        if (chdir (dir) != 0)
            _exit (126);
        setenv ("QANAT_PARAM_V", FZ_SHELL_VALUE, 1);
        execl ("/bin/sh", "sh", "-c", script, (char *) NULL);
        _exit (127);
    }
    for (int waited = 0; waited < 2000; waited++) {
        if (waitpid (pid, NULL, WNOHANG) == pid)
            return;
        struct timespec pause = { 0, 1000000 };
        nanosleep (&pause, NULL);
    }
    kill (-pid, SIGKILL);
    waitpid (pid, NULL, 0);
}

//  Empties dir; true if a PWN* file was there
static bool
fz_shell_sweep (const char *dir)
{
    bool pwned = false;
    DIR *handle = opendir (dir);
    struct dirent *entry;
    while (handle && (entry = readdir (handle))) {
        if (strcmp (entry->d_name, ".") == 0 || strcmp (entry->d_name, "..") == 0)
            continue;
        pwned = pwned || strncmp (entry->d_name, "PWN", 3) == 0;
        char path [4096 + 258];
        snprintf (path, sizeof path, "%s/%s", dir, entry->d_name);
        unlink (path);
    }
    if (handle)
        closedir (handle);
    return pwned;
}

static inline int
fz_shellref_one (const uint8_t *data, size_t size)
{
    static const char *fragments [] = {
        " ", "\n", "'", "\"", "\\", "$(", ")", "`", "${X:-", "}", "$((", "))", "#", ";",
        "|", "&&", "<<E\n", "<<'E'\n", "<<-E\n", "E\n", "\tE\n", "cat ", "printf '%s' ",
        "echo ", "a", "@", "@", "@", "$X", "(", "case x in x) ", ";; esac", "for a in ",
        "; do ", "; done", "<<E <<F\n", "F\n", "\\\\", "$", "{", "=", "x=",
    };
    size_t count = sizeof fragments / sizeof fragments [0];
    char *script = NULL;
    size_t length = 0;
    FILE *stream = open_memstream (&script, &length);
    if (!stream)
        return 0;
    for (size_t i = 0; i < size && i < 256; i++) {
        const char *fragment = fragments [data [i] % count];
        fputs (strcmp (fragment, "@") == 0? "${{ params.v }}": fragment, stream);
    }
    fclose (stream);
    char *error = NULL;
    size_t offset = 0;
    char *rewritten = qn_shellref_rewrite (script, fz_shell_resolve, NULL, &offset, &error);
    int result = 1;
    if (!rewritten)
        result = error && offset <= length? 0: -1;
    else
    if (strstr (rewritten, "touch"))
        result = -1;                    //  the value became script text
    else {
        const char *base = getenv ("FUZZ_TMPDIR");
        char dir [4096];
        snprintf (dir, sizeof dir, "%s/qanat-shellref-XXXXXX", base? base: "/tmp");
        if (mkdtemp (dir)) {
            fz_shell_run (dir, rewritten);
            if (fz_shell_sweep (dir))
                result = -1;
            rmdir (dir);
        }
    }
    free (error);
    free (rewritten);
    free (script);
    return result;
}

#endif
