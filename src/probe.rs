//! One probe: a single timed HTTP(S) request made with ureq, turned into a [`Report`].
//!
//! This module owns the curl-style timings. ureq exposes none, so the agent is
//! built from timestamping shims around ureq's hooks (resolver, TCP connector,
//! outermost transport), and TLS is done here with rustls directly so that
//! session resumption can be switched off: every probe pays, and measures, a
//! full DNS + TCP + TLS setup. The hooks live in `ureq::unversioned`, which is
//! outside semver; Cargo.toml pins ureq `~3.5` for that reason.
//!
//! Per-probe state is a [`Progress`] installed in a thread-local around each
//! call: the [`Prober`] (and its agent) is shared by worker threads and ureq
//! runs every hook on the calling thread. The state sits behind a mutex only
//! so that, at shutdown, another thread can report a probe that never ends
//! with the timings it reached (uncontended: ~20 ns per hook).
//!
//! Redirects (only when asked): like curl, each phase time is the sum over the
//! hops of that phase's time from the hop's start, and `total` is the whole
//! chain; `remote_ip` and `appconnect` describe the final hop. A hop without
//! TLS counts as having a zero-length handshake so the sums stay ordered.

use std::cell::RefCell;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{Resumption, WebPkiServerVerifier};
use rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, SignatureScheme,
    StreamOwned,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use ureq::config::AutoHeaderValue;
use ureq::http::Method;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::time::{Duration as UreqDuration, Instant as UreqInstant};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, NextTimeout, Transport, TransportAdapter,
};
use ureq::{Agent, Error, Timeout};

use crate::buffers::Reused;
use crate::redact;
use crate::redirect::{self, Origin, Refused};
use crate::report::{ErrorKind, Report};
use crate::targets::{Bind, IpMode, Spec};
use crate::wire_body::WireBody;

/// Redirect limit when following: libcurl's default CURLOPT_MAXREDIRS (30).
const MAX_REDIRECTS: u32 = 30;

/// Longest timeout passed on: ureq (and our deadlines) add timeouts to
/// `Instant`s, which panics on overflow for absurd values such as `Duration::MAX`.
const MAX_TIMEOUT: Duration = Duration::from_secs(365 * 24 * 3600);

/// Longest response head accepted (ureq's default, set here because the
/// input buffer below is sized from it).
const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// Connection buffers (two per HTTP probe, four per HTTPS: TCP's and TLS's),
/// reused by each worker thread (src/buffers.rs); ureq's default is 128 KiB
/// each, allocated and zeroed per connection (issue 12). The response
/// head must fit the input whole, plus 1 KiB so that a head over the limit is
/// reported as too big instead of stalling a full buffer; bodies stream
/// through it. The output takes the request head a line at a time: its longest
/// line, the request line, must fit (servers refuse > 8 KiB anyway).
const INPUT_BUFFER: usize = MAX_RESPONSE_HEAD + 1024;
const OUTPUT_BUFFER: usize = 16 * 1024;

/// How much of a body `match=` looks at.
const MATCH_WINDOW: usize = 64 * 1024;

/// Read buffer for draining bodies: bytes are counted, never kept.
const DRAIN_BUF: usize = 16 * 1024;

/// How a probe connects and what it trusts.
#[derive(Debug, Clone)]
pub struct ProbeConfig {
    /// DNS + TCP + TLS, per connection (curl CONNECTTIMEOUT).
    pub connect_timeout: Duration,
    /// Whole probe, redirects and body included (curl TIMEOUT).
    pub timeout: Duration,
    pub follow_redirects: bool,
    /// PEM bundle that replaces the built-in webpki roots (curl --cacert).
    pub ca_file: Option<PathBuf>,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        ProbeConfig {
            connect_timeout: Duration::from_secs(30),
            timeout: Duration::from_secs(300),
            follow_redirects: false,
            ca_file: None,
        }
    }
}

/// Performs probes. Build once, share between threads (`&Prober` is `Sync`).
pub struct Prober {
    agent: Agent,
    connect_timeout: Duration,
    /// Whole-probe limit, all redirect hops together.
    timeout: Duration,
    follow_redirects: bool,
}

