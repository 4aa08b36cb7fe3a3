//! Tree models compiled to x86-64 machine code for single-row prediction: what lleaves does with LLVM
//! and TL2cgen with a C compiler, done here at load time, in-process and without a toolchain.
//!
//! References: Asadi, Lin & de Vries, "Runtime Optimizations for Tree-Based Machine Learning Models",
//! IEEE TKDE 26 (2014) (trees as nested if-else code against node arrays); the Intel 64 and IA-32
//! Architectures Software Developer's Manual, Vol. 2 (the encodings of `movss`, `movsd`, `ucomiss`,
//! `addsd`, `lea`, `cmovcc`, `jcc`, `jmp`, `ret`); the System V AMD64 ABI (argument in `rdi`, f64 result in `xmm0`).
//!
//! Why compile: a node-array walk ([`FlatForest`]) runs every node through the same few branch
//! instructions, so the branch predictor cannot learn that node 17 of tree 40 nearly always goes left.
//! Compiled, every node is its own branch instruction with its own history, the CPU runs ahead down the
//! predicted path of many trees at once, and one row costs about the instructions on its paths.
//!
//! The code: the row's first [`REG_FEATURES`] values are loaded once into `xmm2`… (later features are
//! loaded per node into `xmm1`) and the running sum starts in `xmm0`. Each tree is emitted depth-first:
//! a node is `ucomiss x, [threshold]` then `ja right` (and `jp right` first when NaN goes right; an
//! unordered compare sets the parity flag); its left subtree follows directly, so "left" falls through.
//! A leaf is `addsd xmm0, [value]` and a jump to the next tree. The bottom of a tree is where a row's
//! path is least predictable, so a subtree of at most [`CompileConfig::select_leaves`] leaves (8 by
//! default) has no branches: every compare in it runs and `cmova`/`cmovp` pick the address of the
//! leaf value, which one `addsd` then adds (LLVM does the same for two-leaf subtrees in lleaves' code).
//! On the c3w3 boosters this took a row from about 690 ns to 510 ns (8 leaves; 2 leaves: 615 ns).
//! Branches use 8-bit displacements where
//! the target is near (sizes are known before emitting, from each subtree's size), which keeps the hot
//! paths dense in the instruction cache. Thresholds and leaf values sit in a constant pool after the
//! code, addressed relative to the instruction pointer.
//!
//! Measured and left out (LightGBM's booster of the c3w3 data, 100 trees of 31 leaves): aligning each
//! tree to 16 bytes (1.1× slower at p50); one shared `addsd` per tree reached by every leaf, with a
//! right-hand leaf's address set before its compare so that "right" jumps straight to it (5% less code,
//! no measurable change); branch-free subtrees above 8 leaves (see `SELECT_REGS`). What remains is
//! mostly the dependent chain of 100 f64 additions (with a repeated row, so that every branch is
//! predicted, a row costs about 170 ns, 0.45 of the time with varied rows) and mispredicted branches.
//!
//! Predictions equal [`FlatForest::predict_row`]'s bit for bit: the same comparison (`x <= threshold`,
//! NaN to the node's default side), each f32 leaf value widened to f64 and added in tree order to the
//! same start, and the same final step. The code and constants are written into an anonymous mapping
//! that is then made read and execute: never writable and executable at once.

use std::collections::HashMap;

use rayon::prelude::*;

use super::Matrix;
use super::flat::{Combine, DEFAULT_LEFT, FlatForest, LEAF, finish};
use crate::{Error, Result};

/// Features kept in registers for the whole call (`xmm2`–`xmm15`); later ones are loaded per node.
pub const REG_FEATURES: usize = 14;

/// A single-output tree model compiled to machine code. See the module docs.
pub struct CompiledForest {
    #[cfg(all(target_arch = "x86_64", unix))]
    code: memmap2::Mmap,
    #[cfg(all(target_arch = "x86_64", unix))]
    entry: unsafe extern "sysv64" fn(*const f32) -> f64,
    code_bytes: usize,
    n_features: usize,
    n_trees: usize,
    combine: Combine,
}

