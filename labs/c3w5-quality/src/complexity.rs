//! How hard is this code to test, and to read? Two counts per function, over `syn`'s syntax tree.
//!
//! - **Cyclomatic complexity** (McCabe, IEEE TSE 1976) is the number of linearly independent paths
//!   through a function: one plus one per decision. It is the number of test cases needed to cover
//!   every branch, and it ignores how the decisions are arranged.
//! - **Cognitive complexity** (G. Ann Campbell, SonarSource 2017) charges for what makes code hard
//!   to *read*: each break in the linear flow costs 1, and costs more the deeper it is nested; a
//!   sequence of the same boolean operator costs once, a switch between `&&` and `||` again.
//!   Ten flat `if`s and ten nested ones have the same cyclomatic count; the nested ones cost far
//!   more cognitively (1 + 2 + … + 10 = 55 against 10).
//!
//! A quality gate (pmat's role, `kernels::quality`) fails a change whose functions exceed a
//! threshold (often 10 cyclomatic, 15 cognitive).

use proc_macro2::Span;
use syn::visit::{self, Visit};
use syn::{BinOp, Expr, ExprIf, ImplItemFn, Item, ItemFn, ItemImpl, ItemMod, ItemTrait, TraitItemFn, Type};

use crate::{Error, Result};

// ANCHOR: types
/// One function's complexity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionComplexity {
    /// The function's name: the path of enclosing inline modules, enclosing functions and the
    /// `impl`'s type or trait, joined by `::` (see [`complexity_of_source`]).
    pub name: String,
    /// The line of the `fn` keyword (1-based): `span.start().line` of `sig.fn_token`.
    pub line: usize,
    /// McCabe's count.
    pub cyclomatic: u32,
    /// Campbell's count.
    pub cognitive: u32,
}

/// The name an `impl`'s type gives its methods: the last path segment without generics
/// (`impl<T> Stack<T>` and `impl Display for Stack<T>` both give `Stack`); references, pointers,
/// parentheses and groups name the type they hold; any other type is `_`. Given.
pub fn type_name(ty: &Type) -> String {
    match ty {
        Type::Path(p) => p.path.segments.last().map_or_else(|| "_".to_string(), |s| s.ident.to_string()),
        Type::Reference(r) => type_name(&r.elem),
        Type::Ptr(p) => type_name(&p.elem),
        Type::Paren(p) => type_name(&p.elem),
        Type::Group(g) => type_name(&g.elem),
        _ => "_".to_string(),
    }
}
// ANCHOR_END: types

// ANCHOR: complexity
/// Task c3w5.complexity (14 points): the cyclomatic and cognitive complexity of every function in
/// `source` (a whole Rust file), in the order of their `fn` keywords.
///
/// Parse with `syn::parse_file` (a file it cannot parse is [`Error::Parse`] with its message),
/// then walk it with a `syn::visit::Visit` that finds the functions and keeps the path of names,
/// and count each function's body with a second visitor that stops at nested items. The rules:
///
/// **Cyclomatic complexity** (McCabe 1976) counts linearly independent paths: `1 +` one for each
/// `if` (an `else if` is another `if`; `if let` too), `while` (and `while let`), `for`, `loop`,
/// each `match` arm after the first, each `&&` and `||`, and each `?`.
///
/// **Cognitive complexity** (G. Ann Campbell, *Cognitive Complexity*, SonarSource 2017/2023)
/// counts how hard the code is to read:
/// - `+1` for each `if`, `else if`, `else`, `match`, `for`, `while`, `loop`;
/// - plus the current nesting level for `if`, `match`, `for`, `while` and `loop` (not for `else
///   if` or `else`, which continue their `if`);
/// - nesting rises by one inside the bodies of `if`/`else if`/`else`, match arms, loops and
///   closures (a closure itself adds no increment);
/// - `+1` for each run of one kind of boolean operator in an expression (`a && b && c` is 1,
///   `a && b || c` is 2; a run is cut by parentheses and by the other operator);
/// - `+1` for `break` or `continue` to a label;
/// - `?` and recursion add nothing (a documented departure from the paper: `?` is Rust's early
///   return, not a branch a reader follows).
///
/// Closures count towards the function that holds them; a nested `fn` item is a function of its
/// own. Methods in `impl` and `trait` blocks (with a body) are functions, named `Type::method`.
///
/// **Where the rules above leave a choice** (the grader holds your counter to these):
/// - **Where the nesting does not rise.** An `if`'s condition, a `match`'s scrutinee, a `for`'s
///   iterated expression and a `while`'s condition are read at the construct's own level (only
///   bodies are nested). An `else if`'s condition and body sit at the level of the first `if` of
///   its chain (its body one deeper, as the first `if`'s body). A match arm's guard is inside the
///   arm (one deeper), like its body. Plain blocks `{ … }`, `unsafe { … }`, `async { … }`,
///   labelled blocks and `const { … }` add no increment and no nesting.
/// - **Boolean runs.** The operators of one chain of `&&`/`||` are taken in source order, looking
///   through nested `&&`/`||` but not through parentheses, `!`, calls or other operators: the
///   increment is the number of runs of equal neighbours (`a && b || c && d` is 3,
///   `a && (b && c)` is 2, `!(a || b) && c` is 2). `&&` in a `let` chain (`if let Some(x) = o && x > 0`)
///   is a boolean operator like any other (cyclomatic +1, a run for cognitive). Bitwise `&`, `|`
///   and the assignment forms count nothing.
/// - **Labels.** `break 'a` and `continue 'a` add `+1` each (cognitive only; cyclomatic counts
///   the loop, not its exits), whether `'a` names a loop or a labelled block; `break` and
///   `continue` without a label add nothing.
/// - **Not counted at all** (in neither measure): `let … else`, `return`, `match` guards themselves
///   (their `&&`/`||` count), `async`/`.await`, and the insides of macro invocations
///   (`println!`, `assert!(a && b)`, `vec![…]`: macro arguments are tokens, not parsed code).
/// - **Which functions.** Free `fn` items, `fn`s in `impl` blocks and trait methods with a default
///   body, wherever they appear (in modules, in other functions' bodies, in blocks). Trait
///   methods without a body and `extern` declarations are skipped. A nested `fn`, and the methods
///   of an `impl` inside a function body, are counted on their own only; their bodies add nothing
///   to the enclosing function. Closures, however deep, add to the enclosing function.
/// - **Names.** The path of enclosing inline modules, enclosing functions, and the `impl`'s type or
///   the trait, joined by `::`: `helper`, `tests::helper`, `Stack::push`, `outer::inner`
///   (a `fn inner` inside `fn outer`), `Shape::area` (a default method of `trait Shape`). The
///   `impl`'s type is its last path segment without generics (`impl<T> Stack<T>` and
///   `impl Display for Stack<T>` both give `Stack`); references, pointers and parentheses name
///   the type they hold (`impl Trait for &Foo` gives `Foo`); any other type (tuple, slice,
///   `dyn`, …) is named `_`.
/// - **Order.** Functions are listed in the order of their `fn` keyword in the file: an outer
///   function comes before the functions nested in it.
pub fn complexity_of_source(source: &str) -> Result<Vec<FunctionComplexity>> {
    todo!("c3w5.complexity")
}
// ANCHOR_END: complexity
