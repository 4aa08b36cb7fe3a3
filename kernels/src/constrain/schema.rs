//! The schema check before compiling: every keyword of every subschema must be one llguidance enforces or a
//! pure annotation; anything else (a keyword it does not implement, or one no draft defines: a typo) is refused
//! with [`Error::UnsupportedSchema`] naming it. llguidance itself refuses the unimplemented keywords of the
//! draft it detects, but treats words no draft defines as annotations, so `"maxLenght": 3` would pass
//! unenforced; this check closes that gap. Keyword lists: JSON Schema 2020-12 Core and Validation
//! (<https://json-schema.org/draft/2020-12>) and llguidance 1.9's `json/schema.rs`.

use serde_json::Value;

use crate::{Error, Result};

/// Keywords llguidance 1.9 compiles into the grammar (its `IMPLEMENTED` list).
const ENFORCED: &[&str] = &[
    "anyOf",
    "oneOf",
    "allOf",
    "$ref",
    "const",
    "enum",
    "type",
    "items",
    "additionalItems",
    "prefixItems",
    "minItems",
    "maxItems",
    "properties",
    "additionalProperties",
    "patternProperties",
    "required",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "pattern",
    "format",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
];

/// Keywords that say nothing about which documents are valid (llguidance's `META_AND_ANNOTATIONS`, plus
/// 2019-09's `deprecated`).
const ANNOTATIONS: &[&str] = &[
    "$anchor",
    "$defs",
    "definitions",
    "$schema",
    "$id",
    "id",
    "$comment",
    "title",
    "description",
    "default",
    "readOnly",
    "writeOnly",
    "examples",
    "contentMediaType",
    "contentEncoding",
    "deprecated",
];

/// Keywords of JSON Schema (drafts 4 to 2020-12) that constrain documents but that llguidance does not enforce.
const NOT_ENFORCED: &[&str] = &[
    "not",
    "if",
    "then",
    "else",
    "contains",
    "minContains",
    "maxContains",
    "uniqueItems",
    "propertyNames",
    "dependentSchemas",
    "dependentRequired",
    "dependencies",
    "unevaluatedProperties",
    "unevaluatedItems",
    "$dynamicRef",
    "$dynamicAnchor",
    "$recursiveRef",
    "$recursiveAnchor",
    "$vocabulary",
    "contentSchema",
];

/// Checks that constrained decoding would enforce everything `schema` says.
///
/// # Errors
/// [`Error::UnsupportedSchema`] naming the first keyword (in document order) that would not be enforced, with
/// its JSON pointer; [`Error::Grammar`] for a schema that is neither an object nor a boolean.
pub fn check_schema(schema: &Value) -> Result<()> {
    walk(schema, "")
}

fn walk(schema: &Value, at: &str) -> Result<()> {
    let map = match schema {
        Value::Bool(_) => return Ok(()),
        Value::Object(map) => map,
        other => {
            let shown = other.to_string();
            let shown: String = shown.chars().take(60).collect();
            return Err(Error::Grammar(format!("schema at `{}` is not an object or a boolean: {shown}", pointer(at))));
        }
    };
    for (key, value) in map {
        let k = key.as_str();
        if NOT_ENFORCED.contains(&k) {
            return Err(Error::UnsupportedSchema {
                keyword: k.to_string(),
                reason: format!("at `{}`: constrained decoding does not enforce it", pointer(at)),
            });
        }
        if !ENFORCED.contains(&k) && !ANNOTATIONS.contains(&k) {
            return Err(Error::UnsupportedSchema {
                keyword: k.to_string(),
                reason: format!("at `{}`: not a JSON Schema keyword constrained decoding knows (a typo?)", pointer(at)),
            });
        }
        let here = format!("{at}/{}", escape(k));
        match k {
            "properties" | "patternProperties" | "$defs" | "definitions" => {
                let Value::Object(children) = value else {
                    return Err(Error::Grammar(format!("`{}` must be an object", pointer(&here))));
                };
                for (name, child) in children {
                    walk(child, &format!("{here}/{}", escape(name)))?;
                }
            }
            "additionalProperties" | "additionalItems" => walk(value, &here)?,
            "items" => match value {
                // Draft 4 to 2019-09 tuple form.
                Value::Array(items) => {
                    for (i, child) in items.iter().enumerate() {
                        walk(child, &format!("{here}/{i}"))?;
                    }
                }
                other => walk(other, &here)?,
            },
            "anyOf" | "oneOf" | "allOf" | "prefixItems" => {
                let Value::Array(items) = value else {
                    return Err(Error::Grammar(format!("`{}` must be an array of schemas", pointer(&here))));
                };
                for (i, child) in items.iter().enumerate() {
                    walk(child, &format!("{here}/{i}"))?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

fn pointer(at: &str) -> &str {
    if at.is_empty() { "/" } else { at }
}
