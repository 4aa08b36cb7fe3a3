//! kernels::monitor: expectations on hand-built Arrow tables (pass and fail, sample rows checked by
//! hand), streaming drift equal to the in-memory `drift` functions and independent of the row-group
//! size, the injected-shift experiment on the transaction generator, typed errors for bad Parquet,
//! and `sovereign monitor` end to end.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, Date32Array, DictionaryArray, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::Int32Type;
use datasets::Tier;
use datasets::transactions::{Transactions, TransactionsConfig, transactions};
use kernels::Error;
use kernels::monitor::drift::{self, Binning, PsiConfig};
use kernels::monitor::expect::{
    AllowedValue, BadRow, ColumnSpec, Expectation, Suite, ValidateConfig, ValidationReport, validate,
};
use kernels::monitor::stream::{
    DriftConfig, DriftReport, Histogram, Level, Profile, ProfileConfig, build_profile, drift_parquet, profile_parquet,
};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

// ------------------------------------------------------------------ helpers

/// A temp folder removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("kernels-monitor-{tag}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create temp dir");
        Scratch(dir)
    }

    fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
    RecordBatch::try_from_iter(columns).expect("a valid batch")
}

/// Writes `batches` as one Parquet file with at most `row_group` rows per row group.
fn write_parquet(path: &Path, batches: &[RecordBatch], row_group: usize) {
    let props = WriterProperties::builder().set_max_row_group_row_count(Some(row_group.max(1))).build();
    let file = fs::File::create(path).expect("create parquet");
    let mut writer = ArrowWriter::try_new(file, batches[0].schema(), Some(props)).expect("writer");
    for b in batches {
        writer.write(b).expect("write batch");
    }
    writer.close().expect("close parquet");
}

const DAY_MICROS: i64 = 86_400_000_000;
/// 2024-01-01T00:00:00Z in microseconds.
const JAN1: i64 = 1_704_067_200_000_000;

/// Two batches (rows 0–3 and 4–6) covering every expectation's pass and fail cases:
///
/// | row | id | amount | cat | code (dict) | ts (days after Jan 1) | flag |
/// |---|---|---|---|---|---|---|
/// | 0 | 1 | 10.0 | a | x | 0 | true |
/// | 1 | 2 | null | b | y | 1 | false |
/// | 2 | 3 | 250.5 | null | x | 2 | null |
/// | 3 | 4 | -1.0 | z | q | null | true |
/// | 4 | 5 | 20.0 | a | x | 3 | true |
/// | 5 | 3 | NaN | a | y | 5 | false |
/// | 6 | 6 | 100.0 | b | x | 4 | true |
fn table() -> Vec<RecordBatch> {
    let make = |id: Vec<i64>,
                amount: Vec<Option<f64>>,
                cat: Vec<Option<&str>>,
                code: Vec<&str>,
                ts: Vec<Option<i64>>,
                flag: Vec<Option<bool>>| {
        let code: DictionaryArray<Int32Type> = code.into_iter().collect();
        batch(vec![
            ("id", Arc::new(Int64Array::from(id)) as ArrayRef),
            ("amount", Arc::new(Float64Array::from(amount))),
            ("cat", Arc::new(StringArray::from(cat))),
            ("code", Arc::new(code)),
            (
                "ts",
                Arc::new(
                    TimestampMicrosecondArray::from(
                        ts.into_iter().map(|d| d.map(|d| JAN1 + d * DAY_MICROS)).collect::<Vec<_>>(),
                    )
                    .with_timezone("UTC"),
                ),
            ),
            ("flag", Arc::new(BooleanArray::from(flag))),
        ])
    };
    vec![
        make(
            vec![1, 2, 3, 4],
            vec![Some(10.0), None, Some(250.5), Some(-1.0)],
            vec![Some("a"), Some("b"), None, Some("z")],
            vec!["x", "y", "x", "q"],
            vec![Some(0), Some(1), Some(2), None],
            vec![Some(true), Some(false), None, Some(true)],
        ),
        make(
            vec![5, 3, 6],
            vec![Some(20.0), Some(f64::NAN), Some(100.0)],
            vec![Some("a"), Some("a"), Some("b")],
            vec!["x", "y", "x"],
            vec![Some(3), Some(5), Some(4)],
            vec![Some(true), Some(false), Some(true)],
        ),
    ]
}

/// What one expectation must report.
struct Expected<'a> {
    passed: bool,
    element_count: u64,
    unexpected_count: u64,
    sample: &'a [(u64, &'a str)],
    failing_columns: &'a [&'a str],
    /// Text the reason must contain (`None`: no reason).
    reason: Option<&'a str>,
}

fn check(batches: &[RecordBatch], expectation: Expectation, config: &ValidateConfig, expected: Expected) {
    let suite = Suite { name: "t".into(), expectations: vec![expectation.clone()] };
    let report = validate(batches, &suite, config).expect("validate");
    let r = &report.results[0];
    let what = format!("{expectation:?}: {r:#?}");
    assert_eq!(r.passed, expected.passed, "{what}");
    assert_eq!(report.passed, expected.passed, "{what}");
    assert_eq!(r.element_count, expected.element_count, "{what}");
    assert_eq!(r.unexpected_count, expected.unexpected_count, "{what}");
    let fraction = if expected.element_count == 0 {
        0.0
    } else {
        expected.unexpected_count as f64 / expected.element_count as f64
    };
    assert!((r.unexpected_fraction - fraction).abs() < 1e-15, "{what}");
    let sample: Vec<BadRow> =
        expected.sample.iter().map(|&(row, value)| BadRow { row, value: value.to_owned() }).collect();
    assert_eq!(r.sample, sample, "{what}");
    assert_eq!(r.failing_columns, expected.failing_columns, "{what}");
    assert_eq!(report.failing_columns, expected.failing_columns, "{what}");
    match expected.reason {
        Some(text) => assert!(r.reason.as_deref().is_some_and(|s| s.contains(text)), "reason lacks {text:?}: {what}"),
        None => assert_eq!(r.reason, None, "{what}"),
    }
}

fn pass(element_count: u64) -> Expected<'static> {
    Expected { passed: true, element_count, unexpected_count: 0, sample: &[], failing_columns: &[], reason: None }
}

/// A refusal: failed without examining values, for `reason`.
fn refused<'a>(failing: &'a [&'a str], reason: &'a str) -> Expected<'a> {
    Expected {
        passed: false,
        element_count: 0,
        unexpected_count: 0,
        sample: &[],
        failing_columns: failing,
        reason: Some(reason),
    }
}

