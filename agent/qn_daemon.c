/*  qn_daemon - runs the agent in the background without a service
    manager.  See qn_daemon.h.
*/
#include "qn_daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static pid_t
s_read_pid (const char *pid_path)
{
    FILE *file = fopen (pid_path, "r");
    if (!file)
        return 0;
    long pid = 0;
    if (fscanf (file, "%ld", &pid) != 1 || pid <= 1)
        pid = 0;
    fclose (file);
    return (pid_t) pid;
}

pid_t
qn_daemon_running (const char *pid_path)
{
    pid_t pid = s_read_pid (pid_path);
    if (pid > 0 && (kill (pid, 0) == 0 || errno == EPERM))
        return pid;
    return 0;
}

//  Written aside and renamed, so that a reader never sees half a number
static int
s_write_pid (const char *pid_path)
{
    char temp [4200];
    snprintf (temp, sizeof temp, "%s.new", pid_path);
    FILE *file = fopen (temp, "w");
    if (!file)
        return -1;
    fprintf (file, "%ld\n", (long) getpid ());
    if (fclose (file) != 0 || rename (temp, pid_path) == -1) {
        unlink (temp);
        return -1;
    }
    return 0;
}

//  In the foreground process: waits for the background one to write its
//  pid (or to die), says so and exits.
static void
s_foreground (pid_t first, const char *pid_path, const char *log_path)
{
    int status = 0;
    waitpid (first, &status, 0);
    for (int tries = 0; tries < 100; tries++) {
        pid_t pid = qn_daemon_running (pid_path);
        if (pid > 0 && pid != getpid ()) {
            printf ("qanat-agent runs in the background: pid %ld (%s), log %s\n",
                    (long) pid, pid_path, log_path);
            exit (0);
        }
        struct timespec pause = { 0, 20 * 1000 * 1000 };
        nanosleep (&pause, NULL);
    }
    fprintf (stderr, "qanat-agent: the background agent did not start: see %s\n", log_path);
    exit (1);
}

int
qn_daemon_detach (const char *pid_path, const char *log_path, const char **error_p)
{
    int log = open (log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (log == -1) {
        *error_p = "cannot open the log file";
        return -1;
    }
    fflush (stdout);
    fflush (stderr);
    pid_t first = fork ();
    if (first == -1) {
        close (log);
        *error_p = "cannot fork";
        return -1;
    }
    if (first > 0) {
        close (log);
        s_foreground (first, pid_path, log_path);
    }
    //  The first child leads a new session and leaves at once, so that
    //  the agent is no session leader and gets no controlling terminal
    setsid ();
    pid_t second = fork ();
    if (second != 0)
        _exit (second == -1? 1: 0);
    int null = open ("/dev/null", O_RDONLY);
    if (null == -1 || dup2 (null, STDIN_FILENO) == -1
    ||  dup2 (log, STDOUT_FILENO) == -1 || dup2 (log, STDERR_FILENO) == -1)
        _exit (1);
    close (null);
    close (log);
    umask (077);
    if (s_write_pid (pid_path) == -1) {
        fprintf (stderr, "qanat-agent: cannot write the pid file %s: %s\n",
                 pid_path, strerror (errno));
        _exit (1);
    }
    return 0;
}

void
qn_daemon_forget (const char *pid_path)
{
    if (s_read_pid (pid_path) == getpid ())
        unlink (pid_path);
}
