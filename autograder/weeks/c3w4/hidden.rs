//! Hidden tests of week c3w4 (inference systems): the flattened forest and batch prediction
//! against `kernels::ml::flat::FlatForest` bit for bit (fraud features from the seeded card
//! transactions, multi-class and regression forests, NaN rows); the micro-batcher under adversarial
//! request sequences (bursts larger than a batch, a lone request, zero delay, a full queue, shutdown
//! with requests queued, a panicking scorer, many threads), checked by logic (batch sizes, order,
//! every request answered exactly once) and generous time bounds only; sticky assignment against
//! `kernels::abtest`; the z-test and Welch's t-test against scipy (`fixtures/make_fixtures.py`) to
//! 1e-9 relative; the syscall summary and the hash-chain verifier against `kernels::audit` on logs
//! written by its `LogWriter`, tampered every way.

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::bench::{fraud_features, fraud_forest, repeat_rows};
use c3w4_serving as lab;
use kernels::audit::{self as audit, LogCheck};
use kernels::ml::Matrix;
use kernels::ml::flat::{DEFAULT_LEFT, FlatForest};
use kernels::ml::forest::ForestConfig;
use kernels::ml::tree::{Criterion, TreeConfig};
use lab::Error;
use lab::batcher::{BatchConfig, Batcher, Scored};
use lab::chain::ChainCheck;
use serde_json::Value;

const STATS: &str = include_str!("fixtures/stats_cases.json");

/// SplitMix64: the tests' own random stream.
struct Sm(u64);

impl Sm {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        ((self.next() as u128 * n as u128) >> 64) as usize
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.unit().max(1e-300), self.unit());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

// ------------------------------------------------------------------ flatten and batch

/// Asserts that the lab's model has exactly kernels' node array.
fn check_layout(lab_m: &lab::flat::FlatModel, k: &FlatForest, what: &str) {
    assert_eq!(lab_m.n_trees(), k.n_trees(), "{what}: number of trees");
    assert_eq!(lab_m.n_outputs, k.n_outputs(), "{what}: n_outputs");
    assert_eq!(lab_m.n_features, k.n_features(), "{what}: n_features");
    let nodes = k.nodes();
    assert_eq!(lab_m.feature.len(), nodes.len(), "{what}: number of internal nodes");
    for arr in [lab_m.threshold.len(), lab_m.nan_left.len(), lab_m.left.len(), lab_m.right.len()] {
        assert_eq!(arr, nodes.len(), "{what}: every node array has one entry per internal node");
    }
    for (i, n) in nodes.iter().enumerate() {
        let feature = lab_m.feature[i] | if lab_m.nan_left[i] { DEFAULT_LEFT } else { 0 };
        assert_eq!(feature, n.feature, "{what}: node {i} feature / NaN side");
        assert_eq!(lab_m.threshold[i].to_bits(), n.threshold.to_bits(), "{what}: node {i} threshold");
        assert_eq!(
            (lab_m.left[i], lab_m.right[i]),
            (n.left, n.right),
            "{what}: node {i} children (preorder, left first)"
        );
    }
}

/// Asserts bit equality of the lab's row scores with kernels' on every row of `x`.
fn check_rows(lab_m: &lab::flat::FlatModel, k: &FlatForest, x: &Matrix, what: &str) {
    let kk = k.n_outputs();
    let (mut a, mut b) = (vec![0.0f32; kk], vec![0.0f32; kk]);
    for r in 0..x.rows() {
        lab_m.predict_row_into(x.row(r), &mut a).unwrap_or_else(|e| panic!("{what}: row {r}: {e}"));
        k.predict_row_into(x.row(r), &mut b).expect("kernels row");
        for j in 0..kk {
            assert_eq!(a[j].to_bits(), b[j].to_bits(), "{what}: row {r} output {j}: yours {} kernels {}", a[j], b[j]);
        }
    }
}

/// `x` with about one value in `every` replaced by NaN.
fn with_nans(x: &Matrix, every: usize, seed: u64) -> Matrix {
    let mut rng = Sm(seed);
    let data = x.data().iter().map(|&v| if rng.below(every) == 0 { f32::NAN } else { v }).collect();
    Matrix::new(x.rows(), x.cols(), data).unwrap()
}

/// Three Gaussian blobs in 4-d (classes 0, 1, 2) and a continuous target.
fn blobs3(n: usize, seed: u64) -> (Matrix, Vec<f32>, Vec<f32>) {
    let mut rng = Sm(seed);
    let (mut data, mut y, mut t) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..n {
        let c = i % 3;
        let mut s = 0.0;
        for j in 0..4 {
            let v = (c as f64) * 1.5 * ((j % 2) as f64 + 0.5) + rng.normal();
            s += v * (j as f64 + 1.0);
            data.push(v as f32);
        }
        y.push(c as f32);
        t.push((s + 0.3 * rng.normal()) as f32);
    }
    (Matrix::new(n, 4, data).unwrap(), y, t)
}

fn forest_cfg(trees: usize, depth: usize, criterion: Criterion) -> ForestConfig {
    ForestConfig {
        n_trees: trees,
        tree: TreeConfig { max_depth: Some(depth), criterion, ..Default::default() },
        seed: 3,
        ..Default::default()
    }
}

// ------------------------------------------------------------------ batcher helpers

/// A scorer that doubles the first value of each row and, on its first call only, reports the
/// number of rows and waits for the gate to open.
fn gated_scorer(
    entered: mpsc::Sender<usize>,
    gate: mpsc::Receiver<()>,
    n_features: usize,
) -> impl FnMut(&[f32], usize) -> Vec<f32> + Send + 'static {
    let mut first = true;
    move |data: &[f32], rows: usize| {
        if first {
            first = false;
            let _ = entered.send(rows);
            let _ = gate.recv_timeout(Duration::from_secs(20));
        }
        data.chunks_exact(n_features).take(rows).map(|r| r[0] * 2.0).collect()
    }
}

fn doubler(data: &[f32], rows: usize) -> Vec<f32> {
    data[..rows].iter().map(|v| v * 2.0).collect()
}

