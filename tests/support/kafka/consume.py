#!/usr/bin/env python3
"""Independent consumer for tests: reads a topic with confluent-kafka (librdkafka),
decodes every value as an Avro Report, prints one JSON line per record:

  {"partition":p,"offset":o,"key":"...","timestamp_ms":t,"value":{...}}

Framing of each value:
  default     Avro single-object encoding: C3 01, 8-byte little-endian CRC-64-AVRO
              fingerprint of the schema's Parsing Canonical Form, Avro binary.
              The fingerprint must equal the one of --schema (else: error).
  --registry  Confluent wire format: 00, 4-byte big-endian schema id, Avro binary,
              decoded with confluent_kafka.schema_registry's AvroDeserializer. The
              registered schema must have the same canonical form as --schema
              (unless --any-registered-schema).
Every value must be consumed to its last byte.

Partitions are assign()ed from the beginning (no consumer group join).

Exit status: 0 when --expect records were read; 1 timeout before that (or topic
missing); 2 usage; 3 a record could not be decoded; 4 more than --expect records
arrived within --settle seconds after the last expected one.

Security: --env DIR/env --listener NAME (PLAINTEXT, SASL_PLAINTEXT, SSL, MTLS,
SASL_SSL; from broker.sh) fills --bootstrap and the security options; or give
--security-protocol, --ca, --cert, --key, --sasl-mechanism, --sasl-username,
--sasl-password yourself.

Example:
  consume.py --env /tmp/k/env --listener SASL_SSL --sasl-mechanism SCRAM-SHA-512 \\
     --topic reports --expect 10 --timeout 30 --schema src/report.avsc
"""

import argparse
import io
import json
import struct
import sys
import time

import fastavro
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

# ---------------------------------------------------------------- CRC-64-AVRO
_EMPTY = 0xC15D213AA4D7A795
_TABLE = []
for _i in range(256):
    _fp = _i
    for _ in range(8):
        _fp = (_fp >> 1) ^ (_EMPTY & -(_fp & 1))
    _TABLE.append(_fp)


def crc64_avro(data: bytes) -> int:
    fp = _EMPTY
    for b in data:
        fp = (fp >> 8) ^ _TABLE[(fp ^ b) & 0xFF]
    return fp


def canonical_form(schema_json) -> str:
    return fastavro.schema.to_parsing_canonical_form(fastavro.parse_schema(schema_json))


def schema_fingerprint(schema_json) -> int:
    return crc64_avro(canonical_form(schema_json).encode())


class DecodeError(Exception):
    pass


# ---------------------------------------------------------------- env file
def read_env(path):
    env = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                k, v = line.split("=", 1)
                env[k] = v
    return env


def client_config(a):
    """librdkafka config from the arguments (and --env/--listener)."""
    conf = {}
    if a.env:
        env = read_env(a.env)
        lst = a.listener.upper()
        key = "KAFKA_" + lst
        if key not in env:
            sys.exit(f"consume.py: {a.env} has no {key} (mode {env.get('KAFKA_MODE')})")
        a.bootstrap = a.bootstrap or env[key]
        proto = {"MTLS": "SSL"}.get(lst, lst)
        a.security_protocol = a.security_protocol or proto
        if "SSL" in proto:
            a.ca = a.ca or env.get("KAFKA_CA")
        if lst == "MTLS":
            a.cert = a.cert or env.get("KAFKA_CLIENT_CERT")
            a.key = a.key or env.get("KAFKA_CLIENT_KEY")
        if "SASL" in proto:
            a.sasl_mechanism = a.sasl_mechanism or "SCRAM-SHA-256"
            a.sasl_username = a.sasl_username or env.get("KAFKA_SASL_USER")
            a.sasl_password = a.sasl_password or env.get("KAFKA_SASL_PASSWORD")
    if not a.bootstrap:
        sys.exit("consume.py: --bootstrap (or --env and --listener) is required")
    conf["bootstrap.servers"] = a.bootstrap
    if a.security_protocol:
        conf["security.protocol"] = a.security_protocol
    if a.ca:
        conf["ssl.ca.location"] = a.ca
    if a.cert:
        conf["ssl.certificate.location"] = a.cert
    if a.key:
        conf["ssl.key.location"] = a.key
    if a.sasl_mechanism:
        conf["sasl.mechanism"] = a.sasl_mechanism
    if a.sasl_username is not None:
        conf["sasl.username"] = a.sasl_username
    if a.sasl_password is not None:
        conf["sasl.password"] = a.sasl_password
    return conf


