//! f32 matrix kernels: cache-blocked GEMM (`C = A·B`, `C = A·Bᵀ`), GEMV and batched matmul.
//!
//! The GEMM follows the Goto/BLIS design (K. Goto and R. A. van de Geijn, "Anatomy of
//! High-Performance Matrix Multiplication", ACM TOMS 34(3), 2008; F. G. Van Zee and R. A. van de
//! Geijn, "BLIS: A Framework for Rapidly Instantiating BLAS Functionality", ACM TOMS 41(3),
//! 2015): the operands are cut into blocks that fit the caches, each block is **packed** into the
//! order a small register-blocked **micro-kernel** reads it in, and the micro-kernel keeps an
//! `MR × NR` tile of `C` in vector registers while it streams `k`. `matmul/blocked.rs` holds the
//! loop nest and the packing, `matmul/microkernel.rs` the tiles, `matmul/gemv.rs` the GEMV.
//!
//! | path ([`Backend`]) | micro-kernel tile | chosen when |
//! |---|---|---|
//! | [`Backend::Avx512`] | 14 × 32 (28 `zmm` accumulators) | x86-64 with AVX-512F |
//! | [`Backend::Avx2Fma`] | 6 × 16 (12 `ymm` accumulators) | x86-64 with AVX2 and FMA |
//! | [`Backend::Portable`] | 4 × 16 on `wide` 8-lane vectors | everywhere else |
//!
//! Large problems are split across rayon's pool (see [`PARALLEL_MIN_MNK`]); small ones stay on
//! the calling thread, where the fork/join would cost more than it saves.
//!
//! Conventions:
//! * every matrix is **row-major and contiguous**; `C` is overwritten (its old contents, even
//!   NaN, never leak into the result);
//! * a slice whose length does not match the shape is a typed error,
//!   [`crate::Error::DimensionMismatch`] (`expected` is the length the shape implies);
//! * `k = 0` gives `C = 0`, and `m = 0` or `n = 0` does nothing;
//! * NaN and ±inf propagate as in the naive triple loop (the scalar twins `*_scalar`): packing pads
//!   edge tiles with zeros only in rows and columns of `C` that are never written, and `k` is never
//!   padded. Results differ from the twins only by rounding, since the summation order differs.

use rayon::prelude::*;

mod blocked;
mod gemv;
mod microkernel;

pub use gemv::{gemv, gemv_scalar, gemv_with};

use crate::{Error, Result};

/// The shape of one GEMM: `C` (`m × n`) = `A` (`m × k`) · `B` (`k × n`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GemmShape {
    /// Rows of `A` and `C`.
    pub m: usize,
    /// Columns of `B` and `C` (rows of `B` in the `_nt` functions, where `B` is stored `n × k`).
    pub n: usize,
    /// The shared (reduction) dimension: columns of `A`, rows of `B`.
    pub k: usize,
}

impl GemmShape {
    /// `GemmShape { m, n, k }`.
    pub const fn new(m: usize, n: usize, k: usize) -> Self {
        Self { m, n, k }
    }

    /// Floating-point operations of the product, `2·m·n·k` (one multiply and one add per term).
    pub const fn flops(&self) -> u64 {
        2 * self.m as u64 * self.n as u64 * self.k as u64
    }
}

/// The shape of a batched GEMM: `batch` independent problems of the same [`GemmShape`], each
/// operand stored as `batch` matrices back to back (`A` is `batch × m × k`, and so on), as the
/// per-head score and value products of attention are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BatchShape {
    /// How many independent products.
    pub batch: usize,
    /// The shape of each product.
    pub gemm: GemmShape,
}

impl BatchShape {
    /// `BatchShape { batch, gemm: GemmShape { m, n, k } }`.
    pub const fn new(batch: usize, m: usize, n: usize, k: usize) -> Self {
        Self { batch, gemm: GemmShape::new(m, n, k) }
    }
}

/// Which micro-kernel family a GEMM or GEMV runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// AVX-512F: a 14 × 32 GEMM tile, 16-lane GEMV rows.
    Avx512,
    /// AVX2 + FMA: a 6 × 16 GEMM tile, 8-lane GEMV rows.
    Avx2Fma,
    /// `wide`'s portable 8-lane vectors (NEON on aarch64, SSE2 or better on x86-64).
    Portable,
}

