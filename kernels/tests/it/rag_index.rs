//! kernels::rag: the persisted hybrid index, retrieval, fusion, MMR and reranking.
//!
//! References: brute-force cosine over the real MiniLM's vectors, `kernels::search::Bm25Index` on the
//! same chunk texts, `kernels::fusion::reciprocal_rank_fusion`, hand-computed fusion and MMR tables,
//! SmolLM2's unbatched forward pass, and per-window cosines computed here.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use kernels::Error;
use kernels::llm::LlamaModel;
use kernels::nn::bert::BertModel;
use kernels::rag::chunk::{ChunkerConfig, TokenSpans};
use kernels::rag::index::{AddReport, IndexConfig, RagIndex};
use kernels::rag::rerank::{JudgeScoring, LlmJudge, MiniLmWindows, Reranker, token_windows};
use kernels::rag::retrieve::{Filter, Fusion, Hit, Mode, RetrieveConfig, fuse_weighted, min_max_normalise, retrieve};
use kernels::rag::{Chunk, Document, Embedder, Section};

// ---------------------------------------------------------------- fixtures

fn bert() -> &'static BertModel {
    static M: OnceLock<BertModel> = OnceLock::new();
    M.get_or_init(|| {
        let file = datasets::models::file_path("all-minilm-l6-v2", "model.safetensors").expect("MiniLM downloaded");
        BertModel::load(file.parent().expect("model folder")).expect("MiniLM loads")
    })
}

fn smollm() -> &'static LlamaModel {
    static M: OnceLock<LlamaModel> = OnceLock::new();
    M.get_or_init(|| {
        let file = datasets::models::file_path("smollm2-135m-instruct", "SmolLM2-135M-Instruct.Q4_1.gguf")
            .expect("SmolLM2 downloaded");
        LlamaModel::load(file).expect("SmolLM2 loads")
    })
}

/// MiniLM with whitespace token spans (the index tests cut chunks by hand; the windows test uses
/// the model's own spans) and, optionally, another fingerprint.
struct Mini {
    fingerprint: Option<&'static str>,
}

impl TokenSpans for Mini {
    fn token_spans(&self, text: &str) -> Vec<std::ops::Range<usize>> {
        let mut out = Vec::new();
        let mut start = None;
        for (i, c) in text.char_indices() {
            match (c.is_whitespace(), start) {
                (true, Some(s)) => {
                    out.push(s..i);
                    start = None;
                }
                (false, None) => start = Some(i),
                _ => {}
            }
        }
        if let Some(s) = start {
            out.push(s..text.len());
        }
        out
    }
}

impl Embedder for Mini {
    fn fingerprint(&self) -> String {
        self.fingerprint.map_or_else(|| bert().fingerprint(), str::to_string)
    }
    fn dim(&self) -> usize {
        Embedder::dim(bert())
    }
    fn embed(&self, texts: &[&str]) -> kernels::Result<Vec<Vec<f32>>> {
        Embedder::embed(bert(), texts)
    }
}

const MINI: Mini = Mini { fingerprint: None };

/// A temp folder removed on drop.
struct Tmp(PathBuf);

