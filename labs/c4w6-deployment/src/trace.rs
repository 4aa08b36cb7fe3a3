//! W3C Trace Context: the `traceparent` header that carries a trace across services.
//!
//! Spec: <https://www.w3.org/TR/trace-context/> §3.2 (Level 1, a W3C Recommendation). The header
//! is `version-traceid-parentid-flags` in lowercase hex: `00-4bf92f3577b34da6a3ce929d0e0e4736-
//! 00f067aa0ba902b7-01`. Every service that receives one keeps the trace id, makes its own span
//! the new parent id and forwards the result, so one request's spans across a gateway, a model
//! server and a vector store join into one trace. The `sampled` flag (bit 0) says whether the
//! caller records the trace. A header that breaks the rules is ignored and a new trace started:
//! it must never crash the server, nor be half-trusted.

use crate::{Error, Result};

/// Lowercase hex of `bytes`. Given.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

// ANCHOR: traceparent
/// A parsed `traceparent` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceParent {
    /// The format version (00 today; `ff` is forbidden).
    pub version: u8,
    /// The whole trace's id (never all zeros).
    pub trace_id: [u8; 16],
    /// The caller's span id (never all zeros).
    pub parent_id: [u8; 8],
    /// Trace flags; bit 0 (`0x01`) is `sampled`.
    pub flags: u8,
}

impl TraceParent {
    /// Task c4w6.traceparent (10 points, with [`TraceParent::format`] and [`TraceParent::child`]):
    /// parses a `traceparent` header value (no surrounding whitespace is accepted).
    ///
    /// Every rule broken is [`Error::InvalidInput`]:
    /// - the version is 2 lowercase hex digits and not `ff`;
    /// - version `00`: the header is exactly 55 characters; a higher version: at least 55, and
    ///   when longer the character at index 55 is `-` (what follows is a future field and ignored);
    /// - `-` at indices 2, 35 and 52; the trace id (32), the parent id (16) and the flags (2) are
    ///   lowercase hex digits (`0-9a-f`; uppercase is invalid);
    /// - neither the trace id nor the parent id is all zeros.
    pub fn parse(header: &str) -> Result<TraceParent> {
        todo!("c4w6.traceparent")
    }

    /// Task c4w6.traceparent: the header value, `vv-<trace id>-<parent id>-ff` in lowercase hex
    /// (with this value's version; only the four fields, 55 characters).
    pub fn format(&self) -> String {
        todo!("c4w6.traceparent")
    }

    /// Task c4w6.traceparent: the header to send downstream from a span `span_id` of this trace:
    /// version 00, the same trace id and flags, `span_id` as the parent id. An all-zero `span_id`
    /// is [`Error::InvalidInput`].
    pub fn child(&self, span_id: [u8; 8]) -> Result<TraceParent> {
        todo!("c4w6.traceparent")
    }

    /// Whether the caller records this trace (flag bit 0).
    pub fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }
}
// ANCHOR_END: traceparent
