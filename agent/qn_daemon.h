/*  qn_daemon - runs the agent in the background without a service
    manager (qanat-agent --daemon): for a node where the user has no root
    and no systemd --user, e.g. a Slurm login node.

    Detaches from the terminal (fork, setsid, fork), writes the running
    process's id to a pid file, sends its output to a log file, and
    refuses to start while the pid file names a live process, so that
    `qanat-agent --daemon` run twice does not give two agents on one
    data directory.
*/
#ifndef QN_DAEMON_H_INCLUDED
#define QN_DAEMON_H_INCLUDED

#include <stdbool.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

//  The process the pid file at path names, if it is alive; else 0.
pid_t
    qn_daemon_running (const char *pid_path);

//  Detaches.  In the background process: returns 0, with stdin from
//  /dev/null, stdout and stderr appended to log_path, and its id in
//  pid_path.  The foreground process waits until the pid file is written,
//  prints where the agent runs and exits (0, or 1 if the background
//  process could not start).  Returns -1 with *error_p (static text
//  plus errno) when it cannot detach at all.
int
    qn_daemon_detach (const char *pid_path, const char *log_path, const char **error_p);

//  Removes the pid file if it still names this process.
void
    qn_daemon_forget (const char *pid_path);

#ifdef __cplusplus
}
#endif

#endif
