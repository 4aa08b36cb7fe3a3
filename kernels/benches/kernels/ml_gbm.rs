//! Histogram gradient-boosting training (Ke et al., "LightGBM", NeurIPS 2017): 100 rounds of 31 leaves
//! on 10 k and 50 k rows (binning included).

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group};
use kernels::ml::gbm::{self, GbmConfig};

use crate::ml_data::fraud_like;

fn gbm_fit(c: &mut Criterion) {
    let mut group = c.benchmark_group("ml_gbm");
    group.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    let cfg = GbmConfig { num_iterations: 100, num_leaves: 31, ..GbmConfig::default() };
    for rows in [10_000, 50_000] {
        let (x, y) = fraud_like(rows);
        group.throughput(Throughput::Elements(rows as u64));
        group.bench_function(format!("fit/{}k x 9/100 rounds 31 leaves", rows / 1000), |b| {
            b.iter(|| gbm::fit(black_box(&x), black_box(&y), None, &cfg).expect("fit"))
        });
    }
    group.finish();
}

criterion_group!(benches, gbm_fit);
