//! Chat templates: turning a list of messages into the prompt text a chat model was trained on.
//!
//! SmolLM2 uses ChatML (`<|im_start|>role\ncontent<|im_end|>\n`), and its
//! template (the GGUF key `tokenizer.chat_template`, a Jinja program) adds a
//! default system prompt when the conversation does not start with one. This
//! renders that template's output directly: a Jinja interpreter is out of scope,
//! and [`ChatTemplate::from_gguf`] refuses templates it does not recognise.

use crate::formats::gguf::Gguf;
use crate::{Error, Result};

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

impl ChatMessage {
    /// A message from `role`.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        ChatMessage { role: role.into(), content: content.into() }
    }
}

/// A ChatML template, with the system prompt used when the conversation has none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatTemplate {
    /// Inserted as the first message when the first message is not from `system`.
    pub default_system: Option<String>,
    /// The token that ends a turn (generation stops there).
    pub end_of_turn: String,
}

/// The start of a ChatML turn.
pub const IM_START: &str = "<|im_start|>";
/// The end of a ChatML turn.
pub const IM_END: &str = "<|im_end|>";

impl ChatTemplate {
    /// Plain ChatML without a default system prompt.
    pub fn chatml() -> Self {
        ChatTemplate { default_system: None, end_of_turn: IM_END.into() }
    }

    /// The template of a GGUF file (`tokenizer.chat_template`) when it is ChatML,
    /// with its default system prompt if it declares one.
    ///
    /// # Errors
    /// [`Error::UnsupportedModel`] when the file has no template or a non-ChatML one.
    pub fn from_gguf(gguf: &Gguf) -> Result<ChatTemplate> {
        let source = gguf.get_str("tokenizer.chat_template")?;
        if !source.contains(IM_START) || !source.contains(IM_END) {
            return Err(Error::UnsupportedModel(
                "only ChatML chat templates are rendered (tokenizer.chat_template has no <|im_start|>)".into(),
            ));
        }
        // SmolLM2's template: `{{ '<|im_start|>system\nDEFAULT<|im_end|>\n' }}` when messages[0] is not system.
        let marker = format!("{IM_START}system\n");
        let default_system = source.find(&marker).and_then(|at| {
            let rest = &source[at + marker.len()..];
            rest.find(IM_END).map(|end| rest[..end].to_owned())
        });
        Ok(ChatTemplate { default_system, end_of_turn: IM_END.into() })
    }

    /// The prompt text for `messages`, ending with the opening of an assistant turn
    /// when `add_generation_prompt` is set.
    pub fn render(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> String {
        let mut out = String::new();
        let turn = |out: &mut String, role: &str, content: &str| {
            out.push_str(IM_START);
            out.push_str(role);
            out.push('\n');
            out.push_str(content);
            out.push_str(IM_END);
            out.push('\n');
        };
        if let Some(system) = &self.default_system
            && messages.first().is_some_and(|m| m.role != "system")
        {
            turn(&mut out, "system", system);
        }
        for m in messages {
            turn(&mut out, &m.role, &m.content);
        }
        if add_generation_prompt {
            out.push_str(IM_START);
            out.push_str("assistant\n");
        }
        out
    }
}
