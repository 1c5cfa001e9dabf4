/*  qn_log - one logger for both daemons.  See qn_log.h. */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <jansson.h>
#include "qn_log.h"

//  The process-wide settings, set from main before threads start
static atomic_bool s_verbose;
static atomic_int s_format;             //  qn_log_format_t
static atomic_bool s_journal;           //  stderr is the journal: <N> prefixes

void
qn_log_set_verbose (bool verbose)
{
    atomic_store (&s_verbose, verbose);
}

int
qn_log_format_parse (const char *text, qn_log_format_t *format_p)
{
    if (text && strcmp (text, "text") == 0)
        *format_p = QN_LOG_TEXT;
    else
    if (text && strcmp (text, "json") == 0)
        *format_p = QN_LOG_JSON;
    else
        return -1;
    return 0;
}

//  systemd sets JOURNAL_STREAM to the dev:ino of the stream it connected
//  to stderr; a stderr redirected elsewhere since does not match
static bool
s_stderr_is_journal (void)
{
    const char *stream = getenv ("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;
    if (!stream || sscanf (stream, "%llu:%llu", &dev, &ino) != 2
    ||  fstat (STDERR_FILENO, &st) == -1)
        return false;
    return (unsigned long long) st.st_dev == dev && (unsigned long long) st.st_ino == ino;
}

void
qn_log_set_format (qn_log_format_t format)
{
    atomic_store (&s_format, (int) format);
    atomic_store (&s_journal, s_stderr_is_journal ());
}

//  The JSON form: one object a line.  Text that is not UTF-8 is made so.
static size_t
s_json_line (char *line, size_t size, const char *time, const char *level,
             const char *component, const char *message)
{
    json_t *text = json_string (message);
    if (!text) {
        char *copy = strdup (message);
        for (char *c = copy; c && *c; c++)
            if ((unsigned char) *c >= 0x80)
                *c = '?';
        text = json_string (copy? copy: "");
        free (copy);
    }
    json_t *object = json_pack ("{s:s, s:s, s:s, s:o}", "time", time, "level", level,
                                "component", component, "message", text);
    char *dump = object? json_dumps (object, JSON_COMPACT | JSON_PRESERVE_ORDER): NULL;
    json_decref (object);
    int used = snprintf (line, size, "%s\n", dump? dump: "{\"message\":\"out of memory\"}");
    free (dump);
    //  Cut: still one line, though no longer JSON (bounded by the buffer)
    if (used < 0 || (size_t) used >= size) {
        line [size - 2] = '\n';
        return size - 1;
    }
    return (size_t) used;
}

void
qn_log (qn_log_level_t level, const char *component, const char *format, ...)
{
    if (level == QN_LOG_DEBUG && !atomic_load (&s_verbose))
        return;
    static const char *names [] = { "debug", "info", "warning", "error" };
    static const char priorities [] = { '7', '6', '4', '3' };
    struct timeval tv;
    gettimeofday (&tv, NULL);
    struct tm tm;
    gmtime_r (&tv.tv_sec, &tm);
    char time [40];
    size_t stamp = strftime (time, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf (time + stamp, sizeof time - stamp, ".%03dZ", (int) (tv.tv_usec / 1000));
    char message [2048];
    va_list args;
    va_start (args, format);
    int body = vsnprintf (message, sizeof message, format, args);
    va_end (args);
    if (body < 0)
        message [0] = 0;
    char line [4608];
    size_t used = 0;
    if (atomic_load (&s_journal)) {
        line [used++] = '<';
        line [used++] = priorities [level];
        line [used++] = '>';
    }
    if (atomic_load (&s_format) == QN_LOG_JSON)
        used += s_json_line (line + used, sizeof line - used, time, names [level],
                             component, message);
    else {
        //  A message's own newlines would split the line
        for (char *c = message; *c; c++)
            if (*c == '\n')
                *c = ' ';
        int text = snprintf (line + used, sizeof line - used, "%s %s %s: %s\n",
                             time, names [level], component, message);
        used += text > 0 && (size_t) text < sizeof line - used? (size_t) text: 0;
    }
    //  One write per line, so that threads' lines do not interleave
    ssize_t written = write (STDERR_FILENO, line, used);
    (void) written;
}
