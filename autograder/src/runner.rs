//! Runs one graded test in its own process, under a timeout and a memory limit.
//!
//! A test passes only when its process exits with status 0 *and* has written a
//! result file carrying the nonce the grader sent on its stdin. The harness
//! writes that file after the test function returns, so a learner's
//! `process::exit(0)`, abort, stack overflow, runaway allocation or loop, or a
//! line printed to look like a pass, never earns points: the grader does not
//! read the test's output to decide anything.
//!
//! Threat model, stated honestly: this stops accidents and casual cheating.
//! Learner code runs in the same process as the harness, so deliberately
//! malicious code could read the nonce from memory; run untrusted submissions
//! in a container (Gradescope does) for stronger isolation.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;

/// How a test ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Status {
    /// Returned normally and proved it with the nonce.
    Passed,
    /// Panicked: an assertion failed or the code is still a `todo!()`.
    Failed { message: String },
    /// Not implemented yet (`todo!()` reached).
    NotImplemented { task: String },
    /// Killed after its time limit.
    TimedOut { seconds: f64 },
    /// Ran out of its memory limit.
    OutOfMemory { limit_mb: u64 },
    /// Overflowed its stack (deep or infinite recursion).
    StackOverflow,
    /// Exited before the test finished, e.g. by calling `std::process::exit`.
    ExitedEarly { code: Option<i32> },
    /// Killed by a signal (abort, segfault).
    Crashed { signal: i32 },
}

impl Status {
    /// One line in plain words for the learner.
    pub fn describe(&self) -> String {
        match self {
            Status::Passed => "passed".into(),
            Status::Failed { message } => format!("failed: {message}"),
            Status::NotImplemented { task } => format!("not implemented yet ({task})"),
            Status::TimedOut { seconds } => {
                format!("timed out after {seconds:.0} s (an infinite loop, or far too slow)")
            }
            Status::OutOfMemory { limit_mb } => format!("ran out of memory (limit {limit_mb} MiB)"),
            Status::StackOverflow => "overflowed its stack (runaway recursion)".into(),
            Status::ExitedEarly { code } => match code {
                Some(c) => {
                    format!("the process exited (status {c}) before the test finished: is `std::process::exit` called?")
                }
                None => "the process exited before the test finished".into(),
            },
            Status::Crashed { signal } => format!("crashed ({})", signal_name(*signal)),
        }
    }

    /// Whether the test passed.
    pub fn passed(&self) -> bool {
        matches!(self, Status::Passed)
    }
}

/// What one run of one test produced.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: Status,
    /// Figures the test reported (only trusted from a passing run).
    pub metrics: BTreeMap<String, f64>,
    /// The test's stdout and stderr, truncated.
    pub output: String,
    pub seconds: f64,
}

/// Limits of one test's process.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub timeout: Duration,
    pub memory_mb: u64,
}

const OUTPUT_CAP: u64 = 16 * 1024;

/// Runs `harness run <name>` in a fresh process group under `limits`, with `env` added to its environment.
pub fn run_test(
    harness: &Path,
    name: &str,
    limits: Limits,
    env: &[(String, String)],
    scratch: &Path,
) -> Result<Outcome> {
    let dir = tempfile::Builder::new().prefix("test-").tempdir_in(scratch)?;
    let result_path = dir.path().join("result.json");
    let stdout_path = dir.path().join("stdout");
    let stderr_path = dir.path().join("stderr");
    let nonce = nonce()?;

    let mut cmd = Command::new(harness);
    cmd.arg("run")
        .arg(name)
        .current_dir(dir.path())
        .env("GRADER_RESULT", &result_path)
        .env("RUST_BACKTRACE", "0")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(std::fs::File::create(&stdout_path)?)
        .stderr(std::fs::File::create(&stderr_path)?);
    let memory = limits.memory_mb.saturating_mul(1024 * 1024);
    // SAFETY: only async-signal-safe libc calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            libc::setpgid(0, 0);
            let mem = libc::rlimit { rlim_cur: memory as libc::rlim_t, rlim_max: memory as libc::rlim_t };
            libc::setrlimit(libc::RLIMIT_AS, &mem);
            let none = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
            libc::setrlimit(libc::RLIMIT_CORE, &none);
            let file = libc::rlimit { rlim_cur: 512 << 20, rlim_max: 512 << 20 };
            libc::setrlimit(libc::RLIMIT_FSIZE, &file);
            Ok(())
        });
    }
    let start = Instant::now();
    let mut child = cmd.spawn().with_context(|| format!("starting {}", harness.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A test that exits at once closes the pipe: that is its outcome, not ours.
        let _ = writeln!(stdin, "{nonce}");
    }
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if start.elapsed() >= limits.timeout {
            timed_out = true;
            // SAFETY: kill(2) on the process group we created for the child.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            break child.wait()?;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let seconds = start.elapsed().as_secs_f64();
    // Reap anything the test left behind in its group.
    // SAFETY: as above.
    unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };

    let stdout = read_capped(&stdout_path);
    let stderr = read_capped(&stderr_path);
    let mut output = String::new();
    if !stdout.trim().is_empty() {
        output.push_str(&stdout);
    }
    if !stderr.trim().is_empty() {
        if !output.is_empty() && !output.ends_with('\n') {
            output.push('\n');
        }
        output.push_str(&stderr);
    }

    let record =
        std::fs::read_to_string(&result_path).ok().and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok());
    let proven = record.as_ref().and_then(|r| r.get("nonce")).and_then(|n| n.as_str()) == Some(nonce.as_str());
    let (status, metrics) = if timed_out {
        (Status::TimedOut { seconds: limits.timeout.as_secs_f64() }, BTreeMap::new())
    } else if status.success() && proven {
        let metrics = record
            .as_ref()
            .and_then(|r| r.get("metrics"))
            .and_then(|m| m.as_object())
            .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_f64()?))).collect())
            .unwrap_or_default();
        (Status::Passed, metrics)
    } else {
        (classify(status, &stderr, limits.memory_mb), BTreeMap::new())
    };
    Ok(Outcome { status, metrics, output, seconds })
}

