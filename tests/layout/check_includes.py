#!/usr/bin/env python3
"""Fails on an include cycle between qanat's own modules.

A module is a pair qn_NAME.c / qn_NAME.h (or a program's .c), or a class
spread over several files, each of which says so in its first comment
("One of the files of the qn_NAME class"); module A depends on B when a
file of A includes B's header.  A cycle (A needs B
needs A) means the two cannot be understood, tested or moved apart, so
the layout forbids it (docs/architecture.md).  Prints each cycle found
and ends with "N passed, N failed" like the other tests."""
import os
import re
import sys

SRCDIR = os.environ.get("QANAT_SRCDIR") or os.path.join(os.path.dirname(__file__), "..", "..")
FOLDERS = ["include/qanat", "lib", "coordinator", "agent", "cli"]
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
PART_OF = re.compile(r"One of the files of the (qn_\w+) class")


def modules():
    """name of every own .c/.h file -> its path"""
    found = {}
    for folder in FOLDERS:
        path = os.path.join(SRCDIR, folder)
        for name in sorted(os.listdir(path)):
            if name.endswith((".c", ".h")):
                found[name] = os.path.join(path, name)
    return found


def module_of(files):
    """file name -> its module"""
    owner = {}
    for name, path in files.items():
        with open(path, errors="replace") as f:
            text = f.read()
        comment = text.split("*/", 1)[0]    # the whole first comment, however long
        part = PART_OF.search(" ".join(comment.split()))
        owner[name] = part.group(1) if part else name.rsplit(".", 1)[0]
    return owner


def graph(files):
    owner = module_of(files)
    edges = {}
    for name, path in files.items():
        with open(path, errors="replace") as f:
            text = f.read()
        for included in INCLUDE.findall(text):
            base = os.path.basename(included)
            if base in files and owner[base] != owner[name]:
                edges.setdefault(owner[name], set()).add(owner[base])
    return edges


def cycles(edges):
    """Strongly connected components of more than one module (Tarjan)"""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def main():
    files = modules()
    found = cycles(graph(files))
    for component in found:
        print("include cycle: %s" % " <-> ".join(component))
    print("%d modules, %d cycles" % (len(set(module_of(files).values())), len(found)))
    print("%d passed, %d failed" % (0 if found else 1, 1 if found else 0))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
