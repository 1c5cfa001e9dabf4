/*  test_s3gc - S3 deletions on a worker thread, reported on the loop:
    order, failures (refused connections, no credentials, bad stores),
    success and S3 errors against a tiny HTTP responder on loopback,
    input refused at once, the queue's bound, and destroy with work
    pending or from a callback.
*/
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <poll.h>
#include <pthread.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include "qn_s3gc.h"
#include "qn_s3.h"

#define S_MAX_CALLS  64

typedef struct {
    qn_s3gc_t *gc;
    size_t count;
    size_t want;                        //  the loop stops once count reaches it
    bool timed_out;
    char ids [S_MAX_CALLS][64];
    int status [S_MAX_CALLS];
    char errors [S_MAX_CALLS][1024];
    bool destroy_on_first;
    bool queue_on_first;
    const Qanat__ArtifactStore *store;  //  for queue_on_first
} s_calls_t;

static void
s_done (void *arg, const char *id, int status, const char *error)
{
    s_calls_t *calls = (s_calls_t *) arg;
    assert_non_null (id);
    if (calls->count < S_MAX_CALLS) {
        snprintf (calls->ids [calls->count], sizeof calls->ids [0], "%s", id);
        calls->status [calls->count] = status;
        snprintf (calls->errors [calls->count], sizeof calls->errors [0], "%s",
                  error? error: "(null)");
    }
    //  A failure always says why; a success says nothing
    if (status == 0)
        assert_null (error);
    else
        assert_true (error && *error);
    calls->count++;
    if (calls->count == 1 && calls->queue_on_first)
        assert_int_equal (qn_s3gc_delete (calls->gc, "again", calls->store, "gc/again"), 0);
    if (calls->count == 1 && calls->destroy_on_first) {
        qn_s3gc_destroy (&calls->gc);
        assert_null (calls->gc);
    }
}

static int
s_check_count (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    s_calls_t *calls = (s_calls_t *) arg;
    return calls->count >= calls->want? -1: 0;
}

static int
s_timeout (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    ((s_calls_t *) arg)->timed_out = true;
    return -1;
}

//  Runs the loop until want callbacks came, or timeout_ms passed
static void
s_run (zloop_t *loop, s_calls_t *calls, size_t want, size_t timeout_ms)
{
    calls->want = want;
    calls->timed_out = false;
    int check = zloop_timer (loop, 5, 0, s_check_count, calls);
    int timeout = zloop_timer (loop, timeout_ms, 1, s_timeout, calls);
    assert_true (check >= 0 && timeout >= 0);
    zloop_start (loop);
    zloop_timer_end (loop, check);
    zloop_timer_end (loop, timeout);
}

static void
s_store (Qanat__ArtifactStore *store, const char *bucket, const char *endpoint,
         const char *region, bool path_style)
{
    qanat__artifact_store__init (store);
    store->kind = (char *) "s3";
    store->bucket = (char *) bucket;
    store->endpoint = (char *) endpoint;
    store->region = (char *) region;
    store->path_style = path_style;
}

//  Nobody listens on port 1: connections are refused at once
#define S_REFUSED  "http://127.0.0.1:1"

static int
s_group_setup (void **state)
{
    (void) state;
    setenv ("AWS_ACCESS_KEY_ID", "AKIDQANATTEST", 1);
    setenv ("AWS_SECRET_ACCESS_KEY", "qanat-test-secret", 1);
    //  Nothing from the machine's own AWS settings
    setenv ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/qanat/credentials", 1);
    setenv ("AWS_CONFIG_FILE", "/nonexistent/qanat/config", 1);
    const char *unset [] = { "AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION",
                             "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3",
                             //  libcurl's: the requests go straight to loopback
                             "http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY",
                             "all_proxy", "ALL_PROXY" };
    for (size_t i = 0; i < sizeof unset / sizeof unset [0]; i++)
        unsetenv (unset [i]);
    return 0;
}

//  ---------------------------------------------------------------------
//  A tiny HTTP responder on loopback: 403 with an S3 error body for keys
//  containing "denied", else 204; records each request line.

typedef struct {
    int listener;
    int stop [2];
    int port;
    pthread_t thread;
    pthread_mutex_t mutex;
    size_t count;
    char lines [S_MAX_CALLS][256];
} s_server_t;

