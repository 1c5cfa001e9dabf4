/*  qn_cli_admin - running the coordinator: its agents (agents, agent
    drain|undrain|revoke|remove|label), who may join and talk to it
    (token, user, apitoken, whoami), the secrets it keeps (secret) and
    its counters (stats).  Listing, revoking, deleting, removing and
    relabelling are in qn_cli_manage.c.

    One of the files of the qn_cli class.
*/
#include "qn_cli.h"
#include "qn_json.h"
#include <ctype.h>
#include <fcntl.h>

//  ---------------------------------------------------------------------
//  Agents

//  Memory in MiB as "512M" or "15.5G"
static void
s_memory_text (uint64_t mb, char *text, size_t size)
{
    if (mb == 0)
        snprintf (text, size, "0");
    else
    if (mb < 1024)
        snprintf (text, size, "%lluM", (unsigned long long) mb);
    else
        snprintf (text, size, "%.3gG", mb / 1024.0);
}

//  Used/total of each resource ("cpu 2/8 mem 4G/16G gpu 1/2"), or "-"
//  for an agent that counts slots only
static void
s_resources_text (const Qanat__AgentInfo *agent, char *text, size_t size)
{
    if (!agent->total) {
        snprintf (text, size, "-");
        return;
    }
    const Qanat__Resources *used = agent->used? agent->used: agent->total;
    char used_mem [32], total_mem [32];
    s_memory_text (agent->used? used->memory_mb: 0, used_mem, sizeof used_mem);
    s_memory_text (agent->total->memory_mb, total_mem, sizeof total_mem);
    snprintf (text, size, "cpu %u/%u mem %s/%s gpu %u/%u", agent->used? used->cpus: 0,
              agent->total->cpus, used_mem, total_mem, agent->used? used->gpus: 0,
              agent->total->gpus);
}

static json_t *
s_resources_json (const Qanat__Resources *res)
{
    return json_pack ("{s:I,s:I,s:I}", "cpus", (json_int_t) res->cpus,
                      "memory_mb", (json_int_t) res->memory_mb, "gpus", (json_int_t) res->gpus);
}

//  What an agent has for the local backend: total, used, its GPUs and
//  whether its attempts are confined (nothing for an agent that counts
//  slots only)
static void
s_agent_resources_json (json_t *object, const Qanat__AgentInfo *agent)
{
    if (agent->total) {
        json_object_set_new (object, "total", s_resources_json (agent->total));
        Qanat__Resources none = QANAT__RESOURCES__INIT;
        json_object_set_new (object, "used", s_resources_json (agent->used? agent->used: &none));
    }
    json_t *gpus = json_array ();
    for (size_t g = 0; g < agent->n_gpus; g++)
        json_array_append_new (gpus, json_pack ("{s:I,s:o,s:o,s:I}",
            "index", (json_int_t) agent->gpus [g]->index, "uuid", cli_json_text (agent->gpus [g]->uuid),
            "name", cli_json_text (agent->gpus [g]->name),
            "memory_mb", (json_int_t) agent->gpus [g]->memory_mb));
    json_object_set_new (object, "gpus", gpus);
    json_object_set_new (object, "confinement", cli_json_text (agent->confinement));
}

