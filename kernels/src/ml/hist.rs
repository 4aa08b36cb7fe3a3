//! The histogram splitter of CART trees: trees grown on `u8` bin codes instead of sorted raw values.
//!
//! References: Ke et al., "LightGBM: A Highly Efficient Gradient Boosting Decision Tree", NeurIPS
//! 2017 (features binned once, per-node histograms, the larger child's histogram as the parent's minus
//! the smaller child's, a learned default direction for missing values); Breiman, "Random Forests",
//! Machine Learning 45 (2001) for the trees it grows (bootstrap samples, a random feature subset per
//! node); the binning itself is [`super::gbm`]'s (bin 0 holds NaN, bin boundaries are midpoints of
//! consecutive distinct values so a split stores a real threshold).
//!
//! How a tree grows, depth first, with no allocation per node:
//! - A bootstrap sample becomes a weight per distinct row (how often it was drawn), so the ~37% of
//!   rows never drawn cost nothing and a repeated row is added once with its weight.
//! - The node's rows are a range of one index array, partitioned in place after a split (stable).
//! - For each candidate feature the node's histogram (per bin: class weights for Gini and entropy;
//!   weight, Σwy, Σwy² for MSE) is built in one pass over the node's rows, unless the node holds
//!   full histograms (below). A node with fewer rows than half the feature's bins sorts its
//!   `(bin, row)` pairs instead, so deep, small nodes never scan empty bins.
//! - The scan visits the non-empty bins in order with running sums; each boundary is tried with the
//!   missing rows on the left and on the right, and "every present value left, every missing one
//!   right" (threshold +∞) is tried too, as [`super::tree`]'s exact splitter does.
//! - **Histogram subtraction** pays when a node looks at most features (`2 · max_features ≥ d`, e.g.
//!   regression forests and single trees): a large node then keeps the histograms of every feature,
//!   builds them for its smaller child only and turns its own into the larger child's by
//!   subtraction. With √d features per node, building the sampled features' histograms directly
//!   reads fewer rows than building every feature's for the smaller child, so it is not used.
//!
//! The rules (depth, `min_samples_split`, `min_samples_leaf` and impurities on weighted counts,
//! `min_impurity_decrease`, the feature draws per node) and the node layout are those of the exact
//! splitter, so a histogram tree is an ordinary [`DecisionTree`]: flattening, saving and prediction
//! treat it the same. With at most `max_bins` distinct values per feature the two splitters find the
//! same splits (thresholds are then the same midpoints).

use super::gbm::{Binned, partition};
use super::tree::{Criterion, DecisionTree, Node, SplitMix64, TreeConfig};

/// Bins below which a node sorts its `(bin, row)` pairs instead of filling a dense histogram:
/// it does so when it has fewer than `nb / SPARSE_DIVISOR` rows.
const SPARSE_DIVISOR: usize = 2;

/// The best split found at a node.
#[derive(Clone, Copy, Debug)]
struct Split {
    feature: usize,
    /// Present values in bins `1..=bin` go left (`u8::MAX`: all present values).
    bin: u8,
    default_left: bool,
    had_missing: bool,
    proxy: f64,
}

/// The training data of a histogram tree: binned features, targets and, per row, its weight.
pub(crate) struct HistInput<'a> {
    pub(crate) data: &'a Binned,
    pub(crate) y: &'a [f32],
    pub(crate) n_classes: usize,
}

/// Statistics per bin: `k` class weights, or `[w, Σwy, Σwy²]` for regression.
#[inline]
fn width(n_classes: usize) -> usize {
    if n_classes > 0 { n_classes } else { 3 }
}

/// The weighted row count of a statistics vector.
#[inline]
fn count(s: &[f64], classify: bool) -> f64 {
    if classify { s.iter().sum() } else { s[0] }
}

fn impurity(s: &[f64], c: Criterion) -> f64 {
    let classify = c.is_classification();
    let n = count(s, classify);
    if n <= 0.0 {
        return 0.0;
    }
    match c {
        Criterion::Gini => 1.0 - s.iter().map(|&k| (k / n) * (k / n)).sum::<f64>(),
        Criterion::Entropy => -s
            .iter()
            .filter(|&&k| k > 0.0)
            .map(|&k| {
                let p = k / n;
                p * p.log2()
            })
            .sum::<f64>(),
        Criterion::Mse => {
            let m = s[1] / n;
            (s[2] / n - m * m).max(0.0)
        }
    }
}

