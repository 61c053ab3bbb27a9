//! Start-up steps the main thread can abandon: reading the targets file while
//! still answering SIGINT/SIGTERM, and the one-line summary of `--check`.

use crate::cli::Config;
use crate::pipeline::Loader;
use crate::redact;
use crate::shutdown::Event;
use crate::targets::{Target, TargetsError};
use crossbeam_channel::Receiver;

/// Reads the targets on a thread of its own. `None` when a stop signal came
/// first (the reading thread is left behind: it may be blocked on a FIFO).
pub fn load_targets(
    load: &Loader,
    events: &Receiver<Event>,
) -> Option<Result<Vec<Target>, TargetsError>> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    let reader = load.clone();
    let spawned = std::thread::Builder::new()
        .name("load".into())
        .spawn(move || {
            let _ = tx.send(reader());
        });
    if let Err(e) = spawned {
        log::warn!("cannot start a thread to read the targets: {e}; reading it here");
        return Some(load());
    }
    loop {
        crossbeam_channel::select! {
            recv(rx) -> result => return result.ok(),
            recv(events) -> event => match event {
                Ok(Event::Signal(_)) | Err(_) => return None,
                // SIGHUP while the file is being read for the first time: it
                // is being read already.
                Ok(_) => {}
            },
        }
    }
}

/// `--check`'s summary: what a run with these flags would probe and where the
/// records would go (credentials hidden).
pub fn summary(config: &Config, targets: &[Target]) -> String {
    let min = targets.iter().map(|t| t.interval).min().unwrap_or_default();
    let max = targets.iter().map(|t| t.interval).max().unwrap_or_default();
    let https = targets
        .iter()
        .filter(|t| t.url.request().starts_with("https://"))
        .count();
    let output = match &config.kafka {
        None => "JSON lines on stdout".to_string(),
        Some(k) => {
            let brokers = k.producer.config().bootstrap.join(",");
            let registry = k
                .schema_registry
                .as_ref()
                .map(|r| format!(", schema registry {r:?}"))
                .unwrap_or_default();
            format!(
                "Kafka {} topic {}{registry}",
                redact::value(&brokers),
                k.topic()
            )
        }
    };
    format!(
        "{}: OK, {} target(s) ({} http, {https} https), intervals {} s to {} s; \
         {} worker(s), queue {}, stop timeout {} s, flush timeout {} s; output: {output}",
        redact::value(&config.file.display().to_string()),
        targets.len(),
        targets.len() - https,
        min.as_secs_f64(),
        max.as_secs_f64(),
        config.workers,
        config.queue,
        config.stop_timeout.as_secs_f64(),
        config.flush_timeout.as_secs_f64(),
    )
}
