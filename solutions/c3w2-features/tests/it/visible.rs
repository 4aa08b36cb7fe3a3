//! Visible tests of week c3w2 (the grader runs them too): one quick check per task.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use c3w2_features::arrow::array::{Array, AsArray, Float64Array, Int64Array, StringArray};
use c3w2_features::arrow::datatypes::{DataType, Field, Int64Type, Schema};
use c3w2_features::asof::{AsOfRule, Keys, asof_indices};
use c3w2_features::delta::{self, DeltaError};
use c3w2_features::stats::{self, ColumnStats};
use c3w2_features::transform::{MinMaxScaler, OneHotEncoder, QuantileBinner, Standardizer};
use c3w2_features::{RecordBatch, block_on};
use kernels::data::FeatureTable;

/// A fresh folder under the system temp dir, removed on drop (each test gets its own).
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let dir = std::env::temp_dir().join(format!("c3w2-visible-{tag}-{}-{nanos}", std::process::id()));
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

fn close(got: f64, want: f64, tol: f64) -> bool {
    (got - want).abs() <= tol * want.abs().max(1.0)
}

/// `(card_id: Int64, spend: Float64)` rows.
fn feature_batch(ids: &[i64], spend: &[f64]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("card_id", DataType::Int64, true),
        Field::new("spend", DataType::Float64, true),
    ]));
    RecordBatch::try_new(
        schema,
        vec![Arc::new(Int64Array::from(ids.to_vec())), Arc::new(Float64Array::from(spend.to_vec()))],
    )
    .unwrap()
}

/// All `card_id`s of some batches, sorted.
fn sorted_ids(batches: &[RecordBatch]) -> Vec<i64> {
    let mut ids: Vec<i64> =
        batches.iter().flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec()).collect();
    ids.sort_unstable();
    ids
}

