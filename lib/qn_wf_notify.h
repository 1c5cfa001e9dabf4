/*  qn_wf_notify - a workflow's `notify:`: who hears about a run's end.

        notify:
          on: [failed, succeeded_with_warnings]
          webhook: {url: "https://ci.example/hook", secret: "${{ secrets.HOOK }}"}
          slack: {webhook: "${{ secrets.SLACK }}"}
          email: {to: [ops@example.com], smtp: "smtps://mail.example:465",
                  from: qanat@example.com, user: qanat, password: "${{ secrets.SMTP }}"}

    `notify:` is one such mapping or a sequence of them (each with its own
    `on:`).  Each channel of a mapping becomes one qn_notify_channel_t.
    Values may hold ${{ secrets.NAME }} references, kept as written: the
    coordinator resolves them when it sends, never earlier, so that no
    value is parsed, stored or logged.  The same block, alone in a file,
    is the coordinator's default for workflows without one
    (qn_wf_notify_load).  docs/notifications.md has the whole format.

    One of the files of the qn_workflow class: qn_workflow.c calls the
    parser, so the include checker counts it with qn_workflow.
*/
#ifndef QN_WF_NOTIFY_H_INCLUDED
#define QN_WF_NOTIFY_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include "qn_yaml.h"

//  The run endings a channel listens to (`on:`)
#define QN_NOTIFY_ON_FAILED             1u
#define QN_NOTIFY_ON_WARNINGS           2u      //  succeeded_with_warnings
#define QN_NOTIFY_ON_SUCCEEDED          4u
#define QN_NOTIFY_ON_CANCELED           8u
#define QN_NOTIFY_ON_CHECK_FAILED       16u     //  failed because an error check failed
#define QN_NOTIFY_ON_DEFAULT            QN_NOTIFY_ON_FAILED

//  Most channels one workflow may have
#define QN_NOTIFY_CHANNELS_MAX          16
//  Most recipients of one email channel
#define QN_NOTIFY_TO_MAX                32

typedef enum {
    QN_NOTIFY_WEBHOOK = 0,
    QN_NOTIFY_SLACK,
    QN_NOTIFY_EMAIL
} qn_notify_kind_t;

typedef struct {
    qn_notify_kind_t kind;
    unsigned on;                 //  QN_NOTIFY_ON_* flags
    char *url;                   //  webhook url, Slack webhook, or the SMTP server url
    char *secret;                //  webhook: the signing key; NULL = unsigned
    char **to;                   //  email: recipients
    size_t to_count;
    char *from;                  //  email: sender
    char *user;                  //  email: SMTP login, NULL = none
    char *password;              //  email: always a ${{ secrets.NAME }} reference
    size_t line, col;            //  where the channel is written
} qn_notify_channel_t;

typedef struct _qn_wf_notify_t qn_wf_notify_t;
struct _qn_wf_notify_t {
    qn_notify_channel_t *channels;
    size_t channel_count;
};

//  Parses the value of `notify:`; problems go to ctx as file:line:col
//  errors.  Returns NULL after an error or for an empty block.
qn_wf_notify_t *
    qn_wf_notify_parse (qn_yaml_ctx_t *ctx, qn_yaml_node_t *node);

//  Reads a file whose top level has one key, `notify:` (the coordinator's
//  default).  NULL with *error_p (malloc'd "file:line:col: ..." lines).
qn_wf_notify_t *
    qn_wf_notify_load (const char *path, char **error_p);

void
    qn_wf_notify_destroy (qn_wf_notify_t **self_p);

//  The name of one QN_NOTIFY_ON_* flag ("failed", ...), or "?"
const char *
    qn_wf_notify_event_name (unsigned flag);

//  The channel kind's name: "webhook", "slack", "email"
const char *
    qn_wf_notify_kind_name (qn_notify_kind_t kind);

//  True when text's every "${{" opens a well-formed ${{ secrets.NAME }}
//  (NAME: letters, digits, '_').  Sets *bad_p to the first bad one.
bool
    qn_wf_notify_refs_ok (const char *text, const char **bad_p);

#endif
