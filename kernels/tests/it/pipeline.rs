//! Tests of `kernels::pipeline` and `sovereign pipeline`: validation errors, the topological order
//! against brute force, content-addressed caching, resume after SIGKILL at seeded random points,
//! retries, timeouts, failure propagation, the sovereign tier under the deny-network tracer, and
//! MLflow logging read back from a real server.
//!
//! Steps are small Python programs (`tests/fixtures/pipeline/step.py`, `connect.py`) run by the
//! venv's Python; each appends its name to a side-effect log, the independent record of which steps
//! executed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kernels::Error;
use kernels::pipeline::{
    Backoff, Decision, Pipeline, Reason, RunConfig, State, StepContext, StepFn, StepStatus, Tier, plan, run, topo_order,
};

fn python() -> PathBuf {
    let venv = kernels::tracking::default_python();
    if venv.is_file() { venv } else { PathBuf::from("python3") }
}

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pipeline").join(name).display().to_string()
}

/// A fresh, empty folder under cargo's per-target scratch area.
fn scratch(name: &str) -> PathBuf {
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("kernels-pipeline").join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// TOML string literal.
fn q(s: &str) -> String {
    format!("{s:?}")
}

/// A `[[step]]` running step.py: `ins`/`outs` are (name, path) pairs; `flags` extra argv pairs.
fn py_step(name: &str, ins: &[(&str, &str)], outs: &[(&str, &str)], flags: &[&str], extra: &str) -> String {
    let mut argv = vec![q(&python().display().to_string()), q(&fixture("step.py")), q(name), q("side.log")];
    for (k, _) in ins {
        argv.push(q("--in"));
        argv.push(q(&format!("{{in:{k}}}")));
    }
    for (k, _) in outs {
        argv.push(q("--out"));
        argv.push(q(&format!("{{out:{k}}}")));
    }
    argv.extend(flags.iter().map(|f| q(f)));
    let table =
        |pairs: &[(&str, &str)]| pairs.iter().map(|(k, p)| format!("{k} = {}", q(p))).collect::<Vec<_>>().join(", ");
    format!(
        "[[step]]\nname = {}\ncommand = [{}]\ninputs = {{ {} }}\noutputs = {{ {} }}\n{extra}\n",
        q(name),
        argv.join(", "),
        table(ins),
        table(outs)
    )
}

fn side_log(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("side.log")).unwrap_or_default().lines().map(str::to_owned).collect()
}

fn clear_side_log(dir: &Path) {
    let _ = std::fs::remove_file(dir.join("side.log"));
}

fn config(dir: &Path) -> RunConfig {
    RunConfig { state_dir: Some(dir.join("state")), threads: 2, ..RunConfig::default() }
}

fn run_ok(toml: &str, dir: &Path, cfg: &RunConfig) -> kernels::pipeline::RunReport {
    let p = Pipeline::from_toml(toml, dir).unwrap_or_else(|e| panic!("{e}"));
    run(&p, cfg).unwrap_or_else(|e| panic!("{e}")).into_result().unwrap_or_else(|e| panic!("{e}"))
}

fn sorted(v: Vec<&str>) -> Vec<String> {
    let mut v: Vec<String> = v.into_iter().map(str::to_owned).collect();
    v.sort();
    v
}

// ---------------------------------------------------------------------------------------------
// Validation

/// Parses `toml` (in `dir`) and checks the error's variant and that its message names `needles`.
fn check_invalid(dir: &Path, toml: &str, variant: &str, needles: &[&str]) {
    let err = match Pipeline::from_toml(toml, dir) {
        Ok(_) => panic!("accepted invalid pipeline ({variant}):\n{toml}"),
        Err(e) => e,
    };
    let got = match &err {
        Error::PipelineConfig { .. } => "config",
        Error::PipelineCycle { .. } => "cycle",
        Error::PipelineTier { .. } => "tier",
        other => panic!("unexpected error {other:?}"),
    };
    assert_eq!(got, variant, "{err}");
    let msg = err.to_string();
    for n in needles {
        assert!(msg.contains(n), "{msg:?} does not name {n:?}");
    }
    assert!(!msg.contains('\n'), "one-line message: {msg:?}");
}

fn fn_step(name: &str, extra: &str) -> String {
    format!("[[step]]\nname = {}\nfunction = \"f\"\n{extra}\n", q(name))
}

