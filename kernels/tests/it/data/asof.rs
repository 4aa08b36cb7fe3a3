//! Point-in-time joins (Arrow batches): leakage traps and a brute-force property.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array, StringArray};
use arrow::datatypes::{Float64Type, Int64Type};
use kernels::Error;
use kernels::data::{AsOfConfig, Column, RecordBatch, asof_join, record_batch};
use proptest::prelude::*;

fn events(entity: Vec<i64>, t: Vec<i64>) -> RecordBatch {
    record_batch(vec![("card", Column::I64(entity)), ("t", Column::TimestampNanos(t))]).unwrap()
}

fn features(entity: Vec<i64>, t: Vec<i64>, f: Vec<f64>) -> RecordBatch {
    record_batch(vec![("card", Column::I64(entity)), ("t", Column::TimestampNanos(t)), ("f", Column::F64(f))]).unwrap()
}

/// Brute force: scan every feature row for each event (last-in-input wins ties).
fn brute(left: &RecordBatch, right: &RecordBatch, exact: bool, tol: Option<i64>) -> Vec<Option<f64>> {
    let le = left.column(0).as_primitive::<Int64Type>();
    let lt = arrow::compute::cast(left.column(1), &arrow::datatypes::DataType::Int64).unwrap();
    let lt = lt.as_primitive::<Int64Type>();
    let re = right.column(0).as_primitive::<Int64Type>();
    let rt = arrow::compute::cast(right.column(1), &arrow::datatypes::DataType::Int64).unwrap();
    let rt = rt.as_primitive::<Int64Type>();
    let rf = right.column(2).as_primitive::<Float64Type>();
    (0..left.num_rows())
        .map(|i| {
            let mut best: Option<(i64, usize)> = None;
            for j in 0..right.num_rows() {
                let ok = re.value(j) == le.value(i)
                    && (rt.value(j) < lt.value(i) || (exact && rt.value(j) == lt.value(i)))
                    && tol.is_none_or(|tol| lt.value(i) - rt.value(j) <= tol);
                if ok && best.is_none_or(|(bt, _)| rt.value(j) >= bt) {
                    best = Some((rt.value(j), j));
                }
            }
            best.map(|(_, j)| rf.value(j))
        })
        .collect()
}

fn joined_f(out: &RecordBatch) -> Vec<Option<f64>> {
    out.column_by_name("f").unwrap().as_primitive::<Float64Type>().iter().collect()
}

/// One leakage trap: events, features, expected feature per event.
fn check(case: &str, left: RecordBatch, right: RecordBatch, config: &AsOfConfig, want: &[Option<f64>]) {
    let out = asof_join(&left, &right, config).unwrap();
    assert_eq!(out.num_rows(), left.num_rows(), "{case}");
    assert_eq!(out.column(0), left.column(0), "{case}: left rows keep their order");
    assert_eq!(joined_f(&out), want, "{case}");
    assert_eq!(
        want,
        brute(&left, &right, config.allow_exact_matches, config.tolerance),
        "{case}: brute force disagrees"
    );
}

#[test]
fn leakage_traps() {
    let cfg = AsOfConfig::new("card", "t");
    check(
        "a feature row 1 ns after the event is never used",
        events(vec![1], vec![1_000]),
        features(vec![1, 1], vec![500, 1_001], vec![5.0, 99.0]),
        &cfg,
        &[Some(5.0)],
    );
    check(
        "a feature at exactly the event time is used (≤)",
        events(vec![1], vec![1_000]),
        features(vec![1, 1], vec![500, 1_000], vec![5.0, 7.0]),
        &cfg,
        &[Some(7.0)],
    );
    check(
        "strict mode excludes the same instant",
        events(vec![1], vec![1_000]),
        features(vec![1, 1], vec![500, 1_000], vec![5.0, 7.0]),
        &AsOfConfig { allow_exact_matches: false, ..cfg.clone() },
        &[Some(5.0)],
    );
    check(
        "ties at one timestamp: the last row in the input wins",
        events(vec![1, 1], vec![1_000, 2_000]),
        features(vec![1, 1, 1, 1], vec![900, 900, 900, 100], vec![1.0, 2.0, 3.0, 0.5]),
        &cfg,
        &[Some(3.0), Some(3.0)],
    );
    check(
        "out-of-order inputs on both sides",
        events(vec![2, 1, 2, 1], vec![50, 30, 10, 5]),
        features(vec![1, 2, 1, 2, 1], vec![20, 40, 1, 5, 31], vec![1.20, 2.40, 1.01, 2.05, 1.31]),
        &cfg,
        &[Some(2.40), Some(1.20), Some(2.05), Some(1.01)],
    );
    check(
        "missing entities and events before any feature get nulls",
        events(vec![1, 3, 2], vec![100, 100, 1]),
        features(vec![1, 2], vec![10, 50], vec![1.0, 2.0]),
        &cfg,
        &[Some(1.0), None, None],
    );
    check(
        "a feature of another entity is never borrowed",
        events(vec![1], vec![100]),
        features(vec![0, 2], vec![99, 1], vec![0.0, 2.0]),
        &cfg,
        &[None],
    );
    check(
        "tolerance drops stale features",
        events(vec![1, 1], vec![100, 1_000]),
        features(vec![1], vec![90], vec![1.0]),
        &AsOfConfig { tolerance: Some(50), ..cfg.clone() },
        &[Some(1.0), None],
    );
}

