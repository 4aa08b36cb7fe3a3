//! [`TrackingClient`]: experiments, runs, params, metrics, tags, `log-batch` and searches
//! (artifacts are in [`super::artifacts`], the Model Registry in [`super::model_registry`]).
//!
//! Each method is one endpoint of MLflow's tracking REST API 2.0
//! (<https://mlflow.org/docs/latest/api_reference/rest-api.html>), sent to
//! `<base_url>/api/2.0/mlflow/<endpoint>`; the `*_all` methods follow
//! `next_page_token` until the last page. Every call goes through one retry
//! loop ([`RetryPolicy`]): connection failures, 429 and 5xx are retried with
//! backoff, other 4xx come back at once as [`Error::Mlflow`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, RequestBuilder, Response, Url};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::batch::LogBatch;
use super::error::from_response;
use super::retry::RetryPolicy;
use super::types::{Experiment, Metric, Page, Param, Run, RunInfo, RunStatus, RunTag, ViewType, now_millis};
use crate::{Error, Result};

/// Where the server is and how to talk to it.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackingConfig {
    /// Root URL of the tracking server, e.g. `http://127.0.0.1:5000` (a path prefix is kept).
    pub base_url: String,
    /// Retries of transient failures.
    pub retry: RetryPolicy,
    /// Limit of one attempt, from connecting to the last byte of the answer.
    pub timeout: Duration,
    /// Limit of establishing a connection.
    pub connect_timeout: Duration,
    /// Sent as `Authorization: Bearer <token>` when set (MLflow's `MLFLOW_TRACKING_TOKEN`).
    pub token: Option<String>,
    /// The `User-Agent` header.
    pub user_agent: String,
}

impl TrackingConfig {
    /// Defaults for a server at `base_url`: [`RetryPolicy::default`], 30 s per attempt, 5 s to connect.
    pub fn new(base_url: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            retry: RetryPolicy::default(),
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            token: None,
            user_agent: concat!("kernels-tracking/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }

    /// Reads `MLFLOW_TRACKING_URI` (default `http://127.0.0.1:5000`) and `MLFLOW_TRACKING_TOKEN`.
    pub fn from_env() -> Self {
        let uri = std::env::var("MLFLOW_TRACKING_URI").unwrap_or_else(|_| "http://127.0.0.1:5000".to_owned());
        Self { token: std::env::var("MLFLOW_TRACKING_TOKEN").ok(), ..Self::new(uri) }
    }

    /// The same configuration with another retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The same configuration with another per-attempt timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// What [`TrackingClient::search_experiments`] sends (`experiments/search`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SearchExperiments {
    /// Filter such as `name LIKE 'bench-%'` or `tags.team = 'ml'`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// Page size (the server's default is 1000).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_results: Option<u32>,
    /// Sort keys such as `name ASC` or `creation_time DESC`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub order_by: Vec<String>,
    /// Token of the page to fetch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_token: Option<String>,
    /// Active, deleted or both.
    pub view_type: ViewType,
}

impl SearchExperiments {
    /// A search with a filter.
    pub fn filter(filter: impl Into<String>) -> Self {
        Self { filter: Some(filter.into()), ..Self::default() }
    }
}

/// What [`TrackingClient::search_runs`] sends (`runs/search`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SearchRuns {
    /// The experiments to search in.
    pub experiment_ids: Vec<String>,
    /// Filter such as `metrics.acc > 0.9 and params.lr = '0.1'`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// Active, deleted or both.
    pub run_view_type: ViewType,
    /// Page size (the server's default is 1000).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_results: Option<u32>,
    /// Sort keys such as `metrics.acc DESC` or `attributes.start_time ASC`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub order_by: Vec<String>,
    /// Token of the page to fetch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_token: Option<String>,
}

impl SearchRuns {
    /// A search in the given experiments.
    pub fn new<S: Into<String>>(experiment_ids: impl IntoIterator<Item = S>) -> Self {
        Self { experiment_ids: experiment_ids.into_iter().map(Into::into).collect(), ..Self::default() }
    }

    /// Sets the filter string.
    pub fn filter(mut self, filter: impl Into<String>) -> Self {
        self.filter = Some(filter.into());
        self
    }

    /// Adds a sort key.
    pub fn order_by(mut self, key: impl Into<String>) -> Self {
        self.order_by.push(key.into());
        self
    }

