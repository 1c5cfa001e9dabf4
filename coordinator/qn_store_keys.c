/*  qn_store_keys - the store's agents, principals, secrets and the secrets'
    access lists.  Part of the class qn_store: see qn_store.c for the key
    layout and the files, qn_store.h for the contract.

    One of the files of the qn_store class.
*/
#include "qn_store_internal.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

//  --------------------------------------------------------------------
//  Agents

int
qn_store_put_agent (qn_store_t *self, const Qanat__AgentInfo *agent)
{
    assert (self);
    assert (agent);
    if (store_need_txn (self) || store_check_name (self, "agent", agent->name))
        return -1;
    return store_put_message (self, DB_AGENTS, agent->name, strlen (agent->name), &agent->base, 0);
}

int
qn_store_delete_agent (qn_store_t *self, const char *name)
{
    assert (self);
    if (store_need_txn (self) || store_check_name (self, "agent", name))
        return -1;
    return store_delete (self, DB_AGENTS, name, strlen (name));
}

//  Decoded messages being gathered from one sub-database
typedef struct {
    store_db_t db;
    const ProtobufCMessageDescriptor *descriptor;
    store_gathered_t gathered;
} s_listing_t;

//  One record; an undecodable one is skipped.
static store_scan_t
s_visit_message (qn_store_t *self, const MDB_val *key, const MDB_val *value, void *arg)
{
    (void) key;
    s_listing_t *listing = (s_listing_t *) arg;
    store_gathered_t *gathered = &listing->gathered;
    ProtobufCMessage *item = store_decode (self, listing->db, listing->descriptor, value);
    if (item
    &&  store_array_push (self, &gathered->items, &gathered->count, &gathered->alloc, item)) {
        protobuf_c_message_free_unpacked (item, NULL);
        return STORE_SCAN_FAIL;
    }
    return STORE_SCAN_NEXT;
}

//  Every record of a sub-database keyed by name, in key order.
static int
s_list_messages (qn_store_t *self, store_db_t db, const ProtobufCMessageDescriptor *descriptor,
                 void ***items_p, size_t *count_p)
{
    *items_p = NULL;
    *count_p = 0;
    MDB_txn *txn = store_read_begin (self);
    if (!txn)
        return -1;
    s_listing_t listing = { db, descriptor, { NULL, 0, 0 } };
    int rc = store_scan (self, txn, db, NULL, 0, NULL, 0, 0, s_visit_message, &listing);
    store_read_end (self, txn);
    if (rc) {
        store_free_messages (listing.gathered.items, listing.gathered.count);
        return -1;
    }
    *items_p = listing.gathered.items;
    *count_p = listing.gathered.count;
    return 0;
}

int
qn_store_list_agents (qn_store_t *self, Qanat__AgentInfo ***agents_p, size_t *count_p)
{
    assert (self);
    assert (agents_p);
    assert (count_p);
    return s_list_messages (self, DB_AGENTS, &qanat__agent_info__descriptor,
                            (void ***) agents_p, count_p);
}

//  ---- principals and secrets ----

int
qn_store_put_principal (qn_store_t *self, const Qanat__Principal *principal)
{
    assert (self);
    assert (principal);
    if (store_need_txn (self) || store_check_name (self, "principal key", principal->public_key))
        return -1;
    return store_put_message (self, DB_PRINCIPALS, principal->public_key,
                              strlen (principal->public_key), &principal->base, 0);
}

int
qn_store_delete_principal (qn_store_t *self, const char *public_key)
{
    assert (self);
    if (store_need_txn (self) || store_check_name (self, "principal key", public_key))
        return -1;
    return store_delete (self, DB_PRINCIPALS, public_key, strlen (public_key));
}

int
qn_store_list_principals (qn_store_t *self, Qanat__Principal ***principals_p, size_t *count_p)
{
    assert (self);
    return s_list_messages (self, DB_PRINCIPALS, &qanat__principal__descriptor,
                            (void ***) principals_p, count_p);
}

int
qn_store_put_secret (qn_store_t *self, const char *name, const void *data, size_t size)
{
    assert (self);
    if (store_need_txn (self) || store_check_name (self, "secret", name))
        return -1;
    return store_put_raw (self, DB_SECRETS, name, strlen (name), data, size);
}

int
qn_store_delete_secret (qn_store_t *self, const char *name)
{
    assert (self);
    if (store_need_txn (self) || store_check_name (self, "secret", name))
        return -1;
    if (store_delete (self, DB_SECRETS, name, strlen (name)))
        return -1;
    return store_delete (self, DB_SECRET_ACCESS, name, strlen (name));
}

//  A malloc'd copy of the value of name in db: 1, 0 when not there, -1.
static int
s_get_copy (qn_store_t *self, store_db_t db, const char *name, void **data_p, size_t *size_p)
{
    *data_p = NULL;
    *size_p = 0;
    if (store_check_name (self, "secret", name))
        return -1;
    MDB_txn *txn = store_read_begin (self);
    if (!txn)
        return -1;
    MDB_val value;
    int found = store_get_raw (self, txn, db, name, strlen (name), &value);
    if (found == 1) {
        *data_p = malloc (value.mv_size? value.mv_size: 1);
        if (*data_p) {
            memcpy (*data_p, value.mv_data, value.mv_size);
            *size_p = value.mv_size;
        }
        else
            found = -1;
    }
    store_read_end (self, txn);
    return found < 0? -1: found;
}

int
qn_store_get_secret (qn_store_t *self, const char *name, void **data_p, size_t *size_p)
{
    assert (self);
    return s_get_copy (self, DB_SECRETS, name, data_p, size_p);
}

