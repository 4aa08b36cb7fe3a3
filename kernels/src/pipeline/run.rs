//! The executor: ready steps in topological order within a thread budget, each attempt in a fresh
//! staging folder, retries with backoff, timeouts that kill the process group, the sovereign tier
//! under the deny-network tracer, and the commit (outputs fsynced and renamed into place, then the
//! step's record written atomically to the state file).

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::plan::{Plan, key_parts, plan, stale_reason, topo_order};
use super::spec::{Action, Pipeline, Step, Tier, substitute};
use super::state::{KeyParts, OutputRecord, State, StateLock, StepRecord, commit_file, hash_file, io_err, tail};
use super::track::{Tracker, is_loopback_url};
use crate::tracking::{TrackingConfig, now_millis};
use crate::{Error, Result};

/// A Rust function step: reads `ctx.inputs`, writes every `ctx.outputs` path (in the staging
/// folder); an `Err` fails the attempt with its message.
pub type StepFn = Arc<dyn Fn(&StepContext) -> std::result::Result<(), String> + Send + Sync>;

/// A progress callback (called from the runner's threads).
pub type EventFn = Arc<dyn Fn(&RunEvent) + Send + Sync>;

/// What a function step is given.
#[derive(Debug, Clone)]
pub struct StepContext {
    /// The step's name.
    pub step: String,
    /// Its inputs (final paths).
    pub inputs: BTreeMap<String, PathBuf>,
    /// Where to write its outputs (in this attempt's staging folder).
    pub outputs: BTreeMap<String, PathBuf>,
    /// Its `config` table.
    pub config: serde_json::Value,
    /// The attempt, from 1.
    pub attempt: u32,
    /// Threads it may use.
    pub threads: usize,
}

/// Something that happened during a run (for progress displays).
#[derive(Debug, Clone, PartialEq)]
pub enum RunEvent {
    /// The plan is made; this many steps.
    Planned {
        /// Steps in the pipeline.
        total: usize,
    },
    /// An attempt of a step starts.
    Started {
        /// The step.
        step: String,
        /// The attempt, from 1.
        attempt: u32,
    },
    /// An attempt failed; the next starts after `delay`.
    Retrying {
        /// The step.
        step: String,
        /// The attempt that failed.
        attempt: u32,
        /// The wait before the next.
        delay: Duration,
        /// Why it failed.
        reason: String,
    },
    /// A step is settled.
    Finished {
        /// The step.
        step: String,
        /// How.
        status: StepStatus,
    },
}

/// How to run a pipeline.
#[derive(Clone, Default)]
pub struct RunConfig {
    /// The state folder (state file, lock, staging, logs); `<base_dir>/.sovereign-pipeline` if `None`.
    pub state_dir: Option<PathBuf>,
    /// The thread budget (0: the machine's available parallelism).
    pub threads: usize,
    /// Run every step, whatever is recorded.
    pub force: bool,
    /// Only make the plan.
    pub dry_run: bool,
    /// The Rust functions function steps name.
    pub functions: BTreeMap<String, StepFn>,
    /// Log to this MLflow server.
    pub tracking: Option<TrackingConfig>,
    /// The MLflow experiment (`pipelines` when empty).
    pub experiment: String,
    /// The `sovereign` binary whose `trace --deny-network` runs sovereign-tier command steps; the
    /// current executable when it is named `sovereign`.
    pub tracer: Option<PathBuf>,
    /// Progress callback.
    pub on_event: Option<EventFn>,
}

/// How a step ended in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Executed and committed.
    Ran,
    /// Skipped: its recorded outputs stand.
    Cached,
    /// Failed (its error is in the report).
    Failed,
    /// Not run: a step it depends on failed.
    NotRun,
}

