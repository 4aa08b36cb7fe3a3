//! Week c3w3: models and a model registry.
//!
//! You build the classical models a fraud team trains every week, then the
//! registry that decides which of them may ever be served:
//!
//! | module | what you write | tasks |
//! |---|---|---|
//! | [`split`] | Gini impurity and the best split of a class-count histogram (Breiman et al. 1984) | `c3w3.split-search` |
//! | [`tree`] | a CART classifier on binned features, grown from your split search | `c3w3.tree` |
//! | [`forest`] | bootstrap rows, feature subsets, averaged trees, out-of-bag rows (Breiman 2001) | `c3w3.forest` |
//! | [`gbm`] | one gradient-boosting round for log-loss (Friedman 2001; Ke et al. 2017) | `c3w3.gbm-round` |
//! | [`kmeans`] | k-means++ seeding and Lloyd iterations (Arthur & Vassilvitskii 2007) | `c3w3.kmeans` |
//! | [`metrics`] | ROC AUC with ties (Mann–Whitney) | `c3w3.roc-auc` |
//! | [`manifest`] | a model-version manifest as canonical JSON and its BLAKE3 digest | `c3w3.manifest` |
//! | [`sign`] | Ed25519 signatures over manifests, a pinned keyring (RFC 8032) | `c3w3.sign-verify` |
//! | [`seal`] | ChaCha20-Poly1305 sealing of artefacts (RFC 8439) | `c3w3.seal-open` |
//!
//! Given (no task): [`rng::Rng`], the seeded generator every random choice
//! draws from, and [`binning`], the quantile binner that turns raw features
//! into small integers for the trees. The benchmark task `c3w3.forest-bench`
//! grades the speed of your forest against `kernels::ml::forest`.
//!
//! Every task is a function whose body is `todo!("<task id>")`; its doc comment
//! says what to do and how many points it is worth. `cargo test -p c3w3-models`
//! runs the visible tests; `cargo xtask grade c3w3` runs them and the hidden
//! ones. The production versions live in [`kernels::ml`] and
//! [`kernels::registry`]: the hidden tests compare your models' quality with
//! them and your registry bytes with theirs, byte for byte.
#![allow(unused_variables, dead_code, unused_imports, unused_mut, clippy::ptr_arg)]

pub mod binning;
pub mod forest;
pub mod gbm;
pub mod kmeans;
pub mod manifest;
pub mod metrics;
pub mod rng;
pub mod seal;
pub mod sign;
pub mod split;
pub mod tree;

pub use kernels::ml::Matrix;

/// Everything that can go wrong in this crate. Bad input is an error, never a panic.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// An argument is out of range, inconsistent with another, or not finite.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The signature's key id is not in the verifier's keyring (whatever key travels with it).
    #[error("signer {key_id} is not in the keyring")]
    UnknownSigner {
        /// The 16-hex-character key id named by the signature.
        key_id: String,
    },
    /// The signature does not verify under the trusted key it names.
    #[error("the signature by {key_id} does not verify")]
    BadSignature {
        /// The key id named by the signature.
        key_id: String,
    },
    /// Signed bytes are not the bytes that were expected (their digest differs).
    #[error("tampered: {0}")]
    Tampered(String),
    /// A sealed blob too short to hold a nonce and a tag.
    #[error("sealed blob of {len} bytes is shorter than nonce + tag ({min} bytes)")]
    Truncated {
        /// The blob's length.
        len: usize,
        /// The shortest possible sealed blob (nonce + tag).
        min: usize,
    },
    /// Authenticated decryption failed: wrong key, wrong associated data, or a modified byte.
    #[error("decryption failed: wrong key, wrong associated data or a modified byte")]
    Decrypt,
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;

/// Shorthand for an [`Error::InvalidInput`].
pub(crate) fn invalid<T>(msg: impl Into<String>) -> Result<T> {
    Err(Error::InvalidInput(msg.into()))
}