int
cli_cmd_agents (options_t *options, int argc, char **argv)
{
    (void) argc;
    (void) argv;
    Qanat__ListAgents list = QANAT__LIST_AGENTS__INIT;
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.body_case = QANAT__REQUEST__BODY_LIST_AGENTS;
    request.list_agents = &list;
    qn_client_t *client = cli_connect (options);
    Qanat__Envelope *reply = cli_call (client, &request);
    Qanat__AgentList *agents = reply->reply->agents;
    if (options->json) {
        json_t *list = json_array ();
        for (size_t i = 0; i < agents->n_agents; i++) {
            Qanat__AgentInfo *agent = agents->agents [i];
            json_t *backends = json_array ();
            for (size_t b = 0; b < agent->n_backends; b++)
                json_array_append_new (backends, cli_json_text (agent->backends [b]));
            json_t *object = json_pack (
                "{s:o,s:o,s:o,s:I,s:I,s:I,s:b,s:I,s:o,s:b,s:I,s:I,s:I,s:I,s:b}",
                "name", cli_json_text (agent->name),
                "labels", cli_json_labels (agent->labels, agent->n_labels),
                "backends", backends,
                "capacity", (json_int_t) agent->capacity, "credit", (json_int_t) agent->credit,
                "running", (json_int_t) agent->running, "connected", agent->connected,
                "last_seen_us", (json_int_t) agent->last_seen_us,
                "state", cli_json_text (agent->state), "draining", agent->draining,
                "heartbeat_ms", (json_int_t) agent->heartbeat_ms,
                "suspect_after_ms", (json_int_t) agent->suspect_after_ms,
                "lost_after_ms", (json_int_t) agent->lost_after_ms,
                "spool_bytes", (json_int_t) agent->spool_bytes, "spool_full", agent->spool_full);
            s_agent_resources_json (object, agent);
            json_array_append_new (list, object);
        }
        cli_json_print (list);
    }
    else {
        //  -o wide: each GPU (index:model) and whether attempts are confined
        cli_table_t *table = cli_table_new (options->wide
            ? "AGENT STATE SLOTS RUNNING RESOURCES LAST_SEEN TIMERS(s) BACKENDS LABELS GPUS CONFINEMENT"
            : "AGENT STATE SLOTS RUNNING RESOURCES LAST_SEEN TIMERS(s) BACKENDS LABELS");
        for (size_t i = 0; i < agents->n_agents; i++) {
            Qanat__AgentInfo *agent = agents->agents [i];
            char state [160], timers [96], slots [16], running [16];
            snprintf (state, sizeof state, "%s%s%s", cli_status_paint (agent->state),
                      agent->draining? ", draining": "", agent->spool_full? ", spool full": "");
            snprintf (timers, sizeof timers, "%s/", cli_number_text (agent->heartbeat_ms / 1000.0));
            snprintf (timers + strlen (timers), sizeof timers - strlen (timers), "%s/",
                      cli_number_text (agent->suspect_after_ms / 1000.0));
            snprintf (timers + strlen (timers), sizeof timers - strlen (timers), "%s",
                      cli_number_text (agent->lost_after_ms / 1000.0));
            snprintf (slots, sizeof slots, "%u", agent->capacity);
            snprintf (running, sizeof running, "%u", agent->running);
            //  The first backend is the agent's default
            char backends [128] = "", labels [512] = "";
            for (size_t b = 0, used = 0; b < agent->n_backends && used < sizeof backends; b++)
                used += (size_t) snprintf (backends + used, sizeof backends - used, "%s%s",
                                           b? ",": "", agent->backends [b]);
            for (size_t l = 0, used = 0; l < agent->n_labels && used < sizeof labels; l++)
                used += (size_t) snprintf (labels + used, sizeof labels - used, "%s%s=%s", l? ",": "",
                                           agent->labels [l]->key, agent->labels [l]->value);
            char resources [96], gpus [512] = "";
            s_resources_text (agent, resources, sizeof resources);
            for (size_t g = 0, used = 0; g < agent->n_gpus && used < sizeof gpus; g++)
                used += (size_t) snprintf (gpus + used, sizeof gpus - used, "%s%u:%s", g? ",": "",
                                           agent->gpus [g]->index, *agent->gpus [g]->name
                                           ? agent->gpus [g]->name: "gpu");
            //  (a table without the wide columns reads the first nine)
            cli_table_add (table, agent->name, state, slots, running, resources,
                           cli_time_text (agent->last_seen_us), timers, backends, labels, gpus,
                           agent->confinement);
        }
        if (agents->n_agents)
            cli_table_print (table, stdout);
        cli_table_destroy (&table);
        if (agents->n_agents == 0)
            printf ("no agents have registered yet\n");
        else
            printf ("\nRESOURCES: used/total of the machine, for agents that run tasks themselves\n"
                    "TIMERS: heartbeat / suspect after / lost after\n");
    }
    qn_msg_free (&reply);
    qn_client_destroy (&client);
    return 0;
}

