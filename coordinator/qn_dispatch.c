/*  qn_dispatch - where ready tasks wait, and how they go out.  See
    qn_dispatch.h.

    One of the files of the qn_coordinator class: it shares the engine's
    records (qn_engine.h), so the include checker counts it with
    qn_coordinator.
*/
#include "qn_dispatch.h"
#include "qn_log.h"
#include "qn_turn.h"
#include "qn_fleet.h"
#include "qn_run.h"
#include "qn_notify.h"
#include "qn_share.h"

//  ---------------------------------------------------------------------
//  Selector queues and delayed retries

static char *
s_selector_key (run_t *run, const qn_task_t *spec)
{
    //  File order is fine: the same workflow always spells it the same way,
    //  and two spellings of one selector only cost a second queue.  The
    //  backend is part of what an agent must offer, so part of the key;
    //  so is what the task asks for, so that every task of a queue fits
    //  where its first one does (a queue whose first task fits nowhere
    //  is passed over whole: the cost per placement stays flat).  So are
    //  its priority, pool, task limit and owner: every task of a queue
    //  has the same room and rank, and a queue whose pool is full is
    //  passed over whole too.
    const char *owner = run->info->owner? run->info->owner: "";
    const char *workflow = run->info->workflow? run->info->workflow: "";
    size_t size = 2 + 64 + (spec->backend? strlen (spec->backend): 0) + 16
                + (spec->pool? strlen (spec->pool) + 1: 0)
                + (spec->concurrency? strlen (workflow) + strlen (spec->name) + 2: 0)
                + strlen (owner) + 1;
    for (size_t s = 0; s < spec->selector_count; s++)
        size += strlen (spec->selector [s].key) + strlen (spec->selector [s].value) + 2;
    char *key = (char *) malloc (size);
    key [0] = 0;
    for (size_t s = 0; s < spec->selector_count; s++) {
        if (s)
            strcat (key, ",");
        strcat (key, spec->selector [s].key);
        strcat (key, "=");
        strcat (key, spec->selector [s].value);
    }
    if (spec->backend) {
        strcat (key, "@");
        strcat (key, spec->backend);
    }
    if (spec->cpus || spec->memory_mb || spec->gpus)
        sprintf (key + strlen (key), "#%u,%llu,%u", spec->cpus,
                 (unsigned long long) spec->memory_mb, spec->gpus);
    if (spec->priority)
        sprintf (key + strlen (key), "!%d", spec->priority);
    if (spec->pool) {
        strcat (key, "%");
        strcat (key, spec->pool);
    }
    if (spec->concurrency) {
        strcat (key, "^");
        strcat (key, workflow);
        strcat (key, "/");
        strcat (key, spec->name);
    }
    if (*owner) {
        strcat (key, "~");
        strcat (key, owner);
    }
    return key;
}

void
qn_dispatch_ready_destructor (void **item)
{
    free (*item);
    *item = NULL;
}

void
qn_dispatch_queue (qn_coordinator_t *self, run_t *run, size_t index)
{
    ready_t *ready = (ready_t *) zmalloc (sizeof (ready_t));
    ready->run_id = run->id;
    ready->task = (uint32_t) index;
    //  Ageing counts from when it became queued, kept across restarts
    int64_t now = qn_now_us ();
    int64_t queued = qn_run_task (run, index)->queued_us;
    ready->queued_us = queued > 0 && queued <= now? queued: now;
    if (qn_run_task (run, index)->retry_at_us > now) {
        zlistx_add_end (self->delayed, ready);
        return;
    }
    if (!qn_share_admit (self, run, ready))
        return;                 //  held until a run of its workflow ends
    char *key = s_selector_key (run, qn_workflow_task (run->wf, index));
    zlistx_t *queue = (zlistx_t *) zhashx_lookup (self->queues, key);
    if (!queue) {
        queue = zlistx_new ();
        zlistx_set_destructor (queue, qn_dispatch_ready_destructor);
        zhashx_insert (self->queues, key, queue);
    }
    free (key);
    zlistx_add_end (queue, ready);
}

