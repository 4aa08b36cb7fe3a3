//! SIMD distance kernels (runtime dispatch and the portable `wide` path) against their scalar twins.

use kernels::simd::{self, Metric};
use proptest::prelude::*;

/// Lengths around every vector width and unroll boundary, plus a real embedding size.
const LENGTHS: &[usize] = &[0, 1, 7, 8, 9, 15, 16, 17, 31, 33, 127, 128, 129, 1536];

/// Summation-order error bound for a sum of `n` terms whose magnitudes sum to `mag`.
fn tolerance(n: usize, mag: f64) -> f64 {
    (n as f64 + 4.0) * f32::EPSILON as f64 * mag + 1e-30
}

fn close(got: f32, want: f32, tol: f64) -> bool {
    (got as f64 - want as f64).abs() <= tol || (got.is_nan() && want.is_nan())
}

/// Checks every fast path of every kernel against the scalar twin on one pair.
fn check(case: &str, a: &[f32], b: &[f32]) {
    let n = a.len();
    let mag_ab: f64 = a.iter().zip(b).map(|(x, y)| (*x as f64 * *y as f64).abs()).sum();
    let mag_l2: f64 = a.iter().zip(b).map(|(x, y)| (*x as f64 - *y as f64).powi(2)).sum();
    let mag_aa: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum();
    let mag_bb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum();

    let want = simd::dot_scalar(a, b);
    for (path, got) in [("dispatch", simd::dot(a, b)), ("wide", simd::dot_wide(a, b))] {
        assert!(close(got, want, tolerance(n, mag_ab)), "{case}: dot {path} n={n}: {got} vs scalar {want}");
    }
    let want = simd::l2_sq_scalar(a, b);
    // Differences are rounded once before squaring: allow for that too.
    let tol = tolerance(n, mag_l2) + 4.0 * f32::EPSILON as f64 * (mag_aa + mag_bb);
    for (path, got) in [("dispatch", simd::l2_sq(a, b)), ("wide", simd::l2_sq_wide(a, b))] {
        assert!(close(got, want, tol), "{case}: l2_sq {path} n={n}: {got} vs scalar {want}");
    }
    let (ab, aa, bb) = simd::dot_norms_wide(a, b);
    assert!(close(ab, simd::dot_scalar(a, b), tolerance(n, mag_ab)), "{case}: dot_norms_wide a.b n={n}");
    assert!(close(aa, simd::dot_scalar(a, a), tolerance(n, mag_aa)), "{case}: dot_norms_wide |a|² n={n}");
    assert!(close(bb, simd::dot_scalar(b, b), tolerance(n, mag_bb)), "{case}: dot_norms_wide |b|² n={n}");

    let want = simd::cosine_scalar(a, b);
    let got = simd::cosine(a, b);
    assert!(close(got, want, 1e-5 + tolerance(n, 1.0) * 4.0), "{case}: cosine n={n}: {got} vs scalar {want}");
    assert!((-1.0001..=1.0001).contains(&got), "{case}: cosine out of range n={n}: {got}");
    if mag_aa == 0.0 || mag_bb == 0.0 {
        assert_eq!(got, 0.0, "{case}: cosine with a zero vector must be 0");
    }

    // Metric::distance is the kernel under its "smaller is nearer" convention.
    assert_eq!(Metric::L2.distance(a, b), simd::l2_sq(a, b), "{case}");
    assert_eq!(Metric::Dot.distance(a, b), -simd::dot(a, b), "{case}");
    assert_eq!(Metric::Cosine.distance(a, b), 1.0 - simd::cosine(a, b), "{case}");
}

/// Deterministic pseudo-random floats in [-1, 1) (no dependency on the generator crate).
fn noise(n: usize, seed: u64) -> Vec<f32> {
    datasets::vectors::uniform(n, seed)
}

#[test]
fn kernels_match_scalar_on_adversarial_inputs() {
    for &n in LENGTHS {
        let a = noise(n, 1);
        let b = noise(n, 2);
        let zeros = vec![0.0f32; n];
        let big_a: Vec<f32> = a.iter().map(|x| x * 1e6).collect();
        let big_b: Vec<f32> = b.iter().map(|x| x * 1e6).collect();
        // Alternating huge and tiny terms: heavy cancellation.
        let mixed: Vec<f32> = (0..n).map(|i| if i % 2 == 0 { 1e6 } else { -1e-6 }).collect();
        let alternating: Vec<f32> = (0..n).map(|i| if i % 2 == 0 { 1e6 } else { -1e6 }).collect();
        let tiny: Vec<f32> = a.iter().map(|x| x * 1e-20).collect();
        let mut one_hot = vec![0.0f32; n];
        if let Some(last) = one_hot.last_mut() {
            *last = 3.0;
        }
        let cases: [(&str, &[f32], &[f32]); 10] = [
            ("random", &a, &b),
            ("identical", &a, &a),
            ("zeros vs random", &zeros, &b),
            ("random vs zeros", &a, &zeros),
            ("zeros vs zeros", &zeros, &zeros),
            ("large magnitudes", &big_a, &big_b),
            ("cancellation", &mixed, &alternating),
            ("tiny (subnormal products)", &tiny, &tiny),
            ("one-hot vs random", &one_hot, &b),
            ("negated", &a, &big_a.iter().map(|x| -x).collect::<Vec<_>>()),
        ];
        for (case, x, y) in cases {
            check(case, x, y);
        }
    }
}

