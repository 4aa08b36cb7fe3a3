//! `kernels::train::autograd`: every op's gradient against central finite differences in f64, the
//! f32 tape against the f64 tape, the forward passes against `kernels::llm`'s inference code, and a
//! typed error for every wrong shape.
//!
//! Tolerance of the gradient checks: [`GRAD_TOL`] = 1e-6 on `GradCheck::max_rel`, the relative
//! error `|analytic − numeric| / max(|analytic|, |numeric|, 1e-2)`. With inputs in [−1, 1] (logits in
//! [−3, 3]), a step `h = 1e-6` and f64, central differences are accurate to about 1e-10 absolute
//! (truncation `h²·f‴/6` plus rounding `ε·|f|/h`), i.e. 1e-8 on the relative scale; a wrong backward
//! pass is off by the size of a gradient term, ≥ 1e-3 here. 1e-6 separates the two with a margin of
//! 100 on either side.

use std::sync::Arc;

use kernels::Error;
use kernels::train::autograd::{DenseLinear, Float, FrozenLinear, GradCheckConfig, IGNORE_INDEX, Tape, Var, gradcheck};
use proptest::prelude::*;

/// The largest relative error a gradient check may show (see the module documentation).
const GRAD_TOL: f64 = 1e-6;

/// splitmix64: a deterministic stream of pseudo-random words.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `n` values in [−1, 1) from `seed`.
fn values(seed: u64, n: usize) -> Vec<f64> {
    let mut s = seed;
    (0..n).map(|_| (splitmix(&mut s) >> 11) as f64 / (1u64 << 52) as f64 - 1.0).collect()
}

/// `n` integers in `0..bound` from `seed`.
fn integers(seed: u64, n: usize, bound: u64) -> Vec<u64> {
    let mut s = seed ^ 0x5EED;
    (0..n).map(|_| splitmix(&mut s) % bound).collect()
}

/// An input: values and shape.
fn input(values: Vec<f64>, shape: &[usize]) -> (Vec<f64>, Vec<usize>) {
    (values, shape.to_vec())
}

