//! Hidden tests of week c3w5 (quality, monitoring and orchestration): PSI and KS against numpy and
//! scipy (`fixtures/drift_cases.json`, made by `fixtures/make_fixtures.py`) and against the
//! production `kernels::monitor::drift`; the expectation checker and the topological order against
//! independent references written here (brute force for the order); the cache key against an
//! independent encoding hashed by a BLAKE3 written here (checked on vectors of the `blake3` crate);
//! the journal on every possible tear; the resuming runner with a crash injected at every file
//! operation (and twice); the complexity counter against `kernels::quality::complexity` and
//! against a generator of random functions that knows their counts.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use c3w5_quality as lab;
use lab::Error;
use lab::journal::Fs;
use serde_json::Value;

const DRIFT: &str = include_str!("fixtures/drift_cases.json");

/// Deterministic pseudo-random numbers (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.unit().max(1e-300), self.unit());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
}

/// `got` within `rel` of `want` (relative), or both tiny.
fn close(got: f64, want: f64, rel: f64) -> bool {
    got == want || (got - want).abs() <= rel * want.abs().max(1e-300)
}

fn fixtures() -> Value {
    serde_json::from_str(DRIFT).expect("fixtures/drift_cases.json parses")
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().expect("an array").iter().map(|x| x.as_f64().expect("a number")).collect()
}

fn counts(v: &Value) -> Vec<u64> {
    v.as_array().expect("an array").iter().map(|x| x.as_u64().expect("a count")).collect()
}

/// A random numeric column of one of several shapes (continuous, heavy ties, mixtures, outliers).
fn column(rng: &mut Rng, n: usize, shape: usize, shift: f64) -> Vec<f64> {
    (0..n)
        .map(|_| match shape % 6 {
            0 => rng.normal() + shift,
            1 => (rng.below(7) as f64 + shift).floor(),
            2 => {
                if rng.chance(0.6) {
                    0.0
                } else {
                    (-rng.unit().max(1e-12).ln()) * (1.0 + shift)
                }
            }
            3 => (rng.normal() * (1.0 + shift.abs())).exp(),
            4 => {
                if rng.chance(0.01) {
                    1e12 * rng.normal()
                } else {
                    rng.normal() + shift
                }
            }
            _ => ((rng.normal() + shift) * 4.0).round() / 4.0,
        })
        .collect()
}

// ------------------------------------------------------------------------------------------ PSI

// ------------------------------------------------------------------------------------------- KS

// ------------------------------------------------------------------------------- expectations

/// The reference checker: the doc comment's rules, written independently.
fn reference_check(
    table: &lab::expect::Table,
    expectations: &[lab::expect::Expectation],
    sample: usize,
) -> Vec<(usize, Option<String>, usize, Vec<usize>)> {
    use lab::expect::{Column, Expectation};
    let rows = table.columns.first().map_or(0, |c| c.1.len());
    let col = |name: &str| &table.columns.iter().find(|c| c.0 == name).expect("validated").1;
    let mut out = Vec::new();
    for (i, e) in expectations.iter().enumerate() {
        let (name, bad): (Option<String>, Vec<usize>) = match e {
            Expectation::RowCount { min, max } => {
                if rows < *min || rows > *max {
                    out.push((i, None, rows, vec![]));
                }
                continue;
            }
            Expectation::NotNull { column } => {
                let bad = match col(column) {
                    Column::Float(v) => (0..v.len()).filter(|&r| v[r].is_none() || v[r].unwrap().is_nan()).collect(),
                    Column::Text(v) => (0..v.len()).filter(|&r| v[r].is_none()).collect(),
                };
                (Some(column.clone()), bad)
            }
            Expectation::Between { column, min, max } => {
                let Column::Float(v) = col(column) else { panic!("validated") };
                let bad =
                    (0..v.len()).filter(|&r| matches!(v[r], Some(x) if x.is_nan() || x < *min || x > *max)).collect();
                (Some(column.clone()), bad)
            }
            Expectation::AllowedValues { column, allowed } => {
                let Column::Text(v) = col(column) else { panic!("validated") };
                let bad = (0..v.len()).filter(|&r| matches!(&v[r], Some(s) if !allowed.contains(s))).collect();
                (Some(column.clone()), bad)
            }
            Expectation::Unique { column } => {
                // Quadratic on purpose: compare with every earlier row.
                let same_f = |a: f64, b: f64| a == b || (a.is_nan() && b.is_nan());
                let bad = match col(column) {
                    Column::Float(v) => (0..v.len())
                        .filter(|&r| v[r].is_some_and(|x| (0..r).any(|q| v[q].is_some_and(|y| same_f(x, y)))))
                        .collect(),
                    Column::Text(v) => {
                        (0..v.len()).filter(|&r| v[r].is_some() && (0..r).any(|q| v[q] == v[r])).collect()
                    }
                };
                (Some(column.clone()), bad)
            }
        };
        if !bad.is_empty() {
            let n = bad.len();
            out.push((i, name, n, bad.into_iter().take(sample).collect()));
        }
    }
    out
}

fn random_table(rng: &mut Rng, rows: usize) -> lab::expect::Table {
    use lab::expect::Column;
    let words = ["EUR", "USD", "日本円", "", "usd", "EUR ", "🦀"];
    let mut columns = Vec::new();
    for c in 0..2 + rng.below(4) {
        let name = format!("col{c}");
        let column = if rng.chance(0.5) {
            let pool = [0.0, -0.0, 1.0, 2.5, -3.0, 100.0, f64::NAN, 1e300, -1e-300, 7.0];
            Column::Float(
                (0..rows)
                    .map(|_| {
                        if rng.chance(0.15) {
                            None
                        } else if rng.chance(0.5) {
                            Some(pool[rng.below(pool.len())])
                        } else {
                            Some(rng.normal() * 50.0)
                        }
                    })
                    .collect(),
            )
        } else {
            Column::Text(
                (0..rows)
                    .map(|_| if rng.chance(0.15) { None } else { Some(words[rng.below(words.len())].to_string()) })
                    .collect(),
            )
        };
        columns.push((name, column));
    }
    lab::expect::Table { columns }
}

fn random_expectations(rng: &mut Rng, table: &lab::expect::Table) -> Vec<lab::expect::Expectation> {
    use lab::expect::{Column, Expectation};
    let mut out = Vec::new();
    for _ in 0..1 + rng.below(8) {
        let (name, column) = &table.columns[rng.below(table.columns.len())];
        let column_name = name.clone();
        let e = match (rng.below(5), column) {
            (0, _) => Expectation::NotNull { column: column_name },
            (1, _) => Expectation::Unique { column: column_name },
            (2, Column::Float(_)) => {
                let (a, b) = (rng.normal() * 40.0, rng.normal() * 40.0);
                Expectation::Between { column: column_name, min: a.min(b), max: a.max(b) }
            }
            (2, Column::Text(_)) | (3, Column::Text(_)) => Expectation::AllowedValues {
                column: column_name,
                allowed: ["EUR", "USD", "🦀"].iter().take(1 + rng.below(3)).map(|s| s.to_string()).collect(),
            },
            (3, Column::Float(_)) => Expectation::Between { column: column_name, min: 0.0, max: 0.0 },
            _ => {
                let a = rng.below(30);
                Expectation::RowCount { min: a, max: a + rng.below(30) }
            }
        };
        out.push(e);
    }
    out
}

// --------------------------------------------------------------------------- topological order

/// The smallest order by index, by brute force: repeatedly the smallest step whose dependencies
/// have all run. `Err(remaining)` when it gets stuck.
fn brute_force_order(deps: &[Vec<usize>]) -> Result<Vec<usize>, Vec<bool>> {
    let n = deps.len();
    let mut done = vec![false; n];
    let mut order = Vec::new();
    while order.len() < n {
        match (0..n).find(|&i| !done[i] && deps[i].iter().all(|&d| done[d])) {
            Some(i) => {
                done[i] = true;
                order.push(i);
            }
            None => return Err(done),
        }
    }
    Ok(order)
}

fn steps_of(deps: &[Vec<usize>]) -> Vec<lab::dag::Step> {
    deps.iter()
        .enumerate()
        .map(|(i, d)| lab::dag::Step { name: format!("s{i}"), after: d.iter().map(|j| format!("s{j}")).collect() })
        .collect()
}

// ------------------------------------------------------------------------------------- BLAKE3

/// BLAKE3 (hash mode, 32-byte output), written from the specification, independent of the
/// `blake3` crate the lab uses; checked on vectors the crate produced.
mod blake3_ref {
    const IV: [u32; 8] =
        [0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A, 0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19];
    const PERM: [usize; 16] = [2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8];
    const CHUNK_START: u32 = 1;
    const CHUNK_END: u32 = 2;
    const PARENT: u32 = 4;
    const ROOT: u32 = 8;

    fn g(s: &mut [u32; 16], a: usize, b: usize, c: usize, d: usize, x: u32, y: u32) {
        s[a] = s[a].wrapping_add(s[b]).wrapping_add(x);
        s[d] = (s[d] ^ s[a]).rotate_right(16);
        s[c] = s[c].wrapping_add(s[d]);
        s[b] = (s[b] ^ s[c]).rotate_right(12);
        s[a] = s[a].wrapping_add(s[b]).wrapping_add(y);
        s[d] = (s[d] ^ s[a]).rotate_right(8);
        s[c] = s[c].wrapping_add(s[d]);
        s[b] = (s[b] ^ s[c]).rotate_right(7);
    }

