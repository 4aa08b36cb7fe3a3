//! `cargo xtask bench structured`: structured output on SmolLM2-135M with and without `kernels::constrain`.
//!
//! Runs `kernels/examples/structured_suite.rs` (release, 2 rayon threads) over the schema × prompt pairs of
//! `kernels/tests/fixtures/constrain/suite.json` (quick: the first 6; full: all), then validates every output
//! with Python `jsonschema` in one batch call (`kernels/tests/fixtures/constrain/peer.py`). Writes
//! `structured.json` (the record: every output and its verdict, step times, the CPU and its caches) and
//! `structured.md` (the table): the schema-valid rate constrained (must be 100%) and free (the same prompt, the
//! schema written into it; strict = the whole answer is the JSON, lenient = the first `{…}`/`[…]` in it), and
//! the per-token cost of constrained decoding as a ratio to free decoding measured in the same run.
//! Full runs go to `book/src/course4/c4w2/records/` unless `--out` says otherwise; quick runs to
//! `target/bench/structured/`.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};
use autograder::Workspace;
use serde_json::{Value, json};

use crate::tools::cargo;

const MODEL: (&str, &str) = ("smollm2-135m-instruct", "SmolLM2-135M-Instruct.Q4_1.gguf");
const THREADS: &str = "2";
const QUICK_PAIRS: usize = 6;
/// The masking overhead the issue aims for (constrained ÷ free time per token).
const TARGET_RATIO: f64 = 1.10;

