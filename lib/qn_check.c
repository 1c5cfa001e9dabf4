/*  qn_check - a check expression over a task's metrics.

    The grammar is tiny on purpose: one metric, an optional aggregator, one
    comparison against a literal number.  The parser is a hand-written
    scanner over the expression; every failure names the 0-based offset
    where it went wrong so the workflow parser can point at it.
*/
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qn_check.h"

//  Same limit as qn_metric's QN_METRIC_NAME_MAX; repeated so that this
//  header stays independent of the metric module.
#define S_NAME_MAX  128
//  Longest numeric literal we accept; anything longer is hostile.
#define S_NUMBER_MAX  64

typedef enum { S_AGG_LAST, S_AGG_MIN, S_AGG_MAX, S_AGG_MEAN } s_agg_t;
typedef enum { S_OP_LT, S_OP_LE, S_OP_GT, S_OP_GE, S_OP_EQ, S_OP_NE } s_op_t;

static const char *s_agg_names [] = { "last", "min", "max", "mean" };
static const char *s_op_names [] = { "<", "<=", ">", ">=", "==", "!=" };

struct _qn_check_t {
    char *expr;                 //  trimmed expression as written
    char *metric;
    s_agg_t agg;
    bool agg_explicit;          //  aggregator written out, so we echo it
    s_op_t op;
    double number;
};

static char *
s_strdupf (const char *format, ...)
{
    va_list args;
    va_start (args, format);
    char *result = NULL;
    if (vasprintf (&result, format, args) < 0)
        result = NULL;
    va_end (args);
    return result;
}

static bool
s_is_name_start (int c)
{
    return isascii (c) && (isalpha (c) || c == '_');
}

static bool
s_is_name_char (int c)
{
    return isascii (c) && (isalnum (c) || c == '_' || c == '.' || c == '/' || c == '-');
}

static size_t
s_skip_blanks (const char *s, size_t pos)
{
    while (s [pos] == ' ' || s [pos] == '\t' || s [pos] == '\n' || s [pos] == '\r')
        pos++;
    return pos;
}

//  Records a parse failure; returns NULL so callers can "return s_fail (...)".
static qn_check_t *
s_fail (char **error_p, size_t *error_offset_p, size_t offset, const char *format, ...)
{
    if (error_p) {
        va_list args;
        va_start (args, format);
        char *message = NULL;
        if (vasprintf (&message, format, args) < 0)
            message = NULL;
        va_end (args);
        *error_p = message;
    }
    if (error_offset_p)
        *error_offset_p = offset;
    return NULL;
}

//  Scans a name at pos; returns its length (0 when there is none).
static size_t
s_scan_name (const char *s, size_t pos)
{
    if (!s_is_name_start ((unsigned char) s [pos]))
        return 0;
    size_t end = pos + 1;
    while (s_is_name_char ((unsigned char) s [end]))
        end++;
    return end - pos;
}

//  Scans a decimal literal: [+-] digits [. digits] [(e|E) [+-] digits], with
//  at least one digit in the mantissa.  This keeps out what strtod would
//  otherwise take: nan, inf, infinity, hex floats.  Returns its length, or
//  0 when there is no literal at pos.
static size_t
s_scan_number (const char *s, size_t pos)
{
    size_t p = pos;
    size_t digits = 0;
    if (s [p] == '+' || s [p] == '-')
        p++;
    while (isdigit ((unsigned char) s [p])) {
        p++;
        digits++;
    }
    if (s [p] == '.') {
        p++;
        while (isdigit ((unsigned char) s [p])) {
            p++;
            digits++;
        }
    }
    if (digits == 0)
        return 0;
    if (s [p] == 'e' || s [p] == 'E') {
        size_t q = p + 1;
        if (s [q] == '+' || s [q] == '-')
            q++;
        if (isdigit ((unsigned char) s [q])) {
            while (isdigit ((unsigned char) s [q]))
                q++;
            p = q;
        }
        //  "1e" without digits: leave the 'e' for the trailing-text check
    }
    return p - pos;
}

