//! MLflow's Model Registry through the same client: registered models, model versions, stages,
//! aliases and tags, and [`TrackingClient::register_model_folder`], which publishes a model folder
//! as a new model version.
//!
//! Each method is one endpoint of the Model Registry REST API 2.0
//! (<https://mlflow.org/docs/latest/api_reference/rest-api.html>, `registered-models/*` and
//! `model-versions/*`; the HTTP methods are those of `mlflow/protos/model_registry.proto`: GET for
//! reads, POST for creates and tags, DELETE with a JSON body for deletes). Errors are the client's:
//! a taken name is [`crate::Error::Mlflow`] with [`super::ErrorCode::ResourceAlreadyExists`]
//! ([`super::is_already_exists`]), an unknown one `RESOURCE_DOES_NOT_EXIST`, a name with `/` or `:`
//! `INVALID_PARAMETER_VALUE`, an unreachable server [`crate::Error::TrackingTransport`].
//!
//! A model version does not hold files: its `source` points at artifacts logged to a run.
//! [`TrackingClient::register_model_folder`] does the whole round: a run in an experiment, the
//! folder's files uploaded as that run's artifacts under `artifact_path`, then a version with source
//! `runs:/<run_id>/<artifact_path>`, tagged with where it came from ([`Provenance`]: the
//! `kernels::registry` reference, manifest digest and signer key id, when the caller has them).
//! This module does not depend on the `registry` feature; the `sovereign registry mlflow-register`
//! command is the bridge that verifies a registry version and passes its provenance here.

use std::path::{Path, PathBuf};

use reqwest::Method;
use serde::{Deserialize, Serialize};

use super::batch::LogBatch;
use super::client::{CreateRun, Empty, TrackingClient, collect_pages, page};
use super::types::{ModelStage, ModelVersion, Page, RegisteredModel, RunStatus, RunTag};
use crate::{Error, Result};

/// Version tag: the `name@version` of the `kernels::registry` version this was published from.
pub const TAG_REGISTRY_REFERENCE: &str = "kernels.registry.reference";
/// Version tag: the BLAKE3 digest (hex) of that version's signed manifest.
pub const TAG_MANIFEST_DIGEST: &str = "kernels.registry.manifest";
/// Version tag: the key id of the manifest's signer.
pub const TAG_SIGNER_KEY_ID: &str = "kernels.registry.signer";

/// What [`TrackingClient::create_registered_model`] sends (`registered-models/create`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CreateRegisteredModel {
    /// Unique name (no `/` or `:`).
    pub name: String,
    /// Initial tags.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<RunTag>,
    /// Free text shown in the UI.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl CreateRegisteredModel {
    /// A model named `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into(), ..Self::default() }
    }

    /// Adds a tag.
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags.push(RunTag::new(key, value));
        self
    }

    /// Sets the description.
    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.description = Some(text.into());
        self
    }
}

/// What [`TrackingClient::create_model_version`] sends (`model-versions/create`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CreateModelVersion {
    /// The registered model (must exist).
    pub name: String,
    /// Where the files are: `runs:/<run_id>/<path>` (then `run_id` must be that run) or an artifact URI.
    pub source: String,
    /// The run that produced the version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// Initial tags.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<RunTag>,
    /// A link to the run (e.g. in another workspace).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_link: Option<String>,
    /// Free text shown in the UI.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl CreateModelVersion {
    /// A version of `name` whose files are at `source`.
    pub fn new(name: impl Into<String>, source: impl Into<String>) -> Self {
        Self { name: name.into(), source: source.into(), ..Self::default() }
    }

    /// Sets the producing run.
    pub fn run_id(mut self, run_id: impl Into<String>) -> Self {
        self.run_id = Some(run_id.into());
        self
    }

    /// Adds a tag.
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags.push(RunTag::new(key, value));
        self
    }

    /// Sets the description.
    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.description = Some(text.into());
        self
    }
}

/// A search of registered models or of model versions (`registered-models/search`,
/// `model-versions/search`; both GET with the same query fields).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SearchModels {
    /// Filter such as `name LIKE 'fraud%'`, or for versions `name = 'fraud'` and
    /// ``tags.`kernels.registry.manifest` = '<hex>'``.
    pub filter: Option<String>,
    /// Page size (server defaults: 100 models, 200 000 versions).
    pub max_results: Option<u32>,
    /// Sort keys such as `name ASC` or `version_number DESC`.
    pub order_by: Vec<String>,
    /// Token of the page to fetch.
    pub page_token: Option<String>,
}

