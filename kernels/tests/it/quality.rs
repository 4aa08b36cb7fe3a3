//! kernels::quality: complexity on hand-counted fixtures, duplication, docs, the gate on planted crates.
//!
//! The gate tests build the fixture crates in `tests/fixtures/quality/` with cargo clippy and
//! cargo llvm-cov into the shared target folder (`$CARGO_TARGET_DIR`, else this test's own), and
//! compare the coverage with `cargo llvm-cov --json --summary-only` run here.

use std::path::{Path, PathBuf};
use std::process::Command;

use kernels::Error;
use kernels::quality::complexity::{FunctionComplexity, complexity_of_source};
use kernels::quality::duplication::{find_clones, normalised_tokens};
use kernels::quality::grade::{Measurements, score};
use kernels::quality::hygiene::hygiene_of_file;
use kernels::quality::{self, Config, Grade, Options, coverage, report, trend};

/// A fresh temp folder, removed on drop.
struct Tmp(PathBuf);

impl Tmp {
    fn new(tag: &str) -> Tmp {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("kernels-quality-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Tmp(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/quality")
}

/// The shared target folder: the environment's, else the one this test was built in.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| {
        Path::new(env!("CARGO_TARGET_TMPDIR")).parent().expect("target/tmp has a parent").to_path_buf()
    })
}

/// `(name, cyclomatic, cognitive)` of every function of the hand-counted fixture, in order.
const HAND_COUNTED: &[(&str, u32, u32)] = &[
    ("straight", 1, 0),
    ("single_if", 2, 2),
    ("else_if_chain", 4, 4),
    ("match_arms", 4, 1),
    ("try_ops", 3, 0),
    ("mixed_booleans", 4, 3),
    ("same_booleans", 3, 1),
    ("parenthesised", 5, 4),
    ("nested_loops", 4, 6),
    ("labelled", 5, 11),
    ("with_loop", 4, 6),
    ("closures", 3, 4),
    ("outer", 2, 2),
    ("outer::inner", 2, 2),
    ("Stack::pop_positive", 3, 3),
    ("Stack::fmt", 2, 0),
    ("Shape::describe", 2, 2),
    ("tests_mod::helper", 3, 3),
    ("deep", 6, 11),
    ("let_chain", 3, 3),
    ("macros_opaque", 1, 0),
    ("closure_in_loop", 3, 5),
    ("else_nested", 4, 4),
    ("labelled_block", 2, 2),
    ("Wrapper::first", 1, 0),
];

#[test]
fn complexity_equals_the_hand_counts() {
    let source = std::fs::read_to_string(fixtures().join("complexity/cases.rs")).unwrap();
    let got = complexity_of_source(&source).unwrap();
    let names: Vec<&str> = got.iter().map(|f| f.name.as_str()).collect();
    let expected: Vec<&str> = HAND_COUNTED.iter().map(|c| c.0).collect();
    assert_eq!(names, expected);
    for (f, &(name, cyclomatic, cognitive)) in got.iter().zip(HAND_COUNTED) {
        assert_eq!((f.cyclomatic, f.cognitive), (cyclomatic, cognitive), "{name} (line {})", f.line);
        // The comment above each function names it and its counts.
        let above = source.lines().take(f.line - 1).collect::<Vec<_>>().join("\n");
        let label = format!("// {name}: cyclomatic {cyclomatic}, cognitive {cognitive}");
        assert!(above.contains(&label), "{name}: the fixture's comment does not say {label:?}");
    }
    // Lines are those of the `fn` keyword.
    assert_eq!(source.lines().nth(got[0].line - 1).unwrap().trim(), "fn straight(a: i32) -> i32 {");
}

fn check_complexity(source: &str, expected: &[(&str, usize, u32, u32)]) {
    let got = complexity_of_source(source).unwrap();
    let want: Vec<FunctionComplexity> = expected
        .iter()
        .map(|&(name, line, cyclomatic, cognitive)| FunctionComplexity {
            name: name.to_string(),
            line,
            cyclomatic,
            cognitive,
        })
        .collect();
    assert_eq!(got, want, "{source}");
}

