/*  qn_cli_manage - taking things away and changing them: user list and
    revoke, token list and revoke (join tokens), secret delete, agent
    remove and agent label.  qn_cli_admin.c's commands hand these
    sub-commands over.

    One of the files of the qn_cli class.
*/
#include "qn_cli.h"
#include <string.h>

//  Calls the coordinator with one request body; prints its error and
//  exits on failure (cli_call)
static Qanat__Envelope *
s_call (options_t *options, qn_client_t **client_p, Qanat__Request *request)
{
    *client_p = cli_connect (options);
    return cli_call (*client_p, request);
}

static void
s_done (Qanat__Envelope **reply_p, qn_client_t **client_p)
{
    qn_msg_free (reply_p);
    qn_client_destroy (client_p);
}

//  A change that names one thing: calls the coordinator (exits on
//  failure), then says what was done, as {key: name, done: true} or as
//  the line text (a format with the name twice at most)
static int
s_act (options_t *options, Qanat__Request *request, const char *key, const char *name,
       const char *done, const char *text)
{
    qn_client_t *client = NULL;
    Qanat__Envelope *reply = s_call (options, &client, request);
    if (options->json)
        cli_json_print (json_pack ("{s:o,s:b}", key, cli_json_text (name), done, true));
    else {
        printf (text, name, name);
        printf ("\n");
    }
    s_done (&reply, &client);
    return 0;
}

//  "k=v,k=v", or "-" for none (a static buffer, good until the next call)
static const char *
s_labels_text (Qanat__Label **labels, size_t count)
{
    static char text [2048];
    size_t used = 0;
    text [0] = 0;
    for (size_t i = 0; i < count && used < sizeof text; i++)
        used += (size_t) snprintf (text + used, sizeof text - used, "%s%s=%s", i? ",": "",
                                   labels [i]->key, labels [i]->value);
    return count? text: "-";
}

//  ---------------------------------------------------------------------
//  Users

static const char *
s_user_state (const Qanat__Principal *user)
{
    return user->revoked? "revoked": "active";
}

int
cli_user_list (options_t *options)
{
    Qanat__ListUsers list = QANAT__LIST_USERS__INIT;
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.body_case = QANAT__REQUEST__BODY_LIST_USERS;
    request.list_users = &list;
    qn_client_t *client = NULL;
    Qanat__Envelope *reply = s_call (options, &client, &request);
    Qanat__PrincipalList *users = reply->reply->principals;
    json_t *array = options->json? json_array (): NULL;
    cli_table_t *table = cli_table_new ("USER ROLE STATE CREATED");
    for (size_t i = 0; i < users->n_principals; i++) {
        Qanat__Principal *user = users->principals [i];
        if (array)
            json_array_append_new (array, json_pack ("{s:o,s:o,s:s,s:b,s:I}",
                "name", cli_json_text (user->name), "role", cli_json_text (user->role),
                "state", s_user_state (user), "revoked", user->revoked,
                "created_us", (json_int_t) user->created_us));
        else
            cli_table_add (table, user->name, user->role, cli_status_paint (s_user_state (user)),
                           cli_time_text (user->created_us));
    }
    if (array)
        cli_json_print (array);
    else
        cli_table_print (table, stdout);
    cli_table_destroy (&table);
    s_done (&reply, &client);
    return 0;
}

int
cli_user_revoke (options_t *options, const char *name)
{
    Qanat__RevokeUser revoke = QANAT__REVOKE_USER__INIT;
    revoke.name = (char *) name;
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.body_case = QANAT__REQUEST__BODY_REVOKE_USER;
    request.revoke_user = &revoke;
    return s_act (options, &request, "name", name, "revoked",
                  "user %s revoked: its key is refused from now on");
}

//  ---------------------------------------------------------------------
//  Join tokens

static const char *
s_token_state (const Qanat__Principal *token, int64_t now)
{
    return token->revoked? "revoked": token->expires_us <= now? "expired"
         : token->uses_left == 0? "used up": "active";
}

int
cli_token_list (options_t *options)
{
    Qanat__ListTokens list = QANAT__LIST_TOKENS__INIT;
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.body_case = QANAT__REQUEST__BODY_LIST_TOKENS;
    request.list_tokens = &list;
    qn_client_t *client = NULL;
    Qanat__Envelope *reply = s_call (options, &client, &request);
    Qanat__PrincipalList *tokens = reply->reply->principals;
    int64_t now = qn_now_us ();
    json_t *array = options->json? json_array (): NULL;
    cli_table_t *table = cli_table_new ("ID STATE EXPIRES USES_LEFT LABELS");
    for (size_t i = 0; i < tokens->n_principals; i++) {
        Qanat__Principal *token = tokens->principals [i];
        const char *state = s_token_state (token, now);
        if (array)
            json_array_append_new (array, json_pack ("{s:o,s:s,s:I,s:i,s:o,s:b,s:I}",
                "id", cli_json_text (token->name), "state", state,
                "expires_us", (json_int_t) token->expires_us, "uses_left", (int) token->uses_left,
                "labels", cli_json_labels (token->labels, token->n_labels),
                "revoked", token->revoked, "created_us", (json_int_t) token->created_us));
        else {
            char uses [16];
            snprintf (uses, sizeof uses, "%u", token->uses_left);
            cli_table_add (table, token->name, cli_status_paint (state),
                           cli_time_text (token->expires_us), uses,
                           s_labels_text (token->labels, token->n_labels));
        }
    }
    if (array)
        cli_json_print (array);
    else
    if (tokens->n_principals == 0)
        printf ("no join tokens yet (qanat token create)\n");
    else
        cli_table_print (table, stdout);
    cli_table_destroy (&table);
    s_done (&reply, &client);
    return 0;
}

