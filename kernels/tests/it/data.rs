//! Tests of `kernels::data` (Parquet/Arrow I/O, statistics, transforms, as-of join,
//! Delta tables) against independent references: hand-computed values, brute-force
//! joins, scalar twins, and the real Python tools (pyarrow, deltalake, NumPy).
//!
//! Specs: the Apache Parquet format, the Arrow columnar format, the Delta Lake
//! transaction protocol (see `kernels::data`).

mod asof;
mod delta;
mod interop;
mod parquet;
mod stats;
mod transform;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use kernels::data::{Column, RecordBatch, record_batch};

/// A fresh folder under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("kernels-data-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The generated card transactions as a record batch (timestamps in µs, UTC).
pub fn transactions_batch(t: &datasets::transactions::Transactions) -> RecordBatch {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    record_batch(vec![
        ("transaction_id", Column::I64(t.transaction_id.iter().map(|&x| x as i64).collect())),
        ("card_id", Column::I64(t.card_id.iter().map(|&x| x as i64).collect())),
        ("merchant_id", Column::I32(t.merchant_id.iter().map(|&x| x as i32).collect())),
        ("ts", Column::TimestampMicros(t.timestamp_micros.clone())),
        ("amount", Column::F64(t.amount.clone())),
        ("category", Column::Str(s(&t.category))),
        ("merchant_country", Column::Str(s(&t.merchant_country))),
        ("card_country", Column::Str(s(&t.card_country))),
        ("is_fraud", Column::Bool(t.is_fraud.clone())),
    ])
    .expect("columns of one length")
}

/// The tiny tier of the transaction generator, seed 7.
pub fn tiny_transactions() -> RecordBatch {
    let cfg = datasets::transactions::TransactionsConfig::tier(datasets::Tier::Tiny, 7);
    transactions_batch(&datasets::transactions::transactions(&cfg))
}
