"""Reads a registered model version back through MLflow's own Python client, for kernels' tracking tests.

A version that kernels::tracking registered over the Model Registry REST API
(https://mlflow.org/docs/latest/api_reference/rest-api.html) must look the same
to `mlflow.MlflowClient`, and `models:/NAME@ALIAS` must download the files that
were logged. This prints the version (by alias), the registered model's
aliases and the downloaded files' contents as one JSON object on stdout.

usage: MLFLOW_TRACKING_URI=http://127.0.0.1:PORT python registry_readback.py NAME ALIAS
"""

import json
import os
import sys
import tempfile

import mlflow
from mlflow import MlflowClient


def main() -> None:
    name, alias = sys.argv[1], sys.argv[2]
    client = MlflowClient()
    mv = client.get_model_version_by_alias(name, alias)
    model = client.get_registered_model(name)
    contents = {}
    with tempfile.TemporaryDirectory() as tmp:
        local = mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}@{alias}", dst_path=tmp)
        for root, _dirs, files in os.walk(local):
            for f in files:
                path = os.path.join(root, f)
                rel = os.path.relpath(path, local).replace(os.sep, "/")
                with open(path, "rb") as fh:
                    contents[rel] = fh.read().hex()
    out = {
        "name": mv.name,
        "version": str(mv.version),
        "source": mv.source,
        "run_id": mv.run_id,
        "status": mv.status,
        "tags": dict(mv.tags),
        "aliases": {a: str(v) for a, v in model.aliases.items()},
        "contents": contents,
    }
    json.dump(out, sys.stdout, sort_keys=True)


if __name__ == "__main__":
    main()
