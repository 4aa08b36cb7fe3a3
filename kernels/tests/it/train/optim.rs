//! `kernels::train::optim`: optimiser steps against hand-computed values, and checkpoints that resume bit-identically.
//!
//! AdamW and SGD (plain, Nesterov, with weight decay, with parameters excluded from decay) are checked
//! step by step against values worked out by hand from the papers' algorithms (the arithmetic is in the
//! comments); the schedule, clipping and accumulation likewise; every bad input is a typed error. A run
//! of N steps and one of N/2 steps, checkpoint, load, N/2 steps end with the same bits. The safetensors
//! writer is read back by kernels' reader and by Python's `safetensors` package (the peers' venv).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use kernels::Error;
use kernels::formats::safetensors::{self, Dtype, Safetensors, TensorData};
use kernels::train::checkpoint::{self, Checkpoint};
use kernels::train::optim::{
    AdamWConfig, CosineSchedule, GradAccumulator, Optimizer, OptimizerConfig, Param, ParamState, SgdConfig,
    clip_grad_norm, grad_norm, mean_grads,
};

/// A temp folder removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("kernels-optim-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }

    fn files(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// `got` equals the hand-computed `want` to f32 rounding (relative 1e-6, absolute below 1).
fn close(got: f32, want: f64) -> bool {
    (f64::from(got) - want).abs() <= 1e-6 * want.abs().max(1.0)
}

// ------------------------------------------------------------------ steps against hand-computed values

/// Steps one parameter of two values from `start` with `config` over `grads` (one per step) and checks
/// the value after every step against `want`.
fn check_steps(
    label: &str,
    config: OptimizerConfig,
    decay: bool,
    start: [f32; 2],
    grads: &[[f32; 2]],
    want: &[[f64; 2]],
) {
    assert_eq!(grads.len(), want.len(), "{label}");
    let mut p = Param::new("w", vec![2], start.to_vec()).unwrap();
    if !decay {
        p = p.without_decay();
    }
    let mut params = vec![p];
    let mut opt = Optimizer::new(config, &params).unwrap();
    for (t, (g, w)) in grads.iter().zip(want).enumerate() {
        opt.step(&mut params, &[g.as_slice()]).unwrap();
        for (k, (&got, &want)) in params[0].value.iter().zip(w).enumerate() {
            assert!(close(got, want), "{label}: after step {}, value {k} is {got}, want {want}", t + 1);
        }
    }
    assert_eq!(opt.steps(), grads.len() as u64, "{label}");
}

#[test]
fn adamw_steps_match_the_paper_by_hand() {
    // AdamW (Loshchilov & Hutter 2019, Algorithm 2, with Kingma & Ba's bias correction):
    // η = 0.1, β = (0.9, 0.999), ε = 1e-8, λ = 0.01; θ₀ = (1, −2), g₁ = (0.5, 0.1), g₂ = (−0.25, 0.3).
    //
    // Step 1: m₁ = 0.1·g₁ = (0.05, 0.01), v₁ = 0.001·g₁² = (0.00025, 0.00001);
    //   m̂₁ = m₁/(1 − 0.9) = g₁, v̂₁ = v₁/(1 − 0.999) = g₁², so η·m̂₁/(√v̂₁ + ε) = 0.1·g₁/(|g₁| + 1e-8)
    //   = (0.0999999980, 0.0999999900); decay: θ₀(1 − ηλ) = 0.999·θ₀ = (0.999, −1.998);
    //   θ₁ = (0.999 − 0.0999999980, −1.998 − 0.0999999900) = (0.8990000020, −2.0979999900).
    // Step 2: m₂ = 0.9·m₁ + 0.1·g₂ = (0.045 − 0.025, 0.009 + 0.03) = (0.02, 0.039);
    //   v₂ = 0.999·v₁ + 0.001·g₂² = (0.00024975 + 0.0000625, 0.00000999 + 0.00009) = (0.00031225, 0.00009999);
    //   1 − β₁² = 0.19, 1 − β₂² = 0.001999; m̂₂ = (0.1052631579, 0.2052631579), v̂₂ = (0.1562031016, 0.0500200100),
    //   √v̂₂ = (0.3952253807, 0.2236515370); η·m̂₂/(√v̂₂ + ε) = (0.0266337033, 0.0917781078);
    //   0.999·θ₁ = (0.8981010020, −2.0959019900); θ₂ = (0.8714672987, −2.1876800978).
    // Without decay (the parameter excluded): θ₁ = θ₀ − update₁ = (0.9000000020, −2.0999999900),
    //   θ₂ = θ₁ − update₂ = (0.8733662987, −2.1917780978).
    let config: OptimizerConfig = AdamWConfig { lr: 0.1, betas: (0.9, 0.999), eps: 1e-8, weight_decay: 0.01 }.into();
    let grads = [[0.5, 0.1], [-0.25, 0.3]];
    // (label, decay applies, gradients, hand-computed values after each step)
    type Case<'a> = (&'a str, bool, &'a [[f32; 2]], &'a [[f64; 2]]);
    let cases: [Case<'_>; 4] = [
        ("one step", true, &grads[..1], &[[0.8990000020, -2.0979999900]]),
        ("two steps", true, &grads, &[[0.8990000020, -2.0979999900], [0.8714672987, -2.1876800978]]),
        ("one step, no decay", false, &grads[..1], &[[0.9000000020, -2.0999999900]]),
        ("two steps, no decay", false, &grads, &[[0.9000000020, -2.0999999900], [0.8733662987, -2.1917780978]]),
    ];
    for (label, decay, g, want) in cases {
        check_steps(&format!("AdamW {label}"), config, decay, [1.0, -2.0], g, want);
    }
}

