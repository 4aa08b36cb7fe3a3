//! The quality gate's configuration (`quality.toml`) and its scoring formula: measurements to a
//! 0–100 score and an A–F grade, in the spirit of pmat's Technical Debt Grading (TDG).
//!
//! ## The formula
//!
//! Each category gets a sub-score `s` in `[0, 1]`; the score is `100 · Σ wᵢ sᵢ / Σ wᵢ` over the
//! categories measured (weights from `[weights]`; coverage is left out under `--no-coverage`,
//! coverage and clippy in the trend over commits, so a missing measurement never counts as 0 or
//! as full marks).
//!
//! | category | sub-score |
//! |---|---|
//! | coverage | line coverage `p` %: `clamp((p − zero) / (full − zero), 0, 1)` |
//! | clippy | `max(0, 1 − warning · W − error · E)` for `W` warnings and `E` errors (clippy's and rustc's) |
//! | complexity | `f` = fraction of functions with cyclomatic > `max_cyclomatic` or cognitive > `max_cognitive`: `max(0, 1 − f / fraction_zero)` (1 with no functions) |
//! | duplication | duplicated-line percentage `d`: `max(0, 1 − d / zero)` |
//! | docs | fraction `q` of public items with docs: `clamp((q − zero) / (1 − zero), 0, 1)` (1 with no public items) |
//! | safety | `max(0, 1 − penalty · U)` for `U` `unsafe` blocks without `// SAFETY:` |
//! | todo | `max(0, 1 − penalty · T)` for `T` `todo!()`/`unimplemented!()` |
//!
//! The grade is the first of A, B, C, D whose lowest score (`[grade]`) the score reaches, else F;
//! a crate with any `todo!()`/`unimplemented!()` grades at most `[todo] cap` (C by default). A
//! stub is unfinished work however clean the rest is: without the cap an untouched lab stub (all
//! `todo!()`, no other findings) scored A (93.3), since the todo category weighs only 5 points.
//! Unlike pmat's TDG (which scores files on structural and semantic debt and grades A+…F), this
//! grades a whole crate and includes the measurements only tools give (coverage, clippy).

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The default configuration, `kernels/src/quality/default.toml`.
pub const DEFAULT_TOML: &str = include_str!("default.toml");

/// Lowest score of each grade.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GradeBands {
    pub a: f64,
    pub b: f64,
    pub c: f64,
    pub d: f64,
}

/// Points of each category.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Weights {
    pub coverage: f64,
    pub clippy: f64,
    pub complexity: f64,
    pub duplication: f64,
    pub docs: f64,
    pub safety: f64,
    pub todo: f64,
}

/// Line coverage scoring nothing (`zero`) and in full (`full`), in percent.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CoverageConfig {
    pub zero: f64,
    pub full: f64,
}

/// The cost of each clippy/rustc warning and error.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClippyConfig {
    pub warning: f64,
    pub error: f64,
}

/// Per-function limits.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ComplexityConfig {
    pub max_cyclomatic: u32,
    pub max_cognitive: u32,
    pub fraction_zero: f64,
}

/// Clone detection and its scoring.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DuplicationConfig {
    /// Tokens per shingle: the shortest clone reported.
    pub shingle: usize,
    pub zero: f64,
}

/// Documented fraction scoring nothing.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DocsConfig {
    pub zero: f64,
}

/// A per-finding penalty.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PenaltyConfig {
    pub penalty: f64,
}

/// The whole `quality.toml`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub grade: GradeBands,
    pub weights: Weights,
    pub coverage: CoverageConfig,
    pub clippy: ClippyConfig,
    pub complexity: ComplexityConfig,
    pub duplication: DuplicationConfig,
    pub docs: DocsConfig,
    pub safety: PenaltyConfig,
    pub todo: TodoConfig,
}

/// The `todo!()`/`unimplemented!()` rule: a per-finding penalty and a grade cap.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TodoConfig {
    pub penalty: f64,
    /// The best grade a crate with any of them can get (`A`: no cap).
    pub cap: Grade,
}

