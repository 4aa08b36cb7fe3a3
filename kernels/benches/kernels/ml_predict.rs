//! `FlatForest` inference (Asadi, Lin & de Vries, "Runtime Optimizations for Tree-Based Machine Learning
//! Models", IEEE TKDE 26 (2014)): one row and a 10 k-row batch through a 100-round boosted model and a
//! 100-tree forest.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group};
use kernels::ml::flat::FlatForest;
use kernels::ml::forest::{self, ForestConfig};
use kernels::ml::gbm::{self, GbmConfig};
use kernels::ml::tree::TreeConfig;

use crate::ml_data::fraud_like;

fn predict(c: &mut Criterion) {
    let (x, y) = fraud_like(20_000);
    let (train, test) =
        (x.select_rows(&(0..10_000).collect::<Vec<_>>()), x.select_rows(&(10_000..20_000).collect::<Vec<_>>()));
    let gbm = gbm::fit(&train, &y[..10_000], None, &GbmConfig::default()).expect("gbm");
    let forest_cfg =
        ForestConfig { tree: TreeConfig { max_depth: Some(10), ..TreeConfig::default() }, ..ForestConfig::default() };
    let forest = forest::fit(&train, &y[..10_000], &forest_cfg).expect("forest");
    let mut group = c.benchmark_group("ml_predict");
    group.sample_size(20).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    for (name, flat) in [
        ("gbm 100 x 31 leaves", FlatForest::from_gbm(&gbm)),
        ("forest 100 x depth 10", FlatForest::from_forest(&forest)),
    ] {
        group.throughput(Throughput::Elements(1));
        group.bench_function(format!("predict_row/{name}"), |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % test.rows();
                flat.predict_row(black_box(test.row(i))).expect("row")
            })
        });
        group.throughput(Throughput::Elements(test.rows() as u64));
        group.bench_function(format!("predict_batch/10k rows/{name}"), |b| {
            b.iter(|| flat.predict_batch(black_box(&test)).expect("batch"))
        });
    }
    group.finish();
}

criterion_group!(benches, predict);
