//! Saving an [`Hnsw`] index to a file and loading it back, validated, so a service starts without
//! rebuilding its graph.
//!
//! The format is this crate's own (hnswlib's files are not read), little-endian, version 1:
//!
//! | bytes | field |
//! |---|---|
//! | 8 | magic `SVHNSW\0\0` |
//! | 4 | format version (1) |
//! | 4 | metric: 0 squared L2, 1 negated dot, 2 cosine |
//! | 8 × 9 | `dim`, `M`, `ef_construction`, seed, vector count `n`, entry point, top layer, the level generator's state, upper-layer slot count `u` |
//! | `4·n·dim` | vectors, row-major f32 (unit length under cosine) |
//! | `4·n·(1 + 2M)` | layer-0 lists: a count, then the ids |
//! | `n` | each node's level |
//! | `4·u` | upper-layer lists, node by node, layer by layer: a count, then the ids |
//!
//! The upper-layer offsets are not stored: they follow from the levels. Loading checks
//! everything a search relies on before it returns (the sizes against the file's length, every
//! count against its list's capacity, every id against `n`, the levels against the top layer and
//! the entry point, every value finite), so a truncated, corrupted or foreign file is an
//! [`Error::AnnIndex`] naming the section and never a panic or an out-of-bounds read later.
//! [`Hnsw::load`] memory-maps the file and searches the vectors and layer-0 lists in place (the
//! sections are 4-byte aligned for that: the header is 88 bytes); [`Hnsw::from_bytes`] copies. A
//! loaded index searches and accepts inserts exactly like the one saved, with the same answers.

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use super::{Buffer, Hnsw, HnswConfig, MAX_LEVEL, MAX_M, Word};
use crate::simd::Metric;
use crate::{Error, Result};

const MAGIC: &[u8; 8] = b"SVHNSW\0\0";
const VERSION: u32 = 1;
const HEADER_BYTES: usize = 8 + 4 + 4 + 8 * 9;

fn metric_code(m: Metric) -> u32 {
    match m {
        Metric::L2 => 0,
        Metric::Dot => 1,
        Metric::Cosine => 2,
    }
}

/// A cursor over the file's bytes that names what it could not read.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    path: &'a Path,
}

impl<'a> Reader<'a> {
    fn bad(&self, reason: String) -> Error {
        Error::AnnIndex { path: self.path.to_path_buf(), reason }
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len()).ok_or_else(|| {
            self.bad(format!(
                "truncated: {what} needs {n} bytes at offset {}, the file has {}",
                self.at,
                self.bytes.len()
            ))
        })?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4, what)?.try_into().expect("4 bytes")))
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8, what)?.try_into().expect("8 bytes")))
    }

    /// A header count as `usize`, at most `max`.
    fn count(&mut self, what: &str, max: u64) -> Result<usize> {
        let v = self.u64(what)?;
        if v > max {
            return Err(self.bad(format!("{what} is {v}, more than {max}")));
        }
        usize::try_from(v).map_err(|_| self.bad(format!("{what} {v} does not fit this machine")))
    }

    /// `n` little-endian words at the cursor: a window of `map` when there is one (and the window
    /// is aligned), else decoded copies.
    fn words<T: Word>(
        &mut self,
        map: Option<&Arc<memmap2::Mmap>>,
        n: usize,
        what: &str,
        decode: impl Fn(u32) -> T,
    ) -> Result<Buffer<T>> {
        let at = self.at;
        let Some(window) = map.and_then(|m| Buffer::mapped(m, at, n)) else {
            return Ok(Buffer::Owned(self.u32s(n, what)?.into_iter().map(decode).collect()));
        };
        self.take(n.checked_mul(4).ok_or_else(|| self.bad(format!("{what}: size overflows")))?, what)?;
        Ok(window)
    }

    fn u32s(&mut self, n: usize, what: &str) -> Result<Vec<u32>> {
        let bytes = self.take(n.checked_mul(4).ok_or_else(|| self.bad(format!("{what}: size overflows")))?, what)?;
        Ok(bytes.chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes"))).collect())
    }
}

