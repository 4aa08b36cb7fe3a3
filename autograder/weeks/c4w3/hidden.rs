//! Hidden tests of week c4w3 (vector search): checked against brute force, the
//! production `kernels` (incl. tantivy BM25), hand-computed cases and properties.

use std::collections::{HashSet, VecDeque};

use c4w3_vector_search as lab;
use datasets::text;
use datasets::vectors::{self, ClusteredConfig};
use kernels::ann::Neighbor;
use kernels::simd::Metric;
use lab::hnsw::{Hnsw, HnswConfig};

/// `|got - want|` within `rel` of `scale` (the size of the terms that were summed).
fn close(got: f32, want: f32, rel: f32, scale: f32) -> bool {
    (got - want).abs() <= rel * scale.max(f32::MIN_POSITIVE) || got == want
}

fn ids(hits: &[Neighbor]) -> Vec<u32> {
    hits.iter().map(|n| n.id).collect()
}

/// Every vector of a flat buffer, ranked by (distance, id) against `q`: the brute-force truth.
fn full_sort(data: &[f32], dim: usize, q: &[f32], metric: Metric) -> Vec<Neighbor> {
    let mut all: Vec<Neighbor> = data
        .chunks_exact(dim)
        .enumerate()
        .map(|(i, v)| Neighbor { id: i as u32, distance: metric.distance(q, v) })
        .collect();
    all.sort_by(|a, b| a.total_cmp(b));
    all
}

fn flat_config(metric: Metric) -> HnswConfig {
    HnswConfig { metric, ..HnswConfig::default() }
}

/// A graph with only layer 0, laid out by hand.
fn flat_graph(dim: usize, metric: Metric, vectors: Vec<f32>, links: Vec<Vec<u32>>, entry: u32) -> Hnsw {
    let links = links.into_iter().map(|l| vec![l]).collect();
    Hnsw::from_graph(dim, flat_config(metric), vectors, links, entry)
}

/// Layer 0 only, every node linked to every other: any search that expands the
/// entry point sees all nodes.
fn complete_graph(dim: usize, vectors: Vec<f32>) -> Hnsw {
    let n = (vectors.len() / dim) as u32;
    let links = (0..n).map(|i| (0..n).filter(|&j| j != i).collect()).collect();
    flat_graph(dim, Metric::L2, vectors, links, 0)
}

/// Candidates (with their distances to `base`) for the selection heuristic.
fn candidates_from(graph: &Hnsw, base: &[f32], metric: Metric) -> Vec<Neighbor> {
    (0..graph.len() as u32).map(|id| Neighbor { id, distance: metric.distance(base, graph.vector(id)) }).collect()
}

/// An index built with the learner's insert.
fn build(data: &[f32], dim: usize, config: HnswConfig) -> Hnsw {
    let mut index = Hnsw::new(dim, config);
    for v in data.chunks_exact(dim) {
        index.insert(v);
    }
    index
}

/// Checks `got` against brute force for the top-`k` query `q` over `data`:
/// right length, sorted, true distances, and the same distance at every rank
/// (ids may differ only between equally distant points).
fn assert_same_top_k(got: &[Neighbor], k: usize, what: &str, data: &[f32], dim: usize, q: &[f32], metric: Metric) {
    let truth = full_sort(data, dim, q, metric);
    let want = &truth[..k.min(truth.len())];
    assert_eq!(got.len(), want.len(), "{what}: expected {} results, got {}", want.len(), got.len());
    let mut seen = HashSet::new();
    for (rank, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(seen.insert(g.id), "{what}: id {} returned twice", g.id);
        let v = &data[g.id as usize * dim..(g.id as usize + 1) * dim];
        let true_d = metric.distance(q, v);
        let scale = true_d.abs().max(1.0);
        assert!(
            close(g.distance, true_d, 1e-4, scale),
            "{what}: id {} reported at distance {}, its distance is {true_d}",
            g.id,
            g.distance
        );
        assert!(
            close(g.distance, w.distance, 1e-4, scale),
            "{what}: rank {rank} should be at distance {} (id {}), got id {} at {}",
            w.distance,
            w.id,
            g.id,
            g.distance
        );
    }
    assert!(got.windows(2).all(|p| p[0].distance <= p[1].distance), "{what}: results are not sorted nearest first");
}