impl fmt::Debug for Prober {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prober")
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

impl Prober {
    /// Builds the agent. Fails only on a bad CA file (message names the file).
    pub fn new(cfg: &ProbeConfig) -> Result<Prober, String> {
        let connect_timeout = cfg.connect_timeout.min(MAX_TIMEOUT);
        let timeout = cfg.timeout.min(MAX_TIMEOUT);
        let roots = match &cfg.ca_file {
            Some(path) => load_ca_file(path)?,
            None => RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            },
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| format!("TLS setup failed: {e}"))?;
        let mut tls = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup failed: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Capturing { inner: verifier }))
            .with_no_client_auth();
        // A resumed session skips the certificate exchange: appconnect would
        // then measure less than a fresh client (curl) sees.
        tls.resumption = Resumption::disabled();

        let config = Agent::config_builder()
            .http_status_as_error(false)
            // Redirects are followed here, hop by hop (src/redirect.rs), so
            // every hop gets the first hop's URL checks, resolve= and bind=.
            .max_redirects(0)
            // A pooled connection would skip DNS, TCP and TLS.
            .max_idle_connections(0)
            .max_idle_connections_per_host(0)
            // Send what curl sends: no Accept-Encoding, body bytes as on the wire.
            .accept_encoding(AutoHeaderValue::None)
            .user_agent(concat!("latency-logger/", env!("CARGO_PKG_VERSION")))
            // Our connector chain has no proxy support; never pick one up from the env.
            .proxy(None)
            .timeout_global(Some(timeout))
            // ureq starts the connect budget after DNS; the TCP/TLS shims below
            // cut it so DNS + TCP + TLS together fit connect_timeout (as curl).
            .timeout_resolve(Some(connect_timeout))
            .timeout_connect(Some(connect_timeout))
            .max_response_header_size(MAX_RESPONSE_HEAD)
            .input_buffer_size(INPUT_BUFFER)
            .output_buffer_size(OUTPUT_BUFFER)
            .build();

        let connector = TimedTcp
            .chain(TimedTls {
                config: Arc::new(tls),
            })
            .chain(Outermost);
        let resolver = TimedResolver {
            inner: DefaultResolver::default(),
        };
        Ok(Prober {
            agent: Agent::with_parts(config, connector, resolver),
            connect_timeout,
            timeout,
            follow_redirects: cfg.follow_redirects,
        })
    }

    /// Perform one probe of `url` now. Never panics; every failure becomes a
    /// Report with `error_kind` and `error`. `scheduled`/`lateness` stay 0.
    /// The report's `url` has any credentials hidden.
    pub fn probe(&self, url: &str) -> Report {
        self.probe_with(url, &Spec::default(), IpMode::Any, &Progress::default())
    }

    /// As [`Prober::probe`], recording its progress in `progress` so that
    /// another thread can report it ([`Progress::interrupted`]) if it hangs.
    /// `spec` says the method, the headers, the time limit, the address
    /// family, where to connect from and to, and what to expect; `ip` is the
    /// family for this probe (a `both` target is probed once with each).
    pub fn probe_with(&self, url: &str, spec: &Spec, ip: IpMode, progress: &Progress) -> Report {
        let timestamp = wall_now();
        let start = Instant::now();
        let mut ctx = Ctx::new(start, timestamp, self.connect_timeout);
        ctx.family = Family::of(ip, spec.bind.as_ref());
        ctx.bind.clone_from(&spec.bind);
        ctx.resolve.clone_from(&spec.resolve);
        ctx.origin = Origin::of(url);
        let guard = CtxGuard::install(progress, ctx);
        let outcome = self.exchange(url, spec, start);
        let total = start.elapsed().as_secs_f64();
        let ctx = guard.take();

        let mut report = Report {
            url: redact::url(url).into_owned(),
            timestamp,
            total,
            ..Report::default()
        };
        if let Some(ctx) = &ctx {
            ctx.fill_timings(&mut report);
        }
        if report.effective_url.is_none() {
            report.effective_url = Some(report.url.clone());
        }
        match outcome {
            Ok(ok) => {
                report.code = i32::from(ok.code);
                report.http_version = Some(ok.version.to_string());
                report.size_download = ok.size;
                if ok.matched == Some(false)
                    && let Some(m) = &spec.body_match
                {
                    report.error_kind = Some(ErrorKind::Expectation);
                    report.error = Some(format!(
                        "body does not match \"{}\" (first {} KiB)",
                        redact::value(&m.pattern),
                        MATCH_WINDOW / 1024
                    ));
                }
            }
            Err(failure) => {
                report.code = failure.code.map(i32::from).unwrap_or(0);
                report.http_version = failure.version.map(str::to_string);
                // What arrived, even if the decoder dropped it on a later error.
                let wire = ctx.as_ref().map_or(0, |c| c.wire_body);
                report.size_download = failure.size.max(i64::try_from(wire).unwrap_or(i64::MAX));
                let (kind, message) = match &failure.problem {
                    Problem::Transport(error) => {
                        let phase = ctx.as_ref().map(|c| c.phase).unwrap_or(Phase::Start);
                        describe(error, phase, ctx.as_ref(), url, total)
                    }
                    Problem::Redirect(refused) => (
                        ErrorKind::Redirect,
                        redact::secrets_of(url, &refused.to_string()).into_owned(),
                    ),
                };
                report.error_kind = Some(kind);
                report.error = Some(message);
            }
        }
        report
    }

    /// The request, and its redirects when asked, one hop at a time; the
    /// final response's body is read (counted, and kept for `match=`).
    fn exchange(&self, url: &str, spec: &Spec, start: Instant) -> Result<Exchanged, Failure> {
        let limit = spec.timeout.unwrap_or(self.timeout).min(MAX_TIMEOUT);
        let target = Origin::of(url);
        let mut method = spec.method.clone();
        let mut hop_url = url.to_string();
        let mut same_origin = true;
        let mut followed = 0;
        loop {
            let headers = spec
                .headers
                .iter()
                .filter(|(name, _)| same_origin || !redirect::is_credential_header(name));
            let left = limit.saturating_sub(start.elapsed());
            let response = self.send(&hop_url, &method, headers, left)?;
            let code = response.status().as_u16();
            let location = response.headers().get(ureq::http::header::LOCATION);
            let (true, true, Some(location), Some(target)) = (
                self.follow_redirects,
                redirect::is_redirect(code),
                location,
                target.as_ref(),
            ) else {
                return read_body(response, spec);
            };
            let next = if followed == MAX_REDIRECTS {
                Err(Refused::TooMany(MAX_REDIRECTS))
            } else {
                redirect::next(&hop_url, location.as_bytes(), code, &method, target)
            };
            match next {
                Ok(hop) => {
                    followed += 1;
                    hop_url = hop.url.request().to_string();
                    method = hop.method;
                    same_origin = hop.same_origin;
                    let shown = hop.url.shown().to_string();
                    with_ctx(|c| c.redirected_to = Some(shown));
                    // The 3xx's body is not read: a fresh connection per hop.
                }
                Err(refused) => {
                    // The record is the 3xx's own, saying why it ends there.
                    let done = read_body(response, spec)?;
                    return Err(Failure {
                        problem: Problem::Redirect(refused),
                        code: Some(done.code),
                        version: Some(done.version),
                        size: done.size,
                    });
                }
            }
        }
    }

    /// One request, no redirects followed, within `left` of the probe's time.
    fn send<'h>(
        &self,
        url: &str,
        method: &Method,
        headers: impl Iterator<Item = &'h (String, String)>,
        left: Duration,
    ) -> Result<ureq::http::Response<ureq::Body>, Failure> {
        use ureq::RequestExt;
        if left.is_zero() {
            return Err(Failure::of(Error::Timeout(Timeout::Global)));
        }
        let mut request = ureq::http::Request::builder()
            .method(method.clone())
            .uri(url);
        for (name, value) in headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let request = request.body(()).map_err(|e| Failure::of(Error::Http(e)))?;
        request
            .with_agent(&self.agent)
            .configure()
            .timeout_global(Some(left))
            .run()
            .map_err(Failure::of)
    }
}

/// Reads a response's body: bytes counted, the start kept for `match=`.
fn read_body(
    response: ureq::http::Response<ureq::Body>,
    spec: &Spec,
) -> Result<Exchanged, Failure> {
    set_phase(Phase::Body);
    let code = response.status().as_u16();
    let version = version_str(response.version());
    let mut reader = response.into_body().into_reader();
    let mut buf = [0u8; DRAIN_BUF];
    let mut size: i64 = 0;
    // match= looks at the start of the body only: kept only when asked.
    let mut kept: Vec<u8> = Vec::new();
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                size += n as i64;
                if spec.body_match.is_some() && kept.len() < MATCH_WINDOW {
                    let take = n.min(MATCH_WINDOW - kept.len());
                    kept.extend_from_slice(&buf[..take]);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                // io::Error may carry a ureq::Error (timeouts, protocol): unwrap it.
                return Err(Failure {
                    problem: Problem::Transport(Error::from(e)),
                    code: Some(code),
                    version: Some(version),
                    size,
                });
            }
        }
    }
    let matched = spec
        .body_match
        .as_ref()
        .map(|m| m.regex.is_match(&String::from_utf8_lossy(&kept)));
    Ok(Exchanged {
        code,
        version,
        size,
        matched,
    })
}

struct Exchanged {
    code: u16,
    version: &'static str,
    size: i64,
    /// Whether the body matched `match=`, when one is given.
    matched: Option<bool>,
}

/// A failed exchange, with what had arrived before it failed.
struct Failure {
    problem: Problem,
    code: Option<u16>,
    version: Option<&'static str>,
    size: i64,
}

impl Failure {
    /// A failure before any response.
    fn of(error: Error) -> Failure {
        Failure {
            problem: Problem::Transport(error),
            code: None,
            version: None,
            size: 0,
        }
    }
}

/// What ended an exchange early.
enum Problem {
    /// The network, TLS or HTTP layer (classified by the phase it happened in).
    Transport(Error),
    /// A redirect the prober will not follow; the 3xx is the final response.
    Redirect(Refused),
}

fn wall_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn version_str(v: ureq::http::Version) -> &'static str {
    use ureq::http::Version;
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_11 => "HTTP/1.1",
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/?",
    }
}

fn load_ca_file(path: &std::path::Path) -> Result<RootCertStore, String> {
    let shown = path.display();
    let pem = std::fs::read(path).map_err(|e| format!("CA file {shown}: cannot read: {e}"))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("CA file {shown}: bad PEM: {e}"))?;
    if certs.is_empty() {
        return Err(format!("CA file {shown}: no PEM certificates in it"));
    }
    let mut store = RootCertStore::empty();
    let (added, ignored) = store.add_parsable_certificates(certs);
    if added == 0 {
        return Err(format!(
            "CA file {shown}: none of its {ignored} certificates could be used as a trust anchor"
        ));
    }
    Ok(store)
}