/// Gradient check of `build`, a tensor-valued function of the inputs, through the scalar
/// `Σ out ⊙ r` with fixed pseudo-random weights `r` (every output value's gradient counts, with a
/// different weight), asserting `max_rel < GRAD_TOL`.
fn check(
    name: &str,
    inputs: &[(Vec<f64>, Vec<usize>)],
    build: impl Fn(&mut Tape<f64>, &[Var]) -> kernels::Result<Var>,
) {
    let borrowed: Vec<(&[f64], &[usize])> = inputs.iter().map(|(v, s)| (v.as_slice(), s.as_slice())).collect();
    let report = gradcheck(&borrowed, GradCheckConfig::default(), |t, vars| {
        let out = build(t, vars)?;
        let shape = t.shape(out).to_vec();
        let r = t.constant(values(0xC0FFEE, t.value(out).len()), &shape)?;
        let weighted = t.mul(out, r)?;
        t.sum(weighted)
    })
    .unwrap_or_else(|e| panic!("{name}: {e}"));
    eprintln!("gradcheck {name}: max_rel {:.2e} max_abs {:.2e}", report.max_rel(), report.max_abs());
    assert!(report.max_rel() < GRAD_TOL, "{name}: {report:#?}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn matmul_gradients(m in 1usize..4, k in 1usize..4, n in 1usize..4, seed in any::<u64>()) {
        let a = input(values(seed, m * k), &[m, k]);
        let b = input(values(seed ^ 1, k * n), &[k, n]);
        check("matmul", &[a, b], |t, v| t.matmul(v[0], v[1]));
    }

    #[test]
    fn matmul_nt_gradients(m in 1usize..4, k in 1usize..4, n in 1usize..4, seed in any::<u64>()) {
        let x = input(values(seed, m * k), &[m, k]);
        let w = input(values(seed ^ 1, n * k), &[n, k]);
        check("matmul_nt", &[x, w], |t, v| t.matmul_nt(v[0], v[1]));
    }

    #[test]
    fn add_and_mul_gradients_with_broadcasting(n in 1usize..4, d in 1usize..4, seed in any::<u64>()) {
        let full = || input(values(seed, n * d), &[n, d]);
        let other = || input(values(seed ^ 1, n * d), &[n, d]);
        let row = || input(values(seed ^ 2, d), &[d]);
        let scalar = || input(values(seed ^ 3, 1), &[]);
        check("add [n,d]+[n,d]", &[full(), other()], |t, v| t.add(v[0], v[1]));
        check("add [n,d]+[d]", &[full(), row()], |t, v| t.add(v[0], v[1]));
        check("add [d]+[n,d]", &[row(), full()], |t, v| t.add(v[0], v[1]));
        check("add [n,d]+[]", &[full(), scalar()], |t, v| t.add(v[0], v[1]));
        check("mul [n,d]*[n,d]", &[full(), other()], |t, v| t.mul(v[0], v[1]));
        check("mul [n,d]*[d]", &[full(), row()], |t, v| t.mul(v[0], v[1]));
        check("mul [d]*[n,d]", &[row(), full()], |t, v| t.mul(v[0], v[1]));
        check("mul []*[n,d]", &[scalar(), full()], |t, v| t.mul(v[0], v[1]));
    }

    #[test]
    fn scale_sum_mean_reshape_gradients(n in 1usize..4, d in 1usize..4, seed in any::<u64>()) {
        let x = || vec![input(values(seed, n * d), &[n, d])];
        check("scale", &x(), |t, v| t.scale(v[0], -1.75));
        check("sum", &x(), |t, v| t.sum(v[0]));
        check("mean", &x(), |t, v| t.mean(v[0]));
        check("reshape", &x(), |t, v| t.reshape(v[0], &[d, n]));
    }

    #[test]
    fn embedding_gradients(vocab in 1usize..5, d in 1usize..4, len in 1usize..7, seed in any::<u64>()) {
        let ids: Vec<u32> = integers(seed, len, vocab as u64).into_iter().map(|i| i as u32).collect();
        let table = input(values(seed, vocab * d), &[vocab, d]);
        check("embedding", &[table], |t, v| t.embedding(v[0], &ids));
    }

    #[test]
    fn rms_norm_gradients(n in 1usize..4, d in 1usize..6, seed in any::<u64>()) {
        let x = input(values(seed, n * d), &[n, d]);
        let w = input(values(seed ^ 1, d), &[d]);
        check("rms_norm", &[x, w], |t, v| t.rms_norm(v[0], v[1], 1e-5));
    }

    #[test]
    fn rope_gradients(rows in 1usize..4, heads in 1usize..3, half in 1usize..4, seed in any::<u64>()) {
        let hd = 2 * half;
        let positions: Vec<usize> = integers(seed, rows, 64).into_iter().map(|p| p as usize).collect();
        let x = input(values(seed, rows * heads * hd), &[rows, heads * hd]);
        check("rope", &[x], |t, v| t.rope(v[0], &positions, hd, 10_000.0));
    }

    #[test]
    fn softmax_gradients(n in 1usize..4, d in 1usize..6, seed in any::<u64>()) {
        let x = input(values(seed, n * d).iter().map(|x| 3.0 * x).collect(), &[n, d]);
        check("softmax", &[x], |t, v| t.softmax(v[0]));
    }

    #[test]
    fn causal_attention_gradients_with_gqa(
        rows in 1usize..5, n_kv in 1usize..3, group in 1usize..4, hd in 1usize..4, seed in any::<u64>()
    ) {
        let n_heads = n_kv * group;
        let q = input(values(seed, rows * n_heads * hd), &[rows, n_heads * hd]);
        let k = input(values(seed ^ 1, rows * n_kv * hd), &[rows, n_kv * hd]);
        let v = input(values(seed ^ 2, rows * n_kv * hd), &[rows, n_kv * hd]);
        check("causal_attention", &[q, k, v], |t, x| t.causal_attention(x[0], x[1], x[2], n_heads, n_kv));
    }

    #[test]
    fn silu_and_swiglu_gradients(n in 1usize..4, d in 1usize..5, seed in any::<u64>()) {
        let gate = || input(values(seed, n * d).iter().map(|x| 4.0 * x).collect(), &[n, d]);
        let up = input(values(seed ^ 1, n * d), &[n, d]);
        check("silu", &[gate()], |t, v| t.silu(v[0]));
        check("swiglu", &[gate(), up], |t, v| t.swiglu(v[0], v[1]));
    }

    #[test]
    fn cross_entropy_gradients_with_ignored_targets(rows in 1usize..6, vocab in 1usize..6, seed in any::<u64>()) {
        // Row 0 always counts; about a quarter of the others are ignored.
        let targets: Vec<i64> = integers(seed, rows, 4 * vocab as u64)
            .into_iter()
            .enumerate()
            .map(|(r, x)| if r > 0 && x % 4 == 0 { IGNORE_INDEX } else { (x / 4) as i64 })
            .collect();
        let logits = input(values(seed, rows * vocab).iter().map(|x| 3.0 * x).collect(), &[rows, vocab]);
        check("cross_entropy", &[logits], |t, v| t.cross_entropy(v[0], &targets, IGNORE_INDEX));
    }
}

