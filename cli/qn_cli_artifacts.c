/*  qn_cli_artifacts - files in and out of the coordinator: put (and
    run --param NAME=@PATH, through cli_put_path), artifacts, and get,
    from the coordinator's blob store or straight from an S3 bucket.
    Everything moves in MiB pieces and is verified by its SHA-256.

    One of the files of the qn_cli class.
*/
#include "qn_cli.h"
#include "qn_blobstore.h"
#include "qn_s3.h"
#include "qn_tree.h"
#include <fcntl.h>
#include <ftw.h>

//  ---------------------------------------------------------------------
//  Feeding files in: qanat put, and --param NAME=@PATH

//  Puts one blob into the coordinator's store, a MiB at a time, from fd
//  (or from memory when fd is -1); each answer says how much the
//  coordinator holds, so a put cut short resumes where it stopped and
//  content it has already is not sent again.
static int
s_put_blob (qn_client_t *client, const char *hash, uint64_t size, int fd, const char *memory)
{
    uint8_t *buffer = (uint8_t *) malloc (1024 * 1024);
    if (!buffer)
        return -1;
    uint64_t offset = 0;
    int stalls = 0;
    int rc = -1;
    bool asked = false;
    while (stalls < 3) {
        size_t len = size - offset > 1024 * 1024? 1024 * 1024: (size_t) (size - offset);
        //  First only ask what the coordinator holds: content it has is
        //  never sent, and a put cut short resumes where it stopped
        if (!asked && size > 0)
            len = 0;
        asked = true;
        const uint8_t *data = buffer;
        if (fd == -1)
            data = (const uint8_t *) memory + offset;
        else
        if (len && pread (fd, buffer, len, (off_t) offset) != (ssize_t) len) {
            fprintf (stderr, "qanat: cannot read: %s\n", strerror (errno));
            break;
        }
        Qanat__PutBlob put = QANAT__PUT_BLOB__INIT;
        put.hash = (char *) hash;
        put.offset = offset;
        put.total_size = size;
        put.data.data = (uint8_t *) data;
        put.data.len = len;
        Qanat__Request request = QANAT__REQUEST__INIT;
        request.body_case = QANAT__REQUEST__BODY_PUT_BLOB;
        request.put_blob = &put;
        Qanat__Envelope *reply = cli_call (client, &request);
        uint64_t held = reply->reply->blob? reply->reply->blob->offset: 0;
        qn_msg_free (&reply);
        if (held == size) {
            rc = 0;
            break;
        }
        stalls = held == offset + len? 0: stalls + 1;
        offset = held > size? size: held;
    }
    if (rc && stalls >= 3)
        fprintf (stderr, "qanat: the coordinator does not take blob %.12s\n", hash);
    free (buffer);
    return rc;
}

static int
s_put_file (qn_client_t *client, const char *path, const char *hash, uint64_t size)
{
    int fd = open (path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        fprintf (stderr, "qanat: %s: %s\n", path, strerror (errno));
        return -1;
    }
    int rc = s_put_blob (client, hash, size, fd, NULL);
    close (fd);
    return rc;
}

//  Puts a local file or directory (every file, then its manifest) and
//  returns its reference, "file:<sha256>" or "dir:<sha256>" (malloc'd),
//  with its bytes in *bytes_p; NULL after saying why.
char *
cli_put_path (qn_client_t *client, const char *path, uint64_t *bytes_p)
{
    return cli_put_filtered (client, path, NULL, NULL, bytes_p, NULL);
}

