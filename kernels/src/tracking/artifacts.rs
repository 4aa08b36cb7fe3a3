//! Artifacts through the tracking server's artifact proxy: upload, list and download.
//!
//! A server started with `--default-artifact-root mlflow-artifacts:/` (and
//! `--artifacts-destination DIR`) gives each run an artifact URI
//! `mlflow-artifacts:/<experiment_id>/<run_id>/artifacts` and serves it at
//! `PUT/GET /api/2.0/mlflow-artifacts/artifacts/<experiment_id>/<run_id>/artifacts/<path>`;
//! listings come from `GET /api/2.0/mlflow/artifacts/list?run_id=..&path=..`.
//! See "Artifacts" in <https://mlflow.org/docs/latest/api_reference/rest-api.html>
//! and <https://mlflow.org/docs/latest/self-hosting/architecture/artifact-store/>.

use std::path::{Path, PathBuf};

use reqwest::{Method, Url};
use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use super::client::{TrackingClient, collect_pages};
use super::types::{FileInfo, Page, RunInfo};
use crate::{Error, Result};

const PROXY: &str = "api/2.0/mlflow-artifacts/artifacts/";

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::TrackingIo { path: path.to_owned(), source }
}

/// Checks that `path` is a relative artifact path without `..`, and normalises separators.
fn clean_artifact_path(path: &str) -> Result<String> {
    let parts: Vec<&str> = path.split(['/', '\\']).filter(|p| !p.is_empty() && *p != ".").collect();
    if path.starts_with('/') || parts.contains(&"..") {
        return Err(Error::InvalidParameter(format!(
            "artifact path {path:?} must be relative and must not contain `..`"
        )));
    }
    Ok(parts.join("/"))
}

/// `a/b` joined with `c` (either may be empty).
fn join(dir: &str, name: &str) -> String {
    match (dir.is_empty(), name.is_empty()) {
        (true, _) => name.to_owned(),
        (_, true) => dir.to_owned(),
        _ => format!("{dir}/{name}"),
    }
}

/// The proxy path `<experiment_id>/<run_id>/artifacts` of a run whose artifacts the server proxies.
///
/// Accepts `mlflow-artifacts:/x/y` and `mlflow-artifacts://host:port/x/y`; any
/// other scheme means the server does not proxy this run's artifacts.
pub fn proxy_root(run: &RunInfo) -> Result<String> {
    let rest = run.artifact_uri.strip_prefix("mlflow-artifacts:").ok_or_else(|| {
        Error::InvalidParameter(format!(
            "run {} has artifact_uri {:?}, not served by the artifact proxy: start the server with \
             --default-artifact-root mlflow-artifacts:/ --artifacts-destination DIR",
            run.run_id, run.artifact_uri
        ))
    })?;
    let rest = match rest.strip_prefix("//") {
        Some(with_host) => with_host.find('/').map_or("", |i| &with_host[i..]),
        None => rest,
    };
    Ok(rest.trim_matches('/').to_owned())
}

impl TrackingClient {
    fn proxy_url(&self, run: &RunInfo, artifact_path: &str) -> Result<Url> {
        let root = proxy_root(run)?;
        Ok(self.url(PROXY, &[&root, artifact_path]))
    }

