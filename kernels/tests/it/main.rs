//! Integration tests of `kernels`: one test binary, one module per area.
//!
//! Every test compares against an independent reference: a scalar twin, a
//! naive sort, brute-force search, or a hand-computed value.

#[cfg(any(feature = "monitor", feature = "rag", feature = "train"))]
mod fixture_check;
mod fusion;
mod lowp;
mod matmul;
mod ops;
mod quant;
mod simd;
#[cfg(any(
    feature = "ann",
    feature = "cli",
    feature = "registry",
    feature = "audit",
    feature = "score",
    feature = "serve-model",
    feature = "finetune"
))]
mod tmp;

#[cfg(feature = "ann")]
mod exact;
#[cfg(feature = "ann")]
mod hnsw;

#[cfg(feature = "search")]
mod search;

#[cfg(feature = "gpu")]
mod gpu;

#[cfg(feature = "tracking")]
mod tracking;

#[cfg(feature = "data")]
mod data;

#[cfg(feature = "tokenize")]
mod tokenize;

#[cfg(feature = "formats")]
mod formats;

#[cfg(feature = "llm")]
mod chat_template;
#[cfg(feature = "llm")]
mod llm;
#[cfg(feature = "prompt")]
mod prompt;

#[cfg(feature = "constrain")]
mod constrain;

#[cfg(feature = "nn")]
mod nn;

/// `kernels::cache` repeats the rule of `datasets::models::cache_dir` (kernels depends on nothing in the workspace).
#[test]
fn the_cache_folder_rule_is_the_one_datasets_uses() {
    assert_eq!(kernels::cache::cache_dir(), datasets::models::cache_dir());
}

#[cfg(feature = "serve")]
mod serve;
#[cfg(feature = "serve")]
mod serve_overload;

#[cfg(feature = "ml")]
mod ml;

#[cfg(feature = "registry")]
mod registry;

#[cfg(feature = "cli")]
mod cli;

#[cfg(feature = "serve-model")]
mod serve_model;

#[cfg(feature = "audit")]
mod audit;

#[cfg(feature = "abtest")]
mod abtest;

#[cfg(all(feature = "cli", target_os = "linux", target_arch = "x86_64"))]
mod serve_audit;

#[cfg(feature = "score")]
mod score;

#[cfg(feature = "gateway")]
mod gateway;
#[cfg(feature = "gateway")]
mod gateway_controls;
#[cfg(feature = "observe")]
mod observe;
#[cfg(feature = "observe")]
mod observe_rules;
#[cfg(feature = "observe")]
mod observe_shed;

#[cfg(feature = "train")]
mod train;

#[cfg(feature = "rag")]
mod rag_answer;
#[cfg(feature = "rag")]
mod rag_chunk;
#[cfg(feature = "rag")]
mod rag_eval;
#[cfg(feature = "rag")]
mod rag_index;
#[cfg(feature = "rag")]
mod rag_load;

#[cfg(feature = "monitor")]
mod monitor_drift;
#[cfg(feature = "monitor")]
mod monitor_expect;

#[cfg(feature = "pipeline")]
mod pipeline;

#[cfg(feature = "quality")]
mod quality;
