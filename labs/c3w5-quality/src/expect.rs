//! Expectations on a table: declarative checks that a batch of data is what the model expects
//! (Great Expectations' idea, without the framework).
//!
//! A table is a list of named [`Column`]s of equal length, each a vector of optional values
//! (`None` is a missing value). An [`Expectation`] states one property; [`check`] evaluates them
//! all and reports each failing one with the number of failing rows and the first few of them, so
//! that a data engineer can look at the rows rather than at a percentage.

use std::collections::HashSet;

use crate::{Error, Result};

// ANCHOR: types
/// One column of values; `None` is a missing value.
#[derive(Clone, Debug, PartialEq)]
pub enum Column {
    /// Numbers. A NaN is treated as missing by [`Expectation::NotNull`].
    Float(Vec<Option<f64>>),
    /// Strings.
    Text(Vec<Option<String>>),
}

impl Column {
    /// The number of rows. Given.
    pub fn len(&self) -> usize {
        match self {
            Column::Float(v) => v.len(),
            Column::Text(v) => v.len(),
        }
    }

    /// Whether the column has no rows. Given.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A table: named columns of equal length, in order. Names are unique.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Table {
    /// `(name, column)` pairs.
    pub columns: Vec<(String, Column)>,
}

/// One property a table must have.
#[derive(Clone, Debug, PartialEq)]
pub enum Expectation {
    /// No value of the column is missing (`None`, or NaN in a float column).
    NotNull {
        /// The column.
        column: String,
    },
    /// Every present value of a float column lies in `[min, max]` (inclusive; a NaN fails;
    /// missing values are not checked).
    Between {
        /// The column.
        column: String,
        /// Smallest allowed value.
        min: f64,
        /// Largest allowed value.
        max: f64,
    },
    /// Every present value of a text column is one of `allowed` (missing values are not checked).
    AllowedValues {
        /// The column.
        column: String,
        /// The allowed strings.
        allowed: Vec<String>,
    },
    /// No present value occurs twice: every row whose value already occurred in an earlier row
    /// fails (the first occurrence passes). In a float column `0.0` and `-0.0` are one value and
    /// every NaN is the same value.
    Unique {
        /// The column.
        column: String,
    },
    /// The table has between `min` and `max` rows (inclusive).
    RowCount {
        /// Fewest rows allowed.
        min: usize,
        /// Most rows allowed.
        max: usize,
    },
}

/// One failed expectation.
#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    /// Its index in the list passed to [`check`].
    pub expectation: usize,
    /// The column it checks (`None` for [`Expectation::RowCount`]).
    pub column: Option<String>,
    /// How many rows fail it ([`Expectation::RowCount`]: the table's row count).
    pub failing_rows: usize,
    /// The first failing row indices, ascending, at most `sample` of them (empty for
    /// [`Expectation::RowCount`]).
    pub sample_rows: Vec<usize>,
}

/// What [`check`] found.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Report {
    /// How many expectations were evaluated.
    pub evaluated: usize,
    /// The failed ones, in the order of the expectations.
    pub failures: Vec<Failure>,
}

impl Report {
    /// Whether every expectation held. Given.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }

    /// The names of the failing columns, each once, in the order of the failures. Given.
    pub fn failing_columns(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for name in self.failures.iter().filter_map(|f| f.column.as_deref()) {
            if !out.contains(&name) {
                out.push(name);
            }
        }
        out
    }
}
// ANCHOR_END: types

// ANCHOR: check
/// Task c3w5.expectations (12 points): evaluates every expectation on `table` and reports the
/// failing ones.
///
/// First validate everything, before evaluating anything:
/// - the table: two columns with one name, or columns of different lengths, are
///   [`Error::InvalidInput`];
/// - each expectation: a column that does not exist is [`Error::Unknown`] with `kind: "column"`;
///   `Between` on a text column or `AllowedValues` on a float column is [`Error::InvalidInput`];
///   `Between` with a NaN bound or `min > max`, and `RowCount` with `min > max`, are
///   [`Error::InvalidConfig`].
///
/// Then, for each expectation in order, collect the failing rows (ascending) by the rules on
/// [`Expectation`]'s variants; if there are any (for `RowCount`: if the row count is outside
/// `[min, max]`), push a [`Failure`] with the count and the first `sample` row indices.
/// `evaluated` is the number of expectations.
pub fn check(table: &Table, expectations: &[Expectation], sample: usize) -> Result<Report> {
    todo!("c3w5.expectations")
}
// ANCHOR_END: check
