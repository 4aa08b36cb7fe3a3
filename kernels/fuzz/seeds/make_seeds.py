#!/usr/bin/env python3
"""Makes the fuzzers' seed files: small real files written by the libraries that own each format.

`cargo xtask fuzz` copies these (and autograder/weeks/c4w1/fixtures/tiny.gguf, which covers every
GGUF metadata type) into each target's corpus before it runs; libFuzzer mutates from there, so a
seed only has to reach the interesting paths, not to be large. Keep each file a few KB.

Rerun (from the repository root; the venv is the peers' one made by `cargo xtask peers`):

    ~/.cache/sovereign-ml/venv/bin/python kernels/fuzz/seeds/make_seeds.py

Files, next to this script (everything is seeded or fixed, so reruns write identical files):

  gguf/tokenizer.gguf            gguf.GGUFWriter (gguf==0.19.0): a byte-level BPE tokenizer in
                                 `tokenizer.ggml.*` (model gpt2, pre smollm, control tokens, BOS/EOS)
                                 and F32, F16 and Q8_0 tensors, so the target reaches Bpe::from_gguf
  safetensors/mixed.safetensors  safetensors.numpy.save_file (safetensors==0.8.0): F32, F16, F64,
                                 I64, I8, U8 and BOOL tensors, a scalar, an empty tensor, __metadata__
  tokenizer_json/bpe.json        tokenizers (0.23.3) BpeTrainer on corpus.txt: byte-level BPE with
                                 Sequence[Digits, ByteLevel], two special tokens
  tokenizer_json/wordpiece.json  tokenizers WordPieceTrainer on corpus.txt: BertNormalizer,
                                 BertPreTokenizer, [CLS] $A [SEP], truncation and fixed padding
"""

import os
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf.quants import quantize
from safetensors.numpy import save_file
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "..", "..", "..", "autograder", "weeks", "c4w1", "fixtures", "corpus.txt")
SPECIALS = ["<|im_start|>", "<|im_end|>"]


def lines():
    with open(CORPUS, encoding="utf-8") as f:
        return f.read().splitlines()


def bpe():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tok.train_from_iterator(lines(), trainer)
    return tok


def wordpiece():
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(
        vocab_size=120, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], show_progress=False
    )
    tok.train_from_iterator(lines(), trainer)
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    tok.decoder = decoders.WordPiece()
    tok.enable_truncation(max_length=16)
    tok.enable_padding(length=20, pad_id=tok.token_to_id("[PAD]"), pad_token="[PAD]")
    return tok


def tokenizer_gguf(path, tok):
    vocab = tok.get_vocab(with_added_tokens=True)
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    model = tok.to_str()
    import json

    merges = [m if isinstance(m, str) else " ".join(m) for m in json.loads(model)["model"]["merges"]]
    w = gguf.GGUFWriter(path, arch="llama")
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(tokens)
    w.add_token_types([3 if t in SPECIALS else 1 for t in tokens])
    w.add_token_merges(merges)
    w.add_bos_token_id(vocab[SPECIALS[0]])
    w.add_eos_token_id(vocab[SPECIALS[1]])
    w.add_add_bos_token(False)
    w.add_context_length(64)
    rng = np.random.Generator(np.random.PCG64(20260523))
    f32 = rng.standard_normal((2, 32)).astype(np.float32)
    w.add_tensor("output_norm.weight", f32[0])
    w.add_tensor("token_embd.weight", f32.astype(np.float16))
    q8 = quantize(f32, T.Q8_0)
    w.add_tensor("output.weight", q8, raw_shape=q8.shape, raw_dtype=T.Q8_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def safetensors(path):
    rng = np.random.Generator(np.random.PCG64(20260523))
    tensors = {
        "f32": rng.standard_normal((2, 3)).astype(np.float32),
        "f16": rng.standard_normal((2, 2)).astype(np.float16),
        "f64": rng.standard_normal(2),
        "i64": np.arange(-2, 2, dtype=np.int64),
        "i8": np.array([-128, 0, 127], dtype=np.int8),
        "u8": np.arange(5, dtype=np.uint8),
        "bool": np.array([True, False]),
        "scalar": np.array(2.5, dtype=np.float32),
        "empty": np.zeros((0, 4), dtype=np.float32),
    }
    save_file(tensors, path, metadata={"format": "np", "note": "héllo"})


def main():
    for sub in ["gguf", "safetensors", "tokenizer_json"]:
        os.makedirs(os.path.join(HERE, sub), exist_ok=True)
    b = bpe()
    b.save(os.path.join(HERE, "tokenizer_json", "bpe.json"), pretty=False)
    wordpiece().save(os.path.join(HERE, "tokenizer_json", "wordpiece.json"), pretty=False)
    tokenizer_gguf(os.path.join(HERE, "gguf", "tokenizer.gguf"), b)
    safetensors(os.path.join(HERE, "safetensors", "mixed.safetensors"))


if __name__ == "__main__":
    sys.exit(main())