impl std::fmt::Debug for CompiledForest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledForest")
            .field("n_features", &self.n_features)
            .field("n_trees", &self.n_trees)
            .field("code_bytes", &self.code_bytes)
            .finish()
    }
}

/// How [`compile`] emits code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompileConfig {
    /// Subtrees of at most this many leaves pick their leaf without branches (`cmov`): every compare
    /// of the subtree runs, but none can be mispredicted. 1 turns it off; at most [`MAX_SELECT_LEAVES`].
    pub select_leaves: usize,
}

impl Default for CompileConfig {
    fn default() -> Self {
        CompileConfig { select_leaves: SELECT_LEAVES }
    }
}

/// Compiles `forest` (one output per row: a regression or binary model) to machine code.
///
/// # Errors
/// [`Error::MlCompile`] on a CPU other than x86-64 or an OS other than a unix, for a multi-class model
/// (several outputs per row), for a malformed node array, or when the OS refuses executable memory.
/// Callers can then keep predicting with `forest` itself.
pub fn compile(forest: &FlatForest, config: &CompileConfig) -> Result<CompiledForest> {
    if !(1..=MAX_SELECT_LEAVES).contains(&config.select_leaves) {
        return Err(Error::InvalidParameter(format!(
            "select_leaves {} is outside 1..={MAX_SELECT_LEAVES}",
            config.select_leaves
        )));
    }
    if forest.n_outputs() != 1 {
        return Err(Error::MlCompile(format!(
            "the model has {} outputs per row; only single-output models (regression, binary) compile",
            forest.n_outputs()
        )));
    }
    if forest.n_features() > (i32::MAX as usize) / 4 {
        return Err(Error::MlCompile(format!("{} features is too many to address", forest.n_features())));
    }
    let image = emit(forest, config)?;
    let code_bytes = image.code_len;
    let (n_features, n_trees, combine) = (forest.n_features(), forest.n_trees(), forest.combine());
    #[cfg(all(target_arch = "x86_64", unix))]
    {
        let mut map = memmap2::MmapMut::map_anon(image.bytes.len())
            .map_err(|e| Error::MlCompile(format!("mapping {} bytes: {e}", image.bytes.len())))?;
        map.copy_from_slice(&image.bytes);
        let code = map.make_exec().map_err(|e| Error::MlCompile(format!("making the code executable: {e}")))?;
        // SAFETY: `code` starts with a function emitted by `emit` for the System V ABI: it reads
        // `n_features` f32 values from its argument (a pointer `predict_row` checks), touches only
        // caller-saved xmm registers, reads its constant pool inside the same mapping and returns the
        // sum in xmm0. The mapping lives as long as `entry` (both in `CompiledForest`).
        let entry =
            unsafe { std::mem::transmute::<*const u8, unsafe extern "sysv64" fn(*const f32) -> f64>(code.as_ptr()) };
        Ok(CompiledForest { code, entry, code_bytes, n_features, n_trees, combine })
    }
    #[cfg(not(all(target_arch = "x86_64", unix)))]
    {
        let _ = (code_bytes, n_features, n_trees, combine);
        Err(Error::MlCompile("machine code is emitted for x86-64 unix only".into()))
    }
}

impl CompiledForest {
    /// The number of features a row must have.
    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// The number of trees compiled.
    pub fn n_trees(&self) -> usize {
        self.n_trees
    }

    /// Bytes of machine code (the constant pool not included).
    pub fn code_bytes(&self) -> usize {
        self.code_bytes
    }

    /// The machine code (e.g. for `objdump -D -b binary -m i386:x86-64`); empty on other targets.
    pub fn code(&self) -> &[u8] {
        #[cfg(all(target_arch = "x86_64", unix))]
        {
            &self.code[..self.code_bytes]
        }
        #[cfg(not(all(target_arch = "x86_64", unix)))]
        {
            &[]
        }
    }

