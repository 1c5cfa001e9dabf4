/*  qn_store_runs - the store's workflows, runs, tasks, logs and metrics,
    and deleting a run.  Part of the class qn_store: see qn_store.c for the
    key layout and the files, qn_store.h for the contract.

    One of the files of the qn_store class.
*/
#include "qn_store_internal.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

//  Stop a filtered read after this many records that did not match, so
//  that one call cannot scan a huge run; the caller continues from *last_p.
#define QN_STORE_SCAN_CAP       100000
#define QN_STORE_LOG_LIMIT      1000
#define QN_STORE_RUN_LIMIT      50

//  --------------------------------------------------------------------
//  Workflows

//  Wall-clock time for the records' created_us
static int64_t
s_now_us (void)
{
    struct timespec now;
    clock_gettime (CLOCK_REALTIME, &now);
    return (int64_t) now.tv_sec * 1000000 + now.tv_nsec / 1000;
}

//  Key name '\0' be32 version, into buffer (sized by store_check_name's limit).
static size_t
s_version_key (uint8_t *buffer, const char *name, uint32_t version)
{
    size_t len = strlen (name);
    memcpy (buffer, name, len + 1);
    store_be32_put (buffer + len + 1, version);
    return len + 1 + 4;
}

//  The latest version number of name, 0 when none.  0 or -1.
static int
s_latest_version (qn_store_t *self, MDB_txn *txn, const char *name, uint32_t *version_p)
{
    *version_p = 0;
    MDB_val value;
    int rc = store_get_raw (self, txn, DB_WORKFLOWS, name, strlen (name), &value);
    if (rc < 0)
        return -1;
    if (rc == 1) {
        if (value.mv_size != 4) {
            store_set_error (self, "corrupt latest version of workflow %s", name);
            return -1;
        }
        *version_p = store_be32_get ((const uint8_t *) value.mv_data);
    }
    return 0;
}

int
qn_store_put_workflow (qn_store_t *self, const char *name, const char *filename,
                       const void *source, size_t len, uint32_t *version_p, bool *created_p)
{
    return qn_store_put_workflow_code (self, name, filename, source, len, NULL,
                                       version_p, created_p);
}

int
qn_store_put_workflow_code (qn_store_t *self, const char *name, const char *filename,
                            const void *source, size_t len, const char *code,
                            uint32_t *version_p, bool *created_p)
{
    assert (self);
    if (!code)
        code = "";
    if (store_need_txn (self) || store_check_name (self, "workflow", name))
        return -1;
    if (!source && len) {
        store_set_error (self, "workflow source is missing");
        return -1;
    }
    uint32_t latest;
    if (s_latest_version (self, self->txn, name, &latest))
        return -1;

    uint8_t key [QN_STORE_KEY_MAX];
    size_t key_size;
    if (latest > 0) {
        key_size = s_version_key (key, name, latest);
        Qanat__SubmitWorkflow *stored = (Qanat__SubmitWorkflow *) store_get_message (
            self, self->txn, DB_VERSIONS, key, key_size, &qanat__submit_workflow__descriptor);
        //  A missing or undecodable latest version just gets a new one
        bool same = stored
                 && stored->source.len == len
                 && (len == 0 || memcmp (stored->source.data, source, len) == 0)
                 && strcmp (stored->code? stored->code: "", code) == 0;
        if (stored)
            protobuf_c_message_free_unpacked ((ProtobufCMessage *) stored, NULL);
        if (same) {
            if (version_p)
                *version_p = latest;
            if (created_p)
                *created_p = false;
            return 0;
        }
        if (latest == UINT32_MAX) {
            store_set_error (self, "workflow %s has no version numbers left", name);
            return -1;
        }
    }
    uint32_t version = latest + 1;
    Qanat__SubmitWorkflow submit = QANAT__SUBMIT_WORKFLOW__INIT;
    submit.filename = (char *) (filename? filename: "");
    submit.source.data = (uint8_t *) source;
    submit.source.len = len;
    submit.created_us = s_now_us ();
    submit.code = (char *) code;
    key_size = s_version_key (key, name, version);
    if (store_put_message (self, DB_VERSIONS, key, key_size, &submit.base, 0))
        return -1;
    uint8_t be_version [4];
    store_be32_put (be_version, version);
    if (store_put_raw (self, DB_WORKFLOWS, name, strlen (name), be_version, sizeof be_version))
        return -1;
    if (version_p)
        *version_p = version;
    if (created_p)
        *created_p = true;
    return 0;
}

//  version 0 means the latest version.
Qanat__SubmitWorkflow *
qn_store_get_workflow (qn_store_t *self, const char *name, uint32_t version)
{
    assert (self);
    if (store_check_name (self, "workflow", name))
        return NULL;
    MDB_txn *txn = store_read_begin (self);
    if (!txn)
        return NULL;
    Qanat__SubmitWorkflow *submit = NULL;
    if (version == 0 && s_latest_version (self, txn, name, &version) == 0 && version == 0)
        store_set_error (self, "no workflow %s", name);
    if (version > 0) {
        uint8_t key [QN_STORE_KEY_MAX];
        size_t key_size = s_version_key (key, name, version);
        submit = (Qanat__SubmitWorkflow *) store_get_message (
            self, txn, DB_VERSIONS, key, key_size, &qanat__submit_workflow__descriptor);
    }
    store_read_end (self, txn);
    return submit;
}

