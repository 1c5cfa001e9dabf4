/*  qn_bench_receiver - the webhook receivers of figure (m): one that
    answers every request at once (200, keep-alive) on its own thread,
    counting them, so that the cost of notifying can be told apart from
    the cost of a receiver that hangs.

    One of the files of the qn_bench class.
*/
#include "qn_bench.h"
#include <poll.h>
#include <pthread.h>

#define S_CLIENTS_MAX   64
#define S_BUFFER_SIZE   16384

typedef struct {
    int fd;
    size_t used;
    char buffer [S_BUFFER_SIZE];
} s_client_t;

struct _bench_receiver_t {
    int listener;
    int stop [2];                   //  a pipe: written to stop the thread
    pthread_t thread;
    uint16_t port;
    volatile unsigned long requests;
    s_client_t clients [S_CLIENTS_MAX];
};

//  The length of a whole request at the start of buffer, or 0 when it
//  has not all arrived
static size_t
s_request_length (const char *buffer, size_t used)
{
    const char *end = memmem (buffer, used, "\r\n\r\n", 4);
    if (!end)
        return 0;
    size_t head = (size_t) (end - buffer) + 4;
    size_t body = 0;
    //  Each header line starts after a "\r\n"
    for (const char *at = buffer; at && at < end; ) {
        const char *line = memmem (at, (size_t) (end - at), "\r\n", 2);
        if (!line)
            break;
        line += 2;
        if (strncasecmp (line, "Content-Length:", 15) == 0)
            body = strtoul (line + 15, NULL, 10);
        at = line;
    }
    return used >= head + body? head + body: 0;
}

static void
s_client_read (bench_receiver_t *self, s_client_t *client)
{
    ssize_t got = read (client->fd, client->buffer + client->used,
                        S_BUFFER_SIZE - client->used);
    if (got <= 0) {
        close (client->fd);
        client->fd = -1;
        return;
    }
    client->used += (size_t) got;
    size_t length;
    while ((length = s_request_length (client->buffer, client->used))) {
        static const char answer [] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        if (write (client->fd, answer, sizeof answer - 1) != (ssize_t) sizeof answer - 1)
            break;
        __atomic_add_fetch (&self->requests, 1, __ATOMIC_RELAXED);
        memmove (client->buffer, client->buffer + length, client->used - length);
        client->used -= length;
    }
    if (client->used == S_BUFFER_SIZE) {       //  too large: not ours
        close (client->fd);
        client->fd = -1;
    }
}

static void *
s_thread (void *arg)
{
    bench_receiver_t *self = (bench_receiver_t *) arg;
    while (true) {
        struct pollfd fds [S_CLIENTS_MAX + 2];
        size_t index [S_CLIENTS_MAX + 2];
        nfds_t count = 0;
        fds [count++] = (struct pollfd) { self->stop [0], POLLIN, 0 };
        fds [count++] = (struct pollfd) { self->listener, POLLIN, 0 };
        for (size_t i = 0; i < S_CLIENTS_MAX; i++)
            if (self->clients [i].fd >= 0) {
                index [count] = i;
                fds [count++] = (struct pollfd) { self->clients [i].fd, POLLIN, 0 };
            }
        if (poll (fds, count, -1) < 0 && errno != EINTR)
            break;
        if (fds [0].revents)
            break;
        if (fds [1].revents & POLLIN) {
            int fd = accept4 (self->listener, NULL, NULL, SOCK_CLOEXEC);
            size_t free_slot = S_CLIENTS_MAX;
            for (size_t i = 0; i < S_CLIENTS_MAX && free_slot == S_CLIENTS_MAX; i++)
                if (self->clients [i].fd < 0)
                    free_slot = i;
            if (fd >= 0 && free_slot < S_CLIENTS_MAX) {
                self->clients [free_slot].fd = fd;
                self->clients [free_slot].used = 0;
            }
            else
            if (fd >= 0)
                close (fd);
        }
        for (nfds_t k = 2; k < count; k++)
            if (fds [k].revents)
                s_client_read (self, &self->clients [index [k]]);
    }
    return NULL;
}

bench_receiver_t *
bench_receiver_new (void)
{
    bench_receiver_t *self = (bench_receiver_t *) zmalloc (sizeof (bench_receiver_t));
    for (size_t i = 0; i < S_CLIENTS_MAX; i++)
        self->clients [i].fd = -1;
    self->stop [0] = self->stop [1] = -1;
    self->listener = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in addr;
    memset (&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    socklen_t size = sizeof addr;
    if (self->listener < 0 || bind (self->listener, (struct sockaddr *) &addr, sizeof addr)
    ||  listen (self->listener, 64) || getsockname (self->listener, (struct sockaddr *) &addr, &size)
    ||  pipe2 (self->stop, O_CLOEXEC)
    ||  pthread_create (&self->thread, NULL, s_thread, self)) {
        if (self->listener >= 0)
            close (self->listener);
        if (self->stop [0] >= 0) {
            close (self->stop [0]);
            close (self->stop [1]);
        }
        free (self);
        return NULL;
    }
    self->port = ntohs (addr.sin_port);
    return self;
}

void
bench_receiver_destroy (bench_receiver_t **self_p)
{
    bench_receiver_t *self = *self_p;
    if (!self)
        return;
    if (write (self->stop [1], "x", 1) == 1)
        pthread_join (self->thread, NULL);
    for (size_t i = 0; i < S_CLIENTS_MAX; i++)
        if (self->clients [i].fd >= 0)
            close (self->clients [i].fd);
    close (self->listener);
    close (self->stop [0]);
    close (self->stop [1]);
    free (self);
    *self_p = NULL;
}

uint16_t
bench_receiver_port (bench_receiver_t *self)
{
    return self->port;
}

unsigned long
bench_receiver_requests (bench_receiver_t *self)
{
    return __atomic_load_n (&self->requests, __ATOMIC_RELAXED);
}