#[test]
fn sgd_momentum_and_nesterov_steps_match_by_hand() {
    // η = 0.1, μ = 0.9; θ₀ = (1, −2), g₁ = (1, 0.5), g₂ = (1, −0.5); the buffer b starts at 0.
    // Heavy ball (Polyak 1964): b₁ = g₁ = (1, 0.5), θ₁ = θ₀ − 0.1·b₁ = (0.9, −2.05);
    //   b₂ = 0.9·b₁ + g₂ = (1.9, −0.05), θ₂ = θ₁ − 0.1·b₂ = (0.71, −2.045).
    // Nesterov (Sutskever et al. 2013): θ₁ = θ₀ − 0.1·(g₁ + 0.9·b₁) = θ₀ − 0.1·(1.9, 0.95) = (0.81, −2.095);
    //   b₂ = (1.9, −0.05), θ₂ = θ₁ − 0.1·(g₂ + 0.9·b₂) = θ₁ − 0.1·(2.71, −0.545) = (0.539, −2.0405).
    // With L2 weight decay λ = 0.1 (heavy ball): d₁ = g₁ + 0.1·θ₀ = (1.1, 0.3), b₁ = d₁, θ₁ = (0.89, −2.03);
    //   d₂ = g₂ + 0.1·θ₁ = (1.089, −0.703), b₂ = 0.9·b₁ + d₂ = (2.079, −0.433), θ₂ = (0.6821, −1.9867);
    //   the same parameter excluded from decay follows the heavy-ball values.
    // Plain SGD (μ = 0): θ₁ = θ₀ − 0.1·g₁ = (0.9, −2.05), θ₂ = θ₁ − 0.1·g₂ = (0.8, −2.0).
    let sgd = |momentum: f32, nesterov: bool, weight_decay: f32| -> OptimizerConfig {
        SgdConfig { lr: 0.1, momentum, nesterov, weight_decay }.into()
    };
    let grads = [[1.0, 0.5], [1.0, -0.5]];
    let cases: [(&str, OptimizerConfig, bool, &[[f64; 2]]); 5] = [
        ("heavy ball", sgd(0.9, false, 0.0), true, &[[0.9, -2.05], [0.71, -2.045]]),
        ("nesterov", sgd(0.9, true, 0.0), true, &[[0.81, -2.095], [0.539, -2.0405]]),
        ("weight decay", sgd(0.9, false, 0.1), true, &[[0.89, -2.03], [0.6821, -1.9867]]),
        ("weight decay, parameter excluded", sgd(0.9, false, 0.1), false, &[[0.9, -2.05], [0.71, -2.045]]),
        ("no momentum", sgd(0.0, false, 0.0), true, &[[0.9, -2.05], [0.8, -2.0]]),
    ];
    for (label, config, decay, want) in cases {
        check_steps(&format!("SGD {label}"), config, decay, [1.0, -2.0], &grads, want);
    }
}

#[test]
fn a_parameter_excluded_from_decay_steps_as_without_decay() {
    // Two parameters with the same values and gradients in one optimiser, one excluded from decay: the
    // excluded one has the bits of a run with λ = 0, the other does not.
    let configs: [(OptimizerConfig, OptimizerConfig); 2] = [
        (
            AdamWConfig { weight_decay: 0.1, lr: 0.01, ..AdamWConfig::default() }.into(),
            AdamWConfig { weight_decay: 0.0, lr: 0.01, ..AdamWConfig::default() }.into(),
        ),
        (
            SgdConfig { weight_decay: 0.1, nesterov: true, ..SgdConfig::default() }.into(),
            SgdConfig { weight_decay: 0.0, nesterov: true, ..SgdConfig::default() }.into(),
        ),
    ];
    let start = vec![0.5, -1.5, 2.0];
    let grads = [[0.1, 0.2, -0.3], [-0.05, 0.4, 0.0], [0.3, -0.1, 0.2]];
    for (with_decay, without) in configs {
        let mut both = vec![
            Param::new("decayed", vec![3], start.clone()).unwrap(),
            Param::new("excluded", vec![3], start.clone()).unwrap().without_decay(),
        ];
        let mut reference = vec![Param::new("reference", vec![3], start.clone()).unwrap()];
        let mut opt = Optimizer::new(with_decay, &both).unwrap();
        let mut opt_ref = Optimizer::new(without, &reference).unwrap();
        for g in &grads {
            opt.step(&mut both, &[g.as_slice(), g.as_slice()]).unwrap();
            opt_ref.step(&mut reference, &[g.as_slice()]).unwrap();
        }
        assert_eq!(bits(&both[1].value), bits(&reference[0].value), "{with_decay:?}");
        assert_ne!(bits(&both[0].value), bits(&reference[0].value), "{with_decay:?}");
    }
}

// ------------------------------------------------------------------ schedule, clipping, accumulation

#[test]
fn the_schedule_warms_up_linearly_then_decays_by_cosine_to_the_floor() {
    // peak 1, floor 0.1, 4 warm-up steps, floor at step 14: warm-up lr = (step + 1)/4; then with
    // p = (step − 4)/10, lr = 0.1 + 0.45·(1 + cos πp): p = 0.2 → 0.1 + 0.45·1.8090169944 = 0.9140576475,
    // p = 0.5 → 0.55, p = 0.9 → 0.1 + 0.45·(1 − 0.9510565163) = 0.1220245677.
    let s = CosineSchedule::new(1.0, 0.1, 4, 14).unwrap();
    // No warm-up: 2e-4 to 0 over 100 steps. Warm-up as long as the schedule: straight to the floor after.
    let no_warmup = CosineSchedule::new(2e-4, 0.0, 0, 100).unwrap();
    let all_warmup = CosineSchedule::new(1.0, 0.5, 3, 3).unwrap();
    let cases: [(&str, CosineSchedule, u64, f64); 15] = [
        ("warm-up start", s, 0, 0.25),
        ("warm-up", s, 1, 0.5),
        ("warm-up end", s, 3, 1.0),
        ("cosine start", s, 4, 1.0),
        ("cosine p = 0.2", s, 6, 0.9140576475),
        ("mid-cosine", s, 9, 0.55),
        ("cosine p = 0.9", s, 13, 0.1220245677),
        ("end", s, 14, 0.1),
        ("after the end", s, 1000, 0.1),
        ("no warm-up: start", no_warmup, 0, 2e-4),
        ("no warm-up: middle", no_warmup, 50, 1e-4),
        ("no warm-up: end", no_warmup, 100, 0.0),
        ("warm-up only: start", all_warmup, 0, 1.0 / 3.0),
        ("warm-up only: last", all_warmup, 2, 1.0),
        ("warm-up only: after", all_warmup, 3, 0.5),
    ];
    for (label, schedule, step, want) in cases {
        let got = schedule.lr_at(step);
        assert!(
            (f64::from(got) - want).abs() <= 1e-6 * want.abs().max(1e-3),
            "{label}: lr_at({step}) = {got}, want {want}"
        );
    }
}

