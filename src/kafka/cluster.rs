//! The cluster as the producer sees it: one connection per broker address
//! (opened on demand, dropped on failure), the topic's metadata (leaders,
//! refreshed when stale or old), the start-up check (topic exists or is
//! created, partitions known), and the idempotent producer id
//! (InitProducerId, with backoff). Broker calls go through
//! `protocol::Request`, so broker error codes arrive typed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;
use log::{debug, info, warn};
use rustls::ClientConfig;

use super::config::KafkaConfig;
use super::conn::Conn;
use super::protocol::{self, ClusterMeta, ErrorClass, ProducerIdentity, classify, error_name};
use super::{ErrorKind, KafkaError};

/// Metadata is refreshed at least this often (as the Java client's
/// metadata.max.age.ms), so added partitions and moved leaders are seen.
const METADATA_MAX_AGE: Duration = Duration::from_secs(300);

pub struct Cluster {
    cfg: Arc<KafkaConfig>,
    tls: Option<Arc<ClientConfig>>,
    conns: HashMap<String, Conn>,
    meta: ClusterMeta,
    meta_stale: bool,
    meta_at: Instant,
    meta_failures: u32,
    next_meta_at: Instant,
    /// Decided by the start-up check: wanted, and a broker offers it.
    idempotent: bool,
    pid: ProducerIdentity,
    pid_failures: u32,
    next_pid_at: Instant,
}

impl Cluster {
    /// No connection yet: the first call opens one.
    pub fn new(cfg: Arc<KafkaConfig>, tls: Option<Arc<ClientConfig>>, now: Instant) -> Self {
        Cluster {
            cfg,
            tls,
            conns: HashMap::new(),
            meta: ClusterMeta {
                brokers: Vec::new(),
                topic_error: None,
                partitions: Vec::new(),
            },
            meta_stale: true,
            meta_at: now,
            meta_failures: 0,
            next_meta_at: now,
            idempotent: false,
            pid: ProducerIdentity::NONE,
            pid_failures: 0,
            next_pid_at: now,
        }
    }

    pub fn io_timeout(&self) -> Duration {
        // The broker answers a Produce within timeout_ms; leave it a margin.
        self.cfg.request_timeout + Duration::from_secs(2)
    }

    /// Opens (or reuses) a connection to `addr`.
    pub fn conn(&mut self, addr: &str, timeout: Duration) -> Result<&mut Conn, KafkaError> {
        if !self.conns.contains_key(addr) {
            let c = Conn::open(addr, &self.cfg, self.tls.as_ref(), timeout)?;
            debug!("Kafka: connected to {addr}");
            self.conns.insert(addr.to_string(), c);
        }
        let c = self.conns.get_mut(addr).ok_or_else(|| {
            KafkaError::new(ErrorKind::Network, format!("connection to {addr} vanished"))
        })?;
        c.set_timeout(timeout);
        Ok(c)
    }

    /// The open connection to `addr`, if any (to read a pipelined reply).
    pub fn open_conn(&mut self, addr: &str) -> Option<&mut Conn> {
        self.conns.get_mut(addr)
    }

    /// Forgets a connection that failed.
    pub fn drop_conn(&mut self, addr: &str) {
        self.conns.remove(addr);
    }

    pub fn drop_all_conns(&mut self) {
        self.conns.clear();
    }

    /// Brokers to ask for metadata: open connections, known brokers, bootstrap.
    fn candidates(&self) -> Vec<String> {
        let mut v: Vec<String> = self.conns.keys().cloned().collect();
        for b in &self.meta.brokers {
            if !v.contains(&b.addr) {
                v.push(b.addr.clone());
            }
        }
        for b in &self.cfg.bootstrap {
            if !v.contains(b) {
                v.push(b.clone());
            }
        }
        v
    }

