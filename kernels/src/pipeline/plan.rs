//! The plan: a topological order (ties broken by declaration order), each step's cache key, and
//! which steps run or are cached, and why.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::fmt;

use serde::Serialize;

use super::spec::{Action, Pipeline, Step};
use super::state::{KeyParts, State, StepRecord, hash_file, hash_path};
use crate::Result;

/// The steps' indices in a topological order: every step after the steps it depends on; among the
/// steps ready at once, the one declared first (Kahn's algorithm with a min-heap, which gives the
/// lexicographically smallest order by declaration index).
pub fn topo_order(pipeline: &Pipeline) -> Vec<usize> {
    let n = pipeline.steps.len();
    let mut indegree: Vec<usize> = pipeline.steps.iter().map(|s| s.deps.len()).collect();
    let mut users: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, s) in pipeline.steps.iter().enumerate() {
        for &d in &s.deps {
            users[d].push(i);
        }
    }
    let mut ready: BinaryHeap<Reverse<usize>> = (0..n).filter(|&i| indegree[i] == 0).map(Reverse).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(Reverse(i)) = ready.pop() {
        order.push(i);
        for &u in &users[i] {
            indegree[u] -= 1;
            if indegree[u] == 0 {
                ready.push(Reverse(u));
            }
        }
    }
    order
}

/// Why a step runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "reason", content = "name")]
pub enum Reason {
    /// `--force`.
    Forced,
    /// No completed run is recorded.
    NeverRan,
    /// A step it depends on runs first, so its inputs are not known yet.
    UpstreamRuns(String),
    /// Its command or function changed.
    ActionChanged,
    /// Its `config` table changed.
    ConfigChanged,
    /// Its `env` table changed.
    EnvChanged,
    /// Its tier changed.
    TierChanged,
    /// The content of this input changed.
    InputChanged(String),
    /// Its outputs were renamed, added or removed.
    OutputsChanged,
    /// The step declared in `after` completed with another key.
    AfterChanged(String),
    /// This output is missing.
    OutputMissing(String),
    /// This output's bytes differ from those committed.
    OutputModified(String),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Forced => write!(f, "forced"),
            Reason::NeverRan => write!(f, "never completed"),
            Reason::UpstreamRuns(s) => write!(f, "upstream step {s} runs"),
            Reason::ActionChanged => write!(f, "command changed"),
            Reason::ConfigChanged => write!(f, "config changed"),
            Reason::EnvChanged => write!(f, "env changed"),
            Reason::TierChanged => write!(f, "tier changed"),
            Reason::InputChanged(s) => write!(f, "input {s} changed"),
            Reason::OutputsChanged => write!(f, "outputs declared differently"),
            Reason::AfterChanged(s) => write!(f, "step {s} (after) completed again"),
            Reason::OutputMissing(s) => write!(f, "output {s} missing"),
            Reason::OutputModified(s) => write!(f, "output {s} modified"),
        }
    }
}

/// A step's fate in a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "decision")]
pub enum Decision {
    /// It runs.
    Run {
        /// Why.
        why: Reason,
    },
    /// Its recorded outputs stand (same key, outputs present with their recorded hashes).
    Cached,
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedStep {
    /// Its index in the pipeline.
    pub index: usize,
    /// Its name.
    pub name: String,
    /// Run or cached.
    pub decision: Decision,
    /// Its cache key now (`None` while an upstream step must run first).
    pub key: Option<String>,
}

/// What a run would do, in execution order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// Every step, in [`topo_order`].
    pub steps: Vec<PlannedStep>,
}

impl Plan {
    /// The names of the steps that run, in order.
    pub fn to_run(&self) -> Vec<&str> {
        self.steps.iter().filter(|s| matches!(s.decision, Decision::Run { .. })).map(|s| s.name.as_str()).collect()
    }

    /// A text table: one line per step, `run` or `cached` and why.
    pub fn render(&self, pipeline: &Pipeline) -> String {
        let mut out = String::new();
        for (n, s) in self.steps.iter().enumerate() {
            let step = &pipeline.steps[s.index];
            let what = match &step.action {
                Action::Command(argv) => argv.join(" "),
                Action::Function(f) => format!("fn {f}"),
            };
            let decision = match &s.decision {
                Decision::Run { why } => format!("run    ({why})"),
                Decision::Cached => "cached".to_owned(),
            };
            let deps: Vec<&str> = step.deps.iter().map(|&d| pipeline.steps[d].name.as_str()).collect();
            out.push_str(&format!(
                "{:>3}. {:<20} {:<40} tier={} threads={}{} :: {what}\n",
                n + 1,
                s.name,
                decision,
                step.tier,
                step.threads,
                if deps.is_empty() { String::new() } else { format!(" after={}", deps.join(",")) },
            ));
        }
        out
    }
}

