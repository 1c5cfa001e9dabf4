/*  qn_placement - where a task fits: the CPUs, memory and GPUs an agent
    has and uses, whether a task's request fits in what is free, which of
    the agents it fits on it goes to (the tightest fit, bin-packing, or
    the loosest, spread), and the words that say why a task waits.

    Pure functions over plain records, so that the rules can be tested
    (and property-tested) without an engine: qn_dispatch calls them with
    the agent records' placement part, qn_run keeps the "used" side in
    step as attempts start and end.

    An agent that reported no resources (one whose default backend fronts
    a cluster: Slurm, Kubernetes) is not tracked: every task fits there,
    and only its slots (credit) limit it.  A task that asks for nothing
    (cpus, memory and gpus all 0) fits everywhere and goes to the agent
    with the most free slots, as it always did.
*/
#ifndef QN_PLACEMENT_H_INCLUDED
#define QN_PLACEMENT_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  An amount of each resource: what an agent has, uses, or a task asks.
typedef struct {
    uint32_t cpus;
    uint64_t memory_mb;
    uint32_t gpus;
} qn_res_t;

//  One agent's side of placement.
typedef struct {
    bool tracked;               //  it reported what it has
    qn_res_t total;
    qn_res_t used;              //  by its running attempts on the local backend
} qn_place_t;

typedef enum {
    QN_PLACEMENT_PACK = 0,      //  the agent left with the least free (default)
    QN_PLACEMENT_SPREAD         //  the agent left with the most free
} qn_placement_mode_t;

//  "pack" or "spread" -> mode; -1 for anything else.
int
    qn_placement_mode_parse (const char *text, qn_placement_mode_t *mode);

//  True when the request is all zero.
bool
    qn_res_empty (const qn_res_t *need);

//  What is free on place (never below zero).
qn_res_t
    qn_placement_free (const qn_place_t *place);

//  True when need fits in what is free on place (always, untracked).
bool
    qn_placement_fits (const qn_place_t *place, const qn_res_t *need);

//  True when need could fit on place if nothing else ran there.
bool
    qn_placement_could_fit (const qn_place_t *place, const qn_res_t *need);

//  An attempt asking need starts (take) or ends (give back) on place.
//  Giving back more than is used stops at zero.
void
    qn_placement_take (qn_place_t *place, const qn_res_t *need);
void
    qn_placement_give (qn_place_t *place, const qn_res_t *need);

//  Of the count candidates (places [i], with credit [i] free slots, each
//  > 0), the index of the one need goes to, or -1 when it fits on none.
//  An empty need goes to the most credit; otherwise, in pack mode, to
//  the agent where the least is left after it (GPUs first, then the
//  share of CPUs and memory left), in spread mode where the most is
//  left; ties go to the most credit, then the lowest index.  Tracked
//  agents come before untracked ones in both modes.
int
    qn_placement_choose (const qn_place_t *const *places, const uint32_t *credit,
                         size_t count, const qn_res_t *need, qn_placement_mode_t mode);

//  The candidates of one queue in one dispatch pass, kept as a binary
//  heap in the caller's three arrays (swapped together) so that the first
//  is always where the next task of the queue goes, by the order of
//  qn_placement_choose: placing a task costs O(log candidates), not a
//  scan of them all.
typedef struct {
    const qn_place_t **places;
    uint32_t *credit;           //  > 0 each
    void **items;               //  the caller's records, moved with them
    size_t count;
    qn_res_t need;              //  what every task of the queue asks
    qn_placement_mode_t mode;
} qn_placement_heap_t;

//  Puts the candidates in heap order (each must fit need).
void
    qn_placement_heap_make (qn_placement_heap_t *heap);

//  The first candidate's credit or use changed: back in order, or out of
//  the heap when keep is false (no credit left, or need no longer fits).
void
    qn_placement_heap_update_first (qn_placement_heap_t *heap, bool keep);

//  Writes need as "cpus=2,memory=4G,gpus=1" (only what it asks) into
//  text; returns text.
char *
    qn_placement_text (const qn_res_t *need, char *text, size_t size);

//  Writes what place lacks of need as "1" (need asks for one kind) or
//  "gpus=1,memory=2G" (the free amounts of the kinds that are short).
char *
    qn_placement_short_text (const qn_place_t *place, const qn_res_t *need, char *text,
                             size_t size);

#endif
