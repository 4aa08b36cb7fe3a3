//! `cargo xtask bench llm`: `kernels::llm` against llama.cpp on the same GGUF, and against the bandwidth roofline.
//!
//! Runs `kernels/examples/llm_throughput.rs` (release, 2 rayon threads) and
//! `autograder/peers/llama_cpp_throughput.py` (llama-cpp-python, 2 threads, once
//! with `OMP_WAIT_POLICY=ACTIVE` and once `PASSIVE`, credited with the better) on
//! SmolLM2-135M-Instruct Q4_1 with the same prompt ids, in two regimes: the one
//! model, whose 96 MB of weights a large last-level cache holds, and copies of it
//! (separate files) decoding one token each in turn, so many that the others'
//! weights evict each copy's before its next token: that forces the DRAM regime
//! of a model larger than the cache on any machine. It writes `record.json`,
//! `table.md` and `plot.svg`: prefill and decode tokens/s as ratios to llama.cpp
//! per number of copies, and decode as a fraction of the roofline (read bandwidth
//! ÷ weight bytes per token). llama-cpp-python builds llama.cpp from source (about
//! 12 minutes), so `cargo xtask peers` does not install it: `pip install
//! llama-cpp-python==0.3.36` into the venv enables the peer.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};
use autograder::Workspace;
use serde_json::{Value, json};

use crate::plot::{Axis, Chart, Scale, Series, line_chart};
use crate::tools::cargo;

const MODEL: (&str, &str) = ("smollm2-135m-instruct", "SmolLM2-135M-Instruct.Q4_1.gguf");
const THREADS: &str = "2";
/// The llama-cpp-python release the bench was written against (`pip install llama-cpp-python==…`).
pub(crate) const LLAMA_CPP_PYTHON: &str = "0.3.36";
/// llama.cpp's OpenMP threads either spin between graph nodes (ACTIVE: fastest on a quiet
/// machine) or sleep (PASSIVE: robust when other work shares the cores). The peer runs both ways
/// and is credited with its better figure per measure.
const WAIT_POLICIES: [&str; 2] = ["ACTIVE", "PASSIVE"];

/// The per-measure best of the peer's runs, with the runs themselves; `None` if none ran.
fn best_of_runs(runs: &serde_json::Map<String, Value>) -> Option<(Value, Value)> {
    let first = runs.values().next()?;
    let mut best = first.clone();
    for key in ["prefill_tok_s", "decode_tok_s"] {
        let top = runs.values().filter_map(|r| r[key].as_f64()).fold(f64::NAN, f64::max);
        best[key] = json!(top);
    }
    // Tokens come from the first run: greedy decoding gives the same ones under either policy.
    Some((best, Value::Object(runs.clone())))
}

