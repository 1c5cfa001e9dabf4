/*  qn_artifacts - what the coordinator knows about tasks' outputs.  See
    qn_artifacts.h.
*/
#include "qn_artifacts.h"
#include "qn_tree.h"
#include "qn_s3.h"
#include <sodium.h>

struct _qn_artifacts_t {
    qn_store_t *store;
    qn_blobstore_t *blobs;
};

qn_artifacts_t *
qn_artifacts_new (qn_store_t *store, const char *blob_dir, char **error_p)
{
    assert (store);
    assert (blob_dir);
    *error_p = NULL;
    if (sodium_init () < 0) {
        *error_p = strdup ("libsodium cannot start");
        return NULL;
    }
    qn_artifacts_t *self = (qn_artifacts_t *) zmalloc (sizeof (qn_artifacts_t));
    self->store = store;
    self->blobs = qn_blobstore_new (blob_dir);
    if (!self->blobs) {
        *error_p = zsys_sprintf ("cannot open the blob store in %s", blob_dir);
        free (self);
        return NULL;
    }
    return self;
}

void
qn_artifacts_destroy (qn_artifacts_t **self_p)
{
    assert (self_p);
    qn_artifacts_t *self = *self_p;
    if (!self)
        return;
    qn_blobstore_destroy (&self->blobs);
    free (self);
    *self_p = NULL;
}

qn_blobstore_t *
qn_artifacts_blobs (qn_artifacts_t *self)
{
    assert (self);
    return self->blobs;
}

//  An S3 store as an agent reports it with an output it put there
static bool
s_store_valid (const Qanat__ArtifactStore *store)
{
    const char *fields [] = { store->kind, store->bucket, store->prefix, store->endpoint,
                              store->region };
    for (size_t f = 0; f < 5; f++)
        if (fields [f] && strlen (fields [f]) > 1024)
            return false;
    if (!store->kind || !streq (store->kind, "s3") || !store->bucket || !*store->bucket
    ||  strlen (store->bucket) > 63)
        return false;
    return !store->endpoint || !*store->endpoint
        || strncmp (store->endpoint, "http://", 7) == 0
        || strncmp (store->endpoint, "https://", 8) == 0;
}

//  A deep copy for another message (freed with it), NULL for NULL
static Qanat__ArtifactStore *
s_store_copy (const Qanat__ArtifactStore *store)
{
    if (!store)
        return NULL;
    Qanat__ArtifactStore *copy = (Qanat__ArtifactStore *) malloc (sizeof (*copy));
    if (!copy)
        return NULL;
    qanat__artifact_store__init (copy);
    copy->kind = strdup (store->kind? store->kind: "");
    copy->bucket = strdup (store->bucket? store->bucket: "");
    copy->prefix = strdup (store->prefix? store->prefix: "");
    copy->endpoint = strdup (store->endpoint? store->endpoint: "");
    copy->region = strdup (store->region? store->region: "");
    copy->path_style = store->path_style;
    return copy;
}

//  ---------------------------------------------------------------------
//  S3 objects: counted like our own blobs, so that retention can delete
//  them from their bucket (see qn_artifacts_s3_pick).

//  Where an object of hash is in store: its key and its id in the
//  store's table (SHA-256 of endpoint, bucket and key).
static void
s_s3_object (const Qanat__ArtifactStore *store, const char *hash, char id [65], char *key,
             size_t key_size)
{
    qn_s3_blob_key (store->prefix, hash, key, key_size);
    crypto_hash_sha256_state state;
    crypto_hash_sha256_init (&state);
    const char *parts [] = { store->endpoint? store->endpoint: "", "\n", store->bucket, "\n",
                             key };
    for (size_t p = 0; p < 5; p++)
        crypto_hash_sha256_update (&state, (const unsigned char *) parts [p], strlen (parts [p]));
    unsigned char digest [32];
    crypto_hash_sha256_final (&state, digest);
    sodium_bin2hex (id, 65, digest, sizeof digest);
}

