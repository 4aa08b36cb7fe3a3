#!/usr/bin/env python3
"""Splits the toolchain's Rust documentation into judged passages (one per heading section).

The rule, shared with `kernels::rag::load` (keep the two in step):
- collections: book, rust-by-example, reference, cargo under `$(rustc --print sysroot)/share/doc/rust/html`;
- pages: every `.html` file except print.html, toc.html, 404.html, redirect stubs
  (a `<meta http-equiv="refresh">` page) and Rust by Example's translations (its es/, ja/, ko/, zh/);
- only the text inside `<main>` counts;
- an h1-h6 element with an `id` attribute starts a passage; text before the first one belongs to the
  page's lead passage;
- a passage id is `<collection>/<path inside it>#<heading id>`, or `<collection>/<path>` for a lead
  passage (for example `book/ch04-01-what-is-ownership.html#the-stack-and-the-heap`).

Usage: passages.py [--root HTML_ROOT] [--jsonl OUT]   (prints a count per collection without --jsonl)
"""
import argparse
import html.parser
import json
import os
import subprocess
import sys

COLLECTIONS = ["book", "rust-by-example", "reference", "cargo"]
SKIP = {"print.html", "toc.html", "404.html"}
# Translated copies: the corpus is the English documentation.
TRANSLATIONS = {"rust-by-example": {"es", "ja", "ko", "zh"}}
BLOCK = {"p", "li", "pre", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "dt", "dd", "blockquote", "div", "table"}


class Page(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.in_main = 0
        self.redirect = False
        self.sections = [[None, [], []]]  # [anchor, heading path, text parts]
        self.path = []  # (level, title)
        self.heading = None  # (level, id, parts) while inside a heading

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "meta" and (a.get("http-equiv") or "").lower() == "refresh":
            self.redirect = True
        if tag == "main":
            self.in_main += 1
        if not self.in_main:
            return
        if tag in ("h1", "h2", "h3", "h4", "h5", "h6") and a.get("id"):
            self.heading = (int(tag[1]), a["id"], [])
        if tag in BLOCK:
            self.sections[-1][2].append("\n")

    def handle_endtag(self, tag):
        if tag == "main":
            self.in_main -= 1
        if self.heading and tag == f"h{self.heading[0]}":
            level, anchor, parts = self.heading
            title = " ".join("".join(parts).split())
            self.path = [p for p in self.path if p[0] < level] + [(level, title)]
            self.sections.append([anchor, [t for _, t in self.path], [title, "\n"]])
            self.heading = None
        elif self.in_main and tag in BLOCK:
            self.sections[-1][2].append("\n")

    def handle_data(self, data):
        if not self.in_main:
            return
        if self.heading:
            self.heading[2].append(data)
        else:
            self.sections[-1][2].append(data)


def passages(root):
    for collection in COLLECTIONS:
        base = os.path.join(root, collection)
        for dirpath, dirnames, files in os.walk(base):
            if dirpath == base:
                dirnames[:] = [d for d in dirnames if d not in TRANSLATIONS.get(collection, ())]
            dirnames.sort()
            for name in sorted(files):
                if not name.endswith(".html") or name in SKIP:
                    continue
                full = os.path.join(dirpath, name)
                rel = os.path.relpath(full, root)
                page = Page()
                with open(full, encoding="utf-8") as f:
                    page.feed(f.read())
                if page.redirect:
                    continue
                for anchor, heading_path, parts in page.sections:
                    text = "\n".join(l.strip() for l in "".join(parts).splitlines() if l.strip())
                    if not text:
                        continue
                    pid = f"{rel}#{anchor}" if anchor else rel
                    yield {"id": pid, "collection": collection, "heading_path": heading_path, "text": text}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root")
    ap.add_argument("--jsonl")
    args = ap.parse_args()
    root = args.root or os.path.join(
        subprocess.check_output(["rustc", "--print", "sysroot"], text=True).strip(), "share/doc/rust/html"
    )
    if args.jsonl:
        with open(args.jsonl, "w", encoding="utf-8") as out:
            for p in passages(root):
                out.write(json.dumps(p, ensure_ascii=False) + "\n")
        return
    counts = {}
    for p in passages(root):
        counts[p["collection"]] = counts.get(p["collection"], 0) + 1
    json.dump(counts, sys.stdout)
    print()


if __name__ == "__main__":
    main()
