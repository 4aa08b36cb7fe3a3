//! System-call auditing (renacer's role): a ptrace(2) tracer for Linux x86_64 that follows a command's
//! whole process tree, decodes the x86_64 syscall ABI (number in `orig_rax`, arguments in `rdi rsi rdx
//! r10 r8 r9`, result in `rax`), summarises calls like `strace -c`, writes a BLAKE3 hash-chained JSON
//! Lines event log and enforces a network and file policy.
//!
//! ```no_run
//! # fn main() -> Result<(), kernels::Error> {
//! use kernels::audit::{Enforcement, FilePolicy, NetworkPolicy, Policy, TraceConfig, trace, verify_log};
//! let config = TraceConfig {
//!     policy: Policy { network: NetworkPolicy::LoopbackOnly, files: FilePolicy::Any, enforcement: Enforcement::Deny },
//!     log: Some("trace.jsonl".into()),
//! };
//! let report = trace(&["sh", "-c", "cat /etc/hostname"], &config)?;
//! print!("{}", report.summary.render());
//! assert!(report.violations.is_empty());
//! let checked = verify_log("trace.jsonl".as_ref())?; // the chain, the order, the end record
//! println!("{} records, head {}", checked.records, checked.head);
//! # Ok(()) }
//! ```
//!
//! How it works ([`trace`], `ptrace.rs`): the command is forked with `PTRACE_TRACEME` and stops itself
//! before `execve`, so its first traced call is the `execve` of the command (as under `strace`). The
//! tracer sets `PTRACE_O_TRACESYSGOOD | TRACEFORK | TRACEVFORK | TRACECLONE | TRACEEXEC | EXITKILL`
//! (every new process and thread is traced from its first instruction; if the tracer dies, the tree
//! is killed) and resumes every task with `PTRACE_SYSCALL`, so each call stops twice: at entry (the
//! arguments are read from the registers, strings and socket addresses from the tracee's memory with
//! `process_vm_readv`) and at exit (the result). A call's time is the tracer's wall clock from the
//! entry stop to the exit stop: it includes the scheduling of the tracer, so it is an upper bound.
//!
//! What is counted: like `strace -c`, a call is counted at its exit stop, so calls that never return
//! (`exit_group`, `exit`, a call interrupted by `SIGKILL`) are not counted; a call interrupted by a
//! signal and restarted is counted twice (once with `ERESTARTSYS` or a sibling as its error).
//!
//! Policy ([`Policy`]): with [`NetworkPolicy::LoopbackOnly`], `connect`, `sendto` and `sendmsg` to an
//! address other than IPv4 127.0.0.0/8, IPv6 `::1` (or `::ffff:127.x.y.z`), a Unix socket, a netlink
//! socket (the kernel) or `AF_UNSPEC` (a disconnect) is a [`Violation`]; with [`FilePolicy::Under`],
//! so is an `open`, `openat`, `openat2` or `creat` of a path (made absolute against the task's working
//! folder or the `dirfd`, lexically: symlinks are not followed) outside the listed folders. Under
//! [`Enforcement::Deny`] the offending call is not executed: the tracer replaces its number with -1 at
//! entry and makes it return `EACCES`. Under [`Enforcement::Report`] it runs and is only recorded.
//!
//! Limits: a call made through `io_uring` or by another process on the tracee's behalf is not a
//! syscall of the tree and is not seen; `sendmmsg` is counted but its addresses are not decoded; a
//! 32-bit (`int 0x80`) call from a 64-bit process is decoded with the 64-bit table.

mod decode;
mod log;
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod ptrace;
mod summary;
#[allow(dead_code)] // read only by the Linux x86_64 tracer and the name look-ups
mod tables;

use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use decode::{SockAddr, is_local, normalize_path, path_allowed};
pub use log::{GENESIS, LogCheck, LogEnd, LogStart, LogWriter, VerifiedLog, read_log, verify_log};
pub use summary::{Summary, SummaryRow};

use crate::Error;

/// The name of x86_64 system call `nr` (`None` for an unassigned number).
pub fn syscall_name(nr: u64) -> Option<&'static str> {
    usize::try_from(nr).ok().and_then(|i| tables::SYSCALL_NAMES.get(i).copied().flatten())
}

/// The x86_64 system call numbered `name` (`None` for an unknown name).
pub fn syscall_number(name: &str) -> Option<u64> {
    tables::SYSCALL_NAMES.iter().position(|n| *n == Some(name)).map(|i| i as u64)
}

/// The symbolic name of a positive errno value (`ENOENT` for 2; `None` for an unknown value).
pub fn errno_name(errno: i64) -> Option<&'static str> {
    let e = u16::try_from(errno).ok()?;
    tables::ERRNO_NAMES.binary_search_by_key(&e, |&(n, _)| n).ok().map(|i| tables::ERRNO_NAMES[i].1)
}

