//! `sovereign gateway`: the OpenAI-compatible gateway of `kernels::gateway` in front of several backends.
//!
//! ```text
//! sovereign gateway --config gateway.toml                # serve (tests/fixtures/gateway/gateway.toml shows every key)
//! sovereign gateway --config gateway.toml --check        # validate the file and exit
//! sovereign gateway --config gateway.toml --listen 127.0.0.1:0
//! sovereign gateway --hash-key sk-...                    # the BLAKE3 hash to put in [[keys]] blake3
//! ```
//!
//! Once it listens it prints `gateway listening on http://ADDR` on stdout (port 0 picks a free port),
//! and it stops gracefully on Ctrl-C or SIGTERM. A bad config exits 1 with a message naming the key.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use kernels::gateway::{Gateway, GatewayConfig, hash_key};

/// Arguments of `sovereign gateway`.
#[derive(Args)]
pub struct GatewayArgs {
    /// The TOML configuration.
    #[arg(long, required_unless_present = "hash_key")]
    config: Option<PathBuf>,
    /// Listen here instead of the config's `listen`.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Validate the configuration and exit.
    #[arg(long)]
    check: bool,
    /// Print the BLAKE3 hash of an API key (for `[[keys]] blake3`) and exit.
    #[arg(long, conflicts_with_all = ["config", "check", "listen"])]
    hash_key: Option<String>,
    /// Log JSON lines to stderr (one per event, with the request span's trace_id).
    #[arg(long)]
    log_json: bool,
}

/// Runs `sovereign gateway`.
pub fn run(args: GatewayArgs) -> Result<()> {
    if args.log_json {
        kernels::observe::trace::init_json_logs(std::io::stderr);
    }
    if let Some(key) = &args.hash_key {
        println!("{}", hash_key(key));
        return Ok(());
    }
    let Some(path) = &args.config else { bail!("give --config FILE") };
    let mut config = GatewayConfig::load(path).with_context(|| format!("loading {}", path.display()))?;
    if let Some(addr) = args.listen {
        config.listen = addr;
    }
    if args.check {
        println!(
            "{}: {} backends, {} keys, cache {}",
            path.display(),
            config.backends.len(),
            config.keys.len(),
            if config.cache.enabled { "on" } else { "off" }
        );
        return Ok(());
    }
    let addr = config.listen;
    let gateway = Gateway::from_config(config).context("starting the gateway")?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("listening on {addr}"))?;
        let local = listener.local_addr()?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "gateway listening on http://{local}")?;
        out.flush()?;
        drop(out);
        kernels::gateway::serve(listener, gateway, super::shutdown_signal()).await?;
        Ok(())
    })
}
