/*  qn_cli_schedules - `qanat schedules [WORKFLOW]` and `qanat schedule
    pause|resume NAME`: the runs the coordinator starts by itself (see
    docs/schedules.md).

    One row per schedule of each stored workflow's newest version, and one
    per trigger: its cron and zone, the next and the last tick, the run
    the last tick started (and its status) or why it started none, and
    whether the workflow's schedules are paused.

    One of the files of the qn_cli class.
*/
#include "qn_cli.h"

//  A list of strings as a JSON array
static json_t *
s_json_strings (char **items, size_t count)
{
    json_t *array = json_array ();
    for (size_t i = 0; i < count; i++)
        json_array_append_new (array, cli_json_text (items [i]));
    return array;
}

static json_t *
s_row_json (Qanat__ScheduleInfo *row)
{
    return json_pack ("{s:o,s:I,s:I,s:o,s:o,s:o,s:I,s:I,s:I,s:o,s:o,s:b,s:I,s:o,s:o}",
        "workflow", cli_json_text (row->workflow), "version", (json_int_t) row->version,
        "index", (json_int_t) row->index, "cron", cli_json_text (row->cron),
        "timezone", cli_json_text (row->timezone), "catchup", cli_json_text (row->catchup),
        "next_tick_us", (json_int_t) row->next_tick_us,
        "last_tick_us", (json_int_t) row->last_tick_us,
        "last_run", (json_int_t) row->last_run,
        "last_run_status", cli_json_text (row->last_run?
                                          qn_run_status_name (row->last_run_status): ""),
        "last_skipped", cli_json_text (row->last_skipped), "paused", (int) row->paused,
        "max_active", (json_int_t) row->max_active,
        "trigger_after", s_json_strings (row->trigger_after, row->n_trigger_after),
        "trigger_on", s_json_strings (row->trigger_on, row->n_trigger_on));
}

static void
s_print (Qanat__ScheduleList *list, bool json)
{
    json_t *items = json_array ();
    cli_table_t *table = cli_table_new ("WORKFLOW CRON TIMEZONE NEXT_TICK LAST_TICK LAST_RUN");
    for (size_t i = 0; i < list->n_schedules; i++) {
        Qanat__ScheduleInfo *row = list->schedules [i];
        json_array_append_new (items, s_row_json (row));
        char cron [256], next [32], last [32], run [256];
        if (*row->cron)
            snprintf (cron, sizeof cron, "%s", row->cron);
        else {
            size_t used = (size_t) snprintf (cron, sizeof cron, "after ");
            for (size_t a = 0; a < row->n_trigger_after && used < sizeof cron; a++)
                used += (size_t) snprintf (cron + used, sizeof cron - used, "%s%s", a? ",": "",
                                           row->trigger_after [a]);
        }
        snprintf (next, sizeof next, "%s", row->paused? "paused"
                                         : cli_time_text (row->next_tick_us));
        snprintf (last, sizeof last, "%s", cli_time_text (row->last_tick_us));
        if (row->last_run)
            snprintf (run, sizeof run, "%llu %s", (unsigned long long) row->last_run,
                      qn_run_status_name (row->last_run_status));
        else
            snprintf (run, sizeof run, "%s%s", *row->last_skipped? "skipped: ": "-",
                      row->last_skipped);
        cli_table_add (table, row->workflow, cron, row->timezone, next, last, run);
    }
    if (json)
        cli_json_print (items);
    else {
        json_decref (items);
        cli_table_print (table, stdout);
    }
    cli_table_destroy (&table);
}

static int
s_call (options_t *options, Qanat__Request *request)
{
    qn_client_t *client = cli_connect (options);
    Qanat__Envelope *reply = cli_call (client, request);
    Qanat__ScheduleList *list = reply->reply->schedules;
    if (reply->reply->body_case != QANAT__REPLY__BODY_SCHEDULES || !list)
        fprintf (stderr, "%s: unexpected reply\n", cli_program);
    else
        s_print (list, options->json);
    qn_msg_free (&reply);
    qn_client_destroy (&client);
    return 0;
}

int
cli_cmd_schedules (options_t *options, int argc, char **argv)
{
    if (argc > 1)
        return cli_usage_error ("schedules");
    Qanat__ListSchedules list = QANAT__LIST_SCHEDULES__INIT;
    list.workflow = argc? argv [0]: "";
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.body_case = QANAT__REQUEST__BODY_LIST_SCHEDULES;
    request.list_schedules = &list;
    return s_call (options, &request);
}

int
cli_cmd_schedule (options_t *options, int argc, char **argv)
{
    if (argc != 2 || (!streq (argv [0], "pause") && !streq (argv [0], "resume")))
        return cli_usage_error ("schedule");
    Qanat__SchedulePause pause = QANAT__SCHEDULE_PAUSE__INIT;
    pause.workflow = argv [1];
    pause.paused = streq (argv [0], "pause");
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.body_case = QANAT__REQUEST__BODY_SCHEDULE_PAUSE;
    request.schedule_pause = &pause;
    return s_call (options, &request);
}
