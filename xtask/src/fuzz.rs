//! `cargo xtask fuzz`: runs the libFuzzer targets of `kernels/fuzz` (GGUF, safetensors, tokenizer.json,
//! registry manifests, LightGBM models and the machine code compiled from them).
//!
//! Each target is run with `cargo +nightly fuzz run` (cargo-fuzz, AddressSanitizer) for a fixed time on a
//! corpus kept in the cache folder, seeded from small real files in the repository. The nightly toolchain and
//! cargo-fuzz are installed when missing; the fuzz build has its own target folder in the cache (it is
//! nightly with sanitizer flags, so it shares nothing with the workspace's builds). A crash, a leak, an
//! allocation over the limit or a timeout fails the command with the saved input and the commands that
//! reproduce and minimise it.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use autograder::Workspace;
use autograder::progress::ProgressBar;

use crate::tools;

/// The fuzz targets (`kernels/fuzz/fuzz_targets/<name>.rs`).
pub const TARGETS: &[&str] = &["gguf", "safetensors", "tokenizer_json", "registry_manifest", "lightgbm_model"];

/// cargo-fuzz, as `cargo install` names it, and the version installed.
const CARGO_FUZZ: tools::CargoTool =
    tools::CargoTool { krate: "cargo-fuzz", version: "0.13.2", bin: "cargo-fuzz", locked: true };

/// Where each target's seeds come from (files, or folders whose files are taken), relative to the root.
const SEEDS: &[(&str, &[&str])] = &[
    ("gguf", &["kernels/fuzz/seeds/gguf", "autograder/weeks/c4w1/fixtures/tiny.gguf"]),
    ("safetensors", &["kernels/fuzz/seeds/safetensors"]),
    ("tokenizer_json", &["kernels/fuzz/seeds/tokenizer_json"]),
    ("registry_manifest", &["kernels/fuzz/seeds/registry_manifest"]),
    (
        "lightgbm_model",
        &[
            "kernels/tests/fixtures/ml/lightgbm_breast_cancer.txt",
            "kernels/tests/fixtures/ml/lightgbm_breast_cancer_nan.txt",
            "kernels/tests/fixtures/ml/lightgbm_diabetes.txt",
        ],
    ),
];

/// libFuzzer's limits: the process's RSS, any single allocation (inputs are a few KB: anything near this
/// is a length or count trusted from the input), and the time for one input.
const LIBFUZZER_LIMITS: &[&str] = &["-rss_limit_mb=2048", "-malloc_limit_mb=256", "-timeout=10"];

/// What libFuzzer reported at the end of a run.
#[derive(Default)]
struct Stats {
    execs: Option<u64>,
    execs_per_sec: Option<u64>,
    peak_rss_mb: Option<u64>,
    /// The last status line's `cov:`, `ft:` and `corp:` fields.
    cov: Option<String>,
    ft: Option<String>,
    corpus: Option<String>,
}

/// Runs `target` (every target when `None`) for `seconds` each.
pub fn run(ws: &Workspace, target: Option<&str>, seconds: u64) -> Result<()> {
    let targets: Vec<&str> = match target {
        Some(t) if TARGETS.contains(&t) => vec![t],
        Some(t) => bail!("unknown fuzz target {t:?} (targets: {})", TARGETS.join(", ")),
        None => TARGETS.to_vec(),
    };
    ensure_nightly()?;
    tools::ensure_cargo_tools(ws, &[CARGO_FUZZ])?;

    let mut results = Vec::new();
    let mut failures = Vec::new();
    for target in targets {
        println!("fuzzing {target} for {seconds} s");
        let start = Instant::now();
        match run_target(ws, target, seconds) {
            Ok(stats) => results.push((target, start.elapsed().as_secs(), stats)),
            Err(e) => {
                println!("  {target}: FAILED (the saved inputs and how to reproduce them are listed at the end)");
                failures.push(format!("{e:#}"));
            }
        }
    }
    print_summary(&results);
    if !failures.is_empty() {
        bail!("{} fuzz target(s) failed:\n{}", failures.len(), failures.join("\n"));
    }
    Ok(())
}

/// The cache folders of the fuzzers: the build, each target's corpus, the inputs that failed.
fn fuzz_target_dir(ws: &Workspace) -> PathBuf {
    ws.cache_dir().join("fuzz-target")
}

fn corpus_dir(ws: &Workspace, target: &str) -> PathBuf {
    ws.cache_dir().join("fuzz-corpus").join(target)
}

