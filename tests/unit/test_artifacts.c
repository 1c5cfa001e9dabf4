/*  test_artifacts - the coordinator's artifact records: outputs checked
    against the declaration and the blob store, references taken and
    given back, cache keys, and garbage collection.
*/
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <ftw.h>
#include "qn_artifacts.h"
#include "qn_tree.h"
#include <sodium.h>

typedef struct {
    char root [256];
    qn_store_t *store;
    qn_artifacts_t *artifacts;
    qn_workflow_t *wf;
} fixture_t;

static const char *s_workflow =
    "name: arts\n"
    "tasks:\n"
    "  prepare:\n"
    "    run: make-data\n"
    "    outputs: {data: data/, rows: {value: true}, model: model.bin}\n"
    "  train:\n"
    "    run: train --rows ${{ params.rows }}\n"
    "    inputs: {data: prepare.data, rows: prepare.rows}\n"
    "    cache: true\n"
    "params:\n"
    "  rows: {type: int, default: 5}\n";

static int
s_setup (void **state)
{
    fixture_t *fix = (fixture_t *) calloc (1, sizeof (fixture_t));
    snprintf (fix->root, sizeof fix->root, "/tmp/qn_artifacts_test.XXXXXX");
    assert_non_null (mkdtemp (fix->root));
    char dir [400], *error = NULL;
    snprintf (dir, sizeof dir, "%s/store", fix->root);
    fix->store = qn_store_new (dir, false, &error);
    assert_non_null (fix->store);
    snprintf (dir, sizeof dir, "%s/blobs", fix->root);
    fix->artifacts = qn_artifacts_new (fix->store, dir, &error);
    assert_non_null (fix->artifacts);
    fix->wf = qn_workflow_parse ("wf.yaml", s_workflow, strlen (s_workflow), &error);
    if (!fix->wf)
        fail_msg ("%s", error);
    *state = fix;
    return 0;
}

static int
s_remove (const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) st; (void) flag; (void) ftw;
    return remove (path);
}

static int
s_teardown (void **state)
{
    fixture_t *fix = (fixture_t *) *state;
    qn_workflow_destroy (&fix->wf);
    qn_artifacts_destroy (&fix->artifacts);
    qn_store_destroy (&fix->store);
    nftw (fix->root, s_remove, 16, FTW_DEPTH | FTW_PHYS);
    free (fix);
    return 0;
}

//  Stores data as a blob; its hash in hash
static void
s_put (fixture_t *fix, const char *data, char *hash)
{
    char error [256];
    assert_int_equal (qn_blobstore_put_buffer (qn_artifacts_blobs (fix->artifacts), data,
                                               strlen (data), hash, error, sizeof error), 0);
}

static Qanat__OutputRecord *
s_record (const char *name, Qanat__ArtifactKind kind, const char *hash, uint64_t size,
          const char *value, const char *location)
{
    Qanat__OutputRecord *record = (Qanat__OutputRecord *) malloc (sizeof (*record));
    qanat__output_record__init (record);
    record->name = (char *) name;
    record->kind = kind;
    record->hash = (char *) hash;
    record->size = size;
    record->value = (char *) value;
    record->location = (char *) location;
    return record;
}

//  A directory output: two files stored, and their manifest
static void
s_directory (fixture_t *fix, char *manifest_hash, size_t *manifest_size, char *file_hash)
{
    char a [65], b [65];
    s_put (fix, "alpha\n", a);
    s_put (fix, "beta\n", b);
    strcpy (file_hash, a);
    char *manifest = zsys_sprintf ("%s644 6 %s a.csv\n644 5 %s sub/b.csv\n", QN_TREE_MAGIC,
                                   a, b);
    //  Canonical order is by path bytes: "a.csv" < "sub/b.csv"
    char *error = NULL;
    qn_tree_t *tree = qn_tree_parse_manifest (manifest, strlen (manifest), &error);
    if (!tree)
        fail_msg ("manifest: %s", error);
    qn_tree_destroy (&tree);
    s_put (fix, manifest, manifest_hash);
    *manifest_size = strlen (manifest);
    zstr_free (&manifest);
}