fn between(column: &str, min: Option<f64>, max: Option<f64>, min_inclusive: bool, max_inclusive: bool) -> Expectation {
    Expectation::Between { column: column.into(), min, max, min_inclusive, max_inclusive }
}

fn allowed(column: &str, values: &[&str]) -> Expectation {
    Expectation::AllowedValues {
        column: column.into(),
        values: values.iter().map(|v| AllowedValue::Text((*v).into())).collect(),
    }
}

// ------------------------------------------------------------------ expectations

#[test]
fn monitor_expect_not_null_between_allowed() {
    let t = table();
    let c = ValidateConfig { sample_rows: 2, now_micros: None };
    let not_null = |column: &str, max_null_fraction| Expectation::NotNull { column: column.into(), max_null_fraction };
    check(&t, not_null("id", 0.0), &c, pass(7));
    check(
        &t,
        not_null("amount", 0.0),
        &c,
        Expected {
            passed: false,
            element_count: 7,
            unexpected_count: 1,
            sample: &[(1, "null")],
            failing_columns: &["amount"],
            reason: None,
        },
    );
    // 1 null in 7 rows = 0.143 <= 0.2 passes (still counted).
    check(
        &t,
        not_null("amount", 0.2),
        &c,
        Expected {
            passed: true,
            element_count: 7,
            unexpected_count: 1,
            sample: &[(1, "null")],
            failing_columns: &[],
            reason: None,
        },
    );
    check(
        &t,
        not_null("cat", 0.1),
        &c,
        Expected {
            passed: false,
            element_count: 7,
            unexpected_count: 1,
            sample: &[(2, "null")],
            failing_columns: &["cat"],
            reason: None,
        },
    );
    check(&t, not_null("nope", 0.0), &c, refused(&["nope"], "no column \"nope\""));
    check(&t, not_null("id", 1.5), &c, refused(&[], "max_null_fraction 1.5"));

    // Between: nulls ignored (6 values), NaN is never between.
    check(
        &t,
        between("amount", Some(0.0), Some(250.5), true, true),
        &c,
        Expected {
            passed: false,
            element_count: 6,
            unexpected_count: 2,
            sample: &[(3, "-1.0"), (5, "NaN")],
            failing_columns: &["amount"],
            reason: None,
        },
    );
    check(
        &t,
        between("amount", None, Some(250.5), true, false),
        &c,
        Expected {
            passed: false,
            element_count: 6,
            unexpected_count: 2,
            sample: &[(2, "250.5"), (5, "NaN")],
            failing_columns: &["amount"],
            reason: None,
        },
    );
    check(
        &t,
        between("amount", Some(-1.0), None, false, true),
        &c,
        Expected {
            passed: false,
            element_count: 6,
            unexpected_count: 2,
            sample: &[(3, "-1.0"), (5, "NaN")],
            failing_columns: &["amount"],
            reason: None,
        },
    );
    check(&t, between("id", Some(1.0), Some(6.0), true, true), &c, pass(7));
    check(
        &t,
        between("id", Some(2.0), Some(5.0), true, true),
        &ValidateConfig { sample_rows: 5, now_micros: None },
        Expected {
            passed: false,
            element_count: 7,
            unexpected_count: 2,
            sample: &[(0, "1"), (6, "6")],
            failing_columns: &["id"],
            reason: None,
        },
    );
    check(&t, between("cat", Some(0.0), None, true, true), &c, refused(&["cat"], "cat is Utf8"));
    check(&t, between("nope", Some(0.0), None, true, true), &c, refused(&["nope"], "no column"));
    check(&t, between("id", None, None, true, true), &c, refused(&[], "needs min, max or both"));

    // Allowed values: strings, dictionaries, integers, booleans; nulls ignored.
    check(&t, allowed("cat", &["a", "b", "z"]), &c, pass(6));
    check(
        &t,
        allowed("cat", &["a", "b"]),
        &c,
        Expected {
            passed: false,
            element_count: 6,
            unexpected_count: 1,
            sample: &[(3, "z")],
            failing_columns: &["cat"],
            reason: None,
        },
    );
    check(
        &t,
        allowed("code", &["x", "y"]),
        &c,
        Expected {
            passed: false,
            element_count: 7,
            unexpected_count: 1,
            sample: &[(3, "q")],
            failing_columns: &["code"],
            reason: None,
        },
    );
    let ints = |values: &[i64]| Expectation::AllowedValues {
        column: "id".into(),
        values: values.iter().map(|&v| AllowedValue::Integer(v)).collect(),
    };
    check(&t, ints(&[1, 2, 3, 4, 5, 6]), &c, pass(7));
    // Three bad rows, two shown.
    check(
        &t,
        ints(&[1, 2, 3]),
        &c,
        Expected {
            passed: false,
            element_count: 7,
            unexpected_count: 3,
            sample: &[(3, "4"), (4, "5")],
            failing_columns: &["id"],
            reason: None,
        },
    );
    check(
        &t,
        allowed("flag", &["true"]),
        &c,
        Expected {
            passed: false,
            element_count: 6,
            unexpected_count: 2,
            sample: &[(1, "false"), (5, "false")],
            failing_columns: &["flag"],
            reason: None,
        },
    );
    check(&t, allowed("amount", &["10"]), &c, refused(&["amount"], "amount is Float64"));
    check(&t, allowed("ts", &["x"]), &c, refused(&["ts"], "allowed_values applies to"));
}