char *
cli_put_filtered (qn_client_t *client, const char *path, qn_tree_filter_fn *keep, void *arg,
                  uint64_t *bytes_p, bool *unreadable_p)
{
    char *full = realpath (path, NULL);
    struct stat st;
    if (!full || stat (full, &st) == -1 || !(S_ISREG (st.st_mode) || S_ISDIR (st.st_mode))) {
        fprintf (stderr, "qanat: %s: %s\n", path, full? "not a file or a directory"
                                                      : strerror (errno));
        free (full);
        return NULL;
    }
    char *slash = strrchr (full, '/');
    const char *leaf = slash + 1;
    *slash = 0;
    const char *parent = *full? full: "/";
    char *error = NULL, *ref = NULL;
    qn_tree_t *tree = *leaf? qn_tree_scan_filtered (parent, leaf, keep, arg, &error): NULL;
    if (!tree)
        fprintf (stderr, "qanat: %s: %s\n", path, error? error: "cannot read it");
    if (!tree && unreadable_p)
        *unreadable_p = true;
    for (size_t e = 0; tree && e < qn_tree_count (tree); e++) {
        const qn_tree_entry_t *entry = qn_tree_entry (tree, e);
        char file [8192];
        if (qn_tree_is_dir (tree))
            snprintf (file, sizeof file, "%s/%s/%s", parent, leaf, entry->path);
        else
            snprintf (file, sizeof file, "%s/%s", parent, leaf);
        if (s_put_file (client, file, entry->hash, entry->size) == -1)
            qn_tree_destroy (&tree);
    }
    if (tree && !qn_tree_is_dir (tree))
        ref = zsys_sprintf ("file:%s", qn_tree_entry (tree, 0)->hash);
    else
    if (tree) {
        size_t size = 0;
        char hash [QN_BLOB_HASH_HEX + 1];
        char *manifest = qn_tree_manifest (tree, &size);
        if (manifest && qn_tree_manifest_hash (tree, hash) == 0
        &&  s_put_blob (client, hash, size, -1, manifest) == 0)
            ref = zsys_sprintf ("dir:%s", hash);
        free (manifest);
    }
    if (tree)
        *bytes_p = qn_tree_bytes (tree);
    qn_tree_destroy (&tree);
    free (error);
    free (full);
    return ref;
}

int
cli_cmd_put (options_t *options, int argc, char **argv)
{
    if (argc != 1) {
        return cli_usage_error ("put");
    }
    qn_client_t *client = cli_connect (options);
    uint64_t bytes = 0;
    char *ref = cli_put_path (client, argv [0], &bytes);
    int failed = ref? 0: cli_failure_code (client, EXIT_USAGE);
    qn_client_destroy (&client);
    if (!ref)
        return failed;
    if (options->json) {
        cli_json_print (json_pack ("{s:o,s:I}", "ref", cli_json_text (ref), "bytes", (json_int_t) bytes));
    }
    else {
        //  The reference alone on stdout, for $(qanat put PATH)
        printf ("%s\n", ref);
        fprintf (stderr, "qanat: stored %s (%llu bytes); give it to a run as --param NAME=%s\n",
                 argv [0], (unsigned long long) bytes, ref);
    }
    zstr_free (&ref);
    return 0;
}

//  ---------------------------------------------------------------------
//  Getting outputs out: qanat artifacts, qanat get

static const char *
s_kind_name (Qanat__ArtifactKind kind)
{
    return kind == QANAT__ARTIFACT_KIND__ARTIFACT_DIR? "dir"
         : kind == QANAT__ARTIFACT_KIND__ARTIFACT_VALUE? "value": "file";
}

//  The outputs of a task's successful attempt, or NULL
static Qanat__AttemptInfo *
s_output_attempt (Qanat__TaskInfo *task)
{
    if (task->status != QANAT__TASK_STATUS__TASK_SUCCEEDED || task->n_attempts == 0)
        return NULL;
    return task->attempts [task->n_attempts - 1];
}

//  Fetches one blob from the coordinator into blobs, a MiB at a time,
//  each piece and the whole verified by the blob store.
static int
s_fetch_blob (qn_client_t *client, qn_blobstore_t *blobs, const char *hash)
{
    if (qn_blobstore_has (blobs, hash))
        return 0;
    uint64_t offset = 0, total = 0;
    do {
        Qanat__GetBlob get = QANAT__GET_BLOB__INIT;
        get.hash = (char *) hash;
        get.offset = offset;
        get.size = 1024 * 1024;
        Qanat__Request request = QANAT__REQUEST__INIT;
        request.body_case = QANAT__REQUEST__BODY_GET_BLOB;
        request.get_blob = &get;
        Qanat__Envelope *reply = cli_call (client, &request);
        Qanat__BlobData *data = reply->reply->blob;
        total = data->total_size;
        char error [256];
        if (data->offset != offset || (data->data.len == 0 && offset < total)
        ||  qn_blobstore_write (blobs, hash, offset, data->data.data, data->data.len, NULL,
                                error, sizeof error)) {
            fprintf (stderr, "qanat: blob %.12s: bad piece at %llu\n", hash,
                     (unsigned long long) offset);
            qn_msg_free (&reply);
            return -1;
        }
        offset += data->data.len;
        qn_msg_free (&reply);
    } while (offset < total);
    char error [256];
    if (qn_blobstore_finish (blobs, hash, total, error, sizeof error)) {
        fprintf (stderr, "qanat: blob %.12s: %s\n", hash, error);
        return -1;
    }
    return 0;
}