// ---------------------------------------------------------------------------
// Per-probe context (thread-local)

/// Phase the probe is in; an error is blamed on the phase it happened in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Before DNS: URL checks.
    Start,
    Resolve,
    Connect,
    Tls,
    /// Connected: sending the request, awaiting and parsing the response head.
    Exchange,
    /// Reading the response body.
    Body,
}

const NAMELOOKUP: usize = 0;
const CONNECT: usize = 1;
const APPCONNECT: usize = 2;
const PRETRANSFER: usize = 3;
const STARTTRANSFER: usize = 4;
const MARKS: usize = 5;

#[derive(Debug, Clone)]
struct Ctx {
    /// When the probe started (monotonic and POSIX seconds).
    start: Instant,
    timestamp: f64,
    connect_timeout: Duration,
    phase: Phase,
    hops: u32,
    hop_start: Instant,
    /// DNS + TCP + TLS must be done by then (curl CONNECTTIMEOUT, per connection).
    connect_deadline: Instant,
    /// Sums over completed hops, seconds.
    acc: [f64; MARKS],
    /// Marks of the current hop, seconds from `hop_start`.
    cur: [Option<f64>; MARKS],
    /// Address of the current hop's connection, once connected.
    connected: Option<SocketAddr>,
    /// Last address a TCP connect was tried to (for error messages).
    attempted: Option<SocketAddr>,
    /// Body bytes received on the current hop's connection (see `wire_body`).
    wire_body: u64,
    /// The URL of the last redirect hop (only when redirects were followed).
    redirected_to: Option<String>,
    /// The current hop's TLS session and certificate, as far as known.
    tls: TlsFacts,
    /// Address family this probe may use (`ip=`, or a `bind=` address's).
    family: Family,
    /// `bind=`: where connections come from.
    bind: Option<Bind>,
    /// `resolve=`: the addresses used instead of DNS for the target's host
    /// and port (`origin`), on every hop that goes there (as curl --resolve).
    resolve: Vec<IpAddr>,
    origin: Option<Origin>,
    /// Addresses given up on before the one that answered, and the time lost on them.
    tried: Vec<String>,
    fallback: Duration,
    host: Option<String>,
}

impl Ctx {
    fn new(start: Instant, timestamp: f64, connect_timeout: Duration) -> Ctx {
        Ctx {
            start,
            timestamp,
            connect_timeout,
            phase: Phase::Start,
            hops: 0,
            hop_start: start,
            connect_deadline: start + connect_timeout,
            acc: [0.0; MARKS],
            cur: [None; MARKS],
            connected: None,
            attempted: None,
            wire_body: 0,
            redirected_to: None,
            tls: TlsFacts::default(),
            family: Family::Any,
            bind: None,
            resolve: Vec::new(),
            origin: None,
            tried: Vec::new(),
            fallback: Duration::ZERO,
            host: None,
        }
    }

    /// Copies the phase timings reached (and the address connected to).
    fn fill_timings(&self, report: &mut Report) {
        report.namelookup = self.value(NAMELOOKUP);
        report.connect = self.value(CONNECT);
        report.appconnect = self.value(APPCONNECT);
        report.pretransfer = self.value(PRETRANSFER);
        report.starttransfer = self.value(STARTTRANSFER);
        // A reached phase counts at least 1 µs (as curl's): `total` is never less.
        report.total = (0..MARKS)
            .map(|m| self.value(m))
            .fold(report.total, f64::max);
        report.remote_ip = self.connected.map(|a| a.ip().to_string());
        // curl's num_redirects and time_redirect: hops before the last one.
        report.redirect_count = i32::try_from(self.hops.saturating_sub(1)).unwrap_or(i32::MAX);
        report.redirect_time = if self.hops > 1 {
            self.hop_start.duration_since(self.start).as_secs_f64()
        } else {
            0.0
        };
        if let Some(to) = &self.redirected_to {
            report.effective_url = Some(redact::url(to).into_owned());
        }
        let tls = &self.tls;
        report.tls_version.clone_from(&tls.version);
        report.tls_cipher.clone_from(&tls.cipher);
        report.alpn.clone_from(&tls.alpn);
        if let Some(leaf) = &tls.leaf {
            report.cert_subject = Some(leaf.subject.clone());
            report.cert_issuer = Some(leaf.issuer.clone());
            report.cert_not_before = Some(leaf.not_before);
            report.cert_not_after = Some(leaf.not_after);
        }
        report.cert_chain_not_after = tls.chain_not_after;
        report.addresses_tried.clone_from(&self.tried);
        report.fallback_time = self.fallback.as_secs_f64();
        report.ip_family = self
            .connected
            .map(|a| if a.is_ipv4() { "ipv4" } else { "ipv6" }.to_string());
    }

    /// A new request (the first, or a redirect hop) is starting with DNS.
    fn begin_hop(&mut self, now: Instant) {
        if self.hops > 0 {
            // Close the previous hop: a phase it did not reach (a hop
            // without TLS has no handshake) took no time, so the sums stay
            // ordered: it ends where the phase before it ended.
            let mut carry = 0.0;
            for cur in &mut self.cur {
                carry = *cur.get_or_insert(carry);
            }
            for (acc, cur) in self.acc.iter_mut().zip(self.cur.iter_mut()) {
                *acc += cur.take().unwrap_or(0.0);
            }
            self.connected = None;
            self.wire_body = 0;
            self.tls = TlsFacts::default();
            self.hop_start = now;
        }
        self.hops += 1;
        self.connect_deadline = now + self.connect_timeout;
        self.phase = Phase::Resolve;
    }

    fn mark(&mut self, which: usize, now: Instant) {
        if self.cur[which].is_none() {
            // curl makes every reached phase at least 1 µs; do the same so
            // "reached" and "0 = never reached" stay distinct.
            let secs = now.duration_since(self.hop_start).as_secs_f64().max(1e-6);
            self.cur[which] = Some(secs);
        }
    }

    /// Reported value: 0 when the final hop never reached the phase.
    fn value(&self, which: usize) -> f64 {
        match self.cur[which] {
            Some(v) => self.acc[which] + v,
            None => 0.0,
        }
    }
}

/// Which addresses a probe may connect to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Any,
    V4,
    V6,
}

impl Family {
    fn admits(self, a: &SocketAddr) -> bool {
        match self {
            Family::Any => true,
            Family::V4 => a.is_ipv4(),
            Family::V6 => a.is_ipv6(),
        }
    }

    /// From `ip=` (for `both`, the caller probes once with each) and `bind=`:
    /// a bound address can only reach its own family.
    fn of(ip: IpMode, bind: Option<&Bind>) -> Family {
        match (ip, bind) {
            (IpMode::V4, _) => Family::V4,
            (IpMode::V6, _) => Family::V6,
            (_, Some(Bind::Address(a))) if a.is_ipv4() => Family::V4,
            (_, Some(Bind::Address(_))) => Family::V6,
            _ => Family::Any,
        }
    }
}

