//! `cargo xtask bench`: a week's benchmark sweep as a table, an SVG plot and a JSON record.
//!
//! The week's `bench.rs` runs inside a release-built harness that links the lab,
//! `kernels` and (in an instructor's checkout) the solution, measuring them
//! interleaved on the same data. It writes a record whose rows share columns;
//! peers listed in the record (Python scripts in `autograder/peers/`) run on
//! the same files when `cargo xtask peers` has made their venv, and add rows.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};
use autograder::harness::{self, Build, Implementation, Purpose};
use autograder::{Workspace, spec};
use serde_json::Value;

use crate::plot::{Axis, Chart, Scale, Series, line_chart};

/// What `bench <week>` does: measure and write everything, or only redraw the plot of a record.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Measure { quick: bool },
    RenderRecord,
}

pub fn run(ws: &Workspace, name: &str, course: Option<u32>, mode: Mode, out: Option<PathBuf>) -> Result<()> {
    let week = spec::resolve(ws, name, course)?;
    let out = out.unwrap_or_else(|| ws.target_dir().join("bench").join(&week.id));
    let quick = match mode {
        Mode::Measure { quick } => quick,
        Mode::RenderRecord => {
            let record = read_record(&out.join("record.json"))?;
            std::fs::write(out.join("plot.svg"), plot(&record))?;
            println!("  plot   {}", out.join("plot.svg").display());
            return Ok(());
        }
    };
    std::fs::create_dir_all(&out)?;
    let out = out.canonicalize()?;
    let h = harness::generate(ws, &week, &Implementation::Lab, Purpose::Bench)?;
    let spinner = autograder::progress::spinner(format!("building the {} benchmark (release)", week.id));
    let build = harness::build(ws, &h)?;
    spinner.finish_and_clear();
    let binary = match build {
        Build::Ok(binary) => binary,
        Build::Failed(error) => bail!("the lab does not compile:\n{error}"),
    };
    let record_path = out.join("record.json");
    let scratch = ws.grade_dir().join("runs");
    std::fs::create_dir_all(&scratch)?;
    let services = autograder::services::start(&week.services, &scratch)?;
    let mut cmd = Command::new(&binary);
    cmd.arg("bench").arg(&record_path).env("RUST_BACKTRACE", "0");
    cmd.envs(services.env.iter().map(|(k, v)| (k, v)));
    if quick {
        cmd.arg("--quick");
    }
    crate::tools::run(&mut cmd)?;
    drop(services);
    let mut record: Value =
        serde_json::from_str(&std::fs::read_to_string(&record_path)?).context("reading the bench record")?;

    // The week's own notes (what its sweep could not measure) come first, then the peers'.
    let mut notes: Vec<String> = record["notes"]
        .as_array()
        .map(|n| n.iter().filter_map(|v| v.as_str().map(String::from)).collect())
        .unwrap_or_default();
    let peers = record.get("peers").and_then(Value::as_array).cloned().unwrap_or_default();
    for peer in peers {
        let peer_name = peer["name"].as_str().unwrap_or("peer").to_string();
        let Some(python) = ws.peer_python() else {
            notes.push(format!("{peer_name}: skipped (run `cargo xtask peers` to install it)"));
            continue;
        };
        let script = ws.root.join("autograder/peers").join(peer["script"].as_str().unwrap_or_default());
        let args: Vec<String> = peer["args"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect())
            .unwrap_or_default();
        let spinner = autograder::progress::spinner(format!("running peer {peer_name}"));
        let output = Command::new(&python)
            .arg(&script)
            .args(&args)
            .output()
            .with_context(|| format!("running {}", script.display()))?;
        spinner.finish_and_clear();
        if !output.status.success() {
            notes.push(format!(
                "{peer_name}: failed: {}",
                String::from_utf8_lossy(&output.stderr).lines().last().unwrap_or("")
            ));
            continue;
        }
        match serde_json::from_slice::<Value>(&output.stdout) {
            Ok(Value::Array(rows)) => {
                if let Some(all) = record["rows"].as_array_mut() {
                    all.extend(rows);
                }
            }
            _ => notes.push(format!("{peer_name}: printed no rows")),
        }
    }

    // The peers' input files are scratch, not part of the record (nor are their paths).
    std::fs::remove_dir_all(out.join("inputs")).ok();
    if let Some(peers) = record.get_mut("peers").and_then(Value::as_array_mut) {
        for peer in peers.iter_mut() {
            if let Some(obj) = peer.as_object_mut() {
                obj.remove("args");
            }
        }
    }

    let summary = summarise(&record);
    record["notes"] = Value::from(notes.clone());
    record["summary"] = Value::from(summary.clone());
    record["machine"] = machine();
    record["peer_versions"] = peer_versions(&record);
    std::fs::write(&record_path, serde_json::to_string_pretty(&record)?)?;
    let table = table(&record);
    std::fs::write(out.join("table.md"), &table)?;
    let svg = plot(&record);
    std::fs::write(out.join("plot.svg"), svg)?;

    println!("{table}");
    for line in summary.iter().chain(&notes) {
        println!("  {line}");
    }
    println!(
        "\n  record {}\n  table  {}\n  plot   {}",
        record_path.display(),
        out.join("table.md").display(),
        out.join("plot.svg").display()
    );
    Ok(())
}