#[test]
fn complexity_small_cases() {
    check_complexity("fn a() {}", &[("a", 1, 1, 0)]);
    check_complexity("trait T { fn no_body(&self); }", &[]);
    check_complexity("mod m {\n    impl<T> S<T> {\n        fn f(&self) { if x {} }\n    }\n}", &[("m::S::f", 3, 2, 1)]);
    // A nested fn's body is its own; the outer comes first.
    check_complexity("fn a() {\n    fn b() { loop {} }\n    while x {}\n}", &[("a", 1, 2, 1), ("a::b", 2, 2, 1)]);
    // Closure nesting: an `if` in a closure in a closure is at nesting 2.
    check_complexity("fn a() { let f = || || if x {}; }", &[("a", 1, 2, 3)]);
    // `?` in a closure counts for the function.
    check_complexity("fn a() { let f = || -> Option<u8> { g()?; None }; }", &[("a", 1, 2, 0)]);
    // The planted fixture's deep function: cyclomatic 12, cognitive 30.
    let planted = std::fs::read_to_string(fixtures().join("planted/src/lib.rs")).unwrap();
    let deep = complexity_of_source(&planted).unwrap().into_iter().find(|f| f.name == "deeply_nested").unwrap();
    assert_eq!((deep.cyclomatic, deep.cognitive), (12, 30));
}

#[test]
fn complexity_reports_where_a_file_does_not_parse() {
    match complexity_of_source("fn ok() {}\n\nfn broken() { let = ; }\n") {
        Err(Error::QualityParse { line, column, .. }) => assert_eq!((line, column), (3, 19)),
        other => panic!("expected a parse error, got {other:?}"),
    }
}

#[test]
fn duplication_finds_renamed_clones_across_files() {
    let planted = fixtures().join("planted/src");
    let files: Vec<(String, Vec<_>)> = ["lib.rs", "copy.rs"]
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(planted.join(f)).unwrap();
            (f.to_string(), normalised_tokens(&text).unwrap())
        })
        .collect();
    let d = find_clones(&files, 50);
    assert_eq!(d.clones.len(), 1, "{:?}", d.clones);
    let c = &d.clones[0];
    assert_eq!((c.a.file.as_str(), c.b.file.as_str()), ("lib.rs", "copy.rs"));
    // `moments` is lines 76-89 of lib.rs, `spread` lines 4-17 of copy.rs.
    assert_eq!((c.a.start_line, c.a.end_line, c.b.start_line, c.b.end_line), (76, 89, 4, 17));
    assert!(c.tokens > 90, "{}", c.tokens);
    assert_eq!(d.duplicated_lines, 28);
    assert!((d.percent - 100.0 * 28.0 / d.total_lines as f64).abs() < 1e-12);
    // Longer shingles than the clone find nothing; a clone inside one file is found too.
    assert!(find_clones(&files, 200).clones.is_empty());
    let body = "fn f(a: &[u8]) -> usize { let mut n = 0; for x in a { if *x > 3 { n += 1; } } n }";
    let twice = format!("{body}\n{}", body.replace("fn f", "fn g").replace('3', "9"));
    let one = vec![("one.rs".to_string(), normalised_tokens(&twice).unwrap())];
    let d = find_clones(&one, 20);
    assert_eq!(d.clones.len(), 1);
    assert_eq!((d.clones[0].a.start_line, d.clones[0].b.start_line), (1, 2));
    assert_eq!(d.percent, 100.0);
}

fn check_hygiene(source: &str, undocumented: &[&str], unsafe_lines: &[usize], todos: usize) {
    let file = syn::parse_file(source).unwrap();
    let h = hygiene_of_file("x.rs", source, &file);
    let got: Vec<&str> = h.undocumented.iter().map(|f| f.what.as_str()).collect();
    assert_eq!(got, undocumented, "{source}");
    let got: Vec<usize> = h.unsafe_without_safety.iter().map(|f| f.line).collect();
    assert_eq!(got, unsafe_lines, "{source}");
    assert_eq!(h.todos.len(), todos, "{source}");
}

