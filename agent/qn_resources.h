/*  qn_resources - what the agent's machine has for the local backend, and
    what each attempt gets of it.

    At start it detects the CPUs (the affinity mask, lowered by a cgroup
    v2 cpu.max quota), the memory (MemTotal, lowered by a cgroup v2
    memory.max) and the NVIDIA GPUs (`nvidia-smi --query-gpu=...` when
    that program is in PATH), unless overridden (--gpus 0,1,
    --resources cpus=4,memory=16G,gpus=2).  The agent reports them in
    Register; the coordinator places tasks where they fit.

    Per attempt: the GPUs it asked for, lowest free indices first, named
    in CUDA_VISIBLE_DEVICES and NVIDIA_VISIBLE_DEVICES; and, when the
    agent's own cgroup v2 group is delegated to it (writable, with the
    memory controller), a child group holding memory.max,
    memory.swap.max and cpu.max, whose oom_kill count says whether the
    OOM killer ended the attempt.  Failing that, a writable group in the
    cgroup v1 memory hierarchy gets the same for memory only
    (memory.limit_in_bytes, memory.oom_control).  Without either,
    attempts are not confined, and the agent says so once at start.
*/
#ifndef QN_RESOURCES_H_INCLUDED
#define QN_RESOURCES_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "qanat.pb-c.h"
#include "qn_backend.h"

//  What one attempt got: the text of its GPU indices ("" = none) and its
//  cgroup's cgroup.procs, open for the child to join (-1 = none).
typedef struct {
    bool gpus_visible;          //  set the two variables (the agent has GPUs)
    char gpus [256];            //  "0,2"
    int cgroup_fd;
} qn_resources_grant_t;

//  Detects, then applies the overrides: gpus "0,1" (indices; "none" or ""
//  for none) and resources "cpus=4,memory=16G,gpus=2" (gpus=N without
//  --gpus means indices 0..N-1).  cgroup_root: where cgroup v2 is mounted
//  (NULL: found in /proc/self/mountinfo), for tests.  NULL with *error_p
//  (malloc'd) for a bad override.
qn_resources_t *
    qn_resources_new (const char *gpus, const char *resources, const char *cgroup_root,
                      char **error_p);

void
    qn_resources_destroy (qn_resources_t **self_p);

uint32_t
    qn_resources_cpus (qn_resources_t *self);
uint64_t
    qn_resources_memory_mb (qn_resources_t *self);
uint32_t
    qn_resources_gpus (qn_resources_t *self);

//  "cgroup" when attempts get a cgroup of their own, else "none: why".
const char *
    qn_resources_confinement (qn_resources_t *self);

//  Fills reg's resources, gpus and confinement with pointers into self
//  (valid while self lives and until the next call).
void
    qn_resources_register (qn_resources_t *self, Qanat__Register *reg);

//  Takes what the attempt key asks (assign: cpus, memory_mb, gpus) into
//  grant.  -1 with the reason in error when it cannot: fewer GPUs free
//  than asked (an earlier attempt still holds them), or its cgroup cannot
//  be made.
int
    qn_resources_attempt_begin (qn_resources_t *self, const qn_attempt_key_t *key,
                                const Qanat__Assign *assign, qn_resources_grant_t *grant,
                                char *error, size_t error_size);

//  The attempt ended: its GPUs are free again, its cgroup removed.
//  Returns true when the OOM killer ended it, with the reason ("out of
//  memory (limit 512 MiB)") in reason.
bool
    qn_resources_attempt_end (qn_resources_t *self, const qn_attempt_key_t *key, char *reason,
                              size_t reason_size);

//  Parses a memory amount: 512 (MiB), 512M, 16G, 1Gi, 2T.  -1 if bad.
int
    qn_resources_parse_memory (const char *text, uint64_t *mb);

#endif
