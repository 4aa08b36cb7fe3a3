//! Tests of `kernels::matmul` (Goto & van de Geijn 2008 blocked GEMM, GEMV, batched matmul):
//! every backend against the naive scalar twins, over shapes that straddle the micro-tile
//! (14 × 32, 6 × 16, 4 × 16), the cache blocks (KC = 384, NC = 768, MC = 24 micro-panels), the
//! small-`m` path (m < 4) and the parallel threshold (`m·n·k = 2²¹`).
//!
//! Tolerance. Each `c_ij` is a sum of `k` products. Summed in *any* order in f32 (with or
//! without FMA) its error is at most `γ·Σ_p |a_ip·b_pj|` with `γ = (k + 1)·ε` (Higham, *Accuracy
//! and Stability of Numerical Algorithms*, §3.1). The blocked kernel and the twin sum in
//! different orders, so each is within `γ·Σ|a||b|` of the exact value and they are within
//! `2γ·Σ|a||b|` of each other: that is the bound `check` asserts, per element, with `Σ|a||b|`
//! computed by the scalar twin on `|A|` and `|B|`. Results that must not depend on the order
//! (batched vs a loop of GEMMs, one thread vs two) are compared bit for bit.

use kernels::Error;
use kernels::matmul::{self, Backend, BatchShape, GemmShape};
use proptest::prelude::*;

const EPS: f32 = f32::EPSILON;

fn noise(n: usize, seed: u64) -> Vec<f32> {
    datasets::vectors::uniform(n, seed)
}

fn abs(v: &[f32]) -> Vec<f32> {
    v.iter().map(|x| x.abs()).collect()
}

/// `B` (`k × n`) transposed to `n × k`.
fn transpose(b: &[f32], k: usize, n: usize) -> Vec<f32> {
    let mut t = vec![0.0; b.len()];
    for p in 0..k {
        for j in 0..n {
            t[j * k + p] = b[p * n + j];
        }
    }
    t
}

/// `got` matches `want` element-wise: both NaN, equal (infinities included), or within
/// `2·(k + 1)·ε·mag_i` (see the module doc).
fn assert_close(case: &str, got: &[f32], want: &[f32], mag: &[f32], k: usize) {
    assert_eq!(got.len(), want.len(), "{case}: lengths");
    let gamma = 2.0 * (k as f32 + 1.0) * EPS;
    for (i, ((&g, &w), &s)) in got.iter().zip(want).zip(mag).enumerate() {
        let ok = (g.is_nan() && w.is_nan()) || g == w || (g - w).abs() <= gamma * s;
        assert!(ok, "{case}: element {i}: got {g}, want {w} (Σ|a||b| = {s}, tolerance {})", gamma * s);
    }
}

/// Runs `gemm` and `gemm_nt` on every backend for `A`, `B` against the scalar twins. `C` starts
/// as NaN, so an output element that is not overwritten shows up.
fn check(case: &str, a: &[f32], b: &[f32], shape: GemmShape) {
    let GemmShape { m, n, k } = shape;
    let mut want = vec![0.0; m * n];
    matmul::gemm_scalar(a, b, &mut want, shape).unwrap();
    let mut mag = vec![0.0; m * n];
    matmul::gemm_scalar(&abs(a), &abs(b), &mut mag, shape).unwrap();
    let bt = transpose(b, k, n);
    let mut want_nt = vec![0.0; m * n];
    matmul::gemm_nt_scalar(a, &bt, &mut want_nt, shape).unwrap();
    assert_close(&format!("{case}: gemm_nt_scalar vs gemm_scalar"), &want_nt, &want, &mag, k);
    for backend in Backend::available() {
        let name = backend.name();
        let mut got = vec![f32::NAN; m * n];
        matmul::gemm_with(backend, a, b, &mut got, shape).unwrap();
        assert_close(&format!("{case}: gemm {name} {m}x{n}x{k}"), &got, &want, &mag, k);
        let mut got = vec![f32::NAN; m * n];
        matmul::gemm_nt_with(backend, a, &bt, &mut got, shape).unwrap();
        assert_close(&format!("{case}: gemm_nt {name} {m}x{n}x{k}"), &got, &want, &mag, k);
    }
    let mut got = vec![f32::NAN; m * n];
    matmul::gemm(a, b, &mut got, shape).unwrap();
    assert_close(&format!("{case}: gemm (dispatch) {m}x{n}x{k}"), &got, &want, &mag, k);
    let mut got = vec![f32::NAN; m * n];
    matmul::gemm_nt(a, &bt, &mut got, shape).unwrap();
    assert_close(&format!("{case}: gemm_nt (dispatch) {m}x{n}x{k}"), &got, &want, &mag, k);
}

