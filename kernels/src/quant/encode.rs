//! Quantisation of one block of each GGUF format: ggml's reference algorithms
//! (`quantize_row_*_ref` in `ggml-quants.c`, layouts from `ggml-common.h`), re-derived here.
//!
//! Q8_0, Q4_0 and Q4_1 follow ggml's arithmetic step for step (the tests compare bytes with
//! `gguf.quants.quantize`). The K-quants search for good scales the way ggml's reference does
//! without an importance matrix: Q4_K fits a scale and a min per 32-element sub-block by
//! weighted least squares over a sweep of candidate scales (`make_qkx2_quants`), Q6_K fits a
//! signed scale per 16-element sub-block (`make_qx_quants`); both then quantise the sub-block
//! scales themselves (6 bits in Q4_K, 8 in Q6_K) and re-round every value against the scales
//! as stored.
//!
//! Each function writes one block and returns `false` when a scale does not fit its f16 field
//! (the caller turns that into [`crate::Error::QuantOutOfRange`]). Inputs are finite (checked by
//! the caller).

use half::f16;

/// ggml's `nearest_int`: round half to even (its magic-number trick does exactly this).
#[inline(always)]
fn nearest(x: f32) -> i32 {
    x.round_ties_even() as i32
}

/// f32 → little-endian f16 bytes (round to nearest even, as numpy and ggml), and whether the
/// result is finite.
#[inline(always)]
fn put_f16(out: &mut [u8], off: usize, v: f32) -> bool {
    let h = f16::from_f32(v);
    out[off..off + 2].copy_from_slice(&h.to_bits().to_le_bytes());
    h.is_finite()
}

/// The f16 rounding of `v`, back as f32.
#[inline(always)]
fn round_f16(v: f32) -> f32 {
    f16::from_f32(v).to_f32()
}

/// The value of largest magnitude (the first one on ties) and that magnitude.
fn signed_absmax(x: &[f32]) -> (f32, f32) {
    let (mut max, mut amax) = (0.0f32, 0.0f32);
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    (max, amax)
}

/// The largest `|v|` of finite `x`, eight lanes at a time (max is exact in any order, so this is
/// the sequential fold's value; the lanes let the compiler vectorise it).
fn abs_max(x: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let chunks = x.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        for (m, v) in lanes.iter_mut().zip(c) {
            *m = m.max(v.abs());
        }
    }
    tail.iter().chain(&lanes).fold(0.0f32, |m, v| m.max(v.abs()))
}

pub(super) fn q8_0(x: &[f32], out: &mut [u8]) -> bool {
    let amax = abs_max(x);
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let fits = put_f16(out, 0, d);
    for (o, &v) in out[2..34].iter_mut().zip(x) {
        // `round` is C's roundf (half away from zero). The clamp only matters when `id` is inf
        // (a subnormal `d`), where ggml's result is undefined; it keeps qs in -127..=127.
        *o = (v * id).round().clamp(-127.0, 127.0) as i8 as u8;
    }
    fits
}

pub(super) fn q4_0(x: &[f32], out: &mut [u8]) -> bool {
    let (max, _) = signed_absmax(x);
    let d = max / -8.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let fits = put_f16(out, 0, d);
    // Truncation as C's `(int8_t)(v + 8.5f)`; values are >= 0.5 whenever `id` is finite.
    let q = |v: f32| ((v * id + 8.5) as i32).clamp(0, 15) as u8;
    for j in 0..16 {
        out[2 + j] = q(x[j]) | (q(x[j + 16]) << 4);
    }
    fits
}

pub(super) fn q4_1(x: &[f32], out: &mut [u8]) -> bool {
    let (mut min, mut max) = (f32::MAX, -f32::MAX);
    for &v in x {
        min = min.min(v);
        max = max.max(v);
    }
    let d = (max - min) / 15.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let fits = put_f16(out, 0, d) & put_f16(out, 2, min);
    let q = |v: f32| (((v - min) * id + 0.5) as i32).clamp(0, 15) as u8;
    for j in 0..16 {
        out[4 + j] = q(x[j]) | (q(x[j + 16]) << 4);
    }
    fits
}

/// Above this magnitude no f16-scaled K-quant block can hold a value; refusing early also keeps
/// the scale search's sums of squares finite.
const K_MAX_ABS: f32 = 1e9;

