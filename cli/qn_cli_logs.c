/*  qn_cli_logs - `qanat logs`: a run's logs, page by page, and with
    --follow until the run ends; and how a log line is printed, which
    run --follow uses too.

    One of the files of the qn_cli class.
*/
#include "qn_cli.h"
#include "qn_json.h"
#include <string.h>

void
cli_print_log_line (Qanat__LogLine *line, bool prefix, bool json, bool *at_line_start)
{
    Qanat__LogChunk *chunk = line->chunk;
    if (!chunk)
        return;
    if (json) {
        //  A chunk holds one or more whole lines (or a piece of a long
        //  one): one JSON object per line.
        const char *data = (const char *) chunk->data.data;
        size_t left = chunk->data.len;
        do {
            const char *newline = left? (const char *) memchr (data, '\n', left): NULL;
            size_t len = newline? (size_t) (newline - data): left;
            json_t *object = json_pack ("{s:o,s:I,s:I,s:s,s:I,s:b,s:o}",
                "task", qn_json_text (line->task, line->task? strlen (line->task): 0),
                "attempt", (json_int_t) line->attempt,
                "seq", (json_int_t) line->seq,
                "stream", chunk->stream == QANAT__STREAM__STREAM_STDERR? "stderr"
                        : chunk->stream == QANAT__STREAM__STREAM_SYSTEM? "system": "stdout",
                "time_us", (json_int_t) chunk->time_us,
                "partial", chunk->partial && !newline,
                "data", qn_json_text (data, len));
            cli_json_print (object);
            data += len + (newline? 1: 0);
            left -= len + (newline? 1: 0);
        } while (left);
        return;
    }
    //  Each line of the chunk gets the prefix
    const char *tag = chunk->stream == QANAT__STREAM__STREAM_STDERR? "!"
                    : chunk->stream == QANAT__STREAM__STREAM_SYSTEM? "#": " ";
    const char *data = (const char *) chunk->data.data;
    size_t left = chunk->data.len;
    do {
        const char *newline = left? (const char *) memchr (data, '\n', left): NULL;
        size_t len = newline? (size_t) (newline - data): left;
        if (*at_line_start && prefix) {
            if (line->attempt > 1)
                printf ("%s.%u%s| ", line->task, line->attempt, tag);
            else
                printf ("%s%s| ", line->task, tag);
        }
        fwrite (data, 1, len, stdout);
        bool ends = newline || !chunk->partial;
        if (ends)
            fputc ('\n', stdout);
        *at_line_start = ends;
        data += len + (newline? 1: 0);
        left -= len + (newline? 1: 0);
    } while (left);
}

//  Reads one page of logs; returns true when the run has ended and every
//  line was read.
static bool
s_logs_page (qn_client_t *client, uint64_t run_id, const char *task, uint32_t attempt,
             ProtobufCBinaryData *cursor, bool prefix, bool json, bool *at_line_start,
             size_t *lines_read)
{
    Qanat__ReadLogs read = QANAT__READ_LOGS__INIT;
    read.run_id = run_id;
    read.task = (char *) (task? task: "");
    read.attempt = attempt;
    read.cursor = *cursor;
    read.limit = 1000;
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.body_case = QANAT__REQUEST__BODY_READ_LOGS;
    request.read_logs = &read;
    Qanat__Envelope *reply = cli_call (client, &request);
    Qanat__LogPage *page = reply->reply->logs;
    for (size_t i = 0; i < page->n_lines; i++)
        cli_print_log_line (page->lines [i], prefix, json, at_line_start);
    fflush (stdout);
    if (lines_read)
        *lines_read = page->n_lines;
    free (cursor->data);
    cursor->data = (uint8_t *) malloc (page->cursor.len? page->cursor.len: 1);
    memcpy (cursor->data, page->cursor.data, page->cursor.len);
    cursor->len = page->cursor.len;
    bool finished = page->run_finished;
    qn_msg_free (&reply);
    return finished;
}

int
cli_cmd_logs (options_t *options, int argc, char **argv)
{
    if (argc < 1 || argc > 2) {
        return cli_usage_error ("logs");
    }
    uint64_t run_id = cli_parse_run_id (argv [0]);
    const char *task = argc > 1? argv [1]: NULL;
    qn_client_t *client = cli_connect (options);
    ProtobufCBinaryData cursor = {0, NULL};
    bool at_line_start = true;
    if (options->follow)
        cli_followed_run = run_id;
    while (true) {
        if (zsys_interrupted)
            cli_exit_interrupted ();
        size_t count = 0;
        bool finished = s_logs_page (client, run_id, task, options->attempt, &cursor, !task,
                                     options->json, &at_line_start, &count);
        if (finished || (!options->follow && count == 0))
            break;
        if (count == 0)
            zclock_sleep (200);
    }
    free (cursor.data);
    qn_client_destroy (&client);
    return 0;
}