/// One hop's TLS facts (see `Capturing` and `note_session`).
#[derive(Debug, Clone, Default)]
struct TlsFacts {
    version: Option<String>,
    cipher: Option<String>,
    alpn: Option<String>,
    leaf: Option<crate::x509::CertFacts>,
    chain_not_after: Option<i64>,
}

/// A probe's progress, shareable with the thread that may have to report it
/// at shutdown. Empty until the probe starts.
#[derive(Debug, Clone, Default)]
pub struct Progress(Arc<Mutex<Option<Ctx>>>);

impl Progress {
    fn lock(&self) -> MutexGuard<'_, Option<Ctx>> {
        // Hooks never panic while holding it; if one did, the data is still usable.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The report for a probe abandoned at shutdown while still running
    /// (`error_kind` `interrupted`): the phases it reached, `total` until now,
    /// and what it was waiting for. `url` is the URL as shown.
    pub fn interrupted(&self, url: &str, why: &str) -> Report {
        let ctx = self.lock();
        let mut report = Report {
            url: url.to_string(),
            error_kind: Some(ErrorKind::Interrupted),
            ..Report::default()
        };
        match ctx.as_ref() {
            Some(c) => {
                let elapsed = c.start.elapsed().as_secs_f64();
                report.total = elapsed;
                c.fill_timings(&mut report);
                report.timestamp = c.timestamp;
                let host = c.host.clone().unwrap_or_else(|| url.to_string());
                report.error = Some(format!(
                    "{why} after {elapsed:.3} s {}",
                    during(c.phase, &host, &address(Some(c), &host))
                ));
            }
            None => {
                report.timestamp = wall_now();
                report.error = Some(format!("{why} before the probe started"));
            }
        }
        report
    }
}

thread_local! {
    static CTX: RefCell<Option<Progress>> = const { RefCell::new(None) };
}

/// Installs the context for one probe and removes it again, also on unwind.
struct CtxGuard(Progress);

impl CtxGuard {
    fn install(progress: &Progress, ctx: Ctx) -> CtxGuard {
        *progress.lock() = Some(ctx);
        let _ = CTX.try_with(|c| {
            if let Ok(mut slot) = c.try_borrow_mut() {
                *slot = Some(progress.clone());
            }
        });
        CtxGuard(progress.clone())
    }

    /// Ends the probe: the context as it ended (the Progress keeps it too,
    /// for a report racing with the end of the probe).
    fn take(self) -> Option<Ctx> {
        self.0.lock().clone()
    }
}

impl Drop for CtxGuard {
    fn drop(&mut self) {
        let _ = CTX.try_with(|c| {
            if let Ok(mut slot) = c.try_borrow_mut() {
                *slot = None;
            }
        });
    }
}

/// Runs `f` on this thread's probe context, if a probe is running here.
/// Hooks never nest, but `try_borrow_mut` keeps this panic-free regardless.
fn with_ctx<R>(f: impl FnOnce(&mut Ctx) -> R) -> Option<R> {
    CTX.try_with(|c| {
        let slot = c.try_borrow().ok()?;
        let progress = slot.as_ref()?;
        progress.lock().as_mut().map(f)
    })
    .ok()
    .flatten()
}

fn mark(which: usize) {
    let now = Instant::now();
    with_ctx(|c| c.mark(which, now));
}

fn set_phase(phase: Phase) {
    with_ctx(|c| c.phase = phase);
}

fn connect_deadline() -> Option<Instant> {
    with_ctx(|c| c.connect_deadline)
}

/// What is left of this connection's budget: ureq's timeout (connect or
/// global) less the time spent since it was set, cut to our DNS+TCP+TLS
/// deadline. `Err` once nothing is left, because ureq turns a zero timeout
/// into one second.
fn connect_budget(details: &ConnectionDetails) -> Result<NextTimeout, Error> {
    let mut timeout = details.timeout;
    if let (UreqDuration::Exact(after), UreqInstant::Exact(now), UreqInstant::Exact(then)) =
        (timeout.after, (details.current_time)(), details.now)
    {
        timeout.after =
            UreqDuration::Exact(after.saturating_sub(now.saturating_duration_since(then)));
    }
    if let Some(deadline) = connect_deadline() {
        let left = UreqDuration::Exact(deadline.saturating_duration_since(Instant::now()));
        if left < timeout.after {
            timeout.after = left;
            timeout.reason = Timeout::Connect;
        }
    }
    if timeout.after == UreqDuration::Exact(Duration::ZERO) {
        return Err(Error::Timeout(timeout.reason));
    }
    Ok(timeout)
}

// ---------------------------------------------------------------------------
// Hooks

/// DNS: stamps `namelookup`; also where each hop begins.
#[derive(Debug)]
struct TimedResolver {
    inner: DefaultResolver,
}

impl Resolver for TimedResolver {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, Error> {
        let now = Instant::now();
        let host = uri.host().map(str::to_string);
        let port = uri.port_u16().or(match uri.scheme_str() {
            Some("http") => Some(80),
            Some("https") => Some(443),
            _ => None,
        });
        let (family, resolve) = with_ctx(|c| {
            c.begin_hop(now);
            // resolve= stands for the target's host and port, on every hop there.
            let ours = match (&c.origin, &host, port) {
                (Some(o), Some(h), Some(p)) => o.is_host_port(h, p),
                _ => false,
            };
            c.host = host;
            let resolve = if ours { c.resolve.clone() } else { Vec::new() };
            (c.family, resolve)
        })
        .unwrap_or((Family::Any, Vec::new()));
        // An IP literal needs no lookup; skipping DefaultResolver also skips
        // the thread it spawns per lookup when a resolve timeout is set.
        let literal: Option<IpAddr> = uri
            .host()
            .and_then(|h| h.trim_start_matches('[').trim_end_matches(']').parse().ok());
        let given: Vec<IpAddr> = if resolve.is_empty() {
            literal.into_iter().collect()
        } else {
            resolve
        };
        let addrs = match port {
            Some(port) if !given.is_empty() => {
                let mut addrs = self.inner.empty();
                for ip in given {
                    // At most 16 (checked when the targets are read): never full.
                    let _ = addrs.try_push(SocketAddr::new(ip, port));
                }
                addrs
            }
            _ => self.inner.resolve(uri, config, timeout)?,
        };
        mark(NAMELOOKUP);
        // Test builds: a bug deep inside ureq, right after the name lookup.
        #[cfg(debug_assertions)]
        crate::panics::forced(uri.host().unwrap_or_default());
        let addrs = match family {
            Family::Any => addrs,
            Family::V4 | Family::V6 => {
                let mut kept = self.inner.empty();
                for a in addrs.iter().filter(|a| family.admits(a)) {
                    let _ = kept.try_push(*a);
                }
                if kept.is_empty() {
                    return Err(Error::HostNotFound);
                }
                kept
            }
        };
        set_phase(Phase::Connect);
        Ok(addrs)
    }
}

/// TCP, one address at a time so we know which one answered; our own socket
/// (ureq's transport is not public) so that `bind=` and reused buffers work.
#[derive(Debug)]
struct TimedTcp;

