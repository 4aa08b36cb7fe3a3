//! Reranking behind the [`Reranker`] trait: SmolLM2 as a pointwise yes/no relevance judge and MiniLM windowed rescoring.
//!
//! No cross-encoder ships in a package that installs here, so the two rerankers use the models we have:
//!
//! - [`LlmJudge`]: a chat model asked, per candidate, "Does the passage answer the question? Answer yes
//!   or no." Its score is `log p(yes) - log p(no)` of the next token after the assistant turn opens
//!   (the pointwise relevance-generation scheme of Liang et al., "Holistic Evaluation of Language
//!   Models", 2022, and of monoT5, Nogueira et al., "Document Ranking with a Pretrained
//!   Sequence-to-Sequence Model", Findings of EMNLP 2020, which compares the "true"/"false" logits).
//!   "yes" is several tokens' worth of probability: SmolLM2's byte-level BPE has single tokens for
//!   `yes`, `Yes`, ` yes` and ` Yes` (and likewise for no), and the model may start its answer with
//!   any of them, so `p(yes)` is the sum over the variants that are single tokens in the vocabulary
//!   (see [`LlmJudge::yes_ids`]). Prompts are run through [`LlamaModel::forward_batch`], one fresh KV
//!   cache per candidate, `batch` candidates per pass; passages are cut to `passage_tokens` tokens.
//! - [`MiniLmWindows`]: MiniLM embeds at most 128 tokens (126 of text between `[CLS]` and `[SEP]`) and
//!   silently drops the rest, so a long chunk's vector describes its beginning only. This reranker
//!   embeds each candidate's whole text in overlapping windows of `window` tokens (the embedder's own
//!   [`TokenSpans`]) and scores it by the largest cosine similarity of a window to the query
//!   (max-passage scoring, as in Dai and Callan, "Deeper Text Understanding for IR with Contextual
//!   Neural Language Modeling", SIGIR 2019).

use std::ops::{Deref, Range};

use super::Embedder;
use super::chunk::TokenSpans;
use super::index::RagIndex;
use super::retrieve::Hit;
use crate::llm::{ChatMessage, ChatPart, ChatTemplate, LlamaModel, SeqStep};
use crate::tokenize::Bpe;
use crate::{Error, Result};

/// Rescores retrieved hits. Implementations set [`Hit::rerank`], make it the [`Hit::score`] and sort
/// the hits by it (descending, ties by ascending chunk id); a cross-encoder can be dropped in.
pub trait Reranker: Sync {
    /// A short name for reports (`llm-judge`, `minilm-windows`).
    fn name(&self) -> &str;
    /// Rescores `hits` for `query` (their chunks' texts come from `index`).
    ///
    /// # Errors
    /// [`Error::RagUnknownChunk`] for a hit whose chunk the index does not hold; the model's errors.
    fn rerank(&self, index: &RagIndex, query: &str, hits: &mut Vec<Hit>) -> Result<()>;
}

/// Writes `scores` into `hits` and sorts them.
fn apply_scores(hits: &mut [Hit], scores: &[f32]) {
    for (h, &s) in hits.iter_mut().zip(scores) {
        h.rerank = Some(s);
        h.score = s;
    }
    hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.chunk.cmp(&b.chunk)));
}

fn hit_texts<'a>(index: &'a RagIndex, hits: &[Hit]) -> Result<Vec<&'a str>> {
    hits.iter()
        .map(|h| index.chunk(h.chunk).map(|c| c.text.as_str()).ok_or(Error::RagUnknownChunk { chunk: h.chunk }))
        .collect()
}

/// `ln Σ exp(x_i)` over `ids`' logits.
fn log_sum_exp(logits: &[f32], ids: &[u32]) -> f32 {
    let xs: Vec<f64> = ids.iter().filter_map(|&i| logits.get(i as usize)).map(|&x| f64::from(x)).collect();
    let max = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !max.is_finite() {
        return max as f32;
    }
    (max + xs.iter().map(|x| (x - max).exp()).sum::<f64>().ln()) as f32
}

/// A chat model as a pointwise relevance judge (see the module docs).
pub struct LlmJudge<M> {
    model: M,
    bpe: Bpe,
    template: ChatTemplate,
    yes: Vec<u32>,
    no: Vec<u32>,
    /// Passages are cut to this many tokens (at a character boundary). Default 256.
    pub passage_tokens: usize,
    /// Candidates per batched forward pass. Default 8.
    pub batch: usize,
    /// The user message, with `{passage}` and `{question}` replaced. Default [`JUDGE_PROMPT`].
    pub prompt: String,
    /// A system message, if any (without one, the chat template's default applies).
    pub system: Option<String>,
    /// How a pair is scored. Default [`JudgeScoring::YesNo`].
    pub scoring: JudgeScoring,
    /// The user message of [`JudgeScoring::QueryLikelihood`], with `{passage}` replaced. Default
    /// [`QUERY_LIKELIHOOD_PROMPT`].
    pub query_likelihood_prompt: String,
}

