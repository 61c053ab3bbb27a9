//! SASL client mechanisms, sans-IO: PLAIN (RFC 4616) and SCRAM-SHA-256 /
//! SCRAM-SHA-512 (RFC 5802, RFC 7677). The connection layer carries the
//! bytes in SaslAuthenticate requests; this module only makes and checks
//! them.
//!
//! Crypto comes from the RustCrypto crates (hmac, sha2, pbkdf2, base64),
//! which are pure Rust.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};

use super::config::SaslMechanism;

/// Kafka's brokers never use fewer; a lower count from a "server" is a
/// downgrade attempt (the Java client refuses it too).
const MIN_ITERATIONS: u32 = 4096;

/// Why an exchange failed. Messages never include the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaslError(pub String);

impl std::fmt::Display for SaslError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<T>(s: impl Into<String>) -> Result<T, SaslError> {
    Err(SaslError(s.into()))
}

/// The PLAIN initial (and only) message: `\0user\0password`.
pub fn plain_message(username: &str, password: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(username.len() + password.len() + 2);
    v.push(0);
    v.extend_from_slice(username.as_bytes());
    v.push(0);
    v.extend_from_slice(password.as_bytes());
    v
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hash {
    Sha256,
    Sha512,
}

impl Hash {
    fn hmac(self, key: &[u8], data: &[u8]) -> Result<Vec<u8>, SaslError> {
        // HMAC accepts keys of any length, so new_from_slice cannot fail in
        // practice; map it anyway instead of unwrapping.
        match self {
            Hash::Sha256 => {
                let mut m = Hmac::<Sha256>::new_from_slice(key)
                    .map_err(|_| SaslError("HMAC key rejected".into()))?;
                m.update(data);
                Ok(m.finalize().into_bytes().to_vec())
            }
            Hash::Sha512 => {
                let mut m = Hmac::<Sha512>::new_from_slice(key)
                    .map_err(|_| SaslError("HMAC key rejected".into()))?;
                m.update(data);
                Ok(m.finalize().into_bytes().to_vec())
            }
        }
    }

    fn h(self, data: &[u8]) -> Vec<u8> {
        match self {
            Hash::Sha256 => Sha256::digest(data).to_vec(),
            Hash::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    fn hi(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            Hash::Sha256 => {
                let mut out = [0u8; 32];
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out);
                out.to_vec()
            }
            Hash::Sha512 => {
                let mut out = [0u8; 64];
                pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut out);
                out.to_vec()
            }
        }
    }
}

#[derive(Debug)]
enum State {
    Initial,
    SentFirst,
    SentFinal { server_signature: Vec<u8> },
    Done,
}

/// A SCRAM client conversation: `client_first` → `client_final(server_first)`
/// → `verify_server_final(server_final)`.
pub struct ScramClient {
    hash: Hash,
    username: String,
    password: String,
    nonce: String,
    state: State,
}

impl std::fmt::Debug for ScramClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramClient")
            .field("hash", &self.hash)
            .field("username", &self.username)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// `=` and `,` are the only characters SCRAM escapes in a user name.
fn escape_username(u: &str) -> String {
    u.replace('=', "=3D").replace(',', "=2C")
}

fn parse_attrs(msg: &str) -> Vec<(char, &str)> {
    msg.split(',')
        .filter_map(|part| {
            let (k, v) = part.split_once('=')?;
            let mut kc = k.chars();
            let c = kc.next()?;
            if kc.next().is_some() {
                return None;
            }
            Some((c, v))
        })
        .collect()
}

fn attr<'a>(attrs: &[(char, &'a str)], k: char) -> Option<&'a str> {
    attrs.iter().find(|(c, _)| *c == k).map(|(_, v)| *v)
}

impl ScramClient {
    /// `nonce` must be fresh and random (printable, no commas); the caller
    /// supplies it so that this module stays deterministic and testable.
    pub fn new(
        mechanism: SaslMechanism,
        username: &str,
        password: &str,
        nonce: &str,
    ) -> Result<Self, SaslError> {
        let hash = match mechanism {
            SaslMechanism::ScramSha256 => Hash::Sha256,
            SaslMechanism::ScramSha512 => Hash::Sha512,
            SaslMechanism::Plain => return err("PLAIN is not a SCRAM mechanism"),
        };
        if nonce.is_empty() || nonce.contains(',') {
            return err("invalid client nonce");
        }
        Ok(ScramClient {
            hash,
            username: username.to_string(),
            password: password.to_string(),
            nonce: nonce.to_string(),
            state: State::Initial,
        })
    }

    fn client_first_bare(&self) -> String {
        format!("n={},r={}", escape_username(&self.username), self.nonce)
    }

    /// The client-first message (gs2 header `n,,`: no channel binding).
    pub fn client_first(&mut self) -> Vec<u8> {
        self.state = State::SentFirst;
        format!("n,,{}", self.client_first_bare()).into_bytes()
    }

