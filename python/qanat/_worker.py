"""A warm worker: runs many ops of one flow's code, one at a time, as calls.

The agent (qanat-agent --warm-python N, agent/qn_warm.c) starts
`python3 -m qanat._worker` in the work directory of the first op, with
this package first on PYTHONPATH and stdin one end of a SOCK_SEQPACKET
socket pair.  Each op arrives as one packet, NUL-separated:

    WORKDIR \\0 COMMAND \\0 NAME=VALUE \\0 NAME=VALUE ...

with the op's stdout and stderr pipes attached (SCM_RIGHTS).  The worker
makes them its fds 1 and 2, enters WORKDIR, replaces its environment with
the op's (the same one a process would get), runs the op as
`python3 -m qanat.runtime FLOW TASK` would (FLOW and TASK from COMMAND),
puts /dev/null back on 1 and 2 (so the pipes end), and answers one packet
"EXIT RSS_KB": 0, 1 for an exception (its traceback went to stderr, the
attempt's stack trace), or SystemExit's code.  Modules stay imported from
op to op: that is the point; the agent never hands a worker ops of
another code.  Anything else (a crash, os._exit, a signal) ends the
worker, and the agent reports the op as a process that ended so.
"""

import array
import os
import shlex
import socket
import sys
import traceback

_MAX_PACKET = 256 * 1024


def _receive(sock):
    fds = array.array("i")
    data, ancillary, _flags, _addr = sock.recvmsg(
        _MAX_PACKET, socket.CMSG_SPACE(2 * fds.itemsize))
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[:len(payload) - len(payload) % fds.itemsize])
    return data, list(fds)


def _flow_task(command):
    """FLOW and TASK of the SDK's `... -m qanat.runtime FLOW TASK`."""
    words = shlex.split(command)
    for i in range(len(words) - 3):
        if words[i] == "-m" and words[i + 1] == "qanat.runtime":
            return words[i + 2], words[i + 3]
    raise ValueError("not an op of the Python SDK: %r" % command[:200])


def _rss_kb():
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
    except (OSError, ValueError, IndexError):
        return 0


def _run(workdir, command, env):
    """Runs the op; returns its exit status."""
    os.chdir(workdir)
    os.environ.clear()
    os.environ.update(env)
    # The op's own copy of the code (identical: same hash) for imports it
    # makes lazily; modules already imported stay as they are
    lib = os.path.join(workdir, ".qanat", "lib")
    sys.path[:] = [p for p in sys.path if p not in _run.added]
    _run.added = [lib]
    sys.path.insert(0, lib)
    if not os.path.isdir(lib):
        print("qanat: this run has no code of the flow: start it with flow.run() or "
              "publish it with flow.publish()", file=sys.stderr)
        return 2
    from qanat import runtime, flow as _flow
    if runtime.SPEC_CACHE is None:
        runtime.SPEC_CACHE = {}
    flow_name, task = _flow_task(command)
    sys.argv = ["qanat.runtime", flow_name, task]
    try:
        runtime.run_task(flow_name, task)
        return 0
    except SystemExit as e:
        if e.code is None:
            return 0
        if isinstance(e.code, int):
            return e.code & 0xff
        print(e.code, file=sys.stderr)
        return 1
    except BaseException:
        traceback.print_exc()
        return 1
    finally:
        _flow.RUNTIME_ACTIVE = False
        if workdir in sys.path:
            sys.path.remove(workdir)


_run.added = []


def main():
    sys.dont_write_bytecode = True
    sock = socket.socket(fileno=os.dup(0))
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    while True:
        try:
            data, fds = _receive(sock)
        except (ConnectionError, OSError):
            return 0
        if not data:
            return 0                    # the agent went away
        fields = data.split(b"\0")
        if len(fields) < 3 or len(fds) != 2:
            for fd in fds:
                os.close(fd)
            return 3                    # not our agent's words
        workdir, command = os.fsdecode(fields[0]), os.fsdecode(fields[1])
        env = {}
        for item in fields[2:]:
            name, sep, value = item.partition(b"=")
            if sep:
                env[os.fsdecode(name)] = os.fsdecode(value)
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(fds[0], 1)
        os.dup2(fds[1], 2)
        for fd in fds:
            os.close(fd)
        try:
            status = _run(workdir, command, env)
        finally:
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except (OSError, ValueError):
                    pass
            os.dup2(null, 1)
            os.dup2(null, 2)
        sock.send(b"%d %d" % (status, _rss_kb()))


if __name__ == "__main__":
    sys.exit(main())
