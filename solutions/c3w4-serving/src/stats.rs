//! The statistics of an A/B test: the two-proportion z-test (conversion rates) and Welch's t-test
//! (means with unequal variances; B. L. Welch, "The generalization of Student's problem when
//! several different population variances are involved", Biometrika 34 (1947)), each with a
//! two-sided p-value and a confidence interval of the difference, as scipy computes them.
//!
//! The distribution functions are given: call `kernels::abtest::{normal_sf, normal_ppf,
//! student_t_sf, student_t_ppf}` (continued fractions and a refined quantile, accurate to about
//! 1e-12; the book's chapter explains them). The hidden tests compare your numbers with scipy's to
//! 1e-9 relative, so follow the formulas literally.

use kernels::abtest::{normal_ppf, normal_sf, student_t_ppf, student_t_sf};

use crate::{Result, invalid};

/// The outcome of a two-proportion z-test (difference `p_a − p_b`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ZTest {
    /// `successes_a / trials_a`.
    pub p_a: f64,
    /// `successes_b / trials_b`.
    pub p_b: f64,
    /// `p_a − p_b`.
    pub diff: f64,
    /// The standard error under H0 (pooled proportion).
    pub se_pooled: f64,
    /// The unpooled standard error (for the interval).
    pub se_unpooled: f64,
    /// `diff / se_pooled`.
    pub z: f64,
    /// Two-sided p-value.
    pub p_value: f64,
    /// Lower end of the Wald interval of `diff`.
    pub ci_low: f64,
    /// Upper end of the Wald interval of `diff`.
    pub ci_high: f64,
}

/// The outcome of Welch's t-test (difference `mean_a − mean_b`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WelchTest {
    /// `mean_a − mean_b`.
    pub diff: f64,
    /// `√(s_a²/n_a + s_b²/n_b)`.
    pub se: f64,
    /// `diff / se`.
    pub t: f64,
    /// The Welch–Satterthwaite degrees of freedom.
    pub df: f64,
    /// Two-sided p-value.
    pub p_value: f64,
    /// Lower end of the interval of `diff`.
    pub ci_low: f64,
    /// Upper end of the interval of `diff`.
    pub ci_high: f64,
}

/// Checks that `confidence` lies strictly inside (0, 1) (given).
pub fn check_confidence(confidence: f64) -> Result<()> {
    if !(confidence > 0.0 && confidence < 1.0) {
        return invalid(format!("confidence must be in (0, 1), got {confidence}"));
    }
    Ok(())
}

// ANCHOR: ztest
/// **Task `c3w4.z-test` (10 points).** The two-proportion z-test:
///
/// - `p_a = s_a / n_a`, `p_b = s_b / n_b`, pooled `p = (s_a + s_b) / (n_a + n_b)`;
/// - `se_pooled = √(p (1 − p) (1/n_a + 1/n_b))`, `z = (p_a − p_b) / se_pooled`;
/// - `p_value = 2 · normal_sf(|z|)` (never `1 − cdf`: it loses the far tail);
/// - `se_unpooled = √(p_a (1 − p_a)/n_a + p_b (1 − p_b)/n_b)`, and the interval is
///   `diff ∓ normal_ppf(0.5 + 0.5 · confidence) · se_unpooled`.
///
/// # Errors
/// [`crate::Error::InvalidInput`] when an arm has no trials, more successes than trials, the
/// confidence is outside (0, 1), or `se_pooled` is 0 (every trial had the same outcome).
pub fn two_proportion_ztest(
    successes_a: u64,
    trials_a: u64,
    successes_b: u64,
    trials_b: u64,
    confidence: f64,
) -> Result<ZTest> {
    // BEGIN SOLUTION c3w4.z-test
    check_confidence(confidence)?;
    for (arm, s, n) in [("a", successes_a, trials_a), ("b", successes_b, trials_b)] {
        if n == 0 {
            return invalid(format!("arm {arm} has no trials"));
        }
        if s > n {
            return invalid(format!("arm {arm}: {s} successes out of {n} trials"));
        }
    }
    let (na, nb) = (trials_a as f64, trials_b as f64);
    let p_a = successes_a as f64 / na;
    let p_b = successes_b as f64 / nb;
    let pooled = (successes_a + successes_b) as f64 / (na + nb);
    let se_pooled = (pooled * (1.0 - pooled) * (1.0 / na + 1.0 / nb)).sqrt();
    if se_pooled == 0.0 {
        return invalid(format!("the pooled proportion is {pooled}: no variance"));
    }
    let diff = p_a - p_b;
    let z = diff / se_pooled;
    let p_value = 2.0 * normal_sf(z.abs());
    let se_unpooled = (p_a * (1.0 - p_a) / na + p_b * (1.0 - p_b) / nb).sqrt();
    let half = normal_ppf(0.5 + 0.5 * confidence) * se_unpooled;
    Ok(ZTest { p_a, p_b, diff, se_pooled, se_unpooled, z, p_value, ci_low: diff - half, ci_high: diff + half })
    // END SOLUTION
}
// ANCHOR_END: ztest

// ANCHOR: welch
/// **Task `c3w4.welch` (10 points).** Welch's t-test, scipy's `ttest_ind(a, b, equal_var=False)`:
///
/// - per sample the mean (sum / n) and the unbiased variance, two-pass: `Σ (x − mean)² / (n − 1)`;
/// - `v_a = s_a² / n_a`, `v_b = s_b² / n_b`, `se = √(v_a + v_b)`, `t = (mean_a − mean_b) / se`;
/// - `df = (v_a + v_b)² / (v_a² / (n_a − 1) + v_b² / (n_b − 1))`;
/// - `p_value = 2 · student_t_sf(|t|, df)`; the interval is
///   `diff ∓ student_t_ppf(0.5 + 0.5 · confidence, df) · se`.
///
/// # Errors
/// [`crate::Error::InvalidInput`] when a sample has fewer than 2 values or a value that is not
/// finite, the confidence is outside (0, 1), or both samples are constant (`se` is 0).
pub fn welch_ttest(a: &[f64], b: &[f64], confidence: f64) -> Result<WelchTest> {
    // BEGIN SOLUTION c3w4.welch
    check_confidence(confidence)?;
    let stats = |name: &str, s: &[f64]| -> Result<(f64, f64, f64)> {
        if s.len() < 2 {
            return invalid(format!("sample {name} has {} values; Welch's test needs 2", s.len()));
        }
        if let Some(i) = s.iter().position(|v| !v.is_finite()) {
            return invalid(format!("sample {name}: value {i} is {}", s[i]));
        }
        let n = s.len() as f64;
        let mean = s.iter().sum::<f64>() / n;
        let var = s.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1.0);
        Ok((n, mean, var))
    };
    let (na, ma, sa) = stats("a", a)?;
    let (nb, mb, sb) = stats("b", b)?;
    let (va, vb) = (sa / na, sb / nb);
    let se2 = va + vb;
    if se2 == 0.0 {
        return invalid("both samples are constant: the standard error is 0");
    }
    let se = se2.sqrt();
    let df = se2 * se2 / (va * va / (na - 1.0) + vb * vb / (nb - 1.0));
    let diff = ma - mb;
    let t = diff / se;
    let p_value = 2.0 * student_t_sf(t.abs(), df);
    let half = student_t_ppf(0.5 + 0.5 * confidence, df) * se;
    Ok(WelchTest { diff, se, t, df, p_value, ci_low: diff - half, ci_high: diff + half })
    // END SOLUTION
}
// ANCHOR_END: welch
