//! Probe tests against real local servers (loopback only, bounded waits).

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use latency_logger::probe::{ProbeConfig, Prober, Progress};
use latency_logger::report::{ErrorKind, Report};
use latency_logger::targets::{self, IpMode, Spec};
use support::{Cert, FIXED_BODY_LEN, HttpServer, HttpsServer};

fn prober(cfg: ProbeConfig) -> Prober {
    Prober::new(&cfg).expect("prober")
}

fn short() -> ProbeConfig {
    ProbeConfig {
        connect_timeout: Duration::from_secs(5),
        timeout: Duration::from_secs(10),
        ..ProbeConfig::default()
    }
}

fn with_ca(server: &HttpsServer) -> ProbeConfig {
    ProbeConfig {
        ca_file: Some(server.ca_pem_path().to_path_buf()),
        ..short()
    }
}

#[track_caller]
fn assert_ok(r: &Report) {
    assert_eq!(r.error_kind, None, "unexpected error: {r:?}");
    assert_eq!(r.error, None, "{r:?}");
}

#[track_caller]
fn assert_ordered(r: &Report, tls: bool) {
    assert!(r.namelookup > 0.0, "{r:?}");
    assert!(r.namelookup <= r.connect, "{r:?}");
    if tls {
        assert!(r.connect <= r.appconnect, "{r:?}");
        assert!(r.appconnect <= r.pretransfer, "{r:?}");
    } else {
        assert_eq!(r.appconnect, 0.0, "{r:?}");
        assert!(r.connect <= r.pretransfer, "{r:?}");
    }
    assert!(r.pretransfer <= r.starttransfer, "{r:?}");
    assert!(r.starttransfer <= r.total, "{r:?}");
    assert!(r.total < 5.0, "{r:?}");
}

