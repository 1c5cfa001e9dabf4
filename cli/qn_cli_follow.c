/*  qn_cli_follow - `qanat run --follow`: a run's progress and logs as they
    come, to its end.

    Following a run merges three kinds of lines in time order: a task's
    attempt starting, its log lines, and the attempt ending.  Each loop
    turn takes a snapshot of the run, then reads the logs: every line of an
    attempt that had ended in the snapshot is stored by then (its end was
    committed after its last line), so an end never comes before its logs.

    One of the files of the qn_cli class.
*/
#include "qn_cli.h"

typedef enum { ITEM_START, ITEM_LOG, ITEM_END, ITEM_NOTE } item_kind_t;

typedef struct {
    int64_t time;
    item_kind_t kind;
    size_t order;                   //  keeps the sort stable
    Qanat__TaskInfo *task;
    Qanat__AttemptInfo *attempt;
    Qanat__LogLine *line;
} follow_item_t;

typedef struct {
    char *name;
    uint32_t started;               //  highest attempt announced as started
    uint32_t ended;                 //  highest attempt announced as ended
    bool closed;                    //  final status printed
    char *note;                     //  last waiting reason printed
    unsigned retries;               //  from a "retry N of R" reason seen, 0 if none
} follow_task_t;

static int
s_item_compare (const void *a, const void *b)
{
    const follow_item_t *x = (const follow_item_t *) a, *y = (const follow_item_t *) b;
    if (x->time != y->time)
        return x->time < y->time? -1: 1;
    if (x->kind != y->kind)
        return x->kind < y->kind? -1: 1;
    return x->order < y->order? -1: x->order > y->order;
}

static follow_task_t *
s_follow_task (follow_task_t *tasks, size_t count, const char *name)
{
    for (size_t t = 0; t < count; t++)
        if (streq (tasks [t].name, name))
            return &tasks [t];
    return NULL;
}

static bool
s_task_ended (Qanat__TaskStatus status)
{
    return status == QANAT__TASK_STATUS__TASK_SUCCEEDED || status == QANAT__TASK_STATUS__TASK_FAILED
        || status == QANAT__TASK_STATUS__TASK_SKIPPED || status == QANAT__TASK_STATUS__TASK_CANCELED;
}

//  Adds the start, end and note items of a snapshot not yet printed.
//  with_ends is false when the logs read after the snapshot may be
//  incomplete (a full page), so ends wait for the next turn.
static void
s_follow_collect (Qanat__RunInfo *run, follow_task_t *tracked, size_t tracked_count,
                  follow_item_t *items, size_t *count, bool with_ends)
{
    for (size_t t = 0; t < run->n_tasks; t++) {
        Qanat__TaskInfo *task = run->tasks [t];
        follow_task_t *state = s_follow_task (tracked, tracked_count, task->name);
        if (!state || state->closed)
            continue;
        for (size_t a = 0; a < task->n_attempts; a++) {
            Qanat__AttemptInfo *attempt = task->attempts [a];
            if (attempt->attempt > state->started)
                items [(*count)++] = (follow_item_t) {attempt->started_us, ITEM_START, *count, task, attempt, NULL};
            bool last = a + 1 == task->n_attempts;
            //  A failed attempt whose retry waits ends now, with the wait
            bool waits = attempt->finished && task->status == QANAT__TASK_STATUS__TASK_QUEUED;
            bool over = last? s_task_ended (task->status) || waits: attempt->finished;
            if (with_ends && over && attempt->attempt > state->ended)
                items [(*count)++] = (follow_item_t) {attempt->finished_us, ITEM_END, *count, task, attempt, NULL};
        }
        unsigned retry = 0, retries = 0;
        if (task->waiting_reason
        &&  sscanf (task->waiting_reason, "retry %u of %u", &retry, &retries) == 2)
            state->retries = retries;
        bool note = task->n_attempts == 0 && task->waiting_reason && *task->waiting_reason
                 && (!state->note || !streq (state->note, task->waiting_reason));
        if (with_ends && note)
            items [(*count)++] = (follow_item_t) {INT64_MAX, ITEM_NOTE, *count, task, NULL, NULL};
    }
}

