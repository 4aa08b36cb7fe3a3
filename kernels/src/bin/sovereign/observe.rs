//! `sovereign observe`: Prometheus recording and alerting rules from SLOs (`kernels::observe`).

use anyhow::Result;
use clap::Subcommand;

/// What `sovereign observe` does.
#[derive(Subcommand)]
pub enum ObserveCommand {
    /// Print the recording and alerting rules of an SLO file (YAML for Prometheus).
    Rules {
        /// The SLO file (TOML).
        #[arg(long)]
        slo: std::path::PathBuf,
    },
}

/// Runs `sovereign observe`.
pub fn run(command: ObserveCommand) -> Result<()> {
    match command {
        ObserveCommand::Rules { slo } => anyhow::bail!("not yet: {}", slo.display()),
    }
}