impl Connector<()> for TimedTcp {
    type Out = Box<dyn Transport>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        _chained: Option<()>,
    ) -> Result<Option<Self::Out>, Error> {
        set_phase(Phase::Connect);
        let bind = with_ctx(|c| c.bind.clone()).flatten();
        let count = details.addrs.len();
        // Share the budget between addresses as ureq does (halving weights).
        let total_weight = 2.0 * (1.0 - 0.5_f64.powi(count as i32));
        let budget = connect_budget(details)?.after;
        let mut weight = 1.0_f64;
        let mut last_err = None;
        for (i, addr) in details.addrs.iter().enumerate() {
            let mut one = details.resolver.empty();
            one.push(*addr);
            let mut per_addr = connect_budget(details)?;
            if i + 1 < count
                && let UreqDuration::Exact(b) = budget
            {
                let share = b
                    .mul_f64(weight / total_weight)
                    .max(Duration::from_millis(10));
                if UreqDuration::Exact(share) < per_addr.after {
                    per_addr.after = UreqDuration::Exact(share);
                }
            }
            weight /= 2.0;
            with_ctx(|c| c.attempted = Some(*addr));
            let single = ConnectionDetails {
                uri: details.uri,
                addrs: one,
                config: details.config,
                request_level: details.request_level,
                resolver: details.resolver,
                now: (details.current_time)(),
                timeout: per_addr,
                current_time: details.current_time.clone(),
                run_connector: details.run_connector.clone(),
                register_shutdown: details.register_shutdown.clone(),
            };
            let tried_at = Instant::now();
            let attempt = connect_one(*addr, bind.as_ref(), &single).map(Some);
            // An address given up on: the time it cost shows in the record.
            let gave_up = |c: &mut Ctx| {
                c.tried.push(addr.to_string());
                c.fallback += tried_at.elapsed();
            };
            match attempt {
                Ok(Some(t)) => {
                    mark(CONNECT);
                    with_ctx(|c| c.connected = Some(*addr));
                    return Ok(Some(t));
                }
                Ok(None) => return Ok(None),
                Err(Error::Io(e)) if is_addr_specific(&e) && i + 1 < count => {
                    with_ctx(gave_up);
                    last_err = Some(Error::Io(e));
                }
                Err(Error::Timeout(r)) if i + 1 < count => {
                    with_ctx(gave_up);
                    if connect_deadline().is_some_and(|d| Instant::now() >= d) {
                        return Err(Error::Timeout(r));
                    }
                    last_err = Some(Error::Timeout(r));
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_err.unwrap_or(Error::ConnectionFailed))
    }
}

/// A TCP connection to `addr`, from a given local address or interface
/// with `bind=`.
fn connect_one(
    addr: SocketAddr,
    bind: Option<&Bind>,
    details: &ConnectionDetails,
) -> Result<Box<dyn Transport>, Error> {
    let timeout = match details.timeout.after {
        UreqDuration::Exact(d) => d.max(Duration::from_millis(1)),
        _ => MAX_TIMEOUT,
    };
    let connected = match bind {
        // std's connect toggles non-blocking mode with 2 ioctls, socket2's with 4 fcntls.
        None => std::net::TcpStream::connect_timeout(&addr, timeout),
        Some(bind) => {
            use socket2::{Domain, Protocol, Socket, Type};
            let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
            match bind {
                Bind::Address(ip) => socket.bind(&SocketAddr::new(*ip, 0).into())?,
                Bind::Interface(name) => socket.bind_device(Some(name.as_bytes()))?,
            }
            socket
                .connect_timeout(&addr.into(), timeout)
                .map(|()| socket.into())
        }
    };
    let stream = match connected {
        Ok(stream) => stream,
        Err(e) if e.kind() == io::ErrorKind::TimedOut || e.kind() == io::ErrorKind::WouldBlock => {
            return Err(Error::Timeout(details.timeout.reason));
        }
        Err(e) => return Err(Error::Io(e)),
    };
    stream.set_nodelay(true)?;
    // Under TLS these carry records of at most ~16.7 KiB.
    let (input, output) = if details.needs_tls() {
        (TLS_RECORD_BUFFER, TLS_RECORD_BUFFER)
    } else {
        (
            details.config.input_buffer_size(),
            details.config.output_buffer_size(),
        )
    };
    Ok(Box::new(Tcp {
        stream,
        buffers: Reused::new(input, output),
        read_timeout: None,
        write_timeout: None,
    }))
}

/// Raw TCP buffers under TLS: one TLS record (16 KiB of plaintext plus
/// header, padding and tag) fits whole.
const TLS_RECORD_BUFFER: usize = 17 * 1024;

/// A plain TCP transport over a socket we connected ourselves. Never pooled:
/// every probe has a fresh connection.
#[derive(Debug)]
struct Tcp {
    stream: std::net::TcpStream,
    buffers: Reused,
    /// The socket's current timeouts, so unchanged ones cost no syscall.
    read_timeout: Option<Option<Duration>>,
    write_timeout: Option<Option<Duration>>,
}

/// ureq's timeout as std's (`None` = never).
fn std_timeout(t: &NextTimeout) -> Option<Duration> {
    match t.after {
        UreqDuration::Exact(d) => Some(d.max(Duration::from_millis(1))),
        _ => None,
    }
}

fn io_or_timeout(e: io::Error, reason: Timeout) -> Error {
    if matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    ) {
        Error::Timeout(reason)
    } else {
        Error::Io(e)
    }
}

impl Transport for Tcp {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), Error> {
        let t = std_timeout(&timeout);
        if self.write_timeout != Some(t) {
            self.stream.set_write_timeout(t)?;
            self.write_timeout = Some(t);
        }
        let output = &self.buffers.output()[..amount];
        (&self.stream)
            .write_all(output)
            .map_err(|e| io_or_timeout(e, timeout.reason))
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, Error> {
        let t = std_timeout(&timeout);
        if self.read_timeout != Some(t) {
            self.stream.set_read_timeout(t)?;
            self.read_timeout = Some(t);
        }
        let started = Instant::now();
        let input = self.buffers.input_append_buf();
        let n = loop {
            match (&self.stream).read(input) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                    // A signal (a reload, a stop) cut the wait short: a read
                    // with a timeout is never restarted by the kernel, and
                    // retrying with the whole timeout would stretch it.
                    if let Some(full) = t {
                        let left = full.saturating_sub(started.elapsed());
                        if left.is_zero() {
                            return Err(Error::Timeout(timeout.reason));
                        }
                        self.stream.set_read_timeout(Some(left))?;
                        self.read_timeout = Some(Some(left));
                    }
                }
                Err(e) => return Err(io_or_timeout(e, timeout.reason)),
            }
        };
        self.buffers.input_appended(n);
        Ok(n > 0)
    }

    fn is_open(&mut self) -> bool {
        true
    }

    fn is_tls(&self) -> bool {
        false
    }
}

/// Errors that concern only the address tried (ureq tries the next one too).
fn is_addr_specific(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable
            | io::ErrorKind::NetworkDown
            | io::ErrorKind::AddrNotAvailable
    )
}

/// TLS with our own rustls config (no resumption); stamps `appconnect`.
#[derive(Debug)]
struct TimedTls {
    config: Arc<ClientConfig>,
}