fn crash_dir(ws: &Workspace, target: &str) -> PathBuf {
    ws.cache_dir().join("fuzz-crashes").join(target)
}

fn run_target(ws: &Workspace, target: &str, seconds: u64) -> Result<Stats> {
    let corpus = corpus_dir(ws, target);
    let crashes = crash_dir(ws, target);
    std::fs::create_dir_all(&crashes).with_context(|| format!("creating {}", crashes.display()))?;
    let n_seeds = seed_corpus(ws, target, &corpus)?;
    println!("  corpus {} ({n_seeds} seed file(s) copied in)", corpus.display());

    let fuzz_dir = ws.root.join("kernels").join("fuzz");
    let mut cmd = Command::new("rustup");
    cmd.args(["run", "nightly", "cargo", "fuzz", "run", "--fuzz-dir"])
        .arg(&fuzz_dir)
        .arg("--target-dir")
        .arg(fuzz_target_dir(ws))
        .arg(target)
        .arg(&corpus)
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .args(LIBFUZZER_LIMITS)
        // After cargo-fuzz's own `-artifact_prefix` (inside the repository): the last one counts.
        .arg(format!("-artifact_prefix={}/", crashes.display()))
        .arg("-print_final_stats=1")
        .current_dir(&ws.root)
        .env("PATH", tools::path_with_tools(ws))
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO_TARGET_DIR")
        .stderr(Stdio::piped());

    // On a terminal: a bar of the fuzzing seconds (after the build), the kept lines printed above it.
    let bar = autograder::progress::bar(seconds, format!("fuzz {target}"), " s");
    bar.set_message("building the target (nightly, AddressSanitizer)");
    let fuzzing_since: Mutex<Option<Instant>> = Mutex::new(None);
    let done = AtomicBool::new(false);
    let started = SystemTime::now();
    let mut child = cmd.spawn().with_context(|| format!("starting {cmd:?}"))?;
    let stderr = child.stderr.take().context("piped stderr")?;
    let stats = std::thread::scope(|scope| {
        if !bar.is_hidden() {
            scope.spawn(|| {
                while !done.load(Ordering::Relaxed) {
                    if let Some(since) = *fuzzing_since.lock().expect("not poisoned") {
                        bar.set_position(since.elapsed().as_secs().min(seconds));
                    }
                    std::thread::sleep(Duration::from_millis(250));
                }
            });
        }
        let stats = forward_and_parse(stderr, &bar, &fuzzing_since);
        done.store(true, Ordering::Relaxed);
        stats
    });
    bar.finish_and_clear();
    let status = child.wait().with_context(|| format!("waiting for {cmd:?}"))?;
    if status.success() {
        return Ok(stats);
    }

    let artifacts = new_artifacts(&crashes, started)?;
    if artifacts.is_empty() {
        bail!("`cargo +nightly fuzz run {target}` failed ({status}) without saving an input: see the output above");
    }
    let tools_bin = tools::tools_root(ws).join("bin");
    let mut report = format!("fuzz target {target} failed ({status}); input(s) saved:");
    for artifact in &artifacts {
        let args = format!(
            "--fuzz-dir {} --target-dir {} {target} {}",
            fuzz_dir.display(),
            fuzz_target_dir(ws).display(),
            artifact.display()
        );
        report.push_str(&format!(
            "\n  {}\n    reproduce: PATH={}:$PATH cargo +nightly fuzz run {args}\n    minimise:  PATH={}:$PATH cargo +nightly fuzz tmin {args}",
            artifact.display(),
            tools_bin.display(),
            tools_bin.display(),
        ));
    }
    bail!(report)
}

/// Copies the target's seed files into its corpus (as `seed-<name>`); returns how many.
fn seed_corpus(ws: &Workspace, target: &str, corpus: &Path) -> Result<usize> {
    std::fs::create_dir_all(corpus).with_context(|| format!("creating {}", corpus.display()))?;
    let sources = SEEDS.iter().find(|(t, _)| *t == target).map_or(&[][..], |(_, s)| *s);
    let mut files = Vec::new();
    for source in sources {
        let path = ws.root.join(source);
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).with_context(|| format!("reading {}", path.display()))? {
                let file = entry?.path();
                // The folders also hold the script that makes the seeds.
                if file.is_file() && file.extension().is_none_or(|e| e != "py") {
                    files.push(file);
                }
            }
        } else {
            files.push(path);
        }
    }
    for file in &files {
        let name = file.file_name().context("seed file name")?.to_string_lossy();
        std::fs::copy(file, corpus.join(format!("seed-{name}")))
            .with_context(|| format!("copying seed {}", file.display()))?;
    }
    Ok(files.len())
}

