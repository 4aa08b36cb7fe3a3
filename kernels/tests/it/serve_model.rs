//! Tests of `kernels::serve_model`: the tabular model server driven over loopback HTTP/1.1 (raw
//! sockets, nothing between the test and the server), its answers compared with the same model's
//! `FlatForest` (or `LinearModel`) predictions in-process, bit for bit.
//!
//! Covered: JSON rows by position and by name; every bad input a typed 4xx (never a 5xx); an unsigned,
//! untrusted or tampered registry version refused; micro-batching merges concurrent requests; a full
//! queue answers 503 with `Retry-After`; the batcher's branches, in-process and proven by batch counts
//! rather than timed (requests queued behind a busy scorer gathered into the next batch, a lone request
//! on an idle server scored at once while the deadline batcher waits out its delay, a saturated scorer
//! holding a batch open for the request it expects, a full queue handing the job back and the server
//! answering 503 with its configured `Retry-After`); a promotion is followed with zero failed requests
//! while clients fire continuously across the swap; a refused reload keeps the old model; a bounded
//! open-loop load run with zero errors; the `sovereign serve-model` command; Arrow IPC bodies (`data`).
//! The `sovereign` servers traced with `--deny-network` are in `serve_audit.rs`.

use crate::tmp::Tmp;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use kernels::ml::Matrix;
use kernels::ml::flat::FlatForest;
use kernels::ml::forest::{self, ForestConfig, RandomForest};
use kernels::ml::io::{self, ModelMeta};
use kernels::ml::linear::{self, LinearConfig, LinearModel};
use kernels::ml::tree::TreeConfig;
use kernels::registry::{ArtefactSource, Keyring, ModelRef, PushSpec, Registry, Signer, Stage, keygen};
use kernels::serve_model::batcher::{Job, Scored};
use kernels::serve_model::loadgen::{self, Connection, LoadConfig};
use kernels::serve_model::{BatchConfig, Batcher, Config, LoadedModel, ModelServer, ModelSource, ServerMetrics};
use serde_json::{Value, json};
use tokio::sync::oneshot::Receiver as OneshotReceiver;
use tokio::sync::oneshot::error::TryRecvError as OneshotTryRecvError;

const FEATURES: [&str; 4] = ["amount", "hour", "foreign", "velocity"];

// ------------------------------------------------------------------ fixtures

/// A fresh folder, removed on drop.
/// Seeded card-like rows: amount, hour, foreign (0/1), velocity; fraud when large and foreign or fast.
fn data(rows: usize, seed: u64) -> (Matrix, Vec<f32>) {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    let (mut x, mut y) = (Vec::with_capacity(rows * 4), Vec::with_capacity(rows));
    for _ in 0..rows {
        let amount = (next() * 6.0).exp() as f32;
        let hour = (next() * 24.0).floor() as f32;
        let foreign = f32::from(next() < 0.2);
        let velocity = (next() * 10.0) as f32;
        let fraud = (amount > 150.0 && foreign == 1.0) || velocity > 9.0 || next() < 0.02;
        x.extend_from_slice(&[amount, hour, foreign, velocity]);
        y.push(f32::from(fraud));
    }
    let names = FEATURES.iter().map(|s| s.to_string()).collect();
    (Matrix::new(rows, 4, x).unwrap().with_names(names).unwrap(), y)
}

fn train_forest(seed: u64, trees: usize) -> RandomForest {
    let (x, y) = data(1500, seed);
    let cfg = ForestConfig {
        n_trees: trees,
        tree: TreeConfig { max_depth: Some(6), ..TreeConfig::default() },
        seed,
        ..ForestConfig::default()
    };
    forest::fit(&x, &y, &cfg).unwrap()
}

/// Writes a forest model file into `dir/model.safetensors`.
fn forest_file(dir: &Path, seed: u64, trees: usize) -> (PathBuf, FlatForest) {
    std::fs::create_dir_all(dir).unwrap();
    let f = train_forest(seed, trees);
    let path = dir.join("model.safetensors");
    io::save(&path, &f, &ModelMeta::for_data(&data(10, 0).0)).unwrap();
    (path, FlatForest::from_forest(&f))
}

/// A registry holding `fraud@1` (production) and `fraud@2` (not promoted), signed by `release`.
struct Reg {
    tmp: Tmp,
    root: PathBuf,
    signer: Signer,
    keyring: Keyring,
    flat: Vec<FlatForest>,
}

impl Reg {
    fn new(tag: &str) -> Reg {
        let tmp = Tmp::new(tag);
        let keys = keygen(&tmp.join("keys"), "release").unwrap();
        let signer = Signer::load(&keys.secret).unwrap();
        let keyring = Keyring::load(&keys.public).unwrap();
        let root = tmp.join("reg");
        let reg = Registry::open(&root).unwrap();
        let mut flat = Vec::new();
        for v in 1..=2u64 {
            let (path, f) = forest_file(&tmp.join(&format!("m{v}")), v * 7, 8 + v as usize);
            reg.push(&PushSpec::new("fraud", v).artefact(ArtefactSource::path("model.safetensors", path)), &signer)
                .unwrap();
            flat.push(f);
        }
        let r = Reg { tmp, root, signer, keyring, flat };
        r.promote(1, Stage::Production);
        r
    }

    fn registry(&self) -> Registry {
        Registry::open(&self.root).unwrap()
    }

    fn promote(&self, version: u64, stage: Stage) {
        self.registry().promote(&ModelRef::new("fraud", version).unwrap(), stage, &self.signer, &self.keyring).unwrap();
    }

    fn source(&self, spec: &str) -> ModelSource {
        ModelSource::registry(&self.root, self.keyring.clone(), spec).unwrap()
    }

    /// Overwrites the stored bytes of `fraud@version`'s model artefact.
    fn tamper(&self, version: u64) {
        let reg = self.registry();
        let v = reg.verify_manifest(&ModelRef::new("fraud", version).unwrap(), &self.keyring).unwrap();
        let path = reg.store().path_of(&v.manifest.artefacts[0].digest);
        let mut bytes = std::fs::read(&path).unwrap();
        let n = bytes.len();
        bytes[n - 3] ^= 0x40;
        let mut perms = std::fs::metadata(&path).unwrap().permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        perms.set_readonly(false);
        std::fs::set_permissions(&path, perms).unwrap();
        std::fs::write(&path, bytes).unwrap();
    }
}

