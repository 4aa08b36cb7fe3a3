//! Shared data of the `ml_*` criterion groups: a seeded classification set shaped like the fraud
//! features of `cargo xtask bench ml` (a few continuous columns, a few low-cardinality ones, ~3% positives).
//!
//! Reference: Breiman, "Random Forests", Machine Learning 45 (2001) and Ke et al., "LightGBM",
//! NeurIPS 2017 are the models these groups time; the data is only a stand-in.

use kernels::ml::Matrix;

/// `rows × 9` features and 0/1 labels from a SplitMix64 stream (seed fixed).
pub fn fraud_like(rows: usize) -> (Matrix, Vec<f32>) {
    let mut s = 0x5EED_u64;
    let mut u = move || {
        s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 24) as f32
    };
    let mut data = Vec::with_capacity(rows * 9);
    let mut y = Vec::with_capacity(rows);
    for _ in 0..rows {
        let amount = (3.5 + 1.2 * (u() + u() + u() - 1.5)).exp();
        let hour = (u() * 24.0).floor();
        let category = (u() * 8.0).floor();
        let foreign = f32::from(u() < 0.1);
        let since = (u() * 2000.0).powi(2) / 100.0;
        let in_hour = (u() * u() * 6.0).floor();
        let ratio = amount / (20.0 + 60.0 * u());
        let new_merchant = f32::from(u() < 0.2);
        let risk = 0.8 * foreign + 0.6 * new_merchant + 0.3 * ratio.min(5.0) + if hour < 5.0 { 0.7 } else { 0.0 };
        y.push(f32::from(u() < 0.01 + 0.05 * risk * risk));
        data.extend_from_slice(&[amount, amount.ln_1p(), hour, category, foreign, since, in_hour, ratio, new_merchant]);
    }
    (Matrix::new(rows, 9, data).expect("matrix"), y)
}
