//! An open-loop HTTP/1.1 load generator, for measuring latency at a fixed request rate without
//! coordinated omission (Gil Tene, "How NOT to Measure Latency", 2015; the model of wrk2).
//!
//! A closed-loop generator (wrk, ab) sends the next request only when the previous answer came back,
//! so when the server stalls the generator stalls too, and the requests that *would* have been sent
//! during the stall are never measured: the tail looks far better than users see it. Here every
//! request has an intended send time fixed in advance (`start + i / rate`, spread over the
//! connections round-robin), and its latency is measured from that intended time, not from when it
//! was actually written: a request delayed behind a slow one is charged for the wait.
//!
//! Each connection is a thread with a blocking keep-alive socket (`TCP_NODELAY`), sleeping until its
//! next intended time (`std::thread::sleep`, microsecond resolution, unlike a millisecond timer
//! wheel). [`LoadReport::send_lag_us`] reports how late the generator itself was on average, so a
//! generator that cannot keep up is visible instead of silently lowering the rate. A `rate` of 0 runs
//! closed-loop (each connection sends as soon as it has its answer), for peak throughput.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::{Error, Result};

/// What to send and how fast.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// The server.
    pub addr: SocketAddr,
    /// `POST` target, e.g. `/v1/models/fraud:predict`.
    pub path: String,
    /// The request body (the same for every request).
    pub body: Vec<u8>,
    /// Its content type.
    pub content_type: String,
    /// Requests per second over all connections; 0 = closed loop (as fast as answers come).
    pub rate: f64,
    /// How long to send for.
    pub duration: Duration,
    /// Concurrent keep-alive connections.
    pub connections: usize,
    /// A request without an answer after this long counts as an error (and its connection is reopened).
    pub timeout: Duration,
}

impl Default for LoadConfig {
    fn default() -> Self {
        LoadConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            path: "/".into(),
            body: Vec::new(),
            content_type: "application/json".into(),
            rate: 1000.0,
            duration: Duration::from_secs(5),
            connections: 8,
            timeout: Duration::from_secs(5),
        }
    }
}

/// What a run measured.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    /// The rate asked for (0 = closed loop).
    pub rate: f64,
    /// Wall time from the first intended send to the last answer, seconds.
    pub elapsed_s: f64,
    /// Requests sent.
    pub sent: u64,
    /// Answers with status 200.
    pub ok: u64,
    /// Other answers, timeouts and connection failures.
    pub errors: u64,
    /// Answers by status (0 = no answer).
    pub statuses: BTreeMap<u16, u64>,
    /// Latency of every request from its intended send time, microseconds, ascending.
    pub latencies_us: Vec<f64>,
    /// Latency from the actual send time (what a closed-loop tool reports), microseconds, ascending.
    pub service_us: Vec<f64>,
    /// Mean delay between a request's intended and actual send time, microseconds.
    pub send_lag_us: f64,
}

/// The `q` quantile (0..=1) of ascending `sorted` values (nearest rank); 0 when empty.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

impl LoadReport {
    /// Answers per second achieved.
    pub fn throughput(&self) -> f64 {
        if self.elapsed_s > 0.0 { (self.ok + self.errors) as f64 / self.elapsed_s } else { 0.0 }
    }

    /// The report as JSON: counts, throughput, p50/p90/p99/p99.9/max from the intended send time, and
    /// the same percentiles from the actual send time.
    pub fn to_json(&self) -> Value {
        let pct = |v: &[f64]| {
            json!({"p50": quantile(v, 0.5), "p90": quantile(v, 0.9), "p99": quantile(v, 0.99),
                   "p999": quantile(v, 0.999), "max": v.last().copied().unwrap_or(0.0)})
        };
        json!({
            "rate": self.rate, "elapsed_s": self.elapsed_s, "sent": self.sent, "ok": self.ok,
            "errors": self.errors, "throughput_rps": self.throughput(),
            "statuses": self.statuses.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "latency_us": pct(&self.latencies_us), "service_us": pct(&self.service_us),
            "send_lag_us": self.send_lag_us,
        })
    }
}

/// A minimal keep-alive HTTP/1.1 client for one connection (Content-Length bodies only, which is
/// what the server sends).
#[derive(Debug)]
pub struct Connection {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
    timeout: Duration,
}

impl Connection {
    /// A connection to `addr` (opened on first use).
    pub fn new(addr: SocketAddr, timeout: Duration) -> Connection {
        Connection { addr, stream: None, buf: Vec::with_capacity(8192), timeout }
    }

