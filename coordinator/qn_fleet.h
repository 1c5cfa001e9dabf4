/*  qn_fleet - the agents the engine knows: their records (in the engine's
    agents table by name, for the engine's lifetime), the connection each
    is on now (the by_route table), its credit and the set of agents with
    credit that dispatch walks, its state (connected, suspect, lost,
    disconnected), and the liveness sweep that declares silent agents
    suspect after their grace and lost after their deadline, returning
    the attempts of the lost ones for the caller to fail.

    Each call runs on the engine's loop, inside a turn; a changed agent
    record is written into the turn's open transaction.

    One of the files of the qn_coordinator class: it shares the engine's
    records (qn_engine.h), so the include checker counts it with
    qn_coordinator.
*/
#ifndef QN_FLEET_H_INCLUDED
#define QN_FLEET_H_INCLUDED

#include "qn_engine.h"

//  For the engine's agents table (it owns the records).
void
    qn_fleet_agent_destructor (void **item);

//  Loads the agents the store knows: disconnected, with a full lost
//  deadline from now to come back.
void
    qn_fleet_load (qn_coordinator_t *self);

//  The agent named name, made (with the engine's timer profile, as if
//  seen now) when it is not known yet: an agent a running attempt of the
//  store names waits for its deadline like any other.
agent_t *
    qn_fleet_expect (qn_coordinator_t *self, const char *name);

//  Every agent's set of running attempts emptied (before a reload).
void
    qn_fleet_forget_attempts (qn_coordinator_t *self);

//  The agent name, known or new, on the connection routing_id from now:
//  its previous connection, and whoever else was on this one, are
//  disconnected.  Seen now.
agent_t *
    qn_fleet_connect (qn_coordinator_t *self, const char *name, zframe_t *routing_id);

//  The agent on the connection routing_id, or NULL (not registered).
agent_t *
    qn_fleet_by_route (qn_coordinator_t *self, zframe_t *routing_id);

//  The agent leaves its connection and the agents with credit.
void
    qn_fleet_disconnect (qn_coordinator_t *self, agent_t *agent);

//  An agent's credit, and its place in the set of agents with credit.
void
    qn_fleet_set_credit (qn_coordinator_t *self, agent_t *agent, uint32_t credit);

//  True when agent offers what task selects (labels, backend).
bool
    qn_fleet_matches (agent_t *agent, const qn_task_t *task);

//  What task asks of an agent's machine when it runs on backend there:
//  its resources on the local backend, nothing on one that fronts a
//  cluster (whose engine places the work itself).
qn_res_t
    qn_fleet_need (const qn_task_t *task, const char *backend);

//  An attempt that is no longer current but may still run on agent (it
//  was canceled, or the agent reports it after it was retried elsewhere):
//  what it asks (need) stays counted as used there until its Finished
//  comes (qn_fleet_release), the agent disconnects or registers again
//  (qn_fleet_release_all), so that nothing is placed on resources a
//  process being killed still holds.  Nothing for a disconnected agent.
void
    qn_fleet_hold (agent_t *agent, uint64_t run_id, uint32_t task, uint32_t attempt,
                   const qn_res_t *need);
void
    qn_fleet_release (agent_t *agent, uint64_t run_id, uint32_t task, uint32_t attempt);
void
    qn_fleet_release_all (agent_t *agent);

//  Takes what the agent reports it has from its Register (resources,
//  GPUs, confinement) and adds the label gpu=<model> of its first GPU,
//  unless a label gpu is already there (the granted or given one wins,
//  and a different detected model is logged).
void
    qn_fleet_set_resources (agent_t *agent, const Qanat__Register *reg);

//  Copies the agent's placement record into its AgentInfo (total, used).
void
    qn_fleet_show_resources (agent_t *agent);

//  The label value of a GPU's model name: "NVIDIA A100-SXM4-80GB" ->
//  "a100", "NVIDIA GeForce RTX 4090" -> "rtx-4090"; into text.
char *
    qn_fleet_gpu_label (const char *model, char *text, size_t size);

//  Why an agent that matches a task takes no new work, or NULL.
const char *
    qn_fleet_unavailable (agent_t *agent, int64_t now);

//  Copies the agent's state and draining flags into its record.
void
    qn_fleet_update_state (agent_t *agent, int64_t now);

//  Writes the agent's record into the turn's transaction.
void
    qn_fleet_persist (qn_coordinator_t *self, agent_t *agent);

//  Revocation, the engine's part (the key has left the allow-list): the
//  agent is disconnected at once and the attempts it ran end as "agent
//  revoked".  Returns the agent, or NULL if none of that name is known.
agent_t *
    qn_fleet_revoke (qn_coordinator_t *self, const char *name);

//  Forgets agent name (not connected: the caller checks): the attempts it
//  ran end as "agent removed" and retry by policy, and its record leaves
//  the engine and the store.  False if no agent of that name is known.
bool
    qn_fleet_remove (qn_coordinator_t *self, const char *name);

//  Gives agent its labels from now on (copies them); the caller persists
//  it (qn_fleet_persist), and dispatch places tasks by them at the end of
//  the turn.
void
    qn_fleet_relabel (agent_t *agent, Qanat__Label **labels, size_t count);

//  The liveness sweep (every timer tick): an agent silent past its grace
//  is suspect (no new work), past its deadline lost (disconnected).
//  Returns the attempts (ready_t) of the agents gone past their deadline,
//  for qn_fleet_fail_attempts; the list is the caller's.
zlistx_t *
    qn_fleet_sweep (qn_coordinator_t *self, int64_t now);

//  The attempts of refs (ready_t), whose agent is gone (lost or revoked),
//  end as agent_lost for why, and retry by policy.  Destroys refs.
void
    qn_fleet_fail_attempts (qn_coordinator_t *self, zlistx_t **refs_p, const char *why);

#endif
