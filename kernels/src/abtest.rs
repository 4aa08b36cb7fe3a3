//! A/B testing and rollout (feature `abtest`): sticky assignment of keys to arms, a traffic split with
//! a shadow arm, and the fixed-horizon statistics that decide an experiment, matched to `scipy.stats`
//! (fixtures in `tests/fixtures/abtest/`, written by `make_fixtures.py`).
//!
//! # Assignment
//! [`assign`] hashes `salt ‖ 0xFF ‖ key` and maps the hash to a point of `[0, 1)` that falls in one
//! arm's share of the split. The same key and salt always give the same arm (sticky, on every
//! machine and every Rust version); a new salt reshuffles every key independently of the old
//! assignment. The `0xFF` byte never occurs in UTF-8, so `("ab", "c")` and `("a", "bc")` differ.
//!
//! The hash is **FNV-1a 64** (Fowler–Noll–Vo; offset basis `0xcbf29ce484222325`, prime
//! `0x100000001b3`; <http://www.isthe.com/chongo/tech/comp/fnv/>) followed by the 64-bit finaliser
//! of MurmurHash3 (`fmix64`, Austin Appleby) so every output bit depends on every input bit (raw
//! FNV-1a mixes its last byte into the low bits only). Both are written here, not taken from `std`:
//! `std::collections::hash_map::DefaultHasher` is SipHash-1-3 today but its algorithm is explicitly
//! unspecified and may change between Rust releases, which would silently move users between arms
//! after a toolchain upgrade. The top 53 bits of the mixed hash give the unit point.
//!
//! # Shadow mode
//! A [`RolloutConfig`] names the arms, the split of served traffic and at most one shadow arm. The
//! shadow arm scores every request (its answer is logged, never served); give it weight 0 in the
//! split to keep it out of serving. [`route`] returns the served arm and the arms to score in shadow.
//!
//! # Statistics
//! - [`two_proportion_ztest`]: pooled standard error for the test statistic, unpooled (Wald) for
//!   the confidence interval of the difference, two-sided p-value.
//! - [`welch_ttest`] / [`welch_ttest_from_stats`]: Welch's unequal-variance t-test with the
//!   Welch–Satterthwaite degrees of freedom, two-sided p-value and a confidence interval of the
//!   difference of means (scipy's `ttest_ind(a, b, equal_var=False)` and its `confidence_interval`).
//! - [`sample_size_two_proportions`] / [`power_two_proportions`]: the normal-approximation sample
//!   size per arm of a two-sided test of two proportions (Fleiss, *Statistical Methods for Rates and
//!   Proportions*, formula without continuity correction) and its inverse, the power at `n` per arm.
//!
//! # Sequential testing
//! A fixed-horizon test is valid only when read once, at the planned sample size; reading it after
//! every batch and stopping at the first `p ≤ α` ("peeking") rejects a true null far more often than
//! `α` ([`simulate_peeking`] measures how much). The mixture sequential probability ratio test
//! (mSPRT; Johari, Pekelis & Walsh, "Always valid inference: continuous monitoring of A/B tests",
//! *Operations Research* 70(3), 2022; after Robbins 1970) may be read at every look:
//! - [`mixture_likelihood_ratio`]: for a normal estimate `θ̂` of the difference with variance `V`
//!   and a normal mixing distribution `N(θ0, τ²)` over the alternative,
//!   `Λ = √(V/(V + τ²)) · exp(τ² (θ̂ − θ0)² / (2 V (V + τ²)))`. Under `H0`, `Λ_n` is a nonnegative
//!   martingale with mean 1, so by Ville's inequality `P(∃ n: Λ_n ≥ 1/α) ≤ α`;
//! - [`msprt_two_proportions`] / [`msprt_means`]: `θ̂` and `V` from counts (unpooled plug-in
//!   variance, the normal approximation the paper uses) or from [`SampleStats`];
//! - [`SequentialTest`]: the always-valid p-value `p_n = min(p_{n−1}, 1/Λ_n)` and the confidence
//!   sequence, the running intersection of `{θ0 : Λ_n(θ0) < 1/α}`
//!   (half-width [`msprt_half_width`]).
//!
//! Validity holds exactly for normal data with known variance; with plug-in variances and
//! proportions it is asymptotic (the tests check it by simulation).
//!
//! Differences are always *first minus second* (`a − b`, as in scipy and statsmodels).
//!
//! The distribution functions are implemented here:
//! - normal CDF through `erfc`: the series `erf(x) = 2/√π · e^{−x²} Σ 2ⁿ x^{2n+1} / (1·3···(2n+1))`
//!   (all terms positive) for `x < 2.5` and the continued fraction of `erfc` (Abramowitz & Stegun
//!   7.1.14) evaluated by the modified Lentz method for larger `x`: relative error ≲ 1e−12 in both
//!   tails (the worst is just below the switch, where `1 − erf` cancels; 6.5e−13 measured at Φ(−3.5));
//! - normal quantile: P. J. Acklam's rational approximation (2003, relative error 1.15e−9), refined
//!   by Halley steps on the CDF to full double precision;
//! - Student-t CDF: `I_x(ν/2, 1/2)` with `x = ν/(ν+t²)`, the regularized incomplete beta function
//!   evaluated by its continued fraction (Numerical Recipes §6.4) with the modified Lentz method
//!   (Lentz 1976; Thompson & Barnett 1986), `ln Γ` by the Lanczos approximation (g = 7, 9 terms) and
//!   `ln B(a, b)` for a large argument by the difference of two Stirling series (no cancellation of
//!   large logarithms at large `df`);
//! - Student-t quantile: safeguarded Newton iteration on the upper tail, bracketed by bisection.
//!
//! Accuracy against scipy (`tests/it/abtest.rs`): every fixture within 1e−9 relative, the largest
//! deviation measured 6.5e−13. One known limit: at very large `df` the continued fraction loses
//! digits to cancellation, about `df · 1e−17` relative (3.8e−10 measured at `df = 1e7`, 2.9e−9 at
//! `df = 1e8`); Welch's df only gets there with tens of millions of observations per arm, where the
//! t and normal tails agree to ~1e−7 anyway.

