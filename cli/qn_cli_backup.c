/*  qn_cli_backup - `qanat admin backup DIR`: asks the coordinator to copy
    its store, blobs and keys into DIR on its own host, and waits for the
    verified copy (docs/operations.md).

    One of the files of the qn_cli class.
*/
#include "qn_cli.h"

//  A backup of a large store takes a while: the call waits this long,
//  or --timeout when that is longer
#define BACKUP_WAIT_MS  (10 * 60 * 1000)

static long long
s_count (json_t *counts, const char *name)
{
    return (long long) json_integer_value (json_object_get (counts, name));
}

int
cli_cmd_admin (options_t *options, int argc, char **argv)
{
    if (argc != 2 || strcmp (argv [0], "backup"))
        return cli_usage_error ("admin");
    if (options->timeout_ms < BACKUP_WAIT_MS)
        options->timeout_ms = BACKUP_WAIT_MS;
    Qanat__Backup backup = QANAT__BACKUP__INIT;
    backup.dir = argv [1];
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.body_case = QANAT__REQUEST__BODY_BACKUP;
    request.backup = &backup;
    if (!options->json)
        fprintf (stderr, "%s: backing up into %s on the coordinator's host "
                 "(waiting up to %d s)...\n", cli_program, argv [1], options->timeout_ms / 1000);
    qn_client_t *client = cli_connect (options);
    Qanat__Envelope *reply = cli_call (client, &request);
    Qanat__BackupDone *done = reply->reply->backup_done;
    if (!done) {
        fprintf (stderr, "%s: the coordinator sent no backup report\n", cli_program);
        qn_msg_free (&reply);
        qn_client_destroy (&client);
        return EXIT_COORDINATOR;
    }
    json_t *manifest = json_loads (done->manifest, 0, NULL);
    if (options->json)
        cli_json_print (json_pack ("{s:s,s:I,s:I,s:o}", "dir", done->dir,
                                   "bytes", (json_int_t) done->bytes,
                                   "elapsed_ms", (json_int_t) done->elapsed_ms,
                                   "manifest", manifest? manifest: json_null ()));
    else {
        json_t *counts = json_object_get (manifest, "counts");
        printf ("backed up into %s (on the coordinator's host): %lld runs, %lld tasks, "
                "%lld log lines, %lld metric points, %lld blobs; %.1f MB in %.1f s, verified\n",
                done->dir, s_count (counts, "runs"), s_count (counts, "tasks"),
                s_count (counts, "logs"), s_count (counts, "metrics"), s_count (counts, "blobs"),
                done->bytes / 1e6, done->elapsed_ms / 1000.0);
        json_decref (manifest);
    }
    qn_msg_free (&reply);
    qn_client_destroy (&client);
    return 0;
}