/// Why a process that did not prove a pass ended, read from its exit and stderr.
fn classify(status: std::process::ExitStatus, stderr: &str, memory_mb: u64) -> Status {
    use std::os::unix::process::ExitStatusExt;
    if stderr.contains("has overflowed its stack") {
        return Status::StackOverflow;
    }
    if stderr.contains("memory allocation of") || (stderr.contains("capacity overflow") && stderr.contains("alloc")) {
        return Status::OutOfMemory { limit_mb: memory_mb };
    }
    if let Some(message) = panic_message(stderr) {
        if let Some(task) = message.strip_prefix("not yet implemented: ") {
            return Status::NotImplemented { task: task.trim().to_string() };
        }
        if message == "not yet implemented" {
            return Status::NotImplemented { task: "todo!()".into() };
        }
        return Status::Failed { message };
    }
    match (status.code(), status.signal()) {
        (_, Some(signal)) => Status::Crashed { signal },
        (code, None) => Status::ExitedEarly { code },
    }
}

/// The message of the last panic in `stderr` (Rust's default hook format).
pub fn panic_message(stderr: &str) -> Option<String> {
    let start = stderr.rfind("panicked at ")?;
    let rest = &stderr[start..];
    // "panicked at src/x.rs:1:2:\nmessage\nnote: run with `RUST_BACKTRACE=1`..."
    let after_location = rest.split_once('\n').map(|(_, m)| m).unwrap_or("");
    let message: Vec<&str> = after_location.lines().take_while(|l| !l.starts_with("note: ")).collect();
    let location = rest.lines().next().unwrap_or("").trim_start_matches("panicked at ").trim_end_matches(':');
    let message = message.join("\n").trim().to_string();
    Some(if message.is_empty() { format!("panicked at {location}") } else { message })
}

fn read_capped(path: &Path) -> String {
    let mut buf = Vec::new();
    if let Ok(file) = std::fs::File::open(path) {
        let _ = file.take(OUTPUT_CAP).read_to_end(&mut buf);
    }
    let mut text = String::from_utf8_lossy(&buf).into_owned();
    if buf.len() as u64 == OUTPUT_CAP {
        text.push_str("\n… (output truncated)");
    }
    text
}

fn nonce() -> Result<String> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn signal_name(signal: i32) -> String {
    let name = match signal {
        libc::SIGABRT => "SIGABRT: aborted",
        libc::SIGSEGV => "SIGSEGV: invalid memory access",
        libc::SIGBUS => "SIGBUS",
        libc::SIGILL => "SIGILL: illegal instruction",
        libc::SIGFPE => "SIGFPE: arithmetic fault",
        libc::SIGKILL => "SIGKILL",
        libc::SIGXFSZ => "SIGXFSZ: wrote too much to disk",
        _ => return format!("signal {signal}"),
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(stderr: &str, expected: Option<&str>) {
        assert_eq!(panic_message(stderr).as_deref(), expected);
    }

    #[test]
    fn panic_messages_are_read_from_the_default_hook() {
        check(
            "\nthread 'main' panicked at src/hnsw.rs:10:9:\nnot yet implemented: c4w3.hnsw-insert\nnote: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n",
            Some("not yet implemented: c4w3.hnsw-insert"),
        );
        check(
            "thread 'main' panicked at a.rs:1:1:\nrecall 0.5 < 0.95\nsecond line\n",
            Some("recall 0.5 < 0.95\nsecond line"),
        );
        check("no panic here", None);
    }
}