#[test]
fn cosine_of_parallel_and_opposite_vectors() {
    for &n in &LENGTHS[1..] {
        let a = noise(n, 3);
        let scaled: Vec<f32> = a.iter().map(|x| x * 7.5).collect();
        let opposite: Vec<f32> = a.iter().map(|x| -x).collect();
        assert!((simd::cosine(&a, &scaled) - 1.0).abs() < 1e-5, "n={n}");
        assert!((simd::cosine(&a, &opposite) + 1.0).abs() < 1e-5, "n={n}");
        assert!(Metric::Cosine.distance(&a, &scaled).abs() < 1e-5, "n={n}");
    }
}

#[test]
fn checked_distance_rejects_mismatched_lengths() {
    let err = Metric::L2.checked(&[1.0, 2.0], &[1.0]).unwrap_err();
    assert!(matches!(err, kernels::Error::DimensionMismatch { expected: 2, got: 1 }), "{err}");
    assert_eq!(Metric::L2.checked(&[1.0, 2.0], &[1.0, 0.0]).unwrap(), 4.0);
    assert!(!simd::active_path().is_empty());
}

fn pair() -> impl Strategy<Value = (Vec<f32>, Vec<f32>)> {
    let len = prop_oneof![proptest::sample::select(LENGTHS), 0usize..300];
    len.prop_flat_map(|n| (proptest::collection::vec(-1e3f32..1e3, n), proptest::collection::vec(-1e3f32..1e3, n)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn kernels_match_scalar_on_random_inputs((a, b) in pair()) {
        check("proptest", &a, &b);
    }
}

/// Each entry of the distance matrices is the per-pair distance of the (widened) vectors, bit for bit:
/// one and several blocks of base vectors, tails of every width, all three metrics and input types.
#[test]
fn cdist_entries_are_the_pairwise_distances() {
    use half::{bf16, f16};
    for d in [1, 7, 16, 100, 384] {
        // Seven queries: one group of four (the four-row kernels on AVX-512) and three single ones.
        let (nq, nb) = (7, 16 * 1024 / (4 * d) + 5);
        let (q, b) = (noise(nq * d, 11), noise(nb * d, 12));
        let (qh, bh): (Vec<f16>, Vec<f16>) =
            (q.iter().map(|&x| f16::from_f32(x)).collect(), b.iter().map(|&x| f16::from_f32(x)).collect());
        let (qb, bb): (Vec<bf16>, Vec<bf16>) =
            (q.iter().map(|&x| bf16::from_f32(x)).collect(), b.iter().map(|&x| bf16::from_f32(x)).collect());
        let wide_h = |v: &[f16]| v.iter().map(|x| x.to_f32()).collect::<Vec<f32>>();
        let wide_b = |v: &[bf16]| v.iter().map(|x| x.to_f32()).collect::<Vec<f32>>();
        let (qh32, bh32, qb32, bb32) = (wide_h(&qh), wide_h(&bh), wide_b(&qb), wide_b(&bb));
        for metric in [Metric::L2, Metric::Dot, Metric::Cosine] {
            let mut out = vec![f32::NAN; nq * nb];
            for (name, q32, b32) in [("f32", &q, &b), ("f16", &qh32, &bh32), ("bf16", &qb32, &bb32)] {
                match name {
                    "f32" => simd::cdist(&q, &b, d, metric, &mut out).unwrap(),
                    "f16" => simd::cdist_f16(&qh, &bh, d, metric, &mut out).unwrap(),
                    _ => simd::cdist_bf16(&qb, &bb, d, metric, &mut out).unwrap(),
                }
                for (i, qi) in q32.chunks_exact(d).enumerate() {
                    for (j, bj) in b32.chunks_exact(d).enumerate() {
                        let want = metric.distance(qi, bj);
                        let got = out[i * nb + j];
                        assert_eq!(
                            got.to_bits(),
                            want.to_bits(),
                            "{name} {metric:?} d={d} ({i}, {j}): {got} vs {want}"
                        );
                    }
                }
            }
        }
    }
}

/// The i8 distance matrix equals the exact pair kernels bit for bit: tails of every width, one and
/// several blocks of base vectors, extreme values (all −128 and 127 rows, so the offset identity
/// runs at its limits), and a dimension past `I8_BLOCK`, where the pair kernels sum blocks in i64.
#[test]
fn cdist_i8_entries_are_the_exact_pairwise_distances() {
    let bytes = |n: usize, seed: u64| -> Vec<i8> { noise(n, seed).iter().map(|&x| (x * 127.9) as i8).collect() };
    for d in [1, 7, 63, 64, 65, 128, 384, simd::I8_BLOCK + 3] {
        let (nq, nb) = if d > 1000 { (5, 3) } else { (7, 16 * 1024 / d + 5) };
        let (mut q, mut b) = (bytes(nq * d, 21), bytes(nb * d, 22));
        q[..d].fill(-128);
        b[..d].fill(-128);
        b[d..2 * d].fill(127);
        for metric in [Metric::L2, Metric::Dot, Metric::Cosine] {
            let mut out = vec![f32::NAN; nq * nb];
            simd::cdist_i8(&q, &b, d, metric, &mut out).unwrap();
            for (i, qi) in q.chunks_exact(d).enumerate() {
                for (j, bj) in b.chunks_exact(d).enumerate() {
                    let want = match metric {
                        Metric::Dot => -(simd::dot_i8(qi, bj) as f32),
                        Metric::L2 => simd::l2_sq_i8(qi, bj) as f32,
                        Metric::Cosine => 1.0 - simd::cosine_i8(qi, bj),
                    };
                    let got = out[i * nb + j];
                    assert_eq!(got.to_bits(), want.to_bits(), "{metric:?} d={d} ({i}, {j}): {got} vs {want}");
                }
            }
        }
    }
    let mut out = vec![0.0; 2];
    assert!(matches!(
        simd::cdist_i8(&[1, 2, 3], &[1, 2], 2, Metric::L2, &mut out),
        Err(kernels::Error::RaggedBuffer { len: 3, dim: 2 })
    ));
}

#[test]
fn cdist_rejects_bad_shapes_with_typed_errors() {
    let (q, b) = (noise(8, 1), noise(12, 2));
    let mut out = vec![0.0; 6];
    assert!(matches!(simd::cdist(&q, &b, 0, Metric::L2, &mut out), Err(kernels::Error::InvalidParameter(_))));
    assert!(matches!(
        simd::cdist(&q, &b, 3, Metric::L2, &mut out),
        Err(kernels::Error::RaggedBuffer { len: 8, dim: 3 })
    ));
    assert!(matches!(
        simd::cdist(&q, &b, 4, Metric::L2, &mut out[..5]),
        Err(kernels::Error::DimensionMismatch { expected: 6, got: 5 })
    ));
    simd::cdist(&q, &b, 4, Metric::L2, &mut out).unwrap();
}

/// `dot_rows` and `axpy_rows` (strided rows, as attention reads a KV cache) give, bit for bit,
/// what `dot` and `axpy` give row by row, for widths around the 16-lane blocks and 1–5 outputs.
#[test]
fn strided_row_kernels_match_the_per_row_kernels_bit_for_bit() {
    for n in [0, 8, 16, 40, 64, 80, 128] {
        for positions in [0, 1, 3, 4, 9] {
            let stride = n + 24;
            let rows = noise(positions * stride + n, 3 + n as u64);
            let q = noise(n, 5);
            let mut got = vec![f32::NAN; positions];
            simd::dot_rows(&q, &rows, stride, &mut got);
            for (t, &g) in got.iter().enumerate() {
                let want = simd::dot(&q, &rows[t * stride..t * stride + n]);
                assert_eq!(g.to_bits(), want.to_bits(), "dot_rows n={n} positions={positions} row {t}");
            }
            for heads in 1..=5 {
                let weights: Vec<Vec<f32>> = (0..heads).map(|h| noise(positions, 11 + h as u64)).collect();
                let ws: Vec<&[f32]> = weights.iter().map(Vec::as_slice).collect();
                let start = noise(heads * n, 13);
                let mut got = start.clone();
                simd::axpy_rows(&ws, &rows, stride, &mut got);
                let mut want = start;
                for (w, y) in ws.iter().zip(want.chunks_exact_mut(n.max(1))) {
                    for (t, &a) in w.iter().enumerate() {
                        simd::axpy(a, &rows[t * stride..t * stride + n], &mut y[..n]);
                    }
                }
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&got), bits(&want), "axpy_rows n={n} positions={positions} heads={heads}");
            }
        }
    }
}
