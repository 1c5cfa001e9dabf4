/*  qn_wf_notify - a workflow's `notify:`.  See qn_wf_notify.h.

    One of the files of the qn_workflow class.
*/
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qn_wf_notify.h"
#include "qn_file.h"

static const char *s_block_keys [] = { "on", "webhook", "slack", "email", NULL };
static const char *s_webhook_keys [] = { "url", "secret", NULL };
static const char *s_slack_keys [] = { "webhook", NULL };
static const char *s_email_keys [] = { "to", "smtp", "from", "user", "password", NULL };
static const char *s_events [] = {
    "failed", "succeeded_with_warnings", "succeeded", "canceled", "check_failed", NULL
};

const char *
qn_wf_notify_event_name (unsigned flag)
{
    for (size_t i = 0; s_events [i]; i++)
        if (flag == (1u << i))
            return s_events [i];
    return "?";
}

const char *
qn_wf_notify_kind_name (qn_notify_kind_t kind)
{
    return kind == QN_NOTIFY_WEBHOOK? "webhook": kind == QN_NOTIFY_SLACK? "slack": "email";
}

bool
qn_wf_notify_refs_ok (const char *text, const char **bad_p)
{
    for (const char *open = strstr (text, "${{"); open; open = strstr (open + 3, "${{")) {
        const char *p = open + 3;
        while (*p == ' ')
            p++;
        bool ok = strncmp (p, "secrets.", 8) == 0;
        if (ok) {
            p += 8;
            const char *name = p;
            while (isalnum ((unsigned char) *p) || *p == '_')
                p++;
            ok = p > name;
            while (*p == ' ')
                p++;
            ok = ok && strncmp (p, "}}", 2) == 0;
        }
        if (!ok) {
            if (bad_p)
                *bad_p = open;
            return false;
        }
    }
    return true;
}

static bool
s_is_reference (const char *text)
{
    const char *p = text;
    while (*p == ' ')
        p++;
    return strncmp (p, "${{", 3) == 0;
}

//  A string value (scalar, not null, at most 2 KiB, references well
//  formed), copied; NULL after an error.
static char *
s_string (qn_yaml_ctx_t *ctx, qn_yaml_node_t *node, const char *key)
{
    if (!node || node->kind != QN_YAML_SCALAR || qn_yaml_is_null (node)) {
        qn_yaml_node_error (ctx, node, "expected a string for '%s'", key);
        return NULL;
    }
    const char *bad = NULL;
    if (strlen (node->value) > 2048)
        qn_yaml_node_error (ctx, node, "'%s' is longer than 2048 characters", key);
    else
    if (!qn_wf_notify_refs_ok (node->value, &bad))
        qn_yaml_node_error (ctx, node, "'%s': only ${{ secrets.NAME }} is allowed here, "
                            "at '%.20s'", key, bad);
    else
        return qn_yaml_strdup (ctx, node->value);
    return NULL;
}

//  A URL with one of the schemes (or a secret reference standing for one)
static char *
s_url (qn_yaml_ctx_t *ctx, qn_yaml_node_t *node, const char *key, const char **schemes)
{
    char *url = s_string (ctx, node, key);
    if (!url || s_is_reference (url))
        return url;
    for (size_t i = 0; schemes [i]; i++)
        if (strncmp (url, schemes [i], strlen (schemes [i])) == 0 && url [strlen (schemes [i])])
            return url;
    qn_yaml_node_error (ctx, node, "'%s' must start with %s%s%s", key, schemes [0],
                        schemes [1]? " or ": "", schemes [1]? schemes [1]: "");
    free (url);
    return NULL;
}

static unsigned
s_parse_on (qn_yaml_ctx_t *ctx, qn_yaml_node_t *node)
{
    qn_yaml_node_t **items = NULL;
    size_t count = 0;
    if (qn_yaml_scalar_list (ctx, node, "a list of run endings for 'on'", &items, &count))
        return 0;
    unsigned on = 0;
    for (size_t i = 0; i < count; i++) {
        size_t e = 0;
        while (s_events [e] && strcmp (s_events [e], items [i]->value) != 0)
            e++;
        if (s_events [e])
            on |= 1u << e;
        else {
            qn_yaml_echo_t echo;
            const char *close = qn_yaml_closest (items [i]->value, s_events, 5);
            qn_yaml_node_error (ctx, items [i], "unknown run ending '%s' in 'on'%s%s%s (use failed, "
                                "succeeded_with_warnings, succeeded, canceled, check_failed)",
                                qn_yaml_echo (items [i]->value, echo), close? " (did you mean '": "",
                                close? close: "", close? "'?)": "");
        }
    }
    free (items);
    if (count == 0)
        qn_yaml_node_error (ctx, node, "'on' is empty: list at least one run ending");
    return on;
}

