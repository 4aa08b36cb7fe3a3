//! A LoRA linear layer (task `c4w5.lora`, 18 points): Hu et al., "LoRA: Low-Rank Adaptation of Large
//! Language Models", 2021.
//!
//! Beside a frozen weight `W` (`out × in`), two small trainable matrices `A` (`r × in`) and `B`
//! (`out × r`), with `s = α / r`:
//!
//! ```text
//! y = x·Wᵀ + s·(x·Aᵀ)·Bᵀ          x: rows × in, y: rows × out
//! ```
//!
//! `A` starts Kaiming-uniform (PyTorch's `kaiming_uniform_(a=√5)` as PEFT uses it: uniform in
//! `±1/√in`) and `B` at zero, so training starts from the base model exactly. Only `A` and `B` get
//! gradients: `r·(in + out)` values instead of `in·out`. After training, `W + s·B·A` is the merged
//! weight, served at the base model's cost; [`LoraLinear::unmerge`] subtracts it again.

use crate::{Error, Result, shape};

/// The adapter's hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LoraConfig {
    /// The rank `r` (≥ 1, at most `min(in, out)`).
    pub rank: usize,
    /// `α`; the adapter's output is scaled by `α / r` (finite, > 0).
    pub alpha: f64,
    /// The seed of `A`'s initialisation.
    pub seed: u64,
}

/// The gradients of one backward pass.
#[derive(Clone, Debug, PartialEq)]
pub struct LoraGrads {
    /// `∂L/∂A`, `r × in`.
    pub a: Vec<f64>,
    /// `∂L/∂B`, `out × r`.
    pub b: Vec<f64>,
    /// `∂L/∂x`, `rows × in` (through both the frozen and the adapter branch).
    pub x: Vec<f64>,
}

/// A linear layer with a frozen weight and a LoRA adapter.
#[derive(Clone, Debug, PartialEq)]
pub struct LoraLinear {
    w: Vec<f64>,
    a: Vec<f64>,
    b: Vec<f64>,
    out_features: usize,
    in_features: usize,
    config: LoraConfig,
    merged: bool,
}

/// splitmix64 (Steele, Lea & Flood, OOPSLA 2014): the seeded stream `A` is drawn from. Given.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `Σ a_i·b_i` with four running sums (which the compiler can keep in vector registers). Given.
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut s = [0.0; 4];
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let tail: f64 = ca.remainder().iter().zip(cb.remainder()).map(|(&x, &y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..4 {
            s[l] += x[l] * y[l];
        }
    }
    (s[0] + s[1]) + (s[2] + s[3]) + tail
}

/// `y += c·x`. Given.
pub fn axpy(c: f64, x: &[f64], y: &mut [f64]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y += c * x;
    }
}

impl LoraLinear {
    /// A layer over the frozen `w` (`out_features × in_features`, row-major, as PyTorch and GGUF store
    /// a Linear weight) with `A` drawn uniform in `±1/√in` from `config.seed` (value `k` of `A`,
    /// row-major, is `(2u − 1)/√in` with `u` the `k`-th draw of splitmix64 from the seed, taking its
    /// top 53 bits over 2⁵³) and `B` zero. Given.
    ///
    /// # Errors
    /// [`Error::Shape`] (op `lora.new`) when `w` does not hold `out·in` values;
    /// [`Error::InvalidConfig`] for a rank of 0 or above `min(in, out)`, or `α` not finite and > 0.
    pub fn new(w: Vec<f64>, out_features: usize, in_features: usize, config: LoraConfig) -> Result<LoraLinear> {
        if w.len() != out_features * in_features {
            return Err(shape("lora.new", format!("{} weight values for [{out_features}, {in_features}]", w.len())));
        }
        let r = config.rank;
        if r == 0 || r > out_features.min(in_features) {
            return Err(Error::InvalidConfig(format!(
                "rank {r} must be in 1..={} for a [{out_features}, {in_features}] weight",
                out_features.min(in_features)
            )));
        }
        if !(config.alpha.is_finite() && config.alpha > 0.0) {
            return Err(Error::InvalidConfig(format!("alpha = {} must be finite and > 0", config.alpha)));
        }
        let bound = 1.0 / (in_features as f64).sqrt();
        let mut s = config.seed;
        let a = (0..r * in_features)
            .map(|_| {
                let u = (splitmix(&mut s) >> 11) as f64 / (1u64 << 53) as f64;
                (2.0 * u - 1.0) * bound
            })
            .collect();
        let b = vec![0.0; out_features * r];
        Ok(LoraLinear { w, a, b, out_features, in_features, config, merged: false })
    }

