//! `kernels::quant`, the GGUF block formats of ggml (`ggml-common.h`): bit-exactness against the
//! `gguf` Python package on committed fixtures (blocks from a real GGUF file), round-trip error
//! bounds, SIMD kernels against the scalar twin, GEMV against a dequantise-then-f64 reference,
//! and typed errors for bad input.
//!
//! Round-trip bounds, per block, for finite input (`A` = the block's largest |x|; the absolute
//! floors come from f16 scales rounding in f16's subnormal range, half-ulp 2^-25, times the
//! largest quantised value):
//!
//! | format | bound on `|x − x̂|` |
//! |---|---|
//! | Q8_0 | `A/254 + A·2^-10 + 2^-18` (half a step, plus the f16 rounding of `d` times 127) |
//! | Q4_0 | `A/8 + A·2^-10 + 2^-21` (a full step: the value opposite the extreme clips at 7) |
//! | Q4_1 | `R/30 + (R + |min| + |x|)·2^-10 + 2^-20` with `R = max − min` |
//! | Q4_K | `R/15 + 2^-13` with `R = max(max, 0) − min(min, 0)` over the 256-element super-block |
//! | Q6_K | `A/20 + 2^-11` over the super-block |
//! | Q8_K | `A/128·(1 + 2^-20) + 2^-118` (f32 scale; the clip of `-max` to 127 costs a full step) |
//!
//! Dot products: the per-block integers of every kernel equal the scalar twin's exactly; f32
//! results agree within `4·(nb + 16)·ε·M`, `M = Σ (|w_i| + |o_i|)·|a_i|` with `o` the block's
//! offset term (Q4_1's `m`, Q4_K's `dmin·m_j`), which bounds the magnitudes being summed.

use std::path::PathBuf;

use kernels::Error;
use kernels::quant::{self, Activations, Kernel, QuantFormat};
use proptest::prelude::*;

const EPS: f64 = f32::EPSILON as f64;
const FORMATS: [QuantFormat; 6] = QuantFormat::ALL;

// ------------------------------------------------------------------ helpers

/// xorshift64*: bytes and floats for tests, seeded.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [-1, 1).
    fn f(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
    /// Roughly normal (sum of four uniforms).
    fn normal(&mut self) -> f32 {
        (self.f() + self.f() + self.f() + self.f()) * 0.866
    }
}

fn put_f16(b: &mut [u8], off: usize, v: f32) {
    b[off..off + 2].copy_from_slice(&half::f16::from_f32(v).to_bits().to_le_bytes());
}

/// `nb` blocks of random bytes with sane (finite, varied) scales; block 0 gets scale 0, block 1
/// a subnormal f16, block 2 a negative one.
fn random_blocks(format: QuantFormat, nb: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let bb = format.block_bytes();
    let mut w: Vec<u8> = (0..nb * bb).map(|_| rng.next() as u8).collect();
    for (b, blk) in w.chunks_exact_mut(bb).enumerate() {
        let d = match b {
            0 => 0.0,
            1 => 3.0e-7,
            2 => -0.02,
            _ => rng.f() * 0.05,
        };
        match format {
            QuantFormat::Q8_0 | QuantFormat::Q4_0 => put_f16(blk, 0, d),
            QuantFormat::Q4_1 | QuantFormat::Q4_K => {
                put_f16(blk, 0, d);
                put_f16(blk, 2, rng.f() * 0.02);
            }
            QuantFormat::Q6_K => put_f16(blk, 208, d),
            QuantFormat::Q8_K => blk[0..4].copy_from_slice(&(d * 0.1).to_le_bytes()),
        }
    }
    w
}

