//! Hierarchical Navigable Small World graphs: approximate nearest-neighbour search.
//!
//! After Yu. A. Malkov and D. A. Yashunin, "Efficient and robust approximate
//! nearest neighbor search using Hierarchical Navigable Small World graphs",
//! IEEE TPAMI 2018 (arXiv:1603.09320, first version 2016).
//!
//! Every vector lives on layer 0; a vector reaches layer `l` with probability
//! `M^-l` (its level is `floor(-ln(U) / ln(M))` for uniform `U`), so upper
//! layers are ever sparser "express lanes". A search descends greedily from the
//! top layer's entry point to layer 1, then runs a best-first search with a
//! dynamic list of `ef` candidates on layer 0 (the paper's Algorithm 2,
//! [`Hnsw::search`]). An insertion searches the same way with
//! `ef_construction` and links the new vector to neighbours picked by the
//! paper's diversity heuristic (Algorithm 4 with `extendCandidates = false` and
//! `keepPrunedConnections = false`, the choice hnswlib makes too): a candidate
//! is kept only if it is nearer to the new vector than to every neighbour kept
//! so far. Nodes keep at most `M` links on upper layers and `2M` on layer 0;
//! a node that overflows is re-pruned with the same heuristic.
//!
//! Layout, chosen for cache behaviour on the search's hot loop:
//! - all vectors in one contiguous buffer of f32 (cosine vectors are stored
//!   unit-normalised so the hot loop needs one dot product per distance);
//! - layer-0 adjacency in one flat buffer of `u32` words with a fixed stride of
//!   `1 + 2M` slots per node (a count, then the ids); these two buffers are
//!   owned, or windows of the file [`Hnsw::load`] mapped;
//! - upper-layer adjacency in a separate flat `Vec`, only for the few
//!   nodes above layer 0 (a block of `1 + M` slots per layer per node);
//! - per-search scratch (an epoch-tagged visited set and both heaps) kept in a
//!   pool, so a search allocates nothing but its result and `search` takes
//!   `&self` and can run from many threads at once;
//! - software prefetch of the neighbour vectors two ahead of the one being measured, and of the
//!   next candidate's adjacency list.
//!
//! Builds by [`Hnsw::build`] and [`Hnsw::insert`] are deterministic: the same seed and
//! insertion order give the same graph and the same answers. [`Hnsw::build_parallel`] inserts
//! on every rayon thread at once (hnswlib's scheme: in id order from a shared counter, a lock
//! per adjacency list for writers, readers unlocked), so its graph depends on thread timing;
//! the levels are still the seed's. The adjacency lists are `AtomicU32`s for that: a relaxed
//! load is a plain load on x86-64, so the read-only search pays nothing for it.

use std::collections::BinaryHeap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering::Relaxed};

mod persist;

use super::buffer::{Buffer, Word};
use super::visited::VisitedSet;
use super::{Far, Near, Neighbor, check_buffer, prefetch};
use crate::simd::{self, Metric};
use crate::{Error, Result};

/// How many neighbour vectors ahead of the one being measured a search prefetches. hnswlib
/// prefetches one; two kept more cache misses in flight: +7–16 % single-query and +5–10 % batched
/// queries/s at recall@10 0.95–0.99 on both `bench hnsw` sets (100k × 128 clustered, 100k × 384
/// MiniLM), alternating builds with one and two ahead; three and four were no better than two.
const PREFETCH_AHEAD: usize = 2;

/// The highest level a node may draw (keeps the level in a `u8`; reaching it
/// would need `M^64` nodes).
const MAX_LEVEL: usize = 64;

/// Largest accepted `M` (a node then holds `2M` links on layer 0).
const MAX_M: usize = 1 << 12;

/// Lock stripes of a parallel build: node `i`'s lists are guarded by lock `i % LOCK_STRIPES`.
const LOCK_STRIPES: usize = 1 << 16;

