//! Document loading: Markdown (pulldown-cmark), HTML and mdBook pages (scraper), plain text and Parquet columns into [`super::Document`]s.
//!
//! Every loader produces the same shape: [`Document::text`] is the extracted text, its
//! [`Block`]s (headings, paragraphs, code, list items, table rows) joined by `"\n"`, code blocks
//! verbatim and other blocks with their whitespace collapsed to single spaces (table cells are
//! separated by a tab); the [`Section`]s start at headings and together cover the text without
//! overlap. Plain text is the exception: its text is the source itself, so spans are byte ranges
//! of the file.
//!
//! HTML follows the passage rule of `datasets/rust-docs-qa/passages.py` (keep the two in step):
//! only `<main>` counts (else `<body>`), an `h1`–`h6` with an `id` starts a section whose anchor is
//! that id and whose heading path is the titles of the enclosing id'd headings (its own last), text
//! before the first one is the lead section. `script`, `style`, `nav`, `noscript` and `template`
//! are skipped. Markdown headings get GitHub-style slugs (lowercase, punctuation dropped, spaces to
//! `-`, repeats suffixed `-1`, `-2`, ...; an explicit `{#id}` wins), the rule of GitHub's
//! `html-pipeline` TOC filter that mdBook also follows.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd};
use rayon::prelude::*;
use scraper::{ElementRef, Html, Node};

use super::{Block, BlockKind, Document, Section};
use crate::{Error, Result};

/// The collections of the toolchain's documentation that [`rust_docs`] loads by default (the
/// judged question set's corpus).
pub const RUST_DOCS_COLLECTIONS: [&str; 4] = ["book", "rust-by-example", "reference", "cargo"];

/// Separates table cells inside a [`BlockKind::TableRow`] block.
const CELL_SEPARATOR: char = '\t';
/// Marks a cell boundary in an inline buffer until the buffer is collapsed.
const CELL_MARK: char = '\u{1f}';

// ------------------------------------------------------------------ the document builder

/// A section whose first block is not known yet.
struct PendingSection {
    heading_path: Vec<String>,
    anchor: Option<String>,
    start: Option<usize>,
}

/// Accumulates blocks and sections into a [`Document`].
struct Builder {
    text: String,
    blocks: Vec<Block>,
    sections: Vec<PendingSection>,
    /// The enclosing headings: (level, title).
    path: Vec<(u8, String)>,
    first_heading: Option<String>,
}

impl Builder {
    fn new() -> Builder {
        Builder {
            text: String::new(),
            blocks: Vec::new(),
            sections: vec![PendingSection { heading_path: Vec::new(), anchor: None, start: None }],
            path: Vec::new(),
            first_heading: None,
        }
    }

    /// Appends a block (nothing when it is blank).
    fn push_block(&mut self, kind: BlockKind, s: &str) {
        if s.trim().is_empty() {
            return;
        }
        if !self.text.is_empty() {
            self.text.push('\n');
        }
        let start = self.text.len();
        self.text.push_str(s);
        self.blocks.push(Block { kind, span: start..self.text.len() });
        if let Some(last) = self.sections.last_mut()
            && last.start.is_none()
        {
            last.start = Some(start);
        }
    }

    /// A heading that starts a section: the heading path is updated, then the heading's block is
    /// the section's first.
    fn heading_section(&mut self, level: u8, title: String, anchor: String) {
        self.path.retain(|(l, _)| *l < level);
        self.path.push((level, title.clone()));
        let heading_path = self.path.iter().map(|(_, t)| t.clone()).collect();
        self.sections.push(PendingSection { heading_path, anchor: Some(anchor), start: None });
        self.note_heading(&title);
        self.push_block(BlockKind::Heading, &title);
    }

    fn note_heading(&mut self, title: &str) {
        if self.first_heading.is_none() && !title.is_empty() {
            self.first_heading = Some(title.to_string());
        }
    }

