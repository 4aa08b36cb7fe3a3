//! A JSON-schema subset compiled to a pushdown automaton over bytes: the language of the JSON
//! documents a schema allows, read one byte at a time, with the set of bytes allowed next.
//!
//! Constrained decoding (Willard & Louf, "Efficient Guided Generation for Large Language
//! Models", 2023; llguidance) needs one question answered at every step: *can the text so far
//! still be completed into a document of the schema's language?* A byte-level automaton answers
//! it for one more byte; the token mask ([`crate::mask`]) asks it for whole tokens.
//!
//! The subset: objects whose properties are all required and appear in the schema's order
//! (`additionalProperties: false`), strings, integers, booleans, enums of strings, and arrays
//! of any length, nested freely. The documents are spaced the way Python's `json.dumps` spaces
//! them, `, ` between items and `: ` after keys and no other whitespace, and their strings are
//! written the way llguidance writes them (see [`JsonAutomaton`]). That is exactly the language
//! of `kernels::constrain` for the same schema (`kernels::constrain::json_options`: llguidance
//! with `whitespace_flexible: false`, `item_separator: ", "`, `key_separator: ": "`).

use std::sync::Arc;

use serde_json::{Value, json};

use crate::{Error, Result};

/// A schema of the lab's subset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schema {
    /// `{"type": "string"}`
    String,
    /// `{"type": "integer"}` (no bounds)
    Integer,
    /// `{"type": "boolean"}`
    Boolean,
    /// `{"enum": ["a", "b", …]}`: one of these strings (at least one; no control characters, which
    /// JSON can spell in several ways: `\t` or `\u0009`).
    Enum(Vec<String>),
    /// `{"type": "array", "items": …}`: any number of items.
    Array(Box<Schema>),
    /// `{"type": "object", "properties": {…}, "required": [all of them], "additionalProperties": false}`,
    /// the properties in this order.
    Object(Vec<(String, Schema)>),
}

impl Schema {
    /// The JSON schema document (properties in order, every one required, no others allowed).
    pub fn to_json(&self) -> Value {
        match self {
            Schema::String => json!({"type": "string"}),
            Schema::Integer => json!({"type": "integer"}),
            Schema::Boolean => json!({"type": "boolean"}),
            Schema::Enum(values) => json!({"enum": values}),
            Schema::Array(items) => json!({"type": "array", "items": items.to_json()}),
            Schema::Object(fields) => {
                let mut properties = serde_json::Map::new();
                for (name, schema) in fields {
                    properties.insert(name.clone(), schema.to_json());
                }
                let required: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
                json!({"type": "object", "properties": properties, "required": required, "additionalProperties": false})
            }
        }
    }

