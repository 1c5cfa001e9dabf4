/*  qn_s3gc - deletes objects from S3 buckets off the coordinator's loop.
    See qn_s3gc.h.

    A request belongs to exactly one side at a time: the loop builds it
    and puts it on the todo list; the worker takes it off, runs it, and
    puts it on the finished list, then writes a byte to a pipe the loop
    polls; the loop takes it off and reports it.  Both lists are guarded
    by one mutex, which is never held while an S3 request runs or a
    callback is called.  The S3 clients belong to the worker alone (and
    to destroy, once the worker has been joined).
*/
#include "qn_s3gc.h"
#include "qn_s3.h"
#include <pthread.h>
#include <signal.h>

typedef struct _s_request_t s_request_t;
struct _s_request_t {
    s_request_t *next;
    char *id;
    char *bucket;
    char *endpoint;                     //  "" = from the environment, else AWS
    char *region;                       //  "" = from the environment
    bool path_style;
    char *key;
    int status;                         //  set by the worker
    char *error;                        //  set by the worker on failure; NULL = out of memory
};

typedef struct {
    s_request_t *head;
    s_request_t *tail;
} s_list_t;

//  One client per store met; the worker's own
typedef struct {
    qn_s3_t *s3;
    char *bucket;
    char *endpoint;
    char *region;
    bool path_style;
    uint64_t used;                      //  the worker's tick when last used
} s_client_t;

struct _qn_s3gc_t {
    zloop_t *loop;
    qn_s3gc_done_fn *done;
    void *arg;
    int pipe [2];                       //  the worker writes a byte per finished request
    bool polling;                       //  pipe [0] is in the loop
    pthread_mutex_t mutex;
    pthread_cond_t cond;                //  todo has work, or stop
    bool sync_ready;                    //  mutex and cond initialised
    pthread_t thread;
    bool thread_running;
    //  Under the mutex
    s_list_t todo;
    s_list_t finished;
    bool stop;
    //  The loop's
    size_t pending;
    bool dispatching;                   //  inside s_on_finished
    bool destroyed;                     //  destroy was called from a callback
    //  The worker's
    s_client_t clients [QN_S3GC_CLIENTS_MAX];
    uint64_t tick;
};

static void
s_request_destroy (s_request_t **request_p)
{
    s_request_t *request = *request_p;
    if (!request)
        return;
    free (request->id);
    free (request->bucket);
    free (request->endpoint);
    free (request->region);
    free (request->key);
    free (request->error);
    free (request);
    *request_p = NULL;
}

static void
s_list_push (s_list_t *list, s_request_t *request)
{
    request->next = NULL;
    if (list->tail)
        list->tail->next = request;
    else
        list->head = request;
    list->tail = request;
}

static s_request_t *
s_list_pop (s_list_t *list)
{
    s_request_t *request = list->head;
    if (request) {
        list->head = request->next;
        if (!list->head)
            list->tail = NULL;
        request->next = NULL;
    }
    return request;
}

static void
s_list_clear (s_list_t *list)
{
    s_request_t *request;
    while ((request = s_list_pop (list)))
        s_request_destroy (&request);
}

static void
s_client_clear (s_client_t *client)
{
    qn_s3_destroy (&client->s3);
    free (client->bucket);
    free (client->endpoint);
    free (client->region);
    memset (client, 0, sizeof (*client));
}

//  ---------------------------------------------------------------------
//  The worker thread

