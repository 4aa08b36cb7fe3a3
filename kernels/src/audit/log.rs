//! The trace's event log: JSON Lines hash-chained with BLAKE3 (the BLAKE3 paper, 2020), and its
//! verification.
//!
//! Every line is one JSON object that begins `{"seq":N,"prev":"HEX64",…`:
//! - `seq` counts lines from 0; `prev` is the BLAKE3 (hex) of the previous line's bytes (without its
//!   newline), and [`GENESIS`] (64 zeros) for line 0;
//! - line 0 is the start record `"start":{argv, policy, unix_ms}`, then one line per completed call
//!   (an [`Event`]'s fields), then the end record `"end":{events, exit, violations, tasks,
//!   elapsed_us}` followed by `"seal"`: the BLAKE3 of the end line's text up to the `,"seal"` key
//!   (closed with `}`), so the last line is protected too.
//!
//! Editing a line breaks the next line's `prev` (or the seal), deleting or swapping lines breaks
//! `seq`, and a log cut short lacks its end record. A writer who rewrites the whole tail
//! consistently is not detected without a key: keep the head (the end line's hash, printed by
//! `sovereign trace`) elsewhere and compare it with [`VerifiedLog::head`].

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Event, ExitKind, Policy};
use crate::Error;

/// The `prev` of line 0.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The key that closes the end record.
const SEAL_KEY: &str = ",\"seal\":\"";

/// The start record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogStart {
    /// The traced command.
    pub argv: Vec<String>,
    /// The policy checked.
    pub policy: Policy,
    /// Wall-clock start, milliseconds since the Unix epoch.
    pub unix_ms: u64,
}

/// The end record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEnd {
    /// The number of event lines (between the start and the end record).
    pub events: u64,
    /// How the root process ended.
    pub exit: ExitKind,
    /// The number of policy violations.
    pub violations: u64,
    /// The number of tasks followed.
    pub tasks: u64,
    /// Wall time of the trace, in microseconds.
    pub elapsed_us: u64,
}

/// What is wrong at a line of a log (see [`Error::AuditLog`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogCheck {
    /// Not a log record (bad UTF-8 or JSON, a missing or mistyped key).
    Malformed(String),
    /// `seq` is not the line's position: a line was deleted, inserted or moved.
    Sequence {
        /// The position (0-based).
        expected: u64,
        /// The `seq` written.
        found: u64,
    },
    /// `prev` is not the hash of the previous line: that line was edited (or one was removed).
    PrevHash {
        /// The previous line's hash.
        expected: String,
        /// The `prev` written.
        found: String,
    },
    /// The end record's seal does not match its text: the end record was edited.
    Seal {
        /// The hash of the end record's text.
        expected: String,
        /// The seal written.
        found: String,
    },
    /// The end record counts a different number of events than the log holds.
    Count {
        /// Event lines present.
        expected: u64,
        /// The count written.
        found: u64,
    },
    /// A line after the end record.
    AfterEnd,
    /// The log ends without an end record (cut short, or the tracer was killed).
    Truncated {
        /// Complete lines present.
        lines: u64,
    },
}

impl std::fmt::Display for LogCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LogCheck::Malformed(why) => write!(f, "malformed record: {why}"),
            LogCheck::Sequence { expected, found } => {
                write!(f, "seq is {found}, expected {expected} (a line was deleted, inserted or moved)")
            }
            LogCheck::PrevHash { expected, found } => {
                write!(f, "prev is {found} but the previous line hashes to {expected} (the previous line was edited)")
            }
            LogCheck::Seal { expected, found } => {
                write!(f, "the end record's seal is {found} but its text hashes to {expected} (edited)")
            }
            LogCheck::Count { expected, found } => {
                write!(f, "the end record counts {found} events, the log holds {expected}")
            }
            LogCheck::AfterEnd => write!(f, "a record after the end record"),
            LogCheck::Truncated { lines } => {
                write!(f, "no end record after {lines} complete line(s): the log was cut short")
            }
        }
    }
}

