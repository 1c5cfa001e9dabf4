#!/usr/bin/env python3
"""Runs the web UI's JavaScript unit tests (web/tests/*.test.mjs: the DAG
layout and the log view's window arithmetic) under node's own test
runner.  Skipped (exit 77) when node is not installed."""
import os
import shutil
import subprocess
import sys

SRCDIR = os.environ.get("QANAT_SRCDIR") or os.path.join(os.path.dirname(__file__), "..", "..")


def main():
    node = shutil.which("node")
    if not node:
        print("SKIP: node is not installed")
        return 77
    tests = os.path.join(SRCDIR, "web", "tests")
    files = sorted(os.path.join(tests, f) for f in os.listdir(tests) if f.endswith(".test.mjs"))
    if not files:
        print("FAIL: no test in", tests)
        return 1
    done = subprocess.run([node, "--test", *files], timeout=120)
    return 0 if done.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
