"""A real single-node Slurm for integration tests.

SlurmCluster().start() runs munged (its own key and socket), slurmctld and
slurmd, all on loopback ports chosen free, with configuration and state in
a temp dir, and returns once `sinfo` shows the node idle.  .conf is the
slurm.conf path, .env a dict with SLURM_CONF to pass to Slurm commands,
.stop() stops the daemons (slurmd, slurmctld, munged, in that order),
.logs() returns the tails of their log files.

start() raises SlurmUnavailable with the reason when Slurm cannot run here
(not root, packages missing, a daemon that does not come up); a test file
turns that into a skip (exit 77).

Choices (see the comments in _write_conf): memory is a consumable resource
and enforced by jobacct_gather/linux with OverMemoryKill, sampled every
second, so that a job over its --mem ends OUT_OF_MEMORY; the scheduler
starts a job at once (batch_sched_delay=0), and
finished jobs stay visible to scontrol for MinJobAge seconds.
"""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "sinfo", "squeue", "scontrol", "scancel")


class SlurmUnavailable(Exception):
    pass


def _free_ports(count):
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class SlurmCluster:
    def __init__(self, cpus=8, memory_mb=8192, min_job_age=300, start_timeout=60,
                 memory_enforcement=None):
        #  "cgroup", "linux", or None: cgroup, else linux when slurmd
        #  cannot set up cgroups here
        self.memory_enforcement = memory_enforcement
        self.cpus = cpus
        self.memory_mb = memory_mb
        self.min_job_age = min_job_age
        self.start_timeout = start_timeout
        self.dir = None
        self.conf = None
        self.env = None
        self.procs = []           # (name, Popen), in start order
        self.mode = None          # the memory enforcement in use
        self.started_in = None    # seconds start() took

    # ---- helpers -------------------------------------------------------

    def _path(self, *parts):
        return os.path.join(self.dir, *parts)

    def _spawn(self, name, argv, env=None):
        out = open(self._path(name + ".stdout"), "ab")
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True)
        out.close()
        self.procs.append((name, proc))
        return proc

    def _wait(self, predicate, what, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            for name, proc in self.procs:
                if proc.poll() is not None:
                    raise SlurmUnavailable("%s exited (%s) while waiting for %s\n%s" % (
                        name, proc.returncode, what, self.logs()))
            if predicate():
                return
            time.sleep(0.1)
        raise SlurmUnavailable("timed out after %d s waiting for %s\n%s" % (
            timeout, what, self.logs()))

    def run(self, *argv, timeout=30, check=False):
        """Runs a Slurm command with this cluster's SLURM_CONF."""
        return subprocess.run(list(argv), capture_output=True, text=True, env=self.env,
                              timeout=timeout, check=check)

    def _write_conf(self, ports):
        ctld_port, slurmd_port = ports
        d = self.dir
        lines = [
            "# single-node Slurm for qanat integration tests (slurm_cluster.py)",
            "ClusterName=qanattest",
            "SlurmctldHost=localhost",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            "AuthInfo=socket=%s" % self._path("munge", "munge.socket"),
            "StateSaveLocation=%s" % self._path("state"),
            "SlurmdSpoolDir=%s" % self._path("spool"),
            "SlurmctldPidFile=%s" % self._path("slurmctld.pid"),
            "SlurmdPidFile=%s" % self._path("slurmd.pid"),
            "SlurmctldLogFile=%s" % self._path("slurmctld.log"),
            "SlurmdLogFile=%s" % self._path("slurmd.log"),
            "SlurmctldPort=%d" % ctld_port,
            "SlurmdPort=%d" % slurmd_port,
            "SlurmctldDebug=info",
            "SlurmdDebug=info",
            # linuxproc tracks a job's processes by parentage: no freezer
            # cgroup needed.
            "ProctrackType=proctrack/linuxproc",
            "MpiDefault=none",
            "ReturnToService=2",
            "AccountingStorageType=accounting_storage/none",
            "JobCompType=jobcomp/filetxt",
            "JobCompLoc=%s" % self._path("jobcomp.txt"),
            "JobAcctGatherType=jobacct_gather/linux",
            "JobAcctGatherFrequency=task=1",
            # Memory must be a consumable resource for --mem to become the
            # job's limit; a job without --mem gets DefMemPerCPU.
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_CPU_Memory",
            "DefMemPerCPU=512",
            # Start jobs at once, and keep finished ones visible to
            # scontrol / squeue for a while (the backend polls them).
            "SchedulerType=sched/builtin",
            "SchedulerParameters=batch_sched_delay=0",
            "MinJobAge=%d" % self.min_job_age,
            "KillWait=2",
            "OverTimeLimit=0",
            "InactiveLimit=0",
            "MessageTimeout=20",
            # More CPUs than the machine may have, so that a few trivial
            # jobs run at once; config_overrides keeps the node up anyway.
            "SlurmdParameters=config_overrides",
            "NodeName=localhost NodeAddr=127.0.0.1 CPUs=%d RealMemory=%d State=UNKNOWN" % (
                self.cpus, self.memory_mb),
            "PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP",
        ]
        if self.mode == "cgroup":
            # The kernel enforces --mem in a memory cgroup (v1) per job;
            # its OOM kill is what Slurm reports as OUT_OF_MEMORY.
            lines.append("TaskPlugin=task/cgroup")
            with open(self._path("cgroup.conf"), "w") as f:
                f.write("CgroupPlugin=cgroup/v1\n"
                        "CgroupMountpoint=/sys/fs/cgroup\n"
                        "ConstrainRAMSpace=yes\n"
                        "ConstrainSwapSpace=yes\n"
                        "AllowedSwapSpace=0\n"
                        "ConstrainCores=no\n"
                        "ConstrainDevices=no\n")
        else:
            # Without cgroups, enforcement by sampling: every second the
            # gatherer sums the RSS of a step's processes and kills the
            # step over its limit.  Slurm then reports the job FAILED
            # (JobLaunchFailure, ExitCode 0:9), not OUT_OF_MEMORY.
            lines.append("TaskPlugin=task/none")
            lines.append("JobAcctGatherParams=OverMemoryKill")
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")

    # ---- life ----------------------------------------------------------

    def start(self):
        started = time.time()
        if os.geteuid() != 0:
            raise SlurmUnavailable("this single-node Slurm runs slurmd as root; not root")
        missing = [d for d in DAEMONS if not shutil.which(d) and
                   not os.path.exists(os.path.join("/usr/sbin", d))]
        if missing:
            raise SlurmUnavailable("missing Slurm programs: %s (apt-get install slurm-wlm munge)"
                                   % " ".join(missing))
        self.dir = tempfile.mkdtemp(prefix="qanat-slurm-")
        os.chmod(self.dir, 0o755)   # job scripts run as root anyway; keep it readable
        os.makedirs(self._path("munge"))
        os.chmod(self._path("munge"), 0o700)
        self.conf = self._path("slurm.conf")
        self.env = dict(os.environ, SLURM_CONF=self.conf)
        modes = [self.memory_enforcement] if self.memory_enforcement else ["cgroup", "linux"]
        try:
            self._start_munge()
            failures = []
            for mode in modes:
                self.mode = mode
                try:
                    self._start_slurm()
                    break
                except SlurmUnavailable as e:
                    failures.append("with %s memory enforcement: %s" % (mode, e))
                    self._stop_procs(("slurmd", "slurmctld"))
                    if mode == modes[-1]:
                        raise SlurmUnavailable("\n".join(failures))
        except BaseException:
            self.stop(keep=True)
            raise
        self.started_in = time.time() - started
        return self

    def _start_slurm(self):
        for sub in ("state", "spool"):
            shutil.rmtree(self._path(sub), ignore_errors=True)
            os.makedirs(self._path(sub))
        self._write_conf(_free_ports(2))
        self._spawn("slurmctld", ["slurmctld", "-D", "-f", self.conf], env=self.env)
        self._spawn("slurmd", ["slurmd", "-D", "-N", "localhost", "-f", self.conf],
                    env=self.env)
        self._wait(self._node_idle, "the Slurm node to become idle", self.start_timeout)

    def _start_munge(self):
        key = self._path("munge", "munge.key")
        with open(key, "wb") as f:
            f.write(os.urandom(1024))
        os.chmod(key, 0o400)
        munged = shutil.which("munged") or "/usr/sbin/munged"
        self._spawn("munged", [
            munged, "--foreground", "--force", "--num-threads", "4",
            "--socket", self._path("munge", "munge.socket"),
            "--key-file", key,
            "--pid-file", self._path("munge", "munged.pid"),
            "--log-file", self._path("munge", "munged.log"),
            "--seed-file", self._path("munge", "munged.seed")])
        self._wait(lambda: os.path.exists(self._path("munge", "munge.socket")),
                   "munged's socket", 15)

    def _node_idle(self):
        try:
            out = self.run("sinfo", "-h", "-N", "-n", "localhost", "-o", "%t", timeout=10)
        except subprocess.TimeoutExpired:
            return False
        return out.returncode == 0 and out.stdout.strip() == "idle"

    def _stop_procs(self, names=None):
        for name, proc in reversed(self.procs):
            if names is not None and name not in names:
                continue
            if proc.poll() is None:
                try:
                    proc.send_signal(signal.SIGTERM)
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
                except ProcessLookupError:
                    pass
        self.procs = [(n, p) for n, p in self.procs if names is not None and n not in names]

    def stop(self, keep=False):
        """Stops slurmd, slurmctld, then munged (10 s each before SIGKILL)
        and removes the temp dir unless keep (or QANAT_SLURM_KEEP is set)."""
        self._stop_procs()
        if self.dir and not keep and not os.environ.get("QANAT_SLURM_KEEP"):
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def logs(self, lines=40):
        """The last lines of every daemon log, as one text."""
        if not self.dir:
            return ""
        out = []
        for name in ("slurmctld.log", "slurmd.log", "slurmctld.stdout", "slurmd.stdout",
                     "munged.stdout", os.path.join("munge", "munged.log")):
            path = self._path(name)
            if os.path.exists(path) and os.path.getsize(path) > 0:
                with open(path, errors="replace") as f:
                    tail = f.read().splitlines()[-lines:]
                out.append("----- %s -----\n%s" % (name, "\n".join(tail)))
        return "\n".join(out)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


if __name__ == "__main__":
    # By hand: python3 slurm_cluster.py  starts one, prints SLURM_CONF,
    # and stops it on Enter.
    cluster = SlurmCluster().start()
    print("Slurm up in %.1f s: export SLURM_CONF=%s" % (cluster.started_in, cluster.conf))
    try:
        input("Enter to stop ")
    finally:
        cluster.stop(keep=True)
        print("logs kept in", cluster.dir)
