//! kernels::rag: document loading (Markdown, HTML, mdBook pages, text, Parquet).
//!
//! The mdBook pages of the toolchain's `cargo` and `reference` collections are checked passage by
//! passage against `datasets/rust-docs-qa/passages.py` (Python's `html.parser`, an independent
//! reading of the same rule); Markdown, HTML and text against hand-written expectations; bad input
//! against the typed errors.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use kernels::Error;
use kernels::rag::load::{self, LoadConfig};
use kernels::rag::{BlockKind, Document};
use serde_json::Value;

use super::tmp::Tmp;

/// Checks the invariants every loader keeps: sections cover the text in order without overlap,
/// blocks lie inside the text on char boundaries, blocks are joined by `\n` (unless `verbatim`).
fn check_invariants(doc: &Document, verbatim: bool) {
    let mut pos = 0;
    for s in &doc.sections {
        assert_eq!(s.span.start, pos, "{}: sections must be contiguous: {:?}", doc.id, doc.sections);
        assert!(s.span.end > s.span.start, "{}: empty section {s:?}", doc.id);
        pos = s.span.end;
    }
    assert_eq!(pos, doc.text.len(), "{}: sections must cover the text", doc.id);
    let mut last_end = 0;
    for (i, b) in doc.blocks.iter().enumerate() {
        assert!(b.span.start >= last_end && b.span.end <= doc.text.len(), "{}: block {b:?}", doc.id);
        assert!(doc.text.is_char_boundary(b.span.start) && doc.text.is_char_boundary(b.span.end));
        assert!(!doc.text[b.span.clone()].trim().is_empty(), "{}: blank block", doc.id);
        if !verbatim && i > 0 {
            assert_eq!(&doc.text[last_end..b.span.start], "\n", "{}: blocks are joined by a newline", doc.id);
        }
        last_end = b.span.end;
    }
}

/// `(passage id, text)` of every non-empty section.
fn passages(doc: &Document) -> Vec<(String, String)> {
    doc.sections
        .iter()
        .filter(|s| !doc.text[s.span.clone()].trim().is_empty())
        .map(|s| (doc.passage_id(s), doc.text[s.span.clone()].to_string()))
        .collect()
}

fn words(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn no_whitespace(s: &str) -> String {
    s.split_whitespace().collect()
}

#[test]
fn cargo_and_reference_passages_match_passages_py() {
    let tmp = Tmp::new("rag-load-passages");
    let out = tmp.join("passages.jsonl");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../datasets/rust-docs-qa/passages.py");
    let status = Command::new("python3").arg(&script).arg("--jsonl").arg(&out).status().expect("run python3");
    assert!(status.success(), "passages.py failed");
    let mut want: BTreeMap<String, (Vec<String>, String)> = BTreeMap::new();
    for line in std::fs::read_to_string(&out).unwrap().lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let collection = v["collection"].as_str().unwrap();
        if collection == "cargo" || collection == "reference" {
            let path = v["heading_path"].as_array().unwrap().iter().map(|h| h.as_str().unwrap().to_string()).collect();
            want.insert(v["id"].as_str().unwrap().to_string(), (path, v["text"].as_str().unwrap().to_string()));
        }
    }

    let root = load::rust_docs_root().unwrap();
    let docs = load::rust_docs(&["cargo", "reference"]).unwrap();
    let mut got: BTreeMap<String, (Vec<String>, String)> = BTreeMap::new();
    let mut page_has_br: BTreeMap<String, bool> = BTreeMap::new();
    for doc in &docs {
        check_invariants(doc, false);
        assert_eq!(doc.metadata.get("format").map(String::as_str), Some("html"));
        assert!(doc.id.starts_with("cargo/") || doc.id.starts_with("reference/"), "{}", doc.id);
        assert_eq!(doc.metadata.get("collection").map(String::as_str), doc.id.split('/').next());
        let source = std::fs::read_to_string(root.join(&doc.id)).unwrap();
        page_has_br.insert(doc.id.clone(), source.contains("<br"));
        for s in &doc.sections {
            if !doc.text[s.span.clone()].trim().is_empty() {
                let pid = doc.passage_id(s);
                let prev = got.insert(pid.clone(), (s.heading_path.clone(), doc.text[s.span.clone()].to_string()));
                assert!(prev.is_none(), "passage {pid} twice");
            }
        }
    }
    let want_ids: BTreeSet<&String> = want.keys().collect();
    let got_ids: BTreeSet<&String> = got.keys().collect();
    assert_eq!(
        got_ids.difference(&want_ids).take(5).collect::<Vec<_>>(),
        Vec::<&&String>::new(),
        "passages the loader has and passages.py lacks"
    );
    assert_eq!(
        want_ids.difference(&got_ids).take(5).collect::<Vec<_>>(),
        Vec::<&&String>::new(),
        "passages passages.py has and the loader lacks"
    );
    assert!(want.len() > 2000, "{} passages", want.len());

    // Texts: equal after collapsing whitespace, except where the loader separates what Python
    // glues: adjacent table cells (`</td><td>`, a tab here) and `<br>` without whitespace around
    // it (a space here). Those passages must agree with all whitespace removed and contain a
    // table row or a line break.
    let mut whitespace_only = Vec::new();
    for (id, (want_path, want_text)) in &want {
        let (got_path, got_text) = &got[id];
        assert_eq!(got_path, want_path, "{id}: heading path");
        if words(got_text) != words(want_text) {
            assert_eq!(
                no_whitespace(got_text),
                no_whitespace(want_text),
                "{id}: texts differ beyond whitespace:\n--- loader\n{got_text}\n--- passages.py\n{want_text}"
            );
            let page = id.split('#').next().unwrap();
            assert!(
                got_text.contains('\t') || page_has_br[page],
                "{id}: a whitespace difference without table cells or <br>:\n--- loader\n{got_text}\n--- passages.py\n{want_text}"
            );
            whitespace_only.push(id.clone());
        }
    }
    eprintln!("{} passages; {} differ only in whitespace: {:?}", want.len(), whitespace_only.len(), whitespace_only);
}

