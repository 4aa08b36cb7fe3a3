"""Training and prediction throughput of scikit-learn's RandomForestClassifier, LightGBM, XGBoost and the
compiled-tree predictors lleaves and treelite/TL2cgen, printed as JSON (the peers of
kernels/examples/ml_throughput.rs in `cargo xtask bench ml`).

References: Breiman, "Random Forests", Machine Learning 45 (2001); Ke et al., "LightGBM: A Highly
Efficient Gradient Boosting Decision Tree", NeurIPS 2017; Chen & Guestrin, "XGBoost: A Scalable Tree
Boosting System", KDD 2016; Böhm, lleaves (LightGBM trees compiled with LLVM); Cho & Li, Treelite
(trees compiled to C, here with TL2cgen).

Reads the files `ml_throughput gen` wrote (DIR/x.f32: row-major little-endian float32, DIR/y.f32: 0/1
labels, DIR/shape.json: rows, cols, train_rows) and, with the Rust side's settings:
- RandomForestClassifier(n_estimators=100, max_depth=10, max_features="sqrt", bootstrap=True,
  n_jobs=THREADS): fit time, predict_proba rows/s, test ROC AUC;
- LightGBM (objective binary, 100 rounds, num_leaves 31, learning_rate 0.1, max_bin 255,
  min_data_in_leaf 20, min_sum_hessian_in_leaf 1e-3, lambda_l2 0, no bagging, num_threads THREADS):
  fit time (Dataset construction, i.e. binning, included, as on the Rust side), batch predict rows/s
  on the test rows, single-row predict latency (Booster.predict on a 1 × d array, p50/p99), test ROC AUC;
- XGBoost (the CPU-only wheel xgboost-cpu; tree_method hist, grow_policy lossguide, max_leaves 31,
  max_depth 0, 100 rounds, eta 0.1, max_bin 255, min_child_weight 1e-3, lambda 0, nthread THREADS):
  fit time (QuantileDMatrix construction, i.e. binning, included), batch rows/s (inplace_predict on the
  float32 test rows), test ROC AUC. XGBoost has no rows-per-leaf minimum; the hessian one stands in;
- the LightGBM booster above, saved as DIR/lightgbm.txt with its test predictions as DIR/lightgbm_test.f64
  (little-endian float64; `ml_throughput lightgbm DIR` compiles the same model with kernels), and, from a
  temporary folder (removed at exit; nothing is cached),
  compiled twice: by lleaves (LLVM, host CPU features) and by treelite + TL2cgen (C source, gcc -O3
  -march=native, a shared library). Compile time is reported on its own. For each: batch rows/s (its
  Python API on the float32 test rows, THREADS threads) and single-row latency p50/p99 measured two
  ways: `*_py_*` through its Python API (one 1 × d row per call, as LightGBM's figure), and `*_native_*`
  from a small C loop (built here with gcc) that calls the compiled function directly, one row per call,
  converting the float32 row to the peer's input inside the timed region and reading the clock with
  clock_gettime(CLOCK_MONOTONIC) around each call, as kernels' Rust loop does with Instant. Only the
  native figures compare with kernels' `predict_row`, which is timed in Rust without Python;
- the Python floor of a per-row loop: an empty timed body (`python_floor_*`) and one NumPy call on the
  row (`numpy_call_*`), to read the Python figures against.
`compiled_max_abs_diff` is the largest difference of the compiled predictors' probabilities from
LightGBM's own on the test rows. A peer whose package is missing is left out and named in `skipped`.

usage: python ml_peers.py DIR REPS THREADS

Each time is the best of REPS. Prints one JSON object on stdout; progress goes to stderr.
"""

import ctypes
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TREES, DEPTH, ROUNDS, LEAVES, SINGLE = 100, 10, 100, 31, 2000

