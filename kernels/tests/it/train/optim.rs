//! `kernels::train::optim`: optimiser steps against hand-computed values, and checkpoints that resume bit-identically.