impl Connector<Box<dyn Transport>> for TimedTls {
    type Out = Box<dyn Transport>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<Box<dyn Transport>>,
    ) -> Result<Option<Self::Out>, Error> {
        let Some(transport) = chained else {
            return Ok(None);
        };
        if !details.needs_tls() || transport.is_tls() {
            return Ok(Some(transport));
        }
        set_phase(Phase::Tls);
        let host = details.uri.host().unwrap_or_default();
        // IPv6 literals come bracketed in URIs.
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(bare.to_string())
            .map_err(|_| Error::Tls("invalid TLS server name"))?;
        let mut conn = ClientConnection::new(self.config.clone(), name)
            .map_err(|e| Error::Io(io::Error::other(e)))?;
        let mut sock = TransportAdapter::new(transport, details.current_time.clone());
        sock.set_timeout(connect_budget(details)?);
        while conn.is_handshaking() {
            // complete_io's io::Error may wrap a ureq timeout: From unwraps it.
            if let Err(e) = conn.complete_io(&mut sock) {
                note_session(&conn, Some(&e));
                return Err(Error::from(e));
            }
        }
        note_session(&conn, None);
        mark(APPCONNECT);
        set_phase(Phase::Exchange);
        let buffers = Reused::new(
            details.config.input_buffer_size(),
            details.config.output_buffer_size(),
        );
        Ok(Some(Box::new(TlsTransport {
            buffers,
            stream: StreamOwned::new(conn, sock),
        })))
    }
}

/// What was negotiated, for the record: everything rustls reports after a
/// handshake that completed. After one that `failed`, only what is true:
/// the version, cipher and ALPN are kept only if the ServerHello was
/// processed (rustls has a cipher suite) and the failure is the server's
/// certificate (verified after the ServerHello, so the version and cipher
/// were agreed and only trust failed). Any other failure (not TLS, a message
/// over a limit, an alert, a decrypt error, a misbehaving peer) keeps none:
/// rustls may know a version from a ServerHello whose handshake then broke,
/// and "TLSv1.3" beside "not TLS" was issue 19's fault 8.
fn note_session(conn: &ClientConnection, failed: Option<&io::Error>) {
    let agreed = match failed {
        None => true,
        Some(e) => {
            conn.negotiated_cipher_suite().is_some()
                && matches!(
                    e.get_ref()
                        .and_then(|inner| inner.downcast_ref::<rustls::Error>()),
                    Some(rustls::Error::InvalidCertificate(_))
                )
        }
    };
    if !agreed {
        with_ctx(|c| {
            c.tls.version = None;
            c.tls.cipher = None;
            c.tls.alpn = None;
        });
        return;
    }
    let version = conn.protocol_version().map(|v| match v {
        rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2".to_string(),
        rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3".to_string(),
        other => format!("{other:?}"),
    });
    let cipher = conn
        .negotiated_cipher_suite()
        .map(|c| format!("{:?}", c.suite()));
    let alpn = conn
        .alpn_protocol()
        .map(|a| String::from_utf8_lossy(a).into_owned());
    with_ctx(|c| {
        c.tls.version = version;
        c.tls.cipher = cipher;
        c.tls.alpn = alpn;
    });
}

/// Wraps webpki's verifier to note what the server presented before the
/// verdict, so that records describe the certificate whether or not it is
/// trusted; the verdict is webpki's, unchanged.
#[derive(Debug)]
struct Capturing {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for Capturing {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let leaf = crate::x509::facts(end_entity);
        // The leaf is read once; the intermediates only for their expiry.
        let chain_not_after = leaf
            .as_ref()
            .map(|f| f.not_after)
            .into_iter()
            .chain(
                intermediates
                    .iter()
                    .filter_map(|c| crate::x509::facts(c).map(|f| f.not_after)),
            )
            .min();
        with_ctx(|c| {
            c.tls.leaf = leaf;
            c.tls.chain_not_after = chain_not_after;
        });
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

struct TlsTransport {
    buffers: Reused,
    stream: StreamOwned<ClientConnection, TransportAdapter>,
}

impl fmt::Debug for TlsTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsTransport").finish_non_exhaustive()
    }
}

impl Transport for TlsTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), Error> {
        self.stream.get_mut().set_timeout(timeout);
        let output = &self.buffers.output()[..amount];
        self.stream.write_all(output)?;
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, Error> {
        self.stream.get_mut().set_timeout(timeout);
        let input = self.buffers.input_append_buf();
        let amount = self.stream.read(input)?;
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        self.stream.get_mut().get_mut().is_open()
    }

    fn is_tls(&self) -> bool {
        true
    }
}

/// Last in the chain: wraps the transport ureq talks HTTP over, so it sees
/// the request's first write and the response's first byte (never TLS handshake bytes).
#[derive(Debug)]
struct Outermost;

impl Connector<Box<dyn Transport>> for Outermost {
    type Out = TimedTransport;

    fn connect(
        &self,
        _details: &ConnectionDetails,
        chained: Option<Box<dyn Transport>>,
    ) -> Result<Option<Self::Out>, Error> {
        set_phase(Phase::Exchange);
        Ok(chained.map(|inner| TimedTransport {
            inner,
            sent: false,
            received: false,
            body: WireBody::default(),
        }))
    }
}

#[derive(Debug)]
struct TimedTransport {
    inner: Box<dyn Transport>,
    sent: bool,
    received: bool,
    /// Body bytes as received, for a body that then fails to decode.
    body: WireBody,
}

impl Transport for TimedTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.inner.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), Error> {
        if !self.sent {
            self.sent = true;
            mark(PRETRANSFER);
        }
        self.inner.transmit_output(amount, timeout)
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, Error> {
        // New bytes are appended after the unconsumed input.
        let before = self.inner.buffers().input().len();
        let progressed = self.inner.await_input(timeout)?;
        if progressed && !self.received {
            self.received = true;
            mark(STARTTRANSFER);
        }
        if let Some(new) = self.inner.buffers().input().get(before..) {
            self.body.feed(new);
            let bytes = self.body.bytes();
            with_ctx(|c| c.wire_body = bytes);
        }
        Ok(progressed)
    }

    fn is_open(&mut self) -> bool {
        self.inner.is_open()
    }

    fn is_tls(&self) -> bool {
        self.inner.is_tls()
    }
}

// ---------------------------------------------------------------------------
// Failure classification

/// What a probe was doing in `phase`, for messages ("waiting for the response from …").
fn during(phase: Phase, host: &str, addr: &str) -> String {
    match phase {
        Phase::Start | Phase::Resolve => format!("resolving {host}"),
        Phase::Connect => format!("connecting to {addr}"),
        Phase::Tls => format!("in TLS handshake with {addr}"),
        Phase::Exchange => format!("waiting for the response from {addr}"),
        Phase::Body => format!("reading the response body from {addr}"),
    }
}

/// The address connected to (or last tried), else the host.
fn address(ctx: Option<&Ctx>, host: &str) -> String {
    ctx.and_then(|c| c.connected.or(c.attempted))
        .map_or_else(|| host.to_string(), |a| a.to_string())
}

/// Error kind by the phase that failed, and a one-line message for people,
/// with the URL's credentials hidden wherever they might appear.
fn describe(
    err: &Error,
    phase: Phase,
    ctx: Option<&Ctx>,
    url: &str,
    elapsed: f64,
) -> (ErrorKind, String) {
    let (kind, message) = classify(err, phase, ctx, url, elapsed);
    (kind, redact::secrets_of(url, &message).into_owned())
}

