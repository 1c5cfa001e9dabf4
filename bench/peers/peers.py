"""Small helpers shared by the peer benchmark scripts (bench/peers/).

    peers.py ports N              N free loopback TCP ports, space separated
    peers.py port-range N         N consecutive free loopback TCP ports
    peers.py jobcomp FILE [IDS]   Slurm jobcomp/filetxt records (what `sacct -c`
                                  reads): throughput span and, with IDS (a file
                                  of job ids in chain order), the chain hops
    peers.py stamps FILE          chain hops from "JOBID EPOCH" lines written
                                  by the jobs themselves (sub-second)
    peers.py table LOG...         the side-by-side table from the "figure:" and
                                  "peer:" lines of the logs

Every measurement prints "peer: KEY = VALUE UNIT" lines, like qn_bench's
"figure:" lines, so that run.sh can collect them.  Runs on Debian's
/usr/bin/python3; standard library only.
"""
import datetime
import math
import re
import socket
import statistics
import sys


def say_peer(key, value, unit):
    print("peer: %s = %.6g %s" % (key, value, unit), flush=True)


def quantile(values, q):
    """Nearest-rank quantile of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def free_ports(count):
    # Bind them all at once so that we never hand out the same port twice;
    # the small race with other programs after close is acceptable here.
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def consecutive_ports(count):
    """count consecutive free loopback ports (SlurmctldPort=P-Q needs a range)."""
    import random
    for _ in range(200):
        base = random.randint(20000, 60000 - count)
        sockets = []
        try:
            for port in range(base, base + count):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
            return list(range(base, base + count))
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    sys.exit("no %d consecutive free ports found" % count)


def read_jobcomp(path):
    """JobId -> dict of the key=value fields of each jobcomp/filetxt line."""
    records = {}
    with open(path, encoding="utf-8", errors="replace") as file:
        for line in file:
            fields = dict(re.findall(r"(\w+)=(\S*)", line))
            if "JobId" in fields:
                records[fields["JobId"]] = fields
    return records


def slurm_time(text):
    # jobcomp/filetxt writes local time without a zone, to the second.
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S").timestamp()


def cmd_jobcomp(args):
    if not args:
        sys.exit("usage: peers.py jobcomp FILE [IDS_FILE PREFIX]")
    records = read_jobcomp(args[0])
    states = {}
    for record in records.values():
        states[record.get("JobState", "?")] = states.get(record.get("JobState", "?"), 0) + 1
    print("   jobcomp records: %d (%s)" % (len(records),
          ", ".join("%s %d" % item for item in sorted(states.items()))))
    if len(args) < 3:
        return
    prefix = args[2]
    with open(args[1]) as file:
        ids = [line.strip() for line in file if line.strip()]
    missing = [job for job in ids if job not in records]
    if missing:
        sys.exit("   %d chain jobs have no jobcomp record (first %s)" % (len(missing), missing[0]))
    hops, cycles = [], []
    for before, after in zip(ids, ids[1:]):
        hops.append(slurm_time(records[after]["StartTime"]) - slurm_time(records[before]["EndTime"]))
        cycles.append(slurm_time(records[after]["StartTime"]) - slurm_time(records[before]["StartTime"]))
    print("   %d hops (1 s resolution): end->start min %.0f s, median %.1f s, max %.0f s;"
          " start->start median %.1f s"
          % (len(hops), min(hops), statistics.median(hops), max(hops), statistics.median(cycles)))
    say_peer(prefix + ".hop_median", statistics.median(hops) * 1000, "ms")
    say_peer(prefix + ".hop_max", max(hops) * 1000, "ms")
    say_peer(prefix + ".cycle_median", statistics.median(cycles) * 1000, "ms")


def cmd_stamps(args):
    if len(args) < 2:
        sys.exit("usage: peers.py stamps FILE PREFIX")
    stamps = []
    with open(args[0]) as file:
        for line in file:
            parts = line.split()
            if len(parts) == 2:
                stamps.append((int(parts[0]), float(parts[1])))
    stamps.sort()
    if len(stamps) < 2:
        sys.exit("   fewer than 2 stamps in %s" % args[0])
    cycles = [b[1] - a[1] for a, b in zip(stamps, stamps[1:])]
    print("   %d links from the jobs' own clocks: start->start median %.3f s, p90 %.3f s, max %.3f s"
          % (len(cycles), statistics.median(cycles), quantile(cycles, 0.9), max(cycles)))
    say_peer(args[1] + ".cycle_median", statistics.median(cycles) * 1000, "ms")
    say_peer(args[1] + ".cycle_p90", quantile(cycles, 0.9) * 1000, "ms")


# ---------------------------------------------------------------------------
# The table

def read_figures(paths):
    figures = {}
    pattern = re.compile(r"^(?:figure|peer): (\S+) = (\S+) (\S+)")
    for path in paths:
        try:
            with open(path, encoding="utf-8", errors="replace") as file:
                for line in file:
                    match = pattern.match(line.strip())
                    if match:
                        figures[match.group(1)] = (float(match.group(2)), match.group(3))
        except OSError:
            pass
    return figures


def fmt(value, unit):
    if unit == "ms":
        if value >= 1000:
            return "%.2f s" % (value / 1000)
        if value < 1:
            return "%.3f ms" % value
        return "%.1f ms" % value
    if value >= 100:
        return "{:,.0f} {}".format(value, unit)
    return "%.1f %s" % (value, unit)


# (work, qanat key, qanat label, peer key, peer label, higher_is_better)
ROWS = [
    ("trivial-task throughput", "q.real.throughput", "real agents, {q.real.tasks} `true`",
     "slurm.default.throughput", "Slurm defaults, {slurm.default.jobs} sbatch", True),
    ("trivial-task throughput", "q.real.throughput", "real agents, {q.real.tasks} `true`",
     "slurm.tuned.throughput", "Slurm tuned, {slurm.tuned.jobs} sbatch", True),
    ("trivial-task throughput", "q.real.throughput", "real agents, {q.real.tasks} `true`",
     "celery.throughput", "Celery+Redis, {celery.tasks} tasks", True),
    ("trivial-task throughput", "a.dispatch", "control plane, {a.tasks} (qn_bench a)",
     "celery.throughput", "Celery+Redis, {celery.tasks} tasks", True),
    ("chain hop, end -> next start, median", "b.hop_median",
     "control plane, {b.chain}-chain (qn_bench b)", "slurm.default.hop_median", "Slurm defaults, {slurm.default.chain}-chain (jobcomp, 1 s res.)",
     False),
    ("chain hop, end -> next start, median", "b.hop_median",
     "control plane, {b.chain}-chain (qn_bench b)", "slurm.tuned.hop_median", "Slurm tuned, {slurm.tuned.chain}-chain (jobcomp, 1 s res.)",
     False),
    ("chain hop, end -> next start, median", "b.hop_median",
     "control plane, {b.chain}-chain (qn_bench b)", "celery.hop_median", "Celery+Redis, {celery.chain}-chain (in-task clock)", False),
    ("chain hop, end -> next start, p99", "b.hop_p99",
     "control plane, {b.chain}-chain (qn_bench b)", "celery.hop_p99", "Celery+Redis, {celery.chain}-chain (in-task clock)", False),
    ("chain link, start -> next start, median", "q.real.cycle_median", "real agents, {q.real.chain}-chain `true`",
     "slurm.default.stamp.cycle_median", "Slurm defaults, {slurm.default.chain}-chain (in-job clock)", False),
    ("chain link, start -> next start, median", "q.real.cycle_median", "real agents, {q.real.chain}-chain `true`",
     "slurm.tuned.stamp.cycle_median", "Slurm tuned, {slurm.tuned.chain}-chain (in-job clock)", False),
    ("chain link, start -> next start, median", "q.real.cycle_median", "real agents, {q.real.chain}-chain `true`",
     "celery.cycle_median", "Celery+Redis, {celery.chain}-chain (in-task clock)", False),
    ("trivial-op throughput, warm Python", "q.warm.throughput",
     "warm workers, {q.warm.tasks} SDK ops", "celery.throughput",
     "Celery+Redis, {celery.tasks} tasks", True),
    ("chain link, start -> next start, median", "q.warm.cycle_median",
     "warm workers, {q.warm.chain}-chain SDK ops", "celery.cycle_median",
     "Celery+Redis, {celery.chain}-chain (in-task clock)", False),
]


def label(text, figures):
    """text with each {KEY} replaced by that figure's count (sizes are figures too)."""
    def count(match):
        figure = figures.get(match.group(1))
        return "{:,.0f}".format(figure[0]) if figure else "?"
    return re.sub(r"\{([\w.]+)\}", count, text)


