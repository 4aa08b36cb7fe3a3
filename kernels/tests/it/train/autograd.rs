//! `kernels::train::autograd`: every op's gradient against central finite differences in f64.
