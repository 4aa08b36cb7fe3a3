// The book's maths preprocessor for mdbook: renders `$…$` (inline) and `$$…$$` (display) TeX to
// HTML with KaTeX at build time, so pages need no JavaScript for maths and read offline.
//
//   mdbook runs: node book_katex.mjs supports <renderer>   (exit 0: html only)
//                node book_katex.mjs < [context, book] JSON  (prints the book JSON back)
//
// KaTeX comes from its npm package, unpacked by `cargo xtask book` into the cache; its folder is
// the KATEX_DIST environment variable. Code (fenced blocks and inline code spans) is left alone,
// and `\$` is a literal dollar sign. A formula KaTeX cannot parse stops the build with the page
// and the formula, never a silently broken page.

import { createRequire } from "node:module";
import { readFileSync } from "node:fs";

if (process.argv[2] === "supports") {
  process.exit(process.argv[3] === "html" ? 0 : 1);
}

const dist = process.env.KATEX_DIST;
if (!dist) {
  console.error("book_katex: KATEX_DIST is not set (run the book through `cargo xtask book`)");
  process.exit(2);
}
const katex = createRequire(import.meta.url)(`${dist}/katex.js`);

/** The index of the next `$` at or after `from` that no backslash escapes, or -1. */
function nextDollar(text, from) {
  for (let i = text.indexOf("$", from); i !== -1; i = text.indexOf("$", i + 1)) {
    let slashes = 0;
    for (let j = i - 1; j >= 0 && text[j] === "\\"; j--) slashes++;
    if (slashes % 2 === 0) return i;
  }
  return -1;
}

function render(tex, displayMode, where) {
  try {
    // One line: a line break inside raw HTML could end the Markdown paragraph it sits in.
    return katex.renderToString(tex, { displayMode, output: "html", throwOnError: true }).replaceAll("\n", " ");
  } catch (e) {
    throw new Error(`${where}: KaTeX cannot render ${displayMode ? "$$" : "$"}${tex}${displayMode ? "$$" : "$"}: ${e.message}`);
  }
}

/** Renders the maths of one stretch of Markdown that holds no fenced code block. */
function renderProse(text, where) {
  let out = "";
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === "`") {
      // An inline code span: a run of backticks up to the same run.
      let run = 1;
      while (text[i + run] === "`") run++;
      const fence = "`".repeat(run);
      const end = text.indexOf(fence, i + run);
      if (end === -1) {
        out += text.slice(i, i + run);
        i += run;
      } else {
        out += text.slice(i, end + run);
        i = end + run;
      }
    } else if (c === "\\" && text[i + 1] === "$") {
      out += "$";
      i += 2;
    } else if (c === "\\") {
      out += text.slice(i, i + 2);
      i += 2;
    } else if (c === "$") {
      const display = text[i + 1] === "$";
      const open = display ? 2 : 1;
      let end = nextDollar(text, i + open);
      while (display && end !== -1 && text[end + 1] !== "$") end = nextDollar(text, end + 1);
      if (end === -1) {
        throw new Error(`${where}: a ${display ? "$$" : "$"} opens maths that never closes`);
      }
      out += render(text.slice(i + open, end), display, where);
      i = end + open;
    } else {
      const next = text.slice(i).search(/[`\\$]/);
      const stop = next === -1 ? text.length : i + next;
      out += text.slice(i, stop);
      i = stop;
    }
  }
  return out;
}

/** Renders a chapter's maths, copying fenced code blocks (``` or ~~~) verbatim. */
function renderChapter(markdown, where) {
  const lines = markdown.split("\n");
  const out = [];
  let prose = [];
  let fence = null;
  const flush = () => {
    if (prose.length) out.push(renderProse(prose.join("\n"), where));
    prose = [];
  };
  for (const line of lines) {
    const m = /^ {0,3}(`{3,}|~{3,})/.exec(line);
    if (fence) {
      out.push(line);
      if (m && m[1][0] === fence[0] && m[1].length >= fence.length && line.trim() === m[1]) fence = null;
    } else if (m) {
      flush();
      fence = m[1];
      out.push(line);
    } else {
      prose.push(line);
    }
  }
  flush();
  return out.join("\n");
}

/** Walks mdbook's book JSON and renders every chapter's content in place. */
function walk(node) {
  if (Array.isArray(node)) {
    node.forEach(walk);
  } else if (node && typeof node === "object") {
    if (node.Chapter && typeof node.Chapter.content === "string") {
      const chapter = node.Chapter;
      chapter.content = renderChapter(chapter.content, chapter.source_path ?? chapter.path ?? chapter.name);
    }
    Object.values(node).forEach(walk);
  }
}

const [, book] = JSON.parse(readFileSync(0, "utf8"));
try {
  walk(book);
} catch (e) {
  console.error(e.message);
  process.exit(1);
}
process.stdout.write(JSON.stringify(book));
