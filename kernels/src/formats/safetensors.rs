//! safetensors reader and writer (spec: the README of Hugging Face's `safetensors` repository): a JSON
//! header of tensor dtypes, shapes and byte ranges, then the raw little-endian data,
//! memory-mapped with zero-copy tensor views and F32/F16/BF16 → f32 conversion.
//!
//! Layout:
//!
//! ```text
//! N: u64 little-endian | N bytes of UTF-8 JSON (may end with spaces) | data
//! JSON: { "__metadata__": { "key": "value", … },            (optional, strings only)
//!         "name": { "dtype": "F32", "shape": [384, 1536], "data_offsets": [begin, end] }, … }
//! ```
//!
//! `data_offsets` are relative to the start of the data. As the reference implementation does,
//! this reader requires the header to be at most [`MAX_HEADER_BYTES`], to start with `{`, to
//! have no duplicate keys, every tensor's byte range to be exactly `product(shape) × dtype size`,
//! and the ranges, sorted, to tile the data exactly (no gap, no overlap, nothing after the last).
//! Anything else is [`Error::FormatMalformed`] or [`Error::FormatTruncated`], never a panic.
//!
//! The writer: [`serialize`] lays out named tensors and `__metadata__` (header padded with spaces
//! to a multiple of 8 bytes), [`write_atomic`] puts bytes on disk so that a crash never leaves half
//! a file, and [`save`] does both.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};

use super::{ByteReader, ModelFormat, Storage, bf16_bytes_to_f32, f16_bytes_to_f32, f32_bytes_to_f32};
use crate::{Error, Result};

/// The largest JSON header accepted (the reference implementation's limit).
pub const MAX_HEADER_BYTES: u64 = 100_000_000;

/// A safetensors element type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dtype {
    /// Boolean, one byte.
    Bool,
    /// `u8`.
    U8,
    /// `i8`.
    I8,
    /// 8-bit float, 5-bit exponent.
    F8E5M2,
    /// 8-bit float, 4-bit exponent.
    F8E4M3,
    /// 8-bit exponent-only scale.
    F8E8M0,
    /// `i16`.
    I16,
    /// `u16`.
    U16,
    /// IEEE half precision.
    F16,
    /// bfloat16.
    BF16,
    /// `i32`.
    I32,
    /// `u32`.
    U32,
    /// `f32`.
    F32,
    /// `f64`.
    F64,
    /// `i64`.
    I64,
    /// `u64`.
    U64,
}

impl Dtype {
    const ALL: [Dtype; 16] = [
        Dtype::Bool,
        Dtype::U8,
        Dtype::I8,
        Dtype::F8E5M2,
        Dtype::F8E4M3,
        Dtype::F8E8M0,
        Dtype::I16,
        Dtype::U16,
        Dtype::F16,
        Dtype::BF16,
        Dtype::I32,
        Dtype::U32,
        Dtype::F32,
        Dtype::F64,
        Dtype::I64,
        Dtype::U64,
    ];

    /// The name in the JSON header (`"F32"`, `"BF16"`, …).
    pub fn name(self) -> &'static str {
        match self {
            Dtype::Bool => "BOOL",
            Dtype::U8 => "U8",
            Dtype::I8 => "I8",
            Dtype::F8E5M2 => "F8_E5M2",
            Dtype::F8E4M3 => "F8_E4M3",
            Dtype::F8E8M0 => "F8_E8M0",
            Dtype::I16 => "I16",
            Dtype::U16 => "U16",
            Dtype::F16 => "F16",
            Dtype::BF16 => "BF16",
            Dtype::I32 => "I32",
            Dtype::U32 => "U32",
            Dtype::F32 => "F32",
            Dtype::F64 => "F64",
            Dtype::I64 => "I64",
            Dtype::U64 => "U64",
        }
    }

    /// The dtype of a header name.
    pub fn from_name(name: &str) -> Option<Dtype> {
        Self::ALL.into_iter().find(|d| d.name() == name)
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Dtype::Bool | Dtype::U8 | Dtype::I8 | Dtype::F8E5M2 | Dtype::F8E4M3 | Dtype::F8E8M0 => 1,
            Dtype::I16 | Dtype::U16 | Dtype::F16 | Dtype::BF16 => 2,
            Dtype::I32 | Dtype::U32 | Dtype::F32 => 4,
            Dtype::F64 | Dtype::I64 | Dtype::U64 => 8,
        }
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One tensor of the header, validated against the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// The tensor's name.
    pub name: String,
    /// The element type.
    pub dtype: Dtype,
    /// The shape, row-major (the last dimension is contiguous).
    pub shape: Vec<u64>,
    /// Byte range `[begin, end)` in the data section.
    pub data_offsets: (u64, u64),
}

