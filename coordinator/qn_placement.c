/*  qn_placement - where a task fits.  See qn_placement.h.
*/
#include "qn_placement.h"
#include <stdio.h>
#include <string.h>

int
qn_placement_mode_parse (const char *text, qn_placement_mode_t *mode)
{
    if (text && strcmp (text, "pack") == 0)
        *mode = QN_PLACEMENT_PACK;
    else
    if (text && strcmp (text, "spread") == 0)
        *mode = QN_PLACEMENT_SPREAD;
    else
        return -1;
    return 0;
}

bool
qn_res_empty (const qn_res_t *need)
{
    return need->cpus == 0 && need->memory_mb == 0 && need->gpus == 0;
}

qn_res_t
qn_placement_free (const qn_place_t *place)
{
    qn_res_t free_ = { 0, 0, 0 };
    if (place->total.cpus > place->used.cpus)
        free_.cpus = place->total.cpus - place->used.cpus;
    if (place->total.memory_mb > place->used.memory_mb)
        free_.memory_mb = place->total.memory_mb - place->used.memory_mb;
    if (place->total.gpus > place->used.gpus)
        free_.gpus = place->total.gpus - place->used.gpus;
    return free_;
}

bool
qn_placement_fits (const qn_place_t *place, const qn_res_t *need)
{
    if (!place->tracked || qn_res_empty (need))
        return true;
    qn_res_t free_ = qn_placement_free (place);
    return need->cpus <= free_.cpus && need->memory_mb <= free_.memory_mb
        && need->gpus <= free_.gpus;
}

bool
qn_placement_could_fit (const qn_place_t *place, const qn_res_t *need)
{
    if (!place->tracked)
        return true;
    return need->cpus <= place->total.cpus && need->memory_mb <= place->total.memory_mb
        && need->gpus <= place->total.gpus;
}

void
qn_placement_take (qn_place_t *place, const qn_res_t *need)
{
    place->used.cpus += need->cpus;
    place->used.memory_mb += need->memory_mb;
    place->used.gpus += need->gpus;
}

void
qn_placement_give (qn_place_t *place, const qn_res_t *need)
{
    place->used.cpus -= need->cpus < place->used.cpus? need->cpus: place->used.cpus;
    place->used.memory_mb -= need->memory_mb < place->used.memory_mb
                           ? need->memory_mb: place->used.memory_mb;
    place->used.gpus -= need->gpus < place->used.gpus? need->gpus: place->used.gpus;
}

//  What is left on a tracked place once need is on it: whole GPUs weigh
//  more than any share of CPUs and memory (at most 2 together), so that a
//  task without GPUs stays off GPU nodes when it can, and a GPU task goes
//  where the fewest GPUs stay idle.
static double
s_left (const qn_place_t *place, const qn_res_t *need)
{
    qn_res_t free_ = qn_placement_free (place);
    double left = (double) (free_.gpus - need->gpus) * 4.0;
    if (place->total.cpus)
        left += (double) (free_.cpus - need->cpus) / place->total.cpus;
    if (place->total.memory_mb)
        left += (double) (free_.memory_mb - need->memory_mb) / (double) place->total.memory_mb;
    return left;
}

int
qn_placement_choose (const qn_place_t *const *places, const uint32_t *credit, size_t count,
                     const qn_res_t *need, qn_placement_mode_t mode)
{
    bool empty = qn_res_empty (need);
    int best = -1;
    bool best_tracked = false;
    double best_left = 0;
    for (size_t i = 0; i < count; i++) {
        const qn_place_t *place = places [i];
        if (!qn_placement_fits (place, need))
            continue;
        if (best == -1) {
            best = (int) i;
            best_tracked = place->tracked;
            best_left = place->tracked? s_left (place, need): 0;
            continue;
        }
        bool better;
        if (empty)
            better = credit [i] > credit [best];
        else
        if (place->tracked != best_tracked)
            better = place->tracked;
        else {
            double left = place->tracked? s_left (place, need): 0;
            if (left != best_left)
                better = mode == QN_PLACEMENT_PACK? left < best_left: left > best_left;
            else
                better = credit [i] > credit [best];
        }
        if (better) {
            best = (int) i;
            best_tracked = place->tracked;
            best_left = place->tracked? s_left (place, need): 0;
        }
    }
    return best;
}

