//! Dependent parallel phases in one rayon region: the threads claim a phase's tasks from a counter
//! and spin at its end until all of them are done, as llama.cpp's graph threads and OpenMP's
//! barriers do, instead of forking and joining a region per phase.
//!
//! A decoded token of a 30-layer model is about 300 short steps (norms, products, attention), each
//! depending on the one before. As one rayon region each, the steals, epoch pins and wake-ups cost
//! a few microseconds a region; here a phase boundary is one atomic increment per task and a spin
//! on one counter. No thread has to arrive: a participant that is never scheduled leaves its share
//! to the others (tasks are claimed, not assigned), so a busy pool slows a pass but cannot hang it.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Runs `step(phase, task)` for every `task < tasks[phase]`, phase after phase: every task of a
/// phase finishes (and its writes are visible) before any task of the next one starts. Tasks of one
/// phase run in any order and on any thread of the pool. Stops at the first error, which it
/// returns; a panicking task stops the others and the panic reaches the caller.
pub(crate) fn run<E: Send>(tasks: &[usize], step: impl Fn(usize, usize) -> Result<(), E> + Sync) -> Result<(), E> {
    let progress = Progress {
        claimed: tasks.iter().map(|_| AtomicUsize::new(0)).collect(),
        done: tasks.iter().map(|_| AtomicUsize::new(0)).collect(),
        stopped: AtomicBool::new(false),
        error: Mutex::new(None),
    };
    let threads = rayon::current_num_threads();
    if threads == 1 {
        progress.take_part(tasks, &step);
    } else {
        rayon::scope(|s| {
            for _ in 1..threads {
                s.spawn(|_| progress.take_part(tasks, &step));
            }
            progress.take_part(tasks, &step);
        });
    }
    match progress.error.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The shared state of one [`run`].
struct Progress<E> {
    /// Per phase, the next task to hand out (past the count once all are out).
    claimed: Vec<AtomicUsize>,
    /// Per phase, the tasks finished. Each is a release increment, and a participant reads the
    /// count with acquire before it leaves the phase: every write of the phase happens before
    /// anything of the next.
    done: Vec<AtomicUsize>,
    /// Set on the first error or panic: the others leave at their next claim or spin.
    stopped: AtomicBool,
    error: Mutex<Option<E>>,
}

/// Spins (a `pause` each) a participant waits at a phase's end before it also yields its core.
const SPINS: u32 = 2000;

impl<E> Progress<E> {
    /// One participant: claims and runs tasks phase after phase until the last phase is done.
    fn take_part(&self, tasks: &[usize], step: &(impl Fn(usize, usize) -> Result<(), E> + Sync)) {
        /// Stops the others if the task it guards unwinds, so that none waits for it forever.
        struct StopOnUnwind<'a>(&'a AtomicBool);
        impl Drop for StopOnUnwind<'_> {
            fn drop(&mut self) {
                if std::thread::panicking() {
                    self.0.store(true, Ordering::Release);
                }
            }
        }
        for (phase, &count) in tasks.iter().enumerate() {
            loop {
                if self.stopped.load(Ordering::Acquire) {
                    return;
                }
                let task = self.claimed[phase].fetch_add(1, Ordering::Relaxed);
                if task >= count {
                    break;
                }
                let guard = StopOnUnwind(&self.stopped);
                let result = step(phase, task);
                drop(guard);
                if let Err(e) = result {
                    let mut slot = self.error.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    slot.get_or_insert(e);
                    self.stopped.store(true, Ordering::Release);
                    return;
                }
                self.done[phase].fetch_add(1, Ordering::Release);
            }
            let mut spins = 0u32;
            while self.done[phase].load(Ordering::Acquire) < count {
                if self.stopped.load(Ordering::Acquire) {
                    return;
                }
                if spins < SPINS {
                    spins += 1;
                    std::hint::spin_loop();
                } else {
                    std::thread::yield_now();
                }
            }
        }
    }
}

/// A buffer the tasks of a phase write in disjoint parts and the next phases read: the borrow
/// checker cannot see [`run`]'s ordering, so every access is `unsafe` and states which part the
/// task owns.
pub(crate) struct Shared<'a, T> {
    ptr: *mut T,
    len: usize,
    _borrow: std::marker::PhantomData<&'a mut [T]>,
}

// SAFETY: a `Shared` is a `&mut [T]` cut into parts by the caller's task structure; sending or
// sharing it is sound for the same `T` that `&mut [T]` may be sent for.
unsafe impl<T: Send> Send for Shared<'_, T> {}
// SAFETY: as above; concurrent access goes only through the `unsafe` accessors, whose callers
// guarantee that no two tasks of a phase touch the same element unless both only read it.
unsafe impl<T: Send + Sync> Sync for Shared<'_, T> {}