int
qn_store_workflow_latest (qn_store_t *self, const char *name, uint32_t *version_p)
{
    assert (self);
    assert (version_p);
    *version_p = 0;
    if (store_check_name (self, "workflow", name))
        return -1;
    MDB_txn *txn = store_read_begin (self);
    if (!txn)
        return -1;
    int rc = s_latest_version (self, txn, name, version_p);
    store_read_end (self, txn);
    return rc;
}

static store_scan_t
s_visit_count (qn_store_t *self, const MDB_val *key, const MDB_val *value, void *arg)
{
    (void) self;
    (void) key;
    (void) value;
    (*(uint32_t *) arg)++;
    return STORE_SCAN_NEXT;
}

//  A workflow listing being gathered
typedef struct {
    store_gathered_t found;
    MDB_txn *txn;
} s_workflow_listing_t;

//  One workflows record (name -> be32 latest): its summary.  A record
//  that is not one (a bad size) is skipped.
static store_scan_t
s_visit_workflow (qn_store_t *self, const MDB_val *key, const MDB_val *value, void *arg)
{
    s_workflow_listing_t *listing = (s_workflow_listing_t *) arg;
    if (value->mv_size != 4 || key->mv_size == 0 || key->mv_size + 9 > self->max_key
    ||  memchr (key->mv_data, 0, key->mv_size))
        return STORE_SCAN_NEXT;
    Qanat__WorkflowSummary *summary = (Qanat__WorkflowSummary *) malloc (sizeof *summary);
    char *name = (char *) malloc (key->mv_size + 1);
    if (!summary || !name) {
        free (summary);
        free (name);
        store_set_error (self, "out of memory");
        return STORE_SCAN_FAIL;
    }
    qanat__workflow_summary__init (summary);
    memcpy (name, key->mv_data, key->mv_size);
    name [key->mv_size] = 0;
    summary->name = name;
    summary->latest = store_be32_get ((const uint8_t *) value->mv_data);
    uint8_t version_key [QN_STORE_KEY_MAX];
    size_t key_size = s_version_key (version_key, name, summary->latest);
    Qanat__SubmitWorkflow *latest = (Qanat__SubmitWorkflow *) store_get_message (
        self, listing->txn, DB_VERSIONS, version_key, key_size, &qanat__submit_workflow__descriptor);
    if (latest) {
        summary->created_us = latest->created_us;
        qanat__submit_workflow__free_unpacked (latest, NULL);
    }
    //  Its runs: the index keys that start with its name and '\0'
    if (store_scan (self, listing->txn, DB_RUNS_BY_WORKFLOW, name, key->mv_size + 1, NULL, 0,
                    0, s_visit_count, &summary->runs)
    ||  store_array_push (self, &listing->found.items, &listing->found.count,
                          &listing->found.alloc, summary)) {
        qanat__workflow_summary__free_unpacked (summary, NULL);
        return STORE_SCAN_FAIL;
    }
    return STORE_SCAN_NEXT;
}

int
qn_store_list_workflows (qn_store_t *self, Qanat__WorkflowSummary ***workflows_p,
                         size_t *count_p)
{
    assert (self);
    assert (workflows_p);
    assert (count_p);
    *workflows_p = NULL;
    *count_p = 0;
    MDB_txn *txn = store_read_begin (self);
    if (!txn)
        return -1;
    s_workflow_listing_t listing = { { NULL, 0, 0 }, txn };
    int rc = store_scan (self, txn, DB_WORKFLOWS, NULL, 0, NULL, 0, 0, s_visit_workflow,
                         &listing);
    store_read_end (self, txn);
    if (rc) {
        store_free_messages (listing.found.items, listing.found.count);
        return -1;
    }
    *workflows_p = (Qanat__WorkflowSummary **) listing.found.items;
    *count_p = listing.found.count;
    return 0;
}

//  --------------------------------------------------------------------
//  Runs

int
qn_store_new_run_id (qn_store_t *self, uint64_t *run_id_p)
{
    assert (self);
    assert (run_id_p);
    if (store_need_txn (self))
        return -1;
    static const char name [] = "next_run_id";
    MDB_val value;
    int rc = store_get_raw (self, self->txn, DB_META, name, strlen (name), &value);
    if (rc < 0)
        return -1;
    uint64_t next = 1;
    if (rc == 1) {
        if (value.mv_size != 8) {
            store_set_error (self, "corrupt next run id record (%zu bytes)", value.mv_size);
            return -1;
        }
        next = store_be64_get ((const uint8_t *) value.mv_data);
    }
    if (next == 0 || next == UINT64_MAX) {
        store_set_error (self, "no run ids left");
        return -1;
    }
    uint8_t be_next [8];
    store_be64_put (be_next, next + 1);
    if (store_put_raw (self, DB_META, name, strlen (name), be_next, sizeof be_next))
        return -1;
    *run_id_p = next;
    return 0;
}

