//! Neural-network models that run on the kernels: the BERT sentence encoder.
//!
//! * [`bert`]: BERT (Devlin et al. 2019, arXiv:1810.04805) with Sentence-BERT mean pooling
//!   (Reimers & Gurevych 2019, arXiv:1908.10084), as all-MiniLM-L6-v2 runs it, on
//!   [`crate::matmul`] and [`crate::simd`], weights read by [`crate::formats::safetensors`].

pub mod bert;

pub use bert::{Activation, BertConfig, BertModel, PaddedBatch, Pooling};
