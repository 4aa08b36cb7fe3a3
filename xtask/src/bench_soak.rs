//! `cargo xtask bench soak`: `sovereign serve` (`kernels::serve`, SmolLM2-135M-Instruct) under
//! overload for minutes: capacity measured closed loop, then twice that offered open loop, then half.
//!
//! References: Welsh and Culler, "Adaptive Overload Control for Busy Internet Servers" (USITS 2003:
//! a bounded queue and early refusal keep the goodput at capacity); Gil Tene, "How NOT to Measure
//! Latency" (2015) and wrk2 (open loop, latency from the intended send time); RFC 9110 §10.2.3
//! (`Retry-After`).
//!
//! The server runs as a child process (release build, `--max-batch 4 --max-queue 16
//! --request-timeout 10 --context 256`), so its resident memory (`VmRSS` of `/proc/<pid>/status`) is
//! its own. Each request is a chat turn of exactly 8 generated tokens (the end-of-turn tokens banned
//! by `logit_bias`), so every request costs the same. Phases: warm-up; capacity (8 clients back to
//! back, requests/s answered); overload (2 × capacity open loop, one thread per request); recovery
//! (0.5 × capacity). Quick mode takes about a minute, the full run about five. Writes `record.json`
//! (machine with `lscpu`'s model name and caches, phases, a per-second timeline, the server's shed
//! counters), `table.md` and `plot.svg` (offered / admitted / shed per second, p50 / p99 latency and
//! RSS over time) under `target/bench/soak`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use autograder::Workspace;
use serde_json::{Value, json};

use crate::plot::{Axis, Chart, Scale, Series, line_chart};

const CHAT: &str = "smollm2-135m-instruct";
const GGUF: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
const MAX_BATCH: usize = 4;
const MAX_QUEUE: usize = 16;
const TIMEOUT_S: f64 = 10.0;
const MAX_TOKENS: usize = 8;

/// Seconds per phase: warm-up, capacity, overload (2×), recovery (0.5×).
struct Plan {
    warmup: f64,
    capacity: f64,
    overload: f64,
    recovery: f64,
}

/// The soak's pass conditions (issue: bounded, answers every admitted request, flat memory, recovery).
///
/// * Every request is answered 200 or shed with 503: no connection error, no other status, and no
///   admitted answer later than the deadline.
/// * Under 2× capacity the server sheds, and its goodput stays at least [`GOODPUT_MIN`] of capacity
///   (a bounded queue keeps it working at capacity instead of collapsing: Welsh and Culler).
/// * Resident memory after the capacity phase grows at most [`RSS_GROWTH_MAX`] over its value
///   before the overload.
/// * At half capacity afterwards nothing is shed and at least [`RECOVERY_MIN`] of the offered
///   requests are answered within the phase.
const GOODPUT_MIN: f64 = 0.8;
const RSS_GROWTH_MAX: f64 = 0.10;
const RECOVERY_MIN: f64 = 0.95;

/// Measures with the release build of `sovereign` (built here).
pub fn run(ws: &Workspace, quick: bool, out: Option<PathBuf>) -> Result<()> {
    let sovereign = build_sovereign(ws)?;
    run_binary(ws, &sovereign, quick, out)
}

