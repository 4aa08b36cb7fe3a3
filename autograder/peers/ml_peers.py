"""Training and prediction throughput of scikit-learn's RandomForestClassifier and LightGBM, printed as
JSON (the peers of kernels/examples/ml_throughput.rs in `cargo xtask bench ml`).

References: Breiman, "Random Forests", Machine Learning 45 (2001); Ke et al., "LightGBM: A Highly
Efficient Gradient Boosting Decision Tree", NeurIPS 2017.

Reads the files `ml_throughput gen` wrote (DIR/x.f32: row-major little-endian float32, DIR/y.f32: 0/1
labels, DIR/shape.json: rows, cols, train_rows) and, with the Rust side's settings:
- RandomForestClassifier(n_estimators=100, max_depth=10, max_features="sqrt", bootstrap=True,
  n_jobs=THREADS): fit time, predict_proba rows/s, test ROC AUC;
- LightGBM (objective binary, 100 rounds, num_leaves 31, learning_rate 0.1, max_bin 255,
  min_data_in_leaf 20, min_sum_hessian_in_leaf 1e-3, lambda_l2 0, no bagging, num_threads THREADS):
  fit time (Dataset construction, i.e. binning, included, as on the Rust side), batch predict rows/s
  on the test rows, single-row predict latency (Booster.predict on a 1 × d array, p50/p99), test ROC AUC.

usage: python ml_peers.py DIR REPS THREADS

Each time is the best of REPS. Prints one JSON object on stdout; progress goes to stderr.
"""

import json
import sys
import time
from pathlib import Path

import numpy as np

TREES, DEPTH, ROUNDS, LEAVES, SINGLE = 100, 10, 100, 31, 2000


def best_of(reps, f):
    best, out = float("inf"), None
    for _ in range(reps):
        start = time.perf_counter()
        out = f()
        best = min(best, time.perf_counter() - start)
    return best, out


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: python ml_peers.py DIR REPS THREADS")
    folder, reps, threads = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    shape = json.loads((folder / "shape.json").read_text())
    rows, cols, train = shape["rows"], shape["cols"], shape["train_rows"]
    x = np.fromfile(folder / "x.f32", dtype="<f4").reshape(rows, cols)
    y = np.fromfile(folder / "y.f32", dtype="<f4").astype(np.int32)
    xtr, ytr, xte, yte = x[:train], y[:train], x[train:], y[train:]

    import lightgbm as lgb
    import sklearn
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.metrics import roc_auc_score

    out = {"threads": threads, "train_rows": int(train), "test_rows": int(rows - train), "reps": reps,
           "sklearn": sklearn.__version__, "lightgbm": lgb.__version__}

    print(f"  scikit-learn forest ({TREES} trees, depth {DEPTH})…", file=sys.stderr)
    rf = RandomForestClassifier(n_estimators=TREES, max_depth=DEPTH, max_features="sqrt", bootstrap=True,
                                n_jobs=threads, random_state=0)
    out["forest_fit_s"], _ = best_of(reps, lambda: rf.fit(xtr, ytr))
    t, p = best_of(reps, lambda: rf.predict_proba(xte)[:, 1])
    out["forest_predict_rows_per_s"] = len(xte) / t
    out["forest_auc"] = float(roc_auc_score(yte, p))

    print(f"  LightGBM ({ROUNDS} rounds, {LEAVES} leaves)…", file=sys.stderr)
    params = {
        "objective": "binary", "num_leaves": LEAVES, "learning_rate": 0.1, "max_bin": 255,
        "min_data_in_leaf": 20, "min_sum_hessian_in_leaf": 1e-3, "lambda_l2": 0.0,
        "feature_fraction": 1.0, "bagging_fraction": 1.0, "num_threads": threads, "verbose": -1, "seed": 0,
    }

    def fit():
        ds = lgb.Dataset(xtr, label=ytr, params={"max_bin": 255, "verbose": -1})
        return lgb.train(params, ds, num_boost_round=ROUNDS)

    out["gbm_fit_s"], booster = best_of(reps, fit)
    out["gbm_trees"] = booster.num_trees()
    t, p = best_of(max(reps, 3), lambda: booster.predict(xte, num_threads=threads))
    out["gbm_predict_rows_per_s"] = len(xte) / t
    out["gbm_auc"] = float(roc_auc_score(yte, p))
    lat = []
    for i in range(min(SINGLE, len(xte))):
        row = xte[i:i + 1]
        start = time.perf_counter()
        booster.predict(row, num_threads=1)
        lat.append(time.perf_counter() - start)
    lat.sort()
    out["single_row_p50_us"] = lat[round((len(lat) - 1) * 0.5)] * 1e6
    out["single_row_p99_us"] = lat[round((len(lat) - 1) * 0.99)] * 1e6
    print(json.dumps(out))


if __name__ == "__main__":
    main()