#[test]
fn http_fixed_timings_size_ip_version() {
    let server = HttpServer::start();
    let url = server.url("/fixed");
    let r = prober(short()).probe(&url);
    assert_ok(&r);
    assert_eq!(r.url, url);
    assert_eq!(r.code, 200);
    assert_eq!(r.size_download, FIXED_BODY_LEN as i64);
    assert_eq!(r.remote_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(r.http_version.as_deref(), Some("HTTP/1.1"));
    assert_ordered(&r, false);
    assert_eq!(r.scheduled, 0.0);
    assert_eq!(r.lateness, 0.0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!((now - r.timestamp).abs() < 10.0, "{r:?}");
}

#[test]
fn https_fixed_timings_size_ip_version() {
    let server = HttpsServer::start();
    let r = prober(with_ca(&server)).probe(&server.url("/fixed"));
    assert_ok(&r);
    assert_eq!(r.code, 200);
    assert_eq!(r.size_download, FIXED_BODY_LEN as i64);
    assert_eq!(r.remote_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(r.http_version.as_deref(), Some("HTTP/1.1"));
    assert_ordered(&r, true);
    assert!(r.appconnect > r.connect, "TLS takes time: {r:?}");
}

#[test]
fn https_by_dns_name() {
    let server = HttpsServer::start();
    let r = prober(with_ca(&server)).probe(&server.url_with_host("localhost", "/fixed"));
    assert_ok(&r);
    assert_eq!(r.code, 200);
    assert_eq!(r.remote_ip.as_deref(), Some("127.0.0.1"));
    assert_ordered(&r, true);
}

#[test]
fn every_probe_makes_a_fresh_connection_and_full_handshake() {
    let server = HttpsServer::start();
    let p = prober(with_ca(&server));
    for _ in 0..3 {
        let r = p.probe(&server.url("/fixed"));
        assert_ok(&r);
        assert!(r.appconnect > r.connect, "{r:?}");
    }
    assert_eq!(server.requests().len(), 3);
}

#[test]
fn no_accept_encoding_is_sent() {
    let server = HttpServer::start();
    let r = prober(short()).probe(&server.url("/fixed"));
    assert_ok(&r);
    let reqs = server.requests();
    assert_eq!(reqs.len(), 1);
    assert!(
        !reqs[0].to_ascii_lowercase().contains("accept-encoding"),
        "{}",
        reqs[0]
    );
}

#[test]
fn delay_shows_in_server_time_http() {
    let server = HttpServer::start();
    let r = prober(short()).probe(&server.url("/delay"));
    assert_ok(&r);
    assert_ordered(&r, false);
    let server_time = r.starttransfer - r.pretransfer;
    assert!((0.2..0.3).contains(&server_time), "{server_time}: {r:?}");
}

#[test]
fn delay_shows_in_server_time_https() {
    let server = HttpsServer::start();
    let r = prober(with_ca(&server)).probe(&server.url("/delay"));
    assert_ok(&r);
    assert_ordered(&r, true);
    let server_time = r.starttransfer - r.pretransfer;
    assert!((0.2..0.3).contains(&server_time), "{server_time}: {r:?}");
}

#[test]
fn status_500_is_a_response_not_an_error() {
    let server = HttpServer::start();
    let r = prober(short()).probe(&server.url("/status500"));
    assert_ok(&r);
    assert_eq!(r.code, 500);
    assert_eq!(r.size_download, "server error\n".len() as i64);
}

#[test]
fn redirect_not_followed_by_default() {
    let server = HttpServer::start();
    let r = prober(short()).probe(&server.url("/redirect"));
    assert_ok(&r);
    assert_eq!(r.code, 302);
    assert_eq!(r.size_download, 0);
    assert_eq!(server.requests().len(), 1);
    assert_eq!((r.redirect_count, r.redirect_time), (0, 0.0));
    assert_eq!(
        r.effective_url.as_deref(),
        Some(server.url("/redirect").as_str())
    );
}

#[test]
fn redirect_followed_when_asked() {
    let server = HttpServer::start();
    let cfg = ProbeConfig {
        follow_redirects: true,
        ..short()
    };
    let r = prober(cfg).probe(&server.url("/redirect"));
    assert_ok(&r);
    assert_eq!(r.code, 200);
    assert_eq!(r.size_download, FIXED_BODY_LEN as i64);
    assert_ordered(&r, false);
    assert_eq!(server.requests().len(), 2);
    // curl's num_redirects, time_redirect and url_effective.
    assert_eq!(r.redirect_count, 1);
    assert!(r.redirect_time > 0.0 && r.redirect_time < r.total, "{r:?}");
    assert_eq!(
        r.effective_url.as_deref(),
        Some(server.url("/fixed").as_str())
    );
}

#[test]
fn redirect_target_keeps_credentials_hidden() {
    let server = HttpServer::start();
    let cfg = ProbeConfig {
        follow_redirects: true,
        ..short()
    };
    let url = server
        .url("/redirect")
        .replace("http://", "http://u:s3cr3t@");
    let r = prober(cfg).probe(&url);
    assert!(!format!("{r:?}").contains("s3cr3t"), "{r:?}");
}

#[test]
fn https_redirect_followed_when_asked() {
    let server = HttpsServer::start();
    let cfg = ProbeConfig {
        follow_redirects: true,
        ..with_ca(&server)
    };
    let r = prober(cfg).probe(&server.url("/redirect"));
    assert_ok(&r);
    assert_eq!(r.code, 200);
    assert_ordered(&r, true);
}

#[test]
fn hang_times_out() {
    let server = HttpServer::start();
    let cfg = ProbeConfig {
        timeout: Duration::from_millis(300),
        ..short()
    };
    let started = Instant::now();
    let r = prober(cfg).probe(&server.url("/hang"));
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(r.error_kind, Some(ErrorKind::Timeout), "{r:?}");
    assert_eq!(r.code, 0);
    assert!(r.total >= 0.3 && r.total < 1.0, "{r:?}");
    assert!(r.pretransfer > 0.0, "request was sent: {r:?}");
    assert_eq!(r.starttransfer, 0.0, "no byte came: {r:?}");
    assert_eq!(r.remote_ip.as_deref(), Some("127.0.0.1"));
    assert!(
        r.error.as_deref().unwrap().contains("timed out"),
        "{:?}",
        r.error
    );
}

#[test]
fn https_hang_times_out() {
    let server = HttpsServer::start();
    let cfg = ProbeConfig {
        timeout: Duration::from_millis(300),
        ..with_ca(&server)
    };
    let r = prober(cfg).probe(&server.url("/hang"));
    assert_eq!(r.error_kind, Some(ErrorKind::Timeout), "{r:?}");
    assert!(r.appconnect > 0.0, "{r:?}");
}

#[test]
fn connect_timeout_covers_a_silent_tls_handshake() {
    // A listener that accepts (kernel backlog) but never speaks TLS.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let cfg = ProbeConfig {
        connect_timeout: Duration::from_millis(300),
        ..short()
    };
    let started = Instant::now();
    let r = prober(cfg).probe(&format!("https://127.0.0.1:{port}/"));
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(r.error_kind, Some(ErrorKind::Timeout), "{r:?}");
    assert!(r.total >= 0.3 && r.total < 1.0, "{r:?}");
    assert!(r.connect > 0.0 && r.appconnect == 0.0, "{r:?}");
    drop(listener);
}

#[test]
fn refused_port_is_connect_error() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let r = prober(short()).probe(&format!("http://127.0.0.1:{port}/"));
    assert_eq!(r.error_kind, Some(ErrorKind::Connect), "{r:?}");
    assert_eq!(
        r.error.as_deref(),
        Some(format!("connection refused (127.0.0.1:{port})").as_str())
    );
    assert_eq!(r.code, 0);
    assert!(r.namelookup > 0.0 && r.connect == 0.0, "{r:?}");
    assert_eq!(r.remote_ip, None);
}

#[test]
fn unknown_host_is_dns_error() {
    let r = prober(short()).probe("http://nonexistent.invalid/");
    assert_eq!(r.error_kind, Some(ErrorKind::Dns), "{r:?}");
    assert!(
        r.error.as_deref().unwrap().contains("nonexistent.invalid"),
        "{r:?}"
    );
    assert_eq!(r.namelookup, 0.0);
}

#[test]
fn https_without_the_ca_is_tls_error() {
    let server = HttpsServer::start();
    let r = prober(short()).probe(&server.url("/fixed"));
    assert_eq!(r.error_kind, Some(ErrorKind::Tls), "{r:?}");
    let msg = r.error.as_deref().unwrap();
    assert!(msg.contains("certificate"), "{msg}");
    assert!(r.connect > 0.0 && r.appconnect == 0.0, "{r:?}");
    assert_eq!(r.code, 0);
}

#[test]
fn https_to_a_plain_http_server_is_tls_error() {
    // A plain HTTP server answering the ClientHello with a 400, as real ones do.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 1024];
        let _ = s.read(&mut buf);
        let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n");
    });
    let r = prober(short()).probe(&format!("https://127.0.0.1:{port}/"));
    assert_eq!(r.error_kind, Some(ErrorKind::Tls), "{r:?}");
    assert!(r.total < 1.0, "{r:?}");
    let msg = r.error.as_deref().unwrap_or_default();
    assert!(msg.contains("not TLS (is this port plain HTTP?)"), "{msg}");
    // Nothing was negotiated: no version, cipher or ALPN.
    assert!(
        r.tls_version.is_none() && r.tls_cipher.is_none() && r.alpn.is_none(),
        "{r:?}"
    );
    server.join().unwrap();
}