#[test]
fn string_keys_nulls_and_extra_columns() {
    let left = record_batch(vec![
        ("user", Column::Str(["a", "b", "a", "c"].map(String::from).to_vec())),
        ("event_time", Column::I64(vec![10, 10, 3, 10])),
        ("label", Column::Bool(vec![true, false, true, false])),
    ])
    .unwrap();
    let right = record_batch(vec![
        ("user", Column::Str(["a", "a", "b"].map(String::from).to_vec())),
        ("feature_time", Column::I64(vec![2, 9, 11])),
        ("spend", Column::F64(vec![1.0, 2.0, 3.0])),
        ("visits", Column::I64(vec![1, 2, 3])),
    ])
    .unwrap();
    let cfg = AsOfConfig {
        right_time: "feature_time".into(),
        left_time: "event_time".into(),
        features: Some(vec!["visits".into()]),
        ..AsOfConfig::new("user", "")
    };
    let out = asof_join(&left, &right, &cfg).unwrap();
    assert_eq!(out.num_columns(), 4);
    let visits: Vec<Option<i64>> = out.column(3).as_primitive::<Int64Type>().iter().collect();
    assert_eq!(visits, [Some(2), None, Some(1), None]);

    // Null keys and times on the left give nulls; null rows on the right are ignored.
    let left = RecordBatch::try_new(
        left.schema(),
        vec![
            std::sync::Arc::new(arrow::array::StringArray::from(vec![Some("a"), None, Some("a"), Some("a")])),
            std::sync::Arc::new(Int64Array::from(vec![Some(10), Some(10), None, Some(10)])),
            left.column(2).clone(),
        ],
    )
    .unwrap();
    let right = RecordBatch::try_new(
        right.schema(),
        vec![
            std::sync::Arc::new(arrow::array::StringArray::from(vec![Some("a"), None, Some("a")])),
            std::sync::Arc::new(Int64Array::from(vec![Some(2), Some(5), None])),
            right.column(2).clone(),
            right.column(3).clone(),
        ],
    )
    .unwrap();
    let out = asof_join(&left, &right, &AsOfConfig { features: None, ..cfg }).unwrap();
    let spend: Vec<Option<f64>> = out.column_by_name("spend").unwrap().as_primitive::<Float64Type>().iter().collect();
    assert_eq!(spend, [Some(1.0), None, None, Some(1.0)]);
}

#[test]
fn mismatched_inputs_are_typed_errors() {
    let cfg = AsOfConfig::new("card", "t");
    let l = events(vec![1], vec![1]);
    let r = features(vec![1], vec![1], vec![1.0]);
    let micros = record_batch(vec![
        ("card", Column::I64(vec![1])),
        ("t", Column::TimestampMicros(vec![1])),
        ("f", Column::F64(vec![1.0])),
    ])
    .unwrap();
    assert!(matches!(asof_join(&l, &micros, &cfg), Err(Error::ColumnType { column, .. }) if column == "t"));
    let str_keys = record_batch(vec![
        ("card", Column::Str(vec!["1".into()])),
        ("t", Column::TimestampNanos(vec![1])),
        ("f", Column::F64(vec![1.0])),
    ])
    .unwrap();
    assert!(matches!(asof_join(&l, &str_keys, &cfg), Err(Error::ColumnType { column, .. }) if column == "card"));
    let float_time = record_batch(vec![("card", Column::I64(vec![1])), ("t", Column::F64(vec![1.0]))]).unwrap();
    assert!(matches!(asof_join(&float_time, &r, &cfg), Err(Error::ColumnType { .. })));
    assert!(matches!(asof_join(&l, &r, &AsOfConfig::new("user", "t")), Err(Error::MissingColumn { .. })));
    let clash = record_batch(vec![
        ("card", Column::I64(vec![1])),
        ("t", Column::TimestampNanos(vec![1])),
        ("f", Column::F64(vec![0.0])),
    ])
    .unwrap();
    assert!(matches!(asof_join(&clash, &r, &cfg), Err(Error::InvalidParameter(_))));
}