// ------------------------------------------------------------------ audit helpers

static TMP: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn tmp_path(tag: &str) -> std::path::PathBuf {
    let n = TMP.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir().join(format!("c3w4-hidden-{}-{tag}-{n}.jsonl", std::process::id()))
}

const NAMES: [&str; 9] = ["read", "write", "openat", "close", "mmap", "fstat", "connect", "futex", "épоll_wait"];

fn random_event(rng: &mut Sm, i: usize) -> audit::Event {
    let name = NAMES[rng.below(NAMES.len())].to_string();
    let ret = match rng.below(6) {
        0 => -(1 + rng.below(4095) as i64),
        1 => -4096 - rng.below(1000) as i64,
        2 => 0,
        _ => rng.below(1 << 20) as i64,
    };
    let failed = (-4095..0).contains(&ret);
    audit::Event {
        pid: 1000 + rng.below(3) as i32,
        t_us: i as u64 * 7,
        dur_ns: rng.below(50_000) as u64,
        nr: rng.below(400) as u64,
        name,
        ret,
        errno: failed.then(|| "ENOENT".to_string()),
        detail: audit::Detail {
            path: (rng.below(3) == 0).then(|| format!("/tmp/dir {i}/日本/\"q\"\\x")),
            ..Default::default()
        },
        violation: None,
    }
}

/// Writes a kernels log of `events` and returns its bytes and the events.
fn kernels_log(events: usize, seed: u64) -> (Vec<u8>, Vec<audit::Event>) {
    let path = tmp_path("log");
    let start = audit::LogStart {
        argv: vec!["/bin/true".into(), "--x=é".into()],
        policy: Default::default(),
        unix_ms: 1_764_800_000_000,
    };
    let mut w = audit::LogWriter::create(&path, &start).expect("kernels log");
    let mut rng = Sm(seed);
    let evs: Vec<audit::Event> = (0..events).map(|i| random_event(&mut rng, i)).collect();
    for e in &evs {
        w.event(e).expect("event");
    }
    w.finish(&audit::LogEnd { events: 0, exit: audit::ExitKind::Code(0), violations: 0, tasks: 1, elapsed_us: 1234 })
        .expect("finish");
    let bytes = std::fs::read(&path).expect("read log");
    let _ = std::fs::remove_file(&path);
    (bytes, evs)
}

fn kind(c: &LogCheck) -> ChainCheck {
    match c {
        LogCheck::Malformed(_) => ChainCheck::Malformed,
        LogCheck::Sequence { .. } => ChainCheck::Sequence,
        LogCheck::PrevHash { .. } => ChainCheck::PrevHash,
        LogCheck::Seal { .. } => ChainCheck::Seal,
        LogCheck::Count { .. } => ChainCheck::Count,
        LogCheck::AfterEnd => ChainCheck::AfterEnd,
        LogCheck::Truncated { .. } => ChainCheck::Truncated,
    }
}

/// kernels' verdict on `bytes`: (records, head) or (line, check).
fn kernels_verdict(bytes: &[u8]) -> Result<(u64, String), (u64, ChainCheck)> {
    let path = tmp_path("verify");
    std::fs::write(&path, bytes).expect("write");
    let r = audit::verify_log(&path);
    let _ = std::fs::remove_file(&path);
    match r {
        Ok(v) => Ok((v.records, v.head)),
        Err(kernels::Error::AuditLog { line, check, .. }) => Err((line, kind(&check))),
        Err(e) => panic!("unexpected kernels error {e}"),
    }
}

/// Asserts that the lab's verdict on `bytes` is kernels'.
fn check_chain(bytes: &[u8], what: &str) {
    let want = kernels_verdict(bytes);
    let got = match lab::chain::verify_chain(bytes) {
        Ok(h) => Ok((h.records, h.head)),
        Err(Error::Chain { line, check }) => Err((line, check)),
        Err(e) => panic!("{what}: verify_chain returned {e:?}, expected Error::Chain or Ok"),
    };
    assert_eq!(got, want, "{what}: your verdict (left) differs from kernels::audit::verify_log (right)");
}

fn lines_of(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = bytes.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
    if v.last().is_some_and(Vec::is_empty) {
        v.pop();
    }
    v
}

fn join_lines(lines: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for l in lines {
        out.extend_from_slice(l);
        out.push(b'\n');
    }
    out
}

fn kernels_summary(events: &[audit::Event]) -> audit::Summary {
    let mut s = audit::Summary::default();
    for e in events {
        s.add(&e.name, e.failed(), e.dur_ns);
    }
    s
}

fn lab_rows(s: &lab::summary::Summary) -> BTreeMap<String, (u64, u64, u64)> {
    s.rows.iter().map(|(n, r)| (n.clone(), (r.calls, r.errors, r.total_ns))).collect()
}

fn kernels_rows(s: &audit::Summary) -> BTreeMap<String, (u64, u64, u64)> {
    s.rows.iter().map(|(n, r)| (n.clone(), (r.calls, r.errors, r.total_ns))).collect()
}

// ------------------------------------------------------------------ statistics helpers

fn rel_close(a: f64, b: f64, tol: f64) -> bool {
    a == b || (a - b).abs() <= tol * a.abs().max(b.abs()) || (a - b).abs() < 1e-300
}

fn check_field(name: &str, got: f64, want: f64, tol: f64, case: &str) {
    assert!(rel_close(got, want, tol), "{case}: {name} is {got:e}, expected {want:e} (relative tolerance {tol:e})");
}

fn fixture() -> Value {
    serde_json::from_str(STATS).expect("stats fixture")
}

fn f(v: &Value) -> f64 {
    v.as_f64().expect("number")
}

