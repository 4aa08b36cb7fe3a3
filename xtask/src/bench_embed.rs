//! `cargo xtask bench embed`: `kernels::nn::bert` against onnxruntime on all-MiniLM-L6-v2 sentence embeddings.
//!
//! Writes a sentence file (sentences cut from the Rust book of the toolchain's docs, sampled
//! evenly through its chapters; a seeded synthetic set from `datasets::text` when the docs are
//! not installed), then for each batch size runs `kernels/examples/embed_throughput.rs` (release,
//! 2 rayon threads) and `autograder/peers/minilm_onnx.py` (onnxruntime on an ONNX graph the
//! script builds from the same `model.safetensors`, 2 intra-op threads, graph optimisation ALL)
//! on it, and writes `record.json`, `table.md` and `plot.svg`: sentences/s (text to normalised
//! embedding, tokenisation included) as ratios kernels ÷ onnxruntime measured in the same run,
//! and how far the two sides' embeddings of the first batch differ. Both sides first check the
//! model's published embedding of "hello world". `cargo xtask peers` installs onnxruntime and onnx.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use autograder::Workspace;
use serde_json::{Value, json};

use crate::plot::{Axis, Chart, Scale, Series, line_chart};
use crate::tools::cargo;

const MODEL: &str = "all-minilm-l6-v2";
const THREADS: &str = "2";
/// Seed of the synthetic sentences used when the toolchain has no Rust book.
const SEED: u64 = 7;

pub fn run(ws: &Workspace, quick: bool, out: Option<PathBuf>) -> Result<()> {
    let out = out.unwrap_or_else(|| ws.target_dir().join("bench").join("embed"));
    std::fs::create_dir_all(&out)?;
    let weights = datasets::models::file_path(MODEL, "model.safetensors").map_err(|e| anyhow::anyhow!("{e}"))?;
    let model_dir = weights.parent().context("model folder")?.to_string_lossy().into_owned();
    let (n, batches, rounds): (usize, &[usize], &str) = if quick { (64, &[8], "1") } else { (512, &[1, 8, 32], "5") };
    let (sentences, source) = sentences(n);
    let sentence_file = out.join("sentences.txt");
    std::fs::write(&sentence_file, sentences.join("\n") + "\n")?;
    let sentence_file = sentence_file.to_string_lossy().into_owned();

    let mut notes = Vec::new();
    let python = match ws.peer_python() {
        None => {
            notes.push("onnxruntime: skipped (no peers' venv: run `cargo xtask peers`)".to_string());
            None
        }
        Some(python) => {
            let imports = "import onnxruntime, onnx, safetensors, tokenizers";
            if Command::new(&python).args(["-c", imports]).output().is_ok_and(|o| o.status.success()) {
                Some(python)
            } else {
                notes.push("onnxruntime: skipped (the venv lacks onnxruntime or onnx: run `cargo xtask peers`)".into());
                None
            }
        }
    };
    let script = ws.root.join("autograder/peers/minilm_onnx.py");
    let mut rows = Vec::new();
    for &batch in batches {
        let args = [model_dir.clone(), sentence_file.clone(), batch.to_string(), rounds.to_string()];
        eprintln!("kernels::nn::bert, batch {batch} ({n} sentences, {THREADS} threads, {rounds} rounds)…");
        let mut cmd = cargo();
        cmd.args(["run", "--release", "--quiet", "-p", "kernels", "--no-default-features", "--features", "nn"]);
        cmd.args(["--example", "embed_throughput", "--"]).args(&args).env("RAYON_NUM_THREADS", THREADS);
        let output = cmd.stderr(std::process::Stdio::inherit()).output().context("running cargo")?;
        if !output.status.success() {
            bail!("embed_throughput failed ({})", output.status);
        }
        let mut ours: Value = serde_json::from_slice(&output.stdout).context("reading embed_throughput's JSON")?;

        let mut peer = Value::Null;
        if let Some(python) = &python {
            eprintln!("onnxruntime, batch {batch}…");
            let output = Command::new(python)
                .arg(&script)
                .args(&args)
                .arg(THREADS)
                // HF tokenizers' rayon pool: the same thread budget as the Rust side's.
                .env("RAYON_RS_NUM_CPUS", THREADS)
                .stderr(std::process::Stdio::inherit())
                .output()
                .with_context(|| format!("running {}", script.display()))?;
            if output.status.success() {
                peer = serde_json::from_slice(&output.stdout).context("reading minilm_onnx.py's JSON")?;
            } else {
                notes.push(format!("onnxruntime, batch {batch}: failed ({})", output.status));
            }
        }
        let diff = max_abs_diff(&ours["probe"], &peer["probe"]);
        for side in [&mut ours, &mut peer] {
            if let Some(side) = side.as_object_mut() {
                side.remove("probe");
            }
        }
        rows.push(json!({ "batch": batch, "kernels": ours, "onnxruntime": peer, "first_batch_max_abs_diff": diff }));
    }
    let record = json!({
        "model": MODEL, "sentences": n, "source": source, "rounds": rounds, "threads": THREADS,
        "rows": rows, "notes": notes, "machine": crate::bench::machine(), "quick": quick,
    });
    std::fs::write(out.join("record.json"), serde_json::to_string_pretty(&record)?)?;
    std::fs::write(out.join("plot.svg"), plot(&record))?;
    let table = table(&record);
    std::fs::write(out.join("table.md"), &table)?;
    println!("{table}");
    println!("written to {}", out.display());
    Ok(())
}