/// The part of `−(N_L·I_L + N_R·I_R)` that depends on the split (as the exact splitter's).
#[inline]
fn proxy(s: &[f64], n: f64, c: Criterion) -> f64 {
    if n <= 0.0 {
        return 0.0;
    }
    match c {
        Criterion::Gini => s.iter().map(|&k| k * k).sum::<f64>() / n,
        Criterion::Entropy => -n * impurity(s, c),
        Criterion::Mse => s[1] * s[1] / n,
    }
}

/// One pending node of the depth-first growth.
struct Pending {
    start: usize,
    end: usize,
    depth: usize,
    parent: usize,
    is_left: bool,
    /// Index into the pool of full histograms, when the node holds one.
    full: Option<usize>,
}

struct Builder<'a> {
    input: &'a HistInput<'a>,
    cfg: &'a TreeConfig,
    weight: &'a [f64],
    w: usize,
    max_features: usize,
    subtraction: bool,
    rng: SplitMix64,
    nodes: Vec<Node>,
    values: Vec<f32>,
    features: Vec<usize>,
    /// Offsets of each feature's histogram inside a full histogram (`(nb + 1) · w` each).
    offsets: Vec<usize>,
    full_len: usize,
    pool: Vec<Vec<f64>>,
    free: Vec<usize>,
    /// One feature's dense histogram.
    hist: Vec<f64>,
    /// The compacted non-empty bins of one feature: their ids and statistics.
    group_bins: Vec<u8>,
    groups: Vec<f64>,
    pairs: Vec<u64>,
    scratch: Vec<u32>,
    total: Vec<f64>,
    left: Vec<f64>,
    right: Vec<f64>,
    with_miss: Vec<f64>,
    best_left: Vec<f64>,
    cand_left: Vec<f64>,
}

/// Fits a tree on `rows` of `input` (repeats allowed: a bootstrap sample counts a row once per draw).
pub(crate) fn fit_rows(
    input: &HistInput<'_>,
    rows: &[u32],
    cfg: &TreeConfig,
    max_features: usize,
    seed: u64,
) -> DecisionTree {
    let data = input.data;
    let mut weight = vec![0.0f64; data.n];
    for &r in rows {
        weight[r as usize] += 1.0;
    }
    let mut order: Vec<u32> = (0..data.n as u32).filter(|&r| weight[r as usize] > 0.0).collect();
    fit_weighted(input, &weight, &mut order, cfg, max_features, seed)
}

/// Fits a tree on the rows in `order` (distinct, ascending) with the given weights.
pub(crate) fn fit_weighted(
    input: &HistInput<'_>,
    weight: &[f64],
    order: &mut [u32],
    cfg: &TreeConfig,
    max_features: usize,
    seed: u64,
) -> DecisionTree {
    let data = input.data;
    let w = width(input.n_classes);
    let mut offsets = Vec::with_capacity(data.d + 1);
    let mut at = 0;
    for f in 0..data.d {
        offsets.push(at);
        at += (data.upper[f].len() + 1) * w;
    }
    offsets.push(at);
    let max_features = max_features.clamp(1, data.d);
    let mut b = Builder {
        input,
        cfg,
        weight,
        w,
        max_features,
        subtraction: 2 * max_features >= data.d,
        rng: SplitMix64::new(seed),
        nodes: Vec::new(),
        values: Vec::new(),
        features: (0..data.d).collect(),
        full_len: at,
        offsets,
        pool: Vec::new(),
        free: Vec::new(),
        hist: vec![0.0; data.stride * w],
        group_bins: Vec::with_capacity(data.stride),
        groups: Vec::with_capacity(data.stride * w),
        pairs: Vec::new(),
        scratch: Vec::with_capacity(order.len()),
        total: vec![0.0; w],
        left: vec![0.0; w],
        right: vec![0.0; w],
        with_miss: vec![0.0; w],
        best_left: vec![0.0; w],
        cand_left: vec![0.0; w],
    };
    b.build(order);
    DecisionTree {
        n_features: data.d,
        n_classes: input.n_classes,
        criterion: cfg.criterion,
        nodes: b.nodes,
        values: b.values,
    }
}

