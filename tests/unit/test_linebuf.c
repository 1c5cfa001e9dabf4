/*  Tests for qn_linebuf: splitting a byte stream into log lines. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include "qn_linebuf.h"

#define MAX_CHUNKS 64

typedef struct {
    char *data [MAX_CHUNKS];
    size_t size [MAX_CHUNKS];
    bool partial [MAX_CHUNKS];
    size_t count;
} chunks_t;

static void
s_collect (const char *data, size_t size, bool partial, void *arg)
{
    chunks_t *chunks = (chunks_t *) arg;
    assert_true (chunks->count < MAX_CHUNKS);
    chunks->data [chunks->count] = malloc (size + 1);
    assert_non_null (chunks->data [chunks->count]);
    memcpy (chunks->data [chunks->count], data, size);
    chunks->data [chunks->count][size] = '\0';
    chunks->size [chunks->count] = size;
    chunks->partial [chunks->count] = partial;
    chunks->count++;
}

static void
s_chunks_free (chunks_t *chunks)
{
    for (size_t i = 0; i < chunks->count; i++)
        free (chunks->data [i]);
    chunks->count = 0;
}

static void
test_simple_lines (void **state)
{
    (void) state;
    qn_linebuf_t *buf = qn_linebuf_new (0);
    assert_non_null (buf);
    chunks_t chunks = { .count = 0 };
    qn_linebuf_feed (buf, "one\ntwo\nthr", 11, s_collect, &chunks);
    assert_int_equal (chunks.count, 2);
    assert_string_equal (chunks.data [0], "one");
    assert_string_equal (chunks.data [1], "two");
    assert_false (chunks.partial [0]);
    assert_false (chunks.partial [1]);
    assert_int_equal (qn_linebuf_pending (buf), 3);
    qn_linebuf_feed (buf, "ee\n", 3, s_collect, &chunks);
    assert_int_equal (chunks.count, 3);
    assert_string_equal (chunks.data [2], "three");
    assert_int_equal (qn_linebuf_flush (buf, s_collect, &chunks), 0);
    assert_int_equal (chunks.count, 3);
    s_chunks_free (&chunks);
    qn_linebuf_destroy (&buf);
    assert_null (buf);
    qn_linebuf_destroy (&buf);
}

static void
test_byte_by_byte (void **state)
{
    (void) state;
    qn_linebuf_t *buf = qn_linebuf_new (0);
    chunks_t chunks = { .count = 0 };
    const char *text = "alpha\nbeta\n";
    for (size_t i = 0; i < strlen (text); i++)
        qn_linebuf_feed (buf, text + i, 1, s_collect, &chunks);
    assert_int_equal (chunks.count, 2);
    assert_string_equal (chunks.data [0], "alpha");
    assert_string_equal (chunks.data [1], "beta");
    s_chunks_free (&chunks);
    qn_linebuf_destroy (&buf);
}

static void
test_empty_lines (void **state)
{
    (void) state;
    qn_linebuf_t *buf = qn_linebuf_new (0);
    chunks_t chunks = { .count = 0 };
    qn_linebuf_feed (buf, "\n\nx\n\n", 5, s_collect, &chunks);
    assert_int_equal (chunks.count, 4);
    assert_int_equal (chunks.size [0], 0);
    assert_int_equal (chunks.size [1], 0);
    assert_string_equal (chunks.data [2], "x");
    assert_int_equal (chunks.size [3], 0);
    for (size_t i = 0; i < 4; i++)
        assert_false (chunks.partial [i]);
    s_chunks_free (&chunks);
    qn_linebuf_destroy (&buf);
}

static void
test_crlf_kept (void **state)
{
    (void) state;
    qn_linebuf_t *buf = qn_linebuf_new (0);
    chunks_t chunks = { .count = 0 };
    qn_linebuf_feed (buf, "dos\r\nmac\rline\n", 14, s_collect, &chunks);
    assert_int_equal (chunks.count, 2);
    assert_string_equal (chunks.data [0], "dos\r");
    assert_string_equal (chunks.data [1], "mac\rline");
    s_chunks_free (&chunks);
    qn_linebuf_destroy (&buf);
}

static void
test_eof_flush (void **state)
{
    (void) state;
    qn_linebuf_t *buf = qn_linebuf_new (0);
    chunks_t chunks = { .count = 0 };
    qn_linebuf_feed (buf, "done\nno newline", 15, s_collect, &chunks);
    assert_int_equal (chunks.count, 1);
    assert_int_equal (qn_linebuf_flush (buf, s_collect, &chunks), 1);
    assert_int_equal (chunks.count, 2);
    assert_string_equal (chunks.data [1], "no newline");
    assert_false (chunks.partial [1]);
    assert_int_equal (qn_linebuf_pending (buf), 0);
    assert_int_equal (qn_linebuf_flush (buf, s_collect, &chunks), 0);
    s_chunks_free (&chunks);
    qn_linebuf_destroy (&buf);
}

static void
test_binary_nul (void **state)
{
    (void) state;
    qn_linebuf_t *buf = qn_linebuf_new (0);
    chunks_t chunks = { .count = 0 };
    const char data [] = { 'a', '\0', 'b', '\n', '\xff', '\0', '\n' };
    qn_linebuf_feed (buf, data, sizeof (data), s_collect, &chunks);
    assert_int_equal (chunks.count, 2);
    assert_int_equal (chunks.size [0], 3);
    assert_memory_equal (chunks.data [0], "a\0b", 3);
    assert_int_equal (chunks.size [1], 2);
    assert_memory_equal (chunks.data [1], "\xff\0", 2);
    s_chunks_free (&chunks);
    qn_linebuf_destroy (&buf);
}

//  Feeds a line of size bytes (then '\n' if newline) in pieces of step
//  bytes, and checks the pieces: full chunks marked partial, the last not.
static void
s_check_long (size_t size, bool newline, size_t step)
{
    qn_linebuf_t *buf = qn_linebuf_new (0);
    chunks_t chunks = { .count = 0 };
    char *line = malloc (size + 1);
    for (size_t i = 0; i < size; i++)
        line [i] = (char) ('a' + i % 26);
    line [size] = '\n';
    size_t total = size + (newline? 1: 0);
    for (size_t at = 0; at < total; at += step) {
        size_t take = total - at < step? total - at: step;
        qn_linebuf_feed (buf, line + at, take, s_collect, &chunks);
    }
    qn_linebuf_flush (buf, s_collect, &chunks);
    size_t expect = (size + QN_LINEBUF_CHUNK - 1) / QN_LINEBUF_CHUNK;
    if (expect == 0)
        expect = newline? 1: 0;
    assert_int_equal (chunks.count, expect);
    size_t offset = 0;
    for (size_t i = 0; i < chunks.count; i++) {
        bool last = i + 1 == chunks.count;
        assert_int_equal (chunks.partial [i], !last);
        if (!last)
            assert_int_equal (chunks.size [i], QN_LINEBUF_CHUNK);
        assert_memory_equal (chunks.data [i], line + offset, chunks.size [i]);
        offset += chunks.size [i];
    }
    assert_int_equal (offset, size);
    free (line);
    s_chunks_free (&chunks);
    qn_linebuf_destroy (&buf);
}

static void
test_long_lines (void **state)
{
    (void) state;
    size_t steps [] = { 1, 7, 4096, 8192, 8193, 100000 };
    for (size_t s = 0; s < sizeof (steps) / sizeof (steps [0]); s++) {
        s_check_long (8191, true, steps [s]);
        s_check_long (8192, true, steps [s]);
        s_check_long (8193, true, steps [s]);
        s_check_long (16384, true, steps [s]);
        s_check_long (16385, true, steps [s]);
        s_check_long (20000, true, steps [s]);
        s_check_long (8192, false, steps [s]);
        s_check_long (20000, false, steps [s]);
    }
}

static void
test_exact_chunk_then_more (void **state)
{
    (void) state;
    //  A line of exactly one chunk followed by another line: the first
    //  must come out whole, not partial
    qn_linebuf_t *buf = qn_linebuf_new (0);
    chunks_t chunks = { .count = 0 };
    char *data = malloc (QN_LINEBUF_CHUNK + 4);
    memset (data, 'z', QN_LINEBUF_CHUNK);
    memcpy (data + QN_LINEBUF_CHUNK, "\nok\n", 4);
    qn_linebuf_feed (buf, data, QN_LINEBUF_CHUNK + 4, s_collect, &chunks);
    assert_int_equal (chunks.count, 2);
    assert_int_equal (chunks.size [0], QN_LINEBUF_CHUNK);
    assert_false (chunks.partial [0]);
    assert_string_equal (chunks.data [1], "ok");
    free (data);
    s_chunks_free (&chunks);
    qn_linebuf_destroy (&buf);
}

static void
test_small_chunk (void **state)
{
    (void) state;
    qn_linebuf_t *buf = qn_linebuf_new (4);
    chunks_t chunks = { .count = 0 };
    qn_linebuf_feed (buf, "abcdefghij\nabcd\n", 16, s_collect, &chunks);
    assert_int_equal (chunks.count, 4);
    assert_string_equal (chunks.data [0], "abcd");
    assert_true (chunks.partial [0]);
    assert_string_equal (chunks.data [1], "efgh");
    assert_true (chunks.partial [1]);
    assert_string_equal (chunks.data [2], "ij");
    assert_false (chunks.partial [2]);
    assert_string_equal (chunks.data [3], "abcd");
    assert_false (chunks.partial [3]);
    s_chunks_free (&chunks);
    qn_linebuf_destroy (&buf);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_simple_lines),
        cmocka_unit_test (test_byte_by_byte),
        cmocka_unit_test (test_empty_lines),
        cmocka_unit_test (test_crlf_kept),
        cmocka_unit_test (test_eof_flush),
        cmocka_unit_test (test_binary_nul),
        cmocka_unit_test (test_long_lines),
        cmocka_unit_test (test_exact_chunk_then_more),
        cmocka_unit_test (test_small_chunk),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
