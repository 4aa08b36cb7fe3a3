//! Dependency pins: harness builds that reuse the workspace test build's artefacts.
//!
//! Cargo resolves features per build: a harness that links `kernels` with one
//! week's features and nothing else enables fewer features of shared
//! dependencies (tokio, syn, hashbrown, …) than `cargo test --workspace
//! --all-features` does. A dependency with other features is another unit with
//! another hash, and so is everything above it: in CI each week's harness
//! rebuilt most of the dependency graph (c3w2 rebuilt parquet and the Delta
//! kernel).
//!
//! With pins on, the harness also depends on every third-party crate the
//! workspace members declare (normal, optional and dev dependencies), with the
//! union of the features they request, plus the `dep/feature` entries of their
//! feature tables: the requests the all-features test build resolves. The
//! resolver then arrives at the test build's feature set for every dependency,
//! and only `kernels` (with the week's own features, as a learner compiles it),
//! the implementation and the harness itself are compiled. Pinned crates that
//! the tests do not use are not linked.
//!
//! Pins are for CI (`cargo xtask ci` sets [`PINS_ENV`]); a learner's grading
//! builds only what the week needs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{Context, Result, bail};

/// Set to `1` to pin harness dependencies to the workspace's all-features resolution.
pub const PINS_ENV: &str = "SOVEREIGN_HARNESS_PINS";

/// Whether grading harnesses are pinned in this process.
pub fn enabled() -> bool {
    std::env::var_os(PINS_ENV).is_some_and(|v| v == "1")
}

/// One third-party dependency as the members request it.
#[derive(Debug, Default, PartialEq, Eq)]
struct Request {
    /// The version requirement (every member must ask for the same one).
    req: String,
    default_features: bool,
    features: BTreeSet<String>,
}

/// The `[dependencies]` lines that pin the harness to the workspace's resolution.
///
/// Pins are named `pin_<n>`, so tests cannot use a crate by accident that a learner's
/// harness lacks; a crate the harness already names in `direct` (serde_json) keeps its
/// name and gets the workspace's features instead (cargo refuses one crate under two names).
pub fn dependency_lines(workspace_root: &Path, direct: &[&str]) -> Result<String> {
    let out = crate::cargo_command()
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(workspace_root)
        .output()
        .context("running cargo metadata for the dependency pins")?;
    if !out.status.success() {
        bail!("cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).context("cargo metadata printed no JSON")?;
    let requests = requests(&meta)?;
    let mut lines = String::from("# Pins (SOVEREIGN_HARNESS_PINS=1): the workspace's third-party requests.\n");
    let mut named = BTreeSet::new();
    for (i, (name, request)) in requests.iter().enumerate() {
        let features: Vec<&String> = request.features.iter().collect();
        let req = &request.req;
        let key = if direct.contains(&name.as_str()) && named.insert(name.clone()) {
            name.clone()
        } else {
            format!("pin_{i}")
        };
        lines.push_str(&format!(
            "{key} = {{ package = {name:?}, version = {req:?}, default-features = {}, features = {features:?} }}\n",
            request.default_features
        ));
    }
    for name in direct {
        if !named.contains(*name) {
            bail!("the workspace requests no {name}, which the harness needs");
        }
    }
    Ok(lines)
}

/// Third-party requests of every member, keyed by package name.
fn requests(meta: &serde_json::Value) -> Result<BTreeMap<String, Request>> {
    let mut out: BTreeMap<String, Request> = BTreeMap::new();
    let packages = meta["packages"].as_array().context("cargo metadata has no packages")?;
    for package in packages {
        let deps = package["dependencies"].as_array().context("a package without dependencies")?;
        // Dependency key (rename or name) → package name, for `dep/feature` entries.
        let mut by_key = BTreeMap::new();
        for dep in deps {
            let name = dep["name"].as_str().context("a dependency without a name")?.to_string();
            let key = dep["rename"].as_str().map_or_else(|| name.clone(), str::to_string);
            if dep["path"].is_string() {
                continue; // a workspace crate: built from its own path, never pinned
            }
            if dep["kind"].as_str() == Some("build") || !dep["target"].is_null() {
                bail!(
                    "{} declares {name} as a build or platform-specific dependency: teach autograder::pins \
                     to pin those before using them",
                    package["name"]
                );
            }
            let req = dep["req"].as_str().context("a dependency without a requirement")?.to_string();
            let request = out.entry(name.clone()).or_insert_with(|| Request { req: req.clone(), ..Request::default() });
            if request.req != req {
                bail!("members ask for {name} {} and {req}: pin one version in [workspace.dependencies]", request.req);
            }
            request.default_features |= dep["uses_default_features"].as_bool().unwrap_or(true);
            for f in dep["features"].as_array().into_iter().flatten() {
                request.features.insert(f.as_str().context("a feature name")?.to_string());
            }
            by_key.insert(key, name);
        }
        // `dep/feature` and `dep?/feature` in the member's own features: on under --all-features.
        for values in package["features"].as_object().into_iter().flat_map(|m| m.values()) {
            for value in values.as_array().into_iter().flatten() {
                let Some((dep, feature)) = value.as_str().and_then(|v| v.split_once('/')) else { continue };
                if let Some(id) = by_key.get(dep.trim_end_matches('?')) {
                    out.get_mut(id).expect("inserted above").features.insert(feature.to_string());
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_unite_features_and_follow_feature_tables() {
        let meta = serde_json::json!({ "packages": [
            { "name": "a", "features": { "tls": ["reqwest/rustls", "dep:reqwest"] }, "dependencies": [
                { "name": "reqwest", "req": "^0.13", "features": ["json"], "uses_default_features": false,
                  "kind": null, "target": null, "rename": null, "optional": true },
                { "name": "kernels", "req": "*", "path": "/w/kernels", "features": [], "uses_default_features": false,
                  "kind": null, "target": null, "rename": null },
            ]},
            { "name": "b", "features": {}, "dependencies": [
                { "name": "reqwest", "req": "^0.13", "features": ["stream"], "uses_default_features": false,
                  "kind": "dev", "target": null, "rename": null },
                { "name": "rand", "req": "^0.8", "features": [], "uses_default_features": true,
                  "kind": null, "target": null, "rename": "rand08" },
            ]},
        ]});
        let got = requests(&meta).unwrap();
        let reqwest = &got["reqwest"];
        assert!(!reqwest.default_features);
        assert_eq!(reqwest.features.iter().map(String::as_str).collect::<Vec<_>>(), ["json", "rustls", "stream"]);
        assert!(got["rand"].default_features);
        assert_eq!(got.len(), 2, "path dependencies are not pinned");
    }

    #[test]
    fn two_requirements_of_one_crate_are_refused() {
        let dep = |req: &str| {
            serde_json::json!({ "name": "rand", "req": req, "features": [], "uses_default_features": true,
                "kind": null, "target": null, "rename": null })
        };
        let meta = serde_json::json!({ "packages": [
            { "name": "a", "features": {}, "dependencies": [dep("^0.8")] },
            { "name": "b", "features": {}, "dependencies": [dep("^0.9")] },
        ]});
        assert!(requests(&meta).unwrap_err().to_string().contains("pin one version"));
    }

    #[test]
    fn build_dependencies_are_refused_until_supported() {
        let meta = serde_json::json!({ "packages": [{ "name": "a", "features": {}, "dependencies": [
            { "name": "cc", "req": "^1", "features": [], "uses_default_features": true,
              "kind": "build", "target": null, "rename": null },
        ]}]});
        assert!(requests(&meta).unwrap_err().to_string().contains("build or platform-specific"));
    }
}