pub fn run(ws: &Workspace, quick: bool, out: Option<PathBuf>) -> Result<()> {
    let out = out.unwrap_or_else(|| ws.target_dir().join("bench").join("llm"));
    std::fs::create_dir_all(&out)?;
    let model = datasets::models::file_path(MODEL.0, MODEL.1).map_err(|e| anyhow::anyhow!("{e}"))?;
    let (prompt, decode, rounds) = if quick { ("32", "16", "1") } else { ("128", "64", "5") };
    let machine = crate::bench::machine();
    let model_bytes = std::fs::metadata(&model).with_context(|| format!("reading {}", model.display()))?.len();
    let sweep = copies_sweep(machine["l3_bytes"].as_u64(), model_bytes, quick);
    let copies_dir = ws.target_dir().join("bench").join("llm-copies");
    let copies = copy_model(&model, model_bytes, &copies_dir, sweep[sweep.len() - 1] - 1)?;

    eprintln!("building kernels/examples/llm_throughput (release)…");
    let mut build = cargo();
    build.args(["build", "--release", "--quiet", "-p", "kernels", "--no-default-features", "--features", "llm"]);
    if !build.args(["--example", "llm_throughput"]).status().context("running cargo")?.success() {
        bail!("building llm_throughput failed");
    }
    let ours_bin = ws.target_dir().join("release").join("examples").join("llm_throughput");

    let mut notes = Vec::new();
    let python = match ws.peer_python() {
        None => {
            notes.push("llama.cpp: skipped (no peers' venv: run `cargo xtask peers`)".to_string());
            None
        }
        Some(python) => {
            let has_llama =
                Command::new(&python).args(["-c", "import llama_cpp"]).output().is_ok_and(|o| o.status.success());
            if !has_llama {
                notes.push(format!(
                    "llama.cpp: skipped (install it into the venv with pip: llama-cpp-python=={LLAMA_CPP_PYTHON}, \
                     a ~12 min build)"
                ));
            }
            has_llama.then_some(python)
        }
    };
    let script = ws.root.join("autograder/peers/llama_cpp_throughput.py");
    let mut runs = Vec::new();
    for &k in &sweep {
        let mut args = vec![model.to_string_lossy().into_owned(), prompt.into(), decode.into(), rounds.into()];
        let files = &copies[..k - 1];
        let spinner = autograder::progress::spinner(format!("kernels: {k} cop{} of the model", plural(k)));
        let output = Command::new(&ours_bin)
            .args(&args)
            .args(files)
            .env("RAYON_NUM_THREADS", THREADS)
            .stderr(std::process::Stdio::inherit())
            .output()
            .with_context(|| format!("running {}", ours_bin.display()))?;
        spinner.finish_and_clear();
        if !output.status.success() {
            bail!("llm_throughput failed ({})", output.status);
        }
        let ours: Value = serde_json::from_slice(&output.stdout).context("reading llm_throughput's JSON")?;
        let mut peer_runs = serde_json::Map::new();
        if let Some(python) = &python {
            args.push(THREADS.into());
            for policy in WAIT_POLICIES {
                let spinner = autograder::progress::spinner(format!(
                    "llama.cpp: {k} cop{} of the model (llama-cpp-python, {THREADS} threads, OMP_WAIT_POLICY={policy})",
                    plural(k)
                ));
                let output = Command::new(python)
                    .arg(&script)
                    .args(&args)
                    .args(files)
                    .env("OMP_WAIT_POLICY", policy)
                    .output()
                    .with_context(|| format!("running {}", script.display()))?;
                spinner.finish_and_clear();
                if output.status.success() {
                    let run: Value = serde_json::from_slice(&output.stdout).context("reading the llama.cpp JSON")?;
                    peer_runs.insert(policy.to_string(), run);
                } else {
                    let err = String::from_utf8_lossy(&output.stderr);
                    notes.push(format!(
                        "llama.cpp ({policy}, {k} copies): failed: {}",
                        err.lines().last().unwrap_or("")
                    ));
                }
            }
        }
        let peer = best_of_runs(&peer_runs);
        runs.push(json!({
            "copies": k, "weights_bytes": k as u64 * model_bytes,
            "regime": regime(k as u64 * model_bytes, model_bytes, machine["l3_bytes"].as_u64()),
            "kernels": ours, "llama_cpp": peer.as_ref().map(|p| &p.0), "llama_cpp_runs": peer.as_ref().map(|p| &p.1),
        }));
    }
    for file in &copies {
        let _ = std::fs::remove_file(file);
    }
    let record = json!({
        "model": MODEL.1, "model_bytes": model_bytes, "prompt_tokens": prompt, "decode_tokens": decode,
        "rounds": rounds, "threads": THREADS, "runs": runs, "notes": notes, "machine": machine, "quick": quick,
    });
    std::fs::write(out.join("record.json"), serde_json::to_string_pretty(&record)?)?;
    write_table_and_plot(&record, &out)
}

/// `--render-only`: the table and the plot again from the `record.json` in `out`.
pub fn render(ws: &Workspace, out: Option<PathBuf>) -> Result<()> {
    let out = out.unwrap_or_else(|| ws.target_dir().join("bench").join("llm"));
    write_table_and_plot(&crate::bench::read_record(&out.join("record.json"))?, &out)
}

fn write_table_and_plot(record: &Value, out: &std::path::Path) -> Result<()> {
    std::fs::write(out.join("plot.svg"), plot(record))?;
    let table = table(record);
    std::fs::write(out.join("table.md"), &table)?;
    println!("{table}");
    println!("written to {}", out.display());
    Ok(())
}

fn plural(k: usize) -> &'static str {
    if k == 1 { "y" } else { "ies" }
}

/// How many copies of the model each measurement cycles through: 1 (the cache-resident regime
/// when the cache holds the model), 2 and 4, up to so many that the other copies' weights
/// exceed twice the last-level cache (the DRAM regime); at least 8 when the cache size is unknown.
fn copies_sweep(l3_bytes: Option<u64>, model_bytes: u64, quick: bool) -> Vec<usize> {
    let dram = match l3_bytes {
        Some(l3) => (2 * l3).div_ceil(model_bytes.max(1)) as usize + 1,
        None => 8,
    }
    .max(2);
    if quick {
        return vec![1, dram];
    }
    let mut sweep: Vec<usize> = [1, 2, 4].into_iter().filter(|&k| k < dram).collect();
    sweep.push(dram);
    sweep
}

