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

static void
s_print_json (Qanat__ScheduleList *list)
{
    printf ("[");
    for (size_t i = 0; i < list->n_schedules; i++) {
        Qanat__ScheduleInfo *row = list->schedules [i];
        printf ("%s{\"workflow\":", i? ",": "");
        cli_json_str (stdout, row->workflow);
        printf (",\"version\":%u,\"index\":%u,\"cron\":", row->version, row->index);
        cli_json_str (stdout, row->cron);
        printf (",\"timezone\":");
        cli_json_str (stdout, row->timezone);
        printf (",\"catchup\":");
        cli_json_str (stdout, row->catchup);
        printf (",\"next_tick_us\":%lld,\"last_tick_us\":%lld,\"last_run\":%llu,"
                "\"last_run_status\":", (long long) row->next_tick_us,
                (long long) row->last_tick_us, (unsigned long long) row->last_run);
        cli_json_str (stdout, row->last_run? qn_run_status_name (row->last_run_status): "");
        printf (",\"last_skipped\":");
        cli_json_str (stdout, row->last_skipped);
        printf (",\"paused\":%s,\"max_active\":%u,\"trigger_after\":[",
                row->paused? "true": "false", row->max_active);
        for (size_t a = 0; a < row->n_trigger_after; a++) {
            printf ("%s", a? ",": "");
            cli_json_str (stdout, row->trigger_after [a]);
        }
        printf ("],\"trigger_on\":[");
        for (size_t a = 0; a < row->n_trigger_on; a++) {
            printf ("%s", a? ",": "");
            cli_json_str (stdout, row->trigger_on [a]);
        }
        printf ("]}");
    }
    printf ("]\n");
}

static void
s_print_table (Qanat__ScheduleList *list)
{
    size_t width = 8;
    for (size_t i = 0; i < list->n_schedules; i++)
        if (strlen (list->schedules [i]->workflow) > width)
            width = strlen (list->schedules [i]->workflow);
    printf ("%-*s  %-16s %-14s %-19s  %-19s  %s\n", (int) width, "WORKFLOW", "CRON", "TIMEZONE",
            "NEXT TICK", "LAST TICK", "LAST RUN");
    for (size_t i = 0; i < list->n_schedules; i++) {
        Qanat__ScheduleInfo *row = list->schedules [i];
        char cron [64], next [32], last [32], run [256];
        if (*row->cron)
            snprintf (cron, sizeof cron, "%s", row->cron);
        else {
            size_t used = (size_t) snprintf (cron, sizeof cron, "after ");
            for (size_t a = 0; a < row->n_trigger_after && used < sizeof cron; a++)
                used += (size_t) snprintf (cron + used, sizeof cron - used, "%s%s", a? ",": "",
                                           row->trigger_after [a]);
        }
        snprintf (next, sizeof next, "%s", row->paused? "paused": cli_time_text (row->next_tick_us));
        snprintf (last, sizeof last, "%s", cli_time_text (row->last_tick_us));
        if (row->last_run)
            snprintf (run, sizeof run, "%llu %s", (unsigned long long) row->last_run,
                      qn_run_status_name (row->last_run_status));
        else
            snprintf (run, sizeof run, "%s%s", *row->last_skipped? "skipped: ": "-",
                      row->last_skipped);
        printf ("%-*s  %-16s %-14s %-19s  %-19s  %s\n", (int) width, row->workflow, cron,
                *row->timezone? row->timezone: "-", next, last, run);
    }
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
    if (options->json)
        s_print_json (list);
    else
        s_print_table (list);
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
