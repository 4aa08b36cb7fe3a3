//! The quality trend over a crate's recent commits: for each of the last N commits (first parent
//! first, oldest plotted first), `git worktree add --detach` into a temporary folder, compute the
//! static metrics (complexity, duplication, docs, unsafe, todo; not coverage or clippy, which
//! would build every commit), grade them, remove the worktree; then a small SVG line chart of the
//! score with the grade bands (written here: `kernels` depends on nothing in the workspace).

use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

use crate::quality::{Config, Grade, grade, measurements, static_metrics};
use crate::{Error, Result};

/// The static grade of one commit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrendPoint {
    /// Abbreviated hash.
    pub commit: String,
    /// Committer date, `YYYY-MM-DD`.
    pub date: String,
    pub subject: String,
    pub score: f64,
    pub grade: Grade,
    pub functions: usize,
    pub over_limit: usize,
    pub duplicated_percent: f64,
    pub undocumented: usize,
    pub unsafe_without_safety: usize,
    pub todos: usize,
    pub parse_errors: usize,
}

fn git(dir: &Path, args: &[&str]) -> Result<String> {
    let shown = format!("git {}", args.join(" "));
    let out = Command::new("git").arg("-C").arg(dir).args(args).output().map_err(|e| Error::QualityTool {
        command: shown.clone(),
        dir: dir.to_path_buf(),
        reason: e.to_string(),
    })?;
    if !out.status.success() {
        return Err(Error::QualityTool {
            command: shown,
            dir: dir.to_path_buf(),
            reason: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Removes a worktree when dropped (also on an error or a panic in between).
struct Worktree<'a> {
    repo: &'a Path,
    path: PathBuf,
}

impl Drop for Worktree<'_> {
    fn drop(&mut self) {
        let path = self.path.display().to_string();
        if git(self.repo, &["worktree", "remove", "--force", &path]).is_err() {
            std::fs::remove_dir_all(&self.path).ok();
            git(self.repo, &["worktree", "prune"]).ok();
        }
    }
}

/// The static grade of the crate at `dir` at each of the last `n` commits, oldest first. A commit
/// where the crate does not exist yet is left out.
pub fn trend(dir: &Path, config: &Config, n: usize) -> Result<Vec<TrendPoint>> {
    let canonical = |p: &Path| p.canonicalize().map_err(|source| Error::QualityIo { path: p.to_path_buf(), source });
    let top = PathBuf::from(git(dir, &["rev-parse", "--show-toplevel"])?.trim());
    let rel = canonical(dir)?.strip_prefix(canonical(&top)?).map(Path::to_path_buf).unwrap_or_default();
    let log = git(&top, &["log", "--first-parent", &format!("-n{n}"), "--format=%H%x09%h%x09%cs%x09%s"])?;
    let mut points = Vec::new();
    for (i, line) in log.lines().rev().enumerate() {
        let mut fields = line.splitn(4, '\t');
        let (Some(sha), Some(short), Some(date)) = (fields.next(), fields.next(), fields.next()) else { continue };
        let subject = fields.next().unwrap_or_default().to_string();
        let path = std::env::temp_dir().join(format!("sovereign-quality-trend-{}-{i}", std::process::id()));
        std::fs::remove_dir_all(&path).ok();
        git(&top, &["worktree", "add", "--detach", "--quiet", &path.display().to_string(), sha])?;
        let worktree = Worktree { repo: &top, path };
        let m = match static_metrics(&worktree.path.join(&rel), config) {
            Ok(m) => m,
            Err(Error::QualityNotACrate { .. }) => continue,
            Err(e) => return Err(e),
        };
        drop(worktree);
        let s = grade::score(config, &measurements(&m, None, None));
        points.push(TrendPoint {
            commit: short.to_string(),
            date: date.to_string(),
            subject,
            score: s.score,
            grade: s.grade,
            functions: m.complexity.functions,
            over_limit: m.complexity.over_limit.len(),
            duplicated_percent: m.duplication.percent,
            undocumented: m.hygiene.undocumented.len(),
            unsafe_without_safety: m.hygiene.unsafe_without_safety.len(),
            todos: m.hygiene.todos.len(),
            parse_errors: m.parse_errors.len(),
        });
    }
    Ok(points)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// An SVG line chart of the points' scores (0–100) with the grade bands of `config`.
pub fn svg(points: &[TrendPoint], title: &str, config: &Config) -> String {
    let (width, height) = (720.0, 360.0);
    let (left, right, top, bottom) = (50.0, 20.0, 40.0, 60.0);
    let plot_w = width - left - right;
    let plot_h = height - top - bottom;
    let y = |score: f64| top + plot_h * (1.0 - score.clamp(0.0, 100.0) / 100.0);
    let x = |i: usize| {
        if points.len() <= 1 { left + plot_w / 2.0 } else { left + plot_w * i as f64 / (points.len() - 1) as f64 }
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(s, r#"<rect width="{width}" height="{height}" fill="white"/>"#);
    let _ =
        writeln!(s, r#"<text x="{}" y="22" font-size="14" text-anchor="middle">{}</text>"#, width / 2.0, escape(title));
    let _ =
        writeln!(s, r##"<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#888"/>"##);
    let g = &config.grade;
    for (label, bound) in [("A", g.a), ("B", g.b), ("C", g.c), ("D", g.d)] {
        let yy = y(bound);
        let _ = writeln!(
            s,
            r##"<line x1="{left}" y1="{yy:.1}" x2="{}" y2="{yy:.1}" stroke="#bbb" stroke-dasharray="4 3"/><text x="{}" y="{:.1}" fill="#666">{label} ≥ {bound}</text>"##,
            left + plot_w,
            left + plot_w - 50.0,
            yy - 3.0
        );
    }
    for tick in [0.0, 25.0, 50.0, 75.0, 100.0] {
        let _ = writeln!(s, r#"<text x="{}" y="{:.1}" text-anchor="end">{tick}</text>"#, left - 6.0, y(tick) + 4.0);
    }
    let path: Vec<String> = points.iter().enumerate().map(|(i, p)| format!("{:.1},{:.1}", x(i), y(p.score))).collect();
    let _ = writeln!(s, r##"<polyline fill="none" stroke="#1f77b4" stroke-width="2" points="{}"/>"##, path.join(" "));
    for (i, p) in points.iter().enumerate() {
        let _ = writeln!(
            s,
            r##"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="#1f77b4"><title>{} {} {:.1} ({})</title></circle>"##,
            x(i),
            y(p.score),
            escape(&p.commit),
            escape(&p.subject),
            p.score,
            p.grade
        );
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end" transform="rotate(-40 {:.1} {:.1})">{}</text>"#,
            x(i),
            top + plot_h + 14.0,
            x(i),
            top + plot_h + 14.0,
            escape(&p.commit)
        );
    }
    let _ = writeln!(s, "</svg>");
    s
}
