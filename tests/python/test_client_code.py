"""qanat._code packs a folder exactly as `qanat run` does: the same
manifest, byte for byte, and so the same hash as the C side (lib/qn_tree,
lib/qn_ignore) on the same tree; the size guard names the biggest files;
put_tree sends only what the coordinator lacks (its blob counters)."""
import os

import clientlib
from clientlib import ClusterCase, qanat
from qanat import _code

IGNORE = """\
# scratch
*.tmp
!keep.tmp
data/
/build
notes/**/private.md
[ab]?.log
\\#literal
trailing\\ 
**/cache/**
deep/*/x.txt
"""


def _files(top, files):
    for path, content in files.items():
        full = os.path.join(top, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as f:
            f.write(content if isinstance(content, bytes) else content.encode())


def _tricky_tree(top):
    """Names with spaces, '%', UTF-8 and a raw byte, modes, an empty file,
    nested and empty directories, symlinks staying inside."""
    _files(top, {
        "main.py": "print('hi')\n",
        "run me.sh": "#!/bin/sh\necho hi\n",
        "100%.txt": "percent\n",
        "caf\u00e9/na\u00efve.txt": "utf-8 names\n",
        "empty": b"",
        "a/b/c/d.txt": "deep\n",
        "B.txt": "upper sorts first\n",
        "a.b": "dot\n",
        "a-b": "dash\n",
    })
    with open(os.path.join(os.fsencode(top), b"raw\xffbyte"), "wb") as f:
        f.write(b"latin-1 name\n")
    os.chmod(os.path.join(top, "run me.sh"), 0o755)
    os.chmod(os.path.join(top, "main.py"), 0o600)
    os.makedirs(os.path.join(top, "emptydir"))
    os.symlink("main.py", os.path.join(top, "link.py"))
    os.symlink("a/b", os.path.join(top, "linkdir"))


class PackTest(ClusterCase):
    """Python's manifest against the C side's on the same trees."""

    AGENTS = ()
    SECURE = False

    def test_manifest_equals_qanat_put(self):
        top = os.path.join(self.c.dir, "tree")
        _tricky_tree(top)
        c_ref = self.c.qanat("put", top).stdout.strip()
        tree = _code.pack(top)
        self.assertEqual(tree.ref, c_ref)
        self.assertTrue(tree.manifest.startswith(b"qanat-tree 1\n"))
        self.assertIn(b" 100%25.txt\n", tree.manifest)
        self.assertIn(b" run%20me.sh\n", tree.manifest)
        self.assertIn(b" raw%FFbyte\n", tree.manifest)
        self.assertIn(b"\n755 ", tree.manifest)
        self.assertIn(b" linkdir/c/d.txt\n", tree.manifest)
        # and what the client puts is that reference, stored
        self.assertEqual(self.user.put_tree(top), c_ref)
        self.assertEqual(self.user.has_blob(tree.hash), len(tree.manifest))

    def test_qanatignore_and_git_as_qanat_run(self):
        top = os.path.join(self.c.dir, "proj")
        _files(top, {
            ".qanatignore": IGNORE,
            "wf.yaml": "name: packed\ntasks:\n  t:\n    run: ls\n",
            ".git/config": "[core]\n", "sub/.git": "gitdir: x\n",
            "a.tmp": "x", "keep.tmp": "k", "sub/b.tmp": "x",
            "data/x.csv": "1", "sub/data/y.csv": "2", "data.csv": "kept: a file, not data/",
            "build/out.o": "o", "sub/build/kept.o": "kept: /build is anchored",
            "notes/private.md": "p", "notes/a/b/private.md": "p", "notes/public.md": "kept",
            "a1.log": "x", "c1.log": "kept", "ab1.log": "kept",
            "#literal": "x", "trailing ": "x",
            "x/cache/y/z.bin": "x", "cache.txt": "kept",
            "deep/q/x.txt": "x", "deep/q/r/x.txt": "kept",
            "main.py": "print(1)\n",
        })
        out = self.c.qanat_json("run", os.path.join(top, "wf.yaml"))
        run = self.c.qanat_json("status", out["run_id"])
        tree = _code.pack(top)
        self.assertEqual(run.get("code"), tree.hash, "the C side's code hash")
        kept = sorted(e.path.decode() for e in tree.entries)
        self.assertEqual(kept, sorted([
            ".qanatignore", "wf.yaml", "keep.tmp", "data.csv", "sub/build/kept.o",
            "notes/public.md", "c1.log", "ab1.log", "cache.txt", "deep/q/r/x.txt",
            "main.py"]))

    def test_size_guard_names_biggest_files(self):
        top = os.path.join(self.c.dir, "big")
        _files(top, {"small.py": "x", "models/huge.bin": b"", "data/medium.bin": b""})
        with open(os.path.join(top, "models/huge.bin"), "wb") as f:
            f.truncate(90 * 1024 * 1024)           # sparse: nothing is written
        with open(os.path.join(top, "data/medium.bin"), "wb") as f:
            f.truncate(20 * 1024 * 1024)
        with self.assertRaises(qanat.QanatError) as caught:
            self.user.put_tree(top)
        message = str(caught.exception)
        self.assertIn("over the limit of 100.0 MiB", message)
        self.assertIn("models/huge.bin", message)
        self.assertLess(message.index("models/huge.bin"), message.index("data/medium.bin"))
        # Left out by .qanatignore, it no longer counts; a smaller limit applies
        _files(top, {".qanatignore": "models/\n"})
        self.assertTrue(_code.pack(top).ref.startswith("dir:"))
        with self.assertRaises(qanat.QanatError):
            _code.pack(top, max_bytes=1024 * 1024)

    def test_extra_files_are_added(self):
        top = os.path.join(self.c.dir, "extra")
        _files(top, {"flow.py": "x = 1\n"})
        tree = _code.pack(top, {".qanat/lib/qanat/__init__.py": b"# runtime\n"})
        paths = [e.path for e in tree.entries]
        self.assertEqual(paths, [b".qanat/lib/qanat/__init__.py", b"flow.py"])
        for bad in ("../x", "/abs", "a//b", "./a", ""):
            with self.assertRaises(qanat.QanatError):
                _code.pack(top, {bad: b"x"})
        ref = self.user.put_tree(top, {".qanat/lib/qanat/__init__.py": b"# runtime\n"})
        self.assertEqual(ref, tree.ref)


class UploadTest(ClusterCase):
    """Only blobs the coordinator lacks travel, counted by its stats."""

    AGENTS = ()

    def test_republishing_unchanged_code_uploads_nothing(self):
        top = os.path.join(self.c.dir, "code")
        _files(top, {"a.py": "a" * 5000, "b/c.py": "c" * 3000, "d.bin": os.urandom(3 * 1024 * 1024)})
        wf = "name: pub\ntasks:\n  t:\n    run: ls\n"
        first = self.user.publish(wf, "pub.yaml", code_dir=top)
        self.assertEqual((first["name"], first["version"], first["created"]), ("pub", 1, True))
        before = self.user.stats()
        again = self.user.publish(wf, "pub.yaml", code_dir=top)
        after = self.user.stats()
        self.assertEqual(again["code"], first["code"])
        self.assertEqual((again["version"], again["created"]), (1, False))
        self.assertEqual(after["blobs_stored"], before["blobs_stored"])
        self.assertEqual(after["blob_bytes_in"], before["blob_bytes_in"], "bytes sent again")
        # One file changed: that file and the new manifest go, nothing else
        _files(top, {"a.py": "A" * 4000})
        tree = _code.pack(top)
        ref = self.user.put_tree(top)
        final = self.user.stats()
        self.assertEqual(ref, tree.ref)
        self.assertEqual(final["blobs_stored"], after["blobs_stored"] + 2)
        self.assertEqual(final["blob_bytes_in"], after["blob_bytes_in"] + 4000 + len(tree.manifest))
        # and a run takes that code
        run = self.user.start("pub", code=ref)
        self.assertEqual(run.info.get("code"), tree.hash)


if __name__ == "__main__":
    clientlib.main()
