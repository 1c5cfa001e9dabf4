"""Helpers shared by the three steps of the ml-pipeline example.

The steps may run in different working directories (qanat gives every
attempt a fresh one), so they exchange files through a data directory
that all three compute by the same rule: --data DIR, else
$QANAT_EXAMPLE_DATA, else /tmp/qanat-example-<run id>.
"""

import csv
import json
import math
import os
import tempfile


def default_data_dir():
    return (os.environ.get("QANAT_EXAMPLE_DATA")
            or f"/tmp/qanat-example-{os.environ.get('QANAT_RUN_ID', 'local')}")


def add_data_arg(parser):
    parser.add_argument("--data", default=default_data_dir(), metavar="DIR",
                        help="directory shared by the pipeline steps (default: %(default)s)")


def positive_int(text):
    value = int(text)
    if value <= 0:
        raise ValueError(f"{text!r} is not a positive integer")
    return value


def positive_float(text):
    value = float(text)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{text!r} is not a positive number")
    return value


def _atomic_write(path, write):
    # Write to a temporary file and rename, so a retried or concurrent
    # step never reads a half-written file.
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    try:
        with os.fdopen(fd, "w", newline="") as out:
            write(out)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def write_csv(path, header, rows):
    def write(out):
        writer = csv.writer(out)
        writer.writerow(header)
        for features, label in rows:
            writer.writerow([f"{x:.6g}" for x in features] + [label])
    _atomic_write(path, write)


def read_csv(path):
    """Returns (feature names, list of (features, label))."""
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = []
        for lineno, record in enumerate(reader, start=2):
            if len(record) != len(header):
                raise ValueError(f"{path}:{lineno}: expected {len(header)} fields, got {len(record)}")
            label = int(record[-1])
            if label not in (0, 1):
                raise ValueError(f"{path}:{lineno}: label must be 0 or 1, got {label}")
            rows.append(([float(x) for x in record[:-1]], label))
    return header[:-1], rows


def write_json(path, obj):
    _atomic_write(path, lambda out: json.dump(obj, out, indent=2))


def read_json(path):
    with open(path) as f:
        return json.load(f)


def sigmoid(z):
    # Split by sign so exp() never overflows.
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def standardize(rows, means, stds):
    return [([(x - m) / s for x, m, s in zip(features, means, stds)], label)
            for features, label in rows]


def predict(weights, bias, features):
    return sigmoid(bias + sum(w * x for w, x in zip(weights, features)))
