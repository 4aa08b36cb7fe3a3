//! A real MLflow tracking server on 127.0.0.1, started from a Python environment and stopped on drop.
//!
//! `mlflow server` serves the REST API the client speaks
//! (<https://mlflow.org/docs/latest/api_reference/rest-api.html>) from a SQLite
//! backing store and proxies artifacts (`--default-artifact-root mlflow-artifacts:/`).
//! It runs under a small Python wrapper (`local_server.py`, embedded here) that
//! stops the whole process group when its stdin closes, so a server never
//! outlives the process that started it, even one killed with SIGKILL.
//!
//! The tests of `kernels`, the labs' tests and the grader (for weeks that
//! declare `services = ["mlflow"]`) all start their servers here.
//! [`shared_server_url`] is the one-liner for tests: `MLFLOW_TRACKING_URI` when
//! something (the grader) already runs a server, otherwise a server shared by
//! the whole test process.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::{Error, Result};

/// The wrapper script, run with `python -c`.
const WRAPPER: &str = include_str!("local_server.py");

/// Where and how to start a server.
#[derive(Debug, Clone)]
pub struct LocalServerConfig {
    /// A Python that can `import mlflow` (by default the course's venv: [`default_python`]).
    pub python: PathBuf,
    /// The port to listen on, on 127.0.0.1.
    pub port: u16,
    /// The server's folder: `mlflow.db`, `artifacts/`, `server.log`. Kept across restarts.
    pub dir: PathBuf,
    /// How long the server may take to answer `/health` (15–25 s is usual on 2 busy cores).
    pub startup_timeout: Duration,
}

impl LocalServerConfig {
    /// A server with its store in `dir`, on a free port, run by [`default_python`].
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { python: default_python(), port: free_port(), dir: dir.into(), startup_timeout: Duration::from_secs(120) }
    }
}

/// The Python of the course's venv: `$SOVEREIGN_PYTHON` if set, else [`crate::cache::venv_python`]
/// (the venv `cargo xtask peers` installs MLflow into).
pub fn default_python() -> PathBuf {
    match std::env::var_os("SOVEREIGN_PYTHON").filter(|p| !p.is_empty()) {
        Some(py) => PathBuf::from(py),
        None => crate::cache::venv_python(),
    }
}

/// A port nobody listens on right now (0 if the system has none to give).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(0)
}

/// One running `mlflow server` (and its process group); stopped on drop.
#[derive(Debug)]
pub struct LocalServer {
    port: u16,
    dir: PathBuf,
    child: Child,
    stdin: Option<ChildStdin>,
}

impl LocalServer {
    /// Starts a server and waits until `/health` answers.
    ///
    /// Fails with [`Error::TrackingServer`] when the Python cannot import
    /// mlflow (the message names `cargo xtask peers`), when the server exits
    /// early or is not healthy in time (the message holds its log's tail).
    pub fn start(config: &LocalServerConfig) -> Result<Self> {
        check_mlflow(&config.python)?;
        std::fs::create_dir_all(&config.dir).map_err(|e| server_error(format!("{}: {e}", config.dir.display())))?;
        let mut child = Command::new(&config.python)
            .arg("-c")
            .arg(WRAPPER)
            .arg(config.port.to_string())
            .arg(&config.dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| server_error(format!("starting {}: {e}", config.python.display())))?;
        let stdin = child.stdin.take();
        let mut server = Self { port: config.port, dir: config.dir.clone(), child, stdin };
        server.wait_healthy(config.startup_timeout)?;
        Ok(server)
    }

    /// The base URL for clients, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its folder (store, artifacts, log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn wait_healthy(&mut self, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if health(self.port) {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(server_error(format!("mlflow server exited early ({status}); log:\n{}", self.log_tail())));
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        Err(server_error(format!("mlflow server not healthy after {timeout:?}; log:\n{}", self.log_tail())))
    }

    /// The last 30 lines of the server's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
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

impl Drop for LocalServer {
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

/// Whether `GET /health` on 127.0.0.1:`port` answers `OK`.
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

/// The tracking server for tests: `$MLFLOW_TRACKING_URI` when set (the grader
/// starts one server per grading run and passes it this way), otherwise a
/// server started on first use and shared by the whole process, with its
/// store in a fresh folder under the system's temp dir.
///
/// Tests sharing a server must not collide: give experiments unique names.
pub fn shared_server_url() -> Result<String> {
    if let Some(uri) = std::env::var("MLFLOW_TRACKING_URI").ok().filter(|u| u.starts_with("http")) {
        return Ok(uri.trim_end_matches('/').to_owned());
    }
    static SERVER: OnceLock<std::result::Result<LocalServer, String>> = OnceLock::new();
    let server = SERVER.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("kernels-mlflow-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        LocalServer::start(&LocalServerConfig::new(dir)).map_err(|e| e.to_string())
    });
    match server {
        Ok(server) => Ok(server.url()),
        Err(message) => Err(server_error(message.clone())),
    }
}

/// Checks that `python` can import mlflow, once per Python per process.
fn check_mlflow(python: &Path) -> Result<()> {
    static CHECKED: OnceLock<std::sync::Mutex<Vec<PathBuf>>> = OnceLock::new();
    let checked = CHECKED.get_or_init(Default::default);
    if checked.lock().unwrap_or_else(|e| e.into_inner()).iter().any(|p| p == python) {
        return Ok(());
    }
    let ok = Command::new(python)
        .args(["-c", "import mlflow"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        return Err(server_error(format!(
            "{} cannot import mlflow: a real MLflow server is needed. Run `cargo xtask peers` to install it \
             (or set SOVEREIGN_CACHE / SOVEREIGN_PYTHON, or MLFLOW_TRACKING_URI to a running server)",
            python.display()
        )));
    }
    checked.lock().unwrap_or_else(|e| e.into_inner()).push(python.to_owned());
    Ok(())
}

fn server_error(message: String) -> Error {
    Error::TrackingServer(message)
}