/// Issue 19 fault 8: a certificate over rustls' 64 KiB handshake message
/// limit was reported "not TLS" beside `tls_version: TLSv1.3`.
#[test]
fn a_certificate_over_the_size_limit_is_named_and_negotiates_nothing() {
    let s = HttpsServer::start_with(Cert::Huge);
    let r = prober(with_ca(&s)).probe(&s.url("/fixed"));
    assert_eq!(r.error_kind, Some(ErrorKind::Tls), "{r:?}");
    let msg = r.error.as_deref().unwrap_or_default();
    assert!(msg.contains("over the 64 KiB limit"), "{msg}");
    assert!(!msg.contains("not TLS"), "{msg}");
    assert!(
        r.tls_version.is_none() && r.tls_cipher.is_none() && r.alpn.is_none(),
        "{r:?}"
    );
    assert_eq!((r.code, r.appconnect), (0, 0.0), "{r:?}");
}

/// One-connection raw server: reads the request head, writes `reply`, closes.
fn raw_server(reply: &'static [u8]) -> (String, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && s.read(&mut b).unwrap_or(0) == 1 {
            head.push(b[0]);
        }
        let _ = s.write_all(reply);
    });
    (url, handle)
}

#[test]
fn body_cut_short_is_io_error_with_code_and_partial_size() {
    let (url, server) = raw_server(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789");
    let r = prober(short()).probe(&url);
    assert_eq!(r.error_kind, Some(ErrorKind::Io), "{r:?}");
    assert_eq!(r.code, 200);
    assert_eq!(r.size_download, 10);
    assert!(r.starttransfer > 0.0 && r.starttransfer <= r.total, "{r:?}");
    server.join().unwrap();
}

#[test]
fn garbage_response_is_http_error() {
    let (url, server) = raw_server(b"SSH-2.0-OpenSSH_9.2\r\n\r\n");
    let r = prober(short()).probe(&url);
    assert_eq!(r.error_kind, Some(ErrorKind::Http), "{r:?}");
    assert_eq!(r.code, 0);
    server.join().unwrap();
}

#[test]
fn empty_reply_is_io_error() {
    let (url, server) = raw_server(b"");
    let r = prober(short()).probe(&url);
    assert_eq!(r.error_kind, Some(ErrorKind::Io), "{r:?}");
    server.join().unwrap();
}

#[test]
fn huge_timeouts_do_not_panic() {
    let server = HttpServer::start();
    let cfg = ProbeConfig {
        connect_timeout: Duration::MAX,
        timeout: Duration::MAX,
        ..ProbeConfig::default()
    };
    let r = prober(cfg).probe(&server.url("/fixed"));
    assert_ok(&r);
}

#[test]
fn bad_ca_files_are_refused_with_their_name() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let junk = dir.path().join("junk.pem");
    std::fs::write(
        &junk,
        "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    for path in [missing, empty, junk] {
        let err = Prober::new(&ProbeConfig {
            ca_file: Some(path.clone()),
            ..short()
        })
        .unwrap_err();
        assert!(err.contains(&path.display().to_string()), "{err}");
    }
}

