//! The `changes` template variable: what an edit changed, one entry per field that differs from
//! the state the relay saw before (see `event::UserState`), each with a line ready to print in the
//! template set's language: `**Data limit** 10 GiB → 20 GiB`, `**Protocols** + trojan`.
//!
//! Each entry is `{field, label, before, after, added, removed, text}`: `field` is the stable name
//! (`data_limit`…), `label` its name in the language, `before`/`after` the raw values (bytes, unix
//! seconds, the panel's words; none when unset), `added`/`removed` the names that came and went
//! (protocols, groups), and `text` the whole line, already escaped for Discord markdown (panel text
//! in it is inert), so `{{ change.text }}` prints it as it is.

use serde::Serialize;
use serde_json::Value;

use super::builtin::{Labels, Lang, RESETS, STATUSES};
use super::filters::{escape_markdown, format_bytes, format_duration};
use crate::event::Change;

/// How much of a note a change line quotes, in characters, before and after each.
const NOTE_SHOWN_CHARS: usize = 80;

/// The stable names of the fields, in the order of [`Labels::change_fields`].
pub const FIELDS: [&str; 12] = [
    "status",
    "data_limit",
    "used_traffic",
    "expire",
    "on_hold_expire_duration",
    "on_hold_timeout",
    "reset_strategy",
    "protocols",
    "groups",
    "next_plan",
    "note",
    "owner",
];

/// One entry of `changes`.
#[derive(Debug, Clone, Serialize)]
pub struct ChangeView {
    pub field: &'static str,
    pub label: &'static str,
    pub before: Value,
    pub after: Value,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub text: String,
}

impl ChangeView {
    /// As the template sees it: `text` is marked safe, since it is escaped already.
    pub fn to_value(&self) -> minijinja::Value {
        use minijinja::Value as V;
        minijinja::context! {
            field => self.field,
            label => self.label,
            before => V::from_serialize(&self.before),
            after => V::from_serialize(&self.after),
            added => V::from_serialize(&self.added),
            removed => V::from_serialize(&self.removed),
            text => V::from_safe_string(self.text.clone()),
        }
    }
}

/// `changes` described in `lang`.
pub fn describe(changes: &[Change], lang: Lang) -> Vec<ChangeView> {
    let labels = lang.labels();
    changes
        .iter()
        .map(|change| {
            let label =
                FIELDS.iter().position(|f| *f == change.field).map_or(change.field, |i| labels.change_fields[i]);
            ChangeView {
                field: change.field,
                label,
                before: change.before.clone(),
                after: change.after.clone(),
                added: change.added.clone(),
                removed: change.removed.clone(),
                text: format!("**{label}** {}", line(change, &labels, lang)),
            }
        })
        .collect()
}

/// What follows the label: `before → after`, or the names added and removed.
fn line(change: &Change, labels: &Labels, lang: Lang) -> String {
    let show = |value: &Value| isolate(&value_text(change.field, value, labels), lang);
    match change.field {
        "protocols" | "groups" => {
            let added = change.added.iter().map(|name| format!("+ {}", isolate(&escape_markdown(name), lang)));
            let removed = change.removed.iter().map(|name| format!("− {}", isolate(&escape_markdown(name), lang)));
            added.chain(removed).collect::<Vec<_>>().join(" ")
        }
        "expire" => {
            let moved = match (change.before.as_i64(), change.after.as_i64()) {
                (Some(before), Some(after)) => days_moved(after.saturating_sub(before), labels, lang),
                _ => String::new(),
            };
            format!("{} {} {}{moved}", show(&change.before), labels.arrow, show(&change.after))
        }
        _ => format!("{} {} {}", show(&change.before), labels.arrow, show(&change.after)),
    }
}

/// ` (+30 days)`: how far an expiry moved, in whole days; nothing under a day.
fn days_moved(seconds: i64, labels: &Labels, lang: Lang) -> String {
    let days = seconds / 86_400;
    if days == 0 {
        return String::new();
    }
    let count = days.unsigned_abs();
    let [later, earlier] = labels.moved;
    let days_text = format!("{count}{}", labels.days[(labels.plural)(count)]);
    // Persian says "30 days more": a sign before a number reorders in a right-to-left line.
    let words = if days > 0 { later } else { earlier }.replace("{}", &days_text);
    format!(" ({})", isolate(&words, lang))
}

