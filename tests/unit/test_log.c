/*  test_log - qn_log's line: an RFC 3339 UTC time with milliseconds, the
    level, the component, the text; debug lines only when verbose; a line
    too long for the buffer is cut, still one line; the JSON form (one
    object a line, valid UTF-8); <N> priorities when stderr is the
    journal (JOURNAL_STREAM names its dev:ino), not otherwise. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "qn_log.h"

//  What the calls in fn wrote to stderr
static char *
s_capture (void (*fn) (void))
{
    char path [] = "/tmp/qn_log_test.XXXXXX";
    int fd = mkstemp (path);
    assert_true (fd >= 0);
    fflush (stderr);
    int saved = dup (STDERR_FILENO);
    dup2 (fd, STDERR_FILENO);
    fn ();
    dup2 (saved, STDERR_FILENO);
    close (saved);
    off_t size = lseek (fd, 0, SEEK_END);
    char *text = (char *) calloc (1, (size_t) size + 1);
    assert_int_equal (pread (fd, text, (size_t) size, 0), size);
    close (fd);
    unlink (path);
    return text;
}

static void
s_lines (void)
{
    qn_log_set_verbose (false);
    qn_log (QN_LOG_INFO, "spool", "replayed %d events", 3);
    qn_log (QN_LOG_DEBUG, "spool", "not shown");
    qn_log (QN_LOG_ERROR, "api", "%s", "bad");
    qn_log_set_verbose (true);
    qn_log (QN_LOG_DEBUG, "turn", "shown");
    qn_log_set_verbose (false);
}

static void
test_format_and_levels (void **state)
{
    (void) state;
    char *text = s_capture (s_lines);
    regex_t line;
    assert_int_equal (regcomp (&line, "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"
                                      "\\.[0-9]{3}Z (info|debug|warning|error) [a-z]+: .*$",
                               REG_EXTENDED | REG_NEWLINE), 0);
    const char *expected [] = { "info spool: replayed 3 events", "error api: bad",
                                "debug turn: shown" };
    char *save = NULL;
    size_t count = 0;
    for (char *one = strtok_r (text, "\n", &save); one; one = strtok_r (NULL, "\n", &save)) {
        assert_int_equal (regexec (&line, one, 0, NULL, 0), 0);
        assert_true (count < 3);
        assert_string_equal (one + 25, expected [count]);
        count++;
    }
    assert_int_equal (count, 3);
    regfree (&line);
    free (text);
}

static void
s_long (void)
{
    char *big = (char *) malloc (10000);
    memset (big, 'x', 9999);
    big [9999] = '\0';
    qn_log (QN_LOG_WARNING, "agent", "%s", big);
    free (big);
}

static void
test_long_line_is_cut_to_one_line (void **state)
{
    (void) state;
    char *text = s_capture (s_long);
    size_t len = strlen (text);
    assert_true (len > 2000 && len < 2400);
    assert_int_equal (text [len - 1], '\n');
    assert_null (memchr (text, '\n', len - 1));
    free (text);
}

static void
s_json (void)
{
    qn_log_set_format (QN_LOG_JSON);
    qn_log (QN_LOG_WARNING, "spool", "a \"quoted\" %s\nline", "two");
    qn_log (QN_LOG_INFO, "api", "not utf-8: \xff\xfe end");
    qn_log_set_format (QN_LOG_TEXT);
}

static void
test_json_lines (void **state)
{
    (void) state;
    char *text = s_capture (s_json);
    char *second = strchr (text, '\n');
    assert_non_null (second);
    *second++ = '\0';
    regex_t line;
    assert_int_equal (regcomp (&line, "^\\{\"time\":\"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:"
                                      "[0-9]{2}\\.[0-9]{3}Z\",\"level\":\"warning\",\"component\":"
                                      "\"spool\",\"message\":\"a \\\\\"quoted\\\\\" two\\\\nline\"\\}$",
                               REG_EXTENDED), 0);
    assert_int_equal (regexec (&line, text, 0, NULL, 0), 0);
    regfree (&line);
    assert_non_null (strstr (second, "\"level\":\"info\",\"component\":\"api\","
                                     "\"message\":\"not utf-8: ?? end\"}\n"));
    free (text);
}

static void
s_journal (void)
{
    struct stat st;
    assert_int_equal (fstat (STDERR_FILENO, &st), 0);
    char stream [64];
    snprintf (stream, sizeof stream, "%llu:%llu", (unsigned long long) st.st_dev,
              (unsigned long long) st.st_ino);
    setenv ("JOURNAL_STREAM", stream, 1);
    qn_log_set_format (QN_LOG_TEXT);
    qn_log (QN_LOG_ERROR, "a", "e");
    qn_log (QN_LOG_WARNING, "a", "w");
    qn_log (QN_LOG_INFO, "a", "i");
    qn_log_set_verbose (true);
    qn_log (QN_LOG_DEBUG, "a", "d");
    qn_log_set_verbose (false);
    //  Another stream's dev:ino: stderr is not the journal
    setenv ("JOURNAL_STREAM", "1:1", 1);
    qn_log_set_format (QN_LOG_TEXT);
    qn_log (QN_LOG_INFO, "a", "plain");
    unsetenv ("JOURNAL_STREAM");
    qn_log_set_format (QN_LOG_TEXT);
}

static void
test_journal_priorities (void **state)
{
    (void) state;
    char *text = s_capture (s_journal);
    const char *expected [] = { "<3>", "error a: e", "<4>", "warning a: w", "<6>", "info a: i",
                                "<7>", "debug a: d", "", "info a: plain" };
    char *save = NULL;
    size_t count = 0;
    for (char *one = strtok_r (text, "\n", &save); one; one = strtok_r (NULL, "\n", &save)) {
        assert_true (count < 5);
        size_t prefix = strlen (expected [2 * count]);
        assert_memory_equal (one, expected [2 * count], prefix);
        assert_string_equal (one + prefix + 25, expected [2 * count + 1]);
        count++;
    }
    assert_int_equal (count, 5);
    free (text);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_format_and_levels),
        cmocka_unit_test (test_long_line_is_cut_to_one_line),
        cmocka_unit_test (test_json_lines),
        cmocka_unit_test (test_journal_priorities),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