#[test]
fn invalid_pipelines_are_typed_errors_naming_the_culprit() {
    let dir = scratch("invalid");
    std::fs::write(dir.join("raw.txt"), "raw").unwrap();
    let cases: Vec<(String, &str, Vec<&str>)> = vec![
        (
            format!("{}{}", fn_step("a", "outputs = { x = \"x\" }"), fn_step("b", "outputs = { y = \"x\" }")),
            "config",
            vec!["step `b`", "also an output of step `a`", "/x"],
        ),
        (
            fn_step("a", "inputs = { raw = \"missing.txt\" }"),
            "config",
            vec!["input `raw`", "missing.txt", "does not exist"],
        ),
        (fn_step("a", "colour = \"red\""), "config", vec!["colour"]),
        (
            "[pipeline]\nname = \"p\"\nowner = \"me\"\n[[step]]\nname = \"a\"\nfunction = \"f\"\n".into(),
            "config",
            vec!["owner"],
        ),
        (fn_step("a", "after = [\"nope\"]"), "config", vec!["step `a`", "unknown step `nope`"]),
        (format!("{}{}", fn_step("a", ""), fn_step("a", "")), "config", vec!["duplicate step name `a`"]),
        ("[[step]]\nname = \"a\"\ncommand = [\"cat\", \"{out:nope}\"]\n".into(), "config", vec!["{out:nope}"]),
        ("[[step]]\nname = \"a\"\ncommand = []\n".into(), "config", vec!["`command` is empty"]),
        ("[[step]]\nname = \"a\"\n".into(), "config", vec!["neither"]),
        (fn_step("a", "timeout_s = -1.0"), "config", vec!["timeout_s"]),
        (fn_step("a", "threads = 0"), "config", vec!["threads"]),
        (fn_step("a b", ""), "config", vec!["a b"]),
        (
            fn_step("a", "inputs = { raw = \"raw.txt\" }\noutputs = { same = \"raw.txt\" }"),
            "config",
            vec!["also one of its inputs"],
        ),
        ("[[step]\nname = \"a\"".into(), "config", vec!["TOML", "line"]),
        ("".into(), "config", vec!["no [[step]]"]),
        (fn_step("a", "tier = \"sovereign\""), "tier", vec!["step a", "function `f`", "command step"]),
        (
            "[pipeline]\ntier = \"private\"\n[[step]]\nname = \"a\"\ncommand = [\"true\"]\ntier = \"standard\"\n"
                .into(),
            "tier",
            vec!["looser"],
        ),
        (fn_step("a", "tier = \"secret\""), "config", vec!["secret"]),
    ];
    for (toml, variant, needles) in &cases {
        check_invalid(&dir, toml, variant, needles);
    }
}

#[test]
fn a_cycle_is_named_with_its_members_in_dependency_order() {
    let dir = scratch("cycle");
    // Declared edges: a after c, b after a, c after b; d is outside the cycle.
    let toml = format!(
        "{}{}{}{}",
        fn_step("d", ""),
        fn_step("a", "after = [\"c\", \"d\"]"),
        fn_step("b", "after = [\"a\"]"),
        fn_step("c", "after = [\"b\"]")
    );
    let Err(Error::PipelineCycle { steps, .. }) = Pipeline::from_toml(&toml, &dir) else {
        panic!("cycle not detected")
    };
    assert_eq!(steps.len(), 4, "{steps:?}");
    assert_eq!(steps.first(), steps.last());
    assert_eq!(
        steps[..3].iter().collect::<BTreeSet<_>>(),
        ["a", "b", "c"].iter().map(|s| s.to_string()).collect::<BTreeSet<_>>().iter().collect()
    );
    // Each member runs before the next: the next declares it in `after`.
    let after: BTreeMap<&str, &str> = [("a", "c"), ("b", "a"), ("c", "b")].into_iter().collect();
    for w in steps.windows(2) {
        assert_eq!(after[w[1].as_str()], w[0], "{steps:?}");
    }
    // A cycle through data (outputs feeding inputs) is found too.
    let toml = format!(
        "{}{}",
        fn_step("x", "inputs = { i = \"y.out\" }\noutputs = { o = \"x.out\" }"),
        fn_step("y", "inputs = { i = \"x.out\" }\noutputs = { o = \"y.out\" }")
    );
    assert!(matches!(Pipeline::from_toml(&toml, &dir), Err(Error::PipelineCycle { steps, .. }) if steps.len() == 3));
}

/// SplitMix64: a seeded generator for the random DAGs and kill delays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Every permutation of `0..n` (Heap's algorithm).
fn permutations(n: usize) -> Vec<Vec<usize>> {
    fn heap(k: usize, a: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
        if k <= 1 {
            out.push(a.clone());
            return;
        }
        for i in 0..k {
            heap(k - 1, a, out);
            let j = if k.is_multiple_of(2) { i } else { 0 };
            a.swap(j, k - 1);
        }
    }
    let mut out = Vec::new();
    heap(n, &mut (0..n).collect(), &mut out);
    out
}

