//! Retrieval over a [`RagIndex`]: dense (HNSW), sparse (BM25), hybrid by reciprocal rank fusion or by a
//! weighted sum of min-max normalised scores, metadata filters, and maximal marginal relevance (MMR).
//!
//! The pipeline of [`retrieve`]:
//!
//! 1. **Embed** the query with the index's embedder (when the dense retriever or MMR needs it).
//! 2. **Dense**: the HNSW graph's `candidates` nearest live chunks with search breadth `ef`, scored by
//!    cosine similarity (the dot product of unit vectors, recomputed from the stored vectors).
//!    Fallback rule: when the graph's answer, after dropping tombstones and chunks the [`Filter`]
//!    rejects, holds fewer than `min(candidates, live chunks passing the filter)` chunks, the dense list
//!    is computed exactly instead (a scan over every live chunk passing the filter), so a narrow
//!    filter never starves the dense half.
//! 3. **Sparse**: tantivy BM25 over the chunk texts, the query an OR of its distinct terms (as
//!    [`crate::search::Bm25Index`]). With a filter, when fewer than `candidates` pass and the BM25 list
//!    was full, the search is repeated over all matching chunks.
//! 4. **Fuse** (hybrid only): reciprocal rank fusion ([`crate::fusion::reciprocal_rank_fusion`];
//!    Cormack, Clarke and Büttcher, SIGIR 2009) or a weighted sum of min-max normalised scores
//!    ([`fuse_weighted`]). The filter has already run, before any truncation to `k`.
//! 5. **MMR** (when `mmr_lambda` is set): maximal marginal relevance (Carbonell and Goldstein, SIGIR
//!    1998) picks `k` of the fused candidates greedily by `lambda * sim(q, d) - (1 - lambda) * max
//!    sim(d, s)` over the already selected `s`, with cosine similarities of the stored vectors
//!    ([`mmr_select`]); a hit's score is then its MMR value when picked.
//! 6. Truncate to `k`. Every ordering breaks ties by ascending chunk id.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::index::RagIndex;
use super::{Chunk, Embedder, StageTimings};
use crate::{Error, Result};

/// How two rankings become one.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Fusion {
    /// Reciprocal rank fusion with constant `k` (60 is customary).
    Rrf { k: f32 },
    /// `w * dense + (1 - w) * sparse` after min-max normalising each list's scores to `[0, 1]`.
    Weighted { dense_weight: f32 },
}

/// Which retriever runs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Mode {
    Sparse,
    Dense,
    Hybrid(Fusion),
}

/// Keeps a chunk only when every listed metadata key has the given value and its document id starts
/// with `doc_prefix` (when set).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Filter {
    pub metadata: BTreeMap<String, String>,
    pub doc_prefix: Option<String>,
}

/// A retrieval request's knobs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetrieveConfig {
    pub mode: Mode,
    /// Hits returned.
    pub k: usize,
    /// Candidates each retriever contributes before fusion, filtering and MMR (at least `k`).
    pub candidates: usize,
    /// HNSW search breadth.
    pub ef: usize,
    pub filter: Option<Filter>,
    /// MMR trade-off `lambda` in `[0, 1]` (1 = relevance only); `None` skips MMR.
    pub mmr_lambda: Option<f32>,
}

/// One retrieved chunk with the scores that ranked it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hit {
    /// The chunk id in the index.
    pub chunk: u32,
    /// The score the list is sorted by (descending).
    pub score: f32,
    /// Cosine similarity to the query, when the dense retriever saw it.
    pub dense: Option<f32>,
    /// BM25 score, when the sparse retriever saw it.
    pub sparse: Option<f32>,
    /// The reranker's score, when one ran.
    pub rerank: Option<f32>,
}

/// Ranked hits and where the time went.
#[derive(Debug, Clone, PartialEq)]
pub struct Retrieved {
    pub hits: Vec<Hit>,
    pub timings: StageTimings,
}

impl Filter {
    /// Whether `chunk` passes: every listed metadata key has the given value, and its document id
    /// starts with `doc_prefix` (when set).
    pub fn matches(&self, chunk: &Chunk) -> bool {
        self.doc_prefix.as_deref().is_none_or(|p| chunk.doc.starts_with(p))
            && self.metadata.iter().all(|(k, v)| chunk.metadata.get(k) == Some(v))
    }
}

impl RetrieveConfig {
    /// `k` hits in `mode`: 50 candidates per retriever (at least `k`), HNSW `ef` 100, no filter, no MMR.
    pub fn new(mode: Mode, k: usize) -> RetrieveConfig {
        RetrieveConfig { mode, k, candidates: k.max(50), ef: 100, filter: None, mmr_lambda: None }
    }