static size_t
s_run_index_key (uint8_t *buffer, const char *workflow, uint64_t run_id)
{
    size_t len = strlen (workflow);
    memcpy (buffer, workflow, len + 1);
    store_be64_put (buffer + len + 1, run_id);
    return len + 1 + 8;
}

//  Decodes the run stored under key; the key's id is the truth.
static Qanat__RunInfo *
s_get_run (qn_store_t *self, MDB_txn *txn, uint64_t run_id)
{
    uint8_t key [8];
    store_be64_put (key, run_id);
    Qanat__RunInfo *run = (Qanat__RunInfo *) store_get_message (
        self, txn, DB_RUNS, key, sizeof key, &qanat__run_info__descriptor);
    if (run)
        run->run_id = run_id;
    return run;
}

int
qn_store_put_run (qn_store_t *self, const Qanat__RunInfo *run)
{
    assert (self);
    assert (run);
    if (store_need_txn (self))
        return -1;
    const char *workflow = run->workflow? run->workflow: "";
    //  The index key allows an empty workflow; only the length matters
    if (strlen (workflow) + 1 + 8 > self->max_key) {
        store_set_error (self, "workflow name is too long");
        return -1;
    }
    uint8_t key [8];
    store_be64_put (key, run->run_id);

    //  A run that changed workflow (which the coordinator never does)
    //  must not stay listed under the old one
    MDB_val old_value;
    int rc = store_get_raw (self, self->txn, DB_RUNS, key, sizeof key, &old_value);
    if (rc < 0)
        return -1;
    if (rc == 1) {
        Qanat__RunInfo *old = qanat__run_info__unpack (
            NULL, old_value.mv_size, (const uint8_t *) old_value.mv_data);
        if (old && old->workflow && strcmp (old->workflow, workflow) != 0
        &&  strlen (old->workflow) + 1 + 8 <= self->max_key) {
            uint8_t old_index [QN_STORE_KEY_MAX];
            size_t size = s_run_index_key (old_index, old->workflow, run->run_id);
            rc = store_delete (self, DB_RUNS_BY_WORKFLOW, old_index, size);
        }
        else
            rc = 0;
        if (old)
            qanat__run_info__free_unpacked (old, NULL);
        if (rc)
            return -1;
    }
    //  Tasks have their own records; a shallow copy leaves the caller's
    //  struct untouched
    Qanat__RunInfo copy = *run;
    copy.n_tasks = 0;
    copy.tasks = NULL;
    if (store_put_message (self, DB_RUNS, key, sizeof key, &copy.base, 0))
        return -1;

    uint8_t index [QN_STORE_KEY_MAX];
    size_t index_size = s_run_index_key (index, workflow, run->run_id);
    if (store_put_raw (self, DB_RUNS_BY_WORKFLOW, index, index_size, "", 0))
        return -1;

    if (run->status == QANAT__RUN_STATUS__RUN_QUEUED
    ||  run->status == QANAT__RUN_STATUS__RUN_RUNNING)
        return store_put_raw (self, DB_ACTIVE, key, sizeof key, "", 0);
    else
        return store_delete (self, DB_ACTIVE, key, sizeof key);
}

Qanat__RunInfo *
qn_store_get_run (qn_store_t *self, uint64_t run_id)
{
    assert (self);
    MDB_txn *txn = store_read_begin (self);
    if (!txn)
        return NULL;
    Qanat__RunInfo *run = s_get_run (self, txn, run_id);
    store_read_end (self, txn);
    return run;
}

//  --------------------------------------------------------------------
//  Listing runs: newest first, filtered, from a cursor

//  What a filter reads of a stored run, found in its encoded bytes
//  without decoding it whole (params, artifacts and strings are skipped).
typedef struct {
    int32_t status;             //  field 4
    int64_t created_us;         //  field 5
    const uint8_t *owner;       //  field 11, not terminated
    size_t owner_len;
} s_run_peek_t;

//  One protobuf varint at *p, at most 10 bytes.  false when it runs off
//  the end or is too long.
static bool
s_varint (const uint8_t **p, const uint8_t *end, uint64_t *value_p)
{
    uint64_t value = 0;
    for (unsigned shift = 0; shift < 64 && *p < end; shift += 7) {
        uint8_t byte = *(*p)++;
        value |= (uint64_t) (byte & 0x7f) << shift;
        if (!(byte & 0x80)) {
            *value_p = value;
            return true;
        }
    }
    return false;
}

