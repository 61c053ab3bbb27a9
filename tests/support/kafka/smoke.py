#!/usr/bin/env python3
"""Smoke test of a broker.sh broker with confluent-kafka, and a reference Avro producer.

  smoke.py listeners --env DIR/env [--phase both|verify] [--count N]
      For every listener in the env file: create topic smoke-<case> (3 partitions)
      through that listener, produce N records (acks=all), read them back with
      assign(); with --phase verify only read back (after a restart: data kept?).
      Cases: PLAINTEXT; SASL_PLAINTEXT with SCRAM-SHA-256, SCRAM-SHA-512, PLAIN;
      SSL (CA only); MTLS (client cert); SASL_SSL with SCRAM-SHA-512.
      Negative checks: wrong SASL password, MTLS without client cert, SSL
      without the CA must all fail.
  smoke.py avro --env DIR/env --topic T --count N --schema S [--registry URL]
      Produce N sample Report records over PLAINTEXT, Avro single-object encoded,
      or in Confluent wire format through the registry (AvroSerializer).

Exit 0 on success; non-zero with a message otherwise.
"""

import argparse
import json
import struct
import sys
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from consume import read_env, schema_fingerprint  # noqa: E402


def cases(env):
    out = []
    if "KAFKA_PLAINTEXT" in env:
        out.append(("plaintext", {"bootstrap.servers": env["KAFKA_PLAINTEXT"]}))
    sasl = {"sasl.username": env.get("KAFKA_SASL_USER"), "sasl.password": env.get("KAFKA_SASL_PASSWORD")}
    if "KAFKA_SASL_PLAINTEXT" in env:
        for mech in ("SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"):
            out.append((f"sasl-plaintext-{mech.lower()}",
                        {"bootstrap.servers": env["KAFKA_SASL_PLAINTEXT"], "security.protocol": "SASL_PLAINTEXT",
                         "sasl.mechanism": mech, **sasl}))
    if "KAFKA_SSL" in env:
        out.append(("ssl", {"bootstrap.servers": env["KAFKA_SSL"], "security.protocol": "SSL",
                            "ssl.ca.location": env["KAFKA_CA"]}))
    if "KAFKA_MTLS" in env:
        out.append(("mtls", {"bootstrap.servers": env["KAFKA_MTLS"], "security.protocol": "SSL",
                             "ssl.ca.location": env["KAFKA_CA"],
                             "ssl.certificate.location": env["KAFKA_CLIENT_CERT"],
                             "ssl.key.location": env["KAFKA_CLIENT_KEY"]}))
    if "KAFKA_SASL_SSL" in env:
        out.append(("sasl-ssl-scram-sha-512",
                    {"bootstrap.servers": env["KAFKA_SASL_SSL"], "security.protocol": "SASL_SSL",
                     "ssl.ca.location": env["KAFKA_CA"], "sasl.mechanism": "SCRAM-SHA-512", **sasl}))
    return out


def negative_cases(env):
    out = []
    if "KAFKA_SASL_PLAINTEXT" in env:
        out.append(("wrong SCRAM password", {"bootstrap.servers": env["KAFKA_SASL_PLAINTEXT"],
                                             "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-256",
                                             "sasl.username": env["KAFKA_SASL_USER"], "sasl.password": "wrong"}))
    if "KAFKA_MTLS" in env:
        out.append(("MTLS without client cert", {"bootstrap.servers": env["KAFKA_MTLS"], "security.protocol": "SSL",
                                                 "ssl.ca.location": env["KAFKA_CA"]}))
    if "KAFKA_SSL" in env:
        # librdkafka falls back to the system CA store: the test CA is not in it
        out.append(("SSL without the test CA", {"bootstrap.servers": env["KAFKA_SSL"], "security.protocol": "SSL"}))
    return out


def create_topic(conf, topic, partitions):
    admin = AdminClient(conf)
    fut = admin.create_topics([NewTopic(topic, partitions, 1)], operation_timeout=10, request_timeout=15)[topic]
    try:
        fut.result(timeout=20)
    except KafkaException as e:
        if e.args[0].name() != "TOPIC_ALREADY_EXISTS":
            raise
    # wait for leaders as seen by this listener
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        t = admin.list_topics(topic, timeout=5).topics.get(topic)
        if t and t.error is None and len(t.partitions) == partitions and all(
                p.leader >= 0 for p in t.partitions.values()):
            return
        time.sleep(0.1)
    raise RuntimeError(f"topic {topic}: no leaders after 20 s")


def produce(conf, topic, records):
    errors = []
    p = Producer({**conf, "acks": "all", "linger.ms": 5, "message.timeout.ms": 20000,
                  "error_cb": lambda e: errors.append(e)})
    failed = []

    def cb(err, msg):
        if err is not None:
            failed.append(err)

    for k, v in records:
        p.produce(topic, key=k, value=v, on_delivery=cb)
    left = p.flush(25)
    if left or failed:
        raise RuntimeError(f"produce to {topic}: {left} undelivered, errors {failed[:3]}, client errors {errors[:3]}")


