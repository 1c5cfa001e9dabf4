"""A workflow's code packed as ``qanat run`` packs it: the folder, less
``.git`` and what its ``.qanatignore`` leaves out, as a directory
artifact whose identity is the SHA-256 of its manifest.

The manifest is byte for byte the one of the C side (lib/qn_tree.h)::

    qanat-tree 1\\n
    <mode octal> <size> <sha256> <path>\\n      one line per file

sorted by the path's bytes, the path %-escaped (``%``, space, control
characters and bytes 0x7f-0xff as %XX, uppercase hex), mode the permission
bits.  The ignore rules are lib/qn_ignore.h's (gitignore's syntax for one
file at the top), matched on bytes.  Symlinks are followed only to places
inside the folder's parent, as the C scan does.

Before anything is read a size guard (default 100 MiB, lstat only)
refuses a folder that is too big, naming its biggest files.
"""
import hashlib
import os
import stat
from typing import Dict, List, Optional, Tuple, Union

from .errors import QanatError

__all__ = ["Tree", "Entry", "IgnoreRules", "pack", "manifest_of", "CODE_MAX",
           "TREE_MAGIC"]

TREE_MAGIC = b"qanat-tree 1\n"
CODE_MAX = 100 * 1024 * 1024
_MAX_ENTRIES = 100000
_MAX_PATH = 4096
_MAX_DEPTH = 64
_BIGGEST = 5
_IGNORE_MAX = 1024 * 1024
_MAX_PATTERNS = 10000
_MAX_LINE = 4096
_MAX_STEPS = 200000


# ---------------------------------------------------------------------
# .qanatignore (lib/qn_ignore.c, on bytes: each byte one character)

class _Budget:
    def __init__(self) -> None:
        self.steps = 0


def _class(p: str, i: int, c: str) -> Tuple[int, int]:
    """A '[...]' class at p[i] against c: (hit 0/1, index after), or
    (-1, i) when it is not closed (then '[' is a literal)."""
    j = i + 1
    n = len(p)
    negate = j < n and p[j] in "!^"
    if negate:
        j += 1
    found = False
    first = True
    while j < n and (p[j] != "]" or first):
        low = high = p[j]
        if p[j] == "\\" and j + 1 < n:
            j += 1
            low = high = p[j]
        if j + 2 < n and p[j + 1] == "-" and p[j + 2] != "]":
            if p[j + 2] == "\\" and j + 3 < n:
                high = p[j + 3]
                j += 3
            else:
                high = p[j + 2]
                j += 2
        if low <= c <= high:
            found = True
        j += 1
        first = False
    if j >= n:
        return -1, i
    return (1 if (found != negate and c != "/") else 0), j + 1


def _glob(p: str, pi: int, s: str, si: int, budget: _Budget) -> bool:
    while pi < len(p):
        budget.steps += 1
        if budget.steps > _MAX_STEPS:
            return False
        if p[pi] == "*" and pi + 1 < len(p) and p[pi + 1] == "*":
            if pi + 2 == len(p):
                return True
            if p[pi + 2] == "/":
                at = si
                while True:
                    if (at == si or s[at - 1] == "/") and _glob(p, pi + 3, s, at, budget):
                        return True
                    if at == len(s):
                        return False
                    at += 1
            pi += 1             # elsewhere it is one '*'
            continue
        if p[pi] == "*":
            at = si
            while True:
                if _glob(p, pi + 1, s, at, budget):
                    return True
                if at == len(s) or s[at] == "/":
                    return False
                at += 1
        if si == len(s):
            return False
        if p[pi] == "?":
            if s[si] == "/":
                return False
            pi += 1
            si += 1
            continue
        if p[pi] == "[":
            hit, after = _class(p, pi, s[si])
            if hit == 0:
                return False
            if hit == 1:
                pi = after
                si += 1
                continue
        if p[pi] == "\\" and pi + 1 < len(p):
            pi += 1
        if p[pi] != s[si]:
            return False
        pi += 1
        si += 1
    return si == len(s)