#[test]
fn a_value_used_several_times_sums_its_gradients() {
    let x = || vec![input(values(7, 6), &[2, 3])];
    check("x ⊙ x", &x(), |t, v| t.mul(v[0], v[0]));
    check("x + x", &x(), |t, v| t.add(v[0], v[0]));
    check("x·xᵀ", &x(), |t, v| t.matmul_nt(v[0], v[0]));
    check("swiglu(x, x)", &x(), |t, v| t.swiglu(v[0], v[0]));
    let qkv = vec![input(values(8, 3 * 4), &[3, 4])];
    check("attention(x, x, x)", &qkv, |t, v| t.causal_attention(v[0], v[0], v[0], 2, 2));
    check("x ⊙ x + x", &x(), |t, v| {
        let sq = t.mul(v[0], v[0])?;
        t.add(sq, v[0])
    });

    // d/dx Σ (x² + 3x) = 2x + 3, exactly.
    let mut t = Tape::<f64>::new();
    let xs = [0.5, -1.25, 2.0];
    let x = t.leaf(xs.to_vec(), &[3]).unwrap();
    let sq = t.mul(x, x).unwrap();
    let three = t.scale(x, 3.0).unwrap();
    let s = t.add(sq, three).unwrap();
    let loss = t.sum(s).unwrap();
    let grads = t.backward(loss).unwrap();
    let want: Vec<f64> = xs.iter().map(|x| 2.0 * x + 3.0).collect();
    assert_eq!(grads.get(x).unwrap(), want.as_slice());
}

#[test]
fn constants_get_no_gradient_and_kept_intermediates_do() {
    let mut t = Tape::<f64>::new();
    let w = t.constant(values(1, 6), &[2, 3]).unwrap();
    let a = t.leaf(values(2, 3), &[1, 3]).unwrap();
    let x = t.constant(values(3, 12), &[4, 3]).unwrap();
    let base = t.matmul_nt(x, w).unwrap();
    let frozen_only = t.sum(base).unwrap();
    assert!(!t.requires_grad(base));
    let grads = t.backward(frozen_only).unwrap();
    assert!(grads.get(w).is_none() && grads.get(a).is_none() && grads.get(x).is_none());

    let ax = t.matmul_nt(x, a).unwrap();
    let loss = t.sum(ax).unwrap();
    let grads = t.backward(loss).unwrap();
    assert!(grads.get(w).is_none() && grads.get(x).is_none());
    assert!(grads.get(ax).is_none(), "intermediate gradients are dropped by backward");
    // d/da Σ_i x_i·a = Σ_i x_i.
    let xv = t.value(x).to_vec();
    let col_sums: Vec<f64> = (0..3).map(|j| (0..4).map(|i| xv[i * 3 + j]).sum()).collect();
    let got = grads.get(a).unwrap();
    for (g, want) in got.iter().zip(&col_sums) {
        assert!((g - want).abs() < 1e-12, "{got:?} vs {col_sums:?}");
    }
    let all = t.backward_keep_all(loss).unwrap();
    assert_eq!(all.get(ax).unwrap(), &[1.0; 4][..]);
    let mut all = all;
    assert_eq!(all.take(a).unwrap().len(), 3);
    assert!(all.get(a).is_none());
}

#[test]
fn lora_shaped_linear_gradients_reach_only_the_adapters() {
    // y = x·Wᵀ + (α/r)·(x·Aᵀ)·Bᵀ with W frozen (Hu et al. 2021): W is a constant inside the function.
    let (t_rows, d_in, d_out, rank) = (3, 5, 4, 2);
    let w = values(11, d_out * d_in);
    let x = values(12, t_rows * d_in);
    let inputs = [input(values(13, rank * d_in), &[rank, d_in]), input(values(14, d_out * rank), &[d_out, rank])];
    check("lora linear", &inputs, |t, v| {
        let wv = t.constant(w.clone(), &[d_out, d_in])?;
        let xv = t.constant(x.clone(), &[t_rows, d_in])?;
        let base = t.matmul_nt(xv, wv)?;
        let down = t.matmul_nt(xv, v[0])?;
        let up = t.matmul_nt(down, v[1])?;
        let lora = t.scale(up, 16.0 / rank as f64)?;
        t.add(base, lora)
    });
}

