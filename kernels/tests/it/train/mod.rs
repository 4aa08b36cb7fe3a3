//! `kernels::train`: autograd gradients against finite differences, optimisers against their papers.

mod autograd;
#[cfg(feature = "finetune")]
mod decoder;
#[cfg(feature = "finetune")]
mod export;
#[cfg(feature = "finetune")]
mod finetune;
#[cfg(feature = "finetune")]
mod lora;
mod optim;
#[cfg(feature = "finetune")]
mod qlinear;
mod reference;
