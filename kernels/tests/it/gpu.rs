//! kernels::gpu on a real wgpu adapter (lavapipe in CI) against independent scalar references.
//!
//! No test skips when there is no adapter: opening the device fails the test
//! with [`Error::NoGpuAdapter`]'s message, which says which driver to install.
//!
//! Tolerances: GEMM and Q8_0 GEMV elements within `(k + 4)·ε·Σ|aᵢ·bᵢ|` of an
//! f64 reference (the summation-order bound); top-k ids exactly equal where the
//! reference distances are separated by more than the rounding tolerance
//! (integer-valued data makes L2 and dot distances exact, so every id is checked).

use std::sync::OnceLock;

use kernels::Error;
use kernels::gpu::{
    CalibrationConfig, Device, GpuContext, NO_ID, Op, Placement, TopK, calibrate, gemv_q8_0_cpu, top_k_cpu,
};
use kernels::matmul::GemmShape;
use kernels::simd::Metric;

const METRICS: [Metric; 3] = [Metric::L2, Metric::Dot, Metric::Cosine];

/// The shared device; a missing adapter fails the calling test with the fix in the message.
fn gpu() -> &'static GpuContext {
    static CTX: OnceLock<GpuContext> = OnceLock::new();
    CTX.get_or_init(|| {
        GpuContext::new().unwrap_or_else(|e| panic!("GPU tests need an adapter (CI installs lavapipe): {e}"))
    })
}

fn noise(n: usize, seed: u64) -> Vec<f32> {
    datasets::vectors::uniform(n, seed)
}

/// Integers in -4..=4: sums of their products are exact in f32, so distances tie exactly as in the reference.
fn integers(n: usize, seed: u64) -> Vec<f32> {
    noise(n, seed).iter().map(|v| (v * 4.0).round()).collect()
}

// ---------------------------------------------------------------- GEMM

fn gemm_reference(a: &[f32], b: &[f32], s: GemmShape) -> (Vec<f64>, Vec<f64>) {
    let mut c = vec![0.0; s.m * s.n];
    let mut mag = vec![0.0; s.m * s.n];
    for i in 0..s.m {
        for j in 0..s.n {
            for p in 0..s.k {
                let t = a[i * s.k + p] as f64 * b[p * s.n + j] as f64;
                c[i * s.n + j] += t;
                mag[i * s.n + j] += t.abs();
            }
        }
    }
    (c, mag)
}

fn check_gemm(case: &str, m: usize, n: usize, k: usize, seed: u64) {
    let s = GemmShape::new(m, n, k);
    let a = noise(m * k, seed);
    let b = noise(k * n, seed + 1);
    let mut c = vec![f32::NAN; m * n];
    gpu().gemm(&a, &b, &mut c, s).unwrap_or_else(|e| panic!("{case}: {e}"));
    let (want, mag) = gemm_reference(&a, &b, s);
    for (i, ((&got, &w), &mg)) in c.iter().zip(&want).zip(&mag).enumerate() {
        let tol = (k as f64 + 4.0) * f32::EPSILON as f64 * mg + 1e-30;
        assert!((got as f64 - w).abs() <= tol, "{case}: {m}x{n}x{k} C[{}][{}] = {got}, want {w} ± {tol}", i / n, i % n);
    }
}

#[test]
fn gemm_matches_scalar_reference() {
    let cases: &[(&str, usize, usize, usize)] = &[
        ("1x1x1", 1, 1, 1),
        ("tiny odd", 3, 5, 7),
        ("one tile", 64, 64, 64),
        ("ragged tile edges", 65, 63, 17),
        ("k not a multiple of 16", 33, 70, 45),
        ("row vector", 1, 200, 3),
        ("column vector", 130, 1, 70),
        ("long k", 20, 30, 1000),
        ("several tiles", 129, 131, 130),
    ];
    for (i, &(case, m, n, k)) in cases.iter().enumerate() {
        check_gemm(case, m, n, k, 10 + i as u64);
    }
}

