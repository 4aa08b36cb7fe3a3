//! Benchmarks of week c4w4: the learner's hybrid-retrieval tail (rank fusion, weighted score fusion
//! and MMR) against `kernels::fusion` and `kernels::rag::retrieve` on the same candidate lists.
//!
//! The candidate lists are what a dense and a sparse retriever return for a held-out set of queries
//! with graded judgements (seeded, so every run sees the same): the dense scores are cosines of
//! unit vectors whose closeness to the query follows the judged grade, the sparse scores a
//! BM25-scaled noisy function of it, and a third of the relevant documents have near-duplicates (so
//! MMR has something to remove). First the learner's pipeline must rank as well as kernels'
//! (nDCG@10 by `kernels::rag::eval`, `trec_eval`'s definition, ratio at least 0.99); then both are
//! timed in alternation (lab, kernels, lab, …, best of several passes) so machine noise hits both
//! alike. The figure is a ratio of queries per second, never an absolute time. `graded!` holds
//! the graded task (`c4w4.retrieval-bench`); `run` is the sweep behind `cargo xtask bench c4w4`.

use std::collections::BTreeMap;
use std::time::Instant;

use c4w4_rag as lab;
use kernels::rag::eval::{Measure, evaluate_topic};

const DIM: usize = 64;
/// Candidates each retriever returns per query.
const CANDIDATES: usize = 100;
/// How many fused candidates MMR chooses from, and how many it picks.
const MMR_POOL: usize = 50;
const K: usize = 10;
const DENSE_WEIGHT: f32 = 0.5;
const LAMBDA: f32 = 0.7;

/// Deterministic pseudo-random numbers (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
    fn normal(&mut self) -> f32 {
        let (u, v) = (self.unit().max(1e-7), self.unit());
        (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
    }
}

fn normalised(v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / n).collect()
}

/// One held-out query: its vector, the two retrievers' lists, every candidate's vector, the judgements.
struct Query {
    vector: Vec<f32>,
    dense: Vec<(u32, f32)>,
    sparse: Vec<(u32, f32)>,
    vectors: BTreeMap<u32, Vec<f32>>,
    judged: BTreeMap<String, i32>,
}

/// `n` queries over a pool of `pool` documents each (the retrievers return `candidates` of them).
fn held_out(n: usize, pool: usize, candidates: usize, seed: u64) -> Vec<Query> {
    let mut rng = Rng(seed);
    (0..n)
        .map(|_| {
            let q = normalised((0..DIM).map(|_| rng.normal()).collect());
            let mut vectors = BTreeMap::new();
            let mut judged = BTreeMap::new();
            let mut dense = Vec::new();
            let mut sparse = Vec::new();
            let mut last_relevant: Option<Vec<f32>> = None;
            for d in 0..pool {
                let id = (rng.next() % 1_000_000) as u32 * 4 + (d % 4) as u32;
                let grade = match d % 20 {
                    0 | 1 => 2,
                    2..=4 => 1,
                    _ => 0,
                };
                let pull = [0.15f32, 0.35, 0.5][grade as usize];
                let v = match (&last_relevant, grade > 0 && d % 3 == 0) {
                    (Some(prev), true) => normalised(prev.iter().map(|x| x + 0.03 * rng.normal()).collect()),
                    _ => normalised(q.iter().map(|x| pull * x + rng.normal() / (DIM as f32).sqrt()).collect()),
                };
                if grade > 0 {
                    last_relevant = Some(v.clone());
                }
                let cosine: f32 = q.iter().zip(&v).map(|(a, b)| a * b).sum();
                let bm25 = 3.0 * grade as f32 + 4.0 * rng.normal().abs() + 2.0 * rng.unit();
                dense.push((id, cosine));
                sparse.push((id, bm25));
                judged.insert(id.to_string(), grade);
                vectors.insert(id, v);
            }
            for list in [&mut dense, &mut sparse] {
                list.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                list.truncate(candidates);
            }
            Query { vector: q, dense, sparse, vectors, judged }
        })
        .collect()
}

