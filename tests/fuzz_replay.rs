//! Replays the fuzzers' saved inputs on stable (no nightly, no libFuzzer):
//! every file under fuzz/corpus/<target>/ and fuzz/regressions/<target>/
//! goes through the same `latency_logger::fuzzing::<target>` function the
//! fuzz target calls (fuzz/fuzz_targets/<target>.rs), which must return.
//! A missing or empty directory fails the test, so it cannot pass on
//! nothing. See fuzz/README.md.

use std::path::{Path, PathBuf};

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e} (fuzz inputs missing?)", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{}: no inputs to replay", dir.display());
    files
}

fn replay(target: &str, run: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut n = 0;
    for kind in ["corpus", "regressions"] {
        for path in inputs(&root.join(kind).join(target)) {
            let data = std::fs::read(&path).expect("read input");
            // A panic names the input (replay it with
            // `cargo +nightly fuzz run <target> <file>`).
            eprintln!("{}", path.display());
            run(&data);
            n += 1;
        }
    }
    eprintln!("{target}: {n} inputs replayed");
}

#[test]
fn x509() {
    replay("x509", latency_logger::fuzzing::x509);
}

#[test]
fn targets() {
    replay("targets", latency_logger::fuzzing::targets);
}

#[test]
fn url() {
    replay("url", latency_logger::fuzzing::url);
}

#[test]
fn registry() {
    replay("registry", latency_logger::fuzzing::registry);
}

#[test]
fn kafka_response() {
    replay("kafka_response", latency_logger::fuzzing::kafka_response);
}

#[test]
fn spool() {
    replay("spool", latency_logger::fuzzing::spool);
}
