//! Vector ops of `kernels::simd` (reductions, axpy, exp, softmax, GELU/SiLU, RMSNorm/LayerNorm):
//! the dispatched and portable `wide` paths against their scalar twins and f64 references, on
//! adversarial and random inputs.
//!
//! Tolerances are stated where they are used. The recurring one is `tol_sum(n, mag)`: the
//! classic bound for summing `n` terms in f32 in any order, `(n + 8)·ε·Σ|terms|`.

use kernels::simd;
use proptest::prelude::*;

const EPS: f64 = f32::EPSILON as f64;

/// Lengths around the 8-lane width and the 32-float unroll, plus a large odd one.
const LENGTHS: &[usize] = &[0, 1, 7, 8, 9, 15, 16, 17, 31, 33, 1023];

/// Error bound for an f32 sum of `n` terms whose absolute values sum to `mag`.
fn tol_sum(n: usize, mag: f64) -> f64 {
    (n as f64 + 8.0) * EPS * mag
}

/// Equal (including both infinite with one sign), both NaN, or within `tol`.
fn close(got: f32, want: f32, tol: f64) -> bool {
    got == want || (got.is_nan() && want.is_nan()) || (got as f64 - want as f64).abs() <= tol
}

fn noise(n: usize, seed: u64) -> Vec<f32> {
    datasets::vectors::uniform(n, seed)
}

/// Named inputs of length `n`: random, huge, tiny (subnormal), constant, one-hot, and mixed with ±inf.
fn inputs(n: usize) -> Vec<(&'static str, Vec<f32>)> {
    let a = noise(n, 11);
    let mut one_hot = vec![0.0f32; n];
    if let Some(v) = one_hot.last_mut() {
        *v = 5.0;
    }
    vec![
        ("random", a.clone()),
        ("shifted", a.iter().map(|x| x + 100.0).collect()),
        ("large 1e30", a.iter().map(|x| x * 1e30).collect()),
        ("tiny 1e-20", a.iter().map(|x| x * 1e-20).collect()),
        ("subnormal", a.iter().map(|x| x * 1e-40).collect()),
        ("constant", vec![0.75; n]),
        ("zeros", vec![0.0; n]),
        ("one-hot", one_hot),
    ]
}

// ---------------------------------------------------------------- reductions

fn check_reductions(case: &str, x: &[f32]) {
    let n = x.len();
    let mag: f64 = x.iter().map(|v| (*v as f64).abs()).sum();
    let want = simd::sum_scalar(x);
    for (path, got) in [("dispatch", simd::sum(x)), ("wide", simd::sum_wide(x))] {
        assert!(close(got, want, 2.0 * tol_sum(n, mag)), "{case}: sum {path} n={n}: {got} vs {want}");
    }
    assert_eq!(simd::mean(x).is_none(), n == 0, "{case}");
    if let (Some(got), Some(want)) = (simd::mean(x), simd::mean_scalar(x)) {
        assert!(close(got, want, 2.0 * tol_sum(n, mag) / n as f64), "{case}: mean n={n}: {got} vs {want}");
    }

    // Variance against an f64 two-pass reference. Tolerance: summation of the squared deviations
    // ((n+8)ε·var), rounding of each deviation (4ε·√(mean x²·var)), the f32 mean's error squared,
    // and an absolute `n·f32::MIN_POSITIVE` for squares lost to subnormals.
    if n > 0 {
        let mu = x.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
        let var = x.iter().map(|&v| (v as f64 - mu).powi(2)).sum::<f64>() / n as f64;
        let msq = x.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / n as f64;
        let dmu = tol_sum(n, mag) / n as f64;
        let tol =
            4.0 * tol_sum(n, var) + 4.0 * EPS * (msq * var).sqrt() + dmu * dmu + n as f64 * f32::MIN_POSITIVE as f64;
        for (path, got) in [("dispatch", simd::variance(x)), ("scalar", simd::variance_scalar(x))] {
            let got = got.unwrap();
            if var > f32::MAX as f64 {
                assert_eq!(got, f32::INFINITY, "{case}: variance {path} n={n} must overflow to inf");
            } else {
                assert!((got as f64 - var).abs() <= tol, "{case}: variance {path} n={n}: {got} vs {var} (tol {tol})");
            }
        }
    } else {
        assert_eq!(simd::variance(x), None);
        assert_eq!(simd::variance_scalar(x), None);
    }

    // max and argmax are exact: every path must agree bit-for-bit (up to NaN and ±0).
    let want = simd::max_scalar(x);
    for (path, got) in [("dispatch", simd::max(x)), ("wide", simd::max_wide(x))] {
        let same = match (got, want) {
            (Some(g), Some(w)) => g == w || (g.is_nan() && w.is_nan()),
            (g, w) => g.is_none() && w.is_none(),
        };
        assert!(same, "{case}: max {path} n={n}: {got:?} vs {want:?}");
    }
    assert_eq!(simd::argmax(x), simd::argmax_scalar(x), "{case}: argmax n={n}");
    if let Some(i) = simd::argmax(x) {
        let m = simd::max_scalar(x).unwrap();
        assert!(x[i] == m || m.is_nan(), "{case}: argmax points at the max");
        assert!(x[..i].iter().all(|&v| v.is_nan() || v < m), "{case}: argmax is the first maximum");
    }
}

