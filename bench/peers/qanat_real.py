"""qanat on real processes, for the peer comparison (bench/peers/run.sh).

Starts the built coordinator (durable commits, --insecure) and AGENTS real
qanat-agent processes with --slots SLOTS on loopback, then through the CLI:

  (a) a workflow of TASKS independent `true` tasks: from just before
      `qanat run` (this process's wall clock) to the run's finished_us in
      `qanat status --json` (qanatd's wall clock, same machine);
  (b) a workflow that is a chain of CHAIN `true` tasks: from `qanat status
      --json`, hop = a task's started_us minus its predecessor's
      finished_us (both qanatd's clock: Finished received -> successor
      assigned), link = started_us to the successor's started_us (the
      whole cycle of a real process: assign, fork/exec, exit, reap,
      Finished).

Prints "peer: q.real.KEY = VALUE UNIT".  Every wait has a deadline; every
process it starts is stopped at the end.
"""
import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True     # nothing written into the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peers  # noqa: E402


def say(text):
    print(text, flush=True)


class Cluster:
    def __init__(self, builddir, agents, slots, top):
        self.builddir = builddir
        self.top = top
        self.procs = []
        client_port, agent_port = peers.free_ports(2)
        self.client_ep = "tcp://127.0.0.1:%d" % client_port
        self.agent_ep = "tcp://127.0.0.1:%d" % agent_port
        self.agents = agents
        self.slots = slots

    def start(self):
        qanatd = os.path.join(self.builddir, "coordinator", "qanatd")
        agent = os.path.join(self.builddir, "agent", "qanat-agent")
        self._spawn("qanatd", [qanatd, "--insecure", "--data-dir", os.path.join(self.top, "coord"),
                               "--client-endpoint", self.client_ep,
                               "--agent-endpoint", self.agent_ep])
        help_text = subprocess.run([agent, "--help"], capture_output=True, text=True,
                                   timeout=30).stdout
        agent_insecure = "--insecure" in help_text
        for index in range(self.agents):
            argv = [agent, "-c", self.agent_ep, "-n", "peer%d" % index, "-s", str(self.slots),
                    "-d", os.path.join(self.top, "agent%d" % index)]
            if agent_insecure:
                argv.append("--insecure")
            self._spawn("agent%d" % index, argv)
        say("   qanatd --insecure on %s; %d qanat-agent x %d slots%s"
            % (self.client_ep, self.agents, self.slots,
               " (--insecure)" if agent_insecure else " (no --insecure flag in this build)"))
        deadline = time.time() + 30
        while time.time() < deadline:
            for proc, name in self.procs:
                if proc.poll() is not None:
                    raise SystemExit("qanat: %s exited (%d) at start; log in %s"
                                     % (name, proc.returncode, self.top))
            try:
                agents = self.cli_json("agents")
                if sum(1 for agent in agents if agent.get("connected")) >= self.agents:
                    return
            except RuntimeError:
                pass
            time.sleep(0.2)
        raise SystemExit("qanat: the agents did not register within 30 s")

    def _spawn(self, name, argv):
        log = open(os.path.join(self.top, name + ".log"), "w")
        self.procs.append((subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL), name))
        log.close()

    def cli(self, *args, timeout=60):
        argv = [os.path.join(self.builddir, "cli", "qanat"), "--coordinator", self.client_ep,
                "--key", "none"] + list(args)
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError("qanat %s: exit %d: %s" % (" ".join(args), done.returncode,
                                                          done.stderr.strip()[:300]))
        return done.stdout

    def cli_json(self, *args):
        return json.loads(self.cli(*args, "--json"))

    def stop(self):
        # Agents first (they drain: nothing runs by now), then qanatd.
        for proc, _ in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc, name in reversed(self.procs):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                say("   %s did not stop on SIGTERM within 15 s; killed" % name)
                proc.kill()
                proc.wait()
        self.procs = []


def write_workflow(path, name, count, chained):
    with open(path, "w") as file:
        file.write("name: %s\ntasks:\n" % name)
        for index in range(count):
            file.write("  t%d:\n    run: \"true\"\n" % index)
            if chained and index > 0:
                file.write("    needs: [t%d]\n" % (index - 1))