/// A server on a free loopback port in a thread of its own; stopped gracefully on drop.
struct Running {
    addr: SocketAddr,
    server: ModelServer,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    fn start(config: Config, source: ModelSource) -> Running {
        let server = ModelServer::start(config, source).expect("the model loads");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let s = server.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                kernels::serve_model::serve(listener, s, async move {
                    let _ = rx.await;
                })
                .await
                .unwrap();
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

fn quiet_config() -> Config {
    Config { reload_poll: None, ..Config::default() }
}

/// One HTTP/1.1 request on a new connection: status, headers (lower-case names), body.
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    let _ = s.write_all(body); // a server refusing a large body may close early
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let split = out.windows(4).position(|w| w == b"\r\n\r\n").map_or(out.len(), |i| i + 4);
    let head = String::from_utf8_lossy(&out[..split]).into_owned();
    let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let headers = head
        .split("\r\n")
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, out[split..].to_vec())
}

fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let (status, _, body) = http(addr, "GET", path, "application/json", b"");
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn post(addr: SocketAddr, path: &str, body: &Value) -> (u16, Value) {
    let (status, _, bytes) = http(addr, "POST", path, "application/json", body.to_string().as_bytes());
    let text = String::from_utf8_lossy(&bytes);
    (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("{status} {text:?}: {e}")))
}

fn predict_path(name: &str) -> String {
    format!("/v1/models/{name}:predict")
}

fn f32s(v: &Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

/// The value of an unlabelled metric line `name value` on a `/metrics` page.
fn metric(page: &str, name: &str) -> f64 {
    page.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no metric {name} in\n{page}"))
}

// ------------------------------------------------------------------ answers

#[test]
fn predictions_equal_the_in_process_flat_forest_by_position_and_by_name() {
    let reg = Reg::new("answers");
    let server = Running::start(quiet_config(), reg.source("fraud"));
    let (x, _) = data(40, 99);
    let want = reg.flat[0].predict_batch_all(&x).unwrap();
    let instances: Vec<Vec<f32>> = (0..x.rows()).map(|i| x.row(i).to_vec()).collect();
    let (status, body) = post(server.addr, &predict_path("fraud"), &json!({ "instances": instances }));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["model"], "fraud");
    assert_eq!(body["version"], 1);
    assert_eq!(f32s(&body["predictions"]), want, "bit-identical through JSON");

    // By name, keys in another order; one row with a missing value (a forest takes it).
    let rows: Vec<Value> = (0..x.rows())
        .map(|i| {
            let r = x.row(i);
            json!({"velocity": r[3], "foreign": r[2], "amount": r[0], "hour": if i == 3 { Value::Null } else { json!(r[1]) }})
        })
        .collect();
    let (status, body) = post(server.addr, &predict_path("fraud"), &json!({ "rows": rows }));
    assert_eq!(status, 200, "{body}");
    let mut with_missing = x.row(3).to_vec();
    with_missing[1] = f32::NAN;
    let got = f32s(&body["predictions"]);
    for i in 0..x.rows() {
        let expected = if i == 3 { reg.flat[0].predict_row(&with_missing).unwrap() } else { want[i] };
        assert_eq!(got[i], expected, "row {i}");
    }

    // Models, health, readiness, metrics.
    let (status, text) = get(server.addr, "/v1/models");
    assert_eq!(status, 200);
    let models: Value = serde_json::from_str(&text).unwrap();
    let m = &models["data"][0];
    assert_eq!((m["id"].as_str(), m["version"].as_u64(), m["kind"].as_str()), (Some("fraud"), Some(1), Some("forest")));
    assert_eq!(m["features"], json!(FEATURES));
    assert_eq!(get(server.addr, "/health").0, 200);
    let (status, text) = get(server.addr, "/ready");
    assert_eq!(status, 200, "{text}");
    let (status, page) = get(server.addr, "/metrics");
    assert_eq!(status, 200);
    for needle in [
        "sovereign_model_info{model=\"fraud\",version=\"1\",kind=\"forest\"",
        "sovereign_http_requests_total{route=\"/v1/models/:predict\",model=\"fraud\",code=\"200\"} 2",
        "sovereign_http_request_duration_seconds_count{route=\"/v1/models/:predict\",model=\"fraud\"} 2",
        "sovereign_build_info{component=\"serve-model\",version=",
        "sovereign_queue_depth{queue=\"batcher\"} 0",
        "sovereign_model_request_duration_seconds_bucket{model=\"fraud\",version=\"1\",le=\"+Inf\"} 2",
        "sovereign_model_batch_rows_bucket{le=\"64\"}",
        "# TYPE sovereign_model_request_duration_seconds histogram",
    ] {
        assert!(page.contains(needle), "/metrics lacks {needle:?}:\n{page}");
    }
    assert_eq!(metric(&page, "sovereign_model_rows_scored_total"), 80.0);
}

// ------------------------------------------------------------------ bad input

