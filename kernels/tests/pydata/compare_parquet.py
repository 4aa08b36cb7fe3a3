"""Reads a Parquet file written by kernels::data with pyarrow and checks every value
against the expected columns (JSON written by the Rust test). Apache Parquet format.

usage: compare_parquet.py FILE.parquet EXPECTED.json
Exit 0 and print "OK <rows>" when identical; exit 1 with the first difference otherwise.
"""
import json
import math
import sys

import pyarrow as pa
import pyarrow.parquet as pq


def plain(column):
    """A pyarrow column as a list of Python values (timestamps as raw integers)."""
    if pa.types.is_timestamp(column.type):
        column = column.cast(pa.int64())
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    return column.to_pylist()


def same(a, b):
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b and type(a) is type(b)


def main(path, expected_path):
    table = pq.read_table(path)
    with open(expected_path) as f:
        expected = json.load(f)
    if table.column_names != list(expected["columns"].keys()):
        print(f"columns differ: {table.column_names} vs {list(expected['columns'])}")
        return 1
    if table.num_rows != expected["rows"]:
        print(f"rows differ: {table.num_rows} vs {expected['rows']}")
        return 1
    for name, want in expected["columns"].items():
        got = plain(table.column(name))
        for i, (g, w) in enumerate(zip(got, want)):
            if not same(g, w):
                print(f"column {name} row {i}: pyarrow read {g!r}, expected {w!r}")
                return 1
    print(f"OK {table.num_rows}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
