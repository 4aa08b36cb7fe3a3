//! Optimisers over parameter and gradient slices: SGD with momentum, AdamW, clipping, schedules.
//!
//! Everything here works on named f32 tensors ([`Param`]) and plain gradient slices (anything that is
//! `AsRef<[f32]>`: `Vec<f32>`, `&[f32]`), so it does not depend on the autograd's types. A LoRA trainer
//! keeps its adapter matrices (A and B of every adapted projection) as a `Vec<Param>` and, per step:
//!
//! 1. sums the micro-batches' gradients in a [`GradAccumulator`] and takes their mean,
//! 2. clips them by their global norm ([`clip_grad_norm`]),
//! 3. sets the learning rate of the step from a [`CosineSchedule`] ([`Optimizer::set_lr`]),
//! 4. applies [`Optimizer::step`],
//!
//! and every so often saves parameters and optimiser state with `kernels::train::checkpoint`, from
//! which training resumes bit-identically.
//!
//! The algorithms, with `t` the step number (1 for the first step), `g` the gradient, `θ` the parameter,
//! `η` the learning rate and `λ` the weight decay:
//!
//! * **SGD with momentum** (heavy ball, Polyak 1964, "Some methods of speeding up the convergence of
//!   iteration methods"), in the form PyTorch uses: `d = g + λθ` (L2 decay coupled to the gradient),
//!   `b ← μb + d`, `θ ← θ − η·b`. With **Nesterov** momentum (Sutskever, Martens, Dahl & Hinton 2013,
//!   "On the importance of initialization and momentum in deep learning") the step is `θ ← θ − η·(d + μb)`.
//!   The momentum buffer `b` starts at zero.
//! * **AdamW** (Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019, Algorithm 2)
//!   on Adam's moments with their bias correction (Kingma & Ba, "Adam: A Method for Stochastic
//!   Optimization", ICLR 2015): `m ← β₁m + (1−β₁)g`, `v ← β₂v + (1−β₂)g²`, `m̂ = m/(1−β₁ᵗ)`,
//!   `v̂ = v/(1−β₂ᵗ)`, `θ ← θ − ηλθ − η·m̂/(√v̂ + ε)`. The decay acts on the weights, not on the gradient
//!   (so it is not rescaled by `√v̂`), and is skipped for parameters with [`Param::decay`] false (norms,
//!   biases). As in PyTorch the decay is multiplied by the learning rate: the paper's schedule
//!   multiplier `ηₜ` times its `λ` is this `η·λ`.
//!
//! Arithmetic is f32 element by element in a fixed order, so a run is reproducible bit for bit; the
//! bias corrections, the global norm and the schedule are computed in f64.

use std::collections::HashSet;

use crate::{Error, Result};

/// A named trainable tensor: its shape and values (row-major), and whether weight decay applies to it.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    /// A name unique among the parameters an optimiser steps (e.g. `layers.0.q_proj.lora_a`).
    pub name: String,
    /// The shape, row-major; its product is `value.len()`.
    pub shape: Vec<usize>,
    /// The values.
    pub value: Vec<f32>,
    /// Whether weight decay applies (true by default; false for norms and biases).
    pub decay: bool,
}

impl Param {
    /// A parameter with weight decay.
    ///
    /// # Errors
    /// [`Error::OptimParam`] when the shape does not hold `value.len()` values.
    pub fn new(name: impl Into<String>, shape: Vec<usize>, value: Vec<f32>) -> Result<Param> {
        let p = Param { name: name.into(), shape, value, decay: true };
        p.check_shape()?;
        Ok(p)
    }

    /// The same parameter, excluded from weight decay.
    pub fn without_decay(mut self) -> Param {
        self.decay = false;
        self
    }

    /// The number of values.
    pub fn len(&self) -> usize {
        self.value.len()
    }

    /// Whether the parameter holds no value.
    pub fn is_empty(&self) -> bool {
        self.value.is_empty()
    }