# ---------------------------------------------------------------- decoders
class SingleObjectDecoder:
    def __init__(self, schema_json):
        self.schema = fastavro.parse_schema(schema_json)
        self.fingerprint = schema_fingerprint(schema_json)

    def __call__(self, value, topic):
        if value is None:
            raise DecodeError("null value")
        if len(value) < 10 or value[:2] != b"\xc3\x01":
            raise DecodeError(f"not Avro single-object encoding (starts {value[:10].hex()})")
        fp = struct.unpack("<Q", value[2:10])[0]
        if fp != self.fingerprint:
            raise DecodeError(f"schema fingerprint {fp:016x} in record != {self.fingerprint:016x} of the .avsc")
        return decode_exact(value[10:], self.schema)


def decode_exact(body, schema, reader=None):
    bio = io.BytesIO(body)
    try:
        rec = fastavro.schemaless_reader(bio, schema, reader)
    except Exception as e:  # fastavro raises assorted errors on bad data
        raise DecodeError(f"Avro decode failed: {type(e).__name__}: {e}") from e
    if bio.tell() != len(body):
        raise DecodeError(f"{len(body) - bio.tell()} trailing bytes after the Avro record")
    return rec


class RegistryDecoder:
    def __init__(self, url, auth, schema_json, any_schema):
        from confluent_kafka.schema_registry import SchemaRegistryClient
        from confluent_kafka.schema_registry.avro import AvroDeserializer
        from confluent_kafka.serialization import MessageField, SerializationContext

        conf = {"url": url}
        if auth:
            conf["basic.auth.user.info"] = auth
        self.client = SchemaRegistryClient(conf)
        self.deser = AvroDeserializer(self.client)
        self.ctx = lambda topic: SerializationContext(topic, MessageField.VALUE)
        self.expected = schema_fingerprint(schema_json) if schema_json is not None and not any_schema else None
        self.schemas = {}

    def writer_schema(self, sid):
        if sid not in self.schemas:
            s = self.client.get_schema(sid)
            sj = json.loads(s.schema_str)
            if self.expected is not None and schema_fingerprint(sj) != self.expected:
                raise DecodeError(f"registry schema id {sid} differs from the .avsc (canonical forms differ)")
            self.schemas[sid] = fastavro.parse_schema(sj)
        return self.schemas[sid]

    def __call__(self, value, topic):
        if value is None:
            raise DecodeError("null value")
        if len(value) < 5 or value[0] != 0:
            raise DecodeError(f"not Confluent wire format (starts {value[:5].hex()})")
        sid = struct.unpack(">I", value[1:5])[0]
        try:
            schema = self.writer_schema(sid)
        except DecodeError:
            raise
        except Exception as e:
            raise DecodeError(f"schema id {sid}: registry lookup failed: {e}") from e
        exact = decode_exact(value[5:], schema)
        try:
            rec = self.deser(value, self.ctx(topic))
        except Exception as e:
            raise DecodeError(f"AvroDeserializer failed: {type(e).__name__}: {e}") from e
        if rec != exact:
            raise DecodeError("AvroDeserializer and fastavro disagree")
        return rec


# ---------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bootstrap")
    ap.add_argument("--topic", required=True)
    ap.add_argument("--expect", type=int, required=True, help="records to read")
    ap.add_argument("--timeout", type=float, default=30, help="seconds for the whole run")
    ap.add_argument("--settle", type=float, default=0,
                    help="after --expect records, keep reading this long and fail (4) on any extra")
    ap.add_argument("--schema", help=".avsc (required without --registry)")
    ap.add_argument("--registry", help="schema registry URL: Confluent wire format")
    ap.add_argument("--registry-auth", help="USER:PASSWORD for the registry (basic auth)")
    ap.add_argument("--any-registered-schema", action="store_true",
                    help="with --registry and --schema: accept a registered schema that differs from --schema")
    ap.add_argument("--raw", action="store_true", help="do not decode; print value as hex")
    ap.add_argument("--to-end", action="store_true",
                    help="read every partition up to its high watermark at start, then exit 0 "
                         "(--expect is ignored; for counting duplicates and losses)")
    ap.add_argument("--env", help="broker.sh env file")
    ap.add_argument("--listener", default="PLAINTEXT", help="with --env: which listener")
    ap.add_argument("--security-protocol")
    ap.add_argument("--ca")
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--sasl-mechanism")
    ap.add_argument("--sasl-username")
    ap.add_argument("--sasl-password")
    ap.add_argument("--debug", help="librdkafka debug contexts, e.g. broker,security")
    a = ap.parse_args()

    schema_json = None
    if a.schema:
        with open(a.schema) as f:
            schema_json = json.load(f)
    if a.raw:
        decode = None
    elif a.registry:
        decode = RegistryDecoder(a.registry, a.registry_auth, schema_json, a.any_registered_schema)
    elif schema_json is not None:
        decode = SingleObjectDecoder(schema_json)
    else:
        ap.error("--schema or --registry (or --raw) is required")

    conf = client_config(a)
    errors = []
    conf.update({
        "group.id": "latency-logger-test-consume",  # required by librdkafka; never joined
        "enable.auto.commit": False,
        "enable.partition.eof": False,
        "auto.offset.reset": "earliest",
        "error_cb": lambda e: errors.append(e),
    })
    if a.debug:
        conf["debug"] = a.debug
    deadline = time.monotonic() + a.timeout
    c = Consumer(conf)
    try:
        return run(a, c, decode, deadline, errors)
    finally:
        c.close()


