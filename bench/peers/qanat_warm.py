"""qanat's warm Python workers, for the peer comparison (bench/peers/run.sh).

Starts the built coordinator (durable commits, --insecure, HTTP on
loopback) and AGENTS qanat-agent processes with --slots SLOTS and
--warm-python SLOTS, then with the Python SDK (python/qanat):

  (a) a flow of TASKS independent trivial ops (`return i`): from just
      before flow.run() (this process's wall clock, the code upload
      included) to the run's finished_us (qanatd's clock, same machine);
  (b) a flow that is a chain of CHAIN trivial ops, each taking its
      predecessor's result: link = an attempt's started_us to its
      successor's started_us (qanatd's clock: Finished, next assign,
      staging the input and the code, the call in a warm worker, the
      value stored and collected).

The first op of each worker pays for starting Python (in (a), 8 of
3,000); the chain runs once untimed first (same code, so the same
workers), as Celery's bench sees its started pool.

QANAT_PEERS_WARM_OFF=1 runs the same ops as processes (no --warm-python),
for comparison.  Prints "peer: q.warm.KEY = VALUE UNIT".  Every wait has a deadline; every
process it starts is stopped at the end.
"""
import argparse
import importlib.util
import os
import shutil
import statistics
import sys
import tempfile
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "python"))
import peers  # noqa: E402
import qanat  # noqa: E402
from qanat_real import Cluster, say  # noqa: E402

PER_RUN = 1000

FLOWS = '''
import qanat


@qanat.op
def trivial(i: int) -> int:
    return i


@qanat.op
def link(previous: int) -> int:
    return previous + 1


def wide(count):
    with qanat.Flow("warm-wide") as flow:
        for i in range(count):
            trivial(i)
    return flow


def chain(count):
    with qanat.Flow("warm-chain") as flow:
        value = trivial(0)
        for _ in range(count - 1):
            value = link(value)
    return flow
'''


class WarmCluster(Cluster):
    """qanat_real's cluster with HTTP and warm workers on every agent."""

    def __init__(self, builddir, agents, slots, top):
        super().__init__(builddir, agents, slots, top)
        self.http_port = peers.free_ports(1)[0]

    def _spawn(self, name, argv):
        if name == "qanatd":
            argv = argv + ["--http-endpoint", "127.0.0.1:%d" % self.http_port]
        elif name.startswith("agent"):
            warm = [] if os.environ.get("QANAT_PEERS_WARM_OFF") else ["--warm-python",
                                                                      str(self.slots)]
            argv = argv + warm + (
                ["--verbose"] if os.environ.get("QANAT_PEERS_VERBOSE") else [])
        super()._spawn(name, argv)


