//! Tests of `kernels::tracking` against a real MLflow tracking server.
//!
//! The reference is MLflow itself: the REST API documented at
//! <https://mlflow.org/docs/latest/api_reference/rest-api.html>, served by the
//! `mlflow server` of the peers' venv (started by `kernels::tracking::LocalServer`), and what
//! MLflow's own Python client reads back (`tests/mlflow/readback.py`). Faults a
//! real server cannot be made to produce on demand (503s, dropped
//! connections, injected 400s) come from a loopback proxy (`kernels::tracking::FaultProxy`).
//! A missing MLflow fails the tests with a message naming `cargo xtask peers`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use kernels::Error;
use kernels::tracking::{Action, FaultProxy, LocalServer, LocalServerConfig, default_python, free_port};
use kernels::tracking::{
    CreateRegisteredModel, ModelStage, ModelVersion, ModelVersionStatus, Provenance, RegisterModel, RegisteredModel,
    SearchModels, TAG_MANIFEST_DIGEST, TAG_REGISTRY_REFERENCE, TAG_SIGNER_KEY_ID,
};
use kernels::tracking::{
    CreateRun, ErrorCode, LifecycleStage, LogBatch, Metric, MetricLogger, MetricLoggerConfig, RetryPolicy, Run,
    RunStatus, RunTag, SearchExperiments, SearchRuns, TrackingClient, TrackingConfig, ViewType, now_millis,
};

/// The server shared by every test that does not need its own: started on first use.
fn shared() -> &'static LocalServer {
    static SERVER: OnceLock<LocalServer> = OnceLock::new();
    SERVER.get_or_init(|| start_server(free_port(), &scratch_dir("shared")))
}

/// A server of its own on `port` with its store in `dir` (kept across restarts).
fn start_server(port: u16, dir: &Path) -> LocalServer {
    LocalServer::start(&LocalServerConfig { port, ..LocalServerConfig::new(dir) }).unwrap_or_else(|e| panic!("{e}"))
}

/// A fresh, empty folder under cargo's per-target scratch area.
fn scratch_dir(name: &str) -> PathBuf {
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("kernels-tracking").join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// Fast retries so that failure tests take milliseconds, not seconds.
fn quick_retry(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        multiplier: 2.0,
        jitter: 0.5,
    }
}

fn client_for(url: &str, retry: RetryPolicy) -> TrackingClient {
    TrackingClient::new(TrackingConfig::new(url).with_retry(retry).with_timeout(Duration::from_secs(30)))
        .expect("client")
}

fn shared_client() -> TrackingClient {
    client_for(&shared().url(), quick_retry(4))
}

/// A name no other test (or earlier run of this one) uses.
fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!("{prefix}-{}-{}-{}", std::process::id(), now_millis(), N.fetch_add(1, Ordering::Relaxed))
}

async fn new_run(client: &TrackingClient, prefix: &str) -> (String, Run) {
    let exp = client.create_experiment(&unique(prefix), &[]).await.unwrap();
    let run = client.create_run(&CreateRun::new(&exp).name(unique("run"))).await.unwrap();
    (exp, run)
}

/// Whether two floats are the same value, bit for bit (NaN equals NaN).
///
/// The workspace enables serde_json's `float_roundtrip`: without it, its float
/// parser is not correctly rounded and about one value in twenty came back 1 ulp off.
fn same_bits(a: f64, b: f64) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

fn assert_same_metrics(mut got: Vec<Metric>, want: &[Metric]) {
    got.sort_by_key(|m| (m.key.clone(), m.step, m.timestamp));
    let mut want = want.to_vec();
    want.sort_by_key(|m| (m.key.clone(), m.step, m.timestamp));
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!((&g.key, g.step, g.timestamp), (&w.key, w.step, w.timestamp));
        assert!(same_bits(g.value, w.value), "{}@{}: {} vs {}", g.key, g.step, g.value, w.value);
    }
}

fn mlflow_code(err: &Error) -> (u16, ErrorCode, u32) {
    match err {
        Error::Mlflow { status, error_code, attempts, .. } => (*status, error_code.clone(), *attempts),
        other => panic!("expected an MLflow error answer, got {other:?}"),
    }
}

// ---- pure: shapes, chunking, backoff ---------------------------------------

#[test]
fn types_read_mlflow_json_including_string_int64_and_nan() {
    // int64 as strings (protobuf's canonical JSON) and as numbers (MLflow's habit), NaN as a string.
    let json = r#"{"run": {
        "info": {"run_id": "abc", "run_uuid": "abc", "experiment_id": "3", "status": "FINISHED",
                 "start_time": "1700000000000", "end_time": 1700000000500,
                 "artifact_uri": "mlflow-artifacts:/3/abc/artifacts", "lifecycle_stage": "active"},
        "data": {"metrics": [{"key": "loss", "value": "NaN", "timestamp": "5", "step": "7"},
                             {"key": "acc", "value": 1, "timestamp": 6}],
                 "params": [{"key": "lr", "value": "0.1"}],
                 "tags": [{"key": "mlflow.runName", "value": "r"}]}}}"#;
    #[derive(serde::Deserialize)]
    struct Resp {
        run: Run,
    }
    let run = serde_json::from_str::<Resp>(json).unwrap().run;
    assert_eq!(run.info.status, RunStatus::Finished);
    assert_eq!(run.info.start_time, Some(1_700_000_000_000));
    assert_eq!(run.info.end_time, Some(1_700_000_000_500));
    assert!(run.data.metrics[0].value.is_nan());
    assert_eq!((run.data.metrics[0].timestamp, run.data.metrics[0].step), (5, 7));
    assert_eq!((run.data.metrics[1].value, run.data.metrics[1].step), (1.0, 0));
    assert_eq!(run.data.param("lr"), Some("0.1"));
    assert_eq!(run.data.tag("mlflow.runName"), Some("r"));
    assert_eq!(kernels::tracking::proxy_root(&run.info).unwrap(), "3/abc/artifacts");

    // Non-finite values are written the way protobuf's JSON parser (and so MLflow) reads them.
    let m = serde_json::to_value(Metric::at("x", f64::NAN, 1, 2)).unwrap();
    assert_eq!(m, serde_json::json!({"key": "x", "value": "NaN", "timestamp": 2, "step": 1}));
    let m = serde_json::to_value(Metric::at("x", f64::NEG_INFINITY, 1, 2)).unwrap();
    assert_eq!(m["value"], "-Infinity");
    assert_eq!(serde_json::to_value(ViewType::DeletedOnly).unwrap(), "DELETED_ONLY");
}

