//! The quality report as JSON (the [`Report`] serialised) and as Markdown (a summary table, the
//! score's parts, then the findings).

use std::fmt::Write;

use crate::quality::Report;
use crate::{Error, Result};

/// The report as pretty JSON.
pub fn to_json(report: &Report) -> Result<String> {
    serde_json::to_string_pretty(report).map_err(|e| Error::QualityTool {
        command: "serialising the report".to_string(),
        dir: report.path.clone().into(),
        reason: e.to_string(),
    })
}

/// How many findings of each list the Markdown shows.
const SHOWN: usize = 20;

/// The report as Markdown.
pub fn to_markdown(r: &Report) -> String {
    let mut s = String::new();
    let m = &r.metrics;
    let _ = writeln!(s, "# Quality of `{}`: grade {} ({:.1}/100)\n", r.crate_name, r.score.grade, r.score.score);
    if let Some(why) = &r.score.capped {
        let _ = writeln!(s, "Grade capped: {why}.\n");
    }
    let _ = writeln!(s, "Crate: `{}`, {} source files under `src/`.\n", r.path, m.files);
    let _ = writeln!(s, "| category | measured | weight | sub-score | points |");
    let _ = writeln!(s, "|---|---|---:|---:|---:|");
    for part in &r.score.parts {
        let measured = match part.category.as_str() {
            "coverage" => r
                .coverage
                .as_ref()
                .map(|c| {
                    format!(
                        "lines {:.2}%, functions {:.2}%, regions {:.2}%{}",
                        c.lines.percent,
                        c.functions.percent,
                        c.regions.percent,
                        c.branches.as_ref().map(|b| format!(", branches {:.2}%", b.percent)).unwrap_or_default()
                    )
                })
                .unwrap_or_default(),
            "clippy" => {
                r.clippy.as_ref().map(|c| format!("{} warnings, {} errors", c.warnings, c.errors)).unwrap_or_default()
            }
            "complexity" => format!(
                "{} functions, {} over the limits, mean cyclomatic {:.2}, mean cognitive {:.2}",
                m.complexity.functions,
                m.complexity.over_limit.len(),
                m.complexity.mean_cyclomatic,
                m.complexity.mean_cognitive
            ),
            "duplication" => format!(
                "{:.2}% of lines ({} of {}), {} clone pairs",
                m.duplication.percent,
                m.duplication.duplicated_lines,
                m.duplication.total_lines,
                m.duplication.clones.len()
            ),
            "docs" => {
                format!("{} of {} public items undocumented", m.hygiene.undocumented.len(), m.hygiene.public_items)
            }
            "safety" => format!(
                "{} of {} unsafe blocks without // SAFETY:",
                m.hygiene.unsafe_without_safety.len(),
                m.hygiene.unsafe_blocks
            ),
            "todo" => format!("{} todo!()/unimplemented!()", m.hygiene.todos.len()),
            _ => String::new(),
        };
        let _ = writeln!(
            s,
            "| {} | {} | {:.0} | {:.3} | {:.2} |",
            part.category, measured, part.weight, part.subscore, part.points
        );
    }
    match &r.coverage {
        Some(c) => {
            let _ = writeln!(s, "\nCoverage: {}.", c.note);
        }
        None => {
            let _ = writeln!(s, "\nCoverage: not measured (--no-coverage); its weight is left out.");
        }
    }
    if !m.parse_errors.is_empty() {
        let _ = writeln!(s, "\n## Files that do not parse\n");
        for e in &m.parse_errors {
            let _ = writeln!(s, "- {e}");
        }
    }
    if let Some(c) = &r.clippy
        && !c.by_lint.is_empty()
    {
        let _ = writeln!(s, "\n## Clippy\n\n| lint | level | count |\n|---|---|---:|");
        for l in &c.by_lint {
            let _ = writeln!(s, "| `{}` | {} | {} |", l.lint, l.level, l.count);
        }
    }
    if !m.complexity.over_limit.is_empty() {
        let _ = writeln!(
            s,
            "\n## Functions over the complexity limits\n\n| function | file:line | cyclomatic | cognitive |\n|---|---|---:|---:|"
        );
        for f in m.complexity.over_limit.iter().take(SHOWN) {
            let _ = writeln!(s, "| `{}` | {}:{} | {} | {} |", f.name, f.file, f.line, f.cyclomatic, f.cognitive);
        }
    }
    if !m.duplication.clones.is_empty() {
        let _ = writeln!(s, "\n## Clones\n");
        for c in m.duplication.clones.iter().take(SHOWN) {
            let _ = writeln!(
                s,
                "- {}:{}-{} and {}:{}-{} ({} tokens)",
                c.a.file, c.a.start_line, c.a.end_line, c.b.file, c.b.start_line, c.b.end_line, c.tokens
            );
        }
    }
    for (title, list) in [
        ("Public items without docs", &m.hygiene.undocumented),
        ("`unsafe` without `// SAFETY:`", &m.hygiene.unsafe_without_safety),
        ("`todo!()` and `unimplemented!()`", &m.hygiene.todos),
    ] {
        if list.is_empty() {
            continue;
        }
        let _ = writeln!(s, "\n## {title}\n");
        for f in list.iter().take(SHOWN) {
            let _ = writeln!(s, "- {}:{}: {}", f.file, f.line, f.what);
        }
        if list.len() > SHOWN {
            let _ = writeln!(s, "- … and {} more", list.len() - SHOWN);
        }
    }
    s
}
