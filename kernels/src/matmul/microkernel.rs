//! GEMM micro-kernels: an `MR × NR` tile of `C` held in vector registers while `k` streams by
//! (Goto & van de Geijn 2008, section 5; BLIS's `gemm` micro-kernel contract, Van Zee & van de Geijn 2015).
//!
//! Contract shared by every kernel: `a` is a packed micro-panel of `A`, `kc` steps of `MR`
//! consecutive floats (column `p` of the tile's rows); `b` a packed micro-panel of `B`, `kc` steps
//! of `NR` consecutive floats (row `p` of the tile's columns). The kernel sums the `kc` rank-1
//! updates into zeroed registers, then **stores** the tile to `c` (row stride `ldc`) or, with
//! `accumulate`, **adds** it to what `c` holds. Each kernel comes in `MR` variants: variant `R`
//! reads the same `MR`-strided panel of `A` but computes and writes only its first `R` rows, so a
//! bottom edge of `R < MR` rows costs `R` rows of work instead of `MR` (a 27-row product is two
//! tiles of 14 and 13, not 28 rows). Every variant writes all `NR` columns; the caller points `c`
//! at a scratch tile for the right edge of the matrix. A row's sums are the same FMAs in the same
//! order in every variant, so its bits do not depend on the tile it lands in.
//!
//! Tile sizes follow the register file. Each step of `p` needs `NR / lanes` vector loads of `B`,
//! `MR` broadcasts of `A` and `MR · NR / lanes` FMAs, so the accumulators must cover the FMA
//! latency × throughput (4 cycles × 2 ports = 8 independent chains) and leave registers for the
//! operands:
//! * AVX-512: 14 × 32 = 28 `zmm` accumulators + 2 for `B` + 1 broadcast = 31 of 32 registers.
//! * AVX2+FMA: 6 × 16 = 12 `ymm` accumulators + 2 + 1 = 15 of 16 (the classic BLIS Haswell tile).
//! * Portable (`wide::f32x8`): 4 × 16 = 8 vector accumulators, which also fits the 16 `xmm`
//!   registers of plain SSE2 as pairs without much spilling, and NEON's 32 comfortably.

use super::Backend;

/// The signature of a micro-kernel (see the module doc for the contract).
///
/// # Safety
/// `a` must hold `kc · MR` floats, `b` `kc · NR`, and `c` must be valid for reading and writing
/// `MR` rows of `NR` floats at row stride `ldc`; the CPU must support the kernel's features.
pub(super) type KernelFn =
    unsafe fn(kc: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize, accumulate: bool);

/// A micro-kernel and its tile.
#[derive(Clone, Copy)]
pub(super) struct Kernel {
    /// Rows of the tile.
    pub mr: usize,
    /// Columns of the tile.
    pub nr: usize,
    /// The kernel's variants by rows: `rows[r - 1]` computes the first `r` rows (`rows[mr - 1]`
    /// the full tile).
    pub rows: &'static [KernelFn],
}

impl Kernel {
    /// The variant computing the first `r` rows (`1 ≤ r ≤ mr`).
    pub fn run(&self, r: usize) -> KernelFn {
        self.rows[r - 1]
    }
}

/// `[f::<1>, f::<2>, …, f::<n>]` for a kernel generic over its row count.
macro_rules! by_rows {
    ($f:ident; $($r:literal)+) => { [$($f::<$r> as super::KernelFn),+] };
}

/// The largest `MR · NR` of any kernel (the size of the scratch tile for edges).
pub(super) const MAX_TILE: usize = 14 * 32;

/// The micro-kernel of `backend` (whose availability the caller has checked).
pub(super) fn kernel(backend: Backend) -> Kernel {
    match backend {
        #[cfg(target_arch = "x86_64")]
        Backend::Avx512 => Kernel { mr: avx512::MR, nr: avx512::NR, rows: &avx512::ROWS },
        #[cfg(target_arch = "x86_64")]
        Backend::Avx2Fma => Kernel { mr: avx2::MR, nr: avx2::NR, rows: &avx2::ROWS },
        _ => Kernel { mr: PORTABLE_MR, nr: PORTABLE_NR, rows: &portable::ROWS },
    }
}

const PORTABLE_MR: usize = 4;
const PORTABLE_NR: usize = 16;

mod portable {
    //! Portable 4 × 16 kernel on `wide` 8-lane vectors.
    use wide::f32x8;

    use super::{PORTABLE_MR as MR, PORTABLE_NR as NR};

    pub(super) const ROWS: [super::KernelFn; MR] = by_rows!(kernel; 1 2 3 4);