/// What a loaded document should look like: `(anchor, heading path, section text)` per section and
/// `(kind, text)` per block.
struct Expected<'a> {
    title: &'a str,
    sections: &'a [(Option<&'a str>, &'a [&'a str], &'a str)],
    blocks: &'a [(BlockKind, &'a str)],
}

fn check(doc: &Document, verbatim: bool, expected: &Expected<'_>) {
    check_invariants(doc, verbatim);
    assert_eq!(doc.title, expected.title, "{}: title", doc.id);
    let sections: Vec<(Option<&str>, Vec<&str>, &str)> = doc
        .sections
        .iter()
        .map(|s| {
            (
                s.anchor.as_deref(),
                s.heading_path.iter().map(String::as_str).collect(),
                doc.text[s.span.clone()].trim_end(),
            )
        })
        .collect();
    let want: Vec<(Option<&str>, Vec<&str>, &str)> =
        expected.sections.iter().map(|(a, p, t)| (*a, p.to_vec(), *t)).collect();
    assert_eq!(sections, want, "{}: sections", doc.id);
    let blocks: Vec<(BlockKind, &str)> = doc.blocks.iter().map(|b| (b.kind, &doc.text[b.span.clone()])).collect();
    assert_eq!(blocks, expected.blocks.to_vec(), "{}: blocks", doc.id);
}

