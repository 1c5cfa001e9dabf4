"""What the Python package's tests share: the package and the integration
harness on sys.path, a unittest case with a real cluster (qanatd with
CURVE and API tokens, HTTP on a free port, agents as asked), and a runner
that ends with the suite's "N passed, N failed" line."""
import os
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("QANAT_SRCDIR") or os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(SRC, "python"))
sys.path.insert(0, os.path.join(SRC, "tests", "integration"))

import harness  # noqa: E402
import qanat  # noqa: E402


class ClusterCase(unittest.TestCase):
    """Each test gets a fresh cluster: self.c (harness.Cluster), self.admin
    and self.user (qanat.Client with an admin and a user API token).
    AGENTS names the agents to start."""

    AGENTS = ("a1",)
    SECURE = True

    def setUp(self) -> None:
        self.c = harness.Cluster(self.id().rsplit(".", 1)[-1])
        self.ok = False
        try:
            self.c.start_coordinator(http_port=True, secure=self.SECURE)
            for name in self.AGENTS:
                self.c.start_agent(name, slots=4)
            if self.SECURE:
                self.admin = qanat.Client(self.c.http_url, self.c.create_apitoken("root", "admin"))
                self.user = qanat.Client(self.c.http_url, self.c.create_apitoken("alice", "user"))
            else:
                self.admin = self.user = qanat.Client(self.c.http_url)
        except BaseException:
            self.c.stop()
            self.c.dump_logs()
            raise

    def tearDown(self) -> None:
        self.c.stop()
        # unittest's record of this test (success turns false on a
        # failure or an error in it)
        outcome = getattr(self, "_outcome", None)
        failed = outcome is not None and not getattr(outcome, "success", True)
        if failed:
            self.c.dump_logs()
        else:
            self.c.cleanup()

    def write(self, name: str, text: str) -> str:
        """A file in the cluster's directory; returns its path."""
        return self.c.write(name, text)


def wait_for(predicate, what: str, timeout: float = 15.0):
    """predicate() until it is true; fails the test after timeout."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("%s: not within %g s" % (what, timeout))


def main() -> None:
    """Runs the calling module's tests; prints "N passed, N failed"."""
    suite = unittest.defaultTestLoader.loadTestsFromModule(sys.modules["__main__"])
    result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
    failed = len(result.failures) + len(result.errors)
    print("%d passed, %d failed" % (result.testsRun - failed, failed))
    sys.exit(1 if failed else 0)
