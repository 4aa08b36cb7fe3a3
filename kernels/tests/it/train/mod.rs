//! `kernels::train`: autograd gradients against finite differences, optimisers against their papers.

mod autograd;
mod optim;
