//! HNSW: recall against exact search, graph invariants, determinism and errors.

use std::collections::HashSet;

use datasets::Tier;
use datasets::vectors::{ClusteredConfig, clustered, queries};
use kernels::Error;
use kernels::ann::{Hnsw, HnswConfig, exact_top_k_batch};
use kernels::simd::Metric;

const METRICS: [Metric; 3] = [Metric::L2, Metric::Dot, Metric::Cosine];

fn tiny() -> (ClusteredConfig, Vec<f32>, Vec<f32>) {
    let cfg = ClusteredConfig::tier(Tier::Tiny, 7);
    let data = clustered(&cfg);
    let qs = queries(&cfg, 100);
    (cfg, data, qs)
}

fn config(metric: Metric) -> HnswConfig {
    HnswConfig { metric, ..HnswConfig::default() }
}

/// Mean recall@k of the index against exact search.
fn recall(index: &Hnsw, data: &[f32], qs: &[f32], k: usize, ef: usize) -> f64 {
    let dim = index.dim();
    let truth = exact_top_k_batch(data, dim, qs, k, index.config().metric).unwrap();
    let mut hits = 0usize;
    for (q, want) in qs.chunks_exact(dim).zip(&truth) {
        let got = index.search(q, k, ef).unwrap();
        assert_eq!(got.len(), k);
        assert!(got.windows(2).all(|w| w[0].total_cmp(&w[1]).is_lt()), "results not sorted");
        let want: HashSet<u32> = want.iter().map(|n| n.id).collect();
        hits += got.iter().filter(|n| want.contains(&n.id)).count();
    }
    hits as f64 / (truth.len() * k) as f64
}

#[test]
fn recall_at_10_against_exact_for_every_metric() {
    let (cfg, data, qs) = tiny();
    for metric in METRICS {
        let index = Hnsw::build(&data, cfg.dim, config(metric)).unwrap();
        assert_eq!(index.len(), cfg.n);
        let r = recall(&index, &data, &qs, 10, 64);
        assert!(r >= 0.95, "{metric:?}: recall@10 at ef 64 = {r:.3}");
    }
}

#[test]
fn distances_match_the_metric() {
    let (cfg, data, qs) = tiny();
    for metric in METRICS {
        let index = Hnsw::build(&data[..200 * cfg.dim], cfg.dim, config(metric)).unwrap();
        let q = &qs[..cfg.dim];
        for hit in index.search(q, 5, 32).unwrap() {
            let row = &data[hit.id as usize * cfg.dim..(hit.id as usize + 1) * cfg.dim];
            let want = metric.distance(q, row);
            assert!((hit.distance - want).abs() < 1e-4, "{metric:?}: {} vs {want}", hit.distance);
        }
    }
}

/// Checks the structural invariants of a built graph and returns how many
/// nodes cannot be reached from the entry point on layer 0.
fn check_invariants(index: &Hnsw) -> usize {
    let n = index.len();
    let m = index.config().m;
    let entry = index.entry_point().expect("non-empty index has an entry point");
    assert_eq!(index.level_of(entry), Some(index.max_level()), "entry point sits on the top layer");
    for id in 0..n as u32 {
        let level = index.level_of(id).unwrap();
        assert!(level <= index.max_level());
        for l in 0..=level {
            let links = index.neighbors(id, l);
            let cap = if l == 0 { 2 * m } else { m };
            assert!(links.len() <= cap, "node {id} layer {l}: degree {} > {cap}", links.len());
            assert!(!links.contains(&id), "node {id} layer {l}: self loop");
            let unique: HashSet<&u32> = links.iter().collect();
            assert_eq!(unique.len(), links.len(), "node {id} layer {l}: duplicate links");
            for &e in &links {
                assert!((e as usize) < n, "node {id} layer {l}: id {e} out of range");
                assert!(index.level_of(e).unwrap() >= l, "node {id} layer {l}: {e} is not on that layer");
            }
        }
        assert!(index.neighbors(id, level + 1).is_empty());
        if n > 1 {
            assert!(!index.neighbors(id, 0).is_empty(), "node {id} has no out-links on layer 0");
        }
    }
    assert!(index.neighbors(n as u32, 0).is_empty(), "unknown ids have no neighbours");

    // Depth-first walk of layer 0 from the entry point.
    let mut seen = vec![false; n];
    let mut stack = vec![entry];
    seen[entry as usize] = true;
    while let Some(v) = stack.pop() {
        for e in index.neighbors(v, 0) {
            if !seen[e as usize] {
                seen[e as usize] = true;
                stack.push(e);
            }
        }
    }
    seen.iter().filter(|s| !**s).count()
}