//  Walks the top-level fields of an encoded RunInfo.  -1 when it is not
//  well-formed protobuf (the record is then skipped, as an undecodable
//  one always was).  A field seen twice keeps its last value, as in a
//  full decode.
static int
s_run_peek (const MDB_val *value, s_run_peek_t *peek)
{
    memset (peek, 0, sizeof *peek);
    const uint8_t *p = (const uint8_t *) value->mv_data;
    const uint8_t *end = p + value->mv_size;
    while (p < end) {
        uint64_t tag, field;
        if (!s_varint (&p, end, &tag) || (tag >> 3) == 0)
            return -1;
        switch (tag & 7) {
            case 0:
                if (!s_varint (&p, end, &field))
                    return -1;
                if ((tag >> 3) == 4)
                    peek->status = (int32_t) field;
                else
                if ((tag >> 3) == 5)
                    peek->created_us = (int64_t) field;
                break;
            case 1:
                if (end - p < 8)
                    return -1;
                p += 8;
                break;
            case 5:
                if (end - p < 4)
                    return -1;
                p += 4;
                break;
            case 2:
                if (!s_varint (&p, end, &field) || field > (uint64_t) (end - p))
                    return -1;
                if ((tag >> 3) == 11) {
                    peek->owner = p;
                    peek->owner_len = (size_t) field;
                }
                p += field;
                break;
            default:
                return -1;      //  groups are not in our messages
        }
    }
    return 0;
}

//  A run listing being filled, newest first, up to limit runs
typedef struct {
    Qanat__RunList *list;
    size_t alloc;
    const qn_store_run_filter_t *filter;
    uint32_t limit;
    uint32_t scan_cap;
    bool peek;                  //  the filter reads the record
    size_t owner_len;
    uint32_t examined;
    uint64_t last_examined;     //  the id of the last run examined
    MDB_txn *txn;
    size_t name_len;            //  by workflow: the length of its name
} s_run_listing_t;

//  Whether the encoded run passes the filters that read the record
static bool
s_run_wanted (s_run_listing_t *listing, const MDB_val *value)
{
    if (!listing->peek)
        return true;
    const qn_store_run_filter_t *filter = listing->filter;
    s_run_peek_t peek;
    if (s_run_peek (value, &peek))
        return false;
    if (filter->has_status && peek.status != filter->status)
        return false;
    if (filter->created_after_us && peek.created_us < filter->created_after_us)
        return false;
    if (filter->created_before_us && peek.created_us >= filter->created_before_us)
        return false;
    if (listing->owner_len
    &&  (peek.owner_len != listing->owner_len
    ||   memcmp (peek.owner, filter->owner, peek.owner_len) != 0))
        return false;
    return true;
}

//  Counts run_id as examined, unless the page is full or the cap reached:
//  then the listing stops and says where to go on.
static bool
s_run_listing_full (s_run_listing_t *listing, uint64_t run_id)
{
    if (listing->list->n_runs >= listing->limit || listing->examined >= listing->scan_cap) {
        listing->list->next_before = listing->last_examined;
        return true;
    }
    listing->examined++;
    listing->last_examined = run_id;
    return false;
}

//  Adds the run encoded in value to the listing if the filters want it.
//  An undecodable record is skipped.
static store_scan_t
s_run_listing_add (qn_store_t *self, s_run_listing_t *listing, uint64_t run_id,
                   const MDB_val *value)
{
    if (!s_run_wanted (listing, value))
        return STORE_SCAN_NEXT;
    Qanat__RunInfo *run = (Qanat__RunInfo *) store_decode (
        self, DB_RUNS, &qanat__run_info__descriptor, value);
    if (!run)
        return STORE_SCAN_NEXT;
    run->run_id = run_id;
    Qanat__RunList *list = listing->list;
    if (store_array_push (self, (void ***) &list->runs, &list->n_runs, &listing->alloc, run)) {
        qanat__run_info__free_unpacked (run, NULL);
        return STORE_SCAN_FAIL;
    }
    return STORE_SCAN_NEXT;
}

//  One runs_by_workflow entry: the run it points to.  A dangling entry is
//  skipped.
static store_scan_t
s_visit_workflow_run (qn_store_t *self, const MDB_val *key, const MDB_val *value, void *arg)
{
    (void) value;
    s_run_listing_t *listing = (s_run_listing_t *) arg;
    if (key->mv_size != listing->name_len + 1 + 8)
        return STORE_SCAN_NEXT;
    uint64_t run_id = store_be64_get ((const uint8_t *) key->mv_data + listing->name_len + 1);
    if (s_run_listing_full (listing, run_id))
        return STORE_SCAN_STOP;
    uint8_t run_key [8];
    store_be64_put (run_key, run_id);
    MDB_val run;
    int rc = store_get_raw (self, listing->txn, DB_RUNS, run_key, sizeof run_key, &run);
    if (rc < 0)
        return STORE_SCAN_FAIL;
    return rc == 1? s_run_listing_add (self, listing, run_id, &run): STORE_SCAN_NEXT;
}

