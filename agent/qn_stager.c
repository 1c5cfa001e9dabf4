/*  qn_stager - moves an attempt's artifacts in and out of the agent.  See
    qn_stager.h.

    Jobs are found by their attempt's key, never by pointer, from the
    transfer callbacks: a job may be forgotten (the attempt canceled)
    while its blobs are still on the way, and those blobs then simply land
    in the cache.  Each hash is fetched or sent once however many jobs
    wait for it.
*/
#include "qn_stager.h"
#include "qn_fs.h"
#include "qn_tree.h"
#include "qn_log.h"
#include "qn_s3.h"
#include <pthread.h>

typedef struct _job_t job_t;

//  A cached blob staging could not use (see qn_tree_damage_fn)
typedef struct {
    char hash [QN_BLOB_HASH_HEX + 1];
    uint64_t size;
    bool missing;
    struct stat seen;
} s_damage_t;

//  Rounds of fetching again and staging once more before a blob that
//  keeps changing in the cache fails the attempt
#define S_RESTAGES_MAX 2

#define QN_STAGER_LOCATION_MAX 2048

//  One declared output, scanned on the worker thread
typedef struct {
    Qanat__OutputSpec *spec;
    qn_tree_t *tree;
    char hash [QN_BLOB_HASH_HEX + 1];   //  the file's, or the manifest's
    uint64_t size;                      //  the file's, or the manifest's bytes
    char *value;
    char *location;                     //  s3://bucket/key when the store is S3
    bool found_in_bucket;               //  an object of it was there already (no PUT)
} s_output_t;

struct _job_t {
    qn_stager_t *owner;
    char name [64];                     //  "run/task/attempt"
    qn_attempt_key_t key;
    bool collecting;                    //  else staging inputs
    void *arg;
    char *error;                        //  the first failure
    //  Staging
    Qanat__Assign *assign;              //  a copy: inputs and outputs
    qn_tree_t **trees;                  //  per input, once its manifest is known
    qn_stager_ready_fn *ready;
    s_damage_t *damage;                 //  found by the worker, handled on the loop
    size_t damage_count;
    unsigned restages;
    //  Collecting
    char *workdir;
    s_output_t *outputs;
    size_t output_count;
    qn_stager_collected_fn *collected;
    pthread_t thread;
    bool thread_running;
    int pipe [2];                       //  the worker writes one byte when done
    void (*after) (job_t *job);         //  then this runs on the loop
    //  Either
    size_t waiting;                     //  blobs still on the way
    bool s3;                            //  the workflow's store is S3: the worker
                                        //  thread moves the bytes itself
    char *stage;                        //  staging: the stage directory
    char location [QN_STAGER_LOCATION_MAX];   //  outputs: s3://bucket/prefix
};

struct _qn_stager_t {
    zloop_t *loop;
    qn_transfer_t *transfer;
    qn_blobstore_t *cache;
    char *stage_root;
    char *values_root;
    zhashx_t *jobs;                     //  name -> job_t
    zhashx_t *downloads;                //  hash -> zlistx of job names waiting
    zhashx_t *uploads;                  //  hash -> zlistx of job names waiting
    uint64_t damaged;                   //  damaged cache entries removed
};

static void s_job_destroy (job_t **job_p);

static void
s_key_name (const qn_attempt_key_t *key, char *name, size_t size)
{
    snprintf (name, size, "%" PRIu64 "-%u-%u", key->run_id, key->task_index, key->attempt);
}

//  The tables own their items but have no destructors: an item leaves
//  its table before a callback that might look for it, and is destroyed
//  after.
static void
s_forget_job (qn_stager_t *self, job_t *job)
{
    zhashx_delete (self->jobs, job->name);
    s_job_destroy (&job);
}

qn_stager_t *
qn_stager_new (zloop_t *loop, qn_transfer_t *transfer, qn_blobstore_t *cache, const char *data_dir)
{
    assert (loop);
    assert (transfer);
    assert (cache);
    qn_stager_t *self = (qn_stager_t *) zmalloc (sizeof (qn_stager_t));
    self->loop = loop;
    self->transfer = transfer;
    self->cache = cache;
    self->stage_root = zsys_sprintf ("%s/stage", data_dir);
    self->values_root = zsys_sprintf ("%s/values", data_dir);
    self->jobs = zhashx_new ();
    self->downloads = zhashx_new ();
    self->uploads = zhashx_new ();
    if (!self->stage_root || !self->values_root || !self->jobs || !self->downloads
    ||  !self->uploads
    ||  (mkdir (self->stage_root, 0700) == -1 && errno != EEXIST)
    ||  (mkdir (self->values_root, 0700) == -1 && errno != EEXIST)) {
        qn_stager_destroy (&self);
        return NULL;
    }
    return self;
}

void
qn_stager_destroy (qn_stager_t **self_p)
{
    assert (self_p);
    qn_stager_t *self = *self_p;
    if (!self)
        return;
    for (job_t *job = self->jobs? (job_t *) zhashx_first (self->jobs): NULL; job;
         job = (job_t *) zhashx_next (self->jobs))
        s_job_destroy (&job);
    zhashx_t *tables [] = { self->downloads, self->uploads };
    for (int t = 0; t < 2; t++)
        for (zlistx_t *list = tables [t]? (zlistx_t *) zhashx_first (tables [t]): NULL; list;
             list = (zlistx_t *) zhashx_next (tables [t]))
            zlistx_destroy (&list);
    zhashx_destroy (&self->jobs);
    zhashx_destroy (&self->downloads);
    zhashx_destroy (&self->uploads);
    zstr_free (&self->stage_root);
    zstr_free (&self->values_root);
    free (self);
    *self_p = NULL;
}