impl SearchModels {
    /// A search with a filter.
    pub fn filter(filter: impl Into<String>) -> Self {
        Self { filter: Some(filter.into()), ..Self::default() }
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

    fn query(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        if let Some(f) = &self.filter {
            q.push(("filter", f.clone()));
        }
        if let Some(n) = self.max_results {
            q.push(("max_results", n.to_string()));
        }
        q.extend(self.order_by.iter().map(|o| ("order_by", o.clone())));
        if let Some(t) = &self.page_token {
            q.push(("page_token", t.clone()));
        }
        q
    }
}

/// Where a model version came from in a `kernels::registry`: each part is optional and becomes a
/// version tag ([`TAG_REGISTRY_REFERENCE`], [`TAG_MANIFEST_DIGEST`], [`TAG_SIGNER_KEY_ID`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Provenance {
    /// `name@version` in the registry.
    pub reference: Option<String>,
    /// The signed manifest's BLAKE3 digest, hex.
    pub manifest_digest: Option<String>,
    /// The signer's key id.
    pub signer_key_id: Option<String>,
}

impl Provenance {
    /// The tags that record it (only the parts given).
    pub fn tags(&self) -> Vec<RunTag> {
        [
            (TAG_REGISTRY_REFERENCE, &self.reference),
            (TAG_MANIFEST_DIGEST, &self.manifest_digest),
            (TAG_SIGNER_KEY_ID, &self.signer_key_id),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| RunTag::new(k, v.clone())))
        .collect()
    }
}

/// What [`TrackingClient::register_model_folder`] publishes, and where.
#[derive(Debug, Clone, PartialEq)]
pub struct RegisterModel {
    /// The registered model's name (created if missing).
    pub name: String,
    /// The local model folder (e.g. what `kernels::ml::io` saved: safetensors + JSON); every file
    /// under it is uploaded, keeping the layout.
    pub folder: PathBuf,
    /// The experiment of the run that carries the artifacts (created if missing; default: `name`).
    pub experiment: String,
    /// The folder's place in the run's artifacts (default `model`).
    pub artifact_path: String,
    /// The run's display name (the server invents one when absent).
    pub run_name: Option<String>,
    /// The version's description.
    pub description: Option<String>,
    /// Registry provenance, recorded as tags on the version and on the run.
    pub provenance: Provenance,
    /// More tags, on the version and on the run.
    pub tags: Vec<RunTag>,
    /// Metrics and params (and run-only tags) logged to the run, e.g. the manifest's metrics.
    pub log: LogBatch,
    /// Aliases to point at the new version (e.g. `champion`); moved if they pointed elsewhere.
    pub aliases: Vec<String>,
    /// When the provenance has a manifest digest and a version of `name` already carries it, return
    /// that version (its aliases set) instead of registering the same files again. On by default.
    pub reuse_existing: bool,
}

impl RegisterModel {
    /// Publishes `folder` as a new version of `name`, in experiment `name`, under artifact path `model`.
    pub fn new(name: impl Into<String>, folder: impl Into<PathBuf>) -> Self {
        let name = name.into();
        Self {
            experiment: name.clone(),
            name,
            folder: folder.into(),
            artifact_path: "model".to_owned(),
            run_name: None,
            description: None,
            provenance: Provenance::default(),
            tags: Vec::new(),
            log: LogBatch::default(),
            aliases: Vec::new(),
            reuse_existing: true,
        }
    }

    /// Sets the experiment.
    pub fn experiment(mut self, name: impl Into<String>) -> Self {
        self.experiment = name.into();
        self
    }

    /// Sets the provenance.
    pub fn provenance(mut self, provenance: Provenance) -> Self {
        self.provenance = provenance;
        self
    }

    /// Adds a tag (version and run).
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags.push(RunTag::new(key, value));
        self
    }

    /// Adds an alias.
    pub fn alias(mut self, alias: impl Into<String>) -> Self {
        self.aliases.push(alias.into());
        self
    }
}

/// What [`TrackingClient::register_model_folder`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct RegisteredVersion {
    /// The model version (as the server reports it after the aliases were set).
    pub version: ModelVersion,
    /// The run carrying the artifacts.
    pub run_id: String,
    /// The version's source, `runs:/<run_id>/<artifact_path>`.
    pub source: String,
    /// The artifact paths uploaded, sorted (empty when an existing version was reused).
    pub files: Vec<String>,
    /// Whether a new version was created (false: [`RegisterModel::reuse_existing`] found one).
    pub created: bool,
}

