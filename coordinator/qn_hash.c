/*  qn_hash - hash tables safe against chosen collisions.  See qn_hash.h. */
#include <sodium.h>
#include "qn_hash.h"

static unsigned char s_key [crypto_shorthash_KEYBYTES];
static bool s_keyed = false;

static size_t
s_hash (const void *key)
{
    uint64_t hash = 0;
    crypto_shorthash ((unsigned char *) &hash, (const unsigned char *) key,
                      strlen ((const char *) key), s_key);
    return (size_t) hash;
}

zhashx_t *
qn_hash_new (void)
{
    if (!s_keyed) {
        if (sodium_init () < 0)
            return NULL;
        randombytes_buf (s_key, sizeof s_key);
        s_keyed = true;
    }
    zhashx_t *hash = zhashx_new ();
    if (hash)
        zhashx_set_key_hasher (hash, s_hash);
    return hash;
}