/// Build parameters of an [`Hnsw`] index.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HnswConfig {
    /// Links per node on upper layers (`2M` on layer 0). At least 2; 12 to 48 is typical.
    pub m: usize,
    /// Size of the candidate list while inserting. Larger builds slower and better. At least 1.
    pub ef_construction: usize,
    /// Distance the index ranks by.
    pub metric: Metric,
    /// Seed of the level generator: same seed and inserts give the same graph.
    pub seed: u64,
}

impl Default for HnswConfig {
    /// `M = 16`, `ef_construction = 200`, squared L2, seed 42.
    fn default() -> Self {
        HnswConfig { m: 16, ef_construction: 200, metric: Metric::L2, seed: 42 }
    }
}

impl HnswConfig {
    /// Checks the parameters.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] if `m < 2`, `m` is absurdly large, or `ef_construction == 0`.
    pub fn validate(&self) -> Result<()> {
        if self.m < 2 {
            return Err(Error::InvalidParameter(format!("HNSW m must be at least 2, got {}", self.m)));
        }
        if self.m > MAX_M {
            return Err(Error::InvalidParameter(format!("HNSW m must be at most {MAX_M}, got {}", self.m)));
        }
        if self.ef_construction == 0 {
            return Err(Error::InvalidParameter("HNSW ef_construction must be at least 1".into()));
        }
        Ok(())
    }
}

/// Reusable per-search buffers (taken from the pool, returned after).
#[derive(Debug, Default)]
struct Scratch {
    visited: VisitedSet,
    candidates: BinaryHeap<Near>,
    results: BinaryHeap<Far>,
    query: Vec<f32>,
    sorted: Vec<Neighbor>,
    selected: Vec<Neighbor>,
    pruned: Vec<Neighbor>,
    kept: Vec<Neighbor>,
    batch: Vec<u32>,
}

/// What [`Hnsw::search_filtered`] found, and how.
#[derive(Debug, Clone, PartialEq)]
pub struct FilteredHits {
    /// The nearest admitted vectors, ascending by `(distance, id)`.
    pub hits: Vec<Neighbor>,
    /// How many stored vectors the predicate admits.
    pub admitted: usize,
    /// Whether the admitted vectors were searched exhaustively instead of through the graph.
    pub exact: bool,
}

/// A Hierarchical Navigable Small World index (see the module docs).
pub struct Hnsw {
    dim: usize,
    config: HnswConfig,
    /// `M` (upper-layer degree bound) and `2M` (layer-0 bound).
    m: usize,
    m0: usize,
    /// Number of stored vectors.
    len: usize,
    /// Row-major vectors, `dim` floats each (unit length under cosine).
    vectors: Buffer<f32>,
    /// Layer 0: `1 + m0` slots per node: count, then neighbour ids.
    links0: Buffer<AtomicU32>,
    /// Level of every node.
    levels: Vec<u8>,
    /// Offset of each node's layer-1 block in `upper_links` (unused at level 0).
    upper_start: Vec<usize>,
    /// Layers 1..: per node with level `l`, `l` blocks of `1 + m` slots.
    upper_links: Vec<AtomicU32>,
    /// Entry point (meaningful when `len > 0`) and the top layer.
    entry: u32,
    max_level: usize,
    /// `1 / ln(M)`.
    level_mult: f64,
    /// SplitMix64 state of the level generator.
    rng: u64,
    /// Scratch buffers for searches in flight.
    pool: Mutex<Vec<Scratch>>,
}

impl std::fmt::Debug for Hnsw {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hnsw")
            .field("len", &self.len)
            .field("dim", &self.dim)
            .field("config", &self.config)
            .field("max_level", &self.max_level)
            .field("memory_bytes", &self.memory_bytes())
            .finish_non_exhaustive()
    }
}

impl Hnsw {
    /// An empty index for `dim`-dimensional vectors.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] if `dim == 0` or the config is invalid.
    pub fn new(dim: usize, config: HnswConfig) -> Result<Hnsw> {
        if dim == 0 {
            return Err(Error::InvalidParameter("dim must be at least 1".into()));
        }
        config.validate()?;
        Ok(Hnsw {
            dim,
            config,
            m: config.m,
            m0: 2 * config.m,
            len: 0,
            vectors: Buffer::default(),
            links0: Buffer::default(),
            levels: Vec::new(),
            upper_start: Vec::new(),
            upper_links: Vec::new(),
            entry: 0,
            max_level: 0,
            level_mult: 1.0 / (config.m as f64).ln(),
            rng: config.seed,
            pool: Mutex::new(Vec::new()),
        })
    }

