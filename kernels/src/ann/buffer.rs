//! A slice of 4-byte words that is either owned or a window of a memory-mapped file: how
//! [`Hnsw::load`](super::Hnsw::load) serves the vectors and the layer-0 lists straight from the
//! page cache instead of copying them.
//!
//! A mapped buffer is read-only (the mapping is `PROT_READ`); anything that writes first calls
//! [`Buffer::to_mut`], which copies the window into an owned `Vec` once.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

/// A word a mapped file can be viewed as.
///
/// # Safety
/// Implementors are 4 bytes with alignment 4 and every bit pattern is a valid value, so any
/// aligned window of a file is a valid slice of them.
pub(crate) unsafe trait Word: Sized {
    /// A fresh value equal to `self`.
    fn copy_of(&self) -> Self;
}

// SAFETY: 4 bytes, align 4, every bit pattern is some f32.
unsafe impl Word for f32 {
    fn copy_of(&self) -> f32 {
        *self
    }
}

// SAFETY: AtomicU32 has the size, alignment and bit validity of u32.
unsafe impl Word for AtomicU32 {
    fn copy_of(&self) -> AtomicU32 {
        AtomicU32::new(self.load(Relaxed))
    }
}

/// Owned words, or `len` words at byte `offset` of a mapping.
pub(crate) enum Buffer<T: Word> {
    Owned(Vec<T>),
    Mapped { map: Arc<memmap2::Mmap>, offset: usize, len: usize },
}

impl<T: Word> Default for Buffer<T> {
    fn default() -> Self {
        Buffer::Owned(Vec::new())
    }
}

impl<T: Word> Buffer<T> {
    /// A view of `len` words at byte `offset` of `map`, or `None` when the window is misaligned,
    /// out of the mapping, or the machine is big-endian (the file is little-endian).
    pub fn mapped(map: &Arc<memmap2::Mmap>, offset: usize, len: usize) -> Option<Buffer<T>> {
        let end = len.checked_mul(4)?.checked_add(offset)?;
        let aligned = (map.as_ptr() as usize + offset).is_multiple_of(std::mem::align_of::<T>());
        (cfg!(target_endian = "little") && aligned && end <= map.len()).then(|| Buffer::Mapped {
            map: Arc::clone(map),
            offset,
            len,
        })
    }

    /// The owned words, copying a mapped window first.
    pub fn to_mut(&mut self) -> &mut Vec<T> {
        if let Buffer::Mapped { .. } = self {
            let owned: Vec<T> = self.iter().map(Word::copy_of).collect();
            *self = Buffer::Owned(owned);
        }
        match self {
            Buffer::Owned(v) => v,
            Buffer::Mapped { .. } => unreachable!("converted above"),
        }
    }

    /// Heap bytes held (a mapped window holds none: its pages belong to the page cache).
    pub fn heap_bytes(&self) -> usize {
        match self {
            Buffer::Owned(v) => v.capacity() * 4,
            Buffer::Mapped { .. } => 0,
        }
    }

    /// Whether the words are a window of a mapped file.
    pub fn is_mapped(&self) -> bool {
        matches!(self, Buffer::Mapped { .. })
    }
}

impl<T: Word> std::ops::Deref for Buffer<T> {
    type Target = [T];

    #[inline(always)]
    fn deref(&self) -> &[T] {
        match self {
            Buffer::Owned(v) => v,
            // SAFETY: `mapped` checked that the window lies inside the mapping and is aligned for
            // `T`; `T: Word` makes every bit pattern valid; the mapping lives as long as `self`
            // (the Arc) and is read-only, so nothing writes the words while they are borrowed.
            Buffer::Mapped { map, offset, len } => unsafe {
                std::slice::from_raw_parts(map.as_ptr().add(*offset).cast::<T>(), *len)
            },
        }
    }
}