proptest! {
    #[test]
    fn matches_brute_force(
        left in prop::collection::vec((0i64..6, 0i64..60), 0..60),
        right in prop::collection::vec((0i64..6, 0i64..60, -100.0f64..100.0), 0..80),
        exact in any::<bool>(),
        tol in prop::option::of(0i64..30),
    ) {
        let l = events(left.iter().map(|x| x.0).collect(), left.iter().map(|x| x.1).collect());
        let r = features(right.iter().map(|x| x.0).collect(), right.iter().map(|x| x.1).collect(), right.iter().map(|x| x.2).collect());
        let cfg = AsOfConfig { allow_exact_matches: exact, tolerance: tol, ..AsOfConfig::new("card", "t") };
        let out = asof_join(&l, &r, &cfg).unwrap();
        prop_assert_eq!(joined_f(&out), brute(&l, &r, exact, tol));
    }

    /// The two paths agree: integer entities (the time-ordered scan, with its array table for
    /// a narrow key range and its hash map for a wide one) and the same keys as strings (the
    /// sort-merge on Arrow's row format), with nulls on both sides.
    #[test]
    fn integer_and_general_paths_agree(
        left in prop::collection::vec((prop::option::of(0usize..6), prop::option::of(0i64..40)), 0..60),
        right in prop::collection::vec((prop::option::of(0usize..6), prop::option::of(0i64..40)), 0..80),
        wide in any::<bool>(),
        exact in any::<bool>(),
        tol in prop::option::of(0i64..20),
    ) {
        let keys: [i64; 6] = if wide { [i64::MIN, -7, 0, 3, 1 << 40, i64::MAX] } else { [10, 11, 12, 13, 14, 15] };
        let batch = |rows: &[(Option<usize>, Option<i64>)], as_text: bool, with_f: bool| {
            let ent: ArrayRef = if as_text {
                Arc::new(StringArray::from_iter(rows.iter().map(|r| r.0.map(|k| keys[k].to_string()))))
            } else {
                Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.0.map(|k| keys[k]))))
            };
            let mut cols = vec![("card", ent), ("t", Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.1))) as ArrayRef)];
            if with_f {
                cols.push(("f", Arc::new(Float64Array::from_iter_values((0..rows.len()).map(|i| i as f64))) as ArrayRef));
            }
            RecordBatch::try_from_iter(cols).unwrap()
        };
        let cfg = AsOfConfig { allow_exact_matches: exact, tolerance: tol, ..AsOfConfig::new("card", "t") };
        let fast = asof_join(&batch(&left, false, false), &batch(&right, false, true), &cfg).unwrap();
        let general = asof_join(&batch(&left, true, false), &batch(&right, true, true), &cfg).unwrap();
        prop_assert_eq!(joined_f(&fast), joined_f(&general));
    }
}

#[test]
fn joins_the_transaction_table_without_leakage() {
    // Features: each card's running spend, stamped at the transaction's time; events:
    // the same transactions shifted 1 µs earlier must never see their own spend.
    let tx = super::tiny_transactions();
    let card = tx.column_by_name("card_id").unwrap().clone();
    let ts = tx.column_by_name("ts").unwrap().clone();
    let amount = tx.column_by_name("amount").unwrap().as_primitive::<Float64Type>().clone();
    let mut running = std::collections::HashMap::new();
    let cum: Float64Array = (0..tx.num_rows())
        .map(|i| {
            let c = card.as_primitive::<Int64Type>().value(i);
            let s = running.entry(c).or_insert(0.0);
            *s += amount.value(i);
            Some(*s)
        })
        .collect();
    let feats = record_batch(vec![
        ("card_id", Column::I64(card.as_primitive::<Int64Type>().values().to_vec())),
        (
            "ts",
            Column::TimestampMicros(ts.as_primitive::<arrow::datatypes::TimestampMicrosecondType>().values().to_vec()),
        ),
        ("spend_to_date", Column::F64(cum.values().to_vec())),
    ])
    .unwrap();
    let earlier: Vec<i64> =
        ts.as_primitive::<arrow::datatypes::TimestampMicrosecondType>().values().iter().map(|t| t - 1).collect();
    let ev = record_batch(vec![
        ("card_id", Column::I64(card.as_primitive::<Int64Type>().values().to_vec())),
        ("ts", Column::TimestampMicros(earlier)),
    ])
    .unwrap();
    let out = asof_join(&ev, &feats, &AsOfConfig::new("card_id", "ts")).unwrap();
    let got = out.column(2).as_primitive::<Float64Type>();
    for i in 0..tx.num_rows() {
        if got.is_valid(i) {
            assert!(got.value(i) < cum.value(i) - 1e-9, "row {i}: the event saw its own transaction");
        }
    }
}