impl Hnsw {
    /// The index in the file format of the module docs (what [`Hnsw::save`] writes).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            HEADER_BYTES + 4 * (self.vectors.len() + self.links0.len() + self.upper_links.len()) + self.levels.len(),
        );
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&metric_code(self.config.metric).to_le_bytes());
        for v in [
            self.dim as u64,
            self.m as u64,
            self.config.ef_construction as u64,
            self.config.seed,
            self.len as u64,
            u64::from(self.entry),
            self.max_level as u64,
            self.rng,
            self.upper_links.len() as u64,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend(self.vectors.iter().flat_map(|v| v.to_le_bytes()));
        out.extend(self.links0.iter().flat_map(|v| v.load(Relaxed).to_le_bytes()));
        out.extend_from_slice(&self.levels);
        out.extend(self.upper_links.iter().flat_map(|v| v.load(Relaxed).to_le_bytes()));
        out
    }

    /// Writes the index to `path` (see the module docs for the format) atomically
    /// ([`crate::atomic_file::write_atomic`]).
    ///
    /// # Errors
    /// [`Error::AnnIndex`] when the file cannot be written.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let io = |e: std::io::Error| Error::AnnIndex { path: path.to_path_buf(), reason: format!("cannot write: {e}") };
        crate::atomic_file::write_atomic(path, &self.to_bytes()).map_err(io)
    }

    /// Opens an index written by [`Hnsw::save`], checking it whole (see the module docs). The file
    /// is memory-mapped: the vectors and the layer-0 lists, nearly all of it, are searched in place
    /// from the page cache (shared by every process that opens the same file), not copied; the
    /// first insert copies them into the index's own memory. The file must not be changed while
    /// the index is open ([`Hnsw::save`] never does: it writes a new file and renames it over).
    ///
    /// # Errors
    /// [`Error::AnnIndex`] naming the file and what is wrong with it.
    pub fn load(path: impl AsRef<Path>) -> Result<Hnsw> {
        let path = path.as_ref();
        let io = |what: &str, e: std::io::Error| Error::AnnIndex {
            path: path.to_path_buf(),
            reason: format!("{what}: {e}"),
        };
        let file = std::fs::File::open(path).map_err(|e| io("cannot read", e))?;
        // SAFETY: the mapping is read-only and private; its contents are validated below before
        // anything relies on them, and the documented contract is that the file is not modified
        // while mapped (the crate's own writers replace files by rename).
        let map = unsafe { memmap2::MmapOptions::new().map_copy_read_only(&file) }.map_err(|e| io("cannot map", e))?;
        let map = Arc::new(map);
        parse(&map, path, Some(&map))
    }

    /// [`Hnsw::load`] on bytes already in memory (`path` names them in errors); the index copies
    /// what it needs.
    ///
    /// # Errors
    /// As [`Hnsw::load`].
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Hnsw> {
        parse(bytes, path, None)
    }
}