/// The tail of hybrid retrieval, behind closures so the lab, the solution and kernels share the
/// measuring code: RRF and weighted fusion of the two lists, then MMR over the best fused ones.
type Pipeline<'a> = Box<dyn Fn(&Query) -> Vec<(u32, f32)> + 'a>;

fn ids(list: &[(u32, f32)]) -> Vec<u32> {
    list.iter().map(|x| x.0).collect()
}

fn kernels_pipeline() -> Pipeline<'static> {
    Box::new(|q: &Query| {
        let rrf = kernels::fusion::reciprocal_rank_fusion(&[&ids(&q.dense), &ids(&q.sparse)], 60.0);
        std::hint::black_box(&rrf);
        let fused = kernels::rag::retrieve::fuse_weighted(&q.dense, &q.sparse, DENSE_WEIGHT);
        let pool: Vec<(u32, &[f32])> =
            fused.iter().take(MMR_POOL).map(|&(id, _)| (id, q.vectors[&id].as_slice())).collect();
        kernels::rag::retrieve::mmr_select(&q.vector, &pool, K, LAMBDA)
    })
}

fn lab_pipeline() -> Pipeline<'static> {
    Box::new(|q: &Query| {
        let rrf = lab::fusion::reciprocal_rank_fusion(&[&ids(&q.dense), &ids(&q.sparse)], 60.0);
        std::hint::black_box(&rrf);
        let fused = lab::fusion::weighted_fusion(&q.dense, &q.sparse, DENSE_WEIGHT);
        let pool: Vec<(u32, &[f32])> =
            fused.iter().take(MMR_POOL).map(|&(id, _)| (id, q.vectors[&id].as_slice())).collect();
        lab::mmr::mmr_select(&q.vector, &pool, K, LAMBDA)
    })
}

/// Mean nDCG@10 (`trec_eval`'s, by kernels) of a pipeline's rankings; MMR's picks are ranked by
/// their order (scores `K - rank`, as MMR values may tie).
fn mean_ndcg(pipeline: &Pipeline, queries: &[Query]) -> f64 {
    let mut sum = 0.0;
    for q in queries {
        let picks = pipeline(q);
        let ranking: Vec<(String, f64)> =
            picks.iter().enumerate().map(|(r, (id, _))| (id.to_string(), (K - r) as f64)).collect();
        let values = evaluate_topic(&ranking, &q.judged, &[Measure::NdcgCut(K)]).expect("kernels evaluates");
        sum += values["ndcg_cut_10"];
    }
    sum / queries.len() as f64
}

/// Seconds for one pass over every query.
fn pass(pipeline: &Pipeline, queries: &[Query]) -> f64 {
    let start = Instant::now();
    for q in queries {
        std::hint::black_box(pipeline(q));
    }
    start.elapsed().as_secs_f64()
}

/// Queries per second of each pipeline, best of `rounds` passes taken in alternation.
fn interleaved(pipelines: &[&Pipeline], queries: &[Query], rounds: usize) -> Vec<f64> {
    let mut best = vec![f64::INFINITY; pipelines.len()];
    for _ in 0..rounds {
        for (i, p) in pipelines.iter().enumerate() {
            best[i] = best[i].min(pass(p, queries));
        }
    }
    best.iter().map(|s| queries.len() as f64 / s).collect()
}

graded! {
    /// The lab's fusion + MMR ranks the held-out queries as well as kernels' (nDCG@10 ratio at
    /// least 0.99), then its queries per second are compared with kernels' (score: the ratio).
    fn fusion_mmr_throughput_vs_kernels() {
        let queries = held_out(150, 300, CANDIDATES, 2026);
        let mine = lab_pipeline();
        let theirs = kernels_pipeline();
        let (my_ndcg, their_ndcg) = (mean_ndcg(&mine, &queries), mean_ndcg(&theirs, &queries));
        let quality = my_ndcg / their_ndcg;
        println!("nDCG@10 on {} held-out queries: lab {my_ndcg:.4}, kernels {their_ndcg:.4}, ratio {quality:.4}", queries.len());
        crate::report_metric("ndcg_ratio", quality);
        assert!(
            quality >= 0.99,
            "the lab's fused + MMR ranking reaches nDCG@10 {my_ndcg:.4}, kernels {their_ndcg:.4}: fix fusion and MMR before timing them"
        );
        let rates = interleaved(&[&mine, &theirs], &queries, 7);
        let ratio = rates[0] / rates[1];
        println!("lab {:.0} queries/s, kernels {:.0} queries/s; ratio {ratio:.3}", rates[0], rates[1]);
        crate::report_metric("qps_ratio", ratio);
    }
}

