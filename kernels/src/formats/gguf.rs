//! GGUF v2/v3 reader (spec: `docs/gguf.md` of ggml / llama.cpp): typed metadata and zero-copy
//! tensor views over a memory-mapped file.
//!
//! Layout (all little-endian; strings are a `u64` byte length followed by UTF-8 bytes):
//!
//! ```text
//! magic "GGUF" | version: u32 (2 or 3) | tensor_count: u64 | metadata_kv_count: u64
//! metadata_kv_count × (key: string, value_type: u32, value)
//! tensor_count × (name: string, n_dims: u32, dims: [u64; n_dims], ggml_type: u32, offset: u64)
//! padding to `general.alignment` (a u32 metadata entry, default 32)
//! tensor data: each tensor at data_start + offset, offsets multiples of the alignment
//! ```
//!
//! A metadata value is one of 13 types (u8, i8, u16, i16, u32, i32, f32, bool, string, array,
//! u64, i64, f64); an array holds an element type, a `u64` length and the elements, which may
//! themselves be arrays. [`MetadataValue`] and [`MetadataArray`] keep those types, and the
//! accessors ([`Gguf::get_str`], [`Gguf::get_string_array`], [`MetadataValue::as_u32`], …) give
//! the tokenizer its vocabulary, scores, token types and merges without copying again.
//!
//! `dims` are in ggml order: `dims[0]` is the contiguous (fastest-varying) dimension, so a
//! PyTorch `[out, in]` weight is stored with `dims = [in, out]`. A tensor of a block-quantised
//! type needs `dims[0]` to be a multiple of its block length.
//!
//! # Defensive parsing
//! Every read is bounds-checked, and every allocation is bounded by the bytes that remain: a
//! count is never trusted for a `Vec::with_capacity` beyond what the rest of the file could hold.
//! Nested arrays are limited to [`MAX_ARRAY_DEPTH`] levels, tensors to 4 dimensions (ggml's
//! `GGML_MAX_DIMS`). Unknown value or tensor types, duplicate keys or tensor names, a bad
//! `general.alignment`, misaligned, out-of-file or overlapping tensor data, and strings that are
//! not UTF-8 are typed errors ([`Error::FormatMalformed`], [`Error::FormatTruncated`],
//! [`Error::FormatVersion`]). Big-endian GGUF files are not supported (their version reads as a
//! multiple of 65,536 and is reported as an unsupported version).

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use super::{ByteReader, ModelFormat, Storage, bf16_bytes_to_f32, f16_bytes_to_f32, f32_bytes_to_f32};
use crate::quant::QuantFormat;
use crate::{Error, Result};

/// The four bytes every GGUF file starts with.
pub const MAGIC: [u8; 4] = *b"GGUF";
/// The alignment of the tensor data when the file has no `general.alignment` entry.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// How deep metadata arrays may nest (arrays of arrays of …); deeper is malformed.
pub const MAX_ARRAY_DEPTH: usize = 8;
/// The most dimensions a tensor may have (ggml's `GGML_MAX_DIMS`).
pub const MAX_DIMS: usize = 4;

/// ggml tensor types: id, name, elements per block, bytes per block (ggml's `type_traits`).
const GGML_TYPES: &[(u32, &str, usize, usize)] = &[
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
    (40, "NVFP4", 64, 36),
    (41, "Q1_0", 128, 18),
];

/// A ggml tensor type (`ggml_type` id) this reader knows the block geometry of.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct GgmlType(u32);

impl GgmlType {
    /// 32-bit float.
    pub const F32: GgmlType = GgmlType(0);
    /// IEEE half precision.
    pub const F16: GgmlType = GgmlType(1);
    /// bfloat16.
    pub const BF16: GgmlType = GgmlType(30);

    fn info(self) -> (u32, &'static str, usize, usize) {
        // Constructed only from an id in the table.
        GGML_TYPES.iter().copied().find(|t| t.0 == self.0).unwrap_or((self.0, "?", 1, 1))
    }

    /// The type of a `ggml_type` id, if ggml defines it.
    pub fn from_id(id: u32) -> Option<GgmlType> {
        GGML_TYPES.iter().any(|t| t.0 == id).then_some(GgmlType(id))
    }

    /// The `ggml_type` id.
    pub fn id(self) -> u32 {
        self.0
    }

    /// ggml's name of the type (`"F32"`, `"Q4_K"`, …).
    pub fn name(self) -> &'static str {
        self.info().1
    }

    /// Elements per block (1 for the plain types).
    pub fn block_len(self) -> usize {
        self.info().2
    }

    /// Bytes per block (the element size for the plain types).
    pub fn block_bytes(self) -> usize {
        self.info().3
    }

    /// How the elements are stored, in the terms `kernels` computes with.
    pub fn kind(self) -> TensorKind {
        match self.0 {
            0 => TensorKind::F32,
            1 => TensorKind::F16,
            30 => TensorKind::BF16,
            id => QuantFormat::from_ggml_type(id).map_or(TensorKind::Other(self), TensorKind::Quant),
        }
    }
}

impl fmt::Debug for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name())
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a tensor's elements are stored, in the terms `kernels` computes with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TensorKind {
    /// Little-endian f32.
    F32,
    /// Little-endian IEEE f16.
    F16,
    /// Little-endian bfloat16.
    BF16,
    /// Blocks of a format [`crate::quant`] implements.
    Quant(QuantFormat),
    /// Any other ggml type: the bytes are available, [`TensorView::to_f32`] is not.
    Other(GgmlType),
}

/// The type tag of a metadata value (`gguf_metadata_value_type`); names as the `gguf` Python
/// package's `GGUFValueType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetadataType {
    /// `u8` (0).
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
    /// `bool`, one byte 0 or 1 (7).
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

