//! The probe report: one record per probe (failures and skips included), its
//! JSON line form and its Avro form (schema in `src/report.avsc`).

use std::fmt;
use std::sync::Arc;

/// Why a probe produced no (complete) response: a closed list, named by the
/// phase that failed (documented in docs/schema.md and in `report.avsc`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Dns,
    Connect,
    Tls,
    Timeout,
    Io,
    Http,
    /// Never probed: the queue was full or the process was stopping.
    Skipped,
    /// In flight when the stop bound (`--stop-timeout`) ran out: timings so far.
    Interrupted,
    /// A response arrived but an expectation did not hold (status not expected).
    Expectation,
    /// A redirect that is not followed: unsupported scheme, malformed or
    /// invalid Location, too many hops (the record is the 3xx's).
    Redirect,
    /// The prober itself failed on this probe (a contained panic): a bug.
    Internal,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Dns => "dns",
            ErrorKind::Connect => "connect",
            ErrorKind::Tls => "tls",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Io => "io",
            ErrorKind::Http => "http",
            ErrorKind::Skipped => "skipped",
            ErrorKind::Interrupted => "interrupted",
            ErrorKind::Expectation => "expectation",
            ErrorKind::Redirect => "redirect",
            ErrorKind::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One probe's result. Timings are cumulative seconds from the request start,
/// with curl's meaning; a phase never reached stays 0.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Report {
    pub url: String,
    /// HTTP status; 0 when no response arrived.
    pub code: i32,
    /// POSIX seconds at probe start.
    pub timestamp: f64,
    pub namelookup: f64,
    pub connect: f64,
    pub appconnect: f64,
    pub pretransfer: f64,
    pub starttransfer: f64,
    pub total: f64,
    pub size_download: i64,
    pub remote_ip: Option<String>,
    pub http_version: Option<String>,
    pub error_kind: Option<ErrorKind>,
    pub error: Option<String>,
    /// POSIX seconds the probe was scheduled for.
    pub scheduled: f64,
    /// Seconds the probe started after `scheduled`.
    pub lateness: f64,
    /// Unique per record (`<run prefix>-<sequence>`, see `crate::record`).
    pub id: String,
    /// Who probed (`--source`, default the host name); stamped with `id`.
    pub source: Arc<str>,
    /// `--label KEY=VALUE` pairs, keys unique, in the order given.
    pub labels: Labels,
    /// A response arrived and every expectation held (from `error_kind`,
    /// set where the record is made, `crate::record`).
    pub success: Option<bool>,
    /// The target's `name=` option.
    pub name: Option<String>,
    /// Redirects followed (curl `num_redirects`).
    pub redirect_count: i32,
    /// Seconds spent on the hops before the last (curl `time_redirect`).
    pub redirect_time: f64,
    /// The last URL requested (curl `url_effective`), credentials hidden.
    pub effective_url: Option<String>,
    /// TLS session and the server's certificate (https; also when it did not verify).
    pub tls_version: Option<String>,
    pub tls_cipher: Option<String>,
    pub alpn: Option<String>,
    pub cert_subject: Option<String>,
    pub cert_issuer: Option<String>,
    /// POSIX seconds.
    pub cert_not_before: Option<i64>,
    pub cert_not_after: Option<i64>,
    /// Earliest expiry in the presented chain, POSIX seconds.
    pub cert_chain_not_after: Option<i64>,
    /// `ipv4` or `ipv6`: the family of `remote_ip`.
    pub ip_family: Option<String>,
    /// Addresses given up on before the one that answered (or before failing).
    pub addresses_tried: Vec<String>,
    /// Seconds lost on `addresses_tried`.
    pub fallback_time: f64,
}

/// Labels shared by every report of a run (one allocation, not one per report).
pub type Labels = Arc<[(String, String)]>;

/// The Avro schema of `Report`, from the source tree.
pub const SCHEMA_JSON: &str = include_str!("report.avsc");

