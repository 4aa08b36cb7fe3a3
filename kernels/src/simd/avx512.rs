//! AVX-512 float kernels (x86-64): dot, squared L2 and fused dot-and-norms for f32, f16 and bf16
//! inputs (f32 accumulation), the f32 reductions, and the f16/bf16 → f32 widening conversions.
//!
//! One macro writes the three distance kernels once for every element type; each type only
//! supplies how to turn 16 elements at a pointer into a `__m512` of f32 (`load`) and the same for
//! a masked tail (`load_tail`, the lanes past the end read as zero and never touch memory).
//! The kernels keep four (dot, L2) or two (dot-and-norms) 16-lane accumulators so that the
//! 4-cycle FMA latency is hidden, and finish the last `n % 16` elements with one masked
//! iteration instead of a scalar loop.
//!
//! Widening is exact on every type: f16 → f32 is `vcvtph2ps` (AVX-512F), bf16 → f32 is a
//! 16-bit left shift of the zero-extended bits.
//!
//! Every function here is `unsafe`: the caller must have checked that the CPU has AVX-512
//! F, BW and VL (see `super::Level::Avx512`) and that both pointers are valid for `n` elements.

use std::arch::x86_64::*;

// ANCHOR: tail_mask
/// The mask of the first `r` lanes (`r < 16`).
#[inline]
fn tail_mask(r: usize) -> __mmask16 {
    ((1u32 << r) - 1) as __mmask16
}
// ANCHOR_END: tail_mask

macro_rules! distance_kernels {
    ($E:ty) => {
        // ANCHOR: avx512_dot
        /// `Σ a_i b_i` over `n` elements.
        ///
        /// # Safety
        /// The CPU has AVX-512 F/BW/VL and both pointers are valid for `n` elements.
        #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
        pub unsafe fn dot(a: *const $E, b: *const $E, n: usize) -> f32 {
            let mut acc = [_mm512_setzero_ps(); 4];
            let mut i = 0;
            // SAFETY (all loads): every full load reads i..i + 16 <= n; the tail load is masked
            // to the i..n elements that exist.
            unsafe {
                while i + 64 <= n {
                    for (k, acc) in acc.iter_mut().enumerate() {
                        *acc = _mm512_fmadd_ps(load(a.add(i + 16 * k)), load(b.add(i + 16 * k)), *acc);
                    }
                    i += 64;
                }
                while i + 16 <= n {
                    acc[0] = _mm512_fmadd_ps(load(a.add(i)), load(b.add(i)), acc[0]);
                    i += 16;
                }
                if i < n {
                    let m = super::tail_mask(n - i);
                    acc[1] = _mm512_fmadd_ps(load_tail(a.add(i), m), load_tail(b.add(i), m), acc[1]);
                }
            }
            _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])))
        }
        // ANCHOR_END: avx512_dot

        /// `Σ (a_i − b_i)²` over `n` elements.
        ///
        /// # Safety
        /// As for [`dot`].
        #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
        pub unsafe fn l2_sq(a: *const $E, b: *const $E, n: usize) -> f32 {
            let mut acc = [_mm512_setzero_ps(); 4];
            let mut i = 0;
            // SAFETY (all loads): as in `dot`.
            unsafe {
                while i + 64 <= n {
                    for (k, acc) in acc.iter_mut().enumerate() {
                        let d = _mm512_sub_ps(load(a.add(i + 16 * k)), load(b.add(i + 16 * k)));
                        *acc = _mm512_fmadd_ps(d, d, *acc);
                    }
                    i += 64;
                }
                while i + 16 <= n {
                    let d = _mm512_sub_ps(load(a.add(i)), load(b.add(i)));
                    acc[0] = _mm512_fmadd_ps(d, d, acc[0]);
                    i += 16;
                }
                if i < n {
                    let m = super::tail_mask(n - i);
                    let d = _mm512_sub_ps(load_tail(a.add(i), m), load_tail(b.add(i), m));
                    acc[1] = _mm512_fmadd_ps(d, d, acc[1]);
                }
            }
            _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])))
        }

        /// `(a·b, |a|², |b|²)` over `n` elements in one pass.
        ///
        /// # Safety
        /// As for [`dot`].
        #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
        pub unsafe fn dot_norms(a: *const $E, b: *const $E, n: usize) -> (f32, f32, f32) {
            let z = _mm512_setzero_ps();
            let (mut ab, mut aa, mut bb) = ([z; 2], [z; 2], [z; 2]);
            let mut i = 0;
            // SAFETY (all loads): as in `dot`.
            unsafe {
                while i + 32 <= n {
                    for k in 0..2 {
                        let x = load(a.add(i + 16 * k));
                        let y = load(b.add(i + 16 * k));
                        ab[k] = _mm512_fmadd_ps(x, y, ab[k]);
                        aa[k] = _mm512_fmadd_ps(x, x, aa[k]);
                        bb[k] = _mm512_fmadd_ps(y, y, bb[k]);
                    }
                    i += 32;
                }
                let mut step = |x: __m512, y: __m512| {
                    ab[0] = _mm512_fmadd_ps(x, y, ab[0]);
                    aa[0] = _mm512_fmadd_ps(x, x, aa[0]);
                    bb[0] = _mm512_fmadd_ps(y, y, bb[0]);
                };
                if i + 16 <= n {
                    step(load(a.add(i)), load(b.add(i)));
                    i += 16;
                }
                if i < n {
                    let m = super::tail_mask(n - i);
                    step(load_tail(a.add(i), m), load_tail(b.add(i), m));
                }
            }
            (
                _mm512_reduce_add_ps(_mm512_add_ps(ab[0], ab[1])),
                _mm512_reduce_add_ps(_mm512_add_ps(aa[0], aa[1])),
                _mm512_reduce_add_ps(_mm512_add_ps(bb[0], bb[1])),
            )
        }
    };
}

