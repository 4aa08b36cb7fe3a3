//! Application prompt templates (feature `prompt`): tera templates with named variables and includes,
//! a token budget measured with the model's tokenizer, and truncation that never cuts a special token.