static void *
s_server_run (void *arg)
{
    s_server_t *server = (s_server_t *) arg;
    while (true) {
        struct pollfd fds [2] = { { server->listener, POLLIN, 0 }, { server->stop [0], POLLIN, 0 } };
        if (poll (fds, 2, -1) < 0 || fds [1].revents)
            break;
        int fd = accept (server->listener, NULL, NULL);
        if (fd < 0)
            continue;
        char request [8192];
        size_t size = 0;
        struct pollfd in = { fd, POLLIN, 0 };
        while (size < sizeof request - 1 && poll (&in, 1, 5000) > 0) {
            ssize_t got = read (fd, request + size, sizeof request - 1 - size);
            if (got <= 0)
                break;
            size += (size_t) got;
            request [size] = 0;
            if (strstr (request, "\r\n\r\n"))
                break;
        }
        request [size] = 0;
        char *end = strstr (request, "\r\n");
        if (end)
            *end = 0;
        pthread_mutex_lock (&server->mutex);
        if (server->count < S_MAX_CALLS)
            snprintf (server->lines [server->count], sizeof server->lines [0], "%.200s", request);
        server->count++;
        pthread_mutex_unlock (&server->mutex);
        const char *body = "<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code>"
                           "<Message>Access Denied</Message></Error>";
        char answer [1024];
        if (strstr (request, "denied"))
            snprintf (answer, sizeof answer, "HTTP/1.1 403 Forbidden\r\nContent-Type: "
                      "application/xml\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
                      strlen (body), body);
        else
            snprintf (answer, sizeof answer,
                      "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
        ssize_t rc = write (fd, answer, strlen (answer));
        (void) rc;
        close (fd);
    }
    return NULL;
}

static void
s_server_start (s_server_t *server)
{
    memset (server, 0, sizeof (*server));
    server->listener = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true (server->listener >= 0);
    struct sockaddr_in address = { .sin_family = AF_INET };
    address.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    assert_int_equal (bind (server->listener, (struct sockaddr *) &address, sizeof address), 0);
    assert_int_equal (listen (server->listener, 16), 0);
    socklen_t length = sizeof address;
    assert_int_equal (getsockname (server->listener, (struct sockaddr *) &address, &length), 0);
    server->port = ntohs (address.sin_port);
    assert_int_equal (pipe (server->stop), 0);
    pthread_mutex_init (&server->mutex, NULL);
    assert_int_equal (pthread_create (&server->thread, NULL, s_server_run, server), 0);
}

static void
s_server_stop (s_server_t *server)
{
    ssize_t rc = write (server->stop [1], "x", 1);
    (void) rc;
    pthread_join (server->thread, NULL);
    close (server->listener);
    close (server->stop [0]);
    close (server->stop [1]);
    pthread_mutex_destroy (&server->mutex);
}

//  ---------------------------------------------------------------------

static void
test_new_destroy (void **state)
{
    (void) state;
    zloop_t *loop = zloop_new ();
    s_calls_t calls = { 0 };
    qn_s3gc_t *gc = qn_s3gc_new (loop, s_done, &calls);
    assert_non_null (gc);
    assert_int_equal (qn_s3gc_pending (gc), 0);
    qn_s3gc_destroy (&gc);
    assert_null (gc);
    qn_s3gc_destroy (&gc);
    zloop_destroy (&loop);
}

static void
test_invalid_refused_at_once (void **state)
{
    (void) state;
    zloop_t *loop = zloop_new ();
    s_calls_t calls = { 0 };
    qn_s3gc_t *gc = qn_s3gc_new (loop, s_done, &calls);
    assert_non_null (gc);
    Qanat__ArtifactStore good;
    s_store (&good, "qanat-gc", S_REFUSED, "us-east-1", true);

    Qanat__ArtifactStore stores [5];
    for (size_t i = 0; i < 5; i++)
        stores [i] = good;
    stores [0].kind = (char *) "coordinator";
    stores [1].kind = (char *) "";
    stores [2].kind = NULL;
    stores [3].bucket = (char *) "";
    stores [4].bucket = NULL;
    for (size_t i = 0; i < 5; i++) {
        errno = 0;
        assert_int_equal (qn_s3gc_delete (gc, "bad-store", &stores [i], "gc/key"), -1);
        assert_int_equal (errno, EINVAL);
    }
    assert_int_equal (qn_s3gc_delete (gc, "no-store", NULL, "gc/key"), -1);
    assert_int_equal (qn_s3gc_delete (gc, NULL, &good, "gc/key"), -1);
    char long_key [QN_S3_KEY_MAX + 2];
    memset (long_key, 'k', sizeof long_key - 1);
    long_key [sizeof long_key - 1] = 0;
    const char *keys [] = { NULL, "", "gc/new\nline", "gc/\x7f", long_key };
    for (size_t i = 0; i < sizeof keys / sizeof keys [0]; i++) {
        errno = 0;
        assert_int_equal (qn_s3gc_delete (gc, "bad-key", &good, keys [i]), -1);
        assert_int_equal (errno, EINVAL);
    }
    assert_int_equal (qn_s3gc_pending (gc), 0);
    //  And no callback follows
    s_run (loop, &calls, 1, 200);
    assert_true (calls.timed_out);
    assert_int_equal (calls.count, 0);
    //  The longest valid key is taken
    long_key [QN_S3_KEY_MAX] = 0;
    assert_int_equal (qn_s3gc_delete (gc, "longest", &good, long_key), 0);
    s_run (loop, &calls, 1, 30000);
    assert_false (calls.timed_out);
    assert_string_equal (calls.ids [0], "longest");
    assert_int_equal (calls.status [0], -1);
    qn_s3gc_destroy (&gc);
    zloop_destroy (&loop);
}

static void
test_failures_in_order (void **state)
{
    (void) state;
    zloop_t *loop = zloop_new ();
    s_calls_t calls = { 0 };
    qn_s3gc_t *gc = qn_s3gc_new (loop, s_done, &calls);
    assert_non_null (gc);
    Qanat__ArtifactStore refused, other, bad_bucket, bad_endpoint;
    s_store (&refused, "qanat-gc", S_REFUSED, "us-east-1", true);
    s_store (&other, "qanat-other", S_REFUSED, "eu-west-1", true);
    s_store (&bad_bucket, "Not_A_Bucket", S_REFUSED, "", false);
    s_store (&bad_endpoint, "qanat-gc", "ftp://127.0.0.1:1", "", true);
    const Qanat__ArtifactStore *order [] = { &refused, &other, &bad_bucket, &refused,
                                             &bad_endpoint, &other, &refused };
    size_t count = sizeof order / sizeof order [0];
    for (size_t i = 0; i < count; i++) {
        char id [32], key [64];
        snprintf (id, sizeof id, "r%zu", i);
        snprintf (key, sizeof key, "prefix/blobs/%zu", i);
        assert_int_equal (qn_s3gc_delete (gc, id, order [i], key), 0);
    }
    assert_int_equal (qn_s3gc_pending (gc), count);
    //  Let the results pile up before the loop runs, so the order they
    //  are reported in is tested too, not only the order they are run in
    zclock_sleep (500);
    assert_int_equal (calls.count, 0);
    s_run (loop, &calls, count, 60000);
    assert_false (calls.timed_out);
    assert_int_equal (calls.count, count);
    assert_int_equal (qn_s3gc_pending (gc), 0);
    for (size_t i = 0; i < count; i++) {
        char id [32], where [128];
        snprintf (id, sizeof id, "r%zu", i);
        assert_string_equal (calls.ids [i], id);
        assert_int_equal (calls.status [i], -1);
        if (order [i] == &bad_bucket)
            assert_non_null (strstr (calls.errors [i], "invalid bucket name"));
        else
        if (order [i] == &bad_endpoint)
            assert_non_null (strstr (calls.errors [i], "invalid endpoint"));
        else {
            //  The request was made, and the refusal reported
            snprintf (where, sizeof where, "DELETE s3://%s/prefix/blobs/%zu", order [i]->bucket, i);
            assert_non_null (strstr (calls.errors [i], where));
        }
    }
    qn_s3gc_destroy (&gc);
    zloop_destroy (&loop);
}

static void
test_no_credentials_not_cached (void **state)
{
    (void) state;
    zloop_t *loop = zloop_new ();
    s_calls_t calls = { 0 };
    qn_s3gc_t *gc = qn_s3gc_new (loop, s_done, &calls);
    assert_non_null (gc);
    Qanat__ArtifactStore store;
    s_store (&store, "qanat-gc", S_REFUSED, "us-east-1", true);
    //  The worker reads the environment only while it runs a request;
    //  it is idle here
    unsetenv ("AWS_ACCESS_KEY_ID");
    unsetenv ("AWS_SECRET_ACCESS_KEY");
    assert_int_equal (qn_s3gc_delete (gc, "first", &store, "gc/a"), 0);
    assert_int_equal (qn_s3gc_delete (gc, "second", &store, "gc/b"), 0);
    s_run (loop, &calls, 2, 30000);
    assert_false (calls.timed_out);
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal (calls.status [i], -1);
        assert_non_null (strstr (calls.errors [i], "no credentials"));
    }
    assert_string_equal (calls.ids [0], "first");
    assert_string_equal (calls.ids [1], "second");
    //  Credentials that appear later are used
    s_group_setup (NULL);
    assert_int_equal (qn_s3gc_delete (gc, "third", &store, "gc/c"), 0);
    s_run (loop, &calls, 3, 30000);
    assert_false (calls.timed_out);
    assert_int_equal (calls.status [2], -1);
    assert_null (strstr (calls.errors [2], "no credentials"));
    assert_non_null (strstr (calls.errors [2], "DELETE s3://qanat-gc/gc/c"));
    qn_s3gc_destroy (&gc);
    zloop_destroy (&loop);
}

