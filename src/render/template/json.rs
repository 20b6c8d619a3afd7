//! Template files in the JSON shape Discord and Discohook use: a message with one embed, or
//! Discohook's backup wrapper around one. A JSON string has no span, so a leaf's line is where its
//! encoded form first appears in the file.

use serde::Deserialize;

use super::{fixed_color, line_at, Leaf, Spec};
use crate::render::{Color, Field};

#[derive(Deserialize)]
struct JsonMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    embeds: Vec<JsonEmbed>,
}

/// Discohook's backup and share format wraps messages: `{"messages": [{"data": {...}}]}`.
#[derive(Deserialize)]
struct JsonBackup {
    messages: Vec<JsonBackupMessage>,
}

#[derive(Deserialize)]
struct JsonBackupMessage {
    data: JsonMessage,
}

#[derive(Deserialize)]
struct JsonEmbed {
    title: Option<String>,
    description: Option<String>,
    url: Option<String>,
    color: Option<serde_json::Value>,
    author: Option<JsonAuthor>,
    footer: Option<JsonFooter>,
    thumbnail: Option<JsonImage>,
    image: Option<JsonImage>,
    #[serde(default)]
    fields: Vec<JsonField>,
    /// Any non-null value asks for the event time; Discohook puts an ISO string here.
    timestamp: Option<serde_json::Value>,
}

#[derive(Deserialize, Default)]
struct JsonAuthor {
    name: Option<String>,
    url: Option<String>,
    icon_url: Option<String>,
}

#[derive(Deserialize, Default)]
struct JsonFooter {
    text: Option<String>,
    icon_url: Option<String>,
}

#[derive(Deserialize)]
struct JsonImage {
    url: Option<String>,
}

#[derive(Deserialize)]
struct JsonField {
    name: String,
    value: String,
    #[serde(default)]
    inline: bool,
}

pub(super) fn parse_json(text: &str) -> Result<Spec, String> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|err| format!("line {}: {}", err.line(), strip_position(&err)))?;
    let message: JsonMessage = if value.get("messages").is_some() {
        let backup: JsonBackup = serde_json::from_value(value).map_err(|e| e.to_string())?;
        backup.messages.into_iter().next().ok_or("`messages` is empty")?.data
    } else {
        serde_json::from_value(value).map_err(|e| e.to_string())?
    };
    let mut embeds = message.embeds.into_iter();
    let embed = embeds.next();
    if embeds.next().is_some() {
        return Err("a template describes one embed; this file has several (one event is one embed)".into());
    }
    let leaf = |s: Option<String>| s.filter(|s| !s.is_empty()).map(|source| json_leaf(text, source));
    let Some(embed) = embed else {
        return Ok(Spec { content: leaf(message.content), timestamp: true, ..Spec::default() });
    };
    let color = match embed.color {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::Number(n)) => {
            Some(Color::Fixed(fixed_color(n.as_i64().unwrap_or(-1)).map_err(|e| format!("color: {e}"))?))
        }
        Some(serde_json::Value::String(source)) => Some(Color::Template(json_leaf(text, source))),
        Some(_) => return Err("color must be a number or a string".into()),
    };
    let author = embed.author.unwrap_or_default();
    let footer = embed.footer.unwrap_or_default();
    Ok(Spec {
        content: leaf(message.content),
        title: leaf(embed.title),
        description: leaf(embed.description),
        url: leaf(embed.url),
        color,
        author_name: leaf(author.name),
        author_url: leaf(author.url),
        author_icon_url: leaf(author.icon_url),
        footer_text: leaf(footer.text),
        footer_icon_url: leaf(footer.icon_url),
        thumbnail_url: leaf(embed.thumbnail.and_then(|i| i.url)),
        image_url: leaf(embed.image.and_then(|i| i.url)),
        fields: embed
            .fields
            .into_iter()
            .map(|f| Field {
                name: Some(json_leaf(text, f.name)),
                value: Some(json_leaf(text, f.value)),
                inline: f.inline,
            })
            .collect(),
        timestamp: embed.timestamp.is_some_and(|t| !t.is_null()),
    })
}

/// A JSON string has no span; find the line where its encoded form first appears.
fn json_leaf(text: &str, source: String) -> Leaf {
    let encoded = serde_json::to_string(&source).unwrap_or_default();
    let line = text.find(&encoded).map(|at| line_at(text, at));
    Leaf { source, line }
}

fn strip_position(err: &serde_json::Error) -> String {
    let message = err.to_string();
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message,
    }
}
