//! Stages (`staging`, `production`, `archived`) and the promotion log: an append-only, hash-chained,
//! signed log (each entry holds the BLAKE3 hash of the previous entry and an Ed25519 signature,
//! RFC 8032), replayed and verified in full whenever a stage is read.
//!
//! The log is `promotions.log`, one canonical-JSON line per entry ([`super::canonical`]):
//! `{"at_unix_ms":U64,"manifest":HEX64,"model":"name@version","prev":HEX64,"seq":U64,"sig":HEX144,"stage":STR}`.
//! - `seq` counts from 0; `prev` is BLAKE3 of the previous line's bytes (64 zeros for entry 0);
//! - `sig` is the 72-byte [`SignatureBlob`] (key id, signature) in hex, over [`PROMOTION_DOMAIN`] followed
//!   by the canonical line *without* the `sig` key;
//! - the hash of an entry is BLAKE3 of its whole line (with `sig`, without the newline).
//!
//! Editing an entry breaks its signature, re-ordering or deleting one breaks `seq` and `prev`, and an
//! entry cannot be copied from another log. Deleting entries *at the end* leaves a valid shorter chain:
//! that is detected only against a [`LogHead`] the reader remembered (pass it as `pinned`). Appending
//! rewrites the file atomically under the registry's lock, so a crash never leaves a torn line.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::path::Path;
use std::str::FromStr;

use super::atomic::write_atomic;
use super::canonical::CValue;
use super::keys::{Keyring, PROMOTION_DOMAIN, SignatureBlob, Signer};
use super::manifest::ModelRef;
use super::store::{Digest, hex, unhex};
use crate::Error;

// ANCHOR: stage
/// The lifecycle stage of a model version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stage {
    /// Being evaluated; not served.
    Staging,
    /// Served.
    Production,
    /// Retired; kept for lineage and audit.
    Archived,
}
// ANCHOR_END: stage

impl Stage {
    /// The stage's name as written in the log (`staging`, `production`, `archived`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Staging => "staging",
            Self::Production => "production",
            Self::Archived => "archived",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Stage {
    type Err = Error;

    /// Parses `staging`, `production` or `archived`.
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "staging" => Ok(Self::Staging),
            "production" => Ok(Self::Production),
            "archived" => Ok(Self::Archived),
            _ => Err(Error::RegistryInvalid {
                what: "stage",
                value: s.to_string(),
                reason: "expected staging, production or archived".into(),
            }),
        }
    }
}

/// Which check of the promotion-log replay failed (carried by [`Error::RegistryLog`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogCheck {
    /// The line is not a canonical log entry (the reason says what is wrong).
    Malformed(String),
    /// `seq` is not the entry's position.
    Sequence {
        /// The position.
        expected: u64,
        /// The `seq` written.
        found: u64,
    },
    /// `prev` is not the hash of the previous entry.
    PrevHash {
        /// The previous entry's hash.
        expected: String,
        /// The `prev` written.
        found: String,
    },
    /// The entry is signed by a key outside the keyring.
    UntrustedKey {
        /// The key id in the entry.
        key_id: String,
    },
    /// The entry is signed by a key the keyring revokes.
    RevokedKey {
        /// The key id in the entry.
        key_id: String,
    },
    /// The entry's signature does not verify.
    BadSignature {
        /// The key id in the entry.
        key_id: String,
    },
    /// The entry's manifest digest is not the one the model version's ref names.
    ManifestMismatch {
        /// The version's manifest digest.
        expected: String,
        /// The digest in the entry.
        found: String,
    },
    /// The log does not extend the pinned head (entries were removed or rewritten).
    PinnedHead {
        /// The pinned length.
        pinned_len: u64,
        /// The length found.
        found_len: u64,
    },
}