/// Measures with the `sovereign` binary at `sovereign` (CI passes its test build's, so the soak
/// costs no build). Writes the record, then fails when a pass condition does not hold.
pub fn run_binary(ws: &Workspace, sovereign: &Path, quick: bool, out: Option<PathBuf>) -> Result<()> {
    let out = out.unwrap_or_else(|| ws.target_dir().join("bench").join("soak"));
    std::fs::create_dir_all(&out)?;
    let plan = if quick {
        Plan { warmup: 3.0, capacity: 20.0, overload: 30.0, recovery: 15.0 }
    } else {
        Plan { warmup: 5.0, capacity: 20.0, overload: 180.0, recovery: 90.0 }
    };
    let gguf = datasets::models::file_path(CHAT, GGUF)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("the SmolLM2 GGUF (run `cargo xtask models`)")?;
    let server = Server::start(sovereign, &gguf)?;
    let addr = server.addr;
    let stop_tokens = stop_tokens(addr)?;
    let body = json!({
        "model": CHAT, "messages": [{"role": "user", "content": "Name a colour."}], "temperature": 0,
        "max_tokens": MAX_TOKENS, "logit_bias": stop_tokens,
    });

    let t0 = Instant::now();
    let rss = Arc::new(Mutex::new(Vec::<(f64, u64)>::new()));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (rss, sampling, pid) = (rss.clone(), sampling.clone(), server.child.id());
        std::thread::spawn(move || {
            while sampling.load(Ordering::Relaxed) {
                let sample = (t0.elapsed().as_secs_f64(), rss_of(pid));
                rss.lock().unwrap_or_else(|e| e.into_inner()).push(sample);
                std::thread::sleep(Duration::from_millis(500));
            }
        })
    };
    eprintln!(
        "warm-up {:.0} s, capacity {:.0} s (closed loop, {} clients)…",
        plan.warmup,
        plan.capacity,
        2 * MAX_BATCH
    );
    let mut outcomes = closed_loop(addr, &body, 2 * MAX_BATCH, plan.warmup, t0, "warmup");
    let capacity_start = t0.elapsed().as_secs_f64();
    let measured = closed_loop(addr, &body, 2 * MAX_BATCH, plan.capacity, t0, "capacity");
    // Completions over the time they took: the clients start together, so answers come in batches,
    // and a fixed window would also count the idle tail after the last batch it holds.
    let answered: Vec<f64> = measured
        .iter()
        .filter(|o| o.status == 200 && o.done <= capacity_start + plan.capacity)
        .map(|o| o.done)
        .collect();
    let last = answered.iter().copied().fold(capacity_start, f64::max);
    let capacity = if last > capacity_start { answered.len() as f64 / (last - capacity_start) } else { 0.0 };
    outcomes.extend(measured);
    if capacity <= 0.0 {
        bail!("no request completed while measuring capacity");
    }
    let baseline_rss = rss_of(server.child.id());
    eprintln!("capacity {capacity:.2} requests/s; overload at {:.2}/s for {:.0} s…", 2.0 * capacity, plan.overload);
    outcomes.extend(open_loop(addr, &body, 2.0 * capacity, plan.overload, t0, "overload"));
    eprintln!("recovery at {:.2}/s for {:.0} s…", 0.5 * capacity, plan.recovery);
    outcomes.extend(open_loop(addr, &body, 0.5 * capacity, plan.recovery, t0, "recovery"));
    sampling.store(false, Ordering::Relaxed);
    let _ = sampler.join();
    let metrics = http(addr, "GET", "/metrics", None).2;
    drop(server);

    let rss = std::mem::take(&mut *rss.lock().unwrap_or_else(|e| e.into_inner()));
    let mut record = record(&outcomes, &rss, capacity, baseline_rss, &metrics, quick, &plan);
    let failed = checks(&mut record);
    std::fs::write(out.join("record.json"), serde_json::to_string_pretty(&record)?)?;
    std::fs::write(out.join("plot.svg"), plot(&record))?;
    let table = table(&record);
    std::fs::write(out.join("table.md"), &table)?;
    println!("{table}");
    println!("written: {}", out.display());
    if !failed.is_empty() {
        bail!("the soak failed: {}", failed.join("; "));
    }
    Ok(())
}

