// The built book in a real browser (headless Chromium driven by puppeteer-core):
// run by `cargo xtask book --check`, which installs both and passes
//   node book_check.mjs <book/html folder> <screenshot folder> <search terms JSON>
// Prints one JSON object: pages checked, problems found (each with its page), screenshots.
import { readdirSync, statSync, mkdirSync } from "node:fs";
import { join, relative, sep } from "node:path";
import { pathToFileURL } from "node:url";
import puppeteer from "puppeteer-core";

const [html, shots, termsJson] = process.argv.slice(2);
const searchTerms = JSON.parse(termsJson); // [{ page: "course4/c4w3/index.html", term: "HNSW" }, ...]
mkdirSync(shots, { recursive: true });

function pages(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) {
      if (!["fonts", "FontAwesome", "css", "theme", "katex"].includes(name)) out.push(...pages(path));
    } else if (name.endsWith(".html") && !["print.html", "404.html", "toc.html"].includes(name)) {
      out.push(path);
    }
  }
  return out;
}

const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--allow-file-access-from-files",
  ],
});
const problems = [];
const screenshots = [];
const shotChapters = new Set();
const all = pages(html).sort();

for (const path of all) {
  const rel = relative(html, path).split(sep).join("/");
  const page = await browser.newPage();
  const report = (kind, detail) => problems.push({ page: rel, kind, detail: String(detail).slice(0, 300) });
  page.on("console", (m) => { if (m.type() === "error") report("console error", m.text()); });
  page.on("pageerror", (e) => report("javascript error", e.message));
  page.on("requestfailed", (r) => report("failed request", `${r.url()} (${r.failure()?.errorText})`));
  await page.setRequestInterception(true);
  page.on("request", (r) => {
    const url = r.url();
    if (url.startsWith("file:") || url.startsWith("data:") || url.startsWith("blob:") || url.startsWith("about:")) {
      r.continue();
    } else {
      report("request to the network (the book must work offline)", url);
      r.abort();
    }
  });
  await page.setViewport({ width: 390, height: 844, deviceScaleFactor: 1 });
  await page.goto(pathToFileURL(path).href, { waitUntil: "load" });
  const found = await page.evaluate(() => {
    const out = [];
    const main = document.querySelector("main") || document.body;
    for (const e of main.querySelectorAll(".katex-error")) out.push(["KaTeX error", e.getAttribute("title") || e.textContent]);
    // Raw TeX left in prose: $…$ outside code and outside rendered maths.
    const walker = document.createTreeWalker(main, NodeFilter.SHOW_TEXT, {
      acceptNode: (n) => (n.parentElement.closest("code, pre, .katex, script, style") ? NodeFilter.FILTER_REJECT : NodeFilter.FILTER_ACCEPT),
    });
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      if (/\$[^$\s][^$]*\$|\\\(|\\\[|\\frac|\\sum/.test(n.textContent)) out.push(["unrendered maths", n.textContent.trim()]);
    }
    for (const img of main.querySelectorAll("img")) {
      if (!img.complete || img.naturalWidth === 0) out.push(["broken image", img.getAttribute("src")]);
    }
    for (const code of main.querySelectorAll("pre > code")) {
      if (code.textContent.trim() === "") out.push(["empty code block", code.className || "(no language)"]);
      else if (!code.classList.contains("hljs")) out.push(["code block without highlighting", code.textContent.slice(0, 60)]);
    }
    const width = document.documentElement.scrollWidth;
    if (width > window.innerWidth + 1) {
      const wide = [...main.querySelectorAll("*")].filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1 && !e.closest("pre, table, .table-wrapper, .katex-display"));
      out.push(["wider than a 390-px phone", `${width}px; e.g. <${wide[0]?.tagName?.toLowerCase()}> ${wide[0]?.textContent?.slice(0, 60) ?? ""}`]);
    }
    return out;
  });
  for (const [kind, detail] of found) report(kind, detail);
  const chapter = rel.includes("/") ? rel.split("/").slice(0, 2).join("/") : rel;
  if (!shotChapters.has(chapter)) {
    shotChapters.add(chapter);
    await page.setViewport({ width: 1280, height: 900, deviceScaleFactor: 1 });
    const file = join(shots, chapter.replaceAll("/", "_").replace(/\.html$/, "") + ".png");
    await page.screenshot({ path: file, fullPage: true });
    screenshots.push(file);
  }
  await page.close();
}

// The built-in search finds a term of each week on that week's pages.
const search = [];
for (const { page: target, term } of searchTerms) {
  const page = await browser.newPage();
  await page.goto(pathToFileURL(join(html, target)).href, { waitUntil: "load" });
  let hits = [];
  try {
    await page.keyboard.press("s");
    await page.waitForSelector("#mdbook-searchbar, #searchbar", { visible: true, timeout: 5000 });
    await page.type("#mdbook-searchbar, #searchbar", term, { delay: 10 });
    await page.waitForFunction(() => document.querySelectorAll("#mdbook-searchresults li, #searchresults li").length > 0, { timeout: 5000 });
    hits = await page.evaluate(() => [...document.querySelectorAll("#mdbook-searchresults li a, #searchresults li a")].map((a) => a.getAttribute("href")));
  } catch (e) {
    problems.push({ page: target, kind: "search", detail: `searching ${JSON.stringify(term)}: ${e.message}` });
  }
  const dir = target.split("/").slice(0, -1).join("/");
  if (hits.length && !hits.some((h) => h.startsWith(dir) || h.includes(`${dir}/`))) {
    problems.push({ page: target, kind: "search", detail: `${JSON.stringify(term)} found ${hits.length} pages, none under ${dir}/` });
  }
  search.push({ term, page: target, hits: hits.length });
  await page.close();
}

await browser.close();
console.log(JSON.stringify({ pages: all.length, problems, screenshots, search }));
