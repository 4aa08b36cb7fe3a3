//! Gradient checking: the reverse-mode gradients of a scalar function on a `Tape<f64>` against
//! central finite differences (Baydin et al., JMLR 2018, §2; Griewank & Walther 2008, §1.2).
//!
//! For every value `x_j` of every input, `(f(x + h·e_j) − f(x − h·e_j)) / 2h` approximates
//! `∂f/∂x_j` with a truncation error `O(h²·f‴)` and a rounding error `O(ε·|f|/h)`; in f64, with
//! `h = 10⁻⁶` and inputs and losses of order one, both are around `10⁻¹⁰`.

use super::{Tape, Var, shape_error};
use crate::{Error, Result};

/// How [`gradcheck`] differentiates and compares.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GradCheckConfig {
    /// The finite-difference step `h` (default `1e-6`).
    pub eps: f64,
    /// The relative error of a value is `|analytic − numeric| / max(|analytic|, |numeric|, rel_floor)`:
    /// relative for gradients larger than `rel_floor`, absolute (divided by `rel_floor`) for smaller
    /// ones, whose finite differences are mostly rounding noise (default `1e-2`).
    pub rel_floor: f64,
}

impl Default for GradCheckConfig {
    fn default() -> Self {
        Self { eps: 1e-6, rel_floor: 1e-2 }
    }
}

/// The comparison for one input.
#[derive(Clone, Debug, PartialEq)]
pub struct InputCheck {
    /// The largest `|analytic − numeric|` over the input's values.
    pub max_abs: f64,
    /// The largest relative error (see [`GradCheckConfig::rel_floor`]); NaN when a gradient was NaN.
    pub max_rel: f64,
    /// The index of the value with the largest relative error.
    pub worst: usize,
    /// The reverse-mode gradient at `worst`.
    pub analytic: f64,
    /// The finite-difference gradient at `worst`.
    pub numeric: f64,
}

/// What [`gradcheck`] found: the loss at the given inputs and one [`InputCheck`] per input.
#[derive(Clone, Debug, PartialEq)]
pub struct GradCheck {
    /// The function's value at the given inputs.
    pub loss: f64,
    /// One comparison per input, in the order given.
    pub inputs: Vec<InputCheck>,
}

impl GradCheck {
    /// The largest absolute error over every input (NaN if any is NaN).
    pub fn max_abs(&self) -> f64 {
        self.inputs.iter().map(|c| c.max_abs).fold(0.0, worst_of)
    }

    /// The largest relative error over every input (NaN if any is NaN).
    pub fn max_rel(&self) -> f64 {
        self.inputs.iter().map(|c| c.max_rel).fold(0.0, worst_of)
    }
}

/// The larger of the two, NaN winning (a NaN error must not hide behind a finite one).
fn worst_of(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() { f64::NAN } else { a.max(b) }
}

/// Checks the gradients of `f`, a scalar function of `inputs` (values and shape of each), against
/// central finite differences.
///
/// `f` builds the function on a fresh tape from one leaf per input (in order) and returns its
/// one-valued result; it is called once for the reverse-mode gradients and twice per input value.
///
/// # Errors
/// [`crate::Error::InvalidParameter`] when `eps` or `rel_floor` is not finite and > 0;
/// [`crate::Error::TrainShape`] when an input's values do not fill its shape (op `leaf`), or the
/// result does not have exactly one value (op `gradcheck`); any error of `f`.
pub fn gradcheck<F>(inputs: &[(&[f64], &[usize])], config: GradCheckConfig, f: F) -> Result<GradCheck>
where
    F: Fn(&mut Tape<f64>, &[Var]) -> Result<Var>,
{
    let GradCheckConfig { eps, rel_floor } = config;
    if !(eps > 0.0 && eps.is_finite() && rel_floor > 0.0 && rel_floor.is_finite()) {
        return Err(Error::InvalidParameter(format!(
            "gradcheck: eps {eps} and rel_floor {rel_floor} must be finite and > 0"
        )));
    }
    let mut tape = Tape::new();
    let vars = leaves(&mut tape, inputs, None)?;
    let out = f(&mut tape, &vars)?;
    let loss = scalar(&tape, out)?;
    let grads = tape.backward(out)?;
    let mut checks = Vec::with_capacity(inputs.len());
    for (i, &(values, _)) in inputs.iter().enumerate() {
        let analytic = grads.get(vars[i]);
        let mut check = InputCheck { max_abs: 0.0, max_rel: 0.0, worst: 0, analytic: 0.0, numeric: 0.0 };
        for (j, &x) in values.iter().enumerate() {
            let (xp, xm) = (x + eps, x - eps);
            let fp = evaluate(inputs, (i, j, xp), &f)?;
            let fm = evaluate(inputs, (i, j, xm), &f)?;
            let numeric = (fp - fm) / (xp - xm);
            let a = analytic.map_or(0.0, |g| g[j]);
            let abs = (a - numeric).abs();
            let rel = abs / a.abs().max(numeric.abs()).max(rel_floor);
            if !check.max_rel.is_nan() && (rel.is_nan() || rel > check.max_rel) {
                (check.max_rel, check.worst, check.analytic, check.numeric) = (rel, j, a, numeric);
            }
            check.max_abs = worst_of(check.max_abs, abs);
        }
        checks.push(check);
    }
    Ok(GradCheck { loss, inputs: checks })
}

/// One leaf per input, value `j` of input `i` replaced by `x` when `change` is `Some((i, j, x))`.
fn leaves(
    tape: &mut Tape<f64>,
    inputs: &[(&[f64], &[usize])],
    change: Option<(usize, usize, f64)>,
) -> Result<Vec<Var>> {
    inputs
        .iter()
        .enumerate()
        .map(|(i, &(values, shape))| {
            let mut v = values.to_vec();
            if let Some((ci, j, x)) = change
                && ci == i
            {
                v[j] = x;
            }
            tape.leaf(v, shape)
        })
        .collect()
}

/// The single value of `out`, or an error.
fn scalar(tape: &Tape<f64>, out: Var) -> Result<f64> {
    tape.id(out, "gradcheck")?;
    match tape.value(out) {
        &[x] => Ok(x),
        other => Err(shape_error(
            "gradcheck",
            format!(
                "the function must return one value, it returned shape {:?} ({} values)",
                tape.shape(out),
                other.len()
            ),
        )),
    }
}

/// `f` at the inputs with one value changed.
fn evaluate<F>(inputs: &[(&[f64], &[usize])], change: (usize, usize, f64), f: &F) -> Result<f64>
where
    F: Fn(&mut Tape<f64>, &[Var]) -> Result<Var>,
{
    let mut tape = Tape::new();
    let vars = leaves(&mut tape, inputs, Some(change))?;
    let out = f(&mut tape, &vars)?;
    scalar(&tape, out)
}