/// How [`LlmJudge`] turns the model's next-token distributions into a relevance score.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JudgeScoring {
    /// `log p(yes) - log p(no)` after the relevance question (the pointwise judge).
    YesNo,
    /// The mean log-probability of the question's tokens as the assistant's reply to "write a
    /// question that this passage answers" (unsupervised passage reranking by query likelihood:
    /// Sachan et al., "Improving Passage Retrieval with Zero-Shot Question Generation", EMNLP 2022).
    /// On SmolLM2-135M the yes/no judge is near chance (see the tests), query likelihood is not.
    QueryLikelihood,
}

/// The user message of [`JudgeScoring::QueryLikelihood`].
pub const QUERY_LIKELIHOOD_PROMPT: &str = "Passage: {passage}\nWrite a question that this passage answers.";

/// The judge's default user message.
pub const JUDGE_PROMPT: &str =
    "Passage: {passage}\nQuestion: {question}\nDoes the passage answer the question? Answer yes or no.";

impl<M> std::fmt::Debug for LlmJudge<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmJudge")
            .field("yes", &self.yes)
            .field("no", &self.no)
            .field("passage_tokens", &self.passage_tokens)
            .field("batch", &self.batch)
            .finish_non_exhaustive()
    }
}

/// `template` with each placeholder replaced, in one pass (a value containing a placeholder stays as it is).
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    loop {
        let next = values.iter().filter_map(|(k, v)| rest.find(k).map(|i| (i, *k, *v))).min_by_key(|x| x.0);
        match next {
            Some((i, k, v)) => {
                out.push_str(&rest[..i]);
                out.push_str(v);
                rest = &rest[i + k.len()..];
            }
            None => {
                out.push_str(rest);
                return out;
            }
        }
    }
}