/// Named f32 inputs of `n` elements: random, scaled, offset, constant, zeros, tiny, subnormal,
/// one-hot, alternating large.
fn inputs(n: usize, seed: u64) -> Vec<(&'static str, Vec<f32>)> {
    let mut rng = Rng::new(seed);
    let r: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
    let mut one_hot = vec![0.0f32; n];
    if let Some(v) = one_hot.get_mut(n / 3) {
        *v = -3.5;
    }
    vec![
        ("normal", r.clone()),
        ("small 1e-3", r.iter().map(|v| v * 1e-3).collect()),
        ("large 1e4", r.iter().map(|v| v * 1e4).collect()),
        ("offset +100", r.iter().map(|v| v + 100.0).collect()),
        ("negative offset", r.iter().map(|v| v * 0.1 - 7.0).collect()),
        ("constant", vec![0.375; n]),
        ("zeros", vec![0.0; n]),
        ("tiny 1e-6", r.iter().map(|v| v * 1e-6).collect()),
        ("subnormal", r.iter().map(|v| v * 1e-40).collect()),
        ("one-hot", one_hot),
        ("alternating 1e5", (0..n).map(|i| if i % 2 == 0 { 1e5 } else { -0.5e5 }).collect()),
    ]
}

/// The stated round-trip bound of the block containing `xs[i]`, for element `i`.
fn bound(format: QuantFormat, xs: &[f32], x: f32) -> f64 {
    let a = xs.iter().fold(0.0f64, |m, v| m.max((*v as f64).abs()));
    let max = xs.iter().fold(f64::MIN, |m, v| m.max(*v as f64));
    let min = xs.iter().fold(f64::MAX, |m, v| m.min(*v as f64));
    let p = |e: i32| 2f64.powi(e);
    match format {
        QuantFormat::Q8_0 => a / 254.0 + a * p(-10) + p(-18),
        QuantFormat::Q4_0 => a / 8.0 + a * p(-10) + p(-21),
        QuantFormat::Q4_1 => (max - min) / 30.0 + ((max - min) + min.abs() + (x as f64).abs()) * p(-10) + p(-20),
        QuantFormat::Q4_K => (max.max(0.0) - min.min(0.0)) / 15.0 + p(-13),
        QuantFormat::Q6_K => a / 20.0 + p(-11),
        QuantFormat::Q8_K => a / 128.0 * (1.0 + p(-20)) + p(-118),
    }
}

fn check_round_trip(format: QuantFormat, case: &str, x: &[f32]) {
    let q = quant::quantize(format, x).unwrap_or_else(|e| panic!("{format} {case}: {e}"));
    assert_eq!(q.len(), x.len() / format.block_len() * format.block_bytes(), "{format} {case}");
    let y = quant::dequantize_to_vec(format, &q).unwrap();
    let bl = format.block_len();
    for (b, (xs, ys)) in x.chunks_exact(bl).zip(y.chunks_exact(bl)).enumerate() {
        for (i, (&xv, &yv)) in xs.iter().zip(ys).enumerate() {
            let tol = bound(format, xs, xv);
            let err = (xv as f64 - yv as f64).abs();
            assert!(err <= tol, "{format} {case}: block {b} elem {i}: {xv} -> {yv} (err {err:e}, bound {tol:e})");
        }
    }
}

/// Per-element offset terms `o` (Q4_1's `m`, Q4_K's `−dmin·m_j`; zero otherwise): the blocks
/// dequantised with `d` zeroed.
fn offsets(format: QuantFormat, w: &[u8]) -> Vec<f32> {
    let mut z = w.to_vec();
    match format {
        QuantFormat::Q4_1 | QuantFormat::Q4_K => {
            for blk in z.chunks_exact_mut(format.block_bytes()) {
                blk[0] = 0;
                blk[1] = 0;
            }
            quant::dequantize_to_vec(format, &z).unwrap()
        }
        _ => vec![0.0; w.len() / format.block_bytes() * format.block_len()],
    }
}

/// Reference `Σ w_i·a_i` in f64 on dequantised weights and activations, and the magnitude `M`.
fn reference_dot(format: QuantFormat, w: &[u8], act: &Activations) -> (f64, f64) {
    let wf = quant::dequantize_to_vec(format, w).unwrap();
    let af = quant::dequantize_to_vec(act.format(), act.as_bytes()).unwrap();
    let of = offsets(format, w);
    let dot = wf.iter().zip(&af).map(|(a, b)| *a as f64 * *b as f64).sum();
    let mag = wf
        .iter()
        .zip(&of)
        .zip(&af)
        .map(|((w, o), a)| ((*w as f64).abs() + (*o as f64).abs()) * (*a as f64).abs())
        .sum();
    (dot, mag)
}

