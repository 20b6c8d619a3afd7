//! The filters templates use, and the Discord-markdown escaping applied to every `{{ … }}`.
//!
//! Filters that produce markup of their own (`ts` gives `<t:…:R>`) return safe strings so the
//! escaping does not break them; everything else is escaped when printed.
//!
//! Three rooms: `escape` (markdown escaping, stripping hidden characters, and the text filters
//! `md`, `raw`, `truncate`), `numbers` (bytes, timestamps, durations, percentages, days and
//! grouped numbers, in the language's units and separators) and `words` (statuses and reset
//! strategies as emoji or in the language's words).

mod escape;
mod numbers;
mod words;

use minijinja::value::Value;
use minijinja::{Error, ErrorKind};

pub use escape::{escape_markdown, is_blank, md, raw, shows_nothing, strip_invisible, truncate};
pub use numbers::{
    bytes, days, duration, format_bytes, format_duration, format_number, number_filter, percent, relative_days,
    trim_decimals, ts, unix_seconds,
};
pub use words::{reset_text, status_emoji, status_text};

fn undefined_check(value: &Value) -> Result<(), Error> {
    if value.is_undefined() {
        return Err(Error::new(ErrorKind::UndefinedError, "the filter was given an undefined value"));
    }
    Ok(())
}
