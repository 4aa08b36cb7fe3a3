"""The peer of `kernels::train`'s QLoRA step: the same LoRA forward + backward on SmolLM2-135M's
shapes in JAX (jit, CPU), timed per token.

SmolLM2-135M: 30 blocks, d_model 576, 9 query and 3 key/value heads of 64, SwiGLU width 1536, a tied
embedding of 49152 rows. LoRA rank 8, alpha 16 on all seven projections; the base is frozen (no
gradient), the loss is the mean next-token cross-entropy. JAX has no Q4_1 blocks, so its base
weights are dense f32 (random: the time does not depend on the values): the same arithmetic as
`kernels`' step but without quantised weights, which `kernels` reads at a quarter of the bytes.

    python jax_lora_step.py [--threads 2] [--tokens 32,128] [--reps 3]

Prints one JSON line per length: {"tokens": n, "ms_per_token": ..., "tokens_per_s": ...}.
"""

import argparse
import json
import os
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tokens", default="32,128")
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    # XLA's CPU client sizes its thread pool from these flags; set before jax is imported.
    os.environ["XLA_FLAGS"] = (
        f"--xla_cpu_multi_thread_eigen=true intra_op_parallelism_threads={args.threads} "
        f"inter_op_parallelism_threads={args.threads}"
    )
    os.environ["JAX_PLATFORMS"] = "cpu"
    import jax
    import jax.numpy as jnp

    layers, d, nh, nkv, hd, ffn, vocab, rank, alpha = 30, 576, 9, 3, 64, 1536, 49152, 8, 16.0
    key = jax.random.PRNGKey(0)

    def w(shape, k):
        return 0.02 * jax.random.normal(k, shape, dtype=jnp.float32)

    shapes = {"q": (d, d), "k": (nkv * hd, d), "v": (nkv * hd, d), "o": (d, d),
              "gate": (ffn, d), "up": (ffn, d), "down": (d, ffn)}
    keys = iter(jax.random.split(key, 1000))
    base = {"embd": w((vocab, d), next(keys)), "out_norm": jnp.ones(d, jnp.float32), "blocks": []}
    lora = []
    for _ in range(layers):
        base["blocks"].append({"attn_norm": jnp.ones(d, jnp.float32), "ffn_norm": jnp.ones(d, jnp.float32),
                               **{n: w(s, next(keys)) for n, s in shapes.items()}})
        lora.append({n: (w((rank, s[1]), next(keys)), jnp.zeros((s[0], rank), jnp.float32)) for n, s in shapes.items()})

    def rms(x, g):
        return x / jnp.sqrt(jnp.mean(x * x, axis=-1, keepdims=True) + 1e-5) * g

    def rope(x, t):
        pos = jnp.arange(t, dtype=jnp.float32)[:, None]
        inv = 10000.0 ** (-jnp.arange(0, hd, 2, dtype=jnp.float32) / hd)
        ang = pos * inv
        h = x.reshape(t, -1, hd // 2, 2)
        a, b = h[..., 0], h[..., 1]
        c, s = jnp.cos(ang)[:, None], jnp.sin(ang)[:, None]
        return jnp.stack([a * c - b * s, a * s + b * c], -1).reshape(t, -1)

    def lin(x, wt, ab):
        a, b = ab
        return x @ wt.T + (alpha / rank) * ((x @ a.T) @ b.T)

    def loss(lora, base, tokens):
        t = tokens.shape[0] - 1
        x = base["embd"][tokens[:-1]]
        mask = jnp.tril(jnp.ones((t, t), bool))
        for blk, ad in zip(base["blocks"], lora):
            h = rms(x, blk["attn_norm"])
            q = rope(lin(h, blk["q"], ad["q"]), t).reshape(t, nh, hd)
            k = jnp.repeat(rope(lin(h, blk["k"], ad["k"]), t).reshape(t, nkv, hd), nh // nkv, 1)
            v = jnp.repeat(lin(h, blk["v"], ad["v"]).reshape(t, nkv, hd), nh // nkv, 1)
            s = jnp.einsum("ihd,jhd->hij", q, k) / jnp.sqrt(hd)
            p = jax.nn.softmax(jnp.where(mask, s, -jnp.inf), -1)
            x = x + lin(jnp.einsum("hij,jhd->ihd", p, v).reshape(t, d), blk["o"], ad["o"])
            h = rms(x, blk["ffn_norm"])
            x = x + lin(jax.nn.silu(lin(h, blk["gate"], ad["gate"])) * lin(h, blk["up"], ad["up"]), blk["down"], ad["down"])
        logits = rms(x, base["out_norm"]) @ base["embd"].T
        logp = jax.nn.log_softmax(logits, -1)
        return -jnp.mean(jnp.take_along_axis(logp, tokens[1:, None], -1))

    step = jax.jit(jax.value_and_grad(loss))
    for n in [int(s) for s in args.tokens.split(",")]:
        tokens = (jnp.arange(n + 1) * 7919 + 11) % vocab
        value, grads = step(lora, base, tokens)  # compile
        jax.block_until_ready(grads)
        t0 = time.perf_counter()
        for _ in range(args.reps):
            value, grads = step(lora, base, tokens)
            jax.block_until_ready(grads)
        per = (time.perf_counter() - t0) / (args.reps * n)
        print(json.dumps({"tokens": n, "ms_per_token": per * 1e3, "tokens_per_s": 1.0 / per,
                          "threads": args.threads, "jax": jax.__version__}))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