impl Tmp {
    fn new(tag: &str) -> Tmp {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("kernels-rag-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Tmp(dir)
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Hand-made documents: `(id, collection, paragraphs)`.
const CORPUS: &[(&str, &str, &[&str])] = &[
    (
        "book/ownership.md",
        "book",
        &[
            "Ownership is a set of rules that govern how a Rust program manages memory.",
            "Each value in Rust has an owner. There can only be one owner at a time. When the owner goes out of scope, the value will be dropped.",
            "A move transfers ownership of a heap allocation, such as a String, to another variable.",
        ],
    ),
    (
        "book/borrowing.md",
        "book",
        &[
            "A reference is like a pointer: an address we can follow to access the data stored there, owned by some other variable.",
            "At any given time, you can have either one mutable reference or any number of immutable references.",
        ],
    ),
    (
        "book/closures.md",
        "book",
        &[
            "Closures are anonymous functions you can save in a variable or pass as arguments to other functions.",
            "Closures can capture values from their environment by borrowing immutably, borrowing mutably, or taking ownership with move.",
        ],
    ),
    (
        "cargo/workspaces.md",
        "cargo",
        &[
            "A workspace is a collection of one or more packages, called workspace members, that are managed together.",
            "All packages in a workspace share a common Cargo.lock file and a common output directory.",
        ],
    ),
    (
        "cargo/features.md",
        "cargo",
        &[
            "Cargo features provide a mechanism to express conditional compilation and optional dependencies.",
            "Features are defined in the [features] table in Cargo.toml. Each feature specifies an array of other features or optional dependencies that it enables.",
            "The default feature is enabled unless --no-default-features is passed on the command line.",
        ],
    ),
    (
        "cargo/profiles.md",
        "cargo",
        &[
            "Profiles provide a way to alter the compiler settings, influencing things like optimizations and debugging symbols.",
            "The release profile is intended for optimized artifacts used for releases and in production: opt-level 3, no debug assertions.",
        ],
    ),
    (
        "reference/traits.md",
        "reference",
        &[
            "A trait describes an abstract interface that types can implement. Trait objects allow dynamic dispatch through a vtable.",
            "Unsafe traits are traits that need to be implemented with unsafe impl, such as Send and Sync.",
        ],
    ),
    (
        "reference/unicode.md",
        "reference",
        &["Identifiers may be Unicode: größe, café and 变量 are valid names once normalised to NFC."],
    ),
];

/// A document with one section and its paragraphs as chunks (joined by a blank line).
fn make_doc(id: &str, collection: &str, paragraphs: &[&str]) -> (Document, Vec<Chunk>) {
    let text = paragraphs.join("\n\n");
    let metadata: BTreeMap<String, String> = [("collection".to_string(), collection.to_string())].into();
    let title = id.rsplit('/').next().unwrap_or(id).trim_end_matches(".md").to_string();
    let doc = Document {
        id: id.to_string(),
        title: title.clone(),
        text: text.clone(),
        sections: vec![Section { heading_path: vec![title.clone()], anchor: None, span: 0..text.len() }],
        blocks: Vec::new(),
        metadata: metadata.clone(),
    };
    let mut chunks = Vec::new();
    let mut at = 0;
    for p in paragraphs {
        chunks.push(Chunk {
            doc: id.to_string(),
            span: at..at + p.len(),
            text: p.to_string(),
            heading_path: vec![title.clone()],
            passage: id.to_string(),
            metadata: metadata.clone(),
        });
        at += p.len() + 2;
    }
    (doc, chunks)
}

fn corpus() -> Vec<(Document, Vec<Chunk>)> {
    CORPUS.iter().map(|(id, c, ps)| make_doc(id, c, ps)).collect()
}

fn config() -> IndexConfig {
    IndexConfig::new(ChunkerConfig::Recursive { max_tokens: 126 })
}

/// A committed index over [`CORPUS`] (chunk ids follow the corpus order).
fn build(tmp: &Tmp, embedder: &dyn Embedder) -> RagIndex {
    let mut index = RagIndex::create(&tmp.0, embedder, config()).expect("create");
    let docs = corpus();
    let pairs: Vec<(&Document, Vec<Chunk>)> = docs.iter().map(|(d, c)| (d, c.clone())).collect();
    let mut calls = Vec::new();
    let report = index.add_chunked(&pairs, embedder, &mut |done, total| calls.push((done, total))).expect("add");
    let n: usize = CORPUS.iter().map(|c| c.2.len()).sum();
    assert_eq!(report, AddReport { documents: CORPUS.len(), chunks: n, unchanged: 0, replaced: 0 });
    assert_eq!(calls.first(), Some(&(0, n)));
    assert_eq!(calls.last(), Some(&(n, n)));
    index.commit().expect("commit");
    index
}

fn all_texts() -> Vec<String> {
    CORPUS.iter().flat_map(|c| c.2.iter().map(|s| s.to_string())).collect()
}

const QUERIES: &[&str] = &[
    "how many mutable references can I have at once?",
    "what does a Cargo workspace share?",
    "enable optional dependencies with features",
    "when is a value dropped",
    "unicode identifiers",
    "Send and Sync are unsafe traits",
];

fn dense_config(k: usize, candidates: usize) -> RetrieveConfig {
    RetrieveConfig { mode: Mode::Dense, k, candidates, ef: 64, filter: None, mmr_lambda: None }
}

fn ids(hits: &[Hit]) -> Vec<u32> {
    hits.iter().map(|h| h.chunk).collect()
}

/// Brute force: cosine (f64) of the query's MiniLM vector with each text's, best first, ties by id.
fn brute_force(query: &str, texts: &[(u32, &str)]) -> Vec<(u32, f64)> {
    let q = Embedder::embed(bert(), &[query]).unwrap().remove(0);
    let refs: Vec<&str> = texts.iter().map(|t| t.1).collect();
    let vs = Embedder::embed(bert(), &refs).unwrap();
    let cos = |a: &[f32], b: &[f32]| {
        let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
        let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
        let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
        dot / (na * nb)
    };
    let mut out: Vec<(u32, f64)> = texts.iter().zip(&vs).map(|((id, _), v)| (*id, cos(&q, v))).collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    out
}

// ---------------------------------------------------------------- dense, sparse, fusion

#[test]
fn dense_top_k_equals_brute_force_cosine() {
    let tmp = Tmp::new("dense");
    let index = build(&tmp, &MINI);
    let texts = all_texts();
    let pairs: Vec<(u32, &str)> = texts.iter().enumerate().map(|(i, t)| (i as u32, t.as_str())).collect();
    let check = |query: &str, k: usize| {
        let got = retrieve(&index, &MINI, query, &dense_config(k, texts.len())).unwrap();
        let want = brute_force(query, &pairs);
        assert_eq!(ids(&got.hits), want.iter().take(k).map(|w| w.0).collect::<Vec<_>>(), "{query}");
        for (h, w) in got.hits.iter().zip(&want) {
            assert!((h.score as f64 - w.1).abs() < 1e-5, "{query}: {} vs {}", h.score, w.1);
            assert_eq!(h.dense, Some(h.score));
            assert_eq!(h.sparse, None);
        }
        assert!(got.timings.embed > std::time::Duration::ZERO && got.timings.dense > std::time::Duration::ZERO);
    };
    for q in QUERIES {
        check(q, 5);
    }
    check(QUERIES[0], texts.len());
}

#[test]
fn sparse_scores_equal_bm25_index_on_the_same_texts() {
    let tmp = Tmp::new("sparse");
    let index = build(&tmp, &MINI);
    let texts = all_texts();
    let bm25 = kernels::search::Bm25Index::build(&texts).unwrap();
    for q in QUERIES.iter().chain(&["cargo.lock", "größe café", "", "!!"]) {
        let got = index.sparse_search(q, texts.len()).unwrap();
        let want = bm25.search(q, texts.len()).unwrap();
        assert_eq!(got, want, "{q}");
        assert_eq!(index.query_terms(q), bm25.query_terms(q));
        let config = RetrieveConfig { mode: Mode::Sparse, ..dense_config(3, 10) };
        let hits = retrieve(&index, &MINI, q, &config).unwrap().hits;
        let top: Vec<(u32, f32)> = hits.iter().map(|h| (h.chunk, h.score)).collect();
        assert_eq!(top, want.iter().take(3).copied().collect::<Vec<_>>(), "{q}");
        assert!(hits.iter().all(|h| h.sparse == Some(h.score) && h.dense.is_none()));
    }
}

#[test]
fn rrf_hybrid_equals_reciprocal_rank_fusion_of_both_lists() {
    let tmp = Tmp::new("rrf");
    let index = build(&tmp, &MINI);
    let c = 6;
    for q in QUERIES {
        let dense = retrieve(&index, &MINI, q, &dense_config(c, c)).unwrap().hits;
        let sparse =
            retrieve(&index, &MINI, q, &RetrieveConfig { mode: Mode::Sparse, ..dense_config(c, c) }).unwrap().hits;
        let (d, s) = (ids(&dense), ids(&sparse));
        let want = kernels::fusion::reciprocal_rank_fusion(&[&d, &s], 60.0);
        // Each retriever contributes `candidates` (here = k) chunks; the fused list is cut to k.
        let config = RetrieveConfig { mode: Mode::Hybrid(Fusion::Rrf { k: 60.0 }), ..dense_config(c, c) };
        let got = retrieve(&index, &MINI, q, &config).unwrap();
        let got_pairs: Vec<(u32, f32)> = got.hits.iter().map(|h| (h.chunk, h.score)).collect();
        assert_eq!(got_pairs, want[..c], "{q}");
        for h in &got.hits {
            assert_eq!(h.dense, dense.iter().find(|x| x.chunk == h.chunk).map(|x| x.score));
            assert_eq!(h.sparse, sparse.iter().find(|x| x.chunk == h.chunk).map(|x| x.score));
        }
    }
}

#[test]
fn weighted_fusion_matches_a_hand_computed_table() {
    // dense normalised: 1 -> 1, 2 -> 0.5, 3 -> 0; sparse: 2 -> 1, 4 -> (4-2)/8 = 0.25, 1 -> 0.
    // fused with w = 0.6: 2 -> 0.3 + 0.4 = 0.7, 1 -> 0.6, 4 -> 0.1, 3 -> 0.
    let check = |dense: &[(u32, f32)], sparse: &[(u32, f32)], w: f32, want: &[(u32, f32)]| {
        let got = fuse_weighted(dense, sparse, w);
        assert_eq!(got.len(), want.len(), "{got:?}");
        for (g, e) in got.iter().zip(want) {
            assert!(g.0 == e.0 && (g.1 - e.1).abs() < 1e-6, "{got:?} vs {want:?}");
        }
    };
    check(
        &[(1, 0.9), (2, 0.5), (3, 0.1)],
        &[(2, 10.0), (4, 4.0), (1, 2.0)],
        0.6,
        &[(2, 0.7), (1, 0.6), (4, 0.1), (3, 0.0)],
    );
    // A one-score list and an all-equal list normalise to 1; ties by ascending id.
    check(&[(7, 0.3)], &[(5, 2.0), (6, 2.0)], 0.5, &[(5, 0.5), (6, 0.5), (7, 0.5)]);
    check(&[], &[(9, 3.0), (8, 1.0)], 0.25, &[(9, 0.75), (8, 0.0)]);
    assert_eq!(min_max_normalise(&[(1, -2.0), (2, 0.0), (3, 2.0)]), vec![(1, 0.0), (2, 0.5), (3, 1.0)]);

    // Through retrieve: the weighted hybrid is fuse_weighted of the two retrievers' lists.
    let tmp = Tmp::new("weighted");
    let index = build(&tmp, &MINI);
    for q in QUERIES {
        let dense: Vec<(u32, f32)> =
            retrieve(&index, &MINI, q, &dense_config(5, 5)).unwrap().hits.iter().map(|h| (h.chunk, h.score)).collect();
        let sparse: Vec<(u32, f32)> =
            retrieve(&index, &MINI, q, &RetrieveConfig { mode: Mode::Sparse, ..dense_config(5, 5) })
                .unwrap()
                .hits
                .iter()
                .map(|h| (h.chunk, h.score))
                .collect();
        let config =
            RetrieveConfig { mode: Mode::Hybrid(Fusion::Weighted { dense_weight: 0.7 }), ..dense_config(4, 5) };
        let got: Vec<(u32, f32)> =
            retrieve(&index, &MINI, q, &config).unwrap().hits.iter().map(|h| (h.chunk, h.score)).collect();
        let want: Vec<(u32, f32)> = fuse_weighted(&dense, &sparse, 0.7).into_iter().take(4).collect();
        assert_eq!(got, want, "{q}");
    }
}

/// Two-dimensional unit vectors at fixed angles: the MMR arithmetic by hand.
struct Plane;

impl TokenSpans for Plane {
    fn token_spans(&self, text: &str) -> Vec<std::ops::Range<usize>> {
        std::iter::once(0..text.len()).collect()
    }
}

impl Embedder for Plane {
    fn fingerprint(&self) -> String {
        "plane-2d".into()
    }
    fn dim(&self) -> usize {
        2
    }
    fn embed(&self, texts: &[&str]) -> kernels::Result<Vec<Vec<f32>>> {
        let angle = |t: &str| match t {
            "a" => 10.0f32,
            "b" => 20.0,
            "c" => -50.0,
            "d" => 80.0,
            _ => 0.0, // the query
        };
        Ok(texts.iter().map(|t| angle(t).to_radians()).map(|r| vec![r.cos(), r.sin()]).collect())
    }
}

#[test]
fn mmr_matches_a_hand_computed_example() {
    // q at 0 degrees; a, b, c, d at 10, 20, -50, 80 degrees; lambda = 0.5.
    // pick 1: 0.5 cos10 = 0.49240 (a).
    // pick 2: b 0.5 cos20 - 0.5 cos10 = -0.02256, c 0.5 cos50 - 0.5 cos60 = 0.07139, d 0.5 cos80 - 0.5 cos70 = -0.08419: c.
    // pick 3: b keeps -0.02256; d 0.5 cos80 - 0.5 max(cos70, cos130) = -0.08419: b.
    // pick 4: d 0.5 cos80 - 0.5 max(cos70, cos130, cos60) = -0.16318.
    let tmp = Tmp::new("mmr");
    let mut index = RagIndex::create(&tmp.0, &Plane, config()).unwrap();
    let docs: Vec<(Document, Vec<Chunk>)> = ["a", "b", "c", "d"].iter().map(|t| make_doc(t, "x", &[t])).collect();
    let pairs: Vec<(&Document, Vec<Chunk>)> = docs.iter().map(|(d, c)| (d, c.clone())).collect();
    index.add_chunked(&pairs, &Plane, &mut |_, _| {}).unwrap();
    let check = |lambda: Option<f32>, want: &[(u32, f32)]| {
        let config = RetrieveConfig { mmr_lambda: lambda, ..dense_config(4, 4) };
        let got = retrieve(&index, &Plane, "q", &config).unwrap().hits;
        assert_eq!(ids(&got), want.iter().map(|w| w.0).collect::<Vec<_>>(), "lambda {lambda:?}");
        for (g, w) in got.iter().zip(want) {
            assert!((g.score - w.1).abs() < 1e-4, "lambda {lambda:?}: {} vs {}", g.score, w.1);
        }
    };
    check(Some(0.5), &[(0, 0.49240), (2, 0.07139), (1, -0.02256), (3, -0.16318)]);
    // lambda = 1 is relevance order: cos10, cos20, cos50, cos80.
    check(Some(1.0), &[(0, 0.98481), (1, 0.93969), (2, 0.64279), (3, 0.17365)]);
    check(None, &[(0, 0.98481), (1, 0.93969), (2, 0.64279), (3, 0.17365)]);
    let bad = RetrieveConfig { mmr_lambda: Some(1.5), ..dense_config(4, 4) };
    assert!(matches!(retrieve(&index, &Plane, "q", &bad), Err(Error::InvalidParameter(m)) if m.contains("mmr_lambda")));
}

#[test]
fn filters_keep_only_matching_chunks_before_truncation() {
    let tmp = Tmp::new("filter");
    let index = build(&tmp, &MINI);
    let texts = all_texts();
    let check = |filter: Filter, mode: Mode| {
        let config = RetrieveConfig { mode, filter: Some(filter.clone()), ..dense_config(3, 3) };
        for q in QUERIES {
            let hits = retrieve(&index, &MINI, q, &config).unwrap().hits;
            let passing: Vec<(u32, &str)> = index
                .chunks()
                .filter(|(_, c)| filter.matches(c))
                .map(|(id, _)| (id, texts[id as usize].as_str()))
                .collect();
            assert!(hits.iter().all(|h| filter.matches(index.chunk(h.chunk).unwrap())), "{q}");
            if mode == Mode::Dense {
                // The graph's top 3 are mostly elsewhere: the exact fallback still fills k.
                let want: Vec<u32> = brute_force(q, &passing).iter().take(3).map(|w| w.0).collect();
                assert_eq!(ids(&hits), want, "{q} {filter:?}");
            } else {
                let all = index.sparse_search(q, texts.len()).unwrap();
                let want: Vec<u32> =
                    all.iter().filter(|(id, _)| passing.iter().any(|p| p.0 == *id)).take(3).map(|x| x.0).collect();
                assert_eq!(ids(&hits), want, "{q} {filter:?}");
            }
        }
    };
    let prefix = Filter { metadata: BTreeMap::new(), doc_prefix: Some("reference/".into()) };
    let meta = Filter { metadata: [("collection".to_string(), "cargo".to_string())].into(), doc_prefix: None };
    let both = Filter { metadata: meta.metadata.clone(), doc_prefix: Some("cargo/pro".into()) };
    for f in [prefix, meta, both] {
        check(f.clone(), Mode::Dense);
        check(f, Mode::Sparse);
    }
    let none = Filter { metadata: [("collection".to_string(), "nope".to_string())].into(), doc_prefix: None };
    let config =
        RetrieveConfig { mode: Mode::Hybrid(Fusion::Rrf { k: 60.0 }), filter: Some(none), ..dense_config(3, 3) };
    assert!(retrieve(&index, &MINI, "cargo", &config).unwrap().hits.is_empty());
}

// ---------------------------------------------------------------- persistence

fn snapshot(index: &RagIndex, embedder: &dyn Embedder) -> Vec<Vec<Hit>> {
    let modes = [
        Mode::Dense,
        Mode::Sparse,
        Mode::Hybrid(Fusion::Rrf { k: 60.0 }),
        Mode::Hybrid(Fusion::Weighted { dense_weight: 0.5 }),
    ];
    let mut out = Vec::new();
    for q in QUERIES {
        for mode in modes {
            out.push(retrieve(index, embedder, q, &RetrieveConfig { mode, ..dense_config(5, 8) }).unwrap().hits);
        }
        let mmr = RetrieveConfig { mmr_lambda: Some(0.7), ..dense_config(4, 8) };
        out.push(retrieve(index, embedder, q, &mmr).unwrap().hits);
    }
    out
}

#[test]
fn a_reopened_index_retrieves_exactly_as_before() {
    let tmp = Tmp::new("reopen");
    let index = build(&tmp, &MINI);
    let before = snapshot(&index, &MINI);
    let manifest = index.manifest().clone();
    drop(index);
    // The commit had no tombstones: the graph was saved, and the reopened index loads it.
    assert_eq!(
        manifest.files.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
        ["docs.1.jsonl", "chunks.1.jsonl", "vectors.1.f32", "graph.1.hnsw"]
    );
    let reopened = RagIndex::open(&tmp.0, &MINI).unwrap();
    assert_eq!(reopened.manifest(), &manifest);
    assert_eq!(manifest.generation, 1);
    assert_eq!(manifest.chunks, all_texts().len());
    assert_eq!(snapshot(&reopened, &MINI), before);
    for (id, text) in all_texts().iter().enumerate() {
        assert_eq!(&reopened.chunk(id as u32).unwrap().text, text);
        let v = reopened.vector(id as u32).unwrap();
        assert_eq!(v, Embedder::embed(bert(), &[text.as_str()]).unwrap()[0].as_slice());
    }
    assert_eq!(reopened.document_ids().collect::<Vec<_>>(), {
        let mut d: Vec<&str> = CORPUS.iter().map(|c| c.0).collect();
        d.sort();
        d
    });
}

#[test]
fn a_deleted_document_never_comes_back_from_either_half() {
    let tmp = Tmp::new("delete");
    let mut index = build(&tmp, &MINI);
    let gone = "cargo/features.md";
    let gone_ids = index.document(gone).unwrap().chunks.clone();
    assert_eq!(gone_ids, vec![9, 10, 11]);
    assert!(index.delete_document(gone).unwrap());
    assert!(!index.delete_document(gone).unwrap());
    assert!(!index.delete_document("no/such.md").unwrap());
    let n = all_texts().len() - 3;
    let check = |index: &RagIndex| {
        assert_eq!(index.len(), n);
        for q in ["Cargo features optional dependencies", "--no-default-features", "conditional compilation"] {
            for mode in [Mode::Dense, Mode::Sparse, Mode::Hybrid(Fusion::Rrf { k: 60.0 })] {
                let config = RetrieveConfig { mode, ..dense_config(n + 3, n + 3) };
                let hits = retrieve(index, &MINI, q, &config).unwrap().hits;
                assert!(hits.iter().all(|h| !gone_ids.contains(&h.chunk)), "{q} {mode:?}");
                if mode == Mode::Dense {
                    assert_eq!(hits.len(), n, "every live chunk, no tombstone");
                }
            }
        }
        assert!(gone_ids.iter().all(|&id| index.chunk(id).is_none() && index.vector(id).is_none()));
        // BM25 statistics count the live chunks only: equal to a fresh index over them.
        let live: Vec<String> = index.chunks().map(|(_, c)| c.text.clone()).collect();
        let live_ids: Vec<u32> = index.chunk_ids().collect();
        let bm25 = kernels::search::Bm25Index::build(&live).unwrap();
        for q in QUERIES {
            let want: Vec<(u32, f32)> =
                bm25.search(q, n).unwrap().into_iter().map(|(i, s)| (live_ids[i as usize], s)).collect();
            assert_eq!(index.sparse_search(q, n).unwrap(), want, "{q}");
        }
    };
    check(&index);
    assert_eq!(index.tombstones(), 3);
    index.commit().unwrap();
    // A graph with tombstones is not saved: opening rebuilds it from the live vectors.
    assert_eq!(index.manifest().files.len(), 3);
    assert!(!tmp.0.join("graph.2.hnsw").exists() && !tmp.0.join("graph.1.hnsw").exists());
    drop(index);
    let reopened = RagIndex::open(&tmp.0, &MINI).unwrap();
    assert_eq!(reopened.tombstones(), 0);
    assert!(reopened.document(gone).is_none());
    check(&reopened);
}

#[test]
fn unchanged_documents_are_skipped_and_changed_ones_replaced() {
    let tmp = Tmp::new("readd");
    let mut index = build(&tmp, &MINI);
    let docs = corpus();
    let pairs: Vec<(&Document, Vec<Chunk>)> = docs.iter().take(2).map(|(d, c)| (d, c.clone())).collect();
    let report = index.add_chunked(&pairs, &MINI, &mut |_, _| {}).unwrap();
    assert_eq!(report, AddReport { documents: 2, chunks: 0, unchanged: 2, replaced: 0 });
    assert!(!index.has_uncommitted_changes());
    index.commit().unwrap();
    assert_eq!(index.manifest().generation, 1, "nothing to commit");

    let (changed, chunks) = make_doc("book/ownership.md", "book", &["Ownership rules: each value has one owner."]);
    let old = index.document("book/ownership.md").unwrap().chunks.clone();
    let report = index.add_chunked(&[(&changed, chunks)], &MINI, &mut |_, _| {}).unwrap();
    assert_eq!(report, AddReport { documents: 1, chunks: 1, unchanged: 0, replaced: 1 });
    let new = index.document("book/ownership.md").unwrap().chunks.clone();
    let next = all_texts().len() as u32;
    assert_eq!(new, vec![next], "ids are never reused");
    assert!(old.iter().all(|&id| index.chunk(id).is_none()));
    assert_eq!(index.len(), all_texts().len() - old.len() + 1);
    let hits = retrieve(
        &index,
        &MINI,
        "ownership rules owner",
        &RetrieveConfig { mode: Mode::Sparse, ..dense_config(30, 30) },
    )
    .unwrap()
    .hits;
    assert!(hits.iter().any(|h| h.chunk == next) && hits.iter().all(|h| !old.contains(&h.chunk)));
    index.commit().unwrap();
    assert_eq!(index.manifest().generation, 2);

    // One id twice in a batch is refused, naming it.
    let dup = [(&changed, Vec::new()), (&changed, Vec::new())];
    assert!(
        matches!(index.add_chunked(&dup, &MINI, &mut |_, _| {}), Err(Error::RagDuplicateDocument { id }) if id == "book/ownership.md")
    );
}

#[test]
fn another_embedder_fingerprint_is_a_mismatch() {
    let tmp = Tmp::new("mismatch");
    drop(build(&tmp, &MINI));
    let other = Mini { fingerprint: Some("bert-0000000000000000") };
    match RagIndex::open(&tmp.0, &other) {
        Err(Error::RagIndexMismatch { what, built, current, .. }) => {
            assert_eq!(what, "embedder");
            assert_eq!(built, bert().fingerprint());
            assert_eq!(current, "bert-0000000000000000");
        }
        other => panic!("expected RagIndexMismatch, got {other:?}"),
    }
    // A manifest from a future format version.
    let path = tmp.0.join("manifest.json");
    let text = std::fs::read_to_string(&path).unwrap().replace("\"version\": 1", "\"version\": 99");
    std::fs::write(&path, text).unwrap();
    assert!(matches!(RagIndex::open(&tmp.0, &MINI), Err(Error::RagIndexMismatch { what: "format version", .. })));
}

#[test]
fn damaged_files_are_reported_as_corrupt() {
    let check = |damage: &dyn Fn(&std::path::Path), what: &str| {
        let tmp = Tmp::new("corrupt");
        drop(build(&tmp, &MINI));
        damage(&tmp.0);
        match RagIndex::open(&tmp.0, &MINI) {
            Err(Error::RagIndexCorrupt { reason, .. }) => assert!(reason.contains(what), "{reason}"),
            other => panic!("expected RagIndexCorrupt ({what}), got {other:?}"),
        }
    };
    let truncate = |dir: &std::path::Path| {
        let f = std::fs::OpenOptions::new().write(true).open(dir.join("vectors.1.f32")).unwrap();
        let len = f.metadata().unwrap().len();
        f.set_len(len - 4).unwrap();
    };
    check(&truncate, "vectors.1.f32");
    check(&|dir| std::fs::remove_file(dir.join("manifest.json")).unwrap(), "manifest.json is missing");
    check(&|dir| std::fs::remove_file(dir.join("chunks.1.jsonl")).unwrap(), "chunks.1.jsonl is missing");
    check(
        &|dir| {
            let p = dir.join("chunks.1.jsonl");
            let t = std::fs::read_to_string(&p).unwrap().replacen("Ownership", "Ownershiq", 1);
            std::fs::write(&p, t).unwrap();
        },
        "BLAKE3",
    );
    check(
        &|dir| std::fs::write(dir.join("manifest.json"), "{\"format\": \"sovereign-rag-index\"").unwrap(),
        "manifest.json",
    );
    check(&|dir| std::fs::remove_dir_all(dir.join("bm25")).unwrap(), "bm25");
    check(&|dir| std::fs::remove_file(dir.join("graph.1.hnsw")).unwrap(), "graph.1.hnsw is missing");
    // A graph file that passes the manifest's checks but is not the vectors' graph: a manifest
    // rewritten for a graph of other vectors (its size and BLAKE3 updated to match).
    check(
        &|dir| {
            let manifest_path = dir.join("manifest.json");
            let mut manifest: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
            let dim = manifest["dim"].as_u64().unwrap() as usize;
            let other = kernels::ann::Hnsw::build(&vec![0.5f32; 3 * dim], dim, config().hnsw).unwrap().to_bytes();
            std::fs::write(dir.join("graph.1.hnsw"), &other).unwrap();
            manifest["files"][3]["bytes"] = other.len().into();
            manifest["files"][3]["blake3"] = blake3::hash(&other).to_hex().to_string().into();
            std::fs::write(&manifest_path, serde_json::to_vec(&manifest).unwrap()).unwrap();
        },
        "is not the graph of vectors.1.f32",
    );
}

#[test]
fn a_commit_interrupted_before_the_manifest_rename_leaves_the_previous_commit() {
    let tmp = Tmp::new("crash");
    let mut index = build(&tmp, &MINI);
    let before = snapshot(&index, &MINI);
    let manifest = index.manifest().clone();
    let (extra, chunks) = make_doc(
        "cargo/build-scripts.md",
        "cargo",
        &["A build script is a file named build.rs compiled and run before the package."],
    );
    index.add_chunked(&[(&extra, chunks.clone())], &MINI, &mut |_, _| {}).unwrap();
    index.delete_document("book/closures.md").unwrap();
    index.commit_interrupted_before_manifest().unwrap();
    assert!(tmp.0.join("vectors.2.f32").exists(), "the next generation's files were written");
    drop(index);

    let mut reopened = RagIndex::open(&tmp.0, &MINI).unwrap();
    assert_eq!(reopened.manifest(), &manifest);
    assert!(reopened.document("cargo/build-scripts.md").is_none());
    assert!(reopened.document("book/closures.md").is_some());
    assert_eq!(snapshot(&reopened, &MINI), before, "BM25 rolled back to the manifest's chunks too");
    let sparse = RetrieveConfig { mode: Mode::Sparse, ..dense_config(5, 5) };
    assert!(retrieve(&reopened, &MINI, "build.rs script", &sparse).unwrap().hits.iter().all(|h| h.chunk < 17));

    // The next commit overwrites the leftovers and opens.
    reopened.add_chunked(&[(&extra, chunks)], &MINI, &mut |_, _| {}).unwrap();
    reopened.commit().unwrap();
    drop(reopened);
    let again = RagIndex::open(&tmp.0, &MINI).unwrap();
    assert_eq!(again.manifest().generation, 2);
    assert!(again.document("cargo/build-scripts.md").is_some());
    let files: Vec<String> =
        std::fs::read_dir(&tmp.0).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(!files.iter().any(|f| f.ends_with(".1.jsonl") || f == "manifest.json.tmp"), "{files:?}");
}

#[test]
fn create_refuses_a_folder_that_is_not_empty() {
    let tmp = Tmp::new("nonempty");
    std::fs::create_dir_all(&tmp.0).unwrap();
    std::fs::write(tmp.0.join("x"), "x").unwrap();
    assert!(matches!(RagIndex::create(&tmp.0, &MINI, config()), Err(Error::RagIo { .. })));
}

// ---------------------------------------------------------------- reranking

/// Hand-made (question, answering passage, unrelated passage) triples.
const JUDGED: &[(&str, &str, &str)] = &[
    (
        "What is the capital of France?",
        "Paris is the capital and largest city of France.",
        "Cargo is the Rust package manager. It downloads dependencies.",
    ),
    (
        "How many legs does a spider have?",
        "Spiders are arachnids; every spider has eight legs.",
        "The release profile uses opt-level 3.",
    ),
    (
        "What colour is the sky on a clear day?",
        "On a clear day the sky is blue because air scatters blue light.",
        "A workspace shares one Cargo.lock file.",
    ),
    (
        "When is a value dropped?",
        "When the owner goes out of scope, the value will be dropped.",
        "Profiles provide a way to alter the compiler settings.",
    ),
];

/// Scores every triple batched (both passages in one pass) and alone; checks they agree within 1e-4
/// and returns how often the answering passage scored higher.
fn judge_wins(judge: &LlmJudge<&LlamaModel>) -> usize {
    let mut wins = 0;
    for (q, good, bad) in JUDGED {
        let s = judge.score(q, &[good, bad]).unwrap();
        for (p, batched) in [good, bad].iter().zip(&s) {
            let one = judge.score_one(q, p).unwrap();
            assert!((one - batched).abs() < 1e-4, "{:?} {q}: batched {batched} vs alone {one}", judge.scoring);
        }
        eprintln!("{:?} {q}: answering {} unrelated {}", judge.scoring, s[0], s[1]);
        wins += usize::from(s[0] > s[1]);
    }
    wins
}

#[test]
fn llm_judge_batches_exactly_and_query_likelihood_prefers_the_answering_passage() {
    let model = smollm();
    let mut judge = LlmJudge::new(model).unwrap();
    assert_eq!(judge.scoring, JudgeScoring::QueryLikelihood, "the default");
    judge.scoring = JudgeScoring::YesNo;
    judge.batch = 2;
    // p(yes) sums the single-token variants the tokenizer has.
    let bpe = kernels::tokenize::Bpe::from_gguf(model.gguf()).unwrap();
    let names = |ids: &[u32]| ids.iter().map(|&i| bpe.token(i).unwrap().to_string()).collect::<Vec<_>>();
    assert_eq!(names(judge.yes_ids()), ["ĠYes", "Ġyes", "yes", "Yes"]);
    assert_eq!(names(judge.no_ids()), ["Ġno", "ĠNo", "no", "No", "NO"]);
    // The yes/no judge on a 135M model is close to chance (measured, not asserted): it answers
    // "No" first whatever the passage.
    let yes_no = judge_wins(&judge);
    eprintln!("yes/no judge: {yes_no}/{} answering passages above unrelated ones", JUDGED.len());
    judge.scoring = JudgeScoring::QueryLikelihood;
    assert_eq!(judge.name(), "llm-query-likelihood");
    assert_eq!(judge_wins(&judge), JUDGED.len());
}

#[test]
fn minilm_windows_score_is_the_best_window_cosine() {
    let tmp = Tmp::new("windows");
    let model = bert();
    let mut index = RagIndex::create(&tmp.0, model, config()).unwrap();
    // A long chunk whose answer sits past MiniLM's 128-token truncation.
    let filler = "The quick brown fox jumps over the lazy dog near the river bank. ".repeat(14);
    let long = format!("{filler}Cargo.lock records the exact versions of every dependency in a workspace.");
    let texts = [long.as_str(), "Closures capture their environment.", "Traits describe shared behaviour."];
    let docs: Vec<(Document, Vec<Chunk>)> =
        texts.iter().enumerate().map(|(i, t)| make_doc(&format!("d{i}"), "x", &[t])).collect();
    let pairs: Vec<(&Document, Vec<Chunk>)> = docs.iter().map(|(d, c)| (d, c.clone())).collect();
    index.add_chunked(&pairs, model, &mut |_, _| {}).unwrap();
    let query = "which file records exact dependency versions?";

    let mut reranker = MiniLmWindows::new(model);
    reranker.overlap = 40;
    // Brute force: every window embedded alone, cosine in f64, the maximum.
    let q = Embedder::embed(model, &[query]).unwrap().remove(0);
    let spans = model.token_spans(&long);
    assert!(spans.len() > 126, "the long text needs several windows ({} tokens)", spans.len());
    let mut want = Vec::new();
    for t in texts {
        let spans = model.token_spans(t);
        let mut windows = Vec::new();
        if spans.len() <= 126 {
            windows.push(t.to_string());
        } else {
            let mut start = 0;
            loop {
                let end = (start + 126).min(spans.len());
                windows.push(t[spans[start].start..spans[end - 1].end].to_string());
                if end == spans.len() {
                    break;
                }
                start += 126 - 40;
            }
        }
        let best = windows
            .iter()
            .map(|w| {
                let v = Embedder::embed(model, &[w.as_str()]).unwrap().remove(0);
                q.iter().zip(&v).map(|(a, b)| *a as f64 * *b as f64).sum::<f64>()
            })
            .fold(f64::NEG_INFINITY, f64::max);
        want.push(best);
    }
    assert_eq!(token_windows(&spans, long.len(), 126, 40).len(), (spans.len() - 126).div_ceil(86) + 1);
    let mut hits: Vec<Hit> =
        (0..3).map(|i| Hit { chunk: i, score: 0.0, dense: None, sparse: None, rerank: None }).collect();
    reranker.rerank(&index, query, &mut hits).unwrap();
    assert_eq!(reranker.name(), "minilm-windows");
    for h in &hits {
        let w = want[h.chunk as usize];
        assert!((h.score as f64 - w).abs() < 1e-5, "chunk {}: {} vs {w}", h.chunk, h.score);
        assert_eq!(h.rerank, Some(h.score));
    }
    assert_eq!(hits[0].chunk, 0, "the long chunk's last window answers: {hits:?}");
    // Its plain (truncated) vector scores lower than its best window.
    let plain = retrieve(&index, model, query, &dense_config(3, 3)).unwrap().hits;
    let plain0 = plain.iter().find(|h| h.chunk == 0).unwrap().score;
    assert!((plain0 as f64) < want[0], "truncated {plain0} vs windowed {}", want[0]);
    // A hit the index does not hold is an error naming it.
    let mut stray = vec![Hit { chunk: 99, score: 0.0, dense: None, sparse: None, rerank: None }];
    assert!(matches!(reranker.rerank(&index, query, &mut stray), Err(Error::RagUnknownChunk { chunk: 99 })));
}

// ---------------------------------------------------------------- real pages, real chunker

/// A page of the Cargo book as the toolchain ships them.
fn cargo_pages() -> Vec<Document> {
    let out = std::process::Command::new("rustc").args(["--print", "sysroot"]).output().expect("rustc runs");
    let sysroot = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    ["rust-version"]
        .iter()
        .map(|p| {
            let path = sysroot.join(format!("share/doc/rust/html/cargo/reference/{p}.html"));
            let html = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            kernels::rag::load::load_html(&format!("cargo/reference/{p}.html"), &html).unwrap()
        })
        .collect()
}

#[test]
fn cargo_book_pages_are_chunked_embedded_and_indexed() {
    let tmp = Tmp::new("cargo");
    let model = bert();
    let docs = cargo_pages();
    let mut index = RagIndex::create(&tmp.0, model, config()).unwrap();
    let mut progress = Vec::new();
    let report = index.add_documents(&docs, model, &mut |done, total| progress.push((done, total))).unwrap();
    assert_eq!((report.documents, report.unchanged, report.replaced), (1, 0, 0));
    assert_eq!(report.chunks, index.len());
    assert!(progress.windows(2).all(|w| w[0].0 <= w[1].0) && progress.last() == Some(&(index.len(), index.len())));
    // Every chunk is a span of its document, sized for MiniLM's window.
    for (_, c) in index.chunks() {
        let doc = docs.iter().find(|d| d.id == c.doc).unwrap();
        assert_eq!(&doc.text[c.span.clone()], c.text);
        assert!(model.count_tokens(&c.text) <= 126, "{} tokens", model.count_tokens(&c.text));
    }
    let texts: Vec<(u32, String)> = index.chunks().map(|(id, c)| (id, c.text.clone())).collect();
    let refs: Vec<(u32, &str)> = texts.iter().map(|(id, t)| (*id, t.as_str())).collect();
    let bm25 = kernels::search::Bm25Index::build(&texts.iter().map(|t| t.1.as_str()).collect::<Vec<_>>()).unwrap();
    let n = texts.len();
    let queries =
        ["What is the minimum supported Rust version?", "How does the resolver pick versions with rust-version?"];
    for q in queries {
        let dense = retrieve(&index, model, q, &dense_config(5, n)).unwrap().hits;
        let want: Vec<u32> = brute_force(q, &refs).iter().take(5).map(|w| w.0).collect();
        assert_eq!(ids(&dense), want, "{q}");
        let sparse = index.sparse_search(q, n).unwrap();
        let want: Vec<(u32, f32)> =
            bm25.search(q, n).unwrap().into_iter().map(|(i, s)| (texts[i as usize].0, s)).collect();
        assert_eq!(sparse, want, "{q}");
    }
    index.commit().unwrap();
    let hybrid = RetrieveConfig { mode: Mode::Hybrid(Fusion::Rrf { k: 60.0 }), ..dense_config(5, 10) };
    let before: Vec<Vec<Hit>> = queries.iter().map(|q| retrieve(&index, model, q, &hybrid).unwrap().hits).collect();
    drop(index);
    let mut index = RagIndex::open(&tmp.0, model).unwrap();
    let after: Vec<Vec<Hit>> = queries.iter().map(|q| retrieve(&index, model, q, &hybrid).unwrap().hits).collect();
    assert_eq!(after, before);
    let again = index.add_documents(&docs, model, &mut |_, _| {}).unwrap();
    assert_eq!(again, AddReport { documents: 1, chunks: 0, unchanged: 1, replaced: 0 });
}