/// A log that verified.
#[derive(Debug, Clone)]
pub struct VerifiedLog {
    /// Lines, start and end records included.
    pub records: u64,
    /// The start record.
    pub start: LogStart,
    /// The end record.
    pub end: LogEnd,
    /// The BLAKE3 (hex) of the end line: the head of the chain.
    pub head: String,
}

/// Writes a log line by line (buffered; the end record flushes it).
pub struct LogWriter {
    path: PathBuf,
    out: BufWriter<File>,
    seq: u64,
    prev: String,
    events: u64,
}

impl LogWriter {
    /// Creates (truncates) `path` and writes the start record.
    pub fn create(path: &Path, start: &LogStart) -> Result<LogWriter, Error> {
        let file = File::create(path).map_err(|source| Error::AuditIo { path: path.to_path_buf(), source })?;
        let mut w = LogWriter {
            path: path.to_path_buf(),
            out: BufWriter::new(file),
            seq: 0,
            prev: GENESIS.to_owned(),
            events: 0,
        };
        let line = w.frame(&serde_json::json!({ "start": start }).to_string());
        w.write_line(line)?;
        Ok(w)
    }

    /// Appends one event record.
    pub fn event(&mut self, event: &Event) -> Result<(), Error> {
        let body = serde_json::to_string(event).map_err(|e| Error::InvalidParameter(format!("event JSON: {e}")))?;
        let line = self.frame(&body);
        self.write_line(line)?;
        self.events += 1;
        Ok(())
    }

    /// Appends the end record (its `events` is set to the events written) with its seal, flushes, and
    /// returns the head: the BLAKE3 (hex) of the end line.
    pub fn finish(mut self, end: &LogEnd) -> Result<String, Error> {
        let end = LogEnd { events: self.events, ..end.clone() };
        let mut line = self.frame(&serde_json::json!({ "end": end }).to_string());
        let seal = blake3::hash(line.as_bytes()).to_hex();
        line.truncate(line.len() - 1); // the closing brace
        line.push_str(SEAL_KEY);
        line.push_str(&seal);
        line.push_str("\"}");
        self.write_line(line)?;
        self.out.flush().map_err(|source| Error::AuditIo { path: self.path.clone(), source })?;
        Ok(self.prev)
    }

    // ANCHOR: chain
    /// `{"seq":…,"prev":…,` followed by the rest of `body` (a JSON object).
    fn frame(&self, body: &str) -> String {
        let rest = body.strip_prefix('{').unwrap_or(body);
        let sep = if rest == "}" { "" } else { "," };
        format!("{{\"seq\":{},\"prev\":\"{}\"{sep}{rest}", self.seq, self.prev)
    }

    /// Writes one line and advances the chain.
    fn write_line(&mut self, line: String) -> Result<(), Error> {
        self.prev = blake3::hash(line.as_bytes()).to_hex().to_string();
        self.seq += 1;
        writeln!(self.out, "{line}").map_err(|source| Error::AuditIo { path: self.path.clone(), source })
    }
    // ANCHOR_END: chain
}

/// Verifies a log: every line's `seq` and `prev`, the start record first, the end record last with
/// its seal and its event count. The error names the first bad line (1-based) and the check.
pub fn verify_log(path: &Path) -> Result<VerifiedLog, Error> {
    walk(path, &mut |_, _| Ok(()))
}

/// Verifies a log ([`verify_log`]) and returns its events.
pub fn read_log(path: &Path) -> Result<(VerifiedLog, Vec<Event>), Error> {
    let mut events = Vec::new();
    let verified = walk(path, &mut |_, v| {
        events.push(serde_json::from_value::<Event>(v).map_err(|e| LogCheck::Malformed(format!("event: {e}")))?);
        Ok(())
    })?;
    Ok((verified, events))
}