impl Builder<'_> {
    fn classify(&self) -> bool {
        self.input.n_classes > 0
    }

    /// Adds row `r` with its weight to the statistics `s` (`w` values).
    #[inline(always)]
    fn add_row(&self, s: &mut [f64], r: usize) {
        let wt = self.weight[r];
        let y = self.input.y[r];
        if self.classify() {
            s[y as usize] += wt;
        } else {
            let v = y as f64;
            s[0] += wt;
            s[1] += wt * v;
            s[2] += wt * v * v;
        }
    }

    fn node_stats(&mut self, rows: &[u32]) {
        let mut total = std::mem::take(&mut self.total);
        total.iter_mut().for_each(|v| *v = 0.0);
        for &r in rows {
            self.add_row(&mut total, r as usize);
        }
        self.total = total;
    }

    fn push_node(&mut self, impurity: f64) -> usize {
        let id = self.nodes.len();
        let n = count(&self.total, self.classify());
        self.nodes.push(Node {
            feature: 0,
            threshold: 0.0,
            left: 0,
            right: 0,
            default_left: true,
            impurity,
            n_samples: n,
        });
        if self.classify() {
            self.values.extend(self.total.iter().map(|&c| (c / n) as f32));
        } else {
            self.values.push((self.total[1] / n) as f32);
        }
        id
    }

    /// A pool buffer for a full histogram (zeroed when `zero`).
    fn take_buffer(&mut self, zero: bool) -> usize {
        if let Some(i) = self.free.pop() {
            if zero {
                self.pool[i].iter_mut().for_each(|v| *v = 0.0);
            }
            i
        } else {
            self.pool.push(vec![0.0; self.full_len]);
            self.pool.len() - 1
        }
    }

    /// Fills pool buffer `buf` with every feature's histogram of `rows`.
    fn build_full(&mut self, buf: usize, rows: &[u32]) {
        let data = self.input.data;
        let mut h = std::mem::take(&mut self.pool[buf]);
        for f in 0..data.d {
            let col = &data.bins[f * data.n..(f + 1) * data.n];
            let s = &mut h[self.offsets[f]..self.offsets[f + 1]];
            for &r in rows {
                let r = r as usize;
                let b = col[r] as usize;
                self.add_row(&mut s[b * self.w..(b + 1) * self.w], r);
            }
        }
        self.pool[buf] = h;
    }

    /// The smallest number of rows for which a node keeps full histograms.
    fn full_min_rows(&self) -> usize {
        self.full_len / self.w
    }

    fn build(&mut self, order: &mut [u32]) {
        let total_n = {
            self.node_stats(order);
            count(&self.total, self.classify())
        };
        let root_full = if self.subtraction && order.len() >= self.full_min_rows() {
            let buf = self.take_buffer(true);
            self.build_full(buf, order);
            Some(buf)
        } else {
            None
        };
        let mut stack =
            vec![Pending { start: 0, end: order.len(), depth: 0, parent: usize::MAX, is_left: true, full: root_full }];
        // The statistics of the pending nodes, one frame of `w` values each, in the order of `stack`.
        let mut frames: Vec<f64> = self.total.clone();
        let w_stats = self.w;
        let classify = self.classify();
        let c = self.cfg.criterion;
        while let Some(p) = stack.pop() {
            let node_rows = &order[p.start..p.end];
            self.total.copy_from_slice(&frames[frames.len() - w_stats..]);
            frames.truncate(frames.len() - w_stats);
            let n = count(&self.total, classify);
            let imp = impurity(&self.total, c);
            let id = self.push_node(imp);
            if p.parent != usize::MAX {
                if p.is_left {
                    self.nodes[p.parent].left = id as u32;
                } else {
                    self.nodes[p.parent].right = id as u32;
                }
            }
            let min_leaf = self.cfg.min_samples_leaf as f64;
            let mut leaf = self.cfg.max_depth.is_some_and(|d| p.depth >= d)
                || n < self.cfg.min_samples_split as f64
                || n < 2.0 * min_leaf
                || imp <= f64::EPSILON;
            if !leaf && !classify {
                let y0 = self.input.y[node_rows[0] as usize];
                leaf = node_rows.iter().all(|&r| self.input.y[r as usize] == y0);
            }
            let split = if leaf { None } else { self.best_split(node_rows, n, p.full) };
            let Some(split) = split else {
                if let Some(buf) = p.full {
                    self.free.push(buf);
                }
                continue;
            };
            // Partition (stable) by bin code.
            let data = self.input.data;
            let col = &data.bins[split.feature * data.n..(split.feature + 1) * data.n];
            let goes_left = |b: u8| if b == 0 { split.default_left } else { b <= split.bin };
            let w = partition(&mut order[p.start..p.end], &mut self.scratch, |r| goes_left(col[r as usize])) + p.start;
            let nl = count(&self.best_left, classify);
            let nr = n - nl;
            for ((r, t), l) in self.right.iter_mut().zip(&self.total).zip(&self.best_left) {
                *r = t - l;
            }
            let improvement =
                (n / total_n) * (imp - nl / n * impurity(&self.best_left, c) - nr / n * impurity(&self.right, c));
            if w == p.start || w == p.end || improvement + f64::EPSILON < self.cfg.min_impurity_decrease {
                if let Some(buf) = p.full {
                    self.free.push(buf);
                }
                continue;
            }
            let node = &mut self.nodes[id];
            node.feature = split.feature as u32;
            node.threshold =
                if split.bin == u8::MAX { f32::INFINITY } else { data.upper[split.feature][split.bin as usize - 1] };
            node.default_left = if split.had_missing { split.default_left } else { nl >= nr };
            // Children's full histograms: the smaller one's built, the larger one's by subtraction.
            let (lrows, rrows) = (w - p.start, p.end - w);
            let (mut lfull, mut rfull) = (None, None);
            if let Some(parent) = p.full {
                if lrows.max(rrows) >= self.full_min_rows() && p.depth + 1 < self.cfg.max_depth.unwrap_or(usize::MAX) {
                    let small = self.take_buffer(true);
                    let left_small = lrows <= rrows;
                    let small_rows = if left_small { &order[p.start..w] } else { &order[w..p.end] };
                    self.build_full(small, small_rows);
                    let (a, b) = two_mut(&mut self.pool, parent, small);
                    for (x, y) in a.iter_mut().zip(b.iter()) {
                        *x -= y;
                    }
                    if left_small {
                        (lfull, rfull) = (Some(small), Some(parent));
                    } else {
                        (lfull, rfull) = (Some(parent), Some(small));
                    }
                } else {
                    self.free.push(parent);
                }
            }
            // Right first so the left subtree is numbered first (preorder).
            frames.extend_from_slice(&self.right);
            frames.extend_from_slice(&self.best_left);
            stack.push(Pending { start: w, end: p.end, depth: p.depth + 1, parent: id, is_left: false, full: rfull });
            stack.push(Pending { start: p.start, end: w, depth: p.depth + 1, parent: id, is_left: true, full: lfull });
        }
    }

    /// The best split of a node's rows over a (random, when `max_features < d`) set of features.
    fn best_split(&mut self, rows: &[u32], n: f64, full: Option<usize>) -> Option<Split> {
        let data = self.input.data;
        let d = data.d;
        let w = self.w;
        let subsample = self.max_features < d;
        let mut best: Option<Split> = None;
        let mut visited = 0usize;
        for slot in 0..d {
            if visited >= self.max_features {
                break;
            }
            let f = if subsample {
                let j = slot + self.rng.below(d - slot);
                self.features.swap(slot, j);
                self.features[slot]
            } else {
                slot
            };
            let nb = data.upper[f].len();
            // Missing statistics into `with_miss`; non-empty present bins into `group_bins`/`groups`.
            self.group_bins.clear();
            self.groups.clear();
            let col = &data.bins[f * data.n..(f + 1) * data.n];
            if let Some(buf) = full {
                let h = &self.pool[buf][self.offsets[f]..self.offsets[f + 1]];
                compact(h, w, self.classify(), &mut self.group_bins, &mut self.groups, &mut self.with_miss);
            } else if rows.len() * SPARSE_DIVISOR < nb {
                self.pairs.clear();
                self.pairs.extend(rows.iter().map(|&r| (u64::from(col[r as usize]) << 32) | u64::from(r)));
                self.pairs.sort_unstable();
                self.with_miss.iter_mut().for_each(|v| *v = 0.0);
                let mut last: Option<u8> = None;
                for i in 0..self.pairs.len() {
                    let key = self.pairs[i];
                    let (b, r) = ((key >> 32) as u8, (key & 0xFFFF_FFFF) as usize);
                    if b == 0 {
                        let mut m = std::mem::take(&mut self.with_miss);
                        self.add_row(&mut m, r);
                        self.with_miss = m;
                        continue;
                    }
                    if last != Some(b) {
                        last = Some(b);
                        self.group_bins.push(b);
                        self.groups.extend(std::iter::repeat_n(0.0, w));
                    }
                    let g = self.groups.len() - w;
                    let mut groups = std::mem::take(&mut self.groups);
                    self.add_row(&mut groups[g..], r);
                    self.groups = groups;
                }
            } else {
                let mut h = std::mem::take(&mut self.hist);
                let h_f = &mut h[..(nb + 1) * w];
                h_f.iter_mut().for_each(|v| *v = 0.0);
                for &r in rows {
                    let r = r as usize;
                    let b = col[r] as usize;
                    self.add_row(&mut h_f[b * w..(b + 1) * w], r);
                }
                compact(h_f, w, self.classify(), &mut self.group_bins, &mut self.groups, &mut self.with_miss);
                self.hist = h;
            }
            let had_missing = count(&self.with_miss, self.classify()) > 0.0;
            let g = self.group_bins.len();
            if g == 0 || (g == 1 && !had_missing) {
                continue; // constant at this node
            }
            visited += 1;
            self.scan(f, n, had_missing, &mut best);
        }
        best
    }

    /// Tries every boundary between the compacted bins of feature `f` (and the missing-value variants).
    fn scan(&mut self, f: usize, n: f64, had_missing: bool, best: &mut Option<Split>) {
        let w = self.w;
        let c = self.cfg.criterion;
        let classify = self.classify();
        let min_leaf = self.cfg.min_samples_leaf as f64;
        let g = self.group_bins.len();
        let miss_n = count(&self.with_miss, classify);
        let mut left = std::mem::take(&mut self.left);
        let mut right = std::mem::take(&mut self.right);
        let mut cand = std::mem::take(&mut self.cand_left);
        left.iter_mut().for_each(|v| *v = 0.0);
        let mut consider = |l: &[f64], nl: f64, bin: u8, default_left: bool, best: &mut Option<Split>| -> bool {
            let nr = n - nl;
            if nl < min_leaf || nr < min_leaf {
                return false;
            }
            for ((r, t), x) in right.iter_mut().zip(&self.total).zip(l) {
                *r = t - x;
            }
            let p = proxy(l, nl, c) + proxy(&right, nr, c);
            if best.is_none_or(|b| p > b.proxy) {
                *best = Some(Split { feature: f, bin, default_left, had_missing, proxy: p });
                return true;
            }
            false
        };
        let mut nl = 0.0;
        for i in 0..g {
            for (a, b) in left.iter_mut().zip(&self.groups[i * w..(i + 1) * w]) {
                *a += b;
            }
            nl = count(&left, classify);
            if i + 1 == g {
                break;
            }
            let bin = self.group_bins[i];
            if consider(&left, nl, bin, false, best) {
                self.best_left.copy_from_slice(&left);
            }
            if had_missing {
                for ((o, a), m) in cand.iter_mut().zip(&left).zip(&self.with_miss) {
                    *o = a + m;
                }
                if consider(&cand, nl + miss_n, bin, true, best) {
                    self.best_left.copy_from_slice(&cand);
                }
            }
        }
        if had_missing && consider(&left, nl, u8::MAX, false, best) {
            // Every present value left, every missing one right.
            self.best_left.copy_from_slice(&left);
        }
        self.left = left;
        self.right = right;
        self.cand_left = cand;
    }
}

/// Copies the non-empty bins `1..` of one feature's dense histogram `h` into `bins`/`groups`, and
/// bin 0 (missing) into `miss`.
fn compact(h: &[f64], w: usize, classify: bool, bins: &mut Vec<u8>, groups: &mut Vec<f64>, miss: &mut [f64]) {
    miss.copy_from_slice(&h[..w]);
    for (b, s) in h.chunks_exact(w).enumerate().skip(1) {
        if count(s, classify) > 0.0 {
            bins.push(b as u8);
            groups.extend_from_slice(s);
        }
    }
}

/// Mutable references to two distinct elements of a slice.
fn two_mut<T>(v: &mut [T], a: usize, b: usize) -> (&mut T, &mut T) {
    assert_ne!(a, b);
    if a < b {
        let (x, y) = v.split_at_mut(b);
        (&mut x[a], &mut y[0])
    } else {
        let (x, y) = v.split_at_mut(a);
        (&mut y[0], &mut x[b])
    }
}
