// gemm.wgsl: f32 GEMM C = A·B, all row-major (A m×k, B k×n, C m×n), for kernels::gpu.
//
// Tiling: each 16×16 workgroup computes a 64×64 block of C; each invocation
// owns a 4×4 register block at rows ly + 16i and columns lx + 16j (strided so
// neighbouring invocations touch neighbouring addresses). The k dimension is
// walked in slices of 16: the workgroup stages a 64×16 slice of A and a
// 16×64 slice of B in workgroup (shared) memory, then every invocation reads
// them 16 times. Edges (m, n or k not a multiple of the tile) load zeros and
// skip the store, so any shape works. Barriers sit in uniform control flow:
// the k loop bound comes from the uniform block only.

struct Dims {
    m: u32,
    n: u32,
    k: u32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;
@group(0) @binding(3) var<uniform> dims: Dims;

const TILE: u32 = 64u;   // C block edge per workgroup
const KT: u32 = 16u;     // k slice staged per step
const WG: u32 = 16u;     // workgroup edge
const R: u32 = 4u;       // register block edge per invocation

var<workgroup> a_tile: array<f32, 1024>;  // [row 0..64][kk 0..16]
var<workgroup> b_tile: array<f32, 1024>;  // [kk 0..16][col 0..64]

@compute @workgroup_size(16, 16, 1)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let row0 = wg.y * TILE;
    let col0 = wg.x * TILE;
    var acc: array<f32, 16>;
    for (var i = 0u; i < 16u; i++) {
        acc[i] = 0.0;
    }
    let steps = (dims.k + KT - 1u) / KT;
    for (var s = 0u; s < steps; s++) {
        let k0 = s * KT;
        // 1024 elements per tile, 256 invocations: 4 loads each.
        for (var l = 0u; l < 4u; l++) {
            let idx = li + l * 256u;
            // A slice: row idx / 16, column idx % 16.
            let ar = row0 + idx / KT;
            let ak = k0 + idx % KT;
            var av = 0.0;
            if (ar < dims.m && ak < dims.k) {
                av = a[ar * dims.k + ak];
            }
            a_tile[idx] = av;
            // B slice: row idx / 64, column idx % 64.
            let bk = k0 + idx / TILE;
            let bc = col0 + idx % TILE;
            var bv = 0.0;
            if (bk < dims.k && bc < dims.n) {
                bv = b[bk * dims.n + bc];
            }
            b_tile[idx] = bv;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < KT; kk++) {
            var ar: array<f32, 4>;
            var br: array<f32, 4>;
            for (var i = 0u; i < R; i++) {
                ar[i] = a_tile[(lid.y + i * WG) * KT + kk];
                br[i] = b_tile[kk * TILE + lid.x + i * WG];
            }
            for (var i = 0u; i < R; i++) {
                for (var j = 0u; j < R; j++) {
                    acc[i * R + j] = fma(ar[i], br[j], acc[i * R + j]);
                }
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < R; i++) {
        let r = row0 + lid.y + i * WG;
        for (var j = 0u; j < R; j++) {
            let col = col0 + lid.x + j * WG;
            if (r < dims.m && col < dims.n) {
                c[r * dims.n + col] = acc[i * R + j];
            }
        }
    }
}