/// One step's result.
#[derive(Debug)]
pub struct StepReport {
    /// The step.
    pub name: String,
    /// How it ended.
    pub status: StepStatus,
    /// Attempts made (0 when cached or not run).
    pub attempts: u32,
    /// Wall time of its attempts, seconds.
    pub duration_s: f64,
    /// Its cache key (when its inputs were known).
    pub key: Option<String>,
    /// Why it failed or was not run.
    pub error: Option<Error>,
    /// Its MLflow run.
    pub mlflow_run_id: Option<String>,
}

/// The result of [`run`].
#[derive(Debug)]
pub struct RunReport {
    /// The plan made before running (with `dry_run`, the whole result).
    pub plan: Plan,
    /// Every step, in topological order (empty for a dry run).
    pub steps: Vec<StepReport>,
    /// The parent MLflow run.
    pub mlflow_run_id: Option<String>,
    /// MLflow calls that failed after the run started (never fatal).
    pub tracking_errors: Vec<String>,
    /// Wall time, seconds.
    pub duration_s: f64,
}

impl RunReport {
    /// Names of the steps with `status`, in topological order.
    pub fn with_status(&self, status: StepStatus) -> Vec<&str> {
        self.steps.iter().filter(|s| s.status == status).map(|s| s.name.as_str()).collect()
    }

    /// The report of step `name`.
    pub fn step(&self, name: &str) -> Option<&StepReport> {
        self.steps.iter().find(|s| s.name == name)
    }

    /// Whether every step ran or was cached.
    pub fn ok(&self) -> bool {
        self.steps.iter().all(|s| matches!(s.status, StepStatus::Ran | StepStatus::Cached))
    }

    /// The report, or the first failed step's error (in topological order).
    pub fn into_result(mut self) -> Result<RunReport> {
        match self.steps.iter_mut().find(|s| s.status == StepStatus::Failed).and_then(|s| s.error.take()) {
            Some(e) => Err(e),
            None => Ok(self),
        }
    }
}

/// The state folder `config` names for `pipeline`.
pub fn state_dir(pipeline: &Pipeline, config: &RunConfig) -> PathBuf {
    config.state_dir.clone().unwrap_or_else(|| pipeline.base_dir.join(".sovereign-pipeline"))
}

/// Why an attempt failed.
enum AttemptError {
    Failed { reason: String, stderr_tail: String },
    Timeout,
    Denied { call: String, addr: String },
    Fatal(Error),
}

impl AttemptError {
    fn retryable(&self) -> bool {
        matches!(self, AttemptError::Failed { .. } | AttemptError::Timeout)
    }

    fn describe(&self) -> String {
        match self {
            AttemptError::Failed { reason, .. } => reason.clone(),
            AttemptError::Timeout => "timed out".into(),
            AttemptError::Denied { call, addr } => format!("{call} to {addr} denied"),
            AttemptError::Fatal(e) => e.to_string(),
        }
    }

    fn into_error(self, step: &Step, attempts: u32) -> Error {
        match self {
            AttemptError::Failed { reason, stderr_tail } => {
                Error::PipelineStepFailed { step: step.name.clone(), attempts, reason, stderr_tail }
            }
            AttemptError::Timeout => Error::PipelineStepTimeout {
                step: step.name.clone(),
                timeout_s: step.timeout.map(|t| t.as_secs_f64()).unwrap_or(0.0),
                attempts,
            },
            AttemptError::Denied { call, addr } => Error::PipelineNetworkDenied { step: step.name.clone(), call, addr },
            AttemptError::Fatal(e) => e,
        }
    }
}

/// What every worker shares.
struct Shared<'a> {
    pipeline: &'a Pipeline,
    config: &'a RunConfig,
    state_dir: PathBuf,
    logs_dir: PathBuf,
    tracer: Option<PathBuf>,
    state: Mutex<State>,
}

impl Shared<'_> {
    fn emit(&self, event: RunEvent) {
        if let Some(f) = &self.config.on_event {
            f(&event);
        }
    }
}

