//! A defensive GGUF v2/v3 reader (spec: `docs/gguf.md` in the ggml / llama.cpp repositories).
//!
//! A GGUF file is one little-endian byte stream; strings are a `u64` byte length followed by
//! that many UTF-8 bytes (no terminating zero):
//!
//! ```text
//! magic "GGUF" | version: u32 (2 or 3) | tensor_count: u64 | metadata_kv_count: u64
//! metadata_kv_count × (key: string, value_type: u32, value)
//! tensor_count × (name: string, n_dims: u32, dims: [u64; n_dims], ggml_type: u32, offset: u64)
//! zero padding up to a multiple of `general.alignment` (a u32 metadata entry; 32 when absent)
//! tensor data: tensor i starts at data_offset + offset_i, every offset a multiple of the alignment
//! ```
//!
//! A metadata value is one of 13 types ([`ValueType`]); an array stores its element type
//! (`u32`), its length (`u64`) and the elements, which may themselves be arrays.
//!
//! **Defensive parsing.** The bytes come from outside: a truncated download, a fuzzer, an
//! attacker. Every read is checked against the bytes that remain ([`Error::Truncated`]), no
//! count read from the file is trusted for an allocation (a length of 2⁶² must give an error,
//! not an abort), arrays nest at most [`MAX_ARRAY_DEPTH`] levels (a million nested arrays must
//! not overflow the stack), and everything else the spec forbids is [`Error::Malformed`].
//!
//! You write the cursor ([`Reader`]), [`read_value`] and [`parse_header`] (task
//! `c4w1.gguf-header`), then [`parse`], which adds the tensor table (task `c4w1.gguf-tensors`).

use crate::{Error, Result};

/// The four bytes every GGUF file starts with.
pub const MAGIC: [u8; 4] = *b"GGUF";
/// The alignment of the tensor data when the file has no `general.alignment` entry.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// How many levels of arrays may nest (a top-level array is level 1); deeper is malformed.
pub const MAX_ARRAY_DEPTH: usize = 8;
/// The most dimensions a tensor may have (ggml's `GGML_MAX_DIMS`).
pub const MAX_DIMS: usize = 4;

/// ggml tensor types: `(id, name, elements per block, bytes per block)`, from ggml's `type_traits`.
/// Given: the reader needs every type's geometry to know how many bytes a tensor takes.
pub const GGML_TYPES: &[(u32, &str, u64, u64)] = &[
    (0, "F32", 1, 4),
    (1, "F16", 1, 2),
    (2, "Q4_0", 32, 18),
    (3, "Q4_1", 32, 20),
    (6, "Q5_0", 32, 22),
    (7, "Q5_1", 32, 24),
    (8, "Q8_0", 32, 34),
    (9, "Q8_1", 32, 36),
    (10, "Q2_K", 256, 84),
    (11, "Q3_K", 256, 110),
    (12, "Q4_K", 256, 144),
    (13, "Q5_K", 256, 176),
    (14, "Q6_K", 256, 210),
    (15, "Q8_K", 256, 292),
    (16, "IQ2_XXS", 256, 66),
    (17, "IQ2_XS", 256, 74),
    (18, "IQ3_XXS", 256, 98),
    (19, "IQ1_S", 256, 50),
    (20, "IQ4_NL", 32, 18),
    (21, "IQ3_S", 256, 110),
    (22, "IQ2_S", 256, 82),
    (23, "IQ4_XS", 256, 136),
    (24, "I8", 1, 1),
    (25, "I16", 1, 2),
    (26, "I32", 1, 4),
    (27, "I64", 1, 8),
    (28, "F64", 1, 8),
    (29, "IQ1_M", 256, 56),
    (30, "BF16", 1, 2),
    (34, "TQ1_0", 256, 54),
    (35, "TQ2_0", 256, 66),
    (39, "MXFP4", 32, 17),
];