/// `n` sentences and where they come from: the Rust book when the toolchain's docs have it.
pub(crate) fn sentences(n: usize) -> (Vec<String>, String) {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let query = |arg: &str| {
        Command::new(&rustc)
            .arg(arg)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    if let Some(sysroot) = query("--print=sysroot") {
        let book = Path::new(&sysroot).join("share/doc/rust/html/book");
        let all = book_sentences(&book);
        if all.len() >= n {
            let picked = (0..n).map(|i| all[i * all.len() / n].clone()).collect();
            let version = query("--version").unwrap_or_default();
            return (
                picked,
                format!("the Rust book of {version}, every ≈{}th of {} sentences", all.len() / n, all.len()),
            );
        }
    }
    let picked = datasets::text::documents(n, 24, SEED);
    (picked, format!("datasets::text::documents(n, 24, seed {SEED}) (no Rust book in the toolchain's docs)"))
}

/// Sentences of 4 to 64 words from the paragraphs of the book's chapters, in chapter order.
fn book_sentences(book: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(book) else { return Vec::new() };
    let mut chapters: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().and_then(|f| f.to_str()).is_some_and(|f| f.starts_with("ch") && f.ends_with(".html")))
        .collect();
    chapters.sort();
    let mut sentences = Vec::new();
    for chapter in chapters {
        let Ok(html) = std::fs::read_to_string(&chapter) else { continue };
        let main = html.split_once("<main>").and_then(|(_, rest)| rest.split_once("</main>")).map_or("", |(m, _)| m);
        for paragraph in main.split("<p>").skip(1).filter_map(|p| p.split_once("</p>").map(|(p, _)| p)) {
            let text = strip_html(paragraph);
            for sentence in split_sentences(&text) {
                let words = sentence.split_whitespace().count();
                if (4..=64).contains(&words) {
                    sentences.push(sentence);
                }
            }
        }
    }
    sentences
}

/// Text of an HTML fragment: tags and comments dropped, the common entities decoded, whitespace collapsed.
fn strip_html(fragment: &str) -> String {
    let mut text = String::with_capacity(fragment.len());
    let mut in_tag = false;
    for c in fragment.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            _ if !in_tag => text.push(c),
            _ => {}
        }
    }
    let text = text
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&amp;", "&");
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Splits after `.`, `?` or `!` followed by a space.
fn split_sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut start = 0;
    let bytes = text.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if matches!(b, b'.' | b'?' | b'!') && bytes.get(i + 1) == Some(&b' ') {
            out.push(text[start..=i].trim().to_string());
            start = i + 1;
        }
    }
    let rest = text[start..].trim();
    if !rest.is_empty() {
        out.push(rest.to_string());
    }
    out
}

/// The largest absolute difference between two sides' `probe` embeddings (`null` unless both have them).
fn max_abs_diff(a: &Value, b: &Value) -> Value {
    let flat = |v: &Value| -> Option<Vec<f64>> {
        let rows = v.as_array()?;
        rows.iter()
            .map(|r| r.as_array())
            .collect::<Option<Vec<_>>>()?
            .into_iter()
            .flatten()
            .map(Value::as_f64)
            .collect()
    };
    match (flat(a), flat(b)) {
        (Some(a), Some(b)) if a.len() == b.len() && !a.is_empty() => {
            json!(a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max))
        }
        _ => Value::Null,
    }
}

