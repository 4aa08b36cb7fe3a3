//! `sovereign ml`: train `kernels::ml` models on Parquet tables, predict with them and evaluate them.
//!
//! ```text
//! sovereign ml train --algo forest --data train.parquet --target is_fraud --out models/fraud --trees 200
//! sovereign ml predict --model models/fraud --data new.parquet --out scored.parquet
//! sovereign ml eval --model models/fraud --data test.parquet --target is_fraud --json
//! ```
//!
//! A model folder holds `model.safetensors` ([`kernels::ml::io`]): the model, its feature names, the
//! training data's fingerprint and the training metrics. Features are numeric or boolean columns
//! (a null is a missing value: tree, forest and gbm handle it, the others refuse it).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand, ValueEnum};
use kernels::data::{self, Array, ArrayRef, DataType, Field, ReadOptions, RecordBatch, Schema, WriteOptions};
use kernels::ml::forest::{ForestConfig, RandomForest};
use kernels::ml::gbm::{Gbm, GbmConfig, Objective};
use kernels::ml::io::{self, ModelMeta};
use kernels::ml::kmeans::{KMeansConfig, KMeansModel};
use kernels::ml::linear::{LinearConfig, LinearModel};
use kernels::ml::logistic::{ClassWeight, LogisticConfig, LogisticModel};
use kernels::ml::tree::{Criterion, DecisionTree, MaxFeatures, TreeConfig};
use kernels::ml::{Matrix, metrics};
use serde_json::json;

use crate::{print_json, spinner};

/// The file a model folder holds.
const MODEL_FILE: &str = "model.safetensors";

/// `sovereign ml …`.
#[derive(Subcommand)]
pub enum MlCommand {
    /// Train a model on a Parquet table and save it to a folder (model.safetensors).
    Train(Box<TrainArgs>),
    /// Add a `prediction` column (and `probability` for classifiers) to a Parquet table.
    Predict(PredictArgs),
    /// Print a saved model's metrics on a Parquet table.
    Eval(EvalArgs),
}

/// The learning algorithms.
#[derive(Clone, Copy, PartialEq, Eq, Debug, ValueEnum)]
pub enum Algo {
    /// Least squares (ridge with --alpha): regression.
    Linear,
    /// Binary logistic regression (L2, --c): labels 0/1.
    Logistic,
    /// One CART tree: classification or regression.
    Tree,
    /// Random forest: classification or regression.
    Forest,
    /// Histogram gradient boosting: binary classification (labels 0/1) or regression.
    Gbm,
    /// k-means clustering (no target).
    Kmeans,
}

impl Algo {
    fn name(self) -> &'static str {
        match self {
            Algo::Linear => "linear",
            Algo::Logistic => "logistic",
            Algo::Tree => "tree",
            Algo::Forest => "forest",
            Algo::Gbm => "gbm",
            Algo::Kmeans => "kmeans",
        }
    }
}

/// What a tree, forest or gbm learns.
#[derive(Clone, Copy, PartialEq, Eq, Debug, ValueEnum)]
pub enum TaskArg {
    /// Classification for a boolean or integer target, regression for a floating-point one.
    Auto,
    /// Class ids 0, 1, 2, … (0/1 for gbm).
    Classification,
    /// A numeric target.
    Regression,
}

/// The split criterion of classification trees.
#[derive(Clone, Copy, PartialEq, Eq, Debug, ValueEnum)]
pub enum CriterionArg {
    /// Gini impurity.
    Gini,
    /// Shannon entropy.
    Entropy,
}

/// Arguments of `ml train`.
#[derive(Args)]
pub struct TrainArgs {
    /// The algorithm.
    #[arg(long, value_enum)]
    algo: Algo,
    /// The training table (Parquet).
    #[arg(long)]
    data: PathBuf,
    /// The target column (not used by kmeans).
    #[arg(long)]
    target: Option<String>,
    /// Feature columns, comma-separated (default: every column but the target).
    #[arg(long, value_delimiter = ',')]
    features: Option<Vec<String>>,
    /// A validation table (Parquet, same columns): its metrics are reported, and gbm's --early-stopping watches it.
    #[arg(long)]
    valid: Option<PathBuf>,
    /// The model folder to write (created if needed; model.safetensors inside).
    #[arg(long)]
    out: PathBuf,
    /// Seed of the random choices (tree, forest, gbm, kmeans; linear and logistic are deterministic).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Classification or regression (tree, forest, gbm).
    #[arg(long, value_enum, default_value = "auto")]
    task: TaskArg,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    hyper: Hyper,
}

