//! Confluent Schema Registry client: registers the Report schema under
//! `<topic>-value` once at start and returns its id for the wire format.
//! Retries while the registry is unreachable or failing (5xx); a 4xx answer
//! (bad credentials, incompatible schema) is final.

use std::time::Duration;

/// A registry's base URL, with any `user:password@` taken out as basic auth.
#[derive(Clone)]
pub struct Registry {
    base: String,
    auth: Option<String>,
    /// The URL without credentials, for messages.
    shown: String,
    /// The password as written and decoded, and the Basic token: never
    /// quoted, even if a registry's reply or an error echoes them.
    secrets: Vec<String>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

/// Why registration stopped.
#[derive(Debug, PartialEq)]
pub enum RegistryError {
    /// The registry answered and refused: retrying will not help.
    Refused(String),
    /// Gave up (stop requested) while the registry was unreachable.
    Interrupted,
}

impl Registry {
    /// Parses `http(s)://[user:password@]host[:port][/path]`.
    pub fn parse(url: &str) -> Result<Registry, String> {
        let (scheme, rest) = url
            .split_once("://")
            .filter(|(s, _)| *s == "http" || *s == "https")
            .ok_or_else(|| "schema registry URL must start with http:// or https://".to_string())?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        // An `@` after the first `/`: a password holding a `/` moved the
        // authority's end, so the "host" would be a piece of it.
        if path.contains('@') {
            return Err(format!(
                "schema registry URL `{}` has an `@` after the first `/` (in a password, write `/` `@` as %2F %40)",
                crate::redact::malformed_url_value(url)
            ));
        }
        let mut secrets = Vec::new();
        let (auth, host) = match authority.rsplit_once('@') {
            Some((userinfo, host)) => {
                let decoded = percent_decode(userinfo);
                let auth = basic_auth(&decoded);
                let password = |u: &str| u.split_once(':').map_or(u, |(_, p)| p).to_string();
                secrets.extend([password(userinfo), password(&decoded)]);
                secrets.push(auth.trim_start_matches("Basic ").to_string());
                secrets.retain(|s| !s.is_empty());
                (Some(auth), host)
            }
            None => (None, authority),
        };
        if host.is_empty() {
            return Err("schema registry URL has no host".to_string());
        }
        let base = format!("{scheme}://{host}{}", path.trim_end_matches('/'));
        Ok(Registry {
            shown: base.clone(),
            base,
            auth,
            secrets,
        })
    }

    /// `text` (a reply, an error) with the credentials hidden.
    fn hide(&self, text: &str) -> String {
        self.secrets
            .iter()
            .fold(text.to_string(), |t, s| t.replace(s.as_str(), "***"))
    }

    /// Registers `schema` (Avro schema JSON) under `subject`, retrying with
    /// backoff while `keep_trying(wait)` returns true (it does the waiting, so
    /// the caller can cut the wait short on shutdown).
    pub fn register(
        &self,
        subject: &str,
        schema: &str,
        mut keep_trying: impl FnMut(Duration) -> bool,
    ) -> Result<u32, RegistryError> {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .new_agent();
        let url = format!(
            "{}/subjects/{}/versions",
            self.base,
            percent_encode(subject)
        );
        let body = serde_json::json!({ "schema": schema, "schemaType": "AVRO" }).to_string();
        let mut backoff = Duration::from_millis(200);
        loop {
            let mut req = agent
                .post(&url)
                .header("Content-Type", "application/vnd.schemaregistry.v1+json")
                .header("Accept", "application/vnd.schemaregistry.v1+json");
            if let Some(auth) = &self.auth {
                req = req.header("Authorization", auth);
            }
            let problem = match req.send(body.as_bytes()) {
                Ok(mut resp) => {
                    let status = resp.status().as_u16();
                    let text = resp
                        .body_mut()
                        .with_config()
                        .limit(1 << 20)
                        .read_to_string()
                        .unwrap_or_default();
                    let text = self.hide(&text);
                    if status == 200 {
                        return parse_id(&text).map_err(|e| {
                            RegistryError::Refused(format!("schema registry {}: {e}", self.shown))
                        });
                    }
                    let msg = format!(
                        "schema registry {} answered {status} registering subject {subject}: {}",
                        self.shown,
                        crate::redact::value(text.trim())
                    );
                    if (400..500).contains(&status) && status != 408 && status != 429 {
                        return Err(RegistryError::Refused(msg));
                    }
                    msg
                }
                Err(e) => format!(
                    "schema registry {} unreachable: {}",
                    self.shown,
                    crate::redact::value(&self.hide(&e.to_string()))
                ),
            };
            log::warn!("{problem}; retrying in {:.1} s", backoff.as_secs_f64());
            if !keep_trying(backoff) {
                return Err(RegistryError::Interrupted);
            }
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
    }
}

/// `{"id": N}` → N.
pub(crate) fn parse_id(text: &str) -> Result<u32, String> {
    let v: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| format!("reply is not JSON ({e}): {}", crate::redact::value(text)))?;
    v.get("id")
        .and_then(serde_json::Value::as_u64)
        .and_then(|id| u32::try_from(id).ok())
        .ok_or_else(|| format!("reply has no schema id: {}", crate::redact::value(text)))
}

fn basic_auth(userinfo: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(userinfo.as_bytes())
    )
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(v) = u8::from_str_radix(s.get(i + 1..i + 3).unwrap_or(""), 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_split_out_and_hidden() {
        let r = Registry::parse("https://us%40er:p%3Ass@reg.test:8081/api/").expect("parse");
        assert_eq!(r.base, "https://reg.test:8081/api");
        assert_eq!(r.auth.as_deref(), Some("Basic dXNAZXI6cDpzcw=="));
        assert!(!format!("{r:?}").contains("p%3Ass"));
        assert!(Registry::parse("reg.test:8081").is_err());
    }

    #[test]
    fn a_password_with_a_slash_is_refused_unquoted() {
        let e = Registry::parse("https://user:pa/ssw0rd@reg.test:8081/").unwrap_err();
        assert!(!e.contains("pa/ss") && !e.contains("ssw0rd"), "{e}");
        assert!(e.contains("%2F"), "{e}");
        let r = Registry::parse("https://user:p%2Fss@reg.test/").expect("parse");
        assert_eq!(r.hide("x p%2Fss p/ss cDpzcw y"), "x *** *** cDpzcw y");
    }

    #[test]
    fn id_reply() {
        assert_eq!(parse_id("{\"id\": 7}"), Ok(7));
        assert!(parse_id("{\"error_code\": 1}").is_err());
        assert!(parse_id("<html>").is_err());
    }
}
