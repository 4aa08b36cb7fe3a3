//! k-means clustering: k-means++ seeding (the greedy variant scikit-learn uses) and Lloyd iterations,
//! the best of several seeded runs by inertia.
//!
//! References: Arthur & Vassilvitskii, "k-means++: The Advantages of Careful Seeding", SODA 2007 (the
//! seeding; the greedy variant with `2 + ⌊ln k⌋` candidates per step is from §5 of the paper and is what
//! scikit-learn's `_kmeans_plusplus` does); Lloyd, "Least squares quantization in PCM", IEEE Trans.
//! Inf. Theory 28 (1982) (the iterations). Defaults and the stopping rule follow scikit-learn's `KMeans`:
//! stop when the labels no longer change or the centroids move by at most `tol × mean feature variance`
//! (squared, summed); empty clusters take the points farthest from their centroids.
//!
//! Distances use [`crate::simd::l2_sq`] (runtime-dispatched SIMD); rows are processed in parallel with
//! rayon, and every sum runs over fixed row blocks in a fixed order, so a seed gives the same model for
//! any number of threads.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;

use super::Matrix;
use super::io::{Array, Parts, Persist, check_shape};
use super::linear::{block_rows, check_finite, check_predict};
use crate::{Error, Result};

/// Settings of [`fit`] (defaults: scikit-learn's `KMeans`, with `n_init="auto"`, i.e. 1 run of k-means++).
#[derive(Debug, Clone, PartialEq)]
pub struct KMeansConfig {
    /// Number of clusters (1 ≤ k ≤ rows).
    pub k: usize,
    /// Independent seeded runs; the one of least inertia is kept.
    pub n_init: usize,
    /// Lloyd iterations per run at most.
    pub max_iter: usize,
    /// Relative tolerance on the centroids' movement (times the mean variance of the features).
    pub tol: f64,
    /// Seed of the random generator (`StdRng::seed_from_u64`).
    pub seed: u64,
}

impl Default for KMeansConfig {
    fn default() -> Self {
        KMeansConfig { k: 8, n_init: 1, max_iter: 300, tol: 1e-4, seed: 0 }
    }
}

/// A fitted k-means model: `k` centroids of `dim` features.
#[derive(Debug, Clone, PartialEq)]
pub struct KMeansModel {
    centroids: Vec<f32>,
    k: usize,
    dim: usize,
    inertia: f64,
    n_iter: usize,
    inertia_trace: Vec<f64>,
}

/// Nearest centroid (lowest index on ties) and its squared distance, for every row.
fn assign(x: &Matrix, centroids: &[f32], k: usize) -> (Vec<u32>, Vec<f64>) {
    let d = x.cols();
    let n = x.rows();
    let mut labels = vec![0u32; n];
    let mut dists = vec![0.0f64; n];
    labels.par_chunks_mut(1024).zip(dists.par_chunks_mut(1024)).enumerate().for_each(|(b, (lab, dis))| {
        for (o, (l, dd)) in lab.iter_mut().zip(dis.iter_mut()).enumerate() {
            let row = x.row(b * 1024 + o);
            let mut best = (0u32, f32::INFINITY);
            for j in 0..k {
                let dj = crate::simd::l2_sq(row, &centroids[j * d..(j + 1) * d]);
                if dj < best.1 {
                    best = (j as u32, dj);
                }
            }
            *l = best.0;
            *dd = f64::from(best.1);
        }
    });
    (labels, dists)
}

/// The sum of `v` over fixed blocks, added in order.
fn ordered_sum(v: &[f64]) -> f64 {
    let partials: Vec<f64> = v.par_chunks(block_rows(v.len())).map(|c| c.iter().sum::<f64>()).collect();
    partials.iter().sum()
}

/// Greedy k-means++: the first centre uniformly, then each next one the best (least total potential)
/// of `2 + ⌊ln k⌋` candidates drawn with probability proportional to the squared distance.
fn kmeans_plus_plus(x: &Matrix, k: usize, rng: &mut StdRng) -> Vec<f32> {
    let n = x.rows();
    let d = x.cols();
    let trials = 2 + (k as f64).ln() as usize;
    let mut centroids = Vec::with_capacity(k * d);
    let first = rng.random_range(0..n);
    centroids.extend_from_slice(x.row(first));
    let dist_to = |c: &[f32]| -> Vec<f64> {
        (0..n).into_par_iter().map(|i| f64::from(crate::simd::l2_sq(x.row(i), c))).collect()
    };
    let mut closest = dist_to(x.row(first));
    let mut potential = ordered_sum(&closest);
    for _ in 1..k {
        let mut cumsum = Vec::with_capacity(n);
        let mut acc = 0.0f64;
        for &v in &closest {
            acc += v;
            cumsum.push(acc);
        }
        let mut best: Option<(f64, usize, Vec<f64>)> = None;
        for _ in 0..trials {
            let target = rng.random::<f64>() * potential;
            let cand = cumsum.partition_point(|&c| c <= target).min(n - 1);
            let mut dist = dist_to(x.row(cand));
            dist.par_iter_mut().zip(closest.par_iter()).for_each(|(a, &b)| *a = a.min(b));
            let pot = ordered_sum(&dist);
            if best.as_ref().is_none_or(|(bp, _, _)| pot < *bp) {
                best = Some((pot, cand, dist));
            }
        }
        let (pot, cand, dist) = best.expect("at least two trials");
        centroids.extend_from_slice(x.row(cand));
        closest = dist;
        potential = pot;
    }
    centroids
}

