//! A/B testing (`kernels::abtest`, feature `abtest`): statistics compared with scipy fixtures
//! (`tests/fixtures/abtest/cases.json`, written by `make_fixtures.py`), sticky and uniform
//! assignment, routing with a shadow arm, bad input.
//!
//! Tolerance against scipy: **relative 1e-9** for every statistic, p-value, df, quantile and
//! sample size (`|ours − scipy| ≤ 1e-9 · |scipy|`; p-values are compared relatively down to 1e-274,
//! so the tails are checked, not just rounded to 0). Where scipy's value can be 0 or is a difference
//! of nearby numbers (z = 0, confidence-interval ends close to 0, t = 0 quantiles) the test is
//! **absolute 1e-9 × scale**, the scale being the standard error for interval ends and 1 otherwise.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use kernels::Error;
use kernels::abtest::{self, RolloutConfig, Route, SampleStats};
use serde_json::Value;

const TOL: f64 = 1e-9;

/// The largest relative deviation from scipy seen by `close` (printed by the summary test).
static MAX_DEV: AtomicU64 = AtomicU64::new(0);

fn cases() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/abtest/cases.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("{}: {e} (regenerate with kernels/tests/fixtures/abtest/make_fixtures.py)", path.display())
    });
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn f(case: &Value, key: &str) -> f64 {
    case[key].as_f64().unwrap_or_else(|| panic!("{key} missing in {case}"))
}

fn u(case: &Value, key: &str) -> u64 {
    case[key].as_u64().unwrap_or_else(|| panic!("{key} missing in {case}"))
}

fn list(case: &Value, key: &str) -> Vec<f64> {
    case[key].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect()
}

/// `ours` equals scipy's `want` to `TOL` relative, or `TOL · scale` absolute (see the module doc).
fn close(what: &str, ours: f64, want: f64, scale: f64) {
    let err = (ours - want).abs();
    let bound = TOL * want.abs().max(scale);
    let dev = err / want.abs().max(scale);
    MAX_DEV.fetch_max(dev.to_bits(), Ordering::Relaxed); // non-negative f64s order as their bits
    assert!(err <= bound, "{what}: ours {ours:e}, scipy {want:e}, |diff| {err:e} > {bound:e}");
}

/// Relative comparison (scale 0: a p-value of 1e-274 must match to 1e-9 of itself).
fn rel(what: &str, ours: f64, want: f64) {
    close(what, ours, want, f64::MIN_POSITIVE);
}

