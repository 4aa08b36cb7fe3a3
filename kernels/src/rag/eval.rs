//! Evaluation: recall@k, P@k, MRR, nDCG@k, MAP as `trec_eval` computes them, TREC run and qrels files,
//! paired bootstrap, citation and answer metrics.
//!
//! # Retrieval measures
//!
//! Each measure is computed exactly as NIST's `trec_eval` 9.x computes it (`form_res_rels.c`, `m_P.c`,
//! `m_recall.c`, `m_recip_rank.c`, `m_ndcg_cut.c`, `m_map.c`; `pytrec_eval` wraps the same C code), and
//! the tests require equality with `pytrec_eval` to 1e-9 on seeded random runs:
//!
//! - A ranking is re-sorted before it is measured: by score descending, ties by passage id **descending**
//!   (byte order; `comp_sim_docno` returns `strcmp(p2->docno, p1->docno)`). The order of the input does
//!   not matter, only the scores.
//! - A passage is relevant when its grade is at least 1 (`relevance_level` 1); unjudged passages are not
//!   relevant; a negative grade is "in the pool but unjudged" and counts as unjudged.
//! - `P_k` = relevant in the top k / k (a short ranking is padded with non-relevant passages);
//!   `recall_k` = relevant in the top k / relevant judged (0 when nothing is relevant);
//!   `recip_rank` = 1 / rank of the first relevant (0 when none); `map` = the sum over relevant retrieved
//!   passages of the precision at their rank, over the number of relevant judged (Buckley & Voorhees 2005);
//!   `ndcg_cut_k` = DCG@k / ideal DCG@k with gain = grade and discount log2(rank + 1) (Järvelin &
//!   Kekäläinen 2002), the ideal ranking made of every judged passage with a positive grade (0 when the
//!   topic has none).
//! - Only topics present both in the run (an empty ranking counts, and scores 0) and in the qrels are
//!   evaluated; means are over the evaluated topics.
//!
//! # Comparing two systems
//!
//! [`paired_bootstrap`] resamples topics with replacement (B = 10,000 by default, seeded) and reports the
//! percentile interval of the mean difference (Efron & Tibshirani 1993, ch. 13);
//! [`randomisation_test`] is the paired randomisation test of Fisher/Pitman as recommended for IR by
//! Smucker, Allan & Carterette (CIKM 2007): the signs of the per-topic differences are flipped, all 2^n
//! ways when that is at most the resample budget (exact), otherwise at random; its two-sided p-value
//! follows `scipy.stats.permutation_test` (`permutation_type="samples"`) to the letter.
//!
//! # Answers
//!
//! [`citation_scores`] (precision and recall of the cited passages against the gold ones),
//! [`exact_match`] and [`token_f1`] with SQuAD's normalisation ([`normalize_answer`]: lower-case, drop
//! ASCII punctuation, drop the articles a/an/the, collapse white space; Rajpurkar et al. 2016, the
//! official `evaluate-v2.0.py`), and [`faithfulness`], a *heuristic*: an answer sentence counts as
//! supported when its MiniLM cosine to one of its cited chunks reaches a threshold
//! ([`FAITHFULNESS_THRESHOLD`]). Similarity is not entailment: a sentence that negates its source scores
//! high too.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::index::RagIndex;
use super::retrieve::RetrieveConfig;
use super::{Embedder, StageTimings};
use crate::{Error, Result};

/// A judged question (one line of a topics JSON Lines file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Topic {
    pub id: String,
    pub question: String,
    /// A short reference answer, when the question has one.
    #[serde(default)]
    pub answer: Option<String>,
}

/// Graded judgements: topic id → passage id → grade (0 = not relevant, 1 = partly, 2 = answers it).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Qrels {
    pub judgements: BTreeMap<String, BTreeMap<String, i32>>,
}

/// Mean and per-topic values of each measure (named as `trec_eval` names them: `ndcg_cut_10`,
/// `recall_10`, `P_10`, `recip_rank`, `map`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    pub mean: BTreeMap<String, f64>,
    pub per_topic: BTreeMap<String, BTreeMap<String, f64>>,
}

/// A system's output: topic id → ranked `(passage id, score)`. Only the scores order it (see the module
/// docs); a passage may appear once per topic.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub rankings: BTreeMap<String, Vec<(String, f64)>>,
}