int
cli_cmd_agent (options_t *options, int argc, char **argv)
{
    if (argc == 2 && streq (argv [0], "remove"))
        return cli_agent_remove (options, argv [1]);
    if (argc >= 2 && streq (argv [0], "label"))
        return cli_agent_label (options, argv [1], argc - 2, argv + 2);
    if (argc == 2 && streq (argv [0], "revoke")) {
        Qanat__RevokeAgent revoke = QANAT__REVOKE_AGENT__INIT;
        revoke.name = argv [1];
        Qanat__Request request = QANAT__REQUEST__INIT;
        request.body_case = QANAT__REQUEST__BODY_REVOKE_AGENT;
        request.revoke_agent = &revoke;
        qn_client_t *client = cli_connect (options);
        Qanat__Envelope *reply = cli_call (client, &request);
        if (options->json)
            cli_json_print (json_pack ("{s:o}", "revoked", cli_json_text (argv [1])));
        else
            printf ("agent %s revoked: its key is refused from now on\n", argv [1]);
        qn_msg_free (&reply);
        qn_client_destroy (&client);
        return 0;
    }
    if (argc != 2 || (!streq (argv [0], "drain") && !streq (argv [0], "undrain"))) {
        return cli_usage_error ("agent");
    }
    Qanat__DrainAgent drain = QANAT__DRAIN_AGENT__INIT;
    drain.name = argv [1];
    drain.drain = streq (argv [0], "drain");
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.body_case = QANAT__REQUEST__BODY_DRAIN_AGENT;
    request.drain_agent = &drain;
    qn_client_t *client = cli_connect (options);
    Qanat__Envelope *reply = cli_call (client, &request);
    Qanat__AgentInfo *agent = reply->reply->agents->n_agents? reply->reply->agents->agents [0]: NULL;
    if (options->json && agent)
        cli_json_print (json_pack ("{s:o,s:b,s:I}", "name", cli_json_text (agent->name),
                                   "draining", agent->draining, "running", (json_int_t) agent->running));
    else
    if (agent)
        printf ("agent %s %s (%s running)\n", agent->name,
                agent->draining? "draining: it finishes what it runs and takes nothing new"
                               : "takes work again", cli_plural (agent->running, "attempt", "attempts"));
    qn_msg_free (&reply);
    qn_client_destroy (&client);
    return 0;
}

//  ---------------------------------------------------------------------
//  Durations and labels, as --ttl, --labels and --agents take them

long
cli_parse_duration (const char *text)
{
    char *end = NULL;
    errno = 0;
    long value = strtol (text, &end, 10);
    if (end == text || value < 0 || errno || !isdigit ((unsigned char) *text))
        return -1;
    long unit = streq (end, "") || streq (end, "s")? 1: streq (end, "m")? 60
              : streq (end, "h")? 3600: streq (end, "d")? 86400: -1;
    //  A hundred years is more than anything here needs
    if (unit < 0 || value > 100L * 365 * 86400 / unit)
        return -1;
    return value * unit;
}

int64_t
cli_parse_since (const char *option, const char *text)
{
    long seconds = text? cli_parse_duration (text): -1;
    int64_t us = 0;
    if (seconds >= 0)
        return qn_now_us () - (int64_t) seconds * 1000000;
    if (text && qn_json_time_parse (text, &us) == 0)
        return us;
    fprintf (stderr, "%s: %s wants a duration back from now (30s, 10m, 2h, 1d) or an RFC 3339 "
             "time (2026-12-07T18:00:00Z), not '%s'\n", cli_program, option, text? text: "");
    exit (EXIT_USAGE);
}

