//! Load test of `kernels::serve_model` on loopback as JSON (the Rust side of `cargo xtask bench serve-model`).
//!
//! References: Gil Tene, "How NOT to Measure Latency" (2015) and wrk2 (open-loop load at a fixed rate,
//! latency from the intended send time, no coordinated omission); Crankshaw et al., "Clipper", NSDI 2017
//! (adaptive batching: the latency/throughput trade-off curve).
//!
//! usage: `serve_model_load DIR SECONDS [RATES…]` where DIR holds the fraud features written by
//! `ml_throughput gen` (`x.f32`, `y.f32`, `shape.json`). It fits a forest (100 trees, depth 10, the
//! c3w3 benchmark's), saves it, serves it in this process, and measures:
//! - in-process `FlatForest`: single-row latency (p50/p99 of 20,000 calls) and batch rows/s (the reference);
//! - open-loop single-row HTTP at each fixed rate (default 500, 1000, 2000 requests/s, 8 connections;
//!   each server first warmed up for 2 s at 200/s): p50/p99/p99.9 from the intended send time,
//!   throughput, errors;
//! - the micro-batching curve: at 4,000 requests/s (32 connections), latency and mean batch size for
//!   several delays (no batching; the backlog only; fixed delays of 200 µs, 1 ms and 5 ms; the adaptive
//!   batcher with 500 µs and 5 ms);
//! - batch throughput through the server: 10,000-row JSON requests, closed loop, rows/s, as a ratio to
//!   the in-process batch rows/s;
//! - `wrk` (closed loop, 2 threads, 16 connections) if it is installed: requests/s and its latency percentiles;
//! - the peer: `kernels::ml::gbm` (100 rounds, 31 leaves) behind this server against LightGBM with the same
//!   settings behind FastAPI + uvicorn (`autograder/peers/serve_model_peer.py`, started when
//!   `SERVE_MODEL_PEER_PYTHON` and `SERVE_MODEL_PEER_SCRIPT` are set), the same open-loop generator at the
//!   same rates, in this run.
//!
//! Prints one JSON object. Threads: the server's tokio runtime has 2 workers; rayon's pool follows
//! `RAYON_NUM_THREADS`.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use kernels::ml::Matrix;
use kernels::ml::flat::FlatForest;
use kernels::ml::forest::{self, ForestConfig};
use kernels::ml::gbm::{self, GbmConfig};
use kernels::ml::io::{self, ModelMeta};
use kernels::ml::tree::TreeConfig;
use kernels::serve_model::loadgen::{self, LoadConfig, quantile};
use kernels::serve_model::{BatchConfig, Config, ModelServer, ModelSource};
use serde_json::{Value, json};

const NAME: &str = "fraud";

/// Each server (and the peer) first takes this long of load at 200 requests/s.
const WARM_UP: Duration = Duration::from_secs(2);

fn read_f32(path: &Path) -> Vec<f32> {
    let bytes =
        std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e} (run `ml_throughput gen` first)", path.display()));
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// A server on a free port in its own thread and runtime; dropped = stopped.
struct Running {
    addr: SocketAddr,
    server: ModelServer,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    fn start(batch: BatchConfig, model_dir: &Path) -> Running {
        let config =
            Config { batch, reload_poll: None, max_rows: 1_000_000, max_body_bytes: 256 << 20, ..Config::default() };
        let server = ModelServer::start(config, ModelSource::file(model_dir, Some(NAME))).expect("model loads");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        listener.set_nonblocking(true).expect("nonblocking");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let s = server.clone();
        let thread = std::thread::spawn(move || {
            let rt =
                tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                kernels::serve_model::serve(listener, s, async move {
                    let _ = rx.await;
                })
                .await
                .expect("serve");
            });
        });
        Running { addr, server, stop: Some(tx), thread: Some(thread) }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn rows_json(x: &Matrix, range: std::ops::Range<usize>) -> Vec<u8> {
    json!({ "instances": range.map(|i| x.row(i).to_vec()).collect::<Vec<_>>() }).to_string().into_bytes()
}

