#!/usr/bin/env python3
"""Placement by resources (docs/scheduling.md): agents report CPUs,
memory and GPUs (here given by --gpus / --resources, or by a stand-in
nvidia-smi), tasks go where what they ask is free, see only their GPUs,
and the accounting survives a coordinator kill -9.

Each task appends "TASK - start|end TIME CUDA_VISIBLE_DEVICES NVIDIA_VISIBLE_DEVICES" lines to
a record file; the checks replay it.
"""
import os
import random
import signal
import stat
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import check, main, task, TestFailure  # noqa: E402

TIMERS = {"heartbeat_ms": 200}

FAKE_NVIDIA_SMI = """#!/bin/sh
echo "0, GPU-aaaa-0000, NVIDIA A100-SXM4-80GB, 81920 MiB"
echo "1, GPU-aaaa-0001, NVIDIA A100-SXM4-80GB, 81920 MiB"
"""


def record_cmd(record, seconds):
    """A task's command: record its start (with its GPUs) and end."""
    return ("sh -c 'echo \"$QANAT_TASK - start $(date +%%s.%%N) "
            "cuda=${CUDA_VISIBLE_DEVICES-unset} nvidia=${NVIDIA_VISIBLE_DEVICES-unset} "
            "order=${CUDA_DEVICE_ORDER-unset}\" >> %s; sleep %s; "
            "echo \"$QANAT_TASK - end $(date +%%s.%%N)\" >> %s'"
            % (record, seconds, record))


def out_path(c, name):
    """A file the tasks write, in a folder `qanat run` does not pack (the
    cluster's .qanatignore leaves out its folders)."""
    os.makedirs(os.path.join(c.dir, "out"), exist_ok=True)
    return os.path.join(c.dir, "out", name)


def read_record(path):
    starts, ends = {}, {}
    with open(path) as f:
        for line in f:
            parts = line.split()
            if parts[2] == "start":
                starts[parts[0]] = (float(parts[3]), parts[4][len("cuda="):],
                                    parts[5][len("nvidia="):], parts[6][len("order="):])
            else:
                ends[parts[0]] = float(parts[3])
    return starts, ends


def agent_of(run, name):
    return task(run, name)["attempts"][-1]["agent"]


def agents_by_name(c):
    return {a["name"]: a for a in c.qanat_json("agents")}


def test_tasks_see_only_their_gpus(c):
    c.start_coordinator()
    c.start_agent("g1", slots=4, timers=TIMERS, extra=["--gpus", "0,1,2", "--resources", "cpus=8,memory=8G"])
    c.start_agent("g2", slots=4, timers=TIMERS, extra=["--gpus", "4,5", "--resources", "cpus=8,memory=8G"])
    agents = agents_by_name(c)
    check(agents["g1"]["total"] == {"cpus": 8, "memory_mb": 8192, "gpus": 3},
          "g1 reports what --gpus/--resources say: %r" % agents["g1"])
    check([g["index"] for g in agents["g2"]["gpus"]] == [4, 5], "g2's GPU indices")
    record = out_path(c, "record")
    tasks = ["tasks:"]
    sizes = {"one%d" % i: 1 for i in range(3)}
    sizes.update({"two%d" % i: 2 for i in range(2)})
    sizes["none"] = 0
    for name, gpus in sizes.items():
        tasks.append("  %s:\n    run: %s\n    resources: {gpus: %d}" % (
            name, record_cmd(record, "0.8"), gpus))
    path = c.write("gpus.yaml", "name: gpus\n" + "\n".join(tasks) + "\n")
    run = c.wait_run(c.start_run(path), timeout=30)
    check(run["status"] == "succeeded", "run failed: %r" % run["status"])
    starts, ends = read_record(record)
    owned = {"g1": {"0", "1", "2"}, "g2": {"4", "5"}}
    for name, gpus in sizes.items():
        agent = agent_of(run, name)
        visible = starts[name][1]
        seen = set(visible.split(",")) if visible else set()
        check(len(seen) == gpus, "%s asked for %d GPUs and sees %r" % (name, gpus, visible))
        check(seen <= owned[agent], "%s sees %r, not all of %s's" % (name, visible, agent))
        check(starts[name][2] == (visible if visible else "none"),
              "NVIDIA_VISIBLE_DEVICES of %s: %r" % (name, starts[name][2]))
        check(starts[name][3] == "PCI_BUS_ID", "CUDA_DEVICE_ORDER of %s: %r" % (name, starts[name][3]))
    # Tasks that overlapped on one agent never shared a GPU
    names = list(sizes)
    for a in names:
        for b in names:
            if a < b and agent_of(run, a) == agent_of(run, b) \
                    and starts[a][0] < ends[b] and starts[b][0] < ends[a]:
                shared = set(starts[a][1].split(",")) & set(starts[b][1].split(",")) - {""}
                check(not shared, "%s and %s ran together on GPUs %r" % (a, b, shared))