class IgnoreRules:
    """The patterns of a .qanatignore, and which paths they leave out."""

    def __init__(self, text: bytes) -> None:
        self.patterns: List[Tuple[str, bool, bool, bool]] = []  # glob, negate, dir_only, anchored
        for raw in text.split(b"\n"):
            if len(self.patterns) >= _MAX_PATTERNS:
                break
            if b"\0" in raw:
                continue
            pattern = self._parse(raw.decode("latin-1"))
            if pattern:
                self.patterns.append(pattern)

    @staticmethod
    def _parse(line: str) -> Optional[Tuple[str, bool, bool, bool]]:
        if line.endswith("\r"):
            line = line[:-1]
        while line.endswith(" ") and not (len(line) >= 2 and line[-2] == "\\"):
            line = line[:-1]
        if not line or line[0] == "#" or len(line) > _MAX_LINE:
            return None
        negate = dir_only = anchored = False
        if line[0] == "!":
            negate = True
            line = line[1:]
        elif line[0] == "\\" and len(line) > 1 and line[1] in "#!":
            line = line[1:]
        if line.endswith("/"):
            dir_only = True
            line = line[:-1]
        if line.startswith("/"):
            anchored = True
            line = line[1:]
        if not line:
            return None
        if "/" in line:
            anchored = True
        return line, negate, dir_only, anchored

    def _match_one(self, path: str, is_dir: bool) -> bool:
        name = path.rsplit("/", 1)[-1]
        ignored = False
        for glob, negate, dir_only, anchored in self.patterns:
            if dir_only and not is_dir:
                continue
            if negate != ignored:
                continue
            if _glob(glob, 0, path if anchored else name, 0, _Budget()):
                ignored = not negate
        return ignored

    def match(self, path: Union[str, bytes], is_dir: bool) -> bool:
        """True when the rules leave path (relative, '/'-separated) out,
        itself or through a directory above it."""
        if isinstance(path, bytes):
            path = path.decode("latin-1")
        else:
            path = os.fsencode(path).decode("latin-1")
        if not path:
            return False
        parts = path.split("/")
        for i in range(1, len(parts)):
            if self._match_one("/".join(parts[:i]), True):
                return True
        return self._match_one(path, is_dir)


# ---------------------------------------------------------------------
# The tree and its manifest

class Entry:
    """One file of a packed tree: its path (bytes, '/'-separated), mode,
    size, SHA-256, and where its content is (a file, or bytes)."""

    __slots__ = ("path", "mode", "size", "hash", "source", "data")

    def __init__(self, path: bytes, mode: int, size: int, hash: str,
                 source: Optional[str] = None, data: Optional[bytes] = None) -> None:
        self.path = path
        self.mode = mode
        self.size = size
        self.hash = hash
        self.source = source
        self.data = data

    def read(self) -> bytes:
        """The content (for small files; large ones are streamed with open())."""
        if self.data is not None:
            return self.data
        with open(self.source, "rb") as f:  # type: ignore[arg-type]
            return f.read()


def _escape(path: bytes) -> bytes:
    out = bytearray()
    for c in path:
        if c <= 0x20 or c >= 0x7F or c == 0x25:
            out += b"%%%02X" % c
        else:
            out.append(c)
    return bytes(out)


def manifest_of(entries: List[Entry]) -> bytes:
    """The canonical manifest text of entries (sorted here by path bytes)."""
    lines = [TREE_MAGIC]
    for entry in sorted(entries, key=lambda e: e.path):
        lines.append(b"%o %d %s %s\n" % (entry.mode & 0o777, entry.size,
                                          entry.hash.encode("ascii"), _escape(entry.path)))
    return b"".join(lines)


