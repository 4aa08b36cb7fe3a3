"""Prefill and decode throughput of llama.cpp (through llama-cpp-python) on a GGUF, printed as JSON.

The same workload as kernels/examples/llm_throughput.rs: a prompt of fixed
token ids, then greedy decoding, best of ROUNDS. llama.cpp's OpenMP threads
spin between graph nodes unless OMP_WAIT_POLICY=PASSIVE: spinning is about 4x
faster at decode on a quiet machine, sleeping is robust to other load. The
caller sets the policy in the environment (`cargo xtask bench llm` runs both).

With copies of the file (each its own file, so no two share page-cache pages),
every copy prefills the prompt and then the copies decode one token each in
turn, as kernels/examples/llm_throughput.rs does: once the copies together
exceed the last-level cache, each token reads its weights from DRAM.

usage: python llama_cpp_throughput.py MODEL.gguf PROMPT_TOKENS DECODE_TOKENS ROUNDS THREADS [COPY.gguf ...]
"""

import json
import sys
import time

import numpy as np
from llama_cpp import Llama


def last_argmax(llm: Llama) -> int:
    """Greedy choice from the logits of the last evaluated token (llama-cpp-python keeps none itself
    unless logits_all, which would copy every row)."""
    logits = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),))
    return int(np.argmax(logits))


def main() -> None:
    path, n_prompt, n_decode, rounds, threads = sys.argv[1], *map(int, sys.argv[2:6])
    paths = [path, *sys.argv[6:]]
    llms = [
        Llama(model_path=p, n_ctx=n_prompt + n_decode + 8, n_batch=n_prompt + n_decode + 8, n_threads=threads,
              n_threads_batch=threads, verbose=False, logits_all=False)
        for p in paths
    ]
    k = len(llms)
    prompt = [100 + (i * 7919) % 40000 for i in range(n_prompt)]
    best_prefill = best_decode = 0.0
    tokens = []
    for _ in range(rounds):
        for llm in llms:
            llm.reset()
        start = time.perf_counter()
        for llm in llms:
            llm.eval(prompt)
        best_prefill = max(best_prefill, k * n_prompt / (time.perf_counter() - start))
        tokens = []
        nxt = [last_argmax(llm) for llm in llms]
        start = time.perf_counter()
        for _ in range(n_decode):
            tokens.append(nxt[0])
            # One token of each copy in turn: the copy that decodes next was evicted by the others.
            for i, llm in enumerate(llms):
                llm.eval([nxt[i]])
                nxt[i] = last_argmax(llm)
        best_decode = max(best_decode, k * n_decode / (time.perf_counter() - start))
    json.dump({"prefill_tok_s": best_prefill, "decode_tok_s": best_decode, "copies": k, "tokens": tokens}, sys.stdout)


if __name__ == "__main__":
    main()
