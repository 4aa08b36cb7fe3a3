//! Low-precision and per-level kernels of `kernels::simd` against their scalar twins: f32, f16 and
//! bf16 distances (every dispatch level, within a summation-order tolerance), i8 distances
//! (exactly equal), and the f16/bf16 → f32 conversions (bit-exact with `half`, exhaustively).

use half::{bf16, f16};
use kernels::simd::{self, Level};
use proptest::prelude::*;

/// Every level; the `*_at` functions clamp to what the CPU has, so all are safe to ask for.
const LEVELS: [Level; 4] = [Level::Scalar, Level::Portable, Level::Avx2, Level::Avx512];

/// Lengths around every vector width (8, 16, 32, 64 lanes) and unroll boundary, plus embedding sizes.
const LENGTHS: &[usize] = &[0, 1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 191, 384, 1536];

/// Summation-order error bound for a sum of `n` terms whose magnitudes sum to `mag`: any order of
/// an f32 sum is within `(n − 1)·ε·Σ|t_i|` of the exact value, so two orders are within twice
/// that; `(n + 4)·ε` covers it plus the final reduction, and `1e-30` absorbs underflow.
fn tolerance(n: usize, mag: f64) -> f64 {
    2.0 * (n as f64 + 4.0) * f32::EPSILON as f64 * mag + 1e-30
}

/// Within `tol`, or the same non-finite value (NaN matches NaN, ±inf must match exactly).
fn close(got: f32, want: f32, tol: f64) -> bool {
    if !want.is_finite() {
        return got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan());
    }
    (got as f64 - want as f64).abs() <= tol
}

/// The kernels of one float element type, as plain function pointers.
struct Floats<T> {
    name: &'static str,
    widen: fn(T) -> f32,
    dot: fn(&[T], &[T]) -> f32,
    dot_at: fn(Level, &[T], &[T]) -> f32,
    dot_scalar: fn(&[T], &[T]) -> f32,
    l2: fn(&[T], &[T]) -> f32,
    l2_at: fn(Level, &[T], &[T]) -> f32,
    l2_scalar: fn(&[T], &[T]) -> f32,
    cos: fn(&[T], &[T]) -> f32,
    cos_at: fn(Level, &[T], &[T]) -> f32,
    cos_scalar: fn(&[T], &[T]) -> f32,
}

const F32: Floats<f32> = Floats {
    name: "f32",
    widen: |x| x,
    dot: simd::dot,
    dot_at: simd::dot_at,
    dot_scalar: simd::dot_scalar,
    l2: simd::l2_sq,
    l2_at: simd::l2_sq_at,
    l2_scalar: simd::l2_sq_scalar,
    cos: simd::cosine,
    cos_at: simd::cosine_at,
    cos_scalar: simd::cosine_scalar,
};

const F16: Floats<f16> = Floats {
    name: "f16",
    widen: f16::to_f32,
    dot: simd::dot_f16,
    dot_at: simd::dot_f16_at,
    dot_scalar: simd::dot_f16_scalar,
    l2: simd::l2_sq_f16,
    l2_at: simd::l2_sq_f16_at,
    l2_scalar: simd::l2_sq_f16_scalar,
    cos: simd::cosine_f16,
    cos_at: simd::cosine_f16_at,
    cos_scalar: simd::cosine_f16_scalar,
};

const BF16: Floats<bf16> = Floats {
    name: "bf16",
    widen: bf16::to_f32,
    dot: simd::dot_bf16,
    dot_at: simd::dot_bf16_at,
    dot_scalar: simd::dot_bf16_scalar,
    l2: simd::l2_sq_bf16,
    l2_at: simd::l2_sq_bf16_at,
    l2_scalar: simd::l2_sq_bf16_scalar,
    cos: simd::cosine_bf16,
    cos_at: simd::cosine_bf16_at,
    cos_scalar: simd::cosine_bf16_scalar,
};

