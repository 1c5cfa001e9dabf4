/*  qn_slurm_text - what the Slurm backend reads from Slurm's commands.
    See qn_slurm_text.h.
*/
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "qn_slurm_text.h"
#include "qn_backend.h"

//  A job id as Slurm prints it: digits, perhaps ";cluster" after them
//  (sbatch --parsable), surrounded by blanks.  Copies the digits into
//  buffer (QN_SLURM_JOB_ID_DIGITS + 1 bytes).  -1 if text is anything else.
int
qn_slurm_parse_job_id (const char *text, size_t size, char *buffer)
{
    size_t at = 0;
    while (at < size && isspace ((unsigned char) text [at]))
        at++;
    size_t start = at;
    while (at < size && isdigit ((unsigned char) text [at]))
        at++;
    size_t digits = at - start;
    if (digits == 0 || digits > QN_SLURM_JOB_ID_DIGITS || text [start] == '0')
        return -1;
    if (at < size && text [at] == ';') {
        //  the cluster name: one token
        at++;
        if (at == size || isspace ((unsigned char) text [at]))
            return -1;
        while (at < size && (isalnum ((unsigned char) text [at]) || text [at] == '_'
                             || text [at] == '-' || text [at] == '.'))
            at++;
    }
    while (at < size && isspace ((unsigned char) text [at]))
        at++;
    if (at != size)
        return -1;
    memcpy (buffer, text + start, digits);
    buffer [digits] = '\0';
    return 0;
}

//  "<stdout>:<stderr>:<metrics>", or "" for all zero.  -1 if malformed.
int
qn_slurm_parse_cursor (const char *text, int64_t offsets [3])
{
    offsets [0] = offsets [1] = offsets [2] = 0;
    if (!text || !*text)
        return 0;
    const char *cur = text;
    for (int i = 0; i < 3; i++) {
        if (!isdigit ((unsigned char) *cur))
            return -1;
        int64_t value = 0;
        while (isdigit ((unsigned char) *cur)) {
            if (value > (INT64_MAX - 9) / 10)
                return -1;
            value = value * 10 + (*cur - '0');
            cur++;
        }
        offsets [i] = value;
        if (i < 2 && *cur++ != ':')
            return -1;
    }
    return *cur? -1: 0;
}

bool
qn_slurm_state_ended (const char *state)
{
    static const char *const ended [] = {
        "BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL",
        "OUT_OF_MEMORY", "PREEMPTED", "TIMEOUT", "SPECIAL_EXIT", "REVOKED", NULL
    };
    for (size_t i = 0; ended [i]; i++)
        if (streq (state, ended [i]))
            return true;
    return false;
}

//  Copies a field value into buffer (size bytes), keeping printable
//  ASCII only.  An empty value or "(null)" gives "".
static void
s_copy_field (const char *data, size_t size, char *buffer, size_t buffer_size)
{
    size_t at = 0;
    for (size_t i = 0; i < size && at + 1 < buffer_size; i++)
        buffer [at++] = data [i] > 0x20 && data [i] < 0x7f? data [i]: '?';
    buffer [at] = '\0';
    if (streq (buffer, "(null)"))
        buffer [0] = '\0';
}

//  Finds " key=" (or key= at the start) in the first size bytes of line
//  and returns its value up to the next blank; NULL if absent.  The first
//  occurrence wins: fields we read come before the free-text ones
//  (Comment, Command, StdOut) in scontrol's order.
static const char *
s_field (const char *line, size_t size, const char *key, size_t *value_size)
{
    size_t key_len = strlen (key);
    for (size_t at = 0; at + key_len + 1 <= size; at++) {
        if (at > 0 && line [at - 1] != ' ')
            continue;
        if (strncmp (line + at, key, key_len) != 0 || line [at + key_len] != '=')
            continue;
        const char *value = line + at + key_len + 1;
        size_t end = at + key_len + 1;
        while (end < size && line [end] != ' ' && line [end] != '\n')
            end++;
        *value_size = (size_t) (line + end - value);
        return value;
    }
    return NULL;
}


//  Reads the line of `scontrol show job -o` output for job_id.  Returns
//  0 with info filled, -1 when no line of text is about that job or its
//  state is missing.
int
qn_slurm_parse_show_job (const char *text, size_t size, const char *job_id,
                         qn_slurm_job_t *info)
{
    memset (info, 0, sizeof (*info));
    size_t at = 0;
    while (at < size) {
        const char *line = text + at;
        const char *newline = (const char *) memchr (line, '\n', size - at);
        size_t line_size = newline? (size_t) (newline - line): size - at;
        at += line_size + 1;
        size_t value_size;
        const char *value = s_field (line, line_size, "JobId", &value_size);
        if (!value || value != line + 6 || value_size != strlen (job_id)
        ||  strncmp (value, job_id, value_size) != 0)
            continue;
        value = s_field (line, line_size, "JobState", &value_size);
        if (!value || value_size == 0 || value_size > QN_SLURM_STATE_MAX)
            return -1;
        s_copy_field (value, value_size, info->state, sizeof (info->state));
        value = s_field (line, line_size, "Reason", &value_size);
        if (value)
            s_copy_field (value, value_size, info->reason, sizeof (info->reason));
        if (streq (info->reason, "None"))
            info->reason [0] = '\0';
        value = s_field (line, line_size, "ExitCode", &value_size);
        if (value) {
            char code [32];
            s_copy_field (value, value_size, code, sizeof (code));
            int exit_code = 0, exit_signal = 0;
            if (sscanf (code, "%d:%d", &exit_code, &exit_signal) == 2) {
                info->exit_code = exit_code >= 0 && exit_code <= 255? exit_code: 1;
                info->exit_signal = exit_signal;
            }
        }
        return 0;
    }
    return -1;
}