#[test]
fn monitor_expect_unique_row_count_freshness_schema() {
    let t = table();
    let c = ValidateConfig { sample_rows: 3, now_micros: Some(JAN1 + 6 * DAY_MICROS) };
    let unique = |columns: &[&str]| Expectation::Unique { columns: columns.iter().map(|s| (*s).into()).collect() };
    // id 3 at rows 2 and 5: both rows count.
    check(
        &t,
        unique(&["id"]),
        &c,
        Expected {
            passed: false,
            element_count: 7,
            unexpected_count: 2,
            sample: &[(2, "3"), (5, "3")],
            failing_columns: &["id"],
            reason: None,
        },
    );
    // (cat, id): the null cat row is skipped, the rest are distinct.
    check(&t, unique(&["cat", "id"]), &c, pass(6));
    // cat alone: a at 0, 4, 5; b at 1, 6 → 5 rows, first three shown.
    check(
        &t,
        unique(&["cat"]),
        &c,
        Expected {
            passed: false,
            element_count: 6,
            unexpected_count: 5,
            sample: &[(0, "a"), (1, "b"), (4, "a")],
            failing_columns: &["cat"],
            reason: None,
        },
    );
    // (code, flag): (x, true) at rows 0, 4, 6; (y, false) at 1, 5; row 2 has a null flag.
    check(
        &t,
        unique(&["code", "flag"]),
        &c,
        Expected {
            passed: false,
            element_count: 6,
            unexpected_count: 5,
            sample: &[(0, "x, true"), (1, "y, false"), (4, "x, true")],
            failing_columns: &["code", "flag"],
            reason: None,
        },
    );
    check(&t, unique(&["id", "nope"]), &c, refused(&["nope"], "no column \"nope\""));
    check(&t, unique(&[]), &c, refused(&[], "at least one column"));

    let rows = |min, max| Expectation::RowCount { min, max };
    check(&t, rows(Some(7), Some(7)), &c, pass(1));
    check(&t, rows(None, Some(100)), &c, pass(1));
    check(
        &t,
        rows(Some(8), None),
        &c,
        Expected {
            passed: false,
            element_count: 1,
            unexpected_count: 1,
            sample: &[],
            failing_columns: &[],
            reason: None,
        },
    );
    check(&t, rows(Some(9), Some(3)), &c, refused(&[], "min 9 > max 3"));

    // Newest ts: Jan 6 (row 5); now = Jan 7 → one day old.
    let fresh = |column: &str, max_age_seconds| Expectation::Freshness { column: column.into(), max_age_seconds };
    check(&t, fresh("ts", 86_400.0), &c, pass(1));
    check(
        &t,
        fresh("ts", 86_399.0),
        &c,
        Expected {
            passed: false,
            element_count: 1,
            unexpected_count: 1,
            sample: &[(5, "2024-01-06T00:00:00Z")],
            failing_columns: &["ts"],
            reason: None,
        },
    );
    check(&t, fresh("ts", 86_400.0), &ValidateConfig { sample_rows: 3, now_micros: None }, refused(&[], "no `now`"));
    check(&t, fresh("id", 86_400.0), &c, refused(&["id"], "freshness applies to Timestamp"));
    check(&t, fresh("gone", 86_400.0), &c, refused(&["gone"], "no column"));

    let spec = |name: &str, t: Option<&str>| ColumnSpec { name: name.into(), data_type: t.map(Into::into) };
    let schema = |columns: Vec<ColumnSpec>, allow_extra| Expectation::Schema { columns, allow_extra };
    let all = vec![
        spec("id", Some("Int64")),
        spec("amount", Some("Float64")),
        spec("cat", Some("Utf8")),
        spec("code", Some("Dictionary(Int32, Utf8)")),
        spec("ts", Some("Timestamp(µs, \"UTC\")")),
        spec("flag", None),
    ];
    check(&t, schema(all.clone(), false), &c, pass(6));
    check(&t, schema(vec![spec("id", Some("Int64"))], true), &c, pass(6));
    check(
        &t,
        schema(vec![spec("id", Some("Int64")), spec("amount", None)], false),
        &c,
        Expected {
            passed: false,
            element_count: 6,
            unexpected_count: 4,
            sample: &[],
            failing_columns: &["cat", "code", "flag", "ts"],
            reason: Some("unexpected column \"cat\""),
        },
    );
    let mut wrong = all.clone();
    wrong[1] = spec("amount", Some("Int64"));
    wrong[2] = spec("cat", Some("Flaot64"));
    wrong.push(spec("extra", None));
    check(
        &t,
        schema(wrong, false),
        &c,
        Expected {
            passed: false,
            element_count: 7,
            unexpected_count: 3,
            sample: &[],
            failing_columns: &["amount", "cat", "extra"],
            reason: Some("\"amount\" is Float64, expected Int64; \"cat\": \"Flaot64\" is not an Arrow type"),
        },
    );
}

#[test]
fn monitor_expect_report_keeps_going_and_renders() {
    let t = table();
    let suite = Suite::from_json(
        r#"{"name": "orders", "expectations": [
            {"type": "not_null", "column": "missing_col"},
            {"type": "between", "column": "cat", "min": 0},
            {"type": "row_count", "min": 1},
            {"type": "allowed_values", "column": "cat", "values": ["a", "b"]},
            {"type": "unique", "columns": ["id"]}
        ]}"#,
    )
    .expect("suite parses");
    let report = validate(&t, &suite, &ValidateConfig::default()).expect("validate");
    let passed: Vec<bool> = report.results.iter().map(|r| r.passed).collect();
    assert_eq!(passed, [false, false, true, false, false]);
    assert_eq!(report.failed, 4);
    assert_eq!(report.failing_columns, ["cat", "id", "missing_col"]);
    let json = serde_json::to_string(&report).expect("serialise");
    let back: ValidationReport = serde_json::from_str(&json).expect("deserialise");
    assert_eq!(back, report);
    let md = report.to_markdown();
    assert!(md.contains("1 of 5 expectations passed; failing columns: cat, id, missing_col"), "{md}");
    assert!(md.contains("| 3 | cat in {a, b} | **FAIL** | unexpected values: z | 1 (0.1667) | row 3: z |"), "{md}");

    // A typo in a key, and batches that disagree, are errors.
    let typo = Suite::from_json(r#"{"expectations": [{"type": "not_null", "column": "a", "max_null_fration": 0.1}]}"#);
    assert!(matches!(&typo, Err(Error::MonitorSuite { reason }) if reason.contains("max_null_fration")), "{typo:?}");
    let other = batch(vec![("id", Arc::new(Int64Array::from(vec![1])) as ArrayRef)]);
    let mixed = validate(&[t[0].clone(), other], &suite, &ValidateConfig::default());
    assert!(matches!(mixed, Err(Error::MonitorSchemaMismatch { batch: 1, .. })), "{mixed:?}");
    // No batches: every column is missing, the row count is 0.
    let empty = validate(&[], &suite, &ValidateConfig::default()).expect("validate");
    assert_eq!(empty.rows, 0);
    assert_eq!(empty.results[2].observed.as_deref(), Some("0 rows"));
}

// ------------------------------------------------------------------ streaming drift

/// A deterministic uniform stream in [0, 1) (xorshift).
fn uniform(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64
        })
        .collect()
}

/// Synthetic rows: `x` (float, with nulls and NaN), `n` (integer), `c` (string, with nulls and, in the
/// current table, a category the reference lacks), `day` (Date32 over `days` days from `first_day`).
struct Synthetic {
    x: Vec<Option<f64>>,
    n: Vec<i64>,
    c: Vec<Option<String>>,
    day: Vec<i32>,
}