/// The tracer for sovereign command steps, or why there is none.
fn find_tracer(config: &RunConfig) -> Option<PathBuf> {
    if let Some(t) = &config.tracer {
        return Some(t.clone());
    }
    let exe = std::env::current_exe().ok()?;
    (exe.file_stem().and_then(|s| s.to_str()) == Some("sovereign")).then_some(exe)
}

/// Checks what must hold before anything runs: functions registered, a tracer for sovereign
/// command steps, a loopback MLflow server when a step is sovereign.
fn preflight(pipeline: &Pipeline, config: &RunConfig) -> Result<Option<PathBuf>> {
    let mut needs_tracer = false;
    for step in &pipeline.steps {
        match &step.action {
            Action::Function(f) if !config.functions.contains_key(f) => {
                return Err(Error::PipelineConfig {
                    file: pipeline.source.clone(),
                    reason: format!("step `{}`: function `{f}` is not registered in RunConfig::functions", step.name),
                });
            }
            Action::Command(_) if step.tier == Tier::Sovereign => needs_tracer = true,
            _ => {}
        }
        if step.tier == Tier::Sovereign
            && let Some(t) = &config.tracking
            && !is_loopback_url(&t.base_url)
        {
            return Err(Error::PipelineTier {
                step: step.name.clone(),
                reason: format!(
                    "the MLflow server {} is not loopback; a sovereign step's logs and parameters may not leave the machine",
                    t.base_url
                ),
            });
        }
    }
    if !needs_tracer {
        return Ok(None);
    }
    match find_tracer(config) {
        Some(t) if t.is_file() => Ok(Some(t)),
        other => {
            let step = pipeline.steps.iter().find(|s| s.tier == Tier::Sovereign).map(|s| s.name.clone());
            Err(Error::PipelineTier {
                step: step.unwrap_or_default(),
                reason: format!(
                    "no tracer to hold sovereign command steps to loopback (RunConfig::tracer = {:?}: give the \
                     `sovereign` binary)",
                    other
                ),
            })
        }
    }
}

/// Runs `pipeline`: blocking (do not call it from inside an async runtime; use `spawn_blocking`).
///
/// Errors before anything runs (a missing function, a tier that cannot be enforced, the state lock
/// held, MLflow unreachable at the start) are returned as `Err`; a step's failure is in the report
/// ([`RunReport::into_result`] turns it into the error).
pub fn run(pipeline: &Pipeline, config: &RunConfig) -> Result<RunReport> {
    let started = Instant::now();
    let dir = state_dir(pipeline, config);
    if config.dry_run {
        let state = State::load(&dir)?;
        let plan = plan(pipeline, &state, config.force)?;
        return Ok(RunReport {
            plan,
            steps: Vec::new(),
            mlflow_run_id: None,
            tracking_errors: Vec::new(),
            duration_s: started.elapsed().as_secs_f64(),
        });
    }
    let tracer = preflight(pipeline, config)?;
    let _lock = StateLock::acquire(&dir)?;
    let staging = dir.join("staging");
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(io_err("(state)", &staging))?;
    }
    let logs_dir = dir.join("logs");
    std::fs::create_dir_all(&logs_dir).map_err(io_err("(state)", &logs_dir))?;
    let state = State::load(&dir)?;
    let the_plan = plan(pipeline, &state, config.force)?;
    let budget = if config.threads == 0 {
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    } else {
        config.threads
    };
    let mut tracker = match &config.tracking {
        Some(t) => {
            let experiment = if config.experiment.is_empty() { "pipelines" } else { config.experiment.as_str() };
            Some(Tracker::start(t, experiment, pipeline, &dir, budget)?)
        }
        None => None,
    };
    let shared = Shared { pipeline, config, state_dir: dir, logs_dir, tracer, state: Mutex::new(state) };
    shared.emit(RunEvent::Planned { total: pipeline.steps.len() });
    let reports = schedule(&shared, budget, tracker.as_mut());
    let ok = reports.iter().all(|s| matches!(s.status, StepStatus::Ran | StepStatus::Cached));
    let count = |st: StepStatus| reports.iter().filter(|s| s.status == st).count() as f64;
    let duration_s = started.elapsed().as_secs_f64();
    let (mlflow_run_id, tracking_errors) = match tracker {
        Some(t) => {
            let id = t.parent_id().to_owned();
            let counts = [
                ("steps_ran", count(StepStatus::Ran)),
                ("steps_cached", count(StepStatus::Cached)),
                ("steps_failed", count(StepStatus::Failed) + count(StepStatus::NotRun)),
                ("duration_s", duration_s),
            ];
            (Some(id), t.finish(ok, counts))
        }
        None => (None, Vec::new()),
    };
    Ok(RunReport { plan: the_plan, steps: reports, mlflow_run_id, tracking_errors, duration_s })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Slot {
    Pending,
    Running,
    Done,
    Failed,
}

