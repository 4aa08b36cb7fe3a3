//! The course's own servers make no non-loopback network call while answering (c3w4, issue 15):
//! `sovereign serve --demo` (SmolLM2-135M-Instruct and all-MiniLM-L6-v2) and `sovereign serve-model`
//! (a fitted forest in a model folder) each run under `sovereign trace --deny-network --log`, answer
//! real requests sent over loopback (an OpenAI-compatible chat completion and an embedding; predict
//! requests compared with the same forest in-process), and stop on SIGTERM.
//!
//! What is asserted, from the verified hash-chained log: the policy held (the trace exits with the
//! server's own status 0, the end record counts no violation); the trace really watched the server
//! (it bound a loopback address, accepted at least one connection per request and received at least
//! the bytes sent); and no `connect`, `sendto`, `sendmsg` or `bind` names an
//! address other than loopback, Unix or netlink. The negative control shows the check can fail: a
//! traced Python program that connects a UDP socket to 192.0.2.1 (TEST-NET-1, RFC 5737; a UDP
//! connect sends nothing) is a violation naming `connect` and the address, denied with `EACCES`, or
//! only reported under `--report-only`.
//!
//! Every run is bounded: the server must listen within a deadline, every request has a read timeout,
//! and a `Traced` that is dropped early (a failed assertion) kills the tracer, whose
//! `PTRACE_O_EXITKILL` takes the traced server with it.

use crate::tmp::Tmp;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use kernels::audit::{Event, SockAddr, is_local, read_log};
use kernels::ml::Matrix;
use kernels::ml::flat::FlatForest;
use kernels::ml::forest::{self, ForestConfig};
use kernels::ml::io::{self, ModelMeta};
use kernels::ml::tree::TreeConfig;
use serde_json::{Value, json};

// ------------------------------------------------------------------ helpers

/// A fresh folder, removed on drop.
fn sovereign_bin() -> &'static str {
    env!("CARGO_BIN_EXE_sovereign")
}

/// The process whose parent is `parent` (the traced server, child of the tracer), from `/proc`.
fn child_of(parent: u32) -> Option<i32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
        // `pid (comm) state ppid …`: the command name may hold spaces, so split after its `)`.
        let ppid: u32 = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()?;
        (ppid == parent).then_some(pid)
    })
}

/// A server started under `sovereign trace --deny-network --log LOG`, its stderr read line by line.
struct Traced {
    tracer: Option<Child>,
    lines: Receiver<String>,
    seen: Vec<String>,
    addr: SocketAddr,
    log: PathBuf,
}

impl Traced {
    /// Starts `sovereign trace --deny-network --log LOG -- sovereign SERVER_ARGS…` and waits (at most
    /// `within`) for the server's `on http://ADDR` line.
    fn start(tmp: &Tmp, server_args: &[&str], within: Duration) -> Traced {
        let log = tmp.join("trace.jsonl");
        let mut tracer = Command::new(sovereign_bin())
            .current_dir(&tmp.0)
            .args(["trace", "--deny-network", "--log"])
            .arg(&log)
            .args(["--", sovereign_bin()])
            .args(server_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("sovereign trace starts");
        let stderr = tracer.stderr.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut traced =
            Traced { tracer: Some(tracer), lines, seen: Vec::new(), addr: "127.0.0.1:0".parse().unwrap(), log };
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match traced.lines.recv_timeout(left) {
                Ok(line) => {
                    let url = line.split("on http://").nth(1).and_then(|u| u.split_whitespace().next());
                    let addr = url.and_then(|u| u.parse::<SocketAddr>().ok());
                    traced.seen.push(line);
                    if let Some(addr) = addr {
                        traced.addr = addr;
                        return traced;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("no `on http://` line within {within:?}:\n{}", traced.stderr())
                }
                Err(RecvTimeoutError::Disconnected) => panic!("the traced server exited early:\n{}", traced.stderr()),
            }
        }
    }

    fn stderr(&self) -> String {
        self.seen.join("\n")
    }

    /// SIGTERM to the traced server (the tracer's child), then the tracer's exit status (within
    /// `within`) and everything both wrote on stderr.
    fn stop(mut self, within: Duration) -> (ExitStatus, String) {
        let mut tracer = self.tracer.take().unwrap();
        let server = child_of(tracer.id()).unwrap_or_else(|| panic!("no child of the tracer {}", tracer.id()));
        // SAFETY: kill(2) on the server process this test started (through the tracer).
        assert_eq!(unsafe { libc::kill(server, libc::SIGTERM) }, 0, "SIGTERM to {server}");
        let deadline = Instant::now() + within;
        let status = loop {
            if let Some(status) = tracer.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = tracer.kill();
                let _ = tracer.wait();
                panic!("the traced server did not stop within {within:?} of SIGTERM:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // The reader thread ends at the pipe's end: the tracer has exited.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(10)) {
            self.seen.push(line);
        }
        (status, self.stderr())
    }
}

impl Drop for Traced {
    fn drop(&mut self) {
        // A failed assertion before `stop`: the tracer's PTRACE_O_EXITKILL kills the traced server.
        if let Some(mut tracer) = self.tracer.take() {
            let _ = tracer.kill();
            let _ = tracer.wait();
        }
    }
}

/// One HTTP/1.1 request on a new loopback connection: the status, the body and the bytes sent.
fn http(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>, usize) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let split = out.windows(4).position(|w| w == b"\r\n\r\n").map_or(out.len(), |i| i + 4);
    let status = String::from_utf8_lossy(&out[..split]).split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, out[split..].to_vec(), head.len() + body.len())
}

