//! When is the GPU worth the transfer? Measured, not assumed: probes of bus bandwidth, dispatch latency
//! and each kernel's GPU and CPU throughput feed a cost model that places every call.
//!
//! The model, per call: `t_gpu = 2·latency + bytes_up / upload_bw + bytes_down /
//! download_bw + flops / gpu_rate` (one dispatch round trip plus one read-back
//! round trip) against `t_cpu = flops / cpu_rate`. Rates are measured on small
//! probes and assumed constant with size, which favours neither side much on a
//! software device (lavapipe) and under-sells a discrete GPU on big problems: the
//! break-even sizes it reports are upper bounds there. On lavapipe the "GPU" is
//! LLVM-compiled shaders on the same CPU cores, so the model usually keeps
//! everything on the CPU: that is the honest answer, not a bug.

use std::time::{Duration, Instant};

use super::context::GpuContext;
use super::q8_0::{Q8_0_BLOCK_BYTES, Q8_0_BLOCK_VALUES, gemv_q8_0_cpu};
use super::top_k::{chunking, top_k_cpu};
use crate::matmul::GemmShape;
use crate::simd::Metric;
use crate::{Error, Result};

/// Probe sizes of [`calibrate`]. The defaults take well under a second on lavapipe.
#[derive(Debug, Clone, PartialEq)]
pub struct CalibrationConfig {
    /// Bytes moved by the bandwidth probes.
    pub transfer_bytes: usize,
    /// Edge of the square GEMM probe.
    pub gemm_n: usize,
    /// Top-k probe: number of queries.
    pub top_k_queries: usize,
    /// Top-k probe: number of base vectors.
    pub top_k_base: usize,
    /// Top-k probe: dimension.
    pub top_k_dim: usize,
    /// Top-k probe: k.
    pub top_k_k: usize,
    /// Q8_0 GEMV probe: rows (the columns are `gemv_cols`).
    pub gemv_rows: usize,
    /// Q8_0 GEMV probe: columns (a multiple of 32).
    pub gemv_cols: usize,
    /// Timed repetitions per probe; the fastest is kept.
    pub repeats: usize,
}

impl Default for CalibrationConfig {
    fn default() -> Self {
        CalibrationConfig {
            transfer_bytes: 4 << 20,
            gemm_n: 128,
            top_k_queries: 64,
            top_k_base: 4096,
            top_k_dim: 64,
            top_k_k: 10,
            gemv_rows: 1024,
            gemv_cols: 512,
            repeats: 3,
        }
    }
}

/// Measured throughputs of one kernel, in floating-point operations per second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rates {
    /// GPU kernel alone (inputs resident, dispatch latency subtracted).
    pub gpu_flops: f64,
    /// The CPU implementation the fallback uses.
    pub cpu_flops: f64,
}

/// One kernel call, described by its size: what the cost model places.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `C = A·B` of this shape.
    Gemm(GemmShape),
    /// Top-k of `queries` queries against `base` vectors of dimension `dim`.
    TopK {
        /// Number of queries.
        queries: usize,
        /// Number of base vectors.
        base: usize,
        /// Dimension.
        dim: usize,
        /// Hits per query.
        k: usize,
    },
    /// `y = W·x` with `W` `rows × cols` in Q8_0.
    GemvQ8_0 {
        /// Rows of `W` (length of `y`).
        rows: usize,
        /// Columns of `W` (length of `x`).
        cols: usize,
    },
}

impl Op {
    /// Floating-point operations (one multiply-add counts 2).
    pub fn flops(&self) -> f64 {
        match *self {
            Op::Gemm(s) => s.flops() as f64,
            Op::TopK { queries, base, dim, .. } => 2.0 * queries as f64 * base as f64 * dim as f64,
            Op::GemvQ8_0 { rows, cols } => 2.0 * rows as f64 * cols as f64,
        }
    }