use crate::{Error, Result};

/// FNV-1a 64 offset basis.
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
/// FNV-1a 64 prime.
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
/// How far a split may be from summing to 1.
const SPLIT_TOLERANCE: f64 = 1e-9;

/// FNV-1a 64 of `bytes`, continuing from `state` (start with [`fnv1a64`]'s offset basis).
fn fnv1a64_continue(mut state: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        state ^= u64::from(b);
        state = state.wrapping_mul(FNV_PRIME);
    }
    state
}

/// FNV-1a 64 of `bytes` (the published algorithm: `fnv1a64(b"") == 0xcbf29ce484222325`,
/// `fnv1a64(b"a") == 0xaf63dc4c8601ec8c`).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    fnv1a64_continue(FNV_OFFSET, bytes)
}

/// MurmurHash3's 64-bit finaliser: a bijection of `u64` with full avalanche.
fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    h
}

/// The stable 64-bit hash of `(salt, key)` behind [`assign`]: `fmix64(fnv1a64(salt ‖ 0xFF ‖ key))`.
pub fn assignment_hash(key: &str, salt: &str) -> u64 {
    let state = fnv1a64_continue(FNV_OFFSET, salt.as_bytes());
    let state = fnv1a64_continue(state, &[0xFF]);
    fmix64(fnv1a64_continue(state, key.as_bytes()))
}

/// The point of `[0, 1)` that `(key, salt)` hashes to (top 53 bits of [`assignment_hash`]).
pub fn unit_point(key: &str, salt: &str) -> f64 {
    (assignment_hash(key, salt) >> 11) as f64 / (1u64 << 53) as f64
}

/// Checks a traffic split: at least one arm, every weight finite and ≥ 0, summing to 1 (± 1e−9).
pub fn validate_split(split: &[f64]) -> Result<()> {
    if split.is_empty() {
        return Err(Error::AbSplit("the split has no arms".into()));
    }
    if let Some((i, w)) = split.iter().enumerate().find(|(_, w)| !w.is_finite() || **w < 0.0) {
        return Err(Error::AbSplit(format!("weight {i} is {w}; weights must be finite and >= 0")));
    }
    let sum: f64 = split.iter().sum();
    if (sum - 1.0).abs() > SPLIT_TOLERANCE {
        return Err(Error::AbSplit(format!("the weights sum to {sum}, not 1")));
    }
    Ok(())
}

/// The arm of a validated split that the unit point `u` falls in (never an arm of weight 0).
fn arm_of(u: f64, split: &[f64]) -> usize {
    let mut cumulative = 0.0;
    for (i, &w) in split.iter().enumerate() {
        cumulative += w;
        if u < cumulative {
            return i;
        }
    }
    // Rounding left `u` above the running sum: the last arm with traffic.
    split.iter().rposition(|&w| w > 0.0).unwrap_or(split.len() - 1)
}

/// The arm `key` is assigned to under `salt` and the traffic `split` (weights summing to 1):
/// sticky (same key and salt → same arm), uniform over keys in proportion to the weights, and
/// reshuffled by a new salt. Errors with [`Error::AbSplit`] on an invalid split.
pub fn assign(key: &str, salt: &str, split: &[f64]) -> Result<usize> {
    validate_split(split)?;
    Ok(arm_of(unit_point(key, salt), split))
}

/// A rollout of several model versions: the arms, the split of served traffic and an optional
/// shadow arm (scored on every request, logged, never served).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RolloutConfig {
    /// The arm names (e.g. model versions), indexed by arm.
    pub arms: Vec<String>,
    /// The share of served traffic of each arm (summing to 1).
    pub split: Vec<f64>,
    /// The arm scored in shadow on every request, if any (usually with weight 0 in `split`).
    pub shadow: Option<usize>,
}

impl RolloutConfig {
    /// Checks the config: a valid split with one weight per arm and a shadow arm that exists.
    pub fn validate(&self) -> Result<()> {
        validate_split(&self.split)?;
        if self.split.len() != self.arms.len() {
            return Err(Error::AbSplit(format!("{} weights for {} arms", self.split.len(), self.arms.len())));
        }
        if let Some(s) = self.shadow
            && s >= self.arms.len()
        {
            return Err(Error::AbSplit(format!("shadow arm {s} does not exist ({} arms)", self.arms.len())));
        }
        Ok(())
    }
}

/// Where one request goes: the arm whose answer is served and the arms scored only to be logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The arm whose answer is returned.
    pub served: usize,
    /// The arms scored in shadow (their answers are logged, not returned); never contains `served`.
    pub shadow: Vec<usize>,
}

/// Routes the request of `key` under `config` and `salt`: the served arm is [`assign`]'s, and the
/// shadow arm (when set and not the served one) is scored alongside.
pub fn route(config: &RolloutConfig, key: &str, salt: &str) -> Result<Route> {
    config.validate()?;
    let served = arm_of(unit_point(key, salt), &config.split);
    let shadow = config.shadow.filter(|&s| s != served).into_iter().collect();
    Ok(Route { served, shadow })
}

// ---------------------------------------------------------------------------------------------
// Distribution functions.
// ---------------------------------------------------------------------------------------------

/// √π.
const SQRT_PI: f64 = 1.772_453_850_905_516;
/// Tiny value of the Lentz method (stands in for a zero denominator).
const LENTZ_TINY: f64 = 1e-300;

