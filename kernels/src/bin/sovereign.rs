//! `sovereign`: the command-line face of `kernels`: an OpenAI-compatible server, GGUF inspection,
//! tokenisation, classical ML on Parquet tables and the signed model registry.
//!
//! ```text
//! sovereign serve --demo                      # SmolLM2-135M-Instruct + all-MiniLM-L6-v2 on 127.0.0.1:8080
//! sovereign serve --model m.gguf --port 9000  # any LLaMA-family GGUF with a ChatML template
//! sovereign serve --registry reg --name m --version 1 --keyring keys --key k.seal  # verified (sovereign/serve_registry.rs)
//! sovereign serve --demo --rag-index idx/     # … plus POST /v1/rag over a `sovereign rag index` folder
//! sovereign gguf inspect m.gguf               # metadata and tensor table
//! sovereign tokenize --model m.gguf "text"    # token ids and pieces
//! sovereign ml train|predict|eval …           # kernels::ml on Parquet (sovereign/ml.rs)
//! sovereign registry keygen|push|verify|…     # kernels::registry (sovereign/registry.rs)
//! sovereign trace --summary --deny-network -- CMD ARGS…  # kernels::audit (sovereign/trace.rs)
//! sovereign serve-model --registry r --keyring k --model fraud   # kernels::serve_model (sovereign/serve_model.rs)
//! sovereign score --model-dir m --input t.parquet --output s/   # kernels::score (sovereign/score.rs)
//! sovereign gateway --config gateway.toml     # kernels::gateway (sovereign/gateway.rs)
//! sovereign rag index|query|eval …            # kernels::rag (sovereign/rag.rs)
//! sovereign monitor validate|profile|drift …  # kernels::monitor (sovereign/monitor.rs)
//! sovereign pipeline run|plan|status FILE.toml  # kernels::pipeline (sovereign/pipeline.rs)
//! sovereign quality --path CRATE --fail-under B  # kernels::quality (sovereign/quality.rs)
//! sovereign observe rules --slo slo.toml      # kernels::observe (sovereign/observe.rs)
//! sovereign finetune --model m.gguf --data d.jsonl --out run/  # kernels::train::finetune (sovereign/finetune.rs)
//! ```
//!
//! Every subcommand prints a progress indicator on long work (on a terminal), has `--json` where a
//! script reads the output, and fails with a non-zero exit and a message naming the bad input.

#[path = "sovereign/finetune.rs"]
mod finetune;
#[path = "sovereign/gateway.rs"]
mod gateway;
#[path = "sovereign/ml.rs"]
mod ml;
#[path = "sovereign/monitor.rs"]
mod monitor;
#[path = "sovereign/observe.rs"]
mod observe;
#[path = "sovereign/pipeline.rs"]
mod pipeline;
#[path = "sovereign/quality.rs"]
mod quality;
#[path = "sovereign/rag.rs"]
mod rag;
#[path = "sovereign/registry.rs"]
mod registry;
#[path = "sovereign/score.rs"]
mod score;
#[path = "sovereign/serve_model.rs"]
mod serve_model;
#[path = "sovereign/serve_registry.rs"]
mod serve_registry;
#[path = "sovereign/trace.rs"]
mod trace;

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use kernels::formats::gguf::{Gguf, MetadataValue};
use kernels::serve::{ChatModel, EmbeddingModel, Models, ServerConfig};
use kernels::tokenize::Bpe;

/// The demo chat model (fetched by `cargo xtask models`).
const DEMO_CHAT: (&str, &str) = ("smollm2-135m-instruct", "SmolLM2-135M-Instruct.Q4_1.gguf");
/// The demo embedding model's folder.
const DEMO_EMBEDDING: &str = "all-minilm-l6-v2";