void
qn_stager_paths (qn_stager_t *self, const qn_attempt_key_t *key, const char *stage_root,
                 char *stage, size_t stage_size, char *values, size_t values_size)
{
    char name [64];
    s_key_name (key, name, sizeof name);
    if (stage)
        snprintf (stage, stage_size, "%s/%s", stage_root? stage_root: self->stage_root, name);
    if (values)
        snprintf (values, values_size, "%s/%s", self->values_root, name);
}

static void
s_job_destroy (job_t **job_p)
{
    job_t *job = *job_p;
    if (!job)
        return;
    if (job->thread_running)
        pthread_join (job->thread, NULL);
    if (job->pipe [0] > 0) {
        zloop_poller_end (job->owner->loop, &(zmq_pollitem_t) { NULL, job->pipe [0], ZMQ_POLLIN, 0 });
        close (job->pipe [0]);
        close (job->pipe [1]);
    }
    for (size_t i = 0; job->trees && job->assign && i < job->assign->n_inputs; i++)
        qn_tree_destroy (&job->trees [i]);
    free (job->trees);
    free (job->damage);
    for (size_t i = 0; i < job->output_count; i++) {
        qn_tree_destroy (&job->outputs [i].tree);
        free (job->outputs [i].value);
        free (job->outputs [i].location);
    }
    free (job->outputs);
    if (job->assign)
        qanat__assign__free_unpacked (job->assign, NULL);
    free (job->workdir);
    free (job->stage);
    free (job->error);
    free (job);
    *job_p = NULL;
}

static job_t *
s_job_new (qn_stager_t *self, const qn_attempt_key_t *key, const Qanat__Assign *assign, void *arg)
{
    job_t *job = (job_t *) zmalloc (sizeof (job_t));
    job->owner = self;
    job->key = *key;
    job->arg = arg;
    job->pipe [0] = job->pipe [1] = -1;
    s_key_name (key, job->name, sizeof job->name);
    job->assign = qn_backend_assign_copy (assign);
    if (!job->assign) {
        free (job);
        return NULL;
    }
    job_t *old = (job_t *) zhashx_lookup (self->jobs, job->name);
    if (old)
        s_forget_job (self, old);
    zhashx_insert (self->jobs, job->name, job);
    return job;
}

static void
s_fail (job_t *job, const char *format, ...)
{
    if (job->error)
        return;
    va_list args;
    va_start (args, format);
    job->error = zsys_vprintf (format, args);
    va_end (args);
}

//  Adds name to the waiters of hash in table; true if it is the first
//  (the caller then starts the transfer).
static bool
s_wait_for (zhashx_t *table, const char *hash, const char *name)
{
    zlistx_t *waiters = (zlistx_t *) zhashx_lookup (table, hash);
    bool first = waiters == NULL;
    if (!waiters) {
        waiters = zlistx_new ();
        zlistx_set_destructor (waiters, (zlistx_destructor_fn *) zstr_free);
        zhashx_insert (table, hash, waiters);
    }
    zlistx_add_end (waiters, strdup (name));
    return first;
}

//  ---------------------------------------------------------------------
//  Inputs

static void s_downloaded (void *arg, const char *hash, int status, const char *error);

//  A damaged cache entry: never fatal, it goes and is fetched again
static void
s_damaged (qn_stager_t *self, const char *hash, const char *why)
{
    self->damaged++;
    qn_log (QN_LOG_WARNING, "stager", "blob cache: blob %s was damaged (%s): removed, fetching "
            "it again", hash, why);
}

static void
s_fetch (job_t *job, const char *hash, uint64_t size)
{
    qn_stager_t *self = job->owner;
    //  Appended to, truncated, replaced by a symlink: seen without reading
    if (qn_blobstore_drop_misfit (self->cache, hash, size) == 1)
        s_damaged (self, hash, "not a file of its size");
    job->waiting++;
    if (s_wait_for (self->downloads, hash, job->name)
    &&  qn_transfer_download (self->transfer, hash, size, s_downloaded, self) == -1)
        s_downloaded (self, hash, -1, "invalid blob hash");
}

static int s_start_worker (job_t *job, void *(*worker) (void *));
static void s_stage_report (job_t *job);
static void s_stage_checked (job_t *job);

//  A qn_tree_damage_fn, on the worker thread: kept for the loop
static void
s_on_damage (void *arg, const char *hash, uint64_t size, const struct stat *seen)
{
    job_t *job = (job_t *) arg;
    s_damage_t *grown = (s_damage_t *) realloc (job->damage,
                                                (job->damage_count + 1) * sizeof (s_damage_t));
    if (!grown) {
        s_fail (job, "out of memory");
        return;
    }
    job->damage = grown;
    s_damage_t *damage = &job->damage [job->damage_count++];
    memset (damage, 0, sizeof *damage);
    snprintf (damage->hash, sizeof damage->hash, "%s", hash);
    damage->size = size;
    damage->missing = seen == NULL;
    if (seen)
        damage->seen = *seen;
}