fn check_random(m: usize, n: usize, k: usize) {
    let seed = (m * 1_000_003 + n * 1009 + k) as u64;
    check("random", &noise(m * k, seed), &noise(k * n, seed + 1), GemmShape::new(m, n, k));
}

/// Edge sizes of every micro-tile: 0, 1, primes, and one either side of 4, 6, 14, 16, 32.
const SMALL: &[usize] = &[0, 1, 2, 3, 4, 5, 6, 7, 13, 14, 15, 16, 17, 31, 32, 33];

#[test]
fn gemm_matches_scalar_on_small_shapes() {
    for &m in SMALL {
        for &n in SMALL {
            for &k in &[0, 1, 2, 7, 16, 17, 33] {
                check_random(m, n, k);
            }
        }
    }
}

#[test]
fn gemm_matches_scalar_across_cache_blocks() {
    let shapes = [
        // k either side of KC = 384 and of two blocks.
        (15, 33, 383),
        (15, 33, 384),
        (15, 33, 385),
        (29, 47, 769),
        // n either side of NC = 768 (and of 2·NC, where blocks are cut evenly).
        (17, 767, 9),
        (17, 768, 9),
        (17, 769, 31),
        (5, 1537, 20),
        // m either side of MC = 24 AVX-512 panels (336 rows) and 24 AVX2 panels (144 rows).
        (335, 35, 40),
        (336, 35, 40),
        (337, 35, 40),
        (143, 18, 19),
        (145, 18, 19),
        // All three at once, and prime sizes.
        (337, 769, 385),
        (97, 101, 103),
    ];
    for (m, n, k) in shapes {
        check_random(m, n, k);
    }
}

#[test]
fn gemm_matches_scalar_around_the_parallel_threshold() {
    assert_eq!(matmul::PARALLEL_MIN_MNK, 128 * 128 * 128, "shapes below straddle 2^21");
    for (m, n, k) in [(127, 128, 128), (128, 128, 128), (129, 128, 128), (4, 700, 749), (5, 700, 750), (300, 3, 2500)] {
        check_random(m, n, k);
    }
    // The small-m path (m < 4), serial and parallel: vector-matrix products in blocks of 128, 64,
    // 16 and 8 columns with tails for A·B, a GEMV per row for A·Bᵀ.
    for (m, n, k) in
        [(1, 576, 1536), (3, 2049, 1025), (1, 1, 5000), (2, 145, 7), (1, 200, 3), (3, 127, 64), (1, 1536, 576)]
    {
        check_random(m, n, k);
    }
}

#[test]
fn gemm_is_the_same_on_one_thread_and_two() {
    // Splitting the work across threads never changes how an element is summed.
    let (m, n, k) = (200, 150, 300);
    let (a, b) = (noise(m * k, 1), noise(k * n, 2));
    let shape = GemmShape::new(m, n, k);
    let run = |threads: usize, backend: Backend| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        let mut c = vec![f32::NAN; m * n];
        pool.install(|| matmul::gemm_with(backend, &a, &b, &mut c, shape)).unwrap();
        c
    };
    for backend in Backend::available() {
        let one = run(1, backend);
        for threads in [2, 3, 7] {
            assert!(
                run(threads, backend).iter().zip(&one).all(|(x, y)| x.to_bits() == y.to_bits()),
                "{}: {threads} threads differ from one",
                backend.name()
            );
        }
    }
}