    /// Builds an index over `data` (row-major, `dim` floats per vector) by
    /// inserting the vectors in order; vector `i` gets id `i`.
    ///
    /// # Errors
    /// As [`Hnsw::new`], plus [`Error::RaggedBuffer`] if `data.len()` is not a
    /// multiple of `dim` and [`Error::InvalidParameter`] for non-finite values.
    pub fn build(data: &[f32], dim: usize, config: HnswConfig) -> Result<Hnsw> {
        let mut index = Hnsw::new(dim, config)?;
        check_buffer(data, dim)?;
        let n = data.len() / dim;
        index.reserve(n);
        for row in data.chunks_exact(dim) {
            index.insert(row)?;
        }
        Ok(index)
    }

    /// [`Hnsw::build`] on every rayon thread: the vectors are stored and their levels drawn
    /// in order (the same levels as [`Hnsw::build`]), then the threads link them, taking ids in
    /// order from a shared counter as hnswlib's `add_items` does. Writers lock the adjacency
    /// list they change; searches read lists unlocked (a list read mid-update still holds valid
    /// ids). The graph depends on thread timing, so it is not reproducible run to run; its
    /// recall matches the sequential build's (a test checks both against exact search).
    ///
    /// # Errors
    /// As [`Hnsw::build`].
    pub fn build_parallel(data: &[f32], dim: usize, config: HnswConfig) -> Result<Hnsw> {
        let mut index = Hnsw::new(dim, config)?;
        check_buffer(data, dim)?;
        let n = data.len() / dim;
        if n > u32::MAX as usize {
            return Err(Error::InvalidParameter("HNSW index is full (u32::MAX vectors)".into()));
        }
        index.reserve(n);
        for row in data.chunks_exact(dim) {
            index.check_vector(row)?;
            let level = index.random_level();
            index.push_node(row, level);
        }
        if n == 0 {
            return Ok(index);
        }
        let top = Mutex::new((0u32, index.levels[0] as usize));
        let locks: Vec<Mutex<()>> = (0..n.min(LOCK_STRIPES)).map(|_| Mutex::new(())).collect();
        let next = AtomicUsize::new(1);
        let shared = &index;
        rayon::scope(|scope| {
            for _ in 0..rayon::current_num_threads().min(n) {
                scope.spawn(|_| {
                    let mut s = shared.take_scratch();
                    loop {
                        let id = next.fetch_add(1, Relaxed);
                        if id >= n {
                            break;
                        }
                        let level = shared.levels[id] as usize;
                        let snapshot = *top.lock().unwrap_or_else(|e| e.into_inner());
                        shared.link(id as u32, level, snapshot, &mut s, Some(&locks));
                        let mut t = top.lock().unwrap_or_else(|e| e.into_inner());
                        if level > t.1 {
                            *t = (id as u32, level);
                        }
                    }
                    shared.pool.lock().unwrap_or_else(|e| e.into_inner()).push(s);
                });
            }
        });
        (index.entry, index.max_level) = top.into_inner().unwrap_or_else(|e| e.into_inner());
        Ok(index)
    }

    /// Reserves room for `additional` more vectors: a hint, silently skipped
    /// where the memory cannot be had (inserts then grow the buffers as needed).
    pub fn reserve(&mut self, additional: usize) {
        let _ = self.vectors.to_mut().try_reserve_exact(additional.saturating_mul(self.dim));
        let _ = self.links0.to_mut().try_reserve_exact(additional.saturating_mul(1 + self.m0));
        let _ = self.levels.try_reserve_exact(additional);
        let _ = self.upper_start.try_reserve_exact(additional);
    }

    /// Number of stored vectors.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the index holds no vectors.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Dimension of the stored vectors.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The build parameters.
    pub fn config(&self) -> &HnswConfig {
        &self.config
    }