#[derive(Parser)]
#[command(name = "sovereign", version, about = "Serve, inspect, tokenise, train and register models with kernels")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve an OpenAI-compatible API (chat, completions, embeddings, metrics).
    Serve(ServeArgs),
    /// Inspect model files.
    Gguf {
        #[command(subcommand)]
        command: GgufCommand,
    },
    /// Print the token ids (and pieces) of a text with a GGUF model's tokenizer.
    Tokenize {
        /// The GGUF file whose tokenizer to use.
        #[arg(long)]
        model: PathBuf,
        /// The text.
        text: String,
    },
    /// Train, apply and evaluate classical models on Parquet tables.
    Ml {
        #[command(subcommand)]
        command: ml::MlCommand,
    },
    /// The signed, content-addressed model registry: keys, versions, stages, lineage, sealed files.
    Registry {
        #[command(subcommand)]
        command: registry::RegistryCommand,
    },
    /// Trace a command's system calls (ptrace): summary, hash-chained log, network and file policy.
    Trace(Box<trace::TraceArgs>),
    /// Serve a tabular model (registry-verified, micro-batched, hot-reloaded on promotion, metrics).
    ServeModel(Box<serve_model::ServeModelArgs>),
    /// Score a Parquet file or Delta table in batches into partitioned Parquet or Delta (resumable).
    Score(Box<score::ScoreArgs>),
    /// An OpenAI-compatible gateway: routing, failover, keys, limits, budgets, privacy tiers, a cache.
    Gateway(Box<gateway::GatewayArgs>),
    /// Retrieval-augmented generation: index a folder, query it with a cited answer, evaluate retrieval.
    Rag {
        #[command(subcommand)]
        command: rag::RagCommand,
    },
    /// Data validation and drift: check expectations on a table, compare a current table with a reference.
    Monitor {
        #[command(subcommand)]
        command: monitor::MonitorCommand,
    },
    /// Run a pipeline of steps declared in TOML (cached by content, resumable, logged to MLflow).
    Pipeline {
        #[command(subcommand)]
        command: pipeline::PipelineCommand,
    },
    /// Grade a Rust crate: coverage, clippy, complexity, duplication, docs, unsafe, todo!() (a CI gate).
    Quality(Box<quality::QualityArgs>),
    /// QLoRA fine-tuning of a GGUF chat model on chat JSON Lines (checkpoints, resume, PEFT adapter).
    Finetune(Box<finetune::FinetuneArgs>),
    /// Observability: SLO rules for Prometheus, burn rates.
    Observe {
        #[command(subcommand)]
        command: observe::ObserveCommand,
    },
}

#[derive(Subcommand)]
enum GgufCommand {
    /// Print the header, metadata and tensor table.
    Inspect {
        /// The GGUF file.
        path: PathBuf,
    },
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Log JSON lines to stderr (one per event, with the request span's trace_id).
    #[arg(long)]
    log_json: bool,
    /// Serve the bundled models (SmolLM2-135M-Instruct and all-MiniLM-L6-v2, from `cargo xtask models`).
    #[arg(long)]
    demo: bool,
    /// A GGUF chat model.
    #[arg(long)]
    model: Option<PathBuf>,
    /// The id clients use for the chat model (default: the file stem).
    #[arg(long)]
    model_id: Option<String>,
    /// A BERT sentence-embedding model folder (model.safetensors, config.json, tokenizer.json).
    #[arg(long)]
    embedding_model: Option<PathBuf>,
    /// The id clients use for the embedding model (default: the folder name).
    #[arg(long)]
    embedding_id: Option<String>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on.
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Sequences decoded together at most.
    #[arg(long, default_value_t = 8)]
    max_batch: usize,
    /// KV-cache positions per sequence.
    #[arg(long, default_value_t = 2048)]
    context: usize,
    /// Sequences that may wait to start beyond the running batch; more get 503 with Retry-After
    /// (default: 4 × --max-batch).
    #[arg(long)]
    max_queue: Option<usize>,
    /// Seconds a generation request may take from arrival to its last token (then 504, or an error
    /// event ending a stream).
    #[arg(long, default_value_t = 120.0)]
    request_timeout: f64,
    /// A `sovereign rag index` folder to answer `POST /v1/rag` from (needs the chat and embedding models;
    /// the index must have been built with this embedding model).
    #[arg(long)]
    rag_index: Option<PathBuf>,
    #[command(flatten)]
    from_registry: serve_registry::RegistryModelArgs,
}

/// Runs the command; an error is printed as one `error:` line with its causes (no backtrace) and exits 1.
fn main() -> ExitCode {
    match run(Cli::parse().command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> Result<()> {
    match command {
        Command::Serve(args) => serve(args),
        Command::Gguf { command: GgufCommand::Inspect { path } } => inspect(&path),
        Command::Tokenize { model, text } => tokenize(&model, &text),
        Command::Ml { command } => ml::run(command),
        Command::Registry { command } => registry::run(command),
        Command::Trace(args) => trace::run(*args),
        Command::ServeModel(args) => serve_model::run(*args),
        Command::Score(args) => score::run(*args),
        Command::Gateway(args) => gateway::run(*args),
        Command::Rag { command } => rag::run(command),
        Command::Monitor { command } => monitor::run(command),
        Command::Pipeline { command } => pipeline::run(command),
        Command::Quality(args) => quality::run(*args),
        Command::Finetune(args) => finetune::run(*args),
        Command::Observe { command } => observe::run(command),
    }
}

/// A spinner with `message` and the elapsed time on stderr (drawn only on a terminal); finish it with
/// `finish_and_clear`.
fn spinner(message: String) -> indicatif::ProgressBar {
    let pb = indicatif::ProgressBar::new_spinner();
    if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
        pb.set_style(style);
    }
    pb.set_message(message);
    pb.enable_steady_tick(Duration::from_millis(100));
    pb
}

/// Prints `value` as pretty JSON on stdout (a closed pipe is not an error).
fn print_json(value: &serde_json::Value) {
    let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

fn serve(args: ServeArgs) -> Result<()> {
    if args.log_json {
        kernels::observe::trace::init_json_logs(std::io::stderr);
    }
    let (mut chat_path, mut embedding_dir) = (args.model.clone(), args.embedding_model.clone());
    if args.demo {
        let chat = kernels::cache::model_file(DEMO_CHAT.0, DEMO_CHAT.1);
        let embed = kernels::cache::model_file(DEMO_EMBEDDING, "");
        if !chat.is_file() || !embed.join("model.safetensors").is_file() {
            bail!(
                "the demo models are not in {}: run `cargo xtask models` first",
                kernels::cache::cache_dir().display()
            );
        }
        chat_path.get_or_insert(chat);
        embedding_dir.get_or_insert(embed);
    }
    if chat_path.is_none() && embedding_dir.is_none() && !args.from_registry.given() {
        bail!("nothing to serve: give --demo, --model, --registry or --embedding-model");
    }
    let mut models = Models { chat: args.from_registry.load(args.model_id.as_deref())?, ..Models::default() };
    if let Some(path) = chat_path {
        let id = match (&args.model_id, args.demo && args.model.is_none()) {
            (Some(id), _) => id.clone(),
            (None, true) => DEMO_CHAT.0.to_owned(),
            (None, false) => path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(),
        };
        eprintln!("loading chat model {id} from {}", path.display());
        models.chat = Some(ChatModel::load(id, &path).with_context(|| format!("loading {}", path.display()))?);
    }
    if let Some(dir) = embedding_dir {
        let dir = dir.components().as_path().to_path_buf();
        let id = args.embedding_id.clone().unwrap_or_else(|| {
            dir.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| DEMO_EMBEDDING.to_owned())
        });
        eprintln!("loading embedding model {id} from {}", dir.display());
        models.embedding = Some(EmbeddingModel::load(id, &dir).with_context(|| format!("loading {}", dir.display()))?);
    }
    let addr: SocketAddr = format!("{}:{}", args.host, args.port).parse().context("--host/--port")?;
    if !(args.request_timeout > 0.0 && args.request_timeout.is_finite()) {
        bail!("--request-timeout must be a positive number of seconds");
    }
    let mut config = ServerConfig {
        addr,
        max_batch: args.max_batch,
        context: args.context,
        max_queue: args.max_queue.unwrap_or(4 * args.max_batch.max(1)),
        request_timeout: Duration::from_secs_f64(args.request_timeout),
        ..ServerConfig::default()
    };
    if let Some(dir) = &args.rag_index {
        let (Some(embedding), Some(_)) = (&models.embedding, &models.chat) else {
            bail!("--rag-index needs a chat model and an embedding model (--demo, or --model and --embedding-model)");
        };
        if !dir.is_dir() {
            bail!("--rag-index {}: no such folder (build one with `sovereign rag index`)", dir.display());
        }
        let index = kernels::rag::index::RagIndex::open(dir, &*embedding.model)
            .with_context(|| format!("opening the index {}", dir.display()))?;
        eprintln!("serving /v1/rag over {} ({} chunks)", dir.display(), index.len());
        config.rag = Some(std::sync::Arc::new(kernels::serve::rag::RagService::new(index, embedding.model.clone())));
    }
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding {addr}"))?;
        eprintln!("serving on http://{} (Ctrl-C or SIGTERM stops gracefully)", listener.local_addr()?);
        kernels::serve::serve(listener, config, models, shutdown_signal()).await?;
        eprintln!("stopped");
        Ok(())
    })
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
}