//  An output in S3 whose store we know (records written before outputs
//  carried their store are not counted)
static bool
s_in_s3 (const Qanat__OutputRecord *output)
{
    return output->kind != QANAT__ARTIFACT_KIND__ARTIFACT_VALUE
        && output->location && *output->location && output->store
        && s_store_valid (output->store) && qn_blobstore_valid_hash (output->hash);
}

typedef int (s_s3_fn) (qn_artifacts_t *self, const Qanat__OutputRecord *output,
                       const char *id, const char *key, uint64_t size, void *arg);

static qn_tree_t *s_manifest (qn_artifacts_t *self, const char *hash, uint64_t size);

//  Calls fn for every S3 object of an output: the file, or a directory's
//  manifest and every file it lists (from the manifest the agent also
//  gave us).  Stops at the first fn that does not return 0; returns it.
static int
s_s3_each (qn_artifacts_t *self, const Qanat__OutputRecord *output, s_s3_fn *fn, void *arg)
{
    char id [65], key [1200];
    s_s3_object (output->store, output->hash, id, key, sizeof key);
    int rc = fn (self, output, id, key, output->size, arg);
    if (rc || output->kind != QANAT__ARTIFACT_KIND__ARTIFACT_DIR)
        return rc;
    qn_tree_t *tree = s_manifest (self, output->hash, output->size);
    for (size_t e = 0; tree && e < qn_tree_count (tree) && !rc; e++) {
        const qn_tree_entry_t *entry = qn_tree_entry (tree, e);
        s_s3_object (output->store, entry->hash, id, key, sizeof key);
        rc = fn (self, output, id, key, entry->size, arg);
    }
    qn_tree_destroy (&tree);
    return rc;
}

static int
s_s3_ref_one (qn_artifacts_t *self, const Qanat__OutputRecord *output, const char *id,
              const char *key, uint64_t size, void *arg)
{
    int delta = *(int *) arg;
    int64_t now = zclock_time () * 1000;
    if (delta > 0) {
        size_t packed_size = qanat__artifact_store__get_packed_size (output->store);
        uint8_t *packed = (uint8_t *) malloc (packed_size + 1);
        char *location = zsys_sprintf ("s3://%s/%s", output->store->bucket, key);
        int rc = packed && location? 0: -1;
        if (rc == 0) {
            qanat__artifact_store__pack (output->store, packed);
            rc = qn_store_s3_add (self->store, id, location, packed, packed_size, size, now);
        }
        free (packed);
        zstr_free (&location);
        if (rc)
            return 0;           //  not counted: it will never be deleted, which is safe
    }
    qn_store_s3_ref (self->store, id, delta, now, NULL);
    return 0;
}

static const bool s_recording = true, s_looking = false;    //  s_s3_check_one's arg

//  Whether an object may be trusted to be in its bucket: returns 1 when
//  not.  One retention is deleting may vanish under the record.  One it
//  has deleted (a tombstone) is there only if this attempt put it back:
//  an agent that found it by HEAD may have looked before the deletion.
//  For a record (*arg true) the tombstone goes, so that the object is
//  counted afresh, or put back by a retry of the task; a cache lookup
//  (*arg false) only looks.
static int
s_s3_check_one (qn_artifacts_t *self, const Qanat__OutputRecord *output, const char *id,
                const char *key, uint64_t size, void *arg)
{
    (void) key;
    (void) size;
    qn_store_s3_object_t object;
    if (qn_store_s3_get (self->store, id, &object) != 1)
        return 0;
    int state = object.state;
    qn_store_s3_object_clear (&object);
    if (state == QN_STORE_S3_LIVE)
        return 0;
    if (state == QN_STORE_S3_DELETED && *(bool *) arg) {
        qn_store_s3_delete (self->store, id);
        return output->uploaded? 0: 1;
    }
    return 1;
}

