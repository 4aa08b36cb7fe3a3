//! [`TrackingClient`]: where every request goes through, plus experiments and runs.
//!
//! Every endpoint of MLflow's tracking REST API 2.0 lives under
//! `<base_url>/api/2.0/mlflow/<endpoint>`: reads are `GET` with query
//! parameters (`experiments/get?experiment_id=1`), writes are `POST` with a
//! JSON body, which MLflow only accepts with `Content-Type: application/json`
//! (reqwest's `.json(&body)` sets it). A success is any 2xx with a JSON body;
//! a failure is a non-2xx with MLflow's error JSON ([`Error::from_response`]).
//!
//! The path of one call: an endpoint method (e.g. [`TrackingClient::create_run`])
//! → the given [`TrackingClient::post`]/[`TrackingClient::get`] helpers →
//! [`TrackingClient::execute`] (the retry loop, task `c3w1.retry`) →
//! [`TrackingClient::send_once`] (one attempt) → reqwest.

use std::time::Duration;

use reqwest::{RequestBuilder, Response, Url};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::retry::RetryPolicy;
use crate::types::{Experiment, Run, RunTag, now_millis};

/// Where the server is and how to talk to it.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackingConfig {
    /// Root URL of the tracking server, e.g. `http://127.0.0.1:5000` (a path prefix is kept).
    pub base_url: String,
    /// Retries of transient failures.
    pub retry: RetryPolicy,
    /// Limit of one attempt, from connecting to the last byte of the answer.
    pub timeout: Duration,
}

impl TrackingConfig {
    /// A server at `base_url`, [`RetryPolicy::default`], 30 s per attempt. Given.
    pub fn new(base_url: impl Into<String>) -> Self {
        Self { base_url: base_url.into(), retry: RetryPolicy::default(), timeout: Duration::from_secs(30) }
    }

    /// The same configuration with another retry policy. Given.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The same configuration with another per-attempt timeout. Given.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// What [`TrackingClient::create_run`] sends (`runs/create`). Given.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CreateRun {
    /// The experiment the run belongs to.
    pub experiment_id: String,
    /// Display name (the server invents one when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_name: Option<String>,
    /// Start, milliseconds since the Unix epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<i64>,
    /// Initial tags.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<RunTag>,
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
/// Cheap to clone: clones share one connection pool (keep one client and
/// reuse it; a new `reqwest::Client` per request pays a new TCP connection
/// each time).
#[derive(Debug, Clone)]
pub struct TrackingClient {
    /// The HTTP client: one connection pool, with the configured timeout.
    http: reqwest::Client,
    /// `base_url` parsed, its path ending in `/` so that joining keeps any prefix.
    base: Url,
    /// What the client was built with.
    config: TrackingConfig,
}

impl TrackingClient {
    // ANCHOR: client_new
    /// Task c3w1.client (part of 15 points): a client for the server in `config`.
    ///
    /// Parse `config.base_url` as a [`Url`]; it must be `http` or `https` and
    /// able to be a base (`!url.cannot_be_a_base()`), else
    /// [`Error::InvalidArgument`] naming the URL. Make sure its path ends in
    /// `/` (`http://h:1/mlflow` → `http://h:1/mlflow/`, so that
    /// [`TrackingClient::api_url`] keeps the prefix). Build one
    /// `reqwest::Client` with `config.timeout` as its timeout.
    pub fn new(config: TrackingConfig) -> Result<Self> {
        // ANCHOR_END: client_new
        // BEGIN SOLUTION c3w1.client
        let mut base = Url::parse(&config.base_url)
            .map_err(|e| Error::InvalidArgument(format!("tracking URL {:?}: {e}", config.base_url)))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(Error::InvalidArgument(format!("tracking URL {:?} is not an http(s) URL", config.base_url)));
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|e| Error::InvalidArgument(format!("building the HTTP client: {e}")))?;
        Ok(Self { http, base, config })
        // END SOLUTION
    }

