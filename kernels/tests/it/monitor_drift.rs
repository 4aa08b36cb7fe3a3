//! kernels::monitor: drift statistics against scipy fixtures.
//!
//! - Every statistic, p-value, distance, edge and count of `tests/fixtures/monitor/drift_cases.json`
//!   (written by `make_fixtures.py` with numpy and scipy from the peers' venv; the versions are in the
//!   file) is recomputed by `kernels::monitor::drift` and compared by one data-driven [`check`].
//! - `make_fixtures.py --check` reruns scipy and compares with the committed file, when the venv exists.
//! - Bad input: each typed error.
//! - Properties against brute force: the KS statistic is the largest |F_a − F_b| over all sample
//!   points, Wasserstein-1 the integral of |F_a − F_b|, and `bin_counts` a linear scan.
//!
//! Tolerance against scipy: `|ours − scipy| ≤ 1e-9 · max(|scipy|, floor)`, that is **relative 1e-9**
//! above the floor and **absolute 1e-9 · floor** below it. The floor is 1e-300 for p-values, so tails
//! are compared relatively down to 1e-300 (a p-value of 1e-118 must match to 1e-127), and 1e-9 for
//! statistics, distances, PSI and edges, so values near 0 (identical samples) must be within 1e-18 of
//! scipy's. Counts and degrees of freedom must be equal.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use kernels::Error;
use kernels::monitor::drift::{self, Binning, PsiConfig};
use proptest::prelude::*;
use serde_json::Value;

const TOL: f64 = 1e-9;
/// The floor of p-values: compared relatively down to here.
const P_FLOOR: f64 = 1e-300;
/// The floor of statistics and distances: compared absolutely to 1e-18 below here.
const STAT_FLOOR: f64 = 1e-9;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/monitor")
}

fn cases() -> &'static Value {
    static CASES: OnceLock<Value> = OnceLock::new();
    CASES.get_or_init(|| {
        let path = fixtures().join("drift_cases.json");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!("{}: {e} (regenerate with kernels/tests/fixtures/monitor/make_fixtures.py)", path.display())
        });
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    })
}

/// `n` integers `loc + mul · (u0 + u1 + u2 + u3 − 8190)`, the u's the top 12 bits of successive
/// splitmix64 outputs from `seed`: `make_fixtures.py`'s `generated_ints`, bit for bit.
fn generated_ints(seed: u64, n: usize, loc: i64, mul: i64) -> Vec<i64> {
    let mut state = seed;
    (0..n)
        .map(|_| {
            let mut total = 0i64;
            for _ in 0..4 {
                state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut z = state;
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                z ^= z >> 31;
                total += (z >> 52) as i64;
            }
            loc + mul * (total - 8190)
        })
        .collect()
}

/// The fixture's samples by name: `int · scale`, the ints stored or regenerated from their recipe.
fn samples() -> &'static HashMap<String, Vec<f64>> {
    static SAMPLES: OnceLock<HashMap<String, Vec<f64>>> = OnceLock::new();
    SAMPLES.get_or_init(|| {
        let mut out = HashMap::new();
        for (name, s) in cases()["samples"].as_object().expect("samples") {
            let scale = s["scale"].as_f64().unwrap();
            let ints: Vec<i64> = match s.get("generate") {
                Some(g) => generated_ints(
                    g["seed"].as_u64().unwrap(),
                    g["n"].as_u64().unwrap() as usize,
                    g["loc"].as_i64().unwrap(),
                    g["mul"].as_i64().unwrap(),
                ),
                None => s["ints"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect(),
            };
            out.insert(name.clone(), ints.into_iter().map(|i| i as f64 * scale).collect());
        }
        out
    })
}

fn sample(case: &Value, key: &str) -> &'static [f64] {
    let name = case[key].as_str().unwrap_or_else(|| panic!("{key} missing in {}", case["name"]));
    samples().get(name).unwrap_or_else(|| panic!("no sample {name}"))
}

fn f(case: &Value, key: &str) -> f64 {
    case[key].as_f64().unwrap_or_else(|| panic!("{key} missing in {}", case["name"]))
}

fn floats(case: &Value, key: &str) -> Vec<f64> {
    case[key].as_array().unwrap_or_else(|| panic!("{key} missing")).iter().map(|v| v.as_f64().unwrap()).collect()
}