/// Every level of every distance of `k` against the scalar twin on one pair.
///
/// Tolerances: dot and L2 within [`tolerance`] of the twin (L2 adds `4ε·(|a|² + |b|²)` for the
/// difference rounded before squaring, as in `simd.rs`); cosine within `1e-5 + 4·tolerance(n, 1)`
/// and in `[-1.0001, 1.0001]`, exactly 0 against an all-zero vector. Non-finite results must match.
fn check<T: Copy>(k: &Floats<T>, case: &str, a: &[T], b: &[T]) {
    let n = a.len();
    let (x, y): (Vec<f64>, Vec<f64>) =
        a.iter().zip(b).map(|(&p, &q)| ((k.widen)(p) as f64, (k.widen)(q) as f64)).unzip();
    let mag_ab: f64 = x.iter().zip(&y).map(|(p, q)| (p * q).abs()).sum();
    let mag_l2: f64 = x.iter().zip(&y).map(|(p, q)| (p - q).powi(2)).sum();
    let mag_aa: f64 = x.iter().map(|p| p * p).sum();
    let mag_bb: f64 = y.iter().map(|q| q * q).sum();
    let t = k.name;

    let want = (k.dot_scalar)(a, b);
    for level in LEVELS {
        let got = (k.dot_at)(level, a, b);
        assert!(close(got, want, tolerance(n, mag_ab)), "{t} {case}: dot {level:?} n={n}: {got} vs scalar {want}");
    }
    assert_eq!((k.dot)(a, b).to_bits(), (k.dot_at)(simd::level(), a, b).to_bits(), "{t} {case}: dot dispatch");

    let want = (k.l2_scalar)(a, b);
    let tol = tolerance(n, mag_l2) + 4.0 * f32::EPSILON as f64 * (mag_aa + mag_bb);
    for level in LEVELS {
        let got = (k.l2_at)(level, a, b);
        assert!(close(got, want, tol), "{t} {case}: l2_sq {level:?} n={n}: {got} vs scalar {want}");
    }
    assert_eq!((k.l2)(a, b).to_bits(), (k.l2_at)(simd::level(), a, b).to_bits(), "{t} {case}: l2 dispatch");

    let want = (k.cos_scalar)(a, b);
    for level in LEVELS {
        let got = (k.cos_at)(level, a, b);
        assert!(
            close(got, want, 1e-5 + 4.0 * tolerance(n, 1.0)),
            "{t} {case}: cosine {level:?} n={n}: {got} vs {want}"
        );
        if want.is_finite() && mag_aa.is_finite() && mag_bb.is_finite() {
            assert!((-1.0001..=1.0001).contains(&got), "{t} {case}: cosine {level:?} out of range n={n}: {got}");
        }
        if mag_aa == 0.0 || mag_bb == 0.0 {
            assert_eq!(got, 0.0, "{t} {case}: cosine {level:?} with a zero vector must be 0");
        }
    }
    assert_eq!((k.cos)(a, b).to_bits(), (k.cos_at)(simd::level(), a, b).to_bits(), "{t} {case}: cosine dispatch");
}

fn noise(n: usize, seed: u64) -> Vec<f32> {
    datasets::vectors::uniform(n, seed)
}