/// POSTs JSON; the status, the parsed answer and the bytes sent.
fn post(addr: SocketAddr, path: &str, body: &Value) -> (u16, Value, usize) {
    let (status, bytes, sent) = http(addr, "POST", path, body.to_string().as_bytes());
    let text = String::from_utf8_lossy(&bytes);
    (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("{status} {text:?}: {e}")), sent)
}

/// What the log of a traced server must show: the tracer's verdict passed, the server listened on
/// `addr`, accepted at least `requests` connections and received at least `bytes_sent` bytes, and
/// nothing addressed a non-loopback peer.
fn assert_loopback_only(log: &Path, addr: SocketAddr, requests: usize, bytes_sent: usize) {
    let (checked, events) = read_log(log).expect("the trace log verifies");
    assert_eq!(checked.end.violations, 0, "the end record counts violations");
    assert!(events.iter().all(|e| e.violation.is_none()), "a call broke the policy");
    let ok = |e: &&Event| !e.failed();
    // The server binds port 0 (the kernel picks the port the requests went to) on loopback.
    let SocketAddr::V4(v4) = addr else { panic!("the server listens on IPv4 loopback, not {addr}") };
    let bound = events.iter().filter(ok).any(|e| {
        e.name == "bind"
            && matches!(&e.detail.addr, Some(SockAddr::Inet { addr: a }) if a.ip() == v4.ip() && [0, v4.port()].contains(&a.port()))
    });
    assert!(bound, "no successful bind to {} in the log: the trace did not watch the server", v4.ip());
    let accepted = events.iter().filter(ok).filter(|e| matches!(e.name.as_str(), "accept" | "accept4")).count();
    assert!(accepted >= requests, "{accepted} connections accepted for {requests} requests");
    let received: i64 =
        events.iter().filter(ok).filter(|e| matches!(e.name.as_str(), "recvfrom" | "recvmsg")).map(|e| e.ret).sum();
    assert!(received >= bytes_sent as i64, "the server received {received} bytes of the {bytes_sent} sent");
    let addressed: Vec<String> = events
        .iter()
        .filter(|e| matches!(e.name.as_str(), "connect" | "sendto" | "sendmsg" | "bind"))
        .filter_map(|e| e.detail.addr.as_ref().filter(|a| !is_local(a)).map(|a| format!("{} to {a}", e.name)))
        .collect();
    assert!(addressed.is_empty(), "non-loopback addresses: {addressed:?}");
}

// ------------------------------------------------------------------ the servers

#[test]
fn sovereign_serve_demo_answers_chat_and_embeddings_over_loopback_only() {
    let tmp = Tmp::new("demo");
    // Loading both models in a debug build takes a while; the bound is generous.
    let args = ["serve", "--demo", "--port", "0", "--context", "256", "--max-batch", "2"];
    let server = Traced::start(&tmp, &args, Duration::from_secs(300));
    let addr = server.addr;
    let chat = json!({
        "model": "smollm2-135m-instruct",
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
        "temperature": 0, "max_tokens": 4,
    });
    let (status, v, sent_chat) = post(addr, "/v1/chat/completions", &chat);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["object"], "chat.completion", "{v}");
    assert!(v["choices"][0]["message"]["content"].as_str().is_some_and(|c| !c.is_empty()), "{v}");
    assert!(v["usage"]["completion_tokens"].as_u64().is_some_and(|n| (1..=4).contains(&n)), "{v}");
    let (status, v, sent_embed) = post(addr, "/v1/embeddings", &json!({"model": "all-minilm-l6-v2", "input": "hi"}));
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["data"][0]["embedding"].as_array().map(Vec::len), Some(384), "{v}");
    let (status, models, sent_models) = http(addr, "GET", "/v1/models", b"");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&models));

    let log = server.log.clone();
    let (status, stderr) = server.stop(Duration::from_secs(60));
    assert_eq!(status.code(), Some(0), "the traced server's status (3: a policy violation):\n{stderr}");
    assert!(!stderr.contains("policy violation") && stderr.contains("stopped"), "{stderr}");
    assert_loopback_only(&log, addr, 3, sent_chat + sent_embed + sent_models);
}

