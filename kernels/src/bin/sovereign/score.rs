//! `sovereign score`: batch scoring with `kernels::score`: a registry-verified model (or a model folder)
//! over a Parquet file, a folder of Parquet files or a Delta table, into a partitioned Parquet dataset or
//! a Delta table, with a progress bar; run it again after a crash and it finishes the same job.
//!
//! ```text
//! sovereign score --registry reg --keyring keys --model fraud --input txns/ --output scores/ --format delta
//! sovereign score --model-dir models/fraud --input new.parquet --output scored/ --key txn_id --json
//! ```

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use kernels::score::{OutputFormat, ScoreConfig, ScoreProgress};

use crate::print_json;
use crate::serve_model::ModelArgs;

/// The output formats.
#[derive(Clone, Copy, PartialEq, Eq, Debug, ValueEnum)]
pub enum FormatArg {
    /// Hive-style `part=N/` Parquet files (and `_SUCCESS` when complete).
    Parquet,
    /// A Delta table partitioned by `part`.
    Delta,
}

/// Arguments of `score`.
#[derive(Args)]
pub struct ScoreArgs {
    #[command(flatten)]
    source: ModelArgs,
    /// A Parquet file, a folder of Parquet files, or a Delta table.
    #[arg(long)]
    input: PathBuf,
    /// The output folder (a Parquet dataset or a Delta table).
    #[arg(long)]
    output: PathBuf,
    /// The output format.
    #[arg(long, value_enum, default_value = "parquet")]
    format: FormatArg,
    /// An input column to copy next to the scores (e.g. a transaction id).
    #[arg(long)]
    key: Option<String>,
    /// Rows per part (the unit of work, commit and output partition), in whole row groups.
    #[arg(long, default_value_t = 65_536)]
    part_rows: usize,
    /// Rows decoded and scored at a time.
    #[arg(long, default_value_t = 8_192)]
    batch_rows: usize,
    /// Parts scored at once (0: one per rayon thread; RAYON_NUM_THREADS sets those).
    #[arg(long, default_value_t = 0)]
    workers: usize,
    /// Score only parts A..B (or one part N): other workers score the other parts into the same output.
    #[arg(long, value_parser = parse_parts)]
    parts: Option<std::ops::Range<usize>>,
    /// Replace an output that holds another model's or input's scores (or anything else).
    #[arg(long)]
    overwrite: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `sovereign score`.
pub fn run(args: ScoreArgs) -> Result<()> {
    let model = args.source.source(None)?;
    let config = ScoreConfig {
        format: match args.format {
            FormatArg::Parquet => OutputFormat::Parquet,
            FormatArg::Delta => OutputFormat::Delta,
        },
        key: args.key.clone(),
        part_rows: args.part_rows,
        batch_rows: args.batch_rows,
        workers: args.workers,
        overwrite: args.overwrite,
        parts: args.parts.clone(),
        ..ScoreConfig::new(model, &args.input, &args.output)
    };
    let bar = indicatif::ProgressBar::new(0);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} rows, {msg} ({per_sec}, eta {eta})")
    {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    let mut progress = |p: &ScoreProgress| {
        bar.set_length(p.rows_total);
        bar.set_position(p.rows_done);
        bar.set_message(format!("{}/{} parts committed", p.parts_done, p.parts_total));
        ControlFlow::Continue(())
    };
    let report = kernels::score::score(&config, &mut progress);
    bar.finish_and_clear();
    let report = report.with_context(|| format!("scoring {} into {}", args.input.display(), args.output.display()))?;
    if args.json {
        print_json(&serde_json::to_value(&report)?);
    } else {
        println!(
            "scored {} rows ({} resumed from a previous run) with {} in {:.2} s: {} ({} parts{})",
            report.rows_total,
            report.rows_resumed,
            report.model,
            report.seconds,
            args.output.display(),
            report.parts_total,
            report.delta_version.map(|v| format!(", Delta version {v}")).unwrap_or_default()
        );
    }
    Ok(())
}

/// `A..B` (parts A to B-1) or `N` (part N alone).
fn parse_parts(s: &str) -> Result<std::ops::Range<usize>, String> {
    let number = |t: &str| t.trim().parse::<usize>().map_err(|_| format!("{s:?}: expected A..B or N (part numbers)"));
    match s.split_once("..") {
        Some((a, b)) => Ok(number(a)?..number(b)?),
        None => number(s).map(|n| n..n + 1),
    }
}