    fn stream(&mut self) -> std::io::Result<&mut TcpStream> {
        if self.stream.is_none() {
            let s = TcpStream::connect_timeout(&self.addr, self.timeout)?;
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(self.timeout))?;
            s.set_write_timeout(Some(self.timeout))?;
            self.stream = Some(s);
        }
        Ok(self.stream.as_mut().expect("just opened"))
    }

    /// Sends `request` (complete bytes) and reads the answer: `(status, body)`. On any error the
    /// connection is closed (the next call reopens it).
    ///
    /// # Errors
    /// I/O errors, timeouts, a malformed answer.
    pub fn roundtrip(&mut self, request: &[u8]) -> std::io::Result<(u16, Vec<u8>)> {
        let result = self.roundtrip_inner(request);
        if result.is_err() {
            self.stream = None;
        }
        result
    }

    fn roundtrip_inner(&mut self, request: &[u8]) -> std::io::Result<(u16, Vec<u8>)> {
        let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
        self.stream()?.write_all(request)?;
        self.buf.clear();
        let mut chunk = [0u8; 16384];
        let header_end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = self.stream()?.read(&mut chunk)?;
            if n == 0 {
                return Err(bad("connection closed before the answer's headers"));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        };
        let head = std::str::from_utf8(&self.buf[..header_end]).map_err(|_| bad("non-UTF-8 headers"))?;
        let status: u16 = head.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| bad("no status"))?;
        let mut length = None;
        let mut close = false;
        for line in head.split("\r\n").skip(1) {
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse::<usize>().ok();
                } else if k.eq_ignore_ascii_case("connection") && v.trim().eq_ignore_ascii_case("close") {
                    close = true;
                }
            }
        }
        let length = length.ok_or_else(|| bad("no Content-Length"))?;
        while self.buf.len() < header_end + length {
            let n = self.stream()?.read(&mut chunk)?;
            if n == 0 {
                return Err(bad("connection closed inside the body"));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
        let body = self.buf[header_end..header_end + length].to_vec();
        if close {
            self.stream = None;
        }
        Ok((status, body))
    }
}

/// The bytes of `POST path` with `body` (keep-alive).
pub fn post_request(addr: SocketAddr, path: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

struct Sample {
    latency_us: f64,
    service_us: f64,
    lag_us: f64,
    status: u16,
}

/// Runs the load (see the module docs) and reports it. Blocks for about `duration`.
///
/// # Errors
/// [`Error::ServeModelConfig`] for no connection, a negative rate or a zero duration;
/// [`Error::ServeModelIo`] when a connection thread cannot start.
pub fn run(config: &LoadConfig) -> Result<LoadReport> {
    if config.connections == 0 || config.rate.is_nan() || config.rate < 0.0 || config.duration.is_zero() {
        return Err(Error::ServeModelConfig("load: connections >= 1, rate >= 0 and a duration > 0 are needed".into()));
    }
    let request = post_request(config.addr, &config.path, &config.content_type, &config.body);
    let conns = config.connections;
    // Every connection starts at the same instant, a little ahead, so the threads are all running.
    let start = Instant::now() + Duration::from_millis(20);
    let end = start + config.duration;
    let mut threads = Vec::with_capacity(conns);
    for c in 0..conns {
        let (request, config) = (request.clone(), config.clone());
        let t = std::thread::Builder::new().name(format!("loadgen-{c}")).spawn(move || {
            let mut conn = Connection::new(config.addr, config.timeout);
            let mut samples = Vec::new();
            let mut i: u64 = 0;
            loop {
                // ANCHOR: intended_time
                let intended = if config.rate > 0.0 {
                    start + Duration::from_secs_f64((c as f64 + (i * conns as u64) as f64) / config.rate)
                } else {
                    Instant::now().max(start)
                };
                if intended >= end {
                    break;
                }
                let now = Instant::now();
                if intended > now {
                    std::thread::sleep(intended - now);
                }
                let sent = Instant::now();
                let status = match conn.roundtrip(&request) {
                    Ok((status, _)) => status,
                    Err(_) => 0,
                };
                let done = Instant::now();
                samples.push(Sample {
                    latency_us: (done - intended).as_secs_f64() * 1e6,
                    service_us: (done - sent).as_secs_f64() * 1e6,
                    lag_us: (sent.saturating_duration_since(intended)).as_secs_f64() * 1e6,
                    status,
                });
                // ANCHOR_END: intended_time
                i += 1;
            }
            (samples, Instant::now())
        });
        threads.push(t.map_err(|e| Error::ServeModelIo(format!("load generator thread: {e}")))?);
    }
    let mut report = LoadReport { rate: config.rate, ..LoadReport::default() };
    let mut last = start;
    let mut lag = 0.0;
    for t in threads {
        let (samples, finished) =
            t.join().map_err(|_| Error::ServeModelIo("a load generator thread panicked".into()))?;
        last = last.max(finished);
        for s in samples {
            report.sent += 1;
            *report.statuses.entry(s.status).or_default() += 1;
            if s.status == 200 {
                report.ok += 1;
            } else {
                report.errors += 1;
            }
            report.latencies_us.push(s.latency_us);
            report.service_us.push(s.service_us);
            lag += s.lag_us;
        }
    }
    report.elapsed_s = (last - start).as_secs_f64();
    report.send_lag_us = if report.sent > 0 { lag / report.sent as f64 } else { 0.0 };
    report.latencies_us.sort_by(f64::total_cmp);
    report.service_us.sort_by(f64::total_cmp);
    Ok(report)
}