//  Where `qanat get` takes blobs from: the coordinator, or the S3 store
//  the output's record names (its producer's or its workflow's)
typedef struct {
    qn_client_t *client;
    qn_s3_t *s3;                //  NULL = the coordinator
    char *prefix;               //  of the S3 keys: <prefix>blobs/<sha256>
    const char *scratch;        //  a private directory for downloads
} s_blob_source_t;

//  Fetches one blob into blobs from the source, verified by its hash
static int
s_fetch_from (s_blob_source_t *source, qn_blobstore_t *blobs, const char *hash)
{
    if (!source->s3)
        return s_fetch_blob (source->client, blobs, hash);
    if (qn_blobstore_has (blobs, hash))
        return 0;
    char key [1200], path [4200], error [1400] = "", got [QN_BLOB_HASH_HEX + 1];
    qn_s3_blob_key (source->prefix, hash, key, sizeof key);
    snprintf (path, sizeof path, "%s/download", source->scratch);
    uint64_t size = 0;
    int rc = qn_s3_get_file (source->s3, key, path, error, sizeof error);
    if (rc == 0 && qn_blobstore_put_file (blobs, path, got, &size, error, sizeof error) == 0
    &&  strcmp (got, hash) != 0) {
        snprintf (error, sizeof error, "s3 object %s does not match its SHA-256", key);
        rc = -1;
    }
    unlink (path);
    if (rc == -1 || *error) {
        fprintf (stderr, "qanat: %s\n", *error? error: "cannot fetch from S3");
        return -1;
    }
    return 0;
}

//  Opens the S3 store of an output with a location: the store its record
//  names, else the bucket and prefix of the location itself, with
//  endpoint and region from the usual AWS places.  -1 with a message.
static int
s_open_s3_source (s_blob_source_t *source, const Qanat__OutputRecord *output)
{
    const Qanat__ArtifactStore *store = output->store && output->store->bucket
                                     && *output->store->bucket? output->store: NULL;
    const char *bucket = output->location + 5;
    const char *slash = strchr (bucket, '/');
    const char *blobs = slash? strstr (slash, "blobs/"): NULL;
    if (!slash || !blobs) {
        fprintf (stderr, "qanat: cannot read the location %s\n", output->location);
        return -1;
    }
    char *bucket_name = strndup (bucket, (size_t) (slash - bucket));
    source->prefix = store? strdup (store->prefix? store->prefix: "")
                          : strndup (slash + 1, (size_t) (blobs - slash - 1));
    qn_s3_config_t config;
    memset (&config, 0, sizeof config);
    config.bucket = store? store->bucket: bucket_name;
    config.endpoint = store && store->endpoint && *store->endpoint? store->endpoint: NULL;
    config.region = store && store->region && *store->region? store->region: NULL;
    config.path_style = store? store->path_style: false;
    char *error = NULL;
    source->s3 = bucket_name && source->prefix? qn_s3_new (&config, &error): NULL;
    if (!source->s3)
        fprintf (stderr, "qanat: s3: %s\n", error? error: "out of memory");
    free (error);
    free (bucket_name);
    return source->s3? 0: -1;
}

static int
s_remove_entry (const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) st; (void) flag; (void) ftw;
    return remove (path);
}

//  A private blob store for downloads, made when first needed
typedef struct {
    qn_client_t *client;
    char dir [4096];
    qn_blobstore_t *blobs;
} s_scratch_t;

