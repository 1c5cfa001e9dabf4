/*  qn_fleet - the agents the engine knows: records, routes, credit,
    state and liveness.  See qn_fleet.h.

    One of the files of the qn_coordinator class: it shares the engine's
    records (qn_engine.h), so the include checker counts it with
    qn_coordinator.
*/
#include "qn_fleet.h"
#include "qn_log.h"
#include "qn_run.h"
#include "qn_hash.h"

static void s_gpu_label (agent_t *agent);

//  ---------------------------------------------------------------------
//  Records

static void
s_free_item (void **item)
{
    free (*item);
    *item = NULL;
}

static void
s_agent_destroy (agent_t **agent_p)
{
    agent_t *agent = *agent_p;
    if (agent) {
        free (agent->name);
        zframe_destroy (&agent->routing_id);
        free (agent->route_key);
        qn_engine_free_message (agent->info);
        zhashx_destroy (&agent->attempts);
        zhashx_destroy (&agent->fetchable);
        zhashx_destroy (&agent->held);
        free (agent);
        *agent_p = NULL;
    }
}

void
qn_fleet_agent_destructor (void **item)
{
    s_agent_destroy ((agent_t **) item);
}

static agent_t *
s_agent_new (const char *name)
{
    agent_t *agent = (agent_t *) zmalloc (sizeof (agent_t));
    agent->name = strdup (name);
    agent->info = (Qanat__AgentInfo *) malloc (sizeof (Qanat__AgentInfo));
    qanat__agent_info__init (agent->info);
    agent->info->name = strdup (name);
    agent->attempts = qn_hash_new ();
    agent->fetchable = qn_hash_new ();
    agent->held = qn_hash_new ();
    zhashx_set_destructor (agent->attempts, s_free_item);
    zhashx_set_destructor (agent->held, s_free_item);
    return agent;
}

void
qn_fleet_load (qn_coordinator_t *self)
{
    Qanat__AgentInfo **agents = NULL;
    size_t count = 0;
    if (qn_store_list_agents (self->store, &agents, &count))
        return;
    for (size_t i = 0; i < count; i++) {
        agent_t *agent = s_agent_new (agents [i]->name);
        qn_engine_free_message (agent->info);
        agent->info = agents [i];
        agent->info->connected = false;
        agent->info->credit = 0;
        agent->info->running = 0;
        //  What it has stands until it registers; what it uses is counted
        //  again from the running attempts the store holds
        agent->place.tracked = agent->info->total != NULL;
        if (agent->info->total) {
            agent->place.total.cpus = agent->info->total->cpus;
            agent->place.total.memory_mb = agent->info->total->memory_mb;
            agent->place.total.gpus = agent->info->total->gpus;
        }
        qn_fleet_show_resources (agent);
        //  Only an administrator's drain outlives us; an agent that drained
        //  itself says so again when it registers.
        agent->drained_by_admin = agent->info->drained_by_admin;
        if (!agent->info->lost_after_ms)
            agent->info->lost_after_ms = self->config.lost_after_ms;
        if (!agent->info->suspect_after_ms)
            agent->info->suspect_after_ms = self->config.suspect_after_ms;
        qn_fleet_update_state (agent, zclock_mono ());
        //  Known agents get a full lost deadline from our start to come back.
        agent->last_seen = zclock_mono ();
        zhashx_insert (self->agents, agent->name, agent);
    }
    free (agents);
}

agent_t *
qn_fleet_expect (qn_coordinator_t *self, const char *name)
{
    agent_t *agent = (agent_t *) zhashx_lookup (self->agents, name);
    if (!agent) {
        agent = s_agent_new (name);
        agent->info->lost_after_ms = self->config.lost_after_ms;
        agent->info->suspect_after_ms = self->config.suspect_after_ms;
        agent->last_seen = zclock_mono ();
        qn_fleet_update_state (agent, agent->last_seen);
        zhashx_insert (self->agents, agent->name, agent);
    }
    return agent;
}

void
qn_fleet_forget_attempts (qn_coordinator_t *self)
{
    for (agent_t *agent = (agent_t *) zhashx_first (self->agents); agent;
         agent = (agent_t *) zhashx_next (self->agents)) {
        zhashx_purge (agent->attempts);
        agent->info->running = 0;
        memset (&agent->place.used, 0, sizeof (agent->place.used));
        qn_fleet_show_resources (agent);
    }
}

