//! Random-forest training (Breiman, "Random Forests", Machine Learning 45 (2001)): 32 trees of depth 10
//! on 10 k rows, with the histogram splitter (the default) and the exact sorted search.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group};
use kernels::ml::forest::{self, ForestConfig};
use kernels::ml::tree::{Splitter, TreeConfig};

use crate::ml_data::fraud_like;

fn forest_fit(c: &mut Criterion) {
    let (x, y) = fraud_like(10_000);
    let mut group = c.benchmark_group("ml_forest");
    group.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    group.throughput(Throughput::Elements(x.rows() as u64));
    for (name, splitter) in [("histogram 255 bins", Splitter::HISTOGRAM), ("exact", Splitter::Exact)] {
        let cfg = ForestConfig {
            n_trees: 32,
            tree: TreeConfig { max_depth: Some(10), ..TreeConfig::default() },
            splitter,
            ..ForestConfig::default()
        };
        group.bench_function(format!("fit/10k x 9/32 trees depth 10/{name}"), |b| {
            b.iter(|| forest::fit(black_box(&x), black_box(&y), &cfg).expect("fit"))
        });
    }
    group.finish();
}

criterion_group!(benches, forest_fit);
