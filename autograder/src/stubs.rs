//! Single-source stubs: `solutions/<crate>` with task markers → `labs/<crate>`.
//!
//! Marker grammar (each on a line of its own, any indentation):
//!
//! ```text
//! // BEGIN SOLUTION <task-id>                 region becomes `todo!("<task-id>")`
//! // BEGIN SOLUTION <task-id> delete          region is dropped
//! // BEGIN SOLUTION <task-id> stub: <code>    region becomes `<code>`
//! // END SOLUTION
//! // STUB-ONLY: <code>                        becomes `<code>` in the lab only
//! ```
//!
//! Everything else is copied verbatim; `Cargo.toml` loses the `-solution`
//! suffix of its package name.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::Workspace;

/// One marked region of a solution file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    pub task: String,
    /// What the lab gets instead.
    pub replacement: Replacement,
    /// The solution's code inside the markers.
    pub body: String,
    /// Indentation of the BEGIN line.
    pub indent: String,
}

/// What a region turns into in the lab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replacement {
    Todo,
    Delete,
    Stub(String),
}

/// Renders a solution source, choosing each region's text with `choose`
/// (`None` keeps the solution's code). Marker lines are always removed.
pub fn render_with(source: &str, mut choose: impl FnMut(&Region) -> Option<String>) -> Result<String> {
    let mut out = String::with_capacity(source.len());
    let mut lines = source.lines().enumerate();
    while let Some((n, line)) = lines.next() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        if let Some(rest) = trimmed.strip_prefix("// BEGIN SOLUTION") {
            let (task, replacement) =
                parse_begin(rest).with_context(|| format!("line {}: bad marker `{}`", n + 1, trimmed))?;
            let mut body = String::new();
            let mut closed = false;
            for (m, inner) in lines.by_ref() {
                let t = inner.trim();
                if t == "// END SOLUTION" {
                    closed = true;
                    break;
                }
                if t.starts_with("// BEGIN SOLUTION") {
                    bail!("line {}: solution regions cannot nest", m + 1);
                }
                body.push_str(inner);
                body.push('\n');
            }
            if !closed {
                bail!("line {}: `// BEGIN SOLUTION {task}` has no `// END SOLUTION`", n + 1);
            }
            let region = Region { task, replacement, body, indent: indent.to_string() };
            match choose(&region) {
                Some(text) => out.push_str(&text),
                None => out.push_str(&region.body),
            }
        } else if trimmed.starts_with("// END SOLUTION") {
            bail!("line {}: `// END SOLUTION` without a BEGIN", n + 1);
        } else {
            // Everything else, `// STUB-ONLY:` lines included, stays as it is.
            out.push_str(line);
            out.push('\n');
        }
    }
    Ok(out)
}

/// The lab's version of one solution source.
pub fn stub_source(source: &str) -> Result<String> {
    let rendered = render_with(source, |r| Some(lab_text(r)))?;
    let lines: Vec<&str> = rendered.lines().collect();
    let mut out = String::with_capacity(rendered.len());
    let mut previous_blank = false;
    for (i, &line) in lines.iter().enumerate() {
        // A deleted region can leave blank lines rustfmt rejects: two in a row, one
        // before a closing brace, or one at the end of the file. Keep none of them.
        let blank = line.trim().is_empty();
        let next = lines[i + 1..].iter().find(|l| !l.trim().is_empty());
        if blank && (previous_blank || next.is_none_or(|l| l.trim_start().starts_with('}'))) {
            continue;
        }
        previous_blank = blank;
        let trimmed = line.trim_start();
        match trimmed.strip_prefix("// STUB-ONLY:") {
            Some(code) => out.push_str(&format!("{}{}\n", &line[..line.len() - trimmed.len()], code.trim_start())),
            None => out.push_str(&format!("{line}\n")),
        }
    }
    Ok(out)
}

/// The text a region becomes in the lab.
pub fn lab_text(region: &Region) -> String {
    match &region.replacement {
        Replacement::Todo => format!("{}todo!(\"{}\")\n", region.indent, region.task),
        Replacement::Delete => String::new(),
        Replacement::Stub(code) => format!("{}{}\n", region.indent, code),
    }
}

fn parse_begin(rest: &str) -> Result<(String, Replacement)> {
    let rest = rest.trim();
    let (task, tail) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    if task.is_empty() || !task.contains('.') {
        bail!("expected a task id like c4w3.hnsw-insert");
    }
    let tail = tail.trim();
    let replacement = if tail.is_empty() {
        Replacement::Todo
    } else if tail == "delete" {
        Replacement::Delete
    } else if let Some(code) = tail.strip_prefix("stub:") {
        Replacement::Stub(code.trim().to_string())
    } else {
        bail!("expected nothing, `delete` or `stub: <code>` after the task id, found `{tail}`");
    };
    Ok((task.to_string(), replacement))
}

/// Every task id marked in a source.
pub fn tasks_in(source: &str) -> Result<Vec<String>> {
    let mut tasks = Vec::new();
    render_with(source, |r| {
        tasks.push(r.task.clone());
        None
    })?;
    Ok(tasks)
}