//  The manifest of a stored directory output, parsed; NULL if it is not
//  (or no longer) readable.
static qn_tree_t *
s_manifest (qn_artifacts_t *self, const char *hash, uint64_t size)
{
    return qn_tree_load_manifest (self->blobs, hash, size, NULL);
}

//  The attempt of a task that succeeded: its last one
static const Qanat__AttemptInfo *
s_successful_attempt (const Qanat__TaskInfo *task)
{
    if (task->status != QANAT__TASK_STATUS__TASK_SUCCEEDED || task->n_attempts == 0)
        return NULL;
    return task->attempts [task->n_attempts - 1];
}

static const Qanat__OutputRecord *
s_find_output (const Qanat__AttemptInfo *attempt, const char *name)
{
    for (size_t i = 0; attempt && i < attempt->n_outputs; i++)
        if (attempt->outputs [i]->name && streq (attempt->outputs [i]->name, name))
            return attempt->outputs [i];
    return NULL;
}

int
qn_artifacts_inputs (qn_artifacts_t *self, const qn_task_t *spec, const Qanat__RunInfo *run,
                     zhashx_t *allowed, Qanat__InputSpec ***inputs_p, size_t *count_p,
                     char **error_p)
{
    assert (self);
    *inputs_p = NULL;
    *count_p = 0;
    *error_p = NULL;
    //  The workflow's code comes first, at ".": inputs go over it
    bool code = run->code && *run->code && !spec->no_code && !spec->workdir;
    if (spec->input_count == 0 && !code)
        return 0;
    Qanat__InputSpec **inputs = (Qanat__InputSpec **) calloc (spec->input_count + 1,
                                                              sizeof (Qanat__InputSpec *));
    if (!inputs)
        return -1;
    size_t count = 0;
    static const qn_input_t code_input = { .name = (char *) QN_ARTIFACTS_CODE,
                                           .path = (char *) ".",
                                           .param = (char *) QN_ARTIFACTS_CODE };
    for (size_t i = code? 0: 1; i < spec->input_count + 1; i++) {
        const qn_input_t *input = i? &spec->inputs [i - 1]: &code_input;
        const Qanat__OutputRecord *output = NULL;
        if (input->param) {
            //  A blob fed in with qanat put, named by the run's parameter
            for (size_t a = 0; a < run->n_artifacts && !output; a++)
                if (run->artifacts [a]->name && streq (run->artifacts [a]->name, input->param))
                    output = run->artifacts [a];
            if (!output) {
                *error_p = zsys_sprintf ("input '%s': the run has no artifact for parameter "
                                         "'%s'", input->name, input->param);
                qn_artifacts_free_inputs (inputs, count);
                return -1;
            }
        }
        const Qanat__TaskInfo *producer = !input->param && input->task_index < run->n_tasks?
                                          run->tasks [input->task_index]: NULL;
        if (producer)
            output = s_find_output (s_successful_attempt (producer), input->output);
        if (!output) {
            *error_p = zsys_sprintf ("input '%s': task '%s' has no recorded output '%s'",
                                     input->name, input->task, input->output);
            qn_artifacts_free_inputs (inputs, count);
            return -1;
        }
        Qanat__InputSpec *in = (Qanat__InputSpec *) malloc (sizeof (Qanat__InputSpec));
        qanat__input_spec__init (in);
        in->name = strdup (input->name);
        in->kind = output->kind;
        in->hash = strdup (output->hash? output->hash: "");
        in->size = output->size;
        in->path = strdup (input->path);
        in->value = strdup (output->value? output->value: "");
        in->location = strdup (output->location? output->location: "");
        in->store = s_store_copy (output->store);
        inputs [count++] = in;
        //  What this agent may now fetch from us
        if (allowed && output->kind != QANAT__ARTIFACT_KIND__ARTIFACT_VALUE
        &&  !(output->location && *output->location)) {
            zhashx_update (allowed, in->hash, (void *) 1);
            if (output->kind == QANAT__ARTIFACT_KIND__ARTIFACT_DIR) {
                qn_tree_t *tree = s_manifest (self, output->hash, output->size);
                for (size_t e = 0; tree && e < qn_tree_count (tree); e++)
                    zhashx_update (allowed, qn_tree_entry (tree, e)->hash, (void *) 1);
                qn_tree_destroy (&tree);
            }
        }
    }
    *inputs_p = inputs;
    *count_p = count;
    return 0;
}

