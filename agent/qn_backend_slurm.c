/* placeholder */
#include "qn_backend.h"
static void *s_create (zloop_t *loop, const qn_backend_config_t *config,
                       const qn_backend_events_t *events, void *arg) { return NULL; }
const qn_backend_ops_t qn_backend_slurm = { .name = "slurm", .create = s_create };
