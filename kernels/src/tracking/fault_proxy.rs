//! A fault-injecting loopback HTTP proxy: a mock for faults a real MLflow server cannot be made to produce.
//!
//! A healthy MLflow server (<https://mlflow.org/docs/latest/api_reference/rest-api.html>)
//! does not answer 503 on demand or drop a connection mid-request, so the
//! retry tests put this proxy between the client and the real server. Per
//! request it counts the hit and, following the test's plan, answers with an
//! injected status, drops the connection, or forwards the request verbatim
//! (one request per connection, `Connection: close`). The hit counters also
//! show how many requests a call made (e.g. `log-batch` chunking).

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy does with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Pass it to the real server and its answer back.
    Forward,
    /// Answer with this status and an MLflow-shaped error body, without forwarding.
    Respond(u16),
    /// Close the connection without answering.
    Drop,
}

/// The plan: given the request path and how many earlier requests hit the same path, what to do.
pub type Plan = dyn Fn(&str, usize) -> Action + Send + Sync;

/// A running proxy; it stops with the tokio runtime it was started on.
pub struct FaultProxy {
    /// The port it listens on, on 127.0.0.1.
    pub port: u16,
    hits: Arc<Mutex<Vec<String>>>,
}

impl FaultProxy {
    /// Starts a proxy in front of `127.0.0.1:upstream`.
    pub async fn start(upstream: u16, plan: impl Fn(&str, usize) -> Action + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binding a loopback port for the fault proxy");
        let port = listener.local_addr().expect("a bound socket has an address").port();
        let hits = Arc::new(Mutex::new(Vec::new()));
        let plan: Arc<Plan> = Arc::new(plan);
        let h = hits.clone();
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let (h, plan) = (h.clone(), plan.clone());
                tokio::spawn(async move {
                    let _ = handle(conn, upstream, &h, &*plan).await;
                });
            }
        });
        Self { port, hits }
    }

    /// The base URL for clients.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// How many requests had a path containing `needle`.
    pub fn hits(&self, needle: &str) -> usize {
        self.hits.lock().unwrap_or_else(|e| e.into_inner()).iter().filter(|p| p.contains(needle)).count()
    }
}

async fn handle(mut conn: TcpStream, upstream: u16, hits: &Mutex<Vec<String>>, plan: &Plan) -> std::io::Result<()> {
    // Read the head, then the body by Content-Length (reqwest sends one for our bodies).
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 8192];
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default().to_owned();
    let path = request_line.split(' ').nth(1).unwrap_or_default().to_owned();
    let mut headers: Vec<&str> = lines.filter(|l| !l.is_empty()).collect();
    let len: usize = headers
        .iter()
        .find_map(|h| {
            let (k, v) = h.split_once(':')?;
            k.eq_ignore_ascii_case("content-length").then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let mut chunk = [0u8; 8192];
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let nth = {
        let mut h = hits.lock().unwrap_or_else(|e| e.into_inner());
        let nth = h.iter().filter(|p| **p == path).count();
        h.push(path.clone());
        nth
    };
    match plan(&path, nth) {
        Action::Drop => Ok(()),
        Action::Respond(status) => {
            let body = format!(
                r#"{{"error_code":"{}","message":"injected by the test's fault proxy"}}"#,
                match status {
                    429 => "REQUEST_LIMIT_EXCEEDED",
                    503 => "TEMPORARILY_UNAVAILABLE",
                    s if s >= 500 => "INTERNAL_ERROR",
                    _ => "INVALID_PARAMETER_VALUE",
                }
            );
            let resp = format!(
                "HTTP/1.1 {status} Injected\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            conn.write_all(resp.as_bytes()).await?;
            conn.shutdown().await
        }
        Action::Forward => {
            headers.retain(|h| {
                let k = h.split(':').next().unwrap_or_default().trim();
                !k.eq_ignore_ascii_case("connection") && !k.eq_ignore_ascii_case("keep-alive")
            });
            let mut out = format!("{request_line}\r\n");
            for h in headers {
                out.push_str(h);
                out.push_str("\r\n");
            }
            out.push_str("Connection: close\r\n\r\n");
            let mut up = TcpStream::connect(("127.0.0.1", upstream)).await?;
            up.write_all(out.as_bytes()).await?;
            up.write_all(&buf[head_end..]).await?;
            let mut answer = Vec::new();
            up.read_to_end(&mut answer).await?;
            conn.write_all(&answer).await?;
            conn.shutdown().await
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