#[test]
fn bad_url_is_a_report_not_a_panic() {
    let r = prober(short()).probe("not a url");
    assert!(r.error_kind.is_some(), "{r:?}");
    assert_eq!(r.code, 0);
}

#[test]
fn shared_prober_across_threads() {
    let http = HttpServer::start();
    let https = HttpsServer::start();
    let p = prober(with_ca(&https));
    std::thread::scope(|s| {
        for i in 0..4 {
            let (p, http, https) = (&p, &http, &https);
            s.spawn(move || {
                for _ in 0..5 {
                    let (url, tls) = if i % 2 == 0 {
                        (http.url("/delay"), false)
                    } else {
                        (https.url("/fixed"), true)
                    };
                    let r = p.probe(&url);
                    assert_ok(&r);
                    assert_ordered(&r, tls);
                }
            });
        }
    });
}

/// CPU per probe; run with `cargo test --release --test probe -- --ignored --nocapture`.
/// "thread" is the probing thread alone (client work minus ureq's resolver
/// thread); "process" adds the in-process server and the resolver threads.
#[test]
#[ignore]
fn bench_cpu_per_probe() {
    fn process_cpu() -> f64 {
        // utime + stime of the whole process, in clock ticks (100 Hz on Linux).
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
    }
    fn thread_cpu() -> f64 {
        // First field: nanoseconds this thread has run on a CPU.
        let s = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap();
        s.split_whitespace().next().unwrap().parse::<f64>().unwrap() / 1e9
    }
    let http = HttpServer::start();
    let https = HttpsServer::start();
    let p = prober(with_ca(&https));
    let cases = [
        ("http  127.0.0.1", http.url("/fixed")),
        ("https 127.0.0.1", https.url("/fixed")),
        (
            "https localhost",
            https.url_with_host("localhost", "/fixed"),
        ),
    ];
    for (name, url) in cases {
        let n = 1000;
        for _ in 0..20 {
            assert_ok(&p.probe(&url));
        }
        let (c0, t0, w0) = (process_cpu(), thread_cpu(), Instant::now());
        for _ in 0..n {
            assert_ok(&p.probe(&url));
        }
        let per = |x: f64| x / n as f64 * 1e6;
        println!(
            "{name}: {n} probes: wall {:.0} µs, thread CPU {:.0} µs, process CPU {:.0} µs per probe",
            per(w0.elapsed().as_secs_f64()),
            per(thread_cpu() - t0),
            per(process_cpu() - c0),
        );
    }
    // Cost of building a Prober: what "an Agent per probe" would add.
    let n = 200;
    let t0 = Instant::now();
    for _ in 0..n {
        let _ = prober(short());
    }
    println!(
        "Prober::new with webpki roots: {:.0} µs wall",
        t0.elapsed().as_secs_f64() / n as f64 * 1e6
    );
}

#[test]
fn bad_chunk_length_keeps_the_bytes_received() {
    // 5 body bytes in a good chunk, then a chunk size that is not hex.
    let (url, server) = raw_server(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nZZ\r\nmore\r\n0\r\n\r\n",
    );
    let r = prober(short()).probe(&url);
    assert_eq!(r.code, 200, "{r:?}");
    assert!(r.error_kind.is_some(), "{r:?}");
    assert_eq!(r.size_download, 5, "{r:?}");
    server.join().unwrap();
}

/// The TLS error message of a probe of `url` trusting `server`'s CA.
fn tls_error(server: &HttpsServer, url: &str) -> String {
    let r = prober(with_ca(server)).probe(url);
    assert_eq!(r.error_kind, Some(ErrorKind::Tls), "{r:?}");
    assert!(r.connect > 0.0 && r.appconnect == 0.0, "{r:?}");
    r.error.unwrap_or_default()
}

