"""NumPy, pyarrow and pandas on the workloads of `cargo xtask bench c3w2`: prints JSON rows.

Each row is {"op", "impl", "rows", "ms", "rows/s"}, the best of several timed
passes, for the same sizes the Rust side measured (the first `rows` rows of the
Parquet files it wrote):

- "stats": count, null count, mean, population std, min and max of the
  `amount` column (1% nulls). pyarrow works on the Arrow array with its validity
  bitmap (`pyarrow.compute`); NumPy on a float64 array with NaN for the nulls
  (`nanmean`, `nanstd`, `nanmin`, `nanmax`, `isnan().sum()`), the way people
  write it.
- "join": pandas `merge_asof(direction="backward", by="card_id")` of the
  events onto the features, including the sorts by time it requires (the Rust
  joins sort internally too).

Everything runs on one thread (`pyarrow.set_cpu_count(1)`).
"""
import argparse
import json
import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq


def best_seconds(fn, min_seconds=0.02, passes=5):
    """Best seconds per call of `fn` over `passes` timed batches of at least `min_seconds`."""
    fn()
    best = float("inf")
    for _ in range(passes):
        reps, start = 0, time.perf_counter()
        while True:
            fn()
            reps += 1
            elapsed = time.perf_counter() - start
            if elapsed >= min_seconds:
                break
        best = min(best, elapsed / reps)
    return best


def row(op, impl, n, seconds):
    return {"op": op, "impl": impl, "rows": n, "ms": seconds * 1e3, "rows/s": n / seconds}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", required=True)
    parser.add_argument("--features", required=True)
    parser.add_argument("--sizes", required=True)
    args = parser.parse_args()
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    events = pq.read_table(args.events)
    features = pq.read_table(args.features)
    rows = []
    for n in [int(s) for s in args.sizes.split(",")]:
        amount = events.column("amount").slice(0, n).combine_chunks()
        as_numpy = amount.to_numpy(zero_copy_only=False)  # nulls become NaN

        def arrow_stats():
            return (
                pc.count(amount),
                amount.null_count,
                pc.mean(amount),
                pc.stddev(amount, ddof=0),
                pc.min_max(amount),
            )

        def numpy_stats():
            return (
                np.isnan(as_numpy).sum(),
                np.nanmean(as_numpy),
                np.nanstd(as_numpy),
                np.nanmin(as_numpy),
                np.nanmax(as_numpy),
            )

        rows.append(row("stats", "pyarrow", n, best_seconds(arrow_stats)))
        rows.append(row("stats", "numpy", n, best_seconds(numpy_stats)))

        left = events.slice(0, n).select(["card_id", "ts", "transaction_id"]).to_pandas()
        right = features.slice(0, n).to_pandas()

        def pandas_join():
            return pd.merge_asof(
                left.sort_values("ts", kind="stable"),
                right.sort_values("ts", kind="stable"),
                on="ts",
                by="card_id",
                direction="backward",
                allow_exact_matches=True,
            )

        rows.append(row("join", "pandas", n, best_seconds(pandas_join, passes=3)))
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