    fn finish(self, id: &str, title: Option<String>) -> Document {
        let starts: Vec<(usize, PendingSection)> =
            self.sections.into_iter().filter_map(|s| s.start.map(|start| (start, s))).collect();
        let mut sections = Vec::with_capacity(starts.len());
        for (i, (start, s)) in starts.iter().enumerate() {
            let end = starts.get(i + 1).map_or(self.text.len(), |(next, _)| *next);
            sections.push(Section {
                heading_path: s.heading_path.clone(),
                anchor: s.anchor.clone(),
                span: *start..end,
            });
        }
        let title = self.first_heading.or(title.filter(|t| !t.is_empty())).unwrap_or_else(|| file_stem(id));
        Document {
            id: id.to_string(),
            title,
            text: self.text,
            sections,
            blocks: self.blocks,
            metadata: BTreeMap::new(),
        }
    }
}

/// The file name of an id without its extension (`book/ch01.html` → `ch01`).
fn file_stem(id: &str) -> String {
    let name = id.rsplit('/').next().unwrap_or(id);
    let name = name.split('#').next().unwrap_or(name);
    match name.rsplit_once('.') {
        Some((stem, _)) if !stem.is_empty() => stem.to_string(),
        _ => name.to_string(),
    }
}

/// Whitespace runs to one space, trimmed; a [`CELL_MARK`] with the whitespace around it becomes one
/// [`CELL_SEPARATOR`] (none at the start or end).
fn collapse(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut pending_space = false;
    let mut pending_cell = false;
    for ch in s.chars() {
        if ch == CELL_MARK {
            pending_cell = true;
        } else if ch.is_whitespace() {
            pending_space = true;
        } else {
            if !out.is_empty() {
                if pending_cell {
                    out.push(CELL_SEPARATOR);
                } else if pending_space {
                    out.push(' ');
                }
            }
            pending_space = false;
            pending_cell = false;
            out.push(ch);
        }
    }
    out
}

/// A code block's text: verbatim, without trailing line breaks.
fn code_text(s: &str) -> &str {
    s.trim_end_matches(['\n', '\r'])
}

// ------------------------------------------------------------------ HTML

/// Elements whose content is never text.
const SKIPPED: [&str; 7] = ["script", "style", "nav", "noscript", "template", "head", "title"];

/// Elements that end the running block (a superset of `passages.py`'s BLOCK set).
fn is_block_element(name: &str) -> bool {
    matches!(
        name,
        "p" | "li"
            | "pre"
            | "h1"
            | "h2"
            | "h3"
            | "h4"
            | "h5"
            | "h6"
            | "tr"
            | "dt"
            | "dd"
            | "blockquote"
            | "div"
            | "table"
            | "thead"
            | "tbody"
            | "tfoot"
            | "caption"
            | "ul"
            | "ol"
            | "dl"
            | "section"
            | "article"
            | "header"
            | "footer"
            | "aside"
            | "figure"
            | "figcaption"
            | "details"
            | "summary"
            | "hr"
            | "main"
            | "body"
            | "form"
            | "fieldset"
            | "address"
            | "center"
    )
}

fn block_kind_of(name: &str) -> BlockKind {
    match name {
        "li" | "dt" | "dd" => BlockKind::ListItem,
        "tr" => BlockKind::TableRow,
        "pre" => BlockKind::Code,
        "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => BlockKind::Heading,
        _ => BlockKind::Paragraph,
    }
}

fn heading_level(name: &str) -> Option<u8> {
    match name {
        "h1" => Some(1),
        "h2" => Some(2),
        "h3" => Some(3),
        "h4" => Some(4),
        "h5" => Some(5),
        "h6" => Some(6),
        _ => None,
    }
}

/// The walk over the chosen root's subtree.
struct HtmlWalk {
    b: Builder,
    inline: String,
    kinds: Vec<BlockKind>,
    /// An id'd heading being read: (level, id, text).
    heading: Option<(u8, String, String)>,
    /// Depth of `<pre>` elements and their verbatim text.
    pre_depth: usize,
    pre: String,
    /// Whether the current table row has had a cell.
    row_cells: usize,
}

impl HtmlWalk {
    fn flush(&mut self) {
        if self.inline.is_empty() {
            return;
        }
        let text = collapse(&self.inline);
        self.inline.clear();
        let kind = self.kinds.last().copied().unwrap_or(BlockKind::Paragraph);
        if kind == BlockKind::Heading {
            self.b.note_heading(&text);
        }
        self.b.push_block(kind, &text);
    }

