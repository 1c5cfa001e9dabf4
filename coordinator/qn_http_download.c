/*  qn_http_download - downloads: a task's output (a file with ETag and
    byte ranges, a directory as a tar stream, a value as text) and a
    run's logs as one text file.

    One of the files of the qn_http class.

    Blobs come from the engine a MiB at a time (GetBlob), as the response
    is written, so a download of any size holds one piece in memory.
    The reader runs on its connection's own thread, with its own bridge.
*/
#include "qn_http_internal.h"
#include "qn_json.h"
#include "qn_tar.h"
#include "qn_tree.h"

//  A download in progress: a list of parts, each a tar header, a range
//  of a blob, or zero bytes (tar padding and trailer)
typedef enum { PART_HEADER, PART_BLOB, PART_ZERO } s_part_kind_t;

typedef struct {
    qn_http_t *server;
    char *credential;
    qn_http_bridge_t *bridge;
    //  One file: hash, [first, first + length)
    char hash [QN_BLOB_HASH_HEX + 1];
    uint64_t first;
    uint64_t length;
    //  A directory: its tree, streamed entry by entry
    qn_tree_t *tree;
    char *prefix;                   //  tar paths: prefix/entry
    int64_t mtime_s;
    size_t entry;                   //  current entry
    s_part_kind_t part;
    uint64_t part_done;             //  bytes of the current part written
    uint8_t header [QN_TAR_PAX_MAX + QN_TAR_BLOCK];  //  pax record (long paths) and header
    size_t header_size;
    //  The piece of blob in hand
    uint8_t *piece;
    uint64_t piece_offset;
    size_t piece_size;
    //  Logs: ReadLogs pages as text
    Qanat__Request logs;
    bool logs_prefix;               //  lines of several tasks: "task: " before each
    char *text;
    size_t text_size;
    size_t text_sent;
    bool text_done;
} s_download_t;

static s_download_t *
s_download_new (qn_http_call_t *call)
{
    s_download_t *self = (s_download_t *) calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->server = call->server;
    self->credential = strdup (call->credential);
    self->bridge = qn_http_bridge_new (call->server->api_endpoint);
    if (!self->credential || !self->bridge) {
        free (self->credential);
        qn_http_bridge_destroy (&self->bridge);
        free (self);
        return NULL;
    }
    return self;
}

static void
s_download_free (void *cls)
{
    s_download_t *self = (s_download_t *) cls;
    if (!self)
        return;
    qn_http_bridge_destroy (&self->bridge);
    qn_tree_destroy (&self->tree);
    qn_http_api_request_reset (&self->logs);
    free (self->credential);
    free (self->prefix);
    free (self->piece);
    free (self->text);
    free (self);
}

//  Reads a piece of hash holding offset into self->piece: 0 or -1
static int
s_fetch_piece (s_download_t *self, const char *hash, uint64_t offset, uint64_t want)
{
    Qanat__GetBlob get = QANAT__GET_BLOB__INIT;
    get.hash = (char *) hash;
    get.offset = offset;
    get.size = (uint32_t) (want > QN_HTTP_BLOB_PIECE? QN_HTTP_BLOB_PIECE: want);
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.body_case = QANAT__REQUEST__BODY_GET_BLOB;
    request.get_blob = &get;
    Qanat__Reply *reply = NULL;
    char *error = NULL;
    int rc = qn_http_bridge_call (self->bridge, self->credential, &request, &reply,
                                  self->server->call_timeout_ms, &error);
    free (error);
    if (rc != 0)
        return -1;
    rc = -1;
    if (reply->body_case == QANAT__REPLY__BODY_BLOB && reply->blob->offset == offset
    &&  reply->blob->data.len > 0 && reply->blob->data.len <= QN_HTTP_BLOB_PIECE) {
        uint8_t *piece = (uint8_t *) realloc (self->piece, reply->blob->data.len);
        if (piece) {
            memcpy (piece, reply->blob->data.data, reply->blob->data.len);
            self->piece = piece;
            self->piece_offset = offset;
            self->piece_size = reply->blob->data.len;
            rc = 0;
        }
    }
    qanat__reply__free_unpacked (reply, NULL);
    return rc;
}