/// One step of the modified Lentz method for a continued fraction's next term `a / (b + …)`:
/// updates `c` and `d` and returns the factor `c·d` the fraction's value is multiplied by.
fn lentz_step(a: f64, b: f64, c: &mut f64, d: &mut f64) -> f64 {
    *d = b + a * *d;
    if d.abs() < LENTZ_TINY {
        *d = LENTZ_TINY;
    }
    *c = b + a / *c;
    if c.abs() < LENTZ_TINY {
        *c = LENTZ_TINY;
    }
    *d = 1.0 / *d;
    *c * *d
}

/// The complementary error function, relative error ≲ 1e−12 for every `x` (see the module docs).
pub fn erfc(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    if x < 0.0 {
        return 2.0 - erfc(-x);
    }
    if x < 2.5 { 1.0 - erf_series(x) } else { erfc_continued_fraction(x) }
}

/// `erf(x)` for `0 ≤ x < 2.5` by the series `2/√π · e^{−x²} Σ 2ⁿ x^{2n+1} / (1·3···(2n+1))`.
fn erf_series(x: f64) -> f64 {
    let x2 = x * x;
    let mut term = x;
    let mut sum = x;
    let mut n = 0.0;
    loop {
        n += 1.0;
        term *= 2.0 * x2 / (2.0 * n + 1.0);
        sum += term;
        if term <= sum * 1e-17 {
            break;
        }
    }
    2.0 / SQRT_PI * (-x2).exp() * sum
}

/// `erfc(x)` for `x ≥ 2.5` by the continued fraction
/// `e^{−x²}/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + …)))))`, modified Lentz.
fn erfc_continued_fraction(x: f64) -> f64 {
    // f = b0 + a1/(b1 + a2/(b2 + ...)) with b_k = x, a_k = k/2.
    let mut f = x;
    let mut c = x;
    let mut d = 0.0;
    for k in 1..500 {
        let delta = lentz_step(f64::from(k) / 2.0, x, &mut c, &mut d);
        f *= delta;
        if (delta - 1.0).abs() < 1e-16 {
            break;
        }
    }
    (-x * x).exp() / (SQRT_PI * f)
}

/// The standard normal CDF `Φ(x)`, relative error ≲ 1e−12 in both tails.
pub fn normal_cdf(x: f64) -> f64 {
    0.5 * erfc(-x / std::f64::consts::SQRT_2)
}

/// The standard normal survival function `1 − Φ(x)`, computed without cancellation.
pub fn normal_sf(x: f64) -> f64 {
    normal_cdf(-x)
}

/// The standard normal density.
fn normal_pdf(x: f64) -> f64 {
    (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt()
}

/// The standard normal quantile `Φ⁻¹(p)` for `0 < p < 1` (`−∞`/`+∞` at 0/1, NaN outside):
/// Acklam's approximation refined by Halley steps.
pub fn normal_ppf(p: f64) -> f64 {
    if p.is_nan() || !(0.0..=1.0).contains(&p) {
        return f64::NAN;
    }
    if p == 0.0 {
        return f64::NEG_INFINITY;
    }
    if p == 1.0 {
        return f64::INFINITY;
    }
    if p > 0.5 {
        // Solve in the upper tail directly: Φ(−x) = 1 − p.
        return -normal_ppf_lower(1.0 - p);
    }
    normal_ppf_lower(p)
}

/// `Φ⁻¹(p)` for `0 < p ≤ 0.5`.
fn normal_ppf_lower(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] =
        [7.784_695_709_041_462e-3, 3.224_671_290_700_398e-1, 2.445_134_137_142_996, 3.754_408_661_907_416];
    const P_LOW: f64 = 0.02425;
    let mut x = if p < P_LOW {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    };
    // Halley steps on Φ(x) − p (Φ is relative-accurate in the lower tail).
    for _ in 0..3 {
        let e = normal_cdf(x) - p;
        let u = e / normal_pdf(x);
        let step = u / (1.0 + 0.5 * x * u);
        x -= step;
        if step.abs() <= 1e-16 * x.abs().max(1.0) {
            break;
        }
    }
    x
}

/// `ln Γ(x)` for `x > 0`, Lanczos approximation (g = 7, 9 coefficients), relative error ≲ 1e−15.
pub fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const COEF: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x) Γ(1 − x) = π / sin(πx).
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).abs().ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = COEF[0];
    let t = x + G + 0.5;
    for (i, &c) in COEF.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// `ln Γ(a) − ln Γ(a + b)` without the cancellation of two large logarithms: by the Stirling series
/// of both terms, differenced analytically, when `a ≥ 10`, else by [`ln_gamma`].
fn ln_gamma_ratio(a: f64, b: f64) -> f64 {
    if a < 10.0 {
        return ln_gamma(a) - ln_gamma(a + b);
    }
    // ln Γ(x) = (x − ½) ln x − x + ½ ln 2π + s(x), s(x) = 1/(12x) − 1/(360x³) + 1/(1260x⁵) − …
    let s = |x: f64| {
        let r = 1.0 / x;
        let r2 = r * r;
        r * (1.0 / 12.0
            - r2 * (1.0 / 360.0
                - r2 * (1.0 / 1260.0 - r2 * (1.0 / 1680.0 - r2 * (1.0 / 1188.0 - r2 * (691.0 / 360_360.0))))))
    };
    -(a - 0.5) * (b / a).ln_1p() - b * (a + b).ln() + b + s(a) - s(a + b)
}

/// The regularized incomplete beta function `I_x(a, b)` for `a, b > 0`, `0 ≤ x ≤ 1`, given `x`,
/// `1 − x` and their logarithms computed by the caller (so that neither tail loses digits to
/// cancellation, and `a ln x` keeps its digits when `a` is large).
fn inc_beta(a: f64, b: f64, x: f64, one_minus_x: f64, ln_x: f64, ln_one_minus_x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if one_minus_x <= 0.0 {
        return 1.0;
    }
    // ln B(a, b) = ln Γ(b) + (ln Γ(a) − ln Γ(a + b)), the difference taken on the larger argument.
    let ln_beta = if a >= b { ln_gamma(b) + ln_gamma_ratio(a, b) } else { ln_gamma(a) + ln_gamma_ratio(b, a) };
    let front = (a * ln_x + b * ln_one_minus_x - ln_beta).exp();
    if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_continued_fraction(a, b, x) / a
    } else {
        1.0 - front * beta_continued_fraction(b, a, one_minus_x) / b
    }
}