#[test]
fn every_bad_input_is_a_typed_4xx_and_never_a_5xx() {
    let reg = Reg::new("bad");
    let config = Config { max_body_bytes: 8 << 10, max_rows: 100, ..quiet_config() };
    let server = Running::start(config, reg.source("fraud@1"));
    let p = predict_path("fraud");
    let big = format!("{{\"instances\": [{}]}}", vec!["[1,2,3,4]"; 3000].join(","));
    let too_many = json!({ "instances": vec![[1, 2, 3, 4]; 101] }).to_string();
    let cases: Vec<(&str, &str, &str, String, u16, &str)> = vec![
        ("wrong count", "POST", p.as_str(), json!({"instances": [[1, 2, 3]]}).to_string(), 422, "wrong_feature_count"),
        (
            "wrong count row 1",
            "POST",
            p.as_str(),
            json!({"instances": [[1, 2, 3, 4], [1, 2, 3, 4, 5]]}).to_string(),
            422,
            "wrong_feature_count",
        ),
        (
            "unknown name",
            "POST",
            p.as_str(),
            json!({"rows": [{"amount": 1, "hour": 2, "foreign": 0, "velocity": 1, "colour": 3}]}).to_string(),
            422,
            "unknown_feature",
        ),
        (
            "missing name",
            "POST",
            p.as_str(),
            json!({"rows": [{"amount": 1, "hour": 2, "foreign": 0}]}).to_string(),
            422,
            "missing_feature",
        ),
        ("string", "POST", p.as_str(), json!({"instances": [[1, "2", 3, 4]]}).to_string(), 422, "non_numeric"),
        ("boolean", "POST", p.as_str(), json!({"instances": [[1, 2, true, 4]]}).to_string(), 422, "non_numeric"),
        ("nested", "POST", p.as_str(), json!({"instances": [[1, 2, [3], 4]]}).to_string(), 422, "non_numeric"),
        ("row not a list", "POST", p.as_str(), json!({"instances": [5]}).to_string(), 422, "bad_row"),
        (
            "out of f32 range",
            "POST",
            p.as_str(),
            r#"{"instances": [[1e39, 2, 3, 4]]}"#.to_string(),
            422,
            "out_of_range",
        ),
        ("not JSON", "POST", p.as_str(), "{\"instances\": [[1,2".to_string(), 400, "bad_json"),
        ("unknown key", "POST", p.as_str(), json!({"inputs": [[1, 2, 3, 4]]}).to_string(), 400, "bad_json"),
        ("no rows key", "POST", p.as_str(), "{}".to_string(), 400, "bad_shape"),
        (
            "both keys",
            "POST",
            p.as_str(),
            json!({"instances": [[1, 2, 3, 4]], "rows": []}).to_string(),
            400,
            "bad_shape",
        ),
        ("empty", "POST", p.as_str(), json!({"instances": []}).to_string(), 400, "empty_input"),
        ("too many rows", "POST", p.as_str(), too_many, 400, "too_many_rows"),
        ("body over the limit", "POST", p.as_str(), big, 413, "body_too_large"),
        (
            "unknown model",
            "POST",
            "/v1/models/churn:predict",
            json!({"instances": [[1, 2, 3, 4]]}).to_string(),
            404,
            "unknown_model",
        ),
        ("no :predict", "POST", "/v1/models/fraud", json!({"instances": [[1, 2, 3, 4]]}).to_string(), 404, "not_found"),
        ("unknown route", "GET", "/v2/whatever", String::new(), 404, "not_found"),
        ("wrong method", "DELETE", "/health", String::new(), 405, "method_not_allowed"),
    ];
    for (what, method, path, body, status, code) in &cases {
        let (got, _, bytes) = http(server.addr, method, path, "application/json", body.as_bytes());
        let text = String::from_utf8_lossy(&bytes);
        assert_eq!(got, *status, "{what}: {text}");
        let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {text:?}"));
        assert_eq!(v["error"]["code"], *code, "{what}: {text}");
        assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: {text}");
    }
    // The row and feature at fault are named.
    let (_, v) = post(server.addr, &p, &json!({"instances": [[1, 2, 3, 4], [1, "x", 3, 4]]}));
    assert_eq!((v["error"]["row"].as_u64(), v["error"]["feature"].as_str()), (Some(1), Some("hour")), "{v}");
    // Another content type.
    let (got, _, bytes) = http(server.addr, "POST", p.as_str(), "text/csv", b"1,2,3,4");
    assert_eq!(got, 415, "{}", String::from_utf8_lossy(&bytes));

    // Still healthy, and no 5xx was ever answered.
    assert_eq!(post(server.addr, &p, &json!({"instances": [[1, 2, 0, 4]]})).0, 200);
    let (_, page) = get(server.addr, "/metrics");
    assert!(!page.lines().any(|l| l.contains("status=\"5")), "a 5xx was answered:\n{page}");
}

#[test]
fn a_linear_model_refuses_missing_values_by_name() {
    let tmp = Tmp::new("linear");
    let (x, y) = data(300, 5);
    let model: LinearModel = linear::fit(&x, &y, &LinearConfig::default()).unwrap();
    let path = tmp.join("model.safetensors");
    io::save(&path, &model, &ModelMeta::for_data(&x)).unwrap();
    let server = Running::start(quiet_config(), ModelSource::file(&tmp.0, Some("fraud-linear")));
    let p = predict_path("fraud-linear");
    let (status, v) = post(server.addr, &p, &json!({"instances": [[1, null, 0, 4]]}));
    assert_eq!(status, 422, "{v}");
    assert_eq!((v["error"]["code"].as_str(), v["error"]["feature"].as_str()), (Some("missing_value"), Some("hour")));
    let (status, v) = post(server.addr, &p, &json!({"instances": [x.row(0), x.row(1)]}));
    assert_eq!(status, 200, "{v}");
    let want = model.predict(&Matrix::from_rows(&[x.row(0).to_vec(), x.row(1).to_vec()]).unwrap()).unwrap();
    assert_eq!(f32s(&v["predictions"]), want);
    assert_eq!(v["version"], Value::Null, "a model file has no registry version");
}

// ------------------------------------------------------------------ trust