    fn compress(cv: &[u32; 8], block: &[u32; 16], counter: u64, len: u32, flags: u32) -> [u32; 16] {
        let mut s = [
            cv[0],
            cv[1],
            cv[2],
            cv[3],
            cv[4],
            cv[5],
            cv[6],
            cv[7],
            IV[0],
            IV[1],
            IV[2],
            IV[3],
            counter as u32,
            (counter >> 32) as u32,
            len,
            flags,
        ];
        let mut m = *block;
        for round in 0..7 {
            g(&mut s, 0, 4, 8, 12, m[0], m[1]);
            g(&mut s, 1, 5, 9, 13, m[2], m[3]);
            g(&mut s, 2, 6, 10, 14, m[4], m[5]);
            g(&mut s, 3, 7, 11, 15, m[6], m[7]);
            g(&mut s, 0, 5, 10, 15, m[8], m[9]);
            g(&mut s, 1, 6, 11, 12, m[10], m[11]);
            g(&mut s, 2, 7, 8, 13, m[12], m[13]);
            g(&mut s, 3, 4, 9, 14, m[14], m[15]);
            if round < 6 {
                let old = m;
                for i in 0..16 {
                    m[i] = old[PERM[i]];
                }
            }
        }
        for i in 0..8 {
            s[i] ^= s[i + 8];
            s[i + 8] ^= cv[i];
        }
        s
    }

    fn words(bytes: &[u8]) -> [u32; 16] {
        let mut padded = [0u8; 64];
        padded[..bytes.len()].copy_from_slice(bytes);
        std::array::from_fn(|i| {
            u32::from_le_bytes([padded[4 * i], padded[4 * i + 1], padded[4 * i + 2], padded[4 * i + 3]])
        })
    }

    /// What the last compression of a node needs, kept until we know whether it is the root.
    struct Node {
        cv: [u32; 8],
        block: [u32; 16],
        counter: u64,
        len: u32,
        flags: u32,
    }

    impl Node {
        fn chaining_value(&self) -> [u32; 8] {
            let out = compress(&self.cv, &self.block, self.counter, self.len, self.flags);
            std::array::from_fn(|i| out[i])
        }
    }

    fn chunk(bytes: &[u8], index: u64) -> Node {
        let mut cv = IV;
        let blocks: Vec<&[u8]> = if bytes.is_empty() { vec![&[][..]] } else { bytes.chunks(64).collect() };
        for (b, block) in blocks.iter().enumerate() {
            let mut flags = if b == 0 { CHUNK_START } else { 0 };
            if b + 1 == blocks.len() {
                flags |= CHUNK_END;
                return Node { cv, block: words(block), counter: index, len: block.len() as u32, flags };
            }
            let out = compress(&cv, &words(block), index, 64, flags);
            cv = std::array::from_fn(|i| out[i]);
        }
        unreachable!("at least one block")
    }

    fn parent(left: [u32; 8], right: [u32; 8]) -> Node {
        let block = std::array::from_fn(|i| if i < 8 { left[i] } else { right[i - 8] });
        Node { cv: IV, block, counter: 0, len: 64, flags: PARENT }
    }

    pub fn hash(input: &[u8]) -> [u8; 32] {
        let chunks: Vec<&[u8]> = if input.is_empty() { vec![&[][..]] } else { input.chunks(1024).collect() };
        let mut stack: Vec<[u32; 8]> = Vec::new();
        for (i, c) in chunks.iter().enumerate().take(chunks.len() - 1) {
            let mut cv = chunk(c, i as u64).chaining_value();
            let mut total = i as u64 + 1;
            while total & 1 == 0 {
                cv = parent(stack.pop().expect("stack"), cv).chaining_value();
                total >>= 1;
            }
            stack.push(cv);
        }
        let mut node = chunk(chunks[chunks.len() - 1], chunks.len() as u64 - 1);
        while let Some(left) = stack.pop() {
            node = parent(left, node.chaining_value());
        }
        let out = compress(&node.cv, &node.block, node.counter, node.len, node.flags | ROOT);
        let mut bytes = [0u8; 32];
        for i in 0..8 {
            bytes[4 * i..4 * i + 4].copy_from_slice(&out[i].to_le_bytes());
        }
        bytes
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The canonical encoding, written independently of the lab's.
fn reference_encoding(argv: &[String], config: &[(String, String)], inputs: &[(String, [u8; 32])]) -> Vec<u8> {
    let mut out = Vec::new();
    let put = |out: &mut Vec<u8>, s: &[u8]| {
        out.extend((s.len() as u64).to_le_bytes());
        out.extend(s);
    };
    put(&mut out, b"c3w5.step-cache.v1");
    out.extend((argv.len() as u64).to_le_bytes());
    for a in argv {
        put(&mut out, a.as_bytes());
    }
    let config: BTreeMap<&[u8], &[u8]> = config.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())).collect();
    out.extend((config.len() as u64).to_le_bytes());
    for (k, v) in config {
        put(&mut out, k);
        put(&mut out, v);
    }
    let inputs: BTreeMap<&[u8], &[u8; 32]> = inputs.iter().map(|(p, d)| (p.as_bytes(), d)).collect();
    out.extend((inputs.len() as u64).to_le_bytes());
    for (p, d) in inputs {
        put(&mut out, p);
        out.extend(d);
    }
    out
}

fn random_word(rng: &mut Rng) -> String {
    let pieces = ["a", "b", "ab", "=", " ", "--lr", "0.01", "é", "日本", "🦀", "", "\0", "x/y.csv"];
    (0..rng.below(4)).map(|_| pieces[rng.below(pieces.len())]).collect()
}

fn random_spec(rng: &mut Rng) -> lab::cache::StepSpec {
    let argv: Vec<String> = (0..1 + rng.below(5)).map(|_| random_word(rng)).collect();
    let mut keys = BTreeSet::new();
    let config: Vec<(String, String)> = (0..rng.below(5))
        .filter_map(|i| {
            let k = format!("{}{i}", random_word(rng));
            keys.insert(k.clone()).then(|| (k, random_word(rng)))
        })
        .collect();
    let inputs: Vec<lab::cache::Input> = (0..rng.below(4))
        .map(|i| {
            let bytes: Vec<u8> = (0..rng.below(3000)).map(|_| rng.next() as u8).collect();
            lab::cache::Input { path: format!("data/{i}/{}", random_word(rng)), digest: blake3_ref::hash(&bytes) }
        })
        .collect();
    lab::cache::StepSpec { argv, config, inputs }
}

/// BLAKE3 of `i % 251` for i in 0..len, computed with the `blake3` crate (1.8).
const BLAKE3_VECTORS: &[(usize, &str)] = &[
    (0, "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"),
    (1, "2d3adedff11b61f14c886e35afa036736dcd87a74d27b5c1510225d0f592e213"),
    (63, "e9bc37a594daad83be9470df7f7b3798297c3d834ce80ba85d6e207627b7db7b"),
    (64, "4eed7141ea4a5cd4b788606bd23f46e212af9cacebacdc7d1f4c6dc7f2511b98"),
    (65, "de1e5fa0be70df6d2be8fffd0e99ceaa8eb6e8c93a63f2d8d1c30ecb6b263dee"),
    (1023, "10108970eeda3eb932baac1428c7a2163b0e924c9a9e25b35bba72b28f70bd11"),
    (1024, "42214739f095a406f3fc83deb889744ac00df831c10daa55189b5d121c855af7"),
    (1025, "d00278ae47eb27b34faecf67b4fe263f82d5412916c1ffd97c8cb7fb814b8444"),
    (2048, "e776b6028c7cd22a4d0ba182a8bf62205d2ef576467e838ed6f2529b85fba24a"),
    (2049, "5f4d72f40d7a5f82b15ca2b2e44b1de3c2ef86c426c95c1af0b6879522563030"),
    (3072, "b98cb0ff3623be03326b373de6b9095218513e64f1ee2edd2525c7ad1e5cffd2"),
    (3073, "7124b49501012f81cc7f11ca069ec9226cecb8a2c850cfe644e327d22d3e1cd3"),
    (4097, "9b4052b38f1c5fc8b1f9ff7ac7b27cd242487b3d890d15c96a1c25b8aa0fb995"),
    (5121, "628bd2cb2004694adaab7bbd778a25df25c47b9d4155a55f8fbd79f2fe154cff"),
    (8193, "bab6c09cb8ce8cf459261398d2e7aef35700bf488116ceb94a36d0f5f1b7bc3b"),
    (16385, "1dabe216be2578830263b049de1639f39f05a4da616b9b78c7a5e4e41662fd1f"),
    (31744, "62b6960e1a44bcc1eb1a611a8d6235b6b4b78f32e7abc4fb4c6cdcce94895c47"),
];

// ------------------------------------------------------------------------------------ journal

/// CRC-32 (IEEE), table-driven: independent of the lab's bitwise one.
fn crc32_ref(bytes: &[u8]) -> u32 {
    let table: Vec<u32> =
        (0..256u32).map(|n| (0..8).fold(n, |c, _| if c & 1 == 1 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 })).collect();
    !bytes.iter().fold(!0u32, |c, &b| table[((c ^ b as u32) & 0xFF) as usize] ^ (c >> 8))
}

fn record_ref(payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_le_bytes().to_vec();
    out.extend(payload);
    let crc = crc32_ref(&out);
    out.extend(crc.to_le_bytes());
    out
}

fn random_payloads(rng: &mut Rng) -> Vec<Vec<u8>> {
    (0..rng.below(7))
        .map(|_| {
            let len = [0, 1, 3, 4, 7, 8, 20, 300][rng.below(8)];
            (0..len).map(|_| rng.next() as u8).collect()
        })
        .collect()
}

