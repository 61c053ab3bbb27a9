//! latency-logger: wiring only — flags → config → threads → exit status.

use latency_logger::cli::{self, Command, Config};
use latency_logger::pipeline::{self, Outcome, Settings};
use latency_logger::probe::{ProbeConfig, Prober};
use latency_logger::shutdown::{self, Event};
use latency_logger::sink::kafka::{self, StartError};
use latency_logger::sink::stdout::{End, JsonLines, StdoutFile};
use latency_logger::sink::{Sink, Tee};
use latency_logger::{logging, startup, targets};
use std::process::ExitCode;
use std::sync::Arc;

/// Static (musl) builds only: musl's malloc unmaps freed blocks at once and
/// takes one lock for all threads; see Cargo.toml and docs/benchmarks-history.md (issue 12).
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOC: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

/// Exit status for bad flags or a bad targets file.
const USAGE_ERROR: u8 = 2;

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(Failure::Usage(msg)) => {
            say(&msg);
            ExitCode::from(USAGE_ERROR)
        }
        Err(Failure::Runtime(msg)) => {
            say(&msg);
            ExitCode::FAILURE
        }
    }
}

/// The last word on stderr; a closed stderr must not turn the status into a panic.
fn say(msg: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "latency-logger: {msg}");
}

enum Failure {
    /// Nothing started: exit 2.
    Usage(String),
    /// Failed while running: exit 1.
    Runtime(String),
}

fn run() -> Result<ExitCode, Failure> {
    let low = cli::parse_low(std::env::args_os().skip(1))
        .map_err(|e| Failure::Usage(format!("{e}\n{}", cli::usage())))?;
    let (config, check) = match cli::to_config(low, std::env::var(cli::PASSWORD_ENV).ok()) {
        Ok(Command::Help) => return print(&cli::help()),
        Ok(Command::Version) => {
            return print(&format!(
                "latency-logger {} ({})\n",
                env!("CARGO_PKG_VERSION"),
                env!("LATENCY_LOGGER_GIT_COMMIT")
            ));
        }
        Ok(Command::Run(c)) => (*c, false),
        Ok(Command::Check(c)) => (*c, true),
        Err(e) => return Err(Failure::Usage(format!("{e}\n{}", cli::usage()))),
    };
    logging::init(config.verbose);
    latency_logger::panics::install_hook();
    // Signals first: a stop during start-up (a huge targets file, a FIFO
    // without a writer, a registry that does not answer) is a stop like any other.
    let (events_tx, events) = crossbeam_channel::unbounded::<Event>();
    let panics_tx = events_tx.clone();
    latency_logger::panics::on_thread_panic(move |sentence| {
        let _ = panics_tx.send(Event::ThreadPanicked(sentence));
    });
    shutdown::watch_signals(events_tx.clone())
        .map_err(|e| Failure::Runtime(format!("cannot install signal handlers: {e}")))?;
    let (file, defaults) = (config.file.clone(), config.defaults.clone());
    let load: pipeline::Loader = Arc::new(move || targets::load(&file, &defaults));
    let Some(loaded) = startup::load_targets(&load, &events) else {
        log::info!("stopped during start-up");
        return Ok(ExitCode::SUCCESS);
    };
    let targets = loaded.map_err(|e| Failure::Usage(e.to_string()))?;
    let prober = Prober::new(&ProbeConfig {
        connect_timeout: config.connect_timeout,
        timeout: config.timeout,
        follow_redirects: config.follow_redirects,
        ca_file: config.cacert.clone(),
    })
    .map_err(Failure::Usage)?;
    if check {
        return print(&format!("{}\n", startup::summary(&config, &targets)));
    }

    let sink = make_sink(&config, &events_tx)?;
    let sink: Arc<dyn Sink> = Arc::new(latency_logger::sink::Counted::new(
        sink,
        config.stats_interval,
    ));
    let settings = Settings {
        workers: config.workers,
        queue: config.queue,
        splay: config.splay,
        stop_timeout: config.stop_timeout,
        cert_warn_days: config.cert_warn_days,
        identity: latency_logger::record::Identity {
            source: config.source.as_str().into(),
            labels: config.labels.clone().into(),
        },
    };
    match pipeline::run(targets, prober, sink, &settings, load, &events_tx, &events) {
        Ok(Outcome::Stopped) => Ok(ExitCode::SUCCESS),
        Ok(Outcome::Failed(msg)) => Err(Failure::Runtime(msg)),
        Err(e) => Err(Failure::Runtime(format!("cannot start threads: {e}"))),
    }
}

/// Kafka when `-B` was given, stdout JSON lines otherwise.
fn make_sink(
    config: &Config,
    events_tx: &crossbeam_channel::Sender<Event>,
) -> Result<Arc<dyn Sink>, Failure> {
    let events_out = events_tx.clone();
    let stdout = move || -> Result<Arc<dyn Sink>, Failure> {
        let on_end = Box::new(move |end| {
            let _ = events_out.send(match end {
                End::ReaderGone => Event::OutputClosed,
                End::Failed(e) => Event::SinkFailed(e),
            });
        });
        let out =
            StdoutFile::open().map_err(|e| Failure::Runtime(format!("cannot use stdout: {e}")))?;
        let sink = JsonLines::start(out, config.buffer, config.flush_timeout, on_end)
            .map_err(|e| Failure::Runtime(format!("cannot start the stdout writer: {e}")))?;
        Ok(Arc::new(sink))
    };
    if let Some(args) = &config.kafka {
        return match kafka::start(args) {
            Ok(sink) if args.also_stdout => Ok(Arc::new(Tee(Arc::new(sink), stdout()?))),
            Ok(sink) => Ok(Arc::new(sink)),
            Err(StartError::Config(e)) => Err(Failure::Usage(e)),
            Err(StartError::Runtime(e)) => Err(Failure::Runtime(e)),
        };
    }
    stdout()
}

/// Prints help or version; a closed stdout is not an error.
fn print(text: &str) -> Result<ExitCode, Failure> {
    use std::io::Write;
    let _ = std::io::stdout().write_all(text.as_bytes());
    Ok(ExitCode::SUCCESS)
}