fn columns(record: &Value) -> Vec<String> {
    record["columns"]
        .as_array()
        .map(|c| c.iter().filter_map(|v| v.as_str().map(String::from)).collect())
        .unwrap_or_default()
}

/// A Markdown table of every row.
fn table(record: &Value) -> String {
    let cols = columns(record);
    let mut out = format!("| {} |\n|{}|\n", cols.join(" | "), cols.iter().map(|_| "---").collect::<Vec<_>>().join("|"));
    for row in record["rows"].as_array().into_iter().flatten() {
        let cells: Vec<String> = cols
            .iter()
            .map(|c| match &row[c] {
                Value::Number(n) => {
                    let v = n.as_f64().unwrap_or(f64::NAN);
                    if (v.fract() == 0.0 && v.abs() < 1e9) || v.abs() >= 100.0 {
                        format!("{v:.0}")
                    } else {
                        format!("{v:.4}")
                    }
                }
                Value::String(s) => s.clone(),
                Value::Null => "–".into(),
                other => other.to_string(),
            })
            .collect();
        out.push_str(&format!("| {} |\n", cells.join(" | ")));
    }
    out
}

/// The name of a row's series: its `impl`, prefixed by its `group` column when
/// the record has one (several operations in one record, e.g. `"op"`).
fn series_name(record: &Value, row: &Value) -> String {
    let imp = row["impl"].as_str().unwrap_or("?");
    match record["group"].as_str() {
        Some(g) => format!("{} · {imp}", row[g].as_str().unwrap_or("?")),
        None => imp.to_string(),
    }
}

/// Each series' (x, y) points.
fn series(record: &Value) -> Vec<Series> {
    let (x, y) = (record["x"].as_str().unwrap_or(""), record["y"].as_str().unwrap_or(""));
    let mut out: Vec<Series> = Vec::new();
    for row in record["rows"].as_array().into_iter().flatten() {
        let name = series_name(record, row);
        let (Some(px), Some(py)) = (row[x].as_f64(), row[y].as_f64()) else { continue };
        match out.iter_mut().find(|s| s.name == name) {
            Some(s) => s.points.push((px, py)),
            None => out.push(Series { name, points: vec![(px, py)] }),
        }
    }
    out
}

fn plot(record: &Value) -> String {
    let title = record["title"].as_str().unwrap_or("benchmark");
    let (x_label, x_unit) = axis_of(record["x"].as_str().unwrap_or("x"));
    let (y_label, y_unit) = axis_of(record["y"].as_str().unwrap_or("y"));
    let caption = caption(&peer_versions(record), &record["machine"]);
    let chart = Chart {
        title,
        x: Axis { label: &x_label, unit: &x_unit, scale: Scale::Auto },
        y: Axis { label: &y_label, unit: &y_unit, scale: Scale::LogIfPositive },
        caption: &caption,
    };
    line_chart(&chart, &series(record))
}

