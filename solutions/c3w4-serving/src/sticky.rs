//! Sticky A/B assignment: a user's key hashed with the experiment's salt to a point of [0, 1), and
//! the traffic split read as consecutive intervals of that line. FNV-1a 64 (Fowler, Noll & Vo; the
//! IETF draft draft-eastlake-fnv) followed by MurmurHash3's `fmix64` finaliser (Appleby), the
//! assignment of `kernels::abtest`: stable across processes, machines and Rust releases, unlike
//! `std`'s `DefaultHasher`.

use crate::{Result, invalid};

/// FNV-1a 64 offset basis.
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
/// FNV-1a 64 prime.
pub const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

// ANCHOR: fnv
/// **Task `c3w4.sticky-hash` (10 points, with [`assignment_hash`], [`unit_point`] and [`assign`]).**
/// FNV-1a 64 of `bytes` continuing from `state`: for each byte, `state ^= byte`, then
/// `state = state.wrapping_mul(FNV_PRIME)`. `fnv1a64_continue(FNV_OFFSET, b"a")` is
/// `0xaf63dc4c8601ec8c`.
pub fn fnv1a64_continue(state: u64, bytes: &[u8]) -> u64 {
    // BEGIN SOLUTION c3w4.sticky-hash
    let mut state = state;
    for &b in bytes {
        state ^= u64::from(b);
        state = state.wrapping_mul(FNV_PRIME);
    }
    state
    // END SOLUTION
}
// ANCHOR_END: fnv

/// MurmurHash3's 64-bit finaliser (given): a bijection of `u64` whose every output bit depends on
/// every input bit, so keys that differ in one character land far apart.
pub fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    h
}

// ANCHOR: assign
/// **Task `c3w4.sticky-hash`.** `fmix64(fnv1a64(salt ‖ 0xFF ‖ key))`: the salt's bytes, one byte
/// `0xFF` (which never occurs in UTF-8, so `("ab", "c")` and `("a", "bc")` differ), then the key's.
pub fn assignment_hash(key: &str, salt: &str) -> u64 {
    // BEGIN SOLUTION c3w4.sticky-hash
    let state = fnv1a64_continue(FNV_OFFSET, salt.as_bytes());
    let state = fnv1a64_continue(state, &[0xFF]);
    fmix64(fnv1a64_continue(state, key.as_bytes()))
    // END SOLUTION
}

/// **Task `c3w4.sticky-hash`.** The point of `[0, 1)` of `(key, salt)`: the top 53 bits of
/// [`assignment_hash`] divided by 2⁵³ (exact in f64).
pub fn unit_point(key: &str, salt: &str) -> f64 {
    // BEGIN SOLUTION c3w4.sticky-hash
    (assignment_hash(key, salt) >> 11) as f64 / (1u64 << 53) as f64
    // END SOLUTION
}

/// **Task `c3w4.sticky-hash`.** The arm of `key`: the first `i` with `u < split[0] + … + split[i]`
/// (a running f64 sum, in order), where `u = unit_point(key, salt)`. If rounding leaves `u` at or
/// above the last running sum, the last arm whose weight is above 0. An arm of weight 0 never
/// receives a key.
///
/// # Errors
/// [`crate::Error::InvalidInput`] for an empty split, a weight that is negative or not finite, or
/// weights whose sum is more than 1e-9 away from 1.
pub fn assign(key: &str, salt: &str, split: &[f64]) -> Result<usize> {
    // BEGIN SOLUTION c3w4.sticky-hash
    if split.is_empty() {
        return invalid("the split has no arms");
    }
    if let Some((i, w)) = split.iter().enumerate().find(|(_, w)| !w.is_finite() || **w < 0.0) {
        return invalid(format!("weight {i} is {w}; weights must be finite and >= 0"));
    }
    let sum: f64 = split.iter().sum();
    if (sum - 1.0).abs() > 1e-9 {
        return invalid(format!("the weights sum to {sum}, not 1"));
    }
    let u = unit_point(key, salt);
    let mut cumulative = 0.0;
    for (i, &w) in split.iter().enumerate() {
        cumulative += w;
        if u < cumulative {
            return Ok(i);
        }
    }
    Ok(split.iter().rposition(|&w| w > 0.0).unwrap_or(split.len() - 1))
    // END SOLUTION
}
// ANCHOR_END: assign
