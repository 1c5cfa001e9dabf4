#!/usr/bin/env python3
"""Checks the web UI's files against what the server's Content-Security-
Policy allows and what the UI promises: no inline script or style, no
HTML built from strings (text from the API must never become markup), no
file from another origin (no CDN).  Ends with "N passed, N failed"."""
import os
import re
import sys

SRCDIR = os.environ.get("QANAT_SRCDIR") or os.path.join(os.path.dirname(__file__), "..", "..")
WEB = os.path.join(SRCDIR, "web")

JS_FORBIDDEN = [
    (re.compile(r"\.(innerHTML|outerHTML)\b|insertAdjacentHTML|document\.write"), "builds HTML from a string"),
    (re.compile(r"\beval\s*\(|new\s+Function\s*\("), "evaluates code from a string (CSP forbids it)"),
    (re.compile(r"setAttribute\s*\(\s*['\"]style['\"]|[{,]\s*['\"]?style['\"]?\s*:"), "an inline style attribute (CSP forbids it)"),
    (re.compile(r"\bsetAttribute\s*\(\s*['\"]on\w+['\"]"), "an inline event handler (CSP forbids it)"),
    (re.compile(r"(?<![\w/])(https?:)?//(?!www\.w3\.org/2000/svg)[a-z0-9.-]+\.[a-z]{2,}/", re.I), "a file from another origin"),
]
HTML_FORBIDDEN = [
    (re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I), "an inline script"),
    (re.compile(r"<style\b|\sstyle\s*=", re.I), "an inline style"),
    (re.compile(r"\son[a-z]+\s*=", re.I), "an inline event handler"),
    (re.compile(r"(src|href)\s*=\s*['\"](https?:)?//", re.I), "a file from another origin"),
]


def check_file(path, rules):
    problems = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            code = line.split("//")[0] if path.endswith(".js") and not re.search(r"['\"`][^'\"`]*//", line) else line
            for rx, why in rules:
                if rx.search(code):
                    problems.append(f"{os.path.relpath(path, SRCDIR)}:{n}: {why}: {line.strip()[:100]}")
    return problems


def main():
    passed = failed = 0
    static = os.path.join(WEB, "static")
    for name in sorted(os.listdir(static)):
        path = os.path.join(static, name)
        problems = []
        if name.endswith(".js"):
            problems = check_file(path, JS_FORBIDDEN)
        elif name.endswith(".css"):
            problems = [p for p in check_file(path, [(re.compile(r"@import|url\(\s*['\"]?(https?:)?//", re.I), "a file from another origin")])]
        for p in problems:
            print("FAIL:", p)
        passed, failed = (passed + 1, failed) if not problems else (passed, failed + 1)
    problems = check_file(os.path.join(WEB, "index.html"), HTML_FORBIDDEN)
    for p in problems:
        print("FAIL:", p)
    passed, failed = (passed + 1, failed) if not problems else (passed, failed + 1)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