/// Hyper-parameters (each applies to some algorithms only; giving one to another is an error).
#[derive(Args)]
struct Hyper {
    /// forest: number of trees [default: 100].
    #[arg(long)]
    trees: Option<usize>,
    /// tree, forest, gbm: maximum depth [default: unlimited].
    #[arg(long)]
    max_depth: Option<usize>,
    /// tree, forest, gbm: rows per leaf at least [default: 1; gbm 20].
    #[arg(long)]
    min_leaf: Option<usize>,
    /// tree, forest: features per split: all, sqrt, log2, a count or a fraction in (0, 1] [default: all; forest
    /// classification sqrt].
    #[arg(long)]
    max_features: Option<String>,
    /// tree, forest (classification): split criterion [default: gini].
    #[arg(long, value_enum)]
    criterion: Option<CriterionArg>,
    /// gbm: leaves per tree [default: 31].
    #[arg(long)]
    leaves: Option<usize>,
    /// gbm: boosting rounds [default: 100].
    #[arg(long)]
    rounds: Option<usize>,
    /// gbm: learning rate [default: 0.1].
    #[arg(long)]
    learning_rate: Option<f64>,
    /// gbm: stop after this many rounds without improvement on --valid.
    #[arg(long)]
    early_stopping: Option<usize>,
    /// gbm: bins per feature, 2..=255 [default: 255].
    #[arg(long)]
    max_bin: Option<usize>,
    /// gbm: L2 penalty on leaf values [default: 0].
    #[arg(long)]
    lambda: Option<f64>,
    /// kmeans: number of clusters [default: 8].
    #[arg(long)]
    k: Option<usize>,
    /// kmeans: independent runs, the best kept [default: 1].
    #[arg(long)]
    n_init: Option<usize>,
    /// logistic, kmeans: iterations at most [default: 100; kmeans 300].
    #[arg(long)]
    max_iter: Option<usize>,
    /// logistic: inverse L2 strength C > 0 [default: 1.0].
    #[arg(long)]
    c: Option<f64>,
    /// logistic: weigh both classes equally in total.
    #[arg(long)]
    balanced: bool,
    /// linear: ridge penalty alpha >= 0 [default: 0].
    #[arg(long)]
    alpha: Option<f64>,
}

impl Hyper {
    /// Refuses a hyper-parameter the algorithm does not have (a typo'd run should not silently train another model).
    fn check(&self, algo: Algo) -> Result<()> {
        use Algo::*;
        let given: [(&str, bool, &[Algo]); 17] = [
            ("--trees", self.trees.is_some(), &[Forest]),
            ("--max-depth", self.max_depth.is_some(), &[Tree, Forest, Gbm]),
            ("--min-leaf", self.min_leaf.is_some(), &[Tree, Forest, Gbm]),
            ("--max-features", self.max_features.is_some(), &[Tree, Forest]),
            ("--criterion", self.criterion.is_some(), &[Tree, Forest]),
            ("--leaves", self.leaves.is_some(), &[Gbm]),
            ("--rounds", self.rounds.is_some(), &[Gbm]),
            ("--learning-rate", self.learning_rate.is_some(), &[Gbm]),
            ("--early-stopping", self.early_stopping.is_some(), &[Gbm]),
            ("--max-bin", self.max_bin.is_some(), &[Gbm]),
            ("--lambda", self.lambda.is_some(), &[Gbm]),
            ("--k", self.k.is_some(), &[Kmeans]),
            ("--n-init", self.n_init.is_some(), &[Kmeans]),
            ("--max-iter", self.max_iter.is_some(), &[Logistic, Kmeans]),
            ("--c", self.c.is_some(), &[Logistic]),
            ("--balanced", self.balanced, &[Logistic]),
            ("--alpha", self.alpha.is_some(), &[Linear]),
        ];
        for (flag, is_given, algos) in given {
            if is_given && !algos.contains(&algo) {
                let names: Vec<&str> = algos.iter().map(|a| a.name()).collect();
                bail!("{flag} does not apply to --algo {} (it is a setting of {})", algo.name(), names.join(", "));
            }
        }
        Ok(())
    }