//  Stages every input fetched from the coordinator (the S3 worker placed
//  its own): a copy of each cached blob, the task's own (qn_tree_stage).
//  Runs on a worker thread: it reads the job's trees and assign, which
//  the loop leaves alone until the thread is joined, and the cache's
//  complete blobs, which the loop may drop meanwhile (another job found
//  one damaged): a blob gone is reported missing, and fetched again.
static void *
s_stage_worker (void *arg)
{
    job_t *job = (job_t *) arg;
    for (size_t i = 0; !job->error && i < job->assign->n_inputs; i++) {
        Qanat__InputSpec *input = job->assign->inputs [i];
        if (input->kind == QANAT__ARTIFACT_KIND__ARTIFACT_VALUE
        ||  (input->location && *input->location))
            continue;
        char *error = NULL;
        if (qn_tree_stage (job->trees [i], job->owner->cache, job->stage, input->path,
                           s_on_damage, job, &error) == -1)
            s_fail (job, "input '%s': %s", input->name, error? error: "cannot stage");
        free (error);
    }
    ssize_t rc = write (job->pipe [1], "x", 1);
    (void) rc;
    return NULL;
}

//  All blobs are here: mark them used (so that the cache's bound spares
//  them), stage them on a worker thread, then report.
static void
s_stage_finish (job_t *job)
{
    qn_stager_t *self = job->owner;
    for (size_t i = 0; !job->error && i < job->assign->n_inputs; i++) {
        Qanat__InputSpec *input = job->assign->inputs [i];
        if (input->kind == QANAT__ARTIFACT_KIND__ARTIFACT_VALUE
        ||  (input->location && *input->location))
            continue;
        qn_blobstore_touch (self->cache, input->hash);
        for (size_t e = 0; e < qn_tree_count (job->trees [i]); e++)
            qn_blobstore_touch (self->cache, qn_tree_entry (job->trees [i], e)->hash);
    }
    job->after = s_stage_checked;
    if (!job->error && s_start_worker (job, s_stage_worker) == 0)
        return;
    s_fail (job, "cannot start staging the inputs");
    s_stage_report (job);
}

//  Staged: blobs found damaged in the cache are removed (if still the
//  file seen), counted and fetched again, then everything is staged once
//  more; else the report.
static void
s_stage_checked (job_t *job)
{
    qn_stager_t *self = job->owner;
    if (job->error || job->damage_count == 0) {
        s_stage_report (job);
        return;
    }
    if (job->restages++ >= S_RESTAGES_MAX) {
        s_fail (job, "input blob %s keeps changing in the agent's cache", job->damage [0].hash);
        s_stage_report (job);
        return;
    }
    s_damage_t *damage = job->damage;
    size_t count = job->damage_count;
    job->damage = NULL;
    job->damage_count = 0;
    job->waiting = 1;           //  a cached blob must not finish the job early
    for (size_t i = 0; i < count; i++) {
        if (!damage [i].missing && qn_blobstore_drop (self->cache, damage [i].hash,
                                                      &damage [i].seen) == 0)
            s_damaged (self, damage [i].hash, "its bytes are not its SHA-256");
        s_fetch (job, damage [i].hash, damage [i].size);
    }
    free (damage);
    if (--job->waiting == 0)
        s_stage_finish (job);
}

//  Staged (or failed): the inputs' environment, and the callback.
static void
s_stage_report (job_t *job)
{
    qn_stager_t *self = job->owner;
    Qanat__Assign *assign = job->assign;
    Qanat__Label **env = (Qanat__Label **) calloc (assign->n_inputs + 1, sizeof (void *));
    Qanat__Label *labels = (Qanat__Label *) calloc (assign->n_inputs + 1, sizeof (Qanat__Label));
    char **texts = (char **) calloc (2 * assign->n_inputs + 1, sizeof (char *));
    size_t count = 0;
    for (size_t i = 0; !job->error && env && labels && texts && i < assign->n_inputs; i++) {
        Qanat__InputSpec *input = assign->inputs [i];
        if (streq (input->path, "."))
            continue;           //  the code: it is the working directory
        char *variable = zsys_sprintf ("QANAT_INPUT_%s", input->name);
        for (char *c = variable; *c; c++)
            *c = isalnum ((unsigned char) *c)? (char) toupper ((unsigned char) *c): '_';
        qanat__label__init (&labels [count]);
        labels [count].key = texts [2 * count] = variable;
        if (input->kind == QANAT__ARTIFACT_KIND__ARTIFACT_VALUE)
            labels [count].value = texts [2 * count + 1] = strdup (input->value? input->value: "");
        else
            labels [count].value = texts [2 * count + 1] = strdup (input->path);
        env [count] = &labels [count];
        count++;
    }
    if (!env || !labels || !texts)
        s_fail (job, "out of memory");
    qn_stager_ready_fn *ready = job->ready;
    void *arg = job->arg;
    qn_attempt_key_t key = job->key;
    char *error = job->error? strdup (job->error): NULL;
    //  The job leaves before the callback, which may forget or start anew
    zhashx_delete (self->jobs, job->name);
    ready (arg, &key, error? -1: 0, error, env, error? 0: count);
    s_job_destroy (&job);
    for (size_t i = 0; texts && i < 2 * count; i++)
        free (texts [i]);
    free (texts);
    free (labels);
    free (env);
    free (error);
}