graded! {
    /// [2, null, 4, NaN, 6, 8]: 6 rows, 1 null, 1 NaN; mean 5, population variance 5, min 2, max 8.
    fn scalar_stats_of_a_small_column_with_a_null_and_a_nan() {
        let col = Float64Array::from(vec![Some(2.0), None, Some(4.0), Some(f64::NAN), Some(6.0), Some(8.0)]);
        let s = stats::column_stats_scalar(&col);
        assert_eq!((s.rows, s.nulls, s.nans), (6, 1, 1), "rows, nulls, nans (got {s:?})");
        assert!(close(s.mean, 5.0, 1e-12), "mean of 2, 4, 6, 8 is 5, got {}", s.mean);
        assert!(close(s.variance(), 5.0, 1e-12), "population variance of 2, 4, 6, 8 is 5, got {}", s.variance());
        assert_eq!((s.min, s.max), (2.0, 8.0), "min and max (got {s:?})");
        assert!(close(s.null_rate(), 1.0 / 6.0, 1e-12), "null rate is 1/6, got {}", s.null_rate());
    }

    /// Merging the statistics of [1, 2] and [3, 4, 5] gives those of [1, 2, 3, 4, 5].
    fn merge_of_two_parts_equals_the_whole() {
        let a = ColumnStats { rows: 2, nulls: 0, nans: 0, mean: 1.5, m2: 0.5, min: 1.0, max: 2.0 };
        let b = ColumnStats { rows: 4, nulls: 1, nans: 0, mean: 4.0, m2: 2.0, min: 3.0, max: 5.0 };
        let m = a.merge(&b);
        assert_eq!((m.rows, m.nulls, m.valid()), (6, 1, 5), "counts add up (got {m:?})");
        assert!(close(m.mean, 3.0, 1e-12), "mean of 1..=5 is 3, got {}", m.mean);
        assert!(close(m.m2, 10.0, 1e-12), "M2 of 1..=5 is 10, got {}", m.m2);
        assert_eq!((m.min, m.max), (1.0, 5.0), "min and max combine (got {m:?})");
    }

    /// The SIMD statistics agree with kernels' scalar twin on lengths around the lane and block sizes.
    fn simd_stats_match_the_scalar_twin_on_ragged_lengths() {
        for len in [0usize, 1, 3, 4, 5, 17, 100, stats::BLOCK - 1, stats::BLOCK + 3, 2 * stats::BLOCK + 9] {
            let values: Vec<Option<f64>> =
                (0..len).map(|i| if i % 11 == 5 { None } else { Some(((i * 37) % 101) as f64 * 0.5 - 10.0) }).collect();
            let col = Float64Array::from(values);
            let got = stats::column_stats(&col);
            let want = kernels::data::column_stats_scalar(&col).unwrap();
            assert_eq!((got.rows, got.nulls, got.nans), (want.rows, want.nulls, want.nans), "counts, length {len}");
            assert_eq!((got.min, got.max), (want.min, want.max), "min and max, length {len}");
            if len > 1 {
                assert!(close(got.mean, want.mean, 1e-12), "mean, length {len}: got {}, expected {}", got.mean, want.mean);
                assert!(close(got.std(), want.std(), 1e-10), "std, length {len}: got {}, expected {}", got.std(), want.std());
            }
        }
    }

    /// Quantiles of [1, 2, 3, 4] (plus a null): median 2.5, q0.25 = 1.75, q0 = 1, q1 = 4, in the order asked.
    fn quantiles_interpolate_like_numpy() {
        let col = Float64Array::from(vec![Some(4.0), None, Some(1.0), Some(3.0), Some(2.0)]);
        let got = stats::quantiles(&col, &[0.5, 0.25, 0.0, 1.0]).unwrap();
        assert_eq!(got, [2.5, 1.75, 1.0, 4.0], "quantiles 0.5, 0.25, 0, 1 of 1, 2, 3, 4");
    }

    /// Fit on a training column, apply to a test column: the test rows never change the parameters.
    fn transforms_fit_on_train_and_apply_to_test() {
        let train = Float64Array::from(vec![Some(1.0), Some(2.0), None, Some(3.0), Some(4.0), Some(5.0)]);
        let test = Float64Array::from(vec![Some(3.0), None, Some(7.0)]);
        let s = Standardizer::fit(&train);
        assert!(close(s.mean, 3.0, 1e-12) && close(s.std, 2f64.sqrt(), 1e-12), "standardizer fit on 1..=5: {s:?}");
        let z = s.apply(&test);
        assert!(z.is_null(1), "nulls stay null");
        assert!(close(z.value(2), 4.0 / 2f64.sqrt(), 1e-12), "(7 - 3) / sqrt(2), got {}", z.value(2));
        let mm = MinMaxScaler::fit(&train).apply(&test);
        assert!(close(mm.value(2), 1.5, 1e-12), "min-max of 7 on the range [1, 5] is 1.5 (not clipped), got {}", mm.value(2));
        let bins = QuantileBinner::fit(&train, 2).unwrap();
        assert_eq!(bins.edges, [3.0], "2 equal-frequency bins of 1..=5 cut at the median");
        let b = bins.apply(&test);
        assert_eq!((b.value(0), b.is_null(1), b.value(2)), (1, true, 1), "bins of 3, null, 7");
        let cats = StringArray::from(vec![Some("b"), Some("a"), Some("b"), None, Some("c"), Some("a"), Some("b")]);
        let enc = OneHotEncoder::fit(&cats, Some(2));
        assert_eq!(enc.categories, ["b", "a"], "most frequent first, at most 2");
        let out = enc.apply(&StringArray::from(vec!["a", "z"]));
        assert_eq!((out[0].value(0), out[1].value(0), out[0].value(1), out[1].value(1)), (0, 1, 0, 0), "a is [0, 1]; unseen z is all zeros");
    }

    /// Card 1 has features at t = 10, 20 and 30; events at 5, 20, 25 and 40 get none, the one at 20, at 20, at 30.
    fn asof_takes_the_latest_feature_at_or_before_each_event() {
        let features = Keys { entity: &[1, 1, 1, 2], time: &[10, 20, 30, 15] };
        let events = Keys { entity: &[1, 1, 1, 1, 3], time: &[5, 20, 25, 40, 50] };
        let got = asof_indices(events, features, &AsOfRule::default());
        assert_eq!(got, [None, Some(1), Some(1), Some(2), None], "event at 5: nothing yet; at 20: the row at 20; at 25: still 20; at 40: 30; card 3: none");
    }

    /// A table delta-rs wrote, replayed by your snapshot at every version.
    fn snapshot_reads_a_delta_rs_table_at_every_version() {
        let dir = TempDir::new("read");
        let path = dir.path().join("features");
        let batch = feature_batch(&[1, 2, 3], &[1.0, 2.0, 3.0]);
        block_on(async {
            let mut table = FeatureTable::create(&path, "card_features", batch.schema_ref()).await.unwrap();
            table.append(std::slice::from_ref(&batch)).await.unwrap();
            table.append(&[feature_batch(&[4, 5], &[4.0, 5.0])]).await.unwrap();
        });
        assert_eq!(delta::latest_version(&path).unwrap(), 2, "two appends after the create");
        for (version, rows) in [(0u64, 0u64), (1, 3), (2, 5)] {
            let snap = delta::snapshot(&path, Some(version)).unwrap();
            assert_eq!(snap.version, version, "snapshot version");
            let n: u64 = snap.files.iter().map(|f| f.num_records.expect("delta-rs writes numRecords")).sum();
            assert_eq!(n, rows, "rows listed by the live files at version {version}");
        }
        let snap = delta::snapshot(&path, None).unwrap();
        assert_eq!(snap.name.as_deref(), Some("card_features"));
        assert_eq!(snap.schema.field(1).name(), "spend");
        assert_eq!(sorted_ids(&delta::read_table(&path, Some(1)).unwrap()), [1, 2, 3], "version 1 holds the first append only");
        assert!(matches!(delta::snapshot(&path, Some(3)), Err(DeltaError::NoSuchVersion { requested: 3, latest: 2 })));
    }

    /// Your create, append and overwrite, read back by delta-rs at every version.
    fn delta_rs_reads_your_table_at_every_version() {
        let dir = TempDir::new("write");
        let path = dir.path().join("features");
        let first = feature_batch(&[1, 2, 3], &[1.0, 2.0, 3.0]);
        delta::create_table(&path, "card_features", first.schema_ref()).unwrap();
        assert_eq!(delta::append(&path, &[first]).unwrap(), 1);
        assert_eq!(delta::append(&path, &[feature_batch(&[4], &[4.0])]).unwrap(), 2);
        assert_eq!(delta::overwrite(&path, &[feature_batch(&[9], &[9.0])]).unwrap(), 3);
        let read = |v: u64| block_on(async { FeatureTable::open_version(&path, v).await?.read().await }).unwrap();
        assert_eq!(sorted_ids(&read(0)), Vec::<i64>::new(), "version 0 is empty");
        assert_eq!(sorted_ids(&read(1)), [1, 2, 3]);
        assert_eq!(sorted_ids(&read(2)), [1, 2, 3, 4]);
        assert_eq!(sorted_ids(&read(3)), [9], "the overwrite replaced everything");
    }
}