#[test]
fn reductions_match_scalar_on_adversarial_inputs() {
    for &n in LENGTHS {
        for (case, x) in inputs(n) {
            check_reductions(case, &x);
        }
    }
}

#[test]
fn max_and_argmax_follow_the_nan_policy() {
    let nan = f32::NAN;
    assert_eq!(simd::max(&[]), None);
    assert_eq!(simd::argmax(&[]), None);
    for n in [1, 7, 8, 9, 33] {
        let mut x = noise(n, 5);
        x[n / 2] = 10.0;
        // NaN anywhere is ignored.
        for j in 0..n {
            let mut y = x.clone();
            if j != n / 2 {
                y[j] = nan;
            }
            assert_eq!(simd::max(&y), Some(10.0), "n={n} NaN at {j}");
            assert_eq!(simd::max_wide(&y), Some(10.0), "n={n} NaN at {j}");
            assert_eq!(simd::argmax(&y), Some(n / 2), "n={n} NaN at {j}");
        }
        // All NaN: max is NaN, argmax is 0.
        let all_nan = vec![nan; n];
        assert!(simd::max(&all_nan).unwrap().is_nan(), "n={n}");
        assert!(simd::max_wide(&all_nan).unwrap().is_nan(), "n={n}");
        assert_eq!(simd::argmax(&all_nan), Some(0), "n={n}");
        // NaN and -inf: -inf is a real value and wins.
        let mut y = vec![nan; n];
        y[n - 1] = f32::NEG_INFINITY;
        assert_eq!(simd::max(&y), Some(f32::NEG_INFINITY), "n={n}");
        assert_eq!(simd::argmax(&y), Some(n - 1), "n={n}");
        // +inf wins; ties go to the first index.
        let mut y = x.clone();
        y[n - 1] = f32::INFINITY;
        assert_eq!(simd::max(&y), Some(f32::INFINITY));
        assert_eq!(simd::argmax(&y), Some(n - 1));
        let ties = vec![2.0f32; n];
        assert_eq!(simd::argmax(&ties), Some(0));
    }
}

// ---------------------------------------------------------------- axpy and exp

fn check_axpy(case: &str, a: f32, x: &[f32], y0: &[f32]) {
    let mut want = y0.to_vec();
    simd::axpy_scalar(a, x, &mut want);
    for (path, f) in [("dispatch", simd::axpy as fn(f32, &[f32], &mut [f32])), ("wide", simd::axpy_wide)] {
        let mut got = y0.to_vec();
        f(a, x, &mut got);
        for i in 0..x.len() {
            // One fused vs two separate roundings: 2ε of the larger operand.
            let tol = 2.0 * EPS * ((a as f64 * x[i] as f64).abs() + (y0[i] as f64).abs()) + 1e-45;
            assert!(close(got[i], want[i], tol), "{case}: axpy {path} n={} i={i}: {} vs {}", x.len(), got[i], want[i]);
        }
    }
}