def times(factor):
    return "{:,.0f}".format(factor) if factor >= 100 else "%.3g" % factor


def cmd_table(paths):
    figures = read_figures(paths)
    header = ("work", "qanat", "peer", "ratio qanat/peer")
    lines = []
    for work, qkey, qlabel, pkey, plabel, higher in ROWS:
        qanat = figures.get(qkey)
        peer = figures.get(pkey)
        qtext = "%s: %s" % (label(qlabel, figures), fmt(*qanat) if qanat else "not measured")
        ptext = "%s: %s" % (label(plabel, figures), fmt(*peer) if peer else "not measured")
        if qanat and peer and peer[0] > 0 and qanat[0] > 0:
            ratio = qanat[0] / peer[0]
            faster = ratio if higher else 1 / ratio
            rtext = "%.3g (qanat %s)" % (ratio, "%sx faster" % times(faster) if faster >= 1
                                         else "%sx slower" % times(1 / faster))
        else:
            rtext = "-"
        lines.append((work, qtext, ptext, rtext))
    lines.append(("chain hop (cited, not run)", "-",
                  "Airflow: inter-task latency 4-6 s", "-"))
    widths = [max(len(row[i]) for row in lines + [header]) for i in range(4)]
    def show(row):
        print("| " + " | ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) + " |")
    show(header)
    print("|" + "|".join("-" * (width + 2) for width in widths) + "|")
    for row in lines:
        show(row)
    print("ratio = qanat / peer; throughput: higher is better, latency: lower is better.")


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    command, args = sys.argv[1], sys.argv[2:]
    if command == "ports":
        print(" ".join(str(port) for port in free_ports(int(args[0]) if args else 1)))
    elif command == "port-range":
        print(" ".join(str(port) for port in consecutive_ports(int(args[0]) if args else 1)))
    elif command == "jobcomp":
        cmd_jobcomp(args)
    elif command == "stamps":
        cmd_stamps(args)
    elif command == "table":
        cmd_table(args)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
