//! Hidden tests of week c4w5 (fine-tuning and model security): the lab's tape, cross-entropy, LoRA
//! gradients and gradient checker against `kernels::train::autograd` (`Tape<f64>`, `gradcheck`) on
//! random shapes and against central finite differences; its AdamW and clipping against an f64
//! reference written here (to 1e-12 over 100 steps) and against `kernels::train::optim` (f32); its
//! verifier against signatures made by `kernels::registry::Signer`, and its refusals (tampered
//! bytes, other keys, a small-order key's forgery, an empty keyring).

use c4w5_finetune_security as lab;
use kernels::train::autograd::{self as kad, Tape as KTape};
use lab::Error;

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
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in `[-1, 1)`.
    fn sym(&mut self) -> f64 {
        2.0 * self.unit() - 1.0
    }
    fn vec(&mut self, n: usize) -> Vec<f64> {
        (0..n).map(|_| self.sym()).collect()
    }
    /// Values exactly representable in f32 (for comparisons with kernels' f32 optimiser).
    fn vec_f32(&mut self, n: usize) -> Vec<f64> {
        (0..n).map(|_| f64::from(self.sym() as f32)).collect()
    }
}

/// Asserts `got` equals `want` value by value within `tol·max(1, |want|)`.
fn close(got: &[f64], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: {} values, expected {}", got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol * w.abs().max(1.0), "{what}[{i}] = {g}, expected {w} (tolerance {tol})");
    }
}

/// `C = A·B`, row-major, written here.
fn matmul(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
    let mut c = vec![0.0; m * n];
    for i in 0..m {
        for p in 0..k {
            for j in 0..n {
                c[i * n + j] += a[i * k + p] * b[p * n + j];
            }
        }
    }
    c
}

/// The gradient of `values` under the loss `f`, by central differences with step 1e-6.
fn finite_differences(values: &[f64], f: &dyn Fn(&[f64]) -> f64) -> Vec<f64> {
    let mut work = values.to_vec();
    (0..values.len())
        .map(|j| {
            let x = values[j];
            let (xp, xm) = (x + 1e-6, x - 1e-6);
            work[j] = xp;
            let fp = f(&work);
            work[j] = xm;
            let fm = f(&work);
            work[j] = x;
            (fp - fm) / (xp - xm)
        })
        .collect()
}

/// Asserts analytic and numeric gradients agree to `1e-6` relative (absolute below 1e-2).
fn agree(analytic: &[f64], numeric: &[f64], what: &str) {
    assert_eq!(analytic.len(), numeric.len(), "{what}: {} values, expected {}", analytic.len(), numeric.len());
    for (i, (a, n)) in analytic.iter().zip(numeric).enumerate() {
        let rel = (a - n).abs() / a.abs().max(n.abs()).max(1e-2);
        assert!(rel < 1e-6, "{what}[{i}]: analytic {a}, finite differences {n} (relative error {rel:.2e})");
    }
}

// ------------------------------------------------------------------------------------- lab model

/// The lab's `sum((X·W + b)·V)` and its gradients for X, W, b, V.
fn lab_chain(x: &[f64], w: &[f64], b: &[f64], v: &[f64], m: usize, k: usize, n: usize, p: usize) -> [Vec<f64>; 5] {
    let mut tape = lab::tape::Tape::new();
    let vx = tape.leaf(x.to_vec(), m, k).expect("leaf x");
    let vw = tape.leaf(w.to_vec(), k, n).expect("leaf w");
    let vb = tape.leaf(b.to_vec(), 1, n).expect("leaf b");
    let vv = tape.leaf(v.to_vec(), n, p).expect("leaf v");
    let xw = tape.matmul(vx, vw).expect("matmul");
    let y = tape.add_row(xw, vb).expect("add_row");
    let z = tape.matmul(y, vv).expect("matmul");
    let loss = tape.sum(z).expect("sum");
    let value = tape.value(loss)[0];
    let g = tape.backward(loss).expect("the lab's backward refused a valid tape");
    let get = |var| g.get(var).map(<[f64]>::to_vec).expect("no gradient for a leaf the loss depends on");
    [vec![value], get(vx), get(vw), get(vb), get(vv)]
}

/// kernels' `sum((X·W + b)·V)` and its gradients.
fn kernels_chain(x: &[f64], w: &[f64], b: &[f64], v: &[f64], m: usize, k: usize, n: usize, p: usize) -> [Vec<f64>; 5] {
    let mut tape = KTape::<f64>::new();
    let vx = tape.leaf(x.to_vec(), &[m, k]).unwrap();
    let vw = tape.leaf(w.to_vec(), &[k, n]).unwrap();
    let vb = tape.leaf(b.to_vec(), &[n]).unwrap();
    let vv = tape.leaf(v.to_vec(), &[n, p]).unwrap();
    let xw = tape.matmul(vx, vw).unwrap();
    let y = tape.add(xw, vb).unwrap();
    let z = tape.matmul(y, vv).unwrap();
    let loss = tape.sum(z).unwrap();
    let value = tape.value(loss)[0];
    let g = tape.backward(loss).unwrap();
    [
        vec![value],
        g.get(vx).unwrap().to_vec(),
        g.get(vw).unwrap().to_vec(),
        g.get(vb).unwrap().to_vec(),
        g.get(vv).unwrap().to_vec(),
    ]
}

