//! Local HTTP and HTTPS test servers (std TcpListener, a thread per connection).
//!
//! Paths served (every response has `Connection: close`):
//! - `/fixed`      200, body `fixed_body()` (`FIXED_BODY_LEN` bytes)
//! - `/delay`      waits `DELAY` before the first response byte, then 200 "delayed"
//! - `/status500`  500 with a short body
//! - `/redirect`   302 to `/fixed`
//! - `/loop`       302 to itself
//! - `/to/CODE?LOC` status CODE with `Location: LOC` (LOC percent-decoded, so
//!   a test can send any bytes, malformed ones included)
//! - `/hang`       reads the request and never answers (until the server stops)
//! - anything else 404
//!
//! The HTTPS server makes a throwaway CA at start and a leaf for `localhost`
//! and `127.0.0.1` signed by it (rustls refuses a CA certificate as the
//! server's own); `ca_pem_path()` is the CA to trust.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

#[allow(dead_code)] // used by e2e, kafka_e2e, kafka_spool, pipeline, probe, unattended
pub const FIXED_BODY_LEN: usize = 10_000;
/// How long `/delay` waits before answering.
#[allow(dead_code)] // used by e2e, kafka_e2e, kafka_spool, pipeline, probe, unattended
pub const DELAY: Duration = Duration::from_millis(200);
/// Bound on every server-side read/write, so a stuck client never stalls a test.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Body of `/fixed`: printable, not all the same byte.
#[allow(dead_code)] // used by e2e, kafka_e2e, kafka_spool, pipeline, probe, unattended
pub fn fixed_body() -> Vec<u8> {
    (0..FIXED_BODY_LEN).map(|i| b'a' + (i % 26) as u8).collect()
}

struct Shared {
    stop: AtomicBool,
    /// Request heads received, in arrival order.
    requests: Mutex<Vec<String>>,
    /// Where each connection came from, in arrival order.
    peers: Mutex<Vec<SocketAddr>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

/// The listener and its threads; shared by the HTTP and HTTPS faces.
struct Server {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl Server {
    fn start(tls: Option<Arc<ServerConfig>>) -> Server {
        Server::start_at("127.0.0.1:0", tls)
    }

    fn start_at(bind: &str, tls: Option<Arc<ServerConfig>>) -> Server {
        let listener = TcpListener::bind(bind).unwrap_or_else(|e| panic!("bind {bind}: {e}"));
        let addr = listener.local_addr().expect("local_addr");
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            requests: Mutex::new(Vec::new()),
            peers: Mutex::new(Vec::new()),
            workers: Mutex::new(Vec::new()),
        });
        let sh = shared.clone();
        let accept = thread::spawn(move || {
            for stream in listener.incoming() {
                if sh.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                if let Ok(peer) = stream.peer_addr() {
                    sh.peers.lock().unwrap().push(peer);
                }
                let sh2 = sh.clone();
                let tls = tls.clone();
                let worker = thread::spawn(move || {
                    let _ = handle(stream, tls, &sh2);
                });
                let mut workers = sh.workers.lock().unwrap();
                workers.retain(|w| !w.is_finished());
                workers.push(worker);
            }
        });
        Server {
            addr,
            shared,
            accept: Some(accept),
        }
    }

    fn requests(&self) -> Vec<String> {
        self.shared.requests.lock().unwrap().clone()
    }

    fn peers(&self) -> Vec<SocketAddr> {
        self.shared.peers.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept() so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        let workers: Vec<_> = self.shared.workers.lock().unwrap().drain(..).collect();
        for w in workers {
            let _ = w.join();
        }
    }
}

fn handle(stream: TcpStream, tls: Option<Arc<ServerConfig>>, shared: &Shared) -> io::Result<()> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    match tls {
        None => {
            let mut s = stream;
            serve(&mut s, shared)?;
            s.shutdown(Shutdown::Write)
        }
        Some(cfg) => {
            let conn = ServerConnection::new(cfg).map_err(io::Error::other)?;
            let mut s = StreamOwned::new(conn, stream);
            serve(&mut s, shared)?;
            // A clean TLS close, so close-delimited reads end without error.
            s.conn.send_close_notify();
            while s.conn.wants_write() {
                s.conn.write_tls(&mut s.sock)?;
            }
            s.sock.shutdown(Shutdown::Write)
        }
    }
}