/// A worker's answer: the record committed (or the error), attempts, seconds.
type Outcome = (Result<()>, u32, f64);

fn schedule(shared: &Shared<'_>, budget: usize, mut tracker: Option<&mut Tracker>) -> Vec<StepReport> {
    let p = shared.pipeline;
    let n = p.steps.len();
    let order = topo_order(p);
    let mut slots = vec![Slot::Pending; n];
    let mut reports: Vec<Option<StepReport>> = (0..n).map(|_| None).collect();
    let mut runs: Vec<Option<crate::tracking::RunInfo>> = vec![None; n];
    let mut keys: Vec<Option<String>> = vec![None; n];
    let mut waiting: Vec<Option<KeyParts>> = vec![None; n];
    let (tx, rx) = mpsc::channel::<(usize, Outcome)>();
    let mut in_use = 0usize;
    let mut running = 0usize;
    let report = |name: &str, status, attempts, duration_s, key, error, run_id| StepReport {
        name: name.to_owned(),
        status,
        attempts,
        duration_s,
        key,
        error,
        mlflow_run_id: run_id,
    };
    std::thread::scope(|scope| {
        loop {
            for &i in &order {
                if slots[i] != Slot::Pending {
                    continue;
                }
                let step = &p.steps[i];
                if let Some(&d) = step.deps.iter().find(|&&d| slots[d] == Slot::Failed) {
                    slots[i] = Slot::Failed;
                    let run_id = tracker.as_deref_mut().and_then(|t| t.step_skipped(step, None, "upstream_failed"));
                    let err =
                        Error::PipelineUpstreamFailed { step: step.name.clone(), failed: p.steps[d].name.clone() };
                    reports[i] = Some(report(&step.name, StepStatus::NotRun, 0, 0.0, None, Some(err), run_id));
                    shared.emit(RunEvent::Finished { step: step.name.clone(), status: StepStatus::NotRun });
                    continue;
                }
                if !step.deps.iter().all(|&d| slots[d] == Slot::Done) {
                    continue;
                }
                // The cache decision is made once, when the step becomes ready (its inputs final).
                let parts = match waiting[i].take() {
                    Some(parts) => parts,
                    None => {
                        let decided = {
                            let state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
                            key_parts(step, &state).map(|parts| {
                                let fresh = stale_reason(step, &parts, state.steps.get(&step.name)).is_none();
                                (parts, fresh)
                            })
                        };
                        let (parts, fresh) = match decided {
                            Ok(x) => x,
                            Err(e) => {
                                slots[i] = Slot::Failed;
                                reports[i] = Some(report(&step.name, StepStatus::Failed, 0, 0.0, None, Some(e), None));
                                shared.emit(RunEvent::Finished { step: step.name.clone(), status: StepStatus::Failed });
                                continue;
                            }
                        };
                        if fresh && !shared.config.force {
                            let key = parts.key();
                            slots[i] = Slot::Done;
                            let run_id =
                                tracker.as_deref_mut().and_then(|t| t.step_skipped(step, Some(&key), "cached"));
                            reports[i] = Some(report(&step.name, StepStatus::Cached, 0, 0.0, Some(key), None, run_id));
                            shared.emit(RunEvent::Finished { step: step.name.clone(), status: StepStatus::Cached });
                            continue;
                        }
                        parts
                    }
                };
                // Within the thread budget (a step asking for more than the budget runs alone).
                let need = step.threads.min(budget);
                if in_use + need > budget {
                    waiting[i] = Some(parts);
                    continue;
                }
                let key = parts.key();
                in_use += need;
                running += 1;
                slots[i] = Slot::Running;
                runs[i] = tracker.as_deref_mut().and_then(|t| t.step_started(step, &key));
                keys[i] = Some(key.clone());
                let tx = tx.clone();
                scope.spawn(move || {
                    let outcome = execute(shared, step, parts, key);
                    let _ = tx.send((i, outcome));
                });
            }
            if running == 0 {
                break;
            }
            let Ok((i, (result, attempts, duration_s))) = rx.recv() else { break };
            let step = &p.steps[i];
            running -= 1;
            in_use -= step.threads.min(budget);
            let ok = result.is_ok();
            if let (Some(t), Some(run)) = (tracker.as_deref_mut(), &runs[i]) {
                let logs = [log_path(shared, step, "stdout"), log_path(shared, step, "stderr")];
                t.step_finished(step, run, ok, attempts, duration_s, &logs);
            }
            let status = if ok { StepStatus::Ran } else { StepStatus::Failed };
            slots[i] = if ok { Slot::Done } else { Slot::Failed };
            let run_id = runs[i].as_ref().map(|r| r.run_id.clone());
            reports[i] = Some(report(&step.name, status, attempts, duration_s, keys[i].take(), result.err(), run_id));
            shared.emit(RunEvent::Finished { step: step.name.clone(), status });
        }
    });
    order.iter().filter_map(|&i| reports[i].take()).collect()
}