    fn max_features(&self) -> Result<Option<MaxFeatures>> {
        let Some(s) = self.max_features.as_deref() else { return Ok(None) };
        let mf = match s {
            "all" => MaxFeatures::All,
            "sqrt" => MaxFeatures::Sqrt,
            "log2" => MaxFeatures::Log2,
            _ if s.contains('.') => match s.parse::<f64>() {
                Ok(f) if f > 0.0 && f <= 1.0 => MaxFeatures::Fraction(f),
                _ => bail!("--max-features {s:?}: a fraction must be in (0, 1]"),
            },
            _ => match s.parse::<usize>() {
                Ok(n) if n > 0 => MaxFeatures::Count(n),
                _ => bail!("--max-features {s:?}: expected all, sqrt, log2, a count >= 1 or a fraction in (0, 1]"),
            },
        };
        Ok(Some(mf))
    }
}

/// Arguments of `ml predict`.
#[derive(Args)]
pub struct PredictArgs {
    /// The model folder (or its model.safetensors).
    #[arg(long)]
    model: PathBuf,
    /// The table to score (Parquet, holding the model's feature columns).
    #[arg(long)]
    data: PathBuf,
    /// The scored table to write (Parquet): the input columns plus `prediction` (and `probability`).
    #[arg(long)]
    out: PathBuf,
    /// Print a summary as JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of `ml eval`.
#[derive(Args)]
pub struct EvalArgs {
    /// The model folder (or its model.safetensors).
    #[arg(long)]
    model: PathBuf,
    /// The evaluation table (Parquet).
    #[arg(long)]
    data: PathBuf,
    /// The target column (not needed for kmeans).
    #[arg(long)]
    target: Option<String>,
    /// Print the metrics as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `sovereign ml …`.
pub fn run(command: MlCommand) -> Result<()> {
    match command {
        MlCommand::Train(args) => train(*args),
        MlCommand::Predict(args) => predict(args),
        MlCommand::Eval(args) => eval(args),
    }
}

// ------------------------------------------------------------------ models

/// What a model predicts.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Task {
    Regression,
    /// Class ids `0..classes`.
    Classification {
        classes: usize,
    },
    Clustering,
}

impl Task {
    fn name(self) -> &'static str {
        match self {
            Task::Regression => "regression",
            Task::Classification { .. } => "classification",
            Task::Clustering => "clustering",
        }
    }
}

/// A model of any kind `sovereign ml` trains.
enum Model {
    Linear(LinearModel),
    Logistic(LogisticModel),
    Tree(DecisionTree),
    Forest(RandomForest),
    Gbm(Gbm),
    KMeans(KMeansModel),
}

/// Predictions of a model on a matrix.
struct Predictions {
    /// Values (regression), class ids (classification) or cluster ids (clustering).
    values: Vec<f32>,
    /// P(class 1) for a binary classifier; the predicted class's probability for more classes.
    probability: Option<Vec<f32>>,
    /// Whether `values` are ids (classes, clusters) rather than real values.
    ids: bool,
}

/// Row-wise: the value at column 1 of a binary `rows × 2` table, else the largest of each row.
fn class_probability(proba: Vec<f32>, classes: usize) -> Vec<f32> {
    if classes == 2 {
        proba.chunks_exact(2).map(|p| p[1]).collect()
    } else {
        proba.chunks_exact(classes.max(1)).map(|p| p.iter().copied().fold(0.0, f32::max)).collect()
    }
}

