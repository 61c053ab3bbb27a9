//! The thin I/O layer: one connection to one broker. TCP connect with a
//! timeout, optional TLS (rustls), request/response framing with timeouts,
//! the SASL handshake and ApiVersions negotiation. Everything it decides is
//! delegated to the sans-IO modules (`protocol`, `sasl`); errors name the
//! broker and the phase that failed.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::{Decodable, Encodable};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use super::config::{KafkaConfig, SaslMechanism};
use super::protocol::{self, ProtocolError, Request, Versions};
use super::sasl;
use super::{ErrorKind, KafkaError};

/// Builds the rustls client config once (CA file or webpki roots; client
/// certificate for mTLS). Errors name the file.
pub fn tls_config(cfg: &KafkaConfig) -> Result<Option<Arc<ClientConfig>>, KafkaError> {
    if !cfg.security_protocol.uses_tls() {
        return Ok(None);
    }
    let cerr = |m: String| KafkaError::new(ErrorKind::Config, m);
    let mut roots = RootCertStore::empty();
    match &cfg.tls.ca_file {
        Some(path) => {
            let iter = CertificateDer::pem_file_iter(path)
                .map_err(|e| cerr(format!("ssl.ca.location {}: {e}", path.display())))?;
            for c in iter {
                let c = c.map_err(|e| cerr(format!("ssl.ca.location {}: {e}", path.display())))?;
                roots.add(c).map_err(|e| {
                    cerr(format!(
                        "ssl.ca.location {}: unusable certificate: {e}",
                        path.display()
                    ))
                })?;
            }
            if roots.is_empty() {
                return Err(cerr(format!(
                    "ssl.ca.location {}: no certificates found",
                    path.display()
                )));
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| cerr(format!("TLS setup: {e}")))?
        .with_root_certificates(roots);
    let config = match (&cfg.tls.cert_file, &cfg.tls.key_file) {
        (Some(cert), Some(key)) => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
                .map_err(|e| cerr(format!("ssl.certificate.location {}: {e}", cert.display())))?
                .collect::<Result<_, _>>()
                .map_err(|e| cerr(format!("ssl.certificate.location {}: {e}", cert.display())))?;
            if chain.is_empty() {
                return Err(cerr(format!(
                    "ssl.certificate.location {}: no certificates found",
                    cert.display()
                )));
            }
            let key_der = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| cerr(format!("ssl.key.location {}: {e}", key.display())))?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| cerr(format!("client certificate/key do not fit: {e}")))?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Some(Arc::new(config)))
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => &s.sock,
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

fn tls_error(e: &io::Error) -> Option<&rustls::Error> {
    e.get_ref()?.downcast_ref::<rustls::Error>()
}

/// TLS failures are not transient network trouble: say so in the kind.
fn io_kind(e: &io::Error) -> ErrorKind {
    if tls_error(e).is_some() {
        ErrorKind::Tls
    } else {
        ErrorKind::Network
    }
}

/// rustls reports its errors inside io::Error; unwrap them so the message
/// reads "invalid peer certificate: UnknownIssuer" rather than an I/O kind.
fn io_detail(e: &io::Error) -> String {
    if let Some(tls) = tls_error(e) {
        return tls.to_string();
    }
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => "timed out".into(),
        io::ErrorKind::UnexpectedEof => "connection closed by the broker".into(),
        _ => e.to_string(),
    }
}

