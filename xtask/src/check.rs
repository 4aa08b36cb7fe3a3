//! `cargo xtask check`: proves every week's tests meaningful and its lab faithful.
//!
//! For each week with a solution: labs/ is fresh; the lab and the solution have
//! the same public API; the marker task ids and week.toml agree; the stub
//! compiles and scores zero on every test (no test passes vacuously); the
//! solution scores full marks.

use std::collections::BTreeSet;

use anyhow::{Result, bail};
use autograder::{GradeOptions, Mode, Report, Workspace, api, grade, spec, stubs};
use console::style;

pub fn run(ws: &Workspace, names: &[String]) -> Result<()> {
    let weeks = if names.is_empty() {
        spec::all_weeks(ws)?
    } else {
        names.iter().map(|n| spec::resolve(ws, n, None)).collect::<Result<Vec<_>>>()?
    };
    let stale = stubs::sync_labs(ws, true)?;
    let mut failures = Vec::new();
    if !stale.is_empty() {
        failures.push(format!("labs/ is stale ({} file(s)): run `cargo xtask stubs`", stale.len()));
    }
    for week in &weeks {
        let solution = week.solution_dir(ws);
        if !solution.join("Cargo.toml").is_file() {
            println!("{} {}: no solution in this checkout, skipped", style("-").dim(), week.id);
            continue;
        }
        let mut problems = Vec::new();

        let diff = api::diff(&api::public_api(&solution)?, &api::public_api(&week.lab_dir(ws))?);
        if !diff.is_empty() {
            problems.push(format!("lab and solution public APIs differ:\n      {}", diff.join("\n      ")));
        }

        let mut marked = BTreeSet::new();
        for entry in walkdir::WalkDir::new(solution.join("src")) {
            let entry = entry?;
            if entry.path().extension().is_some_and(|e| e == "rs") {
                marked.extend(stubs::tasks_in(&std::fs::read_to_string(entry.path())?)?);
            }
        }
        for task in &week.tasks {
            let bench_only = task.tests.iter().all(|t| t.file == spec::TestFile::Bench);
            if !bench_only && !marked.contains(&task.id) {
                problems.push(format!("task {} has no `// BEGIN SOLUTION {}` region", task.id, task.id));
            }
        }
        for id in &marked {
            if !week.tasks.iter().any(|t| &t.id == id) {
                problems.push(format!("marker task {id} is not in week.toml"));
            }
        }

        let start = std::time::Instant::now();
        let stub = grade(ws, week, &GradeOptions { mode: Mode::Lab, progress: true, ..GradeOptions::default() })?;
        let stub_seconds = start.elapsed().as_secs_f64();
        if let Some(error) = &stub.compile_error {
            problems.push(format!("the stub does not compile:\n{error}"));
        }
        for test in stub.tests.iter().filter(|t| t.score > 0.0) {
            problems.push(format!("test {} scores {} on the stub: it passes vacuously", test.id, test.score));
        }
        // A graded benchmark is noisy on a shared machine: the solution gets three runs to reach full marks.
        let reference = grade(
            ws,
            week,
            &GradeOptions { mode: Mode::Solution, progress: true, bench_attempts: 3, ..GradeOptions::default() },
        )?;
        if let Some(error) = &reference.compile_error {
            problems.push(format!("the solution does not compile:\n{error}"));
        }
        for test in reference.tests.iter().filter(|t| t.score < t.max_score) {
            problems.push(format!(
                "test {} scores {}/{} on the solution: {}",
                test.id, test.score, test.max_score, test.output
            ));
        }
        let seconds = (stub_seconds, start.elapsed().as_secs_f64() - stub_seconds);
        summarise(week, &stub, &reference, &problems, seconds);
        failures.extend(problems.into_iter().map(|p| format!("{}: {p}", week.id)));
    }
    if !failures.is_empty() {
        for f in &failures {
            eprintln!("{} {f}", style("✗").red());
        }
        bail!("{} check(s) failed", failures.len());
    }
    Ok(())
}

/// One line per week; `seconds` is the wall time of the stub's and the solution's grading (build included).
fn summarise(week: &spec::WeekSpec, stub: &Report, reference: &Report, problems: &[String], seconds: (f64, f64)) {
    let mark = if problems.is_empty() { style("✓").green() } else { style("✗").red() };
    println!(
        "{mark} {}: {} tests in {} tasks; stub {:.0}/{:.0}, solution {:.1}/{:.0}; API {} ({:.0} s + {:.0} s)",
        week.id,
        week.tests().count(),
        week.tasks.len(),
        stub.score,
        stub.max_score,
        reference.score,
        reference.max_score,
        if problems.iter().any(|p| p.contains("public APIs")) { "differs" } else { "equal" },
        seconds.0,
        seconds.1
    );
}