//  A directory input's manifest arrived: fetch every file it lists
static void
s_manifest_arrived (job_t *job, size_t index)
{
    Qanat__InputSpec *input = job->assign->inputs [index];
    char *error = NULL;
    job->trees [index] = qn_tree_load_manifest (job->owner->cache, input->hash, input->size,
                                                &error);
    if (!job->trees [index]) {
        s_fail (job, "input '%s': bad manifest: %s", input->name, error? error: "unreadable");
        free (error);
        return;
    }
    for (size_t e = 0; e < qn_tree_count (job->trees [index]); e++) {
        const qn_tree_entry_t *entry = qn_tree_entry (job->trees [index], e);
        s_fetch (job, entry->hash, entry->size);
    }
}

static void
s_downloaded (void *arg, const char *hash, int status, const char *error)
{
    qn_stager_t *self = (qn_stager_t *) arg;
    zlistx_t *waiters = (zlistx_t *) zhashx_lookup (self->downloads, hash);
    if (!waiters)
        return;
    zhashx_delete (self->downloads, hash);          //  the list is ours now
    for (char *name = (char *) zlistx_first (waiters); name;
         name = (char *) zlistx_next (waiters)) {
        job_t *job = (job_t *) zhashx_lookup (self->jobs, name);
        if (!job || job->collecting)
            continue;
        job->waiting--;
        if (status != 0)
            s_fail (job, "input blob %.12s: %s", hash, error? error: "download failed");
        else {
            //  Held while the manifest's files are asked for: a file
            //  already cached answers at once, and must not finish the
            //  job under us (it would be staged twice, at once)
            job->waiting++;
            for (size_t i = 0; i < job->assign->n_inputs; i++)
                if (job->assign->inputs [i]->kind == QANAT__ARTIFACT_KIND__ARTIFACT_DIR
                &&  !job->trees [i] && streq (job->assign->inputs [i]->hash, hash))
                    s_manifest_arrived (job, i);
            job->waiting--;
        }
        if (job->waiting == 0)
            s_stage_finish (job);
    }
    zlistx_destroy (&waiters);
}

static int s_fetch_all (job_t *job);
static int s_start_worker (job_t *job, void *(*worker) (void *));
static void *s_s3_fetch_worker (void *arg);

int
qn_stager_inputs (qn_stager_t *self, const qn_attempt_key_t *key, const Qanat__Assign *assign,
                  const char *stage_root, qn_stager_ready_fn *ready, void *arg)
{
    assert (self);
    job_t *job = s_job_new (self, key, assign, arg);
    if (!job)
        return -1;
    job->ready = ready;
    job->trees = (qn_tree_t **) calloc (assign->n_inputs + 1, sizeof (qn_tree_t *));
    char stage [4096];
    qn_stager_paths (self, key, stage_root, stage, sizeof stage, NULL, 0);
    job->stage = strdup (stage);
    if (!job->trees || !job->stage) {
        s_forget_job (self, job);
        return -1;
    }
    qn_fs_remove_tree (stage);
    if (stage_root && qn_fs_mkdirs (stage_root, 0700) == -1)
        s_fail (job, "cannot create %s: %s", stage_root, strerror (errno));
    if (mkdir (stage, 0700) == -1)
        s_fail (job, "cannot create %s: %s", stage, strerror (errno));
    for (size_t i = 0; i < job->assign->n_inputs; i++)
        if (job->assign->inputs [i]->location && *job->assign->inputs [i]->location)
            job->s3 = true;
    if (job->s3 && !job->error) {
        //  S3 inputs first, on a worker thread; then the rest
        if (s_start_worker (job, s_s3_fetch_worker) == -1)
            s_fail (job, "cannot start the S3 download");
        else
            return 0;
    }
    return s_fetch_all (job);
}

//  Asks for every input blob from the coordinator (those not in S3),
//  and finishes the job when none is outstanding.
static int
s_fetch_all (job_t *job)
{
    qn_stager_t *self = job->owner;
    //  Everything to fetch first, so that a blob already cached does not
    //  finish the job before the others are asked for
    job->waiting = 1;
    for (size_t i = 0; i < job->assign->n_inputs && !job->error; i++) {
        Qanat__InputSpec *input = job->assign->inputs [i];
        if (input->kind == QANAT__ARTIFACT_KIND__ARTIFACT_VALUE)
            continue;
        if (input->location && *input->location)
            continue;           //  fetched by the S3 worker
        char *error = NULL;
        //  The workflow's code is a directory staged at "." itself
        bool code = input->kind == QANAT__ARTIFACT_KIND__ARTIFACT_DIR
                 && streq (input->path, ".");
        if (!qn_blobstore_valid_hash (input->hash)
        ||  (!code && qn_tree_check_path (input->path, &error) == -1)) {
            s_fail (job, "input '%s': %s", input->name, error? error: "invalid hash");
            free (error);
            break;
        }
        if (input->kind == QANAT__ARTIFACT_KIND__ARTIFACT_FILE) {
            job->trees [i] = qn_tree_for_file (input->hash, input->size);
            if (!job->trees [i]) {
                s_fail (job, "input '%s': bad size or hash", input->name);
                break;
            }
        }
        s_fetch (job, input->hash, input->size);
    }
    //  The job may have been finished by a cached blob's callback: look
    //  it up again before the last decrement
    char name [64];
    snprintf (name, sizeof name, "%s", job->name);
    job = (job_t *) zhashx_lookup (self->jobs, name);
    if (job && --job->waiting == 0)
        s_stage_finish (job);
    return 0;
}

