//! Running the built binary in tests: bounded waits and signals, so a test
//! that goes wrong fails instead of hanging.

use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

/// Waits up to `limit` for `child` to exit; kills it and panics past that.
pub fn wait_bounded(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("binary did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Sends `sig` (e.g. "-TERM") to `child` with kill(1).
pub fn signal(child: &Child, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .expect("run kill")
        .success();
    assert!(ok, "kill {sig} {} failed", child.id());
}
