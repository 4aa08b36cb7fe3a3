//! Chat templates: turning a list of messages into the prompt text a chat model was trained on.
//!
//! A model ships its template as a Jinja program (the GGUF key `tokenizer.chat_template`, or
//! `chat_template` in `tokenizer_config.json`). This module renders it with minijinja in an
//! environment made equal to the one Hugging Face `transformers` uses in `apply_chat_template`
//! (`transformers.utils.chat_template_utils`, Python `jinja2` 3.1):
//! `ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
//! extensions=[jinja2.ext.loopcontrols])`, the filter `tojson` redefined as
//! `json.dumps(x, ensure_ascii=False, indent=…, separators=…, sort_keys=…)`, and the globals
//! `raise_exception(msg)` and `strftime_now(fmt)`. The template sees `messages` (OpenAI/HF shape,
//! `content: None` as Python `None`, tool-call arguments as the parsed JSON object as vLLM passes
//! them), `tools` (`None` when there are none, as `transformers` passes it), `documents` (`None`),
//! `add_generation_prompt`, `bos_token` and `eos_token`. Python's `str`/`dict` methods
//! (`.strip()`, `.items()`, …) come from minijinja-contrib's `pycompat`; where minijinja and jinja2
//! differ in what templates rely on, jinja2's behaviour is restored: `{{ x }}` prints Python's
//! `str(x)` (`None`, `True`, `['a']`), and the tests `iterable`/`sequence` are false for `None`.
//!
//! The output equals `jinja2`'s for the templates under `tests/fixtures/chat_templates/`
//! (`make_fixtures.py` renders them with `jinja2`). [`ChatTemplate::render_parts`] additionally keeps
//! the messages' contents apart from the template's own text, so that typed special-token text
//! (`<|im_start|>`) is never tokenised as a special token.

use minijinja::value::{Kwargs, Value, ValueKind};
use minijinja::{Environment, ErrorKind, State};
use serde_json::{Map, Value as Json};

use crate::formats::gguf::Gguf;
use crate::{Error, Result};

/// One message of a conversation, with the fields OpenAI's chat API and Hugging Face chat
/// templates use (`tool_calls` on an assistant turn, `tool_call_id` and `name` on a tool result).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant` or `tool`.
    pub role: String,
    /// The text; `None` for an assistant turn that only calls tools (templates test `content is none`).
    pub content: Option<String>,
    /// The calls an assistant turn made (empty otherwise).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// On a `tool` message: the id of the call it answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// On a `tool` message: the function's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl ChatMessage {
    /// A message from `role` with text `content`.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        ChatMessage { role: role.into(), content: Some(content.into()), ..ChatMessage::default() }
    }

    /// The text, or `""` when there is none.
    pub fn text(&self) -> &str {
        self.content.as_deref().unwrap_or("")
    }
}

/// A function call made by the assistant, as OpenAI's API carries it.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct ToolCall {
    /// The call's id (`call_…`), echoed by the `tool` message that answers it.
    pub id: String,
    /// The function's name.
    pub name: String,
    /// The arguments, a JSON object as text (OpenAI sends a string).
    pub arguments: String,
}

/// The start of a ChatML turn.
pub const IM_START: &str = "<|im_start|>";
/// The end of a ChatML turn.
pub const IM_END: &str = "<|im_end|>";

/// Plain ChatML, as a Jinja template (the `template_chatml` most ChatML models ship).
const CHATML: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + \
                      '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// Template names inside the environment (no file extension, so minijinja never auto-escapes).
const DEFAULT: &str = "default";
const TOOL_USE: &str = "tool_use";

/// Private markers put around each content to find it in the rendered text (Unicode noncharacters:
/// never meaningful in text, kept as they are by `trim`, `upper` and `tojson`).
const OPEN: char = '\u{FDD0}';
const CLOSE: char = '\u{FDD1}';

/// A compiled chat template: compile once, render many.
#[derive(Debug, Clone)]
pub struct ChatTemplate {
    env: Environment<'static>,
    /// Whether a `tool_use` template exists beside `default` (the named-templates form).
    has_tool_use: bool,
    bos_token: String,
    eos_token: String,
    /// Texts of the tokenizer's special tokens (with `bos_token` and `eos_token`).
    special_tokens: Vec<String>,
    uses_tools: bool,
}