    fn check_shape(&self) -> Result<()> {
        let n = self.shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
        if n == Some(self.value.len()) {
            Ok(())
        } else {
            Err(param_error(
                &self.name,
                format!("shape {:?} does not hold its {} values", self.shape, self.value.len()),
            ))
        }
    }
}

fn param_error(name: &str, reason: impl Into<String>) -> Error {
    Error::OptimParam { param: name.to_string(), reason: reason.into() }
}

fn invalid(reason: impl Into<String>) -> Error {
    Error::InvalidParameter(reason.into())
}

fn check_non_negative(what: &str, x: f32) -> Result<()> {
    if x.is_finite() && x >= 0.0 { Ok(()) } else { Err(invalid(format!("{what} = {x} must be finite and >= 0"))) }
}

fn check_unit_interval(what: &str, x: f32) -> Result<()> {
    if (0.0..1.0).contains(&x) { Ok(()) } else { Err(invalid(format!("{what} = {x} is outside [0, 1)"))) }
}

/// Stochastic gradient descent with momentum (Polyak 1964) and optionally Nesterov's form (Sutskever
/// et al. 2013); the update is in the module docs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SgdConfig {
    /// Learning rate `η` (finite, ≥ 0).
    pub lr: f32,
    /// Momentum `μ` in `[0, 1)`; 0 is plain SGD.
    pub momentum: f32,
    /// Nesterov momentum (needs `momentum > 0`).
    pub nesterov: bool,
    /// L2 weight decay `λ` added to the gradient (finite, ≥ 0).
    pub weight_decay: f32,
}

impl Default for SgdConfig {
    fn default() -> Self {
        SgdConfig { lr: 0.01, momentum: 0.9, nesterov: false, weight_decay: 0.0 }
    }
}

impl SgdConfig {
    /// Checks the ranges documented on the fields.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] naming the field.
    pub fn validate(&self) -> Result<()> {
        check_non_negative("SGD lr", self.lr)?;
        check_unit_interval("SGD momentum", self.momentum)?;
        check_non_negative("SGD weight_decay", self.weight_decay)?;
        if self.nesterov && self.momentum == 0.0 {
            return Err(invalid("SGD nesterov needs momentum > 0"));
        }
        Ok(())
    }
}

/// AdamW (Loshchilov & Hutter 2019) with Adam's bias correction (Kingma & Ba 2015); the update is in
/// the module docs. The default is PyTorch's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWConfig {
    /// Learning rate `η` (finite, ≥ 0).
    pub lr: f32,
    /// `(β₁, β₂)`, the decay rates of the first and second moments, each in `[0, 1)`.
    pub betas: (f32, f32),
    /// `ε` added to `√v̂` (finite, > 0).
    pub eps: f32,
    /// Decoupled weight decay `λ` (finite, ≥ 0).
    pub weight_decay: f32,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig { lr: 1e-3, betas: (0.9, 0.999), eps: 1e-8, weight_decay: 0.01 }
    }
}

impl AdamWConfig {
    /// Checks the ranges documented on the fields.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] naming the field.
    pub fn validate(&self) -> Result<()> {
        check_non_negative("AdamW lr", self.lr)?;
        check_unit_interval("AdamW beta1", self.betas.0)?;
        check_unit_interval("AdamW beta2", self.betas.1)?;
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return Err(invalid(format!("AdamW eps = {} must be finite and > 0", self.eps)));
        }
        check_non_negative("AdamW weight_decay", self.weight_decay)
    }
}

/// Which optimiser, with its hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OptimizerConfig {
    /// SGD with momentum.
    Sgd(SgdConfig),
    /// AdamW.
    AdamW(AdamWConfig),
}

impl From<SgdConfig> for OptimizerConfig {
    fn from(c: SgdConfig) -> Self {
        OptimizerConfig::Sgd(c)
    }
}

impl From<AdamWConfig> for OptimizerConfig {
    fn from(c: AdamWConfig) -> Self {
        OptimizerConfig::AdamW(c)
    }
}