    /// Checks the knobs: `mmr_lambda` and `dense_weight` in `[0, 1]`, the RRF constant finite and `>= 0`.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] naming the knob.
    pub fn validate(&self) -> Result<()> {
        if let Some(l) = self.mmr_lambda
            && !(0.0..=1.0).contains(&l)
        {
            return Err(Error::InvalidParameter(format!("mmr_lambda must be in [0, 1], got {l}")));
        }
        match self.mode {
            Mode::Hybrid(Fusion::Rrf { k }) if !(k.is_finite() && k >= 0.0) => {
                Err(Error::InvalidParameter(format!("the RRF constant k must be finite and >= 0, got {k}")))
            }
            Mode::Hybrid(Fusion::Weighted { dense_weight: w }) if !(0.0..=1.0).contains(&w) => {
                Err(Error::InvalidParameter(format!("dense_weight must be in [0, 1], got {w}")))
            }
            _ => Ok(()),
        }
    }
}

/// Sorts by score descending, then chunk id ascending.
fn sort_ranked(list: &mut [(u32, f32)]) {
    list.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
}

/// Min-max normalisation of a list's scores to `[0, 1]`: `(s - min) / (max - min)`; a list with one
/// score, or with all scores equal, normalises to 1.
pub fn min_max_normalise(list: &[(u32, f32)]) -> Vec<(u32, f32)> {
    let min = list.iter().map(|x| x.1).fold(f32::INFINITY, f32::min);
    let max = list.iter().map(|x| x.1).fold(f32::NEG_INFINITY, f32::max);
    let range = max - min;
    list.iter().map(|&(id, s)| (id, if range > 0.0 { (s - min) / range } else { 1.0 })).collect()
}

/// Weighted score fusion: `dense_weight * d + (1 - dense_weight) * s` with `d` and `s` the
/// [`min_max_normalise`]d scores of each list (0 for a chunk absent from a list). Returns every chunk
/// of either list, best first, ties by ascending id.
pub fn fuse_weighted(dense: &[(u32, f32)], sparse: &[(u32, f32)], dense_weight: f32) -> Vec<(u32, f32)> {
    let mut fused: BTreeMap<u32, f32> = BTreeMap::new();
    for (list, w) in [(dense, dense_weight), (sparse, 1.0 - dense_weight)] {
        let mut seen = std::collections::HashSet::new();
        for (id, s) in min_max_normalise(list) {
            if seen.insert(id) {
                *fused.entry(id).or_insert(0.0) += w * s;
            }
        }
    }
    let mut out: Vec<(u32, f32)> = fused.into_iter().collect();
    sort_ranked(&mut out);
    out
}

/// Maximal marginal relevance (Carbonell and Goldstein, SIGIR 1998): picks up to `k` of `candidates`
/// (`(id, unit vector)`) one at a time, each time the one maximising `lambda * q·d - (1 - lambda) *
/// max_s d·s` over the picked `s` (the maximum is 0 before the first pick), ties by ascending id.
/// Returns the picks in order with the value each had when picked: non-increasing from the second pick on
/// (the first has no redundancy term, so a second pick with a negative similarity to it can score higher).
pub fn mmr_select(query: &[f32], candidates: &[(u32, &[f32])], k: usize, lambda: f32) -> Vec<(u32, f32)> {
    let relevance: Vec<f32> = candidates.iter().map(|(_, v)| crate::simd::dot(query, v)).collect();
    // The largest similarity of each candidate to anything picked so far.
    let mut redundancy = vec![f32::NEG_INFINITY; candidates.len()];
    let mut taken = vec![false; candidates.len()];
    let mut picks = Vec::with_capacity(k.min(candidates.len()));
    while picks.len() < k.min(candidates.len()) {
        let mut best: Option<(usize, f32)> = None;
        for (i, &(id, _)) in candidates.iter().enumerate() {
            if taken[i] {
                continue;
            }
            let red = if redundancy[i] == f32::NEG_INFINITY { 0.0 } else { redundancy[i] };
            let value = lambda * relevance[i] - (1.0 - lambda) * red;
            let better = match best {
                None => true,
                Some((b, bv)) => value > bv || (value == bv && id < candidates[b].0),
            };
            if better {
                best = Some((i, value));
            }
        }
        let Some((b, value)) = best else { break };
        taken[b] = true;
        picks.push((candidates[b].0, value));
        for (i, (_, v)) in candidates.iter().enumerate() {
            if !taken[i] {
                redundancy[i] = redundancy[i].max(crate::simd::dot(v, candidates[b].1));
            }
        }
    }
    picks
}

/// The dense half's candidates (see the module docs for the exact-search fallback).
fn dense_candidates(
    index: &RagIndex,
    query: &[f32],
    candidates: usize,
    ef: usize,
    filter: Option<&Filter>,
) -> Result<Vec<(u32, f32)>> {
    let Some(filter) = filter else {
        let hits = index.dense_search(query, candidates, ef)?;
        if hits.len() >= candidates.min(index.len()) {
            return Ok(hits);
        }
        return index.exact_dense_search(query, candidates, &|_, _| true);
    };
    let passing = index.chunks().filter(|(_, c)| filter.matches(c)).count();
    let want = candidates.min(passing);
    let mut hits = index.dense_search(query, candidates, ef)?;
    hits.retain(|&(id, _)| index.chunk(id).is_some_and(|c| filter.matches(c)));
    if hits.len() >= want {
        return Ok(hits);
    }
    index.exact_dense_search(query, candidates, &|_, c| filter.matches(c))
}