#[test]
fn axpy_matches_scalar_on_adversarial_inputs() {
    for &n in LENGTHS {
        let y = noise(n, 21);
        for (case, x) in inputs(n) {
            for a in [0.0, 1.0, -2.5, 1e-30, 3e8] {
                check_axpy(case, a, &x, &y);
            }
        }
        let mut special = noise(n, 22);
        for (i, v) in special.iter_mut().enumerate() {
            *v = [*v, f32::NAN, f32::INFINITY, f32::NEG_INFINITY][i % 4];
        }
        check_axpy("specials", 2.0, &special, &y);
    }
}

/// Claimed accuracy of the vector `exp` (module doc of `simd::elementwise`): relative error below
/// 2 ulp for normal results; subnormal results within 4·2⁻¹⁴⁹; limits exactly as documented.
#[test]
fn exp_is_accurate_over_the_whole_range() {
    let xs: Vec<f32> = (0..=400_000).map(|i| -104.5 + 193.5 * i as f32 / 400_000.0).collect();
    let mut worst = 0.0f64;
    for (path, f) in [
        ("dispatch", simd::exp_in_place as fn(&mut [f32])),
        ("wide", simd::exp_in_place_wide),
        ("scalar", simd::exp_in_place_scalar),
    ] {
        let mut got = xs.clone();
        f(&mut got);
        for (&x, &g) in xs.iter().zip(&got) {
            let want = (x as f64).exp();
            if want > f32::MAX as f64 {
                assert!(
                    g == f32::INFINITY || g as f64 >= f32::MAX as f64 * (1.0 - 4.0 * EPS),
                    "{path}: exp({x}) = {g}"
                );
            } else if want >= f32::MIN_POSITIVE as f64 {
                let rel = (g as f64 - want).abs() / want;
                worst = worst.max(rel);
                assert!(rel <= 2.0 * EPS, "{path}: exp({x}) = {g} vs {want}: relative error {rel:e}");
            } else {
                let abs = (g as f64 - want).abs();
                assert!(abs <= 4.0 * 2f64.powi(-149), "{path}: exp({x}) = {g} vs {want} (subnormal)");
            }
        }
    }
    assert!(worst > 0.0);
    let mut specials = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1e30, -1e30, 0.0, -0.0, 89.0, -105.0];
    simd::exp_in_place(&mut specials);
    assert!(specials[0].is_nan());
    assert_eq!(&specials[1..], &[f32::INFINITY, 0.0, f32::INFINITY, 0.0, 1.0, 1.0, f32::INFINITY, 0.0]);
}

// ---------------------------------------------------------------- softmax

fn check_softmax(case: &str, x: &[f32]) {
    let n = x.len();
    let mut want = x.to_vec();
    simd::softmax_in_place_scalar(&mut want);
    for (path, f) in [("dispatch", simd::softmax_in_place as fn(&mut [f32])), ("wide", simd::softmax_in_place_wide)] {
        let mut got = x.to_vec();
        f(&mut got);
        for i in 0..n {
            // Each probability is exp (≤ 2 ulp) over a sum of n positive terms ((n+8)ε relative).
            let tol = 2.0 * tol_sum(n, want[i] as f64) + 1e-44;
            assert!(close(got[i], want[i], tol), "{case}: softmax {path} n={n} i={i}: {} vs {}", got[i], want[i]);
        }
        if n > 0 && got.iter().all(|v| v.is_finite()) {
            let s: f64 = got.iter().map(|&v| v as f64).sum();
            assert!((s - 1.0).abs() <= 2.0 * tol_sum(n, 1.0), "{case}: softmax {path} n={n} sums to {s}");
            assert!(got.iter().all(|&v| (0.0..=1.0).contains(&v)), "{case}: softmax {path} out of [0, 1]");
        }
    }
}