#[test]
fn markdown_headings_code_lists_tables_and_unicode() {
    let md = "Intro line one\nline two.\n\n# Getting started 🚀\n\nSome *emphasis* and `code`.\n\n\
              ```rust\nfn main() {\n    println!(\"hi\");\n}\n```\n\n## 日本語の見出し\n\n- item one\n- item two\n\n\
              ## Getting started 🚀\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n### Café & Crème {#custom-id}\n\n<div>raw html</div>\n\nEnd.\n";
    let doc = load::load_markdown("docs/guide.md", md).unwrap();
    check(
        &doc,
        false,
        &Expected {
            title: "Getting started 🚀",
            sections: &[
                (None, &[], "Intro line one line two."),
                (
                    Some("getting-started-"),
                    &["Getting started 🚀"],
                    "Getting started 🚀\nSome emphasis and code.\nfn main() {\n    println!(\"hi\");\n}",
                ),
                (
                    Some("日本語の見出し"),
                    &["Getting started 🚀", "日本語の見出し"],
                    "日本語の見出し\nitem one\nitem two",
                ),
                (
                    Some("getting-started--1"),
                    &["Getting started 🚀", "Getting started 🚀"],
                    "Getting started 🚀\na\tb\n1\t2",
                ),
                (
                    Some("custom-id"),
                    &["Getting started 🚀", "Getting started 🚀", "Café & Crème"],
                    "Café & Crème\nEnd.",
                ),
            ],
            blocks: &[
                (BlockKind::Paragraph, "Intro line one line two."),
                (BlockKind::Heading, "Getting started 🚀"),
                (BlockKind::Paragraph, "Some emphasis and code."),
                (BlockKind::Code, "fn main() {\n    println!(\"hi\");\n}"),
                (BlockKind::Heading, "日本語の見出し"),
                (BlockKind::ListItem, "item one"),
                (BlockKind::ListItem, "item two"),
                (BlockKind::Heading, "Getting started 🚀"),
                (BlockKind::TableRow, "a\tb"),
                (BlockKind::TableRow, "1\t2"),
                (BlockKind::Heading, "Café & Crème"),
                (BlockKind::Paragraph, "End."),
            ],
        },
    );
}

#[test]
fn github_slugs() {
    for (title, slug) in [
        ("Hello, World!", "hello-world"),
        ("The `[features]` section", "the-features-section"),
        ("Café Crème", "café-crème"),
        ("Emoji 🚀 only", "emoji--only"),
        ("🚀", "section"),
        ("snake_case and kebab-case", "snake_case-and-kebab-case"),
        ("Ünïcödé 1.95", "ünïcödé-195"),
        ("中文 标题", "中文-标题"),
    ] {
        assert_eq!(load::github_slug(title), slug, "{title:?}");
    }
}

#[test]
fn markdown_with_only_code_and_empty_inputs() {
    let doc = load::load_markdown("only-code.md", "```\nlet x = 1;\n\n\nlet y = 2;\n```\n").unwrap();
    check(
        &doc,
        false,
        &Expected {
            title: "only-code",
            sections: &[(None, &[], "let x = 1;\n\n\nlet y = 2;")],
            blocks: &[(BlockKind::Code, "let x = 1;\n\n\nlet y = 2;")],
        },
    );
    for doc in [
        load::load_markdown("empty.md", "").unwrap(),
        load::load_html("empty.html", "").unwrap(),
        load::load_text("empty.txt", "").unwrap(),
        load::load_markdown("blank.md", "\n\n   \n").unwrap(),
        load::load_html("blank.html", "<html><body>  <p> </p></body></html>").unwrap(),
    ] {
        check_invariants(&doc, doc.id.ends_with(".txt"));
        assert_eq!((doc.text.trim(), doc.blocks.len()), ("", 0), "{}", doc.id);
        assert!(passages(&doc).is_empty(), "{}", doc.id);
    }
}