#[test]
fn certificate_failures_are_sentences() {
    let s = HttpsServer::start_with(Cert::SelfSigned);
    let e = tls_error(&s, &s.url("/fixed"));
    // Trusted or not, a CA certificate cannot be the server's own.
    assert!(
        e.ends_with(
            "failed: self-signed certificate (not trusted; use --cacert FILE to trust its CA)"
        ),
        "{e}"
    );

    let s = HttpsServer::start();
    let r = prober(short()).probe(&s.url("/fixed"));
    let e = r.error.unwrap_or_default();
    assert!(
        e.contains("certificate issued by an unknown authority (not trusted; use --cacert"),
        "{e}"
    );

    let s = HttpsServer::start_with(Cert::Expired);
    let e = tls_error(&s, &s.url("/fixed"));
    assert!(
        e.contains("certificate expired on 2020-01-01 00:00:00 UTC (now 20"),
        "{e}"
    );

    let s = HttpsServer::start_with(Cert::NotYetValid);
    let e = tls_error(&s, &s.url("/fixed"));
    assert!(
        e.contains("certificate not valid before 2090-01-01 00:00:00 UTC (now 20"),
        "{e}"
    );

    let s = HttpsServer::start_with(Cert::WrongName);
    let e = tls_error(&s, &s.url("/fixed"));
    assert!(
        e.contains("certificate is for other.test, not 127.0.0.1"),
        "{e}"
    );
}

#[test]
fn credentials_are_sent_as_basic_auth_but_never_reported() {
    let server = HttpServer::start();
    let url = server
        .url("/status500")
        .replace("http://", "http://admin:TopSecret@");
    let r = prober(short()).probe(&url);
    assert_eq!(r.code, 500, "{r:?}");
    assert!(
        r.url.starts_with("http://admin:***@127.0.0.1:"),
        "{}",
        r.url
    );
    assert!(!format!("{r:?}").contains("TopSecret"));
    let head = server.requests().join("");
    // base64("admin:TopSecret")
    assert!(head.contains("Basic YWRtaW46VG9wU2VjcmV0"), "{head}");
}

#[test]
fn tls_facts_are_recorded_whether_or_not_the_certificate_verifies() {
    let s = HttpsServer::start();
    let r = prober(with_ca(&s)).probe(&s.url("/fixed"));
    assert_ok(&r);
    assert_eq!(r.tls_version.as_deref(), Some("TLSv1.3"));
    assert!(
        r.tls_cipher
            .as_deref()
            .is_some_and(|c| c.starts_with("TLS13_")),
        "{r:?}"
    );
    assert_eq!(r.cert_subject.as_deref(), Some("CN=localhost"));
    assert_eq!(r.cert_issuer.as_deref(), Some("CN=latency-logger test CA"));
    let (from, to) = (
        r.cert_not_before.expect("from"),
        r.cert_not_after.expect("to"),
    );
    assert!(from < to && to > r.timestamp as i64, "{r:?}");
    assert!(r.cert_chain_not_after.expect("chain") <= to);

    // Expired: the handshake fails, the facts are still there.
    let s = HttpsServer::start_with(Cert::Expired);
    let r = prober(with_ca(&s)).probe(&s.url("/fixed"));
    assert_eq!(r.error_kind, Some(ErrorKind::Tls), "{r:?}");
    assert_eq!(r.cert_subject.as_deref(), Some("CN=localhost"));
    assert_eq!(r.cert_not_before, Some(1_546_300_800)); // 2019-01-01
    assert_eq!(r.cert_not_after, Some(1_577_836_800)); // 2020-01-01
    assert_eq!(r.tls_version.as_deref(), Some("TLSv1.3"));

    // Self-signed and not trusted at all.
    let s = HttpsServer::start_with(Cert::SelfSigned);
    let r = prober(short()).probe(&s.url("/fixed"));
    assert_eq!(r.error_kind, Some(ErrorKind::Tls), "{r:?}");
    assert_eq!(r.cert_subject, r.cert_issuer, "{r:?}");

    // Plain http: none of it.
    let h = HttpServer::start();
    let r = prober(short()).probe(&h.url("/fixed"));
    assert_eq!(
        (r.tls_version, r.cert_subject, r.cert_not_after),
        (None, None, None)
    );
}

/// The spec of a one-line targets file `1, URL, OPTIONS`.
fn spec(url: &str, options: &str) -> Spec {
    let line = match options {
        "" => format!("1, {url}\n"),
        _ => format!("1, {url}, {options}\n"),
    };
    let t = targets::parse("t.csv", line.as_bytes()).expect("valid");
    (*t[0].spec).clone()
}

fn probe_spec(url: &str, options: &str, ip: IpMode) -> Report {
    prober(short()).probe_with(url, &spec(url, options), ip, &Progress::default())
}

