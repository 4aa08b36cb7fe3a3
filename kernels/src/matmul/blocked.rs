//! The Goto/BLIS loop nest around the micro-kernel: blocking, packing and the rayon split
//! (Goto & van de Geijn 2008, "Anatomy of High-Performance Matrix Multiplication", figure 4 and
//! section 6; BLIS, Van Zee & van de Geijn 2015, the five loops around the micro-kernel).
//!
//! ```text
//! for jc in 0..n step NC                      B block: KC × NC, packed once, kept in L2
//!   for pc in 0..k step KC                    (first pc overwrites C, later ones add)
//!     pack B[pc.., jc..] into NR-wide micro-panels          (parallel over micro-panels)
//!     split C[.., jc..jc+NC] into one band of rows per thread (short m: tasks of whole tiles)
//!       for ic in task rows step MC: pack A[ic.., pc..] into MR-tall micro-panels
//!         for ir step MR                      A micro-panel: MR × KC, stays in L1
//!           for jr step NR                    B micro-panels stream from L2
//!             micro-kernel (MR × NR tile of C in registers)
//! ```
//!
//! The two innermost loops run with `ir` outside, so the small `A` micro-panel (14 × 384 floats,
//! 21 KiB with AVX-512) stays in L1 while the `B` micro-panels stream from the packed block in L2
//! (384 × 768 floats, 1.2 MiB of a 2 MiB L2). Blocks are cut evenly (`n = 1024` gives two blocks
//! of 512, not 768 + 256), so the tasks of a parallel run are about the same size.
//!
//! Edge tiles: packing pads the last micro-panels of `A` and `B` with zeros, the kernel writes a
//! full tile into a scratch buffer, and only the valid `mr × nr` corner is copied into `C`.
//! `k` is never padded, so padding cannot turn an `inf` into a NaN in any element that is kept.

use std::cell::Cell;
use std::thread::LocalKey;

use rayon::prelude::*;

use super::microkernel::{self, Kernel, MAX_TILE};
use super::{Backend, GemmShape, PARALLEL_MIN_MNK};

/// Largest `k` block: an AVX-512 `A` micro-panel of `14 × 384` floats is 21 KiB of the 48 KiB L1.
const KC_MAX: usize = 384;
/// Largest `n` block: a packed `B` block of `384 × 768` floats is 1.2 MiB of the 2 MiB L2.
const NC_MAX: usize = 768;
/// Rows of `A` packed at a time, in micro-panels (bounds the per-thread `A` buffer to ~0.5 MiB).
const MC_PANELS: usize = 24;
/// Up to this many row micro-panels, a product on pre-packed `B` runs in one parallel region
/// ([`packed_parallel`]). Taller ones keep the loop nest, whose threads share each `B` block while
/// it is in their caches: walking every block per task instead streamed `B` once per row task
/// and cost 10 % at 858 rows (MiniLM, batch 32).
const ONE_REGION_MAX_PANELS: usize = 4;
/// Below this many rows, `A·B` skips packing (it would cost as much as the product) and runs
/// a vector-matrix product per row; `A·Bᵀ` runs one GEMV per row of `A`.
const SMALL_M: usize = 4;
/// From this many row micro-panels per thread, the loop nest cuts `C` into [`row_bands`].
const ROW_BAND_MIN_PANELS: usize = 4;

/// A read-only matrix view: element `(r, c)` is `data[r · row_stride + c · col_stride]`.
/// `B` of `A·B` is `(n, 1)`; `B` of `A·Bᵀ`, stored `n × k`, is `(1, k)`.
#[derive(Clone, Copy)]
pub(super) struct MatRef<'a> {
    /// The elements.
    pub data: &'a [f32],
    /// Distance between rows.
    pub row_stride: usize,
    /// Distance between columns.
    pub col_stride: usize,
}

