"""Sentence-embedding throughput of all-MiniLM-L6-v2 on onnxruntime, printed as JSON (the peer of
kernels/examples/embed_throughput.rs in `cargo xtask bench embed`).

There is no ONNX file of the model in the cache and no torch to export one, so the graph is built
here with the `onnx` package from model.safetensors (read with `safetensors.numpy`), op by op the
way Hugging Face's `BertModel` computes it: embeddings (word + position + token type, then
LayerNorm), the encoder layers (Q, K, V projections, heads of `hidden / heads`, the attention mask
added to the scores as a -10000 bias, softmax, output projection, residual and LayerNorm;
the feed-forward block with the exact erf GELU, residual and LayerNorm), then sentence-transformers'
mean pooling over the attention mask and L2 normalisation. Standard opset-17 ops only
(LayerNormalization, MatMul, Softmax, Erf, ...), so onnxruntime's own graph optimiser (level ALL)
is free to fuse what it recognises.

Sentences are tokenised by the `tokenizers` package with the model's tokenizer.json (its fixed
padding to 128 turned off, then each batch padded to its longest sequence; truncation at 128 kept).
Timing covers tokenisation and the forward pass, the same span as the Rust side's
`BertModel::embed`. Before timing, "hello world" must reproduce the model's published embedding
(first values -0.0345, 0.0310, 0.0067, 0.0261, -0.0394, within 1e-3), else the script exits 1.

usage: python minilm_onnx.py MODEL_DIR SENTENCES.txt BATCH ROUNDS THREADS

SENTENCES.txt holds one sentence a line (empty lines skipped). Prints one JSON object on stdout:
sentences/s best of ROUNDS and median, tokens/s (real, unpadded tokens) at the best round, the
token counts, and `probe`, the embeddings of the first batch (for the caller to compare with the
Rust side's). Progress goes to stderr.
"""

import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from safetensors.numpy import load_file
from tokenizers import Tokenizer

HELLO_WORLD = [-0.0345, 0.0310, 0.0067, 0.0261, -0.0394]
OPSET = 17