#[test]
fn ip_family_is_forced_and_a_fallback_is_recorded() {
    // Served on ::1 only; the name resolves (resolve=) to 127.0.0.1 first.
    let v6 = HttpServer::start_at("[::1]:0");
    let port = v6.addr().port();
    let url = format!("http://dual.invalid:{port}/fixed");
    let both = "resolve=127.0.0.1|::1";

    let r = probe_spec(&url, both, IpMode::Any);
    assert_ok(&r);
    assert_eq!(r.ip_family.as_deref(), Some("ipv6"));
    assert_eq!(r.addresses_tried, vec![format!("127.0.0.1:{port}")]);
    assert!(
        r.fallback_time > 0.0 && r.fallback_time <= r.connect,
        "{r:?}"
    );

    let r = probe_spec(&url, both, IpMode::V6);
    assert_ok(&r);
    assert!(r.addresses_tried.is_empty(), "{r:?}");
    assert_eq!(r.remote_ip.as_deref(), Some("::1"));

    let r = probe_spec(&url, both, IpMode::V4);
    assert_eq!(r.error_kind, Some(ErrorKind::Connect), "{r:?}");
    assert_eq!(r.remote_ip, None);

    let r = probe_spec(&url, "resolve=127.0.0.1", IpMode::V6);
    assert_eq!(r.error_kind, Some(ErrorKind::Dns), "{r:?}");
    assert!(
        r.error
            .as_deref()
            .unwrap_or_default()
            .contains("no addresses"),
        "{r:?}"
    );
    // Nothing but loopback was contacted: the name itself is never looked up.
    assert!(
        v6.requests()
            .iter()
            .all(|h| h.to_ascii_lowercase().contains("host: dual.invalid:")),
        "{:?}",
        v6.requests()
    );
}

#[test]
fn bind_and_resolve_choose_the_path() {
    let server = HttpServer::start();
    let port = server.addr().port();
    let url = format!("http://backend.invalid:{port}/fixed");
    let r = probe_spec(&url, "resolve=127.0.0.1, bind=127.0.0.2", IpMode::Any);
    assert_ok(&r);
    assert_eq!(r.code, 200);
    let peers = server.peers();
    assert_eq!(
        peers.last().map(|p| p.ip().to_string()).as_deref(),
        Some("127.0.0.2")
    );

    let r = probe_spec(&url, "resolve=127.0.0.1, bind=no-such-if0", IpMode::Any);
    assert_eq!(r.error_kind, Some(ErrorKind::Connect), "{r:?}");
    assert!(r.namelookup > 0.0, "{r:?}");
}

#[test]
fn body_match_is_an_expectation() {
    let server = HttpServer::start();
    let url = server.url("/fixed");
    let r = probe_spec(&url, "match=^abcdef", IpMode::Any);
    assert_ok(&r);
    // The body is the alphabet over and over: never two z in a row.
    let r = probe_spec(&url, "match=zz+", IpMode::Any);
    assert_eq!(r.error_kind, Some(ErrorKind::Expectation), "{r:?}");
    assert_eq!(
        r.error.as_deref(),
        Some("body does not match \"zz+\" (first 64 KiB)")
    );
    assert_eq!(r.size_download, FIXED_BODY_LEN as i64);
}

#[test]
fn an_address_that_never_answers_costs_its_share_and_is_recorded() {
    use socket2::{Domain, Socket, Type};
    let server = HttpServer::start();
    let port = server.addr().port();
    // A listener on 127.0.0.2 with its backlog full: further SYNs are dropped,
    // so a connect there hangs (loopback only; nothing leaves the machine).
    let silent = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    let addr: std::net::SocketAddr = format!("127.0.0.2:{port}").parse().expect("addr");
    silent
        .bind(&addr.into())
        .expect("bind 127.0.0.2 on the server's port");
    silent.listen(0).expect("listen");
    let filler = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).expect("fill");
    let url = format!("http://silent.invalid:{port}/fixed");
    let cfg = ProbeConfig {
        connect_timeout: Duration::from_secs(2),
        ..short()
    };
    let options = "resolve=127.0.0.2|127.0.0.1";
    let r = prober(cfg).probe_with(
        &url,
        &spec(&url, options),
        IpMode::Any,
        &Progress::default(),
    );
    assert_ok(&r);
    assert_eq!(r.remote_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(r.addresses_tried, vec![format!("127.0.0.2:{port}")]);
    // Two addresses share the 2 s budget 2:1, as ureq does: ~1.33 s lost.
    assert!((1.0..1.8).contains(&r.fallback_time), "{r:?}");
    assert!(r.connect >= r.fallback_time, "{r:?}");
    drop(filler);
}

/// A server for one connection that writes `reply` (owned), optionally
/// before reading the request.
fn raw_server_owned(reply: Vec<u8>, first: bool) -> (String, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        if first {
            let _ = s.write_all(&reply);
        }
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && s.read(&mut b).unwrap_or(0) == 1 {
            head.push(b[0]);
        }
        if !first {
            let _ = s.write_all(&reply);
        }
    });
    (url, handle)
}