/// sentences/s against batch size, one line per implementation.
fn plot(record: &Value) -> String {
    let rows = record["rows"].as_array().map(Vec::as_slice).unwrap_or_default();
    let series: Vec<Series> = [("kernels", "kernels::nn::bert"), ("onnxruntime", "onnxruntime")]
        .into_iter()
        .map(|(key, name)| Series {
            name: name.to_string(),
            points: rows
                .iter()
                .filter_map(|r| Some((r["batch"].as_f64()?, r[key]["sentences_per_s"].as_f64()?)))
                .collect(),
        })
        .collect();
    // The onnxruntime version the peer reported, else the pinned one.
    let version = rows.iter().find_map(|r| r["onnxruntime"]["onnxruntime"].as_str());
    let peer = json!({ "onnxruntime": version.or(crate::peers::pinned_version("onnxruntime")) });
    let caption = crate::bench::caption(&peer, &record["machine"]);
    let title = format!("all-MiniLM-L6-v2 sentence embeddings ({} threads)", record["threads"].as_str().unwrap_or("?"));
    let chart = Chart {
        title: &title,
        x: Axis { label: "batch size", unit: "sentences per call", scale: Scale::Auto },
        y: Axis { label: "throughput", unit: "sentences/s, best of rounds", scale: Scale::LogIfPositive },
        caption: &caption,
    };
    line_chart(&chart, &series)
}

/// The Markdown table of a record.
fn table(record: &Value) -> String {
    let cell = |v: Option<f64>| v.map_or("–".to_string(), |x| format!("{x:.1}"));
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "–".to_string(),
    };
    let rows = record["rows"].as_array().map(Vec::as_slice).unwrap_or_default();
    let tokens = rows.first().and_then(|r| r["kernels"]["tokens"].as_f64());
    let sentences = record["sentences"].as_f64().unwrap_or(f64::NAN);
    let mut t = format!(
        "all-MiniLM-L6-v2 sentence embeddings (text to normalised vector, tokenisation included), {} sentences \
         from {}{}, {} threads, best of {} rounds (median in brackets).\n\n\
         | batch | kernels (sentences/s) | onnxruntime (sentences/s) | kernels / onnxruntime | kernels tokens/s | \
         onnxruntime tokens/s | max abs diff |\n|---|---|---|---|---|---|---|\n",
        record["sentences"],
        record["source"].as_str().unwrap_or("?"),
        tokens.map_or(String::new(), |t| format!(", {:.1} tokens each on average", t / sentences)),
        record["threads"].as_str().unwrap_or("?"),
        record["rounds"].as_str().unwrap_or("?"),
    );
    for row in rows {
        let (k, p) = (&row["kernels"], &row["onnxruntime"]);
        let f = |v: &Value, key: &str| v[key].as_f64();
        t += &format!(
            "| {} | {} ({}) | {} ({}) | {} ({}) | {} | {} | {} |\n",
            row["batch"],
            cell(f(k, "sentences_per_s")),
            cell(f(k, "sentences_per_s_median")),
            cell(f(p, "sentences_per_s")),
            cell(f(p, "sentences_per_s_median")),
            ratio(f(k, "sentences_per_s"), f(p, "sentences_per_s")),
            ratio(f(k, "sentences_per_s_median"), f(p, "sentences_per_s_median")),
            cell(f(k, "tokens_per_s")),
            cell(f(p, "tokens_per_s")),
            row["first_batch_max_abs_diff"].as_f64().map_or("–".to_string(), |d| format!("{d:.1e}")),
        );
    }
    let padding: Vec<String> = rows
        .iter()
        .filter_map(|r| {
            let p = &r["onnxruntime"];
            Some(format!(
                "batch {}: {:.0} %",
                r["batch"],
                100.0 * (1.0 - p["tokens"].as_f64()? / p["padded_tokens"].as_f64()?)
            ))
        })
        .collect();
    if !padding.is_empty() {
        t += &format!(
            "\nkernels packs each batch (no work on padding); onnxruntime runs it padded to its longest sentence, \
             so this share of its positions is padding: {}. Tokens/s count real tokens only. \
             \"max abs diff\": the largest difference between the two sides' embeddings of the first batch.\n",
            padding.join(", ")
        );
    }
    if let Some(v) = rows.iter().find_map(|r| r["onnxruntime"]["onnxruntime"].as_str()) {
        t += &format!("\nonnxruntime {v}, CPU execution provider, graph optimisation level ALL, inter-op 1 thread.\n");
    }
    for note in record["notes"].as_array().into_iter().flatten() {
        t += &format!("\n- {}", note.as_str().unwrap_or(""));
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_paragraphs_become_plain_sentences() {
        let text = strip_html("A <em>type</em>\n  &amp; a <code>Vec&lt;T&gt;</code><!-- ignore -->. Next one? Yes");
        assert_eq!(text, "A type & a Vec<T>. Next one? Yes");
        assert_eq!(split_sentences(&text), ["A type & a Vec<T>.", "Next one?", "Yes"]);
    }

    #[test]
    fn probes_compare_element_wise() {
        assert_eq!(max_abs_diff(&json!([[1.0, 2.0], [3.0, 4.0]]), &json!([[1.5, 2.0], [3.0, 3.0]])), json!(1.0));
        assert_eq!(max_abs_diff(&json!([[1.0]]), &Value::Null), Value::Null);
    }
}
