//! `sovereign monitor`: check expectations on a Parquet table and measure drift between a reference
//! and a current table (`kernels::monitor`).
//!
//! ```text
//! sovereign monitor validate --data t.parquet --suite suite.json [--now 2024-02-01T00:00:00Z] [--json]
//! sovereign monitor profile --reference ref.parquet --out profile.json [--bins 10]
//! sovereign monitor drift --profile profile.json --current cur.parquet [--date-column day] [--json] [--fail-on-alert]
//! ```
//!
//! `validate` exits 1 when an expectation fails (the report is printed first, the failures listed on
//! stderr); `drift --fail-on-alert` exits 1 when an alert or warning fires. A suite is JSON, or TOML
//! when its name ends in `.toml`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use kernels::monitor::drift::Binning;
use kernels::monitor::expect::{Suite, ValidateConfig, validate};
use kernels::monitor::stream::{
    DriftConfig, Profile, ProfileConfig, drift_parquet, profile_parquet, read_parquet_table,
};

use crate::print_json;

/// `sovereign monitor …`
#[derive(Subcommand)]
pub enum MonitorCommand {
    /// Check a Parquet table against an expectation suite (exit 1 when one fails).
    Validate {
        /// The table.
        #[arg(long)]
        data: PathBuf,
        /// The suite (JSON, or TOML for `*.toml`).
        #[arg(long)]
        suite: PathBuf,
        /// "Now" for freshness expectations (RFC 3339, e.g. 2024-02-01T00:00:00Z); default: the clock.
        #[arg(long)]
        now: Option<String>,
        /// Bad rows shown per expectation.
        #[arg(long, default_value_t = 5)]
        sample_rows: usize,
        /// Print the report as JSON (default: Markdown).
        #[arg(long)]
        json: bool,
    },
    /// Summarise a reference table into a drift profile (JSON).
    Profile {
        /// The reference table (Parquet).
        #[arg(long)]
        reference: PathBuf,
        /// Where to write the profile.
        #[arg(long)]
        out: PathBuf,
        /// Quantile bins per numeric column.
        #[arg(long, default_value_t = 10)]
        bins: usize,
        /// Profile only these columns (repeat, or separate with commas); default: every usable one.
        #[arg(long, value_delimiter = ',')]
        columns: Vec<String>,
        /// Integer columns to treat as categories.
        #[arg(long, value_delimiter = ',')]
        categorical: Vec<String>,
    },
    /// Stream a current Parquet table against a profile: PSI, JS, KS (binned), chi-squared, alerts.
    Drift {
        /// The profile written by `monitor profile`.
        #[arg(long)]
        profile: PathBuf,
        /// The current table (Parquet), read row group by row group.
        #[arg(long)]
        current: PathBuf,
        /// A Date32/Date64/Timestamp column: statistics and alerts per day.
        #[arg(long)]
        date_column: Option<String>,
        /// Print the report as JSON (default: Markdown).
        #[arg(long)]
        json: bool,
        /// Exit 1 when any alert or warning fires.
        #[arg(long)]
        fail_on_alert: bool,
    },
}

/// Runs `sovereign monitor …`.
pub fn run(command: MonitorCommand) -> Result<()> {
    match command {
        MonitorCommand::Validate { data, suite, now, sample_rows, json } => {
            run_validate(&data, &suite, now.as_deref(), sample_rows, json)
        }
        MonitorCommand::Profile { reference, out, bins, columns, categorical } => {
            let config = ProfileConfig {
                columns: (!columns.is_empty()).then_some(columns),
                categorical,
                binning: Binning::Quantile { bins },
                ..ProfileConfig::default()
            };
            let profile =
                profile_parquet(&reference, &config).with_context(|| format!("profiling {}", reference.display()))?;
            profile.save(&out)?;
            eprintln!(
                "profiled {} columns of {} rows from {} into {}{}",
                profile.columns.len(),
                profile.rows,
                reference.display(),
                out.display(),
                if profile.skipped.is_empty() {
                    String::new()
                } else {
                    format!(" (skipped: {})", profile.skipped.join("; "))
                }
            );
            Ok(())
        }
        MonitorCommand::Drift { profile, current, date_column, json, fail_on_alert } => {
            run_drift(&profile, &current, date_column, json, fail_on_alert)
        }
    }
}

