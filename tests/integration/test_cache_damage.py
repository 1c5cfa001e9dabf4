"""An agent's blob cache cannot be poisoned, and a damaged entry heals.

One coordinator and one agent for every case.  A producer (cached, so a
later run reuses its output) writes a 300 kB file; two consumers on the
same agent read it.

- A task damages its own staged input: overwritten in place (dd
  conv=notrunc), appended to, truncated, made writable and rewritten,
  replaced by a symlink.  The consumer running beside it and the next
  run's consumer must read the producer's bytes, and the cache entry must
  still hold them.
- The same five kinds of damage done to the cache entry itself (as an old
  hard link, a hand edit or the disk would): the next consumer must read
  the right bytes, and each damaged entry is counted in `qanat stats`.

Every hash is checked here: coreutils' sha256sum in the tasks against
the generator's hash computed by this test (hashlib).

    QANAT_BUILDDIR=$PWD /usr/bin/python3 tests/integration/test_cache_damage.py
"""
import hashlib
import os
import random
import shlex
import subprocess
import sys

import harness
from harness import check

SIZE = 300 * 1000
CASES = ("overwrite", "append", "truncate", "rewrite", "symlink")

GENERATOR = """\
import random, sys
sys.stdout.buffer.write(random.Random(sys.argv[1]).randbytes(int(sys.argv[2])))
"""

# `how` is not in make's command, so a run with another `how` reuses
# make's output (the task cache) and its consumer stages the same blob.
WORKFLOW = """\
name: damage
params:
  seed: none
  how: none
  mark: none
tasks:
  make:
    cache: true
    outputs: {out: blob.bin}
    run: %(gen)s ${{ params.seed }} %(size)d > blob.bin
  use:
    inputs: {x: make.out}
    run: |
      set -e
      sha256sum x
      case ${{ params.how }} in
        overwrite) [ -w x ] || chmod u+w x; printf XXXX | dd of=x conv=notrunc 2>/dev/null ;;
        append) [ -w x ] || chmod u+w x; printf XXXX >> x ;;
        truncate) [ -w x ] || chmod u+w x; truncate -s 1000 x ;;
        rewrite) chmod u+w x; head -c %(size)d /dev/zero > x ;;
        symlink) rm -f x; ln -s /etc/hostname x ;;
      esac
      touch ${{ params.mark }}
  peer:
    inputs: {x: make.out}
    run: |
      for i in $(seq 200); do [ -e ${{ params.mark }} ] && break; sleep 0.05; done
      sha256sum x
"""


def expected(seed):
    return hashlib.sha256(random.Random(seed).randbytes(SIZE)).hexdigest()


def sha256_file(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def cache_path(c, digest):
    return os.path.join(c.agent_dir("a1"), "blobs", "objects", digest[:2], digest[2:])


def damaged_count(c):
    """The agents' damaged cache entries in `qanat stats` (None if absent)."""
    return c.qanat_json("stats").get("agent_cache_damaged")


def run(c, wf, seed, how):
    """Runs the workflow; returns {task: [stdout lines]} (all must succeed)."""
    mark = os.path.join(c.dir, "mark-%s-%s" % (seed, how))
    run_id = c.start_run(wf, "seed=" + seed, "how=" + how, "mark=" + mark)
    info = c.wait_run(run_id)
    lines = {}
    for l in c.logs_json(run_id):
        if l["stream"] == "stdout":
            lines.setdefault(l["task"], []).append(l["data"])
    reasons = [a.get("reason") for t in info["tasks"] for a in t.get("attempts", [])
               if a.get("reason")]
    check(info["status"] == "succeeded", "run %s/%s: %s %s %s" % (seed, how, info["status"],
                                                                  lines, reasons))
    return lines


def damage_cache_entry(path, how):
    """What an outside writer could do to a cache file."""
    if how == "symlink":
        os.unlink(path)
        os.symlink("/etc/hostname", path)
        return
    os.chmod(path, 0o644)
    if how == "overwrite":
        subprocess.run("printf XXXX | dd of=%s conv=notrunc 2>/dev/null" % shlex.quote(path),
                       shell=True, check=True)
    elif how == "append":
        with open(path, "ab") as f:
            f.write(b"XXXX")
    elif how == "truncate":
        os.truncate(path, 1000)
    elif how == "rewrite":
        with open(path, "wb") as f:
            f.write(bytes(SIZE))


def test_no_task_changes_what_a_later_task_reads(c):
    c.start_coordinator()
    c.start_agent("a1", slots=3)
    gen = "%s %s" % (shlex.quote(sys.executable), shlex.quote(c.write("gen.py", GENERATOR)))
    wf = c.write("damage.yaml", WORKFLOW % {"gen": gen, "size": SIZE})
    before = damaged_count(c)

    # A task writes through its staged input
    for how in CASES:
        seed = "task-" + how
        want = "%s  x" % expected(seed)
        first = run(c, wf, seed, how)
        check(first["use"][0] == want, "%s: the damaging task read %s" % (how, first["use"]))
        check(first["peer"] == [want], "%s: the task beside it read %s" % (how, first["peer"]))
        check(sha256_file(cache_path(c, expected(seed))) == expected(seed),
              "%s: the agent's cache entry changed" % how)
        second = run(c, wf, seed, "none")
        check(second["use"] == [want], "%s: the next run read %s" % (how, second["use"]))
    check(before is not None, "qanat stats has no agent_cache_damaged")
    check(damaged_count(c) == before, "isolated tasks damaged no cache entry")

    # The cache entry itself is damaged between two runs
    for number, how in enumerate(CASES, 1):
        seed = "cache-" + how
        want = "%s  x" % expected(seed)
        run(c, wf, seed, "none")
        damage_cache_entry(cache_path(c, expected(seed)), how)
        again = run(c, wf, seed, "none")
        check(again["use"] == [want] and again["peer"] == [want],
              "%s: after the cache was damaged the consumers read %s" % (how, again))
        check(sha256_file(cache_path(c, expected(seed))) == expected(seed),
              "%s: the cache entry was not fetched again" % how)
        c.wait_for(lambda: damaged_count(c) == before + number,
                   "%s: the damaged entry counted (%s)" % (how, damaged_count(c)))
    with open(os.path.join(c.dir, "agent-a1.log"), errors="replace") as log:
        logged = [l for l in log if "damaged" in l]
    for how in CASES:
        check(any(expected("cache-" + how) in l for l in logged),
              "%s: no log line names the damaged blob: %s" % (how, logged))


if __name__ == "__main__":
    harness.main(globals())
