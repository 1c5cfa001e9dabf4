/*  qn_cli_notify - `qanat notifications [RUN]`: the notifications' outbox
    (docs/notifications.md), and the failed ones under `qanat status`.

    One of the files of the qn_cli class.
*/
#include "qn_cli.h"

static Qanat__Envelope *
s_list (qn_client_t *client, uint64_t run_id, uint32_t limit)
{
    Qanat__ListNotifications list = QANAT__LIST_NOTIFICATIONS__INIT;
    list.run_id = run_id;
    list.limit = limit;
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.body_case = QANAT__REQUEST__BODY_LIST_NOTIFICATIONS;
    request.list_notifications = &list;
    return cli_call (client, &request);
}

static void
s_print_json (Qanat__NotifEntry *entry, bool first)
{
    printf ("%s{\"run\":%llu,\"channel\":%u,\"workflow\":", first? "": ",",
            (unsigned long long) entry->run_id, entry->channel);
    cli_json_str (stdout, entry->workflow);
    printf (",\"event\":");
    cli_json_str (stdout, entry->event);
    printf (",\"kind\":");
    cli_json_str (stdout, entry->kind);
    printf (",\"target\":");
    cli_json_str (stdout, entry->target);
    printf (",\"state\":");
    cli_json_str (stdout, entry->state);
    printf (",\"attempts\":%u,\"last_error\":", entry->attempts);
    cli_json_str (stdout, entry->last_error);
    printf (",\"idempotency_key\":");
    cli_json_str (stdout, entry->idempotency_key);
    printf (",\"created_us\":%lld,\"done_us\":%lld}", (long long) entry->created_us,
            (long long) entry->done_us);
}

int
cli_cmd_notifications (options_t *options, int argc, char **argv)
{
    if (argc > 1)
        return cli_usage_error ("notifications");
    uint64_t run_id = argc? cli_parse_run_id (argv [0]): 0;
    qn_client_t *client = cli_connect (options);
    Qanat__Envelope *reply = s_list (client, run_id, options->limit);
    Qanat__NotifList *list = reply->reply->notifications;
    if (options->json)
        printf ("[");
    else
        printf ("%-6s %-14s %-8s %-40s %-9s %-8s %-19s %s\n", "RUN", "WORKFLOW", "CHANNEL",
                "TARGET", "STATE", "ATTEMPTS", "DONE", "LAST ERROR");
    for (size_t i = 0; i < list->n_entries; i++) {
        Qanat__NotifEntry *entry = list->entries [i];
        if (options->json)
            s_print_json (entry, i == 0);
        else
            printf ("%-6llu %-14s %-8s %-40.40s %-9s %-8u %-19s %s\n",
                    (unsigned long long) entry->run_id, entry->workflow, entry->kind,
                    entry->target, entry->state, entry->attempts,
                    entry->done_us? cli_time_text (entry->done_us): "-",
                    *entry->last_error? entry->last_error: "-");
    }
    if (options->json)
        printf ("]\n");
    qn_msg_free (&reply);
    qn_client_destroy (&client);
    return 0;
}

void
cli_notify_failures (qn_client_t *client, uint64_t run_id)
{
    Qanat__Envelope *reply = s_list (client, run_id, 0);
    Qanat__NotifList *list = reply->reply->notifications;
    for (size_t i = 0; i < list->n_entries; i++) {
        Qanat__NotifEntry *entry = list->entries [i];
        if (streq (entry->state, "failed"))
            printf ("notification %s to %s failed after %u attempts: %s\n", entry->kind,
                    entry->target, entry->attempts, entry->last_error);
    }
    qn_msg_free (&reply);
}
