//! LoRA adapters (Hu et al., "LoRA: Low-Rank Adaptation of Large Language Models", 2021): next to a
//! frozen weight `W` (`out × in`), two trainable matrices `A` (`r × in`) and `B` (`out × r`) with
//!
//! ```text
//! y = x·Wᵀ + (α/r)·dropout(x)·Aᵀ·Bᵀ
//! ```
//!
//! `A` starts Kaiming-uniform and `B` at zero, so training starts from the base model exactly (Hu et
//! al. §4.1). `A` is drawn as PyTorch's `kaiming_uniform_(a=√5)`, which PEFT uses: uniform in
//! `±1/√in`, here from a seeded splitmix64 stream (reproducible on any platform).
//!
//! After training, `W + (α/r)·B·A` is the merged weight ([`LoraAdapters::merge`]), and
//! [`LoraAdapters::unmerge`] subtracts it again. The adapters are exported as Hugging Face PEFT lays
//! them out (PEFT `docs/source/developer_guides/checkpoint.md`): `adapter_model.safetensors` with
//! tensors `base_model.model.model.layers.{i}.self_attn.q_proj.lora_A.weight` (`[r, in]`) and
//! `….lora_B.weight` (`[out, r]`), and `adapter_config.json` with `r`, `lora_alpha`, `lora_dropout`,
//! `target_modules`, `peft_type: "LORA"`, `task_type: "CAUSAL_LM"` and `base_model_name_or_path`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use super::autograd::{Float, FrozenLinear, Tape, Var};
use super::optim::Param;
use crate::formats::safetensors::{self, Dtype, TensorData};
use crate::{Error, Result};

/// The file [`LoraAdapters::save_peft`] writes the adapter weights to.
pub const ADAPTER_WEIGHTS_FILE: &str = "adapter_model.safetensors";
/// The file [`LoraAdapters::save_peft`] writes the adapter configuration to.
pub const ADAPTER_CONFIG_FILE: &str = "adapter_config.json";

/// A projection of a LLaMA block an adapter can sit on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LoraTarget {
    /// The query projection (`self_attn.q_proj`, GGUF `attn_q`).
    Q,
    /// The key projection (`self_attn.k_proj`, GGUF `attn_k`).
    K,
    /// The value projection (`self_attn.v_proj`, GGUF `attn_v`).
    V,
    /// The attention output projection (`self_attn.o_proj`, GGUF `attn_output`).
    O,
    /// The SwiGLU gate (`mlp.gate_proj`, GGUF `ffn_gate`).
    Gate,
    /// The SwiGLU up projection (`mlp.up_proj`, GGUF `ffn_up`).
    Up,
    /// The SwiGLU down projection (`mlp.down_proj`, GGUF `ffn_down`).
    Down,
}

impl LoraTarget {
    /// Every target, in block order.
    pub const ALL: [LoraTarget; 7] = [
        LoraTarget::Q,
        LoraTarget::K,
        LoraTarget::V,
        LoraTarget::O,
        LoraTarget::Gate,
        LoraTarget::Up,
        LoraTarget::Down,
    ];

    /// The Hugging Face module name (`q_proj`, …, `down_proj`), as in PEFT's `target_modules`.
    pub fn module(self) -> &'static str {
        match self {
            LoraTarget::Q => "q_proj",
            LoraTarget::K => "k_proj",
            LoraTarget::V => "v_proj",
            LoraTarget::O => "o_proj",
            LoraTarget::Gate => "gate_proj",
            LoraTarget::Up => "up_proj",
            LoraTarget::Down => "down_proj",
        }
    }

    /// The Hugging Face parent module (`self_attn` or `mlp`).
    pub fn parent(self) -> &'static str {
        match self {
            LoraTarget::Q | LoraTarget::K | LoraTarget::V | LoraTarget::O => "self_attn",
            LoraTarget::Gate | LoraTarget::Up | LoraTarget::Down => "mlp",
        }
    }

    /// The GGUF tensor of block `layer` (`blk.{layer}.attn_q.weight`, …).
    pub fn gguf_tensor(self, layer: usize) -> String {
        let t = match self {
            LoraTarget::Q => "attn_q",
            LoraTarget::K => "attn_k",
            LoraTarget::V => "attn_v",
            LoraTarget::O => "attn_output",
            LoraTarget::Gate => "ffn_gate",
            LoraTarget::Up => "ffn_up",
            LoraTarget::Down => "ffn_down",
        };
        format!("blk.{layer}.{t}.weight")
    }

    /// The target named `name`: the short name (`q`, `k`, `v`, `o`, `gate`, `up`, `down`) or the
    /// Hugging Face module name (`q_proj`, …).
    ///
    /// # Errors
    /// [`Error::LoraConfig`] (field `targets`) for any other name.
    pub fn parse(name: &str) -> Result<LoraTarget> {
        LoraTarget::ALL
            .into_iter()
            .find(|t| name == t.module() || Some(name) == t.module().strip_suffix("_proj"))
            .ok_or_else(|| Error::LoraConfig {
                field: "targets",
                reason: format!(
                    "no projection named {name:?} (one of q, k, v, o, gate, up, down, or their *_proj module names)"
                ),
            })
    }
}

