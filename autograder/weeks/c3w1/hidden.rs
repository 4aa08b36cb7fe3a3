//! Hidden tests of week c3w1 (the tracking protocol): the learner's client against a real MLflow server.
//!
//! References, in order of independence: MLflow itself (the server the grader
//! starts and passes through `MLFLOW_TRACKING_URI`, and MLflow's own Python
//! client reading back what the lab logged, `readback.py` beside this file);
//! the production client `kernels::tracking` reading the same runs; and
//! hand-written cases for the pure parts (JSON shapes, chunk counts, backoff).
//! Faults a real server cannot be made to produce on demand (503s, 429s,
//! dropped connections) come from `kernels::tracking::FaultProxy`, a loopback
//! proxy in front of the real server, whose hit counters also show how many
//! requests a call made. Every test runs in its own process and names its
//! experiments uniquely.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use c3w1_tracking as lab;
use kernels::tracking as reference;
use kernels::tracking::{Action, FaultProxy};
use lab::retry::{self, RetryPolicy};
use lab::{CreateRun, Error, LogBatch, Metric, Page, Run, RunStatus, SearchRuns, TrackingClient, block_on};

/// MLflow's Python client reading a run back (see the file's docstring).
const READBACK_PY: &str = include_str!("readback.py");

// ---- helpers -----------------------------------------------------------------

fn server_url() -> String {
    reference::shared_server_url().unwrap_or_else(|e| panic!("no MLflow server for the tests: {e}"))
}

/// The port of an `http://127.0.0.1:PORT` URL (the fault proxy forwards to it).
fn port_of(url: &str) -> u16 {
    url.rsplit(':').next().and_then(|p| p.trim_end_matches('/').parse().ok()).expect("the server URL ends in :PORT")
}

/// Fast retries, so that failure tests take milliseconds.
fn quick(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(100),
        multiplier: 2.0,
        jitter: 0.5,
    }
}

fn lab_client(url: &str, max_attempts: u32) -> TrackingClient {
    let config = lab::TrackingConfig::new(url).with_retry(quick(max_attempts)).with_timeout(Duration::from_secs(30));
    TrackingClient::new(config).expect("TrackingClient::new refused a valid URL")
}

fn kernels_client(url: &str) -> reference::TrackingClient {
    reference::TrackingClient::new(reference::TrackingConfig::new(url)).expect("kernels client")
}

/// A name no other test process uses: prefix, process id, time, counter.
fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!("{prefix}-{}-{}-{}", std::process::id(), lab::now_millis(), N.fetch_add(1, Ordering::Relaxed))
}

/// A fresh folder under the system temp dir, removed on drop (also when the test panics).
struct Scratch(PathBuf);

