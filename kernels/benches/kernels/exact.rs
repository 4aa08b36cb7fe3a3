//! Exact top-k: one query and a parallel batch over a Medium-tier clustered set.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group};
use datasets::Tier;
use datasets::vectors::{ClusteredConfig, clustered, queries};
use kernels::ann::{exact_top_k, exact_top_k_batch};
use kernels::simd::Metric;

fn exact(c: &mut Criterion) {
    let cfg = ClusteredConfig::tier(Tier::Medium, 7);
    let data = clustered(&cfg);
    let qs = queries(&cfg, 100);
    let mut group = c.benchmark_group("exact");
    group.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    group.throughput(Throughput::Elements(1));
    group.bench_function("top10/20k x 128/one query", |b| {
        b.iter(|| exact_top_k(black_box(&data), cfg.dim, black_box(&qs[..cfg.dim]), 10, Metric::L2))
    });
    group.throughput(Throughput::Elements(100));
    group.bench_function("top10/20k x 128/100 queries (rayon)", |b| {
        b.iter(|| exact_top_k_batch(black_box(&data), cfg.dim, black_box(&qs), 10, Metric::L2))
    });
    group.finish();
}

criterion_group!(benches, exact);