impl MetadataType {
    /// The type of a `gguf_metadata_value_type` id.
    pub fn from_id(id: u32) -> Option<MetadataType> {
        use MetadataType::*;
        Some(match id {
            0 => U8,
            1 => I8,
            2 => U16,
            3 => I16,
            4 => U32,
            5 => I32,
            6 => F32,
            7 => Bool,
            8 => String,
            9 => Array,
            10 => U64,
            11 => I64,
            12 => F64,
            _ => return None,
        })
    }

    /// The name the `gguf` Python package gives the type (`"UINT32"`, `"STRING"`, …).
    pub fn name(self) -> &'static str {
        use MetadataType::*;
        match self {
            U8 => "UINT8",
            I8 => "INT8",
            U16 => "UINT16",
            I16 => "INT16",
            U32 => "UINT32",
            I32 => "INT32",
            F32 => "FLOAT32",
            Bool => "BOOL",
            String => "STRING",
            Array => "ARRAY",
            U64 => "UINT64",
            I64 => "INT64",
            F64 => "FLOAT64",
        }
    }

    /// Bytes of one value of a fixed-size type (`None` for strings and arrays).
    fn fixed_size(self) -> Option<usize> {
        use MetadataType::*;
        match self {
            U8 | I8 | Bool => Some(1),
            U16 | I16 => Some(2),
            U32 | I32 | F32 => Some(4),
            U64 | I64 | F64 => Some(8),
            String | Array => None,
        }
    }

    /// The fewest bytes one value of this type takes in a file (bounds allocations).
    fn min_size(self) -> usize {
        match self {
            MetadataType::String => 8,
            MetadataType::Array => 12,
            other => other.fixed_size().unwrap_or(1),
        }
    }
}

impl fmt::Display for MetadataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum MetadataValue {
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
    /// A typed array.
    Array(MetadataArray),
    /// `u64`.
    U64(u64),
    /// `i64`.
    I64(i64),
    /// `f64`.
    F64(f64),
}

/// A metadata array: one element type, the elements stored unboxed.
#[derive(Debug, Clone, PartialEq)]
pub enum MetadataArray {
    /// `u8` elements.
    U8(Vec<u8>),
    /// `i8` elements.
    I8(Vec<i8>),
    /// `u16` elements.
    U16(Vec<u16>),
    /// `i16` elements.
    I16(Vec<i16>),
    /// `u32` elements.
    U32(Vec<u32>),
    /// `i32` elements (e.g. `tokenizer.ggml.token_type`).
    I32(Vec<i32>),
    /// `f32` elements (e.g. `tokenizer.ggml.scores`).
    F32(Vec<f32>),
    /// `bool` elements.
    Bool(Vec<bool>),
    /// String elements (e.g. `tokenizer.ggml.tokens`, `tokenizer.ggml.merges`).
    String(Vec<String>),
    /// Arrays, each with its own element type.
    Array(Vec<MetadataArray>),
    /// `u64` elements.
    U64(Vec<u64>),
    /// `i64` elements.
    I64(Vec<i64>),
    /// `f64` elements.
    F64(Vec<f64>),
}

impl MetadataValue {
    /// The value's type tag.
    pub fn value_type(&self) -> MetadataType {
        use MetadataValue as V;
        match self {
            V::U8(_) => MetadataType::U8,
            V::I8(_) => MetadataType::I8,
            V::U16(_) => MetadataType::U16,
            V::I16(_) => MetadataType::I16,
            V::U32(_) => MetadataType::U32,
            V::I32(_) => MetadataType::I32,
            V::F32(_) => MetadataType::F32,
            V::Bool(_) => MetadataType::Bool,
            V::String(_) => MetadataType::String,
            V::Array(_) => MetadataType::Array,
            V::U64(_) => MetadataType::U64,
            V::I64(_) => MetadataType::I64,
            V::F64(_) => MetadataType::F64,
        }
    }

    /// A description of the type for error messages: `"UINT32"`, `"ARRAY[STRING]"`, ….
    pub fn type_description(&self) -> String {
        match self {
            MetadataValue::Array(a) => format!("ARRAY[{}]", a.element_type()),
            v => v.value_type().name().to_string(),
        }
    }

    /// The value of any integer type as `i128` (every GGUF integer fits).
    fn as_i128(&self) -> Option<i128> {
        use MetadataValue as V;
        Some(match *self {
            V::U8(v) => v.into(),
            V::I8(v) => v.into(),
            V::U16(v) => v.into(),
            V::I16(v) => v.into(),
            V::U32(v) => v.into(),
            V::I32(v) => v.into(),
            V::U64(v) => v.into(),
            V::I64(v) => v.into(),
            _ => return None,
        })
    }

    /// The string, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            MetadataValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// The value as `u32`, if it is an integer (of any width or sign) in `u32`'s range.
    pub fn as_u32(&self) -> Option<u32> {
        self.as_i128().and_then(|v| u32::try_from(v).ok())
    }

    /// The value as `u64`, if it is an integer in `u64`'s range.
    pub fn as_u64(&self) -> Option<u64> {
        self.as_i128().and_then(|v| u64::try_from(v).ok())
    }

    /// The value as `i64`, if it is an integer in `i64`'s range.
    pub fn as_i64(&self) -> Option<i64> {
        self.as_i128().and_then(|v| i64::try_from(v).ok())
    }

    /// The value as `f32`, if it is an `f32`.
    pub fn as_f32(&self) -> Option<f32> {
        match *self {
            MetadataValue::F32(v) => Some(v),
            _ => None,
        }
    }

