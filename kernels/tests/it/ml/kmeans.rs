//! `kernels::ml::kmeans` against scikit-learn's `KMeans` (k-means++, n_init=10) on make_blobs data:
//! inertia within 1% and, on the true k, the same partition up to a relabelling; determinism across
//! thread counts, monotone inertia, degenerate data and bad input.

use kernels::Error;
use kernels::ml::Matrix;
use kernels::ml::kmeans::{self, KMeansConfig};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{fixture, matrix};

/// Whether `a` and `b` are the same partition (a bijection maps one labelling onto the other).
fn same_partition(a: &[u32], b: &[u64]) -> bool {
    let mut fwd = std::collections::HashMap::new();
    let mut back = std::collections::HashMap::new();
    a.iter().zip(b).all(|(&x, &y)| *fwd.entry(x).or_insert(y) == y && *back.entry(y).or_insert(x) == x)
}

#[test]
fn inertia_and_labels_match_scikit_learn_on_blobs() {
    let f = fixture("kmeans_blobs.json");
    let x = matrix(&f["x"]);
    for run in f["runs"].as_array().unwrap() {
        let k = run["k"].as_u64().unwrap() as usize;
        let want = run["inertia"].as_f64().unwrap();
        let model = kmeans::fit(&x, &KMeansConfig { k, n_init: 10, seed: 0, ..KMeansConfig::default() }).unwrap();
        let ratio = model.inertia() / want;
        println!(
            "k = {k}: inertia {:.6} vs scikit-learn {want:.6} (ratio {ratio:.6}), {} iterations",
            model.inertia(),
            model.n_iter()
        );
        assert!((ratio - 1.0).abs() <= 0.01, "k = {k}: inertia ratio {ratio}");
        let labels = model.predict(&x).unwrap();
        assert!((model.inertia_of(&x).unwrap() - model.inertia()).abs() <= 1e-9 * model.inertia());
        if k == 4 {
            let sk: Vec<u64> = run["labels"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
            assert!(same_partition(&labels, &sk), "k = 4: the partition differs from scikit-learn's");
            let truth: Vec<u64> = f["truth"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
            assert!(same_partition(&labels, &truth), "k = 4: the blobs are not recovered");
        }
    }
}

fn random_matrix(rows: usize, cols: usize, seed: u64) -> Matrix {
    let mut rng = StdRng::seed_from_u64(seed);
    Matrix::new(rows, cols, (0..rows * cols).map(|_| rng.random::<f32>()).collect()).unwrap()
}

#[test]
fn a_seed_gives_the_same_model_on_one_and_two_threads() {
    // Enough rows for several parallel blocks.
    let x = random_matrix(5000, 4, 11);
    let cfg = KMeansConfig { k: 7, n_init: 3, seed: 42, ..KMeansConfig::default() };
    let on = |threads: usize| {
        rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap().install(|| kmeans::fit(&x, &cfg).unwrap())
    };
    let (one, two) = (on(1), on(2));
    assert_eq!(one, two);
    assert_eq!(one.inertia().to_bits(), two.inertia().to_bits());
    let other_seed = kmeans::fit(&x, &KMeansConfig { seed: 43, ..cfg.clone() }).unwrap();
    assert_ne!(one.centroids(), other_seed.centroids());
}

#[test]
fn inertia_never_increases_across_lloyd_iterations() {
    for seed in 0..5 {
        let x = random_matrix(2000, 3, 100 + seed);
        let model = kmeans::fit(&x, &KMeansConfig { k: 12, seed, tol: 0.0, ..KMeansConfig::default() }).unwrap();
        let trace = model.inertia_trace();
        assert!(trace.len() > 3, "seed {seed}: only {} steps", trace.len());
        for w in trace.windows(2) {
            assert!(w[1] <= w[0] * (1.0 + 1e-12), "seed {seed}: inertia rose from {} to {}", w[0], w[1]);
        }
        assert_eq!(*trace.last().unwrap(), model.inertia());
    }
}

#[test]
fn fewer_distinct_points_than_clusters_does_not_fail() {
    let x =
        Matrix::from_rows(&[vec![1.0, 1.0], vec![1.0, 1.0], vec![1.0, 1.0], vec![5.0, 5.0], vec![5.0, 5.0]]).unwrap();
    let model = kmeans::fit(&x, &KMeansConfig { k: 4, ..KMeansConfig::default() }).unwrap();
    assert_eq!(model.inertia(), 0.0);
    assert!(model.centroids().iter().all(|v| v.is_finite()));
    let one = kmeans::fit(&x, &KMeansConfig { k: 1, ..KMeansConfig::default() }).unwrap();
    assert_eq!(one.centroid(0), &[2.6, 2.6]);
}

#[test]
fn bad_input_is_a_typed_error() {
    let x = random_matrix(5, 2, 1);
    let cfg = |k| KMeansConfig { k, ..KMeansConfig::default() };
    assert!(matches!(kmeans::fit(&x, &cfg(6)), Err(Error::InvalidParameter(_))));
    assert!(matches!(kmeans::fit(&x, &cfg(0)), Err(Error::InvalidParameter(_))));
    assert!(matches!(
        kmeans::fit(&x, &KMeansConfig { k: 2, n_init: 0, ..KMeansConfig::default() }),
        Err(Error::InvalidParameter(_))
    ));
    let empty = Matrix::new(0, 2, vec![]).unwrap();
    assert!(matches!(kmeans::fit(&empty, &cfg(1)), Err(Error::MlEmpty(_))));
    let mut data = x.data().to_vec();
    data[7] = f32::NAN;
    let nan = Matrix::new(5, 2, data).unwrap();
    assert!(matches!(kmeans::fit(&nan, &cfg(2)), Err(Error::MlNonFinite { row: 3, column: 1 })));
    let model = kmeans::fit(&x, &cfg(2)).unwrap();
    assert!(matches!(model.predict(&random_matrix(3, 3, 2)), Err(Error::DimensionMismatch { expected: 2, got: 3 })));
    assert!(matches!(model.predict(&nan), Err(Error::MlNonFinite { row: 3, column: 1 })));
}