void
qn_dispatch_release_delayed (qn_coordinator_t *self)
{
    int64_t wall = qn_now_us ();
    ready_t *ready = (ready_t *) zlistx_first (self->delayed);
    while (ready) {
        void *handle = zlistx_cursor (self->delayed);
        ready_t *next = (ready_t *) zlistx_next (self->delayed);
        run_t *run = qn_run_find (self, ready->run_id);
        if (!run || qn_run_task (run, ready->task)->retry_at_us <= wall) {
            if (run && qn_run_task (run, ready->task)->status == QANAT__TASK_STATUS__TASK_QUEUED)
                qn_dispatch_queue (self, run, ready->task);
            zlistx_delete (self->delayed, handle);
        }
        ready = next;
    }
}

//  ---------------------------------------------------------------------
//  Waiting reasons

static char *
s_selector_text (const qn_task_t *spec)
{
    if (spec->selector_count == 0 && !spec->backend)
        return strdup ("any agent");
    size_t size = 64 + (spec->backend? strlen (spec->backend): 0);
    for (size_t s = 0; s < spec->selector_count; s++)
        size += strlen (spec->selector [s].key) + strlen (spec->selector [s].value) + 2;
    char *text = (char *) malloc (size);
    strcpy (text, spec->selector_count? "an agent with ": "an agent");
    for (size_t s = 0; s < spec->selector_count; s++) {
        if (s)
            strcat (text, ",");
        strcat (text, spec->selector [s].key);
        strcat (text, "=");
        strcat (text, spec->selector [s].value);
    }
    if (spec->backend) {
        strcat (text, spec->selector_count? " and backend ": " with backend ");
        strcat (text, spec->backend);
    }
    return text;
}

static qn_res_t s_queue_need (const qn_task_t *spec);

//  Appends text to a reason being built (NULL-safe, at most 2 KiB).
static void
s_reason_add (char *reason, size_t size, const char *text)
{
    size_t used = strlen (reason);
    if (used + 1 < size)
        snprintf (reason + used, size - used, "%s", text);
}

//  Why a task asking need (not nothing) waits: what the connected agents
//  that match it lack, or that none of them could ever hold it.  NULL
//  when no connected agent matches it.
static char *
s_resources_reason (qn_coordinator_t *self, const qn_task_t *spec, const qn_res_t *need)
{
    int64_t now = zclock_mono ();
    char wants [96];
    qn_placement_text (need, wants, sizeof wants);
    char agents [1024] = "";
    size_t matching = 0, listed = 0, could = 0;
    qn_res_t largest = { 0, 0, 0 };
    for (agent_t *agent = (agent_t *) zhashx_first (self->agents); agent;
         agent = (agent_t *) zhashx_next (self->agents)) {
        if (!agent->routing_id || !qn_fleet_matches (agent, spec))
            continue;
        matching++;
        if (agent->place.total.cpus > largest.cpus)
            largest.cpus = agent->place.total.cpus;
        if (agent->place.total.memory_mb > largest.memory_mb)
            largest.memory_mb = agent->place.total.memory_mb;
        if (agent->place.total.gpus > largest.gpus)
            largest.gpus = agent->place.total.gpus;
        if (!qn_placement_could_fit (&agent->place, need))
            continue;
        could++;
        if (++listed > 5)
            continue;
        char line [300];
        const char *why = qn_fleet_unavailable (agent, now);
        char short_ [96];
        if (why)
            snprintf (line, sizeof line, "%s is %s", agent->name, why);
        else
        if (!qn_placement_fits (&agent->place, need))
            snprintf (line, sizeof line, "%s has %s free", agent->name,
                      qn_placement_short_text (&agent->place, need, short_, sizeof short_));
        else
            snprintf (line, sizeof line, "%s has no free slot", agent->name);
        s_reason_add (agents, sizeof agents, *agents? ", ": "");
        s_reason_add (agents, sizeof agents, line);
    }
    if (!matching)
        return NULL;
    if (could == 0) {
        //  Name a resource no agent has enough of, with the largest there is
        qn_res_t most = { 0, 0, 0 };
        qn_res_t short_ = { 0, 0, 0 };
        if (need->gpus > largest.gpus)
            short_.gpus = need->gpus, most.gpus = largest.gpus;
        else
        if (need->memory_mb > largest.memory_mb)
            short_.memory_mb = need->memory_mb, most.memory_mb = largest.memory_mb;
        else
        if (need->cpus > largest.cpus)
            short_.cpus = need->cpus, most.cpus = largest.cpus;
        if (qn_res_empty (&short_))
            return zsys_sprintf ("no connected agent has %s together", wants);
        char one [64], top [64];
        qn_placement_text (&short_, one, sizeof one);
        qn_placement_text (&most, top, sizeof top);
        const char *value = strchr (top, '=');
        return zsys_sprintf ("no connected agent has %s (largest: %s)", one,
                             value? value + 1: "0");
    }
    if (listed > 5) {
        char more [48];
        snprintf (more, sizeof more, " and %zu more", listed - 5);
        s_reason_add (agents, sizeof agents, more);
    }
    return zsys_sprintf ("waiting: needs %s; %s", wants, agents);
}