/// `(name, block_len, block_bytes)` of a ggml type id, if ggml defines it. Given.
pub fn ggml_type_info(id: u32) -> Option<(&'static str, u64, u64)> {
    GGML_TYPES.iter().find(|t| t.0 == id).map(|&(_, name, len, bytes)| (name, len, bytes))
}

/// The type tag of a metadata value (`gguf_metadata_value_type`). Given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueType {
    /// `u8` (id 0).
    U8,
    /// `i8` (1).
    I8,
    /// `u16` (2).
    U16,
    /// `i16` (3).
    I16,
    /// `u32` (4).
    U32,
    /// `i32` (5).
    I32,
    /// `f32` (6).
    F32,
    /// `bool`: one byte, 0 or 1 (7).
    Bool,
    /// UTF-8 string (8).
    String,
    /// Array (9).
    Array,
    /// `u64` (10).
    U64,
    /// `i64` (11).
    I64,
    /// `f64` (12).
    F64,
}

impl ValueType {
    /// Every type, in id order.
    pub const ALL: [ValueType; 13] = [
        ValueType::U8,
        ValueType::I8,
        ValueType::U16,
        ValueType::I16,
        ValueType::U32,
        ValueType::I32,
        ValueType::F32,
        ValueType::Bool,
        ValueType::String,
        ValueType::Array,
        ValueType::U64,
        ValueType::I64,
        ValueType::F64,
    ];

    /// The type of an id, if the spec defines it.
    pub fn from_id(id: u32) -> Option<ValueType> {
        ValueType::ALL.get(id as usize).copied()
    }

    /// The id written in the file.
    pub fn id(self) -> u32 {
        ValueType::ALL.iter().position(|&t| t == self).unwrap_or(0) as u32
    }

    /// Bytes of one value of a fixed-size type; `None` for strings and arrays.
    pub fn fixed_size(self) -> Option<usize> {
        use ValueType::*;
        match self {
            U8 | I8 | Bool => Some(1),
            U16 | I16 => Some(2),
            U32 | I32 | F32 => Some(4),
            U64 | I64 | F64 => Some(8),
            String | Array => None,
        }
    }

    /// The fewest bytes one value of this type can take in a file: a string is at least its
    /// 8-byte length, an array at least its 4-byte type and 8-byte length. Use it to bound
    /// allocations: `n` values cannot need fewer than `n · min_size()` bytes.
    pub fn min_size(self) -> usize {
        match self {
            ValueType::String => 8,
            ValueType::Array => 12,
            other => other.fixed_size().unwrap_or(1),
        }
    }
}

/// One metadata value. Given.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `u8`.
    U8(u8),
    /// `i8`.
    I8(i8),
    /// `u16`.
    U16(u16),
    /// `i16`.
    I16(i16),
    /// `u32`.
    U32(u32),
    /// `i32`.
    I32(i32),
    /// `f32`.
    F32(f32),
    /// `bool`.
    Bool(bool),
    /// A UTF-8 string.
    String(String),
    /// An array.
    Array(Array),
    /// `u64`.
    U64(u64),
    /// `i64`.
    I64(i64),
    /// `f64`.
    F64(f64),
}

/// A metadata array: its element type (kept even when it is empty) and its elements, each a
/// [`Value`] of that type. Given.
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    /// The type of every element.
    pub element: ValueType,
    /// The elements.
    pub items: Vec<Value>,
}