/// An axis label and unit for a record's column name: `rows/s` is a throughput in rows/s,
/// `input_kb` an input size in KB, `metrics per call` a batch size in metrics per call.
pub fn axis_of(column: &str) -> (String, String) {
    if column.ends_with("/s") {
        ("throughput".into(), column.into())
    } else if let Some(what) = column.strip_suffix("_kb") {
        (format!("{what} size"), "KB".into())
    } else if column.contains(" per ") {
        ("batch size".into(), column.into())
    } else if column == "rows" {
        ("table size".into(), "rows".into())
    } else {
        (column.replace('_', " "), String::new())
    }
}

/// Implementations that are part of the course rather than a peer's.
const OURS: &[&str] = &["kernels", "solution", "lab", "scalar"];

/// Each peer of a record with its version: as recorded when the record has them, else as pinned
/// by `cargo xtask peers` (the pins the recorded runs used, when the record predates versions).
fn peer_versions(record: &Value) -> Value {
    if let Some(recorded) = record.get("peer_versions").filter(|v| v.is_object()) {
        return recorded.clone();
    }
    let mut out = serde_json::Map::new();
    for row in record["rows"].as_array().into_iter().flatten() {
        let Some(imp) = row["impl"].as_str() else { continue };
        if !OURS.contains(&imp) && !out.contains_key(imp) {
            out.insert(imp.to_string(), crate::peers::pinned_version(imp).map_or(Value::Null, Value::from));
        }
    }
    Value::Object(out)
}

/// The line under a plot: the peers (with versions) and the machine of the run.
pub fn caption(peers: &Value, machine: &Value) -> String {
    let mut peers: Vec<String> = peers
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, version)| match version.as_str() {
            Some(v) => format!("{name} {v}"),
            None => name.clone(),
        })
        .collect();
    // By name: a JSON map's key order depends on serde_json's `preserve_order`, which `kernels/llm` turns on.
    peers.sort();
    let machine = format!("machine: {}", describe_machine(machine));
    match peers.len() {
        0 => machine,
        1 => format!("peer: {} · {machine}", peers[0]),
        _ => format!("peers: {} · {machine}", peers.join(", ")),
    }
}

/// `Intel Xeon, 2 vCPU, L2 2 MiB, L3 480 MiB` from a record's `machine` (caches when recorded).
pub fn describe_machine(machine: &Value) -> String {
    let cpu = machine["cpu"].as_str().unwrap_or("unknown CPU");
    let mut cpu: String = cpu
        .replace("(R)", "")
        .replace("(TM)", "")
        .replace("(tm)", "")
        .split_whitespace()
        .filter(|w| !matches!(*w, "Processor" | "CPU"))
        .collect::<Vec<_>>()
        .join(" ");
    if cpu.is_empty() {
        cpu = "unknown CPU".into();
    }
    let mut parts = vec![cpu];
    if let Some(n) = machine["cores"].as_u64() {
        parts.push(format!("{n} vCPU"));
    }
    for level in ["l2", "l3"] {
        if let Some(bytes) = machine[format!("{level}_bytes")].as_u64() {
            parts.push(format!("{} {}", level.to_uppercase(), bytes_text(bytes)));
        }
    }
    parts.join(", ")
}

fn bytes_text(bytes: u64) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else if bytes >= 1 << 20 {
        format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
    } else {
        format!("{} KiB", bytes >> 10)
    }
}

/// `y` of a series at `x = target`, interpolated between the two sweep points around it.
pub fn y_at(points: &[(f64, f64)], target: f64) -> Option<f64> {
    let mut pts = points.to_vec();
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    let i = pts.iter().position(|&(x, _)| x >= target)?;
    if i == 0 {
        // Even the cheapest setting beats the target: report its throughput.
        return Some(pts[0].1);
    }
    let ((xa, ya), (xb, yb)) = (pts[i - 1], pts[i]);
    Some(if xb - xa < 1e-12 { yb } else { ya + (yb - ya) * (target - xa) / (xb - xa) })
}