impl<'a, T> Shared<'a, T> {
    /// Lends `slice` to the tasks for as long as the `Shared` lives.
    pub(crate) fn new(slice: &'a mut [T]) -> Shared<'a, T> {
        Shared { ptr: slice.as_mut_ptr(), len: slice.len(), _borrow: std::marker::PhantomData }
    }

    /// Elements `range`, to write.
    ///
    /// # Safety
    /// No other task of the current phase reads or writes `range`, and the slice is dropped
    /// before the task ends.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn part_mut(&self, range: std::ops::Range<usize>) -> &mut [T] {
        assert!(range.start <= range.end && range.end <= self.len, "part {range:?} of {}", self.len);
        // SAFETY: in bounds (checked above); exclusive by the caller's guarantee.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(range.start), range.end - range.start) }
    }

    /// Elements `range`, to read.
    ///
    /// # Safety
    /// No task of the current phase writes `range`.
    pub(crate) unsafe fn part(&self, range: std::ops::Range<usize>) -> &[T] {
        assert!(range.start <= range.end && range.end <= self.len, "part {range:?} of {}", self.len);
        // SAFETY: in bounds (checked above); not written concurrently by the caller's guarantee.
        unsafe { std::slice::from_raw_parts(self.ptr.add(range.start), range.end - range.start) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each phase reads all that the phase before wrote (two buffers in turn), over many short
    /// phases: a task that started before its predecessors finished would read a stale value.
    #[test]
    fn phases_see_every_write_of_the_phase_before() {
        let (n, phases) = (37usize, 200usize);
        let next = |v: &[u64], i: usize| v.iter().sum::<u64>() % 1_000_003 + i as u64;
        let mut expected: Vec<u64> = (0..n as u64).collect();
        for _ in 0..phases {
            expected = (0..n).map(|i| next(&expected, i)).collect();
        }
        let (mut a, mut b): (Vec<u64>, Vec<u64>) = ((0..n as u64).collect(), vec![0; n]);
        let buffers = [Shared::new(&mut a), Shared::new(&mut b)];
        let threads_seen = AtomicUsize::new(0);
        // The pool's other threads kept awake, as the passes that use `run` keep them.
        crate::in_pool_awake(|| {
            run::<()>(&vec![n; phases], |phase, task| {
                let (from, to) = (&buffers[phase % 2], &buffers[(phase + 1) % 2]);
                // SAFETY: this phase only reads `from`, and task `task` alone writes `to[task]`.
                let from = unsafe { from.part(0..n) };
                // A few microseconds a task, so that every thread of the pool is in the pass.
                let value = (0..64).fold(0, |acc, _| acc.max(next(std::hint::black_box(from), task)));
                unsafe { to.part_mut(task..task + 1)[0] = value };
                threads_seen.fetch_or(1 << rayon::current_thread_index().unwrap_or(0).min(63), Ordering::Relaxed);
                // The first task holds its thread until another thread has joined (or a second has
                // passed): from there on, at least two threads claim the tasks of every phase.
                let start = std::time::Instant::now();
                while phase == 0
                    && task == 0
                    && threads_seen.load(Ordering::Relaxed).count_ones() < 2
                    && start.elapsed() < std::time::Duration::from_secs(1)
                {
                    std::hint::spin_loop();
                }
                Ok(())
            })
        })
        .unwrap();
        assert_eq!(if phases % 2 == 0 { a } else { b }, expected);
        if rayon::current_num_threads() > 1 {
            assert!(threads_seen.into_inner().count_ones() > 1, "one thread ran every task: the test proves nothing");
        }
    }

    #[test]
    fn the_first_error_stops_the_pass() {
        let ran = AtomicUsize::new(0);
        let result = crate::in_pool(|| {
            run(&[4, 4, 4], |phase, task| {
                ran.fetch_add(1, Ordering::Relaxed);
                if phase == 1 && task == 2 { Err("phase 1 task 2") } else { Ok(()) }
            })
        });
        assert_eq!(result, Err("phase 1 task 2"));
        assert!(ran.load(Ordering::Relaxed) <= 8, "phase 2 ran after the error");
    }

    #[test]
    fn a_panicking_task_reaches_the_caller_without_hanging_the_others() {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let caught = std::panic::catch_unwind(|| {
                crate::in_pool(|| {
                    run::<()>(&[2, 2, 2], |phase, task| {
                        assert!(!(phase == 1 && task == 0), "task panics");
                        Ok(())
                    })
                })
            });
            tx.send(caught.is_err()).unwrap();
        });
        assert_eq!(rx.recv_timeout(std::time::Duration::from_secs(60)), Ok(true));
    }
}