fn synthetic(rows: usize, seed: u64, first_day: i32, days: i32, shift: f64) -> Synthetic {
    let u = uniform(rows * 3, seed);
    let cats = ["red", "green", "blue", "amber"];
    let mut s = Synthetic { x: vec![], n: vec![], c: vec![], day: vec![] };
    for i in 0..rows {
        let day = first_day + (i as i32 % days);
        s.x.push(match i % 53 {
            7 => None,
            11 => Some(f64::NAN),
            _ => Some(u[3 * i] * 10.0 + shift * f64::from(day - first_day)),
        });
        s.n.push((u[3 * i + 1] * 20.0) as i64);
        let k = (u[3 * i + 2] * (4.0 + shift)) as usize;
        s.c.push(if i % 41 == 3 {
            None
        } else if k < 4 {
            Some(cats[k].to_owned())
        } else {
            Some("violet".to_owned())
        });
        s.day.push(day);
    }
    s
}

fn synthetic_batch(s: &Synthetic) -> RecordBatch {
    batch(vec![
        ("x", Arc::new(Float64Array::from(s.x.clone())) as ArrayRef),
        ("n", Arc::new(Int64Array::from(s.n.clone()))),
        ("c", Arc::new(StringArray::from(s.c.clone()))),
        ("day", Arc::new(Date32Array::from(s.day.clone()))),
    ])
}

fn profile_config() -> ProfileConfig {
    ProfileConfig { columns: None, categorical: vec![], binning: Binning::Quantile { bins: 8 }, max_categories: 100 }
}

#[test]
fn monitor_stream_equals_in_memory_drift_for_any_row_group_size() {
    let dir = Scratch::new("stream");
    let reference = synthetic(3000, 1, 19_000, 1, 0.0);
    let current = synthetic(2500, 2, 19_723, 5, 0.3);
    let profile = build_profile(&[synthetic_batch(&reference)], &profile_config()).expect("profile");
    assert_eq!(
        profile.skipped,
        ["day (Date32): drift is profiled for numeric, string, dictionary and boolean columns"]
    );
    assert_eq!(profile.columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["x", "n", "c"]);
    // The profile round-trips through JSON exactly (edges included).
    let saved = dir.join("profile.json");
    profile.save(&saved).expect("save");
    assert_eq!(Profile::load(&saved).expect("load"), profile);

    let config = DriftConfig { date_column: Some("day".into()), batch_size: 64, ..DriftConfig::default() };
    let current_batch = synthetic_batch(&current);
    let mut reports: Vec<DriftReport> = Vec::new();
    for (i, row_group) in [7, 1000, current.day.len()].into_iter().enumerate() {
        let path = dir.join(&format!("current-{i}.parquet"));
        // Two writes, so the file's batches and row groups do not line up.
        write_parquet(
            &path,
            &[current_batch.slice(0, 1234), current_batch.slice(1234, current.day.len() - 1234)],
            row_group,
        );
        let mut calls = Vec::new();
        let report = drift_parquet(&path, &profile, &config, &mut |p| calls.push(*p)).expect("drift");
        let groups = current.day.len().div_ceil(row_group);
        assert_eq!(report.row_groups, groups);
        assert_eq!(calls.len(), groups + 1, "progress once before and after each row group");
        assert_eq!(calls.last().map(|p| (p.rows_done, p.rows_total)), Some((2500, 2500)));
        reports.push(report);
    }
    for r in &reports[1..] {
        assert_eq!((&r.overall, &r.days, &r.alerts), (&reports[0].overall, &reports[0].days, &reports[0].alerts));
    }
    let report = &reports[0];
    assert_eq!(report.rows, 2500);
    assert_eq!(report.days.len(), 3 * 5);

    // The in-memory reference: the `drift` functions on each day's raw values.
    let finite = |v: &[Option<f64>]| v.iter().flatten().copied().filter(|x| x.is_finite()).collect::<Vec<f64>>();
    let ref_x = finite(&reference.x);
    let ref_n: Vec<f64> = reference.n.iter().map(|&v| v as f64).collect();
    let psi_config = PsiConfig { binning: Binning::Quantile { bins: 8 }, epsilon: 1e-4 };
    let categories: Vec<String> = match &profile.columns[2].histogram {
        Histogram::Categorical { categories, .. } => categories.clone(),
        other => panic!("c should be categorical: {other:?}"),
    };
    assert_eq!(categories, ["amber", "blue", "green", "red"]);
    let count_categories = |values: &[&Option<String>]| {
        let mut counts = vec![0u64; categories.len() + 1];
        for v in values.iter().filter_map(|v| v.as_ref()) {
            counts[categories.iter().position(|c| c == v).unwrap_or(categories.len())] += 1;
        }
        counts
    };
    let ref_c = count_categories(&reference.c.iter().collect::<Vec<_>>());
    let close = |a: Option<f64>, b: f64, what: &str| {
        let a = a.unwrap_or_else(|| panic!("{what}: no value"));
        assert!((a - b).abs() <= 1e-12, "{what}: streamed {a}, in memory {b}");
    };
    for d in &report.days {
        let day = d.day.expect("a day");
        let rows: Vec<usize> = (0..current.day.len()).filter(|&i| current.day[i] == day).collect();
        let what = format!("{} on {}", d.column, d.date.as_deref().unwrap_or("?"));
        match d.column.as_str() {
            "x" | "n" => {
                let (reference_values, values): (&[f64], Vec<f64>) = if d.column == "x" {
                    (&ref_x, finite(&rows.iter().map(|&i| current.x[i]).collect::<Vec<_>>()))
                } else {
                    (&ref_n, rows.iter().map(|&i| current.n[i] as f64).collect())
                };
                assert_eq!(d.missing as usize, rows.len() - values.len(), "{what}");
                close(d.psi, drift::psi(reference_values, &values, &psi_config).expect("psi"), &what);
                let edges = drift::bin_edges(reference_values, &psi_config.binning).expect("edges");
                let (r, c) = (
                    drift::bin_counts(reference_values, &edges).expect("counts"),
                    drift::bin_counts(&values, &edges).expect("counts"),
                );
                assert_eq!(d.counts, c, "{what}");
                let f = |v: &[u64]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
                close(d.js, drift::jensen_shannon(&f(&r), &f(&c)).expect("js"), &what);
                // The binned KS is a lower bound of the exact one.
                let exact = drift::ks_2samp(reference_values, &values).expect("ks").statistic;
                let binned = d.ks_binned.expect("ks_binned");
                assert!(binned <= exact + 1e-12 && binned >= 0.0, "{what}: binned {binned}, exact {exact}");
            }
            "c" => {
                let counts = count_categories(&rows.iter().map(|&i| &current.c[i]).collect::<Vec<_>>());
                assert_eq!(d.counts, counts, "{what}");
                assert_eq!(d.unseen, Some(counts[categories.len()]), "{what}");
                assert!(counts[categories.len()] > 0, "{what}: the current table has unseen values");
                let chi = drift::chi_squared(&ref_c, &counts).expect("chi2");
                close(d.chi_squared, chi.statistic, &what);
                close(d.chi_squared_p, chi.p_value, &what);
                close(d.psi, drift::psi_from_counts(&ref_c, &counts, 1e-4).expect("psi"), &what);
                let f = |v: &[u64]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
                close(d.js, drift::jensen_shannon(&f(&ref_c), &f(&counts)).expect("js"), &what);
                assert_eq!(d.ks_binned, None);
            }
            other => panic!("unexpected column {other}"),
        }
    }
    // An independent PSI: the textbook sum on the streamed counts of x's first day.
    let first = &report.days[0];
    let reference_counts = match &profile.columns[0].histogram {
        Histogram::Numeric { counts, .. } => counts.clone(),
        other => panic!("x should be numeric: {other:?}"),
    };
    let (rt, ct) = (reference_counts.iter().sum::<u64>() as f64, first.counts.iter().sum::<u64>() as f64);
    let textbook: f64 = reference_counts
        .iter()
        .zip(&first.counts)
        .map(|(&r, &c)| {
            let (r, c) = ((r as f64 / rt).max(1e-4), (c as f64 / ct).max(1e-4));
            (c - r) * (c / r).ln()
        })
        .sum();
    close(first.psi, textbook, "textbook PSI");
}