    /// Heap bytes held by the vectors and the graph (scratch buffers excluded). An index opened
    /// by [`Hnsw::load`] serves its vectors and layer-0 lists from the mapped file, which count
    /// here as nothing until an insert copies them ([`Hnsw::mapped_bytes`]).
    pub fn memory_bytes(&self) -> usize {
        let u = std::mem::size_of::<u32>();
        self.vectors.heap_bytes()
            + self.links0.heap_bytes()
            + self.upper_links.capacity() * u
            + self.upper_start.capacity() * std::mem::size_of::<usize>()
            + self.levels.capacity()
    }

    /// Bytes of the index served from a memory-mapped file (0 unless opened by [`Hnsw::load`]
    /// and not written since).
    pub fn mapped_bytes(&self) -> usize {
        let mapped = |is: bool, words: usize| if is { 4 * words } else { 0 };
        mapped(self.vectors.is_mapped(), self.vectors.len()) + mapped(self.links0.is_mapped(), self.links0.len())
    }

    /// The stored vectors, row-major in id order (unit length under cosine, as searched).
    pub fn vectors(&self) -> &[f32] {
        &self.vectors
    }

    /// The top layer of the graph (0 when empty).
    pub fn max_level(&self) -> usize {
        self.max_level
    }

    /// The entry point of every search (a node on the top layer), `None` when empty.
    pub fn entry_point(&self) -> Option<u32> {
        (self.len > 0).then_some(self.entry)
    }

    /// The level node `id` was assigned, `None` if there is no such node.
    pub fn level_of(&self, id: u32) -> Option<usize> {
        self.levels.get(id as usize).map(|&l| l as usize)
    }

    /// The neighbours of node `id` on layer `level` (empty if the node does not
    /// exist or does not reach that layer).
    pub fn neighbors(&self, id: u32, level: usize) -> Vec<u32> {
        match self.level_of(id) {
            Some(l) if level <= l => self.links(id, level).iter().map(|e| e.load(Relaxed)).collect(),
            _ => Vec::new(),
        }
    }

    /// Inserts a vector and returns its id (the number of vectors inserted before it).
    ///
    /// # Errors
    /// [`Error::DimensionMismatch`] if `v.len() != dim`, [`Error::InvalidParameter`]
    /// if `v` holds NaN or infinity or the index already holds `u32::MAX` vectors.
    pub fn insert(&mut self, v: &[f32]) -> Result<u32> {
        self.check_vector(v)?;
        if self.len >= u32::MAX as usize {
            return Err(Error::InvalidParameter("HNSW index is full (u32::MAX vectors)".into()));
        }
        let id = self.len as u32;
        let level = self.random_level();
        self.push_node(v, level);
        if id == 0 {
            self.entry = 0;
            self.max_level = level;
            return Ok(id);
        }
        let mut s = self.pool.get_mut().unwrap_or_else(|e| e.into_inner()).pop().unwrap_or_default();
        self.link(id, level, (self.entry, self.max_level), &mut s, None);
        if level > self.max_level {
            self.entry = id;
            self.max_level = level;
        }
        self.pool.get_mut().unwrap_or_else(|e| e.into_inner()).push(s);
        Ok(id)
    }

    /// Stores vector `v` (normalised under cosine) as the next node, at `level`, with empty lists.
    fn push_node(&mut self, v: &[f32], level: usize) {
        let start = self.vectors.len();
        self.vectors.to_mut().extend_from_slice(v);
        if self.config.metric == Metric::Cosine {
            normalize(&mut self.vectors.to_mut()[start..]);
        }
        let links0 = self.links0.to_mut();
        links0.resize_with(links0.len() + 1 + self.m0, AtomicU32::default);
        self.levels.push(level as u8);
        self.upper_start.push(self.upper_links.len());
        self.upper_links.resize_with(self.upper_links.len() + level * (1 + self.m), AtomicU32::default);
        self.len += 1;
    }

