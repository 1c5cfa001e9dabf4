/*  qn_redact - hides an attempt's secrets in what it reports.

    Every secret value an Assign names in redact is replaced by "***" in
    what the attempt reports, before it reaches the spool.  Values of any
    length are hidden, even of one byte (which may hide innocent text
    too: the operator chose that secret).  A value that spans lines (a
    PEM key, a value with a trailing newline) cannot appear whole in one
    log line, so each of its lines is hidden as well.

    Long lines reach us in 8 KiB pieces (qn_linebuf).  A secret cut by
    such a split is still found: at the end of a partial piece, the tail
    that could be the start of a secret is held back (in the attempt's
    carry for that stream, at most the longest value less one byte) and
    put in front of the next piece of the same line.  Pieces may thus be
    a little shorter or longer than 8 KiB.

    What the redactor hands out, and what it holds back, is wiped before
    it is freed: it may hold a secret.
*/
#ifndef QN_REDACT_H_INCLUDED
#define QN_REDACT_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _qn_redact_t qn_redact_t;

//  Bytes held back at the end of a piece of a long line: they could be
//  the start of a secret that the next piece completes.  One per stream
//  of an attempt, zero-initialised; free its data with
//  qn_redact_wipe_free (data, size).
typedef struct {
    uint8_t *data;
    size_t size;
} qn_redact_carry_t;

//  A redactor for the count values (NULL entries are skipped), or NULL
//  when there are none, or when out of memory: then *failed_p is set,
//  and the caller must not run the attempt.
qn_redact_t *
    qn_redact_new (char **values, size_t count, bool *failed_p);

//  Wipes the values, destroys the redactor and nulls the pointer.
//  Idempotent.
void
    qn_redact_destroy (qn_redact_t **self_p);

//  Redacts carry + data into a fresh buffer (the caller frees it with
//  qn_redact_wipe_free; *out_size is its size).  When partial (the line
//  goes on in the next piece), a tail that could start a secret goes
//  back into carry instead of the output.  NULL when out of memory (then
//  nothing may be reported: the piece is lost rather than shown).
uint8_t *
    qn_redact_bytes (const qn_redact_t *self, qn_redact_carry_t *carry, const void *data,
                     size_t size, bool partial, size_t *out_size);

//  A redacted copy of a C string (caller frees), NULL when out of memory.
char *
    qn_redact_string (const qn_redact_t *self, const char *text);

//  A stack trace (qn_stacktrace), redacted line by line; a line cut at
//  its length cap that ends in the first bytes of a secret shows "***"
//  for them.  Caller frees; NULL when out of memory.
char *
    qn_redact_trace (const qn_redact_t *self, const char *trace);

//  Zeroes size bytes at data, then frees it.  data may be NULL.
void
    qn_redact_wipe_free (void *data, size_t size);

#ifdef __cplusplus
}
#endif
#endif
