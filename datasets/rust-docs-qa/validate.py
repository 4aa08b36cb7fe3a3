#!/usr/bin/env python3
"""Checks the judged question set: every questions-<name>.jsonl with its qrels-<name>.txt.

Checks (any failure makes the exit status 1):
- each questions file has a qrels file of the same <name> and vice versa;
- question ids are unique across all files, each line is a JSON object with id, question and a boolean
  answerable, and written_from (when not null) is a passage id;
- each qrels line is `<question id> 0 <passage id> <grade>`, the question id is in the paired questions
  file, the passage id is in passages.py's output, the grade is 0, 1 or 2, and no (question, passage)
  pair is judged twice;
- every question has judgements, every answerable question has at least one grade-2 passage and no
  unanswerable question has one.
Then it prints counts per file and overall.

Usage: validate.py [--dir DIR] [--root HTML_ROOT] [--passages PASSAGES.jsonl]
  --passages reads passage ids from a JSONL file written by `passages.py --jsonl` (faster); without it
  the passages are rebuilt from the toolchain's HTML with passages.py (the same rule, the ground truth).
Standard library only.
"""
import argparse
import collections
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
KINDS = {"factoid", "how-to", "concept", "comparison", "troubleshooting", "unanswerable"}


def passage_ids(args):
    if args.passages:
        with open(args.passages, encoding="utf-8") as f:
            return {json.loads(line)["id"] for line in f if line.strip()}
    sys.path.insert(0, HERE)
    import passages as P

    root = args.root or os.path.join(
        subprocess.check_output(["rustc", "--print", "sysroot"], text=True).strip(), "share/doc/rust/html"
    )
    return {p["id"] for p in P.passages(root)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", default=HERE)
    ap.add_argument("--root")
    ap.add_argument("--passages")
    args = ap.parse_args()

    problems = []
    warnings = []
    names = os.listdir(args.dir)
    qnames = {n[len("questions-") : -len(".jsonl")] for n in names if n.startswith("questions-") and n.endswith(".jsonl")}
    rnames = {n[len("qrels-") : -len(".txt")] for n in names if n.startswith("qrels-") and n.endswith(".txt")}
    for n in sorted(qnames - rnames):
        problems.append(f"questions-{n}.jsonl has no qrels-{n}.txt")
    for n in sorted(rnames - qnames):
        problems.append(f"qrels-{n}.txt has no questions-{n}.jsonl")
    if not qnames:
        problems.append(f"no questions-*.jsonl in {args.dir}")

    ids = passage_ids(args)
    seen_qids = {}
    total = collections.Counter()
    all_grades = collections.Counter()
    all_g2 = []
    for name in sorted(qnames & rnames):
        qfile, rfile = f"questions-{name}.jsonl", f"qrels-{name}.txt"
        questions = {}
        with open(os.path.join(args.dir, qfile), encoding="utf-8") as f:
            for ln, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    q = json.loads(line)
                except json.JSONDecodeError as e:
                    problems.append(f"{qfile}:{ln}: not JSON ({e})")
                    continue
                qid = q.get("id")
                if not isinstance(qid, str) or not qid:
                    problems.append(f"{qfile}:{ln}: no id")
                    continue
                if qid in seen_qids:
                    problems.append(f"{qfile}:{ln}: question id {qid} already used in {seen_qids[qid]}")
                    continue
                seen_qids[qid] = qfile
                if not isinstance(q.get("question"), str) or not q["question"].strip():
                    problems.append(f"{qfile}:{ln}: {qid} has no question text")
                if not isinstance(q.get("answerable"), bool):
                    problems.append(f"{qfile}:{ln}: {qid} has no boolean 'answerable'")
                wf = q.get("written_from")
                if wf is not None and wf not in ids:
                    problems.append(f"{qfile}:{ln}: {qid} written_from {wf!r} is not a passage id")
                if q.get("kind") not in KINDS:
                    warnings.append(f"{qfile}:{ln}: {qid} kind {q.get('kind')!r} not one of {sorted(KINDS)}")
                if (q.get("kind") == "unanswerable") == bool(q.get("answerable")):
                    warnings.append(f"{qfile}:{ln}: {qid} kind {q.get('kind')!r} disagrees with answerable={q.get('answerable')}")
                questions[qid] = q

        judged = collections.defaultdict(dict)
        with open(os.path.join(args.dir, rfile), encoding="utf-8") as f:
            for ln, line in enumerate(f, 1):
                if not line.strip():
                    continue
                parts = line.split()
                if len(parts) != 4:
                    problems.append(f"{rfile}:{ln}: expected 4 fields, got {len(parts)}")
                    continue
                qid, it, pid, grade = parts
                if qid not in questions:
                    problems.append(f"{rfile}:{ln}: question {qid} is not in {qfile}")
                if it != "0":
                    problems.append(f"{rfile}:{ln}: second field should be 0, got {it}")
                if pid not in ids:
                    problems.append(f"{rfile}:{ln}: passage {pid} is not in passages.py's output")
                if grade not in ("0", "1", "2"):
                    problems.append(f"{rfile}:{ln}: grade {grade} not in 0..2")
                    continue
                if pid in judged[qid]:
                    problems.append(f"{rfile}:{ln}: ({qid}, {pid}) judged twice")
                judged[qid][pid] = int(grade)

        grades = collections.Counter()
        g2 = []
        for qid, q in questions.items():
            js = judged.get(qid, {})
            if not js:
                problems.append(f"{qfile}: {qid} has no judgements in {rfile}")
                continue
            n2 = sum(1 for g in js.values() if g == 2)
            if q.get("answerable") and n2 == 0:
                problems.append(f"{qid}: answerable but no grade-2 passage")
            if q.get("answerable") is False and n2 > 0:
                problems.append(f"{qid}: unanswerable but has {n2} grade-2 passage(s)")
            if q.get("answerable"):
                g2.append(n2)
            grades.update(js.values())
        by_coll = collections.Counter(q.get("collection") for q in questions.values())
        by_kind = collections.Counter(q.get("kind") for q in questions.values())
        pairs = sum(grades.values())
        print(f"{name}: {len(questions)} questions ({sum(1 for q in questions.values() if q.get('answerable'))} answerable), "
              f"{pairs} judged pairs, grades 0/1/2 = {grades[0]}/{grades[1]}/{grades[2]}")
        print(f"  by collection: {dict(sorted(by_coll.items(), key=lambda kv: str(kv[0])))}")
        print(f"  by kind: {dict(sorted(by_kind.items(), key=lambda kv: str(kv[0])))}")
        if g2:
            print(f"  grade-2 passages per answerable question: min {min(g2)}, median {statistics.median(g2)}, max {max(g2)}")
        total["questions"] += len(questions)
        total["pairs"] += pairs
        all_grades.update(grades)
        all_g2 += g2

    print(f"total: {total['questions']} questions, {total['pairs']} judged pairs, "
          f"grades 0/1/2 = {all_grades[0]}/{all_grades[1]}/{all_grades[2]}")
    if all_g2:
        print(f"  grade-2 passages per answerable question: min {min(all_g2)}, median {statistics.median(all_g2)}, max {max(all_g2)}")
    for w in warnings:
        print("warning:", w)
    for p in problems:
        print("PROBLEM:", p, file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s)", file=sys.stderr)
        sys.exit(1)
    print("ok")


if __name__ == "__main__":
    main()
