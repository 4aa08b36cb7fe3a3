//! The pipeline file: TOML steps parsed and validated into a [`Pipeline`] (every bad key, name,
//! dependency, path and cycle a typed error naming it, before anything runs).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// A privacy tier, as in `kernels::gateway`: where a step's data may go. Ordered by strictness
/// (`Standard < Private < Sovereign`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// Anywhere.
    #[default]
    Standard,
    /// Machines you run and providers under contract that keep no data. Not traced: declared and
    /// recorded (MLflow parameter `tier`), like the gateway's `private` backends.
    Private,
    /// Machines you run only: a command step runs under `kernels::audit`'s deny-network tracer
    /// (loopback, Unix and netlink sockets only); function steps are refused.
    Sovereign,
}

impl Tier {
    /// The name used in files and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Standard => "standard",
            Tier::Private => "private",
            Tier::Sovereign => "sovereign",
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a step runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// A program and its arguments (no shell), with `{in:NAME}`, `{out:NAME}` and `{base}` placeholders.
    Command(Vec<String>),
    /// A Rust function registered by name in `RunConfig::functions`.
    Function(String),
}

/// Retry delays: `initial · 2^(k-1)` before attempt `k + 1`, capped at `max` (deterministic, no jitter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The delay before the second attempt.
    pub initial: Duration,
    /// The longest delay.
    pub max: Duration,
}

impl Backoff {
    /// The delay after failed attempt `attempt` (1-based) before the next one.
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(31));
        self.initial.saturating_mul(factor).min(self.max)
    }
}

/// One validated step.
#[derive(Debug, Clone)]
pub struct Step {
    /// Its name (letters, digits, `_`, `-`, `.`).
    pub name: String,
    /// What it runs.
    pub action: Action,
    /// Named inputs: absolute, lexically normal paths (files or folders).
    pub inputs: BTreeMap<String, PathBuf>,
    /// Named outputs: absolute, lexically normal file paths.
    pub outputs: BTreeMap<String, PathBuf>,
    /// Steps it must run after (declared with `after`), by name.
    pub after: Vec<String>,
    /// Every step it depends on (declared, or producing one of its inputs), as indices, sorted.
    pub deps: Vec<usize>,
    /// Extra attempts after a failure.
    pub retries: u32,
    /// Delays between attempts.
    pub backoff: Backoff,
    /// The limit of one attempt.
    pub timeout: Option<Duration>,
    /// Threads it uses (from the run's budget; `PIPELINE_THREADS`, `OMP_NUM_THREADS`, `RAYON_NUM_THREADS`).
    pub threads: usize,
    /// Its privacy tier (the pipeline's unless stricter).
    pub tier: Tier,
    /// Its `config` table as canonical JSON (keys sorted): part of the cache key, `PIPELINE_CONFIG`.
    pub config: String,
    /// Extra environment variables.
    pub env: BTreeMap<String, String>,
}

/// A validated pipeline.
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// `[pipeline] name` (the file's stem when absent).
    pub name: String,
    /// The pipeline's tier (the default of its steps).
    pub tier: Tier,
    /// Relative paths and commands are resolved against this folder (the file's folder).
    pub base_dir: PathBuf,
    /// The steps, in declaration order.
    pub steps: Vec<Step>,
    /// Where it was read from (for messages).
    pub source: String,
}