#[test]
fn log_batch_chunks_respect_every_server_limit_and_keep_order() {
    let batch = |m: usize, p: usize, t: usize| LogBatch {
        metrics: (0..m).map(|i| Metric::at("k", i as f64, i as i64, 1)).collect(),
        params: (0..p).map(|i| kernels::tracking::Param::new(format!("p{i}"), "v")).collect(),
        tags: (0..t).map(|i| RunTag::new(format!("t{i}"), "v")).collect(),
    };
    for (m, p, t, expected) in [
        (0, 0, 0, 0),
        (1, 0, 0, 1),
        (1000, 0, 0, 1),
        (1001, 0, 0, 2),
        (0, 100, 100, 1),
        (0, 101, 0, 2),
        (2500, 250, 0, 3),
        (900, 100, 0, 1),
        (901, 100, 0, 2),
        (3000, 0, 350, 4),
    ] {
        let b = batch(m, p, t);
        let chunks = b.chunks();
        assert_eq!(chunks.len(), expected, "{m} metrics, {p} params, {t} tags");
        for c in &chunks {
            assert!(c.metrics.len() <= 1000 && c.params.len() <= 100 && c.tags.len() <= 100);
            assert!(c.len() <= 1000);
        }
        let flat: Vec<Metric> = chunks.iter().flat_map(|c| c.metrics.clone()).collect();
        assert_eq!(flat, b.metrics, "metrics reassemble in order");
        let params: Vec<_> = chunks.iter().flat_map(|c| c.params.clone()).collect();
        assert_eq!(params, b.params);
        let tags: Vec<_> = chunks.iter().flat_map(|c| c.tags.clone()).collect();
        assert_eq!(tags, b.tags);
    }
}

#[test]
fn backoff_grows_exponentially_is_capped_and_jitter_only_shortens() {
    let p = RetryPolicy {
        max_attempts: 10,
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(1),
        multiplier: 2.0,
        jitter: 0.5,
    };
    let ms = |d: Duration| d.as_millis();
    assert_eq!([1, 2, 3, 4, 5, 9].map(|r| ms(p.backoff(r))), [100, 200, 400, 800, 1000, 1000]);
    assert_eq!(ms(p.jittered(3, 0.0)), 400);
    assert_eq!(ms(p.jittered(3, 0.999_999)), 200);
    for r in 1..8 {
        let d = p.delay(r);
        assert!(d <= p.backoff(r) && d >= p.backoff(r) / 2, "retry {r}: {d:?}");
    }
    assert!(RetryPolicy::is_retryable_status(429) && RetryPolicy::is_retryable_status(503));
    assert!(!RetryPolicy::is_retryable_status(400) && !RetryPolicy::is_retryable_status(404));
    assert_eq!(RetryPolicy::none().max_attempts, 1);
}

// ---- against the shared real server ----------------------------------------

#[tokio::test]
async fn experiments_create_get_search_paginate_delete_restore() {
    let c = shared_client();
    let prefix = unique("exp-life");
    let tags = [RunTag::new("team", "kernels")];
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(c.create_experiment(&format!("{prefix}-{i}"), &tags).await.unwrap());
    }
    let e = c.get_experiment(&ids[0]).await.unwrap();
    assert_eq!((e.name.as_str(), e.lifecycle_stage), (format!("{prefix}-0").as_str(), LifecycleStage::Active));
    assert!(e.tags.contains(&RunTag::new("team", "kernels")));
    assert!(e.creation_time.is_some());
    assert_eq!(c.get_experiment_by_name(&format!("{prefix}-3")).await.unwrap().experiment_id, ids[3]);
    assert_eq!(c.get_or_create_experiment(&format!("{prefix}-3")).await.unwrap(), ids[3]);

    // Duplicate name: RESOURCE_ALREADY_EXISTS, HTTP 400, not retried.
    let err = c.create_experiment(&format!("{prefix}-0"), &[]).await.unwrap_err();
    assert_eq!(mlflow_code(&err), (400, ErrorCode::ResourceAlreadyExists, 1));
    assert!(kernels::tracking::is_already_exists(&err));

    // Pagination: 5 matches in pages of 2 → 3 pages, in the requested order.
    let search = SearchExperiments {
        filter: Some(format!("name LIKE '{prefix}-%'")),
        max_results: Some(2),
        order_by: vec!["name ASC".into()],
        ..SearchExperiments::default()
    };
    let first = c.search_experiments(&search).await.unwrap();
    assert_eq!(first.items.len(), 2);
    assert!(first.next_page_token.is_some());
    let all = c.search_experiments_all(&search).await.unwrap();
    let names: Vec<_> = all.iter().map(|e| e.name.clone()).collect();
    assert_eq!(names, (0..5).map(|i| format!("{prefix}-{i}")).collect::<Vec<_>>());

    // Delete → only visible to DELETED_ONLY / ALL; restore → active again.
    c.delete_experiment(&ids[1]).await.unwrap();
    assert_eq!(c.get_experiment(&ids[1]).await.unwrap().lifecycle_stage, LifecycleStage::Deleted);
    assert_eq!(c.search_experiments_all(&search).await.unwrap().len(), 4);
    let deleted = SearchExperiments { view_type: ViewType::DeletedOnly, ..search.clone() };
    let d = c.search_experiments_all(&deleted).await.unwrap();
    assert_eq!(d.iter().map(|e| e.experiment_id.clone()).collect::<Vec<_>>(), [ids[1].clone()]);
    let every = SearchExperiments { view_type: ViewType::All, ..search.clone() };
    assert_eq!(c.search_experiments_all(&every).await.unwrap().len(), 5);
    c.restore_experiment(&ids[1]).await.unwrap();
    assert_eq!(c.get_experiment(&ids[1]).await.unwrap().lifecycle_stage, LifecycleStage::Active);

    c.rename_experiment(&ids[4], &format!("{prefix}-renamed")).await.unwrap();
    c.set_experiment_tag(&ids[4], "stage", "dev").await.unwrap();
    let e = c.get_experiment(&ids[4]).await.unwrap();
    assert_eq!(e.name, format!("{prefix}-renamed"));
    assert!(e.tags.contains(&RunTag::new("stage", "dev")));
}

#[tokio::test]
async fn missing_resources_are_typed_404s_without_retry() {
    let c = shared_client();
    let err = c.get_experiment("987654321").await.unwrap_err();
    assert_eq!(mlflow_code(&err), (404, ErrorCode::ResourceDoesNotExist, 1));
    assert!(kernels::tracking::is_not_found(&err));
    let err = c.get_experiment_by_name(&unique("no-such-exp")).await.unwrap_err();
    assert_eq!(mlflow_code(&err), (404, ErrorCode::ResourceDoesNotExist, 1));
    let err = c.get_run("0123456789abcdef0123456789abcdef").await.unwrap_err();
    assert_eq!(mlflow_code(&err), (404, ErrorCode::ResourceDoesNotExist, 1));
    // MLflow answers a history request for an unknown run with an empty history, not a 404.
    let h = c.get_metric_history("0123456789abcdef0123456789abcdef", "x", None, None).await.unwrap();
    assert!(h.items.is_empty() && h.next_page_token.is_none());
}

