//! Gradient checking by central finite differences (task `c4w5.gradcheck`, 12 points).
//!
//! A backward pass is code, and code has bugs that training hides: a wrong gradient still lowers the
//! loss for a while. The check is cheap to state: for every value `x_j` of every input,
//! `(f(x + h·e_j) − f(x − h·e_j)) / 2h` approximates `∂f/∂x_j` with a truncation error `O(h²·f‴)`
//! and a rounding error `O(ε_mach·|f| / h)`; in `f64` with `h = 10⁻⁶` both are near `10⁻¹⁰`
//! (Baydin et al., JMLR 2018, §2). It costs two evaluations of `f` per input value, so it is run on
//! small shapes, once per op, as `kernels::train::autograd::gradcheck` does.

use crate::{Error, Result, shape};

/// How [`gradcheck`] differentiates and compares.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GradCheckConfig {
    /// The finite-difference step `h` (default `1e-6`).
    pub eps: f64,
    /// A value's relative error is `|analytic − numeric| / max(|analytic|, |numeric|, rel_floor)`:
    /// relative for gradients above `rel_floor`, absolute (over `rel_floor`) below it, where the
    /// difference quotient is mostly rounding noise (default `1e-2`).
    pub rel_floor: f64,
}

impl Default for GradCheckConfig {
    fn default() -> Self {
        Self { eps: 1e-6, rel_floor: 1e-2 }
    }
}

/// What [`gradcheck`] found.
#[derive(Clone, Debug, PartialEq)]
pub struct GradCheck {
    /// `f` at the inputs as given.
    pub loss: f64,
    /// The largest `|analytic − numeric|` over every value of every input (NaN if any was NaN).
    pub max_abs: f64,
    /// The largest relative error (see [`GradCheckConfig::rel_floor`]; NaN if any was NaN).
    pub max_rel: f64,
    /// The input holding the value of the largest relative error (the first NaN if there is one).
    pub worst_input: usize,
    /// That value's index in its input.
    pub worst_index: usize,
    /// The analytic gradient there.
    pub analytic: f64,
    /// The finite-difference gradient there.
    pub numeric: f64,
}

// ANCHOR: gradcheck
/// Compares the `analytic` gradients of the scalar function `f` at `inputs` (`analytic[i]` has the
/// length of `inputs[i]`) with central finite differences, over every value of every input (task
/// `c4w5.gradcheck`).
///
/// For value `j` of input `i`: `xp = x + eps`, `xm = x − eps`, `numeric = (f(…xp…) − f(…xm…)) / (xp − xm)`
/// (dividing by `xp − xm`, the step actually taken after rounding, rather than `2·eps`), the other
/// values unchanged; then `abs = |a − numeric|` and `rel = abs / max(|a|, |numeric|, rel_floor)`.
/// The report keeps the largest of each; a NaN anywhere makes the maximum NaN (a NaN gradient must
/// never pass a check), and the worst position is the first one with the largest `rel` (or the first
/// NaN). With no value at all, both maxima are `0` and the worst position is `(0, 0)`.
///
/// # Errors
/// [`Error::InvalidConfig`] unless `eps` and `rel_floor` are finite and > 0; [`Error::Shape`] (op
/// `gradcheck`) when `analytic` has another number of inputs or of values than `inputs`; any error
/// of `f`.
pub fn gradcheck<F>(inputs: &[Vec<f64>], analytic: &[Vec<f64>], config: GradCheckConfig, f: F) -> Result<GradCheck>
where
    F: Fn(&[Vec<f64>]) -> Result<f64>,
{
    todo!("c4w5.gradcheck")
}
// ANCHOR_END: gradcheck
