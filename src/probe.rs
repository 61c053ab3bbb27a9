//! Placeholder until the timed probe lands: same API, no timings.

use crate::report::{ErrorKind, Report};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub struct ProbeConfig {
    pub connect_timeout: Duration,
    pub timeout: Duration,
    pub follow_redirects: bool,
    pub ca_file: Option<PathBuf>,
}

pub struct Prober {
    agent: ureq::Agent,
}

impl Prober {
    pub fn new(cfg: &ProbeConfig) -> Result<Prober, String> {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(cfg.timeout))
            .http_status_as_error(false)
            .build()
            .new_agent();
        Ok(Prober { agent })
    }

    pub fn probe(&self, url: &str) -> Report {
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let mut r = Report {
            url: url.to_string(),
            timestamp: ts,
            ..Report::default()
        };
        match self.agent.get(url).call() {
            Ok(resp) => r.code = i32::from(resp.status().as_u16()),
            Err(e) => {
                r.error_kind = Some(ErrorKind::Io);
                r.error = Some(e.to_string());
            }
        }
        r
    }
}