impl ChatTemplate {
    /// Compiles `source` with the given `bos_token`/`eos_token` texts.
    ///
    /// # Errors
    /// [`Error::ChatTemplate`] when the source does not parse.
    pub fn new(source: &str, bos_token: &str, eos_token: &str) -> Result<ChatTemplate> {
        Self::compile(&[(DEFAULT, source)], bos_token, eos_token, Vec::new())
    }

    /// Plain ChatML without a default system prompt.
    pub fn chatml() -> Self {
        Self::new(CHATML, "", IM_END).expect("the ChatML template compiles")
    }

    /// The template of a GGUF file (`tokenizer.chat_template`), with the texts of its BOS and EOS
    /// tokens and of its control tokens.
    ///
    /// # Errors
    /// [`Error::UnsupportedModel`] when the file has no template, [`Error::ChatTemplate`] when it
    /// does not parse, the GGUF reader's errors for entries of the wrong type.
    pub fn from_gguf(gguf: &Gguf) -> Result<ChatTemplate> {
        let Some(source) = gguf.metadata("tokenizer.chat_template").and_then(|v| v.as_str()) else {
            return Err(Error::UnsupportedModel("the GGUF file has no tokenizer.chat_template".into()));
        };
        let tokens = gguf.get_string_array("tokenizer.ggml.tokens")?;
        let token_text = |key: &str| {
            gguf.metadata(key)
                .and_then(|v| v.as_u32())
                .and_then(|id| tokens.get(id as usize))
                .cloned()
                .unwrap_or_default()
        };
        let (bos, eos) = (token_text("tokenizer.ggml.bos_token_id"), token_text("tokenizer.ggml.eos_token_id"));
        let types: &[i32] = match gguf.metadata("tokenizer.ggml.token_type") {
            Some(_) => gguf.get_i32_array("tokenizer.ggml.token_type")?,
            None => &[],
        };
        const CONTROL: i32 = 3;
        const USER_DEFINED: i32 = 4;
        let special = tokens
            .iter()
            .zip(types)
            .filter(|&(_, &t)| t == CONTROL || t == USER_DEFINED)
            .map(|(text, _)| text.clone())
            .collect();
        Self::compile(&[(DEFAULT, source)], &bos, &eos, special)
    }