impl Pipeline {
    /// Reads and validates a pipeline file; paths are relative to its folder.
    pub fn from_file(path: &Path) -> Result<Pipeline> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::PipelineIo {
            step: "(pipeline)".into(),
            path: path.to_path_buf(),
            source,
        })?;
        let base = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let base = std::path::absolute(base).map_err(|source| Error::PipelineIo {
            step: "(pipeline)".into(),
            path: base.to_path_buf(),
            source,
        })?;
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("pipeline");
        parse(&text, &base, &path.display().to_string(), stem)
    }

    /// Parses and validates `text`, resolving relative paths against `base_dir` (made absolute).
    pub fn from_toml(text: &str, base_dir: &Path) -> Result<Pipeline> {
        let base = std::path::absolute(base_dir).map_err(|source| Error::PipelineIo {
            step: "(pipeline)".into(),
            path: base_dir.to_path_buf(),
            source,
        })?;
        parse(text, &base, "(text)", "pipeline")
    }

    /// The index of step `name`.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.steps.iter().position(|s| s.name == name)
    }

    /// The steps that depend on step `i`, directly or not (not `i` itself), sorted.
    pub fn descendants(&self, i: usize) -> Vec<usize> {
        let mut out = BTreeSet::new();
        let mut stack = vec![i];
        while let Some(n) = stack.pop() {
            for (j, s) in self.steps.iter().enumerate() {
                if s.deps.contains(&n) && out.insert(j) {
                    stack.push(j);
                }
            }
        }
        out.into_iter().collect()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSpec {
    pipeline: Option<HeaderSpec>,
    #[serde(default)]
    step: Vec<StepSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HeaderSpec {
    name: Option<String>,
    #[serde(default)]
    tier: Tier,
}

fn one() -> usize {
    1
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StepSpec {
    name: String,
    command: Option<Vec<String>>,
    function: Option<String>,
    #[serde(default)]
    inputs: BTreeMap<String, String>,
    #[serde(default)]
    outputs: BTreeMap<String, String>,
    #[serde(default)]
    after: Vec<String>,
    #[serde(default)]
    retries: u32,
    backoff_ms: Option<u64>,
    backoff_max_ms: Option<u64>,
    timeout_s: Option<f64>,
    #[serde(default = "one")]
    threads: usize,
    tier: Option<Tier>,
    #[serde(default)]
    config: toml::Table,
    #[serde(default)]
    env: BTreeMap<String, String>,
}

/// The most retries a step may ask for.
const MAX_RETRIES: u32 = 100;

fn valid_step_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !name.starts_with('.')
}

fn valid_port_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `base.join(p)`, made lexically normal (`.` dropped, `..` popped).
pub(crate) fn resolve(base: &Path, p: &str) -> PathBuf {
    let mut out = PathBuf::new();
    for c in base.join(p).components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// JSON text of a TOML value with every table's keys sorted (stable across `toml`/`serde_json` features).
fn canonical_json(v: &toml::Value, out: &mut String) {
    match v {
        toml::Value::String(s) => out.push_str(&serde_json::Value::String(s.clone()).to_string()),
        toml::Value::Integer(i) => out.push_str(&i.to_string()),
        toml::Value::Float(f) => out.push_str(&serde_json::json!(f).to_string()),
        toml::Value::Boolean(b) => out.push_str(if *b { "true" } else { "false" }),
        toml::Value::Datetime(d) => out.push_str(&serde_json::Value::String(d.to_string()).to_string()),
        toml::Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(x, out);
            }
            out.push(']');
        }
        toml::Value::Table(t) => {
            out.push('{');
            let sorted: BTreeMap<&String, &toml::Value> = t.iter().collect();
            for (i, (k, x)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::Value::String(k.clone()).to_string());
                out.push(':');
                canonical_json(x, out);
            }
            out.push('}');
        }
    }
}

/// The placeholders of one argument: `(kind, name)` with kind `in`/`out`, and whether `{base}` occurs.
pub(crate) fn placeholders(arg: &str) -> Vec<(&str, &str)> {
    let mut found = Vec::new();
    let mut rest = arg;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        let Some(end) = after.find('}') else { break };
        let inner = &after[..end];
        if let Some(name) = inner.strip_prefix("in:") {
            found.push(("in", name));
        } else if let Some(name) = inner.strip_prefix("out:") {
            found.push(("out", name));
        }
        rest = &after[end + 1..];
    }
    found
}

/// `arg` with `{in:NAME}`, `{out:NAME}` and `{base}` replaced.
pub(crate) fn substitute(
    arg: &str,
    base: &Path,
    inputs: &BTreeMap<String, PathBuf>,
    outputs: &BTreeMap<String, PathBuf>,
) -> String {
    let mut out = arg.replace("{base}", &base.to_string_lossy());
    for (name, path) in inputs {
        out = out.replace(&format!("{{in:{name}}}"), &path.to_string_lossy());
    }
    for (name, path) in outputs {
        out = out.replace(&format!("{{out:{name}}}"), &path.to_string_lossy());
    }
    out
}