    /// Bytes uploaded to the device.
    pub fn upload_bytes(&self) -> f64 {
        match *self {
            Op::Gemm(s) => 4.0 * (s.m * s.k + s.k * s.n) as f64,
            Op::TopK { queries, base, dim, .. } => 4.0 * ((queries + base) * dim) as f64,
            Op::GemvQ8_0 { rows, cols } => {
                (rows * cols / Q8_0_BLOCK_VALUES * Q8_0_BLOCK_BYTES) as f64 + 4.0 * cols as f64
            }
        }
    }

    /// Bytes read back from the device.
    pub fn download_bytes(&self) -> f64 {
        match *self {
            Op::Gemm(s) => 4.0 * (s.m * s.n) as f64,
            Op::TopK { queries, base, k, .. } => {
                let (chunk, k_local) = chunking(k.min(base));
                8.0 * (queries * base.div_ceil(chunk) * k_local) as f64
            }
            Op::GemvQ8_0 { rows, .. } => 4.0 * rows as f64,
        }
    }
}

/// Where a call runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Placement {
    /// On the wgpu device.
    Gpu,
    /// On the CPU kernels of this crate.
    Cpu,
}

/// The cost model's forecast for one call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Forecast {
    /// Predicted GPU seconds, transfers and latency included.
    pub gpu_s: f64,
    /// Predicted CPU seconds.
    pub cpu_s: f64,
}

impl Forecast {
    /// The faster side (the CPU on a tie).
    pub fn placement(&self) -> Placement {
        if self.gpu_s < self.cpu_s { Placement::Gpu } else { Placement::Cpu }
    }
}

/// What [`calibrate`] measured on one device, and the cost model built on it.
#[derive(Debug, Clone, PartialEq)]
pub struct Calibration {
    /// Host-to-device bandwidth, bytes per second.
    pub upload_bytes_per_s: f64,
    /// Device-to-host bandwidth (copy + map), bytes per second.
    pub download_bytes_per_s: f64,
    /// Round trip of one tiny dispatch (submit, run, wait), seconds.
    pub dispatch_latency_s: f64,
    /// GEMM throughputs.
    pub gemm: Rates,
    /// Distance + top-k throughputs.
    pub top_k: Rates,
    /// Q8_0 GEMV throughputs.
    pub gemv_q8_0: Rates,
}

impl Calibration {
    /// Predicted GPU and CPU time of `op`.
    pub fn forecast(&self, op: &Op) -> Forecast {
        let rates = match op {
            Op::Gemm(_) => self.gemm,
            Op::TopK { .. } => self.top_k,
            Op::GemvQ8_0 { .. } => self.gemv_q8_0,
        };
        let flops = op.flops();
        let gpu_s = 2.0 * self.dispatch_latency_s
            + op.upload_bytes() / self.upload_bytes_per_s
            + op.download_bytes() / self.download_bytes_per_s
            + flops / rates.gpu_flops;
        Forecast { gpu_s, cpu_s: flops / rates.cpu_flops }
    }

    /// Where the model runs `op`.
    pub fn placement(&self, op: &Op) -> Placement {
        self.forecast(op).placement()
    }

    /// Smallest `n` in `16..=16384` (steps of about 12 %) for which an `n × n × n`
    /// GEMM goes to the GPU; `None` if the CPU wins throughout.
    pub fn break_even_gemm(&self) -> Option<usize> {
        self.break_even(|n| Op::Gemm(GemmShape::new(n, n, n)))
    }

    /// Smallest number of queries in `16..=16384` for which top-k against
    /// `base` vectors of dimension `dim` goes to the GPU; `None` if never.
    pub fn break_even_top_k(&self, base: usize, dim: usize, k: usize) -> Option<usize> {
        self.break_even(|queries| Op::TopK { queries, base, dim, k })
    }

