//! Verification of a hash-chained event log: the JSON Lines format of `kernels::audit::log`, where
//! every line carries the BLAKE3 (the BLAKE3 paper, O'Connor, Aumasson, Neves & Wilcox-O'Hearn,
//! 2020) of the line before it, and the last line seals itself.
//!
//! Every line is one JSON object that begins `{"seq":N,"prev":"HEX64",…`:
//! - `seq` counts lines from 0; `prev` is the lowercase hex BLAKE3 of the previous line's bytes
//!   (without its newline), and [`GENESIS`] for line 0;
//! - line 0 is the start record (a `"start"` key); then one line per event; then the end record,
//!   an `"end"` object whose `"events"` counts the event lines, followed by the key `"seal"`: the
//!   BLAKE3 of the end line's text up to [`SEAL_KEY`], closed with `}`.
//!
//! Editing a line breaks the next line's `prev` (or the seal), deleting or swapping lines breaks
//! `seq`, and a log cut short has no end record.

use serde_json::Value;

use crate::{Error, Result};

/// The `prev` of line 0: 64 zeros.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The text that starts the seal in the end record.
pub const SEAL_KEY: &str = ",\"seal\":\"";

/// The lowercase hex BLAKE3 of `bytes` (given): `blake3::hash(bytes).to_hex().to_string()`.
pub fn hash_hex(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

/// What is wrong at the first bad line (the variants of kernels' `LogCheck`, without their data).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainCheck {
    /// Not UTF-8, not JSON, not an object, no `seq` (u64) or `prev` (string), line 0 without
    /// `"start"`, a later line with `"start"`, an end record without `"end"."events"` (u64) or
    /// without a seal.
    Malformed,
    /// `seq` is not the line's 0-based position.
    Sequence,
    /// `prev` is not the hash of the previous line.
    PrevHash,
    /// The end record's seal does not match its text.
    Seal,
    /// The end record's `events` is not the number of event lines.
    Count,
    /// Something other than one final newline follows the end record.
    AfterEnd,
    /// The bytes end without an end record.
    Truncated,
}

/// A log that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainHead {
    /// Lines, the start and end records included.
    pub records: u64,
    /// The hex BLAKE3 of the end line: the head of the chain, to keep somewhere else.
    pub head: String,
}

// ANCHOR: verify_chain
/// **Task `c3w4.hash-chain` (15 points).** Verifies `log`, line by line, and names the first bad
/// line exactly as `kernels::audit::verify_log` does.
///
/// Split on `b'\n'`; an empty piece after the last newline is not a line. For line `i` (0-based;
/// errors report `i + 1`), in this order: UTF-8, JSON object, `seq` and `prev` present (else
/// `Malformed`); `seq == i` (else `Sequence`); `prev` equals the previous line's hash, [`GENESIS`]
/// for line 0 (else `PrevHash`). Then line 0 must have `"start"` and no later line may
/// (`Malformed`). A line with `"end"` is the end record: read `end.events` and find the **last**
/// [`SEAL_KEY`] in the text (`Malformed` if either is missing); the seal written is the text after
/// it with the trailing `"}` trimmed, and must equal the hash of `text[..cut] + "}"` (`Seal`);
/// `events` must be `i − 1` (`Count`). After the end record only nothing, or one empty piece (the
/// final newline), may follow, else `AfterEnd` at line `i + 2`. Running out of lines without an
/// end record is `Truncated` at line `lines + 1`.
///
/// # Errors
/// [`Error::Chain`] with the 1-based line and the [`ChainCheck`].
pub fn verify_chain(log: &[u8]) -> Result<ChainHead> {
    // BEGIN SOLUTION c3w4.hash-chain
    let fail = |i: u64, check: ChainCheck| Error::Chain { line: i + 1, check };
    let hash = hash_hex;
    let mut prev = GENESIS.to_string();
    let mut pieces = log.split(|&b| b == b'\n').peekable();
    let mut i = 0u64;
    while let Some(raw) = pieces.next() {
        if raw.is_empty() && pieces.peek().is_none() {
            break;
        }
        let text = std::str::from_utf8(raw).map_err(|_| fail(i, ChainCheck::Malformed))?;
        let value: Value = serde_json::from_str(text).map_err(|_| fail(i, ChainCheck::Malformed))?;
        let obj = value.as_object().ok_or_else(|| fail(i, ChainCheck::Malformed))?;
        let seq = obj.get("seq").and_then(Value::as_u64);
        let found_prev = obj.get("prev").and_then(Value::as_str);
        let (Some(seq), Some(found_prev)) = (seq, found_prev) else {
            return Err(fail(i, ChainCheck::Malformed));
        };
        if seq != i {
            return Err(fail(i, ChainCheck::Sequence));
        }
        if found_prev != prev {
            return Err(fail(i, ChainCheck::PrevHash));
        }
        if i == 0 {
            if !obj.contains_key("start") {
                return Err(fail(i, ChainCheck::Malformed));
            }
        } else if obj.contains_key("start") {
            return Err(fail(i, ChainCheck::Malformed));
        } else if let Some(end) = obj.get("end") {
            let events = end.get("events").and_then(Value::as_u64).ok_or_else(|| fail(i, ChainCheck::Malformed))?;
            let cut = text.rfind(SEAL_KEY).ok_or_else(|| fail(i, ChainCheck::Malformed))?;
            let found_seal = text[cut + SEAL_KEY.len()..].trim_end_matches("\"}");
            if found_seal != hash(format!("{}}}", &text[..cut]).as_bytes()) {
                return Err(fail(i, ChainCheck::Seal));
            }
            if events != i - 1 {
                return Err(fail(i, ChainCheck::Count));
            }
            match pieces.next() {
                None => {}
                Some(rest) if rest.is_empty() && pieces.peek().is_none() => {}
                Some(_) => return Err(fail(i + 1, ChainCheck::AfterEnd)),
            }
            return Ok(ChainHead { records: i + 1, head: hash(raw) });
        }
        prev = hash(raw);
        i += 1;
    }
    Err(fail(i, ChainCheck::Truncated))
    // END SOLUTION
}
// ANCHOR_END: verify_chain
