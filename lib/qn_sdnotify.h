/*  qn_sdnotify - tells systemd how a daemon is doing (sd_notify): ready,
    stopping, alive (the watchdog) and a one-line status.

    Under a Type=notify unit systemd sets $NOTIFY_SOCKET, and a unit with
    WatchdogSec= sets $WATCHDOG_USEC: the daemon must then say WATCHDOG=1
    more often than that, from its main loop, so that a loop that hangs
    gets the service restarted.  Without $NOTIFY_SOCKET (or when built
    without libsystemd) every call does nothing.  Private to qanat's own
    programs.
*/
#ifndef QN_SDNOTIFY_H_INCLUDED
#define QN_SDNOTIFY_H_INCLUDED

//  READY=1: the store is open and the sockets are bound
void
    qn_sdnotify_ready (void);

//  STOPPING=1: draining or stopping
void
    qn_sdnotify_stopping (void);

//  WATCHDOG=1, at most every half of the watchdog's period: call it from
//  the main loop as often as convenient
void
    qn_sdnotify_watchdog (void);

//  STATUS=<one line>
void
    qn_sdnotify_status (const char *format, ...)
    __attribute__ ((format (printf, 1, 2)));

#endif
