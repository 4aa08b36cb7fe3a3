//! BM25 full-text search over an in-memory tantivy index.
//!
//! Documents are indexed in one `TEXT` field with tantivy's default tokenizer
//! (split on non-alphanumeric characters, lower-case, drop tokens over 40
//! bytes). A query is tokenised the same way and becomes an OR of its distinct
//! terms, so punctuation or operator characters in user input never fail to
//! parse. Scores are tantivy's Okapi BM25 with `k1 = 1.2`, `b = 0.75` and
//! `idf = ln(1 + (N - n + 0.5) / (n + 0.5))`; document lengths are stored
//! quantised to one byte (exact for short documents, under ~40 tokens).
//!
//! Rank fusion needs no tantivy and lives in [`crate::fusion`]; it is
//! re-exported here as [`reciprocal_rank_fusion`].

use std::collections::BTreeSet;

use tantivy::collector::TopDocs;
use tantivy::columnar::Column;
use tantivy::query::BooleanQuery;
use tantivy::schema::{FAST, Field, Schema, TEXT};
use tantivy::tokenizer::TextAnalyzer;
use tantivy::{Index, IndexReader, ReloadPolicy, Searcher, TantivyDocument, Term, doc};

pub use crate::fusion::reciprocal_rank_fusion;
use crate::{Error, Result};

/// Memory budget of the (single-threaded) index writer.
const WRITER_BUDGET_BYTES: usize = 64 << 20;

/// A BM25 index over a fixed collection of documents, held in RAM.
pub struct Bm25Index {
    body: Field,
    analyzer: TextAnalyzer,
    /// Kept so the searcher can be refreshed; the collection never changes.
    _reader: IndexReader,
    searcher: Searcher,
    /// Per segment: the `pos` fast field (a document's position in the input).
    positions: Vec<Column<u64>>,
    len: usize,
}

impl std::fmt::Debug for Bm25Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bm25Index").field("len", &self.len).finish_non_exhaustive()
    }
}

impl Bm25Index {
    /// Indexes `docs`; document `i` is returned by [`Bm25Index::search`] as id `i`.
    ///
    /// # Errors
    /// [`Error::Search`] if tantivy fails, [`Error::InvalidParameter`] for more
    /// than `u32::MAX` documents.
    pub fn build<S: AsRef<str>>(docs: &[S]) -> Result<Bm25Index> {
        if docs.len() > u32::MAX as usize {
            return Err(Error::InvalidParameter("more than u32::MAX documents".into()));
        }
        let mut schema = Schema::builder();
        let body = schema.add_text_field("body", TEXT);
        let pos = schema.add_u64_field("pos", FAST);
        let index = Index::create_in_ram(schema.build());
        let mut writer = index.writer_with_num_threads::<TantivyDocument>(1, WRITER_BUDGET_BYTES)?;
        for (i, d) in docs.iter().enumerate() {
            writer.add_document(doc!(body => d.as_ref(), pos => i as u64))?;
        }
        writer.commit()?;
        writer.wait_merging_threads()?;

        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
        let searcher = reader.searcher();
        let positions = searcher
            .segment_readers()
            .iter()
            .map(|s| s.fast_fields().u64("pos"))
            .collect::<tantivy::Result<Vec<_>>>()?;
        let analyzer = index.tokenizer_for_field(body)?;
        Ok(Bm25Index { body, analyzer, _reader: reader, searcher, positions, len: docs.len() })
    }

    /// Number of indexed documents.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no documents are indexed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The distinct terms `query` is made of, after the index's tokenizer
    /// (lower-cased, punctuation dropped), in order of first appearance.
    pub fn query_terms(&self, query: &str) -> Vec<String> {
        distinct_terms(&self.analyzer, query)
    }

    /// The `k` best documents for `query` as `(id, BM25 score)`, best first
    /// (ties by ascending id). Any document containing at least one query term
    /// matches (OR semantics); a query without terms returns nothing.
    ///
    /// # Errors
    /// [`Error::Search`] if tantivy fails.
    pub fn search(&self, query: &str, k: usize) -> Result<Vec<(u32, f32)>> {
        if k == 0 || self.len == 0 {
            return Ok(Vec::new());
        }
        let terms: Vec<Term> = self.query_terms(query).iter().map(|t| Term::from_field_text(self.body, t)).collect();
        if terms.is_empty() {
            return Ok(Vec::new());
        }
        let q = BooleanQuery::new_multiterms_query(terms);
        // The collector allocates for `k` hits: never ask for more than exist.
        let k = k.min(self.len);
        let top = self.searcher.search(&q, &TopDocs::with_limit(k).order_by_score())?;
        let mut hits = Vec::with_capacity(top.len());
        for (score, addr) in top {
            let id =
                self.positions.get(addr.segment_ord as usize).and_then(|c| c.first(addr.doc_id)).ok_or_else(|| {
                    Error::Search(tantivy::TantivyError::InternalError("document without a position".into()))
                })?;
            hits.push((id as u32, score));
        }
        hits.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        Ok(hits)
    }
}

/// The distinct terms of `text` after `analyzer`, in order of first appearance: the OR query both
/// [`Bm25Index`] and `kernels::rag`'s index search with.
pub(crate) fn distinct_terms(analyzer: &TextAnalyzer, text: &str) -> Vec<String> {
    let mut analyzer = analyzer.clone();
    let mut stream = analyzer.token_stream(text);
    let mut seen = BTreeSet::new();
    let mut terms = Vec::new();
    while stream.advance() {
        let term = &stream.token().text;
        if seen.insert(term.clone()) {
            terms.push(term.clone());
        }
    }
    terms
}
