//! Panics contained: a bug met by one probe becomes that probe's record
//! (`error_kind` `internal`), not a dead prober.
//!
//! This module owns the panic hook and [`catch`]. The hook notes where a
//! panic happened (the payload alone has no location) in a thread-local, and
//! stays silent inside [`catch`], whose caller logs the panic once, with the
//! target's name. Outside [`catch`] (scheduler, writer threads) it logs one
//! line through `log` instead of std's default text, with the message cut
//! and escaped like every value quoted in a log.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::sync::OnceLock;

thread_local! {
    /// Inside `catch` on this thread: the hook only notes the location.
    static CONTAINED: Cell<bool> = const { Cell::new(false) };
    /// Where this thread last panicked (`file:line:column`).
    static LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Told of a panic outside [`catch`], with a sentence naming the thread.
type OnPanic = Box<dyn Fn(String) + Send + Sync>;
static ON_PANIC: OnceLock<OnPanic> = OnceLock::new();

/// `f` hears of every panic outside [`catch`] (the binary ends the run with
/// it: a thread that died is not a half-running service). Once; later calls
/// are ignored.
pub fn on_thread_panic(f: impl Fn(String) + Send + Sync + 'static) {
    let _ = ON_PANIC.set(Box::new(f));
}

/// A panic caught by [`catch`] or seen by an exit guard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caught {
    /// The panic's message, cut short and with control characters escaped.
    pub message: String,
    /// `file:line:column` in the source, when the hook saw it.
    pub location: Option<String>,
}

impl fmt::Display for Caught {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Some(at) => write!(f, "{} (at {at})", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// Longest panic message kept: enough for a slice-index message.
const MAX_MESSAGE: usize = 200;

/// Installs the hook (once, at start; the binary calls it).
pub fn install_hook() {
    panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
        let _ = LOCATION.try_with(|slot| {
            if let Ok(mut slot) = slot.try_borrow_mut() {
                slot.clone_from(&location);
            }
        });
        if CONTAINED.try_with(Cell::get).unwrap_or(false) {
            return;
        }
        let thread = std::thread::current();
        let caught = Caught {
            message: message(info.payload()),
            location,
        };
        let sentence = format!(
            "thread '{}' panicked (a bug): {caught}",
            thread.name().unwrap_or("unnamed")
        );
        log::error!("{sentence}");
        if let Some(f) = ON_PANIC.get() {
            f(sentence);
        }
    }));
}

/// Runs `f`, turning a panic into [`Caught`]. The caller must leave nothing
/// half-updated that it reads afterwards (its state is per call here).
pub fn catch<R>(f: impl FnOnce() -> R) -> Result<R, Caught> {
    let was = CONTAINED.try_with(|c| c.replace(true)).unwrap_or(false);
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    let _ = CONTAINED.try_with(|c| c.set(was));
    result.map_err(|payload| Caught {
        message: message(&*payload),
        location: last_location(),
    })
}

/// Test builds only (never in a release binary): panics when
/// `LATENCY_LOGGER_TEST_PANIC` names `place` (a probed host, or `@stdout`
/// for the stdout writer), so tests can show what a bug there does.
#[cfg(debug_assertions)]
#[track_caller]
pub fn forced(place: &str) {
    if std::env::var("LATENCY_LOGGER_TEST_PANIC").is_ok_and(|p| !p.is_empty() && p == place) {
        panic!("forced panic for a test (LATENCY_LOGGER_TEST_PANIC={place})");
    }
}

fn last_location() -> Option<String> {
    LOCATION
        .try_with(|slot| slot.try_borrow_mut().ok().and_then(|mut s| s.take()))
        .ok()
        .flatten()
}

/// The payload's text (`panic!` gives `&str` or `String`), cut and escaped.
fn message(payload: &(dyn Any + Send)) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)");
    let mut shown = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == MAX_MESSAGE {
            shown.push('…');
            break;
        }
        if c.is_control() {
            shown.extend(c.escape_default());
        } else {
            shown.push(c);
        }
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_is_caught_with_its_message_and_location() {
        install_hook();
        let caught =
            catch(|| -> u32 { panic!("bad byte \u{1b}[31m at {}", 7) }).expect_err("panicked");
        assert_eq!(caught.message, "bad byte \\u{1b}[31m at 7");
        let at = caught.location.as_deref().unwrap_or_default();
        assert!(at.starts_with("src/panics.rs:"), "{at}");
        assert_eq!(catch(|| 5), Ok(5));
        // Contained only inside catch.
        assert!(!CONTAINED.with(Cell::get));
    }
}