void
qn_artifacts_free_inputs (Qanat__InputSpec **inputs, size_t count)
{
    for (size_t i = 0; inputs && i < count; i++)
        protobuf_c_message_free_unpacked ((ProtobufCMessage *) inputs [i], NULL);
    free (inputs);
}

//  Adds delta to the references of a blob and, for a directory, of every
//  file its manifest lists.
static int
s_ref_output (qn_artifacts_t *self, const Qanat__OutputRecord *output, int delta)
{
    if (s_in_s3 (output)) {
        s_s3_each (self, output, s_s3_ref_one, &delta);
        //  A directory's manifest is also one of our blobs
        if (output->kind != QANAT__ARTIFACT_KIND__ARTIFACT_DIR)
            return 0;
        if (qn_store_blob_add (self->store, output->hash, output->size)
        ||  qn_store_blob_ref (self->store, output->hash, delta, NULL))
            return -1;
        return 0;
    }
    if (output->kind == QANAT__ARTIFACT_KIND__ARTIFACT_VALUE
    ||  (output->location && *output->location) || !qn_blobstore_valid_hash (output->hash))
        return 0;
    if (output->kind == QANAT__ARTIFACT_KIND__ARTIFACT_DIR) {
        qn_tree_t *tree = s_manifest (self, output->hash, output->size);
        for (size_t e = 0; tree && e < qn_tree_count (tree); e++) {
            const qn_tree_entry_t *entry = qn_tree_entry (tree, e);
            qn_store_blob_add (self->store, entry->hash, entry->size);
            qn_store_blob_ref (self->store, entry->hash, delta, NULL);
        }
        qn_tree_destroy (&tree);
    }
    if (qn_store_blob_add (self->store, output->hash, output->size)
    ||  qn_store_blob_ref (self->store, output->hash, delta, NULL))
        return -1;
    return 0;
}

int
qn_artifacts_ref_outputs (qn_artifacts_t *self, Qanat__OutputRecord **outputs, size_t count,
                          int delta)
{
    assert (self);
    int rc = 0;
    for (size_t i = 0; i < count; i++)
        if (s_ref_output (self, outputs [i], delta))
            rc = -1;
    return rc;
}

static bool
s_manifest_whole (qn_artifacts_t *self, const Qanat__OutputRecord *output)
{
    qn_tree_t *tree = s_manifest (self, output->hash, output->size);
    bool whole = tree != NULL;
    qn_tree_destroy (&tree);
    return whole;
}

//  A stored output must be whole: the blob (and for a directory, its
//  manifest's every file) present and of the size claimed.
static char *
s_check_stored (qn_artifacts_t *self, const qn_output_t *declared,
                const Qanat__OutputRecord *output)
{
    if (!qn_blobstore_has (self->blobs, output->hash))
        return zsys_sprintf ("output '%s' was not stored (blob %.12s missing)", declared->name,
                             output->hash);
    if (output->kind != QANAT__ARTIFACT_KIND__ARTIFACT_DIR)
        return NULL;
    qn_tree_t *tree = s_manifest (self, output->hash, output->size);
    if (!tree)
        return zsys_sprintf ("output '%s': its directory manifest is unreadable", declared->name);
    char *failure = NULL;
    for (size_t e = 0; e < qn_tree_count (tree) && !failure; e++)
        if (!qn_blobstore_has (self->blobs, qn_tree_entry (tree, e)->hash))
            failure = zsys_sprintf ("output '%s': file '%s' was not stored", declared->name,
                                    qn_tree_entry (tree, e)->path);
    qn_tree_destroy (&tree);
    return failure;
}