fn log_path(shared: &Shared<'_>, step: &Step, stream: &str) -> PathBuf {
    shared.logs_dir.join(format!("{}.{stream}", step.name))
}

/// Every attempt of one step, then its commit.
fn execute(shared: &Shared<'_>, step: &Step, parts: KeyParts, key: String) -> Outcome {
    let started = Instant::now();
    let attempts_allowed = step.retries + 1;
    let mut attempt = 1;
    loop {
        shared.emit(RunEvent::Started { step: step.name.clone(), attempt });
        let t0 = Instant::now();
        let staging = shared.state_dir.join("staging").join(format!("{}.{}.{attempt}", step.name, std::process::id()));
        let result = attempt_once(shared, step, attempt, &staging);
        let result = match result {
            Ok(staged) => commit(shared, step, &parts, &key, &staged, attempt, t0.elapsed().as_secs_f64())
                .map_err(AttemptError::Fatal),
            Err(e) => Err(e),
        };
        let _ = std::fs::remove_dir_all(&staging);
        match result {
            Ok(()) => return (Ok(()), attempt, started.elapsed().as_secs_f64()),
            Err(e) if e.retryable() && attempt < attempts_allowed => {
                let delay = step.backoff.delay(attempt);
                shared.emit(RunEvent::Retrying { step: step.name.clone(), attempt, delay, reason: e.describe() });
                std::thread::sleep(delay);
                attempt += 1;
            }
            Err(e) => return (Err(e.into_error(step, attempt)), attempt, started.elapsed().as_secs_f64()),
        }
    }
}

