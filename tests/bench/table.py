#!/usr/bin/env python3
"""Keep BENCHMARKS.md's current table up to date and the history of runs.

  table.py [--bench BENCHMARKS.md] [--history docs/benchmarks-history.md]
           [--commit C] [--date YYYY-MM-DD] [--figures FILE] [--run FILE]
           [NAME=VALUE ...]

BENCHMARKS.md holds one table between the lines `<!-- current:begin -->` and
`<!-- current:end -->`, with the columns figure | target | last measured |
commit | date. For every figure given (NAME=VALUE arguments, or lines
`NAME<TAB>VALUE` in --figures FILE, as `tools.py figures` prints them), the
row whose figure cell is exactly NAME gets VALUE, the commit and the date;
every other row is left as it was (a figure this run did not measure keeps
its last value, commit and date). A NAME with no row is reported on stderr
and ignored: rows are added by hand, with their target.

--run FILE: the full write-up of the run (markdown), put at the top of the
history file's runs, just after the line `<!-- runs:newest-first -->`, so the
newest run comes first.

Exit status: 0 done; 1 a marker is missing (nothing written); 2 usage.
"""

import argparse
import datetime
import subprocess
import sys

BEGIN = "<!-- current:begin -->"
END = "<!-- current:end -->"
RUNS = "<!-- runs:newest-first -->"


def read_figures(path, pairs):
    """NAME → VALUE from a TAB-separated file and NAME=VALUE arguments (later wins)."""
    figures = {}
    if path:
        for line in open(path, encoding="utf-8"):
            line = line.rstrip("\n")
            if not line.strip() or line.startswith("#"):
                continue
            name, sep, value = line.partition("\t")
            if not sep:
                sys.exit(f"table.py: {path}: not NAME<TAB>VALUE: {line!r}")
            figures[name.strip()] = value.strip()
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            sys.exit(f"table.py: not NAME=VALUE: {pair!r}")
        figures[name.strip()] = value.strip()
    return figures


def cells(row):
    """`| a | b |` → ['a', 'b'] (a `\\|` inside a cell is kept)."""
    inner = row.strip()
    if not (inner.startswith("|") and inner.endswith("|")):
        return None
    out, cur, i = [], "", 1
    while i < len(inner) - 1:
        if inner[i] == "\\" and inner[i + 1] == "|":
            cur += "\\|"
            i += 2
            continue
        if inner[i] == "|":
            out.append(cur.strip())
            cur = ""
        else:
            cur += inner[i]
        i += 1
    out.append(cur.strip())
    return out


def update_table(text, figures, commit, date):
    """The text with the rows of `figures` rewritten; and the names not found."""
    lines = text.split("\n")
    try:
        start = lines.index(BEGIN)
        end = lines.index(END, start)
    except ValueError:
        raise SystemExit(f"table.py: {BEGIN} … {END} not found") from None
    left = dict(figures)
    for i in range(start + 1, end):
        c = cells(lines[i])
        if not c or len(c) != 5 or c[0] not in left:
            continue
        value = left.pop(c[0]).replace("|", "\\|")
        lines[i] = f"| {c[0]} | {c[1]} | {value} | {commit} | {date} |"
    return "\n".join(lines), sorted(left)


def add_run(history, run):
    """The history text with `run` inserted first, after the RUNS marker."""
    marker = history.find(RUNS + "\n")
    if marker < 0:
        raise SystemExit(f"table.py: {RUNS} not found in the history file")
    at = marker + len(RUNS) + 1
    return history[:at] + "\n" + run.strip("\n") + "\n" + history[at:]


def main():
    ap = argparse.ArgumentParser(usage=__doc__)
    ap.add_argument("--bench", default="BENCHMARKS.md")
    ap.add_argument("--history", default="docs/benchmarks-history.md")
    ap.add_argument("--commit")
    ap.add_argument("--date", default=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"))
    ap.add_argument("--figures", help="NAME<TAB>VALUE lines")
    ap.add_argument("--run", help="markdown of the full run, for the history")
    ap.add_argument("pairs", nargs="*", metavar="NAME=VALUE")
    a = ap.parse_args()
    commit = a.commit
    if not commit:
        r = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
        commit = r.stdout.strip() or "unknown"
    figures = read_figures(a.figures, a.pairs)

    # Both files are checked before either is written.
    bench = open(a.bench, encoding="utf-8").read()
    new_bench, unknown = update_table(bench, figures, commit, a.date)
    new_history = None
    if a.run:
        new_history = add_run(open(a.history, encoding="utf-8").read(), open(a.run, encoding="utf-8").read())
    for name in unknown:
        print(f"table.py: no row for figure {name!r} in {a.bench}: not recorded there", file=sys.stderr)
    with open(a.bench, "w", encoding="utf-8") as f:
        f.write(new_bench)
    if new_history is not None:
        with open(a.history, "w", encoding="utf-8") as f:
            f.write(new_history)
    print(f"table.py: {len(figures) - len(unknown)} row(s) of {a.bench} updated"
          + (f", run added to {a.history}" if new_history is not None else ""), file=sys.stderr)


if __name__ == "__main__":
    main()
