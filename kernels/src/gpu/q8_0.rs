//! Quantised GEMV on GGUF Q8_0 blocks on the GPU (`q8_0.wgsl`): the raw block bytes go up, decoding happens in WGSL.

use super::context::{Dispatch, GpuContext, f32s};
use super::gemm::{area, expect_len};
use crate::{Error, Result};

/// Values per Q8_0 block.
pub const Q8_0_BLOCK_VALUES: usize = 32;
/// Bytes per Q8_0 block: an f16 scale and 32 `i8` quants.
pub const Q8_0_BLOCK_BYTES: usize = 34;

/// Rows one dispatch row covers; larger matrices use a second dispatch dimension.
const ROWS_PER_SLICE: usize = 32768;

/// Checks a Q8_0 GEMV call: `cols` a multiple of 32, `weights` exactly `rows × cols/32` blocks,
/// `x` of length `cols`, `y` of length `rows`.
pub(crate) fn check_q8_0(weights: &[u8], rows: usize, cols: usize, x: &[f32], y: &[f32]) -> Result<()> {
    if !cols.is_multiple_of(Q8_0_BLOCK_VALUES) {
        return Err(Error::InvalidParameter(format!("Q8_0 GEMV: cols = {cols} is not a multiple of 32")));
    }
    let blocks = area(rows, cols / Q8_0_BLOCK_VALUES, "Q8_0 weights")?;
    expect_len(weights.len(), area(blocks, Q8_0_BLOCK_BYTES, "Q8_0 weights")?)?;
    expect_len(x.len(), cols)?;
    expect_len(y.len(), rows)
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    cols: u32,
    blocks: u32,
    rows_per_slice: u32,
}

/// One uploaded GEMV (the calibration times dispatches on it alone).
pub(crate) struct GemvJob<'a> {
    pub dispatch: Dispatch<'a>,
    pub y: wgpu::Buffer,
}

impl GpuContext {
    /// `y = W·x` where `W` is `rows × cols` stored as GGUF Q8_0 blocks: row `r` is
    /// `cols / 32` consecutive 34-byte blocks (f16 scale `d`, then 32 `i8` quants;
    /// value `i` of a block is `d · q[i]`), rows back to back. `y` is overwritten.
    ///
    /// The bytes are uploaded as they are (zero-padded to a whole number of
    /// 4-byte words) and decoded on the GPU. `rows = 0` does nothing, `cols = 0`
    /// gives `y = 0`. The activations stay f32 (see [`gemv_q8_0_cpu`] for how
    /// the CPU fallback differs).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] if `cols` is not a multiple of 32 or the
    /// weights exceed one storage buffer; [`Error::DimensionMismatch`] if
    /// `weights`, `x` or `y` has the wrong length; [`Error::Gpu`] when wgpu reports an error.
    pub fn gemv_q8_0(&self, weights: &[u8], rows: usize, cols: usize, x: &[f32], y: &mut [f32]) -> Result<()> {
        check_q8_0(weights, rows, cols, x, y)?;
        if rows == 0 {
            return Ok(());
        }
        if cols == 0 {
            y.fill(0.0);
            return Ok(());
        }
        self.scoped("gemv_q8_0", || {
            let job = self.gemv_q8_0_job(weights, rows, cols, x)?;
            self.run(std::slice::from_ref(&job.dispatch))?;
            y.copy_from_slice(&f32s(&self.read(&job.y, (rows * 4) as u64)?));
            Ok(())
        })
    }

    /// Uploads the weights and `x` and prepares the dispatch (shapes checked, non-empty).
    pub(crate) fn gemv_q8_0_job(&self, weights: &[u8], rows: usize, cols: usize, x: &[f32]) -> Result<GemvJob<'_>> {
        let blocks = cols / Q8_0_BLOCK_VALUES;
        let words = weights.len().div_ceil(4);
        self.check_fits("Q8_0 weights", (words * 4) as u64)?;
        // Byte offsets inside the kernel are u32.
        if u32::try_from(words * 4 + 4).is_err() {
            return Err(Error::InvalidParameter("Q8_0 GEMV: weights over 4 GiB".into()));
        }
        let mut padded = Vec::with_capacity(words * 4 + 4);
        padded.extend_from_slice(weights);
        // Zero tail: a whole word, plus one more so the funnel shift may read one word past the last quant.
        padded.resize(words * 4 + 4, 0);
        let gx = self.check_groups("Q8_0 rows", rows.min(ROWS_PER_SLICE))?;
        let gy = self.check_groups("Q8_0 row slices", rows.div_ceil(ROWS_PER_SLICE))?;
        let params = Params {
            rows: rows as u32,
            cols: cols as u32,
            blocks: blocks as u32,
            rows_per_slice: ROWS_PER_SLICE.min(rows) as u32,
        };
        let w_buf = self.storage("Q8_0 weights", &padded);
        let x_buf = self.storage("Q8_0 x", bytemuck::cast_slice(x));
        let y_buf = self.output("Q8_0 y", (rows * 4) as u64);
        let u = self.uniform("Q8_0 params", bytemuck::bytes_of(&params));
        let bind_group = self.bind(&self.q8_0, &[&w_buf, &x_buf, &y_buf, &u]);
        Ok(GemvJob { dispatch: Dispatch { pipeline: &self.q8_0, bind_group, groups: [gx, gy, 1] }, y: y_buf })
    }
}

/// The CPU fallback for [`GpuContext::gemv_q8_0`]: the same shape checks and errors, then
/// [`crate::quant::gemv`] with [`crate::quant::QuantFormat::Q8_0`].
///
/// Unlike the GPU kernel, which multiplies the decoded weights by `x` in f32,
/// the CPU kernel quantises `x` to 8 bits per 32-block first (as llama.cpp
/// does), so the two differ by that quantisation error (about `amax(x)/254`
/// per weight), not only by rounding.
///
/// # Errors
/// As [`GpuContext::gemv_q8_0`], without the device errors.
pub fn gemv_q8_0_cpu(weights: &[u8], rows: usize, cols: usize, x: &[f32], y: &mut [f32]) -> Result<()> {
    check_q8_0(weights, rows, cols, x, y)?;
    if rows == 0 {
        return Ok(());
    }
    if cols == 0 {
        y.fill(0.0);
        return Ok(());
    }
    crate::quant::gemv(crate::quant::QuantFormat::Q8_0, weights, rows, cols, x, y)
}
