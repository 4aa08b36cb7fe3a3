//! Hidden tests of week c3w3 (models and registry): the models' quality against
//! the production `kernels::ml` on the same data (fraud features from the seeded
//! card transactions, a breast-cancer-like synthetic set, clustered vectors), the
//! documented random draws replayed by an independent SplitMix64, brute-force
//! split search, a scikit-learn ROC AUC fixture; the registry's bytes against
//! `kernels::registry` (canonical manifests, Ed25519 signatures both ways, sealed
//! files) and a ChaCha20-Poly1305 fixture made by Python's `cryptography`
//! (`fixtures/make_fixtures.py`).

use std::collections::BTreeMap;

use c3w3_models as lab;
use crate::bench::{as_f32, fraud_features, split_rows};
use kernels::ml::Matrix;
use kernels::registry::{self as reg, Digest};
use lab::Error;
use lab::split::ClassHistogram;
use serde_json::Value;

const AUC_TIES: &str = include_str!("fixtures/auc_ties.json");
const CHACHA: &str = include_str!("fixtures/chacha20poly1305.json");

/// SplitMix64 written out again (the reference stream the lab's draws must replay).
#[derive(Clone)]
struct Sm(u64);

impl Sm {
    fn fork(seed: u64, index: u64) -> Sm {
        Sm(seed ^ index.wrapping_add(1).wrapping_mul(0xD1B5_4A32_D192_ED03))
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        ((self.next() as u128 * n as u128) >> 64) as usize
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.unit().max(1e-300), self.unit());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

fn accuracy(pred: &[u32], y: &[u32]) -> f64 {
    pred.iter().zip(y).filter(|(a, b)| a == b).count() as f64 / y.len() as f64
}

fn gini_ref(c: &[f64]) -> f64 {
    let n: f64 = c.iter().sum();
    if n <= 0.0 { 0.0 } else { 1.0 - c.iter().map(|&k| (k / n).powi(2)).sum::<f64>() }
}

/// The decrease of every allowed split of `h`, by the definition (None when not allowed).
fn brute_force(h: &ClassHistogram, n_root: f64, min_leaf: usize) -> Vec<Option<f64>> {
    let total: Vec<f64> = (0..h.classes).map(|k| (0..h.bins).map(|b| h.counts[b * h.classes + k]).sum()).collect();
    let n_t: f64 = total.iter().sum();
    (0..h.bins.saturating_sub(1))
        .map(|b| {
            let left: Vec<f64> = (0..h.classes).map(|k| (0..=b).map(|i| h.counts[i * h.classes + k]).sum()).collect();
            let right: Vec<f64> = total.iter().zip(&left).map(|(t, l)| t - l).collect();
            let (nl, nr) = (left.iter().sum::<f64>(), right.iter().sum::<f64>());
            (nl >= min_leaf as f64 && nr >= min_leaf as f64).then(|| {
                n_t / n_root * (gini_ref(&total) - nl / n_t * gini_ref(&left) - nr / n_t * gini_ref(&right))
            })
        })
        .collect()
}

fn random_histogram(rng: &mut Sm) -> ClassHistogram {
    let bins = 2 + rng.below(40);
    let classes = 2 + rng.below(3);
    let counts = (0..bins * classes).map(|_| if rng.below(4) == 0 { 0.0 } else { rng.below(30) as f64 }).collect();
    ClassHistogram { bins, classes, counts }
}

/// 569 rows × 30 features, 2 classes (37% class 1): ten informative features shifted by the
/// class, ten noisy copies of them, ten pure noise (the shape of scikit-learn's breast_cancer).
fn breast_cancer_like(seed: u64) -> (Matrix, Vec<u32>) {
    let mut rng = Sm(seed);
    let n = 569;
    let mut data = Vec::with_capacity(n * 30);
    let mut y = Vec::with_capacity(n);
    for _ in 0..n {
        let c = u32::from(rng.unit() < 0.37);
        let shared = rng.normal();
        let informative: Vec<f64> =
            (0..10).map(|j| (0.4 + 0.12 * j as f64) * c as f64 + 0.6 * shared + rng.normal()).collect();
        for v in &informative {
            data.push((*v * 10.0 + 50.0) as f32);
        }
        for v in &informative {
            data.push((*v * 3.0 + rng.normal()) as f32);
        }
        for _ in 0..10 {
            data.push(rng.normal() as f32);
        }
        y.push(c);
    }
    (Matrix::new(n, 30, data).unwrap(), y)
}

fn lab_auc(y: &[u32], p: &[f64], k: usize) -> f64 {
    let s: Vec<f32> = p.chunks_exact(k).map(|c| c[1] as f32).collect();
    kernels::ml::metrics::roc_auc(&as_f32(y), &s).unwrap()
}

fn random_manifest(rng: &mut Sm) -> (lab::manifest::Manifest, reg::Manifest) {
    const PIECES: [&str; 14] =
        ["auc", "é", "日本", "😀", "\"", "\\", "\n", "\t", "\u{1}", "\u{1f}", "\u{7f}", "\u{8}\u{c}\r", " ", "a/b"];
    const FLOATS: [f64; 10] = [0.1, 1e-300, 1.5e300, 3.0, -2.5, 0.0, -0.0, 1e-7, 123456789.125, f64::MIN_POSITIVE];
    const INTS: [u64; 5] = [0, 1, 42, 1 << 53, u64::MAX];
    let name = format!("model-{}.v_{}", rng.below(1000), rng.below(10));
    let version = INTS[rng.below(INTS.len())];
    let mut artefact_names: Vec<String> =
        (0..rng.below(4)).map(|i| format!("{}{i}.bin", ["a", "B", "z", "m_", "0"][rng.below(5)])).collect();
    artefact_names.sort();
    artefact_names.dedup();
    let artefacts: Vec<(String, [u8; 32], u64)> = artefact_names
        .into_iter()
        .map(|n| {
            let mut d = [0u8; 32];
            d.iter_mut().for_each(|b| *b = rng.next() as u8);
            (n, d, INTS[rng.below(INTS.len())])
        })
        .collect();
    let mut metrics = BTreeMap::new();
    for _ in 0..rng.below(6) {
        let key: String = (0..1 + rng.below(3)).map(|_| PIECES[rng.below(PIECES.len())]).collect();
        let v = if rng.below(3) == 0 { (rng.unit() - 0.5) * 10f64.powi(rng.below(40) as i32 - 20) } else { FLOATS[rng.below(FLOATS.len())] };
        metrics.insert(key, v);
    }
    let parents: Vec<(String, u64)> =
        (0..rng.below(3)).map(|i| (format!("parent{i}"), INTS[rng.below(INTS.len())])).collect();
    let training_data = (rng.below(2) == 0).then(|| {
        let mut d = [0u8; 32];
        d.iter_mut().for_each(|b| *b = rng.next() as u8);
        d
    });
    let created = INTS[rng.below(INTS.len())] ^ rng.below(1 << 20) as u64;
    let key_id = reg::KeyId::of(&[rng.next() as u8; 32]);
    let l = lab::manifest::Manifest {
        name: name.clone(),
        version,
        artefacts: artefacts.iter().map(|(n, d, s)| lab::manifest::Artefact { name: n.clone(), digest: *d, size: *s }).collect(),
        metrics: metrics.clone(),
        parents: parents.iter().map(|(n, v)| format!("{n}@{v}")).collect(),
        training_data,
        created_unix_ms: created,
        signer_key_id: key_id.as_str().to_string(),
    };
    let k = reg::Manifest {
        name,
        version,
        artefacts: artefacts.iter().map(|(n, d, s)| reg::ArtefactEntry { name: n.clone(), digest: Digest(*d), size: *s }).collect(),
        metrics,
        parents: parents.iter().map(|(n, v)| reg::ModelRef::new(n, *v).unwrap()).collect(),
        training_data: training_data.map(Digest),
        created_unix_ms: created,
        signer_key_id: key_id,
    };
    (l, k)
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

fn signed_fixture() -> (Vec<u8>, [u8; 32], [u8; 32]) {
    let mut rng = Sm(77);
    let (m, _) = random_manifest(&mut rng);
    let bytes = m.to_canonical_bytes().unwrap();
    let digest = Digest::of(&bytes).0;
    (bytes, digest, [42u8; 32])
}

graded! {
    // ------------------------------------------------------------ c3w3.split-search
    /// gini equals 1 − Σp² on random counts (weights, not only integers).
    fn gini_matches_the_definition_on_random_counts() {
        let mut rng = Sm(1);
        for _ in 0..500 {
            let c: Vec<f64> = (0..1 + rng.below(6)).map(|_| if rng.below(3) == 0 { 0.0 } else { rng.unit() * 50.0 }).collect();
            let (got, want) = (lab::split::gini(&c), gini_ref(&c));
            assert!((got - want).abs() < 1e-12, "gini({c:?}) = {got}, expected {want}");
        }
        assert_eq!(lab::split::gini(&[0.0, 0.0, 0.0]), 0.0, "an empty node has impurity 0");
    }

    /// The best split equals a brute force over every bin, on random multi-class histograms.
    fn best_split_matches_a_brute_force_on_random_histograms() {
        let mut rng = Sm(2);
        for case in 0..400 {
            let h = random_histogram(&mut rng);
            let n_t: f64 = h.counts.iter().sum();
            let n_root = n_t * (1.0 + rng.below(4) as f64);
            let min_leaf = 1 + rng.below(8);
            let all = brute_force(&h, n_root, min_leaf);
            let best = all.iter().flatten().cloned().fold(None, |b: Option<f64>, d| Some(b.map_or(d, |b| b.max(d))));
            let got = lab::split::best_split(&h, n_root, min_leaf);
            match (best, got) {
                (None, None) => {}
                (Some(want), Some(s)) => {
                    assert!((s.decrease - want).abs() < 1e-12, "case {case}: decrease {} but the best is {want} ({h:?})", s.decrease);
                    let at = all.get(s.bin).cloned().flatten();
                    assert!(at.is_some_and(|d| (d - want).abs() < 1e-12), "case {case}: bin {} is not a best allowed split ({h:?}, min leaf {min_leaf})", s.bin);
                    let left: f64 = h.counts[..(s.bin + 1) * h.classes].iter().sum();
                    assert!((s.left_rows - left).abs() < 1e-9 && (s.right_rows - (n_t - left)).abs() < 1e-9, "case {case}: left/right rows {s:?}, expected {left} and {}", n_t - left);
                }
                (want, got) => panic!("case {case}: expected {want:?}, got {got:?} ({h:?}, min leaf {min_leaf})"),
            }
        }
    }

    /// min_samples_leaf bounds both sides; one bin or an all-empty histogram has no split; lowest bin wins ties.
    fn best_split_respects_min_samples_leaf_and_edge_cases() {
        let h = ClassHistogram { bins: 4, classes: 2, counts: vec![3.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 3.0] };
        let s = lab::split::best_split(&h, 8.0, 4).expect("only bin 1 keeps 4 rows on each side");
        assert_eq!(s.bin, 1, "with min leaf 4 only bin 1 is allowed, got {s:?}");
        assert_eq!(lab::split::best_split(&h, 8.0, 5), None, "no side can keep 5 of 8 rows");
        assert_eq!(lab::split::best_split(&ClassHistogram { bins: 1, classes: 2, counts: vec![3.0, 3.0] }, 6.0, 1), None, "one bin: no split");
        assert_eq!(lab::split::best_split(&ClassHistogram::new(5, 2), 10.0, 1), None, "no rows: no split");
        // Symmetric histogram: bins 0 and 2 give the same decrease; the lowest wins.
        let sym = ClassHistogram { bins: 4, classes: 2, counts: vec![2.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0, 2.0] };
        let s = lab::split::best_split(&sym, 8.0, 1).unwrap();
        assert_eq!(s.bin, 0, "ties go to the lowest bin, got {s:?}");
    }

    // ------------------------------------------------------------ c3w3.tree
    /// Test accuracy within 0.03 of kernels::ml::tree at depths 2, 4 and 6 on breast-cancer-like data.
    fn tree_accuracy_is_within_003_of_kernels_on_breast_cancer_like_data() {
        let (x, y) = breast_cancer_like(3);
        let (xa, ya, xb, yb) = split_rows(&x, &y, 400);
        for depth in [2, 4, 6] {
            let t = lab::tree::fit(&xa, &ya, &lab::tree::TreeConfig { max_depth: depth, ..Default::default() }, 256).unwrap();
            assert!(t.depth() <= depth, "depth {} exceeds max_depth {depth}", t.depth());
            let got = accuracy(&t.predict(&xb).unwrap(), &yb);
            let k = kernels::ml::tree::fit(&xa, &as_f32(&ya), &kernels::ml::tree::TreeConfig { max_depth: Some(depth), ..Default::default() }).unwrap();
            let want = accuracy(&k.predict(&xb).unwrap().iter().map(|&v| v as u32).collect::<Vec<_>>(), &yb);
            println!("depth {depth}: lab {got:.4}, kernels {want:.4}");
            assert!(got >= want - 0.03, "depth {depth}: test accuracy {got:.4}, kernels {want:.4} (more than 0.03 lower)");
            let p = t.predict_proba(&xb).unwrap();
            assert_eq!(p.len(), xb.rows() * 2, "predict_proba is rows × classes");
            assert!(p.chunks_exact(2).all(|c| (c[0] + c[1] - 1.0).abs() < 1e-9), "probabilities sum to 1");
        }
    }

    /// On a 10×10×10 integer grid labelled by an axis-aligned rule the tree is exact.
    fn tree_is_exact_on_axis_aligned_separable_data() {
        let mut rows = Vec::new();
        let mut y = Vec::new();
        for a in 0..10 {
            for b in 0..10 {
                for c in 0..10 {
                    rows.push(vec![a as f32 * 0.7 - 2.0, b as f32, c as f32 * 100.0, ((a * 7 + b * 3 + c) % 5) as f32]);
                    y.push(u32::from((a >= 3 && c <= 6) || b == 9));
                }
            }
        }
        let x = Matrix::from_rows(&rows).unwrap();
        let t = lab::tree::fit(&x, &y, &lab::tree::TreeConfig { max_depth: 8, ..Default::default() }, 64).unwrap();
        assert_eq!(accuracy(&t.predict(&x).unwrap(), &y), 1.0, "the rule is axis-aligned: the tree must fit it exactly");
        // Points between the grid values follow the same thresholds.
        let mid = Matrix::from_rows(&[vec![3.0 * 0.7 - 2.0 + 0.01, 0.0, 600.0, 0.0], vec![0.0, 9.0, 900.0, 1.0]]).unwrap();
        assert_eq!(t.predict(&mid).unwrap(), vec![1, 1], "rows between grid values");
        assert!(t.predict_proba(&Matrix::new(1, 3, vec![0.0; 3]).unwrap()).is_err(), "a row of the wrong width is an error");
    }

    /// Leaves hold at least min_samples_leaf rows and the class fractions of exactly the rows that reach them.
    fn tree_respects_depth_min_leaf_and_leaf_fractions() {
        let (x, y) = breast_cancer_like(4);
        let binned = lab::binning::bin_features(&x, 32).unwrap();
        // A bootstrap-like row list with repeats.
        let mut rng = Sm(9);
        let rows: Vec<u32> = (0..x.rows()).map(|_| rng.below(x.rows()) as u32).collect();
        let cfg = lab::tree::TreeConfig { max_depth: 5, min_samples_leaf: 7, ..Default::default() };
        let t = lab::tree::fit_binned(&binned, &y, 2, &rows, &cfg, &mut lab::rng::Rng::new(0)).unwrap();
        assert!(t.depth() <= 5 && t.n_leaves() >= 4, "depth {} (≤ 5) and leaves {} (a real tree)", t.depth(), t.n_leaves());
        let mut reach: Vec<Vec<f64>> = vec![vec![0.0; 2]; t.nodes.len()];
        for &r in &rows {
            let mut i = 0;
            while let lab::tree::Node::Split { feature, bin, left, right, .. } = t.nodes[i] {
                i = if (binned.col(feature)[r as usize] as usize) <= bin { left } else { right };
            }
            reach[i][y[r as usize] as usize] += 1.0;
        }
        for (i, node) in t.nodes.iter().enumerate() {
            if let lab::tree::Node::Leaf { proba, samples } = node {
                let n: f64 = reach[i].iter().sum();
                assert_eq!(*samples as f64, n, "leaf {i}: samples {samples}, but {n} rows reach it");
                assert!(n >= 7.0, "leaf {i} has {n} rows, fewer than min_samples_leaf 7");
                assert!((proba[1] - reach[i][1] / n).abs() < 1e-12, "leaf {i}: proba {proba:?}, rows {:?}", reach[i]);
            }
        }
    }

    // ------------------------------------------------------------ c3w3.forest
    /// bootstrap, sample_features and out_of_bag replay an independent SplitMix64 exactly.
    fn bootstrap_and_feature_draws_replay_a_reference_stream() {
        for (seed, n) in [(0u64, 1usize), (5, 17), (99, 1000), (u64::MAX, 333)] {
            let got = lab::forest::bootstrap(n, &mut lab::rng::Rng::new(seed));
            let mut r = Sm(seed);
            let want: Vec<u32> = (0..n).map(|_| r.below(n) as u32).collect();
            assert_eq!(got, want, "bootstrap({n}) with seed {seed}");
            let oob = lab::forest::out_of_bag(n, &got);
            let brute: Vec<u32> = (0..n as u32).filter(|i| !want.contains(i)).collect();
            assert_eq!(oob, brute, "out_of_bag({n})");
        }
        assert!(lab::forest::bootstrap(0, &mut lab::rng::Rng::new(1)).is_empty(), "n = 0");
        for (seed, d, k) in [(3u64, 30usize, 5usize), (4, 9, 3), (5, 4, 4), (6, 7, 10), (7, 100, 1)] {
            let got = lab::forest::sample_features(d, k, &mut lab::rng::Rng::new(seed));
            let mut r = Sm(seed);
            let mut all: Vec<usize> = (0..d).collect();
            let kk = k.min(d);
            for i in 0..kk {
                let j = i + r.below(d - i);
                all.swap(i, j);
            }
            assert_eq!(got, all[..kk].to_vec(), "sample_features({d}, {k}) with seed {seed}");
        }
    }

    /// Test ROC AUC within 0.02 of kernels::ml::forest on fraud features.
    fn forest_auc_is_within_002_of_kernels_on_fraud_data() {
        let (x, y) = fraud_features(10_000, 21);
        let (xa, ya, xb, yb) = split_rows(&x, &y, 7_000);
        let cfg = lab::forest::ForestConfig {
            n_trees: 40,
            tree: lab::tree::TreeConfig { max_depth: 10, ..Default::default() },
            max_bins: 64,
            seed: 3,
        };
        let f = lab::forest::fit(&xa, &ya, &cfg).unwrap();
        let got = lab_auc(&yb, &f.predict_proba(&xb).unwrap(), f.n_classes);
        let k = kernels::ml::forest::fit(&xa, &as_f32(&ya), &kernels::ml::forest::ForestConfig {
            n_trees: 40,
            tree: kernels::ml::tree::TreeConfig { max_depth: Some(10), ..Default::default() },
            seed: 3,
            ..Default::default()
        }).unwrap();
        let kp: Vec<f32> = k.predict_proba(&xb).unwrap().chunks_exact(2).map(|c| c[1]).collect();
        let want = kernels::ml::metrics::roc_auc(&as_f32(&yb), &kp).unwrap();
        println!("test ROC AUC: lab {got:.4}, kernels {want:.4}");
        assert!(got >= want - 0.02, "test ROC AUC {got:.4} is more than 0.02 below kernels' {want:.4}");
    }

    /// Tree t is grown from Rng::fork(seed, t): its sample is that stream's bootstrap; fitting twice gives the same forest.
    fn forest_is_deterministic_and_each_tree_uses_its_own_stream() {
        let (x, y) = breast_cancer_like(5);
        let cfg = lab::forest::ForestConfig { n_trees: 6, tree: lab::tree::TreeConfig { max_depth: 4, ..Default::default() }, max_bins: 32, seed: 1234 };
        let a = lab::forest::fit(&x, &y, &cfg).unwrap();
        let b = lab::forest::fit(&x, &y, &cfg).unwrap();
        assert_eq!(a, b, "the same seed must give the same forest");
        assert_eq!(a.samples.len(), 6, "one sample per tree");
        for (t, s) in a.samples.iter().enumerate() {
            let mut r = Sm::fork(1234, t as u64);
            let want: Vec<u32> = (0..x.rows()).map(|_| r.below(x.rows()) as u32).collect();
            assert_eq!(*s, want, "tree {t}'s sample must be bootstrap(n, Rng::fork(seed, {t}))");
        }
        let p = a.predict_proba(&x).unwrap();
        for i in [0, 100, 568] {
            let mean: f64 = a.trees.iter().map(|t| t.predict_proba_row(x.row(i))[1]).sum::<f64>() / 6.0;
            assert!((p[i * 2 + 1] - mean).abs() < 1e-12, "row {i}: forest proba {} is not the trees' mean {mean}", p[i * 2 + 1]);
        }
    }

    // ------------------------------------------------------------ c3w3.gbm-round
    /// Sigmoid at ±800 stays finite; empty leaves get 0; one class has no init score; bad lengths are errors.
    fn gradients_and_leaf_values_match_hand_computed_cases() {
        let s = lab::gbm::sigmoid(-800.0);
        assert!(s.is_finite() && (0.0..1e-300).contains(&s), "sigmoid(−800) = {s}");
        assert_eq!(lab::gbm::sigmoid(800.0), 1.0, "sigmoid(800)");
        assert!((lab::gbm::sigmoid(0.0) - 0.5).abs() < 1e-15, "sigmoid(0)");
        let (g, h) = lab::gbm::gradients(&[1, 0], &[-800.0, 800.0]).unwrap();
        assert!(g.iter().chain(&h).all(|v| v.is_finite()), "gradients at ±800 must be finite: {g:?} {h:?}");
        assert!((g[0] + 1.0).abs() < 1e-12 && (g[1] - 1.0).abs() < 1e-12, "g = p − y: {g:?}");
        let cfg = lab::gbm::RoundConfig { learning_rate: 0.3, lambda_l2: 0.0 };
        let v = lab::gbm::leaf_values(&[1.0, -3.0, 2.0], &[0.5, 0.5, 1.0], &[0, 0, 2], 4, &cfg).unwrap();
        assert_eq!(v.len(), 4, "one value per leaf");
        assert!((v[0] - 2.0 * 0.3).abs() < 1e-12, "leaf 0: −(1 − 3)/(0.5 + 0.5) · 0.3 = 0.6, got {}", v[0]);
        assert_eq!((v[1], v[3]), (0.0, 0.0), "leaves without rows get 0 (even with λ = 0): {v:?}");
        assert!((v[2] + 0.6).abs() < 1e-12, "leaf 2: −2/1 · 0.3, got {}", v[2]);
        assert!(lab::gbm::init_score(&[1, 1, 1]).is_err(), "one class: infinite log-odds");
        assert!(lab::gbm::init_score(&[0, 2]).is_err(), "label 2 is not binary");
        assert!(lab::gbm::leaf_values(&[1.0], &[1.0], &[3], 2, &cfg).is_err(), "leaf id out of range");
        let mut raw = vec![0.0; 3];
        assert!(lab::gbm::boost_round(&[0, 1], &mut raw, &[0, 0, 0], 1, &cfg).is_err(), "lengths differ");
        assert_eq!(raw, vec![0.0; 3], "raw is unchanged on error");
    }

    /// One round on random rows equals the formulas computed here.
    fn boost_round_matches_a_reference_on_random_rows() {
        let mut rng = Sm(8);
        for _ in 0..20 {
            let n = 1 + rng.below(300);
            let leaves = 1 + rng.below(9);
            let y: Vec<u32> = (0..n).map(|_| rng.below(2) as u32).collect();
            let raw0: Vec<f64> = (0..n).map(|_| (rng.unit() - 0.5) * 8.0).collect();
            let leaf: Vec<usize> = (0..n).map(|_| rng.below(leaves)).collect();
            let cfg = lab::gbm::RoundConfig { learning_rate: 0.05 + rng.unit(), lambda_l2: rng.unit() * 3.0 };
            let mut gs = vec![0.0; leaves];
            let mut hs = vec![0.0; leaves];
            for i in 0..n {
                let p = 1.0 / (1.0 + (-raw0[i]).exp());
                gs[leaf[i]] += p - y[i] as f64;
                hs[leaf[i]] += p * (1.0 - p);
            }
            let want: Vec<f64> = gs.iter().zip(&hs).map(|(g, h)| if h + cfg.lambda_l2 > 0.0 { -g / (h + cfg.lambda_l2) * cfg.learning_rate } else { 0.0 }).collect();
            let mut raw = raw0.clone();
            let got = lab::gbm::boost_round(&y, &mut raw, &leaf, leaves, &cfg).unwrap();
            for l in 0..leaves {
                assert!((got[l] - want[l]).abs() < 1e-9, "leaf {l}: {} vs {}", got[l], want[l]);
            }
            for i in 0..n {
                assert!((raw[i] - raw0[i] - want[leaf[i]]).abs() < 1e-9, "row {i}: raw {} from {}", raw[i], raw0[i]);
            }
        }
        let y = [0u32, 0, 0, 1];
        assert!((lab::gbm::init_score(&y).unwrap() - (1.0f64 / 3.0).ln()).abs() < 1e-12, "log-odds of 1/4");
    }

    /// A boosting loop of your rounds over regression trees of the negative gradient reaches
    /// kernels::ml::gbm's test ROC AUC within 0.03.
    fn a_boosting_loop_with_your_rounds_approaches_kernels_gbm() {
        let (x, y) = fraud_features(10_000, 23);
        let (xa, ya, xb, yb) = split_rows(&x, &y, 7_000);
        let rounds = 60;
        let cfg = lab::gbm::RoundConfig { learning_rate: 0.1, lambda_l2: 1.0 };
        let f0 = lab::gbm::init_score(&ya).unwrap();
        let mut raw = vec![f0; xa.rows()];
        let mut raw_test = vec![f0; xb.rows()];
        let tree_cfg = kernels::ml::tree::TreeConfig { criterion: kernels::ml::tree::Criterion::Mse, max_depth: Some(3), min_samples_leaf: 20, ..Default::default() };
        for _ in 0..rounds {
            // The partition: a regression tree of the residuals y − p (made here, with kernels).
            let resid: Vec<f32> = ya.iter().zip(&raw).map(|(&t, &r)| (t as f64 - 1.0 / (1.0 + (-r).exp())) as f32).collect();
            let t = kernels::ml::tree::fit(&xa, &resid, &tree_cfg).unwrap();
            let mut ids: BTreeMap<usize, usize> = BTreeMap::new();
            let node_of = |m: &Matrix, i: usize| t.leaf_index(m.row(i));
            for i in 0..xa.rows() {
                let len = ids.len();
                ids.entry(node_of(&xa, i)).or_insert(len);
            }
            let leaf: Vec<usize> = (0..xa.rows()).map(|i| ids[&node_of(&xa, i)]).collect();
            let values = lab::gbm::boost_round(&ya, &mut raw, &leaf, ids.len(), &cfg).unwrap();
            for (i, r) in raw_test.iter_mut().enumerate() {
                if let Some(&l) = ids.get(&node_of(&xb, i)) {
                    *r += values[l];
                }
            }
        }
        let s: Vec<f32> = raw_test.iter().map(|&r| r as f32).collect();
        let got = kernels::ml::metrics::roc_auc(&as_f32(&yb), &s).unwrap();
        let g = kernels::ml::gbm::fit(&xa, &as_f32(&ya), None, &kernels::ml::gbm::GbmConfig {
            num_iterations: rounds,
            num_leaves: 8,
            lambda_l2: 1.0,
            ..Default::default()
        }).unwrap();
        let want = kernels::ml::metrics::roc_auc(&as_f32(&yb), &g.predict_proba(&xb).unwrap()).unwrap();
        println!("test ROC AUC: boosting with your rounds {got:.4}, kernels::ml::gbm {want:.4}");
        assert!(got >= want - 0.03, "boosting with your rounds reaches ROC AUC {got:.4}, kernels::ml::gbm {want:.4}");
    }

    // ------------------------------------------------------------ c3w3.kmeans
    /// Inertia within 1% of kernels::ml::kmeans (best of 5 runs) on clustered data.
    fn kmeans_inertia_is_within_1pct_of_kernels_on_clustered_data() {
        for (seed, k) in [(1u64, 8usize), (2, 16)] {
            let cfg = datasets::vectors::ClusteredConfig { n: 3_000, dim: 16, clusters: k, spread: 0.12, normalize: false, seed };
            let x = Matrix::new(cfg.n, cfg.dim, datasets::vectors::clustered(&cfg)).unwrap();
            let m = lab::kmeans::fit(&x, &lab::kmeans::KMeansConfig { k, n_init: 5, seed, ..Default::default() }).unwrap();
            let r = kernels::ml::kmeans::fit(&x, &kernels::ml::kmeans::KMeansConfig { k, n_init: 5, seed, ..Default::default() }).unwrap();
            println!("k {k}: lab inertia {:.3}, kernels {:.3}", m.inertia, r.inertia());
            assert!(m.inertia <= r.inertia() * 1.01, "k {k}: inertia {} is more than 1% above kernels' {}", m.inertia, r.inertia());
            let recomputed: f64 = (0..x.rows()).map(|i| lab_free_dist(x.row(i), &m.centroids[m.labels[i] as usize * cfg.dim..(m.labels[i] as usize + 1) * cfg.dim])).sum();
            assert!((recomputed - m.inertia).abs() <= 1e-6 * recomputed.max(1.0), "inertia {} but the labels give {recomputed}", m.inertia);
        }
    }

    /// kmeans_plus_plus replays the documented D² draws of an independent SplitMix64.
    fn kmeans_plus_plus_replays_the_documented_draws() {
        let cfg = datasets::vectors::ClusteredConfig { n: 500, dim: 5, clusters: 6, spread: 0.3, normalize: false, seed: 4 };
        let x = Matrix::new(cfg.n, cfg.dim, datasets::vectors::clustered(&cfg)).unwrap();
        for (seed, k) in [(0u64, 1usize), (1, 6), (2, 12)] {
            let got = lab::kmeans::kmeans_plus_plus(&x, k, &mut lab::rng::Rng::new(seed)).unwrap();
            let mut r = Sm(seed);
            let n = x.rows();
            let first = r.below(n);
            let mut want: Vec<f32> = x.row(first).to_vec();
            let mut d: Vec<f64> = (0..n).map(|i| lab_free_dist(x.row(i), x.row(first))).collect();
            for _ in 1..k {
                let total: f64 = d.iter().sum();
                let target = r.unit() * total;
                let mut acc = 0.0;
                let pick = d.iter().position(|&v| { acc += v; acc > target }).unwrap_or_else(|| d.iter().rposition(|&v| v > 0.0).unwrap());
                want.extend_from_slice(x.row(pick));
                for (i, di) in d.iter_mut().enumerate() {
                    *di = di.min(lab_free_dist(x.row(i), x.row(pick)));
                }
            }
            assert_eq!(got, want, "seeds of k = {k} with seed {seed}");
        }
    }

    /// A centroid that wins no row takes the farthest row; the result has no empty cluster.
    fn lloyd_refills_empty_clusters() {
        let cfg = datasets::vectors::ClusteredConfig { n: 400, dim: 3, clusters: 3, spread: 0.1, normalize: false, seed: 9 };
        let x = Matrix::new(cfg.n, cfg.dim, datasets::vectors::clustered(&cfg)).unwrap();
        // Two seeds on real rows, two far away: nobody picks the far ones at first.
        let mut init: Vec<f32> = x.row(0).to_vec();
        init.extend_from_slice(x.row(1));
        init.extend_from_slice(&[1e3, 1e3, 1e3, -1e3, -1e3, -1e3]);
        let m = lab::kmeans::lloyd(&x, &init, 100, 0.0).unwrap();
        let mut counts = [0usize; 4];
        for &l in &m.labels {
            counts[l as usize] += 1;
        }
        assert!(counts.iter().all(|&c| c > 0), "every cluster must end with rows, counts {counts:?}");
        assert!(m.centroids.iter().all(|v| v.abs() < 100.0), "no centroid may stay at ±1000: {:?}", m.centroids);
        for i in 0..x.rows() {
            let dl = lab_free_dist(x.row(i), &m.centroids[m.labels[i] as usize * 3..m.labels[i] as usize * 3 + 3]);
            let best = (0..4).map(|j| lab_free_dist(x.row(i), &m.centroids[j * 3..j * 3 + 3])).fold(f64::INFINITY, f64::min);
            assert!(dl <= best + 1e-9, "row {i} is not labelled with its nearest centroid");
        }
        assert!(lab::kmeans::lloyd(&x, &[0.0; 4], 10, 0.0).is_err(), "init not a multiple of dim");
    }

    /// Two fits with the same seed are identical; bad k is an error.
    fn kmeans_is_deterministic_and_checks_k() {
        let cfg = datasets::vectors::ClusteredConfig { n: 600, dim: 4, clusters: 5, spread: 0.3, normalize: false, seed: 10 };
        let x = Matrix::new(cfg.n, cfg.dim, datasets::vectors::clustered(&cfg)).unwrap();
        let c = lab::kmeans::KMeansConfig { k: 5, n_init: 2, seed: 77, ..Default::default() };
        assert_eq!(lab::kmeans::fit(&x, &c).unwrap(), lab::kmeans::fit(&x, &c).unwrap(), "same seed, same model");
        assert!(lab::kmeans::fit(&x, &lab::kmeans::KMeansConfig { k: 0, ..c.clone() }).is_err(), "k = 0");
        assert!(lab::kmeans::fit(&x, &lab::kmeans::KMeansConfig { k: 601, ..c }).is_err(), "k > rows");
    }

    // ------------------------------------------------------------ c3w3.roc-auc
    /// Equal to kernels::ml::metrics::roc_auc to 1e-12 on random data with heavy ties.
    fn roc_auc_equals_kernels_on_heavy_ties() {
        let mut rng = Sm(12);
        for case in 0..200 {
            let n = 2 + rng.below(2_000);
            let levels = 1 + rng.below(12);
            let mut y: Vec<u32> = (0..n).map(|_| u32::from(rng.unit() < 0.3)).collect();
            y[0] = 0;
            y[1] = 1;
            let s: Vec<f32> = y.iter().map(|&l| (rng.below(levels) + l as usize * rng.below(2)) as f32 * 0.1).collect();
            let want = kernels::ml::metrics::roc_auc(&as_f32(&y), &s).unwrap();
            let got = lab::metrics::roc_auc(&y, &s.iter().map(|&v| v as f64).collect::<Vec<_>>()).unwrap();
            assert!((got - want).abs() < 1e-12, "case {case}: {got} vs kernels {want}");
        }
        assert!(lab::metrics::roc_auc(&[0, 1], &[0.1, f64::NAN]).is_err(), "NaN score");
        assert!(lab::metrics::roc_auc(&[0, 1], &[0.1]).is_err(), "lengths differ");
        assert!(lab::metrics::roc_auc(&[0, 0], &[0.1, 0.2]).is_err(), "one class");
    }

    /// scikit-learn's roc_auc_score on a committed fixture with 11 distinct scores.
    fn roc_auc_matches_scikit_learn_fixture() {
        let v: Value = serde_json::from_str(AUC_TIES).unwrap();
        let y: Vec<u32> = v["labels"].as_array().unwrap().iter().map(|l| l.as_u64().unwrap() as u32).collect();
        let s: Vec<f64> = v["scores"].as_array().unwrap().iter().map(|l| l.as_f64().unwrap()).collect();
        let want = v["roc_auc"].as_f64().unwrap();
        let got = lab::metrics::roc_auc(&y, &s).unwrap();
        assert!((got - want).abs() < 1e-12, "{got} vs scikit-learn {want}");
    }

    // ------------------------------------------------------------ c3w3.manifest
    /// Byte-identical to kernels::registry::Manifest::to_canonical_bytes on random manifests.
    fn canonical_bytes_equal_kernels_on_random_manifests() {
        let mut rng = Sm(13);
        for case in 0..500 {
            let (l, k) = random_manifest(&mut rng);
            let want = k.to_canonical_bytes().unwrap();
            let got = l.to_canonical_bytes().unwrap();
            assert!(got == want, "case {case}:\n  yours   {}\n  kernels {}", String::from_utf8_lossy(&got), String::from_utf8_lossy(&want));
        }
    }

    /// The digest equals kernels' and kernels' strict parser accepts your bytes.
    fn digest_equals_kernels_and_the_bytes_parse_back() {
        let mut rng = Sm(14);
        for case in 0..100 {
            let (l, k) = random_manifest(&mut rng);
            assert_eq!(l.digest().unwrap(), k.digest().unwrap().0, "case {case}: digest");
            let parsed = reg::Manifest::from_canonical_bytes(&l.to_canonical_bytes().unwrap(), "lab").expect("kernels parses your bytes");
            assert_eq!(parsed, k, "case {case}: the bytes read back as the same manifest");
        }
    }

    /// NaN and infinite metrics and unsorted or repeated artefacts are errors.
    fn non_finite_metrics_and_unsorted_artefacts_are_errors() {
        let (mut l, _) = random_manifest(&mut Sm(15));
        l.metrics.insert("bad".into(), f64::NAN);
        assert!(l.to_canonical_bytes().is_err(), "NaN metric");
        l.metrics.insert("bad".into(), f64::INFINITY);
        assert!(l.digest().is_err(), "infinite metric");
        l.metrics.remove("bad");
        let a = lab::manifest::Artefact { name: "b".into(), digest: [0; 32], size: 1 };
        l.artefacts = vec![a.clone(), lab::manifest::Artefact { name: "a".into(), ..a.clone() }];
        assert!(l.to_canonical_bytes().is_err(), "artefacts out of order");
        l.artefacts = vec![a.clone(), a];
        assert!(l.to_canonical_bytes().is_err(), "an artefact twice");
        let mut s = String::new();
        assert!(lab::manifest::write_float(f64::NEG_INFINITY, &mut s).is_err() && s.is_empty(), "−∞ writes nothing");
    }

    // ------------------------------------------------------------ c3w3.sign-verify
    /// A kernels signature verifies with your code, and yours with kernels'.
    fn kernels_signatures_verify_with_your_code_and_yours_with_kernels() {
        let (bytes, digest, seed) = signed_fixture();
        let signer = reg::Signer::from_seed(&seed);
        assert_eq!(lab::sign::key_id(&signer.public_key()), signer.key_id().as_str(), "key id as kernels computes it");
        let blob = signer.sign(reg::keys::MANIFEST_DOMAIN, &bytes);
        let mut ring = lab::sign::Keyring::new();
        ring.add(&signer.public_key()).unwrap();
        let bundle = lab::sign::SignedManifest { manifest: bytes.clone(), signature: blob.to_bytes().to_vec(), public_key: None };
        lab::sign::verify_manifest(&bundle, &digest, &ring).expect("kernels' signature verifies with your code");
        let mine = lab::sign::sign_manifest(&seed, &bytes);
        assert_eq!(mine.signature, blob.to_bytes().to_vec(), "Ed25519 is deterministic: your stored signature equals kernels'");
        let mut kring = reg::Keyring::new();
        kring.add(&signer.public_key()).unwrap();
        let parsed = reg::SignatureBlob::from_bytes(&mine.signature, "lab").unwrap();
        kring.verify(reg::keys::MANIFEST_DOMAIN, &bytes, &parsed, "lab").expect("your signature verifies with kernels");
    }

    /// Every single-byte flip of the manifest (Tampered) or of the signature (UnknownSigner / BadSignature) is rejected.
    fn every_single_byte_flip_is_rejected() {
        let (bytes, digest, seed) = signed_fixture();
        let signed = lab::sign::sign_manifest(&seed, &bytes);
        let mut ring = lab::sign::Keyring::new();
        ring.add(&lab::sign::public_key(&seed)).unwrap();
        lab::sign::verify_manifest(&signed, &digest, &ring).expect("the original verifies");
        for i in 0..bytes.len() {
            let mut b = signed.clone();
            b.manifest[i] ^= 0x01 << (i % 8);
            let e = lab::sign::verify_manifest(&b, &digest, &ring).unwrap_err();
            assert!(matches!(e, Error::Tampered(_)), "manifest byte {i} flipped: expected Tampered, got {e:?}");
        }
        for i in 0..72 {
            let mut b = signed.clone();
            b.signature[i] ^= 0x80 >> (i % 8);
            let e = lab::sign::verify_manifest(&b, &digest, &ring).unwrap_err();
            if i < 8 {
                assert!(matches!(e, Error::UnknownSigner { .. }), "key id byte {i} flipped: expected UnknownSigner, got {e:?}");
            } else {
                assert!(matches!(e, Error::BadSignature { .. }), "signature byte {i} flipped: expected BadSignature, got {e:?}");
            }
        }
        let mut short = signed.clone();
        short.signature.pop();
        assert!(lab::sign::verify_manifest(&short, &digest, &ring).is_err(), "a 71-byte signature");
        // The same bytes under another domain (a promotion-log signature) must not verify as a manifest's.
        let other = reg::Signer::from_seed(&seed).sign(reg::keys::PROMOTION_DOMAIN, &bytes);
        let cross = lab::sign::SignedManifest { signature: other.to_bytes().to_vec(), ..signed };
        assert!(matches!(lab::sign::verify_manifest(&cross, &digest, &ring), Err(Error::BadSignature { .. })), "domain separation");
    }

    /// A bundle that carries its own (valid) key is refused when that key is not pinned.
    fn a_key_carried_by_the_bundle_is_never_trusted() {
        let (bytes, digest, _) = signed_fixture();
        let attacker = [13u8; 32];
        let signed = lab::sign::sign_manifest(&attacker, &bytes);
        assert_eq!(signed.public_key, Some(lab::sign::public_key(&attacker)), "the bundle carries the signer's key");
        let mut ring = lab::sign::Keyring::new();
        ring.add(&lab::sign::public_key(&[42u8; 32])).unwrap();
        let e = lab::sign::verify_manifest(&signed, &digest, &ring).unwrap_err();
        assert!(matches!(e, Error::UnknownSigner { .. }), "an unpinned key must be UnknownSigner, got {e:?}");
    }

    /// Key ids equal kernels' for many keys.
    fn key_ids_equal_kernels() {
        for s in 0..50u8 {
            let signer = reg::Signer::from_seed(&[s; 32]);
            assert_eq!(lab::sign::key_id(&signer.public_key()), signer.key_id().as_str(), "seed {s}");
        }
    }

    // ------------------------------------------------------------ c3w3.seal-open
    /// The cryptography package's seals open with your code, and your seal with the same nonce is byte-identical.
    fn cryptography_fixture_opens_and_seals_byte_identically() {
        let v: Value = serde_json::from_str(CHACHA).unwrap();
        for (i, c) in v["cases"].as_array().unwrap().iter().enumerate() {
            let h = |k: &str| unhex(c[k].as_str().unwrap());
            let key: [u8; 32] = h("key").try_into().unwrap();
            let nonce: [u8; 12] = h("nonce").try_into().unwrap();
            let opened = lab::seal::open(&key, &h("sealed"), &h("aad")).unwrap_or_else(|e| panic!("case {i}: {e}"));
            assert_eq!(opened, h("plaintext"), "case {i}: plaintext");
            assert_eq!(lab::seal::seal_with_nonce(&key, &nonce, &h("plaintext"), &h("aad")).unwrap(), h("sealed"), "case {i}: sealed bytes");
        }
    }

    /// Every flipped byte, a wrong key, a wrong AAD and every truncation are typed errors without plaintext.
    fn tampering_wrong_key_wrong_aad_and_truncation_are_typed_errors() {
        let key = [5u8; 32];
        let aad = lab::seal::artefact_aad(&[7u8; 32], "model.safetensors");
        let mut want_aad = vec![7u8; 32];
        want_aad.extend_from_slice(b"model.safetensors");
        assert_eq!(aad, want_aad, "aad = digest ‖ name");
        let plain: Vec<u8> = (0..100u8).collect();
        let blob = lab::seal::seal(&key, &plain, &aad).unwrap();
        assert_eq!(blob.len(), 12 + 100 + 16, "nonce ‖ ciphertext ‖ tag");
        for i in 0..blob.len() {
            let mut b = blob.clone();
            b[i] ^= 1 << (i % 8);
            assert_eq!(lab::seal::open(&key, &b, &aad), Err(Error::Decrypt), "byte {i} flipped");
        }
        assert_eq!(lab::seal::open(&[6u8; 32], &blob, &aad), Err(Error::Decrypt), "wrong key");
        assert_eq!(lab::seal::open(&key, &blob, &lab::seal::artefact_aad(&[7u8; 32], "model.safetensor")), Err(Error::Decrypt), "wrong aad");
        for len in 0..blob.len() {
            let e = lab::seal::open(&key, &blob[..len], &aad).unwrap_err();
            if len < 28 {
                assert!(matches!(e, Error::Truncated { .. }), "{len} bytes: expected Truncated, got {e:?}");
            } else {
                assert_eq!(e, Error::Decrypt, "{len} bytes");
            }
        }
        let empty = lab::seal::seal(&key, b"", b"").unwrap();
        assert_eq!(lab::seal::open(&key, &empty, b"").unwrap(), Vec::<u8>::new(), "the empty plaintext");
    }

    /// A file sealed by kernels::registry::seal opens with your code (after its 9-byte header), and yours with kernels.
    fn kernels_sealed_files_open_with_your_code_and_back() {
        let key = [11u8; 32];
        let aad = reg::seal::artefact_aad(&Digest([3u8; 32]), "weights.bin");
        let plain = b"kernels and the lab speak the same AEAD".to_vec();
        let sealed = reg::seal::seal_bytes(plain.clone(), &reg::SealKey::Raw(key), &aad).unwrap();
        assert_eq!(lab::seal::open(&key, &sealed[9..], &aad).unwrap(), plain, "kernels' sealed file without its header");
        let mine = lab::seal::seal(&key, &plain, &lab::seal::artefact_aad(&[3u8; 32], "weights.bin")).unwrap();
        let mut file = b"SOVSEAL\x01\x00".to_vec();
        file.extend_from_slice(&mine);
        let back = reg::seal::open_bytes(file, &reg::SealKey::Raw(key), &aad, std::path::Path::new("lab")).unwrap();
        assert_eq!(back, plain, "your blob behind kernels' header opens with kernels");
    }

    /// Two seals of the same plaintext differ (fresh nonces) and both open.
    fn two_seals_of_the_same_plaintext_differ() {
        let key = [1u8; 32];
        let blobs: Vec<Vec<u8>> = (0..8).map(|_| lab::seal::seal(&key, b"same", b"aad").unwrap()).collect();
        for i in 0..blobs.len() {
            for j in i + 1..blobs.len() {
                assert_ne!(blobs[i][..12], blobs[j][..12], "seals {i} and {j} reuse a nonce");
            }
            assert_eq!(lab::seal::open(&key, &blobs[i], b"aad").unwrap(), b"same");
        }
    }
}

/// Squared distance in f64, written here (not the lab's).
fn lab_free_dist(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2)).sum()
}