/// One retrieval measure, with its cutoff where it has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Measure {
    /// Precision at k (`P_k`).
    P(usize),
    /// Recall at k (`recall_k`).
    Recall(usize),
    /// Reciprocal rank of the first relevant passage (`recip_rank`; its mean is MRR).
    RecipRank,
    /// nDCG at k (`ndcg_cut_k`).
    NdcgCut(usize),
    /// Average precision (`map`; its mean is MAP).
    Map,
}

impl Measure {
    /// The name `trec_eval` prints (and `pytrec_eval` keys its results with).
    pub fn name(&self) -> String {
        match self {
            Measure::P(k) => format!("P_{k}"),
            Measure::Recall(k) => format!("recall_{k}"),
            Measure::RecipRank => "recip_rank".into(),
            Measure::NdcgCut(k) => format!("ndcg_cut_{k}"),
            Measure::Map => "map".into(),
        }
    }

    /// Parses a `trec_eval` name (`P_10`, `recall_5`, `recip_rank`, `ndcg_cut_10`, `map`).
    pub fn parse(name: &str) -> Option<Measure> {
        let cut = |prefix: &str| name.strip_prefix(prefix).and_then(|k| k.parse::<usize>().ok()).filter(|&k| k > 0);
        match name {
            "recip_rank" => Some(Measure::RecipRank),
            "map" => Some(Measure::Map),
            _ => cut("P_")
                .map(Measure::P)
                .or_else(|| cut("recall_").map(Measure::Recall))
                .or_else(|| cut("ndcg_cut_").map(Measure::NdcgCut)),
        }
    }

    fn cutoff(&self) -> Option<usize> {
        match self {
            Measure::P(k) | Measure::Recall(k) | Measure::NdcgCut(k) => Some(*k),
            Measure::RecipRank | Measure::Map => None,
        }
    }
}

/// nDCG@10, recall@10, P@10, MRR and MAP: what the RAG benchmark reports.
pub fn default_measures() -> Vec<Measure> {
    vec![Measure::NdcgCut(10), Measure::Recall(10), Measure::P(10), Measure::RecipRank, Measure::Map]
}

fn format_error(source_name: &str, line: usize, reason: impl Into<String>) -> Error {
    Error::RagEvalFormat { source_name: source_name.to_string(), line, reason: reason.into() }
}

fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| Error::RagIo { path: path.to_path_buf(), source })
}

fn write_text(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|source| Error::RagIo { path: path.to_path_buf(), source })
}

/// Reads topics (JSON Lines).
pub fn read_topics(path: &Path) -> Result<Vec<Topic>> {
    parse_topics(&read_text(path)?, &path.display().to_string())
}

/// Parses topics from JSON Lines text (blank lines skipped); a malformed line or a repeated id is an
/// [`Error::RagEvalFormat`] naming `source_name` and the line.
pub fn parse_topics(text: &str, source_name: &str) -> Result<Vec<Topic>> {
    let mut topics = Vec::new();
    let mut seen = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let topic: Topic =
            serde_json::from_str(line).map_err(|e| format_error(source_name, i + 1, format!("not a topic: {e}")))?;
        if let Some(first) = seen.insert(topic.id.clone(), i + 1) {
            return Err(format_error(source_name, i + 1, format!("topic {} repeats line {first}", topic.id)));
        }
        topics.push(topic);
    }
    Ok(topics)
}

/// Reads a TREC qrels file (`topic 0 passage grade` per line).
pub fn read_qrels(path: &Path) -> Result<Qrels> {
    Qrels::parse(&read_text(path)?, &path.display().to_string())
}

/// Reads a TREC run file (`topic Q0 passage rank score tag` per line).
pub fn read_run(path: &Path) -> Result<Run> {
    Run::parse(&read_text(path)?, &path.display().to_string())
}