/// The LoRA step on kernels' tape, built as `kernels::train::lora::lora_linear` builds it: `y` and
/// the gradients of `sum(y ⊙ dy)` for A, B and x.
#[allow(clippy::too_many_arguments)]
fn kernels_lora(
    x: &[f64],
    w: &[f64],
    a: &[f64],
    b: &[f64],
    dy: &[f64],
    (rows, out, inp, r): (usize, usize, usize, usize),
    scale: f64,
) -> [Vec<f64>; 4] {
    let mut tape = KTape::<f64>::new();
    let vx = tape.leaf(x.to_vec(), &[rows, inp]).unwrap();
    let vw = tape.constant(w.to_vec(), &[out, inp]).unwrap();
    let va = tape.leaf(a.to_vec(), &[r, inp]).unwrap();
    let vb = tape.leaf(b.to_vec(), &[out, r]).unwrap();
    let base = tape.matmul_nt(vx, vw).unwrap();
    let xa = tape.matmul_nt(vx, va).unwrap();
    let xab = tape.matmul_nt(xa, vb).unwrap();
    let up = tape.scale(xab, scale).unwrap();
    let y = tape.add(base, up).unwrap();
    let vdy = tape.constant(dy.to_vec(), &[rows, out]).unwrap();
    let prod = tape.mul(y, vdy).unwrap();
    let loss = tape.sum(prod).unwrap();
    let yv = tape.value(y).to_vec();
    let g = tape.backward(loss).unwrap();
    [yv, g.get(va).unwrap().to_vec(), g.get(vb).unwrap().to_vec(), g.get(vx).unwrap().to_vec()]
}

/// A LoRA layer of random dims with a random B (A from the seed).
fn random_lora(rng: &mut Rng) -> (lab::lora::LoraLinear, (usize, usize, usize, usize)) {
    let (out, inp) = (2 + rng.below(10), 2 + rng.below(10));
    let r = 1 + rng.below(out.min(inp));
    let rows = 1 + rng.below(6);
    let w = rng.vec(out * inp);
    let config = lab::lora::LoraConfig { rank: r, alpha: [1.0, 8.0, 16.0, 32.0][rng.below(4)], seed: rng.next() };
    let mut layer = lab::lora::LoraLinear::new(w, out, inp, config).expect("LoraLinear::new");
    let b = rng.vec(out * r);
    layer.b_mut().copy_from_slice(&b);
    (layer, (rows, out, inp, r))
}

// ------------------------------------------------------------------------------------- optimiser

/// AdamW as the lab's docs state it, in f64 (the reference of the 100-step test).
struct RefAdamW {
    c: lab::optim::AdamWConfig,
    t: u64,
    m: Vec<Vec<f64>>,
    v: Vec<Vec<f64>>,
}

impl RefAdamW {
    fn new(c: lab::optim::AdamWConfig, lens: &[usize]) -> Self {
        Self {
            c,
            t: 0,
            m: lens.iter().map(|&n| vec![0.0; n]).collect(),
            v: lens.iter().map(|&n| vec![0.0; n]).collect(),
        }
    }
    fn step(&mut self, params: &mut [Vec<f64>], grads: &[Vec<f64>]) {
        self.t += 1;
        let c = self.c;
        let bc1 = 1.0 - c.beta1.powf(self.t as f64);
        let bc2 = 1.0 - c.beta2.powf(self.t as f64);
        for (i, p) in params.iter_mut().enumerate() {
            for j in 0..p.len() {
                let g = grads[i][j];
                self.m[i][j] = c.beta1 * self.m[i][j] + (1.0 - c.beta1) * g;
                self.v[i][j] = c.beta2 * self.v[i][j] + (1.0 - c.beta2) * g * g;
                let denom = self.v[i][j].sqrt() / bc2.sqrt() + c.eps;
                p[j] = p[j] * (1.0 - c.lr * c.weight_decay) - (c.lr / bc1) * (self.m[i][j] / denom);
            }
        }
    }
}

// ------------------------------------------------------------------------------------- signatures

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