#[test]
fn a_frozen_linear_layer_equals_matmul_nt_with_a_constant_weight() {
    let (rows, d_in, d_out) = (3, 4, 5);
    let w = Arc::new(values(61, d_out * d_in));
    let layer: Arc<dyn FrozenLinear<f64>> = Arc::new(DenseLinear::new(Arc::clone(&w), d_out, d_in).unwrap());
    assert_eq!((layer.in_features(), layer.out_features()), (d_in, d_out));
    let x = values(62, rows * d_in);
    check("linear_frozen", &[input(x.clone(), &[rows, d_in])], |t, v| t.linear_frozen(v[0], Arc::clone(&layer)));

    let grad_of_x = |frozen: bool| {
        let mut t = Tape::<f64>::new();
        let xv = t.leaf(x.clone(), &[rows, d_in]).unwrap();
        let y = if frozen {
            t.linear_frozen(xv, Arc::clone(&layer)).unwrap()
        } else {
            let wv = t.constant_shared(Arc::clone(&w), &[d_out, d_in]).unwrap();
            t.matmul_nt(xv, wv).unwrap()
        };
        let sq = t.mul(y, y).unwrap();
        let loss = t.sum(sq).unwrap();
        (t.value(y).to_vec(), t.backward(loss).unwrap().get(xv).unwrap().to_vec())
    };
    assert_eq!(grad_of_x(true), grad_of_x(false));
}

#[test]
fn cross_entropy_values_and_the_all_ignored_case() {
    // Uniform logits: the loss is ln(vocab) whatever the targets.
    let mut t = Tape::<f64>::new();
    let logits = t.leaf(vec![0.0; 3 * 5], &[3, 5]).unwrap();
    let loss = t.cross_entropy(logits, &[0, IGNORE_INDEX, 4], IGNORE_INDEX).unwrap();
    assert!((t.value(loss)[0] - 5f64.ln()).abs() < 1e-12);
    let g = t.backward(loss).unwrap();
    let g = g.get(logits).unwrap();
    // Two counted rows: (softmax − onehot) / 2; the ignored row gets nothing.
    assert!((g[0] - (0.2 - 1.0) / 2.0).abs() < 1e-12 && (g[1] - 0.1).abs() < 1e-12);
    assert!(g[5..10].iter().all(|&x| x == 0.0));

    // Every row ignored: loss 0 and zero gradients (documented), never NaN.
    let mut t = Tape::<f64>::new();
    let logits = t.leaf(values(3, 2 * 4), &[2, 4]).unwrap();
    let loss = t.cross_entropy(logits, &[IGNORE_INDEX, IGNORE_INDEX], IGNORE_INDEX).unwrap();
    assert_eq!(t.value(loss), &[0.0]);
    let g = t.backward(loss).unwrap();
    assert!(g.get(logits).unwrap().iter().all(|&x| x == 0.0));

    // Large logits stay finite (log-sum-exp).
    let mut t = Tape::<f32>::new();
    let logits = t.leaf(vec![1000.0, -1000.0, 0.0, 999.0], &[2, 2]).unwrap();
    let loss = t.cross_entropy(logits, &[1, 0], IGNORE_INDEX).unwrap();
    let l = t.value(loss)[0];
    // Row 0: 1000 − (−1000) = 2000; row 1: 999 − 0 = 999 (the other term is e^−999 below rounding).
    assert!((l - 1499.5).abs() < 1e-2, "{l}");
}

/// The parameters of a one-block decoder: name, shape.
const TINY_LM: [(&str, &[usize]); 11] = [
    ("embedding", &[VOCAB, D]),
    ("attn_norm", &[D]),
    ("wq", &[HEADS * HD, D]),
    ("wk", &[KV_HEADS * HD, D]),
    ("wv", &[KV_HEADS * HD, D]),
    ("wo", &[D, HEADS * HD]),
    ("ffn_norm", &[D]),
    ("w_gate", &[FF, D]),
    ("w_up", &[FF, D]),
    ("w_down", &[D, FF]),
    ("output_norm", &[D]),
];
const VOCAB: usize = 11;
const D: usize = 8;
const HEADS: usize = 4;
const KV_HEADS: usize = 2;
const HD: usize = 2;
const FF: usize = 12;
const IDS: [u32; 6] = [3, 1, 4, 1, 5, 9];
const TARGETS: [i64; 6] = [1, 4, IGNORE_INDEX, 5, 9, 2];

