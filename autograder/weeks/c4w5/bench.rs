//! Benchmarks of week c4w5: one LoRA forward + backward step of the learner's layer against the same
//! step on `kernels::train::autograd::Tape<f64>`.
//!
//! Like for like: both compute, in f64, `y = x·Wᵀ + s·(x·Aᵀ)·Bᵀ` for a frozen `W` and the gradients
//! of `Σ y ⊙ dy` with respect to `A`, `B` and `x`. kernels builds the step from its tape's ops as
//! `kernels::train::lora::lora_linear` does (`matmul_nt` on its blocked GEMM, `scale`, `add`, then
//! `mul` by `dy` and `sum` for the loss) with `W` shared into the tape without a copy; the lab runs
//! `forward` then `backward`. First the lab's output and gradients must equal kernels' (to 1e-9
//! relative); then both are timed in alternation (lab, kernels, lab, …, best of several passes) so
//! machine noise hits both alike. The figure is kernels' time divided by the lab's (above 1: the lab
//! is faster), never an absolute time. `graded!` holds the graded task (`c4w5.lora-bench`); `run` is
//! the sweep behind `cargo xtask bench c4w5`.

use std::sync::Arc;
use std::time::Instant;

use c4w5_finetune_security as lab;
use kernels::train::autograd::Tape as KTape;

/// Deterministic pseudo-random numbers (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn vec(&mut self, n: usize, scale: f64) -> Vec<f64> {
        (0..n).map(|_| scale * (2.0 * ((self.next() >> 11) as f64 / (1u64 << 53) as f64) - 1.0)).collect()
    }
}

/// The step's inputs: `rows × inp` tokens through an `out × inp` weight at rank `r`.
struct Workload {
    rows: usize,
    out: usize,
    inp: usize,
    r: usize,
    alpha: f64,
    w: Arc<Vec<f64>>,
    a: Vec<f64>,
    b: Vec<f64>,
    x: Vec<f64>,
    dy: Vec<f64>,
}

fn workload(rows: usize, out: usize, inp: usize, r: usize, seed: u64) -> Workload {
    let mut rng = Rng(seed);
    let w = Arc::new(rng.vec(out * inp, 1.0 / (inp as f64).sqrt()));
    let a = rng.vec(r * inp, 1.0 / (inp as f64).sqrt());
    let b = rng.vec(out * r, 0.05);
    let x = rng.vec(rows * inp, 1.0);
    let dy = rng.vec(rows * out, 1.0 / (rows * out) as f64);
    Workload { rows, out, inp, r, alpha: 2.0 * r as f64, w, a, b, x, dy }
}

/// The lab's layer over the workload's W, A and B.
fn lab_layer(wl: &Workload) -> lab::lora::LoraLinear {
    let config = lab::lora::LoraConfig { rank: wl.r, alpha: wl.alpha, seed: 1 };
    let mut layer = lab::lora::LoraLinear::new(wl.w.to_vec(), wl.out, wl.inp, config)
        .expect("the lab refused the benchmark's layer");
    layer.a_mut().copy_from_slice(&wl.a);
    layer.b_mut().copy_from_slice(&wl.b);
    layer
}

/// kernels' step on `tape` (cleared first): `[y, dA, dB, dx]`.
fn kernels_step(tape: &mut KTape<f64>, wl: &Workload) -> [Vec<f64>; 4] {
    tape.clear();
    let s = wl.alpha / wl.r as f64;
    let x = tape.leaf(wl.x.clone(), &[wl.rows, wl.inp]).unwrap();
    let w = tape.constant_shared(Arc::clone(&wl.w), &[wl.out, wl.inp]).unwrap();
    let a = tape.leaf(wl.a.clone(), &[wl.r, wl.inp]).unwrap();
    let b = tape.leaf(wl.b.clone(), &[wl.out, wl.r]).unwrap();
    let base = tape.matmul_nt(x, w).unwrap();
    let xa = tape.matmul_nt(x, a).unwrap();
    let xab = tape.matmul_nt(xa, b).unwrap();
    let up = tape.scale(xab, s).unwrap();
    let y = tape.add(base, up).unwrap();
    let dy = tape.constant(wl.dy.clone(), &[wl.rows, wl.out]).unwrap();
    let prod = tape.mul(y, dy).unwrap();
    let loss = tape.sum(prod).unwrap();
    let mut g = tape.backward(loss).unwrap();
    [tape.value(y).to_vec(), g.take(a).unwrap(), g.take(b).unwrap(), g.take(x).unwrap()]
}

/// The lab's step: `[y, dA, dB, dx]`.
fn lab_step(layer: &lab::lora::LoraLinear, wl: &Workload) -> [Vec<f64>; 4] {
    let y = layer.forward(&wl.x, wl.rows).expect("forward");
    let g = layer.backward(&wl.x, wl.rows, &wl.dy).expect("backward");
    [y, g.a, g.b, g.x]
}

/// Whether the lab's step equals kernels': `Err` says where it differs.
fn gate(layer: &lab::lora::LoraLinear, wl: &Workload) -> Result<(), String> {
    let mine = lab_step(layer, wl);
    let theirs = kernels_step(&mut KTape::new(), wl);
    for (name, (m, t)) in ["y", "dA", "dB", "dx"].iter().zip(mine.iter().zip(&theirs)) {
        if m.len() != t.len() {
            return Err(format!("{name} has {} values, kernels' {}", m.len(), t.len()));
        }
        let scale = t.iter().fold(0.0f64, |s, v| s.max(v.abs())).max(1e-300);
        if let Some(i) = m.iter().zip(t).position(|(a, b)| !((a - b).abs() <= 1e-9 * scale)) {
            return Err(format!("{name}[{i}] = {}, kernels has {}", m[i], t[i]));
        }
    }
    Ok(())
}