/// Where a measurement's weights came from: all of them fit in the last-level cache, or the
/// other copies' weights alone exceed it, or all of them are twice its size (either way a
/// streaming pass evicts each token's weights before they are read again), or between.
fn regime(weights_bytes: u64, model_bytes: u64, l3_bytes: Option<u64>) -> &'static str {
    match l3_bytes {
        Some(l3) if weights_bytes <= l3 => "cache-resident",
        Some(l3) if weights_bytes - model_bytes >= l3 || weights_bytes >= 2 * l3 => "DRAM",
        Some(_) => "partly cached",
        None => "unknown",
    }
}

/// `n` copies of `model` (`bytes` long) in `dir` (real copies, not links: a link would share
/// page-cache pages); a whole copy left by an interrupted run is kept.
fn copy_model(model: &std::path::Path, bytes: u64, dir: &std::path::Path, n: usize) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    (1..=n)
        .map(|i| {
            let path = dir.join(format!("copy-{i}.gguf"));
            if std::fs::metadata(&path).map(|m| m.len()).ok() != Some(bytes) {
                std::fs::copy(model, &path).with_context(|| format!("copying the model to {}", path.display()))?;
            }
            Ok(path)
        })
        .collect()
}

/// The Markdown table of a record.
fn table(record: &Value) -> String {
    let f = |v: &Value, key: &str| v[key].as_f64();
    let cell = |v: Option<f64>| v.map_or("–".to_string(), |x| format!("{x:.1}"));
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "–".to_string(),
    };
    let mut t = format!(
        "SmolLM2-135M-Instruct Q4_1, {} threads, prompt {} tokens, decode {} tokens per copy, best of {} rounds; \
         n copies of the model (separate files) prefill in turn and then decode one token each in turn.\n\n\
         | copies (MB of weights) | regime | prefill kernels | prefill llama.cpp | kernels / llama.cpp | \
         decode kernels | decode llama.cpp | kernels / llama.cpp | decode ÷ roofline: kernels | llama.cpp |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
        record["threads"].as_str().unwrap_or("?"),
        record["prompt_tokens"].as_str().unwrap_or("?"),
        record["decode_tokens"].as_str().unwrap_or("?"),
        record["rounds"].as_str().unwrap_or("?"),
    );
    let mut roof_line = None;
    for run in record["runs"].as_array().into_iter().flatten() {
        let (k, p) = (&run["kernels"], &run["llama_cpp"]);
        let roof = match (f(k, "read_bytes_per_s"), f(k, "weight_bytes_per_token")) {
            (Some(bw), Some(bytes)) if bytes > 0.0 => {
                roof_line = Some((bw, bytes));
                Some(bw / bytes)
            }
            _ => None,
        };
        let frac = |v: &Value| match (f(v, "decode_tok_s"), roof) {
            (Some(d), Some(r)) => format!("{:.2}", d / r),
            _ => "–".to_string(),
        };
        t += &format!(
            "| {} ({:.0}) | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            run["copies"],
            run["weights_bytes"].as_f64().unwrap_or(0.0) / 1e6,
            run["regime"].as_str().unwrap_or("?"),
            cell(f(k, "prefill_tok_s")),
            cell(f(p, "prefill_tok_s")),
            ratio(f(k, "prefill_tok_s"), f(p, "prefill_tok_s")),
            cell(f(k, "decode_tok_s")),
            cell(f(p, "decode_tok_s")),
            ratio(f(k, "decode_tok_s"), f(p, "decode_tok_s")),
            frac(k),
            frac(p),
        );
    }
    t += "\nTargets: prefill and decode ≥ 1.0× llama.cpp in every regime; decode ≥ 0.7 of the roofline in the DRAM regime.\n";
    if let Some((bw, bytes)) = roof_line {
        t += &format!(
            "Decode roofline: {:.1} GB/s streaming read bandwidth (2 threads, 1 GiB) ÷ {:.1} MB of weights per token \
             = {:.0} tokens/s. In the cache-resident regime a fraction above 1 means the weights came from cache.\n",
            bw / 1e9,
            bytes / 1e6,
            bw / bytes
        );
    }
    let runs = record["runs"].as_array().map(Vec::as_slice).unwrap_or_default();
    if let Some(first) = runs.first()
        && let Some((a, b)) = first["kernels"]["tokens"].as_array().zip(first["llama_cpp"]["tokens"].as_array())
    {
        let prefix = a.iter().zip(b).take_while(|(x, y)| x == y).count();
        let same = a.iter().zip(b).filter(|(x, y)| x == y).count();
        t += &format!(
            "\nGreedy tokens after the (synthetic) prompt, each engine fed its own: the first {prefix} agree with \
                 llama.cpp's, and {same} of {} agree position by position (a near tie after a prompt of arbitrary \
                 ids sends them apart; `bench llm-agreement` compares the two engines properly).\n",
            a.len().min(b.len())
        );
    }
    let policies: Vec<String> = runs
        .iter()
        .filter_map(|run| {
            let runs = run["llama_cpp_runs"].as_object()?;
            let each: Vec<String> = runs
                .iter()
                .map(|(policy, r)| format!("{policy} {}/{}", cell(f(r, "prefill_tok_s")), cell(f(r, "decode_tok_s"))))
                .collect();
            Some(format!("{} cop{}: {}", run["copies"], plural(run["copies"].as_u64()? as usize), each.join(", ")))
        })
        .collect();
    if !policies.is_empty() {
        t += &format!(
            "\nllama.cpp is credited with its better figure of two runs, OpenMP threads spinning (ACTIVE) and \
             sleeping (PASSIVE) between graph nodes (prefill/decode tokens/s): {}.\n",
            policies.join("; ")
        );
    }
    for note in record["notes"].as_array().into_iter().flatten() {
        t += &format!("\n- {}", note.as_str().unwrap_or(""));
    }
    t
}