/// Where the packed `B` blocks come from: packed per call from a view, or packed once beforehand.
#[derive(Clone, Copy)]
pub(super) enum BSource<'a> {
    /// Pack each `(jc, pc)` block from this view as the loop reaches it.
    View(MatRef<'a>),
    /// Every block already packed, in loop order ([`pack_all`]).
    Packed(&'a PackedBlocks),
}

/// `B` packed once for [`gemm`] on one backend: every `(jc, pc)` block the loop nest visits, in the
/// order it visits them, each exactly as the loop would have packed it.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct PackedBlocks {
    /// The backend whose micro-kernel width (`nr`) the panels have.
    pub backend: Backend,
    /// `k × n` of the product's `B`.
    pub k: usize,
    pub n: usize,
    /// All blocks, concatenated.
    data: Vec<f32>,
    /// Start of each block in `data`, `jc`-major then `pc`.
    offsets: Vec<usize>,
}

impl PackedBlocks {
    /// Every block in loop order: `(jc, nc, pc, kc, panels)`, the panels being `kc · nc` rounded up
    /// to whole `nr`-wide micro-panels.
    fn blocks(&self, nr: usize) -> impl Iterator<Item = (usize, usize, usize, usize, &[f32])> {
        let (k, n) = (self.k, self.n);
        let (nc_max, kc_max) = (block_size(n, NC_MAX, nr), block_size(k, KC_MAX, 1));
        let starts = (0..n).step_by(nc_max).flat_map(move |jc| (0..k).step_by(kc_max).map(move |pc| (jc, pc)));
        starts.zip(&self.offsets).map(move |((jc, pc), &at)| {
            let (nc, kc) = (nc_max.min(n - jc), kc_max.min(k - pc));
            (jc, nc, pc, kc, &self.data[at..at + kc * nc.div_ceil(nr) * nr])
        })
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.data.len() * std::mem::size_of::<f32>()
    }
}

/// Packs every block of `b` (`k × n` as a [`MatRef`]) for [`gemm`] on `backend`, in parallel.
pub(super) fn pack_all(backend: Backend, b: MatRef<'_>, k: usize, n: usize) -> PackedBlocks {
    let nr = microkernel::kernel(backend).nr;
    let (nc_max, kc_max) = (block_size(n, NC_MAX, nr), block_size(k, KC_MAX, 1));
    let mut blocks = Vec::new();
    let mut total = 0;
    for jc in (0..n).step_by(nc_max.max(1)) {
        let nc = nc_max.min(n - jc);
        for pc in (0..k).step_by(kc_max.max(1)) {
            let kc = kc_max.min(k - pc);
            blocks.push((jc, nc, pc, kc, total));
            total += kc * nc.div_ceil(nr) * nr;
        }
    }
    let mut data = vec![0.0f32; total];
    let mut rest: &mut [f32] = &mut data;
    let mut jobs = Vec::with_capacity(blocks.len());
    for &(jc, nc, pc, kc, _) in &blocks {
        let (dst, tail) = std::mem::take(&mut rest).split_at_mut(kc * nc.div_ceil(nr) * nr);
        jobs.push((jc, nc, pc, kc, dst));
        rest = tail;
    }
    jobs.into_par_iter().for_each(|(jc, nc, pc, kc, dst)| pack_b(b, pc, kc, jc, nc, nr, dst));
    PackedBlocks { backend, k, n, data, offsets: blocks.iter().map(|b| b.4).collect() }
}

/// A raw pointer to `C` that parallel tasks share; each task writes a disjoint set of tiles.
#[derive(Clone, Copy)]
struct SharedMut(*mut f32);
// SAFETY: tasks only write disjoint tiles of `C` through it, and the borrow it came from outlives them.
unsafe impl Send for SharedMut {}
// SAFETY: as above.
unsafe impl Sync for SharedMut {}

thread_local! {
    static A_PACK: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
    static B_PACK: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
}

/// Runs `f` on a 64-byte-aligned scratch slice of `len` floats from the thread's pool `key`.
///
/// The buffer is taken out of the thread-local while in use, so a nested call on the same thread
/// (rayon may run another GEMM's task while this one waits) gets a fresh buffer instead of a
/// borrow conflict.
fn with_scratch<R>(key: &'static LocalKey<Cell<Vec<f32>>>, len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    let mut v = key.take();
    if v.len() < len + 16 {
        v.resize(len + 16, 0.0);
    }
    let off = v.as_ptr().align_offset(64).min(15);
    let r = f(&mut v[off..off + len]);
    key.set(v);
    r
}

