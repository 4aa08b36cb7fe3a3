//! f32 GEMV `y = A·x` (BLAS `sgemv`, no transpose): four rows of `A` per pass so each load of
//! `x` feeds four FMAs, two vector accumulators per row to cover the FMA latency, and rayon
//! over blocks of rows once `A` is large (the product is bound by reading `A` from memory).
//!
//! This is the matrix-vector case of the blocked algorithms in Goto & van de Geijn 2008 (there
//! is no reuse of `A` to block for, only of `x`, which stays in L1); the row-block scheme is the
//! one BLIS and OpenBLAS use for `sgemv_n` on row-major data.

use rayon::prelude::*;

use super::{Backend, area, expect_len};
use crate::Result;

/// Rows at or above this many elements of `A` (1 MiB) are split across rayon's pool.
const PARALLEL_MIN_ELEMS: usize = 1 << 18;

/// `y = A·x` with `A` row-major `rows × cols`, `x` of length `cols`, `y` of length `rows`
/// (overwritten), on the fastest backend of this CPU.
///
/// # Errors
/// [`crate::Error::DimensionMismatch`] when a slice's length is not what `rows` and `cols` imply.
pub fn gemv(a: &[f32], x: &[f32], y: &mut [f32], rows: usize, cols: usize) -> Result<()> {
    gemv_with(Backend::best(), a, x, y, rows, cols)
}

/// [`gemv`] on a chosen backend.
///
/// # Errors
/// [`crate::Error::InvalidParameter`] when this CPU cannot run `backend`; otherwise as [`gemv`].
pub fn gemv_with(backend: Backend, a: &[f32], x: &[f32], y: &mut [f32], rows: usize, cols: usize) -> Result<()> {
    backend.require()?;
    check(a, x, y, rows, cols)?;
    gemv_unchecked(backend, a, x, y, rows, cols, true);
    Ok(())
}

/// Scalar twin of [`gemv`]: `y_i = Σ_j a_ij · x_j`, summed left to right.
///
/// # Errors
/// As [`gemv`].
pub fn gemv_scalar(a: &[f32], x: &[f32], y: &mut [f32], rows: usize, cols: usize) -> Result<()> {
    check(a, x, y, rows, cols)?;
    for (i, yi) in y.iter_mut().enumerate() {
        let mut s = 0.0f32;
        for (aij, xj) in a[i * cols..(i + 1) * cols].iter().zip(x) {
            s += aij * xj;
        }
        *yi = s;
    }
    Ok(())
}

fn check(a: &[f32], x: &[f32], y: &[f32], rows: usize, cols: usize) -> Result<()> {
    expect_len(a.len(), area(rows, cols, "A")?)?;
    expect_len(x.len(), cols)?;
    expect_len(y.len(), rows)
}

/// [`gemv`] without the checks (lengths must match), optionally parallel.
pub(super) fn gemv_unchecked(
    backend: Backend,
    a: &[f32],
    x: &[f32],
    y: &mut [f32],
    rows: usize,
    cols: usize,
    parallel: bool,
) {
    if rows == 0 {
        return;
    }
    if cols == 0 {
        y.fill(0.0);
        return;
    }
    let threads = rayon::current_num_threads();
    if parallel && threads > 1 && rows.saturating_mul(cols) >= PARALLEL_MIN_ELEMS {
        // About four tasks per thread, each a multiple of four rows.
        let chunk = rows.div_ceil(4 * threads).div_ceil(4).max(1) * 4;
        y.par_chunks_mut(chunk)
            .zip(a.par_chunks(chunk * cols))
            .for_each(|(yc, ac)| rows_block(backend, ac, x, yc, cols));
    } else {
        rows_block(backend, a, x, y, cols);
    }
}