char *
qn_artifacts_record (qn_artifacts_t *self, const qn_task_t *spec, Qanat__AttemptInfo *attempt,
                     const Qanat__Finished *finished)
{
    assert (self);
    if (spec->output_count == 0)
        return NULL;
    //  First every check, then the records: an attempt is all or nothing
    const Qanat__OutputRecord **found = (const Qanat__OutputRecord **)
        calloc (spec->output_count, sizeof (void *));
    if (!found)
        return strdup ("out of memory");
    char *failure = NULL;
    for (size_t o = 0; o < spec->output_count && !failure; o++) {
        const qn_output_t *declared = &spec->outputs [o];
        for (size_t i = 0; i < finished->n_outputs && !found [o]; i++)
            if (finished->outputs [i]->name && streq (finished->outputs [i]->name, declared->name))
                found [o] = finished->outputs [i];
        const Qanat__OutputRecord *output = found [o];
        if (!output)
            failure = finished->reason && *finished->reason? strdup (finished->reason)
                    : zsys_sprintf ("output '%s' is missing", declared->name);
        else
        if (declared->value) {
            if (output->kind != QANAT__ARTIFACT_KIND__ARTIFACT_VALUE)
                failure = zsys_sprintf ("output '%s' should be a value", declared->name);
            else
            if (!output->value || strlen (output->value) > QN_ARTIFACTS_VALUE_MAX)
                failure = zsys_sprintf ("output '%s': value missing or over %d bytes",
                                        declared->name, QN_ARTIFACTS_VALUE_MAX);
        }
        else
        if (output->kind == QANAT__ARTIFACT_KIND__ARTIFACT_VALUE
        ||  !qn_blobstore_valid_hash (output->hash))
            failure = zsys_sprintf ("output '%s' should be a file or directory with a "
                                    "SHA-256", declared->name);
        else
        if (output->location && *output->location) {
            if (strncmp (output->location, "s3://", 5) != 0 || strlen (output->location) > 2048)
                failure = zsys_sprintf ("output '%s': unknown location", declared->name);
            else
            if (output->store && !s_store_valid (output->store))
                failure = zsys_sprintf ("output '%s': its store is not a valid S3 store",
                                        declared->name);
            else
            if (s_in_s3 (output) && output->kind == QANAT__ARTIFACT_KIND__ARTIFACT_DIR
            &&  !s_manifest_whole (self, output))
                failure = zsys_sprintf ("output '%s': its directory manifest did not reach "
                                        "the coordinator", declared->name);
            else
            if (s_in_s3 (output)
            &&  s_s3_each (self, output, s_s3_check_one, (void *) &s_recording) == 1)
                failure = zsys_sprintf ("output '%s': an S3 object of it was being removed by "
                                        "retention when the agent found it in the bucket; a "
                                        "retry stores it again", declared->name);
        }
        else
            failure = s_check_stored (self, declared, output);
    }
    if (!failure)
        for (size_t o = 0; o < spec->output_count; o++) {
            Qanat__OutputRecord *copy = (Qanat__OutputRecord *) malloc (sizeof (*copy));
            qanat__output_record__init (copy);
            copy->name = strdup (spec->outputs [o].name);
            copy->kind = found [o]->kind;
            copy->hash = strdup (found [o]->hash? found [o]->hash: "");
            copy->size = found [o]->size;
            copy->value = strdup (found [o]->value? found [o]->value: "");
            copy->location = strdup (found [o]->location? found [o]->location: "");
            copy->store = copy->location && *copy->location? s_store_copy (found [o]->store)
                                                            : NULL;
            Qanat__OutputRecord **grown = (Qanat__OutputRecord **) realloc (
                attempt->outputs, (attempt->n_outputs + 1) * sizeof (void *));
            if (!grown) {
                protobuf_c_message_free_unpacked ((ProtobufCMessage *) copy, NULL);
                failure = strdup ("out of memory");
                break;
            }
            attempt->outputs = grown;
            attempt->outputs [attempt->n_outputs++] = copy;
            s_ref_output (self, copy, 1);
        }
    free (found);
    return failure;
}