impl Backend {
    /// The fastest backend this CPU supports (what [`gemm`] and [`gemv()`] use).
    pub fn best() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return Backend::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                return Backend::Avx2Fma;
            }
        }
        Backend::Portable
    }

    /// Whether this CPU can run the backend.
    pub fn is_available(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Backend::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
            #[cfg(target_arch = "x86_64")]
            Backend::Avx2Fma => {
                std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
            }
            #[cfg(not(target_arch = "x86_64"))]
            Backend::Avx512 | Backend::Avx2Fma => false,
            Backend::Portable => true,
        }
    }

    /// Every backend this CPU can run, fastest first.
    pub fn available() -> Vec<Self> {
        [Backend::Avx512, Backend::Avx2Fma, Backend::Portable].into_iter().filter(|b| b.is_available()).collect()
    }

    /// A short name for reports (`"avx512"`, `"avx2+fma"`, `"portable"`).
    pub fn name(self) -> &'static str {
        match self {
            Backend::Avx512 => "avx512",
            Backend::Avx2Fma => "avx2+fma",
            Backend::Portable => "portable",
        }
    }

    /// [`crate::Error::InvalidParameter`] unless this CPU can run the backend.
    fn require(self) -> Result<()> {
        if self.is_available() {
            Ok(())
        } else {
            Err(Error::InvalidParameter(format!("matmul backend {} is not supported by this CPU", self.name())))
        }
    }
}

/// The name of the micro-kernel [`gemm`] and [`gemv()`] use on this CPU.
pub fn active_path() -> &'static str {
    Backend::best().name()
}

/// Problems with `m·n·k` at or above this many multiply-adds are split across rayon's pool;
/// smaller ones run on the calling thread (a fork/join costs some microseconds, about what a
/// `128³` product takes on one core).
pub const PARALLEL_MIN_MNK: usize = 1 << 21;

/// `rows × cols`, or [`Error::InvalidParameter`] when it overflows `usize`.
pub(crate) fn area(rows: usize, cols: usize, what: &str) -> Result<usize> {
    rows.checked_mul(cols).ok_or_else(|| Error::InvalidParameter(format!("{what}: {rows} × {cols} overflows usize")))
}

/// [`Error::DimensionMismatch`] unless `len == expected`.
pub(crate) fn expect_len(len: usize, expected: usize) -> Result<()> {
    if len == expected { Ok(()) } else { Err(Error::DimensionMismatch { expected, got: len }) }
}

/// Checks `a` (`m × k`), `b` (`k × n`, or `n × k`: the same length) and `c` (`m × n`) against `shape`.
pub(crate) fn check_gemm<T>(a: &[T], b: &[T], c: &[T], shape: GemmShape) -> Result<()> {
    let GemmShape { m, n, k } = shape;
    expect_len(a.len(), area(m, k, "A")?)?;
    expect_len(b.len(), area(k, n, "B")?)?;
    expect_len(c.len(), area(m, n, "C")?)
}

// ANCHOR: gemm
/// `C = A·B` with `A` `m × k`, `B` `k × n` and `C` `m × n`, all row-major; `C` is overwritten.
///
/// Cache-blocked and packed, on the fastest micro-kernel of this CPU ([`Backend::best`]),
/// rayon-parallel from [`PARALLEL_MIN_MNK`] multiply-adds.
///
/// # Errors
/// [`Error::DimensionMismatch`] when a slice's length is not what `shape` implies.
pub fn gemm(a: &[f32], b: &[f32], c: &mut [f32], shape: GemmShape) -> Result<()> {
    gemm_with(Backend::best(), a, b, c, shape)
}
// ANCHOR_END: gemm

/// `C = A·Bᵀ` with `A` `m × k`, `B` stored `n × k` (rows of `B` are columns of the product, as
/// for attention's `Q·Kᵀ` and for weight matrices stored `out × in`), `C` `m × n`; `C` is overwritten.
///
/// # Errors
/// [`Error::DimensionMismatch`] when a slice's length is not what `shape` implies.
pub fn gemm_nt(a: &[f32], b: &[f32], c: &mut [f32], shape: GemmShape) -> Result<()> {
    gemm_nt_with(Backend::best(), a, b, c, shape)
}