//  Copies up to max bytes of hash at offset (remaining bytes left in
//  the part) into buffer; the count, or -1
static ssize_t
s_copy_blob (s_download_t *self, const char *hash, uint64_t offset, uint64_t remaining,
             char *buffer, size_t max)
{
    if (!self->piece || offset < self->piece_offset
    ||  offset >= self->piece_offset + self->piece_size
    ||  strcmp (hash, self->hash) != 0) {
        if (s_fetch_piece (self, hash, offset, remaining) != 0)
            return -1;
        snprintf (self->hash, sizeof self->hash, "%s", hash);
    }
    uint64_t available = self->piece_offset + self->piece_size - offset;
    size_t size = (size_t) (available < remaining? available: remaining);
    if (size > max)
        size = max;
    memcpy (buffer, self->piece + (offset - self->piece_offset), size);
    return (ssize_t) size;
}

static ssize_t
s_read_file (void *cls, uint64_t pos, char *buffer, size_t max)
{
    s_download_t *self = (s_download_t *) cls;
    if (pos >= self->length)
        return MHD_CONTENT_READER_END_OF_STREAM;
    char hash [QN_BLOB_HASH_HEX + 1];
    snprintf (hash, sizeof hash, "%s", self->hash);
    ssize_t got = s_copy_blob (self, hash, self->first + pos, self->length - pos, buffer, max);
    return got < 0? MHD_CONTENT_READER_END_WITH_ERROR: got;
}

//  The tar headers of an entry, its pax record first when its path is
//  long: their size, or 0 when the path is refused
static size_t
s_entry_header (s_download_t *self, const qn_tree_entry_t *entry, uint8_t *out)
{
    char path [QN_TREE_MAX_PATH + QN_HTTP_NAME_MAX + 2];
    snprintf (path, sizeof path, "%s/%s", self->prefix, entry->path);
    uint8_t block [QN_TAR_BLOCK];
    int rc = qn_tar_header (block, path, entry->size, entry->mode, self->mtime_s, '0');
    if (rc < 0)
        return 0;
    size_t pax = rc == 1? qn_tar_pax_path (out, QN_TAR_PAX_MAX, path): 0;
    if (rc == 1 && pax == 0)
        return 0;
    memcpy (out + pax, block, QN_TAR_BLOCK);
    return pax + QN_TAR_BLOCK;
}