//  The client for the request's store: a cached one, else a new one that
//  takes a free slot or the least recently used one.  NULL with the
//  reason in request->error when qn_s3 cannot make one (no credentials,
//  a bucket name S3 refuses, ...); not cached then, so credentials that
//  appear later are found.
static qn_s3_t *
s_client_for (qn_s3gc_t *self, s_request_t *request)
{
    self->tick++;
    s_client_t *slot = &self->clients [0];
    for (size_t i = 0; i < QN_S3GC_CLIENTS_MAX; i++) {
        s_client_t *client = &self->clients [i];
        if (client->s3
        &&  streq (client->bucket, request->bucket)
        &&  streq (client->endpoint, request->endpoint)
        &&  streq (client->region, request->region)
        &&  client->path_style == request->path_style) {
            client->used = self->tick;
            return client->s3;
        }
        if (slot->s3 && (!client->s3 || client->used < slot->used))
            slot = client;
    }
    qn_s3_config_t config;
    memset (&config, 0, sizeof config);
    config.bucket = request->bucket;
    config.endpoint = *request->endpoint? request->endpoint: NULL;
    config.region = *request->region? request->region: NULL;
    config.path_style = request->path_style;
    config.timeout_s = QN_S3GC_TIMEOUT_S;
    char *error = NULL;
    qn_s3_t *s3 = qn_s3_new (&config, &error);
    if (!s3) {
        request->error = error? error: strdup ("s3: cannot create the client");
        return NULL;
    }
    free (error);
    s_client_clear (slot);
    slot->bucket = strdup (request->bucket);
    slot->endpoint = strdup (request->endpoint);
    slot->region = strdup (request->region);
    if (!slot->bucket || !slot->endpoint || !slot->region) {
        //  Used once, not kept
        s_client_clear (slot);
        return s3;
    }
    slot->s3 = s3;
    slot->path_style = request->path_style;
    slot->used = self->tick;
    return s3;
}

static void
s_execute (qn_s3gc_t *self, s_request_t *request)
{
    request->status = -1;
    qn_s3_t *s3 = s_client_for (self, request);
    if (!s3)
        return;
    char error [1536] = "";
    if (qn_s3_delete (s3, request->key, error, sizeof error) == 0)
        request->status = 0;
    else
        request->error = strdup (*error? error: "s3: the delete failed");
    //  A client not kept (out of memory above) goes now
    bool kept = false;
    for (size_t i = 0; i < QN_S3GC_CLIENTS_MAX && !kept; i++)
        kept = self->clients [i].s3 == s3;
    if (!kept)
        qn_s3_destroy (&s3);
}

static void *
s_worker (void *arg)
{
    qn_s3gc_t *self = (qn_s3gc_t *) arg;
    pthread_mutex_lock (&self->mutex);
    while (true) {
        while (!self->stop && !self->todo.head)
            pthread_cond_wait (&self->cond, &self->mutex);
        if (self->stop)
            break;
        s_request_t *request = s_list_pop (&self->todo);
        pthread_mutex_unlock (&self->mutex);

        s_execute (self, request);

        pthread_mutex_lock (&self->mutex);
        s_list_push (&self->finished, request);
        //  Non-blocking: a full pipe already wakes the loop
        ssize_t rc;
        do
            rc = write (self->pipe [1], "x", 1);
        while (rc == -1 && errno == EINTR);
    }
    pthread_mutex_unlock (&self->mutex);
    return NULL;
}

//  ---------------------------------------------------------------------
//  The loop's side

static void s_destroy (qn_s3gc_t *self);

//  Reports the finished requests, in order, one at a time so that a
//  callback may queue more or destroy the instance.
static int
s_on_finished (zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    (void) loop;
    (void) item;
    qn_s3gc_t *self = (qn_s3gc_t *) arg;
    char bytes [256];
    while (read (self->pipe [0], bytes, sizeof bytes) > 0)
        ;
    self->dispatching = true;
    while (!self->destroyed) {
        pthread_mutex_lock (&self->mutex);
        s_request_t *request = s_list_pop (&self->finished);
        pthread_mutex_unlock (&self->mutex);
        if (!request)
            break;
        assert (self->pending > 0);
        self->pending--;
        const char *error = request->status == 0? NULL
                          : request->error? request->error: "out of memory";
        self->done (self->arg, request->id, request->status, error);
        s_request_destroy (&request);
    }
    self->dispatching = false;
    if (self->destroyed)
        s_destroy (self);
    return 0;
}

