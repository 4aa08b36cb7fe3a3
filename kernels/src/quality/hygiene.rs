//! Source hygiene found with `syn`: public items without docs, `unsafe` blocks without a
//! `// SAFETY:` comment, and `todo!()` / `unimplemented!()` left in the code.
//!
//! Rules (syntactic, per file):
//! - **Public items**: items declared `pub` (not `pub(crate)` or narrower): `fn`, `struct`,
//!   `enum`, `union`, `trait`, `type`, `const`, `static`, inline `mod { … }`, and `pub fn` in
//!   inherent `impl` blocks. An item is documented when it has a `///` or `#[doc = …]`
//!   attribute (an inline module also by `//!` inside it). `pub mod name;` declarations, `pub use`
//!   re-exports, fields, variants and trait-impl methods are not counted.
//! - **`unsafe` blocks**: an `unsafe { … }` expression is justified when a comment containing
//!   `SAFETY:` is on its own line before the `unsafe` keyword, or in the run of `//` comment lines
//!   just above that line or just above the first line of the statement that holds it (as clippy's
//!   `undocumented_unsafe_blocks` accepts); attribute lines (`#[…]`) between the comment and the
//!   block are skipped. A block inside an `unsafe fn` is covered by the function's own contract
//!   (its caller writes the `SAFETY:`) and is not counted. Blocks inside macro arguments are not seen.
//! - **`todo!()` / `unimplemented!()`**: every invocation `syn` sees (not those inside other
//!   macros' arguments).

use serde::{Deserialize, Serialize};
use syn::visit::{self, Visit};
use syn::{Attribute, Visibility};

/// A finding at a line of a file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub file: String,
    pub line: usize,
    /// What was found (`fn parse`, `unsafe block`, `todo!()`).
    pub what: String,
}

/// The hygiene of one or more files.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hygiene {
    /// Public items counted (documented or not).
    pub public_items: usize,
    pub undocumented: Vec<Finding>,
    pub unsafe_blocks: usize,
    pub unsafe_without_safety: Vec<Finding>,
    pub todos: Vec<Finding>,
}

impl Hygiene {
    /// Adds another file's findings.
    pub fn extend(&mut self, other: Hygiene) {
        self.public_items += other.public_items;
        self.undocumented.extend(other.undocumented);
        self.unsafe_blocks += other.unsafe_blocks;
        self.unsafe_without_safety.extend(other.unsafe_without_safety);
        self.todos.extend(other.todos);
    }
}

/// The hygiene findings of one parsed file (`source` is its text, for comments).
pub fn hygiene_of_file(file_name: &str, source: &str, file: &syn::File) -> Hygiene {
    let lines: Vec<&str> = source.lines().collect();
    let mut v =
        Visitor { file: file_name, lines: &lines, stmt_line: None, in_unsafe_fn: false, out: Hygiene::default() };
    v.visit_file(file);
    v.out
}

struct Visitor<'a> {
    file: &'a str,
    lines: &'a [&'a str],
    /// The first line of the innermost statement being visited.
    stmt_line: Option<usize>,
    /// Inside the body of an `unsafe fn`.
    in_unsafe_fn: bool,
    out: Hygiene,
}

fn is_pub(vis: &Visibility) -> bool {
    matches!(vis, Visibility::Public(_))
}

fn has_doc(attrs: &[Attribute]) -> bool {
    attrs.iter().any(|a| a.path().is_ident("doc"))
}

impl Visitor<'_> {
    fn item(&mut self, vis: &Visibility, attrs: &[Attribute], kind: &str, ident: &syn::Ident) {
        if !is_pub(vis) {
            return;
        }
        self.out.public_items += 1;
        if !has_doc(attrs) {
            self.out.undocumented.push(Finding {
                file: self.file.to_string(),
                line: ident.span().start().line,
                what: format!("{kind} {ident}"),
            });
        }
    }

    /// Is there a `SAFETY:` comment for an `unsafe` at `line` (1-based)?
    fn justified(&self, line: usize, column: usize) -> bool {
        let text = |l: usize| self.lines.get(l.wrapping_sub(1)).copied().unwrap_or("");
        let before = text(line).chars().take(column).collect::<String>();
        if before.contains("//") && before.contains("SAFETY:") {
            return true;
        }
        let above = |start: usize| {
            let mut l = start;
            while l > 1 {
                l -= 1;
                let t = text(l).trim_start();
                if t.starts_with("#[") {
                    continue;
                }
                if !t.starts_with("//") {
                    return false;
                }
                if t.contains("SAFETY:") {
                    return true;
                }
            }
            false
        };
        above(line) || self.stmt_line.is_some_and(|s| s < line && above(s))
    }
}