//  The tar stream: per entry its headers, its bytes, its padding; then
//  two zero blocks
static ssize_t
s_read_tar (void *cls, uint64_t pos, char *buffer, size_t max)
{
    (void) pos;
    s_download_t *self = (s_download_t *) cls;
    size_t count = qn_tree_count (self->tree);
    while (true) {
        if (self->entry == count) {
            if (self->part_done >= QN_TAR_END_SIZE)
                return MHD_CONTENT_READER_END_OF_STREAM;
            uint64_t left = QN_TAR_END_SIZE - self->part_done;
            size_t size = left < max? (size_t) left: max;
            memset (buffer, 0, size);
            self->part_done += size;
            return (ssize_t) size;
        }
        const qn_tree_entry_t *entry = qn_tree_entry (self->tree, self->entry);
        if (self->part == PART_HEADER && self->part_done == 0) {
            self->header_size = s_entry_header (self, entry, self->header);
            if (self->header_size == 0)
                return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        uint64_t part_size = self->part == PART_HEADER? self->header_size
                           : self->part == PART_BLOB? entry->size
                           : qn_tar_padding (entry->size);
        if (self->part_done == part_size) {
            self->part = self->part == PART_HEADER? PART_BLOB
                       : self->part == PART_BLOB? PART_ZERO: PART_HEADER;
            if (self->part == PART_HEADER)
                self->entry++;
            self->part_done = 0;
            continue;
        }
        uint64_t left = part_size - self->part_done;
        size_t size = left < max? (size_t) left: max;
        if (self->part == PART_HEADER)
            memcpy (buffer, self->header + self->part_done, size);
        else
        if (self->part == PART_ZERO)
            memset (buffer, 0, size);
        else {
            ssize_t got = s_copy_blob (self, entry->hash, self->part_done, left, buffer, max);
            if (got < 0)
                return MHD_CONTENT_READER_END_WITH_ERROR;
            size = (size_t) got;
        }
        self->part_done += size;
        return (ssize_t) size;
    }
}

//  ---------------------------------------------------------------------
//  Artifacts

//  Finds route's task and output in the run: the output, with the
//  attempt that made it in *attempt_p
static const Qanat__OutputRecord *
s_find_output (const Qanat__RunInfo *run, const qn_http_route_t *route,
               const Qanat__AttemptInfo **attempt_p)
{
    for (size_t t = 0; t < run->n_tasks; t++) {
        const Qanat__TaskInfo *task = run->tasks [t];
        if (!task->name || strcmp (task->name, route->task) != 0
        ||  task->status != QANAT__TASK_STATUS__TASK_SUCCEEDED || task->n_attempts == 0)
            continue;
        const Qanat__AttemptInfo *attempt = task->attempts [task->n_attempts - 1];
        for (size_t o = 0; o < attempt->n_outputs; o++)
            if (attempt->outputs [o]->name && strcmp (attempt->outputs [o]->name, route->name) == 0) {
                *attempt_p = attempt;
                return attempt->outputs [o];
            }
    }
    return NULL;
}

//  Parses "bytes=a-b", "bytes=a-", "bytes=-n" against size: 1 a range,
//  0 ignore the header (several ranges, or not bytes), -1 unsatisfiable
static int
s_parse_range (const char *header, uint64_t size, uint64_t *first_p, uint64_t *length_p)
{
    if (strncmp (header, "bytes=", 6) != 0 || strchr (header, ','))
        return 0;
    const char *spec = header + 6;
    char *end = NULL;
    uint64_t first = 0, last = size? size - 1: 0;
    if (*spec == '-') {
        if (!spec [1] || spec [1] < '0' || spec [1] > '9')
            return 0;
        uint64_t suffix = strtoull (spec + 1, &end, 10);
        if (*end)
            return 0;
        if (suffix == 0 || size == 0)
            return -1;
        first = suffix >= size? 0: size - suffix;
    }
    else {
        if (*spec < '0' || *spec > '9')
            return 0;
        first = strtoull (spec, &end, 10);
        if (*end != '-')
            return 0;
        if (end [1]) {
            if (end [1] < '0' || end [1] > '9')
                return 0;
            char *stop = NULL;
            last = strtoull (end + 1, &stop, 10);
            if (*stop || last < first)
                return 0;
            if (last >= size)
                last = size? size - 1: 0;
        }
        if (first >= size)
            return -1;
    }
    *first_p = first;
    *length_p = last - first + 1;
    return 1;
}

static bool
s_etag_matches (const char *if_none_match, const char *etag)
{
    if (!if_none_match)
        return false;
    if (strcmp (if_none_match, "*") == 0)
        return true;
    //  A list of tags, weak ones included
    return strstr (if_none_match, etag) != NULL;
}

//  Loads and parses a directory's manifest, itself a blob
static qn_tree_t *
s_load_tree (s_download_t *self, const char *hash, uint64_t size)
{
    if (size == 0 || size > QN_TREE_MANIFEST_MAX)
        return NULL;
    char *text = (char *) malloc ((size_t) size);
    uint64_t done = 0;
    while (text && done < size) {
        ssize_t got = s_copy_blob (self, hash, done, size - done, text + done,
                                   (size_t) (size - done));
        if (got <= 0)
            break;
        done += (uint64_t) got;
    }
    char *error = NULL;
    qn_tree_t *tree = text && done == size? qn_tree_parse_manifest (text, (size_t) size, &error)
                                          : NULL;
    free (error);
    free (text);
    return tree;
}

static enum MHD_Result
s_send_value (qn_http_call_t *call, const Qanat__OutputRecord *output)
{
    const char *value = output->value? output->value: "";
    struct MHD_Response *response = MHD_create_response_from_buffer (strlen (value),
                                                                     (void *) value,
                                                                     MHD_RESPMEM_MUST_COPY);
    if (!response)
        return MHD_NO;
    MHD_add_response_header (response, "Content-Type", "text/plain; charset=utf-8");
    return qn_http_queue (call->server, call->connection, 200, response, true);
}

static void
s_disposition (struct MHD_Response *response, const char *name, const char *suffix)
{
    //  Only plain characters in the suggested file name
    char safe [QN_HTTP_NAME_MAX + 16];
    size_t i = 0;
    for (; name [i] && i < QN_HTTP_NAME_MAX - 1; i++)
        safe [i] = isalnum ((unsigned char) name [i]) || strchr ("._-", name [i])? name [i]: '_';
    safe [i] = 0;
    char header [QN_HTTP_NAME_MAX + 64];
    snprintf (header, sizeof header, "attachment; filename=\"%s%s\"", safe, suffix);
    MHD_add_response_header (response, "Content-Disposition", header);
}

//  A file output, whole or one byte range
static enum MHD_Result
s_send_blob (qn_http_call_t *call, const Qanat__OutputRecord *output, const char *etag)
{
    s_download_t *self = s_download_new (call);
    if (!self || !output->hash || strlen (output->hash) != QN_BLOB_HASH_HEX) {
        s_download_free (self);
        return qn_http_send_error (call->server, call->connection, 503, NULL, "out of memory",
                                   NULL);
    }
    snprintf (self->hash, sizeof self->hash, "%s", output->hash);
    self->length = output->size;
    unsigned int status = 200;
    char content_range [96] = "";
    const char *range = MHD_lookup_connection_value (call->connection, MHD_HEADER_KIND, "Range");
    int ranged = range? s_parse_range (range, output->size, &self->first, &self->length): 0;
    if (ranged < 0) {
        s_download_free (self);
        struct MHD_Response *response =
            MHD_create_response_from_buffer (0, NULL, MHD_RESPMEM_PERSISTENT);
        snprintf (content_range, sizeof content_range, "bytes */%llu",
                  (unsigned long long) output->size);
        MHD_add_response_header (response, "Content-Range", content_range);
        return qn_http_queue (call->server, call->connection, 416, response, true);
    }
    if (ranged > 0) {
        status = 206;
        snprintf (content_range, sizeof content_range, "bytes %llu-%llu/%llu",
                  (unsigned long long) self->first,
                  (unsigned long long) (self->first + self->length - 1),
                  (unsigned long long) output->size);
    }
    struct MHD_Response *response = MHD_create_response_from_callback (
        self->length, 64 * 1024, s_read_file, self, s_download_free);
    if (!response) {
        s_download_free (self);
        return MHD_NO;
    }
    MHD_add_response_header (response, "Content-Type", "application/octet-stream");
    MHD_add_response_header (response, "ETag", etag);
    MHD_add_response_header (response, "Accept-Ranges", "bytes");
    if (*content_range)
        MHD_add_response_header (response, "Content-Range", content_range);
    s_disposition (response, output->name, "");
    return qn_http_queue (call->server, call->connection, status, response, true);
}

//  A directory output as a tar stream of its files
static enum MHD_Result
s_send_tree (qn_http_call_t *call, const Qanat__OutputRecord *output, int64_t mtime_s,
             const char *etag)
{
    s_download_t *self = s_download_new (call);
    if (!self)
        return MHD_NO;
    self->tree = output->hash? s_load_tree (self, output->hash, output->size): NULL;
    self->prefix = strdup (output->name? output->name: "output");
    if (!self->tree || !self->prefix) {
        s_download_free (self);
        return qn_http_send_error (call->server, call->connection, 404, NULL,
                                   "the directory's manifest cannot be read", NULL);
    }
    self->mtime_s = mtime_s;
    self->entry = 0;
    self->part = PART_HEADER;
    //  The length is known before the first byte: every header is made
    //  once here (they are small) and again as the stream reaches it
    uint64_t total = QN_TAR_END_SIZE;
    for (size_t i = 0; i < qn_tree_count (self->tree); i++) {
        const qn_tree_entry_t *entry = qn_tree_entry (self->tree, i);
        size_t header = s_entry_header (self, entry, self->header);
        if (header == 0) {
            s_download_free (self);
            return qn_http_send_error (call->server, call->connection, 409, NULL,
                                       "a path in this directory cannot be put in a tar file",
                                       NULL);
        }
        total += header + entry->size + qn_tar_padding (entry->size);
    }
    struct MHD_Response *response = MHD_create_response_from_callback (
        total, 64 * 1024, s_read_tar, self, s_download_free);
    if (!response) {
        s_download_free (self);
        return MHD_NO;
    }
    MHD_add_response_header (response, "Content-Type", "application/x-tar");
    MHD_add_response_header (response, "ETag", etag);
    s_disposition (response, output->name, ".tar");
    return qn_http_queue (call->server, call->connection, 200, response, true);
}

enum MHD_Result
qn_http_download_artifact (qn_http_call_t *call)
{
    Qanat__Reply *reply = NULL;
    if (qn_http_engine (call, &call->request, &reply))
        return qn_http_send_call_error (call);
    const Qanat__AttemptInfo *attempt = NULL;
    const Qanat__OutputRecord *output = reply->body_case == QANAT__REPLY__BODY_RUN
                                      ? s_find_output (reply->run, &call->route, &attempt): NULL;
    enum MHD_Result rc;
    if (!output)
        rc = qn_http_send_error (call->server, call->connection, 404, NULL,
                                 "no such artifact (the task's successful attempt has no "
                                 "output of that name)", NULL);
    else
    if (output->kind == QANAT__ARTIFACT_KIND__ARTIFACT_VALUE)
        rc = s_send_value (call, output);
    else
    if (output->location && *output->location) {
        char *message = zsys_sprintf ("this artifact is stored in S3 at %s", output->location);
        rc = qn_http_send_error (call->server, call->connection, 404, NULL, message, NULL);
        zstr_free (&message);
    }
    else {
        int64_t mtime = attempt->finished_us / 1000000;
        bool dir = output->kind == QANAT__ARTIFACT_KIND__ARTIFACT_DIR;
        char etag [QN_BLOB_HASH_HEX + 3];
        snprintf (etag, sizeof etag, "\"%s\"", output->hash? output->hash: "");
        const char *if_none = MHD_lookup_connection_value (call->connection, MHD_HEADER_KIND,
                                                           "If-None-Match");
        if (s_etag_matches (if_none, etag)) {
            struct MHD_Response *response =
                MHD_create_response_from_buffer (0, NULL, MHD_RESPMEM_PERSISTENT);
            MHD_add_response_header (response, "ETag", etag);
            rc = qn_http_queue (call->server, call->connection, 304, response, true);
        }
        else
            rc = dir? s_send_tree (call, output, mtime, etag): s_send_blob (call, output, etag);
    }
    qanat__reply__free_unpacked (reply, NULL);
    return rc;
}

//  ---------------------------------------------------------------------
//  logs.txt

static int
s_text_append (s_download_t *self, const void *data, size_t size)
{
    char *grown = (char *) realloc (self->text, self->text_size + size + 1);
    if (!grown)
        return -1;
    self->text = grown;
    memcpy (self->text + self->text_size, data, size);
    self->text_size += size;
    return 0;
}

//  The next page of lines as text: 0, or -1 when the engine failed
static int
s_next_page (s_download_t *self)
{
    Qanat__ReadLogs *read = self->logs.read_logs;
    Qanat__Reply *reply = NULL;
    char *error = NULL;
    int rc = qn_http_bridge_call (self->bridge, self->credential, &self->logs, &reply,
                                  self->server->call_timeout_ms, &error);
    free (error);
    if (rc != 0 || reply->body_case != QANAT__REPLY__BODY_LOGS) {
        if (reply)
            qanat__reply__free_unpacked (reply, NULL);
        return -1;
    }
    Qanat__LogPage *page = reply->logs;
    uint64_t before = read->after_seq;
    for (size_t i = 0; i < page->n_lines && rc == 0; i++) {
        const Qanat__LogLine *line = page->lines [i];
        if (line->log_seq <= read->after_seq)
            continue;
        read->after_seq = line->log_seq;
        if (!line->chunk)
            continue;
        const char *data = (const char *) line->chunk->data.data;
        size_t size = line->chunk->data.len;
        //  Each line of the chunk, with its task before it when the file
        //  holds several tasks' lines
        while (rc == 0) {
            const char *newline = size? (const char *) memchr (data, '\n', size): NULL;
            size_t len = newline? (size_t) (newline - data): size;
            if (self->logs_prefix) {
                char prefix [QN_HTTP_NAME_MAX + 32];
                snprintf (prefix, sizeof prefix, "[%s#%u] ", line->task? line->task: "",
                          (unsigned) line->attempt);
                rc = s_text_append (self, prefix, strlen (prefix));
            }
            if (rc == 0)
                rc = s_text_append (self, data, len);
            if (rc == 0 && (newline || !line->chunk->partial))
                rc = s_text_append (self, "\n", 1);
            if (!newline)
                break;
            data = newline + 1;
            size -= len + 1;
        }
    }
    //  The end: an empty page, or one that does not move forward (which
    //  would otherwise be asked for again and again)
    if (page->n_lines == 0 || read->after_seq == before)
        self->text_done = true;
    qanat__reply__free_unpacked (reply, NULL);
    return rc;
}

static ssize_t
s_read_logs (void *cls, uint64_t pos, char *buffer, size_t max)
{
    (void) pos;
    s_download_t *self = (s_download_t *) cls;
    while (self->text_sent == self->text_size) {
        free (self->text);
        self->text = NULL;
        self->text_size = self->text_sent = 0;
        if (self->text_done || atomic_load (&self->server->stopping))
            return MHD_CONTENT_READER_END_OF_STREAM;
        if (s_next_page (self) != 0)
            return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    size_t size = self->text_size - self->text_sent;
    if (size > max)
        size = max;
    memcpy (buffer, self->text + self->text_sent, size);
    self->text_sent += size;
    return (ssize_t) size;
}

enum MHD_Result
qn_http_download_logs (qn_http_call_t *call)
{
    //  The first page is read here, so that an unknown run or a refused
    //  credential is an HTTP error rather than an empty file
    Qanat__Reply *reply = NULL;
    if (qn_http_engine (call, &call->request, &reply))
        return qn_http_send_call_error (call);
    qanat__reply__free_unpacked (reply, NULL);
    s_download_t *self = s_download_new (call);
    if (!self)
        return MHD_NO;
    self->logs = call->request;         //  the stream owns the request now
    Qanat__Request init = QANAT__REQUEST__INIT;
    call->request = init;
    Qanat__ReadLogs *read = self->logs.read_logs;
    self->logs_prefix = !read->task || !*read->task;
    read->after_seq = call->route.has_after? call->route.after: 0;
    struct MHD_Response *response = MHD_create_response_from_callback (
        MHD_SIZE_UNKNOWN, 64 * 1024, s_read_logs, self, s_download_free);
    if (!response) {
        s_download_free (self);
        return MHD_NO;
    }
    char name [64];
    snprintf (name, sizeof name, "run-%llu-logs", (unsigned long long) call->route.run_id);
    MHD_add_response_header (response, "Content-Type", "text/plain; charset=utf-8");
    s_disposition (response, name, ".txt");
    return qn_http_queue (call->server, call->connection, 200, response, true);
}
