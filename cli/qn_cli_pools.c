/*  qn_cli_pools - `qanat pools`, `qanat pool set NAME N`, `qanat user
    weights` and `qanat user weight NAME W`: the named pools that tasks
    share across workflows, and the owners' fair-share weights (see
    docs/scheduling.md).

    One of the files of the qn_cli class.
*/
#include "qn_cli.h"

static void
s_print (Qanat__LimitList *list, const char *kind, bool json)
{
    bool pools = streq (kind, "pool");
    json_t *items = json_array ();
    cli_table_t *table = cli_table_new (pools? "POOL SIZE USED WAITING"
                                             : "OWNER WEIGHT RUNNING WAITING");
    for (size_t i = 0; i < list->n_limits; i++) {
        Qanat__LimitInfo *item = list->limits [i];
        if (!streq (item->kind, kind))
            continue;
        json_array_append_new (items, json_pack (
            "{s:o,s:o,s:I,s:b,s:I,s:I}", "kind", cli_json_text (item->kind),
            "name", cli_json_text (item->name), "value", (json_int_t) item->value,
            "set", (int) item->set, "used", (json_int_t) item->used,
            "waiting", (json_int_t) item->waiting));
        char value [32], used [32], waiting [32];
        snprintf (value, sizeof value, "%u%s", item->value, item->set? "": " (default)");
        snprintf (used, sizeof used, "%llu", (unsigned long long) item->used);
        snprintf (waiting, sizeof waiting, "%llu", (unsigned long long) item->waiting);
        cli_table_add (table, item->name, value, used, waiting);
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
s_call (options_t *options, Qanat__Request *request, const char *kind)
{
    qn_client_t *client = cli_connect (options);
    Qanat__Envelope *reply = cli_call (client, request);
    Qanat__LimitList *list = reply->reply->limits;
    if (reply->reply->body_case != QANAT__REPLY__BODY_LIMITS || !list)
        fprintf (stderr, "%s: unexpected reply\n", cli_program);
    else
        s_print (list, kind, options->json);
    qn_msg_free (&reply);
    qn_client_destroy (&client);
    return 0;
}

static int
s_list (options_t *options, const char *kind)
{
    Qanat__ListLimits list = QANAT__LIST_LIMITS__INIT;
    list.kind = (char *) kind;
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.body_case = QANAT__REQUEST__BODY_LIST_LIMITS;
    request.list_limits = &list;
    return s_call (options, &request, kind);
}

//  NAME N: N a whole number (0: back to the default)
static int
s_set (options_t *options, const char *kind, const char *name, const char *number,
       const char *command)
{
    char *end = NULL;
    errno = 0;
    unsigned long value = strtoul (number, &end, 10);
    if (!*number || *end || errno || value > 1000000 || *number == '-') {
        fprintf (stderr, "%s: %s: expected a whole number from 0 to 1000000, not '%s'\n",
                 cli_program, command, number);
        return EXIT_USAGE;
    }
    Qanat__SetLimit set = QANAT__SET_LIMIT__INIT;
    set.kind = (char *) kind;
    set.name = (char *) name;
    set.value = (uint32_t) value;
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.body_case = QANAT__REQUEST__BODY_SET_LIMIT;
    request.set_limit = &set;
    return s_call (options, &request, kind);
}

int
cli_cmd_pools (options_t *options, int argc, char **argv)
{
    (void) argv;
    if (argc != 0)
        return cli_usage_error ("pools");
    return s_list (options, "pool");
}

int
cli_cmd_pool (options_t *options, int argc, char **argv)
{
    if (argc != 3 || !streq (argv [0], "set"))
        return cli_usage_error ("pool");
    return s_set (options, "pool", argv [1], argv [2], "pool set");
}

int
cli_user_weights (options_t *options, int argc, char **argv)
{
    if (argc == 1 && streq (argv [0], "weights"))
        return s_list (options, "weight");
    if (argc == 3 && streq (argv [0], "weight"))
        return s_set (options, "weight", argv [1], argv [2], "user weight");
    return -1;
}