//  One runs record
static store_scan_t
s_visit_run (qn_store_t *self, const MDB_val *key, const MDB_val *value, void *arg)
{
    s_run_listing_t *listing = (s_run_listing_t *) arg;
    if (key->mv_size != 8)
        return STORE_SCAN_NEXT;
    uint64_t run_id = store_be64_get ((const uint8_t *) key->mv_data);
    if (s_run_listing_full (listing, run_id))
        return STORE_SCAN_STOP;
    return s_run_listing_add (self, listing, run_id, value);
}

//  A workflow's runs come from runs_by_workflow, whose keys for it start
//  with its name and '\0' (the string with its terminator), walked
//  backwards from the cursor; every run from runs, walked backwards from
//  the cursor.  Only the runs that pass the filters are decoded.
Qanat__RunList *
qn_store_find_runs (qn_store_t *self, const qn_store_run_filter_t *filter)
{
    assert (self);
    assert (filter);
    Qanat__RunList *list = (Qanat__RunList *) malloc (sizeof (Qanat__RunList));
    if (!list) {
        store_set_error (self, "out of memory");
        return NULL;
    }
    qanat__run_list__init (list);
    const char *workflow = filter->workflow;
    if (filter->before_run_id == 1)
        return list;            //  nothing comes before run 1
    MDB_txn *txn = store_read_begin (self);
    if (!txn) {
        free (list);
        return NULL;
    }
    s_run_listing_t listing = {
        list, 0, filter, filter->limit? filter->limit: QN_STORE_RUN_LIMIT,
        filter->scan_cap? filter->scan_cap: QN_STORE_FIND_SCAN_CAP, false,
        filter->owner? strlen (filter->owner): 0, 0, 0, txn, 0
    };
    listing.peek = filter->has_status || filter->created_after_us || filter->created_before_us
                || listing.owner_len;
    uint8_t from [QN_STORE_KEY_MAX];
    int rc = 0;
    if (workflow && *workflow) {
        listing.name_len = strlen (workflow);
        //  A workflow whose name cannot form a key cannot have runs
        if (listing.name_len + 1 + 8 <= self->max_key) {
            size_t from_len = s_run_index_key (from, workflow, filter->before_run_id);
            rc = store_scan (self, txn, DB_RUNS_BY_WORKFLOW, workflow, listing.name_len + 1,
                             filter->before_run_id? from: NULL, from_len,
                             STORE_SCAN_BACKWARD, s_visit_workflow_run, &listing);
        }
    }
    else {
        store_be64_put (from, filter->before_run_id);
        rc = store_scan (self, txn, DB_RUNS, NULL, 0, filter->before_run_id? from: NULL, 8,
                         STORE_SCAN_BACKWARD, s_visit_run, &listing);
    }
    store_read_end (self, txn);
    if (rc) {
        qanat__run_list__free_unpacked (list, NULL);
        return NULL;
    }
    return list;
}

Qanat__RunList *
qn_store_list_runs (qn_store_t *self, const char *workflow, uint32_t limit)
{
    qn_store_run_filter_t filter = { 0 };
    filter.workflow = workflow;
    filter.limit = limit;
    //  Unfiltered, a page examines no more runs than it returns
    filter.scan_cap = UINT32_MAX;
    return qn_store_find_runs (self, &filter);
}

//  Run ids being gathered from keys of key_size bytes, each the be64 at
//  offset at; the array starts at first_alloc slots and doubles.
typedef struct {
    uint64_t *ids;
    size_t count;
    size_t alloc;
    size_t first_alloc;
    size_t key_size;
    size_t at;
} s_run_ids_t;

static store_scan_t
s_visit_run_id (qn_store_t *self, const MDB_val *key, const MDB_val *value, void *arg)
{
    (void) value;
    s_run_ids_t *ids = (s_run_ids_t *) arg;
    if (key->mv_size != ids->key_size)
        return STORE_SCAN_NEXT;
    if (ids->count == ids->alloc) {
        size_t alloc = ids->alloc? ids->alloc * 2: ids->first_alloc;
        uint64_t *grown = (uint64_t *) realloc (ids->ids, alloc * sizeof (uint64_t));
        if (!grown) {
            store_set_error (self, "out of memory");
            return STORE_SCAN_FAIL;
        }
        ids->ids = grown;
        ids->alloc = alloc;
    }
    ids->ids [ids->count++] = store_be64_get ((const uint8_t *) key->mv_data + ids->at);
    return STORE_SCAN_NEXT;
}

int
qn_store_active_runs (qn_store_t *self, uint64_t **ids_p, size_t *count_p)
{
    assert (self);
    assert (ids_p);
    assert (count_p);
    *ids_p = NULL;
    *count_p = 0;
    MDB_txn *txn = store_read_begin (self);
    if (!txn)
        return -1;
    s_run_ids_t ids = { NULL, 0, 0, 16, 8, 0 };
    int rc = store_scan (self, txn, DB_ACTIVE, NULL, 0, NULL, 0, 0, s_visit_run_id, &ids);
    store_read_end (self, txn);
    if (rc) {
        free (ids.ids);
        return -1;
    }
    *ids_p = ids.ids;
    *count_p = ids.count;
    return 0;
}