    /// The configuration.
    pub fn config(&self) -> &LoraConfig {
        &self.config
    }

    /// `α / r`.
    pub fn scale(&self) -> f64 {
        self.config.alpha / self.config.rank as f64
    }

    /// `(out_features, in_features)`.
    pub fn dims(&self) -> (usize, usize) {
        (self.out_features, self.in_features)
    }

    /// The frozen weight (`out × in`; merged, after [`LoraLinear::merge`]).
    pub fn w(&self) -> &[f64] {
        &self.w
    }

    /// `A`, `r × in`.
    pub fn a(&self) -> &[f64] {
        &self.a
    }

    /// `B`, `out × r`.
    pub fn b(&self) -> &[f64] {
        &self.b
    }

    /// `A`, to update it (an optimiser step).
    pub fn a_mut(&mut self) -> &mut [f64] {
        &mut self.a
    }

    /// `B`, to update it (an optimiser step).
    pub fn b_mut(&mut self) -> &mut [f64] {
        &mut self.b
    }

    /// Whether the adapter is merged into `W`.
    pub fn is_merged(&self) -> bool {
        self.merged
    }

    // ANCHOR: forward
    /// `y = x·Wᵀ + s·(x·Aᵀ)·Bᵀ` for `rows` rows of `x` (`rows × in`), `rows × out` (task `c4w5.lora`).
    /// When merged, `W` already holds the adapter: `y = x·Wᵀ`.
    ///
    /// # Errors
    /// [`Error::Shape`] (op `lora.forward`) when `x` does not hold `rows·in` values.
    pub fn forward(&self, x: &[f64], rows: usize) -> Result<Vec<f64>> {
        todo!("c4w5.lora")
    }
    // ANCHOR_END: forward

    // ANCHOR: backward
    /// The backward pass of [`LoraLinear::forward`] (task `c4w5.lora`): given `dy = ∂L/∂y`
    /// (`rows × out`) at input `x`, with `h = x·Aᵀ` (`rows × r`):
    ///
    /// * `dB = s·dyᵀ·h` (`out × r`),
    /// * `dh = s·dy·B` (`rows × r`), `dA = dhᵀ·x` (`r × in`),
    /// * `dx = dy·W + dh·A` (`rows × in`).
    ///
    /// `W` gets no gradient: it is frozen.
    ///
    /// # Errors
    /// [`Error::Shape`] (op `lora.backward`) when `x` or `dy` do not hold `rows·in` and `rows·out`
    /// values; [`Error::InvalidInput`] when the adapter is merged (unmerge first: `W` then holds `B·A`).
    pub fn backward(&self, x: &[f64], rows: usize, dy: &[f64]) -> Result<LoraGrads> {
        todo!("c4w5.lora")
    }
    // ANCHOR_END: backward

    /// Merges the adapter into `W`: `W ← W + s·B·A` (task `c4w5.lora`). The forward pass then costs
    /// what the base layer costs and gives the same output (up to rounding).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when already merged (merging twice would add `s·B·A` twice).
    pub fn merge(&mut self) -> Result<()> {
        todo!("c4w5.lora")
    }

    /// Undoes [`LoraLinear::merge`]: `W ← W − s·B·A` (task `c4w5.lora`), equal to the base weight up to
    /// rounding.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when not merged.
    pub fn unmerge(&mut self) -> Result<()> {
        todo!("c4w5.lora")
    }
}