pub mod f32 {
    //! f32 inputs: plain 16-lane loads, and the reductions.
    use std::arch::x86_64::*;

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    unsafe fn load(p: *const f32) -> __m512 {
        // SAFETY: the caller guarantees 16 readable floats at `p`.
        unsafe { _mm512_loadu_ps(p) }
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    unsafe fn load_tail(p: *const f32, m: __mmask16) -> __m512 {
        // SAFETY: masked-off lanes are not read; the caller guarantees the others.
        unsafe { _mm512_maskz_loadu_ps(m, p) }
    }

    distance_kernels!(f32);

    // The four-row forms below run four `a` vectors against one `b` (the rows of a distance matrix,
    // `super::super::cdist`): each `b` load serves four products. Every row keeps the accumulators,
    // the chunking and the reduction of the one-pair kernel above, so each result is bit-identical
    // to `dot(a_r, b, n)`, `l2_sq(a_r, b, n)` or the `a·b` of `dot_norms(a_r, b, n)`.

    /// A four-row kernel with the chunking and the four accumulators of `dot` and `l2_sq`:
    /// `$step(x, y, acc)` is one accumulator's update for a block `x` of an `a` vector and `y` of `b`.
    macro_rules! four_rows {
        ($(#[$doc:meta])* $name:ident, |$x:ident, $y:ident, $acc:ident| $step:expr) => {
            $(#[$doc])*
            #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
            pub unsafe fn $name(a: [*const f32; 4], b: *const f32, n: usize) -> [f32; 4] {
                let mut acc = [[_mm512_setzero_ps(); 4]; 4];
                let mut i = 0;
                // SAFETY (all loads): as in `dot`, for each of the five vectors.
                unsafe {
                    while i + 64 <= n {
                        for k in 0..4 {
                            let $y = load(b.add(i + 16 * k));
                            for (acc, a) in acc.iter_mut().zip(a) {
                                let ($x, $acc) = (load(a.add(i + 16 * k)), acc[k]);
                                acc[k] = $step;
                            }
                        }
                        i += 64;
                    }
                    while i + 16 <= n {
                        let $y = load(b.add(i));
                        for (acc, a) in acc.iter_mut().zip(a) {
                            let ($x, $acc) = (load(a.add(i)), acc[0]);
                            acc[0] = $step;
                        }
                        i += 16;
                    }
                    if i < n {
                        let m = super::tail_mask(n - i);
                        let $y = load_tail(b.add(i), m);
                        for (acc, a) in acc.iter_mut().zip(a) {
                            let ($x, $acc) = (load_tail(a.add(i), m), acc[1]);
                            acc[1] = $step;
                        }
                    }
                }
                acc.map(|acc| {
                    _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])))
                })
            }
        };
    }

    four_rows!(
        /// [`dot`] of each of the four `a` vectors with `b`.
        ///
        /// # Safety
        /// The CPU has AVX-512 F/BW/VL and every pointer is valid for `n` elements.
        dot4,
        |x, y, acc| _mm512_fmadd_ps(x, y, acc)
    );

    four_rows!(
        /// [`l2_sq`] of each of the four `a` vectors and `b`.
        ///
        /// # Safety
        /// As for [`dot4`].
        l2_sq4,
        |x, y, acc| {
            let d = _mm512_sub_ps(x, y);
            _mm512_fmadd_ps(d, d, acc)
        }
    );

    /// The `a·b` part of [`dot_norms`] for each of the four `a` vectors with `b` (its two
    /// accumulators and chunking, so each value is bit-identical to `dot_norms(a_r, b, n).0`); the
    /// norms, which depend on one vector only, are computed once per vector by the caller.
    ///
    /// # Safety
    /// As for [`dot4`].
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub unsafe fn dot_norms_ab4(a: [*const f32; 4], b: *const f32, n: usize) -> [f32; 4] {
        let mut ab = [[_mm512_setzero_ps(); 2]; 4];
        let mut i = 0;
        // SAFETY (all loads): as in `dot`, for each of the five vectors.
        unsafe {
            while i + 32 <= n {
                for k in 0..2 {
                    let y = load(b.add(i + 16 * k));
                    for (ab, a) in ab.iter_mut().zip(a) {
                        ab[k] = _mm512_fmadd_ps(load(a.add(i + 16 * k)), y, ab[k]);
                    }
                }
                i += 32;
            }
            if i + 16 <= n {
                let y = load(b.add(i));
                for (ab, a) in ab.iter_mut().zip(a) {
                    ab[0] = _mm512_fmadd_ps(load(a.add(i)), y, ab[0]);
                }
                i += 16;
            }
            if i < n {
                let m = super::tail_mask(n - i);
                let y = load_tail(b.add(i), m);
                for (ab, a) in ab.iter_mut().zip(a) {
                    ab[0] = _mm512_fmadd_ps(load_tail(a.add(i), m), y, ab[0]);
                }
            }
        }
        ab.map(|ab| _mm512_reduce_add_ps(_mm512_add_ps(ab[0], ab[1])))
    }

    /// `y_h += Σ_t w_h[t] · row_t` for `M` weight vectors `w_h` (`positions` each) and `M` outputs
    /// `y_h` (`n` floats each, `y + h·n`), rows `stride` apart from `rows`, `n` a multiple of 16.
    /// Each row's 64 (then 16) floats are loaded once for the `M` outputs, which stay in registers
    /// (up to 16 accumulators) while every row is added: one FMA per element, output and row,
    /// rows in order.
    ///
    /// # Safety
    /// The CPU has AVX-512 F/BW/VL; each `w_h` holds `positions` floats, `y` holds `M·n`, and row
    /// `t < positions` is `n` readable floats at `rows + t·stride`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub unsafe fn axpy_rows<const M: usize>(
        w: [*const f32; M],
        positions: usize,
        rows: *const f32,
        stride: usize,
        y: *mut f32,
        n: usize,
    ) {
        let mut i = 0;
        // SAFETY (all loads and stores): `i + 16·k + 16 <= n` for the lanes of each output and
        // row, `t < positions` for the weights, by the caller's guarantee.
        unsafe {
            while i + 64 <= n {
                let mut acc = [[_mm512_setzero_ps(); 4]; M];
                for (h, acc) in acc.iter_mut().enumerate() {
                    *acc = [0, 1, 2, 3].map(|k| load(y.add(h * n + i + 16 * k)));
                }
                for t in 0..positions {
                    let row = rows.add(t * stride + i);
                    let v = [0, 1, 2, 3].map(|k| load(row.add(16 * k)));
                    for (acc, w) in acc.iter_mut().zip(w) {
                        let a = _mm512_set1_ps(*w.add(t));
                        for (acc, v) in acc.iter_mut().zip(v) {
                            *acc = _mm512_fmadd_ps(a, v, *acc);
                        }
                    }
                }
                for (h, acc) in acc.iter().enumerate() {
                    for (k, acc) in acc.iter().enumerate() {
                        _mm512_storeu_ps(y.add(h * n + i + 16 * k), *acc);
                    }
                }
                i += 64;
            }
            while i + 16 <= n {
                let mut acc = [_mm512_setzero_ps(); M];
                for (h, acc) in acc.iter_mut().enumerate() {
                    *acc = load(y.add(h * n + i));
                }
                for t in 0..positions {
                    let v = load(rows.add(t * stride + i));
                    for (acc, w) in acc.iter_mut().zip(w) {
                        *acc = _mm512_fmadd_ps(_mm512_set1_ps(*w.add(t)), v, *acc);
                    }
                }
                for (h, acc) in acc.iter().enumerate() {
                    _mm512_storeu_ps(y.add(h * n + i), *acc);
                }
                i += 16;
            }
        }
    }

    /// `Σ x_i` with four 16-lane accumulators.
    ///
    /// # Safety
    /// The CPU has AVX-512 F/BW/VL.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub unsafe fn sum(x: &[f32]) -> f32 {
        let (n, p) = (x.len(), x.as_ptr());
        let mut acc = [_mm512_setzero_ps(); 4];
        let mut i = 0;
        // SAFETY (all loads): full loads read i..i + 16 <= n, the tail load is masked.
        unsafe {
            while i + 64 <= n {
                for (k, acc) in acc.iter_mut().enumerate() {
                    *acc = _mm512_add_ps(*acc, load(p.add(i + 16 * k)));
                }
                i += 64;
            }
            while i + 16 <= n {
                acc[0] = _mm512_add_ps(acc[0], load(p.add(i)));
                i += 16;
            }
            if i < n {
                acc[1] = _mm512_add_ps(acc[1], load_tail(p.add(i), super::tail_mask(n - i)));
            }
        }
        _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])))
    }

    /// `Σ (x_i − mu)²` with four 16-lane accumulators.
    ///
    /// # Safety
    /// The CPU has AVX-512 F/BW/VL.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub unsafe fn sum_sq_dev(x: &[f32], mu: f32) -> f32 {
        let (n, p) = (x.len(), x.as_ptr());
        let m = _mm512_set1_ps(mu);
        let mut acc = [_mm512_setzero_ps(); 4];
        let mut i = 0;
        // SAFETY (all loads): full loads read i..i + 16 <= n, the tail load is masked.
        unsafe {
            while i + 64 <= n {
                for (k, acc) in acc.iter_mut().enumerate() {
                    let d = _mm512_sub_ps(load(p.add(i + 16 * k)), m);
                    *acc = _mm512_fmadd_ps(d, d, *acc);
                }
                i += 64;
            }
            while i + 16 <= n {
                let d = _mm512_sub_ps(load(p.add(i)), m);
                acc[0] = _mm512_fmadd_ps(d, d, acc[0]);
                i += 16;
            }
            if i < n {
                let k = super::tail_mask(n - i);
                // Masked-off lanes stay 0 (not 0 − mu).
                let d = _mm512_maskz_sub_ps(k, load_tail(p.add(i), k), m);
                acc[1] = _mm512_fmadd_ps(d, d, acc[1]);
            }
        }
        _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])))
    }

    /// NaN-ignoring maximum seeded with `-inf` (all-NaN or empty input gives `-inf`).
    ///
    /// # Safety
    /// The CPU has AVX-512 F/BW/VL.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub unsafe fn max(x: &[f32]) -> f32 {
        let (n, p) = (x.len(), x.as_ptr());
        let ninf = _mm512_set1_ps(f32::NEG_INFINITY);
        let mut acc = [ninf; 4];
        let mut i = 0;
        // `_mm512_max_ps(v, acc)` returns `acc` when `v` is NaN: NaN lanes are skipped.
        // SAFETY (all loads): full loads read i..i + 16 <= n, the tail load is masked.
        unsafe {
            while i + 64 <= n {
                for (k, acc) in acc.iter_mut().enumerate() {
                    *acc = _mm512_max_ps(load(p.add(i + 16 * k)), *acc);
                }
                i += 64;
            }
            while i + 16 <= n {
                acc[0] = _mm512_max_ps(load(p.add(i)), acc[0]);
                i += 16;
            }
            if i < n {
                let k = super::tail_mask(n - i);
                // Masked-off lanes keep `-inf`.
                let v = _mm512_mask_loadu_ps(ninf, k, p.add(i));
                acc[1] = _mm512_max_ps(v, acc[1]);
            }
        }
        let m = _mm512_max_ps(_mm512_max_ps(acc[0], acc[1]), _mm512_max_ps(acc[2], acc[3]));
        let mut lanes = [0.0f32; 16];
        // SAFETY: `lanes` holds 16 floats.
        unsafe { _mm512_storeu_ps(lanes.as_mut_ptr(), m) };
        lanes.into_iter().fold(f32::NEG_INFINITY, f32::max)
    }
}