#[test]
fn topological_order_is_the_smallest_valid_order_by_declaration_on_random_dags() {
    let dir = scratch("topo");
    let mut rng = Rng(18);
    let mut checked = 0;
    for _ in 0..150 {
        let n = 2 + rng.below(6) as usize; // 2..=7 steps
        // A random hidden order; edges only forward in it, so the graph is acyclic, but not in
        // declaration order.
        let mut hidden: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            hidden.swap(i, rng.below(i as u64 + 1) as usize);
        }
        let mut edges: Vec<(usize, usize)> = Vec::new(); // (dependency, user)
        for a in 0..n {
            for b in a + 1..n {
                if rng.unit() < 0.35 {
                    edges.push((hidden[a], hidden[b]));
                }
            }
        }
        let mut toml = String::new();
        for s in 0..n {
            let after: Vec<String> = edges.iter().filter(|e| e.1 == s).map(|e| q(&format!("s{}", e.0))).collect();
            toml.push_str(&fn_step(&format!("s{s}"), &format!("after = [{}]", after.join(", "))));
        }
        let p = Pipeline::from_toml(&toml, &dir).unwrap_or_else(|e| panic!("{e}"));
        let got = topo_order(&p);
        let valid: Vec<Vec<usize>> = permutations(n)
            .into_iter()
            .filter(|perm| {
                let pos: Vec<usize> = (0..n).map(|s| perm.iter().position(|&x| x == s).unwrap()).collect();
                edges.iter().all(|&(d, u)| pos[d] < pos[u])
            })
            .collect();
        assert!(valid.contains(&got), "{got:?} breaks an edge of {edges:?}");
        assert_eq!(Some(&got), valid.iter().min(), "tie-break by declaration order, edges {edges:?}");
        checked += 1;
    }
    assert_eq!(checked, 150);
}

#[test]
fn backoff_doubles_from_its_initial_delay_up_to_its_cap() {
    let b = Backoff { initial: Duration::from_millis(100), max: Duration::from_millis(1000) };
    let got: Vec<u128> = (1..=7).map(|k| b.delay(k).as_millis()).collect();
    assert_eq!(got, [100, 200, 400, 800, 1000, 1000, 1000]);
    assert_eq!(b.delay(u32::MAX), Duration::from_millis(1000));
}

// ---------------------------------------------------------------------------------------------
// Caching

fn cache_pipeline(d_config: i64, c_tag: &str) -> String {
    format!(
        "[pipeline]\nname = \"cache\"\n{}{}{}{}",
        py_step("a", &[("raw", "raw1.txt")], &[("out", "work/a.txt")], &[], ""),
        py_step("b", &[("a", "work/a.txt")], &[("out", "work/b.txt")], &[], ""),
        py_step("c", &[("raw", "raw2.txt")], &[("out", "work/c.txt")], &["--tag", c_tag], ""),
        py_step(
            "d",
            &[("b", "work/b.txt"), ("c", "work/c.txt")],
            &[("out", "work/d.txt")],
            &[],
            &format!("config = {{ k = {d_config} }}")
        ),
    )
}

/// Runs the cache pipeline and checks which steps executed, by the report and by the side log.
fn check_reruns(dir: &Path, toml: &str, expected: &[&str]) {
    clear_side_log(dir);
    let report = run_ok(toml, dir, &config(dir));
    let mut ran = sorted(report.with_status(StepStatus::Ran));
    let mut logged = side_log(dir);
    logged.sort();
    ran.sort();
    let want: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
    assert_eq!(ran, want, "report");
    assert_eq!(logged, want, "side-effect log");
    let cached = sorted(report.with_status(StepStatus::Cached));
    assert_eq!(cached.len() + ran.len(), 4);
}

fn planned_reason(dir: &Path, toml: &str, step: &str) -> Option<Reason> {
    let p = Pipeline::from_toml(toml, dir).unwrap();
    let state = State::load(&dir.join("state")).unwrap();
    let plan = plan(&p, &state, false).unwrap();
    match &plan.steps.iter().find(|s| s.name == step).unwrap().decision {
        Decision::Run { why } => Some(why.clone()),
        Decision::Cached => None,
    }
}