#[test]
fn hygiene_docs_unsafe_and_todo() {
    check_hygiene(
        "/// Doc.\npub fn a() {}\npub fn b() {}\nfn private() {}\npub(crate) fn c() {}\npub struct S;\n\
         impl S { pub fn m(&self) {} /// Doc.\n pub fn n(&self) {} fn p(&self) {} }\n\
         impl Clone for S { fn clone(&self) -> S { S } }\npub mod m { //! Inner docs.\n pub const C: u8 = 1; }",
        &["fn b", "struct S", "fn m", "const C"],
        &[],
        0,
    );
    let unsafe_src = "fn f(p: *const u8) -> u8 {
    // SAFETY: p is valid.
    let a = unsafe { *p };
    let b = unsafe { *p };
    // Just a comment,
    // SAFETY: still the run of comments just above.
    let c = unsafe { *p };
    let d =
        unsafe { *p }; // the statement's line has no comment above either
    // SAFETY: above the statement that holds the block.
    let e = g(
        unsafe { *p },
    );
    a + b + c + d + e
}";
    check_hygiene(unsafe_src, &[], &[4, 9], 0);
    // Attributes between the comment and the block; a block in an `unsafe fn` is its contract's.
    check_hygiene(
        "fn f() {\n    // SAFETY: a hint.\n    #[allow(unused_unsafe)]\n    unsafe { g() }\n}\n\
         unsafe fn h(p: *const u8) -> u8 {\n    unsafe { *p }\n}\nfn k() { unsafe { g() } }",
        &[],
        &[9],
        0,
    );
    check_hygiene("fn f() { todo!() }\nfn g() { unimplemented!(\"x\"); std::todo!(); }", &[], &[], 3);
}

#[test]
fn config_defaults_overrides_and_unknown_keys() {
    let default = Config::default();
    assert_eq!(default.grade.b, 80.0);
    let c = Config::parse("q.toml", "[grade]\nb = 85\n[complexity]\nmax_cognitive = 20\n").unwrap();
    assert_eq!((c.grade.b, c.complexity.max_cognitive, c.grade.a), (85.0, 20, 90.0));
    for (text, key) in [
        ("[weights]\nbogus = 1.0\n", "weights.bogus"),
        ("[nope]\n", "nope"),
        ("[complexity]\nmax_cyclomatic = \"ten\"\n", ""),
        ("[grade]\na = 50.0\n", "grade"),
        ("[docs]\nzero = 1.5\n", "docs.zero"),
    ] {
        match Config::parse("q.toml", text) {
            Err(Error::QualityConfig { path, key: got, .. }) => {
                assert_eq!(path, "q.toml");
                if !key.is_empty() {
                    assert_eq!(got, key, "{text}");
                }
            }
            other => panic!("{text}: expected a config error, got {other:?}"),
        }
    }
    let err = Config::parse("q.toml", "[weights]\nbogus = 1.0\n").unwrap_err().to_string();
    assert!(err.contains("q.toml") && err.contains("weights.bogus"), "{err}");
}

fn check_score(m: Measurements, expected_score: f64, expected: Grade) {
    let s = score(&Config::default(), &m);
    assert!((s.score - expected_score).abs() < 1e-9, "{m:?}: {} not {expected_score}", s.score);
    assert_eq!(s.grade, expected, "{m:?}");
}

