//! BM25 search against hand-computed Okapi BM25 scores and rankings.

use kernels::search::Bm25Index;

const CORPUS: &[&str] = &[
    "the quick brown fox",
    "the lazy dog",
    "quick quick fox jumps",
    "a dog and a fox",
    "Rust is fast",
    "the dog, the fox; the end.",
];

/// The tokens tantivy's default tokenizer produces for short ASCII text.
fn tokens(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|t| !t.is_empty()).map(str::to_lowercase).collect()
}

/// Okapi BM25 (k1 = 1.2, b = 0.75, idf = ln(1 + (N - n + 0.5) / (n + 0.5))),
/// summed over the distinct query terms, every matching document ranked by
/// score descending then id ascending.
fn reference(docs: &[&str], query: &str) -> Vec<(u32, f64)> {
    let (k1, b) = (1.2f64, 0.75f64);
    let docs: Vec<Vec<String>> = docs.iter().map(|d| tokens(d)).collect();
    let n_docs = docs.len() as f64;
    let avgdl = docs.iter().map(Vec::len).sum::<usize>() as f64 / n_docs;
    let mut terms = tokens(query);
    terms.sort();
    terms.dedup();
    let mut scores: Vec<(u32, f64)> = Vec::new();
    for (id, doc) in docs.iter().enumerate() {
        let mut score = 0.0;
        let mut matched = false;
        for t in &terms {
            let tf = doc.iter().filter(|w| *w == t).count() as f64;
            if tf == 0.0 {
                continue;
            }
            matched = true;
            let n = docs.iter().filter(|d| d.contains(t)).count() as f64;
            let idf = (1.0 + (n_docs - n + 0.5) / (n + 0.5)).ln();
            let dl = doc.len() as f64;
            score += idf * tf * (k1 + 1.0) / (tf + k1 * (1.0 - b + b * dl / avgdl));
        }
        if matched {
            scores.push((id as u32, score));
        }
    }
    scores.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    scores
}

fn check(index: &Bm25Index, query: &str, k: usize) {
    let got = index.search(query, k).unwrap();
    let mut want = reference(CORPUS, query);
    want.truncate(k);
    let got_ids: Vec<u32> = got.iter().map(|h| h.0).collect();
    let want_ids: Vec<u32> = want.iter().map(|h| h.0).collect();
    assert_eq!(got_ids, want_ids, "query {query:?}: ranking");
    for ((id, g), (_, w)) in got.iter().zip(&want) {
        assert!((*g as f64 - w).abs() < 1e-4 * w.max(1.0), "query {query:?} doc {id}: score {g} vs {w}");
    }
}

#[test]
fn one_score_by_hand() {
    let index = Bm25Index::build(CORPUS).unwrap();
    // "fox" is in documents 0, 2, 3 and 5 of N = 6; lengths 4, 3, 4, 5, 3, 6 → avgdl = 25/6.
    // Document 0: tf = 1, dl = 4.
    let idf = (1.0f64 + (6.0 - 4.0 + 0.5) / (4.0 + 0.5)).ln();
    let want = idf * 2.2 / (1.0 + 1.2 * (0.25 + 0.75 * 4.0 / (25.0 / 6.0)));
    let hits = index.search("fox", 10).unwrap();
    let doc0 = hits.iter().find(|h| h.0 == 0).expect("document 0 matches");
    assert!((doc0.1 as f64 - want).abs() < 1e-5, "{} vs {want}", doc0.1);
    assert_eq!(hits.len(), 4);
}

#[test]
fn rankings_match_hand_computed_bm25() {
    let index = Bm25Index::build(CORPUS).unwrap();
    assert_eq!(index.len(), CORPUS.len());
    for query in ["fox", "quick fox", "dog", "the dog", "lazy", "rust fast", "quick quick", "fox dog the a"] {
        for k in [1, 2, 3, 10] {
            check(&index, query, k);
        }
    }
    // The repeated term and the shorter document put document 2 first.
    assert_eq!(index.search("quick fox", 3).unwrap()[0].0, 2);
}

#[test]
fn awkward_queries_do_not_fail() {
    let index = Bm25Index::build(CORPUS).unwrap();
    for query in ["", "   ", "!!!", "\"", "(", "AND", "+:-*", "title:fox"] {
        let result = index.search(query, 5);
        assert!(result.is_ok(), "query {query:?}: {result:?}");
    }
    assert!(index.search("", 5).unwrap().is_empty());
    assert!(index.search("?!.,", 5).unwrap().is_empty());
    assert!(index.search("unicorn", 5).unwrap().is_empty());
    assert!(index.search("fox", 0).unwrap().is_empty());
    assert_eq!(index.search("fox", usize::MAX).unwrap().len(), 4);
    // Punctuation and case are the tokenizer's business: same terms, same answer.
    assert_eq!(index.search("FOX!!! (dog) AND", 10).unwrap(), index.search("fox dog and", 10).unwrap());
    assert_eq!(index.query_terms("Dog, dog; FOX"), ["dog", "fox"]);
    check(&index, "the dog, the fox; the end.", 10);
}

#[test]
fn ids_are_input_positions() {
    let empty: [&str; 0] = [];
    let index = Bm25Index::build(&empty).unwrap();
    assert!(index.is_empty());
    assert!(index.search("fox", 3).unwrap().is_empty());

    let docs = datasets::text::documents(400, 12, 3);
    let index = Bm25Index::build(&docs).unwrap();
    for query in datasets::text::queries(20, 4) {
        let hits = index.search(&query, 15).unwrap();
        assert!(!hits.is_empty(), "query {query:?} should match something");
        assert!(hits.windows(2).all(|w| w[0].1 >= w[1].1), "scores descend");
        let terms = tokens(&query);
        for (id, _) in &hits {
            let doc = tokens(&docs[*id as usize]);
            assert!(terms.iter().any(|t| doc.contains(t)), "doc {id} {doc:?} shares no term with {query:?}");
        }
    }
}
