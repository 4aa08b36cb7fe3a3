//! Hidden tests of week c3w2 (feature engineering): checked against the
//! production `kernels::data` (statistics, quantiles, transforms, as-of join),
//! against delta-rs (`kernels::data::FeatureTable`) for the Delta log, against
//! hand-computed cases, and with leakage traps (identical timestamps, shuffled
//! input, missing entities).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use c3w2_features as lab;
use datasets::transactions::{TransactionsConfig, transactions};
use kernels::data::{AsOfConfig, Column, FeatureTable, record_batch};
use lab::arrow::array::{Array, AsArray, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use lab::arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema, TimeUnit};
use lab::asof::{AsOfRule, Keys, asof_indices};
use lab::delta::{self, DeltaError};
use lab::stats::{self, ColumnStats};
use lab::transform::{MinMaxScaler, OneHotEncoder, QuantileBinner, Standardizer};
use serde_json::{Value, json};

/// A fresh folder under the system temp dir, removed on drop (each test runs in its own process).
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let dir = std::env::temp_dir().join(format!("c3w2-hidden-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("creating a temp dir");
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Deterministic u64 stream (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            v.swap(i, self.below(i as u64 + 1) as usize);
        }
    }
}

fn tiny_transactions(seed: u64) -> datasets::transactions::Transactions {
    transactions(&TransactionsConfig::tier(datasets::Tier::Tiny, seed))
}

/// Transaction amounts with about 3% nulls and a few NaNs.
fn amounts_with_holes(seed: u64) -> Float64Array {
    let t = tiny_transactions(seed);
    let mut rng = Rng(seed);
    t.amount
        .iter()
        .map(|&a| match rng.below(100) {
            0..=2 => None,
            3 if rng.below(4) == 0 => Some(f64::NAN),
            _ => Some(a),
        })
        .collect()
}

/// `|got − want| ≤ rel · scale` (or both NaN, or equal).
fn close(got: f64, want: f64, rel: f64, scale: f64) -> bool {
    (got.is_nan() && want.is_nan()) || got == want || (got - want).abs() <= rel * scale.abs().max(f64::MIN_POSITIVE)
}

/// Asserts that `got` equals kernels' statistics: counts, min and max exactly, mean and std to `rel` of the spread.
fn assert_stats(what: &str, got: &ColumnStats, want: &kernels::data::ColumnStats, rel: f64) {
    assert_eq!(
        (got.rows, got.nulls, got.nans),
        (want.rows, want.nulls, want.nans),
        "{what}: (rows, nulls, nans) — got {got:?}, kernels has {want:?}"
    );
    assert!(
        got.min == want.min && got.max == want.max,
        "{what}: min/max {}/{}, kernels has {}/{}",
        got.min,
        got.max,
        want.min,
        want.max
    );
    let spread = want.std().max(1e-300);
    // The mean may differ by the rounding of its magnitude (a few ulps) plus `rel` of the spread.
    let mean_ok = (got.mean.is_nan() && want.mean.is_nan())
        || (got.mean - want.mean).abs() <= rel * spread + 1e-15 * want.mean.abs();
    assert!(
        mean_ok,
        "{what}: mean {}, kernels has {}",
        got.mean,
        want.mean
    );
    assert!(close(got.std(), want.std(), rel, spread), "{what}: std {}, kernels has {}", got.std(), want.std());
}

fn kstats(col: &Float64Array) -> kernels::data::ColumnStats {
    kernels::data::column_stats(col).expect("kernels stats")
}

/// Events and features of the join traps, as plain keys.
fn join(ev_e: &[i64], ev_t: &[i64], ft_e: &[i64], ft_t: &[i64], rule: AsOfRule) -> Vec<Option<u32>> {
    asof_indices(Keys { entity: ev_e, time: ev_t }, Keys { entity: ft_e, time: ft_t }, &rule)
}

/// kernels' answer for the same keys, as indices.
fn kernels_join(ev_e: &[i64], ev_t: &[i64], ft_e: &[i64], ft_t: &[i64], rule: AsOfRule) -> Vec<Option<u32>> {
    let left = record_batch(vec![("e", Column::I64(ev_e.to_vec())), ("t", Column::I64(ev_t.to_vec()))]).unwrap();
    let right = record_batch(vec![("e", Column::I64(ft_e.to_vec())), ("t", Column::I64(ft_t.to_vec()))]).unwrap();
    let config =
        AsOfConfig { allow_exact_matches: rule.allow_exact_matches, tolerance: rule.tolerance, ..AsOfConfig::new("e", "t") };
    kernels::data::asof_indices(&left, &right, &config).unwrap()
}

/// `(card_id: Int64, ts: Timestamp(µs, UTC), spend: Float64, segment: Utf8)`.
fn feature_schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("card_id", DataType::Int64, true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true),
        Field::new("spend", DataType::Float64, true),
        Field::new("segment", DataType::Utf8, true),
    ]))
}