static void
s_follow_print (follow_item_t *item, follow_task_t *state, bool *at_line_start)
{
    Qanat__TaskInfo *task = item->task;
    Qanat__AttemptInfo *attempt = item->attempt;
    if (item->kind != ITEM_LOG && !*at_line_start) {
        putchar ('\n');
        *at_line_start = true;
    }
    switch (item->kind) {
        case ITEM_LOG:
            cli_print_log_line (item->line, true, false, at_line_start);
            break;
        case ITEM_START:
            if (attempt->attempt <= state->started)
                break;
            if (cli_attempt_cached (attempt))
                printf ("==> %s cached from run %llu\n", task->name,
                        (unsigned long long) task->cached_from);
            else
                printf ("==> %s started on %s (attempt %u)\n", task->name, attempt->agent,
                        attempt->attempt);
            state->started = attempt->attempt;
            break;
        case ITEM_END: {
            if (attempt->attempt <= state->ended)
                break;
            state->ended = attempt->attempt;
            if (cli_attempt_cached (attempt)) {
                state->closed = true;     //  its start line said it all
                break;
            }
            bool last = attempt == task->attempts [task->n_attempts - 1];
            bool retried = !last || task->status == QANAT__TASK_STATUS__TASK_QUEUED;
            printf ("==> %s %s in %s", task->name,
                    cli_status_paint (retried? "failed": qn_task_status_name (task->status)),
                    cli_duration_text (attempt->started_us, attempt->finished_us));
            if (attempt->reason && *attempt->reason)
                printf (": %s", attempt->reason);
            if (retried) {
                size_t index = 0;
                while (task->attempts [index] != attempt)
                    index++;
                char *retry = cli_retry_text (task, index, state->retries);
                printf ("; %s", retry);
                free (retry);
            }
            printf ("\n");
            state->closed = last && !retried;
            break;
        }
        case ITEM_NOTE:
            const char *reason = task->waiting_reason;
            if (strncmp (reason, "skipped: ", 9) == 0)
                reason += 9;
            printf ("==> %s %s: %s\n", task->name, qn_task_status_name (task->status), reason);
            free (state->note);
            state->note = strdup (task->waiting_reason);
            state->closed = s_task_ended (task->status);
            break;
    }
}

//  Room for every item one snapshot can add.
static size_t
s_follow_slots (Qanat__RunInfo *run)
{
    size_t slots = 1;
    for (size_t t = 0; t < run->n_tasks; t++)
        slots += 2 * run->tasks [t]->n_attempts + 1;
    return slots;
}

static int
s_run_exit_code (Qanat__RunStatus status)
{
    return status == QANAT__RUN_STATUS__RUN_SUCCEEDED
        || status == QANAT__RUN_STATUS__RUN_SUCCEEDED_WITH_WARNINGS? 0: EXIT_RUN_FAILED;
}