/// The means of the clusters (f64 sums over fixed blocks, in order); an empty cluster takes the point
/// farthest from its centroid (scikit-learn's relocation), never emptying another cluster.
fn update(x: &Matrix, labels: &[u32], dists: &[f64], k: usize, old: &[f32]) -> Vec<f32> {
    let d = x.cols();
    let n = x.rows();
    let block = block_rows(n);
    let partials: Vec<(Vec<f64>, Vec<usize>)> = (0..n.div_ceil(block))
        .into_par_iter()
        .map(|b| {
            let mut sums = vec![0.0f64; k * d];
            let mut counts = vec![0usize; k];
            let start = b * block;
            for (off, &label) in labels[start..((b + 1) * block).min(n)].iter().enumerate() {
                let (i, j) = (start + off, label as usize);
                counts[j] += 1;
                for (s, &v) in sums[j * d..(j + 1) * d].iter_mut().zip(x.row(i)) {
                    *s += f64::from(v);
                }
            }
            (sums, counts)
        })
        .collect();
    let mut sums = vec![0.0f64; k * d];
    let mut counts = vec![0usize; k];
    for (ps, pc) in partials {
        sums.iter_mut().zip(&ps).for_each(|(a, b)| *a += b);
        counts.iter_mut().zip(&pc).for_each(|(a, b)| *a += b);
    }
    let empty: Vec<usize> = (0..k).filter(|&j| counts[j] == 0).collect();
    if !empty.is_empty() {
        let mut far: Vec<usize> = (0..n).collect();
        far.sort_by(|&a, &b| dists[b].total_cmp(&dists[a]).then(a.cmp(&b)));
        let mut next = far.into_iter();
        for &j in &empty {
            let Some(i) = next.by_ref().find(|&i| counts[labels[i] as usize] > 1) else { break };
            let from = labels[i] as usize;
            counts[from] -= 1;
            counts[j] = 1;
            for (t, &v) in x.row(i).iter().enumerate() {
                sums[from * d + t] -= f64::from(v);
                sums[j * d + t] = f64::from(v);
            }
        }
    }
    let mut out = old.to_vec();
    for j in 0..k {
        if counts[j] > 0 {
            for t in 0..d {
                out[j * d + t] = (sums[j * d + t] / counts[j] as f64) as f32;
            }
        }
    }
    out
}

/// One run: seeding, then Lloyd iterations until convergence or `max_iter`.
fn run(x: &Matrix, cfg: &KMeansConfig, tol: f64, rng: &mut StdRng) -> KMeansModel {
    let (k, d) = (cfg.k, x.cols());
    let mut centroids = kmeans_plus_plus(x, k, rng);
    let (mut labels, mut dists) = assign(x, &centroids, k);
    let mut trace = vec![ordered_sum(&dists)];
    let mut n_iter = 0;
    while n_iter < cfg.max_iter {
        let next = update(x, &labels, &dists, k, &centroids);
        let shift: f64 = next.iter().zip(&centroids).map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2)).sum();
        centroids = next;
        n_iter += 1;
        let (new_labels, new_dists) = assign(x, &centroids, k);
        trace.push(ordered_sum(&new_dists));
        let same = new_labels == labels;
        labels = new_labels;
        dists = new_dists;
        if same || shift <= tol {
            break;
        }
    }
    let inertia = *trace.last().expect("one assignment at least");
    KMeansModel { centroids, k, dim: d, inertia, n_iter, inertia_trace: trace }
}

