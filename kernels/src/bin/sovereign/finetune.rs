//! `sovereign finetune`: QLoRA fine-tuning of a GGUF chat model on chat-format JSON Lines
//! (`kernels::train::finetune`), with a progress bar (loss, tokens/s), periodic held-out loss,
//! atomic checkpoints and `--resume`; writes the PEFT adapter and `metrics.json` into `--out`.
//!
//! ```text
//! sovereign finetune --model m.gguf --data train.jsonl --eval eval.jsonl --out run/ --steps 200
//! sovereign finetune … --out run/ --resume     # continue from run/checkpoint.safetensors
//! ```

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use kernels::train::decoder::Activations;
use kernels::train::finetune::{self, CHECKPOINT_FILE, EvalData, FinetuneConfig, Progress, TrainLength};
use kernels::train::lora::LoraTarget;

#[derive(clap::Args)]
pub struct FinetuneArgs {
    /// The GGUF chat model (LLaMA family, with a chat template).
    #[arg(long)]
    model: PathBuf,
    /// Training conversations, one `{"messages": [...]}` per line.
    #[arg(long)]
    data: PathBuf,
    /// Held-out conversations (same format) for the loss before, during and after training.
    #[arg(long)]
    eval: Option<PathBuf>,
    /// Without --eval: hold out the last N training conversations instead.
    #[arg(long, default_value_t = 0)]
    eval_split: usize,
    /// Output folder: checkpoint.safetensors, adapter_model.safetensors, adapter_config.json, metrics.json.
    #[arg(long)]
    out: PathBuf,
    /// LoRA rank.
    #[arg(long, default_value_t = 8)]
    rank: usize,
    /// LoRA alpha (the update is scaled by alpha/rank).
    #[arg(long, default_value_t = 16.0)]
    alpha: f32,
    /// LoRA dropout on the adapter branch while training.
    #[arg(long, default_value_t = 0.0)]
    dropout: f32,
    /// Adapted projections, comma-separated (q,k,v,o,gate,up,down or their *_proj names; `all`).
    #[arg(long, default_value = "all")]
    targets: String,
    /// Peak learning rate (AdamW).
    #[arg(long, default_value_t = 1e-3)]
    lr: f32,
    /// Final learning rate of the cosine schedule.
    #[arg(long, default_value_t = 1e-4)]
    min_lr: f32,
    /// Linear warm-up steps.
    #[arg(long, default_value_t = 0)]
    warmup: u64,
    /// Optimiser steps (the schedule's length).
    #[arg(long, conflicts_with = "epochs")]
    steps: Option<u64>,
    /// Passes over the training data instead of --steps.
    #[arg(long)]
    epochs: Option<u64>,
    /// Conversations whose gradients are averaged per step.
    #[arg(long, default_value_t = 1)]
    grad_accum: usize,
    /// Global gradient-norm clip.
    #[arg(long, default_value_t = 1.0)]
    clip: f32,
    /// Held-out loss every N steps (0: before and after only).
    #[arg(long, default_value_t = 0)]
    eval_every: u64,
    /// A checkpoint every N steps (0: at the end of the run only).
    #[arg(long, default_value_t = 0)]
    checkpoint_every: u64,
    /// Seed of the adapters' initialisation, the data order and dropout.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Tokens per conversation at most (longer ones are cut).
    #[arg(long, default_value_t = 256)]
    max_seq_len: usize,
    /// Held-out conversations greedily decoded before and after training (slow: no KV cache).
    #[arg(long, default_value_t = 0)]
    generate: usize,
    /// Stop after N steps of this run (a checkpoint is written), as if interrupted.
    #[arg(long)]
    stop_after: Option<u64>,
    /// Continue from OUT/checkpoint.safetensors.
    #[arg(long)]
    resume: bool,
    /// Activations: `keep` every block's for the backward pass, or `recompute` them from each
    /// block's input (activation checkpointing: less memory, about a third more compute).
    #[arg(long, value_enum, default_value_t = ActivationsArg::Keep)]
    activations: ActivationsArg,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ActivationsArg {
    Keep,
    Recompute,
}

/// The targets named by `list` (`all` for every projection).
fn targets(list: &str) -> Result<Vec<LoraTarget>> {
    if list.trim() == "all" {
        return Ok(LoraTarget::ALL.to_vec());
    }
    list.split(',').map(|t| LoraTarget::parse(t.trim()).map_err(anyhow::Error::from)).collect()
}

pub fn run(args: FinetuneArgs) -> Result<()> {
    let mut config = FinetuneConfig::new(&args.model, &args.data, &args.out);
    config.eval = match (&args.eval, args.eval_split) {
        (Some(p), 0) => EvalData::File(p.clone()),
        (Some(_), _) => bail!("--eval and --eval-split exclude each other"),
        (None, 0) => EvalData::None,
        (None, n) => EvalData::Split(n),
    };
    config.lora.rank = args.rank;
    config.lora.alpha = args.alpha;
    config.lora.dropout = args.dropout;
    config.lora.targets = targets(&args.targets)?;
    config.lora.seed = args.seed;
    config.lr = args.lr;
    config.min_lr = args.min_lr;
    config.warmup_steps = args.warmup;
    config.length = match (args.steps, args.epochs) {
        (_, Some(e)) => TrainLength::Epochs(e),
        (Some(s), None) => TrainLength::Steps(s),
        (None, None) => TrainLength::Steps(100),
    };
    config.examples_per_step = args.grad_accum;
    config.clip_norm = args.clip;
    config.eval_every = args.eval_every;
    config.checkpoint_every = args.checkpoint_every;
    config.seed = args.seed;
    config.max_seq_len = args.max_seq_len;
    config.generate_examples = args.generate;
    config.stop_after = args.stop_after;
    config.activations = match args.activations {
        ActivationsArg::Keep => Activations::Keep,
        ActivationsArg::Recompute => Activations::Recompute,
    };
    if args.resume {
        let path = args.out.join(CHECKPOINT_FILE);
        if !path.exists() {
            bail!("--resume: no checkpoint at {}", path.display());
        }
        config.resume_from = Some(path);
    }

    let bar = indicatif::ProgressBar::new(0);
    if let Ok(style) = indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} steps {msg} (eta {eta})") {
        bar.set_style(style);
    }
    let mut eval_msg = String::new();
    let report = finetune::finetune(&config, |p| match p {
        Progress::Start { step, total_steps, train_examples, eval_examples } => {
            bar.set_length(*total_steps);
            bar.set_position(*step);
            bar.println(format!(
                "{train_examples} training and {eval_examples} held-out conversations; starting at step {step} of {total_steps}"
            ));
        }
        Progress::Step { step, loss, tokens_per_second, lr, .. } => {
            bar.set_position(*step);
            bar.set_message(format!("loss {loss:.4} lr {lr:.2e} {tokens_per_second:.0} tokens/s{eval_msg}"));
        }
        Progress::Eval { step, loss } => {
            eval_msg = format!(" eval {loss:.4}");
            bar.println(format!("step {step}: held-out loss {loss:.4}"));
        }
        Progress::Generating { step, examples } => {
            bar.println(format!("step {step}: greedy decoding of {examples} held-out conversations"));
        }
        Progress::Checkpoint { step, path } => bar.println(format!("step {step}: checkpoint {}", path.display())),
    })
    .context("fine-tuning")?;
    bar.finish_and_clear();
    let value = serde_json::to_value(&report).context("metrics")?;
    super::print_json(&value);
    Ok(())
}
