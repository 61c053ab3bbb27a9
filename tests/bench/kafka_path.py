#!/usr/bin/env python3
"""What the Kafka path costs per probe, whole process (issue 10, "Cost").

    python3 tests/bench/kafka_path.py --server BENCH_SERVER [--rounds 3]
        [--seconds 20] [--rates 10,1000] [--sinks stdout,kafka,spool]
        [--kafka-env DIR/env] NAME=BINARY [NAME=BINARY ...]

For each round, rate and sink, every binary runs in turn (interleaved, so
load on this shared machine hits all of them alike): N targets at a 1 s
interval (`N x '1, HTTP_BASE/fixed#i'`, `-W 8 --splay 1`) for --seconds,
then SIGTERM. Sinks: `stdout` (JSON lines to /dev/null), `kafka` (`-B` to a
real Apache Kafka broker on loopback, a fresh 6-partition topic per run),
`spool` (the same with `--spool DIR`, DIR on disk under /var/tmp so that
`write_bytes` counts). Figures from the OS: CPU (user+sys, wait4 of the
process, threads included) per probe done, peak RSS (VmHWM), bytes written
to storage (/proc/PID/io write_bytes, read just before SIGTERM) per record
delivered; probes and deliveries from the shutdown `stats:` line.

Without --kafka-env a broker is started with tests/support/kafka/broker.sh
(LL_CACHE_DIR as the tests) and stopped at the end. Prints raw lines and a
Markdown table; the Kafka and spool columns are also given as the difference
from stdout in µs per probe, which is what the issue's target is about.
"""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from musl import run_measured  # noqa: E402  (same wait4 measurement as part 7)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KB = os.path.join(ROOT, "tests/support/kafka/broker.sh")


def read_env(path):
    return dict(l.split("=", 1) for l in open(path).read().split())