    fn text(&mut self, t: &str) {
        if let Some((_, _, buf)) = &mut self.heading {
            buf.push_str(t);
        } else if self.pre_depth > 0 {
            self.pre.push_str(t);
        } else {
            self.inline.push_str(t);
        }
    }

    fn enter(&mut self, name: &str, id: Option<&str>) {
        if self.heading.is_some() {
            // Malformed markup can nest blocks in a heading (HTML5 keeps them there): keep words apart.
            if name == "br" || is_block_element(name) {
                self.text(" ");
            }
            return;
        }
        if self.pre_depth > 0 {
            if name == "pre" {
                self.pre_depth += 1;
            } else if name == "br" || (is_block_element(name) && !self.pre.is_empty() && !self.pre.ends_with('\n')) {
                // A block nested in <pre> (malformed, kept there by HTML5) starts a line, as rendered.
                self.pre.push('\n');
            }
            return;
        }
        match name {
            "br" => self.inline.push(' '),
            "td" | "th" => {
                if self.row_cells > 0 {
                    self.inline.push(CELL_MARK);
                }
                self.row_cells += 1;
            }
            _ => {}
        }
        if !is_block_element(name) {
            return;
        }
        self.flush();
        if name == "tr" {
            self.row_cells = 0;
        }
        if name == "pre" {
            self.pre_depth = 1;
            self.pre.clear();
            return;
        }
        if let (Some(level), Some(id)) = (heading_level(name), id.filter(|i| !i.is_empty())) {
            self.heading = Some((level, id.to_string(), String::new()));
            return;
        }
        self.kinds.push(block_kind_of(name));
    }

    fn exit(&mut self, name: &str) {
        if let Some((level, _, _)) = &self.heading {
            if heading_level(name) == Some(*level)
                && let Some((level, id, buf)) = self.heading.take()
            {
                self.b.heading_section(level, collapse(&buf), id);
            } else if is_block_element(name) {
                self.text(" ");
            }
            return;
        }
        if self.pre_depth > 0 {
            if name == "pre" {
                self.pre_depth -= 1;
                if self.pre_depth == 0 {
                    let code = std::mem::take(&mut self.pre);
                    self.b.push_block(BlockKind::Code, code_text(&code));
                }
            }
            return;
        }
        if is_block_element(name) {
            self.flush();
            self.kinds.pop();
        }
    }
}

/// The first element named `name` in document order.
fn find_element<'a>(root: ElementRef<'a>, name: &str) -> Option<ElementRef<'a>> {
    root.descendants().filter_map(ElementRef::wrap).find(|e| e.value().name() == name)
}

/// Whether the page is a redirect stub (`<meta http-equiv="refresh">`).
fn is_redirect(html: &Html) -> bool {
    html.tree.root().descendants().any(|n| {
        n.value().as_element().is_some_and(|e| {
            e.name() == "meta" && e.attr("http-equiv").is_some_and(|v| v.trim().eq_ignore_ascii_case("refresh"))
        })
    })
}

/// Parses an HTML page; also says whether it is a redirect stub.
fn parse_html(id: &str, source: &str) -> (Document, bool) {
    let html = Html::parse_document(source);
    let redirect = is_redirect(&html);
    let tree_root = html.root_element();
    let title = find_element(tree_root, "title").map(|t| {
        let mut s = String::new();
        for d in t.descendants() {
            if let Some(text) = d.value().as_text() {
                s.push_str(text);
            }
        }
        collapse(&s)
    });
    let root = find_element(tree_root, "main").or_else(|| find_element(tree_root, "body")).unwrap_or(tree_root);
    let mut walk = HtmlWalk {
        b: Builder::new(),
        inline: String::new(),
        kinds: Vec::new(),
        heading: None,
        pre_depth: 0,
        pre: String::new(),
        row_cells: 0,
    };
    // An explicit stack rather than recursion: deeply nested markup cannot overflow it.
    let mut stack = vec![(*root, false)];
    while let Some((node, visited)) = stack.pop() {
        match node.value() {
            Node::Text(t) => walk.text(t),
            Node::Element(e) => {
                let name = e.name();
                if visited {
                    walk.exit(name);
                    continue;
                }
                if SKIPPED.contains(&name) {
                    continue;
                }
                walk.enter(name, e.attr("id"));
                stack.push((node, true));
                for child in node.children().rev() {
                    stack.push((child, false));
                }
            }
            Node::Document | Node::Fragment if !visited => {
                for child in node.children().rev() {
                    stack.push((child, false));
                }
            }
            _ => {}
        }
    }
    if let Some((level, anchor, buf)) = walk.heading.take() {
        walk.b.heading_section(level, collapse(&buf), anchor);
    }
    if walk.pre_depth > 0 {
        let code = std::mem::take(&mut walk.pre);
        walk.b.push_block(BlockKind::Code, code_text(&code));
    }
    walk.flush();
    (walk.b.finish(id, title), redirect)
}