def test_gpu_model_label_from_nvidia_smi(c):
    bin_dir = os.path.join(c.dir, "bin")
    os.makedirs(bin_dir)
    smi = os.path.join(bin_dir, "nvidia-smi")
    with open(smi, "w") as f:
        f.write(FAKE_NVIDIA_SMI)
    os.chmod(smi, stat.S_IRWXU)
    c.start_coordinator()
    path = os.environ["PATH"]
    os.environ["PATH"] = bin_dir + ":" + path
    try:
        c.start_agent("dgx", timers=TIMERS)
    finally:
        os.environ["PATH"] = path
    c.start_agent("plain", timers=TIMERS, extra=["--gpus", "none"])
    agents = agents_by_name(c)
    dgx = agents["dgx"]
    check(dgx["labels"].get("gpu") == "a100", "no gpu=a100 label: %r" % dgx["labels"])
    check(dgx["total"]["gpus"] == 2 and dgx["gpus"][1]["uuid"] == "GPU-aaaa-0001"
          and dgx["gpus"][0]["memory_mb"] == 81920, "GPUs from nvidia-smi: %r" % dgx["gpus"])
    check(agents["plain"]["total"]["gpus"] == 0, "--gpus none")
    record = out_path(c, "record")
    path = c.write("a100.yaml", "name: a100\ntasks:\n  t:\n    on: {gpu: a100}\n    run: %s\n"
                   % record_cmd(record, "0"))
    run = c.wait_run(c.start_run(path), timeout=20)
    check(agent_of(run, "t") == "dgx", "the gpu=a100 task ran on %s" % agent_of(run, "t"))
    wide = c.qanat("agents", "-o", "wide").stdout
    check("gpu 0/2" in wide and "A100" in wide, "qanat agents -o wide: %s" % wide)


def test_no_over_commit_with_mixed_tasks(c):
    c.start_coordinator()
    capacity = {"cpus": 4, "memory_mb": 4096, "gpus": 2}
    for name in ("m1", "m2"):
        c.start_agent(name, slots=8, timers=TIMERS,
                      extra=["--resources", "cpus=4,memory=4G,gpus=2"])
    record = out_path(c, "record")
    rng = random.Random(19)
    wants = {}
    lines = ["name: mixed", "tasks:"]
    for i in range(100):
        want = {"cpus": rng.randint(0, 3), "memory_mb": rng.choice([0, 512, 1024, 2048, 3072]),
                "gpus": rng.choice([0, 0, 1, 2])}
        wants["t%03d" % i] = want
        lines.append("  t%03d:\n    run: %s\n    resources: {cpus: %d, memory: %dM, gpus: %d}" % (
            i, record_cmd(record, rng.choice(["0.05", "0.1", "0.2"])), want["cpus"],
            want["memory_mb"], want["gpus"]))
    path = c.write("mixed.yaml", "\n".join(lines) + "\n")
    run = c.wait_run(c.start_run(path), timeout=80)
    check(run["status"] == "succeeded", "mixed run: %s" % run["status"])
    starts, ends = read_record(record)
    check(len(starts) == 100 and len(ends) == 100, "every task recorded")
    most = 0
    for agent in ("m1", "m2"):
        events = []
        for name, want in wants.items():
            if agent_of(run, name) == agent:
                events.append((starts[name][0], 1, name))
                events.append((ends[name], -1, name))
        events.sort(key=lambda e: (e[0], e[1]))        # an end before a start at one time
        used = {"cpus": 0, "memory_mb": 0, "gpus": 0}
        running = set()
        for _, sign, name in events:
            for k in used:
                used[k] += sign * wants[name][k]
            running.add(name) if sign > 0 else running.discard(name)
            most = max(most, len(running))
            for k in used:
                check(used[k] <= capacity[k], "%s over-committed %s: %d > %d with %s" % (
                    agent, k, used[k], capacity[k], sorted(running)))
    check(most >= 2, "tasks never ran side by side (%d)" % most)
    for a in c.qanat_json("agents"):
        check(a["used"] == {"cpus": 0, "memory_mb": 0, "gpus": 0},
              "%s still counts %r in use" % (a["name"], a["used"]))


