//! `cargo xtask bench llm-agreement`: does `kernels::llm` predict the same next tokens as llama.cpp?
//!
//! Free-running greedy equality breaks at the first near-tie and differs between llama.cpp builds
//! on different CPUs, so this compares next-token distributions *teacher-forced*: 20 prompts (10
//! chat, rendered with the model's template, and 10 plain text; passages of the Rust book, or
//! `datasets::text` without it) are tokenised once by `kernels`, and both engines score every
//! position of the same ids. `kernels/examples/llm_teacher_forced.rs` writes kernels' logits,
//! `autograder/peers/llama_cpp_agreement.py` runs llama.cpp (llama-cpp-python, `logits_all`) on
//! the same ids and compares: top-1 agreement, KL(llama.cpp ‖ kernels), and, as a report, how
//! many greedy tokens agree before the first divergence. Both engines are also compared with a
//! float64 NumPy forward pass on the dequantised weights (`kernels/tests/llm/reference.py`, the
//! llm tests' reference): which of the two is closer to exact arithmetic. Writes `record.json`
//! and `table.md`, and keeps the prompts as `prompts.json`.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};
use autograder::Workspace;
use serde_json::{Value, json};

use crate::tools::cargo;

const MODEL: (&str, &str) = ("smollm2-135m-instruct", "SmolLM2-135M-Instruct.Q4_1.gguf");
const THREADS: &str = "2";
/// Prompts of each kind.
const PER_KIND: usize = 10;
/// Greedy tokens compared after each prompt.
const GREEDY: usize = 32;
/// kernels as it is (`f32`); with K, V, the query and the softmax weights rounded to f16 as
/// llama.cpp's default f16 cache path computes them (`KvCache::with_f16_rounding`), the first
/// hypothesis about where the two engines' numerics differ; and with every matrix dequantised
/// at load and no activation quantised (`WeightPrecision::Dequantised`): how much of each
/// engine's distance from float64 the 8-bit activations account for.
const VARIANTS: [&str; 3] = ["f32", "f16-kv", "dequantised"];