static void
test_record_checks_every_declared_output (void **state)
{
    fixture_t *fix = (fixture_t *) *state;
    const qn_task_t *prepare = qn_workflow_task (fix->wf, 0);
    char dir_hash [65], file_hash [65], model_hash [65];
    size_t dir_size;
    s_directory (fix, dir_hash, &dir_size, file_hash);
    s_put (fix, "weights", model_hash);

    Qanat__OutputRecord *records [3] = {
        s_record ("data", QANAT__ARTIFACT_KIND__ARTIFACT_DIR, dir_hash, dir_size, "", ""),
        s_record ("rows", QANAT__ARTIFACT_KIND__ARTIFACT_VALUE, "", 4, "1000", ""),
        s_record ("model", QANAT__ARTIFACT_KIND__ARTIFACT_FILE, model_hash, 7, "", "")
    };
    Qanat__Finished finished = QANAT__FINISHED__INIT;
    finished.outputs = records;
    finished.reason = (char *) "";

    Qanat__AttemptInfo attempt = QANAT__ATTEMPT_INFO__INIT;
    //  One missing: the attempt fails, nothing recorded, no reference taken
    finished.n_outputs = 2;
    assert_int_equal (qn_store_begin (fix->store), 0);
    char *failure = qn_artifacts_record (fix->artifacts, prepare, &attempt, &finished);
    assert_non_null (failure);
    assert_string_equal (failure, "output 'model' is missing");
    free (failure);
    assert_int_equal (attempt.n_outputs, 0);
    uint32_t refs = 9;
    assert_int_equal (qn_store_blob_get (fix->store, dir_hash, NULL, &refs), 0);

    //  A value where a file was declared
    records [2]->kind = QANAT__ARTIFACT_KIND__ARTIFACT_VALUE;
    finished.n_outputs = 3;
    failure = qn_artifacts_record (fix->artifacts, prepare, &attempt, &finished);
    assert_string_equal (failure, "output 'model' should be a file or directory with a SHA-256");
    free (failure);

    //  A hash the store does not have
    records [2]->kind = QANAT__ARTIFACT_KIND__ARTIFACT_FILE;
    records [2]->hash = (char *) "0000000000000000000000000000000000000000000000000000000000000000";
    failure = qn_artifacts_record (fix->artifacts, prepare, &attempt, &finished);
    assert_string_equal (failure, "output 'model' was not stored (blob 000000000000 missing)");
    free (failure);

    //  All there: recorded, with a reference on every blob, the
    //  directory's files included
    records [2]->hash = model_hash;
    failure = qn_artifacts_record (fix->artifacts, prepare, &attempt, &finished);
    assert_null (failure);
    assert_int_equal (attempt.n_outputs, 3);
    assert_string_equal (attempt.outputs [1]->value, "1000");
    assert_int_equal (qn_store_commit (fix->store), 0);
    assert_int_equal (qn_store_blob_get (fix->store, dir_hash, NULL, &refs), 1);
    assert_int_equal (refs, 1);
    assert_int_equal (qn_store_blob_get (fix->store, file_hash, NULL, &refs), 1);
    assert_int_equal (refs, 1);
    assert_int_equal (qn_store_blob_get (fix->store, model_hash, NULL, &refs), 1);
    assert_int_equal (refs, 1);

    //  Released (retention): every blob unreferenced, and collected
    Qanat__TaskInfo task = QANAT__TASK_INFO__INIT;
    Qanat__AttemptInfo *attempts [1] = { &attempt };
    task.attempts = attempts;
    task.n_attempts = 1;
    Qanat__TaskInfo *tasks [1] = { &task };
    assert_int_equal (qn_store_begin (fix->store), 0);
    assert_int_equal (qn_artifacts_release_tasks (fix->artifacts, tasks, 1), 0);
    //  A blob kept back (an upload whose attempt has not ended) survives
    zhashx_t *keep = zhashx_new ();
    zhashx_insert (keep, model_hash, (void *) 1);
    uint64_t freed = qn_artifacts_collect (fix->artifacts, keep);
    zhashx_destroy (&keep);
    assert_int_equal (qn_store_commit (fix->store), 0);
    assert_int_equal (freed, dir_size + 6 + 5);
    assert_false (qn_blobstore_has (qn_artifacts_blobs (fix->artifacts), dir_hash));
    assert_false (qn_blobstore_has (qn_artifacts_blobs (fix->artifacts), file_hash));
    assert_true (qn_blobstore_has (qn_artifacts_blobs (fix->artifacts), model_hash));

    for (size_t i = 0; i < attempt.n_outputs; i++)
        protobuf_c_message_free_unpacked ((ProtobufCMessage *) attempt.outputs [i], NULL);
    free (attempt.outputs);
    for (int i = 0; i < 3; i++)
        free (records [i]);
}

