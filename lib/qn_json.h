/*  qn_json - protocol messages as JSON, for the HTTP API.

    One generic walk over the protobuf-c descriptors turns any message
    (RunInfo, AgentList, Stats, ...) into JSON by the rules of the HTTP
    contract, so that a new field in proto/qanat.proto shows up in the API
    without code here:

    - field names as in the proto; every scalar is present, proto3
      defaults included, so that shapes are stable; an absent message is
      null; of a oneof only the member that is set appears;
    - integers are numbers; a uint64 above INT64_MAX (which a JSON number
      would not carry exactly through most readers) is a decimal string;
      a float or double that is not finite is null (JSON has no NaN);
    - enums are their value names without the prefix all values of the
      enum share, lower case (RUN_SUCCEEDED_WITH_WARNINGS ->
      "succeeded_with_warnings"); a value the enum does not name is its
      number;
    - an int64 field named *_us is a time: the key drops the suffix and
      holds RFC 3339 UTC with microseconds, or null when 0 (or outside the
      years 0000-9999); a field named like that key as well is left out
      (AttemptInfo.finished: "finished" is the time, null until then);
    - bytes: LogChunk.data and any field named `source` are UTF-8 text
      (invalid bytes become U+FFFD), other bytes are base64; strings are
      checked the same way (protobuf-c does not check them);
    - repeated qanat.Label is an object {key: value} (a later duplicate
      key wins); repeated qanat.Param is an object of values typed by
      Param.type when the descriptor has that field;
    - qanat.RunInfo also gets "duration_s": finished - created in seconds,
      or null while the run has not finished.

    Private to qanat's own programs (not installed).
*/
#ifndef QN_JSON_H_INCLUDED
#define QN_JSON_H_INCLUDED

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include <protobuf-c/protobuf-c.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Size of the buffer qn_json_time_format fills
#define QN_JSON_TIME_SIZE 40

//  The message as a JSON object (a new reference), or NULL when out of
//  memory or when the message is not a protobuf-c message or nests deeper
//  than 64 levels.
json_t *
    qn_json_from_message (const ProtobufCMessage *message);

//  Formats us (microseconds since 1970, UTC) as RFC 3339 with
//  microseconds, "2026-12-07T18:00:00.123456Z"; "" when us is 0 or the
//  year is outside 0000-9999.
void
    qn_json_time_format (int64_t us, char out [QN_JSON_TIME_SIZE]);

//  Parses an RFC 3339 time ("Z" or a +hh:mm / -hh:mm offset, 0 to 9
//  fraction digits, of which the first 6 count) into microseconds since
//  1970.  Returns 0, or -1 when the text is not such a time.
int
    qn_json_time_parse (const char *text, int64_t *us_p);

//  {"error": {"code": code, "message": message, "field": field}}, field
//  left out when NULL.  A new reference, NULL when out of memory.
json_t *
    qn_json_error (const char *code, const char *message, const char *field);

//  A parameter value as JSON by its declared type: "int" a number, "float"
//  a number, "bool" true/false (true/yes/on/1, false/no/off/0, any case);
//  any other type, a NULL type or a value that does not parse as its type:
//  the string.  A new reference, NULL when out of memory.
json_t *
    qn_json_param_value (const char *value, const char *type);

//  A JSON scalar as the text StartRun takes for a parameter: a string as
//  it is, a number in decimal (a real as the shortest text that reads back
//  the same), true/false.  Returns 0 with *text_p malloc'd (the caller
//  frees), or -1 for objects, arrays, null, a string holding a NUL byte,
//  or out of memory.
int
    qn_json_param_text (const json_t *value, char **text_p);

//  A JSON string of size bytes of data read as UTF-8, each invalid byte
//  replaced by U+FFFD.  A new reference, NULL when out of memory.
json_t *
    qn_json_text (const void *data, size_t size);

//  Standard base64 (RFC 4648, padded) of size bytes, as a fresh string.
//  NULL when out of memory.
char *
    qn_json_base64 (const void *data, size_t size);

#ifdef __cplusplus
}
#endif
#endif