/// Passages of `min..max` characters (about 64–256 tokens) from consecutive sentences.
fn passages(sentences: &[String], count: usize, min: usize, max: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for s in sentences {
        if current.len() + s.len() + 1 > max {
            current.clear();
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(s);
        if current.len() >= min {
            out.push(std::mem::take(&mut current));
        }
    }
    // Spread the picks over the whole source.
    let step = (out.len() / count.max(1)).max(1);
    out.into_iter().step_by(step).take(count).collect()
}

pub fn run(ws: &Workspace, quick: bool, out: Option<PathBuf>) -> Result<()> {
    let out = out.unwrap_or_else(|| ws.target_dir().join("bench").join("llm-agreement"));
    let work = out.join("inputs");
    std::fs::create_dir_all(&work)?;
    let model = datasets::models::file_path(MODEL.0, MODEL.1).map_err(|e| anyhow::anyhow!("{e}"))?;
    let per_kind = if quick { 2 } else { PER_KIND };
    let (sentences, source) = crate::bench_embed::sentences(4000);
    let texts = passages(&sentences, 2 * per_kind, 300, 900);
    if texts.len() < 2 * per_kind {
        bail!("only {} passages of 300–900 characters in {source}", texts.len());
    }
    let prompts: Vec<Value> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            if i % 2 == 0 {
                json!({"kind": "chat", "text": format!("Explain this passage in one sentence:\n\n{t}")})
            } else {
                json!({"kind": "text", "text": t})
            }
        })
        .collect();
    // Kept beside the record: the exact prompts a recorded run scored.
    let prompts_file = out.join("prompts.json");
    std::fs::write(&prompts_file, serde_json::to_string_pretty(&prompts)?)?;

    let python = ws.peer_python();
    let has_llama = python
        .as_ref()
        .is_some_and(|p| Command::new(p).args(["-c", "import llama_cpp"]).output().is_ok_and(|o| o.status.success()));
    let mut notes = vec![format!("prompts: {source}")];
    match &python {
        None => notes.push("llama.cpp: skipped (no peers' venv: run `cargo xtask peers`)".into()),
        Some(_) if !has_llama => notes.push(format!(
            "llama.cpp: skipped (install it into the venv with pip: llama-cpp-python=={})",
            crate::bench_llm::LLAMA_CPP_PYTHON
        )),
        Some(_) => {}
    }
    let mut rows = Vec::new();
    for variant in VARIANTS {
        eprintln!("kernels/examples/llm_teacher_forced (release), variant {variant}…");
        let mut cmd = cargo();
        cmd.args(["run", "--release", "--quiet", "-p", "kernels", "--no-default-features", "--features", "llm"]);
        cmd.args(["--example", "llm_teacher_forced", "--"]).arg(&model).arg(&prompts_file).arg(&work);
        cmd.arg(GREEDY.to_string()).arg(variant).env("RAYON_NUM_THREADS", THREADS);
        let output = cmd.stderr(std::process::Stdio::inherit()).output().context("running cargo")?;
        if !output.status.success() {
            bail!("llm_teacher_forced failed ({})", output.status);
        }
        let ours: Vec<Value> = serde_json::from_slice(&output.stdout).context("reading llm_teacher_forced's JSON")?;
        let Some(python) = python.as_ref().filter(|_| has_llama) else { break };
        if variant == VARIANTS[0] {
            let spinner = autograder::progress::spinner("float64 NumPy reference on the same token ids");
            let script = ws.root.join("kernels/tests/llm/reference.py");
            let output = Command::new(python)
                .arg(&script)
                .arg(&model)
                .args(["--dir".as_ref(), work.as_os_str(), ours.len().to_string().as_ref()])
                .output()
                .with_context(|| format!("running {}", script.display()))?;
            spinner.finish_and_clear();
            if !output.status.success() {
                let why = String::from_utf8_lossy(&output.stderr);
                notes.push(format!("float64 reference: failed: {}", why.lines().last().unwrap_or("")));
            }
        }
        let spinner = autograder::progress::spinner("llama.cpp on the same token ids (llama-cpp-python)");
        let script = ws.root.join("autograder/peers/llama_cpp_agreement.py");
        let output = Command::new(python)
            .arg(&script)
            .arg(&model)
            .arg(&work)
            .args([ours.len().to_string(), THREADS.to_string()])
            // Speed is not measured here: sleeping OpenMP threads stay fast when other work
            // shares the cores (spinning ones slowed each eval by 100× under a parallel build).
            .env("OMP_WAIT_POLICY", "PASSIVE")
            .output()
            .with_context(|| format!("running {}", script.display()))?;
        spinner.finish_and_clear();
        match serde_json::from_slice::<Vec<Value>>(&output.stdout) {
            Ok(peer) if output.status.success() => {
                for (mut row, o) in peer.into_iter().zip(&ours) {
                    row["kind"] = o["kind"].clone();
                    row["kv"] = json!(variant);
                    rows.push(row);
                }
            }
            _ => {
                notes.push(format!(
                    "llama.cpp: failed: {}",
                    String::from_utf8_lossy(&output.stderr).lines().last().unwrap_or("")
                ));
                break;
            }
        }
    }
    std::fs::remove_dir_all(&work).ok();
    let record = json!({ "rows": rows, "notes": notes, "machine": crate::bench::machine(), "quick": quick,
                         "model": MODEL.1, "greedy": GREEDY,
                         "peer_versions": { "llama-cpp-python": crate::bench_llm::LLAMA_CPP_PYTHON } });
    let table = table(&record);
    std::fs::write(out.join("record.json"), serde_json::to_string_pretty(&record)?)?;
    std::fs::write(out.join("table.md"), &table)?;
    println!("{table}");
    println!("written to {}", out.display());
    Ok(())
}