//  ---------------------------------------------------------------------
//  Routes and credit

static char *
s_route_key (zframe_t *routing_id)
{
    return zframe_strhex (routing_id);
}

agent_t *
qn_fleet_connect (qn_coordinator_t *self, const char *name, zframe_t *routing_id)
{
    agent_t *agent = (agent_t *) zhashx_lookup (self->agents, name);
    if (!agent) {
        agent = s_agent_new (name);
        zhashx_insert (self->agents, agent->name, agent);
    }
    else
        qn_fleet_disconnect (self, agent);
    //  A connection that registers under a new name leaves its old one.
    char *route_key = s_route_key (routing_id);
    agent_t *previous = (agent_t *) zhashx_lookup (self->by_route, route_key);
    if (previous && previous != agent)
        qn_fleet_disconnect (self, previous);
    agent->routing_id = zframe_dup (routing_id);
    agent->route_key = route_key;
    zhashx_insert (self->by_route, route_key, agent);
    agent->last_seen = zclock_mono ();
    return agent;
}

agent_t *
qn_fleet_by_route (qn_coordinator_t *self, zframe_t *routing_id)
{
    char *route_key = s_route_key (routing_id);
    agent_t *agent = (agent_t *) zhashx_lookup (self->by_route, route_key);
    free (route_key);
    return agent;
}

void
qn_fleet_disconnect (qn_coordinator_t *self, agent_t *agent)
{
    if (self->blobserver)
        qn_blobserver_peer_gone (self->blobserver, agent->name);
    if (agent->route_key)
        zhashx_delete (self->by_route, agent->route_key);
    zstr_free (&agent->route_key);
    zframe_destroy (&agent->routing_id);
    agent->info->connected = false;
    qn_fleet_set_credit (self, agent, 0);
    //  What it was still killing is its own affair until it registers
    //  again and says what it holds
    qn_fleet_release_all (agent);
}

//  Credit lives in the agent record; the set of agents with credit is
//  what dispatch walks.
void
qn_fleet_set_credit (qn_coordinator_t *self, agent_t *agent, uint32_t credit)
{
    agent->info->credit = credit;
    if (credit && agent->routing_id)
        zhashx_update (self->with_credit, agent->name, agent);
    else
        zhashx_delete (self->with_credit, agent->name);
}

//  ---------------------------------------------------------------------
//  What an agent offers, and its state

bool
qn_fleet_matches (agent_t *agent, const qn_task_t *task)
{
    if (task->backend) {
        bool offered = false;
        for (size_t b = 0; b < agent->info->n_backends && !offered; b++)
            offered = streq (agent->info->backends [b], task->backend);
        if (!offered)
            return false;
    }
    for (size_t s = 0; s < task->selector_count; s++) {
        bool found = false;
        for (size_t l = 0; l < agent->info->n_labels && !found; l++)
            if (streq (agent->info->labels [l]->key, task->selector [s].key)
            &&  streq (agent->info->labels [l]->value, task->selector [s].value))
                found = true;
        if (!found)
            return false;
    }
    return true;
}

//  connected, suspect (silent past its grace: no new work), lost (silent
//  past its deadline: its attempts were retried), or disconnected (known
//  from the store, not seen since our start).
static const char *
s_agent_state (agent_t *agent, int64_t now)
{
    if (!agent->routing_id)
        return agent->lost? "lost": "disconnected";
    if (now - agent->last_seen > agent->info->suspect_after_ms)
        return "suspect";
    return "connected";
}

void
qn_fleet_update_state (agent_t *agent, int64_t now)
{
    //  The state names are static strings: compare pointers, and copy
    //  into the record only on a change (this runs for every agent on
    //  every timer tick).
    const char *state = s_agent_state (agent, now);
    if (state != agent->state) {
        agent->state = state;
        qn_engine_replace_string (&agent->info->state, strdup (state));
    }
    agent->info->draining = agent->drained_by_admin || agent->drained_by_itself;
    agent->info->drained_by_admin = agent->drained_by_admin;
}