    /// The template of a Hugging Face `tokenizer_config.json` (its text): `chat_template` as one
    /// string, or as a list of named templates (`default`, and `tool_use` used when tools are
    /// given, as `transformers` picks them); `bos_token`/`eos_token` as strings or added-token
    /// objects; special tokens from `added_tokens_decoder`.
    ///
    /// # Errors
    /// [`Error::ChatTemplate`] when the text is not JSON, has no usable `chat_template`, or a
    /// template does not parse.
    pub fn from_tokenizer_config(json_text: &str) -> Result<ChatTemplate> {
        let bad = |why: String| Error::ChatTemplate(format!("tokenizer_config.json: {why}"));
        let config: Json = serde_json::from_str(json_text).map_err(|e| bad(e.to_string()))?;
        let token = |key: &str| match &config[key] {
            Json::String(s) => s.clone(),
            Json::Object(o) => o.get("content").and_then(Json::as_str).unwrap_or_default().to_owned(),
            _ => String::new(),
        };
        let mut named: Vec<(&str, &str)> = Vec::new();
        match &config["chat_template"] {
            Json::String(source) => named.push((DEFAULT, source)),
            Json::Array(list) => {
                for entry in list {
                    let (Some(name), Some(source)) = (entry["name"].as_str(), entry["template"].as_str()) else {
                        return Err(bad("a chat_template entry lacks `name` or `template`".into()));
                    };
                    match name {
                        DEFAULT | TOOL_USE => named.push((name, source)),
                        _ => {} // other named templates (`rag`, …) are not rendered here
                    }
                }
                if !named.iter().any(|(n, _)| *n == DEFAULT) {
                    return Err(bad("the chat_template list has no `default` template".into()));
                }
            }
            Json::Null => return Err(bad("no chat_template".into())),
            _ => return Err(bad("chat_template is neither a string nor a list".into())),
        }
        let special = config["added_tokens_decoder"]
            .as_object()
            .map(|o| {
                o.values()
                    .filter(|t| t["special"].as_bool().unwrap_or(false))
                    .filter_map(|t| t["content"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        Self::compile(&named, &token("bos_token"), &token("eos_token"), special)
    }

    fn compile(named: &[(&str, &str)], bos: &str, eos: &str, mut special: Vec<String>) -> Result<ChatTemplate> {
        let mut env = Environment::new();
        env.set_syntax(
            minijinja::syntax::SyntaxConfig::builder()
                .trim_blocks(true)
                .lstrip_blocks(true)
                .build()
                .map_err(|e| Error::ChatTemplate(e.to_string()))?,
        );
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.set_formatter(python_formatter);
        env.add_filter("tojson", tojson_filter);
        env.add_test("iterable", is_iterable);
        env.add_test("sequence", is_sequence);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        let mut uses_tools = false;
        for &(name, source) in named {
            env.add_template_owned(name.to_owned(), source.to_owned()).map_err(describe)?;
            let template = env.get_template(name).map_err(describe)?;
            uses_tools |= template.undeclared_variables(false).contains("tools");
        }
        special.extend([bos.to_owned(), eos.to_owned()]);
        special.retain(|s| !s.is_empty());
        special.sort_unstable();
        special.dedup();
        Ok(ChatTemplate {
            has_tool_use: named.iter().any(|(n, _)| *n == TOOL_USE),
            env,
            bos_token: bos.to_owned(),
            eos_token: eos.to_owned(),
            special_tokens: special,
            uses_tools,
        })
    }

    /// Whether the template reads `tools` (so describes tools itself); when it does not, a server
    /// that offers tools has to describe them in a message of its own.
    pub fn uses_tools(&self) -> bool {
        self.uses_tools
    }

    /// The text of the BOS token the template receives as `bos_token`.
    pub fn bos_token(&self) -> &str {
        &self.bos_token
    }

    /// The text of the EOS token the template receives as `eos_token`.
    pub fn eos_token(&self) -> &str {
        &self.eos_token
    }

    /// The prompt text for `messages` (and the OpenAI-shaped `tools` list, if any), ending with the
    /// opening of an assistant turn when `add_generation_prompt` is set.
    ///
    /// # Errors
    /// [`Error::ChatTemplate`] when the template fails or calls `raise_exception` (its message).
    pub fn render(
        &self,
        messages: &[ChatMessage],
        tools: Option<&serde_json::Value>,
        add_generation_prompt: bool,
    ) -> Result<String> {
        self.render_with_vars(messages, tools, add_generation_prompt, &Map::new())
    }

    /// [`ChatTemplate::render`] with extra template variables (`transformers`' `**kwargs` to
    /// `apply_chat_template`, e.g. `date_string` for Llama 3.1 or `enable_thinking`).
    ///
    /// # Errors
    /// As [`ChatTemplate::render`].
    pub fn render_with_vars(
        &self,
        messages: &[ChatMessage],
        tools: Option<&serde_json::Value>,
        add_generation_prompt: bool,
        vars: &Map<String, Json>,
    ) -> Result<String> {
        let shaped: Vec<Json> = messages.iter().map(|m| template_message(m, m.content.clone())).collect();
        self.render_shaped(shaped, tools, add_generation_prompt, vars)
    }

    fn render_shaped(
        &self,
        messages: Vec<Json>,
        tools: Option<&Json>,
        add_generation_prompt: bool,
        vars: &Map<String, Json>,
    ) -> Result<String> {
        let mut context = vars.clone();
        context.insert("messages".into(), Json::Array(messages));
        context.insert("tools".into(), tools.cloned().unwrap_or(Json::Null));
        context.insert("documents".into(), Json::Null);
        context.insert("add_generation_prompt".into(), Json::Bool(add_generation_prompt));
        context.insert("bos_token".into(), Json::String(self.bos_token.clone()));
        context.insert("eos_token".into(), Json::String(self.eos_token.clone()));
        let name = if tools.is_some() && self.has_tool_use { TOOL_USE } else { DEFAULT };
        let template = self.env.get_template(name).map_err(describe)?;
        template.render(Value::from(minijinja::value::Serde(&context))).map_err(describe)
    }

    /// [`ChatTemplate::render`] in pieces: the template's own text (with its special tokens)
    /// apart from the messages' contents, so that a server can tokenise contents without
    /// special tokens: a user who types `<|im_start|>` must not open a turn.
    ///
    /// The text is rendered once as it is (the text [`ChatTemplate::render`] returns) and once with
    /// each non-empty content between two private markers; when the marked rendering, markers
    /// removed, is the same text, the marked spans are the contents. Templates that `trim` contents
    /// are matched by marking the trimmed contents. When the template transforms contents in a way
    /// the markers cannot follow, the whole text is one template part (as `transformers` tokenises
    /// it), unless some content holds special-token text: then the request is refused.
    ///
    /// # Errors
    /// As [`ChatTemplate::render`]; [`Error::ChatTemplate`] when the contents cannot be kept apart
    /// and one of them contains special-token text, or when a tool call's name or arguments, a
    /// tool's definition or a tool message's name or id contains special-token text (they are
    /// rendered as template text).
    pub fn render_parts(
        &self,
        messages: &[ChatMessage],
        tools: Option<&serde_json::Value>,
        add_generation_prompt: bool,
    ) -> Result<Vec<ChatPart>> {
        self.render_parts_with_vars(messages, tools, add_generation_prompt, &Map::new())
    }

    /// [`ChatTemplate::render_parts`] with extra template variables.
    ///
    /// # Errors
    /// As [`ChatTemplate::render_parts`].
    pub fn render_parts_with_vars(
        &self,
        messages: &[ChatMessage],
        tools: Option<&serde_json::Value>,
        add_generation_prompt: bool,
        vars: &Map<String, Json>,
    ) -> Result<Vec<ChatPart>> {
        for m in messages {
            let other = m
                .tool_calls
                .iter()
                .flat_map(|c| [c.id.as_str(), c.name.as_str(), c.arguments.as_str()])
                .chain(m.tool_call_id.as_deref())
                .chain(m.name.as_deref());
            for text in other {
                if let Some(token) = self.special_text_in(text) {
                    return Err(Error::ChatTemplate(format!(
                        "a {} message's tool-call field contains the special token text {token:?}",
                        m.role
                    )));
                }
            }
        }
        if let Some(tools) = tools
            && let Some(token) = self.special_text_in(&tools.to_string())
        {
            return Err(Error::ChatTemplate(format!("a tool definition contains the special token text {token:?}")));
        }
        let text = self.render_with_vars(messages, tools, add_generation_prompt, vars)?;
        let markable = messages.iter().all(|m| !m.text().contains([OPEN, CLOSE]));
        if markable {
            for trimmed in [false, true] {
                let marked: Vec<Json> = messages
                    .iter()
                    .map(|m| {
                        let content = m.content.as_deref().map(|c| {
                            let c = if trimmed { c.trim() } else { c };
                            if c.is_empty() { c.to_owned() } else { format!("{OPEN}{c}{CLOSE}") }
                        });
                        template_message(m, content)
                    })
                    .collect();
                let rendered = self.render_shaped(marked, tools, add_generation_prompt, vars)?;
                if let Some(parts) = split_marked(&rendered)
                    && parts.iter().map(ChatPart::text).collect::<String>() == text
                {
                    return Ok(parts);
                }
            }
        }
        if let Some((role, token)) =
            messages.iter().find_map(|m| self.special_text_in(m.text()).map(|t| (m.role.as_str(), t)))
        {
            return Err(Error::ChatTemplate(format!(
                "this template transforms message contents so they cannot be told apart from its own text, \
                 and a {role} message contains the special token text {token:?}: refused, it would be read \
                 as a real special token"
            )));
        }
        Ok(if text.is_empty() { Vec::new() } else { vec![ChatPart::Template(text)] })
    }

    /// The first special-token text in `text`: the tokenizer's special tokens, and anything shaped
    /// `<|…|>` (the convention of most chat vocabularies).
    fn special_text_in(&self, text: &str) -> Option<String> {
        if let Some(t) = self.special_tokens.iter().find(|t| text.contains(t.as_str())) {
            return Some(t.clone());
        }
        let start = text.find("<|")?;
        let rest = &text[start + 2..];
        let end = rest.find("|>")?;
        let inner = &rest[..end];
        (!inner.is_empty() && inner.len() <= 64 && !inner.contains(char::is_whitespace)).then(|| format!("<|{inner}|>"))
    }
}

/// A message in the shape templates read (OpenAI/HF), with `content` as given.
fn template_message(m: &ChatMessage, content: Option<String>) -> Json {
    let mut out = Map::new();
    out.insert("role".into(), Json::String(m.role.clone()));
    out.insert("content".into(), content.map_or(Json::Null, Json::String));
    if !m.tool_calls.is_empty() {
        let calls = m
            .tool_calls
            .iter()
            .map(|c| {
                // vLLM passes the parsed arguments when they parse (templates `tojson` them).
                let arguments =
                    serde_json::from_str::<Json>(&c.arguments).unwrap_or_else(|_| Json::String(c.arguments.clone()));
                serde_json::json!({
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": arguments},
                })
            })
            .collect();
        out.insert("tool_calls".into(), Json::Array(calls));
    }
    if let Some(id) = &m.tool_call_id {
        out.insert("tool_call_id".into(), Json::String(id.clone()));
    }
    if let Some(name) = &m.name {
        out.insert("name".into(), Json::String(name.clone()));
    }
    Json::Object(out)
}

/// Splits a rendering with marked contents; `None` when the markers are not well nested.
fn split_marked(rendered: &str) -> Option<Vec<ChatPart>> {
    let mut parts: Vec<ChatPart> = Vec::new();
    let mut push = |part: ChatPart| {
        if part.text().is_empty() {
            return;
        }
        match (parts.last_mut(), &part) {
            (Some(ChatPart::Template(a)), ChatPart::Template(b))
            | (Some(ChatPart::Content(a)), ChatPart::Content(b)) => a.push_str(b),
            _ => parts.push(part),
        }
    };
    let mut rest = rendered;
    while let Some(open) = rest.find([OPEN, CLOSE]) {
        if rest[open..].starts_with(CLOSE) {
            return None;
        }
        push(ChatPart::Template(rest[..open].to_owned()));
        let after = &rest[open + OPEN.len_utf8()..];
        let close = after.find([OPEN, CLOSE])?;
        if after[close..].starts_with(OPEN) {
            return None;
        }
        push(ChatPart::Content(after[..close].to_owned()));
        rest = &after[close + CLOSE.len_utf8()..];
    }
    push(ChatPart::Template(rest.to_owned()));
    Some(parts)
}

/// A minijinja error as [`Error::ChatTemplate`]: `raise_exception`'s message as it is, other
/// errors with their description (and location).
fn describe(e: minijinja::Error) -> Error {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(err) = source {
        if let Some(m) = err.downcast_ref::<minijinja::Error>()
            && let Some(msg) = m.detail().and_then(|d| d.strip_prefix(RAISED))
        {
            return Error::ChatTemplate(msg.to_owned());
        }
        source = err.source();
    }
    Error::ChatTemplate(e.to_string())
}

/// Prefix that marks an error as `raise_exception`'s (stripped before it reaches the caller).
const RAISED: &str = "raise_exception: ";

/// jinja2's `is iterable` (`iter(x)` works): `None` is not (minijinja iterates it as empty),
/// an undefined value is (jinja2's `Undefined` iterates as empty).
fn is_iterable(value: &Value) -> bool {
    matches!(
        value.kind(),
        ValueKind::Undefined
            | ValueKind::String
            | ValueKind::Bytes
            | ValueKind::Seq
            | ValueKind::Map
            | ValueKind::Iterable
    )
}

/// jinja2's `is sequence` (has `len` and indexing): strings, lists, dicts, and undefined values.
fn is_sequence(value: &Value) -> bool {
    matches!(
        value.kind(),
        ValueKind::Undefined | ValueKind::String | ValueKind::Bytes | ValueKind::Seq | ValueKind::Map
    )
}

/// `raise_exception(msg)`: the template refuses the conversation.
fn raise_exception(message: String) -> std::result::Result<Value, minijinja::Error> {
    Err(minijinja::Error::new(ErrorKind::InvalidOperation, format!("{RAISED}{message}")))
}

/// `strftime_now(fmt)`: the current time (UTC) formatted like Python's `datetime.strftime`.
fn strftime_now(format: String) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    strftime_utc(&format, now)
}

/// `time.strftime(format, time.gmtime(unix_seconds))` in the C locale, for the directives
/// `%Y %y %m %d %e %j %H %I %M %S %p %a %A %b %B %h %F %T %%` (others are kept as they are).
pub fn strftime_utc(format: &str, unix_seconds: i64) -> String {
    const DAYS: [&str; 7] = ["Thursday", "Friday", "Saturday", "Sunday", "Monday", "Tuesday", "Wednesday"];
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let days = unix_seconds.div_euclid(86_400);
    let secs = unix_seconds.rem_euclid(86_400);
    let (hour, minute, second) = (secs / 3600, secs / 60 % 60, secs % 60);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy_march = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy_march + 2) / 153;
    let day = doy_march - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let cumulative = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    let yday = cumulative[(month - 1) as usize] + day + i64::from(leap && month > 2);
    let weekday = DAYS[days.rem_euclid(7) as usize];
    let month_name = MONTHS[(month - 1) as usize];
    let hour12 = if hour % 12 == 0 { 12 } else { hour % 12 };
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('Y') => out.push_str(&year.to_string()),
            Some('y') => out.push_str(&format!("{:02}", year.rem_euclid(100))),
            Some('m') => out.push_str(&format!("{month:02}")),
            Some('d') => out.push_str(&format!("{day:02}")),
            Some('e') => out.push_str(&format!("{day:>2}")),
            Some('j') => out.push_str(&format!("{yday:03}")),
            Some('H') => out.push_str(&format!("{hour:02}")),
            Some('I') => out.push_str(&format!("{hour12:02}")),
            Some('M') => out.push_str(&format!("{minute:02}")),
            Some('S') => out.push_str(&format!("{second:02}")),
            Some('p') => out.push_str(if hour < 12 { "AM" } else { "PM" }),
            Some('a') => out.push_str(&weekday[..3]),
            Some('A') => out.push_str(weekday),
            Some('b') | Some('h') => out.push_str(&month_name[..3]),
            Some('B') => out.push_str(month_name),
            Some('F') => out.push_str(&format!("{year}-{month:02}-{day:02}")),
            Some('T') => out.push_str(&format!("{hour:02}:{minute:02}:{second:02}")),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

/// Prints `{{ value }}` as Python's `str(value)` does: `None`, `True`/`False`, and lists and dicts
/// as their `repr` (`['a', None]`, `{'k': 1}`), floats as `repr(float)`; strings as they are.
fn python_formatter(
    out: &mut minijinja::Output,
    state: &mut State,
    value: &Value,
) -> std::result::Result<(), minijinja::Error> {
    match value.kind() {
        ValueKind::None | ValueKind::Bool | ValueKind::Number | ValueKind::Seq | ValueKind::Map => {
            let mut text = String::new();
            python_repr(value, &mut text)?;
            out.write_str(&text).map_err(|_| minijinja::Error::new(ErrorKind::WriteFailure, "writing the output"))
        }
        _ => minijinja::escape_formatter(out, state, value),
    }
}

/// Python's `repr` of a template value (strings quoted as Python quotes them).
fn python_repr(value: &Value, out: &mut String) -> std::result::Result<(), minijinja::Error> {
    match value.kind() {
        ValueKind::Undefined | ValueKind::None => out.push_str("None"),
        ValueKind::Bool => out.push_str(if value.is_true() { "True" } else { "False" }),
        ValueKind::Number if !value.is_integer() => out.push_str(&python_float_repr(f64::try_from(value.clone())?)),
        ValueKind::String => {
            let s = value.as_str().unwrap_or_default();
            let quote = if s.contains('\'') && !s.contains('"') { '"' } else { '\'' };
            out.push(quote);
            for c in s.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    c if c == quote => {
                        out.push('\\');
                        out.push(c);
                    }
                    c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
                    c => out.push(c),
                }
            }
            out.push(quote);
        }
        ValueKind::Seq | ValueKind::Iterable => {
            out.push('[');
            for (i, item) in value.try_iter()?.enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                python_repr(&item, out)?;
            }
            out.push(']');
        }
        ValueKind::Map => {
            out.push('{');
            for (i, key) in value.try_iter()?.enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                python_repr(&key, out)?;
                out.push_str(": ");
                python_repr(&value.get_item(&key)?, out)?;
            }
            out.push('}');
        }
        _ => out.push_str(&value.to_string()),
    }
    Ok(())
}