/// The parallel build (4 threads on however many cores, so inserts really interleave) keeps
/// every invariant and the sequential build's recall.
#[test]
fn parallel_build_keeps_the_invariants_and_the_recall() {
    let (cfg, data, qs) = tiny();
    let pool = rayon::ThreadPoolBuilder::new().num_threads(4).build().unwrap();
    for metric in METRICS {
        let index = pool.install(|| Hnsw::build_parallel(&data, cfg.dim, config(metric))).unwrap();
        assert_eq!(index.len(), cfg.n);
        let unreachable = check_invariants(&index);
        assert!(unreachable <= cfg.n / 100, "{metric:?}: {unreachable} nodes unreachable");
        let r = recall(&index, &data, &qs, 10, 64);
        assert!(r >= 0.95, "{metric:?}: recall@10 at ef 64 = {r:.3}");
        // The levels are the seed's, as in the sequential build.
        let sequential = Hnsw::build(&data, cfg.dim, config(metric)).unwrap();
        for id in 0..cfg.n as u32 {
            assert_eq!(index.level_of(id), sequential.level_of(id), "{metric:?}: level of node {id}");
        }
    }
    assert!(Hnsw::build_parallel(&[], cfg.dim, config(Metric::L2)).unwrap().is_empty());
    assert!(matches!(Hnsw::build_parallel(&[1.0, f32::NAN], 2, config(Metric::L2)), Err(Error::InvalidParameter(_))));
    assert!(matches!(Hnsw::build_parallel(&[1.0; 3], 2, config(Metric::L2)), Err(Error::RaggedBuffer { .. })));
}

#[test]
fn graph_invariants_hold() {
    let (cfg, data, _) = tiny();
    // At the usual M every node must be reachable from the entry point.
    for metric in METRICS {
        for m in [8, 16] {
            let config = HnswConfig { m, ef_construction: 100, metric, seed: 3 };
            let index = Hnsw::build(&data, cfg.dim, config).unwrap();
            let unreachable = check_invariants(&index);
            assert_eq!(unreachable, 0, "{metric:?} M={m}: nodes unreachable from the entry point on layer 0");
            assert!(index.max_level() >= 1, "1000 nodes at M={m} should reach layer 1");
            assert!(index.memory_bytes() >= cfg.n * cfg.dim * 4 + cfg.n * (1 + 2 * m) * 4);
        }
    }
    // At tiny M the heuristic (which keeps no pruned links, as in the paper's
    // default and hnswlib) may orphan the odd node: structure holds, and
    // almost everything stays reachable (M = 2 is degenerate: ~5% orphans).
    for m in [4, 3, 2] {
        let index = Hnsw::build(&data, cfg.dim, HnswConfig { m, ef_construction: 64, metric: Metric::Cosine, seed: 3 })
            .unwrap();
        let unreachable = check_invariants(&index);
        let bound = if m == 2 { cfg.n / 10 } else { cfg.n / 100 };
        assert!(unreachable <= bound, "M={m}: {unreachable} unreachable nodes");
    }
}

#[test]
fn same_seed_same_graph_and_answers() {
    let (cfg, data, qs) = tiny();
    let data = &data[..300 * cfg.dim];
    let build = |seed| Hnsw::build(data, cfg.dim, HnswConfig { seed, ..HnswConfig::default() }).unwrap();
    let (a, b) = (build(5), build(5));
    assert_eq!(a.max_level(), b.max_level());
    assert_eq!(a.entry_point(), b.entry_point());
    for id in 0..a.len() as u32 {
        assert_eq!(a.level_of(id), b.level_of(id));
        for l in 0..=a.level_of(id).unwrap() {
            assert_eq!(a.neighbors(id, l), b.neighbors(id, l), "node {id} layer {l}");
        }
    }
    for q in qs.chunks_exact(cfg.dim).take(20) {
        assert_eq!(a.search(q, 10, 40).unwrap(), b.search(q, 10, 40).unwrap());
    }
    // Another seed draws other levels.
    let c = build(6);
    let levels = |h: &Hnsw| (0..h.len() as u32).map(|i| h.level_of(i)).collect::<Vec<_>>();
    assert_ne!(levels(&a), levels(&c));
}

