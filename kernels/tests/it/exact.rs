//! Exact top-k search against a naive full sort, and its error handling.

use kernels::Error;
use kernels::ann::{FlatIndex, Neighbor, QUERY_BLOCK, TILE_ROWS, exact_top_k, exact_top_k_batch};
use kernels::simd::Metric;
use proptest::prelude::*;

const METRICS: [Metric; 3] = [Metric::L2, Metric::Dot, Metric::Cosine];

/// The reference: every distance, fully sorted by (distance, id), cut to k.
fn naive(data: &[f32], dim: usize, q: &[f32], k: usize, metric: Metric) -> Vec<Neighbor> {
    let mut all: Vec<Neighbor> = data
        .chunks_exact(dim)
        .enumerate()
        .map(|(i, row)| Neighbor { id: i as u32, distance: metric.distance(q, row) })
        .collect();
    all.sort_by(Neighbor::total_cmp);
    all.truncate(k);
    all
}

fn check(case: &str, data: &[f32], dim: usize, q: &[f32], k: usize, metric: Metric) {
    let got = exact_top_k(data, dim, q, k, metric).unwrap();
    assert_eq!(got, naive(data, dim, q, k, metric), "{case}: {metric:?} k={k}");
}

#[test]
fn matches_naive_sort() {
    let dim = 17;
    let data = datasets::vectors::uniform(300 * dim, 11);
    let queries = datasets::vectors::uniform(5 * dim, 12);
    for metric in METRICS {
        for k in [1, 2, 10, 299, 300, 1000] {
            for q in queries.chunks_exact(dim) {
                check("uniform", &data, dim, q, k, metric);
            }
        }
    }
}

#[test]
fn ties_break_by_id() {
    // Four copies of the same point: equal distances, so ids decide.
    let data = [1.0f32, 0.0, 5.0, 5.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0];
    let got = exact_top_k(&data, 2, &[1.0, 0.0], 3, Metric::L2).unwrap();
    let ids: Vec<u32> = got.iter().map(|n| n.id).collect();
    assert_eq!(ids, [0, 2, 3]);
    check("ties", &data, 2, &[1.0, 0.0], 5, Metric::L2);
}

fn expect_err(case: &str, result: kernels::Result<Vec<Neighbor>>, expected: fn(&Error) -> bool) {
    let err = result.expect_err(case);
    assert!(expected(&err), "{case}: unexpected error {err}");
}

#[test]
fn edge_cases_and_errors() {
    let data = [0.0f32; 12];
    assert!(exact_top_k(&data, 3, &[0.0; 3], 0, Metric::L2).unwrap().is_empty());
    assert!(exact_top_k(&[], 3, &[0.0; 3], 5, Metric::L2).unwrap().is_empty());
    assert_eq!(exact_top_k(&data, 3, &[0.0; 3], 10, Metric::L2).unwrap().len(), 4);
    assert_eq!(exact_top_k(&data, 3, &[0.0; 3], usize::MAX, Metric::L2).unwrap().len(), 4);

    expect_err("dim 0", exact_top_k(&data, 0, &[], 1, Metric::L2), |e| matches!(e, Error::InvalidParameter(_)));
    expect_err("ragged", exact_top_k(&data, 5, &[0.0; 5], 1, Metric::L2), |e| {
        matches!(e, Error::RaggedBuffer { len: 12, dim: 5 })
    });
    expect_err("short query", exact_top_k(&data, 3, &[0.0; 2], 1, Metric::L2), |e| {
        matches!(e, Error::DimensionMismatch { expected: 3, got: 2 })
    });
    assert!(matches!(
        exact_top_k_batch(&data, 3, &[0.0; 4], 1, Metric::L2),
        Err(Error::RaggedBuffer { len: 4, dim: 3 })
    ));
    assert!(matches!(exact_top_k_batch(&data, 0, &[], 1, Metric::L2), Err(Error::InvalidParameter(_))));
}