    /// Smallest square `n` (a multiple of 32, up to 16384) for which an
    /// `n × n` Q8_0 GEMV goes to the GPU; `None` if never.
    pub fn break_even_gemv_q8_0(&self) -> Option<usize> {
        self.break_even(|n| Op::GemvQ8_0 { rows: n, cols: n.next_multiple_of(32) })
    }

    fn break_even(&self, op: impl Fn(usize) -> Op) -> Option<usize> {
        let mut n = 16usize;
        while n <= 16384 {
            if self.placement(&op(n)) == Placement::Gpu {
                return Some(n);
            }
            n = (n + n / 8).max(n + 1);
        }
        None
    }
}

impl std::fmt::Display for Calibration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let gf = |r: f64| r / 1e9;
        writeln!(
            f,
            "upload {:.2} GB/s, download {:.2} GB/s, dispatch round trip {:.1} µs",
            self.upload_bytes_per_s / 1e9,
            self.download_bytes_per_s / 1e9,
            self.dispatch_latency_s * 1e6
        )?;
        for (name, r) in [("gemm", self.gemm), ("top_k", self.top_k), ("gemv_q8_0", self.gemv_q8_0)] {
            writeln!(
                f,
                "{name}: GPU {:.2} GFLOP/s, CPU {:.2} GFLOP/s (GPU/CPU {:.2})",
                gf(r.gpu_flops),
                gf(r.cpu_flops),
                r.gpu_flops / r.cpu_flops
            )?;
        }
        let show = |v: Option<usize>| v.map_or("never (CPU wins up to 16384)".to_string(), |n| n.to_string());
        writeln!(f, "break-even: GEMM n = {}", show(self.break_even_gemm()))?;
        writeln!(
            f,
            "break-even: top-k queries (vs 20000 × 128, k = 10) = {}",
            show(self.break_even_top_k(20000, 128, 10))
        )?;
        write!(f, "break-even: Q8_0 GEMV n × n, n = {}", show(self.break_even_gemv_q8_0()))
    }
}

/// The fastest of `repeats` runs of `f` (at least one).
fn fastest(repeats: usize, mut f: impl FnMut() -> Result<()>) -> Result<Duration> {
    let mut best = Duration::MAX;
    for _ in 0..repeats.max(1) {
        let t = Instant::now();
        f()?;
        best = best.min(t.elapsed());
    }
    Ok(best)
}

/// Deterministic values in [-1, 1) for the probes (a 32-bit LCG; quality is irrelevant here).
fn probe_data(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (s >> 8) as f32 / (1u32 << 23) as f32 - 1.0
        })
        .collect()
}

