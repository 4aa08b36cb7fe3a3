//! Predict-request bodies turned into a row-major f32 batch, with a typed error for every way a row can
//! be wrong (the shapes follow TensorFlow Serving's and KServe v1's `{"instances": …}`).
//!
//! ```json
//! {"instances": [[120.5, 4.8, 13, 2, 0, 35.0, 1, 1.4, 0], …]}      // positional, the model's column order
//! {"rows": [{"amount": 120.5, "log_amount": 4.8, …}, …]}           // by feature name, every feature once
//! ```
//!
//! A value is a JSON number or `null` (missing: NaN, which tree models send down each node's learned
//! default side and the other models refuse). Rows are parsed by a streaming visitor that records a
//! wrong value's JSON type instead of failing, so the error names the row and the feature.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::model::LoadedModel;

/// One value of a row as sent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell {
    /// A JSON number.
    Num(f64),
    /// `null`: a missing value.
    Null,
    /// Anything else; the JSON type's name.
    Other(&'static str),
}

impl<'de> Deserialize<'de> for Cell {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Cell;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number or null")
            }
            fn visit_f64<E>(self, v: f64) -> Result<Cell, E> {
                Ok(Cell::Num(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Cell, E> {
                Ok(Cell::Num(v as f64))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Cell, E> {
                Ok(Cell::Num(v as f64))
            }
            fn visit_unit<E>(self) -> Result<Cell, E> {
                Ok(Cell::Null)
            }
            fn visit_none<E>(self) -> Result<Cell, E> {
                Ok(Cell::Null)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Cell, E> {
                Ok(Cell::Other("boolean"))
            }
            fn visit_str<E>(self, _: &str) -> Result<Cell, E> {
                Ok(Cell::Other("string"))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Cell, A::Error> {
                while s.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Cell::Other("array"))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Cell, A::Error> {
                while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Cell::Other("object"))
            }
        }
        d.deserialize_any(V)
    }
}

/// One row as sent.
#[derive(Debug, Clone, PartialEq)]
pub enum Row {
    /// An array: values in the model's feature order.
    Positional(Vec<Cell>),
    /// An object: feature name → value.
    Named(Vec<(String, Cell)>),
    /// Neither; the JSON type's name.
    Other(&'static str),
}

impl<'de> Deserialize<'de> for Row {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Row;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array of feature values or an object of named feature values")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Row, A::Error> {
                let mut cells = Vec::with_capacity(s.size_hint().unwrap_or(16));
                while let Some(c) = s.next_element::<Cell>()? {
                    cells.push(c);
                }
                Ok(Row::Positional(cells))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Row, A::Error> {
                let mut cells = Vec::with_capacity(m.size_hint().unwrap_or(16));
                while let Some((k, v)) = m.next_entry::<String, Cell>()? {
                    cells.push((k, v));
                }
                Ok(Row::Named(cells))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Row, E> {
                Ok(Row::Other("number"))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Row, E> {
                Ok(Row::Other("number"))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Row, E> {
                Ok(Row::Other("number"))
            }
            fn visit_unit<E>(self) -> Result<Row, E> {
                Ok(Row::Other("null"))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Row, E> {
                Ok(Row::Other("boolean"))
            }
            fn visit_str<E>(self, _: &str) -> Result<Row, E> {
                Ok(Row::Other("string"))
            }
        }
        d.deserialize_any(V)
    }
}

/// A predict request's JSON body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PredictRequest {
    /// Rows (KServe v1 / TF Serving name).
    #[serde(default)]
    pub instances: Option<Vec<Row>>,
    /// Rows (the alternative name).
    #[serde(default)]
    pub rows: Option<Vec<Row>>,
}

/// Why a request's rows cannot be scored (answered with `status` and a JSON error).
#[derive(Debug, Clone, PartialEq)]
pub struct InputError {
    /// The HTTP status (400 for malformed requests, 422 for rows that do not fit the model).
    pub status: u16,
    /// The machine-readable code (`wrong_feature_count`, `non_numeric`, …).
    pub code: &'static str,
    /// What is wrong, for a person.
    pub message: String,
    /// The row at fault (0-based), if one is.
    pub row: Option<usize>,
    /// The feature at fault, if one is.
    pub feature: Option<String>,
}

impl InputError {
    /// A 400 (malformed request) error.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> InputError {
        InputError { status: 400, code, message: message.into(), row: None, feature: None }
    }

    fn unfit(code: &'static str, row: usize, feature: Option<&str>, message: String) -> InputError {
        InputError { status: 422, code, message, row: Some(row), feature: feature.map(str::to_string) }
    }
}

/// Parses a JSON predict body into rows (400 on malformed JSON or a body naming neither or both of
/// `instances` and `rows`).
///
/// # Errors
/// [`InputError`] with code `bad_json` or `bad_shape`.
pub fn parse_json(body: &[u8]) -> Result<Vec<Row>, InputError> {
    let request: PredictRequest = serde_json::from_slice(body)
        .map_err(|e| InputError::bad_request("bad_json", format!("the body is not a predict request: {e}")))?;
    match (request.instances, request.rows) {
        (Some(rows), None) | (None, Some(rows)) => Ok(rows),
        (None, None) => {
            Err(InputError::bad_request("bad_shape", "the body needs \"instances\" (or \"rows\"): a list of rows"))
        }
        (Some(_), Some(_)) => Err(InputError::bad_request("bad_shape", "give \"instances\" or \"rows\", not both")),
    }
}

/// Converts one value; `row`/`feature` name it in errors.
fn value(cell: Cell, model: &LoadedModel, row: usize, feature: &str) -> Result<f32, InputError> {
    match cell {
        Cell::Num(v) => {
            let x = v as f32;
            if x.is_finite() {
                Ok(x)
            } else {
                Err(InputError::unfit(
                    "out_of_range",
                    row,
                    Some(feature),
                    format!("row {row}, feature {feature:?}: {v} is outside the f32 range"),
                ))
            }
        }
        Cell::Null if model.allows_missing => Ok(f32::NAN),
        Cell::Null => Err(InputError::unfit(
            "missing_value",
            row,
            Some(feature),
            format!(
                "row {row}, feature {feature:?}: null (missing), which a {} model cannot take; only tree models accept missing values",
                model.kind
            ),
        )),
        Cell::Other(t) => Err(InputError::unfit(
            "non_numeric",
            row,
            Some(feature),
            format!("row {row}, feature {feature:?}: a {t}, expected a number or null"),
        )),
    }
}

/// Checks `rows` against `model` and packs them row-major: `(values, number of rows)`.
///
/// # Errors
/// [`InputError`]: `empty_input`, `too_many_rows` (more than `max_rows`), `bad_row`,
/// `wrong_feature_count`, `unknown_feature`, `missing_feature`, `duplicate_feature`, `non_numeric`,
/// `missing_value`, `out_of_range`, naming the row and feature.
pub fn to_batch(rows: &[Row], model: &LoadedModel, max_rows: usize) -> Result<(Vec<f32>, usize), InputError> {
    if rows.is_empty() {
        return Err(InputError::bad_request("empty_input", "no rows to score"));
    }
    if rows.len() > max_rows {
        return Err(InputError::bad_request(
            "too_many_rows",
            format!("{} rows in one request; this server takes at most {max_rows}", rows.len()),
        ));
    }
    let names = &model.feature_names;
    let d = names.len();
    let mut out = Vec::with_capacity(rows.len() * d);
    let mut slots: Vec<Option<f32>> = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        match row {
            Row::Positional(cells) => {
                if cells.len() != d {
                    return Err(InputError::unfit(
                        "wrong_feature_count",
                        i,
                        None,
                        format!("row {i} has {} values; model {} takes {d}: {names:?}", cells.len(), model.name),
                    ));
                }
                for (c, name) in cells.iter().zip(names) {
                    out.push(value(*c, model, i, name)?);
                }
            }
            Row::Named(cells) => {
                slots.clear();
                slots.resize(d, None);
                for (k, c) in cells {
                    let Some(j) = names.iter().position(|n| n == k) else {
                        return Err(InputError::unfit(
                            "unknown_feature",
                            i,
                            Some(k.as_str()),
                            format!("row {i}: model {} has no feature {k:?} (features: {names:?})", model.name),
                        ));
                    };
                    if slots[j].is_some() {
                        return Err(InputError::unfit(
                            "duplicate_feature",
                            i,
                            Some(k.as_str()),
                            format!("row {i}: feature {k:?} given twice"),
                        ));
                    }
                    slots[j] = Some(value(*c, model, i, k)?);
                }
                if let Some(j) = slots.iter().position(Option::is_none) {
                    return Err(InputError::unfit(
                        "missing_feature",
                        i,
                        Some(names[j].as_str()),
                        format!("row {i}: feature {:?} is missing (give null for a missing value)", names[j]),
                    ));
                }
                out.extend(slots.iter().map(|s| s.unwrap_or(f32::NAN)));
            }
            Row::Other(t) => {
                return Err(InputError::unfit(
                    "bad_row",
                    i,
                    None,
                    format!("row {i} is a {t}; a row is an array of values or an object of named values"),
                ));
            }
        }
    }
    Ok((out, rows.len()))
}

/// Arrow IPC stream bodies (`application/vnd.apache.arrow.stream`): record batches whose columns are
/// the model's features by name (any integer or float type; nulls are missing values).
#[cfg(feature = "data")]
pub fn arrow_to_batch(body: &[u8], model: &LoadedModel, max_rows: usize) -> Result<(Vec<f32>, usize), InputError> {
    use arrow::array::{Array, Float32Array};
    use arrow::datatypes::DataType;

    let reader = arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(body), None)
        .map_err(|e| InputError::bad_request("bad_arrow", format!("the body is not an Arrow IPC stream: {e}")))?;
    let schema = reader.schema();
    let names = &model.feature_names;
    for f in schema.fields() {
        if !names.iter().any(|n| n == f.name()) {
            return Err(InputError {
                status: 422,
                code: "unknown_feature",
                message: format!(
                    "column {:?} is not a feature of model {} (features: {names:?})",
                    f.name(),
                    model.name
                ),
                row: None,
                feature: Some(f.name().clone()),
            });
        }
    }
    let mut columns = Vec::with_capacity(names.len());
    for n in names {
        let Ok(j) = schema.index_of(n) else {
            return Err(InputError {
                status: 422,
                code: "missing_feature",
                message: format!("no column {n:?} in the record batches"),
                row: None,
                feature: Some(n.clone()),
            });
        };
        let t = schema.field(j).data_type();
        if !(t.is_numeric() || matches!(t, DataType::Null)) {
            return Err(InputError {
                status: 422,
                code: "non_numeric",
                message: format!("column {n:?} has type {t}, expected a number type"),
                row: None,
                feature: Some(n.clone()),
            });
        }
        columns.push(j);
    }
    let batches: Vec<_> = reader
        .collect::<Result<_, _>>()
        .map_err(|e| InputError::bad_request("bad_arrow", format!("reading the Arrow IPC stream: {e}")))?;
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    if rows == 0 {
        return Err(InputError::bad_request("empty_input", "no rows to score"));
    }
    if rows > max_rows {
        return Err(InputError::bad_request(
            "too_many_rows",
            format!("{rows} rows in one request; this server takes at most {max_rows}"),
        ));
    }
    let d = names.len();
    let mut out = vec![0.0f32; rows * d];
    let mut first = 0;
    for b in &batches {
        for (k, &j) in columns.iter().enumerate() {
            let col = arrow::compute::cast(b.column(j), &DataType::Float32)
                .map_err(|e| InputError::bad_request("bad_arrow", format!("column {:?}: {e}", names[k])))?;
            let col = col.as_any().downcast_ref::<Float32Array>().expect("cast to Float32 gives a Float32Array");
            for r in 0..col.len() {
                let v = if col.is_null(r) { f32::NAN } else { col.value(r) };
                let row = first + r;
                if v.is_nan() && !model.allows_missing {
                    return Err(InputError::unfit(
                        "missing_value",
                        row,
                        Some(names[k].as_str()),
                        format!("row {row}, feature {:?}: missing, which a {} model cannot take", names[k], model.kind),
                    ));
                }
                if v.is_infinite() {
                    return Err(InputError::unfit(
                        "out_of_range",
                        row,
                        Some(names[k].as_str()),
                        format!("row {row}, feature {:?}: infinite", names[k]),
                    ));
                }
                out[row * d + k] = v;
            }
        }
        first += b.num_rows();
    }
    Ok((out, rows))
}
