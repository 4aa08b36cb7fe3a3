"""Reads a run back through MLflow's own Python client, for the hidden tests of week c3w1.

What the learner's Rust client logged over the REST API
(https://mlflow.org/docs/latest/api_reference/rest-api.html) must look the same
to `mlflow.tracking.MlflowClient`. This prints the run's info, params, tags,
the full history of every metric, the recursive artifact listing and the
content of every artifact (hex) as one JSON object on stdout; hidden.rs embeds
this file and compares the object with what it logged.

usage: MLFLOW_TRACKING_URI=http://127.0.0.1:PORT python -c "$(cat readback.py)" RUN_ID
"""

import json
import os
import sys
import tempfile

from mlflow.tracking import MlflowClient


def finite_or_name(x: float):
    """JSON has no NaN or infinities: spell them as protobuf's JSON does."""
    if x != x:
        return "NaN"
    if x in (float("inf"), float("-inf")):
        return "Infinity" if x > 0 else "-Infinity"
    return x


def main() -> None:
    run_id = sys.argv[1]
    client = MlflowClient()
    run = client.get_run(run_id)
    metrics = {}
    for key in sorted(run.data.metrics):
        history = client.get_metric_history(run_id, key)
        metrics[key] = sorted(
            ([m.step, m.timestamp, finite_or_name(m.value)] for m in history),
            key=lambda r: (r[0], r[1]),
        )

    files = []

    def walk(path):
        for info in client.list_artifacts(run_id, path):
            if info.is_dir:
                walk(info.path)
            else:
                files.append({"path": info.path, "size": info.file_size})

    walk(None)
    files.sort(key=lambda f: f["path"])

    contents = {}
    if files:
        with tempfile.TemporaryDirectory() as tmp:
            local = client.download_artifacts(run_id, "", tmp)
            for f in files:
                with open(os.path.join(local, *f["path"].split("/")), "rb") as fh:
                    contents[f["path"]] = fh.read().hex()

    out = {
        "run_id": run.info.run_id,
        "experiment_id": run.info.experiment_id,
        "status": run.info.status,
        "run_name": run.info.run_name,
        "start_time": run.info.start_time,
        "end_time": run.info.end_time,
        "params": run.data.params,
        "tags": dict(run.data.tags),
        "metrics": metrics,
        "artifacts": files,
        "contents": contents,
    }
    json.dump(out, sys.stdout, sort_keys=True)


if __name__ == "__main__":
    main()
