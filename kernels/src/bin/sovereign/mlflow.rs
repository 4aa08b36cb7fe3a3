//! `sovereign registry mlflow-register`: a verified registry version published to an MLflow Model Registry
//! with `kernels::tracking` (feature `tracking`, part of `cli`), so a team sees it in the MLflow UI it uses.
//!
//! ```text
//! sovereign registry mlflow-register --registry reg fraud@1 --keyring keys --tracking-uri http://127.0.0.1:5000 --alias champion
//! ```
//!
//! The version is verified and pulled into a scratch folder; its artefacts become the artifacts of a run
//! (under `model/`), and a model version with source `runs:/<run_id>/model` is created, tagged with the
//! manifest digest, `name@version` and signer key id (`kernels.registry.*`), with the manifest's metrics
//! logged to the run. Running it again for the same manifest returns the existing MLflow version.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use kernels::tracking::{LogBatch, Metric, Provenance, RegisterModel, TrackingClient, TrackingConfig};
use serde_json::json;

use super::VersionArgs;
use crate::{print_json, spinner};

/// Arguments of `registry mlflow-register`.
#[derive(Args)]
pub struct MlflowRegisterArgs {
    #[command(flatten)]
    at: VersionArgs,
    /// The MLflow tracking server (default: $MLFLOW_TRACKING_URI, else http://127.0.0.1:5000;
    /// $MLFLOW_TRACKING_TOKEN is sent as a bearer token).
    #[arg(long)]
    tracking_uri: Option<String>,
    /// The registered model's name in MLflow (default: the version's model name).
    #[arg(long)]
    name: Option<String>,
    /// The MLflow experiment of the run that carries the artefacts (default: the MLflow model name).
    #[arg(long)]
    experiment: Option<String>,
    /// An alias to point at the MLflow version, e.g. champion (repeatable).
    #[arg(long = "alias")]
    aliases: Vec<String>,
    /// Create a new MLflow version even if one already carries this manifest digest.
    #[arg(long)]
    force: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// A scratch folder removed on drop.
struct ScratchDir(PathBuf);

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The bridge between the two registries: verify and pull a version, then publish the verified files with
/// `kernels::tracking` (which knows nothing of `kernels::registry`) and the manifest's identity as tags.
pub fn register(args: &MlflowRegisterArgs) -> Result<()> {
    let (registry, r, ring) = args.at.open()?;
    let scratch = ScratchDir(std::env::temp_dir().join(format!(
        "sovereign-mlflow-{}-{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos())
    )));
    let pb = spinner(format!("verifying and pulling {r}"));
    registry.pull(&r, &ring, &scratch.0).with_context(|| format!("pulling {r}"))?;
    let verified = registry.verify_manifest(&r, &ring)?;
    pb.finish_and_clear();
    // ANCHOR: mlflow_register
    let m = &verified.manifest;
    let name = args.name.clone().unwrap_or_else(|| m.name.clone());
    let mut spec = RegisterModel::new(&name, &scratch.0).provenance(Provenance {
        reference: Some(r.to_string()),
        manifest_digest: Some(verified.digest.to_hex()),
        signer_key_id: Some(verified.key_id.as_str().to_owned()),
    });
    if let Some(e) = &args.experiment {
        spec = spec.experiment(e);
    }
    if let Some(d) = m.training_data {
        spec = spec.tag("kernels.registry.training_data", d.to_hex());
    }
    spec.run_name = Some(r.to_string());
    spec.description = Some(format!("{r} from kernels::registry (manifest {}, verified)", verified.digest));
    spec.aliases = args.aliases.clone();
    spec.reuse_existing = !args.force;
    spec.log = m.metrics.iter().fold(LogBatch::new(), |b, (k, v)| b.metric(Metric::new(k, *v, 0)));
    // ANCHOR_END: mlflow_register
    let mut config = TrackingConfig::from_env();
    if let Some(uri) = &args.tracking_uri {
        config.base_url = uri.clone();
    }
    let client = TrackingClient::new(config)?;
    let pb = spinner(format!("publishing {r} to MLflow at {}", client.config().base_url));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let published = runtime
        .block_on(client.register_model_folder(&spec))
        .with_context(|| format!("registering {r} as MLflow model {name:?} at {}", client.config().base_url))?;
    pb.finish_and_clear();
    let v = &published.version;
    if args.json {
        print_json(&json!({
            "reference": r.to_string(),
            "manifest": verified.digest.to_hex(),
            "key_id": verified.key_id.as_str(),
            "mlflow_name": v.name,
            "mlflow_version": v.version,
            "created": published.created,
            "run_id": published.run_id,
            "source": published.source,
            "aliases": v.aliases,
            "files": published.files,
        }));
    } else {
        let how = if published.created { "registered" } else { "already registered (same manifest)" };
        println!("{how} {r} (verified) as MLflow model {} version {}", v.name, v.version);
        println!("  source {}  run {}", published.source, published.run_id);
        for a in &v.aliases {
            println!("  alias @{a}");
        }
    }
    Ok(())
}
