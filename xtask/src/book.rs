//! `cargo xtask book`: installs mdbook and its plugins when missing, ships KaTeX offline, builds.

use std::process::Command;

use anyhow::{Context, Result, bail};
use autograder::Workspace;

use crate::tools::{self, CargoTool, ensure_cargo_tools, path_with_tools};

/// KaTeX release whose stylesheet and fonts the book ships (from the npm package).
const KATEX_VERSION: &str = "0.16.47";

pub fn run(ws: &Workspace, serve: bool) -> Result<()> {
    ensure_tools(ws)?;
    ensure_katex_assets(ws)?;
    let book = ws.root.join("book");
    let mut cmd = Command::new("mdbook");
    cmd.env("PATH", path_with_tools(ws)).current_dir(&ws.root);
    if serve {
        cmd.args(["serve", "book", "--hostname", "127.0.0.1"]);
        return tools::run(&mut cmd);
    }
    cmd.args(["build", "book"]);
    let out = cmd.output().context("running mdbook")?;
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
    println!("book built: {}", book.join("book/html/index.html").display());
    Ok(())
}

fn ensure_tools(ws: &Workspace) -> Result<()> {
    ensure_cargo_tools(
        ws,
        &[
            CargoTool { krate: "mdbook", version: "0.5.4", bin: "mdbook", locked: true },
            // Unlocked so it resolves the mdbook 0.5.4 preprocessor interface.
            CargoTool { krate: "mdbook-katex", version: "0.10.0", bin: "mdbook-katex", locked: false },
            CargoTool { krate: "mdbook-linkcheck2", version: "0.13.0", bin: "mdbook-linkcheck2", locked: true },
        ],
    )
}

/// Copies KaTeX's stylesheet to `book/theme/katex/` and its fonts to
/// `book/src/theme/katex/fonts/` (where the stylesheet looks for them once built).
fn ensure_katex_assets(ws: &Workspace) -> Result<()> {
    let css = ws.root.join("book/theme/katex/katex.min.css");
    let fonts = ws.root.join("book/src/theme/katex/fonts");
    if css.is_file() && fonts.is_dir() {
        return Ok(());
    }
    let cache = ws.cache_dir().join(format!("katex-{KATEX_VERSION}"));
    let dist = cache.join("package/dist");
    if !dist.join("katex.min.css").is_file() {
        std::fs::create_dir_all(&cache)?;
        tools::run(
            Command::new("npm").args(["pack", &format!("katex@{KATEX_VERSION}"), "--silent"]).current_dir(&cache),
        )
        .context("fetching KaTeX with npm (is npm installed?)")?;
        let tarball = std::fs::read_dir(&cache)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|e| e == "tgz"))
            .context("npm pack produced no tarball")?;
        tools::run(Command::new("tar").arg("xzf").arg(&tarball).current_dir(&cache))?;
    }
    std::fs::create_dir_all(css.parent().expect("has parent"))?;
    std::fs::copy(dist.join("katex.min.css"), &css)?;
    tools::copy_dir(&dist.join("fonts"), &fonts)?;
    Ok(())
}
