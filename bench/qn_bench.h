/*  qn_bench - what the files of the benchmark program share, and nobody
    else: the settings, the processes it starts, the simulated agents,
    and each file's entry points.  See the top of qn_bench.c for which
    file holds what; the comments on these functions are at their code.

    One of the files of the qn_bench class.
*/
#ifndef QN_BENCH_H_INCLUDED
#define QN_BENCH_H_INCLUDED

#include "qn_client.h"
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>

#define RUN_TASKS_MAX       10000   //  a workflow holds at most this many tasks
#define LINE_BYTES          100     //  log line size for figure c
#define SIM_ATTEMPTS_MAX    1024

//  ---------------------------------------------------------------------
//  Settings (qn_bench.c)

typedef struct {
    char *only;                     //  figures to run, e.g. "a,b"; NULL = all
    size_t tasks;                   //  a: tasks dispatched
    size_t agents_a;                //  a, e, f: simulated agents
    uint32_t slots;                 //  a, e, f: slots per simulated agent
    size_t chain;                   //  b: tasks in the chain
    size_t log_mb;                  //  c: megabytes (10^6) of log lines
    size_t log_window;              //  c: unacknowledged events per attempt
    size_t lines_per_event;         //  c: whole lines per LogChunk (the agent packs what one read gives)
    size_t scale [4];               //  d: agent counts
    size_t scale_count;
    double window_s;                //  d: measured window
    size_t depth;                   //  e: tasks queued in the deep case
    size_t depth_shallow;           //  e: tasks queued in the shallow case
    size_t depth_tasks;             //  e: matching tasks dispatched per case
    size_t runs;                    //  f: stored runs
    bool smoke;
    size_t real_tasks;              //  g: tasks on real agents
    bool no_sync;                   //  every coordinator with --no-sync
    char *builddir;
} settings_t;

extern settings_t bench_set;
double
    bench_now (void);
int64_t
    bench_now_ns (void);
void
    bench_say (const char *format, ...);
void
    bench_figure (const char *key, double value, const char *unit);
void
    bench_row (const char *figure, const char *value, const char *target, const char *met);
void
    bench_fail (const char *figure, const char *why);

//  ---------------------------------------------------------------------
//  Processes (qn_bench_proc.c)

typedef struct {
    pid_t pid;                      //  the process we started
    pid_t real;                     //  the one running the real binary
    char *exe;
    char *dir;                      //  temporary dir, ours
    char *data_dir;
    char *log_path;
    char *client_ep;
    char *agent_ep;
} proc_t;

long long
    bench_proc_cpu_ticks (pid_t pid);
long
    bench_proc_field_kb (pid_t pid, const char *file_name, const char *field);
long
    bench_proc_status_kb (pid_t pid, const char *field);
char *
    bench_proc_exe (pid_t pid);
pid_t
    bench_real_pid (pid_t pid, const char *name);
const char *
    bench_fs_name (const char *path);
void
    bench_du (const char *dir, long long *used_p, long long *apparent_p);
void
    bench_child_add (pid_t pid);
void
    bench_kill_children (void);
pid_t
    bench_spawn (char **argv, const char *log_path);
void
    bench_stop_pid (pid_t pid, double timeout_s);
void
    bench_proc_destroy (proc_t **self_p);
proc_t *
    bench_qanatd_start (bool durable);
qn_client_t *
    bench_client_new (proc_t *proc);
int
    bench_start_run (qn_client_t *client, const char *yaml, uint64_t *run_id_p);
int
    bench_list_runs (qn_client_t *client, const char *workflow, uint32_t limit,
                     size_t *ended_p, size_t *failed_p);
int
    bench_get_stats (qn_client_t *client, Qanat__Stats *stats);
bool
    bench_agent_connected (qn_client_t *client, const char *name);
char *
    bench_workflow_yaml (const char *name, size_t count, const char *pool, bool chain);

//  ---------------------------------------------------------------------
//  Simulated agents (qn_bench_sim.c)

typedef enum { SIM_ECHO, SIM_LOG } sim_mode_t;

typedef struct {
    zsock_t *sock;
    char name [32];
    bool registered;
    int64_t last_finish_ns;         //  when it sent its last Finished
} sim_agent_t;

typedef struct {
    size_t agent;
    uint64_t run_id;
    uint32_t task;
    uint32_t attempt;
    uint64_t next_seq;              //  next seq to send
    uint64_t acked;                 //  highest seq acknowledged
    uint64_t logs_sent;
    bool done;                      //  every log line acknowledged
} sim_attempt_t;

typedef struct {
    //  Settings, fixed before the thread starts.
    const char *endpoint;
    size_t count;
    uint32_t capacity;
    const char *pool;               //  label pool=<pool>
    sim_mode_t mode;
    int heartbeat_ms;
    size_t connect_batch;           //  outstanding registrations at most
    size_t first_name;              //  agents are named sim-<first_name + i>
    bool record_hops;
    uint64_t log_lines;             //  log mode: lines per attempt
    uint64_t log_window;            //  log mode: unacknowledged events
    size_t log_attempts;            //  log mode: attempts to expect

    //  Results, read after the thread has stopped (or through the pipe).
    sim_agent_t *agents;
    size_t created;
    size_t registered;
    double registered_at;           //  bench_now () when the last registered
    uint64_t assigns, finished_acked, acks, refusals, send_errors;
    bool open_failed;               //  a socket could not be opened
    uint64_t heartbeats_sent, heartbeat_replies;
    int64_t *hops;                  //  ns
    size_t hop_count, hop_alloc;
    sim_attempt_t attempts [SIM_ATTEMPTS_MAX];
    size_t attempt_count, attempts_done;
    int64_t log_first_ns, log_last_ack_ns;
    uint64_t log_events_acked;
} sim_t;

void
    bench_sim_actor (zsock_t *pipe, void *args);
sim_t *
    bench_sim_new (const char *endpoint, size_t count, uint32_t capacity, const char *pool);
void
    bench_sim_destroy (sim_t **self_p);
bool
    bench_sim_wait (zactor_t *actor, const char *word, double timeout_s);
uint64_t
    bench_sim_finished_count (zactor_t *actor);

//  ---------------------------------------------------------------------
//  Figures (qn_bench_control.c, qn_bench_real.c)

double
    bench_dispatch_measure (proc_t *proc, qn_client_t *client, const char *name, size_t tasks,
                            const char *pool, double *cpu_share_p, double *commits_p);
void
    bench_figure_a (void);
void
    bench_figure_b (void);
void
    bench_figure_c (void);
int
    bench_sim_child_main (const char *endpoint, size_t first, size_t count);
void
    bench_figure_d (void);
void
    bench_figure_e (void);
void
    bench_figure_f (void);
long
    bench_real_agent_rss (proc_t *proc, qn_client_t *client, char **exe_p);
void
    bench_figure_g (void);
void
    bench_figure_h (void);

#endif
