//! Tool calls in the Hermes / Qwen 2.5 format (NousResearch's Hermes function-calling format, which Qwen 2.5's
//! chat template also emits): each call is a block
//!
//! ```text
//! <tool_call>
//! {"name": "get_weather", "arguments": {"city": "Paris"}}
//! </tool_call>
//! ```
//!
//! and several blocks are separated by one newline. [`tool_call_grammar`] writes the Lark grammar that allows
//! exactly these blocks, each function's `arguments` held to its parameters schema by a `%json{…}` whose `name`
//! is a `const`; [`parse_tool_calls`] reads them back.

use serde_json::{Value, json};

use super::{FunctionSpec, Grammar, ToolChoice, check_schema, json_options};
use crate::llm::ToolCall;
use crate::{Error, Result};

/// The opening tag of a call block.
pub const TOOL_CALL_OPEN: &str = "<tool_call>";
/// The closing tag of a call block.
pub const TOOL_CALL_CLOSE: &str = "</tool_call>";

/// The grammar of an assistant turn under `tools` and `choice`: text, or one or more
/// `<tool_call>{"name": …, "arguments": {…}}</tool_call>` blocks whose arguments follow each
/// function's schema. `None` when `choice` is [`ToolChoice::None`] (no constraint), or when it is
/// [`ToolChoice::Auto`] and there are no tools.
///
/// - [`ToolChoice::Auto`]: free text that does not start with `<`, or one or more call blocks.
/// - [`ToolChoice::Required`]: one or more call blocks, of any of the functions.
/// - [`ToolChoice::Function`]: exactly one call block, of that function.
///
/// # Errors
/// [`Error::UnsupportedSchema`] / [`Error::Grammar`] for a function schema that cannot be enforced;
/// [`Error::Grammar`] when `choice` names a function that is not in `tools`, for `Required` without tools,
/// and for two functions of one name.
pub fn tool_call_grammar(tools: &[FunctionSpec], choice: &ToolChoice) -> Result<Option<Grammar>> {
    let chosen: Vec<&FunctionSpec> = match choice {
        ToolChoice::None => return Ok(None),
        ToolChoice::Auto if tools.is_empty() => return Ok(None),
        ToolChoice::Auto | ToolChoice::Required => tools.iter().collect(),
        ToolChoice::Function(name) => match tools.iter().find(|t| &t.name == name) {
            Some(t) => vec![t],
            None => return Err(Error::Grammar(format!("tool_choice names `{name}`, which is not among the tools"))),
        },
    };
    if chosen.is_empty() {
        return Err(Error::Grammar("tool_choice `required` with no tools".into()));
    }
    for (i, t) in tools.iter().enumerate() {
        if tools[..i].iter().any(|u| u.name == t.name) {
            return Err(Error::Grammar(format!("two tools are named `{}`", t.name)));
        }
    }
    let mut lark = String::new();
    lark.push_str(match choice {
        ToolChoice::Auto => "start: TEXT | calls\nTEXT: /[^<](?s:.)*/\n",
        ToolChoice::Function(_) => "start: call\n",
        _ => "start: calls\n",
    });
    lark.push_str("calls: call (\"\\n\" call)*\n");
    let alternatives: Vec<String> = (0..chosen.len()).map(|i| format!("fn_{i}")).collect();
    lark.push_str(&format!("call: \"<tool_call>\\n\" ({}) \"\\n</tool_call>\"\n", alternatives.join(" | ")));
    for (i, f) in chosen.iter().enumerate() {
        check_schema(&f.parameters).map_err(|e| match e {
            Error::UnsupportedSchema { keyword, reason } => {
                Error::UnsupportedSchema { keyword, reason: format!("function `{}`: {reason}", f.name) }
            }
            other => other,
        })?;
        let call = json!({
            "type": "object",
            "properties": {"name": {"const": f.name}, "arguments": f.parameters},
            "required": ["name", "arguments"],
            "additionalProperties": false,
            "x-guidance": json_options(),
        });
        lark.push_str(&format!("fn_{i}: %json {call}\n"));
    }
    Ok(Some(Grammar::Lark(lark)))
}

