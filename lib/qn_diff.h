/*  qn_diff - unified diffs of two texts, for comparing workflow versions.

    The output reads like `diff -u --label A --label B`: a "---"/"+++"
    header, then hunks "@@ -l,n +l,n @@" with `context` lines around each
    change, hunks closer than twice the context merged, deletions before
    insertions in each change, and "\ No newline at end of file" after a
    last line without one.  `patch` applies it.  Lines are compared as
    bytes with their line end, so a CRLF line differs from an LF one.

    The edit script is Myers' O(ND) greedy one on the lines between the
    common head and tail.  Its memory grows with D squared, so past
    QN_DIFF_EDITS_MAX edits, or past QN_DIFF_LINES_MAX lines on either
    side, the middle is shown as one replacement (every old line removed,
    every new one added): still a correct patch, only not the smallest.
    A NUL byte in the input, which the C string could not carry, is
    written as U+FFFD.

    Private to qanat's own programs (not installed).
*/
#ifndef QN_DIFF_H_INCLUDED
#define QN_DIFF_H_INCLUDED

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define QN_DIFF_LINES_MAX 20000
#define QN_DIFF_EDITS_MAX 2000

//  The unified diff from a to b (malloc'd, the caller frees): "" when the
//  texts are equal, NULL when out of memory.  Labels NULL mean "a" and
//  "b"; a negative context counts as 0.
char *
    qn_diff_unified (const char *a, size_t a_size, const char *b, size_t b_size,
                     const char *a_label, const char *b_label, int context);

#ifdef __cplusplus
}
#endif
#endif
