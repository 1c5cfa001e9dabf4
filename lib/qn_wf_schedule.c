/*  qn_wf_schedule - a workflow's schedule, max_active and trigger keys.
    See qn_wf_schedule.h.
*/
#include "qn_wf_schedule.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_TRIGGER_STATUSES  ((1u << 2) | (1u << 3))     //  succeeded, with warnings

static const char *s_schedule_keys [] = { "cron", "timezone", "catchup", "params", NULL };
static const char *s_trigger_keys [] = { "after", "on", "params", NULL };
static const char *s_status_names [] = {
    "queued", "running", "succeeded", "succeeded_with_warnings", "failed", "canceled", NULL
};

const char *
qn_wf_schedule_status_name (unsigned status)
{
    return status < 6? s_status_names [status]: "unknown";
}

static bool
s_param_declared (const qn_param_t *params, size_t count, const char *name)
{
    for (size_t i = 0; i < count; i++)
        if (strcmp (params [i].name, name) == 0)
            return true;
    return false;
}

//  A params mapping of scalars, each naming a declared parameter
static size_t
s_parse_params (qn_yaml_ctx_t *ctx, qn_yaml_node_t *node, const qn_param_t *params,
                size_t param_count, const char *where, qn_kv_t **pairs_p)
{
    qn_yaml_echo_t echo;
    if (qn_yaml_is_null (node))
        return 0;
    if (node->kind != QN_YAML_MAPPING) {
        qn_yaml_node_error (ctx, node, "expected a mapping of parameter values for 'params' in "
                            "'%s'", where);
        return 0;
    }
    qn_kv_t *pairs = (qn_kv_t *) calloc (node->count / 2 + 1, sizeof (qn_kv_t));
    size_t used = 0;
    for (size_t i = 0; pairs && i + 1 < node->count; i += 2) {
        qn_yaml_node_t *key = node->items [i], *value = node->items [i + 1];
        if (key->skip)
            continue;
        if (!s_param_declared (params, param_count, key->value))
            qn_yaml_node_error (ctx, key, "unknown parameter '%s' in '%s' (declare it under "
                                "'params')", qn_yaml_echo (key->value, echo), where);
        else
        if (value->kind != QN_YAML_SCALAR)
            qn_yaml_node_error (ctx, value, "expected a single value for parameter '%s' in '%s'",
                                qn_yaml_echo (key->value, echo), where);
        else {
            pairs [used].key = qn_yaml_strdup (ctx, key->value);
            pairs [used++].value = qn_yaml_strdup (ctx, value->value);
        }
    }
    if (!pairs)
        ctx->oom = true;
    *pairs_p = pairs;
    return used;
}

static void
s_parse_one (qn_yaml_ctx_t *ctx, qn_yaml_node_t *node, qn_schedule_t *entry,
             const qn_param_t *params, size_t param_count)
{
    qn_yaml_echo_t echo;
    if (node->kind != QN_YAML_MAPPING) {
        qn_yaml_node_error (ctx, node, "expected a mapping with 'cron' for a schedule");
        return;
    }
    qn_yaml_check_keys (ctx, node, s_schedule_keys, " in 'schedule'");
    qn_yaml_node_t *key = NULL;
    qn_yaml_node_t *cron = qn_yaml_map_get (node, "cron", &key);
    if (!cron)
        qn_yaml_node_error (ctx, node, "a schedule needs 'cron'");
    else
    if (cron->kind != QN_YAML_SCALAR || qn_yaml_is_null (cron))
        qn_yaml_node_error (ctx, cron, "expected a cron expression for 'cron'");
    else {
        char *error = NULL;
        size_t offset = 0;
        if (qn_cron_parse (cron->value, &entry->cron, &error, &offset) == 0)
            entry->cron_text = qn_yaml_strdup (ctx, cron->value);
        else {
            //  Point at the field on the line when the scalar is on one
            size_t col = cron->col + (cron->plain? 0: 1);
            if (!strchr (cron->value, '\n'))
                col += offset;
            qn_yaml_error (ctx, cron->line, col, "%s", error? error: "bad cron expression");
            free (error);
        }
    }
    qn_yaml_node_t *zone = qn_yaml_map_get (node, "timezone", NULL);
    const char *name = "UTC";
    if (zone && (zone->kind != QN_YAML_SCALAR || qn_yaml_is_null (zone))) {
        qn_yaml_node_error (ctx, zone, "expected a time zone name for 'timezone'");
        zone = NULL;
    }
    else
    if (zone)
        name = zone->value;
    char *error = NULL;
    qn_tz_t *tz = qn_tz_load (name, &error);
    if (!tz && zone)
        qn_yaml_node_error (ctx, zone, "%s (a name of the tz database, e.g. Europe/Berlin)",
                            error? error: "unknown time zone");
    free (error);
    qn_tz_destroy (&tz);
    entry->timezone = qn_yaml_strdup (ctx, name);
    qn_yaml_node_t *catchup = qn_yaml_map_get (node, "catchup", NULL);
    if (catchup) {
        const char *text = catchup->kind == QN_YAML_SCALAR? catchup->value: "";
        if (strcmp (text, "none") == 0)
            entry->catchup = QN_CATCHUP_NONE;
        else
        if (strcmp (text, "latest") == 0)
            entry->catchup = QN_CATCHUP_LATEST;
        else
        if (strcmp (text, "all") == 0)
            entry->catchup = QN_CATCHUP_ALL;
        else
            qn_yaml_node_error (ctx, catchup, "unknown catchup '%s' (use none, latest or all)",
                                qn_yaml_echo (text, echo));
    }
    qn_yaml_node_t *values = qn_yaml_map_get (node, "params", NULL);
    if (values)
        entry->param_count = s_parse_params (ctx, values, params, param_count, "schedule",
                                             &entry->params);
}

