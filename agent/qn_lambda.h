/*  qn_lambda - the pure parts of the AWS Lambda backend, kept apart so
    that they can be tested without an engine: the invocation's payload
    from the task's template and values, the client context that carries
    the attempt's key, the result's values, a FunctionError's reason and
    stack trace, and the CloudWatch Logs lines Lambda writes around every
    invocation (START, END, REPORT).

    The payload.  Without a template it is
        {"params": {NAME: VALUE...}, "inputs": {NAME: VALUE...}}
    (params from QANAT_PARAM_* in the environment, names lower-cased;
    value inputs by their names).  A template (`payload:` of the task's
    `lambda:` block, as JSON) has its strings' references replaced: a
    string that is exactly "${{ params.NAME }}" or "${{ inputs.NAME }}"
    becomes the value, typed (a number, true or false when it reads as
    one, else a string); a reference inside a longer string is replaced
    by the text.

    The result.  A JSON object's members give the value outputs of the
    same names (strings as they are, anything else as compact JSON); an
    output named "result" gets the whole answer.
*/
#ifndef QN_LAMBDA_H_INCLUDED
#define QN_LAMBDA_H_INCLUDED

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include "qanat.pb-c.h"

#ifdef __cplusplus
extern "C" {
#endif

#define QN_LAMBDA_REQUEST_ID_MAX    63

//  The invocation's payload (compact JSON, malloc'd), or NULL with the
//  reason in error.
char *
    qn_lambda_payload (const Qanat__Assign *assign, const char *template_text, char *error,
                       size_t error_size);

//  The X-Amz-Client-Context header's value: base64 of
//  {"custom":{"qanat_key":"qanat-<run>-<task>-<attempt>"}} (malloc'd).
char *
    qn_lambda_client_context (uint64_t run_id, uint32_t task_index, uint32_t attempt);

//  Writes the value outputs assign asks for, found in the answer (text
//  of size bytes), as NAME=VALUE lines to path.  0, or -1 with the reason
//  in error (an output missing, a value with a newline, the file).
int
    qn_lambda_write_values (const Qanat__Assign *assign, const char *text, size_t size,
                            const char *path, char *error, size_t error_size);

//  A FunctionError answer: "ErrorType: message" into reason and the
//  stack trace (the stackTrace lines, or the answer itself) into a fresh
//  string (NULL when out of memory).
char *
    qn_lambda_function_error (const char *text, size_t size, const char *kind, char *reason,
                              size_t reason_size);

//  What a CloudWatch Logs line of a Lambda invocation is
typedef enum {
    QN_LAMBDA_LINE_PLAIN,       //  the function's own output
    QN_LAMBDA_LINE_START,       //  "START RequestId: ID Version: V"
    QN_LAMBDA_LINE_END,         //  "END RequestId: ID"
    QN_LAMBDA_LINE_REPORT       //  "REPORT RequestId: ID\tDuration: ...", the last
} qn_lambda_line_t;

typedef struct {
    double duration_ms;
    double billed_ms;
    double memory_size_mb;
    double max_memory_mb;
    double init_ms;             //  < 0: no cold start
} qn_lambda_report_t;

//  Classifies message (a log event's text); request_id gets the id of a
//  START, END or REPORT line; report (when not NULL) the REPORT figures.
qn_lambda_line_t
    qn_lambda_line (const char *message, char request_id [QN_LAMBDA_REQUEST_ID_MAX + 1],
                    qn_lambda_report_t *report);

#ifdef __cplusplus
}
#endif
#endif
