//! A typed async client for MLflow's tracking REST API 2.0 (feature `tracking`).
//!
//! This is the production twin of the course's tracking lab (c3w1): the same
//! protocol the `mlflow` Python client speaks, documented at
//! <https://mlflow.org/docs/latest/api_reference/rest-api.html>.
//!
//! | piece | what it is |
//! |---|---|
//! | [`TrackingClient`] | experiments, runs, params, metrics, tags, `log-batch`, metric history, searches, artifacts |
//! | [`model_registry`] | the Model Registry on the same client: registered models, versions, stages, aliases, tags; [`TrackingClient::register_model_folder`] publishes a model folder as a version ([`RegisterModel`], [`Provenance`]) |
//! | [`TrackingConfig`], [`RetryPolicy`] | where the server is; timeouts; exponential backoff with jitter on connection errors, 429 and 5xx |
//! | [`LogBatch`] | a `log-batch` payload, split to the server's limits (1000 metrics, 100 params, 100 tags, 1000 entities per call) |
//! | [`MetricLogger`] | a buffered background logger for training loops that loses nothing across a server restart |
//! | [`types`] | plain serde types in MLflow's JSON shapes: [`Experiment`], [`Run`], [`RunInfo`], [`Metric`], [`RegisteredModel`], [`ModelVersion`], ... |
//! | [`ErrorCode`] | MLflow's `error_code`, carried by [`crate::Error::Mlflow`] with the HTTP status |
//! | [`LocalServer`], [`shared_server_url`] | a real `mlflow server` on 127.0.0.1 for tests, labs and the grader |
//! | [`FaultProxy`] | a loopback proxy that injects 5xx/429 answers and dropped connections (a mock, for faults a real server cannot be made to produce) |
//!
//! ```no_run
//! # async fn demo() -> kernels::Result<()> {
//! use kernels::tracking::{CreateRun, LogBatch, Metric, RunStatus, TrackingClient, TrackingConfig};
//!
//! let client = TrackingClient::new(TrackingConfig::new("http://127.0.0.1:5000"))?;
//! let exp = client.get_or_create_experiment("hnsw-sweep").await?;
//! let run = client.create_run(&CreateRun::new(&exp).name("m16-ef200")).await?;
//! let id = &run.info.run_id;
//! let batch = LogBatch::new().param("m", "16").metric(Metric::new("recall@10", 0.97, 0));
//! client.log_batch(id, &batch).await?;
//! client.end_run(id, RunStatus::Finished).await?;
//! # Ok(()) }
//! ```
//!
//! Artifacts go through the server's artifact proxy, so the server must be
//! started with `--default-artifact-root mlflow-artifacts:/` and
//! `--artifacts-destination DIR` (see [`artifacts`]).

pub mod artifacts;
pub mod batch;
pub mod client;
pub mod error;
pub mod fault_proxy;
pub mod local_server;
pub mod logger;
pub mod model_registry;
pub mod retry;
pub mod types;

pub use artifacts::proxy_root;
pub use batch::{LogBatch, MAX_ENTITIES_PER_BATCH, MAX_METRICS_PER_BATCH, MAX_PARAMS_PER_BATCH, MAX_TAGS_PER_BATCH};
pub use client::{CreateRun, SearchExperiments, SearchRuns, TrackingClient, TrackingConfig, collect_pages};
pub use error::{ErrorCode, error_code, is_already_exists, is_not_found};
pub use fault_proxy::{Action, FaultProxy};
pub use local_server::{LocalServer, LocalServerConfig, default_python, free_port, health, shared_server_url};
pub use logger::{LoggerStats, MetricLogger, MetricLoggerConfig};
pub use model_registry::{
    CreateModelVersion, CreateRegisteredModel, Provenance, RegisterModel, RegisteredVersion, SearchModels,
    TAG_MANIFEST_DIGEST, TAG_REGISTRY_REFERENCE, TAG_SIGNER_KEY_ID,
};
pub use retry::RetryPolicy;
pub use types::{
    Experiment, FileInfo, LifecycleStage, Metric, ModelStage, ModelVersion, ModelVersionStatus, Page, Param,
    RegisteredModel, RegisteredModelAlias, Run, RunData, RunInfo, RunStatus, RunTag, ViewType, now_millis,
};