impl<'ast> Visit<'ast> for Visitor<'_> {
    fn visit_item_fn(&mut self, i: &'ast syn::ItemFn) {
        self.item(&i.vis, &i.attrs, "fn", &i.sig.ident);
        let saved = std::mem::replace(&mut self.in_unsafe_fn, i.sig.unsafety.is_some());
        visit::visit_item_fn(self, i);
        self.in_unsafe_fn = saved;
    }
    fn visit_impl_item_fn(&mut self, i: &'ast syn::ImplItemFn) {
        let saved = std::mem::replace(&mut self.in_unsafe_fn, i.sig.unsafety.is_some());
        visit::visit_impl_item_fn(self, i);
        self.in_unsafe_fn = saved;
    }
    fn visit_trait_item_fn(&mut self, i: &'ast syn::TraitItemFn) {
        let saved = std::mem::replace(&mut self.in_unsafe_fn, i.sig.unsafety.is_some());
        visit::visit_trait_item_fn(self, i);
        self.in_unsafe_fn = saved;
    }
    fn visit_item_struct(&mut self, i: &'ast syn::ItemStruct) {
        self.item(&i.vis, &i.attrs, "struct", &i.ident);
        visit::visit_item_struct(self, i);
    }
    fn visit_item_enum(&mut self, i: &'ast syn::ItemEnum) {
        self.item(&i.vis, &i.attrs, "enum", &i.ident);
        visit::visit_item_enum(self, i);
    }
    fn visit_item_union(&mut self, i: &'ast syn::ItemUnion) {
        self.item(&i.vis, &i.attrs, "union", &i.ident);
        visit::visit_item_union(self, i);
    }
    fn visit_item_trait(&mut self, i: &'ast syn::ItemTrait) {
        self.item(&i.vis, &i.attrs, "trait", &i.ident);
        visit::visit_item_trait(self, i);
    }
    fn visit_item_type(&mut self, i: &'ast syn::ItemType) {
        self.item(&i.vis, &i.attrs, "type", &i.ident);
        visit::visit_item_type(self, i);
    }
    fn visit_item_const(&mut self, i: &'ast syn::ItemConst) {
        self.item(&i.vis, &i.attrs, "const", &i.ident);
        visit::visit_item_const(self, i);
    }
    fn visit_item_static(&mut self, i: &'ast syn::ItemStatic) {
        self.item(&i.vis, &i.attrs, "static", &i.ident);
        visit::visit_item_static(self, i);
    }
    fn visit_item_mod(&mut self, i: &'ast syn::ItemMod) {
        if i.content.is_some() {
            // Inner `//!` docs of an inline module are among its attributes too.
            self.item(&i.vis, &i.attrs, "mod", &i.ident);
        }
        visit::visit_item_mod(self, i);
    }
    fn visit_item_impl(&mut self, i: &'ast syn::ItemImpl) {
        if i.trait_.is_none() {
            for item in &i.items {
                if let syn::ImplItem::Fn(f) = item {
                    self.item(&f.vis, &f.attrs, "fn", &f.sig.ident);
                }
            }
        }
        visit::visit_item_impl(self, i);
    }
    fn visit_stmt(&mut self, s: &'ast syn::Stmt) {
        let saved = self.stmt_line;
        self.stmt_line = Some(stmt_first_line(s));
        visit::visit_stmt(self, s);
        self.stmt_line = saved;
    }
    fn visit_expr_unsafe(&mut self, e: &'ast syn::ExprUnsafe) {
        let start = e.unsafe_token.span.start();
        self.out.unsafe_blocks += 1;
        if !self.in_unsafe_fn && !self.justified(start.line, start.column) {
            self.out.unsafe_without_safety.push(Finding {
                file: self.file.to_string(),
                line: start.line,
                what: "unsafe block without a `// SAFETY:` comment".to_string(),
            });
        }
        visit::visit_expr_unsafe(self, e);
    }
    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        if let Some(last) = m.path.segments.last()
            && (last.ident == "todo" || last.ident == "unimplemented")
        {
            self.out.todos.push(Finding {
                file: self.file.to_string(),
                line: last.ident.span().start().line,
                what: format!("{}!()", last.ident),
            });
        }
        visit::visit_macro(self, m);
    }
}

/// The first line of a statement (its first attribute or token).
fn stmt_first_line(s: &syn::Stmt) -> usize {
    use syn::spanned::Spanned;
    s.span().start().line
}
