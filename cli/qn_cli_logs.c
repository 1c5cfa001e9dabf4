/*  qn_cli_logs - `qanat logs`: a run's logs, page by page, and with
    --follow until the run ends; --since, --tail and --timestamps; a
    header line where a task's next attempt begins; and how a log line is
    printed, which run --follow uses too.

    --since and --tail are applied here, to the lines as they come: a
    line is kept when its chunk's time is at or after --since, and --tail
    N keeps the last N of those (a first pass counts them, the second
    prints; with --follow, every line after them too).

    One of the files of the qn_cli class.
*/
#include "qn_cli.h"
#include "qn_json.h"
#include <ctype.h>
#include <string.h>

//  One segment of a chunk: a whole line, or the piece of one that a
//  partial chunk ends with (ends false)
typedef struct {
    const char *data;
    size_t len;
    bool ends;                          //  the line ends here
    bool newline;                       //  ...at a '\n' of the chunk
} s_segment_t;

//  The segments of a chunk, one at a time: -1 when there are no more
static int
s_next_segment (const Qanat__LogChunk *chunk, size_t *offset, s_segment_t *segment)
{
    size_t total = chunk->data.len;
    //  An empty chunk is one empty line; past its end there is nothing
    if (*offset > total || (*offset == total && total > 0))
        return -1;
    const char *data = (const char *) chunk->data.data + *offset;
    size_t left = total - *offset;
    const char *newline = left? (const char *) memchr (data, '\n', left): NULL;
    segment->data = data;
    segment->len = newline? (size_t) (newline - data): left;
    segment->newline = newline != NULL;
    segment->ends = newline || !chunk->partial;
    *offset += segment->len + (newline? 1: 0);
    if (*offset == total && total == 0)
        *offset = 1;                    //  the empty chunk's one line is done
    return 0;
}

static const char *
s_stream_name (const Qanat__LogChunk *chunk)
{
    return chunk->stream == QANAT__STREAM__STREAM_STDERR? "stderr"
         : chunk->stream == QANAT__STREAM__STREAM_SYSTEM? "system": "stdout";
}

static void
s_print_segment (const Qanat__LogLine *line, const s_segment_t *segment, bool prefix,
                 bool json, bool timestamps, bool *at_line_start)
{
    const Qanat__LogChunk *chunk = line->chunk;
    if (json) {
        json_t *object = json_pack ("{s:o,s:I,s:I,s:s,s:I,s:b,s:o}",
            "task", qn_json_text (line->task, line->task? strlen (line->task): 0),
            "attempt", (json_int_t) line->attempt,
            "seq", (json_int_t) line->seq,
            "stream", s_stream_name (chunk),
            "time_us", (json_int_t) chunk->time_us,
            "partial", !segment->ends,
            "data", qn_json_text (segment->data, segment->len));
        cli_json_print (object);
        return;
    }
    if (*at_line_start && timestamps) {
        char time [QN_JSON_TIME_SIZE];
        qn_json_time_format (chunk->time_us, time);
        printf ("%s ", *time? time: "-");
    }
    if (*at_line_start && prefix) {
        const char *tag = chunk->stream == QANAT__STREAM__STREAM_STDERR? "!"
                        : chunk->stream == QANAT__STREAM__STREAM_SYSTEM? "#": " ";
        if (line->attempt > 1)
            printf ("%s.%u%s| ", line->task, line->attempt, tag);
        else
            printf ("%s%s| ", line->task, tag);
    }
    fwrite (segment->data, 1, segment->len, stdout);
    if (segment->ends)
        fputc ('\n', stdout);
    *at_line_start = segment->ends;
}

void
cli_print_log_line (Qanat__LogLine *line, bool prefix, bool json, bool *at_line_start)
{
    if (!line->chunk)
        return;
    size_t offset = 0;
    s_segment_t segment;
    while (s_next_segment (line->chunk, &offset, &segment) == 0)
        s_print_segment (line, &segment, prefix, json, false, at_line_start);
}

//  ---------------------------------------------------------------------
//  What `qanat logs` shows of the lines it reads

typedef struct {
    qn_client_t *client;
    uint64_t run_id;
    const char *task;                   //  NULL: every task (lines prefixed)
    bool json;
    bool timestamps;
    int64_t since_us;                   //  0: from the start
    uint64_t skip;                      //  lines kept by --since, left out by --tail
    uint64_t counted;                   //  lines started (and kept by --since) so far
    bool counting;                      //  the first pass of --tail: count, print nothing
    bool dropping;                      //  the line being continued is left out
    bool at_line_start;
    Qanat__Envelope *run;               //  GetRun, for the attempts' headers (text only)
    zhashx_t *headed;                   //  "task/attempt" whose header was printed
} s_view_t;

static Qanat__TaskInfo *
s_view_task (s_view_t *self, const char *name)
{
    Qanat__RunInfo *run = self->run? self->run->reply->run: NULL;
    for (size_t t = 0; run && t < run->n_tasks; t++)
        if (streq (run->tasks [t]->name, name))
            return run->tasks [t];
    return NULL;
}

