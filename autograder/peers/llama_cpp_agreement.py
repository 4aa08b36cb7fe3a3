"""Teacher-forced agreement of kernels::llm with llama.cpp (through llama-cpp-python), printed as JSON.

usage: python llama_cpp_agreement.py MODEL.gguf DIR PROMPTS THREADS

For each prompt i < PROMPTS, DIR holds what kernels/examples/llm_teacher_forced.rs
wrote: i.tokens (u32 ids), i.logits (f32, tokens x vocab: kernels' next-token
logits at every position of one teacher-forced pass) and i.greedy (kernels'
greedy continuation). llama.cpp evaluates exactly the same ids with
logits_all=True, so both sides predict every position from the same prefix:
a disagreement at one position cannot spread to the next, as it does in
free-running generation. Per prompt this prints the positions, how many have
the same top-1 token, the mean and largest KL(llama.cpp || kernels) in nats (in
float64 over log-softmaxed logits), how often kernels' top token is in
llama.cpp's top 5, and how many greedy tokens agree before the first divergence
(llama.cpp decoding greedily from the same prompt, one token per eval).

When DIR also holds i.reference (the float64 NumPy forward pass of
kernels/tests/llm/reference.py on dequantised weights, activations not
quantised, stored as f32), each row also gives both engines' distance from it:
top-1 agreement with the reference and the mean KL(reference || engine).
"""
import json
import os
import sys

import numpy as np
from llama_cpp import Llama


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def main() -> None:
    path, folder, n_prompts, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    prompts = []
    for i in range(n_prompts):
        prompts.append((
            np.fromfile(f"{folder}/{i}.tokens", dtype="<u4").astype(np.int64),
            np.fromfile(f"{folder}/{i}.greedy", dtype="<u4").astype(np.int64),
        ))
    n_ctx = max(len(t) + len(g) for t, g in prompts) + 8
    llm = Llama(model_path=path, n_ctx=n_ctx, n_batch=n_ctx, n_threads=threads, n_threads_batch=threads,
                logits_all=True, verbose=False)
    vocab = llm.n_vocab()
    rows = []
    for i, (tokens, greedy) in enumerate(prompts):
        n = len(tokens)
        ours = np.fromfile(f"{folder}/{i}.logits", dtype="<f4").reshape(n, vocab)
        llm.reset()
        llm.eval(tokens.tolist())
        theirs = np.array(llm.scores[:n], dtype=np.float32)
        lp_theirs, lp_ours = log_softmax(theirs), log_softmax(ours)
        kl = (np.exp(lp_theirs) * (lp_theirs - lp_ours)).sum(axis=-1)
        top_theirs, top_ours = theirs.argmax(axis=-1), ours.argmax(axis=-1)
        top5 = np.argsort(-theirs, axis=-1)[:, :5]
        in_top5 = int(sum(top_ours[j] in top5[j] for j in range(n)))
        versus_reference = {}
        if os.path.exists(f"{folder}/{i}.reference"):
            ref = np.fromfile(f"{folder}/{i}.reference", dtype="<f4").reshape(n, vocab)
            lp_ref, top_ref = log_softmax(ref), ref.argmax(axis=-1)
            p_ref = np.exp(lp_ref)
            for side, lp, top in (("kernels", lp_ours, top_ours), ("llama", lp_theirs, top_theirs)):
                versus_reference[f"ref_top1_{side}"] = int((top == top_ref).sum())
                versus_reference[f"ref_kl_{side}"] = float((p_ref * (lp_ref - lp)).sum(axis=-1).mean())
        # Greedy decoding from the same prompt, one token at a time (as a server decodes).
        agree, nxt = 0, int(theirs[-1].argmax())
        for want in greedy.tolist():
            if nxt != want:
                break
            agree += 1
            llm.eval([nxt])
            nxt = int(np.array(llm.scores[llm.n_tokens - 1]).argmax())
        rows.append({
            "prompt": i, "positions": n, "top1_agree": int((top_theirs == top_ours).sum()), "top1_in_top5": in_top5,
            "kl_mean": float(kl.mean()), "kl_max": float(kl.max()), "kl_max_at": int(kl.argmax()), "greedy_agree": agree,
            "greedy_total": len(greedy), **versus_reference,
        })
    json.dump(rows, sys.stdout)


if __name__ == "__main__":
    main()
