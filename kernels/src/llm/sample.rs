//! Choosing the next token from logits: greedy, temperature, top-k and top-p (nucleus), seeded.
//!
//! Top-p follows Holtzman et al., "The Curious Case of Neural Text
//! Degeneration" (ICLR 2020): keep the smallest set of most likely tokens whose
//! probabilities add up to at least `p`. The order is Hugging Face's:
//! top-k on the logits, then temperature, then top-p on the tempered
//! distribution, then the draw.

/// How to sample. `temperature == 0` is greedy decoding.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SamplerConfig {
    /// Divides the logits; 0 picks the arg-max (ties to the lower id).
    pub temperature: f32,
    /// Keep only the `top_k` most likely tokens (0 = all).
    pub top_k: usize,
    /// Keep the smallest prefix of the sorted distribution with mass ≥ `top_p` (1 = all).
    pub top_p: f32,
    /// Seed of the draw: the same seed and logits give the same tokens.
    pub seed: u64,
}

impl SamplerConfig {
    /// Greedy decoding.
    pub fn greedy() -> Self {
        SamplerConfig { temperature: 0.0, top_k: 0, top_p: 1.0, seed: 0 }
    }
}

impl Default for SamplerConfig {
    /// OpenAI's defaults: temperature 1, no top-k, top-p 1.
    fn default() -> Self {
        SamplerConfig { temperature: 1.0, top_k: 0, top_p: 1.0, seed: 0 }
    }
}

/// A seeded sampler (SplitMix64 underneath: tiny, fast, and the same on every machine).
#[derive(Debug, Clone)]
pub struct Sampler {
    config: SamplerConfig,
    state: u64,
    scratch: Vec<(f32, u32)>,
}

impl Sampler {
    /// A sampler drawing from `config.seed`.
    pub fn new(config: SamplerConfig) -> Self {
        Sampler { config, state: config.seed, scratch: Vec::new() }
    }

    /// The configuration.
    pub fn config(&self) -> &SamplerConfig {
        &self.config
    }

    /// The next token for `logits` (NaN logits are never chosen; all-NaN gives token 0).
    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        let c = self.config;
        if c.temperature <= 0.0 || c.top_k == 1 {
            return argmax(logits);
        }
        let keep = if c.top_k == 0 { logits.len() } else { c.top_k.min(logits.len()) };
        let scratch = &mut self.scratch;
        scratch.clear();
        scratch.extend(logits.iter().enumerate().filter(|(_, l)| !l.is_nan()).map(|(i, &l)| (l, i as u32)));
        if scratch.is_empty() {
            return 0;
        }
        let by_logit = |a: &(f32, u32), b: &(f32, u32)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
        if keep < scratch.len() {
            scratch.select_nth_unstable_by(keep - 1, by_logit);
            scratch.truncate(keep);
        }
        scratch.sort_unstable_by(by_logit);
        // Softmax at temperature, in place of the logits.
        let max = scratch[0].0;
        let mut total = 0.0f64;
        for (l, _) in scratch.iter_mut() {
            *l = ((*l - max) / c.temperature).exp();
            total += *l as f64;
        }
        // Nucleus: the shortest prefix with mass ≥ top_p.
        let mut cut = scratch.len();
        if c.top_p < 1.0 {
            let mut mass = 0.0f64;
            for (i, (p, _)) in scratch.iter().enumerate() {
                mass += *p as f64 / total;
                if mass >= c.top_p as f64 {
                    cut = i + 1;
                    break;
                }
            }
        }
        let kept: f64 = scratch[..cut].iter().map(|(p, _)| *p as f64).sum();
        let mut r = next_f64(&mut self.state) * kept;
        for (p, id) in &scratch[..cut] {
            r -= *p as f64;
            if r < 0.0 {
                return *id;
            }
        }
        scratch[cut - 1].1
    }
}

/// A uniform draw in `[0, 1)` from SplitMix64 state `state`.
fn next_f64(state: &mut u64) -> f64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// The index of the largest logit, the lowest index on ties; NaNs are skipped (0 if all are NaN).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0usize;
    let mut best_value = f32::NEG_INFINITY;
    let mut found = false;
    for (i, &l) in logits.iter().enumerate() {
        if !l.is_nan() && (!found || l > best_value) {
            best = i;
            best_value = l;
            found = true;
        }
    }
    best as u32
}