//  Why a queued task has not started, worked out when someone asks
//  rather than on every dispatch.
static char *
s_waiting_reason (qn_coordinator_t *self, run_t *run, const qn_task_t *spec)
{
    if (!run->admitted && run->info->waiting_reason && *run->info->waiting_reason)
        return strdup (run->info->waiting_reason);
    char *limit = qn_share_waiting_reason (self, run, spec);
    if (limit)
        return limit;
    qn_res_t need = s_queue_need (spec);
    if (!qn_res_empty (&need)) {
        char *reason = s_resources_reason (self, spec, &need);
        if (reason)
            return reason;
    }
    int64_t now = zclock_mono ();
    size_t matching = 0;
    const char *unavailable = NULL;
    for (agent_t *agent = (agent_t *) zhashx_first (self->agents); agent;
         agent = (agent_t *) zhashx_next (self->agents)) {
        if (!agent->routing_id || !qn_fleet_matches (agent, spec))
            continue;
        matching++;
        const char *why = qn_fleet_unavailable (agent, now);
        if (why)
            unavailable = why;
    }
    char *selector = s_selector_text (spec);
    char *reason = matching
        ? zsys_sprintf ("waiting for a free slot on %s (%zu connected, all busy%s%s)", selector,
                        matching, unavailable? " or ": "", unavailable? unavailable: "")
        : zsys_sprintf ("waiting for %s", selector);
    free (selector);
    return reason;
}

void
qn_dispatch_explain_waiting (qn_coordinator_t *self, run_t *run)
{
    int64_t wall = qn_now_us ();
    for (size_t t = 0; t < run->info->n_tasks; t++) {
        Qanat__TaskInfo *task = qn_run_task (run, t);
        if (task->status == QANAT__TASK_STATUS__TASK_QUEUED && task->retry_at_us <= wall)
            qn_engine_replace_string (&task->waiting_reason,
                                      s_waiting_reason (self, run, qn_workflow_task (run->wf, t)));
    }
}

//  ---------------------------------------------------------------------
//  Secrets: who may have them, and their values

//  The task's env with ${{ secrets.NAME }} resolved; the values used go
//  to redact.  NULL with *error_p when a secret cannot be given.
static Qanat__Label **
s_task_env (qn_coordinator_t *self, const qn_task_t *spec, zlistx_t *redact, char **error_p)
{
    Qanat__Label **env = (Qanat__Label **) calloc (spec->env_count + 1, sizeof (Qanat__Label *));
    for (size_t e = 0; e < spec->env_count; e++) {
        const char *value = spec->env [e].value;
        char *expanded = NULL;
        if (strstr (value, "${{")) {
            if (!self->keyring) {
                *error_p = strdup ("secrets are only given out over CURVE: this coordinator "
                                   "runs --insecure");
            }
            else
                expanded = qn_vault_expand (self->vault, value, redact, error_p);
            if (!expanded) {
                for (size_t i = 0; i < e; i++)
                    qn_engine_free_message (env [i]);
                free (env);
                return NULL;
            }
        }
        env [e] = qn_engine_label_new (spec->env [e].key, expanded? expanded: value);
        free (expanded);
    }
    return env;
}

static bool
s_task_names_secrets (const qn_task_t *spec)
{
    for (size_t e = 0; e < spec->env_count; e++)
        if (strstr (spec->env [e].value, "${{"))
            return true;
    return false;
}