/// Clusters the rows of `x` into `cfg.k` groups.
///
/// # Errors
/// [`Error::MlEmpty`] without rows, [`Error::MlNonFinite`] for a NaN or infinity (naming its row and
/// column), [`Error::InvalidParameter`] for `k` of 0 or more than the rows, `n_init` or `max_iter` of
/// 0, or a negative or non-finite `tol`.
pub fn fit(x: &Matrix, cfg: &KMeansConfig) -> Result<KMeansModel> {
    if x.rows() == 0 {
        return Err(Error::MlEmpty("k-means needs at least one row".into()));
    }
    if cfg.k == 0 || cfg.k > x.rows() {
        return Err(Error::InvalidParameter(format!(
            "k-means k must be in 1..={} (the rows), got {}",
            x.rows(),
            cfg.k
        )));
    }
    if cfg.n_init == 0 || cfg.max_iter == 0 || !(cfg.tol >= 0.0 && cfg.tol.is_finite()) {
        return Err(Error::InvalidParameter(format!(
            "k-means needs n_init >= 1, max_iter >= 1 and a finite tol >= 0, got {}, {} and {}",
            cfg.n_init, cfg.max_iter, cfg.tol
        )));
    }
    check_finite(x)?;
    // scikit-learn's `_tolerance`: tol times the mean of the features' variances.
    let means = super::linear::column_means(x);
    let mut var = vec![0.0f64; x.cols()];
    for i in 0..x.rows() {
        for ((v, &xi), m) in var.iter_mut().zip(x.row(i)).zip(&means) {
            *v += (f64::from(xi) - m).powi(2);
        }
    }
    let tol = cfg.tol * var.iter().sum::<f64>() / (x.rows() as f64 * x.cols() as f64);

    let mut master = StdRng::seed_from_u64(cfg.seed);
    let mut best: Option<KMeansModel> = None;
    for _ in 0..cfg.n_init {
        let mut rng = StdRng::seed_from_u64(master.random::<u64>());
        let model = run(x, cfg, tol, &mut rng);
        if best.as_ref().is_none_or(|b| model.inertia < b.inertia) {
            best = Some(model);
        }
    }
    Ok(best.expect("n_init >= 1"))
}

impl KMeansModel {
    /// The centroids, row-major `k × dim`.
    pub fn centroids(&self) -> &[f32] {
        &self.centroids
    }

    /// Centroid `j` (panics when `j >= k`, like slice indexing).
    pub fn centroid(&self, j: usize) -> &[f32] {
        &self.centroids[j * self.dim..(j + 1) * self.dim]
    }

    /// The number of clusters.
    pub fn k(&self) -> usize {
        self.k
    }

    /// The number of features.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The training inertia: the sum of squared distances of the training rows to their nearest centroid.
    pub fn inertia(&self) -> f64 {
        self.inertia
    }

    /// Lloyd iterations (centroid updates) of the kept run.
    pub fn n_iter(&self) -> usize {
        self.n_iter
    }

    /// The inertia after the seeding and after each Lloyd iteration of the kept run (never increasing
    /// up to rounding; the last value is [`KMeansModel::inertia`]).
    pub fn inertia_trace(&self) -> &[f64] {
        &self.inertia_trace
    }

    /// The nearest centroid of every row (the lowest index on ties).
    ///
    /// # Errors
    /// [`Error::DimensionMismatch`] when `x` has another number of columns, [`Error::MlNonFinite`] for a
    /// NaN or infinity.
    pub fn predict(&self, x: &Matrix) -> Result<Vec<u32>> {
        check_predict(x, self.dim)?;
        Ok(assign(x, &self.centroids, self.k).0)
    }

    /// The inertia of `x` under this model (the sum of squared distances to the nearest centroids).
    ///
    /// # Errors
    /// As [`KMeansModel::predict`].
    pub fn inertia_of(&self, x: &Matrix) -> Result<f64> {
        check_predict(x, self.dim)?;
        Ok(ordered_sum(&assign(x, &self.centroids, self.k).1))
    }
}

impl Persist for KMeansModel {
    const KIND: &'static str = "kmeans";

    fn to_parts(&self) -> Parts {
        Parts {
            params: serde_json::json!({ "k": self.k, "dim": self.dim, "n_iter": self.n_iter }),
            arrays: vec![
                ("centroids".into(), Array::F32(self.centroids.clone(), vec![self.k, self.dim])),
                ("inertia".into(), Array::F64(vec![self.inertia], vec![1])),
                ("inertia_trace".into(), Array::F64(self.inertia_trace.clone(), vec![self.inertia_trace.len()])),
            ],
        }
    }

    fn from_parts(parts: Parts) -> Result<Self> {
        let k = parts.param_u64("k")? as usize;
        let dim = parts.param_u64("dim")? as usize;
        let n_iter = parts.param_u64("n_iter")? as usize;
        if k == 0 || dim == 0 {
            return Err(Error::MlModelParts {
                name: "k".into(),
                reason: format!("k = {k} and dim = {dim} must be >= 1"),
            });
        }
        let (centroids, shape) = parts.f32("centroids")?;
        check_shape("centroids", shape, &[k, dim])?;
        if centroids.iter().any(|v| !v.is_finite()) {
            return Err(Error::MlModelParts { name: "centroids".into(), reason: "non-finite value".into() });
        }
        let (trace, tshape) = parts.f64("inertia_trace")?;
        check_shape("inertia_trace", tshape, &[trace.len()])?;
        Ok(KMeansModel {
            centroids: centroids.to_vec(),
            k,
            dim,
            inertia: parts.f64_scalar("inertia")?,
            n_iter,
            inertia_trace: trace.to_vec(),
        })
    }
}
