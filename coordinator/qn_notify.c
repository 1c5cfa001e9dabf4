/*  qn_notify - notifications of runs' endings: the durable outbox.
    See qn_notify.h; the wire formats are in docs/notifications.md.

    One of the files of the qn_coordinator class.
*/
#include "qn_notify.h"
#include "qn_notify_worker.h"
#include "qn_wf_notify.h"
#include "qn_turn.h"
#include "qn_run.h"
#include "qn_log.h"
#include "qn_json.h"
#include <jansson.h>
#include <sodium.h>

#define S_EMPTY     ((char *) protobuf_c_empty_string)

struct _qn_notify_t {
    qn_coordinator_t *engine;
    zactor_t *worker;
    zhashx_t *in_flight;                //  "run:channel" -> the attempt's start (a set)
    zhashx_t *results;                  //  "run:channel" -> "0", or "1" and the error:
                                        //  ended attempts, recorded at the next timer
};

//  ---------------------------------------------------------------------
//  Writing the outbox at a run's end

//  The run's endings, as QN_NOTIFY_ON_* flags
static unsigned
s_events (Qanat__RunInfo *info)
{
    switch (info->status) {
        case QANAT__RUN_STATUS__RUN_SUCCEEDED: return QN_NOTIFY_ON_SUCCEEDED;
        case QANAT__RUN_STATUS__RUN_SUCCEEDED_WITH_WARNINGS: return QN_NOTIFY_ON_WARNINGS;
        case QANAT__RUN_STATUS__RUN_CANCELED: return QN_NOTIFY_ON_CANCELED;
        case QANAT__RUN_STATUS__RUN_FAILED: break;
        default: return 0;
    }
    for (size_t t = 0; t < info->n_tasks; t++) {
        Qanat__TaskInfo *task = info->tasks [t];
        for (size_t c = 0; c < task->n_checks; c++)
            if (!task->checks [c]->passed && streq (task->checks [c]->severity, "error"))
                return QN_NOTIFY_ON_FAILED | QN_NOTIFY_ON_CHECK_FAILED;
    }
    return QN_NOTIFY_ON_FAILED;
}

//  Why a task failed, in a few words
static char *
s_reason (Qanat__TaskInfo *task)
{
    Qanat__AttemptInfo *attempt = qn_run_current_attempt (task);
    if (!attempt)
        return strdup (*task->waiting_reason? task->waiting_reason: "did not start");
    if (*attempt->reason)
        return strdup (attempt->reason);
    if (attempt->signal)
        return zsys_sprintf ("killed by signal %d", attempt->signal);
    return zsys_sprintf ("%s %d", *attempt->end? attempt->end: "exit", attempt->exit_code);
}

//  The webhook's JSON and the plain text of Slack and email, from the
//  stored run (built when it is sent, not in the commit of the run's end)
static void
s_message (qn_coordinator_t *self, Qanat__RunInfo *info, const char *event, char **body_p,
           char **text_p)
{
    const char *status = qn_run_status_name (info->status);
    const char *base = self->config.public_url? self->config.public_url: "";
    int base_len = (int) strlen (base);
    while (base_len > 0 && base [base_len - 1] == '/')
        base_len--;
    char *link = base_len? zsys_sprintf ("%.*s/ui/runs/%llu", base_len, base,
                                         (unsigned long long) info->run_id): NULL;
    json_t *failed = json_array ();
    char *text = zsys_sprintf ("qanat: run %llu of %s (version %u) %s\n",
                               (unsigned long long) info->run_id, info->workflow, info->version,
                               status);
    for (size_t t = 0; t < info->n_tasks; t++) {
        Qanat__TaskInfo *task = info->tasks [t];
        if (task->status != QANAT__TASK_STATUS__TASK_FAILED)
            continue;
        char *reason = s_reason (task);
        //  A reason is an agent's text: any bytes, made valid UTF-8
        json_t *item = json_object ();
        json_object_set_new (item, "task", qn_json_text (task->name, strlen (task->name)));
        json_object_set_new (item, "reason", qn_json_text (reason, strlen (reason)));
        json_array_append_new (failed, item);
        char *more = zsys_sprintf ("%s  task %s failed: %s\n", text, task->name, reason);
        free (text);
        text = more;
        free (reason);
    }
    if (link) {
        char *more = zsys_sprintf ("%s%s\n", text, link);
        free (text);
        text = more;
    }
    json_t *body = json_pack ("{s:I, s:s, s:i, s:s, s:s, s:s?, s:I, s:I, s:o}",
                              "run", (json_int_t) info->run_id, "workflow", info->workflow,
                              "version", (int) info->version, "status", status, "event", event,
                              "owner", info->owner, "created_us", (json_int_t) info->created_us,
                              "finished_us", (json_int_t) info->finished_us,
                              "failed_tasks", failed);
    if (link)
        json_object_set_new (body, "url", json_string (link));
    *body_p = body? json_dumps (body, JSON_COMPACT | JSON_SORT_KEYS): NULL;
    if (!*body_p)
        *body_p = strdup ("{}");
    *text_p = text;
    json_decref (body);
    free (link);
}

