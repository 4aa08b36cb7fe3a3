//! The seeded generator behind every random choice of the lab (given, no task).
//!
//! SplitMix64 (Steele, Lea & Flood, "Fast splittable pseudorandom number
//! generators", OOPSLA 2014): 64 bits of state, one add and three xor-shift-
//! multiplies per draw, and the same sequence on every platform and release.
//! Because the sequence is fixed, a test can replay exactly the draws your code
//! must make: the docs of [`crate::forest::bootstrap`] and
//! [`crate::kmeans::kmeans_plus_plus`] say which draws, in which order.

/// A SplitMix64 stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// The stream of `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng { state: seed }
    }

    // ANCHOR: fork
    /// The stream of item `index` (tree `t`, restart `r`) under `seed`: `Rng::new(seed ^ (index + 1) · 0xD1B5_4A32_D192_ED03)`
    /// (wrapping), so different items draw independent-looking sequences.
    pub fn fork(seed: u64, index: u64) -> Rng {
        Rng::new(seed ^ index.wrapping_add(1).wrapping_mul(0xD1B5_4A32_D192_ED03))
    }
    // ANCHOR_END: fork

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform integer in `0..n` from one draw, by multiply-high: `(next_u64() · n) >> 64`
    /// (128-bit product). `n` must be at least 1.
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }

    /// A uniform float in `[0, 1)` from one draw: the top 53 bits over 2⁵³.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}