/// Seeded card-like rows (amount, hour, foreign, velocity) and fraud labels.
fn fraud_rows(rows: usize, seed: u64) -> (Matrix, Vec<f32>) {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    let (mut x, mut y) = (Vec::with_capacity(rows * 4), Vec::with_capacity(rows));
    for _ in 0..rows {
        let (amount, hour) = ((next() * 6.0).exp() as f32, (next() * 24.0).floor() as f32);
        let (foreign, velocity) = (f32::from(next() < 0.2), (next() * 10.0) as f32);
        y.push(f32::from((amount > 150.0 && foreign == 1.0) || velocity > 9.0));
        x.extend_from_slice(&[amount, hour, foreign, velocity]);
    }
    let names = ["amount", "hour", "foreign", "velocity"].map(String::from).to_vec();
    (Matrix::new(rows, 4, x).unwrap().with_names(names).unwrap(), y)
}

#[test]
fn sovereign_serve_model_answers_predictions_over_loopback_only() {
    let tmp = Tmp::new("model");
    let (x, y) = fraud_rows(800, 3);
    let config = ForestConfig {
        n_trees: 8,
        tree: TreeConfig { max_depth: Some(5), ..TreeConfig::default() },
        seed: 3,
        ..ForestConfig::default()
    };
    let fitted = forest::fit(&x, &y, &config).unwrap();
    std::fs::create_dir_all(tmp.join("fraud")).unwrap();
    io::save(tmp.join("fraud/model.safetensors"), &fitted, &ModelMeta::for_data(&x)).unwrap();
    let flat = FlatForest::from_forest(&fitted);

    let dir = tmp.join("fraud");
    let args = ["serve-model", "--model-dir", dir.to_str().unwrap(), "--port", "0", "--max-delay-us", "200"];
    let server = Traced::start(&tmp, &args, Duration::from_secs(60));
    let addr = server.addr;
    let (rows, _) = fraud_rows(24, 17);
    let want = flat.predict_batch_all(&rows).unwrap();
    // Twelve single rows from four concurrent clients, then one request of all 24 rows.
    let sent: usize = std::thread::scope(|s| {
        let clients: Vec<_> = (0..4)
            .map(|c| {
                let (rows, want) = (&rows, &want);
                s.spawn(move || {
                    let mut sent = 0;
                    for i in (c..12).step_by(4) {
                        let (status, v, n) =
                            post(addr, "/v1/models/fraud:predict", &json!({"instances": [rows.row(i)]}));
                        assert_eq!(status, 200, "{v}");
                        assert_eq!(v["predictions"][0].as_f64().map(|p| p as f32), Some(want[i]), "row {i}: {v}");
                        sent += n;
                    }
                    sent
                })
            })
            .collect();
        clients.into_iter().map(|c| c.join().unwrap()).sum()
    });
    let all: Vec<&[f32]> = (0..rows.rows()).map(|i| rows.row(i)).collect();
    let (status, v, sent_all) = post(addr, "/v1/models/fraud:predict", &json!({ "instances": all }));
    assert_eq!(status, 200, "{v}");
    let got: Vec<f32> = v["predictions"].as_array().unwrap().iter().map(|p| p.as_f64().unwrap() as f32).collect();
    assert_eq!(got, want);

    let log = server.log.clone();
    let (status, stderr) = server.stop(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "the traced server's status (3: a policy violation):\n{stderr}");
    assert!(!stderr.contains("policy violation"), "{stderr}");
    assert_loopback_only(&log, addr, 13, sent + sent_all);
}

// ------------------------------------------------------------------ the negative control

/// Debian's Python (the pyenv shim on PATH would add a bash script to the trace).
fn python() -> String {
    if Path::new("/usr/bin/python3").exists() { "/usr/bin/python3".into() } else { "python3".into() }
}

#[test]
fn a_udp_connect_to_test_net_is_a_violation_naming_the_call_and_the_address() {
    let script = "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ntry:\n    s.connect(('192.0.2.1', 53))\n    print('connected')\nexcept OSError as e:\n    print('refused', e.errno)\n";
    let tmp = Tmp::new("udp");
    for (extra, action, printed) in [(None, "denied", "refused 13"), (Some("--report-only"), "reported", "connected")] {
        let mut cmd = Command::new(sovereign_bin());
        cmd.current_dir(&tmp.0).args(["trace", "--deny-network", "--log", "udp.jsonl"]);
        cmd.args(extra).args(["--", &python(), "-c", script]);
        let out = cmd.stdin(Stdio::null()).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{stderr}");
        let needle = "connect to 192.0.2.1:53 (AF_INET): not loopback";
        let line = stderr.lines().find(|l| l.contains("policy violation")).unwrap_or_else(|| panic!("{stderr}"));
        assert!(line.contains(needle) && line.ends_with(&format!("({action})")), "{line}");
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), printed, "{stderr}");
        let (checked, events) = read_log(&tmp.join("udp.jsonl")).expect("the log verifies");
        assert_eq!(checked.end.violations, 1);
        let connect: Vec<&Event> = events.iter().filter(|e| e.violation.is_some()).collect();
        assert_eq!(connect.len(), 1, "{connect:?}");
        assert_eq!(connect[0].name, "connect");
        assert_eq!(connect[0].detail.addr, Some(SockAddr::Inet { addr: "192.0.2.1:53".parse().unwrap() }));
        assert_eq!(connect[0].errno.as_deref(), if action == "denied" { Some("EACCES") } else { None });
    }
}
