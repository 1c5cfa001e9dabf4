/*  qn_cli_admin - running the coordinator: its agents (agents, agent
    drain|undrain|revoke), who may join and talk to it (token, user,
    apitoken, whoami), the
    secrets it keeps (secret) and its counters (stats).

    One of the files of the qn_cli class.
*/
#include "qn_cli.h"
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

static void
s_resources_json (const char *name, const Qanat__Resources *res)
{
    if (res)
        printf (",\"%s\":{\"cpus\":%u,\"memory_mb\":%llu,\"gpus\":%u}", name, res->cpus,
                (unsigned long long) res->memory_mb, res->gpus);
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
        printf ("[");
        for (size_t i = 0; i < agents->n_agents; i++) {
            Qanat__AgentInfo *agent = agents->agents [i];
            printf ("%s{\"name\":", i? ",": "");
            cli_json_str (stdout, agent->name);
            printf (",\"labels\":");
            cli_json_labels (stdout, agent->labels, agent->n_labels);
            printf (",\"backends\":[");
            for (size_t b = 0; b < agent->n_backends; b++) {
                printf ("%s", b? ",": "");
                cli_json_str (stdout, agent->backends [b]);
            }
            printf ("],\"capacity\":%u,\"credit\":%u,\"running\":%u,\"connected\":%s,"
                    "\"last_seen_us\":%lld,\"state\":", agent->capacity, agent->credit,
                    agent->running, agent->connected? "true": "false",
                    (long long) agent->last_seen_us);
            cli_json_str (stdout, agent->state);
            printf (",\"draining\":%s,\"heartbeat_ms\":%u,\"suspect_after_ms\":%u,"
                    "\"lost_after_ms\":%u,\"spool_bytes\":%llu,\"spool_full\":%s",
                    agent->draining? "true": "false", agent->heartbeat_ms,
                    agent->suspect_after_ms, agent->lost_after_ms,
                    (unsigned long long) agent->spool_bytes, agent->spool_full? "true": "false");
            s_resources_json ("total", agent->total);
            s_resources_json ("used", agent->total? agent->used: NULL);
            printf (",\"gpus\":[");
            for (size_t g = 0; g < agent->n_gpus; g++) {
                printf ("%s{\"index\":%u,\"uuid\":", g? ",": "", agent->gpus [g]->index);
                cli_json_str (stdout, agent->gpus [g]->uuid);
                printf (",\"name\":");
                cli_json_str (stdout, agent->gpus [g]->name);
                printf (",\"memory_mb\":%llu}", (unsigned long long) agent->gpus [g]->memory_mb);
            }
            printf ("],\"confinement\":");
            cli_json_str (stdout, agent->confinement);
            printf ("}");
        }
        printf ("]\n");
    }
    else {
        printf ("%-20s %-22s %-6s %-8s %-29s %-20s %-18s %-18s %s%s\n", "AGENT", "STATE",
                "SLOTS", "RUNNING", "RESOURCES (used/total)", "LAST SEEN", "TIMERS (s)",
                "BACKENDS", "LABELS", options->wide? "  GPUS  CONFINEMENT": "");
        for (size_t i = 0; i < agents->n_agents; i++) {
            Qanat__AgentInfo *agent = agents->agents [i];
            char state [64], timers [64];
            snprintf (state, sizeof state, "%s%s%s", agent->state, agent->draining? ", draining": "",
                      agent->spool_full? ", spool full": "");
            snprintf (timers, sizeof timers, "%g/%g/%g", agent->heartbeat_ms / 1000.0,
                      agent->suspect_after_ms / 1000.0, agent->lost_after_ms / 1000.0);
            //  The first backend is the agent's default
            char backends [128] = "";
            for (size_t b = 0, used = 0; b < agent->n_backends && used < sizeof backends; b++)
                used += (size_t) snprintf (backends + used, sizeof backends - used, "%s%s",
                                           b? ",": "", agent->backends [b]);
            char resources [96];
            s_resources_text (agent, resources, sizeof resources);
            printf ("%-20s %-22s %-6u %-8u %-29s %-20s %-18s %-18s ", agent->name, state,
                    agent->capacity, agent->running, resources,
                    cli_time_text (agent->last_seen_us), timers, *backends? backends: "-");
            for (size_t l = 0; l < agent->n_labels; l++)
                printf ("%s%s=%s", l? ",": "", agent->labels [l]->key, agent->labels [l]->value);
            //  -o wide: each GPU (index:model) and whether attempts are confined
            for (size_t g = 0; options->wide && g < agent->n_gpus; g++)
                printf ("%s%u:%s", g? ",": "  ", agent->gpus [g]->index,
                        *agent->gpus [g]->name? agent->gpus [g]->name: "gpu");
            if (options->wide)
                printf ("%s%s", agent->n_gpus? "  ": "  -  ",
                        *agent->confinement? agent->confinement: "-");
            printf ("\n");
        }
        if (agents->n_agents == 0)
            printf ("no agents have registered yet\n");
        else
            printf ("\nTIMERS: heartbeat / suspect after / lost after\n");
    }
    qn_msg_free (&reply);
    qn_client_destroy (&client);
    return 0;
}

