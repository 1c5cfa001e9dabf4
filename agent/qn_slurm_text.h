/*  qn_slurm_text - what the Slurm backend reads from Slurm's commands, and
    how an attempt ended: sbatch's job id, the backend's cursor, end
    states, `scontrol show job -o`, `squeue -o "%i|%T"`.  Pure functions,
    no I/O: Slurm's output is hostile text like any other input (only
    printable ASCII is kept, fields are bounded).
*/
#ifndef QN_SLURM_TEXT_H_INCLUDED
#define QN_SLURM_TEXT_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "qanat.pb-c.h"

#define QN_SLURM_JOB_ID_DIGITS  20
#define QN_SLURM_STATE_MAX      32
#define QN_SLURM_REASON_MAX     200

//  What scontrol says of an ended job
typedef struct {
    char state [QN_SLURM_STATE_MAX + 1];
    char reason [QN_SLURM_REASON_MAX + 1];
    int exit_code;
    int exit_signal;
} qn_slurm_job_t;

//  How an attempt ended, as the agent reports it
typedef struct {
    int exit_code;
    int signal;
    Qanat__EndKind kind;
    char reason [600];
} qn_slurm_outcome_t;

//  A job id as Slurm prints it: digits, perhaps ";cluster" after them
//  (sbatch --parsable), surrounded by blanks.  Copies the digits into
//  buffer (QN_SLURM_JOB_ID_DIGITS + 1 bytes).  -1 if text is anything else.
int
    qn_slurm_parse_job_id (const char *text, size_t size, char *buffer);

//  "<stdout>:<stderr>:<metrics>", or "" for all zero.  -1 if malformed.
int
    qn_slurm_parse_cursor (const char *text, int64_t offsets [3]);

//  True for a state a job does not leave
bool
    qn_slurm_state_ended (const char *state);

//  Reads the line of `scontrol show job -o` output for job_id.  Returns
//  0 with info filled, -1 when no line of text is about that job or its
//  state is missing.
int
    qn_slurm_parse_show_job (const char *text, size_t size, const char *job_id,
                             qn_slurm_job_t *info);

//  Calls fn for each "<id>|<state>" line of squeue output (-o "%i|%T")
//  whose id is a plain job id and whose state is a plausible word.
typedef void (qn_slurm_squeue_fn) (const char *job_id, const char *state, void *arg);
void
    qn_slurm_parse_squeue (const char *text, size_t size, qn_slurm_squeue_fn *fn, void *arg);

//  How an attempt ended, from Slurm's end state (or gone), and our stop
//  reason if we stopped it.
void
    qn_slurm_outcome (const char *job_id, bool gone, const qn_slurm_job_t *info,
                      const char *stop_reason, Qanat__EndKind stop_kind,
                      qn_slurm_outcome_t *outcome);

#endif
