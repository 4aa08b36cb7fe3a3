//! Benchmarks of week c3w5: the learner's drift check (PSI over 10 quantile bins, then the
//! two-sample KS test) against `kernels::monitor::drift` on the same column pair.
//!
//! The columns are seeded (every run sees the same): a reference of normal values rounded to four
//! decimals (so there are ties, as in real data) and a current column shifted by 0.05 standard
//! deviations with a slightly wider spread. First the learner's PSI must equal kernels' (1e-9
//! relative) and the KS statistic and p-value must be right (D equal to kernels', the p-value equal
//! to Kolmogorov's limit computed here, both to 1e-9); then both are timed in alternation (lab,
//! kernels, lab, …, best of several passes) so machine noise hits both alike. The figure is a
//! ratio of values per second, never an absolute time. `graded!` holds the graded task
//! (`c3w5.drift-bench`); `run` is the sweep behind `cargo xtask bench c3w5`.

use std::time::Instant;

use c3w5_quality as lab;
use kernels::monitor::drift::{Binning, PsiConfig};

const BINS: usize = 10;
const EPSILON: f64 = 1e-4;

/// Deterministic pseudo-random numbers (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.unit().max(1e-300), self.unit());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

/// A reference column and a drifted current one, `n` values each.
fn columns(n: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
    let mut rng = Rng(seed);
    let reference = (0..n).map(|_| (rng.normal() * 1e4).round() / 1e4).collect();
    let current = (0..n).map(|_| ((0.05 + 1.02 * rng.normal()) * 1e4).round() / 1e4).collect();
    (reference, current)
}

/// Kolmogorov's limiting survival function, for the correctness gate (scipy.special.kolmogorov).
fn kolmogorov_limit(x: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    if x > 0.82 {
        let mut sum = 0.0;
        for k in 1..=100 {
            let term = (-2.0 * (k * k) as f64 * x * x).exp();
            sum += if k % 2 == 1 { term } else { -term };
            if term < 1e-18 {
                break;
            }
        }
        (2.0 * sum).clamp(0.0, 1.0)
    } else {
        let c = std::f64::consts::PI * std::f64::consts::PI / (8.0 * x * x);
        let s: f64 = (1..=100).map(|k| (-(((2 * k - 1) * (2 * k - 1)) as f64) * c).exp()).sum();
        (1.0 - (2.0 * std::f64::consts::PI).sqrt() / x * s).clamp(0.0, 1.0)
    }
}

/// One drift check: (PSI, KS statistic, KS p-value) of a reference and a current column.
type Drift<'a> = Box<dyn Fn(&[f64], &[f64]) -> (f64, f64, f64) + 'a>;

fn kernels_drift() -> Drift<'static> {
    Box::new(|reference: &[f64], current: &[f64]| {
        let config = PsiConfig { binning: Binning::Quantile { bins: BINS }, epsilon: EPSILON };
        let psi = kernels::monitor::drift::psi(reference, current, &config).expect("kernels psi");
        let ks = kernels::monitor::drift::ks_2samp(reference, current).expect("kernels ks");
        (psi, ks.statistic, ks.p_value)
    })
}

fn lab_drift() -> Drift<'static> {
    Box::new(|reference: &[f64], current: &[f64]| {
        let psi = lab::drift::psi(reference, current, BINS, EPSILON).expect("the lab's psi returned an error");
        let ks = lab::drift::ks_2samp_asymp(reference, current).expect("the lab's ks_2samp_asymp returned an error");
        (psi, ks.statistic, ks.p_value)
    })
}

/// Whether `check`'s figures are right on these columns: `Err` says what is wrong.
fn gate(check: &Drift, reference: &[f64], current: &[f64]) -> Result<(), String> {
    let (psi, d, p) = check(reference, current);
    let (want_psi, want_d, _) = kernels_drift()(reference, current);
    let (n, m) = (reference.len().max(current.len()) as f64, reference.len().min(current.len()) as f64);
    let want_p = kolmogorov_limit((n * m / (n + m)).sqrt() * want_d);
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b.abs().max(1e-300);
    if !close(psi, want_psi) {
        return Err(format!("PSI {psi} differs from kernels' {want_psi}"));
    }
    if (d - want_d).abs() > 1e-12 {
        return Err(format!("KS statistic {d} differs from kernels' {want_d}"));
    }
    if !close(p, want_p) {
        return Err(format!("KS p-value {p:e} differs from Kolmogorov's limit {want_p:e}"));
    }
    Ok(())
}

