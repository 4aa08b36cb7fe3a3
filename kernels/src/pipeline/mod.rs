//! A DAG pipeline runner (batuta's orchestration role): steps declared in TOML, run in dependency
//! order, skipped when the BLAKE3 of their inputs, command and config is unchanged, outputs
//! written atomically, resumable after a kill, with retries, timeouts, MLflow logging and privacy
//! tiers.
//!
//! ```toml
//! [pipeline]
//! name = "fraud"
//! tier = "private"                      # the default of every step; a step may only be stricter
//!
//! [[step]]
//! name = "features"
//! command = ["python3", "features.py", "{in:raw}", "{out:table}"]   # argv, no shell
//! inputs = { raw = "data/raw.csv" }    # paths relative to the file's folder
//! outputs = { table = "work/features.parquet" }
//! config = { window_days = 30 }        # part of the cache key; PIPELINE_CONFIG (JSON)
//! retries = 2                          # extra attempts; backoff_ms = 100, backoff_max_ms = 10000
//! timeout_s = 600.0
//! threads = 2
//!
//! [[step]]
//! name = "train"
//! function = "train"                   # a Rust function of RunConfig::functions
//! inputs = { table = "work/features.parquet" }   # produced by `features`: an implied dependency
//! outputs = { model = "work/model.json" }
//! after = []                           # ordering-only dependencies (their keys join this one's)
//! ```
//!
//! | piece | what it does |
//! |---|---|
//! | [`Pipeline::from_toml`], [`Pipeline::from_file`] | parse and validate: unknown keys, duplicate steps, unknown `after`, an output of two steps, a missing input, a bad placeholder, cycles (named with their steps) — all typed errors before anything runs |
//! | [`topo_order`], [`plan`] | the execution order (ties broken by declaration order) and, per step, run (and why) or cached |
//! | [`run`], [`RunConfig`], [`RunReport`] | execution within a thread budget, retries, timeouts, commits, MLflow |
//! | [`State`] | the state file: each completed step's cache key, key parts and output hashes |
//!
//! **Commands** are argv arrays run without a shell, in the pipeline file's folder, with
//! `{in:NAME}` (the input's path), `{out:NAME}` (where to write the output, in the attempt's staging
//! folder) and `{base}` replaced, and the same as environment variables `PIPELINE_IN_<NAME>`,
//! `PIPELINE_OUT_<NAME>` (upper case), plus `PIPELINE_STEP`, `PIPELINE_ATTEMPT`, `PIPELINE_STAGING`,
//! `PIPELINE_CONFIG`, `PIPELINE_THREADS` (= `OMP_NUM_THREADS` = `RAYON_NUM_THREADS`). Each runs in a new
//! process group (a timeout kills the group) and dies with the runner (`PR_SET_PDEATHSIG`). Its stdout
//! and stderr go to `<state>/logs/<step>.stdout|.stderr` (the last attempt's).
//!
//! **Caching.** A step's key is the BLAKE3 of its [`KeyParts`]: the argv template (or function
//! name), the canonical `config` JSON, `env`, the tier, each input's content hash (a folder: its
//! files' paths and contents), the output names and paths, and the recorded keys of its `after`
//! steps. A step is cached when the state file holds the same key and every output is on disk with
//! its recorded BLAKE3 and size; otherwise it runs ([`Reason`] says why). Retries, timeouts and
//! `threads` are not part of the key. A function step's key covers only its name and config: put a
//! version in its `config` when its code changes.
//!
//! **Atomic outputs and resume.** An attempt writes into `<state>/staging/<step>.<pid>.<attempt>/`.
//! Only after it succeeds (exit 0 and every declared output written) is each output fsynced and
//! renamed over its final path (a copy to a temp file beside it, then a rename, across file
//! systems), the folders fsynced, and the step's record written to `<state>/state.json` through a
//! temp file, fsync and rename. A runner killed at any point leaves either the old or the new state
//! file and no partial output under a final path; the next run (which clears `staging/`) skips every
//! step whose record stands and reruns the rest. A step killed after its outputs were renamed but
//! before its record was written runs again and writes the same bytes. One runner at a time per
//! state folder (`flock` on `<state>/lock`).
//!
//! **Retries** (`retries`, `backoff_ms`, `backoff_max_ms`): after failed attempt `k` the runner waits
//! `min(backoff_max, backoff · 2^(k-1))` — deterministic, no jitter. Non-zero exits, missing outputs,
//! function errors and timeouts are retried; a denied network call is not (the policy would deny it
//! again). A failed step's descendants are not run; independent branches finish.
//!
//! **Privacy tiers** (as `kernels::gateway`'s: `sovereign` ⊂ `private` ⊂ `standard` destinations). A
//! step may be stricter than its pipeline, never looser. A **sovereign command step** runs under
//! `sovereign trace --deny-network --log …` (`kernels::audit`'s ptrace tracer, in a process of its own so
//! that the step keeps its own stdio, process group and timeout): any `connect`/`sendto`/`sendmsg` to
//! an address other than loopback, a Unix or a netlink socket is denied with `EACCES`, and the step
//! fails with [`crate::Error::PipelineNetworkDenied`] naming the address read from the tracer's
//! hash-chained log; nothing of its outputs is committed. The tracer is `RunConfig::tracer`, or the
//! running executable when it is `sovereign`; without one the run refuses to start. A **sovereign
//! function step is refused** when the file is read ([`crate::Error::PipelineTier`]): in-process Rust
//! code cannot be held to loopback by a tracer of the same process, so it must become a command
//! step (for instance a small binary) or declare a looser tier. A run with a sovereign step refuses a
//! non-loopback MLflow server. `private` is declared and logged, not traced.
//!
//! **MLflow** ([`RunConfig::tracking`]): one parent run per pipeline run (params: pipeline, tier,
//! steps, threads; metrics: steps_ran, steps_cached, steps_failed, duration_s; FINISHED or FAILED);
//! one nested run per step (tag `mlflow.parentRunId`, `sovereign.pipeline.step`; params command,
//! cache_key, tier, threads, retries, timeout_s; metrics duration_s, attempts; artefacts
//! `logs/<step>.stdout|.stderr`; FINISHED or FAILED). Cached steps get a FINISHED run tagged
//! `sovereign.pipeline.skipped = cached`; steps not run after a failure a KILLED run tagged
//! `upstream_failed`. Runs a killed runner left open (`<state>/mlflow-open.json`) are ended as KILLED
//! by the next run. Failures of MLflow after the start are collected in
//! [`RunReport::tracking_errors`], never fatal.

mod plan;
mod run;
mod spec;
mod state;
mod track;

pub use plan::{Decision, Plan, PlannedStep, Reason, key_parts, plan, stale_reason, topo_order};
pub use run::{EventFn, RunConfig, RunEvent, RunReport, StepContext, StepFn, StepReport, StepStatus, run, state_dir};
pub use spec::{Action, Backoff, Pipeline, Step, Tier};
pub use state::{
    KeyParts, OutputRecord, STATE_FILE, STATE_VERSION, State, StateLock, StepRecord, hash_file, hash_path, write_atomic,
};
pub use track::{TAG_PARENT, TAG_PIPELINE, TAG_SKIPPED, TAG_STEP, is_loopback_url};
