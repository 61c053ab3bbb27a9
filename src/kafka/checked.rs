//! A producer configuration that passed every check a run makes before its
//! first socket: [`Checked`]. The flags build one (so `--check` rejects
//! exactly what a run rejects) and the producer takes only that, so nothing
//! downstream validates again.

use std::fmt;
use std::sync::Arc;

use rustls::ClientConfig;

use super::config::KafkaConfig;

/// A validated [`KafkaConfig`] with its TLS setup built from the files
/// (certificates read and parsed): built whole, never half-checked.
#[derive(Clone)]
pub struct Checked {
    config: KafkaConfig,
    tls: Option<Arc<ClientConfig>>,
}

impl fmt::Debug for Checked {
    // KafkaConfig's Debug hides the password; the TLS state is not shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Checked")
            .field("config", &self.config)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Checked {
    /// Validates `config` and reads its TLS files; the message says what to
    /// fix (a bad value, a missing password, an unreadable or bad PEM file).
    pub fn new(config: KafkaConfig) -> Result<Checked, String> {
        config.validate()?;
        let tls = super::conn::tls_config(&config).map_err(|e| e.message)?;
        Ok(Checked { config, tls })
    }

    pub fn config(&self) -> &KafkaConfig {
        &self.config
    }

    /// The TLS client setup when `security.protocol` uses TLS.
    pub fn tls(&self) -> Option<&Arc<ClientConfig>> {
        self.tls.as_ref()
    }

    /// The parts, for the producer thread to own.
    pub fn into_parts(self) -> (KafkaConfig, Option<Arc<ClientConfig>>) {
        (self.config, self.tls)
    }
}