#[test]
fn gemm_empty_shapes() {
    let g = gpu();
    // m = 0 and n = 0: nothing to do.
    g.gemm(&[], &[1.0; 6], &mut [], GemmShape::new(0, 3, 2)).unwrap();
    g.gemm(&[1.0; 6], &[], &mut [], GemmShape::new(3, 0, 2)).unwrap();
    // k = 0: C = 0, whatever it held (NaN included).
    let mut c = vec![f32::NAN; 6];
    g.gemm(&[], &[], &mut c, GemmShape::new(2, 3, 0)).unwrap();
    assert_eq!(c, vec![0.0; 6]);
}

#[test]
fn gemm_shape_mismatch_is_typed() {
    let g = gpu();
    let s = GemmShape::new(2, 3, 4);
    let cases: [(&str, usize, usize, usize, usize); 3] =
        [("A short", 7, 12, 6, 8), ("B long", 8, 13, 6, 12), ("C short", 8, 12, 5, 6)];
    for (case, la, lb, lc, expected) in cases {
        let err = g.gemm(&vec![0.0; la], &vec![0.0; lb], &mut vec![0.0; lc], s).unwrap_err();
        assert!(matches!(err, Error::DimensionMismatch { expected: e, .. } if e == expected), "{case}: got {err:?}");
    }
}

// ---------------------------------------------------------------- top-k

/// Every distance in f64, sorted by (distance, id): the reference.
fn top_k_reference(base: &[f32], dim: usize, q: &[f32], metric: Metric) -> Vec<(f64, u32)> {
    let mut all: Vec<(f64, u32)> = base
        .chunks_exact(dim)
        .enumerate()
        .map(|(i, b)| {
            let dot: f64 = q.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
            let d = match metric {
                Metric::L2 => q.iter().zip(b).map(|(x, y)| (*x as f64 - *y as f64).powi(2)).sum(),
                Metric::Dot => -dot,
                Metric::Cosine => {
                    let qq: f64 = q.iter().map(|x| (*x as f64).powi(2)).sum();
                    let bb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum();
                    let den = (qq * bb).sqrt();
                    1.0 - if den == 0.0 { 0.0 } else { dot / den }
                }
            };
            (d, i as u32)
        })
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    all
}

/// Checks one result against the reference: shape, distances within the rounding
/// tolerance, and every id whose reference distance is more than twice that from
/// its neighbours'. Integer-valued data make L2 and dot distances exact: then the
/// tolerance is zero and every id must match, ties broken by the smaller id.
fn check_top_k(case: &str, got: &TopK, base: &[f32], dim: usize, queries: &[f32], k: usize, metric: Metric) {
    let n = base.len() / dim;
    let q = queries.len() / dim;
    let k = k.min(n);
    assert_eq!((got.queries, got.k), (q, k), "{case}: shape");
    assert_eq!((got.ids.len(), got.distances.len()), (q * k, q * k), "{case}: lengths");
    let integral = base.iter().chain(queries).all(|v| v.fract() == 0.0);
    let b_max: f64 = base.chunks_exact(dim).map(|b| b.iter().map(|x| (*x as f64).powi(2)).sum()).fold(0.0, f64::max);
    let eps = (dim as f64 + 4.0) * f32::EPSILON as f64;
    for (qi, qv) in queries.chunks_exact(dim).enumerate() {
        let want = top_k_reference(base, dim, qv, metric);
        let qq: f64 = qv.iter().map(|x| (*x as f64).powi(2)).sum();
        let tol = match metric {
            Metric::L2 | Metric::Dot if integral => 0.0,
            Metric::L2 | Metric::Dot => 4.0 * eps * (qq + b_max),
            Metric::Cosine => 16.0 * eps,
        };
        for (r, (&id, &d)) in got.ids_of(qi).iter().zip(got.distances_of(qi)).enumerate() {
            assert_ne!(id, NO_ID, "{case}: query {qi} rank {r} empty");
            let (wd, wid) = want[r];
            assert!((d as f64 - wd).abs() <= tol, "{case}: {metric:?} query {qi} rank {r}: {d} vs {wd} ± {tol}");
            let apart = |o: Option<&(f64, u32)>| o.is_none_or(|p| (p.0 - wd).abs() > 2.0 * tol);
            if tol == 0.0 || (apart(r.checked_sub(1).map(|p| &want[p])) && apart(want.get(r + 1))) {
                assert_eq!(id, wid, "{case}: {metric:?} query {qi} rank {r} (distance {wd})");
            }
        }
    }
}

