"""How a value travels between ops: the bytes of an op's `result` output.

A result that is not a `File` or a `Dir` is stored as one file: a first
line naming its encoding, then the payload.

    #qanat json     JSON text, for values JSON keeps exactly (None, bool,
                    int, finite float, str, and lists and str-keyed dicts
                    of those)
    #qanat bytes    the bytes themselves
    #qanat pickle   a pickle, for anything else

Unpickling runs code chosen by whoever made the pickle: a flow trusts
its own ops' results, which are written by its own code on its own
agents and stored by hash; never point an op at a result of an
untrusted flow.
"""

import json
import math
import pickle

_HEADER = b"#qanat "


class UnpicklableValue(TypeError):
    """A result that cannot be stored (names the op)."""


def _json_exact(value, depth=0):
    # True when JSON gives back an equal value of the same types
    if depth > 100:
        return False
    if value is None or isinstance(value, (bool, str)):
        return True
    if type(value) is int:
        return True
    if type(value) is float:
        return math.isfinite(value)
    if type(value) is list:
        return all(_json_exact(v, depth + 1) for v in value)
    if type(value) is dict:
        return all(type(k) is str and _json_exact(v, depth + 1) for k, v in value.items())
    return False


def encode(value, op_name):
    """The bytes of value's result file; a value that cannot be pickled
    raises ValueError naming the op."""
    if isinstance(value, (bytes, bytearray, memoryview)) and not hasattr(value, "__fspath__"):
        return _HEADER + b"bytes\n" + bytes(value)
    if _json_exact(value):
        return _HEADER + b"json\n" + json.dumps(value).encode("utf-8")
    try:
        data = pickle.dumps(value, protocol=4)
    except Exception as e:          # pickling raises many kinds
        raise UnpicklableValue("op %s returned a value that cannot be pickled (%s: %s); return "
                          "JSON-able data, bytes, or write a file and return qanat.File"
                          % (op_name, type(value).__name__, e)) from e
    return _HEADER + b"pickle\n" + data


def decode(data, what):
    """The value from a result file's bytes (what names it in errors)."""
    newline = data.find(b"\n")
    if not data.startswith(_HEADER) or newline < 0:
        raise ValueError("%s is not a qanat value (no '#qanat' header)" % what)
    kind = data[len(_HEADER):newline].decode("ascii", "replace")
    body = data[newline + 1:]
    if kind == "json":
        return json.loads(body.decode("utf-8"))
    if kind == "bytes":
        return body
    if kind == "pickle":
        return pickle.loads(body)
    raise ValueError("%s: unknown value encoding %r" % (what, kind))


def json_text(value, limit=60000):
    """The value as one line of JSON when small and JSON-able, else ''
    (for the task's `value` output, shown by `qanat artifacts`)."""
    if not _json_exact(value):
        return ""
    text = json.dumps(value, ensure_ascii=True)
    return text if len(text) <= limit else ""
