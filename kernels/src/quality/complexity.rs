//! Cyclomatic and cognitive complexity of every function of a Rust source file, parsed with `syn`.
//!
//! **Cyclomatic complexity** (McCabe 1976) counts linearly independent paths: `1 +` one for each
//! `if` (an `else if` is another `if`; `if let` too), `while` (and `while let`), `for`, `loop`,
//! each `match` arm after the first, each `&&` and `||`, and each `?`.
//!
//! **Cognitive complexity** (G. Ann Campbell, *Cognitive Complexity*, SonarSource 2017/2023)
//! counts how hard the code is to read:
//! - `+1` for each `if`, `else if`, `else`, `match`, `for`, `while`, `loop`;
//! - plus the current nesting level for `if`, `match`, `for`, `while` and `loop` (not for `else
//!   if` or `else`, which continue their `if`);
//! - nesting rises by one inside the bodies of `if`/`else if`/`else`, match arms, loops and
//!   closures (a closure itself adds no increment);
//! - `+1` for each run of one kind of boolean operator in an expression (`a && b && c` is 1,
//!   `a && b || c` is 2; a run is cut by parentheses and by the other operator);
//! - `+1` for `break` or `continue` to a label;
//! - `?` and recursion add nothing (a documented departure from the paper: `?` is Rust's early
//!   return, not a branch a reader follows).
//!
//! Closures count towards the function that holds them; a nested `fn` item is a function of its
//! own. Methods in `impl` and `trait` blocks (with a body) are functions, named `Type::method`.
//!
//! ## Decisions where the rules above leave a choice
//!
//! These are part of the contract (the lab's tests hold a learner's counter to them):
//! - **Where the nesting does not rise.** An `if`'s condition, a `match`'s scrutinee, a `for`'s
//!   iterated expression and a `while`'s condition are read at the construct's own level (only
//!   bodies are nested). An `else if`'s condition and body sit at the level of the first `if` of
//!   its chain (its body one deeper, as the first `if`'s body). A match arm's guard is inside the
//!   arm (one deeper), like its body. Plain blocks `{ … }`, `unsafe { … }`, `async { … }`,
//!   labelled blocks and `const { … }` add no increment and no nesting.
//! - **Boolean runs.** The operators of one chain of `&&`/`||` are taken in source order, looking
//!   through nested `&&`/`||` but not through parentheses, `!`, calls or other operators: the
//!   increment is the number of runs of equal neighbours (`a && b || c && d` is 3,
//!   `a && (b && c)` is 2, `!(a || b) && c` is 2). `&&` in a `let` chain (`if let Some(x) = o && x > 0`)
//!   is a boolean operator like any other (cyclomatic +1, a run for cognitive). Bitwise `&`, `|`
//!   and the assignment forms count nothing.
//! - **Labels.** `break 'a` and `continue 'a` add `+1` each (cognitive only; cyclomatic counts
//!   the loop, not its exits), whether `'a` names a loop or a labelled block; `break` and
//!   `continue` without a label add nothing.
//! - **Not counted at all** (in neither measure): `let … else`, `return`, `match` guards themselves
//!   (their `&&`/`||` count), `async`/`.await`, and the insides of macro invocations
//!   (`println!`, `assert!(a && b)`, `vec![…]`: macro arguments are tokens, not parsed code).
//! - **Which functions.** Free `fn` items, `fn`s in `impl` blocks and trait methods with a default
//!   body, wherever they appear (in modules, in other functions' bodies, in blocks). Trait
//!   methods without a body and `extern` declarations are skipped. A nested `fn`, and the methods
//!   of an `impl` inside a function body, are counted on their own only; their bodies add nothing
//!   to the enclosing function. Closures, however deep, add to the enclosing function.
//! - **Names.** The path of enclosing inline modules, enclosing functions, and the `impl`'s type or
//!   the trait, joined by `::`: `helper`, `tests::helper`, `Stack::push`, `outer::inner`
//!   (a `fn inner` inside `fn outer`), `Shape::area` (a default method of `trait Shape`). The
//!   `impl`'s type is its last path segment without generics (`impl<T> Stack<T>` and
//!   `impl Display for Stack<T>` both give `Stack`); references, pointers and parentheses name
//!   the type they hold (`impl Trait for &Foo` gives `Foo`); any other type (tuple, slice,
//!   `dyn`, …) is named `_`.
//! - **Order.** Functions are listed in the order of their `fn` keyword in the file: an outer
//!   function comes before the functions nested in it.
//! - **Errors.** A file `syn` cannot parse is an [`Error::QualityParse`](crate::Error::QualityParse)
//!   naming the line and column of the first error (the file is `<source>` here; the crate-level
//!   scan names the real file).

