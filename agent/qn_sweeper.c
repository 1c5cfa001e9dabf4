/*  qn_sweeper - removes directory trees on a thread of its own.  See
    qn_sweeper.h.
*/
#include "qn_sweeper.h"
#include "qn_fs.h"
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

//  ioprio_set(2) values; glibc has no header for them
#define S_IOPRIO_WHO_PROCESS   1
#define S_IOPRIO_CLASS_IDLE    3
#define S_IOPRIO_CLASS_SHIFT   13

typedef struct _s_path_t s_path_t;
struct _s_path_t {
    s_path_t *next;
    char path [];
};

struct _qn_sweeper_t {
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    pthread_t thread;
    s_path_t *head;                     //  under the mutex
    s_path_t *tail;
    size_t pending;                     //  queued + being removed
    bool stop;
};

static void *
s_run (void *arg)
{
    qn_sweeper_t *self = (qn_sweeper_t *) arg;
    //  Cleaning up waits for idle time: on a busy machine, CPU and disk go
    //  to the tasks and their dispatch first (best effort: ignored when
    //  refused)
    struct sched_param param = { 0 };
    pthread_setschedparam (pthread_self (), SCHED_IDLE, &param);
    syscall (SYS_ioprio_set, S_IOPRIO_WHO_PROCESS, (int) syscall (SYS_gettid),
             S_IOPRIO_CLASS_IDLE << S_IOPRIO_CLASS_SHIFT);
    pthread_mutex_lock (&self->mutex);
    while (true) {
        while (!self->head && !self->stop)
            pthread_cond_wait (&self->cond, &self->mutex);
        s_path_t *item = self->head;
        if (!item)
            break;              //  stopping, and nothing left
        self->head = item->next;
        if (!self->head)
            self->tail = NULL;
        pthread_mutex_unlock (&self->mutex);
        qn_fs_remove_tree (item->path);
        free (item);
        pthread_mutex_lock (&self->mutex);
        self->pending--;
    }
    pthread_mutex_unlock (&self->mutex);
    return NULL;
}

qn_sweeper_t *
qn_sweeper_new (void)
{
    qn_sweeper_t *self = (qn_sweeper_t *) calloc (1, sizeof (qn_sweeper_t));
    if (!self)
        return NULL;
    pthread_mutex_init (&self->mutex, NULL);
    pthread_cond_init (&self->cond, NULL);
    //  Signals stay with the agent's loop thread
    sigset_t all, saved;
    sigfillset (&all);
    pthread_sigmask (SIG_SETMASK, &all, &saved);
    int rc = pthread_create (&self->thread, NULL, s_run, self);
    pthread_sigmask (SIG_SETMASK, &saved, NULL);
    if (rc != 0) {
        pthread_cond_destroy (&self->cond);
        pthread_mutex_destroy (&self->mutex);
        free (self);
        return NULL;
    }
    return self;
}

void
qn_sweeper_destroy (qn_sweeper_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    qn_sweeper_t *self = *self_p;
    pthread_mutex_lock (&self->mutex);
    self->stop = true;
    pthread_cond_signal (&self->cond);
    pthread_mutex_unlock (&self->mutex);
    pthread_join (self->thread, NULL);
    pthread_cond_destroy (&self->cond);
    pthread_mutex_destroy (&self->mutex);
    free (self);
    *self_p = NULL;
}

int
qn_sweeper_remove (qn_sweeper_t *self, const char *path)
{
    size_t size = strlen (path) + 1;
    s_path_t *item = (s_path_t *) malloc (sizeof (s_path_t) + size);
    if (!self || !item) {
        free (item);
        qn_fs_remove_tree (path);
        return -1;
    }
    memcpy (item->path, path, size);
    item->next = NULL;
    pthread_mutex_lock (&self->mutex);
    if (self->tail)
        self->tail->next = item;
    else
        self->head = item;
    self->tail = item;
    self->pending++;
    pthread_cond_signal (&self->cond);
    pthread_mutex_unlock (&self->mutex);
    return 0;
}

size_t
qn_sweeper_pending (qn_sweeper_t *self)
{
    pthread_mutex_lock (&self->mutex);
    size_t pending = self->pending;
    pthread_mutex_unlock (&self->mutex);
    return pending;
}
