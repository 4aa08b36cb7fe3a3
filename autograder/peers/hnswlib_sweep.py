"""hnswlib on the same vectors as `cargo xtask bench c4w3`: prints JSON rows (one per ef).

Single thread, same M and efConstruction as the Rust indexes, L2 space, queries
in one batched call run on one thread, best of three passes per ef.
"""
import argparse
import json
import time

import hnswlib
import numpy as np


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--queries", required=True)
    p.add_argument("--truth", required=True)
    p.add_argument("--dim", type=int, required=True)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--m", type=int, default=16)
    p.add_argument("--ef-construction", type=int, default=200)
    p.add_argument("--efs", default="10,16,32,64,128")
    a = p.parse_args()

    data = np.fromfile(a.data, dtype="<f4").reshape(-1, a.dim)
    queries = np.fromfile(a.queries, dtype="<f4").reshape(-1, a.dim)
    truth = np.fromfile(a.truth, dtype="<i4").reshape(len(queries), a.k)

    index = hnswlib.Index(space="l2", dim=a.dim)
    index.set_num_threads(1)
    start = time.perf_counter()
    index.init_index(max_elements=len(data), M=a.m, ef_construction=a.ef_construction, random_seed=42)
    index.add_items(data, np.arange(len(data)), num_threads=1)
    build_s = time.perf_counter() - start

    rows = []
    for ef in (int(e) for e in a.efs.split(",")):
        index.set_ef(max(ef, a.k))
        best_qps, recall = 0.0, 0.0
        for _ in range(3):
            # One batched call on one thread: the loop over queries runs in
            # C++, so no Python call overhead is charged to hnswlib.
            start = time.perf_counter()
            labels, _ = index.knn_query(queries, k=a.k, num_threads=1)
            seconds = time.perf_counter() - start
            hits = sum(len(set(got.tolist()) & set(want.tolist())) for got, want in zip(labels, truth))
            best_qps = max(best_qps, len(queries) / seconds)
            recall = hits / (len(queries) * a.k)
        rows.append({
            "impl": "hnswlib", "ef": ef, "recall@10": recall, "queries/s": best_qps,
            "build_s": build_s, "memory_mb": None,
        })
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