impl Report {
    /// Appends the report as one JSON object and a newline, with the Avro
    /// schema's field names.
    pub fn write_json_line(&self, out: &mut Vec<u8>) {
        use std::io::Write as _;
        // Writing into a Vec cannot fail; serde_json only escapes the strings.
        let s = |v: &str| serde_json::to_string(v).unwrap_or_else(|_| "\"\"".to_string());
        let opt = |v: Option<&str>| v.map_or_else(|| "null".to_string(), s);
        let _ = writeln!(
            out,
            "{{\"url\":{},\"code\":{},\"timestamp\":{},\"namelookup\":{},\"connect\":{},\
             \"appconnect\":{},\"pretransfer\":{},\"starttransfer\":{},\"total\":{},\
             \"size_download\":{},\"remote_ip\":{},\"http_version\":{},\"error_kind\":{},\
             \"error\":{},\"scheduled\":{},\"lateness\":{},\"id\":{},\"source\":{},\"labels\":{{{}}},\"success\":{},\"name\":{},\"redirect_count\":{},\"redirect_time\":{},\"effective_url\":{},\"tls_version\":{},\"tls_cipher\":{},\"alpn\":{},\"cert_subject\":{},\"cert_issuer\":{},\"cert_not_before\":{},\"cert_not_after\":{},\"cert_chain_not_after\":{},\"ip_family\":{},\"addresses_tried\":[{}],\"fallback_time\":{}}}",
            s(&self.url),
            self.code,
            num(self.timestamp),
            num(self.namelookup),
            num(self.connect),
            num(self.appconnect),
            num(self.pretransfer),
            num(self.starttransfer),
            num(self.total),
            self.size_download,
            opt(self.remote_ip.as_deref()),
            opt(self.http_version.as_deref()),
            opt(self.error_kind.map(ErrorKind::as_str)),
            opt(self.error.as_deref()),
            num(self.scheduled),
            num(self.lateness),
            s(&self.id),
            s(&self.source),
            self.labels
                .iter()
                .map(|(k, v)| format!("{}:{}", s(k), s(v)))
                .collect::<Vec<_>>()
                .join(","),
            self.success
                .map_or("null", |b| if b { "true" } else { "false" }),
            opt(self.name.as_deref()),
            self.redirect_count,
            num(self.redirect_time),
            opt(self.effective_url.as_deref()),
            opt(self.tls_version.as_deref()),
            opt(self.tls_cipher.as_deref()),
            opt(self.alpn.as_deref()),
            opt(self.cert_subject.as_deref()),
            opt(self.cert_issuer.as_deref()),
            int(self.cert_not_before),
            int(self.cert_not_after),
            int(self.cert_chain_not_after),
            opt(self.ip_family.as_deref()),
            self.addresses_tried
                .iter()
                .map(|a| s(a))
                .collect::<Vec<_>>()
                .join(","),
            num(self.fallback_time),
        );
    }

    /// Appends the report's Avro binary encoding (report.avsc, fields in
    /// order), written directly: through apache-avro's generic `Value` it
    /// cost a tree of allocations and a schema walk per record (issue 10).
    /// The tests check it byte for byte against apache-avro's encoding.
    pub fn write_avro(&self, out: &mut Vec<u8>) {
        use avro::*;
        string(out, &self.url);
        long(out, self.code.into());
        for d in [
            self.timestamp,
            self.namelookup,
            self.connect,
            self.appconnect,
            self.pretransfer,
            self.starttransfer,
            self.total,
        ] {
            double(out, d);
        }
        long(out, self.size_download);
        opt_string(out, self.remote_ip.as_deref());
        opt_string(out, self.http_version.as_deref());
        opt_string(out, self.error_kind.map(ErrorKind::as_str));
        opt_string(out, self.error.as_deref());
        double(out, self.scheduled);
        double(out, self.lateness);
        string(out, &self.id);
        string(out, &self.source);
        if !self.labels.is_empty() {
            long(out, self.labels.len() as i64);
            for (k, v) in self.labels.iter() {
                string(out, k);
                string(out, v);
            }
        }
        long(out, 0);
        match self.success {
            None => long(out, 0),
            Some(b) => {
                long(out, 1);
                out.push(u8::from(b));
            }
        }
        opt_string(out, self.name.as_deref());
        long(out, self.redirect_count.into());
        double(out, self.redirect_time);
        for s in [
            &self.effective_url,
            &self.tls_version,
            &self.tls_cipher,
            &self.alpn,
            &self.cert_subject,
            &self.cert_issuer,
        ] {
            opt_string(out, s.as_deref());
        }
        for n in [
            self.cert_not_before,
            self.cert_not_after,
            self.cert_chain_not_after,
        ] {
            match n {
                None => long(out, 0),
                Some(n) => {
                    long(out, 1);
                    long(out, n);
                }
            }
        }
        opt_string(out, self.ip_family.as_deref());
        if !self.addresses_tried.is_empty() {
            long(out, self.addresses_tried.len() as i64);
            for a in &self.addresses_tried {
                string(out, a);
            }
        }
        long(out, 0);
        double(out, self.fallback_time);
    }
}