/// Even blocks of `total` no larger than `max`, each a multiple of `unit` (but the last).
fn block_size(total: usize, max: usize, unit: usize) -> usize {
    let blocks = total.div_ceil(max).max(1);
    total.div_ceil(blocks).div_ceil(unit) * unit
}

// ANCHOR: loop_nest
/// `C = A·B` for `A` row-major `m × k` (contiguous), `B` any [`MatRef`], `C` row-major `m × n`.
/// Lengths are the caller's responsibility (checked in `matmul.rs`). `parallel` allows rayon.
///
/// With [`BSource::Packed`] the blocks are read as they were packed (for `backend`), and a small
/// `m` runs the blocked path too (there is no unpacked `B` to run GEMVs on).
pub(super) fn gemm(backend: Backend, a: &[f32], b: BSource<'_>, c: &mut [f32], shape: GemmShape, parallel: bool) {
    let GemmShape { m, n, k } = shape;
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        c.fill(0.0);
        return;
    }
    if let (BSource::View(b), true) = (b, m < SMALL_M) {
        return small_m(backend, a, b, c, shape, parallel);
    }
    let kern = microkernel::kernel(backend);
    if let (BSource::Packed(p), true) = (b, m < SMALL_M) {
        for (ai, ci) in a.chunks_exact(k).zip(c.chunks_exact_mut(n)) {
            gemv_packed(p, kern.nr, ai, ci, parallel);
        }
        return;
    }
    let (mr, nr) = (kern.mr, kern.nr);
    let threads = if parallel && m.saturating_mul(n).saturating_mul(k) >= PARALLEL_MIN_MNK {
        rayon::current_num_threads()
    } else {
        1
    };
    if threads > 1 && rayon::current_thread_index().is_none() {
        // Enter the pool once for the whole product, not once per region (each region entered
        // from outside costs about a tenth of a 256³ product on 2 vCPUs).
        return crate::in_pool(|| gemm(backend, a, b, c, shape, parallel));
    }
    let nc_max = block_size(n, NC_MAX, nr);
    let kc_max = block_size(k, KC_MAX, 1);
    let c_ptr = SharedMut(c.as_mut_ptr());
    if let (BSource::Packed(p), true) = (b, threads > 1 && m.div_ceil(mr) <= ONE_REGION_MAX_PANELS) {
        return packed_parallel(p, a, c_ptr, shape, kern, threads);
    }

    let scratch = if matches!(b, BSource::View(_)) { kc_max * nc_max } else { 0 };
    with_scratch(&B_PACK, scratch, |b_pack| {
        let mut block_index = 0;
        for jc in (0..n).step_by(nc_max) {
            let nc = nc_max.min(n - jc);
            for pc in (0..k).step_by(kc_max) {
                let kc = kc_max.min(k - pc);
                let len = kc * nc.div_ceil(nr) * nr;
                let b_pack: &[f32] = match b {
                    BSource::Packed(p) => {
                        let at = p.offsets[block_index];
                        &p.data[at..at + len]
                    }
                    BSource::View(b) => {
                        let b_pack = &mut b_pack[..len];
                        // Micro-panels in groups (a few per thread), each group packed by one task.
                        let panels = nc.div_ceil(nr);
                        let group = if threads > 1 { panels.div_ceil(2 * threads) } else { panels };
                        let pack = |(g, dst): (usize, &mut [f32])| {
                            let c0 = g * group * nr;
                            pack_b(b, pc, kc, jc + c0, (nc - c0).min(group * nr), nr, dst)
                        };
                        if threads > 1 {
                            b_pack.par_chunks_mut(kc * nr * group).enumerate().for_each(pack);
                        } else {
                            pack((0, b_pack));
                        }
                        b_pack
                    }
                };
                block_index += 1;
                let block = Block { a, k, n, b_pack, kc, pc, jc, c: c_ptr, kern };
                let tasks = if m >= ROW_BAND_MIN_PANELS * mr * threads {
                    row_bands(m, nc, threads)
                } else {
                    split(m, nc, mr, nr, threads)
                };
                if tasks.len() > 1 {
                    tasks.into_par_iter().for_each(|t| block.run(t));
                } else {
                    tasks.into_iter().for_each(|t| block.run(t));
                }
            }
        }
    });
}
// ANCHOR_END: loop_nest