impl OptimizerConfig {
    /// Checks the hyper-parameters ([`SgdConfig::validate`], [`AdamWConfig::validate`]).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] naming the field.
    pub fn validate(&self) -> Result<()> {
        match self {
            OptimizerConfig::Sgd(c) => c.validate(),
            OptimizerConfig::AdamW(c) => c.validate(),
        }
    }

    /// The learning rate.
    pub fn lr(&self) -> f32 {
        match self {
            OptimizerConfig::Sgd(c) => c.lr,
            OptimizerConfig::AdamW(c) => c.lr,
        }
    }

    fn lr_mut(&mut self) -> &mut f32 {
        match self {
            OptimizerConfig::Sgd(c) => &mut c.lr,
            OptimizerConfig::AdamW(c) => &mut c.lr,
        }
    }

    /// Whether the optimiser keeps a second moment per value (AdamW).
    pub fn has_second_moment(&self) -> bool {
        matches!(self, OptimizerConfig::AdamW(_))
    }

    /// The configuration as JSON, e.g. `{"kind":"adamw","lr":0.001,…}`. Every f32 is written as the f64
    /// of the same value, which [`OptimizerConfig::from_json`] reads back exactly.
    pub fn to_json(&self) -> serde_json::Value {
        match *self {
            OptimizerConfig::Sgd(c) => serde_json::json!({
                "kind": "sgd",
                "lr": f64::from(c.lr),
                "momentum": f64::from(c.momentum),
                "nesterov": c.nesterov,
                "weight_decay": f64::from(c.weight_decay),
            }),
            OptimizerConfig::AdamW(c) => serde_json::json!({
                "kind": "adamw",
                "lr": f64::from(c.lr),
                "beta1": f64::from(c.betas.0),
                "beta2": f64::from(c.betas.1),
                "eps": f64::from(c.eps),
                "weight_decay": f64::from(c.weight_decay),
            }),
        }
    }

    /// Reads what [`OptimizerConfig::to_json`] writes, and validates it.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for an unknown kind, a missing or mistyped field, or a value out of
    /// range.
    pub fn from_json(v: &serde_json::Value) -> Result<OptimizerConfig> {
        let num = |key: &str| -> Result<f32> {
            v.get(key)
                .and_then(serde_json::Value::as_f64)
                .map(|x| x as f32)
                .ok_or_else(|| invalid(format!("optimizer config: no number {key:?} in {v}")))
        };
        let kind = v.get("kind").and_then(serde_json::Value::as_str);
        let config = match kind {
            Some("sgd") => OptimizerConfig::Sgd(SgdConfig {
                lr: num("lr")?,
                momentum: num("momentum")?,
                nesterov: v
                    .get("nesterov")
                    .and_then(serde_json::Value::as_bool)
                    .ok_or_else(|| invalid(format!("optimizer config: no boolean \"nesterov\" in {v}")))?,
                weight_decay: num("weight_decay")?,
            }),
            Some("adamw") => OptimizerConfig::AdamW(AdamWConfig {
                lr: num("lr")?,
                betas: (num("beta1")?, num("beta2")?),
                eps: num("eps")?,
                weight_decay: num("weight_decay")?,
            }),
            _ => return Err(invalid(format!("optimizer config: \"kind\" must be \"sgd\" or \"adamw\" in {v}"))),
        };
        config.validate()?;
        Ok(config)
    }
}

/// An optimiser's state for one parameter: the first moment (AdamW) or momentum buffer (SGD) `m`, and
/// the second moment `v` (AdamW; empty for SGD).
#[derive(Debug, Clone, PartialEq)]
pub struct ParamState {
    /// The parameter's name.
    pub name: String,
    /// First moment / momentum buffer, one value per parameter value.
    pub m: Vec<f32>,
    /// Second moment (AdamW), one value per parameter value; empty for SGD.
    pub v: Vec<f32>,
}

