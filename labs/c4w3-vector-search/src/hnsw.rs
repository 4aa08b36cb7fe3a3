//! Hierarchical Navigable Small World graphs (Malkov & Yashunin, arXiv:1603.09320).
//!
//! An HNSW index is a stack of proximity graphs. Every vector lives on layer 0;
//! each also lives on layers `1..=level` for a random `level` drawn from a
//! geometric distribution, so layer `l` holds about `n / M^l` nodes. Upper
//! layers are sparse "express lanes": a search descends greedily from the single
//! entry point on the top layer to layer 0, then runs a wider beam search there.
//!
//! The graph is stored as plainly as possible (clarity over speed; the
//! production index is [`kernels::ann::Hnsw`]):
//!
//! - `vectors`: one flat row-major buffer, node `i` at `[i * dim..(i + 1) * dim]`;
//! - `links[i][l]`: the out-neighbours of node `i` on layer `l`, for
//!   `l in 0..=level_of(i)` (so `links[i].len() == level_of(i) + 1`).
//!
//! Distances are measured with the production kernel
//! ([`kernels::simd::Metric::distance`]) so these tasks are graded independently
//! of your SIMD task: swap in [`crate::distance::distance`] to run on your own.
//!
//! Your tasks, in the order to do them: [`Hnsw::search_layer`] (the primitive of
//! both insert and search), [`Hnsw::select_neighbors_heuristic`],
//! [`Hnsw::insert`], [`Hnsw::search`].

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use kernels::ann::Neighbor;
use kernels::simd::Metric;

use crate::knn::{ByDistance, cmp_neighbors};

// ANCHOR: hnsw_config
/// How an [`Hnsw`] index is built.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HnswConfig {
    /// Links kept per node on layers ≥ 1 (`M`); layer 0 keeps up to `2 * M`.
    /// Must be at least 2.
    pub m: usize,
    /// Beam width of the layer searches during insertion (`efConstruction`):
    /// larger builds a better graph, more slowly.
    pub ef_construction: usize,
    /// What "near" means (smaller distance is nearer).
    pub metric: Metric,
    /// Seed of the random level draw: the same seed and the same inserts build
    /// the same graph.
    pub seed: u64,
}

impl Default for HnswConfig {
    /// `M = 16`, `efConstruction = 200`, squared L2, seed 42.
    fn default() -> Self {
        HnswConfig { m: 16, ef_construction: 200, metric: Metric::L2, seed: 42 }
    }
}
// ANCHOR_END: hnsw_config

/// SplitMix64 (Steele, Lea & Flood 2014): a tiny, fast, well-mixed seeded
/// generator; plenty for drawing levels. Given.
#[derive(Debug, Clone)]
struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `(0, 1]` (never 0, so its logarithm is finite).
    fn next_unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }
}

/// A Hierarchical Navigable Small World index over `dim`-dimensional vectors.
///
/// Node ids are `0, 1, 2, …` in insertion order.
#[derive(Debug, Clone)]
pub struct Hnsw {
    dim: usize,
    config: HnswConfig,
    /// Flat row-major buffer: node `i` is `vectors[i * dim..(i + 1) * dim]`.
    vectors: Vec<f32>,
    /// `links[i][l]`: out-neighbours of node `i` on layer `l`, `l <= level_of(i)`.
    links: Vec<Vec<Vec<u32>>>,
    /// The node every search starts from: one on the top layer (`None` when empty).
    entry_point: Option<u32>,
    /// `1 / ln(M)`: the normalisation of the level draw.
    level_mult: f64,
    rng: SplitMix64,
}

impl Hnsw {
    /// An empty index for `dim`-dimensional vectors. Given.
    ///
    /// # Panics
    /// If `dim` is 0 or `config.m < 2`.
    pub fn new(dim: usize, config: HnswConfig) -> Hnsw {
        assert!(dim > 0, "Hnsw::new: dim must be at least 1");
        assert!(config.m >= 2, "Hnsw::new: m must be at least 2, got {}", config.m);
        Hnsw {
            dim,
            config,
            vectors: Vec::new(),
            links: Vec::new(),
            entry_point: None,
            level_mult: 1.0 / (config.m as f64).ln(),
            rng: SplitMix64::new(config.seed),
        }
    }