pub fn run(ws: &Workspace, quick: bool, out: Option<PathBuf>) -> Result<()> {
    let out = out.unwrap_or_else(|| {
        if quick {
            ws.target_dir().join("bench").join("structured")
        } else {
            ws.root.join("book/src/course4/c4w2/records")
        }
    });
    std::fs::create_dir_all(&out)?;
    let model = datasets::models::file_path(MODEL.0, MODEL.1).map_err(|e| anyhow::anyhow!("{e}"))?;
    let suite = ws.root.join("kernels/tests/fixtures/constrain/suite.json");
    let max_pairs = if quick { QUICK_PAIRS } else { usize::MAX };
    let Some(python) = ws.peer_python() else {
        bail!("the peers' venv is missing (the outputs are validated with Python jsonschema): run `cargo xtask peers`")
    };

    eprintln!("building and running kernels/examples/structured_suite (release)…");
    let mut cmd = cargo();
    cmd.args(["run", "--release", "--quiet", "-p", "kernels", "--no-default-features", "--features", "constrain"]);
    cmd.args(["--example", "structured_suite", "--"]).arg(&model).arg(&suite).arg(max_pairs.to_string());
    cmd.env("RAYON_NUM_THREADS", THREADS);
    let output = cmd.stderr(std::process::Stdio::inherit()).output().context("running cargo")?;
    if !output.status.success() {
        bail!("structured_suite failed ({})", output.status);
    }
    let run: Value = serde_json::from_slice(&output.stdout).context("reading structured_suite's JSON")?;

    // One batch for the validator: per pair, the constrained answer, the free answer and its extracted JSON.
    let suite_doc: Value = serde_json::from_slice(&std::fs::read(&suite)?)?;
    let schemas: std::collections::HashMap<&str, &Value> = suite_doc["pairs"]
        .as_array()
        .context("suite pairs")?
        .iter()
        .filter_map(|p| Some((p["id"].as_str()?, &p["schema"])))
        .collect();
    let pairs = run["pairs"].as_array().context("pairs")?;
    let mut cases = Vec::new();
    for p in pairs {
        let schema = schemas.get(p["id"].as_str().unwrap_or("")).context("a pair not in the suite")?;
        cases.push(json!({"schema": schema, "text": p["constrained"]["text"]}));
        cases.push(json!({"schema": schema, "text": p["free"]["text"]}));
        cases.push(json!({"schema": schema, "text": p["free"]["extracted"].as_str().unwrap_or("")}));
    }
    let verdicts = validate(&python, &ws.root.join("kernels/tests/fixtures/constrain/peer.py"), &out, cases)?;
    let ok = |i: usize| verdicts[i]["ok"] == json!(true);
    let mut per_pair = Vec::new();
    let (mut c_valid, mut strict_valid, mut lenient_valid, mut complete) = (0, 0, 0, 0);
    for (k, p) in pairs.iter().enumerate() {
        let (c, s, l) = (ok(3 * k), ok(3 * k + 1), ok(3 * k + 2));
        c_valid += usize::from(c);
        strict_valid += usize::from(s);
        lenient_valid += usize::from(l);
        complete += usize::from(p["constrained"]["complete"] == json!(true));
        per_pair.push(json!({
            "id": p["id"], "kind": p["kind"], "constrained_valid": c, "free_valid_strict": s, "free_valid_lenient": l,
            "constrained": p["constrained"], "free": p["free"],
            "constrained_error": verdicts[3 * k]["error"], "free_error": verdicts[3 * k + 2]["error"],
        }));
    }
    let n = pairs.len();
    let (c, f) = (&run["constrained"], &run["free"]);
    let ms = |v: &Value, key: &str| v[key].as_f64().unwrap_or(f64::NAN);
    // The headline ratio compares the same positions (the steps both runs of a pair took); per-token means
    // over all tokens mix in the free answers' longer, costlier tails.
    let same = &run["same_positions"];
    let ratio = ms(same, "constrained_ms") / ms(same, "free_ms");
    let record = json!({
        "model": MODEL.1, "threads": THREADS, "quick": quick, "pairs": n,
        "validator": "Python jsonschema 4.26.0 (validator of the schema's draft, 2020-12 by default, formats checked), one batch call",
        "constrained_valid": c_valid, "constrained_complete": complete,
        "free_valid_strict": strict_valid, "free_valid_lenient": lenient_valid,
        "ratio_constrained_to_free_per_token": ratio, "target_ratio": TARGET_RATIO,
        "ratio_steps_compared": same["steps"],
        "ratio_all_tokens": ms(c, "total_ms") / ms(f, "total_ms"),
        "mask_share_of_forward": ms(c, "mask_ms") / ms(c, "forward_ms"),
        "apply_share_of_forward": ms(c, "apply_ms") / ms(c, "forward_ms"),
        "vocabulary_build_ms": run["vocabulary_build_ms"], "bpe_load_ms": run["bpe_load_ms"],
        "grammar_compile_ms": run["grammar_compile_ms"],
        "constrained_per_token": c, "free_per_token": f,
        "machine": crate::bench::machine(), "results": per_pair,
    });
    std::fs::write(out.join("structured.json"), serde_json::to_string_pretty(&record)?)?;
    let table = table(&record);
    std::fs::write(out.join("structured.md"), &table)?;
    println!("{table}");
    println!("written to {}", out.display());
    if c_valid != n {
        bail!("{} of {n} constrained outputs are not schema-valid", n - c_valid);
    }
    Ok(())
}

/// Runs `peer.py validate` once on all `cases`; its `results`.
fn validate(
    python: &std::path::Path,
    script: &std::path::Path,
    dir: &std::path::Path,
    cases: Vec<Value>,
) -> Result<Vec<Value>> {
    let (req, resp) = (dir.join(".validate-request.json"), dir.join(".validate-response.json"));
    std::fs::write(&req, json!({"op": "validate", "cases": cases}).to_string())?;
    let output = Command::new(python).arg(script).arg(&req).arg(&resp).output().context("running peer.py")?;
    let _ = std::fs::remove_file(&req);
    if !output.status.success() {
        bail!("peer.py validate failed (run `cargo xtask peers`?):\n{}", String::from_utf8_lossy(&output.stderr));
    }
    let answer: Value = serde_json::from_slice(&std::fs::read(&resp)?)?;
    let _ = std::fs::remove_file(&resp);
    Ok(answer["results"].as_array().context("results")?.clone())
}