/// Loads an HTML page (an mdBook page or any other): the text of `<main>` (else `<body>`), sections
/// at `h1`–`h6` elements with an `id` (see the module docs), `<pre>` as verbatim code blocks, title
/// from the first heading, else `<title>`, else the file stem of `id`. Parsing is HTML5's
/// (html5ever), so unclosed or stray tags are repaired as a browser would.
///
/// # Errors
/// None today (every string parses); the `Result` leaves room for limits.
pub fn load_html(id: &str, html: &str) -> Result<Document> {
    Ok(parse_html(id, html).0)
}

// ------------------------------------------------------------------ Markdown

/// GitHub's heading anchor: lowercase, letters, marks, numbers, `_`, `-` kept, spaces to `-`, the
/// rest dropped; an empty result becomes `section`.
pub fn github_slug(title: &str) -> String {
    let mut slug = String::with_capacity(title.len());
    for ch in title.chars().flat_map(char::to_lowercase) {
        if ch == ' ' {
            slug.push('-');
        } else if ch.is_alphanumeric() || ch == '_' || ch == '-' || unicode_normalization::char::is_combining_mark(ch) {
            slug.push(ch);
        }
    }
    if slug.is_empty() { "section".to_string() } else { slug }
}

/// Parses Markdown (CommonMark with tables, footnotes, strikethrough, task lists and `{#id}`
/// heading attributes): headings start sections anchored at their GitHub slug (repeats suffixed
/// `-1`, `-2`), fenced and indented code blocks are verbatim code blocks, raw HTML is dropped (the
/// text between inline tags is kept), title = the first heading, else the file stem of `id`.
///
/// # Errors
/// None today (every string parses); the `Result` leaves room for limits.
pub fn load_markdown(id: &str, text: &str) -> Result<Document> {
    let options = Options::ENABLE_TABLES
        | Options::ENABLE_FOOTNOTES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_HEADING_ATTRIBUTES;
    let mut b = Builder::new();
    let mut inline = String::new();
    let mut kinds: Vec<BlockKind> = Vec::new();
    let mut heading: Option<(u8, Option<String>, String)> = None;
    let mut code: Option<String> = None;
    let mut cells = 0usize;
    let mut used: HashMap<String, usize> = HashMap::new();

    let flush = |b: &mut Builder, inline: &mut String, kinds: &[BlockKind]| {
        if !inline.is_empty() {
            let kind = kinds.last().copied().unwrap_or(BlockKind::Paragraph);
            b.push_block(kind, &collapse(inline));
            inline.clear();
        }
    };

    for event in Parser::new_ext(text, options) {
        match event {
            Event::Start(Tag::Heading { level, id, .. }) => {
                flush(&mut b, &mut inline, &kinds);
                heading = Some((level_number(level), id.map(|s| s.to_string()), String::new()));
            }
            Event::End(TagEnd::Heading(_)) => {
                if let Some((level, explicit, buf)) = heading.take() {
                    let title = collapse(&buf);
                    let base = explicit.unwrap_or_else(|| github_slug(&title));
                    let anchor = unique_anchor(&mut used, base);
                    b.heading_section(level, title, anchor);
                }
            }
            Event::Start(Tag::CodeBlock(_)) => {
                flush(&mut b, &mut inline, &kinds);
                code = Some(String::new());
            }
            Event::End(TagEnd::CodeBlock) => {
                if let Some(c) = code.take() {
                    b.push_block(BlockKind::Code, code_text(&c));
                }
            }
            Event::Start(Tag::Item) => {
                flush(&mut b, &mut inline, &kinds);
                kinds.push(BlockKind::ListItem);
            }
            Event::Start(Tag::TableHead | Tag::TableRow) => {
                flush(&mut b, &mut inline, &kinds);
                kinds.push(BlockKind::TableRow);
                cells = 0;
            }
            Event::Start(Tag::TableCell) => {
                if cells > 0 {
                    inline.push(CELL_MARK);
                }
                cells += 1;
            }
            Event::Start(Tag::Paragraph) => {
                flush(&mut b, &mut inline, &kinds);
                kinds.push(BlockKind::Paragraph);
            }
            Event::End(TagEnd::Item | TagEnd::TableHead | TagEnd::TableRow | TagEnd::Paragraph) => {
                flush(&mut b, &mut inline, &kinds);
                kinds.pop();
            }
            Event::Start(
                Tag::BlockQuote(_)
                | Tag::List(_)
                | Tag::Table(_)
                | Tag::FootnoteDefinition(_)
                | Tag::HtmlBlock
                | Tag::DefinitionList
                | Tag::DefinitionListTitle
                | Tag::DefinitionListDefinition
                | Tag::MetadataBlock(_),
            )
            | Event::End(
                TagEnd::BlockQuote(_)
                | TagEnd::List(_)
                | TagEnd::Table
                | TagEnd::FootnoteDefinition
                | TagEnd::HtmlBlock
                | TagEnd::DefinitionList
                | TagEnd::DefinitionListTitle
                | TagEnd::DefinitionListDefinition
                | TagEnd::MetadataBlock(_),
            )
            | Event::Rule => flush(&mut b, &mut inline, &kinds),
            Event::Text(t) | Event::Code(t) | Event::InlineMath(t) | Event::DisplayMath(t) => {
                if let Some((_, _, buf)) = &mut heading {
                    buf.push_str(&t);
                } else if let Some(c) = &mut code {
                    c.push_str(&t);
                } else {
                    inline.push_str(&t);
                }
            }
            Event::SoftBreak | Event::HardBreak => {
                if let Some((_, _, buf)) = &mut heading {
                    buf.push(' ');
                } else {
                    inline.push(' ');
                }
            }
            _ => {}
        }
    }
    if let Some(c) = code.take() {
        b.push_block(BlockKind::Code, code_text(&c));
    }
    flush(&mut b, &mut inline, &kinds);
    Ok(b.finish(id, None))
}

