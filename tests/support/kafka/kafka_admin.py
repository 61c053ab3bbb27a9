#!/usr/bin/env python3
"""Tiny Kafka admin client over the raw wire protocol, Python stdlib only.

Used by broker.sh / tansu.sh (which must work before any venv exists) for
readiness checks and topic creation over a PLAINTEXT listener.

    kafka_admin.py ping   HOST:PORT [--timeout S]
        ApiVersions + Metadata v4; succeeds once the broker lists itself
        (i.e. it is registered and unfenced) and knows a controller.
    kafka_admin.py create HOST:PORT TOPIC PARTITIONS [--timeout S] [--config K=V ...]
        CreateTopics v2..v4, then waits until Metadata shows every partition
        with a leader. An existing topic with the same partition count is OK.
    kafka_admin.py describe HOST:PORT TOPIC
        prints {"topic":..,"error":..,"partitions":{p: leader}} as JSON.
    kafka_admin.py versions HOST:PORT
        prints the broker's ApiVersions ranges as JSON.

Exit status: 0 ok, 1 failure/timeout (message on stderr), 2 usage.
"""

import argparse
import json
import socket
import struct
import sys
import time

API_METADATA = 3
API_API_VERSIONS = 18
API_CREATE_TOPICS = 19

ERR_NONE = 0
ERR_TOPIC_ALREADY_EXISTS = 36


class KafkaError(Exception):
    pass


def _str(s):
    if s is None:
        return struct.pack(">h", -1)
    b = s.encode()
    return struct.pack(">h", len(b)) + b


class Reader:
    def __init__(self, buf):
        self.buf = buf
        self.pos = 0

    def take(self, n):
        if self.pos + n > len(self.buf):
            raise KafkaError("short response")
        b = self.buf[self.pos:self.pos + n]
        self.pos += n
        return b

    def i8(self):
        return struct.unpack(">b", self.take(1))[0]

    def i16(self):
        return struct.unpack(">h", self.take(2))[0]

    def i32(self):
        return struct.unpack(">i", self.take(4))[0]

    def string(self):
        n = self.i16()
        if n < 0:
            return None
        return self.take(n).decode()

    def array(self, item):
        n = self.i32()
        return [item() for _ in range(max(n, 0))]


class Conn:
    def __init__(self, hostport, timeout):
        host, _, port = hostport.rpartition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.sock.settimeout(timeout)
        self.corr = 0

    def close(self):
        self.sock.close()

    def _recv_exact(self, n):
        out = b""
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise KafkaError("connection closed by broker")
            out += chunk
        return out

    def call(self, api_key, version, body):
        self.corr += 1
        # request header v1: key, version, correlation id, client id
        hdr = struct.pack(">hhi", api_key, version, self.corr) + _str("latency-logger-harness")
        msg = hdr + body
        self.sock.sendall(struct.pack(">i", len(msg)) + msg)
        size = struct.unpack(">i", self._recv_exact(4))[0]
        r = Reader(self._recv_exact(size))
        corr = r.i32()  # response header v0 for all non-flexible versions used here
        if corr != self.corr:
            raise KafkaError(f"correlation id mismatch: {corr} != {self.corr}")
        return r

    def api_versions(self):
        r = self.call(API_API_VERSIONS, 0, b"")
        err = r.i16()
        if err != ERR_NONE:
            raise KafkaError(f"ApiVersions error {err}")
        return {k: (lo, hi) for k, lo, hi in r.array(lambda: (r.i16(), r.i16(), r.i16()))}

    def metadata(self, topics):
        # Metadata v4: topics (nullable array), allow_auto_topic_creation
        if topics is None:
            body = struct.pack(">i", -1)
        else:
            body = struct.pack(">i", len(topics)) + b"".join(_str(t) for t in topics)
        body += struct.pack(">b", 0)
        r = self.call(API_METADATA, 4, body)
        r.i32()  # throttle
        brokers = r.array(lambda: (r.i32(), r.string(), r.i32(), r.string()))
        cluster_id = r.string()
        controller = r.i32()

        def partition():
            err, idx, leader = r.i16(), r.i32(), r.i32()
            r.array(r.i32)
            r.array(r.i32)
            return idx, err, leader

        def topic():
            err, name = r.i16(), r.string()
            r.i8()  # is_internal
            parts = r.array(partition)
            return name, err, parts

        tps = r.array(topic)
        return {"brokers": brokers, "cluster_id": cluster_id, "controller": controller, "topics": tps}

    def create_topic(self, name, partitions, configs, version, timeout_ms):
        cfg = struct.pack(">i", len(configs)) + b"".join(_str(k) + _str(v) for k, v in configs)
        topic = _str(name) + struct.pack(">ih", partitions, 1) + struct.pack(">i", 0) + cfg
        body = struct.pack(">i", 1) + topic + struct.pack(">i", timeout_ms) + struct.pack(">b", 0)
        r = self.call(API_CREATE_TOPICS, version, body)
        r.i32()  # throttle (v2+)
        res = r.array(lambda: (r.string(), r.i16(), r.string()))
        return res[0]