def build_graph(model_dir: Path) -> onnx.ModelProto:
    """The ONNX graph of the sentence encoder, weights as initializers (matrices stored `[in, out]`)."""
    config = json.loads((model_dir / "config.json").read_text())
    hidden, heads = config["hidden_size"], config["num_attention_heads"]
    head_dim, eps = hidden // heads, float(config["layer_norm_eps"])
    if config.get("hidden_act", "gelu") != "gelu":
        raise SystemExit(f"unsupported activation {config['hidden_act']} (this graph has the erf GELU)")
    weights = load_file(str(model_dir / "model.safetensors"))
    prefix = "bert." if "bert.embeddings.word_embeddings.weight" in weights else ""

    nodes, inits = [], []

    def init(name: str, array: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def weight(name: str, transpose: bool = False) -> str:
        array = weights[prefix + name].astype(np.float32)
        return init(name, array.T if transpose else array)

    def node(op: str, inputs: list, name: str, **attrs) -> str:
        nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    def linear(x: str, name: str) -> str:
        y = node("MatMul", [x, weight(f"{name}.weight", transpose=True)], f"{name}/matmul")
        return node("Add", [y, weight(f"{name}.bias")], f"{name}/add")

    def layer_norm(x: str, name: str) -> str:
        return node("LayerNormalization", [x, weight(f"{name}.weight"), weight(f"{name}.bias")], f"{name}/ln",
                    axis=-1, epsilon=eps)

    init("const/zero_1d", np.array([0], dtype=np.int64))
    init("const/one_f", np.array(1.0, dtype=np.float32))
    init("const/half", np.array(0.5, dtype=np.float32))
    init("const/sqrt2", np.array(np.sqrt(2.0), dtype=np.float32))
    init("const/neg_big", np.array(-10000.0, dtype=np.float32))
    init("const/sqrt_head", np.array(np.sqrt(head_dim), dtype=np.float32))
    init("const/eps_count", np.array(1e-9, dtype=np.float32))
    init("const/eps_norm", np.array(1e-12, dtype=np.float32))
    init("const/heads_shape", np.array([0, 0, heads, head_dim], dtype=np.int64))
    init("const/hidden_shape", np.array([0, 0, hidden], dtype=np.int64))

    # Embeddings: position ids are the column indices 0..seq_len, so the position rows are the
    # table's first seq_len rows. (A Gather of Range(0, seq_len) meant the same, but onnxruntime
    # 1.32's optimiser rewrites it into a Slice with scalar starts that then fails to run.)
    seq_len = node("Shape", ["input_ids"], "emb/seq_len", start=1, end=2)
    word = node("Gather", [weight("embeddings.word_embeddings.weight"), "input_ids"], "emb/word", axis=0)
    pos = node("Slice", [weight("embeddings.position_embeddings.weight"), "const/zero_1d", seq_len, "const/zero_1d"],
               "emb/pos")
    seg = node("Gather", [weight("embeddings.token_type_embeddings.weight"), "token_type_ids"], "emb/seg", axis=0)
    x = node("Add", [node("Add", [word, pos], "emb/add1"), seg], "emb/add2")
    x = layer_norm(x, "embeddings.LayerNorm")

    # The attention mask as an additive bias [batch, 1, 1, seq]: 0 for tokens, -10000 for padding, built
    # the way transformers' BertModel exports it (Unsqueeze, Unsqueeze, Cast, Sub, Mul), which is the
    # pattern onnxruntime's attention fusion looks for.
    init("const/axis1", np.array([1], dtype=np.int64))
    init("const/axis2", np.array([2], dtype=np.int64))
    mask = node("Cast", ["attention_mask"], "mask/float", to=TensorProto.FLOAT)
    bias = node("Unsqueeze", ["attention_mask", "const/axis1"], "mask/unsqueeze1")
    bias = node("Unsqueeze", [bias, "const/axis2"], "mask/unsqueeze2")
    bias = node("Cast", [bias], "mask/cast", to=TensorProto.FLOAT)
    bias = node("Mul", [node("Sub", ["const/one_f", bias], "mask/inverted"), "const/neg_big"], "mask/bias")

    for layer in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{layer}."

        def split_heads(t: str, perm: list, tag: str) -> str:
            r = node("Reshape", [t, "const/heads_shape"], f"{p}{tag}/reshape")
            return node("Transpose", [r], f"{p}{tag}/transpose", perm=perm)

        q = split_heads(linear(x, f"{p}attention.self.query"), [0, 2, 1, 3], "q")  # [b, h, s, d]
        k = split_heads(linear(x, f"{p}attention.self.key"), [0, 2, 3, 1], "k")  # [b, h, d, s]
        v = split_heads(linear(x, f"{p}attention.self.value"), [0, 2, 1, 3], "v")  # [b, h, s, d]
        scores = node("Div", [node("MatMul", [q, k], f"{p}scores"), "const/sqrt_head"], f"{p}scaled")
        scores = node("Add", [scores, bias], f"{p}masked")
        probs = node("Softmax", [scores], f"{p}probs", axis=3)
        ctx = node("MatMul", [probs, v], f"{p}ctx")
        ctx = node("Transpose", [ctx], f"{p}ctx/transpose", perm=[0, 2, 1, 3])
        ctx = node("Reshape", [ctx, "const/hidden_shape"], f"{p}ctx/reshape")
        attn = linear(ctx, f"{p}attention.output.dense")
        x = layer_norm(node("Add", [attn, x], f"{p}attn/residual"), f"{p}attention.output.LayerNorm")

        inner = linear(x, f"{p}intermediate.dense")
        erf = node("Erf", [node("Div", [inner, "const/sqrt2"], f"{p}gelu/div")], f"{p}gelu/erf")
        gelu = node("Mul", [node("Mul", [inner, node("Add", [erf, "const/one_f"], f"{p}gelu/add")], f"{p}gelu/mul"),
                            "const/half"], f"{p}gelu/half")
        out = linear(gelu, f"{p}output.dense")
        x = layer_norm(node("Add", [out, x], f"{p}ffn/residual"), f"{p}output.LayerNorm")

    # Mean pooling over the mask, then x / max(|x|, 1e-12).
    mask3 = node("Unsqueeze", [mask, "const/axis2"], "pool/mask3")
    summed = node("ReduceSum", [node("Mul", [x, mask3], "pool/masked"), "const/axis1"], "pool/sum", keepdims=0)
    count = node("ReduceSum", [mask3, "const/axis1"], "pool/count", keepdims=0)
    count = node("Max", [count, "const/eps_count"], "pool/count_clamped")
    mean = node("Div", [summed, count], "pool/mean")
    norm = node("ReduceL2", [mean], "norm/l2", axes=[-1], keepdims=1)
    norm = node("Max", [norm, "const/eps_norm"], "norm/clamped")
    nodes.append(helper.make_node("Div", [mean, norm], ["embeddings"], name="norm/div"))

    inputs = [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "seq"])
              for n in ("input_ids", "attention_mask", "token_type_ids")]
    outputs = [helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, ["batch", hidden])]
    graph = helper.make_graph(nodes, "all-minilm-l6-v2", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="minilm_onnx.py")
    onnx.checker.check_model(model)
    return model


