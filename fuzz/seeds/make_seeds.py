#!/usr/bin/env python3
"""Writes the seed inputs under fuzz/seeds/<target>/ (run from anywhere;
`make fuzz` runs it when a seeds directory is missing). Hand-built and
deterministic; x509 also takes up to 24 CA certificates from /etc/ssl/certs
when the machine has them."""
import base64, glob, os, struct

HERE = os.path.dirname(os.path.abspath(__file__))


def put(target, name, data):
    d = os.path.join(HERE, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


# ---- x509
def der(tag, content):
    n = len(content)
    if n < 0x80:
        head = bytes([tag, n])
    elif n < 0x100:
        head = bytes([tag, 0x81, n])
    else:
        head = bytes([tag, 0x82, n >> 8, n & 0xFF])
    return head + content


def name(*atvs):
    out = b""
    for oid, tag, value in atvs:
        out += der(0x31, der(0x30, der(0x06, oid) + der(tag, value)))
    return der(0x30, out)


def cert(nb, na, nb_tag=0x17, na_tag=0x17, subject=None):
    cn = bytes([0x55, 0x04, 0x03])
    o = bytes([0x55, 0x04, 0x0A])
    tbs = (der(0xA0, der(0x02, b"\x02")) + der(0x02, b"\x01")
           + der(0x30, der(0x06, bytes([0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x02])))
           + name((cn, 0x0C, b"Issuer CA"), (o, 0x13, b"Example"))
           + der(0x30, der(nb_tag, nb) + der(na_tag, na))
           + (subject or name((cn, 0x0C, b"example.com"))))
    return der(0x30, der(0x30, tbs) + der(0x30, der(0x06, b"\x2a\x03")) + der(0x03, b"\x00\x01"))


put("x509", "skeleton", cert(b"700101000000Z", b"491231235959Z"))
put("x509", "generalized", cert(b"20000229000000Z", b"99991231235959Z", 0x18, 0x18))
put("x509", "multibyte_not_before", cert("1€00000000Z".encode(), b"491231235959Z"))
put("x509", "bmp_and_oid", cert(b"700101000000Z", b"491231235959Z", subject=name(
    (bytes([0x55, 0x04, 0x03]), 0x1E, "ünï".encode("utf-16-be")),
    (bytes([0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x01]), 0x16, b"a@b.c"),
    (bytes([0x2B, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37]), 0x0C, b"\x1b[31m"))))
for path in sorted(glob.glob("/etc/ssl/certs/*.pem"))[:24]:
    text = open(path).read()
    if "-----BEGIN CERTIFICATE-----" not in text:
        continue
    body = text.split("-----BEGIN CERTIFICATE-----")[1].split("-----END CERTIFICATE-----")[0]
    put("x509", "ca_" + os.path.basename(path)[:-4], base64.b64decode("".join(body.split())))

# ---- targets
put("targets", "demo", "# comment\n5, https://www.google.com/\n10, https://example.com/\n\n30, http://neverssl.com/\n")
put("targets", "options", "1, https://u:p@a.test:8443/x?y#z, method=POST, header=X-A: b, expect=200-299|301, "
    "timeout=2.5, name=api, match=^ok$, ip=both, bind=eth0, resolve=127.0.0.1|[::1]\n")
put("targets", "quoted", '\ufeff0.5, "http://a.test/a,b", "header=X: \\"q\\"", name="x, y"\n')
put("targets", "bad", "0, ftp://x\nabc, http://[::1\n5, http://h:99999/\n5\n5, http://a.test/, bogus\n"
    "5, http://a.test/, method=G3T, ip=5, bind=\x1b, resolve=, name=\n5, http://bücher.example/ü\n")
put("targets", "nul", "5, http://a.test/\n\x00\n")

# ---- url
for i, u in enumerate([
    "http://a.test/", "https://user:Secret@a.test:8443/p?q=1#f", "http://tok3n@h/",
    "http://[::1]:8080/x", "http://[::1", "HTTPS://Bücher.Example/ü?ä", "http://h:0/",
    "http://h:65536/", "http://u:p@ss@h/", "http://user:Sec?ret@host/", "file:///etc/passwd",
    "http://xn--nxasmq6b.test/", "http:///", "http://a..b/", "http://\u00e9" * 3 + "/",
]):
    put("url", f"u{i:02}", u)

# ---- registry
for i, r in enumerate(['{"id": 7}', '{"id": 4294967296}', '{"error_code": 42201, "message": "bad"}',
                       "<html>", '{"id": -1}', '{"id": 1.5}', "[" * 200, '{"id":"7"}', ""]):
    put("registry", f"r{i}", r)


# ---- kafka_response: selector byte, version byte, frame (no size prefix)
def i16(x): return struct.pack(">h", x)
def i32(x): return struct.pack(">i", x)
def i64(x): return struct.pack(">q", x)
def s(t): return i16(len(t)) + t.encode()
def arr(items): return i32(len(items)) + b"".join(items)
def uv(n):
    out = b""
    while True:
        b, n = n & 0x7F, n >> 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])
def carr(items): return uv(len(items) + 1) + b"".join(items)


