"""A small YAML emitter for generated workflows, with a line map.

Only what a workflow needs: block mappings, block sequences of mappings,
flow sequences of scalars.  Every string is written double-quoted with
escapes, so a value (a label, an env value, a description) is always
data, never YAML syntax; keys are written bare only when they are plain
names.  Each output line remembers the origin (e.g. the Python source
line of the op) of the node that produced it, so an error the
coordinator reports at file:line:col can be mapped back.
"""

import re

_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")
_ESCAPES = {"\0": "\\0", "\a": "\\a", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\v": "\\v",
            "\f": "\\f", "\r": "\\r", "\x1b": "\\e", '"': '\\"', "\\": "\\\\"}


class Located(dict):
    """A mapping whose lines come from origin (anything: kept in the map)."""

    def __init__(self, items, origin, comment=None):
        super().__init__(items)
        self.origin = origin
        self.comment = comment      # written above the mapping's key


def _printable(c):
    # The characters libyaml accepts in a stream as they are
    o = ord(c)
    return (0x20 <= o <= 0x7E or o == 0x85 or 0xA0 <= o <= 0xD7FF
            or 0xE000 <= o <= 0xFFFD and o != 0xFEFF or 0x10000 <= o <= 0x10FFFF)


def quote(text):
    """text as a double-quoted YAML scalar."""
    out = ['"']
    for c in text:
        if c in _ESCAPES:
            out.append(_ESCAPES[c])
        elif _printable(c):
            out.append(c)
        elif 0xD800 <= ord(c) <= 0xDFFF:
            raise ValueError("text %r holds a lone surrogate, which YAML cannot carry" % text)
        elif ord(c) <= 0xFF:
            out.append("\\x%02x" % ord(c))
        elif ord(c) <= 0xFFFF:
            out.append("\\u%04x" % ord(c))
        else:
            out.append("\\U%08x" % ord(c))
    out.append('"')
    return "".join(out)


def scalar(value):
    if isinstance(value, bool):
        return quote("true" if value else "false")
    if isinstance(value, (int, float)):
        return quote(repr(value))
    if isinstance(value, str):
        return quote(value)
    raise TypeError("cannot write %r (%s) in a workflow" % (value, type(value).__name__))


def key(name):
    if not isinstance(name, str):
        raise TypeError("mapping key %r is not a string" % (name,))
    return name if _PLAIN_KEY.match(name) else quote(name)


class Emitter:
    def __init__(self):
        self.lines = []
        self.origins = []       # origin of each line, by index

    def _line(self, text, origin):
        self.lines.append(text)
        self.origins.append(origin)

    def comment(self, text, indent=0, origin=None):
        for part in text.splitlines() or [""]:
            self._line(" " * indent + ("# " + part).rstrip(), origin)

    def mapping(self, items, indent, origin):
        origin = getattr(items, "origin", origin)
        pad = " " * indent
        for k, v in items.items():
            o = getattr(v, "origin", origin)
            if getattr(v, "comment", None):
                self.comment(v.comment, indent, o)
            if isinstance(v, dict):
                if not v:
                    self._line("%s%s: {}" % (pad, key(k)), o)
                else:
                    self._line("%s%s:" % (pad, key(k)), o)
                    self.mapping(v, indent + 2, o)
            elif isinstance(v, (list, tuple)):
                if all(not isinstance(x, (dict, list, tuple)) for x in v):
                    self._line("%s%s: [%s]" % (pad, key(k), ", ".join(scalar(x) for x in v)), o)
                else:
                    self._line("%s%s:" % (pad, key(k)), o)
                    self.sequence(v, indent + 2, o)
            else:
                self._line("%s%s: %s" % (pad, key(k), scalar(v)), o)

    def sequence(self, items, indent, origin):
        pad = " " * indent
        for v in items:
            if isinstance(v, dict):
                # "- {k: v, ...}": one line, every scalar quoted
                inner = ", ".join("%s: %s" % (key(k), scalar(x)) for k, x in v.items())
                self._line("%s- {%s}" % (pad, inner), getattr(v, "origin", origin))
            elif isinstance(v, (list, tuple)):
                raise TypeError("nested lists are not part of the workflow format")
            else:
                self._line("%s- %s" % (pad, scalar(v)), origin)

    def text(self):
        return "\n".join(self.lines) + "\n"


def dump(document, header=None):
    """(text, origins): the YAML of document (a dict) and, for each line
    (index 0 = line 1), the origin of the node that wrote it."""
    e = Emitter()
    if header:
        e.comment(header)
    e.mapping(document, 0, getattr(document, "origin", None))
    return e.text(), e.origins
