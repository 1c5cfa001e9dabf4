/*  qn_shellref - ${{ … }} references in a shell string, made data.

    A task's `run:` string goes to /bin/sh -c.  A value substituted into
    it as text would be shell code in some quoting context or other ($(…)
    inside "…", a ' inside '…', a line ending a here-document).  So the
    value is never written into the script at all: each reference becomes
    an expansion of the environment variable that carries the value,
    quoted for the context it lands in:

        bare, in $(…), `…`, ${…}          "${QANAT_PARAM_LR}"
        inside "…", in a <<EOF body        ${QANAT_PARAM_LR}
        inside '…'                         '"${QANAT_PARAM_LR}"'
        inside $((…)), in a <<'EOF' body   refused (evaluated / never expanded)

    The result of a parameter expansion is never parsed again as shell
    code, so whatever the value holds it stays data.  The lexer only picks
    which form keeps the text right: misreading an exotic construct can
    print a value wrongly, never run it.  Private to libqanat.
*/
#ifndef QN_SHELLREF_H_INCLUDED
#define QN_SHELLREF_H_INCLUDED

#include <stddef.h>

//  Maps a reference's inner text (trimmed, "params.lr") to the name of
//  the environment variable that carries its value (malloc'd), or NULL
//  with *error_p (malloc'd) when it names nothing known.
typedef char *(qn_shellref_resolve_fn) (void *arg, const char *ref, size_t len,
                                        char **error_p);

//  Rewrites every ${{ … }} in script (see above).  Returns the new script
//  (malloc'd), or NULL with *error_p (malloc'd) and *offset_p (the byte
//  offset of the offending reference in script) when a reference is
//  unclosed, unknown, or in a context that cannot be made safe.
char *
    qn_shellref_rewrite (const char *script, qn_shellref_resolve_fn *resolve, void *arg,
                         size_t *offset_p, char **error_p);

//  True if text holds a "${{".
int
    qn_shellref_present (const char *text);

#endif
