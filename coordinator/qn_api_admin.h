/*  qn_api_admin - the handlers of the administrative requests: users and
    join tokens listed and revoked, secrets deleted, agents forgotten and
    relabelled.  Each is a row of qn_api's table, role admin.

    One of the files of the qn_coordinator class: it shares the engine's
    records (qn_engine.h), so the include checker counts it with
    qn_coordinator.
*/
#ifndef QN_API_ADMIN_H_INCLUDED
#define QN_API_ADMIN_H_INCLUDED

#include "qn_api.h"

//  Users and join tokens as Principals (PrincipalList), revoked, expired
//  and used-up ones too; never a secret.
void
    qn_api_admin_list_users (qn_api_call_t *call, Qanat__Request *request);
void
    qn_api_admin_list_tokens (qn_api_call_t *call, Qanat__Request *request);

//  Revokes a user (not the last admin) or a join token; replies with its
//  record.
void
    qn_api_admin_revoke_user (qn_api_call_t *call, Qanat__Request *request);
void
    qn_api_admin_revoke_token (qn_api_call_t *call, Qanat__Request *request);

//  Deletes a secret's value and access list; replies with its name.
void
    qn_api_admin_delete_secret (qn_api_call_t *call, Qanat__Request *request);

//  Forgets an agent that is not connected (revoked, or lost: a stopped
//  agent counts as connected until its lost deadline): its record and
//  its keys.  Replies with its last record.
void
    qn_api_admin_remove_agent (qn_api_call_t *call, Qanat__Request *request);

//  Sets and removes labels of an enrolled agent; replies with its
//  principal (the labels now).
void
    qn_api_admin_label_agent (qn_api_call_t *call, Qanat__Request *request);

#endif
