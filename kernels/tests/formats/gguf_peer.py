#!/usr/bin/env python3
"""The `gguf` Python package (gguf==0.19.0) as the reference for `kernels::formats::gguf`.

Run by kernels/tests/it/formats.rs with the peers' venv (`cargo xtask peers`):

    gguf_peer.py dump PATH [TENSOR ...]   print, as one JSON object, what GGUFReader reports:
                                          version, alignment, data offset, every metadata entry
                                          (key, type, element type, value in full), and every
                                          tensor (name, type, dims, offset, sizes, a checksum of
                                          its bytes); for each TENSOR named, its values
                                          dequantised by gguf.quants.dequantize
    gguf_peer.py write PATH               write a small GGUF file with GGUFWriter holding a
                                          metadata entry of every scalar type, arrays of every
                                          element type (GGUFWriter refuses empty arrays), and F32, F16, BF16,
                                          Q8_0 and Q4_0 tensors, with a 64-byte alignment

Floats are printed as their IEEE bit patterns (integers), so the comparison is exact.
The checksum of a tensor's bytes b[0..n] is sum(b[i] * (i % 251 + 1)) mod 2**64.
"""

import json
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T, GGUFValueType as V
from gguf.quants import dequantize, quantize

FLOAT_BITS = {V.FLOAT32: np.uint32, V.FLOAT64: np.uint64}


def plain(value_type, part):
    """One scalar part as JSON: ints, bools, float bit patterns."""
    if value_type in FLOAT_BITS:
        return int(part.view(FLOAT_BITS[value_type])[0])
    if value_type == V.BOOL:
        return bool(part[0])
    return int(part[0])


def field_json(field):
    kv_type = V(int(field.parts[2][0]))
    out = {"key": field.name, "type": kv_type.name}
    if kv_type == V.ARRAY:
        elem = V(int(field.parts[3][0]))
        out["element_type"] = elem.name
        if elem == V.ARRAY:
            raise SystemExit(f"{field.name}: nested arrays are not compared (GGUFReader flattens them)")
        if elem == V.STRING:
            out["value"] = [str(field.parts[i].tobytes(), encoding="utf-8") for i in field.data]
        else:
            out["value"] = [plain(elem, field.parts[i]) for i in field.data]
    elif kv_type == V.STRING:
        out["value"] = str(field.parts[-1].tobytes(), encoding="utf-8")
    else:
        out["value"] = plain(kv_type, field.parts[-1])
    return out


def checksum(data):
    flat = np.asarray(data).reshape(-1).view(np.uint8)
    total = 0
    step = 251 * 4096
    weights = (np.arange(step, dtype=np.uint64) % 251) + 1
    for start in range(0, flat.size, step):
        chunk = flat[start : start + step].astype(np.uint64)
        total = (total + int((chunk * weights[: chunk.size]).sum())) % 2**64
    return total


def dump(path, wanted):
    r = gguf.GGUFReader(path)
    fields = [f for name, f in r.fields.items() if not name.startswith("GGUF.")]
    tensors = []
    for t in r.tensors:
        entry = {
            "name": t.name,
            "type": t.tensor_type.name,
            "type_id": int(t.tensor_type),
            "dims": [int(d) for d in t.shape],
            "offset": int(t.data_offset - r.data_offset),
            "n_elements": int(t.n_elements),
            "n_bytes": int(t.n_bytes),
            "checksum": checksum(t.data),
        }
        if t.name in wanted:
            values = dequantize(t.data, t.tensor_type).astype(np.float32).reshape(-1)
            entry["f32_bits"] = values.view(np.uint32).tolist()
        tensors.append(entry)
    out = {
        "version": int(r.fields["GGUF.version"].parts[0][0]),
        "alignment": int(r.alignment),
        "data_offset": int(r.data_offset),
        "metadata": [field_json(f) for f in fields],
        "tensors": tensors,
    }
    json.dump(out, sys.stdout, ensure_ascii=False)


def write(path):
    w = gguf.GGUFWriter(path, arch="test")
    w.add_custom_alignment(64)
    w.add_uint8("t.u8", 200)
    w.add_int8("t.i8", -100)
    w.add_uint16("t.u16", 60000)
    w.add_int16("t.i16", -30000)
    w.add_uint32("t.u32", 4_000_000_000)
    w.add_int32("t.i32", -2_000_000_000)
    w.add_float32("t.f32", -1.5e-7)
    w.add_uint64("t.u64", 2**63 + 12345)
    w.add_int64("t.i64", -(2**62) - 7)
    w.add_float64("t.f64", 3.141592653589793e200)
    w.add_bool("t.true", True)
    w.add_bool("t.false", False)
    w.add_string("t.str", "héllo, wörld ✓")
    w.add_string("t.empty", "")
    for name, vt, values in [
        ("t.arr.u8", V.UINT8, [0, 1, 255]),
        ("t.arr.i8", V.INT8, [-128, 0, 127]),
        ("t.arr.u16", V.UINT16, [0, 65535]),
        ("t.arr.i16", V.INT16, [-32768, 32767]),
        ("t.arr.u32", V.UINT32, [0, 1, 2**32 - 1]),
        ("t.arr.i32", V.INT32, [-(2**31), 2**31 - 1]),
        ("t.arr.f32", V.FLOAT32, [0.0, -0.0, 1.0e-38, float("inf"), 65504.0]),
        ("t.arr.u64", V.UINT64, [2**64 - 1]),
        ("t.arr.i64", V.INT64, [-(2**63)]),
        ("t.arr.f64", V.FLOAT64, [1.0e-300, -2.5]),
        ("t.arr.bool", V.BOOL, [True, False, True]),
        ("t.arr.str", V.STRING, ["a", "", "ünï", "Ġthe"]),
    ]:
        w.add_key_value(name, values, V.ARRAY, sub_type=vt)
    rng = np.random.Generator(np.random.PCG64(4))
    f32 = rng.standard_normal((3, 64)).astype(np.float32)
    w.add_tensor("w.f32", f32)
    w.add_tensor("w.f16", f32.astype(np.float16))
    bf16 = quantize(f32, T.BF16)
    w.add_tensor("w.bf16", bf16, raw_shape=bf16.shape, raw_dtype=T.BF16)
    q8 = quantize(f32, T.Q8_0)
    w.add_tensor("w.q8_0", q8, raw_shape=q8.shape, raw_dtype=T.Q8_0)
    q4 = quantize(f32, T.Q4_0)
    w.add_tensor("w.q4_0", q4, raw_shape=q4.shape, raw_dtype=T.Q4_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "dump":
        dump(sys.argv[2], set(sys.argv[3:]))
    elif len(sys.argv) == 3 and sys.argv[1] == "write":
        write(sys.argv[2])
    else:
        raise SystemExit(__doc__)
