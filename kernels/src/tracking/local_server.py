"""Runs one MLflow tracking server for kernels::tracking::LocalServer and stops it when its parent ends.

The server is the real thing (`mlflow server`, REST API documented at
https://mlflow.org/docs/latest/api_reference/rest-api.html), started in this
process's process group. The Rust side keeps this script's stdin open; when
that process ends for any reason (even SIGKILL) the pipe closes, and this
script terminates the whole group, so no server outlives its owner.

usage: python -c "$(cat local_server.py)" PORT DIR   (embedded in local_server.rs)
"""

import os
import signal
import subprocess
import sys


def main() -> None:
    port, root = sys.argv[1], sys.argv[2]
    os.makedirs(os.path.join(root, "artifacts"), exist_ok=True)
    mlflow = os.path.join(os.path.dirname(sys.executable), "mlflow")
    server = subprocess.Popen(
        [
            mlflow, "server",
            "--host", "127.0.0.1",
            "--port", port,
            "--workers", "1",
            "--backend-store-uri", f"sqlite:///{root}/mlflow.db",
            "--default-artifact-root", "mlflow-artifacts:/",
            "--artifacts-destination", os.path.join(root, "artifacts"),
        ],
        stdin=subprocess.DEVNULL,
        stdout=open(os.path.join(root, "server.log"), "ab"),
        stderr=subprocess.STDOUT,
    )
    # Block until the test closes our stdin (or dies), then stop the group.
    try:
        sys.stdin.buffer.read()
    finally:
        # Only signal the group if it is ours alone (the test starts us as a group leader).
        own_group = os.getpgrp() == os.getpid()
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if own_group:
            os.killpg(os.getpgrp(), signal.SIGTERM)
        else:
            server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            if own_group:
                os.killpg(os.getpgrp(), signal.SIGKILL)
            else:
                server.kill()


if __name__ == "__main__":
    main()
