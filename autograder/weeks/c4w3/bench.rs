//! Benchmarks of week c4w3: the learner's HNSW against `kernels::ann::Hnsw` on the same vectors.
//!
//! Both indexes are built with the same M and efConstruction on the same
//! seeded clustered vectors, and queried in alternation (lab, kernels, lab, …)
//! so that machine noise hits both alike. Throughput is compared at equal
//! recall@10, never as an absolute time. `graded!` holds the graded task
//! (`c4w3.hnsw-bench`); `run` is the full sweep behind `cargo xtask bench c4w3`.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use c4w3_vector_search as lab;
use datasets::vectors::{ClusteredConfig, clustered, queries};
use kernels::ann::{self, Neighbor};
use kernels::simd::Metric;

const K: usize = 10;
const EFS: &[usize] = &[10, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384];

/// One index under test, behind closures so the lab, the solution and
/// `kernels` share the measuring code.
struct Index<'a> {
    name: &'static str,
    search: Box<dyn Fn(&[f32], usize) -> Vec<u32> + 'a>,
    build_s: f64,
    memory_bytes: usize,
}

fn build_kernels(data: &[f32], dim: usize, m: usize, efc: usize) -> Index<'static> {
    let start = Instant::now();
    let config = ann::HnswConfig { m, ef_construction: efc, metric: Metric::L2, seed: 42 };
    let index = ann::Hnsw::build(data, dim, config).expect("kernels builds");
    let build_s = start.elapsed().as_secs_f64();
    let memory_bytes = index.memory_bytes();
    Index {
        name: "kernels",
        search: Box::new(move |q, ef| index.search(q, K, ef).expect("kernels searches").iter().map(|n| n.id).collect()),
        build_s,
        memory_bytes,
    }
}

fn build_lab(data: &[f32], dim: usize, m: usize, efc: usize) -> Index<'static> {
    let start = Instant::now();
    let config = lab::hnsw::HnswConfig { m, ef_construction: efc, metric: Metric::L2, seed: 42 };
    let mut index = lab::hnsw::Hnsw::new(dim, config);
    for v in data.chunks_exact(dim) {
        index.insert(v);
    }
    let build_s = start.elapsed().as_secs_f64();
    let memory_bytes = index.memory_bytes();
    Index {
        name: "lab",
        search: Box::new(move |q, ef| index.search(q, K, ef).iter().map(|n: &Neighbor| n.id).collect()),
        build_s,
        memory_bytes,
    }
}

/// recall@K of `index` at `ef`, and queries per second over `rounds` passes.
fn measure(index: &Index, queries: &[f32], dim: usize, truth: &[Vec<Neighbor>], ef: usize) -> (f64, f64) {
    let start = Instant::now();
    let mut hits = 0usize;
    for (q, want) in queries.chunks_exact(dim).zip(truth) {
        let got = (index.search)(q, ef);
        hits += want.iter().filter(|n| got.contains(&n.id)).count();
    }
    let seconds = start.elapsed().as_secs_f64();
    let n = truth.len();
    (hits as f64 / (n * K) as f64, n as f64 / seconds)
}

/// Best-of-`rounds` throughput of several indexes at their own `ef`, measured in alternation.
fn interleaved_qps(indexes: &[(&Index, usize)], queries: &[f32], dim: usize, truth: &[Vec<Neighbor>], rounds: usize) -> Vec<f64> {
    let mut best = vec![0.0f64; indexes.len()];
    for _ in 0..rounds {
        for (i, (index, ef)) in indexes.iter().enumerate() {
            best[i] = best[i].max(measure(index, queries, dim, truth, *ef).1);
        }
    }
    best
}

/// The smallest swept `ef` at which `index` reaches `target` recall, with that recall.
fn ef_for_recall(index: &Index, queries: &[f32], dim: usize, truth: &[Vec<Neighbor>], target: f64) -> Option<(usize, f64)> {
    EFS.iter().map(|&ef| (ef, measure(index, queries, dim, truth, ef).0)).find(|&(_, r)| r >= target)
}

graded! {
    /// The lab's HNSW reaches recall@10 ≥ 0.95, and its queries/s at that
    /// recall is compared with `kernels` at the same recall (score: the ratio).
    fn hnsw_throughput_vs_kernels() {
        let cfg = ClusteredConfig { n: 4_000, dim: 64, clusters: 32, spread: 0.4, normalize: true, seed: 3 };
        let data = clustered(&cfg);
        let qs = queries(&cfg, 300);
        let truth = ann::exact_top_k_batch(&data, cfg.dim, &qs, K, Metric::L2).expect("ground truth");
        let mine = build_lab(&data, cfg.dim, 16, 100);
        let reference = build_kernels(&data, cfg.dim, 16, 100);
        let Some((my_ef, my_recall)) = ef_for_recall(&mine, &qs, cfg.dim, &truth, 0.95) else {
            let (recall, _) = measure(&mine, &qs, cfg.dim, &truth, *EFS.last().unwrap());
            panic!("recall@10 never reaches 0.95, even at ef = {}: check search_layer and the neighbour selection (recall {recall:.3})", EFS.last().unwrap());
        };
        let (ref_ef, _) = ef_for_recall(&reference, &qs, cfg.dim, &truth, 0.95).expect("kernels reaches 0.95");
        let qps = interleaved_qps(&[(&mine, my_ef), (&reference, ref_ef)], &qs, cfg.dim, &truth, 3);
        let ratio = qps[0] / qps[1];
        println!("lab: ef {my_ef}, recall {my_recall:.3}, {:.0} q/s; kernels: ef {ref_ef}, {:.0} q/s; ratio {ratio:.3}", qps[0], qps[1]);
        crate::report_metric("qps_ratio", ratio);
        crate::report_metric("lab_recall", my_recall);
    }
}