/// An optimiser (SGD or AdamW) with its state for a fixed list of named parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Optimizer {
    config: OptimizerConfig,
    steps: u64,
    state: Vec<ParamState>,
}

impl Optimizer {
    /// An optimiser for `params` (in this order, by name) with zeroed state and no step taken.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for hyper-parameters out of range; [`Error::OptimParam`] for a
    /// parameter whose shape does not hold its values or whose name is taken twice.
    pub fn new(config: impl Into<OptimizerConfig>, params: &[Param]) -> Result<Optimizer> {
        let config = config.into();
        config.validate()?;
        let mut names = HashSet::with_capacity(params.len());
        for p in params {
            p.check_shape()?;
            if !names.insert(p.name.as_str()) {
                return Err(param_error(&p.name, "named twice"));
            }
        }
        let second = config.has_second_moment();
        let state = params
            .iter()
            .map(|p| ParamState {
                name: p.name.clone(),
                m: vec![0.0; p.len()],
                v: if second { vec![0.0; p.len()] } else { Vec::new() },
            })
            .collect();
        Ok(Optimizer { config, steps: 0, state })
    }

    /// An optimiser resumed from its parts (as a checkpoint holds them): configuration, steps taken and
    /// per-parameter state.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for hyper-parameters out of range; [`Error::OptimParam`] for a name
    /// taken twice or moments of different lengths (or a second moment for SGD).
    pub fn from_state(config: OptimizerConfig, steps: u64, state: Vec<ParamState>) -> Result<Optimizer> {
        config.validate()?;
        let mut names = HashSet::with_capacity(state.len());
        for s in &state {
            if !names.insert(s.name.as_str()) {
                return Err(param_error(&s.name, "named twice"));
            }
            let want = if config.has_second_moment() { s.m.len() } else { 0 };
            if s.v.len() != want {
                return Err(param_error(&s.name, format!("second moment of {} values, expected {want}", s.v.len())));
            }
        }
        Ok(Optimizer { config, steps, state })
    }

    /// The configuration (its learning rate is the one of the next step).
    pub fn config(&self) -> &OptimizerConfig {
        &self.config
    }

    /// The number of steps taken.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The learning rate of the next step.
    pub fn lr(&self) -> f32 {
        self.config.lr()
    }

    /// Sets the learning rate of the next steps (e.g. [`CosineSchedule::lr_at`] of [`Optimizer::steps`]).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for a negative or non-finite rate.
    pub fn set_lr(&mut self, lr: f32) -> Result<()> {
        check_non_negative("lr", lr)?;
        *self.config.lr_mut() = lr;
        Ok(())
    }

    /// The per-parameter state, in the order of the parameters.
    pub fn state(&self) -> &[ParamState] {
        &self.state
    }

    /// Checks that `params` are the parameters this optimiser was made for: same number, same names in
    /// the same order, same lengths, shapes that hold their values.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for another number of parameters; [`Error::OptimParam`] naming the
    /// first parameter that differs.
    pub fn check_params(&self, params: &[Param]) -> Result<()> {
        if params.len() != self.state.len() {
            return Err(invalid(format!(
                "{} parameters given, the optimiser holds state for {}",
                params.len(),
                self.state.len()
            )));
        }
        for (p, s) in params.iter().zip(&self.state) {
            if p.name != s.name {
                return Err(param_error(&p.name, format!("the optimiser's state at this position is {:?}'s", s.name)));
            }
            p.check_shape()?;
            if p.len() != s.m.len() {
                return Err(param_error(
                    &p.name,
                    format!("{} values, the optimiser's state holds {}", p.len(), s.m.len()),
                ));
            }
        }
        Ok(())
    }

