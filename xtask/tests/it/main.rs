//! The command line as a user runs it: `cargo xtask …` through assert_cmd.

use std::path::Path;

use assert_cmd::Command;

fn xtask() -> Command {
    let mut cmd = Command::cargo_bin("xtask").expect("xtask binary");
    cmd.current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root"));
    cmd
}

fn json(out: &[u8]) -> serde_json::Value {
    serde_json::from_slice(out).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(out)))
}

#[test]
fn grading_the_solution_prints_a_full_machine_report_and_a_gradescope_file() {
    let dir = tempfile::tempdir().unwrap();
    let gradescope = dir.path().join("results.json");
    let out =
        xtask().args(["grade", "c4w3", "--solution", "--json", "--gradescope"]).arg(&gradescope).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report = json(&out.stdout);
    assert_eq!(report["score"], report["max_score"]);
    let tests = report["tests"].as_array().expect("tests array");
    assert!(tests.len() >= 20);
    for t in tests {
        for key in ["id", "score", "max_score", "status", "output"] {
            assert!(t.get(key).is_some(), "test lacks {key}: {t}");
        }
    }
    let gs = json(&std::fs::read(&gradescope).unwrap());
    assert_eq!(gs["score"], report["score"]);
    assert_eq!(gs["tests"].as_array().unwrap().len(), tests.len());
    let leaderboard = gs["leaderboard"].as_array().expect("leaderboard");
    assert!(leaderboard.iter().any(|e| e["value"].as_f64().is_some_and(|v| v > 0.0)), "{leaderboard:?}");
    for t in gs["tests"].as_array().unwrap() {
        let vis = t["visibility"].as_str().unwrap();
        assert!(["visible", "hidden", "after_due_date", "after_published"].contains(&vis), "{vis}");
    }
}

#[test]
fn week_names_resolve_through_the_course_and_unknown_weeks_are_clear_errors() {
    let out = xtask().args(["grade", "week9", "--course", "4", "--solution"]).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no graded week `c4w9`") && stderr.contains("c4w3"), "{stderr}");
    let out = xtask().args(["grade", "week3", "--course", "7"]).output().unwrap();
    assert!(!out.status.success());
}

#[test]
fn stubs_are_fresh() {
    xtask().args(["stubs", "--check"]).assert().success();
}