/// The token ids among `variants` that the tokenizer encodes as one token.
fn single_tokens(bpe: &Bpe, variants: &[&str]) -> Vec<u32> {
    let mut ids: Vec<u32> =
        variants.iter().map(|v| bpe.encode_ordinary(v)).filter(|t| t.len() == 1).map(|t| t[0]).collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

impl<M: Deref<Target = LlamaModel>> LlmJudge<M> {
    /// A judge on `model` (`&LlamaModel`, `Arc<LlamaModel>`, …), with the tokenizer and chat template
    /// of its GGUF file, scoring by [`JudgeScoring::QueryLikelihood`] (on SmolLM2-135M the yes/no judge
    /// ranks below the retrieval it reranks: `cargo xtask bench rag` measures both).
    ///
    /// # Errors
    /// The tokenizer's and template's errors; [`Error::InvalidParameter`] when neither "yes" nor
    /// "no" is a single token.
    pub fn new(model: M) -> Result<LlmJudge<M>> {
        let bpe = Bpe::from_gguf(model.gguf())?;
        let template = ChatTemplate::from_gguf(model.gguf())?;
        let yes = single_tokens(&bpe, &["yes", "Yes", " yes", " Yes", "YES"]);
        let no = single_tokens(&bpe, &["no", "No", " no", " No", "NO"]);
        if yes.is_empty() || no.is_empty() {
            return Err(Error::InvalidParameter("the judge's tokenizer has no single-token yes or no".into()));
        }
        Ok(LlmJudge {
            model,
            bpe,
            template,
            yes,
            no,
            passage_tokens: 256,
            batch: 8,
            prompt: JUDGE_PROMPT.into(),
            system: None,
            scoring: JudgeScoring::QueryLikelihood,
            query_likelihood_prompt: QUERY_LIKELIHOOD_PROMPT.into(),
        })
    }

    /// The token ids whose probabilities make `p(yes)`.
    pub fn yes_ids(&self) -> &[u32] {
        &self.yes
    }

    /// The token ids whose probabilities make `p(no)`.
    pub fn no_ids(&self) -> &[u32] {
        &self.no
    }

    /// The user message for one pair, the passage cut to `passage_tokens` tokens.
    pub fn prompt_text(&self, query: &str, passage: &str) -> String {
        let ids = self.bpe.encode_ordinary(passage);
        let passage = if ids.len() > self.passage_tokens {
            let bytes: usize =
                ids[..self.passage_tokens].iter().filter_map(|&i| self.bpe.token_bytes(i).ok()).map(<[u8]>::len).sum();
            let mut end = bytes.min(passage.len());
            while !passage.is_char_boundary(end) {
                end -= 1;
            }
            &passage[..end]
        } else {
            passage
        };
        let template = match self.scoring {
            JudgeScoring::YesNo => &self.prompt,
            JudgeScoring::QueryLikelihood => &self.query_likelihood_prompt,
        };
        fill(template, &[("{passage}", passage), ("{question}", query)])
    }

    /// The prompt's token ids: the chat template with the user message, then the assistant turn's
    /// opening (template text with its special tokens, the message as plain text).
    ///
    /// # Errors
    /// The template's errors.
    pub fn prompt_ids(&self, query: &str, passage: &str) -> Result<Vec<u32>> {
        let mut messages = Vec::with_capacity(2);
        if let Some(system) = &self.system {
            messages.push(ChatMessage::new("system", system.clone()));
        }
        messages.push(ChatMessage::new("user", self.prompt_text(query, passage)));
        let parts = self.template.render_parts(&messages, None, true)?;
        Ok(parts
            .iter()
            .flat_map(|p| match p {
                ChatPart::Template(t) => self.bpe.encode(t),
                ChatPart::Content(c) => self.bpe.encode_ordinary(c),
            })
            .collect())
    }

    fn judge(&self, logits: &[f32]) -> f32 {
        log_sum_exp(logits, &self.yes) - log_sum_exp(logits, &self.no)
    }

    /// The score of each passage ([`JudgeScoring`]), `batch` prompts per batched forward pass
    /// ([`LlamaModel::forward_batch`], and [`LlamaModel::forward_batch_positions`] for the question
    /// tokens of [`JudgeScoring::QueryLikelihood`]), one fresh KV cache per passage.
    ///
    /// # Errors
    /// The model's errors ([`Error::ContextFull`] when a prompt exceeds the context);
    /// [`Error::InvalidParameter`] for a question without tokens under query likelihood.
    pub fn score(&self, query: &str, passages: &[&str]) -> Result<Vec<f32>> {
        let prompts = passages.iter().map(|p| self.prompt_ids(query, p)).collect::<Result<Vec<_>>>()?;
        let question = self.question_ids(query)?;
        let mut scores = Vec::with_capacity(prompts.len());
        for group in prompts.chunks(self.batch.max(1)) {
            let mut caches: Vec<_> = group.iter().map(|p| self.model.new_cache(p.len() + question.len())).collect();
            let mut steps: Vec<SeqStep<'_>> =
                group.iter().zip(caches.iter_mut()).map(|(tokens, cache)| SeqStep { tokens, cache }).collect();
            let first = self.model.forward_batch(&mut steps)?;
            match self.scoring {
                JudgeScoring::YesNo => scores.extend(first.iter().map(|l| self.judge(l))),
                JudgeScoring::QueryLikelihood => {
                    let mut sums: Vec<f64> = first.iter().map(|l| log_prob(l, question[0])).collect();
                    if question.len() > 1 {
                        let feed = &question[..question.len() - 1];
                        let mut steps: Vec<SeqStep<'_>> =
                            caches.iter_mut().map(|cache| SeqStep { tokens: feed, cache }).collect();
                        let rows = self.model.forward_batch_positions(&mut steps, &vec![true; group.len()])?;
                        let vocab = first.first().map_or(0, Vec::len);
                        for (sum, all) in sums.iter_mut().zip(&rows) {
                            for (row, &next) in all.chunks_exact(vocab).zip(&question[1..]) {
                                *sum += log_prob(row, next);
                            }
                        }
                    }
                    scores.extend(sums.iter().map(|s| (s / question.len() as f64) as f32));
                }
            }
        }
        Ok(scores)
    }

    /// The question's tokens (query likelihood only; empty for the yes/no judge).
    fn question_ids(&self, query: &str) -> Result<Vec<u32>> {
        if self.scoring == JudgeScoring::YesNo {
            return Ok(Vec::new());
        }
        let ids = self.bpe.encode_ordinary(query);
        if ids.is_empty() {
            return Err(Error::InvalidParameter("query likelihood needs a question with at least one token".into()));
        }
        Ok(ids)
    }

    /// [`LlmJudge::score`] for one passage through [`LlamaModel::forward`], one token at a time for
    /// the question (the unbatched reference).
    ///
    /// # Errors
    /// As [`LlmJudge::score`].
    pub fn score_one(&self, query: &str, passage: &str) -> Result<f32> {
        let prompt = self.prompt_ids(query, passage)?;
        let question = self.question_ids(query)?;
        let mut cache = self.model.new_cache(prompt.len() + question.len());
        let mut logits = self.model.forward(&prompt, &mut cache)?;
        if self.scoring == JudgeScoring::YesNo {
            return Ok(self.judge(&logits));
        }
        let mut sum = 0.0;
        for (i, &t) in question.iter().enumerate() {
            sum += log_prob(&logits, t);
            if i + 1 < question.len() {
                logits = self.model.forward(&[t], &mut cache)?;
            }
        }
        Ok((sum / question.len() as f64) as f32)
    }
}

/// `log softmax(logits)[id]` in f64.
fn log_prob(logits: &[f32], id: u32) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let lse = max + logits.iter().map(|&x| (x as f64 - max).exp()).sum::<f64>().ln();
    logits.get(id as usize).map_or(f64::NEG_INFINITY, |&x| x as f64 - lse)
}