    /// The configuration this client was built with. Given.
    pub fn config(&self) -> &TrackingConfig {
        &self.config
    }

    /// The base URL, its path ending in `/`. Given.
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    /// `<base>/api/2.0/mlflow/<endpoint>`, e.g. for `runs/create`. Given.
    pub fn api_url(&self, endpoint: &str) -> Url {
        self.base.join(&format!("api/2.0/mlflow/{endpoint}")).expect("endpoint names are valid URL paths")
    }

    /// The shared HTTP client, for building requests (`self.http().post(url)`). Given.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    // ANCHOR: send_once
    /// Task c3w1.client (part of 15 points): one attempt at `request`, the `attempt`-th for `endpoint`.
    ///
    /// - a 2xx answer: return the [`Response`] as it is (the caller reads the body);
    /// - any other status: read the whole body and return
    ///   [`Error::from_response`]`(endpoint, status, &body, attempt)`;
    /// - no answer at all (`send()` failed): [`Error::Transport`] with
    ///   `attempts: attempt` and reqwest's error as the source.
    pub async fn send_once(&self, endpoint: &str, request: RequestBuilder, attempt: u32) -> Result<Response> {
        // ANCHOR_END: send_once
        // BEGIN SOLUTION c3w1.client
        match request.send().await {
            Ok(resp) if resp.status().is_success() => Ok(resp),
            Ok(resp) => {
                let status = resp.status().as_u16();
                let body = resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
                Err(Error::from_response(endpoint, status, &body, attempt))
            }
            Err(source) => Err(Error::Transport { endpoint: endpoint.to_owned(), attempts: attempt, source }),
        }
        // END SOLUTION
    }

    // ANCHOR: execute
    /// Task c3w1.retry (part of 10 points): sends the request `build` makes
    /// until it succeeds, fails for good, or runs out of attempts.
    ///
    /// `build` is called once per attempt (a request with a body can only be
    /// sent once, so each retry needs a fresh one). Attempt `n` (1-based) goes
    /// through [`TrackingClient::send_once`]; when it fails with an error that
    /// [`crate::retry::is_retryable`] accepts and fewer than
    /// `config.retry.max_attempts` attempts were made (count at least one),
    /// sleep [`RetryPolicy::delay`]`(n)` (`tokio::time::sleep`) and try again.
    /// Otherwise return that attempt's result: the error then says how many
    /// attempts were made.
    ///
    /// The lab starts with a single attempt and no retries.
    pub async fn execute(&self, endpoint: &str, build: impl Fn() -> RequestBuilder) -> Result<Response> {
        // ANCHOR_END: execute
        // BEGIN SOLUTION c3w1.retry stub: self.send_once(endpoint, build(), 1).await
        let policy = &self.config.retry;
        let max_attempts = policy.max_attempts.max(1);
        let mut attempt = 1;
        loop {
            match self.send_once(endpoint, build(), attempt).await {
                Err(e) if attempt < max_attempts && crate::retry::is_retryable(&e) => {
                    tokio::time::sleep(policy.delay(attempt)).await;
                    attempt += 1;
                }
                result => return result,
            }
        }
        // END SOLUTION
    }

    /// `POST <api>/<endpoint>` with `body` as JSON, through [`TrackingClient::execute`];
    /// decodes the JSON answer as `T`. Given.
    ///
    /// Endpoints that answer `{}` decode as [`serde::de::IgnoredAny`].
    pub async fn post<B: Serialize + ?Sized, T: DeserializeOwned>(&self, endpoint: &str, body: &B) -> Result<T> {
        let url = self.api_url(endpoint);
        let resp = self.execute(endpoint, || self.http.post(url.clone()).json(body)).await?;
        decode(endpoint, resp).await
    }

    /// `GET <api>/<endpoint>?<query>` through [`TrackingClient::execute`]; decodes the JSON answer as `T`. Given.
    pub async fn get<T: DeserializeOwned>(&self, endpoint: &str, query: &[(&str, &str)]) -> Result<T> {
        let mut url = self.api_url(endpoint);
        url.query_pairs_mut().extend_pairs(query);
        let resp = self.execute(endpoint, || self.http.get(url.clone())).await?;
        decode(endpoint, resp).await
    }