/// Named adversarial f32 pairs of length `n`; `to` rounds them to the element type.
fn float_cases<T: Copy>(n: usize, to: fn(f32) -> T) -> Vec<(&'static str, Vec<T>, Vec<T>)> {
    let a = noise(n, 1);
    let b = noise(n, 2);
    let map = |v: &[f32], f: &dyn Fn(usize, f32) -> f32| v.iter().enumerate().map(|(i, &x)| to(f(i, x))).collect();
    let conv = |v: &[f32]| v.iter().map(|&x| to(x)).collect::<Vec<T>>();
    let zeros = vec![to(0.0); n];
    let mut one_hot = vec![to(0.0); n];
    if let Some(last) = one_hot.last_mut() {
        *last = to(3.0);
    }
    let at_end = |special: f32| map(&a, &move |i, x| if i + 1 == n { special } else { x });
    vec![
        ("random", conv(&a), conv(&b)),
        ("identical", conv(&a), conv(&a)),
        ("zeros vs random", zeros.clone(), conv(&b)),
        ("random vs zeros", conv(&a), zeros.clone()),
        ("zeros vs zeros", zeros.clone(), zeros),
        ("large magnitudes", map(&a, &|_, x| x * 1e4), map(&b, &|_, x| x * 1e4)),
        (
            "cancellation",
            map(&a, &|i, _| if i % 2 == 0 { 1e3 } else { -1e-3 }),
            map(&a, &|i, _| if i % 2 == 0 { 1e3 } else { -1e3 }),
        ),
        ("one-hot vs random", one_hot, conv(&b)),
        ("negated", conv(&a), map(&a, &|_, x| -x)),
        ("NaN in the tail", at_end(f32::NAN), conv(&b)),
        ("NaN first", map(&a, &|i, x| if i == 0 { f32::NAN } else { x }), conv(&b)),
        ("+inf in the tail", at_end(f32::INFINITY), conv(&b)),
        ("-inf vs +inf", at_end(f32::NEG_INFINITY), map(&b, &|i, x| if i + 1 == n { f32::INFINITY } else { x })),
    ]
}

/// f16 subnormals (6e-8 .. 6e-5) and bf16/f32 subnormals (below 1.2e-38), cycling through the
/// bit patterns, plus a mixed normal/subnormal pair.
/// One pair of vectors of each float type.
type Pairs = ((Vec<f16>, Vec<f16>), (Vec<bf16>, Vec<bf16>), (Vec<f32>, Vec<f32>));

fn subnormal_cases(n: usize) -> Pairs {
    let h = |i: usize, s: u16| {
        f16::from_bits(((i as u16).wrapping_mul(37).wrapping_add(s) % 0x3FF + 1) | ((i as u16 & 1) << 15))
    };
    let bh = |i: usize, s: u16| {
        bf16::from_bits(((i as u16).wrapping_mul(29).wrapping_add(s) % 0x7F + 1) | ((i as u16 & 2) << 14))
    };
    let f = |i: usize, s: u32| f32::from_bits((i as u32).wrapping_mul(7919).wrapping_add(s) % 0x7F_FFFF + 1);
    (
        (
            (0..n).map(|i| h(i, 3)).collect(),
            (0..n).map(|i| if i % 3 == 0 { f16::from_f32(0.75) } else { h(i, 11) }).collect(),
        ),
        ((0..n).map(|i| bh(i, 5)).collect(), (0..n).map(|i| bh(i, 9)).collect()),
        ((0..n).map(|i| f(i, 1)).collect(), (0..n).map(|i| if i % 2 == 0 { 1e-20 } else { f(i, 5) }).collect()),
    )
}

#[test]
fn float_kernels_match_scalar_at_every_level() {
    for &n in LENGTHS {
        for (case, a, b) in float_cases(n, |x| x) {
            check(&F32, case, &a, &b);
        }
        for (case, a, b) in float_cases(n, f16::from_f32) {
            check(&F16, case, &a, &b);
        }
        for (case, a, b) in float_cases(n, bf16::from_f32) {
            check(&BF16, case, &a, &b);
        }
        let ((h1, h2), (b1, b2), (f1, f2)) = subnormal_cases(n);
        check(&F16, "f16 subnormals", &h1, &h2);
        check(&BF16, "bf16 subnormals", &b1, &b2);
        check(&F32, "f32 subnormals", &f1, &f2);
    }
}