def consume(conf, topic, n, timeout=20):
    # log_level 0: on close librdkafka may log a harmless "GroupCoordinator: ... transport failure"
    c = Consumer({**conf, "group.id": "smoke", "enable.auto.commit": False, "auto.offset.reset": "earliest",
                  "log_level": 0})
    try:
        md = c.list_topics(topic, timeout=10).topics[topic]
        if md.error is not None:
            raise RuntimeError(f"{topic}: {md.error}")
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in md.partitions])
        got = []
        deadline = time.monotonic() + timeout
        while len(got) < n and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                raise RuntimeError(f"consume {topic}: {m.error()}")
            got.append((m.key(), m.value()))
        return got
    finally:
        c.close()


def expect_failure(name, conf):
    errors = []
    admin = AdminClient({**conf, "error_cb": lambda e: errors.append(e), "log_level": 0})
    try:
        admin.list_topics(timeout=3)
    except KafkaException:
        admin.poll(0.5)  # serves error_cb
        first = next((e for e in errors if e.code() != KafkaError._ALL_BROKERS_DOWN), errors[0] if errors else None)
        return f"{name}: refused as expected ({first})"
    raise RuntimeError(f"{name}: expected failure, but metadata request succeeded")


def cmd_listeners(a):
    env = read_env(a.env)
    t0 = time.monotonic()
    for name, conf in cases(env):
        topic = f"smoke-{name}"
        records = [(f"k{i}".encode(), f"{name} record {i}".encode()) for i in range(a.count)]
        t = time.monotonic()
        if a.phase == "both":
            create_topic(conf, topic, 3)
            produce(conf, topic, records)
        got = consume(conf, topic, a.count)
        if sorted(got) != sorted(records):
            raise RuntimeError(f"{name}: read {len(got)} records, expected {a.count}: {got[:3]}")
        print(f"ok {name:28s} {env_addr(conf)} {a.count} records "
              f"{'produced+read' if a.phase == 'both' else 'read back'} in {time.monotonic() - t:.2f} s", flush=True)
    for name, conf in negative_cases(env):
        print("ok " + expect_failure(name, conf), flush=True)
    print(f"smoke: all listeners ok in {time.monotonic() - t0:.1f} s")


def env_addr(conf):
    return f"{conf.get('security.protocol', 'PLAINTEXT')}/{conf.get('sasl.mechanism', '-')}@{conf['bootstrap.servers']}"


def sample_report(i):
    return {"url": f"http://127.0.0.1/target/{i % 5}", "code": 200, "timestamp": 1.7e9 + i,
            "namelookup": 0.001, "connect": 0.002, "appconnect": 0.0, "pretransfer": 0.0021,
            "starttransfer": 0.01, "total": 0.011, "size_download": 1234 + i, "remote_ip": "127.0.0.1",
            "http_version": "HTTP/1.1", "error_kind": None, "error": None, "scheduled": 1.7e9 + i,
            "lateness": 0.0005}


def cmd_avro(a):
    import io

    import fastavro
    env = read_env(a.env)
    with open(a.schema) as f:
        sj = json.load(f)
    parsed = fastavro.parse_schema(sj)
    recs = [sample_report(i) for i in range(a.count)]
    if a.registry:
        from confluent_kafka.schema_registry import SchemaRegistryClient
        from confluent_kafka.schema_registry.avro import AvroSerializer
        from confluent_kafka.serialization import MessageField, SerializationContext
        conf = {"url": a.registry}
        if a.registry_auth:
            conf["basic.auth.user.info"] = a.registry_auth
        ser = AvroSerializer(SchemaRegistryClient(conf), json.dumps(sj))
        ctx = SerializationContext(a.topic, MessageField.VALUE)
        values = [ser(r, ctx) for r in recs]
    else:
        head = b"\xc3\x01" + struct.pack("<Q", schema_fingerprint(sj))
        values = []
        for r in recs:
            b = io.BytesIO()
            fastavro.schemaless_writer(b, parsed, r)
            values.append(head + b.getvalue())
    produce({"bootstrap.servers": env["KAFKA_PLAINTEXT"]}, a.topic,
            [(r["url"].encode(), v) for r, v in zip(recs, values)])
    print(f"produced {a.count} Avro records to {a.topic} ({'registry' if a.registry else 'single-object'})")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("listeners")
    p.add_argument("--env", required=True)
    p.add_argument("--phase", choices=["both", "verify"], default="both")
    p.add_argument("--count", type=int, default=20)
    p = sub.add_parser("avro")
    p.add_argument("--env", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--count", type=int, default=10)
    p.add_argument("--schema", required=True)
    p.add_argument("--registry")
    p.add_argument("--registry-auth")
    a = ap.parse_args()
    try:
        (cmd_listeners if a.cmd == "listeners" else cmd_avro)(a)
    except (RuntimeError, KafkaException, KeyError) as e:
        print(f"smoke: FAILED: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