def run_and_wait(cluster, path, deadline):
    """(run id, wall-clock start, status JSON at the end)."""
    start = time.time()
    out = cluster.cli("run", path)
    match = re.search(r"run (\d+)", out)
    if not match:
        raise SystemExit("qanat: cannot read the run id from: %r" % out)
    run_id = match.group(1)
    end = start + deadline
    while time.time() < end:
        runs = cluster.cli_json("runs", "--limit", "5")
        mine = [run for run in runs if str(run.get("run_id")) == run_id]
        if mine and mine[0].get("status") not in ("running", "pending", "queued"):
            break
        time.sleep(0.05)
    else:
        raise SystemExit("qanat: run %s did not end within %d s" % (run_id, deadline))
    status = cluster.cli_json("status", run_id)
    if status.get("status") != "succeeded":
        raise SystemExit("qanat: run %s ended %s" % (run_id, status.get("status")))
    return run_id, start, status


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--builddir", required=True)
    parser.add_argument("--agents", type=int, default=4)
    parser.add_argument("--slots", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--chain", type=int, default=100)
    parser.add_argument("--deadline", type=int, default=600)
    args = parser.parse_args()
    if not 1 <= args.tasks <= 10000 or not 2 <= args.chain <= 10000:
        raise SystemExit("qanat: --tasks 1..10000 and --chain 2..10000 (one workflow)")
    top = tempfile.mkdtemp(prefix="qanat-peers-real.", dir=os.environ.get("TMPDIR", "/tmp"))
    cluster = Cluster(args.builddir, args.agents, args.slots, top)
    try:
        cluster.start()

        path = os.path.join(top, "wide.yaml")
        write_workflow(path, "peers-wide", args.tasks, False)
        run_id, start, status = run_and_wait(cluster, path, args.deadline)
        wall = status["finished_us"] / 1e6 - start
        inside = (status["finished_us"] - status["created_us"]) / 1e6
        attempts = sum(len(task["attempts"]) for task in status["tasks"])
        say("   %d independent `true` tasks (run %s, %d attempts): %.3f s from `qanat run`"
            " to the run's end (%.3f s inside qanatd)" % (args.tasks, run_id, attempts, wall, inside))
        peers.say_peer("q.real.tasks", args.tasks, "tasks")
        peers.say_peer("q.real.throughput", args.tasks / wall, "tasks/s")

        path = os.path.join(top, "chain.yaml")
        write_workflow(path, "peers-chain", args.chain, True)
        run_id, start, status = run_and_wait(cluster, path, args.deadline)
        tasks = {task["name"]: task for task in status["tasks"]}
        hops, links, runs = [], [], []
        for index in range(args.chain):
            attempt = tasks["t%d" % index]["attempts"][-1]
            runs.append(attempt["finished_us"] - attempt["started_us"])
            if index:
                before = tasks["t%d" % (index - 1)]["attempts"][-1]
                hops.append((attempt["started_us"] - before["finished_us"]) / 1000)
                links.append((attempt["started_us"] - before["started_us"]) / 1000)
        say("   chain of %d `true` tasks (run %s): hop (Finished -> successor assigned, qanatd"
            " clock) median %.3f ms, p99 %.3f ms, max %.3f ms;" % (
                args.chain, run_id, statistics.median(hops), peers.quantile(hops, 0.99), max(hops)))
        say("   link (assigned -> successor assigned) median %.2f ms, p90 %.2f ms;"
            " a task's own assign -> Finished median %.2f ms" % (
                statistics.median(links), peers.quantile(links, 0.9),
                statistics.median(runs) / 1000))
        peers.say_peer("q.real.chain", args.chain, "tasks")
        peers.say_peer("q.real.hop_median", statistics.median(hops), "ms")
        peers.say_peer("q.real.hop_p99", peers.quantile(hops, 0.99), "ms")
        peers.say_peer("q.real.cycle_median", statistics.median(links), "ms")
        peers.say_peer("q.real.cycle_p90", peers.quantile(links, 0.9), "ms")
    finally:
        cluster.stop()
        if os.environ.get("QANAT_PEERS_KEEP"):
            say("   kept %s" % top)
        else:
            shutil.rmtree(top, ignore_errors=True)


if __name__ == "__main__":
    main()