#[tokio::test]
async fn run_logged_from_rust_reads_back_identically_through_mlflows_python_client() {
    let c = shared_client();
    let (exp, run) = new_run(&c, "readback").await;
    let id = run.info.run_id.clone();
    assert_eq!(run.info.status, RunStatus::Running);
    assert_eq!(run.info.experiment_id, exp);

    // Single-entity endpoints.
    c.log_param(&id, "optimizer", "adamw").await.unwrap();
    c.set_tag(&id, "stage", "test").await.unwrap();
    c.set_tag(&id, "to-delete", "x").await.unwrap();
    c.delete_tag(&id, "to-delete").await.unwrap();
    let t0 = now_millis() - 10_000;
    let mut logged: BTreeMap<String, Vec<(i64, i64, f64)>> = BTreeMap::new();
    for step in 0..5 {
        let m = Metric::at("loss", 1.0 / (step as f64 + 1.0), step, t0 + step * 7);
        c.log_metric(&id, &m).await.unwrap();
        logged.entry(m.key.clone()).or_default().push((m.step, m.timestamp, m.value));
    }
    // Batch: values that stress round-tripping (tiny, huge, negative, non-dyadic, subnormal).
    // (-0.0 is not among them: MLflow's SQLite store gives it back as 0.0.)
    let mut batch = LogBatch::new().param("lr", "3e-4").param("layers", "12").tag("owner", "rust");
    for (step, v) in [(0, -2.5e-12), (3, 1.234_567_890_123_456_7e200), (10, 0.1 + 0.2), (11, 5e-324)] {
        let m = Metric::at("odd values", v, step, t0 + 1000 + step);
        logged.entry(m.key.clone()).or_default().push((m.step, m.timestamp, m.value));
        batch = batch.metric(m);
    }
    assert_eq!(c.log_batch(&id, &batch).await.unwrap(), 1);

    // Artifacts: one file at the root, a folder tree into `model/`.
    let dir = scratch_dir(&unique("artifacts-src"));
    let file = dir.join("notes.txt");
    std::fs::write(&file, "hello from kernels::tracking\n").unwrap();
    let tree = dir.join("tree");
    std::fs::create_dir_all(tree.join("sub/deeper")).unwrap();
    let weights: Vec<u8> = (0..70_000u32).map(|i| (i * 31 % 251) as u8).collect();
    std::fs::write(tree.join("weights.bin"), &weights).unwrap();
    std::fs::write(tree.join("sub/config.json"), r#"{"d": 576}"#).unwrap();
    std::fs::write(tree.join("sub/deeper/read me.md"), "# spaces survive\n").unwrap();
    assert_eq!(c.upload_artifact(&run.info, &file, None).await.unwrap(), "notes.txt");
    let up = c.upload_artifacts(&run.info, &tree, Some("model")).await.unwrap();
    assert_eq!(up, ["model/sub/config.json", "model/sub/deeper/read me.md", "model/weights.bin"]);

    let info = c.end_run(&id, RunStatus::Finished).await.unwrap();
    assert_eq!(info.status, RunStatus::Finished);
    assert!(info.end_time.is_some());

    // Rust's own view.
    let got = c.get_run(&id).await.unwrap();
    assert_eq!(got.data.param("lr"), Some("3e-4"));
    assert_eq!(got.data.tag("owner"), Some("rust"));
    assert_eq!(got.data.tag("to-delete"), None);
    assert_eq!(got.data.metric("loss"), Some(0.2));
    let listing = c.list_artifacts_recursive(&id, None).await.unwrap();
    let paths: Vec<_> = listing.iter().map(|f| f.path.clone()).collect();
    assert_eq!(paths, ["model/sub/config.json", "model/sub/deeper/read me.md", "model/weights.bin", "notes.txt"]);
    assert_eq!(c.read_artifact(&got.info, "model/weights.bin").await.unwrap(), weights);
    let out = scratch_dir(&unique("artifacts-dst"));
    let local = c.download_artifacts(&got.info, "model", &out).await.unwrap();
    assert_eq!(local, out.join("model"));
    assert_eq!(std::fs::read(local.join("weights.bin")).unwrap(), weights);
    assert_eq!(std::fs::read_to_string(local.join("sub/deeper/read me.md")).unwrap(), "# spaces survive\n");
    let one = c.download_artifacts(&got.info, "notes.txt", &out).await.unwrap();
    assert_eq!(std::fs::read_to_string(one).unwrap(), "hello from kernels::tracking\n");

    // MLflow's Python client must see exactly the same run.
    let output = std::process::Command::new(default_python())
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mlflow/readback.py"))
        .arg(&id)
        .env("MLFLOW_TRACKING_URI", shared().url())
        .output()
        .expect("run readback.py");
    assert!(output.status.success(), "readback.py failed:\n{}", String::from_utf8_lossy(&output.stderr));
    let back: serde_json::Value = serde_json::from_slice(&output.stdout).expect("readback JSON");

    assert_eq!(back["run_id"], id.as_str());
    assert_eq!(back["experiment_id"], exp.as_str());
    assert_eq!(back["status"], "FINISHED");
    assert_eq!(back["run_name"], got.info.run_name.as_str());
    assert_eq!(back["start_time"].as_i64(), got.info.start_time);
    assert_eq!(back["end_time"].as_i64(), info.end_time);
    let params: BTreeMap<String, String> = serde_json::from_value(back["params"].clone()).unwrap();
    let want: BTreeMap<_, _> =
        [("lr", "3e-4"), ("layers", "12"), ("optimizer", "adamw")].map(|(k, v)| (k.to_owned(), v.to_owned())).into();
    assert_eq!(params, want);
    let tags: BTreeMap<String, String> = serde_json::from_value(back["tags"].clone()).unwrap();
    let rust_tags: BTreeMap<_, _> = got.data.tags.iter().map(|t| (t.key.clone(), t.value.clone())).collect();
    assert_eq!(tags, rust_tags);
    assert_eq!(tags.get("owner").map(String::as_str), Some("rust"));
    assert_eq!(tags.get("stage").map(String::as_str), Some("test"));
    let metrics: BTreeMap<String, Vec<(i64, i64, f64)>> = serde_json::from_value(back["metrics"].clone()).unwrap();
    for v in logged.values_mut() {
        v.sort_by_key(|&(s, t, _)| (s, t));
    }
    assert_eq!(metrics.len(), logged.len());
    for (key, want) in &logged {
        let got = &metrics[key];
        assert_eq!(got.len(), want.len(), "{key}");
        for (g, w) in got.iter().zip(want) {
            assert_eq!((g.0, g.1), (w.0, w.1), "{key}");
            assert_eq!(g.2.to_bits(), w.2.to_bits(), "{key}: {} vs {}", g.2, w.2);
        }
    }
    let files: Vec<(String, i64)> = back["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["path"].as_str().unwrap().to_owned(), f["size"].as_i64().unwrap()))
        .collect();
    let ours: Vec<(String, i64)> = listing.iter().map(|f| (f.path.clone(), f.file_size.unwrap())).collect();
    assert_eq!(files, ours);
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    assert_eq!(back["contents"]["model/weights.bin"], hex(&weights).as_str());
    assert_eq!(back["contents"]["notes.txt"], hex(b"hello from kernels::tracking\n").as_str());
    assert_eq!(back["contents"]["model/sub/deeper/read me.md"], hex(b"# spaces survive\n").as_str());
}

#[tokio::test]
async fn metric_history_pages_through_every_point_in_order() {
    let c = shared_client();
    let (_, run) = new_run(&c, "history").await;
    let id = &run.info.run_id;
    let t0 = now_millis();
    let metrics: Vec<Metric> = (0..2500).map(|s| Metric::at("loss", (s as f64).sin(), s, t0 + s)).collect();
    let batch = LogBatch { metrics: metrics.clone(), ..LogBatch::default() };
    assert_eq!(c.log_batch(id, &batch).await.unwrap(), 3);
    c.log_metric(id, &Metric::at("nan", f64::NAN, 0, t0)).await.unwrap();

    let page = c.get_metric_history(id, "loss", Some(1000), None).await.unwrap();
    assert_eq!(page.items.len(), 1000);
    assert!(page.next_page_token.is_some());
    let all = c.get_metric_history_all(id, "loss", 1000).await.unwrap();
    assert_same_metrics(all, &metrics);
    // Unpaginated: the whole history in one answer.
    assert_eq!(c.get_metric_history(id, "loss", None, None).await.unwrap().items.len(), 2500);
    let nan = c.get_metric_history(id, "nan", None, None).await.unwrap();
    assert!(nan.items.len() == 1 && nan.items[0].value.is_nan());
}

#[tokio::test]
async fn search_runs_filters_orders_and_collects_all_pages() {
    let c = shared_client();
    let exp = c.create_experiment(&unique("search"), &[]).await.unwrap();
    for i in 0..7 {
        let run = c.create_run(&CreateRun::new(&exp).name(format!("r{i}")).tag("i", i.to_string())).await.unwrap();
        let batch = LogBatch::new()
            .metric(Metric::new("acc", f64::from(i) / 10.0, 0))
            .param("parity", if i % 2 == 0 { "even" } else { "odd" });
        c.log_batch(&run.info.run_id, &batch).await.unwrap();
    }
    let search =
        SearchRuns::new([exp.clone()]).filter("metrics.acc > 0.15").order_by("metrics.acc DESC").max_results(2);
    let first = c.search_runs(&search).await.unwrap();
    assert_eq!(first.items.len(), 2);
    assert!(first.next_page_token.is_some());
    let all = c.search_runs_all(&search).await.unwrap();
    let accs: Vec<f64> = all.iter().map(|r| r.data.metric("acc").unwrap()).collect();
    assert_eq!(accs, [0.6, 0.5, 0.4, 0.3, 0.2]);
    // Resuming from a page token continues where the first page stopped.
    let rest =
        c.search_runs_all(&SearchRuns { page_token: first.next_page_token.clone(), ..search.clone() }).await.unwrap();
    assert_eq!(rest.len(), 3);
    let odd = c.search_runs_all(&SearchRuns::new([exp.clone()]).filter("params.parity = 'odd'")).await.unwrap();
    assert_eq!(odd.len(), 3);
    assert!(odd.iter().all(|r| r.data.param("parity") == Some("odd")));
    // A bad filter is a 400 INVALID_PARAMETER_VALUE, not retried.
    let err = c.search_runs(&SearchRuns::new([exp]).filter("metrics.acc >>> 1")).await.unwrap_err();
    assert_eq!(mlflow_code(&err), (400, ErrorCode::InvalidParameterValue, 1));
}

#[tokio::test]
async fn runs_update_delete_and_restore() {
    let c = shared_client();
    let (exp, run) = new_run(&c, "run-life").await;
    let id = &run.info.run_id;
    let info = c.update_run(id, RunStatus::Killed, Some(now_millis())).await.unwrap();
    assert_eq!(info.status, RunStatus::Killed);
    assert!(info.status.is_terminal());
    c.delete_run(id).await.unwrap();
    assert_eq!(c.get_run(id).await.unwrap().info.lifecycle_stage, LifecycleStage::Deleted);
    let active = c.search_runs_all(&SearchRuns::new([exp.clone()])).await.unwrap();
    assert!(active.is_empty());
    let deleted = SearchRuns { run_view_type: ViewType::DeletedOnly, ..SearchRuns::new([exp]) };
    assert_eq!(c.search_runs_all(&deleted).await.unwrap().len(), 1);
    // Logging to a deleted run is refused (4xx): the error is typed and not retried.
    let err = c.log_metric(id, &Metric::new("x", 1.0, 0)).await.unwrap_err();
    let (status, _, attempts) = mlflow_code(&err);
    assert!((400..500).contains(&status), "{err}");
    assert_eq!(attempts, 1);
    c.restore_run(id).await.unwrap();
    assert_eq!(c.get_run(id).await.unwrap().info.lifecycle_stage, LifecycleStage::Active);
}

// ---- retries and chunking, observed through the fault proxy ----------------

#[tokio::test]
async fn two_503s_are_retried_then_the_call_succeeds() {
    let server = shared();
    let p = FaultProxy::start(server.port(), |path, n| {
        if path.contains("experiments/get-by-name") && n < 2 { Action::Respond(503) } else { Action::Forward }
    })
    .await;
    let c = client_for(&p.url(), quick_retry(5));
    let name = unique("retry-503");
    let id = c.create_experiment(&name, &[]).await.unwrap();
    assert_eq!(c.get_experiment_by_name(&name).await.unwrap().experiment_id, id);
    assert_eq!(p.hits("experiments/get-by-name"), 3);
    assert_eq!(p.hits("experiments/create"), 1);
}

#[tokio::test]
async fn dropped_connections_and_429_are_retried() {
    let server = shared();
    let p = FaultProxy::start(server.port(), |path, n| match (path.contains("experiments/create"), n) {
        (true, 0) => Action::Drop,
        (true, 1) => Action::Respond(429),
        _ => Action::Forward,
    })
    .await;
    let c = client_for(&p.url(), quick_retry(5));
    let id = c.create_experiment(&unique("retry-drop"), &[]).await.unwrap();
    assert!(!id.is_empty());
    assert_eq!(p.hits("experiments/create"), 3);
}

#[tokio::test]
async fn a_400_is_not_retried_and_persistent_503s_give_up_after_max_attempts() {
    let server = shared();
    let p = FaultProxy::start(server.port(), |path, _| {
        if path.contains("get-by-name") {
            Action::Respond(400)
        } else if path.contains("experiments/get") {
            Action::Respond(503)
        } else {
            Action::Forward
        }
    })
    .await;
    let c = client_for(&p.url(), quick_retry(4));
    let err = c.get_experiment_by_name("anything").await.unwrap_err();
    assert_eq!(mlflow_code(&err), (400, ErrorCode::InvalidParameterValue, 1));
    assert_eq!(p.hits("get-by-name"), 1);

    let err = c.get_experiment("0").await.unwrap_err();
    assert_eq!(mlflow_code(&err), (503, ErrorCode::TemporarilyUnavailable, 4));
    assert_eq!(p.hits("experiments/get?"), 4);
}

#[tokio::test]
async fn connection_refused_is_retried_then_reported_as_transport_error() {
    let port = free_port(); // nobody listens here
    let c = client_for(&format!("http://127.0.0.1:{port}"), quick_retry(3));
    let start = std::time::Instant::now();
    match c.get_experiment("0").await.unwrap_err() {
        Error::TrackingTransport { attempts, endpoint, .. } => {
            assert_eq!(attempts, 3);
            assert_eq!(endpoint, "experiments/get");
        }
        other => panic!("expected a transport error, got {other:?}"),
    }
    // Two backoffs of at most 20 ms and 40 ms happened.
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn log_batch_of_2500_metrics_and_250_params_lands_in_three_requests() {
    let server = shared();
    let p = FaultProxy::start(server.port(), |_, _| Action::Forward).await;
    let c = client_for(&p.url(), quick_retry(3));
    let (_, run) = new_run(&c, "chunking").await;
    let id = &run.info.run_id;
    let t0 = now_millis();
    let mut batch = LogBatch::new();
    for s in 0..2500 {
        batch = batch.metric(Metric::at(format!("m{}", s % 5), s as f64 * 0.5, s / 5, t0 + s));
    }
    for i in 0..250 {
        batch = batch.param(format!("p{i:03}"), format!("value {i}"));
    }
    assert_eq!(c.log_batch(id, &batch).await.unwrap(), 3);
    assert_eq!(p.hits("runs/log-batch"), 3);

    let got = c.get_run(id).await.unwrap();
    assert_eq!(got.data.params.len(), 250);
    assert_eq!(got.data.param("p249"), Some("value 249"));
    for k in 0..5 {
        let key = format!("m{k}");
        let h = c.get_metric_history(id, &key, None, None).await.unwrap().items;
        let want: Vec<Metric> = batch.metrics.iter().filter(|m| m.key == key).cloned().collect();
        assert_same_metrics(h, &want);
    }
}

// ---- the buffered logger ----------------------------------------------------

#[tokio::test]
async fn metric_logger_batches_by_size_and_interval_and_delivers_everything() {
    let server = shared();
    let p = FaultProxy::start(server.port(), |_, _| Action::Forward).await;
    let c = client_for(&p.url(), quick_retry(3));
    let (_, run) = new_run(&c, "logger").await;
    let id = run.info.run_id.clone();
    let cfg = MetricLoggerConfig { max_batch: 100, flush_interval: Duration::from_millis(200), ..Default::default() };
    let logger = MetricLogger::new(c.clone(), &id, cfg);
    for s in 0..1050 {
        logger.log("loss", 1.0 / (s as f64 + 1.0), s).unwrap();
    }
    logger.flush().await.unwrap();
    // 1050 metrics with batches of 100: 10 full batches sent by size, the rest by flush.
    assert_eq!(p.hits("runs/log-batch"), 11);
    assert_eq!(c.get_metric_history(&id, "loss", None, None).await.unwrap().items.len(), 1050);

    // The interval flushes a trickle without any explicit flush.
    logger.log("trickle", 1.0, 0).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while c.get_metric_history(&id, "trickle", None, None).await.unwrap().items.is_empty() {
        assert!(std::time::Instant::now() < deadline, "interval flush never happened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for s in 0..37 {
        logger.log("tail", f64::from(s), i64::from(s)).unwrap();
    }
    let stats = logger.close().await.unwrap();
    assert_eq!((stats.logged, stats.delivered, stats.rejected, stats.undelivered), (1088, 1088, 0, 0));
    assert_eq!(c.get_metric_history(&id, "tail", None, None).await.unwrap().items.len(), 37);

    // Dropping a logger without close still sends what it holds.
    let logger = MetricLogger::new(
        c.clone(),
        &id,
        MetricLoggerConfig { flush_interval: Duration::from_secs(3600), ..Default::default() },
    );
    for s in 0..25 {
        logger.log("dropped", f64::from(s), i64::from(s)).unwrap();
    }
    drop(logger);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while c.get_metric_history(&id, "dropped", None, None).await.unwrap().items.len() < 25 {
        assert!(std::time::Instant::now() < deadline, "drop did not flush");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn metric_logger_reports_metrics_the_server_rejects() {
    let c = shared_client();
    let (_, run) = new_run(&c, "logger-reject").await;
    c.delete_run(&run.info.run_id).await.unwrap();
    let logger = MetricLogger::new(c, &run.info.run_id, MetricLoggerConfig::default());
    logger.log("x", 1.0, 0).unwrap();
    match logger.close().await.unwrap_err() {
        Error::MetricsNotDelivered { rejected, undelivered, last } => {
            assert_eq!((rejected, undelivered), (1, 0));
            assert!(matches!(*last, Error::Mlflow { .. }), "{last}");
        }
        other => panic!("expected MetricsNotDelivered, got {other}"),
    }
}

/// Kills the server (SIGKILL, mid-run) while a training loop logs, restarts it
/// on the same port and store, and checks that every metric is on the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metric_logger_loses_nothing_when_the_server_is_killed_and_restarted() {
    let port = free_port();
    let dir = scratch_dir("restart");
    let first = start_server(port, &dir);
    let url = first.url();
    let retry = RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(500),
        multiplier: 2.0,
        jitter: 0.5,
    };
    let c =
        TrackingClient::new(TrackingConfig::new(&url).with_retry(retry).with_timeout(Duration::from_secs(5))).unwrap();
    let (_, run) = new_run(&c, "restart").await;
    let id = run.info.run_id.clone();
    let cfg = MetricLoggerConfig {
        max_batch: 40,
        flush_interval: Duration::from_millis(100),
        close_timeout: Duration::from_secs(180),
    };
    let logger = MetricLogger::new(c.clone(), &id, cfg);
    let value = |s: i64| (s as f64 * 0.37).cos() * 100.0;
    let steps = 600;
    let mut first = Some(first);
    let mut restarting = None;
    for s in 0..steps {
        logger.log("loss", value(s), s).unwrap();
        logger.log("lr", 1e-3 / (s as f64 + 1.0), s).unwrap();
        if s == 200 {
            first.take().unwrap().kill_hard();
        }
        if s == 350 {
            let dir = dir.clone();
            restarting = Some(std::thread::spawn(move || start_server(port, &dir)));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let second = tokio::task::spawn_blocking(move || restarting.unwrap().join().unwrap()).await.unwrap();
    let stats = logger.close().await.unwrap_or_else(|e| panic!("{e}\nserver log:\n{}", second.log_tail()));
    assert_eq!(stats.logged, 2 * steps as u64);
    assert_eq!(stats.delivered, stats.logged);
    assert!(stats.failed_sends > 0, "the outage was not noticed: {stats:?}");

    let mut loss = c.get_metric_history_all(&id, "loss", 250).await.unwrap();
    loss.sort_by_key(|m| m.step);
    assert_eq!(loss.len(), steps as usize);
    for (s, m) in loss.iter().enumerate() {
        assert_eq!(m.step, s as i64);
        assert!(same_bits(m.value, value(s as i64)), "step {s}: {} vs {}", m.value, value(s as i64));
    }
    assert_eq!(c.get_metric_history(&id, "lr", None, None).await.unwrap().items.len(), steps as usize);
    drop(second);
}

// ---- the Model Registry ----------------------------------------------------

/// A model folder as `kernels::ml::io` writes one (weights + JSON header), plus a nested file.
fn model_folder(tag: &str, weights: &[u8]) -> PathBuf {
    let dir = scratch_dir(&unique(tag));
    std::fs::write(dir.join("model.safetensors"), weights).unwrap();
    std::fs::write(dir.join("model.json"), format!("{{\"kind\": \"forest\", \"tag\": \"{tag}\"}}\n")).unwrap();
    std::fs::create_dir_all(dir.join("extra")).unwrap();
    std::fs::write(dir.join("extra/README.md"), "# fraud model\n").unwrap();
    dir
}

fn provenance(reference: &str, digest: &str) -> Provenance {
    Provenance {
        reference: Some(reference.to_owned()),
        manifest_digest: Some(digest.to_owned()),
        signer_key_id: Some("0123456789abcdef".to_owned()),
    }
}

#[test]
fn model_registry_types_read_mlflow_json() {
    let json = r#"{"model_version": {"name": "fraud", "version": "3", "creation_timestamp": 1700000000000,
        "last_updated_timestamp": "1700000000001", "current_stage": "Production", "source": "runs:/abc/model",
        "run_id": "abc", "status": "READY", "tags": [{"key": "k", "value": "v"}], "aliases": ["champion"]}}"#;
    #[derive(serde::Deserialize)]
    struct Resp {
        model_version: ModelVersion,
    }
    let v = serde_json::from_str::<Resp>(json).unwrap().model_version;
    assert_eq!((v.number(), v.stage(), v.status), (3, Some(ModelStage::Production), ModelVersionStatus::Ready));
    assert_eq!((v.tag("k"), v.aliases.as_slice()), (Some("v"), ["champion".to_owned()].as_slice()));
    assert_eq!(v.last_updated_timestamp, Some(1_700_000_000_001));
    let m: RegisteredModel =
        serde_json::from_str(r#"{"name": "fraud", "aliases": [{"alias": "champion", "version": "3"}]}"#).unwrap();
    assert_eq!((m.alias("champion"), m.alias("nope")), (Some("3"), None));
    assert_eq!(ModelStage::parse("staging"), Some(ModelStage::Staging));
    assert_eq!(ModelStage::parse("Deleted"), None);
    let tags = provenance("fraud@1", "ab").tags();
    let keys: Vec<&str> = tags.iter().map(|t| t.key.as_str()).collect();
    assert_eq!(keys, [TAG_REGISTRY_REFERENCE, TAG_MANIFEST_DIGEST, TAG_SIGNER_KEY_ID]);
    assert!(Provenance::default().tags().is_empty());
}

/// Two folders become versions 1 and 2 of one registered model; every field the server keeps is
/// read back over REST: source, run, tags, aliases, stages, search, the run's artifacts.
#[tokio::test]
async fn model_folders_become_model_versions_with_source_run_tags_aliases_and_stages() {
    let c = shared_client();
    let name = unique("fraud");
    let created = c
        .create_registered_model(&CreateRegisteredModel::new(&name).tag("team", "risk").description("card fraud"))
        .await
        .unwrap();
    assert_eq!((created.name.as_str(), created.tag("team")), (name.as_str(), Some("risk")));
    // A taken name is a typed error, and "create if missing" returns the existing model unchanged.
    let err = c.create_registered_model(&CreateRegisteredModel::new(&name)).await.unwrap_err();
    assert_eq!(mlflow_code(&err), (400, ErrorCode::ResourceAlreadyExists, 1));
    assert!(kernels::tracking::is_already_exists(&err));
    let again =
        c.get_or_create_registered_model(&CreateRegisteredModel::new(&name).tag("team", "other")).await.unwrap();
    assert_eq!((again.tag("team"), again.description.as_str()), (Some("risk"), "card fraud"));

    let w1: Vec<u8> = (0..4096u32).map(|i| (i * 7 % 251) as u8).collect();
    let w2: Vec<u8> = (0..5000u32).map(|i| (i * 13 % 241) as u8).collect();
    let mut spec1 = RegisterModel::new(&name, model_folder("v1", &w1))
        .experiment(unique("fraud-exp"))
        .provenance(provenance("fraud@1", &"a1".repeat(32)))
        .tag("dataset", "cards-2026-11")
        .alias("champion");
    spec1.log = LogBatch::new().metric(Metric::new("auc", 0.93, 0)).param("trees", "64");
    spec1.description = Some("first forest".to_owned());
    let r1 = c.register_model_folder(&spec1).await.unwrap();
    let spec2 = RegisterModel::new(&name, model_folder("v2", &w2))
        .experiment(spec1.experiment.clone())
        .provenance(provenance("fraud@2", &"b2".repeat(32)))
        .alias("challenger");
    let r2 = c.register_model_folder(&spec2).await.unwrap();

    let files = ["extra/README.md", "model.json", "model.safetensors"].map(|f| format!("model/{f}"));
    for (r, n, reference, digest) in [(&r1, "1", "fraud@1", "a1".repeat(32)), (&r2, "2", "fraud@2", "b2".repeat(32))] {
        assert!(r.created);
        assert_eq!(r.files, files);
        assert_eq!(r.source, format!("runs:/{}/model", r.run_id));
        let v = c.get_model_version(&name, n).await.unwrap();
        assert_eq!(
            (v.version.as_str(), v.source.as_str(), v.run_id.as_str()),
            (n, r.source.as_str(), r.run_id.as_str())
        );
        assert_eq!(v.status, ModelVersionStatus::Ready);
        assert_eq!(v.stage(), Some(ModelStage::None));
        assert_eq!(v.tag(TAG_REGISTRY_REFERENCE), Some(reference));
        assert_eq!(v.tag(TAG_MANIFEST_DIGEST), Some(digest.as_str()));
        assert_eq!(v.tag(TAG_SIGNER_KEY_ID), Some("0123456789abcdef"));
        assert_eq!(v, r.version);
        // The run carries the files and the same provenance.
        let run = c.get_run(&r.run_id).await.unwrap();
        assert_eq!(run.info.status, RunStatus::Finished);
        assert_eq!(run.data.tag(TAG_MANIFEST_DIGEST), Some(digest.as_str()));
        let listed: Vec<String> =
            c.list_artifacts_recursive(&r.run_id, None).await.unwrap().into_iter().map(|f| f.path).collect();
        assert_eq!(listed, files);
    }
    assert_eq!(r1.version.tag("dataset"), Some("cards-2026-11"));
    assert_eq!(r1.version.description, "first forest");
    assert_eq!(r1.version.aliases, ["champion"]);
    let run1 = c.get_run(&r1.run_id).await.unwrap();
    assert_eq!((run1.data.metric("auc"), run1.data.param("trees")), (Some(0.93), Some("64")));
    let weights = c.read_artifact(&run1.info, "model/model.safetensors").await.unwrap();
    assert_eq!(weights, w1);
    let uri = c.get_model_version_download_uri(&name, "1").await.unwrap();
    assert!(uri.contains(&r1.run_id) && uri.ends_with("model"), "{uri}");

    // Aliases: read, move, delete.
    assert_eq!(c.get_model_version_by_alias(&name, "champion").await.unwrap().version, "1");
    assert_eq!(c.get_model_version_by_alias(&name, "challenger").await.unwrap().version, "2");
    c.set_registered_model_alias(&name, "champion", "2").await.unwrap();
    let m = c.get_registered_model(&name).await.unwrap();
    assert_eq!((m.alias("champion"), m.alias("challenger")), (Some("2"), Some("2")));
    c.delete_registered_model_alias(&name, "challenger").await.unwrap();
    // MLflow answers an unknown alias with 400 INVALID_PARAMETER_VALUE, not 404.
    let err = c.get_model_version_by_alias(&name, "challenger").await.unwrap_err();
    assert_eq!(mlflow_code(&err), (400, ErrorCode::InvalidParameterValue, 1));
    assert_eq!(c.get_model_version(&name, "2").await.unwrap().aliases, ["champion"]);

    // Stages (the pre-alias workflow): archive_existing moves the old Production version to Archived.
    let v = c.transition_model_version_stage(&name, "2", ModelStage::Production, false).await.unwrap();
    assert_eq!(v.stage(), Some(ModelStage::Production));
    let v = c.transition_model_version_stage(&name, "1", ModelStage::Production, true).await.unwrap();
    assert_eq!(v.current_stage, "Production");
    assert_eq!(c.get_model_version(&name, "2").await.unwrap().stage(), Some(ModelStage::Archived));
    let latest = c.get_latest_versions(&name, &[ModelStage::Production]).await.unwrap();
    assert_eq!(latest.iter().map(|v| v.version.as_str()).collect::<Vec<_>>(), ["1"]);

    // Tags, searches, deletes.
    c.set_model_version_tag(&name, "1", "validated", "yes").await.unwrap();
    assert_eq!(c.get_model_version(&name, "1").await.unwrap().tag("validated"), Some("yes"));
    c.set_registered_model_tag(&name, "owner", "fraud-team").await.unwrap();
    assert_eq!(c.get_registered_model(&name).await.unwrap().tag("owner"), Some("fraud-team"));
    let search = SearchModels::filter(format!("name = '{name}'")).order_by("version_number DESC").max_results(1);
    let versions = c.search_model_versions_all(&search).await.unwrap();
    assert_eq!(versions.iter().map(|v| v.version.as_str()).collect::<Vec<_>>(), ["2", "1"]);
    let found = c.search_registered_models_all(&SearchModels::filter(format!("name = '{name}'"))).await.unwrap();
    assert_eq!(found.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(), [name.as_str()]);
    let by_digest = c.find_version_by_manifest(&name, &"b2".repeat(32)).await.unwrap().unwrap();
    assert_eq!(by_digest.version, "2");
    assert!(c.find_version_by_manifest(&name, &"cc".repeat(32)).await.unwrap().is_none());

    c.delete_model_version(&name, "2").await.unwrap();
    let err = c.get_model_version(&name, "2").await.unwrap_err();
    assert_eq!(mlflow_code(&err).1, ErrorCode::ResourceDoesNotExist);
    c.delete_registered_model(&name).await.unwrap();
    let err = c.get_registered_model(&name).await.unwrap_err();
    assert_eq!(mlflow_code(&err), (404, ErrorCode::ResourceDoesNotExist, 1));
}

/// Publishing the same registry version twice gives back the first MLflow version; MLflow's own
/// Python client resolves `models:/NAME@ALIAS` and downloads exactly the bytes that were logged.
#[tokio::test]
async fn republishing_a_manifest_is_idempotent_and_mlflows_python_client_loads_the_alias() {
    let c = shared_client();
    let name = unique("churn");
    let weights: Vec<u8> = (0..3000u32).map(|i| (i * 31 % 256) as u8).collect();
    let folder = model_folder("churn", &weights);
    let digest = "c3".repeat(32);
    let spec = RegisterModel::new(&name, &folder).provenance(provenance("churn@7", &digest)).alias("champion");
    let first = c.register_model_folder(&spec).await.unwrap();
    let second = c.register_model_folder(&spec).await.unwrap();
    assert!(first.created && !second.created);
    assert_eq!((second.version.version.as_str(), &second.run_id, &second.source), ("1", &first.run_id, &first.source));
    assert!(second.files.is_empty());
    let versions = c.search_model_versions_all(&SearchModels::filter(format!("name = '{name}'"))).await.unwrap();
    assert_eq!(versions.len(), 1);
    // Without reuse, the same files become a new version.
    let third = c.register_model_folder(&RegisterModel { reuse_existing: false, ..spec.clone() }).await.unwrap();
    assert_eq!((third.created, third.version.version.as_str()), (true, "2"));
    c.set_registered_model_alias(&name, "champion", "1").await.unwrap();

    let output = std::process::Command::new(default_python())
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mlflow/registry_readback.py"))
        .args([name.as_str(), "champion"])
        .env("MLFLOW_TRACKING_URI", shared().url())
        .output()
        .expect("run registry_readback.py");
    assert!(output.status.success(), "registry_readback.py failed:\n{}", String::from_utf8_lossy(&output.stderr));
    let back: serde_json::Value = serde_json::from_slice(&output.stdout).expect("readback JSON");
    assert_eq!(back["name"], name.as_str());
    assert_eq!(back["version"], "1");
    assert_eq!(back["source"], first.source.as_str());
    assert_eq!(back["run_id"], first.run_id.as_str());
    assert_eq!(back["status"], "READY");
    assert_eq!(back["tags"][TAG_MANIFEST_DIGEST], digest.as_str());
    assert_eq!(back["tags"][TAG_REGISTRY_REFERENCE], "churn@7");
    assert_eq!(back["aliases"]["champion"], "1");
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let contents = back["contents"].as_object().unwrap();
    let mut paths: Vec<&str> = contents.keys().map(String::as_str).collect();
    paths.sort_unstable();
    assert_eq!(paths, ["extra/README.md", "model.json", "model.safetensors"]);
    assert_eq!(contents["model.safetensors"], hex(&weights).as_str());
    assert_eq!(contents["extra/README.md"], hex(b"# fraud model\n").as_str());
}

#[tokio::test]
async fn model_registry_errors_are_typed_and_bad_folders_fail_before_any_request() {
    let c = shared_client();
    // MLflow refuses names with `/` or `:`.
    let err = c.create_registered_model(&CreateRegisteredModel::new("fraud/v1")).await.unwrap_err();
    assert_eq!(mlflow_code(&err), (400, ErrorCode::InvalidParameterValue, 1));
    let folder = model_folder("bad-name", b"w");
    let err = c.register_model_folder(&RegisterModel::new("a:b", &folder)).await.unwrap_err();
    assert_eq!(mlflow_code(&err).1, ErrorCode::InvalidParameterValue);
    let missing = unique("no-such-model");
    let err = c.get_registered_model(&missing).await.unwrap_err();
    assert_eq!(mlflow_code(&err), (404, ErrorCode::ResourceDoesNotExist, 1));
    let err = c.get_model_version(&missing, "1").await.unwrap_err();
    assert_eq!(mlflow_code(&err).1, ErrorCode::ResourceDoesNotExist);
    // A bad alias (MLflow reserves `latest` and `v<N>`).
    let name = unique("alias-check");
    c.register_model_folder(&RegisterModel::new(&name, &folder)).await.unwrap();
    let err = c.set_registered_model_alias(&name, "v1", "1").await.unwrap_err();
    assert_eq!(mlflow_code(&err).1, ErrorCode::InvalidParameterValue);

    // Nobody listens on this port: a bad folder is refused before any request, a good one is a
    // transport error from the first call.
    let down = client_for(&format!("http://127.0.0.1:{}", free_port()), quick_retry(2));
    let empty = scratch_dir(&unique("empty-model"));
    std::fs::create_dir_all(empty.join("only-a-dir")).unwrap();
    for bad in [empty.clone(), empty.join("does-not-exist"), folder.join("model.safetensors")] {
        match down.register_model_folder(&RegisterModel::new("fraud", &bad)).await.unwrap_err() {
            Error::InvalidParameter(msg) => assert!(msg.contains("model folder"), "{msg}"),
            other => panic!("{}: expected InvalidParameter, got {other:?}", bad.display()),
        }
    }
    match down.register_model_folder(&RegisterModel::new("fraud", &folder)).await.unwrap_err() {
        Error::TrackingTransport { endpoint, attempts, .. } => {
            assert_eq!((endpoint.as_str(), attempts), ("registered-models/create", 2));
        }
        other => panic!("expected a transport error, got {other:?}"),
    }
    match down.get_model_version_by_alias("fraud", "champion").await.unwrap_err() {
        Error::TrackingTransport { endpoint, .. } => assert_eq!(endpoint, "registered-models/alias"),
        other => panic!("expected a transport error, got {other:?}"),
    }
}

/// `sovereign registry mlflow-register`: a signed registry version lands in MLflow with its manifest
/// digest, reference and signer as version tags, its metrics on the run and its exact bytes as
/// artifacts; a second push is a no-op; a tampered version is refused before anything is sent.
#[cfg(feature = "cli")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_mlflow_register_publishes_a_verified_registry_version() {
    use kernels::registry::{ArtefactSource, Digest, Keyring, PushSpec, Registry, Signer, keygen};
    let dir = scratch_dir(&unique("cli-mlflow"));
    let keys = keygen(&dir.join("keys"), "release").unwrap();
    let reg = Registry::open(&dir.join("reg")).unwrap();
    let weights: Vec<u8> = (0..2048u32).map(|i| (i * 5 % 253) as u8).collect();
    let spec = PushSpec::new("fraud", 1)
        .artefact(ArtefactSource::bytes("model.safetensors", weights.clone()))
        .artefact(ArtefactSource::bytes("model.json", b"{\"kind\": \"gbm\"}".to_vec()))
        .metric("auc", 0.925);
    let pushed = reg.push(&spec, &Signer::load(&keys.secret).unwrap()).unwrap();
    reg.verify(&pushed.reference, &Keyring::load(&keys.public).unwrap()).unwrap();
    let name = unique("cli-fraud");
    let url = shared().url();
    let run_cli = |extra: &[&str]| {
        let mut cmd = assert_cmd::Command::cargo_bin("sovereign").expect("the sovereign binary (feature cli)");
        cmd.current_dir(&dir).args(["registry", "mlflow-register", "--registry", "reg", "fraud@1", "--keyring"]);
        cmd.arg(&keys.public).args(["--tracking-uri", url.as_str(), "--name", name.as_str(), "--alias", "champion"]);
        cmd.arg("--json");
        cmd.args(extra).env_remove("MLFLOW_TRACKING_URI").output().expect("run sovereign")
    };
    let json = |out: &std::process::Output| -> serde_json::Value {
        assert!(out.status.success(), "sovereign failed:\n{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("JSON on stdout")
    };
    let first = json(&tokio::task::block_in_place(|| run_cli(&[])));
    assert_eq!((first["created"].as_bool(), first["mlflow_version"].as_str()), (Some(true), Some("1")));
    assert_eq!(first["manifest"], pushed.digest.to_hex().as_str());

    let c = shared_client();
    let v = c.get_model_version_by_alias(&name, "champion").await.unwrap();
    assert_eq!(v.version, "1");
    assert_eq!(v.tag(TAG_MANIFEST_DIGEST), Some(pushed.digest.to_hex().as_str()));
    assert_eq!(v.tag(TAG_REGISTRY_REFERENCE), Some("fraud@1"));
    assert_eq!(v.tag(TAG_SIGNER_KEY_ID), Some(pushed.manifest.signer_key_id.as_str()));
    assert_eq!(v.source, format!("runs:/{}/model", v.run_id));
    let run = c.get_run(&v.run_id).await.unwrap();
    assert_eq!((run.data.metric("auc"), run.info.run_name.as_str()), (Some(0.925), "fraud@1"));
    assert_eq!(c.read_artifact(&run.info, "model/model.safetensors").await.unwrap(), weights);
    assert_eq!(c.read_artifact(&run.info, "model/model.json").await.unwrap(), b"{\"kind\": \"gbm\"}");

    // Again: the same manifest is already there.
    let again = json(&tokio::task::block_in_place(|| run_cli(&[])));
    assert_eq!((again["created"].as_bool(), again["mlflow_version"].as_str()), (Some(false), Some("1")));

    // A tampered artefact fails verification: nothing new reaches MLflow.
    let object = reg.store().path_of(&Digest::of(&weights));
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&object, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut bytes = std::fs::read(&object).unwrap();
    bytes[100] ^= 0x55;
    std::fs::write(&object, bytes).unwrap();
    let out = tokio::task::block_in_place(|| run_cli(&["--force"]));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("fraud@1") && stderr.contains("hashes to"), "{stderr}");
    let versions = c.search_model_versions_all(&SearchModels::filter(format!("name = '{name}'"))).await.unwrap();
    assert_eq!(versions.len(), 1);
}