fn tol_dot(nb: usize, mag: f64) -> f64 {
    4.0 * (nb as f64 + 16.0) * EPS * mag + 1e-30
}

fn available_kernels() -> Vec<Kernel> {
    Kernel::ALL.into_iter().filter(|k| k.is_available()).collect()
}

/// Every kernel: per-block integers equal the scalar twin's; the f32 dot agrees with the scalar
/// twin and with the f64 reference within `tol_dot`.
fn check_dot(format: QuantFormat, case: &str, w: &[u8], x: &[f32]) {
    let act = quant::quantize_activations(format, x).unwrap();
    let nb = w.len() / format.block_bytes();
    let mut want = vec![[0i32; 2]; nb];
    quant::block_dots_with(Kernel::Scalar, format, w, &act, &mut want).unwrap();
    let scalar = quant::dot_scalar(format, w, &act).unwrap();
    let (reference, mag) = reference_dot(format, w, &act);
    let tol = tol_dot(nb, mag);
    assert!(
        (scalar as f64 - reference).abs() <= tol,
        "{format} {case}: scalar {scalar} vs f64 {reference} (tol {tol:e})"
    );
    for kernel in available_kernels() {
        let mut got = vec![[0i32; 2]; nb];
        quant::block_dots_with(kernel, format, w, &act, &mut got).unwrap();
        assert_eq!(got, want, "{format} {case}: {} block integers", kernel.name());
        let d = quant::dot_with(kernel, format, w, &act).unwrap();
        assert!(
            (d as f64 - scalar as f64).abs() <= tol,
            "{format} {case}: {} {d} vs scalar {scalar} (tol {tol:e})",
            kernel.name()
        );
    }
}

// ------------------------------------------------------------------ formats

#[test]
fn block_sizes_match_ggml() {
    let table = [
        (QuantFormat::Q8_0, 32, 34, 8),
        (QuantFormat::Q4_0, 32, 18, 2),
        (QuantFormat::Q4_1, 32, 20, 3),
        (QuantFormat::Q4_K, 256, 144, 12),
        (QuantFormat::Q6_K, 256, 210, 14),
        (QuantFormat::Q8_K, 256, 292, 15),
    ];
    for (f, len, bytes, id) in table {
        assert_eq!((f.block_len(), f.block_bytes(), f.ggml_type()), (len, bytes, id), "{f}");
        assert_eq!(QuantFormat::from_ggml_type(id), Some(f));
        assert_eq!(f.to_string(), f.name());
    }
    assert_eq!(QuantFormat::from_ggml_type(0), None);
    assert_eq!(QuantFormat::Q4_1.activation_format(), QuantFormat::Q8_0);
    assert_eq!(QuantFormat::Q6_K.activation_format(), QuantFormat::Q8_K);
    assert!(Kernel::Scalar.is_available() && Kernel::best().is_available());
    assert_eq!(quant::active_path(), Kernel::best().name());
}

// ------------------------------------------------------------------ fixtures (bit-exact vs gguf)

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/quant")
}

fn read_f32(path: &PathBuf) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
}

fn format_named(name: &str) -> QuantFormat {
    FORMATS.into_iter().find(|f| f.name() == name).unwrap_or_else(|| panic!("unknown format {name}"))
}

/// One manifest line: dequantised bits equal gguf's; for `quantize` cases our bytes equal gguf's.
fn check_fixture(name: &str, format: QuantFormat, kind: &str, n_blocks: usize) {
    let dir = fixture_dir();
    let blocks = std::fs::read(dir.join(format!("{name}.blocks"))).unwrap();
    let want = read_f32(&dir.join(format!("{name}.f32")));
    assert_eq!(blocks.len(), n_blocks * format.block_bytes(), "{name}");
    let got = quant::dequantize_to_vec(format, &blocks).unwrap();
    assert_eq!(got.len(), want.len(), "{name}");
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(
            g.to_bits(),
            w.to_bits(),
            "{name}: element {i} (block {}): {g:e} vs gguf {w:e}",
            i / format.block_len()
        );
    }
    if kind == "quantize" {
        let input = read_f32(&dir.join(format!("{name}.input.f32")));
        let ours = quant::quantize(format, &input).unwrap();
        for (b, (o, g)) in ours.chunks(format.block_bytes()).zip(blocks.chunks(format.block_bytes())).enumerate() {
            assert_eq!(o, g, "{name}: block {b} differs from gguf.quants.quantize");
        }
    }
}

