//! `kernels::audit` (ptrace(2) on Linux x86_64) against independent references: syscall counts
//! against `strace -f -c` (Debian's strace) on deterministic programs, the hash chain against a
//! tamper suite (an edited byte, a deleted line, swapped lines, a cut end), the network policy
//! against a Python program that connects to a loopback listener and to TEST-NET-1 (192.0.2.1,
//! RFC 5737: never routed), the file policy against `cat`, and forks, vforks, threads and execs
//! followed through `sh` and Python. Every traced program is short; the CLI runs have timeouts.
//!
//! Tolerance for the cross-check with strace: on `/bin/true` the per-syscall counts must be equal;
//! on `sh -c 'cat /etc/hostname > /dev/null'` (a vfork, two execs, no signal races) each syscall
//! may differ by at most 1 and the total by at most 2 (it is 0 on the machines we ran). Programs
//! that race a signal against `wait4` (a background job) are not compared: their counts vary
//! under strace itself from run to run (`wait4` 1–2, `rt_sigreturn` 1–2).

#![cfg(all(target_os = "linux", target_arch = "x86_64"))]

use crate::tmp::Tmp;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use kernels::Error;
use kernels::audit::{
    Enforcement, ExitKind, FilePolicy, LogCheck, NetworkPolicy, Origin, Policy, SockAddr, Summary, TraceConfig,
    ViolationKind, errno_name, is_local, normalize_path, path_allowed, read_log, syscall_name, syscall_number, trace,
    verify_log,
};

// ------------------------------------------------------------------ helpers

/// Debian's Python (the pyenv shim on PATH would add a bash script to every trace).
fn python() -> String {
    if Path::new("/usr/bin/python3").exists() { "/usr/bin/python3".into() } else { "python3".into() }
}

/// `strace -f -c` on `argv`: calls per syscall.
fn strace_counts(argv: &[&str], tmp: &Tmp) -> BTreeMap<String, u64> {
    let out = tmp.join("strace.txt");
    let status = Command::new("strace")
        .args(["-f", "-c", "-o"])
        .arg(&out)
        .arg("--")
        .args(argv)
        .status()
        .expect("strace (Debian package strace; `cargo xtask ci` installs it)");
    assert!(status.success(), "strace {argv:?}: {status}");
    parse_strace_c(&fs::read_to_string(&out).expect("strace output"))
}

/// The rows of a `strace -c` table: `% time, seconds, usecs/call, calls, [errors], syscall`.
fn parse_strace_c(text: &str) -> BTreeMap<String, u64> {
    let mut rows = BTreeMap::new();
    let mut in_table = false;
    for line in text.lines() {
        if line.starts_with("------") {
            if in_table {
                break;
            }
            in_table = true;
            continue;
        }
        if in_table {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let calls: u64 = cols[3].parse().expect("calls column");
            rows.insert(cols[cols.len() - 1].to_owned(), calls);
        }
    }
    rows
}

