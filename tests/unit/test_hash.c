/*  Unit tests for qn_hash: tables that hash with SipHash under one key per
    process.  Many keys are found, two tables of a process hash alike, and
    keys that all collide under czmq's plain (Bernstein) hash are inserted,
    found and removed without the table growing out of bounds, which a
    plain zhashx would do (it grows on every long chain it walks). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <czmq.h>
#include "qn_hash.h"

#define MANY  10000

//  czmq's default zhashx hash ("modified Bernstein").
static size_t
s_plain_hash (const char *key)
{
    size_t hash = 0;
    while (*key)
        hash = 33 * hash ^ (size_t) *key++;
    return hash;
}

//  The index-th of 3^9 keys of 18 characters with one plain hash.  Each
//  pair of characters is a, b with 33 * a in [2176, 2304) and b = 33 * a
//  - 2176: from a state s with 33 * s a multiple of 128, a pair leaves the
//  state 33 * 33 * s + 2176, whichever of the three pairs it is, and that
//  state is again one whose 33-fold is a multiple of 128.
static void
s_colliding_key (unsigned index, char key [19])
{
    static const char pairs [3][2] = { { 'C', '#' }, { 'D', 'D' }, { 'E', 'e' } };
    for (int i = 0; i < 9; i++) {
        key [2 * i] = pairs [index % 3][0];
        key [2 * i + 1] = pairs [index % 3][1];
        index /= 3;
    }
    key [18] = 0;
}

static void
test_many_keys (void **state)
{
    (void) state;
    zhashx_t *hash = qn_hash_new ();
    assert_non_null (hash);
    zhashx_set_destructor (hash, (zhashx_destructor_fn *) zstr_free);
    char key [32];
    for (int i = 0; i < MANY; i++) {
        snprintf (key, sizeof key, "agent-%d", i);
        assert_int_equal (zhashx_insert (hash, key, zsys_sprintf ("value %d", i)), 0);
    }
    assert_int_equal (zhashx_size (hash), MANY);
    for (int i = 0; i < MANY; i++) {
        snprintf (key, sizeof key, "agent-%d", i);
        char *value = (char *) zhashx_lookup (hash, key);
        assert_non_null (value);
        char expected [32];
        snprintf (expected, sizeof expected, "value %d", i);
        assert_string_equal (value, expected);
    }
    assert_null (zhashx_lookup (hash, "agent-10000"));
    assert_null (zhashx_lookup (hash, ""));
    //  A key already there is not inserted twice.
    char *dup = strdup ("again");
    assert_int_equal (zhashx_insert (hash, "agent-7", dup), -1);
    free (dup);
    //  Every other key removed: the rest are still found.
    for (int i = 0; i < MANY; i += 2) {
        snprintf (key, sizeof key, "agent-%d", i);
        zhashx_delete (hash, key);
    }
    assert_int_equal (zhashx_size (hash), MANY / 2);
    for (int i = 0; i < MANY; i++) {
        snprintf (key, sizeof key, "agent-%d", i);
        if (i % 2)
            assert_non_null (zhashx_lookup (hash, key));
        else
            assert_null (zhashx_lookup (hash, key));
    }
    zhashx_destroy (&hash);
}

//  The keys of a table in its iteration order, one string.
static char *
s_order (zhashx_t *hash)
{
    size_t size = 0;
    for (void *item = zhashx_first (hash); item; item = zhashx_next (hash))
        size += strlen ((const char *) zhashx_cursor (hash)) + 1;
    char *order = (char *) calloc (1, size + 1);
    for (void *item = zhashx_first (hash); item; item = zhashx_next (hash)) {
        strcat (order, (const char *) zhashx_cursor (hash));
        strcat (order, ",");
    }
    return order;
}

//  The header: one key drawn once per process.  A table made later hashes
//  like one made earlier (it neither re-keys the earlier one, which would
//  lose its keys, nor hashes differently): given the same keys in the same
//  order, the two place them alike and so iterate alike.
static void
test_tables_hash_alike (void **state)
{
    (void) state;
    zhashx_t *first = qn_hash_new ();
    assert_non_null (first);
    char key [32];
    for (int i = 0; i < 1000; i++) {
        snprintf (key, sizeof key, "routing-id-%d", i);
        assert_int_equal (zhashx_insert (first, key, first), 0);
    }
    zhashx_t *second = qn_hash_new ();
    assert_non_null (second);
    for (int i = 0; i < 1000; i++) {
        snprintf (key, sizeof key, "routing-id-%d", i);
        assert_int_equal (zhashx_insert (second, key, second), 0);
    }
    for (int i = 0; i < 1000; i++) {
        snprintf (key, sizeof key, "routing-id-%d", i);
        assert_ptr_equal (zhashx_lookup (first, key), first);
        assert_ptr_equal (zhashx_lookup (second, key), second);
    }
    char *first_order = s_order (first);
    char *second_order = s_order (second);
    assert_int_equal (strlen (first_order), strlen (second_order));
    assert_string_equal (first_order, second_order);
    free (first_order);
    free (second_order);
    zhashx_destroy (&first);
    zhashx_destroy (&second);
}

static void
test_plain_collisions (void **state)
{
    (void) state;
    char key [19];
    s_colliding_key (0, key);
    size_t plain = s_plain_hash (key);
    //  The premise: every key has the same plain hash, and they differ.
    for (unsigned i = 1; i < MANY; i++) {
        s_colliding_key (i, key);
        assert_int_equal (s_plain_hash (key), plain);
    }
    char other [19];
    s_colliding_key (MANY - 2, other);
    assert_string_not_equal (key, other);

    zhashx_t *hash = qn_hash_new ();
    assert_non_null (hash);
    for (unsigned i = 0; i < MANY; i++) {
        s_colliding_key (i, key);
        assert_int_equal (zhashx_insert (hash, key, (void *) (uintptr_t) (i + 1)), 0);
    }
    assert_int_equal (zhashx_size (hash), MANY);
    //  Looked up twice over, in an order unlike the insertion's.
    for (int round = 0; round < 2; round++)
        for (unsigned i = 0; i < MANY; i++) {
            unsigned index = (i * 7919) % MANY;
            s_colliding_key (index, key);
            assert_int_equal ((uintptr_t) zhashx_lookup (hash, key), index + 1);
        }
    //  A colliding key never inserted is not found.
    s_colliding_key (MANY, key);
    assert_int_equal (s_plain_hash (key), plain);
    assert_null (zhashx_lookup (hash, key));
    for (unsigned i = 0; i < MANY; i++) {
        s_colliding_key (i, key);
        zhashx_delete (hash, key);
    }
    assert_int_equal (zhashx_size (hash), 0);
    zhashx_destroy (&hash);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_many_keys),
        cmocka_unit_test (test_tables_hash_alike),
        cmocka_unit_test (test_plain_collisions),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