#[test]
fn nan_and_inf_propagate_like_the_scalar_twin() {
    let (m, n, k) = (37, 45, 29);
    let mut a = noise(m * k, 5);
    let mut b = noise(k * n, 6);
    // NaN in a row of A (whole row of C NaN), +inf in the last row of A (an edge tile),
    // -inf and +inf in one column of B (inf − inf = NaN where both meet), inf times zero.
    a[3 * k + 7] = f32::NAN;
    a[(m - 1) * k + 2] = f32::INFINITY;
    b[2 * n + (n - 1)] = f32::NEG_INFINITY;
    b[11 * n + 5] = f32::INFINITY;
    b[11 * n + 6] = f32::INFINITY;
    a[20 * k + 11] = 0.0;
    a[21 * k + 11] = -2.0;
    check("nan/inf", &a, &b, GemmShape::new(m, n, k));
    // The same rows through the small-m path (rows 2..5: one NaN row).
    check("nan/inf small m", &a[2 * k..5 * k], &b, GemmShape::new(3, n, k));

    let mut x = noise(k, 7);
    x[4] = f32::INFINITY;
    let mut y = vec![f32::NAN; m];
    let mut want = vec![0.0; m];
    matmul::gemv(&a, &x, &mut y, m, k).unwrap();
    matmul::gemv_scalar(&a, &x, &mut want, m, k).unwrap();
    let mut mag = vec![0.0; m];
    matmul::gemv_scalar(&abs(&a), &abs(&x), &mut mag, m, k).unwrap();
    assert_close("gemv nan/inf", &y, &want, &mag, k);
}

#[test]
fn zero_k_gives_zeros_and_empty_shapes_do_nothing() {
    for backend in Backend::available() {
        let mut c = vec![f32::NAN; 6];
        matmul::gemm_with(backend, &[], &[], &mut c, GemmShape::new(2, 3, 0)).unwrap();
        assert_eq!(c, vec![0.0; 6], "{}", backend.name());
        matmul::gemm_nt_with(backend, &[], &[], &mut [], GemmShape::new(0, 0, 5)).unwrap();
        let mut y = vec![f32::NAN; 3];
        matmul::gemv_with(backend, &[], &[], &mut y, 3, 0).unwrap();
        assert_eq!(y, vec![0.0; 3]);
    }
}

#[test]
fn gemm_nt_equals_gemm_on_the_explicit_transpose() {
    for (m, n, k) in [(1, 9, 4), (3, 64, 64), (20, 20, 20), (64, 576, 96), (130, 70, 300)] {
        let (a, b) = (noise(m * k, 8), noise(k * n, 9));
        let bt = transpose(&b, k, n);
        let shape = GemmShape::new(m, n, k);
        let (mut nn, mut nt) = (vec![0.0; m * n], vec![f32::NAN; m * n]);
        matmul::gemm(&a, &b, &mut nn, shape).unwrap();
        matmul::gemm_nt(&a, &bt, &mut nt, shape).unwrap();
        let mut mag = vec![0.0; m * n];
        matmul::gemm_scalar(&abs(&a), &abs(&b), &mut mag, shape).unwrap();
        assert_close(&format!("nt vs nn {m}x{n}x{k}"), &nt, &nn, &mag, k);
    }
}

/// Each of `batch` contiguous `k × n` matrices transposed in place of itself.
fn transpose_each(b: &[f32], batch: usize, k: usize, n: usize) -> Vec<f32> {
    (0..batch).flat_map(|i| transpose(&b[i * k * n..(i + 1) * k * n], k, n)).collect()
}