/// Avro binary primitives (specification 1.11, "Binary Encoding").
mod avro {
    /// int and long: zig-zag, then base-128 varint.
    pub fn long(out: &mut Vec<u8>, n: i64) {
        let mut z = ((n << 1) ^ (n >> 63)) as u64;
        while z >= 0x80 {
            out.push((z as u8) | 0x80);
            z >>= 7;
        }
        out.push(z as u8);
    }

    pub fn double(out: &mut Vec<u8>, d: f64) {
        out.extend_from_slice(&d.to_le_bytes());
    }

    pub fn string(out: &mut Vec<u8>, s: &str) {
        long(out, s.len() as i64);
        out.extend_from_slice(s.as_bytes());
    }

    /// `["null", "string"]`.
    pub fn opt_string(out: &mut Vec<u8>, s: Option<&str>) {
        match s {
            None => long(out, 0),
            Some(s) => {
                long(out, 1);
                string(out, s);
            }
        }
    }
}

/// An optional integer as JSON.
fn int(v: Option<i64>) -> String {
    v.map_or_else(|| "null".to_string(), |n| n.to_string())
}

/// JSON has no NaN or infinity; a timing is never either, but never emit invalid JSON.
fn num(v: f64) -> String {
    if v.is_finite() {
        // `{:?}` keeps a decimal point and round-trips exactly.
        format!("{v:?}")
    } else {
        "0.0".to_string()
    }
}

/// How each Avro record is framed on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Avro single-object encoding: 0xC3 0x01, 8-byte CRC-64-AVRO fingerprint (LE), binary.
    SingleObject,
    /// Confluent Schema Registry wire format: 0x00, 4-byte big-endian schema id, binary.
    Confluent { schema_id: u32 },
}

/// Encodes reports as framed Avro binary with the schema from the source tree.
pub struct AvroEncoder {
    header: Vec<u8>,
}

impl AvroEncoder {
    pub fn new(framing: Framing) -> Result<AvroEncoder, String> {
        let schema = parse_schema()?;
        let header = match framing {
            Framing::SingleObject => {
                let fp = schema.fingerprint::<apache_avro::rabin::Rabin>();
                let mut h = vec![0xC3, 0x01];
                h.extend_from_slice(&fp.bytes);
                h
            }
            Framing::Confluent { schema_id } => {
                let mut h = vec![0x00];
                h.extend_from_slice(&schema_id.to_be_bytes());
                h
            }
        };
        Ok(AvroEncoder { header })
    }

    /// The framed Avro bytes of one report.
    pub fn encode(&self, report: &Report) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.header.len() + 256);
        out.extend_from_slice(&self.header);
        report.write_avro(&mut out);
        out
    }
}

