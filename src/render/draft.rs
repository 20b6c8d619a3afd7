//! A rendered but not yet built embed: plain strings, clamped to Discord's limits, then turned into
//! serenity's `CreateEmbed` and stored as a [`Part`].

use serde::{Deserialize, Serialize};
use serenity::builder::{CreateEmbed, CreateEmbedAuthor, CreateEmbedFooter};
use serenity::model::channel::Embed;
use serenity::model::Timestamp;
use time::OffsetDateTime;

use super::limits::{self, chars, truncate};
use super::shape::Shape;

/// What one event contributes to a Discord message: one embed and optional `content`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Part {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    pub embed: Embed,
}

impl Part {
    /// The characters the embed counts against a message's 6000.
    pub fn embed_chars(&self) -> usize {
        limits::embed_chars(&self.embed)
    }

    /// Characters of `content`.
    pub fn content_chars(&self) -> usize {
        self.content.as_deref().map_or(0, chars)
    }
}

/// Rendered strings of one message part; an empty string means "no such field".
pub type Draft = Shape<String, Option<u32>, Option<OffsetDateTime>>;

impl Draft {
    /// Whether Discord would show anything at all.
    pub fn is_visible(&self) -> bool {
        !(self.content.is_empty()
            && self.title.is_empty()
            && self.description.is_empty()
            && self.fields.is_empty()
            && self.author_name.is_empty()
            && self.footer_text.is_empty()
            && self.thumbnail_url.is_empty()
            && self.image_url.is_empty())
    }

    /// Cuts every string to its limit, drops what Discord would refuse (blank fields, fields past
    /// 25, URLs that are not http(s) or too long), then shrinks the description and drops trailing
    /// fields until the embed fits 6000 characters.
    pub fn clamp(&mut self) {
        self.fields.retain(|f| !f.name.trim().is_empty() && !f.value.trim().is_empty());
        self.fields.truncate(limits::FIELDS);
        for field in &mut self.fields {
            field.name = truncate(&field.name, limits::FIELD_NAME);
            field.value = truncate(&field.value, limits::FIELD_VALUE);
        }
        self.content = truncate(&self.content, limits::CONTENT);
        self.title = truncate(&self.title, limits::TITLE);
        self.description = truncate(&self.description, limits::DESCRIPTION);
        self.author_name = truncate(&self.author_name, limits::AUTHOR);
        self.footer_text = truncate(&self.footer_text, limits::FOOTER);
        for url in [
            &mut self.url,
            &mut self.author_url,
            &mut self.author_icon_url,
            &mut self.footer_icon_url,
            &mut self.thumbnail_url,
            &mut self.image_url,
        ] {
            if !is_usable_url(url) {
                url.clear();
            }
        }
        self.fit_total();
    }

    fn total_chars(&self) -> usize {
        chars(&self.title)
            + chars(&self.description)
            + chars(&self.author_name)
            + chars(&self.footer_text)
            + self.fields.iter().map(|f| chars(&f.name) + chars(&f.value)).sum::<usize>()
    }

    fn fit_total(&mut self) {
        let total = self.total_chars();
        if total <= limits::MESSAGE_EMBED_CHARS {
            return;
        }
        let description = chars(&self.description);
        let excess = total - limits::MESSAGE_EMBED_CHARS;
        self.description = truncate(&self.description, description.saturating_sub(excess));
        while self.total_chars() > limits::MESSAGE_EMBED_CHARS && self.fields.pop().is_some() {}
    }

    /// Builds the embed with serenity's builders. Call [`Draft::clamp`] first.
    pub fn into_part(self) -> Part {
        let mut embed = CreateEmbed::new();
        if !self.title.is_empty() {
            embed = embed.title(self.title);
        }
        if !self.description.is_empty() {
            embed = embed.description(self.description);
        }
        if !self.url.is_empty() {
            embed = embed.url(self.url);
        }
        if let Some(color) = self.color {
            embed = embed.colour(color);
        }
        if !self.author_name.is_empty() {
            let mut author = CreateEmbedAuthor::new(self.author_name);
            if !self.author_url.is_empty() {
                author = author.url(self.author_url);
            }
            if !self.author_icon_url.is_empty() {
                author = author.icon_url(self.author_icon_url);
            }
            embed = embed.author(author);
        }
        if !self.footer_text.is_empty() {
            let mut footer = CreateEmbedFooter::new(self.footer_text);
            if !self.footer_icon_url.is_empty() {
                footer = footer.icon_url(self.footer_icon_url);
            }
            embed = embed.footer(footer);
        }
        if !self.thumbnail_url.is_empty() {
            embed = embed.thumbnail(self.thumbnail_url);
        }
        if !self.image_url.is_empty() {
            embed = embed.image(self.image_url);
        }
        embed = embed.fields(self.fields.into_iter().map(|f| (f.name, f.value, f.inline)));
        if let Some(at) = self.timestamp {
            embed = embed.timestamp(Timestamp::from(at));
        }
        Part { content: Some(self.content).filter(|c| !c.is_empty()), embed: into_model(embed) }
    }
}