fn counts(case: &Value, key: &str) -> Vec<u64> {
    case[key].as_array().unwrap_or_else(|| panic!("{key} missing")).iter().map(|v| v.as_u64().unwrap()).collect()
}

/// The comparisons of one fixture kind: failures and the largest deviations seen.
#[derive(Default)]
struct Tally {
    compared: usize,
    max_abs: f64,
    max_rel: f64,
    failures: Vec<String>,
}

impl Tally {
    /// `ours` against scipy's `want` within `TOL · max(|want|, floor)` (see the module doc).
    fn close(&mut self, what: &str, ours: f64, want: f64, floor: f64) {
        self.compared += 1;
        let diff = if ours == want { 0.0 } else { (ours - want).abs() };
        let scale = want.abs().max(floor);
        if diff.is_nan() || diff > TOL * scale {
            self.failures.push(format!("{what}: ours {ours:e}, scipy {want:e}, |diff| {diff:e} > {:e}", TOL * scale));
            return;
        }
        self.max_abs = self.max_abs.max(diff);
        self.max_rel = self.max_rel.max(diff / scale);
    }

    fn equal<T: PartialEq + std::fmt::Debug>(&mut self, what: &str, ours: T, want: T) {
        self.compared += 1;
        if ours != want {
            self.failures.push(format!("{what}: ours {ours:?}, numpy/scipy {want:?}"));
        }
    }
}

/// Checks one fixture case of any kind against its scipy (or numpy) values.
fn check(kind: &str, case: &Value, tally: &mut Tally) {
    let name = case["name"].as_str().unwrap_or("?");
    let label = format!("{kind} [{name}]");
    match kind {
        "ks_2samp" => {
            let r = drift::ks_2samp(sample(case, "a"), sample(case, "b")).unwrap_or_else(|e| panic!("{label}: {e}"));
            tally.close(&format!("{label} statistic"), r.statistic, f(case, "statistic"), STAT_FLOOR);
            tally.close(&format!("{label} p-value"), r.p_value, f(case, "p_value"), P_FLOOR);
        }
        "chi_squared" => {
            let r = drift::chi_squared(&counts(case, "reference"), &counts(case, "current"))
                .unwrap_or_else(|e| panic!("{label}: {e}"));
            tally.close(&format!("{label} statistic"), r.statistic, f(case, "statistic"), STAT_FLOOR);
            tally.equal(&format!("{label} dof"), r.dof as u64, case["dof"].as_u64().unwrap());
            tally.close(&format!("{label} p-value"), r.p_value, f(case, "p_value"), P_FLOOR);
        }
        "jensen_shannon" => {
            let d = drift::jensen_shannon(&floats(case, "p"), &floats(case, "q"))
                .unwrap_or_else(|e| panic!("{label}: {e}"));
            tally.close(&format!("{label} distance"), d, f(case, "distance"), STAT_FLOOR);
        }
        "wasserstein" => {
            let d =
                drift::wasserstein_1(sample(case, "a"), sample(case, "b")).unwrap_or_else(|e| panic!("{label}: {e}"));
            tally.close(&format!("{label} distance"), d, f(case, "distance"), STAT_FLOOR);
        }
        "psi" => {
            let (reference, current) = (sample(case, "reference"), sample(case, "current"));
            let b = &case["binning"];
            let binning = match b["kind"].as_str().unwrap() {
                "quantile" => Binning::Quantile { bins: b["bins"].as_u64().unwrap() as usize },
                "equal_width" => Binning::EqualWidth { bins: b["bins"].as_u64().unwrap() as usize },
                "edges" => Binning::Edges(floats(b, "edges")),
                other => panic!("{label}: unknown binning {other}"),
            };
            let epsilon = f(case, "epsilon");
            let edges = drift::bin_edges(reference, &binning).unwrap_or_else(|e| panic!("{label}: {e}"));
            let want_edges = floats(case, "edges");
            tally.equal(&format!("{label} number of edges"), edges.len(), want_edges.len());
            for (i, (&ours, &want)) in edges.iter().zip(&want_edges).enumerate() {
                tally.close(&format!("{label} edge {i}"), ours, want, STAT_FLOOR);
            }
            let reference_counts = drift::bin_counts(reference, &edges).unwrap();
            let current_counts = drift::bin_counts(current, &edges).unwrap();
            tally.equal(&format!("{label} reference counts"), &reference_counts, &counts(case, "reference_counts"));
            tally.equal(&format!("{label} current counts"), &current_counts, &counts(case, "current_counts"));
            let want = f(case, "psi");
            let from_counts = drift::psi_from_counts(&reference_counts, &current_counts, epsilon).unwrap();
            tally.close(&format!("{label} psi_from_counts"), from_counts, want, STAT_FLOOR);
            let config = PsiConfig { binning, epsilon };
            let psi = drift::psi(reference, current, &config).unwrap_or_else(|e| panic!("{label}: {e}"));
            tally.close(&format!("{label} psi"), psi, want, STAT_FLOOR);
        }
        "bin_counts" => {
            let got = drift::bin_counts(&floats(case, "values"), &floats(case, "edges")).unwrap();
            tally.equal(&label, got, counts(case, "counts"));
        }
        _ => panic!("unknown fixture kind {kind}"),
    }
}