impl Model {
    fn kind(&self) -> &'static str {
        match self {
            Model::Linear(_) => "linear",
            Model::Logistic(_) => "logistic",
            Model::Tree(_) => "tree",
            Model::Forest(_) => "forest",
            Model::Gbm(_) => "gbm",
            Model::KMeans(_) => "kmeans",
        }
    }

    fn task(&self) -> Task {
        let by_classes = |c: usize| if c == 0 { Task::Regression } else { Task::Classification { classes: c } };
        match self {
            Model::Linear(_) => Task::Regression,
            Model::Logistic(_) => Task::Classification { classes: 2 },
            Model::Tree(t) => by_classes(t.n_classes()),
            Model::Forest(f) => by_classes(f.n_classes()),
            Model::Gbm(g) if g.objective() == Objective::Binary => Task::Classification { classes: 2 },
            Model::Gbm(_) => Task::Regression,
            Model::KMeans(_) => Task::Clustering,
        }
    }

    fn save(&self, path: &Path, meta: &ModelMeta) -> kernels::Result<()> {
        match self {
            Model::Linear(m) => io::save(path, m, meta),
            Model::Logistic(m) => io::save(path, m, meta),
            Model::Tree(m) => io::save(path, m, meta),
            Model::Forest(m) => io::save(path, m, meta),
            Model::Gbm(m) => io::save(path, m, meta),
            Model::KMeans(m) => io::save(path, m, meta),
        }
    }

    /// Loads a model file of any kind (its header names the kind).
    fn load(path: &Path) -> Result<(Model, ModelMeta)> {
        fn wrap<M>(r: kernels::Result<(M, ModelMeta)>, f: fn(M) -> Model) -> kernels::Result<(Model, ModelMeta)> {
            r.map(|(m, meta)| (f(m), meta))
        }
        let kind = match io::load::<LinearModel>(path) {
            Ok((m, meta)) => return Ok((Model::Linear(m), meta)),
            Err(kernels::Error::MlModelKind { found, .. }) => found,
            Err(e) => return Err(e.into()),
        };
        let loaded = match kind.as_str() {
            "logistic" => wrap(io::load(path), Model::Logistic),
            "tree" => wrap(io::load(path), Model::Tree),
            "forest" => wrap(io::load(path), Model::Forest),
            "gbm" => wrap(io::load(path), Model::Gbm),
            "kmeans" => wrap(io::load(path), Model::KMeans),
            other => bail!(
                "model file {} holds a {other:?} model, which sovereign ml cannot use \
                 (kinds: linear, logistic, tree, forest, gbm, kmeans)",
                path.display()
            ),
        };
        Ok(loaded?)
    }

    fn predict(&self, x: &Matrix) -> kernels::Result<Predictions> {
        let task = self.task();
        let ids = !matches!(task, Task::Regression);
        let (values, probability) = match self {
            Model::Linear(m) => (m.predict(x)?, None),
            Model::Logistic(m) => (m.predict(x, 0.5)?, Some(m.predict_proba(x)?)),
            Model::Tree(m) => match task {
                Task::Classification { classes } => {
                    (m.predict(x)?, Some(class_probability(m.predict_proba(x)?, classes)))
                }
                _ => (m.predict(x)?, None),
            },
            Model::Forest(m) => match task {
                Task::Classification { classes } => {
                    (m.predict(x)?, Some(class_probability(m.predict_proba(x)?, classes)))
                }
                _ => (m.predict(x)?, None),
            },
            Model::Gbm(m) => match task {
                Task::Classification { .. } => (m.predict(x)?, Some(m.predict_proba(x)?)),
                _ => (m.predict(x)?, None),
            },
            Model::KMeans(m) => (m.predict(x)?.into_iter().map(|c| c as f32).collect(), None),
        };
        Ok(Predictions { values, probability, ids })
    }

    /// The metrics of the model on `x` (and `y`, the target, for supervised models), names prefixed.
    fn metrics(&self, x: &Matrix, y: Option<&[f32]>, prefix: &str) -> Result<BTreeMap<String, f64>> {
        let mut out = BTreeMap::new();
        let mut put = |name: &str, v: kernels::Result<f64>| {
            if let Ok(v) = v
                && v.is_finite()
            {
                out.insert(format!("{prefix}{name}"), v);
            }
        };
        if let Model::KMeans(m) = self {
            put("inertia", m.inertia_of(x));
            return Ok(out);
        }
        let y = y.context("a target column is needed to evaluate a supervised model")?;
        let p = self.predict(x)?;
        match self.task() {
            Task::Regression => {
                put("rmse", metrics::rmse(y, &p.values));
                put("r2", metrics::r2(y, &p.values));
            }
            Task::Classification { classes } => {
                put("accuracy", metrics::accuracy(y, &p.values));
                if let (2, Some(proba)) = (classes, &p.probability) {
                    // Undefined (and left out) when the table holds one class only.
                    put("roc_auc", metrics::roc_auc(y, proba));
                    put("pr_auc", metrics::pr_auc(y, proba));
                    put("log_loss", metrics::log_loss(y, proba));
                }
            }
            Task::Clustering => {}
        }
        Ok(out)
    }
}

// ------------------------------------------------------------------ tables

/// Reads a whole Parquet table into one batch, refusing an empty one.
fn read_table(path: &Path, what: &str) -> Result<RecordBatch> {
    let pb = spinner(format!("reading {}", path.display()));
    let read = data::read_parquet(path, &ReadOptions::default()).with_context(|| format!("reading {what}"))?;
    let batch = read.concat().with_context(|| format!("reading {what} {}", path.display()))?;
    pb.finish_and_clear();
    if batch.num_rows() == 0 {
        bail!("{what} {} has no rows", path.display());
    }
    Ok(batch)
}

