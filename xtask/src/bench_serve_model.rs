//! `cargo xtask bench serve-model`: the tabular model server (`kernels::serve_model`) under load on
//! loopback, with in-process `FlatForest` scoring as the reference.
//!
//! References: Gil Tene, "How NOT to Measure Latency" (2015) and wrk2 (open-loop load, latency from the
//! intended send time); Crankshaw et al., "Clipper", NSDI 2017 (adaptive batching).
//!
//! `kernels/examples/ml_throughput.rs gen` writes the fraud features (the c3w3 benchmark's data), then
//! `kernels/examples/serve_model_load.rs` (release) fits the 100-tree forest, serves it in-process and
//! measures: in-process single-row latency and batch rows/s; open-loop single-row HTTP at fixed rates
//! (p50/p99/p99.9, errors); the micro-batching curve (latency and mean batch size for several delays at
//! 4,000 requests/s); 10,000-row requests through the server as a ratio to in-process batch scoring;
//! and `wrk` (closed loop) when installed (Debian package `wrk`; `cargo xtask ci` installs it). Writes
//! `record.json` and `table.md` under `target/bench/serve-model`.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};
use autograder::Workspace;
use serde_json::Value;

pub fn run(ws: &Workspace, quick: bool, out: Option<PathBuf>) -> Result<()> {
    let out = out.unwrap_or_else(|| ws.target_dir().join("bench").join("serve-model"));
    std::fs::create_dir_all(&out)?;
    let (rows, seconds, rates): (usize, &str, &[&str]) =
        if quick { (12_000, "2", &["1000"]) } else { (50_000, "5", &["500", "1000", "2000"]) };
    crate::bench::build_kernels_example(ws, "ml_throughput", "ml")?;
    let examples = crate::bench::build_kernels_example(ws, "serve_model_load", "serve-model")?
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default();
    let data = out.join(format!("data-{rows}"));
    let status = Command::new(examples.join("ml_throughput")).arg("gen").arg(&data).arg(rows.to_string()).status()?;
    if !status.success() {
        bail!("ml_throughput gen failed ({status})");
    }
    eprintln!("load test ({seconds} s per point)…");
    let mut cmd = Command::new(examples.join("serve_model_load"));
    cmd.arg(&data).arg(seconds).args(rates).env("RAYON_NUM_THREADS", "2");
    match ws.peer_python() {
        Some(python)
            if Command::new(&python)
                .args(["-c", "import fastapi, uvicorn, lightgbm"])
                .output()
                .is_ok_and(|o| o.status.success()) =>
        {
            cmd.env("SERVE_MODEL_PEER_PYTHON", python)
                .env("SERVE_MODEL_PEER_SCRIPT", ws.root.join("autograder/peers/serve_model_peer.py"));
        }
        _ => eprintln!("peer skipped: the venv lacks fastapi, uvicorn or lightgbm (run `cargo xtask peers`)"),
    }
    let output = cmd.stderr(std::process::Stdio::inherit()).output().context("running serve_model_load")?;
    if !output.status.success() {
        bail!("serve_model_load failed ({})", output.status);
    }
    let record: Value = serde_json::from_slice(&output.stdout).context("serve_model_load printed no JSON")?;
    std::fs::write(out.join("record.json"), serde_json::to_string_pretty(&record)?)?;
    let table = table(&record);
    std::fs::write(out.join("table.md"), &table)?;
    println!("{table}");
    println!("written: {}", out.display());
    Ok(())
}

fn num(v: &Value) -> String {
    match v.as_f64() {
        Some(x) if x >= 100.0 => format!("{x:.0}"),
        Some(x) => format!("{x:.2}"),
        None => "–".into(),
    }
}