impl fmt::Display for LogCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(r) => write!(f, "malformed entry: {r}"),
            Self::Sequence { expected, found } => {
                write!(f, "sequence number {found}, expected {expected} (entries re-ordered or deleted)")
            }
            Self::PrevHash { expected, found } => {
                write!(f, "previous-entry hash {found}, expected {expected} (chain broken)")
            }
            Self::UntrustedKey { key_id } => write!(f, "signed by key {key_id}, which is not in the keyring"),
            Self::RevokedKey { key_id } => write!(f, "signed by key {key_id}, which the keyring revokes"),
            Self::BadSignature { key_id } => write!(f, "bad signature (key {key_id}): the entry was edited"),
            Self::ManifestMismatch { expected, found } => {
                write!(f, "names manifest {found}, the version's ref names {expected}")
            }
            Self::PinnedHead { pinned_len, found_len } => {
                write!(
                    f,
                    "the log ({found_len} entries) does not extend the pinned head ({pinned_len} entries): entries removed or rewritten"
                )
            }
        }
    }
}

/// One verified promotion.
#[derive(Debug, Clone, PartialEq)]
pub struct LogEntry {
    /// Position in the log, from 0.
    pub seq: u64,
    /// Hash of the previous entry (zeros for the first).
    pub prev: Digest,
    /// The model version promoted.
    pub model: ModelRef,
    /// Its manifest digest.
    pub manifest: Digest,
    /// The stage it entered.
    pub stage: Stage,
    /// When, in milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
    /// Who signed it.
    pub signature: SignatureBlob,
    /// BLAKE3 of this entry's line.
    pub hash: Digest,
}

/// The end of a verified log: its length and last entry's hash. Remember it to detect later truncation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogHead {
    /// Number of entries.
    pub len: u64,
    /// Hash of the last entry (zeros when empty).
    pub hash: Digest,
}

fn body(
    seq: u64,
    prev: &Digest,
    model: &ModelRef,
    manifest: &Digest,
    stage: Stage,
    at: u64,
) -> BTreeMap<String, CValue> {
    BTreeMap::from([
        ("at_unix_ms".to_string(), CValue::UInt(at)),
        ("manifest".to_string(), CValue::Str(manifest.to_hex())),
        ("model".to_string(), CValue::Str(model.to_string())),
        ("prev".to_string(), CValue::Str(prev.to_hex())),
        ("seq".to_string(), CValue::UInt(seq)),
        ("stage".to_string(), CValue::Str(stage.to_string())),
    ])
}

fn canonical(obj: BTreeMap<String, CValue>) -> Vec<u8> {
    // Only strings and integers: always writable.
    CValue::Obj(obj).to_bytes().unwrap_or_default()
}

/// Parses and checks one line (entry `i`, expected to follow `prev`).
fn parse_line(i: usize, line: &[u8], prev: &Digest, keyring: &Keyring) -> Result<LogEntry, Error> {
    let fail = |check: LogCheck| Error::RegistryLog { entry: i, check };
    let malformed = |r: &str| fail(LogCheck::Malformed(r.to_string()));
    let v = CValue::parse(line).map_err(|r| fail(LogCheck::Malformed(r)))?;
    let obj = v.as_obj().filter(|m| m.len() == 7).ok_or_else(|| malformed("expected an object of 7 keys"))?;
    let uint = |k: &str| match obj.get(k) {
        Some(CValue::UInt(u)) => Ok(*u),
        _ => Err(malformed(&format!("{k:?} must be an unsigned integer"))),
    };
    let string = |k: &str| match obj.get(k) {
        Some(CValue::Str(s)) => Ok(s.as_str()),
        _ => Err(malformed(&format!("{k:?} must be a string"))),
    };
    let digest = |k: &str| {
        let s = string(k)?;
        if s.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(malformed(&format!("{k:?} must be lowercase hex")));
        }
        Digest::from_hex(s).map_err(|e| malformed(&e.to_string()))
    };
    let seq = uint("seq")?;
    let found_prev = digest("prev")?;
    let model: ModelRef = string("model")?.parse().map_err(|e: Error| malformed(&e.to_string()))?;
    let manifest = digest("manifest")?;
    let stage: Stage = string("stage")?.parse().map_err(|e: Error| malformed(&e.to_string()))?;
    let at = uint("at_unix_ms")?;
    let sig_hex = string("sig")?;
    let sig_bytes = unhex(sig_hex)
        .filter(|_| !sig_hex.bytes().any(|b| b.is_ascii_uppercase()))
        .ok_or_else(|| malformed("\"sig\" must be lowercase hex"))?;
    let signature = SignatureBlob::from_bytes(&sig_bytes, "promotion entry").map_err(|e| malformed(&e.to_string()))?;
    // Authenticate first, then check the chain, so an edited entry reports the signature.
    let signed = canonical(body(seq, &found_prev, &model, &manifest, stage, at));
    keyring.verify(PROMOTION_DOMAIN, &signed, &signature, "promotion entry").map_err(|e| match e {
        Error::RegistryUntrustedKey { key_id, .. } => fail(LogCheck::UntrustedKey { key_id }),
        Error::RegistryRevokedKey { key_id, .. } => fail(LogCheck::RevokedKey { key_id }),
        _ => fail(LogCheck::BadSignature { key_id: signature.key_id.to_string() }),
    })?;
    if seq != i as u64 {
        return Err(fail(LogCheck::Sequence { expected: i as u64, found: seq }));
    }
    if found_prev != *prev {
        return Err(fail(LogCheck::PrevHash { expected: prev.to_hex(), found: found_prev.to_hex() }));
    }
    Ok(LogEntry { seq, prev: found_prev, model, manifest, stage, at_unix_ms: at, signature, hash: Digest::of(line) })
}