static void
s_parse_schedules (qn_yaml_ctx_t *ctx, qn_wf_schedule_t *self, qn_yaml_node_t *node,
                   const qn_param_t *params, size_t param_count)
{
    size_t count = node->kind == QN_YAML_SEQUENCE? node->count: 1;
    if (count > QN_WF_SCHEDULE_MAX) {
        qn_yaml_node_error (ctx, node, "at most %d schedules per workflow", QN_WF_SCHEDULE_MAX);
        return;
    }
    if (count == 0) {
        qn_yaml_node_error (ctx, node, "'schedule' is empty");
        return;
    }
    self->schedules = (qn_schedule_t *) calloc (count, sizeof (qn_schedule_t));
    if (!self->schedules) {
        ctx->oom = true;
        return;
    }
    self->schedule_count = count;
    for (size_t i = 0; i < count; i++)
        s_parse_one (ctx, node->kind == QN_YAML_SEQUENCE? node->items [i]: node,
                     &self->schedules [i], params, param_count);
}

//  The reference inside ${{ }} of text [0..len): 0 if known, -1 if not
static int
s_reference (const char *text, size_t len, char *task, char *output, size_t size)
{
    while (len && (*text == ' ' || *text == '\t'))
        text++, len--;
    while (len && (text [len - 1] == ' ' || text [len - 1] == '\t'))
        len--;
    static const char *fixed [] = { "upstream.run", "upstream.workflow", "upstream.status" };
    for (int i = 0; i < 3; i++)
        if (len == strlen (fixed [i]) && memcmp (text, fixed [i], len) == 0)
            return i + 1;
    const char *prefix = "upstream.outputs.";
    size_t plen = strlen (prefix);
    if (len <= plen || len - plen >= size || memcmp (text, prefix, plen) != 0)
        return -1;
    memcpy (task, text + plen, len - plen);
    task [len - plen] = '\0';
    char *dot = strrchr (task, '.');
    if (!dot || dot == task || !dot [1])
        return -1;
    *dot = '\0';
    snprintf (output, size, "%s", dot + 1);
    return 4;
}

char *
qn_wf_schedule_expand (const char *value, uint64_t run_id, const char *workflow,
                       unsigned status, qn_wf_output_fn *lookup, void *arg)
{
    size_t size = 0;
    char *result = NULL;
    FILE *out = open_memstream (&result, &size);
    if (!out)
        return NULL;
    const char *p = value;
    bool bad = false;
    while (*p) {
        const char *open = strstr (p, "${{");
        const char *close = open? strstr (open + 3, "}}"): NULL;
        if (!close) {
            fputs (p, out);
            bad = open != NULL;
            break;
        }
        fwrite (p, 1, (size_t) (open - p), out);
        char task [256], output [256];
        int kind = s_reference (open + 3, (size_t) (close - open - 3), task, output, sizeof task);
        if (kind == 1)
            fprintf (out, "%llu", (unsigned long long) run_id);
        else
        if (kind == 2)
            fputs (workflow? workflow: "", out);
        else
        if (kind == 3)
            fputs (qn_wf_schedule_status_name (status), out);
        else
        if (kind == 4) {
            const char *found = lookup? lookup (arg, task, output): NULL;
            fputs (found? found: "", out);
        }
        else
            bad = true;
        p = close + 2;
    }
    fclose (out);
    if (bad && !lookup && !workflow) {
        free (result);
        return NULL;            //  the check at parse time
    }
    return result;
}