#[test]
fn html_main_sections_code_and_skipped_elements() {
    let html = r##"<!DOCTYPE html><html><head><title>Page title</title><style>p{}</style></head>
<body><nav><p>navigation</p></nav><div>outside main</div>
<main>
<p>Lead   text
 here.</p>
<h1 id="top"><a href="#top">Top <code>heading</code></a></h1>
<p>First&nbsp;para &amp; more.</p>
<script>var x = "<p>no</p>";</script>
<pre><code>fn main() {
    let a = 1;   // spaces kept
}
</code></pre>
<h2>No id heading</h2>
<ul><li>one</li><li>two <b>bold</b></li></ul>
<h2 id="sub">Sub</h2>
<table><tr><th>k</th><th>v</th></tr><tr><td>a</td><td>1</td></tr></table>
<h3 id="deeper">Deeper</h3><p>x<br>y</p>
<h2 id="sib">Sibling</h2><p>z</p>
</main></body></html>"##;
    let doc = load::load_html("site/page.html", html).unwrap();
    check(
        &doc,
        false,
        &Expected {
            title: "Top heading",
            sections: &[
                (None, &[], "Lead text here."),
                (
                    Some("top"),
                    &["Top heading"],
                    "Top heading\nFirst para & more.\nfn main() {\n    let a = 1;   // spaces kept\n}\nNo id heading\none\ntwo bold",
                ),
                (Some("sub"), &["Top heading", "Sub"], "Sub\nk\tv\na\t1"),
                (Some("deeper"), &["Top heading", "Sub", "Deeper"], "Deeper\nx y"),
                (Some("sib"), &["Top heading", "Sibling"], "Sibling\nz"),
            ],
            blocks: &[
                (BlockKind::Paragraph, "Lead text here."),
                (BlockKind::Heading, "Top heading"),
                (BlockKind::Paragraph, "First para & more."),
                (BlockKind::Code, "fn main() {\n    let a = 1;   // spaces kept\n}"),
                (BlockKind::Heading, "No id heading"),
                (BlockKind::ListItem, "one"),
                (BlockKind::ListItem, "two bold"),
                (BlockKind::Heading, "Sub"),
                (BlockKind::TableRow, "k\tv"),
                (BlockKind::TableRow, "a\t1"),
                (BlockKind::Heading, "Deeper"),
                (BlockKind::Paragraph, "x y"),
                (BlockKind::Heading, "Sibling"),
                (BlockKind::Paragraph, "z"),
            ],
        },
    );
    assert_eq!(doc.passage_id(&doc.sections[2]), "site/page.html#sub");
}

#[test]
fn html_without_main_uses_body_and_unclosed_tags_are_repaired() {
    let doc =
        load::load_html("a/no-main.html", "<html><head><title>T</title></head><body><p>Body text<p>second <b>bold")
            .unwrap();
    check(
        &doc,
        false,
        &Expected {
            title: "T",
            sections: &[(None, &[], "Body text\nsecond bold")],
            blocks: &[(BlockKind::Paragraph, "Body text"), (BlockKind::Paragraph, "second bold")],
        },
    );
    // A fragment without <html>/<body>, an unclosed heading (HTML5 keeps what follows inside it, as
    // a browser does) and an unclosed <pre>.
    let doc = load::load_html("frag.html", "<h2 id=\"x\">Unclosed <i>heading<p>after<pre>code\n  kept").unwrap();
    check(
        &doc,
        false,
        &Expected {
            title: "Unclosed heading after code kept",
            sections: &[(Some("x"), &["Unclosed heading after code kept"], "Unclosed heading after code kept")],
            blocks: &[(BlockKind::Heading, "Unclosed heading after code kept")],
        },
    );
    let doc = load::load_html("frag2.html", "<div><p>para<pre>code\n  kept<p>never closed").unwrap();
    check(
        &doc,
        false,
        &Expected {
            title: "frag2",
            sections: &[(None, &[], "para\ncode\n  kept\nnever closed")],
            blocks: &[(BlockKind::Paragraph, "para"), (BlockKind::Code, "code\n  kept\nnever closed")],
        },
    );
    // No heading, no title: the file stem.
    let doc = load::load_html("dir/plain-page.htm", "<p>just text</p>").unwrap();
    assert_eq!(doc.title, "plain-page");
}

#[test]
fn html_cjk_and_emoji_headings() {
    let html = "<main><h1 id=\"概要\">概要 🦀</h1><p>所有権は、Rustの最も独特な機能です。👍🏽 e\u{301}</p>\
                <h2 id=\"emoji-🎉\">Party 🎉</h2><p>x</p></main>";
    let doc = load::load_html("ja/ch04.html", html).unwrap();
    check(
        &doc,
        false,
        &Expected {
            title: "概要 🦀",
            sections: &[
                (Some("概要"), &["概要 🦀"], "概要 🦀\n所有権は、Rustの最も独特な機能です。👍🏽 e\u{301}"),
                (Some("emoji-🎉"), &["概要 🦀", "Party 🎉"], "Party 🎉\nx"),
            ],
            blocks: &[
                (BlockKind::Heading, "概要 🦀"),
                (BlockKind::Paragraph, "所有権は、Rustの最も独特な機能です。👍🏽 e\u{301}"),
                (BlockKind::Heading, "Party 🎉"),
                (BlockKind::Paragraph, "x"),
            ],
        },
    );
    assert_eq!(passages(&doc)[1].0, "ja/ch04.html#emoji-🎉");
}

