//! Template files: what an admin writes, in TOML or in the JSON shape Discord and Discohook use,
//! parsed into one [`Spec`] whose every string is a separate minijinja template (a leaf).
//!
//! TOML (`user_created.toml`):
//!
//! ```toml
//! title = "User created: {{ username }}"
//! color = "#2ECC71"
//! [[fields]]
//! name = "Status"
//! value = "{{ user.status }}"
//! inline = true
//! ```
//!
//! JSON (`user_created.json`), as exported from an embed designer:
//! `{"content": "", "embeds": [{"title": "User created: {{ username }}", "color": 3066993}]}`.

use serde::Deserialize;
use toml::Spanned;

use super::shape::{Color, Field, Shape};

mod json;

use json::parse_json;

/// One string of a template file: its source and the line it starts on in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leaf {
    pub source: String,
    pub line: Option<usize>,
}

/// A message part as a template file describes it: optional `content` and one embed, each string
/// a leaf (`None` when the file leaves it out; the parsers always give a field's name and value),
/// and whether the embed carries the event time as its timestamp.
pub type Spec = Shape<Option<Leaf>, Option<Color<Leaf>>, bool>;

/// The formats a template file can be written in, chosen by extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Toml,
    Json,
}

impl Format {
    /// The format of a file name, if it is a template file at all.
    pub fn of(file_name: &str) -> Option<Self> {
        match file_name.rsplit_once('.')?.1 {
            "toml" => Some(Self::Toml),
            "json" => Some(Self::Json),
            _ => None,
        }
    }
}

/// Parses a template file's text. The error says what is wrong and, where known, on which line.
pub fn parse(text: &str, format: Format) -> Result<Spec, String> {
    match format {
        Format::Toml => parse_toml(text),
        Format::Json => parse_json(text),
    }
}

