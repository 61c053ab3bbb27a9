#!/usr/bin/env python3
"""Page faults and syscalls per probe of the static musl binaries under
qemu-user, x86_64 included, so the three architectures are counted the same
way (stdlib only; issue 12, item 4). Counts, not times: qemu's timing means
nothing.

    qemu_counts.py [--server BENCH_SERVER] [--interval S] [--short S] [--long S]
                   QEMU=BINARY...      e.g. qemu-aarch64-static=dist/latency-logger-aarch64-unknown-linux-musl

For each binary and scheme, one target every `interval` seconds, `-W 1 -Q 1`,
run twice (short and long) under `qemu-ARCH -strace`; per probe =
(long − short) ÷ (probes long − probes short), which cancels start-up, the
translation of new code and shutdown. Faults: ru_minflt of the qemu process
(wait4), so they include qemu's own, but not its start-up. Syscalls: the
guest's, from qemu's -strace lines on stderr.
"""

import argparse
import collections
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

CALL = re.compile(rb"^\d+ ([a-z_0-9]+)\(")


def run(argv, seconds, out_path, err_path):
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        p = subprocess.Popen(argv, stdout=out, stderr=err)
        time.sleep(seconds)
        p.send_signal(signal.SIGTERM)
        _, _, ru = os.wait4(p.pid, 0)
        p.returncode = 0  # reaped by wait4 above
    ok = 0
    with open(out_path, "rb") as f:
        for line in f:
            try:
                r = json.loads(line)
            except ValueError:
                continue
            ok += r.get("code") == 200 and not r.get("error")
    calls = collections.Counter()
    with open(err_path, "rb") as f:
        for line in f:
            m = CALL.match(line)
            if m:
                calls[m.group(1).decode()] += 1
    return ok, ru.ru_minflt, calls


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--server", default=os.environ.get("BENCH_SERVER"))
    ap.add_argument("--interval", type=float, default=0.05)
    ap.add_argument("--short", type=float, default=3.0)
    ap.add_argument("--long", type=float, default=9.0)
    ap.add_argument("builds", nargs="+", metavar="QEMU=BINARY")
    a = ap.parse_args()
    if not a.server:
        sys.exit("qemu_counts.py: --server (or BENCH_SERVER) = path of examples/bench_server")
    w = tempfile.mkdtemp(prefix="llqemu.")
    srv = subprocess.Popen([a.server, w])
    try:
        env = os.path.join(w, "server.env")
        for _ in range(200):
            if os.path.exists(env):
                break
            time.sleep(0.05)
        cfg = dict(l.split("=", 1) for l in open(env).read().split())
        print("| binary | scheme | probes (short / long) | minor faults/probe | syscalls/probe | top syscalls/probe |")
        print("|---|---|---|---|---|---|")
        for spec in a.builds:
            qemu, _, binary = spec.partition("=")
            for scheme in ("http", "https"):
                base = cfg["HTTP_BASE"] if scheme == "http" else cfg["HTTPS_BASE"]
                csv = os.path.join(w, "one.csv")
                with open(csv, "w") as f:
                    f.write(f"{a.interval}, {base}/fixed\n")
                argv = [qemu, "-strace", binary, "-W", "1", "-Q", "1",
                        "--cacert", cfg["CA_FILE"], csv]
                out, err = os.path.join(w, "out.jsonl"), os.path.join(w, "err.txt")
                n1, f1, c1 = run(argv, a.short, out, err)
                n2, f2, c2 = run(argv, a.long, out, err)
                dn = max(n2 - n1, 1)
                diff = {k: (c2[k] - c1.get(k, 0)) / dn for k in c2}
                top = sorted(diff.items(), key=lambda kv: -kv[1])[:8]
                print(f"| {os.path.basename(binary)} | {scheme} | {n1} / {n2} | {(f2 - f1) / dn:.1f} | "
                      f"{sum(diff.values()):.1f} | " + ", ".join(f"{k} {v:.2f}" for k, v in top) + " |",
                      flush=True)
    finally:
        srv.terminate()
        srv.wait()
        for f in ("out.jsonl", "err.txt", "one.csv"):
            try:
                os.remove(os.path.join(w, f))
            except OSError:
                pass


if __name__ == "__main__":
    main()