static void
s_channel_free (qn_notify_channel_t *channel)
{
    free (channel->url);
    free (channel->secret);
    for (size_t i = 0; i < channel->to_count; i++)
        free (channel->to [i]);
    free (channel->to);
    free (channel->from);
    free (channel->user);
    free (channel->password);
}

static void
s_parse_email (qn_yaml_ctx_t *ctx, qn_yaml_node_t *node, qn_notify_channel_t *channel)
{
    static const char *schemes [] = { "smtps://", "smtp://", NULL };
    qn_yaml_node_t *to = qn_yaml_map_get (node, "to", NULL);
    qn_yaml_node_t **items = NULL;
    size_t count = 0;
    if (!to)
        qn_yaml_node_error (ctx, node, "an email channel needs 'to'");
    else
    if (qn_yaml_scalar_list (ctx, to, "a list of addresses for 'to'", &items, &count) == 0) {
        if (count == 0 || count > QN_NOTIFY_TO_MAX)
            qn_yaml_node_error (ctx, to, "'to' needs 1 to %d addresses", QN_NOTIFY_TO_MAX);
        channel->to = (char **) calloc (count + 1, sizeof (char *));
        for (size_t i = 0; channel->to && i < count; i++) {
            char *address = s_string (ctx, items [i], "to");
            if (address && (!strchr (address, '@') || strpbrk (address, "<>\r\n ,"))) {
                qn_yaml_node_error (ctx, items [i], "'%.64s' is not an email address", address);
                free (address);
                address = NULL;
            }
            if (address)
                channel->to [channel->to_count++] = address;
        }
        free (items);
    }
    qn_yaml_node_t *smtp = qn_yaml_map_get (node, "smtp", NULL);
    if (!smtp)
        qn_yaml_node_error (ctx, node, "an email channel needs 'smtp' (smtps://host:465 or "
                            "smtp://host:587 with STARTTLS)");
    else
        channel->url = s_url (ctx, smtp, "smtp", schemes);
    qn_yaml_node_t *from = qn_yaml_map_get (node, "from", NULL);
    if (!from)
        qn_yaml_node_error (ctx, node, "an email channel needs 'from'");
    else
        channel->from = s_string (ctx, from, "from");
    if (channel->from && (!strchr (channel->from, '@') || strpbrk (channel->from, "<>\r\n ,")))
        qn_yaml_node_error (ctx, from, "'from' is not an email address");
    qn_yaml_node_t *user = qn_yaml_map_get (node, "user", NULL);
    if (user)
        channel->user = s_string (ctx, user, "user");
    qn_yaml_node_t *password = qn_yaml_map_get (node, "password", NULL);
    if (password) {
        channel->password = s_string (ctx, password, "password");
        if (channel->password && !strstr (channel->password, "${{"))
            qn_yaml_node_error (ctx, password, "'password' must come from a secret: "
                                "\"${{ secrets.NAME }}\" (qanat secret set NAME)");
    }
    if (channel->password && !channel->user)
        qn_yaml_node_error (ctx, node, "an email channel with 'password' needs 'user'");
}

//  One channel of a block (webhook, slack or email); 0 or -1
static int
s_parse_channel (qn_yaml_ctx_t *ctx, const char *kind, qn_yaml_node_t *node,
                 qn_notify_channel_t *channel)
{
    static const char *http [] = { "https://", "http://", NULL };
    channel->line = node->line;
    channel->col = node->col;
    if (node->kind != QN_YAML_MAPPING) {
        qn_yaml_node_error (ctx, node, "expected a mapping for '%s'", kind);
        return -1;
    }
    size_t before = ctx->count;
    char where [32];
    snprintf (where, sizeof where, " in '%s'", kind);
    if (strcmp (kind, "webhook") == 0) {
        channel->kind = QN_NOTIFY_WEBHOOK;
        qn_yaml_check_keys (ctx, node, s_webhook_keys, where);
        qn_yaml_node_t *url = qn_yaml_map_get (node, "url", NULL);
        if (!url)
            qn_yaml_node_error (ctx, node, "a webhook needs 'url'");
        else
            channel->url = s_url (ctx, url, "url", http);
        qn_yaml_node_t *secret = qn_yaml_map_get (node, "secret", NULL);
        if (secret)
            channel->secret = s_string (ctx, secret, "secret");
    }
    else
    if (strcmp (kind, "slack") == 0) {
        channel->kind = QN_NOTIFY_SLACK;
        qn_yaml_check_keys (ctx, node, s_slack_keys, where);
        qn_yaml_node_t *url = qn_yaml_map_get (node, "webhook", NULL);
        if (!url)
            qn_yaml_node_error (ctx, node, "a slack channel needs 'webhook' "
                                "(\"${{ secrets.NAME }}\" holding the incoming-webhook URL)");
        else
            channel->url = s_url (ctx, url, "webhook", http);
    }
    else {
        channel->kind = QN_NOTIFY_EMAIL;
        qn_yaml_check_keys (ctx, node, s_email_keys, where);
        s_parse_email (ctx, node, channel);
    }
    return ctx->count > before? -1: 0;
}