pub mod f16 {
    //! IEEE half inputs, widened with `vcvtph2ps`.
    use std::arch::x86_64::*;

    use half::f16;

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    unsafe fn load(p: *const f16) -> __m512 {
        // SAFETY: the caller guarantees 16 readable halves (32 bytes) at `p`.
        _mm512_cvtph_ps(unsafe { _mm256_loadu_si256(p.cast()) })
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    unsafe fn load_tail(p: *const f16, m: __mmask16) -> __m512 {
        // SAFETY: masked-off lanes are not read; the caller guarantees the others.
        _mm512_cvtph_ps(unsafe { _mm256_maskz_loadu_epi16(m, p.cast()) })
    }

    distance_kernels!(f16);

    /// Widens `src` into `dst` (`n` elements each), bit-exact.
    ///
    /// # Safety
    /// The CPU has AVX-512 F/BW/VL; `src` and `dst` are valid for `n` elements.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub unsafe fn to_f32(src: *const f16, dst: *mut f32, n: usize) {
        let mut i = 0;
        // SAFETY (all loads and stores): full ones touch i..i + 16 <= n, the tail ones are masked.
        unsafe {
            while i + 16 <= n {
                _mm512_storeu_ps(dst.add(i), load(src.add(i)));
                i += 16;
            }
            if i < n {
                let m = super::tail_mask(n - i);
                _mm512_mask_storeu_ps(dst.add(i), m, load_tail(src.add(i), m));
            }
        }
    }
}