//  Secret names being gathered.  A name that cannot be copied is left
//  out, and running out of memory for the array ends the listing: what
//  was gathered is returned, without an error.
typedef struct {
    char **names;
    size_t count;
} s_names_t;

static store_scan_t
s_visit_secret_name (qn_store_t *self, const MDB_val *key, const MDB_val *value, void *arg)
{
    (void) self;
    (void) value;
    s_names_t *names = (s_names_t *) arg;
    char **grown = (char **) realloc (names->names, (names->count + 1) * sizeof (char *));
    if (!grown)
        return STORE_SCAN_STOP;
    names->names = grown;
    names->names [names->count] = strndup ((const char *) key->mv_data, key->mv_size);
    if (names->names [names->count])
        names->count++;
    return STORE_SCAN_NEXT;
}

int
qn_store_list_secrets (qn_store_t *self, char ***names_p, size_t *count_p)
{
    assert (self);
    *names_p = NULL;
    *count_p = 0;
    MDB_txn *txn = store_read_begin (self);
    if (!txn)
        return -1;
    s_names_t names = { NULL, 0 };
    int rc = store_scan (self, txn, DB_SECRETS, NULL, 0, NULL, 0, STORE_SCAN_READ_ERROR_ENDS,
                         s_visit_secret_name, &names);
    store_read_end (self, txn);
    if (rc)
        return -1;              //  only when the cursor could not be opened
    *names_p = names.names;
    *count_p = names.count;
    return 0;
}

int
qn_store_put_secret_access (qn_store_t *self, const char *name, const Qanat__SecretAccess *access)
{
    assert (self);
    assert (access);
    if (store_need_txn (self) || store_check_name (self, "secret", name))
        return -1;
    return store_put_message (self, DB_SECRET_ACCESS, name, strlen (name), &access->base, 0);
}

int
qn_store_get_secret_access (qn_store_t *self, const char *name, Qanat__SecretAccess **access_p)
{
    assert (self);
    assert (access_p);
    *access_p = NULL;
    MDB_val value = { 0, NULL };
    int found = s_get_copy (self, DB_SECRET_ACCESS, name, &value.mv_data, &value.mv_size);
    if (found == 1) {
        *access_p = (Qanat__SecretAccess *) store_decode (
            self, DB_SECRET_ACCESS, &qanat__secret_access__descriptor, &value);
        if (!*access_p)
            found = -1;
    }
    free (value.mv_data);
    return found;
}

//  ---- API tokens ----

static bool
s_valid_token_hash (const char *hash_hex)
{
    if (!hash_hex || strlen (hash_hex) != 64)
        return false;
    for (const char *c = hash_hex; *c; c++)
        if (!strchr ("0123456789abcdef", *c))
            return false;
    return true;
}

int
qn_store_put_api_token (qn_store_t *self, const char *hash_hex, const Qanat__ApiToken *token)
{
    assert (self);
    assert (token);
    if (store_need_txn (self))
        return -1;
    if (!s_valid_token_hash (hash_hex) || (token->token && *token->token)) {
        store_set_error (self, "an API token is stored by its hash only");
        return -1;
    }
    return store_put_message (self, DB_API_TOKENS, hash_hex, 64, &token->base, 0);
}

//  Tokens and their hashes being gathered
typedef struct {
    store_gathered_t tokens;
    char **hashes;
    size_t hash_count;
    size_t hash_alloc;
} s_token_listing_t;

//  One token; a record with a bad key or that does not decode is skipped.
static store_scan_t
s_visit_api_token (qn_store_t *self, const MDB_val *key, const MDB_val *value, void *arg)
{
    s_token_listing_t *listing = (s_token_listing_t *) arg;
    if (key->mv_size != 64)
        return STORE_SCAN_NEXT;
    char *hash = strndup ((const char *) key->mv_data, 64);
    if (!s_valid_token_hash (hash)) {
        free (hash);
        return STORE_SCAN_NEXT;
    }
    ProtobufCMessage *item = store_decode (self, DB_API_TOKENS, &qanat__api_token__descriptor,
                                           value);
    if (!item) {
        free (hash);
        return STORE_SCAN_NEXT;
    }
    if (store_array_push (self, &listing->tokens.items, &listing->tokens.count,
                          &listing->tokens.alloc, item)) {
        protobuf_c_message_free_unpacked (item, NULL);
        free (hash);
        return STORE_SCAN_FAIL;
    }
    if (store_array_push (self, (void ***) &listing->hashes, &listing->hash_count,
                          &listing->hash_alloc, hash)) {
        free (hash);
        listing->tokens.count--;
        protobuf_c_message_free_unpacked (item, NULL);
        return STORE_SCAN_FAIL;
    }
    return STORE_SCAN_NEXT;
}

int
qn_store_list_api_tokens (qn_store_t *self, char ***hashes_p, Qanat__ApiToken ***tokens_p,
                          size_t *count_p)
{
    assert (self);
    *hashes_p = NULL;
    *tokens_p = NULL;
    *count_p = 0;
    MDB_txn *txn = store_read_begin (self);
    if (!txn)
        return -1;
    s_token_listing_t listing = { { NULL, 0, 0 }, NULL, 0, 0 };
    int rc = store_scan (self, txn, DB_API_TOKENS, NULL, 0, NULL, 0, 0, s_visit_api_token,
                         &listing);
    store_read_end (self, txn);
    if (rc) {
        store_free_messages (listing.tokens.items, listing.tokens.count);
        for (size_t i = 0; i < listing.hash_count; i++)
            free (listing.hashes [i]);
        free (listing.hashes);
        return -1;
    }
    *hashes_p = listing.hashes;
    *tokens_p = (Qanat__ApiToken **) listing.tokens.items;
    *count_p = listing.tokens.count;
    return 0;
}