fn inspect(path: &PathBuf) -> Result<()> {
    let gguf = Gguf::open(path).with_context(|| format!("reading {}", path.display()))?;
    println!("GGUF v{}, alignment {}, data at byte {}", gguf.version(), gguf.alignment(), gguf.data_offset());
    println!("\nmetadata ({}):", gguf.metadata_entries().len());
    for (key, value) in gguf.metadata_entries() {
        let shown = match value {
            MetadataValue::Array(a) => format!("[{} × {}]", a.len(), a.element_type()),
            MetadataValue::String(s) if s.len() > 80 => {
                format!("{:?}… ({} bytes)", &s[..s.floor_char_boundary(80)], s.len())
            }
            other => format!("{other:?}"),
        };
        println!("  {key} = {shown}");
    }
    println!("\ntensors ({}):", gguf.tensor_infos().len());
    for t in gguf.tensor_infos() {
        println!("  {:<32} {:<6} {:?} {} bytes", t.name, t.ggml_type.to_string(), t.dims, t.n_bytes);
    }
    Ok(())
}

fn tokenize(model: &PathBuf, text: &str) -> Result<()> {
    let gguf = Gguf::open(model).with_context(|| format!("reading {}", model.display()))?;
    let bpe = Bpe::from_gguf(&gguf)?;
    let ids = bpe.encode(text);
    println!("{} tokens", ids.len());
    for id in ids {
        println!("{id:>6}  {:?}", bpe.token(id).unwrap_or("?"));
    }
    Ok(())
}
