//! `sovereign trace`: a command's system calls under `kernels::audit` (ptrace(2) on Linux x86_64):
//! a `strace -c`-style summary, a BLAKE3 hash-chained JSON Lines log, and a network and file policy.
//!
//! ```text
//! sovereign trace --summary -- python3 script.py                     # the table on stderr
//! sovereign trace --log run.jsonl --deny-network -- sovereign serve --demo
//! sovereign trace --allow-path /usr --allow-path /lib --allow-path /etc -- cat /etc/hostname
//! sovereign trace verify run.jsonl [--head HEX] [--json]             # chain, order, end record
//! ```
//!
//! Exit status of `sovereign trace -- CMD`: **3** when the policy was broken (each offending call is
//! named on stderr with its address or path; it was denied with `EACCES` unless `--report-only`),
//! otherwise the command's own status (128 + the signal if a signal killed it), and 1 when the tracer
//! itself failed. A command that itself exits with 3 is told apart by the absence of a
//! `policy violation` line. `trace verify` exits 0 on a sound log and 1 naming the first bad line.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use kernels::audit::{
    Enforcement, FilePolicy, NetworkPolicy, POLICY_EXIT_CODE, Policy, TraceConfig, trace, verify_log,
};
use serde_json::json;

use crate::print_json;

/// At most this many violations are printed one per line (all are in the log).
const SHOWN_VIOLATIONS: usize = 20;

/// `sovereign trace [OPTIONS] -- CMD ARGS…` or `sovereign trace verify FILE`.
#[derive(Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct TraceArgs {
    #[command(subcommand)]
    command: Option<TraceCommand>,
    /// Print the per-syscall table (calls, errors, time; like `strace -c`) on stderr.
    #[arg(long)]
    summary: bool,
    /// Write the hash-chained JSON Lines event log to this file.
    #[arg(long, value_name = "FILE")]
    log: Option<PathBuf>,
    /// Allow connections only to loopback, Unix and netlink sockets; any other fails the run (exit 3).
    #[arg(long)]
    deny_network: bool,
    /// Allow opening files only under this path (repeatable); any other open fails the run (exit 3).
    #[arg(long = "allow-path", value_name = "PREFIX")]
    allow_paths: Vec<PathBuf>,
    /// Let offending calls run and only report them (the exit status is still 3).
    #[arg(long)]
    report_only: bool,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    cmd: Vec<OsString>,
}

#[derive(Subcommand)]
enum TraceCommand {
    /// Verify a log written by `--log`: the hash chain, the order of records, the sealed end record.
    Verify {
        /// The log file.
        file: PathBuf,
        /// The head (hash of the end record) remembered from the run: also detects a rewritten log.
        #[arg(long)]
        head: Option<String>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(args: TraceArgs) -> Result<()> {
    match args.command {
        Some(TraceCommand::Verify { file, head, json }) => verify(&file, head.as_deref(), json),
        None => run_traced(&args),
    }
}

fn run_traced(args: &TraceArgs) -> Result<()> {
    let policy = Policy {
        network: if args.deny_network { NetworkPolicy::LoopbackOnly } else { NetworkPolicy::Any },
        files: if args.allow_paths.is_empty() {
            FilePolicy::Any
        } else {
            let cwd = std::env::current_dir().context("reading the working folder")?;
            FilePolicy::Under(args.allow_paths.iter().map(|p| kernels::audit::normalize_path(&cwd, p)).collect())
        },
        enforcement: if args.report_only { Enforcement::Report } else { Enforcement::Deny },
    };
    let config = TraceConfig { policy, log: args.log.clone() };
    let report = trace(&args.cmd, &config).context("tracing")?;
    let mut err = std::io::stderr().lock();
    if args.summary {
        let _ = write!(err, "{}", report.summary.render());
    }
    for v in report.violations.iter().take(SHOWN_VIOLATIONS) {
        let _ = writeln!(err, "sovereign trace: policy violation: {v}");
    }
    if report.violations.len() > SHOWN_VIOLATIONS {
        let _ = writeln!(err, "sovereign trace: … and {} more violations", report.violations.len() - SHOWN_VIOLATIONS);
    }
    if let (Some(path), Some(head)) = (&args.log, &report.log_head) {
        let _ = writeln!(
            err,
            "sovereign trace: log {} ({} tasks, {} calls), head {head}",
            path.display(),
            report.tasks.len(),
            report.summary.total().calls
        );
    }
    drop(err);
    let code = if report.violations.is_empty() { report.exit.shell_code() } else { POLICY_EXIT_CODE };
    if code != 0 {
        let _ = std::io::stdout().flush();
        std::process::exit(code);
    }
    Ok(())
}

fn verify(file: &Path, head: Option<&str>, as_json: bool) -> Result<()> {
    let log = verify_log(file)?;
    if let Some(expected) = head
        && !expected.eq_ignore_ascii_case(&log.head)
    {
        bail!("log {}: its head is {} but {expected} was expected (the log was rewritten)", file.display(), log.head);
    }
    if as_json {
        print_json(&json!({
            "ok": true, "records": log.records, "events": log.end.events, "head": log.head,
            "exit": log.end.exit, "violations": log.end.violations, "tasks": log.end.tasks, "argv": log.start.argv,
        }));
    } else {
        println!(
            "ok: {} records ({} calls by {} tasks), {} violation(s), exit {:?}; head {}",
            log.records, log.end.events, log.end.tasks, log.end.violations, log.end.exit, log.head
        );
    }
    Ok(())
}
