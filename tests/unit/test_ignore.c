/*  Unit tests for qn_ignore: .qanatignore rules in gitignore syntax. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include "qn_ignore.h"

static qn_ignore_t *
s_rules (const char *text)
{
    qn_ignore_t *rules = qn_ignore_new (text, strlen (text));
    assert_non_null (rules);
    return rules;
}

static void
test_comments_and_blanks (void **state)
{
    (void) state;
    qn_ignore_t *rules = s_rules ("# a comment\n\n   \n\\#hash\n*.o\r\n");
    assert_int_equal (qn_ignore_count (rules), 2);
    assert_true (qn_ignore_match (rules, "#hash", false));
    assert_true (qn_ignore_match (rules, "main.o", false));
    assert_false (qn_ignore_match (rules, "# a comment", false));
    qn_ignore_destroy (&rules);
    assert_null (rules);
}

static void
test_names_at_any_depth (void **state)
{
    (void) state;
    qn_ignore_t *rules = s_rules ("*.pyc\n__pycache__\ndata?.csv\n");
    assert_true (qn_ignore_match (rules, "a.pyc", false));
    assert_true (qn_ignore_match (rules, "pkg/sub/a.pyc", false));
    assert_true (qn_ignore_match (rules, "pkg/__pycache__", true));
    assert_true (qn_ignore_match (rules, "pkg/__pycache__/x.py", false));   //  inside
    assert_true (qn_ignore_match (rules, "data1.csv", false));
    assert_false (qn_ignore_match (rules, "data12.csv", false));
    assert_false (qn_ignore_match (rules, "a.py", false));
    assert_false (qn_ignore_match (rules, "pyc", false));
    qn_ignore_destroy (&rules);
}

static void
test_anchored_and_dirs (void **state)
{
    (void) state;
    qn_ignore_t *rules = s_rules ("/build\ndocs/*.html\nout/\n");
    assert_true (qn_ignore_match (rules, "build", true));
    assert_true (qn_ignore_match (rules, "build", false));
    assert_false (qn_ignore_match (rules, "src/build", true));
    assert_true (qn_ignore_match (rules, "docs/a.html", false));
    assert_false (qn_ignore_match (rules, "docs/sub/a.html", false));   //  '*' stops at '/'
    assert_false (qn_ignore_match (rules, "x/docs/a.html", false));     //  anchored
    assert_true (qn_ignore_match (rules, "out", true));
    assert_true (qn_ignore_match (rules, "src/out", true));
    assert_false (qn_ignore_match (rules, "out", false));               //  a file named out
    assert_true (qn_ignore_match (rules, "out/model.bin", false));
    qn_ignore_destroy (&rules);
}

static void
test_negation (void **state)
{
    (void) state;
    qn_ignore_t *rules = s_rules ("*.csv\n!keep.csv\nlogs/\n!logs/important.txt\n\\!bang\n");
    assert_true (qn_ignore_match (rules, "big.csv", false));
    assert_false (qn_ignore_match (rules, "keep.csv", false));
    assert_false (qn_ignore_match (rules, "sub/keep.csv", false));
    //  A file in an excluded directory cannot be kept again (git's rule)
    assert_true (qn_ignore_match (rules, "logs/important.txt", false));
    assert_true (qn_ignore_match (rules, "!bang", false));
    qn_ignore_destroy (&rules);
    //  The last match wins
    rules = s_rules ("!a.txt\n*.txt\n");
    assert_true (qn_ignore_match (rules, "a.txt", false));
    qn_ignore_destroy (&rules);
}

static void
test_double_star (void **state)
{
    (void) state;
    qn_ignore_t *rules = s_rules ("**/cache\nlogs/**\na/**/b\n");
    assert_true (qn_ignore_match (rules, "cache", true));
    assert_true (qn_ignore_match (rules, "x/y/cache", false));
    assert_true (qn_ignore_match (rules, "logs/x", false));
    assert_true (qn_ignore_match (rules, "logs/x/y", false));
    assert_false (qn_ignore_match (rules, "logs", true));
    assert_true (qn_ignore_match (rules, "a/b", false));
    assert_true (qn_ignore_match (rules, "a/x/y/b", false));
    assert_false (qn_ignore_match (rules, "a/xb", false));
    qn_ignore_destroy (&rules);
}

static void
test_classes_and_escapes (void **state)
{
    (void) state;
    qn_ignore_t *rules = s_rules ("file[0-9].txt\n[!a]x\nspace\\ \nstar\\*\n[unclosed\n");
    assert_true (qn_ignore_match (rules, "file3.txt", false));
    assert_false (qn_ignore_match (rules, "filea.txt", false));
    assert_true (qn_ignore_match (rules, "bx", false));
    assert_false (qn_ignore_match (rules, "ax", false));
    assert_true (qn_ignore_match (rules, "space ", false));
    assert_true (qn_ignore_match (rules, "star*", false));
    assert_false (qn_ignore_match (rules, "starx", false));
    assert_true (qn_ignore_match (rules, "[unclosed", false));
    qn_ignore_destroy (&rules);
}

static void
test_hostile (void **state)
{
    (void) state;
    //  Many stars against a long name must end quickly, without a match
    char pattern [200], name [300];
    for (int i = 0; i < 99; i++) {
        pattern [2 * i] = '*';
        pattern [2 * i + 1] = 'a';
    }
    strcpy (pattern + 198, "b");
    memset (name, 'a', 299);
    name [299] = 0;
    qn_ignore_t *rules = qn_ignore_new (pattern, strlen (pattern));
    assert_false (qn_ignore_match (rules, name, false));
    qn_ignore_destroy (&rules);
    //  A NUL inside a line drops that line; empty input, empty paths
    rules = qn_ignore_new ("a\0b\nc\n", 6);
    assert_int_equal (qn_ignore_count (rules), 1);
    assert_false (qn_ignore_match (rules, "", false));
    qn_ignore_destroy (&rules);
    rules = qn_ignore_new (NULL, 0);
    assert_int_equal (qn_ignore_count (rules), 0);
    qn_ignore_destroy (&rules);
    qn_ignore_destroy (&rules);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_comments_and_blanks),
        cmocka_unit_test (test_names_at_any_depth),
        cmocka_unit_test (test_anchored_and_dirs),
        cmocka_unit_test (test_negation),
        cmocka_unit_test (test_double_star),
        cmocka_unit_test (test_classes_and_escapes),
        cmocka_unit_test (test_hostile),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