#[test]
fn softmax_matches_scalar_and_sums_to_one() {
    for &n in LENGTHS {
        for (case, x) in inputs(n) {
            check_softmax(case, &x);
        }
        let mut with_neg_inf = noise(n, 31);
        for v in with_neg_inf.iter_mut().step_by(3) {
            *v = f32::NEG_INFINITY; // masked logits
        }
        check_softmax("masked", &with_neg_inf);
    }
}

#[test]
fn softmax_is_shift_invariant() {
    for &n in &LENGTHS[1..] {
        let x = noise(n, 41);
        let mut p = x.clone();
        simd::softmax_in_place(&mut p);
        for c in [-50.0f32, 10.0, 1000.0] {
            let mut q: Vec<f32> = x.iter().map(|v| v + c).collect();
            simd::softmax_in_place(&mut q);
            for i in 0..n {
                // Both sides carry the summation bound; shifting rounds each input by ε·|c|,
                // which moves exp by that much relatively (and the sum by as much).
                let tol = (4.0 * tol_sum(n, 1.0) + 4.0 * EPS * c.abs() as f64) * p[i] as f64 + 1e-44;
                assert!(close(q[i], p[i], tol), "n={n} c={c} i={i}: {} vs {}", q[i], p[i]);
            }
        }
    }
}

#[test]
fn softmax_follows_the_non_finite_policy() {
    let mut empty: [f32; 0] = [];
    simd::softmax_in_place(&mut empty);
    for n in [1, 7, 8, 9, 33] {
        let mut all_neg_inf = vec![f32::NEG_INFINITY; n];
        simd::softmax_in_place(&mut all_neg_inf);
        assert!(all_neg_inf.iter().all(|&v| v == 1.0 / n as f32), "n={n}: all -inf gives uniform");

        let mut with_inf = noise(n, 51);
        with_inf[0] = f32::INFINITY;
        with_inf[n - 1] = f32::INFINITY;
        let k = if n == 1 { 1.0 } else { 2.0 };
        let inner = 1..n.saturating_sub(1).max(1);
        for f in [simd::softmax_in_place as fn(&mut [f32]), simd::softmax_in_place_wide, simd::softmax_in_place_scalar]
        {
            let mut y = with_inf.clone();
            f(&mut y);
            assert_eq!(y[0], 1.0 / k, "n={n}: +inf shares the mass");
            assert!(y[inner.clone()].iter().all(|&v| v == 0.0), "n={n}: finite entries get 0 next to +inf");
        }

        let mut with_nan = noise(n, 52);
        with_nan[n / 2] = f32::NAN;
        for f in [simd::softmax_in_place as fn(&mut [f32]), simd::softmax_in_place_wide, simd::softmax_in_place_scalar]
        {
            let mut y = with_nan.clone();
            f(&mut y);
            assert!(y.iter().all(|v| v.is_nan()), "n={n}: NaN poisons the whole row");
        }
    }
    let mut big = [1e30f32, -1e30, 0.0];
    simd::softmax_in_place(&mut big);
    assert_eq!(big, [1.0, 0.0, 0.0]);
}

// ---------------------------------------------------------------- GELU and SiLU

/// f64 references. GPT-2's tanh form `0.5·x·(1 + tanh(u))` is evaluated as the identical
/// `x·σ(2u)` (since `(1 + tanh u)/2 = σ(2u)`), because `1 + tanh(u)` cancels catastrophically
/// even in f64 for `x < −7`; `gelu_tanh_form_agrees` checks the identity where it does not.
fn gelu_ref(x: f64) -> f64 {
    x / (1.0 + (-gelu_z(x)).exp())
}
fn gelu_tanh_form(x: f64) -> f64 {
    0.5 * x * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x)).tanh())
}
fn silu_ref(x: f64) -> f64 {
    x / (1.0 + (-x).exp())
}
/// The sigmoid argument of each activation (its size drives the conditioning).
fn gelu_z(x: f64) -> f64 {
    2.0 * (2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x)
}