//  ---------------------------------------------------------------------
//  Outputs

static void
s_collected (job_t *job)
{
    qn_stager_t *self = job->owner;
    Qanat__OutputRecord *records = (Qanat__OutputRecord *) calloc (job->output_count + 1,
                                                                   sizeof (Qanat__OutputRecord));
    Qanat__OutputRecord **pointers = (Qanat__OutputRecord **) calloc (job->output_count + 1,
                                                                      sizeof (void *));
    if (!records || !pointers)
        s_fail (job, "out of memory");
    for (size_t i = 0; !job->error && i < job->output_count; i++) {
        s_output_t *output = &job->outputs [i];
        qanat__output_record__init (&records [i]);
        records [i].name = output->spec->name;
        if (output->spec->value) {
            records [i].kind = QANAT__ARTIFACT_KIND__ARTIFACT_VALUE;
            records [i].value = output->value;
            records [i].size = strlen (output->value);
        }
        else {
            records [i].kind = qn_tree_is_dir (output->tree)? QANAT__ARTIFACT_KIND__ARTIFACT_DIR
                                                            : QANAT__ARTIFACT_KIND__ARTIFACT_FILE;
            records [i].hash = output->hash;
            records [i].size = output->size;
            records [i].location = output->location? output->location: (char *) "";
            //  Consumers elsewhere fetch it from the store it went to
            if (output->location) {
                records [i].store = job->assign->store;
                records [i].uploaded = !output->found_in_bucket;
            }
        }
        pointers [i] = &records [i];
    }
    qn_stager_collected_fn *collected = job->collected;
    void *arg = job->arg;
    qn_attempt_key_t key = job->key;
    char *error = job->error? strdup (job->error): NULL;
    size_t count = job->output_count;
    //  Records point into the job: it goes after the callback
    zhashx_delete (self->jobs, job->name);
    collected (arg, &key, error? -1: 0, error, error? NULL: pointers, error? 0: count);
    free (error);
    free (records);
    free (pointers);
    s_job_destroy (&job);
}

static void
s_uploaded (void *arg, const char *hash, int status, const char *error)
{
    qn_stager_t *self = (qn_stager_t *) arg;
    zlistx_t *waiters = (zlistx_t *) zhashx_lookup (self->uploads, hash);
    if (!waiters)
        return;
    zhashx_delete (self->uploads, hash);
    for (char *name = (char *) zlistx_first (waiters); name;
         name = (char *) zlistx_next (waiters)) {
        job_t *job = (job_t *) zhashx_lookup (self->jobs, name);
        if (!job || !job->collecting)
            continue;
        if (status != 0)
            s_fail (job, "output blob %.12s: %s", hash, error? error: "upload failed");
        if (--job->waiting == 0)
            s_collected (job);
    }
    zlistx_destroy (&waiters);
}

static void
s_send (job_t *job, const char *hash, uint64_t size, const char *path)
{
    qn_stager_t *self = job->owner;
    job->waiting++;
    if (s_wait_for (self->uploads, hash, job->name)) {
        Qanat__AttemptRef ref = QANAT__ATTEMPT_REF__INIT;
        ref.run_id = job->key.run_id;
        ref.task_index = job->key.task_index;
        ref.attempt = job->key.attempt;
        if (qn_transfer_upload (self->transfer, hash, size, path, &ref, s_uploaded, self) == -1)
            s_uploaded (self, hash, -1, "cannot open the file");
    }
}

static void s_s3_store_outputs (job_t *job);

//  The worker thread: scans and hashes every path output.  It touches
//  only its job's outputs and the read-only workdir.
static void *
s_scan_worker (void *arg)
{
    job_t *job = (job_t *) arg;
    for (size_t i = 0; i < job->output_count && !job->error; i++) {
        s_output_t *output = &job->outputs [i];
        if (output->spec->value)
            continue;
        char *error = NULL;
        output->tree = qn_tree_scan (job->workdir, output->spec->path, &error);
        if (!output->tree) {
            s_fail (job, "%s", error? error: "cannot scan output");
            free (error);
        }
    }
    if (job->s3 && !job->error)
        s_s3_store_outputs (job);
    ssize_t rc = write (job->pipe [1], "x", 1);
    (void) rc;
    return NULL;
}

#define S_VALUES_FILE_MAX  (16 * 1024 * 1024)

