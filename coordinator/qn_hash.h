/*  qn_hash - hash tables safe against chosen collisions.

    zhashx's default hash is unkeyed and easy to collide, and czmq grows a
    table each time a lookup walks a chain longer than its limit: a few
    keys of equal hash, looked up in turn, make a table grow until
    allocation fails.  The coordinator's tables are keyed by what peers
    send (agent names, routing ids, public keys), so every one of them is
    made here and hashes with SipHash under a key drawn once per process:
    collisions cannot be chosen.
*/
#ifndef QN_HASH_H_INCLUDED
#define QN_HASH_H_INCLUDED

#include <czmq.h>

//  A new zhashx with the keyed hash, or NULL (libsodium unusable, or out
//  of memory).
zhashx_t *
    qn_hash_new (void);

#endif