/// Checks one fixture case of any kind against scipy.
fn check(kind: &str, case: &Value) {
    match kind {
        "ztest" => {
            let r = abtest::two_proportion_ztest(
                u(case, "successes_a"),
                u(case, "trials_a"),
                u(case, "successes_b"),
                u(case, "trials_b"),
                f(case, "confidence"),
            )
            .unwrap_or_else(|e| panic!("{case}: {e}"));
            let se = r.se_unpooled;
            close(&format!("z-test diff {case}"), r.diff, f(case, "diff"), se);
            close(&format!("z-test z {case}"), r.z, f(case, "z"), 1.0);
            rel(&format!("z-test p {case}"), r.p_value, f(case, "p_value"));
            rel(&format!("z-test se pooled {case}"), r.se_pooled, f(case, "se_pooled"));
            rel(&format!("z-test se unpooled {case}"), r.se_unpooled, f(case, "se_unpooled"));
            close(&format!("z-test ci low {case}"), r.ci_low, f(case, "ci_low"), se);
            close(&format!("z-test ci high {case}"), r.ci_high, f(case, "ci_high"), se);
        }
        "welch" => {
            let (a, b) = (list(case, "a"), list(case, "b"));
            let label = format!("welch n=({}, {})", a.len(), b.len());
            let r = abtest::welch_ttest(&a, &b, f(case, "confidence")).unwrap_or_else(|e| panic!("{label}: {e}"));
            close(&format!("{label} t"), r.t, f(case, "t"), 1.0);
            rel(&format!("{label} p"), r.p_value, f(case, "p_value"));
            rel(&format!("{label} df"), r.df, f(case, "df"));
            close(&format!("{label} diff"), r.diff, f(case, "diff"), r.se);
            close(&format!("{label} ci low"), r.ci_low, f(case, "ci_low"), r.se);
            close(&format!("{label} ci high"), r.ci_high, f(case, "ci_high"), r.se);
        }
        "sample_size" => {
            let n =
                abtest::sample_size_two_proportions(f(case, "alpha"), f(case, "power"), f(case, "p1"), f(case, "p2"))
                    .unwrap();
            rel(&format!("sample size {case}"), n, f(case, "n"));
        }
        "power" => {
            let p =
                abtest::power_two_proportions(f(case, "alpha"), f(case, "n"), f(case, "p1"), f(case, "p2")).unwrap();
            rel(&format!("power {case}"), p, f(case, "power"));
        }
        "normal_cdf" => {
            let x = f(case, "x");
            rel(&format!("normal cdf({x})"), abtest::normal_cdf(x), f(case, "cdf"));
            rel(&format!("normal sf({x})"), abtest::normal_sf(x), f(case, "sf"));
        }
        "normal_ppf" => {
            let p = f(case, "p");
            close(&format!("normal ppf({p})"), abtest::normal_ppf(p), f(case, "x"), 1.0);
        }
        "t_cdf" => {
            let (t, df) = (f(case, "t"), f(case, "df"));
            rel(&format!("t cdf({t}, df {df})"), abtest::student_t_cdf(t, df), f(case, "cdf"));
            rel(&format!("t sf({t}, df {df})"), abtest::student_t_sf(t, df), f(case, "sf"));
        }
        "t_ppf" => {
            let (p, df) = (f(case, "p"), f(case, "df"));
            close(&format!("t ppf({p}, df {df})"), abtest::student_t_ppf(p, df), f(case, "t"), 1.0);
        }
        _ => panic!("unknown kind {kind}"),
    }
}

fn check_all(kind: &str, cases: &Value) {
    let cases = cases.as_array().unwrap();
    assert!(!cases.is_empty(), "no {kind} cases");
    for case in cases {
        check(kind, case);
    }
}

#[test]
fn two_proportion_ztest_matches_scipy() {
    check_all("ztest", &cases()["ztest"]);
}

#[test]
fn welch_ttest_matches_scipy() {
    check_all("welch", &cases()["welch"]);
}

#[test]
fn sample_size_and_power_match_scipy() {
    let all = cases();
    check_all("sample_size", &all["sample_size"]);
    check_all("power", &all["power"]);
}

#[test]
fn normal_distribution_matches_scipy() {
    let all = cases();
    check_all("normal_cdf", &all["normal"]["cdf"]);
    check_all("normal_ppf", &all["normal"]["ppf"]);
}

#[test]
fn student_t_distribution_matches_scipy() {
    let all = cases();
    check_all("t_cdf", &all["student_t"]["cdf"]);
    check_all("t_ppf", &all["student_t"]["ppf"]);
}

/// Runs every fixture and prints the largest relative deviation from scipy (`--nocapture`).
#[test]
fn max_deviation_from_scipy_is_reported() {
    let all = cases();
    for kind in ["ztest", "welch", "sample_size", "power"] {
        check_all(kind, &all[kind]);
    }
    check_all("normal_cdf", &all["normal"]["cdf"]);
    check_all("normal_ppf", &all["normal"]["ppf"]);
    check_all("t_cdf", &all["student_t"]["cdf"]);
    check_all("t_ppf", &all["student_t"]["ppf"]);
    let dev = f64::from_bits(MAX_DEV.load(Ordering::Relaxed));
    println!("abtest: max relative deviation from scipy over all fixtures: {dev:e}");
    assert!(dev <= TOL);
}

#[test]
fn the_ztest_and_sample_size_agree_with_each_other() {
    // At the planned n, the expected z equals z_{1-α/2} + z_power (to first order): the power at
    // the planned n is the power asked for.
    let n = abtest::sample_size_two_proportions(0.05, 0.8, 0.10, 0.12).unwrap();
    let power = abtest::power_two_proportions(0.05, n, 0.10, 0.12).unwrap();
    assert!((power - 0.8).abs() < 1e-12, "power at the planned n: {power}");
    assert_eq!(n.ceil(), 3841.0);
}

