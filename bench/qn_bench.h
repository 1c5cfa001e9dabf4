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
    size_t http_runs;               //  i: stored runs
    double http_seconds;            //  i: measured seconds per connection count
    size_t http_pages;              //  i: run list pages followed by cursor
    size_t followers;               //  j: event-stream followers
    size_t follow_runs;             //  j: runs whose log they follow
    double follow_rate;             //  j: log lines/s of each followed run
    size_t rss_rounds;              //  k: starts of each kind
    bool no_sync;                   //  every coordinator with --no-sync
    size_t agents_l;                //  l: simulated agents of mixed sizes
    bool mixed_resources;           //  l: while it runs, tasks ask for resources
    size_t notify_runs;             //  m: 1-task runs per measurement
    const char *notify_url;         //  m: while set, workflows notify this webhook
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
    uint16_t http_port;             //  0 without HTTP
} proc_t;

long long
    bench_proc_cpu_ticks (pid_t pid);
void
    bench_proc_thread_ns (pid_t pid, const char *engine, const char *http, long long ns [3]);
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
proc_t *
    bench_qanatd_start_http (bool durable, const char *http);
int
    bench_qanatd_restart (proc_t *self, bool durable, const char *http);
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
    int64_t started_ns;             //  when its Assign came
} sim_attempt_t;

typedef struct {
    //  Settings, fixed before the thread starts.
    const char *endpoint;
    size_t count;
    uint32_t capacity;
    const char *pool;               //  label pool=<pool>
    bool resources;                 //  report resources: one agent in 4 with GPUs
    sim_mode_t mode;
    int heartbeat_ms;
    size_t connect_batch;           //  outstanding registrations at most
    size_t first_name;              //  agents are named sim-<first_name + i>
    bool record_hops;
    uint64_t log_lines;             //  log mode: lines per attempt
    uint64_t log_window;            //  log mode: unacknowledged events
    size_t log_attempts;            //  log mode: attempts to expect
    double log_rate;                //  log mode: events/s per attempt, one line each (0 = as fast
                                    //  as the window allows, lines_per_event lines each)
    bool log_stop;                  //  log mode: told to stop sending (STOPLOGS)

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
//  HTTP clients (qn_bench_httpc.c)

typedef struct _bench_http_t bench_http_t;
typedef struct _bench_followers_t bench_followers_t;
typedef struct _bench_receiver_t bench_receiver_t;

typedef struct {
    size_t requests;                //  after the warm-up
    size_t errors;                  //  not 200, or a broken connection
    double rate;                    //  requests/s
    double p50_ms, p99_ms;
} bench_load_t;

typedef struct {
    uint64_t run_id;                //  the run it follows
    int status;                     //  of the response head
    uint64_t lines;                 //  line events taken (each seq once)
    uint64_t last_seq;              //  the last line's seq (its event id)
    uint64_t missing;               //  seqs skipped over
    uint64_t repeated;              //  line events at or below the last seq
    uint64_t bytes;                 //  event-stream bytes
    bool ended;                     //  the end event came
    bool failed;                    //  an error event came
} bench_follower_t;

bench_http_t *
    bench_http_connect (const char *source, uint16_t port);
void
    bench_http_destroy (bench_http_t **self_p);
int
    bench_http_fd (bench_http_t *self);
int
    bench_http_send_get (bench_http_t *self, const char *path, const char *bearer);
int
    bench_http_read_response (bench_http_t *self, const char **body_p, size_t *size_p);
int
    bench_http_get (bench_http_t *self, const char *path, const char *bearer,
                    const char **body_p, size_t *size_p);
double
    bench_http_percentile (int64_t *latencies, size_t count, double q);
int
    bench_http_load (uint16_t port, size_t conns, double seconds, uint64_t first_id,
                     uint64_t last_id, bench_load_t *result);
bench_followers_t *
    bench_followers_start (uint16_t port, const uint64_t *run_ids, size_t runs, size_t count,
                           size_t per_source, bench_follower_t *results);
size_t
    bench_followers_connected (bench_followers_t *self);
size_t
    bench_followers_ended (bench_followers_t *self);
void
    bench_followers_destroy (bench_followers_t **self_p);

//  ---------------------------------------------------------------------
//  Figures (qn_bench_control.c, qn_bench_real.c, qn_bench_http.c)

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
bool
    bench_submit_and_finish (qn_client_t *client, zactor_t *actor, const char *name, size_t runs,
                             uint64_t *first_id_p, uint64_t *last_id_p);
void
    bench_figure_i (void);
void
    bench_figure_j (void);
void
    bench_figure_k (void);
void
    bench_figure_l (void);
void
    bench_figure_m (void);

//  (m) A webhook receiver on its own thread that answers every request
//  at once; NULL when it cannot listen
bench_receiver_t *
    bench_receiver_new (void);
void
    bench_receiver_destroy (bench_receiver_t **self_p);
uint16_t
    bench_receiver_port (bench_receiver_t *self);
//  Requests answered so far
unsigned long
    bench_receiver_requests (bench_receiver_t *self);

#endif
