#!/usr/bin/env python3
"""What ships vs what is benchmarked: the static musl binary next to the glibc
release build, same server, same run, interleaved (stdlib only).

    musl.py [--rounds R] [--probe-seconds S] [--steady-seconds S]
            [--strace-seconds S] [--out FILE.md] [--raw FILE] NAME=BINARY...

Usually two builds, e.g. glibc=target/release/latency-logger
musl=dist/latency-logger-x86_64-unknown-linux-musl; the first is the
reference the ratios are taken against. Starts
target/release/examples/bench_server (BENCH_SERVER or next to this run's
glibc build) in its own process; only the client is measured.

Workloads (each build, each scheme, interleaved, R rounds):
  probe   one target every 4 ms, `-W 1 -Q 1`, SIGTERM after S s (part 1's
          "real binary" row): ~1,000 sequential fresh-connection probes
          (--probe-rounds rounds, default 8: single runs scatter ±20 % here)
  steady  100 targets at 1 s, `-W 4 -Q 1000 --splay 1`, S s (issue 12's load:
          ~100 probes/s, four workers, so allocator contention shows)
  callgrind the probe workload at 20 ms under valgrind's callgrind (once per
          build and scheme): user-space instructions per probe, a count that
          does not depend on how busy the host is (kernel time not included)
  strace  the probe workload at 8 ms under `strace -f -c` (once per build and
          scheme; strace slows the process, so only its counts are used)

Per run, from wait4's rusage of the process itself (no /usr/bin/time):
CPU = user+sys and minor page faults (ru_minflt); peak RSS is VmHWM from
/proc just before SIGTERM (ru_maxrss would include the forking Python); the
probe count is the number of JSON lines with code 200. Per-probe figures
divide the whole process (start-up and shutdown included) by that count.
"""

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time


def reports_ok(path):
    ok = bad = 0
    with open(path, "rb") as f:
        for line in f:
            try:
                r = json.loads(line)
            except ValueError:
                continue
            if r.get("code") == 200 and not r.get("error"):
                ok += 1
            else:
                bad += 1
    return ok, bad


def run_measured(argv, seconds, out_path, err_path):
    """Run argv for `seconds`, SIGTERM, return wait4 rusage figures (and
    write_bytes from /proc/PID/io, read before the signal). out_path None:
    stdout to /dev/null. (Two builds are never run at the same time: with the
    same targets their probes fall in step and whichever meets the other's
    connections pays; the same binary twice measured 1.5x itself.)"""
    with open(out_path or os.devnull, "wb") as out, open(err_path, "wb") as err:
        p = subprocess.Popen(argv, stdout=out, stderr=err)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
            if p.poll() is not None:
                break
        # ru_maxrss would count the forking Python's pages: VmHWM is reset by exec.
        hwm = status_kib(p.pid, "VmHWM")
        wbytes = io_bytes(p.pid, "write_bytes")
        if p.returncode is None:
            p.send_signal(signal.SIGTERM)
        # wait4 on the child gives its own rusage (threads included).
        for _ in range(200):
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            time.sleep(0.05)
        else:
            p.kill()
            pid, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
    return {
        "cpu_s": ru.ru_utime + ru.ru_stime,
        "user_s": ru.ru_utime,
        "sys_s": ru.ru_stime,
        "minflt": ru.ru_minflt,
        "maxrss_kib": hwm,
        "write_bytes": wbytes,
        "nvcsw": ru.ru_nvcsw,
        "nivcsw": ru.ru_nivcsw,
        "exit": p.returncode,
    }


def callgrind_instructions(argv, seconds, out_path, err_path, cg_path):
    """User-space instructions argv executes in `seconds` under valgrind's
    callgrind (all threads): a count, not a time, so the same binary and
    workload give the same figure however busy the host is."""
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        p = subprocess.Popen(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={cg_path}", "--"] + argv,
            stdout=out, stderr=err)
        time.sleep(seconds)
        # SIGTERM reaches the program (valgrind runs it in its own process).
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    with open(cg_path) as f:
        for line in f:
            if line.startswith("totals:"):
                return int(line.split()[1])
    return None


def status_kib(pid, key):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return float("nan")


def io_bytes(pid, key):
    """A field of /proc/PID/io (bytes), or NaN."""
    try:
        for line in open(f"/proc/{pid}/io"):
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return float("nan")