/// Checks every case of `kind`, prints the largest deviations, fails listing every mismatch.
fn check_all(kind: &str) {
    let list = cases()[kind].as_array().unwrap_or_else(|| panic!("no {kind} cases"));
    assert!(!list.is_empty(), "no {kind} cases");
    let mut tally = Tally::default();
    for case in list {
        check(kind, case, &mut tally);
    }
    eprintln!(
        "{kind}: {} cases, {} values compared with scipy {}: max |diff| {:e}, max relative deviation {:e}",
        list.len(),
        tally.compared,
        cases()["versions"]["scipy"],
        tally.max_abs,
        tally.max_rel
    );
    assert!(tally.failures.is_empty(), "{} mismatches:\n{}", tally.failures.len(), tally.failures.join("\n"));
}

#[test]
fn ks_2samp_matches_scipy() {
    check_all("ks_2samp");
    // Both sides of the exact/asymptotic switch, and the exact-failed fallback, are covered.
    let methods: Vec<&str> =
        cases()["ks_2samp"].as_array().unwrap().iter().map(|c| c["method"].as_str().unwrap()).collect();
    for m in ["exact", "asymp", "asymp (exact failed)"] {
        assert!(methods.contains(&m), "no ks_2samp case with method {m}");
    }
}

#[test]
fn chi_squared_matches_scipy() {
    check_all("chi_squared");
}

#[test]
fn jensen_shannon_matches_scipy() {
    check_all("jensen_shannon");
}

#[test]
fn wasserstein_matches_scipy() {
    check_all("wasserstein");
}

#[test]
fn psi_edges_and_counts_match_numpy() {
    check_all("psi");
}

#[test]
fn bin_counts_match_numpy_digitize() {
    check_all("bin_counts");
}

#[test]
fn the_committed_fixtures_are_what_scipy_computes_now() {
    crate::fixture_check::fixtures_still_match(&fixtures().join("make_fixtures.py"));
}

// ---------------------------------------------------------------------------------------------
// Bad input

fn invalid(r: Result<impl std::fmt::Debug, Error>, needle: &str) {
    match r {
        Err(Error::MonitorInvalid(message)) => {
            assert!(message.contains(needle), "message {message:?} does not mention {needle:?}")
        }
        other => panic!("expected MonitorInvalid({needle}), got {other:?}"),
    }
}

fn empty(r: Result<impl std::fmt::Debug, Error>, what: &str) {
    match r {
        Err(Error::MonitorEmptySample { what: w }) => assert!(w.starts_with(what), "{w:?} is not {what:?}"),
        other => panic!("expected MonitorEmptySample({what}), got {other:?}"),
    }
}

fn non_finite(r: Result<impl std::fmt::Debug, Error>, what: &str, index: usize) {
    match r {
        Err(Error::MonitorNonFinite { what: w, index: i }) => {
            assert_eq!((w.as_str(), i), (what, index));
        }
        other => panic!("expected MonitorNonFinite({what}, {index}), got {other:?}"),
    }
}

