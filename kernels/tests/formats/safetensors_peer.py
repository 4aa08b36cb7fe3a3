#!/usr/bin/env python3
"""The `safetensors` Python package (safetensors==0.8.0) as the reference for
`kernels::formats::safetensors`.

Run by kernels/tests/it/formats.rs with the peers' venv (`cargo xtask peers`):

    safetensors_peer.py dump PATH [TENSOR ...]   print, as one JSON object, what safe_open reports:
                                                 the __metadata__, and every tensor's dtype, shape
                                                 and a checksum of its bytes (as numpy loads them);
                                                 for each TENSOR named, its values as f32 bit patterns
    safetensors_peer.py write PATH               write a small file with safetensors.numpy.save_file:
                                                 F32, F16, F64, I64, I32, U8 and BOOL tensors, a
                                                 scalar and an empty tensor, and a __metadata__

The checksum of bytes b[0..n] is sum(b[i] * (i % 251 + 1)) mod 2**64.
"""

import json
import sys

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file


def checksum(array):
    flat = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
    weights = (np.arange(flat.size, dtype=np.uint64) % 251) + 1
    return int((flat.astype(np.uint64) * weights).sum(dtype=np.uint64))


def dump(path, wanted):
    tensors = {}
    with safe_open(path, framework="numpy") as f:
        metadata = f.metadata() or {}
        for name in f.keys():
            sl = f.get_slice(name)
            array = f.get_tensor(name)
            entry = {"dtype": sl.get_dtype(), "shape": list(sl.get_shape()), "checksum": checksum(array)}
            if name in wanted:
                entry["f32_bits"] = array.astype(np.float32).reshape(-1).view(np.uint32).tolist()
            tensors[name] = entry
    json.dump({"metadata": metadata, "tensors": tensors}, sys.stdout)


def write(path):
    rng = np.random.Generator(np.random.PCG64(8))
    tensors = {
        "f32": rng.standard_normal((3, 5)).astype(np.float32),
        "f16": rng.standard_normal((2, 2, 3)).astype(np.float16),
        "f64": rng.standard_normal(7),
        "i64": np.arange(-3, 3, dtype=np.int64),
        "i32": np.array([[1, -2], [3, -4]], dtype=np.int32),
        "u8": np.arange(11, dtype=np.uint8),
        "bool": np.array([True, False, True]),
        "scalar": np.array(2.5, dtype=np.float32),
        "empty": np.zeros((0, 4), dtype=np.float32),
    }
    save_file(tensors, path, metadata={"format": "np", "note": "héllo"})


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "dump":
        dump(sys.argv[2], set(sys.argv[3:]))
    elif len(sys.argv) == 3 and sys.argv[1] == "write":
        write(sys.argv[2])
    else:
        raise SystemExit(__doc__)
