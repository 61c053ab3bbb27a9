//! The default sink: one JSON object per line on stdout, flushed per record so
//! a reader (or `| head`) sees each probe as it happens.

use super::Sink;
use crate::report::Report;
use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Writes JSON lines to any writer (stdout in production, a buffer in tests).
pub struct JsonLines<W: Write + Send> {
    out: Mutex<W>,
    written: AtomicU64,
    closed: AtomicBool,
    /// Called once when the reader goes away (EPIPE), so the process can stop.
    on_closed: Box<dyn Fn() + Send + Sync>,
}

impl<W: Write + Send> JsonLines<W> {
    pub fn new(out: W, on_closed: Box<dyn Fn() + Send + Sync>) -> JsonLines<W> {
        JsonLines {
            out: Mutex::new(out),
            written: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            on_closed,
        }
    }

    fn fail(&self, e: &std::io::Error) {
        if !self.closed.swap(true, Ordering::SeqCst) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                log::debug!("stdout closed by its reader; stopping");
            } else {
                log::error!("cannot write to stdout: {e}; stopping");
            }
            (self.on_closed)();
        }
    }
}

impl<W: Write + Send> Sink for JsonLines<W> {
    fn emit(&self, report: Report) {
        if self.closed.load(Ordering::Relaxed) {
            return;
        }
        let mut line = Vec::with_capacity(512);
        report.write_json_line(&mut line);
        // A poisoned lock only means another writer panicked mid-line; keep writing.
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        // One write_all per line under the lock: lines never interleave.
        let result = out.write_all(&line).and_then(|()| out.flush());
        drop(out);
        match result {
            Ok(()) => {
                self.written.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => self.fail(&e),
        }
    }

    fn close(&self) -> Result<String, String> {
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = out.flush()
            && e.kind() != std::io::ErrorKind::BrokenPipe
        {
            return Err(format!("cannot flush stdout: {e}"));
        }
        Ok(format!(
            "{} reports written to stdout",
            self.written.load(Ordering::Relaxed)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    struct Broken;
    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn writes_one_line_per_report() {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = JsonLines::new(Shared(buf.clone()), Box::new(|| {}));
        for i in 0..3 {
            sink.emit(Report {
                url: format!("http://a.test/{i}"),
                ..Report::default()
            });
        }
        assert_eq!(sink.close(), Ok("3 reports written to stdout".to_string()));
        let text = String::from_utf8(buf.lock().expect("lock").clone()).expect("utf8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        for (i, l) in lines.iter().enumerate() {
            let v: serde_json::Value = serde_json::from_str(l).expect("json");
            assert_eq!(v["url"], format!("http://a.test/{i}"));
        }
    }

    #[test]
    fn broken_pipe_calls_back_once() {
        let calls = Arc::new(AtomicU64::new(0));
        let c = calls.clone();
        let sink = JsonLines::new(
            Broken,
            Box::new(move || {
                c.fetch_add(1, Ordering::SeqCst);
            }),
        );
        sink.emit(Report::default());
        sink.emit(Report::default());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