/// Runs the GPU and the CPU twin on one case and checks both.
fn check_both(case: &str, base: &[f32], dim: usize, queries: &[f32], k: usize) {
    for metric in METRICS {
        let got = gpu().top_k(base, dim, queries, k, metric).unwrap_or_else(|e| panic!("{case}: {e}"));
        check_top_k(&format!("{case} gpu"), &got, base, dim, queries, k, metric);
        let cpu = top_k_cpu(base, dim, queries, k, metric).unwrap();
        check_top_k(&format!("{case} cpu"), &cpu, base, dim, queries, k, metric);
    }
}

#[test]
fn top_k_matches_reference_on_exact_distances() {
    // (case, base vectors, queries, dim, k): tile edges of 16 vectors, 64 dims, 64 queries, 256-vector chunks, k around 32.
    let cases: &[(&str, usize, usize, usize, usize)] = &[
        ("1x1", 1, 1, 1, 1),
        ("odd everything", 37, 3, 5, 4),
        ("one group", 16, 64, 64, 10),
        ("group edges", 257, 65, 65, 10),
        ("many chunks", 1500, 7, 17, 10),
        ("k = 32 (largest kept on the GPU)", 600, 5, 9, 32),
        ("k = 33 (host selects from all)", 600, 5, 9, 33),
        ("large k", 300, 2, 4, 250),
        ("dim over two tiles", 70, 4, 130, 5),
    ];
    for (i, &(case, n, q, dim, k)) in cases.iter().enumerate() {
        let seed = 100 + 2 * i as u64;
        check_both(case, &integers(n * dim, seed), dim, &integers(q * dim, seed + 1), k);
    }
}

#[test]
fn top_k_matches_reference_on_random_floats() {
    let (n, q, dim) = (2000, 70, 48);
    check_both("uniform floats", &noise(n * dim, 7), dim, &noise(q * dim, 8), 10);
}

#[test]
fn top_k_clamps_k_to_the_base_size() {
    let dim = 3;
    let base = integers(5 * dim, 1);
    let queries = integers(2 * dim, 2);
    for metric in METRICS {
        let got = gpu().top_k(&base, dim, &queries, 9, metric).unwrap();
        assert_eq!(got.k, 5, "{metric:?}: k clamped to N");
        for qi in 0..2 {
            let mut ids = got.ids_of(qi).to_vec();
            ids.sort_unstable();
            assert_eq!(ids, vec![0, 1, 2, 3, 4], "{metric:?}: every base vector once");
        }
        check_top_k("k > N", &got, &base, dim, &queries, 9, metric);
    }
}

#[test]
fn top_k_empty_inputs() {
    let g = gpu();
    let dim = 4;
    let base = noise(10 * dim, 3);
    let queries = noise(2 * dim, 4);
    // (case, base, queries, k, expected queries, expected k)
    type Case<'a> = (&'a str, &'a [f32], &'a [f32], usize, usize, usize);
    let cases: [Case<'_>; 3] = [
        ("k = 0", &base, &queries, 0, 2, 0),
        ("empty base", &[], &queries, 5, 2, 0),
        ("no queries", &base, &[], 5, 0, 5),
    ];
    for (case, b, q, k, want_q, want_k) in cases {
        for got in [g.top_k(b, dim, q, k, Metric::L2).unwrap(), top_k_cpu(b, dim, q, k, Metric::L2).unwrap()] {
            assert_eq!((got.queries, got.k, got.ids.len()), (want_q, want_k, 0), "{case}");
        }
    }
}