fn level_number(level: HeadingLevel) -> u8 {
    match level {
        HeadingLevel::H1 => 1,
        HeadingLevel::H2 => 2,
        HeadingLevel::H3 => 3,
        HeadingLevel::H4 => 4,
        HeadingLevel::H5 => 5,
        HeadingLevel::H6 => 6,
    }
}

/// `base`, or `base-1`, `base-2`, ... when already used (GitHub's rule).
fn unique_anchor(used: &mut HashMap<String, usize>, base: String) -> String {
    let mut n = used.get(&base).copied().unwrap_or(0);
    let mut anchor = if n == 0 { base.clone() } else { format!("{base}-{n}") };
    while n > 0 && used.contains_key(&anchor) {
        n += 1;
        anchor = format!("{base}-{n}");
    }
    used.insert(base, n + 1);
    used.entry(anchor.clone()).or_insert(1);
    anchor
}

// ------------------------------------------------------------------ plain text

/// Loads plain text: the text is the source itself (spans are byte ranges of the file), paragraphs
/// (separated by blank lines) are [`BlockKind::Paragraph`] blocks trimmed of surrounding
/// whitespace, and one lead section covers everything; title = the file stem of `id`.
///
/// # Errors
/// None today; the `Result` leaves room for limits.
pub fn load_text(id: &str, text: &str) -> Result<Document> {
    let mut blocks = Vec::new();
    let mut para: Option<(usize, usize)> = None;
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        let start = pos;
        pos += line.len();
        let trimmed = line.trim();
        if trimmed.is_empty() {
            if let Some((s, e)) = para.take() {
                blocks.push(Block { kind: BlockKind::Paragraph, span: s..e });
            }
            continue;
        }
        let lead = line.len() - line.trim_start().len();
        let end = start + line.trim_end().len();
        para = Some(match para {
            Some((s, _)) => (s, end),
            None => (start + lead, end),
        });
    }
    if let Some((s, e)) = para {
        blocks.push(Block { kind: BlockKind::Paragraph, span: s..e });
    }
    let sections = if text.is_empty() {
        Vec::new()
    } else {
        vec![Section { heading_path: Vec::new(), anchor: None, span: 0..text.len() }]
    };
    Ok(Document {
        id: id.to_string(),
        title: file_stem(id),
        text: text.to_string(),
        sections,
        blocks,
        metadata: BTreeMap::new(),
    })
}