    /// Reads a JSON schema of the subset.
    ///
    /// # Errors
    /// [`Error::UnsupportedSchema`] naming what is outside the subset: another type or keyword, an
    /// optional property, an empty or non-string enum.
    pub fn from_json(value: &Value) -> Result<Schema> {
        let unsupported = |what: String| Err(Error::UnsupportedSchema(what));
        let Some(map) = value.as_object() else {
            return unsupported(format!("a schema must be an object, got {value}"));
        };
        const KNOWN: &[&str] =
            &["type", "properties", "required", "additionalProperties", "items", "enum", "title", "description"];
        if let Some(key) = map.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return unsupported(format!("keyword `{key}`"));
        }
        if let Some(values) = map.get("enum") {
            let strings: Option<Vec<String>> =
                values.as_array().map(|a| a.iter().map(|v| v.as_str().map(str::to_string)).collect()).unwrap_or(None);
            if let Some(value) =
                strings.iter().flatten().find(|s| s.chars().any(|c| c.is_control() && (c as u32) < 0x80))
            {
                return unsupported(format!(
                    "enum value {value:?} holds a control character (it has several JSON spellings)"
                ));
            }
            return match strings {
                Some(s) if !s.is_empty() => Ok(Schema::Enum(s)),
                _ => unsupported(format!("`enum` must be a non-empty array of strings, got {values}")),
            };
        }
        match map.get("type").and_then(Value::as_str) {
            Some("string") => Ok(Schema::String),
            Some("integer") => Ok(Schema::Integer),
            Some("boolean") => Ok(Schema::Boolean),
            Some("array") => match map.get("items") {
                Some(items) => Ok(Schema::Array(Box::new(Schema::from_json(items)?))),
                None => unsupported("an array without `items`".into()),
            },
            Some("object") => {
                if map.get("additionalProperties") != Some(&Value::Bool(false)) {
                    return unsupported("an object without `additionalProperties: false`".into());
                }
                let empty = serde_json::Map::new();
                let properties = match map.get("properties") {
                    Some(Value::Object(p)) => p,
                    None => &empty,
                    Some(other) => return unsupported(format!("`properties` must be an object, got {other}")),
                };
                let required: Vec<&str> = map
                    .get("required")
                    .and_then(Value::as_array)
                    .map(|r| r.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                let mut fields = Vec::with_capacity(properties.len());
                for (name, schema) in properties {
                    if !required.contains(&name.as_str()) {
                        return unsupported(format!("optional property `{name}` (every property must be required)"));
                    }
                    fields.push((name.clone(), Schema::from_json(schema)?));
                }
                if let Some(extra) = required.iter().find(|r| !properties.contains_key(**r)) {
                    return unsupported(format!("required property `{extra}` is not in `properties`"));
                }
                Ok(Schema::Object(fields))
            }
            Some(other) => unsupported(format!("type `{other}`")),
            None => unsupported(format!("a schema without `type` or `enum`: {value}")),
        }
    }
}

/// One schema node, flattened: children are indices into [`Compiled::nodes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A JSON string.
    String,
    /// `-?(0|[1-9][0-9]*)`
    Integer,
    /// One of these byte strings, **sorted** (so the ones sharing a prefix are a contiguous
    /// range): `false`/`true` for booleans, the JSON-quoted strings for an enum.
    Literals(Vec<Vec<u8>>),
    /// An array of items of this node.
    Array(usize),
    /// An object: per property, the bytes that introduce it (`"name": ` for the first property,
    /// `, "name": ` for the others, the name quoted as `serde_json` writes it) and its node.
    Object(Vec<(Vec<u8>, usize)>),
}

/// A schema compiled once into nodes; node 0 is the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compiled {
    /// The nodes; node 0 is the root.
    pub nodes: Vec<Node>,
}

impl Compiled {
    /// Flattens `schema` into nodes.
    pub fn new(schema: &Schema) -> Compiled {
        let mut nodes = Vec::new();
        add_node(schema, &mut nodes);
        Compiled { nodes }
    }
}

fn add_node(schema: &Schema, nodes: &mut Vec<Node>) -> usize {
    let id = nodes.len();
    nodes.push(Node::String);
    let node = match schema {
        Schema::String => Node::String,
        Schema::Integer => Node::Integer,
        Schema::Boolean => Node::Literals(vec![b"false".to_vec(), b"true".to_vec()]),
        Schema::Enum(values) => {
            let mut literals: Vec<Vec<u8>> = values.iter().map(|v| json_quote(v).into_bytes()).collect();
            literals.sort();
            literals.dedup();
            Node::Literals(literals)
        }
        Schema::Array(items) => Node::Array(add_node(items, nodes)),
        Schema::Object(fields) => {
            let mut compiled = Vec::with_capacity(fields.len());
            for (i, (name, schema)) in fields.iter().enumerate() {
                let mut key = if i == 0 { Vec::new() } else { ITEM_SEPARATOR.to_vec() };
                key.extend_from_slice(json_quote(name).as_bytes());
                key.extend_from_slice(KEY_SEPARATOR);
                compiled.push((key, add_node(schema, nodes)));
            }
            Node::Object(compiled)
        }
    };
    nodes[id] = node;
    id
}

/// What separates two items of an array or two properties of an object.
pub const ITEM_SEPARATOR: &[u8] = b", ";
/// What separates a property's name from its value.
pub const KEY_SEPARATOR: &[u8] = b": ";

