//! The element type of the autograd tape: [`Float`], implemented for `f32` (training, products on
//! the SIMD kernels of [`crate::matmul`]) and `f64` (finite-difference gradient checks, scalar loops).

use std::fmt::{Debug, Display};
use std::iter::Sum;
use std::ops::{Add, AddAssign, Div, DivAssign, Mul, MulAssign, Neg, Sub, SubAssign};

use crate::Result;
use crate::matmul::{GemmShape, check_gemm};

/// A real number type the tape computes in: the arithmetic, the elementary functions the ops need,
/// and the dense products every matrix op runs on.
///
/// The same op code runs in `f32` (production: [`Float::gemm`] and [`Float::gemm_nt`] are
/// [`crate::matmul::gemm`] and [`crate::matmul::gemm_nt`]) and in `f64` (scalar loops, accurate
/// enough for central finite differences, see [`super::gradcheck()`]).
pub trait Float:
    Copy
    + Default
    + Debug
    + Display
    + PartialOrd
    + Send
    + Sync
    + 'static
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + SubAssign
    + MulAssign
    + DivAssign
    + Sum
{
    /// `0`.
    const ZERO: Self;
    /// `1`.
    const ONE: Self;
    /// The type's name, for reports (`"f32"`, `"f64"`).
    const NAME: &'static str;

    /// The nearest value of this type (`as` conversion).
    fn from_f64(v: f64) -> Self;
    /// The value as an `f64` (exact for both implementations).
    fn to_f64(self) -> f64;
    /// `eˣ`.
    fn exp(self) -> Self;
    /// The natural logarithm.
    fn ln(self) -> Self;
    /// The square root.
    fn sqrt(self) -> Self;
    /// `(sin x, cos x)`.
    fn sin_cos(self) -> (Self, Self);
    /// The larger of the two (the other one when one is NaN, as `f32::max`).
    fn max(self, other: Self) -> Self;
    /// The absolute value.
    fn abs(self) -> Self;

    /// `C = A·B` with `A` `m × k`, `B` `k × n`, `C` `m × n`, row-major; `C` is overwritten.
    ///
    /// # Errors
    /// [`crate::Error::DimensionMismatch`] when a slice's length is not what `shape` implies.
    fn gemm(a: &[Self], b: &[Self], c: &mut [Self], shape: GemmShape) -> Result<()>;

    /// `C = A·Bᵀ` with `A` `m × k`, `B` stored `n × k`, `C` `m × n`; `C` is overwritten.
    ///
    /// # Errors
    /// [`crate::Error::DimensionMismatch`] when a slice's length is not what `shape` implies.
    fn gemm_nt(a: &[Self], b: &[Self], c: &mut [Self], shape: GemmShape) -> Result<()>;

    /// `Σ a_i b_i` over the shorter of the two slices.
    fn dot(a: &[Self], b: &[Self]) -> Self {
        a.iter().zip(b).map(|(&x, &y)| x * y).sum()
    }
}

macro_rules! elementary {
    ($t:ty) => {
        fn exp(self) -> Self {
            <$t>::exp(self)
        }
        fn ln(self) -> Self {
            <$t>::ln(self)
        }
        fn sqrt(self) -> Self {
            <$t>::sqrt(self)
        }
        fn sin_cos(self) -> (Self, Self) {
            <$t>::sin_cos(self)
        }
        fn max(self, other: Self) -> Self {
            <$t>::max(self, other)
        }
        fn abs(self) -> Self {
            <$t>::abs(self)
        }
    };
}

impl Float for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    const NAME: &'static str = "f32";
    elementary!(f32);

    fn from_f64(v: f64) -> Self {
        v as f32
    }

    fn to_f64(self) -> f64 {
        f64::from(self)
    }

    fn gemm(a: &[Self], b: &[Self], c: &mut [Self], shape: GemmShape) -> Result<()> {
        crate::matmul::gemm(a, b, c, shape)
    }

    fn gemm_nt(a: &[Self], b: &[Self], c: &mut [Self], shape: GemmShape) -> Result<()> {
        crate::matmul::gemm_nt(a, b, c, shape)
    }

    fn dot(a: &[Self], b: &[Self]) -> Self {
        let n = a.len().min(b.len());
        crate::simd::dot(&a[..n], &b[..n])
    }
}

impl Float for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    const NAME: &'static str = "f64";
    elementary!(f64);

    fn from_f64(v: f64) -> Self {
        v
    }

    fn to_f64(self) -> f64 {
        self
    }

    fn gemm(a: &[Self], b: &[Self], c: &mut [Self], shape: GemmShape) -> Result<()> {
        check_gemm(a, b, c, shape)?;
        let GemmShape { n, k, .. } = shape;
        c.fill(0.0);
        if n == 0 || k == 0 {
            return Ok(());
        }
        for (a_row, c_row) in a.chunks_exact(k).zip(c.chunks_exact_mut(n)) {
            for (&a_ip, b_row) in a_row.iter().zip(b.chunks_exact(n)) {
                for (c_ij, &b_pj) in c_row.iter_mut().zip(b_row) {
                    *c_ij += a_ip * b_pj;
                }
            }
        }
        Ok(())
    }

    fn gemm_nt(a: &[Self], b: &[Self], c: &mut [Self], shape: GemmShape) -> Result<()> {
        check_gemm(a, b, c, shape)?;
        let GemmShape { n, k, .. } = shape;
        if n == 0 {
            return Ok(());
        }
        if k == 0 {
            c.fill(0.0);
            return Ok(());
        }
        for (a_row, c_row) in a.chunks_exact(k).zip(c.chunks_exact_mut(n)) {
            for (c_ij, b_row) in c_row.iter_mut().zip(b.chunks_exact(k)) {
                *c_ij = Self::dot(a_row, b_row);
            }
        }
        Ok(())
    }
}
