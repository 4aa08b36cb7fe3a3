//! Public-API comparison of a lab and its solution (parsed with `syn`).
//!
//! The stub generator only replaces marked regions, but a region placed around
//! a signature, a public field or a whole item would change what learners
//! program against. This module lists every public item of each source file
//! with bodies and docs removed, and [`diff`] reports what differs.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{Context, Result};
use quote::ToTokens;
use syn::{ImplItem, Item, Visibility};

/// The public surface of a crate's `src/`: one normalised line per public item.
pub fn public_api(crate_dir: &Path) -> Result<BTreeSet<String>> {
    let mut api = BTreeSet::new();
    let src = crate_dir.join("src");
    for entry in walkdir::WalkDir::new(&src).sort_by_file_name() {
        let entry = entry?;
        if !entry.file_type().is_file() || entry.path().extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let rel = entry.path().strip_prefix(&src)?.display().to_string();
        let text = std::fs::read_to_string(entry.path())?;
        let file = syn::parse_file(&text).with_context(|| format!("parsing {}", entry.path().display()))?;
        collect(&rel, &file.items, &mut api);
    }
    Ok(api)
}

fn is_pub(vis: &Visibility) -> bool {
    matches!(vis, Visibility::Public(_))
}

fn strip_docs(attrs: &mut Vec<syn::Attribute>) {
    attrs.retain(|a| !a.path().is_ident("doc"));
}

fn collect(file: &str, items: &[Item], api: &mut BTreeSet<String>) {
    for item in items {
        let mut item = item.clone();
        let line = match &mut item {
            Item::Fn(f) if is_pub(&f.vis) => {
                strip_docs(&mut f.attrs);
                Some(f.sig.to_token_stream().to_string())
            }
            Item::Struct(s) if is_pub(&s.vis) => {
                strip_docs(&mut s.attrs);
                let mut fields = Vec::new();
                for field in s.fields.iter_mut() {
                    if is_pub(&field.vis) {
                        strip_docs(&mut field.attrs);
                        fields.push(field.to_token_stream().to_string());
                    }
                }
                let attrs: Vec<String> = s.attrs.iter().map(|a| a.to_token_stream().to_string()).collect();
                Some(format!(
                    "{} struct {}{} {{ {} }}",
                    attrs.join(" "),
                    s.ident,
                    s.generics.to_token_stream(),
                    fields.join(", ")
                ))
            }
            Item::Enum(e) if is_pub(&e.vis) => {
                strip_docs(&mut e.attrs);
                for v in e.variants.iter_mut() {
                    strip_docs(&mut v.attrs);
                }
                Some(e.to_token_stream().to_string())
            }
            Item::Trait(t) if is_pub(&t.vis) => {
                strip_docs(&mut t.attrs);
                Some(format!("trait {} {}", t.ident, t.items.len()))
            }
            Item::Type(t) if is_pub(&t.vis) => {
                strip_docs(&mut t.attrs);
                Some(t.to_token_stream().to_string())
            }
            Item::Const(c) if is_pub(&c.vis) => Some(format!("const {}: {}", c.ident, c.ty.to_token_stream())),
            Item::Static(s) if is_pub(&s.vis) => Some(format!("static {}: {}", s.ident, s.ty.to_token_stream())),
            Item::Use(u) if is_pub(&u.vis) => Some(u.tree.to_token_stream().to_string()),
            Item::Mod(m) if is_pub(&m.vis) => {
                if let Some((_, inner)) = &m.content {
                    collect(&format!("{file}::{}", m.ident), inner, api);
                }
                Some(format!("mod {}", m.ident))
            }
            Item::Impl(i) => {
                let header = format!(
                    "impl{} {}{}",
                    i.generics.to_token_stream(),
                    i.trait_.as_ref().map(|(_, p, _)| format!("{} for ", p.to_token_stream())).unwrap_or_default(),
                    i.self_ty.to_token_stream()
                );
                for member in &i.items {
                    if let ImplItem::Fn(f) = member
                        && (i.trait_.is_some() || is_pub(&f.vis))
                    {
                        api.insert(format!("{file}: {header} :: {}", f.sig.to_token_stream()));
                    }
                }
                None
            }
            _ => None,
        };
        if let Some(line) = line {
            api.insert(format!("{file}: {line}"));
        }
    }
}

/// Lines present in one API and not the other, marked `-` (solution only) or `+` (lab only).
pub fn diff(solution: &BTreeSet<String>, lab: &BTreeSet<String>) -> Vec<String> {
    let mut out: Vec<String> = solution.difference(lab).map(|l| format!("- {l}")).collect();
    out.extend(lab.difference(solution).map(|l| format!("+ {l}")));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_of(src: &str) -> BTreeSet<String> {
        let mut api = BTreeSet::new();
        collect("lib.rs", &syn::parse_file(src).unwrap().items, &mut api);
        api
    }

    #[test]
    fn bodies_and_docs_do_not_matter_but_signatures_do() {
        let solution = api_of(
            "/// Adds.\npub fn add(a: u32) -> u32 { a + 1 }\nfn private() {}\npub struct S { pub x: u32, hidden: Vec<u8> }",
        );
        let stub = api_of("pub fn add(a: u32) -> u32 { todo!() }\npub struct S { pub x: u32 }");
        assert!(diff(&solution, &stub).is_empty(), "{:?}", diff(&solution, &stub));
        let changed = api_of("pub fn add(a: u64) -> u32 { todo!() }\npub struct S { pub x: u32 }");
        assert_eq!(diff(&solution, &changed).len(), 2);
    }
}