/// Mean rows per scored batch so far, from the server's histogram.
fn mean_batch(server: &ModelServer) -> f64 {
    let h = &server.metrics().batch_rows;
    if h.count() == 0 { 0.0 } else { h.sum() / h.count() as f64 }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(dir), Some(seconds)) = (args.get(1), args.get(2).and_then(|s| s.parse::<f64>().ok())) else {
        eprintln!("usage: serve_model_load DIR SECONDS [RATES…]");
        std::process::exit(2);
    };
    let rates: Vec<f64> = if args.len() > 3 {
        args[3..].iter().map(|s| s.parse().expect("a rate")).collect()
    } else {
        vec![500.0, 1000.0, 2000.0]
    };
    let dir = Path::new(dir);
    let shape = std::fs::read_to_string(dir.join("shape.json")).expect("shape.json");
    let shape: Value = serde_json::from_str(&shape).expect("shape.json is JSON");
    let (rows, cols, train) = (
        shape["rows"].as_u64().unwrap() as usize,
        shape["cols"].as_u64().unwrap() as usize,
        shape["train_rows"].as_u64().unwrap() as usize,
    );
    let names: Vec<String> =
        shape["names"].as_array().unwrap().iter().map(|n| n.as_str().unwrap().to_string()).collect();
    let (xs, y) = (read_f32(&dir.join("x.f32")), read_f32(&dir.join("y.f32")));
    let x = Matrix::new(rows, cols, xs).unwrap().with_names(names).unwrap();
    let x_train = x.select_rows(&(0..train).collect::<Vec<_>>());
    let x_test = x.select_rows(&(train..rows).collect::<Vec<_>>());

    eprintln!("fitting the forest on {train} rows…");
    let cfg = ForestConfig {
        n_trees: 100,
        tree: TreeConfig { max_depth: Some(10), ..TreeConfig::default() },
        seed: 7,
        ..ForestConfig::default()
    };
    let f = forest::fit(&x_train, &y[..train], &cfg).expect("forest fits");
    let model_dir = dir.join("serve-model");
    std::fs::create_dir_all(&model_dir).expect("model folder");
    io::save(model_dir.join("model.safetensors"), &f, &ModelMeta::for_data(&x_train)).expect("saved");
    let flat = FlatForest::from_forest(&f);

    // In-process reference.
    let mut single = Vec::with_capacity(20_000);
    for i in 0..20_000 {
        let row = x_test.row(i % x_test.rows());
        let t = Instant::now();
        std::hint::black_box(flat.predict_row(std::hint::black_box(row)).unwrap());
        single.push(t.elapsed().as_secs_f64() * 1e6);
    }
    single.sort_by(f64::total_cmp);
    let mut batch_best = f64::INFINITY;
    for _ in 0..5 {
        let t = Instant::now();
        std::hint::black_box(flat.predict_batch_all(&x_test).unwrap());
        batch_best = batch_best.min(t.elapsed().as_secs_f64());
    }
    let in_process_rows_per_s = x_test.rows() as f64 / batch_best;
    let in_process = json!({
        "single_row_us": {"p50": quantile(&single, 0.5), "p99": quantile(&single, 0.99), "p999": quantile(&single, 0.999)},
        "batch_rows": x_test.rows(), "batch_rows_per_s": in_process_rows_per_s,
    });
    eprintln!("in-process: {in_process}");

    let duration = Duration::from_secs_f64(seconds);
    let one_row = rows_json(&x_test, 0..1);
    let open_loop_for = |server: &Running, rate: f64, connections: usize, duration: Duration| {
        let report = loadgen::run(&LoadConfig {
            addr: server.addr,
            path: format!("/v1/models/{NAME}:predict"),
            body: one_row.clone(),
            rate,
            duration,
            connections,
            ..LoadConfig::default()
        })
        .expect("load run");
        let mut j = report.to_json();
        j["mean_batch_rows"] = json!(mean_batch(&server.server));
        j["connections"] = json!(connections);
        j
    };
    let open_loop_with =
        |server: &Running, rate: f64, connections: usize| open_loop_for(server, rate, connections, duration);
    let open_loop = |server: &Running, rate: f64| open_loop_with(server, rate, 8);
    let warm_up = |server: &Running| open_loop_for(server, 200.0, 8, WARM_UP);

    // Open-loop single rows at fixed rates (default batching).
    let mut fixed = Vec::new();
    {
        let server = Running::start(BatchConfig::default(), &model_dir);
        let _ = warm_up(&server);
        for &rate in &rates {
            let j = open_loop(&server, rate);
            eprintln!("open loop {rate}/s: {}", j["latency_us"]);
            fixed.push(j);
        }
    }

    // The micro-batching curve at a high rate.
    let mut curve = Vec::new();
    let curve_rate = 4000.0;
    for (label, batch) in [
        ("no batching", BatchConfig { max_batch: 1, max_delay: Duration::ZERO, ..BatchConfig::default() }),
        ("backlog only (delay 0)", BatchConfig { max_delay: Duration::ZERO, ..BatchConfig::default() }),
        ("adaptive 500us", BatchConfig::default()),
        (
            "fixed 200us",
            BatchConfig { max_delay: Duration::from_micros(200), adaptive: false, ..BatchConfig::default() },
        ),
        ("fixed 1ms", BatchConfig { max_delay: Duration::from_millis(1), adaptive: false, ..BatchConfig::default() }),
        ("fixed 5ms", BatchConfig { max_delay: Duration::from_millis(5), adaptive: false, ..BatchConfig::default() }),
        ("adaptive 5ms", BatchConfig { max_delay: Duration::from_millis(5), ..BatchConfig::default() }),
    ] {
        let server = Running::start(batch, &model_dir);
        let mut j = open_loop_with(&server, curve_rate, 32);
        j["config"] = json!(label);
        j["max_delay_us"] = json!(batch.max_delay.as_secs_f64() * 1e6);
        eprintln!("curve {label}: {} mean batch {}", j["latency_us"], j["mean_batch_rows"]);
        curve.push(j);
    }

    // Batch throughput through the server: 10,000-row requests, closed loop.
    let batch_rows = 10_000.min(x_test.rows());
    let server = Running::start(BatchConfig::default(), &model_dir);
    let big = rows_json(&x_test, 0..batch_rows);
    let report = loadgen::run(&LoadConfig {
        addr: server.addr,
        path: format!("/v1/models/{NAME}:predict"),
        body: big.clone(),
        rate: 0.0,
        duration,
        connections: 2,
        timeout: Duration::from_secs(60),
        ..LoadConfig::default()
    })
    .expect("batch load run");
    let server_rows_per_s = report.ok as f64 * batch_rows as f64 / report.elapsed_s;
    let through_server = json!({
        "rows_per_request": batch_rows, "request_bytes": big.len(), "requests": report.ok, "errors": report.errors,
        "rows_per_s": server_rows_per_s, "ratio_to_in_process": server_rows_per_s / in_process_rows_per_s,
        "latency_us": report.to_json()["service_us"],
    });
    eprintln!("through the server: {through_server}");

    // wrk, closed loop, if installed.
    let wrk = run_wrk(&server, &one_row, seconds);
    drop(server);

    // The peer comparison: the same boosting settings on both sides, the same generator and rates.
    eprintln!("fitting the booster for the peer comparison…");
    let booster = gbm::fit(&x_train, &y[..train], None, &GbmConfig::default()).expect("gbm fits");
    let gbm_dir = dir.join("serve-model-gbm");
    std::fs::create_dir_all(&gbm_dir).expect("model folder");
    io::save(gbm_dir.join("model.safetensors"), &booster, &ModelMeta::for_data(&x_train)).expect("saved");
    let mut ours = Vec::new();
    {
        let server = Running::start(BatchConfig::default(), &gbm_dir);
        let _ = warm_up(&server);
        for &rate in &rates {
            ours.push(open_loop(&server, rate));
        }
    }
    let peer = run_peer(dir, &rates, &one_row, duration);
    let ratios: Vec<Value> = match &peer {
        Ok(points) => ours
            .iter()
            .zip(points)
            .map(|(o, p)| {
                let r = |k: &str| o["latency_us"][k].as_f64().unwrap_or(0.0) / p["latency_us"][k].as_f64().unwrap_or(f64::NAN);
                json!({"rate": o["rate"], "p50_ours_over_peer": r("p50"), "p99_ours_over_peer": r("p99"), "p999_ours_over_peer": r("p999")})
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    let peer_json = match peer {
        Ok(points) => json!({"name": "LightGBM 4 + FastAPI + uvicorn (1 worker)", "open_loop": points}),
        Err(reason) => json!({"skipped": reason}),
    };

    let out = json!({
        "model": {"kind": "forest", "trees": 100, "max_depth": 10, "features": cols, "train_rows": train},
        "in_process": in_process,
        "open_loop": fixed,
        "batching_curve": {"rate": curve_rate, "points": curve},
        "batch_through_server": through_server,
        "wrk": wrk,
        "peer_comparison": {"ours": {"name": "kernels gbm (100 rounds, 31 leaves) + serve_model", "open_loop": ours},
                            "peer": peer_json, "ratios": ratios},
    });
    println!("{}", serde_json::to_string_pretty(&out).unwrap());
}

/// `wrk -t2 -c16 -d… --latency -s post.lua URL`: requests/s and the latency percentiles it prints.
fn run_wrk(server: &Running, body: &[u8], seconds: f64) -> Value {
    if Command::new("wrk").arg("--version").output().is_err() {
        return json!({"skipped": "wrk is not installed (apt-get install wrk; cargo xtask ci installs it)"});
    }
    let script = std::env::temp_dir().join(format!("serve-model-wrk-{}.lua", std::process::id()));
    let lua = format!(
        "wrk.method = \"POST\"\nwrk.body = '{}'\nwrk.headers[\"Content-Type\"] = \"application/json\"\n",
        String::from_utf8_lossy(body)
    );
    std::fs::write(&script, lua).expect("wrk script");
    let out = Command::new("wrk")
        .args(["-t2", "-c16", &format!("-d{}s", seconds.ceil() as u64), "--latency", "-s"])
        .arg(&script)
        .arg(format!("http://{}/v1/models/{NAME}:predict", server.addr))
        .output();
    let _ = std::fs::remove_file(&script);
    let Ok(out) = out else { return json!({"skipped": "wrk failed to start"}) };
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let field = |prefix: &str| -> Option<String> {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix).map(|r| r.split_whitespace().next().unwrap_or("").to_string()))
    };
    let us = |s: Option<String>| -> Option<f64> {
        let s = s?;
        let (num, scale) = if let Some(v) = s.strip_suffix("us") {
            (v, 1.0)
        } else if let Some(v) = s.strip_suffix("ms") {
            (v, 1e3)
        } else if let Some(v) = s.strip_suffix('s') {
            (v, 1e6)
        } else {
            (s.as_str(), 1.0)
        };
        num.parse::<f64>().ok().map(|v| v * scale)
    };
    let non_2xx =
        text.lines().find_map(|l| l.trim().strip_prefix("Non-2xx or 3xx responses:").map(|r| r.trim().to_string()));
    json!({
        "requests_per_s": field("Requests/sec:").and_then(|s| s.parse::<f64>().ok()),
        "latency_us": {"p50": us(field("50%")), "p90": us(field("90%")), "p99": us(field("99%"))},
        "non_2xx": non_2xx.and_then(|s| s.parse::<u64>().ok()).unwrap_or(0),
        "raw": text,
    })
}