impl Qrels {
    /// Parses qrels text: four white-space separated fields per line (`topic iteration passage grade`,
    /// the iteration ignored, the grade an integer), blank lines skipped. A wrong field count, a
    /// non-integer grade or a (topic, passage) judged twice is an [`Error::RagEvalFormat`].
    pub fn parse(text: &str, source_name: &str) -> Result<Qrels> {
        let mut judgements: BTreeMap<String, BTreeMap<String, i32>> = BTreeMap::new();
        let mut lines: BTreeMap<(String, String), usize> = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.is_empty() {
                continue;
            }
            let [topic, _iteration, passage, grade] = fields[..] else {
                return Err(format_error(
                    source_name,
                    i + 1,
                    format!("expected 4 fields (topic iteration passage grade), found {}", fields.len()),
                ));
            };
            let grade: i32 = grade
                .parse()
                .map_err(|_| format_error(source_name, i + 1, format!("grade {grade:?} is not an integer")))?;
            if let Some(first) = lines.insert((topic.to_string(), passage.to_string()), i + 1) {
                return Err(format_error(
                    source_name,
                    i + 1,
                    format!("topic {topic} judges {passage} again (first on line {first})"),
                ));
            }
            judgements.entry(topic.to_string()).or_default().insert(passage.to_string(), grade);
        }
        Ok(Qrels { judgements })
    }

    /// The qrels as TREC text (`topic 0 passage grade`, sorted by topic then passage).
    pub fn to_trec(&self) -> String {
        let mut out = String::new();
        for (topic, judged) in &self.judgements {
            for (passage, grade) in judged {
                out.push_str(&format!("{topic} 0 {passage} {grade}\n"));
            }
        }
        out
    }

    /// Writes [`Qrels::to_trec`] to `path`.
    pub fn write(&self, path: &Path) -> Result<()> {
        write_text(path, &self.to_trec())
    }

    /// The passages judged relevant (grade ≥ 1) for `topic`.
    pub fn relevant(&self, topic: &str) -> Vec<&str> {
        self.judgements
            .get(topic)
            .map(|j| j.iter().filter(|(_, g)| **g >= 1).map(|(p, _)| p.as_str()).collect())
            .unwrap_or_default()
    }
}

impl Run {
    /// Parses run text: six white-space separated fields per line (`topic Q0 passage rank score tag`; the
    /// second, the rank and the tag are ignored, as `trec_eval` ignores them), blank lines skipped. A wrong
    /// field count, a score that is not a number (or is NaN), or a passage listed twice for a topic is an
    /// [`Error::RagEvalFormat`].
    pub fn parse(text: &str, source_name: &str) -> Result<Run> {
        let mut rankings: BTreeMap<String, Vec<(String, f64)>> = BTreeMap::new();
        let mut lines: BTreeMap<(String, String), usize> = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.is_empty() {
                continue;
            }
            let [topic, _q0, passage, _rank, score, _tag] = fields[..] else {
                return Err(format_error(
                    source_name,
                    i + 1,
                    format!("expected 6 fields (topic Q0 passage rank score tag), found {}", fields.len()),
                ));
            };
            let score: f64 = score
                .parse()
                .ok()
                .filter(|s: &f64| !s.is_nan())
                .ok_or_else(|| format_error(source_name, i + 1, format!("score {score:?} is not a number")))?;
            if let Some(first) = lines.insert((topic.to_string(), passage.to_string()), i + 1) {
                return Err(format_error(
                    source_name,
                    i + 1,
                    format!("topic {topic} retrieves {passage} again (first on line {first})"),
                ));
            }
            rankings.entry(topic.to_string()).or_default().push((passage.to_string(), score));
        }
        Ok(Run { rankings })
    }

    /// The run as TREC text, each topic in `trec_eval`'s order with ranks from 1. Scores are written with
    /// Rust's shortest round-trip formatting, so [`Run::parse`] reads back the same values.
    pub fn to_trec(&self, tag: &str) -> String {
        let mut out = String::new();
        for (topic, ranking) in &self.rankings {
            for (rank, (passage, score)) in trec_order(ranking).iter().enumerate() {
                out.push_str(&format!("{topic} Q0 {passage} {} {score:?} {tag}\n", rank + 1));
            }
        }
        out
    }

    /// Writes [`Run::to_trec`] to `path`.
    pub fn write(&self, path: &Path, tag: &str) -> Result<()> {
        write_text(path, &self.to_trec(tag))
    }
}