static void
s_hash_text (crypto_hash_sha256_state *state, const char *label, const char *text)
{
    //  Length-prefixed, so that no two different inputs hash alike
    char head [64];
    size_t len = text? strlen (text): 0;
    int n = snprintf (head, sizeof head, "%s:%zu:", label, len);
    crypto_hash_sha256_update (state, (const unsigned char *) head, (unsigned long long) n);
    if (len)
        crypto_hash_sha256_update (state, (const unsigned char *) text, len);
}

int
qn_artifacts_cache_key (qn_artifacts_t *self, const char *workflow, const qn_task_t *spec,
                        char *const *argv, Qanat__InputSpec **inputs, size_t input_count,
                        char key [QN_ARTIFACTS_KEY_HEX + 1])
{
    assert (self);
    crypto_hash_sha256_state state;
    crypto_hash_sha256_init (&state);
    s_hash_text (&state, "qanat-cache", "1");
    s_hash_text (&state, "workflow", workflow);
    s_hash_text (&state, "task", spec->name);
    for (size_t i = 0; argv && argv [i]; i++)
        s_hash_text (&state, "argv", argv [i]);
    //  The environment as written: a secret counts by its name, never its value
    for (size_t i = 0; i < spec->env_count; i++) {
        s_hash_text (&state, "env", spec->env [i].key);
        s_hash_text (&state, "=", spec->env [i].value);
    }
    s_hash_text (&state, "backend", spec->backend);
    for (size_t i = 0; i < spec->backend_option_count; i++) {
        s_hash_text (&state, "option", spec->backend_options [i].key);
        s_hash_text (&state, "=", spec->backend_options [i].value);
    }
    //  The code counts as an input (at "."); a task run in place, by where
    if (spec->workdir)
        s_hash_text (&state, "workdir", spec->workdir);
    for (size_t i = 0; i < spec->output_count; i++) {
        s_hash_text (&state, "output", spec->outputs [i].name);
        s_hash_text (&state, "path", spec->outputs [i].path);
    }
    for (size_t i = 0; i < input_count; i++) {
        s_hash_text (&state, "input", inputs [i]->name);
        s_hash_text (&state, "path", inputs [i]->path);
        s_hash_text (&state, "hash", inputs [i]->hash);
        s_hash_text (&state, "value", inputs [i]->value);
    }
    unsigned char digest [crypto_hash_sha256_BYTES];
    crypto_hash_sha256_final (&state, digest);
    sodium_bin2hex (key, QN_ARTIFACTS_KEY_HEX + 1, digest, sizeof digest);
    return 0;
}