#[test]
fn reused_connection_buffers_never_show_an_earlier_connections_bytes() {
    // One thread, one prober: every connection after the first reuses the
    // memory of the one before (src/buffers.rs).
    let p = prober(short());
    let filler = |n: usize| {
        let mut h = b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n".to_vec();
        while h.len() < n {
            h.extend_from_slice(b"X-Stale: ");
            h.extend_from_slice(&[b'S'; 2000]);
            h.extend_from_slice(b"\r\n");
        }
        h.extend_from_slice(b"\r\nSTALESTALESTALESTALE");
        h
    };
    // 1: a response head of ~60 KiB fills most of the input buffer.
    let (url, server) = raw_server_owned(filler(60 * 1024), false);
    let r = p.probe(&url);
    assert_ok(&r);
    assert_eq!(r.size_download, 20, "{r:?}");
    server.join().unwrap();
    // 2: a short body cut short: only its own 10 bytes count.
    let (url, server) = raw_server_owned(
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789".to_vec(),
        false,
    );
    let r = p.probe(&url);
    assert_eq!(r.error_kind, Some(ErrorKind::Io), "{r:?}");
    assert_eq!((r.code, r.size_download), (200, 10), "{r:?}");
    assert!(!format!("{r:?}").contains("STALE"), "{r:?}");
    server.join().unwrap();
    // 3: a head over 64 KiB is refused, not stalled, and the next probe
    // on the same memory is fine.
    let (url, server) = raw_server_owned(filler(70 * 1024), false);
    let r = p.probe(&url);
    assert!(r.error_kind.is_some(), "{r:?}");
    assert!(r.total < 5.0, "{r:?}");
    server.join().unwrap();
    // 4: a server that answers before it is asked: the answer is its own.
    let (url, server) = raw_server_owned(
        b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n".to_vec(),
        true,
    );
    let r = p.probe(&url);
    assert_ok(&r);
    assert_eq!((r.code, r.size_download), (204, 0), "{r:?}");
    server.join().unwrap();
    // 5: a bad chunk after a stale-looking buffer: the bytes kept are this
    // response's.
    let (url, server) = raw_server_owned(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nZZ\r\n".to_vec(),
        false,
    );
    let r = p.probe(&url);
    assert_eq!((r.code, r.size_download), (200, 5), "{r:?}");
    assert!(!format!("{r:?}").contains("STALE"), "{r:?}");
    server.join().unwrap();
}

#[test]
fn a_signal_while_waiting_for_the_response_does_not_extend_the_timeout() {
    // A handler as the program installs them (SA_RESTART): a socket read
    // with a timeout still returns EINTR (signal(7)) and is retried.
    let got = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGUSR1, got.clone()).expect("handler");
    let server = HttpServer::start();
    let url = server.url("/hang");
    let cfg = ProbeConfig {
        timeout: Duration::from_millis(1000),
        ..short()
    };
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    let probing = std::thread::spawn(move || {
        // SAFETY: pthread_self has no preconditions.
        tid_tx.send(unsafe { libc::pthread_self() }).unwrap();
        prober(cfg).probe(&url)
    });
    let tid = tid_rx.recv().unwrap();
    std::thread::sleep(Duration::from_millis(800));
    // SAFETY: the thread is alive (it is in its 1 s probe) and SIGUSR1 has a handler.
    assert_eq!(unsafe { libc::pthread_kill(tid, libc::SIGUSR1) }, 0);
    let r = probing.join().unwrap();
    assert!(
        got.load(std::sync::atomic::Ordering::SeqCst),
        "signal delivered"
    );
    assert_eq!(r.error_kind, Some(ErrorKind::Timeout), "{r:?}");
    assert!(r.total >= 1.0 && r.total < 1.5, "{r:?}");
}

// ---------------------------------------------------------------------------
// Redirects, followed hop by hop by the prober (issue 19)

fn follow() -> ProbeConfig {
    ProbeConfig {
        follow_redirects: true,
        ..short()
    }
}

/// `/to/CODE?LOCATION` on `server`, the Location percent-encoded.
fn to(server: &HttpServer, code: u16, location: impl AsRef<[u8]>) -> String {
    let mut q = String::new();
    for &b in location.as_ref() {
        if b.is_ascii_alphanumeric() || b"/:.-_".contains(&b) {
            q.push(b as char);
        } else {
            q.push_str(&format!("%{b:02X}"));
        }
    }
    server.url(&format!("/to/{code}?{q}"))
}

fn probe_following(url: &str, options: &str) -> Report {
    prober(follow()).probe_with(url, &spec(url, options), IpMode::Any, &Progress::default())
}

#[track_caller]
fn assert_refused(r: &Report, code: i32, says: &str) {
    assert_eq!(r.error_kind, Some(ErrorKind::Redirect), "{r:?}");
    assert_eq!(r.code, code, "{r:?}");
    let error = r.error.as_deref().unwrap_or_default();
    assert!(error.contains(says), "{says:?} not in {error:?}");
    // The 3xx's own body was read: the record describes that response.
    assert_eq!(r.size_download, "redirect\n".len() as i64, "{r:?}");
}