/// The continued fraction of `I_x(a, b)` (Numerical Recipes `betacf`), modified Lentz method.
fn beta_continued_fraction(a: f64, b: f64, x: f64) -> f64 {
    let qab = a + b;
    let qap = a + 1.0;
    let qam = a - 1.0;
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < LENTZ_TINY {
        d = LENTZ_TINY;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..100_000 {
        let m = f64::from(m);
        let m2 = 2.0 * m;
        // Even step.
        h *= lentz_step(m * (b - m) * x / ((qam + m2) * (a + m2)), 1.0, &mut c, &mut d);
        // Odd step.
        let delta = lentz_step(-(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)), 1.0, &mut c, &mut d);
        h *= delta;
        if (delta - 1.0).abs() < 1e-16 {
            break;
        }
    }
    h
}

/// The Student-t survival function `P(T > t)` with `df > 0` degrees of freedom (real, not only
/// integer), relative-accurate in the upper tail.
pub fn student_t_sf(t: f64, df: f64) -> f64 {
    if t.is_nan() || df.is_nan() || df <= 0.0 {
        return f64::NAN;
    }
    if t.is_infinite() {
        return if t > 0.0 { 0.0 } else { 1.0 };
    }
    let t2 = t * t;
    // P(|T| > |t|) = I_x(df/2, 1/2), x = df/(df + t²), 1 − x = t²/(df + t²).
    let ratio = t2 / df;
    let ln_x = -ratio.ln_1p();
    let ln_one_minus_x = ratio.ln() + ln_x; // ln(t²/(df + t²)) = ln(t²/df) − ln(1 + t²/df)
    let two_sided = inc_beta(0.5 * df, 0.5, df / (df + t2), t2 / (df + t2), ln_x, ln_one_minus_x);
    if t > 0.0 { 0.5 * two_sided } else { 1.0 - 0.5 * two_sided }
}

/// The Student-t CDF `P(T ≤ t)` with `df > 0` degrees of freedom.
pub fn student_t_cdf(t: f64, df: f64) -> f64 {
    student_t_sf(-t, df)
}

/// The Student-t density.
fn student_t_pdf(t: f64, df: f64) -> f64 {
    let ln = ln_gamma(0.5 * (df + 1.0))
        - ln_gamma(0.5 * df)
        - 0.5 * (df * std::f64::consts::PI).ln()
        - 0.5 * (df + 1.0) * (t * t / df).ln_1p();
    ln.exp()
}

/// The Student-t quantile: the `t` with `P(T ≤ t) = p`, for `0 < p < 1` and `df > 0`.
pub fn student_t_ppf(p: f64, df: f64) -> f64 {
    if p.is_nan() || df.is_nan() || df <= 0.0 || !(0.0..=1.0).contains(&p) {
        return f64::NAN;
    }
    if p == 0.0 {
        return f64::NEG_INFINITY;
    }
    if p == 1.0 {
        return f64::INFINITY;
    }
    if p == 0.5 {
        return 0.0;
    }
    if p < 0.5 { -student_t_upper(p, df) } else { student_t_upper(1.0 - p, df) }
}

/// The `t > 0` with `P(T > t) = q`, for `0 < q < 1/2`: Newton steps kept inside a bisection bracket.
fn student_t_upper(q: f64, df: f64) -> f64 {
    let mut lo = 0.0;
    let mut hi = normal_ppf(1.0 - q).max(1.0);
    while student_t_sf(hi, df) > q {
        lo = hi;
        hi *= 2.0;
        if !hi.is_finite() {
            return f64::INFINITY;
        }
    }
    let mut t = normal_ppf(1.0 - q).clamp(lo, hi);
    for _ in 0..200 {
        let f = student_t_sf(t, df) - q; // decreasing in t
        if f == 0.0 {
            return t;
        }
        if f > 0.0 {
            lo = t;
        } else {
            hi = t;
        }
        let newton = t + f / student_t_pdf(t, df);
        let next = if newton > lo && newton < hi { newton } else { 0.5 * (lo + hi) };
        if (next - t).abs() <= 4.0 * f64::EPSILON * t.abs() || hi - lo <= 4.0 * f64::EPSILON * hi {
            return next;
        }
        t = next;
    }
    t
}

// ---------------------------------------------------------------------------------------------
// Tests.
// ---------------------------------------------------------------------------------------------

/// Checks a confidence level (or any probability that must lie strictly inside (0, 1)).
fn check_open_unit(name: &str, value: f64) -> Result<()> {
    if !(value > 0.0 && value < 1.0) {
        return Err(Error::InvalidParameter(format!("{name} must be in (0, 1), got {value}")));
    }
    Ok(())
}

/// The outcome of a two-proportion z-test (difference `p_a − p_b`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ZTest {
    /// Observed proportion of arm a.
    pub p_a: f64,
    /// Observed proportion of arm b.
    pub p_b: f64,
    /// `p_a − p_b`.
    pub diff: f64,
    /// The pooled standard error of the difference (under H0: `p_a = p_b`).
    pub se_pooled: f64,
    /// The unpooled standard error of the difference (for the confidence interval).
    pub se_unpooled: f64,
    /// The z statistic `diff / se_pooled`.
    pub z: f64,
    /// The two-sided p-value `2 (1 − Φ(|z|))`.
    pub p_value: f64,
    /// Lower end of the Wald confidence interval of `diff`.
    pub ci_low: f64,
    /// Upper end of the Wald confidence interval of `diff`.
    pub ci_high: f64,
}

