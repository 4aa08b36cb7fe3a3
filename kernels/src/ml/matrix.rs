//! The input of every model: a dense row-major f32 matrix with optional column names.

use crate::{Error, Result};

/// A dense row-major matrix of `rows × cols` f32 features (NaN marks a missing value).
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    rows: usize,
    cols: usize,
    data: Vec<f32>,
    names: Vec<String>,
}

impl Matrix {
    /// Wraps `data` (row-major, `rows × cols` values); columns are named `f0`, `f1`, ….
    pub fn new(rows: usize, cols: usize, data: Vec<f32>) -> Result<Matrix> {
        if cols == 0 || data.len() != rows * cols {
            return Err(Error::RaggedBuffer { len: data.len(), dim: cols });
        }
        let names = (0..cols).map(|j| format!("f{j}")).collect();
        Ok(Matrix { rows, cols, data, names })
    }

    /// Builds a matrix from equal-length rows.
    pub fn from_rows(rows: &[Vec<f32>]) -> Result<Matrix> {
        let cols = rows.first().map_or(0, Vec::len);
        let mut data = Vec::with_capacity(rows.len() * cols);
        for row in rows {
            if row.len() != cols {
                return Err(Error::DimensionMismatch { expected: cols, got: row.len() });
            }
            data.extend_from_slice(row);
        }
        Matrix::new(rows.len(), cols, data)
    }

    /// Names the columns (one name per column).
    pub fn with_names(mut self, names: Vec<String>) -> Result<Matrix> {
        if names.len() != self.cols {
            return Err(Error::DimensionMismatch { expected: self.cols, got: names.len() });
        }
        self.names = names;
        Ok(self)
    }

    /// Number of rows (examples).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns (features).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The column names.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// All values, row-major.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// Row `i` (panics when out of range, like slice indexing).
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// The value at row `i`, column `j`.
    pub fn get(&self, i: usize, j: usize) -> f32 {
        self.data[i * self.cols + j]
    }

    /// Column `j`, copied out.
    pub fn column(&self, j: usize) -> Vec<f32> {
        (0..self.rows).map(|i| self.get(i, j)).collect()
    }

    /// A new matrix of the given rows (in that order, repeats allowed), names kept.
    pub fn select_rows(&self, idx: &[usize]) -> Matrix {
        let mut data = Vec::with_capacity(idx.len() * self.cols);
        for &i in idx {
            data.extend_from_slice(self.row(i));
        }
        Matrix { rows: idx.len(), cols: self.cols, data, names: self.names.clone() }
    }

    /// The first (row, column) holding a NaN or an infinity, if any.
    pub fn first_non_finite(&self) -> Option<(usize, usize)> {
        self.data.iter().position(|v| !v.is_finite()).map(|p| (p / self.cols, p % self.cols))
    }

    /// A BLAKE3 digest of the shape, the names and the values' bits: the training-data
    /// fingerprint recorded in a saved model's header.
    pub fn fingerprint(&self) -> String {
        let mut h = blake3::Hasher::new();
        h.update(&(self.rows as u64).to_le_bytes());
        h.update(&(self.cols as u64).to_le_bytes());
        for name in &self.names {
            h.update(&(name.len() as u64).to_le_bytes());
            h.update(name.as_bytes());
        }
        for v in &self.data {
            h.update(&v.to_bits().to_le_bytes());
        }
        h.finalize().to_hex().to_string()
    }

    /// The numeric columns `columns` of an Arrow batch as a matrix, named after them and in that order
    /// (how Parquet tables read with [`crate::data::read_parquet`] become model input).
    ///
    /// Floating-point, integer and boolean columns (`true` = 1) are converted to f32; a null becomes
    /// NaN (a missing value), so integers beyond 2²⁴ lose precision as f32 does.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] when `columns` is empty or names a column twice,
    /// [`Error::MissingColumn`] for a column the batch lacks (listing those it has),
    /// [`Error::ColumnType`] for a column that is not numeric (naming it and its type).
    #[cfg(feature = "data")]
    pub fn from_batch(batch: &arrow::array::RecordBatch, columns: &[&str]) -> Result<Matrix> {
        use arrow::array::{Array, AsArray};
        use arrow::datatypes::{
            DataType, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type,
            UInt32Type, UInt64Type,
        };

        if columns.is_empty() {
            return Err(Error::InvalidParameter("no columns to build a matrix from".into()));
        }
        if let Some(j) = (1..columns.len()).find(|&j| columns[..j].contains(&columns[j])) {
            return Err(Error::InvalidParameter(format!("column {:?} is named twice", columns[j])));
        }
        let (rows, cols) = (batch.num_rows(), columns.len());
        let mut data = vec![f32::NAN; rows * cols];
        for (j, &name) in columns.iter().enumerate() {
            let array = crate::data::column(batch, name)?;
            let mut put = |i: usize, v: f32| data[i * cols + j] = v;
            macro_rules! numeric {
                ($t:ty) => {{
                    let a = array.as_primitive::<$t>();
                    for i in 0..rows {
                        if a.is_valid(i) {
                            put(i, a.value(i) as f32);
                        }
                    }
                }};
            }
            match array.data_type() {
                DataType::Float32 => numeric!(Float32Type),
                DataType::Float64 => numeric!(Float64Type),
                DataType::Int8 => numeric!(Int8Type),
                DataType::Int16 => numeric!(Int16Type),
                DataType::Int32 => numeric!(Int32Type),
                DataType::Int64 => numeric!(Int64Type),
                DataType::UInt8 => numeric!(UInt8Type),
                DataType::UInt16 => numeric!(UInt16Type),
                DataType::UInt32 => numeric!(UInt32Type),
                DataType::UInt64 => numeric!(UInt64Type),
                DataType::Float16 => {
                    let a = array.as_primitive::<arrow::datatypes::Float16Type>();
                    for i in 0..rows {
                        if a.is_valid(i) {
                            put(i, a.value(i).to_f32());
                        }
                    }
                }
                DataType::Boolean => {
                    let a = array.as_boolean();
                    for i in 0..rows {
                        if a.is_valid(i) {
                            put(i, if a.value(i) { 1.0 } else { 0.0 });
                        }
                    }
                }
                other => {
                    return Err(Error::ColumnType {
                        column: name.to_string(),
                        expected: "a numeric or boolean column".into(),
                        got: other.clone(),
                    });
                }
            }
        }
        Ok(Matrix { rows, cols, data, names: columns.iter().map(|s| s.to_string()).collect() })
    }
}