// ------------------------------------------------------------------------------------- resume

/// A file operation, as logged.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Op {
    Write(String),
    Append(String),
    Rename(String, String),
    Sync(String),
}

/// A file system that crashes at one mutating operation: a write or append then leaves a prefix of
/// `tear` bytes, a rename or sync does nothing, and every later operation (reads too) fails.
struct CrashFs<'a> {
    inner: &'a mut lab::journal::MemFs,
    crash_at: Option<usize>,
    tear: usize,
    ops: Vec<Op>,
    crashed: bool,
}

impl<'a> CrashFs<'a> {
    fn new(inner: &'a mut lab::journal::MemFs, crash_at: Option<usize>, tear: usize) -> Self {
        CrashFs { inner, crash_at, tear, ops: Vec::new(), crashed: false }
    }

    /// Logs `op`; `Ok(true)` when it must crash now.
    fn step(&mut self, op: Op) -> lab::Result<bool> {
        if self.crashed {
            return Err(Error::Io("the machine is down".into()));
        }
        self.ops.push(op);
        if self.crash_at == Some(self.ops.len() - 1) {
            self.crashed = true;
            return Ok(true);
        }
        Ok(false)
    }
}

impl lab::journal::Fs for CrashFs<'_> {
    fn read(&mut self, path: &str) -> lab::Result<Option<Vec<u8>>> {
        if self.crashed {
            return Err(Error::Io("the machine is down".into()));
        }
        self.inner.read(path)
    }
    fn write(&mut self, path: &str, bytes: &[u8]) -> lab::Result<()> {
        if self.step(Op::Write(path.into()))? {
            let keep = self.tear.min(bytes.len());
            self.inner.write(path, &bytes[..keep])?;
            return Err(Error::Io("crash".into()));
        }
        self.inner.write(path, bytes)
    }
    fn append(&mut self, path: &str, bytes: &[u8]) -> lab::Result<()> {
        if self.step(Op::Append(path.into()))? {
            let keep = self.tear.min(bytes.len());
            self.inner.append(path, &bytes[..keep])?;
            return Err(Error::Io("crash".into()));
        }
        self.inner.append(path, bytes)
    }
    fn rename(&mut self, from: &str, to: &str) -> lab::Result<()> {
        if self.step(Op::Rename(from.into(), to.into()))? {
            return Err(Error::Io("crash".into()));
        }
        self.inner.rename(from, to)
    }
    fn sync(&mut self, path: &str) -> lab::Result<()> {
        if self.step(Op::Sync(path.into()))? {
            return Err(Error::Io("crash".into()));
        }
        self.inner.sync(path)
    }
}

fn jobs(n: usize) -> Vec<lab::resume::Job> {
    (0..n).map(|i| lab::resume::Job { name: format!("step-{i}"), output: format!("out/{i}.bin") }).collect()
}

/// A deterministic step's output, different lengths per step.
fn output_of(name: &str) -> Vec<u8> {
    let n: usize = name.trim_start_matches("step-").parse().unwrap_or(0);
    (0..(n * 37 % 50 + 3)).map(|i| (i * 7 + n) as u8).collect()
}

/// The names whose journal record is whole in `fs`.
fn durable(fs: &lab::journal::MemFs) -> BTreeSet<String> {
    let bytes = fs.files.get("journal").cloned().unwrap_or_default();
    let mut out = BTreeSet::new();
    let mut at = 0;
    while at + 4 <= bytes.len() {
        let len = u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]) as usize;
        if at + 8 + len > bytes.len() {
            break;
        }
        if crc32_ref(&bytes[at..at + 4 + len]).to_le_bytes() != bytes[at + 4 + len..at + 8 + len] {
            break;
        }
        out.insert(String::from_utf8_lossy(&bytes[at + 4..at + 4 + len]).into_owned());
        at += 8 + len;
    }
    out
}

/// Runs `jobs` on `fs`, crashing at `crash_at` (if any); returns the run's result, the steps it
/// called `work` for, and its operation log.
fn run_once(
    fs: &mut lab::journal::MemFs,
    jobs: &[lab::resume::Job],
    crash_at: Option<usize>,
    tear: usize,
    fail: Option<&str>,
) -> (lab::Result<lab::resume::RunSummary>, Vec<String>, Vec<Op>) {
    let mut called = Vec::new();
    let mut crash = CrashFs::new(fs, crash_at, tear);
    let mut work = |name: &str| -> Result<Vec<u8>, String> {
        called.push(name.to_string());
        if Some(name) == fail { Err("out of memory".into()) } else { Ok(output_of(name)) }
    };
    let result = lab::resume::run(&mut crash, "journal", jobs, &mut work);
    let ops = crash.ops.clone();
    (result, called, ops)
}

/// The documented operations of a fresh run of `jobs`.
fn expected_ops(jobs: &[lab::resume::Job]) -> Vec<Op> {
    let mut ops = Vec::new();
    for j in jobs {
        let temp = format!("{}.tmp", j.output);
        ops.extend([
            Op::Write(temp.clone()),
            Op::Sync(temp.clone()),
            Op::Rename(temp, j.output.clone()),
            Op::Append("journal".into()),
            Op::Sync("journal".into()),
        ]);
    }
    ops
}

// --------------------------------------------------------------------------------- complexity

/// Hand-written sources: closures, labels, else-if chains, mixed `&&`/`||`, let chains, match
/// guards, nested functions, impls and traits, macros, `?`, let-else, async blocks.
const SOURCES: &[&str] = &[
    r#"
fn classify(x: i32, flags: &[bool]) -> &'static str {
    if x < 0 {
        "negative"
    } else if x == 0 {
        "zero"
    } else if x < 10 && flags.iter().all(|f| *f) || x == 42 {
        "small"
    } else {
        "large"
    }
}
"#,
    r#"
fn search(grid: &[Vec<i32>], target: i32) -> Option<(usize, usize)> {
    let mut found = None;
    'rows: for (i, row) in grid.iter().enumerate() {
        for (j, &v) in row.iter().enumerate() {
            if v == target {
                found = Some((i, j));
                break 'rows;
            }
            if v < 0 {
                continue 'rows;
            }
        }
    }
    found
}
"#,
    r#"
fn parse(input: &str) -> Result<u32, String> {
    let n: u32 = input.trim().parse().map_err(|e| format!("{e}"))?;
    let m = input.len().checked_sub(1).ok_or("empty")?;
    let Some(first) = input.chars().next() else { return Err("none".into()) };
    if let Some(d) = first.to_digit(10) && d > 0 && !(n == 0 || m == 0) {
        return Ok(d);
    }
    match n {
        0 => Ok(0),
        1 | 2 => Ok(1),
        k if k % 2 == 0 && k > 10 => Ok(2),
        _ => Err("odd".to_string()),
    }
}
"#,
    r#"
struct Stack<T> {
    items: Vec<T>,
}

impl<T: Clone> Stack<T> {
    pub fn push(&mut self, x: T) {
        if self.items.len() > 100 {
            self.items.remove(0);
        }
        self.items.push(x);
    }

    pub fn pop_while(&mut self, mut keep: impl FnMut(&T) -> bool) -> Vec<T> {
        let mut out = Vec::new();
        while let Some(top) = self.items.last() {
            if keep(top) {
                break;
            }
            out.push(self.items.pop().unwrap());
        }
        out
    }
}

trait Shape {
    fn area(&self) -> f64;
    fn describe(&self) -> String {
        let a = self.area();
        if a > 100.0 { "big".into() } else if a > 1.0 { "medium".into() } else { "small".into() }
    }
}

impl std::fmt::Display for Stack<u8> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for item in &self.items {
            write!(f, "{item}")?;
        }
        Ok(())
    }
}
"#,
    r#"
fn outer(xs: &[i32]) -> i32 {
    fn inner(a: bool, b: bool) -> bool {
        a && b || !a && !b
    }
    let total: i32 = xs
        .iter()
        .map(|x| {
            if *x > 0 {
                match x % 3 {
                    0 => 1,
                    _ => {
                        if inner(true, *x > 5) { 2 } else { 3 }
                    }
                }
            } else {
                0
            }
        })
        .sum();
    println!("{}", total > 0 && total < 100 || total == -1);
    assert!(xs.len() < 10 || xs.is_empty());
    total
}
"#,
    r#"
mod tests {
    fn helper(v: &[u8]) -> usize {
        let mut n = 0;
        loop {
            n += 1;
            if n > v.len() || v[n - 1] == 0 {
                break;
            }
        }
        n
    }

    mod deeper {
        pub fn leaf() -> u8 {
            let f = || {
                let g = |y: u8| if y > 2 { y } else { 0 };
                g(3)
            };
            f()
        }
    }
}

fn bits(a: u32, b: u32) -> u32 {
    let mut x = a & b | (a ^ b);
    x |= 1;
    x &= 0xff;
    if (a > 0) && (b > 0) || ((a == 0) && (b == 0)) { x } else { !x }
}

async fn fetch(urls: Vec<String>) -> usize {
    let mut n = 0;
    for u in urls {
        let task = async move { if u.is_empty() { 0 } else { u.len() } };
        n += task.await;
    }
    n
}

fn with_impl() -> i32 {
    struct Local;
    impl Local {
        fn value(&self) -> i32 {
            let mut i = 0;
            while i < 10 && i != 7 {
                i += 1;
            }
            i
        }
    }
    unsafe { if Local.value() > 3 { 1 } else { 0 } }
}

extern "C" {
    fn abort();
}

impl Clone for &Stack<u8> {
    fn clone(&self) -> Self {
        *self
    }
}