int
cli_token_revoke (options_t *options, const char *id)
{
    Qanat__RevokeToken revoke = QANAT__REVOKE_TOKEN__INIT;
    revoke.id = (char *) id;
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.body_case = QANAT__REQUEST__BODY_REVOKE_TOKEN;
    request.revoke_token = &revoke;
    return s_act (options, &request, "id", id, "revoked", "join token %s revoked: no agent "
                  "enrols with it from now on (agents it enrolled stay)");
}

//  ---------------------------------------------------------------------
//  Secrets

int
cli_secret_delete (options_t *options, const char *name)
{
    Qanat__DeleteSecret remove = QANAT__DELETE_SECRET__INIT;
    remove.name = (char *) name;
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.body_case = QANAT__REQUEST__BODY_DELETE_SECRET;
    request.delete_secret = &remove;
    return s_act (options, &request, "name", name, "deleted", "secret %s deleted");
}

//  ---------------------------------------------------------------------
//  Agents

int
cli_agent_remove (options_t *options, const char *name)
{
    Qanat__RemoveAgent remove = QANAT__REMOVE_AGENT__INIT;
    remove.name = (char *) name;
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.body_case = QANAT__REQUEST__BODY_REMOVE_AGENT;
    request.remove_agent = &remove;
    return s_act (options, &request, "name", name, "removed", "agent %s removed: it is "
                  "forgotten, with its keys (to come back it enrols again)");
}

//  KEY=VALUE sets a label, KEY- removes one; -1 after saying why
static int
s_label_words (int argc, char **argv, Qanat__LabelAgent *label)
{
    label->set = (Qanat__Label **) calloc ((size_t) argc + 1, sizeof (void *));
    label->remove = (char **) calloc ((size_t) argc + 1, sizeof (char *));
    for (int i = 0; i < argc; i++) {
        const char *word = argv [i];
        const char *equals = strchr (word, '=');
        size_t len = strlen (word);
        if (equals && equals != word) {
            Qanat__Label *one = (Qanat__Label *) malloc (sizeof (Qanat__Label));
            qanat__label__init (one);
            one->key = strndup (word, (size_t) (equals - word));
            one->value = strdup (equals + 1);
            label->set [label->n_set++] = one;
        }
        else
        if (!equals && len > 1 && word [len - 1] == '-')
            label->remove [label->n_remove++] = strndup (word, len - 1);
        else {
            fprintf (stderr, "%s: '%s' is neither KEY=VALUE (set a label) nor KEY- (remove "
                     "one)\n", cli_program, word);
            return -1;
        }
    }
    return 0;
}

static void
s_label_free (Qanat__LabelAgent *label)
{
    for (size_t i = 0; i < label->n_set; i++) {
        free (label->set [i]->key);
        free (label->set [i]->value);
        free (label->set [i]);
    }
    for (size_t i = 0; i < label->n_remove; i++)
        free (label->remove [i]);
    free (label->set);
    free (label->remove);
}

int
cli_agent_label (options_t *options, const char *name, int argc, char **argv)
{
    Qanat__LabelAgent label = QANAT__LABEL_AGENT__INIT;
    label.name = (char *) name;
    if (argc < 1 || s_label_words (argc, argv, &label)) {
        s_label_free (&label);
        return argc < 1? cli_usage_error ("agent"): EXIT_USAGE;
    }
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.body_case = QANAT__REQUEST__BODY_LABEL_AGENT;
    request.label_agent = &label;
    qn_client_t *client = NULL;
    Qanat__Envelope *reply = s_call (options, &client, &request);
    s_label_free (&label);
    Qanat__PrincipalList *list = reply->reply->principals;
    Qanat__Principal *agent = list && list->n_principals? list->principals [0]: NULL;
    Qanat__Label **labels = agent? agent->labels: NULL;
    size_t count = agent? agent->n_labels: 0;
    if (options->json)
        cli_json_print (json_pack ("{s:o,s:o}", "name", cli_json_text (name),
                                   "labels", cli_json_labels (labels, count)));
    else
        printf ("agent %s labels: %s\n", name, s_labels_text (labels, count));
    s_done (&reply, &client);
    return 0;
}