/// The two-proportion z-test of `successes_a / trials_a` against `successes_b / trials_b`, with a
/// two-sided p-value and a `confidence` (e.g. 0.95) Wald interval of the difference `p_a − p_b`.
///
/// Errors: [`Error::AbEmpty`] when an arm has no trials, [`Error::AbProportion`] when successes exceed
/// trials, [`Error::AbDegenerate`] when every trial succeeded or every one failed (no variance),
/// [`Error::InvalidParameter`] for a confidence outside (0, 1).
pub fn two_proportion_ztest(
    successes_a: u64,
    trials_a: u64,
    successes_b: u64,
    trials_b: u64,
    confidence: f64,
) -> Result<ZTest> {
    check_open_unit("confidence", confidence)?;
    check_counts(successes_a, trials_a, successes_b, trials_b)?;
    let (na, nb) = (trials_a as f64, trials_b as f64);
    let p_a = successes_a as f64 / na;
    let p_b = successes_b as f64 / nb;
    let pooled = (successes_a + successes_b) as f64 / (na + nb);
    let se_pooled = (pooled * (1.0 - pooled) * (1.0 / na + 1.0 / nb)).sqrt();
    if se_pooled == 0.0 {
        return Err(Error::AbDegenerate(format!(
            "the pooled proportion is {pooled}: every trial had the same outcome"
        )));
    }
    let diff = p_a - p_b;
    let z = diff / se_pooled;
    let p_value = 2.0 * normal_sf(z.abs());
    let se_unpooled = (p_a * (1.0 - p_a) / na + p_b * (1.0 - p_b) / nb).sqrt();
    let half = normal_ppf(0.5 + 0.5 * confidence) * se_unpooled;
    Ok(ZTest { p_a, p_b, diff, se_pooled, se_unpooled, z, p_value, ci_low: diff - half, ci_high: diff + half })
}

/// Summary statistics of one sample: size, mean and unbiased variance (`ddof = 1`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SampleStats {
    /// Number of observations.
    pub n: usize,
    /// Sample mean.
    pub mean: f64,
    /// Unbiased sample variance (divisor `n − 1`).
    pub variance: f64,
}

impl SampleStats {
    /// The statistics of `sample` (two-pass: mean, then the sum of squared deviations). Errors with
    /// [`Error::AbEmpty`] on an empty sample, [`Error::AbTooFew`] with fewer than 2 observations and
    /// [`Error::InvalidParameter`] on a NaN or an infinity.
    pub fn of(name: &str, sample: &[f64]) -> Result<Self> {
        if sample.is_empty() {
            return Err(Error::AbEmpty(format!("sample {name} is empty")));
        }
        if sample.len() < 2 {
            return Err(Error::AbTooFew { what: format!("sample {name}"), n: sample.len(), min: 2 });
        }
        if let Some(i) = sample.iter().position(|v| !v.is_finite()) {
            return Err(Error::InvalidParameter(format!("sample {name}: value {i} is {}", sample[i])));
        }
        let n = sample.len() as f64;
        let mean = sample.iter().sum::<f64>() / n;
        let variance = sample.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1.0);
        Ok(Self { n: sample.len(), mean, variance })
    }
}

/// The outcome of Welch's t-test (difference `mean_a − mean_b`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WelchTest {
    /// `mean_a − mean_b`.
    pub diff: f64,
    /// The standard error of the difference, `√(s_a²/n_a + s_b²/n_b)`.
    pub se: f64,
    /// The t statistic `diff / se`.
    pub t: f64,
    /// The Welch–Satterthwaite degrees of freedom.
    pub df: f64,
    /// The two-sided p-value.
    pub p_value: f64,
    /// Lower end of the confidence interval of `diff`.
    pub ci_low: f64,
    /// Upper end of the confidence interval of `diff`.
    pub ci_high: f64,
}

/// Welch's t-test of sample `a` against sample `b` (scipy's `ttest_ind(a, b, equal_var=False)`),
/// with a `confidence` (e.g. 0.95) interval of `mean_a − mean_b`. Errors as [`SampleStats::of`],
/// plus [`Error::AbDegenerate`] when both samples are constant.
pub fn welch_ttest(a: &[f64], b: &[f64], confidence: f64) -> Result<WelchTest> {
    let sa = SampleStats::of("a", a)?;
    let sb = SampleStats::of("b", b)?;
    welch_ttest_from_stats(sa, sb, confidence)
}

/// Welch's t-test from summary statistics (see [`welch_ttest`]).
pub fn welch_ttest_from_stats(a: SampleStats, b: SampleStats, confidence: f64) -> Result<WelchTest> {
    check_open_unit("confidence", confidence)?;
    for (name, s) in [("a", a), ("b", b)] {
        if s.n < 2 {
            return Err(Error::AbTooFew { what: format!("sample {name}"), n: s.n, min: 2 });
        }
        if !s.mean.is_finite() || !s.variance.is_finite() || s.variance < 0.0 {
            return Err(Error::InvalidParameter(format!(
                "sample {name}: mean {} and variance {} must be finite, the variance >= 0",
                s.mean, s.variance
            )));
        }
    }
    let va = a.variance / a.n as f64;
    let vb = b.variance / b.n as f64;
    let se2 = va + vb;
    if se2 == 0.0 {
        return Err(Error::AbDegenerate("both samples are constant: the standard error is 0".into()));
    }
    let se = se2.sqrt();
    let df = se2 * se2 / (va * va / (a.n as f64 - 1.0) + vb * vb / (b.n as f64 - 1.0));
    let diff = a.mean - b.mean;
    let t = diff / se;
    let p_value = 2.0 * student_t_sf(t.abs(), df);
    let half = student_t_ppf(0.5 + 0.5 * confidence, df) * se;
    Ok(WelchTest { diff, se, t, df, p_value, ci_low: diff - half, ci_high: diff + half })
}

