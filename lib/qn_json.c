/*  qn_json - protocol messages as JSON.  See qn_json.h for the rules. */
#include "qn_json.h"
#include "qn_params.h"
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  Deeper than any message of the protocol; a guard for a hostile descriptor
#define S_DEPTH_MAX 64
#define S_US_PER_S  INT64_C (1000000)
#define S_DAYS_PER_400Y 146097

static json_t *s_message (const ProtobufCMessage *message, int depth);

//  ---------------------------------------------------------------------
//  Text: UTF-8 checked, base64

//  Length of the valid UTF-8 sequence at text (RFC 3629: no overlong
//  forms, no surrogates, nothing above U+10FFFF), or 0 when invalid
static size_t
s_utf8_length (const uint8_t *text, size_t left)
{
    uint8_t c = text [0];
    if (c < 0x80)
        return 1;
    size_t length = c >= 0xC2 && c <= 0xDF? 2: c >= 0xE0 && c <= 0xEF? 3
                  : c >= 0xF0 && c <= 0xF4? 4: 0;
    if (length == 0 || length > left)
        return 0;
    for (size_t i = 1; i < length; i++)
        if ((text [i] & 0xC0) != 0x80)
            return 0;
    if ((c == 0xE0 && text [1] < 0xA0)      //  overlong
    ||  (c == 0xED && text [1] > 0x9F)      //  surrogate
    ||  (c == 0xF0 && text [1] < 0x90)      //  overlong
    ||  (c == 0xF4 && text [1] > 0x8F))     //  above U+10FFFF
        return 0;
    return length;
}

json_t *
qn_json_text (const void *data, size_t size)
{
    const uint8_t *text = (const uint8_t *) data;
    if (!text)
        size = 0;
    //  Each invalid byte grows to three; check before multiplying
    if (size > (SIZE_MAX - 1) / 3)
        return NULL;
    char *clean = (char *) malloc (size * 3 + 1);
    if (!clean)
        return NULL;
    size_t used = 0;
    for (size_t at = 0; at < size;) {
        size_t length = s_utf8_length (text + at, size - at);
        if (length) {
            memcpy (clean + used, text + at, length);
            used += length;
            at += length;
        }
        else {
            memcpy (clean + used, "\xEF\xBF\xBD", 3);
            used += 3;
            at++;
        }
    }
    json_t *string = json_stringn_nocheck (clean, used);
    free (clean);
    return string;
}

static json_t *
s_string (const char *text)
{
    return qn_json_text (text, text? strlen (text): 0);
}

char *
qn_json_base64 (const void *bytes, size_t size)
{
    static const char alphabet [] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const uint8_t *data = (const uint8_t *) bytes;
    if (size > SIZE_MAX / 4 * 3 - 3)
        return NULL;
    size_t length = (size + 2) / 3 * 4;
    char *text = (char *) malloc (length + 1);
    if (!text)
        return NULL;
    size_t used = 0;
    for (size_t at = 0; at < size; at += 3) {
        uint32_t group = (uint32_t) data [at] << 16;
        if (at + 1 < size)
            group |= (uint32_t) data [at + 1] << 8;
        if (at + 2 < size)
            group |= data [at + 2];
        text [used++] = alphabet [(group >> 18) & 63];
        text [used++] = alphabet [(group >> 12) & 63];
        text [used++] = at + 1 < size? alphabet [(group >> 6) & 63]: '=';
        text [used++] = at + 2 < size? alphabet [group & 63]: '=';
    }
    text [used] = '\0';
    return text;
}

static json_t *
s_base64 (const uint8_t *data, size_t size)
{
    char *text = qn_json_base64 (data, size);
    if (!text)
        return NULL;
    json_t *string = json_stringn_nocheck (text, strlen (text));
    free (text);
    return string;
}

//  ---------------------------------------------------------------------
//  Times

static int64_t
s_floor_div (int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0))? q - 1: q;
}

