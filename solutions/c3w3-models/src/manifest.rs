//! Model-version manifests as **canonical JSON**: one exact byte string per
//! manifest, so that its BLAKE3 digest (its address in the registry) and its
//! Ed25519 signature are well defined.
//!
//! Ordinary JSON writers may order keys as they like, add spaces, escape `é` as
//! `\u00e9` or print `1e-7` as `0.0000001`: all the same JSON value, different
//! bytes, different digests. A registry that signs bytes must fix every such
//! choice. The rules below are those of `kernels::registry::canonical` (in the
//! spirit of RFC 8785, JSON Canonicalization Scheme), and your bytes must equal
//! `kernels::registry::Manifest::to_canonical_bytes` exactly.
//!
//! # The canonical form
//! - **Objects**: keys sorted by their UTF-8 bytes (`str` ordering in Rust), each
//!   once; **no whitespace** anywhere: `{"a":1,"b":[1,2]}`. Arrays keep their order.
//! - **Strings**: `"` then the UTF-8 text as is, except `"` → `\"`, `\` → `\\`,
//!   the five short escapes `\b \f \n \r \t` for U+0008, U+000C, U+000A, U+000D,
//!   U+0009, and every other character below U+0020 as `\u00xx` with **lowercase**
//!   hex (`\u001f`). Nothing else is escaped: `é`, `€`, `😀` and U+007F are written
//!   as their raw UTF-8 bytes.
//! - **Unsigned integers** (`u64`): plain decimal, `0` or no leading zeros.
//! - **Floats** (`f64`, finite only): Rust's shortest round-trip form,
//!   `format!("{v:?}")`: always with a `.` or an exponent (`3.0`, `0.1`, `-2.5`,
//!   `1e-7`, `1e-300`, `1.5e300`), so a float never reads back as an integer and
//!   reads back bit-identical. NaN and ±∞ have no JSON form: an error.
//! - `null` as is.
//!
//! # The manifest document
//! With the keys already in sorted order:
//!
//! ```text
//! {"artefacts":[{"digest":HEX64,"name":STR,"size":U64},…],
//!  "created_unix_ms":U64,
//!  "metrics":{STR:F64,…},
//!  "name":STR,
//!  "parents":["name@version",…],
//!  "schema":1,
//!  "signer_key_id":HEX16,
//!  "training_data":HEX64 or null,
//!  "version":U64}
//! ```
//!
//! (on one line, no spaces). `HEX64` is a 32-byte BLAKE3 digest in lowercase hex;
//! artefacts appear in the order given, which must be sorted by name with no
//! name twice; metrics are sorted by name (a `BTreeMap` already is); parents keep
//! their order.

use std::collections::BTreeMap;

use crate::{Result, invalid};

/// The manifest schema version written in every manifest.
pub const MANIFEST_SCHEMA: u64 = 1;

// ANCHOR: manifest_struct
/// One file of a model version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artefact {
    /// The file's name inside the version.
    pub name: String,
    /// BLAKE3 of the file's bytes.
    pub digest: [u8; 32],
    /// The file's size in bytes.
    pub size: u64,
}

/// A model version's manifest (the same fields as `kernels::registry::Manifest`).
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// The model's name.
    pub name: String,
    /// The version number.
    pub version: u64,
    /// The files, sorted by name, names unique.
    pub artefacts: Vec<Artefact>,
    /// Evaluation metrics (finite values).
    pub metrics: BTreeMap<String, f64>,
    /// Parent versions as `name@version` strings, in order.
    pub parents: Vec<String>,
    /// BLAKE3 of the training data, if recorded.
    pub training_data: Option<[u8; 32]>,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_unix_ms: u64,
    /// Key id (16 lowercase hex characters) of the key that signs this manifest.
    pub signer_key_id: String,
}
// ANCHOR_END: manifest_struct

/// Lowercase hex of bytes. Given.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ANCHOR: write_string
/// Appends `s` as a canonical JSON string, quotes included (task c3w3.manifest).
pub fn write_string(s: &str, out: &mut String) {
    // BEGIN SOLUTION c3w3.manifest
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    // END SOLUTION
}

/// Appends a finite float in canonical form (task c3w3.manifest).
///
/// # Errors
/// [`crate::Error::InvalidInput`] for NaN or an infinity (nothing is appended).
pub fn write_float(v: f64, out: &mut String) -> Result<()> {
    // BEGIN SOLUTION c3w3.manifest
    if !v.is_finite() {
        return invalid(format!("{v} has no canonical JSON form"));
    }
    out.push_str(&format!("{v:?}"));
    Ok(())
    // END SOLUTION
}
// ANCHOR_END: write_string

impl Manifest {
    // ANCHOR: canonical_bytes
    /// The canonical JSON bytes of the manifest (task c3w3.manifest, 10 points with
    /// [`write_string`], [`write_float`] and [`Manifest::digest`]): the document of
    /// the module docs, byte-identical to `kernels::registry::Manifest::to_canonical_bytes`.
    ///
    /// # Errors
    /// [`crate::Error::InvalidInput`] for a non-finite metric, or artefacts not strictly
    /// sorted by name.
    pub fn to_canonical_bytes(&self) -> Result<Vec<u8>> {
        // BEGIN SOLUTION c3w3.manifest
        if let Some(w) = self.artefacts.windows(2).find(|w| w[0].name >= w[1].name) {
            return invalid(format!(
                "artefacts must be sorted by name and unique: {:?} then {:?}",
                w[0].name, w[1].name
            ));
        }
        let mut o = String::with_capacity(256);
        o.push_str("{\"artefacts\":[");
        for (i, a) in self.artefacts.iter().enumerate() {
            if i > 0 {
                o.push(',');
            }
            o.push_str("{\"digest\":");
            write_string(&hex(&a.digest), &mut o);
            o.push_str(",\"name\":");
            write_string(&a.name, &mut o);
            o.push_str(&format!(",\"size\":{}}}", a.size));
        }
        o.push_str(&format!("],\"created_unix_ms\":{},\"metrics\":{{", self.created_unix_ms));
        for (i, (k, v)) in self.metrics.iter().enumerate() {
            if i > 0 {
                o.push(',');
            }
            write_string(k, &mut o);
            o.push(':');
            write_float(*v, &mut o)?;
        }
        o.push_str("},\"name\":");
        write_string(&self.name, &mut o);
        o.push_str(",\"parents\":[");
        for (i, p) in self.parents.iter().enumerate() {
            if i > 0 {
                o.push(',');
            }
            write_string(p, &mut o);
        }
        o.push_str(&format!("],\"schema\":{MANIFEST_SCHEMA},\"signer_key_id\":"));
        write_string(&self.signer_key_id, &mut o);
        o.push_str(",\"training_data\":");
        match &self.training_data {
            Some(d) => write_string(&hex(d), &mut o),
            None => o.push_str("null"),
        }
        o.push_str(&format!(",\"version\":{}}}", self.version));
        Ok(o.into_bytes())
        // END SOLUTION
    }

    /// BLAKE3 of [`Manifest::to_canonical_bytes`]: the manifest's address (task c3w3.manifest).
    ///
    /// # Errors
    /// Those of [`Manifest::to_canonical_bytes`].
    pub fn digest(&self) -> Result<[u8; 32]> {
        // BEGIN SOLUTION c3w3.manifest
        Ok(*blake3::hash(&self.to_canonical_bytes()?).as_bytes())
        // END SOLUTION
    }
    // ANCHOR_END: canonical_bytes
}
