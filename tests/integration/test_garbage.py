"""Garbage, truncated and oversized frames sent to both coordinator sockets
by real, authenticated ZeroMQ peers (CURVE, with keys the coordinator
admits): the coordinator drops and counts them, cuts a peer off after a
threshold, refuses an unknown protocol version clearly, and keeps serving."""
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


def read_cert(path):
    """public key, secret key and coordinator key of a czmq key file."""
    values = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            for name in ("public-key", "secret-key", "coordinator-key"):
                if line.startswith(name + " ="):
                    values[name] = line.split("=", 1)[1].strip().strip('"')
    return values["public-key"], values["secret-key"], values["coordinator-key"]


def token_keys(token):
    """public key, secret key and coordinator key of a join token."""
    body = token[len("qnj1-"):]
    coordinator, secret = body[:40], body[40:80]
    return zmq.curve_public(secret.encode()).decode(), secret, coordinator


def peer(endpoint, keys):
    """A DEALER with CURVE client keys (public, secret, server), or plaintext."""
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 1000)
    if keys:
        public, secret, server = keys
        sock.curve_publickey = public.encode()
        sock.curve_secretkey = secret.encode()
        sock.curve_serverkey = server.encode()
    sock.connect(endpoint)
    return sock


def send_garbage(endpoint, rng, keys):
    sock = peer(endpoint, keys)
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
    big = peer(endpoint, keys)
    big.send(b"\x00" * (17 * 1024 * 1024))
    time.sleep(0.5)
    big.close()
    return sock, sent


def test_garbage_on_both_sockets_is_dropped_and_counted(c):
    c.start_coordinator()
    rng = random.Random(1234)
    # Authenticated peers: a join token's key on the agents' socket, the
    # admin's key on the clients' socket.
    agent_keys = token_keys(c.qanat_json("token", "create", "--uses", "3")["token"])
    client_keys = read_cert(c.key)
    agent_sock, agent_sent = send_garbage(c.agent_endpoint, rng, agent_keys)
    client_sock, client_sent = send_garbage(c.client_endpoint, rng, client_keys)
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
    fresh = peer(c.client_endpoint, client_keys)
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


def test_unknown_key_gets_nothing_but_a_refusal(c):
    c.start_coordinator()
    # A well-formed CURVE key that was never admitted: the handshake fails,
    # nothing is read from it, nothing is counted as a message.
    public, secret = zmq.curve_keypair()
    _, _, server = read_cert(c.key)
    sock = peer(c.client_endpoint, (public.decode(), secret.decode(), server))
    sock.send(envelope(1, 30, b"\x08\x01"))
    check(not sock.poll(1500), "an unknown key got an answer")
    sock.close()
    stats = c.qanat_json("stats")
    check(stats["malformed_client_frames"] == 0, "stats %s" % stats)


def test_unregistered_peer_is_told_to_register(c):
    # Protocol behaviour, not security: plaintext is enough here.
    c.start_coordinator(secure=False)
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