/// Checks the inputs of the sample-size formulas.
fn check_power_inputs(alpha: f64, p1: f64, p2: f64) -> Result<()> {
    check_open_unit("alpha", alpha)?;
    for (name, p) in [("p1", p1), ("p2", p2)] {
        if !(0.0..=1.0).contains(&p) {
            return Err(Error::AbProportion(format!("{name} = {p} is outside [0, 1]")));
        }
    }
    if p1 == p2 {
        return Err(Error::AbDegenerate(format!("p1 = p2 = {p1}: no effect to detect")));
    }
    Ok(())
}

/// The sample size per arm (before rounding up: take `.ceil()`) of a two-sided two-proportion
/// z-test at level `alpha` with the given `power` to detect `p1` against `p2`:
///
/// `n = (z_{1−α/2} √(2 p̄ q̄) + z_{power} √(p1 q1 + p2 q2))² / (p1 − p2)²`, `p̄ = (p1 + p2)/2`.
///
/// Errors: [`Error::AbProportion`] for a proportion outside [0, 1], [`Error::AbDegenerate`] when
/// `p1 = p2`, [`Error::InvalidParameter`] for `alpha` or `power` outside (0, 1).
pub fn sample_size_two_proportions(alpha: f64, power: f64, p1: f64, p2: f64) -> Result<f64> {
    check_power_inputs(alpha, p1, p2)?;
    check_open_unit("power", power)?;
    let p_bar = 0.5 * (p1 + p2);
    let z_alpha = normal_ppf(1.0 - 0.5 * alpha);
    let z_beta = normal_ppf(power);
    let root = z_alpha * (2.0 * p_bar * (1.0 - p_bar)).sqrt() + z_beta * (p1 * (1.0 - p1) + p2 * (1.0 - p2)).sqrt();
    Ok(root * root / ((p1 - p2) * (p1 - p2)))
}

/// The power of a two-sided two-proportion z-test at level `alpha` with `n` observations per arm,
/// the inverse of [`sample_size_two_proportions`] (the far rejection region is neglected):
/// `Φ((|p1 − p2| √n − z_{1−α/2} √(2 p̄ q̄)) / √(p1 q1 + p2 q2))`.
pub fn power_two_proportions(alpha: f64, n: f64, p1: f64, p2: f64) -> Result<f64> {
    check_power_inputs(alpha, p1, p2)?;
    if !(n > 0.0 && n.is_finite()) {
        return Err(Error::InvalidParameter(format!("n must be finite and > 0, got {n}")));
    }
    let spread = (p1 * (1.0 - p1) + p2 * (1.0 - p2)).sqrt();
    if spread == 0.0 {
        return Ok(1.0); // p1, p2 ∈ {0, 1} and different: every sample tells them apart.
    }
    let p_bar = 0.5 * (p1 + p2);
    let z_alpha = normal_ppf(1.0 - 0.5 * alpha);
    Ok(normal_cdf(((p1 - p2).abs() * n.sqrt() - z_alpha * (2.0 * p_bar * (1.0 - p_bar)).sqrt()) / spread))
}

// ---------------------------------------------------------------------------------------------
// Sequential testing: the mixture sequential probability ratio test.
// ---------------------------------------------------------------------------------------------

// ANCHOR: msprt_config
/// The mSPRT's settings: the level and the normal mixing distribution `N(0, tau²)` over the effect.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MsprtConfig {
    /// The level: the chance of ever rejecting a true null, however often the test is looked at.
    pub alpha: f64,
    /// The standard deviation of the mixing distribution, in the units of the difference (e.g. 0.01
    /// for a one-point change of a conversion rate): the size of effect the test is tuned to find.
    pub tau: f64,
}
// ANCHOR_END: msprt_config

impl MsprtConfig {
    /// Checks `alpha` in (0, 1) and `tau` finite and > 0.
    pub fn validate(&self) -> Result<()> {
        check_open_unit("alpha", self.alpha)?;
        if !(self.tau > 0.0 && self.tau.is_finite()) {
            return Err(Error::InvalidParameter(format!("tau must be finite and > 0, got {}", self.tau)));
        }
        Ok(())
    }
}

/// One look of the mSPRT: the statistic and the confidence set of this look alone. Feed looks to a
/// [`SequentialTest`] to get the always-valid p-value and confidence sequence.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MsprtLook {
    /// The estimated difference `a − b`.
    pub diff: f64,
    /// The variance of the estimate, `V = σ_a²/n_a + σ_b²/n_b` (plug-in variances).
    pub variance: f64,
    /// The mixture likelihood ratio `Λ` of `H1: diff ~ N(0, tau²)` against `H0: diff = 0`.
    pub lambda: f64,
    /// `min(1, 1/Λ)`: this look's p-value (the always-valid one is the running minimum).
    pub p_value: f64,
    /// Lower end of this look's `1 − alpha` confidence set `{θ : Λ(θ) < 1/alpha}`.
    pub ci_low: f64,
    /// Upper end of this look's confidence set.
    pub ci_high: f64,
}

// ANCHOR: mixture_lr
/// The mixture likelihood ratio of a normal estimate `diff` with variance `variance` (V), for
/// `H1: θ ~ N(theta0, tau²)` against `H0: θ = theta0` (Johari, Pekelis & Walsh 2022, eq. 11):
///
/// `Λ = √(V / (V + τ²)) · exp(τ² (diff − θ0)² / (2 V (V + τ²)))`.
pub fn mixture_likelihood_ratio(diff: f64, variance: f64, tau: f64, theta0: f64) -> f64 {
    let spread = variance + tau * tau;
    let d = diff - theta0;
    (variance / spread).sqrt() * (tau * tau * d * d / (2.0 * variance * spread)).exp()
}