#[test]
fn small_indexes_and_edge_cases() {
    let mut index = Hnsw::new(2, HnswConfig::default()).unwrap();
    index.reserve(usize::MAX); // an impossible hint is ignored
    index.reserve(64);
    assert!(index.is_empty());
    assert_eq!(index.entry_point(), None);
    assert!(index.search(&[0.0, 0.0], 5, 10).unwrap().is_empty());

    assert_eq!(index.insert(&[1.0, 1.0]).unwrap(), 0);
    let hits = index.search(&[1.0, 1.0], 5, 10).unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!((hits[0].id, hits[0].distance), (0, 0.0));

    for i in 1..50u32 {
        assert_eq!(index.insert(&[i as f32, 0.0]).unwrap(), i);
    }
    // k above the size returns everything; k = 0 nothing; ef below k is raised.
    assert_eq!(index.search(&[0.0, 0.0], 100, 1).unwrap().len(), 50);
    assert_eq!(index.search(&[0.0, 0.0], usize::MAX, usize::MAX).unwrap().len(), 50);
    assert!(index.search(&[0.0, 0.0], 0, 10).unwrap().is_empty());
    let top = index.search(&[10.2, 0.0], 3, 0).unwrap();
    assert_eq!(top.iter().map(|n| n.id).collect::<Vec<_>>(), [10, 11, 9]);

    // Many exact duplicates (more than a node's 2M links can hold) and a zero
    // query under cosine: the structure holds and searches still fill k.
    let dup = vec![0.5f32; 4 * 40];
    let index = Hnsw::build(&dup, 4, HnswConfig { metric: Metric::Cosine, ..HnswConfig::default() }).unwrap();
    check_invariants(&index);
    assert_eq!(index.search(&[0.0; 4], 3, 10).unwrap().len(), 3);
    assert_eq!(index.search(&[1.0; 4], 40, 40).unwrap().len(), 40 - check_invariants(&index));
}

#[test]
fn bad_input_gives_typed_errors() {
    let bad_m = HnswConfig { m: 1, ..HnswConfig::default() };
    let bad_ef = HnswConfig { ef_construction: 0, ..HnswConfig::default() };
    assert!(matches!(Hnsw::new(0, HnswConfig::default()), Err(Error::InvalidParameter(_))));
    assert!(matches!(Hnsw::new(4, bad_m), Err(Error::InvalidParameter(_))));
    assert!(matches!(Hnsw::new(4, bad_ef), Err(Error::InvalidParameter(_))));
    assert!(matches!(bad_m.validate(), Err(Error::InvalidParameter(_))));
    assert!(HnswConfig::default().validate().is_ok());
    assert!(matches!(Hnsw::build(&[0.0; 7], 3, HnswConfig::default()), Err(Error::RaggedBuffer { len: 7, dim: 3 })));
    assert!(matches!(Hnsw::build(&[0.0; 6], 0, HnswConfig::default()), Err(Error::InvalidParameter(_))));

    let mut index = Hnsw::build(&[0.0, 1.0, 2.0, 3.0], 2, HnswConfig::default()).unwrap();
    assert!(matches!(index.insert(&[1.0]), Err(Error::DimensionMismatch { expected: 2, got: 1 })));
    assert!(matches!(index.insert(&[f32::NAN, 1.0]), Err(Error::InvalidParameter(_))));
    assert!(matches!(index.search(&[1.0, 2.0, 3.0], 1, 10), Err(Error::DimensionMismatch { expected: 2, got: 3 })));
    assert!(matches!(index.search(&[f32::INFINITY, 0.0], 1, 10), Err(Error::InvalidParameter(_))));
    assert_eq!(index.len(), 2, "failed inserts leave the index unchanged");
}

#[test]
fn search_is_usable_from_many_threads() {
    let (cfg, data, qs) = tiny();
    let index = Hnsw::build(&data[..300 * cfg.dim], cfg.dim, HnswConfig::default()).unwrap();
    let serial: Vec<_> = qs.chunks_exact(cfg.dim).map(|q| index.search(q, 10, 50).unwrap()).collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| s.spawn(|| qs.chunks_exact(cfg.dim).map(|q| index.search(q, 10, 50).unwrap()).collect::<Vec<_>>()))
            .collect();
        for h in handles {
            assert_eq!(h.join().unwrap(), serial);
        }
    });
}