/// One authenticated connection with negotiated API versions.
pub struct Conn {
    addr: String,
    stream: Stream,
    client_id: String,
    next_correlation: i32,
    pub versions: Versions,
    /// Correlation ids of requests written but not yet read, in order.
    pending: std::collections::VecDeque<(i32, ApiKey, i16)>,
    /// Request bytes written (frames incl. size prefix), for statistics.
    bytes_written: u64,
    frames_read: u64,
    authenticated: bool,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// `e` with `password` hidden in its message and in the broker's words.
fn hide_password(mut e: KafkaError, password: &str) -> KafkaError {
    e.message = crate::redact::hiding(&e.message, password).into_owned();
    if let Some(d) = e.broker.as_mut().and_then(|b| b.detail.as_mut()) {
        *d = crate::redact::hiding(d, password).into_owned();
    }
    e
}

fn resolve(addr: &str) -> Result<Vec<SocketAddr>, KafkaError> {
    let addrs: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .map_err(|e| {
            KafkaError::new(
                ErrorKind::Network,
                format!("cannot resolve broker {addr}: {e}"),
            )
        })?
        .collect();
    if addrs.is_empty() {
        return Err(KafkaError::new(
            ErrorKind::Network,
            format!("broker {addr} resolved to no address"),
        ));
    }
    Ok(addrs)
}

impl Conn {
    /// Connects, does TLS and SASL as configured, then ApiVersions.
    /// `timeout` bounds each phase.
    pub fn open(
        addr: &str,
        cfg: &KafkaConfig,
        tls: Option<&Arc<ClientConfig>>,
        timeout: Duration,
    ) -> Result<Conn, KafkaError> {
        let timeout = timeout.max(Duration::from_millis(10));
        let net = |m: String| KafkaError::new(ErrorKind::Network, m);

        let mut last = None;
        let mut tcp = None;
        for sa in resolve(addr)? {
            match TcpStream::connect_timeout(&sa, timeout) {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let tcp = match tcp {
            Some(t) => t,
            None => {
                let why = last.map(|e| io_detail(&e)).unwrap_or_default();
                return Err(net(format!("cannot connect to broker {addr}: {why}")));
            }
        };
        let _ = tcp.set_nodelay(true);
        tcp.set_read_timeout(Some(timeout))
            .and_then(|_| tcp.set_write_timeout(Some(timeout)))
            .map_err(|e| net(format!("socket setup for {addr}: {e}")))?;

        let stream = match tls {
            None => Stream::Plain(tcp),
            Some(tls_cfg) => {
                let host = addr.rsplit_once(':').map(|(h, _)| h).unwrap_or(addr);
                let host = host.trim_start_matches('[').trim_end_matches(']');
                let name = ServerName::try_from(host.to_string()).map_err(|e| {
                    KafkaError::new(
                        ErrorKind::Tls,
                        format!("TLS: bad server name {host:?}: {e}"),
                    )
                })?;
                let mut conn = ClientConnection::new(tls_cfg.clone(), name).map_err(|e| {
                    KafkaError::new(ErrorKind::Tls, format!("TLS setup for {addr}: {e}"))
                })?;
                let mut tcp = tcp;
                // Drive the handshake here so that its failures are named
                // as such instead of surfacing in the first request.
                while conn.is_handshaking() {
                    if let Err(e) = conn.complete_io(&mut tcp) {
                        return Err(KafkaError::new(
                            ErrorKind::Tls,
                            format!("TLS handshake with {addr} failed: {}", io_detail(&e)),
                        ));
                    }
                }
                Stream::Tls(Box::new(StreamOwned::new(conn, tcp)))
            }
        };

        let mut c = Conn {
            addr: addr.to_string(),
            stream,
            client_id: cfg.client_id.clone(),
            next_correlation: 1,
            // Only ApiVersions is used until negotiation replaces this.
            versions: Versions {
                produce: 3,
                metadata: 1,
                init_producer_id: None,
                sasl_handshake: None,
                sasl_authenticate: None,
                create_topics: None,
            },
            pending: Default::default(),
            bytes_written: 0,
            frames_read: 0,
            authenticated: false,
        };
        c.negotiate()?;
        if cfg.security_protocol.uses_sasl()
            && let Some(s) = &cfg.sasl
        {
            // A broker's reply may echo what it was sent: never the password.
            c.authenticate(s.mechanism, &s.username, &s.password)
                .map_err(|e| hide_password(e, &s.password))?;
            c.authenticated = true;
        }
        Ok(c)
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sets the read/write timeout for the next requests.
    pub fn set_timeout(&self, t: Duration) {
        let t = Some(t.max(Duration::from_millis(10)));
        let s = self.stream.tcp();
        let _ = s.set_read_timeout(t);
        let _ = s.set_write_timeout(t);
    }

    fn negotiate(&mut self) -> Result<(), KafkaError> {
        let mut version = protocol::API_VERSIONS_FIRST;
        loop {
            let req = protocol::api_versions_request(version);
            let corr = self.write_request(ApiKey::ApiVersions, version, &req, "ApiVersions")?;
            let frame = self.read_frame("ApiVersions")?;
            self.pending.pop_front();
            match protocol::decode_api_versions(version, corr, frame) {
                Ok(protocol::ApiVersionsReply::Ranges(keys)) => {
                    self.versions = protocol::negotiate(&keys).map_err(|e| {
                        KafkaError::new(
                            ErrorKind::Unsupported,
                            format!("broker {}: {e}", self.addr),
                        )
                    })?;
                    return Ok(());
                }
                Ok(protocol::ApiVersionsReply::UnsupportedVersion) if version > 0 => version = 0,
                Ok(protocol::ApiVersionsReply::UnsupportedVersion) => {
                    return Err(self.proto_err(ProtocolError(
                        "ApiVersions: broker rejected version 0".into(),
                    )));
                }
                Err(e) => return Err(self.proto_err(e)),
            }
        }
    }

    fn authenticate(
        &mut self,
        mechanism: SaslMechanism,
        user: &str,
        password: &str,
    ) -> Result<(), KafkaError> {
        let auth_err = |m: String| {
            KafkaError::new(
                ErrorKind::Auth,
                format!(
                    "SASL authentication failed for user {}: {m}",
                    crate::redact::value(user)
                ),
            )
        };
        let hv = self.versions.sasl_handshake.ok_or_else(|| {
            KafkaError::new(
                ErrorKind::Unsupported,
                format!("broker {} does not support SASL handshakes", self.addr),
            )
        })?;
        // SaslAuthenticate framing (Kafka ≥ 1.0) needs handshake v1.
        let av = match (hv, self.versions.sasl_authenticate) {
            (1, Some(v)) => v,
            _ => {
                return Err(KafkaError::new(
                    ErrorKind::Unsupported,
                    format!(
                        "broker {} is too old for SaslAuthenticate (Kafka 1.0+ needed)",
                        self.addr
                    ),
                ));
            }
        };
        // A refusal is about credentials or mechanisms, whatever its code.
        let refused = |e: KafkaError| match e.broker {
            Some(b) if b.error == ResponseError::UnsupportedSaslMechanism => auth_err(format!(
                "broker does not enable SASL mechanism {} ({})",
                mechanism.name(),
                b.detail.unwrap_or_default()
            )),
            Some(b) => auth_err(b.to_string()),
            None => e,
        };
        self.call_v(hv, &protocol::sasl_handshake_request(mechanism.name()))
            .map_err(refused)?;

        let step = |bytes: Vec<u8>, conn: &mut Conn| -> Result<Bytes, KafkaError> {
            conn.call_v(av, &protocol::sasl_authenticate_request(bytes))
                .map(|resp| resp.auth_bytes)
                .map_err(refused)
        };
        match mechanism {
            SaslMechanism::Plain => {
                step(sasl::plain_message(user, password), self)?;
            }
            SaslMechanism::ScramSha256 | SaslMechanism::ScramSha512 => {
                let nonce = fresh_nonce()?;
                let mut sc = sasl::ScramClient::new(mechanism, user, password, &nonce)
                    .map_err(|e| auth_err(e.0))?;
                let server_first = step(sc.client_first(), self)?;
                let client_final = sc.client_final(&server_first).map_err(|e| auth_err(e.0))?;
                let server_final = step(client_final, self)?;
                sc.verify_server_final(&server_final)
                    .map_err(|e| auth_err(e.0))?;
            }
        }
        Ok(())
    }

    /// A protocol-layer error, as this layer's, naming the broker.
    fn proto_err(&self, e: ProtocolError) -> KafkaError {
        KafkaError::from(e).at_broker(&self.addr)
    }

    /// Writes one request; returns its correlation id.
    fn write_request<T: Encodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        body: &T,
        what: &str,
    ) -> Result<i32, KafkaError> {
        let corr = self.next_correlation;
        self.next_correlation = self.next_correlation.wrapping_add(1).max(1);
        let frame = protocol::encode_request(key, version, corr, &self.client_id, body)
            .map_err(|e| self.proto_err(e))?;
        if let Err(e) = self
            .stream
            .write_all(&frame)
            .and_then(|_| self.stream.flush())
        {
            return Err(KafkaError::new(
                io_kind(&e),
                format!(
                    "sending {what} to broker {} failed: {}",
                    self.addr,
                    io_detail(&e)
                ),
            ));
        }
        self.pending.push_back((corr, key, version));
        self.bytes_written += frame.len() as u64;
        Ok(corr)
    }

    fn read_frame(&mut self, what: &str) -> Result<Bytes, KafkaError> {
        // A SASL listener answers ApiVersions, then hangs up on the first
        // other request from a client that did not authenticate.
        let fresh_plain = self.frames_read == 1 && !self.authenticated;
        let read_err = |e: &io::Error, addr: &str| {
            let hint = match tls_error(e) {
                // TLS 1.3 reports a refused client certificate only after
                // the handshake, on the first read.
                Some(rustls::Error::AlertReceived(_)) => {
                    " (the broker refused the TLS session: does it require a client certificate?)"
                }
                None if fresh_plain && e.kind() == io::ErrorKind::UnexpectedEof => {
                    " (does this listener require SASL?)"
                }
                _ => "",
            };
            KafkaError::new(
                io_kind(e),
                format!(
                    "reading {what} reply from broker {addr} failed: {}{hint}",
                    io_detail(e)
                ),
            )
        };
        let mut len = [0u8; 4];
        self.stream
            .read_exact(&mut len)
            .map_err(|e| read_err(&e, &self.addr))?;
        let n = protocol::frame_len(len).map_err(|e| self.proto_err(e))?;
        let mut buf = vec![0u8; n];
        self.stream
            .read_exact(&mut buf)
            .map_err(|e| read_err(&e, &self.addr))?;
        self.frames_read += 1;
        Ok(Bytes::from(buf))
    }

    /// Reads the reply to the oldest written request.
    fn read_response<T: Decodable>(&mut self, what: &str) -> Result<T, KafkaError> {
        let (corr, key, version) = self.pending.front().copied().ok_or_else(|| {
            self.proto_err(ProtocolError(format!(
                "no {what} request is waiting for a reply"
            )))
        })?;
        let frame = self.read_frame(what)?;
        self.pending.pop_front();
        protocol::decode_response(key, version, corr, frame).map_err(|e| self.proto_err(e))
    }

    /// Request and reply at the version agreed with this broker; a broker
    /// error code in the reply comes back typed (`KafkaError::broker`).
    pub fn call<R: Request>(&mut self, req: &R) -> Result<R::Response, KafkaError> {
        let v = self.version::<R>()?;
        self.call_v(v, req)
    }

    fn call_v<R: Request>(&mut self, version: i16, req: &R) -> Result<R::Response, KafkaError> {
        self.write_request(R::KEY, version, req, api_name(R::KEY))?;
        self.read::<R>()
    }

    /// The version of `R` agreed with this broker, or Unsupported.
    pub fn version<R: Request>(&self) -> Result<i16, KafkaError> {
        R::version(&self.versions).ok_or_else(|| {
            KafkaError::new(
                ErrorKind::Unsupported,
                format!("broker {} lacks {}", self.addr, api_name(R::KEY)),
            )
        })
    }

    /// Writes a request without reading its reply (pipelining: write to
    /// several brokers, then `read` each). Returns the bytes written.
    pub fn write<R: Request>(&mut self, req: &R) -> Result<u64, KafkaError> {
        let v = self.version::<R>()?;
        let before = self.bytes_written;
        self.write_request(R::KEY, v, req, api_name(R::KEY))?;
        Ok(self.bytes_written - before)
    }

    /// Reads the reply to the oldest written request, as `R`'s.
    pub fn read<R: Request>(&mut self) -> Result<R::Response, KafkaError> {
        let resp: R::Response = self.read_response(api_name(R::KEY))?;
        R::check(&resp).map_err(|e| KafkaError::from_broker(&self.addr, e))?;
        Ok(resp)
    }

    /// Forgets a request that gets no reply (Produce with acks=0).
    pub fn forget_last(&mut self) {
        self.pending.pop_back();
    }
}

/// "Metadata", "InitProducerId": for messages.
fn api_name(key: ApiKey) -> &'static str {
    match key {
        ApiKey::Produce => "Produce",
        ApiKey::Metadata => "Metadata",
        ApiKey::InitProducerId => "InitProducerId",
        ApiKey::CreateTopics => "CreateTopics",
        ApiKey::SaslHandshake => "SaslHandshake",
        ApiKey::SaslAuthenticate => "SaslAuthenticate",
        ApiKey::ApiVersions => "ApiVersions",
        _ => "request",
    }
}

/// A SCRAM client nonce: 24 random bytes, base64. Uses the same ring RNG
/// that rustls uses, so no extra randomness crate is needed.
fn fresh_nonce() -> Result<String, KafkaError> {
    use base64::Engine as _;
    let mut b = [0u8; 24];
    rustls::crypto::ring::default_provider()
        .secure_random
        .fill(&mut b)
        .map_err(|_| {
            KafkaError::new(ErrorKind::Auth, "no secure random source for SCRAM".into())
        })?;
    Ok(base64::engine::general_purpose::STANDARD.encode(b))
}