def stats(err_path):
    """The last `stats:` line: done/failed/skipped probes, delivered/dropped records."""
    line = ""
    with open(err_path, errors="replace") as f:
        for l in f:
            if "stats: probes" in l:
                line = l
    probes, _, records = line.partition(";")
    d = {k: int(v) for v, k in re.findall(r"(\d+) (done|failed|skipped)", probes)}
    d.update({k: int(v) for v, k in re.findall(r"(\d+) (delivered|dropped)", records)})
    return d


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--server", default=os.environ.get("BENCH_SERVER"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--rates", default="10,1000")
    ap.add_argument("--sinks", default="stdout,kafka,spool")
    ap.add_argument("--kafka-env", help="env file of a running broker (broker.sh)")
    ap.add_argument("--out", help="append the Markdown table here")
    ap.add_argument("builds", nargs="+", metavar="NAME=BINARY")
    a = ap.parse_args()
    if not a.server:
        sys.exit("kafka_path.py: --server (or BENCH_SERVER) = path of examples/bench_server")
    builds = [b.split("=", 1) for b in a.builds]
    rates = [int(r) for r in a.rates.split(",")]
    sinks = a.sinks.split(",")

    w = tempfile.mkdtemp(prefix="llkpath.", dir="/dev/shm" if os.access("/dev/shm", os.W_OK) else None)
    disk = tempfile.mkdtemp(prefix="llkpath-spool.", dir="/var/tmp")
    srv = subprocess.Popen([a.server, w])
    own_broker = None
    try:
        for _ in range(200):
            if os.path.exists(os.path.join(w, "server.env")):
                break
            time.sleep(0.05)
        else:
            sys.exit("kafka_path.py: bench_server did not start")
        http = read_env(os.path.join(w, "server.env"))["HTTP_BASE"]
        for n in rates:
            with open(os.path.join(w, f"t{n}.csv"), "w") as f:
                for i in range(n):
                    # A fragment is not sent (the server sees /fixed) but keeps
                    # the URLs, hence the Kafka keys and partitions, distinct.
                    f.write(f"1, {http}/fixed#{i}\n")
        if any(s != "stdout" for s in sinks):
            if a.kafka_env:
                kdir = os.path.dirname(a.kafka_env)
            else:
                kdir = os.path.join(w, "kafka")
                subprocess.run([KB, "install"], check=True, stdout=subprocess.DEVNULL)
                subprocess.run([KB, "start", kdir, "--mode", "plaintext", "--owner", str(os.getpid())],
                               check=True, stdout=subprocess.DEVNULL)
                own_broker = kdir
            boot = read_env(os.path.join(kdir, "env"))["KAFKA_PLAINTEXT"]
        rows = []
        seq = 0
        for rnd in range(1, a.rounds + 1):
            for n in rates:
                for sink in sinks:
                    for name, binary in builds:
                        seq += 1
                        argv = [binary, "-W", "8", "--splay", "1", os.path.join(w, f"t{n}.csv")]
                        if sink != "stdout":
                            topic = f"path-{seq}"
                            subprocess.run([KB, "topic", kdir, topic, "6"], check=True,
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                            argv[1:1] = ["-B", boot, "-T", topic]
                            if sink == "spool":
                                sp = os.path.join(disk, f"s{seq}")
                                argv[1:1] = ["--spool", sp]
                        err = os.path.join(w, f"run{seq}.err")
                        m = run_measured(argv, a.seconds, None, err)
                        r = {"cpu_s": m["cpu_s"], "rss_kib": m["maxrss_kib"],
                             "write_bytes": m["write_bytes"], "exit": m["exit"]}
                        r.update(stats(err))
                        r.update(build=name, rate=n, sink=sink, round=rnd)
                        done = r.get("done", 0)
                        r["cpu_us_per_probe"] = r["cpu_s"] * 1e6 / done if done else float("nan")
                        dl = r.get("delivered", 0)
                        r["disk_bytes_per_record"] = (
                            r["write_bytes"] / dl if sink == "spool" and dl else float("nan"))
                        print("kafka_path.py: " + " ".join(f"{k}={v}" for k, v in sorted(r.items())),
                              file=sys.stderr, flush=True)
                        rows.append(r)
                        if sink == "spool":
                            shutil.rmtree(os.path.join(disk, f"s{seq}"), ignore_errors=True)
        table = render(rows, builds, rates, sinks, a)
        print(table)
        if a.out:
            with open(a.out, "a") as f:
                f.write(table + "\n")
    finally:
        if own_broker:
            subprocess.run([KB, "stop", own_broker], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        srv.terminate()
        srv.wait()
        shutil.rmtree(disk, ignore_errors=True)


def med(rows, key):
    vals = [r[key] for r in rows if key in r and r[key] == r[key]]  # drop absent and NaN
    if not vals:
        return float("nan"), float("nan"), float("nan")
    return statistics.median(vals), min(vals), max(vals)


def render(rows, builds, rates, sinks, a):
    out = [f"`kafka_path.py --rounds {a.rounds} --seconds {a.seconds:g}`: N targets at 1 s, `-W 8 --splay 1`, "
           "HTTP `/fixed`; CPU = user+sys (wait4) ÷ probes done; medians (min–max) over rounds.", "",
           "| targets/s | build | sink | CPU µs/probe | Kafka path µs/probe (vs stdout) | peak RSS KiB | probes | delivered | disk bytes/record |",
           "|---|---|---|---|---|---|---|---|---|"]
    for n in rates:
        for name, _ in builds:
            base = med([r for r in rows if r["build"] == name and r["rate"] == n and r["sink"] == "stdout"],
                       "cpu_us_per_probe")[0]
            for sink in sinks:
                rs = [r for r in rows if r["build"] == name and r["rate"] == n and r["sink"] == sink]
                cpu = med(rs, "cpu_us_per_probe")
                rss = med(rs, "rss_kib")
                extra = "—" if sink == "stdout" else f"{cpu[0] - base:+.0f}"
                disk = med(rs, "disk_bytes_per_record")[0]
                out.append(
                    f"| {n} | {name} | {sink} | {cpu[0]:.0f} ({cpu[1]:.0f}–{cpu[2]:.0f}) | {extra} | "
                    f"{rss[0]:.0f} ({rss[1]:.0f}–{rss[2]:.0f}) | {med(rs, 'done')[0]:.0f} | "
                    f"{med(rs, 'delivered')[0]:.0f} | {'—' if disk != disk else f'{disk:.0f}'} |")
    return "\n".join(out)


if __name__ == "__main__":
    main()