fn column_names(batch: &RecordBatch) -> Vec<String> {
    batch.schema().fields().iter().map(|f| f.name().clone()).collect()
}

/// The feature matrix of `batch`: the columns `names`, errors naming the file.
fn features_of(batch: &RecordBatch, names: &[String], path: &Path) -> Result<Matrix> {
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    Matrix::from_batch(batch, &refs).with_context(|| format!("feature columns of {}", path.display()))
}

/// The target column of `batch` as f32, refusing a non-numeric column and a null.
fn target_of(batch: &RecordBatch, target: &str, path: &Path) -> Result<Vec<f32>> {
    let y =
        Matrix::from_batch(batch, &[target]).with_context(|| format!("target column of {}", path.display()))?.column(0);
    if let Some(i) = y.iter().position(|v| v.is_nan()) {
        bail!("target column {target:?} is null (or NaN) at row {i} of {}", path.display());
    }
    if let Some(i) = y.iter().position(|v| v.is_infinite()) {
        bail!("target column {target:?} is infinite at row {i} of {}", path.display());
    }
    Ok(y)
}

/// Checks class ids: whole numbers from 0, only 0/1 for a binary learner, and (to train) at least two classes.
fn check_classes(y: &[f32], target: &str, path: &Path, algo: Algo, binary: bool, training: bool) -> Result<usize> {
    if let Some(i) = y.iter().position(|&v| v < 0.0 || v.fract() != 0.0 || v > 65_535.0) {
        bail!(
            "target column {target:?} holds {} at row {i} of {}: a classifier needs class ids 0, 1, 2, … \
             (use --task regression for a numeric target)",
            y[i],
            path.display()
        );
    }
    let mut classes: Vec<u32> = y.iter().map(|&v| v as u32).collect();
    classes.sort_unstable();
    classes.dedup();
    if let ([only], true) = (classes.as_slice(), training) {
        bail!(
            "target column {target:?} of {} has one class only ({only}): a classifier needs at least two",
            path.display()
        );
    }
    if binary && let Some(&c) = classes.iter().find(|&&c| c > 1) {
        bail!(
            "target column {target:?} of {} holds class {c}: {} is a binary classifier (labels 0 and 1); \
             tree and forest take more classes",
            path.display(),
            algo.name()
        );
    }
    Ok(classes.last().map_or(0, |&c| c as usize + 1))
}

/// A library error about a matrix cell, told with the column's name.
fn explain(e: kernels::Error, x: &Matrix, algo: Algo) -> anyhow::Error {
    match e {
        kernels::Error::MlNonFinite { row, column } => {
            let name = x.names().get(column).map_or("?", String::as_str);
            anyhow!(
                "feature column {name:?} has a missing (null/NaN) or infinite value at row {row}: {} needs \
                 complete finite rows (tree, forest and gbm accept missing values, never infinities)",
                algo.name()
            )
        }
        e => anyhow::Error::new(e).context(format!("training {}", algo.name())),
    }
}

/// The model file inside a model folder (or the path itself when it is a file).
fn model_path(p: &Path) -> Result<PathBuf> {
    if p.is_dir() {
        let f = p.join(MODEL_FILE);
        if !f.is_file() {
            bail!("no {MODEL_FILE} in {} (write one with `sovereign ml train --out {}`)", p.display(), p.display());
        }
        return Ok(f);
    }
    if !p.exists() {
        bail!("model {} does not exist", p.display());
    }
    Ok(p.to_path_buf())
}

fn print_metrics(metrics: &BTreeMap<String, f64>) {
    for (k, v) in metrics {
        println!("  {k:<20} {v:.6}");
    }
}

// ------------------------------------------------------------------ commands