/// `s` as a JSON string literal, the way `serde_json` (and llguidance, for property names and
/// enum values) writes it.
pub fn json_quote(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

/// Where a string is between two bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrPhase {
    /// Between characters.
    Plain,
    /// After a backslash.
    Escape,
    /// After `\u` and `digits` hex digits of it (the first two are always `00`); `del` once the
    /// third digit was `7` (only `\u007F` / `\u007f` continue it).
    Unicode {
        /// Hex digits read.
        digits: u8,
        /// Whether the third digit was `7`.
        del: bool,
    },
    /// Inside a multi-byte UTF-8 character: `left` continuation bytes to come, the next one in
    /// `lo..=hi`.
    Utf8 {
        /// Continuation bytes still to come.
        left: u8,
        /// Smallest allowed next byte.
        lo: u8,
        /// Largest allowed next byte.
        hi: u8,
    },
}

/// Where an integer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntPhase {
    /// Read `-` only.
    Minus,
    /// Read `0` or `-0`: complete, no digit may follow.
    Zero,
    /// Read a non-zero first digit and maybe more: complete, more digits may follow.
    Digits,
}

/// One frame of the automaton's stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// A value of node `node`, not started.
    Value(usize),
    /// Inside a string value (after its opening quote).
    Str(StrPhase),
    /// Inside an integer.
    Int(IntPhase),
    /// Inside one of the literals of a [`Node::Literals`] node: `pos` bytes read, which
    /// every literal in `lo..hi` (indices into the sorted list) has as its prefix.
    Literal {
        /// The node.
        node: usize,
        /// First candidate.
        lo: u32,
        /// One past the last candidate.
        hi: u32,
        /// Bytes read.
        pos: u32,
    },
    /// Inside an object, between properties: the next is property `next` (or `}` when every
    /// property was read).
    Object {
        /// The node.
        node: usize,
        /// Index of the next property.
        next: u32,
    },
    /// Inside the bytes that introduce property `field` (`, "name": `), `pos` of them read.
    Key {
        /// The object's node.
        node: usize,
        /// The property.
        field: u32,
        /// Bytes read.
        pos: u32,
    },
    /// Right after `[`: an item or `]`.
    ArrayStart(usize),
    /// After an item: `,` or `]`.
    ArrayNext(usize),
    /// After an item's `,`: the space before the next item.
    ArrayComma(usize),
}

/// A pushdown automaton over the bytes of a JSON document of a [`Schema`], spaced as
/// `json.dumps` spaces it: [`ITEM_SEPARATOR`] (`, `) between items and properties,
/// [`KEY_SEPARATOR`] (`: `) after a name, no other whitespace.
///
/// Strings are written the way llguidance writes them, which is narrower than JSON allows:
/// - any Unicode character as its UTF-8 bytes, except `"`, `\`, the controls U+0000–U+001F and
///   U+007F (DEL), which must be escaped;
/// - the escapes `\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`, and `\u` only for the controls:
///   `\u00` followed by `0` or `1` and one hex digit (either case), or `\u007F` / `\u007f`.
///   No `\/`, no `\u00e9` for `é` (write `é` itself), no surrogate pairs (write the emoji).
/// - UTF-8 is checked byte by byte: no overlong forms, no surrogates, nothing above U+10FFFF
///   (the Unicode Standard, table 3-7 "Well-Formed UTF-8 Byte Sequences").
///
/// Integers are `-?(0|[1-9][0-9]*)` (so `-0` is allowed, `01` is not).
#[derive(Debug, Clone)]
pub struct JsonAutomaton {
    compiled: Arc<Compiled>,
    /// The stack: the last frame is the innermost. Empty once the document is complete.
    stack: Vec<Frame>,
}

impl PartialEq for JsonAutomaton {
    fn eq(&self, other: &Self) -> bool {
        self.stack == other.stack && Arc::ptr_eq(&self.compiled, &other.compiled)
    }
}

impl JsonAutomaton {
    /// The automaton at the start of a document of `schema`.
    pub fn new(schema: &Schema) -> JsonAutomaton {
        JsonAutomaton::from_compiled(Arc::new(Compiled::new(schema)))
    }

    /// The automaton at the start of a document of an already compiled schema.
    pub fn from_compiled(compiled: Arc<Compiled>) -> JsonAutomaton {
        JsonAutomaton { compiled, stack: vec![Frame::Value(0)] }
    }