    /// Sets the page size.
    pub fn max_results(mut self, n: u32) -> Self {
        self.max_results = Some(n);
        self
    }
}

/// What [`TrackingClient::create_run`] sends (`runs/create`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CreateRun {
    /// The experiment the run belongs to.
    pub experiment_id: String,
    /// Display name (the server invents one when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_name: Option<String>,
    /// Start, milliseconds since the Unix epoch (now when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<i64>,
    /// Initial tags.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<RunTag>,
    /// Who runs it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
}

impl CreateRun {
    /// A run in `experiment_id`, starting now.
    pub fn new(experiment_id: impl Into<String>) -> Self {
        Self { experiment_id: experiment_id.into(), start_time: Some(now_millis()), ..Self::default() }
    }

    /// Sets the display name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.run_name = Some(name.into());
        self
    }

    /// Adds a tag.
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags.push(RunTag::new(key, value));
        self
    }
}

/// A typed async client of one MLflow tracking server.
///
/// Cheap to clone: clones share one connection pool.
#[derive(Debug, Clone)]
pub struct TrackingClient {
    http: reqwest::Client,
    base: Url,
    config: Arc<TrackingConfig>,
}

#[derive(Deserialize)]
pub(super) struct Empty {}

impl TrackingClient {
    /// A client for the server in `config`. Fails if `base_url` is not an http(s) URL.
    pub fn new(config: TrackingConfig) -> Result<Self> {
        let mut base = Url::parse(&config.base_url)
            .map_err(|e| Error::InvalidParameter(format!("tracking base_url {:?}: {e}", config.base_url)))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(Error::InvalidParameter(format!(
                "tracking base_url {:?} is not an http(s) URL",
                config.base_url
            )));
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .user_agent(config.user_agent.clone())
            .build()
            .map_err(|e| Error::InvalidParameter(format!("HTTP client: {e}")))?;
        Ok(Self { http, base, config: Arc::new(config) })
    }

    /// The configuration this client was built with.
    pub fn config(&self) -> &TrackingConfig {
        &self.config
    }

    /// `<base>/<path>` with every `/`-separated part of `tail` percent-encoded as one segment.
    pub(crate) fn url(&self, path: &str, tail: &[&str]) -> Url {
        let mut url = self.base.join(path).expect("static API paths are valid");
        if !tail.is_empty()
            && let Ok(mut segs) = url.path_segments_mut()
        {
            segs.pop_if_empty();
            for part in tail {
                segs.extend(part.split('/').filter(|s| !s.is_empty()));
            }
        }
        url
    }

    fn api(&self, endpoint: &str) -> Url {
        self.url(&format!("api/2.0/mlflow/{endpoint}"), &[])
    }

    pub(crate) fn request(&self, method: Method, url: Url) -> RequestBuilder {
        let rb = self.http.request(method, url);
        match &self.config.token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }

    /// Sends the request `build` makes until it succeeds, fails for good or runs out of attempts.
    ///
    /// `build` is called once per attempt, so bodies are rebuilt for retries.
    pub(crate) async fn execute(&self, endpoint: &str, build: impl Fn() -> RequestBuilder) -> Result<Response> {
        let policy = &self.config.retry;
        let max = policy.max_attempts.max(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            match build().send().await {
                Ok(resp) if resp.status().is_success() => return Ok(resp),
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    if RetryPolicy::is_retryable_status(status) && attempt < max {
                        let wait = retry_after(&resp)
                            .map(|d| d.min(policy.max_backoff))
                            .unwrap_or_else(|| policy.delay(attempt));
                        drop(resp);
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    let body = resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
                    return Err(from_response(endpoint, status, &body, attempt));
                }
                Err(e) if is_transient(&e) && attempt < max => {
                    tokio::time::sleep(policy.delay(attempt)).await;
                }
                Err(source) => {
                    return Err(Error::TrackingTransport { endpoint: endpoint.to_owned(), attempts: attempt, source });
                }
            }
        }
    }

    /// [`Self::execute`], then reads and decodes a JSON answer.
    async fn call<T: DeserializeOwned>(&self, endpoint: &str, build: impl Fn() -> RequestBuilder) -> Result<T> {
        let resp = self.execute(endpoint, build).await?;
        let body = resp.bytes().await.map_err(|source| Error::TrackingTransport {
            endpoint: endpoint.to_owned(),
            attempts: 1,
            source,
        })?;
        serde_json::from_slice(&body).map_err(|e| Error::TrackingResponse {
            endpoint: endpoint.to_owned(),
            message: format!("{e}; body: {}", String::from_utf8_lossy(&body[..body.len().min(300)])),
        })
    }

