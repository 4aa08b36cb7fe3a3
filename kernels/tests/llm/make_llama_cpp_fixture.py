"""Records llama.cpp's greedy continuation of SmolLM2's chat prompt, for kernels' llm tests.

llama.cpp (llama-cpp-python 0.3.36, built from source; too slow to build in CI,
hence a committed fixture) evaluates the prompt ids and decodes greedily. The
prompt is the ChatML rendering of [user: "What is the capital of France?"]
with SmolLM2's default system prompt, tokenised by llama.cpp with special tokens.

usage: python make_llama_cpp_fixture.py MODEL.gguf > llama_cpp_greedy.json
"""

import json
import sys

import llama_cpp
import numpy as np
from llama_cpp import Llama

PROMPT = (
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
    "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
)
STEPS = 32


def main() -> None:
    llm = Llama(model_path=sys.argv[1], n_ctx=256, n_batch=256, n_threads=2, verbose=False)
    ids = llm.tokenize(PROMPT.encode(), add_bos=False, special=True)
    llm.eval(ids)
    out = []
    for _ in range(STEPS):
        logits = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),))
        token = int(np.argmax(logits))
        out.append(token)
        if token == 2:  # <|im_end|>
            break
        llm.eval([token])
    json.dump(
        {
            "llama_cpp_python": llama_cpp.__version__,
            "prompt": PROMPT,
            "prompt_ids": ids,
            "greedy_ids": out,
            "greedy_text": llm.detokenize(out).decode("utf-8", "replace"),
        },
        sys.stdout,
        indent=1,
    )


if __name__ == "__main__":
    main()