#[test]
fn dequantize_is_bit_identical_to_gguf() {
    let manifest = std::fs::read_to_string(fixture_dir().join("manifest.tsv")).unwrap();
    let mut seen = std::collections::HashSet::new();
    let mut real = 0;
    for line in manifest.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let f: Vec<&str> = line.split('\t').collect();
        let format = format_named(f[1]);
        check_fixture(f[0], format, f[2], f[3].parse().unwrap());
        seen.insert(format);
        real += f[0].starts_with("real_") as usize;
    }
    assert_eq!(seen.len(), 6, "every format has a fixture");
    assert!(real >= 2, "blocks from the real GGUF file are present");
}

// ------------------------------------------------------------------ round trips

#[test]
fn round_trip_within_stated_bounds() {
    for format in FORMATS {
        for (case, x) in inputs(4 * 256, 7) {
            check_round_trip(format, case, &x);
        }
    }
}

#[test]
fn all_equal_and_zero_blocks_are_exact_or_near() {
    for format in FORMATS {
        let z = quant::quantize(format, &vec![0.0; 512]).unwrap();
        assert!(quant::dequantize_to_vec(format, &z).unwrap().iter().all(|v| *v == 0.0), "{format}: zeros");
    }
    // Q4_0 (d = 2/8) and Q8_K (f32 d = 2/128) hold -2 exactly: it is a representable multiple of the scale.
    for format in [QuantFormat::Q4_0, QuantFormat::Q8_K] {
        let q = quant::quantize(format, &vec![-2.0; 256]).unwrap();
        assert!(quant::dequantize_to_vec(format, &q).unwrap().iter().all(|v| *v == -2.0), "{format}: constant");
    }
}

#[test]
fn k_quants_are_accurate_on_gaussian_data() {
    // RMS error relative to the data's RMS, stated per format (measured: well inside these).
    let mut rng = Rng::new(99);
    let x: Vec<f32> = (0..64 * 256).map(|_| rng.normal()).collect();
    let rms = (x.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / x.len() as f64).sqrt();
    for (format, limit) in [
        (QuantFormat::Q8_0, 0.006),
        (QuantFormat::Q4_0, 0.12),
        (QuantFormat::Q4_1, 0.10),
        (QuantFormat::Q4_K, 0.10),
        (QuantFormat::Q6_K, 0.025),
        (QuantFormat::Q8_K, 0.008),
    ] {
        let y = quant::dequantize_to_vec(format, &quant::quantize(format, &x).unwrap()).unwrap();
        let err = (x.iter().zip(&y).map(|(a, b)| (*a as f64 - *b as f64).powi(2)).sum::<f64>() / x.len() as f64).sqrt();
        assert!(err / rms <= limit, "{format}: relative RMS error {:.4} > {limit}", err / rms);
    }
}

// ------------------------------------------------------------------ adversarial input