/// Batched products against a loop of single GEMMs on the same backend: bit for bit.
fn check_batched(batch: usize, m: usize, n: usize, k: usize) {
    let shape = BatchShape::new(batch, m, n, k);
    let g = shape.gemm;
    let a = noise(batch * m * k, 10);
    let b = noise(batch * k * n, 11);
    for backend in Backend::available() {
        let mut got = vec![f32::NAN; batch * m * n];
        matmul::batched_gemm_with(backend, &a, &b, &mut got, shape).unwrap();
        let mut got_nt = vec![f32::NAN; batch * m * n];
        let bt = transpose_each(&b, batch, k, n);
        matmul::batched_gemm_nt_with(backend, &a, &bt, &mut got_nt, shape).unwrap();
        let mut want = vec![0.0; batch * m * n];
        let mut want_nt = vec![0.0; batch * m * n];
        for i in 0..batch {
            let (ra, rb, rc) = (i * m * k..(i + 1) * m * k, i * k * n..(i + 1) * k * n, i * m * n..(i + 1) * m * n);
            matmul::gemm_with(backend, &a[ra.clone()], &b[rb.clone()], &mut want[rc.clone()], g).unwrap();
            matmul::gemm_nt_with(backend, &a[ra], &bt[rb], &mut want_nt[rc], g).unwrap();
        }
        let case = format!("batched {} {batch}x{m}x{n}x{k}", backend.name());
        assert!(got.iter().zip(&want).all(|(x, y)| x.to_bits() == y.to_bits()), "{case}");
        assert!(got_nt.iter().zip(&want_nt).all(|(x, y)| x.to_bits() == y.to_bits()), "{case} nt");
    }
    // And the dispatched versions against the scalar twins.
    let (mut got, mut want) = (vec![f32::NAN; batch * m * n], vec![0.0; batch * m * n]);
    matmul::batched_gemm(&a, &b, &mut got, shape).unwrap();
    matmul::batched_gemm_scalar(&a, &b, &mut want, shape).unwrap();
    let mut mag = vec![0.0; batch * m * n];
    matmul::batched_gemm_scalar(&abs(&a), &abs(&b), &mut mag, shape).unwrap();
    assert_close("batched vs scalar", &got, &want, &mag, k);
    let bt = transpose_each(&b, batch, k, n);
    let mut got = vec![f32::NAN; batch * m * n];
    matmul::batched_gemm_nt(&a, &bt, &mut got, shape).unwrap();
    matmul::batched_gemm_nt_scalar(&a, &bt, &mut want, shape).unwrap();
    assert_close("batched nt vs scalar", &got, &want, &mag, k);
}

#[test]
fn batched_equals_a_loop_of_gemms() {
    // Attention-like: heads × (seq × seq × head_dim); many small (one problem per task), few
    // large (parallel inside), an odd batch, and degenerate ones.
    for (batch, m, n, k) in
        [(9, 33, 33, 64), (3, 130, 129, 128), (1, 17, 5, 3), (16, 4, 7, 3), (0, 5, 5, 5), (2, 3, 0, 4)]
    {
        check_batched(batch, m, n, k);
    }
    let mut c = vec![f32::NAN; 2 * 3 * 4];
    matmul::batched_gemm(&[], &[], &mut c, BatchShape::new(2, 3, 4, 0)).unwrap();
    assert_eq!(c, vec![0.0; 24]);
}

fn check_gemv(rows: usize, cols: usize) {
    let a = noise(rows * cols, (rows * 31 + cols) as u64);
    let x = noise(cols, 99);
    let mut want = vec![0.0; rows];
    matmul::gemv_scalar(&a, &x, &mut want, rows, cols).unwrap();
    let mut mag = vec![0.0; rows];
    matmul::gemv_scalar(&abs(&a), &abs(&x), &mut mag, rows, cols).unwrap();
    for backend in Backend::available() {
        let mut y = vec![f32::NAN; rows];
        matmul::gemv_with(backend, &a, &x, &mut y, rows, cols).unwrap();
        assert_close(&format!("gemv {} {rows}x{cols}", backend.name()), &y, &want, &mag, cols);
    }
    let mut y = vec![f32::NAN; rows];
    matmul::gemv(&a, &x, &mut y, rows, cols).unwrap();
    assert_close(&format!("gemv {rows}x{cols}"), &y, &want, &mag, cols);
}

#[test]
fn gemv_matches_scalar() {
    // Rows around the 4-row block, columns around 8, 16 and 32 lanes (and the masked tail).
    for rows in [0, 1, 2, 3, 4, 5, 7, 8, 9, 13] {
        for cols in [0, 1, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 47, 48, 63, 65] {
            check_gemv(rows, cols);
        }
    }
    // Around the parallel threshold (2^18 elements) and LLM shapes.
    for (rows, cols) in [(511, 512), (512, 512), (513, 513), (1536, 576), (577, 1535)] {
        check_gemv(rows, cols);
    }
}