/// The half-width of the look's confidence set: `Λ(θ0) < 1/α` solved for `|diff − θ0|`,
/// `√(V (V + τ²)/τ² · (2 ln(1/α) + ln((V + τ²)/V)))`.
pub fn msprt_half_width(variance: f64, tau: f64, alpha: f64) -> f64 {
    let spread = variance + tau * tau;
    (variance * spread / (tau * tau) * (-2.0 * alpha.ln() + (spread / variance).ln())).sqrt()
}
// ANCHOR_END: mixture_lr

/// One look of the mSPRT from an estimate and its variance (see [`mixture_likelihood_ratio`]).
/// Errors: [`Error::InvalidParameter`] for a bad config or a non-finite `diff`,
/// [`Error::AbDegenerate`] for a variance that is not finite and > 0.
pub fn msprt_look(diff: f64, variance: f64, config: &MsprtConfig) -> Result<MsprtLook> {
    config.validate()?;
    if !diff.is_finite() {
        return Err(Error::InvalidParameter(format!("the difference must be finite, got {diff}")));
    }
    if !(variance > 0.0 && variance.is_finite()) {
        return Err(Error::AbDegenerate(format!("the variance of the difference is {variance}: nothing to test")));
    }
    let lambda = mixture_likelihood_ratio(diff, variance, config.tau, 0.0);
    let half = msprt_half_width(variance, config.tau, config.alpha);
    Ok(MsprtLook {
        diff,
        variance,
        lambda,
        p_value: (1.0 / lambda).min(1.0),
        ci_low: diff - half,
        ci_high: diff + half,
    })
}

/// One look of the mSPRT for `p_a − p_b` with the unpooled plug-in variance
/// `p_a(1 − p_a)/n_a + p_b(1 − p_b)/n_b` (the normal approximation the paper uses for conversion
/// rates). Errors as [`two_proportion_ztest`], plus those of [`msprt_look`].
pub fn msprt_two_proportions(
    successes_a: u64,
    trials_a: u64,
    successes_b: u64,
    trials_b: u64,
    config: &MsprtConfig,
) -> Result<MsprtLook> {
    check_counts(successes_a, trials_a, successes_b, trials_b)?;
    let (na, nb) = (trials_a as f64, trials_b as f64);
    let (p_a, p_b) = (successes_a as f64 / na, successes_b as f64 / nb);
    msprt_look(p_a - p_b, p_a * (1.0 - p_a) / na + p_b * (1.0 - p_b) / nb, config)
}

/// One look of the mSPRT for `mean_a − mean_b` with variance `s_a²/n_a + s_b²/n_b` (the sample
/// variances standing in for the known ones). Errors as [`welch_ttest_from_stats`].
pub fn msprt_means(a: SampleStats, b: SampleStats, config: &MsprtConfig) -> Result<MsprtLook> {
    for (name, s) in [("a", a), ("b", b)] {
        if s.n < 2 {
            return Err(Error::AbTooFew { what: format!("sample {name}"), n: s.n, min: 2 });
        }
        if !s.mean.is_finite() || !s.variance.is_finite() || s.variance < 0.0 {
            return Err(Error::InvalidParameter(format!(
                "sample {name}: mean {} and variance {} must be finite, the variance >= 0",
                s.mean, s.variance
            )));
        }
    }
    msprt_look(a.mean - b.mean, a.variance / a.n as f64 + b.variance / b.n as f64, config)
}

// ANCHOR: sequential_test
/// An experiment monitored continuously: the always-valid p-value `p_n = min(p_{n−1}, 1/Λ_n)` and
/// the confidence sequence (the running intersection of the looks' confidence sets). Stopping the
/// first time `p_value() ≤ alpha` keeps the false-positive rate at most `alpha`, whenever one looks.
#[derive(Debug, Clone, PartialEq)]
pub struct SequentialTest {
    config: MsprtConfig,
    p_value: f64,
    ci: (f64, f64),
    looks: usize,
    rejected_at: Option<usize>,
}

impl SequentialTest {
    /// A test with no looks yet (p-value 1, the whole line as confidence set).
    pub fn new(config: MsprtConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self { config, p_value: 1.0, ci: (f64::NEG_INFINITY, f64::INFINITY), looks: 0, rejected_at: None })
    }

    /// Adds a look computed with this test's config; returns the always-valid p-value so far.
    pub fn observe(&mut self, look: &MsprtLook) -> f64 {
        self.looks += 1;
        self.p_value = self.p_value.min(look.p_value);
        self.ci = (self.ci.0.max(look.ci_low), self.ci.1.min(look.ci_high));
        if self.rejected_at.is_none() && self.p_value <= self.config.alpha {
            self.rejected_at = Some(self.looks);
        }
        self.p_value
    }
    // ANCHOR_END: sequential_test

    /// The always-valid p-value: the smallest `1/Λ` seen (never increases).
    pub fn p_value(&self) -> f64 {
        self.p_value
    }

    /// The confidence sequence's current interval of the difference (never widens; empty, low >
    /// high, only with probability ≤ alpha when the model holds).
    pub fn confidence_interval(&self) -> (f64, f64) {
        self.ci
    }

    /// How many looks were observed.
    pub fn looks(&self) -> usize {
        self.looks
    }

    /// The look (1-based) at which the p-value first reached `alpha`, if it has.
    pub fn rejected_at(&self) -> Option<usize> {
        self.rejected_at
    }

    /// The config.
    pub fn config(&self) -> MsprtConfig {
        self.config
    }
}

// ---------------------------------------------------------------------------------------------
// Simulation: peeking at a fixed-horizon test against the mSPRT.
// ---------------------------------------------------------------------------------------------

/// SplitMix64 (Steele, Lea & Flood, OOPSLA 2014): a small, seedable generator that passes BigCrush.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// The number of successes in `n` Bernoulli(`threshold / 2^53`) trials.
    fn binomial(&mut self, n: u64, threshold: u64) -> u64 {
        (0..n).filter(|_| self.next_u64() >> 11 < threshold).count() as u64
    }
}

