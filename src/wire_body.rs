//! Counts response body bytes from the raw bytes of a connection, so that a
//! probe whose body fails to decode still reports what actually arrived.
//!
//! ureq decodes a chunked body a buffer at a time and drops the bytes it had
//! decoded when a later chunk in the same buffer is malformed; this counter
//! sees the same bytes as they arrive and stops at the first malformed chunk.
//! It only reads framing (head end, `Transfer-Encoding: chunked`, chunk
//! sizes), never keeps the body.

/// Head bytes kept at most while looking for its end (ureq's own limit is 64 KiB).
const MAX_HEAD: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Reading the response head; kept to find `Transfer-Encoding`.
    Head(Vec<u8>),
    /// Counting everything: Content-Length or close-delimited.
    Plain,
    /// Chunked: reading a size line (value so far, digits seen, in extension).
    Size(u64, u32, bool),
    /// Chunked: bytes of the current chunk still to come.
    Data(u64),
    /// Chunked: the CRLF after a chunk's data.
    DataEnd,
    /// The last chunk, a malformed one, or a head too long: nothing more counts.
    Stopped,
}

/// Body bytes seen so far on one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireBody {
    state: State,
    body: u64,
}

impl Default for WireBody {
    fn default() -> Self {
        WireBody {
            state: State::Head(Vec::new()),
            body: 0,
        }
    }
}

impl WireBody {
    /// Body bytes (chunk data only, for a chunked body) seen so far.
    pub fn bytes(&self) -> u64 {
        self.body
    }

    /// Feeds the next bytes received on the connection.
    pub fn feed(&mut self, mut input: &[u8]) {
        while !input.is_empty() {
            input = match &mut self.state {
                State::Stopped => return,
                State::Plain => {
                    self.body += input.len() as u64;
                    return;
                }
                State::Head(head) => {
                    let before = head.len();
                    // A head ends with an empty line: look across the boundary.
                    let from = before.saturating_sub(3);
                    head.extend_from_slice(&input[..input.len().min(MAX_HEAD)]);
                    match find(&head[from..], b"\r\n\r\n") {
                        Some(i) => {
                            let end = from + i + 4;
                            let rest = &input[end - before..];
                            self.state = head_done(&head[..end]);
                            rest
                        }
                        None if head.len() > MAX_HEAD => {
                            self.state = State::Stopped;
                            return;
                        }
                        None => return,
                    }
                }
                State::Size(value, digits, ext) => {
                    let b = input[0];
                    match b {
                        b'\n' if *digits == 0 => self.state = State::Stopped,
                        b'\n' if *value == 0 => self.state = State::Stopped,
                        b'\n' => self.state = State::Data(*value),
                        b'\r' => {}
                        _ if *ext => {}
                        b';' => *ext = true,
                        _ => match (b as char).to_digit(16) {
                            Some(d) if *digits < 15 => {
                                *value = *value * 16 + u64::from(d);
                                *digits += 1;
                            }
                            _ => self.state = State::Stopped,
                        },
                    }
                    &input[1..]
                }
                State::Data(left) => {
                    let n = (*left).min(input.len() as u64);
                    self.body += n;
                    *left -= n;
                    if *left == 0 {
                        self.state = State::DataEnd;
                    }
                    &input[n as usize..]
                }
                State::DataEnd => {
                    match input[0] {
                        b'\r' => {}
                        b'\n' => self.state = State::Size(0, 0, false),
                        _ => self.state = State::Stopped,
                    }
                    &input[1..]
                }
            };
        }
    }
}

/// The state after a complete head: another head after a 1xx, else the body.
fn head_done(head: &[u8]) -> State {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let status = lines.next().unwrap_or_default();
    if status
        .split_whitespace()
        .nth(1)
        .is_some_and(|c| c.starts_with('1'))
    {
        return State::Head(Vec::new());
    }
    let chunked = lines.any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("transfer-encoding")
                && v.to_ascii_lowercase().contains("chunked")
        })
    });
    if chunked {
        State::Size(0, 0, false)
    } else {
        State::Plain
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(parts: &[&[u8]]) -> u64 {
        let mut w = WireBody::default();
        for p in parts {
            w.feed(p);
        }
        w.bytes()
    }

    #[test]
    fn plain_body_counts_everything_after_the_head() {
        assert_eq!(
            count(&[b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nabcd"]),
            4
        );
        // The head's end split across reads.
        assert_eq!(count(&[b"HTTP/1.1 200 OK\r\n\r", b"\n", b"ab", b"c"]), 3);
        assert_eq!(count(&[b"HTTP/1.1 200 OK\r\n"]), 0);
    }

    #[test]
    fn chunked_counts_data_until_a_bad_size() {
        let reply: &[u8] =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nZZ\r\nmore\r\n";
        assert_eq!(count(&[reply]), 5);
        // Byte by byte gives the same.
        let bytes: Vec<&[u8]> = reply.chunks(1).collect();
        assert_eq!(count(&bytes), 5);
        let good: &[u8] = b"HTTP/1.1 200 OK\r\ntransfer-encoding: Chunked\r\n\r\n3;x=y\r\nabc\r\nA\r\n0123456789\r\n0\r\n\r\n";
        assert_eq!(count(&[good]), 13);
    }

    #[test]
    fn informational_heads_are_skipped() {
        assert_eq!(
            count(&[b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\nxy"]),
            2
        );
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        for _ in 0..2000 {
            let mut w = WireBody::default();
            w.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
            let mut buf = Vec::new();
            for _ in 0..(x % 64) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                buf.push(b"0123456789abcdefFZ;\r\n "[(x % 22) as usize]);
            }
            w.feed(&buf);
            assert!(w.bytes() <= buf.len() as u64);
        }
    }
}