/// HF's `tojson`: `json.dumps(x, ensure_ascii=False, indent=indent, separators=separators,
/// sort_keys=sort_keys)` (minijinja's own filter HTML-escapes and always sorts keys).
fn tojson_filter(_state: &State, value: Value, kwargs: Kwargs) -> std::result::Result<Value, minijinja::Error> {
    let invalid = |msg: &str| minijinja::Error::new(ErrorKind::InvalidOperation, format!("tojson: {msg}"));
    let indent: Option<Value> = kwargs.get("indent")?;
    let indent = match indent {
        None => None,
        Some(v) if v.is_none() || v.is_undefined() => None,
        Some(v) if v.kind() == ValueKind::String => Some(v.as_str().unwrap_or_default().to_owned()),
        Some(v) => {
            let n = v.as_i64().ok_or_else(|| invalid("indent must be an integer or a string"))?;
            Some(" ".repeat(n.max(0) as usize))
        }
    };
    let separators: Option<Value> = kwargs.get("separators")?;
    let (item_sep, key_sep) = match separators {
        Some(v) if !v.is_none() && !v.is_undefined() => {
            let pair: Vec<Value> = v.try_iter()?.collect();
            match pair.as_slice() {
                [a, b] => (a.to_string(), b.to_string()),
                _ => return Err(invalid("separators must be a pair of strings")),
            }
        }
        _ => (if indent.is_some() { "," } else { ", " }.to_owned(), ": ".to_owned()),
    };
    let sort_keys: Option<bool> = kwargs.get("sort_keys")?;
    let ensure_ascii: Option<bool> = kwargs.get("ensure_ascii")?;
    kwargs.assert_all_used()?;
    let style = JsonStyle {
        indent,
        item_sep,
        key_sep,
        sort_keys: sort_keys.unwrap_or(false),
        ensure_ascii: ensure_ascii.unwrap_or(false),
    };
    let mut out = String::new();
    style.write(&value, 0, &mut out)?;
    Ok(Value::from(out))
}

