//! Quantised GEMV (`kernels::quant`, GGUF / ggml block formats) at SmolLM2-135M shapes, in GB/s of
//! weights streamed: the FFN (1536×576) and the tied output projection (49152×576).
//!
//! K-quants need rows that are a multiple of 256 elements, which 576 is not (llama.cpp falls back
//! to other types for such tensors): for Q4_K and Q6_K the shapes are the FFN down projection
//! (576×1536) and the output projection widened to 49152×768. GEMV is memory-bound; compare the
//! large shape's GB/s with the machine's streaming-read bandwidth.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use kernels::quant::{self, Kernel, QuantFormat};

const FORMATS: [QuantFormat; 5] =
    [QuantFormat::Q8_0, QuantFormat::Q4_0, QuantFormat::Q4_1, QuantFormat::Q4_K, QuantFormat::Q6_K];

fn shapes(format: QuantFormat) -> [(usize, usize); 2] {
    if format.block_len() == 256 { [(576, 1536), (49152, 768)] } else { [(1536, 576), (49152, 576)] }
}

fn gemv(c: &mut Criterion) {
    let mut group = c.benchmark_group("quant/gemv");
    group.warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(1)).sample_size(20);
    for format in FORMATS {
        for (rows, cols) in shapes(format) {
            let x = datasets::vectors::uniform(rows * cols, 7);
            let w = quant::quantize(format, &x).expect("finite input");
            let x = datasets::vectors::uniform(cols, 8);
            let mut y = vec![0.0f32; rows];
            group.throughput(Throughput::Bytes(w.len() as u64));
            let id = format!("{format}/{rows}x{cols}");
            group.bench_with_input(BenchmarkId::new(Kernel::best().name(), &id), &id, |b, _| {
                b.iter(|| quant::gemv(format, black_box(&w), rows, cols, black_box(&x), &mut y).unwrap())
            });
            if rows < 4096 {
                // The other kernels at the small shape, for comparison.
                for kernel in [Kernel::Avx2, Kernel::Scalar] {
                    if kernel == Kernel::best() || !kernel.is_available() {
                        continue;
                    }
                    group.bench_with_input(BenchmarkId::new(kernel.name(), &id), &id, |b, _| {
                        b.iter(|| {
                            quant::gemv_with(kernel, format, black_box(&w), rows, cols, black_box(&x), &mut y).unwrap()
                        })
                    });
                }
            }
        }
    }
    group.finish();
}

criterion_group!(benches, gemv);
