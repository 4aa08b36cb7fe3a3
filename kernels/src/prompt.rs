//! Application prompt templates (feature `prompt`): tera templates with named variables and includes,
//! a token budget measured with the model's tokenizer, and truncation that never cuts a special token.
//!
//! Templates are [Tera](https://keats.github.io/tera/docs/) 1.x (Jinja2-like syntax; `{% include %}`,
//! variables, filters), rendered with a `serde_json::Value` context and no auto-escaping (a prompt is
//! not HTML). Budgets count tokens as the model sees them: [`Bpe::encode`], so each special token's
//! text counts as one token. The truncation strategies are plain functions with a `Config`:
//! - [`drop_oldest_turns`]: keep the leading system message(s) and the latest user turn, drop whole
//!   older turns (a user message and the replies after it, so roles keep alternating) until the
//!   conversation, rendered by its chat template and tokenised as the server does
//!   ([`ChatTemplate::render_parts`]), fits.
//! - [`truncate_middle`]: keep the head and the tail of a document and put a marker between; cuts are
//!   made between token ids, so never inside a special token, and only where the bytes before the cut
//!   end a UTF-8 character (byte-level BPE tokens can hold part of one).
//!
//! The "lost in the middle" effect (Liu et al., 2023, *Lost in the Middle: How Language Models Use Long
//! Contexts*) is why the middle is what goes.

use std::path::Path;

use serde_json::Value;
use tera::{Context, Tera};

use crate::llm::{ChatMessage, ChatPart, ChatTemplate};
use crate::tokenize::Bpe;
use crate::{Error, Result};

/// Named prompt templates that may include one another.
#[derive(Debug, Clone)]
pub struct PromptLibrary {
    tera: Tera,
}

impl PromptLibrary {
    /// A library of `(name, source)` pairs; a template includes another by name
    /// (`{% include "header" %}`).
    ///
    /// # Errors
    /// [`Error::PromptTemplate`] when a source does not parse or extends a template that is not there
    /// (an include of a missing template fails when rendering).
    pub fn from_sources<N: AsRef<str>, S: AsRef<str>>(templates: impl IntoIterator<Item = (N, S)>) -> Result<Self> {
        let mut tera = Tera::default();
        tera.autoescape_on(Vec::new());
        let templates: Vec<(String, String)> =
            templates.into_iter().map(|(n, s)| (n.as_ref().to_owned(), s.as_ref().to_owned())).collect();
        tera.add_raw_templates(templates).map_err(describe)?;
        Ok(PromptLibrary { tera })
    }

    /// Every file under `folder` (recursively), named by its path relative to `folder` with `/`
    /// separators (`support/answer.txt`).
    ///
    /// # Errors
    /// [`Error::PromptTemplate`] when the folder or a file cannot be read or is not UTF-8, and as
    /// [`PromptLibrary::from_sources`].
    pub fn from_dir(folder: impl AsRef<Path>) -> Result<Self> {
        let folder = folder.as_ref();
        let mut files = Vec::new();
        let io = |path: &Path, e: std::io::Error| Error::PromptTemplate(format!("{}: {e}", path.display()));
        let mut pending = vec![folder.to_path_buf()];
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(&dir).map_err(|e| io(&dir, e))? {
                let path = entry.map_err(|e| io(&dir, e))?.path();
                if path.is_dir() {
                    pending.push(path);
                    continue;
                }
                let name = path
                    .strip_prefix(folder)
                    .expect("walked from the folder")
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                let bytes = std::fs::read(&path).map_err(|e| io(&path, e))?;
                let source = String::from_utf8(bytes)
                    .map_err(|_| Error::PromptTemplate(format!("{}: not UTF-8 text", path.display())))?;
                files.push((name, source));
            }
        }
        files.sort();
        Self::from_sources(files)
    }

    /// The templates' names, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.tera.get_template_names().collect();
        names.sort_unstable();
        names
    }

    /// Renders template `name` with the variables of `context` (a JSON object).
    ///
    /// # Errors
    /// [`Error::PromptTemplate`] when the context is not an object, the template is unknown, or
    /// rendering fails (a variable it uses is missing, a filter fails, …), with tera's explanation.
    pub fn render(&self, name: &str, context: &Value) -> Result<String> {
        if !context.is_object() {
            return Err(Error::PromptTemplate(format!("the context of {name:?} must be a JSON object")));
        }
        let context = Context::from_value(context.clone()).map_err(describe)?;
        self.tera.render(name, &context).map_err(describe)
    }

    /// [`PromptLibrary::render`], then checks that the text fits `max_tokens` tokens of `bpe`;
    /// returns the text and its token count.
    ///
    /// # Errors
    /// As [`PromptLibrary::render`]; [`Error::PromptBudget`] when the text is longer.
    pub fn render_within(&self, name: &str, context: &Value, bpe: &Bpe, max_tokens: usize) -> Result<(String, usize)> {
        let text = self.render(name, context)?;
        let tokens = count_tokens(bpe, &text);
        if tokens > max_tokens {
            return Err(Error::PromptBudget {
                what: format!("the prompt {name:?}"),
                needed: tokens,
                available: max_tokens,
            });
        }
        Ok((text, tokens))
    }
}