/// Ratio lines: each series' y at each target x, over the reference series'.
fn summarise(record: &Value) -> Vec<String> {
    let all = series(record);
    let reference = record["reference"].as_str().unwrap_or("kernels");
    let targets: Vec<f64> =
        record["targets"].as_array().map(|t| t.iter().filter_map(Value::as_f64).collect()).unwrap_or_default();
    let y = record["y"].as_str().unwrap_or("y");
    let x = record["x"].as_str().unwrap_or("x");
    // Without a group column there is one reference series; with one, each group
    // (`"<group> · …"`) is compared with its own `"<group> · <reference>"`.
    let mut groups: Vec<(String, String)> = Vec::new();
    match record["group"].as_str() {
        None => groups.push((String::new(), reference.to_string())),
        Some(g) => {
            for row in record["rows"].as_array().into_iter().flatten() {
                let prefix = format!("{} · ", row[g].as_str().unwrap_or("?"));
                if !groups.iter().any(|(p, _)| *p == prefix) {
                    groups.push((prefix.clone(), format!("{prefix}{reference}")));
                }
            }
        }
    }
    let mut lines = Vec::new();
    for (prefix, base_name) in &groups {
        let Some(base) = all.iter().find(|s| s.name == *base_name) else { continue };
        for &target in &targets {
            let Some(base_y) = y_at(&base.points, target) else {
                lines.push(format!("{base_name} never reaches {x} {target}"));
                continue;
            };
            for s in all.iter().filter(|s| s.name.starts_with(prefix.as_str())) {
                let line = match y_at(&s.points, target) {
                    Some(v) => format!("{x} {target}: {} {y} {v:.0} = {:.2}× {base_name}", s.name, v / base_y),
                    None => format!("{x} {target}: {} never reaches it", s.name),
                };
                lines.push(line);
            }
        }
    }
    lines
}

/// Builds `kernels/examples/NAME.rs` in release with only `features` and returns the binary's path.
pub fn build_kernels_example(ws: &Workspace, name: &str, features: &str) -> Result<PathBuf> {
    eprintln!("building kernels/examples/{name} (release)…");
    let status = crate::tools::cargo()
        .args(["build", "--release", "--quiet", "-p", "kernels", "--no-default-features", "--features", features])
        .args(["--example", name])
        .status()
        .context("running cargo")?;
    if !status.success() {
        bail!("building {name} failed ({status})");
    }
    Ok(ws.target_dir().join("release/examples").join(name))
}

/// Runs a built example with `args` and reads the JSON it prints on stdout.
pub fn run_json(example: &std::path::Path, args: &[&str]) -> Result<Value> {
    let name = example.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let output = Command::new(example).args(args).output().with_context(|| format!("running {name}"))?;
    if !output.status.success() {
        bail!("{name} failed ({}): {}", output.status, String::from_utf8_lossy(&output.stderr));
    }
    serde_json::from_slice(&output.stdout).with_context(|| format!("reading {name}'s JSON"))
}

/// The `record.json` a bench wrote, to render its table or plot again (`--render-only`).
pub fn read_record(path: &std::path::Path) -> Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading the record to render, {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing the record {}", path.display()))
}

pub fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let when = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let mut m = serde_json::json!({ "cpu": cpu, "cores": cores, "unix_time": when });
    for (level, bytes) in cache_sizes() {
        m[format!("l{level}_bytes")] = Value::from(bytes);
    }
    m
}

/// The unified or data cache size of each level of CPU 0 (`/sys/devices/system/cpu/cpu0/cache`), in bytes.
fn cache_sizes() -> Vec<(u32, u64)> {
    let Ok(dir) = std::fs::read_dir("/sys/devices/system/cpu/cpu0/cache") else { return Vec::new() };
    let read = |p: std::path::PathBuf| std::fs::read_to_string(p).map(|s| s.trim().to_string()).ok();
    let mut out: Vec<(u32, u64)> = dir
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("index")))
        .filter_map(|p| {
            let level: u32 = read(p.join("level"))?.parse().ok()?;
            let kind = read(p.join("type"))?;
            (kind != "Instruction").then_some(())?;
            Some((level, parse_size(&read(p.join("size"))?)?))
        })
        .collect();
    out.sort();
    out.dedup_by_key(|(level, _)| *level);
    out
}

