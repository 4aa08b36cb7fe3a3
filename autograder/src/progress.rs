//! Progress on the terminal: one spinner and one bar style for every long step.
//!
//! indicatif draws only to a terminal: when stderr is a pipe or a file (CI logs, a caller
//! capturing `--json` output) or `TERM` is `dumb`, these bars are hidden and print nothing, so
//! logs keep only the lines the steps print themselves (and a spinner's message, once).

use std::borrow::Cow;
use std::time::Duration;

pub use indicatif::ProgressBar;
use indicatif::{ProgressFinish, ProgressStyle};

/// A ticking spinner on stderr saying `message`; it clears itself when finished or dropped. Off a
/// terminal it draws nothing but prints `message…` once, so a log still says what the step is.
pub fn spinner(message: impl Into<Cow<'static, str>>) -> ProgressBar {
    let bar = ProgressBar::new_spinner().with_message(message).with_finish(ProgressFinish::AndClear);
    if bar.is_hidden() {
        eprintln!("{}…", bar.message());
    }
    bar.set_style(ProgressStyle::with_template("{spinner} {msg} ({elapsed})").expect("valid template"));
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// [`spinner`] when `show`, else a hidden bar (for `--json` runs and callers that print nothing).
pub fn spinner_if(show: bool, message: impl Into<Cow<'static, str>>) -> ProgressBar {
    if show { spinner(message) } else { ProgressBar::hidden() }
}

/// A bar of `len` steps on stderr: `⠋ <prefix> [=====>    ] 3/8 <msg>`; it clears itself when finished or dropped.
pub fn bar(len: u64, prefix: impl Into<Cow<'static, str>>, unit: &str) -> ProgressBar {
    let bar = ProgressBar::new(len).with_prefix(prefix).with_finish(ProgressFinish::AndClear);
    let template = format!("{{spinner}} {{prefix}} [{{bar:30}}] {{pos}}/{{len}}{unit} {{msg}}");
    bar.set_style(ProgressStyle::with_template(&template).expect("valid template").progress_chars("=> "));
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// [`bar`] when `show`, else a hidden bar.
pub fn bar_if(show: bool, len: u64, prefix: impl Into<Cow<'static, str>>, unit: &str) -> ProgressBar {
    if show { bar(len, prefix, unit) } else { ProgressBar::hidden() }
}

/// `line` cut to at most `max` characters (with `…`), for a bar's message.
pub fn shorten(line: &str, max: usize) -> String {
    let line = line.trim();
    if line.chars().count() <= max {
        return line.to_string();
    }
    let cut: String = line.chars().take(max.saturating_sub(1)).collect();
    format!("{cut}…")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_cut_to_width() {
        for (line, max, expected) in
            [("  Compiling serde v1.0.228  ", 40, "Compiling serde v1.0.228"), ("abcdef", 4, "abc…"), ("abc", 3, "abc")]
        {
            assert_eq!(shorten(line, max), expected);
        }
    }

    #[test]
    fn bars_are_hidden_off_a_terminal() {
        // Under `cargo test` stderr is captured or piped in CI; either way a hidden bar draws nothing.
        assert!(spinner_if(false, "x").is_hidden());
        assert!(bar_if(false, 3, "x", "").is_hidden());
    }
}