/// Rows `first..first + n` of a deterministic feature table (every 5th spend null).
fn feature_rows(first: i64, n: i64) -> RecordBatch {
    let ids: Vec<i64> = (first..first + n).collect();
    RecordBatch::try_new(
        feature_schema(),
        vec![
            Arc::new(Int64Array::from(ids.clone())),
            Arc::new(
                TimestampMicrosecondArray::from(ids.iter().map(|i| 1_704_067_200_000_000 + i * 1_000_003).collect::<Vec<_>>())
                    .with_timezone("UTC"),
            ),
            Arc::new(Float64Array::from(
                ids.iter().map(|&i| if i % 5 == 0 { None } else { Some(i as f64 * 1.25 + 0.1) }).collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(ids.iter().map(|i| ["low", "mid", "high"][(*i % 3) as usize]).collect::<Vec<_>>())),
        ],
    )
    .unwrap()
}

/// All rows of `batches` (of [`feature_schema`]) as one batch sorted by card_id.
fn sorted(batches: &[RecordBatch]) -> RecordBatch {
    let all = lab::arrow::compute::concat_batches(&feature_schema(), batches).unwrap();
    let idx = lab::arrow::compute::sort_to_indices(all.column(0), None, None).unwrap();
    lab::arrow::compute::take_record_batch(&all, &idx).unwrap()
}

/// delta-rs' view of the table at `version`, sorted by card_id.
fn delta_rs_rows(path: &Path, version: u64) -> RecordBatch {
    let batches = lab::block_on(async { FeatureTable::open_version(path, version).await?.read().await })
        .unwrap_or_else(|e| panic!("delta-rs cannot read your table at version {version}: {e}"));
    sorted(&batches)
}

/// Writes a Parquet data file of `batch` into the table folder and returns its add action.
fn add_action(table: &Path, name: &str, batch: &RecordBatch) -> Value {
    kernels::data::write_parquet(table.join(name), batch.schema_ref(), std::slice::from_ref(batch), &Default::default())
        .unwrap();
    let size = std::fs::metadata(table.join(name)).unwrap().len();
    json!({ "add": { "path": name, "partitionValues": {}, "size": size, "modificationTime": 0, "dataChange": true,
        "stats": json!({ "numRecords": batch.num_rows() }).to_string() } })
}

/// Commit file text with one action per line.
fn write_commit(table: &Path, version: u64, actions: &[Value]) {
    std::fs::create_dir_all(table.join("_delta_log")).unwrap();
    let text: String = actions.iter().map(|a| format!("{a}\n")).collect();
    std::fs::write(table.join(format!("_delta_log/{version:020}.json")), text).unwrap();
}

fn protocol_and_metadata(schema: &Schema) -> Vec<Value> {
    vec![
        json!({ "protocol": { "minReaderVersion": 1, "minWriterVersion": 2 } }),
        json!({ "metaData": { "id": "4d9f2a2e-8d0f-4f6e-9c51-3b1f6b1a2c3d", "name": "hand_made",
            "format": { "provider": "parquet", "options": {} },
            "schemaString": delta::delta_schema_string(schema).unwrap(),
            "partitionColumns": [], "configuration": {}, "createdTime": 0 } }),
    ]
}

/// The live files of a snapshot, sorted (the protocol gives them no order).
fn file_names(snap: &delta::Snapshot) -> Vec<&str> {
    let mut names: Vec<&str> = snap.files.iter().map(|f| f.path.as_str()).collect();
    names.sort_unstable();
    names
}

graded! {
    // ------------------------------------------------------------ stats-scalar

    /// Welford on generated transaction amounts with nulls and NaNs equals kernels.
    fn scalar_stats_match_kernels_on_transaction_amounts() {
        for seed in [1u64, 2, 3] {
            let col = amounts_with_holes(seed);
            assert_stats(&format!("amounts, seed {seed}"), &stats::column_stats_scalar(&col), &kstats(&col), 1e-10);
        }
        let plain = Float64Array::from(tiny_transactions(9).amount);
        assert_stats("amounts without nulls", &stats::column_stats_scalar(&plain), &kstats(&plain), 1e-10);
    }

    /// Empty, all-null and all-NaN columns: counts right, mean NaN, m2 0, min +inf, max -inf.
    fn scalar_stats_handle_empty_all_null_and_all_nan_columns() {
        let cases: Vec<(&str, Float64Array, (usize, usize, usize))> = vec![
            ("empty", Float64Array::from(Vec::<f64>::new()), (0, 0, 0)),
            ("all null", Float64Array::from(vec![None::<f64>; 7]), (7, 7, 0)),
            ("all NaN", Float64Array::from(vec![f64::NAN; 5]), (5, 0, 5)),
            ("null and NaN", Float64Array::from(vec![None, Some(f64::NAN), None]), (3, 2, 1)),
        ];
        for (what, col, counts) in cases {
            let s = stats::column_stats_scalar(&col);
            assert_eq!((s.rows, s.nulls, s.nans), counts, "{what}: (rows, nulls, nans), got {s:?}");
            assert!(s.mean.is_nan(), "{what}: the mean of no values is NaN, got {}", s.mean);
            assert_eq!(s.m2, 0.0, "{what}: m2 of no values is 0");
            assert_eq!((s.min, s.max), (f64::INFINITY, f64::NEG_INFINITY), "{what}: min/max of no values are +inf/-inf");
        }
        let one = stats::column_stats_scalar(&Float64Array::from(vec![None, Some(-3.5), Some(f64::NAN)]));
        assert_eq!((one.mean, one.m2, one.min, one.max), (-3.5, 0.0, -3.5, -3.5), "a single valid value: {one:?}");
    }

    /// 1e9 + small noise: the naive Σx² formula loses every digit; Welford must not.
    fn scalar_stats_are_stable_on_a_large_offset() {
        let mut rng = Rng(5);
        for offset in [1e9, -1e11] {
            let values: Vec<f64> = (0..20_000).map(|_| offset + rng.unit() - 0.5).collect();
            let col = Float64Array::from(values);
            let got = stats::column_stats_scalar(&col);
            let want = kstats(&col);
            assert_stats(&format!("offset {offset:e} plus uniform noise"), &got, &want, 1e-6);
        }
        // Exactly representable: 1e9 ± 1 alternating has mean 1e9 and variance exactly 1.
        let col = Float64Array::from((0..1001).map(|i| if i == 1000 { 1e9 } else if i % 2 == 0 { 1e9 + 1.0 } else { 1e9 - 1.0 }).collect::<Vec<_>>());
        let s = stats::column_stats_scalar(&col);
        assert!((s.mean - 1e9).abs() < 1e-6, "mean of 1e9 ± 1 is 1e9, got {}", s.mean);
        assert!((s.m2 - 1000.0).abs() < 1e-6, "M2 of 1000 values at ±1 around the mean is 1000, got {}", s.m2);
    }

    // ------------------------------------------------------------ stats-merge

    /// A side without valid values adds only its counts; two such sides keep a NaN mean.
    fn merge_with_empty_sides_keeps_counts_and_ignores_the_nan_mean() {
        let a = ColumnStats { rows: 3, nulls: 1, nans: 0, mean: 2.0, m2: 2.0, min: 1.0, max: 3.0 };
        let empty = ColumnStats { rows: 4, nulls: 3, nans: 1, ..ColumnStats::EMPTY };
        for (what, m) in [("a + empty", a.merge(&empty)), ("empty + a", empty.merge(&a))] {
            assert_eq!((m.rows, m.nulls, m.nans), (7, 4, 1), "{what}: counts add, got {m:?}");
            assert_eq!((m.mean, m.m2, m.min, m.max), (2.0, 2.0, 1.0, 3.0), "{what}: moments of the valid side, got {m:?}");
        }
        let both = empty.merge(&ColumnStats::EMPTY);
        assert!(both.mean.is_nan() && both.m2 == 0.0, "two empty sides keep NaN mean and m2 0, got {both:?}");
        assert_eq!((both.min, both.max), (f64::INFINITY, f64::NEG_INFINITY));
    }

    /// For random split points of a column, merging kernels' statistics of the parts equals the whole.
    fn merge_of_random_splits_equals_the_whole_column() {
        let col = amounts_with_holes(4);
        let whole = kstats(&col);
        let mut rng = Rng(11);
        for trial in 0..50 {
            let mut cuts: Vec<usize> = (0..1 + rng.below(5)).map(|_| rng.below(col.len() as u64 + 1) as usize).collect();
            cuts.push(0);
            cuts.push(col.len());
            cuts.sort_unstable();
            let mut acc = ColumnStats::EMPTY;
            for w in cuts.windows(2) {
                let part = col.slice(w[0], w[1] - w[0]);
                acc = acc.merge(&ColumnStats::from(kstats(&part)));
            }
            assert_stats(&format!("trial {trial}, cuts {cuts:?}"), &acc, &whole, 1e-10);
        }
        // The offset case: merging means near 1e9.
        let big = Float64Array::from((0..9_000).map(|i| 1e9 + ((i * 7919) % 1000) as f64 * 0.001).collect::<Vec<_>>());
        let halves = ColumnStats::from(kstats(&big.slice(0, 4_000))).merge(&ColumnStats::from(kstats(&big.slice(4_000, 5_000))));
        assert_stats("1e9 + noise in two parts", &halves, &kstats(&big), 1e-6);
    }

    // ------------------------------------------------------------ stats-simd

    /// Every length 0..=70 and lengths around 1, 2 and 3 blocks, with and without nulls.
    fn simd_stats_match_kernels_on_every_small_length_and_block_boundary() {
        let mut rng = Rng(21);
        let b = stats::BLOCK;
        let lengths: Vec<usize> = (0..=70).chain([b - 1, b, b + 1, 2 * b - 3, 2 * b, 3 * b + 17]).collect();
        for len in lengths {
            for null_every in [0u64, 3, 97] {
                let values: Vec<Option<f64>> = (0..len)
                    .map(|_| {
                        let x = rng.unit() * 200.0 - 50.0;
                        if null_every > 0 && rng.below(null_every) == 0 { None } else { Some(x) }
                    })
                    .collect();
                let col = Float64Array::from(values);
                let got = stats::column_stats(&col);
                let want = kernels::data::column_stats_scalar(&col).unwrap();
                assert_stats(&format!("length {len}, a null every ~{null_every}"), &got, &want, 1e-10);
            }
        }
    }

    /// A block that is all null, NaNs scattered in a middle block, an all-NaN column, an empty one, a sliced array.
    fn simd_stats_handle_null_blocks_nans_and_empty_columns() {
        let b = stats::BLOCK;
        let mut values: Vec<Option<f64>> = (0..3 * b + 5).map(|i| Some((i % 113) as f64 - 40.0)).collect();
        for v in values.iter_mut().take(2 * b).skip(b) {
            *v = None; // the whole second block
        }
        for i in [5, 17, 2 * b + 1, 2 * b + 64, 3 * b + 4] {
            values[i] = Some(f64::NAN);
        }
        let col = Float64Array::from(values);
        assert_stats("null block and NaNs", &stats::column_stats(&col), &kstats(&col), 1e-10);

        let empty = stats::column_stats(&Float64Array::from(Vec::<f64>::new()));
        assert_eq!((empty.rows, empty.nulls, empty.nans), (0, 0, 0), "empty column: {empty:?}");
        assert!(empty.mean.is_nan(), "the mean of an empty column is NaN");
        let nan = stats::column_stats(&Float64Array::from(vec![f64::NAN; b + 3]));
        assert_eq!((nan.rows, nan.nans), (b + 3, b + 3), "all-NaN column counts every value as NaN: {nan:?}");
        assert!(nan.mean.is_nan() && nan.min == f64::INFINITY, "no valid value: NaN mean, +inf min ({nan:?})");
        let nulls = stats::column_stats(&Float64Array::from(vec![None::<f64>; 2 * b + 1]));
        assert_eq!((nulls.rows, nulls.nulls), (2 * b + 1, 2 * b + 1), "all-null column: {nulls:?}");

        // A sliced array (offset into its buffers and bitmap) must be read from its offset.
        let base = amounts_with_holes(6);
        let part = base.slice(123, base.len() - 200);
        assert_stats("a sliced column", &stats::column_stats(&part), &kstats(&part), 1e-10);
        assert_stats("a sliced column (scalar twin)", &stats::column_stats_scalar(&part), &kstats(&part), 1e-10);
    }

    /// 1e9 + noise over many blocks: block means near 1e9 must not lose the spread.
    fn simd_stats_are_stable_on_a_large_offset() {
        let mut rng = Rng(8);
        for offset in [1e9, 1e11] {
            let col = Float64Array::from((0..50_000).map(|_| offset + rng.unit() * 2.0 - 1.0).collect::<Vec<_>>());
            assert_stats(&format!("offset {offset:e}"), &stats::column_stats(&col), &kstats(&col), 1e-6);
        }
        let amounts = Float64Array::from(tiny_transactions(3).amount);
        assert_stats("transaction amounts", &stats::column_stats(&amounts), &kstats(&amounts), 1e-10);
    }

    // ------------------------------------------------------------ quantiles

    /// Deciles and extreme quantiles of amounts with holes equal kernels' (NumPy's linear method).
    fn quantiles_match_kernels_on_transaction_amounts() {
        let qs = [0.0, 0.01, 0.1, 0.25, 0.333, 0.5, 0.75, 0.9, 0.99, 0.999, 1.0];
        for seed in [1u64, 7] {
            let col = amounts_with_holes(seed);
            let got = stats::quantiles(&col, &qs).unwrap();
            let want = kernels::data::quantiles(&col, &qs).unwrap();
            for ((q, g), w) in qs.iter().zip(&got).zip(&want) {
                assert!(close(*g, *w, 1e-12, *w), "seed {seed}: quantile {q} is {g}, kernels has {w}");
            }
        }
        let shuffled_qs = [0.9, 0.1, 0.5];
        let col = amounts_with_holes(2);
        let got = stats::quantiles(&col, &shuffled_qs).unwrap();
        let want = kernels::data::quantiles(&col, &shuffled_qs).unwrap();
        assert!(got.iter().zip(&want).all(|(g, w)| close(*g, *w, 1e-12, *w)), "results follow the order of qs: got {got:?}, want {want:?}");
    }

    /// One value, two values, duplicates, nulls and NaNs left out, nothing valid.
    fn quantiles_skip_nulls_and_nans_and_handle_tiny_columns() {
        let one = Float64Array::from(vec![None, Some(7.0), Some(f64::NAN)]);
        assert_eq!(stats::quantiles(&one, &[0.0, 0.3, 1.0]).unwrap(), [7.0, 7.0, 7.0], "a single valid value is every quantile");
        let two = Float64Array::from(vec![Some(f64::NAN), Some(10.0), None, Some(0.0)]);
        assert_eq!(stats::quantiles(&two, &[0.25, 0.5]).unwrap(), [2.5, 5.0], "quantiles of 0 and 10 interpolate");
        let dup = Float64Array::from(vec![3.0, 1.0, 3.0, 3.0, 2.0]);
        assert_eq!(stats::quantiles(&dup, &[0.5, 0.125, 1.0]).unwrap(), [3.0, 1.5, 3.0], "duplicates count as separate ranks");
        let none = Float64Array::from(vec![None, Some(f64::NAN)]);
        let got = stats::quantiles(&none, &[0.1, 0.9]).unwrap();
        assert!(got.len() == 2 && got.iter().all(|q| q.is_nan()), "no valid values: NaN for each quantile, got {got:?}");
        assert!(stats::quantiles(&none, &[]).unwrap().is_empty(), "no quantiles asked, none returned");
        let neg = Float64Array::from(vec![-0.0, -5.0, f64::NEG_INFINITY, 2.0]);
        assert_eq!(stats::quantiles(&neg, &[0.0, 1.0]).unwrap(), [f64::NEG_INFINITY, 2.0], "infinities are valid values");
    }

    /// q below 0, above 1 or NaN is an InvalidParameter error.
    fn quantiles_reject_q_outside_zero_one() {
        let col = Float64Array::from(vec![1.0, 2.0, 3.0]);
        for bad in [-0.01, 1.0001, f64::NAN, f64::INFINITY] {
            match stats::quantiles(&col, &[0.5, bad]) {
                Err(lab::Error::InvalidParameter(_)) => {}
                other => panic!("quantile {bad} must be Err(InvalidParameter), got {other:?}"),
            }
        }
        let empty = Float64Array::from(Vec::<f64>::new());
        assert!(matches!(stats::quantiles(&empty, &[2.0]), Err(lab::Error::InvalidParameter(_))), "q is checked even on an empty column");
    }

    // ------------------------------------------------------------ transforms

    /// Standardizer and min-max equal kernels' on amounts; parameters come from train only.
    fn scalers_match_kernels_and_use_only_training_statistics() {
        let train = amounts_with_holes(1);
        let test = amounts_with_holes(2);
        let s = Standardizer::fit(&train);
        let ks = kernels::data::Standardizer::fit(&train).unwrap();
        assert!(close(s.mean, ks.mean, 1e-12, ks.std) && close(s.std, ks.std, 1e-10, ks.std), "standardizer {s:?}, kernels {ks:?}");
        let m = MinMaxScaler::fit(&train);
        let km = kernels::data::MinMaxScaler::fit(&train).unwrap();
        assert_eq!((m.min, m.max), (km.min, km.max), "min-max fit");
        let (got, want) = (s.apply(&test), ks.apply(&test).unwrap());
        let (gm, wm) = (m.apply(&test), km.apply(&test).unwrap());
        assert_eq!(got.len(), test.len());
        for i in 0..test.len() {
            assert_eq!(got.is_null(i), test.is_null(i), "row {i}: nulls must stay null, and only nulls");
            assert_eq!(gm.is_null(i), test.is_null(i), "row {i}: nulls must stay null (min-max)");
            if test.is_valid(i) {
                assert!(close(got.value(i), want.value(i), 1e-9, 1.0), "row {i}: standardised {} vs {}", got.value(i), want.value(i));
                assert!(close(gm.value(i), wm.value(i), 1e-12, 1.0), "row {i}: min-max {} vs {}", gm.value(i), wm.value(i));
            }
        }
        // Fitting on train only: a test set far outside the training range is not clipped and does not move the fit.
        let far = Float64Array::from(vec![1e6]);
        assert!(m.apply(&far).value(0) > 1.0, "min-max must not clip values beyond the training range");
        let constant = Float64Array::from(vec![4.0; 10]);
        let (sc, mc) = (Standardizer::fit(&constant), MinMaxScaler::fit(&constant));
        assert_eq!(sc.apply(&Float64Array::from(vec![4.0, 9.0])).values().to_vec(), [0.0, 0.0], "constant column: std 0 maps to 0");
        assert_eq!(mc.apply(&Float64Array::from(vec![4.0, 9.0])).values().to_vec(), [0.0, 0.0], "constant column: range 0 maps to 0");
    }

    /// Bins on amounts equal kernels'; a skewed column with repeated quantiles gets fewer, distinct edges.
    fn quantile_bins_match_kernels_even_on_skewed_columns() {
        let train = amounts_with_holes(3);
        let test = amounts_with_holes(4);
        for k in [1usize, 2, 4, 10] {
            let b = QuantileBinner::fit(&train, k).unwrap();
            let kb = kernels::data::QuantileBinner::fit(&train, k).unwrap();
            assert_eq!(b.edges.len(), kb.edges.len(), "{k} bins: edges {:?}, kernels {:?}", b.edges, kb.edges);
            assert!(b.edges.iter().zip(&kb.edges).all(|(x, y)| close(*x, *y, 1e-12, *y)), "{k} bins: edges {:?} vs {:?}", b.edges, kb.edges);
            let (got, want) = (b.apply(&test), kb.apply(&test).unwrap());
            for i in 0..test.len() {
                assert_eq!(got.is_null(i), want.is_null(i), "{k} bins, row {i}: null and NaN give null");
                if want.is_valid(i) {
                    assert_eq!(got.value(i), want.value(i), "{k} bins, row {i} (value {:?})", test.iter().nth(i));
                }
            }
        }
        let skewed = Float64Array::from((0..100).map(|i| if i < 80 { 0.0 } else { i as f64 }).collect::<Vec<_>>());
        let b = QuantileBinner::fit(&skewed, 10).unwrap();
        assert!(b.edges.windows(2).all(|w| w[0] < w[1]), "edges must be strictly increasing: {:?}", b.edges);
        assert_eq!(b.edges[0], 0.0, "80% zeros: the low edges collapse to one 0.0");
        assert_eq!(b.bins(), b.edges.len() + 1);
        let bins = b.apply(&Float64Array::from(vec![-1.0, 0.0, 1000.0]));
        assert_eq!(bins.values().to_vec(), [0, 1, b.edges.len() as u32], "below all edges, at the first edge, above all");
        assert!(matches!(QuantileBinner::fit(&skewed, 0), Err(lab::Error::InvalidParameter(_))), "0 bins is an error");
        let none = QuantileBinner::fit(&Float64Array::from(vec![None::<f64>; 3]), 4).unwrap();
        assert!(none.edges.is_empty(), "no valid training values: no edges, got {:?}", none.edges);
    }

    /// Categories by falling frequency then name; unseen, dropped and null values get all zeros.
    fn one_hot_orders_by_frequency_and_zeroes_unseen_values() {
        let t = tiny_transactions(5);
        let train = StringArray::from(t.category.clone());
        let enc = OneHotEncoder::fit(&train, None);
        let kenc = kernels::data::OneHotEncoder::fit(&train, None).unwrap();
        assert_eq!(enc.categories, kenc.categories, "category order: by count descending, then name");
        let ties = StringArray::from(vec![Some("b"), Some("c"), Some("a"), None, Some("c"), Some("a"), Some("b")]);
        assert_eq!(OneHotEncoder::fit(&ties, None).categories, ["a", "b", "c"], "equal counts are ordered by name");
        let top = OneHotEncoder::fit(&ties, Some(1));
        assert_eq!(top.categories, ["a"], "max_categories keeps the first ones");
        let test = StringArray::from(vec![Some("a"), Some("b"), None, Some("zzz")]);
        let out = top.apply(&test);
        assert_eq!(out.len(), 1, "one indicator column per kept category");
        assert_eq!(out[0].values().to_vec(), [1, 0, 0, 0], "dropped, null and unseen values are all zeros");
        assert_eq!(out[0].null_count(), 0, "indicators have no nulls");
        let full = OneHotEncoder::fit(&ties, None).apply(&test);
        assert_eq!(full.iter().map(|c| c.values().to_vec()).collect::<Vec<_>>(), [vec![1, 0, 0, 0], vec![0, 1, 0, 0], vec![0, 0, 0, 0]]);
    }

    /// log1p equals f64::ln_1p, keeps nulls and NaN, accepts -1 and rejects anything below.
    fn log1p_keeps_nulls_and_rejects_values_below_minus_one() {
        let col = Float64Array::from(vec![Some(0.0), None, Some(1e-18), Some(f64::NAN), Some(-1.0), Some(99.0)]);
        let got = lab::transform::log1p(&col).unwrap();
        assert!(got.is_null(1) && !got.is_null(3), "nulls stay null, NaN is a value");
        assert_eq!(got.value(0), 0.0);
        assert_eq!(got.value(2), 1e-18, "log1p of a tiny x is x: use ln_1p, not (1 + x).ln()");
        assert!(got.value(3).is_nan() && got.value(4) == f64::NEG_INFINITY);
        assert!((got.value(5) - 100f64.ln()).abs() < 1e-12);
        let bad = Float64Array::from(vec![Some(1.0), None, Some(-1.5)]);
        assert!(matches!(lab::transform::log1p(&bad), Err(lab::Error::InvalidParameter(_))), "log1p(-1.5) is an error");
    }

    // ------------------------------------------------------------ asof-join

    /// The leakage trap: a feature stamped exactly at the event time is known; one µs later is the future.
    fn asof_allows_a_feature_at_the_event_time_but_not_one_microsecond_later() {
        let t = 1_704_067_200_000_000i64;
        // Card 7: a stale value at t - 1 h, the value at exactly t, and one written 1 µs after t.
        let ft_e = [7, 7, 7];
        let ft_t = [t + 1, t, t - 3_600_000_000];
        let got = join(&[7, 7, 7], &[t, t - 1, t + 1], &ft_e, &ft_t, AsOfRule::default());
        assert_eq!(got, [Some(1), Some(2), Some(0)], "event at t takes the row at t (never t + 1 µs); at t - 1 µs the stale row; at t + 1 µs the newest");
        let got = join(&[7], &[t - 3_600_000_001], &ft_e, &ft_t, AsOfRule::default());
        assert_eq!(got, [None], "an event before every feature of its card gets nothing");
    }

    /// With allow_exact_matches = false only strictly earlier features count.
    fn asof_without_exact_matches_takes_strictly_earlier_rows() {
        let strict = AsOfRule { allow_exact_matches: false, tolerance: None };
        let got = join(&[1, 1, 1, 2], &[10, 11, 20, 5], &[1, 1, 2], &[10, 20, 5], strict);
        assert_eq!(got, [None, Some(0), Some(0), None], "strictly before: the row at 10 for events at 11 and 20; nothing at 10 or for card 2 at 5");
        let ev: Vec<i64> = (0..60).map(|i| i % 4).collect();
        let et: Vec<i64> = (0..60).map(|i| (i * 7) % 30).collect();
        let fe: Vec<i64> = (0..40).map(|i| i % 5).collect();
        let ftm: Vec<i64> = (0..40).map(|i| (i * 11) % 30).collect();
        assert_eq!(join(&ev, &et, &fe, &ftm, strict), kernels_join(&ev, &et, &fe, &ftm, strict), "strict join vs kernels");
    }

    /// Several feature rows of one card at the same instant: the last one in the input wins, whatever the order of the others.
    fn asof_last_write_wins_on_identical_feature_times() {
        // Rows 0, 3 and 4 are card 5 at time 100; row 4 comes last.
        let fe = [5, 5, 6, 5, 5, 5];
        let ft = [100, 50, 100, 100, 100, 200];
        let got = join(&[5, 5, 6], &[100, 150, 100], &fe, &ft, AsOfRule::default());
        assert_eq!(got, [Some(4), Some(4), Some(2)], "the last row written at 100 (index 4) wins for card 5");
        let strict = AsOfRule { allow_exact_matches: false, tolerance: None };
        assert_eq!(join(&[5], &[100], &fe, &ft, strict), [Some(1)], "strictly before 100: the row at 50");
    }

    /// Shuffled events and features give the same matches (by row identity) as sorted ones, and the same as kernels.
    fn asof_handles_out_of_order_input() {
        let mut rng = Rng(3);
        let (n_ev, n_ft) = (3_000usize, 2_000usize);
        let ev_e: Vec<i64> = (0..n_ev).map(|_| rng.below(60) as i64).collect();
        let ev_t: Vec<i64> = (0..n_ev).map(|_| rng.below(10_000) as i64).collect();
        let ft_e: Vec<i64> = (0..n_ft).map(|_| rng.below(70) as i64).collect();
        let ft_t: Vec<i64> = (0..n_ft).map(|_| rng.below(10_000) as i64 / 10 * 10).collect(); // many equal times
        for rule in [AsOfRule::default(), AsOfRule { allow_exact_matches: false, tolerance: Some(400) }] {
            let got = join(&ev_e, &ev_t, &ft_e, &ft_t, rule);
            let want = kernels_join(&ev_e, &ev_t, &ft_e, &ft_t, rule);
            assert_eq!(got.len(), n_ev, "one entry per event");
            for i in 0..n_ev {
                assert_eq!(got[i], want[i], "{rule:?}: event {i} (card {}, t {}) matched {:?}, kernels says {:?}", ev_e[i], ev_t[i], got[i], want[i]);
            }
        }
        // Reversed inputs: events keep their order, matches follow the rows (last write = last in the *given* order).
        let ev: Vec<usize> = (0..n_ev).rev().collect();
        let e2: Vec<i64> = ev.iter().map(|&i| ev_e[i]).collect();
        let t2: Vec<i64> = ev.iter().map(|&i| ev_t[i]).collect();
        let got = join(&e2, &t2, &ft_e, &ft_t, AsOfRule::default());
        let want = kernels_join(&e2, &t2, &ft_e, &ft_t, AsOfRule::default());
        assert_eq!(got, want, "reversed event order");
    }

    /// Unknown entities, entities whose features all come later, and empty sides give None.
    fn asof_gives_none_for_missing_entities_and_future_only_features() {
        let got = join(&[1, 2, 3, 4], &[100, 100, 100, 100], &[1, 2, 2, 4], &[50, 150, 200, 100], AsOfRule::default());
        assert_eq!(got, [Some(0), None, None, Some(3)], "card 2 only has future features; card 3 has none; card 4 matches at exactly 100");
        assert_eq!(join(&[1, 2], &[5, 6], &[], &[], AsOfRule::default()), [None, None], "no features at all");
        assert!(join(&[], &[], &[1], &[1], AsOfRule::default()).is_empty(), "no events, no output");
        // Entities next to each other in sort order must not leak into one another.
        let got = join(&[2, 3], &[1_000, 1_000], &[1, 3, 4], &[10, 2_000, 10], AsOfRule::default());
        assert_eq!(got, [None, None], "card 2 must not take card 1's row, card 3 must not take card 4's");
        let extreme = join(&[i64::MIN, i64::MAX], &[i64::MAX, i64::MIN], &[i64::MIN, i64::MAX], &[i64::MIN, i64::MIN], AsOfRule::default());
        assert_eq!(extreme, [Some(0), Some(1)], "extreme keys and times");
    }

    /// A match older than event_time - tolerance is dropped; exactly tolerance old is kept.
    fn asof_respects_the_tolerance() {
        let rule = AsOfRule { allow_exact_matches: true, tolerance: Some(60) };
        let got = join(&[1, 1, 1, 1], &[100, 160, 161, 40], &[1, 1], &[100, 30], rule);
        assert_eq!(got, [Some(0), Some(0), None, Some(1)], "age 0 and 60 kept, 61 dropped; at 40 the row at 30 is 10 old");
        let got = join(&[1], &[i64::MAX], &[1], &[i64::MIN], AsOfRule { allow_exact_matches: true, tolerance: Some(i64::MAX) });
        assert_eq!(got, [None], "an age beyond i64 (compute it in i128) is beyond any tolerance");
        let wide = AsOfRule { allow_exact_matches: true, tolerance: Some(0) };
        assert_eq!(join(&[1, 1], &[100, 101], &[1], &[100], wide), [Some(0), None], "tolerance 0 keeps only exact matches");
    }

    /// The batch-level join (given wrapper + your indices) equals kernels::data::asof_join on shuffled transactions.
    fn asof_join_matches_kernels_on_shuffled_transactions() {
        let t = tiny_transactions(12);
        let n = t.len();
        let mut rng = Rng(99);
        let mut order: Vec<usize> = (0..n).collect();
        rng.shuffle(&mut order);
        // Events: the transactions, shuffled. Features: the amount of each transaction, known one hour later.
        let events = record_batch(vec![
            ("card_id", Column::I64(order.iter().map(|&i| t.card_id[i] as i64).collect())),
            ("ts", Column::TimestampMicros(order.iter().map(|&i| t.timestamp_micros[i]).collect())),
            ("transaction_id", Column::I64(order.iter().map(|&i| t.transaction_id[i] as i64).collect())),
        ])
        .unwrap();
        rng.shuffle(&mut order);
        let features = record_batch(vec![
            ("card_id", Column::I64(order.iter().map(|&i| t.card_id[i] as i64).collect())),
            ("ts", Column::TimestampMicros(order.iter().map(|&i| t.timestamp_micros[i] + 3_600_000_000).collect())),
            ("last_amount", Column::F64(order.iter().map(|&i| t.amount[i]).collect())),
        ])
        .unwrap();
        let config = AsOfConfig::new("card_id", "ts");
        let got = lab::asof::asof_join(&events, &features, &config).unwrap();
        let want = kernels::data::asof_join(&events, &features, &config).unwrap();
        assert_eq!(got.schema(), want.schema(), "output schema");
        let (g, w) = (got.column(3).as_primitive::<Float64Type>(), want.column(3).as_primitive::<Float64Type>());
        let mut matched = 0;
        for i in 0..n {
            assert_eq!(g.is_null(i), w.is_null(i), "event row {i}: match vs no match differs from kernels");
            if w.is_valid(i) {
                matched += 1;
                assert_eq!(g.value(i), w.value(i), "event row {i}: last_amount");
            }
        }
        assert!(matched > n / 2, "most transactions have an earlier one on the same card ({matched} of {n})");
    }

    // ------------------------------------------------------------ delta-read

    /// delta-rs writes a table in five commits; your snapshot and read_table see each version's rows.
    fn your_reader_reads_delta_rs_tables_at_every_old_version() {
        let dir = TempDir::new("rs-read");
        let path = dir.path().join("t");
        let parts = [feature_rows(0, 40), feature_rows(40, 7), feature_rows(47, 1), feature_rows(48, 100)];
        lab::block_on(async {
            let mut table = FeatureTable::create(&path, "card_features", &feature_schema()).await.unwrap();
            for p in &parts {
                table.append(std::slice::from_ref(p)).await.unwrap();
            }
        });
        assert_eq!(delta::latest_version(&path).unwrap(), 4);
        for v in 0..=4u64 {
            let snap = delta::snapshot(&path, Some(v)).unwrap();
            assert_eq!(snap.version, v);
            assert_eq!(snap.files.len(), v as usize, "version {v} has one data file per append");
            assert_eq!(snap.schema.fields().len(), 4);
            let want = sorted(&parts[..v as usize]);
            let got = sorted(&delta::read_table(&path, Some(v)).unwrap());
            assert_eq!(got, want, "rows at version {v}");
        }
        let latest = delta::snapshot(&path, None).unwrap();
        assert_eq!(latest.version, 4, "None means the latest version");
        assert_eq!(latest.name.as_deref(), Some("card_features"));
        let total: u64 = latest.files.iter().map(|f| f.num_records.unwrap()).sum();
        assert_eq!(total, 148, "numRecords from the stats strings");
        assert!(latest.files.iter().all(|f| f.size > 0 && path.join(&f.path).is_file()), "sizes and paths of live files");
    }

    /// A hand-written log with removes and a re-add: every version's live files, in first-added order.
    fn snapshot_applies_removes_and_re_adds_in_order() {
        let dir = TempDir::new("removes");
        let path = dir.path().to_path_buf();
        let schema = feature_schema();
        let (a, b, c) = (feature_rows(0, 3), feature_rows(3, 4), feature_rows(7, 5));
        let mut v0 = vec![json!({ "commitInfo": { "operation": "CREATE TABLE" } })];
        v0.extend(protocol_and_metadata(&schema));
        write_commit(&path, 0, &v0);
        write_commit(&path, 1, &[add_action(&path, "a.parquet", &a), add_action(&path, "b.parquet", &b)]);
        let remove_a = json!({ "remove": { "path": "a.parquet", "deletionTimestamp": 1, "dataChange": true } });
        write_commit(&path, 2, &[json!({ "commitInfo": {} }), remove_a.clone(), add_action(&path, "c.parquet", &c)]);
        write_commit(&path, 3, &[add_action(&path, "a.parquet", &a), json!({ "txn": { "appId": "x", "version": 1 } })]);
        let remove_b = json!({ "remove": { "path": "b.parquet", "deletionTimestamp": 2, "dataChange": true } });
        write_commit(&path, 4, &[remove_b, remove_a]);
        let expect: [&[&str]; 5] = [&[], &["a.parquet", "b.parquet"], &["b.parquet", "c.parquet"], &["a.parquet", "b.parquet", "c.parquet"], &["c.parquet"]];
        for (v, files) in expect.iter().enumerate() {
            let snap = delta::snapshot(&path, Some(v as u64)).unwrap();
            assert_eq!(file_names(&snap), *files, "live files at version {v}");
        }
        assert_eq!(sorted(&delta::read_table(&path, Some(3)).unwrap()), sorted(&[a.clone(), b, c.clone()]), "rows at version 3");
        assert_eq!(sorted(&delta::read_table(&path, None).unwrap()), sorted(&[c]), "rows at the latest version");
        // delta-rs agrees on the hand-written log: the test's log is valid Delta.
        assert_eq!(delta_rs_rows(&path, 2), sorted(&[feature_rows(3, 4), feature_rows(7, 5)]));
        // A later metaData replaces the schema (here: a new column, read as nulls from old files).
        let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new("velocity", DataType::Float64, true));
        let wider = Schema::new(fields);
        write_commit(&path, 5, &[protocol_and_metadata(&wider)[1].clone()]);
        let snap = delta::snapshot(&path, Some(5)).unwrap();
        assert_eq!(snap.schema.fields().len(), 5, "the metaData of commit 5 adds a column");
        assert_eq!(delta::snapshot(&path, Some(4)).unwrap().schema.fields().len(), 4, "version 4 still has the old schema");
    }

    /// Missing commits, folders that are no table, versions beyond the latest, a log without metaData.
    fn snapshot_rejects_gaps_non_tables_and_future_versions() {
        let dir = TempDir::new("errors");
        let nothing = dir.path().join("nothing");
        std::fs::create_dir_all(&nothing).unwrap();
        assert!(matches!(delta::latest_version(&nothing), Err(DeltaError::NotATable(_))), "a folder without _delta_log");
        assert!(matches!(delta::snapshot(&nothing, None), Err(DeltaError::NotATable(_))));
        std::fs::create_dir_all(nothing.join("_delta_log")).unwrap();
        std::fs::write(nothing.join("_delta_log/_last_checkpoint"), "{}").unwrap();
        assert!(matches!(delta::latest_version(&nothing), Err(DeltaError::NotATable(_))), "a _delta_log with no commit file");

        let gap = dir.path().join("gap");
        write_commit(&gap, 0, &protocol_and_metadata(&feature_schema()));
        write_commit(&gap, 2, &[add_action(&gap, "x.parquet", &feature_rows(0, 2))]);
        std::fs::write(gap.join("_delta_log/00000000000000000009.crc"), "{}").unwrap();
        std::fs::write(gap.join("_delta_log/.tmp-123.json"), "{}").unwrap();
        assert_eq!(delta::latest_version(&gap).unwrap(), 2, "only 20-digit .json files are commits");
        assert!(matches!(delta::snapshot(&gap, Some(2)), Err(DeltaError::Corrupt(_))), "commit 1 is missing");
        assert_eq!(delta::snapshot(&gap, Some(0)).unwrap().files.len(), 0, "version 0 is still readable");
        match delta::snapshot(&gap, Some(3)) {
            Err(DeltaError::NoSuchVersion { requested: 3, latest: 2 }) => {}
            other => panic!("version 3 of a log ending at 2 must be NoSuchVersion {{ 3, 2 }}, got {other:?}"),
        }
        let headless = dir.path().join("headless");
        write_commit(&headless, 0, &[json!({ "commitInfo": {} })]);
        assert!(matches!(delta::snapshot(&headless, None), Err(DeltaError::Corrupt(_))), "no metaData by the requested version");
    }

    /// A protocol that needs reader version 3 (deletion vectors) or 2 (column mapping) is refused, not misread.
    fn snapshot_refuses_reader_versions_it_does_not_implement() {
        for (reader, features) in [(2u64, None), (3, Some(json!(["deletionVectors"])))] {
            let dir = TempDir::new("protocol");
            let path = dir.path().to_path_buf();
            let mut actions = protocol_and_metadata(&feature_schema());
            actions[0] = match &features {
                Some(f) => json!({ "protocol": { "minReaderVersion": reader, "minWriterVersion": 7, "readerFeatures": f, "writerFeatures": f } }),
                None => json!({ "protocol": { "minReaderVersion": reader, "minWriterVersion": 5 } }),
            };
            write_commit(&path, 0, &actions);
            match delta::snapshot(&path, None) {
                Err(DeltaError::Unsupported(_)) => {}
                other => panic!("minReaderVersion {reader}: expected Unsupported, got {other:?}"),
            }
        }
    }

    // ------------------------------------------------------------ delta-write

    /// Ten appends of varying sizes; delta-rs reads every version, including empty version 0.
    fn delta_rs_reads_many_appends_at_every_version() {
        let dir = TempDir::new("appends");
        let path = dir.path().join("features");
        delta::create_table(&path, "card_features", &feature_schema()).unwrap();
        let mut parts = Vec::new();
        let mut first = 0;
        for (i, n) in [5i64, 1, 30, 2, 77, 3, 9, 1, 250, 4].into_iter().enumerate() {
            let batch = feature_rows(first, n);
            first += n;
            // Some appends come as two batches; both go into one commit.
            let v = if i % 3 == 2 {
                delta::append(&path, &[batch.slice(0, 1), batch.slice(1, n as usize - 1)]).unwrap()
            } else {
                delta::append(&path, std::slice::from_ref(&batch)).unwrap()
            };
            parts.push(batch);
            assert_eq!(v, i as u64 + 1, "append {i} must create version {}", i + 1);
        }
        assert_eq!(delta::append(&path, &[]).unwrap(), 10, "an empty append commits nothing and returns the current version");
        assert_eq!(delta::append(&path, &[feature_rows(0, 0)]).unwrap(), 10, "a batch of 0 rows commits nothing");
        let latest = lab::block_on(async { FeatureTable::open(&path).await?.latest_version().await }).unwrap();
        assert_eq!(latest, 10, "delta-rs sees ten commits after the create");
        for v in 0..=10u64 {
            assert_eq!(delta_rs_rows(&path, v), sorted(&parts[..v as usize]), "delta-rs rows at version {v}");
        }
        let table = lab::block_on(FeatureTable::open(&path)).unwrap();
        let seen: Vec<(String, DataType)> = table.schema().fields().iter().map(|f| (f.name().clone(), f.data_type().clone())).collect();
        let wrote: Vec<(String, DataType)> = feature_schema().fields().iter().map(|f| (f.name().clone(), f.data_type().clone())).collect();
        assert_eq!(seen, wrote, "delta-rs sees the schema you wrote");
    }

    /// Overwrite removes every live file in one commit; older versions still read their rows.
    fn overwrite_removes_files_and_old_versions_survive() {
        let dir = TempDir::new("overwrite");
        let path = dir.path().join("features");
        delta::create_table(&path, "card_features", &feature_schema()).unwrap();
        delta::append(&path, &[feature_rows(0, 10)]).unwrap();
        delta::append(&path, &[feature_rows(10, 5)]).unwrap();
        assert_eq!(delta::overwrite(&path, &[feature_rows(100, 3)]).unwrap(), 3);
        delta::append(&path, &[feature_rows(200, 2)]).unwrap();
        assert_eq!(delta::overwrite(&path, &[]).unwrap(), 5, "an overwrite with no rows empties the table in a new version");
        let want: [Vec<RecordBatch>; 6] = [
            vec![],
            vec![feature_rows(0, 10)],
            vec![feature_rows(0, 10), feature_rows(10, 5)],
            vec![feature_rows(100, 3)],
            vec![feature_rows(100, 3), feature_rows(200, 2)],
            vec![],
        ];
        for (v, rows) in want.iter().enumerate() {
            assert_eq!(delta_rs_rows(&path, v as u64), sorted(rows), "delta-rs rows at version {v}");
        }
        let commit3 = std::fs::read_to_string(path.join("_delta_log/00000000000000000003.json")).unwrap();
        let removes = commit3.lines().filter(|l| serde_json::from_str::<Value>(l).unwrap().get("remove").is_some()).count();
        assert_eq!(removes, 2, "the overwrite at version 3 removes both live files in its own commit");
        let files = std::fs::read_dir(&path).unwrap().filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "parquet")).count();
        assert!(files >= 4, "removed files stay on disk for time travel (found {files} Parquet files)");
    }

    /// A commit of an existing version fails with VersionExists and leaves the existing file untouched.
    fn commits_are_put_if_absent() {
        let dir = TempDir::new("commit");
        let path = dir.path().join("t");
        delta::create_table(&path, "t", &feature_schema()).unwrap();
        let before = std::fs::read(path.join("_delta_log/00000000000000000000.json")).unwrap();
        match delta::create_table(&path, "t", &feature_schema()) {
            Err(DeltaError::VersionExists(0)) => {}
            other => panic!("creating a table twice must be VersionExists(0), got {other:?}"),
        }
        match delta::commit(&path, 0, &[json!({ "commitInfo": { "evil": true } })]) {
            Err(DeltaError::VersionExists(0)) => {}
            other => panic!("committing version 0 again must be VersionExists(0), got {other:?}"),
        }
        assert_eq!(std::fs::read(path.join("_delta_log/00000000000000000000.json")).unwrap(), before, "commit 0 must not change");
        delta::commit(&path, 1, &[json!({ "commitInfo": { "n": 1 } }), json!({ "commitInfo": { "n": 2 } })]).unwrap();
        let text = std::fs::read_to_string(path.join("_delta_log/00000000000000000001.json")).unwrap();
        let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines, [json!({ "commitInfo": { "n": 1 } }), json!({ "commitInfo": { "n": 2 } })], "one action per line, in order");
        assert!(matches!(delta::commit(&path, 1, &[]), Err(DeltaError::VersionExists(1))));
        let log: Vec<String> = std::fs::read_dir(path.join("_delta_log")).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        assert!(log.iter().all(|n| delta::commit_version(n).is_some()), "no temporary files left in the log: {log:?}");
    }

    /// Wrong types, missing, reordered or extra columns are refused before any file or commit is written.
    fn append_refuses_a_wrong_schema_without_committing() {
        let dir = TempDir::new("schema");
        let path = dir.path().join("t");
        delta::create_table(&path, "t", &feature_schema()).unwrap();
        delta::append(&path, &[feature_rows(0, 3)]).unwrap();
        let good = feature_rows(3, 2);
        let wrong_type = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("card_id", DataType::Utf8, true), feature_schema().field(1).clone(), feature_schema().field(2).clone(), feature_schema().field(3).clone()])),
            vec![Arc::new(StringArray::from(vec!["a", "b"])), good.column(1).clone(), good.column(2).clone(), good.column(3).clone()],
        )
        .unwrap();
        let cases = [("wrong type", wrong_type), ("missing column", good.project(&[0, 1, 2]).unwrap()), ("reordered", good.project(&[1, 0, 2, 3]).unwrap())];
        for (what, bad) in cases {
            match delta::append(&path, &[good.clone(), bad]) {
                Err(DeltaError::SchemaMismatch(_)) => {}
                other => panic!("{what}: expected SchemaMismatch, got {other:?}"),
            }
            assert_eq!(delta::latest_version(&path).unwrap(), 1, "{what}: nothing may be committed");
        }
        let parquet = std::fs::read_dir(&path).unwrap().filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "parquet")).count();
        assert_eq!(parquet, 1, "no data file may be written for a refused append");
        let bad_create = Schema::new(vec![Field::new("id", DataType::UInt64, true)]);
        assert!(matches!(delta::create_table(&dir.path().join("u"), "u", &bad_create), Err(DeltaError::SchemaMismatch(_))), "UInt64 has no Delta type");
        assert!(!dir.path().join("u/_delta_log/00000000000000000000.json").exists(), "a refused create commits nothing");
    }

    /// Every commit line is one JSON action; add actions have the required fields and numRecords in a stats string.
    fn add_actions_carry_num_records_and_the_log_is_valid_json() {
        let dir = TempDir::new("actions");
        let path = dir.path().join("t");
        delta::create_table(&path, "named_table", &feature_schema()).unwrap();
        delta::append(&path, &[feature_rows(0, 6), feature_rows(6, 5)]).unwrap();
        let c0: Vec<Value> = std::fs::read_to_string(path.join("_delta_log/00000000000000000000.json")).unwrap().lines().map(|l| serde_json::from_str(l).expect("each line is JSON")).collect();
        let protocol = c0.iter().find_map(|a| a.get("protocol")).expect("commit 0 has a protocol action");
        assert_eq!((protocol["minReaderVersion"].as_u64(), protocol["minWriterVersion"].as_u64()), (Some(1), Some(2)));
        let meta = c0.iter().find_map(|a| a.get("metaData")).expect("commit 0 has a metaData action");
        assert_eq!(meta["name"], "named_table");
        assert_eq!(meta["format"]["provider"], "parquet");
        assert!(meta["id"].as_str().is_some_and(|id| id.len() == 36), "metaData.id is a UUID string");
        let schema = delta::arrow_schema_from_delta(meta["schemaString"].as_str().expect("schemaString is a string")).unwrap();
        assert_eq!(schema.fields().len(), 4);
        let c1: Vec<Value> = std::fs::read_to_string(path.join("_delta_log/00000000000000000001.json")).unwrap().lines().map(|l| serde_json::from_str(l).expect("each line is JSON")).collect();
        let adds: Vec<&Value> = c1.iter().filter_map(|a| a.get("add")).collect();
        assert_eq!(adds.len(), 1, "one append is one data file");
        let add = adds[0];
        for key in ["path", "partitionValues", "size", "modificationTime", "dataChange"] {
            assert!(add.get(key).is_some(), "add action without {key}: {add}");
        }
        let file = path.join(add["path"].as_str().unwrap());
        assert_eq!(add["size"].as_u64(), Some(std::fs::metadata(&file).unwrap().len()), "size is the data file's size in bytes");
        let stats: Value = serde_json::from_str(add["stats"].as_str().expect("stats is a JSON *string*")).unwrap();
        assert_eq!(stats["numRecords"], 11, "numRecords of the appended rows");
        let read = kernels::data::read_parquet(&file, &Default::default()).unwrap();
        assert_eq!(read.num_rows(), 11, "the data file is Parquet with all the rows");
    }
}