use proc_macro2::Span;
use syn::visit::{self, Visit};
use syn::{BinOp, Expr, ExprIf, ImplItemFn, Item, ItemFn, ItemImpl, ItemMod, ItemTrait, TraitItemFn, Type};

use crate::{Error, Result};

/// One function's complexity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionComplexity {
    /// The function's name: `name`, `Type::method` in an `impl`, `Trait::method` in a trait, with
    /// the enclosing inline modules first (`tests::helper`).
    pub name: String,
    /// The line of the `fn` keyword (1-based).
    pub line: usize,
    /// McCabe's count (see the module docs).
    pub cyclomatic: u32,
    /// Campbell's count (see the module docs).
    pub cognitive: u32,
}

/// The complexity of every function in `source` (a whole Rust file), in source order.
pub fn complexity_of_source(source: &str) -> Result<Vec<FunctionComplexity>> {
    let file = parse_file("<source>", source)?;
    Ok(complexity_of_file(&file))
}

/// The complexity of every function of an already parsed file, in source order.
pub fn complexity_of_file(file: &syn::File) -> Vec<FunctionComplexity> {
    let mut walker = Walker { path: Vec::new(), out: Vec::new() };
    walker.visit_file(file);
    walker.out
}

/// Parses `source` with `syn`, naming `file` and the first error's line and column on failure.
pub fn parse_file(file: &str, source: &str) -> Result<syn::File> {
    syn::parse_file(source).map_err(|e| {
        let start = e.span().start();
        Error::QualityParse {
            file: file.to_string(),
            line: start.line,
            column: start.column + 1,
            message: e.to_string(),
        }
    })
}

/// Finds the functions and keeps the path of names that encloses them.
struct Walker {
    path: Vec<String>,
    out: Vec<FunctionComplexity>,
}

impl Walker {
    fn function(&mut self, ident: &syn::Ident, fn_span: Span, block: &syn::Block) {
        let mut counter = Counter { cyclomatic: 1, cognitive: 0, nesting: 0 };
        counter.visit_block(block);
        let name =
            self.path.iter().map(String::as_str).chain([ident.to_string().as_str()]).collect::<Vec<_>>().join("::");
        self.out.push(FunctionComplexity {
            name,
            line: fn_span.start().line,
            cyclomatic: counter.cyclomatic,
            cognitive: counter.cognitive,
        });
        // Nested items (fns, impls, modules in blocks) are functions of their own.
        self.path.push(ident.to_string());
        visit::visit_block(self, block);
        self.path.pop();
    }
}

impl<'ast> Visit<'ast> for Walker {
    fn visit_item_fn(&mut self, f: &'ast ItemFn) {
        self.function(&f.sig.ident, f.sig.fn_token.span, &f.block);
    }

    fn visit_impl_item_fn(&mut self, f: &'ast ImplItemFn) {
        self.function(&f.sig.ident, f.sig.fn_token.span, &f.block);
    }

    fn visit_trait_item_fn(&mut self, f: &'ast TraitItemFn) {
        if let Some(block) = &f.default {
            self.function(&f.sig.ident, f.sig.fn_token.span, block);
        }
    }

    fn visit_item_mod(&mut self, m: &'ast ItemMod) {
        self.path.push(m.ident.to_string());
        visit::visit_item_mod(self, m);
        self.path.pop();
    }

    fn visit_item_impl(&mut self, i: &'ast ItemImpl) {
        self.path.push(type_name(&i.self_ty));
        visit::visit_item_impl(self, i);
        self.path.pop();
    }

    fn visit_item_trait(&mut self, t: &'ast ItemTrait) {
        self.path.push(t.ident.to_string());
        visit::visit_item_trait(self, t);
        self.path.pop();
    }
}

/// The name an `impl`'s type gives its methods (see the module docs).
fn type_name(ty: &Type) -> String {
    match ty {
        Type::Path(p) => p.path.segments.last().map(|s| s.ident.to_string()).unwrap_or_else(|| "_".to_string()),
        Type::Reference(r) => type_name(&r.elem),
        Type::Ptr(p) => type_name(&p.elem),
        Type::Paren(p) => type_name(&p.elem),
        Type::Group(g) => type_name(&g.elem),
        _ => "_".to_string(),
    }
}