//  --------------------------------------------------------------------
//  Tasks

int
qn_store_put_task (qn_store_t *self, uint64_t run_id, const Qanat__TaskInfo *task)
{
    assert (self);
    assert (task);
    if (store_need_txn (self))
        return -1;
    uint8_t key [12];
    store_be64_put (key, run_id);
    store_be32_put (key + 8, task->index);
    return store_put_message (self, DB_TASKS, key, sizeof key, &task->base, 0);
}

//  One task record; an undecodable one is skipped.
static store_scan_t
s_visit_task (qn_store_t *self, const MDB_val *key, const MDB_val *value, void *arg)
{
    store_gathered_t *tasks = (store_gathered_t *) arg;
    if (key->mv_size != 12)
        return STORE_SCAN_NEXT;
    Qanat__TaskInfo *task = (Qanat__TaskInfo *) store_decode (
        self, DB_TASKS, &qanat__task_info__descriptor, value);
    if (!task)
        return STORE_SCAN_NEXT;
    task->index = store_be32_get ((const uint8_t *) key->mv_data + 8);
    if (store_array_push (self, &tasks->items, &tasks->count, &tasks->alloc, task)) {
        qanat__task_info__free_unpacked (task, NULL);
        return STORE_SCAN_FAIL;
    }
    return STORE_SCAN_NEXT;
}

int
qn_store_get_tasks (qn_store_t *self, uint64_t run_id, Qanat__TaskInfo ***tasks_p,
                    size_t *count_p)
{
    assert (self);
    assert (tasks_p);
    assert (count_p);
    *tasks_p = NULL;
    *count_p = 0;
    MDB_txn *txn = store_read_begin (self);
    if (!txn)
        return -1;
    //  The run's keys start with its id; the scan starts at index 0
    uint8_t start [12];
    store_be64_put (start, run_id);
    store_be32_put (start + 8, 0);
    store_gathered_t tasks = { NULL, 0, 0 };
    int rc = store_scan (self, txn, DB_TASKS, start, 8, start, sizeof start, 0,
                         s_visit_task, &tasks);
    store_read_end (self, txn);
    if (rc) {
        store_free_messages (tasks.items, tasks.count);
        return -1;
    }
    *tasks_p = (Qanat__TaskInfo **) tasks.items;
    *count_p = tasks.count;
    return 0;
}

//  --------------------------------------------------------------------
//  Logs and metrics
//  Finds the last sequence number under run_id in a (be64 run_id, be64
//  seq) database: 0 when the run has none.  Seeks to (run_id, max) and
//  steps back, which is O(log n) and needs no run_id + 1 that could
//  overflow.  0 or -1.  A seek of one step, not a scan: it does not go
//  through store_scan.
static int
s_last_seq (qn_store_t *self, MDB_txn *txn, store_db_t db, uint64_t run_id, uint64_t *last_p)
{
    *last_p = 0;
    MDB_cursor *cursor = store_cursor (self, txn, db);
    if (!cursor)
        return -1;
    uint8_t probe [16];
    store_be64_put (probe, run_id);
    store_be64_put (probe + 8, UINT64_MAX);
    MDB_val key = { sizeof probe, probe }, value;
    int rc = mdb_cursor_get (cursor, &key, &value, MDB_SET_RANGE);
    if (rc == 0 && key.mv_size == sizeof probe && memcmp (key.mv_data, probe, sizeof probe) == 0) {
        mdb_cursor_close (cursor);
        *last_p = UINT64_MAX;
        return 0;
    }
    if (rc == 0)
        rc = mdb_cursor_get (cursor, &key, &value, MDB_PREV);
    else
    if (rc == MDB_NOTFOUND)
        rc = mdb_cursor_get (cursor, &key, &value, MDB_LAST);
    mdb_cursor_close (cursor);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc) {
        store_set_error (self, "read from %s failed: %s", store_db_names [db], mdb_strerror (rc));
        return -1;
    }
    if (key.mv_size == 16 && memcmp (key.mv_data, probe, 8) == 0)
        *last_p = store_be64_get ((const uint8_t *) key.mv_data + 8);
    return 0;
}

//  Appends msg under (run_id, last + 1).  NOOVERWRITE so that a stray key
//  in the store can never make us overwrite an existing record.
static int
s_append (qn_store_t *self, store_db_t db, uint64_t run_id, const ProtobufCMessage *msg,
          uint64_t *seq_p)
{
    store_seq_cache_t *cached = &self->seq_cache [db == DB_LOGS? 0: 1][run_id % SEQ_CACHE_SIZE];
    uint64_t last;
    if (cached->valid && cached->run_id == run_id)
        last = cached->last;
    else
    if (s_last_seq (self, self->txn, db, run_id, &last))
        return -1;
    if (last == UINT64_MAX) {
        store_set_error (self, "run %" PRIu64 " has no sequence numbers left in %s",
                         run_id, store_db_names [db]);
        return -1;
    }
    uint8_t key [16];
    store_be64_put (key, run_id);
    store_be64_put (key + 8, last + 1);
    if (store_put_message (self, db, key, sizeof key, msg, MDB_NOOVERWRITE)) {
        cached->valid = false;
        return -1;
    }
    cached->run_id = run_id;
    cached->last = last + 1;
    cached->valid = true;
    if (seq_p)
        *seq_p = last + 1;
    return 0;
}



