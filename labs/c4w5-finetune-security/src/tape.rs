//! A small reverse-mode tape over row-major `f64` matrices (task `c4w5.matmul-backward`, 16 points).
//!
//! Each op computes its value at once and records the values it read. [`Tape::backward`] walks the
//! tape from the loss back to the leaves; each op turns the gradient of its output, `∂L/∂out`, into
//! vector–Jacobian products for its inputs, and a value read by several ops adds up their
//! contributions (Baydin et al., "Automatic differentiation in machine learning: a survey", JMLR
//! 2018, §3.2; Griewank & Walther, "Evaluating Derivatives", 2008, ch. 3).
//!
//! The forward ops, the walk and the accumulation are given. You write the two backward passes the
//! walk calls: [`matmul_backward`] (`dA = dC·Bᵀ`, `dB = Aᵀ·dC`) and [`add_row_backward`] (the row
//! vector's gradient is the column sum of `dC`).

use crate::{Result, shape};

/// A value on a [`Tape`]: a handle, cheap to copy, valid only on the tape that made it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Var(usize);

/// What made a value and which values (node indices) it read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    /// An input.
    Leaf,
    /// `a·b`.
    MatMul { a: usize, b: usize },
    /// `x + 1·row` (the `1 × cols` row added to every row of `x`).
    AddRow { x: usize, row: usize },
    /// The sum of every value of `a` (a `1 × 1` value).
    Sum { a: usize },
}

/// One recorded value: its values (row-major), its shape and the op that made it.
#[derive(Clone, Debug)]
struct Node {
    value: Vec<f64>,
    rows: usize,
    cols: usize,
    op: Op,
}

/// A tape of matrix operations, recorded as they run, for reverse-mode differentiation.
#[derive(Clone, Debug, Default)]
pub struct Tape {
    nodes: Vec<Node>,
}

/// The gradients [`Tape::backward`] computed: one per value the loss depends on.
#[derive(Clone, Debug)]
pub struct Grads {
    slots: Vec<Option<Vec<f64>>>,
}

impl Grads {
    /// `∂loss/∂v` (same shape as `v`), or `None` when the loss does not depend on `v`.
    pub fn get(&self, v: Var) -> Option<&[f64]> {
        self.slots.get(v.0)?.as_deref()
    }
}

// ANCHOR: matmul
/// `C = A·B` with `A` `m × k`, `B` `k × n`, row-major; `C` is `m × n`. Given.
///
/// The `i, p, j` loop order reads `B` and writes `C` along rows, which the compiler vectorises.
pub fn matmul(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
    let mut c = vec![0.0; m * n];
    for i in 0..m {
        let c_row = &mut c[i * n..(i + 1) * n];
        for p in 0..k {
            let x = a[i * k + p];
            for (c, &y) in c_row.iter_mut().zip(&b[p * n..(p + 1) * n]) {
                *c += x * y;
            }
        }
    }
    c
}
// ANCHOR_END: matmul

// ANCHOR: matmul_backward
/// The backward pass of `C = A·B` (task `c4w5.matmul-backward`): given `A` (`m × k`), `B` (`k × n`)
/// and `dC = ∂L/∂C` (`m × n`), returns `(dA, dB)` with
///
/// * `dA = dC·Bᵀ` (`m × k`): `dA[i][p] = Σ_j dC[i][j]·B[p][j]`,
/// * `dB = Aᵀ·dC` (`k × n`): `dB[p][j] = Σ_i A[i][p]·dC[i][j]`.
///
/// Both are matrix products: the backward of one matmul costs two more of the same size. The
/// slices have the lengths the shapes imply (the tape checked them).
pub fn matmul_backward(a: &[f64], b: &[f64], dc: &[f64], m: usize, k: usize, n: usize) -> (Vec<f64>, Vec<f64>) {
    todo!("c4w5.matmul-backward")
}
// ANCHOR_END: matmul_backward

/// The backward pass of `Y = X + 1·r` (task `c4w5.matmul-backward`), the row `r` (`1 × cols`) added
/// to each of the `rows` rows of `X`: given `dY` (`rows × cols`), returns `(dX, dr)` with `dX = dY`
/// and `dr[j] = Σ_i dY[i][j]` (a broadcast input receives the sum over the copies it made).
pub fn add_row_backward(dy: &[f64], rows: usize, cols: usize) -> (Vec<f64>, Vec<f64>) {
    todo!("c4w5.matmul-backward")
}

impl Tape {
    /// An empty tape.
    pub fn new() -> Self {
        Self::default()
    }

    /// An input of `rows × cols` values (row-major).
    ///
    /// # Errors
    /// [`crate::Error::Shape`] (op `leaf`) when `values.len()` is not `rows·cols`.
    pub fn leaf(&mut self, values: Vec<f64>, rows: usize, cols: usize) -> Result<Var> {
        if values.len() != rows * cols {
            return Err(shape("leaf", format!("{} values for [{rows}, {cols}]", values.len())));
        }
        Ok(self.push(values, rows, cols, Op::Leaf))
    }

    /// The values of `v`, row-major.
    ///
    /// # Panics
    /// If `v` was not made by this tape.
    pub fn value(&self, v: Var) -> &[f64] {
        &self.nodes[v.0].value
    }

    /// The shape `(rows, cols)` of `v`.
    ///
    /// # Panics
    /// If `v` was not made by this tape.
    pub fn shape(&self, v: Var) -> (usize, usize) {
        let n = &self.nodes[v.0];
        (n.rows, n.cols)
    }

