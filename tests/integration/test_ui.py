"""The web UI in a real headless Chromium: starts a secure qanatd with
the HTTP server on and --web-dir at the source tree's web/, one local
agent, an admin and a user API token (made with the CLI), then runs
tests/browser/test_ui.mjs (playwright-core, installed by
tests/browser/setup.sh, or found in $QANAT_BROWSER_NODE_DIR) and reports its "N passed, N failed".
Screenshots go to tests/browser/screenshots/ in the build tree.
Skipped (77) only when Chromium is not installed."""
import os
import re
import subprocess
import sys

import harness
from harness import BUILD, SRC

CHROMIUM = os.environ.get("QANAT_CHROMIUM", "/usr/bin/chromium")
BROWSER_DIR = os.path.join(SRC, "tests", "browser")

CHAIN = """\
name: ui-chain
tasks:
  prepare:
    run: sh -c 'for i in 1 2 3 4 5 6 7 8; do echo "prepare line $i"; sleep 0.2; done'
  train:
    needs: [prepare]
    run: sh -c 'for i in 1 2 3 4 5; do echo "train epoch $i"; echo "loss $((10 - i)) $i" >> "$QANAT_METRICS"; sleep 0.3; done'
    metrics: [loss]
  report:
    needs: [train]
    run: sh -c 'for i in 1 2 3 4 5 6 7 8; do echo "report line $i"; sleep 0.2; done'
"""

TALK = """\
name: ui-talk
tasks:
  talk:
    run: sh -c 'for i in $(seq 1 60); do echo "talk line $i"; sleep 0.25; done'
"""


def main():
    if not os.access(CHROMIUM, os.X_OK):
        print("1..0 # SKIP Chromium is not installed (%s); apt-get install chromium" % CHROMIUM)
        sys.exit(77)
    node_dir = next((d for d in (os.environ.get("QANAT_BROWSER_NODE_DIR"), BROWSER_DIR)
                     if d and os.path.isdir(os.path.join(d, "node_modules", "playwright-core"))), None)
    if node_dir is None:
        setup = subprocess.run([os.path.join(BROWSER_DIR, "setup.sh")], capture_output=True, text=True, timeout=300)
        if setup.returncode != 0:
            print("FAIL setup: tests/browser/setup.sh: %s%s" % (setup.stdout, setup.stderr))
            print("0 passed, 1 failed")
            sys.exit(1)
        node_dir = BROWSER_DIR
    c = harness.Cluster("ui")
    ok = False
    try:
        c.start_coordinator(http_port=True, web_dir=os.path.join(SRC, "web"))
        c.start_agent("a1", slots=4)
        env = dict(os.environ,
                   QANAT_URL="http://127.0.0.1:%d" % c.http_port,
                   QANAT_ADMIN_TOKEN=c.create_apitoken("root", "admin"),
                   QANAT_USER_TOKEN=c.create_apitoken("alice", "user"),
                   QANAT_AGENT="a1",
                   QANAT_CHAIN_SOURCE=CHAIN,
                   QANAT_TALK_SOURCE=TALK,
                   QANAT_CHROMIUM=CHROMIUM,
                   QANAT_SCREENSHOTS=os.path.join(BUILD, "tests", "browser", "screenshots"),
                   QANAT_PLAYWRIGHT=os.path.join(node_dir, "node_modules", "playwright-core", "index.mjs"))
        result = subprocess.run(["node", os.path.join(BROWSER_DIR, "test_ui.mjs")], env=env,
                                capture_output=True, text=True, timeout=300)
        sys.stdout.write(result.stdout)
        line = re.search(r"^(\d+) passed, (\d+) failed$", result.stdout, re.M)
        if not line:
            print(result.stderr[-4000:])
            print("FAIL test_ui.mjs printed no summary (exit %d)" % result.returncode)
            print("0 passed, 1 failed")
            return 1
        ok = result.returncode == 0 and line.group(2) == "0"
        if not ok:
            print(result.stderr[-4000:])
        return 0 if ok else 1
    finally:
        c.stop()
        if not ok:
            c.dump_logs()
        else:
            c.cleanup()


if __name__ == "__main__":
    sys.exit(main())