/// Reads and validates the index in `bytes`; with `map` (the mapping `bytes` is), the vectors and the
/// layer-0 lists become windows of it instead of copies.
fn parse(bytes: &[u8], path: &Path, map: Option<&Arc<memmap2::Mmap>>) -> Result<Hnsw> {
    let mut r = Reader { bytes, at: 0, path };
    if r.take(8, "the magic")? != MAGIC {
        return Err(r.bad("not an HNSW index of this crate (bad magic)".into()));
    }
    let version = r.u32("the version")?;
    if version != VERSION {
        return Err(r.bad(format!("format version {version}, this build reads {VERSION}")));
    }
    let metric = match r.u32("the metric")? {
        0 => Metric::L2,
        1 => Metric::Dot,
        2 => Metric::Cosine,
        other => return Err(r.bad(format!("unknown metric code {other}"))),
    };
    let file_len = bytes.len() as u64;
    let dim = r.count("dim", file_len)?;
    let m = r.count("M", MAX_M as u64)?;
    let ef_construction = r.count("ef_construction", u64::from(u32::MAX))?;
    let seed = r.u64("the seed")?;
    let len = r.count("the vector count", u64::from(u32::MAX))?;
    let entry = r.count("the entry point", u64::from(u32::MAX))?;
    let max_level = r.count("the top layer", MAX_LEVEL as u64)?;
    let rng = r.u64("the generator state")?;
    let upper_len = r.count("the upper-layer slot count", file_len / 4)?;
    let config = HnswConfig { m, ef_construction, metric, seed };
    let mut index = Hnsw::new(dim, config).map_err(|e| r.bad(format!("header: {e}")))?;
    let m0 = 2 * m;

    let n_floats = len.checked_mul(dim).ok_or_else(|| r.bad("vector section size overflows".into()))?;
    let vectors: Buffer<f32> = r.words(map, n_floats, "the vectors", f32::from_bits)?;
    if let Some(i) = vectors.iter().position(|v| !v.is_finite()) {
        return Err(r.bad(format!("vector {} holds a non-finite value", i / dim.max(1))));
    }
    let links0: Buffer<AtomicU32> = r.words(map, len.saturating_mul(1 + m0), "the layer-0 lists", AtomicU32::new)?;
    let levels = r.take(len, "the levels")?.to_vec();
    let upper_links: Vec<AtomicU32> =
        r.u32s(upper_len, "the upper-layer lists")?.into_iter().map(AtomicU32::new).collect();
    if r.at != bytes.len() {
        return Err(r.bad(format!("{} bytes after the last section", bytes.len() - r.at)));
    }

    // The structure a search walks.
    let check_list = |list: &[AtomicU32], cap: usize, node: usize, layer: usize| -> Result<()> {
        let count = list[0].load(Relaxed) as usize;
        if count > cap {
            return Err(r.bad(format!("node {node}, layer {layer}: {count} links, at most {cap}")));
        }
        if let Some(bad) = list[1..=count].iter().map(|id| id.load(Relaxed)).find(|&id| id as usize >= len) {
            return Err(r.bad(format!("node {node}, layer {layer}: link to node {bad}, the index has {len}")));
        }
        Ok(())
    };
    for (node, list) in links0.chunks_exact(1 + m0).enumerate() {
        check_list(list, m0, node, 0)?;
    }
    let mut upper_start = Vec::with_capacity(len);
    let mut offset = 0usize;
    for (node, &level) in levels.iter().enumerate() {
        let level = level as usize;
        if level > max_level {
            return Err(r.bad(format!("node {node} has level {level}, above the top layer {max_level}")));
        }
        upper_start.push(offset);
        for layer in 1..=level {
            let list = upper_links
                .get(offset..offset + 1 + m)
                .ok_or_else(|| r.bad(format!("node {node}, layer {layer}: the upper-layer lists end early")))?;
            check_list(list, m, node, layer)?;
            offset += 1 + m;
        }
    }
    if offset != upper_len {
        return Err(r.bad(format!("the levels need {offset} upper-layer slots, the file holds {upper_len}")));
    }
    if len > 0 && (entry >= len || levels[entry] as usize != max_level) {
        return Err(r.bad(format!("entry point {entry} is not a node of the top layer {max_level}")));
    }
    if len == 0 && (entry != 0 || max_level != 0) {
        return Err(r.bad("an empty index with an entry point".into()));
    }

    index.len = len;
    index.vectors = vectors;
    index.links0 = links0;
    index.levels = levels;
    index.upper_start = upper_start;
    index.upper_links = upper_links;
    index.entry = entry as u32;
    index.max_level = max_level;
    index.rng = rng;
    index.pool = Mutex::new(Vec::new());
    Ok(index)
}
