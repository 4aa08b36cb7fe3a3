//! Chat templates: turning a list of messages into the prompt text a chat model was trained on.
//!
//! SmolLM2 uses ChatML (`<|im_start|>role\ncontent<|im_end|>\n`), and its
//! template (the GGUF key `tokenizer.chat_template`, a Jinja program) adds a
//! default system prompt when the conversation does not start with one. This
//! renders that template's output directly: a Jinja interpreter is out of scope,
//! and [`ChatTemplate::from_gguf`] refuses templates it does not recognise.

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

    /// The prompt text for `messages` (and the OpenAI-shaped `tools` list, if any), ending with the
    /// opening of an assistant turn when `add_generation_prompt` is set.
    ///
    /// # Errors
    /// [`Error::ChatTemplate`] when the template fails or calls `raise_exception`.
    pub fn render(
        &self,
        messages: &[ChatMessage],
        tools: Option<&serde_json::Value>,
        add_generation_prompt: bool,
    ) -> Result<String> {
        Ok(self.render_parts(messages, tools, add_generation_prompt)?.iter().map(ChatPart::text).collect())
    }

    /// [`ChatTemplate::render`] in pieces: the template's own text (with its special tokens)
    /// apart from the messages' contents, so that a server can tokenise contents without
    /// special tokens: a user who types `<|im_start|>` must not open a turn.
    ///
    /// # Errors
    /// As [`ChatTemplate::render`].
    pub fn render_parts(
        &self,
        messages: &[ChatMessage],
        tools: Option<&serde_json::Value>,
        add_generation_prompt: bool,
    ) -> Result<Vec<ChatPart>> {
        let _ = tools;
        let mut parts = Vec::new();
        let mut turn = |role: &str, content: &str| {
            parts.push(ChatPart::Template(format!("{IM_START}{role}\n")));
            parts.push(ChatPart::Content(content.to_owned()));
            parts.push(ChatPart::Template(format!("{IM_END}\n")));
        };
        if let Some(system) = &self.default_system
            && messages.first().is_some_and(|m| m.role != "system")
        {
            turn("system", system);
        }
        for m in messages {
            turn(&m.role, m.text());
        }
        if add_generation_prompt {
            parts.push(ChatPart::Template(format!("{IM_START}assistant\n")));
        }
        Ok(parts)
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