//  Reads the values file: NAME=VALUE lines, the last of a name wins
static void
s_read_values (job_t *job)
{
    char path [4096];
    qn_stager_paths (job->owner, &job->key, NULL, NULL, 0, path, sizeof path);
    const char *use = path;
    //  A backend whose work runs off this host keeps the file beside the
    //  work directory, on the filesystem it shares (see qn_backend.h)
    const char *slash = strrchr (job->workdir, '/');
    char beside [4200];
    if (slash && slash != job->workdir) {
        snprintf (beside, sizeof beside, "%.*s/values", (int) (slash - job->workdir),
                  job->workdir);
        struct stat st;
        if (lstat (beside, &st) == 0 && S_ISREG (st.st_mode))
            use = beside;
    }
    //  A few NAME=VALUE lines: a file far larger is a runaway task
    struct stat st;
    if (stat (use, &st) == 0 && st.st_size > S_VALUES_FILE_MAX) {
        s_fail (job, "$QANAT_VALUES holds %lld bytes, more than %d", (long long) st.st_size,
                S_VALUES_FILE_MAX);
        return;
    }
    FILE *file = fopen (use, "r");
    char *line = NULL;
    size_t size = 0;
    ssize_t len;
    while (file && (len = getline (&line, &size, file)) > 0) {
        while (len > 0 && (line [len - 1] == '\n' || line [len - 1] == '\r'))
            line [--len] = 0;
        char *equals = strchr (line, '=');
        if (!equals)
            continue;
        *equals = 0;
        for (size_t i = 0; i < job->output_count; i++)
            if (job->outputs [i].spec->value && streq (job->outputs [i].spec->name, line)) {
                if (strlen (equals + 1) > QN_STAGER_VALUE_MAX)
                    s_fail (job, "output '%s': value longer than %d bytes", line,
                            QN_STAGER_VALUE_MAX);
                else {
                    free (job->outputs [i].value);
                    job->outputs [i].value = strdup (equals + 1);
                }
            }
    }
    free (line);
    if (file)
        fclose (file);
    for (size_t i = 0; i < job->output_count; i++)
        if (job->outputs [i].spec->value && !job->outputs [i].value)
            s_fail (job, "output '%s': the task wrote no value for it to $QANAT_VALUES "
                    "(a line %s=VALUE)", job->outputs [i].spec->name, job->outputs [i].spec->name);
}

//  The worker thread is done: join it, then go on on the loop
static int
s_worker_done (zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    (void) loop;
    (void) item;
    job_t *job = (job_t *) arg;
    qn_stager_t *self = job->owner;
    char byte;
    if (read (job->pipe [0], &byte, 1) != 1)
        return 0;
    pthread_join (job->thread, NULL);
    job->thread_running = false;
    zloop_poller_end (self->loop, &(zmq_pollitem_t) { NULL, job->pipe [0], ZMQ_POLLIN, 0 });
    close (job->pipe [0]);
    close (job->pipe [1]);
    job->pipe [0] = job->pipe [1] = -1;
    job->after (job);
    return 0;
}

static void
s_fetch_after (job_t *job)
{
    s_fetch_all (job);
}

static int
s_start_worker (job_t *job, void *(*worker) (void *))
{
    if (pipe2 (job->pipe, O_CLOEXEC) == -1) {
        job->pipe [0] = job->pipe [1] = -1;
        return -1;
    }
    zmq_pollitem_t item = { NULL, job->pipe [0], ZMQ_POLLIN, 0 };
    if (zloop_poller (job->owner->loop, &item, s_worker_done, job) == -1)
        return -1;
    if (!job->after)
        job->after = s_fetch_after;
    if (pthread_create (&job->thread, NULL, worker, job) != 0)
        return -1;
    job->thread_running = true;
    return 0;
}

//  ---------------------------------------------------------------------
//  S3: the worker thread moves the bytes between the bucket and the
//  working directory; its own client, nothing shared with the loop but
//  the job.

static qn_s3_t *
s_s3_open (job_t *job, const Qanat__ArtifactStore *store)
{
    if (!store || !store->bucket || !*store->bucket) {
        s_fail (job, "the S3 store has no bucket");
        return NULL;
    }
    qn_s3_config_t config;
    memset (&config, 0, sizeof config);
    config.endpoint = store->endpoint && *store->endpoint? store->endpoint: NULL;
    config.region = store->region && *store->region? store->region: NULL;
    config.bucket = store->bucket;
    config.path_style = store->path_style;
    char *error = NULL;
    qn_s3_t *s3 = qn_s3_new (&config, &error);
    if (!s3)
        s_fail (job, "s3: %s", error? error: "cannot start the client");
    free (error);
    return s3;
}

//  The store an input is in: its own (the producer's), else the workflow's
static const Qanat__ArtifactStore *
s_input_store (job_t *job, const Qanat__InputSpec *input)
{
    if (input->store && input->store->bucket && *input->store->bucket)
        return input->store;
    return job->assign->store;
}

static bool
s_same_store (const Qanat__ArtifactStore *a, const Qanat__ArtifactStore *b)
{
    if (a == b)
        return true;
    if (!a || !b)
        return false;
    const char *fields_a [] = { a->bucket, a->prefix, a->endpoint, a->region };
    const char *fields_b [] = { b->bucket, b->prefix, b->endpoint, b->region };
    for (size_t f = 0; f < 4; f++)
        if (strcmp (fields_a [f]? fields_a [f]: "", fields_b [f]? fields_b [f]: "") != 0)
            return false;
    return a->path_style == b->path_style;
}

//  Downloads one object to path (creating its directories) and checks its
//  SHA-256; read-only after.
static int
s_s3_fetch_file (job_t *job, qn_s3_t *s3, const Qanat__ArtifactStore *store, const char *hash,
                 const char *path)
{
    char key [1200], error [512] = "", got [QN_BLOB_HASH_HEX + 1];
    uint64_t size = 0;
    qn_s3_blob_key (store->prefix, hash, key, sizeof key);
    char parent [8192];
    snprintf (parent, sizeof parent, "%s", path);
    char *slash = strrchr (parent, '/');
    if (slash)
        *slash = '\0';
    if (slash && qn_fs_mkdirs (parent, 0700) == -1) {
        s_fail (job, "cannot create the directories of %s: %s", path, strerror (errno));
        return -1;
    }
    if (qn_s3_get_file (s3, key, path, error, sizeof error) == -1) {
        s_fail (job, "%s", error);
        return -1;
    }
    if (qn_blobstore_hash_file (path, got, &size, error, sizeof error) == -1
    ||  strcmp (got, hash) != 0) {
        s_fail (job, "s3 object %s does not match its SHA-256 %.12s", key, hash);
        return -1;
    }
    chmod (path, 0444);
    return 0;
}