/// The files of `labs/<crate>` as generated from `solutions/<crate>`: relative path → contents.
pub fn generate_lab(solution_dir: &Path) -> Result<BTreeMap<PathBuf, Vec<u8>>> {
    let mut files = BTreeMap::new();
    for entry in walkdir::WalkDir::new(solution_dir).sort_by_file_name() {
        let entry = entry?;
        let rel = entry.path().strip_prefix(solution_dir)?.to_path_buf();
        if !entry.file_type().is_file() || rel.starts_with("target") {
            continue;
        }
        let bytes = std::fs::read(entry.path())?;
        let out = if rel.extension().is_some_and(|e| e == "rs") {
            let text = String::from_utf8(bytes).with_context(|| format!("{} is not UTF-8", rel.display()))?;
            stub_source(&text).with_context(|| format!("in {}", entry.path().display()))?.into_bytes()
        } else if rel == Path::new("Cargo.toml") {
            let text = String::from_utf8(bytes)?;
            lab_manifest(&text).with_context(|| format!("in {}", entry.path().display()))?.into_bytes()
        } else {
            bytes
        };
        files.insert(rel, out);
    }
    Ok(files)
}

fn lab_manifest(text: &str) -> Result<String> {
    let mut renamed = false;
    let out: String = text
        .lines()
        .map(|line| {
            if !renamed && line.starts_with("name = \"") && line.trim_end().ends_with("-solution\"") {
                renamed = true;
                format!("{}\"\n", line.trim_end().trim_end_matches("-solution\""))
            } else {
                format!("{line}\n")
            }
        })
        .collect();
    if !renamed {
        bail!("the package name must end in `-solution`");
    }
    Ok(out)
}

/// A difference between `labs/` and what the solutions generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stale {
    Missing(PathBuf),
    Different(PathBuf),
    Extra(PathBuf),
}

/// Writes (or with `check`, compares) every lab; returns what was or would be changed.
pub fn sync_labs(ws: &Workspace, check: bool) -> Result<Vec<Stale>> {
    let mut stale = Vec::new();
    let solutions = ws.root.join("solutions");
    let Ok(entries) = std::fs::read_dir(&solutions) else { return Ok(stale) };
    let mut dirs: Vec<PathBuf> =
        entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.join("Cargo.toml").is_file()).collect();
    dirs.sort();
    for solution in dirs {
        let name = solution.file_name().expect("named").to_owned();
        let lab = ws.root.join("labs").join(&name);
        let generated = generate_lab(&solution)?;
        for (rel, contents) in &generated {
            let path = lab.join(rel);
            match std::fs::read(&path) {
                Ok(existing) if &existing == contents => {}
                Ok(_) => stale.push(Stale::Different(path.clone())),
                Err(_) => stale.push(Stale::Missing(path.clone())),
            }
            if !check {
                std::fs::create_dir_all(path.parent().expect("inside lab"))?;
                std::fs::write(&path, contents)?;
            }
        }
        if lab.is_dir() {
            for entry in walkdir::WalkDir::new(&lab) {
                let entry = entry?;
                let rel = entry.path().strip_prefix(&lab)?.to_path_buf();
                if entry.file_type().is_file() && !rel.starts_with("target") && !generated.contains_key(&rel) {
                    stale.push(Stale::Extra(entry.path().to_path_buf()));
                    if !check {
                        std::fs::remove_file(entry.path())?;
                    }
                }
            }
        }
    }
    Ok(stale)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(solution: &str, lab: &str) {
        assert_eq!(stub_source(solution).unwrap(), lab);
    }

    #[test]
    fn regions_become_todos_deletions_or_stub_text() {
        check(
            "fn a() -> u32 {\n    // BEGIN SOLUTION c4w3.a\n    1 + 1\n    // END SOLUTION\n}\n",
            "fn a() -> u32 {\n    todo!(\"c4w3.a\")\n}\n",
        );
        check("x\n// BEGIN SOLUTION c4w3.b delete\nfn helper() {}\n// END SOLUTION\ny\n", "x\ny\n");
        check(
            "}\n\n// BEGIN SOLUTION c4w3.b delete\nfn helper() {}\n// END SOLUTION\n\nfn f() {}\n",
            "}\n\nfn f() {}\n",
        );
        check(
            "let v = {\n  // BEGIN SOLUTION c4w3.c stub: Vec::new()\n  vec![1, 2]\n  // END SOLUTION\n};\n",
            "let v = {\n  Vec::new()\n};\n",
        );
        check("//! doc\n// STUB-ONLY: #![allow(unused)]\nfn f() {}\n", "//! doc\n#![allow(unused)]\nfn f() {}\n");
        // A deletion at the end of a block or of the file leaves no blank line behind.
        check(
            "impl A {\n    fn f() {}\n\n    // BEGIN SOLUTION c4w3.d delete\n    fn g() {}\n    // END SOLUTION\n}\n",
            "impl A {\n    fn f() {}\n}\n",
        );
        check("fn f() {}\n\n// BEGIN SOLUTION c4w3.e delete\nfn g() {}\n// END SOLUTION\n", "fn f() {}\n");
    }

    #[test]
    fn malformed_markers_are_errors() {
        for bad in [
            "// BEGIN SOLUTION c4w3.a\nno end\n",
            "// END SOLUTION\n",
            "// BEGIN SOLUTION nodot\n// END SOLUTION\n",
            "// BEGIN SOLUTION c4w3.a\n// BEGIN SOLUTION c4w3.b\n// END SOLUTION\n",
            "// BEGIN SOLUTION c4w3.a frobnicate\n// END SOLUTION\n",
        ] {
            assert!(stub_source(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn solution_manifest_loses_its_suffix() {
        assert_eq!(lab_manifest("[package]\nname = \"c4w3-x-solution\"\n").unwrap(), "[package]\nname = \"c4w3-x\"\n");
        assert!(lab_manifest("[package]\nname = \"c4w3-x\"\n").is_err());
    }
}