def test_waiting_reasons_say_what_is_missing(c):
    c.start_coordinator()
    c.start_agent("gpu-node-1", timers=TIMERS, extra=["--gpus", "0,1"])
    c.start_agent("gpu-node-2", timers=TIMERS, extra=["--gpus", "0,1"])
    c.qanat("agent", "drain", "gpu-node-2")
    holder = c.start_run(c.write("holder.yaml", """\
name: holder
tasks:
  holder:
    run: sleep 3
    resources: {gpus: 1}
"""))
    c.wait_for(lambda: task(c.qanat_json("status", holder), "holder")["status"] == "running",
               "the holder to run")
    run_id = c.start_run(c.write("wait.yaml", """\
name: wait
tasks:
  pair:
    run: "true"
    resources: {gpus: 2}
  huge:
    run: "true"
    resources: {gpus: 8}
"""))
    status = c.qanat_json("status", run_id)
    pair = task(status, "pair")["waiting_reason"]
    check(pair == "waiting: needs gpus=2; gpu-node-1 has 1 free, gpu-node-2 is draining"
          or pair == "waiting: needs gpus=2; gpu-node-2 is draining, gpu-node-1 has 1 free",
          "pair waits with: %r" % pair)
    huge = task(status, "huge")["waiting_reason"]
    check(huge == "no connected agent has gpus=8 (largest: 2)", "huge waits with: %r" % huge)
    c.wait_for(lambda: task(c.qanat_json("status", run_id), "pair")["status"] == "succeeded",
               "pair to run once the holder is done", timeout=20)
    c.qanat("cancel", run_id)


def test_coordinator_kill_9_keeps_the_accounting_exact(c):
    c.start_coordinator()
    c.start_agent("node", slots=4, timers=TIMERS,
                  extra=["--gpus", "0,1", "--resources", "cpus=4,memory=4G"])
    record = out_path(c, "record")
    halves = c.start_run(c.write("halves.yaml", """\
name: halves
tasks:
  a:
    run: %s
    resources: {cpus: 2, memory: 2G, gpus: 1}
  b:
    run: %s
    resources: {cpus: 2, memory: 2G, gpus: 1}
""" % (record_cmd(record, "3"), record_cmd(record, "3"))))
    c.wait_for(lambda: (agents_by_name(c)["node"].get("used") or {}).get("gpus") == 2,
               "a and b to take both GPUs")
    c.kill_coordinator(signal.SIGKILL)
    c.start_coordinator()
    c.wait_for(lambda: agents_by_name(c)["node"]["connected"], "the agent to register again")
    node = agents_by_name(c)["node"]
    check(node["used"] == {"cpus": 4, "memory_mb": 4096, "gpus": 2},
          "after the restart the agent counts %r in use" % node.get("used"))
    # A task that needs the whole agent waits for a and b, then runs
    whole = c.start_run(c.write("whole.yaml", """\
name: whole
tasks:
  whole:
    run: %s
    resources: {cpus: 4, memory: 4G, gpus: 2}
""" % record_cmd(record, "0")))
    time.sleep(0.5)
    check(task(c.qanat_json("status", whole), "whole")["status"] == "queued",
          "whole started while a and b held the agent")
    for run_id in (halves, whole):
        run = c.wait_run(run_id, timeout=40)
        check(run["status"] == "succeeded", "run %s: %s" % (run_id, run["status"]))
    starts, ends = read_record(record)
    check(starts["whole"][0] >= max(ends["a"], ends["b"]) - 0.01,
          "whole started before a and b had ended")
    check(starts["whole"][1] == "0,1", "whole sees GPUs %r" % starts["whole"][1])
    check(agents_by_name(c)["node"]["used"] == {"cpus": 0, "memory_mb": 0, "gpus": 0},
          "in use after the runs")