impl TensorInfo {
    /// The number of elements (product of the shape).
    pub fn n_elements(&self) -> u64 {
        self.shape.iter().product()
    }
}

/// A zero-copy view of one tensor.
#[derive(Debug, Clone, Copy)]
pub struct TensorView<'a> {
    /// The header entry.
    pub info: &'a TensorInfo,
    /// The tensor's bytes.
    pub bytes: &'a [u8],
}

impl<'a> TensorView<'a> {
    /// The tensor's name.
    pub fn name(&self) -> &'a str {
        &self.info.name
    }

    /// The element type.
    pub fn dtype(&self) -> Dtype {
        self.info.dtype
    }

    /// The shape, row-major.
    pub fn shape(&self) -> &'a [u64] {
        &self.info.shape
    }

    /// The elements as f32 (F32, F16 and BF16 are converted exactly).
    ///
    /// # Errors
    /// [`Error::UnsupportedTensorType`] for any other dtype.
    pub fn to_f32(&self) -> Result<Vec<f32>> {
        let convert: fn(&[u8], &mut [f32]) = match self.dtype() {
            Dtype::F32 => f32_bytes_to_f32,
            Dtype::F16 => f16_bytes_to_f32,
            Dtype::BF16 => bf16_bytes_to_f32,
            other => {
                return Err(Error::UnsupportedTensorType {
                    name: self.info.name.clone(),
                    dtype: other.name().to_string(),
                    operation: "conversion to f32",
                });
            }
        };
        let mut out = vec![0.0f32; self.bytes.len() / self.dtype().size()];
        convert(self.bytes, &mut out);
        Ok(out)
    }

    /// The data of an F32 tensor as `&[f32]` without copying, when its bytes are 4-aligned in
    /// memory (usual: writers pad the header to a multiple of 8). `None` otherwise.
    pub fn as_f32_slice(&self) -> Option<&'a [f32]> {
        if self.dtype() != Dtype::F32 || cfg!(target_endian = "big") {
            return None;
        }
        // SAFETY: every bit pattern is a valid f32; `align_to` only yields the aligned middle.
        let (head, floats, tail) = unsafe { self.bytes.align_to::<f32>() };
        (head.is_empty() && tail.is_empty()).then_some(floats)
    }
}

/// A parsed safetensors file.
#[derive(Debug)]
pub struct Safetensors {
    storage: Storage,
    data_offset: usize,
    metadata: BTreeMap<String, String>,
    tensors: Vec<TensorInfo>,
    index: HashMap<String, usize>,
}

impl Safetensors {
    /// Memory-maps and parses a safetensors file; tensors are views into the map.
    ///
    /// The file must not be truncated or rewritten while the returned value lives.
    ///
    /// # Errors
    /// [`Error::FormatIo`] when the file cannot be opened or mapped; the errors of [`Safetensors::parse`].
    pub fn open(path: impl AsRef<Path>) -> Result<Safetensors> {
        Self::from_storage(Storage::map(path.as_ref())?)
    }

    /// Parses a safetensors file held in memory (copies `bytes`).
    ///
    /// # Errors
    /// [`Error::FormatTruncated`] when the file is shorter than its header says,
    /// [`Error::FormatMalformed`] for a header that breaks the rules in the module docs.
    pub fn parse(bytes: &[u8]) -> Result<Safetensors> {
        Self::from_storage(Storage::Owned(bytes.to_vec()))
    }

    /// Parses a safetensors file held in memory, taking the buffer.
    ///
    /// # Errors
    /// As [`Safetensors::parse`].
    pub fn from_vec(bytes: Vec<u8>) -> Result<Safetensors> {
        Self::from_storage(Storage::Owned(bytes))
    }

    fn from_storage(storage: Storage) -> Result<Safetensors> {
        let (data_offset, metadata, tensors) = parse_header(&storage)?;
        let index = tensors.iter().enumerate().map(|(i, t)| (t.name.clone(), i)).collect();
        Ok(Safetensors { storage, data_offset, metadata, tensors, index })
    }

    /// The `__metadata__` entries (empty when the header has none).
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    /// Offset of the data section from the start of the file (`8 + header length`).
    pub fn data_offset(&self) -> usize {
        self.data_offset
    }

    /// The tensors, in the order of their data.
    pub fn tensor_infos(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// Views of every tensor, in the order of their data.
    pub fn tensors(&self) -> impl ExactSizeIterator<Item = TensorView<'_>> {
        self.tensors.iter().map(|info| self.view(info))
    }

