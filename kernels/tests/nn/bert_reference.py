#!/usr/bin/env python3
"""An independent NumPy BERT (Hugging Face `BertModel` forward, then sentence-transformers' mean
pooling and normalisation), the reference for `kernels::nn::bert`.

Run by kernels/tests/it/nn.rs with the peers' venv (`cargo xtask peers`: numpy, safetensors,
tokenizers):

    bert_reference.py MODEL_DIR < request.json

request.json is {"sentences": [...]} (tokenised here with the `tokenizers` package and the
folder's tokenizer.json, its fixed padding turned off) or {"ids": [[...], ...]}. The batch is
right-padded to its longest sequence and run as ONE padded batch with an attention mask, in
float64, the way transformers' BertModel does it: position ids are column indices, the mask is
added to the attention scores as (1 - mask) * finfo(float32).min, GELU is the exact erf form.

Prints {"ids": [[...]], "attention_mask": [[...]], "embeddings": [[...]]} (ids and mask padded).
"""

import json
import math
import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file

erf = np.vectorize(math.erf)


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def main():
    model_dir = Path(sys.argv[1])
    request = json.load(sys.stdin)
    config = json.loads((model_dir / "config.json").read_text())
    if "sentences" in request:
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        tok.no_padding()
        ids = [e.ids for e in tok.encode_batch(request["sentences"])]
    else:
        ids = request["ids"]

    w = {k: v.astype(np.float64) for k, v in load_file(str(model_dir / "model.safetensors")).items() if v.dtype == np.float32}
    H, heads, eps = config["hidden_size"], config["num_attention_heads"], config["layer_norm_eps"]
    d = H // heads
    B, T = len(ids), max(len(s) for s in ids)
    input_ids = np.zeros((B, T), dtype=np.int64)
    mask = np.zeros((B, T), dtype=np.float64)
    for i, s in enumerate(ids):
        input_ids[i, : len(s)] = s
        mask[i, : len(s)] = 1.0

    x = (
        w["embeddings.word_embeddings.weight"][input_ids]
        + w["embeddings.position_embeddings.weight"][np.arange(T)][None, :, :]
        + w["embeddings.token_type_embeddings.weight"][0][None, None, :]
    )
    x = layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
    additive = (1.0 - mask)[:, None, None, :] * float(np.finfo(np.float32).min)

    def dense(x, name):
        return x @ w[name + ".weight"].T + w[name + ".bias"]

    def split(x):  # [B, T, H] -> [B, heads, T, d]
        return x.reshape(B, T, heads, d).transpose(0, 2, 1, 3)

    for l in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{l}."
        q = split(dense(x, p + "attention.self.query"))
        k = split(dense(x, p + "attention.self.key"))
        v = split(dense(x, p + "attention.self.value"))
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(d) + additive
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        probs = scores / scores.sum(-1, keepdims=True)
        ctx = (probs @ v).transpose(0, 2, 1, 3).reshape(B, T, H)
        x = layer_norm(x + dense(ctx, p + "attention.output.dense"), w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"], eps)
        inner = dense(x, p + "intermediate.dense")
        inner = 0.5 * inner * (1.0 + erf(inner / math.sqrt(2.0)))
        x = layer_norm(x + dense(inner, p + "output.dense"), w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], eps)

    summed = (x * mask[:, :, None]).sum(1)
    mean = summed / np.clip(mask.sum(1, keepdims=True), 1e-9, None)
    emb = mean / np.clip(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12, None)
    json.dump({"ids": input_ids.tolist(), "attention_mask": mask.astype(int).tolist(), "embeddings": emb.tolist()}, sys.stdout)


if __name__ == "__main__":
    main()