fn train(args: TrainArgs) -> Result<()> {
    let algo = args.algo;
    let hp = &args.hyper;
    hp.check(algo)?;
    if args.task != TaskArg::Auto && matches!(algo, Algo::Linear | Algo::Logistic | Algo::Kmeans) {
        bail!("--task applies to tree, forest and gbm ({} is fixed)", algo.name());
    }
    if hp.early_stopping.is_some() && args.valid.is_none() {
        bail!("--early-stopping needs --valid (the table whose loss it watches)");
    }
    let batch = read_table(&args.data, "--data")?;
    let all = column_names(&batch);
    let target = match (&args.target, algo) {
        (Some(t), _) => {
            if !all.contains(t) {
                bail!("no target column {t:?} in {} (columns: {})", args.data.display(), all.join(", "));
            }
            Some(t.clone())
        }
        (None, Algo::Kmeans) => None,
        (None, _) => bail!("--target is required for --algo {}", algo.name()),
    };
    let features: Vec<String> = match &args.features {
        Some(f) => {
            if let Some(t) = target.as_ref().filter(|t| f.contains(t)) {
                bail!("the target column {t:?} is also in --features");
            }
            f.clone()
        }
        None => {
            let schema = batch.schema();
            let numeric = |dt: &DataType| dt.is_integer() || dt.is_floating() || *dt == DataType::Boolean;
            let others: Vec<&Arc<Field>> =
                schema.fields().iter().filter(|f| Some(f.name()) != target.as_ref()).collect();
            if let Some(f) = others.iter().find(|f| !numeric(f.data_type())) {
                bail!(
                    "column {:?} of {} is {}, not numeric: a feature must be numeric or boolean \
                     (choose the feature columns with --features)",
                    f.name(),
                    args.data.display(),
                    f.data_type()
                );
            }
            others.iter().map(|f| f.name().clone()).collect()
        }
    };
    if features.is_empty() {
        bail!("{} has no feature column besides the target", args.data.display());
    }
    let x = features_of(&batch, &features, &args.data)?;
    let y = target.as_deref().map(|t| target_of(&batch, t, &args.data)).transpose()?;

    let classify = match (algo, args.task) {
        (Algo::Logistic, _) => true,
        (Algo::Linear | Algo::Kmeans, _) => false,
        (_, TaskArg::Classification) => true,
        (_, TaskArg::Regression) => false,
        (_, TaskArg::Auto) => {
            let dt = batch.schema().field_with_name(target.as_deref().unwrap_or_default())?.data_type().clone();
            dt.is_integer() || dt == DataType::Boolean
        }
    };
    if let (true, Some(y), Some(t)) = (classify, &y, &target) {
        check_classes(y, t, &args.data, algo, matches!(algo, Algo::Logistic | Algo::Gbm), true)?;
    }
    let valid = match &args.valid {
        Some(path) => {
            let vb = read_table(path, "--valid")?;
            let vx = features_of(&vb, &features, path)?;
            let vy = target.as_deref().map(|t| target_of(&vb, t, path)).transpose()?;
            Some((vx, vy))
        }
        None => None,
    };

    let what = match algo {
        Algo::Forest => format!("training forest of {} trees", hp.trees.unwrap_or(100)),
        Algo::Gbm => format!("training gbm ({} rounds)", hp.rounds.unwrap_or(100)),
        a => format!("training {}", a.name()),
    };
    let pb = spinner(format!("{what} on {} rows × {} features", x.rows(), x.cols()));
    let started = Instant::now();
    let y_ref = y.as_deref().unwrap_or_default();
    let criterion = match (classify, hp.criterion) {
        (false, Some(_)) => bail!("--criterion applies to classification (this is a regression)"),
        (false, None) => Criterion::Mse,
        (true, Some(CriterionArg::Entropy)) => Criterion::Entropy,
        (true, _) => Criterion::Gini,
    };
    let tree_cfg = || -> Result<TreeConfig> {
        let d = TreeConfig::default();
        Ok(TreeConfig {
            criterion,
            max_depth: hp.max_depth,
            min_samples_leaf: hp.min_leaf.unwrap_or(d.min_samples_leaf),
            max_features: hp.max_features()?.unwrap_or(MaxFeatures::All),
            seed: args.seed,
            ..d
        })
    };
    let fitted = match algo {
        Algo::Linear => {
            let cfg = LinearConfig { alpha: hp.alpha.unwrap_or(0.0), ..LinearConfig::default() };
            kernels::ml::linear::fit(&x, y_ref, &cfg).map(Model::Linear)
        }
        Algo::Logistic => {
            let d = LogisticConfig::default();
            let cfg = LogisticConfig {
                c: hp.c.unwrap_or(d.c),
                class_weight: if hp.balanced { ClassWeight::Balanced } else { ClassWeight::Unweighted },
                max_iter: hp.max_iter.unwrap_or(d.max_iter),
                ..d
            };
            kernels::ml::logistic::fit(&x, y_ref, &cfg).map(Model::Logistic)
        }
        Algo::Tree => kernels::ml::tree::fit(&x, y_ref, &tree_cfg()?).map(Model::Tree),
        Algo::Forest => {
            let cfg = ForestConfig {
                n_trees: hp.trees.unwrap_or(100),
                tree: tree_cfg()?,
                max_features: hp.max_features()?,
                seed: args.seed,
                ..ForestConfig::default()
            };
            kernels::ml::forest::fit(&x, y_ref, &cfg).map(Model::Forest)
        }
        Algo::Gbm => {
            let d = GbmConfig::default();
            let cfg = GbmConfig {
                objective: if classify { Objective::Binary } else { Objective::Regression },
                num_iterations: hp.rounds.unwrap_or(d.num_iterations),
                learning_rate: hp.learning_rate.unwrap_or(d.learning_rate),
                num_leaves: hp.leaves.unwrap_or(d.num_leaves),
                max_depth: hp.max_depth,
                min_data_in_leaf: hp.min_leaf.unwrap_or(d.min_data_in_leaf),
                lambda_l2: hp.lambda.unwrap_or(d.lambda_l2),
                max_bin: hp.max_bin.unwrap_or(d.max_bin),
                early_stopping_rounds: hp.early_stopping,
                seed: args.seed,
                ..d
            };
            let v = valid.as_ref().and_then(|(vx, vy)| vy.as_deref().map(|vy| (vx, vy)));
            kernels::ml::gbm::fit(&x, y_ref, v, &cfg).map(Model::Gbm)
        }
        Algo::Kmeans => {
            let d = KMeansConfig::default();
            let cfg = KMeansConfig {
                k: hp.k.unwrap_or(d.k),
                n_init: hp.n_init.unwrap_or(d.n_init),
                max_iter: hp.max_iter.unwrap_or(d.max_iter),
                seed: args.seed,
                ..d
            };
            kernels::ml::kmeans::fit(&x, &cfg).map(Model::KMeans)
        }
    };
    let model = fitted.map_err(|e| explain(e, &x, algo))?;
    let seconds = started.elapsed().as_secs_f64();
    pb.finish_and_clear();

    let pb = spinner("computing metrics".to_string());
    let mut metrics = model.metrics(&x, y.as_deref(), "train_")?;
    if let Some((vx, vy)) = &valid {
        metrics.extend(model.metrics(vx, vy.as_deref(), "valid_").map_err(|e| explain_any(e, vx, algo))?);
    }
    if let Model::Forest(f) = &model
        && let Some(oob) = f.oob_score()
    {
        metrics.insert("oob_score".into(), oob);
    }
    if let Model::Gbm(g) = &model
        && let Some(best) = g.best_iteration()
    {
        metrics.insert("best_iteration".into(), best as f64);
    }
    pb.finish_and_clear();

    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let path = args.out.join(MODEL_FILE);
    let mut meta = ModelMeta::for_data(&x);
    meta.metrics = metrics.clone();
    model.save(&path, &meta).with_context(|| format!("saving {}", path.display()))?;

    let task = model.task();
    if args.json {
        print_json(&json!({
            "algo": algo.name(),
            "task": task.name(),
            "classes": match task { Task::Classification { classes } => Some(classes), _ => None },
            "rows": x.rows(),
            "features": features,
            "target": target,
            "data_fingerprint": meta.data_fingerprint,
            "seconds": seconds,
            "metrics": metrics,
            "model": path,
        }));
    } else {
        let classes = match task {
            Task::Classification { classes } => format!(", {classes} classes"),
            _ => String::new(),
        };
        println!(
            "trained {} ({}{classes}) on {} rows × {} features of {} in {seconds:.2} s",
            algo.name(),
            task.name(),
            x.rows(),
            x.cols(),
            args.data.display()
        );
        print_metrics(&metrics);
        println!("model: {}", path.display());
    }
    Ok(())
}