/// serenity's builder and model share one JSON shape; the model is what can be read back.
fn into_model(embed: CreateEmbed) -> Embed {
    serde_json::to_value(embed)
        .and_then(serde_json::from_value)
        .expect("a CreateEmbed always serialises to a valid Embed")
}

fn is_usable_url(url: &str) -> bool {
    if url.is_empty() || chars(url) > limits::URL {
        return false;
    }
    url::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::Field;

    fn field(name: &str, value: &str) -> Field {
        Field { name: name.into(), value: value.into(), inline: false }
    }

    #[test]
    fn drops_blank_fields_and_bad_urls() {
        let mut draft = Draft {
            title: "t".into(),
            fields: vec![field("a", ""), field(" ", "b"), field("c", "d")],
            url: "javascript:alert(1)".into(),
            thumbnail_url: "https://example.com/x.png".into(),
            ..Draft::default()
        };
        draft.clamp();
        assert_eq!(draft.fields, vec![field("c", "d")]);
        assert_eq!(draft.url, "");
        assert_eq!(draft.thumbnail_url, "https://example.com/x.png");
    }

    #[test]
    fn fits_every_limit_with_multibyte_text() {
        let long = "ж".repeat(10_000);
        let mut draft = Draft {
            content: long.clone(),
            title: long.clone(),
            description: long.clone(),
            author_name: long.clone(),
            footer_text: long.clone(),
            fields: (0..40).map(|_| field(&long, &long)).collect(),
            ..Draft::default()
        };
        draft.clamp();
        let part = draft.into_part();
        assert!(limits::violations(part.content.as_deref(), &part.embed).is_empty());
        assert_eq!(part.content_chars(), limits::CONTENT);
        assert_eq!(chars(part.embed.title.as_deref().unwrap()), limits::TITLE);
        assert!(part.embed_chars() <= limits::MESSAGE_EMBED_CHARS);
    }

    type SetField = fn(&mut Draft, String);
    type Measure = fn(&Part) -> usize;

    #[test]
    fn cuts_each_field_at_its_own_limit_counting_code_points() {
        // Two-byte Cyrillic, three-byte Persian and four-byte emoji: each counts one.
        for text in ["ж", "ی", "🚀"] {
            let over = |limit: usize| text.repeat(limit + 7);
            let cases: [(&str, usize, SetField, Measure); 7] = [
                ("content", limits::CONTENT, |d, t| d.content = t, |p| p.content_chars()),
                ("title", limits::TITLE, |d, t| d.title = t, |p| chars(p.embed.title.as_deref().unwrap())),
                (
                    "description",
                    limits::DESCRIPTION,
                    |d, t| d.description = t,
                    |p| chars(p.embed.description.as_deref().unwrap()),
                ),
                ("author", limits::AUTHOR, |d, t| d.author_name = t, |p| chars(&p.embed.author.as_ref().unwrap().name)),
                ("footer", limits::FOOTER, |d, t| d.footer_text = t, |p| chars(&p.embed.footer.as_ref().unwrap().text)),
                (
                    "field name",
                    limits::FIELD_NAME,
                    |d, t| d.fields = vec![field(&t, "v")],
                    |p| chars(&p.embed.fields[0].name),
                ),
                (
                    "field value",
                    limits::FIELD_VALUE,
                    |d, t| d.fields = vec![field("n", &t)],
                    |p| chars(&p.embed.fields[0].value),
                ),
            ];
            for (what, limit, set, measure) in cases {
                let mut draft = Draft { title: "t".into(), ..Draft::default() };
                set(&mut draft, over(limit));
                draft.clamp();
                let part = draft.into_part();
                assert_eq!(measure(&part), limit, "{what} with {text}");
                assert!(limits::violations(part.content.as_deref(), &part.embed).is_empty(), "{what} with {text}");
            }
        }
    }

    #[test]
    fn shrinks_the_description_before_dropping_fields() {
        let mut draft = Draft {
            description: "d".repeat(4096),
            fields: (0..3).map(|_| field("n", &"v".repeat(1000))).collect(),
            ..Draft::default()
        };
        draft.clamp();
        assert_eq!(draft.fields.len(), 3);
        assert_eq!(draft.total_chars(), limits::MESSAGE_EMBED_CHARS);
        assert!(draft.description.ends_with('…'));
    }

    #[test]
    fn builds_a_serenity_embed() {
        let mut draft = Draft {
            title: "Title".into(),
            color: Some(0x2ECC71),
            author_name: "a".into(),
            author_icon_url: "https://example.com/a.png".into(),
            footer_text: "f".into(),
            fields: vec![Field { name: "n".into(), value: "v".into(), inline: true }],
            timestamp: Some(OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()),
            ..Draft::default()
        };
        draft.clamp();
        let json = serde_json::to_value(draft.into_part()).unwrap();
        assert_eq!(json["embed"]["title"], "Title");
        assert_eq!(json["embed"]["color"], 0x2ECC71);
        assert_eq!(json["embed"]["fields"][0]["inline"], true);
        assert_eq!(json["embed"]["author"]["icon_url"], "https://example.com/a.png");
        assert_eq!(json["embed"]["timestamp"], "2027-01-15T08:00:00Z");
        assert!(json.get("content").is_none());
    }
}