/// Starts the FastAPI + LightGBM peer (the child this process spawns, killed at the end), waits for its
/// `ready` line, and runs the open-loop generator against it at each rate.
fn run_peer(dir: &Path, rates: &[f64], body: &[u8], duration: Duration) -> Result<Vec<Value>, String> {
    use std::io::BufRead;
    let (Some(python), Some(script)) =
        (std::env::var_os("SERVE_MODEL_PEER_PYTHON"), std::env::var_os("SERVE_MODEL_PEER_SCRIPT"))
    else {
        return Err(
            "SERVE_MODEL_PEER_PYTHON / SERVE_MODEL_PEER_SCRIPT not set (cargo xtask bench serve-model sets them)"
                .into(),
        );
    };
    let port =
        std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| e.to_string())?.port();
    let mut child = Command::new(python)
        .arg(script)
        .arg(dir)
        .arg(port.to_string())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting the peer: {e}"))?;
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with("ready") {
                let _ = tx.send(());
            }
        }
    });
    let result = match rx.recv_timeout(Duration::from_secs(180)) {
        Err(_) => Err("the peer did not become ready in 180 s".to_string()),
        Ok(()) => {
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let config = |rate: f64| LoadConfig {
                addr,
                path: format!("/v1/models/{NAME}:predict"),
                body: body.to_vec(),
                rate,
                duration,
                connections: 8,
                ..LoadConfig::default()
            };
            let _ = loadgen::run(&LoadConfig { duration: WARM_UP, ..config(200.0) }); // warm-up
            rates
                .iter()
                .map(|&rate| {
                    let j = loadgen::run(&config(rate)).map(|r| r.to_json()).map_err(|e| e.to_string())?;
                    eprintln!("peer open loop {rate}/s: {}", j["latency_us"]);
                    Ok(j)
                })
                .collect()
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    result
}