#[test]
fn batch_matches_single_queries() {
    let dim = 32;
    let data = datasets::vectors::uniform(200 * dim, 21);
    let queries = datasets::vectors::uniform(9 * dim, 22);
    for metric in METRICS {
        let batch = exact_top_k_batch(&data, dim, &queries, 7, metric).unwrap();
        assert_eq!(batch.len(), 9);
        for (q, got) in queries.chunks_exact(dim).zip(&batch) {
            assert_eq!(got, &exact_top_k(&data, dim, q, 7, metric).unwrap());
        }
    }
    assert!(exact_top_k_batch(&data, dim, &[], 7, Metric::L2).unwrap().is_empty());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn matches_naive_sort_on_random_data(
        dim in 1usize..12,
        n in 0usize..60,
        k in 0usize..70,
        seed in any::<u64>(),
        // Small integers make exact ties common.
        coarse in any::<bool>(),
    ) {
        let round = |v: Vec<f32>| -> Vec<f32> {
            if coarse { v.into_iter().map(|x| (x * 3.0).round()).collect() } else { v }
        };
        let data = round(datasets::vectors::uniform(n * dim, seed));
        let q = round(datasets::vectors::uniform(dim, seed ^ 1));
        for metric in METRICS {
            check("proptest", &data, dim, &q, k, metric);
        }
    }
}

/// `FlatIndex` (the GEMM formulation) against the direct ground truth. On small-integer data
/// every product and sum is exact in f32, so the two must agree hit for hit, ties included;
/// on real-valued data, each returned distance must be within `tol` of the true one at its rank.
fn check_flat(case: &str, data: &[f32], dim: usize, queries: &[f32], k: usize, exact_values: bool) {
    for metric in METRICS {
        let index = FlatIndex::new(data, dim, metric).unwrap();
        assert_eq!((index.len(), index.dim()), (data.len() / dim, dim));
        let got = index.search(queries, k).unwrap();
        let want = exact_top_k_batch(data, dim, queries, k, metric).unwrap();
        assert_eq!(got.len(), want.len(), "{case}: one result per query");
        for (qi, (g, w)) in got.iter().zip(&want).enumerate() {
            let what = format!("{case}: {metric:?} k={k} query {qi}");
            // Cosine data are rescaled to unit length, which rounds: never exact.
            if exact_values && metric != Metric::Cosine {
                assert_eq!(g, w, "{what}");
                continue;
            }
            assert_eq!(g.len(), w.len(), "{what}");
            for (a, b) in g.iter().zip(w) {
                let tol = 1e-4 * (1.0 + b.distance.abs());
                assert!((a.distance - b.distance).abs() <= tol, "{what}: {a:?} vs {b:?}");
            }
        }
    }
}

#[test]
fn flat_index_matches_the_direct_search() {
    // Several tiles (1024 rows each) and query blocks (128 each), with ragged last ones.
    let (dim, n, nq) = (19, 2 * TILE_ROWS + 300, QUERY_BLOCK + 5);
    let coarse = |v: Vec<f32>| -> Vec<f32> { v.into_iter().map(|x| (x * 3.0).round()).collect() };
    let data = coarse(datasets::vectors::uniform(n * dim, 31));
    let queries = coarse(datasets::vectors::uniform(nq * dim, 32));
    for k in [1, 10, 50] {
        check_flat("integers", &data, dim, &queries, k, true);
    }
    let data = datasets::vectors::uniform(n * dim, 33);
    let queries = datasets::vectors::uniform(7 * dim, 34);
    check_flat("uniform", &data, dim, &queries, 10, false);
    // k beyond the data, a single vector, a zero vector (cosine distance 1).
    check_flat("small", &data[..3 * dim], dim, &queries, 5, false);
    let mut with_zero = data[..40 * dim].to_vec();
    with_zero[..dim].fill(0.0);
    check_flat("zero vector", &with_zero, dim, &queries[..dim], 40, false);
}

#[test]
fn flat_index_edge_cases_and_errors() {
    let index = FlatIndex::new(&[], 4, Metric::L2).unwrap();
    assert!(index.is_empty());
    assert_eq!(index.search(&[0.0; 8], 3).unwrap(), vec![Vec::<Neighbor>::new(); 2]);
    let index = FlatIndex::new(&[1.0, 2.0, 3.0, 4.0], 2, Metric::Dot).unwrap();
    assert_eq!(index.search(&[1.0, 0.0], 0).unwrap(), vec![Vec::<Neighbor>::new()]);
    assert!(index.search(&[], 1).unwrap().is_empty());
    assert!(matches!(FlatIndex::new(&[1.0; 5], 2, Metric::L2), Err(Error::RaggedBuffer { len: 5, dim: 2 })));
    assert!(matches!(FlatIndex::new(&[1.0; 4], 0, Metric::L2), Err(Error::InvalidParameter(_))));
    assert!(matches!(index.search(&[1.0; 3], 1), Err(Error::RaggedBuffer { len: 3, dim: 2 })));
}