#[test]
fn scoring_formula() {
    let perfect = Measurements {
        line_coverage_percent: Some(95.0),
        clippy: Some((0, 0)),
        complexity: (10, 0),
        duplicated_line_percent: 0.0,
        docs: (4, 4),
        unsafe_without_safety: 0,
        todos: 0,
    };
    check_score(perfect.clone(), 100.0, Grade::A);
    // Coverage 70 %: half of its 25 points.
    check_score(Measurements { line_coverage_percent: Some(70.0), ..perfect.clone() }, 87.5, Grade::B);
    // Without coverage, the other 75 points are the whole.
    check_score(
        Measurements { line_coverage_percent: None, clippy: Some((2, 0)), ..perfect.clone() },
        100.0 * (75.0 - 20.0 * 0.2) / 75.0,
        Grade::A,
    );
    // One function in ten over the limits (half the complexity points), two todo!()s (half the todo
    // points): the score is a B's, but any todo!() caps the grade at C.
    check_score(Measurements { complexity: (10, 1), todos: 2, ..perfect.clone() }, 87.5, Grade::C);
    // A stub: every other category perfect, one todo!() per task.
    let stub = score(&Config::default(), &Measurements { todos: 3, ..perfect.clone() });
    assert_eq!((stub.grade, stub.score > 90.0), (Grade::C, true), "{stub:?}");
    assert!(stub.capped.as_deref().is_some_and(|c| c.contains("3 todo!()") && c.contains("gives A")), "{stub:?}");
    let uncapped = Config::parse("q.toml", "[todo]\ncap = \"A\"\n").unwrap();
    assert_eq!(score(&uncapped, &Measurements { todos: 3, ..perfect.clone() }).grade, Grade::A);
    assert_eq!(score(&Config::default(), &perfect).capped, None);
    // Docs: 3 of 4 documented is half-way from 0.5 to 1.
    check_score(Measurements { docs: (4, 3), ..perfect.clone() }, 95.0, Grade::A);
    let worst = Measurements {
        line_coverage_percent: Some(10.0),
        clippy: Some((20, 3)),
        complexity: (4, 4),
        duplicated_line_percent: 50.0,
        docs: (4, 0),
        unsafe_without_safety: 3,
        todos: 9,
    };
    check_score(worst, 0.0, Grade::F);
    assert!(Grade::A.meets(Grade::B) && Grade::B.meets(Grade::B) && !Grade::C.meets(Grade::B));
}

#[test]
fn bad_input_is_a_typed_error() {
    let dir = Tmp::new("bad");
    match quality::analyze(dir.path(), &Config::default(), &Options::default()) {
        Err(Error::QualityNotACrate { path, .. }) => assert_eq!(path, dir.path()),
        other => panic!("expected not-a-crate, got {other:?}"),
    }
    // A file that does not parse is reported with its line; the other files are still measured.
    let krate = dir.path().join("broken");
    std::fs::create_dir_all(krate.join("src")).unwrap();
    std::fs::write(krate.join("Cargo.toml"), "[package]\nname = \"broken\"\nversion = \"0.1.0\"\n").unwrap();
    std::fs::write(krate.join("src/lib.rs"), "pub mod bad;\n/// Ok.\npub fn ok() { todo!() }\n").unwrap();
    std::fs::write(krate.join("src/bad.rs"), "fn fine() {}\n\nfn broken() { let = ; }\n").unwrap();
    let r = quality::analyze(&krate, &Config::default(), &Options::default()).unwrap();
    assert_eq!(r.metrics.files, 2);
    assert_eq!(r.metrics.parse_errors.len(), 1, "{:?}", r.metrics.parse_errors);
    assert!(r.metrics.parse_errors[0].starts_with("src/bad.rs:3:"), "{}", r.metrics.parse_errors[0]);
    assert_eq!((r.metrics.complexity.functions, r.metrics.hygiene.todos.len()), (1, 1));
    assert!(report::to_markdown(&r).contains("src/bad.rs:3:"));
}

/// cargo-llvm-cov, or `None` (skipped) outside CI; under `CI=true` a missing tool fails the test.
fn llvm_cov_or_skip() -> Option<PathBuf> {
    match coverage::cargo_llvm_cov() {
        Ok(p) => Some(p),
        Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => panic!("{e}"),
        Err(e) => {
            eprintln!("skipping the coverage checks: {e}");
            None
        }
    }
}