/// `trec_eval`'s order: score descending, ties by passage id descending (byte order). NaN scores (which
/// [`Run::parse`] refuses) sort last.
pub fn trec_order(ranking: &[(String, f64)]) -> Vec<(String, f64)> {
    let mut sorted = ranking.to_vec();
    sorted.sort_by(|(pa, sa), (pb, sb)| match (sa.is_nan(), sb.is_nan()) {
        (false, false) => sb.partial_cmp(sa).unwrap_or(std::cmp::Ordering::Equal).then_with(|| pb.cmp(pa)),
        (a_nan, b_nan) => a_nan.cmp(&b_nan).then_with(|| pb.cmp(pa)),
    });
    sorted
}

/// The measures of one topic's ranking against its judgements, keyed by [`Measure::name`].
/// [`Error::InvalidParameter`] for a cutoff of 0, a passage ranked twice, or a NaN score.
pub fn evaluate_topic(
    ranking: &[(String, f64)],
    judgements: &BTreeMap<String, i32>,
    measures: &[Measure],
) -> Result<BTreeMap<String, f64>> {
    if let Some(m) = measures.iter().find(|m| m.cutoff() == Some(0)) {
        return Err(Error::InvalidParameter(format!("{m:?}: cutoffs must be positive")));
    }
    if let Some((p, _)) = ranking.iter().find(|(_, s)| s.is_nan()) {
        return Err(Error::InvalidParameter(format!("passage {p} has a NaN score")));
    }
    let ordered = trec_order(ranking);
    let mut seen = BTreeSet::new();
    // Relevance per rank: the grade when judged, -1 when not (both unjudged kinds are below 1).
    let mut rels = Vec::with_capacity(ordered.len());
    for (passage, _) in &ordered {
        if !seen.insert(passage.as_str()) {
            return Err(Error::InvalidParameter(format!("passage {passage} is ranked twice for one topic")));
        }
        rels.push(judgements.get(passage).copied().unwrap_or(-1));
    }
    let num_rel = judgements.values().filter(|&&g| g >= 1).count();
    let mut ideal: Vec<i32> = judgements.values().copied().filter(|&g| g > 0).collect();
    ideal.sort_unstable_by(|a, b| b.cmp(a));
    let rel_in = |k: usize| rels.iter().take(k).filter(|&&g| g >= 1).count();

    let mut out = BTreeMap::new();
    for m in measures {
        let value = match *m {
            Measure::P(k) => rel_in(k) as f64 / k as f64,
            Measure::Recall(k) => {
                if num_rel == 0 {
                    0.0
                } else {
                    rel_in(k) as f64 / num_rel as f64
                }
            }
            Measure::RecipRank => rels.iter().position(|&g| g >= 1).map_or(0.0, |i| 1.0 / (i + 1) as f64),
            Measure::Map => {
                let (mut so_far, mut sum) = (0usize, 0.0f64);
                for (i, &g) in rels.iter().enumerate() {
                    if g >= 1 {
                        so_far += 1;
                        sum += so_far as f64 / (i + 1) as f64;
                    }
                }
                if so_far == 0 { 0.0 } else { sum / num_rel as f64 }
            }
            Measure::NdcgCut(k) => {
                let dcg = |grades: &mut dyn Iterator<Item = i32>| {
                    let mut sum = 0.0f64;
                    for (i, g) in grades.take(k).enumerate() {
                        if g > 0 {
                            sum += f64::from(g) / ((i + 2) as f64).log2();
                        }
                    }
                    sum
                };
                let actual = dcg(&mut rels.iter().copied());
                let best = dcg(&mut ideal.iter().copied());
                if best > 0.0 { actual / best } else { actual }
            }
        };
        out.insert(m.name(), value);
    }
    Ok(out)
}

/// Evaluates `run` against `qrels`: every topic present in both, then the means over those topics (the
/// `mean` map is empty when no topic is evaluated). A qrels topic with no judgements at all scores 0.
pub fn evaluate(run: &Run, qrels: &Qrels, measures: &[Measure]) -> Result<EvalReport> {
    let mut report = EvalReport::default();
    for (topic, ranking) in &run.rankings {
        let Some(judged) = qrels.judgements.get(topic) else { continue };
        let values = evaluate_topic(ranking, judged, measures).map_err(|e| match e {
            Error::InvalidParameter(m) => Error::InvalidParameter(format!("topic {topic}: {m}")),
            other => other,
        })?;
        report.per_topic.insert(topic.clone(), values);
    }
    let n = report.per_topic.len();
    if n > 0 {
        for m in measures {
            let name = m.name();
            let sum: f64 = report.per_topic.values().map(|v| v[&name]).sum();
            report.mean.insert(name, sum / n as f64);
        }
    }
    Ok(report)
}