//  "k=v,k=v" into labels (malloc'd array of malloc'd labels), or -1.
static int
s_parse_labels (const char *text, Qanat__Label ***labels_p, size_t *count_p)
{
    *labels_p = NULL;
    *count_p = 0;
    if (!text || !*text)
        return 0;
    char *copy = strdup (text);
    int rc = 0;
    for (char *item = strtok (copy, ","); item; item = strtok (NULL, ",")) {
        char *equals = strchr (item, '=');
        if (!equals || equals == item) {
            rc = -1;
            break;
        }
        *equals = 0;
        Qanat__Label *label = (Qanat__Label *) malloc (sizeof (Qanat__Label));
        qanat__label__init (label);
        label->key = strdup (item);
        label->value = strdup (equals + 1);
        *labels_p = (Qanat__Label **) realloc (*labels_p, (*count_p + 1) * sizeof (Qanat__Label *));
        (*labels_p) [(*count_p)++] = label;
    }
    free (copy);
    return rc;
}

static void
s_free_label (Qanat__Label *label)
{
    free (label->key);
    free (label->value);
    free (label);
}

//  ---------------------------------------------------------------------
//  Join tokens and users

int
cli_cmd_token (options_t *options, int argc, char **argv)
{
    if (argc == 1 && streq (argv [0], "list"))
        return cli_token_list (options);
    if (argc == 2 && streq (argv [0], "revoke"))
        return cli_token_revoke (options, argv [1]);
    if (argc != 1 || !streq (argv [0], "create")) {
        return cli_usage_error ("token");
    }
    Qanat__CreateToken create = QANAT__CREATE_TOKEN__INIT;
    long ttl = options->ttl? cli_parse_duration (options->ttl): 3600;
    if (ttl <= 0 || ttl > 365L * 86400) {
        fprintf (stderr, "qanat: --ttl wants a duration like 90s, 30m, 1h, 7d\n");
        return EXIT_USAGE;
    }
    create.ttl_s = (uint32_t) ttl;
    create.uses = options->uses? options->uses: 1;
    if (s_parse_labels (options->labels, &create.labels, &create.n_labels)) {
        fprintf (stderr, "qanat: --labels wants k=v,k=v\n");
        return EXIT_USAGE;
    }
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.body_case = QANAT__REQUEST__BODY_CREATE_TOKEN;
    request.create_token = &create;
    qn_client_t *client = cli_connect (options);
    Qanat__Envelope *reply = cli_call (client, &request);
    Qanat__JoinToken *token = reply->reply->token;
    if (options->json) {
        cli_json_print (json_pack ("{s:o,s:o,s:I,s:I}", "token", cli_json_text (token->token),
                                   "id", cli_json_text (token->id),
                                   "expires_us", (json_int_t) token->expires_us,
                                   "uses", (json_int_t) token->uses));
    }
    else {
        printf ("%s\n", token->token);
        fprintf (stderr, "join token %s: good for %s, expires %s; start an agent with\n"
                 "  qanat-agent --join TOKEN --name NAME\n", token->id,
                 cli_plural (token->uses, "agent", "agents"), cli_time_text (token->expires_us));
    }
    for (size_t i = 0; i < create.n_labels; i++)
        s_free_label (create.labels [i]);
    free (create.labels);
    qn_msg_free (&reply);
    qn_client_destroy (&client);
    return 0;
}