// ------------------------------------------------------------------ Parquet

/// Which columns of a Parquet file make documents (one per row).
#[cfg(feature = "data")]
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ParquetConfig {
    /// The string column holding the text (loaded as [`load_text`] does).
    pub text_column: String,
    /// A string column holding each row's document id; without it, `<file name>#<row>`.
    pub id_column: Option<String>,
    /// String columns copied into each document's metadata (a null is left out).
    pub metadata_columns: Vec<String>,
}

/// Loads one document per row of a Parquet file: the text column as plain text, the id column (or
/// `<file name>#<row>`, rows counted from 0) as id and title, the metadata columns into the
/// metadata. Rows whose text is null are skipped.
///
/// # Errors
/// [`Error::RagIo`] when the file cannot be opened, [`Error::Parquet`] when it is not readable
/// Parquet, [`Error::MissingColumn`] for a named column the schema lacks, [`Error::ColumnType`]
/// for one that is not a string column (Utf8, LargeUtf8 or Utf8View).
#[cfg(feature = "data")]
pub fn load_parquet(path: impl AsRef<Path>, config: &ParquetConfig) -> Result<Vec<Document>> {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::DataType;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    let path = path.as_ref();
    let file = std::fs::File::open(path).map_err(|source| Error::RagIo { path: path.to_path_buf(), source })?;
    let pq = |source| Error::Parquet { path: path.to_path_buf(), source };
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(pq)?;
    let schema = builder.schema().clone();
    let mut wanted: Vec<&str> = vec![config.text_column.as_str()];
    wanted.extend(config.id_column.as_deref());
    wanted.extend(config.metadata_columns.iter().map(String::as_str));
    for name in &wanted {
        let field = schema.field_with_name(name).map_err(|_| Error::MissingColumn {
            column: name.to_string(),
            available: schema.fields().iter().map(|f| f.name().clone()).collect(),
        })?;
        if !matches!(field.data_type(), DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View) {
            return Err(Error::ColumnType {
                column: name.to_string(),
                expected: "a string column (Utf8, LargeUtf8 or Utf8View)".into(),
                got: field.data_type().clone(),
            });
        }
    }
    fn strings(array: &dyn Array) -> Vec<Option<String>> {
        match array.data_type() {
            DataType::Utf8 => array.as_string::<i32>().iter().map(|s| s.map(str::to_string)).collect(),
            DataType::LargeUtf8 => array.as_string::<i64>().iter().map(|s| s.map(str::to_string)).collect(),
            DataType::Utf8View => array.as_string_view().iter().map(|s| s.map(str::to_string)).collect(),
            _ => vec![None; array.len()],
        }
    }
    let file_name = path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
    let reader = builder.build().map_err(pq)?;
    let mut docs = Vec::new();
    let mut row = 0usize;
    for batch in reader {
        let batch = batch.map_err(Error::Arrow)?;
        let column = |name: &str| batch.column_by_name(name).map(|c| strings(c.as_ref()));
        let texts = column(&config.text_column).unwrap_or_default();
        let ids = config.id_column.as_deref().and_then(column);
        let metas: Vec<(String, Vec<Option<String>>)> =
            config.metadata_columns.iter().map(|m| (m.clone(), column(m).unwrap_or_default())).collect();
        for (i, text) in texts.into_iter().enumerate() {
            let r = row + i;
            let Some(text) = text else { continue };
            let id =
                ids.as_ref().and_then(|v| v.get(i).cloned().flatten()).unwrap_or_else(|| format!("{file_name}#{r}"));
            let mut doc = load_text(&id, &text)?;
            doc.title = id;
            for (name, values) in &metas {
                if let Some(Some(v)) = values.get(i) {
                    doc.metadata.insert(name.clone(), v.clone());
                }
            }
            docs.push(doc);
        }
        row += batch.num_rows();
    }
    Ok(docs)
}

// ------------------------------------------------------------------ folders

