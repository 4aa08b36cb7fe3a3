// q8_0.wgsl: GEMV y = W·x on GGUF Q8_0 blocks, decoded on the GPU, for kernels::gpu.
//
// Q8_0 block (34 bytes, 32 values): f16 scale d (little-endian), then 32 i8
// quants q; value i = d * q[i]. W has `rows` rows of `cols / 32` blocks each,
// back to back, so a row starts at byte row * blocks * 34 (2-byte aligned,
// not 4). The raw bytes are uploaded as u32 words (tail zero-padded) and
// decoded here: the scale is the low or high half of one word, the quants
// are four per word, realigned with a 16-bit funnel shift when the quants
// start at 2 mod 4. Each workgroup of 64 invocations owns one row; an
// invocation takes 8-value units (four per block), strided by 64, and the
// 64 partial sums are reduced in workgroup memory.

struct Params {
    rows: u32,
    cols: u32,
    blocks: u32,        // cols / 32
    rows_per_slice: u32, // workgroups per dispatch row (2-D dispatch for > 65535 rows)
}

@group(0) @binding(0) var<storage, read> w: array<u32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

const WG: u32 = 64u;
var<workgroup> partial: array<f32, 64>;

// The 4 bytes starting at byte offset `off` (off even), as one little-endian word.
fn word_at(off: u32) -> u32 {
    let wi = off >> 2u;
    if ((off & 3u) == 0u) {
        return w[wi];
    }
    return (w[wi] >> 16u) | (w[wi + 1u] << 16u);
}

// Sum over 4 signed bytes of `q` times 4 floats of x starting at `xi`.
fn dot4(q: u32, xi: u32) -> f32 {
    let s = bitcast<i32>(q);
    return f32(extractBits(s, 0u, 8u)) * x[xi]
        + f32(extractBits(s, 8u, 8u)) * x[xi + 1u]
        + f32(extractBits(s, 16u, 8u)) * x[xi + 2u]
        + f32(extractBits(s, 24u, 8u)) * x[xi + 3u];
}

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let row = wg.y * p.rows_per_slice + wg.x;
    var sum = 0.0;
    if (row < p.rows) {
        let units = p.blocks * 4u; // 4 units of 8 quants per block
        for (var u = li; u < units; u += WG) {
            let blk = u / 4u;
            let part = u % 4u;
            let boff = (row * p.blocks + blk) * 34u;
            // f16 scale: boff is even, so it is the low or high half of one word.
            let sw = w[boff >> 2u] >> ((boff & 2u) * 8u);
            let d = unpack2x16float(sw & 0xffffu).x;
            let qoff = boff + 2u + part * 8u;
            let xi = blk * 32u + part * 8u;
            let s = dot4(word_at(qoff), xi) + dot4(word_at(qoff + 4u), xi + 4u);
            sum = fma(d, s, sum);
        }
    }
    partial[li] = sum;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride = stride / 2u) {
        if (li < stride) {
            partial[li] = partial[li] + partial[li + stride];
        }
        workgroupBarrier();
    }
    if (li == 0u && row < p.rows) {
        y[row] = partial[0];
    }
}