#[test]
fn top_k_bad_shapes_are_typed() {
    let g = gpu();
    let base = noise(12, 1);
    let err = g.top_k(&base, 0, &base, 1, Metric::L2).unwrap_err();
    assert!(matches!(err, Error::InvalidParameter(_)), "dim 0: {err:?}");
    let err = g.top_k(&base[..11], 4, &base[..4], 1, Metric::L2).unwrap_err();
    assert!(matches!(err, Error::RaggedBuffer { len: 11, dim: 4 }), "ragged base: {err:?}");
    let err = g.top_k(&base, 4, &base[..5], 1, Metric::L2).unwrap_err();
    assert!(matches!(err, Error::RaggedBuffer { len: 5, dim: 4 }), "ragged queries: {err:?}");
}

#[cfg(feature = "ann")]
#[test]
fn top_k_agrees_with_exact_search() {
    let dim = 20;
    let base = integers(900 * dim, 31);
    let queries = integers(9 * dim, 32);
    for metric in [Metric::L2, Metric::Dot] {
        let got = gpu().top_k(&base, dim, &queries, 12, metric).unwrap().to_neighbors();
        let want = kernels::ann::exact_top_k_batch(&base, dim, &queries, 12, metric).unwrap();
        assert_eq!(got, want, "{metric:?}");
    }
}

// ---------------------------------------------------------------- Q8_0 GEMV

/// Quantises `rows × cols` floats to Q8_0 (scale max|v|/127 rounded to f16, quants rounded).
fn quantize_q8_0(w: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(w.len() / 32 * 34);
    for blk in w.chunks_exact(32) {
        let amax = blk.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let d = half::f16::from_f32(amax / 127.0);
        let inv = if d.to_f32() == 0.0 { 0.0 } else { 1.0 / d.to_f32() };
        out.extend_from_slice(&d.to_le_bytes());
        out.extend(blk.iter().map(|v| (v * inv).round().clamp(-127.0, 127.0) as i8 as u8));
    }
    out
}

/// `y = W·x` from the decoded blocks, in f64, with the magnitude sums for the tolerance.
fn gemv_reference(bytes: &[u8], rows: usize, cols: usize, x: &[f32]) -> (Vec<f64>, Vec<f64>) {
    let row_bytes = cols / 32 * 34;
    (0..rows)
        .map(|r| {
            let (mut y, mut mag) = (0.0, 0.0);
            for (b, blk) in bytes[r * row_bytes..(r + 1) * row_bytes].chunks_exact(34).enumerate() {
                let d = half::f16::from_le_bytes([blk[0], blk[1]]).to_f64();
                for (i, &q) in blk[2..].iter().enumerate() {
                    let t = d * (q as i8) as f64 * x[b * 32 + i] as f64;
                    y += t;
                    mag += t.abs();
                }
            }
            (y, mag)
        })
        .unzip()
}

/// Checks `y` against the f64 reference. The GPU keeps `x` in f32: rounding only.
/// The CPU fallback (`kernels::quant::gemv`) quantises `x` to 8 bits first: each
/// product may then be off by `|w|·amax(x)/254`, allowed for in `Activations::Quantised`.
fn check_gemv_output(case: &str, y: &[f32], w: &[u8], rows: usize, cols: usize, x: &[f32], acts: Activations) {
    let (want, mag) = gemv_reference(w, rows, cols, x);
    let amax = x.iter().fold(0.0f64, |m, v| m.max(v.abs() as f64));
    let row_bytes = cols / 32 * 34;
    for r in 0..rows {
        let mut tol = (cols as f64 + 4.0) * f32::EPSILON as f64 * mag[r] + 1e-30;
        if acts == Activations::Quantised {
            let w_abs: f64 = w[r * row_bytes..(r + 1) * row_bytes]
                .chunks_exact(34)
                .map(|b| {
                    let d = half::f16::from_le_bytes([b[0], b[1]]).to_f64().abs();
                    b[2..].iter().map(|&q| d * (q as i8 as f64).abs()).sum::<f64>()
                })
                .sum();
            tol += w_abs * amax / 127.0;
        }
        assert!((y[r] as f64 - want[r]).abs() <= tol, "{case} {acts:?}: y[{r}] = {}, want {} ± {tol}", y[r], want[r]);
    }
}