#[test]
fn plain_text_keeps_the_source() {
    let text = "  First paragraph\nwraps here.\n\n\n Second one.  \n   \nThird 日本語 👍🏽\n";
    let doc = load::load_text("notes/todo.txt", text).unwrap();
    assert_eq!(doc.text, text);
    check(
        &doc,
        true,
        &Expected {
            title: "todo",
            sections: &[(None, &[], text.trim_end())],
            blocks: &[
                (BlockKind::Paragraph, "First paragraph\nwraps here."),
                (BlockKind::Paragraph, "Second one."),
                (BlockKind::Paragraph, "Third 日本語 👍🏽"),
            ],
        },
    );
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn load_dir_walks_sorted_skips_and_names_bad_files() {
    let tmp = Tmp::new("rag-load-dir");
    let root = tmp.join("corpus");
    write(&root.join("guide/b.md"), b"# B\n\ntext b\n");
    write(&root.join("guide/a.html"), b"<main><h1 id=\"a\">A</h1><p>text a</p></main>");
    write(&root.join("guide/print.html"), b"<main><p>everything</p></main>");
    write(
        &root.join("guide/moved.html"),
        b"<html><head><meta http-equiv=\"Refresh\" content=\"0; url=a.html\"></head></html>",
    );
    write(&root.join("guide/sub/c.TXT"), b"plain c\n");
    write(&root.join("guide/image.png"), b"\x89PNG");
    write(&root.join("top.markdown"), b"top level\n");
    write(&root.join("empty.txt"), b"");

    let seen = std::sync::Mutex::new(Vec::new());
    let docs = load::load_dir_with_progress(&root, &LoadConfig::default(), &|p| {
        seen.lock().unwrap().push((p.done, p.total));
    })
    .unwrap();
    let ids: Vec<&str> = docs.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(
        ids,
        ["empty.txt", "guide/a.html", "guide/b.md", "guide/moved.html", "guide/sub/c.TXT", "top.markdown"]
            .iter()
            .filter(|i| **i != "guide/moved.html")
            .copied()
            .collect::<Vec<_>>()
    );
    let mut seen = seen.into_inner().unwrap();
    seen.sort();
    assert_eq!(seen, (1..=6).map(|n| (n, 6)).collect::<Vec<_>>(), "progress counts every file read");
    let meta = |id: &str, key: &str| docs.iter().find(|d| d.id == id).and_then(|d| d.metadata.get(key).cloned());
    assert_eq!(meta("guide/a.html", "collection").as_deref(), Some("guide"));
    assert_eq!(meta("guide/sub/c.TXT", "format").as_deref(), Some("text"));
    assert_eq!(meta("top.markdown", "collection"), None);
    assert_eq!(docs[1].passage_id(&docs[1].sections[0]), "guide/a.html#a");

    // Redirects kept on request; collections restrict the walk, ids stay relative to the root.
    let config = LoadConfig { skip_redirects: false, collections: vec!["guide".into()], ..LoadConfig::default() };
    let ids: Vec<String> = load::load_dir(&root, &config).unwrap().into_iter().map(|d| d.id).collect();
    assert_eq!(ids, ["guide/a.html", "guide/b.md", "guide/moved.html", "guide/sub/c.TXT"]);

    // A missing collection, a missing root, invalid UTF-8: typed errors naming the path.
    let config = LoadConfig { collections: vec!["nope".into()], ..LoadConfig::default() };
    match load::load_dir(&root, &config) {
        Err(Error::RagLoad { path, .. }) => assert_eq!(path, root.join("nope")),
        other => panic!("{other:?}"),
    }
    match load::load_dir(tmp.join("missing"), &LoadConfig::default()) {
        Err(Error::RagIo { path, .. }) => assert_eq!(path, tmp.join("missing")),
        other => panic!("{other:?}"),
    }
    write(&root.join("guide/bad.md"), b"valid start \xff\xfe then junk");
    match load::load_dir(&root, &LoadConfig::default()) {
        Err(e @ Error::RagLoad { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("bad.md") && msg.contains("UTF-8") && msg.contains("byte 12"), "{msg}");
        }
        other => panic!("{other:?}"),
    }
}

#[cfg(feature = "data")]
#[test]
fn parquet_rows_become_documents() {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Int64Array, LargeStringArray, RecordBatch, StringArray};
    use load::ParquetConfig;

    let tmp = Tmp::new("rag-load-parquet");
    let path = tmp.join("faq.parquet");
    let batch = RecordBatch::try_from_iter([
        (
            "body",
            Arc::new(StringArray::from(vec![Some("First answer.\n\nSecond para."), None, Some("日本語 👍🏽")]))
                as ArrayRef,
        ),
        ("key", Arc::new(StringArray::from(vec![Some("q1"), Some("q2"), None])) as ArrayRef),
        ("lang", Arc::new(LargeStringArray::from(vec![Some("en"), Some("en"), None])) as ArrayRef),
        ("n", Arc::new(Int64Array::from(vec![1, 2, 3])) as ArrayRef),
    ])
    .unwrap();
    let file = std::fs::File::create(&path).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();

    let config = ParquetConfig {
        text_column: "body".into(),
        id_column: Some("key".into()),
        metadata_columns: vec!["lang".into()],
    };
    let docs = load::load_parquet(&path, &config).unwrap();
    let got: Vec<(&str, &str, Option<&str>, usize)> = docs
        .iter()
        .map(|d| (d.id.as_str(), d.text.as_str(), d.metadata.get("lang").map(String::as_str), d.blocks.len()))
        .collect();
    assert_eq!(got, [("q1", "First answer.\n\nSecond para.", Some("en"), 2), ("faq.parquet#2", "日本語 👍🏽", None, 1)]);

    let missing = ParquetConfig { text_column: "text".into(), ..ParquetConfig::default() };
    match load::load_parquet(&path, &missing) {
        Err(Error::MissingColumn { column, available }) => {
            assert_eq!(column, "text");
            assert_eq!(available, ["body", "key", "lang", "n"]);
        }
        other => panic!("{other:?}"),
    }
    let numeric = ParquetConfig { text_column: "body".into(), id_column: Some("n".into()), ..ParquetConfig::default() };
    assert!(matches!(load::load_parquet(&path, &numeric), Err(Error::ColumnType { column, .. }) if column == "n"));
    let not_parquet = tmp.join("x.parquet");
    std::fs::write(&not_parquet, b"not parquet").unwrap();
    assert!(matches!(load::load_parquet(&not_parquet, &config), Err(Error::Parquet { .. })));
    assert!(matches!(load::load_parquet(tmp.join("none.parquet"), &config), Err(Error::RagIo { .. })));
}