# One row per call into a compiled predictor, without Python in the loop: the float32 row becomes the
# peer's input (doubles for lleaves, TL2cgen's Entry union) inside the timed region, then one call.
ROW_TIMER_C = r"""
#include <math.h>
#include <stdint.h>
#include <stddef.h>
#include <time.h>

union Entry { int missing; double fvalue; int qvalue; };
typedef void (*lleaves_fn)(const double *, double *, int32_t, int32_t);
typedef void (*tl2cgen_fn)(union Entry *, int, double *);

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int time_lleaves(void *f, const float *x, int rows, int cols, double *lat, double *out) {
    lleaves_fn fn = (lleaves_fn)f;
    double buf[256];
    if (cols > 256) return -1;
    for (int i = 0; i < rows; i++) {
        const float *r = x + (size_t)i * cols;
        double t0 = now();
        for (int j = 0; j < cols; j++) buf[j] = r[j];
        double o = 0.0;
        fn(buf, &o, 0, 1);
        double t1 = now();
        lat[i] = t1 - t0;
        out[i] = o;
    }
    return 0;
}

int time_tl2cgen(void *f, const float *x, int rows, int cols, double *lat, double *out) {
    tl2cgen_fn fn = (tl2cgen_fn)f;
    union Entry buf[256];
    if (cols > 256) return -1;
    for (int i = 0; i < rows; i++) {
        const float *r = x + (size_t)i * cols;
        double t0 = now();
        for (int j = 0; j < cols; j++) {
            if (isnan(r[j])) buf[j].missing = -1; else buf[j].fvalue = r[j];
        }
        double o = 0.0;
        fn(buf, 0, &o);
        double t1 = now();
        lat[i] = t1 - t0;
        out[i] = o;
    }
    return 0;
}
"""


def best_of(reps, f):
    best, out = float("inf"), None
    for _ in range(reps):
        start = time.perf_counter()
        out = f()
        best = min(best, time.perf_counter() - start)
    return best, out


def percentiles(out, prefix, lat_s):
    lat = sorted(lat_s)
    out[prefix + "_p50_us"] = lat[round((len(lat) - 1) * 0.5)] * 1e6
    out[prefix + "_p99_us"] = lat[round((len(lat) - 1) * 0.99)] * 1e6


def per_row(rows, f):
    """Seconds of f(row) for each 1 × d row, one call each."""
    lat = []
    for i in range(len(rows)):
        row = rows[i:i + 1]
        start = time.perf_counter()
        f(row)
        lat.append(time.perf_counter() - start)
    return lat


