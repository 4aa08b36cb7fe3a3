//! The order a pipeline's steps run in: a topological order of the dependency graph.
//!
//! Each [`Step`] names the steps it runs after. Kahn's algorithm (Kahn, CACM 1962) repeatedly
//! takes a step whose dependencies have all run; when several are ready, the one declared first
//! goes first, so that the order is deterministic and reads like the pipeline file. When no step
//! is ready but some remain, the remaining ones contain a cycle, and the error names one.

use std::collections::{BinaryHeap, HashMap};

use crate::{Error, Result};

// ANCHOR: step
/// One step of a pipeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// Its name, unique in the pipeline.
    pub name: String,
    /// The names of the steps it runs after, in the order written (a name may repeat).
    pub after: Vec<String>,
}

impl Step {
    /// A step named `name` that runs after `after`. Given.
    pub fn new(name: &str, after: &[&str]) -> Step {
        Step { name: name.to_string(), after: after.iter().map(|s| s.to_string()).collect() }
    }
}
// ANCHOR_END: step

// ANCHOR: topo_order
/// Task c3w5.topo-order (10 points): the indices of `steps` in the order they run.
///
/// 1. Validate: two steps with one name is [`Error::InvalidInput`]; a name in `after` that is no
///    step is [`Error::Unknown`] with `kind: "step"` (checked in declaration order, the first
///    unknown name of the first step that has one).
/// 2. Kahn's algorithm: count each step's unfinished dependencies (a repeated name counts once);
///    the ready steps wait in a min-heap of indices; pop the smallest, append it, and decrement
///    its dependants' counts, pushing those that reach 0. The result is the smallest order by
///    declaration index among all valid orders.
/// 3. If steps remain when the heap is empty, return [`Error::Cycle`] with one cycle, found by
///    this walk: start at the remaining step with the smallest index; from each step go to the
///    first name in its `after` that is still remaining; stop at the first step visited twice.
///    The cycle is the walk from that step's first visit up to (not including) its second, as
///    names: each runs after the next, the last after the first. A step that runs after itself
///    is a cycle of one.
pub fn topo_order(steps: &[Step]) -> Result<Vec<usize>> {
    todo!("c3w5.topo-order")
}
// ANCHOR_END: topo_order