impl Default for Config {
    fn default() -> Self {
        // The default file is part of the crate and parsed by a test; a failure here is a bug.
        Config::parse("default.toml", DEFAULT_TOML).unwrap_or_else(|e| unreachable!("default.toml: {e}"))
    }
}

impl Config {
    /// Reads a configuration file (keys it leaves out keep their default).
    pub fn from_file(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).map_err(|source| Error::QualityIo { path: path.to_path_buf(), source })?;
        Config::parse(&path.display().to_string(), &text)
    }

    /// Parses `text` over the defaults; `name` names the file in errors.
    pub fn parse(name: &str, text: &str) -> Result<Self> {
        let err = |key: String, reason: String| Error::QualityConfig { path: name.to_string(), key, reason };
        let user: toml::Table = toml::from_str(text).map_err(|e| err(String::new(), e.message().to_string()))?;
        let mut merged: toml::Table =
            toml::from_str(DEFAULT_TOML).map_err(|e| err(String::new(), format!("default.toml: {e}")))?;
        merge(&mut merged, &user, "").map_err(|(key, reason)| err(key, reason))?;
        let config: Config = merged.try_into().map_err(|e: toml::de::Error| {
            let message = e.message().to_string();
            let key = message.split('`').nth(1).unwrap_or_default().to_string();
            err(key, message)
        })?;
        config.validate().map_err(|(key, reason)| err(key.to_string(), reason))?;
        Ok(config)
    }

    fn validate(&self) -> std::result::Result<(), (&'static str, String)> {
        let g = &self.grade;
        if !(g.a >= g.b && g.b >= g.c && g.c >= g.d) {
            return Err(("grade", format!("bands must not increase: a {} b {} c {} d {}", g.a, g.b, g.c, g.d)));
        }
        let w = &self.weights;
        for (key, v) in [
            ("weights.coverage", w.coverage),
            ("weights.clippy", w.clippy),
            ("weights.complexity", w.complexity),
            ("weights.duplication", w.duplication),
            ("weights.docs", w.docs),
            ("weights.safety", w.safety),
            ("weights.todo", w.todo),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err((key, format!("a weight must be finite and >= 0, not {v}")));
            }
        }
        if self.coverage.full <= self.coverage.zero {
            return Err(("coverage.full", "must be above coverage.zero".to_string()));
        }
        if self.complexity.fraction_zero <= 0.0 {
            return Err(("complexity.fraction_zero", "must be > 0".to_string()));
        }
        if self.duplication.zero <= 0.0 {
            return Err(("duplication.zero", "must be > 0".to_string()));
        }
        if self.duplication.shingle < 2 {
            return Err(("duplication.shingle", "must be at least 2 tokens".to_string()));
        }
        if !(0.0..1.0).contains(&self.docs.zero) {
            return Err(("docs.zero", "must be in [0, 1)".to_string()));
        }
        Ok(())
    }

    /// The grade of `score`.
    pub fn grade(&self, score: f64) -> Grade {
        let g = &self.grade;
        if score >= g.a {
            Grade::A
        } else if score >= g.b {
            Grade::B
        } else if score >= g.c {
            Grade::C
        } else if score >= g.d {
            Grade::D
        } else {
            Grade::F
        }
    }
}

/// Copies `user`'s keys over `base`, refusing keys `base` does not have (`prefix` is the path).
fn merge(base: &mut toml::Table, user: &toml::Table, prefix: &str) -> std::result::Result<(), (String, String)> {
    for (key, value) in user {
        let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
        match base.get_mut(key) {
            None => {
                let known: Vec<&str> = base.keys().map(String::as_str).collect();
                return Err((path, format!("unknown key (known here: {})", known.join(", "))));
            }
            Some(toml::Value::Table(inner)) => match value {
                toml::Value::Table(user_inner) => merge(inner, user_inner, &path)?,
                _ => return Err((path, "must be a table".to_string())),
            },
            Some(slot) => {
                // An integer where a float is expected is fine (`a = 90`).
                *slot = match (&*slot, value) {
                    (toml::Value::Float(_), toml::Value::Integer(i)) => toml::Value::Float(*i as f64),
                    _ => value.clone(),
                };
            }
        }
    }
    Ok(())
}