    /// The first `R` rows of the tile.
    ///
    /// # Safety
    /// As [`super::KernelFn`].
    unsafe fn kernel<const R: usize>(
        kc: usize,
        a: *const f32,
        b: *const f32,
        c: *mut f32,
        ldc: usize,
        accumulate: bool,
    ) {
        // SAFETY: the caller guarantees the packed panels hold `kc` steps and `c` `R` rows.
        let (a, b) = unsafe { (std::slice::from_raw_parts(a, kc * MR), std::slice::from_raw_parts(b, kc * NR)) };
        let mut acc = [[f32x8::ZERO; 2]; R];
        for (ap, bp) in a.chunks_exact(MR).zip(b.chunks_exact(NR)) {
            let b0 = f32x8::from(<[f32; 8]>::try_from(&bp[..8]).expect("8 lanes"));
            let b1 = f32x8::from(<[f32; 8]>::try_from(&bp[8..]).expect("8 lanes"));
            for (row, &ai) in acc.iter_mut().zip(ap) {
                let av = f32x8::splat(ai);
                row[0] = av.mul_add(b0, row[0]);
                row[1] = av.mul_add(b1, row[1]);
            }
        }
        for (i, row) in acc.iter().enumerate() {
            // SAFETY: row `i < R` of the tile holds NR floats at `c + i·ldc`.
            let ci = unsafe { std::slice::from_raw_parts_mut(c.add(i * ldc), NR) };
            for (half, v) in ci.chunks_exact_mut(8).zip(row) {
                let v = v.to_array();
                if accumulate {
                    half.iter_mut().zip(v).for_each(|(x, y)| *x += y);
                } else {
                    half.copy_from_slice(&v);
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    //! AVX-512F 14 × 32 kernel: two `zmm` columns of `B`, fourteen broadcast rows of `A`.
    use std::arch::x86_64::*;

    // ANCHOR: microkernel_avx512
    pub(in super::super) const MR: usize = 14;
    pub(in super::super) const NR: usize = 32;
    /// How far ahead in the packed `B` panels (floats) each step asks for a cache line: 2 KiB, 16
    /// steps. Weights packed once and larger than L2 (an encoder's 42 MB) arrive from L3 at the
    /// kernel's pace otherwise. Measured in alternating runs (2 threads, Sapphire Rapids): MiniLM
    /// sentences/s at batch 1 292–296 → 309–318, batch 8 339–345 → 362–389, batch 32 378–388 →
    /// 393–401; GEMM 1024³ level within noise; 4 KiB ahead was no better at batch 1 and worse at
    /// batch 32 (376–379).
    const B_PREFETCH: usize = 512;

    pub(in super::super) const ROWS: [super::KernelFn; MR] = by_rows!(kernel; 1 2 3 4 5 6 7 8 9 10 11 12 13 14);

    /// The first `R` rows of the tile.
    ///
    /// # Safety
    /// As [`super::KernelFn`]; the CPU must support AVX-512F.
    #[target_feature(enable = "avx512f")]
    unsafe fn kernel<const R: usize>(
        kc: usize,
        a: *const f32,
        b: *const f32,
        c: *mut f32,
        ldc: usize,
        accumulate: bool,
    ) {
        let mut acc = [[_mm512_setzero_ps(); 2]; R];
        // SAFETY: `p < kc`, so every read stays inside the packed panels (`kc·MR`, `kc·NR` floats),
        // and the stores cover exactly the `MR × NR` tile the caller vouches for.
        unsafe {
            let (mut a, mut b) = (a, b);
            for _ in 0..kc {
                // A hint: any address is allowed, past the panel's end too (it never faults).
                _mm_prefetch::<_MM_HINT_T0>(b.wrapping_add(B_PREFETCH).cast());
                let b0 = _mm512_loadu_ps(b);
                let b1 = _mm512_loadu_ps(b.add(16));
                for (i, row) in acc.iter_mut().enumerate() {
                    let ai = _mm512_set1_ps(*a.add(i));
                    row[0] = _mm512_fmadd_ps(ai, b0, row[0]);
                    row[1] = _mm512_fmadd_ps(ai, b1, row[1]);
                }
                a = a.add(MR);
                b = b.add(NR);
            }
            for (i, row) in acc.iter().enumerate() {
                let ci = c.add(i * ldc);
                let (mut v0, mut v1) = (row[0], row[1]);
                if accumulate {
                    v0 = _mm512_add_ps(v0, _mm512_loadu_ps(ci));
                    v1 = _mm512_add_ps(v1, _mm512_loadu_ps(ci.add(16)));
                }
                _mm512_storeu_ps(ci, v0);
                _mm512_storeu_ps(ci.add(16), v1);
            }
        }
    }
    // ANCHOR_END: microkernel_avx512
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    //! AVX2+FMA 6 × 16 kernel: two `ymm` columns of `B`, six broadcast rows of `A`.
    use std::arch::x86_64::*;

    pub(in super::super) const MR: usize = 6;
    pub(in super::super) const NR: usize = 16;

    pub(in super::super) const ROWS: [super::KernelFn; MR] = by_rows!(kernel; 1 2 3 4 5 6);

    /// The first `R` rows of the tile.
    ///
    /// # Safety
    /// As [`super::KernelFn`]; the CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn kernel<const R: usize>(
        kc: usize,
        a: *const f32,
        b: *const f32,
        c: *mut f32,
        ldc: usize,
        accumulate: bool,
    ) {
        let mut acc = [[_mm256_setzero_ps(); 2]; R];
        // SAFETY: as in the AVX-512 kernel: reads stay inside the packed panels, stores inside the tile.
        unsafe {
            let (mut a, mut b) = (a, b);
            for _ in 0..kc {
                let b0 = _mm256_loadu_ps(b);
                let b1 = _mm256_loadu_ps(b.add(8));
                for (i, row) in acc.iter_mut().enumerate() {
                    let ai = _mm256_broadcast_ss(&*a.add(i));
                    row[0] = _mm256_fmadd_ps(ai, b0, row[0]);
                    row[1] = _mm256_fmadd_ps(ai, b1, row[1]);
                }
                a = a.add(MR);
                b = b.add(NR);
            }
            for (i, row) in acc.iter().enumerate() {
                let ci = c.add(i * ldc);
                let (mut v0, mut v1) = (row[0], row[1]);
                if accumulate {
                    v0 = _mm256_add_ps(v0, _mm256_loadu_ps(ci));
                    v1 = _mm256_add_ps(v1, _mm256_loadu_ps(ci.add(8)));
                }
                _mm256_storeu_ps(ci, v0);
                _mm256_storeu_ps(ci.add(8), v1);
            }
        }
    }
}