#[test]
fn unsigned_untrusted_and_tampered_versions_are_refused() {
    let reg = Reg::new("trust");
    let start = |source: ModelSource| ModelServer::start(quiet_config(), source).map(|_| ()).unwrap_err().to_string();

    // A keyring without the signer's key.
    let other = keygen(&reg.tmp.join("other"), "other").unwrap();
    let stranger = ModelSource::registry(&reg.root, Keyring::load(&other.public).unwrap(), "fraud@1").unwrap();
    let e = start(stranger);
    assert!(e.contains("cannot serve fraud@1") && e.contains("not in the keyring"), "{e}");

    // No signature.
    let r = reg.registry();
    let digest = r.resolve(&ModelRef::new("fraud", 2).unwrap()).unwrap();
    std::fs::remove_file(r.signature_path(&digest)).unwrap();
    let e = start(reg.source("fraud@2"));
    assert!(e.contains("no signature"), "{e}");

    // Tampered artefact bytes.
    reg.tamper(1);
    let e = start(reg.source("fraud"));
    assert!(e.contains("cannot serve fraud@production") && e.contains("hashes to"), "{e}");

    // Nothing in the stage, no such version, not a registry.
    let e = start(reg.source("fraud@staging"));
    assert!(e.contains("no version of fraud is in stage staging"), "{e}");
    let e = start(reg.source("fraud@9"));
    assert!(e.contains("not found"), "{e}");
    let e = start(ModelSource::registry(reg.tmp.join("keys"), reg.keyring.clone(), "fraud").unwrap());
    assert!(e.contains("is not a registry"), "{e}");
    assert!(ModelSource::registry(&reg.root, reg.keyring.clone(), "fraud@prod").is_err());
}

// ------------------------------------------------------------------ batching and backpressure

#[test]
fn concurrent_single_rows_are_scored_in_shared_batches() {
    let reg = Reg::new("batch");
    let batch =
        BatchConfig { max_batch: 64, max_delay: Duration::from_millis(40), queue_capacity: 64, adaptive: false };
    let server = Running::start(Config { batch, ..quiet_config() }, reg.source("fraud"));
    let (x, _) = data(16, 3);
    let want = reg.flat[0].predict_batch_all(&x).unwrap();
    let barrier = Arc::new(Barrier::new(16));
    let threads: Vec<_> = (0..16)
        .map(|i| {
            let (addr, row, b) = (server.addr, x.row(i).to_vec(), barrier.clone());
            std::thread::spawn(move || {
                b.wait();
                post(addr, &predict_path("fraud"), &json!({ "instances": [row] }))
            })
        })
        .collect();
    for (i, t) in threads.into_iter().enumerate() {
        let (status, v) = t.join().unwrap();
        assert_eq!(status, 200, "{v}");
        assert_eq!(f32s(&v["predictions"]), vec![want[i]], "request {i}");
    }
    let (_, page) = get(server.addr, "/metrics");
    let batches = metric(&page, "sovereign_model_batch_requests_count");
    assert_eq!(metric(&page, "sovereign_model_batch_requests_sum"), 16.0);
    assert!(batches < 16.0, "16 concurrent requests were scored in {batches} batches (no batching):\n{page}");
}

#[test]
fn a_full_queue_answers_503_with_retry_after() {
    let reg = Reg::new("queue");
    let batch = BatchConfig { max_batch: 1, max_delay: Duration::ZERO, queue_capacity: 1, adaptive: true };
    let config = Config { batch, max_rows: 1_000_000, max_body_bytes: 64 << 20, ..quiet_config() };
    let server = Running::start(config, reg.source("fraud"));
    // A large request keeps the scorer busy while bursts of single rows arrive.
    let (x, _) = data(100_000, 1);
    let big = json!({ "instances": (0..x.rows()).map(|i| x.row(i).to_vec()).collect::<Vec<_>>() }).to_string();
    let mut seen_503 = false;
    for _attempt in 0..5 {
        let (addr, body) = (server.addr, big.clone());
        let busy = std::thread::spawn(move || {
            http(addr, "POST", &predict_path("fraud"), "application/json", body.as_bytes()).0
        });
        let stop = Arc::new(AtomicBool::new(false));
        let burst: Vec<_> = (0..24)
            .map(|_| {
                let (addr, stop) = (server.addr, stop.clone());
                std::thread::spawn(move || {
                    let mut statuses = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let (s, headers, body) = http(
                            addr,
                            "POST",
                            &predict_path("fraud"),
                            "application/json",
                            br#"{"instances":[[1,2,0,4]]}"#,
                        );
                        if s == 503 {
                            let retry = headers.iter().find(|(k, _)| k == "retry-after").map(|(_, v)| v.clone());
                            let v: Value = serde_json::from_slice(&body).unwrap();
                            assert_eq!(
                                (retry.as_deref(), v["error"]["code"].as_str()),
                                (Some("1"), Some("overloaded"))
                            );
                        }
                        statuses.push(s);
                    }
                    statuses
                })
            })
            .collect();
        let big_status = busy.join().unwrap();
        assert!(big_status == 200 || big_status == 503, "the large request: {big_status}");
        stop.store(true, Ordering::Relaxed);
        for t in burst {
            for s in t.join().unwrap() {
                assert!(s == 200 || s == 503, "status {s}");
                seen_503 |= s == 503;
            }
        }
        if seen_503 {
            break;
        }
    }
    assert!(seen_503, "no request was refused while the one-slot queue was busy");
    let (_, page) = get(server.addr, "/metrics");
    assert!(metric(&page, "sovereign_requests_shed_total{reason=\"queue_full\",priority=\"\"}") >= 1.0);
}

// ------------------------------------------------------------------ the batcher's branches, in-process

/// The forest of `forest_file` (seed 5, `trees` trees) loaded as the server loads it, and its flat form.
fn loaded_forest(tmp: &Tmp, trees: usize) -> (Arc<LoadedModel>, FlatForest) {
    let (path, flat) = forest_file(&tmp.0, 5, trees);
    let model = LoadedModel::from_bytes(std::fs::read(&path).unwrap(), "fraud", None, &path).unwrap();
    (Arc::new(model), flat)
}

/// A job of `rows` rows (`data`, row-major) that arrived at `arrived`, and where its answer comes.
fn job(model: &Arc<LoadedModel>, data: Vec<f32>, rows: usize, arrived: Instant) -> (Job, OneshotReceiver<Scored>) {
    let (reply, rx) = tokio::sync::oneshot::channel();
    (Job { model: model.clone(), data, rows, arrived, reply }, rx)
}

/// A job's answer, waited for at most `within` (`None` if there is none yet).
fn answer_within(rx: &mut OneshotReceiver<Scored>, within: Duration) -> Option<Scored> {
    let deadline = Instant::now() + within;
    loop {
        match rx.try_recv() {
            Ok(scored) => return Some(scored),
            Err(OneshotTryRecvError::Empty) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(1))
            }
            Err(OneshotTryRecvError::Empty) => return None,
            Err(OneshotTryRecvError::Closed) => panic!("a job was dropped without an answer"),
        }
    }
}

