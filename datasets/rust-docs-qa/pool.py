#!/usr/bin/env python3
"""Pooling for the judged question set: the candidates a judge reads for each question.

Two independent systems over the passages of passages.py (all four collections):
- BM25: bm25s 0.3.16, its default Lucene variant (k1 1.5, b 0.75), English stop words, no stemming;
- dense: all-MiniLM-L6-v2 on onnxruntime (autograder/peers/minilm_onnx.py builds the graph from the
  cached model.safetensors), cosine over each passage's first 128 tokens (MiniLM truncates there).
The pool of a question is the union of both systems' top-k (k = 10 by default), in order of first
appearance. Passage texts, the BM25 index and the embeddings are cached in ~/.cache/sovereign-ml/rust-docs-qa.

Usage (with the peers' venv python):
  pool.py query "question" [--k 10]          the pool of one question, with snippets
  pool.py show PASSAGE_ID                    one passage's full text
  pool.py grep REGEX [--limit 30]            passages whose text matches (case-insensitive)
  pool.py batch QUESTIONS.jsonl OUT.jsonl    pools of every question ({"id", "pool": [ids]})
"""
import argparse
import json
import os
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("SOVEREIGN_CACHE", Path.home() / ".cache/sovereign-ml")) / "rust-docs-qa"
MODEL = Path(os.environ.get("SOVEREIGN_CACHE", Path.home() / ".cache/sovereign-ml")) / "models/all-minilm-l6-v2"
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1] / "autograder/peers"))


def load_passages():
    import passages as P

    path = CACHE / "passages.jsonl"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as out:
            for p in P.passages(_root()):
                out.write(json.dumps(p, ensure_ascii=False) + "\n")
        tmp.replace(path)
    return [json.loads(l) for l in open(path, encoding="utf-8")]


def _root():
    import subprocess

    return os.path.join(subprocess.check_output(["rustc", "--print", "sysroot"], text=True).strip(), "share/doc/rust/html")


def bm25(passages):
    import bm25s

    texts = [p["text"] for p in passages]
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(texts, stopwords="en", show_progress=False), show_progress=False)
    return retriever


def dense(passages):
    import numpy as np

    path = CACHE / "minilm.npy"
    if path.exists():
        return np.load(path)
    import minilm_onnx as M

    sess = M.session(M.build_graph(MODEL), os.cpu_count() or 2)
    tok = M.tokenizer(MODEL)
    texts = [p["text"] for p in passages]
    out = []
    for i in range(0, len(texts), 64):
        out.append(M.embed(sess, tok, texts[i : i + 64])[0])
        print(f"\rembedding passages {min(i + 64, len(texts))}/{len(texts)}", end="", file=sys.stderr)
    print(file=sys.stderr)
    vecs = np.concatenate(out).astype(np.float32)
    np.save(path, vecs)
    return vecs


class Pooler:
    def __init__(self):
        self.passages = load_passages()
        self.bm25 = bm25(self.passages)
        self.vecs = dense(self.passages)
        import minilm_onnx as M

        self.M = M
        self.sess = M.session(M.build_graph(MODEL), os.cpu_count() or 2)
        self.tok = M.tokenizer(MODEL)

    def pool(self, question, k=10):
        import bm25s
        import numpy as np

        ids, _ = self.bm25.retrieve(bm25s.tokenize([question], stopwords="en", show_progress=False), k=k, show_progress=False)
        sparse = [int(i) for i in ids[0]]
        q = self.M.embed(self.sess, self.tok, [question])[0][0]
        dense_top = [int(i) for i in np.argsort(-(self.vecs @ q))[:k]]
        seen, order = set(), []
        for i in sparse + dense_top:
            if i not in seen:
                seen.add(i)
                order.append(i)
        return order, set(sparse), set(dense_top)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    q = sub.add_parser("query")
    q.add_argument("question")
    q.add_argument("--k", type=int, default=10)
    s = sub.add_parser("show")
    s.add_argument("id")
    g = sub.add_parser("grep")
    g.add_argument("regex")
    g.add_argument("--limit", type=int, default=30)
    b = sub.add_parser("batch")
    b.add_argument("questions")
    b.add_argument("out")
    b.add_argument("--k", type=int, default=10)
    args = ap.parse_args()
    if args.cmd == "show":
        for p in load_passages():
            if p["id"] == args.id:
                print(p["text"])
                return
        sys.exit(f"no passage {args.id}")
    if args.cmd == "grep":
        rx = re.compile(args.regex, re.I)
        hits = [p for p in load_passages() if rx.search(p["text"])]
        for p in hits[: args.limit]:
            print(p["id"])
        print(f"({len(hits)} passages match)", file=sys.stderr)
        return
    pooler = Pooler()
    if args.cmd == "query":
        order, sparse, dense_top = pooler.pool(args.question, args.k)
        for i in order:
            p = pooler.passages[i]
            tag = ("B" if i in sparse else "-") + ("D" if i in dense_top else "-")
            snippet = " ".join(p["text"].split())[:500]
            print(f"== {tag} {p['id']}\n{snippet}\n")
        return
    with open(args.out, "w", encoding="utf-8") as out:
        for line in open(args.questions, encoding="utf-8"):
            if line.strip():
                t = json.loads(line)
                order, _, _ = pooler.pool(t["question"], args.k)
                out.write(json.dumps({"id": t["id"], "pool": [pooler.passages[i]["id"] for i in order]}) + "\n")


if __name__ == "__main__":
    main()