/// [`gemm`] on blocks packed beforehand, in one parallel region: one task per thread, each owning
/// a range of whole micro-panels of columns over all `m` rows. Each task packs all of `A` (at most
/// [`ONE_REGION_MAX_PANELS`] row panels, a few microseconds) rather than meeting the others after
/// a shared packing step, then walks every `(jc, pc)` block over its columns in the loop nest's
/// order, running every row tile on a micro-panel of `B` before moving to the next: the weights
/// stream from memory once per product, and the second tile finds them in L1 or L2. (Cutting by
/// rows too read each matrix once per row task: 27 rows took two passes from L3.) A 27-row
/// product of a `1536 × 384` matrix used to fork and join four times, once per block. Each tile
/// still sums its `k` blocks in order, so `C` has the same bits as the serial loop nest gives.
fn packed_parallel(p: &PackedBlocks, a: &[f32], c: SharedMut, shape: GemmShape, kern: Kernel, threads: usize) {
    let GemmShape { m, n, k } = shape;
    let Kernel { mr, nr, .. } = kern;
    let kc_max = block_size(k, KC_MAX, 1);
    let row_panels = m.div_ceil(mr);
    // One task per thread, each a range of whole micro-panels of columns over all `m` rows.
    let cols_each = n.div_ceil(nr).div_ceil(threads) * nr;
    let starts: Vec<usize> = (0..n).step_by(cols_each).collect();
    starts.into_par_iter().for_each(|c0| {
        let cols = c0..(c0 + cols_each).min(n);
        // Block `pc` holds `row_panels` micro-panels of `kc · mr` floats from `pc · row_panels · mr`.
        with_scratch(&A_PACK, row_panels * mr * k, |a_pack| {
            let mut rest: &mut [f32] = a_pack;
            for pc in (0..k).step_by(kc_max) {
                let kc = kc_max.min(k - pc);
                for q in 0..row_panels {
                    let (dst, tail) = std::mem::take(&mut rest).split_at_mut(kc * mr);
                    pack_a(a, k, q * mr, mr.min(m - q * mr), pc, kc, mr, dst);
                    rest = tail;
                }
            }
            for (jc, nc, pc, kc, b_pack) in p.blocks(nr) {
                // The task's columns within this block (whole panels: both ends are multiples of `nr`).
                let (lo, hi) = (cols.start.max(jc), cols.end.min(jc + nc));
                let block = Block { a, k, n, b_pack, kc, pc, jc, c, kern };
                let panels = &a_pack[pc * row_panels * mr..][..row_panels * kc * mr];
                for jr in (lo..hi).step_by(nr) {
                    for (q, panel) in panels.chunks_exact(kc * mr).enumerate() {
                        let r0 = q * mr;
                        block.tiles(panel, r0, mr.min(m - r0), jr - jc..(jr + nr).min(hi) - jc);
                    }
                }
            }
        });
    });
}

/// `y = x·B` for one row `x` of `A` on blocks packed by [`pack_all`]: every panel's `nr` columns
/// summed over `k` in order with fused multiply-adds from zero, the first `k` block stored and later
/// ones added, exactly as the micro-kernel does for each row of its tile, so a row gives the same
/// bits as in a product with more rows. Reads every panel once (the product is memory-bound); the
/// micro-kernel would compute `mr` rows to keep one.
fn gemv_packed(p: &PackedBlocks, nr: usize, x: &[f32], y: &mut [f32], parallel: bool) {
    for (jc, nc, pc, kc, panels) in p.blocks(nr) {
        let (xs, ys) = (&x[pc..pc + kc], &mut y[jc..jc + nc]);
        // Every micro-kernel is 32 (AVX-512) or 16 (AVX2, portable) columns wide.
        let run = |(panel, yp): (&[f32], &mut [f32])| match nr {
            32 => panel_gemv::<32>(panel, xs, yp, pc > 0),
            16 => panel_gemv::<16>(panel, xs, yp, pc > 0),
            other => unreachable!("no micro-kernel is {other} columns wide"),
        };
        if parallel && kc * nc >= PARALLEL_MIN_MNK {
            panels.par_chunks(kc * nr).zip(ys.par_chunks_mut(nr)).for_each(run);
        } else {
            panels.chunks(kc * nr).zip(ys.chunks_mut(nr)).for_each(run);
        }
    }
}