class Tree:
    """A packed directory: its entries, manifest and identity."""

    def __init__(self, entries: List[Entry]) -> None:
        self.entries = sorted(entries, key=lambda e: e.path)
        self.manifest = manifest_of(self.entries)
        self.hash = hashlib.sha256(self.manifest).hexdigest()

    @property
    def ref(self) -> str:
        """``dir:<sha256>``, the reference a run takes."""
        return "dir:" + self.hash

    @property
    def bytes(self) -> int:
        """The total size of the files."""
        return sum(e.size for e in self.entries)


def _hash_file(path: str) -> Tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while True:
            block = f.read(1 << 20)
            if not block:
                break
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def _control(name: bytes) -> bool:
    return any(c < 0x20 or c == 0x7F for c in name)


class _Scan:
    def __init__(self, root: str, ignore: Optional[IgnoreRules]) -> None:
        self.root = root                  # the folder's parent, as the C side's workdir
        self.ignore = ignore
        self.entries: List[Entry] = []
        self.stack: List[Tuple[int, int]] = []

    def keep(self, path: bytes, is_dir: bool) -> bool:
        name = path.rsplit(b"/", 1)[-1]
        if name == b".git":
            return False
        return not (self.ignore and self.ignore.match(path, is_dir))

    def inside(self, real: str) -> bool:
        root = self.root.rstrip("/")
        return real == root or real.startswith(root + "/") or root == ""

    def scan_dir(self, real: str, prefix: bytes, st: os.stat_result) -> None:
        if (st.st_dev, st.st_ino) in self.stack:
            raise QanatError("code: '%s' is a symlink loop" % os.fsdecode(prefix))
        if len(self.stack) > _MAX_DEPTH:
            raise QanatError("code: '%s' is deeper than %d levels"
                             % (os.fsdecode(prefix), _MAX_DEPTH))
        try:
            names = sorted(os.listdir(os.fsencode(real)))
        except OSError as e:
            raise QanatError("code: '%s': %s" % (os.fsdecode(prefix) or ".", e.strerror)) from None
        self.stack.append((st.st_dev, st.st_ino))
        for name in names:
            if len(self.entries) >= _MAX_ENTRIES:
                raise QanatError("code has more than %d files" % _MAX_ENTRIES)
            self.scan_name(real, prefix, name)
        self.stack.pop()

    def scan_name(self, real: str, prefix: bytes, name: bytes) -> None:
        shown = os.fsdecode(prefix) or "."
        if _control(name):
            raise QanatError("code: a file name in '%s' contains a control character" % shown)
        path = prefix + b"/" + name if prefix else name
        if len(path) > _MAX_PATH:
            raise QanatError("code: path '%s' too long" % os.fsdecode(path))
        full = os.path.join(real, os.fsdecode(name))
        st = os.lstat(full)
        if not self.keep(path, stat.S_ISDIR(st.st_mode)):
            return
        target = full
        if stat.S_ISLNK(st.st_mode):
            target = os.path.realpath(full)
            if not os.path.exists(target):
                raise QanatError("code: '%s': no such file or directory (a dangling symlink?)"
                                 % os.fsdecode(path))
            if not self.inside(target):
                raise QanatError("code: symlink '%s' points outside %s (to %s)"
                                 % (os.fsdecode(path), self.root, target))
            if target == self.root.rstrip("/"):
                raise QanatError("code: symlink '%s' loops back to %s"
                                 % (os.fsdecode(path), self.root))
            st = os.stat(target)
        if stat.S_ISDIR(st.st_mode):
            self.scan_dir(target, path, st)
        elif stat.S_ISREG(st.st_mode):
            digest, size = _hash_file(target)
            self.entries.append(Entry(path, st.st_mode & 0o777, size, digest, source=target))
        else:
            raise QanatError("code: '%s' is a %s (only regular files and directories are packed)"
                             % (os.fsdecode(path), _kind(st.st_mode)))


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    return "special file"


def _load_ignore(folder: str) -> Optional[IgnoreRules]:
    path = os.path.join(folder, ".qanatignore")
    try:
        with open(path, "rb") as f:
            text = f.read(_IGNORE_MAX + 1)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise QanatError("%s: %s" % (path, e.strerror)) from None
    if len(text) > _IGNORE_MAX:
        raise QanatError("%s is larger than 1 MiB" % path)
    return IgnoreRules(text)


