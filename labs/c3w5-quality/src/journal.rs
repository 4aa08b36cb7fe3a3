//! An append-only journal that survives a crash in the middle of a write.
//!
//! A pipeline runner records each finished step by appending a record to a journal file. A crash
//! (power loss, `kill -9`, a full disk) can stop an append half-way, so the file may end in a
//! *torn* record: a few bytes of a length, or a payload cut short. Each record therefore carries
//! its length and a checksum, and a reader keeps the longest prefix of whole, valid records. Only
//! the last record can be torn by a crash; a damaged record *before* the last one means the file
//! was corrupted some other way, and that is an error, not something to skip silently.
//!
//! The runner does its file operations through the [`Fs`] trait, so that tests can inject a crash
//! at any operation. [`MemFs`] is an in-memory file system for tests and experiments.

use std::collections::BTreeMap;

use crate::{Error, Result};

// ANCHOR: fs
/// The file operations a crash-safe runner needs. Every method may fail (a crash injected by a
/// test fails the operation, and every one after it).
pub trait Fs {
    /// The whole content of `path`, or `None` when it does not exist.
    fn read(&mut self, path: &str) -> Result<Option<Vec<u8>>>;
    /// Creates or replaces `path` with `bytes`. Not atomic: a crash may leave a prefix.
    fn write(&mut self, path: &str, bytes: &[u8]) -> Result<()>;
    /// Appends `bytes` to `path` (creating it). Not atomic: a crash may leave a prefix.
    fn append(&mut self, path: &str, bytes: &[u8]) -> Result<()>;
    /// Renames `from` to `to`, replacing `to`: atomic, it happens entirely or not at all.
    fn rename(&mut self, from: &str, to: &str) -> Result<()>;
    /// Makes what was written to `path` durable (`fsync`).
    fn sync(&mut self, path: &str) -> Result<()>;
}
// ANCHOR_END: fs

/// An in-memory [`Fs`]: a map from path to content. Given.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemFs {
    /// Every file.
    pub files: BTreeMap<String, Vec<u8>>,
}

impl Fs for MemFs {
    fn read(&mut self, path: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.files.get(path).cloned())
    }
    fn write(&mut self, path: &str, bytes: &[u8]) -> Result<()> {
        self.files.insert(path.to_string(), bytes.to_vec());
        Ok(())
    }
    fn append(&mut self, path: &str, bytes: &[u8]) -> Result<()> {
        self.files.entry(path.to_string()).or_default().extend_from_slice(bytes);
        Ok(())
    }
    fn rename(&mut self, from: &str, to: &str) -> Result<()> {
        let bytes = self.files.remove(from).ok_or_else(|| Error::Io(format!("rename: `{from}` does not exist")))?;
        self.files.insert(to.to_string(), bytes);
        Ok(())
    }
    fn sync(&mut self, path: &str) -> Result<()> {
        if self.files.contains_key(path) { Ok(()) } else { Err(Error::Io(format!("sync: `{path}` does not exist"))) }
    }
}

/// CRC-32 (IEEE 802.3, the polynomial of zlib, gzip and PNG: reflected `0xEDB88320`, initial
/// value and final XOR `0xFFFFFFFF`), bit by bit. Given: `crc32(b"123456789") == 0xCBF43926`.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

// ANCHOR: record
/// Task c3w5.journal (8 points, with [`decode`]): one journal record holding `payload`.
///
/// The record is the payload's length as a `u32` little-endian, the payload, then
/// [`crc32`] of the length's 4 bytes followed by the payload, as a `u32` little-endian: 8 bytes
/// more than the payload. A payload longer than `u32::MAX` bytes is [`Error::InvalidInput`].
pub fn encode_record(payload: &[u8]) -> Result<Vec<u8>> {
    todo!("c3w5.journal")
}
// ANCHOR_END: record

/// What [`decode`] read from a journal.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Decoded {
    /// The payloads of the whole, valid records, in order.
    pub records: Vec<Vec<u8>>,
    /// The length of the prefix they occupy; less than the input's length when the journal ends in
    /// a torn record.
    pub valid_len: usize,
}

// ANCHOR: decode
/// Task c3w5.journal (with [`encode_record`]): the records of a journal's bytes.
///
/// Read records from offset 0 while bytes remain. The record starting at `offset` is *torn* when
/// fewer than 4 bytes remain, when its length says it extends past the end, or when its checksum
/// does not match and it ends exactly at the end of the input; decoding stops there and
/// `valid_len = offset`. A checksum mismatch in a record that does *not* end at the end of the
/// input is [`Error::CorruptJournal`] with that record's `offset`.
pub fn decode(bytes: &[u8]) -> Result<Decoded> {
    todo!("c3w5.journal")
}
// ANCHOR_END: decode