/// Runs every topic that `qrels` judges through [`super::retrieve::retrieve`] with `config` and turns the
/// hits into passage rankings: a chunk stands for its passage, a passage keeps its first (best-ranked)
/// chunk's score. Returns the run and each retrieved topic's stage timings, in topic order.
/// `on_topic(done, total)` reports progress.
pub fn run_index(
    index: &RagIndex,
    embedder: &dyn Embedder,
    topics: &[Topic],
    qrels: &Qrels,
    config: &RetrieveConfig,
    on_topic: &mut dyn FnMut(usize, usize),
) -> Result<(Run, Vec<StageTimings>)> {
    let judged: Vec<&Topic> = topics.iter().filter(|t| qrels.judgements.contains_key(&t.id)).collect();
    let mut run = Run::default();
    let mut timings = Vec::with_capacity(judged.len());
    for (i, topic) in judged.iter().enumerate() {
        let retrieved = super::retrieve::retrieve(index, embedder, &topic.question, config)?;
        let scored: Vec<(u32, f64)> = retrieved.hits.iter().map(|h| (h.chunk, f64::from(h.score))).collect();
        run.rankings.insert(topic.id.clone(), passages_of(index, &scored)?);
        timings.push(retrieved.timings);
        on_topic(i + 1, judged.len());
    }
    Ok((run, timings))
}

/// Chunk hits `(chunk id, score)` in rank order → passages, each passage at its first occurrence.
pub fn passages_of(index: &RagIndex, hits: &[(u32, f64)]) -> Result<Vec<(String, f64)>> {
    let mut seen = BTreeSet::new();
    let mut ranking = Vec::new();
    for &(id, score) in hits {
        let chunk = index
            .chunk(id)
            .ok_or_else(|| Error::InvalidParameter(format!("retrieval returned chunk {id}, which the index lacks")))?;
        if seen.insert(chunk.passage.clone()) {
            ranking.push((chunk.passage.clone(), score));
        }
    }
    Ok(ranking)
}

/// Retrieves for every topic with `config`, maps chunks to passages (first occurrence ranks) and
/// evaluates against `qrels`.
pub fn evaluate_index(
    index: &RagIndex,
    embedder: &dyn Embedder,
    topics: &[Topic],
    qrels: &Qrels,
    config: &RetrieveConfig,
) -> Result<EvalReport> {
    let (run, _) = run_index(index, embedder, topics, qrels, config, &mut |_, _| {})?;
    evaluate(&run, qrels, &default_measures())
}

// ---------------------------------------------------------------------------------------------------
// Comparing two systems on the same topics
// ---------------------------------------------------------------------------------------------------

/// Resampling parameters of [`paired_bootstrap`] and [`randomisation_test`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BootstrapConfig {
    /// Resamples (B).
    pub resamples: usize,
    /// Coverage of the interval (0.95 for a 95% interval).
    pub confidence: f64,
    pub seed: u64,
}

impl Default for BootstrapConfig {
    fn default() -> Self {
        BootstrapConfig { resamples: 10_000, confidence: 0.95, seed: 20_261_205 }
    }
}

/// A percentile bootstrap interval of the mean of paired differences `a - b`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BootstrapInterval {
    /// The observed mean difference.
    pub mean_diff: f64,
    pub low: f64,
    pub high: f64,
    pub confidence: f64,
    pub resamples: usize,
    pub topics: usize,
}

fn paired_diffs(a: &[f64], b: &[f64]) -> Result<Vec<f64>> {
    if a.len() != b.len() {
        return Err(Error::DimensionMismatch { expected: a.len(), got: b.len() });
    }
    if a.is_empty() {
        return Err(Error::InvalidParameter("a paired comparison needs at least one topic".into()));
    }
    if a.iter().chain(b).any(|x| !x.is_finite()) {
        return Err(Error::InvalidParameter("per-topic values must be finite".into()));
    }
    Ok(a.iter().zip(b).map(|(x, y)| x - y).collect())
}