int
qn_store_append_log (qn_store_t *self, uint64_t run_id, const Qanat__LogLine *line,
                     uint64_t *log_seq_p)
{
    assert (self);
    assert (line);
    if (store_need_txn (self))
        return -1;
    return s_append (self, DB_LOGS, run_id, &line->base, log_seq_p);
}

int
qn_store_append_metric (qn_store_t *self, uint64_t run_id, const Qanat__MetricRecord *record)
{
    assert (self);
    assert (record);
    if (store_need_txn (self))
        return -1;
    return s_append (self, DB_METRICS, run_id, &record->base, NULL);
}

//  Every record of a (be64 run_id, be64 seq) database after `after`, in
//  order, through keep (): returns true to keep the decoded message.
//  Stops after limit kept records or QN_STORE_SCAN_CAP records dropped;
//  *last_p gets the last sequence examined.  Undecodable records count as
//  examined and dropped.
typedef bool (s_keep_fn) (ProtobufCMessage *msg, const void *arg);

//  A sequence read in progress
typedef struct {
    store_db_t db;
    const ProtobufCMessageDescriptor *descriptor;
    s_keep_fn *keep;
    const void *keep_arg;
    size_t limit;
    size_t scan_cap;
    store_gathered_t kept;
    size_t dropped;
    uint64_t last;              //  the last sequence examined
} s_sequence_read_t;

static store_scan_t
s_visit_sequence (qn_store_t *self, const MDB_val *key, const MDB_val *value, void *arg)
{
    s_sequence_read_t *read = (s_sequence_read_t *) arg;
    if (read->kept.count >= read->limit || read->dropped >= read->scan_cap)
        return STORE_SCAN_STOP;
    if (key->mv_size != 16)
        return STORE_SCAN_NEXT;
    read->last = store_be64_get ((const uint8_t *) key->mv_data + 8);
    ProtobufCMessage *msg = store_decode (self, read->db, read->descriptor, value);
    if (msg && read->db == DB_LOGS)
        ((Qanat__LogLine *) msg)->log_seq = read->last;     //  the key is the truth
    store_gathered_t *kept = &read->kept;
    if (msg && read->keep (msg, read->keep_arg)) {
        if (store_array_push (self, &kept->items, &kept->count, &kept->alloc, msg)) {
            protobuf_c_message_free_unpacked (msg, NULL);
            return STORE_SCAN_FAIL;
        }
    }
    else {
        if (msg)
            protobuf_c_message_free_unpacked (msg, NULL);
        read->dropped++;
    }
    return STORE_SCAN_NEXT;
}

static int
s_read_sequence (qn_store_t *self, store_db_t db, const ProtobufCMessageDescriptor *descriptor,
                 uint64_t run_id, uint64_t after, s_keep_fn *keep, const void *arg,
                 size_t limit, size_t scan_cap, void ***msgs_p, size_t *count_p,
                 uint64_t *last_p)
{
    *msgs_p = NULL;
    *count_p = 0;
    if (last_p)
        *last_p = after;
    if (after == UINT64_MAX)
        return 0;
    MDB_txn *txn = store_read_begin (self);
    if (!txn)
        return -1;
    //  The run's keys start with its id; the scan starts past after
    uint8_t start [16];
    store_be64_put (start, run_id);
    store_be64_put (start + 8, after + 1);
    s_sequence_read_t read = {
        db, descriptor, keep, arg, limit, scan_cap, { NULL, 0, 0 }, 0, after
    };
    int rc = store_scan (self, txn, db, start, 8, start, sizeof start, 0,
                         s_visit_sequence, &read);
    store_read_end (self, txn);
    if (rc) {
        store_free_messages (read.kept.items, read.kept.count);
        return -1;
    }
    *msgs_p = read.kept.items;
    *count_p = read.kept.count;
    if (last_p)
        *last_p = read.last;
    return 0;
}

typedef struct {
    const char *task;
    uint32_t attempt;
} s_log_filter_t;

static bool
s_keep_line (ProtobufCMessage *msg, const void *arg)
{
    const s_log_filter_t *filter = (const s_log_filter_t *) arg;
    const Qanat__LogLine *line = (const Qanat__LogLine *) msg;
    if (filter->task && *filter->task
    &&  (!line->task || strcmp (line->task, filter->task) != 0))
        return false;
    if (filter->attempt && line->attempt != filter->attempt)
        return false;
    return true;
}