impl Default for (u8, u8) {
    fn default() -> Self {
        (0, 0)
    }
}
"#,
];

/// `(code, cyclomatic, cognitive)` of a random boolean condition.
fn random_condition(rng: &mut Rng) -> (String, u32, u32) {
    let atoms = ["a", "b", "c", "v > 1", "!a", "xs.is_empty()", "(a || b)", "!(b && c)", "(a && b && c)", "f(a || c)"];
    let inner = [(0, 0), (0, 0), (0, 0), (0, 0), (0, 0), (0, 0), (1, 1), (1, 1), (2, 1), (1, 1)];
    let k = 1 + rng.below(4);
    let mut code = String::new();
    let (mut cyc, mut cog) = (0u32, 0u32);
    let mut last: Option<bool> = None;
    for i in 0..k {
        if i > 0 {
            let and = rng.chance(0.5);
            code.push_str(if and { " && " } else { " || " });
            cyc += 1;
            if last != Some(and) {
                cog += 1;
            }
            last = Some(and);
        }
        let a = rng.below(atoms.len());
        code.push_str(atoms[a]);
        cyc += inner[a].0;
        cog += inner[a].1;
    }
    (code, cyc, cog)
}

/// A random block at `nesting`: its code (statements, one or more lines), cyclomatic and
/// cognitive increments, and nested helper functions it declares (name, cyclomatic, cognitive).
fn random_block(
    rng: &mut Rng,
    depth: usize,
    nesting: u32,
    helpers: &mut Vec<(String, u32, u32)>,
    label: &mut usize,
) -> (String, u32, u32) {
    let mut code = String::new();
    let (mut cyc, mut cog) = (0u32, 0u32);
    for _ in 0..1 + rng.below(3) {
        let kind = if depth >= 3 { rng.below(4) } else { rng.below(13) };
        match kind {
            0 => code.push_str("let _ = v + 1;\n"),
            1 => {
                let (c, y, g) = random_condition(rng);
                code.push_str(&format!("let _ = {c};\n"));
                cyc += y;
                cog += g;
            }
            2 => {
                code.push_str("let _ = h(v)?;\n");
                cyc += 1;
            }
            3 => code.push_str("println!(\"{}\", a && b || c);\n"),
            4 => {
                let (c, y, g) = random_condition(rng);
                let (body, by, bg) = random_block(rng, depth + 1, nesting + 1, helpers, label);
                code.push_str(&format!("if {c} {{\n{body}}}"));
                cyc += 1 + y + by;
                cog += 1 + nesting + g + bg;
                for _ in 0..rng.below(3) {
                    let (c, y, g) = random_condition(rng);
                    let (body, by, bg) = random_block(rng, depth + 1, nesting + 1, helpers, label);
                    code.push_str(&format!(" else if {c} {{\n{body}}}"));
                    cyc += 1 + y + by;
                    cog += 1 + g + bg;
                }
                if rng.chance(0.5) {
                    let (body, by, bg) = random_block(rng, depth + 1, nesting + 1, helpers, label);
                    code.push_str(&format!(" else {{\n{body}}}"));
                    cyc += by;
                    cog += 1 + bg;
                }
                code.push('\n');
            }
            5 => {
                let (body, by, bg) = random_block(rng, depth + 1, nesting + 1, helpers, label);
                code.push_str(&format!("for x in xs.iter() {{\n{body}}}\n"));
                cyc += 1 + by;
                cog += 1 + nesting + bg;
            }
            6 => {
                let (c, y, g) = random_condition(rng);
                let (body, by, bg) = random_block(rng, depth + 1, nesting + 1, helpers, label);
                code.push_str(&format!("while {c} {{\n{body}break;\n}}\n"));
                cyc += 1 + y + by;
                cog += 1 + nesting + g + bg;
            }
            7 => {
                *label += 1;
                let l = *label;
                let (body, by, bg) = random_block(rng, depth + 1, nesting + 1, helpers, label);
                let exit = if rng.chance(0.5) {
                    format!("break 'l{l};")
                } else {
                    format!("if a {{ continue 'l{l}; }}\nbreak;")
                };
                let extra = if exit.starts_with("if") { (1, 1 + nesting + 1) } else { (0, 0) };
                code.push_str(&format!("'l{l}: loop {{\n{body}{exit}\n}}\n"));
                cyc += 1 + by + extra.0;
                cog += 1 + nesting + bg + 1 + extra.1;
            }
            8 => {
                let arms = 2 + rng.below(3);
                code.push_str("match v {\n");
                cyc += arms as u32 - 1;
                cog += 1 + nesting;
                for arm in 0..arms {
                    let (body, by, bg) = random_block(rng, depth + 1, nesting + 1, helpers, label);
                    cyc += by;
                    cog += bg;
                    if arm + 1 == arms {
                        code.push_str(&format!("_ => {{\n{body}}}\n"));
                    } else if rng.chance(0.4) {
                        let (c, y, g) = random_condition(rng);
                        cyc += y;
                        cog += g;
                        code.push_str(&format!("n if {c} => {{\n{body}}}\n"));
                    } else {
                        code.push_str(&format!("{arm} | {} => {{\n{body}}}\n", arm + 100));
                    }
                }
                code.push_str("}\n");
            }
            9 => {
                let (body, by, bg) = random_block(rng, depth + 1, nesting + 1, helpers, label);
                code.push_str(&format!("let g = |y: i32| {{\n{body}y\n}};\n"));
                cyc += by;
                cog += bg;
            }
            10 if depth == 0 => {
                let name = format!("helper{}", helpers.len());
                let (body, by, bg) = random_block(rng, 1, 0, &mut Vec::new(), label);
                // Helpers are generated at depth 0 only, so a helper (depth 1) holds none.
                code.push_str(&format!(
                    "fn {name}(a: bool, b: bool, c: bool, v: i32, xs: &[i32]) -> Option<i32> {{\n{body}Some(0)\n}}\n"
                ));
                helpers.push((name, 1 + by, bg));
            }
            10 | 11 => {
                let (body, by, bg) = random_block(rng, depth + 1, nesting, helpers, label);
                code.push_str(&format!("unsafe {{\n{body}}}\n"));
                cyc += by;
                cog += bg;
            }
            _ => {
                let (body, by, bg) = random_block(rng, depth + 1, nesting + 1, helpers, label);
                code.push_str(&format!("loop {{\n{body}break;\n}}\n"));
                cyc += 1 + by;
                cog += 1 + nesting + bg;
            }
        }
    }
    (code, cyc, cog)
}

/// A random file of functions, with each function's (name, line, cyclomatic, cognitive) in order.
fn random_file(rng: &mut Rng) -> (String, Vec<(String, usize, u32, u32)>) {
    let mut source = String::new();
    let mut expected = Vec::new();
    let mut label = 0;
    for f in 0..1 + rng.below(4) {
        let mut helpers = Vec::new();
        let (body, cyc, cog) = random_block(rng, 0, 0, &mut helpers, &mut label);
        let name = format!("f{f}");
        let code = format!(
            "fn {name}(a: bool, b: bool, c: bool, v: i32, xs: &[i32]) -> Option<i32> {{\n{body}Some(0)\n}}\n\n"
        );
        let first_line = source.lines().count() + 1;
        expected.push((name.clone(), first_line, 1 + cyc, cog));
        for (h, hc, hg) in helpers {
            let at = code.find(&format!("fn {h}(")).expect("helper in the code");
            let line = first_line + code[..at].matches('\n').count();
            expected.push((format!("{name}::{h}"), line, hc, hg));
        }
        source.push_str(&code);
    }
    (source, expected)
}

fn summary(found: &[lab::complexity::FunctionComplexity]) -> Vec<(String, usize, u32, u32)> {
    found.iter().map(|f| (f.name.clone(), f.line, f.cyclomatic, f.cognitive)).collect()
}

fn kernels_summary(found: &[kernels::quality::complexity::FunctionComplexity]) -> Vec<(String, usize, u32, u32)> {
    found.iter().map(|f| (f.name.clone(), f.line, f.cyclomatic, f.cognitive)).collect()
}

// ------------------------------------------------------------------------------ the tests