fn serve<S: Read + Write>(s: &mut S, shared: &Shared) -> io::Result<()> {
    let Some(head) = read_head(s)? else {
        return Ok(()); // closed before a request (e.g. the wake-up connect)
    };
    shared.requests.lock().unwrap().push(head.clone());
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
    match path.as_str() {
        "/fixed" => respond(s, "200 OK", &[], &fixed_body()),
        "/delay" => {
            thread::sleep(DELAY);
            respond(s, "200 OK", &[], b"delayed")
        }
        "/status500" => respond(s, "500 Internal Server Error", &[], b"server error\n"),
        "/redirect" => respond(s, "302 Found", &[("Location", "/fixed")], b""),
        "/loop" => respond(s, "302 Found", &[("Location", "/loop")], b"redirect\n"),
        p if p.starts_with("/to/") => {
            let (code, location) = p["/to/".len()..].split_once('?').unwrap_or((p, ""));
            let location = percent_decode(location);
            let status = format!("{code} Redirect");
            let mut head = format!(
                "HTTP/1.1 {status}\r\nContent-Length: 9\r\nConnection: close\r\nLocation: "
            )
            .into_bytes();
            head.extend_from_slice(&location);
            head.extend_from_slice(b"\r\n\r\nredirect\n");
            s.write_all(&head)?;
            s.flush()
        }
        "/hang" => {
            while !shared.stop.load(Ordering::SeqCst) {
                thread::sleep(Duration::from_millis(10));
            }
            Ok(())
        }
        _ => respond(s, "404 Not Found", &[], b"not found\n"),
    }
}

/// `%XX` escapes to bytes; anything else as is.
fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// Reads up to the blank line ending the request head; None on EOF before any byte.
fn read_head<S: Read>(s: &mut S) -> io::Result<Option<String>> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(0) if head.is_empty() => return Ok(None),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(_) => head.push(byte[0]),
            Err(e) => return Err(e),
        }
        if head.len() > 64 * 1024 {
            return Err(io::Error::other("request head too large"));
        }
    }
    Ok(Some(String::from_utf8_lossy(&head).into_owned()))
}

fn respond<S: Write>(
    s: &mut S,
    status: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: text/plain\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    s.write_all(&bytes)?;
    s.flush()
}

/// Plain HTTP server on 127.0.0.1; stops when dropped.
#[allow(dead_code)] // used by e2e, kafka_e2e, kafka_spool, pipeline, probe, unattended, and the bench_server example
pub struct HttpServer {
    server: Server,
}

impl HttpServer {
    #[allow(dead_code)] // used by e2e, kafka_e2e, kafka_spool, pipeline, probe, unattended, and the bench_server example
    pub fn start() -> HttpServer {
        HttpServer {
            server: Server::start(None),
        }
    }

    /// Where each connection came from.
    #[allow(dead_code)] // used by probe
    pub fn peers(&self) -> Vec<SocketAddr> {
        self.server.peers()
    }

    /// On another loopback address, e.g. `[::1]:0` or `127.0.0.2:0`.
    #[allow(dead_code)] // used by probe
    pub fn start_at(bind: &str) -> HttpServer {
        HttpServer {
            server: Server::start_at(bind, None),
        }
    }

    #[allow(dead_code)] // used by e2e, probe, and the bench_server example
    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// `http://127.0.0.1:PORT{path}`
    #[allow(dead_code)] // used by e2e, kafka_e2e, kafka_spool, pipeline, probe, unattended
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.server.addr, path)
    }

    /// Request heads received so far, in order.
    #[allow(dead_code)] // used by e2e, probe, unattended
    pub fn requests(&self) -> Vec<String> {
        self.server.requests()
    }
}

/// HTTPS server on 127.0.0.1 with a fresh test CA; stops when dropped.
pub struct HttpsServer {
    server: Server,
    ca_pem: String,
    _dir: tempfile::TempDir,
    ca_path: PathBuf,
}

/// Which certificate an [`HttpsServer`] presents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(dead_code)] // used by e2e, probe
pub enum Cert {
    /// A leaf for `localhost`/`127.0.0.1` signed by the test CA (the default).
    Signed,
    /// One self-signed CA certificate used as the server's own.
    SelfSigned,
    /// A leaf whose validity ended in 2020.
    Expired,
    /// A leaf valid only from 2090.
    NotYetValid,
    /// A leaf signed by the test CA for `other.test` only.
    WrongName,
    /// A valid leaf naming 1,500 extra hosts (~42 KB: one certificate cannot
    /// pass 64 KiB, webpki's DER lengths stop there), sent twice in its
    /// chain: a Certificate message over the 64 KiB limit of rustls.
    Huge,
}

