//! Model file formats: GGUF (llama.cpp's single-file models) and safetensors, memory-mapped.
//!
//! * [`gguf`]: GGUF v2/v3 (spec: `docs/gguf.md` in the ggml / llama.cpp repositories): typed
//!   metadata (the tokenizer's vocabulary and merges, the architecture's hyper-parameters) and a
//!   table of tensors, each a zero-copy view of its bytes with its ggml type mapped to
//!   [`crate::quant::QuantFormat`] or F32/F16/BF16.
//! * [`safetensors`]: Hugging Face's safetensors (spec: the `safetensors` repository's README):
//!   an 8-byte little-endian header length, a JSON header with each tensor's dtype, shape and
//!   byte range, then the raw tensor data.
//!
//! Both readers memory-map the file ([`Gguf::open`](gguf::Gguf::open),
//! [`Safetensors::open`](safetensors::Safetensors::open)) or take an in-memory buffer (`parse`),
//! and parse **defensively**: every length and count is checked against the bytes that remain
//! before anything is allocated or sliced, so a truncated or hostile file gives a typed error
//! ([`crate::Error::FormatTruncated`], [`crate::Error::FormatMalformed`], …), never a panic or a
//! huge allocation.

use std::fmt;
use std::ops::Deref;
use std::path::Path;

use crate::{Error, Result};

pub mod gguf;
pub mod safetensors;

pub use gguf::{GgmlType, Gguf, MetadataArray, MetadataValue, TensorKind};
pub use safetensors::{Dtype, Safetensors};

/// Which model file format an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModelFormat {
    /// GGUF (llama.cpp).
    Gguf,
    /// safetensors (Hugging Face).
    Safetensors,
}

impl fmt::Display for ModelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ModelFormat::Gguf => "GGUF",
            ModelFormat::Safetensors => "safetensors",
        })
    }
}

/// The bytes of a model file: a read-only memory map of the file, or an owned buffer.
pub(crate) enum Storage {
    /// A memory-mapped file.
    Mapped(memmap2::Mmap),
    /// A buffer in memory.
    Owned(Vec<u8>),
}

impl Storage {
    /// Maps `path` read-only.
    pub(crate) fn map(path: &Path) -> Result<Storage> {
        let io = |source| Error::FormatIo { path: path.to_path_buf(), source };
        let file = std::fs::File::open(path).map_err(io)?;
        // SAFETY: the map is read-only and private to this value. Like every reader of a mapped
        // file, we rely on the file not being truncated or rewritten while it is mapped (the
        // documented contract of `Gguf::open` / `Safetensors::open`); the parsers never trust
        // the contents, only their length, which the map fixes at creation.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
        Ok(Storage::Mapped(map))
    }
}

impl Deref for Storage {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Storage::Mapped(map) => map,
            Storage::Owned(vec) => vec,
        }
    }
}

impl fmt::Debug for Storage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Storage::Mapped(map) => write!(f, "Mapped({} bytes)", map.len()),
            Storage::Owned(vec) => write!(f, "Owned({} bytes)", vec.len()),
        }
    }
}

/// A bounds-checked little-endian reader over a byte slice: every read either succeeds or
/// returns [`Error::FormatTruncated`] naming the field.
pub(crate) struct ByteReader<'a> {
    buf: &'a [u8],
    pos: usize,
    format: ModelFormat,
}

impl<'a> ByteReader<'a> {
    pub(crate) fn new(buf: &'a [u8], format: ModelFormat) -> Self {
        Self { buf, pos: 0, format }
    }

    /// Current offset from the start of the buffer.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// Bytes left after the current offset.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The next `n` bytes, or [`Error::FormatTruncated`] for `what`.
    pub(crate) fn take(&mut self, n: u64, what: impl FnOnce() -> String) -> Result<&'a [u8]> {
        if n > self.remaining() as u64 {
            return Err(self.truncated(n, what()));
        }
        let n = n as usize;
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// The next `N` bytes as an array.
    pub(crate) fn array<const N: usize>(&mut self, what: impl FnOnce() -> String) -> Result<[u8; N]> {
        let bytes = self.take(N as u64, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    pub(crate) fn u32(&mut self, what: impl FnOnce() -> String) -> Result<u32> {
        self.array(what).map(u32::from_le_bytes)
    }

    pub(crate) fn u64(&mut self, what: impl FnOnce() -> String) -> Result<u64> {
        self.array(what).map(u64::from_le_bytes)
    }

    /// [`Error::FormatTruncated`] at the current offset.
    pub(crate) fn truncated(&self, needed: u64, what: String) -> Error {
        Error::FormatTruncated {
            format: self.format,
            offset: self.pos as u64,
            what,
            needed,
            available: self.remaining() as u64,
        }
    }

    /// [`Error::FormatMalformed`] at `offset`.
    pub(crate) fn malformed(&self, offset: usize, reason: String) -> Error {
        Error::FormatMalformed { format: self.format, offset: offset as u64, reason }
    }
}

/// Little-endian f16 bytes to f32 (exact).
pub(crate) fn f16_bytes_to_f32(bytes: &[u8], out: &mut [f32]) {
    for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        *o = half::f16::from_le_bytes([c[0], c[1]]).to_f32();
    }
}

/// Little-endian bf16 bytes to f32 (exact).
pub(crate) fn bf16_bytes_to_f32(bytes: &[u8], out: &mut [f32]) {
    for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        *o = half::bf16::from_le_bytes([c[0], c[1]]).to_f32();
    }
}

/// Little-endian f32 bytes to f32.
pub(crate) fn f32_bytes_to_f32(bytes: &[u8], out: &mut [f32]) {
    for (o, c) in out.iter_mut().zip(bytes.chunks_exact(4)) {
        *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
    }
}