//  Why a run may not have the secrets task refers to, or NULL.  owner and
//  role are the run's owner's (role NULL: not an admitted user now);
//  labels are what the task is sure to run with.  Redaction cannot stop a
//  task that transforms a value, so this is the control on secrets.
static char *
s_task_secrets_refusal (qn_coordinator_t *self, const qn_task_t *spec, const char *workflow,
                        const char *owner, const char *role, const qn_kv_t *labels,
                        size_t label_count, const char *labels_of)
{
    zlistx_t *names = zlistx_new ();
    zlistx_set_destructor (names, (zlistx_destructor_fn *) zstr_free);
    zlistx_set_duplicator (names, (zlistx_duplicator_fn *) strdup);
    char *reason = NULL;
    for (size_t e = 0; e < spec->env_count && !reason; e++)
        qn_vault_references (spec->env [e].value, names, &reason);
    qn_vault_use_t use = { owner, role, workflow, labels, label_count, labels_of };
    for (char *name = (char *) zlistx_first (names); name && !reason;
         name = (char *) zlistx_next (names))
        reason = qn_vault_refusal (self->vault, name, &use);
    zlistx_destroy (&names);
    return reason;
}

//  A run is refused at its start when its owner, its workflow or the
//  agents a task selects may not have a secret it names: before anything
//  is stored, so that a refused run leaves no trace.  sender is who
//  starts it (NULL: a local administrator, --insecure).  NULL or why not.
char *
qn_dispatch_run_secrets_refusal (qn_coordinator_t *self, qn_workflow_t *wf,
                               const Qanat__Principal *sender)
{
    if (!self->vault || !sender)
        return NULL;            //  --insecure: no secret is given out at all
    char *reason = NULL;
    for (size_t t = 0; t < qn_workflow_task_count (wf) && !reason; t++) {
        const qn_task_t *spec = qn_workflow_task (wf, t);
        if (!s_task_names_secrets (spec))
            continue;
        char *labels_of = zsys_sprintf ("task %s does not select", spec->name);
        reason = s_task_secrets_refusal (self, spec, qn_workflow_name (wf), sender->name,
                                         sender->role, spec->selector,
                                         spec->selector_count, labels_of);
        zstr_free (&labels_of);
    }
    if (!reason)
        reason = qn_notify_secrets_refusal (self, wf, sender->name, sender->role);
    char *refusal = reason? zsys_sprintf ("run refused: %s", reason): NULL;
    free (reason);
    return refusal;
}

//  Checked again as an attempt is handed out, against the list as it is
//  now and the agent's granted labels: a list narrowed after the run
//  started stops its later tasks.  NULL or why not.
static char *
s_assign_secrets_refusal (qn_coordinator_t *self, run_t *run, size_t index, agent_t *agent)
{
    if (!self->vault || !self->keyring)
        return NULL;
    const qn_task_t *spec = qn_workflow_task (run->wf, index);
    if (!s_task_names_secrets (spec))
        return NULL;
    const char *owner = run->info->owner && *run->info->owner? run->info->owner: "local";
    const Qanat__Principal *user = qn_keyring_user (self->keyring, owner);
    qn_kv_t *labels = (qn_kv_t *) calloc (agent->info->n_labels + 1, sizeof (qn_kv_t));
    for (size_t l = 0; l < agent->info->n_labels; l++) {
        labels [l].key = agent->info->labels [l]->key;
        labels [l].value = agent->info->labels [l]->value;
    }
    char *labels_of = zsys_sprintf ("agent %s does not carry", agent->name);
    char *reason = s_task_secrets_refusal (self, spec, run->info->workflow, owner,
                                           user? user->role: NULL, labels,
                                           agent->info->n_labels, labels_of);
    zstr_free (&labels_of);
    free (labels);
    return reason;
}

//  ---------------------------------------------------------------------
//  Assignments

void
qn_dispatch_assignment_free (qn_assignment_t *self)
{
    for (size_t i = 0; self->assign.argv && i < self->assign.n_argv; i++)
        free (self->assign.argv [i]);
    free (self->assign.argv);
    for (size_t i = 0; i < self->assign.n_env; i++)
        qn_engine_free_message (self->assign.env [i]);
    free (self->assign.env);
    for (size_t i = 0; i < self->assign.n_backend_options; i++)
        qn_engine_free_message (self->assign.backend_options [i]);
    free (self->assign.backend_options);
    free (self->assign.redact);
    zlistx_destroy (&self->redact);
    qn_artifacts_free_inputs (self->assign.inputs, self->assign.n_inputs);
    for (size_t i = 0; i < self->assign.n_outputs; i++)
        free (self->assign.outputs [i]);
    free (self->assign.outputs);
}