#[test]
fn empty_samples_are_refused() {
    let x = [1.0, 2.0, 3.0];
    empty(drift::ks_2samp(&[], &x), "a");
    empty(drift::ks_2samp(&x, &[]), "b");
    empty(drift::wasserstein_1(&[], &x), "a");
    empty(drift::wasserstein_1(&x, &[]), "b");
    empty(drift::bin_edges(&[], &Binning::Quantile { bins: 4 }), "reference");
    empty(drift::bin_edges(&[], &Binning::EqualWidth { bins: 4 }), "reference");
    empty(drift::bin_edges(&[], &Binning::Edges(vec![0.0])), "reference");
    empty(drift::psi(&[], &x, &PsiConfig::default()), "reference");
    empty(drift::psi(&x, &[], &PsiConfig::default()), "current");
    // A histogram with no mass: no bins, or every count zero.
    empty(drift::psi_from_counts(&[], &[], 1e-4), "reference histogram");
    empty(drift::psi_from_counts(&[0, 0], &[1, 2], 1e-4), "reference histogram");
    empty(drift::psi_from_counts(&[1, 2], &[0, 0], 1e-4), "current histogram");
    empty(drift::chi_squared(&[0, 0, 0], &[1, 2, 3]), "reference counts");
    empty(drift::chi_squared(&[1, 2, 3], &[0, 0, 0]), "current counts");
    empty(drift::chi_squared(&[], &[]), "reference counts");
    empty(drift::jensen_shannon(&[], &[]), "p");
    empty(drift::jensen_shannon(&[0.0, 0.0], &[1.0, 1.0]), "p");
    empty(drift::jensen_shannon(&[1.0, 1.0], &[0.0, 0.0]), "q");
    // Counting nothing is an all-zero histogram (counts add up over batches), not an error.
    assert_eq!(drift::bin_counts(&[], &[0.0, 1.0]).unwrap(), vec![0, 0, 0]);
}

#[test]
fn non_finite_values_are_refused() {
    let x = [1.0, 2.0, 3.0];
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let with_bad = [0.5, 1.5, bad, 2.5];
        non_finite(drift::ks_2samp(&with_bad, &x), "a", 2);
        non_finite(drift::ks_2samp(&x, &with_bad), "b", 2);
        non_finite(drift::wasserstein_1(&with_bad, &x), "a", 2);
        non_finite(drift::wasserstein_1(&x, &with_bad), "b", 2);
        non_finite(drift::bin_edges(&with_bad, &Binning::Quantile { bins: 4 }), "reference", 2);
        non_finite(drift::psi(&with_bad, &x, &PsiConfig::default()), "reference", 2);
        non_finite(drift::psi(&x, &with_bad, &PsiConfig::default()), "current", 2);
        non_finite(drift::bin_counts(&with_bad, &[1.0]), "values", 2);
        non_finite(drift::bin_counts(&x, &[0.0, bad]), "edges", 1);
        non_finite(drift::bin_edges(&x, &Binning::Edges(vec![bad])), "edges", 0);
        non_finite(drift::jensen_shannon(&with_bad, &with_bad), "p", 2);
        non_finite(drift::jensen_shannon(&x, &[1.0, bad, 1.0]), "q", 1);
    }
}