int
cli_cmd_agent (options_t *options, int argc, char **argv)
{
    if (argc == 2 && streq (argv [0], "revoke")) {
        Qanat__RevokeAgent revoke = QANAT__REVOKE_AGENT__INIT;
        revoke.name = argv [1];
        Qanat__Request request = QANAT__REQUEST__INIT;
        request.body_case = QANAT__REQUEST__BODY_REVOKE_AGENT;
        request.revoke_agent = &revoke;
        qn_client_t *client = cli_connect (options);
        Qanat__Envelope *reply = cli_call (client, &request);
        printf (options->json? "{\"revoked\":\"%s\"}\n"
                             : "agent %s revoked: its key is refused from now on\n", argv [1]);
        qn_msg_free (&reply);
        qn_client_destroy (&client);
        return 0;
    }
    if (argc != 2 || (!streq (argv [0], "drain") && !streq (argv [0], "undrain"))) {
        fprintf (stderr, "usage: qanat agent drain|undrain|revoke NAME\n");
        return EXIT_USAGE;
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
        printf ("{\"name\":\"%s\",\"draining\":%s,\"running\":%u}\n", agent->name,
                agent->draining? "true": "false", agent->running);
    else
    if (agent)
        printf ("agent %s %s (%u attempts running)\n", agent->name,
                agent->draining? "draining: it finishes what it runs and takes nothing new"
                               : "takes work again", agent->running);
    qn_msg_free (&reply);
    qn_client_destroy (&client);
    return 0;
}

//  ---------------------------------------------------------------------
//  Durations and labels, as --ttl, --labels and --agents take them

//  "90", "90s", "30m", "2h", "1d": seconds, or -1.
static long
s_parse_duration (const char *text)
{
    char *end = NULL;
    long value = strtol (text, &end, 10);
    if (end == text || value < 0)
        return -1;
    long unit = streq (end, "") || streq (end, "s")? 1: streq (end, "m")? 60
              : streq (end, "h")? 3600: streq (end, "d")? 86400: -1;
    return unit < 0? -1: value * unit;
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
    if (argc != 1 || !streq (argv [0], "create")) {
        fprintf (stderr, "usage: qanat token create [--ttl 1h] [--uses N] [--labels k=v,...]\n");
        return EXIT_USAGE;
    }
    Qanat__CreateToken create = QANAT__CREATE_TOKEN__INIT;
    long ttl = options->ttl? s_parse_duration (options->ttl): 3600;
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
        printf ("{\"token\":");
        cli_json_str (stdout, token->token);
        printf (",\"id\":");
        cli_json_str (stdout, token->id);
        printf (",\"expires_us\":%lld,\"uses\":%u}\n", (long long) token->expires_us, token->uses);
    }
    else {
        printf ("%s\n", token->token);
        fprintf (stderr, "join token %s: good for %u agent%s until %s; start an agent with\n"
                 "  qanat-agent --join TOKEN --name NAME\n", token->id, token->uses,
                 token->uses == 1? "": "s", cli_time_text (token->expires_us));
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
    if (argc != 2 || !streq (argv [0], "add")) {
        fprintf (stderr, "usage: qanat user add NAME [--role user|admin] [--out KEYFILE]\n");
        return EXIT_USAGE;
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
    int rc = 0;
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

static void
s_print_api_token_json (const Qanat__ApiToken *token, bool with_text)
{
    printf ("{\"name\":");
    cli_json_str (stdout, token->name);
    if (with_text) {
        printf (",\"token\":");
        cli_json_str (stdout, token->token);
    }
    printf (",\"role\":");
    cli_json_str (stdout, token->role);
    printf (",\"user\":");
    cli_json_str (stdout, token->user);
    printf (",\"created_us\":%lld,\"expires_us\":%lld,\"revoked\":%s}", (long long) token->created_us,
            (long long) token->expires_us, token->revoked? "true": "false");
}

static int
s_apitoken_create (options_t *options, const char *name)
{
    Qanat__CreateApiToken create = QANAT__CREATE_API_TOKEN__INIT;
    create.name = (char *) name;
    create.role = (char *) (options->role? options->role: "user");
    create.user = (char *) (options->user? options->user: "");
    long ttl = options->ttl? s_parse_duration (options->ttl): 0;
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
        s_print_api_token_json (token, true);
        printf ("\n");
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
        printf ("[");
        for (size_t i = 0; i < tokens->n_tokens; i++) {
            printf ("%s", i? ",": "");
            s_print_api_token_json (tokens->tokens [i], false);
        }
        printf ("]\n");
    }
    else {
        printf ("%-24s %-20s %-6s %-8s %-20s %s\n", "NAME", "USER", "ROLE", "STATE", "CREATED",
                "EXPIRES");
        for (size_t i = 0; i < tokens->n_tokens; i++) {
            Qanat__ApiToken *token = tokens->tokens [i];
            const char *state = token->revoked? "revoked"
                              : token->expires_us && token->expires_us <= now? "expired": "active";
            printf ("%-24s %-20s %-6s %-8s %-20s ", token->name, token->user, token->role, state,
                    cli_time_text (token->created_us));
            printf ("%s\n", token->expires_us? cli_time_text (token->expires_us): "never");
        }
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
        s_print_api_token_json (reply->reply->api_token, false);
        printf ("\n");
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
    fprintf (stderr, "usage: qanat apitoken create NAME [--role user|admin] [--user U] "
                     "[--ttl 30d|12h|3600]\n"
                     "       qanat apitoken list [--json]\n"
                     "       qanat apitoken revoke NAME\n");
    return EXIT_USAGE;
}

int
cli_cmd_whoami (options_t *options, int argc, char **argv)
{
    (void) argv;
    if (argc != 0) {
        fprintf (stderr, "usage: qanat whoami [--json]\n");
        return EXIT_USAGE;
    }
    Qanat__WhoAmI whoami = QANAT__WHO_AM_I__INIT;
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.body_case = QANAT__REQUEST__BODY_WHOAMI;
    request.whoami = &whoami;
    qn_client_t *client = cli_connect (options);
    Qanat__Envelope *reply = cli_call (client, &request);
    Qanat__Principal *principal = reply->reply->whoami;
    if (options->json) {
        printf ("{\"kind\":");
        cli_json_str (stdout, principal->kind);
        printf (",\"name\":");
        cli_json_str (stdout, principal->name);
        printf (",\"role\":");
        cli_json_str (stdout, principal->role);
        printf ("}\n");
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
    if (options->json)
        printf ("[");
    for (size_t i = 0; i < secrets->n_names; i++) {
        const Qanat__SecretAccess *access = i < secrets->n_access? secrets->access [i]: NULL;
        if (!options->json) {
            printf ("%-24s ", secrets->names [i]);
            s_print_access (access);
            printf ("\n");
            continue;
        }
        printf ("%s{\"name\":", i? ",": "");
        cli_json_str (stdout, secrets->names [i]);
        printf (",\"allow\":[");
        for (size_t a = 0; access && a < access->n_allow; a++) {
            printf ("%s", a? ",": "");
            cli_json_str (stdout, access->allow [a]);
        }
        printf ("],\"agents\":{");
        for (size_t a = 0; access && a < access->n_agents; a++) {
            printf ("%s", a? ",": "");
            cli_json_str (stdout, access->agents [a]->key);
            printf (":");
            cli_json_str (stdout, access->agents [a]->value);
        }
        printf ("}}");
    }
    if (options->json)
        printf ("]\n");
}

int
cli_cmd_secret (options_t *options, int argc, char **argv)
{
    Qanat__Request request = QANAT__REQUEST__INIT;
    Qanat__SetSecret set = QANAT__SET_SECRET__INIT;
    Qanat__ListSecrets list = QANAT__LIST_SECRETS__INIT;
    char *value = NULL;
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
        fprintf (stderr, "usage: qanat secret set NAME [--allow LIST] [--agents k=v,..] < value-file\n"
                         "       qanat secret allow NAME LIST [--agents k=v,..]\n"
                         "       qanat secret list\n"
                         "LIST: user:NAME,role:ROLE,workflow:NAME (default role:admin)\n");
        return EXIT_USAGE;
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
    if (options->json)
        printf ("{");
    for (size_t i = 0; i < count; i++)
        if (options->json)
            printf ("%s\"%s\":%llu", i? ",": "", rows [i].key, (unsigned long long) rows [i].value);
        else
            printf ("%-24s %llu\n", rows [i].label, (unsigned long long) rows [i].value);
    if (options->json)
        printf ("}\n");
    qn_msg_free (&reply);
    qn_client_destroy (&client);
    return 0;
}