const char *
qn_fleet_unavailable (agent_t *agent, int64_t now)
{
    if (agent->drained_by_admin || agent->drained_by_itself)
        return "draining";
    if (agent->info->spool_full)
        return "spool full";
    if (now - agent->last_seen > agent->info->suspect_after_ms)
        return "suspect";
    return NULL;
}

void
qn_fleet_persist (qn_coordinator_t *self, agent_t *agent)
{
    self->agents_changed = true;            //  every change of the fleet's records comes here
    if (qn_store_begin (self->store) == 0)
        qn_store_put_agent (self->store, agent->info);
}

//  ---------------------------------------------------------------------
//  Agents that are gone, and their attempts

//  Copies the references of the attempts agent runs to refs (they change
//  as the attempts end).
static void
s_collect_attempts (agent_t *agent, zlistx_t *refs)
{
    for (ready_t *ref = (ready_t *) zhashx_first (agent->attempts); ref;
         ref = (ready_t *) zhashx_next (agent->attempts)) {
        ready_t *copy = (ready_t *) zmalloc (sizeof (ready_t));
        *copy = *ref;
        zlistx_add_end (refs, copy);
    }
}

void
qn_fleet_fail_attempts (qn_coordinator_t *self, zlistx_t **refs_p, const char *why)
{
    zlistx_t *refs = *refs_p;
    for (ready_t *ref = (ready_t *) zlistx_first (refs); ref; ref = (ready_t *) zlistx_next (refs)) {
        run_t *run = qn_run_find (self, ref->run_id);
        if (run && qn_run_task (run, ref->task)->status == QANAT__TASK_STATUS__TASK_RUNNING)
            qn_run_attempt_failed (self, run, ref->task, QN_END_AGENT_LOST, why);
        free (ref);
    }
    zlistx_destroy (refs_p);
}

//  The agent's messages are refused from now on (it is disconnected), and
//  the attempts it ran retry elsewhere by policy.
agent_t *
qn_fleet_revoke (qn_coordinator_t *self, const char *name)
{
    agent_t *agent = (agent_t *) zhashx_lookup (self->agents, name);
    if (agent) {
        qn_fleet_disconnect (self, agent);
        agent->lost = true;
        zlistx_t *refs = zlistx_new ();
        s_collect_attempts (agent, refs);
        qn_fleet_fail_attempts (self, &refs, "agent revoked");
        qn_fleet_update_state (agent, zclock_mono ());
        qn_fleet_persist (self, agent);
    }
    return agent;
}

bool
qn_fleet_remove (qn_coordinator_t *self, const char *name)
{
    agent_t *agent = (agent_t *) zhashx_lookup (self->agents, name);
    if (!agent)
        return false;
    qn_fleet_disconnect (self, agent);
    zlistx_t *refs = zlistx_new ();
    s_collect_attempts (agent, refs);
    qn_fleet_fail_attempts (self, &refs, "agent removed");
    self->agents_changed = true;
    if (qn_store_begin (self->store) == 0)
        qn_store_delete_agent (self->store, name);
    zhashx_delete (self->agents, name);
    return true;
}

void
qn_fleet_relabel (agent_t *agent, Qanat__Label **labels, size_t count)
{
    Qanat__AgentInfo *info = agent->info;
    qn_engine_free_repeated ((void ***) &info->labels, &info->n_labels);
    for (size_t i = 0; i < count; i++)
        qn_engine_append ((void ***) &info->labels, &info->n_labels,
                          qn_engine_label_new (labels [i]->key, labels [i]->value));
    s_gpu_label (agent);
}

