//! `cargo xtask book`: installs mdbook when missing, renders the maths with KaTeX at build time
//! (`book_katex.mjs`, a preprocessor run by node) and ships its stylesheet and fonts, builds, and
//! checks every internal link and anchor of the built pages; `--check` then opens every page in
//! headless Chromium (`book_check.mjs`, puppeteer-core).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};
use autograder::Workspace;

use crate::tools::{self, CargoTool, ensure_cargo_tools, path_with_tools};

/// KaTeX release whose stylesheet and fonts the book ships (from the npm package).
const KATEX_VERSION: &str = "0.16.47";

/// puppeteer-core, the library `book_check.mjs` drives Debian's Chromium with (it downloads no browser).
const PUPPETEER_CORE: &str = "puppeteer-core@24.43.1";
/// The browser check, written next to its `node_modules` in the cache and run with node.
const BOOK_CHECK: &str = include_str!("book_check.mjs");

/// The maths preprocessor `book/book.toml` names (run by node from the book's folder).
const BOOK_KATEX: &str = "xtask/src/book_katex.mjs";

pub fn run(ws: &Workspace, serve: bool) -> Result<()> {
    ensure_tools(ws)?;
    let katex = ensure_katex_assets(ws)?;
    ensure!(ws.root.join(BOOK_KATEX).is_file(), "{BOOK_KATEX} is missing");
    let book = ws.root.join("book");
    let mut cmd = Command::new("mdbook");
    cmd.env("PATH", path_with_tools(ws)).env("KATEX_DIST", &katex).current_dir(&ws.root);
    if serve {
        cmd.args(["serve", "book", "--hostname", "127.0.0.1"]);
        return tools::run(&mut cmd);
    }
    cmd.args(["build", "book"]);
    let spinner = autograder::progress::spinner("building the book with mdbook (maths by KaTeX)");
    let out = cmd.output().context("running mdbook")?;
    spinner.finish_and_clear();
    let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    // mdbook reports missing includes as ERROR but still exits 0: any warning fails the build.
    let problems: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("ERROR") || l.contains("WARN") || l.contains("warning"))
        .filter(|l| !l.contains("was built against"))
        .collect();
    if !out.status.success() || !problems.is_empty() {
        eprint!("{log}");
        bail!("the book has {} problem(s)", problems.len().max(1));
    }
    let html = book.join("book/html");
    let links = check_links(&html)?;
    println!("book built: {} ({links} internal links and anchors checked)", html.join("index.html").display());
    Ok(())
}

/// Checks every relative `href` and `src` of the built pages: the file exists and, for a
/// `#fragment` into a page, the page has that `id`. Returns how many links it checked.
///
/// mdbook's own output is regular (double-quoted attributes), so a scan for the two attributes
/// suffices; links leaving the book (`https:`, `mailto:`) are the browser check's concern.
fn check_links(html: &Path) -> Result<usize> {
    let mut ids: HashMap<PathBuf, HashSet<String>> = HashMap::new();
    let (mut checked, mut broken) = (0, Vec::new());
    for entry in walkdir::WalkDir::new(html) {
        let entry = entry?;
        let page = entry.path();
        if page.extension().is_none_or(|e| e != "html") {
            continue;
        }
        let text = std::fs::read_to_string(page).with_context(|| format!("reading {}", page.display()))?;
        let dir = page.parent().expect("a page is in a folder");
        for link in attribute_values(&text, "href").into_iter().chain(attribute_values(&text, "src")) {
            if link.contains(':') || link.starts_with("//") {
                continue;
            }
            checked += 1;
            let (path, fragment) = link.split_once('#').map_or((link, None), |(p, f)| (p, Some(f)));
            let path = path.split('?').next().unwrap_or(path);
            // Site-absolute links (404.html has them) start from the book's root.
            let target = match path.strip_prefix('/') {
                _ if path.is_empty() => page.to_path_buf(),
                Some(from_root) => html.join(from_root),
                None => dir.join(path),
            };
            let target = if target.is_dir() { target.join("index.html") } else { target };
            let page_name = page.strip_prefix(html).unwrap_or(page).display();
            if !target.is_file() {
                broken.push(format!("{page_name}: {link} (no such file)"));
            } else if let Some(fragment) = fragment.filter(|f| !f.is_empty())
                && target.extension().is_some_and(|e| e == "html")
            {
                if !ids.contains_key(&target) {
                    let text =
                        std::fs::read_to_string(&target).with_context(|| format!("reading {}", target.display()))?;
                    ids.insert(target.clone(), attribute_values(&text, "id").into_iter().map(str::to_owned).collect());
                }
                if !ids[&target].contains(fragment) {
                    broken.push(format!("{page_name}: {link} (no id \"{fragment}\" there)"));
                }
            }
        }
    }
    if !broken.is_empty() {
        for b in &broken {
            eprintln!("  broken link: {b}");
        }
        bail!("the book has {} broken internal link(s)", broken.len());
    }
    Ok(checked)
}

/// The values of every `name="…"` attribute in `html`.
fn attribute_values<'a>(html: &'a str, name: &str) -> Vec<&'a str> {
    let needle = format!(" {name}=\"");
    html.match_indices(needle.as_str())
        .filter_map(|(at, _)| {
            let rest = &html[at + needle.len()..];
            rest.find('"').map(|end| &rest[..end])
        })
        .collect()
}

fn ensure_tools(ws: &Workspace) -> Result<()> {
    ensure_cargo_tools(
        ws,
        &[
            // The only tool built from source: KaTeX runs in node (`book_katex.mjs`, where the
            // mdbook-katex plugin cost minutes of a fresh machine's build), and the link check is
            // `check_links` here (where mdbook-linkcheck2 did).
            CargoTool { krate: "mdbook", version: "0.5.4", bin: "mdbook", locked: true },
        ],
    )
}