    // ANCHOR: link
    /// Links the stored node `id` (at `level`) into the graph whose entry point and top layer
    /// were `top`: the insertion of the paper's Algorithm 1. With `locks` (a parallel build),
    /// every change to a node's lists happens under that node's lock stripe.
    fn link(&self, id: u32, level: usize, top: (u32, usize), s: &mut Scratch, locks: Option<&[Mutex<()>]>) {
        let (entry, max_level) = top;
        let mut q = std::mem::take(&mut s.query);
        q.clear();
        q.extend_from_slice(self.vector(id));
        let guard = |node: u32| locks.map(|l| l[node as usize % l.len()].lock().unwrap_or_else(|e| e.into_inner()));

        let mut ep = Neighbor::new(entry, self.dist(&q, self.vector(entry)));
        for lc in (level + 1..=max_level).rev() {
            ep = self.greedy_closest(&q, ep, lc);
        }
        for lc in (0..=level.min(max_level)).rev() {
            self.search_layer(&q, ep, self.config.ef_construction, lc, s);
            s.sorted.clear();
            s.sorted.extend(s.results.drain().map(|f| f.0).filter(|n| n.id != id));
            s.sorted.sort_unstable_by(Neighbor::total_cmp);
            let Some(&nearest) = s.sorted.first() else { continue };
            ep = nearest;

            let Scratch { sorted, selected, pruned, kept, .. } = s;
            self.select_heuristic(sorted, self.m, selected);
            {
                // Added one by one, not replaced: in a parallel build another insert may have
                // linked to `id` already (alone, the list is empty and this is a plain copy).
                let _g = guard(id);
                for &n in selected.iter() {
                    self.connect(id, n, lc, pruned, kept);
                }
            }
            for &n in selected.iter() {
                let _g = guard(n.id);
                self.connect(n.id, Neighbor::new(id, n.distance), lc, pruned, kept);
            }
        }
        s.query = q;
    }
    // ANCHOR_END: link

    /// The `k` nearest stored vectors to `query`, sorted ascending by
    /// `(distance, id)`. `ef` is the size of the dynamic candidate list on
    /// layer 0 (raised to `k` if smaller): larger is slower and more accurate.
    /// Returns fewer than `k` hits only when the index holds fewer vectors.
    ///
    /// # Errors
    /// [`Error::DimensionMismatch`] if `query.len() != dim`,
    /// [`Error::InvalidParameter`] if the query holds NaN or infinity.
    pub fn search(&self, query: &[f32], k: usize, ef: usize) -> Result<Vec<Neighbor>> {
        self.check_vector(query)?;
        if k == 0 || self.len == 0 {
            return Ok(Vec::new());
        }
        let ef = ef.max(k);
        let mut s = self.take_scratch();
        let mut q = std::mem::take(&mut s.query);
        q.clear();
        q.extend_from_slice(query);
        if self.config.metric == Metric::Cosine {
            normalize(&mut q);
        }

        let mut ep = Neighbor::new(self.entry, self.dist(&q, self.vector(self.entry)));
        for lc in (1..=self.max_level).rev() {
            ep = self.greedy_closest(&q, ep, lc);
        }
        self.search_layer(&q, ep, ef, 0, &mut s);
        while s.results.len() > k {
            s.results.pop();
        }
        s.sorted.clear();
        s.sorted.extend(s.results.drain().map(|f| f.0));
        s.sorted.sort_unstable_by(Neighbor::total_cmp);
        let out = s.sorted.clone();

        s.query = q;
        self.pool.lock().unwrap_or_else(|e| e.into_inner()).push(s);
        Ok(out)
    }

