//! Choosing the next token from the model's logits: greedy, temperature, top-k and top-p
//! (nucleus sampling, Holtzman et al., "The Curious Case of Neural Text Degeneration", ICLR
//! 2020), with a seeded generator so the same seed always gives the same text.
//!
//! The filters apply in this order, as in Hugging Face `transformers` and `kernels::llm::Sampler`:
//!
//! 1. drop NaN logits; sort the rest by logit, highest first (ties: lower id first);
//! 2. **top-k**: keep the first `top_k` (0 keeps all);
//! 3. **temperature**: `p_i ∝ exp((l_i − l_max) / T)` over the kept ones;
//! 4. **top-p**: keep the shortest prefix whose probabilities add up to at least `top_p`
//!    (1 keeps all), and renormalise;
//! 5. draw one token from what is left.
//!
//! `temperature ≤ 0` (or `top_k == 1`) is greedy decoding: always the arg-max, no draw.

pub use kernels::llm::SamplerConfig;

/// SplitMix64 (Steele, Lea & Flood 2014): a tiny, fast, seedable generator that gives the same
/// numbers on every machine. Given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64 { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform draw in `[0, 1)` (53 random bits).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Task c4w1.sampling (12 points, with [`Sampler::probabilities`] and [`Sampler::sample`]): the
/// index of the largest logit — the **lowest** index on ties; NaNs are skipped; 0 for an empty
/// or all-NaN slice. (`-∞` is a value like any other: all `-∞` gives 0.)
pub fn argmax(logits: &[f32]) -> u32 {
    // BEGIN SOLUTION c4w1.sampling
    let mut best: Option<(usize, f32)> = None;
    for (i, &l) in logits.iter().enumerate() {
        if !l.is_nan() && best.is_none_or(|(_, b)| l > b) {
            best = Some((i, l));
        }
    }
    best.map_or(0, |(i, _)| i as u32)
    // END SOLUTION
}

/// A seeded sampler: a configuration and its own [`SplitMix64`] seeded with `config.seed`.
#[derive(Debug, Clone)]
pub struct Sampler {
    config: SamplerConfig,
    rng: SplitMix64,
}

impl Sampler {
    /// A sampler drawing from `config.seed`. Given.
    pub fn new(config: SamplerConfig) -> Sampler {
        Sampler { config, rng: SplitMix64::new(config.seed) }
    }

    /// The configuration. Given.
    pub fn config(&self) -> &SamplerConfig {
        &self.config
    }

    // ANCHOR: probabilities
    /// Task c4w1.sampling: the distribution [`Sampler::sample`] draws from, as
    /// `(token id, probability)` pairs, most likely first (ties: lower id first), probabilities
    /// summing to 1. Steps 1–4 of the module docs:
    ///
    /// * greedy (`temperature ≤ 0` or `top_k == 1`): `[(argmax(logits), 1.0)]`;
    /// * otherwise drop NaNs, sort, keep `top_k` (0 = all), softmax at the temperature (subtract
    ///   the largest logit first), then keep the shortest prefix with cumulative probability
    ///   `≥ top_p` (accumulate in `f64`; `top_p ≥ 1` keeps all) and renormalise it;
    /// * tokens whose probability is 0 (a logit of `-∞`) are left out;
    /// * no candidate left (empty, all NaN, all `-∞`): an empty list.
    pub fn probabilities(&self, logits: &[f32]) -> Vec<(u32, f32)> {
        // BEGIN SOLUTION c4w1.sampling
        let c = self.config;
        if c.temperature <= 0.0 || c.top_k == 1 {
            return if logits.iter().all(|l| l.is_nan()) { Vec::new() } else { vec![(argmax(logits), 1.0)] };
        }
        let mut kept: Vec<(u32, f32)> =
            logits.iter().enumerate().filter(|(_, l)| !l.is_nan()).map(|(i, &l)| (i as u32, l)).collect();
        kept.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        if c.top_k > 0 {
            kept.truncate(c.top_k);
        }
        let Some(&(_, max)) = kept.first() else { return Vec::new() };
        if max == f32::NEG_INFINITY {
            return Vec::new();
        }
        let weights: Vec<f64> = kept.iter().map(|&(_, l)| f64::from(((l - max) / c.temperature).exp())).collect();
        let total: f64 = weights.iter().sum();
        let mut cut = kept.len();
        if c.top_p < 1.0 {
            let mut mass = 0.0f64;
            for (i, w) in weights.iter().enumerate() {
                mass += w / total;
                if mass >= f64::from(c.top_p) {
                    cut = i + 1;
                    break;
                }
            }
        }
        let kept_total: f64 = weights[..cut].iter().sum();
        kept[..cut]
            .iter()
            .zip(&weights)
            .filter(|(_, w)| **w > 0.0)
            .map(|(&(id, _), w)| (id, (w / kept_total) as f32))
            .collect()
        // END SOLUTION
    }
    // ANCHOR_END: probabilities

    /// Task c4w1.sampling: the next token.
    ///
    /// Greedy configurations return [`argmax`] and draw nothing. Otherwise take
    /// [`Sampler::probabilities`], draw **one** `u = self.rng.next_f64()` and return the first
    /// token whose cumulative probability exceeds `u` (the last one if rounding leaves `u`
    /// beyond the total). No candidate at all: [`argmax`] (0 for empty or all-NaN logits).
    ///
    /// Two samplers with the same configuration and seed return the same tokens for the same
    /// logits, call after call.
    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        // BEGIN SOLUTION c4w1.sampling
        let c = self.config;
        if c.temperature <= 0.0 || c.top_k == 1 {
            return argmax(logits);
        }
        let probs = self.probabilities(logits);
        let Some(&(last, _)) = probs.last() else { return argmax(logits) };
        let u = self.rng.next_f64();
        let mut cumulative = 0.0f64;
        for &(id, p) in &probs {
            cumulative += f64::from(p);
            if u < cumulative {
                return id;
            }
        }
        last
        // END SOLUTION
    }
}