    /// One optimisation step: updates every parameter from its gradient (`grads[i]` for `params[i]`)
    /// with the current learning rate, and counts the step. Nothing changes when it fails.
    ///
    /// # Errors
    /// As [`Optimizer::check_params`]; [`Error::InvalidParameter`] for another number of gradients than
    /// parameters; [`Error::OptimParam`] naming the parameter whose gradient has another length or holds
    /// a NaN or an infinity.
    pub fn step<G: AsRef<[f32]>>(&mut self, params: &mut [Param], grads: &[G]) -> Result<()> {
        self.check_params(params)?;
        if grads.len() != params.len() {
            return Err(invalid(format!("{} gradients for {} parameters", grads.len(), params.len())));
        }
        for (p, g) in params.iter().zip(grads) {
            let g = g.as_ref();
            if g.len() != p.len() {
                return Err(param_error(&p.name, format!("gradient of {} values for {} values", g.len(), p.len())));
            }
            if let Some(i) = g.iter().position(|x| !x.is_finite()) {
                return Err(param_error(&p.name, format!("gradient value {i} is {}", g[i])));
            }
        }
        let t = self.steps + 1;
        match self.config {
            OptimizerConfig::Sgd(c) => {
                for ((p, g), s) in params.iter_mut().zip(grads).zip(&mut self.state) {
                    sgd_update(&c, p.decay, &mut p.value, g.as_ref(), &mut s.m);
                }
            }
            OptimizerConfig::AdamW(c) => {
                // Bias corrections 1 − βᵗ in f64 (Kingma & Ba 2015, Algorithm 1).
                let bc1 = 1.0 - f64::from(c.betas.0).powf(t as f64);
                let bc2 = 1.0 - f64::from(c.betas.1).powf(t as f64);
                let step_size = (f64::from(c.lr) / bc1) as f32;
                let bc2_sqrt = bc2.sqrt() as f32;
                for ((p, g), s) in params.iter_mut().zip(grads).zip(&mut self.state) {
                    adamw_update(&c, step_size, bc2_sqrt, p.decay, &mut p.value, g.as_ref(), &mut s.m, &mut s.v);
                }
            }
        }
        self.steps = t;
        Ok(())
    }
}

/// `d = g + λθ`, `b ← μb + d`, `θ ← θ − η·b` (or `θ − η·(d + μb)` with Nesterov).
fn sgd_update(c: &SgdConfig, decay: bool, value: &mut [f32], grad: &[f32], buf: &mut [f32]) {
    let wd = if decay { c.weight_decay } else { 0.0 };
    for ((p, &g), b) in value.iter_mut().zip(grad).zip(buf.iter_mut()) {
        let d = if wd == 0.0 { g } else { g + wd * *p };
        *b = c.momentum * *b + d;
        let update = if c.nesterov { d + c.momentum * *b } else { *b };
        *p -= c.lr * update;
    }
}

/// `m ← β₁m + (1−β₁)g`, `v ← β₂v + (1−β₂)g²`, `θ ← θ(1 − ηλ) − (η/(1−β₁ᵗ))·m/(√v/√(1−β₂ᵗ) + ε)`.
#[allow(clippy::too_many_arguments)]
fn adamw_update(
    c: &AdamWConfig,
    step_size: f32,
    bc2_sqrt: f32,
    decay: bool,
    value: &mut [f32],
    grad: &[f32],
    m: &mut [f32],
    v: &mut [f32],
) {
    let (b1, b2) = c.betas;
    let shrink = if decay { 1.0 - c.lr * c.weight_decay } else { 1.0 };
    for (((p, &g), m), v) in value.iter_mut().zip(grad).zip(m.iter_mut()).zip(v.iter_mut()) {
        *m = b1 * *m + (1.0 - b1) * g;
        *v = b2 * *v + (1.0 - b2) * (g * g);
        let denom = v.sqrt() / bc2_sqrt + c.eps;
        *p = *p * shrink - step_size * (*m / denom);
    }
}

/// The global L2 norm of all gradients together, `√(Σᵢ Σⱼ gᵢⱼ²)`, summed in f64 in order.
///
/// # Errors
/// [`Error::OptimParam`] naming `gradient #i` (and the value's index) when a gradient holds a NaN or an
/// infinity.
pub fn grad_norm<G: AsRef<[f32]>>(grads: &[G]) -> Result<f32> {
    norm_f64(grads.iter().map(AsRef::as_ref)).map(|n| n as f32)
}