    /// The value as `f64`, if it is an `f32` or an `f64`.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            MetadataValue::F32(v) => Some(v.into()),
            MetadataValue::F64(v) => Some(v),
            _ => None,
        }
    }

    /// The value, if it is a `bool`.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            MetadataValue::Bool(v) => Some(v),
            _ => None,
        }
    }

    /// The array, if this is an array.
    pub fn as_array(&self) -> Option<&MetadataArray> {
        match self {
            MetadataValue::Array(a) => Some(a),
            _ => None,
        }
    }

    /// The strings, if this is an array of strings.
    pub fn as_string_array(&self) -> Option<&[String]> {
        match self.as_array()? {
            MetadataArray::String(v) => Some(v),
            _ => None,
        }
    }

    /// The elements, if this is an array of `i32`.
    pub fn as_i32_array(&self) -> Option<&[i32]> {
        match self.as_array()? {
            MetadataArray::I32(v) => Some(v),
            _ => None,
        }
    }

    /// The elements, if this is an array of `u32`.
    pub fn as_u32_array(&self) -> Option<&[u32]> {
        match self.as_array()? {
            MetadataArray::U32(v) => Some(v),
            _ => None,
        }
    }

    /// The elements, if this is an array of `f32`.
    pub fn as_f32_array(&self) -> Option<&[f32]> {
        match self.as_array()? {
            MetadataArray::F32(v) => Some(v),
            _ => None,
        }
    }
}

impl MetadataArray {
    /// The element type.
    pub fn element_type(&self) -> MetadataType {
        use MetadataArray as A;
        match self {
            A::U8(_) => MetadataType::U8,
            A::I8(_) => MetadataType::I8,
            A::U16(_) => MetadataType::U16,
            A::I16(_) => MetadataType::I16,
            A::U32(_) => MetadataType::U32,
            A::I32(_) => MetadataType::I32,
            A::F32(_) => MetadataType::F32,
            A::Bool(_) => MetadataType::Bool,
            A::String(_) => MetadataType::String,
            A::Array(_) => MetadataType::Array,
            A::U64(_) => MetadataType::U64,
            A::I64(_) => MetadataType::I64,
            A::F64(_) => MetadataType::F64,
        }
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        use MetadataArray as A;
        match self {
            A::U8(v) => v.len(),
            A::I8(v) => v.len(),
            A::U16(v) => v.len(),
            A::I16(v) => v.len(),
            A::U32(v) => v.len(),
            A::I32(v) => v.len(),
            A::F32(v) => v.len(),
            A::Bool(v) => v.len(),
            A::String(v) => v.len(),
            A::Array(v) => v.len(),
            A::U64(v) => v.len(),
            A::I64(v) => v.len(),
            A::F64(v) => v.len(),
        }
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One entry of the tensor table, validated against the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// The tensor's name (`"blk.0.attn_q.weight"`, …).
    pub name: String,
    /// Dimensions in ggml order: `dims[0]` is the contiguous one.
    pub dims: Vec<u64>,
    /// The element type.
    pub ggml_type: GgmlType,
    /// Offset of the data from the start of the data section (a multiple of the alignment).
    pub offset: u64,
    /// The number of elements (product of `dims`).
    pub n_elements: u64,
    /// The number of bytes of the data.
    pub n_bytes: u64,
}

/// A zero-copy view of one tensor: its table entry and its bytes in the file.
#[derive(Debug, Clone, Copy)]
pub struct TensorView<'a> {
    /// The table entry.
    pub info: &'a TensorInfo,
    /// The tensor's data, `info.n_bytes` bytes.
    pub bytes: &'a [u8],
}

impl<'a> TensorView<'a> {
    /// The tensor's name.
    pub fn name(&self) -> &'a str {
        &self.info.name
    }

    /// Dimensions in ggml order (`dims[0]` contiguous).
    pub fn dims(&self) -> &'a [u64] {
        &self.info.dims
    }

    /// The ggml element type.
    pub fn ggml_type(&self) -> GgmlType {
        self.info.ggml_type
    }

    /// How the elements are stored.
    pub fn kind(&self) -> TensorKind {
        self.info.ggml_type.kind()
    }

    /// Length of a row: `dims[0]` (1 for a tensor without dimensions).
    pub fn row_len(&self) -> usize {
        self.info.dims.first().map_or(1, |&d| d as usize)
    }

    /// The number of rows: the product of `dims[1..]` (the matrix `rows × row_len` that
    /// [`crate::quant::gemv`] and [`crate::matmul`] take).
    pub fn rows(&self) -> usize {
        self.info.dims.iter().skip(1).product::<u64>() as usize
    }

    /// The elements as f32: F32, F16 and BF16 are converted exactly, the formats of
    /// [`crate::quant`] dequantised.
    ///
    /// # Errors
    /// [`Error::UnsupportedTensorType`] for any other ggml type.
    pub fn to_f32(&self) -> Result<Vec<f32>> {
        let n = self.info.n_elements as usize;
        let mut out = vec![0.0f32; n];
        match self.kind() {
            TensorKind::F32 => f32_bytes_to_f32(self.bytes, &mut out),
            TensorKind::F16 => f16_bytes_to_f32(self.bytes, &mut out),
            TensorKind::BF16 => bf16_bytes_to_f32(self.bytes, &mut out),
            TensorKind::Quant(format) => crate::quant::dequantize(format, self.bytes, &mut out)?,
            TensorKind::Other(t) => {
                return Err(Error::UnsupportedTensorType {
                    name: self.info.name.clone(),
                    dtype: t.name().to_string(),
                    operation: "conversion to f32",
                });
            }
        }
        Ok(out)
    }

    /// The data of an F32 tensor as `&[f32]` without copying, when its bytes are 4-aligned in
    /// memory (always for a memory-mapped file, whose tensors are aligned to at least 4 bytes).
    /// `None` for other types or a misaligned buffer.
    pub fn as_f32_slice(&self) -> Option<&'a [f32]> {
        if self.kind() != TensorKind::F32 || cfg!(target_endian = "big") {
            return None;
        }
        // SAFETY: every bit pattern is a valid f32; `align_to` only yields the aligned middle.
        let (head, floats, tail) = unsafe { self.bytes.align_to::<f32>() };
        (head.is_empty() && tail.is_empty()).then_some(floats)
    }
}