pub mod bf16 {
    //! bfloat16 inputs, widened by zero-extension and a 16-bit left shift.
    use std::arch::x86_64::*;

    use half::bf16;

    // ANCHOR: bf16_widen
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    fn widen(v: __m256i) -> __m512 {
        _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(v)))
    }
    // ANCHOR_END: bf16_widen

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    unsafe fn load(p: *const bf16) -> __m512 {
        // SAFETY: the caller guarantees 16 readable bf16 (32 bytes) at `p`.
        widen(unsafe { _mm256_loadu_si256(p.cast()) })
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    unsafe fn load_tail(p: *const bf16, m: __mmask16) -> __m512 {
        // SAFETY: masked-off lanes are not read; the caller guarantees the others.
        widen(unsafe { _mm256_maskz_loadu_epi16(m, p.cast()) })
    }

    distance_kernels!(bf16);

    /// The widened lanes with signalling NaNs quieted (bit 22 set), as `half`'s `to_f32` does.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    fn quiet(v: __m512) -> __m512 {
        let bits = _mm512_castps_si512(v);
        let abs = _mm512_and_si512(bits, _mm512_set1_epi32(0x7FFF_FFFF));
        let nan = _mm512_cmpgt_epi32_mask(abs, _mm512_set1_epi32(0x7F80_0000));
        _mm512_castsi512_ps(_mm512_mask_or_epi32(bits, nan, bits, _mm512_set1_epi32(0x0040_0000)))
    }

    /// Widens `src` into `dst` (`n` elements each), bit-exact with `bf16::to_f32`.
    ///
    /// # Safety
    /// The CPU has AVX-512 F/BW/VL; `src` and `dst` are valid for `n` elements.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub unsafe fn to_f32(src: *const bf16, dst: *mut f32, n: usize) {
        let mut i = 0;
        // SAFETY (all loads and stores): full ones touch i..i + 16 <= n, the tail ones are masked.
        unsafe {
            while i + 16 <= n {
                _mm512_storeu_ps(dst.add(i), quiet(load(src.add(i))));
                i += 16;
            }
            if i < n {
                let m = super::tail_mask(n - i);
                _mm512_mask_storeu_ps(dst.add(i), m, quiet(load_tail(src.add(i), m)));
            }
        }
    }
}
