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

/// OpenAI's presence and frequency penalties on the tokens generated so far
/// (<https://platform.openai.com/docs/advanced-usage/frequency-and-presence-penalties>):
/// `logit[j] -= count[j] · frequency + [count[j] > 0] · presence`. `counts` holds each generated
/// token's id and how many times it came.
pub fn apply_penalties(logits: &mut [f32], counts: &[(u32, u32)], presence: f32, frequency: f32) {
    for &(id, count) in counts {
        if let Some(l) = logits.get_mut(id as usize)
            && count > 0
        {
            *l -= count as f32 * frequency + presence;
        }
    }
}

/// OpenAI's `logit_bias`: adds each bias (−100..100) to its token's logit; −100 bans the token
/// outright (its logit becomes −∞), +100 makes it all but certain.
pub fn apply_logit_bias(logits: &mut [f32], bias: &[(u32, f32)]) {
    for &(id, b) in bias {
        if let Some(l) = logits.get_mut(id as usize) {
            *l = if b <= -100.0 { f32::NEG_INFINITY } else { *l + b };
        }
    }
}

/// `ln Σ exp(logits)` (NaNs skipped), the normaliser of the log-softmax.
pub fn log_sum_exp(logits: &[f32]) -> f32 {
    let max = logits.iter().copied().filter(|l| !l.is_nan()).fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        return max;
    }
    let sum: f64 = logits.iter().filter(|l| !l.is_nan()).map(|&l| ((l - max) as f64).exp()).sum();
    max + sum.ln() as f32
}

/// The `k` most likely tokens of `logits` with their log-probabilities (`lse` from
/// [`log_sum_exp`]), most likely first, ties to the lower id.
pub fn top_logprobs(logits: &[f32], lse: f32, k: usize) -> Vec<(u32, f32)> {
    if k == 0 {
        return Vec::new();
    }
    let mut all: Vec<(f32, u32)> =
        logits.iter().enumerate().filter(|(_, l)| !l.is_nan()).map(|(i, &l)| (l, i as u32)).collect();
    let by_logit = |a: &(f32, u32), b: &(f32, u32)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
    let k = k.min(all.len());
    if k == 0 {
        return Vec::new();
    }
    if k < all.len() {
        all.select_nth_unstable_by(k - 1, by_logit);
        all.truncate(k);
    }
    all.sort_unstable_by(by_logit);
    all.into_iter().map(|(l, id)| (id, l - lse)).collect()
}
