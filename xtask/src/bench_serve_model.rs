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
//! `record.json`, `table.md` and `plot.svg` under `target/bench/serve-model`. The plot stacks three
//! charts: p50 and p99 against the offered rate (250 to 4,000 requests/s; the peer's p99 beside ours),
//! then p99 and the mean batch size against the batcher's maximum delay at 4,000 requests/s.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};
use autograder::Workspace;
use serde_json::{Value, json};

use crate::plot::{Axis, Chart, Scale, Series, line_chart};

pub fn run(ws: &Workspace, quick: bool, out: Option<PathBuf>) -> Result<()> {
    let out = out.unwrap_or_else(|| ws.target_dir().join("bench").join("serve-model"));
    std::fs::create_dir_all(&out)?;
    let (rows, seconds, rates): (usize, &str, &[&str]) =
        if quick { (12_000, "2", &["500", "2000"]) } else { (50_000, "5", &["250", "500", "1000", "2000", "4000"]) };
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
    let mut record: Value = serde_json::from_slice(&output.stdout).context("serve_model_load printed no JSON")?;
    record["machine"] = crate::bench::machine();
    record["quick"] = json!(quick);
    std::fs::write(out.join("record.json"), serde_json::to_string_pretty(&record)?)?;
    std::fs::write(out.join("plot.svg"), plot(&record))?;
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

/// `(x, y)` of every point of `points` that has both.
fn xy(points: &[Value], x: impl Fn(&Value) -> Option<f64>, y: impl Fn(&Value) -> Option<f64>) -> Vec<(f64, f64)> {
    points.iter().filter_map(|p| Some((x(p)?, y(p)?))).collect()
}

/// Latency against the offered rate, then p99 latency and mean batch size against the maximum delay.
fn plot(r: &Value) -> String {
    let array = |v: &Value| v.as_array().cloned().unwrap_or_default();
    let rate = |p: &Value| p["rate"].as_f64();
    let latency = |q: &'static str| move |p: &Value| p["latency_us"][q].as_f64();
    let fixed = array(&r["open_loop"]);
    let pc = &r["peer_comparison"];
    let mut series = vec![
        Series { name: "kernels forest p50".into(), points: xy(&fixed, rate, latency("p50")) },
        Series { name: "kernels forest p99".into(), points: xy(&fixed, rate, latency("p99")) },
    ];
    let peer_ran = pc["peer"].get("skipped").is_none() && pc["peer"]["open_loop"].is_array();
    if peer_ran {
        series.push(Series {
            name: "kernels gbm p99".into(),
            points: xy(&array(&pc["ours"]["open_loop"]), rate, latency("p99")),
        });
        series.push(Series {
            name: "LightGBM + FastAPI p99 (peer)".into(),
            points: xy(&array(&pc["peer"]["open_loop"]), rate, latency("p99")),
        });
    }
    let peers = if peer_ran {
        json!({"LightGBM": crate::peers::pinned_version("lightgbm"), "FastAPI + uvicorn": null})
    } else {
        json!({})
    };
    let caption = crate::bench::caption(&peers, &r["machine"]);
    let by_rate = line_chart(
        &Chart {
            title: "Single-row requests, open loop: latency against the offered rate",
            x: Axis { label: "offered rate", unit: "requests/s", scale: Scale::LogIfPositive },
            y: Axis { label: "latency from the intended send", unit: "µs", scale: Scale::LogIfPositive },
            caption: &caption,
        },
        &series,
    );

    // The batching curve: "backlog only (delay 0)" is delay 0 of both the fixed and the adaptive batcher.
    let curve = array(&r["batching_curve"]["points"]);
    let family = |p: &Value| p["config"].as_str().unwrap_or("").to_string();
    let delay_series = |y: &dyn Fn(&Value) -> Option<f64>| -> Vec<Series> {
        let pick = |keep: &dyn Fn(&str) -> bool| -> Vec<Value> {
            curve.iter().filter(|p| keep(&family(p))).cloned().collect()
        };
        let delay = |p: &Value| p["max_delay_us"].as_f64();
        [
            ("fixed delay", pick(&|c| c.starts_with("fixed") || c.starts_with("backlog"))),
            ("adaptive", pick(&|c| c.starts_with("adaptive") || c.starts_with("backlog"))),
            ("no batching (1 row)", pick(&|c| c.starts_with("no batching"))),
        ]
        .into_iter()
        .map(|(name, points)| Series { name: name.into(), points: xy(&points, delay, y) })
        .collect()
    };
    let at = format!("{} requests/s", r["batching_curve"]["rate"].as_f64().map_or("?".into(), |v| format!("{v:.0}")));
    let machine = crate::bench::caption(&json!({}), &r["machine"]);
    let p99_title = format!("Micro-batching at {at}: p99 latency against the maximum delay");
    let by_delay = line_chart(
        &Chart {
            title: &p99_title,
            x: Axis { label: "maximum delay", unit: "µs", scale: Scale::Linear },
            y: Axis { label: "p99 latency", unit: "µs", scale: Scale::LogIfPositive },
            caption: &machine,
        },
        &delay_series(&latency("p99")),
    );
    let size_title = format!("Micro-batching at {at}: mean batch size against the maximum delay");
    let sizes = line_chart(
        &Chart {
            title: &size_title,
            x: Axis { label: "maximum delay", unit: "µs", scale: Scale::Linear },
            y: Axis { label: "mean batch size", unit: "rows", scale: Scale::LogIfPositive },
            caption: &machine,
        },
        &delay_series(&|p: &Value| p["mean_batch_rows"].as_f64()),
    );
    stack(&[by_rate, by_delay, sizes])
}

/// Charts drawn by `line_chart`, one under another, as one SVG document (nested `<svg>` elements).
fn stack(charts: &[String]) -> String {
    let attr = |svg: &str, name: &str| -> f64 {
        svg.split(&format!(" {name}=\""))
            .nth(1)
            .and_then(|v| v.split('"').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    let (mut body, mut height, mut width) = (String::new(), 0.0, 0.0f64);
    for chart in charts {
        body += &chart.replacen("<svg ", &format!("<svg y=\"{height}\" "), 1);
        height += attr(chart, "height");
        width = width.max(attr(chart, "width"));
    }
    format!("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\">\n{body}</svg>\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plot_stacks_rate_and_delay_charts_with_backlog_at_delay_zero_of_both_batchers() {
        let point = |config: &str, delay: f64, p99: f64, batch: f64| {
            json!({"config": config, "max_delay_us": delay, "latency_us": {"p50": p99 / 4.0, "p99": p99},
                   "mean_batch_rows": batch})
        };
        let record = json!({
            "open_loop": [{"rate": 250.0, "latency_us": {"p50": 100.0, "p99": 900.0}},
                          {"rate": 4000.0, "latency_us": {"p50": 150.0, "p99": 3000.0}}],
            "batching_curve": {"rate": 4000.0, "points": [
                point("no batching", 0.0, 2000.0, 1.0), point("backlog only (delay 0)", 0.0, 2500.0, 1.1),
                point("adaptive 500us", 500.0, 2600.0, 1.2), point("fixed 200us", 200.0, 1800.0, 1.5),
            ]},
            "peer_comparison": {"peer": {"skipped": "no venv"}},
            "machine": {"cpu": "Test Chip", "cores": 2},
        });
        let svg = plot(&record);
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"") && svg.ends_with("</svg>\n"));
        let charts: Vec<&str> = svg.match_indices("<svg y=\"").map(|(i, _)| &svg[i..i + 14]).collect();
        assert_eq!(charts, ["<svg y=\"0\" xml", "<svg y=\"500\" x", "<svg y=\"1000\" "]);
        assert!(svg.contains("height=\"1500\">"), "three 500-px charts");
        // 2 + 2 points by rate; fixed {0, 200}, adaptive {0, 500} and no batching {0}, twice.
        assert_eq!(svg.matches("<circle").count(), 4 + 5 + 5);
        for name in
            ["kernels forest p99", "fixed delay", "adaptive", "no batching (1 row)", "machine: Test Chip, 2 vCPU"]
        {
            assert!(svg.contains(name), "{name}");
        }
        assert!(!svg.contains("peer"), "no peer series when the peer was skipped");
    }
}