impl Scratch {
    fn new(prefix: &str) -> Scratch {
        let dir = std::env::temp_dir().join(unique(&format!("c3w1-hidden-{prefix}")));
        std::fs::create_dir_all(&dir).expect("creating a scratch folder");
        Scratch(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn lab_run(c: &TrackingClient, prefix: &str) -> (String, Run) {
    let experiment_id = c.create_experiment(&unique(prefix)).await.expect("create_experiment");
    let run = c.create_run(&CreateRun::new(&experiment_id).name(unique("run"))).await.expect("create_run");
    (experiment_id, run)
}

/// Whether two doubles are the same value bit for bit (NaN equals NaN).
fn same_bits(a: f64, b: f64) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

/// (status, error_code, attempts) of an MLflow error answer; panics on anything else.
fn mlflow_error(err: &Error) -> (u16, String, u32) {
    match err {
        Error::Mlflow { status, error_code, attempts, .. } => (*status, error_code.clone(), *attempts),
        other => panic!("expected Error::Mlflow (an error answer from the server), got {other:?}"),
    }
}

/// Runs MLflow's Python client on `run_id` and returns what it printed.
fn readback(url: &str, run_id: &str) -> serde_json::Value {
    let python = reference::default_python();
    let output = std::process::Command::new(&python)
        .arg("-c")
        .arg(READBACK_PY)
        .arg(run_id)
        .env("MLFLOW_TRACKING_URI", url)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e} (run `cargo xtask peers`)", python.display()));
    assert!(output.status.success(), "MLflow's Python client failed:\n{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("readback.py prints one JSON object")
}

/// A JSON value MLflow's Python client printed for a double (`"NaN"` or a number).
fn json_f64(v: &serde_json::Value) -> f64 {
    match v {
        serde_json::Value::String(s) if s == "NaN" => f64::NAN,
        other => other.as_f64().unwrap_or_else(|| panic!("not a double: {other}")),
    }
}

/// Deterministic pseudo-random numbers (64-bit LCG), no dependency needed.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % n.max(1)
    }
}

/// A batch of `m` metrics, `p` params and `t` tags with distinguishable entries.
fn batch_of(m: usize, p: usize, t: usize) -> LogBatch {
    LogBatch {
        metrics: (0..m)
            .map(|i| Metric::at(format!("m{}", i % 7), i as f64 * 0.5, i as i64, 1_700_000_000_000 + i as i64))
            .collect(),
        params: (0..p).map(|i| lab::Param::new(format!("p{i:04}"), format!("value {i}"))).collect(),
        tags: (0..t).map(|i| lab::RunTag::new(format!("t{i:04}"), format!("tag {i}"))).collect(),
    }
}

/// Checks `batch.chunks()`: every limit, order within each kind, and the expected number of chunks.
fn check_chunks(batch: &LogBatch, expected: usize, what: &str) {
    let chunks = batch.chunks();
    assert_eq!(chunks.len(), expected, "{what}: expected {expected} chunk(s), got {}", chunks.len());
    for (i, c) in chunks.iter().enumerate() {
        let (m, p, t) = (c.metrics.len(), c.params.len(), c.tags.len());
        assert!(
            m <= 1000 && p <= 100 && t <= 100 && m + p + t <= 1000,
            "{what}: chunk {i} has {m} metrics, {p} params, {t} tags: the server refuses it"
        );
        assert!(m + p + t > 0, "{what}: chunk {i} is empty (a wasted request)");
    }
    let metrics: Vec<Metric> = chunks.iter().flat_map(|c| c.metrics.clone()).collect();
    assert!(metrics == batch.metrics, "{what}: the chunks' metrics are not the batch's in order");
    let params: Vec<lab::Param> = chunks.iter().flat_map(|c| c.params.clone()).collect();
    assert!(params == batch.params, "{what}: the chunks' params are not the batch's in order");
    let tags: Vec<lab::RunTag> = chunks.iter().flat_map(|c| c.tags.clone()).collect();
    assert!(tags == batch.tags, "{what}: the chunks' tags are not the batch's in order");
}

/// The fewest requests that can carry `m` metrics, `p` params and `t` tags.
fn lower_bound(m: usize, p: usize, t: usize) -> usize {
    [m.div_ceil(1000), p.div_ceil(100), t.div_ceil(100), (m + p + t).div_ceil(1000)].into_iter().max().unwrap_or(0)
}

/// Checks a `Metric` decoded from `json`: `Ok((value, timestamp, step))` or an error.
fn check_metric_json(json: &str, expected: Option<(f64, i64, i64)>) {
    let got = serde_json::from_str::<Metric>(json);
    match (got, expected) {
        (Ok(m), Some((value, timestamp, step))) => {
            assert!(
                same_bits(m.value, value) && m.timestamp == timestamp && m.step == step,
                "{json} decoded to value {}, timestamp {}, step {}; expected {value}, {timestamp}, {step}",
                m.value,
                m.timestamp,
                m.step
            );
        }
        (Ok(m), None) => panic!("{json} must be refused, but decoded to {m:?}"),
        (Err(e), Some(_)) => panic!("{json} must decode, got the error: {e}"),
        (Err(_), None) => {}
    }
}

/// Checks `clean_artifact_path(input)`: `Some(normalised)` or refused with `InvalidArgument`.
fn check_artifact_path(input: &str, expected: Option<&str>) {
    match (lab::artifacts::clean_artifact_path(input), expected) {
        (Ok(got), Some(want)) => assert_eq!(got, want, "clean_artifact_path({input:?})"),
        (Ok(got), None) => panic!("clean_artifact_path({input:?}) must be refused, got {got:?}"),
        (Err(Error::InvalidArgument(_)), None) => {}
        (Err(e), _) => panic!("clean_artifact_path({input:?}): expected {expected:?}, got the error {e:?}"),
    }
}

fn run_info_with_uri(uri: &str) -> lab::RunInfo {
    lab::RunInfo {
        run_id: "0123456789abcdef0123456789abcdef".into(),
        run_name: String::new(),
        experiment_id: "7".into(),
        status: RunStatus::Running,
        start_time: None,
        end_time: None,
        artifact_uri: uri.into(),
        lifecycle_stage: lab::LifecycleStage::Active,
    }
}

/// Writes `files` (relative path → bytes) under `root`.
fn write_tree(root: &Path, files: &[(&str, Vec<u8>)]) {
    for (rel, bytes) in files {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().expect("inside root")).expect("mkdir");
        std::fs::write(&path, bytes).expect("write");
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

graded! {
    // ---- c3w1.types ------------------------------------------------------------

    /// int64 fields take numbers, strings and whole floats (also beyond 2^53), and refuse the rest.
    fn int64_fields_accept_numbers_strings_and_whole_floats_and_reject_the_rest() {
        let m = |ts: &str, step: &str| format!(r#"{{"key": "k", "value": 1.5, "timestamp": {ts}, "step": {step}}}"#);
        check_metric_json(&m("5", "7"), Some((1.5, 5, 7)));
        check_metric_json(&m(r#""5""#, r#""7""#), Some((1.5, 5, 7)));
        check_metric_json(&m(r#""-12""#, "0"), Some((1.5, -12, 0)));
        check_metric_json(&m("5.0", "2"), Some((1.5, 5, 2)));
        check_metric_json(
            &m(r#""9007199254740993""#, "9007199254740993"),
            Some((1.5, 9_007_199_254_740_993, 9_007_199_254_740_993)),
        );
        check_metric_json(&m(r#""9223372036854775807""#, "1"), Some((1.5, i64::MAX, 1)));
        check_metric_json(
            r#"{"key": "k", "value": 1.5, "timestamp": "1700000000000"}"#,
            Some((1.5, 1_700_000_000_000, 0)),
        );
        check_metric_json(&m("5.5", "1"), None);
        check_metric_json(&m(r#""five""#, "1"), None);
        check_metric_json(&m(r#""""#, "1"), None);
        check_metric_json(&m("true", "1"), None);
        check_metric_json(&m("1", "[1]"), None);
        check_metric_json(r#"{"key": "k", "value": 1.5}"#, None);
        let info: lab::RunInfo = serde_json::from_str(
            r#"{"run_id": "r", "experiment_id": "1", "start_time": "1700000000001", "end_time": 1700000000002}"#,
        )
        .expect("a RunInfo with string and number times");
        assert_eq!((info.start_time, info.end_time), (Some(1_700_000_000_001), Some(1_700_000_000_002)));
        assert_eq!(info.status, RunStatus::Running, "a missing status defaults to RUNNING");
    }

    /// NaN and ±∞ are written as "NaN"/"Infinity"/"-Infinity" and read back; numbers stay numbers.
    fn non_finite_values_round_trip_the_way_protobuf_spells_them() {
        for (value, spelled) in [
            (f64::NAN, serde_json::json!("NaN")),
            (f64::INFINITY, serde_json::json!("Infinity")),
            (f64::NEG_INFINITY, serde_json::json!("-Infinity")),
            (0.1 + 0.2, serde_json::json!(0.1 + 0.2)),
            (-2.5e-12, serde_json::json!(-2.5e-12)),
            (5e-324, serde_json::json!(5e-324)),
            (1e300, serde_json::json!(1e300)),
        ] {
            let json = serde_json::to_value(Metric::at("x", value, 3, 4)).expect("a Metric serialises");
            assert_eq!(json["value"], spelled, "the value {value} must be written as {spelled}");
            assert_eq!(
                (json["timestamp"].as_i64(), json["step"].as_i64()),
                (Some(4), Some(3)),
                "timestamp and step as numbers"
            );
            let back: Metric = serde_json::from_value(json).expect("what the lab writes, it reads");
            assert!(same_bits(back.value, value), "{value} came back as {}", back.value);
        }
        let m = |v: &str| format!(r#"{{"key": "k", "value": {v}, "timestamp": 1}}"#);
        check_metric_json(&m(r#""NaN""#), Some((f64::NAN, 1, 0)));
        check_metric_json(&m(r#""Infinity""#), Some((f64::INFINITY, 1, 0)));
        check_metric_json(&m(r#""-Infinity""#), Some((f64::NEG_INFINITY, 1, 0)));
        check_metric_json(&m(r#""0.25""#), Some((0.25, 1, 0)));
        check_metric_json(&m("3"), Some((3.0, 1, 0)));
        check_metric_json(&m("-7.5"), Some((-7.5, 1, 0)));
        check_metric_json(&m(r#""fast""#), None);
        check_metric_json(&m("null"), None);
    }

    /// Every RunStatus is spelled as MLflow spells it, parses back, and unknown text is a typed error.
    fn run_status_spells_every_variant_and_refuses_unknown_text() {
        use std::str::FromStr;
        for (status, text) in [
            (RunStatus::Running, "RUNNING"),
            (RunStatus::Scheduled, "SCHEDULED"),
            (RunStatus::Finished, "FINISHED"),
            (RunStatus::Failed, "FAILED"),
            (RunStatus::Killed, "KILLED"),
        ] {
            assert_eq!(status.as_str(), text);
            assert_eq!(RunStatus::from_str(text).ok(), Some(status), "parsing {text:?}");
            assert_eq!(serde_json::to_value(status).unwrap(), text);
            assert_eq!(serde_json::from_str::<RunStatus>(&format!("\"{text}\"")).ok(), Some(status));
        }
        for bad in ["finished", "DONE", "", "RUNNING "] {
            match RunStatus::from_str(bad) {
                Err(Error::InvalidArgument(message)) => {
                    assert!(message.contains(bad.trim()), "the error for {bad:?} should name it: {message}")
                }
                other => panic!("{bad:?} must be Error::InvalidArgument, got {other:?}"),
            }
        }
    }

    /// A run written by kernels' serde types decodes into the lab's, and the lab's metrics decode in kernels'.
    fn lab_types_agree_with_kernels_serialization() {
        let kernels_run = reference::Run {
            info: reference::RunInfo {
                run_id: "0123456789abcdef0123456789abcdef".into(),
                run_name: "agree".into(),
                experiment_id: "42".into(),
                user_id: "me".into(),
                status: reference::RunStatus::Killed,
                start_time: Some(1_700_000_000_000),
                end_time: Some(1_700_000_000_999),
                artifact_uri: "mlflow-artifacts:/42/0123456789abcdef0123456789abcdef/artifacts".into(),
                lifecycle_stage: reference::LifecycleStage::Deleted,
            },
            data: reference::RunData {
                metrics: vec![
                    reference::Metric::at("loss", f64::NAN, 3, 1_700_000_000_003),
                    reference::Metric::at("acc", 0.1 + 0.2, 9_007_199_254_740_993, 1),
                    reference::Metric::at("inf", f64::NEG_INFINITY, 0, 2),
                ],
                params: vec![reference::Param::new("lr", "3e-4")],
                tags: vec![reference::RunTag::new("mlflow.runName", "agree")],
            },
        };
        let json = serde_json::to_string(&kernels_run).expect("kernels serialises");
        let run: Run = serde_json::from_str(&json).unwrap_or_else(|e| panic!("the lab cannot read {json}: {e}"));
        assert_eq!(run.info.status, RunStatus::Killed);
        assert_eq!(run.info.lifecycle_stage, lab::LifecycleStage::Deleted);
        assert_eq!((run.info.start_time, run.info.end_time), (Some(1_700_000_000_000), Some(1_700_000_000_999)));
        assert_eq!(run.data.param("lr"), Some("3e-4"));
        for (lab_m, ref_m) in run.data.metrics.iter().zip(&kernels_run.data.metrics) {
            assert!(
                same_bits(lab_m.value, ref_m.value) && lab_m.step == ref_m.step && lab_m.timestamp == ref_m.timestamp,
                "metric {} decoded as {lab_m:?}",
                ref_m.key
            );
        }
        let back: reference::RunData = serde_json::from_value(serde_json::to_value(&run.data).expect("lab serialises"))
            .expect("kernels reads the lab's RunData");
        assert_eq!(back.metrics.len(), 3);
        for (got, want) in back.metrics.iter().zip(&kernels_run.data.metrics) {
            assert!(
                same_bits(got.value, want.value) && got.step == want.step,
                "{} did not survive lab → kernels",
                want.key
            );
        }
    }

    // ---- c3w1.client -----------------------------------------------------------

    /// Bad URLs are refused with InvalidArgument; a path prefix is kept in every endpoint URL.
    fn new_refuses_bad_urls_and_keeps_a_path_prefix() {
        for bad in ["not a url", "ftp://127.0.0.1:21/", "mailto:someone@example.org", ""] {
            match TrackingClient::new(lab::TrackingConfig::new(bad)) {
                Err(Error::InvalidArgument(_)) => {}
                Err(other) => panic!("{bad:?}: expected Error::InvalidArgument, got {other:?}"),
                Ok(_) => panic!("{bad:?} is not an http(s) URL and must be refused"),
            }
        }
        for (base, want) in [
            ("http://127.0.0.1:5000", "http://127.0.0.1:5000/api/2.0/mlflow/runs/get"),
            ("http://127.0.0.1:5000/", "http://127.0.0.1:5000/api/2.0/mlflow/runs/get"),
            ("https://tracking.internal/mlflow", "https://tracking.internal/mlflow/api/2.0/mlflow/runs/get"),
            ("http://10.0.0.1:80/a/b/", "http://10.0.0.1/a/b/api/2.0/mlflow/runs/get"),
        ] {
            let c = TrackingClient::new(lab::TrackingConfig::new(base)).unwrap_or_else(|e| panic!("{base:?}: {e}"));
            assert_eq!(c.api_url("runs/get").as_str(), want, "endpoint URL for base {base:?}");
        }
    }

    /// MLflow's JSON error bodies keep their code and message; anything else keeps the (cut) text.
    fn error_bodies_become_typed_errors() {
        let check = |body: &[u8], status: u16, code: &str, message: &str| {
            let err = Error::from_response("runs/get", status, body, 2);
            match &err {
                Error::Mlflow { endpoint, status: s, error_code, message: m, attempts } => {
                    assert_eq!((endpoint.as_str(), *s, *attempts), ("runs/get", status, 2), "{err}");
                    assert_eq!(error_code, code, "error_code of {:?}", String::from_utf8_lossy(body));
                    assert_eq!(m, message, "message of {:?}", String::from_utf8_lossy(body));
                }
                other => panic!("expected Error::Mlflow, got {other:?}"),
            }
        };
        check(
            br#"{"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "Run 'x' not found"}"#,
            404,
            "RESOURCE_DOES_NOT_EXIST",
            "Run 'x' not found",
        );
        check(
            br#"{"error_code":"INVALID_PARAMETER_VALUE","message":"bad","sqlstate":"KAM00"}"#,
            400,
            "INVALID_PARAMETER_VALUE",
            "bad",
        );
        check(br#"{"error_code": "INTERNAL_ERROR"}"#, 500, "INTERNAL_ERROR", "");
        check(b"Service Unavailable", 503, "", "Service Unavailable");
        check(b"", 502, "", "");
        check(br#"{"message": "no code"}"#, 500, "", r#"{"message": "no code"}"#);
        let long = "x".repeat(2000);
        let err = Error::from_response("e", 500, long.as_bytes(), 1);
        match &err {
            Error::Mlflow { message, .. } => {
                assert_eq!(message.chars().count(), 500, "a long body is cut to 500 characters")
            }
            other => panic!("expected Error::Mlflow, got {other:?}"),
        }
        assert!(Error::from_response("e", 404, br#"{"error_code": "RESOURCE_DOES_NOT_EXIST"}"#, 1).is_not_found());
    }

    /// Unknown experiments and runs are typed 404s (RESOURCE_DOES_NOT_EXIST), made in one attempt.
    fn missing_experiments_and_runs_are_typed_404s() {
        let url = server_url();
        block_on(async {
            let c = lab_client(&url, 3);
            let err = c.get_experiment_by_name(&unique("no-such-experiment")).await.expect_err("an unknown name");
            assert_eq!(mlflow_error(&err), (404, "RESOURCE_DOES_NOT_EXIST".into(), 1), "{err}");
            assert!(err.is_not_found());
            let err = c.get_run("0123456789abcdef0123456789abcdef").await.expect_err("an unknown run");
            assert_eq!(mlflow_error(&err), (404, "RESOURCE_DOES_NOT_EXIST".into(), 1), "{err}");
            let err = c.create_run(&CreateRun::new("987654321")).await.expect_err("a run in an unknown experiment");
            let (status, _, attempts) = mlflow_error(&err);
            assert!((400..500).contains(&status) && attempts == 1, "a run in a missing experiment: {err}");
        });
    }

    /// What the lab creates is what kernels reads: experiment name and id, run name, start time, tags.
    fn created_experiment_and_run_match_what_kernels_reads() {
        let url = server_url();
        block_on(async {
            let c = lab_client(&url, 3);
            let k = kernels_client(&url);
            let name = unique("client-agree");
            let id = c.create_experiment(&name).await.expect("create_experiment");
            let seen = k.get_experiment_by_name(&name).await.expect("kernels finds the lab's experiment");
            assert_eq!(seen.experiment_id, id);
            let by_name = c.get_experiment_by_name(&name).await.expect("get_experiment_by_name");
            assert_eq!((by_name.experiment_id.as_str(), by_name.name.as_str()), (id.as_str(), name.as_str()));
            assert!(by_name.creation_time.is_some(), "creation_time is read");

            let start = lab::now_millis() - 5_000;
            let request = CreateRun {
                start_time: Some(start),
                ..CreateRun::new(&id).name("agree").tag("team", "lab").tag("seed", "7")
            };
            let run = c.create_run(&request).await.expect("create_run");
            assert_eq!(run.info.status, RunStatus::Running);
            assert_eq!(run.info.start_time, Some(start));
            let theirs = k.get_run(&run.info.run_id).await.expect("kernels reads the lab's run");
            assert_eq!(theirs.info.experiment_id, id);
            assert_eq!(theirs.info.run_name, "agree");
            assert_eq!(theirs.info.start_time, Some(start));
            assert_eq!((theirs.data.tag("team"), theirs.data.tag("seed")), (Some("lab"), Some("7")));
            let ours = c.get_run(&run.info.run_id).await.expect("get_run");
            assert_eq!(ours.info.artifact_uri, theirs.info.artifact_uri);
            assert_eq!(ours.data.tags.len(), theirs.data.tags.len(), "get_run returns every tag");
        });
    }

    /// Nobody listening: a transport error (no panic), with the endpoint and one attempt.
    fn connection_refused_is_a_transport_error() {
        let port = reference::free_port();
        block_on(async {
            let config = lab::TrackingConfig::new(format!("http://127.0.0.1:{port}")).with_retry(RetryPolicy::none());
            let c = TrackingClient::new(config).expect("a valid URL");
            match c.get_experiment_by_name("anything").await {
                Err(Error::Transport { endpoint, attempts, .. }) => {
                    assert_eq!(attempts, 1);
                    assert_eq!(endpoint, "experiments/get-by-name");
                }
                other => panic!("expected Error::Transport, got {other:?}"),
            }
        });
    }

    // ---- c3w1.logging ----------------------------------------------------------

    /// Metric points logged one by one read back through kernels bit for bit, with steps and timestamps.
    fn logged_points_read_back_exactly_through_kernels() {
        let url = server_url();
        block_on(async {
            let c = lab_client(&url, 3);
            let k = kernels_client(&url);
            let (_, run) = lab_run(&c, "logging-exact").await;
            let id = &run.info.run_id;
            let t0 = lab::now_millis() - 60_000;
            let values = [-2.5e-12, 1.234_567_890_123_456_7e200, 0.1 + 0.2, 5e-324, f64::NAN, -7.0, 0.0];
            for (i, v) in values.iter().enumerate() {
                c.log_metric(id, &Metric::at("odd", *v, 10 * i as i64, t0 + i as i64)).await.expect("log_metric");
            }
            let got = k.get_metric_history(id, "odd", None, None).await.expect("kernels history").items;
            assert_eq!(got.len(), values.len(), "every point is stored");
            let mut got: Vec<_> = got.into_iter().map(|m| (m.step, m.timestamp, m.value)).collect();
            got.sort_by_key(|&(s, t, _)| (s, t));
            for (i, (v, (step, ts, value))) in values.iter().zip(got).enumerate() {
                assert_eq!((step, ts), (10 * i as i64, t0 + i as i64), "step and timestamp of point {i}");
                assert!(same_bits(value, *v), "point {i}: logged {v:e}, stored {value:e}");
            }
            let mine = c.get_metric_history(id, "odd").await.expect("get_metric_history");
            assert_eq!(mine.len(), values.len(), "the lab's history has every point");
            assert!(
                c.get_metric_history(id, "never-logged").await.expect("an unknown key").is_empty(),
                "an unknown key has an empty history"
            );
        });
    }

    /// Params, tags, metrics and status logged by the lab look the same to MLflow's Python client.
    fn a_run_logged_by_the_lab_reads_back_identically_through_mlflows_python_client() {
        let url = server_url();
        let (run_id, start, end, logged) = block_on(async {
            let c = lab_client(&url, 3);
            let experiment_id = c.create_experiment(&unique("logging-readback")).await.expect("create_experiment");
            let start = lab::now_millis() - 20_000;
            let run = c
                .create_run(&CreateRun { start_time: Some(start), ..CreateRun::new(&experiment_id).name("readback") })
                .await
                .expect("create_run");
            let id = run.info.run_id.clone();
            c.log_param(&id, "optimizer", "adamw").await.expect("log_param");
            c.log_param(&id, "layers", "12").await.expect("log_param");
            c.log_param(&id, "note", "spaces, commas & ünïcödé").await.expect("log_param");
            c.set_tag(&id, "stage", "first").await.expect("set_tag");
            c.set_tag(&id, "stage", "test").await.expect("set_tag overwrites");
            c.set_tag(&id, "owner", "rust lab").await.expect("set_tag");
            let mut logged: BTreeMap<String, Vec<(i64, i64, f64)>> = BTreeMap::new();
            for step in 0..6i64 {
                let loss = Metric::at("loss", 1.0 / (step as f64 + 1.0), step, start + 100 * step);
                let odd =
                    Metric::at("odd", [f64::NAN, 1e-300, 0.1 + 0.2][step as usize % 3], step, start + 100 * step + 1);
                for m in [loss, odd] {
                    c.log_metric(&id, &m).await.expect("log_metric");
                    logged.entry(m.key.clone()).or_default().push((m.step, m.timestamp, m.value));
                }
            }
            let info = c.end_run(&id, RunStatus::Finished).await.expect("end_run");
            assert_eq!(info.status, RunStatus::Finished);
            (id, start, info.end_time.expect("an ended run has an end_time"), logged)
        });
        let back = readback(&url, &run_id);
        assert_eq!(back["status"], "FINISHED");
        assert_eq!(back["run_name"], "readback");
        assert_eq!(back["start_time"].as_i64(), Some(start), "start_time as MLflow stored it");
        assert_eq!(back["end_time"].as_i64(), Some(end), "end_time as MLflow stored it");
        let params: BTreeMap<String, String> = serde_json::from_value(back["params"].clone()).expect("params");
        let want: BTreeMap<String, String> =
            [("optimizer", "adamw"), ("layers", "12"), ("note", "spaces, commas & ünïcödé")]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .into();
        assert_eq!(params, want, "params through MLflow's Python client");
        assert_eq!(back["tags"]["stage"], "test", "the second set_tag wins");
        assert_eq!(back["tags"]["owner"], "rust lab");
        let metrics = back["metrics"].as_object().expect("metrics");
        assert_eq!(metrics.len(), logged.len(), "metric keys through MLflow's Python client");
        for (key, want) in &logged {
            let got = metrics[key].as_array().expect("a history");
            assert_eq!(got.len(), want.len(), "{key}: number of points");
            for (g, (step, ts, value)) in got.iter().zip(want) {
                assert_eq!((g[0].as_i64(), g[1].as_i64()), (Some(*step), Some(*ts)), "{key}: step and timestamp");
                let v = json_f64(&g[2]);
                assert!(same_bits(v, *value), "{key} at step {step}: logged {value:e}, MLflow reads {v:e}");
            }
        }
    }

    /// Re-logging a param with another value is a typed 400 (not retried); the same value is accepted.
    fn relogging_a_param_with_another_value_is_a_typed_400() {
        let url = server_url();
        block_on(async {
            let c = lab_client(&url, 4);
            let (_, run) = lab_run(&c, "logging-param").await;
            let id = &run.info.run_id;
            c.log_param(id, "lr", "0.1").await.expect("log_param");
            c.log_param(id, "lr", "0.1").await.expect("the same value again is accepted");
            let err = c.log_param(id, "lr", "0.2").await.expect_err("a param is write-once");
            assert_eq!(mlflow_error(&err), (400, "INVALID_PARAMETER_VALUE".into(), 1), "{err}");
        });
    }

    /// update_run sets the status and end time kernels sees; without an end time none is sent.
    fn update_run_sets_status_and_end_time() {
        let url = server_url();
        block_on(async {
            let c = lab_client(&url, 3);
            let k = kernels_client(&url);
            let (_, run) = lab_run(&c, "logging-status").await;
            let id = &run.info.run_id;
            let info = c.update_run(id, RunStatus::Scheduled, None).await.expect("update_run");
            assert_eq!((info.status, info.end_time), (RunStatus::Scheduled, None));
            let end = lab::now_millis() + 1234;
            let info = c.update_run(id, RunStatus::Killed, Some(end)).await.expect("update_run");
            assert_eq!((info.status, info.end_time), (RunStatus::Killed, Some(end)));
            let theirs = k.get_run(id).await.expect("kernels get_run").info;
            assert_eq!((theirs.status, theirs.end_time), (reference::RunStatus::Killed, Some(end)));
        });
    }

    // ---- c3w1.log-batch --------------------------------------------------------

    /// Boundary cases: each needs exactly the fewest requests the four limits allow.
    fn chunks_hit_the_lower_bound_on_boundary_cases() {
        for (m, p, t, want) in [
            (0, 0, 0, 0),
            (1, 1, 1, 1),
            (1000, 0, 0, 1),
            (1001, 0, 0, 2),
            (0, 100, 100, 1),
            (0, 101, 0, 2),
            (0, 0, 250, 3),
            (900, 100, 0, 1),
            (901, 100, 0, 2),
            (800, 100, 100, 1),
            (1000, 100, 100, 2),
            (2500, 250, 0, 3),
            (3000, 0, 350, 4),
            (1900, 200, 0, 3),
            (10, 0, 1000, 10),
        ] {
            check_chunks(&batch_of(m, p, t), want, &format!("{m} metrics, {p} params, {t} tags"));
        }
    }

    /// 300 random batches: every limit holds, order is kept, and the count is the lower bound.
    fn chunks_keep_order_and_limits_on_random_batches() {
        let mut rng = Lcg(2024);
        for case in 0..300 {
            let m = rng.below(4000) as usize;
            let p = rng.below(if case % 3 == 0 { 450 } else { 60 }) as usize;
            let t = rng.below(if case % 5 == 0 { 450 } else { 60 }) as usize;
            check_chunks(
                &batch_of(m, p, t),
                lower_bound(m, p, t),
                &format!("case {case}: {m} metrics, {p} params, {t} tags"),
            );
        }
    }

    /// 2500 metrics and 250 params go out in exactly 3 log-batch requests and all land, in order.
    fn log_batch_of_2500_metrics_and_250_params_takes_three_requests() {
        let url = server_url();
        block_on(async {
            let proxy = FaultProxy::start(port_of(&url), |_, _| Action::Forward).await;
            let c = lab_client(&proxy.url(), 3);
            let k = kernels_client(&url);
            let (_, run) = lab_run(&c, "batch-three").await;
            let id = &run.info.run_id;
            let batch = batch_of(2500, 250, 0);
            assert_eq!(
                c.log_batch(id, &batch).await.expect("log_batch"),
                3,
                "log_batch returns the number of requests"
            );
            assert_eq!(proxy.hits("runs/log-batch"), 3, "requests that reached the server");
            let got = k.get_run(id).await.expect("kernels get_run");
            assert_eq!(got.data.params.len(), 250, "every param landed");
            assert_eq!(got.data.param("p0249"), Some("value 249"));
            for key in (0..7).map(|i| format!("m{i}")) {
                let mut history: Vec<(i64, i64, f64)> = k
                    .get_metric_history(id, &key, None, None)
                    .await
                    .expect("kernels history")
                    .items
                    .into_iter()
                    .map(|m| (m.step, m.timestamp, m.value))
                    .collect();
                history.sort_by_key(|&(s, t, _)| (s, t));
                let want: Vec<(i64, i64, f64)> =
                    batch.metrics.iter().filter(|m| m.key == key).map(|m| (m.step, m.timestamp, m.value)).collect();
                assert_eq!(history, want, "history of {key}");
            }
        });
    }

    /// An empty batch sends nothing; tags beyond 100 and a long series land in full.
    fn log_batch_sends_nothing_for_an_empty_batch_and_lands_tags_and_series() {
        let url = server_url();
        block_on(async {
            let proxy = FaultProxy::start(port_of(&url), |_, _| Action::Forward).await;
            let c = lab_client(&proxy.url(), 3);
            let k = kernels_client(&url);
            let (_, run) = lab_run(&c, "batch-tags").await;
            let id = &run.info.run_id;
            assert_eq!(c.log_batch(id, &LogBatch::new()).await.expect("an empty batch"), 0);
            assert_eq!(proxy.hits("runs/log-batch"), 0, "an empty batch must not make a request");
            let t0 = lab::now_millis();
            let mut batch = LogBatch::new();
            for s in 0..1200i64 {
                batch = batch.metric(Metric::at("series", (s as f64).sin(), s, t0 + s));
            }
            for i in 0..150 {
                batch = batch.tag(format!("tag{i:03}"), format!("v{i}"));
            }
            assert_eq!(c.log_batch(id, &batch).await.expect("log_batch"), 2);
            assert_eq!(proxy.hits("runs/log-batch"), 2);
            let got = k.get_run(id).await.expect("kernels get_run");
            assert_eq!(got.data.tag("tag149"), Some("v149"));
            assert!(got.data.tags.iter().filter(|t| t.key.starts_with("tag")).count() == 150, "all 150 tags landed");
            let history = k.get_metric_history(id, "series", None, None).await.expect("history").items;
            assert_eq!(history.len(), 1200, "every point of the series landed");
            assert!(history.iter().all(|m| same_bits(m.value, (m.step as f64).sin()) && m.timestamp == t0 + m.step));
        });
    }

    // ---- c3w1.search -----------------------------------------------------------

    /// collect_pages asks for each page with the previous page's token and keeps every item in order.
    fn collect_pages_follows_tokens_in_order() {
        let pages: BTreeMap<Option<String>, Page<u32>> = [
            (None, Page { items: vec![1, 2], next_page_token: Some("a".into()) }),
            (Some("a".to_string()), Page { items: vec![], next_page_token: Some("b".into()) }),
            (Some("b".to_string()), Page { items: vec![3], next_page_token: Some("c".into()) }),
            (Some("c".to_string()), Page { items: vec![4, 5, 6], next_page_token: None }),
        ]
        .into();
        let asked = std::cell::RefCell::new(Vec::new());
        let fetch = |token: Option<String>| {
            asked.borrow_mut().push(token.clone());
            let page = pages.get(&token).cloned();
            async move { page.ok_or_else(|| Error::InvalidArgument(format!("no page {token:?}"))) }
        };
        let all = block_on(lab::collect_pages(None, fetch)).expect("collect_pages");
        assert_eq!(all, [1, 2, 3, 4, 5, 6], "every item of every page, in order");
        assert_eq!(*asked.borrow(), [None, Some("a".into()), Some("b".into()), Some("c".into())], "tokens asked for");
        asked.borrow_mut().clear();
        let rest = block_on(lab::collect_pages(Some("b".into()), fetch)).expect("resuming at b");
        assert_eq!(rest, [3, 4, 5, 6], "starting from token b");
        assert_eq!(
            asked.borrow().first(),
            Some(&Some("b".to_string())),
            "the first request carries the starting token"
        );
    }

    /// A token that comes back is an error, not an endless loop; fetch errors pass through.
    fn collect_pages_stops_on_a_repeated_token_and_passes_errors_through() {
        let calls = std::cell::Cell::new(0);
        let looping = |token: Option<String>| {
            calls.set(calls.get() + 1);
            let next = match token.as_deref() {
                None => "a",
                Some("a") => "b",
                _ => "a",
            };
            async move { Ok::<_, Error>(Page { items: vec![0u8], next_page_token: Some(next.to_string()) }) }
        };
        match block_on(lab::collect_pages(None, looping)) {
            Err(Error::Response { .. }) => {}
            other => panic!("a token handed out twice must be Error::Response, got {other:?}"),
        }
        assert!(calls.get() <= 4, "stopped after {} requests; the repeat shows on the third", calls.get());
        let failing = |token: Option<String>| async move {
            match token {
                None => Ok(Page { items: vec![1u8], next_page_token: Some("x".into()) }),
                Some(_) => Err(Error::InvalidArgument("page two is broken".into())),
            }
        };
        match block_on(lab::collect_pages(None, failing)) {
            Err(Error::InvalidArgument(m)) => assert_eq!(m, "page two is broken"),
            other => panic!("the fetch error must come back as it is, got {other:?}"),
        }
    }

    /// Seven runs searched with a filter, an order and pages of 2: the same runs, in the same order, as kernels finds.
    fn search_runs_all_matches_kernels_on_seven_runs() {
        let url = server_url();
        block_on(async {
            let proxy = FaultProxy::start(port_of(&url), |_, _| Action::Forward).await;
            let c = lab_client(&proxy.url(), 3);
            let k = kernels_client(&url);
            let experiment_id = c.create_experiment(&unique("search-agree")).await.expect("create_experiment");
            for i in 0..7 {
                let run =
                    c.create_run(&CreateRun::new(&experiment_id).name(format!("r{i}"))).await.expect("create_run");
                let batch = LogBatch::new()
                    .metric(Metric::new("acc", f64::from(i) / 10.0, 0))
                    .param("parity", if i % 2 == 0 { "even" } else { "odd" });
                c.log_batch(&run.info.run_id, &batch).await.expect("log_batch");
            }
            let before = proxy.hits("runs/search");
            let search = SearchRuns::new([experiment_id.clone()])
                .filter("metrics.acc > 0.15")
                .order_by("metrics.acc DESC")
                .max_results(2);
            let ours = c.search_runs_all(&search).await.expect("search_runs_all");
            assert_eq!(proxy.hits("runs/search") - before, 3, "5 matches in pages of 2 take 3 requests");
            let theirs = k
                .search_runs_all(
                    &reference::SearchRuns::new([experiment_id.clone()])
                        .filter("metrics.acc > 0.15")
                        .order_by("metrics.acc DESC"),
                )
                .await
                .expect("kernels search");
            let ids = |runs: &[Run]| runs.iter().map(|r| r.info.run_id.clone()).collect::<Vec<_>>();
            assert_eq!(
                ids(&ours),
                theirs.iter().map(|r| r.info.run_id.clone()).collect::<Vec<_>>(),
                "same runs, same order"
            );
            let accs: Vec<f64> = ours.iter().map(|r| r.data.metric("acc").unwrap_or(f64::NAN)).collect();
            assert_eq!(accs, [0.6, 0.5, 0.4, 0.3, 0.2]);
            let odd = c
                .search_runs_all(&SearchRuns::new([experiment_id]).filter("params.parity = 'odd'"))
                .await
                .expect("search");
            assert_eq!(odd.len(), 3);
            assert!(odd.iter().all(|r| r.data.param("parity") == Some("odd")));
        });
    }

    /// A search that starts from a page token continues where the first page stopped.
    fn resuming_from_a_page_token_continues_where_the_first_page_stopped() {
        let url = server_url();
        block_on(async {
            let c = lab_client(&url, 3);
            let experiment_id = c.create_experiment(&unique("search-resume")).await.expect("create_experiment");
            for i in 0..5 {
                let run =
                    c.create_run(&CreateRun::new(&experiment_id).name(format!("r{i}"))).await.expect("create_run");
                c.log_metric(&run.info.run_id, &Metric::new("score", f64::from(i), 0)).await.expect("log_metric");
            }
            let search = SearchRuns::new([experiment_id]).order_by("metrics.score ASC").max_results(2);
            let first = c.search_runs(&search).await.expect("first page");
            let token = first.next_page_token.clone().expect("5 runs in pages of 2: a next page");
            let rest =
                c.search_runs_all(&SearchRuns { page_token: Some(token), ..search.clone() }).await.expect("resume");
            let scores: Vec<f64> =
                first.items.iter().chain(&rest).map(|r| r.data.metric("score").unwrap_or(f64::NAN)).collect();
            assert_eq!(scores, [0.0, 1.0, 2.0, 3.0, 4.0], "first page, then the rest");
            let last = c.search_runs(&SearchRuns { max_results: Some(10), ..search }).await.expect("one big page");
            assert_eq!((last.items.len(), last.next_page_token), (5, None), "the last page has no token");
        });
    }

    /// No match is an empty page without a token; a bad filter is a typed 400, not retried.
    fn an_empty_search_and_a_bad_filter() {
        let url = server_url();
        block_on(async {
            let c = lab_client(&url, 4);
            let experiment_id = c.create_experiment(&unique("search-empty")).await.expect("create_experiment");
            let page = c.search_runs(&SearchRuns::new([experiment_id.clone()])).await.expect("an empty search");
            assert!(page.items.is_empty() && page.next_page_token.is_none(), "nothing matches: {page:?}");
            assert!(
                c.search_runs_all(&SearchRuns::new([experiment_id.clone()])).await.expect("search_runs_all").is_empty()
            );
            let err = c
                .search_runs(&SearchRuns::new([experiment_id]).filter("metrics.acc >>> 1"))
                .await
                .expect_err("a bad filter");
            assert_eq!(mlflow_error(&err), (400, "INVALID_PARAMETER_VALUE".into(), 1), "{err}");
        });
    }

    // ---- c3w1.artifacts --------------------------------------------------------

    /// Paths are normalised; absolute paths and `..` are refused before anything is sent.
    fn artifact_paths_are_normalised_and_escapes_refused() {
        check_artifact_path("", Some(""));
        check_artifact_path("model", Some("model"));
        check_artifact_path("model//./weights.bin", Some("model/weights.bin"));
        check_artifact_path("a\\b\\c.txt", Some("a/b/c.txt"));
        check_artifact_path("dir/", Some("dir"));
        check_artifact_path("./x/./y", Some("x/y"));
        check_artifact_path("read me.md", Some("read me.md"));
        check_artifact_path("..", None);
        check_artifact_path("a/../../etc/passwd", None);
        check_artifact_path("a\\..\\b", None);
        check_artifact_path("/etc/passwd", None);
    }

    /// Both forms of a proxied artifact URI give `<experiment>/<run>/artifacts`; other stores are refused.
    fn proxy_root_reads_both_uri_forms_and_refuses_other_stores() {
        for (uri, want) in [
            ("mlflow-artifacts:/7/abc/artifacts", "7/abc/artifacts"),
            ("mlflow-artifacts://127.0.0.1:5000/7/abc/artifacts", "7/abc/artifacts"),
            ("mlflow-artifacts:/7/abc/artifacts/", "7/abc/artifacts"),
            ("mlflow-artifacts:///7/abc/artifacts", "7/abc/artifacts"),
        ] {
            let got = lab::artifacts::proxy_root(&run_info_with_uri(uri)).unwrap_or_else(|e| panic!("{uri}: {e}"));
            assert_eq!(got, want, "proxy_root of {uri}");
        }
        for uri in ["file:///tmp/mlruns/7/abc/artifacts", "s3://bucket/7/abc/artifacts", ""] {
            match lab::artifacts::proxy_root(&run_info_with_uri(uri)) {
                Err(Error::InvalidArgument(_)) => {}
                other => panic!("{uri:?} is not proxied: expected Error::InvalidArgument, got {other:?}"),
            }
        }
    }

    /// A folder tree and a file uploaded by the lab: MLflow's Python client lists and downloads the same bytes.
    fn a_folder_tree_reads_back_identically_through_mlflows_python_client() {
        let url = server_url();
        let weights: Vec<u8> = (0..70_000u32).map(|i| (i * 31 % 251) as u8).collect();
        let files: Vec<(&str, Vec<u8>)> = vec![
            ("weights.bin", weights.clone()),
            ("sub/config.json", br#"{"d": 576}"#.to_vec()),
            ("sub/deeper/read me.md", b"# spaces survive\n".to_vec()),
            ("sub/empty.txt", Vec::new()),
        ];
        let scratch = Scratch::new("tree");
        let dir = scratch.path();
        write_tree(&dir.join("tree"), &files);
        std::fs::create_dir_all(dir.join("tree/nothing-here")).expect("an empty folder");
        std::fs::write(dir.join("notes.txt"), "hello from the lab\n").expect("write");
        let run = block_on(async {
            let c = lab_client(&url, 3);
            let (_, run) = lab_run(&c, "artifacts-readback").await;
            let up = c.upload_artifacts(&run.info, &dir.join("tree"), Some("model")).await.expect("upload_artifacts");
            assert_eq!(
                up,
                ["model/sub/config.json", "model/sub/deeper/read me.md", "model/sub/empty.txt", "model/weights.bin"],
                "upload_artifacts returns the artifact paths, sorted"
            );
            let one = c.upload_artifact(&run.info, &dir.join("notes.txt"), None).await.expect("upload_artifact");
            assert_eq!(one, "notes.txt");
            run
        });
        let back = readback(&url, &run.info.run_id);
        // An empty file lists without a size: protobuf leaves out a field that holds its default, 0.
        let listed: Vec<(String, i64)> = back["artifacts"]
            .as_array()
            .expect("artifacts")
            .iter()
            .map(|f| (f["path"].as_str().unwrap_or_default().to_owned(), f["size"].as_i64().unwrap_or(0)))
            .collect();
        let mut want: Vec<(String, i64)> = files.iter().map(|(p, b)| (format!("model/{p}"), b.len() as i64)).collect();
        want.push(("notes.txt".into(), 19));
        want.sort();
        assert_eq!(listed, want, "the artifact listing MLflow's Python client sees");
        for (p, bytes) in &files {
            assert_eq!(back["contents"][format!("model/{p}")], hex(bytes).as_str(), "content of model/{p}");
        }
        assert_eq!(back["contents"]["notes.txt"], hex(b"hello from the lab\n").as_str());
    }

    /// Bytes under a path with spaces read back through kernels; empty and escaping paths are refused.
    fn uploaded_bytes_read_back_through_kernels() {
        let url = server_url();
        block_on(async {
            let proxy = FaultProxy::start(port_of(&url), |_, _| Action::Forward).await;
            let c = lab_client(&proxy.url(), 3);
            let k = kernels_client(&url);
            let (_, run) = lab_run(&c, "artifacts-bytes").await;
            let blob: Vec<u8> = (0..200_000u32).map(|i| (i.wrapping_mul(2654435761) >> 24) as u8).collect();
            c.upload_artifact_bytes(&run.info, "a b/c.bin", blob.clone()).await.expect("upload_artifact_bytes");
            let theirs = k.get_run(&run.info.run_id).await.expect("kernels get_run");
            assert_eq!(k.read_artifact(&theirs.info, "a b/c.bin").await.expect("kernels reads it"), blob);
            let before = proxy.hits("mlflow-artifacts");
            for bad in ["", "/", "../escape.bin", "x/../../escape.bin"] {
                match c.upload_artifact_bytes(&run.info, bad, vec![1]).await {
                    Err(Error::InvalidArgument(_)) => {}
                    other => panic!("artifact path {bad:?} must be Error::InvalidArgument, got {other:?}"),
                }
            }
            assert_eq!(proxy.hits("mlflow-artifacts"), before, "refused paths must not reach the server");
        });
    }

    /// A local file or folder that does not exist is Error::Io naming it.
    fn missing_local_files_are_io_errors() {
        let url = server_url();
        block_on(async {
            let c = lab_client(&url, 3);
            let (_, run) = lab_run(&c, "artifacts-io").await;
            let missing = std::env::temp_dir().join(unique("c3w1-no-such-file"));
            match c.upload_artifact(&run.info, &missing, None).await {
                Err(Error::Io { path, .. }) => assert_eq!(path, missing),
                other => panic!("a missing file must be Error::Io, got {other:?}"),
            }
            match c.upload_artifacts(&run.info, &missing, Some("x")).await {
                Err(Error::Io { path, .. }) => assert_eq!(path, missing),
                other => panic!("a missing folder must be Error::Io, got {other:?}"),
            }
        });
    }

    // ---- c3w1.retry ------------------------------------------------------------

    /// Huge retry numbers hit the cap without overflow; multiplier < 1 counts as 1; jitter stays in bounds.
    fn backoff_is_capped_without_overflow_and_jitter_stays_in_bounds() {
        let p = RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(700),
            multiplier: 3.0,
            jitter: 0.4,
        };
        // Milliseconds, rounded: float arithmetic may land a nanosecond either side of a whole millisecond.
        let ms = |d: Duration| (d.as_secs_f64() * 1000.0).round() as u64;
        assert_eq!([0, 1, 2, 3, 4, 1000, u32::MAX].map(|r| ms(p.backoff(r))), [50, 50, 150, 450, 700, 700, 700]);
        let flat = RetryPolicy { multiplier: 0.5, ..p.clone() };
        assert_eq!([1, 2, 5].map(|r| ms(flat.backoff(r))), [50, 50, 50], "a multiplier below 1 counts as 1");
        assert_eq!(ms(p.jittered(3, 1.0)), 270, "the most jitter takes 40 % of 450 ms away");
        let wild = RetryPolicy { jitter: 3.0, ..p.clone() };
        assert_eq!(ms(wild.jittered(2, 0.5)), 75, "jitter is clamped to 1");
        assert_eq!(ms(p.jittered(2, -4.0)), 150, "unit is clamped to [0, 1]");
        for r in 1..8 {
            for _ in 0..50 {
                let d = p.delay(r);
                let (high, low) = (p.backoff(r), p.backoff(r).mul_f64(0.6).saturating_sub(Duration::from_micros(1)));
                assert!(d <= high && d >= low, "retry {r}: {d:?} outside [0.6, 1] × {:?}", p.backoff(r));
            }
        }
        for (status, want) in [
            (429, true),
            (500, true),
            (502, true),
            (503, true),
            (599, true),
            (400, false),
            (401, false),
            (404, false),
            (409, false),
            (600, false),
            (200, false),
        ] {
            assert_eq!(retry::is_retryable_status(status), want, "is_retryable_status({status})");
            let err = Error::from_response("e", status, b"", 1);
            assert_eq!(retry::is_retryable(&err), want, "is_retryable of an HTTP {status} answer");
        }
        assert!(!retry::is_retryable(&Error::InvalidArgument("x".into())), "bad input is never retried");
    }

    /// Two 503s in front of get-by-name: the lab retries and succeeds on the third attempt.
    fn two_503s_are_retried_then_the_call_succeeds() {
        let url = server_url();
        block_on(async {
            let proxy = FaultProxy::start(port_of(&url), |path, n| {
                if path.contains("experiments/get-by-name") && n < 2 { Action::Respond(503) } else { Action::Forward }
            })
            .await;
            let c = lab_client(&proxy.url(), 5);
            let name = unique("retry-503");
            let id = c.create_experiment(&name).await.expect("create_experiment");
            let got = c.get_experiment_by_name(&name).await.expect("the third attempt succeeds");
            assert_eq!(got.experiment_id, id);
            assert_eq!(proxy.hits("experiments/get-by-name"), 3, "two 503s, then the real answer");
            assert_eq!(proxy.hits("experiments/create"), 1, "a call that succeeds at once is sent once");
        });
    }

    /// A 400 comes back after one attempt; persistent 503s stop after max_attempts, with the count in the error.
    fn a_400_is_returned_at_once_while_persistent_503s_stop_at_max_attempts() {
        let url = server_url();
        block_on(async {
            let proxy = FaultProxy::start(port_of(&url), |path, _| {
                if path.contains("get-by-name") {
                    Action::Respond(400)
                } else if path.contains("runs/get") {
                    Action::Respond(503)
                } else {
                    Action::Forward
                }
            })
            .await;
            let c = lab_client(&proxy.url(), 4);
            let err = c.get_experiment_by_name("anything").await.expect_err("an injected 400");
            assert_eq!(mlflow_error(&err), (400, "INVALID_PARAMETER_VALUE".into(), 1), "{err}");
            assert_eq!(proxy.hits("get-by-name"), 1, "a 400 must not be retried");
            let err = c.get_run("0123456789abcdef0123456789abcdef").await.expect_err("503 forever");
            assert_eq!(mlflow_error(&err), (503, "TEMPORARILY_UNAVAILABLE".into(), 4), "{err}");
            assert_eq!(proxy.hits("runs/get"), 4, "persistent 503s: exactly max_attempts requests");
        });
    }

    /// A dropped connection and a 429 are retried; a refused connection is retried max_attempts times.
    fn dropped_connections_429_and_refused_connections_are_retried() {
        let url = server_url();
        block_on(async {
            let proxy = FaultProxy::start(port_of(&url), |path, n| match (path.contains("experiments/create"), n) {
                (true, 0) => Action::Drop,
                (true, 1) => Action::Respond(429),
                _ => Action::Forward,
            })
            .await;
            let c = lab_client(&proxy.url(), 5);
            let name = unique("retry-drop");
            let id = c.create_experiment(&name).await.expect("the third attempt succeeds");
            assert_eq!(proxy.hits("experiments/create"), 3, "dropped, 429, then created");
            assert_eq!(kernels_client(&url).get_experiment_by_name(&name).await.expect("it exists").experiment_id, id);

            let nobody = lab_client(&format!("http://127.0.0.1:{}", reference::free_port()), 3);
            match nobody.get_experiment("0").await {
                Err(Error::Transport { attempts, .. }) => assert_eq!(attempts, 3, "a refused connection is retried"),
                other => panic!("expected Error::Transport after 3 attempts, got {other:?}"),
            }
        });
    }
}