    /// The tensor of that name.
    ///
    /// # Errors
    /// [`Error::MissingTensor`] when there is none.
    pub fn tensor(&self, name: &str) -> Result<TensorView<'_>> {
        let &i = self.index.get(name).ok_or_else(|| Error::MissingTensor { name: name.to_string() })?;
        Ok(self.view(&self.tensors[i]))
    }

    fn view<'s>(&'s self, info: &'s TensorInfo) -> TensorView<'s> {
        // Validated at parse time: the range lies inside the data.
        let (begin, end) = info.data_offsets;
        TensorView { info, bytes: &self.storage[self.data_offset + begin as usize..self.data_offset + end as usize] }
    }
}

/// The header's top-level object as (key, value) pairs in file order, duplicates kept.
struct Entries(Vec<(String, serde_json::Value)>);

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct EntriesVisitor;
        impl<'de> Visitor<'de> for EntriesVisitor {
            type Value = Entries;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Entries, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = map.next_entry::<String, serde_json::Value>()? {
                    out.push(entry);
                }
                Ok(Entries(out))
            }
        }
        deserializer.deserialize_map(EntriesVisitor)
    }
}

/// One tensor entry as the JSON spells it.
#[derive(Deserialize)]
struct RawTensor {
    dtype: String,
    shape: Vec<u64>,
    data_offsets: (u64, u64),
}

type Parsed = (usize, BTreeMap<String, String>, Vec<TensorInfo>);

fn parse_header(buf: &[u8]) -> Result<Parsed> {
    let mut r = ByteReader::new(buf, ModelFormat::Safetensors);
    let header_len = r.u64(|| "header length".into())?;
    if header_len > MAX_HEADER_BYTES {
        return Err(r.malformed(0, format!("header length {header_len} exceeds the limit of {MAX_HEADER_BYTES}")));
    }
    let json = r.take(header_len, || "JSON header".into())?;
    let data_offset = r.pos();
    let malformed = |reason: String| Error::FormatMalformed { format: ModelFormat::Safetensors, offset: 8, reason };
    if json.first() != Some(&b'{') {
        return Err(malformed("the JSON header does not start with '{'".into()));
    }
    let text = std::str::from_utf8(json).map_err(|e| malformed(format!("the JSON header is not UTF-8 ({e})")))?;
    let Entries(entries) =
        serde_json::from_str(text.trim_end_matches(' ')).map_err(|e| malformed(format!("invalid JSON header: {e}")))?;

    let mut metadata = BTreeMap::new();
    let mut tensors = Vec::with_capacity(entries.len());
    let mut seen = HashMap::with_capacity(entries.len());
    for (name, value) in entries {
        if seen.insert(name.clone(), ()).is_some() {
            return Err(malformed(format!("duplicate key {name:?} in the header")));
        }
        if name == "__metadata__" {
            metadata = serde_json::from_value(value)
                .map_err(|e| malformed(format!("__metadata__ must map strings to strings: {e}")))?;
            continue;
        }
        let raw: RawTensor =
            serde_json::from_value(value).map_err(|e| malformed(format!("tensor {name:?}: bad entry: {e}")))?;
        let dtype = Dtype::from_name(&raw.dtype)
            .ok_or_else(|| malformed(format!("tensor {name:?} has unknown dtype {:?}", raw.dtype)))?;
        let (begin, end) = raw.data_offsets;
        // Every partial product (zeros counted as 1) must fit, so `n_elements` cannot overflow.
        let extent = raw.shape.iter().try_fold(dtype.size() as u64, |acc, &d| acc.checked_mul(d.max(1)));
        if extent.is_none() {
            return Err(malformed(format!("tensor {name:?} shape {:?} overflows", raw.shape)));
        }
        let n_bytes = raw.shape.iter().product::<u64>() * dtype.size() as u64;
        if begin > end || end - begin != n_bytes {
            return Err(malformed(format!(
                "tensor {name:?}: data_offsets [{begin}, {end}] do not hold {n_bytes} bytes of {dtype} {:?}",
                raw.shape
            )));
        }
        tensors.push(TensorInfo { name, dtype, shape: raw.shape, data_offsets: (begin, end) });
    }

    // The byte ranges must tile the data section exactly.
    tensors.sort_by_key(|t| t.data_offsets);
    let data_len = (buf.len() - data_offset) as u64;
    let mut expected_begin = 0u64;
    for t in &tensors {
        let (begin, end) = t.data_offsets;
        if begin != expected_begin {
            let what = if begin < expected_begin { "overlaps the previous tensor" } else { "leaves a gap before it" };
            return Err(malformed(format!("tensor {:?} at data bytes [{begin}, {end}) {what}", t.name)));
        }
        if end > data_len {
            return Err(Error::FormatTruncated {
                format: ModelFormat::Safetensors,
                offset: data_offset as u64 + begin,
                what: format!("data of tensor {:?}", t.name),
                needed: end - begin,
                available: data_len - begin,
            });
        }
        expected_begin = end;
    }
    if expected_begin != data_len {
        return Err(malformed(format!("the data section has {data_len} bytes but the tensors cover {expected_begin}")));
    }
    Ok((data_offset, metadata, tensors))
}