/// A parsed GGUF file: metadata in file order, the tensor table, and the bytes.
#[derive(Debug)]
pub struct Gguf {
    storage: Storage,
    version: u32,
    alignment: u64,
    data_offset: usize,
    metadata: Vec<(String, MetadataValue)>,
    metadata_index: HashMap<String, usize>,
    tensors: Vec<TensorInfo>,
    tensor_index: HashMap<String, usize>,
}

impl Gguf {
    /// Memory-maps and parses a GGUF file. The tensors are views into the map (zero-copy); the
    /// metadata is decoded into owned values.
    ///
    /// The file must not be truncated or rewritten while the returned value lives (as for any
    /// memory-mapped file).
    ///
    /// # Errors
    /// [`Error::FormatIo`] when the file cannot be opened or mapped; the errors of [`Gguf::parse`].
    pub fn open(path: impl AsRef<Path>) -> Result<Gguf> {
        Self::from_storage(Storage::map(path.as_ref())?)
    }

    /// Parses a GGUF file held in memory (copies `bytes`).
    ///
    /// # Errors
    /// [`Error::FormatTruncated`] when the file ends before a field it declares,
    /// [`Error::FormatVersion`] for a version other than 2 or 3, [`Error::FormatMalformed`] for
    /// anything else the spec forbids (see the module docs).
    pub fn parse(bytes: &[u8]) -> Result<Gguf> {
        Self::from_storage(Storage::Owned(bytes.to_vec()))
    }

    /// Parses a GGUF file held in memory, taking the buffer.
    ///
    /// # Errors
    /// As [`Gguf::parse`].
    pub fn from_vec(bytes: Vec<u8>) -> Result<Gguf> {
        Self::from_storage(Storage::Owned(bytes))
    }

    fn from_storage(storage: Storage) -> Result<Gguf> {
        let header = parse_header(&storage)?;
        Ok(Gguf {
            storage,
            version: header.version,
            alignment: header.alignment,
            data_offset: header.data_offset,
            metadata_index: header.metadata.iter().enumerate().map(|(i, (k, _))| (k.clone(), i)).collect(),
            metadata: header.metadata,
            tensor_index: header.tensors.iter().enumerate().map(|(i, t)| (t.name.clone(), i)).collect(),
            tensors: header.tensors,
        })
    }

    /// The format version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The alignment of the tensor data (`general.alignment`, default 32).
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Offset of the data section from the start of the file.
    pub fn data_offset(&self) -> usize {
        self.data_offset
    }

