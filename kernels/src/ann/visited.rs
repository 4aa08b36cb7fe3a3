//! An epoch-tagged visited set: clearing it between searches costs O(1), not O(n).
//!
//! Each slot holds the epoch in which its node was last visited; a node is
//! "visited" when its slot equals the current epoch. Starting a new search just
//! bumps the epoch. Only when the `u32` epoch wraps (every ~4 billion searches)
//! are the slots zeroed for real.

/// A reusable visited set over node ids `0..capacity`.
#[derive(Debug, Clone, Default)]
pub(crate) struct VisitedSet {
    tags: Vec<u32>,
    epoch: u32,
}

impl VisitedSet {
    /// Starts a fresh search over ids `0..n`: everything becomes unvisited.
    #[inline]
    pub fn reset(&mut self, n: usize) {
        if self.tags.len() < n {
            // New slots get tag 0, which is never a live epoch (epochs start at 1).
            self.tags.resize(n.next_power_of_two().max(n), 0);
        }
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.tags.iter_mut().for_each(|t| *t = 0);
            self.epoch = 1;
        }
    }

    /// Marks `id` visited; returns `true` if it was not visited before.
    /// `id` must be below the `n` given to the last [`VisitedSet::reset`].
    #[inline(always)]
    pub fn insert(&mut self, id: u32) -> bool {
        let slot = &mut self.tags[id as usize];
        if *slot == self.epoch {
            false
        } else {
            *slot = self.epoch;
            true
        }
    }
}