/// Where the traced process tree may connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum NetworkPolicy {
    /// Anywhere (nothing is checked).
    #[default]
    Any,
    /// Only loopback (127.0.0.0/8, `::1`), Unix and netlink sockets.
    LoopbackOnly,
}

/// Which files the traced process tree may open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum FilePolicy {
    /// Any file.
    #[default]
    Any,
    /// Only files under one of these folders (or equal to one of these paths), compared by whole
    /// path components after making the opened path absolute and lexically normal.
    Under(Vec<PathBuf>),
}

/// What happens to a call that breaks the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Enforcement {
    /// The call is not executed and returns `EACCES`; the violation is recorded.
    #[default]
    Deny,
    /// The call runs; the violation is only recorded.
    Report,
}

/// The policy a trace checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Policy {
    /// Where the tree may connect.
    pub network: NetworkPolicy,
    /// Which files it may open.
    pub files: FilePolicy,
    /// What happens to an offending call.
    pub enforcement: Enforcement,
}

/// How to trace a command.
#[derive(Debug, Clone, Default)]
pub struct TraceConfig {
    /// The policy checked on every call.
    pub policy: Policy,
    /// Where to write the hash-chained JSON Lines event log (none if `None`).
    pub log: Option<PathBuf>,
}

/// The decoded arguments of interest of one call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Detail {
    /// The path argument (open family, exec, stat family, …), made absolute against the task's
    /// working folder or `dirfd`, lexically normalised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The argument vector of an `execve`/`execveat` (at most 64 entries, 4 KiB each).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argv: Option<Vec<String>>,
    /// The socket address of `connect`, `bind`, `sendto` or `sendmsg`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addr: Option<SockAddr>,
    /// The address family of `socket` (`AF_INET`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
}

impl Detail {
    /// True when nothing was decoded.
    pub fn is_empty(&self) -> bool {
        self.path.is_none() && self.argv.is_none() && self.addr.is_none() && self.domain.is_none()
    }
}

/// One completed system call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The task (thread id; the process id for a single-threaded process).
    pub pid: i32,
    /// Entry time, in microseconds since the trace started.
    pub t_us: u64,
    /// Entry-to-exit wall time, in nanoseconds (as seen by the tracer).
    pub dur_ns: u64,
    /// The syscall number.
    pub nr: u64,
    /// Its name (`syscall_<nr>` when unknown).
    pub name: String,
    /// The raw result (`rax`): a negative errno on failure.
    pub ret: i64,
    /// The errno name when the call failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno: Option<String>,
    /// Decoded arguments of interest.
    #[serde(default, skip_serializing_if = "Detail::is_empty")]
    pub detail: Detail,
    /// The policy violation of this call, if any (with whether it was denied).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub violation: Option<String>,
}

impl Event {
    /// True when the call returned an error (`-4095 ≤ ret ≤ -1`, the x86_64 ABI's error range).
    pub fn failed(&self) -> bool {
        (-4095..0).contains(&self.ret)
    }
}

/// What broke the policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum ViolationKind {
    /// A connection or datagram to an address that is not loopback, Unix or netlink.
    Network {
        /// The address.
        addr: SockAddr,
    },
    /// A file opened outside the allowed folders.
    File {
        /// The absolute path.
        path: String,
    },
}

/// One policy violation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// The task that made the call.
    pub pid: i32,
    /// The call (`connect`, `openat`, …).
    pub call: String,
    /// What it did.
    #[serde(flatten)]
    pub kind: ViolationKind,
    /// Whether the call was denied (not executed) or only reported.
    pub denied: bool,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let action = if self.denied { "denied" } else { "reported" };
        match &self.kind {
            ViolationKind::Network { addr } => {
                write!(f, "pid {}: {} to {addr}: not loopback ({action})", self.pid, self.call)
            }
            ViolationKind::File { path } => {
                write!(f, "pid {}: {} of {path}: outside the allowed paths ({action})", self.pid, self.call)
            }
        }
    }
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitKind {
    /// `exit(code)`.
    Code(i32),
    /// Killed by a signal.
    Signal(i32),
}

impl ExitKind {
    /// The shell's convention: the code, or 128 + the signal number.
    pub fn shell_code(self) -> i32 {
        match self {
            ExitKind::Code(c) => c,
            ExitKind::Signal(s) => 128 + s,
        }
    }
}

/// How a traced task came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// The traced command itself.
    Root,
    /// `fork` (or `clone` without `CLONE_VM`/`CLONE_THREAD` … as the kernel reports it).
    Fork,
    /// `vfork`.
    Vfork,
    /// `clone`: usually a thread.
    Clone,
}

/// One task (process or thread) the tracer followed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    /// Its id.
    pub pid: i32,
    /// The task that created it (`None` for the root).
    pub parent: Option<i32>,
    /// How.
    pub origin: Origin,
}

