//! HNSW: build 5k x 128, and search a 20k x 128 (Medium tier) index at several ef.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use datasets::Tier;
use datasets::vectors::{ClusteredConfig, clustered, queries};
use kernels::ann::{Hnsw, HnswConfig};

fn build(c: &mut Criterion) {
    let cfg = ClusteredConfig { n: 5_000, ..ClusteredConfig::tier(Tier::Medium, 7) };
    let data = clustered(&cfg);
    let mut group = c.benchmark_group("hnsw/build");
    group.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(cfg.n as u64));
    group.bench_function("5k x 128/M16/efC200", |b| {
        b.iter(|| Hnsw::build(black_box(&data), cfg.dim, HnswConfig::default()))
    });
    group.finish();
}

fn search(c: &mut Criterion) {
    let cfg = ClusteredConfig::tier(Tier::Medium, 7);
    let data = clustered(&cfg);
    let qs = queries(&cfg, 100);
    let index = match Hnsw::build(&data, cfg.dim, HnswConfig::default()) {
        Ok(index) => index,
        Err(e) => panic!("building the benchmark index: {e}"),
    };
    let mut group = c.benchmark_group("hnsw/search");
    group.sample_size(10).warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(1));
    group.throughput(Throughput::Elements(100));
    for ef in [16, 64, 128] {
        group.bench_with_input(BenchmarkId::new("20k x 128/100 queries/top10", ef), &ef, |b, &ef| {
            b.iter(|| {
                for q in qs.chunks_exact(cfg.dim) {
                    black_box(index.search(black_box(q), 10, ef).ok());
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, build, search);
