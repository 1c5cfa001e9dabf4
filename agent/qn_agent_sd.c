/*  qn_agent_sd - what the agent tells systemd from its loop: that the
    loop turns (WATCHDOG=1) and, every ten seconds, a one-line status.
    See qn_sdnotify.h. */
#include "qn_agent_internal.h"

int
qn_agent_sd_tick (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    qn_agent_t *self = (qn_agent_t *) arg;
    static unsigned turns;
    qn_sdnotify_watchdog ();
    if (turns++ % 10 == 0)
        qn_sdnotify_status ("%zu attempts running, %zu held%s",
                            qn_attempt_table_running (self->attempts),
                            zhashx_size (self->attempts), self->draining? ", draining": "");
    return 0;
}