/// [`gemm`] on a chosen backend (tests and benchmarks compare them).
///
/// # Errors
/// [`Error::InvalidParameter`] when this CPU cannot run `backend`; otherwise as [`gemm`].
pub fn gemm_with(backend: Backend, a: &[f32], b: &[f32], c: &mut [f32], shape: GemmShape) -> Result<()> {
    backend.require()?;
    check_gemm(a, b, c, shape)?;
    let b_view = blocked::MatRef { data: b, row_stride: shape.n, col_stride: 1 };
    blocked::gemm(backend, a, blocked::BSource::View(b_view), c, shape, true);
    Ok(())
}

/// [`gemm_nt`] on a chosen backend.
///
/// # Errors
/// [`Error::InvalidParameter`] when this CPU cannot run `backend`; otherwise as [`gemm_nt`].
pub fn gemm_nt_with(backend: Backend, a: &[f32], b: &[f32], c: &mut [f32], shape: GemmShape) -> Result<()> {
    backend.require()?;
    check_gemm(a, b, c, shape)?;
    let b_view = blocked::MatRef { data: b, row_stride: 1, col_stride: shape.k };
    blocked::gemm(backend, a, blocked::BSource::View(b_view), c, shape, true);
    Ok(())
}

/// A right-hand matrix packed once for many products: the weights of a layer, multiplied by a new
/// batch of activations at every call. [`gemm`] and [`gemm_nt`] pack `B` into the micro-kernel's
/// panel order on every call, which for a small `m` (one sentence of a dozen tokens) costs about as
/// much as the product itself; [`gemm_packed`] reads the panels this made at load.
///
/// The panels are those the blocked loop would make, for [`Backend::best`] at packing time, so for
/// `m ≥ 4` a packed product gives the same bits as [`gemm_nt`] (or [`gemm`]) on the same operands.
/// For smaller `m` the unpacked functions run GEMVs instead, which sum in another order; the packed
/// product runs a GEMV over the panels in the micro-kernel's order, so each row of `A` gives the same
/// bits whatever `m` is (and reads the panels once instead of computing a full micro-tile of rows).
#[derive(Clone, Debug, PartialEq)]
pub struct PackedMatrix {
    blocks: blocked::PackedBlocks,
}

impl PackedMatrix {
    /// Packs `B` stored `n × k` (a weight matrix `[out, in]`, as [`gemm_nt`] takes it), for
    /// `C = A·Bᵀ`.
    ///
    /// # Errors
    /// [`Error::DimensionMismatch`] when `b.len() != n·k`.
    pub fn pack_nt(b: &[f32], n: usize, k: usize) -> Result<PackedMatrix> {
        expect_len(b.len(), area(n, k, "B")?)?;
        let view = blocked::MatRef { data: b, row_stride: 1, col_stride: k };
        Ok(PackedMatrix { blocks: blocked::pack_all(Backend::best(), view, k, n) })
    }

    /// Packs `B` stored `k × n` (as [`gemm`] takes it), for `C = A·B`.
    ///
    /// # Errors
    /// [`Error::DimensionMismatch`] when `b.len() != k·n`.
    pub fn pack(b: &[f32], k: usize, n: usize) -> Result<PackedMatrix> {
        expect_len(b.len(), area(k, n, "B")?)?;
        let view = blocked::MatRef { data: b, row_stride: n, col_stride: 1 };
        Ok(PackedMatrix { blocks: blocked::pack_all(Backend::best(), view, k, n) })
    }

    /// Columns of the product (`out` of a weight matrix).
    pub fn n(&self) -> usize {
        self.blocks.n
    }

    /// The reduction dimension (`in` of a weight matrix).
    pub fn k(&self) -> usize {
        self.blocks.k
    }

    /// Bytes the panels hold (edge panels are padded to the micro-kernel's width).
    pub fn bytes(&self) -> usize {
        self.blocks.bytes()
    }
}

/// `C = A·B` for `A` `m × k` row-major and `B` packed by [`PackedMatrix::pack_nt`] or
/// [`PackedMatrix::pack`]; `C` (`m × n`) is overwritten. Parallel as [`gemm`].
///
/// # Errors
/// [`Error::DimensionMismatch`] when `a` is not `m × k` or `c` not `m × n`.
pub fn gemm_packed(a: &[f32], b: &PackedMatrix, c: &mut [f32], m: usize) -> Result<()> {
    let shape = GemmShape::new(m, b.n(), b.k());
    expect_len(a.len(), area(m, shape.k, "A")?)?;
    expect_len(c.len(), area(m, shape.n, "C")?)?;
    blocked::gemm(b.blocks.backend, a, blocked::BSource::Packed(&b.blocks), c, shape, true);
    Ok(())
}