/// A letter grade; `A` is best.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Grade {
    A,
    B,
    C,
    D,
    F,
}

impl Grade {
    /// Parses `A`…`F` (either case).
    pub fn parse(s: &str) -> Option<Grade> {
        match s.trim().to_ascii_uppercase().as_str() {
            "A" => Some(Grade::A),
            "B" => Some(Grade::B),
            "C" => Some(Grade::C),
            "D" => Some(Grade::D),
            "F" => Some(Grade::F),
            _ => None,
        }
    }

    /// Does this grade meet `bar` (is it `bar` or better)?
    pub fn meets(self, bar: Grade) -> bool {
        self <= bar
    }
}

impl fmt::Display for Grade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Grade::A => "A",
            Grade::B => "B",
            Grade::C => "C",
            Grade::D => "D",
            Grade::F => "F",
        };
        f.write_str(s)
    }
}

/// What the formula needs; `None` where a category was not measured.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Measurements {
    pub line_coverage_percent: Option<f64>,
    /// (warnings, errors).
    pub clippy: Option<(usize, usize)>,
    /// (functions, functions over a limit).
    pub complexity: (usize, usize),
    pub duplicated_line_percent: f64,
    /// (public items, documented ones).
    pub docs: (usize, usize),
    pub unsafe_without_safety: usize,
    pub todos: usize,
}

/// One category's share of the score.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Part {
    pub category: String,
    pub weight: f64,
    /// In `[0, 1]`.
    pub subscore: f64,
    /// Points earned out of the weight, before renormalising.
    pub points: f64,
}

/// The score, grade and parts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Score {
    /// 0–100.
    pub score: f64,
    pub grade: Grade,
    pub parts: Vec<Part>,
    /// Why the grade is worse than the score's band, when a cap applied.
    #[serde(default)]
    pub capped: Option<String>,
}

/// Applies the formula of the module docs.
pub fn score(config: &Config, m: &Measurements) -> Score {
    let w = &config.weights;
    let mut parts = Vec::new();
    let mut push = |category: &str, weight: f64, s: f64| {
        let subscore = s.clamp(0.0, 1.0);
        parts.push(Part { category: category.to_string(), weight, subscore, points: weight * subscore });
    };
    if let Some(p) = m.line_coverage_percent {
        let c = &config.coverage;
        push("coverage", w.coverage, (p - c.zero) / (c.full - c.zero));
    }
    if let Some((warnings, errors)) = m.clippy {
        push("clippy", w.clippy, 1.0 - config.clippy.warning * warnings as f64 - config.clippy.error * errors as f64);
    }
    let (functions, over) = m.complexity;
    let fraction = if functions == 0 { 0.0 } else { over as f64 / functions as f64 };
    push("complexity", w.complexity, 1.0 - fraction / config.complexity.fraction_zero);
    push("duplication", w.duplication, 1.0 - m.duplicated_line_percent / config.duplication.zero);
    let (items, documented) = m.docs;
    let q = if items == 0 { 1.0 } else { documented as f64 / items as f64 };
    push("docs", w.docs, (q - config.docs.zero) / (1.0 - config.docs.zero));
    push("safety", w.safety, 1.0 - config.safety.penalty * m.unsafe_without_safety as f64);
    push("todo", w.todo, 1.0 - config.todo.penalty * m.todos as f64);
    let total_weight: f64 = parts.iter().map(|p| p.weight).sum();
    let points: f64 = parts.iter().map(|p| p.points).sum();
    let score = if total_weight > 0.0 { 100.0 * points / total_weight } else { 100.0 };
    let mut grade = config.grade(score);
    let mut capped = None;
    if m.todos > 0 && grade < config.todo.cap {
        capped = Some(format!(
            "{} todo!()/unimplemented!() left: at most {} (the score alone gives {grade})",
            m.todos, config.todo.cap
        ));
        grade = config.todo.cap;
    }
    Score { score, grade, parts, capped }
}