/// Fsyncs and renames the staged outputs into place, then records the step in the state file.
fn commit(
    shared: &Shared<'_>,
    step: &Step,
    parts: &KeyParts,
    key: &str,
    staged: &BTreeMap<String, PathBuf>,
    attempts: u32,
    duration_s: f64,
) -> Result<()> {
    let mut outputs = BTreeMap::new();
    for (name, dest) in &step.outputs {
        let src = &staged[name];
        let (blake3, bytes) = hash_file(src, &step.name)?;
        commit_file(src, dest, &step.name)?;
        outputs.insert(name.clone(), OutputRecord { path: dest.clone(), blake3, bytes });
    }
    let record = StepRecord {
        key: key.to_owned(),
        parts: parts.clone(),
        outputs,
        attempts,
        duration_s,
        finished_unix_ms: now_millis(),
    };
    let mut state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
    state.steps.insert(step.name.clone(), record);
    state.save(&shared.state_dir)
}

fn env_name(port: &str) -> String {
    port.to_ascii_uppercase()
}

/// One attempt in `staging`; the staged output paths when it succeeded.
fn attempt_once(
    shared: &Shared<'_>,
    step: &Step,
    attempt: u32,
    staging: &Path,
) -> std::result::Result<BTreeMap<String, PathBuf>, AttemptError> {
    let fatal = |e: Error| AttemptError::Fatal(e);
    let _ = std::fs::remove_dir_all(staging);
    std::fs::create_dir_all(staging).map_err(io_err(&step.name, staging)).map_err(fatal)?;
    let staged: BTreeMap<String, PathBuf> = step.outputs.keys().map(|k| (k.clone(), staging.join(k))).collect();
    let stdout_path = log_path(shared, step, "stdout");
    let stderr_path = log_path(shared, step, "stderr");
    match &step.action {
        Action::Command(template) => {
            let base = &shared.pipeline.base_dir;
            let argv: Vec<String> = template.iter().map(|a| substitute(a, base, &step.inputs, &staged)).collect();
            let stdout = File::create(&stdout_path).map_err(io_err(&step.name, &stdout_path)).map_err(fatal)?;
            let stderr = File::create(&stderr_path).map_err(io_err(&step.name, &stderr_path)).map_err(fatal)?;
            let audit_log = shared.logs_dir.join(format!("{}.audit.jsonl", step.name));
            let sovereign = step.tier == Tier::Sovereign;
            let mut cmd = if sovereign {
                let _ = std::fs::remove_file(&audit_log);
                let tracer = shared.tracer.clone().unwrap_or_else(|| PathBuf::from("sovereign"));
                let mut c = Command::new(tracer);
                c.arg("trace").arg("--deny-network").arg("--log").arg(&audit_log).arg("--").args(&argv);
                c
            } else {
                let mut c = Command::new(&argv[0]);
                c.args(&argv[1..]);
                c
            };
            cmd.current_dir(base).stdin(Stdio::null()).stdout(stdout).stderr(stderr).process_group(0);
            cmd.env("PIPELINE_STEP", &step.name)
                .env("PIPELINE_ATTEMPT", attempt.to_string())
                .env("PIPELINE_STAGING", staging)
                .env("PIPELINE_BASE", base)
                .env("PIPELINE_CONFIG", &step.config)
                .env("PIPELINE_THREADS", step.threads.to_string())
                .env("OMP_NUM_THREADS", step.threads.to_string())
                .env("RAYON_NUM_THREADS", step.threads.to_string());
            for (k, p) in &step.inputs {
                cmd.env(format!("PIPELINE_IN_{}", env_name(k)), p);
            }
            for (k, p) in &staged {
                cmd.env(format!("PIPELINE_OUT_{}", env_name(k)), p);
            }
            cmd.envs(&step.env);
            // SAFETY: runs in the forked child before exec; prctl(2) and getppid(2) are
            // async-signal-safe and touch no memory of the parent.
            unsafe {
                let parent = libc::getpid();
                cmd.pre_exec(move || {
                    // Killed with the runner's thread (a SIGKILLed runner leaves no step behind).
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
                    if libc::getppid() != parent {
                        libc::_exit(137);
                    }
                    Ok(())
                });
            }
            let mut child = match cmd.spawn() {
                Ok(c) => c,
                Err(e) => {
                    return Err(AttemptError::Failed {
                        reason: format!("cannot start {}: {e}", if sovereign { "the tracer" } else { &argv[0] }),
                        stderr_tail: String::new(),
                    });
                }
            };
            let deadline = step.timeout.map(|t| Instant::now() + t);
            let mut pause = Duration::from_millis(1);
            let status = loop {
                match child.try_wait() {
                    Ok(Some(status)) => break status,
                    Ok(None) => {}
                    Err(e) => {
                        return Err(fatal(Error::PipelineIo {
                            step: step.name.clone(),
                            path: argv[0].clone().into(),
                            source: e,
                        }));
                    }
                }
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    // SAFETY: kill(2) of the process group this function created (process_group(0)).
                    unsafe { libc::killpg(child.id() as libc::pid_t, libc::SIGKILL) };
                    let _ = child.wait();
                    return Err(AttemptError::Timeout);
                }
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(20));
            };
            if sovereign && let Some((call, addr)) = denied(&audit_log) {
                return Err(AttemptError::Denied { call, addr });
            }
            if !status.success() {
                let reason = match (status.code(), std::os::unix::process::ExitStatusExt::signal(&status)) {
                    (Some(c), _) => format!("exit code {c}"),
                    (None, Some(s)) => format!("killed by signal {s}"),
                    _ => "failed".to_owned(),
                };
                return Err(AttemptError::Failed { reason, stderr_tail: tail(&stderr_path, 3) });
            }
        }
        Action::Function(name) => {
            let _ = File::create(&stdout_path);
            let f = shared.config.functions.get(name).cloned().ok_or_else(|| {
                fatal(Error::PipelineConfig {
                    file: shared.pipeline.source.clone(),
                    reason: format!("step `{}`: function `{name}` is not registered", step.name),
                })
            })?;
            let ctx = StepContext {
                step: step.name.clone(),
                inputs: step.inputs.clone(),
                outputs: staged.clone(),
                config: serde_json::from_str(&step.config).unwrap_or(serde_json::Value::Null),
                attempt,
                threads: step.threads,
            };
            let (tx, rx) = mpsc::channel();
            // A thread of its own, so that a timeout can abandon it (its staging folder is discarded).
            std::thread::spawn(move || {
                let _ = tx.send(f(&ctx));
            });
            let answer = match step.timeout {
                Some(t) => rx.recv_timeout(t).map_err(|e| matches!(e, mpsc::RecvTimeoutError::Timeout)),
                None => rx.recv().map_err(|_| false),
            };
            let failure = match answer {
                Ok(Ok(())) => None,
                Ok(Err(message)) => Some(message),
                Err(true) => return Err(AttemptError::Timeout),
                Err(false) => Some("the function panicked".to_owned()),
            };
            let _ = std::fs::write(&stderr_path, failure.as_deref().unwrap_or(""));
            if let Some(reason) = failure {
                return Err(AttemptError::Failed { reason, stderr_tail: String::new() });
            }
        }
    }
    for (k, p) in &staged {
        if !p.is_file() {
            return Err(AttemptError::Failed {
                reason: format!("finished without writing output `{k}`"),
                stderr_tail: tail(&stderr_path, 3),
            });
        }
    }
    Ok(staged)
}

/// The first denied network call in a tracer's log: (call, address).
fn denied(log: &Path) -> Option<(String, String)> {
    let (_, events) = crate::audit::read_log(log).ok()?;
    events.into_iter().find_map(|e| {
        e.violation.as_ref()?;
        let addr = match e.detail.addr.as_ref()? {
            crate::audit::SockAddr::Inet { addr } => addr.to_string(),
            crate::audit::SockAddr::Inet6 { addr } => addr.to_string(),
            other => other.to_string(),
        };
        Some((e.name.clone(), addr))
    })
}