/// [`gemm_packed`] on the calling thread only, for callers that already split their work across
/// threads (the tiles of [`crate::ann::FlatIndex`]). Lengths are the caller's to get right
/// (debug-asserted).
#[cfg(feature = "ann")]
pub(crate) fn gemm_packed_serial(a: &[f32], b: &PackedMatrix, c: &mut [f32], m: usize) {
    let shape = GemmShape::new(m, b.n(), b.k());
    debug_assert!(a.len() == m * shape.k && c.len() == m * shape.n);
    blocked::gemm(b.blocks.backend, a, blocked::BSource::Packed(&b.blocks), c, shape, false);
}

// ANCHOR: gemm_scalar
/// Scalar twin of [`gemm`]: the naive triple loop, each `c_ij` summed left to right over `k`.
///
/// # Errors
/// As [`gemm`].
pub fn gemm_scalar(a: &[f32], b: &[f32], c: &mut [f32], shape: GemmShape) -> Result<()> {
    check_gemm(a, b, c, shape)?;
    let GemmShape { m, n, k } = shape;
    for i in 0..m {
        for j in 0..n {
            let mut s = 0.0f32;
            for p in 0..k {
                s += a[i * k + p] * b[p * n + j];
            }
            c[i * n + j] = s;
        }
    }
    Ok(())
}
// ANCHOR_END: gemm_scalar

/// Scalar twin of [`gemm_nt`]: `c_ij = Σ_p a_ip · b_jp`, summed left to right.
///
/// # Errors
/// As [`gemm_nt`].
pub fn gemm_nt_scalar(a: &[f32], b: &[f32], c: &mut [f32], shape: GemmShape) -> Result<()> {
    check_gemm(a, b, c, shape)?;
    let GemmShape { m, n, k } = shape;
    for i in 0..m {
        for j in 0..n {
            let mut s = 0.0f32;
            for p in 0..k {
                s += a[i * k + p] * b[j * k + p];
            }
            c[i * n + j] = s;
        }
    }
    Ok(())
}

/// Checks the three contiguous stacks of a batched product against `shape`.
fn check_batch(a: &[f32], b: &[f32], c: &[f32], shape: BatchShape) -> Result<()> {
    let GemmShape { m, n, k } = shape.gemm;
    expect_len(a.len(), area(shape.batch, area(m, k, "A")?, "A")?)?;
    expect_len(b.len(), area(shape.batch, area(k, n, "B")?, "B")?)?;
    expect_len(c.len(), area(shape.batch, area(m, n, "C")?, "C")?)
}

/// Which product each item of a batch computes.
#[derive(Clone, Copy)]
enum Layout {
    /// `A·B`, `B` stored `k × n`.
    Nn,
    /// `A·Bᵀ`, `B` stored `n × k`.
    Nt,
}

impl Layout {
    /// `b` (one problem's `B`) as the blocked loop reads it.
    fn view(self, b: &[f32], g: GemmShape) -> blocked::MatRef<'_> {
        match self {
            Layout::Nn => blocked::MatRef { data: b, row_stride: g.n, col_stride: 1 },
            Layout::Nt => blocked::MatRef { data: b, row_stride: 1, col_stride: g.k },
        }
    }
}