fn parse(text: &str, base: &Path, source: &str, stem: &str) -> Result<Pipeline> {
    let err = |reason: String| Error::PipelineConfig { file: source.to_owned(), reason };
    let spec: FileSpec = toml::from_str(text).map_err(|e| err(e.to_string().trim().replace('\n', " ")))?;
    let header = spec.pipeline.unwrap_or(HeaderSpec { name: None, tier: Tier::Standard });
    if spec.step.is_empty() {
        return Err(err("no [[step]] declared".into()));
    }
    let mut names: HashMap<String, usize> = HashMap::new();
    for (i, s) in spec.step.iter().enumerate() {
        if !valid_step_name(&s.name) {
            return Err(err(format!(
                "step name {:?}: use letters, digits, '_', '-', '.' (not first), at most 100",
                s.name
            )));
        }
        if names.insert(s.name.clone(), i).is_some() {
            return Err(err(format!("duplicate step name `{}`", s.name)));
        }
    }
    let mut steps = Vec::with_capacity(spec.step.len());
    let mut producers: BTreeMap<PathBuf, usize> = BTreeMap::new();
    for (i, s) in spec.step.into_iter().enumerate() {
        let name = s.name.clone();
        let serr = |reason: String| err(format!("step `{name}`: {reason}"));
        let action = match (s.command, s.function) {
            (Some(c), None) => {
                if c.is_empty() || c[0].is_empty() {
                    return Err(serr("`command` is empty".into()));
                }
                Action::Command(c)
            }
            (None, Some(f)) if !f.is_empty() => Action::Function(f),
            (None, Some(_)) => return Err(serr("`function` is empty".into())),
            (Some(_), Some(_)) => return Err(serr("declares both `command` and `function`".into())),
            (None, None) => return Err(serr("declares neither `command` nor `function`".into())),
        };
        let mut inputs = BTreeMap::new();
        for (k, p) in &s.inputs {
            if !valid_port_name(k) || p.is_empty() {
                return Err(serr(format!("input `{k}`: names are letters, digits and '_'; paths are not empty")));
            }
            inputs.insert(k.clone(), resolve(base, p));
        }
        let mut outputs = BTreeMap::new();
        for (k, p) in &s.outputs {
            if !valid_port_name(k) || p.is_empty() {
                return Err(serr(format!("output `{k}`: names are letters, digits and '_'; paths are not empty")));
            }
            let path = resolve(base, p);
            if let Some(&other) = producers.get(&path) {
                return Err(serr(format!(
                    "output `{k}` ({}) is also an output of step `{}`",
                    path.display(),
                    steps_name(&steps, other)
                )));
            }
            if inputs.values().any(|x| *x == path) {
                return Err(serr(format!("output `{k}` ({}) is also one of its inputs", path.display())));
            }
            producers.insert(path.clone(), i);
            outputs.insert(k.clone(), path);
        }
        if let Action::Command(argv) = &action {
            for arg in argv {
                for (kind, port) in placeholders(arg) {
                    let known = if kind == "in" { inputs.contains_key(port) } else { outputs.contains_key(port) };
                    if !known {
                        return Err(serr(format!("command placeholder {{{kind}:{port}}} names no declared {kind}put")));
                    }
                }
            }
        }
        for dep in &s.after {
            if !names.contains_key(dep) {
                return Err(serr(format!("`after` names unknown step `{dep}`")));
            }
        }
        if s.retries > MAX_RETRIES {
            return Err(serr(format!("retries = {} (at most {MAX_RETRIES})", s.retries)));
        }
        let timeout = match s.timeout_s {
            Some(t) if t.is_finite() && t > 0.0 && t < 1e9 => Some(Duration::from_secs_f64(t)),
            Some(t) => return Err(serr(format!("timeout_s = {t}: give a positive number of seconds"))),
            None => None,
        };
        if s.threads == 0 {
            return Err(serr("threads = 0: a step uses at least one thread".into()));
        }
        let initial = Duration::from_millis(s.backoff_ms.unwrap_or(100));
        let max = Duration::from_millis(s.backoff_max_ms.unwrap_or(10_000));
        if max < initial {
            return Err(serr("backoff_max_ms is smaller than backoff_ms".into()));
        }
        let tier = s.tier.unwrap_or(header.tier);
        if tier < header.tier {
            return Err(Error::PipelineTier {
                step: name.clone(),
                reason: format!("declares tier {tier}, looser than its pipeline's {}", header.tier),
            });
        }
        if tier == Tier::Sovereign
            && let Action::Function(f) = &action
        {
            return Err(Error::PipelineTier {
                step: name.clone(),
                reason: format!(
                    "function `{f}` would run in the runner's own process, which the deny-network tracer cannot \
                     hold to loopback; make it a command step (or use tier private/standard)"
                ),
            });
        }
        for k in s.env.keys() {
            if k.is_empty() || k.contains('=') || k.contains('\0') || k.starts_with("PIPELINE_") {
                return Err(serr(format!(
                    "env key {k:?}: empty, holds '=' or NUL, or uses the reserved PIPELINE_ prefix"
                )));
            }
        }
        let mut config = String::new();
        canonical_json(&toml::Value::Table(s.config), &mut config);
        steps.push(Step {
            name,
            action,
            inputs,
            outputs,
            after: s.after,
            deps: Vec::new(),
            retries: s.retries,
            backoff: Backoff { initial, max },
            timeout,
            threads: s.threads,
            tier,
            config,
            env: s.env,
        });
    }
    // Dependencies: declared, and the producer of every input.
    for step in &mut steps {
        let mut deps: BTreeSet<usize> = step.after.iter().map(|d| names[d]).collect();
        for (k, path) in &step.inputs {
            match producers.get(path) {
                Some(&p) => {
                    deps.insert(p);
                }
                None if path.exists() => {}
                None => {
                    return Err(err(format!(
                        "step `{}`: input `{k}` ({}) does not exist and no step produces it",
                        step.name,
                        path.display()
                    )));
                }
            }
        }
        step.deps = deps.into_iter().collect();
    }
    if let Some(cycle) = find_cycle(&steps) {
        return Err(Error::PipelineCycle {
            file: source.to_owned(),
            steps: cycle.into_iter().map(|i| steps[i].name.clone()).collect(),
        });
    }
    Ok(Pipeline {
        name: header.name.unwrap_or_else(|| stem.to_owned()),
        tier: header.tier,
        base_dir: base.to_path_buf(),
        steps,
        source: source.to_owned(),
    })
}

