/*  qn_sweeper - removes directory trees on a thread of its own.

    Removing a finished attempt's directory is a few unlinks and rmdirs;
    done on the agent's loop, once per task, they would sit between the
    task's end and the next dispatch.  The sweeper takes paths from the
    loop and removes them behind it, in order.
*/
#ifndef QN_SWEEPER_H_INCLUDED
#define QN_SWEEPER_H_INCLUDED

#include <stddef.h>

typedef struct _qn_sweeper_t qn_sweeper_t;

//  Starts the thread.  NULL on failure.
qn_sweeper_t *
    qn_sweeper_new (void);

//  Removes what is still queued (so that a clean stop leaves nothing
//  half done), stops the thread, nulls the pointer.  Idempotent.
void
    qn_sweeper_destroy (qn_sweeper_t **self_p);

//  Queues path (copied) for removal with everything under it.  0, or -1
//  when out of memory or self is NULL (then removed at once, on the
//  caller's thread).
int
    qn_sweeper_remove (qn_sweeper_t *self, const char *path);

//  Paths queued or being removed.
size_t
    qn_sweeper_pending (qn_sweeper_t *self);

#endif