#[test]
fn monitor_stream_bad_files_are_typed_errors() {
    let dir = Scratch::new("bad");
    let reference = synthetic(500, 3, 19_000, 1, 0.0);
    let profile = build_profile(&[synthetic_batch(&reference)], &profile_config()).expect("profile");
    let good = dir.join("good.parquet");
    write_parquet(&good, &[synthetic_batch(&synthetic(500, 4, 19_000, 3, 0.0))], 100);
    let config = DriftConfig { date_column: Some("day".into()), ..DriftConfig::default() };
    let run = |path: &Path, config: &DriftConfig| drift_parquet(path, &profile, config, &mut |_| {});
    assert!(run(&good, &config).is_ok());

    let missing = run(&dir.join("absent.parquet"), &config);
    assert!(matches!(&missing, Err(Error::MonitorIo { path, .. }) if path.ends_with("absent.parquet")), "{missing:?}");
    let text = dir.join("text.parquet");
    fs::write(&text, "day,x\n1,2\n").expect("write");
    let not_parquet = run(&text, &config);
    assert!(matches!(&not_parquet, Err(Error::MonitorParquet { path, .. }) if *path == text), "{not_parquet:?}");
    // Truncated: the footer is gone. Corrupt: the column data is overwritten.
    let bytes = fs::read(&good).expect("read");
    let truncated = dir.join("truncated.parquet");
    fs::write(&truncated, &bytes[..bytes.len() / 2]).expect("write");
    let r = run(&truncated, &config);
    assert!(matches!(&r, Err(Error::MonitorParquet { path, .. }) if *path == truncated), "{r:?}");
    let corrupt = dir.join("corrupt.parquet");
    let mut broken = bytes.clone();
    for b in &mut broken[4..bytes.len() / 2] {
        *b = 0xA5;
    }
    fs::write(&corrupt, &broken).expect("write");
    let r = run(&corrupt, &config);
    assert!(matches!(&r, Err(Error::MonitorParquet { path, .. }) if *path == corrupt), "{r:?}");

    let unknown = run(&good, &DriftConfig { date_column: Some("when".into()), ..DriftConfig::default() });
    assert!(matches!(&unknown, Err(Error::MonitorUnknownColumn { column, .. }) if column == "when"), "{unknown:?}");
    let wrong_type = run(&good, &DriftConfig { date_column: Some("x".into()), ..DriftConfig::default() });
    assert!(matches!(&wrong_type, Err(Error::MonitorColumnType { column, .. }) if column == "x"), "{wrong_type:?}");
    // A profile column the current file lacks names the file.
    let other = dir.join("other.parquet");
    write_parquet(&other, &[batch(vec![("x", Arc::new(Float64Array::from(vec![1.0])) as ArrayRef)])], 10);
    let lacks = run(&other, &DriftConfig::default());
    assert!(
        matches!(&lacks, Err(Error::MonitorUnknownColumn { column, table, .. }) if column == "n" && table.contains("other.parquet")),
        "{lacks:?}"
    );

    // Bad settings are refused before any reading.
    let zero_epsilon = run(&good, &DriftConfig { epsilon: 0.0, ..DriftConfig::default() });
    assert!(matches!(&zero_epsilon, Err(Error::InvalidParameter(m)) if m.contains("epsilon")), "{zero_epsilon:?}");
    let mut inverted = DriftConfig::default();
    inverted.thresholds.psi_warn = 0.5;
    let r = run(&good, &inverted);
    assert!(matches!(&r, Err(Error::InvalidParameter(m)) if m.contains("psi_warn 0.5")), "{r:?}");
    let mut bad_missing = DriftConfig::default();
    bad_missing.thresholds.missing_delta = 1.5;
    let r = run(&good, &bad_missing);
    assert!(matches!(&r, Err(Error::InvalidParameter(m)) if m.contains("missing_delta 1.5")), "{r:?}");
    let r = build_profile(&[], &profile_config());
    assert!(matches!(&r, Err(Error::InvalidParameter(m)) if m.contains("no batches")), "{r:?}");

    // Profiles: a bad one, too many categories, a named column that is missing.
    let bad_profile = Profile::from_json(
        r#"{"version": 1, "rows": 1, "columns": [{"name": "x", "data_type": "Float64", "missing": 0, "histogram": {"kind": "numeric", "edges": [1.0, 0.5], "counts": [1, 0, 0]}}]}"#,
        "p.json",
    );
    assert!(
        matches!(&bad_profile, Err(Error::MonitorProfile { reason, .. }) if reason.contains("strictly increasing")),
        "{bad_profile:?}"
    );
    let few = ProfileConfig {
        columns: Some(vec!["n".into()]),
        categorical: vec!["n".into()],
        max_categories: 5,
        ..profile_config()
    };
    let many = build_profile(&[synthetic_batch(&reference)], &few);
    assert!(matches!(&many, Err(Error::MonitorTooManyCategories { column, limit: 5 }) if column == "n"), "{many:?}");
    let named = ProfileConfig { columns: Some(vec!["y".into()]), ..profile_config() };
    let r = profile_parquet(&good, &named);
    assert!(matches!(&r, Err(Error::MonitorUnknownColumn { column, .. }) if column == "y"), "{r:?}");
    let r = profile_parquet(&truncated, &profile_config());
    assert!(matches!(&r, Err(Error::MonitorParquet { .. })), "{r:?}");
}

