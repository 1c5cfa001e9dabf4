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

static json_t *
s_entry_json (Qanat__NotifEntry *entry)
{
    return json_pack ("{s:I,s:i,s:o,s:o,s:o,s:o,s:o,s:i,s:o,s:o,s:I,s:I}",
        "run", (json_int_t) entry->run_id, "channel", (int) entry->channel,
        "workflow", cli_json_text (entry->workflow), "event", cli_json_text (entry->event),
        "kind", cli_json_text (entry->kind), "target", cli_json_text (entry->target),
        "state", cli_json_text (entry->state), "attempts", (int) entry->attempts,
        "last_error", cli_json_text (entry->last_error),
        "idempotency_key", cli_json_text (entry->idempotency_key),
        "created_us", (json_int_t) entry->created_us, "done_us", (json_int_t) entry->done_us);
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
    json_t *array = options->json? json_array (): NULL;
    cli_table_t *table = cli_table_new ("RUN WORKFLOW CHANNEL TARGET STATE >ATTEMPTS DONE LAST_ERROR");
    for (size_t i = 0; i < list->n_entries; i++) {
        Qanat__NotifEntry *entry = list->entries [i];
        if (array) {
            json_array_append_new (array, s_entry_json (entry));
            continue;
        }
        char run [24], attempts [16];
        snprintf (run, sizeof run, "%llu", (unsigned long long) entry->run_id);
        snprintf (attempts, sizeof attempts, "%u", entry->attempts);
        cli_table_add (table, run, entry->workflow, entry->kind, entry->target,
                       cli_status_paint (entry->state), attempts,
                       entry->done_us? cli_time_text (entry->done_us): "-",
                       entry->last_error);
    }
    if (array)
        cli_json_print (array);
    else
        cli_table_print (table, stdout);
    cli_table_destroy (&table);
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
