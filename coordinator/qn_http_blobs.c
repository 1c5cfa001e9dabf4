/*  qn_http_blobs - PUT /api/v1/blobs/{sha256}: a raw body (a file of a
    workflow's code, a manifest) fed to the engine while it arrives, as
    the PutBlob pieces of at most 1 MiB that `qanat put` sends, so that
    no body is held whole in memory and the store is touched only by the
    engine.

    One of the files of the qn_http class.

    The engine verifies the whole content against the hash before it
    keeps it; a body that does not hash to its name is refused (400) and
    nothing is stored.  What the coordinator already holds is not fed
    again: a blob held whole is answered 200 at once (the body is read
    and dropped), a partial one left by an upload cut short is resumed
    where it stopped.  Errors are answered once the body is in (a
    response queued mid-upload would leave the client writing to a
    closed door), except those known before a byte is read.
*/
#include "qn_http_internal.h"
#include "qn_json.h"
#include "qn_blobstore.h"

struct _qn_http_upload_t {
    qn_http_call_t call;            //  the engine calls' server, connection, credential
    char *credential;               //  owned copy of call.credential
    char hash [QN_BLOB_HASH_HEX + 1];
    uint64_t total;                 //  the body's size (Content-Length)
    uint64_t received;              //  bytes of the body seen
    uint64_t held;                  //  bytes the engine holds, as it last said
    bool existed;                   //  held whole before this upload
    uint8_t *piece;                 //  bytes waiting, from piece_offset
    size_t piece_size;
    uint64_t piece_offset;
};

json_t *
qn_http_blob_json (const char *hash, uint64_t size)
{
    json_t *json = json_object ();
    json_object_set_new (json, "hash", json_string (hash));
    json_object_set_new (json, "size", json_integer ((json_int_t) size));
    return json;
}

static void
s_fail (qn_http_upload_t *self, unsigned int status, const char *message)
{
    if (self->call.error)
        return;                     //  the first failure is the one told
    self->call.error = qn_json_error (qn_http_error_code (status), message, NULL);
    self->call.error_status = (int) status;
}

//  One PutBlob: data (maybe none) at offset; the engine's answer in held
static int
s_put (qn_http_upload_t *self, uint64_t offset, const uint8_t *data, size_t size)
{
    Qanat__PutBlob put = QANAT__PUT_BLOB__INIT;
    put.hash = self->hash;
    put.offset = offset;
    put.total_size = self->total;
    put.data.data = (uint8_t *) data;
    put.data.len = size;
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.body_case = QANAT__REQUEST__BODY_PUT_BLOB;
    request.put_blob = &put;
    Qanat__Reply *reply = NULL;
    if (qn_http_engine (&self->call, &request, &reply))
        return -1;
    if (reply->body_case != QANAT__REPLY__BODY_BLOB) {
        qanat__reply__free_unpacked (reply, NULL);
        s_fail (self, 503, "unexpected reply from the coordinator");
        return -1;
    }
    self->held = reply->blob->offset;
    qanat__reply__free_unpacked (reply, NULL);
    if (self->held < offset + size && self->held < self->total) {
        char message [200];
        snprintf (message, sizeof message, "the coordinator holds %llu bytes of blob %.12s, "
                  "not %llu: another upload of it is under way; try again",
                  (unsigned long long) self->held, self->hash,
                  (unsigned long long) (offset + size));
        s_fail (self, 409, message);
        return -1;
    }
    return 0;
}

static void
s_flush (qn_http_upload_t *self)
{
    if (self->piece_size && !self->call.error)
        s_put (self, self->piece_offset, self->piece, self->piece_size);
    self->piece_size = 0;
}

//  The engine's word on the blob before the body is read: held whole
//  (of which size), partly, or not at all.  0, or the status answered.
static int
s_probe (qn_http_upload_t *self)
{
    Qanat__GetBlob get = QANAT__GET_BLOB__INIT;
    get.hash = self->hash;
    get.size = 1;
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.body_case = QANAT__REQUEST__BODY_GET_BLOB;
    request.get_blob = &get;
    Qanat__Reply *reply = NULL;
    int status = qn_http_engine (&self->call, &request, &reply);
    if (status == 0) {
        uint64_t size = reply->body_case == QANAT__REPLY__BODY_BLOB? reply->blob->total_size: 0;
        qanat__reply__free_unpacked (reply, NULL);
        if (size != self->total) {
            char message [200];
            snprintf (message, sizeof message, "blob %.12s is held with %llu bytes, not %llu: "
                      "the body is not the content of that hash", self->hash,
                      (unsigned long long) size, (unsigned long long) self->total);
            json_decref (self->call.error);
            self->call.error = NULL;
            s_fail (self, 409, message);
            return 409;
        }
        self->existed = true;
        self->held = size;
        return 0;
    }
    if (status != 404)
        return status;
    json_decref (self->call.error);
    self->call.error = NULL;
    self->call.error_status = 0;
    //  Not held whole: a put of nothing says how much is (an empty blob is
    //  stored by it)
    return s_put (self, 0, NULL, 0) == 0? 0: self->call.error_status;
}

