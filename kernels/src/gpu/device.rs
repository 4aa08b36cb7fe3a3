//! The automatic choice between the GPU and the CPU: [`Device::auto`] opens a GPU if there is one,
//! calibrates it, and then sends each call where the measured cost model says it is faster.

use super::calibrate::{Calibration, CalibrationConfig, Op, Placement, calibrate};
use super::context::GpuContext;
use super::q8_0::gemv_q8_0_cpu;
use super::top_k::{TopK, top_k_cpu};
use crate::Result;
use crate::matmul::GemmShape;
use crate::simd::Metric;

/// Where kernel calls go: a calibrated GPU, or the CPU with the reason there is no GPU.
#[derive(Debug)]
pub enum Device {
    /// A GPU and its measured cost model; each call is placed by [`Calibration::placement`].
    Gpu {
        /// The opened device.
        context: Box<GpuContext>,
        /// What [`calibrate`] measured on it.
        calibration: Calibration,
    },
    /// The CPU kernels only.
    Cpu {
        /// Why there is no GPU (the error of [`GpuContext::new`] or of the calibration, or the caller's choice).
        reason: String,
    },
}

impl Device {
    /// [`Device::auto_with`] the default probe sizes.
    pub fn auto() -> Device {
        Device::auto_with(&CalibrationConfig::default())
    }

    /// Opens the GPU and calibrates it; falls back to the CPU, keeping the reason, when either fails.
    ///
    /// Never fails: without an adapter the result is [`Device::Cpu`] whose
    /// `reason` is [`crate::Error::NoGpuAdapter`]'s message, which names the fix.
    pub fn auto_with(config: &CalibrationConfig) -> Device {
        let context = match GpuContext::new() {
            Ok(c) => c,
            Err(e) => return Device::cpu(format!("{e}")),
        };
        match calibrate(&context, config) {
            Ok(calibration) => Device::Gpu { context: Box::new(context), calibration },
            Err(e) => Device::cpu(format!("GPU {} failed its calibration: {e}", context.info())),
        }
    }

    /// The CPU only, for `reason`.
    pub fn cpu(reason: impl Into<String>) -> Device {
        Device::Cpu { reason: reason.into() }
    }

    /// One line saying what this is: the GPU's name, or why it is the CPU.
    pub fn describe(&self) -> String {
        match self {
            Device::Gpu { context, .. } => format!("gpu: {}", context.info()),
            Device::Cpu { reason } => format!("cpu: {reason}"),
        }
    }

    /// Where `op` would run.
    pub fn placement(&self, op: &Op) -> Placement {
        match self {
            Device::Gpu { calibration, .. } => calibration.placement(op),
            Device::Cpu { .. } => Placement::Cpu,
        }
    }

    fn gpu_for(&self, op: &Op) -> Option<&GpuContext> {
        match self {
            Device::Gpu { context, calibration } if calibration.placement(op) == Placement::Gpu => Some(context),
            _ => None,
        }
    }

    /// `C = A·B` where [`Device::placement`] says: [`GpuContext::gemm`] or [`crate::matmul::gemm`].
    ///
    /// # Errors
    /// As the function chosen.
    pub fn gemm(&self, a: &[f32], b: &[f32], c: &mut [f32], shape: GemmShape) -> Result<()> {
        match self.gpu_for(&Op::Gemm(shape)) {
            Some(gpu) => gpu.gemm(a, b, c, shape),
            None => crate::matmul::gemm(a, b, c, shape),
        }
    }

    /// Top-k where [`Device::placement`] says: [`GpuContext::top_k`] or [`top_k_cpu`].
    ///
    /// # Errors
    /// As the function chosen.
    pub fn top_k(&self, base: &[f32], dim: usize, queries: &[f32], k: usize, metric: Metric) -> Result<TopK> {
        let op = Op::TopK { queries: queries.len() / dim.max(1), base: base.len() / dim.max(1), dim, k };
        match self.gpu_for(&op) {
            Some(gpu) => gpu.top_k(base, dim, queries, k, metric),
            None => top_k_cpu(base, dim, queries, k, metric),
        }
    }

    /// Q8_0 GEMV where [`Device::placement`] says: [`GpuContext::gemv_q8_0`] or [`gemv_q8_0_cpu`].
    ///
    /// # Errors
    /// As the function chosen.
    pub fn gemv_q8_0(&self, weights: &[u8], rows: usize, cols: usize, x: &[f32], y: &mut [f32]) -> Result<()> {
        match self.gpu_for(&Op::GemvQ8_0 { rows, cols }) {
            Some(gpu) => gpu.gemv_q8_0(weights, rows, cols, x, y),
            None => gemv_q8_0_cpu(weights, rows, cols, x, y),
        }
    }
}
