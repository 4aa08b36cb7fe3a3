// top_k.wgsl: batched distances with a per-chunk partial top-k, for kernels::gpu.
//
// Q queries against N base vectors of dimension `dim`, metric L2 (squared),
// Dot (negated inner product) or Cosine (1 - cosine similarity): smaller is
// nearer, as in kernels::simd::Metric. The base is cut into chunks of
// `chunk_len` vectors; workgroup (x, y) handles 64 queries (one per
// invocation) against chunk y. Base vectors are staged 16 at a time, 64
// dimensions per step, in workgroup memory, so each base value is read from
// the storage buffer once per workgroup instead of once per query. Each
// invocation keeps its `k_local` (<= 32) best (distance, id) pairs sorted in
// registers by insertion with a strict `<`, so among equal distances the
// smaller id (seen first) stays; the host merges the chunks' lists.
// Unused slots keep id 0xffffffff. Inputs are expected to be finite: NaN
// distances never enter a list.

struct Params {
    q_count: u32,
    n: u32,
    dim: u32,
    k_local: u32,
    chunk_len: u32,
    n_chunks: u32,
    metric: u32,   // 0 = L2, 1 = Dot, 2 = Cosine
    _pad: u32,
}

@group(0) @binding(0) var<storage, read> base: array<f32>;
@group(0) @binding(1) var<storage, read> queries: array<f32>;
@group(0) @binding(2) var<storage, read_write> out_dist: array<f32>;
@group(0) @binding(3) var<storage, read_write> out_id: array<u32>;
@group(0) @binding(4) var<uniform> p: Params;

const WG: u32 = 64u;    // queries per workgroup
const BV: u32 = 16u;    // base vectors staged per step
const DT: u32 = 64u;    // dimensions staged per step
const KMAX: u32 = 32u;  // largest k_local
const NONE: u32 = 0xffffffffu;

var<workgroup> tile: array<f32, 1024>;   // [vector 0..16][dim 0..64]
var<workgroup> norms: array<f32, 16>;    // |b|² of the staged vectors (cosine)

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let qi = wg.x * WG + li;
    let q_valid = qi < p.q_count;
    let chunk = wg.y;
    let start = chunk * p.chunk_len;
    let end = min(start + p.chunk_len, p.n);

    var best_d: array<f32, 32>;
    var best_i: array<u32, 32>;
    for (var t = 0u; t < KMAX; t++) {
        best_d[t] = 3.4028235e38;
        best_i[t] = NONE;
    }

    // |q|² for cosine, once per query.
    var qq = 0.0;
    if (q_valid && p.metric == 2u) {
        for (var d = 0u; d < p.dim; d++) {
            let v = queries[qi * p.dim + d];
            qq = fma(v, v, qq);
        }
    }

    for (var g0 = start; g0 < end; g0 += BV) {
        var acc: array<f32, 16>;
        for (var j = 0u; j < BV; j++) {
            acc[j] = 0.0;
        }
        if (li < BV) {
            norms[li] = 0.0;
        }
        for (var d0 = 0u; d0 < p.dim; d0 += DT) {
            // Stage 16 vectors × 64 dims: 1024 floats, 16 per invocation.
            for (var l = 0u; l < 16u; l++) {
                let idx = li + l * WG;
                let vid = g0 + idx / DT;
                let dd = d0 + idx % DT;
                var v = 0.0;
                if (vid < end && dd < p.dim) {
                    v = base[vid * p.dim + dd];
                }
                tile[idx] = v;
            }
            workgroupBarrier();
            let dlen = min(DT, p.dim - d0);
            if (p.metric == 2u && li < BV) {
                var s = norms[li];
                for (var dd = 0u; dd < dlen; dd++) {
                    let v = tile[li * DT + dd];
                    s = fma(v, v, s);
                }
                norms[li] = s;
            }
            if (q_valid) {
                let qrow = qi * p.dim + d0;
                if (p.metric == 0u) {
                    for (var dd = 0u; dd < dlen; dd++) {
                        let qv = queries[qrow + dd];
                        for (var j = 0u; j < BV; j++) {
                            let diff = qv - tile[j * DT + dd];
                            acc[j] = fma(diff, diff, acc[j]);
                        }
                    }
                } else {
                    for (var dd = 0u; dd < dlen; dd++) {
                        let qv = queries[qrow + dd];
                        for (var j = 0u; j < BV; j++) {
                            acc[j] = fma(qv, tile[j * DT + dd], acc[j]);
                        }
                    }
                }
            }
            workgroupBarrier();
        }
        if (q_valid) {
            for (var j = 0u; j < BV; j++) {
                let vid = g0 + j;
                if (vid < end) {
                    var dist = acc[j];
                    if (p.metric == 1u) {
                        dist = -acc[j];
                    } else if (p.metric == 2u) {
                        let denom = sqrt(qq * norms[j]);
                        var sim = 0.0;
                        if (denom != 0.0) {
                            sim = acc[j] / denom;
                        }
                        dist = 1.0 - sim;
                    }
                    // Insertion into the sorted list of k_local entries.
                    if (dist < best_d[p.k_local - 1u]) {
                        var t = p.k_local - 1u;
                        while (t > 0u && best_d[t - 1u] > dist) {
                            best_d[t] = best_d[t - 1u];
                            best_i[t] = best_i[t - 1u];
                            t--;
                        }
                        best_d[t] = dist;
                        best_i[t] = vid;
                    }
                }
            }
        }
        // Everyone has read `norms` before the next group resets it.
        workgroupBarrier();
    }

    if (q_valid) {
        let o = (qi * p.n_chunks + chunk) * p.k_local;
        for (var t = 0u; t < p.k_local; t++) {
            out_dist[o + t] = best_d[t];
            out_id[o + t] = best_i[t];
        }
    }
}