    /// The file's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.storage
    }

    /// The metadata entries, in file order.
    pub fn metadata_entries(&self) -> impl ExactSizeIterator<Item = (&str, &MetadataValue)> {
        self.metadata.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The value of a metadata key, if present.
    pub fn metadata(&self, key: &str) -> Option<&MetadataValue> {
        self.metadata_index.get(key).map(|&i| &self.metadata[i].1)
    }

    /// The value of a metadata key.
    ///
    /// # Errors
    /// [`Error::MissingMetadata`] when the key is absent.
    pub fn get(&self, key: &str) -> Result<&MetadataValue> {
        self.metadata(key).ok_or_else(|| Error::MissingMetadata { key: key.to_string() })
    }

    fn get_as<'s, T>(
        &'s self,
        key: &str,
        expected: &'static str,
        convert: impl FnOnce(&'s MetadataValue) -> Option<T>,
    ) -> Result<T> {
        let value = self.get(key)?;
        convert(value).ok_or_else(|| Error::MetadataType {
            key: key.to_string(),
            expected,
            got: value.type_description(),
        })
    }

    /// A string entry.
    ///
    /// # Errors
    /// [`Error::MissingMetadata`] when absent, [`Error::MetadataType`] when not a string.
    pub fn get_str(&self, key: &str) -> Result<&str> {
        self.get_as(key, "STRING", MetadataValue::as_str)
    }

    /// An integer entry (any width or sign) that fits `u32`.
    ///
    /// # Errors
    /// [`Error::MissingMetadata`] when absent, [`Error::MetadataType`] when not such an integer.
    pub fn get_u32(&self, key: &str) -> Result<u32> {
        self.get_as(key, "an integer in u32 range", MetadataValue::as_u32)
    }

    /// An integer entry (any width or sign) that fits `u64`.
    ///
    /// # Errors
    /// [`Error::MissingMetadata`] when absent, [`Error::MetadataType`] when not such an integer.
    pub fn get_u64(&self, key: &str) -> Result<u64> {
        self.get_as(key, "an integer in u64 range", MetadataValue::as_u64)
    }

    /// An `f32` entry.
    ///
    /// # Errors
    /// [`Error::MissingMetadata`] when absent, [`Error::MetadataType`] when not an `f32`.
    pub fn get_f32(&self, key: &str) -> Result<f32> {
        self.get_as(key, "FLOAT32", MetadataValue::as_f32)
    }

    /// A `bool` entry.
    ///
    /// # Errors
    /// [`Error::MissingMetadata`] when absent, [`Error::MetadataType`] when not a `bool`.
    pub fn get_bool(&self, key: &str) -> Result<bool> {
        self.get_as(key, "BOOL", MetadataValue::as_bool)
    }

    /// An array-of-strings entry (e.g. `tokenizer.ggml.tokens`, `tokenizer.ggml.merges`).
    ///
    /// # Errors
    /// [`Error::MissingMetadata`] when absent, [`Error::MetadataType`] when not an array of strings.
    pub fn get_string_array(&self, key: &str) -> Result<&[String]> {
        self.get_as(key, "ARRAY[STRING]", MetadataValue::as_string_array)
    }

    /// An array-of-`i32` entry (e.g. `tokenizer.ggml.token_type`).
    ///
    /// # Errors
    /// [`Error::MissingMetadata`] when absent, [`Error::MetadataType`] when not an array of `i32`.
    pub fn get_i32_array(&self, key: &str) -> Result<&[i32]> {
        self.get_as(key, "ARRAY[INT32]", MetadataValue::as_i32_array)
    }

    /// An array-of-`u32` entry.
    ///
    /// # Errors
    /// [`Error::MissingMetadata`] when absent, [`Error::MetadataType`] when not an array of `u32`.
    pub fn get_u32_array(&self, key: &str) -> Result<&[u32]> {
        self.get_as(key, "ARRAY[UINT32]", MetadataValue::as_u32_array)
    }

    /// An array-of-`f32` entry (e.g. `tokenizer.ggml.scores`).
    ///
    /// # Errors
    /// [`Error::MissingMetadata`] when absent, [`Error::MetadataType`] when not an array of `f32`.
    pub fn get_f32_array(&self, key: &str) -> Result<&[f32]> {
        self.get_as(key, "ARRAY[FLOAT32]", MetadataValue::as_f32_array)
    }

    /// `general.architecture` (`"llama"`, …).
    ///
    /// # Errors
    /// As [`Gguf::get_str`].
    pub fn architecture(&self) -> Result<&str> {
        self.get_str("general.architecture")
    }

    /// The tensor table, in file order.
    pub fn tensor_infos(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// Views of every tensor, in file order.
    pub fn tensors(&self) -> impl ExactSizeIterator<Item = TensorView<'_>> {
        self.tensors.iter().map(|info| self.view(info))
    }

    /// The tensor of that name.
    ///
    /// # Errors
    /// [`Error::MissingTensor`] when there is none.
    pub fn tensor(&self, name: &str) -> Result<TensorView<'_>> {
        let &i = self.tensor_index.get(name).ok_or_else(|| Error::MissingTensor { name: name.to_string() })?;
        Ok(self.view(&self.tensors[i]))
    }

    fn view<'s>(&'s self, info: &'s TensorInfo) -> TensorView<'s> {
        // Validated at parse time: a tensor with bytes lies inside the file. A zero-sized one may
        // sit past the end of a file that stops before its padding: it gets an empty slice.
        let start = self.data_offset.saturating_add(info.offset as usize);
        let bytes = self.storage.get(start..start.saturating_add(info.n_bytes as usize)).unwrap_or_default();
        TensorView { info, bytes }
    }
}

/// What [`parse_header`] finds.
struct Header {
    version: u32,
    alignment: u64,
    data_offset: usize,
    metadata: Vec<(String, MetadataValue)>,
    tensors: Vec<TensorInfo>,
}

/// A capacity for `count` items of at least `min_size` bytes each that the rest of the file
/// could actually hold.
fn bounded_capacity(count: u64, remaining: usize, min_size: usize) -> usize {
    count.min((remaining / min_size.max(1)) as u64) as usize
}

fn read_string(r: &mut ByteReader<'_>, what: impl Fn() -> String) -> Result<String> {
    let start = r.pos();
    let len = r.u64(|| format!("length of {}", what()))?;
    let bytes = r.take(len, &what)?;
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(s.to_string()),
        Err(e) => Err(r.malformed(start, format!("{} is not UTF-8 ({e})", what()))),
    }
}

fn read_type(r: &mut ByteReader<'_>, what: impl Fn() -> String) -> Result<MetadataType> {
    let at = r.pos();
    let id = r.u32(|| format!("type of {}", what()))?;
    MetadataType::from_id(id).ok_or_else(|| r.malformed(at, format!("unknown metadata type {id} for {}", what())))
}

fn read_value(r: &mut ByteReader<'_>, ty: MetadataType, what: &dyn Fn() -> String) -> Result<MetadataValue> {
    use MetadataValue as V;
    if ty == MetadataType::String {
        return read_string(r, what).map(V::String);
    }
    if ty == MetadataType::Array {
        return read_array(r, 1, what).map(V::Array);
    }
    let at = r.pos();
    let size = ty.fixed_size().unwrap_or(1);
    let b = r.take(size as u64, what)?;
    let mut buf = [0u8; 8];
    buf[..size].copy_from_slice(b);
    Ok(match ty {
        MetadataType::U8 => V::U8(buf[0]),
        MetadataType::I8 => V::I8(buf[0] as i8),
        MetadataType::U16 => V::U16(u16::from_le_bytes([buf[0], buf[1]])),
        MetadataType::I16 => V::I16(i16::from_le_bytes([buf[0], buf[1]])),
        MetadataType::U32 => V::U32(u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]])),
        MetadataType::I32 => V::I32(i32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]])),
        MetadataType::F32 => V::F32(f32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]])),
        MetadataType::U64 => V::U64(u64::from_le_bytes(buf)),
        MetadataType::I64 => V::I64(i64::from_le_bytes(buf)),
        MetadataType::F64 => V::F64(f64::from_le_bytes(buf)),
        MetadataType::Bool => match buf[0] {
            0 => V::Bool(false),
            1 => V::Bool(true),
            b => return Err(r.malformed(at, format!("{} is a bool of value {b} (must be 0 or 1)", what()))),
        },
        MetadataType::String | MetadataType::Array => unreachable!("handled above"),
    })
}

