"""An independent LLaMA forward pass in NumPy (float64) over a GGUF file, for kernels' llm tests.

Weights are dequantised by the `gguf` package (the format's reference
implementation in Python); the maths follows the LLaMA paper and llama.cpp's
graph (RMSNorm, RoPE on adjacent pairs, grouped-query attention, SwiGLU).
Activations are NOT quantised here, so the Rust side (which quantises them to
Q8_0 as llama.cpp does) is compared with a tolerance, not bit for bit.

usage: python reference.py MODEL.gguf ID,ID,...   → JSON: logits after the last id, argmax after each id
       python reference.py MODEL.gguf --dir DIR N  → for each i < N, reads DIR/i.tokens (u32 ids) and
           writes DIR/i.reference: the logits after every id (T x vocab, computed in float64,
           stored as little-endian f32), for `cargo xtask bench llm-agreement`
"""

import json
import sys

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize


def forward_fn(path):
    """The model at `path` as a function from token ids to their (T, vocab) float64 logits."""
    r = GGUFReader(path)
    meta = {k: f.contents() for k, f in r.fields.items() if not k.startswith("tokenizer.")}
    tensors = {t.name: t for t in r.tensors}

    cache = {}

    def w(name):
        if name in cache:
            return cache[name]
        t = tensors[name]
        cache[name] = np.asarray(dequantize(t.data, t.tensor_type), dtype=np.float64).reshape(
            [int(d) for d in reversed(t.shape)]
        )
        return cache[name]

    n_layers = meta["llama.block_count"]
    d = meta["llama.embedding_length"]
    n_heads = meta["llama.attention.head_count"]
    n_kv = meta["llama.attention.head_count_kv"]
    base = meta["llama.rope.freq_base"]
    eps = meta["llama.attention.layer_norm_rms_epsilon"]
    hd = d // n_heads
    group = n_heads // n_kv

    def rms(x, g):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * g

    def rope(x, n_h):  # x: (T, n_h*hd)
        T = x.shape[0]
        x = x.reshape(T, n_h, hd // 2, 2)
        inv = base ** (-2.0 * np.arange(hd // 2) / hd)
        ang = np.arange(T)[:, None] * inv[None, :]
        cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
        a, b = x[..., 0], x[..., 1]
        return np.stack([a * cos - b * sin, a * sin + b * cos], axis=-1).reshape(T, n_h * hd)

    def forward(ids):
        emb = w("token_embd.weight")
        x = emb[ids]
        T = len(ids)
        mask = np.triu(np.full((T, T), -np.inf), 1)
        for i in range(n_layers):
            p = f"blk.{i}."
            h = rms(x, w(p + "attn_norm.weight"))
            q = rope(h @ w(p + "attn_q.weight").T, n_heads)
            k = rope(h @ w(p + "attn_k.weight").T, n_kv)
            v = h @ w(p + "attn_v.weight").T
            out = np.zeros((T, d))
            for hh in range(n_heads):
                g = hh // group
                qh, kh, vh = q[:, hh * hd:(hh + 1) * hd], k[:, g * hd:(g + 1) * hd], v[:, g * hd:(g + 1) * hd]
                s = qh @ kh.T / np.sqrt(hd) + mask
                s = np.exp(s - s.max(axis=1, keepdims=True))
                s /= s.sum(axis=1, keepdims=True)
                out[:, hh * hd:(hh + 1) * hd] = s @ vh
            x = x + out @ w(p + "attn_output.weight").T
            h = rms(x, w(p + "ffn_norm.weight"))
            gate = h @ w(p + "ffn_gate.weight").T
            up = h @ w(p + "ffn_up.weight").T
            x = x + ((gate / (1 + np.exp(-gate))) * up) @ w(p + "ffn_down.weight").T
        out_w = w("output.weight") if "output.weight" in tensors else emb
        logits = rms(x, w("output_norm.weight")) @ out_w.T
        return logits

    return forward


def main() -> None:
    path = sys.argv[1]
    forward = forward_fn(path)
    if sys.argv[2] == "--dir":
        folder, n = sys.argv[3], int(sys.argv[4])
        for i in range(n):
            ids = np.fromfile(f"{folder}/{i}.tokens", dtype="<u4").astype(np.int64).tolist()
            forward(ids).astype("<f4").tofile(f"{folder}/{i}.reference")
        return
    logits = forward([int(t) for t in sys.argv[2].split(",")])
    json.dump({"last": logits[-1].tolist(), "argmax": logits.argmax(axis=1).tolist()}, sys.stdout)


if __name__ == "__main__":
    main()