/// Forwards libFuzzer's (and cargo's) stderr above `bar`, leaving out the per-input lines (`NEW`, `REDUCE`,
/// `NEW_FUNC`) and the recommended dictionary, and keeps the final statistics; notes in `fuzzing_since` when
/// libFuzzer's first line arrives (the build is over).
fn forward_and_parse(stderr: impl std::io::Read, bar: &ProgressBar, fuzzing_since: &Mutex<Option<Instant>>) -> Stats {
    let mut stats = Stats::default();
    let mut in_dictionary = false;
    for line in BufReader::new(stderr).lines().map_while(Result::ok) {
        if line.starts_with("INFO: ") || line.starts_with('#') {
            let mut since = fuzzing_since.lock().expect("not poisoned");
            if since.is_none() {
                *since = Some(Instant::now());
                bar.set_message("");
            }
        }
        if let Some(rest) = line.strip_prefix("stat::") {
            let (key, value) = rest.split_once(':').unwrap_or((rest, ""));
            let value = value.trim().parse().ok();
            match key {
                "number_of_executed_units" => stats.execs = value,
                "average_exec_per_sec" => stats.execs_per_sec = value,
                "peak_rss_mb" => stats.peak_rss_mb = value,
                _ => {}
            }
        }
        let fields = status_fields(&line);
        if let Some(cov) = fields.get("cov") {
            stats.cov = Some(cov.to_string());
            stats.ft = fields.get("ft").map(|s| s.to_string());
            stats.corpus = fields.get("corp").map(|s| s.to_string());
        }
        if line.starts_with("###### Recommended dictionary") {
            in_dictionary = true;
        }
        let skip = in_dictionary || ["\tNEW ", "\tREDUCE ", "\tNEW_FUNC["].iter().any(|p| line.contains(p));
        if line.starts_with("###### End of recommended dictionary") {
            in_dictionary = false;
        }
        if skip {
            continue;
        }
        bar.suspend(|| eprintln!("{line}"));
    }
    stats
}

/// The `key: value` fields of a libFuzzer status line (`#4096 pulse  cov: 812 ft: 2301 corp: 97/9210b …`).
fn status_fields(line: &str) -> BTreeMap<&str, &str> {
    if !line.starts_with('#') {
        return BTreeMap::new();
    }
    let words: Vec<&str> = line.split_whitespace().collect();
    words.windows(2).filter_map(|w| w[0].strip_suffix(':').map(|key| (key, w[1]))).collect()
}

/// Files libFuzzer wrote into `dir` since `since` (`crash-…`, `leak-…`, `oom-…`, `timeout-…`).
fn new_artifacts(dir: &Path, since: SystemTime) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let fresh = entry.metadata()?.modified().is_ok_and(|m| m >= since);
        if fresh && ["crash-", "leak-", "oom-", "timeout-"].iter().any(|p| name.starts_with(p)) {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

fn print_summary(results: &[(&str, u64, Stats)]) {
    if results.is_empty() {
        return;
    }
    let show = |v: Option<u64>| v.map_or("?".to_string(), |v| v.to_string());
    println!(
        "\n{:<16} {:>8} {:>12} {:>8} {:>6} {:>7} {:>14} {:>8}",
        "target", "time (s)", "execs", "exec/s", "cov", "ft", "corpus", "rss (MB)"
    );
    for (target, secs, s) in results {
        println!(
            "{:<16} {:>8} {:>12} {:>8} {:>6} {:>7} {:>14} {:>8}",
            target,
            secs,
            show(s.execs),
            show(s.execs_per_sec),
            s.cov.as_deref().unwrap_or("?"),
            s.ft.as_deref().unwrap_or("?"),
            s.corpus.as_deref().unwrap_or("?"),
            show(s.peak_rss_mb),
        );
    }
}

/// Installs the nightly toolchain (minimal profile) when rustup has none: cargo-fuzz needs `-Z` flags.
fn ensure_nightly() -> Result<()> {
    let out = Command::new("rustup")
        .args(["toolchain", "list"])
        .output()
        .context("running rustup (the fuzzers need a nightly toolchain, which rustup installs)")?;
    if String::from_utf8_lossy(&out.stdout).lines().any(|l| l.starts_with("nightly")) {
        return Ok(());
    }
    tools::run_shown(
        Command::new("rustup").args(["toolchain", "install", "nightly", "--profile", "minimal"]),
        "installing the nightly toolchain (minimal profile) for cargo-fuzz (once per machine)",
    )
}