/// Reads `len` fixed-size elements (`N` bytes each) into a vector, after checking they fit.
fn read_fixed<T, const N: usize>(
    r: &mut ByteReader<'_>,
    len: u64,
    what: &dyn Fn() -> String,
    decode: impl Fn([u8; N]) -> T,
) -> Result<Vec<T>> {
    let bytes = match len.checked_mul(N as u64) {
        Some(bytes) => r.take(bytes, || format!("{} ({len} elements)", what()))?,
        None => return Err(r.truncated(u64::MAX, format!("{} ({len} elements)", what()))),
    };
    Ok(bytes
        .chunks_exact(N)
        .map(|c| {
            let mut a = [0u8; N];
            a.copy_from_slice(c);
            decode(a)
        })
        .collect())
}

fn read_array(r: &mut ByteReader<'_>, depth: usize, what: &dyn Fn() -> String) -> Result<MetadataArray> {
    use MetadataArray as A;
    let at = r.pos();
    if depth > MAX_ARRAY_DEPTH {
        return Err(r.malformed(at, format!("{} nests arrays deeper than {MAX_ARRAY_DEPTH} levels", what())));
    }
    let ty = read_type(r, || format!("elements of {}", what()))?;
    let len = r.u64(|| format!("length of {}", what()))?;
    let element = |i: u64| move || format!("element {i} of {}", what());
    Ok(match ty {
        MetadataType::U8 => A::U8(read_fixed(r, len, what, |[b]| b)?),
        MetadataType::I8 => A::I8(read_fixed(r, len, what, |[b]| b as i8)?),
        MetadataType::U16 => A::U16(read_fixed(r, len, what, u16::from_le_bytes)?),
        MetadataType::I16 => A::I16(read_fixed(r, len, what, i16::from_le_bytes)?),
        MetadataType::U32 => A::U32(read_fixed(r, len, what, u32::from_le_bytes)?),
        MetadataType::I32 => A::I32(read_fixed(r, len, what, i32::from_le_bytes)?),
        MetadataType::F32 => A::F32(read_fixed(r, len, what, f32::from_le_bytes)?),
        MetadataType::U64 => A::U64(read_fixed(r, len, what, u64::from_le_bytes)?),
        MetadataType::I64 => A::I64(read_fixed(r, len, what, i64::from_le_bytes)?),
        MetadataType::F64 => A::F64(read_fixed(r, len, what, f64::from_le_bytes)?),
        MetadataType::Bool => {
            let start = r.pos();
            let bytes = read_fixed(r, len, what, |[b]| b)?;
            if let Some(i) = bytes.iter().position(|&b| b > 1) {
                let reason = format!("element {i} of {} is a bool of value {} (must be 0 or 1)", what(), bytes[i]);
                return Err(r.malformed(start + i, reason));
            }
            A::Bool(bytes.into_iter().map(|b| b == 1).collect())
        }
        MetadataType::String => {
            let mut items = Vec::with_capacity(bounded_capacity(len, r.remaining(), ty.min_size()));
            for i in 0..len {
                items.push(read_string(r, element(i))?);
            }
            A::String(items)
        }
        MetadataType::Array => {
            let mut items = Vec::with_capacity(bounded_capacity(len, r.remaining(), ty.min_size()));
            for i in 0..len {
                items.push(read_array(r, depth + 1, &element(i))?);
            }
            A::Array(items)
        }
    })
}

