//! W3C Trace Context (<https://www.w3.org/TR/trace-context/>): `traceparent` parsing, child spans, and
//! JSON-lines logs of `tracing` spans.
//!
//! A server reads the `traceparent` header of a request ([`TraceContext::parse`]), answers it as a
//! child span of the caller's ([`TraceContext::child`], or [`TraceContext::new_root`] when there is
//! none or it is invalid), opens a `request` span carrying the ids ([`request_span`]), and sends
//! [`TraceContext::to_header`] of a further child to the services it calls. With
//! [`init_json_logs`] every event is one JSON object per line with the current span's fields and the
//! list of spans it is in, so a log search for a trace id finds the lines of every hop.

use std::sync::OnceLock;

use tracing_subscriber::fmt::MakeWriter;

/// The header's name.
pub const TRACEPARENT: &str = "traceparent";

/// One position in a distributed trace: the trace, this span, and whether the trace is sampled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    /// The trace's id (16 bytes, never all zero).
    pub trace_id: [u8; 16],
    /// This span's id (the header's `parent-id` field when sent on; 8 bytes, never all zero).
    pub span_id: [u8; 8],
    /// The `sampled` flag (bit 0 of `trace-flags`).
    pub sampled: bool,
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None, // upper case is invalid in `traceparent`
    }
}

/// Decodes lowercase hex of exactly `N` bytes.
fn decode<const N: usize>(s: &[u8]) -> Option<[u8; N]> {
    if s.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, pair) in s.chunks_exact(2).enumerate() {
        out[i] = hex_value(pair[0])? << 4 | hex_value(pair[1])?;
    }
    Some(out)
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(2 * bytes.len());
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

fn random_nonzero<const N: usize>() -> [u8; N] {
    loop {
        let bytes: [u8; N] = std::array::from_fn(|_| rand::random::<u8>());
        if bytes.iter().any(|&b| b != 0) {
            return bytes;
        }
    }
}

impl TraceContext {
    /// Parses a `traceparent` header value (§3.2 of the spec).
    ///
    /// Version `00` must be exactly `00-<32 hex>-<16 hex>-<2 hex>`, lowercase. A higher version
    /// (`01`..`fe`) is parsed as version 00 from its first 55 characters, which must be followed by
    /// the end or a `-` (what a future version appends is ignored); `ff` is invalid. All-zero trace or
    /// parent ids are invalid. Surrounding spaces and tabs (HTTP's optional white space) are ignored.
    /// `None` when invalid: the caller then starts a new trace.
    pub fn parse(header: &str) -> Option<TraceContext> {
        let h = header.trim_matches([' ', '\t']).as_bytes();
        if h.len() < 55 {
            return None;
        }
        let version = decode::<1>(&h[0..2])?[0];
        if version == 0xff {
            return None;
        }
        if version == 0 && h.len() != 55 {
            return None;
        }
        if h.len() > 55 && h[55] != b'-' {
            return None;
        }
        if h[2] != b'-' || h[35] != b'-' || h[52] != b'-' {
            return None;
        }
        let trace_id = decode::<16>(&h[3..35])?;
        let span_id = decode::<8>(&h[36..52])?;
        let flags = decode::<1>(&h[53..55])?[0];
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(TraceContext { trace_id, span_id, sampled: flags & 1 == 1 })
    }

    /// The `traceparent` value naming this span (version 00).
    pub fn to_header(&self) -> String {
        format!("00-{}-{}-{}", hex(&self.trace_id), hex(&self.span_id), if self.sampled { "01" } else { "00" })
    }

    // ANCHOR: propagate
    /// A span of the same trace with a new random id (the callee's position when `self` is the caller's).
    pub fn child(&self) -> TraceContext {
        let mut span_id = random_nonzero::<8>();
        while span_id == self.span_id {
            span_id = random_nonzero::<8>();
        }
        TraceContext { trace_id: self.trace_id, span_id, sampled: self.sampled }
    }

    /// A new trace with random ids, sampled.
    pub fn new_root() -> TraceContext {
        TraceContext { trace_id: random_nonzero::<16>(), span_id: random_nonzero::<8>(), sampled: true }
    }

    /// The context a server answers a request in, and the caller's span id: a child of the
    /// `traceparent` it received when that is valid, else a new root (no parent).
    pub fn for_request(traceparent: Option<&str>) -> (TraceContext, Option<[u8; 8]>) {
        match traceparent.and_then(TraceContext::parse) {
            Some(parent) => (parent.child(), Some(parent.span_id)),
            None => (TraceContext::new_root(), None),
        }
    }
    // ANCHOR_END: propagate

    /// The trace id in hex.
    pub fn trace_id_hex(&self) -> String {
        hex(&self.trace_id)
    }

    /// The span id in hex.
    pub fn span_id_hex(&self) -> String {
        hex(&self.span_id)
    }
}

/// The `request` span of one request: `route`, `model`, `trace_id`, `span_id` and `parent_span_id`
/// (empty for a root). An empty `model` stays unset, to be recorded once with `span.record("model", ...)`.
pub fn request_span(route: &str, model: &str, ctx: &TraceContext, parent_span_id: Option<[u8; 8]>) -> tracing::Span {
    let parent = parent_span_id.map(|p| hex(&p)).unwrap_or_default();
    let span = tracing::info_span!(
        "request",
        route = route,
        model = tracing::field::Empty,
        trace_id = %ctx.trace_id_hex(),
        span_id = %ctx.span_id_hex(),
        parent_span_id = %parent,
    );
    if !model.is_empty() {
        span.record("model", model);
    }
    span
}

/// How logs are written.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// Events below this level are dropped.
    pub level: tracing::Level,
    /// One JSON object per line (else tracing's human-readable format).
    pub json: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { level: tracing::Level::INFO, json: true }
    }
}

/// A subscriber writing JSON lines to `writer`: each event with its fields, the current span's
/// fields (`span`) and the spans it is in (`spans`), timestamp, level and target. For scoped use
/// (`tracing::subscriber::with_default`); [`init_json_logs`] installs one for the process.
pub fn json_subscriber<W>(level: tracing::Level, writer: W) -> impl tracing::Subscriber + Send + Sync + 'static
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_span_list(true)
        .with_max_level(level)
        .with_writer(writer)
        .finish()
}

static INSTALLED: OnceLock<()> = OnceLock::new();

/// Installs JSON-lines logs to `writer` as the process' subscriber (at `INFO`). Idempotent: only
/// the first call in a process installs (and returns true); later ones change nothing.
pub fn init_json_logs<W>(writer: W) -> bool
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    init_logs(&LogConfig::default(), writer)
}

/// Installs the logs `config` describes to `writer`, once per process (as [`init_json_logs`]).
/// False when logs were already installed (by this or by another subscriber).
pub fn init_logs<W>(config: &LogConfig, writer: W) -> bool
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let mut installed = false;
    INSTALLED.get_or_init(|| {
        installed = if config.json {
            tracing::subscriber::set_global_default(json_subscriber(config.level, writer)).is_ok()
        } else {
            let s = tracing_subscriber::fmt().with_max_level(config.level).with_writer(writer).finish();
            tracing::subscriber::set_global_default(s).is_ok()
        };
    });
    installed
}