CORR = i32(1)
ranges = [(0, 3, 12), (3, 1, 12), (22, 0, 4), (17, 0, 1), (36, 0, 2), (19, 2, 7), (18, 0, 3)]
put("kafka_response", "api_versions_v0", b"\x00\x00" + CORR + i16(0) + arr([i16(k) + i16(a) + i16(b) for k, a, b in ranges]))
put("kafka_response", "api_versions_v3", b"\x00\x03" + CORR + i16(0)
    + carr([i16(k) + i16(a) + i16(b) + b"\x00" for k, a, b in ranges]) + i32(0) + b"\x00")
put("kafka_response", "api_versions_unsupported", b"\x00\x03" + CORR + i16(35) + arr([]))
part = lambda idx, leader: i16(0) + i32(idx) + i32(leader) + arr([i32(leader)]) + arr([i32(leader)])
put("kafka_response", "metadata_v1", b"\x01\x00" + CORR
    + arr([i32(1) + s("127.0.0.1") + i32(9092) + i16(-1)]) + i32(1)
    + arr([i16(0) + s("latency") + b"\x00" + arr([part(1, 1), part(0, 1)])]))
put("kafka_response", "metadata_v1_unknown_topic", b"\x01\x00" + CORR + arr([]) + i32(-1)
    + arr([i16(3) + s("latency") + b"\x00" + arr([])]))
put("kafka_response", "produce_v3", b"\x02\x00" + CORR
    + arr([s("latency") + arr([i32(0) + i16(0) + i64(42) + i64(-1), i32(1) + i16(6) + i64(-1) + i64(-1)])]) + i32(0))
put("kafka_response", "init_producer_id_v0", b"\x03\x00" + CORR + i32(0) + i16(0) + i64(1000) + i16(0))
put("kafka_response", "init_producer_id_v0_error", b"\x03\x00" + CORR + i32(0) + i16(15) + i64(-1) + i16(-1))
put("kafka_response", "create_topics_v2", b"\x04\x00" + CORR + i32(0)
    + arr([s("latency") + i16(36) + s("already there"), s("x") + i16(37) + i16(-1)]))
put("kafka_response", "sasl_handshake_v1", b"\x05\x01" + CORR + i16(33) + arr([s("PLAIN"), s("SCRAM-SHA-512")]))
scram_first = b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096"
put("kafka_response", "sasl_authenticate_v0_scram", b"\x06\x00" + CORR + i16(0) + i16(-1) + i32(len(scram_first)) + scram_first)
put("kafka_response", "sasl_authenticate_v1_error", b"\x06\x01" + CORR + i16(58) + s("bad password") + i32(0) + i64(0))
put("kafka_response", "frame_len", b"\x07" + i32(1024))


# ---- spool: frames magic | len | crc32c(len ‖ payload) | payload, little-endian
def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def frame(payload):
    n = struct.pack("<I", len(payload))
    return struct.pack("<I", 0x4C535031) + n + struct.pack("<I", crc32c(n + payload)) + payload


recs = [frame(b'{"url":"http://a.test/","code":200}'), frame(b""), frame(b"x" * 300)]
put("spool", "good", b"".join(recs))
put("spool", "corrupt_middle", recs[0] + b"\xde\xad" + recs[1][:-1] + b"?" + recs[2])
put("spool", "torn_tail", recs[0] + recs[2][:40])
put("spool", "empty", b"")
ack = struct.pack("<I", 0x4C41434B) + struct.pack("<Q", 1) + struct.pack("<Q", 52)
put("spool", "ack", ack + struct.pack("<I", crc32c(ack)))


# ---- fuzz/regressions/<target>/known-*: hostile inputs known before the
# fuzzers ran (issue 19's faults, the vendored kafka-protocol fix); crash
# inputs the fuzzers find are kept beside them as crash-<sha1>.
def known(target, name, data):
    d = os.path.join(HERE, "..", "regressions", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "known-" + name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


known("x509", "multibyte-not-before", cert("1€00000000Z".encode(), b"491231235959Z"))  # issue 19 fault 1
known("x509", "multibyte-not-after-generalized", cert(b"700101000000Z", "2000€0000000Z".encode(), 0x17, 0x18))
known("targets", "framing-header", "5, http://a.test/, header=Content-Length: 10\n")  # fault 6
known("targets", "password-in-errors", "5, http://user:Sec?ret@host/\n5, http://u:p#ss@h/\n5, http://u:a/b@h/\n")  # fault 7
known("url", "password-with-question-mark", "http://user:Sec?ret@host/")  # fault 7
known("url", "malformed-location", "http://[::1")  # fault 3
# Array counts of 2^31-1 in 8 bytes: aborted the process before the vendored fix.
known("kafka_response", "api-versions-array-count-2g", b"\x00\x00" + CORR + i16(0) + i32(0x7FFFFFFF))
known("kafka_response", "metadata-array-count-2g", b"\x01\x00" + CORR + i32(0x7FFFFFFF))
known("kafka_response", "compact-array-count-huge", b"\x00\x03" + CORR + i16(0) + b"\xff\xff\xff\xff\x07")
known("registry", "deep-nesting", "[" * 100_000)
known("spool", "length-4g", struct.pack("<III", 0x4C535031, 0xFFFFFFFF, 0) + b"x" * 20)
known("spool", "magic-at-the-end", recs[0] + struct.pack("<I", 0x4C535031))
