//! Reading HF `tokenizer.json` files (the `tokenizers` library's serialisation): the pieces the loaders share.
//!
//! The loaders read the JSON as a tree (`serde_json::Value`) and check each field they rely on, so a file that
//! asks for something this implementation does not do (a normaliser on a BPE model, BPE dropout, an added token
//! with `lstrip`) is refused with a message naming the field instead of being tokenised differently.

use serde_json::Value;

use super::definition_error;
use crate::Result;

/// One entry of `added_tokens`.
#[derive(Debug, Clone)]
pub(crate) struct AddedToken {
    /// Its id.
    pub(crate) id: u32,
    /// Its text.
    pub(crate) content: String,
    /// Whether decoding may skip it (`special`).
    pub(crate) special: bool,
    /// Whether it is matched in normalised text (`true`) or in the raw input (`false`).
    pub(crate) normalized: bool,
}

/// Parses a tokenizer.json document.
pub(crate) fn parse(text: &str, source_name: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| definition_error(source_name, format!("not valid JSON: {e}")))
}

/// `value[key]` as a string, if present and a string.
pub(crate) fn str_field<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(Value::as_str)
}

/// Whether `value[key]` is absent, `null`, or equal to `default` (for options this implementation fixes).
pub(crate) fn is_default(value: &Value, key: &str, default: &Value) -> bool {
    match value.get(key) {
        None | Some(Value::Null) => true,
        Some(v) => v == default,
    }
}

/// A token id from JSON.
pub(crate) fn id_value(v: &Value, what: &str, source_name: &str) -> Result<u32> {
    v.as_u64()
        .and_then(|id| u32::try_from(id).ok())
        .ok_or_else(|| definition_error(source_name, format!("{what}: id {v} is not a u32")))
}

/// The `added_tokens` list; options this implementation does not support are refused.
pub(crate) fn added_tokens(doc: &Value, source_name: &str) -> Result<Vec<AddedToken>> {
    let Some(list) = doc.get("added_tokens") else {
        return Ok(Vec::new());
    };
    let list = list.as_array().ok_or_else(|| definition_error(source_name, "added_tokens is not an array"))?;
    let mut out = Vec::with_capacity(list.len());
    for (i, t) in list.iter().enumerate() {
        let content = str_field(t, "content")
            .ok_or_else(|| definition_error(source_name, format!("added_tokens[{i}] has no string content")))?;
        let id =
            id_value(t.get("id").unwrap_or(&Value::Null), &format!("added_tokens[{i}] ({content:?})"), source_name)?;
        for option in ["lstrip", "rstrip", "single_word"] {
            if t.get(option).and_then(Value::as_bool) == Some(true) {
                return Err(definition_error(
                    source_name,
                    format!("added token {content:?} sets {option}, which is not supported"),
                ));
            }
        }
        out.push(AddedToken {
            id,
            content: content.to_string(),
            special: t.get("special").and_then(Value::as_bool).unwrap_or(false),
            normalized: t.get("normalized").and_then(Value::as_bool).unwrap_or(false),
        });
    }
    Ok(out)
}

/// `model.vocab` as `(token, id)` pairs.
pub(crate) fn vocab_map(model: &Value, source_name: &str) -> Result<Vec<(String, u32)>> {
    let vocab = model
        .get("vocab")
        .and_then(Value::as_object)
        .ok_or_else(|| definition_error(source_name, "model.vocab is missing or not an object"))?;
    vocab
        .iter()
        .map(|(token, id)| Ok((token.clone(), id_value(id, &format!("model.vocab[{token:?}]"), source_name)?)))
        .collect()
}

/// Lays `(token, id)` entries out as an id-indexed table; every id below the largest must be used exactly once.
pub(crate) fn id_table(entries: impl IntoIterator<Item = (String, u32)>, source_name: &str) -> Result<Vec<String>> {
    let entries: Vec<(String, u32)> = entries.into_iter().collect();
    let mut slots: Vec<Option<String>> = Vec::new();
    for (token, id) in entries.iter().cloned() {
        let i = id as usize;
        // Ids are dense, so none can reach the number of entries: checked before allocating,
        // so a hostile id near u32::MAX costs an error, not gigabytes.
        if i >= entries.len() {
            return Err(definition_error(
                source_name,
                format!("id {id} of {token:?} is out of range for {} entries (ids must be 0..n)", entries.len()),
            ));
        }
        if i >= slots.len() {
            slots.resize(i + 1, None);
        }
        match &slots[i] {
            Some(existing) if *existing != token => {
                return Err(definition_error(
                    source_name,
                    format!("id {id} is given to both {existing:?} and {token:?}"),
                ));
            }
            _ => slots[i] = Some(token),
        }
    }
    slots
        .into_iter()
        .enumerate()
        .map(|(id, t)| t.ok_or_else(|| definition_error(source_name, format!("no token has id {id}"))))
        .collect()
}
