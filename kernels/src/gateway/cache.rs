//! The semantic cache: answers to deterministic chat requests, found again by an exact hash of the
//! canonical request or by the meaning of the last user message.
//!
//! - **What is cached.** Non-streaming `/v1/chat/completions` answers with status 200 to requests
//!   that are deterministic: `temperature` 0 or a `seed`, and no `n > 1`, `tools`, `tool_choice`,
//!   `functions` or `logprobs`. Streaming requests are neither looked up nor stored: a replayed
//!   stream would need the original chunking and timing to be faithful, and the first byte of a
//!   real stream already comes early.
//! - **Scope.** Entries are keyed by model and by the caller's privacy tier, so an answer produced
//!   for one tier is never served to another.
//! - **Exact path.** BLAKE3 of the canonical request (keys sorted at every level, `stream`,
//!   `stream_options` and `user` removed) finds an identical request without embedding anything.
//! - **Semantic path.** The request with its last user message blanked is hashed as the *context*;
//!   the last user message is embedded with all-MiniLM-L6-v2 (`kernels::nn::bert`) and searched in a
//!   cosine HNSW index (`kernels::ann::Hnsw`; Malkov & Yashunin, arXiv:1603.09320). A hit needs the
//!   same context and a cosine similarity ≥ `similarity_threshold` (so a different system prompt,
//!   earlier turn, model or `max_tokens` never matches).
//! - **Expiry.** Entries older than `ttl_s` are not served. HNSW has no deletion: expired and
//!   evicted entries are marked dead, and the index is rebuilt from the live ones when the dead
//!   outnumber them or the cache is full (the oldest go first).
//!
//! `examples/gateway_cache.rs` measures the hit rate, the latency saved and the false-hit rate on
//! near-miss pairs (`tests/fixtures/gateway/paraphrases.json`).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::config::CacheConfig;
use crate::Result;
use crate::ann::{Hnsw, HnswConfig};
use crate::nn::bert::BertModel;
use crate::simd::Metric;

/// How a hit was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HitKind {
    /// The canonical request's hash.
    Exact,
    /// The last user message's embedding.
    Semantic,
}

impl HitKind {
    /// `exact` or `semantic` (header and metric label).
    pub fn name(self) -> &'static str {
        match self {
            HitKind::Exact => "exact",
            HitKind::Semantic => "semantic",
        }
    }
}

/// A cached answer.
#[derive(Debug, Clone)]
pub struct Hit {
    /// The answer's JSON body.
    pub body: Arc<Vec<u8>>,
    /// How it was found.
    pub kind: HitKind,
    /// Cosine similarity of the last user messages (1 for exact hits).
    pub similarity: f32,
}

/// The keys of one cacheable request.
#[derive(Debug, Clone)]
pub struct CacheKey {
    exact: [u8; 32],
    context: [u8; 32],
    /// The last user message (what is embedded).
    pub query: String,
}

/// Whether a chat request may be answered from the cache (see the module docs).
pub fn cacheable(request: &Value) -> bool {
    let deterministic =
        request["temperature"].as_f64() == Some(0.0) || request["seed"].is_u64() || request["seed"].is_i64();
    let present = |k: &str| !request[k].is_null();
    let single = request["n"].is_null() || request["n"].as_u64() == Some(1);
    deterministic
        && single
        && !request["stream"].as_bool().unwrap_or(false)
        && !present("tools")
        && !present("tool_choice")
        && !present("functions")
        && !request["logprobs"].as_bool().unwrap_or(false)
        && last_user_index(request).is_some()
}

fn last_user_index(request: &Value) -> Option<usize> {
    let messages = request["messages"].as_array()?;
    let i = messages.iter().rposition(|m| m["role"] == "user")?;
    messages[i]["content"].is_string().then_some(i)
}

/// Writes `v` with object keys sorted at every level (independent of serde_json's map order).
fn canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

fn digest(scope: &str, v: &Value) -> [u8; 32] {
    let mut text = String::new();
    canonical(v, &mut text);
    let mut h = blake3::Hasher::new();
    h.update(scope.as_bytes());
    h.update(&[0]);
    h.update(text.as_bytes());
    *h.finalize().as_bytes()
}

/// The exact and context keys of a cacheable request in `scope` (model and tier); `None` when the
/// request is not cacheable.
pub fn cache_key(request: &Value, scope: &str) -> Option<CacheKey> {
    if !cacheable(request) {
        return None;
    }
    let mut r = request.clone();
    if let Some(map) = r.as_object_mut() {
        for k in ["stream", "stream_options", "user"] {
            map.remove(k);
        }
    }
    let exact = digest(scope, &r);
    let i = last_user_index(&r)?;
    let query = r["messages"][i]["content"].as_str()?.to_owned();
    r["messages"][i]["content"] = Value::String(String::new());
    Some(CacheKey { exact, context: digest(scope, &r), query })
}

struct Entry {
    exact: [u8; 32],
    context: [u8; 32],
    embedding: Vec<f32>,
    created_ms: u64,
    body: Arc<Vec<u8>>,
    alive: bool,
}

struct Inner {
    entries: Vec<Entry>,
    exact: HashMap<[u8; 32], usize>,
    index: Hnsw,
    live: usize,
}

/// The cache (thread-safe; embedding runs outside its lock).
pub struct SemanticCache {
    config: CacheConfig,
    encoder: Arc<BertModel>,
    inner: Mutex<Inner>,
}