/// tera's error with its causes (tera puts the useful part in the source chain).
fn describe(e: tera::Error) -> Error {
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    Error::PromptTemplate(message)
}

/// Tokens of `text` as the model reads a prompt: special-token text counts as one token each.
pub fn count_tokens(bpe: &Bpe, text: &str) -> usize {
    bpe.encode(text).len()
}

/// Tokens of a conversation as a server tokenises it: the template's text with special tokens, the
/// contents without ([`ChatTemplate::render_parts`]).
///
/// # Errors
/// The template's errors.
pub fn count_chat_tokens(
    bpe: &Bpe,
    template: &ChatTemplate,
    messages: &[ChatMessage],
    add_generation_prompt: bool,
) -> Result<usize> {
    let parts = template.render_parts(messages, None, add_generation_prompt)?;
    Ok(parts
        .iter()
        .map(|p| match p {
            ChatPart::Template(t) => bpe.encode(t).len(),
            ChatPart::Content(c) => bpe.encode_ordinary(c).len(),
        })
        .sum())
}

/// How [`drop_oldest_turns`] fits a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnsConfig {
    /// Tokens the rendered conversation may take (leave room for the answer yourself).
    pub max_tokens: usize,
    /// Render with the opening of the assistant's turn (as a server does).
    pub add_generation_prompt: bool,
}

impl Default for TurnsConfig {
    fn default() -> Self {
        TurnsConfig { max_tokens: 2048, add_generation_prompt: true }
    }
}

/// A conversation that fits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FittedTurns {
    /// The messages kept, in order.
    pub messages: Vec<ChatMessage>,
    /// How many messages were dropped (whole turns: a user message and what followed it).
    pub dropped_messages: usize,
    /// How many turns were dropped.
    pub dropped_turns: usize,
    /// Tokens of the kept conversation.
    pub tokens: usize,
}