/// The parsed schema; failing here means the built-in .avsc is broken.
pub fn parse_schema() -> Result<apache_avro::Schema, String> {
    apache_avro::Schema::parse_str(SCHEMA_JSON)
        .map_err(|e| format!("built-in Avro schema is invalid: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use apache_avro::types::Value;

    /// The report as apache-avro's generic value (the reference encoding).
    fn to_avro_value(r: &Report) -> Value {
        use apache_avro::types::Value;
        let opt = |v: Option<&str>| match v {
            None => Value::Union(0, Box::new(Value::Null)),
            Some(s) => Value::Union(1, Box::new(Value::String(s.to_string()))),
        };
        Value::Record(vec![
            ("url".into(), Value::String(r.url.clone())),
            ("code".into(), Value::Int(r.code)),
            ("timestamp".into(), Value::Double(r.timestamp)),
            ("namelookup".into(), Value::Double(r.namelookup)),
            ("connect".into(), Value::Double(r.connect)),
            ("appconnect".into(), Value::Double(r.appconnect)),
            ("pretransfer".into(), Value::Double(r.pretransfer)),
            ("starttransfer".into(), Value::Double(r.starttransfer)),
            ("total".into(), Value::Double(r.total)),
            ("size_download".into(), Value::Long(r.size_download)),
            ("remote_ip".into(), opt(r.remote_ip.as_deref())),
            ("http_version".into(), opt(r.http_version.as_deref())),
            (
                "error_kind".into(),
                opt(r.error_kind.map(ErrorKind::as_str)),
            ),
            ("error".into(), opt(r.error.as_deref())),
            ("scheduled".into(), Value::Double(r.scheduled)),
            ("lateness".into(), Value::Double(r.lateness)),
            ("id".into(), Value::String(r.id.clone())),
            ("source".into(), Value::String(r.source.to_string())),
            (
                "labels".into(),
                Value::Map(
                    r.labels
                        .iter()
                        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                        .collect(),
                ),
            ),
            (
                "success".into(),
                match r.success {
                    None => Value::Union(0, Box::new(Value::Null)),
                    Some(b) => Value::Union(1, Box::new(Value::Boolean(b))),
                },
            ),
            ("name".into(), opt(r.name.as_deref())),
            ("redirect_count".into(), Value::Int(r.redirect_count)),
            ("redirect_time".into(), Value::Double(r.redirect_time)),
            ("effective_url".into(), opt(r.effective_url.as_deref())),
            ("tls_version".into(), opt(r.tls_version.as_deref())),
            ("tls_cipher".into(), opt(r.tls_cipher.as_deref())),
            ("alpn".into(), opt(r.alpn.as_deref())),
            ("cert_subject".into(), opt(r.cert_subject.as_deref())),
            ("cert_issuer".into(), opt(r.cert_issuer.as_deref())),
            ("cert_not_before".into(), long_value(r.cert_not_before)),
            ("cert_not_after".into(), long_value(r.cert_not_after)),
            (
                "cert_chain_not_after".into(),
                long_value(r.cert_chain_not_after),
            ),
            ("ip_family".into(), opt(r.ip_family.as_deref())),
            (
                "addresses_tried".into(),
                Value::Array(
                    r.addresses_tried
                        .iter()
                        .map(|a| Value::String(a.clone()))
                        .collect(),
                ),
            ),
            ("fallback_time".into(), Value::Double(r.fallback_time)),
        ])
    }

    /// An optional long as an Avro `["null", "long"]` union.
    fn long_value(v: Option<i64>) -> apache_avro::types::Value {
        use apache_avro::types::Value;
        match v {
            None => Value::Union(0, Box::new(Value::Null)),
            Some(n) => Value::Union(1, Box::new(Value::Long(n))),
        }
    }

    fn sample() -> Report {
        Report {
            url: "https://example.com/\"q\"".to_string(),
            code: 200,
            timestamp: 1_700_000_000.25,
            namelookup: 0.001,
            connect: 0.002,
            appconnect: 0.01,
            pretransfer: 0.0101,
            starttransfer: 0.2,
            total: 0.25,
            size_download: 1234,
            remote_ip: Some("127.0.0.1".to_string()),
            http_version: Some("HTTP/1.1".to_string()),
            error_kind: None,
            error: None,
            scheduled: 1_700_000_000.0,
            lateness: 0.25,
            id: "0123456789abcdef-7".to_string(),
            source: "edge-7".into(),
            labels: vec![
                ("site".to_string(), "ams \"1\"".to_string()),
                ("uplink".to_string(), "lte".to_string()),
            ]
            .into(),
            success: Some(true),
            name: Some("edge api".into()),
            redirect_count: 1,
            redirect_time: 0.001,
            effective_url: Some("https://example.com/next".into()),
            tls_version: Some("TLSv1.3".into()),
            tls_cipher: Some("TLS13_AES_128_GCM_SHA256".into()),
            alpn: None,
            cert_subject: Some("CN=example.com".into()),
            cert_issuer: Some("CN=Example CA, O=Example".into()),
            cert_not_before: Some(1_690_000_000),
            cert_not_after: Some(1_790_000_000),
            cert_chain_not_after: Some(1_780_000_000),
            ip_family: Some("ipv4".into()),
            addresses_tried: vec!["[::1]:443".into()],
            fallback_time: 0.25,
        }
    }

    /// Reports that exercise every branch of the encoding: each optional
    /// field absent and present, empty and long strings, negative and large
    /// numbers, empty and non-empty maps and arrays.
    fn variants() -> Vec<Report> {
        let full = sample();
        let long = "é".repeat(300);
        vec![
            full.clone(),
            Report::default(),
            Report {
                url: "http://x/".into(),
                timestamp: 2.5,
                scheduled: 1.5,
                lateness: 1.0,
                error_kind: Some(ErrorKind::Skipped),
                error: Some("queue full".into()),
                ..Report::default()
            },
            Report {
                code: -1,
                size_download: i64::MAX,
                redirect_count: i32::MIN,
                success: Some(false),
                cert_not_before: Some(i64::MIN),
                cert_not_after: Some(-1),
                cert_chain_not_after: None,
                error_kind: Some(ErrorKind::Tls),
                error: Some(long.clone()),
                labels: (0..70)
                    .map(|i| (format!("k{i}"), long.clone()))
                    .collect::<Vec<_>>()
                    .into(),
                addresses_tried: (0..130).map(|i| format!("10.0.0.{i}:443")).collect(),
                fallback_time: f64::NAN,
                lateness: -0.0,
                ..full
            },
        ]
    }

    #[test]
    fn hand_written_encoding_is_apache_avros_byte_for_byte() {
        let schema = parse_schema().expect("schema");
        #[allow(deprecated)] // its replacement needs a builder per call; same bytes
        let reference = |r: &Report| apache_avro::to_avro_datum(&schema, to_avro_value(r));
        for (i, r) in variants().iter().enumerate() {
            let mut ours = Vec::new();
            r.write_avro(&mut ours);
            // apache-avro writes a map in its HashMap's order, so compare the
            // bytes of reports with at most one label, and every report decoded.
            if r.labels.len() <= 1 {
                let theirs = reference(r).expect("reference");
                assert!(ours == theirs, "variant {i}: bytes differ");
            } else {
                let one = Report {
                    labels: r.labels[..1].to_vec().into(),
                    ..r.clone()
                };
                let mut ours_one = Vec::new();
                one.write_avro(&mut ours_one);
                assert!(
                    ours_one == reference(&one).expect("reference"),
                    "variant {i}: bytes differ"
                );
            }
            #[allow(deprecated)]
            let back = apache_avro::from_avro_datum(&schema, &mut &ours[..], None).expect("decode");
            if !r.fallback_time.is_nan() {
                assert!(back == to_avro_value(r), "variant {i}: decodes differently");
            }
        }
    }

    /// The schema without its last `drop` fields: what an earlier version wrote.
    fn earlier_schema(drop: usize) -> apache_avro::Schema {
        let mut v: serde_json::Value = serde_json::from_str(SCHEMA_JSON).expect("schema JSON");
        let fields = v["fields"].as_array_mut().expect("fields");
        fields.truncate(fields.len() - drop);
        apache_avro::Schema::parse(&v).expect("earlier schema")
    }

    #[test]
    fn schema_reads_and_is_read_by_its_earlier_versions() {
        use apache_avro::schema_compatibility::SchemaCompatibility;
        let now = parse_schema().expect("schema");
        // Before source/labels, before id, and the original tool's nine fields.
        let json: serde_json::Value = serde_json::from_str(SCHEMA_JSON).expect("schema JSON");
        let total = json["fields"].as_array().expect("fields").len();
        for drop in [3, 11, 14, 16, 18, 19, total - 9] {
            let before = earlier_schema(drop);
            assert!(
                SchemaCompatibility::mutual_read(&before, &now).is_ok(),
                "not compatible both ways with {drop} fields fewer"
            );
        }
        // And a record written now decodes with the earlier reader (and back).
        let enc = AvroEncoder::new(Framing::SingleObject).expect("encoder");
        let bytes = enc.encode(&sample());
        let before = earlier_schema(18);
        let reader = apache_avro::reader::datum::GenericDatumReader::builder(&now)
            .reader_schema(&before)
            .build()
            .expect("reader");
        let value = reader
            .read_value(&mut &bytes[10..])
            .expect("old reader decodes a new record");
        let apache_avro::types::Value::Record(fields) = value else {
            panic!("not a record")
        };
        assert_eq!(fields.len(), 17);
        assert_eq!(fields[16].0, "id");
    }

    #[test]
    fn readme_lists_every_field() {
        let schema_doc = include_str!("../docs/schema.md");
        let cells: String = schema_doc
            .lines()
            .filter(|l| l.starts_with("| `"))
            .filter_map(|l| l.split('|').nth(1))
            .collect();
        let schema: serde_json::Value = serde_json::from_str(SCHEMA_JSON).expect("schema JSON");
        for f in schema["fields"].as_array().expect("fields") {
            let name = f["name"].as_str().expect("name");
            assert!(
                cells.contains(&format!("`{name}`")),
                "docs/schema.md lacks field {name}"
            );
        }
    }

    #[test]
    fn json_line_round_trips_with_schema_field_names() {
        let mut out = Vec::new();
        sample().write_json_line(&mut out);
        assert_eq!(out.last(), Some(&b'\n'));
        let v: serde_json::Value = serde_json::from_slice(&out).expect("valid JSON");
        assert_eq!(v["url"], "https://example.com/\"q\"");
        assert_eq!(v["code"], 200);
        assert_eq!(v["total"], 0.25);
        assert_eq!(v["error_kind"], serde_json::Value::Null);
        assert_eq!(v["source"], "edge-7");
        assert_eq!(v["labels"]["site"], "ams \"1\"");
        assert_eq!(v["labels"]["uplink"], "lte");
        assert_eq!(v["success"], true);
        assert_eq!(v["name"], "edge api");
        let schema: serde_json::Value = serde_json::from_str(SCHEMA_JSON).expect("schema JSON");
        let names: Vec<&str> = schema["fields"]
            .as_array()
            .expect("fields")
            .iter()
            .map(|f| f["name"].as_str().expect("name"))
            .collect();
        let keys: Vec<&str> = v
            .as_object()
            .expect("object")
            .keys()
            .map(|k| k.as_str())
            .collect();
        let mut sorted_names = names.clone();
        sorted_names.sort_unstable();
        let mut sorted_keys = keys.clone();
        sorted_keys.sort_unstable();
        assert_eq!(sorted_keys, sorted_names);
    }

    #[test]
    fn skipped_report_names_kind() {
        let r = Report {
            url: "http://a.test/".into(),
            timestamp: 10.5,
            scheduled: 10.0,
            lateness: 0.5,
            error_kind: Some(ErrorKind::Skipped),
            error: Some("queue full".into()),
            ..Report::default()
        };
        let mut out = Vec::new();
        r.write_json_line(&mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).expect("valid JSON");
        assert_eq!(v["error_kind"], "skipped");
        assert_eq!(v["lateness"], 0.5);
    }

    #[test]
    fn single_object_encoding_decodes_back() {
        let enc = AvroEncoder::new(Framing::SingleObject).expect("encoder");
        let bytes = enc.encode(&sample());
        assert_eq!(&bytes[..2], &[0xC3, 0x01]);
        let schema = parse_schema().expect("schema");
        let fp = schema.fingerprint::<apache_avro::rabin::Rabin>();
        assert_eq!(&bytes[2..10], fp.bytes.as_slice());
        let reader = apache_avro::reader::datum::GenericDatumReader::builder(&schema)
            .build()
            .expect("reader");
        let value = reader.read_value(&mut &bytes[10..]).expect("decode");
        assert_eq!(value, to_avro_value(&sample()));
        let Value::Record(fields) = value else {
            panic!("not a record")
        };
        assert_eq!(
            fields[0].1,
            Value::String("https://example.com/\"q\"".into())
        );
    }

    #[test]
    fn confluent_framing_has_magic_and_id() {
        let enc = AvroEncoder::new(Framing::Confluent {
            schema_id: 0x01020304,
        })
        .expect("enc");
        let bytes = enc.encode(&sample());
        assert_eq!(&bytes[..5], &[0, 1, 2, 3, 4]);
    }

    #[test]
    fn original_schema_fields_unchanged_and_new_ones_have_defaults() {
        let schema: serde_json::Value = serde_json::from_str(SCHEMA_JSON).expect("schema JSON");
        assert_eq!(schema["name"], "Report");
        assert_eq!(schema["namespace"], "com.passingcuriosity.latency_logger");
        let fields = schema["fields"].as_array().expect("fields");
        let original = [
            ("url", "string"),
            ("code", "int"),
            ("timestamp", "double"),
            ("namelookup", "double"),
            ("connect", "double"),
            ("appconnect", "double"),
            ("pretransfer", "double"),
            ("starttransfer", "double"),
            ("total", "double"),
        ];
        for (f, (name, ty)) in fields.iter().zip(original) {
            assert_eq!(f["name"], name);
            assert_eq!(f["type"], ty);
        }
        for f in &fields[original.len()..] {
            assert!(f.get("default").is_some(), "{} lacks a default", f["name"]);
        }
    }
}