/// [`explain`] for an error already wrapped by anyhow.
fn explain_any(e: anyhow::Error, x: &Matrix, algo: Algo) -> anyhow::Error {
    match e.downcast::<kernels::Error>() {
        Ok(k) => explain(k, x, algo),
        Err(e) => e,
    }
}

/// Loads the model of `--model` and the matrix of its features from `batch` (checked by name and order).
fn model_and_features(model: &Path, batch: &RecordBatch, data: &Path) -> Result<(Model, ModelMeta, Matrix)> {
    let path = model_path(model)?;
    let (model, meta) = Model::load(&path).with_context(|| format!("loading model {}", path.display()))?;
    let x = features_of(batch, &meta.feature_names, data)
        .with_context(|| format!("the model {} needs the columns {:?}", path.display(), meta.feature_names))?;
    meta.check_columns(&x)?;
    Ok((model, meta, x))
}

fn predict(args: PredictArgs) -> Result<()> {
    let batch = read_table(&args.data, "--data")?;
    let (model, _meta, x) = model_and_features(&args.model, &batch, &args.data)?;
    for name in ["prediction", "probability"] {
        if batch.schema().column_with_name(name).is_some() {
            bail!("{} already has a column {name:?}, which predict would write", args.data.display());
        }
    }
    let pb = spinner(format!("predicting {} rows with a {} model", x.rows(), model.kind()));
    let p = model.predict(&x).map_err(|e| explain(e, &x, algo_of(&model)))?;
    pb.finish_and_clear();

    let mut fields: Vec<Arc<Field>> = batch.schema().fields().iter().cloned().collect();
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    let prediction: ArrayRef = if p.ids {
        Arc::new(data::Column::I64(p.values.iter().map(|&v| v as i64).collect()).into_array())
    } else {
        Arc::new(data::Column::F64(p.values.iter().map(|&v| f64::from(v)).collect()).into_array())
    };
    fields.push(Arc::new(Field::new("prediction", prediction.data_type().clone(), false)));
    columns.push(prediction);
    if let Some(proba) = &p.probability {
        let a: ArrayRef = data::Column::F64(proba.iter().map(|&v| f64::from(v)).collect()).into_array();
        fields.push(Arc::new(Field::new("probability", DataType::Float64, false)));
        columns.push(a);
    }
    let schema = Arc::new(Schema::new(fields));
    let out = RecordBatch::try_new(schema.clone(), columns).context("building the scored table")?;
    data::write_parquet(&args.out, &schema, &[out], &WriteOptions::default())
        .with_context(|| format!("writing {}", args.out.display()))?;
    if args.json {
        print_json(&json!({
            "model": model.kind(),
            "task": model.task().name(),
            "rows": x.rows(),
            "out": args.out,
            "columns": if p.probability.is_some() { vec!["prediction", "probability"] } else { vec!["prediction"] },
        }));
    } else {
        println!(
            "scored {} rows with a {} model ({}): {}",
            x.rows(),
            model.kind(),
            model.task().name(),
            args.out.display()
        );
    }
    Ok(())
}