graded! {
    /// `sum((X·W + b)·V)` on random shapes: the lab's loss and every gradient equal kernels' Tape<f64>.
    fn tape_gradients_equal_kernels_autograd_on_random_shapes() {
        let mut rng = Rng(0xC4_05_01);
        for trial in 0..40 {
            let (m, k, n, p) = (1 + rng.below(7), 1 + rng.below(7), 1 + rng.below(7), 1 + rng.below(5));
            let (x, w, b, v) = (rng.vec(m * k), rng.vec(k * n), rng.vec(n), rng.vec(n * p));
            let mine = lab_chain(&x, &w, &b, &v, m, k, n, p);
            let theirs = kernels_chain(&x, &w, &b, &v, m, k, n, p);
            for (i, what) in ["loss", "dX", "dW", "db", "dV"].iter().enumerate() {
                close(&mine[i], &theirs[i], 1e-12, &format!("trial {trial} [{m}×{k}]·[{k}×{n}]+b, ·[{n}×{p}]: {what}"));
            }
        }
    }

    /// `matmul_backward` against central differences of `Σ (A·B) ⊙ G`, and `add_row_backward`
    /// against the column sums, on random shapes (one dimension of 1 included).
    fn matmul_backward_matches_finite_differences() {
        let mut rng = Rng(0xC4_05_02);
        for trial in 0..25 {
            let (m, k, n) = (1 + rng.below(6), 1 + rng.below(6), 1 + rng.below(6));
            let (a, b, g) = (rng.vec(m * k), rng.vec(k * n), rng.vec(m * n));
            let (da, db) = lab::tape::matmul_backward(&a, &b, &g, m, k, n);
            let fa = |a: &[f64]| matmul(a, &b, m, k, n).iter().zip(&g).map(|(c, g)| c * g).sum::<f64>();
            let fb = |b: &[f64]| matmul(&a, b, m, k, n).iter().zip(&g).map(|(c, g)| c * g).sum::<f64>();
            agree(&da, &finite_differences(&a, &fa), &format!("trial {trial} [{m}×{k}]·[{k}×{n}] dA"));
            agree(&db, &finite_differences(&b, &fb), &format!("trial {trial} [{m}×{k}]·[{k}×{n}] dB"));
            let (dx, dr) = lab::tape::add_row_backward(&g, m, n);
            close(&dx, &g, 0.0, "add_row dX");
            let sums: Vec<f64> = (0..n).map(|j| (0..m).map(|i| g[i * n + j]).sum()).collect();
            close(&dr, &sums, 1e-14, &format!("trial {trial} add_row dr over {m} rows"));
        }
    }

    /// `(X·W)·W + b` with a square W read twice: its gradient is the sum of both uses (kernels agrees).
    fn tape_accumulates_a_weight_used_twice() {
        let mut rng = Rng(0xC4_05_03);
        for trial in 0..20 {
            let (m, k) = (1 + rng.below(6), 1 + rng.below(6));
            let (x, w, b) = (rng.vec(m * k), rng.vec(k * k), rng.vec(k));
            let mut tape = lab::tape::Tape::new();
            let (vx, vw, vb) = (tape.leaf(x.clone(), m, k).unwrap(), tape.leaf(w.clone(), k, k).unwrap(), tape.leaf(b.clone(), 1, k).unwrap());
            let h = tape.matmul(vx, vw).unwrap();
            let h2 = tape.matmul(h, vw).unwrap();
            let y = tape.add_row(h2, vb).unwrap();
            let loss = tape.sum(y).unwrap();
            let g = tape.backward(loss).expect("backward");
            let mut kt = KTape::<f64>::new();
            let (kx, kw, kb) = (kt.leaf(x, &[m, k]).unwrap(), kt.leaf(w, &[k, k]).unwrap(), kt.leaf(b, &[k]).unwrap());
            let kh = kt.matmul(kx, kw).unwrap();
            let kh2 = kt.matmul(kh, kw).unwrap();
            let ky = kt.add(kh2, kb).unwrap();
            let kl = kt.sum(ky).unwrap();
            let kg = kt.backward(kl).unwrap();
            close(tape.value(loss), kt.value(kl), 1e-12, "loss");
            close(g.get(vw).expect("dW"), kg.get(kw).unwrap(), 1e-12, &format!("trial {trial}: dW of a weight used twice"));
            close(g.get(vx).expect("dX"), kg.get(kx).unwrap(), 1e-12, &format!("trial {trial}: dX"));
            close(g.get(vb).expect("db"), kg.get(kb).unwrap(), 1e-12, &format!("trial {trial}: db"));
        }
    }

    /// Random logits and targets with about a third ignored (ignore index -100 or -1): loss and
    /// gradient equal `Tape::cross_entropy`'s.
    fn xent_equals_kernels_cross_entropy_with_ignored_rows() {
        let mut rng = Rng(0xC4_05_04);
        for trial in 0..40 {
            let (rows, vocab) = (1 + rng.below(10), 1 + rng.below(30));
            let ignore = if rng.below(2) == 0 { lab::xent::IGNORE_INDEX } else { -1 };
            let logits: Vec<f64> = (0..rows * vocab).map(|_| 4.0 * rng.sym()).collect();
            let targets: Vec<i64> =
                (0..rows).map(|_| if rng.below(3) == 0 { ignore } else { rng.below(vocab) as i64 }).collect();
            let mine = lab::xent::cross_entropy(&logits, vocab, &targets, ignore).expect("cross_entropy");
            let mut tape = KTape::<f64>::new();
            let vl = tape.leaf(logits.clone(), &[rows, vocab]).unwrap();
            let loss = tape.cross_entropy(vl, &targets, ignore).unwrap();
            let g = tape.backward(loss).unwrap();
            let what = format!("trial {trial}: {rows} rows × {vocab}, targets {targets:?}");
            close(&[mine.loss], tape.value(loss), 1e-12, &format!("{what}: loss"));
            close(&mine.grad, g.get(vl).unwrap(), 1e-12, &format!("{what}: gradient"));
            assert_eq!(mine.count, targets.iter().filter(|&&t| t != ignore).count(), "{what}: count");
        }
    }

    /// Every row ignored (and no row): loss 0, gradient 0. Logits of ±1000: finite and right. Bad
    /// targets and shapes: typed errors.
    fn xent_all_ignored_is_zero_and_extreme_logits_stay_finite() {
        let ig = lab::xent::IGNORE_INDEX;
        let x = lab::xent::cross_entropy(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 3, &[ig, ig], ig).expect("all ignored");
        assert_eq!((x.loss, x.count), (0.0, 0), "all ignored: loss 0 over 0 rows");
        assert_eq!(x.grad, vec![0.0; 6], "all ignored: a zero gradient");
        let empty = lab::xent::cross_entropy(&[], 5, &[], ig).expect("no rows");
        assert_eq!((empty.loss, empty.count, empty.grad.len()), (0.0, 0, 0));
        let x = lab::xent::cross_entropy(&[1000.0, -1000.0, 0.0, -1000.0, 1000.0, 1000.0], 3, &[1, 2], ig).expect("extreme");
        // Row 0: lse = 1000, term 2000. Row 1: lse = 1000 + ln 2, term ln 2.
        let want = (2000.0 + 2f64.ln()) / 2.0;
        assert!(x.loss.is_finite() && (x.loss - want).abs() < 1e-9, "loss {} expected {want}", x.loss);
        close(&x.grad, &[0.5, -0.5, 0.0, 0.0, 0.25, -0.25], 1e-12, "extreme logits gradient");
        assert!(matches!(lab::xent::cross_entropy(&[0.0; 6], 3, &[0, -5], ig), Err(Error::InvalidInput(_))), "target -5 with ignore -100");
        assert!(matches!(lab::xent::cross_entropy(&[0.0; 6], 3, &[0, 3], ig), Err(Error::InvalidInput(_))), "target 3 of 3");
        assert!(matches!(lab::xent::cross_entropy(&[0.0; 6], 3, &[0], ig), Err(Error::Shape { .. })), "6 logits, 1 target, vocab 3");
        assert!(matches!(lab::xent::cross_entropy(&[], 0, &[], ig), Err(Error::Shape { .. })), "vocab 0");
    }

    /// The lab's gradient against central differences of its own loss.
    fn xent_matches_finite_differences() {
        let mut rng = Rng(0xC4_05_05);
        for trial in 0..15 {
            let (rows, vocab) = (1 + rng.below(6), 2 + rng.below(8));
            let logits: Vec<f64> = (0..rows * vocab).map(|_| 3.0 * rng.sym()).collect();
            let mut targets: Vec<i64> = (0..rows).map(|_| rng.below(vocab) as i64).collect();
            if rows > 1 {
                targets[0] = -100;
            }
            let x = lab::xent::cross_entropy(&logits, vocab, &targets, -100).expect("cross_entropy");
            let f = |l: &[f64]| lab::xent::cross_entropy(l, vocab, &targets, -100).expect("cross_entropy").loss;
            agree(&x.grad, &finite_differences(&logits, &f), &format!("trial {trial}: {rows} × {vocab}"));
        }
    }

    /// On `sum(silu(X·W) ⊙ V)`, the lab's report (with kernels' forward and gradients) equals kernels'
    /// `gradcheck`: the same loss, maximum absolute and relative errors.
    fn gradcheck_agrees_with_kernels_gradcheck() {
        let mut rng = Rng(0xC4_05_06);
        for trial in 0..10 {
            let (m, k, n) = (1 + rng.below(4), 1 + rng.below(4), 1 + rng.below(4));
            let (x, w, v) = (rng.vec(m * k), rng.vec(k * n), rng.vec(m * n));
            let build = |tape: &mut KTape<f64>, vars: &[kad::Var]| -> kernels::Result<kad::Var> {
                let xw = tape.matmul(vars[0], vars[1])?;
                let s = tape.silu(xw)?;
                let p = tape.mul(s, vars[2])?;
                tape.sum(p)
            };
            let shapes = [[m, k], [k, n], [m, n]];
            let config = kad::GradCheckConfig { eps: 1e-6, rel_floor: 1e-2 };
            let k_report = kad::gradcheck(&[(&x, &shapes[0]), (&w, &shapes[1]), (&v, &shapes[2])], config, build).unwrap();
            let forward = |inputs: &[Vec<f64>]| -> lab::Result<f64> {
                let mut tape = KTape::<f64>::new();
                let vars: Vec<kad::Var> = inputs.iter().zip(&shapes).map(|(i, s)| tape.constant(i.clone(), s).unwrap()).collect();
                let out = build(&mut tape, &vars).unwrap();
                Ok(tape.value(out)[0])
            };
            let mut tape = KTape::<f64>::new();
            let vars: Vec<kad::Var> = [&x, &w, &v].iter().zip(&shapes).map(|(i, s)| tape.leaf(i.to_vec(), s).unwrap()).collect();
            let out = build(&mut tape, &vars).unwrap();
            let g = tape.backward(out).unwrap();
            let analytic: Vec<Vec<f64>> = vars.iter().map(|&v| g.get(v).unwrap().to_vec()).collect();
            let inputs = vec![x, w, v];
            let mine = lab::gradcheck::gradcheck(&inputs, &analytic, lab::gradcheck::GradCheckConfig { eps: 1e-6, rel_floor: 1e-2 }, forward)
                .expect("gradcheck");
            let what = format!("trial {trial} [{m}×{k}]·[{k}×{n}]");
            close(&[mine.loss], &[k_report.loss], 1e-14, &format!("{what}: loss"));
            close(&[mine.max_rel], &[k_report.max_rel()], 1e-9, &format!("{what}: max_rel"));
            close(&[mine.max_abs], &[k_report.max_abs()], 1e-9, &format!("{what}: max_abs"));
            assert!(mine.max_rel < 1e-6, "{what}: right gradients, max_rel {}", mine.max_rel);
        }
    }

    /// A matmul backward with a planted bug (dB from the wrong product) is caught where it is; a NaN
    /// gradient makes the report NaN; bad configurations and shapes are refused.
    fn gradcheck_catches_a_planted_wrong_backward_and_nan() {
        let mut rng = Rng(0xC4_05_07);
        let (m, k, n) = (3, 4, 2);
        let (a, b, g) = (rng.vec(m * k), rng.vec(k * n), rng.vec(m * n));
        let f = |v: &[Vec<f64>]| -> lab::Result<f64> { Ok(matmul(&v[0], &v[1], m, k, n).iter().zip(&g).map(|(c, g)| c * g).sum()) };
        let (da, db) = lab::tape::matmul_backward(&a, &b, &g, m, k, n);
        let inputs = vec![a.clone(), b.clone()];
        let ok = lab::gradcheck::gradcheck(&inputs, &[da.clone(), db.clone()], Default::default(), f).expect("gradcheck");
        assert!(ok.max_rel < 1e-7, "right gradients: max_rel {}", ok.max_rel);
        // The bug: dB[p][j] = Σ_i A[i][p + 1]·dC[i][j], the neighbouring column of A.
        let wrong: Vec<f64> = (0..k * n).map(|idx| (0..m).map(|i| a[i * k + (idx / n + 1) % k] * g[i * n + idx % n]).sum()).collect();
        let bad = lab::gradcheck::gradcheck(&inputs, &[da.clone(), wrong], Default::default(), f).expect("gradcheck");
        assert!(bad.max_rel > 1e-2, "a wrong dB passed: max_rel {}", bad.max_rel);
        assert_eq!(bad.worst_input, 1, "the wrong gradient is input 1's (dB), report {bad:?}");
        let mut nan = db.clone();
        nan[2] = f64::NAN;
        let r = lab::gradcheck::gradcheck(&inputs, &[da.clone(), nan], Default::default(), f).expect("gradcheck");
        assert!(r.max_rel.is_nan() && r.max_abs.is_nan(), "a NaN gradient must make the report NaN: {r:?}");
        assert_eq!((r.worst_input, r.worst_index), (1, 2), "the worst value is the NaN: {r:?}");
        for (eps, floor) in [(0.0, 1e-2), (f64::NAN, 1e-2), (1e-6, 0.0), (1e-6, f64::INFINITY)] {
            let c = lab::gradcheck::GradCheckConfig { eps, rel_floor: floor };
            assert!(matches!(lab::gradcheck::gradcheck(&inputs, &[da.clone(), db.clone()], c, f), Err(Error::InvalidConfig(_))), "eps {eps}, rel_floor {floor}");
        }
        assert!(matches!(lab::gradcheck::gradcheck(&inputs, &[da.clone()], Default::default(), f), Err(Error::Shape { .. })), "one gradient for two inputs");
        assert!(matches!(lab::gradcheck::gradcheck(&inputs, &[da, db[1..].to_vec()], Default::default(), f), Err(Error::Shape { .. })), "a short gradient");
    }

    /// 100 steps on random gradients, three parameters, several configurations: the lab's parameters
    /// and moments equal the reference's to 1e-12.
    fn adamw_follows_the_reference_for_100_steps() {
        let mut rng = Rng(0xC4_05_08);
        let configs = [
            lab::optim::AdamWConfig::default(),
            lab::optim::AdamWConfig { lr: 0.05, beta1: 0.8, beta2: 0.99, eps: 1e-6, weight_decay: 0.1 },
            lab::optim::AdamWConfig { lr: 3e-4, beta1: 0.0, beta2: 0.5, eps: 1e-8, weight_decay: 0.0 },
        ];
        for (ci, &config) in configs.iter().enumerate() {
            let lens = [1 + rng.below(20), 1 + rng.below(20), 1 + rng.below(20)];
            let mut opt = lab::optim::AdamW::new(config, &lens).expect("new");
            let mut reference = RefAdamW::new(config, &lens);
            let mut mine: Vec<Vec<f64>> = lens.iter().map(|&n| rng.vec(n)).collect();
            let mut theirs = mine.clone();
            for step in 0..100 {
                let grads: Vec<Vec<f64>> = lens.iter().map(|&n| (0..n).map(|_| if rng.below(10) == 0 { 0.0 } else { rng.sym() * 10f64.powi(rng.below(5) as i32 - 2) }).collect()).collect();
                opt.step(&mut mine, &grads).expect("step");
                reference.step(&mut theirs, &grads);
                for i in 0..3 {
                    close(&mine[i], &theirs[i], 1e-12, &format!("config {ci}, step {}, parameter {i}", step + 1));
                }
            }
            assert_eq!(opt.steps(), 100);
            for i in 0..3 {
                close(&opt.first_moments()[i], &reference.m[i], 1e-12, "first moment");
                close(&opt.second_moments()[i], &reference.v[i], 1e-12, "second moment");
            }
        }
    }

    /// The same 100 steps through `kernels::train::optim::Optimizer` (f32): the lab's f64 trajectory
    /// stays within f32 rounding of it.
    fn adamw_tracks_kernels_optim_in_f32() {
        use kernels::train::optim::{AdamWConfig as KConfig, Optimizer, Param};
        let mut rng = Rng(0xC4_05_09);
        let kc = KConfig { lr: 0.01, betas: (0.9, 0.99), eps: 1e-6, weight_decay: 0.05 };
        let config = lab::optim::AdamWConfig {
            lr: f64::from(kc.lr),
            beta1: f64::from(kc.betas.0),
            beta2: f64::from(kc.betas.1),
            eps: f64::from(kc.eps),
            weight_decay: f64::from(kc.weight_decay),
        };
        let lens = [7, 33];
        let mut mine: Vec<Vec<f64>> = lens.iter().map(|&n| rng.vec_f32(n)).collect();
        let mut params: Vec<Param> = mine.iter().enumerate().map(|(i, v)| Param::new(format!("p{i}"), vec![v.len()], v.iter().map(|&x| x as f32).collect()).unwrap()).collect();
        let mut kopt = Optimizer::new(kc, &params).unwrap();
        let mut opt = lab::optim::AdamW::new(config, &lens).expect("new");
        for step in 0..100 {
            let grads: Vec<Vec<f64>> = lens.iter().map(|&n| rng.vec_f32(n)).collect();
            let kgrads: Vec<Vec<f32>> = grads.iter().map(|g| g.iter().map(|&x| x as f32).collect()).collect();
            opt.step(&mut mine, &grads).expect("step");
            kopt.step(&mut params, &kgrads).unwrap();
            for (i, p) in params.iter().enumerate() {
                let k: Vec<f64> = p.value.iter().map(|&x| f64::from(x)).collect();
                close(&mine[i], &k, 2e-5, &format!("step {} parameter {i} vs kernels (f32)", step + 1));
            }
        }
    }

    /// Wrong counts and lengths and non-finite gradients are typed errors, and change nothing.
    fn adamw_refuses_mismatches_and_changes_nothing() {
        let mut opt = lab::optim::AdamW::new(lab::optim::AdamWConfig::default(), &[3, 2]).expect("new");
        let mut params = vec![vec![1.0, 2.0, 3.0], vec![4.0, 5.0]];
        opt.step(&mut params, &[vec![0.1, 0.2, 0.3], vec![0.4, 0.5]]).expect("a valid step");
        let (p0, m0, v0) = (params.clone(), opt.first_moments().to_vec(), opt.second_moments().to_vec());
        let cases: Vec<(Vec<Vec<f64>>, &str)> = vec![
            (vec![vec![0.1, 0.2, 0.3]], "one gradient for two parameters"),
            (vec![vec![0.1, 0.2, 0.3], vec![0.4]], "a gradient of 1 value for 2"),
            (vec![vec![0.1, 0.2], vec![0.4, 0.5]], "a gradient of 2 values for 3"),
        ];
        for (grads, what) in cases {
            assert!(matches!(opt.step(&mut params, &grads), Err(Error::Shape { .. })), "{what}");
        }
        let mut short = vec![vec![1.0, 2.0, 3.0]];
        assert!(matches!(opt.step(&mut short, &[vec![0.1, 0.2, 0.3], vec![0.4, 0.5]]), Err(Error::Shape { .. })), "one parameter of two");
        for bad in [f64::NAN, f64::INFINITY] {
            assert!(matches!(opt.step(&mut params, &[vec![0.1, 0.2, 0.3], vec![0.4, bad]]), Err(Error::InvalidInput(_))), "gradient {bad}");
        }
        assert_eq!(params, p0, "a refused step changed the parameters");
        assert_eq!((opt.first_moments(), opt.second_moments()), (&m0[..], &v0[..]), "a refused step changed the moments");
        assert_eq!(opt.steps(), 1, "a refused step was counted");
    }

    /// Global-norm clipping equals `kernels::train::optim::clip_grad_norm` (above and below the
    /// threshold) and refuses bad input without scaling anything.
    fn clip_grad_norm_matches_kernels() {
        let mut rng = Rng(0xC4_05_0A);
        for trial in 0..20 {
            let mut mine: Vec<Vec<f64>> = (0..1 + rng.below(4)).map(|_| { let n = rng.below(12); rng.vec_f32(n) }).collect();
            let mut theirs: Vec<Vec<f32>> = mine.iter().map(|g| g.iter().map(|&x| x as f32).collect()).collect();
            let max_norm = [0.1f32, 0.5, 1.0, 100.0][rng.below(4)];
            let a = lab::optim::clip_grad_norm(&mut mine, f64::from(max_norm)).expect("clip");
            let b = kernels::train::optim::clip_grad_norm(&mut theirs, max_norm).unwrap();
            close(&[a], &[f64::from(b)], 1e-6, &format!("trial {trial}: norm"));
            for (g, k) in mine.iter().zip(&theirs) {
                let k: Vec<f64> = k.iter().map(|&x| f64::from(x)).collect();
                close(g, &k, 1e-6, &format!("trial {trial}: clipped to {max_norm}"));
            }
        }
        let mut g = vec![vec![3.0, 4.0]];
        assert!(matches!(lab::optim::clip_grad_norm(&mut g, 0.0), Err(Error::InvalidConfig(_))), "max_norm 0");
        assert!(matches!(lab::optim::clip_grad_norm(&mut g, f64::NAN), Err(Error::InvalidConfig(_))), "max_norm NaN");
        let mut g = vec![vec![3.0, 4.0], vec![f64::NAN]];
        assert!(matches!(lab::optim::clip_grad_norm(&mut g, 1.0), Err(Error::InvalidInput(_))), "a NaN gradient");
        assert_eq!(g[0], vec![3.0, 4.0], "a refused clip scaled a gradient");
    }

    /// Random LoRA layers: output and the gradients of A, B and x equal kernels' tape built as
    /// `lora_linear` (matmul_nt, scale, add).
    fn lora_gradients_equal_kernels_autograd() {
        let mut rng = Rng(0xC4_05_0B);
        for trial in 0..30 {
            let (layer, (rows, out, inp, r)) = random_lora(&mut rng);
            let (x, dy) = (rng.vec(rows * inp), rng.vec(rows * out));
            let y = layer.forward(&x, rows).expect("forward");
            let g = layer.backward(&x, rows, &dy).expect("backward");
            let k = kernels_lora(&x, layer.w(), layer.a(), layer.b(), &dy, (rows, out, inp, r), layer.scale());
            let what = format!("trial {trial}: {rows} rows, [{out}, {inp}], rank {r}, scale {}", layer.scale());
            close(&y, &k[0], 1e-12, &format!("{what}: y"));
            close(&g.a, &k[1], 1e-12, &format!("{what}: dA"));
            close(&g.b, &k[2], 1e-12, &format!("{what}: dB"));
            close(&g.x, &k[3], 1e-12, &format!("{what}: dx"));
        }
    }

    /// The gradients of `sum(y ⊙ dy)` with respect to A, B and x against central differences through
    /// the lab's own forward.
    fn lora_matches_finite_differences() {
        let mut rng = Rng(0xC4_05_0C);
        for trial in 0..8 {
            let (layer, (rows, out, inp, _)) = random_lora(&mut rng);
            let (x, dy) = (rng.vec(rows * inp), rng.vec(rows * out));
            let g = layer.backward(&x, rows, &dy).expect("backward");
            let loss = |l: &lab::lora::LoraLinear, x: &[f64]| -> f64 { l.forward(x, rows).expect("forward").iter().zip(&dy).map(|(y, d)| y * d).sum() };
            let fa = |a: &[f64]| { let mut l = layer.clone(); l.a_mut().copy_from_slice(a); loss(&l, &x) };
            let fb = |b: &[f64]| { let mut l = layer.clone(); l.b_mut().copy_from_slice(b); loss(&l, &x) };
            let fx = |x: &[f64]| loss(&layer, x);
            agree(&g.a, &finite_differences(layer.a(), &fa), &format!("trial {trial}: dA"));
            agree(&g.b, &finite_differences(layer.b(), &fb), &format!("trial {trial}: dB"));
            agree(&g.x, &finite_differences(&x, &fx), &format!("trial {trial}: dx"));
        }
    }

    /// A new layer: A within ±1/√in and seeded, B zero, and its output exactly the base layer's.
    fn lora_starts_at_the_base_model() {
        let mut rng = Rng(0xC4_05_0D);
        let (out, inp, rows) = (12, 9, 4);
        let w = rng.vec(out * inp);
        let config = lab::lora::LoraConfig { rank: 3, alpha: 6.0, seed: 42 };
        let layer = lab::lora::LoraLinear::new(w.clone(), out, inp, config).expect("new");
        let bound = 1.0 / (inp as f64).sqrt();
        assert!(layer.a().iter().all(|a| a.abs() <= bound), "A outside ±1/√in");
        assert!(layer.b().iter().all(|&b| b == 0.0), "B must start at zero");
        assert_eq!(layer.scale(), 2.0);
        let x = rng.vec(rows * inp);
        let mut base = vec![0.0; rows * out];
        for i in 0..rows {
            for o in 0..out {
                base[i * out + o] = (0..inp).map(|p| x[i * inp + p] * w[o * inp + p]).sum();
            }
        }
        close(&layer.forward(&x, rows).expect("forward"), &base, 1e-13, "B = 0: the base layer's output");
        let g = layer.backward(&x, rows, &vec![1.0; rows * out]).expect("backward");
        assert!(g.a.iter().all(|&v| v == 0.0), "with B = 0 no gradient reaches A");
        assert!(g.b.iter().any(|&v| v != 0.0), "with B = 0, B's gradient is not zero");
    }

    /// Merged output equals the adapter's, unmerge restores W, and the refusals are typed.
    fn lora_merge_unmerge_and_refusals() {
        let mut rng = Rng(0xC4_05_0E);
        for trial in 0..10 {
            let (mut layer, (rows, out, inp, _)) = random_lora(&mut rng);
            let x = rng.vec(rows * inp);
            let w0 = layer.w().to_vec();
            let y = layer.forward(&x, rows).expect("forward");
            layer.merge().expect("merge");
            assert!(layer.is_merged());
            close(&layer.forward(&x, rows).expect("merged forward"), &y, 1e-12, &format!("trial {trial}: merged output"));
            assert!(matches!(layer.merge(), Err(Error::InvalidInput(_))), "merging twice");
            assert!(matches!(layer.backward(&x, rows, &vec![0.0; rows * out]), Err(Error::InvalidInput(_))), "backward while merged");
            layer.unmerge().expect("unmerge");
            close(layer.w(), &w0, 1e-13, &format!("trial {trial}: W after unmerge"));
            assert!(matches!(layer.unmerge(), Err(Error::InvalidInput(_))), "unmerging an unmerged layer");
            assert!(matches!(layer.forward(&x[1..], rows), Err(Error::Shape { .. })), "x one value short");
            assert!(matches!(layer.backward(&x, rows, &vec![0.0; rows * out + 1]), Err(Error::Shape { .. })), "dy one value long");
        }
    }

    /// Signatures made by `kernels::registry::Signer` over the manifest domain verify in the lab, and
    /// the lab's signatures verify in kernels' `Keyring`; another domain's signature does not.
    fn typestate_verifies_kernels_registry_signatures() {
        use kernels::registry::keys::{MANIFEST_DOMAIN, PROMOTION_DOMAIN};
        use kernels::registry::{KeyId, Keyring, SignatureBlob, Signer};
        assert_eq!(lab::typestate::DOMAIN, MANIFEST_DOMAIN);
        for seed in 0..8u8 {
            let signer = Signer::from_seed(&[seed; 32]);
            let bytes: Vec<u8> = (0..(seed as usize * 97)).map(|i| (i * 31 + seed as usize) as u8).collect();
            let blob = signer.sign(MANIFEST_DOMAIN, &bytes);
            let key = lab::typestate::PublicKey::from_bytes(&signer.public_key()).expect("kernels' key");
            let verified = lab::typestate::Artifact::new(bytes.clone(), blob.signature).verify(&key).expect("a kernels signature must verify");
            assert_eq!(verified.bytes(), &bytes[..]);
            assert_eq!(verified.signer(), key);
            let other = signer.sign(PROMOTION_DOMAIN, &bytes);
            assert!(matches!(lab::typestate::Artifact::new(bytes.clone(), other.signature).verify(&key), Err(Error::BadSignature { .. })), "a promotion-domain signature must not verify as a manifest's");
            // The other way round (given code on the lab's side, checked here for the record).
            let mine = lab::typestate::SecretKey::from_seed([seed.wrapping_add(100); 32]);
            let pk = mine.public_key().to_bytes();
            let mut ring = Keyring::new();
            ring.add(&pk).unwrap();
            let sig = SignatureBlob { key_id: KeyId::of(&pk), signature: mine.sign(&bytes) };
            ring.verify(MANIFEST_DOMAIN, &bytes, &sig, "lab artefact").expect("kernels verifies the lab's signature");
        }
    }

    /// Every single-bit change of the bytes or the signature, another key, and a small-order key's
    /// forgery are refused with `BadSignature` naming the key.
    fn typestate_refuses_tampering_other_keys_and_weak_keys() {
        let key = lab::typestate::SecretKey::from_seed([9; 32]);
        let pk = key.public_key();
        let bytes = b"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight".to_vec();
        let sig = key.sign(&bytes);
        for i in 0..bytes.len() {
            let mut t = bytes.clone();
            t[i] ^= 1 << (i % 8);
            match lab::typestate::Artifact::new(t, sig).verify(&pk) {
                Err(Error::BadSignature { key }) => assert_eq!(key, hex(&pk.to_bytes()), "BadSignature must name the key"),
                other => panic!("byte {i} changed: {other:?}"),
            }
        }
        for i in (0..64).step_by(5) {
            let mut s = sig;
            s[i] ^= 0x10;
            assert!(matches!(lab::typestate::Artifact::new(bytes.clone(), s).verify(&pk), Err(Error::BadSignature { .. })), "signature byte {i} changed");
        }
        let other = lab::typestate::SecretKey::from_seed([10; 32]).public_key();
        assert!(matches!(lab::typestate::Artifact::new(bytes.clone(), sig).verify(&other), Err(Error::BadSignature { .. })), "another key");
        let mut extended = bytes.clone();
        extended.push(0);
        assert!(matches!(lab::typestate::Artifact::new(extended, sig).verify(&pk), Err(Error::BadSignature { .. })), "a byte appended");
        // The identity point as the public key, R = identity and S = 0: plain Ed25519 verification
        // accepts this for every message; strict verification refuses small-order keys.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let weak = lab::typestate::PublicKey::from_bytes(&identity).expect("the identity is a curve point");
        let mut forged = [0u8; 64];
        forged[0] = 1;
        for msg in [&b"any model at all"[..], &bytes[..], &[][..]] {
            assert!(matches!(lab::typestate::Artifact::new(msg.to_vec(), forged).verify(&weak), Err(Error::BadSignature { .. })), "a weak key's forgery verified: use verify_strict");
        }
    }

    /// A pinned keyring: the signer among others is found and recorded; a keyring without it, and an
    /// empty one, are refused.
    fn typestate_verify_any_over_a_keyring() {
        let keys: Vec<lab::typestate::SecretKey> = (20..25u8).map(|s| lab::typestate::SecretKey::from_seed([s; 32])).collect();
        let ring: Vec<lab::typestate::PublicKey> = keys.iter().map(|k| k.public_key()).collect();
        let bytes = b"adapter_config.json".to_vec();
        for (i, k) in keys.iter().enumerate() {
            let sig = k.sign(&bytes);
            let v = lab::typestate::Artifact::new(bytes.clone(), sig).verify_any(&ring).expect("the signer is in the keyring");
            assert_eq!(v.signer(), ring[i], "the signer recorded must be the key that verified");
            assert_eq!(v.bytes(), &bytes[..]);
            let without: Vec<_> = ring.iter().copied().filter(|p| *p != ring[i]).collect();
            match lab::typestate::Artifact::new(bytes.clone(), sig).verify_any(&without) {
                Err(Error::BadSignature { key }) => assert_eq!(key, without.last().unwrap().to_hex(), "name the last key tried"),
                other => panic!("signer {i} not in the keyring: {other:?}"),
            }
        }
        let sig = keys[0].sign(&bytes);
        assert!(matches!(lab::typestate::Artifact::new(bytes, sig).verify_any(&[]), Err(Error::InvalidConfig(_))), "an empty keyring must be refused");
    }
}
