//! The cost of tracing (ptrace(2): two stops and four context switches per system call) measured on
//! syscall-heavy workloads: untraced, under `kernels::audit::trace` (what `sovereign trace` runs),
//! the same with the hash-chained log, and under `strace -f -c -o /dev/null`, as wall times and ratios.
//! The Rust side of `cargo xtask bench audit`; prints one JSON object on stdout.
//!
//! ```text
//! cargo run --release -p kernels --no-default-features --features audit --example audit_overhead -- [N] [REPS]
//! ```
//!
//! Workloads (N scales them): `getppid` (N calls of the cheapest syscall: the worst case for a
//! tracer), `read-file` (N/4 × open, fstat, read, read, close of /etc/hostname) and `fork-exec` (a
//! shell running `/bin/true` N/1000 times: process creation, exec and the dynamic loader). The
//! workloads run in a child process (this example re-run with `--work`), timed from spawn to exit;
//! each figure is the best of REPS runs.

use std::process::Command;
use std::time::{Duration, Instant};

use kernels::audit::{TraceConfig, trace};
use serde_json::json;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--work") {
        let n: u64 = args[3].parse().expect("N");
        work(&args[2], n);
        return;
    }
    let n: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(200_000);
    let reps: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(3);
    let exe = std::env::current_exe().expect("current_exe").to_string_lossy().into_owned();
    let log = std::env::temp_dir().join(format!("audit-overhead-{}.jsonl", std::process::id()));
    let loop_n = (n / 1000).max(5);
    let shell_loop = format!("i=0; while [ $i -lt {loop_n} ]; do /bin/true; i=$((i+1)); done");
    let workloads: Vec<(&str, Vec<String>)> = vec![
        ("getppid", vec![exe.clone(), "--work".into(), "getppid".into(), n.to_string()]),
        ("read-file", vec![exe.clone(), "--work".into(), "read-file".into(), (n / 4).to_string()]),
        ("fork-exec", vec!["sh".into(), "-c".into(), shell_loop]),
    ];
    let mut rows = Vec::new();
    for (name, argv) in &workloads {
        let untraced = best(reps, || {
            let status = Command::new(&argv[0]).args(&argv[1..]).status().expect("run workload");
            assert!(status.success());
        });
        let mut calls = 0;
        let audit = best(reps, || {
            let report = trace(argv, &TraceConfig::default()).expect("trace");
            calls = report.summary.total().calls;
        });
        let audit_log = best(reps, || {
            trace(argv, &TraceConfig { log: Some(log.clone()), ..TraceConfig::default() }).expect("trace");
        });
        let strace = best(reps, || {
            let status =
                Command::new("strace").args(["-f", "-c", "-o", "/dev/null", "--"]).args(argv).status().expect("strace");
            assert!(status.success());
        });
        rows.push(json!({
            "workload": name, "syscalls": calls,
            "untraced_s": untraced.as_secs_f64(), "audit_s": audit.as_secs_f64(),
            "audit_log_s": audit_log.as_secs_f64(), "strace_s": strace.as_secs_f64(),
        }));
        eprintln!(
            "{name}: {calls} calls; untraced {:.3} s, audit {:.3} s ({:.1}x), audit+log {:.3} s ({:.1}x), strace -f -c {:.3} s ({:.1}x)",
            untraced.as_secs_f64(),
            audit.as_secs_f64(),
            audit.as_secs_f64() / untraced.as_secs_f64(),
            audit_log.as_secs_f64(),
            audit_log.as_secs_f64() / untraced.as_secs_f64(),
            strace.as_secs_f64(),
            strace.as_secs_f64() / untraced.as_secs_f64(),
        );
    }
    let _ = std::fs::remove_file(&log);
    println!("{}", json!({ "n": n, "reps": reps, "rows": rows }));
}

/// The best wall time of `reps` runs of `f`.
fn best(reps: usize, mut f: impl FnMut()) -> Duration {
    (0..reps.max(1))
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .min()
        .unwrap_or_default()
}

/// The workloads themselves (in the child).
fn work(kind: &str, n: u64) {
    match kind {
        "getppid" => {
            let mut acc = 0u64;
            for _ in 0..n {
                acc = acc.wrapping_add(u64::from(std::os::unix::process::parent_id()));
            }
            std::hint::black_box(acc);
        }
        "read-file" => {
            for _ in 0..n {
                std::hint::black_box(std::fs::read("/etc/hostname").expect("read /etc/hostname"));
            }
        }
        other => panic!("unknown workload {other}"),
    }
}
