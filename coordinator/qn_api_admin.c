/*  qn_api_admin - the administrative requests.  See qn_api_admin.h.

    The keyring holds users, tokens and agents' keys (qn_keyring), the
    vault's store the secrets, the fleet the agents' records (qn_fleet):
    a handler changes them within the turn, so the change is durable when
    the reply goes out.

    One of the files of the qn_coordinator class: it shares the engine's
    records (qn_engine.h), so the include checker counts it with
    qn_coordinator.
*/
#include "qn_engine.h"
#include "qn_log.h"
#include "qn_fleet.h"
#include "qn_api_admin.h"

#define ERR_BAD              QANAT__ERROR_CODE__ERROR_BAD_REQUEST
#define ERR_NOT_FOUND        QANAT__ERROR_CODE__ERROR_NOT_FOUND
#define ERR_CONFLICT         QANAT__ERROR_CODE__ERROR_CONFLICT
#define ERR_UNAVAILABLE      QANAT__ERROR_CODE__ERROR_UNAVAILABLE

static void
s_reply_principals (qn_api_call_t *call, uint64_t request_id, const Qanat__Principal **list,
                    size_t count)
{
    //  Shallow copies: the public key is left out, the rest is borrowed
    Qanat__Principal *copies = (Qanat__Principal *) calloc (count + 1, sizeof (Qanat__Principal));
    Qanat__Principal **items = (Qanat__Principal **) calloc (count + 1, sizeof (void *));
    if (!copies || !items)
        qn_api_error (call, request_id, ERR_UNAVAILABLE, "out of memory");
    else {
        for (size_t i = 0; i < count; i++) {
            copies [i] = *list [i];
            copies [i].public_key = "";
            items [i] = &copies [i];
        }
        Qanat__PrincipalList principals = QANAT__PRINCIPAL_LIST__INIT;
        principals.principals = items;
        principals.n_principals = count;
        Qanat__Reply reply = QANAT__REPLY__INIT;
        reply.id = request_id;
        reply.body_case = QANAT__REPLY__BODY_PRINCIPALS;
        reply.principals = &principals;
        call->reply (call, &reply);
    }
    free (items);
    free (copies);
}

//  Users and tokens need the keyring: an --insecure coordinator has none
static bool
s_refused_insecure (qn_api_call_t *call, uint64_t request_id, const char *what)
{
    if (call->engine->keyring)
        return false;
    char *message = zsys_sprintf ("%s need CURVE: this coordinator runs --insecure", what);
    qn_api_error (call, request_id, ERR_BAD, message);
    free (message);
    return true;
}

static void
s_list (qn_api_call_t *call, uint64_t request_id, const char *kind)
{
    size_t count = 0;
    const Qanat__Principal **list = call->engine->keyring
                                  ? qn_keyring_list (call->engine->keyring, kind, &count): NULL;
    s_reply_principals (call, request_id, list, count);
    free (list);
}

void
qn_api_admin_list_users (qn_api_call_t *call, Qanat__Request *request)
{
    s_list (call, request->id, "user");
}

void
qn_api_admin_list_tokens (qn_api_call_t *call, Qanat__Request *request)
{
    s_list (call, request->id, "token");
}

static Qanat__ErrorCode
s_change_code (qn_keyring_change_t failure)
{
    return failure == QN_KEYRING_NOT_FOUND? ERR_NOT_FOUND
         : failure == QN_KEYRING_REFUSED? ERR_CONFLICT
         : failure == QN_KEYRING_BAD? ERR_BAD: ERR_UNAVAILABLE;
}

void
qn_api_admin_revoke_user (qn_api_call_t *call, Qanat__Request *request)
{
    if (s_refused_insecure (call, request->id, "users"))
        return;
    const char *name = request->revoke_user->name;
    qn_keyring_change_t failure = QN_KEYRING_FAILED;
    char *error = NULL;
    const Qanat__Principal *user = qn_keyring_revoke_user (call->engine->keyring, name,
                                                           &failure, &error);
    if (!user) {
        qn_api_error (call, request->id, s_change_code (failure), error);
        free (error);
        return;
    }
    qn_log (QN_LOG_WARNING, "api", "user %s revoked by %s", name, qn_api_caller (call));
    s_reply_principals (call, request->id, &user, 1);
}

void
qn_api_admin_revoke_token (qn_api_call_t *call, Qanat__Request *request)
{
    if (s_refused_insecure (call, request->id, "join tokens"))
        return;
    const char *id = request->revoke_token->id;
    const Qanat__Principal *token = qn_keyring_revoke_token (call->engine->keyring, id);
    if (!token) {
        char *message = zsys_sprintf ("no join token with id '%s' (qanat token list shows them)",
                                      id? id: "");
        qn_api_error (call, request->id, ERR_NOT_FOUND, message);
        free (message);
        return;
    }
    qn_log (QN_LOG_WARNING, "api", "join token %s revoked by %s", id, qn_api_caller (call));
    s_reply_principals (call, request->id, &token, 1);
}