//  Calls fn for each "<id>|<state>" line of squeue output (-o "%i|%T")
//  whose id is a plain job id and whose state is a plausible word.

void
qn_slurm_parse_squeue (const char *text, size_t size, qn_slurm_squeue_fn *fn, void *arg)
{
    size_t at = 0;
    while (at < size) {
        const char *line = text + at;
        const char *newline = (const char *) memchr (line, '\n', size - at);
        size_t line_size = newline? (size_t) (newline - line): size - at;
        at += line_size + 1;
        const char *bar = (const char *) memchr (line, '|', line_size);
        if (!bar)
            continue;
        char job_id [QN_SLURM_JOB_ID_DIGITS + 1];
        if (qn_slurm_parse_job_id (line, (size_t) (bar - line), job_id) == -1)
            continue;
        size_t state_size = line_size - (size_t) (bar + 1 - line);
        while (state_size > 0 && isspace ((unsigned char) bar [state_size]))
            state_size--;
        if (state_size == 0 || state_size > QN_SLURM_STATE_MAX)
            continue;
        char state [QN_SLURM_STATE_MAX + 1];
        bool word = true;
        for (size_t i = 0; i < state_size; i++) {
            char c = bar [1 + i];
            if (!((c >= 'A' && c <= 'Z') || c == '_'))
                word = false;
            state [i] = c;
        }
        state [state_size] = '\0';
        if (word)
            fn (job_id, state, arg);
    }
}


//  How an attempt ended, from Slurm's end state (or gone), and our stop
//  reason if we stopped it.
void
qn_slurm_outcome (const char *job_id, bool gone, const qn_slurm_job_t *info,
                  const char *stop_reason, Qanat__EndKind stop_kind, qn_slurm_outcome_t *outcome)
{
    memset (outcome, 0, sizeof (*outcome));
    outcome->kind = QANAT__END_KIND__END_EXIT;
    if (gone) {
        outcome->exit_code = -1;
        outcome->kind = QANAT__END_KIND__END_LOST;
        if (stop_reason) {
            snprintf (outcome->reason, sizeof (outcome->reason), "%s", stop_reason);
            outcome->kind = stop_kind;
        }
        else
            snprintf (outcome->reason, sizeof (outcome->reason), "slurm job %s is gone", job_id);
        return;
    }
    //  Signals as Slurm reports them: a real one ends the script
    int sig = info->exit_signal > 0 && info->exit_signal < 65? info->exit_signal: 0;
    outcome->signal = sig;
    outcome->exit_code = sig? 128 + sig: info->exit_code;
    const char *state = info->state;
    char detail [QN_SLURM_STATE_MAX + QN_SLURM_REASON_MAX + 64];
    if (*info->reason)
        snprintf (detail, sizeof (detail), "slurm job %s: %s (%s)", job_id, state, info->reason);
    else
        snprintf (detail, sizeof (detail), "slurm job %s: %s", job_id, state);

    if (stop_reason) {
        snprintf (outcome->reason, sizeof (outcome->reason), "%s", stop_reason);
        outcome->kind = stop_kind;
    }
    else
    if (streq (state, "COMPLETED")) {
        if (outcome->exit_code != 0)
            snprintf (outcome->reason, sizeof (outcome->reason), "exit code %d",
                      outcome->exit_code);
    }
    else
    if (streq (state, "FAILED")) {
        char name [64];
        if (sig) {
            qn_backend_signal_name (sig, name, sizeof (name));
            snprintf (outcome->reason, sizeof (outcome->reason), "killed by signal %s", name);
        }
        else
        if (outcome->exit_code != 0)
            snprintf (outcome->reason, sizeof (outcome->reason), "exit code %d",
                      outcome->exit_code);
        else
            snprintf (outcome->reason, sizeof (outcome->reason), "%s", detail);
    }
    else {
        snprintf (outcome->reason, sizeof (outcome->reason), "%s", detail);
        if (streq (state, "TIMEOUT"))
            outcome->kind = QANAT__END_KIND__END_TIMEOUT;
        else
        if (streq (state, "CANCELLED"))
            outcome->kind = QANAT__END_KIND__END_CANCELED;
        else
        if (streq (state, "NODE_FAIL") || streq (state, "PREEMPTED")
        ||  streq (state, "BOOT_FAIL") || streq (state, "SPECIAL_EXIT")
        ||  streq (state, "REVOKED"))
            outcome->kind = QANAT__END_KIND__END_LOST;
    }
    //  Only a job that completed may look like a success
    if (!streq (state, "COMPLETED") && outcome->exit_code == 0 && outcome->signal == 0)
        outcome->exit_code = -1;
}