#[test]
fn caching_reruns_exactly_what_changed_and_its_descendants() {
    let dir = scratch("cache");
    std::fs::write(dir.join("raw1.txt"), "one").unwrap();
    std::fs::write(dir.join("raw2.txt"), "two").unwrap();
    let base = cache_pipeline(1, "v1");
    check_reruns(&dir, &base, &["a", "b", "c", "d"]);
    let first_d = std::fs::read(dir.join("work/d.txt")).unwrap();
    // A second run executes nothing.
    check_reruns(&dir, &base, &[]);
    assert_eq!(planned_reason(&dir, &base, "d"), None);
    // Touching one input reruns it and its descendants (b and d depend on a; c does not).
    std::fs::write(dir.join("raw1.txt"), "one, edited").unwrap();
    assert_eq!(planned_reason(&dir, &base, "a"), Some(Reason::InputChanged("raw".into())));
    assert_eq!(planned_reason(&dir, &base, "b"), Some(Reason::UpstreamRuns("a".into())));
    assert_eq!(planned_reason(&dir, &base, "c"), None);
    check_reruns(&dir, &base, &["a", "b", "d"]);
    assert_ne!(std::fs::read(dir.join("work/d.txt")).unwrap(), first_d);
    // Changing a step's config reruns it alone (its output feeds nothing).
    let changed_config = cache_pipeline(2, "v1");
    assert_eq!(planned_reason(&dir, &changed_config, "d"), Some(Reason::ConfigChanged));
    check_reruns(&dir, &changed_config, &["d"]);
    // Changing a step's command reruns it, and its user because its output bytes changed.
    let changed_command = cache_pipeline(2, "v2");
    assert_eq!(planned_reason(&dir, &changed_command, "c"), Some(Reason::ActionChanged));
    check_reruns(&dir, &changed_command, &["c", "d"]);
    // Deleting an output reruns its producer; it writes the same bytes, so d stays cached.
    std::fs::remove_file(dir.join("work/b.txt")).unwrap();
    assert_eq!(planned_reason(&dir, &changed_command, "b"), Some(Reason::OutputMissing("out".into())));
    check_reruns(&dir, &changed_command, &["b"]);
    // Editing an output by hand reruns its producer too.
    std::fs::write(dir.join("work/c.txt"), "hand edit").unwrap();
    assert_eq!(planned_reason(&dir, &changed_command, "c"), Some(Reason::OutputModified("out".into())));
    check_reruns(&dir, &changed_command, &["c"]);
    // --force runs everything; a dry run runs nothing and writes nothing.
    let report = run_ok(&changed_command, &dir, &RunConfig { force: true, ..config(&dir) });
    assert_eq!(report.with_status(StepStatus::Ran).len(), 4);
    clear_side_log(&dir);
    std::fs::write(dir.join("raw2.txt"), "two, edited").unwrap();
    let p = Pipeline::from_toml(&changed_command, &dir).unwrap();
    let dry = run(&p, &RunConfig { dry_run: true, ..config(&dir) }).unwrap();
    assert!(dry.steps.is_empty());
    assert_eq!(dry.plan.to_run(), ["c", "d"]);
    assert!(side_log(&dir).is_empty());
    let rendered = dry.plan.render(&p);
    assert!(rendered.contains("input raw changed") && rendered.contains("upstream step c runs"), "{rendered}");
}

