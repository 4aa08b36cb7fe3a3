//! Reverse-mode automatic differentiation over tensors: a tape of operations, and their backward passes.
