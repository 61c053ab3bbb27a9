#!/usr/bin/env python3
"""Minimal Confluent-Schema-Registry-compatible HTTP server for tests (stdlib only).

  registry.py [--port 0] [--auth USER:PASSWORD] [--port-file F] [--env-file F] [--log F]

Listens on 127.0.0.1 (port 0 = any free one), prints `REGISTRY_URL=http://127.0.0.1:P`
on stdout once listening, writes the port to --port-file and that line to --env-file
(atomically, after the socket is bound). Stops on SIGTERM or SIGINT.

API (subset, same JSON shapes and error codes as Confluent's):
  POST /subjects/{subject}/versions   {"schema": "...", "schemaType"?: "AVRO"} -> {"id": n}
                                      same schema (any subject) -> same id; a new
                                      schema under a subject -> next version
  POST /subjects/{subject}            lookup: {"subject","id","version","schema"} or 40403
  GET  /schemas/ids/{id}              {"schema": "..."}            (40403 if unknown)
  GET  /schemas/ids/{id}/versions     [{"subject","version"}]
  GET  /subjects                      ["subject", ...]
  GET  /subjects/{subject}/versions   [1, 2, ...]                   (40401 if unknown)
  GET  /subjects/{subject}/versions/{n|latest}
  GET  /config, GET /config/{subject} {"compatibilityLevel": "BACKWARD"} (no checks made)
  GET  /_stats                        test hook: {"requests": n, "registrations": n, "by_path": {...}}
Schemas must be valid JSON (and valid Avro when fastavro is importable), else 42201.
With --auth every request needs HTTP basic auth (else 401).
--log F appends one JSON line per request (method, path, status, body).
"""

import argparse
import base64
import json
import os
import re
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

try:
    import fastavro
except ImportError:  # plain python3 without the venv: JSON validation only
    fastavro = None

CT = "application/vnd.schemaregistry.v1+json"


class Store:
    def __init__(self):
        self.lock = threading.Lock()
        self.ids = {}          # normalized schema -> id
        self.schemas = {}      # id -> schema string (as first registered)
        self.subjects = {}     # subject -> [id, ...] (index = version - 1)
        self.requests = 0
        self.registrations = 0
        self.by_path = {}


def normalize(schema_str):
    return json.dumps(json.loads(schema_str), sort_keys=True, separators=(",", ":"))


