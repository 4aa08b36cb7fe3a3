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
    // BEGIN SOLUTION c3w5.topo-order
    let mut index: HashMap<&str, usize> = HashMap::with_capacity(steps.len());
    for (i, s) in steps.iter().enumerate() {
        if index.insert(s.name.as_str(), i).is_some() {
            return Err(Error::InvalidInput(format!("two steps are named `{}`", s.name)));
        }
    }
    let mut deps: Vec<Vec<usize>> = Vec::with_capacity(steps.len());
    for s in steps {
        let mut d: Vec<usize> = Vec::with_capacity(s.after.len());
        for name in &s.after {
            let &j = index.get(name.as_str()).ok_or_else(|| Error::Unknown { kind: "step", name: name.clone() })?;
            if !d.contains(&j) {
                d.push(j);
            }
        }
        deps.push(d);
    }
    let mut dependants: Vec<Vec<usize>> = vec![Vec::new(); steps.len()];
    let mut waiting: Vec<usize> = deps.iter().map(Vec::len).collect();
    for (i, d) in deps.iter().enumerate() {
        for &j in d {
            dependants[j].push(i);
        }
    }
    let mut ready: BinaryHeap<std::cmp::Reverse<usize>> =
        (0..steps.len()).filter(|&i| waiting[i] == 0).map(std::cmp::Reverse).collect();
    let mut order = Vec::with_capacity(steps.len());
    let mut done = vec![false; steps.len()];
    while let Some(std::cmp::Reverse(i)) = ready.pop() {
        order.push(i);
        done[i] = true;
        for &k in &dependants[i] {
            waiting[k] -= 1;
            if waiting[k] == 0 {
                ready.push(std::cmp::Reverse(k));
            }
        }
    }
    if order.len() == steps.len() {
        return Ok(order);
    }
    let Some(start) = (0..steps.len()).find(|&i| !done[i]) else {
        return Ok(order);
    };
    let mut walk: Vec<usize> = Vec::new();
    let mut visited_at: HashMap<usize, usize> = HashMap::new();
    let mut at = start;
    loop {
        if let Some(&first) = visited_at.get(&at) {
            return Err(Error::Cycle(walk[first..].iter().map(|&i| steps[i].name.clone()).collect()));
        }
        visited_at.insert(at, walk.len());
        walk.push(at);
        // A remaining step always has a remaining dependency (else Kahn would have run it).
        match steps[at].after.iter().map(|n| index[n.as_str()]).find(|&j| !done[j]) {
            Some(next) => at = next,
            None => return Err(Error::Cycle(walk.iter().map(|&i| steps[i].name.clone()).collect())),
        }
    }
    // END SOLUTION
}
// ANCHOR_END: topo_order