void
qn_api_admin_delete_secret (qn_api_call_t *call, Qanat__Request *request)
{
    qn_coordinator_t *self = call->engine;
    char *name = request->delete_secret->name;
    void *sealed = NULL;
    size_t size = 0;
    int found = name && *name? qn_store_get_secret (self->store, name, &sealed, &size): 0;
    free (sealed);
    if (found != 1) {
        char *message = found < 0? strdup (qn_store_error (self->store))
                      : zsys_sprintf ("no secret named '%s' (qanat secret list shows them)",
                                      name? name: "");
        qn_api_error (call, request->id, found < 0? ERR_UNAVAILABLE: ERR_NOT_FOUND, message);
        free (message);
        return;
    }
    if (qn_store_begin (self->store) || qn_store_delete_secret (self->store, name)) {
        qn_api_error (call, request->id, ERR_UNAVAILABLE, qn_store_error (self->store));
        return;
    }
    qn_log (QN_LOG_WARNING, "api", "secret %s deleted by %s", name, qn_api_caller (call));
    Qanat__SecretList list = QANAT__SECRET_LIST__INIT;
    list.names = &name;
    list.n_names = 1;
    Qanat__Reply reply = QANAT__REPLY__INIT;
    reply.id = request->id;
    reply.body_case = QANAT__REPLY__BODY_SECRETS;
    reply.secrets = &list;
    call->reply (call, &reply);
}

void
qn_api_admin_remove_agent (qn_api_call_t *call, Qanat__Request *request)
{
    qn_coordinator_t *self = call->engine;
    const char *name = request->remove_agent->name;
    agent_t *agent = name? (agent_t *) zhashx_lookup (self->agents, name): NULL;
    size_t keys = 0;
    const Qanat__Principal **all = self->keyring && name
                                 ? qn_keyring_list (self->keyring, "agent", &keys): NULL;
    bool enrolled = false;
    for (size_t i = 0; i < keys && !enrolled; i++)
        enrolled = streq (all [i]->name, name);
    free (all);
    char *message = NULL;
    Qanat__ErrorCode code = ERR_NOT_FOUND;
    if (!agent && !enrolled)
        message = zsys_sprintf ("no agent named '%s'", name? name: "");
    else
    if (agent && agent->routing_id) {
        //  Connected and admitted: forgetting it would only last until
        //  its next message.  A stopped agent is taken for connected
        //  until its lost deadline: it may only be restarting
        code = ERR_CONFLICT;
        message = zsys_sprintf ("agent %s is connected (or stopped less than its lost deadline "
                                "ago): revoke it first (qanat agent revoke %s)", name, name);
    }
    else
    if (self->keyring && qn_keyring_forget_agent (self->keyring, name) < 0) {
        code = ERR_UNAVAILABLE;
        message = strdup (qn_store_error (self->store));
    }
    if (message) {
        qn_api_error (call, request->id, code, message);
        free (message);
        return;
    }
    Qanat__AgentList list = QANAT__AGENT_LIST__INIT;
    Qanat__AgentInfo *one [1] = { agent? agent->info: NULL };
    list.agents = one;
    list.n_agents = agent? 1: 0;
    Qanat__Reply reply = QANAT__REPLY__INIT;
    reply.id = request->id;
    reply.body_case = QANAT__REPLY__BODY_AGENTS;
    reply.agents = &list;
    call->reply (call, &reply);         //  encoded now: the record may go
    qn_fleet_remove (self, name);
    qn_log (QN_LOG_WARNING, "api", "agent %s removed by %s", name, qn_api_caller (call));
}

void
qn_api_admin_label_agent (qn_api_call_t *call, Qanat__Request *request)
{
    qn_coordinator_t *self = call->engine;
    Qanat__LabelAgent *label = request->label_agent;
    if (!self->keyring) {
        qn_api_error (call, request->id, ERR_BAD, "this coordinator runs --insecure: an agent's "
                      "labels are its own (qanat-agent --label)");
        return;
    }
    qn_keyring_change_t failure = QN_KEYRING_FAILED;
    char *error = NULL;
    const Qanat__Principal *principal = qn_keyring_label_agent (
        self->keyring, label->name, label->set, label->n_set, label->remove, label->n_remove,
        &failure, &error);
    if (!principal) {
        qn_api_error (call, request->id, s_change_code (failure), error);
        free (error);
        return;
    }
    agent_t *agent = (agent_t *) zhashx_lookup (self->agents, label->name);
    if (agent) {
        qn_fleet_relabel (agent, principal->labels, principal->n_labels);
        qn_fleet_persist (self, agent);
    }
    qn_log (QN_LOG_INFO, "api", "agent %s relabelled by %s (%zu labels)", label->name,
            qn_api_caller (call), principal->n_labels);
    s_reply_principals (call, request->id, &principal, 1);
}