#[test]
fn bad_input_gets_typed_errors() {
    for format in FORMATS {
        let (bl, bb) = (format.block_len(), format.block_bytes());
        // Lengths that are not whole blocks.
        assert!(
            matches!(quant::quantize(format, &vec![1.0; bl + 1]), Err(Error::QuantRaggedLength { len, .. }) if len == bl + 1)
        );
        assert!(matches!(
            quant::dequantize(format, &vec![0; bb + 3], &mut vec![0.0; bl]),
            Err(Error::QuantRaggedBytes { .. })
        ));
        assert!(matches!(
            quant::dequantize(format, &vec![0; bb], &mut vec![0.0; bl + 1]),
            Err(Error::DimensionMismatch { .. })
        ));
        // NaN and infinities are refused, at their index.
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let mut x = vec![0.5; 2 * bl];
            x[bl + 3] = bad;
            assert!(
                matches!(quant::quantize(format, &x), Err(Error::QuantNonFinite { index, .. }) if index == bl + 3),
                "{format}"
            );
        }
        // Values beyond what an f16 scale can reach (Q8_K's f32 scale takes them).
        let mut x = vec![1.0; 2 * bl];
        x[bl] = 3e9;
        let r = quant::quantize(format, &x);
        if format == QuantFormat::Q8_K {
            check_round_trip(format, "3e9", &x);
        } else {
            assert!(matches!(r, Err(Error::QuantOutOfRange { block: 1, .. })), "{format}: {r:?}");
        }
        // GEMV shapes.
        let w = random_blocks(format, 4, 1);
        let mut y = vec![0.0; 4];
        let x = vec![0.1; bl];
        assert!(quant::gemv(format, &w, 4, bl, &x, &mut y).is_ok());
        assert!(matches!(quant::gemv(format, &w, 4, bl, &x[1..], &mut y), Err(Error::DimensionMismatch { .. })));
        assert!(matches!(quant::gemv(format, &w, 3, bl, &x, &mut y), Err(Error::DimensionMismatch { .. })));
        assert!(matches!(quant::gemv(format, &w, 4, bl, &x, &mut y[1..]), Err(Error::DimensionMismatch { .. })));
        assert!(matches!(quant::gemv(format, &w[1..], 4, bl, &x, &mut y), Err(Error::QuantRaggedBytes { .. })));
        assert!(matches!(quant::gemv(format, &w, 4, bl - 1, &x[1..], &mut y), Err(Error::QuantRaggedLength { .. })));
        // Activations of the wrong kind.
        let other = if format.activation_format() == QuantFormat::Q8_0 { QuantFormat::Q4_K } else { QuantFormat::Q4_0 };
        let act = quant::quantize_activations(other, &vec![0.1; 256]).unwrap();
        assert!(matches!(quant::dot(format, &w[..bb], &act), Err(Error::InvalidParameter(_))));
    }
    // Empty input is not an error.
    assert!(quant::quantize(QuantFormat::Q4_K, &[]).unwrap().is_empty());
    let mut y: [f32; 0] = [];
    assert!(quant::gemv(QuantFormat::Q8_0, &[], 0, 64, &[0.0; 64], &mut y).is_ok());
}

#[test]
fn non_finite_scales_propagate_like_ggml() {
    // A block whose f16 scale is inf dequantises to ±inf/NaN, and the dots are non-finite too.
    for format in [QuantFormat::Q8_0, QuantFormat::Q4_0, QuantFormat::Q4_1, QuantFormat::Q4_K] {
        let mut w = random_blocks(format, 1, 3);
        w[0] = 0x00;
        w[1] = 0x7C; // f16 +inf
        let y = quant::dequantize_to_vec(format, &w).unwrap();
        assert!(y.iter().any(|v| !v.is_finite()), "{format}");
        let act = quant::quantize_activations(format, &vec![0.25; format.block_len()]).unwrap();
        for kernel in available_kernels() {
            assert!(!quant::dot_with(kernel, format, &w, &act).unwrap().is_finite(), "{format} {}", kernel.name());
        }
    }
}

// ------------------------------------------------------------------ dots and GEMV

#[test]
fn simd_kernels_match_scalar_twin() {
    for format in FORMATS {
        let bl = format.block_len();
        for nb in [1, 2, 3, 18] {
            let w = random_blocks(format, nb, nb as u64 + 5);
            for (case, x) in inputs(nb * bl, 11) {
                check_dot(format, case, &w, &x);
            }
            // Quantised real data as weights too.
            let mut rng = Rng::new(nb as u64);
            let xs: Vec<f32> = (0..nb * bl).map(|_| rng.normal()).collect();
            let w = quant::quantize(format, &xs).unwrap();
            check_dot(format, "quantised weights", &w, &xs);
        }
    }
}

