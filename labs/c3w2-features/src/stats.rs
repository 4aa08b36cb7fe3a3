//! Column statistics: count, null rate, mean, standard deviation, min/max and
//! exact quantiles of an Arrow `Float64Array`, with a scalar twin and a SIMD path.
//!
//! # The column
//! An Arrow primitive array is a buffer of values plus an optional **validity
//! bitmap** (one bit per row, 1 = valid). A null slot still has *some* value in
//! the buffer, but it is undefined: never read it as data. `col.iter()` yields
//! `Option<f64>` (`None` for a null); `col.values()` is the raw `&[f64]` buffer
//! and `col.nulls()` the bitmap (`None` when the column has no nulls at all).
//!
//! # NaN and nulls (the policy every function here follows)
//! Nulls are counted in [`ColumnStats::nulls`], NaN values in [`ColumnStats::nans`];
//! **both are left out** of mean, std, min, max and quantiles. These are the
//! semantics of NumPy's `nanmean`/`nanstd`/`nanquantile`, of pandas, and of
//! [`kernels::data::column_stats`]. A column without valid values has mean NaN,
//! `m2` 0, min `+∞` and max `−∞` (the identities of min and max).
//!
//! # Accuracy
//! The textbook one-pass variance `Σx²/n − mean²` cancels catastrophically when
//! the mean is large against the spread: on `1e9 + noise`, `Σx²` is about `1e18·n`
//! and its rounding error alone is larger than the whole variance. Never use it.
//! Welford's update and the two-pass formula are stable; computing everything on
//! `x − K` with `K` a value of the column ([`pivot`]) makes them better still.

use arrow::array::{Array, Float64Array};
use wide::f64x4;

/// Values per block of the SIMD path (32 KiB of f64: one L1 data cache).
pub const BLOCK: usize = 4096;

// ANCHOR: column_stats_struct
/// Summary statistics of one numeric column (the same fields as
/// [`kernels::data::ColumnStats`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ColumnStats {
    /// Rows, including nulls and NaNs.
    pub rows: usize,
    /// Arrow nulls.
    pub nulls: usize,
    /// Non-null NaN values.
    pub nans: usize,
    /// Mean of the valid values (NaN when there are none).
    pub mean: f64,
    /// Sum of squared deviations from the mean, `M2 = Σ(x − mean)²`
    /// (population variance = `m2 / n`).
    pub m2: f64,
    /// Smallest valid value (`+∞` when there are none).
    pub min: f64,
    /// Largest valid value (`−∞` when there are none).
    pub max: f64,
}
// ANCHOR_END: column_stats_struct

impl ColumnStats {
    /// The statistics of an empty column. Given.
    pub const EMPTY: ColumnStats =
        ColumnStats { rows: 0, nulls: 0, nans: 0, mean: f64::NAN, m2: 0.0, min: f64::INFINITY, max: f64::NEG_INFINITY };

    /// Values counted in the moments: not null, not NaN. Given.
    pub fn valid(&self) -> usize {
        self.rows - self.nulls - self.nans
    }

    /// Fraction of rows that are null (0 for an empty column). Given.
    pub fn null_rate(&self) -> f64 {
        if self.rows == 0 { 0.0 } else { self.nulls as f64 / self.rows as f64 }
    }

    /// Population variance (`ddof = 0`, NumPy's default); NaN without valid values. Given.
    pub fn variance(&self) -> f64 {
        let n = self.valid();
        if n == 0 { f64::NAN } else { self.m2 / n as f64 }
    }

    /// Population standard deviation (`ddof = 0`). Given.
    pub fn std(&self) -> f64 {
        self.variance().sqrt()
    }

    /// Sample standard deviation (`ddof = 1`, pandas' default); NaN below two valid values. Given.
    pub fn sample_std(&self) -> f64 {
        let n = self.valid();
        if n < 2 { f64::NAN } else { (self.m2 / (n - 1) as f64).sqrt() }
    }

    // ANCHOR: merge
    /// Task c3w2.stats-merge (5 points): the statistics of two columns
    /// concatenated, from the statistics of each (Chan, Golub & LeVeque).
    ///
    /// With `na`, `nb` valid values, means `ma`, `mb` and `δ = mb − ma`:
    ///
    /// ```text
    /// n    = na + nb
    /// mean = ma + δ · nb / n
    /// M2   = M2a + M2b + δ² · na · nb / n
    /// ```
    ///
    /// Row, null and NaN counts add; min and max combine. A side without valid
    /// values contributes only its counts: its NaN mean must not poison the
    /// result (merging two such sides keeps the NaN mean of [`Self::EMPTY`]).
    pub fn merge(&self, other: &ColumnStats) -> ColumnStats {
        todo!("c3w2.stats-merge")
    }
    // ANCHOR_END: merge
}

impl From<kernels::data::ColumnStats> for ColumnStats {
    /// The same statistics as `kernels` reports them. Given.
    fn from(s: kernels::data::ColumnStats) -> ColumnStats {
        ColumnStats { rows: s.rows, nulls: s.nulls, nans: s.nans, mean: s.mean, m2: s.m2, min: s.min, max: s.max }
    }
}

