//! `sovereign serve-model`: the tabular model server of `kernels::serve_model` on a registry version or a
//! model folder.
//!
//! ```text
//! sovereign serve-model --registry reg --keyring keys --model fraud              # fraud@production, followed on promote
//! sovereign serve-model --registry reg --keyring keys --model fraud@3 --port 9000
//! sovereign serve-model --model-dir models/fraud --max-batch 64 --max-delay-us 500
//! ```
//!
//! The server refuses to start on an unsigned or tampered version (the error names the check that
//! failed). It prints `serving NAME version V on http://ADDR` on stderr once it listens (port 0 picks a
//! free port) and stops gracefully on Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use kernels::registry::Keyring;
use kernels::serve_model::{BatchConfig, Config, ModelServer, ModelSource};

/// Where a model comes from: a verified registry version, or an unsigned model folder (`serve-model`,
/// `score`).
#[derive(Args)]
pub struct ModelArgs {
    /// A registry folder to take the model from (with --keyring and --model).
    #[arg(long, requires_all = ["keyring", "model"], conflicts_with = "model_dir")]
    registry: Option<PathBuf>,
    /// The trusted public keys (a .pub file or a folder of them).
    #[arg(long)]
    keyring: Option<PathBuf>,
    /// NAME (its production version), NAME@STAGE (staging, production) or NAME@VERSION.
    #[arg(long)]
    model: Option<String>,
    /// A model folder (model.safetensors, from `sovereign ml train`) or file, unsigned; for development.
    #[arg(long)]
    model_dir: Option<PathBuf>,
}

impl ModelArgs {
    /// The model source these arguments name; `name` is what clients call a model folder.
    pub fn source(&self, name: Option<&str>) -> Result<ModelSource> {
        Ok(match (&self.registry, &self.model_dir) {
            (Some(root), None) => {
                let (Some(ring), Some(spec)) = (&self.keyring, &self.model) else {
                    bail!("--registry needs --keyring and --model");
                };
                let keyring = Keyring::load(ring).with_context(|| format!("loading keyring {}", ring.display()))?;
                ModelSource::registry(root, keyring, spec)?
            }
            (None, Some(dir)) => {
                if !dir.exists() {
                    bail!("model folder {} does not exist", dir.display());
                }
                ModelSource::file(dir, name)
            }
            _ => {
                bail!("no model: give --registry DIR --keyring KEYS --model NAME[@STAGE|@VERSION], or --model-dir DIR")
            }
        })
    }
}

/// Arguments of `serve-model`.
#[derive(Args)]
pub struct ServeModelArgs {
    #[command(flatten)]
    source: ModelArgs,
    /// Log JSON lines to stderr (one per event, with the request span's trace_id).
    #[arg(long)]
    log_json: bool,
    /// The name clients use with --model-dir (default: the folder's name).
    #[arg(long)]
    name: Option<String>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0: any free port).
    #[arg(long, default_value_t = 8081)]
    port: u16,
    /// Rows gathered into one scored batch at most.
    #[arg(long, default_value_t = 64)]
    max_batch: usize,
    /// Wait at most this long (µs) after a batch's first request for more.
    #[arg(long, default_value_t = 500)]
    max_delay_us: u64,
    /// Always wait the full delay (otherwise only when another request is expected in time).
    #[arg(long)]
    no_adaptive: bool,
    /// Requests that may wait for the scorer; beyond, 503 with Retry-After.
    #[arg(long, default_value_t = 1024)]
    queue: usize,
    /// Check the registry (or file) this often and reload on change, ms (0: only POST /admin/reload).
    #[arg(long, default_value_t = 1000)]
    poll_ms: u64,
    /// Larger request bodies get 413.
    #[arg(long, default_value_t = 16 << 20)]
    max_body_bytes: usize,
}

/// Runs `sovereign serve-model`.
pub fn run(args: ServeModelArgs) -> Result<()> {
    if args.log_json {
        kernels::observe::trace::init_json_logs(std::io::stderr);
    }
    let source = args.source.source(args.name.as_deref())?;
    let config = Config {
        batch: BatchConfig {
            max_batch: args.max_batch,
            max_delay: Duration::from_micros(args.max_delay_us),
            queue_capacity: args.queue,
            adaptive: !args.no_adaptive,
        },
        max_body_bytes: args.max_body_bytes,
        reload_poll: (args.poll_ms > 0).then(|| Duration::from_millis(args.poll_ms)),
        ..Config::default()
    };
    let server = ModelServer::start(config, source)?;
    let model = server.current();
    let addr: SocketAddr = format!("{}:{}", args.host, args.port).parse().context("--host/--port")?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding {addr}"))?;
        eprintln!(
            "serving {} version {} ({}, {} features) on http://{} (Ctrl-C or SIGTERM stops gracefully)",
            model.name,
            model.version_label(),
            model.kind,
            model.n_features(),
            listener.local_addr()?
        );
        kernels::serve_model::serve(listener, server, crate::shutdown_signal()).await?;
        eprintln!("stopped");
        Ok(())
    })
}
