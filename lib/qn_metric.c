/*  qn_metric - the metrics file format, and reporting from a task.

    One point per line: "name value [step]", fields separated by blanks.
    The agent follows the file a task appends to, so the parser must be
    strict (a half-written or hostile line is refused, never guessed at)
    and the writer must append whole lines in one write().
*/
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qn_metric.h"

//  Longest numeric field we look at; real numbers are far shorter.
#define S_NUMBER_MAX  64

static bool
s_is_blank (char c)
{
    return c == ' ' || c == '\t';
}

bool
qn_metric_name_valid (const char *name, size_t len)
{
    if (len == 0 || len > QN_METRIC_NAME_MAX)
        return false;
    unsigned char c = (unsigned char) name [0];
    if (!(isascii (c) && (isalpha (c) || c == '_')))
        return false;
    for (size_t i = 1; i < len; i++) {
        c = (unsigned char) name [i];
        if (!(isascii (c) && (isalnum (c) || c == '_' || c == '.' || c == '/' || c == '-')))
            return false;
    }
    return true;
}

//  Splits the next blank-separated field from line [*pos_p, len).
//  Returns its length (0 at the end of the line) and its start in *start_p.
static size_t
s_next_field (const char *line, size_t len, size_t *pos_p, size_t *start_p)
{
    size_t pos = *pos_p;
    while (pos < len && s_is_blank (line [pos]))
        pos++;
    *start_p = pos;
    while (pos < len && !s_is_blank (line [pos]))
        pos++;
    *pos_p = pos;
    return pos - *start_p;
}

//  A finite decimal double.  Only digits, sign, '.', 'e' and 'E' may appear,
//  which keeps out nan, inf and hex floats that strtod would accept.
static int
s_parse_value (const char *field, size_t len, double *value_p)
{
    if (len > S_NUMBER_MAX)
        return -1;
    char buf [S_NUMBER_MAX + 1];
    for (size_t i = 0; i < len; i++) {
        char c = field [i];
        if (!(isdigit ((unsigned char) c) || c == '+' || c == '-' || c == '.'
           || c == 'e' || c == 'E'))
            return -1;
        buf [i] = c;
    }
    buf [len] = '\0';
    char *end = NULL;
    errno = 0;
    double value = strtod (buf, &end);
    if (end == buf || *end != '\0' || !isfinite (value))
        return -1;
    *value_p = value;
    return 0;
}

static int
s_parse_step (const char *field, size_t len, int64_t *step_p)
{
    if (len > 24)
        return -1;
    char buf [32];
    for (size_t i = 0; i < len; i++) {
        char c = field [i];
        if (!(isdigit ((unsigned char) c) || ((c == '-' || c == '+') && i == 0)))
            return -1;
        buf [i] = c;
    }
    buf [len] = '\0';
    char *end = NULL;
    errno = 0;
    long long step = strtoll (buf, &end, 10);
    if (end == buf || *end != '\0' || errno == ERANGE)
        return -1;
    *step_p = (int64_t) step;
    return 0;
}

int
qn_metric_parse_line (const char *line, size_t len, char *name_buf, double *value_p,
                      int64_t *step_p, bool *has_step_p, const char **error_p)
{
    assert (name_buf);
    assert (value_p);
    const char *dummy_error;
    if (!error_p)
        error_p = &dummy_error;
    *error_p = NULL;
    if (has_step_p)
        *has_step_p = false;
    if (step_p)
        *step_p = 0;
    if (!line)
        len = 0;

    //  Ignore trailing '\r' and blanks
    while (len > 0 && (s_is_blank (line [len - 1]) || line [len - 1] == '\r'))
        len--;

    size_t pos = 0, start = 0;
    size_t field_len = s_next_field (line, len, &pos, &start);
    if (field_len == 0) {
        *error_p = "empty line";
        return -1;
    }
    if (field_len > QN_METRIC_NAME_MAX) {
        *error_p = "metric name is too long";
        return -1;
    }
    if (!qn_metric_name_valid (line + start, field_len)) {
        *error_p = "invalid metric name";
        return -1;
    }
    char name [QN_METRIC_NAME_MAX + 1];
    memcpy (name, line + start, field_len);
    name [field_len] = '\0';

    field_len = s_next_field (line, len, &pos, &start);
    if (field_len == 0) {
        *error_p = "missing value";
        return -1;
    }
    double value;
    if (s_parse_value (line + start, field_len, &value)) {
        *error_p = "value is not a finite number";
        return -1;
    }

    int64_t step = 0;
    bool has_step = false;
    field_len = s_next_field (line, len, &pos, &start);
    if (field_len > 0) {
        if (s_parse_step (line + start, field_len, &step)) {
            *error_p = "step is not an integer";
            return -1;
        }
        has_step = true;
        field_len = s_next_field (line, len, &pos, &start);
        if (field_len > 0) {
            *error_p = "unexpected text after the step";
            return -1;
        }
    }

    //  Outputs only on success, so callers never see half a result
    memcpy (name_buf, name, strlen (name) + 1);
    *value_p = value;
    if (step_p)
        *step_p = step;
    if (has_step_p)
        *has_step_p = has_step;
    return 0;
}

//  The whole line goes out in one write() on an O_APPEND descriptor, which
//  the kernel appends atomically for regular files, so lines from several
//  processes of one task never interleave.
int
qn_metric_report (const char *name, double value, int64_t step, bool has_step)
{
    const char *path = getenv ("QANAT_METRICS");
    if (!path || !*path)
        return -1;
    if (!name || !qn_metric_name_valid (name, strlen (name)))
        return -1;
    if (!isfinite (value))
        return -1;

    //  Shortest of %.15g/%.17g that reads back exactly: 0.1 stays "0.1"
    char number [40];
    snprintf (number, sizeof (number), "%.15g", value);
    if (strtod (number, NULL) != value)
        snprintf (number, sizeof (number), "%.17g", value);

    char line [QN_METRIC_NAME_MAX + 80];
    int size;
    if (has_step)
        size = snprintf (line, sizeof (line), "%s %s %" PRId64 "\n", name, number, step);
    else
        size = snprintf (line, sizeof (line), "%s %s\n", name, number);
    if (size < 0 || (size_t) size >= sizeof (line))
        return -1;

    int fd = open (path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    ssize_t written;
    do
        written = write (fd, line, (size_t) size);
    while (written < 0 && errno == EINTR);
    int rc = (written == (ssize_t) size)? 0: -1;
    if (close (fd) != 0)
        rc = -1;
    return rc;
}
