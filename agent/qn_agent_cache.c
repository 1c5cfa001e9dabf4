/*  qn_agent_cache - the agent's blob cache and what hangs on it: the
    transfer of blobs, the stager of inputs, the work directories kept,
    the cache's bound.  One of the files of the qn_agent class.
*/
#include "qn_agent_internal.h"
#include "qn_log.h"
#include "qn_s3.h"
#include "qn_blobstore.h"
#include "qn_transfer.h"
#include "qn_stager.h"
#include "qn_sweeper.h"
#include <inttypes.h>

//  Keeps the blob cache under its bound once inputs are in place
void
qn_agent_cache_trim (qn_agent_t *self)
{
    if (!self->cache_max)
        return;
    size_t count = 0;
    uint64_t freed = qn_blobstore_trim (self->cache, self->cache_max, self->cache_keep_recent_s,
                                        &count);
    if (count)
        qn_log (QN_LOG_INFO, "agent", "blob cache: removed %zu least recently used blob(s), "
                      "%" PRIu64 " bytes", count, freed);
}

//  The blob cache, the transfers and the stager on it, the sweeper of
//  old work directories, the artifact store
bool
qn_agent_cache_open (qn_agent_t *self, const qn_agent_config_t *config,
                     qn_transfer_send_fn *send)
{
    bool ok = true;
    char blob_dir [4096];
    snprintf (blob_dir, sizeof blob_dir, "%s/blobs", self->data_dir);
    self->cache = qn_blobstore_new (blob_dir);
    self->transfer = self->cache? qn_transfer_new (self->cache, send, self): NULL;
    self->stager = self->transfer? qn_stager_new (self->loop, self->transfer, self->cache,
                                                  self->data_dir): NULL;
    if (!self->stager) {
        qn_log (QN_LOG_ERROR, "agent", "cannot open the blob cache in %s", blob_dir);
        ok = false;
    }
    self->cache_max = config->cache_max;
    self->keep_workdirs = config->keep_workdirs < 0? 100: (size_t) config->keep_workdirs;
    self->kept_dirs = zlistx_new ();
    self->sweeper = qn_sweeper_new ();
    if (self->kept_dirs)
        zlistx_set_destructor (self->kept_dirs, (zlistx_destructor_fn *) zstr_free);
    self->cache_keep_recent_s = config->cache_keep_recent_s < 0? 3600
                              : config->cache_keep_recent_s;
    if (self->cache) {
        //  Downloads of attempts long gone are no resume points
        qn_blobstore_sweep_partials (self->cache, 24 * 3600);
        qn_agent_cache_trim (self);
    }
    char store_error [256] = "";
    if (ok && config->artifact_store
    &&  qn_s3_store_url_parse (config->artifact_store, &self->artifact_store, store_error,
                               sizeof store_error) == -1) {
        qn_log (QN_LOG_ERROR, "agent", "artifact store: %s", store_error);
        ok = false;
    }
    return ok;
}