//  Builds attempt attempt_no of task index: argv, an environment that
//  tells the task who it is, its secrets' values to redact, its backend
//  and options.  -1 with *error_p (malloc'd) when a secret it names is
//  not there.
int
qn_dispatch_assignment_build (qn_coordinator_t *self, run_t *run, size_t index,
                              uint32_t attempt_no, qn_assignment_t *out, zhashx_t *fetchable,
                              char **error_p)
{
    const qn_task_t *spec = qn_workflow_task (run->wf, index);
    memset (out, 0, sizeof (*out));
    out->redact = zlistx_new ();
    zlistx_set_destructor (out->redact, (zlistx_destructor_fn *) zstr_free);
    zlistx_set_duplicator (out->redact, (zlistx_duplicator_fn *) strdup);
    Qanat__Label **task_env = s_task_env (self, spec, out->redact, error_p);
    if (!task_env) {
        zlistx_destroy (&out->redact);
        return -1;
    }
    qanat__attempt_ref__init (&out->ref);
    out->ref.run_id = run->id;
    out->ref.task_index = (uint32_t) index;
    out->ref.attempt = attempt_no;
    Qanat__Assign *assign = &out->assign;
    qanat__assign__init (assign);
    assign->attempt = &out->ref;
    assign->task_name = spec->name;
    assign->workflow = run->info->workflow;
    char *argv_error = NULL;
    assign->argv = qn_run_task_argv (run, spec, false, &argv_error);
    if (!assign->argv) {
        *error_p = argv_error? argv_error: strdup ("out of memory");
        for (size_t e = 0; e < spec->env_count; e++)
            qn_engine_free_message (task_env [e]);
        free (task_env);
        zlistx_destroy (&out->redact);
        return -1;
    }
    assign->n_argv = spec->argc;
    assign->timeout_s = spec->timeout_s;
    assign->cpus = spec->cpus;
    assign->memory_mb = spec->memory_mb;
    assign->gpus = spec->gpus;
    assign->backend = spec->backend? spec->backend: (char *) "";
    assign->workdir = spec->workdir? spec->workdir: (char *) "";
    assign->warm = spec->warm;
    size_t env_count = 3 + run->info->n_params + spec->env_count;
    Qanat__Label **env = (Qanat__Label **) calloc (env_count, sizeof (Qanat__Label *));
    size_t n = 0;
    char number [32];
    snprintf (number, sizeof number, "%llu", (unsigned long long) run->id);
    env [n++] = qn_engine_label_new ("QANAT_RUN_ID", number);
    env [n++] = qn_engine_label_new ("QANAT_TASK", spec->name);
    snprintf (number, sizeof number, "%u", attempt_no);
    env [n++] = qn_engine_label_new ("QANAT_ATTEMPT", number);
    for (size_t p = 0; p < run->info->n_params; p++) {
        char *name = zsys_sprintf ("QANAT_PARAM_%s", run->info->params [p]->name);
        for (char *c = name; *c; c++)
            *c = isalnum ((unsigned char) *c)? (char) toupper ((unsigned char) *c): '_';
        env [n++] = qn_engine_label_new (name, run->info->params [p]->value);
        zstr_free (&name);
    }
    for (size_t e = 0; e < spec->env_count; e++)
        env [n++] = task_env [e];
    free (task_env);
    assign->env = env;
    assign->n_env = n;
    if (spec->backend_option_count) {
        assign->backend_options = (Qanat__Label **) calloc (spec->backend_option_count,
                                                            sizeof (Qanat__Label *));
        for (size_t o = 0; o < spec->backend_option_count; o++)
            assign->backend_options [o] = qn_engine_label_new (spec->backend_options [o].key,
                                                       spec->backend_options [o].value);
        assign->n_backend_options = spec->backend_option_count;
    }
    //  Artifacts: what to stage, what to collect, where blobs go
    if (qn_artifacts_inputs (self->artifacts, spec, run->info, fetchable, &assign->inputs,
                             &assign->n_inputs, error_p) == -1) {
        assign->redact = NULL;
        qn_dispatch_assignment_free (out);
        return -1;
    }
    if (spec->output_count) {
        assign->outputs = (Qanat__OutputSpec **) calloc (spec->output_count, sizeof (void *));
        for (size_t o = 0; assign->outputs && o < spec->output_count; o++) {
            Qanat__OutputSpec *output = (Qanat__OutputSpec *) malloc (sizeof (Qanat__OutputSpec));
            qanat__output_spec__init (output);
            output->name = spec->outputs [o].name;
            output->path = spec->outputs [o].path? spec->outputs [o].path: (char *) "";
            output->value = spec->outputs [o].value;
            assign->outputs [assign->n_outputs++] = output;
        }
    }
    //  A store the workflow names, even the coordinator's, wins over the
    //  one an agent's environment has (qanat-agent --artifact-store)
    const qn_artifact_store_t *store = qn_workflow_artifact_store (run->wf);
    if (store->kind && streq (store->kind, "coordinator")) {
        qanat__artifact_store__init (&out->store);
        out->store.kind = store->kind;
        assign->store = &out->store;
    }
    else
    if (store->kind && streq (store->kind, "s3")) {
        qanat__artifact_store__init (&out->store);
        out->store.kind = store->kind;
        out->store.bucket = store->bucket? store->bucket: (char *) "";
        out->store.prefix = store->prefix? store->prefix: (char *) "";
        out->store.endpoint = store->endpoint? store->endpoint: (char *) "";
        out->store.region = store->region? store->region: (char *) "";
        out->store.path_style = store->path_style;
        assign->store = &out->store;
    }
    size_t redact_count = zlistx_size (out->redact);
    char **values = (char **) calloc (redact_count + 1, sizeof (char *));
    size_t r = 0;
    for (char *value = (char *) zlistx_first (out->redact); value;
         value = (char *) zlistx_next (out->redact))
        values [r++] = value;
    assign->redact = values;
    assign->n_redact = r;
    return 0;
}