/// ggml's `make_qkx2_quants`: the scale and min (returned as `(scale, -min)`, both >= 0 in
/// practice) of an asymmetric `nmax`-level quantisation of `x`, minimising the `w`-weighted
/// squared error over `nstep + 1` candidate scales `(nmax + rmin + rdelta·i) / (max − min)`,
/// each refined by the closed-form least-squares scale and min for its rounding `l`.
fn make_qkx2(nmax: i32, x: &[f32], w: &[f32], l: &mut [u8], rmin: f32, rdelta: f32, nstep: i32) -> (f32, f32) {
    let n = x.len();
    let (mut min, mut max) = (x[0], x[0]);
    let (mut sum_w, mut sum_x) = (w[0], w[0] * x[0]);
    for i in 1..n {
        min = min.min(x[i]);
        max = max.max(x[i]);
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        l.fill(0);
        return (0.0, -min);
    }
    let mut iscale = nmax as f32 / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best = 0.0f32;
    for i in 0..n {
        let li = nearest(iscale * (x[i] - min)).clamp(0, nmax);
        l[i] = li as u8;
        let diff = scale * li as f32 + min - x[i];
        best += w[i] * diff * diff;
    }
    let mut laux = [0u8; 32];
    for is in 0..=nstep {
        iscale = (rmin + rdelta * is as f32 + nmax as f32) / (max - min);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0.0f32, 0.0f32, 0.0f32);
        for i in 0..n {
            let li = nearest(iscale * (x[i] - min)).clamp(0, nmax);
            laux[i] = li as u8;
            let lf = li as f32;
            sum_l += w[i] * lf;
            sum_l2 += w[i] * lf * lf;
            sum_xl += w[i] * lf * x[i];
        }
        let det = sum_w * sum_l2 - sum_l * sum_l;
        if det > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut err = 0.0f32;
            for i in 0..n {
                let diff = this_scale * laux[i] as f32 + this_min - x[i];
                err += w[i] * diff * diff;
            }
            if err < best {
                l[..n].copy_from_slice(&laux[..n]);
                best = err;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

pub(super) fn q4_k(x: &[f32], out: &mut [u8]) -> bool {
    if x.iter().any(|v| v.abs() > K_MAX_ABS) {
        return false;
    }
    let mut l = [0u8; 256];
    let (mut scales, mut mins) = ([0.0f32; 8], [0.0f32; 8]);
    let mut weights = [0.0f32; 32];
    for j in 0..8 {
        let xs = &x[32 * j..32 * j + 32];
        // ggml's weighting without an importance matrix: rms of the sub-block plus |x|.
        let av_x = (xs.iter().map(|v| v * v).sum::<f32>() / 32.0).sqrt();
        for (w, v) in weights.iter_mut().zip(xs) {
            *w = av_x + v.abs();
        }
        (scales[j], mins[j]) = make_qkx2(15, xs, &weights, &mut l[32 * j..32 * j + 32], -1.0, 0.1, 20);
    }
    let max_scale = scales.iter().fold(0.0f32, |m, &s| m.max(s));
    let max_min = mins.iter().fold(0.0f32, |m, &s| m.max(s));
    let inv_scale = if max_scale > 0.0 { 63.0 / max_scale } else { 0.0 };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };

    // Pack the 6-bit scales and mins (see `decode::scale_min_k4` for the layout).
    let packed = &mut out[4..16];
    packed.fill(0);
    for j in 0..8 {
        let ls = nearest(inv_scale * scales[j]).clamp(0, 63) as u8;
        let lm = nearest(inv_min * mins[j]).clamp(0, 63) as u8;
        if j < 4 {
            packed[j] = ls;
            packed[j + 4] = lm;
        } else {
            packed[j + 4] = (ls & 0x0F) | ((lm & 0x0F) << 4);
            packed[j - 4] |= (ls >> 4) << 6;
            packed[j] |= (lm >> 4) << 6;
        }
    }
    let fits = put_f16(out, 0, max_scale / 63.0) & put_f16(out, 2, max_min / 63.0);
    let (d, dmin) = (round_f16(max_scale / 63.0), round_f16(max_min / 63.0));

    // Re-round every value against the scales as stored.
    for j in 0..8 {
        let (sc, m) = super::decode::scale_min_k4(j, &out[4..16]);
        let dj = d * sc as f32;
        if dj == 0.0 {
            continue;
        }
        let dm = dmin * m as f32;
        for i in 32 * j..32 * j + 32 {
            l[i] = nearest((x[i] + dm) / dj).clamp(0, 15) as u8;
        }
    }
    // Four chunks of 64: byte `l` of a chunk holds element `l` (low nibble) and `l + 32` (high).
    for c in 0..4 {
        for i in 0..32 {
            out[16 + 32 * c + i] = l[64 * c + i] | (l[64 * c + 32 + i] << 4);
        }
    }
    fits
}

/// ggml's `make_qx_quants` with `rmse_type = 1` (weights `x²`): a signed scale for a symmetric
/// quantisation of `x` to `-nmax..nmax`, the best of 19 candidates around `-nmax / max` by
/// weighted least squares. Writes `l + nmax` into `l`.
fn make_qx(nmax: i32, x: &[f32], l: &mut [u8]) -> f32 {
    let (max, amax) = signed_absmax(x);
    if amax < 1e-15 {
        l.fill(0);
        return 0.0;
    }
    let q = |iscale: f32, v: f32| nearest(iscale * v).clamp(-nmax, nmax - 1);
    let sums = |iscale: f32| {
        x.iter().fold((0.0f32, 0.0f32), |(slx, sl2), &v| {
            let (lf, w) = (q(iscale, v) as f32, v * v);
            (slx + w * v * lf, sl2 + w * lf * lf)
        })
    };
    let mut iscale = -(nmax as f32) / max;
    let (sumlx, suml2) = sums(iscale);
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    let mut best = scale * sumlx;
    for is in -9..=9 {
        if is == 0 {
            continue;
        }
        let cand = -(nmax as f32 + 0.1 * is as f32) / max;
        let (sumlx, suml2) = sums(cand);
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            iscale = cand;
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    for (li, &v) in l.iter_mut().zip(x) {
        *li = (q(iscale, v) + nmax) as u8;
    }
    scale
}

pub(super) fn q6_k(x: &[f32], out: &mut [u8]) -> bool {
    if x.iter().any(|v| v.abs() > K_MAX_ABS) {
        return false;
    }
    let mut l = [0u8; 256];
    let mut scales = [0.0f32; 16];
    let (mut max_scale, mut max_abs_scale) = (0.0f32, 0.0f32);
    for j in 0..16 {
        let s = make_qx(32, &x[16 * j..16 * j + 16], &mut l[16 * j..16 * j + 16]);
        scales[j] = s;
        if s.abs() > max_abs_scale {
            max_abs_scale = s.abs();
            max_scale = s;
        }
    }
    if max_abs_scale < 1e-15 {
        out.fill(0);
        return true;
    }
    let iscale = -128.0 / max_scale;
    let fits = put_f16(out, 208, 1.0 / iscale);
    let d = round_f16(1.0 / iscale);
    for j in 0..16 {
        out[192 + j] = nearest(iscale * scales[j]).clamp(-128, 127) as i8 as u8;
    }
    for j in 0..16 {
        let dj = d * out[192 + j] as i8 as f32;
        if dj == 0.0 {
            continue;
        }
        for i in 16 * j..16 * j + 16 {
            l[i] = (nearest(x[i] / dj).clamp(-32, 31) + 32) as u8;
        }
    }
    // Pack: per 128-element half, 64 bytes of low nibbles and 32 bytes of high 2-bit pairs
    // (see `decode::q6_k_value`).
    for h in 0..2 {
        let (ls, ql, qh) = (128 * h, 64 * h, 128 + 32 * h);
        for i in 0..32 {
            let [a, b, c, e] = [l[ls + i], l[ls + i + 32], l[ls + i + 64], l[ls + i + 96]];
            out[ql + i] = (a & 0x0F) | ((c & 0x0F) << 4);
            out[ql + i + 32] = (b & 0x0F) | ((e & 0x0F) << 4);
            out[qh + i] = (a >> 4) | ((b >> 4) << 2) | ((c >> 4) << 4) | ((e >> 4) << 6);
        }
    }
    fits
}

pub(super) fn q8_k(x: &[f32], out: &mut [u8]) -> bool {
    let (max, amax) = signed_absmax(x);
    let iscale = if amax != 0.0 { -128.0 / max } else { 0.0 };
    if iscale == 0.0 || !iscale.is_finite() {
        // All zeros, or so tiny (amax < 2^-119) that the inverse scale overflows: a zero block.
        out.fill(0);
        return true;
    }
    out[0..4].copy_from_slice(&(1.0 / iscale).to_le_bytes());
    for (j, xs) in x.chunks_exact(16).enumerate() {
        let mut sum = 0i16;
        for (i, &v) in xs.iter().enumerate() {
            let q = nearest(iscale * v).clamp(-128, 127) as i8;
            out[4 + 16 * j + i] = q as u8;
            sum += q as i16;
        }
        out[260 + 2 * j..262 + 2 * j].copy_from_slice(&sum.to_le_bytes());
    }
    true
}