type Step<'a> = Box<dyn FnMut() + 'a>;

/// Seconds per step of each, best of `rounds` passes taken in alternation.
fn interleaved(steps: &mut [Step], rounds: usize) -> Vec<f64> {
    let mut best = vec![f64::INFINITY; steps.len()];
    for _ in 0..rounds {
        for (i, s) in steps.iter_mut().enumerate() {
            let start = Instant::now();
            s();
            best[i] = best[i].min(start.elapsed().as_secs_f64());
        }
    }
    best
}

graded! {
    /// The lab's LoRA step on 64 tokens × 576 → 576 (SmolLM2-135M's q_proj) at rank 8 equals
    /// kernels'; then kernels' time per step is divided by the lab's (score: the ratio).
    fn lora_step_time_vs_kernels() {
        let wl = workload(64, 576, 576, 8, 2026);
        let layer = lab_layer(&wl);
        if let Err(problem) = gate(&layer, &wl) {
            panic!("on the benchmark's layer, {problem}: fix the layer before timing it");
        }
        let mut tape = KTape::new();
        let mut steps: Vec<Step> = vec![
            Box::new(|| { std::hint::black_box(lab_step(&layer, std::hint::black_box(&wl))); }),
            Box::new(|| { std::hint::black_box(kernels_step(&mut tape, std::hint::black_box(&wl))); }),
        ];
        let t = interleaved(&mut steps, 30);
        let ratio = t[1] / t[0];
        println!("lab {:.3} ms/step, kernels {:.3} ms/step; kernels ÷ lab = {ratio:.3}", 1e3 * t[0], 1e3 * t[1]);
        crate::report_metric("step_time_ratio", ratio);
    }
}

/// `cargo xtask bench c4w5`: milliseconds per LoRA step by number of tokens (576 → 576, rank 8),
/// written to `args[0]` (`--quick` for fewer sizes).
pub fn run(args: &[String]) {
    let out = std::path::PathBuf::from(args.first().expect("usage: bench OUT.json [--quick]"));
    let quick = args.iter().any(|a| a == "--quick");
    let sizes: &[usize] = if quick { &[16, 64] } else { &[16, 64, 256, 1024] };
    let rounds = if quick { 10 } else { 30 };
    let mut rows = Vec::new();
    let mut notes = vec![
        "per step: y = x·Wᵀ + (α/r)·(x·Aᵀ)·Bᵀ and the gradients of Σ y ⊙ dy for A, B and x; f64; 576 → 576 (SmolLM2-135M's q_proj), rank 8; 1 thread".to_string(),
        "kernels: Tape<f64> with matmul_nt on the blocked GEMM, built as kernels::train::lora::lora_linear".to_string(),
    ];
    for &n in sizes {
        eprintln!("{n} tokens…");
        let owned = workload(n, 576, 576, 8, 7 + n as u64);
        let wl = &owned;
        let layer = std::panic::catch_unwind(|| lab_layer(wl)).ok();
        let mut names = vec!["kernels"];
        let mut tape = KTape::new();
        let mut steps: Vec<Step> = vec![Box::new(move || {
            std::hint::black_box(kernels_step(&mut tape, wl));
        })];
        match layer.as_ref().map(|l| std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| gate(l, wl)))) {
            Some(Ok(Ok(()))) => {
                names.push("lab");
                let l = layer.as_ref().expect("checked");
                steps.push(Box::new(move || {
                    std::hint::black_box(lab_step(l, wl));
                }));
            }
            Some(Ok(Err(problem))) => notes.push(format!("lab: {problem} at {n} tokens; not timed")),
            _ => notes.push(format!("lab: panicked at {n} tokens (see above); not timed")),
        }
        with_reference_solution! {
            let config = reference_solution::lora::LoraConfig { rank: wl.r, alpha: wl.alpha, seed: 1 };
            let mut solution = reference_solution::lora::LoraLinear::new(wl.w.to_vec(), wl.out, wl.inp, config).expect("solution layer");
            solution.a_mut().copy_from_slice(&wl.a);
            solution.b_mut().copy_from_slice(&wl.b);
            names.push("solution");
            steps.push(Box::new(move || {
                let y = solution.forward(&wl.x, wl.rows).expect("solution forward");
                let g = solution.backward(&wl.x, wl.rows, &wl.dy).expect("solution backward");
                std::hint::black_box((y, g));
            }));
        }
        let t = interleaved(&mut steps, rounds);
        for (name, secs) in names.iter().zip(t) {
            rows.push(serde_json::json!({
                "impl": name, "tokens": n, "ms": 1e3 * secs, "tokens/s": n as f64 / secs,
            }));
        }
    }
    let record = serde_json::json!({
        "week": "c4w5",
        "title": "LoRA forward + backward step (576 → 576, rank 8, f64): tokens per second by number of tokens (1 thread)",
        "x": "tokens",
        "y": "tokens/s",
        "reference": "kernels",
        "targets": [64],
        "columns": ["impl", "tokens", "tokens/s", "ms"],
        "rows": rows,
        "notes": notes,
        "peers": [],
    });
    std::fs::write(&out, serde_json::to_string_pretty(&record).expect("json")).expect("writing the record");
}