/// One `NR`-wide panel of [`gemv_packed`] (`y` may be shorter: the panel's padded columns are dropped).
/// `NR` is a constant so that the accumulators stay in registers (a slice of run-time width measured
/// about 4× slower on one query of `ann::FlatIndex`).
#[inline]
fn panel_gemv<const NR: usize>(panel: &[f32], x: &[f32], y: &mut [f32], accumulate: bool) {
    let mut acc = [0.0f32; NR];
    for (&xv, row) in x.iter().zip(panel.chunks_exact(NR)) {
        for (a, &b) in acc.iter_mut().zip(row) {
            *a = xv.mul_add(b, *a);
        }
    }
    for (o, a) in y.iter_mut().zip(acc) {
        *o = if accumulate { a + *o } else { a };
    }
}

/// A rectangle of one `C` block a task owns: rows `rows`, columns `cols` (relative to `jc`).
struct Task {
    rows: std::ops::Range<usize>,
    cols: std::ops::Range<usize>,
}

// ANCHOR: split
/// Cuts an `m × nc` block into about `4 · threads` tasks of whole micro-tiles: by rows first
/// (tasks then share the packed `B` and pack disjoint parts of `A`), and by columns too when
/// there are fewer micro-panel rows than tasks wanted.
fn split(m: usize, nc: usize, mr: usize, nr: usize, threads: usize) -> Vec<Task> {
    let want = if threads > 1 { 4 * threads } else { 1 };
    let (row_panels, col_panels) = (m.div_ceil(mr), nc.div_ceil(nr));
    let tm = want.min(row_panels);
    let tn = want.div_ceil(tm).min(col_panels);
    let (rows_each, cols_each) = (row_panels.div_ceil(tm) * mr, col_panels.div_ceil(tn) * nr);
    let mut tasks = Vec::with_capacity(tm * tn);
    for r0 in (0..m).step_by(rows_each) {
        for c0 in (0..nc).step_by(cols_each) {
            tasks.push(Task { rows: r0..(r0 + rows_each).min(m), cols: c0..(c0 + cols_each).min(nc) });
        }
    }
    tasks
}

/// Cuts an `m × nc` block into one band of rows per thread, as even as rows allow: a band need
/// not start on a multiple of `mr` (each task packs its own rows of `A`, and a row's sums do not
/// depend on the tile it lands in), so 256 rows on 2 threads are 128 + 128, each nine full tiles
/// and one of two rows, not ten tiles (140 rows) against nine. One task per thread: a static cut
/// measured 4–8 % faster than four dynamically balanced tasks per thread at 512³ and 1024³ on
/// 2 threads, where every task boundary is a point at which the threads wait for each other.
fn row_bands(m: usize, nc: usize, threads: usize) -> Vec<Task> {
    (0..threads).map(|i| Task { rows: i * m / threads..(i + 1) * m / threads, cols: 0..nc }).collect()
}
// ANCHOR_END: split

/// Everything a task needs about the current `(jc, pc)` block.
struct Block<'a> {
    a: &'a [f32],
    k: usize,
    n: usize,
    b_pack: &'a [f32],
    kc: usize,
    pc: usize,
    jc: usize,
    c: SharedMut,
    kern: Kernel,
}