/// Drops the oldest turns of `messages` until the conversation fits `config.max_tokens`. The leading
/// system message(s) and the latest turn (from the last user message on) are always kept.
///
/// # Errors
/// [`Error::PromptBudget`] when even the system message(s) and the latest turn do not fit; the
/// template's errors.
pub fn drop_oldest_turns(
    bpe: &Bpe,
    template: &ChatTemplate,
    messages: &[ChatMessage],
    config: &TurnsConfig,
) -> Result<FittedTurns> {
    let system_end = messages.iter().take_while(|m| m.role == "system").count();
    let last_user =
        messages.iter().rposition(|m| m.role == "user").filter(|&i| i >= system_end).unwrap_or(messages.len());
    // Turn starts among the droppable messages: each user message, and the first droppable message.
    let mut starts: Vec<usize> = (system_end..last_user).filter(|&i| messages[i].role == "user").collect();
    if system_end < last_user && starts.first() != Some(&system_end) {
        starts.insert(0, system_end);
    }
    starts.push(last_user);
    let count = |kept: &[ChatMessage]| count_chat_tokens(bpe, template, kept, config.add_generation_prompt);
    // The fewest turns to drop: token counts fall as turns go, so search the smallest that fits.
    let keep_from = |dropped_turns: usize| -> Vec<ChatMessage> {
        let from = starts[dropped_turns];
        messages[..system_end].iter().chain(&messages[from..]).cloned().collect()
    };
    let all_dropped = starts.len() - 1;
    let minimum = keep_from(all_dropped);
    let minimum_tokens = count(&minimum)?;
    if minimum_tokens > config.max_tokens {
        return Err(Error::PromptBudget {
            what: "the system message and the latest user turn".into(),
            needed: minimum_tokens,
            available: config.max_tokens,
        });
    }
    let (mut lo, mut hi) = (0, all_dropped); // hi fits
    while lo < hi {
        let mid = (lo + hi) / 2;
        if count(&keep_from(mid))? <= config.max_tokens {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    let kept = keep_from(hi);
    let tokens = count(&kept)?;
    Ok(FittedTurns { dropped_messages: messages.len() - kept.len(), dropped_turns: hi, messages: kept, tokens })
}

/// How [`truncate_middle`] shortens a document.
#[derive(Debug, Clone, PartialEq)]
pub struct MiddleConfig {
    /// Tokens the result may take, marker included.
    pub max_tokens: usize,
    /// Text put where the middle was.
    pub marker: String,
    /// Share of the kept tokens taken from the head (the rest from the tail), in `[0, 1]`.
    pub head_share: f64,
}

impl Default for MiddleConfig {
    fn default() -> Self {
        MiddleConfig { max_tokens: 1024, marker: "\n[…]\n".into(), head_share: 0.5 }
    }
}

/// A document cut to its budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncated {
    /// Head, marker, tail (or the document itself when it fitted).
    pub text: String,
    /// Tokens of `text` ([`count_tokens`]).
    pub tokens: usize,
    /// Tokens of the document that were left out.
    pub removed_tokens: usize,
}

/// Keeps the head and tail of `document` within `config.max_tokens` tokens, the marker between them.
/// Cuts fall between token ids (special-token text stays whole or goes whole) at UTF-8 character
/// boundaries.
///
/// # Errors
/// [`Error::PromptBudget`] when the marker alone does not fit; [`Error::PromptTemplate`] for a
/// `head_share` outside `[0, 1]`.
pub fn truncate_middle(bpe: &Bpe, document: &str, config: &MiddleConfig) -> Result<Truncated> {
    if !(0.0..=1.0).contains(&config.head_share) {
        return Err(Error::PromptTemplate(format!("head_share {} is outside [0, 1]", config.head_share)));
    }
    let ids = bpe.encode(document);
    if ids.len() <= config.max_tokens {
        return Ok(Truncated { text: document.to_owned(), tokens: ids.len(), removed_tokens: 0 });
    }
    let marker_tokens = count_tokens(bpe, &config.marker);
    if marker_tokens > config.max_tokens {
        return Err(Error::PromptBudget {
            what: "the truncation marker".into(),
            needed: marker_tokens,
            available: config.max_tokens,
        });
    }
    // Byte offset in `document` after each id; a cut at id boundary i is allowed where that offset is
    // a character boundary.
    let mut offsets = Vec::with_capacity(ids.len() + 1);
    offsets.push(0usize);
    for &id in &ids {
        let len = bpe.token_bytes(id)?.len();
        offsets.push(offsets.last().unwrap() + len);
    }
    if offsets.last() != Some(&document.len()) {
        return Err(Error::PromptTemplate("the tokenizer does not round-trip this document".into()));
    }
    let n = ids.len();
    let mut keep = config.max_tokens - marker_tokens;
    loop {
        let head_ids = ((keep as f64) * config.head_share).floor() as usize;
        let tail_ids = keep - head_ids;
        // Head: the longest allowed prefix of at most head_ids ids; tail: the longest allowed suffix.
        let head = (0..=head_ids).rev().find(|&i| document.is_char_boundary(offsets[i])).unwrap_or(0);
        let tail = (n - tail_ids..=n).find(|&i| document.is_char_boundary(offsets[i])).unwrap_or(n);
        let text = format!("{}{}{}", &document[..offsets[head]], config.marker, &document[offsets[tail]..]);
        let tokens = count_tokens(bpe, &text);
        // Re-encoding may merge across the joins differently; shrink until the text itself fits.
        if tokens <= config.max_tokens || keep == 0 {
            return Ok(Truncated { text, tokens, removed_tokens: tail - head });
        }
        keep -= (tokens - config.max_tokens).min(keep);
    }
}
