"""A TCP forwarder that a fault test can cut: it sits between agents and
the coordinator's agent endpoint, and can stop forwarding (pause), throw
away every connection with whatever bytes are in flight (drop), and
forward again (resume).

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

    def resume(self):
        with self.lock:
            self.paused = False

    def close(self):
        with self.lock:
            self.stopping = True
        self.thread.join(5)

    def _close_all(self, sel):
        for sock in list(self.pairs):
            try:
                sel.unregister(sock)
            except (KeyError, ValueError):
                pass
            sock.close()
        self.pairs.clear()

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
        self._close_all(sel)
        sel.unregister(self.listener)
        self.listener.close()
