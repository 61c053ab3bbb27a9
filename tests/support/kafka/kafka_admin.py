#!/usr/bin/env python3
"""Kafka admin for the test harness, on confluent-kafka's AdminClient (librdkafka).

Used by broker.sh / tansu.sh for readiness checks and topic creation over a
PLAINTEXT listener. They run it with plain `python3`: without confluent-kafka
importable it re-executes itself with the harness venv's Python
($LL_CACHE_DIR/venv, default REPO/.cache/venv; .ci/test-deps.sh builds it).

    kafka_admin.py ping   HOST:PORT [--timeout S]
        Metadata until the broker lists itself (registered, unfenced) and
        names a controller; prints {"cluster_id", "controller", "brokers"}.
    kafka_admin.py create HOST:PORT TOPIC PARTITIONS [--timeout S] [--config K=V ...]
        CreateTopics (replication factor 1), then waits until Metadata shows
        every partition with a leader. An existing topic with the same
        partition count is OK; another count is an error.
    kafka_admin.py describe HOST:PORT TOPIC
        prints {"topic":..,"error":..,"partitions":{p: leader}} as JSON
        (error: the broker's error code, 0 for none).

Exit status: 0 ok, 1 failure/timeout (message on stderr), 2 usage.
"""

import argparse
import json
import logging
import os
import sys
import time

try:
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic
except ImportError:
    HERE = os.path.dirname(os.path.abspath(__file__))
    CACHE = os.environ.get("LL_CACHE_DIR") or os.path.join(HERE, "..", "..", "..", ".cache")
    VENV_PY = os.path.join(CACHE, "venv", "bin", "python")
    if os.path.exists(VENV_PY) and os.environ.get("KAFKA_ADMIN_REEXEC") != "1":
        os.environ["KAFKA_ADMIN_REEXEC"] = "1"  # never loop if the venv lacks it too
        os.execv(VENV_PY, [VENV_PY, os.path.abspath(__file__)] + sys.argv[1:])
    sys.exit(f"kafka_admin: confluent-kafka is not importable and {VENV_PY} is missing: "
             "run .ci/test-deps.sh python")

ERR_NONE = 0
ERR_TOPIC_ALREADY_EXISTS = KafkaError.TOPIC_ALREADY_EXISTS  # 36


class AdminError(Exception):
    pass


def _quiet_logger():
    # librdkafka logs every refused connection while a broker starts; the
    # retry loop below is the one that reports.
    log = logging.getLogger("kafka_admin.librdkafka")
    log.addHandler(logging.NullHandler())
    log.propagate = False
    return log


def admin(bootstrap, timeout):
    ms = str(max(1000, int(timeout * 1000)))
    return AdminClient({
        "bootstrap.servers": bootstrap,
        "client.id": "latency-logger-harness",
        "socket.timeout.ms": ms,
        "socket.connection.setup.timeout.ms": ms,
        # one address per broker, as given (no IPv6 detour for 127.0.0.1)
        "broker.address.family": "v4" if bootstrap.split(":")[0].count(".") == 3 else "any",
        "reconnect.backoff.ms": "50",
        "reconnect.backoff.max.ms": "200",
        # describe must not create the topic it asks about (librdkafka's
        # default for this handle type would let the broker auto-create it)
        "allow.auto.create.topics": "false",
        "logger": _quiet_logger(),
    })


def retry_until(deadline, fn, what):
    last = None
    while True:
        try:
            return fn()
        except (KafkaException, AdminError) as e:  # refused, timeout, not ready
            last = e
        if time.monotonic() >= deadline:
            raise AdminError(f"{what}: timed out; last error: {last}")
        time.sleep(0.2)


def _left(deadline, cap):
    return max(0.2, min(cap, deadline - time.monotonic()))


