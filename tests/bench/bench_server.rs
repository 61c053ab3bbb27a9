//! Loopback HTTP + HTTPS server for `make bench` (the same server the
//! integration tests use, `tests/support/http.rs`), run as its own process so
//! that its CPU is never counted against the client being measured.
//!
//! `bench_server DIR` writes `DIR/server.env` (HTTP_BASE, HTTPS_BASE, CA_FILE)
//! and `DIR/test-ca.pem`, then serves until killed. Paths: `/fixed` (200,
//! 10,000-byte body), `/delay` (first byte after exactly 200 ms), others 404.

// Only the servers: the rest of tests/support spawns the binary, which a
// bench program cannot name.
#[path = "../support/http.rs"]
#[allow(dead_code)]
mod http;

use std::path::PathBuf;
use std::time::Duration;

fn main() {
    let dir = PathBuf::from(
        std::env::args_os()
            .nth(1)
            .expect("usage: bench_server DIR (where server.env is written)"),
    );
    let http = http::HttpServer::start();
    let https = http::HttpsServer::start();
    let ca = dir.join("test-ca.pem");
    std::fs::write(&ca, https.ca_pem()).expect("write test CA PEM");
    let env = format!(
        "HTTP_BASE=http://{}\nHTTPS_BASE=https://{}\nCA_FILE={}\n",
        http.addr(),
        https.addr(),
        ca.display()
    );
    // Written last and renamed into place: its presence means "ready".
    let tmp = dir.join("server.env.tmp");
    std::fs::write(&tmp, env).expect("write server.env");
    std::fs::rename(&tmp, dir.join("server.env")).expect("rename server.env");
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}