/// The hyper-parameters of a set of LoRA adapters.
#[derive(Clone, Debug, PartialEq)]
pub struct LoraConfig {
    /// The rank `r` of `A` (`r × in`) and `B` (`out × r`), ≥ 1.
    pub rank: usize,
    /// `α`: the update is scaled by `α/r` (Hu et al. §4.1).
    pub alpha: f32,
    /// The probability, in `[0, 1)`, that dropout zeroes an input of the adapter branch while
    /// training (0: no dropout). Never applied in evaluation.
    pub dropout: f32,
    /// The adapted projections of every block (at least one, each once).
    pub targets: Vec<LoraTarget>,
    /// The seed of `A`'s initialisation.
    pub seed: u64,
}

impl Default for LoraConfig {
    /// `r = 8`, `α = 16`, no dropout, on the query and value projections (Hu et al.'s choice), seed 0.
    fn default() -> Self {
        LoraConfig { rank: 8, alpha: 16.0, dropout: 0.0, targets: vec![LoraTarget::Q, LoraTarget::V], seed: 0 }
    }
}

impl LoraConfig {
    /// The scale `α/r` of the adapter's update.
    pub fn scale(&self) -> f32 {
        self.alpha / self.rank as f32
    }

    /// Checks the ranges.
    ///
    /// # Errors
    /// [`Error::LoraConfig`] naming the field: a rank of 0, an `α` that is not finite, a dropout
    /// outside `[0, 1)`, no target or a target named twice.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &'static str, reason: String| Err(Error::LoraConfig { field, reason });
        if self.rank == 0 {
            return bad("rank", "the rank must be at least 1".into());
        }
        if !self.alpha.is_finite() {
            return bad("alpha", format!("alpha {} must be finite", self.alpha));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad("dropout", format!("dropout {} must be in [0, 1)", self.dropout));
        }
        if self.targets.is_empty() {
            return bad("targets", "at least one projection to adapt".into());
        }
        let mut seen = self.targets.clone();
        seen.sort();
        if let Some(w) = seen.windows(2).find(|w| w[0] == w[1]) {
            return bad("targets", format!("{} is named twice", w[0].module()));
        }
        Ok(())
    }
}

/// Whether the adapters train (dropout on, drawn from `seed`) or are evaluated (no dropout).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoraMode {
    /// Training: dropout (when the config's probability is above 0) with masks drawn from `seed`
    /// (use a new seed per step).
    Train {
        /// The seed of this pass's dropout masks.
        seed: u64,
    },
    /// Evaluation: no dropout.
    Eval,
}

/// One adapted projection: where it sits and its shape. Its `A` and `B` are
/// `params()[2·i]` and `params()[2·i + 1]` of the [`LoraAdapters`] that lists it `i`-th.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoraAdapter {
    /// The block.
    pub layer: usize,
    /// The projection.
    pub target: LoraTarget,
    /// Columns of the base weight (and of `A`).
    pub in_features: usize,
    /// Rows of the base weight (and of `B`).
    pub out_features: usize,
}

/// Which of an adapter's two matrices.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoraMatrix {
    /// `A`, `r × in` (`lora_A`).
    A,
    /// `B`, `out × r` (`lora_B`).
    B,
}