#[test]
fn invalid_settings_and_shapes_are_refused() {
    let x = [1.0, 2.0, 3.0];
    // bins == 0
    invalid(drift::bin_edges(&x, &Binning::Quantile { bins: 0 }), "bins");
    invalid(drift::bin_edges(&x, &Binning::EqualWidth { bins: 0 }), "bins");
    invalid(drift::psi(&x, &x, &PsiConfig { binning: Binning::Quantile { bins: 0 }, epsilon: 1e-4 }), "bins");
    // edges not strictly increasing
    invalid(drift::bin_edges(&x, &Binning::Edges(vec![0.0, 1.0, 1.0])), "strictly increasing");
    invalid(drift::bin_edges(&x, &Binning::Edges(vec![2.0, 1.0])), "strictly increasing");
    invalid(drift::bin_counts(&x, &[1.0, 0.5]), "strictly increasing");
    invalid(drift::psi(&x, &x, &PsiConfig { binning: Binning::Edges(vec![1.0, 1.0]), epsilon: 1e-4 }), "strictly");
    // epsilon <= 0 (or not finite)
    for epsilon in [0.0, -1e-4, f64::NAN, f64::INFINITY] {
        invalid(drift::psi_from_counts(&[1, 2], &[2, 1], epsilon), "epsilon");
        invalid(drift::psi(&x, &x, &PsiConfig { binning: Binning::Quantile { bins: 2 }, epsilon }), "epsilon");
    }
    // mismatched lengths
    invalid(drift::psi_from_counts(&[1, 2], &[1, 2, 3], 1e-4), "bins");
    invalid(drift::chi_squared(&[1, 2], &[1, 2, 3]), "categories");
    invalid(drift::jensen_shannon(&[1.0, 2.0], &[1.0, 2.0, 3.0]), "bins");
    // negative histogram entries
    invalid(drift::jensen_shannon(&[1.0, -0.5, 2.0], &[1.0, 1.0, 1.0]), "negative");
    invalid(drift::jensen_shannon(&[1.0, 1.0, 1.0], &[1.0, 1.0, -2.0]), "negative");
    // fewer than two categories once those empty in both rows are dropped
    invalid(drift::chi_squared(&[5, 0, 0], &[7, 0, 0]), "two categories");
    invalid(drift::chi_squared(&[5], &[7]), "two categories");
    // a total that does not fit
    invalid(drift::psi_from_counts(&[u64::MAX, 1], &[1, 1], 1e-4), "overflows");
    invalid(drift::jensen_shannon(&[f64::MAX, f64::MAX], &[1.0, 1.0]), "overflows");
}

#[test]
fn small_edge_cases() {
    // One value each.
    let r = drift::ks_2samp(&[1.0], &[2.0]).unwrap();
    assert_eq!((r.statistic, r.p_value), (1.0, 1.0));
    assert_eq!(drift::wasserstein_1(&[1.0], &[4.5]).unwrap(), 3.5);
    // Order does not matter; the statistic is symmetric.
    let (a, b) = ([3.0, 1.0, 2.0, 2.0], [2.5, 0.0, 9.0]);
    let (ab, ba) = (drift::ks_2samp(&a, &b).unwrap(), drift::ks_2samp(&b, &a).unwrap());
    assert_eq!(ab, ba);
    assert_eq!(drift::wasserstein_1(&a, &b).unwrap(), drift::wasserstein_1(&b, &a).unwrap());
    // Identical samples: no drift at all.
    assert_eq!(drift::psi(&a, &a, &PsiConfig::default()).unwrap(), 0.0);
    assert_eq!(drift::jensen_shannon(&a, &a).unwrap(), 0.0);
    // Default PSI settings: deciles, epsilon 1e-4.
    assert_eq!(PsiConfig::default(), PsiConfig { binning: Binning::Quantile { bins: 10 }, epsilon: 1e-4 });
    // Given edges pass through unchanged.
    assert_eq!(drift::bin_edges(&a, &Binning::Edges(vec![-1.0, 0.5])).unwrap(), vec![-1.0, 0.5]);
}

#[test]
fn large_samples_take_the_asymptotic_path_quickly() {
    // 200,000 values against 150,000: sort once, merge-walk; the p-value comes from kstwo with
    // n = round(200000 · 150000 / 350000) = 85714.
    let a: Vec<f64> = generated_ints(101, 200_000, 0, 1).into_iter().map(|i| i as f64 / 2048.0).collect();
    let b: Vec<f64> = generated_ints(102, 150_000, 120, 1).into_iter().map(|i| i as f64 / 2048.0).collect();
    let start = std::time::Instant::now();
    let r = drift::ks_2samp(&a, &b).unwrap();
    let w = drift::wasserstein_1(&a, &b).unwrap();
    let psi = drift::psi(&a, &b, &PsiConfig::default()).unwrap();
    let elapsed = start.elapsed();
    assert!((r.statistic - naive_ks(&a[..2000], &b[..2000])).abs() < 0.1);
    assert!(r.p_value > 0.0 && r.p_value < 1e-3, "{r:?}");
    assert!(w > 0.0 && w < 0.1 && psi > 0.0 && psi < 0.1, "{w} {psi}");
    assert!(elapsed.as_secs_f64() < 20.0, "{elapsed:?}");
}

// ---------------------------------------------------------------------------------------------
// Properties against brute force