#[derive(Deserialize)]
struct ModelResp {
    registered_model: RegisteredModel,
}

#[derive(Deserialize)]
struct VersionResp {
    model_version: ModelVersion,
}

impl TrackingClient {
    // ---- registered models -------------------------------------------------

    /// Creates a registered model (`registered-models/create`); a taken name fails with
    /// `RESOURCE_ALREADY_EXISTS`.
    pub async fn create_registered_model(&self, model: &CreateRegisteredModel) -> Result<RegisteredModel> {
        let r: ModelResp = self.post("registered-models/create", model).await?;
        Ok(r.registered_model)
    }

    /// The registered model `name` with its latest versions, tags and aliases (`registered-models/get`).
    pub async fn get_registered_model(&self, name: &str) -> Result<RegisteredModel> {
        let r: ModelResp = self.get("registered-models/get", &[("name", name)]).await?;
        Ok(r.registered_model)
    }

    /// The registered model `model.name`, created (with `model`'s tags and description) if missing.
    /// An existing model is returned as it is. Safe to race: a lost `create` falls back to `get`.
    pub async fn get_or_create_registered_model(&self, model: &CreateRegisteredModel) -> Result<RegisteredModel> {
        match self.create_registered_model(model).await {
            Ok(m) => Ok(m),
            Err(e) if super::is_already_exists(&e) => self.get_registered_model(&model.name).await,
            Err(e) => Err(e),
        }
    }

    /// One page of registered models (`registered-models/search`).
    pub async fn search_registered_models(&self, search: &SearchModels) -> Result<Page<RegisteredModel>> {
        #[derive(Deserialize)]
        struct Resp {
            #[serde(default)]
            registered_models: Vec<RegisteredModel>,
            #[serde(default)]
            next_page_token: Option<String>,
        }
        let q = search.query();
        let q: Vec<(&str, &str)> = q.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r: Resp = self.get("registered-models/search", &q).await?;
        Ok(page(r.registered_models, r.next_page_token))
    }

    /// Every registered model matching `search`, following page tokens.
    pub async fn search_registered_models_all(&self, search: &SearchModels) -> Result<Vec<RegisteredModel>> {
        collect_pages(search.page_token.clone(), |token| {
            let req = SearchModels { page_token: token, ..search.clone() };
            async move { self.search_registered_models(&req).await }
        })
        .await
    }

    /// Deletes a registered model and all its versions (`registered-models/delete`; not soft).
    pub async fn delete_registered_model(&self, name: &str) -> Result<()> {
        let body = serde_json::json!({ "name": name });
        self.send_json::<_, Empty>(Method::DELETE, "registered-models/delete", &body).await.map(drop)
    }

    /// Sets a tag on a registered model (`registered-models/set-tag`).
    pub async fn set_registered_model_tag(&self, name: &str, key: &str, value: &str) -> Result<()> {
        let body = serde_json::json!({ "name": name, "key": key, "value": value });
        self.post::<_, Empty>("registered-models/set-tag", &body).await.map(drop)
    }

    // ---- model versions ----------------------------------------------------

    /// Registers a new version (`model-versions/create`); the server numbers it.
    pub async fn create_model_version(&self, version: &CreateModelVersion) -> Result<ModelVersion> {
        let r: VersionResp = self.post("model-versions/create", version).await?;
        Ok(r.model_version)
    }

    /// Version `version` of `name` (`model-versions/get`).
    pub async fn get_model_version(&self, name: &str, version: &str) -> Result<ModelVersion> {
        let r: VersionResp = self.get("model-versions/get", &[("name", name), ("version", version)]).await?;
        Ok(r.model_version)
    }

    /// One page of model versions (`model-versions/search`).
    pub async fn search_model_versions(&self, search: &SearchModels) -> Result<Page<ModelVersion>> {
        #[derive(Deserialize)]
        struct Resp {
            #[serde(default)]
            model_versions: Vec<ModelVersion>,
            #[serde(default)]
            next_page_token: Option<String>,
        }
        let q = search.query();
        let q: Vec<(&str, &str)> = q.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r: Resp = self.get("model-versions/search", &q).await?;
        Ok(page(r.model_versions, r.next_page_token))
    }