fn table(r: &Value) -> String {
    let mut t =
        String::from("## kernels::serve_model on loopback (2 tokio workers; load generator in the same process)\n\n");
    let ip = &r["in_process"];
    t += &format!(
        "In-process FlatForest (100 trees, depth 10): single row p50 {} µs, p99 {} µs; batch {} rows/s.\n\n",
        num(&ip["single_row_us"]["p50"]),
        num(&ip["single_row_us"]["p99"]),
        num(&ip["batch_rows_per_s"])
    );
    t += "### Open loop, single-row requests (latency from the intended send time)\n\n";
    t += "| rate /s | achieved /s | errors | p50 µs | p99 µs | p99.9 µs | max µs | p99 ÷ 1 ms target | mean send lag µs |\n";
    t += "|---|---|---|---|---|---|---|---|---|\n";
    for p in r["open_loop"].as_array().into_iter().flatten() {
        let l = &p["latency_us"];
        t += &format!(
            "| {} | {} | {} | {} | {} | {} | {} | {:.2} | {} |\n",
            num(&p["rate"]),
            num(&p["throughput_rps"]),
            p["errors"],
            num(&l["p50"]),
            num(&l["p99"]),
            num(&l["p999"]),
            num(&l["max"]),
            l["p99"].as_f64().unwrap_or(0.0) / 1000.0,
            num(&p["send_lag_us"])
        );
    }
    t += &format!("\n### Micro-batching at {} requests/s\n\n", num(&r["batching_curve"]["rate"]));
    t += "| batching | mean rows per batch | achieved /s | errors | p50 µs | p99 µs | p99.9 µs |\n|---|---|---|---|---|---|---|\n";
    for p in r["batching_curve"]["points"].as_array().into_iter().flatten() {
        let l = &p["latency_us"];
        t += &format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            p["config"].as_str().unwrap_or("?"),
            num(&p["mean_batch_rows"]),
            num(&p["throughput_rps"]),
            p["errors"],
            num(&l["p50"]),
            num(&l["p99"]),
            num(&l["p999"])
        );
    }
    let b = &r["batch_through_server"];
    t += &format!(
        "\n### Batch scoring through the server\n\n{}-row JSON requests ({} bytes): {} rows/s, **{:.2}× in-process** batch scoring ({} errors).\n",
        b["rows_per_request"],
        b["request_bytes"],
        num(&b["rows_per_s"]),
        b["ratio_to_in_process"].as_f64().unwrap_or(0.0),
        b["errors"]
    );
    let pc = &r["peer_comparison"];
    t += "\n### Peer: the same boosting settings, the same open-loop generator, this run\n\n";
    match pc["peer"].get("skipped") {
        Some(s) => t += &format!("peer skipped: {}\n", s.as_str().unwrap_or("")),
        None => {
            t += "| rate /s | ours p50 µs | ours p99 µs | peer p50 µs | peer p99 µs | peer errors | p99 ours ÷ peer |\n|---|---|---|---|---|---|---|\n";
            let ours = pc["ours"]["open_loop"].as_array().cloned().unwrap_or_default();
            let peer = pc["peer"]["open_loop"].as_array().cloned().unwrap_or_default();
            for (o, p) in ours.iter().zip(&peer) {
                t += &format!(
                    "| {} | {} | {} | {} | {} | {} | {:.3} |\n",
                    num(&o["rate"]),
                    num(&o["latency_us"]["p50"]),
                    num(&o["latency_us"]["p99"]),
                    num(&p["latency_us"]["p50"]),
                    num(&p["latency_us"]["p99"]),
                    p["errors"],
                    o["latency_us"]["p99"].as_f64().unwrap_or(0.0)
                        / p["latency_us"]["p99"].as_f64().unwrap_or(f64::NAN)
                );
            }
        }
    }
    let w = &r["wrk"];
    t += "\n### wrk (closed loop, 2 threads, 16 connections, single rows)\n\n";
    t += &match w.get("skipped") {
        Some(s) => format!("skipped: {}\n", s.as_str().unwrap_or("")),
        None => format!(
            "{} requests/s, p50 {} µs, p99 {} µs, non-2xx {}\n",
            num(&w["requests_per_s"]),
            num(&w["latency_us"]["p50"]),
            num(&w["latency_us"]["p99"]),
            w["non_2xx"]
        ),
    };
    t
}
