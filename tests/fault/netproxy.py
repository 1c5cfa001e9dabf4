"""A TCP forwarder that a fault test can cut: it sits between agents and
the coordinator's agent endpoint, and can stop forwarding (pause), throw
away every connection with whatever bytes are in flight (drop), and
forward again (resume), or flip one byte of what an agent sends once a
given number of bytes has passed (corrupt_once), as a bad link or a bad
NIC would.

Why: a stopped coordinator (SIGSTOP) still has a kernel that accepts TCP
data for it, and delivers that data once the process continues.  To make
events really fail to arrive, as on a broken network, the bytes must be
discarded somewhere; pause + drop does that.
"""
import selectors
import socket
import threading
import time


class Proxy:
    def __init__(self, target_port, host="127.0.0.1"):
        self.target = (host, target_port)
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((host, 0))
        self.listener.listen(16)
        self.listener.setblocking(False)
        self.port = self.listener.getsockname()[1]
        self.pairs = {}                 # socket -> its peer socket
        self.paused = False
        self.drop_requested = False
        self.stopping = False
        self.corrupt_after = None       # bytes from clients before the flip
        self.corrupted_at = None        # stream offset of the flipped byte
        self.client_bytes = 0
        self.clients = set()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    @property
    def endpoint(self):
        return "tcp://127.0.0.1:%d" % self.port

    def pause(self):
        """Stop reading from either side: nothing more crosses."""
        with self.lock:
            self.paused = True

    def drop(self):
        """Close every open connection; bytes not yet forwarded are lost."""
        with self.lock:
            self.drop_requested = True
        deadline = time.time() + 5
        while time.time() < deadline:
            with self.lock:
                if not self.drop_requested:
                    return
            time.sleep(0.01)

    def corrupt_once(self, after_bytes):
        """Flip one byte of the client-to-server stream once after_bytes
        have passed (plaintext peers only: CURVE would refuse the frame)."""
        with self.lock:
            self.corrupt_after = self.client_bytes + after_bytes
            self.corrupted_at = None

    def resume(self):
        with self.lock:
            self.paused = False

    def close(self):
        with self.lock:
            self.stopping = True
        self.thread.join(5)

    def _maybe_corrupt(self, data):
        with self.lock:
            start = self.client_bytes
            self.client_bytes += len(data)
            if self.corrupt_after is None or self.corrupted_at is not None \
                    or self.client_bytes <= self.corrupt_after:
                return data
            at = max(self.corrupt_after - start, 0)
            self.corrupted_at = start + at
        flipped = bytearray(data)
        flipped[at] ^= 0x5a
        return bytes(flipped)

    def _close_all(self, sel):
        for sock in list(self.pairs):
            try:
                sel.unregister(sock)
            except (KeyError, ValueError):
                pass
            sock.close()
        self.pairs.clear()
        self.clients.clear()

    def _loop(self):
        sel = selectors.DefaultSelector()
        sel.register(self.listener, selectors.EVENT_READ)
        while True:
            with self.lock:
                stopping, paused, drop = self.stopping, self.paused, self.drop_requested
                self.drop_requested = False
            if stopping:
                break
            if drop:
                self._close_all(sel)
            if paused:
                time.sleep(0.01)
                continue
            for key, _ in sel.select(0.05):
                sock = key.fileobj
                if sock is self.listener:
                    try:
                        client, _ = self.listener.accept()
                    except OSError:
                        continue
                    upstream = socket.socket()
                    try:
                        upstream.connect(self.target)
                    except OSError:
                        client.close()
                        upstream.close()
                        continue
                    for s in (client, upstream):
                        s.setblocking(False)
                        sel.register(s, selectors.EVENT_READ)
                    self.pairs[client] = upstream
                    self.pairs[upstream] = client
                    self.clients.add(client)
                    continue
                if sock not in self.pairs:
                    continue
                peer = self.pairs[sock]
                try:
                    data = sock.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if data and sock in self.clients:
                    data = self._maybe_corrupt(data)
                if data:
                    try:
                        peer.setblocking(True)
                        peer.sendall(data)
                        peer.setblocking(False)
                        continue
                    except OSError:
                        pass
                for s in (sock, peer):
                    try:
                        sel.unregister(s)
                    except (KeyError, ValueError):
                        pass
                    s.close()
                    self.pairs.pop(s, None)
                    self.clients.discard(s)
        self._close_all(sel)
        sel.unregister(self.listener)
        self.listener.close()
