//! `cargo xtask peers`: the optional Python peers in a virtual environment in the cache.

use std::process::Command;

use anyhow::{Context, Result};
use autograder::Workspace;

use crate::tools;

/// Peer packages, pinned. hnswlib builds from source (needs g++, about 30 s); faiss-cpu is the exact-search peer;
/// mlflow is the real tracking server the `tracking` tests start (about 850 MB);
/// pyarrow and deltalake read back what `kernels::data` writes; HF tokenizers is the
/// reference `kernels::tokenize` must match token for token; openai drives `kernels::serve`;
/// onnxruntime (with onnx to build its graph) is the peer of `kernels::nn::bert`;
/// scikit-learn, LightGBM and cryptography check `kernels::ml` and `kernels::registry`; XGBoost (the CPU-only
/// wheel), lleaves and treelite with TL2cgen are `cargo xtask bench ml`'s further boosting and compiled-tree peers.
const PACKAGES: &[&str] = &[
    "numpy==2.4.6",
    "hnswlib==0.8.0",
    "simsimd==6.5.16",
    "faiss-cpu==1.15.1", // IndexFlatL2: the peer of kernels::ann::FlatIndex's GEMM-formulated exact search
    "gguf==0.19.0",
    "mlflow==3.17.2",
    "pyarrow==25.0.1", // mlflow 3.17 requires pyarrow < 26
    "deltalake==1.6.6",
    "pandas==3.1.1",
    "tokenizers==0.23.3",
    "safetensors==0.8.0", // reads all-MiniLM-L6-v2 for kernels::formats and the NumPy BERT of kernels::nn
    "openai==3.54.0",     // the official client that drives kernels::serve in its tests
    "onnxruntime==1.32.0", // the peer of kernels::nn::bert in `cargo xtask bench embed`
    "onnx==1.23.2",       // builds that peer's graph from model.safetensors (no torch export needed)
    "scikit-learn==1.9.1", // the reference of kernels::ml (coefficients, trees, k-means, metrics)
    "lightgbm==4.7.0",    // the peer of kernels::ml's histogram gradient boosting
    "cryptography==50.0.2", // an independent Ed25519 and ChaCha20-Poly1305 for kernels::registry
    "xgboost-cpu==3.2.0", // XGBoost's CPU-only wheel (plain xgboost bundles CUDA, ~130 MB): a second hist GBM peer
    "treelite==4.1.2",    // reads the LightGBM model for tl2cgen; 4.1.2 is the treelite tl2cgen 1.0.0 is built on
    "tl2cgen==1.0.0",     // treelite 4 moved C code generation here: the model as C, gcc -O3, a compiled predictor
    "lleaves==1.3.0",     // compiles LightGBM models with LLVM: the other compiled single-row peer
    "llvmlite==0.44.0",   // lleaves 1.3.0 needs the legacy pass manager, which llvmlite 0.45 removed
    "llguidance==1.9.1",  // the Python wheel of kernels::constrain's engine: masks cross-checked bit for bit
    "jsonschema==4.26.0", // the independent validator of kernels::constrain's outputs
    "jinja2==3.1.6",      // renders the chat-template fixtures as transformers' apply_chat_template does
    "pytrec-eval-terrier==0.5.11", // trec_eval as a Python module: the reference of kernels::rag::eval's metrics
    "prometheus-client==0.26.0", // the official Python client's text parser: the reference of kernels::observe::prom
    "bm25s==0.3.16",      // a NumPy BM25: the speed peer of kernels::rag's sparse retrieval
    "jax==0.10.2", // float64 autodiff on the CPU: the reference gradients of kernels::train (PyTorch needs CUDA packages)
    "jaxlib==0.10.2",
];

/// The pinned version of a peer named as in a benchmark record (`hnswlib`, `simsimd`, `mlflow-python`:
/// the package, or the package before a `-` suffix), if it is one of [`PACKAGES`].
pub fn pinned_version(name: &str) -> Option<&'static str> {
    let name = name.to_lowercase();
    let base = name.split('-').next().unwrap_or(&name);
    PACKAGES.iter().find_map(|p| {
        let (package, version) = p.split_once("==")?;
        // `xgboost` is pinned as its CPU-only wheel `xgboost-cpu`.
        (package == name || package == base || package.strip_suffix("-cpu") == Some(&name)).then_some(version)
    })
}

pub fn install(ws: &Workspace) -> Result<()> {
    let venv = ws.cache_dir().join("venv");
    if !venv.join("bin/python").is_file() {
        std::fs::create_dir_all(ws.cache_dir())?;
        tools::run_shown(Command::new("python3").args(["-m", "venv"]).arg(&venv), "creating the peers' venv")
            .context("creating the peers' venv")?;
    }
    let python = venv.join("bin/python");
    tools::run_shown(
        Command::new(&python).args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"]).args(PACKAGES),
        &format!("installing {} Python peers with pip", PACKAGES.len()),
    )
    .context("installing the peers with pip")?;
    println!("peers installed in {}: {}", venv.display(), PACKAGES.join(", "));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_names_find_their_pins() {
        for (name, expected) in [
            ("hnswlib", Some("0.8.0")),
            ("SimSIMD", Some("6.5.16")),
            ("mlflow-python", Some("3.17.2")),
            ("scikit-learn", Some("1.9.1")),
            ("XGBoost", pinned_version("xgboost-cpu")),
            ("kernels", None),
        ] {
            assert_eq!(pinned_version(name), expected, "{name}");
        }
    }
}