    fn fetch_metadata(
        &mut self,
        allow_auto_create: bool,
        timeout: Duration,
    ) -> Result<ClusterMeta, KafkaError> {
        let mut errors: Vec<KafkaError> = Vec::new();
        for addr in self.candidates() {
            let topic = self.cfg.topic.clone();
            let result = self.conn(&addr, timeout).and_then(|c| {
                let v = c.versions.metadata;
                let resp = c.call(&protocol::metadata_request(&topic, allow_auto_create, v))?;
                protocol::parse_metadata(&resp, &topic)
                    .map_err(|e| KafkaError::from(e).at_broker(&addr))
            });
            match result {
                Ok(m) => return Ok(m),
                Err(e) => {
                    self.conns.remove(&addr);
                    // Credentials and certificates fail the same way on every
                    // broker: no point hiding them behind a network error.
                    if !e.is_transient() {
                        return Err(e);
                    }
                    errors.push(e);
                }
            }
        }
        let msg = errors
            .iter()
            .map(|e| e.message.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        // Something that answers with bytes that are not Kafka (a wrong
        // port) is no outage: say so as a protocol error.
        let kind = if errors.iter().any(|e| e.kind == ErrorKind::Protocol) {
            ErrorKind::Protocol
        } else {
            ErrorKind::Network
        };
        Err(KafkaError::new(
            kind,
            format!("no Kafka broker reachable: {msg}"),
        ))
    }

    /// The start-up check: the topic exists (or is created), its partitions
    /// are known, and, when wanted, the producer id is asked for.
    pub fn startup_check(&mut self) -> Result<(), KafkaError> {
        let timeout = self.cfg.request_timeout;
        let mut meta = self.fetch_metadata(false, timeout)?;
        if meta.topic_error == Some(ResponseError::UnknownTopicOrPartition) {
            if !self.cfg.create_topic {
                return Err(KafkaError::new(
                    ErrorKind::Topic,
                    format!(
                        "Kafka topic {} does not exist (brokers: {}); create it, or allow creating it",
                        self.cfg.topic,
                        self.cfg.bootstrap.join(",")
                    ),
                ));
            }
            meta = self.create_topic()?;
        }
        match meta.topic_error {
            None | Some(ResponseError::LeaderNotAvailable) => {}
            Some(e) => {
                let kind = if classify(e) == ErrorClass::Retriable {
                    ErrorKind::Busy
                } else {
                    ErrorKind::Topic
                };
                return Err(KafkaError::new(
                    kind,
                    format!("Kafka topic {}: {}", self.cfg.topic, error_name(e)),
                ));
            }
        }
        if meta.partitions.is_empty() {
            return Err(KafkaError::new(
                ErrorKind::Topic,
                format!("Kafka topic {} has no partitions yet", self.cfg.topic),
            ));
        }
        info!(
            "Kafka: topic {} has {} partitions on {} brokers",
            self.cfg.topic,
            meta.partitions.len(),
            meta.brokers.len()
        );
        self.apply_metadata(meta);

        if self.cfg.wants_idempotence() {
            self.idempotent = self
                .conns
                .values()
                .any(|c| c.versions.init_producer_id.is_some());
            if self.idempotent {
                if let Err(e) = self.init_producer_id() {
                    if !e.is_transient() {
                        warn!(
                            "Kafka: idempotent producer not available ({e}); continuing without it"
                        );
                        self.idempotent = false;
                    } else {
                        warn!("Kafka: could not get a producer id yet ({e}); will retry");
                    }
                }
            } else {
                info!("Kafka: broker does not support idempotent producers; retries may duplicate");
            }
        }
        Ok(())
    }

    fn create_topic(&mut self) -> Result<ClusterMeta, KafkaError> {
        let timeout = self.cfg.request_timeout;
        let topic = self.cfg.topic.clone();
        let parts = self.cfg.create_topic_partitions;
        let tmo = timeout.as_millis().min(i32::MAX as u128) as i32;
        let addr = self.candidates().into_iter().next().unwrap_or_default();
        let conn = self.conn(&addr, timeout)?;
        if conn.versions.create_topics.is_some() {
            match conn.call(&protocol::create_topics_request(&topic, parts, tmo)) {
                Ok(_) => info!("Kafka: created topic {topic}"),
                // NOT_CONTROLLER (old ZooKeeper clusters): fall back to
                // auto-creation through Metadata below.
                Err(e) if e.broker_error() == Some(ResponseError::NotController) => {}
                Err(KafkaError {
                    broker: Some(b), ..
                }) => {
                    let detail = b.detail.map(|d| format!(": {d}")).unwrap_or_default();
                    return Err(KafkaError::new(
                        ErrorKind::Topic,
                        format!(
                            "could not create topic {topic}: {}{detail}",
                            error_name(b.error)
                        ),
                    ));
                }
                Err(e) => return Err(e),
            }
        } else {
            debug!("Kafka: no CreateTopics; relying on auto-creation");
        }
        let deadline = Instant::now() + timeout;
        loop {
            let m = self.fetch_metadata(true, timeout)?;
            if m.topic_error.is_none()
                && !m.partitions.is_empty()
                && m.partitions.iter().all(|p| p.leader >= 0)
            {
                return Ok(m);
            }
            if Instant::now() >= deadline {
                return Err(KafkaError::new(
                    ErrorKind::Topic,
                    format!(
                        "Kafka topic {topic} was not ready within {:?}: {}",
                        timeout,
                        m.topic_error
                            .map_or_else(|| "no leader yet".into(), error_name)
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn apply_metadata(&mut self, meta: ClusterMeta) {
        let healthy = meta.topic_error.is_none() && meta.partitions.iter().all(|p| p.leader >= 0);
        self.meta = meta;
        self.meta_at = Instant::now();
        self.meta_stale = !healthy;
        if healthy {
            self.meta_failures = 0;
        } else {
            self.meta_failures += 1;
            self.next_meta_at = Instant::now() + self.cfg.backoff(self.meta_failures);
        }
    }

    /// The topic's partition count as last seen.
    pub fn partitions(&self) -> usize {
        self.meta.partitions.len()
    }

    pub fn leader_addr(&self, partition: usize) -> Option<String> {
        let p = self.meta.partitions.get(partition)?;
        if p.leader < 0 {
            return None;
        }
        self.meta
            .brokers
            .iter()
            .find(|b| b.id == p.leader)
            .map(|b| b.addr.clone())
    }

    /// Metadata must be fetched again (a leader moved, a send failed).
    pub fn mark_stale(&mut self) {
        self.meta_stale = true;
    }

    pub fn meta_stale(&self) -> bool {
        self.meta_stale
    }

    pub fn next_meta_at(&self) -> Instant {
        self.next_meta_at
    }

    /// Marks old metadata stale; true when a refresh is due now.
    pub fn refresh_due(&mut self, now: Instant) -> bool {
        if !self.meta_stale && now.duration_since(self.meta_at) >= METADATA_MAX_AGE {
            self.meta_stale = true;
        }
        self.meta_stale && now >= self.next_meta_at
    }

    /// Fetches metadata; Ok(true) when it is healthy (every partition has
    /// a leader). A failure backs off the next try.
    pub fn refresh_metadata(&mut self, timeout: Duration) -> Result<bool, KafkaError> {
        match self.fetch_metadata(false, timeout) {
            Ok(m) => {
                if let Some(e) = m.topic_error {
                    warn!("Kafka topic {}: {}", self.cfg.topic, error_name(e));
                }
                self.apply_metadata(m);
                Ok(!self.meta_stale)
            }
            Err(e) => {
                self.meta_failures += 1;
                self.next_meta_at = Instant::now() + self.cfg.backoff(self.meta_failures);
                Err(e)
            }
        }
    }

    pub fn idempotent(&self) -> bool {
        self.idempotent
    }

    /// The identity to stamp batches with: `NONE` when not idempotent.
    pub fn stamp(&self) -> ProducerIdentity {
        if self.idempotent {
            self.pid
        } else {
            ProducerIdentity::NONE
        }
    }

    /// Without a producer id an idempotent producer cannot seal batches.
    pub fn can_seal(&self) -> bool {
        !self.idempotent || self.pid.is_some()
    }

    pub fn next_pid_at(&self) -> Instant {
        self.next_pid_at
    }

    /// Whether to ask for a producer id now.
    pub fn pid_due(&self, now: Instant) -> bool {
        self.idempotent && !self.pid.is_some() && now >= self.next_pid_at
    }

    /// The broker no longer knows our id or sequences: get a new one.
    pub fn reset_pid(&mut self, now: Instant) {
        self.pid = ProducerIdentity::NONE;
        self.next_pid_at = now;
    }

    /// A broker refused producer ids for good: continue without.
    pub fn give_up_idempotence(&mut self) {
        self.idempotent = false;
        self.pid = ProducerIdentity::NONE;
    }

    /// Asks any broker for a producer id; on failure backs off the next try.
    pub fn init_producer_id(&mut self) -> Result<ProducerIdentity, KafkaError> {
        let timeout = self.io_timeout();
        let tmo = self.cfg.request_timeout.as_millis().min(i32::MAX as u128) as i32;
        let mut last = None;
        for addr in self.candidates() {
            let r = self
                .conn(&addr, timeout)
                .and_then(|c| c.call(&protocol::init_producer_id_request(tmo)));
            match r {
                Ok(resp) => {
                    let (id, epoch) = (resp.producer_id.0, resp.producer_epoch);
                    self.pid = ProducerIdentity { id, epoch };
                    self.pid_failures = 0;
                    info!("Kafka: idempotent producer id {id} epoch {epoch}");
                    return Ok(self.pid);
                }
                // The broker answered (busy): keep the connection.
                Err(e) if e.kind == ErrorKind::Busy => last = Some(e),
                Err(e) if e.is_transient() => {
                    self.conns.remove(&addr);
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        self.pid_failures += 1;
        self.next_pid_at = Instant::now() + self.cfg.backoff(self.pid_failures);
        Err(last.unwrap_or_else(|| {
            KafkaError::new(ErrorKind::Network, "no broker for InitProducerId".into())
        }))
    }
}