impl Value {
    /// The value's type tag.
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::U8(_) => ValueType::U8,
            Value::I8(_) => ValueType::I8,
            Value::U16(_) => ValueType::U16,
            Value::I16(_) => ValueType::I16,
            Value::U32(_) => ValueType::U32,
            Value::I32(_) => ValueType::I32,
            Value::F32(_) => ValueType::F32,
            Value::Bool(_) => ValueType::Bool,
            Value::String(_) => ValueType::String,
            Value::Array(_) => ValueType::Array,
            Value::U64(_) => ValueType::U64,
            Value::I64(_) => ValueType::I64,
            Value::F64(_) => ValueType::F64,
        }
    }

    /// The string, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The value of an integer of any width or sign, if it fits `u64`.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v.into()),
            Value::U16(v) => Some(v.into()),
            Value::U32(v) => Some(v.into()),
            Value::U64(v) => Some(v),
            Value::I8(v) => u64::try_from(v).ok(),
            Value::I16(v) => u64::try_from(v).ok(),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// The value of an integer of any width or sign, if it fits `u32`.
    pub fn as_u32(&self) -> Option<u32> {
        self.as_u64().and_then(|v| u32::try_from(v).ok())
    }

    /// The value, if this is an `f32`.
    pub fn as_f32(&self) -> Option<f32> {
        match *self {
            Value::F32(v) => Some(v),
            _ => None,
        }
    }

    /// The value, if this is a `bool`.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(v) => Some(v),
            _ => None,
        }
    }

    /// The array, if this is an array.
    pub fn as_array(&self) -> Option<&Array> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// The strings, if this is an array of strings.
    pub fn as_strings(&self) -> Option<Vec<&str>> {
        self.as_array()?.items.iter().map(Value::as_str).collect()
    }
}

/// A bounds-checked little-endian cursor over the input (task c4w1.gguf-header, with
/// [`read_value`] and [`parse_header`]).
///
/// Every read either returns the bytes it asked for and moves on, or returns
/// [`Error::Truncated`] naming `what` it was reading, the offset where the field starts, the
/// bytes needed and the bytes left, and leaves the cursor where it was. It never panics and
/// never slices out of bounds, whatever `n` is (even `u64::MAX`).
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A cursor at the start of `bytes`. Given.
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes, pos: 0 }
    }

    /// The offset of the next byte to read. Given.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes left after the cursor. Given.
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    /// The next `n` bytes (part of task c4w1.gguf-header): [`Error::Truncated`] when fewer
    /// than `n` remain. `n` is a `u64` straight from the file: compare before converting.
    pub fn take(&mut self, n: u64, what: &str) -> Result<&'a [u8]> {
        todo!("c4w1.gguf-header")
    }

    /// The next `N` bytes as an array (for the fixed-size numbers). Given.
    pub fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let bytes = self.take(N as u64, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    /// A little-endian `u32`. Given.
    pub fn u32(&mut self, what: &str) -> Result<u32> {
        self.array(what).map(u32::from_le_bytes)
    }

    /// A little-endian `u64`. Given.
    pub fn u64(&mut self, what: &str) -> Result<u64> {
        self.array(what).map(u64::from_le_bytes)
    }

    /// A GGUF string (part of task c4w1.gguf-header): a `u64` length, then that many bytes,
    /// which must be UTF-8 ([`Error::Malformed`] at the string's offset otherwise).
    pub fn string(&mut self, what: &str) -> Result<String> {
        todo!("c4w1.gguf-header")
    }
}

// ANCHOR: read_value
/// Reads one value of type `ty` (part of task c4w1.gguf-header, 12 points with [`Reader`] and
/// [`parse_header`]).
///
/// * Numbers are little-endian; a bool is one byte that must be 0 or 1 (else
///   [`Error::Malformed`]).
/// * A string is [`Reader::string`].
/// * An array is its element type (`u32`; unknown ids are [`Error::Malformed`]), its length
///   (`u64`), then the elements. `depth` is the number of arrays this value sits in (0 for a
///   metadata value itself); an array at `depth ≥ MAX_ARRAY_DEPTH` is [`Error::Malformed`], so
///   at most [`MAX_ARRAY_DEPTH`] arrays nest.
/// * Never allocate more than the remaining bytes could fill: reserve at most
///   `min(len, remaining / element.min_size())` elements ([`ValueType::min_size`]), and compute
///   byte sizes with checked arithmetic (`len · 8` can overflow).
pub fn read_value(r: &mut Reader<'_>, ty: ValueType, depth: usize, what: &str) -> Result<Value> {
    todo!("c4w1.gguf-header")
}
// ANCHOR_END: read_value