/// `cargo xtask bench c4w3`: writes the sweep record to `args[0]` (`--quick` for small sizes).
pub fn run(args: &[String]) {
    let out = std::path::PathBuf::from(args.first().expect("usage: bench OUT.json [--quick]"));
    let quick = args.iter().any(|a| a == "--quick");
    // Peer inputs go to a scratch folder beside the record; `cargo xtask bench` removes it.
    let dir = out.parent().expect("record in a folder").join("inputs");
    std::fs::create_dir_all(&dir).expect("creating the inputs folder");
    let (n, nq) = if quick { (5_000, 200) } else { (20_000, 1_000) };
    let cfg = ClusteredConfig { n, dim: 128, clusters: 64, spread: 0.35, normalize: true, seed: 7 };
    let (m, efc) = (16, 200);
    eprintln!("data: {n} × {} clustered unit vectors, {nq} queries, M {m}, efConstruction {efc}", cfg.dim);
    let data = clustered(&cfg);
    let qs = queries(&cfg, nq);
    let truth = ann::exact_top_k_batch(&data, cfg.dim, &qs, K, Metric::L2).expect("ground truth");

    let mut indexes = Vec::new();
    let mut notes = Vec::new();
    eprintln!("building kernels…");
    indexes.push(build_kernels(&data, cfg.dim, m, efc));
    eprintln!("building lab…");
    match catch_unwind(AssertUnwindSafe(|| build_lab(&data, cfg.dim, m, efc))) {
        Ok(index) => indexes.push(index),
        Err(_) => notes.push("lab: could not be built (see the panic above); only the references are measured".to_string()),
    }
    with_reference_solution! {
        eprintln!("building solution…");
        let start = Instant::now();
        let config = reference_solution::hnsw::HnswConfig { m, ef_construction: efc, metric: Metric::L2, seed: 42 };
        let mut sol = reference_solution::hnsw::Hnsw::new(cfg.dim, config);
        for v in data.chunks_exact(cfg.dim) {
            sol.insert(v);
        }
        let build_s = start.elapsed().as_secs_f64();
        let memory_bytes = sol.memory_bytes();
        indexes.push(Index {
            name: "solution",
            search: Box::new(move |q, ef| sol.search(q, K, ef).iter().map(|n| n.id).collect()),
            build_s,
            memory_bytes,
        });
    }

    let mut rows = Vec::new();
    for &ef in EFS {
        eprintln!("ef {ef}…");
        // Alternate the indexes within each ef, best of three passes each.
        let mut best: Vec<(f64, f64)> = vec![(0.0, 0.0); indexes.len()];
        for _ in 0..3 {
            for (i, index) in indexes.iter().enumerate() {
                let (recall, qps) = measure(index, &qs, cfg.dim, &truth, ef);
                best[i] = (recall, best[i].1.max(qps));
            }
        }
        for (index, (recall, qps)) in indexes.iter().zip(best) {
            rows.push(serde_json::json!({
                "impl": index.name, "ef": ef, "recall@10": recall, "queries/s": qps,
                "build_s": index.build_s, "memory_mb": index.memory_bytes as f64 / (1 << 20) as f64,
            }));
        }
    }

    // The same vectors for the Python peers (little-endian f32 rows, i32 truth ids).
    let write_f32 = |name: &str, v: &[f32]| {
        let path = dir.join(name);
        std::fs::write(&path, v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>()).expect("writing peer input");
        path.display().to_string()
    };
    let data_path = write_f32("data.f32", &data);
    let query_path = write_f32("queries.f32", &qs);
    let truth_path = dir.join("truth.i32");
    let truth_bytes: Vec<u8> = truth.iter().flat_map(|t| t.iter().flat_map(|n| (n.id as i32).to_le_bytes())).collect();
    std::fs::write(&truth_path, truth_bytes).expect("writing truth");
    let efs: Vec<String> = EFS.iter().map(|e| e.to_string()).collect();

    let record = serde_json::json!({
        "week": "c4w3",
        "title": format!("HNSW on {n}×{} clustered vectors: recall@10 vs queries/s (1 thread)", cfg.dim),
        "x": "recall@10",
        "y": "queries/s",
        "reference": "kernels",
        "targets": [0.95, 0.99],
        "columns": ["impl", "ef", "recall@10", "queries/s", "build_s", "memory_mb"],
        "rows": rows,
        "notes": notes,
        "peers": [{
            "name": "hnswlib",
            "script": "hnswlib_sweep.py",
            "args": ["--data", data_path, "--queries", query_path, "--truth", truth_path.display().to_string(),
                     "--dim", cfg.dim.to_string(), "--k", K.to_string(), "--m", m.to_string(),
                     "--ef-construction", efc.to_string(), "--efs", efs.join(",")],
        }],
    });
    std::fs::write(&out, serde_json::to_string_pretty(&record).expect("json")).expect("writing the record");
}
