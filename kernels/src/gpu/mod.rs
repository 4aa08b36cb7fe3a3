//! GPU compute through wgpu (Vulkan; lavapipe in CI): f32 GEMM, batched distances with top-k,
//! Q8_0 GEMV, and a measured rule for when the GPU beats the CPU.
//!
//! | item | what it is |
//! |---|---|
//! | [`GpuContext`] | one adapter + device + queue with the three WGSL kernels compiled |
//! | [`GpuContext::gemm`] | `C = A·B` row-major, 64×64 tiles staged in workgroup memory (`gemm.wgsl`) |
//! | [`GpuContext::top_k`] | `Q × N` distances (L2, dot, cosine) with a per-chunk top-k on the GPU, merged on the host (`top_k.wgsl`) |
//! | [`GpuContext::gemv_q8_0`] | `y = W·x` on raw GGUF Q8_0 bytes decoded in WGSL (`q8_0.wgsl`) |
//! | [`calibrate`] → [`Calibration`] | bandwidth, latency and GPU/CPU throughput probes; a cost model that places each call |
//! | [`Device`] | [`Device::auto`]: the GPU if it opens and calibrates, otherwise the CPU with the reason |
//!
//! Without any adapter, [`GpuContext::new`] returns [`crate::Error::NoGpuAdapter`],
//! whose message names the fix: install a Vulkan driver (on Debian/Ubuntu,
//! `apt-get install mesa-vulkan-drivers libvulkan1` gives the software lavapipe
//! device, enough for tests). [`Device::auto`] turns that error into a CPU
//! device that keeps the message.
//!
//! Every call is synchronous: upload, dispatch, wait, read back. Buffers are
//! not kept between calls, so the transfer cost the cost model charges is
//! real; keeping weights resident is the next step, not done here.

mod calibrate;
mod context;
mod device;
mod gemm;
mod q8_0;
mod top_k;

pub use calibrate::{Calibration, CalibrationConfig, Forecast, Op, Placement, Rates, calibrate};
pub use context::{GpuContext, GpuInfo};
pub use device::Device;
pub use gemm::GEMM_TILE;
pub use q8_0::{Q8_0_BLOCK_BYTES, Q8_0_BLOCK_VALUES, gemv_q8_0_cpu};
pub use top_k::{NO_ID, TOP_K_MAX_LOCAL, TopK, top_k_cpu};