fn norm_f64<'a>(grads: impl Iterator<Item = &'a [f32]>) -> Result<f64> {
    let mut sum = 0.0f64;
    for (i, g) in grads.enumerate() {
        for (j, &x) in g.iter().enumerate() {
            if !x.is_finite() {
                return Err(param_error(
                    &format!("gradient #{i}"),
                    format!("value {j} is {x}: the norm is not finite"),
                ));
            }
            sum += f64::from(x) * f64::from(x);
        }
    }
    Ok(sum.sqrt())
}

/// Clips gradients by their global norm (Pascanu, Mikolov & Bengio 2013, "On the difficulty of
/// training recurrent neural networks"): when the L2 norm of all of them together exceeds `max_norm`,
/// every value is multiplied by `max_norm / norm`, which keeps the direction. Returns the norm before
/// clipping (to log; a spike shows an unstable run).
///
/// # Errors
/// [`Error::InvalidParameter`] unless `max_norm` is finite and > 0; [`Error::OptimParam`] naming the
/// gradient (`gradient #i`) holding a NaN or an infinity, nothing scaled.
pub fn clip_grad_norm<G: AsMut<[f32]>>(grads: &mut [G], max_norm: f32) -> Result<f32> {
    if !(max_norm.is_finite() && max_norm > 0.0) {
        return Err(invalid(format!("max_norm = {max_norm} must be finite and > 0")));
    }
    let norm = norm_f64(grads.iter_mut().map(|g| &*g.as_mut()))?;
    if norm > f64::from(max_norm) {
        let scale = (f64::from(max_norm) / norm) as f32;
        for g in grads.iter_mut() {
            for x in g.as_mut() {
                *x *= scale;
            }
        }
    }
    Ok(norm as f32)
}

/// A learning rate schedule: linear warm-up (Goyal et al. 2017, "Accurate, Large Minibatch SGD:
/// Training ImageNet in 1 Hour") from `peak_lr / warmup_steps` to `peak_lr`, then cosine decay
/// (Loshchilov & Hutter 2017, "SGDR: Stochastic Gradient Descent with Warm Restarts", without restarts)
/// from `peak_lr` to the floor `min_lr` at `total_steps`, and `min_lr` after.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CosineSchedule {
    /// The rate at the end of the warm-up.
    pub peak_lr: f32,
    /// The floor the cosine decays to (`0 ≤ min_lr ≤ peak_lr`).
    pub min_lr: f32,
    /// Steps of linear warm-up (0: none).
    pub warmup_steps: u64,
    /// The step at which the rate reaches `min_lr` (`≥ warmup_steps`).
    pub total_steps: u64,
}

impl CosineSchedule {
    /// A validated schedule.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for a negative or non-finite rate, `min_lr > peak_lr` or
    /// `warmup_steps > total_steps`.
    pub fn new(peak_lr: f32, min_lr: f32, warmup_steps: u64, total_steps: u64) -> Result<CosineSchedule> {
        let s = CosineSchedule { peak_lr, min_lr, warmup_steps, total_steps };
        s.validate()?;
        Ok(s)
    }

    /// Checks the ranges documented on the fields.
    ///
    /// # Errors
    /// As [`CosineSchedule::new`].
    pub fn validate(&self) -> Result<()> {
        check_non_negative("schedule peak_lr", self.peak_lr)?;
        check_non_negative("schedule min_lr", self.min_lr)?;
        if self.min_lr > self.peak_lr {
            return Err(invalid(format!("schedule min_lr = {} is above peak_lr = {}", self.min_lr, self.peak_lr)));
        }
        if self.warmup_steps > self.total_steps {
            return Err(invalid(format!(
                "schedule warmup_steps = {} is above total_steps = {}",
                self.warmup_steps, self.total_steps
            )));
        }
        Ok(())
    }

