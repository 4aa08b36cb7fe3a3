//! Training on the CPU (feature `train`): reverse-mode automatic differentiation over tensors
//! ([`autograd`]) and the optimisers that use its gradients ([`optim`]). LoRA and QLoRA fine-tuning
//! of the `kernels::llm` decoder build on these.

pub mod autograd;
pub mod checkpoint;
#[cfg(feature = "finetune")]
pub mod decoder;
#[cfg(feature = "finetune")]
pub mod export;
#[cfg(feature = "finetune")]
pub mod finetune;
#[cfg(feature = "finetune")]
pub mod lora;
pub mod optim;
#[cfg(feature = "finetune")]
pub mod qlinear;