    /// The compiled schema.
    pub fn compiled(&self) -> &Arc<Compiled> {
        &self.compiled
    }

    /// The stack (innermost frame last).
    pub fn stack(&self) -> &[Frame] {
        &self.stack
    }

    /// Copies `other`'s state into `self`, reusing `self`'s allocation (for a depth-first walk).
    pub fn set_from(&mut self, other: &JsonAutomaton) {
        self.stack.clone_from(&other.stack);
        if !Arc::ptr_eq(&self.compiled, &other.compiled) {
            self.compiled = Arc::clone(&other.compiled);
        }
    }

    // ANCHOR: step
    /// Task c4w2.json-automaton (20 points): reads one more byte. Returns whether it is allowed,
    /// that is whether the bytes read so far plus `byte` are still a prefix of some document of
    /// the schema. When it returns `false` the state must be unchanged.
    ///
    /// Look at the innermost frame:
    /// - `Value(n)`: what may start a value of node `n`: `"` a string, `-` or a digit an integer,
    ///   the first byte of one of the literals, `{` an object, `[` an array. Replace the frame by
    ///   the frame of the value that started (an object with no properties still needs its `}`).
    /// - `Str`, `Int`, `Literal`, `Key`: advance as [`JsonAutomaton`]'s rules say; a finished
    ///   string or literal pops its frame.
    /// - `Object`: the first byte of the next key, or `}` once every property was read (pops).
    ///   After a key's last byte, the object frame moves to the next property and a `Value`
    ///   frame of the property's node goes on top.
    /// - `ArrayStart`: `]` pops; anything else must start an item (becomes `ArrayNext` with a
    ///   `Value` of the item on top, fed this byte). `ArrayNext`: `]` pops, `,` becomes
    ///   `ArrayComma`, whose space becomes `ArrayNext` with a `Value` of the item on top.
    ///
    /// An integer has no closing byte: when a byte cannot continue a complete integer, the
    /// integer's frame pops and the byte is offered to the frame below it. Nothing may follow a
    /// complete document.
    pub fn step(&mut self, byte: u8) -> bool {
        // BEGIN SOLUTION c4w2.json-automaton
        let Some(&top) = self.stack.last() else { return false };
        match advance(&self.compiled.nodes, &mut self.stack, top, byte) {
            Advance::Refused => false,
            Advance::Done => true,
            Advance::Ended => {
                // A complete integer ends before `byte`: offer the byte to the frame below (never
                // another integer: integers have no children). A refusal changes nothing.
                self.stack.pop();
                let applied = match self.stack.last().copied() {
                    Some(below) => matches!(advance(&self.compiled.nodes, &mut self.stack, below, byte), Advance::Done),
                    None => false,
                };
                if !applied {
                    self.stack.push(top);
                }
                applied
            }
        }
        // END SOLUTION
    }
    // ANCHOR_END: step

    /// Task c4w2.json-automaton: whether the bytes read are a complete document (the stack is
    /// empty, or only a complete top-level integer is left on it).
    pub fn is_complete(&self) -> bool {
        // BEGIN SOLUTION c4w2.json-automaton
        match self.stack.as_slice() {
            [] => true,
            [Frame::Int(phase)] => *phase != IntPhase::Minus,
            _ => false,
        }
        // END SOLUTION
    }

    /// Every byte [`JsonAutomaton::step`] would allow now (entry `b` is `true` when byte `b` is).
    pub fn allowed_bytes(&self) -> [bool; 256] {
        let mut allowed = [false; 256];
        let mut probe = self.clone();
        for (b, slot) in allowed.iter_mut().enumerate() {
            probe.set_from(self);
            *slot = probe.step(b as u8);
        }
        allowed
    }

    /// Feeds every byte of `bytes`; returns whether all were allowed (the state after a refusal
    /// is the state before the refused byte).
    pub fn feed(&mut self, bytes: &[u8]) -> bool {
        bytes.iter().all(|&b| self.step(b))
    }
}