/// Reads and verifies the whole log at `path` (missing file = empty log). With `pinned`, also checks the
/// log still contains that head at its position.
pub fn replay(path: &Path, keyring: &Keyring, pinned: Option<&LogHead>) -> Result<Vec<LogEntry>, Error> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(Error::RegistryIo { path: path.to_path_buf(), source: e }),
    };
    let mut entries: Vec<LogEntry> = Vec::new();
    if !bytes.is_empty() {
        if bytes.last() != Some(&b'\n') {
            let i = bytes.split(|&b| b == b'\n').count() - 1;
            return Err(Error::RegistryLog {
                entry: i,
                check: LogCheck::Malformed("the last line is not terminated".into()),
            });
        }
        for (i, line) in bytes[..bytes.len() - 1].split(|&b| b == b'\n').enumerate() {
            let prev = entries.last().map_or(Digest([0; 32]), |e| e.hash);
            entries.push(parse_line(i, line, &prev, keyring)?);
        }
    }
    if let Some(p) = pinned {
        let found_len = entries.len() as u64;
        let ok = if p.len == 0 {
            true
        } else {
            usize::try_from(p.len - 1).ok().and_then(|i| entries.get(i)).is_some_and(|e| e.hash == p.hash)
        };
        if !ok {
            let entry = entries.len().min(usize::try_from(p.len).unwrap_or(usize::MAX));
            return Err(Error::RegistryLog { entry, check: LogCheck::PinnedHead { pinned_len: p.len, found_len } });
        }
    }
    Ok(entries)
}

/// The head of a verified entry list.
pub fn head(entries: &[LogEntry]) -> LogHead {
    LogHead { len: entries.len() as u64, hash: entries.last().map_or(Digest([0; 32]), |e| e.hash) }
}

/// Appends a signed entry to the log at `path` (the caller holds the registry lock): verifies the log,
/// then rewrites it atomically with the new line. Returns the new head.
pub(crate) fn append(
    path: &Path,
    keyring: &Keyring,
    signer: &Signer,
    model: &ModelRef,
    manifest: &Digest,
    stage: Stage,
    at_unix_ms: u64,
) -> Result<LogHead, Error> {
    let entries = replay(path, keyring, None)?;
    let h = head(&entries);
    let mut obj = body(h.len, &h.hash, model, manifest, stage, at_unix_ms);
    let sig = signer.sign(PROMOTION_DOMAIN, &canonical(obj.clone()));
    obj.insert("sig".to_string(), CValue::Str(hex(&sig.to_bytes())));
    let line = canonical(obj);
    let mut bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(Error::RegistryIo { path: path.to_path_buf(), source: e }),
    };
    bytes.extend_from_slice(&line);
    bytes.push(b'\n');
    write_atomic(path, &bytes, 0o644)?;
    Ok(LogHead { len: h.len + 1, hash: Digest::of(&line) })
}