/// `cargo xtask bench c4w4`: queries per second of the fusion + MMR tail by candidate-list length,
/// written to `args[0]` (`--quick` for fewer sizes).
pub fn run(args: &[String]) {
    let out = std::path::PathBuf::from(args.first().expect("usage: bench OUT.json [--quick]"));
    let quick = args.iter().any(|a| a == "--quick");
    let sizes: &[usize] = if quick { &[50, 200] } else { &[50, 100, 200, 400, 800] };
    let rounds = if quick { 3 } else { 7 };
    let mut rows = Vec::new();
    let mut notes = vec![format!(
        "per query: RRF (k = 60) and weighted fusion (dense weight {DENSE_WEIGHT}) of a dense and a sparse list, then MMR (lambda {LAMBDA}) picks {K} of the best {MMR_POOL} fused, {DIM}-dimensional unit vectors"
    )];
    for &n in sizes {
        eprintln!("{n} candidates per retriever…");
        let queries = held_out(if quick { 40 } else { 100 }, n * 2, n, 7);
        let mut names = vec!["kernels"];
        let mut pipelines: Vec<Pipeline> = vec![kernels_pipeline()];
        let reference_ndcg = mean_ndcg(&pipelines[0], &queries);
        let mine = lab_pipeline();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| mean_ndcg(&mine, &queries))) {
            Ok(ndcg) if ndcg >= 0.99 * reference_ndcg => {
                names.push("lab");
                pipelines.push(mine);
            }
            Ok(ndcg) => notes.push(format!(
                "lab: nDCG@10 {ndcg:.4} < 0.99 × kernels' {reference_ndcg:.4} at {n} candidates; not timed"
            )),
            Err(_) => notes.push(format!("lab: panicked at {n} candidates (see above); not timed")),
        }
        with_reference_solution! {
            names.push("solution");
            pipelines.push(Box::new(|q: &Query| {
                let rrf = reference_solution::fusion::reciprocal_rank_fusion(&[&ids(&q.dense), &ids(&q.sparse)], 60.0);
                std::hint::black_box(&rrf);
                let fused = reference_solution::fusion::weighted_fusion(&q.dense, &q.sparse, DENSE_WEIGHT);
                let pool: Vec<(u32, &[f32])> = fused.iter().take(MMR_POOL).map(|&(id, _)| (id, q.vectors[&id].as_slice())).collect();
                reference_solution::mmr::mmr_select(&q.vector, &pool, K, LAMBDA)
            }));
        }
        let refs: Vec<&Pipeline> = pipelines.iter().collect();
        let ndcgs: Vec<f64> = refs.iter().map(|p| mean_ndcg(p, &queries)).collect();
        let rates = interleaved(&refs, &queries, rounds);
        for ((name, rate), ndcg) in names.iter().zip(rates).zip(ndcgs) {
            rows.push(serde_json::json!({
                "impl": name, "candidates": n, "queries/s": rate, "µs/query": 1e6 / rate, "nDCG@10": ndcg,
            }));
        }
    }
    let record = serde_json::json!({
        "week": "c4w4",
        "title": "Hybrid retrieval tail: RRF + weighted score fusion + MMR, queries per second by candidate-list length (1 thread)",
        "x": "candidates",
        "y": "queries/s",
        "reference": "kernels",
        "targets": [100],
        "columns": ["impl", "candidates", "queries/s", "µs/query", "nDCG@10"],
        "rows": rows,
        "notes": notes,
        "peers": [],
    });
    std::fs::write(&out, serde_json::to_string_pretty(&record).expect("json")).expect("writing the record");
}
