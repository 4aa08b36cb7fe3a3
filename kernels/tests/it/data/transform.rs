//! Feature transforms with a fit/apply split (Arrow columns in, Arrow columns out).

use arrow::array::{Array, AsArray, Float32Array, Float64Array, Int64Array, StringArray};
use arrow::datatypes::{DataType, Float64Type, UInt8Type, UInt32Type};
use kernels::Error;
use kernels::data::{
    Column, MinMaxScaler, OneHotEncoder, QuantileBinner, Standardizer, Step, StepKind, fit_pipeline, log1p,
    record_batch,
};

fn f64s(a: &Float64Array) -> Vec<Option<f64>> {
    a.iter().collect()
}

#[test]
fn scalers_fit_on_train_and_apply_anywhere() {
    let train = Float64Array::from(vec![Some(1.0), Some(2.0), None, Some(3.0), Some(4.0)]);
    let s = Standardizer::fit(&train).unwrap();
    assert_eq!(s, Standardizer { mean: 2.5, std: 1.25f64.sqrt() });
    let z = s.apply(&train).unwrap();
    assert!(z.is_null(2));
    let stats = kernels::data::column_stats(&z).unwrap();
    assert!(stats.mean.abs() < 1e-15 && (stats.std() - 1.0).abs() < 1e-15);
    // A later batch uses the training parameters, not its own.
    let test = Float32Array::from(vec![10.0f32, 2.5]);
    assert_eq!(f64s(&s.apply(&test).unwrap()), [Some(7.5 / 1.25f64.sqrt()), Some(0.0)]);
    let m = MinMaxScaler::fit(&train).unwrap();
    assert_eq!(m, MinMaxScaler { min: 1.0, max: 4.0 });
    assert_eq!(f64s(&m.apply(&Float64Array::from(vec![1.0, 2.5, 7.0])).unwrap()), [Some(0.0), Some(0.5), Some(2.0)]);
    let constant = Float64Array::from(vec![3.0, 3.0]);
    assert_eq!(f64s(&Standardizer::fit(&constant).unwrap().apply(&constant).unwrap()), [Some(0.0), Some(0.0)]);
    assert_eq!(f64s(&MinMaxScaler::fit(&constant).unwrap().apply(&constant).unwrap()), [Some(0.0), Some(0.0)]);
    assert!(matches!(Standardizer::fit(&Int64Array::from(vec![1])), Err(Error::ColumnType { .. })));
}

#[test]
fn quantile_bins_are_equal_frequency() {
    let x: Vec<f64> = (0..1000).map(|i| ((i * 7919) % 1000) as f64).collect();
    let b = QuantileBinner::fit(&Float64Array::from(x.clone()), 4).unwrap();
    assert_eq!(b.edges, [249.75, 499.5, 749.25]);
    let bins = b.apply(&Float64Array::from(x)).unwrap();
    let mut counts = [0; 4];
    bins.values().iter().for_each(|&k| counts[k as usize] += 1);
    assert_eq!(counts, [250; 4]);
    let edge_cases =
        b.apply(&Float64Array::from(vec![Some(-1e9), Some(249.75), Some(1e9), None, Some(f64::NAN)])).unwrap();
    assert_eq!(edge_cases.iter().collect::<Vec<_>>(), [Some(0), Some(1), Some(3), None, None]);
    // A skewed column collapses duplicate edges.
    let skewed = Float64Array::from(vec![0.0; 90].into_iter().chain((1..=10).map(f64::from)).collect::<Vec<_>>());
    let b = QuantileBinner::fit(&skewed, 10).unwrap();
    assert_eq!(b.edges.len(), 2, "{:?}", b.edges);
    assert_eq!(b.edges[0], 0.0);
    assert!((b.edges[1] - 0.1).abs() < 1e-9, "{:?}", b.edges);
    assert_eq!(b.bins(), 3);
    assert!(matches!(QuantileBinner::fit(&skewed, 0), Err(Error::InvalidParameter(_))));
}