/// Recall@k of a filtered search against brute force over the admitted vectors only.
fn filtered_recall(
    index: &Hnsw,
    data: &[f32],
    qs: &[f32],
    k: usize,
    ef: usize,
    allowed: &dyn Fn(u32) -> bool,
) -> (f64, bool) {
    let dim = index.dim();
    let metric = index.config().metric;
    let (mut hits, mut total, mut exact) = (0usize, 0usize, None);
    for q in qs.chunks_exact(dim) {
        let mut want: Vec<(f32, u32)> = data
            .chunks_exact(dim)
            .enumerate()
            .filter(|&(id, _)| allowed(id as u32))
            .map(|(id, v)| (metric.distance(q, v), id as u32))
            .collect();
        want.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        want.truncate(k);
        let got = index.search_filtered(q, k, ef, allowed).unwrap();
        assert!(got.hits.iter().all(|n| allowed(n.id)), "a hit the filter refuses");
        assert!(got.hits.windows(2).all(|w| w[0].total_cmp(&w[1]).is_lt()), "hits not sorted");
        assert_eq!(got.hits.len(), want.len());
        assert!(exact.is_none_or(|e| e == got.exact), "the path changed between queries");
        exact = Some(got.exact);
        let want: HashSet<u32> = want.iter().map(|w| w.1).collect();
        hits += got.hits.iter().filter(|n| want.contains(&n.id)).count();
        total += want.len();
    }
    (hits as f64 / total as f64, exact.unwrap_or(false))
}

#[test]
fn filtered_search_keeps_recall_at_every_selectivity() {
    let cfg = ClusteredConfig::tier(Tier::Medium, 11);
    let data = clustered(&cfg);
    let qs = queries(&cfg, 50);
    let index = Hnsw::build(&data, cfg.dim, HnswConfig::default()).unwrap();
    // A tenant id per vector (id mod 100): a filter admitting `pct` tenants admits pct % of them.
    // (selectivity %, ef, path expected, least recall@10): exact below √(ef · 2M · n) admitted.
    for (pct, ef, exact, least) in
        [(50u32, 64, false, 0.95), (20, 16, false, 0.85), (10, 64, true, 1.0), (1, 64, true, 1.0)]
    {
        let allowed = move |id: u32| id % 100 < pct;
        let (r, was_exact) = filtered_recall(&index, &data, &qs, 10, ef, &allowed);
        eprintln!("filtered search at {pct}% (ef {ef}): recall@10 {r:.3}, exact {was_exact}");
        assert_eq!(was_exact, exact, "{pct}%: path");
        assert!(r >= least, "{pct}%: recall@10 {r:.3} < {least}");
    }
    // Nothing admitted, or fewer than k: as many hits as there are.
    let none = index.search_filtered(&qs[..cfg.dim], 10, 64, &|_| false).unwrap();
    assert_eq!((none.hits.len(), none.admitted), (0, 0));
    let three = index.search_filtered(&qs[..cfg.dim], 10, 64, &|id| id < 3).unwrap();
    assert_eq!((three.hits.len(), three.admitted, three.exact), (3, 3, true));
    let r = index.search_filtered(&qs[..cfg.dim - 1], 10, 64, &|_| true);
    assert!(matches!(r, Err(Error::DimensionMismatch { .. })), "{r:?}");
}