/// The formatting options of Python's `json.dumps`.
struct JsonStyle {
    indent: Option<String>,
    item_sep: String,
    key_sep: String,
    sort_keys: bool,
    ensure_ascii: bool,
}

impl JsonStyle {
    fn write(&self, value: &Value, depth: usize, out: &mut String) -> std::result::Result<(), minijinja::Error> {
        match value.kind() {
            ValueKind::Undefined | ValueKind::None => out.push_str("null"),
            ValueKind::Bool => out.push_str(if value.is_true() { "true" } else { "false" }),
            ValueKind::Number => {
                if value.is_integer() {
                    out.push_str(&value.to_string());
                } else {
                    let f = f64::try_from(value.clone())?;
                    out.push_str(&python_float_repr(f));
                }
            }
            ValueKind::String | ValueKind::Bytes => self.write_str(&value.to_string(), out),
            ValueKind::Seq | ValueKind::Iterable => {
                let items: Vec<Value> = value.try_iter()?.collect();
                self.write_container(('[', ']'), items.len(), depth, out, |i, out| {
                    self.write(&items[i], depth + 1, out)
                })?;
            }
            ValueKind::Map => {
                let mut entries: Vec<(String, Value)> = Vec::new();
                for key in value.try_iter()? {
                    let item = value.get_item(&key)?;
                    let key = match key.kind() {
                        ValueKind::String => key.to_string(),
                        ValueKind::None => "null".into(),
                        ValueKind::Bool => (if key.is_true() { "true" } else { "false" }).into(),
                        _ => key.to_string(),
                    };
                    entries.push((key, item));
                }
                if self.sort_keys {
                    entries.sort_by(|a, b| a.0.cmp(&b.0));
                }
                self.write_container(('{', '}'), entries.len(), depth, out, |i, out| {
                    self.write_str(&entries[i].0, out);
                    out.push_str(&self.key_sep);
                    self.write(&entries[i].1, depth + 1, out)
                })?;
            }
            _ => self.write_str(&value.to_string(), out),
        }
        Ok(())
    }

