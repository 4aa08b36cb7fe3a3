//! Column statistics (Arrow columnar format, validity bitmaps): SIMD path vs scalar twin
//! vs an exact reference, the hostile `1e9 + noise` column, quantiles vs a full sort.

use arrow::array::{Float32Array, Float64Array, Int64Array};
use kernels::Error;
use kernels::data::{ColumnStats, column_stats, column_stats_scalar, quantiles};
use proptest::prelude::*;

/// Reference: exact-enough mean and M2 by two passes with Neumaier-compensated sums.
fn reference(values: &[Option<f64>]) -> (usize, usize, usize, f64, f64, f64, f64) {
    let nulls = values.iter().filter(|v| v.is_none()).count();
    let nans = values.iter().flatten().filter(|v| v.is_nan()).count();
    let x: Vec<f64> = values.iter().flatten().copied().filter(|v| !v.is_nan()).collect();
    let sum = |it: &mut dyn Iterator<Item = f64>| {
        let (mut s, mut c) = (0.0f64, 0.0f64);
        for v in it {
            let t = s + v;
            c += if s.abs() >= v.abs() { (s - t) + v } else { (v - t) + s };
            s = t;
        }
        s + c
    };
    let n = x.len() as f64;
    let mean = sum(&mut x.iter().copied()) / n;
    let m2 = sum(&mut x.iter().map(|v| (v - mean) * (v - mean)));
    let min = x.iter().copied().fold(f64::INFINITY, f64::min);
    let max = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (values.len(), nulls, nans, if x.is_empty() { f64::NAN } else { mean }, m2, min, max)
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= rel * a.abs().max(b.abs()).max(1e-300)
}

/// Checks SIMD and scalar statistics of `values` against the reference.
fn check(case: &str, values: &[Option<f64>]) {
    let array = Float64Array::from(values.to_vec());
    let (rows, nulls, nans, mean, m2, min, max) = reference(values);
    for (path, s) in [("simd", column_stats(&array).unwrap()), ("scalar", column_stats_scalar(&array).unwrap())] {
        assert_eq!((s.rows, s.nulls, s.nans), (rows, nulls, nans), "{case} {path}: counts");
        let mean_abs =
            values.iter().flatten().filter(|v| !v.is_nan()).map(|v| v.abs()).sum::<f64>() / s.valid().max(1) as f64;
        assert!(
            close(s.mean, mean, 1e-12) || (s.mean - mean).abs() <= 1e-13 * mean_abs,
            "{case} {path}: mean {} vs {mean}",
            s.mean
        );
        let scale = (mean * mean * s.valid() as f64).max(m2) * 1e-13;
        assert!((s.m2 - m2).abs() <= scale.max(1e-300) || close(s.m2, m2, 1e-10), "{case} {path}: m2 {} vs {m2}", s.m2);
        assert_eq!((s.min, s.max), (min, max), "{case} {path}: min/max");
        assert!(close(s.null_rate(), if rows == 0 { 0.0 } else { nulls as f64 / rows as f64 }, 0.0), "{case}");
    }
}

fn noisy(n: usize, seed: u64) -> Vec<f64> {
    datasets::vectors::uniform(n, seed).into_iter().map(f64::from).collect()
}