#[test]
fn one_hot_from_strings_and_dictionaries() {
    let train = StringArray::from(vec![Some("b"), Some("a"), Some("b"), None, Some("c"), Some("b"), Some("a")]);
    let enc = OneHotEncoder::fit(&train, None).unwrap();
    assert_eq!(enc.categories, ["b", "a", "c"], "by falling frequency, ties by name");
    let dict: arrow::array::DictionaryArray<arrow::datatypes::Int32Type> = vec!["c", "z", "b"].into_iter().collect();
    let cols = enc.apply(&dict).unwrap();
    let as_vec = |i: usize| cols[i].values().to_vec();
    assert_eq!(
        (as_vec(0), as_vec(1), as_vec(2)),
        (vec![0, 0, 1], vec![0, 0, 0], vec![1, 0, 0]),
        "unseen 'z' is all zeros"
    );
    let top1 = OneHotEncoder::fit(&dict, Some(1)).unwrap();
    assert_eq!(top1.categories, ["b"]);
    assert!(matches!(OneHotEncoder::fit(&Float64Array::from(vec![1.0]), None), Err(Error::ColumnType { .. })));
}

#[test]
fn log1p_values_and_domain() {
    let y = log1p(&Float64Array::from(vec![Some(0.0), Some(1e-20), None, Some(std::f64::consts::E - 1.0), Some(-1.0)]))
        .unwrap();
    assert_eq!(f64s(&y), [Some(0.0), Some(1e-20), None, Some(1.0), Some(f64::NEG_INFINITY)]);
    assert!(
        matches!(log1p(&Float64Array::from(vec![0.5, -2.0])), Err(Error::InvalidParameter(m)) if m.contains("row 1"))
    );
}

#[test]
fn pipeline_fits_on_the_past_and_applies_to_the_future() {
    let tx = super::tiny_transactions();
    let cut = tx.num_rows() * 7 / 10; // rows are in time order: train on the first 70%
    let (train, test) = (tx.slice(0, cut), tx.slice(cut, tx.num_rows() - cut));
    let steps = [
        Step { column: "amount".into(), kind: StepKind::Log1p },
        Step { column: "amount".into(), kind: StepKind::Standardize },
        Step { column: "amount".into(), kind: StepKind::MinMax },
        Step { column: "amount".into(), kind: StepKind::QuantileBins(10) },
        Step { column: "category".into(), kind: StepKind::OneHot(Some(5)) },
    ];
    let fitted = fit_pipeline(&train, &steps).unwrap();
    let out = fitted.apply(&test).unwrap();
    assert_eq!(out.num_rows(), test.num_rows());
    let names: Vec<&str> = out.schema_ref().fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(&names[..4], ["amount_log1p", "amount_std", "amount_minmax", "amount_bin"]);
    assert_eq!(names.len(), 9);
    assert!(names[4..].iter().all(|n| n.starts_with("category=")));
    assert_eq!(out.column(3).data_type(), &DataType::UInt32);
    // Parameters come from train only: standardising train gives mean 0, test does not have to.
    let on_train = fitted.apply(&train).unwrap();
    let mean_train = kernels::data::column_stats(on_train.column(1).as_ref()).unwrap().mean;
    assert!(mean_train.abs() < 1e-12);
    let max_bin = out.column(3).as_primitive::<UInt32Type>().values().iter().copied().max().unwrap();
    assert!(max_bin <= 9);
    let row_sum: Vec<u8> =
        (0..out.num_rows()).map(|r| (4..9).map(|c| out.column(c).as_primitive::<UInt8Type>().value(r)).sum()).collect();
    assert!(row_sum.iter().all(|&s| s <= 1), "one-hot rows have at most one 1");
    let _ = out.column(1).as_primitive::<Float64Type>();

    let bad = [Step { column: "category".into(), kind: StepKind::Standardize }];
    assert!(matches!(fit_pipeline(&train, &bad), Err(Error::ColumnType { column, .. }) if column == "category"));
    let missing = [Step { column: "nope".into(), kind: StepKind::Log1p }];
    assert!(matches!(fit_pipeline(&train, &missing), Err(Error::MissingColumn { .. })));
    let renamed = record_batch(vec![("other", Column::F64(vec![1.0]))]).unwrap();
    assert!(matches!(fitted.apply(&renamed), Err(Error::MissingColumn { .. })));
}
