"""The peer of `kernels::serve_model` in `cargo xtask bench serve-model`: LightGBM behind FastAPI + uvicorn.

References: Ke et al., "LightGBM", NeurIPS 2017 (the model); FastAPI (https://fastapi.tiangolo.com) on
uvicorn (ASGI, one worker process, the usual Python way to serve a model over HTTP).

Reads the files `ml_throughput gen` wrote (DIR/x.f32: row-major little-endian float32, DIR/y.f32: 0/1
labels, DIR/shape.json: rows, cols, train_rows), trains LightGBM with the Rust side's boosting settings
(objective binary, 100 rounds, num_leaves 31, learning_rate 0.1, max_bin 255, min_data_in_leaf 20,
2 threads) on the training rows, and serves

    POST /v1/models/fraud:predict   {"instances": [[...], ...]}  ->  {"model": "fraud", "predictions": [...]}
    GET  /health

on 127.0.0.1:PORT (one uvicorn worker, access log off), predicting with `Booster.predict(x, num_threads=1)`.
Prints `ready http://127.0.0.1:PORT` on stdout once it listens. The Rust side drives it with the same
open-loop generator as its own server, in the same run, and stops it with SIGTERM.

usage: python serve_model_peer.py DIR PORT
"""

import json
import socket
import sys
import threading
import time
from pathlib import Path

import lightgbm as lgb
import numpy as np
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


def main() -> None:
    data, port = Path(sys.argv[1]), int(sys.argv[2])
    shape = json.loads((data / "shape.json").read_text())
    rows, cols, train = shape["rows"], shape["cols"], shape["train_rows"]
    x = np.fromfile(data / "x.f32", dtype="<f4").reshape(rows, cols)
    y = np.fromfile(data / "y.f32", dtype="<f4")
    params = {
        "objective": "binary", "num_leaves": 31, "learning_rate": 0.1, "max_bin": 255,
        "min_data_in_leaf": 20, "min_sum_hessian_in_leaf": 1e-3, "lambda_l2": 0.0,
        "num_threads": 2, "verbose": -1,
    }
    booster = lgb.train(params, lgb.Dataset(x[:train], y[:train]), num_boost_round=100)

    app = FastAPI()

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    @app.post("/v1/models/fraud:predict")
    async def predict(request: Request):
        body = await request.json()
        try:
            batch = np.asarray(body["instances"], dtype=np.float32)
            if batch.ndim != 2 or batch.shape[1] != cols:
                raise ValueError(f"expected rows of {cols} values")
        except (KeyError, TypeError, ValueError) as e:
            return JSONResponse({"error": {"code": "bad_input", "message": str(e)}}, status_code=422)
        p = booster.predict(batch, num_threads=1)
        return {"model": "fraud", "predictions": p.tolist()}

    def announce() -> None:
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                print(f"ready http://127.0.0.1:{port}", flush=True)
                return
            except OSError:
                time.sleep(0.05)

    threading.Thread(target=announce, daemon=True).start()
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, workers=1)


if __name__ == "__main__":
    main()