/// `48K`, `2048K`, `32M` → bytes.
fn parse_size(text: &str) -> Option<u64> {
    let (digits, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "" => n,
        "K" => n << 10,
        "M" => n << 20,
        "G" => n << 30,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolates_between_sweep_points() {
        let pts = [(0.90, 1000.0), (0.96, 400.0), (0.99, 100.0)];
        assert!((y_at(&pts, 0.93).unwrap() - 700.0).abs() < 1e-6);
        assert_eq!(y_at(&pts, 0.80), Some(1000.0));
        assert_eq!(y_at(&pts, 0.995), None);
    }

    #[test]
    fn captions_name_the_peers_and_the_machine() {
        let machine = serde_json::json!({ "cpu": "Intel(R) Xeon(R) Processor", "cores": 2, "l2_bytes": 2u64 << 20 });
        let cases = [
            (serde_json::json!({ "hnswlib": "0.8.0" }), "peer: hnswlib 0.8.0 · machine: Intel Xeon, 2 vCPU, L2 2 MiB"),
            (serde_json::json!({}), "machine: Intel Xeon, 2 vCPU, L2 2 MiB"),
            (
                serde_json::json!({ "numpy": "2.4.6", "custom": null }),
                "peers: custom, numpy 2.4.6 · machine: Intel Xeon, 2 vCPU, L2 2 MiB",
            ),
        ];
        for (peers, expected) in cases {
            assert_eq!(caption(&peers, &machine), expected);
        }
        let old = serde_json::json!({ "cpu": "AMD EPYC 7B13 64-Core Processor", "cores": 4 });
        assert_eq!(describe_machine(&old), "AMD EPYC 7B13 64-Core, 4 vCPU");
        let record =
            serde_json::json!({ "rows": [{ "impl": "kernels" }, { "impl": "mlflow-python" }, { "impl": "solution" }] });
        assert_eq!(peer_versions(&record), serde_json::json!({ "mlflow-python": "3.17.2" }));
    }

    #[test]
    fn columns_become_labels_with_units() {
        for (column, label, unit) in [
            ("rows/s", "throughput", "rows/s"),
            ("input_kb", "input size", "KB"),
            ("metrics per call", "batch size", "metrics per call"),
            ("rows", "table size", "rows"),
            ("recall@10", "recall@10", ""),
        ] {
            assert_eq!(axis_of(column), (label.to_string(), unit.to_string()), "{column}");
        }
        assert_eq!(parse_size("2048K"), Some(2 << 20));
        assert_eq!(parse_size("480M"), Some(480 << 20));
        assert_eq!(parse_size("x"), None);
    }

    #[test]
    fn grouped_records_compare_each_group_with_its_own_reference() {
        let record = serde_json::json!({
            "x": "rows", "y": "rows/s", "group": "op", "reference": "kernels", "targets": [100],
            "rows": [
                { "op": "stats", "impl": "kernels", "rows": 100, "rows/s": 1000.0 },
                { "op": "stats", "impl": "lab", "rows": 100, "rows/s": 500.0 },
                { "op": "join", "impl": "kernels", "rows": 100, "rows/s": 10.0 },
                { "op": "join", "impl": "lab", "rows": 100, "rows/s": 20.0 },
            ],
        });
        let names: Vec<String> = series(&record).into_iter().map(|s| s.name).collect();
        assert_eq!(names, ["stats · kernels", "stats · lab", "join · kernels", "join · lab"]);
        let lines = summarise(&record);
        assert_eq!(lines.len(), 4, "{lines:?}");
        assert!(lines[1].contains("stats · lab") && lines[1].contains("0.50× stats · kernels"), "{lines:?}");
        assert!(lines[3].contains("join · lab") && lines[3].contains("2.00× join · kernels"), "{lines:?}");
    }
}