fn classify(
    err: &Error,
    phase: Phase,
    ctx: Option<&Ctx>,
    url: &str,
    elapsed: f64,
) -> (ErrorKind, String) {
    let host = ctx
        .and_then(|c| c.host.clone())
        .unwrap_or_else(|| redact::url_value(url));
    let addr = address(ctx, &host);

    if is_timeout(err) {
        return (
            ErrorKind::Timeout,
            format!(
                "timed out after {elapsed:.3} s {}",
                during(phase, &host, &addr)
            ),
        );
    }
    match (phase, err) {
        (_, Error::HostNotFound) => (
            ErrorKind::Dns,
            match ctx.map(|c| c.family) {
                Some(Family::V4) => {
                    format!("could not resolve host {host}: no addresses (no IPv4 one)")
                }
                Some(Family::V6) => {
                    format!("could not resolve host {host}: no addresses (no IPv6 one)")
                }
                _ => format!("could not resolve host {host}: no addresses"),
            },
        ),
        (Phase::Resolve, e) => (
            ErrorKind::Dns,
            format!("could not resolve host {host}: {}", inner_message(e)),
        ),
        (Phase::Connect, e) => (ErrorKind::Connect, format!("{} ({addr})", inner_message(e))),
        (Phase::Tls, e) | (_, e @ Error::Tls(_)) => (
            ErrorKind::Tls,
            format!(
                "TLS handshake with {host} ({addr}) failed: {}",
                tls_message(e).unwrap_or_else(|| inner_message(e))
            ),
        ),
        (Phase::Start, e) => (
            ErrorKind::Http,
            format!(
                "invalid URL `{}`: {}",
                redact::url_value(url),
                inner_message(e)
            ),
        ),
        (Phase::Exchange | Phase::Body, Error::Io(e)) => {
            let eof = e.kind() == io::ErrorKind::UnexpectedEof;
            let message = match (phase, eof) {
                (Phase::Exchange, true) => "server closed the connection without a response".into(),
                (_, true) => "server closed the connection before the body was complete".into(),
                (Phase::Exchange, false) => format!("{} during the exchange", io_message(e)),
                (_, false) => format!("{} reading the response body", io_message(e)),
            };
            (ErrorKind::Io, format!("{message} ({addr})"))
        }
        (Phase::Exchange | Phase::Body, e) => (
            ErrorKind::Http,
            format!("bad HTTP response from {addr}: {}", inner_message(e)),
        ),
    }
}

/// A sentence for the certificate and handshake failures people meet, from
/// the rustls (or webpki) error behind `err`; `None` for anything else.
fn tls_message(err: &Error) -> Option<String> {
    use rustls::CertificateError as C;
    let Error::Io(io) = err else { return None };
    let tls = io.get_ref()?.downcast_ref::<rustls::Error>()?;
    const TRUST: &str = "not trusted; use --cacert FILE to trust its CA";
    let text = match tls {
        rustls::Error::InvalidCertificate(cert) => match cert {
            C::UnknownIssuer => {
                format!("certificate issued by an unknown authority ({TRUST})")
            }
            C::ExpiredContext { time, not_after } => format!(
                "certificate expired on {} (now {})",
                utc(not_after.as_secs()),
                utc(time.as_secs())
            ),
            C::Expired => "certificate expired".to_string(),
            C::NotValidYetContext { time, not_before } => format!(
                "certificate not valid before {} (now {})",
                utc(not_before.as_secs()),
                utc(time.as_secs())
            ),
            C::NotValidYet => "certificate not valid yet".to_string(),
            C::NotValidForNameContext {
                expected,
                presented,
            } => format!(
                "certificate is for {}, not {}",
                if presented.is_empty() {
                    "no names".to_string()
                } else {
                    presented
                        .iter()
                        .map(|n| redact::value(presented_name(n)))
                        .collect::<Vec<_>>()
                        .join(", ")
                },
                redact::value(&expected.to_str())
            ),
            C::NotValidForName => "certificate is not valid for this host name".to_string(),
            C::Revoked => "certificate revoked".to_string(),
            C::BadSignature => "certificate signature does not verify".to_string(),
            C::Other(other) => match other.0.downcast_ref::<webpki::Error>() {
                Some(webpki::Error::CaUsedAsEndEntity) => {
                    format!("self-signed certificate ({TRUST})")
                }
                Some(webpki::Error::UnknownIssuer) => {
                    format!("certificate issued by an unknown authority ({TRUST})")
                }
                Some(webpki::Error::MaximumPathDepthExceeded) => {
                    "certificate chain too deep (more than 6 intermediates)".to_string()
                }
                Some(
                    webpki::Error::MaximumSignatureChecksExceeded
                    | webpki::Error::MaximumPathBuildCallsExceeded
                    | webpki::Error::MaximumNameConstraintComparisonsExceeded,
                ) => "certificate chain too large to verify (over webpki's work limits)".to_string(),
                _ => format!("bad certificate: {cert:?}"),
            },
            other => format!("bad certificate: {other:?}"),
        },
        rustls::Error::AlertReceived(alert) => {
            format!("the server refused the handshake (TLS alert {alert:?})")
        }
        rustls::Error::PeerIncompatible(why) => {
            format!("no TLS version or cipher in common with the server ({why:?})")
        }
        rustls::Error::InvalidMessage(m) => invalid_message(m),
        rustls::Error::PeerSentOversizedRecord => {
            "the server sent a TLS record over the 16 KiB limit".to_string()
        }
        rustls::Error::NoCertificatesPresented => "the server presented no certificate".to_string(),
        rustls::Error::DecryptError => {
            "a message from the server did not decrypt (corrupted in transit, or a broken TLS server)"
                .to_string()
        }
        rustls::Error::PeerMisbehaved(why) => {
            format!("the server broke the TLS protocol ({why:?})")
        }
        rustls::Error::InvalidCertRevocationList(why) => {
            format!("bad certificate revocation list ({why:?})")
        }
        rustls::Error::NoApplicationProtocol => {
            "no application protocol (ALPN) in common with the server".to_string()
        }
        rustls::Error::UnsupportedNameType => "the server name is not one TLS can carry".to_string(),
        rustls::Error::General(text) => format!("TLS error: {}", redact::value(text)),
        other => format!("TLS error: {}", redact::value(&other.to_string())),
    };
    Some(text)
}

/// A sentence for a message rustls could not take: "not TLS" only when the
/// bytes are not a TLS record at all; a size limit is named with its size.
fn invalid_message(m: &rustls::InvalidMessage) -> String {
    use rustls::InvalidMessage as M;
    match m {
        // A record starts with its content type (22 for a handshake) and
        // version (3.x): "HTTP/1.1 400 …" is neither.
        M::InvalidContentType | M::UnknownProtocolVersion => {
            "the server's reply is not TLS (is this port plain HTTP?)".to_string()
        }
        M::HandshakePayloadTooLarge => {
            "a handshake message from the server is over the 64 KiB limit (a certificate chain that large is refused)"
                .to_string()
        }
        M::CertificatePayloadTooLarge => {
            "the server's certificate chain is over the 64 KiB limit".to_string()
        }
        M::MessageTooLarge => "the server sent a TLS record over the size limit".to_string(),
        other => format!("the server sent a malformed TLS message ({other:?})"),
    }
}

/// webpki lists names as `DnsName("a.example")` or `IpAddress(192.0.2.1)`: the name alone.
fn presented_name(n: &str) -> &str {
    match (n.find('('), n.strip_suffix(')')) {
        (Some(open), Some(inner)) => inner[open + 1..].trim_matches('"'),
        _ => n,
    }
}

/// POSIX seconds as `YYYY-MM-DD HH:MM:SS UTC` (proleptic Gregorian calendar).
fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn is_timeout(err: &Error) -> bool {
    match err {
        Error::Timeout(_) => true,
        Error::Io(e) => matches!(
            e.kind(),
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
        ),
        _ => false,
    }
}