fn hash_str(s: &str) -> String {
    blake3::hash(s.as_bytes()).to_hex().to_string()
}

/// The parts of `step`'s cache key from the files as they are now (its inputs must exist).
pub fn key_parts(step: &Step, state: &State) -> Result<KeyParts> {
    let action = match &step.action {
        Action::Command(argv) => hash_str(&serde_json::to_string(argv).unwrap_or_default()),
        Action::Function(f) => hash_str(&format!("fn:{f}")),
    };
    let mut inputs = BTreeMap::new();
    for (k, p) in &step.inputs {
        inputs.insert(k.clone(), hash_path(p, &step.name)?);
    }
    let after =
        step.after.iter().map(|a| (a.clone(), state.steps.get(a).map(|r| r.key.clone()).unwrap_or_default())).collect();
    Ok(KeyParts {
        action,
        config: hash_str(&step.config),
        env: hash_str(&serde_json::to_string(&step.env).unwrap_or_default()),
        tier: step.tier.as_str().to_owned(),
        inputs,
        outputs: step.outputs.clone(),
        after,
    })
}

/// Why `step` must run given its key parts now and its record (`None`: it is cached).
pub fn stale_reason(step: &Step, parts: &KeyParts, record: Option<&StepRecord>) -> Option<Reason> {
    let Some(rec) = record else { return Some(Reason::NeverRan) };
    if rec.key != parts.key() {
        let old = &rec.parts;
        if old.action != parts.action {
            return Some(Reason::ActionChanged);
        }
        if old.config != parts.config {
            return Some(Reason::ConfigChanged);
        }
        if old.env != parts.env {
            return Some(Reason::EnvChanged);
        }
        if old.tier != parts.tier {
            return Some(Reason::TierChanged);
        }
        if old.outputs != parts.outputs {
            return Some(Reason::OutputsChanged);
        }
        for (k, h) in &parts.inputs {
            if old.inputs.get(k) != Some(h) {
                return Some(Reason::InputChanged(k.clone()));
            }
        }
        for (k, h) in &parts.after {
            if old.after.get(k) != Some(h) {
                return Some(Reason::AfterChanged(k.clone()));
            }
        }
        return Some(Reason::InputChanged(parts.inputs.keys().next().cloned().unwrap_or_default()));
    }
    for (name, path) in &step.outputs {
        let Some(out) = rec.outputs.get(name) else { return Some(Reason::OutputsChanged) };
        if !path.is_file() {
            return Some(Reason::OutputMissing(name.clone()));
        }
        match hash_file(path, &step.name) {
            Ok((h, len)) if h == out.blake3 && len == out.bytes => {}
            _ => return Some(Reason::OutputModified(name.clone())),
        }
    }
    None
}

/// What [`super::run`] would do now: each step in [`topo_order`], run (and why) or cached.
pub fn plan(pipeline: &Pipeline, state: &State, force: bool) -> Result<Plan> {
    let mut runs = vec![false; pipeline.steps.len()];
    let mut steps = Vec::with_capacity(pipeline.steps.len());
    for i in topo_order(pipeline) {
        let step = &pipeline.steps[i];
        let upstream = step.deps.iter().find(|&&d| runs[d]).map(|&d| pipeline.steps[d].name.clone());
        let (decision, key) = if force {
            (Decision::Run { why: Reason::Forced }, None)
        } else if let Some(up) = upstream {
            (Decision::Run { why: Reason::UpstreamRuns(up) }, None)
        } else {
            let parts = key_parts(step, state)?;
            match stale_reason(step, &parts, state.steps.get(&step.name)) {
                Some(why) => (Decision::Run { why }, Some(parts.key())),
                None => (Decision::Cached, Some(parts.key())),
            }
        };
        runs[i] = matches!(decision, Decision::Run { .. });
        steps.push(PlannedStep { index: i, name: step.name.clone(), decision, key });
    }
    Ok(Plan { steps })
}
