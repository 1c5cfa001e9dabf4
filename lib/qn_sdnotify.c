/*  qn_sdnotify - sd_notify for both daemons.  See qn_sdnotify.h. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#ifdef HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif
#include "qn_sdnotify.h"

static void
s_notify (const char *text)
{
#ifdef HAVE_LIBSYSTEMD
    //  unset_environment 0: a restarted loop (tests) may say it again
    sd_notify (0, text);
#else
    (void) text;
#endif
}

void
qn_sdnotify_ready (void)
{
    s_notify ("READY=1");
}

void
qn_sdnotify_stopping (void)
{
    s_notify ("STOPPING=1");
}

static long long
s_now_us (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (long long) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void
qn_sdnotify_watchdog (void)
{
    //  Read each time: the main loop is the only caller, and cheap enough
    const char *usec = getenv ("WATCHDOG_USEC");
    if (!usec || !getenv ("NOTIFY_SOCKET"))
        return;
    long long period = atoll (usec);
    static long long last;
    long long now = s_now_us ();
    if (period > 0 && last && now - last < period / 2)
        return;
    last = now;
    s_notify ("WATCHDOG=1");
}

void
qn_sdnotify_status (const char *format, ...)
{
    if (!getenv ("NOTIFY_SOCKET"))
        return;
    char text [256] = "STATUS=";
    va_list args;
    va_start (args, format);
    vsnprintf (text + 7, sizeof text - 7, format, args);
    va_end (args);
    s_notify (text);
}