/// Judges the pass conditions into `record["checks"]`; returns the failed ones, described.
fn checks(record: &mut Value) -> Vec<String> {
    let f = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    let (overload, recovery) = (&record["phases"]["overload"], &record["phases"]["recovery"]);
    let (o, r) = (&overload["result"], &recovery["result"]);
    let unanswered = f(&o["other_errors"]) + f(&r["other_errors"]);
    let late = f(&o["past_deadline"]) + f(&r["past_deadline"]);
    let goodput = f(&o["admitted_per_s"]) / f(&record["capacity_rps"]);
    let growth = f(&record["rss"]["growth"]);
    // Answered over offered (the offered count is the rate times the phase, rounded down).
    let recovered = f(&r["admitted"]) / f(&r["offered"]);
    let list = [
        (
            "every request answered 200 or 503, none admitted past its deadline",
            unanswered == 0.0 && late == 0.0,
            format!("{unanswered} unanswered or other errors, {late} past the deadline"),
        ),
        (
            "under 2x capacity it sheds and keeps its goodput",
            f(&o["shed"]) > 0.0 && goodput >= GOODPUT_MIN,
            format!("{} shed, goodput {goodput:.2}x capacity (at least {GOODPUT_MIN})", o["shed"]),
        ),
        (
            "resident memory flat",
            growth <= RSS_GROWTH_MAX,
            format!("grew {:+.1}% (at most {:.0}%)", growth * 100.0, RSS_GROWTH_MAX * 100.0),
        ),
        (
            "full throughput back at half capacity",
            f(&r["shed"]) == 0.0 && recovered >= RECOVERY_MIN,
            format!("{} shed, {recovered:.2} of the offered requests answered (at least {RECOVERY_MIN})", r["shed"]),
        ),
    ];
    let mut failed = Vec::new();
    let mut out = Vec::new();
    for (name, pass, detail) in list {
        if !pass {
            failed.push(format!("{name}: {detail}"));
        }
        out.push(json!({"check": name, "pass": pass, "measured": detail}));
    }
    record["checks"] = Value::Array(out);
    failed
}

fn build_sovereign(ws: &Workspace) -> Result<PathBuf> {
    eprintln!("building sovereign (release)…");
    let status = crate::tools::cargo()
        .args(["build", "--release", "--quiet", "-p", "kernels", "--features", "cli", "--bin", "sovereign"])
        .status()
        .context("running cargo")?;
    if !status.success() {
        bail!("building sovereign failed ({status})");
    }
    Ok(ws.target_dir().join("release/sovereign"))
}