int
cli_cmd_user (options_t *options, int argc, char **argv)
{
    if (argc == 1 && streq (argv [0], "list"))
        return cli_user_list (options);
    if (argc == 2 && streq (argv [0], "revoke"))
        return cli_user_revoke (options, argv [1]);
    int rc = cli_user_weights (options, argc, argv);
    if (rc != -1)
        return rc;
    if (argc != 2 || !streq (argv [0], "add")) {
        return cli_usage_error ("user");
    }
    Qanat__AddUser add = QANAT__ADD_USER__INIT;
    add.name = argv [1];
    add.role = (char *) (options->role? options->role: "user");
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.body_case = QANAT__REQUEST__BODY_ADD_USER;
    request.add_user = &add;
    qn_client_t *client = cli_connect (options);
    Qanat__Envelope *reply = cli_call (client, &request);
    const char *key_file = reply->reply->user_key->key_file;
    rc = 0;
    if (options->out) {
        int fd = open (options->out, O_WRONLY | O_CREAT | O_EXCL, 0600);
        if (fd == -1 || write (fd, key_file, strlen (key_file)) != (ssize_t) strlen (key_file)) {
            fprintf (stderr, "qanat: cannot write %s: %s\n", options->out, strerror (errno));
            rc = EXIT_USAGE;
        }
        else
            fprintf (stderr, "user %s (%s): key written to %s; use it with --key %s\n",
                     add.name, add.role, options->out, options->out);
        if (fd != -1)
            close (fd);
    }
    else
        fputs (key_file, stdout);
    qn_msg_free (&reply);
    qn_client_destroy (&client);
    return rc;
}

//  ---------------------------------------------------------------------
//  API tokens (the HTTP API's bearer tokens)

static json_t *
s_api_token_json (const Qanat__ApiToken *token, bool with_text)
{
    json_t *object = json_pack ("{s:o}", "name", cli_json_text (token->name));
    if (with_text)
        json_object_set_new (object, "token", cli_json_text (token->token));
    json_t *rest = json_pack ("{s:o,s:o,s:I,s:I,s:b}", "role", cli_json_text (token->role),
                              "user", cli_json_text (token->user),
                              "created_us", (json_int_t) token->created_us,
                              "expires_us", (json_int_t) token->expires_us,
                              "revoked", token->revoked);
    json_object_update (object, rest);
    json_decref (rest);
    return object;
}

static int
s_apitoken_create (options_t *options, const char *name)
{
    Qanat__CreateApiToken create = QANAT__CREATE_API_TOKEN__INIT;
    create.name = (char *) name;
    create.role = (char *) (options->role? options->role: "user");
    create.user = (char *) (options->user? options->user: "");
    long ttl = options->ttl? cli_parse_duration (options->ttl): 0;
    if (ttl < 0 || ttl > 3650L * 86400) {
        fprintf (stderr, "qanat: --ttl wants a duration like 3600, 12h, 30d (0: never expires)\n");
        return EXIT_USAGE;
    }
    create.ttl_s = (uint32_t) ttl;
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.body_case = QANAT__REQUEST__BODY_CREATE_API_TOKEN;
    request.create_api_token = &create;
    qn_client_t *client = cli_connect (options);
    Qanat__Envelope *reply = cli_call (client, &request);
    Qanat__ApiToken *token = reply->reply->api_token;
    if (options->json) {
        cli_json_print (s_api_token_json (token, true));
    }
    else
        printf ("%s\n", token->token);
    fprintf (stderr, "API token %s (user %s, role %s, %s%s): this is the only time it is shown\n",
             token->name, token->user, token->role, token->expires_us? "expires ": "never expires",
             token->expires_us? cli_time_text (token->expires_us): "");
    qn_msg_free (&reply);
    qn_client_destroy (&client);
    return 0;
}

