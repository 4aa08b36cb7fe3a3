//! Content-addressed step caching: a step whose command, configuration and input files are
//! unchanged is skipped, because its output would be the same.
//!
//! The key is a hash of *everything the output depends on*, encoded so that two different steps can
//! never encode to the same bytes. Concatenating strings is not such an encoding: `["ab", "c"]` and
//! `["a", "bc"]` both give `"abc"`. Prefixing every string with its length, and every list with
//! its count, is (the encoding is prefix-free, so it can be decoded back). Configuration is a set,
//! not a list: its pairs are sorted first, so the order they were written in does not matter.
//! Input files enter by the BLAKE3 digest of their bytes, so renaming nothing and touching nothing
//! keeps the key, and changing any byte changes it. BLAKE3 (O'Connor, Aumasson, Neves,
//! Wilcox-O'Hearn 2020) is the hash: a Merkle tree over 1 KiB chunks, fast and collision-resistant.

use std::collections::BTreeMap;

use crate::{Error, Result};

/// The format tag at the start of every encoding: a new format gets a new tag, so that keys of
/// different formats never collide.
pub const FORMAT_TAG: &str = "c3w5.step-cache.v1";

// ANCHOR: types
/// One input file of a step: its path and the BLAKE3 digest of its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Input {
    /// The path, as the pipeline names it.
    pub path: String,
    /// `blake3::hash(bytes)` of the file's content.
    pub digest: [u8; 32],
}

impl Input {
    /// The input `path` with content `bytes`. Given.
    pub fn new(path: &str, bytes: &[u8]) -> Input {
        Input { path: path.to_string(), digest: *blake3::hash(bytes).as_bytes() }
    }
}

/// What a step's output depends on.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct StepSpec {
    /// The command and its arguments, in order (at least the command).
    pub argv: Vec<String>,
    /// Configuration pairs `(key, value)`, in any order; keys are unique.
    pub config: Vec<(String, String)>,
    /// The input files, in any order; paths are unique.
    pub inputs: Vec<Input>,
}

/// A step's cache key: 32 bytes of BLAKE3.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey(pub [u8; 32]);

impl CacheKey {
    /// The key as 64 lowercase hex digits. Given.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}
// ANCHOR_END: types

// ANCHOR: encode
/// Task c3w5.cache-key (10 points, with [`cache_key`] and [`StepCache`]): the canonical encoding
/// of `spec`.
///
/// A *string* is its byte length as a `u64` little-endian, then its UTF-8 bytes. The encoding is,
/// in order:
/// 1. [`FORMAT_TAG`] as a string;
/// 2. the number of arguments (`u64` LE), then each argument of `argv` as a string;
/// 3. the number of configuration pairs (`u64` LE), then the pairs sorted by key (byte order),
///    each as the key then the value, both strings;
/// 4. the number of inputs (`u64` LE), then the inputs sorted by path (byte order), each as the
///    path (a string) then its 32 digest bytes.
///
/// Errors ([`Error::InvalidInput`]): an empty `argv`; a configuration key or an input path that
/// occurs twice.
pub fn encode(spec: &StepSpec) -> Result<Vec<u8>> {
    todo!("c3w5.cache-key")
}
// ANCHOR_END: encode

/// Task c3w5.cache-key (with [`encode`] and [`StepCache`]): `blake3::hash` of [`encode`]`(spec)`.
pub fn cache_key(spec: &StepSpec) -> Result<CacheKey> {
    todo!("c3w5.cache-key")
}

// ANCHOR: step_cache
/// The keys of the last successful run of each step: a step runs again only when its key changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StepCache {
    /// Step name → the key it last completed with.
    pub completed: BTreeMap<String, CacheKey>,
}

impl StepCache {
    /// Task c3w5.cache-key (with [`encode`] and [`cache_key`]): whether `step` must run: true
    /// unless it last completed with exactly this `key`.
    pub fn needs_run(&self, step: &str, key: &CacheKey) -> bool {
        todo!("c3w5.cache-key")
    }

    /// Task c3w5.cache-key: records that `step` completed with `key` (replacing an older key).
    pub fn record(&mut self, step: &str, key: CacheKey) {
        todo!("c3w5.cache-key")
    }
}
// ANCHOR_END: step_cache