    fn node(&self, v: Var, op: &'static str) -> Result<&Node> {
        self.nodes.get(v.0).ok_or_else(|| shape(op, format!("{v:?} is not a value of this tape")))
    }

    fn push(&mut self, value: Vec<f64>, rows: usize, cols: usize, op: Op) -> Var {
        self.nodes.push(Node { value, rows, cols, op });
        Var(self.nodes.len() - 1)
    }

    /// `a·b`: `a` is `m × k`, `b` `k × n`, the product `m × n`.
    ///
    /// # Errors
    /// [`crate::Error::Shape`] (op `matmul`) when the inner dimensions differ.
    pub fn matmul(&mut self, a: Var, b: Var) -> Result<Var> {
        let (na, nb) = (self.node(a, "matmul")?, self.node(b, "matmul")?);
        if na.cols != nb.rows {
            return Err(shape("matmul", format!("[{}, {}]·[{}, {}]", na.rows, na.cols, nb.rows, nb.cols)));
        }
        let (m, k, n) = (na.rows, na.cols, nb.cols);
        let c = matmul(&na.value, &nb.value, m, k, n);
        Ok(self.push(c, m, n, Op::MatMul { a: a.0, b: b.0 }))
    }

    /// `x + 1·row`: the `1 × cols` value `row` added to every row of `x` (a bias).
    ///
    /// # Errors
    /// [`crate::Error::Shape`] (op `add_row`) unless `row` is `1 × cols` with `x`'s `cols`.
    pub fn add_row(&mut self, x: Var, row: Var) -> Result<Var> {
        let (nx, nr) = (self.node(x, "add_row")?, self.node(row, "add_row")?);
        if nr.rows != 1 || nr.cols != nx.cols {
            return Err(shape("add_row", format!("[{}, {}] + [{}, {}]", nx.rows, nx.cols, nr.rows, nr.cols)));
        }
        let mut y = nx.value.clone();
        if nx.cols > 0 {
            for chunk in y.chunks_exact_mut(nx.cols) {
                for (y, &r) in chunk.iter_mut().zip(&nr.value) {
                    *y += r;
                }
            }
        }
        let (rows, cols) = (nx.rows, nx.cols);
        Ok(self.push(y, rows, cols, Op::AddRow { x: x.0, row: row.0 }))
    }

    /// The sum of every value of `a`, a `1 × 1` value (a loss).
    ///
    /// # Errors
    /// [`crate::Error::Shape`] (op `sum`) when `a` is not on this tape.
    pub fn sum(&mut self, a: Var) -> Result<Var> {
        let s = self.node(a, "sum")?.value.iter().sum();
        Ok(self.push(vec![s], 1, 1, Op::Sum { a: a.0 }))
    }

    // ANCHOR: backward
    /// Reverse-mode gradients of the `1 × 1` value `loss` with respect to every value it depends on.
    ///
    /// The walk goes from `loss` down to the first node: a node made after `loss` cannot influence it,
    /// and every input of a node was made before it, so each node's gradient is complete when the walk
    /// reaches it. Contributions to a value read twice are added.
    ///
    /// # Errors
    /// [`crate::Error::Shape`] (op `backward`) when `loss` is not a `1 × 1` value of this tape.
    pub fn backward(&self, loss: Var) -> Result<Grads> {
        let l = self.node(loss, "backward")?;
        if (l.rows, l.cols) != (1, 1) {
            return Err(shape("backward", format!("the loss must be [1, 1], it is [{}, {}]", l.rows, l.cols)));
        }
        let mut slots: Vec<Option<Vec<f64>>> = vec![None; self.nodes.len()];
        slots[loss.0] = Some(vec![1.0]);
        for i in (0..=loss.0).rev() {
            let Some(g) = slots[i].clone() else { continue };
            let node = &self.nodes[i];
            match node.op {
                Op::Leaf => {}
                Op::MatMul { a, b } => {
                    let (na, nb) = (&self.nodes[a], &self.nodes[b]);
                    let (da, db) = matmul_backward(&na.value, &nb.value, &g, na.rows, na.cols, nb.cols);
                    accumulate(&mut slots, a, da, na.value.len())?;
                    accumulate(&mut slots, b, db, nb.value.len())?;
                }
                Op::AddRow { x, row } => {
                    let (dx, dr) = add_row_backward(&g, node.rows, node.cols);
                    accumulate(&mut slots, x, dx, self.nodes[x].value.len())?;
                    accumulate(&mut slots, row, dr, self.nodes[row].value.len())?;
                }
                Op::Sum { a } => {
                    let n = self.nodes[a].value.len();
                    accumulate(&mut slots, a, vec![g[0]; n], n)?;
                }
            }
        }
        Ok(Grads { slots })
    }
    // ANCHOR_END: backward
}

/// Adds `contribution` to the gradient of node `id` (the first contribution is moved in).
fn accumulate(slots: &mut [Option<Vec<f64>>], id: usize, contribution: Vec<f64>, len: usize) -> Result<()> {
    if contribution.len() != len {
        return Err(shape("backward", format!("a gradient of {} values for a value of {len}", contribution.len())));
    }
    match &mut slots[id] {
        Some(g) => {
            for (g, c) in g.iter_mut().zip(contribution) {
                *g += c;
            }
        }
        slot @ None => *slot = Some(contribution),
    }
    Ok(())
}