// BEGIN SOLUTION c4w2.json-automaton delete
/// Applies `byte` to the innermost frame `top` (which is `stack.last()`).
fn advance(nodes: &[Node], stack: &mut Vec<Frame>, top: Frame, byte: u8) -> Advance {
    let last = stack.len() - 1;
    match top {
        Frame::Value(n) => match (&nodes[n], byte) {
            (Node::String, b'"') => stack[last] = Frame::Str(StrPhase::Plain),
            (Node::Integer, b'-') => stack[last] = Frame::Int(IntPhase::Minus),
            (Node::Integer, b'0') => stack[last] = Frame::Int(IntPhase::Zero),
            (Node::Integer, b'1'..=b'9') => stack[last] = Frame::Int(IntPhase::Digits),
            (Node::Literals(lits), b) => {
                let (lo, hi) = narrow(lits, 0, lits.len(), 0, b);
                if lo == hi {
                    return Advance::Refused;
                }
                stack[last] = Frame::Literal { node: n, lo: lo as u32, hi: hi as u32, pos: 1 };
                finish_literal(stack, lits);
            }
            (Node::Object(_), b'{') => stack[last] = Frame::Object { node: n, next: 0 },
            (Node::Array(_), b'[') => stack[last] = Frame::ArrayStart(n),
            _ => return Advance::Refused,
        },
        Frame::Str(phase) => match string_step(phase, byte) {
            None => return Advance::Refused,
            Some(None) => {
                stack.pop();
            }
            Some(Some(next)) => stack[last] = Frame::Str(next),
        },
        Frame::Int(phase) => match (phase, byte) {
            (IntPhase::Minus, b'0') => stack[last] = Frame::Int(IntPhase::Zero),
            (IntPhase::Minus, b'1'..=b'9') => stack[last] = Frame::Int(IntPhase::Digits),
            (IntPhase::Digits, b'0'..=b'9') => {}
            (IntPhase::Minus, _) => return Advance::Refused,
            (IntPhase::Zero | IntPhase::Digits, _) => return Advance::Ended,
        },
        Frame::Literal { node, lo, hi, pos } => {
            let Node::Literals(lits) = &nodes[node] else { unreachable!("a literal frame points at literals") };
            let (lo, hi) = narrow(lits, lo as usize, hi as usize, pos as usize, byte);
            if lo == hi {
                return Advance::Refused;
            }
            stack[last] = Frame::Literal { node, lo: lo as u32, hi: hi as u32, pos: pos + 1 };
            finish_literal(stack, lits);
        }
        Frame::Object { node, next } => {
            let Node::Object(fields) = &nodes[node] else { unreachable!("an object frame points at an object") };
            match fields.get(next as usize) {
                None if byte == b'}' => {
                    stack.pop();
                }
                Some((key, _)) if key[0] == byte => {
                    stack[last] = Frame::Key { node, field: next, pos: 1 };
                    finish_key(stack, fields);
                }
                _ => return Advance::Refused,
            }
        }
        Frame::Key { node, field, pos } => {
            let Node::Object(fields) = &nodes[node] else { unreachable!("a key frame points at an object") };
            if fields[field as usize].0[pos as usize] != byte {
                return Advance::Refused;
            }
            stack[last] = Frame::Key { node, field, pos: pos + 1 };
            finish_key(stack, fields);
        }
        Frame::ArrayStart(n) => {
            if byte == b']' {
                stack.pop();
                return Advance::Done;
            }
            let Node::Array(item) = nodes[n] else { unreachable!("an array frame points at an array") };
            stack[last] = Frame::ArrayNext(n);
            stack.push(Frame::Value(item));
            if let Advance::Refused = advance(nodes, stack, Frame::Value(item), byte) {
                stack.truncate(last);
                stack.push(Frame::ArrayStart(n));
                return Advance::Refused;
            }
        }
        Frame::ArrayNext(n) => match byte {
            b']' => {
                stack.pop();
            }
            b',' => stack[last] = Frame::ArrayComma(n),
            _ => return Advance::Refused,
        },
        Frame::ArrayComma(n) => {
            if byte != b' ' {
                return Advance::Refused;
            }
            let Node::Array(item) = nodes[n] else { unreachable!("an array frame points at an array") };
            stack[last] = Frame::ArrayNext(n);
            stack.push(Frame::Value(item));
        }
    }
    Advance::Done
}