// ---------------------------------------------------------------------------------------------
// Writer
// ---------------------------------------------------------------------------------------------

/// One tensor for [`serialize`]: its name, element type, shape and little-endian bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TensorData<'a> {
    /// The tensor's name (unique in the file; `__metadata__` is reserved).
    pub name: &'a str,
    /// The element type.
    pub dtype: Dtype,
    /// The shape, row-major (`[]` for a scalar).
    pub shape: &'a [usize],
    /// The data: exactly `product(shape) × dtype size` bytes, little-endian.
    pub bytes: &'a [u8],
}

/// The bytes of a safetensors file holding `tensors` (data in the order given) and `metadata` (as
/// `__metadata__`; omitted when empty, as Python's `save_file(…, metadata=None)` does). The JSON
/// header is padded with spaces to a multiple of 8 bytes, so the data starts 8-aligned.
///
/// [`Safetensors::parse`] and the reference implementation read it back.
///
/// # Errors
/// [`Error::InvalidParameter`] for a tensor named `__metadata__` or named twice, a byte length other
/// than `product(shape) × dtype size`, a shape whose size overflows, or a header above
/// [`MAX_HEADER_BYTES`].
pub fn serialize(tensors: &[TensorData<'_>], metadata: &BTreeMap<String, String>) -> Result<Vec<u8>> {
    let invalid = |reason: String| Error::InvalidParameter(format!("safetensors: {reason}"));
    let mut header = serde_json::Map::new();
    if !metadata.is_empty() {
        let meta = metadata.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone()))).collect();
        header.insert("__metadata__".to_string(), serde_json::Value::Object(meta));
    }
    let mut names = std::collections::HashSet::with_capacity(tensors.len());
    let mut data_len = 0usize;
    for t in tensors {
        if t.name == "__metadata__" {
            return Err(invalid("the tensor name \"__metadata__\" is reserved".into()));
        }
        if !names.insert(t.name) {
            return Err(invalid(format!("tensor {:?} is named twice", t.name)));
        }
        let n_bytes = t.shape.iter().try_fold(t.dtype.size(), |acc, &d| acc.checked_mul(d));
        if n_bytes != Some(t.bytes.len()) {
            return Err(invalid(match n_bytes {
                Some(n) => {
                    format!("tensor {:?}: {} {:?} needs {n} bytes, got {}", t.name, t.dtype, t.shape, t.bytes.len())
                }
                None => format!("tensor {:?}: shape {:?} overflows", t.name, t.shape),
            }));
        }
        let begin = data_len;
        data_len += t.bytes.len();
        header.insert(
            t.name.to_string(),
            serde_json::json!({ "dtype": t.dtype.name(), "shape": t.shape, "data_offsets": [begin, data_len] }),
        );
    }
    let mut json = serde_json::Value::Object(header).to_string().into_bytes();
    while !json.len().is_multiple_of(8) {
        json.push(b' ');
    }
    if json.len() as u64 > MAX_HEADER_BYTES {
        return Err(invalid(format!("the header of {} bytes exceeds the limit of {MAX_HEADER_BYTES}", json.len())));
    }
    let mut out = Vec::with_capacity(8 + json.len() + data_len);
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(&json);
    for t in tensors {
        out.extend_from_slice(t.bytes);
    }
    Ok(out)
}

pub use crate::atomic_file::write_atomic;

/// Saves `tensors` and `metadata` to `path` as a safetensors file ([`serialize`]), atomically
/// ([`write_atomic`]).
///
/// # Errors
/// The errors of [`serialize`]; [`Error::FormatIo`] naming `path` when it cannot be written.
pub fn save(path: impl AsRef<Path>, tensors: &[TensorData<'_>], metadata: &BTreeMap<String, String>) -> Result<()> {
    let path = path.as_ref();
    let bytes = serialize(tensors, metadata)?;
    write_atomic(path, &bytes).map_err(|source| Error::FormatIo { path: path.to_path_buf(), source })
}