/// The Markdown table of a record.
fn table(r: &Value) -> String {
    let n = r["pairs"].as_u64().unwrap_or(0);
    let pct = |key: &str| {
        let k = r[key].as_u64().unwrap_or(0);
        format!("{k}/{n} ({:.0}%)", 100.0 * k as f64 / n.max(1) as f64)
    };
    let m = &r["machine"];
    let caches: Vec<String> =
        (1..=3).filter_map(|l| m[format!("l{l}_bytes")].as_u64().map(|b| format!("L{l} {} KiB", b / 1024))).collect();
    let (c, f) = (&r["constrained_per_token"], &r["free_per_token"]);
    let ms = |v: &Value, key: &str| v[key].as_f64().unwrap_or(f64::NAN);
    let ratio = r["ratio_constrained_to_free_per_token"].as_f64().unwrap_or(f64::NAN);
    let mut t = format!(
        "SmolLM2-135M-Instruct Q4_1, greedy, {} threads, {n} schema × prompt pairs{}; {} ({} cores; {}).\n\n",
        r["threads"].as_str().unwrap_or("?"),
        if r["quick"] == json!(true) { " (quick)" } else { "" },
        m["cpu"].as_str().unwrap_or("unknown CPU"),
        m["cores"],
        caches.join(", "),
    );
    t += "| measure | value | target |\n|---|---|---|\n";
    t += &format!("| schema-valid, constrained | {} | 100% |\n", pct("constrained_valid"));
    t += &format!("| schema-valid, free, whole answer | {} | – |\n", pct("free_valid_strict"));
    t += &format!("| schema-valid, free, first JSON value in the answer | {} | – |\n", pct("free_valid_lenient"));
    t += &format!(
        "| time per token, constrained ÷ free, same positions ({} steps) | {ratio:.3}× | ≤ {:.2}× |\n",
        r["ratio_steps_compared"],
        r["target_ratio"].as_f64().unwrap_or(TARGET_RATIO)
    );
    t += &format!(
        "| mask computation, share of a forward pass | {:.2}% | – |\n",
        100.0 * r["mask_share_of_forward"].as_f64().unwrap_or(f64::NAN)
    );
    t += &format!(
        "| logit write, share of a forward pass | {:.2}% | – |\n",
        100.0 * r["apply_share_of_forward"].as_f64().unwrap_or(f64::NAN)
    );
    t += &format!(
        "\nPer token (ms): constrained {:.2} = forward {:.2} + mask {:.3} + logit write {:.3} + arg-max and commit \
         {:.3}, over {} tokens; free {:.2} = forward {:.2} + arg-max {:.3}, over {} tokens. Once per model: \
         vocabulary (token trie + lexer slices) {:.0} ms after loading the tokenizer ({:.0} ms); per request: \
         compiling a schema, median {:.1} ms, max {:.1} ms. (Means over all tokens mix positions: their ratio is \
         {:.3}×.)\n",
        ms(c, "total_ms"),
        ms(c, "forward_ms"),
        ms(c, "mask_ms"),
        ms(c, "apply_ms"),
        ms(c, "select_ms"),
        c["tokens"],
        ms(f, "total_ms"),
        ms(f, "forward_ms"),
        ms(f, "select_ms"),
        f["tokens"],
        r["vocabulary_build_ms"].as_f64().unwrap_or(f64::NAN),
        r["bpe_load_ms"].as_f64().unwrap_or(f64::NAN),
        r["grammar_compile_ms"]["median"].as_f64().unwrap_or(f64::NAN),
        r["grammar_compile_ms"]["max"].as_f64().unwrap_or(f64::NAN),
        r["ratio_all_tokens"].as_f64().unwrap_or(f64::NAN),
    );
    t
}
