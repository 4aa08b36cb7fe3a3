//! Clustered Gaussian vectors: a stand-in with the structure of real embeddings
//! (points concentrate around topics) until the embedding model produces real ones.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::Tier;

/// Shape of a clustered vector set.
#[derive(Debug, Clone, Copy)]
pub struct ClusteredConfig {
    /// Number of vectors.
    pub n: usize,
    /// Dimension of each vector.
    pub dim: usize,
    /// Number of cluster centres (topics).
    pub clusters: usize,
    /// Standard deviation of points around their centre, relative to the
    /// centres' own spread of 1.0. Larger is harder for an ANN index.
    pub spread: f32,
    /// Scale every vector to unit length (as sentence embeddings are).
    pub normalize: bool,
    /// Seed of the stream.
    pub seed: u64,
}

impl ClusteredConfig {
    /// The standard benchmark shape at a size tier: 128-d, unit length.
    pub fn tier(tier: Tier, seed: u64) -> ClusteredConfig {
        let n = match tier {
            Tier::Tiny => 1_000,
            Tier::Medium => 20_000,
            Tier::Full => 200_000,
        };
        ClusteredConfig { n, dim: 128, clusters: 64, spread: 0.35, normalize: true, seed }
    }
}

/// A flat row-major buffer of `config.n` vectors of `config.dim` floats.
pub fn clustered(config: &ClusteredConfig) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let clusters = config.clusters.max(1);
    let centres: Vec<f32> = (0..clusters * config.dim).map(|_| gaussian(&mut rng)).collect();
    let mut out = Vec::with_capacity(config.n * config.dim);
    for _ in 0..config.n {
        let c = rng.random_range(0..clusters);
        let centre = &centres[c * config.dim..(c + 1) * config.dim];
        let start = out.len();
        out.extend(centre.iter().map(|&x| x + config.spread * gaussian(&mut rng)));
        if config.normalize {
            normalize(&mut out[start..]);
        }
    }
    out
}

/// Queries drawn from the same distribution as [`clustered`] but from a different
/// stream, so they are not copies of indexed points.
pub fn queries(config: &ClusteredConfig, n: usize) -> Vec<f32> {
    // Same centres (same seed), then skip past the data to fresh points.
    let mut c = *config;
    c.n = config.n + n;
    let all = clustered(&c);
    all[config.n * config.dim..].to_vec()
}

/// Uniform floats in `[-1, 1)`: handy for distance-kernel tests.
pub fn uniform(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// Standard normal by Box–Muller (keeps the dependency list to `rand` alone).
fn gaussian(rng: &mut ChaCha8Rng) -> f32 {
    let u1: f32 = rng.random_range(f32::EPSILON..1.0);
    let u2: f32 = rng.random::<f32>();
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_data_and_unit_norm() {
        let cfg = ClusteredConfig::tier(Tier::Tiny, 7);
        let a = clustered(&cfg);
        assert_eq!(a, clustered(&cfg));
        assert_eq!(a.len(), cfg.n * cfg.dim);
        let norm: f32 = a[..cfg.dim].iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
        let q = queries(&cfg, 10);
        assert_eq!(q.len(), 10 * cfg.dim);
        assert_ne!(&q[..cfg.dim], &a[..cfg.dim]);
    }
}