fn parse_header(buf: &[u8]) -> Result<Header> {
    let mut r = ByteReader::new(buf, ModelFormat::Gguf);
    let magic: [u8; 4] = r.array(|| "magic".into())?;
    if magic != MAGIC {
        return Err(r.malformed(0, format!("magic is {magic:?}, expected \"GGUF\" ({MAGIC:?})")));
    }
    let version = r.u32(|| "version".into())?;
    if version != 2 && version != 3 {
        return Err(Error::FormatVersion { format: ModelFormat::Gguf, version, supported: "2 and 3, little-endian" });
    }
    let tensor_count = r.u64(|| "tensor_count".into())?;
    let kv_count = r.u64(|| "metadata_kv_count".into())?;

    // Metadata: key (≥ 8 bytes), type (4), value (≥ 1).
    let mut metadata: Vec<(String, MetadataValue)> = Vec::with_capacity(bounded_capacity(kv_count, r.remaining(), 13));
    let mut seen: HashMap<String, usize> = HashMap::with_capacity(metadata.capacity());
    for i in 0..kv_count {
        let at = r.pos();
        let key = read_string(&mut r, || format!("key of metadata entry {i}"))?;
        if let Some(&first) = seen.get(&key) {
            return Err(r.malformed(at, format!("duplicate metadata key {key:?} (entries {first} and {i})")));
        }
        let what = || format!("metadata value {key:?}");
        let ty = read_type(&mut r, what)?;
        let value = read_value(&mut r, ty, &what)?;
        seen.insert(key.clone(), i as usize);
        metadata.push((key, value));
    }

    // general.alignment: a u32, non-zero power of two.
    let mut alignment = DEFAULT_ALIGNMENT;
    if let Some(&i) = seen.get("general.alignment") {
        alignment = match metadata[i].1 {
            MetadataValue::U32(a) if a.is_power_of_two() => a.into(),
            ref other => {
                let reason = format!("general.alignment must be a UINT32 power of two, got {other:?}");
                return Err(r.malformed(r.pos(), reason));
            }
        };
    }

    // Tensor infos: name (≥ 8), n_dims (4), type (4), offset (8).
    let mut tensors: Vec<TensorInfo> = Vec::with_capacity(bounded_capacity(tensor_count, r.remaining(), 24));
    let mut names: HashMap<String, usize> = HashMap::with_capacity(tensors.capacity());
    for i in 0..tensor_count {
        let at = r.pos();
        let name = read_string(&mut r, || format!("name of tensor {i}"))?;
        if let Some(&first) = names.get(&name) {
            return Err(r.malformed(at, format!("duplicate tensor name {name:?} (tensors {first} and {i})")));
        }
        let dims_at = r.pos();
        let n_dims = r.u32(|| format!("n_dims of tensor {name:?}"))?;
        if n_dims as usize > MAX_DIMS {
            return Err(r.malformed(dims_at, format!("tensor {name:?} has {n_dims} dimensions (at most {MAX_DIMS})")));
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for d in 0..n_dims {
            dims.push(r.u64(|| format!("dimension {d} of tensor {name:?}"))?);
        }
        let type_at = r.pos();
        let type_id = r.u32(|| format!("type of tensor {name:?}"))?;
        let ggml_type = GgmlType::from_id(type_id)
            .ok_or_else(|| r.malformed(type_at, format!("tensor {name:?} has unknown ggml type {type_id}")))?;
        let offset = r.u64(|| format!("offset of tensor {name:?}"))?;

        // Every partial product of the dimensions (zeros counted as 1) must fit `usize`, so that
        // `rows()` and friends cannot overflow even for an empty tensor.
        let extent = dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d.max(1)));
        if extent.is_none_or(|n| usize::try_from(n).is_err()) {
            return Err(r.malformed(dims_at, format!("tensor {name:?} dimensions {dims:?} overflow")));
        }
        let n_elements: u64 = dims.iter().product();
        let block_len = ggml_type.block_len() as u64;
        let row_len = dims.first().copied().unwrap_or(1);
        if row_len % block_len != 0 {
            let reason = format!(
                "tensor {name:?} of type {ggml_type} has rows of {row_len} elements, not a multiple of its {block_len}-element block"
            );
            return Err(r.malformed(dims_at, reason));
        }
        let n_bytes = (n_elements / block_len)
            .checked_mul(ggml_type.block_bytes() as u64)
            .ok_or_else(|| r.malformed(dims_at, format!("tensor {name:?} byte size overflows")))?;
        if offset % alignment != 0 {
            let reason = format!("tensor {name:?} data offset {offset} is not a multiple of the alignment {alignment}");
            return Err(r.malformed(type_at + 4, reason));
        }
        names.insert(name.clone(), i as usize);
        tensors.push(TensorInfo { name, dims, ggml_type, offset, n_elements, n_bytes });
    }

    // The data section starts at the next multiple of the alignment.
    let end_of_infos = r.pos() as u64;
    let data_offset = end_of_infos.div_ceil(alignment).saturating_mul(alignment);
    let data_len = (buf.len() as u64).saturating_sub(data_offset);
    for t in &tensors {
        let end = t.offset.checked_add(t.n_bytes);
        if end.is_none_or(|end| end > data_len) {
            return Err(Error::FormatTruncated {
                format: ModelFormat::Gguf,
                offset: data_offset.saturating_add(t.offset),
                what: format!("data of tensor {:?}", t.name),
                needed: t.n_bytes,
                available: data_len.saturating_sub(t.offset),
            });
        }
    }
    // No two tensors may share bytes.
    let mut by_offset: Vec<&TensorInfo> = tensors.iter().filter(|t| t.n_bytes > 0).collect();
    by_offset.sort_by_key(|t| t.offset);
    for pair in by_offset.windows(2) {
        if pair[0].offset + pair[0].n_bytes > pair[1].offset {
            let reason = format!(
                "data of tensors {:?} (bytes {}..{}) and {:?} (from byte {}) overlap",
                pair[0].name,
                pair[0].offset,
                pair[0].offset + pair[0].n_bytes,
                pair[1].name,
                pair[1].offset
            );
            return Err(Error::FormatMalformed {
                format: ModelFormat::Gguf,
                offset: data_offset + pair[1].offset,
                reason,
            });
        }
    }
    Ok(Header { version, alignment, data_offset: data_offset as usize, metadata, tensors })
}

// ---------------------------------------------------------------------------------------------
// Writing

/// One tensor for [`serialize`]: its name, dims in ggml order (`dims[0]` contiguous), type and
/// bytes (`n_elements / block_len · block_bytes` of them).
#[derive(Debug, Clone)]
pub struct GgufTensor<'a> {
    /// The tensor's name (`"blk.0.attn_q.weight"`, …).
    pub name: String,
    /// Dimensions in ggml order.
    pub dims: Vec<u64>,
    /// The element type.
    pub ggml_type: GgmlType,
    /// The data.
    pub bytes: std::borrow::Cow<'a, [u8]>,
}