/// How a GEMV path treats `x`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Activations {
    F32,
    Quantised,
}

fn check_gemv(case: &str, rows: usize, cols: usize, seed: u64) {
    let w = quantize_q8_0(&noise(rows * cols, seed));
    let x = noise(cols, seed + 1);
    let mut gpu_y = vec![f32::NAN; rows];
    gpu().gemv_q8_0(&w, rows, cols, &x, &mut gpu_y).unwrap_or_else(|e| panic!("{case}: {e}"));
    check_gemv_output(case, &gpu_y, &w, rows, cols, &x, Activations::F32);
    let mut cpu_y = vec![f32::NAN; rows];
    gemv_q8_0_cpu(&w, rows, cols, &x, &mut cpu_y).unwrap();
    check_gemv_output(case, &cpu_y, &w, rows, cols, &x, Activations::Quantised);
}

#[test]
fn gemv_q8_0_matches_scalar_reference() {
    // An odd number of blocks per row puts every other row at 2 mod 4 bytes: the unaligned decode path.
    let cases: &[(&str, usize, usize)] = &[
        ("1 block", 1, 32),
        ("odd blocks per row", 3, 96),
        ("even blocks per row", 5, 128),
        ("more units than invocations", 7, 32 * 70),
        ("rows > workgroup", 130, 160),
        ("SmolLM2 FFN down", 576, 1536),
        ("SmolLM2 FFN up", 1536, 576),
    ];
    for (i, &(case, rows, cols)) in cases.iter().enumerate() {
        check_gemv(case, rows, cols, 50 + 2 * i as u64);
    }
}

#[test]
fn gemv_q8_0_empty_and_bad_shapes() {
    let g = gpu();
    g.gemv_q8_0(&[], 0, 64, &[0.0; 64], &mut []).unwrap();
    let mut y = vec![f32::NAN; 3];
    g.gemv_q8_0(&[], 3, 0, &[], &mut y).unwrap();
    assert_eq!(y, vec![0.0; 3], "cols = 0 gives y = 0");

    let w = vec![0u8; 2 * 34];
    let mut y2 = [0.0f32; 2];
    let err = g.gemv_q8_0(&w, 2, 33, &[0.0; 33], &mut y2).unwrap_err();
    assert!(matches!(err, Error::InvalidParameter(_)), "cols not a multiple of 32: {err:?}");
    let cases: [(&str, usize, usize, usize, usize); 3] =
        [("weights", 67, 32, 2, 68), ("x", 68, 31, 2, 32), ("y", 68, 32, 3, 2)];
    for (case, lw, lx, ly, expected) in cases {
        let err = g.gemv_q8_0(&vec![0u8; lw], 2, 32, &vec![0.0; lx], &mut vec![0.0; ly]).unwrap_err();
        assert!(matches!(err, Error::DimensionMismatch { expected: e, .. } if e == expected), "{case}: {err:?}");
    }
}

// ---------------------------------------------------------------- device choice and calibration

#[test]
fn missing_adapter_message_names_the_fix() {
    let msg = Error::NoGpuAdapter("test".into()).to_string();
    assert!(msg.contains("mesa-vulkan-drivers") && msg.contains("Vulkan"), "{msg}");
    let cpu = Device::cpu(msg.clone());
    assert_eq!(cpu.describe(), format!("cpu: {msg}"));
    assert_eq!(cpu.placement(&Op::Gemm(GemmShape::new(4096, 4096, 4096))), Placement::Cpu);
}