/// `cargo llvm-cov --json --summary-only` on `krate`, run here: its `data[0].totals`.
fn llvm_cov_totals(tool: &Path, krate: &Path) -> serde_json::Value {
    let out = Command::new(tool)
        .args(["llvm-cov", "--json", "--summary-only", "--manifest-path"])
        .arg(krate.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", target_dir())
        // As kernels::quality::coverage does: CI's test build runs clippy's driver as rustc.
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CLIPPY_ARGS")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["data"][0]["totals"].clone()
}

#[test]
fn the_gate_fails_the_planted_crate_and_passes_the_clean_one() {
    let tool = llvm_cov_or_skip();
    let config = Config::default();
    let options =
        Options { coverage: tool.is_some(), clippy: true, cargo_args: vec![], target_dir: Some(target_dir()) };

    let planted = quality::analyze(&fixtures().join("planted"), &config, &options).unwrap();
    let m = &planted.metrics;
    assert_eq!(planted.crate_name, "quality-fixture-planted");
    let over: Vec<&str> = m.complexity.over_limit.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(over, ["deeply_nested"]);
    assert_eq!(m.duplication.clones.len(), 1);
    let undocumented: Vec<&str> = m.hygiene.undocumented.iter().map(|f| f.what.as_str()).collect();
    assert_eq!(undocumented, ["fn add", "struct Undocumented"]);
    assert_eq!(m.hygiene.unsafe_without_safety.len(), 1);
    assert_eq!(m.hygiene.todos.len(), 1);
    let clippy = planted.clippy.as_ref().unwrap();
    let lints: Vec<&str> = clippy.by_lint.iter().map(|l| l.lint.as_str()).collect();
    for lint in ["clippy::needless_range_loop", "clippy::needless_return", "clippy::ptr_arg"] {
        assert!(lints.contains(&lint), "{lint} not in {lints:?}");
    }
    assert_eq!(clippy.errors, 0);
    assert_eq!(planted.score.grade, Grade::F, "{}", report::to_markdown(&planted));
    assert!(!planted.score.grade.meets(Grade::B));

    let clean = quality::analyze(&fixtures().join("clean"), &config, &options).unwrap();
    assert_eq!(clean.clippy.as_ref().unwrap().warnings, 0, "{:?}", clean.clippy);
    assert!(clean.metrics.complexity.over_limit.is_empty() && clean.metrics.duplication.clones.is_empty());
    let h = &clean.metrics.hygiene;
    assert_eq!(h.public_items, 4);
    assert!(h.undocumented.is_empty() && h.unsafe_without_safety.is_empty() && h.todos.is_empty(), "{h:?}");
    assert_eq!(clean.score.grade, Grade::A, "{}", report::to_markdown(&clean));
    assert!(clean.score.grade.meets(Grade::B));

    // Coverage equals cargo llvm-cov's own summary.
    if let Some(tool) = tool {
        for r in [&planted, &clean] {
            let c = r.coverage.as_ref().unwrap();
            let totals = llvm_cov_totals(&tool, Path::new(&r.path));
            for (kind, counts) in [("lines", &c.lines), ("functions", &c.functions), ("regions", &c.regions)] {
                let t = &totals[kind];
                assert_eq!(t["count"].as_u64(), Some(counts.count), "{} {kind}", r.crate_name);
                assert_eq!(t["covered"].as_u64(), Some(counts.covered), "{} {kind}", r.crate_name);
                let percent = t["percent"].as_f64().unwrap();
                assert!(
                    (percent - counts.percent).abs() < 1e-9,
                    "{} {kind}: {percent} vs {}",
                    r.crate_name,
                    counts.percent
                );
                let own = 100.0 * counts.covered as f64 / counts.count as f64;
                assert!((own - counts.percent).abs() < 1e-9, "{kind}: covered/count {own}");
            }
            assert!(c.branches.is_none() && c.note.contains("nightly"), "{}", c.note);
        }
        let planted_lines = planted.coverage.as_ref().unwrap().lines.percent;
        assert!(planted_lines < 60.0, "planted line coverage {planted_lines}");
        assert_eq!(clean.coverage.as_ref().unwrap().lines.percent, 100.0, "the clean crate's tests run every line");
    }
    let json: serde_json::Value = serde_json::from_str(&report::to_json(&planted).unwrap()).unwrap();
    assert_eq!(json["score"]["grade"], "F");
    assert_eq!(json["complexity"]["over_limit"][0]["name"], "deeply_nested");
}

#[cfg(feature = "cli")]
#[test]
fn sovereign_quality_fails_under_a_grade() {
    let run = |krate: &str, extra: &[&str]| {
        let tmp = Tmp::new("cli");
        let md = tmp.path().join("report.md");
        let out = Command::new(env!("CARGO_BIN_EXE_sovereign"))
            .args(["quality", "--no-coverage", "--no-clippy", "--fail-under", "B", "--path"])
            .arg(fixtures().join(krate))
            .arg("--markdown")
            .arg(&md)
            .args(extra)
            .output()
            .unwrap();
        (out, std::fs::read_to_string(&md).unwrap_or_default())
    };
    let (out, md) = run("planted", &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("below --fail-under B"), "{out:?}");
    assert!(md.contains("deeply_nested") && md.contains("todo!()"), "{md}");
    let (out, md) = run("clean", &[]);
    assert!(out.status.success(), "{out:?}");
    assert!(md.contains("grade A"), "{md}");
    let tmp = Tmp::new("cli-config");
    let bad = tmp.path().join("quality.toml");
    std::fs::write(&bad, "[weights]\nbogus = 1\n").unwrap();
    let (out, _) = run("clean", &["--config", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("weights.bogus"), "{out:?}");
}

#[test]
fn trend_over_commits_and_its_chart() {
    let dir = Tmp::new("trend");
    let repo = dir.path();
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"])
            .args(args)
            .current_dir(repo)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    git(&["init", "-q"]);
    std::fs::write(repo.join("README"), "not a crate yet\n").unwrap();
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "readme"]);
    std::fs::create_dir_all(repo.join("lab/src")).unwrap();
    std::fs::write(repo.join("lab/Cargo.toml"), "[package]\nname = \"lab\"\nversion = \"0.1.0\"\n").unwrap();
    let versions = [
        "//! Lab.\n/// Doc.\npub fn f() -> i32 { 1 }\n",
        "//! Lab.\npub fn f() -> i32 { todo!() }\npub fn g() {}\n",
        "//! Lab.\n/// Doc.\npub fn f() -> i32 { 2 }\n",
    ];
    for (i, v) in versions.iter().enumerate() {
        std::fs::write(repo.join("lab/src/lib.rs"), v).unwrap();
        git(&["add", "."]);
        git(&["commit", "-q", "-m", &format!("v{i} <&>")]);
    }
    let config = Config::default();
    let points = trend::trend(&repo.join("lab"), &config, 10).unwrap();
    assert_eq!(points.len(), 3, "the readme-only commit has no crate");
    let scores: Vec<f64> = points.iter().map(|p| p.score).collect();
    assert_eq!(scores[0], 100.0);
    assert!(scores[1] < 90.0, "{scores:?}");
    assert_eq!(scores[2], 100.0);
    assert_eq!((points[1].todos, points[1].undocumented), (1, 2));
    assert_eq!(points[2].subject, "v2 <&>");
    // No worktree is left behind.
    let list = Command::new("git").args(["worktree", "list"]).current_dir(repo).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&list.stdout).lines().count(), 1);
    let svg = trend::svg(&points, "lab <trend>", &config);
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert_eq!(svg.matches("<circle").count(), 3);
    assert!(svg.contains("lab &lt;trend&gt;") && svg.contains("v2 &lt;&amp;&gt;"));
    assert!(svg.contains("<polyline"));
}