#[test]
fn half_kernels_equal_f32_kernels_on_widened_vectors() {
    // Widening is exact, so the f16 scalar twin is the f32 scalar twin of the widened vectors.
    for &n in LENGTHS {
        let a: Vec<f16> = noise(n, 5).iter().map(|&x| f16::from_f32(x)).collect();
        let b: Vec<f16> = noise(n, 6).iter().map(|&x| f16::from_f32(x)).collect();
        let (mut wa, mut wb) = (vec![0.0; n], vec![0.0; n]);
        simd::f16_to_f32(&a, &mut wa);
        simd::f16_to_f32(&b, &mut wb);
        assert_eq!(simd::dot_f16_scalar(&a, &b).to_bits(), simd::dot_scalar(&wa, &wb).to_bits());
        assert_eq!(simd::l2_sq_f16_scalar(&a, &b).to_bits(), simd::l2_sq_scalar(&wa, &wb).to_bits());
        assert_eq!(simd::cosine_f16_scalar(&a, &b).to_bits(), simd::cosine_scalar(&wa, &wb).to_bits());
    }
}

/// Every level of every i8 kernel must equal the scalar twin exactly.
fn check_i8(case: &str, a: &[i8], b: &[i8]) {
    let n = a.len();
    let (dot, l2, cos) = (simd::dot_i8_scalar(a, b), simd::l2_sq_i8_scalar(a, b), simd::cosine_i8_scalar(a, b));
    for level in LEVELS {
        assert_eq!(simd::dot_i8_at(level, a, b), dot, "{case}: dot_i8 {level:?} n={n}");
        assert_eq!(simd::l2_sq_i8_at(level, a, b), l2, "{case}: l2_sq_i8 {level:?} n={n}");
        assert_eq!(simd::cosine_i8_at(level, a, b).to_bits(), cos.to_bits(), "{case}: cosine_i8 {level:?} n={n}");
    }
    assert_eq!(simd::dot_i8(a, b), dot, "{case}: dot_i8 dispatch n={n}");
    assert_eq!(simd::l2_sq_i8(a, b), l2, "{case}: l2_sq_i8 dispatch n={n}");
    assert_eq!(simd::cosine_i8(a, b).to_bits(), cos.to_bits(), "{case}: cosine_i8 dispatch n={n}");
    assert!((-1.0..=1.0).contains(&cos), "{case}: cosine_i8 {cos}");
}

fn i8_noise(n: usize, seed: u64) -> Vec<i8> {
    noise(n, seed).iter().map(|&x| (x * 128.0).floor().clamp(-128.0, 127.0) as i8).collect()
}

#[test]
fn i8_kernels_equal_scalar_exactly() {
    let block = simd::I8_BLOCK;
    let long = [block - 1, block, block + 1, block + 77, 2 * block + 5];
    for &n in LENGTHS.iter().chain(&long) {
        let (a, b) = (i8_noise(n, 1), i8_noise(n, 2));
        let min = vec![i8::MIN; n];
        let max = vec![i8::MAX; n];
        let alt: Vec<i8> = (0..n).map(|i| if i % 2 == 0 { i8::MIN } else { i8::MAX }).collect();
        let zeros = vec![0i8; n];
        let cases: [(&str, &[i8], &[i8]); 9] = [
            ("random", &a, &b),
            ("identical", &a, &a),
            ("-128 vs -128", &min, &min),
            ("-128 vs 127", &min, &max),
            ("127 vs 127", &max, &max),
            ("alternating vs -128", &alt, &min),
            ("zeros vs random", &zeros, &b),
            ("random vs zeros", &a, &zeros),
            ("zeros vs zeros", &zeros, &zeros),
        ];
        for (case, x, y) in cases {
            check_i8(case, x, y);
        }
    }
}

#[test]
fn i8_results_beyond_i32_are_exact() {
    // 200 000 · 128² > 2³¹ and 40 000 · 255² > 2³¹: only the i64 block sums get these right.
    let n = 200_000;
    let min = vec![i8::MIN; n];
    assert_eq!(simd::dot_i8(&min, &min), n as i64 * 16_384);
    let max = vec![i8::MAX; 40_000];
    assert_eq!(simd::l2_sq_i8(&min[..40_000], &max), 40_000 * 65_025);
    check_i8("long extremes", &min[..40_000], &max);
    assert_eq!(simd::cosine_i8(&min, &min), 1.0);
    assert_eq!(simd::cosine_i8(&min[..40_000], &max), -1.0);
}

