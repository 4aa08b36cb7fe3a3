//! LightGBM's text model format (`Booster.save_model`) read into a [`FlatForest`], so that a model
//! trained by LightGBM is served by kernels' node-array walk or compiled by [`super::compiled`] (the
//! role lleaves and Treelite play for LightGBM).
//!
//! Reference: LightGBM's `GBDT::SaveModelToString` and `Tree::ToString` / `Tree::NumericalDecision`
//! (`src/boosting/gbdt_model_text.cpp`, `include/LightGBM/tree.h`): a header of `key=value` lines, then
//! one `Tree=i` block per tree with `split_feature`, `threshold` (f64), `decision_type` (bit 0
//! categorical, bit 1 default left, bits 2–3 the missing type: 0 none, 1 zero, 2 NaN), `left_child` and
//! `right_child` (a negative child `c` is leaf `!c`), `leaf_value` (shrinkage already applied).
//!
//! What carries over exactly: LightGBM compares the f64 `x <= threshold` with `x` a widened f32, which
//! equals the f32 comparison against the largest f32 not above the threshold; a NaN with missing type
//! "none" is read as 0.0, so it goes to the side 0.0 goes to; with missing type "NaN" it goes to the
//! default side. What is rounded: leaf values are stored as f32 (as Treelite does for f32 input), so
//! scores differ from LightGBM's f64 sums in the last digits (the bench records the largest difference).
//! Refused with [`Error::MlModelParts`]: several classes, categorical splits, zero-as-missing, linear
//! trees, objectives other than binary log-loss and regression.

use std::path::Path;

use super::flat::{Combine, DEFAULT_LEFT, FlatForest, FlatNode, LEAF, Link};
use crate::{Error, Result};

fn refuse(name: &str, reason: impl Into<String>) -> Error {
    Error::MlModelParts { name: name.to_string(), reason: reason.into() }
}

/// Reads a LightGBM text model file. See [`parse`].
///
/// # Errors
/// [`Error::MlModelFile`] when the file cannot be read; what [`parse`] refuses.
pub fn load(path: &Path) -> Result<FlatForest> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::MlModelFile { path: path.to_path_buf(), reason: e.to_string() })?;
    parse(&text)
}

/// Parses the text of a LightGBM model (single output: binary log-loss gives P(y = 1), regression the
/// value).
///
/// # Errors
/// [`Error::MlModelParts`] naming the key or tree at fault: missing or malformed keys, arrays of the
/// wrong length, child references out of range, or a model feature this reader does not carry over
/// (see the module docs).
pub fn parse(text: &str) -> Result<FlatForest> {
    let mut lines = text.lines();
    let mut header = Vec::new();
    for line in lines.by_ref() {
        if line.starts_with("Tree=") {
            header.push(line);
            break;
        }
        header.push(line);
    }
    let get = |key: &str| header.iter().find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')));
    if header.first().map(|l| l.trim()) != Some("tree") {
        return Err(refuse("header", "not a LightGBM text model (the first line is not `tree`)"));
    }
    let classes = get("num_class").unwrap_or("1");
    if classes.trim() != "1" || get("num_tree_per_iteration").is_some_and(|v| v.trim() != "1") {
        return Err(refuse("num_class", format!("{classes} classes; only single-output models are read")));
    }
    let max_feature: usize = number("max_feature_idx", get("max_feature_idx"))?;
    if max_feature >= MAX_FEATURES {
        return Err(refuse("max_feature_idx", format!("{max_feature} is more features than {MAX_FEATURES}")));
    }
    let objective = get("objective").ok_or_else(|| refuse("objective", "missing"))?;
    let link = link(objective)?;
    let mut forest = Builder { n_features: max_feature + 1, ..Builder::default() };
    // The tree blocks: `Tree=i` then key=value lines up to a blank line; `end of trees` closes them.
    let mut block: Vec<&str> = Vec::new();
    let mut tree = 0usize;
    let mut in_tree = header.last().is_some_and(|l| l.starts_with("Tree="));
    for line in lines {
        if in_tree && line.trim().is_empty() {
            forest.push(tree, &block)?;
            block.clear();
            tree += 1;
            in_tree = false;
        } else if line.starts_with("Tree=") {
            in_tree = true;
        } else if line.trim() == "end of trees" {
            break;
        } else if in_tree {
            block.push(line);
        }
    }
    if in_tree {
        forest.push(tree, &block)?;
    }
    if forest.roots.is_empty() {
        return Err(refuse("Tree", "the model has no trees"));
    }
    let Builder { n_features, roots, nodes, leaves } = forest;
    FlatForest::from_parts(n_features, roots, nodes, leaves, Combine::Sum { base: 0.0, link })
}

/// The link of LightGBM's objective line (`binary sigmoid:1`, `regression`, …).
fn link(objective: &str) -> Result<Link> {
    let mut words = objective.split_whitespace();
    match words.next() {
        Some("binary") => {
            let sigmoid = words.find_map(|w| w.strip_prefix("sigmoid:")).unwrap_or("1");
            if sigmoid.parse::<f64>().ok() != Some(1.0) {
                return Err(refuse("objective", format!("binary with sigmoid:{sigmoid}; only sigmoid:1 is read")));
            }
            Ok(Link::Sigmoid)
        }
        Some("regression" | "regression_l2" | "l2" | "mean_squared_error" | "mse") => Ok(Link::Identity),
        other => Err(refuse("objective", format!("{other:?} is not read (binary and regression are)"))),
    }
}

/// The most features a model may have (a feature index must fit a node's 31 bits, and a row's bytes an
/// `i32` displacement of the compiled code).
pub const MAX_FEATURES: usize = 1 << 28;

