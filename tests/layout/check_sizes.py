#!/usr/bin/env python3
"""Fails on a source file over 1,500 lines or a function over 150 lines
that does not say why.

Long files and functions are where a newcomer gets lost, so the layout
caps them (docs/architecture.md).  One may be longer when a comment says
why: for a file, a line "Longer than 1,500 lines: REASON" in its first
comment; for a function, a comment line "Longer than 150 lines: REASON"
in the comment block right above it.  Functions are found the way the
code is written (CLASS style): the name at the start of a line, the
body's braces at the start of their own lines.  Ends with
"N passed, N failed"."""
import os
import re
import sys

SRCDIR = os.environ.get("QANAT_SRCDIR") or os.path.join(os.path.dirname(__file__), "..", "..")
FOLDERS = ["include/qanat", "lib", "coordinator", "agent", "cli", "bench"]
FILE_MAX, FUNCTION_MAX = 1500, 150
NAME = re.compile(r"^([A-Za-z_]\w*)\s*\(")


def functions(lines):
    """(name, first line, length, comment above) of each function"""
    found = []
    for i, line in enumerate(lines):
        if line.rstrip() != "{" or i == 0:
            continue
        # The name is on the line of the opening parenthesis above
        j = i - 1
        while j > 0 and not NAME.match(lines[j]) and not lines[j].startswith(("}", "#", "//")):
            j -= 1
        match = NAME.match(lines[j])
        if not match:
            continue
        end = i + 1
        while end < len(lines) and lines[end].rstrip() != "}":
            end += 1
        k = j - 1
        while k >= 0 and lines[k].strip() and not lines[k].startswith("//"):
            k -= 1          # the return type's lines
        comment = []
        while k >= 0 and lines[k].startswith("//"):
            comment.append(lines[k])
            k -= 1
        found.append((match.group(1), j + 1, end - i + 1, "\n".join(comment)))
    return found


def main():
    problems = []
    for folder in FOLDERS:
        path = os.path.join(SRCDIR, folder)
        if not os.path.isdir(path):
            continue
        for name in sorted(os.listdir(path)):
            if not name.endswith((".c", ".h")):
                continue
            with open(os.path.join(path, name), errors="replace") as f:
                lines = f.read().split("\n")
            where = "%s/%s" % (folder, name)
            head = "\n".join(lines[:60]).split("*/", 1)[0]
            if len(lines) > FILE_MAX and "Longer than 1,500 lines:" not in head:
                problems.append("%s: %d lines (over %d, and its first comment does not say why)"
                                % (where, len(lines), FILE_MAX))
            for function, line, length, comment in functions(lines):
                if length > FUNCTION_MAX and "Longer than 150 lines:" not in comment:
                    problems.append("%s:%d: %s is %d lines (over %d, and no comment says why)"
                                    % (where, line, function, length, FUNCTION_MAX))
    for problem in problems:
        print(problem)
    print("%d passed, %d failed" % (0 if problems else 1, 1 if problems else 0))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
