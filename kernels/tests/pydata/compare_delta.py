"""Reads a Delta table written by kernels::data with the `deltalake` Python package at
every version (time travel) and checks the rows against the expected JSON per version.
Delta Lake transaction protocol.

usage: compare_delta.py TABLE_DIR EXPECTED.json
EXPECTED.json: {"versions": [{"version": v, "key": "col", "columns": {...}, "rows": n}, ...]}
Rows are compared after sorting by the key column. Exit 0 and print "OK" on success.
"""
import json
import os
import sys

from deltalake import DeltaTable

from compare_parquet import plain, same


def main(table_dir, expected_path):
    with open(expected_path) as f:
        expected = json.load(f)
    latest = DeltaTable(table_dir).version()
    if latest != expected["latest"]:
        print(f"latest version {latest}, expected {expected['latest']}")
        return 1
    for entry in expected["versions"]:
        dt = DeltaTable(table_dir, version=entry["version"])
        table = dt.to_pyarrow_table()
        if table.num_rows > 0:
            table = table.sort_by(entry["key"])
        if table.num_rows != entry["rows"]:
            print(f"version {entry['version']}: {table.num_rows} rows, expected {entry['rows']}")
            return 1
        if table.column_names != list(entry["columns"].keys()):
            print(f"version {entry['version']}: columns {table.column_names}")
            return 1
        for name, want in entry["columns"].items():
            got = plain(table.column(name))
            for i, (g, w) in enumerate(zip(got, want)):
                if not same(g, w):
                    print(f"version {entry['version']} column {name} row {i}: {g!r} vs expected {w!r}")
                    return 1
    print("OK")
    return 0


if __name__ == "__main__":
    code = main(sys.argv[1], sys.argv[2])
    sys.stdout.flush()
    # deltalake's native runtime threads can abort the interpreter's normal
    # shutdown ("terminate called without an active exception") after the
    # comparison has finished; leave without that teardown so the exit code is ours.
    os._exit(code)