    /// One page of the artifacts directly under `path` (the root when `None`) of a run
    /// (`GET /api/2.0/mlflow/artifacts/list`); paths in the answer are relative to the run's root.
    pub async fn list_artifacts_page(
        &self,
        run_id: &str,
        path: Option<&str>,
        page_token: Option<&str>,
    ) -> Result<Page<FileInfo>> {
        #[derive(Deserialize)]
        struct Resp {
            #[serde(default)]
            files: Vec<FileInfo>,
            #[serde(default)]
            next_page_token: Option<String>,
        }
        let endpoint = "artifacts/list";
        let mut url = self.url("api/2.0/mlflow/artifacts/list", &[]);
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("run_id", run_id);
            if let Some(p) = path {
                q.append_pair("path", &clean_artifact_path(p)?);
            }
            if let Some(t) = page_token {
                q.append_pair("page_token", t);
            }
        }
        let resp = self.execute(endpoint, || self.request(Method::GET, url.clone())).await?;
        let body = resp.bytes().await.map_err(|source| Error::TrackingTransport {
            endpoint: endpoint.to_owned(),
            attempts: 1,
            source,
        })?;
        let r: Resp = serde_json::from_slice(&body)
            .map_err(|e| Error::TrackingResponse { endpoint: endpoint.to_owned(), message: e.to_string() })?;
        Ok(Page { items: r.files, next_page_token: r.next_page_token.filter(|t| !t.is_empty()) })
    }

    /// The artifacts directly under `path` (the root when `None`), all pages.
    pub async fn list_artifacts(&self, run_id: &str, path: Option<&str>) -> Result<Vec<FileInfo>> {
        collect_pages(None, |token| async move { self.list_artifacts_page(run_id, path, token.as_deref()).await }).await
    }

    /// Every file (not folder) under `path`, recursively, sorted by path.
    pub async fn list_artifacts_recursive(&self, run_id: &str, path: Option<&str>) -> Result<Vec<FileInfo>> {
        let mut files = Vec::new();
        let mut dirs = vec![path.map(str::to_owned)];
        while let Some(dir) = dirs.pop() {
            for f in self.list_artifacts(run_id, dir.as_deref()).await? {
                if f.is_dir {
                    dirs.push(Some(f.path));
                } else {
                    files.push(f);
                }
            }
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(files)
    }

    /// Uploads `bytes` as the artifact `artifact_path` of `run` (`PUT` through the proxy).
    pub async fn upload_artifact_bytes(&self, run: &RunInfo, artifact_path: &str, bytes: Vec<u8>) -> Result<()> {
        let path = clean_artifact_path(artifact_path)?;
        if path.is_empty() {
            return Err(Error::InvalidParameter("empty artifact path".into()));
        }
        let url = self.proxy_url(run, &path)?;
        self.execute("mlflow-artifacts/artifacts (PUT)", || {
            self.request(Method::PUT, url.clone())
                .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                .body(bytes.clone())
        })
        .await
        .map(drop)
    }

    /// Uploads the local file `local_file` to `<artifact_dir>/<file name>` of `run`
    /// (like MLflow's `log_artifact(local_path, artifact_path)`); returns the artifact path.
    ///
    /// The file is read into memory so that a retry can send it again.
    pub async fn upload_artifact(
        &self,
        run: &RunInfo,
        local_file: &Path,
        artifact_dir: Option<&str>,
    ) -> Result<String> {
        let name = local_file
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| Error::InvalidParameter(format!("{} has no UTF-8 file name", local_file.display())))?;
        let dest = join(&clean_artifact_path(artifact_dir.unwrap_or(""))?, name);
        let bytes = tokio::fs::read(local_file).await.map_err(io_err(local_file))?;
        self.upload_artifact_bytes(run, &dest, bytes).await?;
        Ok(dest)
    }

    /// Uploads every file under the local folder `local_dir`, keeping the layout, into
    /// `artifact_dir` of `run` (like MLflow's `log_artifacts`); returns the artifact paths, sorted.
    pub async fn upload_artifacts(
        &self,
        run: &RunInfo,
        local_dir: &Path,
        artifact_dir: Option<&str>,
    ) -> Result<Vec<String>> {
        let base = clean_artifact_path(artifact_dir.unwrap_or(""))?;
        let mut uploaded = Vec::new();
        let mut stack = vec![(local_dir.to_path_buf(), base)];
        while let Some((dir, prefix)) = stack.pop() {
            let mut entries = tokio::fs::read_dir(&dir).await.map_err(io_err(&dir))?;
            while let Some(entry) = entries.next_entry().await.map_err(io_err(&dir))? {
                let path = entry.path();
                let name = entry
                    .file_name()
                    .into_string()
                    .map_err(|n| Error::InvalidParameter(format!("file name {n:?} is not UTF-8")))?;
                let kind = entry.file_type().await.map_err(io_err(&path))?;
                if kind.is_dir() {
                    stack.push((path, join(&prefix, &name)));
                } else {
                    let bytes = tokio::fs::read(&path).await.map_err(io_err(&path))?;
                    let dest = join(&prefix, &name);
                    self.upload_artifact_bytes(run, &dest, bytes).await?;
                    uploaded.push(dest);
                }
            }
        }
        uploaded.sort();
        Ok(uploaded)
    }

    /// The content of the artifact file `artifact_path` of `run`, in memory (`GET` through the proxy).
    pub async fn read_artifact(&self, run: &RunInfo, artifact_path: &str) -> Result<Vec<u8>> {
        let url = self.proxy_url(run, &clean_artifact_path(artifact_path)?)?;
        let endpoint = "mlflow-artifacts/artifacts (GET)";
        let resp = self.execute(endpoint, || self.request(Method::GET, url.clone())).await?;
        let bytes = resp.bytes().await.map_err(|source| Error::TrackingTransport {
            endpoint: endpoint.to_owned(),
            attempts: 1,
            source,
        })?;
        Ok(bytes.to_vec())
    }

    /// Downloads the artifact file `artifact_path` of `run` to the local file `dest`,
    /// streaming it to disk; parent folders are created.
    pub async fn download_artifact_file(&self, run: &RunInfo, artifact_path: &str, dest: &Path) -> Result<()> {
        let url = self.proxy_url(run, &clean_artifact_path(artifact_path)?)?;
        let endpoint = "mlflow-artifacts/artifacts (GET)";
        let mut resp = self.execute(endpoint, || self.request(Method::GET, url.clone())).await?;
        if let Some(parent) = dest.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(io_err(parent))?;
        }
        let mut file = tokio::fs::File::create(dest).await.map_err(io_err(dest))?;
        while let Some(chunk) = resp.chunk().await.map_err(|source| Error::TrackingTransport {
            endpoint: endpoint.to_owned(),
            attempts: 1,
            source,
        })? {
            file.write_all(&chunk).await.map_err(io_err(dest))?;
        }
        file.flush().await.map_err(io_err(dest))?;
        Ok(())
    }

    /// Downloads the artifact `artifact_path` of `run` (a file, or a folder with
    /// everything below it; `""` is the whole run) into the local folder `dest_dir`,
    /// as `dest_dir/<last path component>` (or `dest_dir` itself for the root),
    /// like MLflow's `download_artifacts`. Returns the local path.
    pub async fn download_artifacts(&self, run: &RunInfo, artifact_path: &str, dest_dir: &Path) -> Result<PathBuf> {
        let path = clean_artifact_path(artifact_path)?;
        let local_root = match path.rsplit('/').next() {
            Some(last) if !last.is_empty() => dest_dir.join(last),
            _ => dest_dir.to_path_buf(),
        };
        let listing = self.list_artifacts(&run.run_id, Some(&path)).await?;
        // A file lists as nothing (or as itself); a folder lists its children.
        let is_file = !path.is_empty()
            && (listing.is_empty() || (listing.len() == 1 && listing[0].path == path && !listing[0].is_dir));
        if is_file {
            self.download_artifact_file(run, &path, &local_root).await?;
            return Ok(local_root);
        }
        tokio::fs::create_dir_all(&local_root).await.map_err(io_err(&local_root))?;
        for f in self.list_artifacts_recursive(&run.run_id, Some(&path)).await? {
            let rel = f.path.strip_prefix(&path).unwrap_or(&f.path).trim_start_matches('/');
            let local = rel.split('/').fold(local_root.clone(), |p, part| p.join(part));
            self.download_artifact_file(run, &f.path, &local).await?;
        }
        Ok(local_root)
    }
}