static int
s_apitoken_list (options_t *options)
{
    Qanat__ListApiTokens list = QANAT__LIST_API_TOKENS__INIT;
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.body_case = QANAT__REQUEST__BODY_LIST_API_TOKENS;
    request.list_api_tokens = &list;
    qn_client_t *client = cli_connect (options);
    Qanat__Envelope *reply = cli_call (client, &request);
    Qanat__ApiTokenList *tokens = reply->reply->api_tokens;
    int64_t now = qn_now_us ();
    if (options->json) {
        json_t *items = json_array ();
        for (size_t i = 0; i < tokens->n_tokens; i++)
            json_array_append_new (items, s_api_token_json (tokens->tokens [i], false));
        cli_json_print (items);
    }
    else {
        cli_table_t *table = cli_table_new ("NAME USER ROLE STATE CREATED EXPIRES");
        for (size_t i = 0; i < tokens->n_tokens; i++) {
            Qanat__ApiToken *token = tokens->tokens [i];
            const char *state = token->revoked? "revoked"
                              : token->expires_us && token->expires_us <= now? "expired": "active";
            char *created = strdup (cli_time_text (token->created_us));
            cli_table_add (table, token->name, token->user, token->role, cli_status_paint (state),
                           created, token->expires_us? cli_time_text (token->expires_us): "never");
            free (created);
        }
        if (tokens->n_tokens)
            cli_table_print (table, stdout);
        cli_table_destroy (&table);
        if (tokens->n_tokens == 0)
            printf ("no API tokens yet (qanat apitoken create NAME)\n");
    }
    qn_msg_free (&reply);
    qn_client_destroy (&client);
    return 0;
}

static int
s_apitoken_revoke (options_t *options, const char *name)
{
    Qanat__RevokeApiToken revoke = QANAT__REVOKE_API_TOKEN__INIT;
    revoke.name = (char *) name;
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.body_case = QANAT__REQUEST__BODY_REVOKE_API_TOKEN;
    request.revoke_api_token = &revoke;
    qn_client_t *client = cli_connect (options);
    Qanat__Envelope *reply = cli_call (client, &request);
    if (options->json) {
        cli_json_print (s_api_token_json (reply->reply->api_token, false));
    }
    else
        printf ("API token %s revoked\n", reply->reply->api_token->name);
    qn_msg_free (&reply);
    qn_client_destroy (&client);
    return 0;
}

int
cli_cmd_apitoken (options_t *options, int argc, char **argv)
{
    if (argc == 2 && streq (argv [0], "create"))
        return s_apitoken_create (options, argv [1]);
    if (argc == 1 && streq (argv [0], "list"))
        return s_apitoken_list (options);
    if (argc == 2 && streq (argv [0], "revoke"))
        return s_apitoken_revoke (options, argv [1]);
    return cli_usage_error ("apitoken");
}

int
cli_cmd_whoami (options_t *options, int argc, char **argv)
{
    (void) argv;
    if (argc != 0) {
        return cli_usage_error ("whoami");
    }
    Qanat__WhoAmI whoami = QANAT__WHO_AM_I__INIT;
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.body_case = QANAT__REQUEST__BODY_WHOAMI;
    request.whoami = &whoami;
    qn_client_t *client = cli_connect (options);
    Qanat__Envelope *reply = cli_call (client, &request);
    Qanat__Principal *principal = reply->reply->whoami;
    if (options->json) {
        cli_json_print (json_pack ("{s:o,s:o,s:o}", "kind", cli_json_text (principal->kind),
                                   "name", cli_json_text (principal->name),
                                   "role", cli_json_text (principal->role)));
    }
    else
        printf ("%s (%s, role %s)\n", principal->name, principal->kind, principal->role);
    qn_msg_free (&reply);
    qn_client_destroy (&client);
    return 0;
}

//  ---------------------------------------------------------------------
//  Secrets