/// The sparse half's candidates.
fn sparse_candidates(
    index: &RagIndex,
    query: &str,
    candidates: usize,
    filter: Option<&Filter>,
) -> Result<Vec<(u32, f32)>> {
    let hits = index.sparse_search(query, candidates)?;
    let Some(filter) = filter else { return Ok(hits) };
    let full = hits.len() >= candidates;
    let keep = |list: Vec<(u32, f32)>| -> Vec<(u32, f32)> {
        list.into_iter().filter(|&(id, _)| index.chunk(id).is_some_and(|c| filter.matches(c))).collect()
    };
    let mut kept = keep(hits);
    if kept.len() < candidates && full {
        kept = keep(index.sparse_search(query, index.len())?);
    }
    kept.truncate(candidates);
    Ok(kept)
}

/// Retrieves the `config.k` best chunks for `query`.
///
/// # Errors
/// [`Error::InvalidParameter`] for knobs out of range ([`RetrieveConfig::validate`]); the embedder's
/// and tantivy's errors; [`Error::RagIndexMismatch`] when the embedder's dimension is not the index's.
pub fn retrieve(index: &RagIndex, embedder: &dyn Embedder, query: &str, config: &RetrieveConfig) -> Result<Retrieved> {
    config.validate()?;
    let mut timings = StageTimings::default();
    if config.k == 0 || index.is_empty() {
        return Ok(Retrieved { hits: Vec::new(), timings });
    }
    if embedder.dim() != index.dim() {
        return Err(Error::RagIndexMismatch {
            path: index.path().to_path_buf(),
            what: "embedding dimension",
            built: index.dim().to_string(),
            current: embedder.dim().to_string(),
        });
    }
    let candidates = config.candidates.max(config.k);
    let filter = config.filter.as_ref();
    let wants_dense = !matches!(config.mode, Mode::Sparse);
    let wants_sparse = !matches!(config.mode, Mode::Dense);

    let qvec = if wants_dense || config.mmr_lambda.is_some() {
        let t = Instant::now();
        let v = embedder
            .embed(&[query])?
            .pop()
            .ok_or_else(|| Error::InvalidParameter("the embedder returned no vector for the query".into()))?;
        timings.embed = t.elapsed();
        if v.len() != index.dim() {
            return Err(Error::DimensionMismatch { expected: index.dim(), got: v.len() });
        }
        Some(v)
    } else {
        None
    };

    let mut dense = Vec::new();
    if let (true, Some(q)) = (wants_dense, qvec.as_deref()) {
        let t = Instant::now();
        dense = dense_candidates(index, q, candidates, config.ef, filter)?;
        timings.dense = t.elapsed();
    }
    let mut sparse = Vec::new();
    if wants_sparse {
        let t = Instant::now();
        sparse = sparse_candidates(index, query, candidates, filter)?;
        timings.sparse = t.elapsed();
    }

    let t = Instant::now();
    let fused: Vec<(u32, f32)> = match config.mode {
        Mode::Dense => dense.clone(),
        Mode::Sparse => sparse.clone(),
        Mode::Hybrid(Fusion::Rrf { k }) => {
            let d: Vec<u32> = dense.iter().map(|x| x.0).collect();
            let s: Vec<u32> = sparse.iter().map(|x| x.0).collect();
            crate::fusion::reciprocal_rank_fusion(&[&d, &s], k)
        }
        Mode::Hybrid(Fusion::Weighted { dense_weight }) => fuse_weighted(&dense, &sparse, dense_weight),
    };
    let dense_of: HashMap<u32, f32> = dense.iter().copied().collect();
    let sparse_of: HashMap<u32, f32> = sparse.iter().copied().collect();
    let ranked: Vec<(u32, f32)> = match (config.mmr_lambda, qvec.as_deref()) {
        (Some(lambda), Some(q)) => {
            let pool: Vec<(u32, &[f32])> =
                fused.iter().filter_map(|&(id, _)| index.vector(id).map(|v| (id, v))).collect();
            mmr_select(q, &pool, config.k, lambda)
        }
        _ => fused.into_iter().take(config.k).collect(),
    };
    let hits = ranked
        .into_iter()
        .map(|(chunk, score)| Hit {
            chunk,
            score,
            dense: dense_of.get(&chunk).copied(),
            sparse: sparse_of.get(&chunk).copied(),
            rerank: None,
        })
        .collect();
    timings.fuse = t.elapsed();
    Ok(Retrieved { hits, timings })
}