int
qn_artifacts_cache_lookup (qn_artifacts_t *self, const char *key, uint64_t *run_id_p,
                           Qanat__AttemptInfo **attempt_p)
{
    assert (self);
    *attempt_p = NULL;
    uint32_t task_index, attempt_no;
    if (qn_store_get_cache (self->store, key, run_id_p, &task_index, &attempt_no) != 1)
        return 0;
    Qanat__TaskInfo **tasks = NULL;
    size_t count = 0;
    if (qn_store_get_tasks (self->store, *run_id_p, &tasks, &count) != 0)
        return 0;
    Qanat__AttemptInfo *found = NULL;
    for (size_t t = 0; t < count && !found; t++)
        if (tasks [t]->index == task_index
        &&  tasks [t]->status == QANAT__TASK_STATUS__TASK_SUCCEEDED)
            for (size_t a = 0; a < tasks [t]->n_attempts && !found; a++)
                if (tasks [t]->attempts [a]->attempt == attempt_no) {
                    found = tasks [t]->attempts [a];
                    //  Taken out of the task so it outlives the array
                    tasks [t]->attempts [a] = tasks [t]->attempts [tasks [t]->n_attempts - 1];
                    tasks [t]->n_attempts--;
                }
    qn_store_free_array (tasks, count);
    if (!found)
        return 0;
    //  Every blob must still be there: retention may have freed it
    bool whole = true;
    for (size_t o = 0; o < found->n_outputs && whole; o++) {
        const Qanat__OutputRecord *output = found->outputs [o];
        if (s_in_s3 (output)) {
            whole = (output->kind != QANAT__ARTIFACT_KIND__ARTIFACT_DIR
                     || s_manifest_whole (self, output))
                 && s_s3_each (self, output, s_s3_check_one, (void *) &s_looking) == 0;
            continue;
        }
        if (output->kind == QANAT__ARTIFACT_KIND__ARTIFACT_VALUE
        ||  (output->location && *output->location))
            continue;
        whole = qn_blobstore_has (self->blobs, output->hash);
        if (whole && output->kind == QANAT__ARTIFACT_KIND__ARTIFACT_DIR) {
            qn_tree_t *tree = s_manifest (self, output->hash, output->size);
            whole = tree != NULL;
            for (size_t e = 0; tree && e < qn_tree_count (tree) && whole; e++)
                whole = qn_blobstore_has (self->blobs, qn_tree_entry (tree, e)->hash);
            qn_tree_destroy (&tree);
        }
    }
    if (!whole) {
        qanat__attempt_info__free_unpacked (found, NULL);
        return 0;
    }
    *attempt_p = found;
    return 1;
}

int
qn_artifacts_cache_put (qn_artifacts_t *self, const char *key, uint64_t run_id, uint32_t task,
                        uint32_t attempt)
{
    assert (self);
    return qn_store_put_cache (self->store, key, run_id, task, attempt);
}

int
qn_artifacts_release_tasks (qn_artifacts_t *self, Qanat__TaskInfo **tasks, size_t count)
{
    assert (self);
    int rc = 0;
    for (size_t t = 0; t < count; t++)
        for (size_t a = 0; a < tasks [t]->n_attempts; a++)
            if (qn_artifacts_ref_outputs (self, tasks [t]->attempts [a]->outputs,
                                          tasks [t]->attempts [a]->n_outputs, -1))
                rc = -1;
    return rc;
}

uint64_t
qn_artifacts_collect (qn_artifacts_t *self, zhashx_t *keep)
{
    assert (self);
    uint64_t freed = 0;
    char **hashes = NULL;
    size_t count = 0;
    if (qn_store_unreferenced_blobs (self->store, &hashes, &count, 10000) != 0)
        return 0;
    for (size_t i = 0; i < count; i++) {
        if (!keep || !zhashx_lookup (keep, hashes [i])) {
            uint64_t size = 0;
            qn_store_blob_get (self->store, hashes [i], &size, NULL);
            if (qn_blobstore_remove (self->blobs, hashes [i]) == 0
            ||  !qn_blobstore_has (self->blobs, hashes [i])) {
                qn_store_blob_delete (self->store, hashes [i]);
                freed += size;
            }
        }
        free (hashes [i]);
    }
    free (hashes);
    return freed;
}