    /// The `k` nearest stored vectors to `query` among those `allowed` admits (a tenant, a date
    /// range), sorted as [`Hnsw::search`]'s, with how they were found.
    ///
    /// The predicate is called once per stored vector to count the admitted ones, `a` of `n`.
    /// When `a² ≤ ef · 2M · n` the search is **exact** over the admitted vectors: it costs `a`
    /// distances, about what a graph search that must walk past `n / a` rejected nodes for every
    /// admitted one would cost (`ef · 2M · n / a`), and it cannot miss. Otherwise the graph is
    /// searched as usual, every node serving as a stepping stone, but only admitted nodes enter
    /// the result list, and the search stops only once it holds `ef` of them (hnswlib's filtered
    /// search does the same). At the default `M = 16` and `ef = 100`, an index of 100,000
    /// vectors switches to exact search below about 18,000 admitted (18 %).
    ///
    /// # Errors
    /// As [`Hnsw::search`].
    pub fn search_filtered(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        allowed: &dyn Fn(u32) -> bool,
    ) -> Result<FilteredHits> {
        self.check_vector(query)?;
        let ef = ef.max(k);
        let admitted = (0..self.len as u32).filter(|&id| allowed(id)).count();
        let exact = (admitted as u128).pow(2) <= ef as u128 * self.m0 as u128 * self.len as u128;
        if k == 0 || admitted == 0 {
            return Ok(FilteredHits { hits: Vec::new(), admitted, exact });
        }
        let mut s = self.take_scratch();
        let mut q = std::mem::take(&mut s.query);
        q.clear();
        q.extend_from_slice(query);
        if self.config.metric == Metric::Cosine {
            normalize(&mut q);
        }
        s.results.clear();
        if exact {
            for id in (0..self.len as u32).filter(|&id| allowed(id)) {
                let d = self.dist(&q, self.vector(id));
                if s.results.len() < k {
                    s.results.push(Far(Neighbor::new(id, d)));
                } else if s.results.peek().is_some_and(|f| Neighbor::new(id, d).total_cmp(&f.0).is_lt()) {
                    s.results.pop();
                    s.results.push(Far(Neighbor::new(id, d)));
                }
            }
        } else {
            let mut ep = Neighbor::new(self.entry, self.dist(&q, self.vector(self.entry)));
            for lc in (1..=self.max_level).rev() {
                ep = self.greedy_closest(&q, ep, lc);
            }
            self.search_layer_filtered(&q, ep, ef, allowed, &mut s);
        }
        while s.results.len() > k {
            s.results.pop();
        }
        let mut hits: Vec<Neighbor> = s.results.drain().map(|f| f.0).collect();
        hits.sort_unstable_by(Neighbor::total_cmp);
        s.query = q;
        self.pool.lock().unwrap_or_else(|e| e.into_inner()).push(s);
        Ok(FilteredHits { hits, admitted, exact })
    }

    /// [`Hnsw::search_layer`] on layer 0 where only `allowed` nodes enter the results: the bound
    /// is the farthest result once there are `ef` of them, infinite before.
    fn search_layer_filtered(
        &self,
        q: &[f32],
        entry: Neighbor,
        ef: usize,
        allowed: &dyn Fn(u32) -> bool,
        s: &mut Scratch,
    ) {
        let Scratch { visited, candidates, results, batch, .. } = s;
        visited.reset(self.len);
        candidates.clear();
        results.clear();
        visited.insert(entry.id);
        candidates.push(Near(entry));
        if allowed(entry.id) {
            results.push(Far(entry));
        }
        let bound = |results: &BinaryHeap<Far>| {
            if results.len() < ef { f32::INFINITY } else { results.peek().map_or(f32::INFINITY, |f| f.0.distance) }
        };
        while let Some(Near(c)) = candidates.pop() {
            if c.distance > bound(results) {
                break;
            }
            batch.clear();
            for e in self.links(c.id, 0) {
                let e = e.load(Relaxed);
                if visited.insert(e) {
                    batch.push(e);
                }
            }
            for &e in batch.iter().take(PREFETCH_AHEAD) {
                self.prefetch_vector(e);
            }
            for (j, &e) in batch.iter().enumerate() {
                if let Some(&next) = batch.get(j + PREFETCH_AHEAD) {
                    self.prefetch_vector(next);
                }
                let d = self.dist(q, self.vector(e));
                if d < bound(results) {
                    let n = Neighbor::new(e, d);
                    candidates.push(Near(n));
                    if allowed(e) {
                        results.push(Far(n));
                        if results.len() > ef {
                            results.pop();
                        }
                    }
                }
            }
        }
    }

    fn take_scratch(&self) -> Scratch {
        self.pool.lock().unwrap_or_else(|e| e.into_inner()).pop().unwrap_or_default()
    }

