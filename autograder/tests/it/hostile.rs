//! Hostile submissions: each task of a copy of the solution is replaced by one
//! way of cheating or crashing, the copy is graded for real, and each must cost
//! only its own task's tests (and those that depend on it), never earn points;
//! and an honest partial submission earns exactly the task it finished.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use autograder::runner::Status;
use autograder::stubs::{Region, Replacement, lab_text, render_with, stub_source};
use autograder::{GradeOptions, Mode, Report, Workspace, grade, spec};

/// Grading runs share `.grade/submissions/<week>`: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn workspace() -> Workspace {
    Workspace::find(Path::new(env!("CARGO_MANIFEST_DIR"))).expect("inside the workspace")
}

/// A copy of the week's solution `src/`, each region rendered by `choose`
/// (`None` keeps the reference code), as the lab would be.
fn submission(
    ws: &Workspace,
    week: &spec::WeekSpec,
    mut choose: impl FnMut(&Region) -> Option<String>,
) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let src = week.solution_dir(ws).join("src");
    for entry in walkdir::WalkDir::new(&src) {
        let entry = entry.expect("walk");
        if !entry.file_type().is_file() {
            continue;
        }
        let rel = entry.path().strip_prefix(&src).expect("inside src");
        let text = std::fs::read_to_string(entry.path()).expect("read");
        let out = stub_source(&render_with(&text, &mut choose).expect("markers parse")).expect("stub lines");
        let to = dir.path().join("src").join(rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::write(to, out).unwrap();
    }
    dir
}

/// Region text giving each task in `hostile` that code instead of its reference
/// code (in every `todo!`-style region).
fn hostile_code<'a>(hostile: &'a BTreeMap<&str, &str>) -> impl FnMut(&Region) -> Option<String> + 'a {
    |region| match (&region.replacement, hostile.get(region.task.as_str())) {
        (Replacement::Todo, Some(code)) => Some(format!("{}{{ {code} }}\n", region.indent)),
        _ => None,
    }
}

fn grade_submission(ws: &Workspace, week: &spec::WeekSpec, dir: &Path) -> Report {
    let options = GradeOptions {
        mode: Mode::Submission(dir.to_path_buf()),
        progress: false,
        timeout_scale: 0.2,
        ..GradeOptions::default()
    };
    grade(ws, week, &options).expect("the grader itself must not fail")
}

fn task_score(report: &Report, task: &str) -> (f64, f64) {
    let t = report.tasks.iter().find(|t| t.id == task).unwrap_or_else(|| panic!("no task {task}"));
    (t.score, t.max_score)
}

fn statuses(report: &Report, task: &str) -> Vec<Status> {
    report.tests.iter().filter(|t| t.task == task).filter_map(|t| t.details.clone()).collect()
}

const FORGED: &str = r#"println!("test result: ok. 1 passed; 0 failed"); println!("{{\"nonce\":\"0000\",\"metrics\":{{}}}}"); eprintln!("PASSED"); std::process::exit(0)"#;
const STACK_OVERFLOW: &str = "fn deep(n: u64) -> u64 { let pad = std::hint::black_box([n; 32]); if n == u64::MAX { pad[0] } else { std::hint::black_box(deep(n + 1)).wrapping_add(pad[(n % 32) as usize]) } } std::process::exit(deep(0) as i32)";
const HUGE_ALLOCATION: &str = "let v = vec![1u8; std::hint::black_box(1usize << 40)]; std::hint::black_box(&v); std::process::exit(v.len() as i32)";