/// One value of `field` in the language's words and units; none is the field's "none".
fn value_text(field: &str, value: &Value, labels: &Labels) -> String {
    let translated = |keys: &[&str], words: &[&'static str], text: &str| {
        keys.iter().position(|k| *k == text).map_or_else(|| escape_markdown(text), |i| words[i].to_owned())
    };
    match (field, value) {
        ("data_limit", Value::Null) => labels.unlimited.to_owned(),
        ("expire", Value::Null) => labels.never.to_owned(),
        (_, Value::Null) => "—".to_owned(),
        ("data_limit" | "used_traffic", Value::Number(n)) => format_bytes(n.as_f64().unwrap_or(0.0), labels),
        ("expire" | "on_hold_timeout", Value::Number(n)) => format!("<t:{}:d>", n.as_i64().unwrap_or(0)),
        ("on_hold_expire_duration", Value::Number(n)) => format_duration(n.as_f64().unwrap_or(0.0), labels),
        ("status", Value::String(text)) => translated(&STATUSES, &labels.statuses, text),
        ("reset_strategy", Value::String(text)) => translated(&RESETS, &labels.resets, text),
        ("note", Value::String(text)) => {
            let shown: String = text.chars().take(NOTE_SHOWN_CHARS).collect();
            let more = if shown.len() < text.len() { "…" } else { "" };
            format!("“{}{more}”", escape_markdown(&shown))
        }
        ("next_plan", Value::Object(plan)) => plan_text(plan, labels),
        (_, Value::String(text)) => escape_markdown(text),
        (_, other) => escape_markdown(&other.to_string()),
    }
}

/// A next plan as its cards show it: `50 GiB · 30d`.
fn plan_text(plan: &serde_json::Map<String, Value>, labels: &Labels) -> String {
    let limit = plan.get("data_limit").and_then(Value::as_f64);
    let mut text = limit.map_or_else(|| labels.unlimited.to_owned(), |bytes| format_bytes(bytes, labels));
    if let Some(seconds) = plan.get("expire_duration").and_then(Value::as_f64) {
        text = format!("{text} · {}", format_duration(seconds, labels));
    } else if let Some(at) = plan.get("expire_date").and_then(Value::as_i64) {
        text = format!("{text} · <t:{at}:d>");
    }
    text
}

/// In a right-to-left language, `text` in a first-strong isolate, so a Latin name or a number
/// keeps its own order inside the Persian line.
fn isolate(text: &str, lang: Lang) -> String {
    if lang.is_rtl() {
        format!("\u{2068}{text}\u{2069}")
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::UserState;

    fn texts(before: &UserState, after: &UserState, lang: Lang) -> Vec<String> {
        describe(&after.changes_since(before), lang).into_iter().map(|c| c.text).collect()
    }

    #[test]
    fn says_what_an_edit_changed_in_each_language() {
        let before = UserState {
            status: Some("active".into()),
            data_limit: Some(10 << 30),
            expire: Some(1_797_465_600),
            protocols: vec!["vless".into()],
            ..UserState::default()
        };
        let after = UserState {
            status: Some("disabled".into()),
            data_limit: Some(20 << 30),
            expire: Some(1_797_465_600 + 30 * 86_400),
            protocols: vec!["vless".into(), "trojan".into()],
            note: Some("VIP *paid*".into()),
            ..UserState::default()
        };
        assert_eq!(
            texts(&before, &after, Lang::En),
            [
                "**Status** Active → Disabled",
                "**Data limit** 10 GiB → 20 GiB",
                "**Expires** <t:1797465600:d> → <t:1800057600:d> (+30 days)",
                "**Protocols** + trojan",
                "**Note** — → “VIP \\*paid\\*”",
            ]
        );
        assert_eq!(texts(&before, &after, Lang::Ru)[1], "**Лимит трафика** 10 ГиБ → 20 ГиБ");
        assert_eq!(texts(&before, &after, Lang::Zh)[2], "**到期时间** <t:1797465600:d> → <t:1800057600:d> (+30天)");
        assert_eq!(
            texts(&before, &after, Lang::Fa)[1],
            "**حجم کل** \u{2068}10 GiB\u{2069} ← \u{2068}20 GiB\u{2069}",
            "right to left: the arrow points from before to after as a Persian reader reads"
        );
        assert!(texts(&before, &after, Lang::Fa)[2].ends_with("(\u{2068}30 روز بیشتر\u{2069})"), "no sign to reorder");
    }

    #[test]
    fn a_usage_reset_shows_the_usage_it_cleared() {
        let before = UserState { used_traffic: Some(1_288_490_188), ..UserState::default() };
        let after = UserState { used_traffic: Some(0), ..UserState::default() };
        assert_eq!(texts(&before, &after, Lang::En), ["**Usage** 1.2 GiB → 0 B"]);
    }
}