    pub(super) async fn post<B: Serialize + ?Sized, T: DeserializeOwned>(&self, endpoint: &str, body: &B) -> Result<T> {
        self.send_json(Method::POST, endpoint, body).await
    }

    /// A JSON body sent with `method` (POST, and the Model Registry's DELETE).
    pub(super) async fn send_json<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        endpoint: &str,
        body: &B,
    ) -> Result<T> {
        let url = self.api(endpoint);
        self.call(endpoint, || self.request(method.clone(), url.clone()).json(body)).await
    }

    pub(super) async fn get<T: DeserializeOwned>(&self, endpoint: &str, query: &[(&str, &str)]) -> Result<T> {
        let mut url = self.api(endpoint);
        url.query_pairs_mut().extend_pairs(query);
        self.call(endpoint, || self.request(Method::GET, url.clone())).await
    }

    // ---- experiments -------------------------------------------------------

    /// Creates an experiment and returns its id (`experiments/create`).
    ///
    /// A taken name fails with `RESOURCE_ALREADY_EXISTS`.
    pub async fn create_experiment(&self, name: &str, tags: &[RunTag]) -> Result<String> {
        #[derive(Serialize)]
        struct Req<'a> {
            name: &'a str,
            #[serde(skip_serializing_if = "<[RunTag]>::is_empty")]
            tags: &'a [RunTag],
        }
        #[derive(Deserialize)]
        struct Resp {
            experiment_id: String,
        }
        let r: Resp = self.post("experiments/create", &Req { name, tags }).await?;
        Ok(r.experiment_id)
    }

    /// The experiment with this id (`experiments/get`).
    pub async fn get_experiment(&self, experiment_id: &str) -> Result<Experiment> {
        #[derive(Deserialize)]
        struct Resp {
            experiment: Experiment,
        }
        let r: Resp = self.get("experiments/get", &[("experiment_id", experiment_id)]).await?;
        Ok(r.experiment)
    }

    /// The experiment with this name (`experiments/get-by-name`); `RESOURCE_DOES_NOT_EXIST` if none.
    pub async fn get_experiment_by_name(&self, name: &str) -> Result<Experiment> {
        #[derive(Deserialize)]
        struct Resp {
            experiment: Experiment,
        }
        let r: Resp = self.get("experiments/get-by-name", &[("experiment_name", name)]).await?;
        Ok(r.experiment)
    }

    /// The id of the experiment named `name`, created if it does not exist yet.
    pub async fn get_or_create_experiment(&self, name: &str) -> Result<String> {
        match self.get_experiment_by_name(name).await {
            Ok(e) => Ok(e.experiment_id),
            Err(e) if super::is_not_found(&e) => match self.create_experiment(name, &[]).await {
                Ok(id) => Ok(id),
                // Lost a race with another creator: theirs is as good as ours.
                Err(e) if super::is_already_exists(&e) => Ok(self.get_experiment_by_name(name).await?.experiment_id),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    /// One page of experiments (`experiments/search`).
    pub async fn search_experiments(&self, search: &SearchExperiments) -> Result<Page<Experiment>> {
        #[derive(Deserialize)]
        struct Resp {
            #[serde(default)]
            experiments: Vec<Experiment>,
            #[serde(default)]
            next_page_token: Option<String>,
        }
        let r: Resp = self.post("experiments/search", search).await?;
        Ok(page(r.experiments, r.next_page_token))
    }

    /// Every experiment matching `search`, following page tokens from `search.page_token`.
    pub async fn search_experiments_all(&self, search: &SearchExperiments) -> Result<Vec<Experiment>> {
        collect_pages(search.page_token.clone(), |token| {
            let req = SearchExperiments { page_token: token, ..search.clone() };
            async move { self.search_experiments(&req).await }
        })
        .await
    }

    /// Soft-deletes an experiment and its runs (`experiments/delete`).
    pub async fn delete_experiment(&self, experiment_id: &str) -> Result<()> {
        self.post_id("experiments/delete", "experiment_id", experiment_id).await
    }

    /// Restores a soft-deleted experiment (`experiments/restore`).
    pub async fn restore_experiment(&self, experiment_id: &str) -> Result<()> {
        self.post_id("experiments/restore", "experiment_id", experiment_id).await
    }

    /// Renames an experiment (`experiments/update`).
    pub async fn rename_experiment(&self, experiment_id: &str, new_name: &str) -> Result<()> {
        let body = serde_json::json!({ "experiment_id": experiment_id, "new_name": new_name });
        self.post::<_, Empty>("experiments/update", &body).await.map(drop)
    }

    /// Sets a tag on an experiment (`experiments/set-experiment-tag`).
    pub async fn set_experiment_tag(&self, experiment_id: &str, key: &str, value: &str) -> Result<()> {
        let body = serde_json::json!({ "experiment_id": experiment_id, "key": key, "value": value });
        self.post::<_, Empty>("experiments/set-experiment-tag", &body).await.map(drop)
    }

    async fn post_id(&self, endpoint: &str, field: &str, id: &str) -> Result<()> {
        let mut body = serde_json::Map::new();
        body.insert(field.to_owned(), id.into());
        self.post::<_, Empty>(endpoint, &body).await.map(drop)
    }

    // ---- runs --------------------------------------------------------------

    /// Creates a run (`runs/create`), status `RUNNING`.
    pub async fn create_run(&self, run: &CreateRun) -> Result<Run> {
        #[derive(Deserialize)]
        struct Resp {
            run: Run,
        }
        let r: Resp = self.post("runs/create", run).await?;
        Ok(r.run)
    }

    /// The run with this id, with the latest value of each metric (`runs/get`).
    pub async fn get_run(&self, run_id: &str) -> Result<Run> {
        #[derive(Deserialize)]
        struct Resp {
            run: Run,
        }
        let r: Resp = self.get("runs/get", &[("run_id", run_id)]).await?;
        Ok(r.run)
    }

    /// Sets a run's status and, optionally, its end time (`runs/update`).
    pub async fn update_run(&self, run_id: &str, status: RunStatus, end_time: Option<i64>) -> Result<RunInfo> {
        #[derive(Serialize)]
        struct Req<'a> {
            run_id: &'a str,
            status: RunStatus,
            #[serde(skip_serializing_if = "Option::is_none")]
            end_time: Option<i64>,
        }
        #[derive(Deserialize)]
        struct Resp {
            run_info: RunInfo,
        }
        let r: Resp = self.post("runs/update", &Req { run_id, status, end_time }).await?;
        Ok(r.run_info)
    }

    /// Ends a run now with `status` (usually [`RunStatus::Finished`] or [`RunStatus::Failed`]).
    pub async fn end_run(&self, run_id: &str, status: RunStatus) -> Result<RunInfo> {
        self.update_run(run_id, status, Some(now_millis())).await
    }

    /// Soft-deletes a run (`runs/delete`).
    pub async fn delete_run(&self, run_id: &str) -> Result<()> {
        self.post_id("runs/delete", "run_id", run_id).await
    }

    /// Restores a soft-deleted run (`runs/restore`).
    pub async fn restore_run(&self, run_id: &str) -> Result<()> {
        self.post_id("runs/restore", "run_id", run_id).await
    }

    /// Logs one param (`runs/log-parameter`). Re-logging a different value fails.
    pub async fn log_param(&self, run_id: &str, key: &str, value: &str) -> Result<()> {
        let body = serde_json::json!({ "run_id": run_id, "key": key, "value": value });
        self.post::<_, Empty>("runs/log-parameter", &body).await.map(drop)
    }

    /// Logs one metric measurement (`runs/log-metric`).
    pub async fn log_metric(&self, run_id: &str, metric: &Metric) -> Result<()> {
        #[derive(Serialize)]
        struct Req<'a> {
            run_id: &'a str,
            #[serde(flatten)]
            metric: &'a Metric,
        }
        self.post::<_, Empty>("runs/log-metric", &Req { run_id, metric }).await.map(drop)
    }

    /// Sets a tag on a run (`runs/set-tag`).
    pub async fn set_tag(&self, run_id: &str, key: &str, value: &str) -> Result<()> {
        let body = serde_json::json!({ "run_id": run_id, "key": key, "value": value });
        self.post::<_, Empty>("runs/set-tag", &body).await.map(drop)
    }

    /// Removes a tag from a run (`runs/delete-tag`).
    pub async fn delete_tag(&self, run_id: &str, key: &str) -> Result<()> {
        let body = serde_json::json!({ "run_id": run_id, "key": key });
        self.post::<_, Empty>("runs/delete-tag", &body).await.map(drop)
    }

    /// Logs metrics, params and tags (`runs/log-batch`), split to the server's limits
    /// ([`LogBatch::chunks`]); returns how many requests were made.
    ///
    /// Chunks are sent in order; on an error the earlier chunks stay logged.
    /// Re-sending a chunk is harmless (MLflow drops exact duplicate metrics and
    /// accepts a param re-logged with the same value), which is what makes
    /// retrying `log-batch` safe.
    pub async fn log_batch(&self, run_id: &str, batch: &LogBatch) -> Result<usize> {
        #[derive(Serialize)]
        struct Req<'a> {
            run_id: &'a str,
            #[serde(flatten)]
            batch: &'a LogBatch,
        }
        let chunks = batch.chunks();
        for chunk in &chunks {
            self.post::<_, Empty>("runs/log-batch", &Req { run_id, batch: chunk }).await?;
        }
        Ok(chunks.len())
    }

    /// Logs params from `(key, value)` pairs through `log-batch`.
    pub async fn log_params<K: Into<String>, V: Into<String>>(
        &self,
        run_id: &str,
        params: impl IntoIterator<Item = (K, V)>,
    ) -> Result<usize> {
        let params = params.into_iter().map(|(k, v)| Param::new(k, v)).collect();
        self.log_batch(run_id, &LogBatch { params, ..LogBatch::default() }).await
    }

    /// One page of the history of metric `key` (`metrics/get-history`).
    ///
    /// Without `max_results` the server answers with the whole history in one page.
    pub async fn get_metric_history(
        &self,
        run_id: &str,
        key: &str,
        max_results: Option<u32>,
        page_token: Option<&str>,
    ) -> Result<Page<Metric>> {
        #[derive(Deserialize)]
        struct Resp {
            #[serde(default)]
            metrics: Vec<Metric>,
            #[serde(default)]
            next_page_token: Option<String>,
        }
        let n = max_results.map(|n| n.to_string());
        let mut q = vec![("run_id", run_id), ("metric_key", key)];
        if let Some(n) = &n {
            q.push(("max_results", n));
        }
        if let Some(t) = page_token {
            q.push(("page_token", t));
        }
        let r: Resp = self.get("metrics/get-history", &q).await?;
        Ok(page(r.metrics, r.next_page_token))
    }

    /// The whole history of metric `key`, fetched in pages of `page_size`.
    pub async fn get_metric_history_all(&self, run_id: &str, key: &str, page_size: u32) -> Result<Vec<Metric>> {
        collect_pages(None, |token| async move {
            self.get_metric_history(run_id, key, Some(page_size), token.as_deref()).await
        })
        .await
    }

    /// One page of runs (`runs/search`).
    pub async fn search_runs(&self, search: &SearchRuns) -> Result<Page<Run>> {
        #[derive(Deserialize)]
        struct Resp {
            #[serde(default)]
            runs: Vec<Run>,
            #[serde(default)]
            next_page_token: Option<String>,
        }
        let r: Resp = self.post("runs/search", search).await?;
        Ok(page(r.runs, r.next_page_token))
    }

    /// Every run matching `search`, following page tokens from `search.page_token`.
    pub async fn search_runs_all(&self, search: &SearchRuns) -> Result<Vec<Run>> {
        collect_pages(search.page_token.clone(), |token| {
            let req = SearchRuns { page_token: token, ..search.clone() };
            async move { self.search_runs(&req).await }
        })
        .await
    }
}