/// The algorithm that makes a model (for error messages).
fn algo_of(model: &Model) -> Algo {
    match model {
        Model::Linear(_) => Algo::Linear,
        Model::Logistic(_) => Algo::Logistic,
        Model::Tree(_) => Algo::Tree,
        Model::Forest(_) => Algo::Forest,
        Model::Gbm(_) => Algo::Gbm,
        Model::KMeans(_) => Algo::Kmeans,
    }
}

fn eval(args: EvalArgs) -> Result<()> {
    let batch = read_table(&args.data, "--data")?;
    let (model, meta, x) = model_and_features(&args.model, &batch, &args.data)?;
    let y = match (&args.target, model.task()) {
        (Some(t), _) => {
            if meta.feature_names.contains(t) {
                bail!("--target {t:?} is one of the model's feature columns");
            }
            Some(target_of(&batch, t, &args.data)?)
        }
        (None, Task::Clustering) => None,
        (None, _) => bail!("--target is required to evaluate a {} model", model.kind()),
    };
    if let (Task::Classification { .. }, Some(y), Some(t)) = (model.task(), &y, &args.target) {
        let binary = matches!(model, Model::Logistic(_) | Model::Gbm(_));
        check_classes(y, t, &args.data, algo_of(&model), binary, false)?;
    }
    let pb = spinner(format!("evaluating a {} model on {} rows", model.kind(), x.rows()));
    let metrics = model.metrics(&x, y.as_deref(), "").map_err(|e| explain_any(e, &x, algo_of(&model)))?;
    pb.finish_and_clear();
    if args.json {
        print_json(&json!({
            "model": model.kind(),
            "task": model.task().name(),
            "rows": x.rows(),
            "metrics": metrics,
            "training_metrics": meta.metrics,
            "data_fingerprint": x.fingerprint(),
            "training_data_fingerprint": meta.data_fingerprint,
        }));
    } else {
        println!("{} model ({}) on {} rows of {}:", model.kind(), model.task().name(), x.rows(), args.data.display());
        print_metrics(&metrics);
    }
    Ok(())
}
