//! Parquet ⇄ Arrow (Apache Parquet format): round trips, projection, row-group pruning, bad files.

use std::sync::Arc;

use kernels::Error;
use kernels::data::{
    Column, Compression, RangePredicate, ReadOptions, Value, WriteOptions, read_parquet, record_batch, write_parquet,
};

use super::{TempDir, tiny_transactions};

/// Writes `batch` with `options`, reads it back whole, and checks it is identical.
fn check_round_trip(case: &str, batch: &kernels::data::RecordBatch, options: WriteOptions) {
    let dir = TempDir::new("pq-rt");
    let path = dir.path().join("t.parquet");
    let groups = write_parquet(&path, batch.schema_ref(), std::slice::from_ref(batch), &options).unwrap();
    assert_eq!(groups, batch.num_rows().div_ceil(options.row_group_rows).max(1), "{case}: row groups");
    let read = read_parquet(&path, &ReadOptions::default()).unwrap();
    assert_eq!(read.row_groups_total, groups, "{case}");
    assert_eq!(&read.concat().unwrap(), batch, "{case}: values differ after a round trip");
}

#[test]
fn round_trips_are_exact_for_every_codec_and_group_size() {
    let batch = tiny_transactions();
    for (case, rows, compression) in [
        ("zstd, 500-row groups", 500, Compression::Zstd(3)),
        ("snappy, one group", 1 << 20, Compression::Snappy),
        ("uncompressed, 1-row groups", 1, Compression::Uncompressed),
    ] {
        let batch = if rows == 1 { batch.slice(0, 40) } else { batch.clone() };
        check_round_trip(case, &batch, WriteOptions { row_group_rows: rows, compression });
    }
    let nulls = record_batch(vec![
        ("x", Column::OptF64(vec![Some(1.5), None, Some(f64::NAN), Some(-0.0), None])),
        ("c", Column::Category(["a", "b", "a", "c", "a"].map(String::from).to_vec())),
        ("t", Column::TimestampNanos(vec![1, 2, 3, i64::MAX, i64::MIN])),
    ])
    .unwrap();
    let dir = TempDir::new("pq-nulls");
    let path = dir.path().join("n.parquet");
    write_parquet(&path, nulls.schema_ref(), std::slice::from_ref(&nulls), &WriteOptions::default()).unwrap();
    let back = read_parquet(&path, &ReadOptions::default()).unwrap().concat().unwrap();
    // NaN != NaN, so compare through the Arrow data layout (bit patterns and validity).
    assert_eq!(back.schema(), nulls.schema());
    for i in 0..nulls.num_columns() {
        assert_eq!(back.column(i).to_data(), nulls.column(i).to_data(), "column {i}");
    }
}

#[test]
fn projection_reads_only_the_named_columns() {
    let batch = tiny_transactions();
    let dir = TempDir::new("pq-proj");
    let path = dir.path().join("t.parquet");
    write_parquet(&path, batch.schema_ref(), std::slice::from_ref(&batch), &WriteOptions::default()).unwrap();
    let opts = ReadOptions { columns: Some(vec!["amount".into(), "card_id".into()]), ..ReadOptions::default() };
    let read = read_parquet(&path, &opts).unwrap();
    let names: Vec<&str> = read.schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["card_id", "amount"], "projection keeps file order");
    let got = read.concat().unwrap();
    assert_eq!(got.column(0), batch.column_by_name("card_id").unwrap());
    assert_eq!(got.column(1), batch.column_by_name("amount").unwrap());
}

/// Reads `path` with `pred` and checks the row groups kept are `want`, and that every
/// row inside the range is among the rows returned (pruning never drops a match).
fn check_pruning(case: &str, path: &std::path::Path, pred: RangePredicate, want: &[usize], all: &[f64]) {
    let (lo, hi) = (pred.lo, pred.hi);
    let read =
        read_parquet(path, &ReadOptions { predicate: Some(pred), batch_size: 100, ..Default::default() }).unwrap();
    assert_eq!(read.row_groups_read, want, "{case}");
    let got: Vec<f64> = read
        .batches
        .iter()
        .flat_map(|b| b.column(0).as_any().downcast_ref::<arrow::array::Float64Array>().unwrap().values().to_vec())
        .collect();
    let as_f = |v: Option<Value>, d: f64| match v {
        Some(Value::Float(x)) => x,
        Some(Value::Int(x)) => x as f64,
        None => d,
    };
    let (lo, hi) = (as_f(lo, f64::NEG_INFINITY), as_f(hi, f64::INFINITY));
    let matching = all.iter().filter(|&&x| x >= lo && x <= hi).count();
    assert_eq!(got.iter().filter(|&&x| x >= lo && x <= hi).count(), matching, "{case}: a matching row was pruned");
}

