//! Test support shared by integration tests: local HTTP and HTTPS servers.
//!
//! Use from a test crate with `mod support;`. Everything here listens on
//! 127.0.0.1 with an OS-chosen port and stops when dropped.

pub mod http;
pub mod process;

#[allow(unused_imports)] // not every test crate uses every name
pub use http::{Cert, FIXED_BODY_LEN, HttpServer, HttpsServer, fixed_body};
pub mod kafka;