//  ---------------------------------------------------------------------
//  Dispatch: match ready tasks to agents with credit and matching labels.

static bool
s_assign (qn_coordinator_t *self, run_t *run, size_t index, agent_t *agent)
{
    const qn_task_t *spec = qn_workflow_task (run->wf, index);
    Qanat__TaskInfo *task = qn_run_task (run, index);
    char *error = s_assign_secrets_refusal (self, run, index, agent);
    qn_assignment_t assignment;
    if (error || qn_dispatch_assignment_build (self, run, index, (uint32_t) task->n_attempts + 1,
                                               &assignment, agent->fetchable, &error) == -1) {
        qn_run_fail_unstartable (self, run, index, error);
        free (error);
        return false;
    }
    Qanat__AttemptInfo *attempt = qn_run_attempt_start (run, index, agent);
    self->stats.tasks_dispatched++;
    qn_fleet_set_credit (self, agent, agent->info->credit - 1);
    qn_run_advance (self, run);

    Qanat__Envelope envelope = QANAT__ENVELOPE__INIT;
    envelope.body_case = QANAT__ENVELOPE__BODY_ASSIGN;
    envelope.assign = &assignment.assign;
    qn_turn_post (self, self->agents_sock, agent->routing_id, &envelope, 0);
    qn_dispatch_assignment_free (&assignment);
    if (self->config.verbose)
        qn_log (QN_LOG_INFO, "dispatch", "run %llu task %s attempt %u -> agent %s",
                (unsigned long long) run->id, spec->name, attempt->attempt, agent->name);
    return true;
}

//  What the tasks of a queue ask of an agent's machine: an agent that
//  tracks resources runs the local backend by default (one whose default
//  fronts a cluster reports none, and every task fits there).
static qn_res_t
s_queue_need (const qn_task_t *spec)
{
    return qn_fleet_need (spec, spec->backend? spec->backend: "local");
}