static void
test_s3_locations_and_inputs (void **state)
{
    fixture_t *fix = (fixture_t *) *state;
    const qn_task_t *prepare = qn_workflow_task (fix->wf, 0);
    const qn_task_t *train = qn_workflow_task (fix->wf, 1);
    char dir_hash [65], file_hash [65];
    size_t dir_size;
    s_directory (fix, dir_hash, &dir_size, file_hash);

    //  An S3 location is trusted as a record (the bucket is not ours to
    //  read) but must be one
    const char *hash = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";
    Qanat__OutputRecord *records [3] = {
        s_record ("data", QANAT__ARTIFACT_KIND__ARTIFACT_DIR, dir_hash, dir_size, "", ""),
        s_record ("rows", QANAT__ARTIFACT_KIND__ARTIFACT_VALUE, "", 2, "42", ""),
        s_record ("model", QANAT__ARTIFACT_KIND__ARTIFACT_FILE, hash, 9, "", "ftp://x/y")
    };
    Qanat__Finished finished = QANAT__FINISHED__INIT;
    finished.outputs = records;
    finished.n_outputs = 3;
    Qanat__AttemptInfo attempt = QANAT__ATTEMPT_INFO__INIT;
    attempt.attempt = 1;
    assert_int_equal (qn_store_begin (fix->store), 0);
    char *failure = qn_artifacts_record (fix->artifacts, prepare, &attempt, &finished);
    assert_string_equal (failure, "output 'model': unknown location");
    free (failure);
    records [2]->location = (char *) "s3://ml/blobs/fedcba";
    assert_null (qn_artifacts_record (fix->artifacts, prepare, &attempt, &finished));
    assert_int_equal (qn_store_commit (fix->store), 0);

    //  The consumer's inputs come from the producer's records, and the
    //  agent may fetch the directory's manifest and files (not the S3 one)
    Qanat__AttemptInfo *attempts [1] = { &attempt };
    Qanat__TaskInfo producer = QANAT__TASK_INFO__INIT;
    producer.status = QANAT__TASK_STATUS__TASK_SUCCEEDED;
    producer.attempts = attempts;
    producer.n_attempts = 1;
    Qanat__TaskInfo consumer = QANAT__TASK_INFO__INIT;
    Qanat__TaskInfo *tasks [2] = { &producer, &consumer };
    Qanat__RunInfo run = QANAT__RUN_INFO__INIT;
    run.tasks = tasks;
    run.n_tasks = 2;
    zhashx_t *allowed = zhashx_new ();
    Qanat__InputSpec **inputs = NULL;
    size_t count = 0;
    char *error = NULL;
    assert_int_equal (qn_artifacts_inputs (fix->artifacts, train, &run, allowed, &inputs, &count,
                                           &error), 0);
    assert_int_equal (count, 2);
    assert_string_equal (inputs [0]->name, "data");
    assert_int_equal (inputs [0]->kind, QANAT__ARTIFACT_KIND__ARTIFACT_DIR);
    assert_string_equal (inputs [0]->hash, dir_hash);
    assert_string_equal (inputs [0]->path, "data");
    assert_string_equal (inputs [1]->value, "42");
    assert_int_equal (zhashx_size (allowed), 3);         //  manifest + two files
    assert_non_null (zhashx_lookup (allowed, file_hash));

    //  The cache key: stable, and it changes with an input's content
    char *argv [] = { (char *) "/bin/sh", (char *) "-c", (char *) "train --rows '5'", NULL };
    char key1 [65], key2 [65], key3 [65];
    qn_artifacts_cache_key (fix->artifacts, "arts", train, argv, inputs, count, key1);
    qn_artifacts_cache_key (fix->artifacts, "arts", train, argv, inputs, count, key2);
    assert_string_equal (key1, key2);
    free (inputs [1]->value);
    inputs [1]->value = strdup ("43");
    qn_artifacts_cache_key (fix->artifacts, "arts", train, argv, inputs, count, key3);
    assert_string_not_equal (key1, key3);
    argv [2] = (char *) "train --rows '6'";
    qn_artifacts_cache_key (fix->artifacts, "arts", train, argv, inputs, count, key2);
    assert_string_not_equal (key2, key3);
    qn_artifacts_free_inputs (inputs, count);

    //  A producer without the output: a clear error
    attempt.n_outputs = 1;
    assert_int_equal (qn_artifacts_inputs (fix->artifacts, train, &run, NULL, &inputs, &count,
                                           &error), -1);
    assert_string_equal (error, "input 'rows': task 'prepare' has no recorded output 'rows'");
    free (error);
    attempt.n_outputs = 3;
    zhashx_destroy (&allowed);

    for (size_t i = 0; i < attempt.n_outputs; i++)
        protobuf_c_message_free_unpacked ((ProtobufCMessage *) attempt.outputs [i], NULL);
    free (attempt.outputs);
    for (int i = 0; i < 3; i++)
        free (records [i]);
}

