/*  qn_ignore - the rules of a .qanatignore file, and which paths they
    leave out of a workflow's packed code.

    The syntax is gitignore's, for one file at the top of the tree: one
    pattern a line; blank lines and lines starting with '#' are skipped
    ("\#" and "\!" start a pattern with that character); a '!' in front
    negates (the path is kept again); a trailing '/' matches directories
    only; a pattern with a '/' at its start or in its middle is anchored
    at the top, one without matches a name at any depth; '*' and '?' never
    cross a '/', '[...]' is a class ('!' or '^' negates it), a "**" component
    matches any number of directories (at the end: everything inside); trailing spaces
    are dropped unless escaped.  The last matching pattern wins, and a
    path inside an excluded directory stays excluded (git's rule: a
    directory left out is never entered, so nothing in it can be kept).

    Paths given to qn_ignore_match are relative to the top, '/'-separated,
    without a leading or trailing '/'.
*/
#ifndef QN_IGNORE_H_INCLUDED
#define QN_IGNORE_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _qn_ignore_t qn_ignore_t;

//  Parses the text of a .qanatignore (size bytes, need not end in NUL).
//  NULL only when out of memory; a pattern that cannot match is kept and
//  simply never matches.
qn_ignore_t *
    qn_ignore_new (const char *text, size_t size);

void
    qn_ignore_destroy (qn_ignore_t **self_p);

//  How many patterns were read.
size_t
    qn_ignore_count (qn_ignore_t *self);

//  True when the rules leave path out.  The caller walks the tree from
//  the top and does not enter a directory that is left out.
bool
    qn_ignore_match (qn_ignore_t *self, const char *path, bool is_dir);

#ifdef __cplusplus
}
#endif

#endif
