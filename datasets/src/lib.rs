//! Seeded, reproducible data generators for tests, grading and benchmarks.
//!
//! Every generator takes a seed and returns the same data on every machine and
//! every run (ChaCha8 is a stable stream; `rand`'s `StdRng` is not promised to be).
//! Size tiers ([`Tier`]) keep tests tiny and benchmarks meaningful.

pub mod text;
pub mod vectors;

/// How much data to make: tiny for unit tests, medium for benchmarks, full for learners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    Tiny,
    Medium,
    Full,
}

impl Tier {
    /// Parses `tiny`, `medium` or `full`.
    pub fn parse(s: &str) -> Option<Tier> {
        match s {
            "tiny" => Some(Tier::Tiny),
            "medium" => Some(Tier::Medium),
            "full" => Some(Tier::Full),
            _ => None,
        }
    }
}