    /// An index laid out by hand: node `i` is `vectors[i * dim..(i + 1) * dim]`
    /// and `links[i][l]` its out-neighbours on layer `l` (so node `i` has level
    /// `links[i].len() - 1`). The entry point is `entry_point`. Given: tests use
    /// it to check [`Hnsw::search_layer`], [`Hnsw::select_neighbors_heuristic`]
    /// and [`Hnsw::search`] on graphs that do not depend on [`Hnsw::insert`].
    /// Degree bounds are not checked (a hand-made graph may exceed `M`).
    ///
    /// # Panics
    /// If the shapes disagree, a node has no layer, a link points to a missing
    /// node, to itself or to a node that does not reach that layer, or the entry
    /// point is not on the top layer.
    pub fn from_graph(
        dim: usize,
        config: HnswConfig,
        vectors: Vec<f32>,
        links: Vec<Vec<Vec<u32>>>,
        entry_point: u32,
    ) -> Hnsw {
        let mut index = Hnsw::new(dim, config);
        assert_eq!(
            vectors.len(),
            links.len() * dim,
            "from_graph: {} floats for {} nodes of dimension {dim}",
            vectors.len(),
            links.len()
        );
        for (i, layers) in links.iter().enumerate() {
            assert!(!layers.is_empty(), "from_graph: node {i} has no layer (give it at least layer 0)");
            for (l, out) in layers.iter().enumerate() {
                for &j in out {
                    let target = links.get(j as usize);
                    assert!(target.is_some(), "from_graph: node {i} links to missing node {j}");
                    assert!(j as usize != i, "from_graph: node {i} links to itself");
                    assert!(
                        target.is_some_and(|t| t.len() > l),
                        "from_graph: node {i} links to node {j} on layer {l}, which node {j} does not reach"
                    );
                }
            }
        }
        let top = links.iter().map(|layers| layers.len() - 1).max();
        if let Some(top) = top {
            let entry_level = links.get(entry_point as usize).map(|l| l.len() - 1);
            assert_eq!(
                entry_level,
                Some(top),
                "from_graph: the entry point {entry_point} must be a node on the top layer {top}"
            );
            index.entry_point = Some(entry_point);
        }
        index.vectors = vectors;
        index.links = links;
        index
    }

    /// Number of vectors in the index. Given.
    pub fn len(&self) -> usize {
        self.links.len()
    }

    /// True when nothing has been inserted. Given.
    pub fn is_empty(&self) -> bool {
        self.links.is_empty()
    }

    /// Dimension of the vectors. Given.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The configuration the index was built with. Given.
    pub fn config(&self) -> &HnswConfig {
        &self.config
    }

    /// The node searches start from (on the top layer), `None` when empty. Given.
    pub fn entry_point(&self) -> Option<u32> {
        self.entry_point
    }

    /// The top layer of the graph (the entry point's level); 0 when empty. Given.
    pub fn max_level(&self) -> usize {
        self.entry_point.map_or(0, |e| self.level_of(e))
    }

    /// The vector of node `id`. Given.
    ///
    /// # Panics
    /// If `id` is not in the index.
    pub fn vector(&self, id: u32) -> &[f32] {
        let i = id as usize;
        assert!(i < self.len(), "node {id} is not in the index ({} nodes)", self.len());
        &self.vectors[i * self.dim..(i + 1) * self.dim]
    }

    /// Out-neighbours of node `id` on layer `level`; empty when the node does not
    /// reach that layer. Given.
    ///
    /// # Panics
    /// If `id` is not in the index.
    pub fn neighbors(&self, id: u32, level: usize) -> &[u32] {
        let layers = self.links.get(id as usize);
        let layers = layers.unwrap_or_else(|| panic!("node {id} is not in the index ({} nodes)", self.len()));
        layers.get(level).map_or(&[], Vec::as_slice)
    }

    /// The top layer node `id` lives on (0 for most nodes). Given.
    ///
    /// # Panics
    /// If `id` is not in the index.
    pub fn level_of(&self, id: u32) -> usize {
        let layers = self.links.get(id as usize);
        layers.unwrap_or_else(|| panic!("node {id} is not in the index ({} nodes)", self.len())).len() - 1
    }

    /// Heap memory held by the index, in bytes (vectors plus link lists, with
    /// their spare capacity). Given.
    pub fn memory_bytes(&self) -> usize {
        use std::mem::size_of;
        let vectors = self.vectors.capacity() * size_of::<f32>();
        let lists: usize = self
            .links
            .iter()
            .map(|layers| {
                layers.capacity() * size_of::<Vec<u32>>()
                    + layers.iter().map(|l| l.capacity() * size_of::<u32>()).sum::<usize>()
            })
            .sum();
        vectors + self.links.capacity() * size_of::<Vec<Vec<u32>>>() + lists
    }

    /// Distance from `q` to node `id` under the configured metric. Given.
    fn dist_to(&self, q: &[f32], id: u32) -> f32 {
        self.config.metric.distance(q, self.vector(id))
    }

    /// A [`Neighbor`] record for node `id` seen from `q`. Given.
    fn neighbor(&self, q: &[f32], id: u32) -> Neighbor {
        Neighbor { id, distance: self.dist_to(q, id) }
    }

    /// Draws the level of a new node: `floor(-ln(U) / ln(M))` for `U` uniform in
    /// `(0, 1]`, so `P(level >= l) = M^-l`. Given (call it from `insert`).
    fn random_level(&mut self) -> usize {
        (-self.rng.next_unit().ln() * self.level_mult).floor() as usize
    }

    /// Most links a node may keep on `level`: `2 * M` on layer 0, `M` above. Given.
    fn max_links(&self, level: usize) -> usize {
        if level == 0 { 2 * self.config.m } else { self.config.m }
    }