fn batched(backend: Backend, a: &[f32], b: &[f32], c: &mut [f32], shape: BatchShape, layout: Layout) -> Result<()> {
    backend.require()?;
    check_batch(a, b, c, shape)?;
    let g = shape.gemm;
    let (sa, sb, sc) = (g.m * g.k, g.k * g.n, g.m * g.n);
    if shape.batch == 0 || sc == 0 {
        return Ok(());
    }
    if g.k == 0 {
        c.fill(0.0);
        return Ok(());
    }
    let b_view = |bi| layout.view(bi, g);
    let each = g.m.saturating_mul(g.n).saturating_mul(g.k);
    let threads = rayon::current_num_threads();
    // Many small problems: one problem per task, each on one thread. Few large ones: one after
    // the other, each split across the pool (so an odd batch does not leave a core idle).
    if threads > 1
        && each.saturating_mul(shape.batch) >= PARALLEL_MIN_MNK
        && (each < PARALLEL_MIN_MNK || shape.batch >= 4 * threads)
    {
        c.par_chunks_mut(sc).zip(a.par_chunks(sa)).zip(b.par_chunks(sb)).for_each(|((ci, ai), bi)| {
            blocked::gemm(backend, ai, blocked::BSource::View(b_view(bi)), ci, g, false);
        });
    } else {
        for ((ci, ai), bi) in c.chunks_mut(sc).zip(a.chunks(sa)).zip(b.chunks(sb)) {
            blocked::gemm(backend, ai, blocked::BSource::View(b_view(bi)), ci, g, true);
        }
    }
    Ok(())
}

/// `C_i = A_i·B_i` for `i < batch`, with `A` (`batch × m × k`), `B` (`batch × k × n`) and `C`
/// (`batch × m × n`) each stored contiguously, problem after problem; `C` is overwritten.
///
/// Small problems run one per rayon task; large ones one after another, each parallel inside.
///
/// # Errors
/// [`Error::DimensionMismatch`] when a slice's length is not what `shape` implies.
pub fn batched_gemm(a: &[f32], b: &[f32], c: &mut [f32], shape: BatchShape) -> Result<()> {
    batched(Backend::best(), a, b, c, shape, Layout::Nn)
}

/// `C_i = A_i·B_iᵀ` for `i < batch`, with `B` stored `batch × n × k` (attention's per-head
/// `Q·Kᵀ`); otherwise as [`batched_gemm`].
///
/// # Errors
/// [`Error::DimensionMismatch`] when a slice's length is not what `shape` implies.
pub fn batched_gemm_nt(a: &[f32], b: &[f32], c: &mut [f32], shape: BatchShape) -> Result<()> {
    batched(Backend::best(), a, b, c, shape, Layout::Nt)
}

/// [`batched_gemm`] on a chosen backend.
///
/// # Errors
/// [`Error::InvalidParameter`] when this CPU cannot run `backend`; otherwise as [`batched_gemm`].
pub fn batched_gemm_with(backend: Backend, a: &[f32], b: &[f32], c: &mut [f32], shape: BatchShape) -> Result<()> {
    batched(backend, a, b, c, shape, Layout::Nn)
}

/// [`batched_gemm_nt`] on a chosen backend.
///
/// # Errors
/// [`Error::InvalidParameter`] when this CPU cannot run `backend`; otherwise as [`batched_gemm_nt`].
pub fn batched_gemm_nt_with(backend: Backend, a: &[f32], b: &[f32], c: &mut [f32], shape: BatchShape) -> Result<()> {
    batched(backend, a, b, c, shape, Layout::Nt)
}

/// Scalar twin of [`batched_gemm`]: [`gemm_scalar`] on each problem in turn.
///
/// # Errors
/// As [`batched_gemm`].
pub fn batched_gemm_scalar(a: &[f32], b: &[f32], c: &mut [f32], shape: BatchShape) -> Result<()> {
    check_batch(a, b, c, shape)?;
    for_each_problem(a, b, c, shape, gemm_scalar)
}

/// Scalar twin of [`batched_gemm_nt`]: [`gemm_nt_scalar`] on each problem in turn.
///
/// # Errors
/// As [`batched_gemm_nt`].
pub fn batched_gemm_nt_scalar(a: &[f32], b: &[f32], c: &mut [f32], shape: BatchShape) -> Result<()> {
    check_batch(a, b, c, shape)?;
    for_each_problem(a, b, c, shape, gemm_nt_scalar)
}

type GemmFn = fn(&[f32], &[f32], &mut [f32], GemmShape) -> Result<()>;

fn for_each_problem(a: &[f32], b: &[f32], c: &mut [f32], shape: BatchShape, f: GemmFn) -> Result<()> {
    let g = shape.gemm;
    for i in 0..shape.batch {
        let (sa, sb, sc) = (g.m * g.k, g.k * g.n, g.m * g.n);
        f(&a[i * sa..(i + 1) * sa], &b[i * sb..(i + 1) * sb], &mut c[i * sc..(i + 1) * sc], g)?;
    }
    Ok(())
}