/// PEFT's tensor name of an adapter matrix of a causal LM:
/// `base_model.model.model.layers.{layer}.{self_attn|mlp}.{module}.lora_{A|B}.weight`.
pub fn peft_name(layer: usize, target: LoraTarget, matrix: LoraMatrix) -> String {
    let m = match matrix {
        LoraMatrix::A => "A",
        LoraMatrix::B => "B",
    };
    format!("base_model.model.model.layers.{layer}.{}.{}.lora_{m}.weight", target.parent(), target.module())
}

/// splitmix64 (Steele, Lea & Flood, "Fast splittable pseudorandom number generators", OOPSLA 2014);
/// also the training loop's RNG (`train::finetune`).
pub(super) fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A uniform value in `[0, 1)` (53 bits).
fn unit(state: &mut u64) -> f64 {
    (splitmix(state) >> 11) as f64 / (1u64 << 53) as f64
}

/// An inverted-dropout mask of `len` values: each `0` with probability `p`, else `1/(1 − p)`
/// (Srivastava et al., "Dropout", JMLR 2014, with the scaling at training time as PyTorch does).
pub fn dropout_mask<T: Float>(len: usize, p: f32, seed: u64) -> Vec<T> {
    let keep = T::from_f64(1.0 / (1.0 - p as f64));
    let mut s = seed;
    (0..len).map(|_| if unit(&mut s) < p as f64 { T::ZERO } else { keep }).collect()
}

/// The LoRA linear layer on a tape: `base(x) + scale·(dropout(x)·Aᵀ)·Bᵀ`.
///
/// `x` is `[rows, in]`, `a` `[r, in]`, `b` `[out, r]`; `mask`, when given, is a `[rows, in]` value
/// multiplied into `x` on the adapter branch only (see [`dropout_mask`]). Built from tape ops, so
/// `a` and `b` get gradients when they are leaves, and `x` gets both branches' gradients.
///
/// # Errors
/// [`Error::TrainShape`] when the shapes do not fit (named by the op that found it).
pub fn lora_linear<T: Float>(
    tape: &mut Tape<T>,
    x: Var,
    base: Arc<dyn FrozenLinear<T>>,
    a: Var,
    b: Var,
    scale: f64,
    mask: Option<Var>,
) -> Result<Var> {
    let y = tape.linear_frozen(x, base)?;
    let xd = match mask {
        Some(m) => tape.mul(x, m)?,
        None => x,
    };
    let xa = tape.matmul_nt(xd, a)?;
    let xab = tape.matmul_nt(xa, b)?;
    let up = tape.scale(xab, scale)?;
    tape.add(y, up)
}

/// The LoRA adapters of a model: their config, where each sits, and their `A`/`B` as optimiser
/// [`Param`]s named as PEFT names them.
#[derive(Clone, Debug, PartialEq)]
pub struct LoraAdapters {
    config: LoraConfig,
    adapters: Vec<LoraAdapter>,
    params: Vec<Param>,
}

impl LoraAdapters {
    /// Adapters on `config.targets` of each of `n_layers` blocks; `shape(target)` gives the base
    /// weight's `(out_features, in_features)`. `A` is Kaiming-uniform (seeded by `config.seed`, the
    /// layer and the target), `B` zero.
    ///
    /// # Errors
    /// As [`LoraConfig::validate`]; [`Error::LoraConfig`] (field `rank`) when the rank exceeds a
    /// projection's smaller dimension (no longer low-rank).
    pub fn new(
        config: LoraConfig,
        n_layers: usize,
        shape: impl Fn(LoraTarget) -> (usize, usize),
    ) -> Result<LoraAdapters> {
        config.validate()?;
        let r = config.rank;
        let mut adapters = Vec::new();
        let mut params = Vec::new();
        for layer in 0..n_layers {
            for (ti, &target) in config.targets.iter().enumerate() {
                let (out_features, in_features) = shape(target);
                if r > out_features.min(in_features) {
                    return Err(Error::LoraConfig {
                        field: "rank",
                        reason: format!(
                            "rank {r} exceeds the {} projection's [{out_features}, {in_features}]",
                            target.module()
                        ),
                    });
                }
                let mut s = config.seed ^ (((layer as u64) << 32) | ti as u64).wrapping_mul(0xD1B5_4A32_D192_ED03);
                let bound = 1.0 / (in_features as f64).sqrt();
                let a: Vec<f32> = (0..r * in_features).map(|_| ((2.0 * unit(&mut s) - 1.0) * bound) as f32).collect();
                params.push(Param::new(peft_name(layer, target, LoraMatrix::A), vec![r, in_features], a)?);
                let b = vec![0.0f32; out_features * r];
                params.push(Param::new(peft_name(layer, target, LoraMatrix::B), vec![out_features, r], b)?);
                adapters.push(LoraAdapter { layer, target, in_features, out_features });
            }
        }
        Ok(LoraAdapters { config, adapters, params })
    }