def pick(versions, key, lo, hi, what):
    if key not in versions:
        raise KafkaError(f"broker does not support {what}")
    blo, bhi = versions[key]
    v = min(hi, bhi)
    if v < max(lo, blo):
        raise KafkaError(f"no common {what} version: ours {lo}-{hi}, broker {blo}-{bhi}")
    return v


def retry_until(deadline, fn, what):
    last = None
    while True:
        try:
            return fn()
        except (OSError, KafkaError) as e:  # refused, reset, timeout, not ready
            last = e
        if time.monotonic() >= deadline:
            raise KafkaError(f"{what}: timed out; last error: {last}")
        time.sleep(0.2)


def ping(hostport, timeout):
    deadline = time.monotonic() + timeout

    def once():
        c = Conn(hostport, min(5.0, timeout))
        try:
            pick(c.api_versions(), API_METADATA, 4, 4, "Metadata v4")
            md = c.metadata(None)
            if not md["brokers"]:
                raise KafkaError("metadata lists no broker yet")
            if md["controller"] < 0:
                raise KafkaError("no controller yet")
            return md
        finally:
            c.close()

    return retry_until(deadline, once, f"ping {hostport}")


def describe(hostport, topic, timeout=5.0):
    c = Conn(hostport, timeout)
    try:
        md = c.metadata([topic])
    finally:
        c.close()
    name, err, parts = md["topics"][0]
    return {"topic": name, "error": err, "partitions": {p: leader for p, _e, leader in parts}}


def create(hostport, topic, partitions, configs, timeout):
    deadline = time.monotonic() + timeout

    def do_create():
        c = Conn(hostport, min(10.0, timeout))
        try:
            v = pick(c.api_versions(), API_CREATE_TOPICS, 2, 4, "CreateTopics v2-4")
            _name, err, msg = c.create_topic(topic, partitions, configs, v, 10000)
        finally:
            c.close()
        if err not in (ERR_NONE, ERR_TOPIC_ALREADY_EXISTS):
            raise SystemExit(f"kafka_admin: create {topic}: error {err}: {msg}")
        return err

    retry_until(deadline, do_create, f"create {topic}")

    def ready():
        d = describe(hostport, topic, min(5.0, timeout))
        if d["error"] != ERR_NONE:
            raise KafkaError(f"topic {topic}: metadata error {d['error']}")
        if len(d["partitions"]) != partitions:
            # an existing topic with another partition count is a test bug: say so
            if len(d["partitions"]) > 0 and all(l >= 0 for l in d["partitions"].values()):
                raise SystemExit(
                    f"kafka_admin: topic {topic} exists with {len(d['partitions'])} partitions, not {partitions}")
            raise KafkaError(f"topic {topic}: {len(d['partitions'])}/{partitions} partitions")
        if any(leader < 0 for leader in d["partitions"].values()):
            raise KafkaError(f"topic {topic}: partition without leader")
        return d

    return retry_until(deadline, ready, f"wait for topic {topic}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("ping")
    p.add_argument("bootstrap")
    p.add_argument("--timeout", type=float, default=60)
    p = sub.add_parser("create")
    p.add_argument("bootstrap")
    p.add_argument("topic")
    p.add_argument("partitions", type=int)
    p.add_argument("--timeout", type=float, default=30)
    p.add_argument("--config", action="append", default=[], metavar="K=V")
    p = sub.add_parser("describe")
    p.add_argument("bootstrap")
    p.add_argument("topic")
    p = sub.add_parser("versions")
    p.add_argument("bootstrap")
    a = ap.parse_args()
    try:
        if a.cmd == "ping":
            md = ping(a.bootstrap, a.timeout)
            print(json.dumps({"cluster_id": md["cluster_id"], "controller": md["controller"],
                              "brokers": [f"{h}:{p}" for _n, h, p, _r in md["brokers"]]}))
        elif a.cmd == "create":
            configs = [tuple(kv.split("=", 1)) for kv in a.config]
            print(json.dumps(create(a.bootstrap, a.topic, a.partitions, configs, a.timeout)))
        elif a.cmd == "describe":
            print(json.dumps(describe(a.bootstrap, a.topic)))
        elif a.cmd == "versions":
            c = Conn(a.bootstrap, 5)
            try:
                print(json.dumps({str(k): v for k, v in sorted(c.api_versions().items())}))
            finally:
                c.close()
    except (KafkaError, OSError) as e:
        print(f"kafka_admin: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