/// Pops a literal frame once its one remaining candidate is read in full.
fn finish_literal(stack: &mut Vec<Frame>, lits: &[Vec<u8>]) {
    if let Some(&Frame::Literal { lo, hi, pos, .. }) = stack.last()
        && hi - lo == 1
        && lits[lo as usize].len() == pos as usize
    {
        stack.pop();
    }
}

/// Turns a key frame whose bytes are all read into the object's next state plus a value frame.
fn finish_key(stack: &mut Vec<Frame>, fields: &[(Vec<u8>, usize)]) {
    if let Some(&Frame::Key { node, field, pos }) = stack.last()
        && fields[field as usize].0.len() == pos as usize
    {
        let last = stack.len() - 1;
        stack[last] = Frame::Object { node, next: field + 1 };
        stack.push(Frame::Value(fields[field as usize].1));
    }
}

/// What one byte did to the innermost frame.
enum Advance {
    /// Applied.
    Done,
    /// Not allowed; nothing changed.
    Refused,
    /// The innermost frame (a complete integer) ends before this byte; nothing changed yet.
    Ended,
}

/// The candidates of `lits[lo..hi]` (all sharing the first `pos` bytes) whose byte `pos` is `b`.
fn narrow(lits: &[Vec<u8>], lo: usize, hi: usize, pos: usize, b: u8) -> (usize, usize) {
    let range = &lits[lo..hi];
    let start = lo + range.partition_point(|l| l.get(pos).is_none_or(|&x| x < b));
    let end = lo + range.partition_point(|l| l.get(pos).is_none_or(|&x| x <= b));
    (start, end)
}

/// One byte of a string: `None` refused, `Some(None)` the closing quote, `Some(Some(p))` the next phase.
fn string_step(phase: StrPhase, b: u8) -> Option<Option<StrPhase>> {
    use StrPhase::*;
    let next = match phase {
        Plain => match b {
            b'"' => return Some(None),
            b'\\' => Escape,
            0x20..=0x7E => Plain,
            0xC2..=0xDF => Utf8 { left: 1, lo: 0x80, hi: 0xBF },
            0xE0 => Utf8 { left: 2, lo: 0xA0, hi: 0xBF },
            0xE1..=0xEC | 0xEE..=0xEF => Utf8 { left: 2, lo: 0x80, hi: 0xBF },
            0xED => Utf8 { left: 2, lo: 0x80, hi: 0x9F },
            0xF0 => Utf8 { left: 3, lo: 0x90, hi: 0xBF },
            0xF1..=0xF3 => Utf8 { left: 3, lo: 0x80, hi: 0xBF },
            0xF4 => Utf8 { left: 3, lo: 0x80, hi: 0x8F },
            _ => return None,
        },
        Escape => match b {
            b'"' | b'\\' | b'b' | b'f' | b'n' | b'r' | b't' => Plain,
            b'u' => Unicode { digits: 0, del: false },
            _ => return None,
        },
        Unicode { digits, del } => match (digits, del, b) {
            (0 | 1, _, b'0') => Unicode { digits: digits + 1, del: false },
            (2, _, b'0' | b'1') => Unicode { digits: 3, del: false },
            (2, _, b'7') => Unicode { digits: 3, del: true },
            (3, false, b) if b.is_ascii_hexdigit() => Plain,
            (3, true, b'F' | b'f') => Plain,
            _ => return None,
        },
        Utf8 { left, lo, hi } => {
            if !(lo..=hi).contains(&b) {
                return None;
            }
            if left == 1 { Plain } else { Utf8 { left: left - 1, lo: 0x80, hi: 0xBF } }
        }
    };
    Some(Some(next))
}
// END SOLUTION

/// Whether `text` is a complete document of `schema` (a convenience over the automaton).
pub fn accepts(schema: &Schema, text: &str) -> bool {
    let mut automaton = JsonAutomaton::new(schema);
    automaton.feed(text.as_bytes()) && automaton.is_complete()
}