#[test]
fn wrong_lengths_are_typed_errors() {
    let shape = GemmShape::new(2, 3, 4);
    let (a, b, mut c) = (vec![0.0; 8], vec![0.0; 12], vec![0.0; 6]);
    let mismatch = |r: kernels::Result<()>, expected: usize, got: usize| match r {
        Err(Error::DimensionMismatch { expected: e, got: g }) => assert_eq!((e, g), (expected, got)),
        other => panic!("expected DimensionMismatch {{ {expected}, {got} }}, got {other:?}"),
    };
    type Gemm = fn(&[f32], &[f32], &mut [f32], GemmShape) -> kernels::Result<()>;
    let gemms: [(&str, Gemm); 4] = [
        ("gemm", matmul::gemm),
        ("gemm_nt", matmul::gemm_nt),
        ("gemm_scalar", matmul::gemm_scalar),
        ("gemm_nt_scalar", matmul::gemm_nt_scalar),
    ];
    for (_, f) in gemms {
        mismatch(f(&a[..7], &b, &mut c, shape), 8, 7);
        mismatch(f(&a, &b[..11], &mut c, shape), 12, 11);
        mismatch(f(&a, &b, &mut c[..5], shape), 6, 5);
        f(&a, &b, &mut c, shape).unwrap();
    }
    let batch = BatchShape::new(2, 2, 3, 4);
    let (ba, bb, mut bc) = (vec![0.0; 16], vec![0.0; 24], vec![0.0; 12]);
    mismatch(matmul::batched_gemm(&ba[..8], &bb, &mut bc, batch), 16, 8);
    mismatch(matmul::batched_gemm_nt(&ba, &bb[..12], &mut bc, batch), 24, 12);
    mismatch(matmul::batched_gemm_scalar(&ba, &bb, &mut bc[..6], batch), 12, 6);
    mismatch(matmul::gemv(&a, &[0.0; 3], &mut [0.0; 2], 2, 4), 4, 3);
    mismatch(matmul::gemv(&a, &[0.0; 4], &mut [0.0; 3], 2, 4), 2, 3);
    mismatch(matmul::gemv_scalar(&a[..6], &[0.0; 4], &mut [0.0; 2], 2, 4), 8, 6);
    // A shape whose size overflows usize.
    let huge = GemmShape::new(usize::MAX, 2, 2);
    assert!(matches!(matmul::gemm(&a, &b, &mut c, huge), Err(Error::InvalidParameter(_))));
}

#[test]
fn backends_report_what_they_are() {
    assert!(Backend::Portable.is_available());
    assert_eq!(Backend::available().first(), Some(&Backend::best()));
    assert_eq!(matmul::active_path(), Backend::best().name());
    for backend in [Backend::Avx512, Backend::Avx2Fma] {
        if !backend.is_available() {
            let r = matmul::gemm_with(backend, &[1.0], &[1.0], &mut [0.0], GemmShape::new(1, 1, 1));
            assert!(matches!(r, Err(Error::InvalidParameter(_))));
        }
    }
    assert_eq!(GemmShape::new(2, 3, 4).flops(), 48);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn gemm_matches_scalar_on_random_shapes(m in 0usize..48, n in 0usize..80, k in 0usize..48, seed in 0u64..1000) {
        check("proptest", &noise(m * k, seed), &noise(k * n, seed + 7), GemmShape::new(m, n, k));
    }

    #[test]
    fn gemm_is_linear_in_a_scalar(m in 1usize..30, n in 1usize..40, k in 1usize..30, seed in 0u64..1000) {
        // Scaling A by a power of two scales C exactly (no rounding changes).
        let (a, b) = (noise(m * k, seed), noise(k * n, seed + 1));
        let a4: Vec<f32> = a.iter().map(|x| 4.0 * x).collect();
        let shape = GemmShape::new(m, n, k);
        let (mut c, mut c4) = (vec![0.0; m * n], vec![0.0; m * n]);
        matmul::gemm(&a, &b, &mut c, shape).unwrap();
        matmul::gemm(&a4, &b, &mut c4, shape).unwrap();
        prop_assert!(c.iter().zip(&c4).all(|(x, y)| 4.0 * x == *y));
    }
}