/// Seconds for one check of the pair.
fn pass(check: &Drift, reference: &[f64], current: &[f64]) -> f64 {
    let start = Instant::now();
    std::hint::black_box(check(std::hint::black_box(reference), std::hint::black_box(current)));
    start.elapsed().as_secs_f64()
}

/// Values (of both columns) per second of each check, best of `rounds` passes taken in alternation.
fn interleaved(checks: &[&Drift], reference: &[f64], current: &[f64], rounds: usize) -> Vec<f64> {
    let mut best = vec![f64::INFINITY; checks.len()];
    for _ in 0..rounds {
        for (i, c) in checks.iter().enumerate() {
            best[i] = best[i].min(pass(c, reference, current));
        }
    }
    best.iter().map(|s| (reference.len() + current.len()) as f64 / s).collect()
}

graded! {
    /// The lab's PSI and KS on a pair of 1,000,000-value columns are right (PSI equal to kernels',
    /// D equal to kernels', the p-value to Kolmogorov's limit), then its values per second are
    /// compared with kernels::monitor::drift's (score: the ratio).
    fn psi_ks_throughput_vs_kernels() {
        let (reference, current) = columns(1_000_000, 2026);
        let mine = lab_drift();
        let theirs = kernels_drift();
        if let Err(problem) = gate(&mine, &reference, &current) {
            panic!("on the benchmark's columns, {problem}: fix PSI and KS before timing them");
        }
        let rates = interleaved(&[&mine, &theirs], &reference, &current, 5);
        let ratio = rates[0] / rates[1];
        println!("lab {:.3e} values/s, kernels {:.3e} values/s; ratio {ratio:.3}", rates[0], rates[1]);
        crate::report_metric("values_per_s_ratio", ratio);
    }
}

/// `cargo xtask bench c3w5`: values per second of the PSI + KS check by column length, written to
/// `args[0]` (`--quick` for fewer sizes).
pub fn run(args: &[String]) {
    let out = std::path::PathBuf::from(args.first().expect("usage: bench OUT.json [--quick]"));
    let quick = args.iter().any(|a| a == "--quick");
    // Above 10,000 values per column, so kernels' KS takes its asymptotic branch, as the lab does.
    let sizes: &[usize] = if quick { &[20_000, 200_000] } else { &[20_000, 100_000, 300_000, 1_000_000, 3_000_000] };
    let rounds = if quick { 3 } else { 7 };
    let mut rows = Vec::new();
    let mut notes = vec![format!(
        "per check: PSI over {BINS} quantile bins of the reference (epsilon {EPSILON}), then the two-sample KS statistic and its p-value, on two columns of the given length (normal values rounded to 4 decimals, the current one shifted by 0.05); 1 thread"
    )];
    for &n in sizes {
        eprintln!("{n} values per column…");
        let (reference, current) = columns(n, 7 + n as u64);
        let mut names = vec!["kernels"];
        let mut checks: Vec<Drift> = vec![kernels_drift()];
        let mine = lab_drift();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| gate(&mine, &reference, &current))) {
            Ok(Ok(())) => {
                names.push("lab");
                checks.push(mine);
            }
            Ok(Err(problem)) => notes.push(format!("lab: {problem} at {n} values; not timed")),
            Err(_) => notes.push(format!("lab: panicked at {n} values (see above); not timed")),
        }
        with_reference_solution! {
            names.push("solution");
            checks.push(Box::new(|reference: &[f64], current: &[f64]| {
                let psi = reference_solution::drift::psi(reference, current, BINS, EPSILON).expect("solution psi");
                let ks = reference_solution::drift::ks_2samp_asymp(reference, current).expect("solution ks");
                (psi, ks.statistic, ks.p_value)
            }));
        }
        let refs: Vec<&Drift> = checks.iter().collect();
        let rates = interleaved(&refs, &reference, &current, rounds);
        for (name, rate) in names.iter().zip(rates) {
            rows.push(serde_json::json!({
                "impl": name, "values": n, "values/s": rate, "ms": 2e3 * n as f64 / rate,
            }));
        }
    }
    let record = serde_json::json!({
        "week": "c3w5",
        "title": "Drift check: PSI (10 quantile bins) + two-sample KS, values per second by column length (1 thread)",
        "x": "values",
        "y": "values/s",
        "reference": "kernels",
        "targets": [1_000_000],
        "columns": ["impl", "values", "values/s", "ms"],
        "rows": rows,
        "notes": notes,
        "peers": [],
    });
    std::fs::write(&out, serde_json::to_string_pretty(&record).expect("json")).expect("writing the record");
}