type Act = fn(&mut [f32]);

fn check_activation(
    name: &str,
    case: &str,
    x: &[f32],
    paths: [(&str, Act); 3],
    reference: fn(f64) -> f64,
    z: fn(f64) -> f64,
) {
    for (path, f) in paths {
        let mut got = x.to_vec();
        f(&mut got);
        for (&v, &g) in x.iter().zip(&got) {
            let want = reference(v as f64);
            if !v.is_finite() || !want.is_finite() || (v as f64).abs() > 1e6 {
                continue; // non-finite and huge inputs are checked against the documented values below
            }
            // x·σ(z): z is computed in f32 (a few ε·|z| absolute), and σ's relative sensitivity to z
            // is below 1, so the relative error is about ε·(8 + 2|z|); plus an absolute
            // `f32::MIN_POSITIVE` where the result is subnormal.
            let tol = EPS * (8.0 + 2.0 * z(v as f64).abs()) * want.abs() + f32::MIN_POSITIVE as f64;
            assert!((g as f64 - want).abs() <= tol, "{case}: {name} {path} n={} x={v}: {g} vs {want}", x.len());
        }
    }
}

const GELU: [(&str, Act); 3] =
    [("dispatch", simd::gelu_in_place), ("wide", simd::gelu_in_place_wide), ("scalar", simd::gelu_in_place_scalar)];
const SILU: [(&str, Act); 3] =
    [("dispatch", simd::silu_in_place), ("wide", simd::silu_in_place_wide), ("scalar", simd::silu_in_place_scalar)];

#[test]
fn gelu_and_silu_match_references() {
    for &n in LENGTHS {
        for (case, x) in inputs(n) {
            check_activation("gelu", case, &x, GELU, gelu_ref, gelu_z);
            check_activation("silu", case, &x, SILU, silu_ref, |x| x);
        }
        let wide_range: Vec<f32> = noise(n, 61).iter().map(|v| v * 120.0).collect();
        check_activation("gelu", "±120", &wide_range, GELU, gelu_ref, gelu_z);
        check_activation("silu", "±120", &wide_range, SILU, silu_ref, |x| x);
    }
    let sweep: Vec<f32> = (0..=20_000).map(|i| -110.0 + 220.0 * i as f32 / 20_000.0).collect();
    check_activation("gelu", "sweep", &sweep, GELU, gelu_ref, gelu_z);
    check_activation("silu", "sweep", &sweep, SILU, silu_ref, |x| x);
}

#[test]
fn gelu_tanh_form_agrees() {
    for i in 0..=1000 {
        let x = -3.0 + 13.0 * i as f64 / 1000.0;
        let (a, b) = (gelu_ref(x), gelu_tanh_form(x));
        assert!((a - b).abs() <= 1e-14 * (1.0 + x.abs()), "x={x}: {a} vs {b}");
        let mut v = [x as f32];
        simd::gelu_in_place(&mut v);
        assert!((v[0] as f64 - b).abs() <= 1e-6 * (1.0 + x.abs()), "x={x}: {} vs tanh form {b}", v[0]);
    }
    // Reference values of GELU (tanh approximation).
    let mut v = [1.0f32, -1.0, 2.0];
    simd::gelu_in_place(&mut v);
    for (got, want) in v.iter().zip([0.841_192, -0.158_808, 1.954_598]) {
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    }
}