    /// The configuration.
    pub fn config(&self) -> &LoraConfig {
        &self.config
    }

    /// The adapted projections, in parameter order.
    pub fn adapters(&self) -> &[LoraAdapter] {
        &self.adapters
    }

    /// Every `A` and `B` (`[A₀, B₀, A₁, B₁, …]`), for [`crate::train::optim::Optimizer::new`] and checkpoints.
    pub fn params(&self) -> &[Param] {
        &self.params
    }

    /// [`LoraAdapters::params`], mutable, for [`crate::train::optim::Optimizer::step`].
    pub fn params_mut(&mut self) -> &mut [Param] {
        &mut self.params
    }

    /// Values of trainable parameters (`Σ r·(in + out)` over the adapters).
    pub fn trainable_values(&self) -> usize {
        self.params.iter().map(Param::len).sum()
    }

    /// The index of the adapter on `target` of block `layer`, if there is one.
    pub fn find(&self, layer: usize, target: LoraTarget) -> Option<usize> {
        self.adapters.iter().position(|a| a.layer == layer && a.target == target)
    }

    /// Adapter `i`'s `A` (`r × in`).
    ///
    /// # Panics
    /// If `i` is not below `adapters().len()`.
    pub fn a(&self, i: usize) -> &Param {
        &self.params[2 * i]
    }

    /// Adapter `i`'s `B` (`out × r`).
    ///
    /// # Panics
    /// If `i` is not below `adapters().len()`.
    pub fn b(&self, i: usize) -> &Param {
        &self.params[2 * i + 1]
    }

    /// `w += sign·(α/r)·B·A` for adapter `i`, `w` its `out × in` base weight.
    fn add_update(&self, i: usize, w: &mut [f32], sign: f32) -> Result<()> {
        let ad = self
            .adapters
            .get(i)
            .ok_or_else(|| Error::InvalidParameter(format!("adapter {i} of {} does not exist", self.adapters.len())))?;
        let (outf, inf, r) = (ad.out_features, ad.in_features, self.config.rank);
        if w.len() != outf * inf {
            return Err(Error::TrainShape {
                op: "lora_merge",
                detail: format!("{} weight values for the [{outf}, {inf}] {} projection", w.len(), ad.target.module()),
            });
        }
        let mut ba = vec![0.0f32; outf * inf];
        crate::matmul::gemm(&self.b(i).value, &self.a(i).value, &mut ba, crate::matmul::GemmShape::new(outf, inf, r))?;
        let s = sign * self.config.scale();
        for (w, d) in w.iter_mut().zip(&ba) {
            *w += s * d;
        }
        Ok(())
    }

    /// Merges adapter `i` into its dense base weight `w` (`out × in`): `W ← W + (α/r)·B·A`.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for no adapter `i`; [`Error::TrainShape`] (op `lora_merge`) for a
    /// weight of another size.
    pub fn merge(&self, i: usize, w: &mut [f32]) -> Result<()> {
        self.add_update(i, w, 1.0)
    }

    /// Undoes [`LoraAdapters::merge`]: `W ← W − (α/r)·B·A` (equal to the base up to float rounding).
    ///
    /// # Errors
    /// As [`LoraAdapters::merge`].
    pub fn unmerge(&self, i: usize, w: &mut [f32]) -> Result<()> {
        self.add_update(i, w, -1.0)
    }