static qn_blobstore_t *
s_scratch_blobs (s_scratch_t *self)
{
    if (!self->blobs && !*self->dir) {
        const char *tmp = getenv ("TMPDIR");
        snprintf (self->dir, sizeof self->dir, "%s/qanat-get-XXXXXX", tmp && *tmp? tmp: "/tmp");
        if (mkdtemp (self->dir))
            self->blobs = qn_blobstore_new (self->dir);
        else
            strcpy (self->dir, "-");    //  tried: not again
    }
    return self->blobs;
}

static void
s_scratch_free (s_scratch_t *self)
{
    qn_blobstore_destroy (&self->blobs);
    if (*self->dir && !streq (self->dir, "-"))
        nftw (self->dir, s_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

//  The bytes of a directory output's files, from its manifest (fetched
//  from where the output is); -1 when it cannot be read
static int64_t
s_dir_bytes (s_scratch_t *scratch, const Qanat__OutputRecord *output)
{
    qn_blobstore_t *blobs = s_scratch_blobs (scratch);
    s_blob_source_t source = { .client = scratch->client, .scratch = scratch->dir };
    int64_t bytes = -1;
    if (blobs && (!output->location || !*output->location || s_open_s3_source (&source, output) == 0)
    &&  s_fetch_from (&source, blobs, output->hash) == 0) {
        qn_tree_t *tree = qn_tree_load_manifest (blobs, output->hash, output->size, NULL);
        if (tree)
            bytes = (int64_t) qn_tree_bytes (tree);
        qn_tree_destroy (&tree);
    }
    qn_s3_destroy (&source.s3);
    free (source.prefix);
    return bytes;
}

int
cli_cmd_artifacts (options_t *options, int argc, char **argv)
{
    if (argc != 1) {
        return cli_usage_error ("artifacts");
    }
    uint64_t run_id = cli_parse_run_id (argv [0]);
    qn_client_t *client = cli_connect (options);
    Qanat__Envelope *reply = cli_get_run (client, run_id);
    Qanat__RunInfo *run = reply->reply->run;
    s_scratch_t scratch = { .client = client };
    json_t *items = json_array ();
    cli_table_t *table = cli_table_new ("TASK OUTPUT KIND >SIZE SHA-256/VALUE LOCATION");
    for (size_t t = 0; t < run->n_tasks; t++) {
        Qanat__AttemptInfo *attempt = s_output_attempt (run->tasks [t]);
        for (size_t o = 0; attempt && o < attempt->n_outputs; o++) {
            Qanat__OutputRecord *output = attempt->outputs [o];
            //  A directory's record holds its manifest's size: the files' sum is in it
            int64_t size = output->kind == QANAT__ARTIFACT_KIND__ARTIFACT_DIR
                         ? s_dir_bytes (&scratch, output): (int64_t) output->size;
            char size_text [32] = "?";
            if (size >= 0)
                snprintf (size_text, sizeof size_text, "%lld", (long long) size);
            json_array_append_new (items, json_pack ("{s:o,s:o,s:s,s:o,s:o,s:o,s:o,s:I}",
                "task", cli_json_text (run->tasks [t]->name),
                "output", cli_json_text (output->name), "kind", s_kind_name (output->kind),
                "size", size >= 0? json_integer (size): json_null (),
                "hash", cli_json_text (output->hash), "value", cli_json_text (output->value),
                "location", cli_json_text (output->location),
                "cached_from", (json_int_t) run->tasks [t]->cached_from));
            cli_table_add (table, run->tasks [t]->name, output->name, s_kind_name (output->kind),
                           size_text, output->kind == QANAT__ARTIFACT_KIND__ARTIFACT_VALUE
                                      ? output->value: output->hash,
                           output->location);
        }
    }
    if (options->json)
        cli_json_print (items);
    else {
        json_decref (items);
        cli_table_print (table, stdout);
    }
    cli_table_destroy (&table);
    s_scratch_free (&scratch);
    qn_msg_free (&reply);
    qn_client_destroy (&client);
    return 0;
}

//  What `qanat get --json` got: the value, or the file or directory's
//  hash; and the path and bytes written, if it wrote any.
static void
s_print_output_json (const char *task, const Qanat__OutputRecord *output,
                     const char *path, uint64_t bytes)
{
    bool value = output->kind == QANAT__ARTIFACT_KIND__ARTIFACT_VALUE;
    json_t *object = json_pack ("{s:o,s:o,s:s}", "task", cli_json_text (task),
                                "output", cli_json_text (output->name),
                                "kind", s_kind_name (output->kind));
    json_object_set_new (object, value? "value": "hash",
                         cli_json_text (value? output->value: output->hash));
    if (path) {
        json_object_set_new (object, "path", cli_json_text (path));
        json_object_set_new (object, "bytes", json_integer ((json_int_t) bytes));
    }
    cli_json_print (object);
}

//  A file output's verified bytes on stdout (get --out -); a directory
//  has no one stream to go to
static int
s_blob_to_stdout (qn_blobstore_t *blobs, const Qanat__OutputRecord *output)
{
    if (output->kind == QANAT__ARTIFACT_KIND__ARTIFACT_DIR) {
        fprintf (stderr, "%s: %s is a directory: give --out DIR, not --out -\n", cli_program,
                 output->name);
        return EXIT_USAGE;
    }
    char path [4096];
    FILE *in = qn_blobstore_path (blobs, output->hash, path, sizeof path) == 0
             ? fopen (path, "rb"): NULL;
    if (!in) {
        fprintf (stderr, "%s: cannot read the fetched %s\n", cli_program, output->name);
        return EXIT_USAGE;
    }
    char buffer [65536];
    size_t got;
    while ((got = fread (buffer, 1, sizeof buffer, in)) > 0)
        fwrite (buffer, 1, got, stdout);
    fclose (in);
    return fflush (stdout) == 0? 0: EXIT_USAGE;
}

//  A target that exists is replaced only with --force: true (after saying
//  so) when it must be left alone
static bool
s_target_taken (options_t *options, const char *target)
{
    struct stat st;
    if (options->force || lstat (target, &st) == -1)
        return false;
    fprintf (stderr, "%s: %s exists: add --force to replace it%s\n", cli_program, target,
             S_ISDIR (st.st_mode)? " (files of the output replace theirs; others stay)": "");
    return true;
}

//  Staging leaves files read-only (0444 or 0555, as tasks get their
//  inputs); a download is the user's: 0666 or 0777 (the recorded execute
//  bit) less the umask, as any new file
static void
s_user_modes (qn_tree_t *tree, const char *target)
{
    mode_t mask = umask (0);
    umask (mask);
    for (size_t e = 0; e < qn_tree_count (tree); e++) {
        const qn_tree_entry_t *entry = qn_tree_entry (tree, e);
        char path [8192];
        if (qn_tree_is_dir (tree))
            snprintf (path, sizeof path, "%s/%s", target, entry->path);
        else
            snprintf (path, sizeof path, "%s", target);
        if (chmod (path, ((entry->mode & 0111)? 0777: 0666) & ~mask))
            fprintf (stderr, "%s: cannot set the mode of %s: %s\n", cli_program, path,
                     strerror (errno));
    }
}

int
cli_cmd_get (options_t *options, int argc, char **argv)
{
    const char *dot = argc == 2? strchr (argv [1], '.'): NULL;
    if (argc != 2 || !dot || dot == argv [1] || !dot [1]) {
        return cli_usage_error ("get");
    }
    uint64_t run_id = cli_parse_run_id (argv [0]);
    char *task_name = strndup (argv [1], (size_t) (dot - argv [1]));
    const char *output_name = dot + 1;
    qn_client_t *client = cli_connect (options);
    Qanat__Envelope *reply = cli_get_run (client, run_id);
    Qanat__RunInfo *run = reply->reply->run;
    Qanat__OutputRecord *output = NULL;
    bool task_found = false;
    for (size_t t = 0; t < run->n_tasks && !output; t++) {
        if (!streq (run->tasks [t]->name, task_name))
            continue;
        task_found = true;
        Qanat__AttemptInfo *attempt = s_output_attempt (run->tasks [t]);
        for (size_t o = 0; attempt && o < attempt->n_outputs && !output; o++)
            if (streq (attempt->outputs [o]->name, output_name))
                output = attempt->outputs [o];
    }
    int rc = 0;
    //  --out - (or no --out for a value) writes to stdout
    bool to_file = options->out && !streq (options->out, "-");
    bool to_stdout = options->out && streq (options->out, "-");
    if (!output) {
        if (task_found)
            fprintf (stderr, "%s: task %s of run %llu has no output %s (it may not have "
                     "succeeded)\n", cli_program, task_name, (unsigned long long) run_id,
                     output_name);
        else
            fprintf (stderr, "%s: run %llu has no task %s\n", cli_program,
                     (unsigned long long) run_id, task_name);
        rc = EXIT_NOT_FOUND;
    }
    else
    if ((to_file || (!to_stdout && output->kind != QANAT__ARTIFACT_KIND__ARTIFACT_VALUE))
    &&  s_target_taken (options, to_file? options->out: output_name))
        rc = EXIT_CONFLICT;
    else
    if (output->kind == QANAT__ARTIFACT_KIND__ARTIFACT_VALUE) {
        FILE *out = to_file? fopen (options->out, "w"): stdout;
        if (!out) {
            fprintf (stderr, "qanat: %s: %s\n", options->out, strerror (errno));
            rc = EXIT_USAGE;
        }
        else {
            //  With --out the file gets the value itself, as without --json
            if (options->json && out == stdout)
                s_print_output_json (task_name, output, NULL, 0);
            else
                fprintf (out, "%s\n", output->value);
            if (out != stdout)
                fclose (out);
            if (options->json && out != stdout)
                s_print_output_json (task_name, output, options->out,
                                     strlen (output->value) + 1);
        }
    }
    else {
        //  Into a private blob store first, verified, then staged safely;
        //  from the coordinator, or straight from the output's bucket
        s_scratch_t scratch = { .client = client };
        qn_blobstore_t *blobs = s_scratch_blobs (&scratch);
        s_blob_source_t source = { .client = client, .scratch = scratch.dir };
        qn_tree_t *tree = NULL;
        char *error = NULL;
        int failed = EXIT_COORDINATOR;     //  or the store it is in
        if (output->location && *output->location && s_open_s3_source (&source, output) == -1)
            rc = failed;
        if (rc || !blobs || s_fetch_from (&source, blobs, output->hash))
            rc = failed;
        else
        if (output->kind == QANAT__ARTIFACT_KIND__ARTIFACT_DIR) {
            tree = qn_tree_load_manifest (blobs, output->hash, output->size, &error);
            for (size_t e = 0; tree && e < qn_tree_count (tree) && rc == 0; e++)
                if (s_fetch_from (&source, blobs, qn_tree_entry (tree, e)->hash))
                    rc = failed;
        }
        else
            tree = qn_tree_for_file (output->hash, output->size);
        if (rc == 0 && tree && to_stdout)
            rc = s_blob_to_stdout (blobs, output);
        else
        if (rc == 0 && tree) {
            char target [4096];
            snprintf (target, sizeof target, "%s", options->out? options->out: output_name);
            char *slash = strrchr (target, '/');
            const char *parent = slash? (slash == target? "/": target): ".";
            const char *leaf = slash? slash + 1: target;
            if (slash)
                *slash = 0;
            if (!*leaf || qn_tree_stage (tree, blobs, parent, leaf, NULL, NULL, &error))
                rc = EXIT_USAGE;
            else {
                if (slash)
                    *slash = '/';
                s_user_modes (tree, target);
                if (options->json)
                    s_print_output_json (task_name, output, target, qn_tree_bytes (tree));
                else
                    printf ("%s.%s -> %s (%llu bytes)\n", task_name, output_name, target,
                            (unsigned long long) qn_tree_bytes (tree));
            }
        }
        else
        if (rc == 0)
            rc = failed;
        if (error)
            fprintf (stderr, "qanat: %s\n", error);
        free (error);
        qn_tree_destroy (&tree);
        qn_s3_destroy (&source.s3);
        free (source.prefix);
        s_scratch_free (&scratch);
    }
    free (task_name);
    qn_msg_free (&reply);
    qn_client_destroy (&client);
    return rc;
}