#[test]
fn gemv_matches_dequantised_reference() {
    // Shapes small and large enough for the parallel path (> 128 KiB of weights).
    for format in FORMATS {
        let bl = format.block_len();
        for (rows, cols) in [(1, bl), (7, 3 * bl), (600, if bl == 32 { 576 } else { 768 })] {
            let w = random_blocks(format, rows * cols / bl, rows as u64);
            let mut rng = Rng::new(cols as u64);
            let x: Vec<f32> = (0..cols).map(|_| rng.normal()).collect();
            let act = quant::quantize_activations(format, &x).unwrap();
            let af = quant::dequantize_to_vec(act.format(), act.as_bytes()).unwrap();
            let row_bytes = format.row_bytes(cols).unwrap();
            let mut scalar = vec![0.0; rows];
            quant::gemv_scalar(format, &w, rows, cols, &x, &mut scalar).unwrap();
            for kernel in available_kernels() {
                let mut y = vec![f32::NAN; rows];
                quant::gemv_with(kernel, format, &w, rows, cols, &x, &mut y).unwrap();
                for r in 0..rows {
                    let wr = &w[r * row_bytes..(r + 1) * row_bytes];
                    let (reference, mag) = reference_dot(format, wr, &act);
                    let tol = tol_dot(cols / bl, mag);
                    assert!(
                        (y[r] as f64 - reference).abs() <= tol,
                        "{format} {rows}x{cols} {} row {r}: {} vs {reference}",
                        kernel.name(),
                        y[r]
                    );
                    assert!((y[r] - scalar[r]).abs() as f64 <= tol, "{format} {} row {r}: vs scalar", kernel.name());
                    // Against unquantised x: the activation quantisation error is Σ|w_i|·|x_i − a_i|.
                    let wf = quant::dequantize_to_vec(format, wr).unwrap();
                    let exact: f64 = wf.iter().zip(&x).map(|(a, b)| *a as f64 * *b as f64).sum();
                    let act_err: f64 = wf
                        .iter()
                        .zip(x.iter().zip(&af))
                        .map(|(w, (x, a))| (*w as f64).abs() * (*x as f64 - *a as f64).abs())
                        .sum();
                    assert!((y[r] as f64 - exact).abs() <= act_err + tol, "{format} row {r}: vs f32 x");
                }
            }
        }
    }
}

#[test]
fn gemv_reuses_activations() {
    let format = QuantFormat::Q4_K;
    let w = random_blocks(format, 8 * 3, 4);
    let x: Vec<f32> = (0..768).map(|i| (i as f32 * 0.37).sin()).collect();
    let act = quant::quantize_activations(format, &x).unwrap();
    assert_eq!((act.len(), act.is_empty(), act.format()), (768, false, QuantFormat::Q8_K));
    let (mut a, mut b) = (vec![0.0; 8], vec![0.0; 8]);
    quant::gemv(format, &w, 8, 768, &x, &mut a).unwrap();
    quant::gemv_activations(format, &w, 8, &act, &mut b).unwrap();
    assert_eq!(a, b);
}