/// A matrix packed once gives the bits of the unpacked product for `m ≥ 4` (the same panels, the
/// same kernel, the same order) and stays within the scalar twin's bound for every `m`, in both
/// layouts; `C` starts as NaN, so an element left unwritten shows up.
fn check_packed(m: usize, n: usize, k: usize) {
    let shape = GemmShape::new(m, n, k);
    let (a, b) = (noise(m * k, 7 + m as u64), noise(k * n, 11 + n as u64));
    let bt = transpose(&b, k, n);
    let mut mag = vec![0.0; m * n];
    matmul::gemm_scalar(&abs(&a), &abs(&b), &mut mag, shape).unwrap();
    let mut want = vec![0.0; m * n];
    matmul::gemm_scalar(&a, &b, &mut want, shape).unwrap();
    for (layout, packed) in [
        ("nt", matmul::PackedMatrix::pack_nt(&bt, n, k).unwrap()),
        ("nn", matmul::PackedMatrix::pack(&b, k, n).unwrap()),
    ] {
        let case = format!("packed {layout} {m}x{n}x{k}");
        assert_eq!((packed.n(), packed.k()), (n, k), "{case}");
        let mut got = vec![f32::NAN; m * n];
        matmul::gemm_packed(&a, &packed, &mut got, m).unwrap();
        assert_close(&case, &got, &want, &mag, k);
        let mut unpacked = vec![f32::NAN; m * n];
        if layout == "nt" {
            matmul::gemm_nt(&a, &bt, &mut unpacked, shape).unwrap();
        } else {
            matmul::gemm(&a, &b, &mut unpacked, shape).unwrap();
        }
        if m >= 4 {
            let differ = got.iter().zip(&unpacked).filter(|(x, y)| x.to_bits() != y.to_bits()).count();
            assert_eq!(differ, 0, "{case}: {differ} elements differ from the unpacked product");
        } else {
            // The packed GEMV of a few rows gives the bits those rows get in a taller product.
            let mut a4 = a.clone();
            a4.resize(4 * k, 0.5);
            let mut tall = vec![f32::NAN; 4 * n];
            matmul::gemm_packed(&a4, &packed, &mut tall, 4).unwrap();
            let differ = got.iter().zip(&tall).filter(|(x, y)| x.to_bits() != y.to_bits()).count();
            assert_eq!(differ, 0, "{case}: {differ} elements differ from the same rows in a 4-row product");
        }
    }
}

#[test]
fn a_packed_matrix_gives_the_unpacked_product() {
    // BERT-small's layers at a sentence and at a batch, edges of the micro-tiles and cache blocks
    // (k past 384, n past 768), and m below the unpacked path's GEMV cut-off.
    for (m, n, k) in [
        (12, 1152, 384),
        (12, 384, 1536),
        (27, 1536, 384),
        (300, 1536, 384),
        (1, 17, 5),
        (1, 1024, 384),
        (2, 800, 390),
        (3, 100, 70),
        (4, 33, 400),
        (15, 800, 390),
        (29, 1, 1),
    ] {
        check_packed(m, n, k);
    }
}

#[test]
fn packed_products_refuse_wrong_lengths() {
    let r = matmul::PackedMatrix::pack_nt(&[0.0; 5], 2, 3);
    assert!(matches!(r, Err(Error::DimensionMismatch { expected: 6, got: 5 })), "{r:?}");
    let r = matmul::PackedMatrix::pack(&[0.0; 7], 2, 3);
    assert!(matches!(r, Err(Error::DimensionMismatch { expected: 6, got: 7 })), "{r:?}");
    let p = matmul::PackedMatrix::pack_nt(&[1.0; 6], 2, 3).unwrap();
    let mut c = vec![0.0; 4];
    let r = matmul::gemm_packed(&[1.0; 5], &p, &mut c, 2);
    assert!(matches!(r, Err(Error::DimensionMismatch { expected: 6, got: 5 })), "{r:?}");
    let r = matmul::gemm_packed(&[1.0; 6], &p, &mut c[..3], 2);
    assert!(matches!(r, Err(Error::DimensionMismatch { expected: 4, got: 3 })), "{r:?}");
    matmul::gemm_packed(&[1.0; 6], &p, &mut c, 2).unwrap();
    assert_eq!(c, [3.0; 4]);
}