/// The linearly interpolated quantile of sorted values (`numpy.percentile`'s default, Hyndman & Fan type 7).
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let h = (sorted.len() - 1) as f64 * q.clamp(0.0, 1.0);
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

/// Paired bootstrap of the mean difference between two systems' per-topic values `a` and `b` (same
/// topics, same order): B resamples of the topics with replacement, the percentile interval of the
/// resampled mean differences (Efron & Tibshirani 1993, §13.3).
pub fn paired_bootstrap(a: &[f64], b: &[f64], config: &BootstrapConfig) -> Result<BootstrapInterval> {
    let d = paired_diffs(a, b)?;
    if config.resamples == 0 || !(config.confidence > 0.0 && config.confidence < 1.0) {
        return Err(Error::InvalidParameter(format!(
            "bootstrap needs resamples > 0 and 0 < confidence < 1 (got {} and {})",
            config.resamples, config.confidence
        )));
    }
    let n = d.len();
    let mut rng = rand::rngs::StdRng::seed_from_u64(config.seed);
    let mut means = Vec::with_capacity(config.resamples);
    for _ in 0..config.resamples {
        let sum: f64 = (0..n).map(|_| d[rng.random_range(0..n)]).sum();
        means.push(sum / n as f64);
    }
    means.sort_by(f64::total_cmp);
    let alpha = (1.0 - config.confidence) / 2.0;
    Ok(BootstrapInterval {
        mean_diff: d.iter().sum::<f64>() / n as f64,
        low: quantile_sorted(&means, alpha),
        high: quantile_sorted(&means, 1.0 - alpha),
        confidence: config.confidence,
        resamples: config.resamples,
        topics: n,
    })
}

/// Two-sided p-value of the paired randomisation test of H0 "a and b are exchangeable per topic", with
/// the mean difference as statistic. All 2^n sign flips when 2^n ≤ `resamples` (exact: count / 2^n),
/// otherwise `resamples` random flips (count + 1) / (B + 1); p = min(1, 2 min(P(T ≤ t), P(T ≥ t)))
/// with a relative tolerance of 100 ε on t, as `scipy.stats.permutation_test` computes it.
pub fn randomisation_test(a: &[f64], b: &[f64], resamples: usize, seed: u64) -> Result<f64> {
    let d = paired_diffs(a, b)?;
    if resamples == 0 {
        return Err(Error::InvalidParameter("the randomisation test needs resamples > 0".into()));
    }
    let n = d.len();
    let mean = |signs: &mut dyn FnMut(usize) -> bool| {
        let sum: f64 = d.iter().enumerate().map(|(i, x)| if signs(i) { -x } else { *x }).sum();
        sum / n as f64
    };
    let observed = mean(&mut |_| false);
    let gamma = (100.0 * f64::EPSILON * observed).abs();
    let (mut less, mut greater) = (0usize, 0usize);
    let mut tally = |t: f64| {
        less += usize::from(t <= observed + gamma);
        greater += usize::from(t >= observed - gamma);
    };
    let exact = n < usize::BITS as usize - 1 && (1usize << n) <= resamples;
    let (count, adjustment) = if exact {
        for mask in 0..(1usize << n) {
            tally(mean(&mut |i| mask >> i & 1 == 1));
        }
        (1usize << n, 0usize)
    } else {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        for _ in 0..resamples {
            tally(mean(&mut |_| rng.random::<bool>()));
        }
        (resamples, 1)
    };
    let p = |c: usize| (c + adjustment) as f64 / (count + adjustment) as f64;
    Ok((2.0 * p(less).min(p(greater))).min(1.0))
}

/// System A against system B on one measure: means, the bootstrap interval of the difference and the
/// randomisation test's p-value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairedComparison {
    pub measure: String,
    pub mean_a: f64,
    pub mean_b: f64,
    pub interval: BootstrapInterval,
    pub p_value: f64,
}