def row_timer(folder):
    """The C loop above as a ctypes library (gcc), or None with the reason."""
    src, lib = folder / "row_timer.c", folder / "row_timer.so"
    src.write_text(ROW_TIMER_C)
    cmd = ["gcc", "-O2", "-shared", "-fPIC", "-o", str(lib), str(src), "-lm"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        return None, f"gcc failed: {done.stderr.strip()[:200]}"
    timer = ctypes.CDLL(str(lib))
    ptr = ctypes.POINTER
    for name in ("time_lleaves", "time_tl2cgen"):
        fn = getattr(timer, name)
        fn.restype = ctypes.c_int
        fn.argtypes = [ctypes.c_void_p, ptr(ctypes.c_float), ctypes.c_int, ctypes.c_int,
                       ptr(ctypes.c_double), ptr(ctypes.c_double)]
    return timer, None


def native_rows(timer, name, address, rows):
    """Per-call seconds and predictions of the compiled function at `address`, from the C loop."""
    rows = np.ascontiguousarray(rows, dtype=np.float32)
    lat, pred = np.zeros(len(rows)), np.zeros(len(rows))
    dbl = ctypes.POINTER(ctypes.c_double)
    rc = getattr(timer, name)(ctypes.c_void_p(address), rows.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
                              len(rows), rows.shape[1], lat.ctypes.data_as(dbl), pred.ctypes.data_as(dbl))
    if rc != 0:
        raise RuntimeError(f"{name} returned {rc}")
    return lat.tolist(), pred


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: python ml_peers.py DIR REPS THREADS")
    folder, reps, threads = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    # Native libraries (treelite's compiler) log to file descriptor 1: send everything to stderr and keep
    # the real stdout for the JSON alone.
    sys.stdout.flush()
    json_out = os.dup(1)
    os.dup2(2, 1)
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
           "sklearn": sklearn.__version__, "lightgbm": lgb.__version__, "skipped": []}

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
    lgb_test = p
    out["gbm_predict_rows_per_s"] = len(xte) / t
    out["gbm_auc"] = float(roc_auc_score(yte, p))
    single = xte[:min(SINGLE, len(xte))]
    percentiles(out, "single_row", per_row(single, lambda row: booster.predict(row, num_threads=1)))

    print("  Python floor of a per-row loop…", file=sys.stderr)
    percentiles(out, "python_floor", per_row(single, lambda row: None))
    percentiles(out, "numpy_call", per_row(single, lambda row: np.ascontiguousarray(row, dtype=np.float64)))

    try:
        import xgboost as xgb
    except ImportError as e:
        out["skipped"].append(f"xgboost: {e}")
    else:
        print(f"  XGBoost hist ({ROUNDS} rounds, {LEAVES} leaves, lossguide)…", file=sys.stderr)
        out["xgboost"] = xgb.__version__
        xparams = {
            "objective": "binary:logistic", "tree_method": "hist", "grow_policy": "lossguide",
            "max_leaves": LEAVES, "max_depth": 0, "eta": 0.1, "max_bin": 255, "min_child_weight": 1e-3,
            "lambda": 0.0, "alpha": 0.0, "subsample": 1.0, "colsample_bytree": 1.0, "nthread": threads,
            "seed": 0, "verbosity": 0,
        }

        def xfit():
            ds = xgb.QuantileDMatrix(xtr, label=ytr, max_bin=255, nthread=threads)
            return xgb.train(xparams, ds, num_boost_round=ROUNDS)

        out["xgb_fit_s"], xb = best_of(reps, xfit)
        t, p = best_of(max(reps, 3), lambda: xb.inplace_predict(xte))
        out["xgb_predict_rows_per_s"] = len(xte) / t
        out["xgb_auc"] = float(roc_auc_score(yte, p))

    with tempfile.TemporaryDirectory(prefix="ml-peers-") as tmp:
        tmp = Path(tmp)
        model_file = tmp / "lightgbm.txt"
        booster.save_model(str(model_file))
        # The same model and LightGBM's test predictions for kernels (`ml_throughput lightgbm DIR`):
        # kernels compiles this very model, the like-for-like peer of lleaves and TL2cgen.
        booster.save_model(str(folder / "lightgbm.txt"))
        np.asarray(lgb_test, dtype="<f8").tofile(folder / "lightgbm_test.f64")
        timer, why = row_timer(tmp)
        if timer is None:
            out["skipped"].append(f"native single-row loops: {why}")
        diffs = []

        try:
            import lleaves
            import llvmlite
        except ImportError as e:
            out["skipped"].append(f"lleaves: {e}")
        else:
            print("  lleaves: compiling the LightGBM model…", file=sys.stderr)
            out["lleaves"], out["llvmlite"] = _version("lleaves"), llvmlite.__version__
            start = time.perf_counter()
            ll = lleaves.Model(model_file=str(model_file))
            ll.compile()
            out["lleaves_compile_s"] = time.perf_counter() - start
            t, p = best_of(max(reps, 3), lambda: ll.predict(xte, n_jobs=threads))
            out["lleaves_predict_rows_per_s"] = len(xte) / t
            diffs.append(float(np.abs(p - lgb_test).max()))
            percentiles(out, "lleaves_py", per_row(single, lambda row: ll.predict(row, n_jobs=1)))
            if timer is not None:
                address = ctypes.cast(ll._c_entry_func, ctypes.c_void_p).value
                lat, pred = native_rows(timer, "time_lleaves", address, single)
                percentiles(out, "lleaves_native", lat)
                diffs.append(float(np.abs(pred - lgb_test[:len(single)]).max()))

        try:
            import tl2cgen
            import treelite
        except ImportError as e:
            out["skipped"].append(f"treelite/tl2cgen: {e}")
        else:
            print("  treelite + TL2cgen: compiling the LightGBM model with gcc…", file=sys.stderr)
            out["treelite"], out["tl2cgen"] = treelite.__version__, tl2cgen.__version__
            lib = tmp / "tl2cgen_model.so"
            start = time.perf_counter()
            tl_model = treelite.frontend.load_lightgbm_model(str(model_file))
            tl2cgen.export_lib(tl_model, toolchain="gcc", libpath=str(lib), params={"parallel_comp": threads},
                               nthread=threads, options=["-march=native"])
            out["tl2cgen_compile_s"] = time.perf_counter() - start
            batch = tl2cgen.Predictor(str(lib), nthread=threads)
            t, p = best_of(max(reps, 3), lambda: batch.predict(tl2cgen.DMatrix(xte)))
            out["tl2cgen_predict_rows_per_s"] = len(xte) / t
            diffs.append(float(np.abs(p.reshape(-1) - lgb_test).max()))
            one = tl2cgen.Predictor(str(lib), nthread=1)
            percentiles(out, "tl2cgen_py", per_row(single, lambda row: one.predict(tl2cgen.DMatrix(row))))
            if timer is not None:
                address = ctypes.cast(ctypes.CDLL(str(lib)).predict, ctypes.c_void_p).value
                lat, pred = native_rows(timer, "time_tl2cgen", address, single)
                percentiles(out, "tl2cgen_native", lat)
                diffs.append(float(np.abs(pred - lgb_test[:len(single)]).max()))
        if diffs:
            out["compiled_max_abs_diff"] = max(diffs)
    sys.stdout.flush()
    os.write(json_out, (json.dumps(out) + "\n").encode())


def _version(dist):
    from importlib.metadata import version
    return version(dist)


if __name__ == "__main__":
    main()
