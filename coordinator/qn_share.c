/*  qn_share - the engine's side of priorities, concurrency limits, pools
    and fair share.  See qn_share.h.

    One of the files of the qn_coordinator class: it shares the engine's
    records (qn_engine.h), so the include checker counts it with
    qn_coordinator.
*/
#include "qn_share.h"
#include "qn_log.h"
#include "qn_run.h"
#include "qn_dispatch.h"
#include "qn_wf_limits.h"
#include "qn_hash.h"

//  ---------------------------------------------------------------------
//  What an attempt counts against

static const char *
s_owner (run_t *run)
{
    return run->info->owner && *run->info->owner? run->info->owner: "local";
}

//  "workflow/task" of a task with a concurrency (a matrix's expansions
//  count as the task written), else NULL; malloc'd
static char *
s_task_key (run_t *run, const qn_task_t *spec)
{
    if (!spec->concurrency)
        return NULL;
    return zsys_sprintf ("%s/%s", run->info->workflow? run->info->workflow: "",
                         spec->matrix_of? spec->matrix_of: spec->name);
}

//  Its weight in its owner's share: a slot, or its CPUs when it asks more
static uint32_t
s_units (const qn_task_t *spec)
{
    return spec->cpus > 1? spec->cpus: 1;
}

static void s_admit_running (qn_coordinator_t *self, run_t *run);

void
qn_share_count (qn_coordinator_t *self, run_t *run, size_t index, bool running)
{
    const qn_task_t *spec = qn_workflow_task (run->wf, index);
    char *task = s_task_key (run, spec);
    qn_limits_use_t use = { spec->pool, task, s_owner (run), s_units (spec) };
    if (running) {
        qn_limits_take (self->limits, &use);
        s_admit_running (self, run);
    }
    else
        qn_limits_give (self->limits, &use);
    free (task);
}

//  ---------------------------------------------------------------------
//  The order of a pass

//  A queue's selector/backend/resources part: its key up to the first
//  priority, pool, task or owner mark (s_selector_key)
static size_t
s_class_len (const char *name)
{
    return strcspn (name, "!%^~");
}

static int
s_by_peers (const void *a_, const void *b_)
{
    const qn_share_queue_t *a = (const qn_share_queue_t *) a_;
    const qn_share_queue_t *b = (const qn_share_queue_t *) b_;
    if (a->priority != b->priority)
        return a->priority > b->priority? -1: 1;
    size_t len = a->class_len < b->class_len? a->class_len: b->class_len;
    int cmp = memcmp (a->name, b->name, len);
    if (cmp || a->class_len != b->class_len)
        return cmp? cmp: a->class_len < b->class_len? -1: 1;
    return strcmp (a->owner, b->owner);
}

//  The visiting order: aged priority of the group, then fair share, then
//  age.  Shares are read once per pass, before it.
static qn_limits_t *s_sort_limits;
static int
s_by_turn (const void *a_, const void *b_)
{
    const qn_share_queue_t *a = (const qn_share_queue_t *) a_;
    const qn_share_queue_t *b = (const qn_share_queue_t *) b_;
    if (a->group_key != b->group_key)
        return a->group_key > b->group_key? -1: 1;
    if (a->priority != b->priority)
        return a->priority > b->priority? -1: 1;
    if (a->several || b->several) {
        double share_a = qn_limits_share (s_sort_limits, a->owner);
        double share_b = qn_limits_share (s_sort_limits, b->owner);
        if (share_a != share_b)
            return share_a < share_b? -1: 1;
    }
    if (a->key != b->key)
        return a->key > b->key? -1: 1;
    return 0;
}

//  The oldest task of a queue still queued (gone ones dropped), or NULL
static ready_t *
s_head (qn_coordinator_t *self, zlistx_t *queue, run_t **run_p)
{
    ready_t *ready = (ready_t *) zlistx_first (queue);
    while (ready) {
        run_t *run = qn_run_find (self, ready->run_id);
        if (run && qn_dag_status (run->dag, ready->task) == QANAT__TASK_STATUS__TASK_QUEUED) {
            *run_p = run;
            return ready;
        }
        zlistx_delete (queue, zlistx_cursor (queue));       //  canceled or gone
        ready = (ready_t *) zlistx_first (queue);
    }
    return NULL;
}