    /// The score of one row, equal bit for bit to [`FlatForest::predict_row`] of the compiled model.
    ///
    /// # Errors
    /// [`Error::DimensionMismatch`] when `row` does not have [`CompiledForest::n_features`] values.
    #[inline]
    pub fn predict_row(&self, row: &[f32]) -> Result<f32> {
        if row.len() != self.n_features {
            return Err(Error::DimensionMismatch { expected: self.n_features, got: row.len() });
        }
        #[cfg(all(target_arch = "x86_64", unix))]
        {
            let _ = &self.code;
            // SAFETY: the function reads exactly `n_features` values from `row` (checked above) and
            // nothing else outside its own mapping (see `compile`).
            let sum = unsafe { (self.entry)(row.as_ptr()) };
            Ok(finish(self.combine, self.n_trees, sum))
        }
        #[cfg(not(all(target_arch = "x86_64", unix)))]
        {
            unreachable!("compile refuses other targets")
        }
    }
}

impl CompiledForest {
    /// [`CompiledForest::predict_row`] for every row of `x`, blocks of rows on rayon's threads (the
    /// code is read-only, so every thread runs the same copy).
    ///
    /// # Errors
    /// [`Error::DimensionMismatch`] when `x` does not have [`CompiledForest::n_features`] columns.
    pub fn predict_batch(&self, x: &Matrix) -> Result<Vec<f32>> {
        if x.cols() != self.n_features {
            return Err(Error::DimensionMismatch { expected: self.n_features, got: x.cols() });
        }
        let mut out = vec![0.0f32; x.rows()];
        out.par_chunks_mut(BATCH_BLOCK).enumerate().try_for_each(|(b, o)| {
            for (r, v) in o.iter_mut().enumerate() {
                *v = self.predict_row(x.row(b * BATCH_BLOCK + r))?;
            }
            Ok::<(), Error>(())
        })?;
        Ok(out)
    }
}

/// Rows per rayon task of [`CompiledForest::predict_batch`].
const BATCH_BLOCK: usize = 256;

/// Emitted code followed by its constant pool.
struct Image {
    bytes: Vec<u8>,
    code_len: usize,
}

/// A jump target: an index into `Asm::labels`.
#[derive(Clone, Copy)]
struct Label(usize);

/// A constant-pool entry: its offset in the pool.
#[derive(Clone, Copy)]
struct Const(usize);

/// The x86-64 encoder: code bytes, jump and constant fix-ups.
#[derive(Default)]
struct Asm {
    code: Vec<u8>,
    labels: Vec<Option<usize>>,
    /// (position of a rel32 field, target).
    jumps32: Vec<(usize, Label)>,
    /// (position of a rel8 field, target).
    jumps8: Vec<(usize, Label)>,
    /// (position of a RIP-relative disp32 field that ends its instruction, constant).
    consts: Vec<(usize, Const)>,
    /// Pool bytes: f64 values first (8-aligned), then f32 values.
    pool64: Vec<u64>,
    pool32: Vec<u32>,
    index64: HashMap<u64, usize>,
    index32: HashMap<u32, usize>,
}

// Opcode bytes (Intel SDM Vol. 2).
const PREFIX_F3: u8 = 0xF3; // movss
const PREFIX_F2: u8 = 0xF2; // movsd, addsd
const OP_MOV_LOAD: u8 = 0x10; // movss/movsd xmm, m
const OP_UCOMISS: u8 = 0x2E;
const OP_ADDSD: u8 = 0x58;
const JA: u8 = 0x77; // short form; near form is 0F 87
const JP: u8 = 0x7A; // short form; near form is 0F 8A
const JNP: u8 = 0x7B; // short form; near form is 0F 8B
const JMP8: u8 = 0xEB;
const JMP32: u8 = 0xE9;
const RET: u8 = 0xC3;
const CMOVA: u8 = 0x47;
const CMOVP: u8 = 0x4A;
/// Scratch registers of a branch-free subtree, one per level of right children: rax, rcx, rdx, rsi,
/// r8–r11, all caller-saved (not rdi, the row). Only `SELECT_REGS[0]` (rax) is ever a memory base.
/// Larger subtrees (using rbx, rbp, r12–r15, saved in a prologue) measured slower: 12 leaves 1.1×,
/// 14 leaves 1.3× the time per row of 8 on the c3w3 boosters.
const SELECT_REGS: [u8; 8] = [0, 1, 2, 6, 8, 9, 10, 11];
/// Leaves of the largest subtree picked without branches by default (measured on the c3w3 boosters).
const SELECT_LEAVES: usize = 8;
/// The most [`CompileConfig::select_leaves`] can be: a subtree of n leaves needs at most n registers.
pub const MAX_SELECT_LEAVES: usize = SELECT_REGS.len();