/// Compares two reports on `measure` over the topics both evaluated (an error when either evaluated a
/// topic the other did not: a paired test needs the same topics).
pub fn compare(a: &EvalReport, b: &EvalReport, measure: &str, config: &BootstrapConfig) -> Result<PairedComparison> {
    let missing = a.per_topic.keys().find(|t| !b.per_topic.contains_key(*t));
    let extra = b.per_topic.keys().find(|t| !a.per_topic.contains_key(*t));
    if let Some(t) = missing.or(extra) {
        return Err(Error::InvalidParameter(format!("topic {t} is evaluated for one system only")));
    }
    let value = |r: &EvalReport, t: &str| {
        r.per_topic[t].get(measure).copied().ok_or_else(|| Error::InvalidParameter(format!("no {measure} for {t}")))
    };
    let mut xa = Vec::new();
    let mut xb = Vec::new();
    for t in a.per_topic.keys() {
        xa.push(value(a, t)?);
        xb.push(value(b, t)?);
    }
    let interval = paired_bootstrap(&xa, &xb, config)?;
    let p_value = randomisation_test(&xa, &xb, config.resamples, config.seed ^ 0x9e37_79b9_7f4a_7c15)?;
    let n = xa.len() as f64;
    Ok(PairedComparison {
        measure: measure.to_string(),
        mean_a: xa.iter().sum::<f64>() / n,
        mean_b: xb.iter().sum::<f64>() / n,
        interval,
        p_value,
    })
}

// ---------------------------------------------------------------------------------------------------
// Answer metrics
// ---------------------------------------------------------------------------------------------------

/// Precision and recall of an answer's cited passages against the gold (relevant) passages.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CitationScores {
    /// Cited passages that are gold / cited passages (0 when nothing is cited).
    pub precision: f64,
    /// Gold passages cited / gold passages (1 when there is no gold passage).
    pub recall: f64,
}

/// Set-based citation precision and recall (repeated citations count once). Nothing cited and nothing
/// gold scores (1, 1): a refusal on a question the corpus cannot answer is right.
pub fn citation_scores(cited: &[&str], gold: &[&str]) -> CitationScores {
    let cited: BTreeSet<&str> = cited.iter().copied().collect();
    let gold: BTreeSet<&str> = gold.iter().copied().collect();
    let hits = cited.intersection(&gold).count() as f64;
    let precision = match (cited.is_empty(), gold.is_empty()) {
        (true, true) => 1.0,
        (true, false) => 0.0,
        _ => hits / cited.len() as f64,
    };
    let recall = if gold.is_empty() { 1.0 } else { hits / gold.len() as f64 };
    CitationScores { precision, recall }
}

/// Python's `str.isspace` (Unicode White_Space plus the separators U+001C..U+001F), which `str.split` uses.
fn is_python_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// A character of Python's `\w` (Unicode letters, digits and numbers, and `_`).
fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// SQuAD's `normalize_answer`: lower-case, remove ASCII punctuation (`string.punctuation`), remove the
/// articles a/an/the as whole words (`\b(a|an|the)\b`, each replaced by a space), collapse white space.
pub fn normalize_answer(text: &str) -> String {
    let lowered: String = text.to_lowercase().chars().filter(|c| !c.is_ascii_punctuation()).collect();
    // Replace maximal runs of word characters that are exactly an article by a space: `\b(a|an|the)\b`.
    let mut without = String::with_capacity(lowered.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if matches!(word.as_str(), "a" | "an" | "the") {
            out.push(' ');
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in lowered.chars() {
        if is_word(c) {
            word.push(c);
        } else {
            flush(&mut word, &mut without);
            without.push(c);
        }
    }
    flush(&mut word, &mut without);
    without.split(is_python_space).filter(|w| !w.is_empty()).collect::<Vec<_>>().join(" ")
}

/// SQuAD exact match: the normalised strings are equal.
pub fn exact_match(prediction: &str, gold: &str) -> bool {
    normalize_answer(prediction) == normalize_answer(gold)
}

/// SQuAD token F1 of the normalised tokens (multiset overlap); when either side has no token, 1 if both
/// have none, else 0 (`evaluate-v2.0.py`).
pub fn token_f1(prediction: &str, gold: &str) -> f64 {
    let p = normalize_answer(prediction);
    let g = normalize_answer(gold);
    let p: Vec<&str> = p.split(' ').filter(|w| !w.is_empty()).collect();
    let g: Vec<&str> = g.split(' ').filter(|w| !w.is_empty()).collect();
    if p.is_empty() || g.is_empty() {
        return if p == g { 1.0 } else { 0.0 };
    }
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for w in &g {
        *counts.entry(w).or_default() += 1;
    }
    let mut same = 0usize;
    for w in &p {
        if let Some(c) = counts.get_mut(w).filter(|c| **c > 0) {
            *c -= 1;
            same += 1;
        }
    }
    if same == 0 {
        return 0.0;
    }
    let precision = same as f64 / p.len() as f64;
    let recall = same as f64 / g.len() as f64;
    2.0 * precision * recall / (precision + recall)
}

/// The cosine an answer sentence needs with one of its cited chunks to count as supported by
/// [`faithfulness`]. Chosen on this corpus: a sentence copied or paraphrased from a chunk scores above it,
/// a sentence on another subject of the same documentation below (see the tests). A heuristic.
pub const FAITHFULNESS_THRESHOLD: f32 = 0.5;

/// How well one answer sentence is supported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SentenceSupport {
    /// The sentence without its citation markers.
    pub sentence: String,
    /// The best cosine to a cited chunk (0 when nothing is cited).
    pub best_cosine: f32,
    /// Which cited chunk (an index into the `cited` argument) gave it.
    pub best_chunk: Option<usize>,
    pub supported: bool,
}

/// The faithfulness heuristic's verdict on an answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Faithfulness {
    pub threshold: f32,
    pub sentences: Vec<SentenceSupport>,
    /// Supported sentences / sentences (1 for an answer without sentences).
    pub supported_fraction: f64,
}