int
cli_follow_run (qn_client_t *client, uint64_t run_id)
{
    cli_followed_run = run_id;
    Qanat__Envelope *first = cli_get_run (client, run_id);
    size_t tracked_count = first->reply->run->n_tasks;
    follow_task_t *tracked = (follow_task_t *) calloc (tracked_count + 1, sizeof (follow_task_t));
    for (size_t t = 0; t < tracked_count; t++)
        tracked [t].name = strdup (first->reply->run->tasks [t]->name);
    qn_msg_free (&first);

    ProtobufCBinaryData cursor = {0, NULL};
    bool at_line_start = true;
    bool finished = false;
    while (!finished) {
        if (zsys_interrupted)
            cli_exit_interrupted ();
        Qanat__Envelope *snapshot = cli_get_run (client, run_id);
        Qanat__ReadLogs read = QANAT__READ_LOGS__INIT;
        read.run_id = run_id;
        read.cursor = cursor;
        read.limit = 1000;
        Qanat__Request request = QANAT__REQUEST__INIT;
        request.body_case = QANAT__REQUEST__BODY_READ_LOGS;
        request.read_logs = &read;
        Qanat__Envelope *logs = cli_call (client, &request);
        Qanat__LogPage *page = logs->reply->logs;
        finished = page->run_finished;
        bool full = page->n_lines >= read.limit;

        //  Lines of attempts the snapshot did not know yet: a second
        //  snapshot, taken after the read, announces them.
        Qanat__Envelope *later = NULL;
        for (size_t i = 0; i < page->n_lines && !later; i++) {
            follow_task_t *state = s_follow_task (tracked, tracked_count, page->lines [i]->task);
            if (state && page->lines [i]->attempt > state->started)
                later = cli_get_run (client, run_id);
        }
        size_t capacity = page->n_lines + s_follow_slots (snapshot->reply->run)
                        + (later? s_follow_slots (later->reply->run): 0);
        size_t item_count = 0;
        follow_item_t *items = (follow_item_t *) calloc (capacity, sizeof (follow_item_t));
        s_follow_collect (snapshot->reply->run, tracked, tracked_count, items, &item_count, !full);
        if (later)
            s_follow_collect (later->reply->run, tracked, tracked_count, items, &item_count, false);
        for (size_t i = 0; i < page->n_lines; i++)
            items [item_count++] = (follow_item_t) {page->lines [i]->chunk? page->lines [i]->chunk->time_us: 0,
                                                    ITEM_LOG, item_count, NULL, NULL, page->lines [i]};
        //  Clocks of different machines differ: keep a task's lines between
        //  its start and its end whatever their timestamps say.
        for (size_t i = 0; i < item_count; i++) {
            if (items [i].kind != ITEM_LOG)
                continue;
            for (size_t j = 0; j < item_count; j++) {
                follow_item_t *other = &items [j];
                if (other->kind == ITEM_LOG || other->kind == ITEM_NOTE
                ||  !streq (other->task->name, items [i].line->task)
                ||  other->attempt->attempt != items [i].line->attempt)
                    continue;
                if (other->kind == ITEM_START && other->time > items [i].time)
                    other->time = items [i].time;
                if (other->kind == ITEM_END && other->time < items [i].time)
                    other->time = items [i].time;
            }
        }
        qsort (items, item_count, sizeof (follow_item_t), s_item_compare);
        for (size_t i = 0; i < item_count; i++) {
            const char *name = items [i].kind == ITEM_LOG? items [i].line->task: items [i].task->name;
            follow_task_t *state = s_follow_task (tracked, tracked_count, name);
            if (state)
                s_follow_print (&items [i], state, &at_line_start);
        }
        fflush (stdout);
        free (items);
        free (cursor.data);
        cursor.data = (uint8_t *) malloc (page->cursor.len? page->cursor.len: 1);
        memcpy (cursor.data, page->cursor.data, page->cursor.len);
        cursor.len = page->cursor.len;
        size_t lines = page->n_lines;
        qn_msg_free (&logs);
        qn_msg_free (&snapshot);
        qn_msg_free (&later);
        if (!finished && lines == 0)
            zclock_sleep (150);
    }
    //  The run has ended: whatever the last snapshot missed.
    Qanat__Envelope *last = cli_get_run (client, run_id);
    follow_item_t *items = (follow_item_t *) calloc (s_follow_slots (last->reply->run),
                                                     sizeof (follow_item_t));
    size_t item_count = 0;
    s_follow_collect (last->reply->run, tracked, tracked_count, items, &item_count, true);
    qsort (items, item_count, sizeof (follow_item_t), s_item_compare);
    for (size_t i = 0; i < item_count; i++)
        s_follow_print (&items [i], s_follow_task (tracked, tracked_count, items [i].task->name),
                        &at_line_start);
    free (items);
    free (cursor.data);
    printf ("\n");
    cli_print_run (last->reply->run);
    Qanat__RunStatus status = last->reply->run->status;
    qn_msg_free (&last);
    for (size_t t = 0; t < tracked_count; t++) {
        free (tracked [t].name);
        free (tracked [t].note);
    }
    free (tracked);
    cli_print_metric_summary (client, run_id);
    return s_run_exit_code (status);
}
