//! Week specifications: `autograder/weeks/<id>/week.toml` parsed and validated.
//!
//! A week has tasks; a task has points spread over tests and a ladder of hints;
//! a test names a function in the week's `visible.rs` (shipped to learners, also
//! run by `cargo test` in the lab crate) or `hidden.rs` (kept by the instructor),
//! or a benchmark in `bench.rs` whose reported metric is turned into partial
//! credit by a [`ScoreRule`].

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use serde::Deserialize;

use crate::Workspace;

/// One week's grading specification.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeekSpec {
    /// `c4w3`.
    pub id: String,
    /// Human title.
    pub title: String,
    /// Package name of the lab crate (`c4w3-vector-search`); the solution's is
    /// the same with `-solution`, and both have the library name with `_`.
    #[serde(rename = "crate")]
    pub crate_name: String,
    /// `kernels` features the graded tests need.
    #[serde(default)]
    pub kernels_features: Vec<String>,
    /// `kernels` features `cargo xtask bench` needs (defaults to `kernels_features`).
    #[serde(default)]
    pub bench_kernels_features: Option<Vec<String>>,
    /// Services started once per grading run for the tests (`["mlflow"]`).
    #[serde(default)]
    pub services: Vec<crate::services::Service>,
    /// The tasks, in the order the book teaches them.
    #[serde(rename = "task")]
    pub tasks: Vec<TaskSpec>,
    /// Where the spec was read from (set after parsing).
    #[serde(skip)]
    pub dir: PathBuf,
}

/// A learner task: one marked region (or a few) in the solution.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    /// `c4w3.hnsw-insert`; the solution's markers use the same id.
    pub id: String,
    pub title: String,
    /// From a gentle nudge to nearly the answer; a learner who keeps failing
    /// the task climbs the ladder one rung per graded run.
    #[serde(default)]
    pub hints: Vec<String>,
    #[serde(rename = "test")]
    pub tests: Vec<TestSpec>,
}

/// One graded test.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestSpec {
    /// The function name in `file`.
    pub name: String,
    pub file: TestFile,
    pub points: f64,
    /// Wall-clock limit of the test's process.
    #[serde(default = "default_timeout")]
    pub timeout_s: f64,
    /// Address-space limit of the test's process.
    #[serde(default = "default_memory")]
    pub memory_mb: u64,
    /// Partial credit from a reported metric (benchmarks); without it a pass
    /// earns all the points.
    #[serde(default)]
    pub score: Option<ScoreRule>,
    /// Who sees the result on Gradescope (default: visible for visible tests,
    /// after the due date for hidden ones).
    #[serde(default)]
    pub visibility: Option<Visibility>,
}

/// Which file of the week holds a test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TestFile {
    /// `visible.rs`, in the lab crate's `tests/it/` (learners have it).
    Visible,
    /// `autograder/weeks/<id>/hidden.rs` (withheld from learners).
    Hidden,
    /// `autograder/weeks/<id>/bench.rs` (shipped; benchmarks graded as ratios).
    Bench,
}

/// Gradescope visibility of a test's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    Visible,
    Hidden,
    AfterDueDate,
    AfterPublished,
}

/// Linear partial credit: `points × clamp((value − zero) / (full − zero), 0, 1)`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreRule {
    /// The metric the test reports with `report_metric`.
    pub metric: String,
    /// Value at which the test earns all its points.
    pub full: f64,
    /// Value at or below which it earns none.
    pub zero: f64,
    /// Name on the Gradescope leaderboard (the metric name if absent).
    #[serde(default)]
    pub leaderboard: Option<String>,
}

impl ScoreRule {
    /// The fraction of the points `value` earns.
    pub fn fraction(&self, value: f64) -> f64 {
        if !value.is_finite() {
            return 0.0;
        }
        ((value - self.zero) / (self.full - self.zero)).clamp(0.0, 1.0)
    }
}

fn default_timeout() -> f64 {
    30.0
}

fn default_memory() -> u64 {
    2048
}

impl WeekSpec {
    /// Reads and validates `dir/week.toml`.
    pub fn load(dir: &Path) -> Result<WeekSpec> {
        let path = dir.join("week.toml");
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let mut spec: WeekSpec = toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        spec.dir = dir.to_path_buf();
        spec.validate().with_context(|| format!("invalid {}", path.display()))?;
        Ok(spec)
    }