//  True when candidate i goes before candidate j (qn_placement_choose's
//  order, without its last tie-break on the index)
static bool
s_before (const qn_placement_heap_t *heap, size_t i, size_t j)
{
    const qn_place_t *a = heap->places [i], *b = heap->places [j];
    if (!qn_res_empty (&heap->need)) {
        if (a->tracked != b->tracked)
            return a->tracked;
        if (a->tracked) {
            double left_a = s_left (a, &heap->need), left_b = s_left (b, &heap->need);
            if (left_a != left_b)
                return heap->mode == QN_PLACEMENT_PACK? left_a < left_b: left_a > left_b;
        }
    }
    return heap->credit [i] > heap->credit [j];
}

static void
s_swap (qn_placement_heap_t *heap, size_t i, size_t j)
{
    const qn_place_t *place = heap->places [i];
    heap->places [i] = heap->places [j];
    heap->places [j] = place;
    uint32_t credit = heap->credit [i];
    heap->credit [i] = heap->credit [j];
    heap->credit [j] = credit;
    void *item = heap->items [i];
    heap->items [i] = heap->items [j];
    heap->items [j] = item;
}

static void
s_sift_down (qn_placement_heap_t *heap, size_t i)
{
    while (true) {
        size_t best = i, left = 2 * i + 1, right = left + 1;
        if (left < heap->count && s_before (heap, left, best))
            best = left;
        if (right < heap->count && s_before (heap, right, best))
            best = right;
        if (best == i)
            return;
        s_swap (heap, i, best);
        i = best;
    }
}

void
qn_placement_heap_make (qn_placement_heap_t *heap)
{
    for (size_t i = heap->count / 2; i-- > 0;)
        s_sift_down (heap, i);
}

void
qn_placement_heap_update_first (qn_placement_heap_t *heap, bool keep)
{
    if (!heap->count)
        return;
    if (!keep) {
        heap->count--;
        if (!heap->count)
            return;
        s_swap (heap, 0, heap->count);
    }
    s_sift_down (heap, 0);
}

//  Appends "key=value" to text (comma first unless it is empty).
static void
s_append (char *text, size_t size, const char *key, uint64_t value, bool memory)
{
    size_t used = strlen (text);
    if (used + 1 >= size)
        return;
    const char *comma = used? ",": "";
    if (!memory)
        snprintf (text + used, size - used, "%s%s=%llu", comma, key, (unsigned long long) value);
    else
    if (value && value % 1024 == 0)
        snprintf (text + used, size - used, "%s%s=%lluG", comma, key,
                  (unsigned long long) (value / 1024));
    else
        snprintf (text + used, size - used, "%s%s=%lluM", comma, key, (unsigned long long) value);
}

char *
qn_placement_text (const qn_res_t *need, char *text, size_t size)
{
    text [0] = 0;
    if (need->cpus)
        s_append (text, size, "cpus", need->cpus, false);
    if (need->memory_mb)
        s_append (text, size, "memory", need->memory_mb, true);
    if (need->gpus)
        s_append (text, size, "gpus", need->gpus, false);
    return text;
}

char *
qn_placement_short_text (const qn_place_t *place, const qn_res_t *need, char *text, size_t size)
{
    qn_res_t free_ = qn_placement_free (place);
    qn_res_t short_ = { 0, 0, 0 };
    int kinds = (need->cpus > 0) + (need->memory_mb > 0) + (need->gpus > 0);
    text [0] = 0;
    if (need->cpus > free_.cpus)
        short_.cpus = free_.cpus? free_.cpus: 1;
    if (need->memory_mb > free_.memory_mb)
        short_.memory_mb = free_.memory_mb? free_.memory_mb: 1;
    if (need->gpus > free_.gpus)
        short_.gpus = free_.gpus? free_.gpus: 1;
    if (kinds == 1) {
        if (need->memory_mb) {
            qn_res_t only = { 0, free_.memory_mb, 0 };
            char memory [32];
            qn_placement_text (&only, memory, sizeof memory);
            snprintf (text, size, "%s", free_.memory_mb? memory + strlen ("memory="): "0");
        }
        else
            snprintf (text, size, "%u", need->cpus? free_.cpus: free_.gpus);
        return text;
    }
    //  The free amount of each kind that is short (0 is written as 0)
    if (short_.cpus)
        s_append (text, size, "cpus", free_.cpus, false);
    if (short_.memory_mb)
        s_append (text, size, "memory", free_.memory_mb, true);
    if (short_.gpus)
        s_append (text, size, "gpus", free_.gpus, false);
    return text;
}