impl Block<'_> {
    /// Packs the task's rows of `A` (`MC` at a time) and runs the micro-kernel over its tiles.
    fn run(&self, t: Task) {
        let Kernel { mr, .. } = self.kern;
        let kc = self.kc;
        let mc_max = MC_PANELS * mr;
        with_scratch(&A_PACK, kc * mc_max, |a_pack| {
            for ic in t.rows.clone().step_by(mc_max) {
                let mc = mc_max.min(t.rows.end - ic);
                for (q, dst) in a_pack[..kc * mc.div_ceil(mr) * mr].chunks_mut(kc * mr).enumerate() {
                    let r0 = ic + q * mr;
                    pack_a(self.a, self.k, r0, (mc - q * mr).min(mr), self.pc, kc, mr, dst);
                }
                for ir in (0..mc).step_by(mr) {
                    self.tiles(&a_pack[ir * kc..(ir + mr) * kc], ic + ir, mr.min(mc - ir), t.cols.clone());
                }
            }
        });
    }

    /// Runs the micro-kernel for rows `row .. row + rows` (`rows ≤ mr`, packed in `a_panel`) over
    /// the columns `cols` (relative to `jc`, starting on a panel).
    fn tiles(&self, a_panel: &[f32], row: usize, rows: usize, cols: std::ops::Range<usize>) {
        let Kernel { nr, .. } = self.kern;
        let (kc, accumulate) = (self.kc, self.pc > 0);
        let run = self.kern.run(rows);
        for jr in cols.clone().step_by(nr) {
            let nr_eff = nr.min(cols.end - jr);
            let b_panel = &self.b_pack[jr * kc..(jr + nr) * kc];
            // SAFETY: `row < m` and `jc + jr < n`, so the tile starts inside `C`; the `rows`-row
            // variant writes `rows` rows, which end inside `C` when all `nr` columns do
            // (`nr_eff == nr`), and the task owns them. The kernel was chosen for a backend whose
            // features were checked.
            unsafe {
                let c_tile = self.c.0.add(row * self.n + self.jc + jr);
                if nr_eff == nr {
                    run(kc, a_panel.as_ptr(), b_panel.as_ptr(), c_tile, self.n, accumulate);
                } else {
                    let mut tile = [0.0f32; MAX_TILE];
                    run(kc, a_panel.as_ptr(), b_panel.as_ptr(), tile.as_mut_ptr(), nr, false);
                    for i in 0..rows {
                        let src = &tile[i * nr..i * nr + nr_eff];
                        let dst = std::slice::from_raw_parts_mut(c_tile.add(i * self.n), nr_eff);
                        if accumulate {
                            dst.iter_mut().zip(src).for_each(|(d, s)| *d += s);
                        } else {
                            dst.copy_from_slice(src);
                        }
                    }
                }
            }
        }
    }
}

/// Packs rows `r0 .. r0 + rows` (`rows ≤ mr`) and columns `pc .. pc + kc` of row-major `A`
/// (`lda = k`) into one micro-panel: `kc` steps of `mr` floats, rows past `rows` zero.
#[allow(clippy::too_many_arguments)]
fn pack_a(a: &[f32], k: usize, r0: usize, rows: usize, pc: usize, kc: usize, mr: usize, dst: &mut [f32]) {
    let src = &a[r0 * k + pc..];
    match (rows, mr) {
        #[cfg(target_arch = "x86_64")]
        (_, 14) if std::arch::is_x86_feature_detected!("avx512f") => {
            // SAFETY: AVX-512F was just detected; `rows ≤ mr`.
            unsafe { pack_a14_avx512(src, k, rows, kc, dst) }
        }
        (6, 6) => pack_a_full::<6>(src, k, kc, dst),
        (4, 4) => pack_a_full::<4>(src, k, kc, dst),
        _ => {
            for (p, step) in dst.chunks_exact_mut(mr).enumerate() {
                for (i, d) in step[..rows].iter_mut().enumerate() {
                    *d = src[i * k + p];
                }
                step[rows..].fill(0.0);
            }
        }
    }
}

/// [`pack_a`] for a full micro-panel of `MR` rows: step by step of `p`, `MR` reads from as many
/// cache lines (which stay in L1 for the next 15 steps) and one contiguous write.
fn pack_a_full<const MR: usize>(src: &[f32], k: usize, kc: usize, dst: &mut [f32]) {
    let rows: [&[f32]; MR] = std::array::from_fn(|i| &src[i * k..i * k + kc]);
    for (p, step) in dst[..kc * MR].chunks_exact_mut(MR).enumerate() {
        for (d, row) in step.iter_mut().zip(&rows) {
            // SAFETY: `p < kc` (there are `kc` steps of `MR` in `dst[..kc·MR]`) and each row holds `kc`.
            *d = unsafe { *row.get_unchecked(p) };
        }
    }
}

