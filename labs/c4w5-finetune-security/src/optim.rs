//! AdamW and global-norm gradient clipping (task `c4w5.adamw`, 16 points).
//!
//! AdamW (Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019, Algorithm 2) is
//! Adam (Kingma & Ba, ICLR 2015) whose weight decay acts on the weights, not through the gradient.
//! With `t` the step number (1 for the first step), `g` the gradient, `θ` the parameter, `η` the
//! learning rate and `λ` the weight decay, per value:
//!
//! ```text
//! m ← β₁·m + (1 − β₁)·g
//! v ← β₂·v + (1 − β₂)·g²
//! θ ← θ·(1 − η·λ) − (η / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε)
//! ```
//!
//! The bias corrections `1 − βᵗ` undo the zero start of the moments. The decay is multiplied by the
//! learning rate, as PyTorch's `AdamW` and `kernels::train::optim` do. Clipping (Pascanu, Mikolov &
//! Bengio 2013) rescales every gradient by `max_norm / ‖g‖` when the L2 norm of all of them together
//! exceeds `max_norm`, which keeps the update's direction.

use crate::{Error, Result, shape};

/// AdamW's hyper-parameters. The default is PyTorch's.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamWConfig {
    /// Learning rate `η` (finite, ≥ 0).
    pub lr: f64,
    /// `β₁`, the decay rate of the first moment, in `[0, 1)`.
    pub beta1: f64,
    /// `β₂`, the decay rate of the second moment, in `[0, 1)`.
    pub beta2: f64,
    /// `ε` added to the corrected `√v` (finite, > 0).
    pub eps: f64,
    /// Decoupled weight decay `λ` (finite, ≥ 0).
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01 }
    }
}

impl AdamWConfig {
    /// Checks the ranges documented on the fields. Given.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the field.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: &str, v: f64| Err(Error::InvalidConfig(format!("AdamW {what} = {v}")));
        if !(self.lr.is_finite() && self.lr >= 0.0) {
            return bad("lr", self.lr);
        }
        if !(0.0..1.0).contains(&self.beta1) {
            return bad("beta1", self.beta1);
        }
        if !(0.0..1.0).contains(&self.beta2) {
            return bad("beta2", self.beta2);
        }
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return bad("eps", self.eps);
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad("weight_decay", self.weight_decay);
        }
        Ok(())
    }
}

/// AdamW's state for a fixed list of parameters: the moments of each value and the steps taken.
#[derive(Clone, Debug, PartialEq)]
pub struct AdamW {
    config: AdamWConfig,
    steps: u64,
    m: Vec<Vec<f64>>,
    v: Vec<Vec<f64>>,
}

impl AdamW {
    /// An optimiser for parameters of the given lengths, with zeroed moments and no step taken. Given.
    ///
    /// # Errors
    /// As [`AdamWConfig::validate`].
    pub fn new(config: AdamWConfig, lens: &[usize]) -> Result<AdamW> {
        config.validate()?;
        let zeros = || lens.iter().map(|&n| vec![0.0; n]).collect();
        Ok(AdamW { config, steps: 0, m: zeros(), v: zeros() })
    }

    /// The number of steps taken.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The first moments, one vector per parameter.
    pub fn first_moments(&self) -> &[Vec<f64>] {
        &self.m
    }

    /// The second moments, one vector per parameter.
    pub fn second_moments(&self) -> &[Vec<f64>] {
        &self.v
    }

    // ANCHOR: step
    /// One AdamW step (task `c4w5.adamw`): updates every value of every parameter from its gradient
    /// with the formulas of the module docs, then counts the step.
    ///
    /// Compute the bias corrections once per step: `bc1 = 1 − β₁ᵗ` and `bc2 = 1 − β₂ᵗ` with
    /// `β.powf(t as f64)`, the step size `η / bc1` and `√bc2`; then per value exactly
    /// `θ·(1 − η·λ) − step_size·(m / (√v / √bc2 + ε))`. The hidden tests follow a reference written
    /// this way for 100 steps to `1e-12`.
    ///
    /// # Errors
    /// [`Error::Shape`] (op `adamw`) when `params` or `grads` do not have one entry per parameter of
    /// [`AdamW::new`], or an entry has another length; [`Error::InvalidInput`] naming the parameter
    /// and index of a gradient value that is NaN or infinite. On an error nothing changes (not the
    /// parameters, not the moments, not the step count).
    pub fn step(&mut self, params: &mut [Vec<f64>], grads: &[Vec<f64>]) -> Result<()> {
        todo!("c4w5.adamw")
    }
    // ANCHOR_END: step
}

/// Clips `grads` by their global L2 norm (task `c4w5.adamw`): `norm = √(Σᵢ Σⱼ gᵢⱼ²)` over all of them
/// together; when `norm > max_norm`, every value is multiplied by `max_norm / norm`. Returns the norm
/// before clipping (log it: a spike shows an unstable run).
///
/// # Errors
/// [`Error::InvalidConfig`] unless `max_norm` is finite and > 0; [`Error::InvalidInput`] when a value
/// is NaN or infinite (nothing is scaled then).
pub fn clip_grad_norm(grads: &mut [Vec<f64>], max_norm: f64) -> Result<f64> {
    todo!("c4w5.adamw")
}