#[test]
fn fnv1a64_is_the_published_function() {
    assert_eq!(abtest::fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(abtest::fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    assert_eq!(abtest::fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
}

#[test]
fn assignment_is_pinned_across_versions() {
    // A user's arm must not move when the toolchain changes: these values are part of the contract.
    let got: Vec<usize> =
        (0..12).map(|i| abtest::assign(&format!("user-{i}"), "exp-1", &[0.5, 0.5]).unwrap()).collect();
    let again: Vec<usize> =
        (0..12).map(|i| abtest::assign(&format!("user-{i}"), "exp-1", &[0.5, 0.5]).unwrap()).collect();
    assert_eq!(got, again);
    // Computed by an independent Python transcription of FNV-1a 64 + fmix64 (the unit point is
    // `(hash >> 11) / 2^53`), not by this crate.
    assert_eq!(got, [1, 1, 0, 1, 0, 1, 1, 1, 0, 0, 1, 0]);
    assert_eq!(abtest::assignment_hash("user-0", "exp-1"), 11_508_151_587_086_448_192, "the assignment hash changed");
}

#[test]
fn assignment_is_sticky_and_uniform_within_one_percent() {
    let split = [0.5, 0.3, 0.2];
    let n = 100_000;
    let mut counts = [0usize; 3];
    for i in 0..n {
        let key = format!("user-{i}");
        let arm = abtest::assign(&key, "checkout-2026-12", &split).unwrap();
        assert_eq!(arm, abtest::assign(&key, "checkout-2026-12", &split).unwrap(), "{key} not sticky");
        counts[arm] += 1;
    }
    for (arm, (&c, &w)) in counts.iter().zip(&split).enumerate() {
        let share = c as f64 / n as f64;
        assert!((share - w).abs() < 0.01, "arm {arm}: share {share}, weight {w}");
    }
    // Unit points are uniform too: ten deciles within 1% of 0.1 each.
    let mut deciles = [0usize; 10];
    for i in 0..n {
        deciles[(abtest::unit_point(&i.to_string(), "s") * 10.0) as usize] += 1;
    }
    for (d, &c) in deciles.iter().enumerate() {
        assert!((c as f64 / n as f64 - 0.1).abs() < 0.01, "decile {d}: {c}");
    }
}

#[test]
fn a_new_salt_reshuffles_independently() {
    let split = [0.5, 0.5];
    let n = 100_000;
    let mut same = 0;
    for i in 0..n {
        let key = format!("user-{i}");
        if abtest::assign(&key, "exp-1", &split).unwrap() == abtest::assign(&key, "exp-2", &split).unwrap() {
            same += 1;
        }
    }
    // Independent 50/50 assignments agree half the time.
    let agree = same as f64 / n as f64;
    assert!((agree - 0.5).abs() < 0.01, "agreement across salts: {agree}");
    // The separator keeps (salt, key) pairs with the same concatenation apart.
    assert_ne!(abtest::assignment_hash("c", "ab"), abtest::assignment_hash("bc", "a"));
}

#[test]
fn zero_weight_arms_get_no_traffic() {
    for i in 0..20_000 {
        let arm = abtest::assign(&i.to_string(), "s", &[0.0, 1.0, 0.0]).unwrap();
        assert_eq!(arm, 1);
    }
}

#[test]
fn routing_serves_one_arm_and_shadows_the_other() {
    let config = RolloutConfig { arms: vec!["v1".into(), "v2".into()], split: vec![1.0, 0.0], shadow: Some(1) };
    for i in 0..1000 {
        let r = abtest::route(&config, &format!("k{i}"), "rollout").unwrap();
        assert_eq!(r, Route { served: 0, shadow: vec![1] });
    }
    // A shadow arm that also takes traffic is never shadowed on its own requests.
    let config = RolloutConfig { arms: vec!["v1".into(), "v2".into()], split: vec![0.5, 0.5], shadow: Some(1) };
    let mut served_by_shadow = 0;
    for i in 0..1000 {
        let key = format!("k{i}");
        let r = abtest::route(&config, &key, "rollout").unwrap();
        assert_eq!(r.served, abtest::assign(&key, "rollout", &config.split).unwrap());
        if r.served == 1 {
            served_by_shadow += 1;
            assert!(r.shadow.is_empty());
        } else {
            assert_eq!(r.shadow, vec![1]);
        }
    }
    assert!(served_by_shadow > 400 && served_by_shadow < 600);
    // No shadow arm: nothing to score beside the served one.
    let config = RolloutConfig { arms: vec!["a".into(), "b".into()], split: vec![0.5, 0.5], shadow: None };
    assert!(abtest::route(&config, "x", "s").unwrap().shadow.is_empty());
    // The config reads from JSON.
    let json = r#"{"arms": ["v1", "v2"], "split": [0.9, 0.1], "shadow": null}"#;
    let parsed: RolloutConfig = serde_json::from_str(json).unwrap();
    assert_eq!(parsed.split, vec![0.9, 0.1]);
}

#[test]
fn bad_splits_and_configs_are_typed_errors() {
    for split in [&[][..], &[0.5, 0.4], &[0.5, 0.6], &[1.5, -0.5], &[f64::NAN, 1.0], &[f64::INFINITY]] {
        assert!(matches!(abtest::assign("k", "s", split), Err(Error::AbSplit(_))), "{split:?}");
    }
    let mismatch = RolloutConfig { arms: vec!["a".into()], split: vec![0.5, 0.5], shadow: None };
    assert!(matches!(abtest::route(&mismatch, "k", "s"), Err(Error::AbSplit(_))));
    let no_such_shadow = RolloutConfig { arms: vec!["a".into(), "b".into()], split: vec![0.5, 0.5], shadow: Some(2) };
    assert!(matches!(abtest::route(&no_such_shadow, "k", "s"), Err(Error::AbSplit(_))));
}

#[test]
fn bad_test_inputs_are_typed_errors() {
    use abtest::{two_proportion_ztest as z, welch_ttest as w};
    assert!(matches!(z(0, 0, 1, 10, 0.95), Err(Error::AbEmpty(_))));
    assert!(matches!(z(11, 10, 1, 10, 0.95), Err(Error::AbProportion(_))));
    assert!(matches!(z(0, 10, 0, 10, 0.95), Err(Error::AbDegenerate(_))));
    assert!(matches!(z(10, 10, 10, 10, 0.95), Err(Error::AbDegenerate(_))));
    assert!(matches!(z(1, 10, 2, 10, 1.0), Err(Error::InvalidParameter(_))));
    assert!(matches!(w(&[], &[1.0, 2.0], 0.95), Err(Error::AbEmpty(_))));
    assert!(matches!(w(&[1.0], &[1.0, 2.0], 0.95), Err(Error::AbTooFew { n: 1, min: 2, .. })));
    assert!(matches!(w(&[1.0, 2.0], &[3.0], 0.95), Err(Error::AbTooFew { n: 1, .. })));
    assert!(matches!(w(&[1.0, f64::NAN], &[1.0, 2.0], 0.95), Err(Error::InvalidParameter(_))));
    assert!(matches!(w(&[1.0, 1.0], &[2.0, 2.0], 0.95), Err(Error::AbDegenerate(_))));
    assert!(matches!(w(&[1.0, 2.0], &[1.0, 2.0], 0.0), Err(Error::InvalidParameter(_))));
    let one = SampleStats { n: 1, mean: 0.0, variance: 1.0 };
    let two = SampleStats { n: 2, mean: 0.0, variance: 1.0 };
    assert!(matches!(abtest::welch_ttest_from_stats(one, two, 0.95), Err(Error::AbTooFew { .. })));
    let s = abtest::sample_size_two_proportions;
    assert!(matches!(s(0.05, 0.8, -0.1, 0.2), Err(Error::AbProportion(_))));
    assert!(matches!(s(0.05, 0.8, 0.1, 1.2), Err(Error::AbProportion(_))));
    assert!(matches!(s(0.05, 0.8, f64::NAN, 0.2), Err(Error::AbProportion(_))));
    assert!(matches!(s(0.05, 0.8, 0.2, 0.2), Err(Error::AbDegenerate(_))));
    assert!(matches!(s(0.0, 0.8, 0.1, 0.2), Err(Error::InvalidParameter(_))));
    assert!(matches!(s(0.05, 1.0, 0.1, 0.2), Err(Error::InvalidParameter(_))));
    let p = abtest::power_two_proportions;
    assert!(matches!(p(0.05, 0.0, 0.1, 0.2), Err(Error::InvalidParameter(_))));
    assert!(matches!(p(0.05, 100.0, 1.1, 0.2), Err(Error::AbProportion(_))));
}

#[test]
fn huge_degrees_of_freedom_converge_and_match_scipy() {
    // Welch's df reaches millions with large arms; the continued fraction must still converge and
    // keep 1e-9 up to df = 1e7 (the documented limit). `scipy.stats.t.sf(t, 1e7)`, scipy 1.17.1.
    for (t, scipy) in [
        (0.5, 0.308_537_544_227_007_4),
        (2.0, 0.022_750_145_445_921_48),
        (3.0, 0.001_349_901_355_518_581_7),
        (6.0, 9.866_213_666_838_91e-10),
    ] {
        let ours = abtest::student_t_sf(t, 1e7);
        assert!((ours - scipy).abs() <= 1e-9 * scipy, "t = {t}: {ours} vs scipy {scipy}");
        assert!((abtest::student_t_sf(t, 1e9) - abtest::normal_sf(t)).abs() <= 1e-6 * scipy);
    }
    let q = abtest::student_t_ppf(0.975, 1e8);
    assert!((q - abtest::normal_ppf(0.975)).abs() < 1e-6, "{q}");
}

// ---------------------------------------------------------------------------------------------
// Sequential testing: the mSPRT and the peeking simulation.
// ---------------------------------------------------------------------------------------------

use abtest::{MsprtConfig, MsprtLook, PeekingConfig, SequentialTest};

/// `look` equals the hand-computed `(lambda, p_value, half_width)` to 1e-12 relative.
fn check_look(look: MsprtLook, expected: (f64, f64, f64)) {
    let (lambda, p, half) = expected;
    let near = |what: &str, ours: f64, want: f64| {
        assert!((ours - want).abs() <= 1e-12 * want.abs(), "{what}: ours {ours:e}, by hand {want:e} ({look:?})")
    };
    near("lambda", look.lambda, lambda);
    near("p-value", look.p_value, p);
    near("ci low", look.diff - look.ci_low, half);
    near("ci high", look.ci_high - look.diff, half);
}

#[test]
fn msprt_matches_hand_computed_values() {
    // Values by the formula in 30-digit decimal arithmetic (Python's `decimal`), not by this crate.
    // diff 0.02, V 1e-4, tau 0.01: the exponent is exactly 1 and V/(V + tau²) = 1/2, so Λ = e/√2.
    let config = MsprtConfig { alpha: 0.05, tau: 0.01 };
    let e_over_sqrt2 = std::f64::consts::E / std::f64::consts::SQRT_2;
    check_look(
        abtest::msprt_look(0.02, 1e-4, &config).unwrap(),
        (e_over_sqrt2, 1.0 / e_over_sqrt2, 0.036_563_948_713_638_49),
    );
    // 120/1000 against 100/1000, tau 0.02: V = (0.12·0.88 + 0.1·0.9)/1000 = 1.956e-4.
    let config = MsprtConfig { alpha: 0.05, tau: 0.02 };
    let look = abtest::msprt_two_proportions(120, 1000, 100, 1000, &config).unwrap();
    assert!((look.variance - 1.956e-4).abs() < 1e-18);
    check_look(look, (1.138_771_761_945_147_4, 0.878_139_091_095_734_6, 0.045_489_656_416_217_48));
    // Means: n 50, mean 10.5, var 4 against n 40, mean 10, var 9, tau 1: V = 4/50 + 9/40 = 0.305.
    let a = SampleStats { n: 50, mean: 10.5, variance: 4.0 };
    let b = SampleStats { n: 40, mean: 10.0, variance: 9.0 };
    let look = abtest::msprt_means(a, b, &MsprtConfig { alpha: 0.05, tau: 1.0 }).unwrap();
    check_look(look, (0.661_812_731_090_085_4, 1.0, 1.721_435_546_774_751_4));
    // The confidence set's ends are exactly where Λ(θ0) reaches 1/α.
    for end in [look.ci_low, look.ci_high] {
        let lr = abtest::mixture_likelihood_ratio(look.diff, look.variance, 1.0, end);
        assert!((lr - 20.0).abs() < 1e-9, "Λ at the interval's end: {lr}");
    }
}

#[test]
fn the_sequential_p_value_never_rises_and_the_intervals_nest() {
    let config = MsprtConfig { alpha: 0.05, tau: 0.02 };
    let mut test = SequentialTest::new(config).unwrap();
    assert_eq!((test.p_value(), test.looks(), test.rejected_at()), (1.0, 0, None));
    // Arm a converts at 13 %, b at 10 %: cumulative counts over ten looks of 300 users per arm.
    let (mut prev_p, mut prev_ci) = (1.0, test.confidence_interval());
    let mut sa = 0;
    let mut sb = 0;
    for look in 1..=10u64 {
        sa += [41, 37, 39, 40, 38, 42, 36, 39, 40, 38][look as usize - 1];
        sb += [29, 31, 30, 28, 32, 30, 29, 31, 30, 30][look as usize - 1];
        let l = abtest::msprt_two_proportions(sa, 300 * look, sb, 300 * look, &config).unwrap();
        let p = test.observe(&l);
        let ci = test.confidence_interval();
        assert!(p <= prev_p && p <= l.p_value, "look {look}: p {p} after {prev_p}");
        assert!(ci.0 >= prev_ci.0 && ci.1 <= prev_ci.1, "look {look}: {ci:?} not inside {prev_ci:?}");
        (prev_p, prev_ci) = (p, ci);
    }
    assert_eq!(test.looks(), 10);
    let at = test.rejected_at().expect("a three-point lift over 3,000 users per arm is found");
    assert!(test.p_value() <= 0.05 && at < 10, "rejected at look {at}");
    assert!(prev_ci.0 > 0.0 && prev_ci.1 < 0.06, "confidence sequence {prev_ci:?}");
}

/// An A/A test at 10 %, 100 new users per arm at each of 20 looks (2,000 per arm at the horizon).
fn aa(simulations: usize) -> PeekingConfig {
    PeekingConfig {
        p_a: 0.10,
        p_b: 0.10,
        batch: 100,
        looks: 20,
        simulations,
        msprt: MsprtConfig { alpha: 0.05, tau: 0.02 },
        seed: 2026,
    }
}

#[test]
fn peeking_inflates_the_false_positive_rate_and_the_msprt_does_not() {
    // 2,000 simulated A/A experiments: a rate's standard error is at most √(0.25/2000) = 0.011, and
    // √(0.05 · 0.95/2000) = 0.0049 near α. Bounds are ≥ 3 standard errors from the expected rate.
    let n = 2000;
    let out = abtest::simulate_peeking(&aa(n)).unwrap();
    let (fixed, peeking, msprt) = (out.rate(out.fixed_horizon), out.rate(out.peeking), out.rate(out.msprt));
    println!("A/A, 20 looks, {n} runs: fixed horizon {fixed:.3}, peeking {peeking:.3}, mSPRT {msprt:.3}");
    // Read once, the z-test keeps its level: 0.05 ± 3 · 0.0049.
    assert!((fixed - 0.05).abs() < 0.015, "fixed horizon: {fixed}");
    // Read 20 times it rejects about a quarter of true nulls (Armitage, McPherson & Rowe 1969: 0.25
    // for 20 looks at α = 0.05 with normal data); 0.15 is 9 standard errors below.
    assert!(peeking > 0.15, "peeking: {peeking}");
    // The mSPRT read at every look stays at most α (+ 3 standard errors: 0.0146).
    assert!(msprt <= 0.05 + 3.0 * (0.05f64 * 0.95 / n as f64).sqrt(), "mSPRT: {msprt}");
    // Same seed, same answer (each experiment has its own stream: threads do not matter).
    assert_eq!(abtest::simulate_peeking(&aa(n)).unwrap(), out);
}

#[test]
fn the_msprt_detects_a_real_effect_early() {
    // 13 % against 10 % at 4,000 users per arm: z ≈ 0.03 / 0.0071 = 4.2, so the fixed-horizon
    // test's power is ≈ 0.99. The mSPRT pays for always-valid reading with some power (0.91 with
    // this seed); 0.8 is 8 standard errors (√(0.09 · 0.91/500) = 0.013) below it.
    let config = PeekingConfig { p_a: 0.13, batch: 200, simulations: 500, ..aa(0) };
    let out = abtest::simulate_peeking(&config).unwrap();
    let (fixed, power) = (out.rate(out.fixed_horizon), out.rate(out.msprt));
    println!(
        "13 % vs 10 %: fixed {fixed:.3}, mSPRT power {power:.3}, mean stop at look {:.1} of 20",
        out.msprt_mean_stop
    );
    assert!(fixed > 0.95, "fixed-horizon power {fixed}");
    assert!(power > 0.8, "mSPRT power {power}");
    // …and it usually stops well before the horizon.
    assert!(out.msprt_mean_stop < 15.0, "mean stopping look {}", out.msprt_mean_stop);
}

#[test]
fn bad_sequential_inputs_are_typed_errors() {
    let ok = MsprtConfig { alpha: 0.05, tau: 0.02 };
    for bad in
        [MsprtConfig { alpha: 0.0, ..ok }, MsprtConfig { alpha: 1.0, ..ok }, MsprtConfig { alpha: f64::NAN, ..ok }]
    {
        assert!(matches!(SequentialTest::new(bad), Err(Error::InvalidParameter(_))), "{bad:?}");
    }
    for tau in [0.0, -1.0, f64::INFINITY, f64::NAN] {
        assert!(matches!(abtest::msprt_look(0.1, 1.0, &MsprtConfig { tau, ..ok }), Err(Error::InvalidParameter(_))));
    }
    assert!(matches!(abtest::msprt_look(f64::NAN, 1.0, &ok), Err(Error::InvalidParameter(_))));
    for v in [0.0, -1.0, f64::INFINITY] {
        assert!(matches!(abtest::msprt_look(0.1, v, &ok), Err(Error::AbDegenerate(_))), "variance {v}");
    }
    let m = abtest::msprt_two_proportions;
    assert!(matches!(m(0, 0, 1, 10, &ok), Err(Error::AbEmpty(_))));
    assert!(matches!(m(11, 10, 1, 10, &ok), Err(Error::AbProportion(_))));
    assert!(matches!(m(0, 10, 10, 10, &ok), Err(Error::AbDegenerate(_))));
    let one = SampleStats { n: 1, mean: 0.0, variance: 1.0 };
    let two = SampleStats { n: 2, mean: 0.0, variance: 1.0 };
    assert!(matches!(abtest::msprt_means(one, two, &ok), Err(Error::AbTooFew { n: 1, min: 2, .. })));
    let nan = SampleStats { variance: f64::NAN, ..two };
    assert!(matches!(abtest::msprt_means(two, nan, &ok), Err(Error::InvalidParameter(_))));
    let s = abtest::simulate_peeking;
    assert!(matches!(s(&PeekingConfig { p_b: 1.5, ..aa(10) }), Err(Error::AbProportion(_))));
    assert!(matches!(s(&PeekingConfig { looks: 0, ..aa(10) }), Err(Error::InvalidParameter(_))));
    assert!(matches!(s(&PeekingConfig { batch: 0, ..aa(10) }), Err(Error::InvalidParameter(_))));
    assert!(matches!(s(&aa(0)), Err(Error::InvalidParameter(_))));
    assert!(matches!(
        s(&PeekingConfig { msprt: MsprtConfig { tau: 0.0, ..ok }, ..aa(10) }),
        Err(Error::InvalidParameter(_))
    ));
}