#[test]
fn a_saved_index_loads_with_the_same_graph_and_answers() {
    let dir = crate::tmp::Tmp::new("hnsw-save");
    let (cfg, data, qs) = tiny();
    for metric in METRICS {
        let (head, tail) = data.split_at(data.len() - 50 * cfg.dim);
        let mut index = Hnsw::build(head, cfg.dim, config(metric)).unwrap();
        let path = dir.join(&format!("{metric:?}.hnsw"));
        index.save(&path).unwrap();
        let mut loaded = Hnsw::load(&path).unwrap();
        assert_eq!((loaded.len(), loaded.dim(), loaded.config()), (index.len(), index.dim(), index.config()));
        // The vectors and layer-0 lists are served from the mapped file, not copied.
        let (n, m0) = (index.len(), 2 * index.config().m);
        assert_eq!(loaded.mapped_bytes(), 4 * n * (cfg.dim + 1 + m0), "{metric:?}");
        assert!(loaded.memory_bytes() < index.memory_bytes() / 4, "{metric:?}: the mapped sections were copied");
        let copied = Hnsw::from_bytes(&std::fs::read(&path).unwrap(), &path).unwrap();
        assert_eq!((copied.mapped_bytes(), copied.vectors()), (0, index.vectors()));
        assert_eq!((loaded.entry_point(), loaded.max_level()), (index.entry_point(), index.max_level()));
        for id in 0..index.len() as u32 {
            for level in 0..=index.level_of(id).unwrap() {
                assert_eq!(
                    loaded.neighbors(id, level),
                    index.neighbors(id, level),
                    "{metric:?} node {id} layer {level}"
                );
            }
        }
        for q in qs.chunks_exact(cfg.dim) {
            assert_eq!(loaded.search(q, 10, 64).unwrap(), index.search(q, 10, 64).unwrap());
        }
        // Inserting into both continues the same graph (the level generator's state was saved);
        // the first insert copies the mapped sections.
        for v in tail.chunks_exact(cfg.dim) {
            assert_eq!(loaded.insert(v).unwrap(), index.insert(v).unwrap());
        }
        assert_eq!(loaded.mapped_bytes(), 0);
        for q in qs.chunks_exact(cfg.dim) {
            assert_eq!(loaded.search(q, 10, 64).unwrap(), index.search(q, 10, 64).unwrap());
        }
    }
    // An empty index round-trips too.
    let empty = Hnsw::new(8, HnswConfig::default()).unwrap();
    empty.save(dir.join("empty.hnsw")).unwrap();
    assert!(Hnsw::load(dir.join("empty.hnsw")).unwrap().is_empty());
}

#[test]
fn a_damaged_index_file_is_a_typed_error_naming_what_is_wrong() {
    let dir = crate::tmp::Tmp::new("hnsw-bad");
    let (cfg, data, _) = tiny();
    let index = Hnsw::build(&data[..200 * cfg.dim], cfg.dim, HnswConfig::default()).unwrap();
    let path = dir.join("good.hnsw");
    index.save(&path).unwrap();
    let good = std::fs::read(&path).unwrap();
    let header = 8 + 4 + 4 + 8 * 9;
    let vectors = header;
    let links0 = vectors + 200 * cfg.dim * 4;
    let check = |name: &str, bytes: Vec<u8>, needle: &str| {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        match Hnsw::load(&p) {
            Err(Error::AnnIndex { path, reason }) => {
                assert_eq!(path, p);
                assert!(reason.contains(needle), "{name}: {reason:?} lacks {needle:?}");
            }
            other => panic!("{name}: expected AnnIndex, got {other:?}"),
        }
    };
    let with = |at: usize, bytes: &[u8]| {
        let mut b = good.clone();
        b[at..at + bytes.len()].copy_from_slice(bytes);
        b
    };
    check("magic", with(0, b"GGUF"), "bad magic");
    check("version", with(8, &2u32.to_le_bytes()), "format version 2");
    check("metric", with(12, &9u32.to_le_bytes()), "unknown metric code 9");
    check("truncated", good[..good.len() - 3].to_vec(), "truncated");
    check("trailing", [good.clone(), vec![0; 4]].concat(), "4 bytes after the last section");
    check("nan", with(vectors + 4 * 5, &f32::NAN.to_le_bytes()), "non-finite");
    check("count", with(links0, &1000u32.to_le_bytes()), "node 0, layer 0: 1000 links, at most 32");
    check("link", with(links0 + 4, &5000u32.to_le_bytes()), "link to node 5000, the index has 200");
    check("missing", dir.join("nowhere").to_string_lossy().as_bytes().to_vec(), "bad magic");
    match Hnsw::load(dir.join("no-such-file.hnsw")) {
        Err(Error::AnnIndex { reason, .. }) => assert!(reason.contains("cannot read"), "{reason}"),
        other => panic!("expected AnnIndex, got {other:?}"),
    }
    // The levels: one above the top layer.
    let levels = links0 + 200 * (1 + 32) * 4;
    check("level", with(levels, &[60]), "above the top layer");
}
