//! Delta feature tables (Delta Lake transaction protocol): versioned appends, time
//! travel, schema checks.

use std::sync::Arc;

use arrow::array::{AsArray, Float64Array, Int64Array, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, TimeUnit};
use kernels::Error;
use kernels::data::{FeatureTable, RecordBatch};

use super::TempDir;

pub fn feature_schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("card_id", DataType::Int64, true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true),
        Field::new("spend_7d", DataType::Float64, true),
        Field::new("segment", DataType::Utf8, true),
    ]))
}

/// Rows `first..first+n` of a deterministic feature table.
pub fn feature_rows(first: i64, n: i64) -> RecordBatch {
    let ids: Vec<i64> = (first..first + n).collect();
    RecordBatch::try_new(
        feature_schema(),
        vec![
            Arc::new(Int64Array::from(ids.clone())),
            Arc::new(
                TimestampMicrosecondArray::from(
                    ids.iter().map(|i| 1_704_067_200_000_000 + i * 1_000_003).collect::<Vec<_>>(),
                )
                .with_timezone("UTC"),
            ),
            Arc::new(Float64Array::from(
                ids.iter().map(|&i| if i % 5 == 0 { None } else { Some(i as f64 * 1.25 + 0.1) }).collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(
                ids.iter().map(|i| ["low", "mid", "high"][(*i % 3) as usize]).collect::<Vec<_>>(),
            )),
        ],
    )
    .unwrap()
}

/// All rows of `batches` sorted by `card_id`, as one batch.
pub fn sorted(batches: &[RecordBatch]) -> RecordBatch {
    let all = arrow::compute::concat_batches(&feature_schema(), batches).unwrap();
    let idx = arrow::compute::sort_to_indices(all.column(0), None, None).unwrap();
    arrow::compute::take_record_batch(&all, &idx).unwrap()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

#[test]
fn appends_are_versions_and_old_versions_stay_readable() {
    rt().block_on(async {
        let dir = TempDir::new("delta");
        let path = dir.path().join("features");
        let mut table = FeatureTable::create(&path, "card_features", &feature_schema()).await.unwrap();
        assert_eq!(table.version(), 0);
        assert_eq!(table.read().await.unwrap().len(), 0);
        let batches = [feature_rows(0, 100), feature_rows(100, 50), feature_rows(150, 7)];
        for (i, b) in batches.iter().enumerate() {
            let v = table.append(std::slice::from_ref(b)).await.unwrap();
            assert_eq!(v, i as u64 + 1);
            assert_eq!(table.version(), v);
        }
        assert_eq!(table.append(&[]).await.unwrap(), 3, "an empty append commits nothing");
        assert_eq!(table.latest_version().await.unwrap(), 3);

        let latest = FeatureTable::open(&path).await.unwrap();
        assert_eq!(latest.version(), 3);
        assert_eq!(sorted(&latest.read().await.unwrap()), sorted(&batches));
        for v in 0..=3u64 {
            let want = sorted(&batches[..v as usize]);
            let got = sorted(&latest.read_version(v).await.unwrap());
            assert_eq!(got, want, "version {v}");
            let old = FeatureTable::open_version(&path, v).await.unwrap();
            assert_eq!(old.version(), v);
            assert_eq!(sorted(&old.read().await.unwrap()).num_rows(), want.num_rows());
        }
        assert_eq!(latest.schema().fields().len(), 4);
        let ids = sorted(&latest.read().await.unwrap());
        assert_eq!(ids.column(0).as_primitive::<Int64Type>().values().to_vec(), (0..157).collect::<Vec<_>>());
    });
}

#[test]
fn schema_mismatches_are_refused_before_writing() {
    rt().block_on(async {
        let dir = TempDir::new("delta-schema");
        let path = dir.path().join("t");
        let mut table = FeatureTable::create(&path, "t", &feature_schema()).await.unwrap();
        table.append(&[feature_rows(0, 10)]).await.unwrap();
        let good = feature_rows(10, 3);
        let wrong_type = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("card_id", DataType::Utf8, true),
                feature_schema().field(1).clone(),
                feature_schema().field(2).clone(),
                feature_schema().field(3).clone(),
            ])),
            vec![
                Arc::new(StringArray::from(vec!["a", "b", "c"])),
                good.column(1).clone(),
                good.column(2).clone(),
                good.column(3).clone(),
            ],
        )
        .unwrap();
        let missing = good.project(&[0, 1, 2]).unwrap();
        let reordered = good.project(&[1, 0, 2, 3]).unwrap();
        let extra = {
            let mut fields: Vec<Field> = feature_schema().fields().iter().map(|f| f.as_ref().clone()).collect();
            fields.push(Field::new("leak", DataType::Float64, true));
            let mut cols = good.columns().to_vec();
            cols.push(Arc::new(Float64Array::from(vec![1.0, 2.0, 3.0])));
            RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap()
        };
        for (case, bad) in
            [("wrong type", wrong_type), ("missing column", missing), ("reordered", reordered), ("extra column", extra)]
        {
            match table.append(&[good.clone(), bad]).await {
                Err(Error::SchemaMismatch { reason, .. }) => assert!(!reason.is_empty(), "{case}"),
                other => panic!("{case}: expected SchemaMismatch, got {other:?}"),
            }
            assert_eq!(table.latest_version().await.unwrap(), 1, "{case}: nothing may be committed");
        }
        assert_eq!(sorted(&table.read().await.unwrap()).num_rows(), 10);

        // Types Delta cannot keep as given are refused at creation.
        let unsigned = Schema::new(vec![Field::new("id", DataType::UInt64, true)]);
        assert!(matches!(
            FeatureTable::create(dir.path().join("u"), "u", &unsigned).await,
            Err(Error::SchemaMismatch { .. })
        ));
        let nanos =
            Schema::new(vec![Field::new("t", DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())), true)]);
        assert!(matches!(
            FeatureTable::create(dir.path().join("n"), "n", &nanos).await,
            Err(Error::SchemaMismatch { .. })
        ));
        // A second create over an existing table, and opening a folder that is no table.
        assert!(matches!(FeatureTable::create(&path, "t", &feature_schema()).await, Err(Error::Delta(_))));
        assert!(matches!(FeatureTable::open(dir.path().join("nothing")).await, Err(Error::DataIo { .. })));
        assert!(matches!(FeatureTable::open_version(&path, 9).await, Err(Error::Delta(_))));
    });
}