    // ---- experiments -------------------------------------------------------

    /// Task c3w1.client (part of 15 points): creates the experiment `name`
    /// and returns its id (`POST experiments/create` with `{"name": …}`,
    /// answer `{"experiment_id": "…"}`).
    ///
    /// A name already taken fails with MLflow's `RESOURCE_ALREADY_EXISTS` (HTTP 400).
    pub async fn create_experiment(&self, name: &str) -> Result<String> {
        // BEGIN SOLUTION c3w1.client
        #[derive(Serialize)]
        struct Request<'a> {
            name: &'a str,
        }
        #[derive(Deserialize)]
        struct Answer {
            experiment_id: String,
        }
        let answer: Answer = self.post("experiments/create", &Request { name }).await?;
        Ok(answer.experiment_id)
        // END SOLUTION
    }

    // ANCHOR: get_experiment
    /// The experiment with this id (`GET experiments/get?experiment_id=…`,
    /// answer `{"experiment": {…}}`). Given: the pattern for the other endpoints.
    pub async fn get_experiment(&self, experiment_id: &str) -> Result<Experiment> {
        #[derive(Deserialize)]
        struct Answer {
            experiment: Experiment,
        }
        let answer: Answer = self.get("experiments/get", &[("experiment_id", experiment_id)]).await?;
        Ok(answer.experiment)
    }
    // ANCHOR_END: get_experiment

    /// Task c3w1.client (part of 15 points): the experiment named `name`
    /// (`GET experiments/get-by-name?experiment_name=…`, answer `{"experiment": {…}}`).
    ///
    /// An unknown name fails with `RESOURCE_DOES_NOT_EXIST` (HTTP 404).
    pub async fn get_experiment_by_name(&self, name: &str) -> Result<Experiment> {
        // BEGIN SOLUTION c3w1.client
        #[derive(Deserialize)]
        struct Answer {
            experiment: Experiment,
        }
        let answer: Answer = self.get("experiments/get-by-name", &[("experiment_name", name)]).await?;
        Ok(answer.experiment)
        // END SOLUTION
    }

    // ---- runs --------------------------------------------------------------

    /// Task c3w1.client (part of 15 points): creates a run (`POST runs/create`
    /// with the [`CreateRun`] as body, answer `{"run": {…}}`). The new run is `RUNNING`.
    pub async fn create_run(&self, run: &CreateRun) -> Result<Run> {
        // BEGIN SOLUTION c3w1.client
        #[derive(Deserialize)]
        struct Answer {
            run: Run,
        }
        let answer: Answer = self.post("runs/create", run).await?;
        Ok(answer.run)
        // END SOLUTION
    }

    /// Task c3w1.client (part of 15 points): the run with this id, with the
    /// latest value of each metric (`GET runs/get?run_id=…`, answer `{"run": {…}}`).
    pub async fn get_run(&self, run_id: &str) -> Result<Run> {
        // BEGIN SOLUTION c3w1.client
        #[derive(Deserialize)]
        struct Answer {
            run: Run,
        }
        let answer: Answer = self.get("runs/get", &[("run_id", run_id)]).await?;
        Ok(answer.run)
        // END SOLUTION
    }
}

/// Reads a 2xx answer's body and decodes it as `T`.
async fn decode<T: DeserializeOwned>(endpoint: &str, resp: Response) -> Result<T> {
    let body =
        resp.bytes().await.map_err(|source| Error::Transport { endpoint: endpoint.to_owned(), attempts: 1, source })?;
    serde_json::from_slice(&body).map_err(|e| Error::Response {
        endpoint: endpoint.to_owned(),
        message: format!("{e}; body: {}", String::from_utf8_lossy(&body[..body.len().min(300)])),
    })
}