qn_share_queue_t *
qn_share_order (qn_coordinator_t *self, size_t *count_p)
{
    *count_p = 0;
    size_t queues = zhashx_size (self->queues);
    qn_share_queue_t *order = queues? (qn_share_queue_t *) calloc (queues,
                                                                   sizeof (qn_share_queue_t))
                                    : NULL;
    if (!order)
        return NULL;
    size_t count = 0;
    for (zlistx_t *queue = (zlistx_t *) zhashx_first (self->queues); queue;
         queue = (zlistx_t *) zhashx_next (self->queues)) {
        run_t *run = NULL;
        ready_t *ready = s_head (self, queue, &run);
        if (!ready)
            continue;
        qn_share_queue_t *entry = &order [count++];
        entry->queue = queue;
        entry->name = (const char *) zhashx_cursor (self->queues);
        entry->spec = qn_workflow_task (run->wf, ready->task);
        entry->owner = s_owner (run);
        entry->task = s_task_key (run, entry->spec);
        entry->priority = entry->spec->priority;
        entry->key = qn_limits_priority_key (entry->priority, ready->queued_us);
        entry->class_len = s_class_len (entry->name);
    }
    //  Peer groups and each priority's best key
    qsort (order, count, sizeof (qn_share_queue_t), s_by_peers);
    size_t start = 0;
    for (size_t q = 0; q <= count; q++) {
        bool same = q < count && q > start
                 && order [q].priority == order [start].priority
                 && order [q].class_len == order [start].class_len
                 && memcmp (order [q].name, order [start].name, order [q].class_len) == 0;
        if (q > start && !same) {
            bool several = strcmp (order [start].owner, order [q - 1].owner) != 0;
            for (size_t p = start; p < q; p++) {
                order [p].peers = start;
                order [p].several = several;
            }
            start = q;
        }
    }
    start = 0;
    for (size_t q = 0; q <= count; q++)
        if (q == count || order [q].priority != order [start].priority) {
            int64_t best = INT64_MIN;
            for (size_t p = start; p < q; p++)
                if (order [p].key > best)
                    best = order [p].key;
            for (size_t p = start; p < q; p++)
                order [p].group_key = best;
            start = q;
        }
    s_sort_limits = self->limits;
    qsort (order, count, sizeof (qn_share_queue_t), s_by_turn);
    *count_p = count;
    return order;
}

void
qn_share_order_free (qn_share_queue_t **order_p, size_t count)
{
    if (*order_p) {
        for (size_t q = 0; q < count; q++)
            free ((*order_p) [q].task);
        free (*order_p);
        *order_p = NULL;
    }
}

bool
qn_share_ready (qn_coordinator_t *self, qn_share_queue_t *entry)
{
    run_t *run = NULL;
    if (!s_head (self, entry->queue, &run))
        return false;
    uint32_t room = qn_limits_room (self->limits, entry->spec->pool, entry->task,
                                    entry->spec->concurrency);
    entry->room = room == UINT32_MAX? SIZE_MAX: room;
    return room > 0;
}

bool
qn_share_over (qn_coordinator_t *self, qn_share_queue_t *entry, qn_share_queue_t *order,
               size_t count)
{
    if (!entry->several)
        return false;
    //  The lowest share among the other owners of its peers that could
    //  still place (a peer held by its own pool takes nothing now)
    double lowest = -1;
    for (size_t q = 0; q < count; q++) {
        qn_share_queue_t *peer = &order [q];
        if (peer->peers != entry->peers || peer == entry || streq (peer->owner, entry->owner)
        ||  zlistx_size (peer->queue) == 0
        ||  qn_limits_room (self->limits, peer->spec->pool, peer->task,
                            peer->spec->concurrency) == 0)
            continue;
        double share = qn_limits_share (self->limits, peer->owner);
        if (lowest < 0 || share < lowest)
            lowest = share;
    }
    return lowest >= 0 && qn_limits_share (self->limits, entry->owner) > lowest;
}

//  ---------------------------------------------------------------------
//  A workflow's concurrency: runs at once

typedef struct {
    uint32_t active;            //  admitted runs not yet ended
    zlistx_t *held;             //  ready_t of runs waiting for their turn, oldest first
} s_admit_t;

static void
s_admit_destructor (void **item)
{
    s_admit_t *admit = (s_admit_t *) *item;
    if (admit) {
        zlistx_destroy (&admit->held);
        free (admit);
        *item = NULL;
    }
}