/// [`pack_a`] for the AVX-512 tile (`MR = 14`, `rows ≤ 14` of them real), sixteen steps at a
/// time: sixteen floats of each row in a register (zero rows make the square), a 16 × 16
/// transpose in four rounds of in-lane shuffles, and one 14-float masked store per step. The
/// scalar loop moved one float per load and store and was 8 % of a 256³ product on 2 threads.
///
/// # Safety
/// The CPU must support AVX-512F, and `rows ≤ 14`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn pack_a14_avx512(src: &[f32], k: usize, rows: usize, kc: usize, dst: &mut [f32]) {
    use std::arch::x86_64::*;
    const MR: usize = 14;
    let all: [&[f32]; MR] = std::array::from_fn(|i| if i < rows { &src[i * k..i * k + kc] } else { &[] });
    let rows = &all[..rows];
    let dst = &mut dst[..kc * MR];
    let full = kc / 16 * 16;
    for p0 in (0..full).step_by(16) {
        // SAFETY: `p0 + 16 ≤ kc`, the length of every row slice; each of the 16 stores writes 14
        // floats at `(p0 + j) · 14 < kc · 14`, inside `dst`.
        unsafe {
            let mut r = [_mm512_setzero_ps(); 16];
            for (v, row) in r.iter_mut().zip(rows) {
                *v = _mm512_loadu_ps(row.as_ptr().add(p0));
            }
            let t = transpose16(r);
            for (j, v) in t.iter().enumerate() {
                _mm512_mask_storeu_ps(dst.as_mut_ptr().add((p0 + j) * MR), 0x3fff, *v);
            }
        }
    }
    for p in full..kc {
        let step = &mut dst[p * MR..(p + 1) * MR];
        for (d, row) in step.iter_mut().zip(rows) {
            *d = row[p];
        }
        step[rows.len()..].fill(0.0);
    }
}