    /// Every model version matching `search`, following page tokens.
    pub async fn search_model_versions_all(&self, search: &SearchModels) -> Result<Vec<ModelVersion>> {
        collect_pages(search.page_token.clone(), |token| {
            let req = SearchModels { page_token: token, ..search.clone() };
            async move { self.search_model_versions(&req).await }
        })
        .await
    }

    /// The latest version of `name` in each of `stages` (every stage when empty)
    /// (`registered-models/get-latest-versions`).
    pub async fn get_latest_versions(&self, name: &str, stages: &[ModelStage]) -> Result<Vec<ModelVersion>> {
        #[derive(Deserialize)]
        struct Resp {
            #[serde(default)]
            model_versions: Vec<ModelVersion>,
        }
        let stages: Vec<&str> = stages.iter().map(|s| s.as_str()).collect();
        let body = serde_json::json!({ "name": name, "stages": stages });
        let r: Resp = self.post("registered-models/get-latest-versions", &body).await?;
        Ok(r.model_versions)
    }

    /// Moves a version to `stage` (`model-versions/transition-stage`); with `archive_existing`, the
    /// versions that were in that stage move to `Archived`. Stages are deprecated in favour of aliases.
    pub async fn transition_model_version_stage(
        &self,
        name: &str,
        version: &str,
        stage: ModelStage,
        archive_existing: bool,
    ) -> Result<ModelVersion> {
        let body = serde_json::json!({
            "name": name,
            "version": version,
            "stage": stage.as_str(),
            "archive_existing_versions": archive_existing,
        });
        let r: VersionResp = self.post("model-versions/transition-stage", &body).await?;
        Ok(r.model_version)
    }

    /// Sets a tag on a model version (`model-versions/set-tag`).
    pub async fn set_model_version_tag(&self, name: &str, version: &str, key: &str, value: &str) -> Result<()> {
        let body = serde_json::json!({ "name": name, "version": version, "key": key, "value": value });
        self.post::<_, Empty>("model-versions/set-tag", &body).await.map(drop)
    }

    /// Deletes a model version (`model-versions/delete`); its run and artifacts stay.
    pub async fn delete_model_version(&self, name: &str, version: &str) -> Result<()> {
        let body = serde_json::json!({ "name": name, "version": version });
        self.send_json::<_, Empty>(Method::DELETE, "model-versions/delete", &body).await.map(drop)
    }

    /// Where a client downloads the version's files from (`model-versions/get-download-uri`).
    pub async fn get_model_version_download_uri(&self, name: &str, version: &str) -> Result<String> {
        #[derive(Deserialize)]
        struct Resp {
            artifact_uri: String,
        }
        let r: Resp = self.get("model-versions/get-download-uri", &[("name", name), ("version", version)]).await?;
        Ok(r.artifact_uri)
    }

    // ---- aliases -----------------------------------------------------------

    /// Points `alias` of `name` at `version`, moving it if it pointed elsewhere
    /// (`POST registered-models/alias`).
    pub async fn set_registered_model_alias(&self, name: &str, alias: &str, version: &str) -> Result<()> {
        let body = serde_json::json!({ "name": name, "alias": alias, "version": version });
        self.post::<_, Empty>("registered-models/alias", &body).await.map(drop)
    }

    /// Removes `alias` from `name` (`DELETE registered-models/alias`).
    pub async fn delete_registered_model_alias(&self, name: &str, alias: &str) -> Result<()> {
        let body = serde_json::json!({ "name": name, "alias": alias });
        self.send_json::<_, Empty>(Method::DELETE, "registered-models/alias", &body).await.map(drop)
    }

    /// The version `alias` of `name` points at (`GET registered-models/alias`). An unknown alias is
    /// `INVALID_PARAMETER_VALUE` (MLflow's choice), an unknown model `RESOURCE_DOES_NOT_EXIST`.
    pub async fn get_model_version_by_alias(&self, name: &str, alias: &str) -> Result<ModelVersion> {
        let r: VersionResp = self.get("registered-models/alias", &[("name", name), ("alias", alias)]).await?;
        Ok(r.model_version)
    }

    // ---- publishing a model folder ------------------------------------------