static void *
s_s3_fetch_worker (void *arg)
{
    job_t *job = (job_t *) arg;
    qn_s3_t *s3 = NULL;
    const Qanat__ArtifactStore *open = NULL;    //  the store s3 talks to
    for (size_t i = 0; i < job->assign->n_inputs && !job->error; i++) {
        Qanat__InputSpec *input = job->assign->inputs [i];
        if (!input->location || !*input->location
        ||  input->kind == QANAT__ARTIFACT_KIND__ARTIFACT_VALUE)
            continue;
        const Qanat__ArtifactStore *store = s_input_store (job, input);
        if (!s3 || !s_same_store (store, open)) {
            qn_s3_destroy (&s3);
            s3 = s_s3_open (job, store);
            open = store;
            if (!s3)
                break;
        }
        char *error = NULL;
        if (!qn_blobstore_valid_hash (input->hash)
        ||  qn_tree_check_path (input->path, &error) == -1) {
            s_fail (job, "input '%s': %s", input->name, error? error: "invalid hash");
            free (error);
            break;
        }
        char path [8192];
        snprintf (path, sizeof path, "%s/%s", job->stage, input->path);
        if (input->kind == QANAT__ARTIFACT_KIND__ARTIFACT_FILE) {
            s_s3_fetch_file (job, s3, store, input->hash, path);
            continue;
        }
        //  A directory: its manifest, then every file it lists
        char manifest_path [8192];
        snprintf (manifest_path, sizeof manifest_path, "%s/.manifest-%zu", job->stage, i);
        if (s_s3_fetch_file (job, s3, store, input->hash, manifest_path) == -1)
            break;
        char *text = NULL;
        size_t size = 0;
        FILE *file = fopen (manifest_path, "r");
        if (file && input->size <= 64ULL * 1024 * 1024) {
            text = (char *) malloc ((size_t) input->size + 1);
            size = text? fread (text, 1, (size_t) input->size, file): 0;
        }
        if (file)
            fclose (file);
        unlink (manifest_path);
        qn_tree_t *tree = text? qn_tree_parse_manifest (text, size, &error): NULL;
        free (text);
        if (!tree) {
            s_fail (job, "input '%s': bad manifest: %s", input->name, error? error: "unreadable");
            free (error);
            break;
        }
        for (size_t e = 0; e < qn_tree_count (tree) && !job->error; e++) {
            const qn_tree_entry_t *entry = qn_tree_entry (tree, e);
            char file_path [12288];
            snprintf (file_path, sizeof file_path, "%s/%s", path, entry->path);
            s_s3_fetch_file (job, s3, store, entry->hash, file_path);
        }
        qn_tree_destroy (&tree);
    }
    qn_s3_destroy (&s3);
    ssize_t rc = write (job->pipe [1], "x", 1);
    (void) rc;
    return NULL;
}

//  Puts one file in the bucket unless an object of that hash is there
static int
s_s3_put (job_t *job, qn_s3_t *s3, s_output_t *output, const char *hash, const char *path,
          bool top)
{
    char key [1200], error [512] = "";
    qn_s3_blob_key (job->assign->store->prefix, hash, key, sizeof key);
    uint64_t size = 0;
    int absent = qn_s3_head (s3, key, &size, error, sizeof error);
    if (absent == -1 || (absent == 1 && qn_s3_put_file (s3, key, path, error, sizeof error) == -1)) {
        s_fail (job, "%s", error);
        return -1;
    }
    if (absent == 0)
        output->found_in_bucket = true;
    if (top)
        output->location = zsys_sprintf ("s3://%s/%s", job->assign->store->bucket, key);
    return 0;
}

//  After the scan (same thread): every path output into the bucket
static void
s_s3_store_outputs (job_t *job)
{
    qn_s3_t *s3 = s_s3_open (job, job->assign->store);
    for (size_t i = 0; s3 && i < job->output_count && !job->error; i++) {
        s_output_t *output = &job->outputs [i];
        if (!output->tree)
            continue;
        char path [8192];
        if (!qn_tree_is_dir (output->tree)) {
            const qn_tree_entry_t *entry = qn_tree_entry (output->tree, 0);
            snprintf (output->hash, sizeof output->hash, "%s", entry->hash);
            output->size = entry->size;
            snprintf (path, sizeof path, "%s/%s", job->workdir, output->spec->path);
            s_s3_put (job, s3, output, entry->hash, path, true);
            continue;
        }
        for (size_t e = 0; e < qn_tree_count (output->tree) && !job->error; e++) {
            const qn_tree_entry_t *entry = qn_tree_entry (output->tree, e);
            snprintf (path, sizeof path, "%s/%s/%s", job->workdir, output->spec->path, entry->path);
            s_s3_put (job, s3, output, entry->hash, path, false);
        }
        //  The manifest last: once it is there, every file it lists is
        size_t size = 0;
        char *manifest = qn_tree_manifest (output->tree, &size);
        char manifest_path [4096];
        snprintf (manifest_path, sizeof manifest_path, "%s.manifest-%zu",
                  job->owner->values_root, i);
        FILE *file = manifest? fopen (manifest_path, "w"): NULL;
        bool written = file && fwrite (manifest, 1, size, file) == size;
        if (file)
            written = fclose (file) == 0 && written;
        free (manifest);
        if (!written || qn_tree_manifest_hash (output->tree, output->hash) == -1)
            s_fail (job, "output '%s': cannot write its manifest", output->spec->name);
        else {
            output->size = size;
            s_s3_put (job, s3, output, output->hash, manifest_path, true);
        }
        unlink (manifest_path);
    }
    qn_s3_destroy (&s3);
}