fn run_validate(data: &Path, suite_path: &Path, now: Option<&str>, sample_rows: usize, json: bool) -> Result<()> {
    let text =
        std::fs::read_to_string(suite_path).with_context(|| format!("reading the suite {}", suite_path.display()))?;
    let suite: Suite = if suite_path.extension().is_some_and(|e| e == "toml") {
        toml::from_str(&text).with_context(|| format!("the suite {} is not a valid suite", suite_path.display()))?
    } else {
        Suite::from_json(&text).with_context(|| format!("the suite {}", suite_path.display()))?
    };
    let now_micros = match now {
        Some(s) => parse_rfc3339(s).with_context(|| format!("--now {s:?}"))?,
        None => {
            let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            i64::try_from(since.as_micros()).unwrap_or(i64::MAX)
        }
    };
    let batches = read_parquet_table(data)?;
    let report = validate(&batches, &suite, &ValidateConfig { sample_rows, now_micros: Some(now_micros) })?;
    if json {
        print_json(&serde_json::to_value(&report)?);
    } else {
        print!("{}", report.to_markdown());
    }
    if !report.passed {
        let failed: Vec<String> = report
            .results
            .iter()
            .filter(|r| !r.passed)
            .map(|r| {
                format!(
                    "#{} {}{}",
                    r.index,
                    r.description,
                    r.reason.as_ref().map(|s| format!(" ({s})")).unwrap_or_default()
                )
            })
            .collect();
        bail!(
            "{} of {} expectations failed on {} (columns: {}):\n  {}",
            report.failed,
            report.results.len(),
            data.display(),
            report.failing_columns.join(", "),
            failed.join("\n  ")
        );
    }
    Ok(())
}

fn run_drift(profile_path: &Path, current: &Path, date_column: Option<String>, json: bool, fail: bool) -> Result<()> {
    let profile = Profile::load(profile_path)?;
    let config = DriftConfig { date_column, ..DriftConfig::default() };
    let bar = indicatif::ProgressBar::new(0);
    if let Ok(style) = indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} row groups, {msg} ({eta})") {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    let report = drift_parquet(current, &profile, &config, &mut |p| {
        bar.set_length(p.row_groups_total as u64);
        bar.set_position(p.row_groups_done as u64);
        bar.set_message(format!("{}/{} rows", p.rows_done, p.rows_total));
    });
    bar.finish_and_clear();
    let report =
        report.with_context(|| format!("drift of {} against {}", current.display(), profile_path.display()))?;
    if json {
        print_json(&serde_json::to_value(&report)?);
    } else {
        print!("{}", report.to_markdown());
    }
    if fail && !report.alerts.is_empty() {
        let lines: Vec<String> = report
            .alerts
            .iter()
            .map(|a| {
                format!(
                    "{:?} {} {}: {} = {:.4}",
                    a.level,
                    a.column,
                    a.date.as_deref().unwrap_or("(whole table)"),
                    a.statistic,
                    a.value
                )
            })
            .collect();
        bail!("{} drift alert(s) on {}:\n  {}", report.alerts.len(), current.display(), lines.join("\n  "));
    }
    Ok(())
}

/// Microseconds since the epoch of an RFC 3339 instant (`YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`).
fn parse_rfc3339(s: &str) -> Result<i64> {
    let bad = || anyhow::anyhow!("not an RFC 3339 time (want e.g. 2024-02-01T00:00:00Z)");
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| s.get(r).and_then(|t| t.parse::<i64>().ok()).ok_or_else(bad);
    let (y, mo, d, h, mi, se) = (num(0..4)?, num(5..7)?, num(8..10)?, num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return Err(bad());
    }
    let mut rest = &s[19..];
    let mut micros = 0i64;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let f = &frac[..digits.min(6)];
        micros = f.parse::<i64>().map_err(|_| bad())? * 10i64.pow(6 - f.len() as u32);
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && matches!(&rest[..1], "+" | "-") && &rest[3..4] == ":" => {
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            sign * (num_of(&rest[1..3]).ok_or_else(bad)? * 3600 + num_of(&rest[4..6]).ok_or_else(bad)? * 60)
        }
        _ => return Err(bad()),
    };
    // Days from civil (Hinnant).
    let (y, m) = if mo <= 2 { (y - 1, mo + 9) } else { (y, mo - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let seconds = days * 86_400 + h * 3600 + mi * 60 + se - offset;
    Ok(seconds * 1_000_000 + micros)
}

fn num_of(s: &str) -> Option<i64> {
    s.parse().ok()
}