    /// Publishes a local model folder as a new version of a registered model: creates the model if
    /// missing, uploads the folder's files as artifacts of a new run, registers a version whose
    /// source is `runs:/<run_id>/<artifact_path>`, tagged with the [`Provenance`], and points the
    /// aliases at it.
    ///
    /// The folder is checked before anything is sent. If an upload fails the run is ended as
    /// `FAILED` and no version is created. With [`RegisterModel::reuse_existing`] and a manifest
    /// digest, publishing the same registry version twice returns the first MLflow version.
    pub async fn register_model_folder(&self, spec: &RegisterModel) -> Result<RegisteredVersion> {
        let folder = &spec.folder;
        if !has_files(folder)? {
            return Err(Error::InvalidParameter(format!("model folder {} holds no file", folder.display())));
        }
        self.get_or_create_registered_model(&CreateRegisteredModel::new(&spec.name)).await?;
        let mut tags = spec.provenance.tags();
        tags.extend(spec.tags.iter().cloned());

        if let (true, Some(digest)) = (spec.reuse_existing, &spec.provenance.manifest_digest)
            && let Some(existing) = self.find_version_by_manifest(&spec.name, digest).await?
        {
            let version = self.set_aliases(&existing, &spec.aliases).await?;
            let source = version.source.clone();
            return Ok(RegisteredVersion {
                run_id: version.run_id.clone(),
                version,
                source,
                files: Vec::new(),
                created: false,
            });
        }

        // ANCHOR: register_model_folder
        let experiment_id = self.get_or_create_experiment(&spec.experiment).await?;
        let mut run = CreateRun::new(experiment_id);
        run.run_name = spec.run_name.clone();
        run.tags = tags.clone();
        let run = self.create_run(&run).await?;
        let run_id = run.info.run_id.clone();
        let uploaded = async {
            if !spec.log.is_empty() {
                self.log_batch(&run_id, &spec.log).await?;
            }
            self.upload_artifacts(&run.info, folder, Some(spec.artifact_path.as_str())).await
        }
        .await;
        let files = match uploaded {
            Ok(files) => files,
            Err(e) => {
                // Best effort: the run shows as failed in the UI; the upload's error is the one reported.
                let _ = self.end_run(&run_id, RunStatus::Failed).await;
                return Err(e);
            }
        };
        self.end_run(&run_id, RunStatus::Finished).await?;

        let source = format!("runs:/{run_id}/{}", spec.artifact_path.trim_matches('/'));
        let mut create = CreateModelVersion::new(&spec.name, &source).run_id(&run_id);
        create.tags = tags;
        create.description = spec.description.clone();
        let version = self.create_model_version(&create).await?;
        // ANCHOR_END: register_model_folder
        let version = self.set_aliases(&version, &spec.aliases).await?;
        Ok(RegisteredVersion { version, run_id, source, files, created: true })
    }

    /// The version of `name` tagged with manifest digest `digest`, if any (the lowest number).
    pub async fn find_version_by_manifest(&self, name: &str, digest: &str) -> Result<Option<ModelVersion>> {
        if digest.is_empty() || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::InvalidParameter(format!("manifest digest {digest:?} is not hex")));
        }
        // Filter on the tag only (a digest needs no quoting; a model name might) and match the name here.
        let search = SearchModels::filter(format!("tags.`{TAG_MANIFEST_DIGEST}` = '{digest}'"));
        let mut found: Vec<ModelVersion> =
            self.search_model_versions_all(&search).await?.into_iter().filter(|v| v.name == name).collect();
        found.sort_by_key(ModelVersion::number);
        Ok(found.into_iter().next())
    }

    async fn set_aliases(&self, version: &ModelVersion, aliases: &[String]) -> Result<ModelVersion> {
        if aliases.is_empty() {
            return Ok(version.clone());
        }
        for alias in aliases {
            self.set_registered_model_alias(&version.name, alias, &version.version).await?;
        }
        self.get_model_version(&version.name, &version.version).await
    }
}

/// Whether `folder` is a folder with at least one file somewhere below it.
fn has_files(folder: &Path) -> Result<bool> {
    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
        move |source| Error::TrackingIo { path: path.to_owned(), source }
    }
    if !folder.is_dir() {
        return Err(Error::InvalidParameter(format!("model folder {} is not a folder", folder.display())));
    }
    let mut stack = vec![folder.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).map_err(io(&dir))? {
            let entry = entry.map_err(io(&dir))?;
            if entry.file_type().map_err(io(&entry.path()))?.is_dir() {
                stack.push(entry.path());
            } else {
                return Ok(true);
            }
        }
    }
    Ok(false)
}