static bool
s_leap (int64_t year)
{
    return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

static int
s_month_days (int64_t year, int month)
{
    static const int days [] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    return month == 2 && s_leap (year)? 29: days [month - 1];
}

void
qn_json_time_format (int64_t us, char out [QN_JSON_TIME_SIZE])
{
    out [0] = 0;
    if (us == 0)
        return;
    int64_t seconds = s_floor_div (us, S_US_PER_S);
    int64_t fraction = us - seconds * S_US_PER_S;
    int64_t days = s_floor_div (seconds, 86400);
    int64_t second_of_day = seconds - days * 86400;
    //  The Gregorian calendar repeats every 400 years: whole cycles first,
    //  then at most 400 years and 12 months one by one
    int64_t cycles = s_floor_div (days, S_DAYS_PER_400Y);
    days -= cycles * S_DAYS_PER_400Y;
    int64_t year = 1970 + 400 * cycles;
    while (days >= (s_leap (year)? 366: 365)) {
        days -= s_leap (year)? 366: 365;
        year++;
    }
    int month = 1;
    while (days >= s_month_days (year, month)) {
        days -= s_month_days (year, month);
        month++;
    }
    if (year < 0 || year > 9999)
        return;
    //  YYYY-MM-DDTHH:MM:SS.uuuuuuZ, each part written with its width
    const int64_t parts [] = { year, month, days + 1, second_of_day / 3600,
                               second_of_day / 60 % 60, second_of_day % 60, fraction };
    static const int widths [] = { 4, 2, 2, 2, 2, 2, 6 };
    static const char after [] = "--T::.Z";
    char *at = out;
    for (size_t i = 0; i < 7; i++) {
        int64_t value = parts [i];
        for (int digit = widths [i] - 1; digit >= 0; digit--) {
            at [digit] = (char) ('0' + value % 10);
            value /= 10;
        }
        at += widths [i];
        *at++ = after [i];
    }
    *at = 0;
}

//  Reads exactly count digits; -1 when they are not there
static int64_t
s_digits (const char **text_p, int count)
{
    int64_t value = 0;
    for (int i = 0; i < count; i++) {
        char c = (*text_p) [i];
        if (c < '0' || c > '9')
            return -1;
        value = value * 10 + (c - '0');
    }
    *text_p += count;
    return value;
}

//  Days from 1970-01-01 to the first of January of year
static int64_t
s_days_to_year (int64_t year)
{
    int64_t before = year - 1;
    int64_t leaps = s_floor_div (before, 4) - s_floor_div (before, 100)
                  + s_floor_div (before, 400);
    //  Leap years before 1970: 477
    return 365 * (year - 1970) + leaps - 477;
}

int
qn_json_time_parse (const char *text, int64_t *us_p)
{
    if (!text || !us_p)
        return -1;
    const char *at = text;
    int64_t year = s_digits (&at, 4);
    if (year < 0 || *at++ != '-')
        return -1;
    int64_t month = s_digits (&at, 2);
    if (month < 1 || month > 12 || *at++ != '-')
        return -1;
    int64_t day = s_digits (&at, 2);
    if (day < 1 || day > s_month_days (year, (int) month) || (*at != 'T' && *at != 't'))
        return -1;
    at++;
    int64_t hour = s_digits (&at, 2);
    if (hour < 0 || hour > 23 || *at++ != ':')
        return -1;
    int64_t minute = s_digits (&at, 2);
    if (minute < 0 || minute > 59 || *at++ != ':')
        return -1;
    //  60 is a leap second: it reads as the next minute's first second
    int64_t second = s_digits (&at, 2);
    if (second < 0 || second > 60)
        return -1;
    int64_t fraction = 0;
    if (*at == '.') {
        at++;
        int count = 0;
        while (*at >= '0' && *at <= '9' && count < 10) {
            if (count < 6)
                fraction = fraction * 10 + (*at - '0');
            count++;
            at++;
        }
        if (count == 0 || count > 9)
            return -1;
        for (; count < 6; count++)
            fraction *= 10;
    }
    int64_t offset = 0;
    if (*at == 'Z' || *at == 'z')
        at++;
    else
    if (*at == '+' || *at == '-') {
        int sign = *at++ == '-'? -1: 1;
        int64_t offset_hour = s_digits (&at, 2);
        if (offset_hour < 0 || offset_hour > 23 || *at++ != ':')
            return -1;
        int64_t offset_minute = s_digits (&at, 2);
        if (offset_minute < 0 || offset_minute > 59)
            return -1;
        offset = sign * (offset_hour * 3600 + offset_minute * 60);
    }
    else
        return -1;
    if (*at)
        return -1;
    int64_t days = s_days_to_year (year);
    for (int m = 1; m < month; m++)
        days += s_month_days (year, m);
    days += day - 1;
    int64_t seconds = days * 86400 + hour * 3600 + minute * 60 + second - offset;
    *us_p = seconds * S_US_PER_S + fraction;
    return 0;
}

//  ---------------------------------------------------------------------
//  Errors and parameters

json_t *
qn_json_error (const char *code, const char *message, const char *field)
{
    json_t *inner = json_object ();
    json_t *outer = json_object ();
    if (!inner || !outer
    ||  json_object_set_new (inner, "code", s_string (code))
    ||  json_object_set_new (inner, "message", s_string (message))
    ||  (field && json_object_set_new (inner, "field", s_string (field)))
    ||  json_object_set (outer, "error", inner)) {
        json_decref (inner);
        json_decref (outer);
        return NULL;
    }
    json_decref (inner);
    return outer;
}

//  The whole text is a decimal number (no space, hex, inf or nan)
static bool
s_plain_number (const char *value, const char *end)
{
    return *value && !isspace ((unsigned char) *value) && end && *end == '\0'
        && !strpbrk (value, "xXnNiI");
}

json_t *
qn_json_param_value (const char *value, const char *type)
{
    if (!value)
        value = "";
    if (type && strcmp (type, "int") == 0) {
        char *end = NULL;
        errno = 0;
        long long number = strtoll (value, &end, 10);
        if (errno == 0 && s_plain_number (value, end))
            return json_integer ((json_int_t) number);
    }
    else
    if (type && strcmp (type, "float") == 0) {
        char *end = NULL;
        errno = 0;
        double number = strtod (value, &end);
        if (errno == 0 && s_plain_number (value, end) && isfinite (number))
            return json_real (number);
    }
    else
    if (type && strcmp (type, "bool") == 0) {
        bool truth;
        if (qn_params_bool (value, &truth) == 0)
            return json_boolean (truth);
    }
    return s_string (value);
}

int
qn_json_param_text (const json_t *value, char **text_p)
{
    if (!text_p)
        return -1;
    *text_p = NULL;
    char buffer [64];
    if (json_is_string (value)) {
        const char *text = json_string_value (value);
        size_t length = json_string_length (value);
        if (strlen (text) != length)
            return -1;
        *text_p = strdup (text);
    }
    else
    if (json_is_integer (value)) {
        snprintf (buffer, sizeof buffer, "%" JSON_INTEGER_FORMAT, json_integer_value (value));
        *text_p = strdup (buffer);
    }
    else
    if (json_is_real (value)) {
        //  The shortest text that reads back as the same double
        double number = json_real_value (value);
        for (int precision = 1; precision <= 17; precision++) {
            snprintf (buffer, sizeof buffer, "%.*g", precision, number);
            if (strtod (buffer, NULL) == number)
                break;
        }
        *text_p = strdup (buffer);
    }
    else
    if (json_is_boolean (value))
        *text_p = strdup (json_is_true (value)? "true": "false");
    return *text_p? 0: -1;
}

//  ---------------------------------------------------------------------
//  Messages

//  The enum's value name without the prefix every value shares (up to its
//  last '_'), in lower case; the number when the enum does not name it
static json_t *
s_enum (const ProtobufCEnumDescriptor *descriptor, int value)
{
    const ProtobufCEnumValue *named = descriptor
        ? protobuf_c_enum_descriptor_get_value (descriptor, value): NULL;
    if (!named || !named->name)
        return json_integer (value);
    size_t common = strlen (named->name);
    for (unsigned i = 0; i < descriptor->n_values; i++) {
        const char *other = descriptor->values [i].name;
        size_t same = 0;
        while (other && same < common && other [same] == named->name [same])
            same++;
        common = same;
    }
    //  Cut after the last '_' inside the shared part, never the whole name
    size_t prefix = 0;
    for (size_t i = 0; i < common && named->name [i + 1]; i++)
        if (named->name [i] == '_')
            prefix = i + 1;
    char *lower = strdup (named->name + prefix);
    if (!lower)
        return NULL;
    for (char *c = lower; *c; c++)
        *c = (char) tolower ((unsigned char) *c);
    json_t *string = s_string (lower);
    free (lower);
    return string;
}

static bool
s_is_time (const ProtobufCFieldDescriptor *field)
{
    size_t length = strlen (field->name);
    return (field->type == PROTOBUF_C_TYPE_INT64 || field->type == PROTOBUF_C_TYPE_SINT64
         || field->type == PROTOBUF_C_TYPE_SFIXED64)
        && length > 3 && strcmp (field->name + length - 3, "_us") == 0;
}

static bool
s_is_text_bytes (const ProtobufCMessageDescriptor *owner, const ProtobufCFieldDescriptor *field)
{
    return strcmp (field->name, "source") == 0
        || (strcmp (field->name, "data") == 0 && strcmp (owner->name, "qanat.LogChunk") == 0);
}

static json_t *
s_uint64 (uint64_t value)
{
    if (value <= (uint64_t) INT64_MAX)
        return json_integer ((json_int_t) value);
    char text [24];
    snprintf (text, sizeof text, "%llu", (unsigned long long) value);
    return json_string (text);
}

static json_t *
s_time (int64_t us)
{
    char text [QN_JSON_TIME_SIZE];
    qn_json_time_format (us, text);
    return *text? json_string (text): json_null ();
}

static json_t *
s_real (double value)
{
    return isfinite (value)? json_real (value): json_null ();
}

//  One value of a field; member points at it (an element of a repeated
//  field, or the field itself)
static json_t *
s_value (const ProtobufCMessageDescriptor *owner, const ProtobufCFieldDescriptor *field,
         const void *member, int depth)
{
    switch (field->type) {
        case PROTOBUF_C_TYPE_INT32:
        case PROTOBUF_C_TYPE_SINT32:
        case PROTOBUF_C_TYPE_SFIXED32:
            return json_integer (*(const int32_t *) member);
        case PROTOBUF_C_TYPE_UINT32:
        case PROTOBUF_C_TYPE_FIXED32:
            return json_integer (*(const uint32_t *) member);
        case PROTOBUF_C_TYPE_INT64:
        case PROTOBUF_C_TYPE_SINT64:
        case PROTOBUF_C_TYPE_SFIXED64:
            if (s_is_time (field))
                return s_time (*(const int64_t *) member);
            return json_integer (*(const int64_t *) member);
        case PROTOBUF_C_TYPE_UINT64:
        case PROTOBUF_C_TYPE_FIXED64:
            return s_uint64 (*(const uint64_t *) member);
        case PROTOBUF_C_TYPE_FLOAT:
            return s_real (*(const float *) member);
        case PROTOBUF_C_TYPE_DOUBLE:
            return s_real (*(const double *) member);
        case PROTOBUF_C_TYPE_BOOL:
            return json_boolean (*(const protobuf_c_boolean *) member);
        case PROTOBUF_C_TYPE_ENUM:
            return s_enum ((const ProtobufCEnumDescriptor *) field->descriptor,
                           *(const int *) member);
        case PROTOBUF_C_TYPE_STRING:
            return s_string (*(char * const *) member);
        case PROTOBUF_C_TYPE_BYTES: {
            const ProtobufCBinaryData *bytes = (const ProtobufCBinaryData *) member;
            if (s_is_text_bytes (owner, field))
                return qn_json_text (bytes->data, bytes->len);
            return s_base64 (bytes->data, bytes->data? bytes->len: 0);
        }
        case PROTOBUF_C_TYPE_MESSAGE: {
            const ProtobufCMessage *message = *(ProtobufCMessage * const *) member;
            return message? s_message (message, depth + 1): json_null ();
        }
    }
    return json_null ();
}

static size_t
s_element_size (ProtobufCType type)
{
    switch (type) {
        case PROTOBUF_C_TYPE_INT64:
        case PROTOBUF_C_TYPE_SINT64:
        case PROTOBUF_C_TYPE_SFIXED64:
        case PROTOBUF_C_TYPE_UINT64:
        case PROTOBUF_C_TYPE_FIXED64:
            return sizeof (uint64_t);
        case PROTOBUF_C_TYPE_DOUBLE:
            return sizeof (double);
        case PROTOBUF_C_TYPE_BOOL:
            return sizeof (protobuf_c_boolean);
        case PROTOBUF_C_TYPE_ENUM:
            return sizeof (int);
        case PROTOBUF_C_TYPE_STRING:
            return sizeof (char *);
        case PROTOBUF_C_TYPE_BYTES:
            return sizeof (ProtobufCBinaryData);
        case PROTOBUF_C_TYPE_MESSAGE:
            return sizeof (ProtobufCMessage *);
        default:
            return sizeof (uint32_t);
    }
}

//  A string field of message by name, NULL when the descriptor has none
static const char *
s_string_field (const ProtobufCMessage *message, const char *name)
{
    const ProtobufCFieldDescriptor *field =
        protobuf_c_message_descriptor_get_field_by_name (message->descriptor, name);
    if (!field || field->type != PROTOBUF_C_TYPE_STRING
    ||  field->label == PROTOBUF_C_LABEL_REPEATED)
        return NULL;
    return *(char * const *) ((const char *) message + field->offset);
}

//  Repeated Label or Param as an object; NULL when out of memory
static json_t *
s_pairs (ProtobufCMessage * const *items, size_t count, bool typed)
{
    json_t *object = json_object ();
    for (size_t i = 0; object && i < count; i++) {
        if (!items [i])
            continue;
        const char *key = s_string_field (items [i], typed? "name": "key");
        const char *value = s_string_field (items [i], "value");
        json_t *key_text = s_string (key);
        json_t *value_json = typed
            ? qn_json_param_value (value, s_string_field (items [i], "type"))
            : s_string (value);
        if (!key_text || !value_json
        ||  json_object_set_new (object, json_string_value (key_text), value_json)) {
            if (!key_text)
                json_decref (value_json);
            json_decref (object);
            object = NULL;
        }
        json_decref (key_text);
    }
    return object;
}

static json_t *
s_repeated (const ProtobufCMessageDescriptor *owner, const ProtobufCFieldDescriptor *field,
            const void *items, size_t count, int depth)
{
    if (!items)
        count = 0;
    if (field->type == PROTOBUF_C_TYPE_MESSAGE && field->descriptor) {
        const char *type = ((const ProtobufCMessageDescriptor *) field->descriptor)->name;
        if (strcmp (type, "qanat.Label") == 0 || strcmp (type, "qanat.Param") == 0)
            return s_pairs ((ProtobufCMessage * const *) items, count,
                            strcmp (type, "qanat.Param") == 0);
    }
    json_t *array = json_array ();
    size_t size = s_element_size (field->type);
    for (size_t i = 0; array && i < count; i++)
        if (json_array_append_new (array, s_value (owner, field,
                                                   (const char *) items + i * size, depth))) {
            json_decref (array);
            array = NULL;
        }
    return array;
}

//  Adds one field to object; 0, or -1 when out of memory
static int
s_field (json_t *object, const ProtobufCMessage *message,
         const ProtobufCFieldDescriptor *field, int depth)
{
    const char *base = (const char *) message;
    const void *member = base + field->offset;
    char key [256];
    //  A time X_us takes the key X: a field named X as well gives way
    //  (AttemptInfo.finished says what finished_us != 0 says)
    snprintf (key, sizeof key, "%s_us", field->name);
    const ProtobufCFieldDescriptor *time =
        protobuf_c_message_descriptor_get_field_by_name (message->descriptor, key);
    if (time && s_is_time (time))
        return 0;
    json_t *value = NULL;
    if (field->label == PROTOBUF_C_LABEL_REPEATED)
        value = s_repeated (message->descriptor, field, *(void * const *) member,
                            *(const size_t *) (base + field->quantifier_offset), depth);
    else
    if (field->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        //  Only the member of the oneof that is set
        if (*(const uint32_t *) (base + field->quantifier_offset) != field->id)
            return 0;
        value = s_value (message->descriptor, field, member, depth);
    }
    else
    if (field->label == PROTOBUF_C_LABEL_OPTIONAL
    &&  field->type != PROTOBUF_C_TYPE_MESSAGE && field->type != PROTOBUF_C_TYPE_STRING
    &&  !*(const protobuf_c_boolean *) (base + field->quantifier_offset))
        value = json_null ();           //  proto2 or proto3 `optional`, not set
    else
        value = s_value (message->descriptor, field, member, depth);
    if (!value)
        return -1;
    snprintf (key, sizeof key, "%s", field->name);
    if (s_is_time (field))
        key [strlen (key) - 3] = 0;
    return json_object_set_new (object, key, value);
}

//  RunInfo's duration in seconds, null while it has not finished
static json_t *
s_duration (const ProtobufCMessage *message)
{
    const ProtobufCFieldDescriptor *created =
        protobuf_c_message_descriptor_get_field_by_name (message->descriptor, "created_us");
    const ProtobufCFieldDescriptor *finished =
        protobuf_c_message_descriptor_get_field_by_name (message->descriptor, "finished_us");
    if (!created || !finished || created->type != PROTOBUF_C_TYPE_INT64
    ||  finished->type != PROTOBUF_C_TYPE_INT64)
        return json_null ();
    int64_t start = *(const int64_t *) ((const char *) message + created->offset);
    int64_t end = *(const int64_t *) ((const char *) message + finished->offset);
    if (start == 0 || end == 0 || end < start)
        return json_null ();
    return json_real ((double) (end - start) / 1e6);
}

static json_t *
s_message (const ProtobufCMessage *message, int depth)
{
    if (depth > S_DEPTH_MAX || !message || !message->descriptor
    ||  message->descriptor->magic != PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC)
        return NULL;
    const ProtobufCMessageDescriptor *descriptor = message->descriptor;
    json_t *object = json_object ();
    for (unsigned i = 0; object && i < descriptor->n_fields; i++)
        if (s_field (object, message, descriptor->fields + i, depth)) {
            json_decref (object);
            object = NULL;
        }
    if (object && strcmp (descriptor->name, "qanat.RunInfo") == 0
    &&  json_object_set_new (object, "duration_s", s_duration (message))) {
        json_decref (object);
        object = NULL;
    }
    return object;
}

json_t *
qn_json_from_message (const ProtobufCMessage *message)
{
    return s_message (message, 0);
}