fn hnsw_config() -> HnswConfig {
    HnswConfig { m: 16, ef_construction: 100, metric: Metric::Cosine, seed: 7 }
}

impl SemanticCache {
    /// A cache over `encoder`.
    ///
    /// # Errors
    /// The HNSW index's parameter errors.
    pub fn new(config: CacheConfig, encoder: Arc<BertModel>) -> Result<SemanticCache> {
        let index = Hnsw::new(encoder.dim(), hnsw_config())?;
        Ok(SemanticCache {
            config,
            encoder,
            inner: Mutex::new(Inner { entries: Vec::new(), exact: HashMap::new(), index, live: 0 }),
        })
    }

    /// Loads the encoder from `config.embedding_model_dir` (default: all-MiniLM-L6-v2 in the
    /// models cache, [`crate::cache::model_file`]).
    ///
    /// # Errors
    /// The encoder's loading errors.
    pub fn load(config: CacheConfig) -> Result<SemanticCache> {
        let dir = config.embedding_model_dir.clone().unwrap_or_else(|| {
            crate::cache::model_file("all-minilm-l6-v2", "model.safetensors")
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default()
        });
        let encoder = Arc::new(BertModel::load(&dir)?);
        SemanticCache::new(config, encoder)
    }

    /// Its configuration.
    pub fn config(&self) -> &CacheConfig {
        &self.config
    }

    /// Embeds a query (blocking: call it off the async threads).
    ///
    /// # Errors
    /// The encoder's errors.
    pub fn embed(&self, text: &str) -> Result<Vec<f32>> {
        Ok(self.encoder.embed(&[text])?.pop().unwrap_or_default())
    }

    fn fresh(&self, e: &Entry, now_ms: u64) -> bool {
        e.alive && now_ms.saturating_sub(e.created_ms) < self.config.ttl_s.saturating_mul(1000)
    }

    /// The exact-match fast path.
    pub fn lookup_exact(&self, key: &CacheKey, now_ms: u64) -> Option<Hit> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let e = &inner.entries[*inner.exact.get(&key.exact)?];
        self.fresh(e, now_ms).then(|| Hit { body: e.body.clone(), kind: HitKind::Exact, similarity: 1.0 })
    }

    /// The semantic path: the most similar fresh entry with the same context, if at least the
    /// threshold.
    pub fn lookup_semantic(&self, key: &CacheKey, embedding: &[f32], now_ms: u64) -> Option<Hit> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let near = inner.index.search(embedding, 16, 64).ok()?;
        near.iter()
            .filter_map(|n| {
                let e = &inner.entries[n.id as usize];
                (self.fresh(e, now_ms) && e.context == key.context).then_some((e, 1.0 - n.distance))
            })
            .find(|(_, sim)| *sim >= self.config.similarity_threshold)
            .map(|(e, similarity)| Hit { body: e.body.clone(), kind: HitKind::Semantic, similarity })
    }

    /// The best cosine similarity among fresh entries of the same context (for measurements).
    pub fn nearest_similarity(&self, key: &CacheKey, embedding: &[f32], now_ms: u64) -> Option<f32> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let near = inner.index.search(embedding, 16, 64).ok()?;
        near.iter()
            .filter(|n| {
                let e = &inner.entries[n.id as usize];
                self.fresh(e, now_ms) && e.context == key.context
            })
            .map(|n| 1.0 - n.distance)
            .next()
    }

    /// Stores an answer.
    ///
    /// # Errors
    /// The index's errors (a wrong embedding length, NaN).
    pub fn insert(&self, key: &CacheKey, embedding: Vec<f32>, body: Vec<u8>, now_ms: u64) -> Result<()> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let dead = inner.entries.len() - inner.live;
        if inner.live as u64 >= self.config.max_entries || (dead > 64 && dead > inner.live) {
            self.rebuild(&mut inner, now_ms)?;
        }
        if let Some(&old) = inner.exact.get(&key.exact) {
            inner.entries[old].alive = false;
            inner.live -= 1;
        }
        let id = inner.index.insert(&embedding)? as usize;
        debug_assert_eq!(id, inner.entries.len());
        inner.entries.push(Entry {
            exact: key.exact,
            context: key.context,
            embedding,
            created_ms: now_ms,
            body: Arc::new(body),
            alive: true,
        });
        inner.exact.insert(key.exact, id);
        inner.live += 1;
        Ok(())
    }

    /// Keeps the fresh entries (the newest `max_entries - 1`) and rebuilds the index over them.
    fn rebuild(&self, inner: &mut Inner, now_ms: u64) -> Result<()> {
        let mut keep: Vec<Entry> =
            std::mem::take(&mut inner.entries).into_iter().filter(|e| self.fresh(e, now_ms)).collect();
        let room = (self.config.max_entries as usize).saturating_sub(1);
        if keep.len() > room {
            keep.drain(..keep.len() - room);
        }
        let mut index = Hnsw::new(self.encoder.dim(), hnsw_config())?;
        index.reserve(keep.len());
        inner.exact.clear();
        for (i, e) in keep.iter().enumerate() {
            index.insert(&e.embedding)?;
            inner.exact.insert(e.exact, i);
        }
        inner.live = keep.len();
        inner.entries = keep;
        inner.index = index;
        Ok(())
    }

    /// Live entries.
    pub fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).live
    }

    /// Whether it holds no live entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