//  Where an entry goes, for listings: references stay references, a URL
//  loses its query, a Slack URL (itself a credential) all but its host.
static char *
s_target (const qn_notify_channel_t *channel)
{
    const char *url = channel->url? channel->url: "";
    const char *host_end = strstr (url, "://");
    host_end = host_end? strchr (host_end + 3, '/'): NULL;
    if (strstr (url, "${{"))
        return strdup (url);
    if (channel->kind == QN_NOTIFY_SLACK)
        return host_end? zsys_sprintf ("%.*s/…", (int) (host_end - url), url): strdup ("(slack)");
    if (channel->kind == QN_NOTIFY_WEBHOOK)
        return zsys_sprintf ("%.*s", (int) strcspn (url, "?#"), url);
    char *to = strdup ("");
    for (size_t i = 0; i < channel->to_count; i++) {
        char *more = zsys_sprintf ("%s%s%s", to, i? ",": "", channel->to [i]);
        free (to);
        to = more;
    }
    char *target = zsys_sprintf ("%s via %s", to, url);
    free (to);
    return target;
}

void
qn_notify_run_ended (qn_coordinator_t *self, run_t *run)
{
    qn_notify_ended (self, run->info, run->wf);
}

void
qn_notify_ended (qn_coordinator_t *self, Qanat__RunInfo *info, qn_workflow_t *wf)
{
    const qn_wf_notify_t *rules = wf? qn_workflow_notify (wf): NULL;
    bool from_default = !rules;
    if (!rules)
        rules = self->notify_default;
    unsigned events = rules? s_events (info): 0;
    if (!events)
        return;
    uint64_t run_id = info->run_id;
    int64_t now = qn_now_us ();
    for (size_t i = 0; i < rules->channel_count; i++) {
        const qn_notify_channel_t *channel = &rules->channels [i];
        //  Not listened to, or written by an earlier commit of this end
        if (!(channel->on & events)
        ||  qn_store_has_notif (self->store, run_id, (uint32_t) i) != 0)
            continue;
        unsigned match = channel->on & events;
        const char *event = qn_wf_notify_event_name ((match & QN_NOTIFY_ON_CHECK_FAILED)
                                                     ? QN_NOTIFY_ON_CHECK_FAILED: match);
        //  A compact record: the message itself is made from the stored
        //  run when it is sent
        Qanat__NotifEntry entry = QANAT__NOTIF_ENTRY__INIT;
        entry.run_id = run_id;
        entry.channel = (uint32_t) i;
        entry.workflow = info->workflow;
        entry.version = info->version;
        entry.event = (char *) event;
        entry.kind = (char *) qn_wf_notify_kind_name (channel->kind);
        entry.target = s_target (channel);
        entry.state = "pending";
        entry.created_us = now;
        entry.next_attempt_us = now;
        entry.idempotency_key = zsys_sprintf ("qanat-run-%llu-%s-%zu",
                                              (unsigned long long) run_id, event, i);
        entry.owner = info->owner;
        entry.from_default = from_default;
        entry.url = (char *) (channel->url? channel->url: S_EMPTY);
        entry.secret = (char *) (channel->secret? channel->secret: S_EMPTY);
        entry.to = channel->to;
        entry.n_to = channel->to_count;
        entry.from = (char *) (channel->from? channel->from: S_EMPTY);
        entry.user = (char *) (channel->user? channel->user: S_EMPTY);
        entry.password = (char *) (channel->password? channel->password: S_EMPTY);
        if (qn_store_begin (self->store) || qn_store_put_notif (self->store, &entry))
            qn_log (QN_LOG_ERROR, "notify", "cannot queue a notification of run %llu: %s",
                    (unsigned long long) run_id, qn_store_error (self->store));
        free (entry.target);
        free (entry.idempotency_key);
    }
}

