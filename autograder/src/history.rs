//! The learner's grading history: one JSON line per graded run of the lab.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::{Report, Workspace};

/// One graded run, as kept in `.grade-history.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub timestamp: u64,
    pub week: String,
    pub score: f64,
    pub max_score: f64,
    /// Score per task id.
    pub tasks: BTreeMap<String, f64>,
}

/// Appends `report` to the history.
pub fn append(ws: &Workspace, report: &Report) -> Result<()> {
    let entry = Entry {
        timestamp: report.timestamp,
        week: report.week.clone(),
        score: report.score,
        max_score: report.max_score,
        tasks: report.tasks.iter().map(|t| (t.id.clone(), t.score)).collect(),
    };
    let path = ws.history_file();
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    writeln!(file, "{}", serde_json::to_string(&entry)?)?;
    Ok(())
}

/// Every recorded run, oldest first; unreadable lines are skipped, never fatal.
pub fn load(ws: &Workspace) -> Result<Vec<Entry>> {
    let path = ws.history_file();
    let Ok(text) = std::fs::read_to_string(&path) else { return Ok(Vec::new()) };
    Ok(text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect())
}

/// Runs per week, oldest first, weeks in id order.
pub fn by_week(entries: &[Entry]) -> BTreeMap<&str, Vec<&Entry>> {
    let mut by_week: BTreeMap<&str, Vec<&Entry>> = BTreeMap::new();
    for e in entries {
        by_week.entry(&e.week).or_default().push(e);
    }
    by_week
}

/// The index of a week's best run (the first to reach the highest score).
pub fn best_run(runs: &[&Entry]) -> Option<usize> {
    let best = runs.iter().map(|e| e.score).fold(f64::NEG_INFINITY, f64::max);
    runs.iter().position(|e| e.score == best)
}

/// The most runs a plot shows, one column each (the latest): the plot stays within 80 columns.
pub const PLOT_RUNS: usize = 60;
/// Rows of block characters in a plot: eight levels each.
const PLOT_ROWS: usize = 3;
const BLOCKS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// A small bar chart of a week's scores, one column per run (the last [`PLOT_RUNS`]), each scaled
/// to its run's maximum, with the best run marked by `^` under the axis: plain text, no colour.
///
/// ```text
///   100 ┤    ▅██▂
///       │   ▄████
///     0 ┤ ▁▆█████
///       └─────^──
///        runs 1–8, ^ best
/// ```
pub fn plot(runs: &[&Entry]) -> Vec<String> {
    let Some(best) = best_run(runs) else { return Vec::new() };
    let first = runs.len().saturating_sub(PLOT_RUNS);
    let shown = &runs[first..];
    let levels = PLOT_ROWS * 8;
    let heights: Vec<usize> = shown
        .iter()
        .map(|e| {
            let ratio = if e.max_score > 0.0 { (e.score / e.max_score).clamp(0.0, 1.0) } else { 0.0 };
            let h = (ratio * levels as f64).round() as usize;
            // Any points at all show as at least the lowest block.
            if e.score > 0.0 { h.max(1) } else { h }
        })
        .collect();
    let top = number(runs.last().map_or(0.0, |e| e.max_score));
    let width = top.len();
    let mut lines = Vec::new();
    for row in (0..PLOT_ROWS).rev() {
        let cells: String = heights
            .iter()
            .map(|&h| match h.saturating_sub(row * 8).min(8) {
                0 => ' ',
                n => BLOCKS[n - 1],
            })
            .collect();
        let (label, tick) = match row {
            r if r == PLOT_ROWS - 1 => (top.as_str(), '┤'),
            0 => ("0", '┤'),
            _ => ("", '│'),
        };
        lines.push(format!("  {label:>width$} {tick}{}", cells.trim_end()));
    }
    let axis: String = (first..runs.len()).map(|i| if i == best { '^' } else { '─' }).collect();
    lines.push(format!("  {:>width$} └{axis}", ""));
    let span = if runs.len() == 1 { "run 1".to_string() } else { format!("runs {}–{}", first + 1, runs.len()) };
    let marked = if best >= first { "^ best".to_string() } else { format!("best: run {}, before these", best + 1) };
    let window = if first > 0 { format!(" (the last {PLOT_RUNS})") } else { String::new() };
    lines.push(format!("  {:>width$}  {span}{window}, {marked}", ""));
    lines
}

/// The progress report: per week, the best and last scores, the plot of every run, and the last run's tasks.
pub fn render(entries: &[Entry]) -> String {
    use std::fmt::Write as _;
    if entries.is_empty() {
        return "No graded runs yet: try `cargo xtask grade week3`.\n".into();
    }
    let mut out = String::new();
    for (week, runs) in by_week(entries) {
        let Some(best) = best_run(&runs) else { continue };
        let last = runs[runs.len() - 1];
        writeln!(
            out,
            "{week}: best {}/{} (run {} of {}), last {}",
            number(runs[best].score),
            number(last.max_score),
            best + 1,
            runs.len(),
            number(last.score)
        )
        .ok();
        for line in plot(&runs) {
            writeln!(out, "{line}").ok();
        }
        for (task, score) in &last.tasks {
            writeln!(out, "    {task:<28} {score:>6.1}").ok();
        }
    }
    out
}

/// The progress report as JSON: per week every run (`run` counts from 1), the best run, the last
/// run's task scores and the plot's lines.
pub fn to_json(entries: &[Entry]) -> serde_json::Value {
    let run_json = |i: usize, e: &Entry| serde_json::json!({ "run": i + 1, "timestamp": e.timestamp, "score": e.score, "max_score": e.max_score });
    let weeks: Vec<serde_json::Value> = by_week(entries)
        .into_iter()
        .filter_map(|(week, runs)| {
            let best = best_run(&runs)?;
            let last = runs[runs.len() - 1];
            Some(serde_json::json!({
                "week": week,
                "max_score": last.max_score,
                "runs": runs.iter().enumerate().map(|(i, e)| run_json(i, e)).collect::<Vec<_>>(),
                "best": run_json(best, runs[best]),
                "last_tasks": last.tasks,
                "plot": plot(&runs),
            }))
        })
        .collect();
    serde_json::json!({ "weeks": weeks })
}

/// A score as the report shows it: `87.5`, or `100` when whole.
fn number(v: f64) -> String {
    if v.fract() == 0.0 { format!("{v:.0}") } else { format!("{v:.1}") }
}