//  Agents silent past the deadline are lost, and so are the attempts they
//  ran.  Attempts of agents that never came back after our own restart
//  end the same way.
zlistx_t *
qn_fleet_sweep (qn_coordinator_t *self, int64_t now)
{
    for (agent_t *agent = (agent_t *) zhashx_first (self->agents); agent;
         agent = (agent_t *) zhashx_next (self->agents)) {
        bool was_suspect = agent->state && streq (agent->state, "suspect");
        bool changed = false;
        if (agent->routing_id && now - agent->last_seen > agent->info->lost_after_ms) {
            changed = true;
            qn_log (QN_LOG_WARNING, "coordinator", "agent %s lost: silent for %lld ms", agent->name,
                    (long long) (now - agent->last_seen));
            qn_fleet_disconnect (self, agent);
            agent->lost = true;
            agent->info->running = 0;
        }
        qn_fleet_update_state (agent, now);
        bool is_suspect = streq (agent->state, "suspect");
        if (is_suspect && !was_suspect)
            qn_log (QN_LOG_WARNING, "coordinator", "agent %s suspect: silent for %lld ms",
                    agent->name, (long long) (now - agent->last_seen));
        if (was_suspect != is_suspect || changed)
            qn_fleet_persist (self, agent);
    }
    //  The attempts of agents gone past their deadline are lost.
    zlistx_t *lost = zlistx_new ();
    for (agent_t *agent = (agent_t *) zhashx_first (self->agents); agent;
         agent = (agent_t *) zhashx_next (self->agents))
        if (!agent->routing_id && zhashx_size (agent->attempts)
        &&  now - agent->last_seen > agent->info->lost_after_ms)
            s_collect_attempts (agent, lost);
    return lost;
}

//  ---------------------------------------------------------------------
//  Resources: what an agent has, and what its attempts use

static char *
s_held_key (uint64_t run_id, uint32_t task, uint32_t attempt)
{
    return zsys_sprintf ("%llu:%u:%u", (unsigned long long) run_id, task, attempt);
}

void
qn_fleet_hold (agent_t *agent, uint64_t run_id, uint32_t task, uint32_t attempt,
               const qn_res_t *need)
{
    if (!agent->routing_id || qn_res_empty (need))
        return;
    char *key = s_held_key (run_id, task, attempt);
    if (!zhashx_lookup (agent->held, key)) {
        qn_res_t *held = (qn_res_t *) malloc (sizeof (qn_res_t));
        if (held) {
            *held = *need;
            zhashx_insert (agent->held, key, held);
            qn_placement_take (&agent->place, need);
            qn_fleet_show_resources (agent);
        }
    }
    free (key);
}

void
qn_fleet_release (agent_t *agent, uint64_t run_id, uint32_t task, uint32_t attempt)
{
    if (zhashx_size (agent->held) == 0)
        return;                 //  the common case
    char *key = s_held_key (run_id, task, attempt);
    qn_res_t *held = (qn_res_t *) zhashx_lookup (agent->held, key);
    if (held) {
        qn_placement_give (&agent->place, held);
        zhashx_delete (agent->held, key);
        qn_fleet_show_resources (agent);
    }
    free (key);
}

void
qn_fleet_release_all (agent_t *agent)
{
    for (qn_res_t *held = (qn_res_t *) zhashx_first (agent->held); held;
         held = (qn_res_t *) zhashx_next (agent->held))
        qn_placement_give (&agent->place, held);
    if (zhashx_size (agent->held)) {
        zhashx_purge (agent->held);
        qn_fleet_show_resources (agent);
    }
}

qn_res_t
qn_fleet_need (const qn_task_t *task, const char *backend)
{
    qn_res_t need = { 0, 0, 0 };
    if (backend && streq (backend, "local")) {
        need.cpus = task->cpus;
        need.memory_mb = task->memory_mb;
        need.gpus = task->gpus;
    }
    return need;
}

char *
qn_fleet_gpu_label (const char *model, char *text, size_t size)
{
    //  Vendor and family words carry nothing; the words up to the first
    //  one with a digit name the model, each cut at its first '-'
    static const char *noise [] = { "nvidia", "geforce", "tesla", NULL };
    size_t used = 0;
    text [0] = 0;
    const char *word = model;
    while (word && *word && used + 1 < size) {
        while (*word == ' ')
            word++;
        size_t length = strcspn (word, " ");
        if (!length)
            break;
        char lower [64];
        size_t cut = strcspn (word, " -");
        if (cut >= sizeof lower)
            cut = sizeof lower - 1;
        bool digit = false;
        for (size_t i = 0; i < cut; i++) {
            char c = word [i];
            lower [i] = (char) tolower ((unsigned char) c);
            if (!isalnum ((unsigned char) c) && c != '.' && c != '_')
                lower [i] = '_';
            digit = digit || isdigit ((unsigned char) c);
        }
        lower [cut] = 0;
        bool skip = false;
        for (size_t n = 0; noise [n]; n++)
            skip = skip || streq (lower, noise [n]);
        if (!skip && cut) {
            int wrote = snprintf (text + used, size - used, "%s%s", used? "-": "", lower);
            used = wrote > 0 && (size_t) wrote < size - used? used + (size_t) wrote: size - 1;
            if (digit)
                break;
        }
        word += length;
    }
    return text;
}