#[test]
fn row_groups_are_pruned_by_min_max_statistics() {
    let x: Vec<f64> = (0..10_000).map(|i| i as f64 * 0.5).collect(); // groups of 1000: [0,499.5], [500,999.5], …
    let batch = record_batch(vec![("x", Column::F64(x.clone())), ("i", Column::I64((0..10_000).collect()))]).unwrap();
    let dir = TempDir::new("pq-prune");
    let path = dir.path().join("p.parquet");
    let opts = WriteOptions { row_group_rows: 1000, ..Default::default() };
    assert_eq!(write_parquet(&path, batch.schema_ref(), std::slice::from_ref(&batch), &opts).unwrap(), 10);
    let p = |lo: Option<Value>, hi: Option<Value>| RangePredicate { column: "x".into(), lo, hi };
    use Value::{Float, Int};
    for (case, pred, want) in [
        ("inside one group", p(Some(Float(600.0)), Some(Float(700.0))), vec![1]),
        ("straddles two", p(Some(Float(999.0)), Some(Float(1000.0))), vec![1, 2]),
        ("bounds equal a max and a min", p(Some(Float(999.5)), Some(Float(1000.0))), vec![1, 2]),
        ("open above", p(Some(Float(4000.0)), None), vec![8, 9]),
        ("open below, integer bound", p(None, Some(Int(10))), vec![0]),
        ("between groups: nothing", p(Some(Float(499.7)), Some(Float(499.9))), vec![]),
        ("outside the file", p(Some(Float(1e9)), None), vec![]),
        ("no bounds", p(None, None), (0..10).collect()),
    ] {
        check_pruning(case, &path, pred, &want, &x);
    }
    // Integer column, exact i64 bounds.
    let read = read_parquet(
        &path,
        &ReadOptions {
            predicate: Some(RangePredicate { column: "i".into(), lo: Some(Int(2999)), hi: Some(Int(3000)) }),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(read.row_groups_read, [2, 3]);
    assert_eq!(read.num_rows(), 2000);
}

#[test]
fn timestamps_prune_with_exact_integer_bounds() {
    let batch = tiny_transactions(); // sorted by time
    let dir = TempDir::new("pq-ts");
    let path = dir.path().join("t.parquet");
    let opts = WriteOptions { row_group_rows: 256, ..Default::default() };
    let groups = write_parquet(&path, batch.schema_ref(), std::slice::from_ref(&batch), &opts).unwrap();
    let ts =
        batch.column_by_name("ts").unwrap().as_any().downcast_ref::<arrow::array::TimestampMicrosecondArray>().unwrap();
    let (lo, hi) = (ts.value(1000), ts.value(1100));
    let pred = RangePredicate { column: "ts".into(), lo: Some(Value::Int(lo)), hi: Some(Value::Int(hi)) };
    let read = read_parquet(&path, &ReadOptions { predicate: Some(pred), ..Default::default() }).unwrap();
    assert!(read.row_groups_read.len() <= 2 && groups > 5, "{:?} of {groups}", read.row_groups_read);
    assert_eq!(read.row_groups_read[0], 1000 / 256);
}

#[test]
fn bad_files_and_bad_requests_are_typed_errors() {
    let batch = tiny_transactions();
    let dir = TempDir::new("pq-bad");
    let good = dir.path().join("good.parquet");
    write_parquet(&good, batch.schema_ref(), std::slice::from_ref(&batch), &WriteOptions::default()).unwrap();
    let bytes = std::fs::read(&good).unwrap();

    let truncated = dir.path().join("truncated.parquet");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let garbage = dir.path().join("garbage.parquet");
    std::fs::write(&garbage, b"this is not a parquet file at all, just text").unwrap();
    let empty = dir.path().join("empty.parquet");
    std::fs::write(&empty, b"").unwrap();
    // Intact magic and length, scrambled footer metadata (the Thrift FileMetaData).
    let corrupt = dir.path().join("corrupt.parquet");
    let mut c = bytes.clone();
    let footer_len = u32::from_le_bytes(c[c.len() - 8..c.len() - 4].try_into().unwrap()) as usize;
    let footer = c.len() - 8 - footer_len;
    c[footer..footer + footer_len / 2].iter_mut().for_each(|b| *b = b.wrapping_mul(31).wrapping_add(7));
    std::fs::write(&corrupt, &c).unwrap();

    for (case, path) in
        [("truncated", &truncated), ("not parquet", &garbage), ("empty", &empty), ("corrupt footer", &corrupt)]
    {
        match read_parquet(path, &ReadOptions::default()) {
            Err(Error::Parquet { path: p, .. }) => assert_eq!(&p, path, "{case}"),
            other => panic!("{case}: expected Error::Parquet, got {other:?}"),
        }
    }
    match read_parquet(dir.path().join("missing.parquet"), &ReadOptions::default()) {
        Err(Error::DataIo { .. }) => {}
        other => panic!("missing file: expected DataIo, got {other:?}"),
    }
    let opts = ReadOptions { columns: Some(vec!["amount".into(), "nope".into()]), ..Default::default() };
    match read_parquet(&good, &opts) {
        Err(Error::MissingColumn { column, available }) => {
            assert_eq!(column, "nope");
            assert!(available.contains(&"amount".to_string()));
        }
        other => panic!("missing column: got {other:?}"),
    }
    let pred = RangePredicate { column: "category".into(), lo: Some(Value::Int(1)), hi: None };
    match read_parquet(&good, &ReadOptions { predicate: Some(pred), ..Default::default() }) {
        Err(Error::ColumnType { column, .. }) => assert_eq!(column, "category"),
        other => panic!("string predicate: got {other:?}"),
    }
    let other_schema = Arc::new(arrow::datatypes::Schema::new(vec![arrow::datatypes::Field::new(
        "x",
        arrow::datatypes::DataType::Int64,
        true,
    )]));
    match write_parquet(dir.path().join("w.parquet"), &other_schema, &[batch], &WriteOptions::default()) {
        Err(Error::SchemaMismatch { .. }) => {}
        other => panic!("writer schema mismatch: got {other:?}"),
    }
}