    /// Takes server-first, returns client-final.
    pub fn client_final(&mut self, server_first: &[u8]) -> Result<Vec<u8>, SaslError> {
        if !matches!(self.state, State::SentFirst) {
            return err("SCRAM: server-first received out of order");
        }
        let sf = std::str::from_utf8(server_first)
            .map_err(|_| SaslError("SCRAM: server-first message is not UTF-8".into()))?;
        let attrs = parse_attrs(sf);
        if let Some(e) = attr(&attrs, 'e') {
            return err(format!(
                "SCRAM: server refused: {}",
                crate::redact::value(e)
            ));
        }
        let r = attr(&attrs, 'r')
            .ok_or_else(|| SaslError("SCRAM: server-first has no nonce".into()))?;
        let s =
            attr(&attrs, 's').ok_or_else(|| SaslError("SCRAM: server-first has no salt".into()))?;
        let i = attr(&attrs, 'i')
            .ok_or_else(|| SaslError("SCRAM: server-first has no iteration count".into()))?;
        if !r.starts_with(&self.nonce) || r.len() <= self.nonce.len() {
            return err("SCRAM: server nonce does not extend the client nonce");
        }
        let salt = B64
            .decode(s)
            .map_err(|_| SaslError("SCRAM: salt is not base64".into()))?;
        let iterations: u32 = i
            .parse()
            .map_err(|_| SaslError(format!("SCRAM: bad iteration count {i:?}")))?;
        if iterations < MIN_ITERATIONS {
            return err(format!(
                "SCRAM: server asked for {iterations} iterations, fewer than the minimum {MIN_ITERATIONS}"
            ));
        }

        let h = self.hash;
        let salted = h.hi(self.password.as_bytes(), &salt, iterations);
        let client_key = h.hmac(&salted, b"Client Key")?;
        let stored_key = h.h(&client_key);
        // "biws" = base64("n,,"): the gs2 header, no channel binding.
        let without_proof = format!("c=biws,r={r}");
        let auth_message = format!("{},{},{}", self.client_first_bare(), sf, without_proof);
        let client_signature = h.hmac(&stored_key, auth_message.as_bytes())?;
        let proof: Vec<u8> = client_key
            .iter()
            .zip(client_signature.iter())
            .map(|(a, b)| a ^ b)
            .collect();
        let server_key = h.hmac(&salted, b"Server Key")?;
        let server_signature = h.hmac(&server_key, auth_message.as_bytes())?;
        self.state = State::SentFinal { server_signature };
        Ok(format!("{without_proof},p={}", B64.encode(proof)).into_bytes())
    }

    /// Checks server-final; Ok means the server proved it knows the password.
    pub fn verify_server_final(&mut self, server_final: &[u8]) -> Result<(), SaslError> {
        let expected = match &self.state {
            State::SentFinal { server_signature } => server_signature.clone(),
            _ => return err("SCRAM: server-final received out of order"),
        };
        let sf = std::str::from_utf8(server_final)
            .map_err(|_| SaslError("SCRAM: server-final message is not UTF-8".into()))?;
        let attrs = parse_attrs(sf);
        if let Some(e) = attr(&attrs, 'e') {
            return err(format!(
                "SCRAM: server refused: {}",
                crate::redact::value(e)
            ));
        }
        let v = attr(&attrs, 'v')
            .ok_or_else(|| SaslError("SCRAM: server-final has no verifier".into()))?;
        let got = B64
            .decode(v)
            .map_err(|_| SaslError("SCRAM: server verifier is not base64".into()))?;
        if got != expected {
            return err(
                "SCRAM: server signature does not match (wrong server or tampered exchange)",
            );
        }
        self.state = State::Done;
        Ok(())
    }

    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7677 section 3.
    #[test]
    fn rfc7677_sha256_vector() {
        let mut c = ScramClient::new(
            SaslMechanism::ScramSha256,
            "user",
            "pencil",
            "rOprNGfwEbeRWgbNEkqO",
        )
        .unwrap();
        assert_eq!(c.client_first(), b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let server_first = b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let cf = c.client_final(server_first).unwrap();
        assert_eq!(
            String::from_utf8(cf).unwrap(),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        c.verify_server_final(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap();
        assert!(c.is_done());
    }

    #[test]
    fn rejects_bad_server_messages() {
        let mk = || {
            let mut c = ScramClient::new(SaslMechanism::ScramSha512, "a,b=c", "pw", "abc").unwrap();
            let first = c.client_first();
            assert_eq!(first, b"n,,n=a=2Cb=3Dc,r=abc");
            c
        };
        let mut c = mk();
        let e = c.client_final(b"r=xyz123,s=AAAA,i=4096").unwrap_err();
        assert!(e.0.contains("nonce"), "{e}");
        let mut c = mk();
        let e = c.client_final(b"r=abcdef,s=AAAA,i=1").unwrap_err();
        assert!(e.0.contains("iterations"), "{e}");
        let mut c = mk();
        let e = c.client_final(b"e=unknown-user").unwrap_err();
        assert!(e.0.contains("unknown-user"), "{e}");
        let mut c = mk();
        assert!(c.client_final(b"garbage").is_err());
        let mut c = mk();
        c.client_final(b"r=abcdef,s=AAAA,i=4096").unwrap();
        let e = c.verify_server_final(b"v=AAAA").unwrap_err();
        assert!(e.0.contains("signature"), "{e}");
        let e = c.verify_server_final(&[0xff, 0xfe]).unwrap_err();
        assert!(e.0.contains("UTF-8"), "{e}");
    }

    #[test]
    fn errors_do_not_leak_the_password() {
        let mut c =
            ScramClient::new(SaslMechanism::ScramSha256, "u", "topsecret", "nonce").unwrap();
        c.client_first();
        let e = c.client_final(b"r=nonceX,s=!!,i=4096").unwrap_err();
        assert!(!e.0.contains("topsecret"));
        assert!(!format!("{c:?}").contains("topsecret"));
    }

    #[test]
    fn plain() {
        assert_eq!(plain_message("alice", "pw"), b"\0alice\0pw");
    }
}