/// The transpose of a 16 × 16 block of floats held as sixteen rows: element `j` of output `i` is
/// element `i` of input `j`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn transpose16(r: [std::arch::x86_64::__m512; 16]) -> [std::arch::x86_64::__m512; 16] {
    use std::arch::x86_64::*;
    // Round 1: interleave floats of row pairs; round 2: interleave 64-bit pairs of those; after
    // them each 128-bit lane holds a 4 × 4 block transposed. Rounds 3 and 4 move whole 128-bit lanes.
    let mut a = [_mm512_setzero_ps(); 16];
    for i in 0..8 {
        a[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        a[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    let mut b = [_mm512_setzero_ps(); 16];
    for g in 0..4 {
        let (x0, x1, y0, y1) = (a[4 * g], a[4 * g + 1], a[4 * g + 2], a[4 * g + 3]);
        let pd = _mm512_castps_pd;
        b[4 * g] = _mm512_castpd_ps(_mm512_unpacklo_pd(pd(x0), pd(y0)));
        b[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(pd(x0), pd(y0)));
        b[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(pd(x1), pd(y1)));
        b[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(pd(x1), pd(y1)));
    }
    // Now b[4g + c] holds, in 128-bit lane l, column 4l + c of rows 4g .. 4g + 4.
    let mut c = [_mm512_setzero_ps(); 16];
    for c0 in 0..4 {
        let (r0, r1, r2, r3) = (b[c0], b[4 + c0], b[8 + c0], b[12 + c0]);
        // Lanes (0, 2) of r0 and r1, and so on; 0x88 = (0, 2, 0, 2), 0xdd = (1, 3, 1, 3).
        let lo01 = _mm512_shuffle_f32x4::<0x88>(r0, r1);
        let hi01 = _mm512_shuffle_f32x4::<0xdd>(r0, r1);
        let lo23 = _mm512_shuffle_f32x4::<0x88>(r2, r3);
        let hi23 = _mm512_shuffle_f32x4::<0xdd>(r2, r3);
        c[c0] = _mm512_shuffle_f32x4::<0x88>(lo01, lo23);
        c[8 + c0] = _mm512_shuffle_f32x4::<0xdd>(lo01, lo23);
        c[4 + c0] = _mm512_shuffle_f32x4::<0x88>(hi01, hi23);
        c[12 + c0] = _mm512_shuffle_f32x4::<0xdd>(hi01, hi23);
    }
    c
}

/// Packs rows `pc .. pc + kc` and columns `c0 .. c0 + cols` of `b` into `cols / nr` (rounded
/// up) consecutive micro-panels, each `kc` steps of `nr` floats; columns past `cols` are zero.
fn pack_b(b: MatRef<'_>, pc: usize, kc: usize, c0: usize, cols: usize, nr: usize, dst: &mut [f32]) {
    let (rs, cs) = (b.row_stride, b.col_stride);
    debug_assert!(cs == 1 || rs == 1, "one of B's strides is 1");
    let panel_len = kc * nr;
    if cs == 1 {
        // Rows of B are contiguous (A·B): read each row segment once, front to back (the
        // prefetcher sees one stream), and deal it out to the micro-panels.
        for p in 0..kc {
            let start = (pc + p) * rs + c0;
            let row = &b.data[start..start + cols];
            for (q, seg) in row.chunks(nr).enumerate() {
                let step = &mut dst[q * panel_len + p * nr..q * panel_len + (p + 1) * nr];
                // An element loop, not `copy_from_slice`: the compiler vectorises it inline
                // instead of calling `memcpy` for every 64 or 128 bytes.
                for (d, s) in step.iter_mut().zip(seg) {
                    *d = *s;
                }
                step[seg.len()..].fill(0.0);
            }
        }
    } else {
        // Columns of B are contiguous (A·Bᵀ, B stored n × k): transpose 8 × 8 blocks (eight
        // contiguous 8-float reads, eight contiguous 8-float writes), then the ragged edges.
        for (q, panel) in dst.chunks_exact_mut(panel_len).enumerate() {
            let width = nr.min(cols - q * nr);
            let col0 = c0 + q * nr;
            let (w8, k8) = (width / 8 * 8, kc / 8 * 8);
            for j0 in (0..w8).step_by(8) {
                for p0 in (0..k8).step_by(8) {
                    let block: [[f32; 8]; 8] = std::array::from_fn(|j| {
                        let start = pc + p0 + (col0 + j0 + j) * cs;
                        <[f32; 8]>::try_from(&b.data[start..start + 8]).expect("8 floats")
                    });
                    for p in 0..8 {
                        let out = &mut panel[(p0 + p) * nr + j0..(p0 + p) * nr + j0 + 8];
                        for (j, o) in out.iter_mut().enumerate() {
                            *o = block[j][p];
                        }
                    }
                }
                for p in k8..kc {
                    for j in j0..j0 + 8 {
                        panel[p * nr + j] = b.data[pc + p + (col0 + j) * cs];
                    }
                }
            }
            for j in w8..width {
                let start = pc + (col0 + j) * cs;
                for (p, &v) in b.data[start..start + kc].iter().enumerate() {
                    panel[p * nr + j] = v;
                }
            }
            if width < nr {
                for step in panel.chunks_exact_mut(nr) {
                    step[width..].fill(0.0);
                }
            }
        }
    }
}

/// `m < SMALL_M`: no packing. `A·B` is one `xᵀ·B` per row of `A` (each element still summed
/// over `p` in order, `B` read once per row); `A·Bᵀ` is one GEMV per row of `A`.
fn small_m(backend: Backend, a: &[f32], b: MatRef<'_>, c: &mut [f32], shape: GemmShape, parallel: bool) {
    let GemmShape { n, k, .. } = shape;
    for (ai, ci) in a.chunks_exact(k).zip(c.chunks_exact_mut(n)) {
        if b.col_stride == 1 {
            super::gemv::vecmat(backend, ai, b.data, b.row_stride, ci, parallel);
        } else {
            super::gemv::gemv_unchecked(backend, b.data, ai, ci, n, k, parallel);
        }
    }
}
