"""Report metrics to qanat from a Python task.

A task reports a metric by appending a line "name value [step]" to the
file named by $QANAT_METRICS; the qanat agent follows that file and
streams every point to the coordinator, where checks such as
"accuracy >= 0.85" are evaluated.

Each line is written with a single write() on a file opened with
O_APPEND, so lines from several processes never interleave and the agent
never sees half a line followed by another process's data.
"""

import math
import os
import re

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_./-]*\Z")
_NAME_MAX = 128


def report(name, value, step=None):
    """Append one metric point to $QANAT_METRICS.

    Returns True when the point was written, False when $QANAT_METRICS is
    unset (running outside qanat): the caller prints its own progress
    anyway, so nothing is lost.  Raises ValueError on an invalid name, a
    non-finite value or a non-integer step.
    """
    if not isinstance(name, str) or len(name) > _NAME_MAX or not _NAME.match(name):
        raise ValueError(f"invalid metric name {name!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"metric {name}: value {value!r} is not finite")
    if step is not None and (isinstance(step, bool) or not isinstance(step, int)):
        raise ValueError(f"metric {name}: step {step!r} is not an integer")

    path = os.environ.get("QANAT_METRICS")
    if not path:
        return False
    # repr() of a float is the shortest string that reads back exactly.
    line = f"{name} {value!r}" if step is None else f"{name} {value!r} {step}"
    data = (line + "\n").encode("ascii")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        written = os.write(fd, data)
    finally:
        os.close(fd)
    if written != len(data):
        raise OSError(f"short write to {path}: {written} of {len(data)} bytes")
    return True