def _measure(scan: _Scan, folder: str, limit: int) -> Tuple[int, List[Tuple[int, str]]]:
    """Sizes only (lstat, nothing read), stopping past 64 times the limit."""
    total = 0
    biggest: List[Tuple[int, str]] = []
    todo = [(folder, b"", 0)]
    while todo and total <= 64 * limit:
        real, prefix, depth = todo.pop()
        if depth >= 64:
            continue
        try:
            names = os.listdir(os.fsencode(real))
        except OSError:
            continue
        for name in names:
            path = prefix + b"/" + name if prefix else name
            full = os.path.join(real, os.fsdecode(name))
            try:
                st = os.lstat(full)
            except OSError:
                continue
            link = stat.S_ISLNK(st.st_mode)
            if not scan.keep(path, stat.S_ISDIR(st.st_mode)):
                continue
            if link:
                try:
                    st = os.stat(full)
                except OSError:
                    continue
            if stat.S_ISDIR(st.st_mode) and not link:
                todo.append((full, path, depth + 1))
            elif stat.S_ISREG(st.st_mode):
                total += st.st_size
                biggest.append((st.st_size, os.fsdecode(path)))
                biggest.sort(key=lambda b: -b[0])
                del biggest[_BIGGEST:]
    return total, biggest


def _size_text(size: float) -> str:
    if size >= 1024 * 1024:
        return "%.1f MiB" % (size / (1024.0 * 1024.0))
    return "%.1f KiB" % (size / 1024.0)


def _check_extra(path: str) -> bytes:
    raw = os.fsencode(path)
    parts = raw.split(b"/")
    if (not raw or raw.startswith(b"/") or len(raw) > _MAX_PATH or _control(raw)
            or any(p in (b"", b".", b"..") for p in parts)):
        raise QanatError("extra file path %r must be relative, without '.', '..' or "
                         "empty components" % path)
    return raw


def pack(folder: str, extra_files: Optional[Dict[str, bytes]] = None,
         max_bytes: int = CODE_MAX) -> Tree:
    """Packs folder as ``qanat run`` does; extra_files (relative path ->
    content, mode 0644) are added, replacing a file of the same path.
    Raises QanatError when the folder is over max_bytes (naming its
    biggest files) or holds something that cannot be packed."""
    real = os.path.realpath(folder)
    if not os.path.isdir(real):
        raise QanatError("the code folder %s: not a directory" % folder)
    scan = _Scan(os.path.dirname(real) or "/", _load_ignore(real))
    total, biggest = _measure(scan, real, max_bytes)
    if total > max_bytes:
        lines = ["the code in %s is %s%s, over the limit of %s; leave files out in "
                 "%s/.qanatignore. The biggest files:"
                 % (real, _size_text(total), " or more" if total > 64 * max_bytes else "",
                    _size_text(max_bytes), real)]
        lines += ["  %10.1f MiB  %s" % (size / (1024.0 * 1024.0), path) for size, path in biggest]
        raise QanatError("\n".join(lines))
    try:
        scan.scan_dir(real, b"", os.stat(real))
    except OSError as e:
        raise QanatError("code: %s: %s" % (e.filename, e.strerror)) from None
    entries = {e.path: e for e in scan.entries}
    for path, data in (extra_files or {}).items():
        raw = _check_extra(path)
        if isinstance(data, str):
            data = data.encode("utf-8")
        for i in range(1, raw.count(b"/") + 1):
            if b"/".join(raw.split(b"/")[:i]) in entries:
                raise QanatError("extra file %r is under a file of the folder" % path)
        if any(p.startswith(raw + b"/") for p in entries):
            raise QanatError("extra file %r is a directory of the folder" % path)
        entries[raw] = Entry(raw, 0o644, len(data), hashlib.sha256(data).hexdigest(), data=data)
    return Tree(list(entries.values()))