/// `y = xᵀ·B` for `B` row-major `x.len() × y.len()` at row stride `ldb` (the rows of a small-`m`
/// `A·B`): columns in blocks, each block's accumulators in registers while `B` streams by once.
/// Parallel over column blocks once `B` is large.
pub(super) fn vecmat(backend: Backend, x: &[f32], b: &[f32], ldb: usize, y: &mut [f32], parallel: bool) {
    let (k, n) = (x.len(), y.len());
    let threads = rayon::current_num_threads();
    if parallel && threads > 1 && k.saturating_mul(n) >= PARALLEL_MIN_ELEMS {
        let chunk = n.div_ceil(4 * threads).div_ceil(128).max(1) * 128;
        y.par_chunks_mut(chunk).enumerate().for_each(|(q, yc)| vecmat_block(backend, x, &b[q * chunk..], ldb, yc));
    } else {
        vecmat_block(backend, x, b, ldb, y);
    }
}

/// [`vecmat`] on one block of columns, serially; `b` starts at the block's first column.
fn vecmat_block(backend: Backend, x: &[f32], b: &[f32], ldb: usize, y: &mut [f32]) {
    let n = y.len();
    match backend {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the backend was checked available; row `p < x.len()` of `b` holds `n` floats from `p·ldb`.
        Backend::Avx512 => unsafe { avx512::vecmat(x, b, ldb, y) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Backend::Avx2Fma => unsafe { avx2::vecmat(x, b, ldb, y) },
        _ => {
            y.fill(0.0);
            for (p, &s) in x.iter().enumerate() {
                crate::simd::axpy_wide(s, &b[p * ldb..p * ldb + n], y);
            }
        }
    }
}

/// `y = A·x` for a block of rows, serially, on `backend`.
fn rows_block(backend: Backend, a: &[f32], x: &[f32], y: &mut [f32], cols: usize) {
    match backend {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the backend was checked available, and `a` holds `y.len()` rows of `cols`.
        Backend::Avx512 => unsafe { avx512::rows(a, x, y, cols) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Backend::Avx2Fma => unsafe { avx2::rows(a, x, y, cols) },
        _ => portable_rows(a, x, y, cols),
    }
}

/// Portable rows on `wide` vectors, four rows per pass.
fn portable_rows(a: &[f32], x: &[f32], y: &mut [f32], cols: usize) {
    use wide::f32x8;
    let lanes = |s: &[f32]| f32x8::from(<[f32; 8]>::try_from(s).expect("8 lanes"));
    let c8 = cols / 8 * 8;
    let mut y4 = y.chunks_exact_mut(4);
    let mut a4 = a.chunks_exact(4 * cols);
    for (yc, ac) in (&mut y4).zip(&mut a4) {
        let mut acc = [f32x8::ZERO; 4];
        for j in (0..c8).step_by(8) {
            let xv = lanes(&x[j..j + 8]);
            for (r, acc) in acc.iter_mut().enumerate() {
                *acc = lanes(&ac[r * cols + j..r * cols + j + 8]).mul_add(xv, *acc);
            }
        }
        for (r, (yr, acc)) in yc.iter_mut().zip(acc).enumerate() {
            *yr = acc.reduce_add() + tail_dot(&ac[r * cols + c8..(r + 1) * cols], &x[c8..]);
        }
    }
    for (yr, ar) in y4.into_remainder().iter_mut().zip(a4.remainder().chunks_exact(cols)) {
        *yr = crate::simd::dot_wide(ar, x);
    }
}

/// Sequential dot product of the columns left over after the vector loop.
fn tail_dot(a: &[f32], x: &[f32]) -> f32 {
    a.iter().zip(x).map(|(p, q)| p * q).sum()
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    //! AVX-512F rows: 4 rows × 2 `zmm` accumulators, 32 columns per step.
    use std::arch::x86_64::*;

    /// `R` rows at `a` (stride `cols`) dotted with `x`, into `y[..R]`.
    ///
    /// # Safety
    /// AVX-512F; `a` holds `R · cols` floats, `x` `cols`, `y` at least `R`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn block<const R: usize>(a: *const f32, x: &[f32], y: &mut [f32], cols: usize) {
        let px = x.as_ptr();
        let mut acc = [[_mm512_setzero_ps(); 2]; R];
        let mut j = 0;
        // SAFETY: every load reads columns `< cols` of rows `< R`.
        unsafe {
            while j + 32 <= cols {
                let x0 = _mm512_loadu_ps(px.add(j));
                let x1 = _mm512_loadu_ps(px.add(j + 16));
                for (r, acc) in acc.iter_mut().enumerate() {
                    let row = a.add(r * cols + j);
                    acc[0] = _mm512_fmadd_ps(_mm512_loadu_ps(row), x0, acc[0]);
                    acc[1] = _mm512_fmadd_ps(_mm512_loadu_ps(row.add(16)), x1, acc[1]);
                }
                j += 32;
            }
            if j + 16 <= cols {
                let x0 = _mm512_loadu_ps(px.add(j));
                for (r, acc) in acc.iter_mut().enumerate() {
                    acc[0] = _mm512_fmadd_ps(_mm512_loadu_ps(a.add(r * cols + j)), x0, acc[0]);
                }
                j += 16;
            }
            let rest = cols - j;
            if rest > 0 {
                // Masked loads read only the `rest` valid columns (the others are zero).
                let mask: __mmask16 = (1u32 << rest) as u16 - 1;
                let x0 = _mm512_maskz_loadu_ps(mask, px.add(j));
                for (r, acc) in acc.iter_mut().enumerate() {
                    acc[1] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, a.add(r * cols + j)), x0, acc[1]);
                }
            }
        }
        for (yr, acc) in y.iter_mut().zip(acc) {
            *yr = _mm512_reduce_add_ps(_mm512_add_ps(acc[0], acc[1]));
        }
    }

    /// `y = xᵀ·B`: 128 columns (8 `zmm` accumulators) at a time, then 16, then a masked tail.
    ///
    /// # Safety
    /// AVX-512F; row `p < x.len()` of `b` holds `y.len()` floats from `p·ldb`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn vecmat(x: &[f32], b: &[f32], ldb: usize, y: &mut [f32]) {
        let n = y.len();
        let (pb, py) = (b.as_ptr(), y.as_mut_ptr());
        let mut j = 0;
        // SAFETY: every load and store touches columns `< n` of rows `< x.len()`.
        unsafe {
            while j + 128 <= n {
                let mut acc = [_mm512_setzero_ps(); 8];
                for (p, &s) in x.iter().enumerate() {
                    let (sv, row) = (_mm512_set1_ps(s), pb.add(p * ldb + j));
                    for (q, acc) in acc.iter_mut().enumerate() {
                        *acc = _mm512_fmadd_ps(sv, _mm512_loadu_ps(row.add(16 * q)), *acc);
                    }
                }
                for (q, acc) in acc.iter().enumerate() {
                    _mm512_storeu_ps(py.add(j + 16 * q), *acc);
                }
                j += 128;
            }
            while j < n {
                let rest = (n - j).min(16);
                let mask: __mmask16 = ((1u32 << rest) - 1) as u16;
                let mut acc = _mm512_setzero_ps();
                for (p, &s) in x.iter().enumerate() {
                    acc = _mm512_fmadd_ps(_mm512_set1_ps(s), _mm512_maskz_loadu_ps(mask, pb.add(p * ldb + j)), acc);
                }
                _mm512_mask_storeu_ps(py.add(j), mask, acc);
                j += rest;
            }
        }
    }

    /// # Safety
    /// AVX-512F; `a` holds `y.len()` rows of `cols` floats, `x` holds `cols`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn rows(a: &[f32], x: &[f32], y: &mut [f32], cols: usize) {
        let rows = y.len();
        let mut i = 0;
        // SAFETY: row blocks stay below `rows`; the caller vouches for the lengths.
        unsafe {
            while i + 4 <= rows {
                block::<4>(a.as_ptr().add(i * cols), x, &mut y[i..], cols);
                i += 4;
            }
            while i < rows {
                block::<1>(a.as_ptr().add(i * cols), x, &mut y[i..], cols);
                i += 1;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    //! AVX2+FMA rows: 4 rows × 2 `ymm` accumulators, 16 columns per step.
    use std::arch::x86_64::*;

    /// `R` rows at `a` (stride `cols`) dotted with `x`, into `y[..R]`.
    ///
    /// # Safety
    /// AVX2 and FMA; `a` holds `R · cols` floats, `x` `cols`, `y` at least `R`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn block<const R: usize>(a: *const f32, x: &[f32], y: &mut [f32], cols: usize) {
        let px = x.as_ptr();
        let mut acc = [[_mm256_setzero_ps(); 2]; R];
        let mut j = 0;
        // SAFETY: every load reads columns `< cols` of rows `< R`.
        unsafe {
            while j + 16 <= cols {
                let x0 = _mm256_loadu_ps(px.add(j));
                let x1 = _mm256_loadu_ps(px.add(j + 8));
                for (r, acc) in acc.iter_mut().enumerate() {
                    let row = a.add(r * cols + j);
                    acc[0] = _mm256_fmadd_ps(_mm256_loadu_ps(row), x0, acc[0]);
                    acc[1] = _mm256_fmadd_ps(_mm256_loadu_ps(row.add(8)), x1, acc[1]);
                }
                j += 16;
            }
            if j + 8 <= cols {
                let x0 = _mm256_loadu_ps(px.add(j));
                for (r, acc) in acc.iter_mut().enumerate() {
                    acc[0] = _mm256_fmadd_ps(_mm256_loadu_ps(a.add(r * cols + j)), x0, acc[0]);
                }
                j += 8;
            }
        }
        for (r, (yr, acc)) in y.iter_mut().zip(acc).enumerate() {
            // SAFETY: row `r < R` holds `cols` floats.
            let tail = unsafe { std::slice::from_raw_parts(a.add(r * cols + j), cols - j) };
            *yr = hsum(_mm256_add_ps(acc[0], acc[1])) + super::tail_dot(tail, &x[j..]);
        }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps(s, s, 0b01)))
    }

    /// `y = xᵀ·B`: 64 columns (8 `ymm` accumulators) at a time, then 8, then scalar columns.
    ///
    /// # Safety
    /// AVX2 and FMA; row `p < x.len()` of `b` holds `y.len()` floats from `p·ldb`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn vecmat(x: &[f32], b: &[f32], ldb: usize, y: &mut [f32]) {
        let n = y.len();
        let (pb, py) = (b.as_ptr(), y.as_mut_ptr());
        let mut j = 0;
        // SAFETY: every load and store touches columns `< n` of rows `< x.len()`.
        unsafe {
            while j + 64 <= n {
                let mut acc = [_mm256_setzero_ps(); 8];
                for (p, &s) in x.iter().enumerate() {
                    let (sv, row) = (_mm256_set1_ps(s), pb.add(p * ldb + j));
                    for (q, acc) in acc.iter_mut().enumerate() {
                        *acc = _mm256_fmadd_ps(sv, _mm256_loadu_ps(row.add(8 * q)), *acc);
                    }
                }
                for (q, acc) in acc.iter().enumerate() {
                    _mm256_storeu_ps(py.add(j + 8 * q), *acc);
                }
                j += 64;
            }
            while j + 8 <= n {
                let mut acc = _mm256_setzero_ps();
                for (p, &s) in x.iter().enumerate() {
                    acc = _mm256_fmadd_ps(_mm256_set1_ps(s), _mm256_loadu_ps(pb.add(p * ldb + j)), acc);
                }
                _mm256_storeu_ps(py.add(j), acc);
                j += 8;
            }
            for jj in j..n {
                let mut acc = 0.0f32;
                for (p, &s) in x.iter().enumerate() {
                    acc = s.mul_add(*pb.add(p * ldb + jj), acc);
                }
                *py.add(jj) = acc;
            }
        }
    }

    /// # Safety
    /// AVX2 and FMA; `a` holds `y.len()` rows of `cols` floats, `x` holds `cols`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn rows(a: &[f32], x: &[f32], y: &mut [f32], cols: usize) {
        let rows = y.len();
        let mut i = 0;
        // SAFETY: row blocks stay below `rows`; the caller vouches for the lengths.
        unsafe {
            while i + 4 <= rows {
                block::<4>(a.as_ptr().add(i * cols), x, &mut y[i..], cols);
                i += 4;
            }
            while i < rows {
                block::<1>(a.as_ptr().add(i * cols), x, &mut y[i..], cols);
                i += 1;
            }
        }
    }
}
