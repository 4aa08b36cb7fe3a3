//! A real MLflow tracking server for the tests: started from the peers' venv, killed at the end.
//!
//! `mlflow server` serves the REST API under test
//! (<https://mlflow.org/docs/latest/api_reference/rest-api.html>) from a SQLite
//! backing store and proxies artifacts (`--default-artifact-root mlflow-artifacts:/`).
//! It runs under `tests/mlflow/serve.py`, which stops the whole process group
//! when its stdin closes, so a server never outlives the test process even
//! when the shared one (a `static`, never dropped) is left behind at exit.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use std::os::unix::process::CommandExt;

/// How long a server may take to answer `/health` (15–25 s is usual on 2 busy cores).
const STARTUP: Duration = Duration::from_secs(120);

/// The peers' venv: `$SOVEREIGN_CACHE/venv`, default `~/.cache/sovereign-ml/venv`.
pub fn venv() -> PathBuf {
    let cache = std::env::var_os("SOVEREIGN_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/sovereign-ml"));
    cache.join("venv")
}

/// The venv's python, after checking that it can import mlflow; panics (never skips) otherwise.
pub fn python() -> PathBuf {
    static CHECKED: OnceLock<PathBuf> = OnceLock::new();
    CHECKED
        .get_or_init(|| {
            let py = venv().join("bin/python");
            let ok = Command::new(&py)
                .args(["-c", "import mlflow"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            assert!(
                ok,
                "MLflow is not installed in {}: the tracking tests need a real MLflow server. \
                 Run `cargo xtask peers` to install it (or set SOVEREIGN_CACHE).",
                venv().display()
            );
            py
        })
        .clone()
}

/// The folder of the Python helper scripts.
pub fn scripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mlflow")
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port").local_addr().unwrap().port()
}

/// A fresh, empty folder under cargo's per-target scratch area.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("kernels-tracking").join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// One running `mlflow server` (and its process group).
pub struct MlflowServer {
    /// The port it listens on, on 127.0.0.1.
    pub port: u16,
    /// Its folder: `mlflow.db`, `artifacts/`, `server.log`.
    pub dir: PathBuf,
    child: Child,
    stdin: Option<ChildStdin>,
}

impl MlflowServer {
    /// Starts a server on `port` with its store in `dir` (kept across restarts) and waits until healthy.
    pub fn start(port: u16, dir: &Path) -> Self {
        let mut child = Command::new(python())
            .arg(scripts().join("serve.py"))
            .arg(port.to_string())
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("spawn tests/mlflow/serve.py");
        let stdin = child.stdin.take();
        let mut server = Self { port, dir: dir.to_owned(), child, stdin };
        server.wait_healthy();
        server
    }

    /// The base URL for clients.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn wait_healthy(&mut self) {
        let start = Instant::now();
        while start.elapsed() < STARTUP {
            if health(self.port) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("mlflow server exited early ({status}); log:\n{}", self.log_tail());
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!("mlflow server not healthy after {STARTUP:?}; log:\n{}", self.log_tail());
    }

    /// The end of the server's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        log.lines().rev().take(30).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    /// SIGKILLs the whole process group at once: the server dies mid-request, like a crash.
    pub fn kill_hard(mut self) {
        self.signal_group("KILL");
        let _ = self.child.wait();
        self.stdin = None;
    }

    fn signal_group(&self, signal: &str) {
        let _ = Command::new("kill")
            .args([&format!("-{signal}"), "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for MlflowServer {
    /// Closes the wrapper's stdin (it SIGTERMs the group), waits, then SIGKILLs what is left.
    fn drop(&mut self) {
        drop(self.stdin.take());
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if !matches!(self.child.try_wait(), Ok(None)) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.signal_group("KILL");
        let _ = self.child.wait();
    }
}

/// Whether `GET /health` answers `OK`.
pub fn health(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let req = format!("GET /health HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.starts_with("HTTP/1.") && out.contains(" 200 ") && out.trim_end().ends_with("OK")
}

/// The server shared by every test that does not need its own: started on first use.
pub fn shared() -> &'static MlflowServer {
    static SERVER: OnceLock<MlflowServer> = OnceLock::new();
    SERVER.get_or_init(|| MlflowServer::start(free_port(), &scratch_dir("shared")))
}