/// A LLaMA block with tied embeddings: embedding → RMSNorm → q/k/v → RoPE → GQA attention → residual
/// → RMSNorm → SwiGLU → residual → RMSNorm → logits → cross-entropy.
fn tiny_lm<T: Float>(t: &mut Tape<T>, p: &[Var]) -> kernels::Result<Var> {
    let positions: Vec<usize> = (0..IDS.len()).collect();
    let x = t.embedding(p[0], &IDS)?;
    let h = t.rms_norm(x, p[1], 1e-5)?;
    let q = t.matmul_nt(h, p[2])?;
    let k = t.matmul_nt(h, p[3])?;
    let v = t.matmul_nt(h, p[4])?;
    let q = t.rope(q, &positions, HD, 10_000.0)?;
    let k = t.rope(k, &positions, HD, 10_000.0)?;
    let a = t.causal_attention(q, k, v, HEADS, KV_HEADS)?;
    let o = t.matmul_nt(a, p[5])?;
    let x = t.add(x, o)?;
    let h = t.rms_norm(x, p[6], 1e-5)?;
    let gate = t.matmul_nt(h, p[7])?;
    let up = t.matmul_nt(h, p[8])?;
    let s = t.swiglu(gate, up)?;
    let down = t.matmul_nt(s, p[9])?;
    let x = t.add(x, down)?;
    let x = t.rms_norm(x, p[10], 1e-5)?;
    let logits = t.matmul_nt(x, p[0])?;
    t.cross_entropy(logits, &TARGETS, IGNORE_INDEX)
}

fn tiny_lm_params() -> Vec<(Vec<f64>, Vec<usize>)> {
    TINY_LM
        .iter()
        .enumerate()
        .map(|(i, &(name, shape))| {
            let n = shape.iter().product();
            let r = values(100 + i as u64, n);
            let v = if name.ends_with("norm") { r.iter().map(|x| 1.0 + 0.2 * x).collect() } else { r };
            input(v, shape)
        })
        .collect()
}

#[test]
fn a_whole_decoder_block_passes_the_gradient_check() {
    let params = tiny_lm_params();
    let borrowed: Vec<(&[f64], &[usize])> = params.iter().map(|(v, s)| (v.as_slice(), s.as_slice())).collect();
    let report = gradcheck(&borrowed, GradCheckConfig::default(), tiny_lm::<f64>).unwrap();
    eprintln!("gradcheck tiny_lm: max_rel {:.2e} max_abs {:.2e}", report.max_rel(), report.max_abs());
    for ((name, _), c) in TINY_LM.iter().zip(&report.inputs) {
        assert!(c.max_rel < GRAD_TOL, "{name}: {c:?}");
    }
    assert!(report.loss.is_finite() && report.loss > 0.0);
}

/// Runs the tiny decoder on a tape of `T`: the loss and every parameter's gradient, as f64.
fn tiny_lm_on<T: Float>() -> (f64, Vec<Vec<f64>>) {
    let mut t = Tape::<T>::new();
    let vars: Vec<Var> = tiny_lm_params()
        .into_iter()
        .map(|(v, s)| t.leaf(v.into_iter().map(T::from_f64).collect(), &s).unwrap())
        .collect();
    let loss = tiny_lm(&mut t, &vars).unwrap();
    let grads = t.backward(loss).unwrap();
    let g = vars.iter().map(|&v| grads.get(v).unwrap().iter().map(|x| x.to_f64()).collect()).collect();
    (t.value(loss)[0].to_f64(), g)
}

#[test]
fn the_f32_tape_agrees_with_the_f64_tape() {
    let (l32, g32) = tiny_lm_on::<f32>();
    let (l64, g64) = tiny_lm_on::<f64>();
    assert!((l32 - l64).abs() <= 1e-4 * l64.abs(), "loss {l32} vs {l64}");
    for ((name, _), (a, b)) in TINY_LM.iter().zip(g32.iter().zip(&g64)) {
        let scale = b.iter().fold(0f64, |m, x| m.max(x.abs()));
        let diff = a.iter().zip(b).fold(0f64, |m, (x, y)| m.max((x - y).abs()));
        eprintln!("f32 vs f64 {name}: max diff {diff:.2e} of max |g| {scale:.2e}");
        assert!(diff <= 1e-4 * scale, "{name}: max |Δg| {diff} for max |g| {scale}");
    }
}

