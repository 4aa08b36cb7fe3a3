//! Batch prediction: a [`FlatModel`] applied to every row of a matrix, by blocks of rows (a block
//! walks one tree at a time, so the tree's top levels stay in cache for the whole block) spread over
//! `std::thread::scope` workers. The scores equal [`FlatModel::predict_row_into`]'s bit for bit.

use crate::flat::{FlatModel, LEAF};
use crate::{Matrix, Result, invalid};

/// Rows per block: 64 rows × a few features fit in L1 beside a tree's top levels.
pub const BLOCK: usize = 64;

// ANCHOR: predict_batch
/// **Task `c3w4.batch-predict` (10 points, and half of `c3w4.serving-bench`).** Every row's scores,
/// row-major `rows × n_outputs`, equal bit for bit to calling [`FlatModel::predict_row_into`] on each
/// row (and to kernels' `FlatForest::predict_batch_all`).
///
/// Use up to `threads` workers (`0` means `std::thread::available_parallelism()`): split the output
/// into chunks of whole [`BLOCK`]s, one range of blocks per worker, inside `std::thread::scope`.
/// Within a block, loop trees outside and rows inside, accumulating in f64 per row and output, then
/// divide by the number of trees. A matrix with zero rows gives an empty vector.
///
/// # Errors
/// [`crate::Error::InvalidInput`] when `x` does not have `n_features` columns or the model has no
/// tree.
pub fn predict_batch(model: &FlatModel, x: &Matrix, threads: usize) -> Result<Vec<f32>> {
    // BEGIN SOLUTION c3w4.batch-predict
    if x.cols() != model.n_features {
        return invalid(format!("x has {} columns, the model takes {}", x.cols(), model.n_features));
    }
    if model.roots.is_empty() {
        return invalid("the model has no tree");
    }
    let k = model.n_outputs;
    let rows = x.rows();
    let mut out = vec![0.0f32; rows * k];
    if rows == 0 {
        return Ok(out);
    }
    let threads = if threads == 0 { std::thread::available_parallelism().map_or(1, |n| n.get()) } else { threads };
    // The struct-of-arrays layout packed once per call into 16-byte nodes: one cache line holds
    // four whole nodes, where five separate arrays cost five loads per step.
    let nodes: Vec<Node> = (0..model.feature.len())
        .map(|i| Node {
            threshold: model.threshold[i],
            feature: model.feature[i] | if model.nan_left[i] { NAN_LEFT } else { 0 },
            children: [model.right[i], model.left[i]],
        })
        .collect();
    let packed = Packed { model, nodes: &nodes };
    let blocks = rows.div_ceil(BLOCK);
    let per_worker = blocks.div_ceil(threads.max(1));
    std::thread::scope(|s| {
        for (w, chunk) in out.chunks_mut(per_worker * BLOCK * k).enumerate() {
            let first_row = w * per_worker * BLOCK;
            let packed = &packed;
            s.spawn(move || {
                let mut acc = vec![0.0f64; BLOCK * k];
                for (b, o) in chunk.chunks_mut(BLOCK * k).enumerate() {
                    let first = first_row + b * BLOCK;
                    let n = o.len() / k;
                    packed.predict_block(x, first, &mut acc[..n * k], o);
                }
            });
        }
    });
    Ok(out)
    // END SOLUTION
}
// ANCHOR_END: predict_batch

// BEGIN SOLUTION c3w4.batch-predict delete
/// Trees one row walks together.
const LANES: usize = 8;
/// In [`Node::feature`]: NaN goes left.
const NAN_LEFT: u32 = 1 << 31;

/// One internal node, 16 bytes.
#[derive(Clone, Copy)]
#[repr(C)]
struct Node {
    threshold: f32,
    feature: u32,
    /// `[right, left]`, indexed by "goes left".
    children: [u32; 2],
}

/// A model with its nodes packed.
struct Packed<'a> {
    model: &'a FlatModel,
    nodes: &'a [Node],
}

impl Packed<'_> {
    /// The next reference from `c` for `row` (a leaf reference stays where it is).
    #[inline(always)]
    fn step(&self, c: u32, row: &[f32]) -> u32 {
        if c & LEAF != 0 {
            return c;
        }
        let n = &self.nodes[c as usize];
        let v = row[(n.feature & !NAN_LEFT) as usize];
        let left = (v <= n.threshold) | (v.is_nan() & (n.feature & NAN_LEFT != 0));
        n.children[usize::from(left)]
    }

    /// The leaf index `row` reaches from `root`.
    #[inline(always)]
    fn leaf(&self, root: u32, row: &[f32]) -> usize {
        let mut c = root;
        while c & LEAF == 0 {
            c = self.step(c, row);
        }
        (c & !LEAF) as usize
    }

    /// Scores rows `first .. first + o.len() / k` into `o`.
    fn predict_block(&self, x: &Matrix, first: usize, acc: &mut [f64], o: &mut [f32]) {
        let m = self.model;
        let k = m.n_outputs;
        let n = o.len() / k;
        acc.iter_mut().for_each(|a| *a = 0.0);
        if k == 1 {
            // Each row walks eight trees in lock step (eight independent chains of loads);
            // the leaves are added in tree order, so the sum is the single-row one.
            for (r, a) in acc.iter_mut().enumerate() {
                let row = x.row(first + r);
                let mut chunks = m.roots.chunks_exact(LANES);
                for roots in &mut chunks {
                    let mut cur: [u32; LANES] = roots.try_into().expect("LANES roots");
                    loop {
                        let mut all = LEAF;
                        for c in cur.iter_mut() {
                            *c = self.step(*c, row);
                            all &= *c;
                        }
                        if all != 0 {
                            break;
                        }
                    }
                    for c in cur {
                        *a += m.leaves[(c & !LEAF) as usize] as f64;
                    }
                }
                for &root in chunks.remainder() {
                    *a += m.leaves[self.leaf(root, row)] as f64;
                }
            }
        } else {
            for &root in &m.roots {
                for r in 0..n {
                    let leaf = self.leaf(root, x.row(first + r));
                    for (a, &v) in acc[r * k..(r + 1) * k].iter_mut().zip(&m.leaves[leaf * k..(leaf + 1) * k]) {
                        *a += v as f64;
                    }
                }
            }
        }
        let t = m.roots.len() as f64;
        for (o, &a) in o.iter_mut().zip(acc.iter()) {
            *o = (a / t) as f32;
        }
    }
}
// END SOLUTION