fn check_clip(label: &str, grads: Vec<Vec<f32>>, max_norm: f32, want_norm: f64, want: Vec<Vec<f64>>) {
    let mut g = grads.clone();
    let norm = clip_grad_norm(&mut g, max_norm).unwrap();
    assert!(close(norm, want_norm), "{label}: norm {norm}, want {want_norm}");
    assert_eq!(g.len(), want.len(), "{label}");
    for (got, w) in g.iter().zip(&want) {
        assert_eq!(got.len(), w.len(), "{label}");
        for (&x, &y) in got.iter().zip(w) {
            assert!(close(x, y), "{label}: {got:?}, want {want:?}");
        }
    }
    if want_norm <= f64::from(max_norm) {
        // Not clipped: the very same bits.
        assert_eq!(g.iter().map(|v| bits(v)).collect::<Vec<_>>(), grads.iter().map(|v| bits(v)).collect::<Vec<_>>());
    } else {
        let after = grad_norm(&g).unwrap();
        assert!(close(after, f64::from(max_norm)), "{label}: norm after clipping {after}");
    }
}

#[test]
fn clipping_scales_by_the_global_norm_only_above_the_threshold() {
    // ‖((3, 0), (4))‖ = √(9 + 16) = 5: above 1 every value is scaled by 1/5; at or below 5, nothing moves.
    // Sixteen ones have norm 4; clipped to 2 each becomes 0.5.
    // (label, gradients, max_norm, norm before clipping, gradients after)
    type Case = (&'static str, Vec<Vec<f32>>, f32, f64, Vec<Vec<f64>>);
    let cases: [Case; 6] = [
        ("above", vec![vec![3.0, 0.0], vec![4.0]], 1.0, 5.0, vec![vec![0.6, 0.0], vec![0.8]]),
        ("below", vec![vec![3.0, 0.0], vec![4.0]], 10.0, 5.0, vec![vec![3.0, 0.0], vec![4.0]]),
        ("at the threshold", vec![vec![3.0, 0.0], vec![4.0]], 5.0, 5.0, vec![vec![3.0, 0.0], vec![4.0]]),
        ("across many gradients", vec![vec![1.0; 4], vec![1.0; 12]], 2.0, 4.0, vec![vec![0.5; 4], vec![0.5; 12]]),
        ("all zero", vec![vec![0.0, 0.0]], 1.0, 0.0, vec![vec![0.0, 0.0]]),
        ("no gradient", vec![], 1.0, 0.0, vec![]),
    ];
    for (label, grads, max_norm, want_norm, want) in cases {
        check_clip(label, grads, max_norm, want_norm, want);
    }
    // Works on borrowed slices as well as vectors.
    let (mut a, mut b) = ([3.0f32, 0.0], [4.0f32]);
    let mut views: [&mut [f32]; 2] = [&mut a, &mut b];
    assert_eq!(clip_grad_norm(&mut views, 2.5).unwrap(), 5.0);
    assert_eq!((a, b), ([1.5, 0.0], [2.0]));
}

#[test]
fn accumulation_averages_micro_batch_gradients() {
    // Three micro-batches: sums (6, 6) and (6), divided by 3.
    let micro: [Vec<Vec<f32>>; 3] =
        [vec![vec![1.0, 2.0], vec![3.0]], vec![vec![3.0, 4.0], vec![5.0]], vec![vec![2.0, 0.0], vec![-2.0]]];
    assert_eq!(mean_grads(&micro).unwrap(), vec![vec![2.0, 2.0], vec![2.0]]);

    // The sum is taken in order in f32, then divided by n: the scalar twin, bit for bit.
    let mut acc = GradAccumulator::new();
    for x in [0.1f32, 0.2, 0.4] {
        acc.add(&[[x]]).unwrap();
    }
    assert_eq!(acc.count(), 3);
    assert_eq!(bits(&acc.mean().unwrap()[0]), bits(&[((0.1f32 + 0.2) + 0.4) / 3.0]));
    // The accumulator starts over after `mean`, with a new layout if need be.
    assert_eq!(acc.count(), 0);
    acc.add(&[vec![1.0, 1.0, 1.0]]).unwrap();
    assert_eq!(acc.mean().unwrap(), vec![vec![1.0, 1.0, 1.0]]);

    // The mean of two half-batch gradients of a mean-squared-error loss is the full batch's gradient:
    // L(w) = mean over examples of (w·x − y)², ∂L/∂w = mean of 2(w·x − y)·x.
    let xs = [[1.0f32, 2.0], [0.5, -1.0], [3.0, 0.25], [-2.0, 1.5]];
    let ys = [1.0f32, -0.5, 2.0, 0.0];
    let w = [0.3f32, -0.2];
    let grad = |idx: &[usize]| -> Vec<f32> {
        let mut g = [0.0f32; 2];
        for &i in idx {
            let r = 2.0 * (w[0] * xs[i][0] + w[1] * xs[i][1] - ys[i]);
            g[0] += r * xs[i][0] / idx.len() as f32;
            g[1] += r * xs[i][1] / idx.len() as f32;
        }
        g.to_vec()
    };
    let full = grad(&[0, 1, 2, 3]);
    let halves = mean_grads(&[vec![grad(&[0, 1])], vec![grad(&[2, 3])]]).unwrap();
    for (a, b) in halves[0].iter().zip(&full) {
        assert!(close(*a, f64::from(*b)), "{halves:?} vs {full:?}");
    }
}

// ------------------------------------------------------------------ errors

/// The kind of error a case expects: `InvalidParameter`, or `OptimParam` naming this parameter.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Invalid,
    Param(&'static str),
}

fn check_error(label: &str, got: kernels::Result<()>, kind: Kind, needle: &str) {
    match (got, kind) {
        (Err(Error::InvalidParameter(msg)), Kind::Invalid) => {
            assert!(msg.contains(needle), "{label}: {msg:?} does not say {needle:?}");
        }
        (Err(Error::OptimParam { param, reason }), Kind::Param(name)) => {
            assert_eq!(param, name, "{label}: {reason}");
            assert!(reason.contains(needle), "{label}: {reason:?} does not say {needle:?}");
        }
        (other, _) => panic!("{label}: expected {kind:?} saying {needle:?}, got {other:?}"),
    }
}

fn two_params() -> Vec<Param> {
    vec![Param::new("a", vec![2], vec![1.0, 2.0]).unwrap(), Param::new("b", vec![3], vec![0.0; 3]).unwrap()]
}

/// One AdamW step of [`two_params`] with `grads`; on failure, checks that nothing changed.
fn step_with(params: Vec<Param>, grads: &[Vec<f32>]) -> kernels::Result<()> {
    let mut opt = Optimizer::new(AdamWConfig::default(), &two_params())?;
    let mut params = params;
    let before = params.clone();
    let state = opt.clone();
    let result = opt.step(&mut params, grads);
    if result.is_err() {
        assert_eq!(params, before);
        assert_eq!(opt, state);
    }
    result
}

#[test]
fn bad_configs_gradients_and_parameters_are_typed_errors() {
    use Kind::{Invalid, Param as P};
    let adamw = |c: AdamWConfig| Optimizer::new(c, &two_params()).map(drop);
    let sgd = |c: SgdConfig| Optimizer::new(c, &two_params()).map(drop);
    let d = AdamWConfig::default();
    let s = SgdConfig::default();
    let ok = || vec![vec![0.1, 0.2], vec![0.3, 0.4, 0.5]];
    let with = |i: usize, j: usize, x: f32| {
        let mut g = ok();
        g[i][j] = x;
        g
    };
    let renamed = || {
        let mut p = two_params();
        p[1].name = "c".into();
        p
    };
    let resized = || {
        let mut p = two_params();
        p[1] = Param::new("b", vec![4], vec![0.0; 4]).unwrap();
        p
    };
    let mut set_lr = Optimizer::new(d, &two_params()).unwrap();
    let mut acc_count = GradAccumulator::new();
    acc_count.add(&ok()).unwrap();
    let mut acc_len = acc_count.clone();
    let adam_state =
        |name: &str, n: usize, v: usize| ParamState { name: name.into(), m: vec![0.0; n], v: vec![0.0; v] };

    let cases: Vec<(&str, kernels::Result<()>, Kind, &str)> = vec![
        ("negative lr", adamw(AdamWConfig { lr: -0.1, ..d }), Invalid, "AdamW lr = -0.1 must be finite and >= 0"),
        ("NaN lr", adamw(AdamWConfig { lr: f32::NAN, ..d }), Invalid, "AdamW lr = NaN"),
        ("beta1 = 1", adamw(AdamWConfig { betas: (1.0, 0.999), ..d }), Invalid, "AdamW beta1 = 1 is outside [0, 1)"),
        ("negative beta2", adamw(AdamWConfig { betas: (0.9, -0.5), ..d }), Invalid, "AdamW beta2 = -0.5 is outside"),
        ("eps = 0", adamw(AdamWConfig { eps: 0.0, ..d }), Invalid, "AdamW eps = 0 must be finite and > 0"),
        ("infinite decay", adamw(AdamWConfig { weight_decay: f32::INFINITY, ..d }), Invalid, "weight_decay = inf"),
        ("SGD negative lr", sgd(SgdConfig { lr: -1.0, ..s }), Invalid, "SGD lr = -1"),
        ("SGD momentum 1.5", sgd(SgdConfig { momentum: 1.5, ..s }), Invalid, "SGD momentum = 1.5 is outside [0, 1)"),
        ("Nesterov without momentum", sgd(SgdConfig { momentum: 0.0, nesterov: true, ..s }), Invalid, "nesterov"),
        ("set a negative lr", set_lr.set_lr(-1.0), Invalid, "lr = -1"),
        ("schedule floor above peak", CosineSchedule::new(1.0, 2.0, 0, 10).map(drop), Invalid, "min_lr = 2 is above"),
        ("schedule warm-up too long", CosineSchedule::new(1.0, 0.0, 11, 10).map(drop), Invalid, "warmup_steps = 11"),
        ("schedule NaN peak", CosineSchedule::new(f32::NAN, 0.0, 0, 10).map(drop), Invalid, "peak_lr = NaN"),
        ("shape of another size", Param::new("w", vec![2, 2], vec![0.0; 3]).map(drop), P("w"), "shape [2, 2]"),
        (
            "a name taken twice",
            Optimizer::new(d, &[two_params()[0].clone(), two_params()[0].clone()]).map(drop),
            P("a"),
            "named twice",
        ),
        ("too few gradients", step_with(two_params(), &ok()[..1]), Invalid, "1 gradients for 2 parameters"),
        ("short gradient", step_with(two_params(), &[ok()[0].clone(), vec![0.0; 2]]), P("b"), "gradient of 2 values"),
        ("NaN gradient", step_with(two_params(), &with(1, 1, f32::NAN)), P("b"), "gradient value 1 is NaN"),
        ("infinite gradient", step_with(two_params(), &with(0, 0, f32::INFINITY)), P("a"), "gradient value 0 is inf"),
        ("-inf gradient", step_with(two_params(), &with(1, 2, f32::NEG_INFINITY)), P("b"), "value 2 is -inf"),
        ("another parameter", step_with(renamed(), &ok()), P("c"), "state at this position is \"b\"'s"),
        ("fewer parameters", step_with(two_params()[..1].to_vec(), &ok()[..1]), Invalid, "1 parameters given"),
        ("a resized parameter", step_with(resized(), &ok()), P("b"), "4 values, the optimiser's state holds 3"),
        ("clip a NaN", clip_grad_norm(&mut with(1, 2, f32::NAN), 1.0).map(drop), P("gradient #1"), "value 2 is NaN"),
        ("clip to 0", clip_grad_norm(&mut ok(), 0.0).map(drop), Invalid, "max_norm = 0"),
        ("clip to NaN", clip_grad_norm(&mut ok(), f32::NAN).map(drop), Invalid, "max_norm = NaN"),
        ("norm of inf", grad_norm(&with(0, 1, f32::INFINITY)).map(drop), P("gradient #0"), "value 1 is inf"),
        ("micro-batch short of a gradient", acc_count.add(&ok()[..1]), Invalid, "a micro-batch of 1 gradients"),
        (
            "micro-batch gradient of another length",
            acc_len.add(&[vec![0.0; 2], vec![0.0; 2]]),
            P("gradient #1"),
            "2 values",
        ),
        ("mean of nothing", GradAccumulator::new().mean().map(drop), Invalid, "no micro-batch"),
        ("mean of no micro-batch", mean_grads::<Vec<f32>, Vec<Vec<f32>>>(&[]).map(drop), Invalid, "no micro-batch"),
        (
            "unknown optimiser kind",
            OptimizerConfig::from_json(&serde_json::json!({"kind": "lion", "lr": 0.1})).map(drop),
            Invalid,
            "\"kind\" must be",
        ),
        (
            "config without eps",
            OptimizerConfig::from_json(
                &serde_json::json!({"kind": "adamw", "lr": 0.1, "beta1": 0.9, "beta2": 0.99, "weight_decay": 0.0}),
            )
            .map(drop),
            Invalid,
            "no number \"eps\"",
        ),
        (
            "SGD state with a second moment",
            Optimizer::from_state(s.into(), 3, vec![adam_state("a", 2, 2)]).map(drop),
            P("a"),
            "second moment of 2 values, expected 0",
        ),
        (
            "AdamW state without a second moment",
            Optimizer::from_state(d.into(), 3, vec![adam_state("a", 2, 0)]).map(drop),
            P("a"),
            "second moment of 0 values, expected 2",
        ),
        (
            "state named twice",
            Optimizer::from_state(d.into(), 3, vec![adam_state("a", 2, 2), adam_state("a", 1, 1)]).map(drop),
            P("a"),
            "named twice",
        ),
    ];
    for (label, got, kind, needle) in cases {
        check_error(label, got, kind, needle);
    }
    // The failed calls left the accumulators as they were.
    assert_eq!(acc_count.count(), 1);
    assert_eq!(acc_len.mean().unwrap(), ok());
    assert_eq!(set_lr.lr(), d.lr);
}

// ------------------------------------------------------------------ checkpoints

/// LoRA-like adapters: A (2×3) and B (3×2) of one projection, and a norm excluded from decay.
fn start_params() -> Vec<Param> {
    vec![
        Param::new("layers.0.q_proj.lora_a", vec![2, 3], vec![0.1, -0.2, 0.3, 0.05, 0.0, -0.4]).unwrap(),
        Param::new("layers.0.q_proj.lora_b", vec![3, 2], vec![0.0; 6]).unwrap(),
        Param::new("norm.weight", vec![3], vec![1.0, 1.0, 1.0]).unwrap().without_decay(),
    ]
}

/// The gradient of Σ (θ − target)² for a target that moves with the step and the micro-batch.
fn grads_at(params: &[Param], step: u64, micro: u64) -> Vec<Vec<f32>> {
    params
        .iter()
        .enumerate()
        .map(|(k, p)| {
            p.value
                .iter()
                .enumerate()
                .map(|(i, &x)| {
                    let target = (0.37 * i as f32 + 0.11 * step as f32 + 0.7 * k as f32 + 0.05 * micro as f32).sin();
                    2.0 * (x - target)
                })
                .collect()
        })
        .collect()
}

/// `steps` training steps: three micro-batches accumulated, clipped to norm 0.5, the schedule's rate.
fn train(params: &mut [Param], opt: &mut Optimizer, schedule: &CosineSchedule, steps: u64) {
    for _ in 0..steps {
        let step = opt.steps();
        let mut acc = GradAccumulator::new();
        for micro in 0..3 {
            acc.add(&grads_at(params, step, micro)).unwrap();
        }
        let mut grads = acc.mean().unwrap();
        clip_grad_norm(&mut grads, 0.5).unwrap();
        opt.set_lr(schedule.lr_at(step)).unwrap();
        opt.step(params, &grads).unwrap();
    }
}

fn configs() -> [OptimizerConfig; 3] {
    [
        AdamWConfig { lr: 0.05, weight_decay: 0.1, ..AdamWConfig::default() }.into(),
        SgdConfig { lr: 0.05, momentum: 0.9, nesterov: true, weight_decay: 0.01 }.into(),
        SgdConfig { lr: 0.05, momentum: 0.5, nesterov: false, weight_decay: 0.0 }.into(),
    ]
}

#[test]
fn n_steps_straight_equal_n_over_2_steps_checkpoint_load_n_over_2_steps_bit_for_bit() {
    const N: u64 = 16;
    let dir = TempDir::new("resume");
    let schedule = CosineSchedule::new(0.05, 0.005, 3, N).unwrap();
    let extra = BTreeMap::from([
        ("rng_state".to_string(), "0x9e3779b97f4a7c15".to_string()),
        ("data_cursor".to_string(), "8".to_string()),
    ]);
    for (c, config) in configs().into_iter().enumerate() {
        let mut straight = start_params();
        let mut opt = Optimizer::new(config, &straight).unwrap();
        train(&mut straight, &mut opt, &schedule, N);

        let mut first = start_params();
        let mut opt_first = Optimizer::new(config, &first).unwrap();
        train(&mut first, &mut opt_first, &schedule, N / 2);
        let path = dir.join(&format!("run-{c}.safetensors"));
        checkpoint::save(&path, &first, &opt_first, &extra).unwrap();
        let Checkpoint { mut params, optimizer: mut resumed, extra: extra_back } = checkpoint::load(&path).unwrap();
        assert_eq!(params, first, "{config:?}");
        assert_eq!(resumed, opt_first, "{config:?}");
        assert_eq!(extra_back, extra);
        train(&mut params, &mut resumed, &schedule, N - N / 2);

        assert_eq!(resumed.steps(), N);
        for (a, b) in straight.iter().zip(&params) {
            assert_eq!((&a.name, &a.shape, a.decay), (&b.name, &b.shape, b.decay));
            assert_eq!(bits(&a.value), bits(&b.value), "{config:?}: {}", a.name);
            assert_ne!(bits(&a.value), bits(&start_params().iter().find(|p| p.name == a.name).unwrap().value));
        }
        for (a, b) in opt.state().iter().zip(resumed.state()) {
            assert_eq!((bits(&a.m), bits(&a.v)), (bits(&b.m), bits(&b.v)), "{config:?}: {}", a.name);
        }
        assert_eq!(opt.config().lr().to_bits(), resumed.config().lr().to_bits());
        // Both runs would save the very same bytes.
        assert_eq!(
            checkpoint::to_bytes(&straight, &opt, &extra).unwrap(),
            checkpoint::to_bytes(&params, &resumed, &extra).unwrap()
        );

        // The saved moments matter: the same parameters and step count with zeroed moments diverge.
        let Checkpoint { mut params, optimizer, .. } = checkpoint::load(&path).unwrap();
        let zeroed = optimizer
            .state()
            .iter()
            .map(|s| ParamState { name: s.name.clone(), m: vec![0.0; s.m.len()], v: vec![0.0; s.v.len()] })
            .collect();
        let mut forgetful = Optimizer::from_state(*optimizer.config(), optimizer.steps(), zeroed).unwrap();
        train(&mut params, &mut forgetful, &schedule, N - N / 2);
        assert_ne!(bits(&params[0].value), bits(&straight[0].value), "{config:?}");
    }
}

#[test]
fn a_checkpoint_overwrites_atomically_and_refuses_parameters_that_are_not_the_optimisers() {
    let dir = TempDir::new("atomic");
    let params = start_params();
    let opt = Optimizer::new(configs()[0], &params).unwrap();
    let path = dir.join("ckpt.safetensors");
    checkpoint::save(&path, &params, &opt, &BTreeMap::new()).unwrap();
    checkpoint::save(&path, &params, &opt, &BTreeMap::new()).unwrap();
    assert_eq!(dir.files(), ["ckpt.safetensors"]);
    assert_eq!(checkpoint::load(&path).unwrap().params, params);

    let mut other = start_params();
    other.swap(0, 1);
    match checkpoint::save(dir.join("other.safetensors"), &other, &opt, &BTreeMap::new()) {
        Err(Error::OptimParam { param, .. }) => assert_eq!(param, "layers.0.q_proj.lora_b"),
        other => panic!("{other:?}"),
    }
    let nowhere = dir.join("no/such/folder/ckpt.safetensors");
    match checkpoint::save(&nowhere, &params, &opt, &BTreeMap::new()) {
        Err(Error::Checkpoint { path, reason }) => {
            assert_eq!(path, nowhere);
            assert!(reason.starts_with("cannot write"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(dir.files(), ["ckpt.safetensors"]);
}

type Tensors = Vec<(String, Dtype, Vec<usize>, Vec<u8>)>;

/// The metadata and tensors of a safetensors file, to edit and assemble again.
fn take_apart(bytes: &[u8]) -> (BTreeMap<String, String>, Tensors) {
    let st = Safetensors::parse(bytes).unwrap();
    let tensors = st
        .tensors()
        .map(|t| (t.name().to_string(), t.dtype(), t.shape().iter().map(|&d| d as usize).collect(), t.bytes.to_vec()))
        .collect();
    (st.metadata().clone(), tensors)
}

fn assemble(metadata: &BTreeMap<String, String>, tensors: &Tensors) -> Vec<u8> {
    let views: Vec<TensorData<'_>> = tensors
        .iter()
        .map(|(name, dtype, shape, bytes)| TensorData { name: name.as_str(), dtype: *dtype, shape, bytes })
        .collect();
    safetensors::serialize(&views, metadata).unwrap()
}

type Edit = fn(&mut BTreeMap<String, String>, &mut Tensors);

#[test]
fn a_damaged_or_foreign_checkpoint_is_an_error_naming_the_file_and_the_problem() {
    let dir = TempDir::new("damaged");
    let params = start_params();
    let mut opt = Optimizer::new(configs()[0], &params).unwrap();
    let mut trained = params.clone();
    train(&mut trained, &mut opt, &CosineSchedule::new(0.01, 0.0, 1, 4).unwrap(), 2);
    let good = checkpoint::to_bytes(&trained, &opt, &BTreeMap::new()).unwrap();
    let (metadata, tensors) = take_apart(&good);
    assert_eq!(assemble(&metadata, &tensors), good, "take_apart and assemble are exact");

    let cases: [(&str, Edit, &str); 13] = [
        (
            "another version",
            |m, _| {
                m.insert("format_version".into(), "2".into());
            },
            "format version \"2\"",
        ),
        (
            "another format",
            |m, _| {
                m.insert("format".into(), "ml-model".into());
            },
            "not a training checkpoint",
        ),
        (
            "no step count",
            |m, _| {
                m.remove("steps");
            },
            "no \"steps\" in __metadata__",
        ),
        (
            "bad step count",
            |m, _| {
                m.insert("steps".into(), "-1".into());
            },
            "steps \"-1\"",
        ),
        (
            "beta1 out of range",
            |m, _| {
                let mut config: serde_json::Value = serde_json::from_str(&m["optimizer"]).unwrap();
                config["beta1"] = serde_json::json!(1.5);
                m.insert("optimizer".into(), config.to_string());
            },
            "AdamW beta1 = 1.5",
        ),
        (
            "params not JSON",
            |m, _| {
                m.insert("params".into(), "[{".into());
            },
            "params is not the expected JSON",
        ),
        (
            "extra not strings",
            |m, _| {
                m.insert("extra".into(), "{\"a\": 1}".into());
            },
            "extra is not a JSON object",
        ),
        (
            "missing moment",
            |_, t| t.retain(|(n, ..)| n != "optim/v/norm.weight"),
            "missing tensor \"optim/v/norm.weight\"",
        ),
        (
            "transposed parameter",
            |_, t| t[0].2 = vec![3, 2],
            "tensor \"param/layers.0.q_proj.lora_a\" has shape [3, 2], expected [2, 3]",
        ),
        (
            "half-precision parameter",
            |_, t| {
                let i = t.iter().position(|(n, ..)| n == "param/norm.weight").unwrap();
                t[i].1 = Dtype::F16;
                t[i].3.truncate(6);
            },
            "tensor \"param/norm.weight\" has dtype F16, expected F32",
        ),
        (
            "unexpected tensor",
            |_, t| t.push(("param/extra".into(), Dtype::F32, vec![1], vec![0; 4])),
            "unexpected tensor \"param/extra\"",
        ),
        (
            "parameter listed twice",
            |m, _| {
                let mut list: Vec<serde_json::Value> = serde_json::from_str(&m["params"]).unwrap();
                list.push(list[0].clone());
                m.insert("params".into(), serde_json::Value::Array(list).to_string());
            },
            "named twice",
        ),
        (
            "an empty safetensors file",
            |m, t| {
                m.clear();
                t.clear();
            },
            "no \"format\" in __metadata__",
        ),
    ];
    let path = dir.join("bad.safetensors");
    for (label, edit, needle) in cases {
        let (mut m, mut t) = (metadata.clone(), tensors.clone());
        edit(&mut m, &mut t);
        std::fs::write(&path, assemble(&m, &t)).unwrap();
        match checkpoint::load(&path) {
            Err(Error::Checkpoint { path: p, reason }) => {
                assert_eq!(p, path, "{label}");
                assert!(reason.contains(needle), "{label}: {reason:?} does not say {needle:?}");
            }
            other => panic!("{label}: {other:?}"),
        }
    }

    // Cut at every length: always the typed error naming the file, never a panic.
    let cut = dir.join("cut.safetensors");
    for len in 0..good.len() {
        std::fs::write(&cut, &good[..len]).unwrap();
        match checkpoint::load(&cut) {
            Err(Error::Checkpoint { path, .. }) => assert_eq!(path, cut),
            other => panic!("{len} bytes: {other:?}"),
        }
    }
    let missing = dir.join("missing.safetensors");
    match checkpoint::load(&missing) {
        Err(Error::Checkpoint { path, reason }) => {
            assert_eq!(path, missing);
            assert!(reason.starts_with("cannot read"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

// ------------------------------------------------------------------ the safetensors writer

/// Tensors of several dtypes, a scalar and an empty tensor (names, dtypes, shapes, bytes).
fn sample_tensors() -> Tensors {
    let f32s = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    vec![
        ("weight".into(), Dtype::F32, vec![2, 3], f32s(&[1.0, -2.5, 3.25, f32::MIN_POSITIVE, -0.0, 1e30])),
        ("scale".into(), Dtype::F64, vec![2], [0.1f64, -7.0].iter().flat_map(|x| x.to_le_bytes()).collect()),
        ("ids".into(), Dtype::I64, vec![3], [-1i64, 0, 1 << 40].iter().flat_map(|x| x.to_le_bytes()).collect()),
        ("counts".into(), Dtype::I32, vec![1, 2], [7i32, -9].iter().flat_map(|x| x.to_le_bytes()).collect()),
        ("half".into(), Dtype::F16, vec![2], vec![0x00, 0x3c, 0x00, 0xc0]),
        ("bytes".into(), Dtype::U8, vec![5], vec![0, 1, 2, 254, 255]),
        ("mask".into(), Dtype::Bool, vec![3], vec![1, 0, 1]),
        ("scalar".into(), Dtype::F32, vec![], f32s(&[42.0])),
        ("empty".into(), Dtype::F32, vec![0, 4], vec![]),
    ]
}

#[test]
fn serialize_writes_what_the_reader_reads_back() {
    let tensors = sample_tensors();
    let metadata = BTreeMap::from([
        ("purpose".to_string(), "test".to_string()),
        ("note".to_string(), "a \"quoted\" value".to_string()),
    ]);
    for meta in [metadata.clone(), BTreeMap::new()] {
        let bytes = assemble(&meta, &tensors);
        let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        assert_eq!(header_len % 8, 0, "the header is padded to 8 bytes");
        let header = std::str::from_utf8(&bytes[8..8 + header_len]).unwrap();
        assert_eq!(header.contains("__metadata__"), !meta.is_empty(), "{header}");
        let st = Safetensors::parse(&bytes).unwrap();
        assert_eq!(st.data_offset(), 8 + header_len);
        assert_eq!(st.metadata(), &meta);
        let back: Tensors = st
            .tensors()
            .map(|t| {
                (t.name().to_string(), t.dtype(), t.shape().iter().map(|&d| d as usize).collect(), t.bytes.to_vec())
            })
            .collect();
        assert_eq!(back, tensors);
        assert_eq!(
            bits(&st.tensor("weight").unwrap().to_f32().unwrap()),
            bits(&[1.0, -2.5, 3.25, f32::MIN_POSITIVE, -0.0, 1e30])
        );
    }

    // `save` writes the same bytes, atomically.
    let dir = TempDir::new("writer");
    let views: Vec<TensorData<'_>> = tensors
        .iter()
        .map(|(name, dtype, shape, bytes)| TensorData { name: name.as_str(), dtype: *dtype, shape, bytes })
        .collect();
    let path = dir.join("sample.safetensors");
    safetensors::save(&path, &views, &metadata).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), assemble(&metadata, &tensors));
    assert_eq!(dir.files(), ["sample.safetensors"]);
}

#[test]
fn serialize_refuses_reserved_repeated_and_mis_sized_tensors() {
    let t = |name: &'static str, dtype: Dtype, shape: &'static [usize], bytes: &'static [u8]| TensorData {
        name,
        dtype,
        shape,
        bytes,
    };
    let none = BTreeMap::new();
    let cases: [(&str, Vec<TensorData<'static>>, &str); 5] = [
        ("reserved name", vec![t("__metadata__", Dtype::U8, &[1], &[0])], "\"__metadata__\" is reserved"),
        (
            "repeated name",
            vec![t("x", Dtype::U8, &[1], &[0]), t("x", Dtype::U8, &[1], &[1])],
            "tensor \"x\" is named twice",
        ),
        ("too few bytes", vec![t("x", Dtype::F32, &[2], &[0; 4])], "tensor \"x\": F32 [2] needs 8 bytes, got 4"),
        ("too many bytes", vec![t("x", Dtype::U8, &[], &[0; 2])], "U8 [] needs 1 bytes, got 2"),
        (
            "overflowing shape",
            vec![t("x", Dtype::F64, &[usize::MAX, 2], &[])],
            "shape [18446744073709551615, 2] overflows",
        ),
    ];
    for (label, tensors, needle) in cases {
        match safetensors::serialize(&tensors, &none) {
            Err(Error::InvalidParameter(msg)) => {
                assert!(msg.contains(needle), "{label}: {msg:?} does not say {needle:?}")
            }
            other => panic!("{label}: {other:?}"),
        }
    }
}

/// What Python's `safetensors` (with numpy) reads from each file: metadata, and per tensor its numpy
/// dtype, shape and bytes in hex.
fn python_reads(paths: &[&std::path::Path]) -> serde_json::Value {
    let py = crate::formats::python_with("safetensors, numpy");
    let script = r#"
import json, sys
from safetensors import safe_open
from safetensors.numpy import load_file
out = []
for path in sys.argv[1:]:
    arrays = load_file(path)
    with safe_open(path, framework="np") as f:
        meta = f.metadata()
    out.append({"meta": meta, "arrays": {k: {"dtype": str(v.dtype), "shape": list(v.shape), "hex": v.tobytes().hex()}
                                         for k, v in arrays.items()}})
print(json.dumps(out))
"#;
    let out = Command::new(&py).arg("-c").arg(script).args(paths).output().expect("run python");
    assert!(out.status.success(), "python: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("python printed JSON")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn python_safetensors_reads_the_writer_and_a_checkpoint() {
    let dir = TempDir::new("python");
    let tensors = sample_tensors();
    let metadata = BTreeMap::from([("purpose".to_string(), "cross-check".to_string())]);
    let sample = dir.join("sample.safetensors");
    std::fs::write(&sample, assemble(&metadata, &tensors)).unwrap();

    let mut params = start_params();
    let mut opt = Optimizer::new(configs()[0], &params).unwrap();
    train(&mut params, &mut opt, &CosineSchedule::new(0.01, 0.0, 1, 4).unwrap(), 3);
    let ckpt = dir.join("ckpt.safetensors");
    checkpoint::save(&ckpt, &params, &opt, &BTreeMap::from([("seed".to_string(), "7".to_string())])).unwrap();

    let v = python_reads(&[sample.as_path(), ckpt.as_path()]);
    // The sample: every dtype, shape and byte as written.
    assert_eq!(v[0]["meta"], serde_json::json!({"purpose": "cross-check"}));
    let numpy = |d: Dtype| match d {
        Dtype::F32 => "float32",
        Dtype::F64 => "float64",
        Dtype::I64 => "int64",
        Dtype::I32 => "int32",
        Dtype::F16 => "float16",
        Dtype::U8 => "uint8",
        Dtype::Bool => "bool",
        other => panic!("{other} not in the sample"),
    };
    assert_eq!(v[0]["arrays"].as_object().unwrap().len(), tensors.len());
    for (name, dtype, shape, bytes) in &tensors {
        let a = &v[0]["arrays"][name];
        assert_eq!(a["dtype"], numpy(*dtype), "{name}");
        assert_eq!(a["shape"], serde_json::json!(shape), "{name}");
        assert_eq!(a["hex"], hex(bytes), "{name}");
    }
    // The checkpoint: its metadata, and every parameter and moment with its exact bits.
    assert_eq!(v[1]["meta"]["format"], checkpoint::FORMAT);
    assert_eq!(v[1]["meta"]["steps"], "3");
    assert_eq!(v[1]["meta"]["extra"], "{\"seed\":\"7\"}");
    assert_eq!(v[1]["arrays"].as_object().unwrap().len(), 3 * params.len());
    let f32_hex = |x: &[f32]| hex(&x.iter().flat_map(|f| f.to_le_bytes()).collect::<Vec<u8>>());
    for (p, s) in params.iter().zip(opt.state()) {
        for (prefix, values) in [("param/", &p.value), ("optim/m/", &s.m), ("optim/v/", &s.v)] {
            let a = &v[1]["arrays"][format!("{prefix}{}", p.name)];
            assert_eq!(a["dtype"], "float32", "{prefix}{}", p.name);
            assert_eq!(a["shape"], serde_json::json!(p.shape), "{prefix}{}", p.name);
            assert_eq!(a["hex"], f32_hex(values), "{prefix}{}", p.name);
        }
    }
}