/// Unpacks KaTeX's npm package into the cache when missing and copies its stylesheet to
/// `book/theme/katex/` and its fonts to `book/src/theme/katex/fonts/` (where the stylesheet looks
/// for them once built). Returns the package's `dist/` folder, which `book_katex.mjs` renders with.
fn ensure_katex_assets(ws: &Workspace) -> Result<PathBuf> {
    let css = ws.root.join("book/theme/katex/katex.min.css");
    let fonts = ws.root.join("book/src/theme/katex/fonts");
    let cache = ws.cache_dir().join(format!("katex-{KATEX_VERSION}"));
    let dist = cache.join("package/dist");
    if !dist.join("katex.min.css").is_file() {
        std::fs::create_dir_all(&cache)?;
        tools::run_shown(
            Command::new("npm").args(["pack", &format!("katex@{KATEX_VERSION}"), "--silent"]).current_dir(&cache),
            &format!("fetching KaTeX {KATEX_VERSION} with npm"),
        )
        .context("fetching KaTeX with npm (is npm installed?)")?;
        let tarball = std::fs::read_dir(&cache)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|e| e == "tgz"))
            .context("npm pack produced no tarball")?;
        tools::run(Command::new("tar").arg("xzf").arg(&tarball).current_dir(&cache))?;
    }
    if !(css.is_file() && fonts.is_dir()) {
        std::fs::create_dir_all(css.parent().expect("has parent"))?;
        std::fs::copy(dist.join("katex.min.css"), &css)?;
        tools::copy_dir(&dist.join("fonts"), &fonts)?;
    }
    Ok(dist)
}

/// Renders every page of the built book in headless Chromium and fails on what a reader would
/// hit: KaTeX errors or raw TeX, broken images, requests leaving the machine, JavaScript errors,
/// pages wider than a 390-px phone, empty or unhighlighted code blocks, and a search that cannot
/// find a week's own term on its pages. Screenshots (one page per chapter) go to
/// `book/book/screenshots/`.
pub fn check(ws: &Workspace) -> Result<()> {
    let chromium = std::env::var_os("CHROMIUM").map_or_else(|| "/usr/bin/chromium".into(), std::path::PathBuf::from);
    if !chromium.is_file() {
        bail!(
            "no Chromium at {}: install Debian's with `apt-get install chromium` (or set CHROMIUM)",
            chromium.display()
        );
    }
    let dir = ws.cache_dir().join("book-check");
    if !dir.join("node_modules/puppeteer-core/package.json").is_file() {
        std::fs::create_dir_all(&dir)?;
        tools::run_shown(
            Command::new("npm")
                .args(["install", "--no-audit", "--no-fund", "--silent", "--prefix"])
                .arg(&dir)
                .arg(PUPPETEER_CORE)
                .env("PUPPETEER_SKIP_DOWNLOAD", "1"),
            &format!("installing {PUPPETEER_CORE} with npm"),
        )
        .context("installing puppeteer-core with npm (is npm installed?)")?;
    }
    let script = dir.join("book_check.mjs");
    std::fs::write(&script, BOOK_CHECK)?;
    let html = ws.root.join("book/book/html");
    if !html.join("index.html").is_file() {
        bail!("{} has no built book: run `cargo xtask book` first", html.display());
    }
    let shots = ws.root.join("book/book/screenshots");
    let terms = search_terms(ws)?;
    let spinner = autograder::progress::spinner("rendering every page of the book in headless Chromium");
    let out = Command::new("node")
        .arg(&script)
        .arg(&html)
        .arg(&shots)
        .arg(serde_json::to_string(&terms)?)
        .env("CHROMIUM", &chromium)
        .output()
        .context("running node (is Node.js installed?)")?;
    spinner.finish_and_clear();
    if !out.status.success() {
        bail!("the browser check failed to run: {}", String::from_utf8_lossy(&out.stderr));
    }
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("the browser check printed no JSON: {}", String::from_utf8_lossy(&out.stdout)))?;
    let problems = report["problems"].as_array().cloned().unwrap_or_default();
    for p in &problems {
        eprintln!("  {}: {}: {}", p["page"].as_str().unwrap_or("?"), p["kind"].as_str().unwrap_or("?"), p["detail"]);
    }
    println!(
        "browser check: {} pages in Chromium, {} searches, {} screenshots in {}, {} problem(s)",
        report["pages"],
        report["search"].as_array().map_or(0, Vec::len),
        report["screenshots"].as_array().map_or(0, Vec::len),
        shots.display(),
        problems.len()
    );
    if !problems.is_empty() {
        bail!("the book has {} problem(s) in the browser", problems.len());
    }
    Ok(())
}

/// One search per week with a chapter folder: the longest word of the week's title, on its index page.
fn search_terms(ws: &Workspace) -> Result<Vec<serde_json::Value>> {
    let mut terms = Vec::new();
    for week in autograder::spec::all_weeks(ws)? {
        let course = if week.id.starts_with("c3") { "course3" } else { "course4" };
        let page = format!("{course}/{}/index.html", week.id);
        if !ws.root.join("book/book/html").join(&page).is_file() {
            continue;
        }
        let term = week
            .title
            .split(|c: char| !c.is_alphanumeric() && c != '-')
            .max_by_key(|w| w.len())
            .context("a week without a title")?
            .to_lowercase();
        terms.push(serde_json::json!({ "page": page, "term": term }));
    }
    Ok(terms)
}
