//! Retrieval-augmented generation: load documents, chunk them, index them twice (BM25 and dense),
//! retrieve, rerank, pack a context under a token budget and answer with checked citations.
//!
//! The stages and where they live:
//!
//! | stage | module | what it does |
//! |---|---|---|
//! | load | [`load`] | Markdown, HTML (mdBook pages included), plain text and Parquet columns into [`Document`]s with [`Section`]s and [`Block`]s |
//! | chunk | [`chunk`] | fixed token windows with overlap, sentences, recursive by structure, semantic (MiniLM similarity drops) |
//! | index | [`index`] | a folder holding tantivy BM25 and MiniLM vectors (HNSW) over the chunks, with a manifest; add and delete documents |
//! | retrieve | [`retrieve`] | dense, sparse, hybrid (reciprocal rank or weighted normalised score fusion), metadata filters, MMR |
//! | rerank | [`rerank`] | the [`rerank::Reranker`] trait: SmolLM2 as a yes/no relevance judge, MiniLM windowed rescoring |
//! | pack | [`pack`] | chunks into a token budget: orderings (score, source, lost-in-the-middle aware), overlap dedup |
//! | answer | [`answer`] | a numbered-context prompt, generation whose citations `[n]` are checked (and can be grammar-constrained), refusal below a score threshold |
//! | eval | [`eval`] | recall@k, P@k, MRR, nDCG, MAP (as `trec_eval` computes them), paired bootstrap, citation and answer metrics |
//!
//! Spans are byte ranges into [`Document::text`], the text the loader extracted (for plain text and
//! Markdown sources without markup this is the source itself). A chunk maps to the *passage* (the
//! heading section) it overlaps most, which is what relevance judgements are made on:
//! `datasets/rust-docs-qa/passages.py` states the same rule for the toolchain's mdBook pages.

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Result;

pub mod answer;
pub mod chunk;
pub mod eval;
pub mod index;
pub mod load;
pub mod pack;
pub mod rerank;
pub mod retrieve;

/// A loaded document: its extracted text with the structure the chunkers and the citations need.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Document {
    /// Unique within an index: the source path relative to the corpus root, `/`-separated
    /// (`book/ch04-01-what-is-ownership.html`), or `file.parquet#row` for Parquet rows.
    pub id: String,
    /// The document's title (the first heading, a `<title>`, or the file stem).
    pub title: String,
    /// The extracted text: blocks joined by `\n`, code blocks verbatim.
    pub text: String,
    /// Heading sections in order; together they cover `text` without overlap.
    pub sections: Vec<Section>,
    /// Structural blocks in order (headings, paragraphs, code, list items, table rows).
    pub blocks: Vec<Block>,
    /// Free-form metadata filters match on (`collection`, `lang`, a Parquet column's value, ...).
    pub metadata: BTreeMap<String, String>,
}

/// A heading section of a [`Document`]: the unit relevance judgements are made on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Section {
    /// Titles of the enclosing headings, outermost first (empty before the first heading).
    pub heading_path: Vec<String>,
    /// The heading's `id` (HTML) or its slug (Markdown); `None` for the text before the first heading.
    pub anchor: Option<String>,
    /// Byte span in [`Document::text`].
    pub span: Range<usize>,
}

/// The kind of a structural [`Block`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BlockKind {
    Heading,
    Paragraph,
    Code,
    ListItem,
    TableRow,
}

/// A structural block of a [`Document`]'s text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    pub kind: BlockKind,
    /// Byte span in [`Document::text`].
    pub span: Range<usize>,
}

impl Document {
    /// The passage id of a section: `<document id>#<anchor>`, or the document id for the lead section.
    pub fn passage_id(&self, section: &Section) -> String {
        match &section.anchor {
            Some(anchor) => format!("{}#{anchor}", self.id),
            None => self.id.clone(),
        }
    }

    /// The section a byte span overlaps most (the first on ties); `None` without sections.
    pub fn section_of(&self, span: &Range<usize>) -> Option<&Section> {
        let overlap = |s: &Section| s.span.end.min(span.end).saturating_sub(s.span.start.max(span.start));
        let mut best: Option<&Section> = None;
        for s in &self.sections {
            if best.is_none_or(|b| overlap(s) > overlap(b)) {
                best = Some(s);
            }
        }
        best
    }
}

/// A piece of a document that is indexed, retrieved and cited.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chunk {
    /// The [`Document::id`] it comes from.
    pub doc: String,
    /// Byte span in the document's text; `text == doc.text[span]`.
    pub span: Range<usize>,
    pub text: String,
    /// The heading path of the section it overlaps most.
    pub heading_path: Vec<String>,
    /// The passage id of the section it overlaps most (see [`Document::passage_id`]).
    pub passage: String,
    /// The document's metadata, copied so filters need not load documents.
    pub metadata: BTreeMap<String, String>,
}

/// Turns texts into unit-length vectors: the dense half of the index and the semantic chunker use it.
/// [`crate::nn::bert::BertModel`] implements it; a test or a different encoder can too. Its
/// [`chunk::TokenSpans`] are the encoder's own tokens, so chunks can be sized to its window.
pub trait Embedder: chunk::TokenSpans + Sync {
    /// Names the model and its weights: the index stores it and refuses to open under another.
    fn fingerprint(&self) -> String;
    /// The vectors' dimension.
    fn dim(&self) -> usize;
    /// One L2-normalised vector per text.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>>;
}

/// Wall time spent in each stage of one query (zero for a stage that did not run).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct StageTimings {
    pub embed: Duration,
    pub sparse: Duration,
    pub dense: Duration,
    pub fuse: Duration,
    pub rerank: Duration,
    pub pack: Duration,
    pub generate: Duration,
}

/// The text whose embedding, with the configuration, fingerprints a [`crate::nn::bert::BertModel`].
const FINGERPRINT_PROBE: &str = "sovereign rag: fingerprint probe, ünïcödé 0123456789";

impl Embedder for crate::nn::bert::BertModel {
    /// `minilm-<BLAKE3 of the configuration and of the probe text's embedding bytes>`: any change of
    /// weights, pooling or tokenizer changes the probe's vector.
    fn fingerprint(&self) -> String {
        let mut hasher = blake3::Hasher::new();
        hasher.update(format!("{:?}|{:?}", self.config(), self.pooling()).as_bytes());
        match self.embed(&[FINGERPRINT_PROBE]) {
            Ok(v) => v.iter().flatten().for_each(|x| {
                hasher.update(&x.to_le_bytes());
            }),
            Err(e) => {
                hasher.update(e.to_string().as_bytes());
            }
        }
        format!("bert-{}", &hasher.finalize().to_hex()[..16])
    }

    fn dim(&self) -> usize {
        crate::nn::bert::BertModel::dim(self)
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let mut vectors = crate::nn::bert::BertModel::embed(self, texts)?;
        for v in &mut vectors {
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            if norm > 0.0 {
                v.iter_mut().for_each(|x| *x /= norm);
            }
        }
        Ok(vectors)
    }
}