#[test]
fn redirect_to_a_bad_port_is_refused_not_probed_elsewhere() {
    let server = HttpServer::start();
    let url = to(&server, 302, "http://127.0.0.1:99999/ok");
    let r = probe_following(&url, "");
    assert_refused(&r, 302, "99999");
    assert_eq!(r.redirect_count, 0, "{r:?}");
    assert_eq!(r.effective_url.as_deref(), Some(url.as_str()));
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn redirect_to_another_scheme_or_a_malformed_location_is_refused() {
    let server = HttpServer::start();
    let r = probe_following(&to(&server, 301, "file:///etc/passwd"), "");
    assert_refused(&r, 301, "redirect to unsupported scheme file");
    let r = probe_following(&to(&server, 302, "http://[::1"), "");
    assert_refused(&r, 302, "malformed Location");
    let r = probe_following(&to(&server, 308, b"/\xffbad"), "");
    assert_refused(&r, 308, "malformed Location: not UTF-8");
    // Nothing but the 3xx itself was ever requested.
    assert_eq!(server.requests().len(), 3, "{:?}", server.requests());
}

#[test]
fn resolve_applies_to_every_hop_to_the_same_host_and_port() {
    let server = HttpServer::start();
    let port = server.addr().port();
    // probe.invalid never resolves: only resolve= can get either hop there.
    let url = format!("http://probe.invalid:{port}/to/302?/fixed");
    let r = probe_following(&url, "resolve=127.0.0.1");
    assert_ok(&r);
    assert_eq!((r.code, r.redirect_count), (200, 1), "{r:?}");
    assert_eq!(
        r.effective_url.as_deref(),
        Some(format!("http://probe.invalid:{port}/fixed").as_str())
    );
    // Another port on the same host is another host:port: DNS, which fails.
    let other = format!("http://probe.invalid:{port}/to/302?http://probe.invalid:1/");
    let r = probe_following(&other, "resolve=127.0.0.1");
    assert_eq!(r.error_kind, Some(ErrorKind::Dns), "{r:?}");
    assert_eq!(r.redirect_count, 1, "{r:?}");
}

#[test]
fn redirect_methods_follow_curl() {
    let server = HttpServer::start();
    let method_of = |head: &String| head.split_whitespace().next().map(str::to_string);
    for (code, second) in [(307, "POST"), (308, "POST"), (302, "GET"), (303, "GET")] {
        let before = server.requests().len();
        let r = probe_following(&to(&server, code, "/fixed"), "method=POST");
        assert_ok(&r);
        assert_eq!(r.code, 200, "{code}: {r:?}");
        let heads = server.requests();
        let methods: Vec<_> = heads[before..].iter().map(method_of).collect();
        assert_eq!(
            methods,
            vec![Some("POST".to_string()), Some(second.to_string())],
            "{code}"
        );
    }
}

#[test]
fn too_many_redirects_end_with_the_last_3xx() {
    let server = HttpServer::start();
    let r = probe_following(&server.url("/loop"), "");
    assert_refused(&r, 302, "too many redirects (more than 30)");
    assert_eq!(r.redirect_count, 30, "{r:?}");
    assert_eq!(server.requests().len(), 31);
    assert!(r.redirect_time > 0.0 && r.redirect_time < r.total, "{r:?}");
}

#[test]
fn credentials_are_not_sent_to_another_origin() {
    let a = HttpServer::start();
    let b = HttpServer::start();
    let secret_headers =
        "header=Authorization: Bearer tok3n, header=Cookie: c=s3ss, header=X-Trace: t1";
    // Same origin: everything is sent again.
    let r = probe_following(&to(&a, 302, "/fixed"), secret_headers);
    assert_ok(&r);
    let heads = a.requests();
    assert_eq!(heads.len(), 2);
    assert!(
        heads[1].contains("tok3n") && heads[1].contains("s3ss"),
        "{heads:?}"
    );
    // Another port is another origin: credentials stay behind.
    let url = to(&a, 302, b.url("/fixed"));
    let with_user = url.replacen("http://", "http://user:pa55w0rd@", 1);
    let r = probe_following(&with_user, secret_headers);
    assert_ok(&r);
    assert_eq!(r.code, 200);
    let heads = b.requests();
    assert_eq!(heads.len(), 1, "{heads:?}");
    let head = heads[0].to_ascii_lowercase();
    assert!(!head.contains("authorization"), "{head}");
    assert!(!head.contains("cookie"), "{head}");
    assert!(head.contains("x-trace: t1"), "{head}");
    assert!(!format!("{r:?}").contains("pa55w0rd"), "{r:?}");
}