static void
s_resources_copy (Qanat__Resources *message, const qn_res_t *res)
{
    message->cpus = res->cpus;
    message->memory_mb = res->memory_mb;
    message->gpus = res->gpus;
}

static Qanat__Resources *
s_resources_new (const qn_res_t *res)
{
    Qanat__Resources *message = (Qanat__Resources *) malloc (sizeof (Qanat__Resources));
    if (message) {
        qanat__resources__init (message);
        s_resources_copy (message, res);
    }
    return message;
}

void
qn_fleet_show_resources (agent_t *agent)
{
    //  In place while the agent stays tracked (this runs as attempts start
    //  and end)
    Qanat__AgentInfo *info = agent->info;
    if (agent->place.tracked && info->total && info->used) {
        s_resources_copy (info->total, &agent->place.total);
        s_resources_copy (info->used, &agent->place.used);
        return;
    }
    qn_engine_free_message (info->total);
    qn_engine_free_message (info->used);
    info->total = agent->place.tracked? s_resources_new (&agent->place.total): NULL;
    info->used = agent->place.tracked? s_resources_new (&agent->place.used): NULL;
}

static const char *
s_label (Qanat__AgentInfo *info, const char *key)
{
    for (size_t l = 0; l < info->n_labels; l++)
        if (streq (info->labels [l]->key, key))
            return info->labels [l]->value;
    return NULL;
}

void
qn_fleet_set_resources (agent_t *agent, const Qanat__Register *reg)
{
    Qanat__AgentInfo *info = agent->info;
    qn_engine_free_repeated ((void ***) &info->gpus, &info->n_gpus);
    //  Only an agent that runs tasks itself by default counts resources
    //  (its attempts are counted as local ones); one in front of a cluster
    //  that sends them anyway counts slots only
    agent->place.tracked = reg->resources != NULL
                        && (info->n_backends == 0 || streq (info->backends [0], "local"));
    qn_res_t total = { 0, 0, 0 };
    if (agent->place.tracked) {
        total.cpus = reg->resources->cpus;
        total.memory_mb = reg->resources->memory_mb;
        total.gpus = reg->resources->gpus;
    }
    agent->place.total = total;
    //  Bounded like every agent string: a GPU list is a few dozen entries
    for (size_t g = 0; agent->place.tracked && g < reg->n_gpus && g < 256; g++) {
        const Qanat__Gpu *from = reg->gpus [g];
        Qanat__Gpu *gpu = (Qanat__Gpu *) malloc (sizeof (Qanat__Gpu));
        qanat__gpu__init (gpu);
        gpu->index = from->index;
        gpu->uuid = strndup (from->uuid? from->uuid: "", 128);
        gpu->name = strndup (from->name? from->name: "", 128);
        gpu->memory_mb = from->memory_mb;
        qn_engine_append ((void ***) &info->gpus, &info->n_gpus, gpu);
    }
    qn_engine_replace_string (&info->confinement,
                              strndup (reg->confinement? reg->confinement: "", 256));
    qn_fleet_show_resources (agent);
    s_gpu_label (agent);
}

//  The label gpu=<model> of the agent's first GPU, unless it has a gpu
//  label already (the one it was given wins; a different model is logged)
static void
s_gpu_label (agent_t *agent)
{
    Qanat__AgentInfo *info = agent->info;
    if (!info->n_gpus || !*info->gpus [0]->name)
        return;
    char model [64];
    qn_fleet_gpu_label (info->gpus [0]->name, model, sizeof model);
    const char *given = s_label (info, "gpu");
    if (!given && *model)
        qn_engine_append ((void ***) &info->labels, &info->n_labels,
                          qn_engine_label_new ("gpu", model));
    else
    if (given && !streq (given, model))
        qn_log (QN_LOG_WARNING, "coordinator", "agent %s has GPU %s, but its label gpu=%s "
                "stays (the label it was given wins over the detected model %s)",
                agent->name, info->gpus [0]->name, given, model);
}