#[test]
fn rope_rotates_adjacent_pairs_as_the_formula_says() {
    let (rows, heads, hd, base) = (3, 2, 6, 10_000.0f64);
    let positions = [0, 7, 130];
    let x = values(21, rows * heads * hd);
    let mut t = Tape::<f64>::new();
    let xv = t.constant(x.clone(), &[rows, heads * hd]).unwrap();
    let y = t.rope(xv, &positions, hd, base).unwrap();
    let y = t.value(y);
    for (r, &pos) in positions.iter().enumerate() {
        for h in 0..heads {
            for i in 0..hd / 2 {
                let angle = pos as f64 * base.powf(-2.0 * i as f64 / hd as f64);
                let at = r * heads * hd + h * hd + 2 * i;
                let (a, b) = (x[at], x[at + 1]);
                assert!((y[at] - (a * angle.cos() - b * angle.sin())).abs() < 1e-12);
                assert!((y[at + 1] - (a * angle.sin() + b * angle.cos())).abs() < 1e-12);
            }
        }
    }
}

/// Attention of every position over the positions up to it, in plain f64 loops.
fn naive_attention(q: &[f64], k: &[f64], v: &[f64], rows: usize, n_heads: usize, n_kv: usize, hd: usize) -> Vec<f64> {
    let (qw, kw) = (n_heads * hd, n_kv * hd);
    let mut out = vec![0.0; rows * qw];
    for i in 0..rows {
        for h in 0..n_heads {
            let g = h / (n_heads / n_kv);
            let scores: Vec<f64> = (0..=i)
                .map(|j| {
                    (0..hd).map(|c| q[i * qw + h * hd + c] * k[j * kw + g * hd + c]).sum::<f64>() / (hd as f64).sqrt()
                })
                .collect();
            let m = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let z: f64 = scores.iter().map(|s| (s - m).exp()).sum();
            for (j, s) in scores.iter().enumerate() {
                for c in 0..hd {
                    out[i * qw + h * hd + c] += (s - m).exp() / z * v[j * kw + g * hd + c];
                }
            }
        }
    }
    out
}

#[test]
fn causal_attention_matches_a_naive_loop() {
    for (rows, n_heads, n_kv, hd) in [(1, 1, 1, 1), (5, 4, 2, 3), (6, 6, 1, 4), (4, 3, 3, 2)] {
        let q = values(31, rows * n_heads * hd);
        let k = values(32, rows * n_kv * hd);
        let v = values(33, rows * n_kv * hd);
        let mut t = Tape::<f64>::new();
        let qv = t.constant(q.clone(), &[rows, n_heads * hd]).unwrap();
        let kv = t.constant(k.clone(), &[rows, n_kv * hd]).unwrap();
        let vv = t.constant(v.clone(), &[rows, n_kv * hd]).unwrap();
        let out = t.causal_attention(qv, kv, vv, n_heads, n_kv).unwrap();
        let want = naive_attention(&q, &k, &v, rows, n_heads, n_kv, hd);
        for (a, b) in t.value(out).iter().zip(&want) {
            assert!((a - b).abs() < 1e-12, "rows {rows} heads {n_heads}/{n_kv} hd {hd}: {a} vs {b}");
        }
    }
}

#[test]
fn softmax_rows_sum_to_one_and_survive_large_inputs() {
    let mut t = Tape::<f32>::new();
    let x = t.constant(vec![1000.0, 1001.0, -1000.0, 0.0, 0.0, 0.0], &[2, 3]).unwrap();
    let y = t.softmax(x).unwrap();
    let y = t.value(y);
    assert!(y.iter().all(|v| v.is_finite()));
    assert!((y[0..3].iter().sum::<f32>() - 1.0).abs() < 1e-6 && (y[3] - 1.0 / 3.0).abs() < 1e-6);
}

#[cfg(feature = "llm")]
#[test]
fn rope_equals_the_inference_rope_bit_for_bit() {
    use kernels::llm::attention::{rope_frequencies, rope_in_place};
    let (rows, heads, hd, base) = (4, 3, 8, 10_000.0f32);
    let positions = [0, 1, 17, 2047];
    let x: Vec<f32> = values(41, rows * heads * hd).iter().map(|&v| v as f32).collect();
    let mut t = Tape::<f32>::new();
    let xv = t.constant(x.clone(), &[rows, heads * hd]).unwrap();
    let y = t.rope(xv, &positions, hd, f64::from(base)).unwrap();
    let inv_freq = rope_frequencies(hd, base);
    let mut want = x;
    for (row, &pos) in want.chunks_exact_mut(heads * hd).zip(&positions) {
        rope_in_place(row, pos, &inv_freq);
    }
    assert_eq!(t.value(y), want.as_slice());
}

