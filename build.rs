//! Build script: exposes the git commit the binary was built from as
//! `LATENCY_LOGGER_GIT_COMMIT` (for `-V`). "unknown" outside a git checkout
//! (a source tarball, a container without git) unless the variable is set in
//! the build's environment, which then wins.

use std::path::{Path, PathBuf};
use std::process::Command;

const VAR: &str = "LATENCY_LOGGER_GIT_COMMIT";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed={VAR}");
    let commit = match std::env::var(VAR) {
        Ok(v) if !v.trim().is_empty() => v.trim().to_string(),
        _ => {
            watch_git();
            git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".to_string())
        }
    };
    println!("cargo:rustc-env={VAR}={commit}");
}

/// Output of `git ARGS` in the package directory, trimmed; None on any failure.
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

/// Reruns this script when HEAD moves: HEAD itself (a checkout), the branch
/// it points to (a commit) and packed-refs (a gc). Asks git for the paths
/// because in a worktree `.git` is a file and the refs live elsewhere.
fn watch_git() {
    let Some(git_dir) = git(&["rev-parse", "--git-dir"]).map(PathBuf::from) else {
        return;
    };
    let common = git(&["rev-parse", "--git-common-dir"])
        .map(PathBuf::from)
        .unwrap_or_else(|| git_dir.clone());
    watch(&git_dir.join("HEAD"));
    watch(&common.join("packed-refs"));
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watch(&common.join(branch));
    }
}

fn watch(path: &Path) {
    // cargo treats a missing path as always changed: watch only what exists.
    if path.exists() {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}
