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
}