def session(model: onnx.ModelProto, threads: int) -> ort.InferenceSession:
    """onnxruntime on the CPU with its defaults, graph optimisation ALL, `threads` intra-op threads."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def tokenizer(model_dir: Path) -> Tokenizer:
    """The model's tokenizer: truncation at 128 as its tokenizer.json says, padding to each batch's longest."""
    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tok.no_padding()
    tok.enable_padding(pad_id=0, pad_type_id=0, pad_token="[PAD]")
    return tok


def embed(sess: ort.InferenceSession, tok: Tokenizer, sentences: list) -> tuple:
    """Embeddings of a batch of sentences, and its (real, padded) token counts."""
    encodings = tok.encode_batch(sentences)
    ids = np.array([e.ids for e in encodings], dtype=np.int64)
    mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
    types = np.array([e.type_ids for e in encodings], dtype=np.int64)
    (out,) = sess.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": types})
    return out, int(mask.sum()), int(mask.size)


def main() -> None:
    if len(sys.argv) != 6:
        raise SystemExit(__doc__.split("usage: ")[1].split("\n")[0])
    model_dir, path = Path(sys.argv[1]), Path(sys.argv[2])
    batch, rounds, threads = map(int, sys.argv[3:6])
    sentences = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

    print(f"building the ONNX graph from {model_dir / 'model.safetensors'}…", file=sys.stderr)
    start = time.perf_counter()
    sess = session(build_graph(model_dir), threads)
    tok = tokenizer(model_dir)
    print(f"session ready in {time.perf_counter() - start:.1f} s (onnxruntime {ort.__version__})", file=sys.stderr)

    hello = embed(sess, tok, ["hello world"])[0][0]
    if any(abs(float(g) - w) > 1e-3 for g, w in zip(hello, HELLO_WORLD)):
        print(f"wrong embedding of 'hello world': {hello[:5].tolist()} vs {HELLO_WORLD}", file=sys.stderr)
        sys.exit(1)

    batches = [sentences[i:i + batch] for i in range(0, len(sentences), batch)]
    embed(sess, tok, batches[0])  # warm-up
    rates, real, padded = [], 0, 0
    for r in range(rounds):
        real = padded = 0
        start = time.perf_counter()
        for b in batches:
            _, n_real, n_padded = embed(sess, tok, b)
            real, padded = real + n_real, padded + n_padded
        seconds = time.perf_counter() - start
        rates.append(len(sentences) / seconds)
        print(f"  round {r + 1}/{rounds}: {rates[-1]:.1f} sentences/s", file=sys.stderr)
    best = max(rates)
    json.dump({
        "sentences": len(sentences), "batch": batch, "rounds": rounds, "threads": threads,
        "sentences_per_s": best, "sentences_per_s_median": statistics.median(rates),
        "tokens_per_s": best * real / len(sentences), "tokens": real, "padded_tokens": padded,
        "onnxruntime": ort.__version__, "probe": embed(sess, tok, batches[0])[0].tolist(),
    }, sys.stdout)
    print(file=sys.stdout)


if __name__ == "__main__":
    main()
