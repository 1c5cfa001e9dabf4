/*  qn_limits - the counts behind priorities, concurrency limits, pools and
    fair share.  See qn_limits.h.
*/
#include "qn_limits.h"
#include "qn_hash.h"

typedef struct {
    uint32_t value;             //  size or weight; 0 = not set
    uint64_t used;              //  attempts (pools, tasks) or units (owners)
} s_count_t;

struct _qn_limits_t {
    zhashx_t *pools;            //  name -> s_count_t
    zhashx_t *tasks;            //  "workflow/task" -> s_count_t
    zhashx_t *owners;           //  name -> s_count_t
};

static void
s_count_destructor (void **item)
{
    free (*item);
    *item = NULL;
}

static zhashx_t *
s_table (void)
{
    zhashx_t *table = qn_hash_new ();
    if (table)
        zhashx_set_destructor (table, s_count_destructor);
    return table;
}

qn_limits_t *
qn_limits_new (void)
{
    qn_limits_t *self = (qn_limits_t *) zmalloc (sizeof (qn_limits_t));
    self->pools = s_table ();
    self->tasks = s_table ();
    self->owners = s_table ();
    if (!self->pools || !self->tasks || !self->owners)
        qn_limits_destroy (&self);
    return self;
}

void
qn_limits_destroy (qn_limits_t **self_p)
{
    if (*self_p) {
        qn_limits_t *self = *self_p;
        zhashx_destroy (&self->pools);
        zhashx_destroy (&self->tasks);
        zhashx_destroy (&self->owners);
        free (self);
        *self_p = NULL;
    }
}

//  The record of name, made when make is true; NULL when absent
static s_count_t *
s_count (zhashx_t *table, const char *name, bool make)
{
    s_count_t *count = (s_count_t *) zhashx_lookup (table, name);
    if (!count && make) {
        count = (s_count_t *) calloc (1, sizeof (s_count_t));
        if (count && zhashx_insert (table, name, count) != 0) {
            free (count);
            count = NULL;
        }
    }
    return count;
}

//  A record that says nothing any more goes
static void
s_prune (zhashx_t *table, const char *name, s_count_t *count)
{
    if (count && count->value == 0 && count->used == 0)
        zhashx_delete (table, name);
}

//  A size or weight: set (0: back to the default) and read
static void
s_set_value (zhashx_t *table, const char *name, uint32_t value)
{
    s_count_t *count = s_count (table, name, value > 0);
    if (count) {
        count->value = value > QN_LIMITS_SIZE_MAX? QN_LIMITS_SIZE_MAX: value;
        s_prune (table, name, count);
    }
}

static uint32_t
s_value (zhashx_t *table, const char *name, uint32_t default_value, bool *set_p)
{
    s_count_t *count = s_count (table, name, false);
    bool set = count && count->value;
    if (set_p)
        *set_p = set;
    return set? count->value: default_value;
}

void
qn_limits_pool_set (qn_limits_t *self, const char *name, uint32_t size)
{
    s_set_value (self->pools, name, size);
}

uint32_t
qn_limits_pool_size (qn_limits_t *self, const char *name, bool *set_p)
{
    return s_value (self->pools, name, QN_LIMITS_POOL_DEFAULT, set_p);
}

uint32_t
qn_limits_pool_used (qn_limits_t *self, const char *name)
{
    s_count_t *count = s_count (self->pools, name, false);
    return count? (uint32_t) count->used: 0;
}

void
qn_limits_weight_set (qn_limits_t *self, const char *owner, uint32_t weight)
{
    s_set_value (self->owners, owner, weight);
}

uint32_t
qn_limits_weight (qn_limits_t *self, const char *owner, bool *set_p)
{
    return s_value (self->owners, owner, QN_LIMITS_WEIGHT_DEFAULT, set_p);
}

static void
s_add (zhashx_t *table, const char *name, int64_t delta)
{
    if (!name)
        return;
    s_count_t *count = s_count (table, name, delta > 0);
    if (!count)
        return;
    if (delta < 0 && count->used < (uint64_t) -delta)
        count->used = 0;
    else
        count->used += delta;
    s_prune (table, name, count);
}

void
qn_limits_take (qn_limits_t *self, const qn_limits_use_t *use)
{
    s_add (self->pools, use->pool, 1);
    s_add (self->tasks, use->task, 1);
    s_add (self->owners, use->owner? use->owner: "", use->units? use->units: 1);
}

void
qn_limits_give (qn_limits_t *self, const qn_limits_use_t *use)
{
    s_add (self->pools, use->pool, -1);
    s_add (self->tasks, use->task, -1);
    s_add (self->owners, use->owner? use->owner: "", -(int64_t) (use->units? use->units: 1));
}

uint32_t
qn_limits_task_used (qn_limits_t *self, const char *task)
{
    s_count_t *count = task? s_count (self->tasks, task, false): NULL;
    return count? (uint32_t) count->used: 0;
}

uint32_t
qn_limits_room (qn_limits_t *self, const char *pool, const char *task, uint32_t concurrency)
{
    uint32_t room = UINT32_MAX;
    if (pool) {
        uint32_t size = qn_limits_pool_size (self, pool, NULL);
        uint32_t used = qn_limits_pool_used (self, pool);
        room = used >= size? 0: size - used;
    }
    if (task && concurrency) {
        uint32_t used = qn_limits_task_used (self, task);
        uint32_t left = used >= concurrency? 0: concurrency - used;
        if (left < room)
            room = left;
    }
    return room;
}

uint64_t
qn_limits_owner_used (qn_limits_t *self, const char *owner)
{
    s_count_t *count = s_count (self->owners, owner? owner: "", false);
    return count? count->used: 0;
}

double
qn_limits_share (qn_limits_t *self, const char *owner)
{
    return (double) qn_limits_owner_used (self, owner)
         / (double) qn_limits_weight (self, owner, NULL);
}

void
qn_limits_each (qn_limits_t *self, qn_limits_visit_fn *visit, void *arg)
{
    for (s_count_t *count = (s_count_t *) zhashx_first (self->pools); count;
         count = (s_count_t *) zhashx_next (self->pools))
        visit ("pool", (const char *) zhashx_cursor (self->pools),
               count->value? count->value: QN_LIMITS_POOL_DEFAULT, count->value > 0,
               count->used, arg);
    for (s_count_t *count = (s_count_t *) zhashx_first (self->owners); count;
         count = (s_count_t *) zhashx_next (self->owners))
        visit ("weight", (const char *) zhashx_cursor (self->owners),
               count->value? count->value: QN_LIMITS_WEIGHT_DEFAULT, count->value > 0,
               count->used, arg);
}