/// Totals over prompts: positions, top-1 agreements, kernels' top-1 in llama.cpp's top 5, the
/// position-weighted mean KL, the largest KL, greedy tokens agreeing and compared.
fn totals<'a>(rows: impl Iterator<Item = &'a Value>) -> [f64; 7] {
    let num = |r: &Value, k: &str| r[k].as_f64().unwrap_or(0.0);
    let mut t = [0.0; 7];
    for r in rows {
        let n = num(r, "positions");
        t[0] += n;
        t[1] += num(r, "top1_agree");
        t[2] += num(r, "top1_in_top5");
        t[3] += num(r, "kl_mean") * n;
        t[4] = t[4].max(num(r, "kl_max"));
        t[5] += num(r, "greedy_agree");
        t[6] += num(r, "greedy_total");
    }
    t
}

fn table(record: &Value) -> String {
    let rows = record["rows"].as_array().cloned().unwrap_or_default();
    let num = |r: &Value, k: &str| r[k].as_f64().unwrap_or(0.0);
    let mut t = String::from(
        "| kernels variant | positions | top-1 agree | kernels' top-1 in llama.cpp's top 5 | mean KL(llama.cpp ‖ kernels), nats | max KL | greedy tokens agreeing before the first divergence |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for variant in VARIANTS {
        let [n, agree, top5, kl, kl_max, greedy, greedy_total] = totals(rows.iter().filter(|r| r["kv"] == variant));
        if n > 0.0 {
            t.push_str(&format!(
                "| {variant} | {n:.0} | {:.2} % | {:.2} % | {:.2e} | {kl_max:.2e} | {greedy:.0} of {greedy_total:.0} |\n",
                100.0 * agree / n,
                100.0 * top5 / n,
                kl / n,
            ));
        }
    }
    t.push_str(&format!(
        "\nPer prompt, kernels {}:\n\n| prompt | kind | positions | top-1 agree | in top 5 | mean KL | max KL (at position) | greedy agreeing |\n\
         |---|---|---|---|---|---|---|---|\n",
        VARIANTS[0]
    ));
    for r in rows.iter().filter(|r| r["kv"] == VARIANTS[0]) {
        let n = num(r, "positions").max(1.0);
        t.push_str(&format!(
            "| {} | {} | {n:.0} | {:.1} % | {:.1} % | {:.2e} | {:.2e} ({}) | {:.0} of {:.0} |\n",
            r["prompt"],
            r["kind"].as_str().unwrap_or(""),
            100.0 * num(r, "top1_agree") / n,
            100.0 * num(r, "top1_in_top5") / n,
            num(r, "kl_mean"),
            num(r, "kl_max"),
            r["kl_max_at"],
            num(r, "greedy_agree"),
            num(r, "greedy_total"),
        ));
    }
    t.push_str(&reference_table(&rows));
    for note in record["notes"].as_array().into_iter().flatten() {
        t.push_str(&format!("\nNote: {}\n", note.as_str().unwrap_or("")));
    }
    t
}