//  Keeps a directory output's manifest in the cache (setting its hash
//  and size) and sends it to the coordinator.  -1 (the job failed) if it
//  cannot be kept.
static int
s_send_manifest (job_t *job, s_output_t *output)
{
    size_t size = 0;
    char *manifest = qn_tree_manifest (output->tree, &size);
    char error [256] = "", hash [QN_BLOB_HASH_HEX + 1], path [8192];
    if (!manifest || qn_blobstore_put_buffer (job->owner->cache, manifest, size, hash,
                                              error, sizeof error)
    ||  qn_blobstore_path (job->owner->cache, hash, path, sizeof path)) {
        s_fail (job, "output '%s': cannot keep its manifest: %s", output->spec->name, error);
        free (manifest);
        return -1;
    }
    free (manifest);
    snprintf (output->hash, sizeof output->hash, "%s", hash);
    output->size = size;
    s_send (job, output->hash, size, path);
    return 0;
}

static void
s_store_outputs (job_t *job)
{
    if (!job->error)
        s_read_values (job);
    job->waiting = 1;
    for (size_t i = 0; i < job->output_count && !job->error; i++) {
        s_output_t *output = &job->outputs [i];
        if (!output->tree)
            continue;
        if (job->s3) {
            //  The bytes are in the bucket; a directory's manifest also
            //  goes to the coordinator, which reads the files it lists
            //  to count their references (and to delete them one day)
            if (qn_tree_is_dir (output->tree))
                s_send_manifest (job, output);
            continue;
        }
        if (!qn_tree_is_dir (output->tree)) {
            const qn_tree_entry_t *entry = qn_tree_entry (output->tree, 0);
            snprintf (output->hash, sizeof output->hash, "%s", entry->hash);
            output->size = entry->size;
            char path [8192];
            snprintf (path, sizeof path, "%s/%s", job->workdir, output->spec->path);
            s_send (job, entry->hash, entry->size, path);
            continue;
        }
        //  A directory: its manifest (a small blob from the cache), then
        //  every file from the working directory
        if (s_send_manifest (job, output) == -1)
            break;
        char path [8192];
        for (size_t e = 0; e < qn_tree_count (output->tree); e++) {
            const qn_tree_entry_t *entry = qn_tree_entry (output->tree, e);
            snprintf (path, sizeof path, "%s/%s/%s", job->workdir, output->spec->path, entry->path);
            s_send (job, entry->hash, entry->size, path);
        }
    }
    if (--job->waiting == 0)
        s_collected (job);
}

int
qn_stager_outputs (qn_stager_t *self, const qn_attempt_key_t *key, const Qanat__Assign *assign,
                   const char *workdir, qn_stager_collected_fn *collected, void *arg)
{
    assert (self);
    job_t *job = s_job_new (self, key, assign, arg);
    if (!job)
        return -1;
    job->collecting = true;
    job->collected = collected;
    job->workdir = strdup (workdir? workdir: "");
    job->output_count = job->assign->n_outputs;
    job->outputs = (s_output_t *) calloc (job->output_count + 1, sizeof (s_output_t));
    if (!job->workdir || !job->outputs) {
        s_forget_job (self, job);
        return -1;
    }
    for (size_t i = 0; i < job->output_count; i++)
        job->outputs [i].spec = job->assign->outputs [i];
    if (!*job->workdir)
        for (size_t i = 0; i < job->output_count && !job->error; i++)
            if (!job->outputs [i].spec->value)
                s_fail (job, "output '%s': this backend has no working directory the agent "
                        "can read, so only value outputs are possible",
                        job->outputs [i].spec->name);
    job->s3 = job->assign->store && job->assign->store->kind
           && streq (job->assign->store->kind, "s3");
    job->after = s_store_outputs;
    if (job->error || s_start_worker (job, s_scan_worker) == -1) {
        s_fail (job, "cannot collect outputs: %s", strerror (errno));
        s_collected (job);
    }
    return 0;
}

void
qn_stager_forget (qn_stager_t *self, const qn_attempt_key_t *key, const char *stage_root)
{
    assert (self);
    char name [64], stage [4096], values [4096];
    s_key_name (key, name, sizeof name);
    job_t *job = (job_t *) zhashx_lookup (self->jobs, name);
    if (job)
        s_forget_job (self, job);
    qn_stager_paths (self, key, stage_root, stage, sizeof stage, values, sizeof values);
    qn_fs_remove_tree (stage);
    unlink (values);
}

uint64_t
qn_stager_damaged (qn_stager_t *self)
{
    assert (self);
    return self->damaged;
}

size_t
qn_stager_busy (qn_stager_t *self)
{
    assert (self);
    return zhashx_size (self->jobs);
}