//  More stores than clients kept: the least recently used go, and every
//  request still reaches its own bucket
static void
test_many_stores (void **state)
{
    (void) state;
    zloop_t *loop = zloop_new ();
    s_calls_t calls = { 0 };
    qn_s3gc_t *gc = qn_s3gc_new (loop, s_done, &calls);
    assert_non_null (gc);
    size_t stores = QN_S3GC_CLIENTS_MAX + 4;
    size_t count = 2 * stores;
    assert_true (count <= S_MAX_CALLS);
    for (size_t i = 0; i < count; i++) {
        char id [32], bucket [32];
        snprintf (id, sizeof id, "m%zu", i);
        //  0, 1, 2, ... then the same stores again in another order
        snprintf (bucket, sizeof bucket, "qanat-gc-%zu", i < stores? i: (i * 7) % stores);
        Qanat__ArtifactStore store;
        s_store (&store, bucket, S_REFUSED, "us-east-1", true);
        assert_int_equal (qn_s3gc_delete (gc, id, &store, "gc/many"), 0);
    }
    s_run (loop, &calls, count, 60000);
    assert_false (calls.timed_out);
    for (size_t i = 0; i < count; i++) {
        char id [32], where [64];
        snprintf (id, sizeof id, "m%zu", i);
        snprintf (where, sizeof where, "DELETE s3://qanat-gc-%zu/gc/many:",
                  i < stores? i: (i * 7) % stores);
        assert_string_equal (calls.ids [i], id);
        assert_non_null (strstr (calls.errors [i], where));
    }
    qn_s3gc_destroy (&gc);
    zloop_destroy (&loop);
}