def load_flows(top):
    code = os.path.join(top, "code")
    os.makedirs(code)
    path = os.path.join(code, "warmflows.py")
    with open(path, "w") as f:
        f.write(FLOWS)
    spec = importlib.util.spec_from_file_location("warmflows", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def phases(top, run_id, info):
    """Medians (ms) of an attempt's phases from the agents' logs: the call
    in the worker (started -> exited) and storing its outputs (exited ->
    finished): where the time of an op goes on the agent."""
    import datetime
    import re
    seen = {}
    pattern = re.compile(r"^(\S+) info \S+ attempt %s/(\d+)/\d+ .*?(started as|exited|finished)"
                         % run_id)
    for name in os.listdir(top):
        if not (name.startswith("agent") and name.endswith(".log")):
            continue
        with open(os.path.join(top, name)) as f:
            for line in f:
                match = pattern.match(line)
                if match:
                    when = datetime.datetime.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S.%fZ")
                    seen.setdefault(match.group(2), {})[match.group(3)] = when.timestamp()
    call = [(t["exited"] - t["started as"]) * 1000 for t in seen.values()
            if "exited" in t and "started as" in t]
    store = [(t["finished"] - t["exited"]) * 1000 for t in seen.values()
             if "finished" in t and "exited" in t]
    # qanatd's assign (started_us) -> the agent's start: the message, the
    # staging of the code and inputs, the hand-over to the worker
    tasks = info["tasks"]
    stage = [(t["started as"] - tasks[int(i)]["attempts"][-1]["started_us"] / 1e6) * 1000
             for i, t in seen.items() if "started as" in t and int(i) < len(tasks)]
    return tuple(statistics.median(x) if x else 0 for x in (stage, call, store))


def run(client, flow, deadline):
    start = time.time()
    handle = flow.run(follow=False, client=client)
    done = handle.wait(timeout=deadline, poll=0.05)
    if done.status != "succeeded":
        raise SystemExit("qanat: warm run %s ended %s" % (done.id, done.status))
    return start, done


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--builddir", required=True)
    parser.add_argument("--agents", type=int, default=2)
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--tasks", type=int, default=3000)
    parser.add_argument("--chain", type=int, default=50)
    parser.add_argument("--deadline", type=int, default=600)
    args = parser.parse_args()
    top = tempfile.mkdtemp(prefix="qanat-peers-warm.", dir=os.environ.get("TMPDIR", "/tmp"))
    cluster = WarmCluster(args.builddir, args.agents, args.slots, top)
    try:
        cluster.start()
        client = qanat.Client("http://127.0.0.1:%d" % cluster.http_port)
        flows = load_flows(top)
        # A workflow file is at most 1 MiB: the ops go as several runs of
        # one flow at once (one code, so the same workers serve them all)
        runs = -(-args.tasks // PER_RUN)
        wide, chain = flows.wide(args.tasks // runs), flows.chain(args.chain)
        start = time.time()
        handles = [wide.run(follow=False, client=client) for _ in range(runs)]
        done = [h.wait(timeout=args.deadline, poll=0.2) for h in handles]
        if any(d.status != "succeeded" for d in done):
            raise SystemExit("qanat: warm runs ended %s" % [d.status for d in done])
        infos = [cluster.cli_json("status", str(d.id)) for d in done]   # the *_us times
        tasks = runs * (args.tasks // runs)
        wall = max(i["finished_us"] for i in infos) / 1e6 - start
        say("   %d independent trivial ops (%d runs of %d at once): %.3f s from the first"
            " flow.run() to the last run's end; the first op of each worker started Python"
            % (tasks, runs, tasks // runs, wall))
        args.tasks = tasks
        stage, call, store = [statistics.median(x) for x in
                              zip(*(phases(top, d.id, i) for d, i in zip(done, infos)))]
        say("   profile: a slot takes %.1f ms per op; of that (qanatd's and the agents' logs,"
            " medians) assign -> started in the worker (message, staging of code and inputs)"
            " %.1f ms, the call %.1f ms, storing its outputs %.1f ms; the rest is Finished ->"
            " the next assign" % (wall * 1000 * args.agents * args.slots / args.tasks,
                                  stage, call, store))
        peers.say_peer("q.warm.stage_median", stage, "ms")
        peers.say_peer("q.warm.call_median", call, "ms")
        peers.say_peer("q.warm.store_median", store, "ms")
        peers.say_peer("q.warm.tasks", args.tasks, "tasks")
        peers.say_peer("q.warm.throughput", args.tasks / wall, "tasks/s")

        run(client, chain, args.deadline)       # untimed: starts the workers of this code
        _, done = run(client, chain, args.deadline)
        by_name = {task["name"]: task["attempts"][-1]
                   for task in cluster.cli_json("status", str(done.id))["tasks"]}
        starts = sorted(attempt["started_us"] for attempt in by_name.values())
        links = [(b - a) / 1000 for a, b in zip(starts, starts[1:])]
        say("   chain of %d trivial ops (run %s): link (assigned -> successor assigned)"
            " median %.2f ms, p90 %.2f ms" % (args.chain, done.id, statistics.median(links),
                                              peers.quantile(links, 0.9)))
        peers.say_peer("q.warm.chain", args.chain, "tasks")
        peers.say_peer("q.warm.cycle_median", statistics.median(links), "ms")
        peers.say_peer("q.warm.cycle_p90", peers.quantile(links, 0.9), "ms")
    finally:
        cluster.stop()
        if os.environ.get("QANAT_PEERS_KEEP"):
            say("   kept %s" % top)
        else:
            shutil.rmtree(top, ignore_errors=True)


if __name__ == "__main__":
    main()