//  The id qn_artifacts gives the object of hash in store
static void
s_s3_id (const Qanat__ArtifactStore *store, const char *hash, char id [65])
{
    char key [300];
    snprintf (key, sizeof key, "%sblobs/%s", store->prefix, hash);
    char *text = zsys_sprintf ("%s\n%s\n%s", store->endpoint, store->bucket, key);
    unsigned char digest [32];
    crypto_hash_sha256 (digest, (const unsigned char *) text, strlen (text));
    sodium_bin2hex (id, 65, digest, sizeof digest);
    zstr_free (&text);
}

//  S3 outputs are counted per object (a directory: its manifest, kept
//  here too, and each file); retention picks the unreferenced ones, and
//  a record of an object it is deleting, or has deleted, is trusted only
//  when the attempt put it there itself.
static void
test_s3_objects_counted_and_deleted (void **state)
{
    fixture_t *fix = (fixture_t *) *state;
    const qn_task_t *prepare = qn_workflow_task (fix->wf, 0);
    char dir_hash [65], file_hash [65], b_hash [65];
    size_t dir_size;
    s_directory (fix, dir_hash, &dir_size, file_hash);
    s_put (fix, "beta\n", b_hash);
    Qanat__ArtifactStore store = QANAT__ARTIFACT_STORE__INIT;
    store.kind = (char *) "s3";
    store.bucket = (char *) "ml";
    store.prefix = (char *) "env/";
    store.endpoint = (char *) "http://127.0.0.1:9000";
    const char *model = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";
    char *dir_location = zsys_sprintf ("s3://ml/env/blobs/%s", dir_hash);
    char *model_location = zsys_sprintf ("s3://ml/env/blobs/%s", model);
    Qanat__OutputRecord *records [3] = {
        s_record ("data", QANAT__ARTIFACT_KIND__ARTIFACT_DIR, dir_hash, dir_size, "", dir_location),
        s_record ("rows", QANAT__ARTIFACT_KIND__ARTIFACT_VALUE, "", 2, "42", ""),
        s_record ("model", QANAT__ARTIFACT_KIND__ARTIFACT_FILE, model, 9, "", model_location)
    };
    records [0]->store = records [2]->store = &store;
    Qanat__Finished finished = QANAT__FINISHED__INIT;
    finished.outputs = records;
    finished.n_outputs = 3;
    Qanat__AttemptInfo attempt = QANAT__ATTEMPT_INFO__INIT;
    attempt.attempt = 1;
    assert_int_equal (qn_store_begin (fix->store), 0);
    assert_null (qn_artifacts_record (fix->artifacts, prepare, &attempt, &finished));
    char id_model [65], id_manifest [65], id_a [65], id_b [65];
    s_s3_id (&store, model, id_model);
    s_s3_id (&store, dir_hash, id_manifest);
    s_s3_id (&store, file_hash, id_a);
    s_s3_id (&store, b_hash, id_b);
    const char *ids [] = { id_model, id_manifest, id_a, id_b };
    for (int i = 0; i < 4; i++) {
        qn_store_s3_object_t object;
        assert_int_equal (qn_store_s3_get (fix->store, ids [i], &object), 1);
        assert_int_equal (object.refs, 1);
        assert_int_equal (object.state, QN_STORE_S3_LIVE);
        qn_store_s3_object_clear (&object);
    }
    qn_store_s3_object_t object;
    assert_int_equal (qn_store_s3_get (fix->store, id_model, &object), 1);
    assert_string_equal (object.location, model_location);
    qn_store_s3_object_clear (&object);
    uint32_t refs = 0;
    assert_int_equal (qn_store_blob_get (fix->store, dir_hash, NULL, &refs), 1);
    assert_int_equal (refs, 1);                         //  the manifest is ours too

    //  Nothing to delete while referenced
    qn_store_s3_object_t *picked = NULL;
    size_t count = 9;
    int64_t now = zclock_time () * 1000;
    assert_int_equal (qn_artifacts_s3_pick (fix->artifacts, now, 0, &picked, &count, 100), 0);
    assert_int_equal (count, 0);
    qn_store_s3_objects_free (&picked, count);

    //  Released: picked once the grace is over, marked DELETING
    Qanat__AttemptInfo *attempts [1] = { &attempt };
    Qanat__TaskInfo task = QANAT__TASK_INFO__INIT;
    task.attempts = attempts;
    task.n_attempts = 1;
    Qanat__TaskInfo *tasks [1] = { &task };
    assert_int_equal (qn_artifacts_release_tasks (fix->artifacts, tasks, 1), 0);
    now = zclock_time () * 1000;
    assert_int_equal (qn_artifacts_s3_pick (fix->artifacts, now, 3600LL * 1000000, &picked,
                                            &count, 100), 0);
    assert_int_equal (count, 0);                        //  within the grace
    qn_store_s3_objects_free (&picked, count);
    assert_int_equal (qn_artifacts_s3_pick (fix->artifacts, now + 1000, 0, &picked, &count, 100),
                      0);
    assert_int_equal (count, 4);
    qn_store_s3_objects_free (&picked, count);
    assert_int_equal (qn_artifacts_s3_deleting (fix->artifacts, &picked, &count, 100), 0);
    assert_int_equal (count, 4);
    qn_store_s3_objects_free (&picked, count);

    //  A record meanwhile (found by HEAD, or even put again) is refused
    Qanat__AttemptInfo again = QANAT__ATTEMPT_INFO__INIT;
    again.attempt = 2;
    records [2]->uploaded = true;
    char *failure = qn_artifacts_record (fix->artifacts, prepare, &again, &finished);
    assert_non_null (failure);
    assert_non_null (strstr (failure, "being removed by retention"));
    free (failure);

    //  Deleted (tombstones), or not (live again)
    qn_artifacts_s3_deleted (fix->artifacts, id_model, true, now);
    qn_artifacts_s3_deleted (fix->artifacts, id_manifest, true, now);
    qn_artifacts_s3_deleted (fix->artifacts, id_a, true, now);
    qn_artifacts_s3_deleted (fix->artifacts, id_b, false, now);
    assert_int_equal (qn_store_s3_get (fix->store, id_b, &object), 1);
    assert_int_equal (object.state, QN_STORE_S3_LIVE);
    qn_store_s3_object_clear (&object);

    //  The model found by HEAD after its deletion: refused, tombstone gone
    records [2]->uploaded = false;
    records [0]->location = (char *) "";                 //  only the model is in S3 now
    s_put (fix, "unused\n", b_hash);
    char local_dir [65];
    size_t local_size;
    s_directory (fix, local_dir, &local_size, file_hash);
    records [0]->hash = local_dir;
    records [0]->store = NULL;
    failure = qn_artifacts_record (fix->artifacts, prepare, &again, &finished);
    assert_non_null (failure);
    assert_non_null (strstr (failure, "output 'model'"));
    free (failure);
    assert_int_equal (qn_store_s3_get (fix->store, id_model, NULL), 0);
    //  Put back by the retry: trusted, counted afresh
    records [2]->uploaded = true;
    qn_artifacts_s3_deleted (fix->artifacts, id_model, true, now);       //  no row: a no-op
    assert_null (qn_artifacts_record (fix->artifacts, prepare, &again, &finished));
    assert_int_equal (qn_store_s3_get (fix->store, id_model, &object), 1);
    assert_int_equal (object.state, QN_STORE_S3_LIVE);
    assert_int_equal (object.refs, 1);
    qn_store_s3_object_clear (&object);
    //  And a tombstone the uploaded record meets is simply replaced
    qn_store_s3_set_state (fix->store, id_manifest, QN_STORE_S3_DELETED, now);
    assert_int_equal (qn_store_commit (fix->store), 0);

    for (size_t i = 0; i < attempt.n_outputs; i++)
        protobuf_c_message_free_unpacked ((ProtobufCMessage *) attempt.outputs [i], NULL);
    free (attempt.outputs);
    for (size_t i = 0; i < again.n_outputs; i++)
        protobuf_c_message_free_unpacked ((ProtobufCMessage *) again.outputs [i], NULL);
    free (again.outputs);
    for (int i = 0; i < 3; i++)
        free (records [i]);
    zstr_free (&dir_location);
    zstr_free (&model_location);
}