def strace_counts(argv, seconds, out_path, err_path, trace_path):
    """Syscall counts of argv (all threads) over `seconds`: {name: calls}."""
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        p = subprocess.Popen(
            ["strace", "-f", "-c", "-o", trace_path, "--"] + argv, stdout=out, stderr=err
        )
        time.sleep(seconds)
        # Signal the traced program, not strace: strace then writes its summary.
        try:
            kids = open(f"/proc/{p.pid}/task/{p.pid}/children").read().split()
        except OSError:
            kids = []
        for k in kids:
            try:
                os.kill(int(k), signal.SIGTERM)
            except OSError:
                pass
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    counts = {}
    with open(trace_path) as f:
        for line in f:
            m = re.match(r"\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$", line)
            if m and m.group(2) != "total":
                counts[m.group(2)] = int(m.group(1))
    return counts


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def mmm(xs, fmt="{:.0f}"):
    if not xs:
        return "—"
    if len(xs) == 1:
        return fmt.format(xs[0])
    return f"{fmt.format(med(xs))} ({fmt.format(min(xs))}–{fmt.format(max(xs))})"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS", "3")))
    ap.add_argument("--probe-seconds", type=float, default=4.0)
    ap.add_argument("--probe-rounds", type=int, default=None,
                    help="rounds of the sequential workload (default: 8, or --rounds if more)")
    ap.add_argument("--steady-seconds", type=float,
                    default=float(os.environ.get("BENCH_MUSL_STEADY_SECONDS", "20")))
    ap.add_argument("--strace-seconds", type=float, default=4.0)
    ap.add_argument("--callgrind-seconds", type=float, default=12.0)
    ap.add_argument("--workloads", default="probe,steady,callgrind,strace")
    ap.add_argument("--server", default=os.environ.get("BENCH_SERVER"))
    ap.add_argument("--out", help="append the Markdown table here (default: stdout only)")
    ap.add_argument("--raw", help="write the raw key=value lines here")
    ap.add_argument("builds", nargs="+", metavar="NAME=BINARY")
    a = ap.parse_args()

    if a.probe_rounds is None:
        a.probe_rounds = max(8, a.rounds)
    builds = []
    for b in a.builds:
        name, _, path = b.partition("=")
        if not path or not os.access(path, os.X_OK):
            sys.exit(f"musl.py: {b!r}: want NAME=BINARY with an executable BINARY")
        builds.append((name, os.path.abspath(path)))
    server = a.server
    if not server:
        sys.exit("musl.py: --server (or BENCH_SERVER) = path of examples/bench_server")
    workloads = a.workloads.split(",")
    if "strace" in workloads and not shutil_which("strace"):
        print("musl.py: strace not installed: syscall counts skipped", file=sys.stderr)
        workloads.remove("strace")
    if "callgrind" in workloads and not shutil_which("valgrind"):
        print("musl.py: valgrind not installed: instruction counts skipped", file=sys.stderr)
        workloads.remove("callgrind")

    base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    w = tempfile.mkdtemp(prefix="llmusl.", dir=base)
    srv = subprocess.Popen([server, w])
    try:
        env = os.path.join(w, "server.env")
        for _ in range(200):
            if os.path.exists(env):
                break
            time.sleep(0.05)
        else:
            sys.exit("musl.py: bench_server did not start")
        cfg = dict(l.split("=", 1) for l in open(env).read().split())
        urls = {"http": cfg["HTTP_BASE"] + "/fixed", "https": cfg["HTTPS_BASE"] + "/fixed"}
        ca = cfg["CA_FILE"]
        raw = []
        out_jsonl = os.path.join(w, "out.jsonl")
        err_txt = os.path.join(w, "err.txt")

        def csv(name, lines):
            path = os.path.join(w, name)
            with open(path, "w") as f:
                f.writelines(lines)
            return path

        def sequential(binary, scheme, every):
            """argv: one target every `every` seconds, one worker, queue 1."""
            one = csv("one.csv", [f"{every}, {urls[scheme]}\n"])
            return [binary, "-W", "1", "-Q", "1", "--cacert", ca, one]

        def keep(line):
            raw.append(line)
            print("musl.py: " + line, file=sys.stderr)

        def record(tag, name, scheme, fig, ok, bad, extra=""):
            n = max(ok, 1)
            line = (
                f"{tag} build={name} scheme={scheme} probes={ok} failed={bad} "
                f"cpu_per_probe_us={fig['cpu_s'] * 1e6 / n:.1f} "
                f"user_per_probe_us={fig['user_s'] * 1e6 / n:.1f} "
                f"sys_per_probe_us={fig['sys_s'] * 1e6 / n:.1f} "
                f"minflt_per_probe={fig['minflt'] / n:.2f} minflt={fig['minflt']} "
                f"maxrss_kib={fig['maxrss_kib']} ctxsw_per_probe={(fig['nvcsw'] + fig['nivcsw']) / n:.2f} "
                f"exit={fig['exit']}{extra}"
            )
            keep(line)

        # Sequential runs are short and scatter ±20 % on a busy host, so they
        # get more rounds (--probe-rounds) than the steady ones.
        for rnd in range(1, max(a.rounds, a.probe_rounds) + 1):
            for scheme in ("http", "https"):
                # Rotated each round, so every build takes every position.
                k = (rnd - 1) % len(builds)
                for name, binary in builds[k:] + builds[:k]:
                    if "probe" in workloads and rnd <= a.probe_rounds:
                        fig = run_measured(sequential(binary, scheme, 0.004),
                                           a.probe_seconds, out_jsonl, err_txt)
                        ok, bad = reports_ok(out_jsonl)
                        record("probe", name, scheme, fig, ok, bad, f" round={rnd}")
                    if "steady" in workloads and rnd <= a.rounds:
                        many = csv("steady.csv", [f"1, {urls[scheme]}\n"] * 100)
                        fig = run_measured(
                            [binary, "-W", "4", "-Q", "1000", "--splay", "1", "--cacert", ca, many],
                            a.steady_seconds, out_jsonl, err_txt)
                        ok, bad = reports_ok(out_jsonl)
                        record("steady", name, scheme, fig, ok, bad, f" round={rnd}")
        if "callgrind" in workloads:
            for scheme in ("http", "https"):
                for name, binary in builds:
                    instr = callgrind_instructions(
                        sequential(binary, scheme, 0.02),
                        a.callgrind_seconds, out_jsonl, err_txt, os.path.join(w, "callgrind.out"))
                    ok, _ = reports_ok(out_jsonl)
                    if instr is None or ok == 0:
                        print(f"musl.py: callgrind {name} {scheme}: no count", file=sys.stderr)
                        continue
                    keep(f"callgrind build={name} scheme={scheme} probes={ok} "
                         f"instructions={instr} instr_per_probe={instr / ok:.0f}")
        if "strace" in workloads:
            for scheme in ("http", "https"):
                for name, binary in builds:
                    counts = strace_counts(
                        sequential(binary, scheme, 0.008),
                        a.strace_seconds, out_jsonl, err_txt, os.path.join(w, "strace.txt"))
                    ok, _ = reports_ok(out_jsonl)
                    n = max(ok, 1)
                    top = sorted(counts.items(), key=lambda kv: -kv[1])
                    per = " ".join(f"{k}={v / n:.2f}" for k, v in top)
                    line = (f"strace build={name} scheme={scheme} probes={ok} "
                            f"syscalls_per_probe={sum(counts.values()) / n:.1f} {per}")
                    keep(line)
        sizes = {name: os.path.getsize(binary) for name, binary in builds}
    finally:
        srv.terminate()
        srv.wait()
        for f in ("out.jsonl", "err.txt", "one.csv", "steady.csv", "callgrind.out"):
            try:
                os.remove(os.path.join(w, f))
            except OSError:
                pass

    if a.raw:
        with open(a.raw, "w") as f:
            f.write("\n".join(raw) + "\n")
    md = summarize(raw, [n for n, _ in builds], sizes, a)
    print(md)
    if a.out:
        with open(a.out, "a") as f:
            f.write(md + "\n")


