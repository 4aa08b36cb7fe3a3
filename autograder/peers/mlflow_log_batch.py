"""MLflow's own Python client on the c3w1 benchmark workload: log-batch throughput, as JSON rows.

The Rust side (autograder/weeks/c3w1/bench.rs) embeds this script and runs it
with the venv's Python while its MLflow server is up (MLFLOW_TRACKING_URI).
For each number of points per call it logs the same points the Rust clients
log (KEYS series, value sin(0.37 i), step i // KEYS) into a fresh run with
`MlflowClient.log_batch`, best of ROUNDS, and prints one row per size:
{"impl": "mlflow-python", "metrics per call", "metrics", "requests", "metrics/s"}.

usage: MLFLOW_TRACKING_URI=http://127.0.0.1:PORT python mlflow_log_batch.py \
           --sizes 1,10,100 --totals 200,1000,5000 --keys 10 --rounds 2 --experiment NAME
"""

import argparse
import json
import math
import sys
import time

from mlflow.entities import Metric
from mlflow.tracking import MlflowClient


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", required=True)
    ap.add_argument("--totals", required=True)
    ap.add_argument("--keys", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--experiment", required=True)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    totals = [int(n) for n in args.totals.split(",")]

    client = MlflowClient()
    experiment_id = client.create_experiment(args.experiment)
    rows = []
    for per_call, n in zip(sizes, totals):
        best = math.inf
        for _ in range(args.rounds):
            run_id = client.create_run(experiment_id).info.run_id
            t0 = int(time.time() * 1000)
            metrics = [
                Metric(f"series{i % args.keys}", math.sin(i * 0.37), t0 + i, i // args.keys) for i in range(n)
            ]
            start = time.perf_counter()
            for k in range(0, n, per_call):
                client.log_batch(run_id, metrics=metrics[k : k + per_call])
            best = min(best, time.perf_counter() - start)
        # MlflowClient.log_batch splits a call into requests of at most 1000 metrics.
        requests = sum(math.ceil(len(range(k, min(k + per_call, n))) / 1000) for k in range(0, n, per_call))
        rows.append(
            {"impl": "mlflow-python", "metrics per call": per_call, "metrics": n, "requests": requests, "metrics/s": n / best}
        )
        print(f"mlflow-python: {per_call} per call: {n / best:.0f} metrics/s", file=sys.stderr)
    json.dump(rows, sys.stdout)


if __name__ == "__main__":
    main()