qn_http_upload_t *
qn_http_blobs_begin (qn_http_call_t *call, enum MHD_Result *result_p)
{
    *result_p = MHD_NO;
    const char *length = MHD_lookup_connection_value (call->connection, MHD_HEADER_KIND,
                                                      MHD_HTTP_HEADER_CONTENT_LENGTH);
    const char *chunked = MHD_lookup_connection_value (call->connection, MHD_HEADER_KIND,
                                                       MHD_HTTP_HEADER_TRANSFER_ENCODING);
    uint64_t total = 0;
    if (!length || chunked) {
        *result_p = qn_http_send_error (call->server, call->connection, 411, NULL,
                                        "PUT /blobs wants a Content-Length (no chunked body)",
                                        NULL);
        return NULL;
    }
    if (!qn_http_api_parse_uint (length, &total) || total > QN_HTTP_BLOB_MAX) {
        *result_p = qn_http_send_error (call->server, call->connection, 413, NULL,
                                        "a blob is at most 64 GiB", NULL);
        return NULL;
    }
    qn_http_upload_t *self = (qn_http_upload_t *) calloc (1, sizeof *self);
    if (self) {
        self->call = *call;
        self->credential = strdup (call->credential);
        self->piece = (uint8_t *) malloc (QN_HTTP_BLOB_PIECE);
    }
    if (!self || !self->credential || !self->piece) {
        qn_http_blobs_destroy (&self);
        *result_p = qn_http_send_error (call->server, call->connection, 503, NULL,
                                        "out of memory", NULL);
        return NULL;
    }
    //  The request (decoded, not needed again) stays the caller's
    Qanat__Request empty = QANAT__REQUEST__INIT;
    self->call.request = empty;
    self->call.credential = self->credential;
    self->call.error = NULL;
    self->call.error_status = 0;
    memcpy (self->hash, call->route.name, QN_BLOB_HASH_HEX);      //  checked by the decoder
    self->hash [QN_BLOB_HASH_HEX] = 0;
    self->total = total;
    if (s_probe (self)) {
        //  Refused before a byte of the body: answered now
        *result_p = qn_http_send_call_error (&self->call);
        qn_http_blobs_destroy (&self);
        return NULL;
    }
    *result_p = MHD_YES;
    return self;
}

int
qn_http_blobs_take (qn_http_upload_t *self, const char *data, size_t size)
{
    //  Bytes the engine holds already, and everything after a failure,
    //  are read and dropped
    uint64_t position = self->received;
    self->received += size;
    if (self->call.error || self->existed)
        return 0;
    if (position < self->held) {
        uint64_t skip = self->held - position;
        if (skip >= size)
            return 0;
        data += skip;
        size -= (size_t) skip;
        position = self->held;
    }
    while (size) {
        if (self->piece_size == 0)
            self->piece_offset = position;
        size_t room = QN_HTTP_BLOB_PIECE - self->piece_size;
        size_t take = size < room? size: room;
        memcpy (self->piece + self->piece_size, data, take);
        self->piece_size += take;
        data += take;
        size -= take;
        position += take;
        if (self->piece_size == QN_HTTP_BLOB_PIECE)
            s_flush (self);
        if (self->call.error)
            return 0;
    }
    return 0;
}

enum MHD_Result
qn_http_blobs_finish (qn_http_upload_t *self)
{
    s_flush (self);
    if (!self->call.error && self->received != self->total)
        s_fail (self, 400, "the body is not as long as its Content-Length");
    if (!self->call.error && self->held != self->total)
        s_fail (self, 503, "the coordinator did not take the whole blob");
    if (self->call.error)
        return qn_http_send_call_error (&self->call);
    return qn_http_send_json (self->call.server, self->call.connection,
                              self->existed? 200: 201, qn_http_blob_json (self->hash, self->total));
}

void
qn_http_blobs_destroy (qn_http_upload_t **self_p)
{
    qn_http_upload_t *self = *self_p;
    if (!self)
        return;
    json_decref (self->call.error);
    free (self->credential);
    free (self->piece);
    free (self);
    *self_p = NULL;
}