//  The access list "user:a,role:b,workflow:c" plus agent labels, or
//  NULL when neither was given.  Free with s_access_free.
static Qanat__SecretAccess *
s_access_new (const char *allow, const char *agent_labels)
{
    if (!allow && !agent_labels)
        return NULL;
    Qanat__SecretAccess *access = (Qanat__SecretAccess *) malloc (sizeof (Qanat__SecretAccess));
    qanat__secret_access__init (access);
    char *copy = strdup (allow? allow: "");
    for (char *item = strtok (copy, ","); item; item = strtok (NULL, ",")) {
        access->allow = (char **) realloc (access->allow, (access->n_allow + 1) * sizeof (char *));
        access->allow [access->n_allow++] = strdup (item);
    }
    free (copy);
    if (s_parse_labels (agent_labels, &access->agents, &access->n_agents)) {
        fprintf (stderr, "qanat: --agents takes KEY=VALUE,KEY=VALUE\n");
        exit (EXIT_USAGE);
    }
    return access;
}

static void
s_access_free (Qanat__SecretAccess *access)
{
    if (access) {
        for (size_t i = 0; i < access->n_allow; i++)
            free (access->allow [i]);
        free (access->allow);
        for (size_t i = 0; i < access->n_agents; i++)
            s_free_label (access->agents [i]);
        free (access->agents);
        free (access);
    }
}

//  "role:admin" and, when the secret is scoped to agents, "agents env=prod"
static void
s_print_access (const Qanat__SecretAccess *access)
{
    for (size_t i = 0; access && i < access->n_allow; i++)
        printf ("%s%s", i? ",": "", access->allow [i]);
    for (size_t i = 0; access && i < access->n_agents; i++)
        printf ("%s%s=%s", i? ",": "  agents ", access->agents [i]->key, access->agents [i]->value);
}

static void
s_print_secrets (options_t *options, const Qanat__SecretList *secrets)
{
    json_t *items = json_array ();
    size_t width = 4;
    for (size_t i = 0; i < secrets->n_names; i++)
        if (strlen (secrets->names [i]) > width)
            width = strlen (secrets->names [i]);
    for (size_t i = 0; i < secrets->n_names; i++) {
        const Qanat__SecretAccess *access = i < secrets->n_access? secrets->access [i]: NULL;
        if (!options->json) {
            printf ("%-*s  ", (int) width, secrets->names [i]);
            s_print_access (access);
            printf ("\n");
            continue;
        }
        json_t *allow = json_array ();
        for (size_t a = 0; access && a < access->n_allow; a++)
            json_array_append_new (allow, cli_json_text (access->allow [a]));
        json_array_append_new (items, json_pack ("{s:o,s:o,s:o}",
            "name", cli_json_text (secrets->names [i]), "allow", allow,
            "agents", access? cli_json_labels (access->agents, access->n_agents): json_object ()));
    }
    if (options->json)
        cli_json_print (items);
    else
        json_decref (items);
}

int
cli_cmd_secret (options_t *options, int argc, char **argv)
{
    Qanat__Request request = QANAT__REQUEST__INIT;
    Qanat__SetSecret set = QANAT__SET_SECRET__INIT;
    Qanat__ListSecrets list = QANAT__LIST_SECRETS__INIT;
    char *value = NULL;
    if (argc == 2 && streq (argv [0], "delete"))
        return cli_secret_delete (options, argv [1]);
    if (argc == 2 && streq (argv [0], "set")) {
        //  From stdin, never from the command line (ps, shell history).
        size_t size = 0, room = 4096;
        value = (char *) malloc (room);
        size_t got;
        while ((got = fread (value + size, 1, room - size, stdin)) > 0) {
            size += got;
            if (size == room)
                value = (char *) realloc (value, room *= 2);
        }
        while (size && (value [size - 1] == '\n' || value [size - 1] == '\r'))
            size--;
        set.name = argv [1];
        set.value.data = (uint8_t *) value;
        set.value.len = size;
        set.access = s_access_new (options->allow, options->agent_labels);
        request.body_case = QANAT__REQUEST__BODY_SET_SECRET;
        request.set_secret = &set;
    }
    else
    if (argc == 3 && streq (argv [0], "allow")) {
        //  The list alone: the value stays as it is.
        set.name = argv [1];
        set.access = s_access_new (argv [2], options->agent_labels);
        set.access_only = true;
        request.body_case = QANAT__REQUEST__BODY_SET_SECRET;
        request.set_secret = &set;
    }
    else
    if (argc == 1 && streq (argv [0], "list")) {
        request.body_case = QANAT__REQUEST__BODY_LIST_SECRETS;
        request.list_secrets = &list;
    }
    else {
        return cli_usage_error ("secret");
    }
    qn_client_t *client = cli_connect (options);
    Qanat__Envelope *reply = cli_call (client, &request);
    if (value)
        memset (value, 0, set.value.len);
    free (value);
    s_access_free (set.access);
    Qanat__SecretList *secrets = reply->reply->secrets;
    if (request.body_case == QANAT__REQUEST__BODY_SET_SECRET && !options->json) {
        printf ("secret %s %s; may be used by ", argv [1], set.access_only? "allowed": "set");
        s_print_access (secrets->n_access? secrets->access [0]: NULL);
        printf ("\n");
    }
    else
        s_print_secrets (options, secrets);
    qn_msg_free (&reply);
    qn_client_destroy (&client);
    return 0;
}

