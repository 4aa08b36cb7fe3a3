//! Reciprocal rank fusion against hand-computed scores.

use kernels::fusion::reciprocal_rank_fusion;

/// Checks ids and scores of a fusion against an expected list.
fn check(case: &str, rankings: &[&[u32]], k: f32, want: &[(u32, f32)]) {
    let got = reciprocal_rank_fusion(rankings, k);
    let ids: Vec<u32> = got.iter().map(|h| h.0).collect();
    let want_ids: Vec<u32> = want.iter().map(|h| h.0).collect();
    assert_eq!(ids, want_ids, "{case}: order");
    for (g, w) in got.iter().zip(want) {
        assert!((g.1 - w.1).abs() < 1e-7, "{case}: score of {}: {} vs {}", g.0, g.1, w.1);
    }
}

#[test]
fn rrf_hand_computed() {
    check(
        "two rankings",
        &[&[1, 2, 3], &[3, 1]],
        60.0,
        &[(1, 1.0 / 61.0 + 1.0 / 62.0), (3, 1.0 / 63.0 + 1.0 / 61.0), (2, 1.0 / 62.0)],
    );
    check("ties break by id", &[&[5], &[4]], 60.0, &[(4, 1.0 / 61.0), (5, 1.0 / 61.0)]);
    check("k = 0 is plain reciprocal rank", &[&[9, 8]], 0.0, &[(9, 1.0), (8, 0.5)]);
    check("duplicate in one ranking counts once", &[&[7, 7, 2]], 1.0, &[(7, 0.5), (2, 0.25)]);
    check("no rankings", &[], 60.0, &[]);
    check("empty rankings", &[&[], &[]], 60.0, &[]);
}

#[cfg(feature = "search")]
#[test]
fn rrf_is_reexported_from_search() {
    assert_eq!(kernels::search::reciprocal_rank_fusion(&[&[1]], 60.0), vec![(1, 1.0 / 61.0)]);
}