pub(super) fn page<T>(items: Vec<T>, token: Option<String>) -> Page<T> {
    Page { items, next_page_token: token.filter(|t| !t.is_empty()) }
}

/// Collects every item of a paginated listing: calls `fetch(token)` from `first`
/// until a page comes back without `next_page_token`.
///
/// A server that hands back a token it already gave is an error, not an endless loop.
pub async fn collect_pages<T, F, Fut>(first: Option<String>, mut fetch: F) -> Result<Vec<T>>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<Page<T>>>,
{
    let mut items = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut token = first;
    loop {
        let page = fetch(token.take()).await?;
        items.extend(page.items);
        match page.next_page_token {
            None => return Ok(items),
            Some(t) if !seen.insert(t.clone()) => {
                return Err(Error::TrackingResponse {
                    endpoint: "pagination".to_owned(),
                    message: format!("page token {t:?} came back twice"),
                });
            }
            Some(t) => token = Some(t),
        }
    }
}

/// Whether a request error is worth another attempt: anything but a request we built wrong.
fn is_transient(e: &reqwest::Error) -> bool {
    !(e.is_builder() || e.is_redirect() || e.is_status() || e.is_decode())
}

/// The `Retry-After` delay in whole seconds, if the server sent one.
fn retry_after(resp: &Response) -> Option<Duration> {
    let v = resp.headers().get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}