//  ---------------------------------------------------------------------
//  Counters

int
cli_cmd_stats (options_t *options, int argc, char **argv)
{
    (void) argc;
    (void) argv;
    Qanat__GetStats get = QANAT__GET_STATS__INIT;
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.body_case = QANAT__REQUEST__BODY_GET_STATS;
    request.get_stats = &get;
    qn_client_t *client = cli_connect (options);
    Qanat__Envelope *reply = cli_call (client, &request);
    Qanat__Stats *stats = reply->reply->stats;
    struct { const char *key, *label; uint64_t value; } rows [] = {
        { "malformed_agent_frames", "malformed agent frames", stats->malformed_agent_frames },
        { "malformed_client_frames", "malformed client frames", stats->malformed_client_frames },
        { "bad_version", "bad protocol versions", stats->bad_version },
        { "events_committed", "events committed", stats->events_committed },
        { "duplicate_events", "duplicate events", stats->duplicate_events },
        { "stale_events", "stale events", stats->stale_events },
        { "commits", "commits", stats->commits },
        { "commit_failures", "commit failures", stats->commit_failures },
        { "denied", "denied", stats->denied },
        { "blobs_stored", "blobs stored", stats->blobs_stored },
        { "blob_bytes_in", "blob bytes in", stats->blob_bytes_in },
        { "blob_bytes_out", "blob bytes out", stats->blob_bytes_out },
        { "blob_chunks_rejected", "blob chunks rejected", stats->blob_chunks_rejected },
        { "sends_refused", "sends refused", stats->sends_refused },
        { "runs_deleted", "runs deleted (retention)", stats->runs_deleted },
        { "blob_bytes_freed", "blob bytes freed", stats->blob_bytes_freed },
        { "s3_objects_deleted", "S3 objects deleted", stats->s3_objects_deleted },
        { "s3_delete_failures", "S3 deletes failed", stats->s3_delete_failures },
        { "agent_cache_damaged", "agent cache blobs damaged", stats->agent_cache_damaged },
        { "log_lines_in", "log lines in", stats->log_lines_in },
        { "log_bytes_in", "log bytes in", stats->log_bytes_in },
        { "tasks_dispatched", "tasks dispatched", stats->tasks_dispatched },
    };
    size_t count = sizeof rows / sizeof rows [0];
    json_t *object = json_object ();
    for (size_t i = 0; i < count; i++)
        if (options->json)
            json_object_set_new (object, rows [i].key, json_integer ((json_int_t) rows [i].value));
        else
            printf ("%-26s %llu\n", rows [i].label, (unsigned long long) rows [i].value);
    if (options->json)
        cli_json_print (object);
    else
        json_decref (object);
    qn_msg_free (&reply);
    qn_client_destroy (&client);
    return 0;
}
