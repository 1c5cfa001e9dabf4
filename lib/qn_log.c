/*  qn_log - one logger for both daemons.  See qn_log.h. */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include "qn_log.h"

//  The one process-wide setting, set from main before threads start
static atomic_bool s_verbose;

void
qn_log_set_verbose (bool verbose)
{
    atomic_store (&s_verbose, verbose);
}

void
qn_log (qn_log_level_t level, const char *component, const char *format, ...)
{
    if (level == QN_LOG_DEBUG && !atomic_load (&s_verbose))
        return;
    static const char *names [] = { "debug", "info", "warning", "error" };
    struct timeval tv;
    gettimeofday (&tv, NULL);
    struct tm tm;
    gmtime_r (&tv.tv_sec, &tm);
    char line [2304];
    size_t used = strftime (line, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    int head = snprintf (line + used, sizeof line - used, ".%03dZ %s %s: ",
                         (int) (tv.tv_usec / 1000), names [level], component);
    used += head > 0? (size_t) head: 0;
    va_list args;
    va_start (args, format);
    int body = vsnprintf (line + used, sizeof line - used - 1, format, args);
    va_end (args);
    if (body < 0)
        body = 0;
    used += (size_t) body < sizeof line - used - 1? (size_t) body: sizeof line - used - 2;
    line [used++] = '\n';
    //  One write per line, so that threads' lines do not interleave
    ssize_t written = write (STDERR_FILENO, line, used);
    (void) written;
}