def run(a, c, decode, deadline, errors):
    # wait for the topic to exist, then assign all its partitions from the start
    parts = None
    last = None
    while parts is None:
        left = deadline - time.monotonic()
        if left <= 0:
            print(f"consume.py: timeout: topic {a.topic} not available ({last}; client errors: "
                  f"{[str(e) for e in errors[-3:]]})", file=sys.stderr)
            return 1
        try:
            md = c.list_topics(a.topic, timeout=min(left, 5))
            t = md.topics.get(a.topic)
            if t is not None and t.error is None and t.partitions:
                parts = sorted(t.partitions)
            else:
                last = t.error if t is not None else "no metadata"
                time.sleep(0.2)
        except Exception as e:  # KafkaException on transport/auth trouble
            last = e
            time.sleep(0.2)
    c.assign([TopicPartition(a.topic, p, OFFSET_BEGINNING) for p in parts])

    # --to-end: partition -> high watermark still to reach
    todo = None
    if a.to_end:
        todo = {}
        for p in parts:
            low, high = c.get_watermark_offsets(TopicPartition(a.topic, p),
                                                timeout=max(1.0, deadline - time.monotonic()))
            if high > low:
                todo[p] = high
        if not todo:
            return 0

    got = 0
    extra_deadline = None
    while True:
        now = time.monotonic()
        if extra_deadline is not None:
            if now >= extra_deadline:
                return 0
        elif now >= deadline:
            print(f"consume.py: timeout: {got} of {a.expect} records from {a.topic} "
                  f"(partitions {parts}); client errors: {[str(e) for e in errors[-3:]]}", file=sys.stderr)
            return 1
        end = extra_deadline if extra_deadline is not None else deadline
        msg = c.poll(max(0.0, min(0.5, end - now)))
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() == KafkaError._PARTITION_EOF:
                continue
            print(f"consume.py: consumer error: {msg.error()}", file=sys.stderr)
            if not msg.error().retriable():
                return 1
            continue
        if extra_deadline is not None:
            print(f"consume.py: more than {a.expect} records: extra at partition {msg.partition()} "
                  f"offset {msg.offset()}", file=sys.stderr)
            return 4
        value = msg.value()
        if decode is None:
            out = value.hex() if value is not None else None
        else:
            try:
                out = decode(value, msg.topic())
            except DecodeError as e:
                print(f"consume.py: undecodable record at partition {msg.partition()} offset {msg.offset()}: "
                      f"{e}; value[:32]={value[:32].hex() if value else None}", file=sys.stderr)
                return 3
        key = msg.key()
        if key is not None:
            try:
                key = key.decode("utf-8")
            except UnicodeDecodeError:
                print(f"consume.py: key is not UTF-8 at partition {msg.partition()} offset {msg.offset()}",
                      file=sys.stderr)
                return 3
        ts_type, ts = msg.timestamp()
        print(json.dumps({"partition": msg.partition(), "offset": msg.offset(), "key": key,
                          "timestamp_ms": ts if ts_type != 0 else None, "value": out},
                         separators=(",", ":")), flush=True)
        got += 1
        if todo is not None:
            if msg.offset() + 1 >= todo.get(msg.partition(), 0):
                todo.pop(msg.partition(), None)
            if not todo:
                return 0
            continue
        if got == a.expect:
            if a.settle <= 0:
                return 0
            extra_deadline = time.monotonic() + a.settle


if __name__ == "__main__":
    sys.exit(main())