    fn write_container(
        &self,
        (open, close): (char, char),
        len: usize,
        depth: usize,
        out: &mut String,
        mut item: impl FnMut(usize, &mut String) -> std::result::Result<(), minijinja::Error>,
    ) -> std::result::Result<(), minijinja::Error> {
        out.push(open);
        if len == 0 {
            out.push(close);
            return Ok(());
        }
        let newline = |out: &mut String, level: usize| {
            if let Some(indent) = &self.indent {
                out.push('\n');
                for _ in 0..level {
                    out.push_str(indent);
                }
            }
        };
        for i in 0..len {
            if i > 0 {
                out.push_str(&self.item_sep);
            }
            newline(out, depth + 1);
            item(i, out)?;
        }
        newline(out, depth);
        out.push(close);
        Ok(())
    }

    fn write_str(&self, s: &str, out: &mut String) {
        out.push('"');
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c if self.ensure_ascii && !c.is_ascii() => {
                    let mut units = [0u16; 2];
                    for unit in c.encode_utf16(&mut units) {
                        out.push_str(&format!("\\u{unit:04x}"));
                    }
                }
                c => out.push(c),
            }
        }
        out.push('"');
    }
}

/// Python's `repr(float)`: the shortest round-trip digits, fixed notation for exponents in
/// [-4, 16), otherwise `d.ddde±XX`; `NaN`, `Infinity`, `-Infinity` as `json.dumps` writes them.
fn python_float_repr(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity".into() } else { "-Infinity".into() };
    }
    let sci = format!("{f:e}"); // shortest digits: "-1.5e-7", "1e16"
    let (mantissa, exp) = sci.split_once('e').expect("`{:e}` has an exponent");
    let exp: i32 = exp.parse().expect("integer exponent");
    let (sign, mantissa) = mantissa.strip_prefix('-').map_or(("", mantissa), |m| ("-", m));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    if (-4..16).contains(&exp) {
        let point = exp + 1; // digits before the decimal point
        let body = if point <= 0 {
            format!("0.{}{digits}", "0".repeat((-point) as usize))
        } else if point as usize >= digits.len() {
            format!("{digits}{}.0", "0".repeat(point as usize - digits.len()))
        } else {
            format!("{}.{}", &digits[..point as usize], &digits[point as usize..])
        };
        format!("{sign}{body}")
    } else {
        let rest = &digits[1..];
        let mantissa = if rest.is_empty() { digits[..1].to_owned() } else { format!("{}.{rest}", &digits[..1]) };
        format!("{sign}{mantissa}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
    }
}