/// The message without ureq's "io: " style prefix.
fn inner_message(err: &Error) -> String {
    match err {
        Error::Io(e) => io_message(e),
        Error::Protocol(e) => e.to_string(),
        Error::Http(e) => e.to_string(),
        Error::BadUri(e) => e.clone(),
        e => e.to_string(),
    }
}

/// "connection refused" rather than "Connection refused (os error 111)";
/// custom errors (rustls, resolver) keep their own text.
fn io_message(e: &io::Error) -> String {
    if let Some(inner) = e.get_ref() {
        return inner.to_string();
    }
    let text = e.to_string();
    let text = match text.find(" (os error ") {
        Some(i) => &text[..i],
        None => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_798_761_599), "2026-12-31 23:59:59 UTC");
    }

    #[test]
    fn presented_names() {
        assert_eq!(presented_name("DnsName(\"a.test\")"), "a.test");
        assert_eq!(presented_name("IpAddress(192.0.2.1)"), "192.0.2.1");
        assert_eq!(presented_name("plain"), "plain");
    }

    #[test]
    fn interrupted_before_start_says_so() {
        let r = Progress::default().interrupted("http://a.test/", "stopped");
        assert_eq!(r.error_kind, Some(ErrorKind::Interrupted));
        assert_eq!(r.error.as_deref(), Some("stopped before the probe started"));
    }

    /// Issue 19 item 3 as a property: whatever the hops (1 to 5, TLS or
    /// not, each reaching a prefix of its phases at non-decreasing instants),
    /// the timings `Ctx::fill_timings` reports are monotone over the phases
    /// the final hop reached, unreached ones are 0 (appconnect too when the
    /// final hop is not TLS: `value` is 0 for a phase the final hop did not
    /// mark), and everything, redirect_time included, is at most `total`.
    #[test]
    fn timings_are_monotone_over_any_hops() {
        use proptest::prelude::*;
        const ORDER: [usize; MARKS] = [NAMELOOKUP, CONNECT, APPCONNECT, PRETRANSFER, STARTTRANSFER];
        // A hop: TLS or not, how many of its phases it reaches, and the gap
        // (ns) before each of them, the last one before the next hop starts.
        let hop = (
            any::<bool>(),
            0usize..=MARKS,
            prop::collection::vec(
                prop_oneof![Just(0u64), 0u64..=2_000, 0u64..=2_000_000_000],
                MARKS + 1,
            ),
        );
        let hops = prop::collection::vec(hop, 1..=5);
        proptest!(ProptestConfig::with_cases(2000), |(
            hops in hops,
            lead in prop_oneof![Just(0u64), 0u64..=1_000_000],
            tail in prop_oneof![Just(0u64), 0u64..=1_000_000_000],
        )| {
            let phases = |tls: bool| -> Vec<usize> {
                ORDER.into_iter().filter(|&p| tls || p != APPCONNECT).collect()
            };
            let start = Instant::now();
            let mut ctx = Ctx::new(start, 0.0, Duration::from_secs(10));
            let mut t = start + Duration::from_nanos(lead);
            for (tls, reached, gaps) in &hops {
                ctx.begin_hop(t);
                for (&p, &gap) in phases(*tls).iter().zip(gaps).take(*reached) {
                    t += Duration::from_nanos(gap);
                    ctx.mark(p, t);
                }
                t += Duration::from_nanos(gaps[MARKS]);
            }
            t += Duration::from_nanos(tail);
            // As `probe_with`: total is the whole probe, measured at its end.
            let mut report = Report {
                total: t.duration_since(start).as_secs_f64(),
                ..Report::default()
            };
            ctx.fill_timings(&mut report);
            let got = [
                report.namelookup,
                report.connect,
                report.appconnect,
                report.pretransfer,
                report.starttransfer,
            ];
            let Some((tls, reached, _)) = hops.last() else {
                return Err(TestCaseError::fail("no hop"));
            };
            let reached: Vec<usize> = phases(*tls).into_iter().take(*reached).collect();
            for p in ORDER {
                if !reached.contains(&p) {
                    prop_assert_eq!(got[p], 0.0, "phase {} not reached: {:?}", p, got);
                }
            }
            let mut last = 0.0;
            for &p in &reached {
                prop_assert!(got[p] > 0.0, "phase {} reached but 0: {:?}", p, got);
                prop_assert!(got[p] >= last, "phase {} before the one it follows: {:?}", p, got);
                last = got[p];
            }
            prop_assert!(last <= report.total, "{:?} over total {}", got, report.total);
            prop_assert!(
                report.redirect_time <= report.total,
                "redirect_time {} over total {}",
                report.redirect_time,
                report.total
            );
        });
    }
}

#[cfg(test)]
mod buffer_tests {
    //! The connection buffers are sized to what a probe needs: these check the
    //! limits that sizing must keep (response head up to ureq's 64 KiB limit,
    //! long request lines), against a loopback server that answers once.
    use super::*;
    use std::io::BufRead;
    use std::net::TcpListener;

    /// Serves one connection: reads the request head, answers with a head of
    /// `head_len` bytes (padded with one header) and a 2-byte body.
    fn serve_once(head_len: usize) -> (String, std::thread::JoinHandle<usize>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let handle = std::thread::spawn(move || {
            let (sock, _) = listener.accept().expect("accept");
            sock.set_read_timeout(Some(Duration::from_secs(10)))
                .expect("read timeout");
            let mut reader = io::BufReader::new(sock.try_clone().expect("clone"));
            let mut request_len = 0;
            loop {
                let mut line = String::new();
                let n = reader.read_line(&mut line).expect("read request");
                request_len += n;
                if n == 0 || line == "\r\n" {
                    break;
                }
            }
            let start = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\nX-Pad: ";
            let pad = head_len - start.len() - "\r\n\r\n".len();
            let head = format!("{start}{}\r\n\r\n", "p".repeat(pad));
            assert_eq!(head.len(), head_len);
            let mut sock = sock;
            // The client may give up early on an oversized head: ignore EPIPE.
            let _ = sock.write_all(head.as_bytes());
            let _ = sock.write_all(b"ok");
            request_len
        });
        (format!("http://{addr}"), handle)
    }

    fn prober() -> Prober {
        Prober::new(&ProbeConfig {
            connect_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(10),
            ..ProbeConfig::default()
        })
        .expect("prober")
    }

    #[test]
    fn response_head_of_64_kib_parses() {
        let (base, server) = serve_once(64 * 1024);
        let r = prober().probe(&format!("{base}/"));
        assert_eq!((r.code, r.error.as_deref()), (200, None));
        assert_eq!(r.size_download, 2);
        server.join().expect("server");
    }

    #[test]
    fn response_head_over_64_kib_is_refused_as_too_large() {
        let (base, server) = serve_once(64 * 1024 + 100);
        let r = prober().probe(&format!("{base}/"));
        assert_eq!(r.code, 0);
        let error = r.error.unwrap_or_default();
        assert!(error.contains("response header is too big"), "{error}");
        server.join().expect("server");
    }

    #[test]
    fn request_line_of_8_kib_is_sent() {
        let (base, server) = serve_once(100);
        let path = "a".repeat(8 * 1024);
        let r = prober().probe(&format!("{base}/{path}"));
        assert_eq!((r.code, r.error.as_deref()), (200, None));
        assert!(server.join().expect("server") > 8 * 1024);
    }
}