#[test]
fn hostile_code_costs_only_its_own_tasks() {
    let _guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let ws = workspace();
    let week = spec::resolve(&ws, "c4w3", None).expect("week c4w3");
    let hostile = BTreeMap::from([
        ("c4w3.rrf", FORGED),
        ("c4w3.bm25", "loop { std::hint::spin_loop() }"),
        ("c4w3.exact-knn", HUGE_ALLOCATION),
        ("c4w3.hnsw-search", STACK_OVERFLOW),
        ("c4w3.hnsw-select", "std::process::abort()"),
    ]);
    let dir = submission(&ws, &week, hostile_code(&hostile));
    let report = grade_submission(&ws, &week, dir.path());
    assert!(report.compile_error.is_none(), "{:?}", report.compile_error);

    for task in hostile.keys() {
        assert_eq!(task_score(&report, task).0, 0.0, "hostile task {task} earned points:\n{}", report.render());
    }
    // Tasks that depend on a hostile one fail too; the untouched, independent one keeps its points.
    let (got, max) = task_score(&report, "c4w3.simd-distances");
    assert_eq!(got, max, "an independent task lost points:\n{}", report.render());

    assert!(
        statuses(&report, "c4w3.rrf").iter().all(|s| matches!(s, Status::ExitedEarly { code: Some(0) })),
        "{:?}",
        statuses(&report, "c4w3.rrf")
    );
    assert!(
        statuses(&report, "c4w3.bm25").iter().all(|s| matches!(s, Status::TimedOut { .. })),
        "{:?}",
        statuses(&report, "c4w3.bm25")
    );
    assert!(
        statuses(&report, "c4w3.exact-knn").iter().all(|s| matches!(s, Status::OutOfMemory { .. })),
        "{:?}",
        statuses(&report, "c4w3.exact-knn")
    );
    assert!(
        statuses(&report, "c4w3.hnsw-search")
            .iter()
            .all(|s| matches!(s, Status::StackOverflow | Status::Failed { .. })),
        "{:?}",
        statuses(&report, "c4w3.hnsw-search")
    );
    assert!(
        statuses(&report, "c4w3.hnsw-select")
            .iter()
            .all(|s| matches!(s, Status::Crashed { signal } if *signal == libc::SIGABRT)),
        "{:?}",
        statuses(&report, "c4w3.hnsw-select")
    );
    assert!(report.score < report.max_score);
    // Every renderer copes with the wreckage.
    assert!(report.render().contains("c4w3.bm25"));
    assert_eq!(report.to_gradescope()["tests"].as_array().map(Vec::len), Some(report.tests.len()));
}

#[test]
fn a_submission_that_does_not_compile_scores_zero_with_the_first_error() {
    let _guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let ws = workspace();
    let week = spec::resolve(&ws, "c4w3", None).expect("week c4w3");
    let broken = BTreeMap::from([("c4w3.rrf", "let broken: u32 = \"not a number\"; todo!()")]);
    let dir = submission(&ws, &week, hostile_code(&broken));
    let report = grade_submission(&ws, &week, dir.path());
    let error = report.compile_error.as_deref().expect("a compile error is reported");
    assert!(error.contains("mismatched types"), "{error}");
    assert_eq!(report.score, 0.0);
    assert!(report.render().contains("does not compile"));
    assert!(report.to_gradescope()["output"].as_str().unwrap().contains("does not compile"));
}

#[test]
fn finishing_one_task_earns_exactly_that_task() {
    let _guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let ws = workspace();
    let week = spec::resolve(&ws, "c4w3", None).expect("week c4w3");
    // The learner's lab with only the RRF task done: the stub everywhere else.
    let dir = submission(&ws, &week, |r| (r.task != "c4w3.rrf").then(|| lab_text(r)));
    let report = grade_submission(&ws, &week, dir.path());
    assert_eq!(task_score(&report, "c4w3.rrf"), (5.0, 5.0), "{}", report.render());
    assert_eq!(report.score, 5.0, "{}", report.render());
    assert!(report.render().contains("not implemented yet (c4w3.bm25)"));
}

#[test]
fn a_folder_without_a_crate_is_a_clear_error() {
    let ws = workspace();
    let week = spec::resolve(&ws, "c4w3", None).expect("week c4w3");
    let empty = tempfile::tempdir().unwrap();
    let err = grade(
        &ws,
        &week,
        &GradeOptions { mode: Mode::Submission(empty.path().to_path_buf()), ..GradeOptions::default() },
    )
    .expect_err("nothing to grade");
    assert!(err.to_string().contains("src/lib.rs"), "{err}");
}
