//! Week c4w5: fine-tuning and model security.
//!
//! Fine-tuning is gradient descent on a model you did not train, and model security is making sure
//! the model you serve is the one you fine-tuned. You build the pieces of both, small enough to read
//! and exact enough to be checked against the production `kernels::train` and `kernels::registry`:
//!
//! | module | what you write | tasks |
//! |---|---|---|
//! | [`tape`] | the backward passes of a matrix product and of a broadcast row add on a small reverse-mode tape | `c4w5.matmul-backward` |
//! | [`xent`] | softmax cross-entropy over rows with an ignore index, and its gradient | `c4w5.softmax-xent` |
//! | [`gradcheck`] | central finite differences over every input value, and the worst relative error | `c4w5.gradcheck` |
//! | [`optim`] | AdamW (Loshchilov & Hutter 2019) with bias correction, and global-norm gradient clipping | `c4w5.adamw` |
//! | [`lora`] | a LoRA linear layer (Hu et al. 2021): forward, backward to `A`, `B` and `x`, merge, unmerge | `c4w5.lora` |
//! | [`typestate`] | an artefact whose bytes can only be read once its Ed25519 signature verified | `c4w5.typestate` |
//!
//! The graded benchmark `c4w5.lora-bench` times one forward and backward step of your LoRA layer on
//! 64 tokens × 576 → 576 features at rank 8 as a ratio to the same step on `kernels::train`'s tape.
//!
//! Every task is a function whose body is `todo!("<task id>")`; its doc comment says what to do and
//! how many points it is worth. `cargo test -p c4w5-finetune-security` runs the visible tests (and
//! `cargo test -p c4w5-finetune-security --doc` the doc tests, among them the one proving that an
//! unverified artefact's bytes do not compile); `cargo xtask grade c4w5` runs them and the hidden
//! ones, which compare your gradients, optimiser trajectories and adapters with `kernels::train` and
//! finite differences, and your verifier with signatures made by `kernels::registry`.
#![allow(unused_variables, dead_code, unused_imports, unused_mut)]

pub mod gradcheck;
pub mod lora;
pub mod optim;
pub mod tape;
pub mod typestate;
pub mod xent;

// ANCHOR: error
/// Everything that can go wrong in this crate. Bad input is always one of these, never a panic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Shapes that do not fit: an operand of the wrong size, a gradient of another length than its
    /// parameter, a loss that is not one value. The message names the operation and the shapes.
    #[error("shape mismatch in {op}: {detail}")]
    Shape {
        /// The operation that found it (`matmul`, `adamw`, `lora.forward`, …).
        op: &'static str,
        /// The shapes or lengths involved.
        detail: String,
    },
    /// A configuration that cannot work (a rank of 0, a negative learning rate, a `β` outside
    /// `[0, 1)`); the message names the knob.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// Input that breaks a documented contract (a target outside the vocabulary, a non-finite
    /// gradient, merging an adapter twice); the message says which.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// Bytes that are not an Ed25519 public key (not a point of the curve).
    #[error("not an Ed25519 public key")]
    InvalidKey,
    /// The signature does not verify: the bytes were changed, the key is another one, or the signature
    /// is malformed or not in the strict (canonical) form.
    #[error("signature does not verify for key {key}")]
    BadSignature {
        /// The public key tried, as 64 lowercase hex characters.
        key: String,
    },
}
// ANCHOR_END: error

/// The result type of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// A [`Error::Shape`] of `op`.
pub(crate) fn shape(op: &'static str, detail: impl Into<String>) -> Error {
    Error::Shape { op, detail: detail.into() }
}
