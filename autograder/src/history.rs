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

/// A plain-text progress table: per week, the score of each run, and the best.
pub fn render(entries: &[Entry]) -> String {
    use std::fmt::Write as _;
    if entries.is_empty() {
        return "No graded runs yet: try `cargo xtask grade week3`.\n".into();
    }
    let mut by_week: BTreeMap<&str, Vec<&Entry>> = BTreeMap::new();
    for e in entries {
        by_week.entry(&e.week).or_default().push(e);
    }
    let mut out = String::new();
    for (week, runs) in by_week {
        let best = runs.iter().map(|e| e.score).fold(0.0, f64::max);
        let max = runs.last().map(|e| e.max_score).unwrap_or(0.0);
        let trail: Vec<String> = runs.iter().rev().take(10).rev().map(|e| format!("{:.0}", e.score)).collect();
        writeln!(out, "{week}: best {best:.1}/{max:.0} over {} run(s); last runs: {}", runs.len(), trail.join(" → "))
            .ok();
        if let Some(last) = runs.last() {
            for (task, score) in &last.tasks {
                writeln!(out, "    {task:<28} {score:>6.1}").ok();
            }
        }
    }
    out
}