def shutil_which(cmd):
    import shutil

    return shutil.which(cmd)


def summarize(raw, names, sizes, a):
    rows = []
    for line in raw:
        tag, *rest = line.split()
        d = dict(p.split("=", 1) for p in rest)
        d["tag"] = tag
        rows.append(d)

    def pick(tag, name, scheme, key):
        return [float(r[key]) for r in rows
                if r["tag"] == tag and r["build"] == name and r["scheme"] == scheme and key in r]

    ref = names[0]
    out = []
    w = out.append
    def per_round(tag, name, scheme, key):
        """{round: value} of one build's runs."""
        return {r["round"]: float(r[key]) for r in rows
                if r["tag"] == tag and r["build"] == name and r["scheme"] == scheme and "round" in r}

    w(f"| workload | scheme | build | CPU µs/probe | vs {ref} | same-round ratio | "
      f"minor faults/probe | vs {ref} | syscalls/probe | peak RSS KiB | probes/run |")
    w("|---|---|---|---|---|---|---|---|---|---|---|")
    verdicts = []
    controls = []
    for tag, label in (("probe", f"sequential, 4 ms, `-W 1`, {a.probe_seconds:g} s × {a.probe_rounds}"),
                       ("steady", f"100 targets at 1 s, `-W 4`, {a.steady_seconds:g} s × {a.rounds}")):
        for scheme in ("http", "https"):
            ref_cpu = med(pick(tag, ref, scheme, "cpu_per_probe_us"))
            ref_flt = med(pick(tag, ref, scheme, "minflt_per_probe"))
            ref_rounds = per_round(tag, ref, scheme, "cpu_per_probe_us")
            for name in names:
                cpu = pick(tag, name, scheme, "cpu_per_probe_us")
                if not cpu:
                    continue
                flt = pick(tag, name, scheme, "minflt_per_probe")
                mine = per_round(tag, name, scheme, "cpu_per_probe_us")
                ratios = [mine[k] / ref_rounds[k] for k in mine if ref_rounds.get(k)]
                sc = pick("strace", name, scheme, "syscalls_per_probe") if tag == "probe" else []
                same = "—" if name == ref else mmm(ratios, "{:.2f}×")
                # A build named after the reference (e.g. glibc-again) is a
                # control: shown, not judged.
                if name != ref and ratios:
                    (controls if name.startswith(ref) else verdicts).append(
                        (tag, scheme, name, med(ratios), med(flt) / ref_flt))
                w(f"| {label} | {scheme} | {name} | {mmm(cpu)} | {med(cpu) / ref_cpu:.2f}× | {same} | "
                  f"{mmm(flt, '{:.1f}')} | {med(flt) / ref_flt:.2f}× | "
                  f"{mmm(sc, '{:.1f}') if sc else '—'} | {mmm(pick(tag, name, scheme, 'maxrss_kib'))} | "
                  f"{mmm(pick(tag, name, scheme, 'probes'))} |")
    w("")
    w("Same-round ratio: each round's run of the build ÷ the same round's run of "
      f"{ref}, median (min–max) over rounds. A second run of {ref} under another name, if "
      "given, shows the spread of the measurement itself.")
    cg = [r for r in rows if r["tag"] == "callgrind"]
    if cg:
        w("")
        w("User-space instructions per probe under callgrind (sequential at 20 ms, "
          f"{a.callgrind_seconds:g} s, start-up included; a count, so noise-free):")
        w("")
        for scheme in ("http", "https"):
            ref_i = pick("callgrind", ref, scheme, "instr_per_probe")
            for name in names:
                mine = pick("callgrind", name, scheme, "instr_per_probe")
                if mine and ref_i:
                    w(f"- {name} {scheme}: {mine[0]:,.0f} instructions/probe "
                      f"({mine[0] / ref_i[0]:.2f}× {ref})")
                    if not name.startswith(ref):
                        verdicts.append(("callgrind", scheme, name, mine[0] / ref_i[0], float("nan")))
    if verdicts:
        w("")
        worst = max(v[3] for v in verdicts)
        flt_worst = max((v[4] for v in verdicts if v[4] == v[4]), default=float("nan"))
        each = "; ".join(
            f"{tag} " + ", ".join(f"{v[1]} {v[3]:.2f}×" for v in verdicts if v[0] == tag)
            for tag in dict.fromkeys(v[0] for v in verdicts))
        w(f"- Target (issue 12): CPU per probe ≤ 1.1× {ref} in every measure ({each}) → "
          f"{'met' if worst <= 1.1 else 'NOT met'}; minor faults ≤ 2× {ref} → worst "
          f"{flt_worst:.2f}× ({'met' if flt_worst <= 2 else 'NOT met'}).")
        if controls:
            w(f"- The measurement's own spread: the same {ref} binary run again measured "
              + ", ".join(f"{v[0]} {v[1]} {v[3]:.2f}×" for v in controls) + f" of {ref}.")
    w("")
    w("Sizes: " + ", ".join(f"{n} {s:,} bytes" for n, s in sizes.items()) + ".")
    st = [r for r in rows if r["tag"] == "strace"]
    if st:
        w("")
        w("Syscalls per probe by name (sequential workload at 8 ms under `strace -f -c`; "
          "the top 8 of each):")
        w("")
        for r in st:
            calls = [(k, float(v)) for k, v in r.items()
                     if k not in ("tag", "build", "scheme", "probes", "syscalls_per_probe")]
            calls.sort(key=lambda kv: -kv[1])
            w(f"- {r['build']} {r['scheme']}: " + ", ".join(f"{k} {v:.2f}" for k, v in calls[:8]))
    return "\n".join(out)


if __name__ == "__main__":
    main()