/// The scores of an answer that must have come.
fn scores(rx: &mut OneshotReceiver<Scored>, what: &str) -> Vec<f32> {
    match answer_within(rx, Duration::from_secs(60)) {
        Some(Ok((scores, _))) => scores,
        Some(Err(e)) => panic!("{what}: {e}"),
        None => panic!("{what}: no answer within 60 s"),
    }
}

/// The long batch's scores: the answer already taken (`early`) or the one still to come.
fn long_scores(early: Option<Scored>, rx: &mut OneshotReceiver<Scored>) -> Vec<f32> {
    match early {
        Some(scored) => scored.expect("the long batch is scored").0,
        None => scores(rx, "the long batch"),
    }
}

/// Waits (at most 60 s) until the scorer has started on its `n`-th batch: a batch's sizes are observed
/// just before it is scored, so from then on the scorer is busy with it until its answers are sent.
fn wait_until_scoring(metrics: &ServerMetrics, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while metrics.batch_rows.count() < n {
        assert!(Instant::now() < deadline, "the scorer never took batch {n}");
        std::thread::sleep(Duration::from_micros(200));
    }
}

#[test]
fn requests_queued_while_the_scorer_is_busy_are_gathered_into_the_next_batch() {
    // Zero delay, adaptive: the batcher never waits, yet requests that queued behind a long batch are
    // all taken into the next one (the backlog path). Proven, not timed: if the long batch is still
    // unanswered after every single row was queued, those rows were all waiting together.
    let tmp = Tmp::new("backlog");
    let (model, flat) = loaded_forest(&tmp, 20);
    let (x, _) = data(16, 9);
    let want = flat.predict_batch_all(&x).unwrap();
    for big in [50_000usize, 200_000, 800_000] {
        let metrics = Arc::new(ServerMetrics::default());
        let config = BatchConfig { max_batch: 64, max_delay: Duration::ZERO, queue_capacity: 64, adaptive: true };
        let batcher = Batcher::start(config, metrics.clone());
        let (long, mut long_rx) = job(&model, vec![0.0; big * 4], big, Instant::now());
        batcher.submit(long).unwrap();
        wait_until_scoring(&metrics, 1);
        let mut singles: Vec<_> = (0..16)
            .map(|i| {
                let (j, rx) = job(&model, x.row(i).to_vec(), 1, Instant::now());
                batcher.submit(j).unwrap();
                rx
            })
            .collect();
        let early = long_rx.try_recv().ok();
        let busy_throughout = early.is_none();
        assert_eq!(long_scores(early, &mut long_rx).len(), big);
        for (i, rx) in singles.iter_mut().enumerate() {
            assert_eq!(scores(rx, &format!("row {i}")), [want[i]], "row {i}");
        }
        if !busy_throughout {
            continue; // the long batch ended before the rows were queued: try a longer one
        }
        // Two batches: the long one, then all 16 rows together; every job scored exactly once.
        assert_eq!(metrics.batch_requests.count(), 2);
        assert_eq!(metrics.batch_requests.sum(), 17.0);
        assert_eq!(metrics.batch_rows.sum(), (big + 16) as f64);
        assert_eq!(metrics.rows_scored.load(Ordering::Relaxed), big as u64 + 16);
        assert_eq!(metrics.queue_depth.load(Ordering::Relaxed), 0);
        return;
    }
    panic!("even 800 000 rows were scored before 16 jobs could be queued");
}