impl HttpsServer {
    #[allow(dead_code)] // used by e2e, probe, and the bench_server example
    pub fn start() -> HttpsServer {
        HttpsServer::start_with(Cert::Signed)
    }

    #[allow(dead_code)] // used by e2e, probe
    pub fn start_with(kind: Cert) -> HttpsServer {
        let certs = TestCerts::generate(kind);
        let chain = match kind {
            Cert::SelfSigned => vec![certs.ca_der.clone()],
            Cert::Huge => vec![
                certs.leaf_der.clone(),
                certs.ca_der.clone(),
                certs.leaf_der.clone(),
            ],
            _ => vec![certs.leaf_der.clone(), certs.ca_der.clone()],
        };
        let key = if kind == Cert::SelfSigned {
            certs.ca_key_der.clone()
        } else {
            certs.leaf_key_der.clone()
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(chain, PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)))
            .expect("server certificate");
        let dir = tempfile::tempdir().expect("tempdir");
        let ca_path = dir.path().join("test-ca.pem");
        std::fs::write(&ca_path, &certs.ca_pem).expect("write CA PEM");
        HttpsServer {
            server: Server::start(Some(Arc::new(config))),
            ca_pem: certs.ca_pem,
            _dir: dir,
            ca_path,
        }
    }

    #[allow(dead_code)] // used by the bench_server example (tests/bench)
    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// `https://127.0.0.1:PORT{path}` (the certificate also names `localhost`).
    #[allow(dead_code)] // used by e2e, probe
    pub fn url(&self, path: &str) -> String {
        format!("https://{}{}", self.server.addr, path)
    }

    /// `https://HOST:PORT{path}`, e.g. with `localhost` to exercise SNI/DNS names.
    #[allow(dead_code)] // used by probe
    pub fn url_with_host(&self, host: &str, path: &str) -> String {
        format!("https://{host}:{}{path}", self.server.addr.port())
    }

    /// PEM file of the test CA that signed the server certificate (lives as long as self).
    #[allow(dead_code)] // used by e2e, probe
    pub fn ca_pem_path(&self) -> &Path {
        &self.ca_path
    }

    #[allow(dead_code)] // used by the bench_server example (tests/bench)
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    #[allow(dead_code)] // used by probe
    pub fn requests(&self) -> Vec<String> {
        self.server.requests()
    }
}

struct TestCerts {
    ca_pem: String,
    ca_der: CertificateDer<'static>,
    ca_key_der: Vec<u8>,
    leaf_der: CertificateDer<'static>,
    leaf_key_der: Vec<u8>,
}

impl TestCerts {
    fn generate(kind: Cert) -> TestCerts {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
        };
        let ca_key = KeyPair::generate().expect("CA key");
        // The self-signed one names the server, as such certificates do.
        let ca_names = if kind == Cert::SelfSigned {
            vec!["localhost".to_string(), "127.0.0.1".to_string()]
        } else {
            Vec::new()
        };
        let mut ca_params = CertificateParams::new(ca_names).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "latency-logger test CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA cert");

        let leaf_key = KeyPair::generate().expect("leaf key");
        let mut leaf_names = if kind == Cert::WrongName {
            vec!["other.test".to_string()]
        } else {
            vec!["localhost".to_string(), "127.0.0.1".to_string()]
        };
        if kind == Cert::Huge {
            leaf_names.extend((0..1500).map(|i| format!("host-{i:05}.padding.example")));
        }
        let mut leaf_params = CertificateParams::new(leaf_names).expect("leaf params");
        leaf_params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        match kind {
            Cert::Expired => {
                leaf_params.not_before = rcgen::date_time_ymd(2019, 1, 1);
                leaf_params.not_after = rcgen::date_time_ymd(2020, 1, 1);
            }
            Cert::NotYetValid => {
                leaf_params.not_before = rcgen::date_time_ymd(2090, 1, 1);
                leaf_params.not_after = rcgen::date_time_ymd(2091, 1, 1);
            }
            Cert::Signed | Cert::SelfSigned | Cert::WrongName | Cert::Huge => {}
        }
        let ca_key_der = ca_key.serialize_der();
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf_cert = leaf_params
            .signed_by(&leaf_key, &issuer)
            .expect("leaf cert");

        TestCerts {
            ca_pem: ca_cert.pem(),
            ca_der: ca_cert.der().clone(),
            ca_key_der,
            leaf_der: leaf_cert.der().clone(),
            leaf_key_der: leaf_key.serialize_der(),
        }
    }
}