static void
test_success_and_s3_error (void **state)
{
    (void) state;
    s_server_t server;
    s_server_start (&server);
    char endpoint [64];
    snprintf (endpoint, sizeof endpoint, "http://127.0.0.1:%d", server.port);
    zloop_t *loop = zloop_new ();
    s_calls_t calls = { 0 };
    qn_s3gc_t *gc = qn_s3gc_new (loop, s_done, &calls);
    assert_non_null (gc);
    Qanat__ArtifactStore store;
    s_store (&store, "qanat-gc", endpoint, "us-east-1", true);
    assert_int_equal (qn_s3gc_delete (gc, "ok1", &store, "runs/blobs/aa"), 0);
    assert_int_equal (qn_s3gc_delete (gc, "no", &store, "runs/denied"), 0);
    assert_int_equal (qn_s3gc_delete (gc, "ok2", &store, "runs/blobs/b b"), 0);
    s_run (loop, &calls, 3, 30000);
    assert_false (calls.timed_out);
    assert_string_equal (calls.ids [0], "ok1");
    assert_int_equal (calls.status [0], 0);
    assert_string_equal (calls.ids [1], "no");
    assert_int_equal (calls.status [1], -1);
    assert_non_null (strstr (calls.errors [1], "403 AccessDenied"));
    assert_string_equal (calls.ids [2], "ok2");
    assert_int_equal (calls.status [2], 0);
    qn_s3gc_destroy (&gc);
    zloop_destroy (&loop);
    s_server_stop (&server);
    //  The requests the server saw: path style, in order
    assert_int_equal (server.count, 3);
    assert_string_equal (server.lines [0], "DELETE /qanat-gc/runs/blobs/aa HTTP/1.1");
    assert_string_equal (server.lines [1], "DELETE /qanat-gc/runs/denied HTTP/1.1");
    assert_string_equal (server.lines [2], "DELETE /qanat-gc/runs/blobs/b%20b HTTP/1.1");
}

