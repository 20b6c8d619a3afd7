//! Filters that print a status or reset strategy as an emoji or in the language's words.

use minijinja::value::Value;
use minijinja::Error;

use super::undefined_check;
use crate::render::builtin::{Labels, RESETS, STATUSES};

/// `{{ user.status | status_emoji }}` → 🟢 active, 🟡 on hold, 🟠 limited, 🔴 expired,
/// ⚫ disabled, ⚪ anything else.
pub fn status_emoji(value: &Value) -> Result<Value, Error> {
    undefined_check(value)?;
    let emoji = match value.as_str() {
        None if value.is_none() => "",
        Some("active") => "🟢",
        Some("on_hold") => "🟡",
        Some("limited") => "🟠",
        Some("expired") => "🔴",
        Some("disabled") => "⚫",
        _ => "⚪",
    };
    Ok(Value::from_safe_string(emoji.to_owned()))
}

/// `{{ user.status | status_text }}` → `Active`, `On hold`… in the template set's language;
/// unknown statuses print as they are.
pub fn status_text(value: &Value, labels: &Labels) -> Result<Value, Error> {
    translate(value, &STATUSES, &labels.statuses)
}

/// `{{ user.data_limit_reset_strategy | reset_text }}` → `Monthly`… in the template set's language.
pub fn reset_text(value: &Value, labels: &Labels) -> Result<Value, Error> {
    translate(value, &RESETS, &labels.resets)
}

/// The word of `words` at the position of `value` in `keys`; other values print as they are.
fn translate(value: &Value, keys: &[&str], words: &[&'static str]) -> Result<Value, Error> {
    undefined_check(value)?;
    let Some(key) = value.as_str() else {
        return Ok(if value.is_none() { Value::from_safe_string(String::new()) } else { value.clone() });
    };
    Ok(match keys.iter().position(|k| *k == key) {
        Some(i) => Value::from_safe_string(words[i].to_owned()),
        None => Value::from(key),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::Lang;

    #[test]
    fn shows_statuses_as_emoji_and_words() {
        let show = |s: &str| status_emoji(&Value::from(s)).unwrap().to_string();
        assert_eq!(
            [show("active"), show("on_hold"), show("limited"), show("expired"), show("disabled")].concat(),
            "🟢🟡🟠🔴⚫"
        );
        assert_eq!(show("archived"), "⚪");
        assert_eq!(status_text(&Value::from("on_hold"), &Lang::En.labels()).unwrap().to_string(), "On hold");
        assert_eq!(status_text(&Value::from("expired"), &Lang::Ru.labels()).unwrap().to_string(), "Истёк");
        assert_eq!(status_text(&Value::from("archived"), &Lang::Zh.labels()).unwrap().to_string(), "archived");
        assert_eq!(reset_text(&Value::from("month"), &Lang::En.labels()).unwrap().to_string(), "Monthly");
        assert_eq!(reset_text(&Value::from("week"), &Lang::Fa.labels()).unwrap().to_string(), "هفتگی");
    }
}