int
qn_store_read_logs (qn_store_t *self, uint64_t run_id, uint64_t after, const char *task,
                    uint32_t attempt, uint32_t limit, Qanat__LogLine ***lines_p,
                    size_t *count_p, uint64_t *last_p)
{
    assert (self);
    assert (lines_p);
    assert (count_p);
    s_log_filter_t filter = { task, attempt };
    return s_read_sequence (self, DB_LOGS, &qanat__log_line__descriptor, run_id, after,
                            s_keep_line, &filter, limit? limit: QN_STORE_LOG_LIMIT,
                            QN_STORE_SCAN_CAP, (void ***) lines_p, count_p, last_p);
}

static bool
s_keep_metric (ProtobufCMessage *msg, const void *arg)
{
    const char *name = (const char *) arg;
    const Qanat__MetricRecord *record = (const Qanat__MetricRecord *) msg;
    if (name && *name)
        return record->point && record->point->name && strcmp (record->point->name, name) == 0;
    return true;
}

int
qn_store_read_metrics (qn_store_t *self, uint64_t run_id, const char *name,
                       Qanat__MetricRecord ***records_p, size_t *count_p)
{
    assert (self);
    assert (records_p);
    assert (count_p);
    //  The contract is "every record": no limit and no scan cap
    return s_read_sequence (self, DB_METRICS, &qanat__metric_record__descriptor, run_id, 0,
                            s_keep_metric, name, SIZE_MAX, SIZE_MAX,
                            (void ***) records_p, count_p, NULL);
}

//  --------------------------------------------------------------------
//  Retention: deleting a run, a workflow's runs

//  Deletes every key of db that starts with the 8-byte prefix.  Its own
//  loop rather than store_scan: it deletes under the cursor, which then
//  stands on the next key already (or must seek again at the end of a
//  page), and a cursor error here is a failed write that dooms the
//  transaction, not a failed read.
static int
s_delete_prefix (qn_store_t *self, store_db_t db, const uint8_t *prefix)
{
    MDB_cursor *cursor;
    int rc = mdb_cursor_open (self->txn, self->dbi [db], &cursor);
    if (rc)
        return store_write_failed (self, db, rc);
    MDB_val key = { 8, (void *) prefix }, value;
    rc = mdb_cursor_get (cursor, &key, &value, MDB_SET_RANGE);
    while (rc == 0 && key.mv_size >= 8 && memcmp (key.mv_data, prefix, 8) == 0) {
        rc = mdb_cursor_del (cursor, 0);
        if (rc)
            break;
        rc = mdb_cursor_get (cursor, &key, &value, MDB_GET_CURRENT);
        if (rc == EINVAL || rc == MDB_NOTFOUND)
            rc = mdb_cursor_get (cursor, &key, &value, MDB_SET_RANGE);
    }
    mdb_cursor_close (cursor);
    if (rc && rc != MDB_NOTFOUND)
        return store_write_failed (self, db, rc);
    return 0;
}

int
qn_store_delete_run (qn_store_t *self, uint64_t run_id)
{
    assert (self);
    if (store_need_txn (self))
        return -1;
    uint8_t id [8];
    store_be64_put (id, run_id);
    Qanat__RunInfo *run = s_get_run (self, self->txn, run_id);
    if (run && run->workflow) {
        size_t len = strlen (run->workflow);
        if (len + 9 <= self->max_key) {
            uint8_t key [QN_STORE_KEY_MAX];
            memcpy (key, run->workflow, len);
            key [len] = 0;
            memcpy (key + len + 1, id, 8);
            if (store_delete (self, DB_RUNS_BY_WORKFLOW, key, len + 9)) {
                qanat__run_info__free_unpacked (run, NULL);
                return -1;
            }
        }
    }
    if (run)
        qanat__run_info__free_unpacked (run, NULL);
    if (store_delete (self, DB_RUNS, id, 8) || store_delete (self, DB_ACTIVE, id, 8)
    ||  s_delete_prefix (self, DB_TASKS, id) || s_delete_prefix (self, DB_LOGS, id)
    ||  s_delete_prefix (self, DB_METRICS, id))
        return -1;
    return 0;
}

int
qn_store_workflow_run_ids (qn_store_t *self, const char *workflow, uint64_t **ids_p,
                           size_t *count_p)
{
    assert (self);
    *ids_p = NULL;
    *count_p = 0;
    size_t len = workflow? strlen (workflow): 0;
    if (len == 0 || len + 9 > self->max_key)
        return 0;
    MDB_txn *txn = store_read_begin (self);
    if (!txn)
        return -1;
    //  The workflow's keys start with its name and '\0' (the string with
    //  its terminator)
    s_run_ids_t ids = { NULL, 0, 0, 64, len + 9, len + 1 };
    int result = store_scan (self, txn, DB_RUNS_BY_WORKFLOW, workflow, len + 1, NULL, 0,
                             STORE_SCAN_READ_ERROR_ENDS, s_visit_run_id, &ids);
    store_read_end (self, txn);
    if (result) {
        free (ids.ids);
        return -1;
    }
    *ids_p = ids.ids;
    *count_p = ids.count;
    return 0;
}
