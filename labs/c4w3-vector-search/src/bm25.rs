//! Okapi BM25 full-text search over an inverted index.
//!
//! An inverted index maps each term to its **postings**: the documents that
//! contain it and how often (term frequency, `tf`). A query only touches the
//! postings of its own terms, so search costs time in proportion to the matches,
//! not to the collection.
//!
//! The scores must agree with the production engine ([`kernels::search`], built
//! on tantivy) to a relative 1e-4, so tokenization ([`tokenize`]), the constants
//! ([`K1`], [`B`]) and the formula ([`term_score`]) follow tantivy's defaults.

use std::collections::HashMap;

/// Term-frequency saturation: how quickly repeated occurrences stop adding score.
pub const K1: f32 = 1.2;
/// Length normalisation: 0 ignores document length, 1 normalises fully.
pub const B: f32 = 0.75;
/// Tokens of this many bytes or more are dropped (tantivy's `RemoveLongFilter`).
pub const MAX_TOKEN_BYTES: usize = 40;

/// Splits `text` into lowercase terms the way tantivy's default tokenizer does:
/// a token is a maximal run of alphanumeric characters ([`char::is_alphanumeric`]);
/// tokens of [`MAX_TOKEN_BYTES`] bytes or more are dropped; the rest are
/// lowercased character by character. Given.
///
/// ```
/// # use c4w3_vector_search::bm25::tokenize;
/// assert_eq!(tokenize("Hello, HNSW-graphs!"), ["hello", "hnsw", "graphs"]);
/// ```
pub fn tokenize(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty() && t.len() < MAX_TOKEN_BYTES)
        .map(|t| t.chars().flat_map(char::to_lowercase).collect())
        .collect()
}

// ANCHOR: bm25_formula_doc
/// Task c4w3.bm25 (10 points, shared with [`Bm25Index::build`] and
/// [`Bm25Index::search`]): the BM25 score one query term contributes to one
/// document.
///
/// ```text
/// idf   = ln(1 + (N - n + 0.5) / (n + 0.5))
/// score = idf · tf · (K1 + 1) / (tf + K1 · (1 - B + B · dl / avgdl))
/// ```
///
/// - `tf`: how many times the term occurs in the document;
/// - `n` (`doc_freq`): how many documents contain the term;
/// - `N` (`num_docs`): how many documents the index holds;
/// - `dl` (`doc_len`): the document's length in tokens;
/// - `avgdl`: the mean document length in tokens over the index.
///
/// Rare terms weigh more (idf), repeats saturate (`K1`), and long documents are
/// discounted (`B`).
// ANCHOR_END: bm25_formula_doc
pub fn term_score(tf: u32, doc_freq: usize, num_docs: usize, doc_len: u32, avgdl: f32) -> f32 {
    todo!("c4w3.bm25")
}

/// One entry of a postings list: a document that contains the term, and how often.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Posting {
    /// Id of the document (its position in the slice given to [`Bm25Index::build`]).
    pub doc: u32,
    /// Number of occurrences of the term in that document (at least 1).
    pub tf: u32,
}

/// An inverted index scored with BM25.
#[derive(Debug, Clone, Default)]
pub struct Bm25Index {
    /// Term → its postings, in increasing document order.
    postings: HashMap<String, Vec<Posting>>,
    /// Length in tokens of every document, indexed by document id.
    doc_lens: Vec<u32>,
    /// Mean of `doc_lens` (0 for an empty collection).
    avgdl: f32,
}

impl Bm25Index {
    /// Task c4w3.bm25 (shared with [`term_score`] and [`Bm25Index::search`]):
    /// indexes `docs`; document `i` gets id `i`.
    ///
    /// [`tokenize`] each document, record its length in tokens, count each
    /// term's occurrences and append `Posting { doc, tf }` to that term's list.
    /// Finally set `avgdl` to the mean document length (0 when there are no
    /// documents). Empty documents count in `N` and in `avgdl`.
    pub fn build(docs: &[&str]) -> Bm25Index {
        todo!("c4w3.bm25")
    }

    /// Number of documents indexed. Given.
    pub fn num_docs(&self) -> usize {
        self.doc_lens.len()
    }

    /// Mean document length in tokens. Given.
    pub fn avgdl(&self) -> f32 {
        self.avgdl
    }

    /// Length in tokens of document `doc`, `None` if there is no such document. Given.
    pub fn doc_len(&self, doc: u32) -> Option<u32> {
        self.doc_lens.get(doc as usize).copied()
    }

    /// The postings of `term` (already lowercased), empty when no document has
    /// it. Given.
    pub fn postings(&self, term: &str) -> &[Posting] {
        self.postings.get(term).map_or(&[], Vec::as_slice)
    }

    /// Task c4w3.bm25 (shared with [`term_score`] and [`Bm25Index::build`]): the
    /// `k` best documents for `query`, as `(doc id, score)`.
    ///
    /// [`tokenize`] the query and keep each **distinct** term once (tantivy's
    /// query parser drops repeated terms). For every term, walk its postings and
    /// add [`term_score`] to the document's total. Return the documents that
    /// matched at least one term, sorted by score descending, then by doc id
    /// ascending, truncated to `k`. Unknown terms contribute nothing; a query
    /// with no known term (or `k = 0`) gives an empty list.
    pub fn search(&self, query: &str, k: usize) -> Vec<(u32, f32)> {
        todo!("c4w3.bm25")
    }
}
