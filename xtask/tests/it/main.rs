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
    let tests = report["tests"].as_array().expect("tests array");
    assert!(tests.len() >= 20);
    for t in tests {
        for key in ["id", "score", "max_score", "status", "output"] {
            assert!(t.get(key).is_some(), "test lacks {key}: {t}");
        }
        assert_eq!(t["status"], "passed", "{t}");
        // A graded benchmark's points follow a measured ratio (a busy machine may cost a fraction of
        // them); every other test of the solution scores in full.
        if t["file"] == "bench" {
            assert!(t["score"].as_f64().is_some_and(|s| s > 0.0), "{t}");
        } else {
            assert_eq!(t["score"], t["max_score"], "{t}");
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

/// A submission whose every `todo!` region exits 0 after printing a forged pass.
const FORGED: &str =
    r#"println!("test result: ok. 1 passed; 0 failed"); println!("{{\"nonce\":\"0000\"}}"); std::process::exit(0)"#;

fn copy_tree(from: &Path, to: &Path, edit: &dyn Fn(&str) -> String) {
    for entry in walkdir::WalkDir::new(from) {
        let entry = entry.unwrap();
        let dest = to.join(entry.path().strip_prefix(from).unwrap());
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
        } else {
            std::fs::write(&dest, edit(&std::fs::read_to_string(entry.path()).unwrap())).unwrap();
        }
    }
}

/// The bundle, run the way Gradescope runs it: unzipped into `ROOT/source`, the
/// upload in `ROOT/submission`, `run_autograder` writing `ROOT/results/results.json`.
#[test]
fn a_gradescope_bundle_grades_the_solution_fully_and_the_stub_and_a_forger_at_zero() {
    use autograder::stubs::{Replacement, render_with, stub_source};
    let ws = autograder::Workspace::find(Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("c4w3.zip");
    xtask().args(["export", "--gradescope", "c4w3", "--out"]).arg(&bundle).assert().success();
    let root = dir.path().join("autograder");
    zip::ZipArchive::new(std::fs::File::open(&bundle).unwrap()).unwrap().extract(root.join("source")).unwrap();
    let source = root.join("source");
    assert!(!source.join("solutions").exists(), "the bundle carries no solution");
    assert!(source.join("autograder/weeks/c4w3/hidden.rs").is_file(), "the bundle carries the week's hidden tests");
    assert!(!source.join("autograder/weeks/c4w1/hidden.rs").exists(), "and no other week's");
    let syntax = std::process::Command::new("bash").arg("-n").arg(source.join("setup.sh")).status().unwrap();
    assert!(syntax.success(), "setup.sh does not parse");

    let solution = ws.root.join("solutions/c4w3-vector-search/src");
    let forge = |text: &str| {
        let forged = render_with(text, |r| match r.replacement {
            Replacement::Todo => Some(format!("{}{{ {FORGED} }}\n", r.indent)),
            _ => None,
        })
        .unwrap();
        stub_source(&forged).unwrap()
    };
    let keep = |text: &str| text.to_string();
    let stub = |text: &str| stub_source(text).unwrap();
    type Edit<'a> = &'a dyn Fn(&str) -> String;
    let cases: [(&str, Edit, &str, bool); 3] = [
        // Uploaded as the repository, as a bare src/ folder, and as loose files.
        ("solution", &keep, "labs/c4w3-vector-search/src", true),
        ("stub", &stub, "src", false),
        ("forger", &forge, "", false),
    ];
    for (name, edit, layout, full) in cases {
        let submission = root.join("submission");
        std::fs::remove_dir_all(&submission).ok();
        std::fs::remove_dir_all(root.join("results")).ok();
        copy_tree(&solution, &submission.join(layout), edit);
        let out = autograder::without_cargo_run_env(&mut std::process::Command::new("bash"))
            .arg(source.join("run_autograder"))
            .env("AUTOGRADER_ROOT", &root)
            .env("CARGO_TARGET_DIR", ws.target_dir())
            .output()
            .unwrap();
        assert!(out.status.success(), "{name}: run_autograder failed: {}", String::from_utf8_lossy(&out.stderr));
        let results = json(&std::fs::read(root.join("results/results.json")).unwrap());
        let tests = results["tests"].as_array().expect("tests");
        let max: f64 = tests.iter().map(|t| t["max_score"].as_f64().unwrap()).sum();
        let score = results["score"].as_f64().unwrap();
        assert!(tests.len() >= 20, "{name}: {results}");
        if full {
            assert_eq!(score, max, "{name}: {}", results["output"]);
        } else {
            assert_eq!(score, 0.0, "{name}: {}", results["output"]);
        }
        assert!(tests.iter().any(|t| t["visibility"] != "visible"), "{name}: hidden tests keep their visibility");
    }
}