static s_admit_t *
s_admit_record (qn_coordinator_t *self, const char *workflow)
{
    if (!self->admitted) {
        self->admitted = qn_hash_new ();
        if (!self->admitted)
            return NULL;
        zhashx_set_destructor (self->admitted, s_admit_destructor);
    }
    s_admit_t *admit = (s_admit_t *) zhashx_lookup (self->admitted, workflow);
    if (!admit) {
        admit = (s_admit_t *) zmalloc (sizeof (s_admit_t));
        admit->held = zlistx_new ();
        zlistx_set_destructor (admit->held, qn_dispatch_ready_destructor);
        zhashx_insert (self->admitted, workflow, admit);
    }
    return admit;
}

static void
s_admit (run_t *run, s_admit_t *admit)
{
    run->admitted = true;
    admit->active++;
    if (run->info->waiting_reason && *run->info->waiting_reason) {
        qn_engine_replace_string (&run->info->waiting_reason, qn_engine_strdup (""));
        qn_run_mark (run);
    }
}

//  A run with a running attempt counts, whatever the limit (after a
//  restart, or when the limit was lowered)
static void
s_admit_running (qn_coordinator_t *self, run_t *run)
{
    if (run->admitted || !qn_workflow_limits (run->wf)->concurrency)
        return;
    s_admit_t *admit = s_admit_record (self, run->info->workflow);
    if (admit)
        s_admit (run, admit);
}

bool
qn_share_admit (qn_coordinator_t *self, run_t *run, ready_t *ready)
{
    uint32_t limit = qn_workflow_limits (run->wf)->concurrency;
    if (!limit || run->admitted)
        return true;
    s_admit_t *admit = s_admit_record (self, run->info->workflow);
    if (!admit)
        return true;            //  out of memory: no limit rather than a lost task
    if (admit->active < limit) {
        s_admit (run, admit);
        return true;
    }
    zlistx_add_end (admit->held, ready);
    char *reason = zsys_sprintf ("waiting: workflow %s runs at most %u at once (%u running)",
                                 run->info->workflow, limit, admit->active);
    if (!run->info->waiting_reason || !streq (run->info->waiting_reason, reason)) {
        qn_engine_replace_string (&run->info->waiting_reason, reason);
        qn_run_mark (run);
    }
    else
        zstr_free (&reason);
    return false;
}

void
qn_share_run_ended (qn_coordinator_t *self, run_t *run)
{
    if (run->info->waiting_reason && *run->info->waiting_reason) {
        //  Canceled while held: it waits for nothing any more
        qn_engine_replace_string (&run->info->waiting_reason, qn_engine_strdup (""));
        qn_run_mark (run);
    }
    if (!run->admitted || !self->admitted)
        return;
    run->admitted = false;
    s_admit_t *admit = (s_admit_t *) zhashx_lookup (self->admitted, run->info->workflow);
    if (!admit)
        return;
    if (admit->active)
        admit->active--;
    //  The oldest held runs start, as many as the limit lets
    ready_t *ready = (ready_t *) zlistx_first (admit->held);
    while (ready) {
        void *handle = zlistx_cursor (admit->held);
        ready_t *next = (ready_t *) zlistx_next (admit->held);
        run_t *held = qn_run_find (self, ready->run_id);
        uint32_t limit = held? qn_workflow_limits (held->wf)->concurrency: 0;
        if (!held || qn_dag_status (held->dag, ready->task) != QANAT__TASK_STATUS__TASK_QUEUED)
            zlistx_delete (admit->held, handle);
        else
        if (held->admitted || !limit || admit->active < limit) {
            if (!held->admitted && limit)
                s_admit (held, admit);
            qn_dispatch_queue (self, held, ready->task);
            zlistx_delete (admit->held, handle);
        }
        ready = next;
    }
}

//  ---------------------------------------------------------------------
//  Waiting reasons