    /// Puts adapter `i`'s `A` and `B` on `tape` as leaves: `(a, b)`.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for no adapter `i`.
    pub fn leaves(&self, tape: &mut Tape<f32>, i: usize) -> Result<(Var, Var)> {
        if i >= self.adapters.len() {
            return Err(Error::InvalidParameter(format!("adapter {i} of {} does not exist", self.adapters.len())));
        }
        let (a, b) = (self.a(i), self.b(i));
        Ok((tape.leaf(a.value.clone(), &a.shape)?, tape.leaf(b.value.clone(), &b.shape)?))
    }

    /// Adapter `i` on `x` over its frozen `base`, with `a`/`b` from [`LoraAdapters::leaves`]: the
    /// [`lora_linear`] of the config's scale, with a dropout mask in [`LoraMode::Train`] when the
    /// config's dropout is above 0 (the mask's seed mixes `seed` with `i`).
    ///
    /// # Errors
    /// As [`lora_linear`].
    pub fn forward(
        &self,
        tape: &mut Tape<f32>,
        i: usize,
        x: Var,
        base: Arc<dyn FrozenLinear<f32>>,
        (a, b): (Var, Var),
        mode: LoraMode,
    ) -> Result<Var> {
        let mask = match mode {
            LoraMode::Train { seed } if self.config.dropout > 0.0 => {
                let shape = tape.shape(x).to_vec();
                let n = shape.iter().product();
                let s = seed ^ (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                Some(tape.constant(dropout_mask(n, self.config.dropout, s), &shape)?)
            }
            _ => None,
        };
        lora_linear(tape, x, base, a, b, f64::from(self.config.scale()), mask)
    }

    /// PEFT's `adapter_config.json` for these adapters of `base_model` (a Hub id or a path).
    pub fn peft_config(&self, base_model: &str) -> serde_json::Value {
        let targets: Vec<&str> = self.config.targets.iter().map(|t| t.module()).collect();
        serde_json::json!({
            "base_model_name_or_path": base_model,
            "bias": "none",
            "fan_in_fan_out": false,
            "inference_mode": true,
            "init_lora_weights": true,
            "lora_alpha": self.config.alpha,
            "lora_dropout": self.config.dropout,
            "modules_to_save": null,
            "peft_type": "LORA",
            "r": self.config.rank,
            "target_modules": targets,
            "task_type": "CAUSAL_LM",
            "use_rslora": false,
        })
    }

    /// The adapter weights as a safetensors file (F32, PEFT's names and shapes).
    ///
    /// # Errors
    /// The writer's errors.
    pub fn to_safetensors(&self) -> Result<Vec<u8>> {
        let bytes: Vec<Vec<u8>> =
            self.params.iter().map(|p| p.value.iter().flat_map(|v| v.to_le_bytes()).collect()).collect();
        let tensors: Vec<TensorData<'_>> = self
            .params
            .iter()
            .zip(&bytes)
            .map(|(p, b)| TensorData { name: &p.name, dtype: Dtype::F32, shape: &p.shape, bytes: b })
            .collect();
        let meta = BTreeMap::from([("format".to_string(), "pt".to_string())]);
        safetensors::serialize(&tensors, &meta)
    }

    /// Writes [`ADAPTER_WEIGHTS_FILE`] and [`ADAPTER_CONFIG_FILE`] into `dir` (created if missing), as
    /// PEFT's `save_pretrained` does: `PeftModel.from_pretrained(base, dir)` loads them.
    ///
    /// # Errors
    /// [`Error::Checkpoint`] when the folder or a file cannot be written; the writer's errors.
    pub fn save_peft(&self, dir: impl AsRef<Path>, base_model: &str) -> Result<()> {
        let dir = dir.as_ref();
        let io = |path: &Path, e: std::io::Error| Error::Checkpoint { path: path.to_path_buf(), reason: e.to_string() };
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let weights = dir.join(ADAPTER_WEIGHTS_FILE);
        safetensors::write_atomic(&weights, &self.to_safetensors()?).map_err(|e| io(&weights, e))?;
        let config = dir.join(ADAPTER_CONFIG_FILE);
        let json = serde_json::to_vec_pretty(&self.peft_config(base_model))
            .map_err(|e| Error::Checkpoint { path: config.clone(), reason: e.to_string() })?;
        safetensors::write_atomic(&config, &json).map_err(|e| io(&config, e))
    }
}