graded! {
    /// Every fixture: the edges equal numpy.quantile's (bit for bit, duplicates dropped), the
    /// counts np.digitize + bincount's, the PSI numpy's to 1e-9.
    fn psi_edges_and_counts_match_numpy() {
        let f = fixtures();
        for case in f["psi"].as_array().expect("psi cases") {
            let name = case["name"].as_str().expect("name");
            let (reference, current) = (floats(&case["reference"]), floats(&case["current"]));
            let bins = case["bins"].as_u64().expect("bins") as usize;
            let epsilon = case["epsilon"].as_f64().expect("epsilon");
            let want_edges = floats(&case["edges"]);
            let edges = lab::drift::quantile_edges(&reference, bins).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(edges.len(), want_edges.len(), "{name}: edges {edges:?}, numpy {want_edges:?}");
            for (g, w) in edges.iter().zip(&want_edges) {
                assert!(g == w, "{name}: edge {g:e} differs from numpy's {w:e} (edges {edges:?})");
            }
            let r = lab::drift::bin_counts(&reference, &want_edges).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(r, counts(&case["reference_counts"]), "{name}: reference counts");
            let c = lab::drift::bin_counts(&current, &want_edges).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(c, counts(&case["current_counts"]), "{name}: current counts");
            let got = lab::drift::psi(&reference, &current, bins, epsilon).unwrap_or_else(|e| panic!("{name}: {e}"));
            let want = case["psi"].as_f64().expect("psi");
            assert!(close(got, want, 1e-9), "{name}: psi {got}, numpy {want}");
        }
    }

    /// Random columns of six shapes, 1 to 3,000 values, 1 to 25 bins: edges and counts equal
    /// kernels::monitor::drift's exactly, the PSI to 1e-9.
    fn psi_matches_kernels_on_random_columns() {
        use kernels::monitor::drift::{Binning, PsiConfig};
        let mut rng = Rng(0xC3_05);
        for round in 0..120 {
            let shape = round % 6;
            let n = 1 + rng.below(if round % 4 == 0 { 20 } else { 3000 });
            let m = 1 + rng.below(2000);
            let reference = column(&mut rng, n, shape, 0.0);
            let shift = [0.0, 0.1, 0.5, 2.0][rng.below(4)];
            let current = column(&mut rng, m, shape, shift);
            let bins = 1 + rng.below(25);
            let epsilon = [1e-4, 1e-6, 1e-3][rng.below(3)];
            let what = format!("round {round}: shape {shape}, {n} and {m} values, {bins} bins");
            let want_edges = kernels::monitor::drift::bin_edges(&reference, &Binning::Quantile { bins }).expect("kernels bins");
            let edges = lab::drift::quantile_edges(&reference, bins).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(edges, want_edges, "{what}: edges");
            let got = lab::drift::bin_counts(&current, &edges).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(got, kernels::monitor::drift::bin_counts(&current, &edges).expect("kernels counts"), "{what}: counts");
            let got = lab::drift::psi(&reference, &current, bins, epsilon).unwrap_or_else(|e| panic!("{what}: {e}"));
            let config = PsiConfig { binning: Binning::Quantile { bins }, epsilon };
            let want = kernels::monitor::drift::psi(&reference, &current, &config).expect("kernels psi");
            assert!(close(got, want, 1e-9), "{what}: psi {got}, kernels {want}");
            assert!(got >= 0.0, "{what}: a PSI is a sum of non-negative terms, got {got}");
        }
    }

    /// Values on edges, constant columns, extreme magnitudes, identical samples; every bad input a
    /// typed error.
    fn psi_handles_ties_outliers_and_bad_input() {
        use lab::drift::{bin_counts, psi, quantile_edges};
        // Identical samples: 0 exactly.
        let x: Vec<f64> = (0..1000).map(|i| ((i * 7919) % 1000) as f64 / 10.0).collect();
        assert_eq!(psi(&x, &x, 10, 1e-4).unwrap(), 0.0, "identical samples");
        // A constant reference: one edge, at the constant; values equal to it go above it.
        assert_eq!(quantile_edges(&[2.5; 40], 10).unwrap(), [2.5]);
        assert_eq!(bin_counts(&[2.5, 2.4999, 2.5, 1e300, -1e300], &[2.5]).unwrap(), [2, 3]);
        // Extreme magnitudes do not overflow the interpolation.
        let wide = [-1e300, 1e300, -1e300, 1e300];
        let edges = quantile_edges(&wide, 2).unwrap();
        assert!(edges.iter().all(|e| e.is_finite()), "edges of ±1e300: {edges:?}");
        // Every value of a new range lands in the outer bins: a large, finite PSI.
        let far = psi(&[0.0, 1.0, 2.0, 3.0], &[100.0, 200.0], 4, 1e-4).unwrap();
        assert!(far.is_finite() && far > 1.0, "psi of disjoint samples {far}");
        // Bad input.
        let cases: Vec<(&str, lab::Result<f64>)> = vec![
            ("empty reference", psi(&[], &[1.0], 10, 1e-4)),
            ("empty current", psi(&[1.0], &[], 10, 1e-4)),
            ("NaN in the reference", psi(&[1.0, f64::NAN], &[1.0], 10, 1e-4)),
            ("+inf in the current", psi(&[1.0], &[f64::INFINITY], 10, 1e-4)),
            ("-inf in the reference", psi(&[f64::NEG_INFINITY, 0.0], &[1.0], 10, 1e-4)),
        ];
        for (what, got) in cases {
            assert!(matches!(got, Err(Error::InvalidInput(_))), "{what}: expected InvalidInput, got {got:?}");
        }
        for (what, got) in [
            ("0 bins", psi(&[1.0], &[1.0], 0, 1e-4)),
            ("epsilon 0", psi(&[1.0], &[1.0], 4, 0.0)),
            ("epsilon NaN", psi(&[1.0], &[1.0], 4, f64::NAN)),
            ("epsilon -1", psi(&[1.0], &[1.0], 4, -1.0)),
        ] {
            assert!(matches!(got, Err(Error::InvalidConfig(_))), "{what}: expected InvalidConfig, got {got:?}");
        }
        assert!(matches!(quantile_edges(&[1.0], 0), Err(Error::InvalidConfig(_))));
        assert!(matches!(quantile_edges(&[], 3), Err(Error::InvalidInput(_))));
        for edges in [&[1.0, 1.0][..], &[2.0, 1.0], &[f64::NAN], &[0.0, f64::INFINITY]] {
            let got = bin_counts(&[1.0], edges);
            assert!(matches!(got, Err(Error::InvalidInput(_))), "edges {edges:?}: got {got:?}");
        }
        assert!(matches!(bin_counts(&[f64::NAN], &[1.0]), Err(Error::InvalidInput(_))));
        assert_eq!(bin_counts(&[5.0, -5.0], &[]).unwrap(), [2], "no edges: one bin");
    }

    /// Every fixture: the statistic equals scipy's ks_2samp, the p-value Kolmogorov's limit
    /// (scipy.special.kolmogorov(√en · D)) to 1e-9.
    fn ks_matches_scipy_fixtures() {
        let f = fixtures();
        for case in f["ks"].as_array().expect("ks cases") {
            let name = case["name"].as_str().expect("name");
            let (a, b) = (floats(&case["a"]), floats(&case["b"]));
            let got = lab::drift::ks_2samp_asymp(&a, &b).unwrap_or_else(|e| panic!("{name}: {e}"));
            let want_d = case["statistic"].as_f64().expect("statistic");
            assert!((got.statistic - want_d).abs() <= 1e-12, "{name}: D {}, scipy {want_d}", got.statistic);
            let want_p = case["p_value"].as_f64().expect("p");
            assert!(close(got.p_value, want_p, 1e-9), "{name}: p {:e}, scipy.special.kolmogorov {want_p:e}", got.p_value);
            let d = lab::drift::ks_statistic(&b, &a).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!((d - want_d).abs() <= 1e-12, "{name}: D is symmetric, got {d} with the samples swapped");
        }
    }

    /// Random samples (ties within and across samples, 1 to 4,000 values): D equals
    /// kernels::monitor::drift::ks_2samp's to 1e-12; the p-value follows from D.
    fn ks_statistic_matches_kernels_on_random_samples() {
        let mut rng = Rng(0x4B53);
        for round in 0..150 {
            let shape = round % 6;
            let n = 1 + rng.below(if round % 3 == 0 { 15 } else { 4000 });
            let m = 1 + rng.below(if round % 5 == 0 { 10 } else { 3000 });
            let a = column(&mut rng, n, shape, 0.0);
            let shift = [0.0, 0.05, 0.5][rng.below(3)];
            let b = column(&mut rng, m, shape, shift);
            let what = format!("round {round}: shape {shape}, {n} and {m} values");
            let got = lab::drift::ks_2samp_asymp(&a, &b).unwrap_or_else(|e| panic!("{what}: {e}"));
            let want = kernels::monitor::drift::ks_2samp(&a, &b).expect("kernels ks");
            assert!((got.statistic - want.statistic).abs() <= 1e-12, "{what}: D {}, kernels {}", got.statistic, want.statistic);
            let (big, small) = (n.max(m) as f64, n.min(m) as f64);
            let p = lab::drift::kolmogorov_sf((big * small / (big + small)).sqrt() * got.statistic);
            assert!(close(got.p_value, p, 1e-12), "{what}: p {} is not kolmogorov_sf(√en · D) = {p}", got.p_value);
            assert!((0.0..=1.0).contains(&got.p_value), "{what}: p {}", got.p_value);
        }
        for (what, got) in [
            ("empty a", lab::drift::ks_2samp_asymp(&[], &[1.0])),
            ("empty b", lab::drift::ks_2samp_asymp(&[1.0], &[])),
            ("NaN", lab::drift::ks_2samp_asymp(&[f64::NAN], &[1.0])),
            ("inf", lab::drift::ks_2samp_asymp(&[1.0], &[2.0, f64::INFINITY])),
        ] {
            assert!(matches!(got, Err(Error::InvalidInput(_))), "{what}: expected InvalidInput, got {got:?}");
        }
    }

    /// Kolmogorov's survival function against scipy.special.kolmogorov on 70 points of (0, 20]
    /// (both series and their cut-over at 0.82) to 1e-9, decreasing, 1 at 0, NaN for NaN.
    fn kolmogorov_sf_matches_scipy_across_its_range() {
        let f = fixtures();
        for point in f["kolmogorov"].as_array().expect("grid") {
            let (x, want) = (point["lambda"].as_f64().expect("lambda"), point["sf"].as_f64().expect("sf"));
            let got = lab::drift::kolmogorov_sf(x);
            if want < 1e-290 {
                assert!(got.abs() < 1e-290, "Q({x}) = {got:e}, scipy {want:e}");
            } else {
                assert!(close(got, want, 1e-9), "Q({x}) = {got:e}, scipy {want:e}");
            }
        }
        let mut last = 1.0;
        for i in 1..2000 {
            let q = lab::drift::kolmogorov_sf(i as f64 * 0.002);
            assert!(q <= last + 1e-15 && (0.0..=1.0).contains(&q), "Q is not decreasing in [0, 1] at {}", i as f64 * 0.002);
            last = q;
        }
        assert_eq!(lab::drift::kolmogorov_sf(-1.0), 1.0);
        assert!(lab::drift::kolmogorov_sf(f64::NAN).is_nan());
    }

    /// 400 random tables (missing values, NaN, ±0.0, duplicates, non-ASCII text) and random
    /// expectations: the report equals an independent checker's, field by field.
    fn expectations_match_a_reference_on_random_tables() {
        let mut rng = Rng(0xE7_9E);
        for round in 0..400 {
            let rows = rng.below(if round % 10 == 0 { 3 } else { 60 });
            let table = random_table(&mut rng, rows);
            let expectations = random_expectations(&mut rng, &table);
            let sample = rng.below(6);
            let report = lab::expect::check(&table, &expectations, sample)
                .unwrap_or_else(|e| panic!("round {round}: {e} on valid expectations {expectations:?}"));
            assert_eq!(report.evaluated, expectations.len(), "round {round}: evaluated");
            let got: Vec<_> = report.failures.iter().map(|f| (f.expectation, f.column.clone(), f.failing_rows, f.sample_rows.clone())).collect();
            let want = reference_check(&table, &expectations, sample);
            assert_eq!(got, want, "round {round}: {expectations:?} on {table:?} (sample {sample})");
        }
    }

    /// Every invalid table or expectation is its typed error, even after expectations that fail:
    /// nothing is evaluated before everything is validated.
    fn expectations_validate_before_evaluating() {
        use lab::expect::{Column, Expectation, Table, check};
        let table = Table {
            columns: vec![
                ("x".into(), Column::Float(vec![None, Some(1.0)])),
                ("s".into(), Column::Text(vec![Some("a".into()), None])),
            ],
        };
        let failing = Expectation::NotNull { column: "x".into() };
        type Outcome = lab::Result<lab::expect::Report>;
        let unknown = |r: &Outcome| matches!(r, Err(Error::Unknown { kind: "column", name }) if name == "nope");
        let input = |r: &Outcome| matches!(r, Err(Error::InvalidInput(_)));
        let config = |r: &Outcome| matches!(r, Err(Error::InvalidConfig(_)));
        let cases: Vec<(&str, Expectation, &dyn Fn(&Outcome) -> bool)> = vec![
            ("unknown column", Expectation::Unique { column: "nope".into() }, &unknown),
            ("Between on text", Expectation::Between { column: "s".into(), min: 0.0, max: 1.0 }, &input),
            ("AllowedValues on floats", Expectation::AllowedValues { column: "x".into(), allowed: vec![] }, &input),
            ("min > max", Expectation::Between { column: "x".into(), min: 2.0, max: 1.0 }, &config),
            ("NaN bound", Expectation::Between { column: "x".into(), min: f64::NAN, max: 1.0 }, &config),
            ("row count min > max", Expectation::RowCount { min: 3, max: 2 }, &config),
        ];
        for (what, bad, ok) in cases {
            let got = check(&table, &[failing.clone(), bad], 3);
            assert!(ok(&got), "{what}: got {got:?}");
        }
        let dup = Table { columns: vec![("x".into(), Column::Float(vec![])), ("x".into(), Column::Float(vec![]))] };
        assert!(matches!(check(&dup, &[], 3), Err(Error::InvalidInput(_))), "two columns named x");
        let ragged = Table { columns: vec![("x".into(), Column::Float(vec![None])), ("y".into(), Column::Float(vec![]))] };
        assert!(matches!(check(&ragged, &[], 3), Err(Error::InvalidInput(_))), "columns of different lengths");
        // No columns at all: 0 rows; only RowCount can fail.
        let empty = Table::default();
        let report = check(&empty, &[Expectation::RowCount { min: 1, max: 5 }], 3).unwrap();
        assert_eq!(report.failures.len(), 1);
        assert_eq!((report.failures[0].column.clone(), report.failures[0].failing_rows), (None, 0));
        // Sample 0: counts without rows.
        let report = check(&table, &[failing], 0).unwrap();
        assert_eq!((report.failures[0].failing_rows, report.failures[0].sample_rows.len()), (1, 0));
        assert!(!report.passed());
    }

    /// 300 random DAGs (up to 40 steps, repeated dependencies, declared in random order): the order
    /// equals the brute-force smallest order, and every step runs after its dependencies.
    fn topo_order_matches_brute_force_on_random_dags() {
        let mut rng = Rng(0x70_90);
        for round in 0..300 {
            let n = rng.below(41);
            // A hidden order `rank`; edges only from a higher rank to a lower one: a DAG.
            let mut rank: Vec<usize> = (0..n).collect();
            for i in (1..n).rev() {
                rank.swap(i, rng.below(i + 1));
            }
            let p = [0.05, 0.15, 0.4][rng.below(3)];
            let deps: Vec<Vec<usize>> = (0..n)
                .map(|i| {
                    let mut d: Vec<usize> = (0..n).filter(|&j| rank[j] < rank[i] && rng.chance(p)).collect();
                    if !d.is_empty() && rng.chance(0.2) {
                        let again = d[rng.below(d.len())];
                        d.push(again);
                    }
                    for k in (1..d.len()).rev() {
                        d.swap(k, rng.below(k + 1));
                    }
                    d
                })
                .collect();
            let steps = steps_of(&deps);
            let got = lab::dag::topo_order(&steps).unwrap_or_else(|e| panic!("round {round}: {e} on a DAG {deps:?}"));
            let want = brute_force_order(&deps).expect("a DAG");
            assert_eq!(got, want, "round {round}: deps {deps:?}");
        }
    }

    /// Graphs with cycles: the error is the documented walk's cycle, which is a real cycle; self
    /// loops, unknown and duplicate names.
    fn topo_order_reports_one_true_cycle() {
        let mut rng = Rng(0xC1C1E);
        let mut seen_long = false;
        for round in 0..300 {
            let n = 1 + rng.below(25);
            let p = [0.05, 0.1, 0.25][rng.below(3)];
            let deps: Vec<Vec<usize>> = (0..n).map(|_| (0..n).filter(|_| rng.chance(p)).collect()).collect();
            let steps = steps_of(&deps);
            let got = lab::dag::topo_order(&steps);
            match brute_force_order(&deps) {
                Ok(want) => assert_eq!(got, Ok(want), "round {round}: acyclic deps {deps:?}"),
                Err(done) => {
                    // The documented walk.
                    let mut at = (0..n).find(|&i| !done[i]).expect("a remaining step");
                    let mut walk: Vec<usize> = Vec::new();
                    while !walk.contains(&at) {
                        walk.push(at);
                        at = *deps[at].iter().find(|&&j| !done[j]).expect("a remaining dependency");
                    }
                    let first = walk.iter().position(|&s| s == at).expect("repeat");
                    let cycle: Vec<String> = walk[first..].iter().map(|i| format!("s{i}")).collect();
                    seen_long |= cycle.len() > 2;
                    let Err(Error::Cycle(names)) = &got else { panic!("round {round}: expected a cycle, got {got:?} for {deps:?}") };
                    assert_eq!(names, &cycle, "round {round}: deps {deps:?}");
                    let idx: Vec<usize> = names.iter().map(|s| s[1..].parse().expect("sN")).collect();
                    for k in 0..idx.len() {
                        assert!(deps[idx[k]].contains(&idx[(k + 1) % idx.len()]), "round {round}: {names:?} is not a cycle");
                    }
                }
            }
        }
        assert!(seen_long, "the random graphs should include cycles longer than 2");
        use lab::dag::{Step, topo_order};
        assert_eq!(topo_order(&[Step::new("a", &[]), Step::new("b", &["b"])]), Err(Error::Cycle(vec!["b".into()])));
        assert_eq!(topo_order(&[]), Ok(vec![]));
        let got = topo_order(&[Step::new("a", &["x"]), Step::new("b", &["y"])]);
        assert_eq!(got, Err(Error::Unknown { kind: "step", name: "x".into() }), "the first unknown name");
        let got = topo_order(&[Step::new("a", &[]), Step::new("a", &[])]);
        assert!(matches!(got, Err(Error::InvalidInput(_))), "duplicate names: {got:?}");
    }

    /// 300 random steps (empty and non-ASCII strings, NUL bytes, up to 3 inputs): the encoding
    /// equals an independent one byte for byte, and the key its BLAKE3 (a BLAKE3 written here,
    /// checked first on vectors of the `blake3` crate).
    fn cache_key_matches_an_independent_encoding_and_blake3() {
        for (len, want) in BLAKE3_VECTORS {
            let input: Vec<u8> = (0..*len).map(|i| (i % 251) as u8).collect();
            assert_eq!(hex(&blake3_ref::hash(&input)), *want, "the test's own BLAKE3 on {len} bytes");
        }
        let mut rng = Rng(0xB1A4E3);
        for round in 0..300 {
            let mut spec = random_spec(&mut rng);
            for k in (1..spec.config.len()).rev() {
                spec.config.swap(k, rng.below(k + 1));
            }
            let inputs: Vec<(String, [u8; 32])> = spec.inputs.iter().map(|i| (i.path.clone(), i.digest)).collect();
            let want = reference_encoding(&spec.argv, &spec.config, &inputs);
            let got = lab::cache::encode(&spec).unwrap_or_else(|e| panic!("round {round}: {e} on {spec:?}"));
            assert_eq!(hex(&got), hex(&want), "round {round}: encoding of {spec:?}");
            let key = lab::cache::cache_key(&spec).unwrap_or_else(|e| panic!("round {round}: {e}"));
            assert_eq!(key.to_hex(), hex(&blake3_ref::hash(&want)), "round {round}: key of {spec:?}");
        }
    }

    /// The key ignores the order of configuration pairs and inputs, and changes with every argv
    /// boundary, every key/value boundary, every path and every byte of every input; the cache
    /// skips exactly the unchanged steps; duplicates and an empty argv are errors.
    fn cache_key_changes_exactly_when_an_input_changes() {
        use lab::cache::{Input, StepCache, StepSpec, cache_key};
        let s = |xs: &[&str]| xs.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let pair = |k: &str, v: &str| (k.to_string(), v.to_string());
        let content: Vec<u8> = (0..700u32).map(|i| (i * 31 % 256) as u8).collect();
        let base = StepSpec {
            argv: s(&["python", "train.py", "--lr", "0.1"]),
            config: vec![pair("seed", "7"), pair("epochs", "3"), pair("model", "gbm")],
            inputs: vec![Input::new("features.parquet", &content), Input::new("labels.csv", b"id,y\n1,0\n")],
        };
        let key = cache_key(&base).unwrap();
        let mut shuffled = base.clone();
        shuffled.config.reverse();
        shuffled.inputs.reverse();
        assert_eq!(cache_key(&shuffled).unwrap(), key, "order of config pairs and inputs");
        let mut keys = HashSet::new();
        keys.insert(key);
        let mut variants: Vec<(String, StepSpec)> = Vec::new();
        for argv in [s(&["python", "train.py", "--lr0.1"]), s(&["python", "train.py", "--lr", "0.1", ""]), s(&["pythontrain.py", "--lr", "0.1"]), s(&["python", "train.py", "--l", "r0.1"])] {
            variants.push((format!("argv {argv:?}"), StepSpec { argv, ..base.clone() }));
        }
        for config in [
            vec![pair("seed", "7"), pair("epochs", "3"), pair("model", "gbmx")],
            vec![pair("seed", "7"), pair("epochs", "3"), pair("mode", "lgbm")],
            vec![pair("seed", "3"), pair("epochs", "7"), pair("model", "gbm")],
            vec![pair("seed", "7"), pair("epochs", "3")],
            vec![pair("seed", "7"), pair("epochs", "3"), pair("model", "gbm"), pair("", "")],
        ] {
            variants.push((format!("config {config:?}"), StepSpec { config, ..base.clone() }));
        }
        let mut renamed = base.clone();
        renamed.inputs[1].path = "labels.csv ".into();
        variants.push(("renamed input".into(), renamed));
        let mut dropped = base.clone();
        dropped.inputs.pop();
        variants.push(("dropped input".into(), dropped));
        for (what, spec) in &variants {
            let k = cache_key(spec).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert!(keys.insert(k), "{what}: same key as another variant");
        }
        for i in 0..content.len() {
            let mut changed = content.clone();
            changed[i] ^= 1 << (i % 8);
            let mut spec = base.clone();
            spec.inputs[0] = Input::new("features.parquet", &changed);
            assert!(keys.insert(cache_key(&spec).unwrap()), "flipping bit {} of byte {i} of an input did not change the key", i % 8);
        }
        let mut cache = StepCache::default();
        assert!(cache.needs_run("train", &key), "an empty cache runs everything");
        cache.record("train", key);
        assert!(!cache.needs_run("train", &cache_key(&shuffled).unwrap()), "unchanged: skipped");
        assert!(cache.needs_run("eval", &key), "another step with the same key still runs");
        let newer = cache_key(&variants[0].1).unwrap();
        assert!(cache.needs_run("train", &newer), "changed: runs");
        cache.record("train", newer);
        assert!(!cache.needs_run("train", &newer) && cache.needs_run("train", &key), "record replaces the old key");
        let mut dup = base.clone();
        dup.config.push(pair("seed", "8"));
        assert!(matches!(cache_key(&dup), Err(Error::InvalidInput(_))), "duplicate config key");
        let mut dup = base.clone();
        dup.inputs.push(Input::new("labels.csv", b"other"));
        assert!(matches!(cache_key(&dup), Err(Error::InvalidInput(_))), "duplicate input path");
        assert!(matches!(cache_key(&StepSpec { argv: vec![], ..base.clone() }), Err(Error::InvalidInput(_))), "empty argv");
    }

    /// Records equal an independent encoding (CRC-32 as zlib's); a journal decodes to its
    /// payloads; cut at every byte, it decodes to the whole records before the cut; a last record
    /// with a bad checksum is a torn one.
    fn journal_round_trips_and_survives_every_tear() {
        assert_eq!(lab::journal::crc32(b"123456789"), 0xCBF4_3926, "the given CRC");
        let mut rng = Rng(0x10_42);
        for round in 0..60 {
            let payloads = random_payloads(&mut rng);
            let mut bytes = Vec::new();
            let mut ends = vec![0];
            for p in &payloads {
                let rec = lab::journal::encode_record(p).unwrap_or_else(|e| panic!("round {round}: {e}"));
                assert_eq!(rec, record_ref(p), "round {round}: record of a {}-byte payload", p.len());
                bytes.extend(rec);
                ends.push(bytes.len());
            }
            let whole = lab::journal::decode(&bytes).unwrap_or_else(|e| panic!("round {round}: {e}"));
            assert_eq!(whole.records, payloads, "round {round}: payloads");
            assert_eq!(whole.valid_len, bytes.len(), "round {round}: nothing torn");
            for cut in 0..=bytes.len() {
                let got = lab::journal::decode(&bytes[..cut]).unwrap_or_else(|e| panic!("round {round}, cut at {cut}: {e}"));
                let k = ends.iter().rposition(|&e| e <= cut).expect("0 is an end");
                assert_eq!(got.valid_len, ends[k], "round {round}: journal cut at byte {cut} of {}", bytes.len());
                assert_eq!(got.records, payloads[..k], "round {round}: records of the journal cut at byte {cut}");
            }
            if let Some(last) = payloads.len().checked_sub(1) {
                // The payload and checksum bytes (a damaged length can make any record end early).
                for at in ends[last] + 4..ends[last + 1] {
                    let mut torn = bytes.clone();
                    torn[at] ^= 0x20;
                    let got = lab::journal::decode(&torn).unwrap_or_else(|e| panic!("round {round}: damaged last record (byte {at}): {e}"));
                    assert_eq!(got.records, payloads[..last], "round {round}: a damaged last record is torn, not data");
                    assert_eq!(got.valid_len, ends[last]);
                }
            }
        }
        let empty = lab::journal::decode(&[]).unwrap();
        assert_eq!((empty.records.len(), empty.valid_len), (0, 0));
    }

    /// A damaged payload or checksum in any record but the last is CorruptJournal at that record's
    /// offset, never a silent skip.
    fn journal_refuses_corruption_before_the_end() {
        let payloads: Vec<Vec<u8>> = vec![b"features".to_vec(), vec![], b"train \xF0\x9F\xA6\x80".to_vec(), b"eval".to_vec()];
        let mut bytes = Vec::new();
        let mut starts = Vec::new();
        for p in &payloads {
            starts.push(bytes.len());
            bytes.extend(record_ref(p));
        }
        for r in 0..payloads.len() - 1 {
            let end = starts[r + 1];
            for at in starts[r] + 4..end {
                let mut bad = bytes.clone();
                bad[at] ^= 0x01;
                let got = lab::journal::decode(&bad);
                match &got {
                    Err(Error::CorruptJournal { offset, .. }) => assert_eq!(*offset, starts[r], "record {r}, byte {at}: offset"),
                    other => panic!("record {r} damaged at byte {at} (not the last record): expected CorruptJournal, got {other:?}"),
                }
            }
        }
        let record = lab::journal::encode_record(b"").unwrap();
        assert_eq!(record, record_ref(b""), "an empty payload");
    }

    /// A run of 5 steps crashes at each of its 25 file operations in turn (writes and appends torn
    /// at 0, 1, half and all-but-one bytes); the restart ends with exactly the files of a run
    /// without a crash, and runs no step whose record was in the journal.
    fn resume_after_a_crash_at_every_operation() {
        let jobs = jobs(5);
        let mut clean = lab::journal::MemFs::default();
        let (result, called, ops) = run_once(&mut clean, &jobs, None, 0, None);
        let summary = result.unwrap_or_else(|e| panic!("a run without a crash: {e}"));
        assert_eq!(summary.ran.len(), 5);
        assert_eq!(called.len(), 5);
        assert_eq!(ops, expected_ops(&jobs), "the operations of a run without a crash");
        for crash_at in 0..ops.len() {
            for tear in [0usize, 1, 6, 1000] {
                let mut fs = lab::journal::MemFs::default();
                let (result, _, _) = run_once(&mut fs, &jobs, Some(crash_at), tear, None);
                assert!(result.is_err(), "crash at operation {crash_at}: the run must return the error");
                let finished = durable(&fs);
                let (result, called, _) = run_once(&mut fs, &jobs, None, 0, None);
                let summary = result.unwrap_or_else(|e| panic!("restart after a crash at operation {crash_at} ({:?}, tear {tear}): {e}", ops[crash_at]));
                for name in &called {
                    assert!(!finished.contains(name), "crash at {crash_at} ({:?}): {name} had its record in the journal but ran again", ops[crash_at]);
                }
                let expected_called: Vec<String> = jobs.iter().map(|j| j.name.clone()).filter(|n| !finished.contains(n)).collect();
                assert_eq!(called, expected_called, "crash at {crash_at}: the restart must run exactly the unfinished steps");
                assert_eq!(summary.skipped.len(), finished.len());
                assert_eq!(fs.files, clean.files, "crash at operation {crash_at} ({:?}, tear {tear}): files after the restart", ops[crash_at]);
            }
        }
    }

    /// Two crashes in a row (the second during the restart, including its journal repair), a step
    /// that fails, an existing torn journal, a corrupt one, duplicate job names.
    fn resume_after_two_crashes_failures_and_a_corrupt_journal() {
        let jobs = jobs(4);
        let mut clean = lab::journal::MemFs::default();
        run_once(&mut clean, &jobs, None, 0, None).0.expect("a clean run");
        for first in 0..20 {
            for second in 0..8 {
                let mut fs = lab::journal::MemFs::default();
                let _ = run_once(&mut fs, &jobs, Some(first), 5, None);
                let before = durable(&fs);
                let _ = run_once(&mut fs, &jobs, Some(second), 3, None);
                let after = durable(&fs);
                assert!(before.is_subset(&after), "crashes at {first} then {second}: a record was lost ({before:?} → {after:?})");
                let (result, called, _) = run_once(&mut fs, &jobs, None, 0, None);
                result.unwrap_or_else(|e| panic!("crashes at {first} then {second}: the third run failed: {e}"));
                assert!(called.iter().all(|n| !after.contains(n)), "crashes at {first} then {second}: a finished step ran again");
                assert_eq!(fs.files, clean.files, "crashes at {first} then {second}: final files");
            }
        }
        // A torn journal on disk before the first run: repaired with write, sync, rename first.
        let mut fs = lab::journal::MemFs::default();
        let mut journal = record_ref(b"step-0");
        journal.extend(&record_ref(b"step-1")[..7]);
        fs.files.insert("journal".into(), journal);
        fs.files.insert("out/0.bin".into(), output_of("step-0"));
        let (result, called, ops) = run_once(&mut fs, &jobs, None, 0, None);
        let summary = result.expect("a run over a torn journal");
        assert_eq!(&ops[..3], &[Op::Write("journal.tmp".into()), Op::Sync("journal.tmp".into()), Op::Rename("journal.tmp".into(), "journal".into())], "the repair");
        assert_eq!(summary.skipped, ["step-0"]);
        assert_eq!(called, ["step-1", "step-2", "step-3"]);
        assert_eq!(fs.files, clean.files, "after a run over a torn journal");
        // A failing step stops the run; the next run resumes at it.
        let mut fs = lab::journal::MemFs::default();
        let (result, _, _) = run_once(&mut fs, &jobs, None, 0, Some("step-2"));
        match result {
            Err(Error::StepFailed { step, message }) => assert_eq!((step.as_str(), message.as_str()), ("step-2", "out of memory")),
            other => panic!("a failing step: expected StepFailed, got {other:?}"),
        }
        assert_eq!(durable(&fs), BTreeSet::from(["step-0".to_string(), "step-1".to_string()]));
        let (result, called, _) = run_once(&mut fs, &jobs, None, 0, None);
        assert_eq!(result.expect("resumed").skipped, ["step-0", "step-1"]);
        assert_eq!(called, ["step-2", "step-3"]);
        assert_eq!(fs.files, clean.files);
        // A damaged record before the last: an error, and nothing is written.
        let mut fs = lab::journal::MemFs::default();
        let mut journal = record_ref(b"step-0");
        journal[5] ^= 1;
        journal.extend(record_ref(b"step-1"));
        fs.files.insert("journal".into(), journal);
        let snapshot = fs.clone();
        let (result, called, ops) = run_once(&mut fs, &jobs, None, 0, None);
        assert!(matches!(result, Err(Error::CorruptJournal { offset: 0, .. })), "corrupt journal: got {result:?}");
        assert!(called.is_empty() && ops.is_empty() && fs == snapshot, "a corrupt journal must stop the run before anything runs or is written");
        // A record that is not UTF-8.
        let mut fs = lab::journal::MemFs::default();
        let mut journal = record_ref(b"step-0");
        journal.extend(record_ref(b"\xFF\xFE"));
        fs.files.insert("journal".into(), journal);
        let (result, _, _) = run_once(&mut fs, &jobs, None, 0, None);
        assert!(matches!(result, Err(Error::CorruptJournal { offset: 14, .. })), "a name that is not UTF-8: got {result:?}");
        // Duplicate names: refused before any operation.
        let mut dup = jobs.clone();
        dup.push(jobs[1].clone());
        let mut fs = lab::journal::MemFs::default();
        let (result, called, ops) = run_once(&mut fs, &dup, None, 0, None);
        assert!(matches!(result, Err(Error::InvalidInput(_))) && called.is_empty() && ops.is_empty(), "duplicate job names: {result:?}, ops {ops:?}");
    }

    /// Six hand-written files (closures, labels, else-if, mixed && ||, let chains, guards, nested
    /// fns, impls, traits, macros, async, unsafe, extern): every function's name, line and both
    /// counts equal kernels::quality::complexity's.
    fn complexity_matches_kernels_on_hand_written_sources() {
        for (i, source) in SOURCES.iter().enumerate() {
            let want = kernels::quality::complexity::complexity_of_source(source).expect("kernels parses the fixture");
            let got = lab::complexity::complexity_of_source(source).unwrap_or_else(|e| panic!("source {i}: {e}"));
            assert_eq!(summary(&got), kernels_summary(&want), "source {i}:\n{source}");
        }
    }

    /// 300 random files of functions built from if / else if / else, for, while, labelled loops,
    /// match with guards, closures, unsafe blocks, `?`, boolean chains with parentheses and `!`,
    /// macros and nested fns; the generator knows each function's counts, and so does kernels.
    fn complexity_matches_the_generator_on_random_functions() {
        let mut rng = Rng(0xC0_61);
        for round in 0..300 {
            let (source, expected) = random_file(&mut rng);
            let got = lab::complexity::complexity_of_source(&source).unwrap_or_else(|e| panic!("round {round}: {e}\n{source}"));
            assert_eq!(summary(&got), expected, "round {round}: (name, line, cyclomatic, cognitive) of\n{source}");
            let theirs = kernels::quality::complexity::complexity_of_source(&source).expect("kernels parses");
            assert_eq!(kernels_summary(&theirs), expected, "round {round}: the generator disagrees with kernels (a grader bug)\n{source}");
        }
    }

    /// Names through modules, impls (generic, trait, reference, tuple types), traits, nested fns
    /// and impls in fns; lines of the `fn` keyword; outer before inner; parse errors typed.
    fn complexity_names_lines_order_and_bad_sources() {
        let source = [
            "mod outer_mod {",                                        // 1
            "    pub fn helper() {}",                                 // 2
            "    mod inner { fn deep() { if true {} } }",             // 3
            "}",                                                      // 4
            "struct Stack<T>(Vec<T>);",                               // 5
            "impl<T> Stack<T> {",                                     // 6
            "    fn push(&mut self, x: T) { if true { let _ = x; } }", // 7
            "}",                                                      // 8
            "impl std::fmt::Display for Stack<u8> {",                 // 9
            "    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result { Ok(()) }", // 10
            "}",                                                      // 11
            "impl Clone for &Foo { fn clone(&self) -> Self { *self } }", // 12
            "impl Foo for (u8, u8) { fn tuple() {} }",                // 13
            "trait Shape {",                                          // 14
            "    fn area(&self) -> f64;",                             // 15
            "    fn describe(&self) -> &str { if self.area() > 1.0 { \"big\" } else { \"small\" } }", // 16
            "}",                                                      // 17
            "fn outer() {",                                           // 18
            "    fn inner(a: bool) { if a {} }",                      // 19
            "    let c = |x: bool| if x { 1 } else { 2 };",           // 20
            "}",                                                      // 21
            "fn with_impl() {",                                       // 22
            "    struct L;",                                          // 23
            "    impl L { fn m(&self) { loop { break; } } }",         // 24
            "}",                                                      // 25
            "extern \"C\" { fn abort(); }",                           // 26
        ]
        .join("\n");
        let want: Vec<(String, usize, u32, u32)> = [
            ("outer_mod::helper", 2, 1, 0),
            ("outer_mod::inner::deep", 3, 2, 1),
            ("Stack::push", 7, 2, 1),
            ("Stack::fmt", 10, 1, 0),
            ("Foo::clone", 12, 1, 0),
            ("_::tuple", 13, 1, 0),
            ("Shape::describe", 16, 2, 2),
            ("outer", 18, 2, 3),
            ("outer::inner", 19, 2, 1),
            ("with_impl", 22, 1, 0),
            ("with_impl::L::m", 24, 2, 1),
        ]
        .iter()
        .map(|(n, l, y, g)| (n.to_string(), *l, *y, *g))
        .collect();
        let got = lab::complexity::complexity_of_source(&source).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(summary(&got), want, "source:\n{source}");
        assert_eq!(lab::complexity::complexity_of_source("").unwrap(), vec![], "an empty file");
        assert_eq!(lab::complexity::complexity_of_source("struct S; const X: u8 = 1;").unwrap(), vec![], "no functions");
        for bad in ["fn broken( {", "fn f() { if }", "impl {", "fn f() { let x = ; }", "\u{feff}fn 1x() {}"] {
            let got = lab::complexity::complexity_of_source(bad);
            assert!(matches!(got, Err(Error::Parse(_))), "`{bad}`: expected Error::Parse, got {got:?}");
        }
    }
}
