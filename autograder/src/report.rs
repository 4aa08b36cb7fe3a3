//! Scored reports and their three renderings: terminal, JSON and Gradescope.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use console::style;
use serde::Serialize;

use crate::history::Entry;
use crate::runner::{Outcome, Status};
use crate::spec::{TaskSpec, TestFile, TestSpec, Visibility, WeekSpec};

/// The result of grading one week.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub week: String,
    pub title: String,
    /// `lab`, `solution` or `submission`.
    pub mode: String,
    pub score: f64,
    pub max_score: f64,
    /// Set when the implementation did not compile: the first compiler error.
    pub compile_error: Option<String>,
    pub tasks: Vec<TaskReport>,
    /// Every test, flat (the shape Gradescope and scripts expect).
    pub tests: Vec<TestReport>,
    /// Points of tests this checkout does not have (hidden tests withheld from learners).
    pub withheld_points: f64,
    /// Unix seconds.
    pub timestamp: u64,
    /// Where the grading run's wall time went (`cargo xtask grade --verbose` prints it).
    pub timings: Timings,
}

/// Wall time of a grading run by phase, in seconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timings {
    /// Generating and compiling the harness (with the implementation under test).
    pub build_s: f64,
    /// Starting the week's services (an MLflow server, …).
    pub services_s: f64,
    /// Running the test processes other than graded benchmarks.
    pub tests_s: f64,
    /// Test processes started (one per test; benchmarks may be retried).
    pub processes: usize,
    /// Running the graded benchmarks (every attempt).
    pub bench_s: f64,
}

impl Timings {
    /// One line: `build 12.3 s · services 0.0 s · 31 tests 4.5 s · benchmarks 6.0 s · total 22.8 s`.
    pub fn render(&self) -> String {
        format!(
            "build {:.1} s · services {:.1} s · {} test processes {:.1} s · benchmarks {:.1} s · total {:.1} s",
            self.build_s,
            self.services_s,
            self.processes,
            self.tests_s,
            self.bench_s,
            self.build_s + self.services_s + self.tests_s + self.bench_s
        )
    }
}

/// One task's share of the report.
#[derive(Debug, Clone, Serialize)]
pub struct TaskReport {
    pub id: String,
    pub title: String,
    pub score: f64,
    pub max_score: f64,
    /// The hint to show next (set by [`Report::choose_hints`] when the task is not full).
    pub hint: Option<String>,
}

/// One test's result.
#[derive(Debug, Clone, Serialize)]
pub struct TestReport {
    /// The test's name.
    pub id: String,
    pub task: String,
    pub file: TestFile,
    pub score: f64,
    pub max_score: f64,
    /// `passed`, `failed` or `withheld`.
    pub status: String,
    /// What happened, in plain words, then the captured output.
    pub output: String,
    pub details: Option<Status>,
    pub metrics: BTreeMap<String, f64>,
    pub visibility: Visibility,
    /// Leaderboard name of the test's score metric, if it has one.
    #[serde(skip)]
    pub leaderboard: Option<(String, String)>,
}

impl TestReport {
    /// Scores an outcome (`None`: the test file is not in this checkout).
    pub fn score(task: &TaskSpec, spec: &TestSpec, outcome: Option<Outcome>) -> TestReport {
        let visibility = spec.visibility.unwrap_or(match spec.file {
            TestFile::Hidden => Visibility::AfterDueDate,
            _ => Visibility::Visible,
        });
        let mut report = TestReport {
            id: spec.name.clone(),
            task: task.id.clone(),
            file: spec.file,
            score: 0.0,
            max_score: spec.points,
            status: "withheld".into(),
            output: "withheld: this checkout does not have the hidden tests; your instructor grades them".into(),
            details: None,
            metrics: BTreeMap::new(),
            visibility,
            leaderboard: spec
                .score
                .as_ref()
                .map(|r| (r.leaderboard.clone().unwrap_or_else(|| r.metric.clone()), r.metric.clone())),
        };
        let Some(outcome) = outcome else { return report };
        let mut summary = outcome.status.describe();
        report.score = match (&outcome.status, &spec.score) {
            (Status::Passed, None) => spec.points,
            (Status::Passed, Some(rule)) => match outcome.metrics.get(&rule.metric) {
                Some(&value) => {
                    let fraction = rule.fraction(value);
                    summary = format!(
                        "{} = {value:.3} (full marks at {}, none at {}): {:.0}% of the points",
                        rule.metric,
                        rule.full,
                        rule.zero,
                        fraction * 100.0
                    );
                    spec.points * fraction
                }
                None => {
                    summary = format!("the benchmark did not report `{}`", rule.metric);
                    0.0
                }
            },
            _ => 0.0,
        };
        report.score = (report.score * 100.0).round() / 100.0;
        report.status = if outcome.status.passed() && report.score > 0.0 { "passed" } else { "failed" }.into();
        report.output = if outcome.output.trim().is_empty() || outcome.status.passed() {
            summary
        } else {
            format!("{summary}\n--- output ---\n{}", outcome.output.trim_end())
        };
        report.details = Some(outcome.status);
        report.metrics = outcome.metrics;
        report
    }
}

