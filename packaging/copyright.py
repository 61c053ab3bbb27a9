#!/usr/bin/env python3
"""Writes debian/copyright (DEP-5) for the package: the project's own license
from Cargo.toml, and the Rust crates statically linked into the binary with
their licenses, read from `cargo metadata` (so it follows Cargo.lock).

    cargo metadata --format-version 1 --filter-platform TRIPLE | copyright.py MAINTAINER YEAR > copyright
"""

import json
import sys


def linked_crates(meta):
    """Packages reachable from the root through normal (non-dev, non-build) dependencies."""
    nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
    pkgs = {p["id"]: p for p in meta["packages"]}
    root = meta["resolve"]["root"]
    seen, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        for dep in nodes[pid]["deps"]:
            if any(k["kind"] is None for k in dep["dep_kinds"]):
                todo.append(dep["pkg"])
    seen.discard(root)
    return pkgs[root], sorted((pkgs[p] for p in seen), key=lambda p: (p["name"], p["version"]))


def main():
    maintainer = sys.argv[1] if len(sys.argv) > 1 else "the latency-logger maintainers"
    year = sys.argv[2] if len(sys.argv) > 2 else "2026"
    meta = json.load(sys.stdin)
    root, crates = linked_crates(meta)
    own = root.get("license")
    w = sys.stdout.write
    w("Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n")
    w(f"Upstream-Name: {root['name']}\n")
    w(f"Upstream-Contact: {maintainer}\n")
    w("Comment: The binary is statically linked. Besides the project's own code it\n")
    w(" contains these Rust crates (name version: license, as each crate declares it):\n")
    for c in crates:
        lic = c.get("license") or ("see " + c["license_file"] if c.get("license_file") else "not declared")
        w(f" {c['name']} {c['version']}: {lic}\n")
    w(" and the musl C library (MIT), linked in by the Rust toolchain.\n")
    w("\n")
    w("Files: *\n")
    w(f"Copyright: {year} the {root['name']} authors\n")
    if own:
        w(f"License: {own}\n")
        w(f" See the project's repository for the license text ({own}).\n")
    else:
        w("License: not-yet-chosen\n")
        w(" The authors have not yet stated a license (Cargo.toml has no `license`\n")
        w(" field). Until they do, no rights beyond those the law gives are granted.\n")


if __name__ == "__main__":
    main()