/// Each engine's distance from the float64 reference, over all prompts: top-1 agreement with it
/// and the position-weighted mean KL(reference ‖ engine). Empty when the rows lack the reference.
fn reference_table(rows: &[Value]) -> String {
    let num = |r: &Value, k: &str| r[k].as_f64();
    let side = |variant: &str, engine: &str| -> Option<(f64, f64, f64)> {
        let (mut n, mut top1, mut kl) = (0.0, 0.0, 0.0);
        for r in rows.iter().filter(|r| r["kv"] == variant) {
            let p = num(r, "positions")?;
            n += p;
            top1 += num(r, &format!("ref_top1_{engine}"))?;
            kl += num(r, &format!("ref_kl_{engine}"))? * p;
        }
        (n > 0.0).then_some((n, top1 / n, kl / n))
    };
    let mut lines = Vec::new();
    if let Some(row) = side(VARIANTS[0], "llama") {
        lines.push(("llama.cpp".to_string(), row));
    }
    for variant in VARIANTS {
        if let Some(row) = side(variant, "kernels") {
            lines.push((format!("kernels {variant}"), row));
        }
    }
    if lines.is_empty() {
        return String::new();
    }
    let mut t = String::from(
        "\nDistance from the float64 reference (NumPy, dequantised weights, activations not quantised):\n\n\
         | engine | positions | top-1 agrees with float64 | mean KL(float64 ‖ engine), nats |\n|---|---|---|---|\n",
    );
    for (engine, (n, top1, kl)) in lines {
        t.push_str(&format!("| {engine} | {n:.0} | {:.2} % | {kl:.2e} |\n", 100.0 * top1));
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passages_are_cut_from_consecutive_sentences_within_the_bounds() {
        let sentences: Vec<String> = (0..100).map(|i| format!("Sentence number {i} is here.")).collect();
        let got = passages(&sentences, 5, 60, 120);
        assert_eq!(got.len(), 5);
        assert!(got.iter().all(|p| (60..=120).contains(&p.len())), "{got:?}");
        assert!(got[0].starts_with("Sentence number 0 "), "{got:?}");
    }

    #[test]
    fn the_table_totals_weigh_prompts_by_positions() {
        let record = json!({"rows": [
            {"prompt": 0, "kind": "chat", "kv": "f32", "positions": 100, "top1_agree": 99, "top1_in_top5": 100, "kl_mean": 1e-3, "kl_max": 0.1, "kl_max_at": 4, "greedy_agree": 32, "greedy_total": 32},
            {"prompt": 1, "kind": "text", "kv": "f32", "positions": 300, "top1_agree": 297, "top1_in_top5": 300, "kl_mean": 3e-3, "kl_max": 0.2, "kl_max_at": 7, "greedy_agree": 5, "greedy_total": 32},
            {"prompt": 0, "kind": "chat", "kv": "f16-kv", "positions": 100, "top1_agree": 100, "top1_in_top5": 100, "kl_mean": 1e-4, "kl_max": 0.01, "kl_max_at": 4, "greedy_agree": 32, "greedy_total": 32},
        ], "notes": []});
        let t = table(&record);
        assert!(t.contains("| f32 | 400 | 99.00 % | 100.00 % | 2.50e-3 | 2.00e-1 | 37 of 64 |"), "{t}");
        assert!(t.contains("| f16-kv | 100 | 100.00 % | 100.00 % | 1.00e-4 | 1.00e-2 | 32 of 32 |"), "{t}");
        assert!(t.contains("| 1 | text | 300 | 99.0 % | 100.0 % | 3.00e-3 | 2.00e-1 (7) | 5 of 32 |"), "{t}");
        assert!(!t.contains("float64"), "no reference columns, no reference table: {t}");
    }

    #[test]
    fn the_reference_table_weighs_prompts_by_positions() {
        let row = |kv: &str, n: u32, k_top: u32, k_kl: f64, l_top: u32, l_kl: f64| {
            json!({"kv": kv, "positions": n, "ref_top1_kernels": k_top, "ref_kl_kernels": k_kl,
                   "ref_top1_llama": l_top, "ref_kl_llama": l_kl})
        };
        let rows = [row("f32", 100, 99, 1e-3, 98, 2e-3), row("f32", 300, 300, 3e-3, 291, 4e-3)];
        let t = reference_table(&rows);
        assert!(t.contains("| llama.cpp | 400 | 97.25 % | 3.50e-3 |"), "{t}");
        assert!(t.contains("| kernels f32 | 400 | 99.75 % | 2.50e-3 |"), "{t}");
        assert!(!t.contains("f16-kv"), "{t}");
    }
}