#[test]
fn calibration_measures_and_places() {
    let cal = calibrate(gpu(), &CalibrationConfig::default()).unwrap();
    eprintln!("{}\n{cal}", gpu().info());
    for (what, v) in [
        ("upload", cal.upload_bytes_per_s),
        ("download", cal.download_bytes_per_s),
        ("latency", cal.dispatch_latency_s),
        ("gemm gpu", cal.gemm.gpu_flops),
        ("gemm cpu", cal.gemm.cpu_flops),
        ("top_k gpu", cal.top_k.gpu_flops),
        ("top_k cpu", cal.top_k.cpu_flops),
        ("gemv gpu", cal.gemv_q8_0.gpu_flops),
        ("gemv cpu", cal.gemv_q8_0.cpu_flops),
    ] {
        assert!(v.is_finite() && v > 0.0, "{what} = {v}");
    }
    // The model is consistent: bigger problems cost more on both sides, and the
    // break-even point (if any) is where the placement flips.
    let small = cal.forecast(&Op::Gemm(GemmShape::new(32, 32, 32)));
    let big = cal.forecast(&Op::Gemm(GemmShape::new(512, 512, 512)));
    assert!(big.gpu_s > small.gpu_s && big.cpu_s > small.cpu_s, "{small:?} vs {big:?}");
    if let Some(n) = cal.break_even_gemm() {
        assert_eq!(cal.placement(&Op::Gemm(GemmShape::new(n, n, n))), Placement::Gpu);
    }
    let bad = CalibrationConfig { gemv_cols: 33, ..CalibrationConfig::default() };
    assert!(matches!(calibrate(gpu(), &bad), Err(Error::InvalidParameter(_))));
}

#[test]
fn auto_device_opens_the_gpu_and_computes_correctly_wherever_it_places() {
    let small = CalibrationConfig { gemm_n: 64, top_k_base: 1024, gemv_rows: 256, ..CalibrationConfig::default() };
    let auto = Device::auto_with(&small);
    assert!(matches!(auto, Device::Gpu { .. }), "CI has lavapipe, so auto must find a GPU: {}", auto.describe());
    for device in [auto, Device::cpu("forced")] {
        let name = device.describe();
        let (m, n, k) = (40, 50, 60);
        let (a, b) = (noise(m * k, 1), noise(k * n, 2));
        let mut c = vec![0.0; m * n];
        device.gemm(&a, &b, &mut c, GemmShape::new(m, n, k)).unwrap();
        let (want, mag) = gemm_reference(&a, &b, GemmShape::new(m, n, k));
        for ((g, w), mg) in c.iter().zip(&want).zip(&mag) {
            assert!((*g as f64 - w).abs() <= (k as f64 + 4.0) * f32::EPSILON as f64 * mg + 1e-30, "{name}: gemm");
        }

        let dim = 8;
        let (base, queries) = (integers(300 * dim, 3), integers(5 * dim, 4));
        let got = device.top_k(&base, dim, &queries, 7, Metric::L2).unwrap();
        check_top_k(&name, &got, &base, dim, &queries, 7, Metric::L2);

        let (rows, cols) = (40, 96);
        let w = quantize_q8_0(&noise(rows * cols, 5));
        let x = noise(cols, 6);
        let mut y = vec![0.0; rows];
        device.gemv_q8_0(&w, rows, cols, &x, &mut y).unwrap();
        let acts = match device.placement(&Op::GemvQ8_0 { rows, cols }) {
            Placement::Gpu => Activations::F32,
            Placement::Cpu => Activations::Quantised,
        };
        check_gemv_output(&name, &y, &w, rows, cols, &x, acts);
    }
}
