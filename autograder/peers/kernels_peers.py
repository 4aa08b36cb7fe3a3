"""SimSIMD, NumPy and faiss on the workloads of `cargo xtask bench kernels`: prints JSON rows.

Each row is {"op", "dtype", "shape", "impl", "unit", "rate"}, where rate is work
per second (pairs/s for distances, GFLOP/s for GEMM) and the best of several
timed passes. The Rust side (kernels/examples/bench_vs_peers.rs) measures the
same op, dtype and shape in the same run, so `xtask` can divide one by the other.

Distances: one cdist call of Q queries against N base vectors on one thread:
SimSIMD's `cdist(threads=1)` and, for NumPy, the BLAS way people write it
(`Q @ B.T`, and the norm expansion for L2 and cosine). GEMM: `A @ B` with as many
BLAS threads as the caller set in OPENBLAS_NUM_THREADS before starting us.
Exact k-NN: faiss' `IndexFlatL2.search` (k = 10, queries/s) of 1, 16 and 1,000
queries over 100k x 384 vectors on `--threads` OpenMP threads.
"""
import argparse
import json
import time

import numpy as np


def best_rate(fn, work, min_seconds):
    """Work per second of `fn`, best of five timed passes of at least `min_seconds` each."""
    fn()
    best = 0.0
    for _ in range(5):
        reps, start = 0, time.perf_counter()
        while True:
            fn()
            reps += 1
            elapsed = time.perf_counter() - start
            if elapsed >= min_seconds:
                break
        best = max(best, work * reps / elapsed)
    return best


def vectors(rng, n, d, dtype):
    if dtype == "i8":
        return rng.integers(-128, 128, size=(n, d), dtype=np.int8)
    x = rng.standard_normal((n, d), dtype=np.float32)
    return x.astype(np.float16) if dtype == "f16" else x


def distances(args, rows):
    import simsimd

    rng = np.random.default_rng(42)
    for dtype in args.dtypes.split(","):
        for d in (int(v) for v in args.dims.split(",")):
            q, b = vectors(rng, args.queries, d, dtype), vectors(rng, args.base, d, dtype)
            pairs = args.queries * args.base
            shape = f"{args.queries}x{args.base}x{d}"
            for op, metric in (("dot", "inner"), ("l2_sq", "sqeuclidean"), ("cosine", "cosine")):
                rate = best_rate(lambda: simsimd.cdist(q, b, metric=metric, threads=1), pairs, args.min_seconds)
                rows.append(dict(op=op, dtype=dtype, shape=shape, impl="simsimd", unit="pairs/s", rate=rate))
            if dtype != "f32":
                continue
            bt = np.ascontiguousarray(b.T)
            norms_b = (b * b).sum(axis=1)
            numpy_ops = {
                "dot": lambda: q @ bt,
                "l2_sq": lambda: (q * q).sum(axis=1)[:, None] + norms_b[None, :] - 2.0 * (q @ bt),
                "cosine": lambda: 1.0
                - (q @ bt) / np.sqrt((q * q).sum(axis=1)[:, None] * norms_b[None, :]),
            }
            for op, fn in numpy_ops.items():
                rate = best_rate(fn, pairs, args.min_seconds)
                rows.append(dict(op=op, dtype=dtype, shape=shape, impl="numpy", unit="pairs/s", rate=rate))


def gemm(args, rows):
    rng = np.random.default_rng(42)
    for n in (int(v) for v in args.gemm_sizes.split(",")):
        a = rng.standard_normal((n, n), dtype=np.float32)
        b = rng.standard_normal((n, n), dtype=np.float32)
        rate = best_rate(lambda: a @ b, 2.0 * n**3 / 1e9, args.min_seconds)
        rows.append(dict(op="gemm", dtype="f32", shape=f"{n}x{n}x{n}", impl="numpy", unit="GFLOP/s", rate=rate))


def exact(args, rows):
    """faiss' exact search (`IndexFlatL2`, k = 10) of 1, 16 and 1,000 queries on the given threads."""
    import faiss

    faiss.omp_set_num_threads(args.threads)
    rng = np.random.default_rng(42)
    n, dim = args.exact_base, 384
    index = faiss.IndexFlatL2(dim)
    index.add(rng.uniform(-1.0, 1.0, (n, dim)).astype(np.float32))
    for nq in (1, 16, 1000):
        q = rng.uniform(-1.0, 1.0, (nq, dim)).astype(np.float32)
        rate = best_rate(lambda: index.search(q, 10), nq, args.min_seconds)
        rows.append(dict(op="knn_l2", dtype="f32", shape=f"{nq}q x {n}x{dim} k10", impl="faiss", unit="queries/s", rate=rate))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--section", choices=["distances", "gemm", "exact"], required=True)
    p.add_argument("--dtypes", default="f32,f16,i8")
    p.add_argument("--dims", default="128,384,768,1536")
    p.add_argument("--queries", type=int, default=16)
    p.add_argument("--base", type=int, default=1024)
    p.add_argument("--gemm-sizes", default="256,1024")
    p.add_argument("--exact-base", type=int, default=100_000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--min-seconds", type=float, default=0.2)
    args = p.parse_args()
    rows = []
    {"distances": distances, "gemm": gemm, "exact": exact}[args.section](args, rows)
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
