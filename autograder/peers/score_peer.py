"""Batch scoring of a Parquet file with pyarrow + LightGBM, printed as JSON (the peer of
kernels/examples/score_throughput.rs in `cargo xtask bench score`).

Reference: Ke et al., "LightGBM: A Highly Efficient Gradient Boosting Decision Tree", NeurIPS 2017.

Reads what `ml_throughput gen` and `score_throughput` wrote in DIR: the training rows (DIR/x.f32,
DIR/y.f32, DIR/shape.json: the first `train_rows` rows) and DIR/score.parquet (every row's features).
Fits LightGBM with the Rust side's settings (objective binary, 100 rounds, num_leaves 31, learning_rate
0.1, max_bin 255, min_data_in_leaf 20, lambda_l2 0, no bagging, num_threads THREADS), then times, best
of REPS:
- `score_rows_per_s`: pyarrow reads score.parquet (the feature columns), NumPy stacks them into a float32
  matrix, `Booster.predict` scores it with THREADS threads, and pyarrow writes `row_id` and `score`
  (float32) to a Parquet file (zstd): the same read-score-write path as `kernels::score`, in one process,
  the whole table in memory at once;
- `predict_only_rows_per_s`: `Booster.predict` on the matrix already in memory.

usage: python score_peer.py DIR REPS THREADS

Prints one JSON object on stdout; progress goes to stderr.
"""

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROUNDS, LEAVES = 100, 31


def best_of(reps, f):
    best, out = float("inf"), None
    for _ in range(reps):
        start = time.perf_counter()
        out = f()
        best = min(best, time.perf_counter() - start)
    return best, out


def main():
    folder, reps, threads = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    import lightgbm as lgb
    import pyarrow
    import pyarrow.parquet as pq

    shape = json.loads((folder / "shape.json").read_text())
    rows, cols, train, names = shape["rows"], shape["cols"], shape["train_rows"], shape["names"]
    x = np.fromfile(folder / "x.f32", dtype="<f4").reshape(rows, cols)
    y = np.fromfile(folder / "y.f32", dtype="<f4").astype(np.int32)
    print(f"  LightGBM ({ROUNDS} rounds, {LEAVES} leaves) on {train} rows…", file=sys.stderr)
    params = {
        "objective": "binary", "num_leaves": LEAVES, "learning_rate": 0.1, "max_bin": 255,
        "min_data_in_leaf": 20, "min_sum_hessian_in_leaf": 1e-3, "lambda_l2": 0.0,
        "feature_fraction": 1.0, "bagging_fraction": 1.0, "num_threads": threads, "verbose": -1, "seed": 0,
    }
    ds = lgb.Dataset(x[:train], label=y[:train], params={"max_bin": 255, "verbose": -1})
    booster = lgb.train(params, ds, num_boost_round=ROUNDS)
    del x

    file = folder / "score.parquet"
    with tempfile.TemporaryDirectory(prefix="score-peer-") as tmp:
        out_file = Path(tmp) / "scores.parquet"

        def pipeline():
            table = pq.read_table(file, columns=names)
            m = np.column_stack([table.column(n).to_numpy() for n in names]).astype(np.float32, copy=False)
            p = booster.predict(m, num_threads=threads).astype(np.float32)
            out = pyarrow.table({"row_id": np.arange(len(p), dtype=np.int64), "score": p})
            pq.write_table(out, out_file, compression="zstd")
            return m, p

        print("  pyarrow read + LightGBM predict + pyarrow write…", file=sys.stderr)
        t, (m, p) = best_of(reps, pipeline)
        tp, _ = best_of(reps, lambda: booster.predict(m, num_threads=threads))
    print(json.dumps({
        "threads": threads, "rows": rows, "reps": reps, "trees": booster.num_trees(),
        "lightgbm": lgb.__version__, "pyarrow": pyarrow.__version__,
        "score_s": t, "score_rows_per_s": rows / t, "predict_only_rows_per_s": rows / tp,
        "mean_score": float(np.mean(p, dtype=np.float64)),
    }))


if __name__ == "__main__":
    main()