fn steps_name(steps: &[Step], i: usize) -> &str {
    steps.get(i).map(|s| s.name.as_str()).unwrap_or("?")
}

/// A cycle among `deps` edges (step → the steps it depends on), as indices in dependency order with
/// the first repeated last; the first found by a depth-first search in declaration order.
fn find_cycle(steps: &[Step]) -> Option<Vec<usize>> {
    // 0 = unseen, 1 = on the stack, 2 = done.
    let mut color = vec![0u8; steps.len()];
    for root in 0..steps.len() {
        if color[root] != 0 {
            continue;
        }
        // An explicit stack of (node, next dep position).
        let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
        color[root] = 1;
        while let Some(top) = stack.last_mut() {
            let node = top.0;
            if let Some(&dep) = steps[node].deps.get(top.1) {
                top.1 += 1;
                match color[dep] {
                    0 => {
                        color[dep] = 1;
                        stack.push((dep, 0));
                    }
                    1 => {
                        // dep is on the stack: the cycle runs from it to node, then back to it.
                        let from = stack.iter().position(|&(n, _)| n == dep).unwrap_or(0);
                        let mut cycle: Vec<usize> = stack[from..].iter().map(|&(n, _)| n).collect();
                        // Stack order is "depends on"; print in run order (a dependency before its user).
                        cycle.reverse();
                        cycle.push(cycle[0]);
                        return Some(cycle);
                    }
                    _ => {}
                }
            } else {
                color[node] = 2;
                stack.pop();
            }
        }
    }
    None
}