/// Every passage the judged question set names is one the loader makes (so `evaluate_index` can
/// find it), and Rust by Example's translations stay out of the corpus as they do in passages.py.
#[test]
fn every_judged_passage_is_a_loader_passage() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../datasets/rust-docs-qa");
    let mut judged = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("qrels-") && name.ends_with(".txt") {
            for line in std::fs::read_to_string(&path).unwrap().lines().filter(|l| !l.trim().is_empty()) {
                judged.insert(line.split_whitespace().nth(2).unwrap().to_string());
            }
        }
    }
    assert!(judged.len() > 1000, "{} judged passages", judged.len());
    let docs = load::rust_docs(&[]).unwrap();
    let translated: Vec<&str> = docs
        .iter()
        .map(|d| d.id.as_str())
        .filter(|id| load::RUST_DOCS_TRANSLATIONS.iter().any(|t| id.starts_with(&format!("{t}/"))))
        .collect();
    assert_eq!(translated, Vec::<&str>::new(), "translated pages in the corpus");
    let passages: BTreeSet<String> = docs
        .iter()
        .flat_map(|d| d.sections.iter().filter(|s| !d.text[s.span.clone()].trim().is_empty()).map(|s| d.passage_id(s)))
        .collect();
    let missing: Vec<&String> = judged.iter().filter(|p| !passages.contains(*p)).take(5).collect();
    assert_eq!(missing, Vec::<&String>::new(), "judged passages the loader does not make");
}
