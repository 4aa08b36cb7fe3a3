"""The reference side of kernels' tokenizer tests: HF tokenizers 0.23.3 on the same inputs.

Usage: hf_reference.py REQUEST.json RESPONSE.json

The request is a JSON object with "op" and its arguments; the response is JSON. Tokenizers:
  {"kind": "smollm2", "gguf": PATH}      SmolLM2's byte-level BPE built from the GGUF metadata (vocabulary,
                                         merges, control tokens as special tokens), with SmolLM2's pipeline:
                                         Sequence[Digits(individual_digits), ByteLevel(no prefix space)]
  {"kind": "json", "path": PATH, "plain": BOOL, "truncate": N, "pad": "longest"}
                                         a tokenizer.json; "plain" turns its truncation and padding off,
                                         "truncate" and "pad" set them
Ops: encode, decode, pretokenize, normalize, train, bench, save (see the functions below).
"""

import json
import os
import sys
import time

import tokenizers
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers

if tokenizers.__version__ != "0.23.3":
    sys.exit(f"tokenizers {tokenizers.__version__} is installed, the tests pin 0.23.3: run `cargo xtask peers`")


def smollm2(gguf_path):
    from gguf import GGUFReader

    reader = GGUFReader(gguf_path)
    fields = reader.fields
    tokens = fields["tokenizer.ggml.tokens"].contents()
    merges = fields["tokenizer.ggml.merges"].contents()
    types = fields["tokenizer.ggml.token_type"].contents()
    vocab = {}
    for i, t in enumerate(tokens):
        vocab.setdefault(t, i)
    pairs = []
    for m in merges:
        at = m.index(" ", 1)
        pairs.append((m[:at], m[at + 1 :]))
    tok = Tokenizer(models.BPE(vocab=vocab, merges=pairs))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]
    )
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t, ty in zip(tokens, types) if ty == 3])
    return tok


def load(spec):
    if spec["kind"] == "smollm2":
        return smollm2(spec["gguf"])
    tok = Tokenizer.from_file(spec["path"])
    if spec.get("plain"):
        tok.no_truncation()
        tok.no_padding()
    if "truncate" in spec:
        tok.enable_truncation(spec["truncate"])
    if spec.get("pad") == "longest":
        tok.enable_padding(pad_id=0, pad_token="[PAD]")
    return tok


def encode(req):
    """{"texts": [...]} -> {"ids": [[...]], "attention_mask": [[...]], "type_ids": [[...]]} (encode_batch)."""
    tok = load(req["tokenizer"])
    encs = tok.encode_batch(req["texts"], add_special_tokens=req.get("add_special_tokens", True))
    return {
        "ids": [e.ids for e in encs],
        "attention_mask": [e.attention_mask for e in encs],
        "type_ids": [e.type_ids for e in encs],
    }


def decode(req):
    """{"ids": [[...]]} -> {"text": [...], "text_skipping_special": [...]}."""
    tok = load(req["tokenizer"])
    return {
        "text": [tok.decode(ids, skip_special_tokens=False) for ids in req["ids"]],
        "text_skipping_special": [tok.decode(ids, skip_special_tokens=True) for ids in req["ids"]],
    }


def pretokenize(req):
    """{"texts": [...]} -> {"pieces": [[[start, end], ...]]}: the pre-tokeniser's pieces as char offsets."""
    tok = load(req["tokenizer"])
    out = []
    for text in req["texts"]:
        normalized = tok.normalizer.normalize_str(text) if tok.normalizer else text
        out.append([list(span) for _, span in tok.pre_tokenizer.pre_tokenize_str(normalized)])
    return {"pieces": out}


def normalize(req):
    """{"texts": [...]} -> {"normalized": [...]}."""
    tok = load(req["tokenizer"])
    return {"normalized": [tok.normalizer.normalize_str(t) for t in req["texts"]]}


def train(req):
    """{"texts", "vocab_size", "special_tokens", "digits", "path"}: trains a byte-level BPE, saves its tokenizer.json."""
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok = Tokenizer(models.BPE())
    if req.get("digits"):
        tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
    else:
        tok.pre_tokenizer = byte_level
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=req["vocab_size"],
        min_frequency=req.get("min_frequency", 0),
        special_tokens=req.get("special_tokens", []),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(req["texts"], trainer=trainer)
    tok.save(req["path"])
    return {"vocab_size": tok.get_vocab_size()}


def save(req):
    """{"tokenizer", "path"}: writes the tokenizer as tokenizer.json."""
    load(req["tokenizer"]).save(req["path"])
    return {}


def bench(req):
    """{"texts", "repeats"} -> best seconds for one encode_batch of all texts (single thread expected)."""
    tok = load(req["tokenizer"])
    texts = req["texts"]
    tok.encode_batch(texts)  # warm the word cache, as the Rust side is warm
    best = float("inf")
    for _ in range(req.get("repeats", 5)):
        start = time.perf_counter()
        tok.encode_batch(texts)
        best = min(best, time.perf_counter() - start)
    return {
        "seconds": best,
        "bytes": sum(len(t.encode("utf-8")) for t in texts),
        "rayon_threads": os.environ.get("RAYON_NUM_THREADS"),
        "parallelism": os.environ.get("TOKENIZERS_PARALLELISM"),
    }


OPS = {f.__name__: f for f in (encode, decode, pretokenize, normalize, train, save, bench)}

if __name__ == "__main__":
    request_path, response_path = sys.argv[1], sys.argv[2]
    with open(request_path, encoding="utf-8") as f:
        request = json.load(f)
    response = OPS[request["op"]](request)
    with open(response_path, "w", encoding="utf-8") as f:
        json.dump(response, f)