/// The per-syscall differences `ours − strace` that are not zero.
fn differences(ours: &Summary, theirs: &BTreeMap<String, u64>) -> BTreeMap<String, i64> {
    let mut names: Vec<&String> = ours.rows.keys().chain(theirs.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .map(|n| (n.clone(), ours.calls(n) as i64 - theirs.get(n).copied().unwrap_or(0) as i64))
        .filter(|(_, d)| *d != 0)
        .collect()
}

fn logged(tmp: &Tmp) -> TraceConfig {
    TraceConfig { policy: Policy::default(), log: Some(tmp.join("trace.jsonl")) }
}

const NETWORK_SCRIPT: &str = r#"
import socket
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(1)
c = socket.socket(); c.connect(srv.getsockname()); c.close()
s = socket.socket(); s.setblocking(False)
try:
    s.connect(("192.0.2.1", 9))
except OSError as e:
    print("external connect:", e.errno)
u = socket.socket(socket.AF_UNIX)
try:
    u.connect("/nonexistent-audit-socket")
except OSError:
    pass
"#;

// ------------------------------------------------------------------ tables and decoding

#[test]
fn syscall_and_errno_tables_match_the_abi() {
    assert_eq!(syscall_name(0), Some("read"));
    assert_eq!(syscall_name(42), Some("connect"));
    assert_eq!(syscall_name(59), Some("execve"));
    assert_eq!(syscall_name(257), Some("openat"));
    assert_eq!(syscall_name(231), Some("exit_group"));
    assert_eq!(syscall_name(400), None);
    assert_eq!(syscall_name(u64::MAX), None);
    assert_eq!(syscall_number("clone3"), Some(435));
    assert_eq!(errno_name(2), Some("ENOENT"));
    assert_eq!(errno_name(11), Some("EAGAIN"));
    assert_eq!(errno_name(111), Some("ECONNREFUSED"));
    assert_eq!(errno_name(512), Some("ERESTARTSYS"));
    assert_eq!(errno_name(9999), None);
}

#[test]
fn socket_addresses_decode_and_loopback_is_told_apart() {
    // struct sockaddr_in { sa_family_t = 2; in_port_t (BE) = 8080; in_addr = 127.0.0.1 }
    let v4 = SockAddr::decode(&[2, 0, 0x1f, 0x90, 127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(v4, SockAddr::Inet { addr: "127.0.0.1:8080".parse().unwrap() });
    assert!(is_local(&v4));
    let ext = SockAddr::decode(&[2, 0, 0, 9, 192, 0, 2, 1]);
    assert_eq!(ext.to_string(), "192.0.2.1:9 (AF_INET)");
    assert!(!is_local(&ext));
    assert!(!is_local(&SockAddr::decode(&[2, 0, 0, 80, 0, 0, 0, 0]))); // 0.0.0.0 is not loopback
    let mut v6 = vec![10, 0, 0, 80, 0, 0, 0, 0];
    v6.extend_from_slice(&[0; 15]);
    v6.push(1); // ::1
    assert!(is_local(&SockAddr::decode(&v6)));
    let mut mapped = vec![10, 0, 0, 80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 8, 8, 8, 8];
    assert!(!is_local(&SockAddr::decode(&mapped)));
    mapped[20..24].copy_from_slice(&[127, 0, 0, 1]);
    assert!(is_local(&SockAddr::decode(&mapped)));
    let unix = SockAddr::decode(b"\x01\x00/run/x.sock\x00junk");
    assert_eq!(unix, SockAddr::Unix { path: "/run/x.sock".into() });
    assert_eq!(SockAddr::decode(b"\x01\x00\x00abstract"), SockAddr::Unix { path: "@abstract".into() });
    assert!(is_local(&unix));
    assert!(!is_local(&SockAddr::decode(&[17, 0, 1, 2]))); // AF_PACKET
}

#[test]
fn paths_are_made_absolute_lexically_and_prefixes_match_whole_components() {
    assert_eq!(normalize_path(Path::new("/etc"), Path::new("hostname")), PathBuf::from("/etc/hostname"));
    assert_eq!(normalize_path(Path::new("/a/b"), Path::new("../../../c/./d")), PathBuf::from("/c/d"));
    assert_eq!(normalize_path(Path::new("/x"), Path::new("/usr//lib/../bin")), PathBuf::from("/usr/bin"));
    let allowed = [PathBuf::from("/usr"), PathBuf::from("/etc/ld.so.cache")];
    assert!(path_allowed(Path::new("/usr/lib/libc.so"), &allowed));
    assert!(path_allowed(Path::new("/etc/ld.so.cache"), &allowed));
    assert!(!path_allowed(Path::new("/usrx/lib"), &allowed));
    assert!(!path_allowed(Path::new("/etc/hostname"), &allowed));
    assert!(!path_allowed(Path::new("relative/path"), &allowed));
}

// ------------------------------------------------------------------ counts against strace

#[test]
fn true_has_the_same_syscall_counts_as_strace() {
    let tmp = Tmp::new("true");
    let report = trace(&["true"], &TraceConfig::default()).expect("trace true");
    assert_eq!(report.exit, ExitKind::Code(0));
    assert_eq!(report.summary.calls("execve"), 1, "{}", report.summary.render());
    let theirs = strace_counts(&["true"], &tmp);
    let diff = differences(&report.summary, &theirs);
    assert!(diff.is_empty(), "ours − strace: {diff:?}\nours:\n{}", report.summary.render());
}

#[test]
fn a_shell_pipeline_has_strace_counts_within_one_per_syscall() {
    let tmp = Tmp::new("sh");
    let argv = ["sh", "-c", "cat /etc/hostname > /dev/null"];
    let report = trace(&argv, &TraceConfig::default()).expect("trace sh");
    assert_eq!(report.exit, ExitKind::Code(0));
    let theirs = strace_counts(&argv, &tmp);
    let diff = differences(&report.summary, &theirs);
    let total: i64 = diff.values().map(|d| d.abs()).sum();
    assert!(diff.values().all(|d| d.abs() <= 1) && total <= 2, "ours − strace: {diff:?}\n{}", report.summary.render());
    assert_eq!(report.summary.calls("execve"), 2);
    assert!(report.summary.total().errors > 0, "the loader's failed probes are counted as errors");
    assert!(report.tasks.len() >= 2 && report.tasks.iter().any(|t| t.origin == Origin::Vfork), "{:?}", report.tasks);
    let table = report.summary.render();
    assert!(table.starts_with("% time     seconds  usecs/call     calls    errors syscall\n"), "{table}");
    assert!(table.lines().last().unwrap_or("").ends_with(" total"), "{table}");
}

// ------------------------------------------------------------------ following the tree

#[test]
fn forks_execs_and_exit_statuses_are_followed() {
    let tmp = Tmp::new("fork");
    let config = logged(&tmp);
    let report = trace(&["sh", "-c", "/bin/true & /bin/true; wait; exit 7"], &config).expect("trace");
    assert_eq!(report.exit, ExitKind::Code(7));
    let root = report.tasks[0].pid;
    assert_eq!(report.tasks[0].origin, Origin::Root);
    assert!(report.tasks.len() >= 3, "{:?}", report.tasks);
    assert!(report.tasks[1..].iter().all(|t| t.parent.is_some()));
    let (_, events) = read_log(config.log.as_ref().unwrap()).expect("log verifies");
    let child_execs: Vec<_> = events
        .iter()
        .filter(|e| e.name == "execve" && e.ret == 0 && e.pid != root)
        .map(|e| (e.pid, e.detail.path.clone().unwrap_or_default(), e.detail.argv.clone().unwrap_or_default()))
        .collect();
    assert_eq!(child_execs.len(), 2, "{child_execs:?}");
    assert!(child_execs.iter().all(|(_, path, argv)| path == "/bin/true" && argv == &["/bin/true"]), "{child_execs:?}");
    assert_ne!(child_execs[0].0, child_execs[1].0, "two different children");
    let killed = trace(&["sh", "-c", "kill -9 $$"], &TraceConfig::default()).expect("trace");
    assert_eq!(killed.exit, ExitKind::Signal(9));
    assert_eq!(killed.exit.shell_code(), 137);
}

#[test]
fn threads_are_followed_and_relative_paths_resolved() {
    let script = "import threading\nt = threading.Thread(target=lambda: open('hostname').read())\nt.start(); t.join()";
    let tmp = Tmp::new("thread");
    let config = logged(&tmp);
    let cmd = format!("cd /etc && exec {} -c \"{script}\"", python());
    let report = trace(&["sh", "-c", &cmd], &config).expect("trace");
    assert_eq!(report.exit, ExitKind::Code(0));
    assert!(report.tasks.iter().any(|t| t.origin == Origin::Clone), "{:?}", report.tasks);
    let (_, events) = read_log(config.log.as_ref().unwrap()).expect("log verifies");
    let root = report.tasks[0].pid;
    let open = events
        .iter()
        .find(|e| e.name == "openat" && e.detail.path.as_deref() == Some("/etc/hostname"))
        .expect("the thread's open of 'hostname' relative to /etc");
    assert_ne!(open.pid, root, "made by the thread");
    assert!(open.ret >= 0);
}

// ------------------------------------------------------------------ policy

#[test]
fn deny_network_names_the_external_connect_and_denies_it() {
    let tmp = Tmp::new("net");
    let config = TraceConfig {
        policy: Policy { network: NetworkPolicy::LoopbackOnly, ..Policy::default() },
        log: Some(tmp.join("trace.jsonl")),
    };
    let report = trace(&[python().as_str(), "-c", NETWORK_SCRIPT], &config).expect("trace");
    assert_eq!(report.exit, ExitKind::Code(0));
    assert_eq!(report.violations.len(), 1, "{:?}", report.violations);
    let v = &report.violations[0];
    assert_eq!(v.call, "connect");
    assert_eq!(v.kind, ViolationKind::Network { addr: SockAddr::Inet { addr: "192.0.2.1:9".parse().unwrap() } });
    assert!(v.denied);
    assert!(v.to_string().contains("connect to 192.0.2.1:9"), "{v}");
    let (log, events) = read_log(config.log.as_ref().unwrap()).expect("log verifies");
    assert_eq!(log.end.violations, 1);
    let connects: Vec<_> = events.iter().filter(|e| e.name == "connect").collect();
    assert_eq!(connects.len(), 3, "{connects:?}");
    assert!(matches!(&connects[0].detail.addr, Some(SockAddr::Inet { addr }) if addr.ip().is_loopback()));
    assert_eq!(connects[0].ret, 0);
    assert_eq!(connects[1].errno.as_deref(), Some("EACCES"), "denied: {:?}", connects[1]);
    assert!(connects[1].violation.is_some());
    assert!(matches!(&connects[2].detail.addr, Some(SockAddr::Unix { path }) if path == "/nonexistent-audit-socket"));

    // Report only: the call runs (a non-blocking connect: EINPROGRESS, or ENETUNREACH without a route).
    let config = TraceConfig {
        policy: Policy { network: NetworkPolicy::LoopbackOnly, enforcement: Enforcement::Report, ..Policy::default() },
        log: None,
    };
    let report = trace(&[python().as_str(), "-c", NETWORK_SCRIPT], &config).expect("trace");
    assert_eq!(report.violations.len(), 1);
    assert!(!report.violations[0].denied);
}

#[test]
fn deny_network_catches_datagrams_sent_with_an_address() {
    let script = r#"
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.sendto(b"x", ("127.0.0.1", 9))
for send in (lambda: s.sendto(b"x", ("192.0.2.1", 53)), lambda: s.sendmsg([b"x"], [], 0, ("192.0.2.2", 53))):
    try:
        send()
    except OSError:
        pass
"#;
    let config =
        TraceConfig { policy: Policy { network: NetworkPolicy::LoopbackOnly, ..Policy::default() }, log: None };
    let report = trace(&[python().as_str(), "-c", script], &config).expect("trace");
    assert_eq!(report.exit, ExitKind::Code(0));
    let seen: Vec<(String, String)> = report
        .violations
        .iter()
        .map(|v| match &v.kind {
            ViolationKind::Network { addr } => (v.call.clone(), addr.to_string()),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("sendto".to_owned(), "192.0.2.1:53 (AF_INET)".to_owned()),
            ("sendmsg".into(), "192.0.2.2:53 (AF_INET)".into())
        ]
    );
}

#[test]
fn allow_path_names_the_open_outside_the_prefixes() {
    let allowed = ["/usr", "/lib", "/lib64", "/etc/ld.so.cache", "/dev/null"].map(PathBuf::from).to_vec();
    let config = TraceConfig { policy: Policy { files: FilePolicy::Under(allowed), ..Policy::default() }, log: None };
    let report = trace(&["sh", "-c", "cat /etc/hostname > /dev/null"], &config).expect("trace");
    let paths: Vec<&str> = report
        .violations
        .iter()
        .map(|v| match &v.kind {
            ViolationKind::File { path } => path.as_str(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert!(paths.contains(&"/etc/hostname"), "{paths:?}");
    assert!(
        !paths.iter().any(|p| p.starts_with("/usr/") || *p == "/etc/ld.so.cache" || *p == "/dev/null"),
        "{paths:?}"
    );
    assert!(report.violations.iter().all(|v| v.denied && v.call.starts_with("open")));
    assert_eq!(report.exit, ExitKind::Code(1), "cat could not open /etc/hostname (EACCES)");
}

// ------------------------------------------------------------------ the hash chain

/// A verified log of `true` and its lines.
fn true_log(tmp: &Tmp) -> (PathBuf, Vec<String>) {
    let config = logged(tmp);
    let path = config.log.clone().unwrap();
    let report = trace(&["true"], &config).expect("trace");
    let verified = verify_log(&path).expect("a fresh log verifies");
    assert_eq!(Some(&verified.head), report.log_head.as_ref());
    assert_eq!(verified.end.events, report.summary.total().calls);
    assert_eq!(verified.records, verified.end.events + 2);
    let lines: Vec<String> = fs::read_to_string(&path).unwrap().lines().map(str::to_owned).collect();
    assert!(lines.len() > 10);
    (path, lines)
}

fn write_lines(path: &Path, lines: &[String]) {
    fs::write(path, lines.iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();
}

fn log_error(path: &Path) -> (u64, LogCheck) {
    match verify_log(path) {
        Err(Error::AuditLog { line, check, .. }) => (line, check),
        other => panic!("expected a log error, got {other:?}"),
    }
}

#[test]
fn an_edited_byte_is_detected_at_the_next_line() {
    let tmp = Tmp::new("edit");
    let (path, mut lines) = true_log(&tmp);
    // Line 3 (an event): one letter of its syscall name changes; it is still valid JSON.
    let at = lines[2].find("\"name\":\"").unwrap() + 8;
    let mut bytes = lines[2].clone().into_bytes();
    bytes[at] = if bytes[at] == b'x' { b'y' } else { b'x' };
    lines[2] = String::from_utf8(bytes).unwrap();
    write_lines(&path, &lines);
    let (line, check) = log_error(&path);
    assert_eq!(line, 4, "{check}");
    assert!(matches!(check, LogCheck::PrevHash { .. }), "{check}");
}

#[test]
fn a_deleted_line_is_detected() {
    let tmp = Tmp::new("delete");
    let (path, mut lines) = true_log(&tmp);
    lines.remove(4);
    write_lines(&path, &lines);
    let (line, check) = log_error(&path);
    assert_eq!(line, 5);
    assert_eq!(check, LogCheck::Sequence { expected: 4, found: 5 });
}

#[test]
fn swapped_lines_are_detected() {
    let tmp = Tmp::new("swap");
    let (path, mut lines) = true_log(&tmp);
    lines.swap(3, 6);
    write_lines(&path, &lines);
    let (line, check) = log_error(&path);
    assert_eq!(line, 4);
    assert_eq!(check, LogCheck::Sequence { expected: 3, found: 6 });
}

#[test]
fn a_truncated_log_is_detected() {
    let tmp = Tmp::new("truncate");
    let (path, mut lines) = true_log(&tmp);
    let full = lines.clone();
    lines.pop(); // the end record
    write_lines(&path, &lines);
    let (line, check) = log_error(&path);
    assert_eq!(check, LogCheck::Truncated { lines: lines.len() as u64 });
    assert_eq!(line, lines.len() as u64 + 1);
    // Cut in the middle of the end record.
    let text = full.iter().map(|l| format!("{l}\n")).collect::<String>();
    fs::write(&path, &text[..text.len() - 30]).unwrap();
    let (line, check) = log_error(&path);
    assert_eq!(line, full.len() as u64, "{check}");
    // An edited end record (the violation count) breaks its seal.
    let last = full.last().unwrap().replace("\"violations\":0", "\"violations\":1");
    let mut edited = full.clone();
    *edited.last_mut().unwrap() = last;
    write_lines(&path, &edited);
    let (line, check) = log_error(&path);
    assert_eq!(line, full.len() as u64);
    assert!(matches!(check, LogCheck::Seal { .. }), "{check}");
    // A record appended after the end.
    let mut appended = full.clone();
    appended.push(full[2].clone());
    write_lines(&path, &appended);
    let (line, check) = log_error(&path);
    assert_eq!((line, check), (full.len() as u64 + 1, LogCheck::AfterEnd));
}

// ------------------------------------------------------------------ the CLI

#[cfg(feature = "cli")]
mod cli {
    use std::time::Duration;

    use assert_cmd::Command;

    use super::*;

    fn sovereign(dir: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::cargo_bin("sovereign").expect("the sovereign binary (feature cli)");
        cmd.current_dir(dir).args(args).timeout(Duration::from_secs(120));
        cmd
    }

    #[test]
    fn sovereign_traced_doing_a_local_task_makes_no_network_call() {
        // The model servers (`serve --demo`, `serve-model`) answering requests are traced the same
        // way in `serve_audit.rs`; this is the local, offline case.
        let tmp = Tmp::new("self");
        let bin = assert_cmd::cargo::cargo_bin("sovereign");
        let bin = bin.to_str().unwrap();
        let out = sovereign(&tmp.0, &["trace", "--deny-network", "--summary", "--log", "trace.jsonl", "--", bin])
            .args(["registry", "keygen", "--dir", "keys", "--name", "k"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert!(!stderr.contains("policy violation"), "{stderr}");
        assert!(stderr.contains(" total") && stderr.contains("head "), "{stderr}");
        assert!(tmp.join("keys/k.key").is_file());
        let (log, events) = read_log(&tmp.join("trace.jsonl")).expect("verifies");
        assert_eq!(log.end.violations, 0);
        let external: Vec<_> = events.iter().filter(|e| e.detail.addr.as_ref().is_some_and(|a| !is_local(a))).collect();
        assert!(external.is_empty(), "{external:?}");
        let ok = sovereign(&tmp.0, &["trace", "verify", "trace.jsonl", "--head", &log.head]).output().unwrap();
        assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
        assert!(String::from_utf8_lossy(&ok.stdout).starts_with("ok: "));
    }

    #[test]
    fn deny_network_exits_3_naming_the_call_and_verify_names_the_bad_line() {
        let tmp = Tmp::new("cli-net");
        let py = python();
        let out = sovereign(&tmp.0, &["trace", "--deny-network", "--log", "t.jsonl", "--", &py, "-c", NETWORK_SCRIPT])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{stderr}");
        assert!(stderr.contains("policy violation") && stderr.contains("connect to 192.0.2.1:9"), "{stderr}");
        let mut lines: Vec<String> =
            fs::read_to_string(tmp.join("t.jsonl")).unwrap().lines().map(str::to_owned).collect();
        lines.swap(1, 2);
        write_lines(&tmp.join("t.jsonl"), &lines);
        let bad = sovereign(&tmp.0, &["trace", "verify", "t.jsonl"]).output().unwrap();
        assert_eq!(bad.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&bad.stderr);
        assert!(stderr.contains("line 2") && stderr.contains("seq"), "{stderr}");
        // The command's own status passes through.
        let st = sovereign(&tmp.0, &["trace", "--", "sh", "-c", "exit 5"]).output().unwrap();
        assert_eq!(st.status.code(), Some(5));
    }
}