char *
qn_share_waiting_reason (qn_coordinator_t *self, run_t *run, const qn_task_t *spec)
{
    if (spec->pool) {
        bool set = false;
        uint32_t size = qn_limits_pool_size (self->limits, spec->pool, &set);
        uint32_t used = qn_limits_pool_used (self->limits, spec->pool);
        if (used >= size)
            return set? zsys_sprintf ("waiting: pool %s is full (%u of %u in use)", spec->pool,
                                      used, size)
                      : zsys_sprintf ("waiting: pool %s is full (%u in use; its size is not "
                                      "set, so 1: qanat pool set %s N)", spec->pool, used,
                                      spec->pool);
    }
    char *task = s_task_key (run, spec);
    char *reason = NULL;
    if (task) {
        uint32_t used = qn_limits_task_used (self->limits, task);
        if (used >= spec->concurrency)
            reason = zsys_sprintf ("waiting: task %s runs at most %u at once across runs "
                                   "(%u running)", spec->matrix_of? spec->matrix_of: spec->name,
                                   spec->concurrency, used);
        free (task);
    }
    return reason;
}

//  ---------------------------------------------------------------------
//  Pool sizes and weights: stored, loaded, set and listed

static void
s_load_one (const char *kind, const char *name, uint32_t value, void *arg)
{
    qn_limits_t *limits = (qn_limits_t *) arg;
    if (streq (kind, "pool"))
        qn_limits_pool_set (limits, name, value);
    else
    if (streq (kind, "weight"))
        qn_limits_weight_set (limits, name, value);
}

qn_limits_t *
qn_dispatch_limits_load (qn_coordinator_t *self, char **error_p)
{
    qn_limits_t *limits = qn_limits_new ();
    if (!limits) {
        *error_p = strdup ("out of memory");
        return NULL;
    }
    if (qn_store_limit_each (self->store, s_load_one, limits)) {
        *error_p = zsys_sprintf ("cannot read pool sizes and weights: %s",
                                 qn_store_error (self->store));
        qn_limits_destroy (&limits);
    }
    return limits;
}

static bool
s_valid_name (const char *name)
{
    size_t len = name? strlen (name): 0;
    if (len == 0 || len > 128)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char) name [i];
        if (!(isalnum (c) || c == '_' || c == '-' || c == '.' || c == '@'))
            return false;
    }
    return !strstr (name, "..");
}

void
qn_share_handle_set (qn_api_call_t *call, Qanat__Request *request)
{
    qn_coordinator_t *self = call->engine;
    Qanat__SetLimit *set = request->set_limit;
    bool pool = streq (set->kind, "pool");
    if (!pool && !streq (set->kind, "weight")) {
        qn_api_error (call, request->id, QANAT__ERROR_CODE__ERROR_BAD_REQUEST,
                      "a limit is a pool's size or an owner's weight (pool, weight)");
        return;
    }
    if (!s_valid_name (set->name)) {
        qn_api_error (call, request->id, QANAT__ERROR_CODE__ERROR_BAD_REQUEST,
                      "invalid name (letters, digits, '_', '-', '.', '@', at most 128)");
        return;
    }
    if (set->value > QN_LIMITS_SIZE_MAX) {
        qn_api_error (call, request->id, QANAT__ERROR_CODE__ERROR_BAD_REQUEST,
                      pool? "a pool's size is at most 1000000": "a weight is at most 1000000");
        return;
    }
    if (qn_store_begin (self->store)
    ||  qn_store_limit_put (self->store, set->kind, set->name, set->value)) {
        qn_api_error (call, request->id, QANAT__ERROR_CODE__ERROR_UNAVAILABLE,
                      qn_store_error (self->store));
        return;
    }
    if (pool)
        qn_limits_pool_set (self->limits, set->name, set->value);
    else
        qn_limits_weight_set (self->limits, set->name, set->value);
    qn_log (QN_LOG_INFO, "api", "%s %s set to %u by %s", set->kind, set->name, set->value,
            qn_api_caller (call));
    //  A larger pool may let queued tasks start now
    qn_dispatch (self);
    Qanat__ListLimits list = QANAT__LIST_LIMITS__INIT;
    list.kind = set->kind;
    Qanat__Request again = *request;
    again.body_case = QANAT__REQUEST__BODY_LIST_LIMITS;
    again.list_limits = &list;
    qn_share_handle_list (call, &again);
}

typedef struct {
    const char *kind;           //  NULL = both
    Qanat__LimitInfo *items;
    Qanat__LimitInfo **pointers;
    size_t count, alloc;
} s_listing_t;