/// Distances that fit a signed 8-bit displacement.
const SHORT: std::ops::RangeInclusive<i64> = -128..=127;

impl Asm {
    /// Forgets the code and its fix-ups (the labels and the constant pool stay): for measuring items.
    fn clear(&mut self) {
        self.code.clear();
        self.jumps8.clear();
        self.jumps32.clear();
        self.consts.clear();
    }

    fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }

    fn bind(&mut self, l: Label) {
        self.labels[l.0] = Some(self.code.len());
    }

    fn f64_const(&mut self, v: f64) -> Const {
        let next = self.pool64.len();
        let i = *self.index64.entry(v.to_bits()).or_insert(next);
        if i == next {
            self.pool64.push(v.to_bits());
        }
        Const(i * 8)
    }

    /// f32 constants are placed after all f64 ones; the offset is fixed up in `finish`.
    fn f32_const(&mut self, v: f32) -> Const {
        let next = self.pool32.len();
        let i = *self.index32.entry(v.to_bits()).or_insert(next);
        if i == next {
            self.pool32.push(v.to_bits());
        }
        Const(F32_TAG | (i * 4))
    }

    /// `[prefix] [REX.R] 0F op ModRM` with `reg` in ModRM.reg.
    fn op(&mut self, prefix: Option<u8>, op: u8, reg: u8, mode: u8, rm: u8) {
        if let Some(p) = prefix {
            self.code.push(p);
        }
        if reg >= 8 {
            self.code.push(0x44);
        }
        self.code.extend_from_slice(&[0x0F, op, (mode << 6) | ((reg & 7) << 3) | rm]);
    }

    /// `op xmm(reg), [rip + constant]`.
    fn xmm_rip(&mut self, prefix: Option<u8>, op: u8, reg: u8, c: Const) {
        self.op(prefix, op, reg, 0b00, 0b101);
        self.consts.push((self.code.len(), c));
        self.code.extend_from_slice(&[0; 4]);
    }

    /// `op xmm(reg), [rdi + disp]`.
    fn xmm_rdi(&mut self, prefix: Option<u8>, op: u8, reg: u8, disp: i32) {
        self.op(prefix, op, reg, 0b10, 0b111);
        self.code.extend_from_slice(&disp.to_le_bytes());
    }

    /// `lea r64, [rip + constant]`.
    fn lea_rip(&mut self, reg: u8, c: Const) {
        self.code.extend_from_slice(&[0x48 | (reg >> 3) << 2, 0x8D, ((reg & 7) << 3) | 0b101]);
        self.consts.push((self.code.len(), c));
        self.code.extend_from_slice(&[0; 4]);
    }

    /// `cmovcc dst, src` on 64-bit registers (`cc` is the second opcode byte: `CMOVA`, `CMOVP`).
    fn cmov(&mut self, cc: u8, dst: u8, src: u8) {
        let rex = 0x48 | (dst >> 3) << 2 | (src >> 3);
        self.code.extend_from_slice(&[rex, 0x0F, cc, 0b11_000_000 | ((dst & 7) << 3) | (src & 7)]);
    }

    /// `ucomiss xmm(reg), xmm(reg)`: unordered (parity set) exactly when the register holds NaN.
    fn ucomiss_self(&mut self, reg: u8) {
        if reg >= 8 {
            self.code.push(0x45);
        }
        self.code.extend_from_slice(&[0x0F, OP_UCOMISS, 0b11_000_000 | ((reg & 7) << 3) | (reg & 7)]);
    }

    /// A conditional jump (`short` is the 8-bit form's opcode) or, with `None`, an unconditional one.
    fn jump(&mut self, short: Option<u8>, to: Label, near: bool) {
        match (short, near) {
            (Some(cc), true) => {
                self.code.push(cc);
                self.jumps8.push((self.code.len(), to));
                self.code.push(0);
            }
            (Some(cc), false) => {
                self.code.extend_from_slice(&[0x0F, cc + 0x10]);
                self.jumps32.push((self.code.len(), to));
                self.code.extend_from_slice(&[0; 4]);
            }
            (None, true) => {
                self.code.push(JMP8);
                self.jumps8.push((self.code.len(), to));
                self.code.push(0);
            }
            (None, false) => {
                self.code.push(JMP32);
                self.jumps32.push((self.code.len(), to));
                self.code.extend_from_slice(&[0; 4]);
            }
        }
    }

    /// Resolves jumps and constants; returns code followed by the pool.
    fn finish(mut self) -> Result<Image> {
        let target = |labels: &[Option<usize>], l: Label| labels[l.0].expect("every label is bound");
        for &(at, l) in &self.jumps8 {
            let rel = target(&self.labels, l) as i64 - (at as i64 + 1);
            if !SHORT.contains(&rel) {
                return Err(Error::MlCompile(format!("internal: short jump of {rel} bytes at {at}")));
            }
            self.code[at] = rel as i8 as u8;
        }
        for &(at, l) in &self.jumps32 {
            let rel = target(&self.labels, l) as i64 - (at as i64 + 4);
            self.code[at..at + 4].copy_from_slice(&(rel as i32).to_le_bytes());
        }
        let code_len = self.code.len();
        let pool = code_len.next_multiple_of(64);
        let f32_base = pool + self.pool64.len() * 8;
        let total = f32_base + self.pool32.len() * 4;
        if total > i32::MAX as usize {
            return Err(Error::MlCompile(format!("{total} bytes of code and constants is too large")));
        }
        for &(at, Const(c)) in &self.consts {
            let addr = if c & F32_TAG != 0 { f32_base + (c & !F32_TAG) } else { pool + c };
            let rel = addr as i64 - (at as i64 + 4);
            self.code[at..at + 4].copy_from_slice(&(rel as i32).to_le_bytes());
        }
        let mut bytes = self.code;
        bytes.resize(pool, 0xCC); // int3 between code and data
        bytes.extend(self.pool64.iter().flat_map(|v| v.to_le_bytes()));
        bytes.extend(self.pool32.iter().flat_map(|v| v.to_le_bytes()));
        Ok(Image { bytes, code_len })
    }
}

