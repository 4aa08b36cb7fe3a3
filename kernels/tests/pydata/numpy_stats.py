"""Column statistics of a Parquet file with NumPy (pyarrow to read), one line per
statistic for the Rust test to compare: `<column> <stat> <repr(value)>`.
Stats: rows, nulls, nans, mean (np.nanmean), std (np.nanstd, ddof=0),
sample_std (ddof=1), min, max (np.nanmin/nanmax), q<q> (np.nanquantile, linear).

usage: numpy_stats.py FILE.parquet COLUMN [COLUMN ...]
"""
import sys

import numpy as np
import pyarrow.parquet as pq

QS = [0.0, 0.01, 0.25, 0.5, 0.75, 0.99, 1.0]


def main(path, columns):
    table = pq.read_table(path, columns=columns)
    for name in columns:
        col = table.column(name)
        nulls = col.null_count
        x = col.to_numpy(zero_copy_only=False).astype(np.float64)  # nulls become NaN
        nans = int(np.isnan(x).sum()) - nulls
        print(name, "rows", len(x))
        print(name, "nulls", nulls)
        print(name, "nans", nans)
        print(name, "mean", repr(float(np.nanmean(x))))
        print(name, "std", repr(float(np.nanstd(x))))
        print(name, "sample_std", repr(float(np.nanstd(x, ddof=1))))
        print(name, "min", repr(float(np.nanmin(x))))
        print(name, "max", repr(float(np.nanmax(x))))
        for q in QS:
            print(name, f"q{q}", repr(float(np.nanquantile(x, q))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