/// What [`load_dir`] reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadConfig {
    /// File extensions read (case-insensitive, without the dot): `md`/`markdown` as Markdown,
    /// `html`/`htm` as HTML, anything else listed as plain text.
    pub extensions: Vec<String>,
    /// File names skipped wherever they are (mdBook's `print.html`, `toc.html`, `404.html`).
    pub skip_names: Vec<String>,
    /// Skip HTML redirect stubs (a `<meta http-equiv="refresh">` page).
    pub skip_redirects: bool,
    /// Folders skipped, as paths relative to the root with `/` (e.g. `rust-by-example/ja`).
    pub skip_dirs: Vec<String>,
    /// Sub-folders of the root to read, in this order (ids stay relative to the root); empty
    /// reads the whole root.
    pub collections: Vec<String>,
}

impl Default for LoadConfig {
    fn default() -> Self {
        LoadConfig {
            extensions: ["md", "markdown", "html", "htm", "txt"].map(String::from).to_vec(),
            skip_names: ["print.html", "toc.html", "404.html"].map(String::from).to_vec(),
            skip_redirects: true,
            skip_dirs: Vec::new(),
            collections: Vec::new(),
        }
    }
}

/// Progress of [`load_dir_with_progress`]: files done out of the total, and the last one.
#[derive(Debug, Clone, Copy)]
pub struct LoadProgress<'a> {
    /// Files read so far (this one included).
    pub done: usize,
    /// Files to read.
    pub total: usize,
    /// The file just read.
    pub path: &'a Path,
}

/// Loads every matching file under `root` (see [`LoadConfig`]), in the order of their sorted
/// relative paths: id = the path relative to `root` with `/` separators, metadata `collection` =
/// its first component (absent for files directly in `root`), `format` = `markdown`, `html` or
/// `text`. Files are parsed in parallel.
///
/// # Errors
/// [`Error::RagIo`] naming a folder or file that cannot be read; [`Error::RagLoad`] naming a file
/// that is not UTF-8 or a collection folder that does not exist.
pub fn load_dir(root: impl AsRef<Path>, config: &LoadConfig) -> Result<Vec<Document>> {
    load_dir_with_progress(root, config, &|_| {})
}

