//! Services a week's tests talk to, started once per grading run: a real MLflow tracking server.
//!
//! A week lists them in `week.toml` (`services = ["mlflow"]`). Every test
//! still runs in its own process; it finds the service through an environment
//! variable (`MLFLOW_TRACKING_URI`), so hundreds of tests share one server
//! that took 15–25 s to start, and each test isolates itself by naming its
//! experiments uniquely. The server lives in a folder under the run's scratch
//! folder; both the server and its folder go when the returned [`Services`] is dropped.

use std::path::Path;

use anyhow::{Context, Result};
use kernels::tracking::{LocalServer, LocalServerConfig};
use serde::Deserialize;

/// A service a week's tests need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    /// `mlflow server` with a SQLite store and the artifact proxy (from the peers' venv).
    Mlflow,
}

/// The running services of one grading run, and the environment that points tests at them.
#[derive(Debug, Default)]
pub struct Services {
    /// Variables every test process gets.
    pub env: Vec<(String, String)>,
    /// Dropped before `dirs` (fields drop in order), so a server stops before its folder goes.
    mlflow: Option<LocalServer>,
    dirs: Vec<tempfile::TempDir>,
}

impl Services {
    /// Whether an MLflow server is running.
    pub fn has_mlflow(&self) -> bool {
        self.mlflow.is_some()
    }
}

/// Starts `wanted` with their state under `scratch`.
pub fn start(wanted: &[Service], scratch: &Path) -> Result<Services> {
    let mut services = Services::default();
    for service in wanted {
        match service {
            Service::Mlflow if services.mlflow.is_none() => {
                let dir = tempfile::Builder::new().prefix("mlflow-").tempdir_in(scratch)?;
                let server = LocalServer::start(&LocalServerConfig::new(dir.path()))
                    .context("starting the MLflow server this week's tests talk to")?;
                services.env.push(("MLFLOW_TRACKING_URI".into(), server.url()));
                services.mlflow = Some(server);
                services.dirs.push(dir);
            }
            Service::Mlflow => {}
        }
    }
    Ok(services)
}
