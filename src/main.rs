//! latency-logger: wiring only — flags → config → threads → exit status.

use latency_logger::cli::{self, Command, Config};
use latency_logger::pipeline::{self, Outcome, Settings};
use latency_logger::probe::{ProbeConfig, Prober};
use latency_logger::shutdown::{self, Event};
use latency_logger::sink::kafka::{self, StartError};
use latency_logger::sink::{Sink, Tee, stdout::JsonLines};
use latency_logger::targets;
use std::process::ExitCode;
use std::sync::Arc;

/// Static (musl) builds only: musl's malloc unmaps freed blocks at once and
/// takes one lock for all threads; see Cargo.toml and BENCHMARKS.md (issue 12).
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOC: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

/// Exit status for bad flags or a bad targets file.
const USAGE_ERROR: u8 = 2;

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(Failure::Usage(msg)) => {
            eprintln!("latency-logger: {msg}");
            ExitCode::from(USAGE_ERROR)
        }
        Err(Failure::Runtime(msg)) => {
            eprintln!("latency-logger: {msg}");
            ExitCode::FAILURE
        }
    }
}

enum Failure {
    /// Nothing started: exit 2.
    Usage(String),
    /// Failed while running: exit 1.
    Runtime(String),
}

fn run() -> Result<ExitCode, Failure> {
    let low = cli::parse_low(std::env::args_os().skip(1))
        .map_err(|e| Failure::Usage(format!("{e}\n{}", cli::USAGE)))?;
    let config = match cli::to_config(low, std::env::var(cli::PASSWORD_ENV).ok()) {
        Ok(Command::Help) => return print(&cli::help()),
        Ok(Command::Version) => {
            return print(&format!("latency-logger {}\n", env!("CARGO_PKG_VERSION")));
        }
        Ok(Command::Run(c)) => *c,
        Err(e) => return Err(Failure::Usage(format!("{e}\n{}", cli::USAGE))),
    };
    init_logging(config.verbose);
    let targets = targets::load(&config.file).map_err(|e| Failure::Usage(e.to_string()))?;
    let prober = Prober::new(&ProbeConfig {
        connect_timeout: config.connect_timeout,
        timeout: config.timeout,
        follow_redirects: config.follow_redirects,
        ca_file: config.cacert.clone(),
    })
    .map_err(Failure::Usage)?;

    let (events_tx, events) = crossbeam_channel::unbounded::<Event>();
    shutdown::watch_signals(events_tx.clone())
        .map_err(|e| Failure::Runtime(format!("cannot install signal handlers: {e}")))?;
    let Some(sink) = make_sink(&config, &events_tx, &events)? else {
        return Ok(ExitCode::SUCCESS);
    };
    let settings = Settings {
        workers: config.workers,
        queue: config.queue,
        splay: config.splay,
    };
    match pipeline::run(targets, prober, sink, &settings, &events_tx, &events) {
        Ok(Outcome::Stopped) => Ok(ExitCode::SUCCESS),
        Ok(Outcome::Failed(msg)) => Err(Failure::Runtime(msg)),
        Err(e) => Err(Failure::Runtime(format!("cannot start threads: {e}"))),
    }
}

/// Kafka when `-B` was given, stdout JSON lines otherwise. `Ok(None)`: a
/// signal arrived while waiting for the schema registry.
fn make_sink(
    config: &Config,
    events_tx: &crossbeam_channel::Sender<Event>,
    events: &crossbeam_channel::Receiver<Event>,
) -> Result<Option<Arc<dyn Sink>>, Failure> {
    let events_out = events_tx.clone();
    let stdout = move || -> Arc<dyn Sink> {
        let on_closed = Box::new(move || {
            let _ = events_out.send(Event::OutputClosed);
        });
        Arc::new(JsonLines::new(std::io::stdout(), on_closed))
    };
    if let Some(args) = &config.kafka {
        // Waiting for the registry doubles as listening for a stop signal.
        let keep_waiting = |delay| {
            matches!(
                events.recv_timeout(delay),
                Err(crossbeam_channel::RecvTimeoutError::Timeout)
            )
        };
        return match kafka::start(args, keep_waiting) {
            Ok(sink) if args.also_stdout => Ok(Some(Arc::new(Tee(Arc::new(sink), stdout())))),
            Ok(sink) => Ok(Some(Arc::new(sink))),
            Err(StartError::Config(e)) => Err(Failure::Usage(e)),
            Err(StartError::Runtime(e)) => Err(Failure::Runtime(e)),
            Err(StartError::Interrupted) => Ok(None),
        };
    }
    Ok(Some(stdout()))
}

/// Prints help or version; a closed stdout is not an error.
fn print(text: &str) -> Result<ExitCode, Failure> {
    use std::io::Write;
    let _ = std::io::stdout().write_all(text.as_bytes());
    Ok(ExitCode::SUCCESS)
}

fn init_logging(verbose: u8) {
    let level = match verbose {
        // Info by default: start-up and shutdown summaries (records delivered or
        // not) are what an operator reads in the service log.
        0 => log::LevelFilter::Info,
        1 => log::LevelFilter::Debug,
        _ => log::LevelFilter::Trace,
    };
    // Only fails if a logger is already set, which nothing else does.
    let _ = simple_logger::SimpleLogger::new()
        .with_level(log::LevelFilter::Warn)
        .with_module_level("latency_logger", level)
        .with_utc_timestamps()
        .init();
}