/// The result of [`trace`].
#[derive(Debug, Clone)]
pub struct TraceReport {
    /// How the command (the root process) ended.
    pub exit: ExitKind,
    /// Calls, errors and time per syscall, over the whole tree.
    pub summary: Summary,
    /// Every policy violation, in order.
    pub violations: Vec<Violation>,
    /// Every task followed, in creation order (the root first).
    pub tasks: Vec<Task>,
    /// The BLAKE3 (hex) of the log's last record, when a log was written: keep it to detect a later
    /// rewrite of the whole log.
    pub log_head: Option<String>,
    /// Wall time of the trace.
    pub elapsed: Duration,
}

/// The exit code `sovereign trace` uses when the policy was broken.
pub const POLICY_EXIT_CODE: i32 = 3;

/// Runs `argv` (a program, found on `PATH` when it has no `/`, and its arguments) under the tracer,
/// with the caller's environment, working folder and standard streams, and waits for the whole
/// process tree to end.
///
/// Must be called from the thread that will also reap nothing else: the tracer waits with
/// `__WNOTHREAD`, so children of other threads are left alone.
pub fn trace<S: AsRef<OsStr>>(argv: &[S], config: &TraceConfig) -> Result<TraceReport, Error> {
    let argv: Vec<&OsStr> = argv.iter().map(AsRef::as_ref).collect();
    if argv.is_empty() {
        return Err(Error::InvalidParameter("trace: an empty command".into()));
    }
    trace_impl(&argv, config)
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
fn trace_impl(argv: &[&OsStr], config: &TraceConfig) -> Result<TraceReport, Error> {
    ptrace::run(argv, config)
}

#[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
fn trace_impl(_argv: &[&OsStr], _config: &TraceConfig) -> Result<TraceReport, Error> {
    Err(Error::AuditUnsupported { platform: format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH) })
}

// ANCHOR: policy
/// The policy's verdict on one call at its entry (`None` when it is allowed), from its decoded detail.
pub fn check_policy(policy: &Policy, pid: i32, name: &str, detail: &Detail) -> Option<Violation> {
    let denied = policy.enforcement == Enforcement::Deny;
    if policy.network == NetworkPolicy::LoopbackOnly
        && matches!(name, "connect" | "sendto" | "sendmsg")
        && let Some(addr) = &detail.addr
        && !is_local(addr)
    {
        return Some(Violation {
            pid,
            call: name.to_owned(),
            kind: ViolationKind::Network { addr: addr.clone() },
            denied,
        });
    }
    if let FilePolicy::Under(prefixes) = &policy.files
        && matches!(name, "open" | "openat" | "openat2" | "creat")
        && let Some(path) = &detail.path
        && !path_allowed(Path::new(path), prefixes)
    {
        return Some(Violation {
            pid,
            call: name.to_owned(),
            kind: ViolationKind::File { path: path.clone() },
            denied,
        });
    }
    None
}
// ANCHOR_END: policy

/// Collects completed calls into the summary, the violations and the log (shared by the tracer and
/// by tests that replay events).
#[cfg_attr(not(all(target_os = "linux", target_arch = "x86_64")), allow(dead_code))]
pub(crate) struct Recorder {
    pub summary: Summary,
    pub violations: Vec<Violation>,
    pub tasks: Vec<Task>,
    pub log: Option<LogWriter>,
}

#[cfg_attr(not(all(target_os = "linux", target_arch = "x86_64")), allow(dead_code))]
impl Recorder {
    pub(crate) fn new(argv: &[&OsStr], config: &TraceConfig) -> Result<Recorder, Error> {
        let log = match &config.log {
            Some(path) => Some(LogWriter::create(
                path,
                &LogStart {
                    argv: argv.iter().map(|a| a.to_string_lossy().into_owned()).collect(),
                    policy: config.policy.clone(),
                    unix_ms: std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_millis() as u64)
                        .unwrap_or(0),
                },
            )?),
            None => None,
        };
        Ok(Recorder { summary: Summary::default(), violations: Vec::new(), tasks: Vec::new(), log })
    }

    pub(crate) fn call(&mut self, event: &Event) -> Result<(), Error> {
        self.summary.add(&event.name, event.failed(), event.dur_ns);
        if let Some(log) = &mut self.log {
            log.event(event)?;
        }
        Ok(())
    }

    pub(crate) fn finish(self, exit: ExitKind, elapsed: Duration) -> Result<TraceReport, Error> {
        let log_head = match self.log {
            Some(log) => Some(log.finish(&LogEnd {
                events: 0, // filled in by the writer
                exit,
                violations: self.violations.len() as u64,
                tasks: self.tasks.len() as u64,
                elapsed_us: elapsed.as_micros() as u64,
            })?),
            None => None,
        };
        Ok(TraceReport {
            exit,
            summary: self.summary,
            violations: self.violations,
            tasks: self.tasks,
            log_head,
            elapsed,
        })
    }
}