    fn validate(&self) -> Result<()> {
        ensure!(!self.tasks.is_empty(), "a week needs at least one task");
        let mut names = BTreeSet::new();
        let mut ids = BTreeSet::new();
        for task in &self.tasks {
            ensure!(task.id.starts_with(&format!("{}.", self.id)), "task id {} must start with {}.", task.id, self.id);
            ensure!(ids.insert(&task.id), "task {} appears twice", task.id);
            ensure!(!task.tests.is_empty(), "task {} has no test", task.id);
            for test in &task.tests {
                ensure!(names.insert(&test.name), "test {} appears twice", test.name);
                ensure!(test.points > 0.0, "test {} must be worth points", test.name);
                ensure!(test.timeout_s > 0.0 && test.memory_mb >= 64, "test {} has impossible limits", test.name);
                if let Some(rule) = &test.score {
                    ensure!(rule.full != rule.zero, "test {}: score.full equals score.zero", test.name);
                }
            }
        }
        Ok(())
    }

    /// The lab crate's library name (`c4w3_vector_search`).
    pub fn lib_name(&self) -> String {
        self.crate_name.replace('-', "_")
    }

    /// The solution crate's package name.
    pub fn solution_package(&self) -> String {
        format!("{}-solution", self.crate_name)
    }

    /// Every test with its task, in spec order.
    pub fn tests(&self) -> impl Iterator<Item = (&TaskSpec, &TestSpec)> {
        self.tasks.iter().flat_map(|t| t.tests.iter().map(move |s| (t, s)))
    }

    /// Total points of the week.
    pub fn max_score(&self) -> f64 {
        self.tests().map(|(_, t)| t.points).sum()
    }

    /// `labs/<crate>` in `ws`.
    pub fn lab_dir(&self, ws: &Workspace) -> PathBuf {
        ws.root.join("labs").join(&self.crate_name)
    }

    /// `solutions/<crate>` in `ws`.
    pub fn solution_dir(&self, ws: &Workspace) -> PathBuf {
        ws.root.join("solutions").join(&self.crate_name)
    }

    /// The file of the grader's own copy of a test file, if this checkout has it.
    ///
    /// Visible tests come from the solution when the checkout has it (an
    /// instructor's), else from the lab (a learner's export); never from a
    /// submission.
    pub fn test_file(&self, ws: &Workspace, file: TestFile) -> Option<PathBuf> {
        let path = match file {
            TestFile::Visible => {
                let sol = self.solution_dir(ws).join("tests/it/visible.rs");
                if sol.is_file() { sol } else { self.lab_dir(ws).join("tests/it/visible.rs") }
            }
            TestFile::Hidden => self.dir.join("hidden.rs"),
            TestFile::Bench => self.dir.join("bench.rs"),
        };
        path.is_file().then_some(path)
    }
}

/// Every week of the workspace, sorted by id.
pub fn all_weeks(ws: &Workspace) -> Result<Vec<WeekSpec>> {
    let mut weeks = Vec::new();
    let dir = ws.root.join("autograder/weeks");
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.join("week.toml").is_file() {
            weeks.push(WeekSpec::load(&path)?);
        }
    }
    weeks.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(weeks)
}

/// Resolves `week3` (through the course in `course.toml` or `course`) or `c4w3`.
pub fn resolve(ws: &Workspace, name: &str, course: Option<u32>) -> Result<WeekSpec> {
    let id = if let Some(n) = name.strip_prefix("week") {
        let n: u32 = n.parse().with_context(|| format!("`{name}` is not weekN"))?;
        let course = match course {
            Some(c) => c,
            None => current_course(ws)?,
        };
        format!("c{course}w{n}")
    } else {
        name.to_string()
    };
    let mut weeks = all_weeks(ws)?;
    match weeks.iter().position(|w| w.id == id) {
        Some(i) => Ok(weeks.swap_remove(i)),
        None => bail!(
            "no graded week `{id}` in this workspace (weeks: {})",
            weeks.iter().map(|w| w.id.as_str()).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// The learner's current course from `course.toml` (4 if the file is absent).
pub fn current_course(ws: &Workspace) -> Result<u32> {
    #[derive(Deserialize)]
    struct CourseFile {
        course: u32,
    }
    let path = ws.root.join("course.toml");
    if !path.is_file() {
        return Ok(4);
    }
    let text = std::fs::read_to_string(&path)?;
    let file: CourseFile = toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    ensure!(matches!(file.course, 3 | 4), "{}: course must be 3 or 4, not {}", path.display(), file.course);
    Ok(file.course)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(value: f64, zero: f64, full: f64, expected: f64) {
        let rule = ScoreRule { metric: "m".into(), full, zero, leaderboard: None };
        assert!((rule.fraction(value) - expected).abs() < 1e-12, "{value} in [{zero}, {full}]");
    }

    #[test]
    fn score_rule_is_linear_and_clamped() {
        check(0.5, 0.1, 0.5, 1.0);
        check(0.3, 0.1, 0.5, 0.5);
        check(0.05, 0.1, 0.5, 0.0);
        check(9.0, 0.1, 0.5, 1.0);
        check(f64::NAN, 0.1, 0.5, 0.0);
    }
}