class Handler(BaseHTTPRequestHandler):
    server_version = "latency-logger-test-registry/1"
    protocol_version = "HTTP/1.1"

    # ---- plumbing
    def log_message(self, fmt, *args):  # quiet by default; see --log / --verbose
        if self.server.verbose:
            sys.stderr.write("registry: " + (fmt % args) + "\n")

    def send_json(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", CT)
        self.send_header("Content-Length", str(len(body)))
        if status == 401:
            self.send_header("WWW-Authenticate", 'Basic realm="registry"')
        self.end_headers()
        self.wfile.write(body)
        self.status = status

    def error(self, status, code, message):
        self.send_json(status, {"error_code": code, "message": message})

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def authorized(self):
        if not self.server.auth:
            return True
        h = self.headers.get("Authorization", "")
        if not h.startswith("Basic "):
            return False
        try:
            return base64.b64decode(h[6:]).decode() == self.server.auth
        except Exception:
            return False

    def handle_any(self, method):
        st = self.server.store
        path = self.path.split("?", 1)[0].rstrip("/") or "/"
        body = self.read_body() if method in ("POST", "PUT") else b""
        self.status = None
        with st.lock:
            st.requests += 1
            st.by_path[f"{method} {path}"] = st.by_path.get(f"{method} {path}", 0) + 1
        try:
            if not self.authorized():
                self.error(401, 401, "Unauthorized")
            else:
                self.route(method, path, body)
        except Exception as e:  # never kill the server on a bad request
            self.error(500, 50001, f"internal error: {type(e).__name__}: {e}")
        if self.server.log:
            with st.lock, open(self.server.log, "a") as f:
                f.write(json.dumps({"method": method, "path": self.path, "status": self.status,
                                    "body": body.decode(errors="replace")}) + "\n")

    def do_GET(self):
        self.handle_any("GET")

    def do_POST(self):
        self.handle_any("POST")

    def do_PUT(self):
        self.handle_any("PUT")

    def do_DELETE(self):
        self.handle_any("DELETE")

    # ---- API
    def route(self, method, path, body):
        st = self.server.store
        m = re.fullmatch(r"/subjects/([^/]+)/versions", path)
        if m and method == "POST":
            return self.register(m.group(1), body)
        if m and method == "GET":
            with st.lock:
                ids = st.subjects.get(m.group(1))
            if ids is None:
                return self.error(404, 40401, f"Subject '{m.group(1)}' not found.")
            return self.send_json(200, list(range(1, len(ids) + 1)))
        m = re.fullmatch(r"/subjects/([^/]+)", path)
        if m and method == "POST":
            return self.lookup(m.group(1), body)
        m = re.fullmatch(r"/subjects/([^/]+)/versions/([^/]+)", path)
        if m and method == "GET":
            subject, ver = m.groups()
            with st.lock:
                ids = st.subjects.get(subject)
                if ids is None:
                    return self.error(404, 40401, f"Subject '{subject}' not found.")
                if ver in ("latest", "-1"):
                    v = len(ids)
                elif ver.isdigit() and 1 <= int(ver) <= len(ids):
                    v = int(ver)
                else:
                    return self.error(404, 40402, f"Version {ver} not found.")
                sid = ids[v - 1]
                return self.send_json(200, {"subject": subject, "id": sid, "version": v,
                                            "schema": st.schemas[sid]})
        m = re.fullmatch(r"/schemas/ids/(\d+)", path)
        if m and method == "GET":
            with st.lock:
                s = st.schemas.get(int(m.group(1)))
            if s is None:
                return self.error(404, 40403, f"Schema {m.group(1)} not found")
            return self.send_json(200, {"schema": s})
        m = re.fullmatch(r"/schemas/ids/(\d+)/versions", path)
        if m and method == "GET":
            sid = int(m.group(1))
            with st.lock:
                out = [{"subject": s, "version": i + 1}
                       for s, ids in sorted(st.subjects.items()) for i, x in enumerate(ids) if x == sid]
            return self.send_json(200, out)
        if path == "/subjects" and method == "GET":
            with st.lock:
                return self.send_json(200, sorted(st.subjects))
        if re.fullmatch(r"/config(/[^/]+)?", path) and method == "GET":
            return self.send_json(200, {"compatibilityLevel": "BACKWARD"})
        if path == "/_stats" and method == "GET":
            with st.lock:
                return self.send_json(200, {"requests": st.requests, "registrations": st.registrations,
                                            "by_path": dict(st.by_path)})
        if path == "/" and method == "GET":
            return self.send_json(200, {})
        return self.error(404, 404, f"HTTP 404 Not Found: {method} {path}")

    def parse_schema(self, body):
        try:
            req = json.loads(body or b"{}")
            schema_str = req["schema"]
            stype = req.get("schemaType", "AVRO")
            if stype != "AVRO":
                raise ValueError(f"schemaType {stype} not supported here")
            parsed = json.loads(schema_str)
            if fastavro is not None:
                fastavro.parse_schema(parsed)
            return schema_str, normalize(schema_str)
        except Exception as e:
            self.error(422, 42201, f"Invalid schema: {type(e).__name__}: {e}")
            return None, None

    def register(self, subject, body):
        schema_str, norm = self.parse_schema(body)
        if schema_str is None:
            return
        st = self.server.store
        with st.lock:
            sid = st.ids.get(norm)
            if sid is None:
                sid = len(st.schemas) + 1
                st.ids[norm] = sid
                st.schemas[sid] = schema_str
            versions = st.subjects.setdefault(subject, [])
            if sid not in versions:
                versions.append(sid)
            st.registrations += 1
        self.send_json(200, {"id": sid})

    def lookup(self, subject, body):
        schema_str, norm = self.parse_schema(body)
        if schema_str is None:
            return
        st = self.server.store
        with st.lock:
            ids = st.subjects.get(subject)
            if ids is None:
                return self.error(404, 40401, f"Subject '{subject}' not found.")
            sid = st.ids.get(norm)
            if sid is None or sid not in ids:
                return self.error(404, 40403, "Schema not found")
            return self.send_json(200, {"subject": subject, "id": sid, "version": ids.index(sid) + 1,
                                        "schema": st.schemas[sid]})


def write_atomic(path, text):
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--auth", help="USER:PASSWORD required as HTTP basic auth")
    ap.add_argument("--port-file")
    ap.add_argument("--env-file")
    ap.add_argument("--log", help="append one JSON line per request")
    ap.add_argument("--verbose", action="store_true")
    a = ap.parse_args()

    srv = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    srv.daemon_threads = True
    srv.store = Store()
    srv.auth = a.auth
    srv.log = a.log
    srv.verbose = a.verbose
    port = srv.server_address[1]
    url = f"http://127.0.0.1:{port}"

    def stop(_sig, _frm):
        threading.Thread(target=srv.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if a.port_file:
        write_atomic(a.port_file, f"{port}\n")
    if a.env_file:
        write_atomic(a.env_file, f"REGISTRY_URL={url}\n")
    print(f"REGISTRY_URL={url}", flush=True)
    try:
        srv.serve_forever(poll_interval=0.2)
    finally:
        srv.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
