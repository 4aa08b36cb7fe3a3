//! Visible tests of week c4w5: `cargo test -p c4w5-finetune-security` runs them, and the grader runs them
//! too (with its own definition of `graded!`).

/// Turns each `fn name() { … }` into a `#[test]`; the grader's harness defines this macro
/// differently (one process per test, with time and memory limits).
macro_rules! graded {
    ($($(#[$m:meta])* fn $name:ident() $body:block)*) => {
        $( $(#[$m])* #[test] fn $name() $body )*
    };
}

mod visible;