/// `sovereign serve` as a child process, killed on drop.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn start(sovereign: &Path, gguf: &Path) -> Result<Server> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = Command::new(sovereign)
            .args(["serve", "--model"])
            .arg(gguf)
            .args(["--model-id", CHAT, "--port", &port.to_string()])
            .args(["--max-batch", &MAX_BATCH.to_string(), "--max-queue", &MAX_QUEUE.to_string()])
            .args(["--request-timeout", &TIMEOUT_S.to_string(), "--context", "256"])
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", sovereign.display()))?;
        let server = Server { child, addr: SocketAddr::from(([127, 0, 0, 1], port)) };
        let start = Instant::now();
        while http(server.addr, "GET", "/health", None).0 != 200 {
            if start.elapsed() > Duration::from_secs(60) {
                bail!("sovereign serve did not answer /health within a minute");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(server)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `logit_bias` banning SmolLM2's special tokens 0–2 (`<|endoftext|>`, `<|im_start|>`,
/// `<|im_end|>`): every request then generates exactly [`MAX_TOKENS`] tokens (checked once here).
fn stop_tokens(addr: SocketAddr) -> Result<Value> {
    let bias = json!({"0": -100, "1": -100, "2": -100});
    let body = json!({"model": CHAT, "messages": [{"role": "user", "content": "Hi"}], "temperature": 0,
                      "max_tokens": MAX_TOKENS, "logit_bias": bias});
    let (status, _, text) = http(addr, "POST", "/v1/chat/completions", Some(&body));
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    if status != 200 || v["usage"]["completion_tokens"] != MAX_TOKENS {
        bail!("a request of {MAX_TOKENS} tokens with the end tokens banned answered {status}: {text}");
    }
    Ok(bias)
}

/// Resident memory of `pid` in bytes (0 when gone).
fn rss_of(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// One request over its own HTTP/1.1 connection: status (0 when the connection failed), lower-cased
/// head, body.
fn http(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> (u16, String, String) {
    let failed = (0, String::new(), String::new());
    let Ok(mut s) = TcpStream::connect(addr) else { return failed };
    let _ = s.set_read_timeout(Some(Duration::from_secs(120)));
    let body = body.map(Value::to_string).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    if s.write_all(request.as_bytes()).is_err() {
        return failed;
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, head.to_lowercase(), body.to_owned())
}

/// One request of the soak.
#[derive(Debug, Clone)]
struct Outcome {
    phase: &'static str,
    /// Seconds after the soak began that it was due (open loop) or sent (closed loop).
    due: f64,
    /// Seconds after the soak began that its answer had arrived.
    done: f64,
    status: u16,
    /// From the intended send time, in seconds.
    latency: f64,
    retry_after: Option<u64>,
}

fn outcome(addr: SocketAddr, body: &Value, t0: Instant, due: f64, phase: &'static str) -> Outcome {
    let (status, head, _) = http(addr, "POST", "/v1/chat/completions", Some(body));
    let done = t0.elapsed().as_secs_f64();
    let retry_after = head.lines().find_map(|l| l.strip_prefix("retry-after:")).and_then(|v| v.trim().parse().ok());
    Outcome { phase, due, done, status, latency: done - due, retry_after }
}

/// `clients` back to back for `seconds`.
fn closed_loop(
    addr: SocketAddr,
    body: &Value,
    clients: usize,
    seconds: f64,
    t0: Instant,
    phase: &'static str,
) -> Vec<Outcome> {
    let end = t0.elapsed().as_secs_f64() + seconds;
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let body = body.clone();
            std::thread::spawn(move || {
                let mut out = Vec::new();
                while t0.elapsed().as_secs_f64() < end {
                    out.push(outcome(addr, &body, t0, t0.elapsed().as_secs_f64(), phase));
                }
                out
            })
        })
        .collect();
    threads.into_iter().flat_map(|t| t.join().unwrap_or_default()).collect()
}

/// One request every `1 / rate` seconds for `seconds`, each on its own thread.
fn open_loop(
    addr: SocketAddr,
    body: &Value,
    rate: f64,
    seconds: f64,
    t0: Instant,
    phase: &'static str,
) -> Vec<Outcome> {
    let (tx, rx) = mpsc::channel();
    let start = t0.elapsed().as_secs_f64();
    for i in 0..(rate * seconds) as usize {
        let due = start + i as f64 / rate;
        if let Some(wait) = Duration::from_secs_f64(due).checked_sub(t0.elapsed()) {
            std::thread::sleep(wait);
        }
        let (tx, body) = (tx.clone(), body.clone());
        std::thread::spawn(move || {
            let _ = tx.send(outcome(addr, &body, t0, due, phase));
        });
    }
    drop(tx);
    rx.iter().collect()
}

/// The `q`-quantile (nearest rank) of sorted `v`.
fn quantile(v: &[f64], q: f64) -> Option<f64> {
    (!v.is_empty()).then(|| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1])
}

fn summary(outcomes: &[&Outcome], seconds: f64) -> Value {
    let admitted: Vec<&&Outcome> = outcomes.iter().filter(|o| o.status == 200).collect();
    let shed = outcomes.iter().filter(|o| o.status == 503).count();
    let mut latency: Vec<f64> = admitted.iter().map(|o| o.latency).collect();
    latency.sort_by(f64::total_cmp);
    let retry: Vec<u64> = outcomes.iter().filter_map(|o| o.retry_after).collect();
    json!({
        "offered": outcomes.len(),
        "admitted": admitted.len(),
        "shed": shed,
        "other_errors": outcomes.len() - admitted.len() - shed,
        "admitted_per_s": admitted.len() as f64 / seconds,
        "past_deadline": admitted.iter().filter(|o| o.latency > TIMEOUT_S).count(),
        "latency_s": {"p50": quantile(&latency, 0.5), "p99": quantile(&latency, 0.99), "max": latency.last()},
        "retry_after_s": {"min": retry.iter().min(), "max": retry.iter().max()},
    })
}

/// `lscpu`'s model name and cache sizes.
fn lscpu() -> Value {
    let text =
        Command::new("lscpu").output().map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
    let mut m = serde_json::Map::new();
    for line in text.lines() {
        if let Some((k, v)) = line.split_once(':')
            && (k.starts_with("Model name") || k.contains("cache"))
        {
            m.insert(k.trim().to_owned(), json!(v.trim()));
        }
    }
    Value::Object(m)
}

fn record(
    outcomes: &[Outcome],
    rss: &[(f64, u64)],
    capacity: f64,
    baseline_rss: u64,
    metrics: &str,
    quick: bool,
    plan: &Plan,
) -> Value {
    let phase = |name: &str| -> Vec<&Outcome> { outcomes.iter().filter(|o| o.phase == name).collect() };
    let end = outcomes.iter().map(|o| o.done).fold(0.0, f64::max);
    let mut timeline = Vec::new();
    for second in 0..end.ceil() as usize {
        let (lo, hi) = (second as f64, second as f64 + 1.0);
        let due: Vec<&Outcome> = outcomes.iter().filter(|o| o.due >= lo && o.due < hi).collect();
        let mut latency: Vec<f64> =
            outcomes.iter().filter(|o| o.status == 200 && o.done >= lo && o.done < hi).map(|o| o.latency).collect();
        latency.sort_by(f64::total_cmp);
        let rss_max = rss.iter().filter(|(t, _)| *t >= lo && *t < hi).map(|&(_, b)| b).max();
        timeline.push(json!({
            "t": second,
            "offered": due.len(),
            "admitted": due.iter().filter(|o| o.status == 200).count(),
            "shed": due.iter().filter(|o| o.status == 503).count(),
            "p50_s": quantile(&latency, 0.5),
            "p99_s": quantile(&latency, 0.99),
            "rss_bytes": rss_max,
        }));
    }
    let after_warmup = rss.iter().filter(|(t, _)| *t >= plan.warmup + plan.capacity).map(|&(_, b)| b).max();
    let shed_lines: Vec<&str> =
        metrics.lines().filter(|l| !l.starts_with('#') && (l.contains("shed") || l.contains("queue_depth"))).collect();
    let mut machine = crate::bench::machine();
    machine["lscpu"] = lscpu();
    json!({
        "what": "sovereign serve (kernels::serve, SmolLM2-135M-Instruct Q4_1) under 2x then 0.5x its measured capacity",
        "machine": machine,
        "quick": quick,
        "server": {"max_batch": MAX_BATCH, "max_queue": MAX_QUEUE, "request_timeout_s": TIMEOUT_S, "context": 256,
                   "max_tokens": MAX_TOKENS},
        "capacity_rps": capacity,
        "phases": {
            "overload": {"rate": 2.0 * capacity, "seconds": plan.overload, "result": summary(&phase("overload"), plan.overload)},
            "recovery": {"rate": 0.5 * capacity, "seconds": plan.recovery, "result": summary(&phase("recovery"), plan.recovery)},
        },
        "rss": {"after_warmup_bytes": baseline_rss, "max_after_warmup_bytes": after_warmup,
                "growth": after_warmup.map(|m| m as f64 / baseline_rss.max(1) as f64 - 1.0)},
        "server_metrics": shed_lines,
        "timeline": timeline,
    })
}

fn num(v: &Value) -> String {
    match v.as_f64() {
        Some(x) if x >= 100.0 => format!("{x:.0}"),
        Some(x) => format!("{x:.2}"),
        None => "–".into(),
    }
}

fn table(r: &Value) -> String {
    let mut t = format!(
        "## sovereign serve under overload (max batch {MAX_BATCH}, max queue {MAX_QUEUE}, timeout {TIMEOUT_S} s; {})\n\n",
        crate::bench::describe_machine(&r["machine"])
    );
    t += &format!(
        "Capacity (closed loop, {} clients): {} requests/s of {MAX_TOKENS} tokens.\n\n",
        2 * MAX_BATCH,
        num(&r["capacity_rps"])
    );
    t += "| phase | offered /s | offered | admitted | shed (503) | other errors | past deadline | admitted /s | p50 s | p99 s | max s | Retry-After s |\n";
    t += "|---|---|---|---|---|---|---|---|---|---|---|---|\n";
    for name in ["overload", "recovery"] {
        let p = &r["phases"][name];
        let s = &p["result"];
        t += &format!(
            "| {name} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {}–{} |\n",
            num(&p["rate"]),
            s["offered"],
            s["admitted"],
            s["shed"],
            s["other_errors"],
            s["past_deadline"],
            num(&s["admitted_per_s"]),
            num(&s["latency_s"]["p50"]),
            num(&s["latency_s"]["p99"]),
            num(&s["latency_s"]["max"]),
            s["retry_after_s"]["min"],
            s["retry_after_s"]["max"]
        );
    }
    let mb = |v: &Value| v.as_f64().map_or("–".into(), |b| format!("{:.0} MB", b / 1e6));
    t += "\n| check | pass | measured |\n|---|---|---|\n";
    for c in r["checks"].as_array().into_iter().flatten() {
        let pass = if c["pass"] == true { "yes" } else { "**no**" };
        t +=
            &format!("| {} | {pass} | {} |\n", c["check"].as_str().unwrap_or(""), c["measured"].as_str().unwrap_or(""));
    }
    t += &format!(
        "\nResident memory: {} after warm-up, at most {} after ({:+.1}%). Recovery admitted {:.2}× the offered half capacity.\n",
        mb(&r["rss"]["after_warmup_bytes"]),
        mb(&r["rss"]["max_after_warmup_bytes"]),
        r["rss"]["growth"].as_f64().unwrap_or(0.0) * 100.0,
        r["phases"]["recovery"]["result"]["admitted_per_s"].as_f64().unwrap_or(0.0)
            / r["phases"]["recovery"]["rate"].as_f64().unwrap_or(1.0).max(1e-9)
    );
    t
}

fn plot(r: &Value) -> String {
    let timeline = r["timeline"].as_array().cloned().unwrap_or_default();
    let series = |name: &str, key: &str, scale: f64| Series {
        name: name.into(),
        points: timeline.iter().filter_map(|p| Some((p["t"].as_f64()?, p[key].as_f64()? * scale))).collect(),
    };
    let caption = crate::bench::caption(&json!({}), &r["machine"]);
    let rates = line_chart(
        &Chart {
            title: "Requests per second: offered (2x, then 0.5x capacity), admitted, shed with 503",
            x: Axis { label: "time", unit: "s", scale: Scale::Linear },
            y: Axis { label: "requests", unit: "per s", scale: Scale::Linear },
            caption: &caption,
        },
        &[series("offered", "offered", 1.0), series("admitted", "admitted", 1.0), series("shed", "shed", 1.0)],
    );
    let latency = line_chart(
        &Chart {
            title: "Latency of the admitted, from the intended send (by second answered)",
            x: Axis { label: "time", unit: "s", scale: Scale::Linear },
            y: Axis { label: "latency", unit: "s", scale: Scale::Linear },
            caption: &caption,
        },
        &[series("p50", "p50_s", 1.0), series("p99", "p99_s", 1.0)],
    );
    let memory = line_chart(
        &Chart {
            title: "Resident memory of the server (VmRSS)",
            x: Axis { label: "time", unit: "s", scale: Scale::Linear },
            y: Axis { label: "RSS", unit: "MB", scale: Scale::Linear },
            caption: &caption,
        },
        &[series("RSS", "rss_bytes", 1e-6)],
    );
    stack(&[rates, latency, memory])
}

/// SVG charts one under the other.
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