impl Report {
    /// Totals per task and overall from the test results.
    pub fn new(week: &WeekSpec, mode: &str, tests: Vec<TestReport>) -> Report {
        let tasks = week
            .tasks
            .iter()
            .map(|t| {
                let mine = tests.iter().filter(|r| r.task == t.id);
                TaskReport {
                    id: t.id.clone(),
                    title: t.title.clone(),
                    score: round2(mine.clone().map(|r| r.score).sum()),
                    max_score: mine.map(|r| r.max_score).sum(),
                    hint: None,
                }
            })
            .collect();
        Report {
            week: week.id.clone(),
            title: week.title.clone(),
            mode: mode.into(),
            score: round2(tests.iter().map(|t| t.score).sum()),
            max_score: week.max_score(),
            compile_error: None,
            withheld_points: tests.iter().filter(|t| t.status == "withheld").map(|t| t.max_score).sum(),
            tasks,
            tests,
            timestamp: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            timings: Timings::default(),
        }
    }

    /// A report for an implementation that does not compile: zero everywhere.
    pub fn compile_failed(week: &WeekSpec, mode: &str, error: String) -> Report {
        let tests = week
            .tests()
            .map(|(task, spec)| {
                let mut t = TestReport::score(task, spec, None);
                t.status = "failed".into();
                t.output = "not run: the code does not compile".into();
                t
            })
            .collect();
        let mut report = Report::new(week, mode, tests);
        report.withheld_points = 0.0;
        report.compile_error = Some(error);
        report
    }

    /// Sets each unfinished task's hint: one rung further up its ladder for
    /// every earlier graded run in which the task was not yet full.
    pub fn choose_hints(&mut self, week: &WeekSpec, history: &[Entry]) {
        for task in &mut self.tasks {
            if task.score >= task.max_score {
                continue;
            }
            let Some(spec) = week.tasks.iter().find(|t| t.id == task.id) else { continue };
            if spec.hints.is_empty() {
                continue;
            }
            let misses = history
                .iter()
                .filter(|e| e.week == self.week)
                .filter(|e| e.tasks.get(&task.id).is_some_and(|&s| s < task.max_score))
                .count();
            task.hint = Some(spec.hints[misses.min(spec.hints.len() - 1)].clone());
        }
    }

    /// The machine-readable report (`--json`).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("reports serialise")
    }

    /// A Gradescope `results.json`.
    pub fn to_gradescope(&self) -> serde_json::Value {
        let tests: Vec<_> = self
            .tests
            .iter()
            .map(|t| {
                serde_json::json!({
                    "name": format!("{} › {}", t.task, t.id),
                    "name_format": "text",
                    "score": t.score,
                    "max_score": t.max_score,
                    "status": if t.status == "passed" { "passed" } else { "failed" },
                    "output": t.output,
                    "output_format": "text",
                    "tags": [t.task],
                    "visibility": t.visibility,
                })
            })
            .collect();
        let leaderboard: Vec<_> = self
            .tests
            .iter()
            .filter_map(|t| {
                let (name, metric) = t.leaderboard.as_ref()?;
                let value = t.metrics.get(metric)?;
                Some(serde_json::json!({ "name": name, "value": value, "order": "desc" }))
            })
            .collect();
        let mut output = format!("{} ({}): {:.1}/{:.0}", self.week, self.title, self.score, self.max_score);
        if let Some(error) = &self.compile_error {
            write!(output, "\n\nThe submission does not compile:\n{error}").expect("string");
        }
        serde_json::json!({
            "score": self.score,
            "output": output,
            "output_format": "text",
            "visibility": "visible",
            "stdout_visibility": "hidden",
            "tests": tests,
            "leaderboard": leaderboard,
        })
    }

    /// The terminal report: a table of tasks, the failures in plain words, and hints.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let w = &mut out;
        writeln!(w, "{} {}: {} ({})", style("week").bold(), style(&self.week).bold().cyan(), self.title, self.mode)
            .ok();
        if let Some(error) = &self.compile_error {
            writeln!(
                w,
                "\n{} the code does not compile, so no test could run. The first error:\n",
                style("✗").red().bold()
            )
            .ok();
            for line in error.lines() {
                writeln!(w, "    {line}").ok();
            }
            writeln!(w).ok();
        }
        writeln!(w).ok();
        let width = self.tasks.iter().map(|t| t.id.len()).max().unwrap_or(10);
        for task in &self.tasks {
            let mark = if task.score >= task.max_score {
                style("✓").green().bold()
            } else if task.score > 0.0 {
                style("◐").yellow().bold()
            } else {
                style("✗").red().bold()
            };
            writeln!(
                w,
                "  {mark} {:<width$}  {:>6.1} / {:<4} {}",
                task.id,
                task.score,
                task.max_score,
                style(&task.title).dim()
            )
            .ok();
            for test in self.tests.iter().filter(|t| t.task == task.id) {
                if test.status == "passed" && test.score >= test.max_score {
                    continue;
                }
                let first = test.output.lines().next().unwrap_or("");
                let tag = match test.status.as_str() {
                    "withheld" => style("withheld").dim(),
                    "passed" => style("partial").yellow(),
                    _ => style("failed").red(),
                };
                writeln!(w, "      {tag} {}: {}", test.id, first).ok();
                if test.status == "failed" {
                    for line in test.output.lines().skip(1).take_while(|l| !l.starts_with("--- output")).take(6) {
                        writeln!(w, "        {line}").ok();
                    }
                }
            }
            if let Some(hint) = &task.hint {
                writeln!(w, "      {} {hint}", style("hint:").cyan()).ok();
            }
        }
        writeln!(w).ok();
        writeln!(w, "  {} {:.1} / {:.0}", style("score").bold(), self.score, self.max_score).ok();
        if self.withheld_points > 0.0 {
            writeln!(
                w,
                "  {:.0} of those points come from hidden tests this checkout does not have.",
                self.withheld_points
            )
            .ok();
        }
        out
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