#[cfg(feature = "llm")]
#[test]
fn causal_attention_equals_the_inference_attention() {
    use kernels::llm::attention::{AttentionShape, attention};
    for (rows, n_heads, n_kv, hd) in [(1, 1, 1, 4), (7, 9, 3, 8), (5, 4, 4, 16)] {
        let (qw, kw) = (n_heads * hd, n_kv * hd);
        let f = |seed, n| values(seed, n).iter().map(|&v| 2.0 * v as f32).collect::<Vec<f32>>();
        let (q, k, v) = (f(51, rows * qw), f(52, rows * kw), f(53, rows * kw));
        let mut t = Tape::<f32>::new();
        let qv = t.constant(q.clone(), &[rows, qw]).unwrap();
        let kv = t.constant(k.clone(), &[rows, kw]).unwrap();
        let vv = t.constant(v.clone(), &[rows, kw]).unwrap();
        let out = t.causal_attention(qv, kv, vv, n_heads, n_kv).unwrap();
        let shape = AttentionShape { n_heads, n_kv_heads: n_kv, head_dim: hd };
        let mut want = vec![0.0f32; qw];
        for i in 0..rows {
            attention(&q[i * qw..(i + 1) * qw], &k[..(i + 1) * kw], &v[..(i + 1) * kw], shape, &mut want);
            let got = &t.value(out)[i * qw..(i + 1) * qw];
            for (a, b) in got.iter().zip(&want) {
                assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "position {i}: {a} vs {b}");
            }
        }
    }
}

/// `build` must fail with [`Error::TrainShape`] naming `op`.
fn check_err(case: &str, op: &str, build: impl FnOnce(&mut Tape<f64>) -> kernels::Result<Var>) {
    let mut t = Tape::<f64>::new();
    match build(&mut t) {
        Err(Error::TrainShape { op: got, detail }) => {
            assert_eq!(got, op, "{case}: {detail}");
            assert!(!detail.is_empty(), "{case}");
        }
        other => panic!("{case}: expected TrainShape from {op}, got {other:?}"),
    }
}

/// A leaf of `shape` filled with ones.
fn ones(t: &mut Tape<f64>, shape: &[usize]) -> Var {
    t.leaf(vec![1.0; shape.iter().product()], shape).unwrap()
}