//  "── attempt 2 (agent gpu-1, started 2026-12-07 21:03:04) ──" before the
//  first line of each attempt of a task that has more than one
static void
s_view_header (s_view_t *self, const Qanat__LogLine *line)
{
    char key [300];
    snprintf (key, sizeof key, "%.200s/%u", line->task, line->attempt);
    if (zhashx_lookup (self->headed, key))
        return;
    zhashx_insert (self->headed, key, (void *) 1);
    Qanat__TaskInfo *task = s_view_task (self, line->task);
    if (task && line->attempt > task->n_attempts) {
        //  An attempt newer than our snapshot (--follow): look again
        qn_msg_free (&self->run);
        self->run = cli_get_run (self->client, self->run_id);
        task = s_view_task (self, line->task);
    }
    if (!task || (task->n_attempts < 2 && line->attempt < 2))
        return;
    Qanat__AttemptInfo *attempt = NULL;
    for (size_t a = 0; a < task->n_attempts; a++)
        if (task->attempts [a]->attempt == line->attempt)
            attempt = task->attempts [a];
    printf ("── attempt %u%s%s (agent %s, started %s) ──\n", line->attempt,
            self->task? "": " of ", self->task? "": line->task,
            attempt && attempt->agent && *attempt->agent? attempt->agent: "-",
            cli_time_text (attempt? attempt->started_us: 0));
}

static void
s_view_line (s_view_t *self, const Qanat__LogLine *line)
{
    if (!line->chunk)
        return;
    bool old = self->since_us && line->chunk->time_us < self->since_us;
    size_t offset = 0;
    s_segment_t segment;
    while (s_next_segment (line->chunk, &offset, &segment) == 0) {
        //  A line is kept or left out whole, where it starts
        if (self->at_line_start) {
            bool kept = !old && self->counted++ >= self->skip;
            self->dropping = self->counting || !kept;
        }
        if (!self->dropping) {
            if (!self->json && self->at_line_start)
                s_view_header (self, line);
            bool start = self->at_line_start;
            s_print_segment (line, &segment, !self->task, self->json, self->timestamps, &start);
        }
        self->at_line_start = segment.ends;
    }
}

//  Reads one page of logs; returns true when the run has ended and every
//  line was read.
static bool
s_logs_page (s_view_t *self, uint32_t attempt, ProtobufCBinaryData *cursor, size_t *lines_read)
{
    Qanat__ReadLogs read = QANAT__READ_LOGS__INIT;
    read.run_id = self->run_id;
    read.task = (char *) (self->task? self->task: "");
    read.attempt = attempt;
    read.cursor = *cursor;
    read.limit = 1000;
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.body_case = QANAT__REQUEST__BODY_READ_LOGS;
    request.read_logs = &read;
    Qanat__Envelope *reply = cli_call (self->client, &request);
    Qanat__LogPage *page = reply->reply->logs;
    for (size_t i = 0; i < page->n_lines; i++)
        s_view_line (self, page->lines [i]);
    fflush (stdout);
    *lines_read = page->n_lines;
    free (cursor->data);
    cursor->data = (uint8_t *) malloc (page->cursor.len? page->cursor.len: 1);
    memcpy (cursor->data, page->cursor.data, page->cursor.len);
    cursor->len = page->cursor.len;
    bool finished = page->run_finished;
    qn_msg_free (&reply);
    return finished;
}

//  Reads pages to the end (to the run's end and beyond, with follow)
static void
s_logs_read (s_view_t *self, uint32_t attempt, bool follow)
{
    ProtobufCBinaryData cursor = {0, NULL};
    while (true) {
        if (zsys_interrupted)
            cli_exit_interrupted ();
        size_t count = 0;
        bool finished = s_logs_page (self, attempt, &cursor, &count);
        if (finished || (!follow && count == 0))
            break;
        if (count == 0)
            zclock_sleep (200);
    }
    free (cursor.data);
}

int
cli_cmd_logs (options_t *options, int argc, char **argv)
{
    if (argc < 1 || argc > 2)
        return cli_usage_error ("logs");
    uint64_t run_id = cli_parse_run_id (argv [0]);
    unsigned long long tail = 0;
    if (options->tail) {
        char *end = NULL;
        errno = 0;
        tail = strtoull (options->tail, &end, 10);
        if (!isdigit ((unsigned char) *options->tail) || *end || errno) {
            fprintf (stderr, "%s: --tail wants a number of lines, not '%s'\n", cli_program,
                     options->tail);
            return EXIT_USAGE;
        }
    }
    s_view_t view = { 0 };
    view.run_id = run_id;
    view.task = argc > 1? argv [1]: NULL;
    view.json = options->json;
    view.timestamps = options->timestamps;
    view.since_us = options->since? cli_parse_since ("--since", options->since): 0;
    view.at_line_start = true;
    view.headed = zhashx_new ();
    view.client = cli_connect (options);
    if (!view.json)
        view.run = cli_get_run (view.client, run_id);
    if (options->tail) {
        //  The first pass counts what --since keeps; the second prints the last of it
        view.counting = true;
        s_logs_read (&view, options->attempt, false);
        view.skip = view.counted > tail? view.counted - tail: 0;
        view.counted = 0;
        view.counting = false;
        view.dropping = false;
        view.at_line_start = true;
    }
    if (options->follow)
        cli_followed_run = run_id;
    s_logs_read (&view, options->attempt, options->follow);
    zhashx_destroy (&view.headed);
    qn_msg_free (&view.run);
    qn_client_destroy (&view.client);
    return 0;
}
