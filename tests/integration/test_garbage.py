"""Garbage, truncated and oversized frames sent to both coordinator sockets
by a real ZeroMQ peer: the coordinator drops and counts them, refuses an
unknown protocol version clearly, and keeps serving."""
import os
import random
import time
import harness
from harness import check, task

import zmq


def envelope(version, body_field=11, body=b""):
    # Hand-encoded protobuf: field 1 (version, varint), then a body message.
    def varint(n):
        out = b""
        while True:
            byte = n & 0x7F
            n >>= 7
            if n:
                out += bytes([byte | 0x80])
            else:
                return out + bytes([byte])
    return b"\x08" + varint(version) + varint((body_field << 3) | 2) + varint(len(body)) + body


def send_garbage(endpoint, rng):
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 1000)
    sock.connect(endpoint)
    sent = 0
    for _ in range(200):
        sock.send(bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 300))))
        sent += 1
    # Truncated valid-looking envelopes, empty frames, multi-frame messages.
    valid = envelope(1, 11, b"\x08\x05")
    for cut in range(1, len(valid)):
        sock.send(valid[:cut])
        sent += 1
    sock.send(b"")
    sock.send_multipart([b"one", b"two", b"three"])
    sent += 2
    # An oversized frame (17 MiB): libzmq cuts the connection at the
    # transport (ZMQ_MAXMSGSIZE), before it is ever allocated.
    big = ctx.socket(zmq.DEALER)
    big.setsockopt(zmq.LINGER, 1000)
    big.connect(endpoint)
    big.send(b"\x00" * (17 * 1024 * 1024))
    time.sleep(0.5)
    big.close()
    return sock, sent


def test_garbage_on_both_sockets_is_dropped_and_counted(c):
    c.start_coordinator()
    rng = random.Random(1234)
    agent_sock, agent_sent = send_garbage(c.agent_endpoint, rng)
    client_sock, client_sent = send_garbage(c.client_endpoint, rng)
    # A peer that keeps sending garbage is cut off, and told so.
    def answers(sock, text, seconds=5):
        deadline = time.time() + seconds
        while time.time() < deadline:
            if sock.poll(200) and text in sock.recv():
                return True
        return False
    check(answers(client_sock, b"too many malformed messages: cut off"), "no cut-off notice")
    # An unknown protocol version gets a clear refusal (a fresh peer: the
    # one that sent garbage is not listened to any more).
    ctx = zmq.Context.instance()
    fresh = ctx.socket(zmq.DEALER)
    fresh.setsockopt(zmq.LINGER, 0)
    fresh.connect(c.client_endpoint)
    fresh.send(envelope(99, 30, b"\x08\x01"))
    check(answers(fresh, b"protocol version 99 is not supported"), "no refusal naming the bad version")
    fresh.close()

    def counted():
        stats = c.qanat_json("stats")
        return stats["malformed_agent_frames"] >= 150 and stats["malformed_client_frames"] >= 150 \
            and stats["bad_version"] >= 1
    c.wait_for(counted, "garbage to be counted")
    stats = c.qanat_json("stats")
    print("stats after garbage:", stats, "sent", agent_sent, client_sent)
    check(stats["malformed_agent_frames"] <= agent_sent, "more counted than sent: %s" % stats)
    agent_sock.close()
    client_sock.close()

    # Still serving: an agent registers and a run completes.
    c.start_agent("a1")
    wf = c.write("ok.yaml", "name: ok\ntasks:\n  t:\n    run: echo still alive\n")
    run = c.wait_run(c.start_run(wf))
    check(run["status"] == "succeeded", "run after garbage: %s" % run["status"])
    check(c.coordinator.poll() is None, "qanatd died")


def test_unregistered_peer_is_told_to_register(c):
    c.start_coordinator()
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(c.agent_endpoint)
    sock.send(envelope(1, 11, b"\x08\x01"))   # a heartbeat, never registered
    check(sock.poll(5000), "no answer")
    frame = sock.recv()
    check(b"register first" in frame, "answer was %r" % frame)
    sock.close()


if __name__ == "__main__":
    harness.main(globals())