/// The shift `K` both twins subtract before accumulating: the first valid,
/// finite value of the column (0 when there is none). Given.
///
/// Moments are invariant under a shift (`var(x − K) = var(x)`), but rounding is
/// not: with `K` close to the data, the running mean and every `x − mean` stay
/// of the order of the *spread* instead of the magnitude, so nothing is lost to
/// the last bits of `1e9`. Add `K` back to the mean at the end; min and max are
/// of the raw values.
pub fn pivot(col: &Float64Array) -> f64 {
    col.iter().flatten().find(|v| v.is_finite()).unwrap_or(0.0)
}

/// The valid (non-null, non-NaN) values of `col`, copied out in row order. Given.
pub fn valid_values(col: &Float64Array) -> Vec<f64> {
    col.iter().flatten().filter(|v| !v.is_nan()).collect()
}

// ANCHOR: scalar
/// Task c3w2.stats-scalar (10 points): statistics of `col` by Welford's
/// update, one value at a time: the scalar twin [`column_stats`] is tested against.
///
/// For each row: a null counts in `nulls`, a NaN in `nans`; a valid value `x`
/// (use `x − K` with `K = `[`pivot`]`(col)`) updates
///
/// ```text
/// n    += 1
/// δ     = x − mean
/// mean += δ / n
/// M2   += δ · (x − mean)        (the *new* mean)
/// ```
///
/// and min/max (of the raw value). `rows` is `col.len()`. Follow the NaN/null
/// policy of the module docs; an empty or all-null column gives the fields of
/// [`ColumnStats::EMPTY`] with its counts filled in.
pub fn column_stats_scalar(col: &Float64Array) -> ColumnStats {
    todo!("c3w2.stats-scalar")
}
// ANCHOR_END: scalar

/// Four consecutive floats as one SIMD vector. `s` must hold exactly 4 floats. Given.
#[inline]
pub fn load4(s: &[f64]) -> f64x4 {
    f64x4::from(<[f64; 4]>::try_from(s).expect("a block of exactly 4 floats"))
}

// ANCHOR: simd
/// Task c3w2.stats-simd (15 points): the same statistics as
/// [`column_stats_scalar`], computed on `wide::f64x4` lanes, block by block.
///
/// 1. Cut the rows into blocks of [`BLOCK`]. For a block with nulls, copy its
///    valid values into a scratch `Vec` (reuse one) and count the nulls; a block
///    without nulls is used in place (`&col.values()[start..end]`). Check the
///    block's part of the bitmap with `col.nulls()` and
///    `NullBuffer::slice(start, len).null_count()`.
/// 2. Each block gets the **two-pass** treatment on `x − K` (`K = `[`pivot`]`(col)`):
///    pass 1 sums (and takes min/max) in `f64x4` lanes with several
///    accumulators, giving the block mean `m`; pass 2 sums `(x − K − m)²` and
///    `(x − K − m)` in lanes, and `M2 = Σd² − (Σd)²/n` (the second term corrects
///    the rounding of `m`). Finish the last `len % 4` values with scalar code.
/// 3. A block with NaNs: its pass-1 sum comes out NaN; count the NaNs, drop
///    them (scratch again) and redo the block.
/// 4. Fold the blocks together with your [`ColumnStats::merge`], and add `K`
///    back to the mean at the end.
///
/// Must agree with [`column_stats_scalar`]: counts, min and max exactly, mean
/// and std to about 1e-12 of the spread. A block fits in L1, so the column is
/// read from memory once.
pub fn column_stats(col: &Float64Array) -> ColumnStats {
    todo!("c3w2.stats-simd")
}
// ANCHOR_END: simd

// ANCHOR: quantiles
/// Task c3w2.quantiles (10 points): exact quantiles `qs` (each in `[0, 1]`) of
/// the valid values of `col`, interpolated linearly between order statistics.
///
/// This is NumPy's default (`method="linear"`): with the `n` valid values
/// sorted as `v[0] ≤ … ≤ v[n−1]`, quantile `q` sits at rank `h = (n − 1)·q`;
/// with `lo = ⌊h⌋` the answer is `v[lo] + (h − lo)·(v[lo+1] − v[lo])` (just
/// `v[lo]` when `h` is whole). Results come back in the order of `qs`.
///
/// - A column without valid values gives NaN for every quantile.
/// - A `q` outside `[0, 1]` (or NaN) is an error:
///   `Err(Error::InvalidParameter(..))`, checked before anything else.
///
/// Sorting a copy ([`valid_values`], then `sort_unstable_by(f64::total_cmp)`)
/// is O(n log n) and fine; `select_nth_unstable_by` finds one order statistic in
/// expected O(n) if you want to be faster.
pub fn quantiles(col: &Float64Array, qs: &[f64]) -> crate::Result<Vec<f64>> {
    todo!("c3w2.quantiles")
}
// ANCHOR_END: quantiles