// ------------------------------------------------------------------ the injected shift

/// The generator's table as Arrow, with `hour` and `day` derived from the timestamp.
fn transactions_batch(t: &Transactions, rows: &[usize], category: &[String], amount: &[Option<f64>]) -> RecordBatch {
    let pick = |v: &[&'static str]| StringArray::from(rows.iter().map(|&i| v[i]).collect::<Vec<_>>());
    batch(vec![
        (
            "transaction_id",
            Arc::new(Int64Array::from(rows.iter().map(|&i| t.transaction_id[i] as i64).collect::<Vec<_>>()))
                as ArrayRef,
        ),
        ("amount", Arc::new(Float64Array::from(rows.iter().map(|&i| amount[i]).collect::<Vec<_>>()))),
        ("category", Arc::new(StringArray::from(rows.iter().map(|&i| category[i].as_str()).collect::<Vec<_>>()))),
        ("merchant_country", Arc::new(pick(&t.merchant_country))),
        ("card_country", Arc::new(pick(&t.card_country))),
        (
            "hour",
            Arc::new(Int64Array::from(
                rows.iter().map(|&i| t.timestamp_micros[i].rem_euclid(DAY_MICROS) / 3_600_000_000).collect::<Vec<_>>(),
            )),
        ),
        (
            "timestamp",
            Arc::new(
                TimestampMicrosecondArray::from(rows.iter().map(|&i| t.timestamp_micros[i]).collect::<Vec<_>>())
                    .with_timezone("UTC"),
            ),
        ),
        (
            "day",
            Arc::new(Date32Array::from(
                rows.iter().map(|&i| (t.timestamp_micros[i].div_euclid(DAY_MICROS)) as i32).collect::<Vec<_>>(),
            )),
        ),
    ])
}

#[test]
fn monitor_shift_experiment_flags_exactly_the_shifted_columns_and_days() {
    let dir = Scratch::new("shift");
    let config =
        TransactionsConfig { cards: 2000, merchants: 1000, days: 28, ..TransactionsConfig::tier(Tier::Medium, 7) };
    let t = transactions(&config);
    let start_day = (config.start_micros / DAY_MICROS) as i32;
    let day_of = |i: usize| (t.timestamp_micros[i].div_euclid(DAY_MICROS)) as i32 - start_day;
    let (reference_days, merchant_shift, amount_shift) = (7, 14, 21);
    // (a) From day 14 every other grocery purchase is booked as online retail (the merchant mix);
    // (b) from day 21 amounts are inflated ×1.4 (measured: ×1.3 gives a daily PSI as low as 0.099, two of
    // the seven days stay under the 0.1 warning). Nothing else changes.
    let mut category: Vec<String> = t.category.iter().map(|s| (*s).to_owned()).collect();
    let mut amount: Vec<Option<f64>> = t.amount.iter().map(|&a| Some(a)).collect();
    for i in 0..t.len() {
        if day_of(i) >= merchant_shift && t.category[i] == "grocery" && t.transaction_id[i].is_multiple_of(2) {
            category[i] = "online_retail".to_owned();
        }
        if day_of(i) >= amount_shift {
            amount[i] = Some((t.amount[i] * 1.4 * 100.0).round() / 100.0);
        }
    }
    let (reference_rows, current_rows): (Vec<usize>, Vec<usize>) =
        (0..t.len()).partition(|&i| day_of(i) < reference_days);
    let original: Vec<String> = t.category.iter().map(|s| (*s).to_owned()).collect();
    let original_amount: Vec<Option<f64>> = t.amount.iter().map(|&a| Some(a)).collect();
    let reference = transactions_batch(&t, &reference_rows, &original, &original_amount);
    let current = transactions_batch(&t, &current_rows, &category, &amount);

    let monitored = ["amount", "hour", "category", "merchant_country", "card_country"];
    let profile_config =
        ProfileConfig { columns: Some(monitored.iter().map(|s| (*s).into()).collect()), ..ProfileConfig::default() };
    let profile = build_profile(std::slice::from_ref(&reference), &profile_config).expect("profile");
    let path = dir.join("current.parquet");
    write_parquet(&path, std::slice::from_ref(&current), 8192);
    let drift_config = DriftConfig { date_column: Some("day".into()), ..DriftConfig::default() };
    let report = drift_parquet(&path, &profile, &drift_config, &mut |_| {}).expect("drift");

    let flagged: BTreeSet<(String, i32)> =
        report.alerts.iter().map(|a| (a.column.clone(), a.day.expect("per day") - start_day)).collect();
    let mut expected = BTreeSet::new();
    for d in merchant_shift..28 {
        expected.insert(("category".to_owned(), d));
    }
    for d in amount_shift..28 {
        expected.insert(("amount".to_owned(), d));
    }
    // The figures behind the verdict, printed for the lab book.
    let mut worst: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for d in &report.days {
        let day = d.day.expect("day") - start_day;
        let shifted = expected.contains(&(d.column.clone(), day));
        let e = worst.entry(d.column.clone()).or_insert((f64::INFINITY, 0.0));
        let psi = d.psi.expect("psi");
        if shifted {
            e.0 = e.0.min(psi);
        } else {
            e.1 = e.1.max(psi);
        }
    }
    println!("rows: reference {}, current {}", reference.num_rows(), current.num_rows());
    for (column, (min_shifted, max_unshifted)) in &worst {
        let shifted = if min_shifted.is_finite() { format!("{min_shifted:.4}") } else { "(never shifted)".to_owned() };
        println!("{column}: min PSI on shifted days {shifted}, max PSI on unshifted days {max_unshifted:.4}");
    }
    for (column, shift) in [("category", merchant_shift), ("amount", amount_shift)] {
        let first = flagged.iter().filter(|(c, _)| c == column).map(|(_, d)| *d).min();
        let delay = first.map(|d| d - shift);
        println!("detection delay of the {column} shift (day {shift}): {delay:?} days");
        assert_eq!(delay, Some(0), "{column}");
    }
    let levels: BTreeMap<&str, Vec<Level>> = report.alerts.iter().fold(BTreeMap::new(), |mut m, a| {
        m.entry(a.column.as_str()).or_insert_with(Vec::new).push(a.level);
        m
    });
    println!("alert levels: {levels:?}");
    assert_eq!(flagged, expected, "alerts: {:#?}", report.alerts);

    // A null-introducing shift: from day 24 a tenth of the amounts are lost. Expectations catch it.
    let suite = Suite::from_json(
        r#"{"name": "transactions", "expectations": [
            {"type": "schema", "columns": [{"name": "transaction_id", "type": "Int64"}, {"name": "amount", "type": "Float64"},
              {"name": "category"}, {"name": "merchant_country"}, {"name": "card_country"}, {"name": "hour"},
              {"name": "timestamp", "type": "Timestamp(µs, \"UTC\")"}, {"name": "day", "type": "Date32"}]},
            {"type": "not_null", "column": "amount"},
            {"type": "between", "column": "amount", "min": 0.01, "max": 100000},
            {"type": "between", "column": "hour", "min": 0, "max": 23},
            {"type": "allowed_values", "column": "category", "values": ["grocery", "restaurant", "fuel", "online_retail",
              "electronics", "travel", "pharmacy", "entertainment"]},
            {"type": "unique", "columns": ["transaction_id"]},
            {"type": "row_count", "min": 1000},
            {"type": "freshness", "column": "timestamp", "max_age_seconds": 172800}
        ]}"#,
    )
    .expect("suite");
    let mut lossy = amount.clone();
    let mut nulled = Vec::new();
    for (k, &i) in current_rows.iter().enumerate() {
        if day_of(i) >= 24 && t.transaction_id[i] % 10 == 3 {
            lossy[i] = None;
            nulled.push(k as u64);
        }
    }
    let end = config.start_micros + i64::from(config.days) * DAY_MICROS;
    let validate_config = ValidateConfig { sample_rows: 3, now_micros: Some(end) };
    let clean = validate(std::slice::from_ref(&current), &suite, &validate_config).expect("validate");
    assert!(clean.passed, "{}", clean.to_markdown());
    let broken = validate(&[transactions_batch(&t, &current_rows, &category, &lossy)], &suite, &validate_config)
        .expect("validate");
    assert_eq!(broken.failing_columns, ["amount"], "{}", broken.to_markdown());
    let failed: Vec<&str> = broken.results.iter().filter(|r| !r.passed).map(|r| r.kind.as_str()).collect();
    assert_eq!(failed, ["not_null"]);
    let r = &broken.results[1];
    assert_eq!(r.unexpected_count, nulled.len() as u64);
    assert_eq!(r.sample.iter().map(|b| b.row).collect::<Vec<_>>(), nulled[..3]);
    println!("null shift: {} of {} rows null, caught by {}", nulled.len(), current.num_rows(), r.description);
    // The drift report sees the same loss as missing values, not as drift.
    let lossy_path = dir.join("lossy.parquet");
    write_parquet(&lossy_path, &[transactions_batch(&t, &current_rows, &category, &lossy)], 8192);
    let lossy_report = drift_parquet(&lossy_path, &profile, &drift_config, &mut |_| {}).expect("drift");
    let missing: u64 = lossy_report.days.iter().filter(|d| d.column == "amount").map(|d| d.missing).sum();
    assert_eq!(missing, nulled.len() as u64);
    // PSI sees nothing (the nulls are a random tenth, outside the histogram); the missing-fraction
    // rule flags exactly the lossy days, from the first one.
    let missing_alerts: BTreeSet<(String, i32)> = lossy_report
        .alerts
        .iter()
        .filter(|a| a.statistic == "missing_fraction")
        .map(|a| (a.column.clone(), a.day.expect("per day") - start_day))
        .collect();
    let lossy_days: BTreeSet<(String, i32)> = (24..28).map(|d| ("amount".to_owned(), d)).collect();
    assert_eq!(missing_alerts, lossy_days, "alerts: {:#?}", lossy_report.alerts);
    let other: BTreeSet<(String, i32)> = lossy_report
        .alerts
        .iter()
        .filter(|a| a.statistic != "missing_fraction")
        .map(|a| (a.column.clone(), a.day.expect("per day") - start_day))
        .collect();
    assert_eq!(other, expected, "the lost values change no other alert");
    for a in lossy_report.alerts.iter().filter(|a| a.statistic == "missing_fraction") {
        println!("missing-value alert: {} {}: {}", a.column, a.date.as_deref().unwrap_or("?"), a.detail);
    }
}