/// Removes citation markers `[n]` / `[n, m]` (digits, commas and spaces in brackets) that do not follow a
/// word character (`v[0]` is indexing, not a citation).
fn strip_citations(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let indexing = out.chars().next_back().is_some_and(is_word);
        match after.find(']') {
            Some(close)
                if !indexing
                    && close > 0
                    && after[..close].chars().all(|c| c.is_ascii_digit() || c == ',' || c == ' ') =>
            {
                rest = &after[close + 1..];
            }
            _ => {
                out.push('[');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// An answer's sentences, citation markers removed: split after `.`, `!` or `?` followed by white space
/// (or the end), and at line breaks; pieces without a letter or digit are dropped. Answers are short
/// generated prose; abbreviations ("e.g. x") may split early, which only makes the check stricter.
pub fn answer_sentences(answer: &str) -> Vec<String> {
    let text = strip_citations(answer);
    let mut sentences = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let end = c == '\n' || (matches!(c, '.' | '!' | '?') && chars.peek().is_none_or(|n| n.is_whitespace()));
        if c != '\n' {
            current.push(c);
        }
        if end {
            sentences.push(std::mem::take(&mut current));
        }
    }
    sentences.push(current);
    sentences
        .into_iter()
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|s| s.chars().any(char::is_alphanumeric))
        .collect()
}

/// Checks each sentence of `answer` against the chunks it cites: supported when the best MiniLM cosine
/// reaches `threshold` ([`FAITHFULNESS_THRESHOLD`] is the stated default). A heuristic, not entailment.
pub fn faithfulness(answer: &str, cited: &[&str], embedder: &dyn Embedder, threshold: f32) -> Result<Faithfulness> {
    let sentences = answer_sentences(answer);
    let mut supports = Vec::with_capacity(sentences.len());
    if !sentences.is_empty() {
        let sentence_refs: Vec<&str> = sentences.iter().map(String::as_str).collect();
        let sv = embedder.embed(&sentence_refs)?;
        let cv = if cited.is_empty() { Vec::new() } else { embedder.embed(cited)? };
        for (sentence, s) in sentences.iter().zip(&sv) {
            let mut best: Option<(usize, f32)> = None;
            for (j, c) in cv.iter().enumerate() {
                let cos: f32 = s.iter().zip(c).map(|(x, y)| x * y).sum();
                if best.is_none_or(|(_, b)| cos > b) {
                    best = Some((j, cos));
                }
            }
            let best_cosine = best.map_or(0.0, |(_, c)| c);
            supports.push(SentenceSupport {
                sentence: sentence.clone(),
                best_cosine,
                best_chunk: best.map(|(j, _)| j),
                supported: best.is_some() && best_cosine >= threshold,
            });
        }
    }
    let supported = supports.iter().filter(|s| s.supported).count();
    let supported_fraction = if supports.is_empty() { 1.0 } else { supported as f64 / supports.len() as f64 };
    Ok(Faithfulness { threshold, sentences: supports, supported_fraction })
}
