//! Logging to stderr: simple_logger's format and levels, behind a guard so
//! that a closed or full stderr (`… 2>&1 | head`) can never take the process
//! down. simple_logger writes with `eprintln!`, which panics when the write
//! fails; the guard catches that panic and stops logging from then on.

use log::{LevelFilter, Log, Metadata, Record};
use std::sync::atomic::{AtomicBool, Ordering};

struct Guarded {
    inner: simple_logger::SimpleLogger,
    /// Set once a write to stderr failed: nobody is reading any more.
    gone: AtomicBool,
}

impl Log for Guarded {
    fn enabled(&self, metadata: &Metadata) -> bool {
        !self.gone.load(Ordering::Relaxed) && self.inner.enabled(metadata)
    }

    fn log(&self, record: &Record) {
        if self.gone.load(Ordering::Relaxed) {
            return;
        }
        // panics::catch: the panic hook stays silent (it would log again).
        if crate::panics::catch(|| self.inner.log(record)).is_err() {
            self.gone.store(true, Ordering::Relaxed);
        }
    }

    fn flush(&self) {}
}

/// Info by default: start-up and shutdown summaries (records delivered or
/// not) are what an operator reads in the service log; `-v` debug, `-vv` trace.
pub fn init(verbose: u8) {
    let level = match verbose {
        0 => LevelFilter::Info,
        1 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    };
    let inner = simple_logger::SimpleLogger::new()
        .with_level(LevelFilter::Warn)
        .with_module_level("latency_logger", level)
        .with_utc_timestamps();
    log::set_max_level(inner.max_level());
    // Only fails if a logger is already set, which nothing else does.
    let _ = log::set_boxed_logger(Box::new(Guarded {
        inner,
        gone: AtomicBool::new(false),
    }));
}