static void
s_parse_trigger (qn_yaml_ctx_t *ctx, qn_wf_schedule_t *self, qn_yaml_node_t *node,
                 const qn_param_t *params, size_t param_count)
{
    qn_yaml_echo_t echo;
    if (node->kind != QN_YAML_MAPPING) {
        qn_yaml_node_error (ctx, node, "expected a mapping with 'after' for 'trigger'");
        return;
    }
    qn_yaml_check_keys (ctx, node, s_trigger_keys, " in 'trigger'");
    qn_yaml_node_t *after = qn_yaml_map_get (node, "after", NULL);
    qn_yaml_node_t **items = NULL;
    size_t count = 0;
    if (!after)
        qn_yaml_node_error (ctx, node, "a trigger needs 'after' (the upstream workflows)");
    else
    if (qn_yaml_scalar_list (ctx, after, "a workflow name or a list of them", &items, &count) == 0) {
        if (count == 0 || count > QN_WF_TRIGGER_AFTER_MAX)
            qn_yaml_node_error (ctx, after, "'after' names 1 to %d workflows",
                                QN_WF_TRIGGER_AFTER_MAX);
        self->after = (char **) calloc (count + 1, sizeof (char *));
        for (size_t i = 0; self->after && i < count; i++) {
            if (!qn_yaml_name_valid (items [i]->value))
                qn_yaml_node_error (ctx, items [i], "invalid workflow name '%s' in 'after'",
                                    qn_yaml_echo (items [i]->value, echo));
            self->after [self->after_count++] = qn_yaml_strdup (ctx, items [i]->value);
        }
    }
    free (items);
    self->on = S_TRIGGER_STATUSES;
    qn_yaml_node_t *on = qn_yaml_map_get (node, "on", NULL);
    if (on && qn_yaml_scalar_list (ctx, on, "a run status or a list of them", &items, &count) == 0) {
        self->on = 0;
        for (size_t i = 0; i < count; i++) {
            unsigned s = 2;
            while (s < 6 && strcmp (s_status_names [s], items [i]->value) != 0)
                s++;
            if (s == 6)
                qn_yaml_node_error (ctx, items [i], "unknown run status '%s' in 'on' (use "
                                    "succeeded, succeeded_with_warnings, failed or canceled)",
                                    qn_yaml_echo (items [i]->value, echo));
            else
                self->on |= 1u << s;
        }
        free (items);
    }
    qn_yaml_node_t *values = qn_yaml_map_get (node, "params", NULL);
    if (values)
        self->trigger_param_count = s_parse_params (ctx, values, params, param_count, "trigger",
                                                    &self->trigger_params);
    for (size_t i = 0; i < self->trigger_param_count; i++) {
        char *checked = qn_wf_schedule_expand (self->trigger_params [i].value, 0, NULL, 0,
                                               NULL, NULL);
        if (!checked)
            qn_yaml_node_error (ctx, qn_yaml_map_get (values, self->trigger_params [i].key, NULL),
                                "unknown reference in trigger parameter '%s' (use ${{ "
                                "upstream.run }}, ${{ upstream.workflow }}, ${{ upstream.status "
                                "}} or ${{ upstream.outputs.TASK.OUTPUT }})",
                                qn_yaml_echo (self->trigger_params [i].key, echo));
        free (checked);
    }
}

qn_wf_schedule_t *
qn_wf_schedule_parse (qn_yaml_ctx_t *ctx, qn_yaml_node_t *root, const qn_param_t *params,
                      size_t param_count)
{
    qn_yaml_node_t *schedule = qn_yaml_map_get (root, "schedule", NULL);
    qn_yaml_node_t *max_active = qn_yaml_map_get (root, "max_active", NULL);
    qn_yaml_node_t *trigger = qn_yaml_map_get (root, "trigger", NULL);
    if (!schedule && !max_active && !trigger)
        return NULL;
    qn_wf_schedule_t *self = (qn_wf_schedule_t *) calloc (1, sizeof (qn_wf_schedule_t));
    if (!self) {
        ctx->oom = true;
        return NULL;
    }
    size_t before = ctx->count;
    if (schedule && !qn_yaml_is_null (schedule))
        s_parse_schedules (ctx, self, schedule, params, param_count);
    if (max_active) {
        qn_yaml_uint32 (ctx, max_active, "max_active", &self->max_active);
        if (self->max_active == 0 && max_active->kind == QN_YAML_SCALAR)
            qn_yaml_node_error (ctx, max_active, "max_active must be at least 1");
    }
    if (trigger && !qn_yaml_is_null (trigger))
        s_parse_trigger (ctx, self, trigger, params, param_count);
    if (ctx->count > before || ctx->oom)
        qn_wf_schedule_destroy (&self);
    return self;
}

void
qn_wf_schedule_destroy (qn_wf_schedule_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    qn_wf_schedule_t *self = *self_p;
    for (size_t i = 0; i < self->schedule_count; i++) {
        free (self->schedules [i].cron_text);
        free (self->schedules [i].timezone);
        qn_kv_free (self->schedules [i].params, self->schedules [i].param_count);
    }
    free (self->schedules);
    for (size_t i = 0; i < self->after_count; i++)
        free (self->after [i]);
    free (self->after);
    qn_kv_free (self->trigger_params, self->trigger_param_count);
    free (self);
    *self_p = NULL;
}