//  The candidates of a queue: the connected, matching agents with credit
//  it fits on now (every task in it asks the same, so one that does not
//  fit now fits none of them), in heap order.
static void
s_candidates (qn_coordinator_t *self, const qn_task_t *spec, qn_placement_heap_t *heap,
              agent_t **candidates, int64_t now)
{
    size_t count = 0;
    for (agent_t *agent = (agent_t *) zhashx_first (self->with_credit); agent;
         agent = (agent_t *) zhashx_next (self->with_credit))
        //  The arithmetic first: it rules out most agents for a big task
        if (qn_placement_fits (&agent->place, &heap->need) && qn_fleet_matches (agent, spec)
        &&  !qn_fleet_unavailable (agent, now)) {
            candidates [count] = agent;
            heap->places [count] = &agent->place;
            heap->credit [count++] = agent->info->credit;
        }
    heap->count = count;
    qn_placement_heap_make (heap);
}

//  Places up to limit tasks of one queue (in order, each to the first
//  candidate of the heap: the order of qn_placement_choose); stops early
//  when stop says so (fair share).  The number placed.
static size_t
s_place_queue (qn_coordinator_t *self, qn_share_queue_t *entry, qn_placement_heap_t *heap,
               agent_t **candidates, int64_t now, qn_share_queue_t *order, size_t count)
{
    zlistx_t *queue = entry->queue;
    heap->need = s_queue_need (entry->spec);
    s_candidates (self, entry->spec, heap, candidates, now);
    size_t placed = 0;
    ready_t *ready;
    while (heap->count && placed < entry->room && (ready = (ready_t *) zlistx_first (queue))) {
        if (qn_share_over (self, entry, order, count)) {
            entry->capped = true;
            break;
        }
        void *handle = zlistx_cursor (queue);
        run_t *run = qn_run_find (self, ready->run_id);
        if (run && qn_dag_status (run->dag, ready->task) == QANAT__TASK_STATUS__TASK_QUEUED) {
            agent_t *agent = candidates [0];
            if (s_assign (self, run, ready->task, agent))
                placed++;
            heap->credit [0] = agent->info->credit;
            qn_placement_heap_update_first (heap, agent->info->credit > 0
                                            && qn_placement_fits (&agent->place, &heap->need));
        }
        zlistx_delete (queue, handle);
    }
    return placed;
}

//  One pass over the ready list.  The queues go in the order of
//  qn_share_order (priority with ageing, then the owner furthest below
//  its share); each task goes to the connected, matching agent it fits
//  on (qn_placement_choose: the tightest fit, or the loosest with
//  --placement spread; a task asking for nothing to the most free
//  credit); a queue whose pool or task limit is reached is passed over
//  whole; a task that cannot be placed stays in its queue, and `qanat
//  status` asks why (qn_dispatch_explain_waiting).
void
qn_dispatch (qn_coordinator_t *self)
{
    size_t agents = zhashx_size (self->with_credit);
    if (agents == 0)
        return;
    int64_t now = zclock_mono ();
    qn_placement_mode_t mode = self->config.spread? QN_PLACEMENT_SPREAD: QN_PLACEMENT_PACK;
    agent_t **candidates = (agent_t **) malloc (agents * sizeof (agent_t *));
    const qn_place_t **places = (const qn_place_t **) malloc (agents * sizeof (qn_place_t *));
    uint32_t *credit = (uint32_t *) malloc (agents * sizeof (uint32_t));
    size_t count = 0;
    qn_share_queue_t *order = candidates && places && credit? qn_share_order (self, &count): NULL;
    qn_placement_heap_t heap = { places, credit, (void **) candidates, 0, { 0, 0, 0 }, mode };
    //  While fair share held a queue back and others placed, go again:
    //  the shares have moved
    bool again = true;
    for (int sweep = 0; order && again && sweep < 64; sweep++) {
        again = false;
        size_t placed = 0;
        for (size_t q = 0; q < count && zhashx_size (self->with_credit); q++) {
            qn_share_queue_t *entry = &order [q];
            //  A queue that stopped for any reason but fair share cannot
            //  place more in this pass: credit, room and limits only shrink
            if (entry->done || !qn_share_ready (self, entry))
                continue;       //  empty, or its pool or task limit reached: passed over whole
            entry->capped = false;
            placed += s_place_queue (self, entry, &heap, candidates, now, order, count);
            again |= entry->capped;
            entry->done = !entry->capped;
        }
        again &= placed > 0;
    }
    qn_share_order_free (&order, count);
    free (candidates);
    free (places);
    free (credit);
}