/// A batch through one matrix equals each pair's own dot, bit for bit, on every kernel (so a
/// token decodes the same alone or batched), including the tile edges: rows and batch sizes
/// that are not multiples of the tile.
#[test]
fn dots_batch_equals_each_dot_bit_for_bit() {
    for format in FORMATS {
        let bl = format.block_len();
        for (rows, n, nb) in [(1, 1, 1), (2, 4, 18), (5, 7, 3), (4, 9, 18), (3, 2, 2)] {
            let cols = nb * bl;
            let w = random_blocks(format, rows * nb, (rows * 31 + n) as u64);
            let mut rng = Rng::new((n * 7 + nb) as u64);
            let acts: Vec<_> = (0..n)
                .map(|_| {
                    let x: Vec<f32> = (0..cols).map(|_| rng.normal()).collect();
                    quant::quantize_activations(format, &x).unwrap()
                })
                .collect();
            let row_bytes = format.row_bytes(cols).unwrap();
            for kernel in available_kernels() {
                let mut out = vec![f32::NAN; rows * n];
                quant::dots_batch_with(kernel, format, &w, rows, &acts, &mut out).unwrap();
                for r in 0..rows {
                    for (b, act) in acts.iter().enumerate() {
                        let want =
                            quant::dot_with(kernel, format, &w[r * row_bytes..(r + 1) * row_bytes], act).unwrap();
                        assert_eq!(
                            out[r * n + b].to_bits(),
                            want.to_bits(),
                            "{format} {} rows {rows} batch {n}: row {r} act {b}",
                            kernel.name()
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn dots_batch_rejects_mismatched_input() {
    let format = QuantFormat::Q4_1;
    let w = random_blocks(format, 4 * 2, 1);
    let x64: Vec<f32> = (0..64).map(|i| i as f32).collect();
    let a64 = quant::quantize_activations(format, &x64).unwrap();
    let a32 = quant::quantize_activations(format, &x64[..32]).unwrap();
    let k_act = quant::quantize_activations(QuantFormat::Q4_K, &vec![1.0; 256]).unwrap();
    let mut out = vec![0.0; 8];
    let err = |r: kernels::Result<()>| r.unwrap_err().to_string();
    // Activations of two lengths, or of another format, in one batch.
    assert!(err(quant::dots_batch(format, &w, 4, &[a64.clone(), a32], &mut out)).contains("one format and length"));
    assert!(err(quant::dots_batch(format, &w, 4, &[k_act.clone(), k_act], &mut out)).contains("Q8_0"));
    // Weights that are not `rows` whole rows, and an output of the wrong size.
    assert!(quant::dots_batch(format, &w[..w.len() - 1], 4, &[a64.clone(), a64.clone()], &mut out).is_err());
    assert!(quant::dots_batch(format, &w, 3, &[a64.clone(), a64.clone()], &mut out).is_err());
    assert!(quant::dots_batch(format, &w, 4, &[a64.clone(), a64.clone()], &mut out[..7]).is_err());
    // An empty batch is fine with an empty output.
    assert!(quant::dots_batch(format, &w, 4, &[], &mut []).is_ok());
    assert!(quant::dots_batch(format, &w, 4, &[a64.clone(), a64], &mut out).is_ok());
}

/// Q4_1 rows interleaved by `pack_rows`: every kernel gives the scalar twin's bits, which are the
/// bits of the AVX2 and VNNI row kernels on the same rows (`dot_with`); a row's value is the same
/// whatever the batch or the group range it is computed in, and agrees with the f64 reference on
/// dequantised weights. Row counts off the 16-row groups exercise the padding.
#[test]
fn packed_rows_match_the_reference_and_every_kernel_bit_for_bit() {
    let format = QuantFormat::Q4_1;
    for (rows, nb, n) in [(1, 1, 1), (16, 18, 1), (37, 18, 5), (48, 3, 9), (200, 18, 2)] {
        let cols = nb * 32;
        let w = random_blocks(format, rows * nb, (rows * 13 + nb) as u64);
        let packed = quant::pack_rows(format, &w, rows, cols).unwrap();
        assert_eq!((packed.rows(), packed.cols()), (rows, cols));
        assert_eq!(packed.memory_bytes(), rows.div_ceil(16) * 16 * nb * 20, "the file's bytes, padded to 16 rows");
        let mut rng = Rng::new((n * 5 + nb) as u64);
        let acts: Vec<_> = (0..n)
            .map(|_| {
                let x: Vec<f32> = (0..cols).map(|_| rng.normal() * 3.0).collect();
                quant::quantize_activations(format, &x).unwrap()
            })
            .collect();
        let mut scalar = vec![f32::NAN; rows * n];
        quant::packed_dots(Kernel::Scalar, &packed, 0, &acts, &mut scalar).unwrap();
        let row_bytes = format.row_bytes(cols).unwrap();
        for r in 0..rows {
            for (j, act) in acts.iter().enumerate() {
                let (reference, mag) = reference_dot(format, &w[r * row_bytes..(r + 1) * row_bytes], act);
                let got = scalar[r * n + j] as f64;
                let tol = tol_dot(nb, mag);
                assert!((got - reference).abs() <= tol, "{rows}x{cols} row {r} act {j}: {got} vs {reference}");
                for kernel in available_kernels().into_iter().filter(|&k| k != Kernel::Scalar) {
                    let want = quant::dot_with(kernel, format, &w[r * row_bytes..(r + 1) * row_bytes], act).unwrap();
                    assert_eq!(
                        scalar[r * n + j].to_bits(),
                        want.to_bits(),
                        "row {r} act {j}: the {} row kernel",
                        kernel.name()
                    );
                }
            }
        }
        for kernel in available_kernels() {
            let mut out = vec![f32::NAN; rows * n];
            quant::packed_dots(kernel, &packed, 0, &acts, &mut out).unwrap();
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&out), bits(&scalar), "{} {rows}x{cols} batch {n}", kernel.name());
            // One activation at a time, from the second group on.
            for (j, act) in acts.iter().enumerate() {
                let from = if rows > 16 { 16 } else { 0 };
                let mut one = vec![f32::NAN; rows - from];
                quant::packed_dots(kernel, &packed, from, std::slice::from_ref(act), &mut one).unwrap();
                for (i, v) in one.iter().enumerate() {
                    assert_eq!(
                        v.to_bits(),
                        scalar[(from + i) * n + j].to_bits(),
                        "{} row {} act {j}",
                        kernel.name(),
                        from + i
                    );
                }
            }
        }
        let x: Vec<f32> = (0..cols).map(|i| (i as f32 * 0.37).sin()).collect();
        let (mut y, mut want) = (vec![f32::NAN; rows], vec![f32::NAN; rows]);
        quant::gemv_packed(&packed, &x, &mut y).unwrap();
        let act = [quant::quantize_activations(format, &x).unwrap()];
        quant::packed_dots(Kernel::best(), &packed, 0, &act, &mut want).unwrap();
        assert_eq!(y, want, "gemv_packed is packed_dots of the quantised x");
    }
}

#[test]
fn packed_rows_reject_bad_input() {
    let format = QuantFormat::Q4_1;
    let w = random_blocks(format, 20 * 2, 3);
    let err = |r: kernels::Result<()>| r.unwrap_err().to_string();
    assert!(quant::pack_rows(QuantFormat::Q4_0, &random_blocks(QuantFormat::Q4_0, 2, 1), 1, 64).is_err());
    assert!(matches!(quant::pack_rows(format, &w, 20, 48), Err(Error::QuantRaggedLength { .. })));
    assert!(matches!(quant::pack_rows(format, &w[..w.len() - 1], 20, 64), Err(Error::DimensionMismatch { .. })));
    let packed = quant::pack_rows(format, &w, 20, 64).unwrap();
    let x: Vec<f32> = (0..64).map(|i| i as f32).collect();
    let a = quant::quantize_activations(format, &x).unwrap();
    let a32 = quant::quantize_activations(format, &x[..32]).unwrap();
    let k_act = quant::quantize_activations(QuantFormat::Q4_K, &vec![1.0; 256]).unwrap();
    let mut out = vec![0.0; 20];
    let k = Kernel::Scalar;
    assert!(err(quant::packed_dots(k, &packed, 0, &[a32], &mut out)).contains("Q8_0 activations of 64"));
    assert!(err(quant::packed_dots(k, &packed, 0, &[k_act], &mut out)).contains("Q8_0 activations"));
    assert!(err(quant::packed_dots(k, &packed, 3, std::slice::from_ref(&a), &mut out[..4])).contains("group of 16"));
    assert!(quant::packed_dots(k, &packed, 16, std::slice::from_ref(&a), &mut out[..5]).is_err(), "past the last row");
    assert!(quant::packed_dots(k, &packed, 0, &[a.clone(), a.clone()], &mut out[..3]).is_err(), "not whole rows");
    assert!(quant::gemv_packed(&packed, &x[..32], &mut out).is_err());
    assert!(quant::gemv_packed(&packed, &x, &mut out[..19]).is_err());
    assert!(quant::packed_dots(k, &packed, 16, std::slice::from_ref(&a), &mut out[..4]).is_ok());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn prop_round_trip_and_kernels(seed in any::<u64>(), scale in -6i32..5, fmt in 0usize..6) {
        let format = FORMATS[fmt];
        let mut rng = Rng::new(seed);
        // Up to 1e4·N(0,1): Q4_1 stores its min in f16, so |min| must stay below 65504.
        let s = 10f32.powi(scale);
        let x: Vec<f32> = (0..2 * format.block_len()).map(|_| rng.normal() * s).collect();
        check_round_trip(format, "proptest", &x);
        let w = random_blocks(format, 2, seed ^ 0xABCD);
        check_dot(format, "proptest", &w, &x);
    }
}
