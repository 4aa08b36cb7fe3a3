//! f32 GEMM on the GPU: `C = A·B`, row-major, tiled through workgroup memory (`gemm.wgsl`).

use super::context::{Dispatch, GpuContext, f32s};
use crate::matmul::GemmShape;
use crate::{Error, Result};

/// Edge of the `C` block one workgroup computes (must match `TILE` in `gemm.wgsl`).
pub const GEMM_TILE: usize = 64;

/// `rows × cols` as a length, or [`Error::InvalidParameter`] on overflow.
pub(crate) fn area(rows: usize, cols: usize, what: &str) -> Result<usize> {
    rows.checked_mul(cols).ok_or_else(|| Error::InvalidParameter(format!("{what}: {rows} × {cols} overflows usize")))
}

/// [`Error::DimensionMismatch`] unless `got == expected`.
pub(crate) fn expect_len(got: usize, expected: usize) -> Result<()> {
    if got == expected { Ok(()) } else { Err(Error::DimensionMismatch { expected, got }) }
}

/// Checks `a` (`m × k`), `b` (`k × n`) and `c` (`m × n`) against `shape`.
pub(crate) fn check_gemm(a: &[f32], b: &[f32], c: &[f32], shape: GemmShape) -> Result<()> {
    let GemmShape { m, n, k } = shape;
    expect_len(a.len(), area(m, k, "A")?)?;
    expect_len(b.len(), area(k, n, "B")?)?;
    expect_len(c.len(), area(m, n, "C")?)
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Dims {
    m: u32,
    n: u32,
    k: u32,
    pad: u32,
}

/// Buffers of one GEMM already on the device (the calibration times dispatches on them alone).
pub(crate) struct GemmJob<'a> {
    pub dispatch: Dispatch<'a>,
    pub c: wgpu::Buffer,
    pub c_bytes: u64,
}

impl GpuContext {
    /// `C = A·B` on the GPU with `A` `m × k`, `B` `k × n`, `C` `m × n`, all row-major; `C` is overwritten.
    ///
    /// The same contract as [`crate::matmul::gemm`]: `k = 0` gives `C = 0`, `m = 0`
    /// or `n = 0` does nothing. Results differ from a scalar triple loop only by
    /// rounding (the GPU sums each dot product in `k` order with FMA).
    ///
    /// # Errors
    /// [`Error::DimensionMismatch`] when a slice's length is not what `shape`
    /// implies; [`Error::InvalidParameter`] when a dimension exceeds `u32` or a
    /// matrix does not fit in one storage buffer of this device; [`Error::Gpu`]
    /// when wgpu reports an error.
    pub fn gemm(&self, a: &[f32], b: &[f32], c: &mut [f32], shape: GemmShape) -> Result<()> {
        check_gemm(a, b, c, shape)?;
        if shape.m == 0 || shape.n == 0 {
            return Ok(());
        }
        if shape.k == 0 {
            c.fill(0.0);
            return Ok(());
        }
        self.scoped("gemm", || {
            let job = self.gemm_job(a, b, shape)?;
            self.run(std::slice::from_ref(&job.dispatch))?;
            let out = f32s(&self.read(&job.c, job.c_bytes)?);
            c.copy_from_slice(&out);
            Ok(())
        })
    }

    /// Uploads `a` and `b` and prepares the dispatch (no work submitted yet). Shapes are checked and non-empty.
    pub(crate) fn gemm_job(&self, a: &[f32], b: &[f32], shape: GemmShape) -> Result<GemmJob<'_>> {
        let GemmShape { m, n, k } = shape;
        for (what, d) in [("m", m), ("n", n), ("k", k)] {
            if u32::try_from(d).is_err() {
                return Err(Error::InvalidParameter(format!("gemm: {what} = {d} exceeds u32")));
            }
        }
        let c_bytes = (m * n * 4) as u64;
        self.check_fits("gemm A", (a.len() * 4) as u64)?;
        self.check_fits("gemm B", (b.len() * 4) as u64)?;
        self.check_fits("gemm C", c_bytes)?;
        let gx = self.check_groups("gemm columns", n.div_ceil(GEMM_TILE))?;
        let gy = self.check_groups("gemm rows", m.div_ceil(GEMM_TILE))?;
        let a_buf = self.storage("gemm A", bytemuck::cast_slice(a));
        let b_buf = self.storage("gemm B", bytemuck::cast_slice(b));
        let c_buf = self.output("gemm C", c_bytes);
        let dims = Dims { m: m as u32, n: n as u32, k: k as u32, pad: 0 };
        let u = self.uniform("gemm dims", bytemuck::bytes_of(&dims));
        let bind_group = self.bind(&self.gemm, &[&a_buf, &b_buf, &c_buf, &u]);
        Ok(GemmJob { dispatch: Dispatch { pipeline: &self.gemm, bind_group, groups: [gx, gy, 1] }, c: c_buf, c_bytes })
    }
}