graded! {
    // ------------------------------------------------------------ c3w4.flatten

    /// A 12-tree fraud forest and a single tree: every node array equals kernels' FlatForest nodes.
    fn flat_layout_equals_kernels_node_for_node() {
        let (forest, x) = fraud_forest(3_000, 12, 8);
        check_layout(&lab::flat::FlatModel::from_forest(&forest), &FlatForest::from_forest(&forest), "fraud forest");
        let y: Vec<f32> = (0..x.rows()).map(|i| f32::from(u8::from(x.get(i, 7) > 1.5))).collect();
        let tree = kernels::ml::tree::fit(&x, &y, &TreeConfig { max_depth: Some(6), ..Default::default() }).unwrap();
        check_layout(&lab::flat::FlatModel::from_tree(&tree), &FlatForest::from_tree(&tree), "single tree");
    }

    /// P(fraud) of 3 000 unseen rows (and the same rows with NaNs) equals kernels' bit for bit.
    fn flat_predictions_equal_kernels_bit_for_bit_on_fraud_rows() {
        let (forest, _) = fraud_forest(3_000, 24, 10);
        let (all, _) = fraud_features(6_000, 5);
        let x = all.select_rows(&(3_000..6_000).collect::<Vec<_>>());
        let (m, k) = (lab::flat::FlatModel::from_forest(&forest), FlatForest::from_forest(&forest));
        check_rows(&m, &k, &x, "fraud rows");
        check_rows(&m, &k, &with_nans(&x, 5, 9), "fraud rows with NaNs");
    }

    /// Three classes (three outputs), a regression forest and a tree that is a single leaf.
    fn flat_handles_multiclass_regression_and_single_leaf_trees() {
        let (x, y, t) = blobs3(600, 21);
        let multi = kernels::ml::forest::fit(&x, &y, &forest_cfg(9, 6, Criterion::Gini)).unwrap();
        let (m, k) = (lab::flat::FlatModel::from_forest(&multi), FlatForest::from_forest(&multi));
        check_layout(&m, &k, "3-class forest");
        check_rows(&m, &k, &with_nans(&x, 7, 2), "3-class forest");
        let reg = kernels::ml::forest::fit(&x, &t, &forest_cfg(7, 5, Criterion::Mse)).unwrap();
        let (m, k) = (lab::flat::FlatModel::from_forest(&reg), FlatForest::from_forest(&reg));
        check_layout(&m, &k, "regression forest");
        check_rows(&m, &k, &x, "regression forest");
        let ones = vec![1.0f32; x.rows()];
        let stump = kernels::ml::tree::fit(&x, &ones, &TreeConfig::default()).unwrap();
        let (m, k) = (lab::flat::FlatModel::from_tree(&stump), FlatForest::from_tree(&stump));
        assert!(m.feature.is_empty() && m.roots.len() == 1 && m.roots[0] & lab::flat::LEAF != 0, "a single-leaf tree has a leaf root and no node: {m:?}");
        check_rows(&m, &k, &x, "single-leaf tree");
        let mut out = vec![0.0f32; 3];
        let m3 = lab::flat::FlatModel::from_forest(&multi);
        assert!(matches!(m3.predict_row_into(&[1.0, 2.0, 3.0, 4.0], &mut out[..2]), Err(Error::InvalidInput(_))), "out of the wrong length");
        assert!(matches!(m3.predict_row_into(&[1.0, 2.0, 3.0], &mut out), Err(Error::InvalidInput(_))), "row of the wrong length");
    }

    // ------------------------------------------------------------ c3w4.batch-predict

    /// 5 000 fraud rows (with NaNs) and a 3-class forest: predict_batch equals predict_batch_all.
    fn batch_equals_kernels_predict_batch_all_on_fraud_rows() {
        let (forest, x) = fraud_forest(3_000, 24, 10);
        let x = with_nans(&repeat_rows(&x, 5_000), 11, 4);
        let (m, k) = (lab::flat::FlatModel::from_forest(&forest), FlatForest::from_forest(&forest));
        let got = lab::batch::predict_batch(&m, &x, 0).unwrap();
        let want = k.predict_batch_all(&x).unwrap();
        assert_eq!(got.len(), want.len());
        for (i, (a, b)) in got.iter().zip(&want).enumerate() {
            assert_eq!(a.to_bits(), b.to_bits(), "row {i}: yours {a}, kernels {b}");
        }
        let (x3, y3, _) = blobs3(900, 5);
        let multi = kernels::ml::forest::fit(&x3, &y3, &forest_cfg(5, 6, Criterion::Gini)).unwrap();
        let got = lab::batch::predict_batch(&lab::flat::FlatModel::from_forest(&multi), &x3, 3).unwrap();
        let want = FlatForest::from_forest(&multi).predict_batch_all(&x3).unwrap();
        assert_eq!(got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), "3-class scores, row-major rows × 3");
    }

    /// Sizes around the block size and odd thread counts (more threads than blocks, too).
    fn batch_handles_odd_sizes_and_thread_counts() {
        let (forest, x) = fraud_forest(2_000, 10, 7);
        let (m, k) = (lab::flat::FlatModel::from_forest(&forest), FlatForest::from_forest(&forest));
        for rows in [0usize, 1, 63, 64, 65, 129, 1_000] {
            let xr = repeat_rows(&x, rows.max(1));
            let xr = if rows == 0 { Matrix::new(0, x.cols(), Vec::new()).unwrap() } else { xr };
            let want = k.predict_batch_all(&xr).unwrap();
            for threads in [0usize, 1, 2, 7, 200] {
                let got = lab::batch::predict_batch(&m, &xr, threads).unwrap_or_else(|e| panic!("{rows} rows, {threads} threads: {e}"));
                assert_eq!(got.len(), want.len(), "{rows} rows, {threads} threads: length");
                assert!(got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()), "{rows} rows, {threads} threads: scores differ from kernels");
            }
        }
    }

    /// A matrix of the wrong width and a model without trees are typed errors.
    fn batch_rejects_bad_input() {
        let (forest, _) = fraud_forest(1_000, 3, 4);
        let m = lab::flat::FlatModel::from_forest(&forest);
        let narrow = Matrix::new(2, 3, vec![0.0; 6]).unwrap();
        assert!(matches!(lab::batch::predict_batch(&m, &narrow, 1), Err(Error::InvalidInput(_))), "3 columns for 9 features");
        let empty = lab::flat::FlatModel { n_features: 3, n_outputs: 1, ..Default::default() };
        assert!(matches!(lab::batch::predict_batch(&empty, &narrow, 1), Err(Error::InvalidInput(_))), "a model without trees");
    }

    // ------------------------------------------------------------ c3w4.micro-batcher

    /// A lone request waits for company until the deadline (not forever), then is scored alone;
    /// with zero delay it is scored at once.
    fn batcher_lone_request_flushes_at_the_deadline() {
        let cfg = BatchConfig { max_batch: 8, max_delay: Duration::from_millis(80), queue_capacity: 8 };
        let b = Batcher::start(cfg, 1, doubler).unwrap();
        let t0 = Instant::now();
        let s = b.submit(vec![21.0]).unwrap().wait().unwrap();
        let took = t0.elapsed();
        assert_eq!((s.score, s.batch_rows, s.batch), (42.0, 1, 0), "{s:?}");
        assert!(took >= Duration::from_millis(40), "a deadline batcher waits up to max_delay for more rows; answered after {took:?}");
        assert!(took < Duration::from_secs(10), "answered only after {took:?}");
        b.shutdown().unwrap();
        let zero = Batcher::start(BatchConfig { max_delay: Duration::ZERO, ..cfg }, 1, doubler).unwrap();
        for i in 0..5 {
            let s = zero.submit(vec![i as f32]).unwrap().wait().unwrap();
            assert_eq!((s.score, s.batch_rows), (2.0 * i as f32, 1), "zero delay: {s:?}");
        }
        // A full batch goes at once, whatever the deadline.
        let long = Batcher::start(BatchConfig { max_batch: 3, max_delay: Duration::from_secs(60), queue_capacity: 8 }, 1, doubler).unwrap();
        let t0 = Instant::now();
        let ts: Vec<_> = (0..3).map(|i| long.submit(vec![i as f32]).unwrap()).collect();
        for t in ts {
            assert_eq!(t.wait().unwrap().batch_rows, 3);
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "a full batch must not wait for the 60 s deadline");
        long.shutdown().unwrap();
    }

    /// While the scorer is busy, ten requests queue; they are scored in order as batches of 4, 4, 2.
    fn batcher_burst_larger_than_max_batch_is_split_in_order() {
        let (etx, erx) = mpsc::channel();
        let (gtx, grx) = mpsc::channel();
        let cfg = BatchConfig { max_batch: 4, max_delay: Duration::from_millis(50), queue_capacity: 64 };
        let b = Batcher::start(cfg, 2, gated_scorer(etx, grx, 2)).unwrap();
        let t0 = b.submit(vec![100.0, 0.0]).unwrap();
        assert_eq!(erx.recv_timeout(Duration::from_secs(10)).expect("the first request is scored"), 1);
        let tickets: Vec<_> = (1..=10).map(|i| b.submit(vec![i as f32, -1.0]).unwrap()).collect();
        gtx.send(()).unwrap();
        assert_eq!(t0.wait().unwrap(), Scored { score: 200.0, batch: 0, batch_rows: 1 });
        let got: Vec<Scored> = tickets.into_iter().map(|t| t.wait().unwrap()).collect();
        for (i, s) in got.iter().enumerate() {
            assert_eq!(s.score, 2.0 * (i + 1) as f32, "request {} got another request's score: {s:?}", i + 1);
        }
        let shape: Vec<(u64, usize)> = got.iter().map(|s| (s.batch, s.batch_rows)).collect();
        let want: Vec<(u64, usize)> = [(1, 4); 4].into_iter().chain([(2, 4); 4]).chain([(3, 2); 2]).collect();
        assert_eq!(shape, want, "(batch, batch_rows) of the ten queued requests, in submit order");
        b.shutdown().unwrap();
    }

    /// A full queue answers Busy at once, and the batcher serves again once it drains.
    fn batcher_full_queue_is_busy_and_recovers() {
        let (etx, erx) = mpsc::channel();
        let (gtx, grx) = mpsc::channel();
        let cfg = BatchConfig { max_batch: 1, max_delay: Duration::ZERO, queue_capacity: 2 };
        let b = Batcher::start(cfg, 1, gated_scorer(etx, grx, 1)).unwrap();
        let first = b.submit(vec![1.0]).unwrap();
        erx.recv_timeout(Duration::from_secs(10)).expect("the first request is scored");
        let queued = [b.submit(vec![2.0]).unwrap(), b.submit(vec![3.0]).unwrap()];
        let t = Instant::now();
        assert_eq!(b.submit(vec![4.0]).unwrap_err(), Error::Busy { capacity: 2 }, "a third waiting request with capacity 2");
        assert!(t.elapsed() < Duration::from_secs(2), "submit must not block on a full queue");
        gtx.send(()).unwrap();
        assert_eq!(first.wait().unwrap().score, 2.0);
        for (i, q) in queued.into_iter().enumerate() {
            assert_eq!(q.wait().unwrap().score, 2.0 * (i + 2) as f32);
        }
        assert_eq!(b.submit(vec![5.0]).unwrap().wait().unwrap().score, 10.0, "serves again after the backlog");
        b.shutdown().unwrap();
    }

    /// Shutdown with requests waiting for a 60 s deadline answers them all at once; then Closed.
    fn batcher_shutdown_drains_queued_requests_without_waiting() {
        let cfg = BatchConfig { max_batch: 100, max_delay: Duration::from_secs(60), queue_capacity: 16 };
        let b = Batcher::start(cfg, 1, doubler).unwrap();
        let tickets: Vec<_> = (0..5).map(|i| b.submit(vec![i as f32]).unwrap()).collect();
        std::thread::sleep(Duration::from_millis(20));
        let t0 = Instant::now();
        b.shutdown().unwrap();
        assert!(t0.elapsed() < Duration::from_secs(10), "shutdown waited {:?}: it must flush, not wait for the deadline", t0.elapsed());
        for (i, t) in tickets.into_iter().enumerate() {
            let s = t.wait().unwrap_or_else(|e| panic!("request {i} queued before shutdown was not answered: {e}"));
            assert_eq!(s.score, 2.0 * i as f32);
        }
        assert_eq!(b.submit(vec![1.0]).unwrap_err(), Error::Closed, "submit after shutdown");
        b.shutdown().unwrap();
        // Dropping a batcher with queued work must not hang either.
        let d = Batcher::start(cfg, 1, doubler).unwrap();
        let t = d.submit(vec![3.0]).unwrap();
        drop(d);
        assert!(matches!(t.wait(), Ok(Scored { score: 6.0, .. }) | Err(Error::Closed)));
    }

    /// A scorer that panics or returns the wrong number of scores fails only its own batch.
    fn batcher_panicking_or_wrong_scorer_answers_errors_and_keeps_going() {
        let cfg = BatchConfig { max_batch: 1, max_delay: Duration::ZERO, queue_capacity: 8 };
        let b = Batcher::start(cfg, 1, |data: &[f32], rows: usize| {
            if data[0].is_nan() {
                panic!("the model blew up");
            }
            if data[0] < 0.0 { Vec::new() } else { doubler(data, rows) }
        })
        .unwrap();
        assert_eq!(b.submit(vec![f32::NAN]).unwrap().wait().unwrap_err(), Error::ScorerPanicked);
        assert!(matches!(b.submit(vec![-1.0]).unwrap().wait(), Err(Error::Scorer(_))), "no scores for one row");
        assert_eq!(b.submit(vec![3.0]).unwrap().wait().unwrap().score, 6.0, "the batcher keeps serving");
        assert_eq!(b.submit(vec![f32::NAN]).unwrap().wait().unwrap_err(), Error::ScorerPanicked);
        assert_eq!(b.submit(vec![4.0]).unwrap().wait().unwrap().score, 8.0);
        b.shutdown().unwrap();
    }

    /// 8 threads × 100 requests through a queue of 4: each answered once, with its own score, and
    /// every batch's reported size is the number of requests that carry its id.
    fn batcher_many_threads_every_request_answered_exactly_once() {
        let cfg = BatchConfig { max_batch: 8, max_delay: Duration::from_millis(1), queue_capacity: 4 };
        let b = Batcher::start(cfg, 1, doubler).unwrap();
        let results: Vec<(f32, Scored)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|t| {
                    let b = &b;
                    s.spawn(move || {
                        let mut tickets = Vec::new();
                        for i in 0..100 {
                            let v = (t * 1000 + i) as f32;
                            let ticket = loop {
                                match b.submit(vec![v]) {
                                    Ok(tk) => break tk,
                                    Err(Error::Busy { .. }) => std::thread::yield_now(),
                                    Err(e) => panic!("submit: {e}"),
                                }
                            };
                            tickets.push((v, ticket));
                        }
                        tickets.into_iter().map(|(v, tk)| (v, tk.wait().expect("answer"))).collect::<Vec<_>>()
                    })
                })
                .collect();
            handles.into_iter().flat_map(|h| h.join().expect("client thread")).collect()
        });
        assert_eq!(results.len(), 800);
        let mut per_batch: BTreeMap<u64, (usize, usize)> = BTreeMap::new();
        for (v, s) in &results {
            assert_eq!(s.score, 2.0 * v, "request {v} got {s:?}");
            assert!(s.batch_rows >= 1 && s.batch_rows <= 8, "batch of {} rows (max 8)", s.batch_rows);
            let e = per_batch.entry(s.batch).or_insert((0, s.batch_rows));
            e.0 += 1;
            assert_eq!(e.1, s.batch_rows, "batch {} reported two sizes", s.batch);
        }
        for (id, (count, rows)) in per_batch {
            assert_eq!(count, rows, "batch {id} says {rows} rows but {count} requests carry its id");
        }
        b.shutdown().unwrap();
    }

    /// Zero batch size, zero queue, zero features and a row of the wrong length are typed errors.
    fn batcher_rejects_bad_config_and_rows() {
        let ok = BatchConfig { max_batch: 4, max_delay: Duration::from_millis(1), queue_capacity: 4 };
        for (cfg, n) in [(BatchConfig { max_batch: 0, ..ok }, 1), (BatchConfig { queue_capacity: 0, ..ok }, 1), (ok, 0)] {
            assert!(matches!(Batcher::start(cfg, n, doubler), Err(Error::InvalidInput(_))), "{cfg:?} with {n} features");
        }
        let b = Batcher::start(ok, 3, doubler).unwrap();
        assert!(matches!(b.submit(vec![1.0, 2.0]), Err(Error::InvalidInput(_))), "2 values for 3 features");
        assert!(matches!(b.submit(Vec::new()), Err(Error::InvalidInput(_))), "an empty row");
        b.shutdown().unwrap();
    }

    // ------------------------------------------------------------ c3w4.sticky-hash

    /// 20 000 keys × 4 salts × 6 splits: hash, unit point and arm equal kernels::abtest's.
    fn sticky_assignment_equals_kernels_on_many_keys() {
        use kernels::abtest as ab;
        let mut rng = Sm(8);
        for _ in 0..300 {
            let bytes: Vec<u8> = (0..rng.below(40)).map(|_| rng.next() as u8).collect();
            assert_eq!(lab::sticky::fnv1a64_continue(lab::sticky::FNV_OFFSET, &bytes), ab::fnv1a64(&bytes), "FNV-1a of {bytes:?}");
        }
        let salts = ["", "exp-7", "日本-rollout", &"s".repeat(300)];
        let splits: [&[f64]; 6] = [&[0.5, 0.5], &[0.1, 0.2, 0.7], &[0.0, 1.0, 0.0], &[1.0 / 3.0; 3], &[0.1; 10], &[0.999999, 0.000001]];
        for salt in salts {
            for i in 0..20_000 {
                let key = if i % 7 == 0 { format!("ключ-{i}") } else { format!("user-{i}") };
                assert_eq!(lab::sticky::assignment_hash(&key, salt), ab::assignment_hash(&key, salt), "hash of ({key}, {salt})");
                assert_eq!(lab::sticky::unit_point(&key, salt).to_bits(), ab::unit_point(&key, salt).to_bits(), "unit point of ({key}, {salt})");
                let split = splits[i % splits.len()];
                assert_eq!(lab::sticky::assign(&key, salt, split).unwrap(), ab::assign(&key, salt, split).unwrap(), "arm of ({key}, {salt}) under {split:?}");
            }
        }
    }

    /// 100 000 keys follow a 20/30/50 split within 1%; a new salt moves about half the keys of a 50/50 split.
    fn sticky_split_is_proportional_and_salt_reshuffles() {
        let mut counts = [0usize; 3];
        for i in 0..100_000 {
            counts[lab::sticky::assign(&format!("u{i}"), "exp", &[0.2, 0.3, 0.5]).unwrap()] += 1;
        }
        for (c, w) in counts.iter().zip([0.2, 0.3, 0.5]) {
            assert!((*c as f64 / 1e5 - w).abs() < 0.01, "arm share {} for weight {w}", *c as f64 / 1e5);
        }
        let moved = (0..20_000)
            .filter(|i| {
                let k = format!("u{i}");
                lab::sticky::assign(&k, "exp-a", &[0.5, 0.5]).unwrap() != lab::sticky::assign(&k, "exp-b", &[0.5, 0.5]).unwrap()
            })
            .count();
        assert!((0.45..0.55).contains(&(moved as f64 / 2e4)), "{moved} of 20000 keys changed arm with the salt");
        assert_ne!(lab::sticky::assignment_hash("ab", "c"), lab::sticky::assignment_hash("a", "bc"), "the 0xFF separator");
    }

    /// Arms of weight 0 never receive a key; invalid splits are typed errors.
    fn sticky_edge_splits_and_errors() {
        for i in 0..5_000 {
            let k = format!("k{i}");
            assert_eq!(lab::sticky::assign(&k, "s", &[0.0, 1.0, 0.0]).unwrap(), 1);
            assert_eq!(lab::sticky::assign(&k, "s", &[1.0]).unwrap(), 0);
            assert_ne!(lab::sticky::assign(&k, "s", &[0.5, 0.0, 0.5]).unwrap(), 1, "a weight-0 arm got {k}");
        }
        let bad: [&[f64]; 6] = [&[], &[f64::NAN, 1.0], &[-0.1, 1.1], &[0.5, 0.6], &[f64::INFINITY], &[0.5, 0.5 - 1e-8]];
        for split in bad {
            assert!(matches!(lab::sticky::assign("k", "s", split), Err(Error::InvalidInput(_))), "{split:?} must be rejected");
        }
        assert!(lab::sticky::assign("k", "s", &[0.5, 0.5 - 1e-10]).is_ok(), "a sum within 1e-9 of 1 is accepted");
    }

    // ------------------------------------------------------------ c3w4.z-test

    /// Ten scipy cases (fixtures/stats_cases.json), every field to 1e-9 relative.
    fn ztest_matches_scipy_fixture() {
        for c in fixture()["ztest"].as_array().unwrap() {
            let n = |k: &str| c[k].as_u64().unwrap();
            let case = format!("{}/{} vs {}/{}", n("successes_a"), n("trials_a"), n("successes_b"), n("trials_b"));
            let r = lab::stats::two_proportion_ztest(n("successes_a"), n("trials_a"), n("successes_b"), n("trials_b"), f(&c["confidence"]))
                .unwrap_or_else(|e| panic!("{case}: {e}"));
            for (name, got) in [("diff", r.diff), ("z", r.z), ("p_value", r.p_value), ("se_pooled", r.se_pooled), ("se_unpooled", r.se_unpooled), ("ci_low", r.ci_low), ("ci_high", r.ci_high)] {
                check_field(name, got, f(&c[name]), 1e-9, &case);
            }
        }
    }

    /// 300 random count pairs: every field equal to kernels::abtest to 1e-12 relative.
    fn ztest_equals_kernels_on_random_counts() {
        let mut rng = Sm(31);
        for _ in 0..300 {
            let (na, nb) = (1 + rng.below(100_000) as u64, 1 + rng.below(100_000) as u64);
            let (sa, sb) = (rng.below(na as usize + 1) as u64, rng.below(nb as usize + 1) as u64);
            let conf = [0.8, 0.9, 0.95, 0.99, 0.999][rng.below(5)];
            let want = kernels::abtest::two_proportion_ztest(sa, na, sb, nb, conf);
            let got = lab::stats::two_proportion_ztest(sa, na, sb, nb, conf);
            let case = format!("{sa}/{na} vs {sb}/{nb} at {conf}");
            match (got, want) {
                (Ok(g), Ok(w)) => {
                    for (name, a, b) in [("z", g.z, w.z), ("p_value", g.p_value, w.p_value), ("ci_low", g.ci_low, w.ci_low), ("ci_high", g.ci_high, w.ci_high), ("p_a", g.p_a, w.p_a), ("p_b", g.p_b, w.p_b)] {
                        check_field(name, a, b, 1e-12, &case);
                    }
                }
                (Err(_), Err(_)) => {}
                (g, w) => panic!("{case}: yours {g:?}, kernels {w:?}"),
            }
        }
    }

    /// No trials, more successes than trials, a confidence outside (0, 1) and no variance are errors.
    fn ztest_rejects_bad_input() {
        let z = lab::stats::two_proportion_ztest;
        for (args, why) in [
            ((5, 0, 1, 10, 0.95), "no trials in a"),
            ((1, 10, 0, 0, 0.95), "no trials in b"),
            ((11, 10, 1, 10, 0.95), "more successes than trials"),
            ((1, 10, 1, 10, 0.0), "confidence 0"),
            ((1, 10, 1, 10, 1.0), "confidence 1"),
            ((1, 10, 1, 10, f64::NAN), "confidence NaN"),
            ((10, 10, 5, 5, 0.95), "every trial succeeded"),
            ((0, 10, 0, 7, 0.95), "every trial failed"),
        ] {
            let (a, b, c, d, e) = args;
            assert!(matches!(z(a, b, c, d, e), Err(Error::InvalidInput(_))), "{why}: {args:?}");
        }
    }

    // ------------------------------------------------------------ c3w4.welch

    /// Nine scipy cases (ttest_ind, equal_var=False), every field to 1e-9 relative.
    fn welch_matches_scipy_fixture() {
        for (i, c) in fixture()["welch"].as_array().unwrap().iter().enumerate() {
            let v = |k: &str| c[k].as_array().unwrap().iter().map(f).collect::<Vec<f64>>();
            let case = format!("welch case {i}");
            let r = lab::stats::welch_ttest(&v("a"), &v("b"), f(&c["confidence"])).unwrap_or_else(|e| panic!("{case}: {e}"));
            for (name, got) in [("t", r.t), ("df", r.df), ("p_value", r.p_value), ("diff", r.diff), ("ci_low", r.ci_low), ("ci_high", r.ci_high)] {
                check_field(name, got, f(&c[name]), 1e-9, &case);
            }
        }
    }

    /// 200 random sample pairs: every field equal to kernels::abtest to 1e-12 relative.
    fn welch_equals_kernels_on_random_samples() {
        let mut rng = Sm(77);
        for i in 0..200 {
            let (na, nb) = (2 + rng.below(60), 2 + rng.below(60));
            let (ma, sa) = (rng.normal() * 10.0, 0.01 + rng.unit() * 5.0);
            let (mb, sb) = (ma + rng.normal(), 0.01 + rng.unit() * 5.0);
            let a: Vec<f64> = (0..na).map(|_| ma + sa * rng.normal()).collect();
            let b: Vec<f64> = (0..nb).map(|_| mb + sb * rng.normal()).collect();
            let g = lab::stats::welch_ttest(&a, &b, 0.95).unwrap_or_else(|e| panic!("case {i}: {e}"));
            let w = kernels::abtest::welch_ttest(&a, &b, 0.95).unwrap();
            for (name, x, y) in [("t", g.t, w.t), ("df", g.df, w.df), ("p_value", g.p_value, w.p_value), ("se", g.se, w.se), ("ci_low", g.ci_low, w.ci_low), ("ci_high", g.ci_high, w.ci_high)] {
                check_field(name, x, y, 1e-12, &format!("case {i}"));
            }
        }
    }

    /// Too few values, non-finite values, constant samples and a bad confidence are errors.
    fn welch_rejects_bad_input() {
        let w = lab::stats::welch_ttest;
        let ok = [1.0, 2.0, 3.0];
        for (a, b, conf, why) in [
            (&[1.0][..], &ok[..], 0.95, "one value"),
            (&[][..], &ok[..], 0.95, "empty"),
            (&ok[..], &[1.0, f64::NAN][..], 0.95, "NaN"),
            (&[f64::INFINITY, 1.0][..], &ok[..], 0.95, "infinity"),
            (&[2.0, 2.0][..], &[5.0, 5.0, 5.0][..], 0.95, "both constant"),
            (&ok[..], &ok[..], 1.5, "confidence 1.5"),
        ] {
            assert!(matches!(w(a, b, conf), Err(Error::InvalidInput(_))), "{why}");
        }
    }

    // ------------------------------------------------------------ c3w4.syscall-summary

    /// A 3 000-event log written by kernels::audit's LogWriter: rows equal kernels' Summary.
    fn summary_equals_kernels_on_a_generated_log() {
        let (bytes, events) = kernels_log(3_000, 12);
        let got = lab::summary::summarize(std::str::from_utf8(&bytes).unwrap()).unwrap();
        assert_eq!(lab_rows(&got), kernels_rows(&kernels_summary(&events)));
        let empty = kernels_log(0, 1).0;
        assert!(lab::summary::summarize(std::str::from_utf8(&empty).unwrap()).unwrap().rows.is_empty(), "a log without events");
    }

    /// Ties in time and in calls: the order is kernels' (time, calls descending, then name).
    fn summary_sorted_like_strace_c() {
        let ev = |name: &str, dur: u64| format!("{{\"name\":\"{name}\",\"ret\":0,\"dur_ns\":{dur}}}\n");
        let mut text = String::new();
        let mut k = audit::Summary::default();
        for (name, durs) in [("b", &[50u64, 50][..]), ("a", &[100][..]), ("c", &[100][..]), ("d", &[30, 30, 40][..]), ("e", &[1][..]), ("zz", &[0, 0][..]), ("y", &[0, 0][..])] {
            for &d in durs {
                text.push_str(&ev(name, d));
                k.add(name, false, d);
            }
        }
        let got: Vec<(String, (u64, u64, u64))> =
            lab::summary::summarize(&text).unwrap().sorted().into_iter().map(|(n, r)| (n, (r.calls, r.errors, r.total_ns))).collect();
        let want: Vec<(String, (u64, u64, u64))> = k.sorted().into_iter().map(|(n, r)| (n.to_string(), (r.calls, r.errors, r.total_ns))).collect();
        assert_eq!(got, want);
    }

    /// Only −4095 ..= −1 are errors (a large negative mmap address is not).
    fn summary_counts_the_error_range_exactly() {
        let mut text = String::new();
        for ret in [-4096i64, -4095, -1, 0, 1, i64::MIN, -100_000, 4095] {
            text.push_str(&format!("{{\"name\":\"mmap\",\"ret\":{ret},\"dur_ns\":1}}\n"));
        }
        let s = lab::summary::summarize(&text).unwrap();
        assert_eq!((s.rows["mmap"].calls, s.rows["mmap"].errors), (8, 2));
    }

    /// Not JSON, not an object, a missing or mistyped key: Malformed at the right 1-based line.
    fn summary_malformed_lines_are_typed_errors() {
        let good = "{\"name\":\"read\",\"ret\":1,\"dur_ns\":2}";
        for (bad, why) in [
            ("not json", "not JSON"),
            ("[1,2]", "an array"),
            ("{\"ret\":1,\"dur_ns\":2}", "no name"),
            ("{\"name\":\"read\",\"dur_ns\":2}", "no ret"),
            ("{\"name\":\"read\",\"ret\":1}", "no dur_ns"),
            ("{\"name\":\"read\",\"ret\":\"1\",\"dur_ns\":2}", "ret as a string"),
            ("{\"name\":\"read\",\"ret\":1,\"dur_ns\":-2}", "negative dur_ns"),
            ("{\"name\":7,\"ret\":1,\"dur_ns\":2}", "name as a number"),
        ] {
            let text = format!("{good}\n\n{good}\n{bad}\n{good}\n");
            match lab::summary::summarize(&text) {
                Err(Error::Malformed { line, .. }) => assert_eq!(line, 4, "{why}: the bad line is line 4 (empty lines count)"),
                other => panic!("{why}: expected Malformed at line 4, got {other:?}"),
            }
        }
    }

    // ------------------------------------------------------------ c3w4.hash-chain

    /// Logs of 0, 1 and 400 events written by kernels verify, with kernels' record count and head.
    fn chain_accepts_kernels_logs_and_returns_their_head() {
        for (n, seed) in [(0, 1), (1, 2), (400, 3)] {
            let (bytes, _) = kernels_log(n, seed);
            assert!(kernels_verdict(&bytes).is_ok());
            check_chain(&bytes, &format!("a valid log of {n} events"));
        }
    }

    /// A value edited on each line in turn (start, events, end): the first bad line and check equal kernels'.
    fn chain_edits_are_caught_at_kernels_line() {
        let (bytes, _) = kernels_log(20, 4);
        let lines = lines_of(&bytes);
        for i in 0..lines.len() {
            for (from, to) in [("\"dur_ns\":", "\"dur_ns\":1"), ("\"argv\":[\"", "\"argv\":[\"x"), ("\"elapsed_us\":", "\"elapsed_us\":9"), ("\"seq\":", "\"seq\":1"), ("\"prev\":\"", "\"prev\":\"0"), ("\"pid\":", "\"pid\":-")] {
                let text = String::from_utf8(lines[i].clone()).unwrap();
                if !text.contains(from) {
                    continue;
                }
                let mut l = lines.clone();
                l[i] = text.replacen(from, to, 1).into_bytes();
                check_chain(&join_lines(&l), &format!("line {} edited ({from} → {to})", i + 1));
            }
            let mut l = lines.clone();
            l[i].push(b' ');
            check_chain(&join_lines(&l), &format!("a space appended to line {}", i + 1));
        }
    }

    /// Deleting, swapping and duplicating lines anywhere: kernels' verdict.
    fn chain_deleted_swapped_inserted_lines_match_kernels() {
        let (bytes, _) = kernels_log(12, 5);
        let lines = lines_of(&bytes);
        let n = lines.len();
        for i in 0..n {
            let mut del = lines.clone();
            del.remove(i);
            check_chain(&join_lines(&del), &format!("line {} deleted", i + 1));
            let mut dup = lines.clone();
            dup.insert(i, lines[i].clone());
            check_chain(&join_lines(&dup), &format!("line {} duplicated", i + 1));
            if i + 1 < n {
                let mut sw = lines.clone();
                sw.swap(i, i + 1);
                check_chain(&join_lines(&sw), &format!("lines {} and {} swapped", i + 1, i + 2));
            }
        }
        let mut start_twice = lines.clone();
        start_twice[1] = String::from_utf8(lines[1].clone()).unwrap().replacen("\"pid\"", "\"start\":{},\"pid\"", 1).into_bytes();
        check_chain(&join_lines(&start_twice), "a second start key");
    }

    /// Cut at many byte offsets, trailing data, no final newline, CRLF: kernels' verdict.
    fn chain_truncation_and_trailing_data_match_kernels() {
        let (bytes, _) = kernels_log(6, 6);
        for cut in (0..bytes.len()).step_by(13).chain([bytes.len() - 1, bytes.len() - 2]) {
            check_chain(&bytes[..cut], &format!("cut at byte {cut} of {}", bytes.len()));
        }
        let mut extra = bytes.clone();
        extra.extend_from_slice(b"x");
        check_chain(&extra, "a byte after the final newline");
        let mut blank = bytes.clone();
        blank.extend_from_slice(b"\n");
        check_chain(&blank, "an empty line after the end record");
        let lines = lines_of(&bytes);
        let mut again = lines.clone();
        again.push(lines[lines.len() - 1].clone());
        check_chain(&join_lines(&again), "the end record twice");
        check_chain(&bytes[..bytes.len() - 1], "no final newline");
        let crlf: Vec<u8> = String::from_utf8(bytes.clone()).unwrap().replace('\n', "\r\n").into_bytes();
        check_chain(&crlf, "CRLF line ends");
        check_chain(b"", "an empty file");
        check_chain(b"\xff\xfe\n", "not UTF-8");
    }

    /// A resealed end record with a wrong count is Count; a wrong seal is Seal.
    fn chain_end_record_seal_and_count() {
        let (bytes, _) = kernels_log(5, 7);
        let lines = lines_of(&bytes);
        let last = String::from_utf8(lines[lines.len() - 1].clone()).unwrap();
        let cut = last.rfind(",\"seal\":\"").unwrap();
        let body = last[..cut].replacen("\"events\":5", "\"events\":4", 1);
        let seal = lab::chain::hash_hex(format!("{body}}}").as_bytes());
        let mut l = lines.clone();
        let n = l.len();
        l[n - 1] = format!("{body},\"seal\":\"{seal}\"}}").into_bytes();
        check_chain(&join_lines(&l), "a wrong count under a valid seal");
        let mut s = lines.clone();
        let bad_seal = format!("{},\"seal\":\"{}\"}}", &last[..cut], "0".repeat(64));
        s[n - 1] = bad_seal.into_bytes();
        check_chain(&join_lines(&s), "a wrong seal");
    }
}