    /// Panics with a clear message when `v` does not have the index's dimension.
    fn check_dim(&self, what: &str, v: &[f32]) {
        assert_eq!(
            v.len(),
            self.dim,
            "{what}: vector of dimension {}, the index holds dimension {}",
            v.len(),
            self.dim
        );
    }

    /// Task c4w3.hnsw-search-layer (15 points): beam search for `q` on one layer
    /// (Algorithm 2 of the paper, SEARCH-LAYER).
    ///
    /// Start from the `entry` nodes (all of them count as visited and as found).
    /// Keep two heaps of [`ByDistance`]:
    ///
    /// - `candidates`: a **min**-heap (`Reverse<ByDistance>`) of nodes still to expand;
    /// - `found`: a **max**-heap of the best `ef` nodes seen so far.
    ///
    /// Loop: pop the nearest candidate `c`; if `found` already holds `ef` nodes
    /// and `c` is farther than the farthest of them, stop. Otherwise, for every
    /// not-yet-visited neighbour `e` of `c` on layer `level`
    /// ([`Hnsw::neighbors`]), mark it visited and, if `found` holds fewer than
    /// `ef` nodes or `e` is nearer than its farthest, push `e` to both heaps and
    /// pop the farthest of `found` when it exceeds `ef`.
    ///
    /// Returns at most `ef` neighbours sorted ascending ([`cmp_neighbors`]), with
    /// their distances to `q`. `ef = 0` is treated as 1.
    ///
    /// # Panics
    /// If `q` has the wrong dimension or an entry id is not in the index.
    pub fn search_layer(&self, q: &[f32], entry: &[u32], ef: usize, level: usize) -> Vec<Neighbor> {
        self.check_dim("search_layer", q);
        todo!("c4w3.hnsw-search-layer")
    }

    /// Task c4w3.hnsw-select (10 points): the neighbour-selection heuristic
    /// (Algorithm 4 of the paper, without `extendCandidates` and `keepPruned`).
    ///
    /// `candidates` are nodes of the index with their distances to some base
    /// point (the node being connected). Go through them **nearest first**
    /// (sort a copy with [`cmp_neighbors`]) and keep candidate `c` only if it is
    /// nearer to the base than to every neighbour kept so far, that is, drop `c`
    /// when some kept `r` has `distance(c, r) < c.distance` (measure between
    /// stored nodes with the configured metric). Stop once `m` are kept.
    ///
    /// Unlike "the `m` closest", this spreads links over directions: a candidate
    /// hidden behind a kept neighbour is reachable through it anyway.
    ///
    /// Returns at most `m` neighbours, sorted ascending ([`cmp_neighbors`]).
    ///
    /// # Panics
    /// If a candidate id is not in the index.
    pub fn select_neighbors_heuristic(&self, candidates: &[Neighbor], m: usize) -> Vec<Neighbor> {
        todo!("c4w3.hnsw-select")
    }

    /// Task c4w3.hnsw-insert (15 points): adds `v` to the index and returns its
    /// id (`0, 1, 2, …` in insertion order). Algorithm 1 of the paper.
    ///
    /// 1. Store the vector and draw its level `L` with the given
    ///    `self.random_level()`; give the node `L + 1` empty link lists.
    /// 2. The first node just becomes the entry point.
    /// 3. Otherwise descend greedily from the entry point through the layers
    ///    above `L`: `search_layer(v, &[ep], 1, l)` and keep its nearest as `ep`.
    /// 4. On each layer `l` from `min(L, top)` down to 0: `W = search_layer(v,
    ///    entries, ef_construction, l)`; link the node to
    ///    `select_neighbors_heuristic(&W, M)`; add the reverse link on each chosen
    ///    neighbour, and when that neighbour now has more than `2 * M` links
    ///    (layer 0) or `M` (above), shrink its list with the heuristic (distances
    ///    measured from that neighbour). Use all of `W` as entries for the next
    ///    layer down.
    /// 5. If `L` is above the top layer, the new node becomes the entry point.
    ///
    /// # Panics
    /// If `v.len() != dim`.
    pub fn insert(&mut self, v: &[f32]) -> u32 {
        self.check_dim("insert", v);
        todo!("c4w3.hnsw-insert")
    }

    /// Task c4w3.hnsw-search (10 points): the `k` nearest neighbours of `q`
    /// found with beam width `ef` (Algorithm 5 of the paper, K-NN-SEARCH).
    ///
    /// Descend greedily from the entry point through layers `top..=1` with
    /// `search_layer(q, &[ep], 1, l)`, then run `search_layer` on layer 0 with
    /// beam width `max(ef, k)` and keep the first `k`.
    ///
    /// Returns `min(k, len)` neighbours sorted ascending ([`cmp_neighbors`]);
    /// empty when the index is empty or `k = 0`.
    ///
    /// # Panics
    /// If `q.len() != dim`.
    pub fn search(&self, q: &[f32], k: usize, ef: usize) -> Vec<Neighbor> {
        self.check_dim("search", q);
        todo!("c4w3.hnsw-search")
    }
}