    fn check_vector(&self, v: &[f32]) -> Result<()> {
        if v.len() != self.dim {
            return Err(Error::DimensionMismatch { expected: self.dim, got: v.len() });
        }
        if v.iter().any(|x| !x.is_finite()) {
            return Err(Error::InvalidParameter("vector holds NaN or infinity".into()));
        }
        Ok(())
    }

    /// SplitMix64: small, fast and fully determined by the seed.
    fn next_u64(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// `floor(-ln(U) / ln(M))` with `U` uniform on `(0, 1]`.
    fn random_level(&mut self) -> usize {
        let u = ((self.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
        let level = (-u.ln() * self.level_mult).floor();
        (level as usize).min(MAX_LEVEL)
    }

    #[inline(always)]
    fn dist(&self, a: &[f32], b: &[f32]) -> f32 {
        match self.config.metric {
            Metric::L2 => simd::l2_sq(a, b),
            Metric::Dot => -simd::dot(a, b),
            // Stored vectors and queries are unit length: cosine is the dot product.
            Metric::Cosine => 1.0 - simd::dot(a, b),
        }
    }

    #[inline(always)]
    fn vector(&self, id: u32) -> &[f32] {
        let start = id as usize * self.dim;
        &self.vectors[start..start + self.dim]
    }

    /// Prefetches the first cache lines of vector `id` (up to 1 KiB; the
    /// hardware prefetcher streams the rest of longer vectors).
    #[inline(always)]
    fn prefetch_vector(&self, id: u32) {
        let p = self.vectors.as_ptr().wrapping_add(id as usize * self.dim);
        let floats = self.dim.min(256);
        let mut off = 0;
        while off < floats {
            prefetch(p.wrapping_add(off));
            off += 16; // 64-byte lines
        }
    }

    #[inline(always)]
    fn links_ptr(&self, id: u32, level: usize) -> *const AtomicU32 {
        if level == 0 {
            self.links0.as_ptr().wrapping_add(id as usize * (1 + self.m0))
        } else {
            self.upper_links.as_ptr()
        }
    }

    /// Offset of the count slot of `id`'s list on `level` (in `links0` or `upper_links`).
    #[inline(always)]
    fn slot(&self, id: u32, level: usize) -> usize {
        if level == 0 {
            id as usize * (1 + self.m0)
        } else {
            self.upper_start[id as usize] + (level - 1) * (1 + self.m)
        }
    }

    /// Node `id`'s list on `level` (its count slot read once; ids are read with relaxed loads).
    #[inline(always)]
    fn links(&self, id: u32, level: usize) -> &[AtomicU32] {
        let s = self.slot(id, level);
        let (list, cap) = if level == 0 { (&self.links0[..], self.m0) } else { (&self.upper_links[..], self.m) };
        let n = (list[s].load(Relaxed) as usize).min(cap);
        &list[s + 1..s + 1 + n]
    }

    /// Replaces node `id`'s list on `level` (ids first, then the count). In a parallel build the
    /// caller holds the node's lock stripe.
    fn set_links(&self, id: u32, level: usize, ids: &[Neighbor]) {
        let s = self.slot(id, level);
        let list = if level == 0 { &self.links0[..] } else { &self.upper_links[..] };
        for (slot, n) in list[s + 1..].iter().zip(ids) {
            slot.store(n.id, Relaxed);
        }
        list[s].store(ids.len() as u32, Relaxed);
    }

    /// Greedy walk on one layer: move to the nearest neighbour while that improves.
    fn greedy_closest(&self, q: &[f32], mut cur: Neighbor, level: usize) -> Neighbor {
        loop {
            let mut moved = false;
            for e in self.links(cur.id, level) {
                let e = e.load(Relaxed);
                let d = self.dist(q, self.vector(e));
                if d < cur.distance {
                    cur = Neighbor::new(e, d);
                    moved = true;
                }
            }
            if !moved {
                return cur;
            }
        }
    }

    // ANCHOR: search_layer
    /// Best-first search of one layer from `entry` (the paper's Algorithm 2).
    /// Leaves the `ef` nearest nodes found in `s.results` (a max-heap).
    fn search_layer(&self, q: &[f32], entry: Neighbor, ef: usize, level: usize, s: &mut Scratch) {
        let Scratch { visited, candidates, results, batch, .. } = s;
        visited.reset(self.len);
        candidates.clear();
        results.clear();
        visited.insert(entry.id);
        candidates.push(Near(entry));
        results.push(Far(entry));
        // Distance of the farthest of the current results.
        let mut bound = entry.distance;

        while let Some(Near(c)) = candidates.pop() {
            if c.distance > bound {
                break; // every remaining candidate is farther than all results
            }
            // The next candidate's adjacency list is likely needed next: pull it in.
            if let Some(next) = candidates.peek() {
                prefetch(self.links_ptr(next.0.id, level));
            }
            // Pass 1: keep the neighbours not seen yet (the tags are small and hot).
            batch.clear();
            for e in self.links(c.id, level) {
                let e = e.load(Relaxed);
                if visited.insert(e) {
                    batch.push(e);
                }
            }
            for &e in batch.iter().take(PREFETCH_AHEAD) {
                self.prefetch_vector(e);
            }
            // Pass 2: measure them, fetching a later vector while this one is measured.
            for (j, &e) in batch.iter().enumerate() {
                if let Some(&next) = batch.get(j + PREFETCH_AHEAD) {
                    self.prefetch_vector(next);
                }
                let d = self.dist(q, self.vector(e));
                if results.len() < ef || d < bound {
                    let n = Neighbor::new(e, d);
                    candidates.push(Near(n));
                    results.push(Far(n));
                    if results.len() > ef {
                        results.pop();
                    }
                    bound = results.peek().map_or(d, |f| f.0.distance);
                }
            }
        }
    }
    // ANCHOR_END: search_layer

    // ANCHOR: select_heuristic
    /// The paper's neighbour-selection heuristic (Algorithm 4, without
    /// extending or keeping pruned candidates). `candidates` are sorted
    /// ascending by distance to the base vector; a candidate is kept only if
    /// it is nearer to the base than to every neighbour already kept, which
    /// spreads the links over different directions. At most `m` are kept.
    fn select_heuristic(&self, candidates: &[Neighbor], m: usize, out: &mut Vec<Neighbor>) {
        out.clear();
        for &c in candidates {
            if out.len() >= m {
                break;
            }
            let cv = self.vector(c.id);
            if out.iter().all(|r| self.dist(cv, self.vector(r.id)) >= c.distance) {
                out.push(c);
            }
        }
    }
    // ANCHOR_END: select_heuristic

    /// Adds the link `node -> new` on `level`, re-pruning `node`'s list with
    /// the heuristic when it is already full.
    fn connect(&self, node: u32, new: Neighbor, level: usize, pruned: &mut Vec<Neighbor>, kept: &mut Vec<Neighbor>) {
        let cap = if level == 0 { self.m0 } else { self.m };
        let s = self.slot(node, level);
        let list = if level == 0 { &self.links0[..] } else { &self.upper_links[..] };
        let n = (list[s].load(Relaxed) as usize).min(cap);
        if list[s + 1..s + 1 + n].iter().any(|e| e.load(Relaxed) == new.id) {
            return;
        }
        if n < cap {
            list[s + 1 + n].store(new.id, Relaxed);
            list[s].store(n as u32 + 1, Relaxed);
            return;
        }
        let base = self.vector(node);
        pruned.clear();
        pruned.extend(self.links(node, level).iter().map(|x| {
            let x = x.load(Relaxed);
            Neighbor::new(x, self.dist(base, self.vector(x)))
        }));
        pruned.push(new);
        pruned.sort_unstable_by(Neighbor::total_cmp);
        self.select_heuristic(pruned, cap, kept);
        self.set_links(node, level, kept);
    }
}

fn normalize(v: &mut [f32]) {
    let norm = simd::dot(v, v).sqrt();
    if norm > 0.0 {
        let inv = 1.0 / norm;
        v.iter_mut().for_each(|x| *x *= inv);
    }
}
