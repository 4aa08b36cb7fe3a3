//! The registry's canonical JSON (the bytes that are hashed and signed), in the spirit of RFC 8785.
//!
//! The rule, for the small value model below:
//! - objects: keys sorted by their UTF-8 bytes, each key once; arrays keep their order;
//! - no whitespace anywhere (separators are `,` and `:`);
//! - strings: UTF-8 as is, except `"` → `\"`, `\` → `\\`, `\b \f \n \r \t` in short form and the other
//!   control characters below U+0020 as `\u00xx` (lowercase hex);
//! - unsigned integers (`u64`) in plain decimal, no sign, no leading zeros, no fraction or exponent;
//! - floats (`f64`, finite only) in Rust's shortest round-trip form (`{:?}`): always with a `.` or an
//!   exponent (`3.0`, `0.1`, `1e-7`, `1.5e300`), so a float never reads back as an integer and
//!   every float reads back bit-identical;
//! - `null`, `true`, `false` as usual.
//!
//! Parsing is strict: a document is accepted only when re-writing what was read reproduces its bytes
//! exactly, so each value has exactly one accepted byte string.

use std::collections::BTreeMap;

/// A JSON value of the canonical form.
#[derive(Debug, Clone, PartialEq)]
pub enum CValue {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A non-negative integer.
    UInt(u64),
    /// A finite float.
    Float(f64),
    /// A string.
    Str(String),
    /// An array.
    Arr(Vec<CValue>),
    /// An object (keys in byte order).
    Obj(BTreeMap<String, CValue>),
}

impl CValue {
    /// The canonical bytes of this value; `None` when it holds a non-finite float.
    pub fn to_bytes(&self) -> Option<Vec<u8>> {
        let mut out = String::new();
        write(self, &mut out)?;
        Some(out.into_bytes())
    }

    /// Parses canonical bytes; `Err` says why they are not canonical JSON of this model.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let v: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
        let c = from_json(&v)?;
        match c.to_bytes() {
            Some(b) if b == bytes => Ok(c),
            _ => Err("not in canonical form (key order, whitespace, escapes or number form)".into()),
        }
    }

    /// The object's map, if this is an object.
    pub fn as_obj(&self) -> Option<&BTreeMap<String, CValue>> {
        match self {
            Self::Obj(m) => Some(m),
            _ => None,
        }
    }
}

fn from_json(v: &serde_json::Value) -> Result<CValue, String> {
    use serde_json::Value as J;
    Ok(match v {
        J::Null => CValue::Null,
        J::Bool(b) => CValue::Bool(*b),
        J::Number(n) => {
            if let Some(u) = n.as_u64() {
                CValue::UInt(u)
            } else if n.is_i64() {
                return Err(format!("negative integer {n} (integers are unsigned)"));
            } else {
                CValue::Float(n.as_f64().ok_or_else(|| format!("number {n} out of range"))?)
            }
        }
        J::String(s) => CValue::Str(s.clone()),
        J::Array(a) => CValue::Arr(a.iter().map(from_json).collect::<Result<_, _>>()?),
        J::Object(m) => {
            CValue::Obj(m.iter().map(|(k, v)| Ok((k.clone(), from_json(v)?))).collect::<Result<_, String>>()?)
        }
    })
}

fn write(v: &CValue, out: &mut String) -> Option<()> {
    match v {
        CValue::Null => out.push_str("null"),
        CValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        CValue::UInt(u) => out.push_str(&u.to_string()),
        CValue::Float(f) => {
            if !f.is_finite() {
                return None;
            }
            out.push_str(&format!("{f:?}"));
        }
        CValue::Str(s) => write_str(s, out),
        CValue::Arr(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(x, out)?;
            }
            out.push(']');
        }
        CValue::Obj(m) => {
            out.push('{');
            for (i, (k, x)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_str(k, out);
                out.push(':');
                write(x, out)?;
            }
            out.push('}');
        }
    }
    Some(())
}

fn write_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}