// ------------------------------------------------------------------ the CLI

#[cfg(feature = "cli")]
mod cli {
    use super::*;
    use assert_cmd::Command;

    fn sovereign(dir: &Path, args: &[&str]) -> std::process::Output {
        Command::cargo_bin("sovereign")
            .expect("the sovereign binary (feature cli)")
            .current_dir(dir)
            .args(args)
            .output()
            .expect("run sovereign")
    }

    fn ok(dir: &Path, args: &[&str]) -> String {
        let out = sovereign(dir, args);
        assert!(out.status.success(), "sovereign {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).expect("utf-8")
    }

    /// Exit 1, every needle in stderr, no panic; returns (stdout, stderr).
    fn fails(dir: &Path, args: &[&str], needles: &[&str]) -> (String, String) {
        let out = sovereign(dir, args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "sovereign {args:?}: {stderr}");
        for n in needles {
            assert!(stderr.contains(n), "sovereign {args:?}: stderr lacks {n:?}:\n{stderr}");
        }
        assert!(!stderr.contains("panicked"), "{stderr}");
        (String::from_utf8_lossy(&out.stdout).into_owned(), stderr)
    }

    #[test]
    fn monitor_cli_validate_profile_drift_end_to_end() {
        let dir = Scratch::new("cli");
        let d = &dir.0;
        let reference = synthetic(2000, 5, 19_000, 1, 0.0);
        write_parquet(&dir.join("ref.parquet"), &[synthetic_batch(&reference)], 500);
        let current = synthetic(3000, 6, 19_723, 3, 0.0);
        let mut shifted = synthetic(3000, 6, 19_723, 3, 0.0);
        for (x, day) in shifted.x.iter_mut().zip(&shifted.day) {
            if *day == 19_725 {
                *x = x.map(|v| v + 4.0);
            }
        }
        write_parquet(&dir.join("cur.parquet"), &[synthetic_batch(&current)], 700);
        write_parquet(&dir.join("shifted.parquet"), &[synthetic_batch(&shifted)], 700);
        // For validation: a colour the suite does not allow, and data 7 days old.
        let bad = synthetic(3000, 6, 19_723, 3, 0.3);
        write_parquet(&dir.join("bad.parquet"), &[synthetic_batch(&bad)], 700);

        // validate: a TOML suite that passes on the reference and fails on the current table.
        fs::write(
            dir.join("suite.toml"),
            "name = \"synthetic\"\n\n[[expectations]]\ntype = \"between\"\ncolumn = \"n\"\nmin = 0\nmax = 19\n\n\
             [[expectations]]\ntype = \"not_null\"\ncolumn = \"x\"\nmax_null_fraction = 0.05\n\n\
             [[expectations]]\ntype = \"allowed_values\"\ncolumn = \"c\"\nvalues = [\"red\", \"green\", \"blue\", \"amber\"]\n\n\
             [[expectations]]\ntype = \"freshness\"\ncolumn = \"day\"\nmax_age_seconds = 86400\n",
        )
        .expect("write suite");
        let md = ok(
            d,
            &[
                "monitor",
                "validate",
                "--data",
                "ref.parquet",
                "--suite",
                "suite.toml",
                "--now",
                "2022-01-08T12:00:00+02:00",
            ],
        );
        assert!(md.contains("4 of 4 expectations passed"), "{md}");
        let (stdout, stderr) = fails(
            d,
            &[
                "monitor",
                "validate",
                "--data",
                "bad.parquet",
                "--suite",
                "suite.toml",
                "--now",
                "2024-01-10T00:00:00Z",
                "--json",
            ],
            &["2 of 4 expectations failed", "c in {amber, blue, green, red}", "newest day at most 86400 s old"],
        );
        let report: ValidationReport =
            serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
        let in_process = validate(
            &[synthetic_batch(&bad)],
            &suite_as_json(),
            &ValidateConfig { sample_rows: 5, now_micros: Some(JAN1 + 9 * DAY_MICROS) },
        )
        .expect("validate");
        assert_eq!(report, in_process);
        assert_eq!(report.failing_columns, ["c", "day"]);

        // profile, then drift against it: the JSON equals the library's report.
        ok(d, &["monitor", "profile", "--reference", "ref.parquet", "--out", "profile.json", "--bins", "8"]);
        let profile = Profile::load(&dir.join("profile.json")).expect("load");
        assert_eq!(profile, profile_parquet(&dir.join("ref.parquet"), &profile_config()).expect("profile"));
        let json = ok(
            d,
            &[
                "monitor",
                "drift",
                "--profile",
                "profile.json",
                "--current",
                "cur.parquet",
                "--date-column",
                "day",
                "--json",
                "--fail-on-alert",
            ],
        );
        let report: DriftReport = serde_json::from_str(&json).expect("drift JSON");
        let config = DriftConfig { date_column: Some("day".into()), ..DriftConfig::default() };
        let expected = drift_parquet(&dir.join("cur.parquet"), &profile, &config, &mut |_| {}).expect("drift");
        assert_eq!(report, expected);
        assert!(report.alerts.is_empty(), "{:?}", report.alerts);
        let md = ok(
            d,
            &["monitor", "drift", "--profile", "profile.json", "--current", "shifted.parquet", "--date-column", "day"],
        );
        assert!(md.contains("**Alert** x on 2024-01-03: psi"), "{md}");
        fails(
            d,
            &[
                "monitor",
                "drift",
                "--profile",
                "profile.json",
                "--current",
                "shifted.parquet",
                "--date-column",
                "day",
                "--fail-on-alert",
            ],
            &["drift alert(s) on shifted.parquet", "Alert x 2024-01-03: psi"],
        );

        // Bad input names the bad thing.
        fails(d, &["monitor", "validate", "--data", "absent.parquet", "--suite", "suite.toml"], &["absent.parquet"]);
        fails(
            d,
            &["monitor", "validate", "--data", "suite.toml", "--suite", "suite.toml"],
            &["suite.toml: not a readable Parquet file"],
        );
        fails(d, &["monitor", "validate", "--data", "ref.parquet", "--suite", "nope.json"], &["nope.json"]);
        fails(
            d,
            &["monitor", "validate", "--data", "ref.parquet", "--suite", "suite.toml", "--now", "yesterday"],
            &["--now \"yesterday\"", "RFC 3339"],
        );
        fails(
            d,
            &["monitor", "profile", "--reference", "ref.parquet", "--out", "p2.json", "--columns", "x,zz"],
            &["no column \"zz\"", "ref.parquet"],
        );
        fails(
            d,
            &["monitor", "drift", "--profile", "profile.json", "--current", "cur.parquet", "--date-column", "when"],
            &["no column \"when\"", "cur.parquet"],
        );
        fails(
            d,
            &["monitor", "drift", "--profile", "suite.toml", "--current", "cur.parquet"],
            &["drift profile", "suite.toml"],
        );
        fails(d, &["monitor", "drift", "--profile", "profile.json", "--current", "gone.parquet"], &["gone.parquet"]);
    }

    /// The TOML suite's expectations, written as JSON by hand (an independent reading of it).
    fn suite_as_json() -> Suite {
        Suite::from_json(
            r#"{"name": "synthetic", "expectations": [
                {"type": "between", "column": "n", "min": 0, "max": 19},
                {"type": "not_null", "column": "x", "max_null_fraction": 0.05},
                {"type": "allowed_values", "column": "c", "values": ["red", "green", "blue", "amber"]},
                {"type": "freshness", "column": "day", "max_age_seconds": 86400}
            ]}"#,
        )
        .expect("suite")
    }
}

#[test]
fn monitor_expect_transactions_tier_is_usable() {
    // The tiny tier builds a valid table (guards the helper above against generator changes).
    let t = transactions(&TransactionsConfig::tier(Tier::Tiny, 1));
    let rows: Vec<usize> = (0..t.len()).collect();
    let category: Vec<String> = t.category.iter().map(|s| (*s).to_owned()).collect();
    let amount: Vec<Option<f64>> = t.amount.iter().map(|&a| Some(a)).collect();
    let b = transactions_batch(&t, &rows, &category, &amount);
    assert_eq!(b.num_rows(), t.len());
    let mut hours: HashMap<i64, usize> = HashMap::new();
    let hour = b.column_by_name("hour").expect("hour").as_any().downcast_ref::<Int64Array>().expect("i64").clone();
    for h in hour.iter().flatten() {
        *hours.entry(h).or_default() += 1;
    }
    assert!(hours.keys().all(|h| (0..24).contains(h)));
}