/// A piece of a rendered conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatPart {
    /// Text of the template: tokenised with its special tokens.
    Template(String),
    /// A message's content: tokenised as plain text.
    Content(String),
}

impl ChatPart {
    /// The text.
    pub fn text(&self) -> &str {
        match self {
            ChatPart::Template(t) | ChatPart::Content(t) => t,
        }
    }
}

/// The tokens that end an assistant turn and so stop generation: ChatML's `<|im_end|>` and
/// `<|endoftext|>` and the tokenizer's end-of-sequence token, those the tokenizer has, sorted.
pub fn end_of_turn_tokens(tokenizer: &crate::tokenize::Bpe) -> Vec<u32> {
    let mut stop: Vec<u32> = ["<|im_end|>", "<|endoftext|>"]
        .iter()
        .filter_map(|t| tokenizer.token_id(t))
        .chain(tokenizer.eos_id())
        .collect();
    stop.sort_unstable();
    stop.dedup();
    stop
}

/// The one token a grammar-constrained reply ends on: `<|im_end|>` when the tokenizer has it, else its
/// end-of-sequence token.
pub fn end_of_turn_token(tokenizer: &crate::tokenize::Bpe) -> Option<u32> {
    tokenizer.token_id("<|im_end|>").or(tokenizer.eos_id())
}