/// [`load_dir`], calling `progress` after each file (from rayon's threads).
///
/// # Errors
/// As [`load_dir`].
pub fn load_dir_with_progress(
    root: impl AsRef<Path>,
    config: &LoadConfig,
    progress: &(dyn Fn(LoadProgress<'_>) + Sync),
) -> Result<Vec<Document>> {
    let root = root.as_ref();
    let mut files = Vec::new();
    if config.collections.is_empty() {
        walk(root, root, config, &mut files)?;
    } else {
        for c in &config.collections {
            let dir = root.join(c);
            if !dir.is_dir() {
                return Err(Error::RagLoad {
                    path: dir,
                    reason: "no such collection folder (for the Rust docs: `rustup component add rust-docs`)".into(),
                });
            }
            walk(root, &dir, config, &mut files)?;
        }
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    let total = files.len();
    let done = AtomicUsize::new(0);
    let loaded: Vec<Result<Option<Document>>> = files
        .par_iter()
        .map(|(id, path)| {
            let doc = load_file(id, path, config);
            let n = done.fetch_add(1, Ordering::Relaxed) + 1;
            progress(LoadProgress { done: n, total, path });
            doc
        })
        .collect();
    let mut docs = Vec::with_capacity(loaded.len());
    for doc in loaded {
        docs.extend(doc?);
    }
    Ok(docs)
}

/// Collects `(id, path)` of the matching files under `dir`.
fn walk(root: &Path, dir: &Path, config: &LoadConfig, out: &mut Vec<(String, PathBuf)>) -> Result<()> {
    let mut entries: Vec<std::fs::DirEntry> =
        std::fs::read_dir(dir).map_err(io(dir))?.collect::<std::io::Result<_>>().map_err(io(dir))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let file_type = entry.file_type().map_err(io(&path))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if file_type.is_dir() {
            let rel = path.strip_prefix(root).unwrap_or(&path);
            let rel: Vec<String> = rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
            if !config.skip_dirs.contains(&rel.join("/")) {
                walk(root, &path, config, out)?;
            }
            continue;
        }
        // Symlinks are followed to files only (a linked folder could loop).
        let is_file = file_type.is_file() || (file_type.is_symlink() && path.is_file());
        if !is_file || config.skip_names.contains(&name) {
            continue;
        }
        let ext = extension(&name);
        if !config.extensions.iter().any(|e| e.eq_ignore_ascii_case(&ext)) {
            continue;
        }
        let rel = path.strip_prefix(root).unwrap_or(&path);
        let id = rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/");
        out.push((id, path));
    }
    Ok(())
}

/// Maps an I/O error to [`Error::RagIo`] naming `path`.
fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::RagIo { path: path.to_path_buf(), source }
}

fn extension(name: &str) -> String {
    name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default()
}

/// Reads and parses one file; `None` for a skipped redirect stub.
fn load_file(id: &str, path: &Path, config: &LoadConfig) -> Result<Option<Document>> {
    let bytes = std::fs::read(path).map_err(|source| Error::RagIo { path: path.to_path_buf(), source })?;
    let text = String::from_utf8(bytes).map_err(|e| Error::RagLoad {
        path: path.to_path_buf(),
        reason: format!("not valid UTF-8 (at byte {})", e.utf8_error().valid_up_to()),
    })?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let (mut doc, format) = match extension(&name).as_str() {
        "md" | "markdown" => (load_markdown(id, &text)?, "markdown"),
        "html" | "htm" => {
            let (doc, redirect) = parse_html(id, &text);
            if redirect && config.skip_redirects {
                return Ok(None);
            }
            (doc, "html")
        }
        _ => (load_text(id, &text)?, "text"),
    };
    if let Some((first, _)) = id.split_once('/') {
        doc.metadata.insert("collection".into(), first.to_string());
    }
    doc.metadata.insert("format".into(), format.into());
    Ok(Some(doc))
}

/// The toolchain's HTML documentation: `$(rustc --print sysroot)/share/doc/rust/html`.
///
/// # Errors
/// [`Error::RagLoad`] when `rustc` cannot be run or the folder is missing (install it with
/// `rustup component add rust-docs`).
pub fn rust_docs_root() -> Result<PathBuf> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = std::process::Command::new(&rustc).args(["--print", "sysroot"]).output().map_err(|e| Error::RagLoad {
        path: PathBuf::from(&rustc),
        reason: format!("cannot run `rustc --print sysroot`: {e}"),
    })?;
    if !out.status.success() {
        return Err(Error::RagLoad {
            path: PathBuf::from(&rustc),
            reason: format!("`rustc --print sysroot` failed: {}", String::from_utf8_lossy(&out.stderr).trim()),
        });
    }
    let sysroot = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let root = Path::new(&sysroot).join("share/doc/rust/html");
    if !root.is_dir() {
        return Err(Error::RagLoad {
            path: root,
            reason: "the Rust documentation is not installed: `rustup component add rust-docs`".into(),
        });
    }
    Ok(root)
}

/// Rust by Example's translated copies, left out of the (English) corpus as `passages.py` leaves them.
pub const RUST_DOCS_TRANSLATIONS: [&str; 4] =
    ["rust-by-example/es", "rust-by-example/ja", "rust-by-example/ko", "rust-by-example/zh"];

/// Loads collections of the toolchain's documentation ([`RUST_DOCS_COLLECTIONS`] when
/// `collections` is empty): their `.html` pages (the fonts' licence texts and the like are left
/// out, and so are [`RUST_DOCS_TRANSLATIONS`]), otherwise with the default [`LoadConfig`]; ids like
/// `book/ch04-01-what-is-ownership.html`, the passage ids `passages.py` names.
///
/// # Errors
/// As [`rust_docs_root`] and [`load_dir`].
pub fn rust_docs(collections: &[&str]) -> Result<Vec<Document>> {
    let root = rust_docs_root()?;
    let collections: Vec<String> = if collections.is_empty() {
        RUST_DOCS_COLLECTIONS.map(String::from).to_vec()
    } else {
        collections.iter().map(|c| c.to_string()).collect()
    };
    let skip_dirs = RUST_DOCS_TRANSLATIONS.map(String::from).to_vec();
    load_dir(&root, &LoadConfig { collections, extensions: vec!["html".into()], skip_dirs, ..LoadConfig::default() })
}