#[test]
fn conversions_are_bit_exact_with_half_on_every_pattern() {
    let all16: Vec<u16> = (0..=u16::MAX).collect();
    let halves: Vec<f16> = all16.iter().map(|&b| f16::from_bits(b)).collect();
    let brains: Vec<bf16> = all16.iter().map(|&b| bf16::from_bits(b)).collect();
    for level in LEVELS {
        // Odd offsets and lengths exercise the unaligned head and every tail length.
        for (start, len) in [(0, halves.len()), (1, 1000), (3, 17), (5, 0), (7, 15), (65_530, 6)] {
            let src = &halves[start..start + len];
            let mut got = vec![0.0f32; len];
            simd::f16_to_f32_at(level, src, &mut got);
            for (s, g) in src.iter().zip(&got) {
                assert_eq!(g.to_bits(), s.to_f32().to_bits(), "f16 {:#06x} at {level:?}", s.to_bits());
            }
            let src = &brains[start..start + len];
            simd::bf16_to_f32_at(level, src, &mut got);
            for (s, g) in src.iter().zip(&got) {
                assert_eq!(g.to_bits(), s.to_f32().to_bits(), "bf16 {:#06x} at {level:?}", s.to_bits());
            }
        }
    }
    let mut out = vec![0.0f32; 3];
    simd::f16_to_f32(&halves[..3], &mut out);
    simd::f16_to_f32_scalar(&halves[..3], &mut out);
    simd::bf16_to_f32(&brains[..3], &mut out);
    simd::bf16_to_f32_scalar(&brains[..3], &mut out);
}

#[test]
fn widened_halves_feed_the_f32_ops() {
    // The point of the conversions: the f32 vector ops run on half-precision storage.
    let x: Vec<bf16> = noise(100, 9).iter().map(|&v| bf16::from_f32(v * 4.0)).collect();
    let mut w = vec![0.0; x.len()];
    simd::bf16_to_f32(&x, &mut w);
    let m = simd::max(&w).unwrap();
    assert_eq!(m, x.iter().map(|v| v.to_f32()).fold(f32::NEG_INFINITY, f32::max));
    simd::softmax_in_place(&mut w);
    assert!((simd::sum(&w) - 1.0).abs() < 1e-5);
}

#[test]
fn levels_are_ordered_and_clamped() {
    let best = simd::level();
    assert!(best >= Level::Portable, "{best:?}");
    for level in LEVELS {
        assert_eq!(level.supported(), level.min(best));
    }
    assert_eq!(simd::level(), best, "the cached level is stable");
    assert!(!simd::active_path().is_empty());
}

fn float_pair() -> impl Strategy<Value = (Vec<f32>, Vec<f32>)> {
    (0usize..300)
        .prop_flat_map(|n| (proptest::collection::vec(-1e3f32..1e3, n), proptest::collection::vec(-1e3f32..1e3, n)))
}

fn i8_pair() -> impl Strategy<Value = (Vec<i8>, Vec<i8>)> {
    (0usize..600)
        .prop_flat_map(|n| (proptest::collection::vec(any::<i8>(), n), proptest::collection::vec(any::<i8>(), n)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn float_kernels_match_scalar_on_random_inputs((a, b) in float_pair()) {
        check(&F32, "proptest", &a, &b);
        let h = |v: &[f32]| v.iter().map(|&x| f16::from_f32(x / 16.0)).collect::<Vec<_>>();
        check(&F16, "proptest", &h(&a), &h(&b));
        let bh = |v: &[f32]| v.iter().map(|&x| bf16::from_f32(x)).collect::<Vec<_>>();
        check(&BF16, "proptest", &bh(&a), &bh(&b));
    }

    #[test]
    fn i8_kernels_match_scalar_on_random_inputs((a, b) in i8_pair()) {
        check_i8("proptest", &a, &b);
    }
}