/// `F(t)`: the share of `sample` at or below `t`, by a scan.
fn ecdf(sample: &[f64], t: f64) -> f64 {
    sample.iter().filter(|&&v| v <= t).count() as f64 / sample.len() as f64
}

/// The two-sample KS statistic by definition: max over every sample point of |F_a − F_b|.
fn naive_ks(a: &[f64], b: &[f64]) -> f64 {
    a.iter().chain(b).map(|&t| (ecdf(a, t) - ecdf(b, t)).abs()).fold(0.0, f64::max)
}

/// Wasserstein-1 by definition: ∫ |F_a − F_b| dt, exact for step functions (sum over the gaps
/// between consecutive distinct pooled values).
fn naive_wasserstein(a: &[f64], b: &[f64]) -> f64 {
    let mut points: Vec<f64> = a.iter().chain(b).copied().collect();
    points.sort_by(f64::total_cmp);
    points.dedup();
    points.windows(2).map(|w| (ecdf(a, w[0]) - ecdf(b, w[0])).abs() * (w[1] - w[0])).sum()
}

/// Values on a coarse grid when `coarse` (ties within and across samples), else spread out.
fn values(max_len: usize) -> impl Strategy<Value = Vec<f64>> {
    (any::<bool>(), prop::collection::vec(-50i32..50, 1..max_len), prop::collection::vec(-1e3f64..1e3, 1..max_len))
        .prop_map(
            |(coarse, ints, spread)| {
                if coarse { ints.into_iter().map(|i| f64::from(i) / 4.0).collect() } else { spread }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn ks_statistic_is_the_largest_ecdf_gap(a in values(60), b in values(60)) {
        let r = drift::ks_2samp(&a, &b).unwrap();
        let naive = naive_ks(&a, &b);
        // The exact path reports h / lcm(n1, n2), the gap rounded to its lattice: equal to 1e-12.
        prop_assert!((r.statistic - naive).abs() <= 1e-12, "ours {} naive {}", r.statistic, naive);
        prop_assert!((0.0..=1.0).contains(&r.p_value), "p {}", r.p_value);
    }

    #[test]
    fn wasserstein_is_the_integral_of_the_ecdf_gap(a in values(60), b in values(60)) {
        let ours = drift::wasserstein_1(&a, &b).unwrap();
        let naive = naive_wasserstein(&a, &b);
        prop_assert!((ours - naive).abs() <= 1e-12 * naive.abs().max(1.0), "ours {ours} naive {naive}");
    }

    #[test]
    fn bin_counts_equal_a_linear_scan(
        v in values(200),
        raw_edges in prop::collection::vec(-60i32..60, 0..90),
        fine in any::<bool>(),
    ) {
        let mut edges: Vec<f64> =
            raw_edges.into_iter().map(|e| if fine { f64::from(e) * 13.7 } else { f64::from(e) / 4.0 }).collect();
        edges.sort_by(f64::total_cmp);
        edges.dedup();
        let ours = drift::bin_counts(&v, &edges).unwrap();
        let mut naive = vec![0u64; edges.len() + 1];
        for &x in &v {
            // bin i holds edges[i-1] <= x < edges[i]
            let mut i = 0;
            while i < edges.len() && edges[i] <= x {
                i += 1;
            }
            naive[i] += 1;
        }
        prop_assert_eq!(ours, naive);
    }

    #[test]
    fn psi_is_psi_of_the_binned_counts(reference in values(120), current in values(120), bins in 1usize..12) {
        for binning in [Binning::Quantile { bins }, Binning::EqualWidth { bins }] {
            let config = PsiConfig { binning: binning.clone(), epsilon: 1e-4 };
            let edges = drift::bin_edges(&reference, &binning).unwrap();
            prop_assert!(edges.windows(2).all(|w| w[0] < w[1]), "{edges:?}");
            prop_assert!(edges.len() < bins.max(1));
            let r = drift::bin_counts(&reference, &edges).unwrap();
            let c = drift::bin_counts(&current, &edges).unwrap();
            let want = drift::psi_from_counts(&r, &c, 1e-4).unwrap();
            prop_assert_eq!(drift::psi(&reference, &current, &config).unwrap(), want);
            prop_assert!(want >= 0.0);
        }
    }
}