def ping(bootstrap, timeout):
    deadline = time.monotonic() + timeout
    client = admin(bootstrap, min(5.0, timeout))

    def once():
        md = client.list_topics(timeout=_left(deadline, 5.0))
        if not md.brokers:
            raise AdminError("metadata lists no broker yet")
        if md.controller_id < 0:
            raise AdminError("no controller yet")
        return md

    md = retry_until(deadline, once, f"ping {bootstrap}")
    return {"cluster_id": md.cluster_id, "controller": md.controller_id,
            "brokers": [f"{b.host}:{b.port}" for b in sorted(md.brokers.values(), key=lambda b: b.id)]}


def describe(bootstrap, topic, timeout=5.0, client=None):
    client = client or admin(bootstrap, timeout)
    md = client.list_topics(topic=topic, timeout=timeout)
    t = md.topics.get(topic)
    if t is None:
        raise AdminError(f"metadata has no entry for topic {topic}")
    err = t.error.code() if t.error is not None else ERR_NONE
    return {"topic": topic, "error": err, "partitions": {p.id: p.leader for p in t.partitions.values()}}


def create(bootstrap, topic, partitions, configs, timeout):
    deadline = time.monotonic() + timeout
    client = admin(bootstrap, min(10.0, timeout))

    def do_create():
        fut = client.create_topics(
            [NewTopic(topic, num_partitions=partitions, replication_factor=1, config=dict(configs))],
            operation_timeout=_left(deadline, 10.0), request_timeout=_left(deadline, 10.0))[topic]
        try:
            fut.result()
        except KafkaException as e:
            err = e.args[0]
            if err.code() == ERR_TOPIC_ALREADY_EXISTS:
                return
            if err.retriable() or err.code() in (KafkaError._TIMED_OUT, KafkaError._TRANSPORT,
                                                 KafkaError.NOT_CONTROLLER, KafkaError.REQUEST_TIMED_OUT):
                raise
            raise SystemExit(f"kafka_admin: create {topic}: {err.name()} ({err.code()}): {err.str()}")

    retry_until(deadline, do_create, f"create {topic}")

    def ready():
        d = describe(bootstrap, topic, _left(deadline, 5.0), client)
        if d["error"] != ERR_NONE:
            raise AdminError(f"topic {topic}: metadata error {d['error']}")
        parts = d["partitions"]
        if len(parts) != partitions:
            # an existing topic with another partition count is a test bug: say so
            if parts and all(leader >= 0 for leader in parts.values()):
                raise SystemExit(
                    f"kafka_admin: topic {topic} exists with {len(parts)} partitions, not {partitions}")
            raise AdminError(f"topic {topic}: {len(parts)}/{partitions} partitions")
        if any(leader < 0 for leader in parts.values()):
            raise AdminError(f"topic {topic}: partition without leader")
        return d

    return retry_until(deadline, ready, f"wait for topic {topic}")


def positive(text):
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"{text}: must be at least 1")
    return n


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("ping")
    p.add_argument("bootstrap")
    p.add_argument("--timeout", type=float, default=60)
    p = sub.add_parser("create")
    p.add_argument("bootstrap")
    p.add_argument("topic")
    p.add_argument("partitions", type=positive)
    p.add_argument("--timeout", type=float, default=30)
    p.add_argument("--config", action="append", default=[], metavar="K=V")
    p = sub.add_parser("describe")
    p.add_argument("bootstrap")
    p.add_argument("topic")
    a = ap.parse_args()
    try:
        if a.cmd == "ping":
            print(json.dumps(ping(a.bootstrap, a.timeout)))
        elif a.cmd == "create":
            configs = []
            for kv in a.config:
                k, sep, v = kv.partition("=")
                if not sep or not k:
                    ap.error(f"--config {kv!r}: expected KEY=VALUE")
                configs.append((k, v))
            print(json.dumps(create(a.bootstrap, a.topic, a.partitions, configs, a.timeout)))
        elif a.cmd == "describe":
            print(json.dumps(describe(a.bootstrap, a.topic)))
    except (KafkaException, AdminError) as e:
        print(f"kafka_admin: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