impl<M: Deref<Target = LlamaModel> + Sync> Reranker for LlmJudge<M> {
    fn name(&self) -> &str {
        match self.scoring {
            JudgeScoring::YesNo => "llm-judge",
            JudgeScoring::QueryLikelihood => "llm-query-likelihood",
        }
    }

    fn rerank(&self, index: &RagIndex, query: &str, hits: &mut Vec<Hit>) -> Result<()> {
        let texts = hit_texts(index, hits)?;
        let scores = self.score(query, &texts)?;
        apply_scores(hits, &scores);
        Ok(())
    }
}

/// MiniLM rescoring over the whole text in overlapping windows (see the module docs).
pub struct MiniLmWindows<E> {
    embedder: E,
    /// Tokens per window: 126, MiniLM's 128 positions less `[CLS]` and `[SEP]`.
    pub window: usize,
    /// Tokens shared by consecutive windows. Default 32.
    pub overlap: usize,
}

impl<E> std::fmt::Debug for MiniLmWindows<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MiniLmWindows")
            .field("window", &self.window)
            .field("overlap", &self.overlap)
            .finish_non_exhaustive()
    }
}

/// Byte ranges of the windows of `window` tokens, consecutive windows sharing `overlap` tokens, over
/// a text with these token spans: one window `0..len` for a text of at most `window` tokens (or none),
/// else windows starting every `window - overlap` tokens, the last one ending at the last token.
pub fn token_windows(spans: &[Range<usize>], text_len: usize, window: usize, overlap: usize) -> Vec<Range<usize>> {
    if spans.len() <= window {
        return std::iter::once(0..text_len).collect();
    }
    let stride = window.saturating_sub(overlap).max(1);
    let mut out = Vec::new();
    let mut start = 0;
    loop {
        let end = (start + window).min(spans.len());
        out.push(spans[start].start..spans[end - 1].end);
        if end == spans.len() {
            break;
        }
        start += stride;
    }
    out
}

impl<E> MiniLmWindows<E>
where
    E: Deref,
    E::Target: Embedder,
{
    /// Windows of 126 tokens overlapping by 32 over `embedder` (`&BertModel`, `Arc<BertModel>`, …).
    pub fn new(embedder: E) -> MiniLmWindows<E> {
        MiniLmWindows { embedder, window: 126, overlap: 32 }
    }

    /// The largest cosine similarity between `query` and a window of each text.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for a zero window or an overlap not below it; the embedder's errors.
    pub fn score(&self, query: &str, texts: &[&str]) -> Result<Vec<f32>> {
        if self.window == 0 || self.overlap >= self.window {
            return Err(Error::InvalidParameter(format!(
                "window {} must be positive and above the overlap {}",
                self.window, self.overlap
            )));
        }
        let e: &E::Target = &self.embedder;
        let q = e.embed(&[query])?.pop().ok_or_else(|| Error::InvalidParameter("no query vector".into()))?;
        let mut owners = Vec::new();
        let mut pieces: Vec<&str> = Vec::new();
        for (i, text) in texts.iter().enumerate() {
            for r in token_windows(&e.token_spans(text), text.len(), self.window, self.overlap) {
                owners.push(i);
                pieces.push(text.get(r).unwrap_or(text));
            }
        }
        let mut scores = vec![f32::NEG_INFINITY; texts.len()];
        for (batch, who) in pieces.chunks(super::index::EMBED_BATCH).zip(owners.chunks(super::index::EMBED_BATCH)) {
            for (v, &i) in e.embed(batch)?.iter().zip(who) {
                scores[i] = scores[i].max(crate::simd::dot(&q, v));
            }
        }
        Ok(scores)
    }
}

impl<E> Reranker for MiniLmWindows<E>
where
    E: Deref + Sync,
    E::Target: Embedder,
{
    fn name(&self) -> &str {
        "minilm-windows"
    }

    fn rerank(&self, index: &RagIndex, query: &str, hits: &mut Vec<Hit>) -> Result<()> {
        let texts = hit_texts(index, hits)?;
        let scores = self.score(query, &texts)?;
        apply_scores(hits, &scores);
        Ok(())
    }
}