/// Marks a [`Const`] as an f32 (its offset counts from the start of the f32 part of the pool).
const F32_TAG: usize = 1 << 62;

/// The register holding a feature: `xmm2 + feature`, or the scratch `xmm1`.
fn feature_reg(feature: usize) -> u8 {
    if feature < REG_FEATURES { 2 + feature as u8 } else { 1 }
}

/// Checked access to the node arrays.
struct Trees<'a> {
    forest: &'a FlatForest,
}

impl Trees<'_> {
    fn node(&self, c: u32) -> Result<&super::flat::FlatNode> {
        self.forest.nodes().get(c as usize).ok_or_else(|| Error::MlCompile(format!("node {c} is out of range")))
    }

    fn leaf(&self, c: u32) -> Result<f32> {
        let i = (c & !LEAF) as usize;
        self.forest.leaves().get(i).copied().ok_or_else(|| Error::MlCompile(format!("leaf {i} is out of range")))
    }

    /// Whether every node among `items` has a number (not NaN) for threshold.
    fn numbers(&self, items: &[Item]) -> Result<bool> {
        for it in items.iter().filter(|it| it.c & LEAF == 0) {
            if self.node(it.c)?.threshold.is_nan() {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The tree from `root` in preorder (the emitted order), checked: references in range, features
    /// below `n_features`, no cycle.
    fn layout(&self, root: u32, select_leaves: usize) -> Result<Vec<Item>> {
        // Preorder list of (reference, is the last item of the tree).
        let mut order = Vec::new();
        let mut stack = vec![root];
        let budget = self.forest.nodes().len() + self.forest.leaves().len() + 1;
        while let Some(c) = stack.pop() {
            if order.len() > budget {
                return Err(Error::MlCompile("the node array has a cycle".into()));
            }
            order.push(Item { c, right: usize::MAX, end: usize::MAX, form: Form::Plain });
            if c & LEAF != 0 {
                self.leaf(c)?;
            } else {
                let n = self.node(c)?;
                let f = (n.feature & !DEFAULT_LEFT) as usize;
                if f >= self.forest.n_features() {
                    return Err(Error::MlCompile(format!(
                        "node {c} tests feature {f} of {}",
                        self.forest.n_features()
                    )));
                }
                stack.push(n.right);
                stack.push(n.left);
            }
        }
        // Each internal node's right child is the item right after its left subtree.
        for i in (0..order.len()).rev() {
            order[i].end = if order[i].c & LEAF != 0 {
                i + 1
            } else {
                let left_end = order[i + 1].end;
                order[i].right = left_end;
                order[left_end].end
            };
        }
        // The bottom decisions are the least predictable: a subtree of at most `SELECT_LEAVES` leaves
        // (thresholds all numbers) picks its leaf without a branch.
        let mut i = 0;
        while i < order.len() {
            let (c, end) = (order[i].c, order[i].end);
            let leaves = (end - i).div_ceil(2);
            if c & LEAF == 0 && leaves <= select_leaves && self.numbers(&order[i..end])? {
                order[i].form = Form::Select;
                order[i + 1..end].iter_mut().for_each(|it| it.form = Form::Absorbed);
                i = end;
            } else {
                i += 1;
            }
        }
        Ok(order)
    }
}

/// One emitted node or leaf of a tree, in preorder; `right` is the index of an internal node's right child.
struct Item {
    c: u32,
    right: usize,
    /// One past the last item of this item's subtree.
    end: usize,
    form: Form,
}

/// How an item is emitted.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Form {
    /// A leaf, or a node that branches to its right child.
    Plain,
    /// The root of a subtree of at most `select_leaves` leaves: no branch, the leaf address is
    /// picked with `cmov`.
    Select,
    /// An item inside a `Select` subtree: emits nothing of its own.
    Absorbed,
}

/// Writes the whole model as one function.
fn emit(forest: &FlatForest, config: &CompileConfig) -> Result<Image> {
    let mut asm = Asm::default();
    for f in 0..forest.n_features().min(REG_FEATURES) {
        asm.xmm_rdi(Some(PREFIX_F3), OP_MOV_LOAD, feature_reg(f), 4 * f as i32);
    }
    let start = match forest.combine() {
        Combine::Mean => 0.0,
        Combine::Sum { base, .. } => base,
    };
    let c = asm.f64_const(start);
    asm.xmm_rip(Some(PREFIX_F2), OP_MOV_LOAD, 0, c);
    let trees = Trees { forest };
    for &root in forest.roots() {
        emit_tree(&mut asm, &trees, root, config)?;
    }
    asm.code.push(RET);
    asm.finish()
}

fn emit_tree(asm: &mut Asm, trees: &Trees<'_>, root: u32, config: &CompileConfig) -> Result<()> {
    let items = trees.layout(root, config.select_leaves)?;
    let n = items.len();
    // Sizes with every jump short first, then widen the jumps that do not reach until nothing changes
    // (widening only moves targets further, so this ends). `near[i]`: item i's jumps use rel8.
    let mut near = vec![true; n];
    let mut offsets = vec![0usize; n + 1];
    let mut scratch = Asm::default();
    let (dummy, dummy_end) = (scratch.label(), scratch.label());
    loop {
        for i in 0..n {
            scratch.clear();
            emit_item(&mut scratch, trees, &items, i, dummy, dummy_end, near[i])?;
            offsets[i + 1] = offsets[i] + scratch.code.len();
        }
        let mut changed = false;
        for i in 0..n {
            // A node's jumps go to its right child, a leaf's to the tree's end. The last jump ends at
            // offsets[i + 1]; a node's short `jp` ends 2 bytes before it, hence the 125.
            let to = match items[i].form {
                Form::Absorbed => continue,
                Form::Select => n,
                Form::Plain if items[i].c & LEAF != 0 => n,
                Form::Plain => items[i].right,
            };
            if near[i] && offsets[to] - offsets[i + 1] > 125 {
                near[i] = false;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let end = asm.label();
    let labels: Vec<Label> = (0..n).map(|_| asm.label()).collect();
    let base = asm.code.len();
    for i in 0..n {
        asm.bind(labels[i]);
        debug_assert_eq!(asm.code.len() - base, offsets[i]);
        let right = if items[i].c & LEAF != 0 { end } else { labels[items[i].right] };
        emit_item(asm, trees, &items, i, right, end, near[i])?;
    }
    asm.bind(end);
    debug_assert_eq!(asm.code.len() - base, offsets[n]);
    Ok(())
}

/// Leaves the address of the leaf value that the row reaches in the subtree at item `i` in
/// `SELECT_REGS[depth]`, without branches: both children's addresses are computed, then the node's
/// compare picks one with `cmova` (and `cmovp` when NaN goes right).
fn emit_select(asm: &mut Asm, trees: &Trees<'_>, items: &[Item], i: usize, depth: usize) -> Result<()> {
    let c = items[i].c;
    let dst = SELECT_REGS[depth];
    if c & LEAF != 0 {
        let v = asm.f64_const(f64::from(trees.leaf(c)?));
        asm.lea_rip(dst, v);
        return Ok(());
    }
    let src = *SELECT_REGS.get(depth + 1).ok_or_else(|| Error::MlCompile("internal: select too deep".into()))?;
    emit_select(asm, trees, items, i + 1, depth)?;
    emit_select(asm, trees, items, items[i].right, depth + 1)?;
    let node = trees.node(c)?;
    let f = (node.feature & !DEFAULT_LEFT) as usize;
    let reg = feature_reg(f);
    if f >= REG_FEATURES {
        asm.xmm_rdi(Some(PREFIX_F3), OP_MOV_LOAD, reg, 4 * f as i32);
    }
    let t = asm.f32_const(node.threshold);
    asm.xmm_rip(None, OP_UCOMISS, reg, t);
    asm.cmov(CMOVA, dst, src);
    if node.feature & DEFAULT_LEFT == 0 {
        asm.cmov(CMOVP, dst, src);
    }
    Ok(())
}

/// Emits item `i` of a tree: a leaf adds its value and jumps to `end` (unless it is the tree's last
/// item); a node compares its feature and jumps to `right` when the row goes right.
fn emit_item(
    asm: &mut Asm,
    trees: &Trees<'_>,
    items: &[Item],
    i: usize,
    right: Label,
    end: Label,
    near: bool,
) -> Result<()> {
    let c = items[i].c;
    match items[i].form {
        Form::Absorbed => return Ok(()),
        Form::Select => {
            emit_select(asm, trees, items, i, 0)?;
            asm.code.extend_from_slice(&[PREFIX_F2, 0x0F, OP_ADDSD, SELECT_REGS[0] & 7]);
            if items[i].end < items.len() {
                asm.jump(None, end, near);
            }
            return Ok(());
        }
        Form::Plain => {}
    }
    if c & LEAF != 0 {
        let v = asm.f64_const(f64::from(trees.leaf(c)?));
        asm.xmm_rip(Some(PREFIX_F2), OP_ADDSD, 0, v);
        if i + 1 < items.len() {
            asm.jump(None, end, near);
        }
        return Ok(());
    }
    let node = trees.node(c)?;
    let f = (node.feature & !DEFAULT_LEFT) as usize;
    let default_left = node.feature & DEFAULT_LEFT != 0;
    if node.threshold.is_nan() && !default_left {
        // `x <= NaN` is false and NaN goes right too: always right.
        asm.jump(None, right, near);
        return Ok(());
    }
    let reg = feature_reg(f);
    if f >= REG_FEATURES {
        asm.xmm_rdi(Some(PREFIX_F3), OP_MOV_LOAD, reg, 4 * f as i32);
    }
    if node.threshold.is_nan() {
        // A number goes right, NaN to the default (left) side.
        asm.ucomiss_self(reg);
        asm.jump(Some(JNP), right, near);
    } else {
        let t = asm.f32_const(node.threshold);
        asm.xmm_rip(None, OP_UCOMISS, reg, t);
        if !default_left {
            asm.jump(Some(JP), right, near);
        }
        asm.jump(Some(JA), right, near);
    }
    Ok(())
}