static void
test_queue_bound_and_destroy_pending (void **state)
{
    (void) state;
    zloop_t *loop = zloop_new ();
    s_calls_t calls = { 0 };
    qn_s3gc_t *gc = qn_s3gc_new (loop, s_done, &calls);
    assert_non_null (gc);
    Qanat__ArtifactStore store;
    s_store (&store, "qanat-gc", S_REFUSED, "us-east-1", true);
    for (size_t i = 0; i < QN_S3GC_QUEUE_MAX; i++) {
        char id [32];
        snprintf (id, sizeof id, "q%zu", i);
        assert_int_equal (qn_s3gc_delete (gc, id, &store, "gc/queued"), 0);
    }
    //  Done but not yet reported still counts: the bound does not depend
    //  on the worker's speed
    assert_int_equal (qn_s3gc_pending (gc), QN_S3GC_QUEUE_MAX);
    errno = 0;
    assert_int_equal (qn_s3gc_delete (gc, "one-too-many", &store, "gc/queued"), -1);
    assert_int_equal (errno, EAGAIN);
    //  Reports free room
    s_run (loop, &calls, 1, 30000);
    assert_false (calls.timed_out);
    assert_true (qn_s3gc_pending (gc) < QN_S3GC_QUEUE_MAX);
    assert_int_equal (qn_s3gc_delete (gc, "room", &store, "gc/queued"), 0);
    size_t reported = calls.count;
    qn_s3gc_destroy (&gc);
    assert_null (gc);
    //  No callback after destroy
    s_run (loop, &calls, reported + 1, 200);
    assert_true (calls.timed_out);
    assert_int_equal (calls.count, reported);
    zloop_destroy (&loop);
}

static void
test_destroy_from_callback (void **state)
{
    (void) state;
    zloop_t *loop = zloop_new ();
    s_calls_t calls = { 0 };
    calls.gc = qn_s3gc_new (loop, s_done, &calls);
    assert_non_null (calls.gc);
    calls.destroy_on_first = true;
    Qanat__ArtifactStore store;
    s_store (&store, "qanat-gc", S_REFUSED, "us-east-1", true);
    for (size_t i = 0; i < 5; i++)
        assert_int_equal (qn_s3gc_delete (calls.gc, "d", &store, "gc/d"), 0);
    s_run (loop, &calls, 1, 30000);
    assert_false (calls.timed_out);
    assert_null (calls.gc);
    s_run (loop, &calls, 2, 300);
    assert_true (calls.timed_out);
    assert_int_equal (calls.count, 1);
    zloop_destroy (&loop);
}

static void
test_queue_from_callback (void **state)
{
    (void) state;
    zloop_t *loop = zloop_new ();
    s_calls_t calls = { 0 };
    calls.gc = qn_s3gc_new (loop, s_done, &calls);
    assert_non_null (calls.gc);
    Qanat__ArtifactStore store;
    s_store (&store, "qanat-gc", S_REFUSED, "us-east-1", true);
    calls.queue_on_first = true;
    calls.store = &store;
    assert_int_equal (qn_s3gc_delete (calls.gc, "a", &store, "gc/a"), 0);
    assert_int_equal (qn_s3gc_delete (calls.gc, "b", &store, "gc/b"), 0);
    s_run (loop, &calls, 3, 30000);
    assert_false (calls.timed_out);
    assert_string_equal (calls.ids [0], "a");
    assert_string_equal (calls.ids [1], "b");
    assert_string_equal (calls.ids [2], "again");
    assert_non_null (strstr (calls.errors [2], "DELETE s3://qanat-gc/gc/again"));
    assert_int_equal (qn_s3gc_pending (calls.gc), 0);
    qn_s3gc_destroy (&calls.gc);
    zloop_destroy (&loop);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_new_destroy),
        cmocka_unit_test (test_invalid_refused_at_once),
        cmocka_unit_test (test_failures_in_order),
        cmocka_unit_test (test_no_credentials_not_cached),
        cmocka_unit_test (test_many_stores),
        cmocka_unit_test (test_success_and_s3_error),
        cmocka_unit_test (test_queue_bound_and_destroy_pending),
        cmocka_unit_test (test_destroy_from_callback),
        cmocka_unit_test (test_queue_from_callback),
    };
    return cmocka_run_group_tests (tests, s_group_setup, NULL);
}