//  ---------------------------------------------------------------------
//  Sending

const char *
qn_notify_signature (const char *key, int64_t t, const char *body, char *buf)
{
    char stamp [24];
    snprintf (stamp, sizeof stamp, "%lld.", (long long) t);
    crypto_auth_hmacsha256_state state;
    unsigned char mac [crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256_init (&state, (const unsigned char *) key, strlen (key));
    crypto_auth_hmacsha256_update (&state, (const unsigned char *) stamp, strlen (stamp));
    crypto_auth_hmacsha256_update (&state, (const unsigned char *) body, strlen (body));
    crypto_auth_hmacsha256_final (&state, mac);
    char hex [2 * sizeof mac + 1];
    sodium_bin2hex (hex, sizeof hex, mac, sizeof mac);
    snprintf (buf, 96, "t=%lld,v1=%s", (long long) t, hex);
    return buf;
}

//  Why a run of workflow by owner (of role) may not have a secret text
//  names, or NULL.  A notification goes to no agent: a secret limited to
//  agents with labels is refused.
static char *
s_refusal (qn_coordinator_t *self, const char *text, const char *owner, const char *role,
           const char *workflow)
{
    char *error = NULL;
    zlistx_t *names = zlistx_new ();
    zlistx_set_destructor (names, (zlistx_destructor_fn *) zstr_free);
    zlistx_set_duplicator (names, (zlistx_duplicator_fn *) strdup);
    qn_vault_references (text, names, &error);
    qn_vault_use_t use = { owner, role, workflow, NULL, 0, "a notification does not select" };
    for (char *name = (char *) zlistx_first (names); name && !error;
         name = (char *) zlistx_next (names))
        error = qn_vault_refusal (self->vault, name, &use);
    zlistx_destroy (&names);
    return error;
}

char *
qn_notify_secrets_refusal (qn_coordinator_t *self, qn_workflow_t *wf, const char *owner,
                           const char *role)
{
    const qn_wf_notify_t *rules = qn_workflow_notify (wf);
    char *reason = NULL;
    for (size_t i = 0; self->vault && rules && i < rules->channel_count && !reason; i++) {
        const qn_notify_channel_t *channel = &rules->channels [i];
        const char *fields [] = { channel->url, channel->secret, channel->user,
                                  channel->password };
        for (size_t f = 0; f < 4 && !reason; f++)
            if (fields [f] && strstr (fields [f], "${{"))
                reason = s_refusal (self, fields [f], owner, role, qn_workflow_name (wf));
    }
    return reason;
}

//  A field with its ${{ secrets.NAME }} resolved, if the run's owner and
//  workflow may use them.  NULL with *error_p (naming the secret, never
//  its value).
static char *
s_resolve (qn_coordinator_t *self, Qanat__NotifEntry *entry, const char *text, char **error_p)
{
    if (!strstr (text, "${{"))
        return strdup (text);
    if (!self->vault) {
        *error_p = strdup ("secrets need a coordinator with keys (not --insecure)");
        return NULL;
    }
    if (!entry->from_default) {
        const char *owner = *entry->owner? entry->owner: "local";
        const Qanat__Principal *user = self->keyring? qn_keyring_user (self->keyring, owner): NULL;
        *error_p = s_refusal (self, text, owner, self->keyring? (user? user->role: NULL): "admin",
                              entry->workflow);
        if (*error_p)
            return NULL;
    }
    zlistx_t *redact = zlistx_new ();
    zlistx_set_destructor (redact, (zlistx_destructor_fn *) zstr_free);
    zlistx_set_duplicator (redact, (zlistx_duplicator_fn *) strdup);
    char *value = qn_vault_expand (self->vault, text, redact, error_p);
    zlistx_destroy (&redact);
    return value;
}

//  Records an entry's new state (in the open transaction)
static void
s_record (qn_coordinator_t *self, Qanat__NotifEntry *entry, const char *state, const char *error)
{
    qn_engine_replace_string (&entry->state, strdup (state));
    if (error)
        qn_engine_replace_string (&entry->last_error, strdup (error));
    if (!streq (state, "pending"))
        entry->done_us = qn_now_us ();
    if (qn_store_begin (self->store) || qn_store_put_notif (self->store, entry))
        qn_log (QN_LOG_ERROR, "notify", "cannot record notification %llu:%u: %s",
                (unsigned long long) entry->run_id, entry->channel, qn_store_error (self->store));
    if (!streq (state, "pending"))
        qn_log (streq (state, "failed")? QN_LOG_WARNING: QN_LOG_INFO, "notify",
                "run %llu's %s notification %s%s%s", (unsigned long long) entry->run_id,
                entry->kind, state, error? ": ": "", error? error: "");
}

//  The message of an entry: the one it carries (written by an older
//  coordinator), else made from the stored run.  -1 with *error_p.
static int
s_content (qn_coordinator_t *self, Qanat__NotifEntry *entry, char **json_p, char **text_p,
           char **error_p)
{
    if (entry->body.len) {
        *json_p = strndup ((const char *) entry->body.data, entry->body.len);
        *text_p = strdup (entry->text);
        return 0;
    }
    Qanat__RunInfo *info = qn_store_get_run (self->store, entry->run_id);
    if (!info) {
        *error_p = strdup ("the run is no longer stored");
        return -1;
    }
    Qanat__TaskInfo **tasks = NULL;
    size_t count = 0;
    if (qn_store_get_tasks (self->store, entry->run_id, &tasks, &count) == 0) {
        info->tasks = tasks;
        info->n_tasks = count;
    }
    s_message (self, info, entry->event, json_p, text_p);
    qn_engine_free_message (info);
    return 0;
}

//  The request for the worker; -1 with *error_p when it cannot be made
static int
s_send (qn_coordinator_t *self, Qanat__NotifEntry *entry, const char *id, char **error_p)
{
    char *json = NULL, *text = NULL;
    if (s_content (self, entry, &json, &text, error_p))
        return -1;
    char *url = s_resolve (self, entry, entry->url, error_p);
    char *secret = url? s_resolve (self, entry, entry->secret, error_p): NULL;
    char *user = secret? s_resolve (self, entry, entry->user, error_p): NULL;
    char *password = user? s_resolve (self, entry, entry->password, error_p): NULL;
    int rc = -1;
    if (password) {
        bool email = streq (entry->kind, "email");
        qn_notify_request_t request = { .id = id, .smtp = email, .url = url, .user = user,
                                        .password = password };
        char *body = NULL, *headers = NULL, *to = NULL, *from = NULL;
        if (email) {
            char date [64];
            time_t now = time (NULL);
            struct tm tm;
            strftime (date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", gmtime_r (&now, &tm));
            to = strdup ("");
            for (size_t i = 0; i < entry->n_to; i++) {
                char *more = zsys_sprintf ("%s%s<%s>", to, i? "\n": "", entry->to [i]);
                free (to);
                to = more;
            }
            char *to_header = strdup (to);
            for (char *c = to_header; *c; c++)
                if (*c == '\n')
                    *c = ',';
            from = zsys_sprintf ("<%s>", entry->from);
            body = zsys_sprintf ("From: %s\r\nTo: %s\r\nSubject: qanat: run %llu of %s %s\r\n"
                                 "Date: %s\r\nMessage-ID: <%s@qanat>\r\nMIME-Version: 1.0\r\n"
                                 "Content-Type: text/plain; charset=utf-8\r\n\r\n%s",
                                 entry->from, to_header, (unsigned long long) entry->run_id,
                                 entry->workflow, entry->event, date, entry->idempotency_key,
                                 text);
            free (to_header);
        }
        else
        if (streq (entry->kind, "slack")) {
            json_t *message = json_object ();
            json_object_set_new (message, "text", qn_json_text (text, strlen (text)));
            body = json_dumps (message, JSON_COMPACT);
            json_decref (message);
            headers = zsys_sprintf ("Content-Type: application/json\nIdempotency-Key: %s",
                                    entry->idempotency_key);
        }
        else {
            body = json;
            json = NULL;
            char signature [96] = "";
            if (*secret)
                qn_notify_signature (secret, (int64_t) time (NULL), body, signature);
            headers = zsys_sprintf ("Content-Type: application/json\nUser-Agent: qanat\n"
                                    "Idempotency-Key: %s%s%s", entry->idempotency_key,
                                    *signature? "\nX-Qanat-Signature: ": "", signature);
        }
        request.body = body;
        request.headers = headers;
        request.to = to;
        request.from = from;
        rc = body? qn_notify_worker_send (self->notifier->worker, &request): -1;
        if (rc)
            *error_p = strdup (body? "the notification thread did not take it": "out of memory");
        free (body);
        free (headers);
        free (to);
        free (from);
    }
    free (json);
    free (text);
    free (url);
    if (secret)
        sodium_memzero (secret, strlen (secret));
    free (secret);
    free (user);
    if (password)
        sodium_memzero (password, strlen (password));
    free (password);
    return rc;
}

//  Whether a pending entry is being sent, or its result waits to be
//  recorded: the scan skips it undecoded
static bool
s_busy (qn_notify_t *notifier, const char *id)
{
    return zhashx_lookup (notifier->in_flight, id) || zhashx_lookup (notifier->results, id);
}

static bool
s_in_flight (uint64_t run_id, uint32_t channel, void *arg)
{
    char id [48];
    snprintf (id, sizeof id, "%llu:%u", (unsigned long long) run_id, channel);
    return s_busy ((qn_notify_t *) arg, id);
}

//  Sends due pending entries while there is room, looking at most at
//  limit of those not in flight
static void
s_fill (qn_coordinator_t *self, size_t limit)
{
    qn_notify_t *notifier = self->notifier;
    if (!notifier || zhashx_size (notifier->in_flight) >= QN_NOTIFY_IN_FLIGHT_MAX)
        return;
    Qanat__NotifEntry **entries = NULL;
    size_t count = 0;
    if (qn_store_pending_notifs (self->store, limit, s_in_flight, notifier, &entries, &count))
        return;
    int64_t now = qn_now_us ();
    for (size_t i = 0; i < count; i++) {
        Qanat__NotifEntry *entry = entries [i];
        char id [48];
        snprintf (id, sizeof id, "%llu:%u", (unsigned long long) entry->run_id, entry->channel);
        if (entry->next_attempt_us > now || s_busy (notifier, id)
        ||  zhashx_size (notifier->in_flight) >= QN_NOTIFY_IN_FLIGHT_MAX)
            continue;
        char *error = NULL;
        if (s_send (self, entry, id, &error) == 0)
            zhashx_insert (notifier->in_flight, id, (void *) 1);
        else {
            entry->attempts++;
            s_record (self, entry, "failed", error);
        }
        free (error);
    }
    qn_store_free_array (entries, count);
}

//  Records one attempt's result (in the open transaction)
static void
s_record_result (qn_coordinator_t *self, const char *id, const char *result)
{
    unsigned long long run_id = 0;
    unsigned channel = 0;
    if (sscanf (id, "%llu:%u", &run_id, &channel) != 2)
        return;
    Qanat__NotifEntry *entry = qn_store_get_notif (self->store, run_id, channel);
    if (entry && streq (entry->state, "pending")) {
        entry->attempts++;
        int64_t now = qn_now_us ();
        int64_t backoff_s = entry->attempts < 9? (int64_t) 1 << (entry->attempts - 1)
                                               : QN_NOTIFY_BACKOFF_MAX_S;
        if (backoff_s > QN_NOTIFY_BACKOFF_MAX_S)
            backoff_s = QN_NOTIFY_BACKOFF_MAX_S;
        entry->next_attempt_us = now + backoff_s * 1000000;
        if (*result == '0')
            s_record (self, entry, "delivered", NULL);
        else
        if (entry->next_attempt_us - entry->created_us
            > self->config.notify_give_up_s * 1000000)
            s_record (self, entry, "failed", result + 1);
        else
            s_record (self, entry, "pending", result + 1);
    }
    qn_engine_free_message (entry);
}

void
qn_notify_tick (qn_coordinator_t *self)
{
    qn_notify_t *notifier = self->notifier;
    if (!notifier)
        return;
    //  The results of the last quarter second, in this turn's one commit
    for (const char *result = (const char *) zhashx_first (notifier->results); result;
         result = (const char *) zhashx_next (notifier->results))
        s_record_result (self, (const char *) zhashx_cursor (notifier->results), result);
    zhashx_purge (notifier->results);
    s_fill (self, 256);
}

//  Takes one result from the worker: its slot is free, its record waits
//  for the timer
static void
s_result (qn_coordinator_t *self, zmsg_t *msg)
{
    char *command = zmsg_popstr (msg);
    char *id = zmsg_popstr (msg);
    char *status = zmsg_popstr (msg);
    char *error = zmsg_popstr (msg);
    unsigned long long run_id = 0;
    unsigned channel = 0;
    if (command && streq (command, "DONE") && id && status && error
    &&  sscanf (id, "%llu:%u", &run_id, &channel) == 2
    &&  zhashx_lookup (self->notifier->in_flight, id)) {
        zhashx_delete (self->notifier->in_flight, id);
        zhashx_update (self->notifier->results, id,
                       streq (status, "0")? strdup ("0"): zsys_sprintf ("1%s", error));
    }
    zstr_free (&command);
    zstr_free (&id);
    zstr_free (&status);
    zstr_free (&error);
}

//  Results from the worker: every one waiting is taken, and the slots
//  they free are filled at once.  They are recorded together in the
//  timer's turn, a quarter second later at most, so that the commits of
//  runs do not grow with them: a result lost in a crash only means that
//  the entry is sent again.
static int
s_on_result (zloop_t *loop, zsock_t *pipe, void *arg)
{
    (void) loop;
    qn_coordinator_t *self = (qn_coordinator_t *) arg;
    for (size_t n = 0; n < 2 * QN_NOTIFY_IN_FLIGHT_MAX; n++) {
        if (n && !(zsock_events (pipe) & ZMQ_POLLIN))
            break;
        zmsg_t *msg = zmsg_recv (pipe);
        if (!msg)
            break;
        s_result (self, msg);
        zmsg_destroy (&msg);
    }
    //  As many as there are free slots (entries waiting for a retry may
    //  take some of them: the timer's pass looks further)
    s_fill (self, QN_NOTIFY_IN_FLIGHT_MAX - zhashx_size (self->notifier->in_flight));
    return 0;
}

qn_notify_t *
qn_notify_new (qn_coordinator_t *engine)
{
    char *error = NULL;
    zactor_t *worker = qn_notify_worker_new (&error);
    if (!worker) {
        qn_log (QN_LOG_WARNING, "notify", "notifications stay queued: %s", error);
        free (error);
        return NULL;
    }
    qn_notify_t *self = (qn_notify_t *) zmalloc (sizeof (qn_notify_t));
    self->engine = engine;
    self->worker = worker;
    self->in_flight = zhashx_new ();
    self->results = zhashx_new ();
    zhashx_set_destructor (self->results, (zhashx_destructor_fn *) zstr_free);
    zloop_reader (engine->loop, zactor_sock (worker), s_on_result, engine);
    return self;
}

void
qn_notify_destroy (qn_notify_t **self_p)
{
    qn_notify_t *self = *self_p;
    if (!self)
        return;
    if (self->engine->loop)
        zloop_reader_end (self->engine->loop, zactor_sock (self->worker));
    zactor_destroy (&self->worker);
    zhashx_destroy (&self->in_flight);
    zhashx_destroy (&self->results);       //  not recorded: sent again after a restart
    free (self);
    *self_p = NULL;
}

//  ---------------------------------------------------------------------
//  ListNotifications

void
qn_notify_api_list (qn_api_call_t *call, Qanat__Request *request)
{
    qn_coordinator_t *self = call->engine;
    Qanat__ListNotifications *list = request->list_notifications;
    Qanat__NotifEntry **entries = NULL;
    size_t count = 0;
    size_t limit = list->limit && list->limit < 1000? list->limit: 50;
    if (qn_store_list_notifs (self->store, list->run_id, limit, &entries, &count)) {
        qn_api_error (call, request->id, QANAT__ERROR_CODE__ERROR_UNAVAILABLE,
                      qn_store_error (self->store));
        return;
    }
    //  Only what a listing shows: the settings stay in the store
    for (size_t i = 0; i < count; i++) {
        Qanat__NotifEntry *entry = entries [i];
        entry->body.len = 0;
        qn_engine_replace_string (&entry->text, S_EMPTY);
        qn_engine_replace_string (&entry->url, S_EMPTY);
        qn_engine_replace_string (&entry->secret, S_EMPTY);
        qn_engine_replace_string (&entry->from, S_EMPTY);
        qn_engine_replace_string (&entry->user, S_EMPTY);
        qn_engine_replace_string (&entry->password, S_EMPTY);
        for (size_t t = 0; t < entry->n_to; t++)
            free (entry->to [t]);
        entry->n_to = 0;
    }
    Qanat__NotifList reply_list = QANAT__NOTIF_LIST__INIT;
    reply_list.entries = entries;
    reply_list.n_entries = count;
    Qanat__Reply reply = QANAT__REPLY__INIT;
    reply.id = request->id;
    reply.body_case = QANAT__REPLY__BODY_NOTIFICATIONS;
    reply.notifications = &reply_list;
    call->reply (call, &reply);
    qn_store_free_array (entries, count);
}