    /// The learning rate of the step taken after `step` steps (0 for the first step):
    ///
    /// * `step < warmup_steps`: `peak_lr · (step + 1) / warmup_steps` (no step at rate 0; `peak_lr` at the
    ///   last warm-up step);
    /// * `warmup_steps ≤ step < total_steps`: `min_lr + (peak_lr − min_lr) · ½(1 + cos(π·p))` with
    ///   `p = (step − warmup_steps) / (total_steps − warmup_steps)`;
    /// * `step ≥ total_steps`: `min_lr`.
    pub fn lr_at(&self, step: u64) -> f32 {
        let (peak, min) = (f64::from(self.peak_lr), f64::from(self.min_lr));
        if step < self.warmup_steps {
            (peak * (step + 1) as f64 / self.warmup_steps as f64) as f32
        } else if step >= self.total_steps {
            self.min_lr
        } else {
            let p = (step - self.warmup_steps) as f64 / (self.total_steps - self.warmup_steps) as f64;
            (min + (peak - min) * 0.5 * (1.0 + (std::f64::consts::PI * p).cos())) as f32
        }
    }
}

/// Gradient accumulation: sums the gradients of micro-batches (in the order added) and gives their mean,
/// the gradient of the whole batch when the loss is a mean over equally sized micro-batches.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GradAccumulator {
    sum: Vec<Vec<f32>>,
    count: usize,
}

impl GradAccumulator {
    /// An empty accumulator.
    pub fn new() -> GradAccumulator {
        GradAccumulator::default()
    }

    /// The number of micro-batches added since the last [`GradAccumulator::mean`].
    pub fn count(&self) -> usize {
        self.count
    }

    /// Adds one micro-batch's gradients (one slice per parameter). The first call fixes the number and
    /// lengths of the gradients; nothing changes when it fails.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for another number of gradients than the first micro-batch's;
    /// [`Error::OptimParam`] naming `gradient #i` for another length.
    pub fn add<G: AsRef<[f32]>>(&mut self, grads: &[G]) -> Result<()> {
        if self.count == 0 {
            self.sum = grads.iter().map(|g| g.as_ref().to_vec()).collect();
        } else {
            if grads.len() != self.sum.len() {
                return Err(invalid(format!(
                    "a micro-batch of {} gradients, the first one had {}",
                    grads.len(),
                    self.sum.len()
                )));
            }
            for (i, (s, g)) in self.sum.iter().zip(grads).enumerate() {
                if s.len() != g.as_ref().len() {
                    return Err(param_error(
                        &format!("gradient #{i}"),
                        format!("{} values in this micro-batch, {} in the first", g.as_ref().len(), s.len()),
                    ));
                }
            }
            for (s, g) in self.sum.iter_mut().zip(grads) {
                for (a, &b) in s.iter_mut().zip(g.as_ref()) {
                    *a += b;
                }
            }
        }
        self.count += 1;
        Ok(())
    }

    /// The mean of the gradients added (their sum divided by their number), and a reset for the next
    /// batch.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] when no micro-batch was added.
    pub fn mean(&mut self) -> Result<Vec<Vec<f32>>> {
        if self.count == 0 {
            return Err(invalid("gradient accumulation: no micro-batch to average"));
        }
        let n = self.count as f32;
        let mut sum = std::mem::take(&mut self.sum);
        self.count = 0;
        for x in sum.iter_mut().flatten() {
            *x /= n;
        }
        Ok(sum)
    }
}

/// The mean of several micro-batches' gradients ([`GradAccumulator`] in one call).
///
/// # Errors
/// As [`GradAccumulator::add`] and [`GradAccumulator::mean`].
pub fn mean_grads<G: AsRef<[f32]>, B: AsRef<[G]>>(micro_batches: &[B]) -> Result<Vec<Vec<f32>>> {
    let mut acc = GradAccumulator::new();
    for b in micro_batches {
        acc.add(b.as_ref())?;
    }
    acc.mean()
}