static void
s_parse_block (qn_yaml_ctx_t *ctx, qn_yaml_node_t *node, qn_wf_notify_t *self)
{
    if (node->kind != QN_YAML_MAPPING) {
        qn_yaml_node_error (ctx, node, "expected a mapping with 'on' and channels "
                            "(webhook, slack, email) for 'notify'");
        return;
    }
    qn_yaml_check_keys (ctx, node, s_block_keys, " in 'notify'");
    qn_yaml_node_t *on_node = qn_yaml_map_get (node, "on", NULL);
    unsigned on = on_node? s_parse_on (ctx, on_node): QN_NOTIFY_ON_DEFAULT;
    size_t found = 0;
    for (size_t k = 1; s_block_keys [k]; k++) {
        qn_yaml_node_t *value = qn_yaml_map_get (node, s_block_keys [k], NULL);
        if (!value)
            continue;
        found++;
        if (self->channel_count == QN_NOTIFY_CHANNELS_MAX) {
            qn_yaml_node_error (ctx, value, "more than %d notification channels",
                                QN_NOTIFY_CHANNELS_MAX);
            return;
        }
        qn_notify_channel_t *channel = &self->channels [self->channel_count];
        memset (channel, 0, sizeof *channel);
        channel->on = on;
        if (s_parse_channel (ctx, s_block_keys [k], value, channel) == 0)
            self->channel_count++;
        else
            s_channel_free (channel);
    }
    if (!found)
        qn_yaml_node_error (ctx, node, "'notify' names no channel (webhook, slack or email)");
}

qn_wf_notify_t *
qn_wf_notify_parse (qn_yaml_ctx_t *ctx, qn_yaml_node_t *node)
{
    if (!node || qn_yaml_is_null (node))
        return NULL;
    qn_wf_notify_t *self = (qn_wf_notify_t *) calloc (1, sizeof (qn_wf_notify_t));
    if (self)
        self->channels = (qn_notify_channel_t *) calloc (QN_NOTIFY_CHANNELS_MAX,
                                                         sizeof (qn_notify_channel_t));
    if (!self || !self->channels) {
        ctx->oom = true;
        qn_wf_notify_destroy (&self);
        return NULL;
    }
    size_t before = ctx->count;
    if (node->kind == QN_YAML_SEQUENCE)
        for (size_t i = 0; i < node->count; i++)
            s_parse_block (ctx, node->items [i], self);
    else
        s_parse_block (ctx, node, self);
    if (ctx->count > before || self->channel_count == 0)
        qn_wf_notify_destroy (&self);
    return self;
}

void
qn_wf_notify_destroy (qn_wf_notify_t **self_p)
{
    qn_wf_notify_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; self->channels && i < self->channel_count; i++)
        s_channel_free (&self->channels [i]);
    free (self->channels);
    free (self);
    *self_p = NULL;
}

qn_wf_notify_t *
qn_wf_notify_load (const char *path, char **error_p)
{
    *error_p = NULL;
    size_t len = 0;
    char reason [512];
    char *text = qn_file_read_small (path, 1024 * 1024, &len, NULL, reason, sizeof reason);
    if (!text) {
        *error_p = strdup (reason);
        return NULL;
    }
    qn_yaml_ctx_t ctx = { .filename = path };
    bool fatal = false;
    qn_yaml_node_t *root = qn_yaml_build (&ctx, text, len, &fatal);
    qn_wf_notify_t *self = NULL;
    if (!fatal) {
        static const char *top [] = { "notify", NULL };
        if (!root || root->kind != QN_YAML_MAPPING)
            qn_yaml_error (&ctx, 1, 1, "expected a mapping with 'notify' at the top level");
        else {
            qn_yaml_mark_duplicates (&ctx, root, NULL, NULL);
            qn_yaml_check_keys (&ctx, root, top, "");
            qn_yaml_node_t *node = qn_yaml_map_get (root, "notify", NULL);
            if (!node)
                qn_yaml_node_error (&ctx, root, "missing 'notify'");
            else
                self = qn_wf_notify_parse (&ctx, node);
        }
    }
    qn_yaml_node_free (&root);
    free (text);
    if (ctx.count > 0 || ctx.oom) {
        qn_wf_notify_destroy (&self);
        *error_p = qn_yaml_errors_take (&ctx);
        return NULL;
    }
    free (ctx.errors);
    return self;
}