/// Measures `ctx` against this machine's CPU kernels and returns the cost model.
///
/// Every probe is run once to warm up (pipeline caches, page faults) and then
/// `config.repeats` times; the fastest run counts.
///
/// # Errors
/// [`Error::InvalidParameter`] for a probe size of zero or a `gemv_cols` that
/// is not a multiple of 32; any error of the kernels themselves.
pub fn calibrate(ctx: &GpuContext, config: &CalibrationConfig) -> Result<Calibration> {
    let c = config;
    if [c.transfer_bytes, c.gemm_n, c.top_k_queries, c.top_k_base, c.top_k_dim, c.top_k_k, c.gemv_rows, c.gemv_cols]
        .contains(&0)
        || !c.gemv_cols.is_multiple_of(Q8_0_BLOCK_VALUES)
    {
        return Err(Error::InvalidParameter(format!("calibrate: every probe size must be positive: {c:?}")));
    }
    let reps = c.repeats.max(1) + 1; // + warm-up (it is the slowest and drops out of the minimum)
    ctx.scoped("calibrate", || {
        // Dispatch round trip: a 1 × 1 × 1 GEMM, already uploaded.
        let one = [1.0f32];
        let tiny = ctx.gemm_job(&one, &one, GemmShape::new(1, 1, 1))?;
        let latency = fastest(reps, || ctx.run(std::slice::from_ref(&tiny.dispatch)))?.as_secs_f64();

        // Bandwidth: write into / read out of one buffer.
        let bytes = c.transfer_bytes.next_multiple_of(4);
        let payload = vec![7u8; bytes];
        let buf = ctx.output("calibrate transfer", bytes as u64);
        let up = fastest(reps, || {
            ctx.queue.write_buffer(&buf, 0, &payload);
            ctx.queue.submit([]);
            ctx.wait()
        })?
        .as_secs_f64();
        let down = fastest(reps, || ctx.read(&buf, bytes as u64).map(drop))?.as_secs_f64();
        let bw = |t: f64| bytes as f64 / (t - latency).max(t * 0.1);

        let kernel_rate = |flops: f64, t: Duration| flops / (t.as_secs_f64() - latency).max(t.as_secs_f64() * 0.1);
        let cpu_rate = |flops: f64, t: Duration| flops / t.as_secs_f64().max(1e-9);

        // GEMM.
        let n = c.gemm_n;
        let shape = GemmShape::new(n, n, n);
        let (a, b) = (probe_data(n * n, 1), probe_data(n * n, 2));
        let job = ctx.gemm_job(&a, &b, shape)?;
        let g = fastest(reps, || ctx.run(std::slice::from_ref(&job.dispatch)))?;
        let mut out = vec![0.0; n * n];
        let cpu = fastest(reps, || crate::matmul::gemm(&a, &b, &mut out, shape))?;
        let flops = shape.flops() as f64;
        let gemm = Rates { gpu_flops: kernel_rate(flops, g), cpu_flops: cpu_rate(flops, cpu) };

        // Top-k.
        let (q, nb, d, k) = (c.top_k_queries, c.top_k_base, c.top_k_dim, c.top_k_k);
        let (base, queries) = (probe_data(nb * d, 3), probe_data(q * d, 4));
        let base_buf = ctx.storage("calibrate base", bytemuck::cast_slice(&base));
        let job = ctx.top_k_job(&base_buf, nb, d, &queries, k.min(nb), Metric::L2)?;
        let g = fastest(reps, || ctx.run(std::slice::from_ref(&job.dispatch)))?;
        let cpu = fastest(reps, || top_k_cpu(&base, d, &queries, k, Metric::L2).map(drop))?;
        let flops = Op::TopK { queries: q, base: nb, dim: d, k }.flops();
        let top_k = Rates { gpu_flops: kernel_rate(flops, g), cpu_flops: cpu_rate(flops, cpu) };

        // Q8_0 GEMV: random bytes with a fixed, finite scale (0x2c00 = 1/16 in f16) in every block.
        let (rows, cols) = (c.gemv_rows, c.gemv_cols);
        let mut w: Vec<u8> = probe_data(rows * cols / 32 * 34, 5).iter().map(|v| (v * 127.0) as i8 as u8).collect();
        for blk in w.chunks_exact_mut(Q8_0_BLOCK_BYTES) {
            blk[..2].copy_from_slice(&0x2c00u16.to_le_bytes());
        }
        let x = probe_data(cols, 6);
        let job = ctx.gemv_q8_0_job(&w, rows, cols, &x)?;
        let g = fastest(reps, || ctx.run(std::slice::from_ref(&job.dispatch)))?;
        let mut y = vec![0.0; rows];
        let cpu = fastest(reps, || gemv_q8_0_cpu(&w, rows, cols, &x, &mut y))?;
        let flops = Op::GemvQ8_0 { rows, cols }.flops();
        let gemv_q8_0 = Rates { gpu_flops: kernel_rate(flops, g), cpu_flops: cpu_rate(flops, cpu) };

        Ok(Calibration {
            upload_bytes_per_s: bw(up),
            download_bytes_per_s: bw(down),
            dispatch_latency_s: latency,
            gemm,
            top_k,
            gemv_q8_0,
        })
    })
}
