/*  qn_api_backup - the Backup request on the engine's side.  See
    qn_api_backup.h.
*/
#include "qn_engine.h"
#include "qn_log.h"
#include "qn_backup.h"
#include "qn_api_backup.h"

//  The request waiting for its reply: how to answer it in a later turn
struct _qn_api_backup_t {
    qn_backup_t *backup;
    qn_api_reply_fn *reply;
    zframe_t *sink;                 //  a copy of the transport's routing frame
    uint64_t request_id;
    char *caller;
};

void
qn_api_backup_start (qn_api_call_t *call, Qanat__Request *request)
{
    qn_coordinator_t *self = call->engine;
    const char *dir = request->backup->dir;
    if (self->backup) {
        char *message = zsys_sprintf ("a backup into %s is still running",
                                      qn_backup_dir (self->backup->backup));
        qn_api_error (call, request->id, QANAT__ERROR_CODE__ERROR_CONFLICT, message);
        zstr_free (&message);
        return;
    }
    char *error = NULL;
    qn_backup_t *backup = qn_backup_start (self->store, self->data_dir, dir, &error);
    if (!backup) {
        qn_api_error (call, request->id, strstr (error, " exists")
                      ? QANAT__ERROR_CODE__ERROR_CONFLICT: QANAT__ERROR_CODE__ERROR_BAD_REQUEST,
                      error);
        free (error);
        return;
    }
    qn_api_backup_t *pending = (qn_api_backup_t *) zmalloc (sizeof (qn_api_backup_t));
    pending->backup = backup;
    pending->reply = call->reply;
    pending->sink = call->sink? zframe_dup ((zframe_t *) call->sink): NULL;
    pending->request_id = request->id;
    pending->caller = strdup (qn_api_caller (call));
    self->backup = pending;
    qn_log (QN_LOG_INFO, "backup", "%s started a backup into %s", pending->caller,
            qn_backup_dir (backup));
}

void
qn_api_backup_poll (qn_coordinator_t *self)
{
    qn_api_backup_t *pending = self->backup;
    if (!pending || !qn_backup_finished (pending->backup))
        return;
    qn_api_call_t call = { self, NULL, pending->reply, pending->sink };
    qn_backup_t *backup = pending->backup;
    const char *error = qn_backup_error (backup);
    if (error) {
        qn_log (QN_LOG_ERROR, "backup", "backup into %s failed: %s", qn_backup_dir (backup), error);
        qn_api_error (&call, pending->request_id, QANAT__ERROR_CODE__ERROR_UNAVAILABLE, error);
    }
    else {
        qn_log (QN_LOG_INFO, "backup", "backup into %s done: %" PRIu64 " bytes in %" PRIu64
                " ms", qn_backup_dir (backup), qn_backup_bytes (backup),
                qn_backup_elapsed_ms (backup));
        Qanat__BackupDone done = QANAT__BACKUP_DONE__INIT;
        done.dir = (char *) qn_backup_dir (backup);
        done.manifest = (char *) qn_backup_manifest (backup);
        done.bytes = qn_backup_bytes (backup);
        done.elapsed_ms = qn_backup_elapsed_ms (backup);
        Qanat__Reply reply = QANAT__REPLY__INIT;
        reply.id = pending->request_id;
        reply.body_case = QANAT__REPLY__BODY_BACKUP_DONE;
        reply.backup_done = &done;
        pending->reply (&call, &reply);
    }
    qn_api_backup_destroy (&self->backup);
}

void
qn_api_backup_destroy (qn_api_backup_t **self_p)
{
    qn_api_backup_t *self = *self_p;
    if (!self)
        return;
    qn_backup_destroy (&self->backup);
    zframe_destroy (&self->sink);
    free (self->caller);
    free (self);
    *self_p = NULL;
}