static void
s_list_one (const char *kind, const char *name, uint32_t value, bool set, uint64_t used,
            void *arg)
{
    s_listing_t *listing = (s_listing_t *) arg;
    if ((listing->kind && !streq (kind, listing->kind)) || listing->count == listing->alloc)
        return;
    Qanat__LimitInfo *item = &listing->items [listing->count];
    qanat__limit_info__init (item);
    item->kind = (char *) kind;
    item->name = (char *) name;
    item->value = value;
    item->set = set;
    item->used = used;
    listing->pointers [listing->count++] = item;
}

//  Tasks queued for each listed pool and of each listed owner
static void
s_count_waiting (qn_coordinator_t *self, s_listing_t *listing)
{
    for (zlistx_t *queue = (zlistx_t *) zhashx_first (self->queues); queue;
         queue = (zlistx_t *) zhashx_next (self->queues)) {
        ready_t *ready = (ready_t *) zlistx_first (queue);
        run_t *run = ready? qn_run_find (self, ready->run_id): NULL;
        if (!run)
            continue;
        const qn_task_t *spec = qn_workflow_task (run->wf, ready->task);
        for (size_t i = 0; i < listing->count; i++) {
            Qanat__LimitInfo *item = listing->pointers [i];
            if (streq (item->kind, "pool")? spec->pool && streq (spec->pool, item->name)
                                           : streq (s_owner (run), item->name))
                item->waiting += zlistx_size (queue);
        }
    }
}

void
qn_share_handle_list (qn_api_call_t *call, Qanat__Request *request)
{
    qn_coordinator_t *self = call->engine;
    Qanat__ListLimits *list = request->list_limits;
    const char *kind = list && list->kind && *list->kind? list->kind: NULL;
    //  Pools that tasks wait for and owners whose tasks wait are listed
    //  too, even unset and idle
    zhashx_t *pools = qn_hash_new (), *owners = qn_hash_new ();
    for (zlistx_t *queue = (zlistx_t *) zhashx_first (self->queues); queue && pools && owners;
         queue = (zlistx_t *) zhashx_next (self->queues)) {
        ready_t *ready = (ready_t *) zlistx_first (queue);
        run_t *run = ready? qn_run_find (self, ready->run_id): NULL;
        const qn_task_t *spec = run? qn_workflow_task (run->wf, ready->task): NULL;
        bool set = false;
        if (spec && spec->pool && !qn_limits_pool_used (self->limits, spec->pool)) {
            qn_limits_pool_size (self->limits, spec->pool, &set);
            if (!set)
                zhashx_update (pools, spec->pool, (void *) 1);
        }
        if (spec && !qn_limits_owner_used (self->limits, s_owner (run))) {
            qn_limits_weight (self->limits, s_owner (run), &set);
            if (!set)
                zhashx_update (owners, s_owner (run), (void *) 1);
        }
    }
    size_t alloc = 1024 + (pools? zhashx_size (pools): 0) + (owners? zhashx_size (owners): 0);
    s_listing_t listing = { kind, calloc (alloc, sizeof (Qanat__LimitInfo)),
                            calloc (alloc, sizeof (void *)), 0, alloc };
    if (!listing.items || !listing.pointers)
        listing.alloc = 0;
    qn_limits_each (self->limits, s_list_one, &listing);
    for (void *item = pools? zhashx_first (pools): NULL; item; item = zhashx_next (pools))
        s_list_one ("pool", (const char *) zhashx_cursor (pools), QN_LIMITS_POOL_DEFAULT, false,
                    0, &listing);
    for (void *item = owners? zhashx_first (owners): NULL; item; item = zhashx_next (owners))
        s_list_one ("weight", (const char *) zhashx_cursor (owners), QN_LIMITS_WEIGHT_DEFAULT,
                    false, 0, &listing);
    s_count_waiting (self, &listing);
    Qanat__LimitList reply_list = QANAT__LIMIT_LIST__INIT;
    reply_list.limits = listing.pointers;
    reply_list.n_limits = listing.count;
    Qanat__Reply reply = QANAT__REPLY__INIT;
    reply.id = request->id;
    reply.body_case = QANAT__REPLY__BODY_LIMITS;
    reply.limits = &reply_list;
    call->reply (call, &reply);
    free (listing.items);
    free (listing.pointers);
    zhashx_destroy (&pools);
    zhashx_destroy (&owners);
}