#[test]
fn function_steps_run_in_process_and_are_cached_by_name_and_config() {
    let dir = scratch("functions");
    std::fs::write(dir.join("in.txt"), "hello").unwrap();
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = calls.clone();
    let upper: StepFn = Arc::new(move |ctx: &StepContext| {
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let text = std::fs::read_to_string(&ctx.inputs["text"]).map_err(|e| e.to_string())?;
        let suffix = ctx.config["suffix"].as_str().unwrap_or("");
        std::fs::write(&ctx.outputs["upper"], format!("{}{suffix}", text.to_uppercase())).map_err(|e| e.to_string())
    });
    let toml = |suffix: &str| {
        format!(
            "[[step]]\nname = \"upper\"\nfunction = \"upper\"\ninputs = {{ text = \"in.txt\" }}\noutputs = {{ upper = \"out/upper.txt\" }}\nconfig = {{ suffix = {} }}\n",
            q(suffix)
        )
    };
    let cfg = RunConfig { functions: [("upper".to_owned(), upper)].into(), ..config(&dir) };
    run_ok(&toml("!"), &dir, &cfg);
    assert_eq!(std::fs::read_to_string(dir.join("out/upper.txt")).unwrap(), "HELLO!");
    run_ok(&toml("!"), &dir, &cfg);
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    run_ok(&toml("?"), &dir, &cfg);
    assert_eq!(std::fs::read_to_string(dir.join("out/upper.txt")).unwrap(), "HELLO?");
    // An unregistered function is refused before anything runs.
    let p = Pipeline::from_toml(&toml("?"), &dir).unwrap();
    let err = run(&p, &config(&dir)).unwrap_err();
    assert!(matches!(&err, Error::PipelineConfig { reason, .. } if reason.contains("function `upper`")), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Retries, timeouts, failures

#[test]
fn a_step_failing_twice_succeeds_on_its_third_attempt() {
    let dir = scratch("retry");
    let toml = py_step("flaky", &[], &[("out", "flaky.txt")], &["--fail-until", "3"], "retries = 3\nbackoff_ms = 10");
    let report = run_ok(&toml, &dir, &config(&dir));
    let s = report.step("flaky").unwrap();
    assert_eq!((s.status, s.attempts), (StepStatus::Ran, 3));
    assert_eq!(side_log(&dir), ["flaky"]); // attempts 1 and 2 failed before writing anything
    let state = State::load(&dir.join("state")).unwrap();
    assert_eq!(state.steps["flaky"].attempts, 3);
    // Too few retries: the typed error names the step, its attempts and its stderr's tail.
    let dir = scratch("retry-out");
    let toml = py_step("flaky", &[], &[("out", "flaky.txt")], &["--fail-until", "5"], "retries = 1\nbackoff_ms = 10");
    let p = Pipeline::from_toml(&toml, &dir).unwrap();
    let err = run(&p, &config(&dir)).unwrap().into_result().unwrap_err();
    match &err {
        Error::PipelineStepFailed { step, attempts, reason, stderr_tail } => {
            assert_eq!((step.as_str(), *attempts, reason.as_str()), ("flaky", 2, "exit code 1"));
            assert!(stderr_tail.contains("failing attempt 2 on purpose"), "{stderr_tail}");
        }
        other => panic!("{other:?}"),
    }
    assert!(!dir.join("flaky.txt").exists());
}

fn alive(pid: i32) -> bool {
    // A zombie counts as dead.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'))
        .unwrap_or(false)
}

#[test]
fn a_step_past_its_timeout_is_killed_with_its_process_group() {
    let dir = scratch("timeout");
    let pidfile = dir.join("sleeper.pid");
    let toml = py_step(
        "sleepy",
        &[],
        &[("out", "sleepy.txt")],
        &["--sleep", "30", "--sleeper-pid", &pidfile.display().to_string()],
        "timeout_s = 1.0",
    );
    let p = Pipeline::from_toml(&toml, &dir).unwrap();
    let t0 = Instant::now();
    let report = run(&p, &config(&dir)).unwrap();
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    let s = report.step("sleepy").unwrap();
    assert_eq!(s.status, StepStatus::Failed);
    assert!(
        matches!(&s.error, Some(Error::PipelineStepTimeout { step, timeout_s, attempts: 1 }) if step == "sleepy" && *timeout_s == 1.0),
        "{:?}",
        s.error
    );
    assert!(!dir.join("sleepy.txt").exists());
    // The grandchild was in the step's process group: killed too.
    let sleeper: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    while alive(sleeper) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!alive(sleeper), "grandchild {sleeper} survived the timeout");
}

#[test]
fn a_failure_stops_its_descendants_but_independent_branches_finish() {
    let dir = scratch("failure");
    let toml = format!(
        "{}{}{}{}",
        py_step("bad", &[], &[("out", "bad.txt")], &["--fail-until", "9"], ""),
        py_step("child", &[("b", "bad.txt")], &[("out", "child.txt")], &[], ""),
        py_step("grandchild", &[("c", "child.txt")], &[("out", "grandchild.txt")], &[], ""),
        py_step("other", &[], &[("out", "other.txt")], &[], ""),
    );
    let p = Pipeline::from_toml(&toml, &dir).unwrap();
    let report = run(&p, &config(&dir)).unwrap();
    assert_eq!(report.with_status(StepStatus::Failed), ["bad"]);
    assert_eq!(report.with_status(StepStatus::NotRun), ["child", "grandchild"]);
    assert_eq!(report.with_status(StepStatus::Ran), ["other"]);
    assert!(
        matches!(&report.step("grandchild").unwrap().error, Some(Error::PipelineUpstreamFailed { failed, .. }) if failed == "child")
    );
    assert_eq!(side_log(&dir), ["other"]);
    assert!(!report.ok());
    assert!(matches!(report.into_result(), Err(Error::PipelineStepFailed { step, .. }) if step == "bad"));
}

// ---------------------------------------------------------------------------------------------
// Privacy tiers

fn sovereign_config(dir: &Path) -> RunConfig {
    RunConfig { tracer: Some(env!("CARGO_BIN_EXE_sovereign").into()), ..config(dir) }
}

fn connect_step(name: &str, host: &str, port: u16, out: &str) -> String {
    format!(
        "[[step]]\nname = {}\ncommand = [{}, {}, {}, \"{port}\", \"{{out:o}}\"]\noutputs = {{ o = {} }}\n",
        q(name),
        q(&python().display().to_string()),
        q(&fixture("connect.py")),
        q(host),
        q(out)
    )
}

#[test]
fn a_sovereign_step_reaching_a_non_loopback_address_fails_naming_it_and_commits_nothing() {
    let dir = scratch("sovereign");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let toml = format!(
        "[pipeline]\ntier = \"sovereign\"\n{}{}",
        connect_step("outside", "192.0.2.1", 80, "outside.txt"),
        connect_step("local", "127.0.0.1", port, "local.txt")
    );
    let p = Pipeline::from_toml(&toml, &dir).unwrap();
    assert!(p.steps.iter().all(|s| s.tier == Tier::Sovereign));
    let report = run(&p, &sovereign_config(&dir)).unwrap();
    let outside = report.step("outside").unwrap();
    assert_eq!((outside.status, outside.attempts), (StepStatus::Failed, 1));
    match &outside.error {
        Some(e @ Error::PipelineNetworkDenied { step, call, addr }) => {
            assert_eq!((step.as_str(), call.as_str(), addr.as_str()), ("outside", "connect", "192.0.2.1:80"), "{e}");
            assert!(e.to_string().contains("192.0.2.1:80"));
        }
        other => panic!("{other:?}"),
    }
    assert!(!dir.join("outside.txt").exists());
    let state = State::load(&dir.join("state")).unwrap();
    assert!(!state.steps.contains_key("outside"));
    // Loopback in the same tier is allowed.
    assert_eq!(report.step("local").unwrap().status, StepStatus::Ran);
    assert_eq!(std::fs::read_to_string(dir.join("local.txt")).unwrap(), "connected to 127.0.0.1\n");
    drop(listener);

    // The same step in the standard tier is not traced: the connection is attempted (and fails
    // for TEST-NET being unreachable, not for a policy).
    let toml = connect_step("outside", "192.0.2.1", 80, "outside.txt");
    let p = Pipeline::from_toml(&toml, &dir).unwrap();
    let report = run(&p, &config(&dir)).unwrap();
    assert!(matches!(&report.step("outside").unwrap().error, Some(Error::PipelineStepFailed { .. })));
}

#[test]
fn a_sovereign_tier_that_cannot_be_enforced_refuses_to_start() {
    let dir = scratch("sovereign-refused");
    let toml = format!("[pipeline]\ntier = \"sovereign\"\n{}", connect_step("local", "127.0.0.1", 9, "x.txt"));
    let p = Pipeline::from_toml(&toml, &dir).unwrap();
    // No tracer: this test binary is not `sovereign`.
    let err = run(&p, &config(&dir)).unwrap_err();
    assert!(
        matches!(&err, Error::PipelineTier { step, reason } if step == "local" && reason.contains("tracer")),
        "{err}"
    );
    // A sovereign step's logs may not go to a non-loopback MLflow.
    let cfg = RunConfig {
        tracking: Some(kernels::tracking::TrackingConfig::new("http://192.0.2.1:5000")),
        ..sovereign_config(&dir)
    };
    let err = run(&p, &cfg).unwrap_err();
    assert!(matches!(&err, Error::PipelineTier { reason, .. } if reason.contains("192.0.2.1")), "{err}");
    assert!(!dir.join("state/state.json").exists());
    for (url, loopback) in [
        ("http://127.0.0.1:5000", true),
        ("http://localhost:1", true),
        ("http://[::1]:80/x", true),
        ("http://10.0.0.1", false),
    ] {
        assert_eq!(kernels::pipeline::is_loopback_url(url), loopback, "{url}");
    }
}

// ---------------------------------------------------------------------------------------------
// Resume after SIGKILL (through the CLI)

/// Six steps: a → b, a → c, (b, c) → d, e alone, (d, e) → f.
fn resume_pipeline() -> String {
    let s = ["--sleep", "0.12"];
    format!(
        "[pipeline]\nname = \"resume\"\n{}{}{}{}{}{}",
        py_step("a", &[("raw", "raw.txt")], &[("out", "work/a.txt")], &s, ""),
        py_step("b", &[("a", "work/a.txt")], &[("out", "work/b.txt"), ("extra", "work/b2.txt")], &s, ""),
        py_step("c", &[("a", "work/a.txt")], &[("out", "work/c.txt")], &s, ""),
        py_step("d", &[("b", "work/b.txt"), ("c", "work/c.txt")], &[("out", "work/d.txt")], &s, ""),
        py_step("e", &[("raw", "raw.txt")], &[("out", "work/e.txt")], &s, ""),
        py_step("f", &[("d", "work/d.txt"), ("e", "work/e.txt")], &[("out", "out/f.txt")], &s, ""),
    )
}

const RESUME_OUTPUTS: [&str; 7] =
    ["work/a.txt", "work/b.txt", "work/b2.txt", "work/c.txt", "work/d.txt", "work/e.txt", "out/f.txt"];

fn setup_resume(dir: &Path) -> PathBuf {
    std::fs::write(dir.join("raw.txt"), "raw data\n").unwrap();
    let file = dir.join("pipeline.toml");
    std::fs::write(&file, resume_pipeline()).unwrap();
    file
}

fn cli_run(file: &Path, dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sovereign"));
    c.args(["pipeline", "run"]).arg(file).arg("--state").arg(dir.join("state")).args(["--threads", "2"]);
    c.stdout(Stdio::null()).stderr(Stdio::piped());
    c
}

fn completed(dir: &Path) -> BTreeSet<String> {
    State::load(&dir.join("state")).unwrap().steps.keys().cloned().collect()
}

#[test]
fn a_run_killed_at_random_points_resumes_to_identical_outputs_without_rerunning_completed_steps() {
    // Reference: one uninterrupted run.
    let reference = scratch("resume-ref");
    let file = setup_resume(&reference);
    let t0 = Instant::now();
    let out = cli_run(&file, &reference).output().unwrap();
    let full = t0.elapsed();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut want = side_log(&reference);
    want.sort();
    assert_eq!(want, ["a", "b", "c", "d", "e", "f"]);

    let mut rng = Rng(0x5eed_0018);
    let mut kill_points = Vec::new();
    // Trials until six kills have landed inside a run (at most 10 trials): each trial kills a run
    // and then its resumed run, at seeded random delays (a resumed run is shorter: the second delay
    // is drawn from a shorter range).
    let mut trial = 0;
    while kill_points.len() < 6 && trial < 10 {
        trial += 1;
        let dir = scratch(&format!("resume-{trial}"));
        let file = setup_resume(&dir);
        // (log length, steps completed) at each kill.
        let mut marks: Vec<(usize, BTreeSet<String>)> = Vec::new();
        for range in [0.8, 0.5] {
            let delay = full.mul_f64(0.05 + range * rng.unit());
            let mut child = cli_run(&file, &dir).spawn().unwrap();
            std::thread::sleep(delay);
            let interrupted = child.try_wait().unwrap().is_none();
            child.kill().unwrap_or(()); // SIGKILL
            child.wait().unwrap();
            std::thread::sleep(Duration::from_millis(100)); // let killed steps' last writes land
            let done = completed(&dir);
            if interrupted {
                kill_points.push((delay.as_millis(), done.len()));
            }
            marks.push((side_log(&dir).len(), done));
        }
        let out = cli_run(&file, &dir).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        for rel in RESUME_OUTPUTS {
            assert_eq!(
                std::fs::read(dir.join(rel)).unwrap(),
                std::fs::read(reference.join(rel)).unwrap(),
                "trial {trial}: {rel} differs from the uninterrupted run's"
            );
        }
        let log = side_log(&dir);
        for (len, done) in &marks {
            for later in &log[*len..] {
                assert!(!done.contains(later), "trial {trial}: {later} completed before a kill and ran again: {log:?}");
            }
        }
        assert_eq!(completed(&dir).len(), 6);
        assert!(!dir.join("state/staging").read_dir().is_ok_and(|mut d| d.next().is_some()));
    }
    eprintln!(
        "resume: {} kill points interrupted a run (delay ms, steps completed): {kill_points:?}",
        kill_points.len()
    );
    assert!(kill_points.len() >= 6, "too few kills landed inside a run in {trial} trials: {kill_points:?}");
}

#[test]
fn cli_plans_runs_reports_status_and_fails_with_one_line_naming_the_step() {
    let dir = scratch("cli");
    let file = setup_resume(&dir);
    let sovereign = env!("CARGO_BIN_EXE_sovereign");
    let plan = Command::new(sovereign)
        .args(["pipeline", "plan"])
        .arg(&file)
        .arg("--state")
        .arg(dir.join("state"))
        .output()
        .unwrap();
    assert!(plan.status.success());
    let text = String::from_utf8_lossy(&plan.stdout);
    for s in ["a", "b", "c", "d", "e", "f"] {
        assert!(text.contains(&format!(" {s} ")), "{text}");
    }
    assert!(text.contains("never completed"), "{text}");
    assert!(side_log(&dir).is_empty());
    let out = cli_run(&file, &dir).output().unwrap();
    assert!(out.status.success());
    let status = Command::new(sovereign)
        .args(["pipeline", "status"])
        .arg(&file)
        .arg("--state")
        .arg(dir.join("state"))
        .arg("--json")
        .output()
        .unwrap();
    assert!(status.status.success());
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let steps = v["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 6);
    assert!(steps.iter().all(|s| s["decision"] == "cached" && s["attempts"] == 1), "{v}");

    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        py_step("broken", &[], &[("out", "x.txt")], &["--fail-until", "9"], "retries = 1\nbackoff_ms = 1"),
    )
    .unwrap();
    let out = cli_run(&bad, &dir).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let last = err.lines().last().unwrap_or("");
    assert!(
        last.contains("step broken failed after 2 attempt(s)") && last.contains("failing attempt 2 on purpose"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// MLflow

#[test]
fn runs_and_steps_are_logged_to_a_real_mlflow_server_and_read_back() {
    use kernels::tracking::{LocalServer, LocalServerConfig, RunStatus, SearchRuns, TrackingClient, TrackingConfig};
    let dir = scratch("mlflow");
    let server = LocalServer::start(&LocalServerConfig::new(dir.join("mlflow"))).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.join("raw.txt"), "raw").unwrap();
    let toml = format!(
        "[pipeline]\nname = \"logged\"\n{}{}{}{}",
        py_step("prep", &[("raw", "raw.txt")], &[("out", "prep.txt")], &[], ""),
        py_step(
            "train",
            &[("p", "prep.txt")],
            &[("out", "model.txt")],
            &["--fail-until", "2"],
            "retries = 1\nbackoff_ms = 1"
        ),
        py_step("bad", &[], &[("out", "bad.txt")], &["--fail-until", "9"], "retries = 1\nbackoff_ms = 1"),
        py_step("after_bad", &[("b", "bad.txt")], &[("out", "after.txt")], &[], ""),
    );
    let experiment = format!("pipeline-test-{}", std::process::id());
    let cfg =
        RunConfig { tracking: Some(TrackingConfig::new(server.url())), experiment: experiment.clone(), ..config(&dir) };
    let p = Pipeline::from_toml(&toml, &dir).unwrap();
    let report = run(&p, &cfg).unwrap();
    assert!(report.tracking_errors.is_empty(), "{:?}", report.tracking_errors);
    let parent_id = report.mlflow_run_id.clone().unwrap();
    let second = run(&p, &cfg).unwrap(); // prep and train cached now

    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = TrackingClient::new(TrackingConfig::new(server.url())).unwrap();
    rt.block_on(async {
        let parent = client.get_run(&parent_id).await.unwrap();
        assert_eq!(parent.info.status, RunStatus::Failed);
        assert_eq!(parent.data.param("pipeline"), Some("logged"));
        assert_eq!(parent.data.metric("steps_ran"), Some(2.0));
        assert_eq!(parent.data.metric("steps_failed"), Some(2.0));
        let exp = client.get_experiment_by_name(&experiment).await.unwrap();
        let children = client
            .search_runs_all(
                &SearchRuns::new([exp.experiment_id.clone()])
                    .filter(format!("tags.mlflow.parentRunId = '{parent_id}'")),
            )
            .await
            .unwrap();
        let by_step: BTreeMap<String, _> =
            children.into_iter().map(|r| (r.data.tag("sovereign.pipeline.step").unwrap_or("").to_owned(), r)).collect();
        assert_eq!(by_step.keys().map(String::as_str).collect::<Vec<_>>(), ["after_bad", "bad", "prep", "train"]);
        let train = &by_step["train"];
        assert_eq!(train.info.status, RunStatus::Finished);
        assert_eq!(train.data.metric("attempts"), Some(2.0));
        assert!(train.data.metric("duration_s").unwrap() > 0.0);
        assert_eq!(train.data.param("cache_key"), report.step("train").unwrap().key.as_deref());
        assert_eq!(train.data.param("tier"), Some("standard"));
        assert!(train.data.param("command").unwrap().contains("step.py"));
        let stdout = client.read_artifact(&train.info, "logs/train.stdout").await.unwrap();
        assert_eq!(String::from_utf8_lossy(&stdout), "train: wrote 1 output(s)\n");
        let bad = &by_step["bad"];
        assert_eq!((bad.info.status, bad.data.metric("attempts")), (RunStatus::Failed, Some(2.0)));
        let stderr = client.read_artifact(&bad.info, "logs/bad.stderr").await.unwrap();
        assert!(String::from_utf8_lossy(&stderr).contains("failing attempt 2"));
        let after = &by_step["after_bad"];
        assert_eq!(
            (after.info.status, after.data.tag("sovereign.pipeline.skipped")),
            (RunStatus::Killed, Some("upstream_failed"))
        );
        // The second run: prep and train logged as cached.
        let second_id = second.mlflow_run_id.clone().unwrap();
        let children = client
            .search_runs_all(
                &SearchRuns::new([exp.experiment_id.clone()])
                    .filter(format!("tags.mlflow.parentRunId = '{second_id}'")),
            )
            .await
            .unwrap();
        let cached: BTreeSet<&str> = children
            .iter()
            .filter(|r| {
                r.data.tag("sovereign.pipeline.skipped") == Some("cached") && r.info.status == RunStatus::Finished
            })
            .filter_map(|r| r.data.tag("sovereign.pipeline.step"))
            .collect();
        assert_eq!(cached, ["prep", "train"].into_iter().collect());
    });
}