/// The verification walk; `on_event` sees every event record.
fn walk(path: &Path, on_event: &mut dyn FnMut(u64, Value) -> Result<(), LogCheck>) -> Result<VerifiedLog, Error> {
    let bytes = std::fs::read(path).map_err(|source| Error::AuditIo { path: path.to_path_buf(), source })?;
    let fail = |line: u64, check: LogCheck| Error::AuditLog { path: path.to_path_buf(), line: line + 1, check };
    let mut prev = GENESIS.to_owned();
    let mut start: Option<LogStart> = None;
    let mut lines = bytes.split(|&b| b == b'\n').peekable();
    let mut i = 0u64;
    while let Some(raw) = lines.next() {
        let last_piece = lines.peek().is_none();
        if last_piece && raw.is_empty() {
            break; // the newline after the last line
        }
        let text = std::str::from_utf8(raw).map_err(|e| fail(i, LogCheck::Malformed(format!("not UTF-8: {e}"))))?;
        let mut value: Value =
            serde_json::from_str(text).map_err(|e| fail(i, LogCheck::Malformed(format!("not JSON: {e}"))))?;
        let obj = value.as_object_mut().ok_or_else(|| fail(i, LogCheck::Malformed("not an object".into())))?;
        let seq = obj.remove("seq").and_then(|v| v.as_u64());
        let found_prev = obj.remove("prev").and_then(|v| v.as_str().map(str::to_owned));
        let (Some(seq), Some(found_prev)) = (seq, found_prev) else {
            return Err(fail(i, LogCheck::Malformed("no seq or prev".into())));
        };
        if seq != i {
            return Err(fail(i, LogCheck::Sequence { expected: i, found: seq }));
        }
        if found_prev != prev {
            return Err(fail(i, LogCheck::PrevHash { expected: prev, found: found_prev }));
        }
        if i == 0 {
            let s = obj
                .remove("start")
                .ok_or_else(|| fail(i, LogCheck::Malformed("line 1 is not the start record".into())))?;
            start = Some(serde_json::from_value(s).map_err(|e| fail(i, LogCheck::Malformed(format!("start: {e}"))))?);
        } else if obj.contains_key("start") {
            return Err(fail(i, LogCheck::Malformed("a second start record".into())));
        } else if let Some(end) = obj.remove("end") {
            let end: LogEnd =
                serde_json::from_value(end).map_err(|e| fail(i, LogCheck::Malformed(format!("end: {e}"))))?;
            let Some(cut) = text.rfind(SEAL_KEY) else {
                return Err(fail(i, LogCheck::Malformed("the end record has no seal".into())));
            };
            let found_seal = text[cut + SEAL_KEY.len()..].trim_end_matches("\"}").to_owned();
            let expected_seal = blake3::hash(format!("{}}}", &text[..cut]).as_bytes()).to_hex().to_string();
            if found_seal != expected_seal {
                return Err(fail(i, LogCheck::Seal { expected: expected_seal, found: found_seal }));
            }
            if end.events != i - 1 {
                return Err(fail(i, LogCheck::Count { expected: i - 1, found: end.events }));
            }
            // Nothing but the final newline may follow.
            match lines.next() {
                Some(rest) if rest.is_empty() && lines.peek().is_none() => {}
                None => {}
                Some(_) => return Err(fail(i + 1, LogCheck::AfterEnd)),
            }
            let head = blake3::hash(raw).to_hex().to_string();
            let start = start.ok_or_else(|| fail(0, LogCheck::Malformed("no start record".into())))?;
            return Ok(VerifiedLog { records: i + 1, start, end, head });
        } else {
            on_event(i, value).map_err(|check| fail(i, check))?;
        }
        prev = blake3::hash(raw).to_hex().to_string();
        i += 1;
    }
    Err(fail(i, LogCheck::Truncated { lines: i }))
}
