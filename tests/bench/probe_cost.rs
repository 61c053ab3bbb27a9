//! Per-probe cost of the library's `Prober`, exactly as the workers use it:
//! `probe_cost URL N [CA_FILE]` performs N probes of URL one after another
//! (fresh DNS/TCP/TLS each, as in production), after 5 warm-up probes, and
//! prints one `key=value` line. CPU (user+sys) and peak RSS come from
//! getrusage(RUSAGE_SELF) around the loop; wall from the monotonic clock.

mod common;

use latency_logger::probe::{ProbeConfig, Prober};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const WARMUP: usize = 5;

fn main() {
    let mut args = std::env::args().skip(1);
    let url = args.next().expect("usage: probe_cost URL N [CA_FILE]");
    let n: usize = args
        .next()
        .expect("usage: probe_cost URL N [CA_FILE]")
        .parse()
        .expect("N must be a number");
    let cfg = ProbeConfig {
        connect_timeout: Duration::from_secs(10),
        timeout: Duration::from_secs(30),
        follow_redirects: false,
        ca_file: args.next().map(PathBuf::from),
    };
    let prober = Prober::new(&cfg).expect("Prober::new");
    for _ in 0..WARMUP {
        let r = prober.probe(&url);
        assert_eq!(
            r.code, 200,
            "warm-up probe failed: {:?} {:?}",
            r.error_kind, r.error
        );
    }
    let u0 = common::Usage::now();
    let t0 = Instant::now();
    let mut failed = 0usize;
    let mut first_error = None;
    // PROBE_COST_INTERVAL_US: start probes on this cadence (as the real
    // binary's scheduler does) instead of back to back, so the idle gaps'
    // cost (a CPU woken from idle per probe) is part of the figure.
    let interval = std::env::var("PROBE_COST_INTERVAL_US")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_micros);
    for i in 0..n {
        if let Some(every) = interval {
            let due = t0 + every * i as u32;
            if let Some(d) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(d);
            }
        }
        let r = prober.probe(&url);
        if r.code != 200 {
            failed += 1;
            first_error.get_or_insert(format!("{:?}: {:?}", r.error_kind, r.error));
        }
    }
    let wall = t0.elapsed();
    let u1 = common::Usage::now();
    let per = |d: Duration| d.as_secs_f64() * 1e6 / n as f64;
    println!(
        "probes={n} failed={failed} user_us={:.0} sys_us={:.0} cpu_per_probe_us={:.1} \
         wall_per_probe_us={:.1} maxrss_kib={} vmhwm_kib={}",
        (u1.user - u0.user).as_secs_f64() * 1e6,
        (u1.sys - u0.sys).as_secs_f64() * 1e6,
        per(u1.cpu() - u0.cpu()),
        per(wall),
        u1.maxrss_kib,
        common::status_kib("VmHWM"),
    );
    if let Some(e) = first_error {
        eprintln!("probe_cost: {failed} of {n} probes failed; first: {e}");
        std::process::exit(1);
    }
}