int
qn_artifacts_s3_pick (qn_artifacts_t *self, int64_t now_us, int64_t grace_us,
                      qn_store_s3_object_t **objects_p, size_t *count_p, size_t limit)
{
    assert (self);
    *objects_p = NULL;
    *count_p = 0;
    //  Tombstones live a day: long enough for any late record to meet one
    qn_store_s3_object_t *old = NULL;
    size_t old_count = 0;
    if (qn_store_s3_list (self->store, QN_STORE_S3_DELETED, now_us - 86400LL * 1000000,
                          &old, &old_count, limit) == 0)
        for (size_t i = 0; i < old_count; i++)
            qn_store_s3_delete (self->store, old [i].id);
    qn_store_s3_objects_free (&old, old_count);
    if (qn_store_s3_list (self->store, QN_STORE_S3_LIVE, now_us - grace_us, objects_p, count_p,
                          limit) != 0)
        return -1;
    for (size_t i = 0; i < *count_p; i++)
        qn_store_s3_set_state (self->store, (*objects_p) [i].id, QN_STORE_S3_DELETING, now_us);
    return 0;
}

int
qn_artifacts_s3_deleting (qn_artifacts_t *self, qn_store_s3_object_t **objects_p,
                          size_t *count_p, size_t limit)
{
    assert (self);
    return qn_store_s3_list (self->store, QN_STORE_S3_DELETING, INT64_MAX, objects_p, count_p,
                             limit);
}

void
qn_artifacts_s3_deleted (qn_artifacts_t *self, const char *id, bool gone, int64_t now_us)
{
    assert (self);
    //  Not deleted (no credentials, refused): live again, tried after the
    //  next grace
    qn_store_s3_set_state (self->store, id, gone? QN_STORE_S3_DELETED: QN_STORE_S3_LIVE, now_us);
}

Qanat__OutputRecord *
qn_artifacts_param_blob (qn_artifacts_t *self, const char *name, const char *value,
                         char **error_p)
{
    assert (self);
    *error_p = NULL;
    bool dir = value && strncmp (value, "dir:", 4) == 0;
    const char *hash = dir? value + 4: value && strncmp (value, "file:", 5) == 0? value + 5: NULL;
    if (!hash || !qn_blobstore_valid_hash (hash)) {
        *error_p = zsys_sprintf ("parameter '%s': not an artifact reference (file:<sha256> or "
                                 "dir:<sha256>)", name);
        return NULL;
    }
    uint64_t size = 0;
    if (qn_store_blob_get (self->store, hash, &size, NULL) != 1
    ||  !qn_blobstore_has (self->blobs, hash)) {
        *error_p = zsys_sprintf ("parameter '%s': the coordinator has no blob %.12s (feed it "
                                 "in with qanat put first)", name, hash);
        return NULL;
    }
    if (dir) {
        qn_tree_t *tree = s_manifest (self, hash, size);
        if (!tree)
            *error_p = zsys_sprintf ("parameter '%s': blob %.12s is not a directory", name, hash);
        for (size_t e = 0; tree && e < qn_tree_count (tree) && !*error_p; e++)
            if (!qn_blobstore_has (self->blobs, qn_tree_entry (tree, e)->hash))
                *error_p = zsys_sprintf ("parameter '%s': file '%s' of the directory is not "
                                         "stored", name, qn_tree_entry (tree, e)->path);
        qn_tree_destroy (&tree);
        if (*error_p)
            return NULL;
    }
    Qanat__OutputRecord *record = (Qanat__OutputRecord *) malloc (sizeof (*record));
    if (!record) {
        *error_p = strdup ("out of memory");
        return NULL;
    }
    qanat__output_record__init (record);
    record->name = strdup (name);
    record->kind = dir? QANAT__ARTIFACT_KIND__ARTIFACT_DIR: QANAT__ARTIFACT_KIND__ARTIFACT_FILE;
    record->hash = strdup (hash);
    record->size = size;
    record->value = strdup ("");
    record->location = strdup ("");
    if (!record->name || !record->hash || !record->value || !record->location) {
        protobuf_c_message_free_unpacked ((ProtobufCMessage *) record, NULL);
        *error_p = strdup ("out of memory");
        return NULL;
    }
    return record;
}