#[test]
fn simd_and_scalar_match_the_reference_across_blocks_nulls_and_nans() {
    for n in [0, 1, 3, 4, 15, 16, 17, 4095, 4096, 4097, 10_000] {
        let x = noisy(n, n as u64);
        let dense: Vec<Option<f64>> = x.iter().map(|&v| Some(v * 100.0 + 7.0)).collect();
        let every_third: Vec<Option<f64>> = x.iter().enumerate().map(|(i, &v)| (i % 3 != 0).then_some(v)).collect();
        let one_null_late: Vec<Option<f64>> =
            x.iter().enumerate().map(|(i, &v)| (i != n.saturating_sub(2)).then_some(v)).collect();
        let all_null = vec![None; n];
        let with_nan: Vec<Option<f64>> =
            x.iter().enumerate().map(|(i, &v)| Some(if i % 7 == 3 { f64::NAN } else { v })).collect();
        let nan_and_null: Vec<Option<f64>> = x
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                if i % 5 == 0 {
                    None
                } else if i % 5 == 1 {
                    Some(f64::NAN)
                } else {
                    Some(v)
                }
            })
            .collect();
        let mixed_scale: Vec<Option<f64>> =
            x.iter().enumerate().map(|(i, &v)| Some(if i % 2 == 0 { v * 1e8 } else { v * 1e-8 })).collect();
        for (case, v) in [
            ("dense", &dense),
            ("every third null", &every_third),
            ("one null late", &one_null_late),
            ("all null", &all_null),
            ("NaNs", &with_nan),
            ("NaNs and nulls", &nan_and_null),
            ("mixed scale", &mixed_scale),
        ] {
            check(&format!("{case} n={n}"), v);
        }
    }
}

#[test]
fn hostile_column_beats_the_naive_formula() {
    // 1e9 + noise of std ~0.0058: Σx²/n − mean² cancels 18 digits of 1e18 to find 3e-5.
    let n = 100_000;
    let noise: Vec<f64> = noisy(n, 42).into_iter().map(|u| u * 0.01).collect();
    let x: Vec<f64> = noise.iter().map(|e| 1e9 + e).collect();
    // x − 1e9 is exact (Sterbenz), so the variance of the shifted column is the truth.
    let shifted: Vec<Option<f64>> = x.iter().map(|v| Some(v - 1e9)).collect();
    let (_, _, _, _, m2_true, _, _) = reference(&shifted);
    let var_true = m2_true / n as f64;
    let array = Float64Array::from(x.clone());
    let naive = x.iter().map(|v| v * v).sum::<f64>() / n as f64 - (x.iter().sum::<f64>() / n as f64).powi(2);
    for (path, s) in [("simd", column_stats(&array).unwrap()), ("scalar", column_stats_scalar(&array).unwrap())] {
        let rel = (s.variance() - var_true).abs() / var_true;
        assert!(rel < 1e-9, "{path}: variance {} vs {var_true} (rel {rel:e})", s.variance());
    }
    let naive_rel = (naive - var_true).abs() / var_true;
    assert!(naive_rel > 1.0, "the naive formula should fail here (rel error {naive_rel:e}, value {naive})");
}

#[test]
fn f32_columns_accumulate_in_f64() {
    let x: Vec<Option<f32>> =
        (0..5000).map(|i| if i % 11 == 0 { None } else { Some(i as f32 * 0.25 - 300.0) }).collect();
    let as64: Vec<Option<f64>> = x.iter().map(|v| v.map(f64::from)).collect();
    let array = Float32Array::from(x);
    let (_, nulls, _, mean, m2, min, max) = reference(&as64);
    for s in [column_stats(&array).unwrap(), column_stats_scalar(&array).unwrap()] {
        assert_eq!(s.nulls, nulls);
        assert!(close(s.mean, mean, 1e-13) && close(s.m2, m2, 1e-12) && s.min == min && s.max == max, "{s:?}");
    }
}

#[test]
fn sliced_arrays_respect_their_offset() {
    let x: Vec<Option<f64>> = (0..9000).map(|i| if i % 4 == 1 { None } else { Some(i as f64) }).collect();
    let array = Float64Array::from(x.clone());
    let sliced = array.slice(1234, 5000);
    let s = column_stats(&sliced).unwrap();
    let (rows, nulls, _, mean, _, min, max) = reference(&x[1234..6234]);
    assert_eq!((s.rows, s.nulls, s.min, s.max), (rows, nulls, min, max));
    assert!(close(s.mean, mean, 1e-14));
}