qn_s3gc_t *
qn_s3gc_new (zloop_t *loop, qn_s3gc_done_fn *done, void *arg)
{
    assert (loop);
    assert (done);
    qn_s3gc_t *self = (qn_s3gc_t *) zmalloc (sizeof (qn_s3gc_t));
    if (!self)
        return NULL;
    self->loop = loop;
    self->done = done;
    self->arg = arg;
    self->pipe [0] = self->pipe [1] = -1;
    if (pthread_mutex_init (&self->mutex, NULL) != 0) {
        free (self);
        return NULL;
    }
    if (pthread_cond_init (&self->cond, NULL) != 0) {
        pthread_mutex_destroy (&self->mutex);
        free (self);
        return NULL;
    }
    self->sync_ready = true;
    if (pipe2 (self->pipe, O_CLOEXEC | O_NONBLOCK) == -1) {
        self->pipe [0] = self->pipe [1] = -1;
        qn_s3gc_destroy (&self);
        return NULL;
    }
    zmq_pollitem_t item = { NULL, self->pipe [0], ZMQ_POLLIN, 0 };
    if (zloop_poller (loop, &item, s_on_finished, self) == -1) {
        qn_s3gc_destroy (&self);
        return NULL;
    }
    self->polling = true;
    //  The worker blocks every signal, so SIGINT and SIGTERM reach the
    //  loop's thread and wake its poll
    sigset_t all, old;
    sigfillset (&all);
    pthread_sigmask (SIG_SETMASK, &all, &old);
    int rc = pthread_create (&self->thread, NULL, s_worker, self);
    pthread_sigmask (SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        qn_s3gc_destroy (&self);
        return NULL;
    }
    self->thread_running = true;
    return self;
}

static void
s_destroy (qn_s3gc_t *self)
{
    if (self->thread_running) {
        pthread_mutex_lock (&self->mutex);
        self->stop = true;
        pthread_cond_signal (&self->cond);
        pthread_mutex_unlock (&self->mutex);
        pthread_join (self->thread, NULL);
        self->thread_running = false;
    }
    s_list_clear (&self->todo);
    s_list_clear (&self->finished);
    for (size_t i = 0; i < QN_S3GC_CLIENTS_MAX; i++)
        s_client_clear (&self->clients [i]);
    if (self->polling)
        zloop_poller_end (self->loop, &(zmq_pollitem_t) { NULL, self->pipe [0], ZMQ_POLLIN, 0 });
    if (self->pipe [0] >= 0) {
        close (self->pipe [0]);
        close (self->pipe [1]);
    }
    if (self->sync_ready) {
        pthread_cond_destroy (&self->cond);
        pthread_mutex_destroy (&self->mutex);
    }
    free (self);
}

void
qn_s3gc_destroy (qn_s3gc_t **self_p)
{
    assert (self_p);
    qn_s3gc_t *self = *self_p;
    if (!self)
        return;
    *self_p = NULL;
    //  From a callback: s_on_finished still holds self, and ends it
    if (self->dispatching)
        self->destroyed = true;
    else
        s_destroy (self);
}

//  A copy of text, "" for NULL
static char *
s_copy (const char *text)
{
    return strdup (text? text: "");
}

int
qn_s3gc_delete (qn_s3gc_t *self, const char *id, const Qanat__ArtifactStore *store,
                const char *key)
{
    assert (self);
    char error [256];
    if (!id || !store || !store->kind || !streq (store->kind, "s3")
    ||  !store->bucket || !*store->bucket
    ||  qn_s3_key_check (key, error, sizeof error) != 0) {
        errno = EINVAL;
        return -1;
    }
    if (self->destroyed || self->pending >= QN_S3GC_QUEUE_MAX) {
        errno = EAGAIN;
        return -1;
    }
    s_request_t *request = (s_request_t *) calloc (1, sizeof (s_request_t));
    if (request) {
        request->id = s_copy (id);
        request->bucket = s_copy (store->bucket);
        request->endpoint = s_copy (store->endpoint);
        request->region = s_copy (store->region);
        request->path_style = store->path_style;
        request->key = s_copy (key);
    }
    if (!request || !request->id || !request->bucket || !request->endpoint
    ||  !request->region || !request->key) {
        s_request_destroy (&request);
        errno = ENOMEM;
        return -1;
    }
    pthread_mutex_lock (&self->mutex);
    s_list_push (&self->todo, request);
    pthread_cond_signal (&self->cond);
    pthread_mutex_unlock (&self->mutex);
    self->pending++;
    return 0;
}

size_t
qn_s3gc_pending (qn_s3gc_t *self)
{
    assert (self);
    return self->pending;
}
