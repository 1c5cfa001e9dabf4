#!/usr/bin/env python3
"""Fair share between owners on real agents (docs/scheduling.md): two
users submit 1,000 trivial tasks each at different moments onto the same
agents; while both have tasks waiting, each one's share of the running
attempts converges to equal, or to the weights an administrator set
(`qanat user weight NAME W`).

The shares are measured two ways and printed: the attempts each owner
started in each half second (from the runs' attempt records), and the
coordinator's own count of each owner's running attempts
(`qanat user weights`), sampled while both wait.
"""
import os
import subprocess
import sys
import threading
import time
import json

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import check, main  # noqa: E402

TIMERS = {"heartbeat_ms": 200}
SLOTS = 4
AGENTS = 2
TOLERANCE = 0.10
WINDOW = 0.5            # seconds


def as_user(c, key, *args):
    argv = [harness.QANAT, "--coordinator", c.client_endpoint, "--key", key, "--timeout", "20",
            *[str(a) for a in args]]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    check(result.returncode == 0, "qanat %s: %s" % (" ".join(map(str, args)), result.stderr))
    return result


def workflow(c, name, count):
    lines = ["name: %s" % name, "code: none", "tasks:"]
    lines += ["  t%04d:\n    run: \"true\"" % i for i in range(count)]
    return c.write(name + ".yaml", "\n".join(lines) + "\n")


def starts_of(c, key, run_id):
    run = json.loads(as_user(c, key, "status", run_id, "--json").stdout)
    check(run["status"] == "succeeded", "run %s: %s" % (run_id, run["status"]))
    return [t["attempts"][-1]["started_us"] / 1e6 for t in run["tasks"]]


def contested(c, keys, counts, weights):
    """alice's run starts first, bob's a moment later; returns alice's
    expected share, her share of starts in each half second both waited, and
    her share of the sampled running attempts."""
    c.start_coordinator()
    for user, key in keys.items():
        c.qanat("user", "add", user, "--out", key)
    for i in range(AGENTS):
        c.start_agent("a%d" % i, slots=SLOTS, timers=TIMERS)
    for user, weight in weights.items():
        c.qanat("user", "weight", user, str(weight))
    runs = {}
    runs["alice"] = json.loads(as_user(c, keys["alice"], "run", workflow(c, "wa", counts),
                                       "--json").stdout)["run_id"]
    # Bob comes once alice's tasks hold every slot and some have ended
    c.wait_for(lambda: any(r["name"] == "alice" and r["waiting"] <= counts - 40
                           for r in c.qanat_json("user", "weights")), "alice to start", timeout=30)
    runs["bob"] = json.loads(as_user(c, keys["bob"], "run", workflow(c, "wb", counts),
                                     "--json").stdout)["run_id"]
    samples = []
    done = threading.Event()

    def sample():
        while not done.is_set():
            rows = {r["name"]: r for r in c.qanat_json("user", "weights")}
            a, b = rows.get("alice", {}), rows.get("bob", {})
            if a.get("waiting", 0) > 0 and b.get("waiting", 0) > 0 \
                    and a.get("used", 0) + b.get("used", 0) > 0:
                samples.append(a["used"] / (a["used"] + b["used"]))
            time.sleep(0.2)
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    for user in ("alice", "bob"):
        c.wait_run(runs[user], timeout=90)
    done.set()
    sampler.join()
    starts = {u: sorted(starts_of(c, keys[u], runs[u])) for u in runs}
    # The windows in which both had tasks waiting: from bob's first start
    # to the earlier of the two last starts
    begin = starts["bob"][0]
    end = min(starts["alice"][-1], starts["bob"][-1])
    windows = []
    t = begin
    while t + WINDOW <= end:
        a = sum(1 for s in starts["alice"] if t <= s < t + WINDOW)
        b = sum(1 for s in starts["bob"] if t <= s < t + WINDOW)
        if a + b:
            windows.append((a, b))
        t += WINDOW
    expected = weights.get("alice", 1) / (weights.get("alice", 1) + weights.get("bob", 1))
    before = sum(1 for s in starts["alice"] if s < begin)
    return expected, windows, samples, before, end - begin


def report(title, expected, windows, samples, before, span):
    shares = [a / (a + b) for a, b in windows]
    total_a = sum(a for a, _ in windows)
    total_b = sum(b for _, b in windows)
    overall = total_a / max(1, total_a + total_b)
    sampled = sum(samples) / len(samples) if samples else float("nan")
    print("fair share %s: alice expected %.2f; alice started %d alone first; contested %.1f s: "
          "started alice %d, bob %d, alice's share %.3f; per %.1f s %s; sampled running "
          "share %.3f over %d samples" % (
              title, expected, before, span, total_a, total_b, overall, WINDOW,
              " ".join("%.2f" % s for s in shares), sampled, len(samples)), flush=True)
    check(len(windows) >= 3, "both waited for less than %.1f s (%d windows)"
          % (3 * WINDOW, len(windows)))
    check(abs(overall - expected) <= TOLERANCE,
          "alice's share of starts %.3f, expected %.2f +- %.2f" % (overall, expected, TOLERANCE))
    # Converged: every window but the first and last within 2.5 times the tolerance
    for share in shares[1:-1]:
        check(abs(share - expected) <= 2.5 * TOLERANCE,
              "a window's share %.2f, expected %.2f +- %.2f" % (share, expected, 2.5 * TOLERANCE))
    if samples:
        check(abs(sampled - expected) <= TOLERANCE,
              "sampled running share %.3f, expected %.2f" % (sampled, expected))


def users(c):
    return {user: os.path.join(c.dir, user + ".key") for user in ("alice", "bob")}


def test_two_owners_converge_to_equal_shares(c):
    keys = users(c)
    expected, windows, samples, before, span = contested(c, keys, 1000, {})
    report("1:1", expected, windows, samples, before, span)


def test_weights_set_the_shares(c):
    keys = users(c)
    expected, windows, samples, before, span = contested(c, keys, 1000, {"alice": 3})
    report("3:1", expected, windows, samples, before, span)


if __name__ == "__main__":
    main(globals())