#[test]
fn gelu_and_silu_follow_the_non_finite_policy() {
    for (_, f) in GELU.into_iter().chain(SILU) {
        let mut x = [f32::NEG_INFINITY, f32::INFINITY, f32::NAN, 1e30, -1e30, 0.0, f32::NEG_INFINITY, 1.0, 2.0];
        f(&mut x);
        assert!(x[0] == 0.0 && x[0].is_sign_negative(), "f(-inf) = -0, got {}", x[0]);
        assert_eq!(x[1], f32::INFINITY);
        assert!(x[2].is_nan());
        assert_eq!(x[3], 1e30);
        assert!(x[4] == 0.0, "f(-1e30) = 0, got {}", x[4]);
        assert_eq!(x[5], 0.0);
        assert!(x[6] == 0.0 && x[6].is_sign_negative());
    }
}

// ---------------------------------------------------------------- RMSNorm and LayerNorm

type Norm = fn(&[f32], &[f32], f32, &mut [f32]);
type LayerNorm = fn(&[f32], &[f32], &[f32], f32, &mut [f32]);

fn check_norms(case: &str, x: &[f32], eps: f32) {
    let n = x.len();
    let w: Vec<f32> = noise(n, 71).iter().map(|v| 1.0 + v).collect();
    let b = noise(n, 72);

    let mut want = vec![0.0f32; n];
    simd::rms_norm_scalar(x, &w, eps, &mut want);
    for (path, f) in [("dispatch", simd::rms_norm as Norm), ("wide", simd::rms_norm_wide)] {
        let mut got = vec![0.0f32; n];
        f(x, &w, eps, &mut got);
        for i in 0..n {
            // f32 sum of squares ((n+8)ε relative) under a square root, plus 4 roundings.
            let tol = (tol_sum(n, 1.0) + 8.0 * EPS) * want[i].abs() as f64 + 1e-44;
            assert!(close(got[i], want[i], tol), "{case}: rms_norm {path} n={n} i={i}: {} vs {}", got[i], want[i]);
        }
    }

    let mut want = vec![0.0f32; n];
    simd::layer_norm_scalar(x, &w, &b, eps, &mut want);
    let mu = x.iter().map(|&v| v as f64).sum::<f64>() / n.max(1) as f64;
    let var = x.iter().map(|&v| (v as f64 - mu).powi(2)).sum::<f64>() / n.max(1) as f64;
    let inv = 1.0 / (var + eps as f64).sqrt();
    for (path, f) in [("dispatch", simd::layer_norm as LayerNorm), ("wide", simd::layer_norm_wide)] {
        let mut got = vec![0.0f32; n];
        f(x, &w, &b, eps, &mut got);
        for i in 0..n {
            // The f32 mean is off by up to (n+8)ε·mean|x|, which shifts x_i − μ; the f32 variance
            // adds (n+8)ε relative on top; plus roundings of the scale and the bias.
            let mean_abs = x.iter().map(|&v| (v as f64).abs()).sum::<f64>() / n as f64;
            let centred = (x[i] as f64 - mu).abs() + 4.0 * tol_sum(n, mean_abs) + 4.0 * EPS * (x[i] as f64).abs();
            let tol = (centred * (1.0 + 4.0 * tol_sum(n, 1.0)) - (x[i] as f64 - mu).abs()) * inv * w[i].abs() as f64
                + 8.0 * EPS * (((x[i] as f64 - mu).abs() * inv * w[i].abs() as f64) + b[i].abs() as f64)
                + 1e-44;
            assert!(close(got[i], want[i], tol), "{case}: layer_norm {path} n={n} i={i}: {} vs {}", got[i], want[i]);
        }
    }
}

#[test]
fn norms_match_scalar_on_adversarial_inputs() {
    for &n in LENGTHS {
        for (case, x) in inputs(n) {
            for eps in [0.0, 1e-6, 1e-5] {
                check_norms(case, &x, eps);
            }
        }
    }
}

