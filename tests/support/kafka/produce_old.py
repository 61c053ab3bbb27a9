#!/usr/bin/env python3
"""Produces Reports written with an earlier schema, as an older latency-logger
(or another producer) would: Confluent wire format, the schema registered in
the registry under <topic>-value. Used to check that consumers decode old and
new records side by side.

  produce_old.py --env DIR/env --listener PLAINTEXT --topic T --registry URL \\
                 --schema OLD.avsc --count N

Each record has every field of OLD.avsc, with plausible values; the key is the URL.
Exit status 0 when all N were acknowledged.
"""

import argparse
import json
import sys

from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from consume import read_env


def sample(field, i):
    name, t = field["name"], field["type"]
    if name == "url":
        return f"http://old-producer.test/{i}"
    if isinstance(t, list):
        return None
    return {"string": "", "int": 200, "long": 0, "double": 0.5 + i}.get(t, None)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--env", required=True)
    ap.add_argument("--listener", default="PLAINTEXT")
    ap.add_argument("--topic", required=True)
    ap.add_argument("--registry", required=True)
    ap.add_argument("--schema", required=True)
    ap.add_argument("--count", type=int, default=3)
    a = ap.parse_args()
    env = read_env(a.env)
    bootstrap = env["KAFKA_" + a.listener.upper()]
    schema = open(a.schema).read()
    fields = json.loads(schema)["fields"]
    serialize = AvroSerializer(SchemaRegistryClient({"url": a.registry}), schema)
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    failures = []
    ctx = SerializationContext(a.topic, MessageField.VALUE)
    for i in range(a.count):
        value = {f["name"]: sample(f, i) for f in fields}
        producer.produce(
            a.topic,
            key=value["url"].encode(),
            value=serialize(value, ctx),
            on_delivery=lambda err, msg: err and failures.append(str(err)),
        )
    left = producer.flush(30)
    if failures or left:
        sys.exit(f"produce_old.py: {len(failures)} failed, {left} not delivered: {failures[:3]}")


if __name__ == "__main__":
    main()