fn number<T: std::str::FromStr>(key: &str, value: Option<&str>) -> Result<T> {
    let v = value.ok_or_else(|| refuse(key, "missing"))?;
    v.trim().parse().map_err(|_| refuse(key, format!("{v:?} is not a number of the expected kind")))
}

/// The largest f32 not above `t`: `(x as f64) <= t` exactly when `x <= below(t)` for every f32 `x`.
fn below(t: f64) -> f32 {
    let f = t as f32;
    if f64::from(f) > t { f.next_down() } else { f }
}

#[derive(Default)]
struct Builder {
    n_features: usize,
    roots: Vec<u32>,
    nodes: Vec<FlatNode>,
    leaves: Vec<f32>,
}

impl Builder {
    /// Appends tree `t` from its block of `key=value` lines, internal nodes in preorder.
    fn push(&mut self, t: usize, block: &[&str]) -> Result<()> {
        let name = format!("Tree={t}");
        let get = |key: &str| block.iter().find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')));
        let list = |key: &str| -> Vec<&str> { get(key).map(|v| v.split_whitespace().collect()).unwrap_or_default() };
        let leaves_n: usize = number(&format!("{name} num_leaves"), get("num_leaves"))?;
        if get("num_cat").is_some_and(|v| v.trim() != "0") {
            return Err(refuse(&name, "categorical splits are not read"));
        }
        if get("is_linear").is_some_and(|v| v.trim() != "0") {
            return Err(refuse(&name, "linear trees are not read"));
        }
        let floats = |key: &str| -> Result<Vec<f64>> {
            list(key)
                .iter()
                .map(|v| v.parse().map_err(|_| refuse(&format!("{name} {key}"), format!("{v:?} is not a number"))))
                .collect()
        };
        let ints = |key: &str| -> Result<Vec<i64>> {
            list(key)
                .iter()
                .map(|v| v.parse().map_err(|_| refuse(&format!("{name} {key}"), format!("{v:?} is not an integer"))))
                .collect()
        };
        let values = floats("leaf_value")?;
        if leaves_n == 0 || values.len() != leaves_n {
            return Err(refuse(&name, format!("{} leaf values for num_leaves={leaves_n}", values.len())));
        }
        let base = self.leaves.len();
        if base + leaves_n >= LEAF as usize {
            return Err(refuse(&name, "more leaves than a flat forest can index"));
        }
        self.leaves.extend(values.iter().map(|&v| v as f32));
        if leaves_n == 1 {
            self.roots.push(LEAF | base as u32);
            return Ok(());
        }
        let internal = leaves_n - 1;
        let (feature, threshold, kind) = (ints("split_feature")?, floats("threshold")?, ints("decision_type")?);
        let (left, right) = (ints("left_child")?, ints("right_child")?);
        for (key, n) in [
            ("split_feature", feature.len()),
            ("threshold", threshold.len()),
            ("decision_type", kind.len()),
            ("left_child", left.len()),
            ("right_child", right.len()),
        ] {
            if n != internal {
                return Err(refuse(&format!("{name} {key}"), format!("{n} values for {internal} internal nodes")));
            }
        }
        // A child: LightGBM's index (node >= 0, leaf !c when negative) checked and mapped.
        let child = |c: i64| -> Result<std::result::Result<usize, u32>> {
            if c >= 0 && (c as u64) < internal as u64 {
                Ok(Ok(c as usize))
            } else if c < 0 && ((!c) as u64) < leaves_n as u64 {
                Ok(Err(LEAF | (base + (!c) as usize) as u32))
            } else {
                Err(refuse(&name, format!("child {c} is out of range")))
            }
        };
        // (LightGBM node, new parent, 0 = root / 1 = left / 2 = right)
        let mut stack = vec![(0usize, 0usize, 0u8)];
        let mut seen = 0;
        while let Some((old, parent, side)) = stack.pop() {
            seen += 1;
            if seen > internal {
                return Err(refuse(&name, "a node is reached twice (the children do not form a tree)"));
            }
            let f = usize::try_from(feature[old]).unwrap_or(usize::MAX);
            if f >= self.n_features {
                return Err(refuse(&name, format!("node {old} tests feature {} of {}", feature[old], self.n_features)));
            }
            let Ok(d) = u8::try_from(kind[old]) else {
                return Err(refuse(&name, format!("decision_type {} of node {old} is not a byte", kind[old])));
            };
            if d & 1 != 0 {
                return Err(refuse(&name, "categorical splits are not read"));
            }
            let t = below(threshold[old]);
            let default_left = match (d >> 2) & 3 {
                0 => 0.0 <= t, // a NaN is read as 0.0
                2 => d & 2 != 0,
                1 => return Err(refuse(&name, "zero-as-missing splits are not read")),
                m => return Err(refuse(&name, format!("missing type {m} of node {old} is unknown"))),
            };
            let id = self.nodes.len();
            self.nodes.push(FlatNode {
                threshold: t,
                feature: f as u32 | if default_left { DEFAULT_LEFT } else { 0 },
                left: 0,
                right: 0,
            });
            let reference = id as u32;
            match side {
                0 => self.roots.push(reference),
                1 => self.nodes[parent].left = reference,
                _ => self.nodes[parent].right = reference,
            }
            for (c, s) in [(right[old], 2u8), (left[old], 1u8)] {
                match child(c)? {
                    Ok(node) => stack.push((node, id, s)),
                    Err(leaf) => {
                        if s == 1 {
                            self.nodes[id].left = leaf;
                        } else {
                            self.nodes[id].right = leaf;
                        }
                    }
                }
            }
        }
        Ok(())
    }
}