#[test]
fn rms_norm_gives_unit_mean_square_and_layer_norm_standardises() {
    for &n in &LENGTHS[1..] {
        let ones = vec![1.0f32; n];
        let zeros = vec![0.0f32; n];
        for (case, x) in inputs(n) {
            if matches!(case, "constant" | "zeros" | "one-hot") {
                continue; // degenerate variance; covered against the scalar twin
            }
            // Tolerance: (n+8)ε for each f32 sum involved, a few ε for each element.
            let tol = 8.0 * tol_sum(n, 1.0);
            for (path, f) in [("dispatch", simd::rms_norm as Norm), ("wide", simd::rms_norm_wide)] {
                let mut out = vec![0.0f32; n];
                f(&x, &ones, 0.0, &mut out);
                let ms = out.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / n as f64;
                assert!((ms - 1.0).abs() <= tol, "{case}: rms_norm {path} n={n}: mean square {ms}");
            }
            if n == 1 {
                continue; // a single element has zero variance
            }
            for (path, f) in [("dispatch", simd::layer_norm as LayerNorm), ("wide", simd::layer_norm_wide)] {
                let mut out = vec![0.0f32; n];
                f(&x, &ones, &zeros, 0.0, &mut out);
                let m = out.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
                let v = out.iter().map(|&v| (v as f64 - m).powi(2)).sum::<f64>() / n as f64;
                // The "shifted" case (|μ| = 100σ) loses ~log2(100/σ) bits when centring in f32.
                let centring = if case == "shifted" { 400.0 * EPS } else { 0.0 };
                assert!(m.abs() <= tol + centring, "{case}: layer_norm {path} n={n}: mean {m}");
                assert!((v - 1.0).abs() <= tol + 2.0 * centring, "{case}: layer_norm {path} n={n}: variance {v}");
            }
        }
    }
}

#[test]
fn length_mismatches_panic_as_documented() {
    let cases: [(&str, fn()); 4] = [
        ("axpy", || simd::axpy(1.0, &[1.0, 2.0, 3.0], &mut [0.0; 2])),
        ("rms_norm weight", || simd::rms_norm(&[1.0; 3], &[1.0; 2], 1e-6, &mut [0.0; 3])),
        ("rms_norm out", || simd::rms_norm(&[1.0; 3], &[1.0; 3], 1e-6, &mut [0.0; 4])),
        ("layer_norm bias", || simd::layer_norm(&[1.0; 3], &[1.0; 3], &[0.0; 4], 1e-6, &mut [0.0; 3])),
    ];
    for (name, f) in cases {
        assert!(std::panic::catch_unwind(f).is_err(), "{name} must panic");
    }
    // Matching lengths, including empty, are fine.
    let mut y = [0.0f32; 3];
    simd::axpy(1.0, &[1.0, 2.0, 3.0], &mut y);
    assert_eq!(y, [1.0, 2.0, 3.0]);
    simd::rms_norm(&[], &[], 1e-6, &mut []);
    simd::layer_norm(&[], &[], &[], 1e-6, &mut []);
}

// ---------------------------------------------------------------- random inputs

fn vector(range: std::ops::Range<f32>) -> impl Strategy<Value = Vec<f32>> {
    let len = prop_oneof![proptest::sample::select(LENGTHS), 0usize..300];
    len.prop_flat_map(move |n| proptest::collection::vec(range.clone(), n))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn reductions_and_axpy_match_scalar_on_random_inputs(x in vector(-1e3..1e3), a in -10f32..10.0) {
        check_reductions("proptest", &x);
        let y: Vec<f32> = x.iter().rev().copied().collect();
        check_axpy("proptest", a, &x, &y);
    }

    #[test]
    fn softmax_and_norms_match_scalar_on_random_inputs(x in vector(-30.0..30.0)) {
        check_softmax("proptest", &x);
        check_norms("proptest", &x, 1e-5);
    }

    #[test]
    fn activations_match_references_on_random_inputs(x in vector(-40.0..40.0)) {
        check_activation("gelu", "proptest", &x, GELU, gelu_ref, gelu_z);
        check_activation("silu", "proptest", &x, SILU, silu_ref, |x| x);
    }
}