#[test]
fn wrong_shapes_are_typed_errors_naming_the_op() {
    type Case = (&'static str, &'static str, fn(&mut Tape<f64>) -> kernels::Result<Var>);
    let cases: &[Case] = &[
        ("leaf with too few values", "leaf", |t| t.leaf(vec![1.0; 5], &[2, 3])),
        ("constant with too many values", "constant", |t| t.constant(vec![1.0; 7], &[2, 3])),
        ("leaf whose shape overflows", "leaf", |t| t.leaf(vec![], &[usize::MAX, 3])),
        ("matmul inner dimensions", "matmul", |t| {
            let (a, b) = (ones(t, &[2, 3]), ones(t, &[2, 3]));
            t.matmul(a, b)
        }),
        ("matmul of a vector", "matmul", |t| {
            let (a, b) = (ones(t, &[3]), ones(t, &[3, 2]));
            t.matmul(a, b)
        }),
        ("matmul_nt columns", "matmul_nt", |t| {
            let (x, w) = (ones(t, &[2, 3]), ones(t, &[4, 2]));
            t.matmul_nt(x, w)
        }),
        ("add without broadcast", "add", |t| {
            let (a, b) = (ones(t, &[2, 3]), ones(t, &[2]));
            t.add(a, b)
        }),
        ("mul without broadcast", "mul", |t| {
            let (a, b) = (ones(t, &[3]), ones(t, &[2]));
            t.mul(a, b)
        }),
        ("mean of nothing", "mean", |t| {
            let a = ones(t, &[0, 3]);
            t.mean(a)
        }),
        ("reshape to another size", "reshape", |t| {
            let a = ones(t, &[2, 3]);
            t.reshape(a, &[4, 2])
        }),
        ("embedding id out of range", "embedding", |t| {
            let table = ones(t, &[4, 2]);
            t.embedding(table, &[0, 4])
        }),
        ("embedding of a vector", "embedding", |t| {
            let table = ones(t, &[4]);
            t.embedding(table, &[0])
        }),
        ("rms_norm weight length", "rms_norm", |t| {
            let (x, w) = (ones(t, &[2, 3]), ones(t, &[2]));
            t.rms_norm(x, w, 1e-5)
        }),
        ("rms_norm negative eps", "rms_norm", |t| {
            let (x, w) = (ones(t, &[2, 3]), ones(t, &[3]));
            t.rms_norm(x, w, -1.0)
        }),
        ("rope odd head_dim", "rope", |t| {
            let x = ones(t, &[2, 6]);
            t.rope(x, &[0, 1], 3, 10_000.0)
        }),
        ("rope head_dim not dividing the width", "rope", |t| {
            let x = ones(t, &[2, 6]);
            t.rope(x, &[0, 1], 4, 10_000.0)
        }),
        ("rope positions per row", "rope", |t| {
            let x = ones(t, &[2, 4]);
            t.rope(x, &[0], 2, 10_000.0)
        }),
        ("rope base", "rope", |t| {
            let x = ones(t, &[1, 4]);
            t.rope(x, &[0], 2, 0.0)
        }),
        ("softmax of a scalar", "softmax", |t| {
            let x = ones(t, &[]);
            t.softmax(x)
        }),
        ("softmax over nothing", "softmax", |t| {
            let x = ones(t, &[2, 0]);
            t.softmax(x)
        }),
        ("attention kv heads not dividing", "causal_attention", |t| {
            let (q, k) = (ones(t, &[2, 6]), ones(t, &[2, 4]));
            t.causal_attention(q, k, k, 3, 2)
        }),
        ("attention key width", "causal_attention", |t| {
            let (q, k) = (ones(t, &[2, 8]), ones(t, &[2, 3]));
            t.causal_attention(q, k, k, 4, 2)
        }),
        ("attention rows", "causal_attention", |t| {
            let (q, k) = (ones(t, &[3, 4]), ones(t, &[2, 4]));
            t.causal_attention(q, k, k, 2, 2)
        }),
        ("attention value width", "causal_attention", |t| {
            let (q, k, v) = (ones(t, &[2, 4]), ones(t, &[2, 4]), ones(t, &[2, 2]));
            t.causal_attention(q, k, v, 2, 2)
        }),
        ("swiglu shapes", "swiglu", |t| {
            let (g, u) = (ones(t, &[2, 3]), ones(t, &[3, 2]));
            t.swiglu(g, u)
        }),
        ("cross_entropy target out of range", "cross_entropy", |t| {
            let l = ones(t, &[2, 3]);
            t.cross_entropy(l, &[0, 3], IGNORE_INDEX)
        }),
        ("cross_entropy negative target", "cross_entropy", |t| {
            let l = ones(t, &[2, 3]);
            t.cross_entropy(l, &[0, -1], IGNORE_INDEX)
        }),
        ("cross_entropy targets per row", "cross_entropy", |t| {
            let l = ones(t, &[2, 3]);
            t.cross_entropy(l, &[0], IGNORE_INDEX)
        }),
        ("cross_entropy of a vector", "cross_entropy", |t| {
            let l = ones(t, &[3]);
            t.cross_entropy(l, &[0], IGNORE_INDEX)
        }),
        ("linear_frozen weight length", "linear_frozen", |t| {
            let layer = Arc::new(DenseLinear::new(Arc::new(vec![0.0; 5]), 2, 3)?);
            let x = ones(t, &[2, 3]);
            t.linear_frozen(x, layer)
        }),
        ("linear_frozen input width", "linear_frozen", |t| {
            let layer = Arc::new(DenseLinear::new(Arc::new(vec![0.0; 6]), 2, 3)?);
            let x = ones(t, &[2, 2]);
            t.linear_frozen(x, layer)
        }),
        ("a value of another tape", "sum", |t| {
            let mut other = Tape::<f64>::new();
            let _ = ones(&mut other, &[1]);
            let foreign = ones(&mut other, &[1]);
            t.sum(foreign)
        }),
    ];
    for &(case, op, build) in cases {
        check_err(case, op, build);
    }

    // backward of a loss with several values.
    let mut t = Tape::<f64>::new();
    let x = ones(&mut t, &[2]);
    match t.backward(x) {
        Err(Error::TrainShape { op, .. }) => assert_eq!(op, "backward"),
        other => panic!("backward of a vector: {:?}", other.err()),
    }
    // gradcheck of a function that is not scalar.
    let v = [1.0, 2.0];
    let shape = [2];
    match gradcheck(&[(&v[..], &shape[..])], GradCheckConfig::default(), |_, vars| Ok(vars[0])) {
        Err(Error::TrainShape { op, .. }) => assert_eq!(op, "gradcheck"),
        other => panic!("gradcheck of a vector: {other:?}"),
    }
}