/// Splits an assistant turn generated under [`tool_call_grammar`] into its text and its tool calls
/// (ids `call_<n>` numbered from `first_id`). The text is what lies outside the blocks, trimmed; each call's
/// `arguments` is the JSON object re-serialised compactly, keys in the order written.
///
/// # Errors
/// [`Error::Grammar`] when a `<tool_call>` block is not closed, or is not a JSON object with exactly a string
/// `name` and an object `arguments`, or for a stray `</tool_call>`.
pub fn parse_tool_calls(text: &str, first_id: usize) -> Result<(String, Vec<ToolCall>)> {
    let mut content = String::new();
    let mut calls = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find(TOOL_CALL_OPEN) {
        content.push_str(&rest[..open]);
        let after = &rest[open + TOOL_CALL_OPEN.len()..];
        let close = after.find(TOOL_CALL_CLOSE).ok_or_else(|| {
            Error::Grammar(format!("tool call {} has no `{TOOL_CALL_CLOSE}`", first_id + calls.len()))
        })?;
        let body = &after[..close];
        if body.contains(TOOL_CALL_OPEN) {
            return Err(Error::Grammar(format!(
                "tool call {} is not closed before the next one",
                first_id + calls.len()
            )));
        }
        calls.push(parse_block(body.trim(), first_id + calls.len())?);
        rest = &after[close + TOOL_CALL_CLOSE.len()..];
    }
    content.push_str(rest);
    if content.contains(TOOL_CALL_CLOSE) {
        return Err(Error::Grammar(format!("a `{TOOL_CALL_CLOSE}` without its `{TOOL_CALL_OPEN}`")));
    }
    Ok((content.trim().to_string(), calls))
}

fn parse_block(body: &str, n: usize) -> Result<ToolCall> {
    let bad = |why: &str| Error::Grammar(format!("tool call {n}: {why}"));
    let value: Value = serde_json::from_str(body).map_err(|e| bad(&format!("not JSON ({e})")))?;
    let Value::Object(obj) = value else {
        return Err(bad("not a JSON object"));
    };
    if let Some(extra) = obj.keys().find(|k| *k != "name" && *k != "arguments") {
        return Err(bad(&format!("unexpected key `{extra}`")));
    }
    let name = match obj.get("name") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(_) => return Err(bad("`name` is not a non-empty string")),
        None => return Err(bad("no `name`")),
    };
    let arguments = match obj.get("arguments") {
        Some(a @ Value::Object(_)) => a.to_string(),
        Some(_) => return Err(bad("`arguments` is not a JSON object")),
        None => return Err(bad("no `arguments`")),
    };
    Ok(ToolCall { id: format!("call_{n}"), name, arguments })
}

/// Checks parsed calls against the tools offered: every name must be one of them and every `arguments` a JSON
/// object. (Under [`tool_call_grammar`] this holds by construction; text from elsewhere, such as an
/// unconstrained model or a client, is checked here.)
///
/// # Errors
/// [`Error::Grammar`] naming the first call whose function is not among `tools` or whose arguments are not an
/// object.
pub fn check_tool_calls(calls: &[ToolCall], tools: &[FunctionSpec]) -> Result<()> {
    for c in calls {
        if !tools.iter().any(|t| t.name == c.name) {
            return Err(Error::Grammar(format!(
                "tool call `{}` names `{}`, which is not among the tools",
                c.id, c.name
            )));
        }
        match serde_json::from_str::<Value>(&c.arguments) {
            Ok(Value::Object(_)) => {}
            _ => return Err(Error::Grammar(format!("tool call `{}`: arguments are not a JSON object", c.id))),
        }
    }
    Ok(())
}