qn_check_t *
qn_check_new (const char *expr, char **error_p, size_t *error_offset_p)
{
    if (error_p)
        *error_p = NULL;
    if (!expr)
        return s_fail (error_p, error_offset_p, 0, "empty check expression");

    size_t pos = s_skip_blanks (expr, 0);
    size_t start = pos;
    if (expr [pos] == '\0')
        return s_fail (error_p, error_offset_p, pos, "empty check expression");

    size_t name_len = s_scan_name (expr, pos);
    if (name_len == 0)
        return s_fail (error_p, error_offset_p, pos,
                       "expected a metric name or an aggregator (last, min, max, mean)");

    size_t metric_pos = pos;
    size_t metric_len = name_len;
    s_agg_t agg = S_AGG_LAST;
    bool agg_explicit = false;
    size_t after = s_skip_blanks (expr, pos + name_len);

    if (expr [after] == '(') {
        //  The first name was an aggregator
        bool known = false;
        for (size_t i = 0; i < sizeof (s_agg_names) / sizeof (s_agg_names [0]); i++) {
            if (strlen (s_agg_names [i]) == name_len
            &&  memcmp (s_agg_names [i], expr + pos, name_len) == 0) {
                agg = (s_agg_t) i;
                known = true;
            }
        }
        if (!known) {
            if (name_len > S_NAME_MAX)
                return s_fail (error_p, error_offset_p, pos,
                               "unknown aggregator (use last, min, max or mean)");
            return s_fail (error_p, error_offset_p, pos,
                           "unknown aggregator '%.*s' (use last, min, max or mean)",
                           (int) name_len, expr + pos);
        }
        agg_explicit = true;
        pos = s_skip_blanks (expr, after + 1);
        metric_pos = pos;
        metric_len = s_scan_name (expr, pos);
        if (metric_len == 0)
            return s_fail (error_p, error_offset_p, pos,
                           "expected a metric name after '%s('", s_agg_names [agg]);
        pos = s_skip_blanks (expr, pos + metric_len);
        if (expr [pos] != ')')
            return s_fail (error_p, error_offset_p, pos, "expected ')' after the metric name");
        pos = s_skip_blanks (expr, pos + 1);
    }
    else
        pos = after;

    if (metric_len > S_NAME_MAX)
        return s_fail (error_p, error_offset_p, metric_pos,
                       "metric name is longer than %d characters", S_NAME_MAX);

    //  Operator; longest match first
    s_op_t op;
    if (expr [pos] == '<' && expr [pos + 1] == '=')
        op = S_OP_LE;
    else
    if (expr [pos] == '<')
        op = S_OP_LT;
    else
    if (expr [pos] == '>' && expr [pos + 1] == '=')
        op = S_OP_GE;
    else
    if (expr [pos] == '>')
        op = S_OP_GT;
    else
    if (expr [pos] == '=' && expr [pos + 1] == '=')
        op = S_OP_EQ;
    else
    if (expr [pos] == '!' && expr [pos + 1] == '=')
        op = S_OP_NE;
    else
    if (expr [pos] == '\0')
        return s_fail (error_p, error_offset_p, pos,
                       "expected a comparison operator (< <= > >= == !=) at the end");
    else
        return s_fail (error_p, error_offset_p, pos,
                       "expected a comparison operator (< <= > >= == !=)");
    pos = s_skip_blanks (expr, pos + strlen (s_op_names [op]));

    size_t number_pos = pos;
    size_t number_len = s_scan_number (expr, pos);
    if (number_len == 0)
        return s_fail (error_p, error_offset_p, pos, "expected a number after '%s'",
                       s_op_names [op]);
    if (number_len > S_NUMBER_MAX)
        return s_fail (error_p, error_offset_p, pos, "number is too long");
    char number_buf [S_NUMBER_MAX + 1];
    memcpy (number_buf, expr + number_pos, number_len);
    number_buf [number_len] = '\0';
    errno = 0;
    double number = strtod (number_buf, NULL);
    if (!isfinite (number))
        return s_fail (error_p, error_offset_p, number_pos, "number is out of range");
    pos = s_skip_blanks (expr, pos + number_len);

    if (expr [pos] != '\0')
        return s_fail (error_p, error_offset_p, pos, "unexpected text after the number");

    //  Trimmed copy: from the first to the last non-blank character
    size_t end = pos;
    while (end > start && strchr (" \t\r\n", expr [end - 1]))
        end--;

    qn_check_t *self = (qn_check_t *) calloc (1, sizeof (qn_check_t));
    if (!self)
        return s_fail (error_p, error_offset_p, 0, "out of memory");
    self->expr = strndup (expr + start, end - start);
    self->metric = strndup (expr + metric_pos, metric_len);
    self->agg = agg;
    self->agg_explicit = agg_explicit;
    self->op = op;
    self->number = number;
    if (!self->expr || !self->metric) {
        qn_check_destroy (&self);
        return s_fail (error_p, error_offset_p, 0, "out of memory");
    }
    return self;
}

void
qn_check_destroy (qn_check_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        qn_check_t *self = *self_p;
        free (self->expr);
        free (self->metric);
        free (self);
        *self_p = NULL;
    }
}

const char *
qn_check_metric (qn_check_t *self)
{
    assert (self);
    return self->metric;
}

const char *
qn_check_expr (qn_check_t *self)
{
    assert (self);
    return self->expr;
}

//  Evaluates over values in report order.  A non-finite aggregate (NaN
//  sneaking in from a hostile agent) always fails: comparisons with NaN
//  would otherwise make "!=" pass.
char *
qn_check_eval (qn_check_t *self, const double *values, size_t count, bool *passed)
{
    assert (self);
    assert (passed);
    *passed = false;

    char *detail = NULL;
    if (count == 0 || !values) {
        detail = s_strdupf ("metric %s was never reported", self->metric);
        return detail? detail: strdup ("");
    }
    double result = values [count - 1];
    if (self->agg == S_AGG_MIN || self->agg == S_AGG_MAX) {
        result = values [0];
        for (size_t i = 1; i < count; i++) {
            if (self->agg == S_AGG_MIN? values [i] < result: values [i] > result)
                result = values [i];
            if (isnan (values [i]))
                result = values [i];
            if (isnan (result))
                break;
        }
    }
    else
    if (self->agg == S_AGG_MEAN) {
        //  Running mean: a plain sum of large values could overflow
        result = 0;
        for (size_t i = 0; i < count; i++)
            result += (values [i] - result) / (double) (i + 1);
    }

    bool ok = false;
    if (isfinite (result)) {
        switch (self->op) {
            case S_OP_LT: ok = result <  self->number; break;
            case S_OP_LE: ok = result <= self->number; break;
            case S_OP_GT: ok = result >  self->number; break;
            case S_OP_GE: ok = result >= self->number; break;
            case S_OP_EQ: ok = result == self->number; break;
            case S_OP_NE: ok = result != self->number; break;
        }
    }
    *passed = ok;

    if (self->agg_explicit)
        detail = s_strdupf ("%s(%s) = %g (needs %s %g)", s_agg_names [self->agg],
                            self->metric, result, s_op_names [self->op], self->number);
    else
        detail = s_strdupf ("%s = %g (needs %s %g)", self->metric, result,
                            s_op_names [self->op], self->number);
    return detail? detail: strdup ("");
}