def test_a_canceled_attempt_holds_its_gpus_until_it_is_gone(c):
    c.start_coordinator()
    c.start_agent("node", slots=2, timers=TIMERS, extra=["--gpus", "0,1"])
    # It ignores SIGTERM (the agent kills it after a grace) and writes the
    # time into beat as long as it lives
    beat = out_path(c, "beat")
    stubborn = c.start_run(c.write("stubborn.yaml", """\
name: stubborn
tasks:
  hold:
    run: sh -c 'trap "" TERM; while :; do date +%%s.%%N > %s.new; mv %s.new %s; sleep 0.05; done'
    resources: {gpus: 2}
""" % (beat, beat, beat)))
    c.wait_for(lambda: task(c.qanat_json("status", stubborn), "hold")["status"] == "running",
               "the stubborn task to run")
    c.qanat("cancel", stubborn)
    canceled = time.time()
    check(agents_by_name(c)["node"]["used"]["gpus"] == 2, "the GPUs are free before it is gone")
    record = out_path(c, "record")
    after = c.start_run(c.write("after.yaml", "name: after\ntasks:\n  next:\n    run: %s\n"
                                "    resources: {gpus: 2}\n" % record_cmd(record, "0")))
    run = c.wait_run(after, timeout=30)
    check(run["status"] == "succeeded" and len(task(run, "next")["attempts"]) == 1,
          "the next GPU task: %s, %r" % (run["status"], task(run, "next")["attempts"]))
    starts, _ = read_record(record)
    with open(beat) as f:
        last_beat = float(f.read())
    check(last_beat - canceled > 0.5, "the stubborn task lived %.1f s after the cancel"
          % (last_beat - canceled))
    check(starts["next"][0] > last_beat,
          "the next task started %.2f s before the old one was gone" % (last_beat - starts["next"][0]))
    check(agents_by_name(c)["node"]["used"]["gpus"] == 0, "GPUs in use after both")


def test_an_attempt_that_asks_for_resources_reports_what_it_used(c):
    c.start_coordinator()
    c.start_agent("box", timers=TIMERS, extra=["--resources", "cpus=2,memory=2G"])
    run = c.wait_run(c.start_run(c.write("use.yaml", """\
name: use
tasks:
  use:
    run: ["python3", "-c", "import time\\nb = bytearray(64 << 20)\\nt = time.process_time()\\nwhile time.process_time() - t < 0.3: pass"]
    resources: {cpus: 1, memory: 512M}
""")), timeout=30)
    check(run["status"] == "succeeded", "run: %s" % run["status"])
    series = {s["name"]: [p["value"] for p in s["points"]] for s in c.qanat_json("metrics", run["run_id"])}
    check(len(series.get("qanat.peak_rss", [])) == 1 and series["qanat.peak_rss"][0] >= 64 << 20,
          "qanat.peak_rss: %r" % series.get("qanat.peak_rss"))
    check(len(series.get("qanat.cpu_seconds", [])) == 1 and series["qanat.cpu_seconds"][0] >= 0.25,
          "qanat.cpu_seconds: %r" % series.get("qanat.cpu_seconds"))


def test_memory_limit_is_enforced_in_a_cgroup(c):
    c.start_coordinator()
    c.start_agent("box", timers=TIMERS)
    confinement = agents_by_name(c)["box"]["confinement"]
    if not confinement.startswith("cgroup"):
        print("skip test_memory_limit_is_enforced_in_a_cgroup: attempts cannot be confined "
              "here (%s)" % confinement)
        return
    path = c.write("hog.yaml", """\
name: hog
tasks:
  hog:
    run: ["python3", "-c", "b = bytearray(1024 * 1024 * 1024); print(len(b))"]
    resources: {memory: 256M}
""")
    run = c.wait_run(c.start_run(path), timeout=30)
    attempt = task(run, "hog")["attempts"][-1]
    check(run["status"] == "failed" and attempt["reason"] == "out of memory (limit 256 MiB)",
          "the hog ended %r: %r" % (run["status"], attempt.get("reason")))


if __name__ == "__main__":
    main(globals())