/// Reads a value type id (`u32`): [`Error::Malformed`] for an id the spec does not define.
/// Given.
pub fn read_type(r: &mut Reader<'_>, what: &str) -> Result<ValueType> {
    let at = r.position() as u64;
    let id = r.u32(what)?;
    ValueType::from_id(id)
        .ok_or_else(|| Error::Malformed { offset: at, reason: format!("unknown value type {id} for {what}") })
}

/// The fixed header and the metadata of a GGUF file.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    /// The format version (2 or 3).
    pub version: u32,
    /// How many tensor descriptions follow the metadata.
    pub tensor_count: u64,
    /// The metadata entries, in file order.
    pub metadata: Vec<(String, Value)>,
    /// The offset just after the last metadata entry: where the tensor table starts.
    pub metadata_end: usize,
}

impl Header {
    /// The value of a metadata key, if present. Given.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

/// Task c4w1.gguf-header (12 points, with [`Reader`] and [`read_value`]): parses the magic,
/// the version, the two counts and every metadata entry.
///
/// In this order:
/// 1. fewer than 4 bytes: [`Error::Truncated`]; the magic is not `"GGUF"`: [`Error::BadMagic`];
/// 2. the version (`u32`) is not 2 or 3: [`Error::UnsupportedVersion`];
/// 3. `tensor_count` and `metadata_kv_count` (`u64` each);
/// 4. `metadata_kv_count` entries: key (a string), value type ([`read_type`]), value
///    ([`read_value`] at depth 0). A key seen before is [`Error::Malformed`].
///
/// Do not trust `metadata_kv_count` for `Vec::with_capacity` either (an entry takes at least
/// 13 bytes). Any read past the end is [`Error::Truncated`]: every strict prefix of the
/// metadata section is an error, never a panic.
pub fn parse_header(bytes: &[u8]) -> Result<Header> {
    todo!("c4w1.gguf-header")
}

/// One entry of the tensor table, checked against the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// The tensor's name (`"blk.0.attn_q.weight"`, …).
    pub name: String,
    /// Dimensions in ggml order: `dims[0]` is the contiguous one (a PyTorch `[out, in]` weight
    /// is stored with `dims = [in, out]`).
    pub dims: Vec<u64>,
    /// The ggml type id (see [`GGML_TYPES`]).
    pub ggml_type: u32,
    /// Offset of the data from the start of the data section (a multiple of the alignment).
    pub offset: u64,
    /// The number of elements: the product of `dims` (1 for no dims).
    pub n_elements: u64,
    /// The number of bytes of the data: `n_elements / block_len · block_bytes`.
    pub n_bytes: u64,
}

impl TensorInfo {
    /// ggml's name of the tensor's type (`"Q4_1"`, …). Given.
    pub fn type_name(&self) -> &'static str {
        ggml_type_info(self.ggml_type).map_or("?", |t| t.0)
    }

    /// Elements per row: `dims[0]` (1 without dims). Given.
    pub fn row_len(&self) -> u64 {
        self.dims.first().copied().unwrap_or(1)
    }
}

/// A parsed GGUF file: header, alignment, tensor table and where the data starts. The file's
/// bytes stay with the caller ([`GgufFile::tensor_data`] slices them).
#[derive(Debug, Clone, PartialEq)]
pub struct GgufFile {
    /// Version, counts and metadata.
    pub header: Header,
    /// The alignment of the tensor data.
    pub alignment: u64,
    /// The tensor table, in file order.
    pub tensors: Vec<TensorInfo>,
    /// Offset of the data section from the start of the file.
    pub data_offset: u64,
}

