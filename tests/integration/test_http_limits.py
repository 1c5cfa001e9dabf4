"""The HTTP server under a slowloris and a connection flood on loopback:
clients from other loopback addresses (127.0.0.2, 127.0.0.3) hold or
trickle connections while a legitimate client from 127.0.0.1 must still
be answered within 2 s; trickling connections are closed by the server's
idle timeout (15 s) once they go quiet, the per-IP cap (32) holds; a
token holds at most 32 event streams, and a stream whose client left
gives its slot back within 3 s.  Everything is bounded: the whole
file takes under 60 s."""
import select
import socket
import time

import harness
import qhttp
from harness import check, TestFailure

SERVED_WITHIN_S = 2.0
IDLE_TIMEOUT_S = 15
PER_IP = 32


def setup(c):
    c.start_coordinator(http_port=True)
    return qhttp.Client(c.http_port, c.create_apitoken("root", "admin"), timeout=SERVED_WITHIN_S + 3)


def connect_from(source, port):
    s = socket.socket()
    s.setblocking(True)
    s.settimeout(2)
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    s.setblocking(False)
    return s


def closed(s):
    """True when the server closed (or reset) the connection."""
    try:
        readable, _, _ = select.select([s], [], [], 0)
        if not readable:
            return False
        return s.recv(4096) == b"" or True    # an early error response also means it gave up on us
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        return True


def served(client):
    started = time.time()
    try:
        r = client.request("GET", "/api/v1/whoami")
    except OSError as e:
        raise TestFailure("legitimate request failed after %.1f s: %s" % (time.time() - started, e))
    took = time.time() - started
    check(r.status == 200, "legitimate request: %r" % r)
    check(took < SERVED_WITHIN_S, "legitimate request took %.2f s" % took)
    return took


def test_slowloris_is_cut_by_the_idle_timeout(c):
    client = setup(c)
    head = ("GET /api/v1/whoami HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + "a" * 200).encode()
    conns = []
    for _ in range(PER_IP + 8):
        try:
            conns.append(connect_from("127.0.0.2", c.http_port))
        except OSError:
            pass                          # refused at connect: fine
    worst, started = 0.0, time.time()
    # 6 s of trickling one header byte per connection every 0.5 s
    for step in range(12):
        for s in conns:
            try:
                s.send(head[step:step + 1])
            except OSError:
                pass
        worst = max(worst, served(client))
        time.sleep(0.5)
    held = [s for s in conns if not closed(s)]
    check(len(held) <= PER_IP, "%d slow connections from one address held (cap %d)" % (len(held), PER_IP))
    # Quiet from now on: the server must drop them within its idle timeout
    quiet = time.time()
    while held and time.time() - quiet < IDLE_TIMEOUT_S + 5:
        held = [s for s in held if not closed(s)]
        worst = max(worst, served(client))
        time.sleep(0.5)
    check(not held, "%d quiet connections still open %.0f s after their last byte" % (len(held), time.time() - quiet))
    for s in conns:
        s.close()
    print("  slowloris: worst legitimate latency %.3f s, quiet connections closed after %.1f s" % (
        worst, time.time() - quiet))
    check(time.time() - started < 45, "slowloris test overran")


def test_connection_flood_leaves_room_for_others(c):
    client = setup(c)
    conns, refused = [], 0
    started = time.time()
    for _ in range(300):
        try:
            conns.append(connect_from("127.0.0.3", c.http_port))
        except OSError:
            refused += 1
        if len(conns) % 50 == 0:
            served(client)
    time.sleep(0.5)
    held = [s for s in conns if not closed(s)]
    check(len(held) <= PER_IP, "%d connections from one address held (cap %d)" % (len(held), PER_IP))
    worst = max(served(client) for _ in range(10))
    # A second flooding address cannot push 127.0.0.1 out either
    more = []
    for _ in range(100):
        try:
            more.append(connect_from("127.0.0.4", c.http_port))
        except OSError:
            pass
    worst = max(worst, max(served(client) for _ in range(5)))
    for s in conns + more:
        s.close()
    served(client)
    print("  flood: %d held of %d (refused at connect %d), worst legitimate latency %.3f s" % (
        len(held), len(conns), refused, worst))
    check(time.time() - started < 20, "flood test overran")


STREAMS_PER_TOKEN = 32
SLOT_BACK_S = 3


def test_event_streams_per_token(c):
    client = setup(c)
    other = client.with_token(c.create_apitoken("other", "user"))
    started = time.time()
    streams = []
    try:
        # from two addresses: one address holds at most 32 connections
        for i in range(STREAMS_PER_TOKEN):
            stream = client.from_address("127.0.0.%d" % (5 + i % 2)).sse("/api/v1/runs/events")
            check(stream.next_event(timeout=5)[0] == "runs", "stream %d: no first event" % i)
            streams.append(stream)
        r = client.from_address("127.0.0.7").request("GET", "/api/v1/runs/events")
        check(r.status in (429, 503), "stream %d of one token: %r" % (STREAMS_PER_TOKEN + 1, r))
        mine = other.from_address("127.0.0.7").sse("/api/v1/runs/events")          # another token is not held back
        check(mine.next_event(timeout=5)[0] == "runs", "another token's stream")
        mine.close()
        served(client)                                   # plain requests still work
        streams.pop().close()
        closed_at = time.time()
        # The server watches each stream's socket: a client gone gives
        # its slot back at once, not at a failed keepalive write (10-20 s)
        deadline = time.time() + SLOT_BACK_S
        while True:                                      # the closed stream's slot comes back
            try:
                again = client.sse("/api/v1/runs/events")
                again.close()
                break
            except TestFailure:
                check(time.time() < deadline, "a closed stream's slot did not come back within %d s" % (
                    SLOT_BACK_S))
                time.sleep(0.1)
    finally:
        for stream in streams:
            stream.close()
    check(time.time() - started < 35, "stream cap test overran")
    print("  a closed stream's slot came back after %.1f s" % (time.time() - closed_at))


if __name__ == "__main__":
    harness.main(globals())