// ---------------------------------------------------------------------------------------------
// TOML

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlSpec {
    content: Option<Spanned<String>>,
    title: Option<Spanned<String>>,
    description: Option<Spanned<String>>,
    url: Option<Spanned<String>>,
    color: Option<Spanned<TomlColor>>,
    #[serde(default)]
    author: TomlAuthor,
    #[serde(default)]
    footer: TomlFooter,
    thumbnail: Option<Spanned<String>>,
    image: Option<Spanned<String>>,
    #[serde(default)]
    fields: Vec<TomlField>,
    timestamp: Option<bool>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum TomlColor {
    Number(i64),
    Text(String),
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TomlAuthor {
    name: Option<Spanned<String>>,
    url: Option<Spanned<String>>,
    icon_url: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TomlFooter {
    text: Option<Spanned<String>>,
    icon_url: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlField {
    name: Spanned<String>,
    value: Spanned<String>,
    #[serde(default)]
    inline: bool,
}

fn parse_toml(text: &str) -> Result<Spec, String> {
    let raw: TomlSpec = toml::from_str(text).map_err(|err| {
        let line = err.span().map(|span| line_at(text, span.start));
        let message = err.message().trim().to_owned();
        match line {
            Some(line) => format!("line {line}: {message}"),
            None => message,
        }
    })?;
    let leaf = |s: Option<Spanned<String>>| s.map(|s| spanned_leaf(text, s));
    let color = match raw.color {
        None => None,
        Some(spanned) => {
            let line = line_at(text, spanned.span().start);
            Some(match spanned.into_inner() {
                TomlColor::Number(n) => Color::Fixed(fixed_color(n).map_err(|e| format!("line {line}: {e}"))?),
                TomlColor::Text(source) => Color::Template(Leaf { source, line: Some(line) }),
            })
        }
    };
    Ok(Spec {
        content: leaf(raw.content),
        title: leaf(raw.title),
        description: leaf(raw.description),
        url: leaf(raw.url),
        color,
        author_name: leaf(raw.author.name),
        author_url: leaf(raw.author.url),
        author_icon_url: leaf(raw.author.icon_url),
        footer_text: leaf(raw.footer.text),
        footer_icon_url: leaf(raw.footer.icon_url),
        thumbnail_url: leaf(raw.thumbnail),
        image_url: leaf(raw.image),
        fields: raw
            .fields
            .into_iter()
            .map(|f| Field {
                name: Some(spanned_leaf(text, f.name)),
                value: Some(spanned_leaf(text, f.value)),
                inline: f.inline,
            })
            .collect(),
        timestamp: raw.timestamp.unwrap_or(true),
    })
}

fn spanned_leaf(text: &str, spanned: Spanned<String>) -> Leaf {
    let line = line_at(text, spanned.span().start);
    Leaf { source: spanned.into_inner(), line: Some(line) }
}

fn fixed_color(n: i64) -> Result<u32, String> {
    u32::try_from(n).ok().filter(|c| *c <= 0xFF_FFFF).ok_or_else(|| format!("colour {n} is not between 0 and 0xFFFFFF"))
}

/// Parses a rendered colour: `#RRGGBB`, `#RGB`, `0xRRGGBB` or a decimal number up to 0xFFFFFF.
pub fn parse_color(text: &str) -> Result<u32, String> {
    let text = text.trim();
    let bad = || format!("{text:?} is not a colour (use #RRGGBB, 0xRRGGBB or a number up to 16777215)");
    let value = if let Some(hex) = text.strip_prefix('#') {
        let hex = match hex.len() {
            3 => hex.chars().flat_map(|c| [c, c]).collect::<String>(),
            6 => hex.to_owned(),
            _ => return Err(bad()),
        };
        u32::from_str_radix(&hex, 16).map_err(|_| bad())?
    } else if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        u32::from_str_radix(hex, 16).map_err(|_| bad())?
    } else {
        text.parse::<u32>().map_err(|_| bad())?
    };
    if value > 0xFF_FFFF {
        return Err(bad());
    }
    Ok(value)
}

/// The 1-based line of byte offset `at` in `text`.
pub fn line_at(text: &str, at: usize) -> usize {
    text.as_bytes()[..at.min(text.len())].iter().filter(|b| **b == b'\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOML: &str = r##"
content = "{{ username }}"
title = "Created {{ username }}"
color = "#2ECC71"

[footer]
text = "relay"

[[fields]]
name = "Status"
value = "{{ user.status }}"
inline = true
"##;

    #[test]
    fn parses_toml_with_lines() {
        let spec = parse(TOML, Format::Toml).unwrap();
        assert_eq!(spec.title.as_ref().unwrap().source, "Created {{ username }}");
        assert_eq!(spec.title.unwrap().line, Some(3));
        assert_eq!(spec.color, Some(Color::Template(Leaf { source: "#2ECC71".into(), line: Some(4) })));
        assert_eq!(spec.fields.len(), 1);
        assert!(spec.fields[0].inline);
        assert_eq!(spec.fields[0].value.as_ref().unwrap().line, Some(11));
        assert!(spec.timestamp);
    }

    #[test]
    fn toml_errors_name_the_line() {
        let err = parse("title = \"x\"\ncolour = 5\n", Format::Toml).unwrap_err();
        assert!(err.starts_with("line 2:"), "{err}");
        let err = parse("title = \"x\"\n[[fields]]\nname = \"a\"\n", Format::Toml).unwrap_err();
        assert!(err.contains("value"), "{err}");
        let err = parse("color = 16777216\n", Format::Toml).unwrap_err();
        assert!(err.starts_with("line 1:"), "{err}");
    }

    #[test]
    fn parses_discohook_json_and_its_backup_wrapper() {
        let message = r#"{"content": "hi {{ username }}", "embeds": [{"title": "T {{ action }}", "color": 3066993,
            "fields": [{"name": "A", "value": "{{ user.status }}", "inline": true}],
            "footer": {"text": "F"}, "thumbnail": {"url": "https://x/y.png"}, "timestamp": "2024-01-01T00:00:00.000Z"}],
            "username": "bot", "attachments": []}"#;
        let spec = parse(message, Format::Json).unwrap();
        assert_eq!(spec.color, Some(Color::Fixed(3066993)));
        assert_eq!(spec.title.unwrap().line, Some(1));
        assert_eq!(spec.fields[0].value.as_ref().unwrap().line, Some(2));
        assert_eq!(spec.thumbnail_url.unwrap().source, "https://x/y.png");
        assert!(spec.timestamp);
        let backup = format!(r#"{{"messages": [{{"data": {message}}}]}}"#);
        assert_eq!(parse(&backup, Format::Json).unwrap().content.unwrap().source, "hi {{ username }}");
    }

    #[test]
    fn json_refuses_several_embeds_and_reports_syntax_lines() {
        let err = parse(r#"{"embeds": [{}, {}]}"#, Format::Json).unwrap_err();
        assert!(err.contains("one embed"), "{err}");
        let err = parse("{\n\"content\": \"x\",\n}", Format::Json).unwrap_err();
        assert!(err.starts_with("line 3:"), "{err}");
    }

    #[test]
    fn parses_colours() {
        assert_eq!(parse_color("#2ECC71"), Ok(0x2ECC71));
        assert_eq!(parse_color("#fff"), Ok(0xFFFFFF));
        assert_eq!(parse_color("0x5865F2"), Ok(0x5865F2));
        assert_eq!(parse_color("3066993"), Ok(3066993));
        assert!(parse_color("red").is_err());
        assert!(parse_color("#1000000").is_err());
        assert!(parse_color("16777216").is_err());
    }
}