/// Decode tokens/s against the megabytes of weights the copies cycle through, one line per engine and
/// the roofline (streaming read bandwidth ÷ bytes per token) for scale.
fn plot(record: &Value) -> String {
    let runs = record["runs"].as_array().map(Vec::as_slice).unwrap_or_default();
    let points = |who: &str, key: &str| -> Vec<(f64, f64)> {
        runs.iter().filter_map(|r| Some((r["weights_bytes"].as_f64()? / 1e6, r[who][key].as_f64()?))).collect()
    };
    let roof: Vec<(f64, f64)> = runs
        .iter()
        .filter_map(|r| {
            let k = &r["kernels"];
            Some((
                r["weights_bytes"].as_f64()? / 1e6,
                k["read_bytes_per_s"].as_f64()? / k["weight_bytes_per_token"].as_f64()?,
            ))
        })
        .collect();
    let series = vec![
        Series { name: "kernels::llm decode".into(), points: points("kernels", "decode_tok_s") },
        Series { name: "llama.cpp decode".into(), points: points("llama_cpp", "decode_tok_s") },
        Series { name: "read-bandwidth roofline".into(), points: roof },
    ];
    let caption = crate::bench::caption(&json!({ "llama-cpp-python": LLAMA_CPP_PYTHON }), &record["machine"]);
    let l3 =
        record["machine"]["l3_bytes"].as_f64().map_or(String::new(), |b| format!(", L3 {:.0} MiB", b / 1_048_576.0));
    let title = format!("SmolLM2-135M Q4_1 decode, {} threads{l3}", record["threads"].as_str().unwrap_or("?"));
    let chart = Chart {
        title: &title,
        x: Axis { label: "weights cycled through", unit: "MB, copies × model", scale: Scale::Auto },
        y: Axis { label: "decode", unit: "tokens/s, best of rounds", scale: Scale::Linear },
        caption: &caption,
    };
    line_chart(&chart, &series)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sweep_ends_where_the_other_copies_exceed_twice_the_cache() {
        let mb = 1_000_000;
        assert_eq!(copies_sweep(Some(260 * 1024 * 1024), 96 * mb, false), vec![1, 2, 4, 7]);
        assert_eq!(copies_sweep(Some(32 * 1024 * 1024), 96 * mb, false), vec![1, 2]);
        assert_eq!(copies_sweep(None, 96 * mb, true), vec![1, 8]);
        assert_eq!(regime(96 * mb, 96 * mb, Some(260 * 1024 * 1024)), "cache-resident");
        assert_eq!(regime(96 * mb, 96 * mb, Some(32 * 1024 * 1024)), "DRAM");
        assert_eq!(regime(7 * 96 * mb, 96 * mb, Some(260 * 1024 * 1024)), "DRAM");
        assert_eq!(regime(4 * 96 * mb, 96 * mb, Some(260 * 1024 * 1024)), "DRAM");
        assert_eq!(regime(2 * 96 * mb, 96 * mb, Some(260 * 1024 * 1024)), "cache-resident");
        assert_eq!(regime(3 * 96 * mb, 96 * mb, Some(260 * 1024 * 1024)), "partly cached");
    }
}