// ANCHOR: peeking_config
/// A simulated experiment, repeated `simulations` times: both arms get `batch` new users per look,
/// converting at `p_a` and `p_b` (equal for an A/A test), for `looks` looks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PeekingConfig {
    /// Conversion rate of arm a.
    pub p_a: f64,
    /// Conversion rate of arm b (`= p_a` for an A/A test).
    pub p_b: f64,
    /// New users per arm between two looks.
    pub batch: u64,
    /// How many looks (the last one is the fixed horizon, `looks · batch` users per arm).
    pub looks: usize,
    /// How many experiments to simulate.
    pub simulations: usize,
    /// The mSPRT's config (its `alpha` is the z-test's level too).
    pub msprt: MsprtConfig,
    /// The seed: experiment `i` draws from its own stream, so results do not depend on threads.
    pub seed: u64,
}
// ANCHOR_END: peeking_config

/// How often each way of deciding rejected `p_a = p_b` over the simulated experiments.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PeekingOutcome {
    /// Experiments simulated.
    pub simulations: usize,
    /// The z-test run once, at the last look (the fixed-horizon test as designed).
    pub fixed_horizon: usize,
    /// The z-test run at every look, stopping at the first `p ≤ alpha` (peeking).
    pub peeking: usize,
    /// The mSPRT's always-valid p-value reaching `alpha` at some look.
    pub msprt: usize,
    /// The mean look at which the mSPRT rejected (over the experiments it rejected; 0 if none).
    pub msprt_mean_stop: f64,
}

impl PeekingOutcome {
    /// `count / simulations`.
    pub fn rate(&self, count: usize) -> f64 {
        count as f64 / self.simulations as f64
    }
}

/// The decisions of one simulated experiment: (fixed horizon, peeking, mSPRT rejection look).
fn simulate_one(config: &PeekingConfig, rng: &mut SplitMix64, thresholds: (u64, u64)) -> (bool, bool, Option<usize>) {
    let mut test = SequentialTest {
        config: config.msprt,
        p_value: 1.0,
        ci: (f64::NEG_INFINITY, f64::INFINITY),
        looks: 0,
        rejected_at: None,
    };
    let (mut sa, mut sb, mut n) = (0, 0, 0);
    let (mut peeked, mut fixed) = (false, false);
    for look in 1..=config.looks {
        sa += rng.binomial(config.batch, thresholds.0);
        sb += rng.binomial(config.batch, thresholds.1);
        n += config.batch;
        // A look with no variance yet (every user alike) cannot be tested: it counts as no decision.
        let z_rejects = two_proportion_ztest(sa, n, sb, n, 0.95).is_ok_and(|z| z.p_value <= config.msprt.alpha);
        peeked |= z_rejects;
        if look == config.looks {
            fixed = z_rejects;
        }
        match msprt_two_proportions(sa, n, sb, n, &config.msprt) {
            Ok(l) => {
                test.observe(&l);
            }
            Err(_) => test.looks += 1,
        }
    }
    (fixed, peeked, test.rejected_at)
}

// ANCHOR: simulate_peeking
/// Simulates `config.simulations` experiments (in parallel, each from its own seeded stream) and
/// counts how often the fixed-horizon z-test, the peeking z-test and the mSPRT reject `p_a = p_b`.
/// With `p_a = p_b` the counts over `simulations` are false-positive rates; otherwise, power.
///
/// Errors: [`Error::AbProportion`] for a rate outside [0, 1], [`Error::InvalidParameter`] for zero
/// looks, batch or simulations, or a bad mSPRT config.
pub fn simulate_peeking(config: &PeekingConfig) -> Result<PeekingOutcome> {
    use rayon::prelude::*;
    config.msprt.validate()?;
    for (name, p) in [("p_a", config.p_a), ("p_b", config.p_b)] {
        if !(0.0..=1.0).contains(&p) {
            return Err(Error::AbProportion(format!("{name} = {p} is outside [0, 1]")));
        }
    }
    if config.looks == 0 || config.batch == 0 || config.simulations == 0 {
        return Err(Error::InvalidParameter(format!(
            "looks ({}), batch ({}) and simulations ({}) must be > 0",
            config.looks, config.batch, config.simulations
        )));
    }
    let unit = (1u64 << 53) as f64;
    let thresholds = ((config.p_a * unit) as u64, (config.p_b * unit) as u64);
    let (fixed, peeking, msprt, stops) = (0..config.simulations)
        .into_par_iter()
        .map(|i| {
            let mut rng = SplitMix64(config.seed ^ fmix64(i as u64 + 1));
            let (f, p, m) = simulate_one(config, &mut rng, thresholds);
            (usize::from(f), usize::from(p), usize::from(m.is_some()), m.unwrap_or(0))
        })
        .reduce(|| (0, 0, 0, 0), |x, y| (x.0 + y.0, x.1 + y.1, x.2 + y.2, x.3 + y.3));
    let msprt_mean_stop = if msprt == 0 { 0.0 } else { stops as f64 / msprt as f64 };
    Ok(PeekingOutcome { simulations: config.simulations, fixed_horizon: fixed, peeking, msprt, msprt_mean_stop })
}
// ANCHOR_END: simulate_peeking

/// Both arms have trials, and no more successes than trials.
fn check_counts(successes_a: u64, trials_a: u64, successes_b: u64, trials_b: u64) -> Result<()> {
    for (arm, s, n) in [("a", successes_a, trials_a), ("b", successes_b, trials_b)] {
        if n == 0 {
            return Err(Error::AbEmpty(format!("arm {arm} has no trials")));
        }
        if s > n {
            return Err(Error::AbProportion(format!("arm {arm}: {s} successes out of {n} trials")));
        }
    }
    Ok(())
}