#[test]
fn a_lone_request_on_an_idle_server_is_scored_at_once_and_the_deadline_batcher_waits() {
    let tmp = Tmp::new("lone");
    let (model, flat) = loaded_forest(&tmp, 8);
    let (x, _) = data(5, 4);
    let want = flat.predict_batch_all(&x).unwrap();
    // Adaptive with a 30 s delay: requests spaced by idle time are each scored alone, at once (each is
    // answered long before the delay; the bound is generous).
    let metrics = Arc::new(ServerMetrics::default());
    let config = BatchConfig { max_batch: 64, max_delay: Duration::from_secs(30), queue_capacity: 8, adaptive: true };
    let batcher = Batcher::start(config, metrics.clone());
    for (i, &expected) in want.iter().enumerate() {
        let (j, mut rx) = job(&model, x.row(i).to_vec(), 1, Instant::now());
        batcher.submit(j).unwrap();
        let answer = answer_within(&mut rx, Duration::from_secs(10))
            .unwrap_or_else(|| panic!("lone request {i} waited for company on an idle server"));
        assert_eq!(answer.unwrap().0, [expected]);
        // Idle long enough that even a scoring time stretched by a busy machine is far below the gap.
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!((metrics.batch_requests.count(), metrics.batch_requests.sum()), (5, 5.0), "one batch per request");
    // Not adaptive (the textbook deadline batcher): a lone request waits out the whole delay.
    let metrics = Arc::new(ServerMetrics::default());
    let delay = Duration::from_millis(250);
    let config = BatchConfig { max_batch: 64, max_delay: delay, queue_capacity: 8, adaptive: false };
    let batcher = Batcher::start(config, metrics.clone());
    let arrived = Instant::now();
    let (j, mut rx) = job(&model, x.row(0).to_vec(), 1, arrived);
    batcher.submit(j).unwrap();
    assert_eq!(scores(&mut rx, "the lone request"), [want[0]]);
    let waited = arrived.elapsed();
    assert!(waited >= delay * 9 / 10, "answered after {waited:?}, before the {delay:?} deadline");
    assert_eq!((metrics.batch_requests.count(), metrics.batch_requests.sum()), (1, 1.0));
}

#[test]
fn a_saturated_scorer_holds_a_batch_open_for_the_request_it_expects() {
    // The "wait when busy" branch. The batcher's estimates come from the jobs' arrival times: A is
    // scored alone (the scoring cost is now measured), then B arrives 1 ns after A, a stream far faster
    // than the scorer, so the scorer is saturated and the next request is due long before B's 20 s
    // deadline: B's batch stays open. C, sent 500 ms later, joins it; the gap C brings makes the stream
    // slow again, so B and C are scored together at once (at the latest at B's deadline).
    let tmp = Tmp::new("wait");
    let (model, flat) = loaded_forest(&tmp, 8);
    let (x, _) = data(3, 6);
    let want = flat.predict_batch_all(&x).unwrap();
    let metrics = Arc::new(ServerMetrics::default());
    let config = BatchConfig { max_batch: 64, max_delay: Duration::from_secs(20), queue_capacity: 8, adaptive: true };
    let batcher = Batcher::start(config, metrics.clone());
    let t0 = Instant::now();
    let (a, mut a_rx) = job(&model, x.row(0).to_vec(), 1, t0);
    batcher.submit(a).unwrap();
    assert_eq!(
        answer_within(&mut a_rx, Duration::from_secs(10)).expect("A, alone on an idle scorer, at once").unwrap().0,
        [want[0]]
    );
    let (b, mut b_rx) = job(&model, x.row(1).to_vec(), 1, t0 + Duration::from_nanos(1));
    batcher.submit(b).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(b_rx.try_recv().is_err(), "B was scored without waiting for the request it expected");
    let (c, mut c_rx) = job(&model, x.row(2).to_vec(), 1, Instant::now());
    batcher.submit(c).unwrap();
    let (b_scores, c_scores) = (scores(&mut b_rx, "B, once C joined"), scores(&mut c_rx, "C"));
    assert_eq!((b_scores, c_scores), (vec![want[1]], vec![want[2]]));
    // Batches {A} and {B, C}.
    assert_eq!((metrics.batch_requests.count(), metrics.batch_requests.sum()), (2, 3.0));
    assert_eq!(metrics.rows_scored.load(Ordering::Relaxed), 3);
}

#[test]
fn a_full_queue_hands_the_job_back_and_the_server_answers_503_with_its_retry_after() {
    // The batcher: with one queue slot, while a long batch is scored, the first job queues and the
    // second is handed back to the caller, untouched.
    let tmp = Tmp::new("full");
    let (model, flat) = loaded_forest(&tmp, 40);
    let (x, _) = data(2, 12);
    let want = flat.predict_batch_all(&x).unwrap();
    let config = BatchConfig { max_batch: 1, max_delay: Duration::ZERO, queue_capacity: 1, adaptive: true };
    let mut proven = false;
    for big in [50_000usize, 200_000, 800_000] {
        let metrics = Arc::new(ServerMetrics::default());
        let batcher = Batcher::start(config, metrics.clone());
        let (long, mut long_rx) = job(&model, vec![0.0; big * 4], big, Instant::now());
        batcher.submit(long).unwrap();
        wait_until_scoring(&metrics, 1);
        let (first, mut first_rx) = job(&model, x.row(0).to_vec(), 1, Instant::now());
        batcher.submit(first).expect("the one free slot");
        let (second, mut second_rx) = job(&model, x.row(1).to_vec(), 1, Instant::now());
        let refused = batcher.submit(second);
        let early = long_rx.try_recv().ok();
        let busy_throughout = early.is_none();
        assert_eq!(long_scores(early, &mut long_rx).len(), big);
        assert_eq!(scores(&mut first_rx, "the queued job"), [want[0]]);
        if !busy_throughout {
            continue;
        }
        let back = refused.expect_err("a second job while the only slot is taken");
        assert_eq!((back.rows, back.data.as_slice()), (1, x.row(1)), "the job handed back is the one submitted");
        drop(back);
        assert!(matches!(second_rx.try_recv(), Err(OneshotTryRecvError::Closed)), "the refused job is not scored");
        assert_eq!(metrics.batch_requests.count(), 2, "the long batch and the queued job");
        assert_eq!(metrics.queue_depth.load(Ordering::Relaxed), 0);
        proven = true;
        break;
    }
    assert!(proven, "even 800 000 rows were scored before two jobs could be submitted");

    // Over HTTP: the refusal is a 503 with the configured Retry-After, `overloaded`, and counted.
    let batch = BatchConfig { max_batch: 1, max_delay: Duration::ZERO, queue_capacity: 1, adaptive: true };
    let config = Config { batch, max_rows: 1_000_000, max_body_bytes: 64 << 20, retry_after_secs: 7, ..quiet_config() };
    let server = Running::start(config, ModelSource::file(&tmp.0, Some("fraud")));
    let path = predict_path("fraud");
    for big in [100_000usize, 400_000] {
        let metrics = server.server.metrics();
        let scored_before = metrics.rows_scored.load(Ordering::Relaxed);
        let rejected_before = metrics.rejected.load(Ordering::Relaxed);
        let batches_before = metrics.batch_rows.count();
        let (xb, _) = data(big, 2);
        let body = json!({ "instances": (0..big).map(|i| xb.row(i).to_vec()).collect::<Vec<_>>() }).to_string();
        let (addr, p) = (server.addr, path.clone());
        let long = std::thread::spawn(move || http(addr, "POST", &p, "application/json", body.as_bytes()).0);
        wait_until_scoring(metrics, batches_before + 1);
        let (addr, p) = (server.addr, path.clone());
        let queued = std::thread::spawn(move || post(addr, &p, &json!({"instances": [[1, 2, 0, 4]]})));
        let deadline = Instant::now() + Duration::from_secs(60);
        while metrics.queue_depth.load(Ordering::Relaxed) < 1 {
            assert!(Instant::now() < deadline, "the second request never queued");
            std::thread::sleep(Duration::from_micros(200));
        }
        // The depth is counted just before the job enters the queue; let it get there.
        std::thread::sleep(Duration::from_millis(20));
        let (status, headers, bytes) =
            http(server.addr, "POST", &path, "application/json", br#"{"instances":[[5,6,1,2]]}"#);
        let busy_throughout = metrics.rows_scored.load(Ordering::Relaxed) == scored_before;
        assert_eq!(long.join().unwrap(), 200);
        assert_eq!(queued.join().unwrap().0, 200);
        if !busy_throughout {
            assert!(status == 200 || status == 503, "{status}");
            continue;
        }
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(status, 503, "{v}");
        let retry = headers.iter().find(|(k, _)| k == "retry-after").map(|(_, v)| v.as_str());
        assert_eq!((retry, v["error"]["code"].as_str()), (Some("7"), Some("overloaded")), "{v}");
        assert!(v["error"]["message"].as_str().unwrap().contains("queue is full"), "{v}");
        assert_eq!(metrics.rejected.load(Ordering::Relaxed), rejected_before + 1);
        let (_, page) = get(server.addr, "/ready");
        assert!(page.contains("ready"), "still ready after refusing: {page}");
        return;
    }
    panic!("even 400 000 rows were scored before a queued and a refused request could be sent");
}

// ------------------------------------------------------------------ hot reload

#[test]
fn a_promotion_is_followed_with_no_failed_request_across_the_swap() {
    let reg = Reg::new("swap");
    let config = Config { reload_poll: Some(Duration::from_millis(50)), ..Config::default() };
    let server = Running::start(config, reg.source("fraud"));
    let (x, _) = data(8, 11);
    let want: Vec<Vec<f32>> = reg.flat.iter().map(|f| f.predict_batch_all(&x).unwrap()).collect();
    assert_ne!(want[0], want[1], "the two versions must score differently");
    let body = json!({ "instances": (0..x.rows()).map(|i| x.row(i).to_vec()).collect::<Vec<_>>() }).to_string();
    let request = loadgen::post_request(server.addr, &predict_path("fraud"), "application/json", body.as_bytes());
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (addr, request, stop, want) = (server.addr, request.clone(), stop.clone(), want.clone());
            std::thread::spawn(move || {
                let mut conn = Connection::new(addr, Duration::from_secs(10));
                let (mut versions, mut failures) = (Vec::new(), Vec::new());
                while !stop.load(Ordering::Relaxed) {
                    match conn.roundtrip(&request) {
                        Ok((200, body)) => {
                            let v: Value = serde_json::from_slice(&body).unwrap();
                            let version = v["version"].as_u64().unwrap();
                            assert_eq!(f32s(&v["predictions"]), want[version as usize - 1], "version {version}");
                            versions.push(version);
                        }
                        Ok((status, body)) => failures.push(format!("{status} {}", String::from_utf8_lossy(&body))),
                        Err(e) => failures.push(e.to_string()),
                    }
                }
                (versions, failures)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    reg.promote(2, Stage::Production);
    let deadline = Instant::now() + Duration::from_secs(15);
    while server.server.current().version != Some(2) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for c in clients {
        let (versions, failures) = c.join().unwrap();
        assert!(failures.is_empty(), "failed requests across the swap: {failures:?}");
        assert!(versions.windows(2).all(|w| w[0] <= w[1]), "a client saw version 1 after version 2");
        assert_eq!(versions.first(), Some(&1));
        assert_eq!(versions.last(), Some(&2), "the promoted version was never served");
        total += versions.len();
    }
    assert!(total > 20, "only {total} requests were made");
    let (_, page) = get(server.addr, "/metrics");
    assert_eq!(metric(&page, "sovereign_model_reloads_total"), 1.0);
    assert!(page.contains("sovereign_model_info{model=\"fraud\",version=\"2\""), "{page}");
}

#[test]
fn admin_reload_rolls_back_and_refuses_a_tampered_version() {
    let reg = Reg::new("reload");
    let server = Running::start(quiet_config(), reg.source("fraud"));
    let reload = || post(server.addr, "/admin/reload", &json!({}));
    let (status, v) = reload();
    assert_eq!((status, v["changed"].as_bool()), (200, Some(false)), "{v}");

    reg.promote(2, Stage::Production);
    let (status, v) = reload();
    assert_eq!((status, v["changed"].as_bool(), v["version"].as_u64()), (200, Some(true), Some(2)), "{v}");
    assert_eq!(v["previous_version"], 1);

    // Roll back: version 1 promoted again is the most recent promotion.
    reg.promote(1, Stage::Production);
    let (status, v) = reload();
    assert_eq!((status, v["version"].as_u64()), (200, Some(1)), "{v}");

    // Version 2 promoted again, then its bytes tampered: refused, version 1 keeps serving.
    reg.promote(2, Stage::Production);
    reg.tamper(2);
    let (status, v) = reload();
    assert_eq!((status, v["error"]["code"].as_str()), (409, Some("reload_refused")), "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("hashes to"), "{v}");
    let (status, v) = post(server.addr, &predict_path("fraud"), &json!({"instances": [[100, 3, 1, 2]]}));
    assert_eq!((status, v["version"].as_u64()), (200, Some(1)), "{v}");
    let (_, page) = get(server.addr, "/metrics");
    assert_eq!(metric(&page, "sovereign_model_reload_failures_total"), 1.0);
}

// ------------------------------------------------------------------ load

#[test]
fn an_open_loop_load_run_at_a_fixed_rate_has_no_error() {
    let tmp = Tmp::new("load");
    let (_, flat) = forest_file(&tmp.0, 4, 20);
    let server = Running::start(quiet_config(), ModelSource::file(&tmp.0, Some("fraud")));
    let (x, _) = data(1, 8);
    let config = LoadConfig {
        addr: server.addr,
        path: predict_path("fraud"),
        body: json!({"instances": [x.row(0)]}).to_string().into_bytes(),
        rate: 400.0,
        duration: Duration::from_millis(1500),
        connections: 4,
        ..LoadConfig::default()
    };
    let report = loadgen::run(&config).unwrap();
    assert_eq!(report.errors, 0, "{}", report.to_json());
    assert!((540..=660).contains(&report.sent), "400/s for 1.5 s sent {}", report.sent);
    assert_eq!(report.latencies_us.len() as u64, report.sent);
    assert!(report.latencies_us.iter().zip(&report.service_us).all(|(l, s)| l.is_finite() && *s >= 0.0));
    let j = report.to_json();
    assert!(j["latency_us"]["p999"].as_f64().unwrap() >= j["latency_us"]["p50"].as_f64().unwrap());
    let (_, page) = get(server.addr, "/metrics");
    assert_eq!(metric(&page, "sovereign_model_rows_scored_total"), report.sent as f64);
    let _ = flat;
}

#[test]
fn quantiles_are_nearest_rank() {
    let v: Vec<f64> = (1..=1000).map(f64::from).collect();
    assert_eq!(loadgen::quantile(&v, 0.5), 500.0);
    assert_eq!(loadgen::quantile(&v, 0.99), 990.0);
    assert_eq!(loadgen::quantile(&v, 0.999), 999.0);
    assert_eq!(loadgen::quantile(&v, 1.0), 1000.0);
    assert_eq!(loadgen::quantile(&[], 0.5), 0.0);
}

// ------------------------------------------------------------------ Arrow IPC

#[cfg(feature = "data")]
#[test]
fn arrow_ipc_record_batches_are_scored_like_json() {
    use arrow::array::{Float32Array, Float64Array, Int32Array, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::ipc::writer::StreamWriter;

    let reg = Reg::new("arrow");
    let server = Running::start(quiet_config(), reg.source("fraud"));
    let (x, _) = data(50, 21);
    let want = reg.flat[0].predict_batch_all(&x).unwrap();
    let col = |j: usize| x.column(j);
    let encode = |batches: Vec<RecordBatch>| {
        let mut out = Vec::new();
        let mut w = StreamWriter::try_new(&mut out, &batches[0].schema()).unwrap();
        for b in &batches {
            w.write(b).unwrap();
        }
        w.finish().unwrap();
        drop(w);
        out
    };
    // Columns in another order, of several numeric types, in two batches.
    let schema = Arc::new(Schema::new(vec![
        Field::new("velocity", DataType::Float64, false),
        Field::new("amount", DataType::Float32, false),
        Field::new("hour", DataType::Int32, true),
        Field::new("foreign", DataType::Float32, false),
    ]));
    let batch = |range: std::ops::Range<usize>| {
        RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Float64Array::from(col(3)[range.clone()].iter().map(|&v| f64::from(v)).collect::<Vec<_>>())),
                Arc::new(Float32Array::from(col(0)[range.clone()].to_vec())),
                Arc::new(Int32Array::from(col(1)[range.clone()].iter().map(|&v| v as i32).collect::<Vec<_>>())),
                Arc::new(Float32Array::from(col(2)[range].to_vec())),
            ],
        )
        .unwrap()
    };
    let body = encode(vec![batch(0..20), batch(20..50)]);
    let (status, _, bytes) =
        http(server.addr, "POST", &predict_path("fraud"), kernels::serve_model::ARROW_STREAM, &body);
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(status, 200, "{v}");
    assert_eq!(f32s(&v["predictions"]), want);

    // A text column, and a missing one.
    let bad = Arc::new(Schema::new(vec![Field::new("amount", DataType::Utf8, false)]));
    let b = RecordBatch::try_new(bad, vec![Arc::new(StringArray::from(vec!["1"]))]).unwrap();
    let (status, _, bytes) =
        http(server.addr, "POST", &predict_path("fraud"), kernels::serve_model::ARROW_STREAM, &encode(vec![b]));
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        (status, v["error"]["code"].as_str(), v["error"]["feature"].as_str()),
        (422, Some("non_numeric"), Some("amount")),
        "{v}"
    );
    let only_amount = Arc::new(Schema::new(vec![Field::new("amount", DataType::Float32, false)]));
    let b = RecordBatch::try_new(only_amount, vec![Arc::new(Float32Array::from(vec![1.0f32]))]).unwrap();
    let (status, _, bytes) =
        http(server.addr, "POST", &predict_path("fraud"), kernels::serve_model::ARROW_STREAM, &encode(vec![b]));
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        (status, v["error"]["code"].as_str(), v["error"]["feature"].as_str()),
        (422, Some("missing_feature"), Some("hour")),
        "{v}"
    );
    let (status, _, bytes) =
        http(server.addr, "POST", &predict_path("fraud"), kernels::serve_model::ARROW_STREAM, b"not arrow");
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!((status, v["error"]["code"].as_str()), (400, Some("bad_arrow")), "{v}");
}

// ------------------------------------------------------------------ the command

#[cfg(feature = "cli")]
#[test]
fn sovereign_serve_model_serves_a_registry_version_and_refuses_a_tampered_one() {
    use std::io::BufRead;

    let reg = Reg::new("cli");
    let bin = env!("CARGO_BIN_EXE_sovereign");
    let ring = reg.tmp.join("keys/release.pub");
    let mut child = std::process::Command::new(bin)
        .args(["serve-model", "--registry"])
        .arg(&reg.root)
        .arg("--keyring")
        .arg(&ring)
        .args(["--model", "fraud@production", "--port", "0", "--poll-ms", "0"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let addr: SocketAddr = loop {
        let line = lines.next().expect("serve-model exited before listening").unwrap();
        if let Some(url) = line.split("on http://").nth(1) {
            assert!(line.contains("serving fraud version 1 (forest, 4 features)"), "{line}");
            break url.split_whitespace().next().unwrap().parse().unwrap();
        }
    };
    let (x, _) = data(3, 2);
    let (status, v) = post(addr, &predict_path("fraud"), &json!({"instances": [x.row(0), x.row(1), x.row(2)]}));
    assert_eq!(status, 200, "{v}");
    assert_eq!(f32s(&v["predictions"]), reg.flat[0].predict_batch_all(&x).unwrap());
    // SIGTERM (to the child this test started) stops it gracefully.
    // SAFETY: kill(2) on the pid of our own child process.
    unsafe { libc_kill(child.id() as i32, 15) };
    let status = child.wait().unwrap();
    assert!(status.success(), "serve-model did not stop cleanly: {status}");

    reg.tamper(1);
    let out = std::process::Command::new(bin)
        .args(["serve-model", "--registry"])
        .arg(&reg.root)
        .arg("--keyring")
        .arg(&ring)
        .args(["--model", "fraud", "--port", "0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot serve fraud@production") && stderr.contains("hashes to"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[cfg(feature = "cli")]
unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}