#[test]
fn ddof_conventions_and_merge() {
    let a = column_stats(&Float64Array::from(vec![1.0, 2.0, 3.0, 4.0])).unwrap();
    assert_eq!((a.mean, a.variance(), a.sample_variance()), (2.5, 1.25, 5.0 / 3.0));
    let b = column_stats(&Float64Array::from(vec![Some(10.0), None, Some(20.0)])).unwrap();
    let both = column_stats(&Float64Array::from(vec![
        Some(1.0),
        Some(2.0),
        Some(3.0),
        Some(4.0),
        Some(10.0),
        None,
        Some(20.0),
    ]))
    .unwrap();
    let m = a.merge(&b);
    assert_eq!((m.rows, m.nulls, m.min, m.max), (both.rows, both.nulls, both.min, both.max));
    assert!(close(m.mean, both.mean, 1e-15) && close(m.m2, both.m2, 1e-14));
    let empty = column_stats(&Float64Array::from(Vec::<f64>::new())).unwrap();
    assert_eq!(empty.rows, 0);
    assert!(empty.mean.is_nan() && empty.std().is_nan() && empty.null_rate() == 0.0);
    assert_eq!(ColumnStats::EMPTY.merge(&a), a);
}

#[test]
fn wrong_types_and_bad_quantiles_are_errors() {
    let ints = Int64Array::from(vec![1, 2, 3]);
    assert!(matches!(column_stats(&ints), Err(Error::ColumnType { .. })));
    assert!(matches!(column_stats_scalar(&ints), Err(Error::ColumnType { .. })));
    assert!(matches!(quantiles(&ints, &[0.5]), Err(Error::ColumnType { .. })));
    let x = Float64Array::from(vec![1.0]);
    assert!(matches!(quantiles(&x, &[1.5]), Err(Error::InvalidParameter(_))));
    assert!(matches!(quantiles(&x, &[f64::NAN]), Err(Error::InvalidParameter(_))));
}

/// NumPy's `linear` quantile on a sorted copy.
fn sorted_quantile(sorted: &[f64], q: f64) -> f64 {
    let h = (sorted.len() - 1) as f64 * q;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

proptest! {
    #[test]
    fn quantiles_match_a_full_sort(
        values in prop::collection::vec(prop::option::weighted(0.9, -1e6f64..1e6), 1..400),
        qs in prop::collection::vec(0.0f64..=1.0, 1..8),
    ) {
        let mut sorted: Vec<f64> = values.iter().flatten().copied().collect();
        sorted.sort_by(f64::total_cmp);
        let got = quantiles(&Float64Array::from(values.clone()), &qs).unwrap();
        for (q, g) in qs.iter().zip(&got) {
            if sorted.is_empty() {
                prop_assert!(g.is_nan());
            } else {
                let want = sorted_quantile(&sorted, *q);
                prop_assert!(close(*g, want, 1e-12) || (g - want).abs() < 1e-9, "q={} got {} want {}", q, g, want);
            }
        }
    }

    #[test]
    fn simd_matches_scalar_on_random_columns(values in prop::collection::vec(prop::option::weighted(0.8, -1e3f64..1e3), 0..9000)) {
        let a = Float64Array::from(values);
        let (s, r) = (column_stats(&a).unwrap(), column_stats_scalar(&a).unwrap());
        prop_assert_eq!((s.rows, s.nulls, s.min, s.max), (r.rows, r.nulls, r.min, r.max));
        // Mean: error bound relative to the mean magnitude (a mean near 0 is ill-conditioned).
        // No valid value (empty or all null): both twins report a NaN mean.
        let same_mean = (s.mean.is_nan() && r.mean.is_nan()) || (s.mean - r.mean).abs() <= 1e-12 * 1e3 + 1e-300;
        prop_assert!(same_mean && close(s.m2, r.m2, 1e-10), "{:?} vs {:?}", s, r);
    }
}