impl<'a> GgufTensor<'a> {
    /// A tensor of `gguf` as it is in the file, its bytes borrowed.
    pub fn of(view: TensorView<'a>) -> GgufTensor<'a> {
        GgufTensor {
            name: view.info.name.clone(),
            dims: view.info.dims.clone(),
            ggml_type: view.info.ggml_type,
            bytes: std::borrow::Cow::Borrowed(view.bytes),
        }
    }
}

impl MetadataType {
    /// The `gguf_metadata_value_type` id.
    pub fn id(self) -> u32 {
        use MetadataType::*;
        match self {
            U8 => 0,
            I8 => 1,
            U16 => 2,
            I16 => 3,
            U32 => 4,
            I32 => 5,
            F32 => 6,
            Bool => 7,
            String => 8,
            Array => 9,
            U64 => 10,
            I64 => 11,
            F64 => 12,
        }
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_array(out: &mut Vec<u8>, a: &MetadataArray) {
    use MetadataArray as A;
    out.extend_from_slice(&a.element_type().id().to_le_bytes());
    out.extend_from_slice(&(a.len() as u64).to_le_bytes());
    match a {
        A::U8(v) => out.extend_from_slice(v),
        A::I8(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        A::U16(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        A::I16(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        A::U32(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        A::I32(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        A::F32(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        A::Bool(v) => v.iter().for_each(|&x| out.push(u8::from(x))),
        A::String(v) => v.iter().for_each(|s| put_str(out, s)),
        A::Array(v) => v.iter().for_each(|inner| put_array(out, inner)),
        A::U64(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        A::I64(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        A::F64(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
    }
}

fn put_value(out: &mut Vec<u8>, v: &MetadataValue) {
    use MetadataValue as V;
    out.extend_from_slice(&v.value_type().id().to_le_bytes());
    match v {
        V::U8(x) => out.push(*x),
        V::I8(x) => out.extend_from_slice(&x.to_le_bytes()),
        V::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
        V::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
        V::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
        V::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
        V::F32(x) => out.extend_from_slice(&x.to_le_bytes()),
        V::Bool(x) => out.push(u8::from(*x)),
        V::String(s) => put_str(out, s),
        V::Array(a) => put_array(out, a),
        V::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
        V::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
        V::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
    }
}

/// A GGUF v3 file of `metadata` (in this order) and `tensors` (in this order, each at the next
/// multiple of the alignment), laid out as llama.cpp's writers do, so that re-writing a file read by
/// [`Gguf`] with its own metadata and tensors gives the same bytes. The alignment is the metadata's
/// `general.alignment` (a `u32`), 32 without one.
///
/// # Errors
/// [`Error::InvalidParameter`] for duplicate keys or tensor names, a bad `general.alignment`, a
/// tensor with more than 4 or no dimensions, whose first dimension is not a whole number of blocks,
/// or whose byte count does not match its dims and type.
pub fn serialize(metadata: &[(String, MetadataValue)], tensors: &[GgufTensor<'_>]) -> Result<Vec<u8>> {
    let bad = |reason: String| Error::InvalidParameter(format!("gguf: {reason}"));
    let mut keys = std::collections::HashSet::new();
    let mut alignment = DEFAULT_ALIGNMENT;
    for (key, value) in metadata {
        if !keys.insert(key.as_str()) {
            return Err(bad(format!("metadata key {key:?} given twice")));
        }
        if key == "general.alignment" {
            alignment = match value.as_u32() {
                Some(a) if a > 0 && a.is_power_of_two() => u64::from(a),
                _ => return Err(bad(format!("general.alignment {value:?} is not a power of two u32"))),
            };
        }
    }
    let pad = |n: u64| n.div_ceil(alignment) * alignment;
    let mut names = std::collections::HashSet::new();
    let mut offsets = Vec::with_capacity(tensors.len());
    let mut data_len = 0u64;
    for t in tensors {
        if !names.insert(t.name.as_str()) {
            return Err(bad(format!("tensor {:?} given twice", t.name)));
        }
        if t.dims.is_empty() || t.dims.len() > MAX_DIMS {
            return Err(bad(format!("tensor {:?} has {} dimensions (1 to {MAX_DIMS})", t.name, t.dims.len())));
        }
        let (block_len, block_bytes) = (t.ggml_type.block_len() as u64, t.ggml_type.block_bytes() as u64);
        if !t.dims[0].is_multiple_of(block_len) {
            return Err(bad(format!(
                "tensor {:?}: first dimension {} is not a multiple of {}'s block of {block_len}",
                t.name,
                t.dims[0],
                t.ggml_type.name()
            )));
        }
        let elements = t.dims.iter().try_fold(1u64, |n, &d| n.checked_mul(d));
        let expected = elements.and_then(|n| (n / block_len).checked_mul(block_bytes));
        if expected != Some(t.bytes.len() as u64) {
            return Err(bad(format!(
                "tensor {:?}: {} bytes for dims {:?} of {}",
                t.name,
                t.bytes.len(),
                t.dims,
                t.ggml_type.name()
            )));
        }
        data_len = pad(data_len);
        offsets.push(data_len);
        data_len += t.bytes.len() as u64;
    }
    let mut out = Vec::with_capacity(data_len as usize + (1 << 20));
    out.extend_from_slice(b"GGUF");
    out.extend_from_slice(&3u32.to_le_bytes());
    out.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    out.extend_from_slice(&(metadata.len() as u64).to_le_bytes());
    for (key, value) in metadata {
        put_str(&mut out, key);
        put_value(&mut out, value);
    }
    for (t, offset) in tensors.iter().zip(&offsets) {
        put_str(&mut out, &t.name);
        out.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
        t.dims.iter().for_each(|d| out.extend_from_slice(&d.to_le_bytes()));
        out.extend_from_slice(&t.ggml_type.id().to_le_bytes());
        out.extend_from_slice(&offset.to_le_bytes());
    }
    // The data section starts aligned, so aligning absolute positions gives the offsets above.
    for t in tensors {
        out.resize(pad(out.len() as u64) as usize, 0);
        out.extend_from_slice(&t.bytes);
    }
    Ok(out)
}

/// Writes [`serialize`]'s file to `path` atomically (a temporary file renamed over it).
///
/// # Errors
/// As [`serialize`], and [`Error::FormatIo`] when the file cannot be written.
pub fn save(path: impl AsRef<Path>, metadata: &[(String, MetadataValue)], tensors: &[GgufTensor<'_>]) -> Result<()> {
    let path = path.as_ref();
    let bytes = serialize(metadata, tensors)?;
    super::safetensors::write_atomic(path, &bytes)
        .map_err(|source| Error::FormatIo { path: path.to_path_buf(), source })
}