impl GgufFile {
    /// The value of a metadata key, if present. Given.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.header.get(key)
    }

    /// A string entry. Given.
    ///
    /// # Errors
    /// [`Error::Metadata`] when the key is absent or not a string.
    pub fn get_str(&self, key: &str) -> Result<&str> {
        self.typed(key, "a string", Value::as_str)
    }

    /// An integer entry that fits `u32`. Given.
    ///
    /// # Errors
    /// [`Error::Metadata`] when the key is absent or not such an integer.
    pub fn get_u32(&self, key: &str) -> Result<u32> {
        self.typed(key, "an integer in u32 range", Value::as_u32)
    }

    /// An `f32` entry. Given.
    ///
    /// # Errors
    /// [`Error::Metadata`] when the key is absent or not an `f32`.
    pub fn get_f32(&self, key: &str) -> Result<f32> {
        self.typed(key, "an f32", Value::as_f32)
    }

    /// An array-of-strings entry. Given.
    ///
    /// # Errors
    /// [`Error::Metadata`] when the key is absent or not an array of strings.
    pub fn get_strings(&self, key: &str) -> Result<Vec<&str>> {
        self.typed(key, "an array of strings", Value::as_strings)
    }

    fn typed<'s, T>(&'s self, key: &str, expected: &str, get: impl FnOnce(&'s Value) -> Option<T>) -> Result<T> {
        let value =
            self.get(key).ok_or_else(|| Error::Metadata { key: key.to_string(), reason: "absent".to_string() })?;
        get(value).ok_or_else(|| Error::Metadata {
            key: key.to_string(),
            reason: format!("expected {expected}, found {:?}", value.value_type()),
        })
    }

    /// The table entry of a tensor, if present. Given.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// The bytes of tensor `name` inside `file` (the bytes this was parsed from). Given.
    ///
    /// # Errors
    /// [`Error::MissingTensor`]; [`Error::Truncated`] if `file` is not the parsed file.
    pub fn tensor_data<'a>(&self, file: &'a [u8], name: &str) -> Result<&'a [u8]> {
        let t = self.tensor(name).ok_or_else(|| Error::MissingTensor(name.to_string()))?;
        let mut r = Reader::new(file);
        let start = self.data_offset.saturating_add(t.offset);
        r.take(start, "the bytes before the tensor")?;
        r.take(t.n_bytes, &format!("data of tensor {name:?}"))
    }
}

// ANCHOR: parse
/// Task c4w1.gguf-tensors (8 points): parses the whole header, the tensor table, the alignment
/// and the data offset, and checks every tensor against the file.
///
/// After [`parse_header`], read `tensor_count` entries from `header.metadata_end`: name
/// (string), `n_dims` (`u32`), `n_dims` dims (`u64`), ggml type (`u32`), offset (`u64`). Then:
///
/// * alignment: `general.alignment` if present — it must be a [`Value::U32`] power of two —
///   else [`DEFAULT_ALIGNMENT`];
/// * `data_offset`: the end of the tensor table rounded up to a multiple of the alignment;
/// * [`Error::Malformed`] for: a duplicate tensor name, more than [`MAX_DIMS`] dims, an unknown
///   ggml type ([`ggml_type_info`]), an element count that overflows `u64`, a row length
///   (`dims[0]`) that is not a multiple of the type's block length, an offset that is not a
///   multiple of the alignment, a bad `general.alignment`, two tensors whose bytes overlap;
/// * [`Error::Truncated`] when the table ends early or a tensor's bytes
///   (`data_offset + offset .. + n_bytes`) run past the end of `bytes`.
///
/// As in the metadata, never trust `tensor_count` for an allocation (an entry takes at least
/// 24 bytes), and use checked arithmetic for every size and offset.
pub fn parse(bytes: &[u8]) -> Result<GgufFile> {
    todo!("c4w1.gguf-tensors")
}
// ANCHOR_END: parse
