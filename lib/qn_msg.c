/*  qn_msg - protocol envelope codec.  See include/qn_msg.h. */
#include "qn_msg.h"
#include <sys/time.h>
#include <ctype.h>

zframe_t *
qn_msg_encode (Qanat__Envelope *env)
{
    assert (env);
    env->version = QN_PROTOCOL_VERSION;
    size_t size = qanat__envelope__get_packed_size (env);
    if (size > QN_MAX_MESSAGE_SIZE)
        return NULL;
    zframe_t *frame = zframe_new (NULL, size);
    if (!frame)
        return NULL;
    qanat__envelope__pack (env, zframe_data (frame));
    return frame;
}

//  protobuf-c keeps the unknown fields it meets and packs them again, and
//  it accepts the tag of field number 0 (invalid in protobuf) when the
//  varint is written in a long form, yet refuses it in the short form it
//  packs.  Such a message would re-pack into bytes no one can read (a log
//  chunk stored that way could never be read back), so it is malformed.
static bool
s_field_numbers_valid (const ProtobufCMessage *message)
{
    for (unsigned i = 0; i < message->n_unknown_fields; i++)
        if (message->unknown_fields [i].tag == 0)
            return false;
    const ProtobufCMessageDescriptor *descriptor = message->descriptor;
    const char *base = (const char *) message;
    for (unsigned f = 0; f < descriptor->n_fields; f++) {
        const ProtobufCFieldDescriptor *field = descriptor->fields + f;
        if (field->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        if (field->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t count = *(const size_t *) (base + field->quantifier_offset);
            ProtobufCMessage **items = *(ProtobufCMessage ***) (base + field->offset);
            for (size_t i = 0; i < count; i++)
                if (items [i] && !s_field_numbers_valid (items [i]))
                    return false;
            continue;
        }
        if ((field->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
        &&  *(const uint32_t *) (base + field->quantifier_offset) != field->id)
            continue;
        const ProtobufCMessage *child = *(ProtobufCMessage **) (base + field->offset);
        if (child && !s_field_numbers_valid (child))
            return false;
    }
    return true;
}

//  protobuf-c accepts an empty buffer as an all-default message; an
//  envelope without a body is as useless to us as garbage, so both are
//  "malformed".
Qanat__Envelope *
qn_msg_decode (const void *data, size_t size, qn_msg_status_t *status, uint32_t *version_p)
{
    qn_msg_status_t dummy;
    if (!status)
        status = &dummy;
    if (size > QN_MAX_MESSAGE_SIZE) {
        *status = QN_MSG_TOO_LARGE;
        return NULL;
    }
    Qanat__Envelope *env = qanat__envelope__unpack (NULL, size, (const uint8_t *) data);
    if (!env) {
        *status = QN_MSG_MALFORMED;
        return NULL;
    }
    if (!s_field_numbers_valid (&env->base)) {
        *status = QN_MSG_MALFORMED;
        qanat__envelope__free_unpacked (env, NULL);
        return NULL;
    }
    //  Neither a version nor a body: not an envelope of any version (an
    //  empty buffer, or bytes protobuf-c took for unknown fields).
    if (env->version == 0 && env->body_case == QANAT__ENVELOPE__BODY__NOT_SET) {
        *status = QN_MSG_MALFORMED;
        qanat__envelope__free_unpacked (env, NULL);
        return NULL;
    }
    if (env->version != QN_PROTOCOL_VERSION) {
        if (version_p)
            *version_p = env->version;
        *status = QN_MSG_BAD_VERSION;
        qanat__envelope__free_unpacked (env, NULL);
        return NULL;
    }
    if (env->body_case == QANAT__ENVELOPE__BODY__NOT_SET) {
        *status = QN_MSG_MALFORMED;
        qanat__envelope__free_unpacked (env, NULL);
        return NULL;
    }
    *status = QN_MSG_OK;
    return env;
}

void
qn_msg_free (Qanat__Envelope **env_p)
{
    assert (env_p);
    if (*env_p) {
        qanat__envelope__free_unpacked (*env_p, NULL);
        *env_p = NULL;
    }
}

int
qn_msg_send (zsock_t *sock, zframe_t *routing_id, Qanat__Envelope *env)
{
    zframe_t *frame = qn_msg_encode (env);
    if (!frame)
        return -1;
    if (routing_id) {
        zframe_t *id = zframe_dup (routing_id);
        if (zframe_send (&id, sock, ZFRAME_MORE) == -1) {
            zframe_destroy (&id);
            zframe_destroy (&frame);
            return -1;
        }
    }
    if (zframe_send (&frame, sock, 0) == -1) {
        zframe_destroy (&frame);
        return -1;
    }
    return 0;
}

const char *
qn_msg_status_str (qn_msg_status_t status)
{
    switch (status) {
        case QN_MSG_OK:          return "ok";
        case QN_MSG_TOO_LARGE:   return "message too large";
        case QN_MSG_MALFORMED:   return "malformed message";
        case QN_MSG_BAD_VERSION: return "unsupported protocol version";
    }
    return "unknown";
}

int
qn_msg_prepare_socket (zsock_t *sock)
{
    assert (sock);
    //  libzmq drops an oversized message at the transport, before we ever
    //  allocate it; our own check in qn_msg_decode covers the rest.
    zsock_set_maxmsgsize (sock, QN_MAX_MESSAGE_SIZE + 1024);
    zsock_set_linger (sock, 0);
    return 0;
}

int
qn_run_status_parse (const char *word, Qanat__RunStatus *status_p)
{
    const ProtobufCEnumDescriptor *desc = &qanat__run_status__descriptor;
    for (unsigned i = 0; word && i < desc->n_values; i++) {
        const char *full = desc->values [i].name;       //  RUN_SUCCEEDED
        const char *bare = strncmp (full, "RUN_", 4) == 0? full + 4: full;
        if (strlen (bare) != strlen (word))
            continue;
        bool same = true;
        for (size_t c = 0; bare [c] && same; c++)
            same = tolower ((unsigned char) bare [c]) == word [c];
        if (same) {
            *status_p = (Qanat__RunStatus) desc->values [i].value;
            return 0;
        }
    }
    return -1;
}

int64_t
qn_now_us (void)
{
    struct timeval tv;
    gettimeofday (&tv, NULL);
    return (int64_t) tv.tv_sec * 1000000 + tv.tv_usec;
}

const char *
qn_task_status_name (Qanat__TaskStatus status)
{
    switch (status) {
        case QANAT__TASK_STATUS__TASK_PENDING:   return "pending";
        case QANAT__TASK_STATUS__TASK_QUEUED:    return "queued";
        case QANAT__TASK_STATUS__TASK_RUNNING:   return "running";
        case QANAT__TASK_STATUS__TASK_SUCCEEDED: return "succeeded";
        case QANAT__TASK_STATUS__TASK_FAILED:    return "failed";
        case QANAT__TASK_STATUS__TASK_SKIPPED:   return "skipped";
        case QANAT__TASK_STATUS__TASK_CANCELED:  return "canceled";
        default:                                 return "unknown";
    }
}

const char *
qn_run_status_name (Qanat__RunStatus status)
{
    switch (status) {
        case QANAT__RUN_STATUS__RUN_QUEUED:    return "queued";
        case QANAT__RUN_STATUS__RUN_RUNNING:   return "running";
        case QANAT__RUN_STATUS__RUN_SUCCEEDED: return "succeeded";
        case QANAT__RUN_STATUS__RUN_SUCCEEDED_WITH_WARNINGS: return "succeeded with warnings";
        case QANAT__RUN_STATUS__RUN_FAILED:    return "failed";
        case QANAT__RUN_STATUS__RUN_CANCELED:  return "canceled";
        default:                               return "unknown";
    }
}