/// Asserts that `got` (lab BM25 top k) agrees with tantivy's ranking `want` and
/// with tantivy's score of every returned document (`all` = tantivy's full list).
fn assert_bm25_agrees(query: &str, got: &[(u32, f32)], want: &[(u32, f32)], all: &[(u32, f32)]) {
    assert_eq!(got.len(), want.len(), "query {query:?}: expected {} hits, got {}: {got:?}", want.len(), got.len());
    for (rank, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            close(g.1, w.1, 1e-4, w.1.abs()),
            "query {query:?}: score at rank {rank} is {} (doc {}), tantivy has {} (doc {})",
            g.1,
            g.0,
            w.1,
            w.0
        );
        let reference = all.iter().find(|(d, _)| *d == g.0).map(|(_, s)| *s);
        let Some(reference) = reference else {
            panic!("query {query:?}: doc {} is returned but does not match any query term", g.0);
        };
        assert!(
            close(g.1, reference, 1e-4, reference.abs()),
            "query {query:?}: doc {} scored {}, tantivy scores it {reference}",
            g.0,
            g.1
        );
    }
    assert!(
        got.windows(2).all(|p| p[0].1 >= p[1].1),
        "query {query:?}: hits are not sorted by score descending: {got:?}"
    );
}

graded! {
    /// dot, l2_sq and cosine agree with their scalar twins on every length 0..=100.
    fn simd_distances_match_scalar_on_every_length_up_to_100() {
        for len in 0..=100usize {
            let a = vectors::uniform(len, 1000 + len as u64);
            let b = vectors::uniform(len, 2000 + len as u64);
            let scale: f32 = a.iter().zip(&b).map(|(x, y)| (x * y).abs()).sum();
            let (got, want) = (lab::distance::dot(&a, &b), lab::distance::dot_scalar(&a, &b));
            assert!(close(got, want, 1e-5, scale.max(1e-3)), "dot on length {len}: got {got}, expected {want}");
            let (got, want) = (lab::distance::l2_sq(&a, &b), lab::distance::l2_sq_scalar(&a, &b));
            assert!(close(got, want, 1e-5, want.max(1e-3)), "l2_sq on length {len}: got {got}, expected {want}");
            let (got, want) = (lab::distance::cosine(&a, &b), lab::distance::cosine_scalar(&a, &b));
            assert!(close(got, want, 1e-4, 1.0), "cosine on length {len}: got {got}, expected {want}");
        }
    }

    /// Values that expose lost tails, dropped blocks and cancellation: one non-zero lane, huge magnitudes, zero vectors.
    fn simd_distances_handle_adversarial_values() {
        use lab::distance::{cosine, dot, l2_sq};
        // A single non-zero position, in every block and in the tail: the result is exact.
        for len in [9usize, 23, 40, 47, 71] {
            for pos in [0, 7, 8, len / 2, len - 1] {
                let mut a = vec![0.0f32; len];
                let mut b = vec![0.0f32; len];
                a[pos] = 3.0;
                b[pos] = -2.0;
                let got = dot(&a, &b);
                assert_eq!(got, -6.0, "dot, length {len}, only position {pos} non-zero: got {got}, expected -6");
                let got = l2_sq(&a, &b);
                assert_eq!(got, 25.0, "l2_sq, length {len}, only position {pos} non-zero: got {got}, expected 25");
                let got = cosine(&a, &b);
                assert!((got + 1.0).abs() < 1e-6, "cosine of opposite vectors (length {len}, position {pos}) must be -1, got {got}");
            }
        }
        // Large magnitudes with heavy cancellation.
        for len in [37usize, 1000] {
            let a: Vec<f32> = (0..len).map(|i| if i % 2 == 0 { 1e4 } else { -1e4 } * (1.0 + (i % 7) as f32 * 0.125)).collect();
            let b: Vec<f32> = (0..len).map(|i| 1e3 + (i % 5) as f32).collect();
            let scale: f32 = a.iter().zip(&b).map(|(x, y)| (x * y).abs()).sum();
            let (got, want) = (dot(&a, &b), lab::distance::dot_scalar(&a, &b));
            assert!(close(got, want, 1e-5, scale), "dot of large alternating values (length {len}): got {got}, expected {want}");
            let (got, want) = (l2_sq(&a, &b), lab::distance::l2_sq_scalar(&a, &b));
            assert!(close(got, want, 1e-5, want), "l2_sq of large values (length {len}): got {got}, expected {want}");
            let got = l2_sq(&a, &a);
            assert_eq!(got, 0.0, "l2_sq of a vector with itself must be exactly 0 (length {len}), got {got}");
            let twice: Vec<f32> = a.iter().map(|x| 2.0 * x).collect();
            let got = cosine(&a, &twice);
            assert!((got - 1.0).abs() < 1e-5, "cosine of v and 2v must be 1 (length {len}), got {got}");
        }
        let zero = vec![0.0f32; 19];
        let other = vectors::uniform(19, 5);
        assert_eq!(cosine(&zero, &other), 0.0, "cosine with an all-zero vector must be 0");
        assert_eq!(cosine(&other, &zero), 0.0, "cosine with an all-zero vector must be 0");
        assert_eq!(dot(&[], &[]), 0.0, "dot of two empty vectors must be 0");
    }

    /// `distance::distance` (built from your three functions) agrees with `kernels` on embedding-sized vectors.
    fn simd_distances_match_kernels_on_embedding_sized_vectors() {
        for (i, dim) in [384usize, 768, 1537].into_iter().enumerate() {
            let a = vectors::uniform(dim, 77 + i as u64);
            let b = vectors::uniform(dim, 99 + i as u64);
            for metric in [Metric::L2, Metric::Dot, Metric::Cosine] {
                let got = lab::distance::distance(metric, &a, &b);
                let want = metric.distance(&a, &b);
                let scale = match metric {
                    Metric::Cosine => 1.0,
                    _ => a.iter().zip(&b).map(|(x, y)| (x * y).abs() + (x - y) * (x - y)).sum(),
                };
                assert!(close(got, want, 1e-5, scale), "{metric:?} distance in dimension {dim}: got {got}, kernels gives {want}");
            }
        }
    }

    /// exact_top_k equals a full sort of all distances, for L2, Dot and Cosine and several k.
    fn exact_top_k_matches_a_full_sort_for_every_metric() {
        let cfg = ClusteredConfig { n: 600, dim: 24, clusters: 8, spread: 0.5, normalize: false, seed: 3 };
        let data = vectors::clustered(&cfg);
        let queries = vectors::queries(&cfg, 4);
        for metric in [Metric::L2, Metric::Dot, Metric::Cosine] {
            for q in queries.chunks_exact(cfg.dim) {
                for k in [1usize, 10, 37] {
                    let got = lab::knn::exact_top_k(&data, cfg.dim, q, k, metric);
                    assert_same_top_k(&got, k, &format!("exact_top_k {metric:?} k={k}"), &data, cfg.dim, q, metric);
                }
            }
        }
    }

    /// Equal distances are ordered by id, and a tie group cut by k keeps its smallest ids.
    fn exact_top_k_breaks_ties_by_id() {
        let patterns = [[0.0f32, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [1.0, 1.0, 1.0], [3.0, 0.0, 1.0]];
        let data: Vec<f32> = (0..50).flat_map(|i| patterns[i % 5]).collect();
        let q = [1.0f32, 1.0, 1.0];
        let got = lab::knn::exact_top_k(&data, 3, &q, 7, Metric::L2);
        assert_eq!(ids(&got), [3, 8, 13, 18, 23, 28, 33], "7 nearest among 10 exact copies of the query: the 7 smallest ids, ascending (got {got:?})");
        for k in [12usize, 25, 50] {
            let got = lab::knn::exact_top_k(&data, 3, &q, k, Metric::L2);
            let want = kernels::ann::exact_top_k(&data, 3, &q, k, Metric::L2).expect("kernels exact_top_k");
            assert_eq!(ids(&got), ids(&want), "k = {k} with many ties: ids must be sorted by (distance, id)");
        }
    }

    /// k = 0 gives nothing, k beyond n gives all n sorted, and an empty data set gives nothing.
    fn exact_top_k_handles_k_zero_and_k_beyond_n() {
        let data = vectors::uniform(13 * 5, 11);
        let q = vectors::uniform(5, 12);
        assert!(lab::knn::exact_top_k(&data, 5, &q, 0, Metric::L2).is_empty(), "k = 0 must return an empty list");
        let got = lab::knn::exact_top_k(&data, 5, &q, 20, Metric::Dot);
        let want = kernels::ann::exact_top_k(&data, 5, &q, 20, Metric::Dot).expect("kernels exact_top_k");
        assert_eq!(ids(&got), ids(&want), "k = 20 on 13 vectors must return all 13 sorted by (distance, id)");
        assert!(lab::knn::exact_top_k(&[], 5, &q, 3, Metric::L2).is_empty(), "no data must give an empty list");
    }

    /// On a 10x10 grid graph, a beam as wide as the graph finds every node in exact order; a narrow one finds the true nearest.
    fn search_layer_finds_everything_reachable_when_ef_is_large() {
        let side = 10u32;
        let vectors: Vec<f32> = (0..side * side).flat_map(|i| [(i % side) as f32, (i / side) as f32]).collect();
        let links = (0..side * side)
            .map(|i| {
                let (x, y) = (i % side, i / side);
                let mut out = Vec::new();
                if x > 0 { out.push(i - 1); }
                if x + 1 < side { out.push(i + 1); }
                if y > 0 { out.push(i - side); }
                if y + 1 < side { out.push(i + side); }
                out
            })
            .collect();
        let graph = flat_graph(2, Metric::L2, vectors.clone(), links, 0);
        for q in [[3.3f32, 6.8], [9.4, 0.2], [5.05, 5.1]] {
            let truth = full_sort(&vectors, 2, &q, Metric::L2);
            let got = graph.search_layer(&q, &[0], 100, 0);
            assert_eq!(got.len(), 100, "ef = 100 on a connected 100-node grid must return every node, got {}", got.len());
            assert_eq!(ids(&got), ids(&truth), "ef = 100 from node 0, query {q:?}: every node sorted by (distance, id)");
            let got = graph.search_layer(&q, &[0], 5, 0);
            assert_eq!(ids(&got), ids(&truth[..5]), "ef = 5 from node 0, query {q:?}: the 5 nearest grid points");
            for n in &got {
                let d = Metric::L2.distance(&q, graph.vector(n.id));
                assert!(close(n.distance, d, 1e-5, d.max(1.0)), "node {} reported at distance {}, its distance to the query is {d}", n.id, n.distance);
            }
        }
    }

    /// With ef = 1 the beam stops at a local minimum; with ef = 3 it keeps a farther node and escapes through it.
    fn search_layer_stops_at_a_local_minimum_with_ef_one() {
        // x positions: E=0 (entry), B=3, C=-5, D=9.5; links E-B, E-C, C-D. Query 10.
        let vectors = vec![0.0, 3.0, -5.0, 9.5];
        let links = vec![vec![1, 2], vec![0], vec![0, 3], vec![2]];
        let graph = flat_graph(1, Metric::L2, vectors, links, 0);
        let got = graph.search_layer(&[10.0], &[0], 1, 0);
        assert_eq!(ids(&got), [1], "ef = 1 must stop at node 1 (x = 3): none of its neighbours is nearer (got {got:?})");
        let got = graph.search_layer(&[10.0], &[0], 3, 0);
        assert_eq!(ids(&got), [3, 1, 0], "ef = 3 keeps node 2 (x = -5) as a candidate, reaches node 3 (x = 9.5) through it and returns the best 3 (got {got:?})");
        let d = got[0].distance;
        assert!((d - 0.25).abs() < 1e-6, "node 3 is at squared distance 0.25 from the query, got {d}");
    }

    /// The search follows only the requested layer's links, and starts from every entry node (once each).
    fn search_layer_follows_only_the_requested_layer_and_all_entries() {
        // Nodes 0..=5 at x = 0..5 chained on layer 0; nodes 0 and 5 also on layer 1, linked there.
        // Nodes 6 and 7 at x = 10 and 11 form a separate component on layer 0.
        let vectors = vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 10.0, 11.0];
        let links = vec![
            vec![vec![1], vec![5]],
            vec![vec![0, 2]],
            vec![vec![1, 3]],
            vec![vec![2, 4]],
            vec![vec![3, 5]],
            vec![vec![4], vec![0]],
            vec![vec![7]],
            vec![vec![6]],
        ];
        let graph = Hnsw::from_graph(1, flat_config(Metric::L2), vectors, links, 0);
        let got = graph.search_layer(&[4.4], &[0], 1, 1);
        assert_eq!(ids(&got), [5], "on layer 1 node 0 links only to node 5 (got {got:?})");
        let got = graph.search_layer(&[4.4], &[0], 10, 1);
        assert_eq!(ids(&got), [5, 0], "layer 1 holds only nodes 0 and 5 (got {got:?})");
        let got = graph.search_layer(&[4.4], &[0], 1, 0);
        assert_eq!(ids(&got), [4], "on layer 0 the chain leads from node 0 to node 4 (got {got:?})");
        let got = graph.search_layer(&[4.4], &[0], 10, 0);
        assert_eq!(ids(&got), [4, 5, 3, 2, 1, 0], "layer 0 from node 0 reaches exactly nodes 0..=5 (got {got:?})");
        let got = graph.search_layer(&[10.6], &[0, 6, 6], 3, 0);
        assert_eq!(ids(&got), [7, 6, 5], "entries 0 and 6 (6 given twice): best 3 over both components, no duplicates (got {got:?})");
    }

    /// Four directions with an inner and an outer point each: the heuristic keeps only the inner ones.
    fn heuristic_keeps_one_neighbour_per_direction() {
        let dirs = [[1.0f32, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]];
        let radii = [1.0f32, 1.1, 1.2, 1.3];
        let mut vectors = Vec::new();
        for (d, r) in dirs.iter().zip(radii) {
            vectors.extend([d[0] * r, d[1] * r]); // inner: ids 0, 2, 4, 6
            vectors.extend([d[0] * 2.0, d[1] * 2.0]); // outer: ids 1, 3, 5, 7
        }
        let graph = flat_graph(2, Metric::L2, vectors, vec![vec![]; 8], 0);
        let candidates = candidates_from(&graph, &[0.0, 0.0], Metric::L2);
        let got = graph.select_neighbors_heuristic(&candidates, 8);
        assert_eq!(ids(&got), [0, 2, 4, 6], "each outer point hides behind the inner point of its direction (got {got:?})");
        let got = graph.select_neighbors_heuristic(&candidates, 2);
        assert_eq!(ids(&got), [0, 2], "with m = 2 the two nearest inner points (got {got:?})");
    }

    /// Unsorted input, m = 0, no candidates, and the configured metric (cosine) for distances between candidates.
    fn heuristic_sorts_its_input_and_uses_the_index_metric() {
        let vectors = vec![1.0, 0.0, 1.5, 0.1, 0.0, 1.6, -1.2, 0.0];
        let graph = flat_graph(2, Metric::L2, vectors, vec![vec![]; 4], 0);
        let mut candidates = candidates_from(&graph, &[0.0, 0.0], Metric::L2);
        candidates.reverse();
        let got = graph.select_neighbors_heuristic(&candidates, 4);
        assert_eq!(ids(&got), [0, 3, 2], "candidates given farthest first must be processed nearest first (got {got:?})");
        assert!(graph.select_neighbors_heuristic(&candidates, 0).is_empty(), "m = 0 must keep nothing");
        assert!(graph.select_neighbors_heuristic(&[], 5).is_empty(), "no candidates must keep nothing");
        // Cosine: A = (1, 0) points almost like B = (10, 1), so A is pruned; under L2 they are far apart.
        let vectors = vec![1.0, 0.0, 10.0, 1.0, 1.0, 3.0];
        let graph = flat_graph(2, Metric::Cosine, vectors, vec![vec![]; 3], 0);
        let candidates = candidates_from(&graph, &[1.0, 1.0], Metric::Cosine);
        let got = graph.select_neighbors_heuristic(&candidates, 3);
        assert_eq!(ids(&got), [2, 1], "with the cosine metric, node 0 is nearer to node 1 than to the base (got {got:?})");
    }

    /// 1000 inserts: sequential ids, link lists within M (2M on layer 0), no self-links or duplicates, links to nodes on that layer.
    fn insert_respects_degree_bounds_and_link_validity() {
        let cfg = ClusteredConfig { n: 1000, dim: 16, clusters: 10, spread: 0.4, normalize: true, seed: 21 };
        let data = vectors::clustered(&cfg);
        let config = HnswConfig { m: 8, ef_construction: 64, metric: Metric::L2, seed: 5 };
        let mut index = Hnsw::new(cfg.dim, config);
        for (i, v) in data.chunks_exact(cfg.dim).enumerate() {
            assert_eq!(index.insert(v), i as u32, "insert must return ids 0, 1, 2, … in insertion order");
        }
        assert_eq!(index.len(), cfg.n, "len after {} inserts", cfg.n);
        let mut links_on_layer0 = 0;
        for id in 0..cfg.n as u32 {
            assert_eq!(index.vector(id), &data[id as usize * cfg.dim..(id as usize + 1) * cfg.dim], "node {id} stores the wrong vector");
            for level in 0..=index.level_of(id) {
                let out = index.neighbors(id, level);
                let bound = if level == 0 { 2 * config.m } else { config.m };
                assert!(out.len() <= bound, "node {id} has {} links on layer {level}, the bound is {bound}", out.len());
                let distinct: HashSet<&u32> = out.iter().collect();
                assert_eq!(distinct.len(), out.len(), "node {id} lists a neighbour twice on layer {level}: {out:?}");
                for &j in out {
                    assert_ne!(j, id, "node {id} links to itself on layer {level}");
                    assert!((j as usize) < cfg.n, "node {id} links to node {j}, which does not exist");
                    assert!(index.level_of(j) >= level, "node {id} links on layer {level} to node {j}, which only reaches layer {}", index.level_of(j));
                }
                if level == 0 {
                    links_on_layer0 += out.len();
                }
            }
        }
        let mean = links_on_layer0 as f32 / cfg.n as f32;
        assert!(mean >= 4.0, "nodes have {mean:.1} links on layer 0 on average: the graph is too sparse (connect each new node to up to M neighbours and add the reverse links)");
        let entry = index.entry_point().expect("a non-empty index has an entry point");
        let top = (0..cfg.n as u32).map(|id| index.level_of(id)).max().unwrap_or(0);
        assert_eq!(index.level_of(entry), top, "the entry point must be a node of the top layer");
    }

    /// Layer 0 of an inserted graph is connected: every node can be reached from the entry point (following links either way).
    fn insert_keeps_layer_zero_connected() {
        let cfg = ClusteredConfig { n: 800, dim: 12, clusters: 6, spread: 0.3, normalize: false, seed: 8 };
        let data = vectors::clustered(&cfg);
        let index = build(&data, cfg.dim, HnswConfig { m: 6, ef_construction: 48, metric: Metric::L2, seed: 9 });
        let n = index.len();
        let mut undirected = vec![Vec::new(); n];
        for id in 0..n as u32 {
            for &j in index.neighbors(id, 0) {
                undirected[id as usize].push(j);
                undirected[j as usize].push(id);
            }
        }
        let start = index.entry_point().expect("a non-empty index has an entry point");
        let mut seen = vec![false; n];
        seen[start as usize] = true;
        let mut queue = VecDeque::from([start]);
        let mut reached = 1;
        while let Some(u) = queue.pop_front() {
            for &v in &undirected[u as usize] {
                if !std::mem::replace(&mut seen[v as usize], true) {
                    reached += 1;
                    queue.push_back(v);
                }
            }
        }
        assert_eq!(reached, n, "only {reached} of {n} nodes are connected to the entry point on layer 0");
    }

    /// Levels follow the geometric draw: about 1 - 1/M of the nodes live on layer 0 only, and the entry point is on top.
    fn insert_draws_levels_geometrically() {
        let data = vectors::uniform(2000 * 4, 31);
        let config = HnswConfig { m: 16, ef_construction: 16, metric: Metric::L2, seed: 77 };
        let index = build(&data, 4, config);
        let only_layer0 = (0..2000u32).filter(|&id| index.level_of(id) == 0).count() as f32 / 2000.0;
        assert!(
            (only_layer0 - 15.0 / 16.0).abs() < 0.03,
            "{:.1}% of nodes live on layer 0 only, expected about 93.8% (draw each node's level with random_level)",
            only_layer0 * 100.0
        );
        assert!(index.max_level() >= 1, "2000 nodes with M = 16 should reach at least layer 1");
        let top = (0..2000u32).map(|id| index.level_of(id)).max().unwrap_or(0);
        assert_eq!(index.max_level(), top, "the entry point must be on the top layer");
    }

    /// recall@10 of the learner's index at ef = 64 is at least 0.95 against exact search (2000 x 32 clustered vectors).
    fn hnsw_recall_at_10_is_at_least_95_percent() {
        let cfg = ClusteredConfig { n: 2000, dim: 32, clusters: 20, spread: 0.35, normalize: true, seed: 42 };
        let data = vectors::clustered(&cfg);
        let queries = vectors::queries(&cfg, 100);
        let index = build(&data, cfg.dim, HnswConfig { m: 12, ef_construction: 100, metric: Metric::L2, seed: 42 });
        let (mut hits, mut total) = (0usize, 0usize);
        for q in queries.chunks_exact(cfg.dim) {
            let truth = kernels::ann::exact_top_k(&data, cfg.dim, q, 10, Metric::L2).expect("kernels exact_top_k");
            let truth: HashSet<u32> = ids(&truth).into_iter().collect();
            let got = index.search(q, 10, 64);
            assert_eq!(got.len(), 10, "search must return k = 10 results");
            hits += got.iter().filter(|n| truth.contains(&n.id)).count();
            total += 10;
        }
        let recall = hits as f32 / total as f32;
        assert!(recall >= 0.95, "recall@10 at ef = 64 is {recall:.3}, expected at least 0.95");
    }

    /// Search must descend through layer 1 (layer 0 alone traps a greedy walk from the entry) and widen the beam to k.
    fn search_descends_through_the_upper_layer() {
        // x positions: 0 E=0 (entry, layer 1), 1 F=8 (layer 1), 2 B=3, 3 C=-5, 4 D=9.5. Query 10.
        // Layer 1: E-F. Layer 0: E-B, E-C, C-D, F-D (no E-F link on layer 0).
        let vectors = vec![0.0, 8.0, 3.0, -5.0, 9.5];
        let links = vec![
            vec![vec![2, 3], vec![1]],
            vec![vec![4], vec![0]],
            vec![vec![0]],
            vec![vec![0, 4]],
            vec![vec![3, 1]],
        ];
        let graph = Hnsw::from_graph(1, flat_config(Metric::L2), vectors, links, 0);
        let got = graph.search(&[10.0], 1, 1);
        assert_eq!(ids(&got), [4], "descending E -> F on layer 1 and then searching layer 0 finds node 4 (x = 9.5) (got {got:?})");
        let got = graph.search(&[10.0], 3, 1);
        assert_eq!(ids(&got), [4, 1, 2], "k = 3 with ef = 1: layer 0 must be searched with max(ef, k) = 3 (got {got:?})");
        let got = graph.search(&[10.0], 10, 4);
        assert_eq!(ids(&got), [4, 1, 2, 0, 3], "k = 10 on 5 nodes returns all 5, nearest first (got {got:?})");
        assert!(graph.search(&[10.0], 0, 8).is_empty(), "k = 0 must return nothing");
        let empty = Hnsw::new(3, HnswConfig::default());
        assert!(empty.search(&[0.0, 0.0, 0.0], 5, 8).is_empty(), "an empty index must return nothing");
    }

    /// On a complete graph (every node linked to every other) search is exact for every k.
    fn search_on_a_complete_graph_is_exact() {
        let (n, dim) = (60usize, 6usize);
        let data = vectors::uniform(n * dim, 404);
        let graph = complete_graph(dim, data.clone());
        for q in vectors::uniform(5 * dim, 405).chunks_exact(dim) {
            for k in [1usize, 7, 60, 80] {
                let got = graph.search(q, k, 10);
                assert_same_top_k(&got, k, &format!("search k={k} ef=10"), &data, dim, q, Metric::L2);
            }
        }
    }

    /// Top 10 scores and ranking agree with tantivy's BM25 on 300 short generated documents and 25 queries.
    fn bm25_matches_tantivy_scores_and_ranking() {
        let docs = text::documents(300, 30, 2024);
        let refs: Vec<&str> = docs.iter().map(String::as_str).collect();
        let reference = kernels::search::Bm25Index::build(&refs).expect("kernels BM25 index");
        let index = lab::bm25::Bm25Index::build(&refs);
        let mut queries = text::queries(25, 7);
        queries.extend(["SIMD, lane & heap!".to_string(), "sovereign platform".to_string(), "the".to_string()]);
        for q in &queries {
            let want = reference.search(q, 10).expect("kernels BM25 search");
            let all = reference.search(q, docs.len()).expect("kernels BM25 search");
            let got = index.search(q, 10);
            assert_bm25_agrees(q, &got, &want, &all);
            let got_all = index.search(q, docs.len());
            assert_eq!(got_all.len(), all.len(), "query {q:?}: {} documents match, tantivy finds {}", got_all.len(), all.len());
        }
    }

    /// Unknown terms, empty or punctuation-only queries, k = 0, case, punctuation and repeated query terms.
    fn bm25_handles_missing_terms_empty_queries_and_k() {
        let docs = ["Rust vector search", "vector index; vector graph", "a RUST kernel", "", "graph graph graph"];
        let index = lab::bm25::Bm25Index::build(&docs);
        assert!(index.search("unicorn", 10).is_empty(), "a query whose terms are in no document must return nothing");
        assert!(index.search("", 10).is_empty(), "an empty query must return nothing");
        assert!(index.search("?! -- ,", 10).is_empty(), "a query of punctuation only must return nothing");
        assert!(index.search("vector", 0).is_empty(), "k = 0 must return nothing");
        let plain = index.search("rust vector", 10);
        let docs_found: Vec<u32> = {
            let mut d: Vec<u32> = plain.iter().map(|h| h.0).collect();
            d.sort();
            d
        };
        assert_eq!(docs_found, [0, 1, 2], "\"rust vector\" matches documents 0, 1 and 2 (got {plain:?})");
        assert_eq!(index.search("RUST, Vector!", 10), plain, "case and punctuation in the query must not matter");
        assert_eq!(index.search("rust vector rust", 10), plain, "a repeated query term counts once (as in tantivy)");
        assert_eq!(index.search("rust unicorn vector", 10), plain, "an unknown term must add nothing");
        assert_eq!(index.search("rust vector", 2), plain[..2].to_vec(), "k = 2 must keep the 2 best");
        let reference = kernels::search::Bm25Index::build(&docs).expect("kernels BM25 index");
        let want = reference.search("graph", 10).expect("kernels BM25 search");
        assert_bm25_agrees("graph", &index.search("graph", 10), &want, &want);
    }

    /// term_score by hand and its shape: rarer terms, shorter documents and more occurrences score higher, with saturation.
    fn bm25_term_score_has_the_right_shape() {
        use lab::bm25::term_score;
        let got = term_score(1, 1, 1, 5, 5.0);
        let want = (4.0f32 / 3.0).ln();
        assert!((got - want).abs() < 1e-6, "term_score(tf 1, n 1, N 1, dl = avgdl): expected ln(4/3) = {want}, got {got}");
        let got = term_score(3, 10, 100, 20, 10.0);
        let idf = (1.0f64 + 90.5 / 10.5).ln();
        let want = (idf * 3.0 * 2.2 / (3.0 + 1.2 * (0.25 + 0.75 * 2.0))) as f32;
        assert!((got - want).abs() < 1e-5 * want, "term_score(tf 3, n 10, N 100, dl 20, avgdl 10): expected {want}, got {got}");
        assert!(term_score(1, 2, 100, 10, 10.0) > term_score(1, 50, 100, 10, 10.0), "a rarer term must score higher");
        assert!(term_score(1, 5, 100, 5, 10.0) > term_score(1, 5, 100, 30, 10.0), "a shorter document must score higher");
        let (one, two, many) = (term_score(1, 5, 100, 10, 10.0), term_score(2, 5, 100, 10, 10.0), term_score(1000, 5, 100, 10, 10.0));
        assert!(one < two && two < many, "more occurrences must score higher");
        let idf = (1.0f32 + 95.5 / 5.5).ln();
        assert!(many < idf * 2.2, "the score must saturate below idf * (k1 + 1) = {}, got {many}", idf * 2.2);
    }

    /// A document ranked first in every ranking wins; scores match Σ 1/(k + rank) and kernels' fusion.
    fn rrf_doc_ranked_first_everywhere_wins() {
        let mut rankings: Vec<Vec<u32>> = Vec::new();
        for r in 0..4u64 {
            let mut ids: Vec<u32> = (0..50).filter(|&d| d != 42).collect();
            let mut s = r + 1;
            for i in (1..ids.len()).rev() {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ids.swap(i, (s >> 33) as usize % (i + 1));
            }
            ids.truncate(20 + 5 * r as usize);
            ids.insert(0, 42);
            rankings.push(ids);
        }
        let refs: Vec<&[u32]> = rankings.iter().map(Vec::as_slice).collect();
        for k in [60.0f32, 1.0] {
            let got = lab::fusion::reciprocal_rank_fusion(&refs, k);
            assert_eq!(got.first().map(|h| h.0), Some(42), "document 42 is first in every ranking and must win (k = {k}), got {:?}", got.first());
            let want = kernels::search::reciprocal_rank_fusion(&refs, k);
            assert_eq!(got.len(), want.len(), "every document of any ranking must appear once (k = {k})");
            for ((gd, gs), (wd, ws)) in got.iter().zip(&want) {
                assert!((gs - ws).abs() < 1e-6, "k = {k}: fused score {gs} of doc {gd}, expected {ws} (doc {wd})");
            }
            let by_hand = refs.len() as f32 / (k + 1.0);
            assert!((got[0].1 - by_hand).abs() < 1e-6, "k = {k}: document 42 must score 4 / (k + 1) = {by_hand}, got {}", got[0].1);
            assert!(got.windows(2).all(|w| w[0].1 >= w[1].1), "fused list must be sorted by score descending");
        }
    }

    /// No rankings or empty ones give nothing; equal scores are ordered by id.
    fn rrf_handles_disjoint_and_empty_rankings() {
        assert!(lab::fusion::reciprocal_rank_fusion(&[], 60.0).is_empty(), "no rankings must give an empty list");
        assert!(lab::fusion::reciprocal_rank_fusion(&[&[], &[]], 60.0).is_empty(), "empty rankings must give an empty list");
        let got = lab::fusion::reciprocal_rank_fusion(&[&[4, 2], &[3, 1]], 60.0);
        let want = [(3u32, 1.0 / 61.0), (4, 1.0 / 61.0), (1, 1.0 / 62.0), (2, 1.0 / 62.0)];
        let got_ids: Vec<u32> = got.iter().map(|h| h.0).collect();
        assert_eq!(got_ids, [3, 4, 1, 2], "equal scores must be ordered by ascending id (got {got:?})");
        for ((_, g), (d, w)) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-7, "doc {d}: expected {w}, got {g}");
        }
    }
}
