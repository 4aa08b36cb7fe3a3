//! `kernels::train::qlinear`: the quantised frozen layer against `DenseLinear` on the dequantised
//! matrix of real SmolLM2 tensors, and its typed shape errors.
//!
//! Tolerance of the forward pass: the quantised path multiplies the weights with activations rounded
//! to Q8_0/Q8_K (`x̂ = q·d`, `d = amax/127` per block, `d` stored as f16 for Q8_0), as `kernels::llm`
//! does; the reference multiplies the exact `x`. Each `|x̂_i − x_i|` is at most half a step plus the
//! f16 rounding of `d` (`127·d·2⁻¹¹ ≈ 0.06·d`), so `|Δy_o| ≤ Σ_i |w_oi|·0.6·amax_block(i)/127`: the
//! test checks every output against that bound (plus `1e-4·(1 + |y|)` for summation order). The
//! backward pass dequantises the same weights exactly, so it equals the reference up to summation
//! order: `1e-4` of the largest `|dx|`.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use kernels::Error;
use kernels::formats::gguf::Gguf;
use kernels::train::autograd::{DenseLinear, FrozenLinear};
use kernels::train::qlinear::QuantLinear;

const MODEL: &str = "smollm2-135m-instruct";
const FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// The path of the SmolLM2-135M-Instruct GGUF (as `tests/it/llm.rs` finds it).
pub(super) fn model_path() -> PathBuf {
    datasets::models::file_path(MODEL, FILE).unwrap_or_else(|e| panic!("{e}"))
}

/// The memory-mapped model file, opened once per test binary.
pub(super) fn gguf() -> Arc<Gguf> {
    static GGUF: OnceLock<Arc<Gguf>> = OnceLock::new();
    Arc::clone(GGUF.get_or_init(|| Arc::new(Gguf::open(model_path()).expect("the SmolLM2 GGUF opens"))))
}

/// `n` values in [−amp, amp) from `seed` (splitmix64).
pub(super) fn values(n: usize, seed: u64, amp: f32) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            ((z >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * amp
        })
        .collect()
}

/// Forward and backward of the tensor `name` on `rows` random rows against `DenseLinear`.
fn check(name: &str, rows: usize) {
    let q = QuantLinear::from_gguf(&gguf(), name).unwrap();
    let (outf, inf) = (q.out_features(), q.in_features());
    let format = q.format().unwrap_or_else(|| panic!("{name} is quantised in the Q4_1 file"));
    let w = q.to_dense().unwrap();
    let dense = DenseLinear::new(Arc::new(w.clone()), outf, inf).unwrap();
    let x = values(rows * inf, 7, 2.0);

    let (mut yq, mut yd) = (vec![0.0f32; rows * outf], vec![0.0f32; rows * outf]);
    q.forward(&x, rows, &mut yq).unwrap();
    dense.forward(&x, rows, &mut yd).unwrap();
    let bl = format.activation_format().block_len();
    let mut worst = 0.0f64;
    for r in 0..rows {
        let xr = &x[r * inf..(r + 1) * inf];
        let step: Vec<f32> = xr
            .chunks(bl)
            .flat_map(|b| {
                let amax = b.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                std::iter::repeat_n(0.6 * amax / 127.0, b.len())
            })
            .collect();
        for o in 0..outf {
            let wr = &w[o * inf..(o + 1) * inf];
            let bound: f32 = wr.iter().zip(&step).map(|(w, s)| w.abs() * s).sum();
            let (a, b) = (yq[r * outf + o], yd[r * outf + o]);
            let tol = bound + 1e-4 * (1.0 + b.abs());
            assert!((a - b).abs() <= tol, "{name} ({format}) forward row {r} out {o}: {a} vs {b}, bound {tol}");
            worst = worst.max(f64::from((a - b).abs() / tol));
        }
    }
    eprintln!("{name} ({format}, [{outf}, {inf}]): forward error at most {worst:.3} of the bound");

    let dy = values(rows * outf, 11, 1.0);
    let (mut dxq, mut dxd) = (vec![0.0f32; rows * inf], vec![0.0f32; rows * inf]);
    q.backward(&dy, rows, &mut dxq).unwrap();
    dense.backward(&dy, rows, &mut dxd).unwrap();
    let scale = dxd.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let diff = dxq.iter().zip(&dxd).fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(diff <= 1e-4 * scale, "{name} backward: max |Δdx| {diff} of max |dx| {scale}");
}

#[test]
fn quant_linear_matches_dense_on_real_smollm2_tensors() {
    check("blk.0.attn_q.weight", 3);
    check("blk.0.attn_k.weight", 1);
    check("blk.3.ffn_down.weight", 2);
}

#[test]
fn dense_weights_go_through_gemm_as_dense_linear() {
    let (rows, outf, inf) = (3, 7, 10);
    let w = Arc::new(values(outf * inf, 31, 1.0));
    let q = QuantLinear::dense(Arc::clone(&w), outf, inf).unwrap();
    assert_eq!(q.format(), None);
    assert_eq!(q.weight_bytes(), outf * inf * 4);
    let d = DenseLinear::new(w, outf, inf).unwrap();
    let (x, dy) = (values(rows * inf, 32, 1.0), values(rows * outf, 33, 1.0));
    let (mut y1, mut y2) = (vec![0.0f32; rows * outf], vec![0.0f32; rows * outf]);
    q.forward(&x, rows, &mut y1).unwrap();
    d.forward(&x, rows, &mut y2).unwrap();
    assert_eq!(y1, y2);
    let (mut dx1, mut dx2) = (vec![0.0f32; rows * inf], vec![0.0f32; rows * inf]);
    q.backward(&dy, rows, &mut dx1).unwrap();
    d.backward(&dy, rows, &mut dx2).unwrap();
    assert_eq!(dx1, dx2);
}

#[test]
fn quant_linear_reads_single_rows_and_rejects_wrong_shapes() {
    let q = QuantLinear::from_gguf(&gguf(), "blk.0.attn_v.weight").unwrap();
    let (outf, inf) = (q.out_features(), q.in_features());
    let full = q.to_dense().unwrap();
    let mut row = vec![0.0f32; inf];
    q.dequantize_rows(5..6, &mut row).unwrap();
    assert_eq!(row, full[5 * inf..6 * inf]);
    assert!(q.weight_bytes() < outf * inf * 2, "the blocks take fewer bytes than f16");

    let is_shape = |r: kernels::Result<()>| matches!(r, Err(Error::TrainShape { op: "quant_linear", .. }));
    let mut y = vec![0.0f32; 2 * outf];
    assert!(is_shape(q.forward(&vec![0.0; 2 * inf - 1], 2, &mut y)), "x one value short");
    let mut dx = vec![0.0f32; inf];
    assert!(is_shape(q.backward(&vec![0.0; 2 * outf], 2, &mut dx)), "dx for one row of two");
    assert!(is_shape(q.dequantize_rows(outf..outf + 1, &mut row)), "a row past the end");
    assert!(is_shape(QuantLinear::dense(Arc::new(vec![0.0; 5]), 2, 3).map(|_| ())), "5 values for [2, 3]");
    assert!(matches!(QuantLinear::from_gguf(&gguf(), "blk.0.no_such.weight"), Err(Error::MissingTensor { .. })));
    assert!(matches!(QuantLinear::from_gguf(&gguf(), "blk.0.attn_norm.weight"), Err(Error::UnsupportedModel(_))));
}