static void
test_cache_lookup_needs_every_blob (void **state)
{
    fixture_t *fix = (fixture_t *) *state;
    char model_hash [65];
    s_put (fix, "weights", model_hash);
    //  A stored run whose task 1 attempt 2 succeeded with the model
    Qanat__RunInfo run = QANAT__RUN_INFO__INIT;
    run.run_id = 7;
    run.workflow = (char *) "arts";
    Qanat__OutputRecord *output = s_record ("model", QANAT__ARTIFACT_KIND__ARTIFACT_FILE,
                                            model_hash, 7, "", "");
    Qanat__AttemptInfo attempt = QANAT__ATTEMPT_INFO__INIT;
    attempt.attempt = 2;
    attempt.outputs = &output;
    attempt.n_outputs = 1;
    Qanat__AttemptInfo *attempts [1] = { &attempt };
    Qanat__TaskInfo task = QANAT__TASK_INFO__INIT;
    task.index = 1;
    task.name = (char *) "train";
    task.status = QANAT__TASK_STATUS__TASK_SUCCEEDED;
    task.attempts = attempts;
    task.n_attempts = 1;
    const char *key = "abababababababababababababababababababababababababababababababab";
    assert_int_equal (qn_store_begin (fix->store), 0);
    assert_int_equal (qn_store_put_run (fix->store, &run), 0);
    assert_int_equal (qn_store_put_task (fix->store, 7, &task), 0);
    assert_int_equal (qn_artifacts_cache_put (fix->artifacts, key, 7, 1, 2), 0);
    assert_int_equal (qn_store_commit (fix->store), 0);

    uint64_t run_id = 0;
    Qanat__AttemptInfo *found = NULL;
    assert_int_equal (qn_artifacts_cache_lookup (fix->artifacts, key, &run_id, &found), 1);
    assert_int_equal (run_id, 7);
    assert_int_equal (found->attempt, 2);
    assert_string_equal (found->outputs [0]->hash, model_hash);
    qanat__attempt_info__free_unpacked (found, NULL);

    //  The blob gone (retention): no hit
    assert_int_equal (qn_blobstore_remove (qn_artifacts_blobs (fix->artifacts), model_hash), 0);
    assert_int_equal (qn_artifacts_cache_lookup (fix->artifacts, key, &run_id, &found), 0);
    assert_null (found);
    free (output);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup_teardown (test_record_checks_every_declared_output, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (test_s3_locations_and_inputs, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_s3_objects_counted_and_deleted, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (test_cache_lookup_needs_every_blob, s_setup,
                                         s_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