/// Counts one function body; stops at nested items.
struct Counter {
    cyclomatic: u32,
    cognitive: u32,
    nesting: u32,
}

impl Counter {
    /// Visits `f` one nesting level deeper.
    fn nested(&mut self, f: impl FnOnce(&mut Self)) {
        self.nesting += 1;
        f(self);
        self.nesting -= 1;
    }

    /// An `if` (or an `else if` when `chained`), its branches, and the rest of its chain.
    fn if_chain(&mut self, i: &ExprIf, chained: bool) {
        self.cyclomatic += 1;
        self.cognitive += if chained { 1 } else { 1 + self.nesting };
        self.visit_expr(&i.cond);
        self.nested(|c| c.visit_block(&i.then_branch));
        match i.else_branch.as_ref().map(|(_, e)| e.as_ref()) {
            Some(Expr::If(next)) => self.if_chain(next, true),
            Some(other) => {
                self.cognitive += 1;
                self.nested(|c| c.visit_expr(other));
            }
            None => {}
        }
    }

    /// A chain of `&&`/`||`: counts its operators and runs, then visits its operands.
    fn boolean_chain(&mut self, e: &Expr) {
        let mut ops = Vec::new();
        let mut operands = Vec::new();
        flatten_boolean(e, &mut ops, &mut operands);
        self.cyclomatic += ops.len() as u32;
        let runs = ops.windows(2).filter(|w| w[0] != w[1]).count() + usize::from(!ops.is_empty());
        self.cognitive += runs as u32;
        for operand in operands {
            self.visit_expr(operand);
        }
    }
}

/// Is `op` a boolean operator: `Some(true)` for `&&`, `Some(false)` for `||`.
fn boolean_op(op: &BinOp) -> Option<bool> {
    match op {
        BinOp::And(_) => Some(true),
        BinOp::Or(_) => Some(false),
        _ => None,
    }
}

/// The operators of a `&&`/`||` chain in source order, and its operands (not looking through
/// parentheses).
fn flatten_boolean<'a>(e: &'a Expr, ops: &mut Vec<bool>, operands: &mut Vec<&'a Expr>) {
    if let Expr::Binary(b) = e
        && let Some(op) = boolean_op(&b.op)
    {
        flatten_boolean(&b.left, ops, operands);
        ops.push(op);
        flatten_boolean(&b.right, ops, operands);
    } else {
        operands.push(e);
    }
}

impl<'ast> Visit<'ast> for Counter {
    fn visit_item(&mut self, _: &'ast Item) {
        // A nested item is counted on its own (see `Walker`).
    }

    fn visit_expr(&mut self, e: &'ast Expr) {
        match e {
            Expr::If(i) => self.if_chain(i, false),
            Expr::Match(m) => {
                self.cyclomatic += m.arms.len().saturating_sub(1) as u32;
                self.cognitive += 1 + self.nesting;
                self.visit_expr(&m.expr);
                self.nested(|c| {
                    for arm in &m.arms {
                        c.visit_arm(arm);
                    }
                });
            }
            Expr::ForLoop(f) => {
                self.cyclomatic += 1;
                self.cognitive += 1 + self.nesting;
                self.visit_pat(&f.pat);
                self.visit_expr(&f.expr);
                self.nested(|c| c.visit_block(&f.body));
            }
            Expr::While(w) => {
                self.cyclomatic += 1;
                self.cognitive += 1 + self.nesting;
                self.visit_expr(&w.cond);
                self.nested(|c| c.visit_block(&w.body));
            }
            Expr::Loop(l) => {
                self.cyclomatic += 1;
                self.cognitive += 1 + self.nesting;
                self.nested(|c| c.visit_block(&l.body));
            }
            Expr::Closure(cl) => self.nested(|c| c.visit_expr(&cl.body)),
            Expr::Binary(b) if boolean_op(&b.op).is_some() => self.boolean_chain(e),
            Expr::Try(t) => {
                self.cyclomatic += 1;
                self.visit_expr(&t.expr);
            }
            Expr::Break(b) => {
                if b.label.is_some() {
                    self.cognitive += 1;
                }
                if let Some(value) = &b.expr {
                    self.visit_expr(value);
                }
            }
            Expr::Continue(c) => {
                if c.label.is_some() {
                    self.cognitive += 1;
                }
            }
            Expr::Macro(_) => {}
            _ => visit::visit_expr(self, e),
        }
    }

    fn visit_macro(&mut self, _: &'ast syn::Macro) {
        // Statement macros (`println!(…);`) too: their arguments are tokens, not parsed code.
    }
}
